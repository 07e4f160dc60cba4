/* session.c - a mount's lock session and the thread that renews it
 * (session.h); the rules are lease.c's. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cas/os.h>

#include "fs.h"
#include "gc.h"
#include "lock_impl.h"
#include "session.h"
#include "txn.h"

/* After a failed renewal, the next try comes this soon. */
#define RETRY_MS 100
/* The longest an unmount waits to give its session up. */
#define END_MS 1000

static uint64_t mono_ms(void *arg)
{
	(void)arg;
	return cas_os_monotonic_ms();
}

const struct casfs_clock casfs_mono_clock = {mono_ms, NULL};

static void sid_hex(const unsigned char *sid, char *out)
{
	char key[CASFS_LOCK_KEY_LEN];

	casfs_sessreg_key(sid, key);
	memcpy(out, key + 2, 2 * CASFS_SID_LEN + 1);
}

int casfs_msession_init(struct casfs_msession *m, struct casfs_fs *fs, unsigned lease_ms)
{
	memset(m, 0, sizeof(*m));
	m->fs = fs;
	m->lease_ms = lease_ms;
	if (pthread_mutex_init(&m->mu, NULL))
		return -ENOMEM;
	if (pthread_mutex_init(&m->create_mu, NULL)) {
		pthread_mutex_destroy(&m->mu);
		return -ENOMEM;
	}
	if (pthread_cond_init(&m->cv, NULL)) {
		pthread_mutex_destroy(&m->create_mu);
		pthread_mutex_destroy(&m->mu);
		return -ENOMEM;
	}
	if (pthread_mutex_init(&m->held_mu, NULL)) {
		pthread_cond_destroy(&m->cv);
		pthread_mutex_destroy(&m->create_mu);
		pthread_mutex_destroy(&m->mu);
		return -ENOMEM;
	}
	return 0;
}

/* A request-less op: the mount's timeout from now, cut at until_ms
 * (monotonic, 0: no cut). */
static void bg_op(struct casfs_fs *fs, uint64_t until_ms, struct op *op)
{
	uint64_t now = cas_os_monotonic_ms(), ms = fs->timeout_ms;

	if (until_ms && until_ms < now + ms)
		ms = until_ms > now ? until_ms - now : 0;
	op->fs = fs;
	cas_os_monotonic(&op->end);
	cas_os_timespec_add_ms(&op->end, ms);
}

/* With m->mu held: true while the current session is valid; the first
 * call that finds it run out logs it and keeps it to mark expired. */
static bool live_locked(struct casfs_msession *m)
{
	char hex[2 * CASFS_SID_LEN + 1];

	if (!m->have)
		return false;
	if (casfs_session_check(&m->s, cas_os_monotonic_ms()))
		return true;
	m->have = false;
	memcpy(m->to_end, m->s.sid, CASFS_SID_LEN);
	m->have_to_end = true;
	sid_hex(m->s.sid, hex);
	fuse_log(FUSE_LOG_ERR,
		 "casfs: lock session %s lost: not renewed within its lease (%u ms); every "
		 "lock taken under it is lost (writes through them fail with ENOLCK)\n",
		 hex, m->lease_ms);
	pthread_cond_broadcast(&m->cv);
	return false;
}

bool casfs_msession_valid(struct casfs_msession *m, uint64_t gen)
{
	bool ok;

	pthread_mutex_lock(&m->mu);
	ok = m->gen == gen && live_locked(m);
	pthread_mutex_unlock(&m->mu);
	return ok;
}

/* Marks a lost session expired, if there is one to mark; best effort,
 * within until_ms (monotonic; 0: the mount's timeout). */
static void end_lost(struct casfs_msession *m, uint64_t until_ms)
{
	unsigned char sid[CASFS_SID_LEN];
	struct casfs_regs r;
	struct op op;
	bool have;

	pthread_mutex_lock(&m->mu);
	have = m->have_to_end;
	memcpy(sid, m->to_end, CASFS_SID_LEN);
	pthread_mutex_unlock(&m->mu);
	if (!have)
		return;
	bg_op(m->fs, until_ms, &op);
	casfs_op_regs(&op, &r);
	if (casfs_session_end(&r, sid) == CAS_OK) {
		pthread_mutex_lock(&m->mu);
		if (!memcmp(m->to_end, sid, CASFS_SID_LEN))
			m->have_to_end = false;
		pthread_mutex_unlock(&m->mu);
	}
}

static int held_update(struct casfs_msession *m, struct op *op, const unsigned char *id, bool add);

/* Lists the held files again when the session they were listed under is
 * not the current one (lost, and a new one made), creating a session when
 * there is none: so that casctl gc spares them again. Call without mu. */
static void held_refresh(struct casfs_msession *m)
{
	struct op op;

	bg_op(m->fs, 0, &op);
	(void)held_update(m, &op, NULL, false);
}

static void *renew_thread(void *arg)
{
	struct casfs_msession *m = arg;
	struct casfs_session s;
	struct casfs_regs r;
	struct timespec at;
	uint64_t gen, start, next;
	struct op op;
	int rc;

	pthread_mutex_lock(&m->mu);
	while (!m->stop) {
		live_locked(m);
		if (m->have_to_end) {
			pthread_mutex_unlock(&m->mu);
			end_lost(m, 0);
			pthread_mutex_lock(&m->mu);
		}
		if (!m->have && m->held_pub && !m->stop) {
			/* Files kept open after their last name went need a
			 * session to be spared by casctl gc: make one. */
			pthread_mutex_unlock(&m->mu);
			held_refresh(m);
			pthread_mutex_lock(&m->mu);
			if (m->have)
				continue;
		}
		if (!m->have) {
			/* Wait for a new session, or a while before the next try
			 * at marking the lost one. */
			cas_os_monotonic(&at);
			cas_os_timespec_add_ms(&at, m->lease_ms / 3);
			pthread_cond_clockwait(&m->cv, &m->mu, CLOCK_MONOTONIC, &at);
			continue;
		}
		next = m->last_start + (m->retry_soon ? RETRY_MS : m->lease_ms / 3);
		if (cas_os_monotonic_ms() < next) {
			at.tv_sec = (time_t)(next / 1000);
			at.tv_nsec = (long)(next % 1000) * 1000000;
			pthread_cond_clockwait(&m->cv, &m->mu, CLOCK_MONOTONIC, &at);
			continue;
		}
		s = m->s;
		gen = m->gen;
		start = cas_os_monotonic_ms();
		m->last_start = start;
		pthread_mutex_unlock(&m->mu);
		/* The round ends when the session would: a later answer could
		 * not save it. */
		bg_op(m->fs, s.valid_until, &op);
		casfs_op_regs(&op, &r);
		rc = casfs_session_renew(&r, &casfs_mono_clock, &s);
		pthread_mutex_lock(&m->mu);
		if (m->gen != gen || !m->have)
			continue;
		m->retry_soon = rc != CAS_OK;
		if (rc == CAS_OK && !m->s.lost)
			m->s = s;
		else if (rc == CAS_EVERSION)
			m->s.valid_until = 0; /* expired by a contender, or ran out */
		if (rc == CAS_OK && m->held_pub) {
			pthread_mutex_unlock(&m->mu);
			held_refresh(m);
			pthread_mutex_lock(&m->mu);
		}
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

int casfs_msession_get(struct casfs_msession *m, struct op *op, unsigned char *sid, uint64_t *gen)
{
	struct casfs_session s;
	struct casfs_regs r;
	char hex[2 * CASFS_SID_LEN + 1];
	int rc = 0;

	pthread_mutex_lock(&m->create_mu);
	pthread_mutex_lock(&m->mu);
	if (m->stop) {
		rc = -ENOLCK;
		goto out_unlock;
	}
	if (live_locked(m))
		goto out_copy;
	pthread_mutex_unlock(&m->mu);
	casfs_op_regs(op, &r);
	rc = casfs_session_create(&r, &casfs_mono_clock, m->lease_ms, &s);
	pthread_mutex_lock(&m->mu);
	if (rc) {
		rc = casfs_err_of(rc);
		goto out_unlock;
	}
	m->s = s;
	m->have = true;
	m->gen++;
	m->last_start = cas_os_monotonic_ms();
	m->retry_soon = false;
	sid_hex(s.sid, hex);
	fuse_log(FUSE_LOG_INFO, "casfs: lock session %s, lease %u ms\n", hex, m->lease_ms);
	if (!m->thread_started) {
		if (pthread_create(&m->thread, NULL, renew_thread, m)) {
			m->have = false;
			rc = -ENOMEM;
			goto out_unlock;
		}
		m->thread_started = true;
	}
	pthread_cond_broadcast(&m->cv);
out_copy:
	memcpy(sid, m->s.sid, CASFS_SID_LEN);
	*gen = m->gen;
out_unlock:
	pthread_mutex_unlock(&m->mu);
	pthread_mutex_unlock(&m->create_mu);
	return rc;
}

void casfs_msession_stop(struct casfs_msession *m)
{
	bool join, have;

	pthread_mutex_lock(&m->mu);
	m->stop = true;
	join = m->thread_started;
	m->thread_started = false;
	pthread_cond_broadcast(&m->cv);
	pthread_mutex_unlock(&m->mu);
	if (join)
		pthread_join(m->thread, NULL);
	pthread_mutex_lock(&m->mu);
	have = m->have;
	if (have) {
		m->have = false;
		memcpy(m->to_end, m->s.sid, CASFS_SID_LEN);
		m->have_to_end = true;
	}
	pthread_mutex_unlock(&m->mu);
	/* An unmount does not wait long for a cluster that does not answer:
	 * the session then simply runs out. */
	end_lost(m, cas_os_monotonic_ms() + END_MS);
}

/* The held register's new value: the list, encoded. */
struct held_value {
	const unsigned char *buf;
	size_t len;
};

static int held_fn(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	const struct held_value *h = arg;

	if (cur->len == h->len && !memcmp(cur->data, h->buf, h->len))
		return CAS_ENOCHANGE;
	next->data = malloc(h->len);
	if (!next->data)
		return CAS_ENOMEM;
	memcpy(next->data, h->buf, h->len);
	next->len = h->len;
	return CAS_OK;
}

static int always_fn(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	(void)arg;
	(void)next;
	return cur->version ? CAS_OK : CAS_ENOCHANGE;
}

/* Adds (add) or removes id in m's list and writes the list to the held
 * register of the current session (deleted when the list is empty). */
static int held_update(struct casfs_msession *m, struct op *op, const unsigned char *id, bool add)
{
	unsigned char sid[CASFS_SID_LEN], *p;
	char key[CASFS_HELD_KEY_LEN];
	struct held_value hv;
	struct casfs_regs r;
	uint64_t gen;
	size_t i, len;
	int rc;

	pthread_mutex_lock(&m->held_mu);
	for (i = 0; id && i < m->nheld && memcmp(m->held + i * CASFS_ID_LEN, id, CASFS_ID_LEN); i++)
		;
	if (!id) {
		/* A refresh: nothing to list, or listed under this session. */
		rc = 0;
		if (!m->nheld)
			goto out_unlock;
	} else if (add && i == m->nheld) {
		if (m->nheld == m->held_cap) {
			size_t cap = m->held_cap ? 2 * m->held_cap : 8;

			p = realloc(m->held, cap * CASFS_ID_LEN);
			if (!p) {
				rc = -ENOMEM;
				goto out_unlock;
			}
			m->held = p;
			m->held_cap = cap;
		}
		memcpy(m->held + m->nheld++ * CASFS_ID_LEN, id, CASFS_ID_LEN);
	} else if (!add && i < m->nheld) {
		memmove(m->held + i * CASFS_ID_LEN, m->held + (i + 1) * CASFS_ID_LEN,
			(m->nheld - i - 1) * CASFS_ID_LEN);
		m->nheld--;
	}
	pthread_mutex_lock(&m->mu);
	m->held_pub = m->nheld;
	pthread_mutex_unlock(&m->mu);
	rc = casfs_msession_get(m, op, sid, &gen);
	if (rc)
		goto out_unlock;
	if (!id && m->held_written && !memcmp(m->held_sid, sid, CASFS_SID_LEN))
		goto out_unlock;
	casfs_held_key(sid, key);
	casfs_op_regs(op, &r);
	if (m->nheld == 0) {
		rc = casfs_err_of(casfs_txn_delete(&r, key, always_fn, NULL, NULL));
		goto out_unlock;
	}
	rc = casfs_held_encode(m->held, m->nheld, &p, &len);
	if (rc) {
		rc = casfs_err_of(rc);
		goto out_unlock;
	}
	hv = (struct held_value){p, len};
	rc = casfs_err_of(casfs_txn_change(&r, key, held_fn, &hv, NULL));
	free(p);
	if (!rc) {
		memcpy(m->held_sid, sid, CASFS_SID_LEN);
		m->held_written = true;
	}
out_unlock:
	pthread_mutex_unlock(&m->held_mu);
	return rc;
}

bool casfs_msession_keep(void *arg, const unsigned char *id)
{
	struct op *op = arg;
	char key[CASFS_KEY_LEN];
	int rc;

	if (!casfs_inodes_hold(op->fs->inodes, id))
		return false;
	rc = held_update(&op->fs->locks->ms, op, id, true);
	if (rc) {
		casfs_inodes_key(id, key);
		fuse_log(FUSE_LOG_ERR,
			 "casfs: %s, open here after its last name went, could not be listed "
			 "in this mount's held register (%s): casctl gc may collect it\n",
			 key, strerror(-rc));
	}
	return true;
}

int casfs_msession_release(struct op *op, const unsigned char *id)
{
	struct casfs_regs regs;
	struct casfs_ns ns;
	int rc;

	casfs_ns_begin(op, &regs, &ns);
	rc = casfs_ns_end(&ns, casfs_ns_delete(&ns, id));
	/* Still listed when the delete failed: spared until the session
	 * ends, then collected. */
	if (!rc)
		rc = held_update(&op->fs->locks->ms, op, id, false);
	return rc;
}

void casfs_msession_destroy(struct casfs_msession *m)
{
	casfs_msession_stop(m);
	free(m->held);
	pthread_mutex_destroy(&m->held_mu);
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->create_mu);
	pthread_mutex_destroy(&m->mu);
}

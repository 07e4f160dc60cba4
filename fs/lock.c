/* lock.c - flock(2) and fcntl(2) locks across mounts (lock.h): requests
 * tried once by the FUSE worker that receives them; a blocking one that
 * finds the lock taken becomes a waiter, answered later by this mount's
 * waiter thread (polling the lock registers every TICK_MS, at once when a
 * lock of this mount is given back), so a hundred waiters hold no FUSE
 * worker. The rules of sessions, leases and expiry are lease.c's.
 *
 * Turns. A lock register knows a hold by its session and lock owner
 * only, so two rounds of one owner on one inode can undo each other: a
 * give-back of an owner's locks that failed at a close (an orphan, given
 * back later by the waiter thread), run after a new lock of the same
 * owner (a process locks the file again; the kernel's POSIX owner is the
 * process), would remove the new hold too, and the owner would go on
 * believing it holds a lock that a third party can now take. So the lock
 * operations of one owner on one inode take turns (L->turns, by a hash
 * of the two), and each reads and changes the owner's entry in L->held
 * only within its turn, its round included. An orphan is given back in
 * turn: by the waiter thread, if its turn comes first; otherwise by the
 * owner's next lock on the inode, before that lock's own round. Either
 * way the old holds are gone before the new one is placed, and no round
 * removes a hold placed after the give-back was decided. (flock owners
 * are open files, never reused: lock_ops.c.) */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cas/bytes.h>
#include <cas/os.h>

#include "lock_impl.h"

/* How often waiters look at the registers of their locks. */
#define TICK_MS 100

static void watch_lock(void *arg)
{
	pthread_mutex_lock(arg);
}

static void watch_unlock(void *arg)
{
	pthread_mutex_unlock(arg);
}

int casfs_locks_new(struct casfs_fs *fs, unsigned lease_ms, struct casfs_locks **out)
{
	struct casfs_locks *L = calloc(1, sizeof(*L));

	if (!L)
		return -ENOMEM;
	L->fs = fs;
	if (casfs_msession_init(&L->ms, fs, lease_ms))
		goto out_free;
	if (pthread_mutex_init(&L->mu, NULL))
		goto out_session;
	if (pthread_mutex_init(&L->watch_mu, NULL))
		goto out_mu;
	if (pthread_cond_init(&L->cv, NULL))
		goto out_watch_mu;
	for (size_t i = 0; i < CASFS_LK_TURNS; i++)
		pthread_mutex_init(&L->turns[i], NULL);
	L->watch.lock = watch_lock;
	L->watch.unlock = watch_unlock;
	L->watch.lock_arg = &L->watch_mu;
	*out = L;
	return 0;

out_watch_mu:
	pthread_mutex_destroy(&L->watch_mu);
out_mu:
	pthread_mutex_destroy(&L->mu);
out_session:
	casfs_msession_destroy(&L->ms);
out_free:
	free(L);
	return -ENOMEM;
}

/* A request-less op with the mount's timeout. */
static void bg_op(struct casfs_locks *L, struct op *op)
{
	op->fs = L->fs;
	cas_os_monotonic(&op->end);
	cas_os_timespec_add_ms(&op->end, L->fs->timeout_ms);
}

static void *wait_thread(void *arg);

/* With L->mu held: starts the waiter thread if it is not running. */
static int ensure_thread(struct casfs_locks *L)
{
	if (L->thread_started)
		return 0;
	if (L->stop || pthread_create(&L->thread, NULL, wait_thread, L))
		return -ENOLCK;
	L->thread_started = true;
	return 0;
}

/* The turn of owner's operations of kind on id (Turns, above). */
static pthread_mutex_t *turn_of(struct casfs_locks *L, const unsigned char *id, uint64_t owner,
				uint8_t kind)
{
	uint64_t h = cas_fnv1a(CAS_FNV1A_INIT, id, CASFS_ID_LEN);

	h = cas_fnv1a(h, &owner, sizeof(owner));
	h = cas_fnv1a(h, &kind, sizeof(kind));
	return &L->turns[h % CASFS_LK_TURNS];
}

/* Waits for the turn until op's deadline: 0 or -ETIMEDOUT. */
static int turn_take(pthread_mutex_t *turn, const struct op *op)
{
	return pthread_mutex_clocklock(turn, CLOCK_MONOTONIC, &op->end) ? -ETIMEDOUT : 0;
}

static struct held *find_locked(struct casfs_locks *L, const unsigned char *id, uint64_t owner,
				uint8_t kind)
{
	struct held *e;

	for (e = L->held; e; e = e->next)
		if (e->owner == owner && e->kind == kind && !memcmp(e->id, id, CASFS_ID_LEN))
			return e;
	return NULL;
}

/* Remembers e (taken) as held, or updates the entry already there (e is
 * then freed). */
static void note_held(struct casfs_locks *L, struct held *e)
{
	struct held *old;

	pthread_mutex_lock(&L->mu);
	old = find_locked(L, e->id, e->owner, e->kind);
	if (old) {
		old->gen = e->gen;
		memcpy(old->sid, e->sid, CASFS_SID_LEN);
		old->h = e->h;
		old->orphan = false;
		free(e);
	} else {
		e->next = L->held;
		L->held = e;
	}
	pthread_mutex_unlock(&L->mu);
}

/* Copies the entry of (id, owner, kind) into *copy; false when none. */
bool casfs_lk_find(struct casfs_locks *L, const unsigned char *id, uint64_t owner, uint8_t kind,
		   struct held *copy)
{
	struct held *e;

	pthread_mutex_lock(&L->mu);
	e = find_locked(L, id, owner, kind);
	if (e)
		*copy = *e;
	pthread_mutex_unlock(&L->mu);
	return e != NULL;
}

static void drop_held(struct casfs_locks *L, const unsigned char *id, uint64_t owner, uint8_t kind)
{
	struct held **p, *e;

	pthread_mutex_lock(&L->mu);
	for (p = &L->held; (e = *p); p = &e->next) {
		if (e->owner == owner && e->kind == kind && !memcmp(e->id, id, CASFS_ID_LEN)) {
			*p = e->next;
			free(e);
			break;
		}
	}
	/* A lock given back: waiters of this mount may take it now. */
	L->kick = true;
	pthread_cond_broadcast(&L->cv);
	pthread_mutex_unlock(&L->mu);
}

/* Gives back [start, end] of owner's locks of kind on id, within their
 * turn. 0 or -errno; a lock whose session was lost is given back quietly
 * (0). */
static int unlock_in_turn(struct casfs_locks *L, struct op *op, const unsigned char *id,
			  uint64_t owner, uint8_t kind, uint64_t start, uint64_t end)
{
	struct casfs_lock_req rq = {.owner = owner, .start = start, .end = end, .kind = kind};
	struct casfs_lock_result res;
	char key[CASFS_LOCK_KEY_LEN];
	struct casfs_regs r;
	struct held e;
	bool valid;
	int rc;

	if (!casfs_lk_find(L, id, owner, kind, &e))
		return 0;
	memcpy(rq.sid, e.sid, CASFS_SID_LEN);
	valid = casfs_msession_valid(&L->ms, e.gen);
	casfs_lockreg_key(id, key);
	casfs_op_regs(op, &r);
	rc = casfs_lock_try(&r, &casfs_mono_clock, key, &rq, &L->watch, &res);
	if ((rc == CAS_OK && !res.holds_left) ||
	    (!valid && (kind == CASFS_LK_FLOCK || (start == 0 && end == CASFS_LOCK_EOF))))
		drop_held(L, id, owner, kind);
	return valid ? casfs_err_of(rc) : 0;
}

/* Within the turn of (id, owner, kind): true when its entry is an orphan;
 * with clear, it stops being one. */
static bool orphan_in_turn(struct casfs_locks *L, const unsigned char *id, uint64_t owner,
			   uint8_t kind, bool clear)
{
	struct held *e;
	bool orphan;

	pthread_mutex_lock(&L->mu);
	e = find_locked(L, id, owner, kind);
	orphan = e && e->orphan;
	if (orphan && clear)
		e->orphan = false;
	pthread_mutex_unlock(&L->mu);
	return orphan;
}

/* Marks the entry of (id, owner, kind) for the thread to give back. */
static void mark_orphan(struct casfs_locks *L, const unsigned char *id, uint64_t owner,
			uint8_t kind)
{
	struct held *e;

	pthread_mutex_lock(&L->mu);
	e = find_locked(L, id, owner, kind);
	if (e) {
		e->orphan = true;
		e->h = NULL;
		ensure_thread(L);
		pthread_cond_broadcast(&L->cv);
	}
	pthread_mutex_unlock(&L->mu);
}

/* One try at rq (a lock) on id for handle h, under this mount's session,
 * within the owner's turn. 0 when taken; -EAGAIN when a live hold is in
 * the way; -ENOLCK when the register is full or the session was lost
 * meanwhile; -ETIMEDOUT; other -errno. A lock perhaps taken (a timeout)
 * is remembered, so that close gives it back. */
static int attempt_in_turn(struct casfs_locks *L, struct op *op, const unsigned char *id,
			   struct casfs_lock_req *rq, const struct handle *h)
{
	struct casfs_lock_result res;
	char key[CASFS_LOCK_KEY_LEN];
	struct casfs_regs r;
	struct held *e;
	uint64_t gen;
	int rc;

	/* What a close of this owner could not give back goes first (Turns). */
	if (orphan_in_turn(L, id, rq->owner, rq->kind, false)) {
		rc = unlock_in_turn(L, op, id, rq->owner, rq->kind, 0, CASFS_LOCK_EOF);
		if (rc)
			return rc;
		orphan_in_turn(L, id, rq->owner, rq->kind, true);
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	rc = casfs_msession_get(&L->ms, op, rq->sid, &gen);
	if (rc)
		goto out_free;
	casfs_lockreg_key(id, key);
	casfs_op_regs(op, &r);
	rc = casfs_lock_try(&r, &casfs_mono_clock, key, rq, &L->watch, &res);
	if (rc == CAS_EVERSION || rc == CAS_ETOOBIG) {
		rc = rc == CAS_EVERSION ? -EAGAIN : -ENOLCK;
		goto out_free;
	}
	if (rc && rc != CAS_EUNAVAILABLE) {
		rc = casfs_err_of(rc);
		goto out_free;
	}
	memcpy(e->id, id, CASFS_ID_LEN);
	e->owner = rq->owner;
	e->kind = rq->kind;
	e->gen = gen;
	memcpy(e->sid, rq->sid, CASFS_SID_LEN);
	e->h = rq->kind == CASFS_LK_FLOCK ? h : NULL;
	note_held(L, e);
	if (rc)
		return casfs_err_of(rc);
	/* Taken after the session ran out: not ours (lease.c, step 1). */
	return casfs_msession_valid(&L->ms, gen) ? 0 : -ENOLCK;

out_free:
	free(e);
	return rc;
}

static int attempt(struct casfs_locks *L, struct op *op, const unsigned char *id,
		   struct casfs_lock_req *rq, const struct handle *h)
{
	pthread_mutex_t *turn = turn_of(L, id, rq->owner, rq->kind);
	int rc = turn_take(turn, op);

	if (rc)
		return rc;
	rc = attempt_in_turn(L, op, id, rq, h);
	pthread_mutex_unlock(turn);
	return rc;
}

int casfs_lk_unlock(struct casfs_locks *L, struct op *op, const unsigned char *id, uint64_t owner,
		    uint8_t kind, uint64_t start, uint64_t end)
{
	pthread_mutex_t *turn = turn_of(L, id, owner, kind);
	int rc = turn_take(turn, op);

	if (rc)
		return rc;
	rc = unlock_in_turn(L, op, id, owner, kind, start, end);
	pthread_mutex_unlock(turn);
	return rc;
}

void casfs_lk_give_back(struct casfs_locks *L, struct op *op, const unsigned char *id,
			uint64_t owner, uint8_t kind)
{
	pthread_mutex_t *turn = turn_of(L, id, owner, kind);

	if (turn_take(turn, op)) {
		/* Another operation of the owner on id, at the same time as
		 * its close, held the turn past the deadline: the thread gives
		 * the locks back later, as after a failed round. */
		mark_orphan(L, id, owner, kind);
		return;
	}
	if (unlock_in_turn(L, op, id, owner, kind, 0, CASFS_LOCK_EOF))
		mark_orphan(L, id, owner, kind);
	pthread_mutex_unlock(turn);
}

/* Answers w's request with -rc and frees w. */
static void finish(struct waiter *w, int rc)
{
	/* Waits for an interrupt callback under way, and stops later ones. */
	fuse_req_interrupt_func(w->req, NULL, NULL);
	fuse_reply_err(w->req, -rc);
	free(w);
}

static void on_interrupt(fuse_req_t req, void *data)
{
	struct waiter *w = data;
	struct casfs_locks *L = w->L;

	(void)req;
	pthread_mutex_lock(&L->mu);
	w->interrupted = true;
	L->kick = true;
	pthread_cond_broadcast(&L->cv);
	pthread_mutex_unlock(&L->mu);
}

static bool retry_later(int rc)
{
	return rc == -EAGAIN || rc == -ENOLCK || rc == -ETIMEDOUT;
}

/* Tries rq once; a blocking request that cannot have it yet waits. */
void casfs_lk_request(fuse_req_t req, struct casfs_locks *L, struct op *op, const unsigned char *id,
		      struct casfs_lock_req *rq, const struct handle *h, bool block)
{
	struct waiter *w;
	int rc = attempt(L, op, id, rq, h);

	if (rc == 0 || !block || !retry_later(rc)) {
		fuse_reply_err(req, -rc);
		return;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		fuse_reply_err(req, ENOLCK);
		return;
	}
	w->L = L;
	w->req = req;
	memcpy(w->id, id, CASFS_ID_LEN);
	w->rq = *rq;
	w->h = h;
	fuse_req_interrupt_func(req, on_interrupt, w);
	pthread_mutex_lock(&L->mu);
	if (ensure_thread(L)) {
		pthread_mutex_unlock(&L->mu);
		finish(w, -ENOLCK);
		return;
	}
	w->next = L->waiters;
	L->waiters = w;
	pthread_cond_broadcast(&L->cv);
	pthread_mutex_unlock(&L->mu);
}

/* A waiter's view of one inode's register in one tick. */
struct seen {
	unsigned char id[CASFS_ID_LEN];
	bool read_ok;
	bool tried; /* an attempt that judges the holders was made */
	struct casfs_lockreg *l;
};

/* True when w's lock is worth a round this tick: the register looks free
 * for it, or no waiter of that inode has tried yet (a try judges the
 * holders' sessions, lease.h). */
static bool worth_trying(struct casfs_locks *L, struct seen *s, size_t *ns, size_t max,
			 const struct waiter *w, struct seen **out)
{
	struct casfs_regs r;
	char key[CASFS_LOCK_KEY_LEN];
	struct op op;
	size_t i;

	for (i = 0; i < *ns; i++)
		if (!memcmp(s[i].id, w->id, CASFS_ID_LEN))
			break;
	*out = NULL;
	if (i == *ns) {
		if (*ns == max)
			return true;
		memset(&s[i], 0, sizeof(s[i]));
		memcpy(s[i].id, w->id, CASFS_ID_LEN);
		s[i].l = malloc(sizeof(*s[i].l));
		if (s[i].l) {
			bg_op(L, &op);
			casfs_op_regs(&op, &r);
			casfs_lockreg_key(w->id, key);
			s[i].read_ok = casfs_lock_read(&r, key, s[i].l) == CAS_OK;
		}
		(*ns)++;
	}
	*out = &s[i];
	if (s[i].read_ok && !casfs_lockreg_conflicts(s[i].l, &w->rq, NULL))
		return true;
	if (s[i].tried)
		return false;
	s[i].tried = true;
	return true;
}

/* One tick over the waiters of list: those answered are freed, the
 * others returned, in order. */
static struct waiter *tick(struct casfs_locks *L, struct waiter *list)
{
	struct waiter *keep = NULL, **tail = &keep, *w, *next;
	struct seen seen[16], *s;
	size_t ns = 0, i;
	struct op op;
	bool intr;
	int rc;

	for (w = list; w; w = next) {
		next = w->next;
		w->next = NULL;
		pthread_mutex_lock(&L->mu);
		intr = w->interrupted || L->stop;
		pthread_mutex_unlock(&L->mu);
		if (intr) {
			finish(w, -EINTR);
			continue;
		}
		if (!worth_trying(L, seen, &ns, 16, w, &s)) {
			*tail = w;
			tail = &w->next;
			continue;
		}
		bg_op(L, &op);
		rc = attempt(L, &op, w->id, &w->rq, w->h);
		if (rc == 0 || !retry_later(rc)) {
			finish(w, rc);
			/* What was read is stale now: others wait a tick. */
			if (s) {
				s->read_ok = false;
				s->tried = true;
			}
			continue;
		}
		*tail = w;
		tail = &w->next;
	}
	for (i = 0; i < ns; i++)
		free(seen[i].l);
	return keep;
}

/* Gives back the locks whose unlock at close failed, each in its turn;
 * stops at the first that fails again, or whose turn does not come. */
static void retry_orphans(struct casfs_locks *L)
{
	pthread_mutex_t *turn;
	struct held e, *x;
	struct op op;
	bool found;
	int rc;

	for (;;) {
		found = false;
		pthread_mutex_lock(&L->mu);
		for (x = L->held; x && !found; x = x->next) {
			if (x->orphan) {
				e = *x;
				found = true;
			}
		}
		pthread_mutex_unlock(&L->mu);
		if (!found)
			return;
		bg_op(L, &op);
		turn = turn_of(L, e.id, e.owner, e.kind);
		if (turn_take(turn, &op))
			return;
		/* The owner's next lock may have given it back meanwhile. */
		rc = 0;
		if (orphan_in_turn(L, e.id, e.owner, e.kind, false)) {
			rc = unlock_in_turn(L, &op, e.id, e.owner, e.kind, 0, CASFS_LOCK_EOF);
			if (!rc)
				orphan_in_turn(L, e.id, e.owner, e.kind, true);
		}
		pthread_mutex_unlock(turn);
		if (rc)
			return;
	}
}

static bool has_orphans(struct casfs_locks *L)
{
	struct held *e;

	for (e = L->held; e; e = e->next)
		if (e->orphan)
			return true;
	return false;
}

static void *wait_thread(void *arg)
{
	struct casfs_locks *L = arg;
	struct waiter *list, *rest, **p;
	struct timespec at;

	pthread_mutex_lock(&L->mu);
	while (!L->stop) {
		if (!L->waiters && !has_orphans(L)) {
			pthread_cond_wait(&L->cv, &L->mu);
			continue;
		}
		if (!L->kick) {
			cas_os_monotonic(&at);
			cas_os_timespec_add_ms(&at, TICK_MS);
			pthread_cond_clockwait(&L->cv, &L->mu, CLOCK_MONOTONIC, &at);
			if (L->stop)
				break;
		}
		L->kick = false;
		/* Oldest first: requests are pushed at the head. */
		list = NULL;
		while (L->waiters) {
			struct waiter *w = L->waiters;

			L->waiters = w->next;
			w->next = list;
			list = w;
		}
		pthread_mutex_unlock(&L->mu);
		retry_orphans(L);
		rest = tick(L, list);
		pthread_mutex_lock(&L->mu);
		/* Put back, newest first, behind what came meanwhile. */
		for (p = &L->waiters; *p; p = &(*p)->next)
			;
		while (rest) {
			struct waiter *w = rest;

			rest = w->next;
			w->next = *p;
			*p = w;
		}
	}
	pthread_mutex_unlock(&L->mu);
	return NULL;
}

void casfs_locks_stop(struct casfs_locks *L)
{
	struct waiter *w;
	bool join;

	pthread_mutex_lock(&L->mu);
	L->stop = true;
	join = L->thread_started;
	L->thread_started = false;
	pthread_cond_broadcast(&L->cv);
	pthread_mutex_unlock(&L->mu);
	if (join)
		pthread_join(L->thread, NULL);
	for (;;) {
		pthread_mutex_lock(&L->mu);
		w = L->waiters;
		if (w)
			L->waiters = w->next;
		pthread_mutex_unlock(&L->mu);
		if (!w)
			break;
		finish(w, -EINTR);
	}
	casfs_msession_stop(&L->ms);
}

void casfs_locks_free(struct casfs_locks *L)
{
	struct held *e;

	if (!L)
		return;
	casfs_locks_stop(L);
	while ((e = L->held)) {
		L->held = e->next;
		free(e);
	}
	casfs_msession_destroy(&L->ms);
	for (size_t i = 0; i < CASFS_LK_TURNS; i++)
		pthread_mutex_destroy(&L->turns[i]);
	pthread_cond_destroy(&L->cv);
	pthread_mutex_destroy(&L->watch_mu);
	pthread_mutex_destroy(&L->mu);
	free(L);
}

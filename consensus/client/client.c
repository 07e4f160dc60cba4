/* client.c - the register client: drives the pure proposer (proposer.h)
 * over the libcurl transport, one operation per call, many threads at once,
 * in the configuration follow.c learns and follows. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stdio.h>

#include <cas/client.h>
#include <cas/os.h>

#include "client_int.h"
#include "errmsg.h"
#include "nodes.h"

#define DEFAULT_TIMEOUT_MS 5000u

/* Bounds of the one-round-trip optimization's cache of promises. */
#define PCACHE_ENTRIES 65536u
#define PCACHE_BYTES   (64u << 20)

/* A proposer id from the kernel's random source, never 0. Ballots are
 * (counter, id) and a proposer counts from 1 at every start, so an id
 * that repeats across starts (or another process's) would reuse ballots
 * with new values, which is unsafe: without random bytes the client
 * refuses to open rather than fall back to a guessable id. */
static int new_proposer_id(uint64_t *id)
{
	*id = 0;
	while (*id == 0)
		if (cas_os_random(id, sizeof(*id)) != CAS_OK)
			return CAS_EIO;
	return CAS_OK;
}

/* splitmix64's finalizer: spreads a counter over 64 bits. */
static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static int init_busy(struct cas_client *c)
{
	pthread_condattr_t attr;
	int rc;

	if (pthread_condattr_init(&attr) != 0)
		return CAS_ENOMEM;
	rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
			     pthread_cond_init(&c->busy_cond, &attr) == 0
		     ? CAS_OK
		     : CAS_ENOMEM;
	pthread_condattr_destroy(&attr);
	if (rc != CAS_OK)
		return rc;
	if (pthread_mutex_init(&c->busy_lock, NULL) != 0) {
		pthread_cond_destroy(&c->busy_cond);
		return CAS_ENOMEM;
	}
	return CAS_OK;
}

static bool key_busy(const struct cas_client *c, const char *key)
{
	for (size_t i = 0; i < c->n_busy; i++)
		if (strcmp(c->busy[i], key) == 0)
			return true;
	return false;
}

/* Waits until no operation of c runs on key, then marks key busy; the
 * caller's key string must stay valid until key_release. CAS_EUNAVAILABLE
 * when the deadline passes first. */
static int key_acquire(struct cas_client *c, const char *key, uint64_t deadline_ms)
{
	struct timespec until = {.tv_sec = (time_t)(deadline_ms / 1000),
				 .tv_nsec = (long)(deadline_ms % 1000) * 1000000L};
	int rc = CAS_OK;

	pthread_mutex_lock(&c->busy_lock);
	while (key_busy(c, key)) {
		if (pthread_cond_timedwait(&c->busy_cond, &c->busy_lock, &until) == ETIMEDOUT &&
		    key_busy(c, key)) {
			rc = CAS_EUNAVAILABLE;
			goto out_unlock;
		}
	}
	if (c->n_busy == c->cap_busy) {
		size_t cap = c->cap_busy ? 2 * c->cap_busy : 16;
		char **b = realloc(c->busy, cap * sizeof(*b));

		if (b == NULL) {
			rc = CAS_ENOMEM;
			goto out_unlock;
		}
		c->busy = b;
		c->cap_busy = cap;
	}
	c->busy[c->n_busy++] = (char *)key;
out_unlock:
	pthread_mutex_unlock(&c->busy_lock);
	return rc;
}

static void key_release(struct cas_client *c, const char *key)
{
	pthread_mutex_lock(&c->busy_lock);
	for (size_t i = 0; i < c->n_busy; i++)
		if (c->busy[i] == key) {
			c->busy[i] = c->busy[--c->n_busy];
			break;
		}
	pthread_cond_broadcast(&c->busy_cond);
	pthread_mutex_unlock(&c->busy_lock);
}

int cas_client_open(const char *nodes, const struct cas_client_config *cfg, struct cas_client **out,
		    char *errmsg, size_t errmsg_len)
{
	struct cas_client *c;
	char **urls;
	uint64_t id;
	int rc;

	if (errmsg != NULL && errmsg_len > 0)
		errmsg[0] = '\0';
	if (out == NULL) {
		cas_errmsg_set(errmsg, errmsg_len, "no place for the client");
		return CAS_EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		cas_errmsg_set(errmsg, errmsg_len, "out of memory");
		return CAS_ENOMEM;
	}
	rc = cas_nodes_parse(nodes, &urls, &c->n_seeds, errmsg, errmsg_len);
	if (rc != CAS_OK)
		goto out_free_c;
	c->timeout_ms = cfg && cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
	c->max_value = cfg && cfg->max_value_size ? cfg->max_value_size : CAS_DEFAULT_MAX_VALUE;
	if (new_proposer_id(&id) != CAS_OK) {
		cas_errmsg_set(errmsg, errmsg_len,
			       "no random bytes from the kernel (getrandom) for a proposer id");
		rc = CAS_EIO;
		goto out_free_urls;
	}
	cas_proposer_init(&c->proposer, id);
	if (pthread_mutex_init(&c->lock, NULL) != 0) {
		cas_errmsg_set(errmsg, errmsg_len, "cannot make a mutex");
		rc = CAS_ENOMEM;
		goto out_free_urls;
	}
	if (pthread_mutex_init(&c->cfg_lock, NULL) != 0) {
		cas_errmsg_set(errmsg, errmsg_len, "cannot make a mutex");
		rc = CAS_ENOMEM;
		goto out_destroy_lock;
	}
	if (pthread_mutex_init(&c->learn_lock, NULL) != 0) {
		pthread_mutex_destroy(&c->cfg_lock);
		cas_errmsg_set(errmsg, errmsg_len, "cannot make a mutex");
		rc = CAS_ENOMEM;
		goto out_destroy_lock;
	}
	if (init_busy(c) != CAS_OK) {
		cas_errmsg_set(errmsg, errmsg_len, "cannot make a condition variable");
		rc = CAS_ENOMEM;
		goto out_destroy_cfg_locks;
	}
	if (!(cfg && cfg->no_fast_path)) {
		rc = cas_pcache_new(PCACHE_ENTRIES, PCACHE_BYTES, &c->cache);
		if (rc != CAS_OK) {
			cas_errmsg_set(errmsg, errmsg_len, "out of memory");
			goto out_destroy_busy;
		}
	}
	rc = cas_auth_load(cfg ? &cfg->auth : NULL, &c->auth, errmsg, errmsg_len);
	if (rc != CAS_OK)
		goto out_free_cache;
	rc = cas_transport_open((const char *const *)urls, c->n_seeds, c->max_value, c->auth,
				&c->transport, errmsg, errmsg_len);
	if (rc != CAS_OK)
		goto out_free_auth;
	cas_nodes_free(urls, c->n_seeds);
	*out = c;
	return CAS_OK;

out_free_auth:
	cas_auth_free(c->auth);
out_free_cache:
	cas_pcache_free(c->cache);
out_destroy_busy:
	pthread_cond_destroy(&c->busy_cond);
	pthread_mutex_destroy(&c->busy_lock);
out_destroy_cfg_locks:
	pthread_mutex_destroy(&c->learn_lock);
	pthread_mutex_destroy(&c->cfg_lock);
out_destroy_lock:
	pthread_mutex_destroy(&c->lock);
out_free_urls:
	cas_nodes_free(urls, c->n_seeds);
out_free_c:
	free(c);
	return rc;
}

void cas_client_close(struct cas_client *c)
{
	if (c == NULL)
		return;
	cas_transport_close(c->transport);
	cas_auth_free(c->auth);
	cas_pcache_free(c->cache);
	pthread_cond_destroy(&c->busy_cond);
	pthread_mutex_destroy(&c->busy_lock);
	free(c->busy);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->learn_lock);
	pthread_mutex_destroy(&c->cfg_lock);
	cas_cluster_config_clear(&c->cfg);
	free(c);
}

const struct cas_auth *cas_client_auth(const struct cas_client *c)
{
	return c->auth;
}

size_t cas_client_nodes(const struct cas_client *c)
{
	return c->n_seeds;
}

const char *cas_client_node_url(const struct cas_client *c, size_t i)
{
	return i < c->n_seeds ? cas_transport_url(c->transport, i) : NULL;
}

int cas_client_ping(struct cas_client *c, size_t i, unsigned timeout_ms)
{
	return cas_transport_ping(c->transport, i, timeout_ms ? timeout_ms : c->timeout_ms, NULL,
				  0);
}

static bool key_ok(const char *key)
{
	return key != NULL && cas_key_valid(key, strnlen(key, CAS_KEY_MAX + 1));
}

/* Runs one operation to its end: the driver loop of proposer.h. */
static int identity(void *arg, const struct cas_value *cur, struct cas_value *next);

/* The promise cache's key: a promise holds in its configuration only. */
static void cache_key(char *buf, size_t len, uint64_t epoch, const char *key)
{
	snprintf(buf, len, "%llu/%s", (unsigned long long)epoch, key);
}

/* Notes why node's answer a does not count. */
static void note_failure(struct cas_client *c, const struct cas_transport_answer *a,
			 const struct cas_view *v)
{
	const char *url = cas_transport_url(c->transport, a->node);

	switch (a->refusal) {
	case CAS_REFUSAL_UNINITIALIZED:
		cas_client_set_error(c, "node %s is not initialized", url);
		break;
	case CAS_REFUSAL_CLUSTER:
		cas_client_set_error(c, "node %s belongs to another cluster, not %s", url,
				     v->cluster);
		break;
	case CAS_REFUSAL_STALE:
		cas_client_set_error(c, "node %s is at epoch %llu, past %llu", url,
				     (unsigned long long)a->epoch, (unsigned long long)v->epoch);
		break;
	case CAS_REFUSAL_BEHIND:
		cas_client_set_error(c, "node %s is behind (epoch %llu)", url,
				     (unsigned long long)a->epoch);
		break;
	default:
		cas_client_set_error(c, "%s", a->errmsg);
		break;
	}
}

/* The lowest node of a non-zero mask. */
static size_t lowest(uint64_t mask)
{
	return (size_t)__builtin_ctzll(mask);
}

/* What run_op does besides applying fn. */
enum run_kind {
	RUN_CHANGE,  /* fn's change (a read when fn is identity) */
	RUN_TOUCH,   /* a full round of the value as it is */
	RUN_DELETE,  /* a tombstone when fn (may be NULL) says CAS_OK */
	RUN_COLLECT, /* the collector's write-back of col->tomb (proposer.h) */
};

/* col (NULL but for the collector's rounds, client_int.h): RUN_TOUCH
 * fills its absent and last, RUN_COLLECT takes its tomb and fills its
 * ballot and view. */
static int run_rounds(struct cas_client *c, const char *key, cas_change_fn fn, void *arg,
		      unsigned timeout_ms, enum run_kind kind, struct cas_value *out,
		      struct cas_collect_round *col)
{
	struct cas_op_config cfg = {0};
	struct cas_transport_answer a;
	struct cas_channel *ch;
	struct cas_effect eff = {0};
	struct cas_op op;
	struct cas_reg cached = {0};
	struct cas_view v, next;
	char ckey[CAS_KEY_MAX + 32];
	uint64_t deadline, rng, until, silent = 0, stale_epoch = 0;
	uint32_t attempt = 0;
	enum cas_transport_event ev;
	int rc;

	if (out != NULL)
		memset(out, 0, sizeof(*out)); /* also on every early return */
	deadline = cas_transport_now_ms() + (timeout_ms ? timeout_ms : c->timeout_ms);
	rc = cas_follow_view(c, deadline, &v);
	if (rc != CAS_OK)
		return rc;
	next = v;
	rc = key_acquire(c, key, deadline);
	if (rc != CAS_OK)
		return rc;
	rc = cas_transport_checkout(c->transport, &ch, NULL, 0);
	if (rc != CAS_OK) {
		key_release(c, key);
		return rc;
	}

	cfg.key = key;
	cfg.n_nodes = v.n_nodes;
	cfg.old_set = v.old_set;
	cfg.new_set = v.new_set;
	cfg.epoch = v.epoch;
	cfg.fn = fn;
	cfg.arg = arg;
	/* Unique among this proposer's operations by construction. */
	cfg.op_id = __atomic_add_fetch(&c->ops, 1, __ATOMIC_RELAXED);
	cfg.deadline_ms = deadline;
	cfg.max_value = c->max_value;
	rng = mix(c->proposer.id ^ cfg.op_id); /* backoff jitter only */
	/* A read starts with a query, which leaves a cached promise valid;
	 * a touch is a full round; anything else starts from the promise
	 * when there is one. */
	cfg.read_only = fn == identity && kind == RUN_CHANGE;
	cfg.del = kind == RUN_DELETE;
	cfg.collect = kind == RUN_COLLECT;
	if (cfg.collect)
		cfg.tomb = col->tomb;
	cache_key(ckey, sizeof(ckey), v.epoch, key);
	if (!cfg.read_only && kind != RUN_TOUCH && kind != RUN_COLLECT && c->cache != NULL &&
	    cas_pcache_take(c->cache, ckey, &cfg.cached_ballot, &cached)) {
		cfg.cached_value = &cached;
		cfg.cached_epoch = v.epoch;
	}
	cas_op_init(&op, &cfg);

	pthread_mutex_lock(&c->lock);
	cas_op_start(&op, &c->proposer, &eff);
	pthread_mutex_unlock(&c->lock);
	free(cached.data);

	while (eff.kind != CAS_EFFECT_DONE) {
		switch (eff.kind) {
		case CAS_EFFECT_SEND: {
			/* The attempt's view: the newer one once the op took it. */
			const struct cas_view *sv = eff.epoch == next.epoch ? &next : &v;
			struct cas_ident id = {sv->cluster, eff.epoch};

			attempt = eff.attempt;
			silent = eff.targets & sv->gone;
			rc = cas_transport_send(ch, eff.msg, &id, eff.targets & ~sv->gone, deadline,
						NULL, 0);
			if (rc != CAS_OK)
				cas_op_abort(&op, rc, &eff);
			else
				eff.kind = CAS_EFFECT_WAIT;
			break;
		}
		case CAS_EFFECT_WAIT:
			if (silent != 0) {
				/* A node known gone answers nothing. */
				size_t node = lowest(silent);

				silent &= silent - 1;
				pthread_mutex_lock(&c->lock);
				cas_op_on_reply(&op, &c->proposer, node, attempt, NULL,
						cas_transport_now_ms(), &rng, &eff);
				pthread_mutex_unlock(&c->lock);
				break;
			}
			ev = cas_transport_next(ch, deadline, &a);
			if (ev != CAS_TRANSPORT_ANSWER) {
				/* The deadline; or every node answered and
				 * the op still waits, which only answers it
				 * ignored can cause. */
				cas_op_expire(&op, &eff);
				break;
			}
			if (a.code != CAS_OK)
				note_failure(c, &a, &v);
			else if (a.msg.type == CAS_MSG_REJECT)
				cas_stats_reject(&c->stats);
			if (a.refusal == CAS_REFUSAL_STALE && stale_epoch == 0)
				stale_epoch = op.cfg.epoch;
			if (a.code == CAS_ETOOBIG || a.code == CAS_ENOMEM) {
				cas_op_abort(&op, a.code, &eff);
			} else {
				/* A refusal counts as no answer. */
				pthread_mutex_lock(&c->lock);
				cas_op_on_reply(&op, &c->proposer, a.node, attempt,
						a.code == CAS_OK ? &a.msg : NULL,
						cas_transport_now_ms(), &rng, &eff);
				pthread_mutex_unlock(&c->lock);
			}
			cas_transport_answer_clear(&a);
			break;
		case CAS_EFFECT_SLEEP:
			cas_stats_retry(&c->stats);
			if (stale_epoch != 0) {
				/* A newer configuration: the next attempt runs
				 * in it (the op keeps its own proposals). */
				v = next;
				if (cas_follow_reload(c, stale_epoch, deadline, &next) == CAS_OK &&
				    next.epoch > v.epoch)
					cas_op_set_members(&op, next.n_nodes, next.old_set,
							   next.new_set, next.epoch);
				stale_epoch = 0;
			}
			until = eff.until_ms < deadline ? eff.until_ms : deadline;
			cas_transport_sleep(ch, until);
			pthread_mutex_lock(&c->lock);
			cas_op_wake(&op, &c->proposer, cas_transport_now_ms(), &eff);
			pthread_mutex_unlock(&c->lock);
			break;
		case CAS_EFFECT_DONE:
			break;
		}
	}

	rc = op.result;
	if (col != NULL && rc == CAS_OK && op.have_value) {
		/* What the round wrote back: the note's tombstone, or the
		 * write-back's ballot B and the configuration every node of
		 * which accepted it (proposer.h, collect). */
		const struct cas_reg *r = op.answer_set ? &op.mine[op.answer] : &op.out.value;

		col->absent = cas_reg_absent(r) && r->len == 0;
		memset(&col->last, 0, sizeof(col->last));
		if (r->n_recent > 0)
			col->last = r->recent[0];
		col->ballot = op.ballot;
		col->view = op.cfg.epoch == next.epoch ? next : v;
		col->view.n_nodes = op.cfg.n_nodes;
		col->view.old_set = op.set_o;
		col->view.new_set = op.set_n;
	}
	if (c->cache != NULL) {
		struct cas_ballot nb;
		struct cas_reg value;

		if (cas_op_take_cache(&op, &nb, &value)) {
			cache_key(ckey, sizeof(ckey), op.cfg.epoch, key);
			cas_pcache_put(c->cache, ckey, nb, &value);
		}
	}
	if (out != NULL)
		cas_op_take_value(&op, out);
	cas_op_clear(&op);
	cas_transport_checkin(c->transport, ch);
	key_release(c, key);
	return rc;
}

/* A change function and what it last returned: whether an operation's
 * code is its refusal or the protocol's, for c's stats. */
struct counted_fn {
	cas_change_fn fn;
	void *arg;
	int last;
	bool ran;
};

static int counted_change(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	struct counted_fn *k = arg;

	k->last = k->fn(k->arg, cur, next);
	k->ran = true;
	return k->last;
}

/* run_rounds, counted in c's stats. */
static int run_op(struct cas_client *c, const char *key, cas_change_fn fn, void *arg,
		  unsigned timeout_ms, enum run_kind kind, struct cas_value *out)
{
	struct counted_fn k = {fn, arg, CAS_OK, false};
	/* A read keeps fn, the identity, for run_rounds to know it. */
	bool wrap = fn != NULL && fn != identity;
	int rc = run_rounds(c, key, wrap ? counted_change : fn, wrap ? (void *)&k : arg, timeout_ms,
			    kind, out, NULL);

	cas_stats_round(&c->stats,
			kind == RUN_DELETE  ? CAS_ROUND_DELETE
			: kind == RUN_TOUCH ? CAS_ROUND_TOUCH
			: fn == identity    ? CAS_ROUND_READ
					    : CAS_ROUND_CHANGE,
			rc, k.ran && rc == k.last);
	return rc;
}

/* The collector's rounds (client_int.h), counted as touches. */
int cas_client_note_round(struct cas_client *c, const char *key, unsigned timeout_ms,
			  struct cas_collect_round *col)
{
	int rc = run_rounds(c, key, identity, NULL, timeout_ms, RUN_TOUCH, NULL, col);

	cas_stats_round(&c->stats, CAS_ROUND_TOUCH, rc, false);
	return rc;
}

int cas_client_write_back(struct cas_client *c, const char *key, unsigned timeout_ms,
			  struct cas_collect_round *col)
{
	int rc = run_rounds(c, key, NULL, NULL, timeout_ms, RUN_COLLECT, NULL, col);

	cas_stats_round(&c->stats, CAS_ROUND_TOUCH, rc, false);
	return rc;
}

int cas_change(struct cas_client *c, const char *key, cas_change_fn fn, void *arg,
	       unsigned timeout_ms, struct cas_value *out)
{
	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (!key_ok(key))
		return CAS_EKEY;
	if (c == NULL || fn == NULL)
		return CAS_EINVAL;
	return run_op(c, key, fn, arg, timeout_ms, RUN_CHANGE, out);
}

int cas_touch(struct cas_client *c, const char *key, unsigned timeout_ms, uint64_t *version)
{
	struct cas_value v;
	int rc;

	if (version != NULL)
		*version = 0;
	if (!key_ok(key))
		return CAS_EKEY;
	if (c == NULL)
		return CAS_EINVAL;
	rc = run_op(c, key, identity, NULL, timeout_ms, RUN_TOUCH, &v);
	if (rc == CAS_OK && version != NULL)
		*version = v.version;
	cas_value_clear(&v);
	return rc;
}

static int identity(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	(void)arg;
	(void)cur;
	(void)next;
	return CAS_ENOCHANGE;
}

int cas_read(struct cas_client *c, const char *key, unsigned timeout_ms, struct cas_value *out)
{
	return cas_change(c, key, identity, NULL, timeout_ms, out);
}

struct write_arg {
	const void *data;
	size_t len;
	bool conditional;
	uint64_t expected;
};

/* The change of cas_put and cas_cas: a copy of the new bytes, under the
 * version condition when there is one. */
static int write_fn(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	const struct write_arg *w = arg;

	if (w->conditional && cur->version != w->expected)
		return CAS_EVERSION;
	next->data = NULL;
	next->len = w->len;
	if (w->len == 0)
		return CAS_OK;
	next->data = malloc(w->len);
	if (next->data == NULL)
		return CAS_ENOMEM;
	memcpy(next->data, w->data, w->len);
	return CAS_OK;
}

static int write_op(struct cas_client *c, const char *key, struct write_arg *w, unsigned timeout_ms,
		    uint64_t *version)
{
	struct cas_value v = {0};
	int rc;

	if (version != NULL)
		*version = 0;
	if (!key_ok(key))
		return CAS_EKEY;
	if (c == NULL || (w->data == NULL && w->len > 0))
		return CAS_EINVAL;
	if (w->len > c->max_value)
		return CAS_ETOOBIG;
	rc = run_op(c, key, write_fn, w, timeout_ms, RUN_CHANGE, &v);
	if (version != NULL && (rc == CAS_OK || rc == CAS_EVERSION))
		*version = v.version;
	cas_value_clear(&v);
	return rc;
}

int cas_put(struct cas_client *c, const char *key, const void *data, size_t len,
	    unsigned timeout_ms, uint64_t *version)
{
	struct write_arg w = {.data = data, .len = len};

	return write_op(c, key, &w, timeout_ms, version);
}

int cas_cas(struct cas_client *c, const char *key, uint64_t expected, const void *data, size_t len,
	    unsigned timeout_ms, uint64_t *version)
{
	struct write_arg w = {.data = data, .len = len, .conditional = true, .expected = expected};

	return write_op(c, key, &w, timeout_ms, version);
}

int cas_delete(struct cas_client *c, const char *key, cas_change_fn fn, void *arg,
	       unsigned timeout_ms, struct cas_value *out)
{
	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (!key_ok(key))
		return CAS_EKEY;
	if (c == NULL)
		return CAS_EINVAL;
	return run_op(c, key, fn, arg, timeout_ms, RUN_DELETE, out);
}

/* The condition of cas_delete_version. */
static int version_fn(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	const uint64_t *expected = arg;

	(void)next;
	return cur->version == *expected ? CAS_OK : CAS_EVERSION;
}

int cas_delete_version(struct cas_client *c, const char *key, uint64_t expected,
		       unsigned timeout_ms, uint64_t *version)
{
	struct cas_value v = {0};
	int rc;

	rc = cas_delete(c, key, version_fn, &expected, timeout_ms, &v);
	if (version != NULL)
		*version = rc == CAS_OK || rc == CAS_EVERSION ? v.version : 0;
	cas_value_clear(&v);
	return rc;
}

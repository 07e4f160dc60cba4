/* client.c - the register client: drives the pure proposer (proposer.h)
 * over the libcurl transport, one operation per call, many threads at once. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cas/client.h>
#include <cas/os.h>

#include "errmsg.h"
#include "nodes.h"
#include "pcache.h"
#include "proposer.h"
#include "transport.h"

#define DEFAULT_TIMEOUT_MS 5000u

/* Bounds of the one-round-trip optimization's cache of promises. */
#define PCACHE_ENTRIES 65536u
#define PCACHE_BYTES   (64u << 20)

struct cas_client {
	size_t n;
	char **urls; /* normalized base URLs, "http://host:port" */
	unsigned timeout_ms;
	size_t max_value;
	pthread_mutex_t lock; /* guards proposer */
	struct cas_proposer proposer;
	uint64_t ops; /* operations started, atomic: each op's id */
	struct cas_transport *transport;
	struct cas_pcache *cache; /* NULL: the fast path is off */
	/* Keys with an operation running: a proposer runs one operation at a
	 * time on a key (msg.h, struct cas_recent), later ones wait. */
	pthread_mutex_t busy_lock;
	pthread_cond_t busy_cond; /* on CLOCK_MONOTONIC */
	char **busy;
	size_t n_busy, cap_busy;
};

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
	rc = cas_nodes_parse(nodes, &c->urls, &c->n, errmsg, errmsg_len);
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
	if (init_busy(c) != CAS_OK) {
		cas_errmsg_set(errmsg, errmsg_len, "cannot make a condition variable");
		rc = CAS_ENOMEM;
		goto out_destroy_lock;
	}
	if (!(cfg && cfg->no_fast_path)) {
		rc = cas_pcache_new(PCACHE_ENTRIES, PCACHE_BYTES, &c->cache);
		if (rc != CAS_OK) {
			cas_errmsg_set(errmsg, errmsg_len, "out of memory");
			goto out_destroy_busy;
		}
	}
	rc = cas_transport_open((const char *const *)c->urls, c->n, c->max_value, &c->transport,
				errmsg, errmsg_len);
	if (rc != CAS_OK)
		goto out_free_cache;
	*out = c;
	return CAS_OK;

out_free_cache:
	cas_pcache_free(c->cache);
out_destroy_busy:
	pthread_cond_destroy(&c->busy_cond);
	pthread_mutex_destroy(&c->busy_lock);
out_destroy_lock:
	pthread_mutex_destroy(&c->lock);
out_free_urls:
	cas_nodes_free(c->urls, c->n);
out_free_c:
	free(c);
	return rc;
}

void cas_client_close(struct cas_client *c)
{
	if (c == NULL)
		return;
	cas_transport_close(c->transport);
	cas_pcache_free(c->cache);
	pthread_cond_destroy(&c->busy_cond);
	pthread_mutex_destroy(&c->busy_lock);
	free(c->busy);
	pthread_mutex_destroy(&c->lock);
	cas_nodes_free(c->urls, c->n);
	free(c);
}

size_t cas_client_nodes(const struct cas_client *c)
{
	return c->n;
}

const char *cas_client_node_url(const struct cas_client *c, size_t i)
{
	return i < c->n ? c->urls[i] : NULL;
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

static int run_op(struct cas_client *c, const char *key, cas_change_fn fn, void *arg,
		  unsigned timeout_ms, struct cas_value *out)
{
	struct cas_op_config cfg = {0};
	struct cas_transport_answer a;
	struct cas_channel *ch;
	struct cas_effect eff = {0};
	struct cas_op op;
	struct cas_reg cached = {0};
	uint64_t deadline, rng, until;
	uint32_t attempt = 0;
	enum cas_transport_event ev;
	int rc;

	if (out != NULL)
		memset(out, 0, sizeof(*out)); /* also on every early return */
	deadline = cas_transport_now_ms() + (timeout_ms ? timeout_ms : c->timeout_ms);
	rc = key_acquire(c, key, deadline);
	if (rc != CAS_OK)
		return rc;
	rc = cas_transport_checkout(c->transport, &ch, NULL, 0);
	if (rc != CAS_OK) {
		key_release(c, key);
		return rc;
	}

	cfg.key = key;
	cfg.n_nodes = c->n;
	cfg.fn = fn;
	cfg.arg = arg;
	/* Unique among this proposer's operations by construction. */
	cfg.op_id = __atomic_add_fetch(&c->ops, 1, __ATOMIC_RELAXED);
	cfg.deadline_ms = deadline;
	cfg.max_value = c->max_value;
	rng = mix(c->proposer.id ^ cfg.op_id); /* backoff jitter only */
	/* A read starts with a query, which leaves a cached promise valid;
	 * anything else starts from the promise when there is one. */
	cfg.read_only = fn == identity;
	if (!cfg.read_only && c->cache != NULL &&
	    cas_pcache_take(c->cache, key, &cfg.cached_ballot, &cached))
		cfg.cached_value = &cached;
	cas_op_init(&op, &cfg);

	pthread_mutex_lock(&c->lock);
	cas_op_start(&op, &c->proposer, &eff);
	pthread_mutex_unlock(&c->lock);
	free(cached.data);

	while (eff.kind != CAS_EFFECT_DONE) {
		switch (eff.kind) {
		case CAS_EFFECT_SEND:
			attempt = eff.attempt;
			rc = cas_transport_send(ch, eff.msg, deadline, NULL, 0);
			if (rc != CAS_OK)
				cas_op_abort(&op, rc, &eff);
			else
				eff.kind = CAS_EFFECT_WAIT;
			break;
		case CAS_EFFECT_WAIT:
			ev = cas_transport_next(ch, deadline, &a);
			if (ev != CAS_TRANSPORT_ANSWER) {
				/* The deadline; or every node answered and
				 * the op still waits, which only answers it
				 * ignored can cause. */
				cas_op_expire(&op, &eff);
				break;
			}
			if (a.code == CAS_ETOOBIG || a.code == CAS_ENOMEM) {
				cas_op_abort(&op, a.code, &eff);
			} else {
				pthread_mutex_lock(&c->lock);
				cas_op_on_reply(&op, &c->proposer, a.node, attempt,
						a.code == CAS_OK ? &a.msg : NULL,
						cas_transport_now_ms(), &rng, &eff);
				pthread_mutex_unlock(&c->lock);
			}
			cas_transport_answer_clear(&a);
			break;
		case CAS_EFFECT_SLEEP:
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
	if (c->cache != NULL) {
		struct cas_ballot next;
		struct cas_reg value;

		if (cas_op_take_cache(&op, &next, &value))
			cas_pcache_put(c->cache, key, next, &value);
	}
	if (out != NULL)
		cas_op_take_value(&op, out);
	cas_op_clear(&op);
	cas_transport_checkin(c->transport, ch);
	key_release(c, key);
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
	return run_op(c, key, fn, arg, timeout_ms, out);
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
	rc = run_op(c, key, write_fn, w, timeout_ms, &v);
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

/* driver.c - compare's driver: threads that time one workload on one
 * backend, and check afterwards that no update was lost. */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compare.h"

const struct workload_def workloads[W_COUNT] = {
	[W_CAS1] = {"cas1", "cas, 1 client", 1, K_CAS},
	[W_CAS32] = {"cas32", "cas, 32 clients, distinct keys", 32, K_CAS},
	[W_CONTEND8] = {"contend8", "cas, 8 clients, one key (ok/s)", 8, K_CONTEND},
	[W_READ1] = {"read1", "read, 1 client", 1, K_READ},
	[W_READ32] = {"read32", "read, 32 clients", 32, K_READ},
};

bool lat_add(struct lat *l, uint64_t us)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		uint32_t *v = realloc(l->v, cap * sizeof(*v));

		if (v == NULL)
			return false;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
	return true;
}

uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The start line of one measurement's threads. */
struct phase {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int ready; /* threads that finished warming up */
	bool go;   /* set once, with end_us */
	uint64_t end_us;
};

struct worker {
	struct phase *ph;
	struct backend *be;
	void *conn;
	enum kind kind;
	char key[KEY_LEN];
	uint64_t expect;   /* K_READ: the version every read must see */
	const char *value; /* K_CAS: the bytes written */
	size_t value_size;
	uint64_t version; /* last version seen */
	uint64_t count;	  /* K_CONTEND: counter last seen */
	struct lat lat;
	uint64_t ok, conflicts, errors, bad;
	char err[ERR_LEN];
	pthread_t thread;
};

static void note_error(struct worker *w, const char *err)
{
	w->errors++;
	if (w->err[0] == '\0')
		snprintf(w->err, sizeof(w->err), "%s", err);
}

static void __attribute__((format(printf, 2, 3))) note_bad(struct worker *w, const char *fmt, ...)
{
	va_list ap;

	w->bad++;
	va_start(ap, fmt);
	vsnprintf(w->err, sizeof(w->err), fmt, ap);
	va_end(ap);
}

/* One timed operation of w's workload. */
static void step(struct worker *w)
{
	struct seen cur;
	char err[ERR_LEN] = "", num[24];
	enum outcome o;
	uint64_t t0 = now_us();

	switch (w->kind) {
	case K_READ:
		o = w->be->read(w->conn, w->key, &cur, err, sizeof(err));
		break;
	case K_CAS:
		o = w->be->cas(w->conn, w->key, w->version, w->value, w->value_size, false, &cur,
			       err, sizeof(err));
		break;
	default:
		snprintf(num, sizeof(num), "%" PRIu64, w->count + 1);
		o = w->be->cas(w->conn, w->key, w->version, num, strlen(num), true, &cur, err,
			       sizeof(err));
		break;
	}
	if (!lat_add(&w->lat, now_us() - t0)) {
		note_error(w, "out of memory");
		return;
	}
	if (o == FAILED) {
		note_error(w, err);
		return;
	}
	switch (w->kind) {
	case K_READ:
		w->ok++;
		if (w->expect != NO_VERSION && cur.version != w->expect)
			note_bad(w,
				 "a read saw version %" PRIu64 " after version %" PRIu64
				 " was written",
				 cur.version, w->expect);
		break;
	case K_CAS:
		if (o == CONFLICT && w->errors) {
			/* An earlier failed cas may have been applied after all. */
			w->version = cur.version;
			break;
		}
		if (o == CONFLICT) {
			/* Nobody else writes this key. */
			note_bad(w,
				 "a cas on a key of its own found version %" PRIu64
				 " instead of %" PRIu64,
				 cur.version, w->version);
			w->version = cur.version;
			break;
		}
		w->ok++;
		w->version = cur.version;
		break;
	default:
		if (o == DONE) {
			w->ok++;
			w->count++;
		} else {
			w->conflicts++;
			w->count = strtoull(cur.data, NULL, 10);
		}
		w->version = cur.version;
		break;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char err[ERR_LEN];
	struct seen cur;

	/* Unmeasured: connections come up and the key's state is known. */
	for (int i = 0; i < WARMUP_READS; i++) {
		if (w->be->read(w->conn, w->key, &cur, err, sizeof(err)) != DONE) {
			note_error(w, err);
			continue;
		}
		w->version = cur.version;
		w->count = strtoull(cur.data, NULL, 10);
	}
	pthread_mutex_lock(&w->ph->lock);
	w->ph->ready++;
	pthread_cond_broadcast(&w->ph->cond);
	while (!w->ph->go)
		pthread_cond_wait(&w->ph->cond, &w->ph->lock);
	pthread_mutex_unlock(&w->ph->lock);
	while (now_us() < w->ph->end_us)
		step(w);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int percentiles(const struct lat *const *lats, int n, struct cell *out)
{
	size_t total = 0, at = 0;
	uint32_t *all;

	for (int i = 0; i < n; i++)
		total += lats[i]->n;
	if (total == 0)
		return 0;
	all = malloc(total * sizeof(*all));
	if (all == NULL)
		return -1;
	for (int i = 0; i < n; i++) {
		memcpy(all + at, lats[i]->v, lats[i]->n * sizeof(*all));
		at += lats[i]->n;
	}
	qsort(all, total, sizeof(*all), cmp_u32);
	out->p50 = all[total / 2];
	out->p99 = all[total * 99 / 100];
	free(all);
	return 0;
}

/* After a contending run: the counter must hold exactly the number of
 * successful increments (give or take the ones whose outcome is unknown),
 * and every increment is one version. */
static void check_counter(struct worker *ws, int n, struct cell *c)
{
	uint64_t ok = 0, unknown = 0, count;
	char err[ERR_LEN];
	struct seen cur;

	for (int i = 0; i < n; i++) {
		ok += ws[i].ok;
		unknown += ws[i].errors;
	}
	if (ws[0].be->read(ws[0].conn, ws[0].key, &cur, err, sizeof(err)) != DONE) {
		c->failed = true;
		snprintf(c->why, sizeof(c->why), "cannot read the counter: %.200s", err);
		return;
	}
	count = strtoull(cur.data, NULL, 10);
	if (count < ok || count > ok + unknown || cur.version != count) {
		c->failed = true;
		snprintf(c->why, sizeof(c->why),
			 "LOST UPDATE: %" PRIu64 " increments succeeded (%" PRIu64
			 " unknown), the counter says %" PRIu64 " at version %" PRIu64,
			 ok, unknown, count, cur.version);
	}
}

/* After a cas run on distinct keys: each key is at the version its writer
 * last saw. Records the versions for the read workloads. */
static void check_keys(struct worker *ws, int n, struct cell *c, uint64_t *versions)
{
	char err[ERR_LEN];
	struct seen cur;

	for (int i = 0; i < n; i++) {
		versions[i] = NO_VERSION;
		if (ws[i].errors)
			continue;
		if (ws[i].be->read(ws[i].conn, ws[i].key, &cur, err, sizeof(err)) != DONE) {
			c->failed = true;
			snprintf(c->why, sizeof(c->why), "cannot read back %s: %.160s", ws[i].key,
				 err);
			return;
		}
		if (cur.version != ws[i].version) {
			c->failed = true;
			snprintf(c->why, sizeof(c->why),
				 "LOST UPDATE: %s is at version %" PRIu64 " after %" PRIu64,
				 ws[i].key, cur.version, ws[i].version);
			return;
		}
		versions[i] = cur.version;
	}
}

int measure(struct bench *b, struct backend *be, enum workload wl, int run, struct keys *k,
	    struct cell *c)
{
	int n = workloads[wl].threads, started = 0, rc = -1;
	enum kind kind = workloads[wl].kind;
	struct phase ph = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	const struct lat *lats[MAX_THREADS] = {0};
	struct worker *ws;
	uint64_t t0 = 0, wall;

	memset(c, 0, sizeof(*c));
	ws = calloc((size_t)n, sizeof(*ws));
	if (ws == NULL)
		return -1;
	for (int i = 0; i < n; i++) {
		struct worker *w = &ws[i];
		enum workload from = wl;

		w->ph = &ph;
		w->be = be;
		w->kind = kind;
		w->value = b->value;
		w->value_size = b->value_size;
		w->expect = NO_VERSION;
		if (kind == K_READ) {
			/* Reads go to the keys the cas workloads left behind. */
			from = wl == W_READ1 ? W_CAS1 : W_CAS32;
			w->expect = k->version[from][i];
		}
		snprintf(w->key, sizeof(w->key), "compare/%016" PRIx64 "/%d/%s/%d", b->id, run,
			 workloads[from].name, kind == K_CONTEND ? 0 : i);
		if (be->conn_open(be, i, &w->conn, c->why, sizeof(c->why)))
			goto out_close;
	}
	for (; started < n; started++) {
		if (pthread_create(&ws[started].thread, NULL, worker_main, &ws[started])) {
			snprintf(c->why, sizeof(c->why), "cannot start a thread");
			break;
		}
	}
	pthread_mutex_lock(&ph.lock);
	while (ph.ready < started)
		pthread_cond_wait(&ph.cond, &ph.lock);
	t0 = now_us();
	ph.end_us = started < n ? 0 : t0 + (uint64_t)b->seconds * 1000000u;
	ph.go = true;
	pthread_cond_broadcast(&ph.cond);
	pthread_mutex_unlock(&ph.lock);
	for (int i = 0; i < started; i++)
		pthread_join(ws[i].thread, NULL);
	if (started < n)
		goto out_close;
	wall = now_us() - t0;
	for (int i = 0; i < n; i++) {
		c->ok += ws[i].ok;
		c->conflicts += ws[i].conflicts;
		c->errors += ws[i].errors;
		if (ws[i].bad && !c->failed) {
			c->failed = true;
			snprintf(c->why, sizeof(c->why), "%s", ws[i].err);
		} else if (ws[i].errors && c->why[0] == '\0') {
			snprintf(c->why, sizeof(c->why), "%s", ws[i].err);
		}
	}
	for (int i = 0; i < n; i++)
		lats[i] = &ws[i].lat;
	if (percentiles(lats, n, c))
		goto out_close;
	c->rate = wall ? (double)c->ok * 1e6 / (double)wall : 0;
	if (!c->failed && kind == K_CONTEND)
		check_counter(ws, n, c);
	if (!c->failed && kind == K_CAS)
		check_keys(ws, n, c, k->version[wl]);
	c->done = true;
	rc = 0;
out_close:
	for (int i = 0; i < n; i++) {
		if (ws[i].conn)
			be->conn_close(ws[i].conn);
		free(ws[i].lat.v);
	}
	free(ws);
	return rc;
}

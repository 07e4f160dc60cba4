/* compare.c - the same CAS and read workloads against a casd cluster and an
 * etcd cluster, and file operations through a casfs mount: one table. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include <cas/client.h>

#include "codec.h" /* cas_base64_encode, cas_base64_decode */

#define MAX_THREADS   32
#define RUNS_MAX      9
#define KEY_LEN	      96
#define ERR_LEN	      256
#define OP_TIMEOUT_MS 10000
#define WARMUP_READS  3
#define NO_VERSION    UINT64_MAX

/* What one call of a backend ended in. */
enum outcome {
	DONE,	  /* the CAS was applied, or the read answered */
	CONFLICT, /* the CAS found another version: nothing written */
	FAILED,	  /* error or timeout: a CAS may or may not have been applied */
};

/* A register as a backend saw it. data is NUL-terminated, cut at cap. */
struct seen {
	uint64_t version;
	char data[64];
};

/* One system under test. A connection serves one thread. */
struct backend {
	const char *name;
	/* Opens the connection of worker thread idx. */
	int (*conn_open)(struct backend *be, int idx, void **conn, char *err, size_t err_len);
	void (*conn_close)(void *conn);
	/* Writes data to key if its version is still expected. DONE: *cur
	 * has the new version; CONFLICT: *cur has the current version and,
	 * when want_data, the current bytes. */
	enum outcome (*cas)(void *conn, const char *key, uint64_t expected, const void *data,
			    size_t len, bool want_data, struct seen *cur, char *err,
			    size_t err_len);
	/* Reads key linearizably into *cur (version 0: never written). */
	enum outcome (*read)(void *conn, const char *key, struct seen *cur, char *err,
			     size_t err_len);
	void *priv;
};

/* ---- casfs backend: the client library; by default one client shared by
 * all threads, as a mount shares its own. ---- */

struct casfs {
	struct cas_client *shared;
	const char *nodes;
	bool per_thread; /* a client (a proposer) per thread instead */
};

struct casfs_conn {
	struct cas_client *c;
	bool own;
};

static int casfs_conn_open(struct backend *be, int idx, void **conn, char *err, size_t err_len)
{
	struct cas_client_config cfg = {.timeout_ms = OP_TIMEOUT_MS};
	struct casfs *cf = be->priv;
	struct casfs_conn *cc = calloc(1, sizeof(*cc));

	(void)idx;
	if (cc == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	cc->c = cf->shared;
	if (cf->per_thread) {
		if (cas_client_open(cf->nodes, &cfg, &cc->c, err, err_len) != CAS_OK) {
			free(cc);
			return -1;
		}
		cc->own = true;
	}
	*conn = cc;
	return 0;
}

static void casfs_conn_close(void *conn)
{
	struct casfs_conn *cc = conn;

	if (cc->own)
		cas_client_close(cc->c);
	free(cc);
}

static void copy_seen(struct seen *cur, const struct cas_value *v)
{
	size_t n = v->len < sizeof(cur->data) - 1 ? v->len : sizeof(cur->data) - 1;

	cur->version = v->version;
	if (n)
		memcpy(cur->data, v->data, n);
	cur->data[n] = '\0';
}

struct cond_write {
	uint64_t expected;
	const void *data;
	size_t len;
};

/* cas_cas's change function, for when the caller wants the current bytes
 * back on a conflict: the same single round. */
static int cond_write_fn(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	const struct cond_write *w = arg;

	if (cur->version != w->expected)
		return CAS_EVERSION;
	next->len = w->len;
	next->data = malloc(w->len ? w->len : 1);
	if (next->data == NULL)
		return CAS_ENOMEM;
	memcpy(next->data, w->data, w->len);
	return CAS_OK;
}

static enum outcome casfs_cas(void *conn, const char *key, uint64_t expected, const void *data,
			      size_t len, bool want_data, struct seen *cur, char *err,
			      size_t err_len)
{
	struct cas_client *c = ((struct casfs_conn *)conn)->c;
	uint64_t version = 0;
	int rc;

	cur->data[0] = '\0';
	if (want_data) {
		struct cond_write w = {expected, data, len};
		struct cas_value v;

		rc = cas_change(c, key, cond_write_fn, &w, 0, &v);
		if (rc == CAS_OK || rc == CAS_EVERSION)
			copy_seen(cur, &v);
		cas_value_clear(&v);
	} else {
		rc = cas_cas(c, key, expected, data, len, 0, &version);
		cur->version = version;
	}
	if (rc == CAS_OK)
		return DONE;
	if (rc == CAS_EVERSION)
		return CONFLICT;
	snprintf(err, err_len, "%s", cas_strerror(rc));
	return FAILED;
}

static enum outcome casfs_read(void *conn, const char *key, struct seen *cur, char *err,
			       size_t err_len)
{
	struct cas_value v;
	int rc;

	rc = cas_read(((struct casfs_conn *)conn)->c, key, 0, &v);
	if (rc == CAS_OK)
		copy_seen(cur, &v);
	cas_value_clear(&v);
	if (rc == CAS_OK)
		return DONE;
	snprintf(err, err_len, "%s", cas_strerror(rc));
	return FAILED;
}

/* ---- etcd backend: the v3 JSON gateway over libcurl, one kept-alive easy
 * handle per thread. ---- */

struct etcd {
	char **urls; /* client URLs */
	size_t n;
	size_t leader; /* index in urls, or n when spreading threads */
};

struct etcd_conn {
	CURL *easy;
	struct curl_slist *headers;
	char txn_url[256];
	char range_url[256];
	char *req;
	size_t req_cap;
	char *resp;
	size_t resp_len, resp_cap;
	char curl_err[CURL_ERROR_SIZE];
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct etcd_conn *ec = arg;
	size_t len = size * n;

	if (ec->resp_len + len + 1 > ec->resp_cap) {
		size_t cap = (ec->resp_len + len + 1) * 2;
		char *r = realloc(ec->resp, cap);

		if (r == NULL)
			return 0; /* libcurl fails the transfer */
		ec->resp = r;
		ec->resp_cap = cap;
	}
	memcpy(ec->resp + ec->resp_len, p, len);
	ec->resp_len += len;
	ec->resp[ec->resp_len] = '\0';
	return len;
}

static void etcd_conn_close(void *conn)
{
	struct etcd_conn *ec = conn;

	if (ec == NULL)
		return;
	curl_easy_cleanup(ec->easy);
	curl_slist_free_all(ec->headers);
	free(ec->req);
	free(ec->resp);
	free(ec);
}

static int etcd_conn_open(struct backend *be, int idx, void **conn, char *err, size_t err_len)
{
	struct etcd *e = be->priv;
	const char *url = e->urls[e->leader < e->n ? e->leader : (size_t)idx % e->n];
	struct etcd_conn *ec = calloc(1, sizeof(*ec));

	if (ec == NULL)
		goto out_nomem;
	ec->easy = curl_easy_init();
	ec->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (ec->easy == NULL || ec->headers == NULL)
		goto out_close;
	snprintf(ec->txn_url, sizeof(ec->txn_url), "%s/v3/kv/txn", url);
	snprintf(ec->range_url, sizeof(ec->range_url), "%s/v3/kv/range", url);
	curl_easy_setopt(ec->easy, CURLOPT_HTTPHEADER, ec->headers);
	curl_easy_setopt(ec->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(ec->easy, CURLOPT_WRITEDATA, ec);
	curl_easy_setopt(ec->easy, CURLOPT_ERRORBUFFER, ec->curl_err);
	curl_easy_setopt(ec->easy, CURLOPT_TIMEOUT_MS, (long)OP_TIMEOUT_MS);
	curl_easy_setopt(ec->easy, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(ec->easy, CURLOPT_NOSIGNAL, 1L);
	*conn = ec;
	return 0;

out_close:
	etcd_conn_close(ec);
out_nomem:
	snprintf(err, err_len, "etcd: out of memory");
	return -1;
}

/* POSTs body to url; on HTTP 200 the parsed JSON answer, else NULL with a
 * reason in err. */
static cJSON *etcd_post(struct etcd_conn *ec, const char *url, const char *body, char *err,
			size_t err_len)
{
	long status = 0;
	CURLcode rc;
	cJSON *j;

	ec->resp_len = 0;
	ec->curl_err[0] = '\0';
	curl_easy_setopt(ec->easy, CURLOPT_URL, url);
	curl_easy_setopt(ec->easy, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(ec->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	rc = curl_easy_perform(ec->easy);
	if (rc != CURLE_OK) {
		snprintf(err, err_len, "etcd: %s",
			 ec->curl_err[0] ? ec->curl_err : curl_easy_strerror(rc));
		return NULL;
	}
	curl_easy_getinfo(ec->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		snprintf(err, err_len, "etcd: HTTP %ld: %.120s", status,
			 ec->resp_len ? ec->resp : "");
		return NULL;
	}
	j = cJSON_ParseWithLength(ec->resp_len ? ec->resp : "", ec->resp_len);
	if (j == NULL)
		snprintf(err, err_len, "etcd: answer is not JSON");
	return j;
}

/* A JSON int64 of etcd's gateway: a decimal string (or a number). */
static bool json_u64(const cJSON *j, uint64_t *out)
{
	char *end;

	if (cJSON_IsNumber(j) && j->valuedouble >= 0) {
		*out = (uint64_t)j->valuedouble;
		return true;
	}
	if (!cJSON_IsString(j) || j->valuestring[0] < '0' || j->valuestring[0] > '9')
		return false;
	errno = 0;
	*out = strtoull(j->valuestring, &end, 10);
	return errno == 0 && *end == '\0';
}

/* Fills cur from a range answer's "kvs" (absent: the key was never
 * written). */
static bool etcd_kvs(const cJSON *range, struct seen *cur, char *err, size_t err_len)
{
	const cJSON *kv = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(range, "kvs"), 0);
	const cJSON *val;
	unsigned char *bytes = NULL;
	size_t n = 0;

	cur->version = 0;
	cur->data[0] = '\0';
	if (kv == NULL)
		return true;
	if (!json_u64(cJSON_GetObjectItemCaseSensitive(kv, "version"), &cur->version)) {
		snprintf(err, err_len, "etcd: kv without a version");
		return false;
	}
	val = cJSON_GetObjectItemCaseSensitive(kv, "value");
	if (val == NULL)
		return true;
	if (!cJSON_IsString(val) ||
	    cas_base64_decode(val->valuestring, strlen(val->valuestring), &bytes, &n) != CAS_OK) {
		snprintf(err, err_len, "etcd: bad value");
		return false;
	}
	if (n > sizeof(cur->data) - 1)
		n = sizeof(cur->data) - 1;
	if (n)
		memcpy(cur->data, bytes, n);
	cur->data[n] = '\0';
	free(bytes);
	return true;
}

static bool reserve(struct etcd_conn *ec, size_t need)
{
	char *r;

	if (need <= ec->req_cap)
		return true;
	r = realloc(ec->req, need);
	if (r == NULL)
		return false;
	ec->req = r;
	ec->req_cap = need;
	return true;
}

/* CAS is a txn: compare the key's version, then put; on failure the same
 * txn reads the key, so a conflict costs one round trip like casfs's. */
static enum outcome etcd_cas(void *conn, const char *key, uint64_t expected, const void *data,
			     size_t len, bool want_data, struct seen *cur, char *err,
			     size_t err_len)
{
	static const char fmt[] =
		"{\"compare\":[{\"key\":\"%s\",\"result\":\"EQUAL\",\"target\":\"VERSION\","
		"\"version\":\"%" PRIu64 "\"}],"
		"\"success\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}],"
		"\"failure\":[{\"request_range\":{\"key\":\"%s\"}}]}";
	struct etcd_conn *ec = conn;
	enum outcome o = FAILED;
	char *k64 = NULL, *v64 = NULL;
	size_t klen, vlen;
	cJSON *j, *range;

	(void)want_data; /* the failure branch always returns the bytes */
	if (cas_base64_encode((const unsigned char *)key, strlen(key), &k64, &klen) != CAS_OK ||
	    cas_base64_encode(data, len, &v64, &vlen) != CAS_OK ||
	    !reserve(ec, sizeof(fmt) + 3 * klen + vlen + 24)) {
		snprintf(err, err_len, "etcd: out of memory");
		goto out_free;
	}
	snprintf(ec->req, ec->req_cap, fmt, k64, expected, k64, v64, k64);
	j = etcd_post(ec, ec->txn_url, ec->req, err, err_len);
	if (j == NULL)
		goto out_free;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "succeeded"))) {
		cur->version = expected + 1;
		cur->data[0] = '\0';
		o = DONE;
	} else {
		range = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "responses"), 0);
		range = cJSON_GetObjectItemCaseSensitive(range, "response_range");
		if (range == NULL)
			snprintf(err, err_len, "etcd: failed txn without its range");
		else if (etcd_kvs(range, cur, err, err_len))
			o = CONFLICT;
	}
	cJSON_Delete(j);
out_free:
	free(k64);
	free(v64);
	return o;
}

/* Read is a range on the key, linearizable (etcd's default). */
static enum outcome etcd_read(void *conn, const char *key, struct seen *cur, char *err,
			      size_t err_len)
{
	struct etcd_conn *ec = conn;
	enum outcome o = FAILED;
	char *k64 = NULL;
	size_t klen;
	cJSON *j;

	if (cas_base64_encode((const unsigned char *)key, strlen(key), &k64, &klen) != CAS_OK ||
	    !reserve(ec, klen + 16)) {
		snprintf(err, err_len, "etcd: out of memory");
		goto out_free;
	}
	snprintf(ec->req, ec->req_cap, "{\"key\":\"%s\"}", k64);
	j = etcd_post(ec, ec->range_url, ec->req, err, err_len);
	if (j == NULL)
		goto out_free;
	if (etcd_kvs(j, cur, err, err_len))
		o = DONE;
	cJSON_Delete(j);
out_free:
	free(k64);
	return o;
}

/* Finds the leader among e->urls (its maintenance status names it). */
static int etcd_find_leader(struct etcd *e, char *err, size_t err_len)
{
	struct backend be = {.priv = e};

	for (size_t i = 0; i < e->n; i++) {
		struct etcd_conn *ec;
		char url[300];
		uint64_t member, leader;
		cJSON *j, *h;
		bool found;

		e->leader = i;
		if (etcd_conn_open(&be, 0, (void **)&ec, err, err_len))
			return -1;
		snprintf(url, sizeof(url), "%s/v3/maintenance/status", e->urls[i]);
		j = etcd_post(ec, url, "{}", err, err_len);
		etcd_conn_close(ec);
		if (j == NULL)
			return -1;
		h = cJSON_GetObjectItemCaseSensitive(j, "header");
		found = json_u64(cJSON_GetObjectItemCaseSensitive(h, "member_id"), &member) &&
			json_u64(cJSON_GetObjectItemCaseSensitive(j, "leader"), &leader) &&
			member == leader;
		cJSON_Delete(j);
		if (found)
			return 0;
	}
	snprintf(err, err_len, "etcd: no endpoint is the leader");
	return -1;
}

/* ---- workloads ---- */

enum kind { K_CAS, K_CONTEND, K_READ };

enum workload { W_CAS1, W_CAS32, W_CONTEND8, W_READ1, W_READ32, W_COUNT };

static const struct {
	const char *name; /* in keys */
	const char *label;
	int threads;
	enum kind kind;
} workloads[W_COUNT] = {
	[W_CAS1] = {"cas1", "cas, 1 client", 1, K_CAS},
	[W_CAS32] = {"cas32", "cas, 32 clients, distinct keys", 32, K_CAS},
	[W_CONTEND8] = {"contend8", "cas, 8 clients, one key (ok/s)", 8, K_CONTEND},
	[W_READ1] = {"read1", "read, 1 client", 1, K_READ},
	[W_READ32] = {"read32", "read, 32 clients", 32, K_READ},
};

enum fs_workload { F_WRITE, F_READ, F_BASH, F_COUNT };

static const char *const fs_labels[F_COUNT] = {
	[F_WRITE] = "fs open-write-close (echo x > f)",
	[F_READ] = "fs open-read-close (cat f)",
	[F_BASH] = "fs bash 'echo x > f' loop (mean)",
};

/* One measurement. */
struct cell {
	bool done;   /* measured (not skipped) */
	bool failed; /* a correctness check failed: no figures */
	double p50, p99, rate;
	uint64_t ok, conflicts, errors;
	char why[ERR_LEN];
};

struct lat {
	uint32_t *v;
	size_t n, cap;
};

static bool lat_add(struct lat *l, uint64_t us)
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

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* What a run learned about its keys, for the read workloads to check. */
struct keys {
	uint64_t version[W_COUNT][MAX_THREADS]; /* per cas workload; NO_VERSION: unknown */
};

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

/* p50 and p99 of the latencies of ws[0..n). */
static int percentiles(struct worker *ws, int n, struct cell *out)
{
	size_t total = 0, at = 0;
	uint32_t *all;

	for (int i = 0; i < n; i++)
		total += ws[i].lat.n;
	if (total == 0)
		return 0;
	all = malloc(total * sizeof(*all));
	if (all == NULL)
		return -1;
	for (int i = 0; i < n; i++) {
		memcpy(all + at, ws[i].lat.v, ws[i].lat.n * sizeof(*all));
		at += ws[i].lat.n;
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

struct bench {
	uint64_t id; /* random, in every key */
	unsigned seconds;
	size_t value_size;
	char *value;
	const char *mount;
};

/* Runs workload wl on be for b->seconds; the figures go to *c. */
static int measure(struct bench *b, struct backend *be, enum workload wl, int run, struct keys *k,
		   struct cell *c)
{
	int n = workloads[wl].threads, started = 0, rc = -1;
	enum kind kind = workloads[wl].kind;
	struct phase ph = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
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
	if (percentiles(ws, n, c))
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

/* ---- filesystem workloads through the mount ---- */

static int write_file(const char *path, int flags)
{
	int fd = open(path, O_WRONLY | flags, 0644);
	int rc = 0;

	if (fd < 0)
		return -1;
	if (write(fd, "x\n", 2) != 2)
		rc = -1;
	if (close(fd))
		rc = -1;
	return rc;
}

static int read_file(const char *path)
{
	char buf[64];
	size_t got = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY);
	int rc = 0;

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf + got, sizeof(buf) - got)) > 0)
		got += (size_t)n;
	if (n < 0) {
		rc = -1;
	} else if (got != 2 || memcmp(buf, "x\n", 2)) {
		errno = EBADMSG; /* not what was written */
		rc = -1;
	}
	if (close(fd))
		rc = -1;
	return rc;
}

/* Runs bash's own `echo x > f` n times; the wall time in *us. */
static int bash_loop(const char *path, unsigned long n, uint64_t *us)
{
	static const char script[] =
		"f=$1; n=$2; for ((i = 0; i < n; i++)); do echo x > \"$f\" || exit 1; done";
	char count[24];
	int status;
	uint64_t t0;
	pid_t pid;

	snprintf(count, sizeof(count), "%lu", n);
	t0 = now_us();
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		execlp("bash", "bash", "-c", script, "bash", path, count, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		return -1;
	*us = now_us() - t0;
	return 0;
}

static int measure_fs(struct bench *b, enum fs_workload f, int run, double write_rate,
		      struct cell *c)
{
	struct worker w;
	char path[4096];
	uint64_t t0, end, wall;
	int rc = 0;

	memset(c, 0, sizeof(*c));
	memset(&w, 0, sizeof(w));
	snprintf(path, sizeof(path), "%s/compare-%016" PRIx64 "-%d", b->mount, b->id, run);
	if (f == F_WRITE && write_file(path, O_CREAT | O_TRUNC)) {
		snprintf(c->why, sizeof(c->why), "cannot create %.160s: %s", path, strerror(errno));
		return -1;
	}
	if (f == F_BASH) {
		/* About as long as the C loop ran. */
		unsigned long n = (unsigned long)(write_rate * b->seconds);

		if (n < 20)
			n = 20;
		if (bash_loop(path, n, &wall)) {
			snprintf(c->why, sizeof(c->why), "bash 'echo x > %.160s' failed", path);
			return -1;
		}
		c->ok = n;
		c->p50 = (double)wall / (double)n;
		c->p99 = -1;
		c->rate = (double)n * 1e6 / (double)wall;
		c->done = true;
		if (read_file(path)) {
			c->failed = true;
			snprintf(c->why, sizeof(c->why), "%.160s after the bash loop: %s", path,
				 strerror(errno));
			return -1;
		}
		return 0;
	}
	t0 = now_us();
	end = t0 + (uint64_t)b->seconds * 1000000u;
	while (now_us() < end) {
		uint64_t s = now_us();

		rc = f == F_WRITE ? write_file(path, O_TRUNC) : read_file(path);
		if (!lat_add(&w.lat, now_us() - s) || rc) {
			/* A read of other bytes than written refuses the row. */
			c->done = c->failed = errno == EBADMSG;
			snprintf(c->why, sizeof(c->why), "%s %.160s: %s",
				 f == F_WRITE ? "write" : "read", path, strerror(errno));
			free(w.lat.v);
			return -1;
		}
		w.ok++;
	}
	wall = now_us() - t0;
	c->ok = w.ok;
	c->rate = (double)w.ok * 1e6 / (double)wall;
	rc = percentiles(&w, 1, c);
	free(w.lat.v);
	c->done = rc == 0;
	return rc;
}

/* ---- the table ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The per-figure median of runs cells into *m; failed if any run failed. */
static void median(const struct cell *cells, int runs, struct cell *m)
{
	double p50[RUNS_MAX], p99[RUNS_MAX], rate[RUNS_MAX];
	int n = 0;

	memset(m, 0, sizeof(*m));
	for (int r = 0; r < runs; r++) {
		const struct cell *c = &cells[r];

		if (!c->done)
			continue;
		if (c->failed) {
			m->failed = true;
			snprintf(m->why, sizeof(m->why), "%s", c->why);
		}
		if (c->errors && m->why[0] == '\0')
			snprintf(m->why, sizeof(m->why), "%s", c->why);
		m->ok += c->ok;
		m->conflicts += c->conflicts;
		m->errors += c->errors;
		p50[n] = c->p50;
		p99[n] = c->p99;
		rate[n] = c->rate;
		n++;
	}
	if (n == 0)
		return;
	qsort(p50, (size_t)n, sizeof(double), cmp_double);
	qsort(p99, (size_t)n, sizeof(double), cmp_double);
	qsort(rate, (size_t)n, sizeof(double), cmp_double);
	m->p50 = n % 2 ? p50[n / 2] : (p50[n / 2 - 1] + p50[n / 2]) / 2;
	m->p99 = n % 2 ? p99[n / 2] : (p99[n / 2 - 1] + p99[n / 2]) / 2;
	m->rate = n % 2 ? rate[n / 2] : (rate[n / 2 - 1] + rate[n / 2]) / 2;
	m->done = true;
}

/* Three columns: p50 and p99 in µs, ops per second. */
static void print_figures(const struct cell *c)
{
	if (!c->done)
		printf(" %8s %8s %9s", "-", "-", "-");
	else if (c->failed)
		printf(" %-27s", "  REFUSED (see below)");
	else if (c->p99 < 0)
		printf(" %8.0f %8s %9.0f", c->p50, "-", c->rate);
	else
		printf(" %8.0f %8.0f %9.0f", c->p50, c->p99, c->rate);
}

static bool usable(const struct cell *c)
{
	return c->done && !c->failed && c->p50 > 0 && c->rate > 0;
}

static void print_row(const char *label, const struct cell *a, const struct cell *e,
		      const char *ratio_note)
{
	printf("%-34s", label);
	print_figures(a);
	printf(" |");
	print_figures(e);
	if (usable(a) && usable(e))
		printf(" | %7.2f %7.2f%s\n", a->p50 / e->p50, a->rate / e->rate, ratio_note);
	else
		printf(" | %7s %7s\n", "-", "-");
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: compare --casd URL,... [--etcd URL,...] [--mount DIR] [--seconds S]\n"
		"               [--runs N] [--value-size BYTES] [--etcd-spread] "
		"[--client-per-thread]\n"
		"  --casd        casd acceptor URLs (the casfs backend)\n"
		"  --etcd        etcd client URLs (the etcd backend; without it, casfs alone)\n"
		"  --mount       a casfs mount of the same casd cluster, for the fs rows\n"
		"  --seconds     length of each measurement (default 3)\n"
		"  --runs        measurements of each figure; the table shows medians (default 3)\n"
		"  --value-size  bytes each cas writes (default 100)\n"
		"  --etcd-spread spread etcd threads over all endpoints (default: all to the\n"
		"                leader, etcd's best case)\n"
		"  --client-per-thread  a casfs client (proposer) per thread (default: one\n"
		"                shared, as in a mount)\n");
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno == 0 && *end == '\0' && *out <= max;
}

/* Splits a comma-separated list into e->urls. */
static int split_urls(const char *list, struct etcd *e)
{
	char *copy = strdup(list), *save = NULL, *tok;

	if (copy == NULL)
		return -1;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char **u = realloc(e->urls, (e->n + 1) * sizeof(*u));

		if (u == NULL)
			break;
		e->urls = u;
		e->urls[e->n] = strdup(tok);
		if (e->urls[e->n] == NULL)
			break;
		e->n++;
	}
	free(copy);
	return tok == NULL && e->n > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"casd", required_argument, NULL, 'c'},
		{"etcd", required_argument, NULL, 'e'},
		{"mount", required_argument, NULL, 'm'},
		{"seconds", required_argument, NULL, 's'},
		{"runs", required_argument, NULL, 'r'},
		{"value-size", required_argument, NULL, 'v'},
		{"etcd-spread", no_argument, NULL, 'S'},
		{"client-per-thread", no_argument, NULL, 'P'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct bench b = {.seconds = 3, .value_size = 100};
	struct cas_client_config cfg = {.timeout_ms = OP_TIMEOUT_MS};
	struct backend backends[2] = {
		{"casfs", casfs_conn_open, casfs_conn_close, casfs_cas, casfs_read, NULL},
		{"etcd", etcd_conn_open, etcd_conn_close, etcd_cas, etcd_read, NULL},
	};
	static struct cell cells[2][W_COUNT][RUNS_MAX], fs_cells[F_COUNT][RUNS_MAX];
	struct cell med[2][W_COUNT], fs_med[F_COUNT];
	const char *casd = NULL, *etcd_urls = NULL;
	struct etcd e = {0};
	struct casfs cf = {0};
	struct cas_client *client;
	bool spread = false, refused = false;
	unsigned long v, runs = 3;
	char err[ERR_LEN];
	int opt, nb, rc = 1;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			casd = optarg;
			break;
		case 'e':
			etcd_urls = optarg;
			break;
		case 'm':
			b.mount = optarg;
			break;
		case 's':
			if (!parse_uint(optarg, 600, &v) || v == 0)
				goto out_usage;
			b.seconds = (unsigned)v;
			break;
		case 'r':
			if (!parse_uint(optarg, RUNS_MAX, &runs) || runs == 0)
				goto out_usage;
			break;
		case 'v':
			if (!parse_uint(optarg, 65536, &v))
				goto out_usage;
			b.value_size = v;
			break;
		case 'S':
			spread = true;
			break;
		case 'P':
			cf.per_thread = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto out_usage;
		}
	}
	if (optind != argc || casd == NULL)
		goto out_usage;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (getrandom(&b.id, sizeof(b.id), 0) != (ssize_t)sizeof(b.id))
		b.id = (uint64_t)time(NULL);
	b.value = malloc(b.value_size + 1);
	if (b.value == NULL) {
		fprintf(stderr, "compare: out of memory\n");
		return 1;
	}
	memset(b.value, 'x', b.value_size);
	if (cas_client_open(casd, &cfg, &client, err, sizeof(err)) != CAS_OK) {
		fprintf(stderr, "compare: casd: %s\n", err);
		goto out_free_value;
	}
	cf.shared = client;
	cf.nodes = casd;
	backends[0].priv = &cf;
	nb = 1;
	if (etcd_urls) {
		if (split_urls(etcd_urls, &e)) {
			fprintf(stderr, "compare: bad --etcd list\n");
			goto out_close_client;
		}
		if (etcd_find_leader(&e, err, sizeof(err))) {
			fprintf(stderr, "compare: %s\n", err);
			goto out_free_etcd;
		}
		if (spread)
			e.leader = e.n;
		backends[1].priv = &e;
		nb = 2;
	}

	printf("compare: casfs on %zu casd nodes (%s)", cas_client_nodes(client),
	       cf.per_thread ? "a client per thread" : "one client for all threads");
	if (nb == 2)
		printf(" vs etcd on %zu nodes (threads to %s)", e.n,
		       spread ? "all endpoints" : "the leader");
	printf("; %lu run(s) of %u s per figure, medians; %zu-byte values\n", runs, b.seconds,
	       b.value_size);
	fflush(stdout);

	for (int r = 0; r < (int)runs; r++) {
		struct keys keys[2];
		double write_rate = 0;

		for (int i = 0; i < 2; i++)
			for (int wl = 0; wl < W_COUNT; wl++)
				for (int t = 0; t < MAX_THREADS; t++)
					keys[i].version[wl][t] = NO_VERSION;

		/* Backends take turns on each workload, so that load from
		 * elsewhere on the machine falls on both alike. */
		for (int wl = 0; wl < W_COUNT; wl++) {
			for (int i = 0; i < nb; i++) {
				struct cell *c = &cells[i][wl][r];

				if (measure(&b, &backends[i], (enum workload)wl, r, &keys[i], c))
					fprintf(stderr, "compare: %s %s: %s\n", backends[i].name,
						workloads[wl].label, c->why);
				else if (c->failed)
					fprintf(stderr, "compare: %s %s: %s\n", backends[i].name,
						workloads[wl].label, c->why);
			}
		}
		if (b.mount == NULL)
			continue;
		for (int f = 0; f < F_COUNT; f++) {
			struct cell *c = &fs_cells[f][r];

			if (measure_fs(&b, (enum fs_workload)f, r, write_rate, c))
				fprintf(stderr, "compare: %s: %s\n", fs_labels[f], c->why);
			if (f == F_WRITE)
				write_rate = c->rate;
		}
	}

	for (int i = 0; i < 2; i++)
		for (int wl = 0; wl < W_COUNT; wl++)
			median(cells[i][wl], (int)runs, &med[i][wl]);
	for (int f = 0; f < F_COUNT; f++)
		median(fs_cells[f], (int)runs, &fs_med[f]);

	printf("\n%-34s %-27s | %-27s | %s\n", "", "casfs", nb == 2 ? "etcd" : "", "casfs/etcd");
	printf("%-34s %8s %8s %9s | %8s %8s %9s | %7s %7s\n", "workload", "p50_us", "p99_us",
	       "ops_per_s", "p50_us", "p99_us", "ops_per_s", "latency", "tput");
	for (int wl = 0; wl < W_COUNT; wl++)
		print_row(workloads[wl].label, &med[0][wl], &med[1][wl], "");
	if (b.mount) {
		printf("%-34s %-27s | %-27s | %s\n", "", "casfs mount", "raw casfs client (above)",
		       "mount/raw");
		print_row(fs_labels[F_WRITE], &fs_med[F_WRITE], &med[0][W_CAS1], "  vs cas, 1");
		print_row(fs_labels[F_READ], &fs_med[F_READ], &med[0][W_READ1], "  vs read, 1");
		print_row(fs_labels[F_BASH], &fs_med[F_BASH], &med[0][W_CAS1], "  vs cas, 1");
	}

	printf("\n");
	for (int i = 0; i < nb; i++) {
		const struct cell *c = &med[i][W_CONTEND8];

		if (c->done)
			printf("contention, %s: %" PRIu64 " increments, %" PRIu64
			       " conflicts, %" PRIu64 " unknown outcomes over %lu run(s); %s\n",
			       backends[i].name, c->ok, c->conflicts, c->errors, runs,
			       c->failed ? "COUNTER WRONG" : "counter exact");
	}
	for (int i = 0; i < nb; i++) {
		for (int wl = 0; wl < W_COUNT; wl++) {
			const struct cell *c = &med[i][wl];

			if (c->failed)
				refused = true;
			if (c->failed || c->errors)
				printf("%s %s: %" PRIu64 " errors; %s%s\n", backends[i].name,
				       workloads[wl].label, c->errors,
				       c->failed ? "figures refused: " : "first: ", c->why);
		}
	}
	for (int f = 0; f < F_COUNT; f++) {
		if (fs_med[f].failed) {
			refused = true;
			printf("%s: figures refused: %s\n", fs_labels[f], fs_med[f].why);
		}
	}

	printf("\ntargets:\n");
	if (nb == 2 && usable(&med[0][W_CAS1]) && usable(&med[1][W_CAS1])) {
		double r1 = med[0][W_CAS1].p50 / med[1][W_CAS1].p50;

		printf("  sequential cas latency <= 1/4 of etcd's: %.2f (%.0f vs %.0f us): %s\n",
		       r1, med[0][W_CAS1].p50, med[1][W_CAS1].p50, r1 <= 0.25 ? "met" : "NOT met");
	}
	if (nb == 2 && usable(&med[0][W_CAS32]) && usable(&med[1][W_CAS32])) {
		double r2 = med[0][W_CAS32].rate / med[1][W_CAS32].rate;

		printf("  32-client cas throughput >= 3x etcd's: %.2fx (%.0f vs %.0f/s): %s\n", r2,
		       med[0][W_CAS32].rate, med[1][W_CAS32].rate, r2 >= 3 ? "met" : "NOT met");
	}
	if (usable(&fs_med[F_WRITE]) && usable(&med[0][W_CAS1])) {
		double r3 = fs_med[F_WRITE].p50 / med[0][W_CAS1].p50;

		printf("  echo x > f through the mount <= 2x a raw cas: %.2fx (%.0f vs %.0f us):"
		       " %s\n",
		       r3, fs_med[F_WRITE].p50, med[0][W_CAS1].p50, r3 <= 2 ? "met" : "NOT met");
	}
	rc = refused ? 1 : 0;
	if (refused)
		printf("\ncompare: a correctness check failed; its figures are refused\n");

out_free_etcd:
	for (size_t i = 0; i < e.n; i++)
		free(e.urls[i]);
	free(e.urls);
out_close_client:
	cas_client_close(client);
out_free_value:
	free(b.value);
	curl_global_cleanup();
	return rc;

out_usage:
	usage(stderr);
	return 2;
}

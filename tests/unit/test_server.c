/* test_server.c - unit tests of casd's HTTP front against a real server,
 * store and identity, for what a shell test cannot reach: a store failure
 * of some batch items, a client that leaves while its batch waits in the
 * store, a stop that waits for a suspended batch, what /v1/health says of
 * a store that takes no changes; and identity (PROTOCOL.md, "Cluster
 * identity and membership"): an uninitialized node's refusals, joins,
 * configuration changes by epoch, the identity headers checked on every
 * route, a failed write of the identity, and GET /v1/keys paging. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "batch.h"
#include "codec_bin.h"
#include "http.h"
#include "identity.h"
#include "store.h"

/* The cluster the fixture's node is joined to, and its node id. */
#define CLUSTER	      "00112233445566778899aabbccddeeff"
#define OTHER_CLUSTER "ffeeddccbbaa99887766554433221100"
#define NODE	      "0123456789abcdef"

struct fixture {
	char dir[4096];
	struct cas_store *store;
	struct cas_identity *identity;
	struct cas_server *server;
	/* The identity headers requests carry: Cas-Cluster, Cas-Epoch (NULL:
	 * none). */
	const char *cluster;
	const char *epoch;
};

/* The fixture's node: a server on a fresh store and identity; with
 * unidentified, cas_server_config.admit_unidentified. */
static struct fixture *start(bool unidentified)
{
	struct cas_server_config cfg = {.host = "127.0.0.1", .threads = 2};
	struct fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	char errmsg[256];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/cas-test-server.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(cas_store_open(f->dir, NULL, &f->store, errmsg, sizeof(errmsg)), CAS_OK);
	assert_int_equal(cas_identity_open(f->dir, &f->identity, errmsg, sizeof(errmsg)), CAS_OK);
	cfg.identity = f->identity;
	cfg.admit_unidentified = unidentified;
	assert_int_equal(cas_server_start(f->store, &cfg, &f->server, errmsg, sizeof(errmsg)),
			 CAS_OK);
	return f;
}

/* A configuration of CLUSTER at epoch with members NODE and the ids
 * others (space-separated 16-hex ids, may be ""), in JSON. */
static char *config_json(const char *cluster, unsigned epoch, const char *others)
{
	static char buf[4][2048];
	static unsigned next;
	char *out = buf[next++ % 4];
	char id[17];
	int n, port = 2;

	n = snprintf(out, 2048,
		     "{\"cluster\":\"%s\",\"epoch\":\"%u\",\"members\":[{\"id\":\"" NODE
		     "\",\"url\":\"http://127.0.0.1:1\"}",
		     cluster, epoch);
	while (sscanf(others, "%16s", id) == 1) {
		n += snprintf(out + n, 2048 - (size_t)n,
			      ",{\"id\":\"%s\",\"url\":\"http://127.0.0.1:%d\"}", id, port++);
		others += strlen(id);
		while (*others == ' ')
			others++;
	}
	snprintf(out + n, 2048 - (size_t)n, "]}");
	return out;
}

/* An uninitialized node; its requests carry the headers of CLUSTER at
 * epoch 1 all the same. */
static int setup_bare(void **state)
{
	struct fixture *f = start(false);

	f->cluster = CLUSTER;
	f->epoch = "1";
	*state = f;
	return 0;
}

/* A node joined as NODE to CLUSTER at epoch 1 (members NODE and one
 * other), whose requests carry the headers that match. */
static int setup(void **state)
{
	struct fixture *f = start(false);
	struct cas_config cfg;
	char errmsg[256];
	cJSON *j;
	bool changed;

	j = cJSON_Parse(config_json(CLUSTER, 1, "00000000000000b2"));
	assert_non_null(j);
	assert_int_equal(cas_config_from_json(j, &cfg, errmsg, sizeof(errmsg)), CAS_OK);
	cJSON_Delete(j);
	assert_int_equal(
		cas_identity_join(f->identity, NODE, &cfg, &changed, errmsg, sizeof(errmsg)),
		CAS_OK);
	assert_true(changed);
	f->cluster = CLUSTER;
	f->epoch = "1";
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"data.mdb", "lock.mdb", "wal", CAS_IDENTITY_FILE};
	char path[4200];
	size_t i;

	cas_server_stop(f->server);
	cas_store_close(f->store);
	cas_identity_close(f->identity);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", f->dir, names[i]);
		unlink(path);
	}
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

/* A batch body being built. */
struct body {
	unsigned char buf[4096];
	size_t len;
};

static void add_raw(struct body *b, const void *item, size_t len)
{
	assert_true(b->len + 4 + len <= sizeof(b->buf));
	b->buf[b->len++] = len & 0xff;
	b->buf[b->len++] = (len >> 8) & 0xff;
	b->buf[b->len++] = (len >> 16) & 0xff;
	b->buf[b->len++] = (len >> 24) & 0xff;
	memcpy(b->buf + b->len, item, len);
	b->len += len;
}

static void add_msg(struct body *b, enum cas_msg_type type, const char *key, uint64_t counter)
{
	struct cas_msg m = {.type = type, .ballot = {counter, 1}};
	unsigned char *bin;
	size_t len;

	strcpy(m.key, key);
	assert_int_equal(cas_codec_bin_encode(&m, &bin, &len), CAS_OK);
	add_raw(b, bin, len);
	free(bin);
}

/* An HTTP exchange, run on its own thread when the store is held. */
struct post {
	const struct fixture *f; /* its identity headers */
	uint16_t port;
	const struct body *body;
	long timeout_ms;
	CURLcode rc;
	long status;
	unsigned char out[8192];
	size_t out_len;
	atomic_bool finished;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct post *po = arg;

	if (size * n > sizeof(po->out) - po->out_len)
		return 0;
	memcpy(po->out + po->out_len, p, size * n);
	po->out_len += size * n;
	return size * n;
}

/* hdrs with f's identity headers added. */
static struct curl_slist *identity_headers(const struct fixture *f, struct curl_slist *hdrs)
{
	char line[128];

	if (f && f->cluster) {
		snprintf(line, sizeof(line), "Cas-Cluster: %s", f->cluster);
		hdrs = curl_slist_append(hdrs, line);
	}
	if (f && f->epoch) {
		/* "Name;" is how curl sends a header with an empty value. */
		snprintf(line, sizeof(line), f->epoch[0] ? "Cas-Epoch: %s" : "Cas-Epoch;%s",
			 f->epoch);
		hdrs = curl_slist_append(hdrs, line);
	}
	return hdrs;
}

static void *run_post(void *arg)
{
	struct post *po = arg;
	struct curl_slist *hdrs;
	char url[64];
	CURL *c;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/batch", (unsigned)po->port);
	c = curl_easy_init();
	hdrs = curl_slist_append(NULL, "Content-Type: " CAS_CODEC_BIN_TYPE);
	hdrs = identity_headers(po->f, hdrs);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)po->body->buf);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)po->body->len);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, po->timeout_ms);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, po);
	po->rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &po->status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	atomic_store(&po->finished, true);
	return NULL;
}

/* Splits po's answer into its entries; returns how many. */
static size_t entries(const struct post *po, struct cas_batch_entry *e, size_t max)
{
	size_t off = 0, n = 0, len;
	const unsigned char *p = po->out;

	while (off < po->out_len) {
		assert_true(n < max);
		assert_true(po->out_len - off >= 5);
		len = p[off + 1] | p[off + 2] << 8 | p[off + 3] << 16 | (size_t)p[off + 4] << 24;
		assert_true(po->out_len - off - 5 >= len);
		e[n].status = p[off];
		e[n].data = p + off + 5;
		e[n].len = len;
		off += 5 + len;
		n++;
	}
	return n;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* Waits (up to 10 s) until n requests wait in the held store. */
static void wait_queued(struct cas_store *s, size_t n)
{
	int i;

	for (i = 0; i < 1000 && cas_store_waiting(s) < n; i++)
		sleep_ms(10);
	assert_int_equal(cas_store_waiting(s), n);
}

static int fail_boom(void *arg, const struct cas_msg *req)
{
	(void)arg;
	return strcmp(req->key, "boom") == 0;
}

static uint64_t promised(struct cas_store *s, const char *key)
{
	struct cas_acceptor_state st;
	char errmsg[256];

	assert_int_equal(cas_store_get(s, key, &st, errmsg, sizeof(errmsg)), CAS_OK);
	free(st.value.data);
	return st.promise.counter;
}

/* A failed store write fails its changing items (FAILED, with a reason);
 * a query and a malformed item of the same batch have their own outcome. */
static void test_store_failure_per_item(void **state)
{
	struct fixture *f = *state;
	struct post po = {.f = f, .port = cas_server_port(f->server), .timeout_ms = 10000};
	struct cas_batch_entry e[8];
	struct body b = {0};
	struct cas_msg reply;
	char errmsg[256];
	pthread_t t;

	add_msg(&b, CAS_MSG_PREPARE, "boom", 3);
	add_msg(&b, CAS_MSG_QUERY, "k", 0);
	add_raw(&b, "\xc1\x09", 2);
	add_msg(&b, CAS_MSG_PREPARE, "fine", 3);
	po.body = &b;
	cas_store_set_fault(f->store, fail_boom, NULL);
	/* Held, so that both prepares are one store batch, which fails. */
	cas_store_hold(f->store, true);
	assert_int_equal(pthread_create(&t, NULL, run_post, &po), 0);
	wait_queued(f->store, 2);
	cas_store_hold(f->store, false);
	pthread_join(t, NULL);
	cas_store_set_fault(f->store, NULL, NULL);

	assert_int_equal(po.rc, CURLE_OK);
	assert_int_equal(po.status, 200);
	assert_int_equal(entries(&po, e, 8), 4);
	/* The store's reason, as a single request's 500 would have it. */
	assert_int_equal(e[0].status, CAS_BATCH_FAILED);
	assert_int_equal(e[0].len, strlen("store: injected commit failure"));
	assert_memory_equal(e[0].data, "store: injected commit failure", e[0].len);
	assert_int_equal(e[1].status, CAS_BATCH_OK);
	assert_int_equal(cas_codec_bin_decode_reply(e[1].data, e[1].len, 1024, &reply, errmsg,
						    sizeof(errmsg)),
			 CAS_OK);
	assert_int_equal(reply.type, CAS_MSG_CURRENT);
	cas_msg_clear(&reply);
	assert_int_equal(e[2].status, CAS_BATCH_BAD);
	assert_int_equal(e[3].status, CAS_BATCH_FAILED);
	assert_memory_equal(e[3].data, "store: injected commit failure", e[3].len);
	assert_int_equal(promised(f->store, "boom"), 0);
	assert_int_equal(promised(f->store, "fine"), 0);
}

/* A client that gives up while its batch waits in the store: the store's
 * done callbacks still find their batch, which is freed after (ASan and
 * valgrind check), and the server stops. */
static void test_client_gone_while_stored(void **state)
{
	struct fixture *f = *state;
	struct post po = {.f = f, .port = cas_server_port(f->server), .timeout_ms = 300};
	struct body b = {0};
	pthread_t t;
	int i;

	add_msg(&b, CAS_MSG_PREPARE, "a", 1);
	add_msg(&b, CAS_MSG_PREPARE, "b", 1);
	add_msg(&b, CAS_MSG_QUERY, "a", 0);
	add_msg(&b, CAS_MSG_PREPARE, "c", 1);
	po.body = &b;
	cas_store_hold(f->store, true);
	assert_int_equal(pthread_create(&t, NULL, run_post, &po), 0);
	wait_queued(f->store, 3);
	pthread_join(t, NULL);
	assert_int_equal(po.rc, CURLE_OPERATION_TIMEDOUT);
	cas_store_hold(f->store, false);
	for (i = 0; i < 1000 && promised(f->store, "c") != 1; i++)
		sleep_ms(10);
	assert_int_equal(promised(f->store, "a"), 1);
	assert_int_equal(promised(f->store, "c"), 1);
}

struct stopper {
	struct cas_server *server;
	atomic_bool done;
};

static void *run_stop(void *arg)
{
	struct stopper *st = arg;

	cas_server_stop(st->server);
	atomic_store(&st->done, true);
	return NULL;
}

/* cas_server_stop waits for a suspended batch, however many changing
 * items it has, and returns once the store is done with them. */
static void test_stop_waits_for_batch(void **state)
{
	struct fixture *f = *state;
	struct post po = {.f = f, .port = cas_server_port(f->server), .timeout_ms = 10000};
	struct stopper st = {.server = f->server};
	struct body b = {0};
	pthread_t t, ts;

	add_msg(&b, CAS_MSG_PREPARE, "x", 1);
	add_msg(&b, CAS_MSG_PREPARE, "y", 1);
	add_msg(&b, CAS_MSG_PREPARE, "z", 1);
	po.body = &b;
	cas_store_hold(f->store, true);
	assert_int_equal(pthread_create(&t, NULL, run_post, &po), 0);
	wait_queued(f->store, 3);
	assert_int_equal(pthread_create(&ts, NULL, run_stop, &st), 0);
	sleep_ms(300);
	assert_false(atomic_load(&st.done));
	cas_store_hold(f->store, false);
	pthread_join(ts, NULL);
	pthread_join(t, NULL);
	f->server = NULL; /* stopped */
	assert_int_equal(promised(f->store, "z"), 1);
}

/* One request of f's on a fresh connection: POST json to path, or GET
 * when json is NULL, with f's identity headers; the status into *status,
 * the body into out (a string). */
static void exchange(const struct fixture *f, const char *path, const char *json, long *status,
		     struct post *out)
{
	struct curl_slist *hdrs;
	char url[512];
	CURL *c;

	memset(out, 0, sizeof(*out));
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)cas_server_port(f->server),
		 path);
	c = curl_easy_init();
	assert_non_null(c);
	hdrs = identity_headers(f, NULL);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	if (json)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	assert_true(out->out_len < sizeof(out->out));
	out->out[out->out_len] = '\0';
}

/* After a failed sync of the log, writes fail with the reason, queries
 * go on, and /v1/health answers 503 saying why. */
static void test_health_after_sync_failure(void **state)
{
	struct fixture *f = *state;
	const char *prepare = "{\"key\":\"k\",\"ballot\":{\"counter\":\"5\",\"id\":\"1\"}}";
	struct post out;
	long status;

	exchange(f, "/v1/health", NULL, &status, &out);
	assert_int_equal(status, 200);
	assert_non_null(strstr((char *)out.out, "\"status\":\"ok\""));

	cas_store_fail_log_syncs(f->store, 1);
	exchange(f, "/v1/prepare", prepare, &status, &out);
	assert_int_equal(status, 500);
	assert_non_null(strstr((char *)out.out, "write-ahead log"));
	/* The disk would take it now; the node does not. */
	exchange(f, "/v1/prepare", prepare, &status, &out);
	assert_int_equal(status, 500);
	assert_non_null(strstr((char *)out.out, "restart"));
	exchange(f, "/v1/query", "{\"key\":\"k\"}", &status, &out);
	assert_int_equal(status, 200);

	exchange(f, "/v1/health", NULL, &status, &out);
	print_message("(%s)\n", (char *)out.out);
	assert_int_equal(status, 503);
	assert_non_null(strstr((char *)out.out, "\"status\":\"degraded\""));
	assert_non_null(strstr((char *)out.out, "\"reason\":\"store: write-ahead log:"));
	assert_int_equal(promised(f->store, "k"), 0);
}

/* Sends what exchange does and checks the status, and that the body
 * holds want (NULL: anything); returns the body (valid until the next
 * call). */
static const char *expect(const struct fixture *f, const char *path, const char *json,
			  long want_status, const char *want)
{
	static struct post out;
	long status;

	exchange(f, path, json, &status, &out);
	if (status != want_status || (want && !strstr((char *)out.out, want)))
		fail_msg("%s %s: %ld %s, want %ld with %s", json ? "POST" : "GET", path, status,
			 (char *)out.out, want_status, want ? want : "anything");
	return (char *)out.out;
}

/* A batch of one PREPARE of key at counter, as f sends it: its status. */
static long batch_status(struct fixture *f, const char *key, uint64_t counter)
{
	struct post po = {.f = f, .port = cas_server_port(f->server), .timeout_ms = 10000};
	struct body b = {0};

	add_msg(&b, CAS_MSG_PREPARE, key, counter);
	po.body = &b;
	run_post(&po);
	assert_int_equal(po.rc, CURLE_OK);
	return po.status;
}

static const char prepare_k[] = "{\"key\":\"k\",\"ballot\":{\"counter\":\"5\",\"id\":\"1\"}}";
static const char accept_k[] = "{\"key\":\"k\",\"ballot\":{\"counter\":\"5\",\"id\":\"1\"},"
			       "\"value\":{\"version\":\"1\",\"recent\":[],\"data\":\"aGVsbG8=\"}}";
static const char query_k[] = "{\"key\":\"k\"}";
static const char uninitialized[] =
	"{\"error\":\"node is not initialized\",\"status\":\"uninitialized\"}";

/* Every route that carries the identity headers answers status with
 * want in its body, and changes nothing. */
static void expect_refused(struct fixture *f, long status, const char *want)
{
	expect(f, "/v1/prepare", prepare_k, status, want);
	expect(f, "/v1/accept", accept_k, status, want);
	expect(f, "/v1/query", query_k, status, want);
	expect(f, "/v1/purge", prepare_k, status, want);
	expect(f, "/v1/keys", NULL, status, want);
	assert_int_equal(batch_status(f, "k", 9), status);
	assert_int_equal(promised(f->store, "k"), 0);
}

static bool identity_file_exists(const struct fixture *f)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/%s", f->dir, CAS_IDENTITY_FILE);
	return access(path, F_OK) == 0;
}

/* A join body: node, and config_json's configuration. */
static char *join_json(const char *node, const char *config)
{
	static char buf[4096];

	snprintf(buf, sizeof(buf), "{\"node\":\"%s\",\"config\":%s}", node, config);
	return buf;
}

/* tmpl with its "%s", if any, replaced by cfg, into out. */
static void fill(char *out, size_t len, const char *tmpl, const char *cfg)
{
	const char *at = strstr(tmpl, "%s");

	if (!at)
		snprintf(out, len, "%s", tmpl);
	else
		snprintf(out, len, "%.*s%s%s", (int)(at - tmpl), tmpl, cfg, at + 2);
}

/* An uninitialized node refuses everything but health, config and join,
 * with or without the headers; a bad join changes nothing; a join makes
 * it a node of the cluster, durably; the same join again is a 200, any
 * other a 409. */
static void test_uninitialized(void **state)
{
	struct fixture *f = *state;
	const char *cfg = config_json(CLUSTER, 1, "00000000000000b2");
	char bad[4096];
	const char *body;
	size_t i;
	static const char *const bad_joins[] = {
		"",
		"{}",
		"[]",
		"{\"node\":\"" NODE "\"}",
		"{\"node\":\"" NODE "\",\"config\":%s,\"x\":1}",
		"{\"node\":\"" NODE "\",\"config\":%s} x",
		"{\"node\":\"0123456789abcde\",\"config\":%s}",
		"{\"node\":\"0123456789ABCDEF\",\"config\":%s}",
		"{\"node\":\"0123456789abcdef0\",\"config\":%s}",
		"{\"node\":7,\"config\":%s}",
		/* a node absent from the configuration */
		"{\"node\":\"00000000000000c3\",\"config\":%s}",
		"{\"node\":\"" NODE "\",\"config\":{\"cluster\":\"" CLUSTER "\",\"epoch\":\"0\","
		"\"members\":[{\"id\":\"" NODE "\",\"url\":\"http://a:1\"}]}}",
		"{\"node\":\"" NODE "\",\"config\":{\"cluster\":\"" CLUSTER "\",\"epoch\":\"01\","
		"\"members\":[{\"id\":\"" NODE "\",\"url\":\"http://a:1\"}]}}",
		"{\"node\":\"" NODE "\",\"config\":{\"cluster\":\"" CLUSTER "\",\"epoch\":1,"
		"\"members\":[{\"id\":\"" NODE "\",\"url\":\"http://a:1\"}]}}",
		"{\"node\":\"" NODE "\",\"config\":{\"cluster\":\"00112233\",\"epoch\":\"1\","
		"\"members\":[{\"id\":\"" NODE "\",\"url\":\"http://a:1\"}]}}",
		"{\"node\":\"" NODE "\",\"config\":{\"cluster\":\"" CLUSTER "\",\"epoch\":\"1\","
		"\"members\":[]}}",
		"{\"node\":\"" NODE "\",\"config\":{\"cluster\":\"" CLUSTER "\",\"epoch\":\"1\","
		"\"members\":[{\"id\":\"" NODE "\",\"url\":\"http://a:1\"}],\"joining\":[]}}",
		"{\"node\":\"" NODE "\",\"config\":{\"cluster\":\"" CLUSTER "\",\"epoch\":\"1\","
		"\"members\":[{\"id\":\"" NODE "\",\"url\":\"ftp://a:1\"}]}}",
		"{\"node\":\"" NODE "\",\"config\":{\"cluster\":\"" CLUSTER "\",\"epoch\":\"1\","
		"\"members\":[{\"id\":\"" NODE "\",\"url\":\"http://a:1\",\"x\":\"y\"}]}}",
		"{\"node\":\"" NODE "\",\"config\":{\"cluster\":\"" CLUSTER "\",\"epoch\":\"1\","
		"\"members\":[{\"id\":\"" NODE "\",\"url\":\"http://a:1\"},"
		"{\"id\":\"" NODE "\",\"url\":\"http://a:2\"}]}}",
		"{\"node\":\"" NODE "\",\"config\":{\"cluster\":\"" CLUSTER "\",\"epoch\":\"1\","
		"\"members\":[{\"id\":\"" NODE "\",\"url\":\"http://a:1\"}],"
		"\"joining\":[{\"id\":\"" NODE "\",\"url\":\"http://a:2\"}]}}",
	};

	body = expect(f, "/v1/health", NULL, 503, "\"status\":\"uninitialized\"");
	assert_null(strstr(body, "cluster"));
	expect(f, "/v1/config", NULL, 503, uninitialized);
	expect_refused(f, 503, uninitialized);
	f->cluster = f->epoch = NULL; /* the same without the headers */
	expect_refused(f, 503, uninitialized);
	expect(f, "/v1/admin/config",
	       "{\"config\":"
	       "x"
	       "}",
	       400, "malformed");
	expect(f, "/v1/admin/config", "{\"config\":", 400, NULL);
	snprintf(bad, sizeof(bad), "{\"config\":%s}", cfg);
	expect(f, "/v1/admin/config", bad, 503, uninitialized);

	for (i = 0; i < sizeof(bad_joins) / sizeof(bad_joins[0]); i++) {
		fill(bad, sizeof(bad), bad_joins[i], cfg);
		expect(f, "/v1/admin/join", bad, 400, "\"error\":");
	}
	expect(f, "/v1/config", NULL, 503, uninitialized);
	assert_false(identity_file_exists(f));

	body = expect(f, "/v1/admin/join", join_json(NODE, cfg), 200, "\"node\":\"" NODE "\"");
	assert_non_null(strstr(body, "\"cluster\":\"" CLUSTER "\",\"epoch\":\"1\""));
	assert_true(identity_file_exists(f));
	expect(f, "/v1/admin/join", join_json(NODE, cfg), 200, "\"epoch\":\"1\"");
	expect(f, "/v1/admin/join", join_json("00000000000000b2", cfg), 409,
	       "\"error\":\"node is already initialized");
	expect(f, "/v1/admin/join", join_json(NODE, config_json(CLUSTER, 2, "")), 409,
	       "\"node\":\"" NODE "\"");
	expect(f, "/v1/config", NULL, 200,
	       "{\"cluster\":\"" CLUSTER "\",\"epoch\":\"1\",\"members\":[{\"id\":\"" NODE
	       "\",\"url\":\"http://127.0.0.1:1\"},{\"id\":\"00000000000000b2\",\"url\":"
	       "\"http://127.0.0.1:2\"}],\"node\":\"" NODE "\"}");
	expect(f, "/v1/health", NULL, 200,
	       "\"status\":\"ok\",\"version\":\"" CAS_VERSION_STRING "\",\"keys\":\"0\","
	       "\"cluster\":\"" CLUSTER "\",\"node\":\"" NODE "\",\"epoch\":\"1\",\"bytes\":\"");
	/* Joined: the headers are required now, and enough. */
	expect_refused(f, 400, "missing header Cas-Cluster");
	f->cluster = CLUSTER;
	f->epoch = "1";
	expect(f, "/v1/prepare", prepare_k, 200, "\"result\":\"promise\"");
	assert_int_equal(promised(f->store, "k"), 5);
}

/* While clients send no identity (admit_unidentified): an uninitialized
 * node serves requests without the headers as before, and refuses those
 * with them; health says 200 "uninitialized". A joined node requires them. */
static void test_unidentified_transition(void **state)
{
	struct fixture *f = start(true);

	*state = f;
	expect(f, "/v1/health", NULL, 200, "\"status\":\"uninitialized\"");
	expect(f, "/v1/query", query_k, 200, "\"result\":\"current\"");
	expect(f, "/v1/prepare", prepare_k, 200, "\"result\":\"promise\"");
	assert_int_equal(batch_status(f, "b", 3), 200);
	expect(f, "/v1/keys", NULL, 200, "{\"keys\":[\"b\",\"k\"],\"more\":false}");
	f->cluster = CLUSTER;
	expect(f, "/v1/query", query_k, 503, uninitialized);
	f->cluster = NULL;
	f->epoch = "1";
	expect(f, "/v1/query", query_k, 503, uninitialized);
	f->epoch = NULL;
	expect(f, "/v1/admin/join", join_json(NODE, config_json(CLUSTER, 1, "")), 200, NULL);
	expect(f, "/v1/query", query_k, 400, "missing header");
	f->cluster = CLUSTER;
	f->epoch = "1";
	expect(f, "/v1/query", query_k, 200, "\"accepted\"");
}

/* Sends cfg to /v1/admin/config: the status, and want in the body. */
static const char *change(struct fixture *f, const char *cfg, long status, const char *want)
{
	static char body[4096];

	snprintf(body, sizeof(body), "{\"config\":%s}", cfg);
	return expect(f, "/v1/admin/config", body, status, want);
}

/* The identity headers of a joined node: missing or malformed ones are a
 * 400, another cluster a 421, an older epoch "stale configuration" and a
 * newer one "node is behind" (409s, naming the node's epoch), on every
 * route; nothing changes for any of them. */
static void test_headers_checked(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *cluster, *epoch;
		long status;
		const char *want;
	} cases[] = {
		{NULL, "1", 400, "{\"error\":\"missing header Cas-Cluster\"}"},
		{CLUSTER, NULL, 400, "{\"error\":\"missing header Cas-Epoch\"}"},
		{"00112233445566778899AABBCCDDEEFF", "1", 400, "Cas-Cluster: not 32"},
		{"00112233445566778899aabbccddeef", "1", 400, "Cas-Cluster: not 32"},
		{"00112233445566778899aabbccddeeff0", "1", 400, "Cas-Cluster: not 32"},
		{CLUSTER, "01", 400, "Cas-Epoch: not"},
		{CLUSTER, "0", 400, "Cas-Epoch: not"},
		{CLUSTER, "-1", 400, "Cas-Epoch: not"},
		{CLUSTER, "18446744073709551616", 400, "Cas-Epoch: not"},
		{CLUSTER, "", 400, "Cas-Epoch: not"},
		{OTHER_CLUSTER, "1", 421,
		 "{\"error\":\"node belongs to cluster " CLUSTER "\",\"cluster\":\"" CLUSTER "\"}"},
		{OTHER_CLUSTER, "0", 400, "Cas-Epoch: not"},
		{CLUSTER, "2", 409, "{\"error\":\"node is behind\",\"epoch\":\"1\"}"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		f->cluster = cases[i].cluster;
		f->epoch = cases[i].epoch;
		expect_refused(f, cases[i].status, cases[i].want);
	}
	f->cluster = CLUSTER;
	f->epoch = "1";
	change(f, config_json(CLUSTER, 3, "00000000000000b2"), 200, "\"epoch\":\"3\"");
	expect(f, "/v1/health", NULL, 200, "\"epoch\":\"3\"");
	expect_refused(f, 409, "{\"error\":\"stale configuration\",\"epoch\":\"3\"}");
	f->epoch = "2";
	expect_refused(f, 409, "{\"error\":\"stale configuration\",\"epoch\":\"3\"}");
	f->epoch = "4";
	expect_refused(f, 409, "{\"error\":\"node is behind\",\"epoch\":\"3\"}");
	f->epoch = "3";
	expect(f, "/v1/prepare", prepare_k, 200, "\"result\":\"promise\"");
	expect(f, "/v1/accept", accept_k, 200, "\"result\":\"accepted\"");
	expect(f, "/v1/query", query_k, 200, "\"data\":\"aGVsbG8=\"");
	assert_int_equal(batch_status(f, "k2", 1), 200);
	expect(f, "/v1/keys", NULL, 200, "{\"keys\":[\"k\",\"k2\"],\"more\":false}");
	/* The routes without identity need no headers. */
	f->cluster = f->epoch = NULL;
	expect(f, "/v1/health", NULL, 200, "\"status\":\"ok\"");
	expect(f, "/v1/config", NULL, 200, "\"epoch\":\"3\"");
}

/* The epoch of the identity dir holds on disk, read afresh. */
static uint64_t epoch_on_disk(const struct fixture *f, bool *member)
{
	struct cas_identity_view v;
	struct cas_identity *id;
	char errmsg[256];

	assert_int_equal(cas_identity_open(f->dir, &id, errmsg, sizeof(errmsg)), CAS_OK);
	cas_identity_view(id, &v);
	cas_identity_close(id);
	assert_true(v.initialized);
	assert_string_equal(v.node, NODE);
	*member = v.member;
	return v.epoch;
}

/* POST /v1/admin/config: a higher epoch of the node's cluster is taken,
 * durably; the same configuration is a 200 that changes nothing; a lower
 * epoch, the same epoch with other nodes, or another cluster is a 409
 * with the node's configuration; a malformed one a 400; a failed write a
 * 500 that changes nothing; a configuration without the node removes it. */
static void test_config_updates(void **state)
{
	struct fixture *f = *state;
	const char *joint =
		"{\"cluster\":\"" CLUSTER "\",\"epoch\":\"2\",\"members\":["
		"{\"id\":\"" NODE "\",\"url\":\"http://127.0.0.1:1\"},"
		"{\"id\":\"00000000000000b2\",\"url\":\"http://127.0.0.1:2\"}],"
		"\"joining\":[{\"id\":\"00000000000000b3\",\"url\":\"http://127.0.0.1:3\"},"
		"{\"id\":\"" NODE "\",\"url\":\"http://127.0.0.1:1\"}]}";
	static const char *const bad[] = {
		"",
		"{}",
		"{\"config\":{}}",
		"{\"config\":null}",
		"{\"cluster\":\"" CLUSTER "\"}",
		"{\"config\":{\"cluster\":\"" CLUSTER
		"\",\"epoch\":\"5\",\"members\":[{\"id\":\"" NODE
		"\",\"url\":\"http://a:1\"}]},\"node\":\"" NODE "\"}",
		"{\"config\":{\"cluster\":\"" CLUSTER
		"\",\"epoch\":\"5\",\"members\":[{\"id\":\"" NODE
		"\",\"url\":\"http://a:1\"}],\"x\":[]}}",
		"{\"config\":{\"cluster\":\"" CLUSTER
		"\",\"epoch\":\"5\",\"members\":[{\"id\":\"" NODE "\",\"url\":\"http://\"}]}}",
		"{\"config\":{\"cluster\":\"" CLUSTER
		"\",\"epoch\":\"5\",\"members\":[{\"id\":\"" NODE "\",\"url\":\"http://a b\"}]}}",
		"{\"config\":{\"cluster\":\"" CLUSTER
		"\",\"epoch\":\"5\",\"members\":[{\"id\":\"" NODE
		"\",\"url\":\"http://a:1\"},{\"id\":\"00000000000000b2\",\"url\":\"http://"
		"a:1\"}]}}",
		"{\"config\":{\"cluster\":\"" CLUSTER "\",\"epoch\":\"5\",\"members\":{}}}",
		"{\"config\":{\"cluster\":\"" CLUSTER
		"\",\"epoch\":\"+5\",\"members\":[{\"id\":\"" NODE "\",\"url\":\"http://a:1\"}]}}",
		"{\"config\":{\"cluster\":\"" CLUSTER "\",\"epoch\":\"18446744073709551616\","
		"\"members\":[{\"id\":\"" NODE "\",\"url\":\"http://a:1\"}]}}",
		"{\"config\":{\"cluster\":\"" CLUSTER
		"\",\"epoch\":\"5\",\"members\":[{\"id\":\"" NODE "\",\"url\":\"http://a:1\"}]}}{}",
	};
	bool member;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect(f, "/v1/admin/config", bad[i], 400, "\"error\":");
	expect(f, "/v1/config", NULL, 200, "\"epoch\":\"1\"");

	/* The same configuration, its members in another order. */
	change(f,
	       "{\"members\":[{\"url\":\"http://127.0.0.1:2\",\"id\":\"00000000000000b2\"},"
	       "{\"id\":\"" NODE "\",\"url\":\"http://127.0.0.1:1\"}],\"epoch\":\"1\","
	       "\"cluster\":\"" CLUSTER "\"}",
	       200, "\"epoch\":\"1\"");
	change(f, config_json(CLUSTER, 1, "00000000000000b3"), 409,
	       "{\"error\":\"epoch 1 is the node's, with other nodes\",\"cluster\":\"" CLUSTER
	       "\",\"epoch\":\"1\"");
	change(f, config_json(OTHER_CLUSTER, 5, ""), 409,
	       "\"error\":\"node belongs to cluster " CLUSTER "\"");

	change(f, joint, 200, "\"joining\":[{\"id\":\"00000000000000b3\"");
	assert_int_equal(epoch_on_disk(f, &member), 2);
	assert_true(member);
	expect(f, "/v1/config", NULL, 200, "\"epoch\":\"2\"");
	change(f, joint, 200, "\"epoch\":\"2\"");
	change(f, config_json(CLUSTER, 1, "00000000000000b2"), 409,
	       "{\"error\":\"stale configuration: epoch 1 is below the node's 2\",\"cluster\":"
	       "\"" CLUSTER "\",\"epoch\":\"2\"");
	/* Anything else than a change of the configuration is refused. */
	expect(f, "/v1/admin/join", join_json(NODE, joint), 200, "\"epoch\":\"2\"");
	expect(f, "/v1/admin/join", join_json(NODE, config_json(CLUSTER, 1, "00000000000000b2")),
	       409, "already initialized");

	/* A write that fails changes nothing, on disk or in memory. */
	cas_identity_fail_writes(f->identity, 1);
	change(f, config_json(CLUSTER, 3, "00000000000000b3"), 500, "identity: write");
	expect(f, "/v1/config", NULL, 200, "\"epoch\":\"2\"");
	assert_int_equal(epoch_on_disk(f, &member), 2);
	f->epoch = "2";
	expect(f, "/v1/query", query_k, 200, "\"result\":\"current\"");
	change(f, config_json(CLUSTER, 3, "00000000000000b3"), 200, "\"epoch\":\"3\"");

	/* Removed: the node takes it, and refuses requests from then on. */
	change(f,
	       "{\"cluster\":\"" CLUSTER "\",\"epoch\":\"7\",\"members\":["
	       "{\"id\":\"00000000000000b3\",\"url\":\"http://127.0.0.1:3\"}]}",
	       200, "\"node\":\"" NODE "\"");
	assert_int_equal(epoch_on_disk(f, &member), 7);
	assert_false(member);
	f->epoch = "7";
	expect_refused(f, 409, "{\"error\":\"stale configuration\",\"epoch\":\"7\"}");
	f->epoch = "6";
	expect_refused(f, 409, "{\"error\":\"stale configuration\",\"epoch\":\"7\"}");
	f->epoch = "8";
	expect_refused(f, 409, "{\"error\":\"node is behind\",\"epoch\":\"7\"}");
	expect(f, "/v1/health", NULL, 200, "\"epoch\":\"7\"");
}

/* GET /v1/keys pages through the keys in byte order; its arguments are
 * checked. */
static void test_keys_paging(void **state)
{
	struct fixture *f = *state;
	struct cas_msg req = {.type = CAS_MSG_PREPARE, .ballot = {1, 1}}, reply;
	char errmsg[256], path[128];
	const char *body;
	int i;

	expect(f, "/v1/keys", NULL, 200, "{\"keys\":[],\"more\":false}");
	for (i = 24; i >= 0; i--) {
		snprintf(req.key, sizeof(req.key), "k%02d", i);
		assert_int_equal(cas_store_handle(f->store, &req, &reply, errmsg, sizeof(errmsg)),
				 CAS_OK);
		cas_msg_clear(&reply);
	}
	body = expect(f, "/v1/keys?limit=10", NULL, 200, "\"more\":true}");
	assert_non_null(strstr(body, "{\"keys\":[\"k00\",\"k01\","));
	assert_non_null(strstr(body, ",\"k09\"],"));
	expect(f, "/v1/keys?after=k09&limit=10", NULL, 200,
	       "{\"keys\":[\"k10\",\"k11\",\"k12\",\"k13\",\"k14\",\"k15\",\"k16\",\"k17\",\"k18\","
	       "\"k19\"],\"more\":true}");
	expect(f, "/v1/keys?after=k19", NULL, 200,
	       "{\"keys\":[\"k20\",\"k21\",\"k22\",\"k23\",\"k24\"],\"more\":false}");
	expect(f, "/v1/keys?after=k24&limit=10000", NULL, 200, "{\"keys\":[],\"more\":false}");
	expect(f, "/v1/keys?after=a&limit=1", NULL, 200, "{\"keys\":[\"k00\"],\"more\":true}");
	/* Byte order: '/' < '0' <= digits <= '9' < ':'. */
	expect(f, "/v1/keys?after=k1%2F&limit=1", NULL, 200, "{\"keys\":[\"k10\"],\"more\":true}");
	expect(f, "/v1/keys?after=k1%3A", NULL, 200, "{\"keys\":[\"k20\",");
	body = expect(f, "/v1/keys", NULL, 200, "\"k24\"],\"more\":false}");
	assert_non_null(strstr(body, "{\"keys\":[\"k00\","));

	static const char *const bad[] = {
		"limit=0",    "limit=10001", "limit=01",	"limit=x",
		"limit=",     "limit",	     "after=",		"after=a%20b",
		"after=%00a", "x=1",	     "limit=1&limit=2", "after=a&after=b",
	};
	for (i = 0; i < (int)(sizeof(bad) / sizeof(bad[0])); i++) {
		snprintf(path, sizeof(path), "/v1/keys?%s", bad[i]);
		expect(f, path, NULL, 400, "\"error\":");
	}
	expect(f, "/v1/keys", "{}", 405, "use GET");
	expect(f, "/v1/config", "{}", 405, "use GET");
	expect(f, "/v1/admin/join", NULL, 405, "use POST");
	expect(f, "/v1/admin/config", NULL, 405, "use POST");
}

/* POST /v1/purge: at another ballot it changes nothing and names the
 * key's; at the tombstone's it drops the key (from /v1/keys and the key
 * count) and raises the floor (/v1/health, /metrics), which refuses a low
 * prepare. A PURGE item of a batch is BAD and runs not. */
static void test_purge(void **state)
{
	static const char tomb_k[] = "{\"key\":\"k\",\"ballot\":{\"counter\":\"5\",\"id\":\"1\"},"
				     "\"value\":{\"version\":\"0\",\"recent\":[],\"data\":\"\"}}";
	static const char purge_4[] = "{\"key\":\"k\",\"ballot\":{\"counter\":\"4\",\"id\":\"1\"}}";
	struct fixture *f = *state;
	struct post po = {.f = f, .port = cas_server_port(f->server), .timeout_ms = 10000};
	struct cas_batch_entry e[4];
	struct body b = {0};
	pthread_t t;

	expect(f, "/v1/prepare", prepare_k, 200, "\"result\":\"promise\"");
	expect(f, "/v1/accept", tomb_k, 200, "\"result\":\"accepted\"");
	expect(f, "/v1/purge", purge_4, 200,
	       "{\"result\":\"purged\",\"accepted\":{\"counter\":\"5\",\"id\":\"1\"}}");
	expect(f, "/v1/purge", "{\"key\":\"k\"}", 400, "\"error\":");
	expect(f, "/v1/purge", NULL, 405, "use POST");
	expect(f, "/v1/health", NULL, 200, "\"keys\":\"1\"");
	expect(f, "/v1/health", NULL, 200, "\"floor\":\"0\"}");

	/* A batch of a PURGE item and a prepare of "z": only the prepare
	 * reaches the (held) store; the PURGE is BAD. */
	add_msg(&b, CAS_MSG_PURGE, "k", 5);
	add_msg(&b, CAS_MSG_PREPARE, "z", 1);
	po.body = &b;
	cas_store_hold(f->store, true);
	assert_int_equal(pthread_create(&t, NULL, run_post, &po), 0);
	wait_queued(f->store, 1);
	expect(f, "/v1/keys", NULL, 200, "{\"keys\":[\"k\"],\"more\":false}");
	cas_store_hold(f->store, false);
	pthread_join(t, NULL);
	assert_int_equal(po.status, 200);
	assert_int_equal(entries(&po, e, 4), 2);
	assert_int_equal(e[0].status, CAS_BATCH_BAD);
	assert_int_equal(e[0].len, strlen("a PURGE is not a batch item: use /v1/purge"));
	assert_memory_equal(e[0].data, "a PURGE is not a batch item: use /v1/purge", e[0].len);
	assert_int_equal(e[1].status, CAS_BATCH_OK);
	expect(f, "/v1/keys", NULL, 200, "{\"keys\":[\"k\",\"z\"],\"more\":false}");

	expect(f, "/v1/purge", prepare_k, 200,
	       "{\"result\":\"purged\",\"accepted\":{\"counter\":\"0\",\"id\":\"0\"}}");
	expect(f, "/v1/keys", NULL, 200, "{\"keys\":[\"z\"],\"more\":false}");
	expect(f, "/v1/health", NULL, 200, "\"keys\":\"1\"");
	expect(f, "/v1/health", NULL, 200, "\"floor\":\"5\"}");
	expect(f, "/v1/prepare", prepare_k, 409,
	       "{\"result\":\"reject\",\"blocking\":{\"counter\":\"5\","
	       "\"id\":\"18446744073709551615\"}}");
	expect(f, "/metrics", NULL, 200, "\ncasd_floor 5\n");
	expect(f, "/metrics", NULL, 200, "\ncasd_keys 1\n");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_failure_per_item, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_gone_while_stored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_waits_for_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_health_after_sync_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uninitialized, setup_bare, teardown),
		cmocka_unit_test_teardown(test_unidentified_transition, teardown),
		cmocka_unit_test_setup_teardown(test_headers_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_updates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys_paging, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purge, setup, teardown),
	};
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}

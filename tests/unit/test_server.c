/* test_server.c - unit tests of casd's POST /v1/batch against a real
 * server and store, for what a shell test cannot reach: a store failure
 * of some items, a client that leaves while its batch waits in the store,
 * a stop that waits for a suspended batch, and what /v1/health says of a
 * store that takes no changes. */
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
#include "store.h"

struct fixture {
	char dir[4096];
	struct cas_store *store;
	struct cas_server *server;
};

static int setup(void **state)
{
	struct cas_server_config cfg = {.host = "127.0.0.1", .threads = 2};
	struct fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");
	char errmsg[256];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/cas-test-server.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(cas_store_open(f->dir, NULL, &f->store, errmsg, sizeof(errmsg)), CAS_OK);
	assert_int_equal(cas_server_start(f->store, &cfg, &f->server, errmsg, sizeof(errmsg)),
			 CAS_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	const char *names[] = {"data.mdb", "lock.mdb", "wal"};
	char path[4200];
	size_t i;

	cas_server_stop(f->server);
	cas_store_close(f->store);
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

static void *run_post(void *arg)
{
	struct post *po = arg;
	struct curl_slist *hdrs;
	char url[64];
	CURL *c;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/batch", (unsigned)po->port);
	c = curl_easy_init();
	hdrs = curl_slist_append(NULL, "Content-Type: " CAS_CODEC_BIN_TYPE);
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
	struct post po = {.port = cas_server_port(f->server), .timeout_ms = 10000};
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
	struct post po = {.port = cas_server_port(f->server), .timeout_ms = 300};
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
	struct post po = {.port = cas_server_port(f->server), .timeout_ms = 10000};
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

/* One request on a fresh connection: POST json to path, or GET when
 * json is NULL; the status into *status, the body into out (a string). */
static void exchange(uint16_t port, const char *path, const char *json, long *status,
		     struct post *out)
{
	char url[128];
	CURL *c;

	memset(out, 0, sizeof(*out));
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)port, path);
	c = curl_easy_init();
	assert_non_null(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	if (json)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	assert_true(out->out_len < sizeof(out->out));
	out->out[out->out_len] = '\0';
}

/* After a failed sync of the log, writes fail with the reason, queries
 * go on, and /v1/health answers 503 saying why. */
static void test_health_after_sync_failure(void **state)
{
	struct fixture *f = *state;
	uint16_t port = cas_server_port(f->server);
	const char *prepare = "{\"key\":\"k\",\"ballot\":{\"counter\":\"5\",\"id\":\"1\"}}";
	struct post out;
	long status;

	exchange(port, "/v1/health", NULL, &status, &out);
	assert_int_equal(status, 200);
	assert_non_null(strstr((char *)out.out, "\"status\":\"ok\""));

	cas_store_fail_log_syncs(f->store, 1);
	exchange(port, "/v1/prepare", prepare, &status, &out);
	assert_int_equal(status, 500);
	assert_non_null(strstr((char *)out.out, "write-ahead log"));
	/* The disk would take it now; the node does not. */
	exchange(port, "/v1/prepare", prepare, &status, &out);
	assert_int_equal(status, 500);
	assert_non_null(strstr((char *)out.out, "restart"));
	exchange(port, "/v1/query", "{\"key\":\"k\"}", &status, &out);
	assert_int_equal(status, 200);

	exchange(port, "/v1/health", NULL, &status, &out);
	print_message("(%s)\n", (char *)out.out);
	assert_int_equal(status, 503);
	assert_non_null(strstr((char *)out.out, "\"status\":\"degraded\""));
	assert_non_null(strstr((char *)out.out, "\"reason\":\"store: write-ahead log:"));
	assert_int_equal(promised(f->store, "k"), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_failure_per_item, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_gone_while_stored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stop_waits_for_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_health_after_sync_failure, setup, teardown),
	};
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}

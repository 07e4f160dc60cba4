/* test_client.c - the client library without casd: node list parsing,
 * checks done before any I/O, deadlines against dead or silent nodes, and
 * in-process fake acceptors that misbehave on purpose. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <microhttpd.h>

#include <cas/bytes.h>
#include <cas/client.h>

#include "acceptor.h"
#include "batch.h"
#include "codec.h"
#include "codec_bin.h"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A socket on 127.0.0.1 bound to a free port; *port receives it. */
static int bound_socket(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t len = sizeof(a);
	int fd;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* A node that takes connections (the kernel completes them) and never
 * answers. */
static int silent_node(int *port)
{
	int fd = bound_socket(port);

	assert_int_equal(listen(fd, 64), 0);
	return fd;
}

/* A port nothing listens on (connections are refused). */
static int dead_port(void)
{
	int port;

	close(bound_socket(&port));
	return port;
}

/* True when someone connected to the listening fd. */
static bool was_contacted(int fd)
{
	int c = accept(fd, NULL, NULL);

	if (c >= 0) {
		close(c);
		return true;
	}
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	return false;
}

struct silent_cluster {
	int fds[3];
	char nodes[128];
};

static void silent_cluster_start(struct silent_cluster *s)
{
	int ports[3];

	for (int i = 0; i < 3; i++)
		s->fds[i] = silent_node(&ports[i]);
	snprintf(s->nodes, sizeof(s->nodes),
		 "http://127.0.0.1:%d,http://127.0.0.1:%d,"
		 "http://127.0.0.1:%d",
		 ports[0], ports[1], ports[2]);
}

static bool silent_cluster_contacted(struct silent_cluster *s)
{
	bool any = false;

	for (int i = 0; i < 3; i++)
		any = was_contacted(s->fds[i]) || any;
	return any;
}

static void silent_cluster_stop(struct silent_cluster *s)
{
	for (int i = 0; i < 3; i++)
		close(s->fds[i]);
}

/* Without random bytes from the kernel a client refuses to open: its
 * proposer id must never be guessable (a clock-and-pid fallback could
 * collide across containers and reuse ballots). A child process whose
 * getrandom fails (a seccomp filter) tries. */
static void test_open_needs_random_bytes(void **state)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getrandom, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};
	int status;
	pid_t pid;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct cas_client *c = NULL;
		char errmsg[256] = "";
		int rc;

		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
			_exit(3);
		rc = cas_client_open("http://127.0.0.1:1", NULL, &c, errmsg, sizeof(errmsg));
		if (rc == CAS_OK) {
			cas_client_close(c);
			_exit(1);
		}
		_exit(rc == CAS_EIO && strstr(errmsg, "getrandom") != NULL ? 0 : 2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_open_rejects_bad_lists(void **state)
{
	static const char *const bad[] = {
		"",
		",",
		"http://127.0.0.1:7001,",
		",http://127.0.0.1:7001",
		"http://127.0.0.1:7001,,http://127.0.0.1:7002",
		"127.0.0.1:7001",
		"ftp://127.0.0.1:7001",
		"http://",
		"http://127.0.0.1:7001/v1",
		"http://127.0.0.1:7001?x=1",
		"http://127.0.0.1:7001#frag",
		"http://user@127.0.0.1:7001",
		"http://127.0.0.1:notaport",
		"http://127.0.0.1:7001,http://127.0.0.1:7001",
		"http://127.0.0.1:80,http://127.0.0.1",
		"not a url at all",
	};
	struct cas_client *sentinel = (struct cas_client *)&state;
	struct cas_client *c;
	char errmsg[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c = sentinel;
		errmsg[0] = '\0';
		assert_int_equal(cas_client_open(bad[i], NULL, &c, errmsg, sizeof(errmsg)),
				 CAS_EINVAL);
		assert_ptr_equal(c, sentinel);
		assert_true(strlen(errmsg) > 0);
		assert_null(strchr(errmsg, '\n'));
	}
	c = sentinel;
	assert_int_equal(cas_client_open(NULL, NULL, &c, errmsg, sizeof(errmsg)), CAS_EINVAL);
	assert_ptr_equal(c, sentinel);
	/* errmsg is optional. */
	assert_int_equal(cas_client_open("", NULL, &c, NULL, 0), CAS_EINVAL);
}

static void test_open_node_limit(void **state)
{
	char list[64 * 32 + 64];
	struct cas_client *c = NULL;
	char errmsg[256];
	size_t off = 0;

	(void)state;
	for (int i = 0; i < 64; i++)
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%shttp://127.0.0.1:%d",
					i ? "," : "", 10000 + i);
	assert_int_equal(cas_client_open(list, NULL, &c, errmsg, sizeof(errmsg)), CAS_OK);
	assert_int_equal(cas_client_nodes(c), 64);
	assert_string_equal(cas_client_node_url(c, 0), "http://127.0.0.1:10000");
	assert_string_equal(cas_client_node_url(c, 63), "http://127.0.0.1:10063");
	assert_null(cas_client_node_url(c, 64));
	cas_client_close(c);

	snprintf(list + off, sizeof(list) - off, ",http://127.0.0.1:%d", 10064);
	c = NULL;
	assert_int_equal(cas_client_open(list, NULL, &c, errmsg, sizeof(errmsg)), CAS_EINVAL);
	assert_null(c);
	assert_non_null(strstr(errmsg, "64"));
}

static void test_open_normalizes(void **state)
{
	struct cas_client *c = NULL;
	char errmsg[256] = "stale";

	(void)state;
	assert_int_equal(cas_client_open(" http://127.0.0.1:7001/ ,http://localhost:7002,"
					 "http://[::1]:7003,http://example.org",
					 NULL, &c, errmsg, sizeof(errmsg)),
			 CAS_OK);
	assert_string_equal(errmsg, "");
	assert_int_equal(cas_client_nodes(c), 4);
	assert_string_equal(cas_client_node_url(c, 0), "http://127.0.0.1:7001");
	assert_string_equal(cas_client_node_url(c, 1), "http://localhost:7002");
	assert_string_equal(cas_client_node_url(c, 2), "http://[::1]:7003");
	assert_string_equal(cas_client_node_url(c, 3), "http://example.org:80");
	cas_client_close(c);
	cas_client_close(NULL);
}

static int never_called(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	(void)arg;
	(void)cur;
	(void)next;
	fail_msg("the change function ran for a bad key");
	return CAS_EINVAL;
}

static void test_bad_keys_before_io(void **state)
{
	char long_key[CAS_KEY_MAX + 2];
	char max_key[CAS_KEY_MAX + 1];
	const char *bad[] = {"",   "a b",  "caf\xc3\xa9", "new\nline", "tab\t",
			     "q?", "x%41", long_key,	  NULL};
	struct cas_client_config cfg = {.timeout_ms = 3000};
	struct silent_cluster s;
	struct cas_client *c;
	struct cas_value v = {.version = 7};
	uint64_t version = 7, t0;

	(void)state;
	memset(long_key, 'a', CAS_KEY_MAX + 1);
	long_key[CAS_KEY_MAX + 1] = '\0';
	memset(max_key, 'a', CAS_KEY_MAX);
	max_key[CAS_KEY_MAX] = '\0';
	assert_true(cas_key_valid(max_key, strlen(max_key)));
	assert_true(cas_key_valid("a-Z_0.9:/@x", 11));

	silent_cluster_start(&s);
	assert_int_equal(cas_client_open(s.nodes, &cfg, &c, NULL, 0), CAS_OK);
	t0 = now_ms();
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(cas_read(c, bad[i], 0, &v), CAS_EKEY);
		assert_int_equal(v.version, 0);
		assert_null(v.data);
		assert_int_equal(cas_put(c, bad[i], "x", 1, 0, &version), CAS_EKEY);
		assert_int_equal(version, 0);
		assert_int_equal(cas_cas(c, bad[i], 0, "x", 1, 0, NULL), CAS_EKEY);
		assert_int_equal(cas_change(c, bad[i], never_called, NULL, 0, NULL), CAS_EKEY);
	}
	/* A silent cluster would have held any of them for 3 s. */
	assert_true(now_ms() - t0 < 1000);
	assert_false(silent_cluster_contacted(&s));
	cas_client_close(c);
	silent_cluster_stop(&s);
}

static void test_too_big_before_io(void **state)
{
	struct cas_client_config cfg = {.timeout_ms = 3000, .max_value_size = 16};
	struct silent_cluster s;
	struct cas_client *c;
	unsigned char *big;
	uint64_t version = 9, t0;

	(void)state;
	big = calloc(1, CAS_DEFAULT_MAX_VALUE + 1);
	assert_non_null(big);
	silent_cluster_start(&s);

	assert_int_equal(cas_client_open(s.nodes, &cfg, &c, NULL, 0), CAS_OK);
	t0 = now_ms();
	assert_int_equal(cas_put(c, "k", big, 17, 0, &version), CAS_ETOOBIG);
	assert_int_equal(version, 0);
	assert_int_equal(cas_cas(c, "k", 0, big, 17, 0, NULL), CAS_ETOOBIG);
	assert_int_equal(cas_put(c, "k", NULL, 1, 0, NULL), CAS_EINVAL);
	cas_client_close(c);

	/* The default limit. */
	cfg.max_value_size = 0;
	assert_int_equal(cas_client_open(s.nodes, &cfg, &c, NULL, 0), CAS_OK);
	assert_int_equal(cas_put(c, "k", big, CAS_DEFAULT_MAX_VALUE + 1, 0, NULL), CAS_ETOOBIG);
	assert_int_equal(cas_cas(c, "k", 3, big, CAS_DEFAULT_MAX_VALUE + 1, 0, NULL), CAS_ETOOBIG);
	assert_true(now_ms() - t0 < 1000);
	assert_false(silent_cluster_contacted(&s));
	cas_client_close(c);
	silent_cluster_stop(&s);
	free(big);
}

static void test_dead_cluster_unavailable(void **state)
{
	struct cas_client_config cfg = {.timeout_ms = 5000};
	struct cas_client_stats st;
	struct cas_client *c;
	struct cas_value v = {.version = 5};
	char nodes[128];
	uint64_t t0, t, version = 5;

	(void)state;
	snprintf(nodes, sizeof(nodes),
		 "http://127.0.0.1:%d,http://127.0.0.1:%d,"
		 "http://127.0.0.1:%d",
		 dead_port(), dead_port(), dead_port());
	assert_int_equal(cas_client_open(nodes, &cfg, &c, NULL, 0), CAS_OK);

	t0 = now_ms();
	assert_int_equal(cas_read(c, "k", 300, &v), CAS_EUNAVAILABLE);
	t = now_ms() - t0;
	assert_true(t < 300 + 500);
	assert_int_equal(v.version, 0);
	assert_null(v.data);

	t0 = now_ms();
	assert_int_equal(cas_put(c, "k", "x", 1, 300, &version), CAS_EUNAVAILABLE);
	assert_true(now_ms() - t0 < 300 + 500);
	assert_int_equal(version, 0);

	t0 = now_ms();
	assert_int_equal(cas_cas(c, "k", 0, "x", 1, 200, NULL), CAS_EUNAVAILABLE);
	assert_true(now_ms() - t0 < 200 + 500);

	for (size_t i = 0; i < cas_client_nodes(c); i++)
		assert_int_not_equal(cas_client_ping(c, i, 300), CAS_OK);
	/* Each counted as a timeout, none as a refusal or an error. */
	cas_client_stats(c, &st);
	assert_int_equal(st.rounds[CAS_ROUND_READ][CAS_ROUND_UNAVAILABLE], 1);
	assert_int_equal(st.rounds[CAS_ROUND_CHANGE][CAS_ROUND_UNAVAILABLE], 2);
	assert_int_equal(st.rounds[CAS_ROUND_CHANGE][CAS_ROUND_REFUSED], 0);
	assert_int_equal(st.rounds[CAS_ROUND_CHANGE][CAS_ROUND_ERROR], 0);
	cas_client_close(c);
}

/* Nodes that take the connection and never answer: only the deadline
 * ends the operation, and it must. */
static void test_silent_cluster_deadline(void **state)
{
	struct cas_client_config cfg = {.timeout_ms = 400};
	struct silent_cluster s;
	struct cas_client *c;
	struct cas_value v;
	uint64_t t0, t;

	(void)state;
	silent_cluster_start(&s);
	assert_int_equal(cas_client_open(s.nodes, &cfg, &c, NULL, 0), CAS_OK);

	t0 = now_ms();
	assert_int_equal(cas_read(c, "k", 0, &v), CAS_EUNAVAILABLE);
	t = now_ms() - t0;
	assert_in_range(t, 390, 400 + 600);
	cas_value_clear(&v);

	/* A second operation on the same client, while the first one's
	 * requests may still sit in the channel. */
	t0 = now_ms();
	assert_int_equal(cas_put(c, "k", "abc", 3, 250, NULL), CAS_EUNAVAILABLE);
	t = now_ms() - t0;
	assert_true(t < 250 + 600);

	t0 = now_ms();
	assert_int_not_equal(cas_client_ping(c, 0, 200), CAS_OK);
	assert_true(now_ms() - t0 < 200 + 600);

	assert_true(silent_cluster_contacted(&s));
	cas_client_close(c);
	silent_cluster_stop(&s);
}

/* An in-process acceptor on libmicrohttpd: the real acceptor rules and
 * codec, with faults to switch on. */
struct fake_entry {
	char key[CAS_KEY_MAX + 1];
	struct cas_acceptor_state st;
};

struct fake_node {
	struct MHD_Daemon *d;
	int port;
	/* Faults: a status for every request of a kind instead of the
	 * acceptor's answer; garbage (a 200 that is no JSON); silence. */
	unsigned prepare_status, accept_status, purge_status;
	bool garbage, silent;
	/* Wire forms: a node older than the binary form reads every body as
	 * JSON; json_replies answers a binary request in JSON. Otherwise a
	 * node speaks the form the request's Content-Type names, as casd. */
	bool old, json_replies;
	/* no_batch: a node without POST /v1/batch (404), as before it. */
	bool no_batch;
	/* delay_ms: a slow node, answering each request that much later. */
	volatile unsigned delay_ms;
	volatile bool stopping;
	pthread_mutex_t lock;
	struct fake_entry entries[64];
	size_t n_entries;
	uint64_t floor; /* the acceptor's floor (acceptor.h, "Deletion") */
	unsigned connections, requests;
	unsigned batches, batch_items; /* batches answered, and their items */
	/* GET /v1/config's answer (the cluster's configuration and this
	 * node's id); protocol requests must carry its identity. */
	char config[1024];
	bool uninitialized; /* GET /v1/config answers 503 */
	struct fake_shared *shared;
};

/* What the fakes of one cluster share: the configuration's epoch (a
 * request at a lower one is refused as stale, GET /v1/config answers it),
 * and a trigger: after this many more accepts answered, the epoch goes
 * to 2 (0: never). */
struct fake_shared {
	volatile unsigned epoch;
	unsigned bump_after_accepts;
};

/* The fakes' cluster id. */
#define FAKE_CLUSTER "0123456789abcdef0123456789abcdef"

struct fake_req {
	char *buf;
	size_t len, cap;
};

static struct fake_entry *fake_entry(struct fake_node *f, const char *key)
{
	for (size_t i = 0; i < f->n_entries; i++)
		if (strcmp(f->entries[i].key, key) == 0)
			return &f->entries[i];
	if (f->n_entries == 64)
		return NULL;
	snprintf(f->entries[f->n_entries].key, sizeof(f->entries[0].key), "%s", key);
	return &f->entries[f->n_entries++];
}

/* The real acceptor's answer to a request body, in the binary form when
 * *binary (which it clears when answering in JSON); *body malloc'd. */
static unsigned fake_acceptor(struct fake_node *f, enum cas_msg_type type, const char *in,
			      size_t len, bool *binary, char **body, size_t *body_len)
{
	struct cas_msg req, reply = {0};
	struct fake_entry *e;
	unsigned char *old;
	enum cas_acceptor_change change;
	char err[128];
	int rc;

	if (*binary)
		rc = cas_codec_bin_decode_request(in, len, type, CAS_DEFAULT_MAX_VALUE, &req, err,
						  sizeof(err));
	else
		rc = cas_codec_decode_request(in, len, type, CAS_DEFAULT_MAX_VALUE, &req, err,
					      sizeof(err));
	if (f->json_replies)
		*binary = false;
	if (rc != CAS_OK) {
		*binary = false;
		*body = strdup("{\"error\":\"bad request\"}");
		*body_len = strlen(*body);
		return 400;
	}
	pthread_mutex_lock(&f->lock);
	e = fake_entry(f, req.key);
	assert_non_null(e);
	old = e->st.value.data;
	change = cas_acceptor_step(&e->st, &f->floor, &req, &reply);
	if (*binary)
		assert_int_equal(cas_codec_bin_encode(&reply, (unsigned char **)body, body_len),
				 CAS_OK);
	else
		assert_int_equal(cas_codec_encode(&reply, body, body_len), CAS_OK);
	if (change == CAS_ACCEPTOR_DROP) {
		/* A key without a row is all zeroes. */
		free(e->st.value.data);
		memset(&e->st, 0, sizeof(e->st));
	} else if (change == CAS_ACCEPTOR_STORE && e->st.value.data != old) {
		/* The state borrows the request's bytes: keep a copy. */
		struct cas_reg copy;

		assert_int_equal(cas_reg_copy(&copy, &e->st.value), CAS_OK);
		e->st.value = copy;
		free(old);
	}
	pthread_mutex_unlock(&f->lock);
	cas_msg_clear(&req);
	return reply.type == CAS_MSG_REJECT ? 409 : 200;
}

static bool fake_grow(char **buf, size_t *len, size_t *cap, size_t more)
{
	char *p;

	if (*len + more > *cap) {
		*cap = (*len + more) * 2;
		p = realloc(*buf, *cap);
		if (p == NULL)
			return false;
		*buf = p;
	}
	return true;
}

/* A batch (batch.h): each item answered by fake_acceptor, in order. */
static unsigned fake_batch(struct fake_node *f, const char *in, size_t len, char **body,
			   size_t *body_len)
{
	const unsigned char *p = (const unsigned char *)in, *end = p + len;
	size_t cap = 0, n = 0, item_len, rlen;
	unsigned status;
	char *reply;
	bool binary;

	*body = NULL;
	*body_len = 0;
	while (end - p >= 4) {
		item_len = cas_get_le32(p);
		p += 4;
		assert_true(item_len >= 2 && item_len <= (size_t)(end - p));
		binary = true;
		status = fake_acceptor(f, (enum cas_msg_type)p[1], (const char *)p, item_len,
				       &binary, &reply, &rlen);
		assert_true(fake_grow(body, body_len, &cap, 5 + rlen));
		(*body)[*body_len] = (char)(status == 400 ? CAS_BATCH_BAD : CAS_BATCH_OK);
		cas_put_le32((unsigned char *)*body + *body_len + 1, (uint32_t)rlen);
		memcpy(*body + *body_len + 5, reply, rlen);
		*body_len += 5 + rlen;
		free(reply);
		p += item_len;
		n++;
	}
	assert_true(p == end && n > 0 && n <= CAS_BATCH_MAX_ITEMS);
	__atomic_add_fetch(&f->batches, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&f->batch_items, (unsigned)n, __ATOMIC_SEQ_CST);
	return 200;
}

static enum MHD_Result fake_handle(void *cls, struct MHD_Connection *conn, const char *url,
				   const char *method, const char *version, const char *upload,
				   size_t *upload_size, void **con_cls)
{
	struct fake_node *f = cls;
	struct fake_req *r = *con_cls;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char *body = NULL;
	size_t body_len = 0;
	unsigned status, fault;
	bool prepare = strcmp(url, "/v1/prepare") == 0;
	bool purge = strcmp(url, "/v1/purge") == 0;
	const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
	bool binary = !f->old && ct != NULL && strcmp(ct, CAS_CODEC_BIN_TYPE) == 0;

	(void)method;
	(void)version;
	if (r == NULL) {
		r = calloc(1, sizeof(*r));
		if (r == NULL)
			return MHD_NO;
		*con_cls = r;
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (r->len + *upload_size + 1 > r->cap) {
			size_t cap = (r->len + *upload_size + 1) * 2;
			char *p = realloc(r->buf, cap);

			if (p == NULL)
				return MHD_NO;
			r->buf = p;
			r->cap = cap;
		}
		memcpy(r->buf + r->len, upload, *upload_size);
		r->len += *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/v1/config") == 0 && !f->silent) {
		char *at;

		body = strdup(f->uninitialized ? "{\"error\":\"node is not initialized\","
						 "\"status\":\"uninitialized\"}"
					       : f->config);
		if (body == NULL)
			return MHD_NO;
		at = strstr(body, "\"epoch\":\"1\"");
		if (at != NULL && f->shared != NULL && f->shared->epoch == 2)
			at[9] = '2';
		resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
		if (resp == NULL) {
			free(body);
			return MHD_NO;
		}
		ret = MHD_queue_response(conn, f->uninitialized ? 503 : 200, resp);
		MHD_destroy_response(resp);
		return ret;
	}
	if (strcmp(url, "/v1/health") != 0) {
		/* Every protocol request says which cluster and epoch it means. */
		const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Cas-Cluster");
		const char *ep = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Cas-Epoch");

		assert_non_null(cl);
		assert_non_null(ep);
		assert_string_equal(cl, FAKE_CLUSTER);
		assert_true(strcmp(ep, "1") == 0 || strcmp(ep, "2") == 0);
		if (f->shared != NULL && (unsigned)atoi(ep) < f->shared->epoch) {
			body = strdup("{\"error\":\"stale configuration\",\"epoch\":\"2\"}");
			if (body == NULL)
				return MHD_NO;
			resp = MHD_create_response_from_buffer(strlen(body), body,
							       MHD_RESPMEM_MUST_FREE);
			if (resp == NULL) {
				free(body);
				return MHD_NO;
			}
			ret = MHD_queue_response(conn, 409, resp);
			MHD_destroy_response(resp);
			return ret;
		}
	}
	__atomic_add_fetch(&f->requests, 1, __ATOMIC_SEQ_CST);
	for (unsigned i = 0; i < f->delay_ms && !f->stopping; i++)
		usleep(1000);
	if (f->silent) {
		for (int i = 0; i < 1000 && !f->stopping; i++)
			usleep(10000);
		return MHD_NO;
	}
	fault = prepare ? f->prepare_status : purge ? f->purge_status : f->accept_status;
	if (strcmp(url, "/v1/health") == 0) {
		status = 200;
		body = strdup("{\"status\":\"ok\"}");
		body_len = strlen(body);
	} else if (fault != 0) {
		status = fault;
		body = strdup("{\"error\":\"injected\"}");
		body_len = strlen(body);
	} else if (f->garbage) {
		status = 200;
		body = strdup("{\"result\":\"promise\",\"accepted\":7}");
		body_len = strlen(body);
	} else if (prepare || strcmp(url, "/v1/accept") == 0) {
		status = fake_acceptor(f, prepare ? CAS_MSG_PREPARE : CAS_MSG_ACCEPT,
				       r->buf ? r->buf : "", r->len, &binary, &body, &body_len);
		if (!prepare && status == 200 && f->shared != NULL &&
		    __atomic_load_n(&f->shared->bump_after_accepts, __ATOMIC_SEQ_CST) > 0 &&
		    __atomic_sub_fetch(&f->shared->bump_after_accepts, 1, __ATOMIC_SEQ_CST) == 0)
			f->shared->epoch = 2;
	} else if (strcmp(url, "/v1/query") == 0 || purge) {
		status = fake_acceptor(f, purge ? CAS_MSG_PURGE : CAS_MSG_QUERY,
				       r->buf ? r->buf : "", r->len, &binary, &body, &body_len);
	} else if (strcmp(url, "/v1/batch") == 0 && binary && !f->no_batch) {
		status = fake_batch(f, r->buf ? r->buf : "", r->len, &body, &body_len);
	} else {
		binary = false;
		status = 404;
		body = strdup("{\"error\":\"no such path\"}");
		body_len = strlen(body);
	}
	if (body == NULL)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(body_len, body, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(body);
		return MHD_NO;
	}
	if (binary &&
	    MHD_add_response_header(resp, "Content-Type", CAS_CODEC_BIN_TYPE) != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static void fake_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			   enum MHD_RequestTerminationCode toe)
{
	struct fake_req *r = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (r != NULL) {
		free(r->buf);
		free(r);
		*con_cls = NULL;
	}
}

static void fake_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			    enum MHD_ConnectionNotificationCode toe)
{
	struct fake_node *f = cls;

	(void)conn;
	(void)socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
		__atomic_add_fetch(&f->connections, 1, __ATOMIC_SEQ_CST);
}

static void fake_start(struct fake_node *f)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	const union MHD_DaemonInfo *info;

	memset(f, 0, sizeof(*f));
	assert_int_equal(pthread_mutex_init(&f->lock, NULL), 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	f->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
				NULL, NULL, fake_handle, f, MHD_OPTION_SOCK_ADDR, &a,
				MHD_OPTION_NOTIFY_COMPLETED, fake_completed, f,
				MHD_OPTION_NOTIFY_CONNECTION, fake_connection, f,
				MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
	assert_non_null(f->d);
	info = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);
	f->port = info->port;
}

static void fake_stop(struct fake_node *f)
{
	f->stopping = true;
	MHD_stop_daemon(f->d);
	for (size_t i = 0; i < f->n_entries; i++)
		free(f->entries[i].st.value.data);
	pthread_mutex_destroy(&f->lock);
}

#define FAKES 3

struct fake_cluster {
	struct fake_node nodes[FAKES];
	char list[256];
	struct fake_shared shared;
};

static int fakes_setup(void **state)
{
	struct fake_cluster *fc = calloc(1, sizeof(*fc));
	size_t off = 0;

	assert_non_null(fc);
	fc->shared.epoch = 1;
	for (int i = 0; i < FAKES; i++) {
		fake_start(&fc->nodes[i]);
		fc->nodes[i].shared = &fc->shared;
		off += (size_t)snprintf(fc->list + off, sizeof(fc->list) - off,
					"%shttp://127.0.0.1:%d", i ? "," : "", fc->nodes[i].port);
	}
	for (int i = 0; i < FAKES; i++) {
		struct fake_node *f = &fc->nodes[i];
		size_t n = 0;

		n += (size_t)snprintf(f->config + n, sizeof(f->config) - n,
				      "{\"cluster\":\"" FAKE_CLUSTER "\",\"epoch\":\"1\","
				      "\"node\":\"%016x\",\"members\":[",
				      i + 1);
		for (int j = 0; j < FAKES; j++)
			n += (size_t)snprintf(
				f->config + n, sizeof(f->config) - n,
				"%s{\"id\":\"%016x\",\"url\":\"http://127.0.0.1:%d\"}",
				j ? "," : "", j + 1, fc->nodes[j].port);
		snprintf(f->config + n, sizeof(f->config) - n, "]}");
	}
	*state = fc;
	return 0;
}

static int fakes_teardown(void **state)
{
	struct fake_cluster *fc = *state;

	for (int i = 0; i < FAKES; i++)
		fake_stop(&fc->nodes[i]);
	free(fc);
	return 0;
}

static int fail_with_einval(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	(void)arg;
	(void)cur;
	(void)next;
	return CAS_EINVAL;
}

static void test_fake_round_trip(void **state)
{
	struct fake_cluster *fc = *state;
	static const unsigned char bin[] = {'a', 0, 'b', 0xff, 0, '\n'};
	struct cas_client *c;
	struct cas_value v;
	uint64_t version = 0;

	assert_int_equal(cas_client_open(fc->list, NULL, &c, NULL, 0), CAS_OK);
	assert_int_equal(cas_read(c, "rt", 0, &v), CAS_OK);
	assert_int_equal(v.version, 0);
	assert_int_equal(v.len, 0);
	cas_value_clear(&v);

	assert_int_equal(cas_put(c, "rt", bin, sizeof(bin), 0, &version), CAS_OK);
	assert_int_equal(version, 1);
	assert_int_equal(cas_read(c, "rt", 0, &v), CAS_OK);
	assert_int_equal(v.version, 1);
	assert_int_equal(v.len, sizeof(bin));
	assert_memory_equal(v.data, bin, sizeof(bin));
	cas_value_clear(&v);

	assert_int_equal(cas_cas(c, "rt", 1, "two", 3, 0, &version), CAS_OK);
	assert_int_equal(version, 2);
	assert_int_equal(cas_cas(c, "rt", 1, "stale", 5, 0, &version), CAS_EVERSION);
	assert_int_equal(version, 2);
	assert_int_equal(cas_put(c, "rt", NULL, 0, 0, &version), CAS_OK);
	assert_int_equal(version, 3);

	/* A code of the change function comes back with the value as is. */
	assert_int_equal(cas_change(c, "rt", fail_with_einval, NULL, 0, &v), CAS_EINVAL);
	assert_int_equal(v.version, 3);
	assert_int_equal(v.len, 0);
	cas_value_clear(&v);

	/* Deletes: a conditional one on a moved version changes nothing;
	 * the tombstone reads as absent and the next write is version 1. */
	assert_int_equal(cas_delete_version(c, "rt", 2, 0, &version), CAS_EVERSION);
	assert_int_equal(version, 3);
	assert_int_equal(cas_delete_version(c, "rt", 3, 0, &version), CAS_OK);
	assert_int_equal(version, 0);
	assert_int_equal(cas_read(c, "rt", 0, &v), CAS_OK);
	assert_int_equal(v.version, 0);
	assert_int_equal(v.len, 0);
	cas_value_clear(&v);
	assert_int_equal(cas_delete(c, "rt", NULL, NULL, 0, &v), CAS_OK);
	assert_int_equal(v.version, 0);
	cas_value_clear(&v);
	assert_int_equal(cas_cas(c, "rt", 0, "new", 3, 0, &version), CAS_OK);
	assert_int_equal(version, 1);

	for (size_t i = 0; i < cas_client_nodes(c); i++)
		assert_int_equal(cas_client_ping(c, i, 1000), CAS_OK);
	cas_client_close(c);
}

/* cas_client_stats counts every operation once, by kind and result, and
 * the REJECTs and retries of a proposer that lost a race. */
static void test_fake_stats(void **state)
{
	struct fake_cluster *fc = *state;
	struct cas_client_stats st;
	struct cas_client *c, *c2;
	struct cas_value v;
	uint64_t version;
	size_t k, r, sum = 0;

	assert_int_equal(cas_client_open(fc->list, NULL, &c, NULL, 0), CAS_OK);
	cas_client_stats(c, &st);
	for (k = 0; k < CAS_ROUND_KINDS; k++)
		for (r = 0; r < CAS_ROUND_RESULTS; r++)
			sum += st.rounds[k][r];
	assert_int_equal(sum + st.rejects + st.retries, 0);

	assert_int_equal(cas_read(c, "st", 0, &v), CAS_OK);
	cas_value_clear(&v);
	assert_int_equal(cas_put(c, "st", "a", 1, 0, &version), CAS_OK);
	assert_int_equal(cas_cas(c, "st", 7, "b", 1, 0, &version), CAS_EVERSION);
	assert_int_equal(cas_change(c, "st", fail_with_einval, NULL, 0, &v), CAS_EINVAL);
	cas_value_clear(&v);
	assert_int_equal(cas_touch(c, "st", 0, &version), CAS_OK);
	assert_int_equal(cas_delete_version(c, "st", 9, 0, &version), CAS_EVERSION);
	assert_int_equal(cas_delete(c, "st", NULL, NULL, 0, &v), CAS_OK);
	cas_value_clear(&v);
	/* Refused before any round: not an operation. */
	assert_int_equal(cas_read(c, "bad key", 0, &v), CAS_EKEY);
	cas_client_stats(c, &st);
	assert_int_equal(st.rounds[CAS_ROUND_READ][CAS_ROUND_OK], 1);
	assert_int_equal(st.rounds[CAS_ROUND_CHANGE][CAS_ROUND_OK], 1);
	assert_int_equal(st.rounds[CAS_ROUND_CHANGE][CAS_ROUND_VERSION], 1);
	assert_int_equal(st.rounds[CAS_ROUND_CHANGE][CAS_ROUND_REFUSED], 1);
	assert_int_equal(st.rounds[CAS_ROUND_TOUCH][CAS_ROUND_OK], 1);
	assert_int_equal(st.rounds[CAS_ROUND_DELETE][CAS_ROUND_VERSION], 1);
	assert_int_equal(st.rounds[CAS_ROUND_DELETE][CAS_ROUND_OK], 1);
	sum = 0;
	for (k = 0; k < CAS_ROUND_KINDS; k++)
		for (r = 0; r < CAS_ROUND_RESULTS; r++)
			sum += st.rounds[k][r];
	assert_int_equal(sum, 7);
	assert_int_equal(st.rejects + st.retries, 0);

	/* c's last accept promised its next ballot; a new proposer starts
	 * its counter below it, so its first prepare is rejected by every
	 * node, and it tries again above. */
	assert_int_equal(cas_put(c, "st", "c", 1, 0, &version), CAS_OK);
	assert_int_equal(cas_client_open(fc->list, NULL, &c2, NULL, 0), CAS_OK);
	assert_int_equal(cas_put(c2, "st", "d", 1, 0, &version), CAS_OK);
	cas_client_stats(c2, &st);
	assert_true(st.rejects >= 2);
	assert_true(st.retries >= 1);
	assert_int_equal(st.rounds[CAS_ROUND_CHANGE][CAS_ROUND_OK], 1);
	cas_client_close(c2);
	cas_client_close(c);
}

/* One node misbehaving in each way in turn: a majority still answers, and
 * the client does not wait for the odd one out. */
static void test_fake_minority_faults(void **state)
{
	struct fake_cluster *fc = *state;
	struct fake_node *odd = &fc->nodes[2];
	struct cas_client_config cfg = {.timeout_ms = 5000};
	struct cas_client *c;
	struct cas_value v;
	uint64_t t0, version;

	assert_int_equal(cas_client_open(fc->list, &cfg, &c, NULL, 0), CAS_OK);
	for (int fault = 0; fault < 5; fault++) {
		odd->prepare_status = fault == 0 ? 500 : fault == 1 ? 404 : 0;
		odd->accept_status = fault == 0 ? 500 : fault == 1 ? 404 : fault == 2 ? 400 : 0;
		odd->garbage = fault == 3;
		odd->silent = fault == 4;
		t0 = now_ms();
		for (int i = 0; i < 5; i++) {
			assert_int_equal(cas_put(c, "minority", "x", 1, 0, &version), CAS_OK);
			assert_int_equal(cas_read(c, "minority", 0, &v), CAS_OK);
			assert_int_equal(v.version, version);
			cas_value_clear(&v);
		}
		assert_true(now_ms() - t0 < 2000);
	}
	odd->silent = false;
	odd->garbage = false;
	odd->prepare_status = odd->accept_status = 0;
	cas_client_close(c);
}

/* Two of three nodes broken: no majority, CAS_EUNAVAILABLE at the deadline. */
static void test_fake_majority_faults(void **state)
{
	struct fake_cluster *fc = *state;
	struct cas_client *c;
	struct cas_value v;
	uint64_t t0, t;

	assert_int_equal(cas_client_open(fc->list, NULL, &c, NULL, 0), CAS_OK);
	fc->nodes[0].prepare_status = fc->nodes[0].accept_status = 500;
	fc->nodes[1].garbage = true;
	t0 = now_ms();
	assert_int_equal(cas_read(c, "majority", 300, &v), CAS_EUNAVAILABLE);
	t = now_ms() - t0;
	/* The op may give up one backoff (<= 64 ms) before the deadline. */
	assert_in_range(t, 300 - 64 - 10, 300 + 500);
	assert_null(v.data);

	/* Prepares fine, accepts refused by two: the write cannot land. */
	fc->nodes[1].garbage = false;
	fc->nodes[0].prepare_status = 0;
	fc->nodes[1].accept_status = 503;
	t0 = now_ms();
	assert_int_equal(cas_put(c, "majority", "x", 1, 300, NULL), CAS_EUNAVAILABLE);
	assert_true(now_ms() - t0 < 300 + 500);
	fc->nodes[0].accept_status = fc->nodes[1].accept_status = 0;
	assert_int_equal(cas_read(c, "majority", 0, &v), CAS_OK);
	cas_value_clear(&v);
	cas_client_close(c);
}

/* A node that says 413 ends the operation at once: retrying cannot help. */
static void test_fake_413_is_fatal(void **state)
{
	struct fake_cluster *fc = *state;
	struct cas_client *c;
	uint64_t t0;

	assert_int_equal(cas_client_open(fc->list, NULL, &c, NULL, 0), CAS_OK);
	for (int i = 0; i < FAKES; i++)
		fc->nodes[i].accept_status = 413;
	t0 = now_ms();
	assert_int_equal(cas_put(c, "big", "x", 1, 5000, NULL), CAS_ETOOBIG);
	assert_true(now_ms() - t0 < 1000);
	for (int i = 0; i < FAKES; i++)
		fc->nodes[i].accept_status = 0;
	cas_client_close(c);
}

/* The client sends the binary form and reads replies in either form: a
 * node that answers in JSON still counts. A node older than the binary
 * form refuses every request (400): one such node is a minority fault,
 * two leave no majority. */
static void test_fake_wire_forms(void **state)
{
	struct fake_cluster *fc = *state;
	struct cas_client *c;
	struct cas_value v;
	uint64_t version;

	assert_int_equal(cas_client_open(fc->list, NULL, &c, NULL, 0), CAS_OK);
	for (int i = 0; i < FAKES; i++)
		fc->nodes[i].json_replies = true;
	assert_int_equal(cas_put(c, "forms", "json", 4, 0, &version), CAS_OK);
	assert_int_equal(cas_read(c, "forms", 0, &v), CAS_OK);
	assert_int_equal(v.version, version);
	assert_memory_equal(v.data, "json", 4);
	cas_value_clear(&v);
	for (int i = 0; i < FAKES; i++)
		fc->nodes[i].json_replies = false;

	fc->nodes[0].old = true;
	assert_int_equal(cas_put(c, "forms", "bin", 3, 0, &version), CAS_OK);
	fc->nodes[1].old = true;
	assert_int_equal(cas_put(c, "forms", "old", 3, 300, NULL), CAS_EUNAVAILABLE);
	fc->nodes[0].old = fc->nodes[1].old = false;
	assert_int_equal(cas_read(c, "forms", 0, &v), CAS_OK);
	assert_true(v.version >= version);
	cas_value_clear(&v);
	cas_client_close(c);
}

#define INCR_THREADS 8
#define INCR_EACH    25

/* Thread slot's k-th increment of a register holding INCR_THREADS
 * counters: exactly-once is checkable, even after an "outcome unknown". */
struct incr_step {
	int slot;
	long want;
};

static bool parse_counters(const struct cas_value *cur, long *cnt)
{
	char text[INCR_THREADS * 24];
	char *p = text, *end;

	memset(cnt, 0, INCR_THREADS * sizeof(*cnt));
	if (cur->len == 0)
		return true;
	if (cur->len >= sizeof(text))
		return false;
	memcpy(text, cur->data, cur->len);
	text[cur->len] = '\0';
	for (int i = 0; i < INCR_THREADS; i++) {
		cnt[i] = strtol(p, &end, 10);
		if (end == p)
			return false;
		p = end;
	}
	return true;
}

static int add_one(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	const struct incr_step *st = arg;
	long cnt[INCR_THREADS];
	char text[INCR_THREADS * 24];
	size_t len = 0;

	if (!parse_counters(cur, cnt))
		return CAS_EPROTO;
	if (cnt[st->slot] == st->want)
		return CAS_ENOCHANGE; /* an attempt of ours already landed */
	if (cnt[st->slot] != st->want - 1)
		return CAS_EINVAL; /* lost or doubled */
	cnt[st->slot]++;
	for (int i = 0; i < INCR_THREADS; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%ld", i ? " " : "",
					cnt[i]);
	next->data = malloc(len);
	if (next->data == NULL)
		return CAS_ENOMEM;
	memcpy(next->data, text, len);
	next->len = len;
	return CAS_OK;
}

struct incr {
	struct cas_client *c;
	int slot;
	int failures;
	int unknown; /* CAS_EUNAVAILABLE answers, retried */
};

static void *incr_main(void *arg)
{
	struct incr *in = arg;

	for (long k = 1; k <= INCR_EACH; k++) {
		struct incr_step st = {.slot = in->slot, .want = k};
		int rc, tries = 0;

		do {
			rc = cas_change(in->c, "counter", add_one, &st, 10000, NULL);
			if (rc == CAS_EUNAVAILABLE)
				in->unknown++;
		} while (rc == CAS_EUNAVAILABLE && ++tries < 100);
		if (rc != CAS_OK) {
			in->failures++;
			print_error("increment %d/%ld: %s\n", in->slot, k, cas_strerror(rc));
		}
	}
	return NULL;
}

/* Threads of two clients (two proposers) increment one register: every
 * increment lands exactly once, and connections are reused, not made per
 * operation. (A client runs one operation per key at a time: no batches
 * here.) */
static void test_fake_threads_one_key(void **state)
{
	struct fake_cluster *fc = *state;
	struct cas_client *c[2];
	struct incr in[INCR_THREADS];
	pthread_t th[INCR_THREADS];
	long cnt[INCR_THREADS];
	struct cas_value v;
	unsigned conns0[FAKES];
	int unknown = 0;

	for (int i = 0; i < FAKES; i++) {
		conns0[i] = __atomic_load_n(&fc->nodes[i].connections, __ATOMIC_SEQ_CST);
	}
	assert_int_equal(cas_client_open(fc->list, NULL, &c[0], NULL, 0), CAS_OK);
	assert_int_equal(cas_client_open(fc->list, NULL, &c[1], NULL, 0), CAS_OK);
	for (int i = 0; i < INCR_THREADS; i++) {
		in[i] = (struct incr){.c = c[i % 2], .slot = i};
		assert_int_equal(pthread_create(&th[i], NULL, incr_main, &in[i]), 0);
	}
	for (int i = 0; i < INCR_THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(in[i].failures, 0);
		unknown += in[i].unknown;
	}
	assert_int_equal(cas_read(c[0], "counter", 0, &v), CAS_OK);
	/* One version per increment: none doubled, none lost. */
	assert_int_equal(v.version, INCR_THREADS * INCR_EACH);
	assert_true(parse_counters(&v, cnt));
	for (int i = 0; i < INCR_THREADS; i++)
		assert_int_equal(cnt[i], INCR_EACH);
	cas_value_clear(&v);
	if (unknown > 0)
		print_message("(%d increments came back \"outcome unknown\" and were retried)\n",
			      unknown);

	/* Hundreds of rounds per node; without reuse, as many connections. */
	for (int i = 0; i < FAKES; i++) {
		unsigned made =
			__atomic_load_n(&fc->nodes[i].connections, __ATOMIC_SEQ_CST) - conns0[i];

		assert_true(made <= 2 * INCR_THREADS * 4);
	}
	cas_client_close(c[0]);
	cas_client_close(c[1]);
}

/* Threads of one client, each on keys of its own: their requests to a
 * node share batches (batch.h) when the nodes take them, and go one by
 * one to nodes that do not; either way every write lands once. */
#define OWN_THREADS 8
#define OWN_EACH    40

struct own {
	struct cas_client *c;
	int slot;
	int failures;
};

static void *own_main(void *arg)
{
	struct own *o = arg;
	char key[32], val[32];
	uint64_t version = 0;

	for (int k = 0; k < OWN_EACH; k++) {
		snprintf(key, sizeof(key), "own%d-%d", o->slot, k % 4);
		snprintf(val, sizeof(val), "%d", k);
		if (cas_put(o->c, key, val, strlen(val), 10000, &version) != CAS_OK)
			o->failures++;
		if (k % 3 == 0) {
			struct cas_value v;

			if (cas_read(o->c, key, 10000, &v) != CAS_OK || v.len != strlen(val) ||
			    memcmp(v.data, val, v.len) != 0)
				o->failures++;
			cas_value_clear(&v);
		}
	}
	return NULL;
}

static void threads_own_keys(struct fake_cluster *fc, bool batches)
{
	unsigned batches0[FAKES], items0[FAKES], b, n;
	struct own o[OWN_THREADS];
	pthread_t th[OWN_THREADS];
	struct cas_client *c;
	struct cas_value v;
	char key[32];

	for (int i = 0; i < FAKES; i++) {
		batches0[i] = __atomic_load_n(&fc->nodes[i].batches, __ATOMIC_SEQ_CST);
		items0[i] = __atomic_load_n(&fc->nodes[i].batch_items, __ATOMIC_SEQ_CST);
		fc->nodes[i].no_batch = !batches;
	}
	assert_int_equal(cas_client_open(fc->list, NULL, &c, NULL, 0), CAS_OK);
	for (int i = 0; i < OWN_THREADS; i++) {
		o[i] = (struct own){.c = c, .slot = i};
		assert_int_equal(pthread_create(&th[i], NULL, own_main, &o[i]), 0);
	}
	for (int i = 0; i < OWN_THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(o[i].failures, 0);
	}
	/* Each key holds its last write, at one version per write. */
	for (int i = 0; i < OWN_THREADS; i++) {
		for (int k = 0; k < 4; k++) {
			snprintf(key, sizeof(key), "own%d-%d", i, k);
			assert_int_equal(cas_read(c, key, 0, &v), CAS_OK);
			assert_int_equal(v.version, OWN_EACH / 4);
			cas_value_clear(&v);
		}
	}
	for (int i = 0; i < FAKES; i++) {
		b = __atomic_load_n(&fc->nodes[i].batches, __ATOMIC_SEQ_CST) - batches0[i];
		n = __atomic_load_n(&fc->nodes[i].batch_items, __ATOMIC_SEQ_CST) - items0[i];
		if (!batches) {
			assert_int_equal(b, 0);
			continue;
		}
		/* Every node got batches, and some held requests of more
		 * than one operation. */
		assert_true(b > 0);
		assert_true(n > b);
		print_message("(node %d: %u requests in %u batches)\n", i, n, b);
	}
	cas_client_close(c);
}

/* A node far slower than the other two: a lone client's requests to it
 * pile up behind the operations the two others finish. Past the
 * transfers a channel keeps per node, they go through the node's batch
 * pipe, over one connection, instead of abandoning a connection (and
 * making a new one) at every operation. */
static void test_fake_slow_node(void **state)
{
	struct fake_cluster *fc = *state;
	struct fake_node *slow = &fc->nodes[2];
	unsigned conns0, batches0, made;
	struct cas_client *c;
	uint64_t version = 0;
	char val[16];
	int waited;

	conns0 = __atomic_load_n(&slow->connections, __ATOMIC_SEQ_CST);
	batches0 = __atomic_load_n(&slow->batches, __ATOMIC_SEQ_CST);
	slow->delay_ms = 40;
	assert_int_equal(cas_client_open(fc->list, NULL, &c, NULL, 0), CAS_OK);
	for (int k = 0; k < 40; k++) {
		snprintf(val, sizeof(val), "%d", k);
		assert_int_equal(cas_put(c, "slow/k", val, strlen(val), 10000, &version), CAS_OK);
	}
	made = __atomic_load_n(&slow->connections, __ATOMIC_SEQ_CST) - conns0;
	/* Four transfers' connections and the pipe's; one more for slack. */
	assert_true(made <= 6);
	/* And the pipe carried requests (answered 40 ms late each). */
	for (waited = 0;
	     waited < 5000 && __atomic_load_n(&slow->batches, __ATOMIC_SEQ_CST) == batches0;
	     waited++)
		usleep(1000);
	assert_true(__atomic_load_n(&slow->batches, __ATOMIC_SEQ_CST) > batches0);
	print_message("(%u connections to the slow node for 40 operations)\n", made);
	slow->delay_ms = 0;
	cas_client_close(c);
}

static void test_fake_threads_batches(void **state)
{
	threads_own_keys(*state, true);
}

static void test_fake_threads_no_batches(void **state)
{
	threads_own_keys(*state, false);
}

/* Seeds of two clusters: the client refuses before it sends anything. */
static void test_fake_two_clusters(void **state)
{
	struct fake_cluster *fc = *state;
	struct cas_client *c;
	char err[256];
	char *p = strstr(fc->nodes[1].config, FAKE_CLUSTER);

	memcpy(p, "ffffffffffffffffffffffffffffffff", 32);
	assert_int_equal(cas_client_open(fc->list, NULL, &c, NULL, 0), CAS_OK);
	assert_int_equal(cas_client_connect(c, 2000, err, sizeof(err)), CAS_EINVAL);
	assert_non_null(strstr(err, "belongs to cluster"));
	assert_int_equal(cas_put(c, "k", "x", 1, 500, NULL), CAS_EINVAL);
	for (int i = 0; i < FAKES; i++)
		assert_int_equal(fc->nodes[i].requests, 0);
	cas_client_close(c);
	memcpy(p, FAKE_CLUSTER, 32);
}

/* Seeds mostly uninitialized: refused, nothing sent; all of them: "not
 * initialized (casctl init)". */
static void test_fake_uninitialized_seeds(void **state)
{
	struct fake_cluster *fc = *state;
	struct cas_client *c;
	char err[256], cluster[CAS_CLUSTER_HEX + 1];

	fc->nodes[0].uninitialized = fc->nodes[2].uninitialized = true;
	assert_int_equal(cas_client_open(fc->list, NULL, &c, NULL, 0), CAS_OK);
	assert_int_equal(cas_client_connect(c, 2000, err, sizeof(err)), CAS_EUNAVAILABLE);
	assert_non_null(strstr(err, "is not initialized"));
	cas_client_cluster(c, cluster);
	assert_string_equal(cluster, "");
	cas_client_close(c);
	fc->nodes[1].uninitialized = true;
	assert_int_equal(cas_client_open(fc->list, NULL, &c, NULL, 0), CAS_OK);
	assert_int_equal(cas_client_connect(c, 2000, err, sizeof(err)), CAS_EINVAL);
	assert_string_equal(err, "cluster not initialized (casctl init)");
	cas_client_close(c);
	for (int i = 0; i < FAKES; i++) {
		assert_int_equal(fc->nodes[i].requests, 0);
		fc->nodes[i].uninitialized = false;
	}
	/* One seed is enough when it answers: the client learns the rest. */
	snprintf(err, sizeof(err), "http://127.0.0.1:%d", fc->nodes[2].port);
	assert_int_equal(cas_client_open(err, NULL, &c, NULL, 0), CAS_OK);
	assert_int_equal(cas_put(c, "k", "x", 1, 2000, NULL), CAS_OK);
	cas_client_cluster(c, cluster);
	assert_string_equal(cluster, FAKE_CLUSTER);
	cas_client_close(c);
	/* A majority answered the put, so the seed and at least one node it
	 * named; the last may not have been reached before the close. */
	int others = 0;
	for (int i = 0; i < FAKES; i++)
		others += i != 2 && fc->nodes[i].requests > 0;
	assert_true(fc->nodes[2].requests > 0);
	assert_true(others >= 1);
}

/* Whether fake f keeps a row for key: an accepted value or a promise. */
static bool fake_holds(struct fake_node *f, const char *key)
{
	bool held = false;

	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->n_entries; i++)
		if (strcmp(f->entries[i].key, key) == 0)
			held = !cas_ballot_is_zero(f->entries[i].st.promise) ||
			       !cas_ballot_is_zero(f->entries[i].st.accepted);
	pthread_mutex_unlock(&f->lock);
	return held;
}

static unsigned fake_holders(struct fake_cluster *fc, const char *key)
{
	unsigned n = 0;

	for (int i = 0; i < FAKES; i++)
		n += fake_holds(&fc->nodes[i], key);
	return n;
}

/* Writes key, deletes it and notes its tombstone. */
static void deleted_and_noted(struct cas_client *c, const char *key, struct cas_tombstone *tomb)
{
	uint64_t version = 9;
	bool absent = false;

	assert_int_equal(cas_put(c, key, "x", 1, 0, NULL), CAS_OK);
	assert_int_equal(cas_delete_version(c, key, 1, 0, &version), CAS_OK);
	assert_int_equal(version, 0);
	assert_int_equal(cas_collect_note(c, key, 0, &absent, tomb), CAS_OK);
	assert_true(absent);
	assert_int_not_equal(tomb->proposer, 0);
	assert_int_equal(tomb->change, 2); /* the write, then the delete */
}

/* The collector's steps (PROTOCOL.md, "The purge") against acceptors with
 * the real rules and floors: the write-back needs every node, a node that
 * refuses it stops the purge before anything is dropped, a write after
 * the note stops it too, and a purge step that misses a node is finished
 * by a later run. */
static void test_fake_collect(void **state)
{
	struct fake_cluster *fc = *state;
	struct cas_client_config cfg = {.timeout_ms = 2000};
	struct cas_purge_result res;
	struct cas_tombstone tomb, live;
	struct cas_client *c;
	struct cas_value v;
	char why[256];
	uint64_t version = 0;
	bool absent = true;

	assert_int_equal(cas_client_open(fc->list, &cfg, &c, NULL, 0), CAS_OK);

	/* A live key is no candidate; a bad key is refused before any I/O. */
	assert_int_equal(cas_put(c, "live", "y", 1, 0, NULL), CAS_OK);
	assert_int_equal(cas_collect_note(c, "live", 0, &absent, &live), CAS_OK);
	assert_false(absent);
	assert_int_equal(live.proposer, 0);
	assert_int_equal(cas_collect_note(c, "a b", 0, &absent, &live), CAS_EKEY);
	assert_int_equal(cas_collect_purge(c, "a b", &live, 0, 0, &res), CAS_EKEY);

	/* Within the grace nothing is sent. */
	deleted_and_noted(c, "gc1", &tomb);
	assert_int_equal(fake_holders(fc, "gc1"), 3);
	assert_int_equal(cas_collect_purge(c, "gc1", &tomb, 60000, 0, &res), CAS_EINVAL);
	assert_int_equal(res.nodes, 0);

	/* One node refuses the write-back: the step fails, nothing is dropped. */
	fc->nodes[2].accept_status = 503;
	assert_int_equal(cas_collect_purge(c, "gc1", &tomb, 0, 400, &res), CAS_EUNAVAILABLE);
	assert_int_equal(res.dropped, 0);
	assert_int_equal(fake_holders(fc, "gc1"), 3);
	cas_client_errmsg(c, why, sizeof(why));
	assert_true(why[0] != '\0');
	fc->nodes[2].accept_status = 0;

	/* Every node accepts: every node drops the key and raises its floor. */
	assert_int_equal(cas_collect_purge(c, "gc1", &tomb, 0, 0, &res), CAS_OK);
	assert_int_equal(res.epoch, 1);
	assert_int_equal(res.nodes, 3);
	assert_int_equal(res.dropped, 3);
	assert_int_equal(res.kept, 0);
	assert_int_equal(fake_holders(fc, "gc1"), 0);
	for (int i = 0; i < FAKES; i++)
		assert_true(fc->nodes[i].floor > 0);
	/* Purged: absent, and the next write starts a new life above the
	 * floors. */
	assert_int_equal(cas_read(c, "gc1", 0, &v), CAS_OK);
	assert_int_equal(v.version, 0);
	cas_value_clear(&v);
	assert_int_equal(cas_put(c, "gc1", "z", 1, 0, &version), CAS_OK);
	assert_int_equal(version, 1);
	assert_int_equal(cas_read(c, "gc1", 0, &v), CAS_OK);
	assert_int_equal(v.version, 1);
	assert_memory_equal(v.data, "z", 1);
	cas_value_clear(&v);

	/* Written again after the note: not that tombstone, nothing written. */
	deleted_and_noted(c, "gc2", &tomb);
	assert_int_equal(cas_put(c, "gc2", "again", 5, 0, NULL), CAS_OK);
	assert_int_equal(cas_collect_purge(c, "gc2", &tomb, 0, 0, &res), CAS_EVERSION);
	assert_int_equal(fake_holders(fc, "gc2"), 3);
	assert_int_equal(cas_read(c, "gc2", 0, &v), CAS_OK);
	assert_int_equal(v.version, 1);
	assert_memory_equal(v.data, "again", 5);
	cas_value_clear(&v);
	/* Deleted again after the note: another tombstone, also left. */
	deleted_and_noted(c, "gc4", &tomb);
	assert_int_equal(cas_delete(c, "gc4", NULL, NULL, 0, NULL), CAS_OK);
	assert_int_equal(cas_put(c, "gc4", "x", 1, 0, NULL), CAS_OK);
	assert_int_equal(cas_delete(c, "gc4", NULL, NULL, 0, NULL), CAS_OK);
	assert_int_equal(cas_collect_purge(c, "gc4", &tomb, 0, 0, &res), CAS_EVERSION);
	assert_int_equal(fake_holders(fc, "gc4"), 3);

	/* A node misses the purge: the others drop the key, the call fails;
	 * a later run (noted again) finishes it. */
	deleted_and_noted(c, "gc3", &tomb);
	fc->nodes[0].purge_status = 500;
	assert_int_equal(cas_collect_purge(c, "gc3", &tomb, 0, 400, &res), CAS_EUNAVAILABLE);
	assert_true(fake_holds(&fc->nodes[0], "gc3"));
	assert_false(fake_holds(&fc->nodes[1], "gc3"));
	assert_false(fake_holds(&fc->nodes[2], "gc3"));
	fc->nodes[0].purge_status = 0;
	assert_int_equal(cas_collect_note(c, "gc3", 0, &absent, &tomb), CAS_OK);
	assert_true(absent);
	assert_int_equal(cas_collect_purge(c, "gc3", &tomb, 0, 0, &res), CAS_OK);
	assert_int_equal(res.dropped, 3);
	assert_int_equal(fake_holders(fc, "gc3"), 0);

	/* The live key was never touched by any of it. */
	assert_int_equal(cas_read(c, "live", 0, &v), CAS_OK);
	assert_int_equal(v.version, 1);
	cas_value_clear(&v);
	cas_client_close(c);
}

/* The configuration changes between the write-back and the purge: every
 * node refuses the purge's epoch, and the client writes back again in the
 * new configuration before it purges. */
static void test_fake_collect_new_epoch(void **state)
{
	struct fake_cluster *fc = *state;
	struct cas_purge_result res;
	struct cas_tombstone tomb;
	struct cas_client *c;

	assert_int_equal(cas_client_open(fc->list, NULL, &c, NULL, 0), CAS_OK);
	deleted_and_noted(c, "epoch", &tomb);
	/* The write-back's three accepts, then epoch 2. */
	fc->shared.bump_after_accepts = 3;
	assert_int_equal(cas_collect_purge(c, "epoch", &tomb, 0, 0, &res), CAS_OK);
	assert_int_equal(fc->shared.epoch, 2);
	assert_int_equal(res.epoch, 2);
	assert_int_equal(res.nodes, 3);
	assert_int_equal(res.dropped, 3);
	assert_int_equal(fake_holders(fc, "epoch"), 0);
	cas_client_close(c);
}

/* A silent node: the write-back cannot complete, so nothing is purged. */
static void test_fake_collect_node_down(void **state)
{
	struct fake_cluster *fc = *state;
	struct cas_client_config cfg = {.timeout_ms = 2000};
	struct cas_purge_result res;
	struct cas_tombstone tomb;
	struct cas_client *c;
	uint64_t t0;

	assert_int_equal(cas_client_open(fc->list, &cfg, &c, NULL, 0), CAS_OK);
	deleted_and_noted(c, "down", &tomb);
	fc->nodes[1].silent = true;
	t0 = now_ms();
	assert_int_equal(cas_collect_purge(c, "down", &tomb, 0, 500, &res), CAS_EUNAVAILABLE);
	assert_true(now_ms() - t0 < 500 + 600);
	assert_int_equal(res.dropped, 0);
	assert_int_equal(fake_holders(fc, "down"), 3);
	fc->nodes[1].silent = false;
	cas_client_close(c);
}

static void test_value_clear(void **state)
{
	struct cas_value v = {.version = 3, .data = malloc(4), .len = 4};

	(void)state;
	assert_non_null(v.data);
	cas_value_clear(&v);
	assert_int_equal(v.version, 0);
	assert_null(v.data);
	assert_int_equal(v.len, 0);
	cas_value_clear(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_rejects_bad_lists),
		cmocka_unit_test(test_open_needs_random_bytes),
		cmocka_unit_test(test_open_node_limit),
		cmocka_unit_test(test_open_normalizes),
		cmocka_unit_test(test_bad_keys_before_io),
		cmocka_unit_test(test_too_big_before_io),
		cmocka_unit_test(test_dead_cluster_unavailable),
		cmocka_unit_test(test_silent_cluster_deadline),
		cmocka_unit_test(test_value_clear),
		cmocka_unit_test_setup_teardown(test_fake_round_trip, fakes_setup, fakes_teardown),
		cmocka_unit_test_setup_teardown(test_fake_stats, fakes_setup, fakes_teardown),
		cmocka_unit_test_setup_teardown(test_fake_collect, fakes_setup, fakes_teardown),
		cmocka_unit_test_setup_teardown(test_fake_collect_node_down, fakes_setup,
						fakes_teardown),
		cmocka_unit_test_setup_teardown(test_fake_collect_new_epoch, fakes_setup,
						fakes_teardown),
		cmocka_unit_test_setup_teardown(test_fake_two_clusters, fakes_setup,
						fakes_teardown),
		cmocka_unit_test_setup_teardown(test_fake_uninitialized_seeds, fakes_setup,
						fakes_teardown),
		cmocka_unit_test_setup_teardown(test_fake_minority_faults, fakes_setup,
						fakes_teardown),
		cmocka_unit_test_setup_teardown(test_fake_majority_faults, fakes_setup,
						fakes_teardown),
		cmocka_unit_test_setup_teardown(test_fake_wire_forms, fakes_setup, fakes_teardown),
		cmocka_unit_test_setup_teardown(test_fake_413_is_fatal, fakes_setup,
						fakes_teardown),
		cmocka_unit_test_setup_teardown(test_fake_threads_no_batches, fakes_setup,
						fakes_teardown),
		cmocka_unit_test_setup_teardown(test_fake_threads_batches, fakes_setup,
						fakes_teardown),
		cmocka_unit_test_setup_teardown(test_fake_slow_node, fakes_setup, fakes_teardown),
		cmocka_unit_test_setup_teardown(test_fake_threads_one_key, fakes_setup,
						fakes_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

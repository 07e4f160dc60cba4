/* test_client.c - the client library without a cluster: node list parsing,
 * checks done before any I/O, and deadlines against dead or silent nodes. */
#include <errno.h>
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
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include <cas/client.h>

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
	snprintf(s->nodes, sizeof(s->nodes), "http://127.0.0.1:%d,http://127.0.0.1:%d,"
		 "http://127.0.0.1:%d", ports[0], ports[1], ports[2]);
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
	const char *bad[] = {"", "a b", "caf\xc3\xa9", "new\nline", "tab\t", "q?", "x%41",
			     long_key, NULL};
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
	assert_int_equal(cas_cas(c, "k", 3, big, CAS_DEFAULT_MAX_VALUE + 1, 0, NULL),
			 CAS_ETOOBIG);
	assert_true(now_ms() - t0 < 1000);
	assert_false(silent_cluster_contacted(&s));
	cas_client_close(c);
	silent_cluster_stop(&s);
	free(big);
}

static void test_dead_cluster_unavailable(void **state)
{
	struct cas_client_config cfg = {.timeout_ms = 5000};
	struct cas_client *c;
	struct cas_value v = {.version = 5};
	char nodes[128];
	uint64_t t0, t, version = 5;

	(void)state;
	snprintf(nodes, sizeof(nodes), "http://127.0.0.1:%d,http://127.0.0.1:%d,"
		 "http://127.0.0.1:%d", dead_port(), dead_port(), dead_port());
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
	assert_true(t >= 390);
	assert_true(t < 400 + 600);
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
		cmocka_unit_test(test_open_node_limit),
		cmocka_unit_test(test_open_normalizes),
		cmocka_unit_test(test_bad_keys_before_io),
		cmocka_unit_test(test_too_big_before_io),
		cmocka_unit_test(test_dead_cluster_unavailable),
		cmocka_unit_test(test_silent_cluster_deadline),
		cmocka_unit_test(test_value_clear),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_fs_options.c - casfs's mount options and the nodes= comma fix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "options.h"

/* Parses argv (NULL-terminated) the way casfs does; returns the code and
 * leaves what is left for libfuse in rest. */
static int parse(char **argv, const char *env, struct casfs_options *o, struct fuse_args *rest,
		 char *err, size_t errlen)
{
	int argc = 0;

	while (argv[argc])
		argc++;
	assert_int_equal(casfs_options_join_nodes(argc, argv, rest), CAS_OK);
	return casfs_options_parse(rest, env, o, err, errlen);
}

static void test_defaults_and_env(void **state)
{
	char *argv[] = {"casfs", "/mnt", NULL};
	struct casfs_options o;
	struct fuse_args rest;
	char err[256];

	(void)state;
	assert_int_equal(parse(argv, "http://a:1,http://b:2", &o, &rest, err, sizeof(err)), CAS_OK);
	assert_string_equal(o.nodes, "http://a:1,http://b:2");
	assert_int_equal(o.timeout_ms, CASFS_DEFAULT_TIMEOUT_MS);
	assert_int_equal(o.max_size, CAS_DEFAULT_MAX_VALUE);
	assert_false(o.cache);
	assert_int_equal(rest.argc, 2);
	casfs_options_clear(&o);
	fuse_opt_free_args(&rest);

	assert_int_equal(parse(argv, NULL, &o, &rest, err, sizeof(err)), CAS_EINVAL);
	assert_non_null(strstr(err, "CAS_NODES"));
	casfs_options_clear(&o);
	fuse_opt_free_args(&rest);
}

static void test_all_options(void **state)
{
	char *argv[] = {"casfs",
			"-f",
			"-o",
			"allow_other,nodes=http://127.0.0.1:1,http://127.0.0.1:2,https://h:3,"
			"timeout=2.5,cache",
			"-omax_size=64k,fsname=x",
			"/mnt",
			NULL};
	struct casfs_options o;
	struct fuse_args rest;
	char err[256];

	(void)state;
	assert_int_equal(parse(argv, "http://env:9", &o, &rest, err, sizeof(err)), CAS_OK);
	assert_string_equal(o.nodes, "http://127.0.0.1:1,http://127.0.0.1:2,https://h:3");
	assert_int_equal(o.timeout_ms, 2500);
	assert_true(o.cache);
	assert_int_equal(o.max_size, 65536);
	/* What casfs does not know stays for libfuse. */
	assert_int_equal(rest.argc, 5);
	assert_string_equal(rest.argv[1], "-o");
	assert_string_equal(rest.argv[2], "allow_other,fsname=x");
	assert_string_equal(rest.argv[3], "-f");
	assert_string_equal(rest.argv[4], "/mnt");
	casfs_options_clear(&o);
	fuse_opt_free_args(&rest);
}

static void test_fractional_timeout(void **state)
{
	char *argv[] = {"casfs", "-o", "nodes=http://a:1,timeout=0.0001", "/m", NULL};
	struct casfs_options o;
	struct fuse_args rest;
	char err[256];

	(void)state;
	assert_int_equal(parse(argv, NULL, &o, &rest, err, sizeof(err)), CAS_OK);
	assert_int_equal(o.timeout_ms, 1);
	casfs_options_clear(&o);
	fuse_opt_free_args(&rest);
}

static void test_bad_values(void **state)
{
	static const char *const bad[] = {
		"nodes=http://a:1,timeout=0",
		"nodes=http://a:1,timeout=-1",
		"nodes=http://a:1,timeout=abc",
		"nodes=http://a:1,timeout=1s",
		"nodes=http://a:1,timeout=nan",
		"nodes=http://a:1,timeout=99999",
		"nodes=http://a:1,max_size=",
		"nodes=http://a:1,max_size=-5",
		"nodes=http://a:1,max_size=12",
		"nodes=http://a:1,max_size=1x",
		"nodes=http://a:1,max_size=9999999999999",
		"nodes=",
	};
	struct casfs_options o;
	struct fuse_args rest;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = {"casfs", "-o", (char *)bad[i], "/m", NULL};

		err[0] = '\0';
		assert_int_equal(parse(argv, NULL, &o, &rest, err, sizeof(err)), CAS_EINVAL);
		assert_true(strlen(err) > 0);
		assert_null(strchr(err, '\n'));
		casfs_options_clear(&o);
		fuse_opt_free_args(&rest);
	}
}

/* -o metrics=ADDRESS:PORT: address literals only, a port from 1 to 65535. */
static void test_metrics_address(void **state)
{
	static const struct {
		const char *opt, *host;
		unsigned port;
	} good[] = {
		{"metrics=127.0.0.1:9101", "127.0.0.1", 9101},
		{"metrics=0.0.0.0:1", "0.0.0.0", 1},
		{"metrics=[::1]:65535", "::1", 65535},
		{"metrics=[fe80::1:2]:80", "fe80::1:2", 80},
	};
	static const char *const bad[] = {
		"metrics=",
		"metrics=:9101",
		"metrics=127.0.0.1",
		"metrics=127.0.0.1:",
		"metrics=127.0.0.1:0",
		"metrics=127.0.0.1:65536",
		"metrics=127.0.0.1:009101",
		"metrics=127.0.0.1:91a",
		"metrics=127.0.0.1:+80",
		"metrics=127.0.0.1:-80",
		"metrics=127.0.0.1: 80",
		"metrics=localhost:9101",
		"metrics=256.0.0.1:9101",
		"metrics=::1:9101",
		"metrics=[::1]9101",
		"metrics=[::1]:",
		"metrics=[::1",
		"metrics=[127.0.0.1]:9101",
		"metrics=[]:9101",
	};
	struct casfs_options o;
	struct fuse_args rest;
	char err[512], opt[128];
	size_t i;

	(void)state;
	{
		char *argv[] = {"casfs", "-o", "nodes=http://a:1", "/m", NULL};

		assert_int_equal(parse(argv, NULL, &o, &rest, err, sizeof(err)), CAS_OK);
		assert_null(o.metrics_host);
		assert_int_equal(o.metrics_port, 0);
		casfs_options_clear(&o);
		fuse_opt_free_args(&rest);
	}
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char *argv[] = {"casfs", "-o", opt, "/m", NULL};

		snprintf(opt, sizeof(opt), "nodes=http://a:1,http://b:2,%s,cache", good[i].opt);
		assert_int_equal(parse(argv, NULL, &o, &rest, err, sizeof(err)), CAS_OK);
		assert_string_equal(o.metrics_host, good[i].host);
		assert_int_equal(o.metrics_port, good[i].port);
		assert_string_equal(o.nodes, "http://a:1,http://b:2");
		assert_true(o.cache);
		/* Nothing of it is left for libfuse. */
		assert_int_equal(rest.argc, 2);
		casfs_options_clear(&o);
		fuse_opt_free_args(&rest);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = {"casfs", "-o", opt, "/m", NULL};

		snprintf(opt, sizeof(opt), "nodes=http://a:1,%s", bad[i]);
		err[0] = '\0';
		assert_int_equal(parse(argv, NULL, &o, &rest, err, sizeof(err)), CAS_EINVAL);
		/* One line that names the option and the value. */
		assert_non_null(strstr(err, bad[i]));
		assert_null(strchr(err, '\n'));
		assert_null(o.metrics_host);
		casfs_options_clear(&o);
		fuse_opt_free_args(&rest);
	}
}

static void test_join_keeps_other_commas(void **state)
{
	char *argv[] = {"casfs",
			"-o",
			"ro,nodes=http://a:1,http://b:2,allow_other,x=http://c",
			"-onodes=http://d:4,http://e:5",
			"-o",
			"uid=\\,1",
			NULL};
	struct fuse_args out;

	(void)state;
	assert_int_equal(casfs_options_join_nodes(6, argv, &out), CAS_OK);
	assert_int_equal(out.argc, 6);
	assert_string_equal(out.argv[2], "ro,nodes=http://a:1\\,http://b:2,allow_other,x=http://c");
	assert_string_equal(out.argv[3], "-onodes=http://d:4\\,http://e:5");
	assert_string_equal(out.argv[5], "uid=\\,1");
	fuse_opt_free_args(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_env),
		cmocka_unit_test(test_all_options),
		cmocka_unit_test(test_fractional_timeout),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_join_keeps_other_commas),
		cmocka_unit_test(test_metrics_address),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

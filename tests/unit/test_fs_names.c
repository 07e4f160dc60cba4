/* test_fs_names.c - xattr name parsing, register keys and the node id table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "inode.h"
#include "xattr.h"

static void test_xattr_kinds(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(casfs_xattr_parse("user.casfs.version", &v), CASFS_XA_VERSION);
	assert_int_equal(casfs_xattr_parse("user.casfs.key", &v), CASFS_XA_KEY);
	assert_int_equal(casfs_xattr_parse("user.casfs.cas.42", &v), CASFS_XA_CAS);
	assert_int_equal(v, 42);
	assert_int_equal(casfs_xattr_parse("user.casfs.cas.0", &v), CASFS_XA_CAS);
	assert_int_equal(v, 0);
	assert_int_equal(casfs_xattr_parse("user.casfs.cas.18446744073709551615", &v),
			 CASFS_XA_CAS);
	assert_true(v == UINT64_MAX);
	assert_int_equal(casfs_xattr_parse("user.casfs.cas.1", NULL), CASFS_XA_CAS);
	assert_int_equal(casfs_xattr_parse("user.mime_type", &v), CASFS_XA_USER);
	assert_int_equal(casfs_xattr_parse("user.casfsx", &v), CASFS_XA_USER);
	assert_int_equal(casfs_xattr_parse("security.capability", &v), CASFS_XA_OTHER);
	assert_int_equal(casfs_xattr_parse("trusted.x", &v), CASFS_XA_OTHER);
	assert_int_equal(casfs_xattr_parse("system.posix_acl_access", &v), CASFS_XA_OTHER);
	assert_int_equal(casfs_xattr_parse("userx", &v), CASFS_XA_OTHER);
}

static void test_xattr_bad_versions(void **state)
{
	static const char *const bad[] = {
		"user.casfs.cas.",
		"user.casfs.cas",
		"user.casfs.cas.-1",
		"user.casfs.cas.+1",
		"user.casfs.cas.01",
		"user.casfs.cas.1x",
		"user.casfs.cas. 1",
		"user.casfs.cas.18446744073709551616",
		"user.casfs.cas.99999999999999999999999",
		"user.casfs.versions",
		"user.casfs.",
		"user.casfs.other",
	};
	uint64_t v = 7;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(casfs_xattr_parse(bad[i], &v), CASFS_XA_RESERVED);
		assert_int_equal(v, 7);
	}
}

static void test_keys(void **state)
{
	unsigned char id[CASFS_ID_LEN];
	char key[CASFS_KEY_LEN];
	size_t i;

	(void)state;
	memset(id, 0, sizeof(id));
	casfs_inodes_key(id, key);
	assert_string_equal(key, "i/00000000000000000000000000000000");
	assert_true(casfs_inodes_is_root(id));
	assert_int_equal(casfs_inodes_ino(id), 1);
	for (i = 0; i < CASFS_ID_LEN; i++)
		id[i] = (unsigned char)(0xf0 + i);
	casfs_inodes_key(id, key);
	assert_string_equal(key, "i/f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff");
	assert_true(cas_key_valid(key, strlen(key)));
	assert_false(casfs_inodes_is_root(id));
	assert_true(casfs_inodes_ino(id) == 0xf0f1f2f3f4f5f6f7ULL);
	/* Ids whose first bytes are 0 or 1 still get an ino other than 0
	 * and the root's. */
	memset(id, 0, sizeof(id));
	id[15] = 1;
	assert_true(casfs_inodes_ino(id) > 1);
}

static void test_table(void **state)
{
	struct casfs_inodes *t = casfs_inodes_new();
	unsigned char id[CASFS_ID_LEN], got[CASFS_ID_LEN];
	uint64_t n, first = 0, again;
	size_t i;

	(void)state;
	assert_non_null(t);
	assert_int_equal(casfs_inodes_count(t), 1);
	assert_true(casfs_inodes_get(t, 1, got));
	assert_true(casfs_inodes_is_root(got));
	assert_false(casfs_inodes_get(t, 2, got));
	/* Many ids: the table grows and finds them all. */
	for (i = 0; i < 1000; i++) {
		memset(id, 0, sizeof(id));
		memcpy(id, &i, sizeof(i));
		id[15] = 0x55;
		assert_int_equal(casfs_inodes_ref(t, id, &n), CAS_OK);
		assert_true(n > 1);
		if (i == 0)
			first = n;
	}
	assert_int_equal(casfs_inodes_count(t), 1001);
	memset(id, 0, sizeof(id));
	id[15] = 0x55;
	/* The same id gets the same node id, with one more lookup. */
	assert_int_equal(casfs_inodes_ref(t, id, &again), CAS_OK);
	assert_true(again == first);
	assert_true(casfs_inodes_get(t, first, got));
	assert_memory_equal(got, id, CASFS_ID_LEN);
	casfs_inodes_forget(t, first, 1);
	assert_true(casfs_inodes_get(t, first, got));
	casfs_inodes_forget(t, first, 1);
	assert_false(casfs_inodes_get(t, first, got));
	assert_int_equal(casfs_inodes_count(t), 1000);
	/* A forgotten id comes back under a new node id, never the old. */
	assert_int_equal(casfs_inodes_ref(t, id, &again), CAS_OK);
	assert_true(again != first);
	/* The root is never forgotten; unknown ids are ignored. */
	casfs_inodes_forget(t, 1, 1000);
	casfs_inodes_forget(t, 999999, 1);
	assert_true(casfs_inodes_get(t, 1, got));
	casfs_inodes_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xattr_kinds),
		cmocka_unit_test(test_xattr_bad_versions),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

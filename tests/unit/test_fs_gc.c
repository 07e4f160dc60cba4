/* test_fs_gc.c - the held register's format (fs/gc.c): round trips and
 * malformed input. The collector's passes run against real nodes in
 * tests/e2e/fs_delete.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gc.h"

static void test_key(void **state)
{
	unsigned char sid[16];
	char key[CASFS_HELD_KEY_LEN];

	(void)state;
	for (int i = 0; i < 16; i++)
		sid[i] = (unsigned char)(i * 17);
	casfs_held_key(sid, key);
	assert_string_equal(key, "h/00112233445566778899aabbccddeeff");
}

static void test_roundtrip(void **state)
{
	unsigned char ids[3 * CASFS_ID_LEN], *buf;
	const unsigned char *back;
	size_t len, n;

	(void)state;
	for (size_t i = 0; i < sizeof(ids); i++)
		ids[i] = (unsigned char)i;
	for (size_t count = 0; count <= 3; count++) {
		assert_int_equal(casfs_held_encode(ids, count, &buf, &len), CAS_OK);
		assert_int_equal(len, 8 + count * CASFS_ID_LEN);
		assert_memory_equal(buf, "cH\x01\x00", 4);
		assert_int_equal(casfs_held_decode(buf, len, &back, &n), CAS_OK);
		assert_int_equal(n, count);
		if (count)
			assert_memory_equal(back, ids, count * CASFS_ID_LEN);
		free(buf);
	}
	assert_int_equal(casfs_held_encode(ids, CASFS_HELD_MAX + 1, &buf, &len), CAS_EINVAL);
}

static void test_malformed(void **state)
{
	unsigned char ids[CASFS_ID_LEN] = {1}, *buf, bad[64];
	const unsigned char *back;
	size_t len, n;

	(void)state;
	assert_int_equal(casfs_held_encode(ids, 1, &buf, &len), CAS_OK);
	/* Short, long, wrong magic, version, reserved byte, count. */
	for (size_t cut = 0; cut < len; cut++)
		assert_int_equal(casfs_held_decode(buf, cut, &back, &n), CAS_EINVAL);
	memcpy(bad, buf, len);
	bad[len] = 0;
	assert_int_equal(casfs_held_decode(bad, len + 1, &back, &n), CAS_EINVAL);
	for (size_t at = 0; at < 8; at++) {
		memcpy(bad, buf, len);
		bad[at] ^= 0x40;
		assert_int_equal(casfs_held_decode(bad, len, &back, &n), CAS_EINVAL);
	}
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

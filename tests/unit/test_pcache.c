/* test_pcache.c - unit tests of the client's cache of promises. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pcache.h"

static struct cas_reg val(const char *s)
{
	struct cas_reg r = {.version = 1, .len = strlen(s)};

	r.data = malloc(r.len);
	memcpy(r.data, s, r.len);
	return r;
}

static void test_take_put(void **state)
{
	struct cas_pcache *c;
	struct cas_ballot b;
	struct cas_reg v = val("hello");

	(void)state;
	assert_int_equal(cas_pcache_new(4, 1024, &c), CAS_OK);
	assert_false(cas_pcache_take(c, "nothing", &b, &v));
	cas_pcache_put(c, "k", (struct cas_ballot){5, 7}, &v);
	assert_null(v.data);
	assert_int_equal(cas_pcache_count(c), 1);
	assert_true(cas_pcache_take(c, "k", &b, &v));
	assert_int_equal(b.counter, 5);
	assert_int_equal(b.id, 7);
	assert_memory_equal(v.data, "hello", 5);
	free(v.data);
	/* Taken out: a promise starts one operation only. */
	assert_false(cas_pcache_take(c, "k", &b, &v));
	assert_int_equal(cas_pcache_count(c), 0);

	/* A second put replaces the first. */
	v = val("a");
	cas_pcache_put(c, "k", (struct cas_ballot){1, 1}, &v);
	v = val("bb");
	cas_pcache_put(c, "k", (struct cas_ballot){2, 1}, &v);
	assert_int_equal(cas_pcache_count(c), 1);
	assert_true(cas_pcache_take(c, "k", &b, &v));
	assert_int_equal(b.counter, 2);
	assert_int_equal(v.len, 2);
	free(v.data);
	cas_pcache_free(c);
}

static void test_bounds(void **state)
{
	struct cas_pcache *c;
	struct cas_ballot b;
	struct cas_reg v;
	char key[16];

	(void)state;
	assert_int_equal(cas_pcache_new(3, 10, &c), CAS_OK);
	for (int i = 0; i < 5; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		v = val("x");
		cas_pcache_put(c, key, (struct cas_ballot){(uint64_t)i, 1}, &v);
	}
	/* At most 3 entries: the oldest two went. */
	assert_int_equal(cas_pcache_count(c), 3);
	assert_false(cas_pcache_take(c, "k0", &b, &v));
	assert_false(cas_pcache_take(c, "k1", &b, &v));
	assert_true(cas_pcache_take(c, "k4", &b, &v));
	free(v.data);

	/* At most 10 bytes: a 9-byte value pushes out the oldest (k2) of
	 * the two 1-byte ones left. */
	v = val("123456789");
	cas_pcache_put(c, "big", (struct cas_ballot){9, 1}, &v);
	assert_int_equal(cas_pcache_count(c), 2);
	assert_false(cas_pcache_take(c, "k2", &b, &v));
	assert_true(cas_pcache_take(c, "big", &b, &v));
	free(v.data);
	assert_true(cas_pcache_take(c, "k3", &b, &v));
	free(v.data);

	/* A value over the byte bound is not kept (and freed: ASan). */
	v = val("12345678901");
	cas_pcache_put(c, "huge", (struct cas_ballot){9, 1}, &v);
	assert_null(v.data);
	assert_int_equal(cas_pcache_count(c), 0);
	cas_pcache_free(c);
}

static void test_many_keys(void **state)
{
	struct cas_pcache *c;
	struct cas_ballot b;
	struct cas_reg v;
	char key[32];

	(void)state;
	assert_int_equal(cas_pcache_new(100000, 1 << 20, &c), CAS_OK);
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "i/%08x", i * 2654435761u);
		v = val(key);
		cas_pcache_put(c, key, (struct cas_ballot){(uint64_t)i, 2}, &v);
	}
	assert_int_equal(cas_pcache_count(c), 5000);
	for (int i = 0; i < 5000; i += 7) {
		snprintf(key, sizeof(key), "i/%08x", i * 2654435761u);
		assert_true(cas_pcache_take(c, key, &b, &v));
		assert_int_equal(b.counter, (uint64_t)i);
		assert_memory_equal(v.data, key, strlen(key));
		free(v.data);
	}
	cas_pcache_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_take_put),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_many_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_err.c - unit tests of the error table, its mapping to errno, and
 * which keys are valid. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cas/cas.h>

static void test_errors_table(void **state)
{
	(void)state;
	for (int i = 0; i < CAS_ERR_COUNT; i++)
		assert_non_null(cas_strerror(i));
	assert_string_equal(cas_strerror(-1), "unknown error");
	assert_int_equal(cas_errno(CAS_EVERSION), ESTALE);
	assert_int_equal(cas_errno(CAS_EUNAVAILABLE), ETIMEDOUT);
	assert_int_equal(cas_errno(CAS_ETOOBIG), EFBIG);
	assert_int_equal(cas_errno(CAS_OK), 0);
	assert_true(cas_key_valid("i/0123abcd", 10));
	assert_true(cas_key_valid("a.b_c:d@e-f", 11));
	assert_false(cas_key_valid("", 0));
	assert_false(cas_key_valid("a b", 3));
	assert_false(cas_key_valid("a\0b", 3));
	assert_false(cas_key_valid("é", strlen("é")));
	char longkey[CAS_KEY_MAX + 2];

	memset(longkey, 'k', sizeof(longkey));
	assert_true(cas_key_valid(longkey, CAS_KEY_MAX));
	assert_false(cas_key_valid(longkey, CAS_KEY_MAX + 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errors_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

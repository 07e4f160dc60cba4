/* test_ballot.c - unit tests of ballots: their total order, counter first,
 * then proposer id. */
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ballot.h"
#include "msgs.h"

static void test_ballot_order(void **state)
{
	(void)state;
	assert_true(cas_ballot_cmp(B(1, 9), B(2, 1)) < 0);
	assert_true(cas_ballot_cmp(B(2, 1), B(1, 9)) > 0);
	/* Same counter: the id decides. */
	assert_true(cas_ballot_cmp(B(5, 1), B(5, 2)) < 0);
	assert_true(cas_ballot_cmp(B(5, 2), B(5, 1)) > 0);
	assert_int_equal(cas_ballot_cmp(B(5, 2), B(5, 2)), 0);
	/* 64-bit parts compare as unsigned. */
	assert_true(cas_ballot_cmp(B(UINT64_MAX, 1), B(1, UINT64_MAX)) > 0);
	assert_true(cas_ballot_is_zero(B(0, 0)));
	assert_false(cas_ballot_is_zero(B(0, 1)));
	assert_int_equal(cas_ballot_max(B(3, 1), B(2, 7)).counter, 3);
	assert_int_equal(cas_ballot_max(B(3, 1), B(3, 7)).id, 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ballot_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

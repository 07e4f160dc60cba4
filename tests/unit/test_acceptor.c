/* test_acceptor.c - unit tests of the acceptor's rules, and one test for
 * each known mistake of other implementations on the acceptor's side
 * (DESIGN.md). */
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "acceptor.h"
#include "ballot.h"
#include "msgs.h"

static void test_acceptor_prepare_fresh(void **state)
{
	struct cas_acceptor_state st = {0};
	struct cas_msg req = prepare_msg(B(1, 1)), reply;

	(void)state;
	assert_true(cas_acceptor_handle(&st, &req, &reply));
	assert_int_equal(reply.type, CAS_MSG_PROMISE);
	assert_true(cas_ballot_is_zero(reply.ballot));
	assert_int_equal(reply.value.version, 0);
	assert_int_equal(reply.value.len, 0);
	assert_int_equal(cas_ballot_cmp(st.promise, B(1, 1)), 0);
}

static void test_acceptor_prepare_rejects_not_higher(void **state)
{
	struct cas_acceptor_state st = {.promise = B(5, 2)};
	struct cas_msg req, reply;

	(void)state;
	req = prepare_msg(B(5, 2)); /* equal */
	assert_false(cas_acceptor_handle(&st, &req, &reply));
	assert_int_equal(reply.type, CAS_MSG_REJECT);
	assert_int_equal(cas_ballot_cmp(reply.ballot, B(5, 2)), 0);
	req = prepare_msg(B(4, 9)); /* lower counter, higher id */
	assert_false(cas_acceptor_handle(&st, &req, &reply));
	assert_int_equal(reply.type, CAS_MSG_REJECT);
	assert_int_equal(cas_ballot_cmp(st.promise, B(5, 2)), 0);
}

/* Known mistake: comparing only the counter of a ballot. Two proposers
 * with the same counter must not both get a promise. */
static void test_mistake_counter_only_compare(void **state)
{
	struct cas_acceptor_state st = {0};
	struct cas_msg req, reply;

	(void)state;
	req = prepare_msg(B(7, 2));
	assert_true(cas_acceptor_handle(&st, &req, &reply));
	req = prepare_msg(B(7, 1));
	assert_false(cas_acceptor_handle(&st, &req, &reply));
	assert_int_equal(reply.type, CAS_MSG_REJECT);
	req = accept_msg(B(7, 1), "x", 1);
	assert_false(cas_acceptor_handle(&st, &req, &reply));
	assert_int_equal(reply.type, CAS_MSG_REJECT);
	req = prepare_msg(B(7, 3));
	assert_true(cas_acceptor_handle(&st, &req, &reply));
	assert_int_equal(reply.type, CAS_MSG_PROMISE);
}

/* Known mistake: returning the promised ballot instead of the accepted
 * one. After accepting at b1 and promising b2, a prepare at b3 must report
 * b1 with its value. */
static void test_mistake_promise_returns_accepted(void **state)
{
	struct cas_acceptor_state st = {0};
	struct cas_msg req, reply;

	(void)state;
	req = prepare_msg(B(1, 1));
	cas_acceptor_handle(&st, &req, &reply);
	req = accept_msg(B(1, 1), "v1", 1);
	assert_true(cas_acceptor_handle(&st, &req, &reply));
	assert_int_equal(reply.type, CAS_MSG_ACCEPTED);
	req = prepare_msg(B(2, 1));
	assert_true(cas_acceptor_handle(&st, &req, &reply));
	req = prepare_msg(B(3, 1));
	assert_true(cas_acceptor_handle(&st, &req, &reply));
	assert_int_equal(reply.type, CAS_MSG_PROMISE);
	assert_int_equal(cas_ballot_cmp(reply.ballot, B(1, 1)), 0);
	assert_int_equal(reply.value.len, 2);
	assert_memory_equal(reply.value.data, "v1", 2);
}

/* Known mistake: conflict replies without the blocking ballot. */
static void test_mistake_reject_carries_blocking(void **state)
{
	struct cas_acceptor_state st = {.promise = B(9, 4), .accepted = B(8, 1)};
	struct cas_msg req, reply;

	(void)state;
	req = accept_msg(B(8, 5), "y", 2);
	assert_false(cas_acceptor_handle(&st, &req, &reply));
	assert_int_equal(reply.type, CAS_MSG_REJECT);
	assert_int_equal(cas_ballot_cmp(reply.ballot, B(9, 4)), 0);
	/* The blocking ballot is the higher of promise and accepted. */
	st.promise = B(3, 1);
	st.accepted = B(6, 2);
	req = prepare_msg(B(5, 5));
	assert_false(cas_acceptor_handle(&st, &req, &reply));
	assert_int_equal(cas_ballot_cmp(reply.ballot, B(6, 2)), 0);
}

static void test_acceptor_accept_rules(void **state)
{
	struct cas_acceptor_state st = {.promise = B(4, 1)};
	struct cas_msg req, reply;

	(void)state;
	req = accept_msg(B(3, 9), "low", 1);
	assert_false(cas_acceptor_handle(&st, &req, &reply));
	assert_int_equal(st.value.len, 0);
	/* Equal to the promise: accepted. */
	req = accept_msg(B(4, 1), "eq", 1);
	assert_true(cas_acceptor_handle(&st, &req, &reply));
	assert_int_equal(reply.type, CAS_MSG_ACCEPTED);
	assert_int_equal(cas_ballot_cmp(reply.ballot, B(4, 1)), 0);
	assert_int_equal(cas_ballot_cmp(st.accepted, B(4, 1)), 0);
	/* Higher than the promise without a prepare: accepted too, and the
	 * promise follows. */
	req = accept_msg(B(6, 1), "hi", 2);
	assert_true(cas_acceptor_handle(&st, &req, &reply));
	assert_int_equal(cas_ballot_cmp(st.promise, B(6, 1)), 0);
	assert_int_equal(st.value.version, 2);
	/* Unknown request types change nothing. */
	req.type = CAS_MSG_PROMISE;
	assert_false(cas_acceptor_handle(&st, &req, &reply));
	assert_int_equal(reply.type, CAS_MSG_REJECT);
}

/* The one-round-trip optimization, acceptor side: an accept may carry the
 * proposer's next ballot, promised in the same durable write. */
static void test_accept_promises_next(void **state)
{
	struct cas_acceptor_state st = {0};
	struct cas_msg req, reply;

	(void)state;
	req = accept_msg(B(2, 1), "v", 1);
	req.next = B(3, 1);
	assert_true(cas_acceptor_handle(&st, &req, &reply));
	assert_int_equal(reply.type, CAS_MSG_ACCEPTED);
	assert_int_equal(cas_ballot_cmp(reply.next, B(3, 1)), 0);
	assert_int_equal(cas_ballot_cmp(st.promise, B(3, 1)), 0);
	assert_int_equal(cas_ballot_cmp(st.accepted, B(2, 1)), 0);
	/* Another proposer's prepare at or below the promise is refused and
	 * told to go above it. */
	req = prepare_msg(B(3, 0));
	assert_false(cas_acceptor_handle(&st, &req, &reply));
	assert_int_equal(cas_ballot_cmp(reply.ballot, B(3, 1)), 0);
	/* The promised ballot's accept goes through. */
	req = accept_msg(B(3, 1), "w", 2);
	assert_true(cas_acceptor_handle(&st, &req, &reply));
	assert_true(cas_ballot_is_zero(reply.next));
	assert_int_equal(cas_ballot_cmp(st.promise, B(3, 1)), 0);
	/* A "next" not above the ballot promises nothing more. */
	req = accept_msg(B(4, 1), "x", 3);
	req.next = B(4, 0);
	assert_true(cas_acceptor_handle(&st, &req, &reply));
	assert_true(cas_ballot_is_zero(reply.next));
	assert_int_equal(cas_ballot_cmp(st.promise, B(4, 1)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_acceptor_prepare_fresh),
		cmocka_unit_test(test_acceptor_prepare_rejects_not_higher),
		cmocka_unit_test(test_mistake_counter_only_compare),
		cmocka_unit_test(test_mistake_promise_returns_accepted),
		cmocka_unit_test(test_mistake_reject_carries_blocking),
		cmocka_unit_test(test_acceptor_accept_rules),
		cmocka_unit_test(test_accept_promises_next),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

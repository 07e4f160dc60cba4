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

static struct cas_msg purge_msg(struct cas_ballot b)
{
	struct cas_msg m = prepare_msg(b);

	m.type = CAS_MSG_PURGE;
	return m;
}

/* The drop rule (acceptor.h, "Deletion"): only the tombstone the
 * collector wrote back, at exactly its ballot. */
static void test_purge_drops_only_that_tombstone(void **state)
{
	struct cas_acceptor_state st = {.promise = B(9, 1), .accepted = B(7, 2)};
	struct cas_msg req, reply;
	uint64_t floor = 3;

	(void)state;
	/* A tombstone accepted at 7/2, promised past it since (9/1): dropped,
	 * and the floor covers the promise, not only the tombstone's ballot:
	 * an accept between them would otherwise break the promise. */
	assert_true(cas_acceptor_may_drop(&st, B(7, 2)));
	req = purge_msg(B(7, 2));
	assert_int_equal(cas_acceptor_step(&st, &floor, &req, &reply), CAS_ACCEPTOR_DROP);
	assert_int_equal(reply.type, CAS_MSG_PURGED);
	assert_true(cas_ballot_is_zero(reply.ballot));
	assert_int_equal(floor, 9);
	{
		struct cas_acceptor_state gone = {0};
		struct cas_msg between = accept_msg(B(8, 5), "x", 1);

		assert_int_equal(cas_acceptor_step(&gone, &floor, &between, &reply),
				 CAS_ACCEPTOR_KEEP);
		assert_int_equal(reply.type, CAS_MSG_REJECT);
	}
	/* The floor never goes down. */
	floor = 50;
	assert_int_equal(cas_acceptor_step(&st, &floor, &req, &reply), CAS_ACCEPTOR_DROP);
	assert_int_equal(floor, 50);
	/* Another ballot (an older write-back, or one past it): kept, and
	 * the answer says what the acceptor holds. */
	req = purge_msg(B(7, 1));
	assert_int_equal(cas_acceptor_step(&st, &floor, &req, &reply), CAS_ACCEPTOR_KEEP);
	assert_int_equal(reply.type, CAS_MSG_PURGED);
	assert_int_equal(cas_ballot_cmp(reply.ballot, B(7, 2)), 0);
	assert_false(cas_acceptor_may_drop(&st, B(8, 2)));
	/* A live value at that ballot is no tombstone. */
	st.value.version = 4;
	assert_false(cas_acceptor_may_drop(&st, B(7, 2)));
	req = purge_msg(B(7, 2));
	assert_int_equal(cas_acceptor_step(&st, &floor, &req, &reply), CAS_ACCEPTOR_KEEP);
	assert_int_equal(floor, 50);
	/* Nothing held: nothing to drop, never a zero ballot. */
	memset(&st, 0, sizeof(st));
	assert_false(cas_acceptor_may_drop(&st, B(0, 0)));
	req = purge_msg(B(1, 1));
	assert_int_equal(cas_acceptor_step(&st, &floor, &req, &reply), CAS_ACCEPTOR_KEEP);
	assert_true(cas_ballot_is_zero(reply.ballot));
}

/* The floor: on a key the acceptor does not hold, every prepare and
 * accept at or below it is refused with the highest ballot of its
 * counter, so that a stale promise (a cached one, or an accept delayed
 * from before the purge) cannot bring the old value back. */
static void test_floor_refuses_stale_ballots(void **state)
{
	struct cas_acceptor_state st = {0};
	struct cas_msg req, reply;
	uint64_t floor = 7;

	(void)state;
	req = accept_msg(B(5, 3), "old+1", 4); /* the stale cached accept */
	assert_int_equal(cas_acceptor_step(&st, &floor, &req, &reply), CAS_ACCEPTOR_KEEP);
	assert_int_equal(reply.type, CAS_MSG_REJECT);
	assert_int_equal(reply.ballot.counter, 7);
	assert_true(reply.ballot.id == UINT64_MAX);
	req = prepare_msg(B(7, 9)); /* the floor's own counter, any id */
	assert_int_equal(cas_acceptor_step(&st, &floor, &req, &reply), CAS_ACCEPTOR_KEEP);
	assert_int_equal(reply.type, CAS_MSG_REJECT);
	assert_true(cas_ballot_is_zero(st.promise));
	/* Past the floor: the ordinary rules, from nothing. */
	req = prepare_msg(B(8, 1));
	assert_int_equal(cas_acceptor_step(&st, &floor, &req, &reply), CAS_ACCEPTOR_STORE);
	assert_int_equal(reply.type, CAS_MSG_PROMISE);
	assert_true(cas_ballot_is_zero(reply.ballot));
	assert_int_equal(reply.value.version, 0);
	/* A key held follows its own promise and accepted ballot only. */
	req = accept_msg(B(8, 1), "new", 1);
	assert_int_equal(cas_acceptor_step(&st, &floor, &req, &reply), CAS_ACCEPTOR_STORE);
	floor = 100;
	req = prepare_msg(B(9, 1));
	assert_int_equal(cas_acceptor_step(&st, &floor, &req, &reply), CAS_ACCEPTOR_STORE);
	assert_int_equal(reply.type, CAS_MSG_PROMISE);
	/* Queries are never refused, and a floor of 0 is none. */
	memset(&st, 0, sizeof(st));
	req.type = CAS_MSG_QUERY;
	assert_int_equal(cas_acceptor_step(&st, &floor, &req, &reply), CAS_ACCEPTOR_KEEP);
	assert_int_equal(reply.type, CAS_MSG_CURRENT);
	floor = 0;
	req = prepare_msg(B(1, 1));
	assert_int_equal(cas_acceptor_step(&st, &floor, &req, &reply), CAS_ACCEPTOR_STORE);
}

/* Section 3.1's procedure on three acceptors, end to end: after a write
 * with a promise cached, a delete, the write-back of the tombstone by
 * all and the purge, the cached promise's accept is refused everywhere. */
static void test_purge_then_stale_cache(void **state)
{
	struct cas_acceptor_state st[3];
	uint64_t floor[3] = {0, 0, 0};
	struct cas_msg req, reply;

	(void)state;
	memset(st, 0, sizeof(st));
	for (int i = 0; i < 3; i++) {
		/* v1 at 1/1, promising 2/1 for the proposer's next op. */
		req = accept_msg(B(1, 1), "v1", 1);
		req.next = B(2, 1);
		assert_int_equal(cas_acceptor_step(&st[i], &floor[i], &req, &reply),
				 CAS_ACCEPTOR_STORE);
		/* Another proposer deletes at 3/2 (after its prepare), then
		 * the collector writes the tombstone back at 5/3 to all. */
		req = prepare_msg(B(3, 2));
		cas_acceptor_step(&st[i], &floor[i], &req, &reply);
		req = accept_msg(B(3, 2), "", 0);
		cas_acceptor_step(&st[i], &floor[i], &req, &reply);
		req = prepare_msg(B(5, 3));
		cas_acceptor_step(&st[i], &floor[i], &req, &reply);
		req = accept_msg(B(5, 3), "", 0);
		assert_int_equal(cas_acceptor_step(&st[i], &floor[i], &req, &reply),
				 CAS_ACCEPTOR_STORE);
		req = purge_msg(B(5, 3));
		assert_int_equal(cas_acceptor_step(&st[i], &floor[i], &req, &reply),
				 CAS_ACCEPTOR_DROP);
		memset(&st[i], 0, sizeof(st[i]));
		/* The first proposer's cached promise 2/1, built on v1. */
		req = accept_msg(B(2, 1), "v2", 2);
		assert_int_equal(cas_acceptor_step(&st[i], &floor[i], &req, &reply),
				 CAS_ACCEPTOR_KEEP);
		assert_int_equal(reply.type, CAS_MSG_REJECT);
		assert_int_equal(reply.ballot.counter, 5);
	}
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
		cmocka_unit_test(test_purge_drops_only_that_tombstone),
		cmocka_unit_test(test_floor_refuses_stale_ballots),
		cmocka_unit_test(test_purge_then_stale_cache),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

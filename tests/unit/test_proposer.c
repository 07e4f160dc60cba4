/* test_proposer.c - unit tests of the proposer: ballots, rounds against
 * three in-memory acceptors, and one test for each known mistake of other
 * implementations on the proposer's side (DESIGN.md). */
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
#include "proposer.h"

#define NODES 3

/* An in-memory cluster: three acceptors whose states own their bytes. */
struct mini {
	struct cas_acceptor_state acc[NODES];
	struct cas_proposer prop;
	uint64_t rng;
	/* Every accept sent, to check that no ballot carries two values. */
	struct cas_ballot sent_ballot[64];
	char sent_value[64][32];
	size_t n_sent;
};

static void mini_init(struct mini *m, uint64_t id)
{
	memset(m, 0, sizeof(*m));
	cas_proposer_init(&m->prop, id);
	m->rng = 1;
}

static void mini_free(struct mini *m)
{
	for (int i = 0; i < NODES; i++)
		free(m->acc[i].value.data);
}

/* Delivers msg to acceptor i and keeps the state's bytes owned. */
static void deliver(struct mini *m, int i, const struct cas_msg *msg, struct cas_msg *reply)
{
	unsigned char *old = m->acc[i].value.data;

	if (cas_acceptor_handle(&m->acc[i], msg, reply) && msg->type == CAS_MSG_ACCEPT) {
		struct cas_reg copy;

		assert_int_equal(cas_reg_copy(&copy, &m->acc[i].value), CAS_OK);
		m->acc[i].value = copy;
		free(old);
	}
}

static void record_accept(struct mini *m, const struct cas_msg *msg)
{
	size_t n = msg->value.len < 31 ? msg->value.len : 31;

	assert_true(m->n_sent < 64);
	m->sent_ballot[m->n_sent] = msg->ballot;
	if (n) /* a tombstone has no bytes, and data may be NULL */
		memcpy(m->sent_value[m->n_sent], msg->value.data, n);
	m->sent_value[m->n_sent][n] = 0;
	m->n_sent++;
}

static int fn_set(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	const char *s = arg;

	(void)cur;
	next->len = strlen(s);
	next->data = malloc(next->len);
	memcpy(next->data, s, next->len);
	return CAS_OK;
}

static int fn_identity(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	(void)arg;
	(void)cur;
	(void)next;
	return CAS_ENOCHANGE;
}

static int fn_calls;

static int fn_expect_v1(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	fn_calls++;
	if (cur->version != 1)
		return CAS_EVERSION;
	return fn_set(arg, cur, next);
}

static void op_setup(struct cas_op *op, cas_change_fn fn, void *arg, uint64_t op_id)
{
	struct cas_op_config cfg = {
		.key = "k",
		.n_nodes = NODES,
		.fn = fn,
		.arg = arg,
		.op_id = op_id,
		.deadline_ms = 1000,
		.max_value = 1024,
	};

	cas_op_init(op, &cfg);
}

/* Runs op to completion, delivering each SEND to the nodes in mask (bit i
 * set: node i answers; else it is down) in order. */
static int run_op(struct mini *m, struct cas_op *op, unsigned mask)
{
	struct cas_effect eff;
	uint64_t now = 0;

	cas_op_start(op, &m->prop, &eff);
	for (int steps = 0; steps < 1000; steps++) {
		if (eff.kind == CAS_EFFECT_DONE)
			return op->result;
		if (eff.kind == CAS_EFFECT_SLEEP) {
			now = eff.until_ms;
			cas_op_wake(op, &m->prop, now, &eff);
			continue;
		}
		assert_int_equal(eff.kind, CAS_EFFECT_SEND);
		const struct cas_msg *msg = eff.msg;
		uint32_t attempt = eff.attempt;
		struct cas_effect next = {.kind = CAS_EFFECT_WAIT};

		if (msg->type == CAS_MSG_ACCEPT)
			record_accept(m, msg);
		for (int i = 0; i < NODES && next.kind == CAS_EFFECT_WAIT; i++) {
			struct cas_msg reply;

			if (mask & (1u << i)) {
				deliver(m, i, msg, &reply);
				cas_op_on_reply(op, &m->prop, i, attempt, &reply, now, &m->rng,
						&next);
			} else {
				cas_op_on_reply(op, &m->prop, i, attempt, NULL, now, &m->rng,
						&next);
			}
		}
		if (next.kind == CAS_EFFECT_WAIT) {
			cas_op_expire(op, &next);
		}
		eff = next;
	}
	fail_msg("operation did not finish");
	return -1;
}

static void test_proposer_ballots(void **state)
{
	struct cas_proposer p;
	struct cas_ballot a, b;

	(void)state;
	cas_proposer_init(&p, 42);
	a = cas_proposer_next_ballot(&p);
	b = cas_proposer_next_ballot(&p);
	assert_int_equal(a.id, 42);
	assert_true(cas_ballot_cmp(a, b) < 0);
	cas_proposer_observe(&p, B(1000, 99));
	b = cas_proposer_next_ballot(&p);
	assert_true(cas_ballot_cmp(b, B(1000, 99)) > 0);
	/* Observing something lower never moves the counter back. */
	cas_proposer_observe(&p, B(3, 1));
	assert_true(cas_ballot_cmp(cas_proposer_next_ballot(&p), b) > 0);
	assert_int_equal(cas_quorum(1), 1);
	assert_int_equal(cas_quorum(3), 2);
	assert_int_equal(cas_quorum(4), 3);
	assert_int_equal(cas_quorum(5), 3);
}

static void test_proposer_write_then_read(void **state)
{
	struct mini m;
	struct cas_op op;
	struct cas_value v;

	(void)state;
	mini_init(&m, 7);
	op_setup(&op, fn_set, "hello", 100);
	assert_int_equal(run_op(&m, &op, 7), CAS_OK);
	cas_op_take_value(&op, &v);
	assert_int_equal(v.version, 1);
	assert_int_equal(v.len, 5);
	free(v.data);
	cas_op_clear(&op);

	op_setup(&op, fn_identity, NULL, 101);
	assert_int_equal(run_op(&m, &op, 7), CAS_OK);
	cas_op_take_value(&op, &v);
	assert_int_equal(v.version, 1);
	assert_memory_equal(v.data, "hello", 5);
	free(v.data);
	cas_op_clear(&op);
	mini_free(&m);
}

/* Known mistake: waiting for every acceptor. With one node down, the op
 * completes on a majority. */
static void test_mistake_waits_for_all(void **state)
{
	struct mini m;
	struct cas_op op;
	struct cas_effect eff;
	struct cas_msg reply;

	(void)state;
	mini_init(&m, 7);
	op_setup(&op, fn_set, "x", 1);
	cas_op_start(&op, &m.prop, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SEND);
	uint32_t a = eff.attempt;
	const struct cas_msg *msg = eff.msg;

	deliver(&m, 0, msg, &reply);
	cas_op_on_reply(&op, &m.prop, 0, a, &reply, 0, &m.rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT);
	deliver(&m, 1, msg, &reply);
	cas_op_on_reply(&op, &m.prop, 1, a, &reply, 0, &m.rng, &eff);
	/* Two of three promised: the accept goes out without node 2. */
	assert_int_equal(eff.kind, CAS_EFFECT_SEND);
	assert_int_equal(eff.msg->type, CAS_MSG_ACCEPT);
	a = eff.attempt;
	msg = eff.msg;
	deliver(&m, 2, msg, &reply);
	cas_op_on_reply(&op, &m.prop, 2, a, &reply, 0, &m.rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT);
	deliver(&m, 0, msg, &reply);
	cas_op_on_reply(&op, &m.prop, 0, a, &reply, 0, &m.rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_DONE);
	assert_int_equal(op.result, CAS_OK);
	cas_op_clear(&op);

	/* And whole rounds with node 2 down. */
	op_setup(&op, fn_set, "y", 2);
	assert_int_equal(run_op(&m, &op, 3), CAS_OK);
	cas_op_clear(&op);
	mini_free(&m);
}

/* The proposer takes the value with the highest *accepted* ballot among
 * the promises, and accepts with its own ballot (the seed accepted with
 * the highest accepted ballot instead). */
static void test_mistake_accept_uses_own_ballot(void **state)
{
	struct mini m;
	struct cas_op op;
	struct cas_effect eff;
	struct cas_msg reply;

	(void)state;
	mini_init(&m, 7);
	/* Node 0 accepted "old" at (2,1); node 1 accepted "new" at (3,1). */
	struct cas_msg a1 = accept_msg(B(2, 1), "old", 1);
	struct cas_msg a2 = accept_msg(B(3, 1), "new", 2);
	deliver(&m, 0, &a1, &reply);
	deliver(&m, 1, &a2, &reply);
	m.prop.counter = 10;

	op_setup(&op, fn_identity, NULL, 5);
	cas_op_start(&op, &m.prop, &eff);
	uint32_t a = eff.attempt;
	const struct cas_msg *msg = eff.msg;
	struct cas_ballot mine = msg->ballot;

	assert_int_equal(mine.counter, 11);
	deliver(&m, 0, msg, &reply);
	cas_op_on_reply(&op, &m.prop, 0, a, &reply, 0, &m.rng, &eff);
	deliver(&m, 1, msg, &reply);
	cas_op_on_reply(&op, &m.prop, 1, a, &reply, 0, &m.rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SEND);
	assert_int_equal(eff.msg->type, CAS_MSG_ACCEPT);
	assert_int_equal(cas_ballot_cmp(eff.msg->ballot, mine), 0);
	assert_int_equal(eff.msg->value.version, 2);
	assert_memory_equal(eff.msg->value.data, "new", 3);
	cas_op_clear(&op);

	/* Promises arriving the other way round pick the same value. */
	op_setup(&op, fn_identity, NULL, 6);
	cas_op_start(&op, &m.prop, &eff);
	a = eff.attempt;
	msg = eff.msg;
	deliver(&m, 1, msg, &reply);
	cas_op_on_reply(&op, &m.prop, 1, a, &reply, 0, &m.rng, &eff);
	deliver(&m, 0, msg, &reply);
	cas_op_on_reply(&op, &m.prop, 0, a, &reply, 0, &m.rng, &eff);
	assert_int_equal(eff.msg->type, CAS_MSG_ACCEPT);
	assert_memory_equal(eff.msg->value.data, "new", 3);
	cas_op_clear(&op);
	mini_free(&m);
}

/* Known mistake: reusing a ballot for a second value after a failed or
 * timed-out accept. */
static void test_mistake_ballot_reuse(void **state)
{
	struct mini m;
	struct cas_op op;
	struct cas_effect eff;
	struct cas_msg reply;

	(void)state;
	mini_init(&m, 7);
	op_setup(&op, fn_set, "first", 9);
	cas_op_start(&op, &m.prop, &eff);
	uint32_t a = eff.attempt;
	const struct cas_msg *msg = eff.msg;

	for (int i = 0; i < 2; i++) {
		deliver(&m, i, msg, &reply);
		cas_op_on_reply(&op, &m.prop, i, a, &reply, 0, &m.rng, &eff);
	}
	assert_int_equal(eff.msg->type, CAS_MSG_ACCEPT);
	struct cas_ballot first = eff.msg->ballot;
	a = eff.attempt;
	/* The accept times out on two nodes. */
	cas_op_on_reply(&op, &m.prop, 0, a, NULL, 0, &m.rng, &eff);
	cas_op_on_reply(&op, &m.prop, 1, a, NULL, 0, &m.rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SLEEP);
	cas_op_wake(&op, &m.prop, eff.until_ms, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SEND);
	assert_int_equal(eff.msg->type, CAS_MSG_PREPARE);
	assert_true(cas_ballot_cmp(eff.msg->ballot, first) > 0);
	cas_op_clear(&op);
	mini_free(&m);
}

/* Across a run with conflicts between two proposers, no ballot is ever
 * sent with two different values. */
static void test_no_ballot_two_values(void **state)
{
	struct mini m;
	struct cas_op op;
	char val[8];

	(void)state;
	mini_init(&m, 3);
	for (int i = 0; i < 20; i++) {
		snprintf(val, sizeof(val), "v%d", i);
		op_setup(&op, fn_set, val, 1000 + i);
		/* Alternate which node is down. */
		assert_int_equal(run_op(&m, &op, i % 2 ? 3 : 6), CAS_OK);
		cas_op_clear(&op);
	}
	for (size_t i = 0; i < m.n_sent; i++)
		for (size_t j = i + 1; j < m.n_sent; j++)
			if (cas_ballot_cmp(m.sent_ballot[i], m.sent_ballot[j]) == 0)
				assert_string_equal(m.sent_value[i], m.sent_value[j]);
	mini_free(&m);
}

static void test_conflict_moves_above_blocking(void **state)
{
	struct mini m;
	struct cas_op op;
	struct cas_effect eff;
	struct cas_msg reply;

	(void)state;
	mini_init(&m, 7);
	/* Another proposer promised (50, 99) on nodes 0 and 1. */
	for (int i = 0; i < 2; i++) {
		struct cas_msg p = prepare_msg(B(50, 99));

		deliver(&m, i, &p, &reply);
	}
	op_setup(&op, fn_set, "z", 4);
	cas_op_start(&op, &m.prop, &eff);
	uint32_t a = eff.attempt;
	const struct cas_msg *msg = eff.msg;

	for (int i = 0; i < 2; i++) {
		deliver(&m, i, msg, &reply);
		assert_int_equal(reply.type, CAS_MSG_REJECT);
		cas_op_on_reply(&op, &m.prop, i, a, &reply, 0, &m.rng, &eff);
	}
	assert_int_equal(eff.kind, CAS_EFFECT_SLEEP);
	assert_true(eff.until_ms <= CAS_BACKOFF_CAP_MS);
	cas_op_wake(&op, &m.prop, eff.until_ms, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SEND);
	assert_true(cas_ballot_cmp(eff.msg->ballot, B(50, 99)) > 0);
	cas_op_clear(&op);
	mini_free(&m);
}

static void test_stale_and_duplicate_replies_ignored(void **state)
{
	struct mini m;
	struct cas_op op;
	struct cas_effect eff;
	struct cas_msg reply;

	(void)state;
	mini_init(&m, 7);
	op_setup(&op, fn_set, "d", 4);
	cas_op_start(&op, &m.prop, &eff);
	uint32_t a = eff.attempt;
	const struct cas_msg *msg = eff.msg;

	deliver(&m, 0, msg, &reply);
	cas_op_on_reply(&op, &m.prop, 0, a, &reply, 0, &m.rng, &eff);
	/* The same node again does not make a majority. */
	cas_op_on_reply(&op, &m.prop, 0, a, &reply, 0, &m.rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT);
	/* A reply tagged with another attempt is ignored. */
	cas_op_on_reply(&op, &m.prop, 1, a + 7, &reply, 0, &m.rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT);
	/* Out-of-range node. */
	cas_op_on_reply(&op, &m.prop, 99, a, &reply, 0, &m.rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT);
	deliver(&m, 1, msg, &reply);
	cas_op_on_reply(&op, &m.prop, 1, a, &reply, 0, &m.rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SEND);
	/* A late promise during the accept phase counts for nothing. */
	uint32_t acc = eff.attempt;
	struct cas_msg late = {.type = CAS_MSG_PROMISE};

	cas_op_on_reply(&op, &m.prop, 2, a, &late, 0, &m.rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT);
	cas_op_on_reply(&op, &m.prop, 2, acc, &late, 0, &m.rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT);
	assert_int_equal(op.oks, 0);
	assert_int_equal(op.fails, 0);
	cas_op_clear(&op);
	mini_free(&m);
}

static void test_version_mismatch_writes_back(void **state)
{
	struct mini m;
	struct cas_op op;
	struct cas_value v;

	(void)state;
	mini_init(&m, 7);
	op_setup(&op, fn_set, "a", 1);
	assert_int_equal(run_op(&m, &op, 7), CAS_OK);
	cas_op_clear(&op);
	op_setup(&op, fn_set, "b", 2);
	assert_int_equal(run_op(&m, &op, 7), CAS_OK);
	cas_op_clear(&op);

	/* Expecting version 1, but it is 2: EVERSION, and the current value
	 * goes through an accept (so it is chosen) unchanged. */
	size_t before = m.n_sent;

	op_setup(&op, fn_expect_v1, "c", 3);
	assert_int_equal(run_op(&m, &op, 7), CAS_EVERSION);
	assert_int_equal(m.n_sent, before + 1);
	assert_string_equal(m.sent_value[before], "b");
	cas_op_take_value(&op, &v);
	assert_int_equal(v.version, 2);
	assert_memory_equal(v.data, "b", 1);
	free(v.data);
	cas_op_clear(&op);
	mini_free(&m);
}

static int fn_count_set(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	fn_calls++;
	return fn_set(arg, cur, next);
}

/* A retry that finds its own op id among the recent ones does not apply
 * the change a second time, and answers with the value it wrote. */
static void test_retry_recognises_own_write(void **state)
{
	struct mini m;
	struct cas_op op;
	struct cas_effect eff;
	struct cas_msg reply;
	struct cas_value v;
	uint64_t first_proposal, second_op;

	(void)state;
	mini_init(&m, 7);
	fn_calls = 0;
	op_setup(&op, fn_count_set, "mine", 5);
	cas_op_start(&op, &m.prop, &eff);
	uint32_t a = eff.attempt;
	const struct cas_msg *msg = eff.msg;

	for (int i = 0; i < 2; i++) {
		deliver(&m, i, msg, &reply);
		cas_op_on_reply(&op, &m.prop, i, a, &reply, 0, &m.rng, &eff);
	}
	/* The accept lands on node 0 only; the others time out. */
	a = eff.attempt;
	first_proposal = eff.msg->value.recent[0].op;
	assert_true(first_proposal != 0);
	deliver(&m, 0, eff.msg, &reply);
	cas_op_on_reply(&op, &m.prop, 0, a, &reply, 0, &m.rng, &eff);
	cas_op_on_reply(&op, &m.prop, 1, a, NULL, 0, &m.rng, &eff);
	cas_op_on_reply(&op, &m.prop, 2, a, NULL, 0, &m.rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SLEEP);
	cas_op_wake(&op, &m.prop, eff.until_ms, &eff);
	/* The next prepare sees node 0's accepted value: ours. */
	a = eff.attempt;
	msg = eff.msg;
	for (int i = 0; i < 2; i++) {
		deliver(&m, i, msg, &reply);
		cas_op_on_reply(&op, &m.prop, i, a, &reply, 0, &m.rng, &eff);
	}
	assert_int_equal(eff.msg->type, CAS_MSG_ACCEPT);
	assert_int_equal(eff.msg->value.version, 1);
	assert_int_equal(eff.msg->value.recent[0].proposer, 7);
	assert_int_equal(eff.msg->value.recent[0].op, first_proposal);
	assert_int_equal(eff.msg->value.recent[0].version, 1);
	a = eff.attempt;
	msg = eff.msg;
	for (int i = 1; i < 3; i++) {
		deliver(&m, i, msg, &reply);
		cas_op_on_reply(&op, &m.prop, i, a, &reply, 0, &m.rng, &eff);
	}
	assert_int_equal(eff.kind, CAS_EFFECT_DONE);
	assert_int_equal(op.result, CAS_OK);
	assert_int_equal(fn_calls, 1);
	cas_op_take_value(&op, &v);
	assert_int_equal(v.version, 1);
	assert_memory_equal(v.data, "mine", 4);
	free(v.data);
	cas_op_clear(&op);

	/* A new op applies normally and replaces our entry. */
	op_setup(&op, fn_expect_v1, "two", 6);
	assert_int_equal(run_op(&m, &op, 7), CAS_OK);
	assert_int_equal(fn_calls, 2);
	assert_int_equal(m.acc[1].value.version, 2);
	assert_int_equal(m.acc[1].value.n_recent, 1);
	second_op = m.acc[1].value.recent[0].op;
	assert_true(second_op != 0 && second_op != first_proposal);
	assert_int_equal(m.acc[1].value.recent[0].version, 2);
	cas_op_clear(&op);

	/* Another proposer's change goes first; ours stays behind it. */
	m.prop.id = 8;
	op_setup(&op, fn_set, "three", 9);
	assert_int_equal(run_op(&m, &op, 7), CAS_OK);
	assert_int_equal(m.acc[1].value.n_recent, 2);
	assert_int_equal(m.acc[1].value.recent[0].proposer, 8);
	assert_int_equal(m.acc[1].value.recent[0].version, 3);
	assert_int_equal(m.acc[1].value.recent[1].proposer, 7);
	assert_int_equal(m.acc[1].value.recent[1].op, second_op);
	cas_op_clear(&op);
	mini_free(&m);
}

/* Runs op (already started into eff) delivering to every node in mask;
 * returns how many PREPAREs were sent. */
static int finish_op(struct mini *m, struct cas_op *op, struct cas_effect eff, unsigned mask)
{
	int prepares = 0;

	for (int steps = 0; steps < 100 && eff.kind != CAS_EFFECT_DONE; steps++) {
		if (eff.kind == CAS_EFFECT_SLEEP) {
			cas_op_wake(op, &m->prop, eff.until_ms, &eff);
			continue;
		}
		assert_int_equal(eff.kind, CAS_EFFECT_SEND);
		const struct cas_msg *msg = eff.msg;
		uint32_t a = eff.attempt;
		struct cas_effect next = {.kind = CAS_EFFECT_WAIT};

		if (msg->type == CAS_MSG_PREPARE)
			prepares++;
		for (int i = 0; i < NODES && next.kind == CAS_EFFECT_WAIT; i++) {
			struct cas_msg reply;

			if (!(mask & (1u << i)))
				continue;
			deliver(m, i, msg, &reply);
			cas_op_on_reply(op, &m->prop, i, a, &reply, 0, &m->rng, &next);
		}
		eff = next;
	}
	assert_int_equal(eff.kind, CAS_EFFECT_DONE);
	return prepares;
}

/* Fills every node with version `version` whose recent list names n other
 * proposers (100, 101, ...), at a ballot above everything so far. */
static void overwrite_all(struct mini *m, uint64_t version, uint32_t n)
{
	struct cas_msg acc = accept_msg(B(1000, 99), "other", version);
	struct cas_msg reply;

	acc.value.n_recent = n;
	for (uint32_t i = 0; i < n; i++)
		acc.value.recent[i] = (struct cas_recent){100 + i, 1, version - i};
	for (int i = 0; i < NODES; i++)
		deliver(m, i, &acc, &reply);
}

/* A change function that is not deterministic: each call writes the
 * next letter ("A", then "B", ...), as casfs stamps mtime at each call. */
static int fn_stamp(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	int *calls = arg;

	(void)cur;
	next->data = malloc(1);
	next->data[0] = (unsigned char)('A' + (*calls)++);
	next->len = 1;
	return CAS_OK;
}

/* Sends the current SEND to the nodes in mask (the others time out). */
static void answer(struct mini *m, struct cas_op *op, unsigned mask, struct cas_effect *eff)
{
	uint32_t a = eff->attempt;
	const struct cas_msg *msg = eff->msg;
	struct cas_msg reply;

	for (int i = 0; i < NODES; i++) {
		if (mask & 1u << i) {
			deliver(m, i, msg, &reply);
			cas_op_on_reply(op, &m->prop, (size_t)i, a, &reply, 0, &m->rng, eff);
		} else {
			cas_op_on_reply(op, &m->prop, (size_t)i, a, NULL, 0, &m->rng, eff);
		}
		if (eff->kind != CAS_EFFECT_WAIT)
			break;
	}
}

/* Two attempts of one op propose the same version with different bytes;
 * the second is the one chosen. The op must answer with the second's
 * bytes, what the register holds, not the first's (issue: a setattr that
 * reported attributes other than those stored). */
static void test_retry_answers_with_the_proposal_that_won(void **state)
{
	struct mini m;
	struct cas_op op;
	struct cas_effect eff;
	struct cas_value v;
	int calls = 0;

	(void)state;
	mini_init(&m, 7);
	op_setup(&op, fn_stamp, &calls, 5);
	cas_op_start(&op, &m.prop, &eff);
	/* Attempt 1: nodes 0 and 1 promise; "A" lands on node 0 only. */
	answer(&m, &op, 0x3, &eff);
	assert_int_equal(eff.msg->type, CAS_MSG_ACCEPT);
	answer(&m, &op, 0x1, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SLEEP);
	cas_op_wake(&op, &m.prop, eff.until_ms, &eff);
	/* Attempt 2: nodes 1 and 2 promise (no "A" among them), so the
	 * change runs again: "B", version 1 too, lands on node 1 only. */
	answer(&m, &op, 0x6, &eff);
	assert_int_equal(eff.msg->type, CAS_MSG_ACCEPT);
	assert_int_equal(eff.msg->value.version, 1);
	assert_memory_equal(eff.msg->value.data, "B", 1);
	answer(&m, &op, 0x2, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SLEEP);
	cas_op_wake(&op, &m.prop, eff.until_ms, &eff);
	/* Attempt 3: nodes 1 and 2 promise; node 1's "B" has the highest
	 * accepted ballot: the op finds its own change and writes it back. */
	answer(&m, &op, 0x6, &eff);
	assert_int_equal(eff.msg->type, CAS_MSG_ACCEPT);
	assert_memory_equal(eff.msg->value.data, "B", 1);
	answer(&m, &op, 0x6, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_DONE);
	assert_int_equal(op.result, CAS_OK);
	assert_int_equal(calls, 2);
	cas_op_take_value(&op, &v);
	assert_int_equal(v.version, 1);
	assert_int_equal(v.len, 1);
	assert_memory_equal(v.data, "B", 1);
	free(v.data);
	cas_op_clear(&op);
	mini_free(&m);
}

/* A node that holds a ballot past CAS_BALLOT_COUNTER_MAX leaves no room
 * above it: the op fails at once with CAS_EBALLOT instead of retrying
 * until its deadline. */
static void test_ballot_past_range_fails_fast(void **state)
{
	struct mini m;
	struct cas_op op;
	struct cas_effect eff;

	(void)state;
	mini_init(&m, 7);
	for (int i = 0; i < NODES; i++)
		m.acc[i].promise = (struct cas_ballot){UINT64_MAX, 1};
	op_setup(&op, fn_set, "x", 5);
	cas_op_start(&op, &m.prop, &eff);
	answer(&m, &op, 0x7, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_DONE);
	assert_int_equal(op.result, CAS_EBALLOT);
	cas_op_clear(&op);
	mini_free(&m);
}

/* A retry that cannot tell whether its earlier proposal won (our entry
 * could have been dropped by CAS_RECENT_MAX other proposers' changes)
 * reports the outcome unknown instead of applying the change again. */
static void test_unknown_outcome(void **state)
{
	struct mini m;
	struct cas_op op;
	struct cas_effect eff;
	struct cas_msg reply;

	(void)state;
	for (int variant = 0; variant < 4; variant++) {
		mini_init(&m, 7);
		op_setup(&op, fn_set, "mine", 5);
		cas_op_start(&op, &m.prop, &eff);
		uint32_t a = eff.attempt;
		const struct cas_msg *msg = eff.msg;

		for (int i = 0; i < 2; i++) {
			deliver(&m, i, msg, &reply);
			cas_op_on_reply(&op, &m.prop, i, a, &reply, 0, &m.rng, &eff);
		}
		/* Our accept (version 1) reaches nobody. */
		a = eff.attempt;
		for (int i = 0; i < NODES && eff.kind != CAS_EFFECT_SLEEP; i++)
			cas_op_on_reply(&op, &m.prop, i, a, NULL, 0, &m.rng, &eff);
		assert_int_equal(eff.kind, CAS_EFFECT_SLEEP);
		/* Meanwhile: a full list of others at version 1 + MAX (our
		 * entry could have been dropped), a full list one version short
		 * of that, or a list that is not full. */
		if (variant == 0)
			overwrite_all(&m, 1 + CAS_RECENT_MAX, CAS_RECENT_MAX);
		else if (variant == 1)
			overwrite_all(&m, CAS_RECENT_MAX, CAS_RECENT_MAX);
		else
			overwrite_all(&m, 40, CAS_RECENT_MAX - 1);
		if (variant == 3) {
			/* As variant 0, but the register was deleted and written
			 * again since: its version is 1 of a new life, its change
			 * numbers went on. */
			overwrite_all(&m, 1 + CAS_RECENT_MAX, CAS_RECENT_MAX);
			for (int i = 0; i < NODES; i++)
				m.acc[i].value.version = 1;
		}
		m.prop.counter = 2000;
		cas_op_wake(&op, &m.prop, eff.until_ms, &eff);
		int prepares = finish_op(&m, &op, eff, 7);

		assert_int_equal(prepares, 1);
		assert_int_equal(op.result,
				 variant == 0 || variant == 3 ? CAS_EUNAVAILABLE : CAS_OK);
		cas_op_clear(&op);
		mini_free(&m);
	}
}

static int fn_refuse(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	(void)arg;
	(void)cur;
	(void)next;
	return CAS_EVERSION;
}

static void del_setup(struct cas_op *op, cas_change_fn fn, uint64_t op_id)
{
	op_setup(op, fn, NULL, op_id);
	op->cfg.del = true;
}

/* A delete makes a tombstone: version 0, no bytes, its change named in
 * the recent list with the next change number; reads answer it as
 * absent, and the next write is version 1 of a new life while change
 * numbers go on. */
static void test_delete_and_new_life(void **state)
{
	struct mini m;
	struct cas_op op;
	struct cas_value v;

	(void)state;
	mini_init(&m, 7);
	op_setup(&op, fn_set, "a", 1);
	assert_int_equal(run_op(&m, &op, 7), CAS_OK);
	cas_op_clear(&op);
	op_setup(&op, fn_set, "b", 2);
	assert_int_equal(run_op(&m, &op, 7), CAS_OK);
	cas_op_clear(&op);

	del_setup(&op, NULL, 3);
	assert_int_equal(run_op(&m, &op, 7), CAS_OK);
	cas_op_take_value(&op, &v);
	assert_int_equal(v.version, 0);
	assert_int_equal(v.len, 0);
	assert_null(v.data);
	cas_op_clear(&op);
	for (int i = 0; i < 2; i++) { /* the accept's majority */
		assert_int_equal(m.acc[i].value.version, 0);
		assert_int_equal(m.acc[i].value.len, 0);
		assert_int_equal(m.acc[i].value.recent[0].proposer, 7);
		assert_int_equal(m.acc[i].value.recent[0].version, 3);
		assert_int_equal(cas_reg_seq(&m.acc[i].value), 3);
	}

	op_setup(&op, fn_identity, NULL, 4);
	assert_int_equal(run_op(&m, &op, 7), CAS_OK);
	cas_op_take_value(&op, &v);
	assert_int_equal(v.version, 0);
	assert_int_equal(v.len, 0);
	cas_op_clear(&op);

	op_setup(&op, fn_set, "c", 5);
	assert_int_equal(run_op(&m, &op, 7), CAS_OK);
	cas_op_take_value(&op, &v);
	assert_int_equal(v.version, 1);
	free(v.data);
	cas_op_clear(&op);
	assert_int_equal(m.acc[0].value.version, 1);
	assert_int_equal(cas_reg_seq(&m.acc[0].value), 4);

	/* A conditional delete that fn refuses keeps the register. */
	del_setup(&op, fn_refuse, 6);
	assert_int_equal(run_op(&m, &op, 7), CAS_EVERSION);
	cas_op_clear(&op);
	assert_int_equal(m.acc[0].value.version, 1);

	/* Deleting twice: the second finds nothing to delete. */
	del_setup(&op, NULL, 7);
	assert_int_equal(run_op(&m, &op, 7), CAS_OK);
	cas_op_clear(&op);
	del_setup(&op, NULL, 8);
	assert_int_equal(run_op(&m, &op, 7), CAS_OK);
	cas_op_clear(&op);
	assert_int_equal(m.acc[0].value.version, 0);
	assert_int_equal(cas_reg_seq(&m.acc[0].value), 5);
	mini_free(&m);
}

/* A delete whose accept landed on one node and whose answers were lost
 * finds its own tombstone on retry and does not delete a second time. */
static void test_delete_retry_recognised(void **state)
{
	struct mini m;
	struct cas_op op;
	struct cas_effect eff;
	struct cas_value v;

	(void)state;
	mini_init(&m, 7);
	op_setup(&op, fn_set, "a", 1);
	assert_int_equal(run_op(&m, &op, 7), CAS_OK);
	cas_op_clear(&op);
	del_setup(&op, NULL, 2);
	cas_op_start(&op, &m.prop, &eff);
	answer(&m, &op, 0x3, &eff);
	assert_int_equal(eff.msg->type, CAS_MSG_ACCEPT);
	assert_int_equal(eff.msg->value.version, 0);
	answer(&m, &op, 0x1, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SLEEP);
	cas_op_wake(&op, &m.prop, eff.until_ms, &eff);
	answer(&m, &op, 0x3, &eff);
	assert_int_equal(eff.msg->type, CAS_MSG_ACCEPT);
	assert_int_equal(cas_reg_seq(&eff.msg->value), 2); /* ours, not a third */
	answer(&m, &op, 0x7, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_DONE);
	assert_int_equal(op.result, CAS_OK);
	cas_op_take_value(&op, &v);
	assert_int_equal(v.version, 0);
	cas_op_clear(&op);
	mini_free(&m);
}

/* The collector's write-back (acceptor.h, "Deletion", step 1): the
 * tombstone it saw, unchanged, accepted by every node or not done. */
static void test_collect_needs_every_node(void **state)
{
	struct mini m;
	struct cas_op op;
	struct cas_recent tomb;
	struct cas_ballot nb;
	struct cas_reg nv;

	(void)state;
	mini_init(&m, 7);
	op_setup(&op, fn_set, "a", 1);
	assert_int_equal(run_op(&m, &op, 7), CAS_OK);
	cas_op_clear(&op);
	/* Nothing to collect in a live register. */
	op_setup(&op, NULL, NULL, 2);
	op.cfg.collect = true;
	assert_int_equal(run_op(&m, &op, 7), CAS_EVERSION);
	cas_op_clear(&op);

	del_setup(&op, NULL, 3);
	assert_int_equal(run_op(&m, &op, 7), CAS_OK);
	cas_op_clear(&op);
	tomb = m.acc[0].value.recent[0];

	/* Another tombstone than the one seen: nothing is written. */
	op_setup(&op, NULL, NULL, 4);
	op.cfg.collect = true;
	op.cfg.tomb = (struct cas_recent){tomb.proposer, tomb.op, tomb.version - 1};
	m.n_sent = 0;
	assert_int_equal(run_op(&m, &op, 7), CAS_EVERSION);
	assert_int_equal(m.n_sent, 0);
	cas_op_clear(&op);

	/* A majority is not enough. */
	op_setup(&op, NULL, NULL, 5);
	op.cfg.collect = true;
	op.cfg.tomb = tomb;
	assert_int_equal(run_op(&m, &op, 3), CAS_EUNAVAILABLE);
	cas_op_clear(&op);

	/* All three: every node accepted the tombstone at op.ballot, with
	 * no promise of a next ballot, and no cached promise. */
	op_setup(&op, NULL, NULL, 6);
	op.cfg.collect = true;
	op.cfg.tomb = tomb;
	assert_int_equal(run_op(&m, &op, 7), CAS_OK);
	assert_false(cas_op_take_cache(&op, &nb, &nv));
	for (int i = 0; i < NODES; i++) {
		assert_int_equal(cas_ballot_cmp(m.acc[i].accepted, op.ballot), 0);
		assert_int_equal(cas_ballot_cmp(m.acc[i].promise, op.ballot), 0);
		assert_int_equal(m.acc[i].value.version, 0);
		assert_int_equal(m.acc[i].value.recent[0].op, tomb.op);
	}
	cas_op_clear(&op);
	mini_free(&m);
}

static void test_unavailable_and_limits(void **state)
{
	struct mini m;
	struct cas_op op;
	struct cas_effect eff;
	struct cas_value v;
	char big[2048];

	(void)state;
	mini_init(&m, 7);
	/* Only one node: every attempt fails until the deadline. */
	op_setup(&op, fn_set, "x", 1);
	assert_int_equal(run_op(&m, &op, 1), CAS_EUNAVAILABLE);
	cas_op_take_value(&op, &v);
	assert_null(v.data);
	cas_op_clear(&op);

	/* The deadline passes while waiting. */
	op_setup(&op, fn_set, "x", 2);
	cas_op_start(&op, &m.prop, &eff);
	cas_op_expire(&op, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_DONE);
	assert_int_equal(op.result, CAS_EUNAVAILABLE);
	cas_op_clear(&op);

	/* A value over the limit is refused before any accept. */
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	size_t before = m.n_sent;

	op_setup(&op, fn_set, big, 3);
	assert_int_equal(run_op(&m, &op, 7), CAS_ETOOBIG);
	assert_int_equal(m.n_sent, before);
	cas_op_clear(&op);

	/* Abort ends an op with the driver's code. */
	op_setup(&op, fn_set, "x", 4);
	cas_op_start(&op, &m.prop, &eff);
	cas_op_abort(&op, CAS_ETOOBIG, &eff);
	assert_int_equal(op.result, CAS_ETOOBIG);
	cas_op_clear(&op);
	mini_free(&m);
}

/* A read asks the nodes first; when a majority report the same accepted
 * ballot it is answered without any write, otherwise a full round runs. */
static void test_read_by_query(void **state)
{
	struct mini m;
	struct cas_op op;
	struct cas_effect eff;
	struct cas_value v;
	struct cas_msg reply;

	(void)state;
	mini_init(&m, 7);
	op_setup(&op, fn_set, "one", 1);
	cas_op_start(&op, &m.prop, &eff);
	finish_op(&m, &op, eff, 7);
	cas_op_clear(&op);

	/* Quiet register: the query is the whole read, no node changes. */
	struct cas_acceptor_state before[NODES];

	for (int i = 0; i < NODES; i++)
		before[i] = m.acc[i];

	op_setup(&op, fn_identity, NULL, 2);
	op.cfg.read_only = true;
	cas_op_start(&op, &m.prop, &eff);
	assert_int_equal(eff.msg->type, CAS_MSG_QUERY);
	assert_int_equal(finish_op(&m, &op, eff, 3), 0);
	assert_int_equal(op.result, CAS_OK);
	for (int i = 0; i < NODES; i++) {
		assert_int_equal(cas_ballot_cmp(m.acc[i].promise, before[i].promise), 0);
		assert_int_equal(cas_ballot_cmp(m.acc[i].accepted, before[i].accepted), 0);
	}
	cas_op_take_value(&op, &v);
	assert_int_equal(v.version, 1);
	assert_memory_equal(v.data, "one", 3);
	free(v.data);
	cas_op_clear(&op);

	/* A write under way (accepted by node 0 only): the query sees two
	 * ballots, and the read runs a full round, which completes it. */
	struct cas_msg acc = accept_msg(B(500, 9), "two", 2);

	deliver(&m, 0, &acc, &reply);
	m.prop.counter = 600; /* our full round goes above that write */
	op_setup(&op, fn_identity, NULL, 3);
	op.cfg.read_only = true;
	cas_op_start(&op, &m.prop, &eff);
	uint32_t a = eff.attempt;
	const struct cas_msg *msg = eff.msg;

	for (int i = 0; i < 2; i++) {
		deliver(&m, i, msg, &reply);
		assert_int_equal(reply.type, CAS_MSG_CURRENT);
		cas_op_on_reply(&op, &m.prop, i, a, &reply, 0, &m.rng, &eff);
	}
	assert_int_equal(eff.kind, CAS_EFFECT_SEND);
	assert_int_equal(eff.msg->type, CAS_MSG_PREPARE);
	assert_int_equal(finish_op(&m, &op, eff, 7), 1);
	assert_int_equal(op.result, CAS_OK);
	cas_op_take_value(&op, &v);
	assert_int_equal(v.version, 2);
	assert_memory_equal(v.data, "two", 3);
	free(v.data);
	cas_op_clear(&op);

	/* A query never changes an acceptor. */
	struct cas_acceptor_state st = {.promise = B(3, 1), .accepted = B(2, 1)};
	struct cas_msg q = {.type = CAS_MSG_QUERY};

	strcpy(q.key, "k");
	assert_false(cas_acceptor_handle(&st, &q, &reply));
	assert_int_equal(reply.type, CAS_MSG_CURRENT);
	assert_int_equal(cas_ballot_cmp(reply.ballot, B(2, 1)), 0);
	assert_int_equal(cas_ballot_cmp(st.promise, B(3, 1)), 0);
	mini_free(&m);
}

/* The one-round-trip optimization, proposer side. */
static void test_one_round_trip(void **state)
{
	struct mini m;
	struct cas_op op;
	struct cas_effect eff;
	struct cas_ballot cb;
	struct cas_reg cv;
	struct cas_value v;
	struct cas_msg reply;

	(void)state;
	mini_init(&m, 7);
	op_setup(&op, fn_set, "one", 1);
	cas_op_start(&op, &m.prop, &eff);
	assert_int_equal(finish_op(&m, &op, eff, 7), 1);
	assert_int_equal(op.result, CAS_OK);
	assert_true(cas_op_take_cache(&op, &cb, &cv));
	assert_int_equal(cv.version, 1);
	cas_op_clear(&op);

	/* The next op on the key starts with an accept at the cached ballot,
	 * built on the cached value. */
	op_setup(&op, fn_set, "two", 2);
	op.cfg.cached_ballot = cb;
	op.cfg.cached_value = &cv;
	cas_op_start(&op, &m.prop, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SEND);
	assert_int_equal(eff.msg->type, CAS_MSG_ACCEPT);
	assert_int_equal(cas_ballot_cmp(eff.msg->ballot, cb), 0);
	assert_int_equal(eff.msg->value.version, 2);
	assert_true(cas_ballot_cmp(eff.msg->next, cb) > 0);
	free(cv.data);
	assert_int_equal(finish_op(&m, &op, eff, 7), 0);
	assert_int_equal(op.result, CAS_OK);
	assert_true(cas_op_take_cache(&op, &cb, &cv));
	cas_op_take_value(&op, &v);
	assert_int_equal(v.version, 2);
	free(v.data);
	cas_op_clear(&op);

	/* Another proposer moves in: the cached accept is refused, and the
	 * op backs off, then runs a full round above the blocking ballot. */
	for (int i = 0; i < NODES; i++) {
		struct cas_msg p = prepare_msg(B(cb.counter + 5, 99));

		deliver(&m, i, &p, &reply);
	}
	op_setup(&op, fn_set, "three", 3);
	op.cfg.cached_ballot = cb;
	op.cfg.cached_value = &cv;
	cas_op_start(&op, &m.prop, &eff);
	free(cv.data);
	const struct cas_msg *msg = eff.msg;
	uint32_t a = eff.attempt;

	for (int i = 0; i < 2; i++) {
		deliver(&m, i, msg, &reply);
		assert_int_equal(reply.type, CAS_MSG_REJECT);
		cas_op_on_reply(&op, &m.prop, i, a, &reply, 0, &m.rng, &eff);
	}
	assert_int_equal(eff.kind, CAS_EFFECT_SLEEP);
	cas_op_wake(&op, &m.prop, eff.until_ms, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SEND);
	assert_int_equal(eff.msg->type, CAS_MSG_PREPARE);
	assert_true(cas_ballot_cmp(eff.msg->ballot, B(cb.counter + 5, 99)) > 0);
	assert_int_equal(finish_op(&m, &op, eff, 7), 1);
	assert_int_equal(op.result, CAS_OK);
	cas_op_take_value(&op, &v);
	assert_int_equal(v.version, 3);
	assert_memory_equal(v.data, "three", 5);
	free(v.data);
	cas_op_clear(&op);

	/* With one node down, a majority still promises: cacheable. */
	op_setup(&op, fn_set, "four", 4);
	cas_op_start(&op, &m.prop, &eff);
	finish_op(&m, &op, eff, 3);
	assert_int_equal(op.result, CAS_OK);
	assert_true(cas_op_take_cache(&op, &cb, &cv));
	free(cv.data);
	cas_op_clear(&op);
	mini_free(&m);
}

/* --- Joint quorums (PROTOCOL.md, "Cluster identity and membership") ---
 * Replies are made up here: four nodes, O = {0, 1, 2}, N = {1, 2, 3}
 * unless a test says otherwise, no acceptors behind them. */

#define JOINT_O 0x7u /* nodes 0, 1, 2 */
#define JOINT_N 0xeu /* nodes 1, 2, 3 */

static void joint_setup(struct cas_op *op, cas_change_fn fn, void *arg, uint64_t old_set,
			uint64_t new_set)
{
	struct cas_op_config cfg = {
		.key = "k",
		.n_nodes = 5,
		.old_set = old_set,
		.new_set = new_set,
		.epoch = 7,
		.fn = fn,
		.arg = arg,
		.op_id = 1,
		.deadline_ms = 1000,
		.max_value = 1024,
	};

	cas_op_init(op, &cfg);
}

/* Node's answer to the op's current SEND: a promise of nothing accepted,
 * an accept (with the promise of next when promise), or NULL for none. */
static void joint_answer(struct cas_op *op, struct cas_proposer *p, uint64_t *rng, size_t node,
			 bool ok, bool promise, struct cas_effect *eff)
{
	struct cas_msg r = {0};

	if (!ok) {
		cas_op_on_reply(op, p, node, op->attempt, NULL, 0, rng, eff);
		return;
	}
	if (op->phase == CAS_OP_PREPARE) {
		r.type = CAS_MSG_PROMISE;
	} else {
		r.type = CAS_MSG_ACCEPTED;
		r.ballot = op->ballot;
		if (promise)
			r.next = op->out.next;
	}
	cas_op_on_reply(op, p, node, op->attempt, &r, 0, rng, eff);
}

/* A prepare completes with a majority of O; N's answers count for none. */
static void test_joint_prepare_needs_only_o(void **state)
{
	struct cas_proposer p;
	struct cas_op op;
	struct cas_effect eff;
	uint64_t rng = 1;

	(void)state;
	cas_proposer_init(&p, 5);
	joint_setup(&op, fn_set, "x", JOINT_O, JOINT_N);
	cas_op_start(&op, &p, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SEND);
	assert_int_equal(eff.msg->type, CAS_MSG_PREPARE);
	/* Sent to O and N, node 4 (in neither) left out; tagged epoch 7. */
	assert_int_equal(eff.targets, JOINT_O | JOINT_N);
	assert_int_equal(eff.epoch, 7);
	/* Node 3 is in N only, node 4 in neither: no prepare quorum. */
	joint_answer(&op, &p, &rng, 3, true, false, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT);
	joint_answer(&op, &p, &rng, 4, true, false, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT);
	assert_int_equal(op.oks, 1); /* node 4's answer was ignored */
	joint_answer(&op, &p, &rng, 1, true, false, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT);
	/* Nodes 0 and 1 are a majority of O: the accept follows. */
	joint_answer(&op, &p, &rng, 0, true, false, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SEND);
	assert_int_equal(eff.msg->type, CAS_MSG_ACCEPT);
	cas_op_clear(&op);

	/* Failures in N alone never fail a prepare; two of O do. */
	joint_setup(&op, fn_set, "x", JOINT_O, JOINT_N);
	cas_op_start(&op, &p, &eff);
	joint_answer(&op, &p, &rng, 3, false, false, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT);
	joint_answer(&op, &p, &rng, 2, false, false, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT);
	joint_answer(&op, &p, &rng, 1, false, false, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SLEEP);
	assert_int_equal(op.phase, CAS_OP_BACKOFF);
	cas_op_clear(&op);
}

/* An accept completes with a majority of O and a majority of N, and
 * fails as soon as either is out of reach. */
static void test_joint_accept_needs_both(void **state)
{
	struct cas_proposer p;
	struct cas_op op;
	struct cas_effect eff;
	struct cas_ballot cb;
	struct cas_reg cv;
	uint64_t rng = 1;

	(void)state;
	cas_proposer_init(&p, 5);
	joint_setup(&op, fn_set, "x", JOINT_O, JOINT_N);
	cas_op_start(&op, &p, &eff);
	joint_answer(&op, &p, &rng, 0, true, false, &eff);
	joint_answer(&op, &p, &rng, 1, true, false, &eff);
	assert_int_equal(eff.msg->type, CAS_MSG_ACCEPT);
	assert_int_equal(eff.targets, JOINT_O | JOINT_N);
	/* 0 and 1: a majority of O, one of three in N. */
	joint_answer(&op, &p, &rng, 0, true, true, &eff);
	joint_answer(&op, &p, &rng, 1, true, true, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT);
	/* 3 makes a majority of N. */
	joint_answer(&op, &p, &rng, 3, true, false, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_DONE);
	assert_int_equal(op.result, CAS_OK);
	/* Promised by 0 and 1 only: a majority of O, not of N, so no
	 * cached promise (it stands in for this quorum's accept). */
	assert_false(cas_op_take_cache(&op, &cb, &cv));
	cas_op_clear(&op);

	/* Promised by 0, 1 and 3: both majorities, cacheable. */
	joint_setup(&op, fn_set, "x", JOINT_O, JOINT_N);
	cas_op_start(&op, &p, &eff);
	joint_answer(&op, &p, &rng, 0, true, false, &eff);
	joint_answer(&op, &p, &rng, 1, true, false, &eff);
	joint_answer(&op, &p, &rng, 0, true, true, &eff);
	joint_answer(&op, &p, &rng, 3, true, true, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT); /* 0, 3: N yes, O no */
	joint_answer(&op, &p, &rng, 1, true, true, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_DONE);
	assert_true(cas_op_take_cache(&op, &cb, &cv));
	free(cv.data);
	cas_op_clear(&op);

	/* Nodes 2 and 3 fail: O can still make it (0, 1), N cannot (only 1
	 * left of three): the accept fails at once. */
	joint_setup(&op, fn_set, "x", JOINT_O, JOINT_N);
	cas_op_start(&op, &p, &eff);
	joint_answer(&op, &p, &rng, 0, true, false, &eff);
	joint_answer(&op, &p, &rng, 1, true, false, &eff);
	joint_answer(&op, &p, &rng, 2, false, false, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT);
	joint_answer(&op, &p, &rng, 3, false, false, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SLEEP);
	cas_op_clear(&op);

	/* Stable (N = 0) with O naming three of five nodes: a majority of
	 * those three, and nodes 3 and 4 neither sent to nor counted. */
	joint_setup(&op, fn_set, "x", JOINT_O, 0);
	cas_op_start(&op, &p, &eff);
	assert_int_equal(eff.targets, JOINT_O);
	joint_answer(&op, &p, &rng, 3, true, false, &eff);
	joint_answer(&op, &p, &rng, 4, true, false, &eff);
	joint_answer(&op, &p, &rng, 2, true, false, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT);
	joint_answer(&op, &p, &rng, 0, true, false, &eff);
	assert_int_equal(eff.msg->type, CAS_MSG_ACCEPT);
	joint_answer(&op, &p, &rng, 0, true, false, &eff);
	joint_answer(&op, &p, &rng, 2, true, false, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_DONE);
	cas_op_clear(&op);
}

/* A read's query: the nodes that agree must be a majority of O and of N
 * (O = {0, 1, 2}, N = {0, 1, 3}: node 2 replaced by node 3). */
static void test_joint_query_needs_both(void **state)
{
	struct cas_proposer p;
	struct cas_op op;
	struct cas_effect eff;
	struct cas_value v;
	struct cas_msg cur = {.type = CAS_MSG_CURRENT, .ballot = {4, 1}};
	struct cas_msg other = {.type = CAS_MSG_CURRENT, .ballot = {3, 1}};
	uint64_t rng = 1;

	(void)state;
	cur.value.version = 2;
	cas_proposer_init(&p, 5);
	joint_setup(&op, fn_identity, NULL, 0x7, 0xb);
	op.cfg.read_only = true;
	cas_op_start(&op, &p, &eff);
	assert_int_equal(eff.msg->type, CAS_MSG_QUERY);
	assert_int_equal(eff.targets, 0xf);
	uint32_t a = eff.attempt;

	/* 0 and 2 agree: a majority of O, but 2 is not in N. */
	cas_op_on_reply(&op, &p, 0, a, &cur, 0, &rng, &eff);
	cas_op_on_reply(&op, &p, 2, a, &cur, 0, &rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT);
	/* 3 agrees too: now a majority of N as well. */
	cas_op_on_reply(&op, &p, 3, a, &cur, 0, &rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_DONE);
	assert_int_equal(op.result, CAS_OK);
	cas_op_take_value(&op, &v);
	assert_int_equal(v.version, 2);
	free(v.data);
	cas_op_clear(&op);

	/* 0 and 1 answer alike and 3 differently: 0 and 1 are majorities of
	 * both. */
	joint_setup(&op, fn_identity, NULL, 0x7, 0xb);
	op.cfg.read_only = true;
	cas_op_start(&op, &p, &eff);
	a = eff.attempt;
	cas_op_on_reply(&op, &p, 3, a, &other, 0, &rng, &eff);
	cas_op_on_reply(&op, &p, 0, a, &cur, 0, &rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT);
	cas_op_on_reply(&op, &p, 1, a, &cur, 0, &rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_DONE);
	cas_op_clear(&op);

	/* Answers from O and N that do not agree: a full round at once. */
	joint_setup(&op, fn_identity, NULL, 0x7, 0xb);
	op.cfg.read_only = true;
	cas_op_start(&op, &p, &eff);
	a = eff.attempt;
	cas_op_on_reply(&op, &p, 0, a, &cur, 0, &rng, &eff);
	cas_op_on_reply(&op, &p, 2, a, &other, 0, &rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT); /* N: only 0 so far */
	cas_op_on_reply(&op, &p, 3, a, &other, 0, &rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SEND);
	assert_int_equal(eff.msg->type, CAS_MSG_PREPARE);
	cas_op_clear(&op);

	/* Nodes 1 and 3 do not answer: a majority of N cannot agree any
	 * more, the read goes to a full round without waiting for 0 and 2. */
	joint_setup(&op, fn_identity, NULL, 0x7, 0xb);
	op.cfg.read_only = true;
	cas_op_start(&op, &p, &eff);
	a = eff.attempt;
	cas_op_on_reply(&op, &p, 1, a, NULL, 0, &rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT);
	cas_op_on_reply(&op, &p, 3, a, NULL, 0, &rng, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SEND);
	assert_int_equal(eff.msg->type, CAS_MSG_PREPARE);
	cas_op_clear(&op);
}

/* A newer configuration takes effect at the next attempt, whole: the
 * attempt under way keeps its epoch and members; and a cached promise of
 * another epoch is not used. */
static void test_members_change_between_attempts(void **state)
{
	struct cas_proposer p;
	struct cas_op op;
	struct cas_effect eff;
	struct cas_reg cv = {.version = 1};
	uint64_t rng = 1;

	(void)state;
	cas_proposer_init(&p, 5);
	joint_setup(&op, fn_set, "x", JOINT_O, 0);
	cas_op_start(&op, &p, &eff);
	assert_int_equal(eff.epoch, 7);
	uint32_t a = eff.attempt;

	/* Node 0 refused the epoch as stale; the driver reloads: joint. */
	cas_op_set_members(&op, 5, JOINT_O, JOINT_N, 8);
	joint_answer(&op, &p, &rng, 0, false, false, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_WAIT);
	assert_int_equal(op.cfg.epoch, 7);
	/* Node 3 is not in this attempt's sets: ignored. */
	joint_answer(&op, &p, &rng, 3, true, false, &eff);
	assert_int_equal(op.oks, 0);
	joint_answer(&op, &p, &rng, 1, false, false, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SLEEP);
	cas_op_wake(&op, &p, eff.until_ms, &eff);
	assert_int_equal(eff.kind, CAS_EFFECT_SEND);
	assert_true(eff.attempt > a);
	assert_int_equal(eff.msg->type, CAS_MSG_PREPARE);
	assert_int_equal(eff.epoch, 8);
	assert_int_equal(eff.targets, JOINT_O | JOINT_N);
	cas_op_clear(&op);

	/* A cached promise from epoch 7, an op at epoch 8: a prepare. */
	joint_setup(&op, fn_set, "x", JOINT_O, JOINT_N);
	op.cfg.epoch = 8;
	op.cfg.cached_ballot = B(50, 5);
	op.cfg.cached_value = &cv;
	op.cfg.cached_epoch = 7;
	cas_op_start(&op, &p, &eff);
	assert_int_equal(eff.msg->type, CAS_MSG_PREPARE);
	cas_op_clear(&op);

	/* The same epoch: the accept at once. */
	joint_setup(&op, fn_set, "x", JOINT_O, JOINT_N);
	op.cfg.cached_ballot = B(50, 5);
	op.cfg.cached_value = &cv;
	op.cfg.cached_epoch = 7;
	cas_op_start(&op, &p, &eff);
	assert_int_equal(eff.msg->type, CAS_MSG_ACCEPT);
	assert_int_equal(cas_ballot_cmp(eff.msg->ballot, B(50, 5)), 0);
	cas_op_clear(&op);

	/* Before the start, a change applies at once. */
	joint_setup(&op, fn_set, "x", JOINT_O, 0);
	cas_op_set_members(&op, 4, 0, 0, 9);
	cas_op_start(&op, &p, &eff);
	assert_int_equal(eff.targets, 0xf);
	assert_int_equal(eff.epoch, 9);
	cas_op_clear(&op);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proposer_ballots),
		cmocka_unit_test(test_proposer_write_then_read),
		cmocka_unit_test(test_mistake_waits_for_all),
		cmocka_unit_test(test_mistake_accept_uses_own_ballot),
		cmocka_unit_test(test_mistake_ballot_reuse),
		cmocka_unit_test(test_no_ballot_two_values),
		cmocka_unit_test(test_conflict_moves_above_blocking),
		cmocka_unit_test(test_stale_and_duplicate_replies_ignored),
		cmocka_unit_test(test_version_mismatch_writes_back),
		cmocka_unit_test(test_retry_recognises_own_write),
		cmocka_unit_test(test_retry_answers_with_the_proposal_that_won),
		cmocka_unit_test(test_ballot_past_range_fails_fast),
		cmocka_unit_test(test_unknown_outcome),
		cmocka_unit_test(test_delete_and_new_life),
		cmocka_unit_test(test_delete_retry_recognised),
		cmocka_unit_test(test_collect_needs_every_node),
		cmocka_unit_test(test_unavailable_and_limits),
		cmocka_unit_test(test_one_round_trip),
		cmocka_unit_test(test_read_by_query),
		cmocka_unit_test(test_joint_prepare_needs_only_o),
		cmocka_unit_test(test_joint_accept_needs_both),
		cmocka_unit_test(test_joint_query_needs_both),
		cmocka_unit_test(test_members_change_between_attempts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

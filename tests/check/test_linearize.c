/* test_linearize.c - the linearizability checker accepts what it must and catches what it must. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "linearize.h"

#include <cas/cas.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Histories are written in the text format of linearize.h, one op a line,
 * NULL-terminated. Operations are labelled "line N", N counting from 1. */
static struct cas_history *parse(const char *const *lines)
{
	struct cas_history *h;
	size_t i;

	assert_int_equal(cas_history_new(&h), CAS_OK);
	for (i = 0; lines[i]; i++) {
		char label[32], err[128];
		int rc;

		snprintf(label, sizeof(label), "line %zu", i + 1);
		rc = cas_history_add_line(h, lines[i], label, err, sizeof(err));
		if (rc)
			fail_msg("cannot parse '%s': %s", lines[i], err);
	}
	return h;
}

static void expect(const char *const *lines, bool want, const char *why_has)
{
	struct cas_history *h = parse(lines);
	char why[2048];
	bool ok = !want;

	assert_int_equal(cas_history_check(h, &ok, why, sizeof(why)), CAS_OK);
	if (ok != want)
		fail_msg("expected %s, got %s%s", want ? "linearizable" : "a rejection",
			 ok ? "linearizable" : "a rejection:\n", ok ? "" : why);
	if (!want && why_has && !strstr(why, why_has))
		fail_msg("explanation lacks '%s':\n%s", why_has, why);
	cas_history_free(h);
}

#define ACCEPT(...)	    expect((const char *const[]){__VA_ARGS__, NULL}, true, NULL)
#define REJECT(needle, ...) expect((const char *const[]){__VA_ARGS__, NULL}, false, needle)

/* One operation a line reads best. */
/* clang-format off */

/* --- histories that must be accepted --- */

static void test_accept_empty(void **state)
{
	struct cas_history *h;
	char why[64];

	(void)state;
	assert_int_equal(cas_history_new(&h), CAS_OK);
	assert_true(cas_linearizable(h, why, sizeof(why)));
	cas_history_free(h);
	ACCEPT("a 0 1 read -> 0 \"\"");
	ACCEPT("# only a comment",
	       "",
	       "  ");
}

static void test_accept_sequential(void **state)
{
	(void)state;
	ACCEPT("a 0 1 read -> 0 \"\"",
	       "a 2 3 write x -> ok 1",
	       "a 4 5 read -> 1 x",
	       "a 6 7 write y -> ok 2",
	       "a 8 9 cas 2 z -> ok 3",
	       "a 10 11 cas 2 w -> mismatch 3",
	       "a 12 13 read -> 3 z",
	       "a 14 15 write \"\" -> ok 4",
	       "a 16 17 read -> 4 \"\"");
}

static void test_accept_overlapping_writes(void **state)
{
	(void)state;
	/* Invoked first, took effect second. */
	ACCEPT("a 0 10 write x -> ok 2",
	       "a 1 5 write y -> ok 1",
	       "a 11 12 read -> 2 x");
	/* Unrecorded versions let either order pass. */
	ACCEPT("a 0 10 write x -> ok ?",
	       "a 1 5 write y -> ok",
	       "a 11 12 read -> ? y");
}

static void test_accept_read_during_write(void **state)
{
	(void)state;
	/* Reads overlapping a write may see the old value or the new. */
	ACCEPT("a 0 10 write x -> ok 1",
	       "a 1 2 read -> 0 \"\"",
	       "a 3 4 read -> 1 x",
	       "a 11 12 read -> 1 x");
	/* A read may see a write before the write returns. */
	ACCEPT("a 0 100 write x -> ok 1",
	       "a 5 6 read -> 1 x");
	/* Two overlapping reads see the old and the new in either order. */
	ACCEPT("a 0 10 write x -> ok 1",
	       "a 1 9 read -> 1 x",
	       "a 2 8 read -> 0 \"\"");
}

static void test_accept_equal_times_overlap(void **state)
{
	(void)state;
	/* The read is invoked at the instant the write completes: it counts
	 * as concurrent and may be ordered first. */
	ACCEPT("a 0 5 write x -> ok 1",
	       "a 5 6 read -> 0 \"\"");
}

static void test_accept_pending_took_effect(void **state)
{
	(void)state;
	ACCEPT("a 0 - write x",
	       "a 10 11 read -> 1 x");
	/* Unknown outcome with a completion time: in flight even later. */
	ACCEPT("a 0 5 write x -> unknown",
	       "a 10 11 read -> 0 \"\"",
	       "a 20 21 read -> 1 x");
	ACCEPT("a 0 1 write x -> ok 1",
	       "a 2 - cas 1 y -> unknown",
	       "a 10 11 read -> 2 y");
}

static void test_accept_pending_no_effect(void **state)
{
	(void)state;
	ACCEPT("a 0 - write x",
	       "a 10 11 read -> 0 \"\"");
	ACCEPT("a 0 1 write x -> ok 1",
	       "a 2 - write y -> unknown",
	       "a 3 4 write z -> ok 2",
	       "a 10 11 read -> 2 z");
	/* A pending cas that could never succeed. */
	ACCEPT("a 0 - cas 7 y",
	       "a 10 11 read -> 0 \"\"");
	/* Many pending writes: some took effect, some did not. */
	ACCEPT("a 0 - write p1",
	       "a 0 - write p2",
	       "a 0 - write p3",
	       "a 0 - write p4",
	       "a 0 - write p5",
	       "a 0 - write p6",
	       "a 0 - write p7",
	       "a 0 - write p8",
	       "a 1 2 read -> 2 p5",
	       "a 3 4 write x -> ok 5",
	       "a 5 6 read -> 7 p1");
}

static void test_accept_cas_chain(void **state)
{
	(void)state;
	/* Three clients increment by read + cas; losers see mismatches. */
	ACCEPT("c 0 1 read -> 0 \"\"",
	       "c 0 2 read -> 0 \"\"",
	       "c 0 3 read -> 0 \"\"",
	       "c 4 10 cas 0 1 -> ok 1",
	       "c 5 11 cas 0 1 -> mismatch 1",
	       "c 6 12 cas 0 1 -> mismatch",
	       "c 13 14 read -> 1 1",
	       "c 13 15 read -> 1 1",
	       "c 16 20 cas 1 2 -> ok 2",
	       "c 17 21 cas 1 2 -> mismatch 2",
	       "c 22 23 read -> 2 2",
	       "c 24 30 cas 2 3 -> ok ?",
	       "c 24 31 cas 2 3b -> mismatch ?",
	       "c 32 33 read -> 3 3");
	/* A mismatch may see a version the history never otherwise shows. */
	ACCEPT("c 0 - write x",
	       "c 1 2 cas 0 y -> mismatch 1",
	       "c 3 4 read -> 1 x");
}

static void test_accept_failed_ignored(void **state)
{
	(void)state;
	ACCEPT("a 0 1 write x -> fail",
	       "a 2 3 cas 0 y -> fail",
	       "a 4 5 read -> fail",
	       "a 6 7 read -> unknown",
	       "a 8 9 read -> 0 \"\"");
}

static void test_accept_repeated_values(void **state)
{
	(void)state;
	ACCEPT("a 0 1 write x -> ok 1",
	       "a 2 3 write x -> ok 2",
	       "a 4 5 read -> 2 x",
	       "a 6 7 write \"\" -> ok 3",
	       "a 8 9 read -> 3 \"\"");
}

static void test_accept_binary_values(void **state)
{
	(void)state;
	ACCEPT("a 0 1 write \"\\x00\\xff \\\"q\\\"\\n\" -> ok 1",
	       "a 2 3 read -> 1 \"\\0\\xFF \\\"q\\\"\\n\"");
}

static void test_accept_keys_independent(void **state)
{
	(void)state;
	/* Per key fine; across keys there is no order to respect. */
	ACCEPT("a 0 10 write x -> ok 1",
	       "b 0 10 write y -> ok 1",
	       "a 11 12 read -> 1 x",
	       "b 11 12 read -> 1 y",
	       "b 13 14 read -> 1 y",
	       "c 1 2 read -> 0 \"\"",
	       "\"q k\" 1 2 write v -> ok 1");
}

/* --- histories that must be rejected --- */

static void test_reject_stale_read(void **state)
{
	(void)state;
	REJECT("line 2",
	       "a 0 10 write x -> ok 1",
	       "a 11 12 read -> 0 \"\"");
	REJECT(NULL,
	       "a 0 1 write x -> ok 1",
	       "a 2 3 write y -> ok 2",
	       "a 4 5 read -> 1 x");
}

static void test_reject_value_never_written(void **state)
{
	(void)state;
	REJECT("line 2",
	       "a 0 10 write x -> ok 1",
	       "a 5 12 read -> 1 q");
	REJECT(NULL,
	       "a 0 1 read -> 0 q");
	REJECT(NULL,
	       "a 0 1 read -> 1 \"\"");
	/* The value of a write that definitely failed. */
	REJECT(NULL,
	       "a 0 1 write x -> fail",
	       "a 2 3 read -> 1 x");
}

static void test_reject_read_before_write(void **state)
{
	(void)state;
	REJECT(NULL,
	       "a 0 1 read -> 1 x",
	       "a 2 3 write x -> ok 1");
	REJECT(NULL,
	       "a 0 1 read -> 1 x",
	       "a 2 - write x");
}

static void test_reject_two_cas_same_version(void **state)
{
	(void)state;
	REJECT(NULL,
	       "a 0 1 write x -> ok 1",
	       "a 2 10 cas 1 y -> ok 2",
	       "a 3 11 cas 1 z -> ok 2");
	/* Even with unrecorded new versions, and far apart in time. */
	REJECT(NULL,
	       "a 0 1 write x -> ok 1",
	       "a 2 3 cas 1 y -> ok",
	       "a 4 5 cas 1 z -> ok");
}

static void test_reject_lost_update(void **state)
{
	(void)state;
	/* Two increments read 5, both cas 1 -> 6 "succeed": one is lost. */
	REJECT(NULL,
	       "n 0 1 write 5 -> ok 1",
	       "n 2 3 read -> 1 5",
	       "n 2 4 read -> 1 5",
	       "n 5 9 cas 1 6 -> ok ?",
	       "n 6 8 cas 1 6 -> ok ?",
	       "n 10 11 read -> ? 6");
}

static void test_reject_version_backwards(void **state)
{
	(void)state;
	REJECT(NULL,
	       "a 0 100 write x -> ok 1",
	       "a 1 100 write y -> ok 2",
	       "a 10 11 read -> 2 y",
	       "a 12 13 read -> 1 x");
	/* Two reads disagreeing on a version's value. */
	REJECT(NULL,
	       "a 0 100 write x -> ok ?",
	       "a 0 100 write y -> ok ?",
	       "a 10 11 read -> 1 x",
	       "a 12 13 read -> 1 y");
}

static void test_reject_pending_flicker(void **state)
{
	(void)state;
	/* A pending write is seen, then unseen. */
	REJECT(NULL,
	       "a 0 - write x",
	       "a 10 11 read -> 1 x",
	       "a 12 13 read -> 0 \"\"");
	REJECT(NULL,
	       "a 0 1 write x -> ok 1",
	       "a 2 3 write y -> unknown",
	       "a 10 11 read -> 2 y",
	       "a 12 13 read -> 1 x");
}

static void test_reject_bad_mismatch(void **state)
{
	(void)state;
	/* Mismatch although the version was the expected one. */
	REJECT(NULL,
	       "a 0 1 write x -> ok 1",
	       "a 2 3 cas 1 y -> mismatch",
	       "a 4 5 read -> 1 x");
	/* Mismatch reporting a version that is not the current one. */
	REJECT(NULL,
	       "a 0 1 write x -> ok 1",
	       "a 2 3 cas 0 y -> mismatch 2");
	/* Mismatch reporting the expected version itself. */
	REJECT(NULL,
	       "a 0 1 cas 0 y -> mismatch 0");
	/* A fresh key must accept cas 0. */
	REJECT(NULL,
	       "a 0 1 cas 0 y -> mismatch");
}

static void test_reject_bad_versions(void **state)
{
	(void)state;
	REJECT(NULL,
	       "a 0 1 write x -> ok 2");
	REJECT(NULL,
	       "a 0 1 cas 3 x -> ok 4");
	REJECT(NULL,
	       "a 0 1 cas 0 x -> ok 2");
	REJECT(NULL,
	       "a 0 1 write x -> ok 1",
	       "a 2 3 write y -> ok 1");
}

static void test_reject_real_time_order(void **state)
{
	(void)state;
	/* Versions say b then a, real time says a then b. */
	REJECT(NULL,
	       "a 0 1 write x -> ok 2",
	       "a 2 3 write y -> ok 1");
	REJECT(NULL,
	       "a 0 1 cas 1 x -> ok 2",
	       "a 2 3 cas 0 y -> ok 1");
}

static void test_reject_names_bad_key(void **state)
{
	(void)state;
	REJECT("key \"b\"",
	       "a 0 1 write x -> ok 1",
	       "b 0 1 write x -> ok 1",
	       "a 2 3 read -> 1 x",
	       "b 2 3 read -> 0 \"\"",
	       "c 2 3 read -> 0 \"\"");
}

static void test_explanation_shape(void **state)
{
	struct cas_history *h =
		parse((const char *const[]){"k 0 1 write a -> ok 1", "k 2 3 write b -> ok 2",
					    "k 4 5 write c -> ok 3", "k 6 7 read -> 2 b", NULL});
	char why[512], tiny[16];

	(void)state;
	assert_false(cas_linearizable(h, why, sizeof(why)));
	assert_non_null(strstr(why, "key \"k\""));
	assert_non_null(strstr(why, "line 4: read [6,7] -> 2 \"b\""));
	assert_non_null(strstr(why, "places 3 of 4"));
	assert_non_null(strstr(why, "leaves v3 \"c\""));
	/* Truncated, still terminated. */
	assert_false(cas_linearizable(h, tiny, sizeof(tiny)));
	assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
	assert_false(cas_linearizable(h, NULL, 0));
	cas_history_free(h);
}

/* clang-format on */

/* --- the API and the text format --- */

static void test_add_rejects_inconsistent(void **state)
{
	struct cas_history *h;
	struct cas_hist_op ok = {.kind = CAS_HIST_WRITE,
				 .invoke = 1,
				 .complete = 2,
				 .value = "x",
				 .len = 1,
				 .version = 1};
	struct cas_hist_op op;

	(void)state;
	assert_int_equal(cas_history_new(&h), CAS_OK);
	assert_int_equal(cas_history_add(h, "a", &ok), CAS_OK);
	op = ok;
	op.complete = 0;
	assert_int_equal(cas_history_add(h, "a", &op), CAS_EINVAL);
	op = ok;
	op.status = CAS_HIST_MISMATCH;
	assert_int_equal(cas_history_add(h, "a", &op), CAS_EINVAL);
	op = ok;
	op.complete = CAS_TIME_PENDING;
	assert_int_equal(cas_history_add(h, "a", &op), CAS_EINVAL);
	op = ok;
	op.value = NULL;
	assert_int_equal(cas_history_add(h, "a", &op), CAS_EINVAL);
	assert_int_equal(cas_history_add(h, NULL, &ok), CAS_EINVAL);
	assert_int_equal(cas_history_count(h), 1);
	cas_history_free(h);
	cas_history_free(NULL);
}

static void test_parse_rejects_bad_lines(void **state)
{
	static const char *const bad[] = {
		"a",
		"a 0 1",
		"a x 1 read -> 0 \"\"",
		"a 0 y read -> 0 \"\"",
		"a 5 1 read -> 0 \"\"",
		"a 0 1 get -> 0 \"\"",
		"a 0 1 read",
		"a 0 1 read 0 \"\"",
		"a 0 1 read -> 0",
		"a 0 1 read -> ok 1",
		"a 0 1 write -> ok 1",
		"a 0 1 write x -> mismatch 1",
		"a 0 1 write x -> ok 1 2",
		"a 0 1 write x -> ok -1",
		"a 0 1 cas x y -> ok 1",
		"a 0 1 cas 0 y -> maybe",
		"a 0 - write x -> ok 1",
		"a 0 1 write \"x -> ok 1",
		"a 0 1 write \"x\\q\" -> ok 1",
		"a 0 1 write \"x\\x4\" -> ok 1",
		"a 0 1 write \"x\"y -> ok 1",
		"a 0 1 cas 0 y -> ok 1 2 3 4 5 6 7",
		NULL,
	};
	struct cas_history *h;
	size_t i;

	(void)state;
	assert_int_equal(cas_history_new(&h), CAS_OK);
	for (i = 0; bad[i]; i++) {
		char err[128] = "";

		if (cas_history_add_line(h, bad[i], NULL, err, sizeof(err)) != CAS_EINVAL)
			fail_msg("accepted '%s'", bad[i]);
		assert_true(err[0] != '\0');
	}
	assert_int_equal(cas_history_count(h), 0);
	cas_history_free(h);
}

/* Writes h out and reads it back; the text must be a fixed point. */
static struct cas_history *roundtrip(const struct cas_history *h, char **text)
{
	struct cas_history *back;
	char *buf = NULL, *again = NULL, *line, *save = NULL;
	size_t len = 0, len2 = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(cas_history_write(h, f), CAS_OK);
	fclose(f);
	assert_int_equal(cas_history_new(&back), CAS_OK);
	*text = strdup(buf);
	assert_non_null(*text);
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char err[128];

		if (cas_history_add_line(back, line, NULL, err, sizeof(err)))
			fail_msg("cannot read back '%s': %s", line, err);
	}
	f = open_memstream(&again, &len2);
	assert_non_null(f);
	assert_int_equal(cas_history_write(back, f), CAS_OK);
	fclose(f);
	assert_string_equal(*text, again);
	free(again);
	free(buf);
	return back;
}

/* --- deletes: a deleted key reads as absent, and lives again at 1 --- */

static void test_delete_model(void **state)
{
	(void)state;
	ACCEPT("a 0 1 write x -> ok 1", "a 2 3 delete -> ok 0", "a 4 5 read -> 0 \"\"",
	       "a 6 7 write y -> ok 1", "a 8 9 read -> 1 y", "a 10 11 cas 1 z -> ok 2",
	       "a 12 13 delete -> ok", "a 14 15 cas 0 w -> ok 1");
	/* A delete of nothing, and deletes that overlap a write. */
	ACCEPT("a 0 1 delete -> ok 0", "a 2 3 read -> 0 \"\"", "a 4 10 write x -> ok 1",
	       "a 5 9 delete -> ok 0", "a 11 12 read -> 0 \"\"");
	/* A delete whose outcome is unknown may take effect late, or never. */
	ACCEPT("a 0 1 write x -> ok 1", "a 2 - delete", "a 3 4 read -> 1 x",
	       "a 5 6 read -> 0 \"\"");
	ACCEPT("a 0 1 write x -> ok 1", "a 2 3 delete -> unknown", "a 4 5 read -> 1 x");
	/* A failed delete did nothing. */
	ACCEPT("a 0 1 write x -> ok 1", "a 2 3 delete -> fail", "a 4 5 read -> 1 x");
}

static void test_reject_resurrection(void **state)
{
	(void)state;
	/* The old value read after the delete completed. */
	REJECT("line 3", "a 0 1 write x -> ok 1", "a 2 3 delete -> ok 0", "a 4 5 read -> 1 x");
	/* A write built on the old life (a stale cached promise): version 2
	 * after a delete. */
	REJECT("line 3", "a 0 1 write x -> ok 1", "a 2 3 delete -> ok 0", "a 4 5 write y -> ok 2");
	REJECT("line 3", "a 0 1 write x -> ok 1", "a 2 3 delete -> ok 0", "a 4 5 cas 1 y -> ok 2");
	/* Deleted once, absent, then present again without a write. */
	REJECT("line 4", "a 0 1 write x -> ok 1", "a 2 - delete", "a 3 4 read -> 0 \"\"",
	       "a 5 6 read -> 1 x");
	/* A delete reports version 0. */
	REJECT("line 2", "a 0 1 write x -> ok 1", "a 2 3 delete -> ok 2");
	REJECT(NULL, "a 0 1 delete -> ok 1");
}

static void test_text_roundtrip(void **state)
{
	struct cas_history *h = parse((const char *const[]){
		"a 0 1 write \"\\x00\\x01 \\\"\\\\\" -> ok 1",
		"a 2 3 read -> ? \"\\0\\x01 \\\"\\\\\"", "\"k y\" 4 - cas 1 z",
		"a 5 6 cas 0 q -> mismatch 1", "a 7 8 write r -> fail", "a 9 10 read -> unknown",
		"a 11 12 delete -> ok 0", "a 13 - delete", NULL});
	struct cas_history *back;
	char *text;

	(void)state;
	back = roundtrip(h, &text);
	assert_int_equal(cas_history_count(back), 8);
	assert_non_null(strstr(text, "\"k y\" 4 - cas 1 \"z\" -> unknown\n"));
	assert_non_null(strstr(text, "a 11 12 delete -> ok 0\na 13 - delete -> unknown\n"));
	assert_true(cas_linearizable(back, NULL, 0));
	free(text);
	cas_history_free(back);
	cas_history_free(h);
}

/* --- randomized self-test --- */

static uint64_t rnd_state;

static uint64_t rnd(void)
{
	uint64_t z = (rnd_state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

#define RKEYS 3
#define RVAL  40

/* One generated operation, with the truth the generator knows. */
struct rop {
	int key;
	struct cas_hist_op op;
	char value[RVAL];
	bool took_effect;
	uint64_t true_version; /* the register's version right after it */
};

/* A sequential run of the model: op i takes effect at time 100 * i + 50,
 * inside an interval widened by up to spread * 100 on each side. Some
 * outcomes become unknown or unrecorded, some reads and mismatches fail:
 * all of which keeps the history linearizable. */
static void generate(struct rop *ops, size_t n, unsigned spread, unsigned seed)
{
	uint64_t version[RKEYS] = {0};
	char value[RKEYS][RVAL] = {{0}};
	size_t i;

	for (i = 0; i < n; i++) {
		struct rop *r = &ops[i];
		int k = (int)below(RKEYS);
		uint64_t at = 100 * i + 50;
		unsigned dice = below(100);

		memset(r, 0, sizeof(*r));
		r->key = k;
		r->op.invoke = at - below(spread * 100 + 1);
		if (r->op.invoke > at)
			r->op.invoke = 0;
		r->op.complete = at + below(spread * 100 + 1);
		if (dice < 40) {
			r->op.kind = CAS_HIST_READ;
			memcpy(r->value, value[k], RVAL);
			r->op.version = version[k];
		} else {
			r->op.kind = dice < 65 ? CAS_HIST_WRITE : CAS_HIST_CAS;
			r->op.expected = below(4) ? version[k] : version[k] + below(3) - 1;
			snprintf(r->value, RVAL, "s%u-%zu", seed, i);
			if (r->op.kind == CAS_HIST_CAS && r->op.expected != version[k]) {
				r->op.status = CAS_HIST_MISMATCH;
				r->op.version = version[k];
			} else {
				r->took_effect = true;
				version[k]++;
				memcpy(value[k], r->value, RVAL);
				r->op.version = version[k];
			}
		}
		r->true_version = version[k];
		r->op.value = r->value;
		r->op.len = strlen(r->value);
		dice = below(100);
		if (dice < 8 && r->op.kind != CAS_HIST_READ) {
			r->op.status = CAS_HIST_UNKNOWN;
			if (below(2))
				r->op.complete = CAS_TIME_PENDING;
		} else if (dice < 12 && !r->took_effect) {
			r->op.status = CAS_HIST_FAILED;
		} else if (dice < 20 && r->op.status != CAS_HIST_UNKNOWN) {
			r->op.version = CAS_VERSION_ANY;
		}
	}
}

static struct cas_history *build(const struct rop *ops, size_t n, const struct rop *extra)
{
	struct cas_history *h;
	static const char *const keys[RKEYS] = {"k0", "k1", "k2"};
	size_t i;

	assert_int_equal(cas_history_new(&h), CAS_OK);
	for (i = 0; i < n; i++)
		assert_int_equal(cas_history_add(h, keys[ops[i].key], &ops[i].op), CAS_OK);
	if (extra)
		assert_int_equal(cas_history_add(h, keys[extra->key], &extra->op), CAS_OK);
	return h;
}

/* Picks ops[i] satisfying pred, from a random start; -1 if none. */
static long pick(const struct rop *ops, size_t n, bool (*pred)(const struct rop *))
{
	size_t i, start = below((unsigned)n);

	for (i = 0; i < n; i++)
		if (pred(&ops[(start + i) % n]))
			return (long)((start + i) % n);
	return -1;
}

static bool is_ok_read(const struct rop *r)
{
	return r->op.kind == CAS_HIST_READ && r->op.status == CAS_HIST_OK;
}

static bool is_done_put(const struct rop *r)
{
	return r->op.kind != CAS_HIST_READ && r->op.status == CAS_HIST_OK &&
	       r->op.version != CAS_VERSION_ANY;
}

static bool is_done_cas(const struct rop *r)
{
	return r->op.kind == CAS_HIST_CAS && r->op.status == CAS_HIST_OK;
}

static bool is_seen_mismatch(const struct rop *r)
{
	return r->op.status == CAS_HIST_MISMATCH && r->op.version != CAS_VERSION_ANY;
}

/* Breaks the history in a way no linearization can absorb: edits ops in
 * place and/or fills *extra (extra->key < 0: none). Returns the key whose
 * sub-history is broken, or -1 if no mutation applied. */
static int mutate(struct rop *ops, size_t n, struct rop *extra)
{
	uint64_t end = 100 * n + 100 * 100;
	long i;

	extra->key = -1;
	switch (below(6)) {
	case 0: /* A read returns a value nobody wrote. */
		i = pick(ops, n, is_ok_read);
		if (i < 0)
			return -1;
		snprintf(ops[i].value, RVAL, "never");
		ops[i].op.len = strlen(ops[i].value);
		return ops[i].key;
	case 1: /* A read returns a version far beyond all writes. */
		i = pick(ops, n, is_ok_read);
		if (i < 0)
			return -1;
		ops[i].op.version = ops[i].true_version + 1000000;
		return ops[i].key;
	case 2: /* After everything, a read behind a completed put's version. */
		i = pick(ops, n, is_done_put);
		if (i < 0)
			return -1;
		*extra = ops[i];
		extra->op = (struct cas_hist_op){.kind = CAS_HIST_READ,
						 .invoke = end,
						 .complete = end + 1,
						 .version = ops[i].true_version - 1};
		extra->op.value = extra->value;
		extra->op.len = 0;
		return extra->key;
	case 3: /* After everything, a completed cas succeeds again. */
		i = pick(ops, n, is_done_cas);
		if (i < 0)
			return -1;
		*extra = ops[i];
		extra->op.invoke = end;
		extra->op.complete = end + 1;
		extra->op.value = extra->value;
		return extra->key;
	case 4: /* A mismatch claims it saw the version it expected. */
		i = pick(ops, n, is_seen_mismatch);
		if (i < 0)
			return -1;
		ops[i].op.expected = ops[i].op.version;
		return ops[i].key;
	default: /* A completed put claims a version it cannot have made. */
		i = pick(ops, n, is_done_put);
		if (i < 0)
			return -1;
		ops[i].op.version = ops[i].true_version + 1000000;
		return ops[i].key;
	}
}

struct sweep {
	unsigned histories;
	size_t ops;
	unsigned spread;
	double accept_s;
	double reject_s;
	unsigned rejected;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run_sweep(struct sweep *sw, unsigned first_seed)
{
	struct rop *ops = malloc(sw->ops * sizeof(*ops));
	unsigned seed;

	assert_non_null(ops);
	for (seed = first_seed; seed < first_seed + sw->histories; seed++) {
		static const char *const keys[RKEYS] = {"k0", "k1", "k2"};
		struct cas_history *h;
		struct rop extra;
		char why[2048], needle[16];
		double t0;
		int key;

		rnd_state = seed;
		generate(ops, sw->ops, 1 + seed % sw->spread, seed);
		h = build(ops, sw->ops, NULL);
		t0 = now();
		if (!cas_linearizable(h, why, sizeof(why)))
			fail_msg("seed %u: generated history rejected:\n%s", seed, why);
		sw->accept_s += now() - t0;
		cas_history_free(h);

		key = mutate(ops, sw->ops, &extra);
		if (key < 0)
			continue;
		h = build(ops, sw->ops, extra.key >= 0 ? &extra : NULL);
		t0 = now();
		if (cas_linearizable(h, why, sizeof(why)))
			fail_msg("seed %u: mutated history accepted", seed);
		sw->reject_s += now() - t0;
		sw->rejected++;
		snprintf(needle, sizeof(needle), "key \"%s\"", keys[key]);
		if (!strstr(why, needle))
			fail_msg("seed %u: explanation names the wrong key:\n%s", seed, why);
		cas_history_free(h);
	}
	free(ops);
}

static void test_random_small(void **state)
{
	struct sweep sw = {.histories = 3000, .ops = 60, .spread = 4};

	(void)state;
	run_sweep(&sw, 1);
	print_message("%u histories of %zu ops: accept %.3fs, %u rejections %.3fs\n", sw.histories,
		      sw.ops, sw.accept_s, sw.rejected, sw.reject_s);
}

static void test_random_medium(void **state)
{
	struct sweep sw = {.histories = 1000, .ops = 200, .spread = 6};

	(void)state;
	run_sweep(&sw, 100000);
	print_message("%u histories of %zu ops: accept %.3fs, %u rejections %.3fs\n", sw.histories,
		      sw.ops, sw.accept_s, sw.rejected, sw.reject_s);
}

static void test_random_long(void **state)
{
	struct sweep sw = {.histories = 5, .ops = 3000, .spread = 5};

	(void)state;
	run_sweep(&sw, 200000);
	print_message("%u histories of %zu ops: accept %.3fs, %u rejections %.3fs\n", sw.histories,
		      sw.ops, sw.accept_s, sw.rejected, sw.reject_s);
}

/* --- against a brute-force oracle --- */

#define BF_MAX 8

struct bf {
	const struct cas_hist_op *ops[BF_MAX];
	int n;
};

/* Tries every order of every allowed subset, straight from the model in
 * linearize.h, with no pruning at all. */
static bool bf_search(const struct bf *b, unsigned placed, uint64_t version, const char *val,
		      size_t len)
{
	int i, j;
	bool done = true;

	for (i = 0; i < b->n; i++)
		if (!(placed & (1u << i)) && b->ops[i]->status != CAS_HIST_UNKNOWN)
			done = false;
	if (done)
		return true;
	for (i = 0; i < b->n; i++) {
		const struct cas_hist_op *x = b->ops[i];
		bool minimal = true;

		if (placed & (1u << i))
			continue;
		for (j = 0; j < b->n; j++)
			if (!(placed & (1u << j)) && b->ops[j]->status != CAS_HIST_UNKNOWN &&
			    b->ops[j]->complete < x->invoke)
				minimal = false;
		if (!minimal)
			continue;
		if (x->kind == CAS_HIST_READ) {
			if ((x->version == CAS_VERSION_ANY || x->version == version) &&
			    x->len == len && !memcmp(x->value, val, len) &&
			    bf_search(b, placed | 1u << i, version, val, len))
				return true;
		} else if (x->kind == CAS_HIST_DELETE) {
			if ((x->status == CAS_HIST_UNKNOWN || x->version == CAS_VERSION_ANY ||
			     x->version == 0) &&
			    bf_search(b, placed | 1u << i, 0, "", 0))
				return true;
		} else if (x->status == CAS_HIST_MISMATCH) {
			if (version != x->expected &&
			    (x->version == CAS_VERSION_ANY || x->version == version) &&
			    bf_search(b, placed | 1u << i, version, val, len))
				return true;
		} else {
			bool effect = x->kind == CAS_HIST_WRITE || x->expected == version;
			bool vok = x->status == CAS_HIST_UNKNOWN || x->version == CAS_VERSION_ANY ||
				   x->version == version + 1;

			if (effect && vok &&
			    bf_search(b, placed | 1u << i, version + 1, x->value, x->len))
				return true;
			/* An unknown cas may also have run and failed. */
			if (!effect && x->status == CAS_HIST_UNKNOWN &&
			    bf_search(b, placed | 1u << i, version, val, len))
				return true;
		}
	}
	return false;
}

static void test_random_vs_brute_force(void **state)
{
	static const char *const vals[] = {"", "a", "b", "c"};
	struct cas_hist_op ops[BF_MAX];
	unsigned seed, yes = 0, no = 0;

	(void)state;
	for (seed = 1; seed <= 30000; seed++) {
		struct cas_history *h;
		struct bf b = {.n = 0};
		int i, n;
		bool want, got;
		char why[1024];

		rnd_state = seed * 7919ULL;
		n = 2 + (int)below(BF_MAX - 1);
		assert_int_equal(cas_history_new(&h), CAS_OK);
		for (i = 0; i < n; i++) {
			struct cas_hist_op *op = &ops[i];
			unsigned d = below(10);

			memset(op, 0, sizeof(*op));
			op->kind = d < 4 ? CAS_HIST_READ : d < 7 ? CAS_HIST_WRITE : CAS_HIST_CAS;
			op->invoke = below(12);
			op->complete = op->invoke + below(6);
			op->expected = below(3);
			op->value = vals[below(4)];
			op->len = strlen(op->value);
			op->version = below(5) ? below(4) : CAS_VERSION_ANY;
			if (below(8) == 0) {
				op->kind = CAS_HIST_DELETE;
				op->version = below(4) ? 0 : below(2) ? CAS_VERSION_ANY : 1;
			}
			d = below(10);
			if (d < 2 && op->kind != CAS_HIST_READ) {
				op->status = CAS_HIST_UNKNOWN;
				if (below(2))
					op->complete = CAS_TIME_PENDING;
			} else if (d < 5 && op->kind == CAS_HIST_CAS) {
				op->status = CAS_HIST_MISMATCH;
			} else if (d < 6) {
				op->status = CAS_HIST_FAILED;
			}
			assert_int_equal(cas_history_add(h, "k", op), CAS_OK);
			if (op->status != CAS_HIST_FAILED)
				b.ops[b.n++] = op;
		}
		want = bf_search(&b, 0, 0, "", 0);
		got = cas_linearizable(h, why, sizeof(why));
		if (want != got) {
			cas_history_write(h, stderr);
			fail_msg("seed %u: checker says %d, brute force %d", seed, got, want);
		}
		if (want)
			yes++;
		else
			no++;
		cas_history_free(h);
	}
	print_message("agreed with brute force on %u linearizable and %u not\n", yes, no);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accept_empty),
		cmocka_unit_test(test_accept_sequential),
		cmocka_unit_test(test_accept_overlapping_writes),
		cmocka_unit_test(test_accept_read_during_write),
		cmocka_unit_test(test_accept_equal_times_overlap),
		cmocka_unit_test(test_accept_pending_took_effect),
		cmocka_unit_test(test_accept_pending_no_effect),
		cmocka_unit_test(test_accept_cas_chain),
		cmocka_unit_test(test_accept_failed_ignored),
		cmocka_unit_test(test_accept_repeated_values),
		cmocka_unit_test(test_accept_binary_values),
		cmocka_unit_test(test_accept_keys_independent),
		cmocka_unit_test(test_reject_stale_read),
		cmocka_unit_test(test_reject_value_never_written),
		cmocka_unit_test(test_reject_read_before_write),
		cmocka_unit_test(test_reject_two_cas_same_version),
		cmocka_unit_test(test_reject_lost_update),
		cmocka_unit_test(test_reject_version_backwards),
		cmocka_unit_test(test_reject_pending_flicker),
		cmocka_unit_test(test_reject_bad_mismatch),
		cmocka_unit_test(test_reject_bad_versions),
		cmocka_unit_test(test_reject_real_time_order),
		cmocka_unit_test(test_reject_names_bad_key),
		cmocka_unit_test(test_explanation_shape),
		cmocka_unit_test(test_add_rejects_inconsistent),
		cmocka_unit_test(test_parse_rejects_bad_lines),
		cmocka_unit_test(test_delete_model),
		cmocka_unit_test(test_reject_resurrection),
		cmocka_unit_test(test_text_roundtrip),
		cmocka_unit_test(test_random_vs_brute_force),
		cmocka_unit_test(test_random_small),
		cmocka_unit_test(test_random_medium),
		cmocka_unit_test(test_random_long),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_fs_txn.c - multi-register transactions (fs/txn.c) over registers
 * in memory, with rounds that fail, rounds applied but reported failed,
 * and an owner that crashes after any round. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "txn.h"

#define MAX_REGS 64

struct reg {
	char key[CAS_KEY_MAX + 1];
	struct cas_value v;
};

/* The registers, shared by every proposer. */
struct store {
	struct reg regs[MAX_REGS];
	size_t n;
	unsigned ids;	  /* transaction ids handed out */
	unsigned deletes; /* delete rounds that made a tombstone */
};

/* One proposer's regs.h over a store. Rounds are numbered from 1. */
struct view {
	struct store *st;
	unsigned calls;	      /* rounds so far */
	unsigned fail_before; /* this round fails before it applies */
	unsigned fail_after;  /* this round applies, then reports failure */
	unsigned crash_at;    /* from this round on the proposer is dead */
	bool crash_applies;   /* ... and this round applies first */
	bool crashed;
	unsigned used;	 /* ms spent: 1 a round, and the sleeps */
	unsigned sleeps; /* calls of sleep_ms */
	/* Runs before round hook_at: another proposer acts meanwhile. */
	void (*hook)(struct view *v);
	unsigned hook_at;
};

#define BUDGET_MS 100000u

static struct reg *find(struct store *st, const char *key, bool add)
{
	for (size_t i = 0; i < st->n; i++)
		if (strcmp(st->regs[i].key, key) == 0)
			return &st->regs[i];
	if (!add)
		return NULL;
	assert_true(st->n < MAX_REGS);
	strcpy(st->regs[st->n].key, key);
	return &st->regs[st->n++];
}

static void copy_value(const struct cas_value *from, struct cas_value *to)
{
	*to = *from;
	to->data = NULL;
	if (from->len) {
		to->data = malloc(from->len);
		assert_non_null(to->data);
		memcpy(to->data, from->data, from->len);
	}
}

/* The start of a round: CAS_OK to go on, with *apply_then_fail when it
 * is to report failure after applying. */
static int round_start(struct view *v, bool *apply_then_fail)
{
	v->calls++;
	v->used++;
	*apply_then_fail = false;
	if (v->hook && v->calls == v->hook_at)
		v->hook(v);
	if (v->crashed)
		return CAS_EUNAVAILABLE;
	if (v->crash_at && v->calls >= v->crash_at) {
		v->crashed = true;
		if (!v->crash_applies)
			return CAS_EUNAVAILABLE;
		*apply_then_fail = true;
	}
	if (v->calls == v->fail_before)
		return CAS_EUNAVAILABLE;
	if (v->calls == v->fail_after)
		*apply_then_fail = true;
	return CAS_OK;
}

static int mem_read(void *arg, const char *key, struct cas_value *out)
{
	struct view *v = arg;
	struct reg *r;
	bool fail;
	int rc;

	memset(out, 0, sizeof(*out));
	rc = round_start(v, &fail);
	if (rc)
		return rc;
	r = find(v->st, key, false);
	if (r)
		copy_value(&r->v, out);
	if (fail) {
		cas_value_clear(out);
		return CAS_EUNAVAILABLE;
	}
	return CAS_OK;
}

/* One change round: fn runs once, on the current value. */
static int mem_round(void *arg, const char *key, cas_change_fn fn, void *fn_arg,
		     struct cas_value *out, bool del)
{
	struct view *v = arg;
	struct cas_value cur = {0}, next = {0};
	struct reg *r;
	bool fail;
	int rc;

	if (out)
		memset(out, 0, sizeof(*out));
	rc = round_start(v, &fail);
	if (rc)
		return rc;
	r = find(v->st, key, true);
	cur = r->v;
	rc = fn(fn_arg, &cur, &next);
	if (rc == CAS_OK) {
		free(r->v.data);
		r->v.data = next.data;
		r->v.len = next.len;
		r->v.version++;
		if (del) {
			/* A tombstone: absent, the next write is version 1. */
			free(r->v.data);
			r->v = (struct cas_value){0};
			v->st->deletes++;
		}
	} else {
		free(next.data);
		if (rc == CAS_ENOCHANGE)
			rc = CAS_OK;
	}
	if (fail)
		return CAS_EUNAVAILABLE;
	if (out)
		copy_value(&r->v, out);
	return rc;
}

static int mem_change(void *arg, const char *key, cas_change_fn fn, void *fn_arg,
		      struct cas_value *out)
{
	return mem_round(arg, key, fn, fn_arg, out, false);
}

static int mem_del(void *arg, const char *key, cas_change_fn fn, void *fn_arg,
		   struct cas_value *out)
{
	return mem_round(arg, key, fn, fn_arg, out, true);
}

static unsigned mem_left_ms(void *arg)
{
	struct view *v = arg;

	return v->crashed || v->used >= BUDGET_MS ? 0 : BUDGET_MS - v->used;
}

static void mem_sleep_ms(void *arg, unsigned ms)
{
	struct view *v = arg;

	v->sleeps++;
	v->used += ms;
}

static int mem_random(void *arg, void *buf, size_t len)
{
	struct view *v = arg;
	unsigned id = ++v->st->ids;

	memset(buf, 0, len);
	memcpy(buf, &id, sizeof(id));
	return CAS_OK;
}

static const struct casfs_regs_ops mem_ops = {mem_read,	   mem_change,	 mem_del,
					      mem_left_ms, mem_sleep_ms, mem_random};

static struct casfs_regs regs_of(struct view *v)
{
	return (struct casfs_regs){&mem_ops, v};
}

static void store_put(struct store *st, const char *key, const char *s)
{
	struct reg *r = find(st, key, true);

	free(r->v.data);
	r->v.len = strlen(s);
	r->v.data = (unsigned char *)strdup(s);
	r->v.version++;
}

static void store_clear(struct store *st)
{
	for (size_t i = 0; i < st->n; i++)
		cas_value_clear(&st->regs[i].v);
	st->n = 0;
}

static bool raw_is_intent(struct store *st, const char *key)
{
	struct reg *r = find(st, key, false);

	return r && r->v.len >= 2 && r->v.data[0] == 'c' && r->v.data[1] == 'I';
}

static bool raw_equals(struct store *st, const char *key, const char *s)
{
	struct reg *r = find(st, key, false);

	return r && r->v.len == strlen(s) && memcmp(r->v.data, s, r->v.len) == 0;
}

/* Records in the store, and how many of them are in state. */
static unsigned records(struct store *st, int state)
{
	unsigned n = 0;

	for (size_t i = 0; i < st->n; i++)
		if (strncmp(st->regs[i].key, "t/", 2) == 0 && st->regs[i].v.len >= 6 &&
		    (state == 0 || st->regs[i].v.data[3] == state))
			n++;
	return n;
}

/* A part: appends text to the committed value (an absent one starts
 * empty), or fails with fail. */
struct part_arg {
	const char *text;
	int fail;
	unsigned runs;
};

static int append_fn(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	struct part_arg *p = arg;
	size_t n = strlen(p->text);

	p->runs++;
	if (p->fail)
		return p->fail;
	next->len = cur->len + n;
	next->data = malloc(next->len);
	if (next->data == NULL)
		return CAS_ENOMEM;
	if (cur->len)
		memcpy(next->data, cur->data, cur->len);
	memcpy(next->data + cur->len, p->text, n);
	return CAS_OK;
}

static int keep_fn(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	(void)arg;
	(void)cur;
	(void)next;
	return CAS_ENOCHANGE;
}

/* The committed value of key as proposer v reads it, as a string
 * ("-" for absent), in buf. */
static const char *read_str(struct view *v, const char *key, char *buf, size_t size)
{
	struct casfs_regs r = regs_of(v);
	struct cas_value out;

	assert_int_equal(casfs_txn_read(&r, key, &out), CAS_OK);
	if (out.version == 0) {
		assert_int_equal(out.len, 0);
		strcpy(buf, "-");
	} else {
		assert_true(out.len > 0 && out.len < size);
		memcpy(buf, out.data, out.len);
		buf[out.len] = '\0';
	}
	cas_value_clear(&out);
	return buf;
}

/* The fixture: i/a = "a0", i/b = "b0", i/c absent; the transaction
 * appends "1" to each (creating i/c). */
static void setup_abc(struct store *st)
{
	memset(st, 0, sizeof(*st));
	store_put(st, "i/a", "a0");
	store_put(st, "i/b", "b0");
}

static int run_abc(struct view *v, struct part_arg *pa, struct cas_value *out)
{
	struct casfs_regs r = regs_of(v);
	/* Not in key order: the transaction sorts them. */
	struct casfs_txn_part parts[3] = {
		{"i/c", append_fn, &pa[2]}, {"i/a", append_fn, &pa[0]}, {"i/b", append_fn, &pa[1]}};

	return casfs_txn_run(&r, parts, 3, false, NULL, NULL, out);
}

#define ALL_OLD 0
#define ALL_NEW 1
#define MIXED	2

/* What a fresh proposer reads of i/a, i/b, i/c. */
static int outcome(struct store *st)
{
	struct view v = {.st = st};
	char a[16], b[16], c[16];

	read_str(&v, "i/a", a, sizeof(a));
	read_str(&v, "i/b", b, sizeof(b));
	read_str(&v, "i/c", c, sizeof(c));
	if (!strcmp(a, "a0") && !strcmp(b, "b0") && !strcmp(c, "-"))
		return ALL_OLD;
	if (!strcmp(a, "a01") && !strcmp(b, "b01") && !strcmp(c, "1"))
		return ALL_NEW;
	return MIXED;
}

/* Rounds of a transaction of three parts without faults: create, three
 * intents, commit, three roll-forwards. */
#define ABC_ROUNDS 8

/* Runs the transaction with its owner crashing at each round in turn
 * (applies: the round applies first), and counts the runs that are not
 * all or nothing for other proposers (reading, then writing), or that
 * contradict what the owner returned. */
static unsigned crash_sweep(bool applies)
{
	unsigned bad = 0;

	for (unsigned k = 1; k <= ABC_ROUNDS + 1; k++) {
		struct part_arg pa[3] = {{"1", 0, 0}, {"1", 0, 0}, {"1", 0, 0}};
		struct view owner = {.crash_at = k, .crash_applies = applies};
		struct view other = {0};
		struct casfs_regs r;
		struct store st;
		int rc, seen, after;

		setup_abc(&st);
		owner.st = other.st = &st;
		rc = run_abc(&owner, pa, NULL);
		seen = outcome(&st);
		/* Writers meet what is left: a pending owner is aborted. */
		r = regs_of(&other);
		assert_int_equal(casfs_txn_change(&r, "i/a", keep_fn, NULL, NULL), CAS_OK);
		assert_int_equal(casfs_txn_change(&r, "i/b", keep_fn, NULL, NULL), CAS_OK);
		assert_int_equal(casfs_txn_change(&r, "i/c", keep_fn, NULL, NULL), CAS_OK);
		after = outcome(&st);
		if (seen == MIXED || after != seen || (rc == CAS_OK && seen != ALL_NEW) ||
		    (rc != CAS_OK && rc != CAS_EUNAVAILABLE))
			bad++;
		if (raw_is_intent(&st, "i/a") || raw_is_intent(&st, "i/b") ||
		    raw_is_intent(&st, "i/c"))
			bad++;
		store_clear(&st);
	}
	return bad;
}

static void test_commit(void **state)
{
	struct part_arg pa[3] = {{"1", 0, 0}, {"1", 0, 0}, {"1", 0, 0}};
	struct view owner = {0};
	struct cas_value out[3];
	struct store st;

	(void)state;
	setup_abc(&st);
	owner.st = &st;
	assert_int_equal(run_abc(&owner, pa, out), CAS_OK);
	/* And one more: the record is deleted once every intent settled. */
	assert_int_equal(owner.calls, ABC_ROUNDS + 1);
	assert_int_equal(st.deletes, 1);
	/* out in the parts' order, versions past the intents. */
	assert_int_equal(out[0].len, 1);
	assert_memory_equal(out[0].data, "1", 1);
	assert_int_equal(out[0].version, 2);
	assert_memory_equal(out[1].data, "a01", 3);
	assert_int_equal(out[1].version, 3);
	assert_true(raw_equals(&st, "i/a", "a01"));
	assert_true(raw_equals(&st, "i/b", "b01"));
	assert_true(raw_equals(&st, "i/c", "1"));
	assert_int_equal(records(&st, 0), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pa[i].runs, 1);
		cas_value_clear(&out[i]);
	}
	store_clear(&st);
}

/* All or nothing whatever round the owner dies at, and others clean up. */
static void test_crash_at_every_round(void **state)
{
	(void)state;
	assert_int_equal(crash_sweep(false), 0);
	assert_int_equal(crash_sweep(true), 0);
}

/* A round that fails, or applies and reports failure, is tried again and
 * recognised as ours: one record, each function run once. */
static void test_failed_rounds_retried(void **state)
{
	(void)state;
	for (unsigned k = 1; k <= ABC_ROUNDS; k++) {
		for (int after = 0; after < 2; after++) {
			struct part_arg pa[3] = {{"1", 0, 0}, {"1", 0, 0}, {"1", 0, 0}};
			struct view owner = {0};
			struct store st;

			setup_abc(&st);
			owner.st = &st;
			if (after)
				owner.fail_after = k;
			else
				owner.fail_before = k;
			assert_int_equal(run_abc(&owner, pa, NULL), CAS_OK);
			assert_int_equal(owner.sleeps, 0);
			assert_int_equal(records(&st, 0), 0);
			for (int i = 0; i < 3; i++)
				assert_int_equal(pa[i].runs, 1);
			assert_true(raw_equals(&st, "i/a", "a01"));
			assert_true(raw_equals(&st, "i/b", "b01"));
			assert_true(raw_equals(&st, "i/c", "1"));
			store_clear(&st);
		}
	}
}

static void test_function_fails(void **state)
{
	struct part_arg pa[3] = {{"1", 0, 0}, {"1", CAS_EVERSION, 0}, {"1", 0, 0}};
	struct view owner = {0}, other = {0};
	struct store st;
	char buf[16];

	(void)state;
	setup_abc(&st);
	owner.st = other.st = &st;
	assert_int_equal(run_abc(&owner, pa, NULL), CAS_EVERSION);
	assert_int_equal(pa[2].runs, 0); /* i/c comes after i/b */
	assert_true(raw_equals(&st, "i/a", "a0"));
	assert_true(raw_equals(&st, "i/b", "b0"));
	assert_null(find(&st, "i/c", false));
	assert_int_equal(records(&st, 0), 0); /* aborted, rolled back, deleted */
	assert_string_equal(read_str(&other, "i/a", buf, sizeof(buf)), "a0");
	store_clear(&st);

	/* The last part fails: the created register is absent again, and
	 * can be created. */
	pa[1].fail = 0;
	pa[2].fail = CAS_EINVAL;
	setup_abc(&st);
	owner = (struct view){.st = &st};
	assert_int_equal(run_abc(&owner, pa, NULL), CAS_EINVAL);
	assert_int_equal(outcome(&st), ALL_OLD);
	assert_true(raw_equals(&st, "i/a", "a0"));
	store_clear(&st);
}

/* The owner dies between placing its intents and committing: a
 * creation by it is undone, and a conditional create works after. */
static void test_pending_create_undone(void **state)
{
	struct part_arg pa[3] = {{"1", 0, 0}, {"1", 0, 0}, {"1", 0, 0}};
	struct part_arg fresh = {"new", 0, 0};
	struct view owner = {.crash_at = 5}, other = {0};
	struct cas_value out = {0};
	struct casfs_regs r;
	struct store st;

	(void)state;
	setup_abc(&st);
	owner.st = other.st = &st;
	assert_int_equal(run_abc(&owner, pa, NULL), CAS_EUNAVAILABLE);
	assert_true(raw_is_intent(&st, "i/c"));
	r = regs_of(&other);
	assert_int_equal(casfs_txn_read(&r, "i/c", &out), CAS_OK);
	assert_int_equal(out.version, 0);
	assert_int_equal(other.sleeps, 0); /* readers never wait */
	assert_int_equal(casfs_txn_change(&r, "i/c", append_fn, &fresh, &out), CAS_OK);
	assert_int_equal(out.len, 3);
	/* Rolled back to absent is a tombstone: the create is a new life. */
	assert_int_equal(out.version, 1);
	cas_value_clear(&out);
	assert_int_equal(other.sleeps, CASFS_TXN_WAIT_SLEEPS);
	assert_int_equal(records(&st, 3), 1);
	store_clear(&st);
}

/* Committed, not rolled forward: readers see the new values and roll
 * them forward. */
static void test_committed_reads_new(void **state)
{
	struct part_arg pa[3] = {{"1", 0, 0}, {"1", 0, 0}, {"1", 0, 0}};
	struct view owner = {.crash_at = 6}, other = {0};
	struct cas_value out = {0};
	struct casfs_regs r;
	struct store st;

	(void)state;
	setup_abc(&st);
	owner.st = other.st = &st;
	assert_int_equal(run_abc(&owner, pa, NULL), CAS_OK);
	assert_int_equal(records(&st, 2), 1);
	assert_true(raw_is_intent(&st, "i/a"));
	r = regs_of(&other);
	assert_int_equal(casfs_txn_read(&r, "i/a", &out), CAS_OK);
	assert_int_equal(out.len, 3);
	assert_memory_equal(out.data, "a01", 3);
	assert_int_equal(out.version, 3);
	cas_value_clear(&out);
	assert_true(raw_equals(&st, "i/a", "a01"));
	assert_int_equal(outcome(&st), ALL_NEW);
	store_clear(&st);
}

/* Another proposer's read of, or change to, meddle_key while the owner
 * is about to commit (its round 5). */
static struct view *meddler;
static const char *meddle_read;
static const char *meddle_key = "i/a";

static void meddle(struct view *owner)
{
	struct casfs_regs r = regs_of(meddler);
	struct part_arg x = {"x", 0, 0};
	char buf[16];

	assert_true(raw_is_intent(owner->st, meddle_key));
	if (meddle_read) {
		assert_string_equal(read_str(meddler, meddle_key, buf, sizeof(buf)), meddle_read);
		return;
	}
	assert_int_equal(casfs_txn_change(&r, meddle_key, append_fn, &x, NULL), CAS_OK);
}

/* A single-register change meets a pending intent: waits the bounded
 * number of sleeps, aborts it, and the owner starts again after it. */
static void test_change_aborts_pending(void **state)
{
	struct part_arg pa[3] = {{"1", 0, 0}, {"1", 0, 0}, {"1", 0, 0}};
	struct view owner = {.hook = meddle, .hook_at = 5}, other = {0};
	struct store st;

	(void)state;
	setup_abc(&st);
	owner.st = other.st = &st;
	meddler = &other;
	meddle_read = NULL;
	assert_int_equal(run_abc(&owner, pa, NULL), CAS_OK);
	assert_int_equal(other.sleeps, CASFS_TXN_WAIT_SLEEPS);
	assert_int_equal(records(&st, 0), 0); /* both tries' records deleted */
	assert_true(raw_equals(&st, "i/a", "a0x1"));
	assert_true(raw_equals(&st, "i/b", "b01"));
	assert_true(raw_equals(&st, "i/c", "1"));
	assert_int_equal(pa[0].runs, 2);
	store_clear(&st);
}

/* A read meets a pending intent: the old value at once, nothing written. */
static void test_read_pending_old(void **state)
{
	struct part_arg pa[3] = {{"1", 0, 0}, {"1", 0, 0}, {"1", 0, 0}};
	struct view owner = {.hook = meddle, .hook_at = 5}, other = {0};
	struct store st;

	(void)state;
	setup_abc(&st);
	owner.st = other.st = &st;
	meddler = &other;
	meddle_read = "a0";
	assert_int_equal(run_abc(&owner, pa, NULL), CAS_OK);
	assert_int_equal(other.sleeps, 0);
	assert_int_equal(other.calls, 2); /* the register, the record */
	assert_int_equal(records(&st, 0), 0);
	assert_int_equal(outcome(&st), ALL_NEW);
	store_clear(&st);
}

/* A part that changes nothing still holds an intent: what it read stays
 * true until the commit (a writer meeting it waits, then aborts it). */
static void test_unchanged_part_isolated(void **state)
{
	struct part_arg pa[3] = {{"1", 0, 0}, {"", CAS_ENOCHANGE, 0}, {"1", 0, 0}};
	struct view owner = {.hook = meddle, .hook_at = 5}, other = {0};
	struct store st;

	(void)state;
	setup_abc(&st);
	owner.st = other.st = &st;
	meddler = &other;
	meddle_read = NULL;
	meddle_key = "i/b";
	assert_int_equal(run_abc(&owner, pa, NULL), CAS_OK);
	meddle_key = "i/a";
	assert_int_equal(other.sleeps, CASFS_TXN_WAIT_SLEEPS);
	assert_int_equal(pa[1].runs, 2);
	assert_true(raw_equals(&st, "i/a", "a01"));
	assert_true(raw_equals(&st, "i/b", "b0x"));
	store_clear(&st);
}

/* A transaction meets another's intents: pending (waited for, aborted,
 * undone) or committed (rolled forward first). */
static void test_txn_meets_txn(void **state)
{
	struct part_arg pa[3] = {{"1", 0, 0}, {"1", 0, 0}, {"1", 0, 0}};
	struct part_arg pb[2] = {{"2", 0, 0}, {"2", 0, 0}};
	struct casfs_txn_part parts[2] = {{"i/b", append_fn, &pb[0]}, {"i/c", append_fn, &pb[1]}};
	struct view owner = {.crash_at = 5}, other = {0};
	struct casfs_regs r = regs_of(&other);
	struct store st;

	(void)state;
	setup_abc(&st);
	owner.st = other.st = &st;
	assert_int_equal(run_abc(&owner, pa, NULL), CAS_EUNAVAILABLE);
	assert_int_equal(casfs_txn_run(&r, parts, 2, false, NULL, NULL, NULL), CAS_OK);
	assert_int_equal(other.sleeps, CASFS_TXN_WAIT_SLEEPS);
	assert_true(raw_is_intent(&st, "i/a")); /* left to whoever meets it */
	assert_true(raw_equals(&st, "i/b", "b02"));
	assert_true(raw_equals(&st, "i/c", "2"));
	assert_int_equal(outcome(&st), MIXED); /* i/a undone, the others moved on */
	assert_true(raw_equals(&st, "i/a", "a0"));
	store_clear(&st);

	setup_abc(&st);
	owner = (struct view){.st = &st, .crash_at = 6};
	other = (struct view){.st = &st};
	assert_int_equal(run_abc(&owner, pa, NULL), CAS_OK);
	assert_int_equal(casfs_txn_run(&r, parts, 2, false, NULL, NULL, NULL), CAS_OK);
	assert_int_equal(other.sleeps, 0);
	assert_true(raw_equals(&st, "i/b", "b012"));
	assert_true(raw_equals(&st, "i/c", "12"));
	store_clear(&st);
}

/* While the owner rolls forward (its round 6, i/a), another transaction
 * has already rolled i/a forward and left its own pending intent there:
 * the owner's late roll-forward must leave that one alone. */
static void late_settle(struct view *owner)
{
	struct part_arg y = {"y", 0, 0};
	struct casfs_txn_part part = {"i/a", append_fn, &y};
	/* Its rounds: create, meet the intent, read its record, roll it
	 * forward, place its own, then die before committing. */
	struct view v2 = {.st = owner->st, .crash_at = 6};
	struct casfs_regs r = regs_of(&v2);

	assert_int_equal(casfs_txn_run(&r, &part, 1, false, NULL, NULL, NULL), CAS_EUNAVAILABLE);
	assert_true(raw_is_intent(owner->st, "i/a"));
}

static void test_late_settle(void **state)
{
	struct part_arg pa[3] = {{"1", 0, 0}, {"1", 0, 0}, {"1", 0, 0}};
	struct view owner = {.hook = late_settle, .hook_at = 6}, other = {0};
	struct store st;
	char buf[16];

	(void)state;
	setup_abc(&st);
	owner.st = other.st = &st;
	assert_int_equal(run_abc(&owner, pa, NULL), CAS_OK);
	assert_true(raw_is_intent(&st, "i/a"));
	assert_string_equal(read_str(&other, "i/a", buf, sizeof(buf)), "a01");
	assert_int_equal(outcome(&st), ALL_NEW);
	store_clear(&st);
}

/* An intent whose record is gone reads as its old value. */
static void test_absent_record(void **state)
{
	struct part_arg pa[3] = {{"1", 0, 0}, {"1", 0, 0}, {"1", 0, 0}};
	struct view owner = {.crash_at = 5}, other = {0};
	struct store st;
	char buf[16];

	(void)state;
	setup_abc(&st);
	owner.st = other.st = &st;
	assert_int_equal(run_abc(&owner, pa, NULL), CAS_EUNAVAILABLE);
	for (size_t i = 0; i < st.n; i++)
		if (strncmp(st.regs[i].key, "t/", 2) == 0)
			cas_value_clear(&st.regs[i].v);
	assert_string_equal(read_str(&other, "i/a", buf, sizeof(buf)), "a0");
	assert_int_equal(other.sleeps, 0);
	assert_true(raw_equals(&st, "i/a", "a0"));
	store_clear(&st);
}

/* Between a reader's read of i/a (T's intent, committed) and its read of
 * T's record: everything is settled, T's record deleted, and a second
 * transaction, left pending, places its intent on i/a. */
static struct store *race_st;

static void settle_drop_and_take(struct view *reader)
{
	struct view third = {.st = race_st}, owner2 = {.st = race_st, .crash_at = 3};
	struct casfs_regs r = regs_of(&third), r2 = regs_of(&owner2);
	struct part_arg x = {"x", 0, 0};
	struct casfs_txn_part part = {"i/a", append_fn, &x};
	char buf[16];

	(void)reader;
	assert_string_equal(read_str(&third, "i/a", buf, sizeof(buf)), "a01");
	assert_string_equal(read_str(&third, "i/b", buf, sizeof(buf)), "b01");
	assert_string_equal(read_str(&third, "i/c", buf, sizeof(buf)), "1");
	for (size_t i = 0; i < race_st->n; i++)
		if (strncmp(race_st->regs[i].key, "t/", 2) == 0 && race_st->regs[i].v.len)
			assert_int_equal(casfs_txn_drop_record(&r, race_st->regs[i].key), CAS_OK);
	assert_int_equal(records(race_st, 0), 0);
	assert_int_equal(casfs_txn_run(&r2, &part, 1, false, NULL, NULL, NULL), CAS_EUNAVAILABLE);
	assert_true(raw_is_intent(race_st, "i/a"));
}

/* A record deleted while a reader resolves one of its intents: the reader
 * must not take the absent record for an abort of the intent it met
 * (T committed), and answers what the register means when it looks again. */
static void read_while_deleted(char *buf, size_t size)
{
	struct part_arg pa[3] = {{"1", 0, 0}, {"1", 0, 0}, {"1", 0, 0}};
	struct view owner = {.crash_at = 6}, reader = {.hook = settle_drop_and_take, .hook_at = 2};
	struct store st;

	setup_abc(&st);
	owner.st = reader.st = &st;
	race_st = &st;
	assert_int_equal(run_abc(&owner, pa, NULL), CAS_OK);
	assert_true(raw_is_intent(&st, "i/a"));
	read_str(&reader, "i/a", buf, size);
	store_clear(&st);
}

static void test_record_deleted_while_read(void **state)
{
	char buf[16];

	(void)state;
	read_while_deleted(buf, sizeof(buf));
	assert_string_equal(buf, "a01");
}

/* The directory-move register holds our intent while check runs, and no
 * other part does yet. */
static int check_ok(void *arg)
{
	struct store *st = arg;

	assert_true(raw_is_intent(st, CASFS_TXN_DIRMOVE_KEY));
	assert_false(raw_is_intent(st, "i/a"));
	assert_false(raw_is_intent(st, "i/b"));
	return CAS_OK;
}

static int check_refuses(void *arg)
{
	assert_int_equal(check_ok(arg), CAS_OK);
	return CAS_EVERSION;
}

static void test_dirmove(void **state)
{
	struct part_arg pa[2] = {{"1", 0, 0}, {"1", 0, 0}};
	struct casfs_txn_part parts[2] = {{"i/b", append_fn, &pa[1]}, {"i/a", append_fn, &pa[0]}};
	struct view v = {0};
	struct casfs_regs r = regs_of(&v);
	struct cas_value out = {0};
	struct store st;

	(void)state;
	setup_abc(&st);
	v.st = &st;
	assert_int_equal(casfs_txn_run(&r, parts, 2, true, check_ok, &st, NULL), CAS_OK);
	assert_int_equal(casfs_txn_run(&r, parts, 2, true, check_ok, &st, NULL), CAS_OK);
	assert_int_equal(casfs_txn_read(&r, CASFS_TXN_DIRMOVE_KEY, &out), CAS_OK);
	assert_int_equal(out.len, 12);
	assert_memory_equal(out.data, "cM\1\0\2\0\0\0\0\0\0\0", 12);
	cas_value_clear(&out);
	/* A failed check changes nothing. */
	assert_int_equal(casfs_txn_run(&r, parts, 2, true, check_refuses, &st, NULL), CAS_EVERSION);
	assert_int_equal(pa[0].runs, 2);
	assert_true(raw_equals(&st, "i/a", "a011"));
	assert_int_equal(casfs_txn_read(&r, CASFS_TXN_DIRMOVE_KEY, &out), CAS_OK);
	assert_int_equal(out.data[4], 2);
	cas_value_clear(&out);
	store_clear(&st);
}

static void test_bad_parts(void **state)
{
	struct part_arg pa = {"1", 0, 0};
	struct casfs_txn_part dup[2] = {{"i/a", append_fn, &pa}, {"i/a", append_fn, &pa}};
	struct casfs_txn_part mv[1] = {{CASFS_TXN_DIRMOVE_KEY, append_fn, &pa}};
	struct view v = {0};
	struct casfs_regs r = regs_of(&v);
	struct store st;

	(void)state;
	setup_abc(&st);
	v.st = &st;
	assert_int_equal(casfs_txn_run(&r, dup, 2, false, NULL, NULL, NULL), CAS_EINVAL);
	assert_int_equal(casfs_txn_run(&r, dup, 0, false, NULL, NULL, NULL), CAS_EINVAL);
	assert_int_equal(casfs_txn_run(&r, mv, 1, true, NULL, NULL, NULL), CAS_EINVAL);
	assert_int_equal(v.calls, 0);
	store_clear(&st);
}

/* The negative controls: each broken variant makes the crash sweep find
 * runs that are not all or nothing. */
static void test_broken_variants_caught(void **state)
{
	(void)state;
	casfs_txn_fault = CASFS_TXN_FAULT_READ_PENDING_NEW;
	assert_true(crash_sweep(false) > 0);
	casfs_txn_fault = CASFS_TXN_FAULT_SKIP_COMMIT;
	assert_true(crash_sweep(false) > 0);
	/* Taking a deleted record for an abort answers a value that was
	 * no longer current. */
	casfs_txn_fault = CASFS_TXN_FAULT_TRUST_ABSENT;
	{
		char buf[16];

		read_while_deleted(buf, sizeof(buf));
		assert_string_equal(buf, "a0");
	}
	casfs_txn_fault = 0;
	assert_int_equal(crash_sweep(false), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commit),
		cmocka_unit_test(test_crash_at_every_round),
		cmocka_unit_test(test_failed_rounds_retried),
		cmocka_unit_test(test_function_fails),
		cmocka_unit_test(test_pending_create_undone),
		cmocka_unit_test(test_committed_reads_new),
		cmocka_unit_test(test_change_aborts_pending),
		cmocka_unit_test(test_read_pending_old),
		cmocka_unit_test(test_unchanged_part_isolated),
		cmocka_unit_test(test_txn_meets_txn),
		cmocka_unit_test(test_late_settle),
		cmocka_unit_test(test_absent_record),
		cmocka_unit_test(test_record_deleted_while_read),
		cmocka_unit_test(test_dirmove),
		cmocka_unit_test(test_bad_parts),
		cmocka_unit_test(test_broken_variants_caught),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

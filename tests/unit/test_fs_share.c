/* test_fs_share.c - shared reads (fs/share.c) over a register in memory:
 * reads waiting together share one round; a read that comes after a round
 * began never takes that round's value (the negative control, which lets
 * it, is caught); a member's deadline ends its wait. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "share.h"

/* One register, its turn lock, and a read that can be held at its point. */
struct reg {
	pthread_mutex_t turn;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t version;
	unsigned reads; /* rounds run */
	bool hold;	/* the next read stops after reading... */
	bool at_point;	/* ...says so here... */
	bool go;	/* ...and goes on when this is set */
	struct casfs_share share;
};

struct reader {
	struct reg *reg;
	struct timespec end;
	pthread_t thread;
	int rc;
	struct cas_value v;
};

static struct timespec in_ms(long ms)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

static int fake_turn(void *arg, const char *key)
{
	struct reader *rd = arg;

	(void)key;
	return pthread_mutex_clocklock(&rd->reg->turn, CLOCK_MONOTONIC, &rd->end) ? CAS_EUNAVAILABLE
										  : CAS_OK;
}

static int fake_read(void *arg, const char *key, struct cas_value *out)
{
	struct reader *rd = arg;
	struct reg *g = rd->reg;

	(void)key;
	pthread_mutex_lock(&g->lock);
	g->reads++;
	out->version = g->version;
	if (g->hold) {
		g->hold = false;
		g->at_point = true;
		pthread_cond_broadcast(&g->cond);
		while (!g->go)
			pthread_cond_wait(&g->cond, &g->lock);
	}
	pthread_mutex_unlock(&g->lock);
	pthread_mutex_unlock(&g->turn);
	return CAS_OK;
}

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	struct casfs_share_round r = {fake_turn, fake_read, rd};

	rd->rc = casfs_share_read(&rd->reg->share, "d/1", &rd->end, &r, &rd->v);
	return NULL;
}

static void start(struct reader *rd, struct reg *g, long deadline_ms)
{
	rd->reg = g;
	rd->end = in_ms(deadline_ms);
	assert_int_equal(pthread_create(&rd->thread, NULL, reader_main, rd), 0);
}

static void finish(struct reader *rd)
{
	assert_int_equal(pthread_join(rd->thread, NULL), 0);
	cas_value_clear(&rd->v);
}

/* Waits (at most 10 s) until the waiting group has n members. */
static void wait_members(struct reg *g, int n)
{
	struct timespec end = in_ms(10000), now;

	while (casfs_share_waiting(&g->share) != n) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		assert_true(now.tv_sec < end.tv_sec ||
			    (now.tv_sec == end.tv_sec && now.tv_nsec < end.tv_nsec));
		sched_yield();
	}
}

static void reg_init(struct reg *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->turn, NULL);
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	casfs_share_init(&g->share);
}

static void reg_destroy(struct reg *g)
{
	casfs_share_destroy(&g->share);
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
	pthread_mutex_destroy(&g->turn);
}

/* Three reads wait while another round has the turn: one round serves
 * them all, with the value it read. */
static void test_waiting_reads_share_a_round(void **state)
{
	struct reg g;
	struct reader rd[3];

	(void)state;
	reg_init(&g);
	pthread_mutex_lock(&g.turn);
	for (int i = 0; i < 3; i++) {
		start(&rd[i], &g, 10000);
		wait_members(&g, i + 1);
	}
	g.version = 5; /* written while they waited: the round reads it */
	pthread_mutex_unlock(&g.turn);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pthread_join(rd[i].thread, NULL), 0);
		assert_int_equal(rd[i].rc, CAS_OK);
		assert_int_equal(rd[i].v.version, 5);
		cas_value_clear(&rd[i].v);
	}
	assert_int_equal(g.reads, 1);
	assert_int_equal(casfs_share_waiting(&g.share), 0);
	reg_destroy(&g);
}

/* Reader A's round reads version 1 and is held there; a write of version
 * 2 completes; then reader B starts. B must return 2: it began after the
 * write ended. Returns what B got. */
static uint64_t late_reader(bool broken)
{
	struct reg g;
	struct reader a, b;
	uint64_t got;

	reg_init(&g);
	casfs_share_broken_late_join = broken;
	g.version = 1;
	g.hold = true;
	start(&a, &g, 10000);
	pthread_mutex_lock(&g.lock);
	while (!g.at_point)
		pthread_cond_wait(&g.cond, &g.lock);
	g.version = 2; /* the write, complete before B begins */
	pthread_mutex_unlock(&g.lock);
	start(&b, &g, 10000);
	/* B waits: for a round of its own behind A's (1 member), or, broken,
	 * as a second member of A's group. */
	wait_members(&g, broken ? 2 : 1);
	pthread_mutex_lock(&g.lock);
	g.go = true;
	pthread_cond_broadcast(&g.cond);
	pthread_mutex_unlock(&g.lock);
	assert_int_equal(pthread_join(a.thread, NULL), 0);
	assert_int_equal(pthread_join(b.thread, NULL), 0);
	assert_int_equal(a.rc, CAS_OK);
	assert_int_equal(a.v.version, 1);
	assert_int_equal(b.rc, CAS_OK);
	got = b.v.version;
	cas_value_clear(&a.v);
	cas_value_clear(&b.v);
	casfs_share_broken_late_join = false;
	reg_destroy(&g);
	return got;
}

static void test_late_read_takes_its_own_round(void **state)
{
	(void)state;
	assert_int_equal(late_reader(false), 2);
}

/* The negative control: joining a round that began returns the value
 * from before the write, and the check above sees it. */
static void test_broken_late_join_is_caught(void **state)
{
	(void)state;
	assert_int_equal(late_reader(true), 1);
}

/* A member whose deadline passes stops waiting; the group goes on. */
static void test_member_deadline(void **state)
{
	struct reg g;
	struct reader a, b;

	(void)state;
	reg_init(&g);
	pthread_mutex_lock(&g.turn);
	start(&a, &g, 10000);
	wait_members(&g, 1);
	start(&b, &g, 50);
	assert_int_equal(pthread_join(b.thread, NULL), 0);
	assert_int_equal(b.rc, CAS_EUNAVAILABLE);
	assert_int_equal(b.v.len, 0);
	g.version = 3;
	pthread_mutex_unlock(&g.turn);
	finish(&a);
	assert_int_equal(a.rc, CAS_OK);
	assert_int_equal(g.reads, 1);
	reg_destroy(&g);
}

/* A group whose turn does not come before its first read's deadline fails
 * that read and every member. */
static void test_group_turn_times_out(void **state)
{
	struct reg g;
	struct reader a, b;

	(void)state;
	reg_init(&g);
	pthread_mutex_lock(&g.turn);
	start(&a, &g, 1000);
	wait_members(&g, 1);
	start(&b, &g, 10000);
	wait_members(&g, 2);
	assert_int_equal(pthread_join(a.thread, NULL), 0);
	assert_int_equal(pthread_join(b.thread, NULL), 0);
	pthread_mutex_unlock(&g.turn);
	assert_int_equal(a.rc, CAS_EUNAVAILABLE);
	assert_int_equal(b.rc, CAS_EUNAVAILABLE);
	assert_int_equal(g.reads, 0);
	reg_destroy(&g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_waiting_reads_share_a_round),
		cmocka_unit_test(test_late_read_takes_its_own_round),
		cmocka_unit_test(test_broken_late_join_is_caught),
		cmocka_unit_test(test_member_deadline),
		cmocka_unit_test(test_group_turn_times_out),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

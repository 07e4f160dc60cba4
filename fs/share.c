/* share.c - shared reads (share.h).
 *
 * Concurrent requests of a mount often read one register: every LOOKUP in
 * a directory reads the directory's. Rounds on a key take turns (fs.h,
 * key_locks), so such reads queue, each waiting for a round of its own.
 * Instead, the first read of a key to wait for its turn opens a group,
 * which later reads of the same key join while it waits; when the
 * group's round is done, every member returns its value.
 *
 * Why this is linearizable: a read joins only while its group has not
 * begun its round (the group stops taking members before it reads), so
 * the round begins after every member was invoked, and it ends before any
 * member returns. The round is a linearizable read: it takes effect at
 * one point within its own span, returning the value the register held
 * there. That point lies within every member's span, so each member may
 * take effect at the same point with the same value. A member that joined
 * after the round began could have been invoked after a write that
 * followed the round's point, and would return the value before it:
 * casfs_share_broken_late_join lets members join until the round ends,
 * and test_fs_share catches exactly that stale read.
 *
 * A member whose deadline passes stops waiting (CAS_EUNAVAILABLE, as a
 * round of its own would end). A group whose turn did not come before its
 * first member's deadline fails every member: theirs were later, and an
 * unavailable answer within a deadline is within the contract. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "share.h"

bool casfs_share_broken_late_join;

struct casfs_share_group {
	char *key;
	bool done;
	int refs; /* members, the first included, yet to take the result */
	int rc;
	struct cas_value value; /* the result, when rc is CAS_OK and refs > 1 */
};

void casfs_share_init(struct casfs_share *s)
{
	pthread_condattr_t attr;

	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&s->done, &attr);
	pthread_condattr_destroy(&attr);
	s->waiting = NULL;
}

void casfs_share_destroy(struct casfs_share *s)
{
	pthread_cond_destroy(&s->done);
	pthread_mutex_destroy(&s->lock);
}

/* Called with s->lock held. */
static void group_put(struct casfs_share_group *g)
{
	if (--g->refs > 0)
		return;
	cas_value_clear(&g->value);
	free(g->key);
	free(g);
}

static int value_copy(const struct cas_value *from, struct cas_value *to)
{
	*to = *from;
	to->data = NULL;
	if (from->len == 0)
		return CAS_OK;
	to->data = malloc(from->len);
	if (to->data == NULL) {
		memset(to, 0, sizeof(*to));
		return CAS_ENOMEM;
	}
	memcpy(to->data, from->data, from->len);
	return CAS_OK;
}

/* Joins g, waiting on s (locked) until g is done or end. */
static int join(struct casfs_share *s, struct casfs_share_group *g, const struct timespec *end,
		struct cas_value *out)
{
	int rc;

	g->refs++;
	while (!g->done && pthread_cond_clockwait(&s->done, &s->lock, CLOCK_MONOTONIC, end) == 0)
		;
	if (!g->done)
		rc = CAS_EUNAVAILABLE;
	else
		rc = g->rc == CAS_OK ? value_copy(&g->value, out) : g->rc;
	group_put(g);
	return rc;
}

/* Stops g taking members. Called with s->lock held. */
static void close_group(struct casfs_share *s, struct casfs_share_group *g)
{
	if (s->waiting == g)
		s->waiting = NULL;
}

int casfs_share_read(struct casfs_share *s, const char *key, const struct timespec *end,
		     const struct casfs_share_round *r, struct cas_value *out)
{
	struct casfs_share_group *g;
	int rc;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&s->lock);
	g = s->waiting;
	if (g != NULL && strcmp(g->key, key) == 0) {
		rc = join(s, g, end, out);
		pthread_mutex_unlock(&s->lock);
		return rc;
	}
	if (g != NULL) {
		/* Another key of the stripe waits: a round of its own. */
		pthread_mutex_unlock(&s->lock);
		rc = r->turn(r->arg, key);
		return rc == CAS_OK ? r->read(r->arg, key, out) : rc;
	}
	g = calloc(1, sizeof(*g));
	if (g == NULL || (g->key = strdup(key)) == NULL) {
		pthread_mutex_unlock(&s->lock);
		free(g);
		return CAS_ENOMEM;
	}
	g->refs = 1;
	s->waiting = g;
	pthread_mutex_unlock(&s->lock);

	rc = r->turn(r->arg, key);
	if (!casfs_share_broken_late_join) {
		/* From here on no read joins: the round has not begun. */
		pthread_mutex_lock(&s->lock);
		close_group(s, g);
		pthread_mutex_unlock(&s->lock);
	}
	if (rc == CAS_OK)
		rc = r->read(r->arg, key, out);

	pthread_mutex_lock(&s->lock);
	close_group(s, g);
	g->rc = rc;
	if (rc == CAS_OK && g->refs > 1 && value_copy(out, &g->value) != CAS_OK)
		g->rc = CAS_ENOMEM;
	g->done = true;
	pthread_cond_broadcast(&s->done);
	group_put(g);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int casfs_share_waiting(struct casfs_share *s)
{
	int n;

	pthread_mutex_lock(&s->lock);
	n = s->waiting != NULL ? s->waiting->refs : 0;
	pthread_mutex_unlock(&s->lock);
	return n;
}

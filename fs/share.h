/* share.h - shared reads: reads of one register that wait for their turn
 * at the same time share one round (the argument is in share.c). A mount
 * keeps one casfs_share per stripe of its key locks (fs.h). */
#ifndef CASFS_SHARE_H
#define CASFS_SHARE_H

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include <cas/cas.h>

struct casfs_share_group;

struct casfs_share {
	pthread_mutex_t lock;		   /* guards waiting and every group */
	pthread_cond_t done;		   /* a group of the stripe is done */
	struct casfs_share_group *waiting; /* the group not yet in its round */
};

/* Makes s empty; casfs_share_destroy frees it once no read uses it. */
void casfs_share_init(struct casfs_share *s);
void casfs_share_destroy(struct casfs_share *s);

/* How a read takes its turn and reads. */
struct casfs_share_round {
	/* Waits for key's turn (the stripe's key lock) until the read's
	 * deadline: CAS_OK, or CAS_EUNAVAILABLE when it passed. */
	int (*turn)(void *arg, const char *key);
	/* Reads key linearizably in its turn (out as cas_read's), then ends
	 * the turn. */
	int (*read)(void *arg, const char *key, struct cas_value *out);
	void *arg;
};

/* Reads key into *out (zeroed first; the caller frees it): joins the
 * group of key that waits on s for its turn, or opens one and runs its
 * round with r. A member waits until end (CLOCK_MONOTONIC) at most
 * (CAS_EUNAVAILABLE); a group whose turn never came fails its members as
 * it fails. Returns cas_read's codes (CAS_ENOMEM too). */
int casfs_share_read(struct casfs_share *s, const char *key, const struct timespec *end,
		     const struct casfs_share_round *r, struct cas_value *out);

/* The members of the group waiting on s (0: none): for tests. */
int casfs_share_waiting(struct casfs_share *s);

/* A negative control for test_fs_share: groups take members until their
 * round is over, not only until it begins (not linearizable). */
extern bool casfs_share_broken_late_join;

#endif

/* lock_impl.h - what lock.c and lock_ops.c share: a mount's lock state,
 * what it holds, its waiters. Private to them. */
#ifndef CASFS_LOCK_IMPL_H
#define CASFS_LOCK_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "fs.h"
#include "lock.h"
#include "session.h"

#define CASFS_LK_TURNS 64

/* What this mount holds, or may hold (a round that timed out), for one
 * lock owner and kind on one inode. */
struct held {
	struct held *next;
	unsigned char id[CASFS_ID_LEN];
	uint64_t owner;
	uint8_t kind;
	uint64_t gen; /* the session it was taken under */
	unsigned char sid[CASFS_SID_LEN];
	const struct handle *h; /* flock: the open file; NULL once released */
	bool orphan;		/* its unlock at close failed: the thread retries */
};

/* A blocking request that waits for its lock. */
struct waiter {
	struct waiter *next;
	struct casfs_locks *L;
	fuse_req_t req;
	unsigned char id[CASFS_ID_LEN];
	struct casfs_lock_req rq;
	const struct handle *h;
	bool interrupted; /* under L->mu */
};

struct casfs_locks {
	struct casfs_fs *fs;
	struct casfs_msession ms;
	pthread_mutex_t mu; /* guards held, waiters and the flags; taken before ms.mu */
	pthread_cond_t cv;
	pthread_mutex_t watch_mu;
	struct casfs_watch watch;
	struct held *held;
	struct waiter *waiters;
	bool kick, stop, thread_started;
	pthread_t thread;
	/* Turns of the lock operations of one owner on one inode (lock.c,
	 * "Turns"), by a hash of the two. Taken before mu. */
	pthread_mutex_t turns[CASFS_LK_TURNS];
};

static inline struct casfs_locks *casfs_lk_of(fuse_req_t req)
{
	return ((struct casfs_fs *)fuse_req_userdata(req))->locks;
}

/* Copies the entry of (id, owner, kind) into *copy; false when none. */
bool casfs_lk_find(struct casfs_locks *L, const unsigned char *id, uint64_t owner, uint8_t kind,
		   struct held *copy);

/* Gives back [start, end] of owner's locks of kind on id. 0 or -errno;
 * a lock whose session was lost is given back quietly (0). */
int casfs_lk_unlock(struct casfs_locks *L, struct op *op, const unsigned char *id, uint64_t owner,
		    uint8_t kind, uint64_t start, uint64_t end);

/* Gives back all of owner's locks of kind on id, as a close does; when
 * that fails, the entry is left for the waiter thread to give back (an
 * orphan), before any new lock of the owner on id. */
void casfs_lk_give_back(struct casfs_locks *L, struct op *op, const unsigned char *id,
			uint64_t owner, uint8_t kind);

/* Tries rq (a lock) on id for handle h once and answers req; a blocking
 * request that cannot have it yet waits, answered by the waiter thread
 * (EINTR when interrupted). */
void casfs_lk_request(fuse_req_t req, struct casfs_locks *L, struct op *op, const unsigned char *id,
		      struct casfs_lock_req *rq, const struct handle *h, bool block);

#endif

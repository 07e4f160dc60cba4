/* session.h - a mount's lock session: created at its first lock, renewed
 * every lease/3 by a thread of its own, given up (marked expired) at
 * unmount. Its locks stand only while it is valid (lease.h). */
#ifndef CASFS_SESSION_H
#define CASFS_SESSION_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "lease.h"

struct casfs_fs;
struct op;

struct casfs_msession {
	struct casfs_fs *fs;
	unsigned lease_ms;
	pthread_mutex_t mu; /* guards all below; never held across a round */
	pthread_cond_t cv;
	pthread_mutex_t create_mu; /* one creation at a time */
	struct casfs_session s;
	bool have;    /* s is a session, not lost yet */
	uint64_t gen; /* numbers the sessions of this mount, from 1 */
	uint64_t last_start;
	bool retry_soon; /* the last renewal failed */
	bool thread_started, stop;
	pthread_t thread;
	/* A lost session to mark expired in the cluster, when it answers. */
	unsigned char to_end[CASFS_SID_LEN];
	bool have_to_end;
	/* The inodes this mount keeps open after their last name went, as
	 * listed in its held register (fs/gc.h): held_mu is held across the
	 * round that writes the list, so that lists are written in order. */
	pthread_mutex_t held_mu;
	unsigned char *held; /* nheld ids of CASFS_ID_LEN bytes */
	size_t nheld, held_cap;
	unsigned char held_sid[CASFS_SID_LEN]; /* the session it was last written under */
	bool held_written;
	size_t held_pub; /* nheld, under mu: the renewal thread lists them again
			    under a new session when the old one was lost */
};

/* Prepares m for fs (no thread, no session yet). 0 or -ENOMEM. */
int casfs_msession_init(struct casfs_msession *m, struct casfs_fs *fs, unsigned lease_ms);

/* The session to take a lock under: sid and its gen; creates one (a
 * round within op's deadline) and starts the renewal thread when there is
 * none valid. 0 or -errno (ETIMEDOUT without a majority). */
int casfs_msession_get(struct casfs_msession *m, struct op *op, unsigned char *sid, uint64_t *gen);

/* True while session gen is valid on this mount's clock. The first call
 * that finds it run out logs the loss. */
bool casfs_msession_valid(struct casfs_msession *m, uint64_t gen);

/* The clock of lease.h for this mount: CLOCK_MONOTONIC. */
extern const struct casfs_clock casfs_mono_clock;

/* Stops the renewal thread and marks the session expired in the cluster
 * (one round, within the mount's timeout), so that other mounts take its
 * locks at once. Idempotent. */
void casfs_msession_stop(struct casfs_msession *m);

/* ns->held for the request op (a struct op *): when the inode id is open
 * on this mount, marks it to be deleted at its last close, lists it in
 * the mount's held register (under its session, created if there is
 * none), so that casctl gc spares it while the session lives, and
 * returns true. A failure to list it is logged: the file then stays
 * readable here unless casctl gc collects it meanwhile. */
bool casfs_msession_keep(void *op, const unsigned char *id);

/* The last close of id, kept by casfs_msession_keep: deletes its
 * register (nlink 0, ns.h casfs_ns_delete) and drops it from the held
 * register. 0 or -errno (the register is garbage then, for casctl gc). */
int casfs_msession_release(struct op *op, const unsigned char *id);

/* Stops m and frees what it holds (not m itself). */
void casfs_msession_destroy(struct casfs_msession *m);

#endif

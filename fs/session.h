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

/* Stops m and frees what it holds (not m itself). */
void casfs_msession_destroy(struct casfs_msession *m);

#endif

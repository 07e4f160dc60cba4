/* workload.h - client threads on the library and on two mounts, recording register histories. */
#ifndef NEM_WORKLOAD_H
#define NEM_WORKLOAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cas/client.h>

#include "linearize.h"

#define NEM_MAX_KEYS 8
#define NEM_MOUNTS   2
/* Stale-configuration clients, and the operations each makes when woken. */
#define NEM_STALE     2
#define NEM_STALE_OPS 4

/* Who ran an operation. */
enum nem_group { NEM_LIB, NEM_MOUNT0, NEM_MOUNT1, NEM_GROUPS };

/* What the harness keeps of each operation besides the history: enough
 * for the checks the history cannot express (deadlines, the window
 * without a majority). Times in ns since nem_work_init. */
struct nem_rec {
	uint64_t invoke;
	uint64_t complete;
	uint64_t longest; /* the longest single call (syscall or library call) */
	uint8_t group;	  /* enum nem_group */
	uint8_t status;	  /* enum cas_hist_status */
};

struct nem_counts {
	uint64_t ops;
	uint64_t ok;
	uint64_t mismatch;
	uint64_t unknown;
	uint64_t failed;
	uint64_t eio; /* of the unknown and failed: EIO rather than ETIMEDOUT */
};

/*
 * The workload. The caller fills the first block, then calls
 * nem_work_init, nem_work_setup, nem_work_start, nem_work_stop,
 * nem_work_final and nem_work_free, in that order, from one thread.
 *
 * Library keys ("nemesis/kN") and files ("fN" in the mounts' root) are
 * separate registers with separate histories: lib and files. A file's
 * register holds its metadata too, so its version moves with any change
 * of the inode; the workload makes no change but its own writes and
 * conditional writes (nem_work_setup checks that a create and a write move
 * the version by exactly one each, and a read not at all), so a file's
 * version is the number of writes in its history, and a conditional
 * write's expected version means what the checker's model says.
 */
struct nem_work {
	struct cas_client *client;	/* the library's client, kept by the caller */
	unsigned lib_timeout_ms;	/* deadline of one library call */
	const char *mounts[NEM_MOUNTS]; /* mount points, kept by the caller */
	unsigned nkeys;			/* library keys, 1..NEM_MAX_KEYS */
	/* Cool keys: ncool more library keys (nkeys + ncool <= NEM_MAX_KEYS)
	 * that one more library thread alone uses, one operation every 0.7 s
	 * on average, many of them deletes: keys that stay absent for
	 * seconds, which a collector (casctl gc) can purge. */
	unsigned ncool;
	unsigned nfiles; /* files, 1..NEM_MAX_KEYS */
	unsigned lib_threads;
	unsigned mount_threads; /* per mount */
	uint64_t seed;
	bool deletes; /* library threads also delete (cas_delete, cas_delete_version) */
	/* Stale-configuration clients (kept by the caller; nstale of them,
	 * at most NEM_STALE): each makes NEM_STALE_OPS library operations at
	 * the start and then only when woken (nem_work_stale_wake), with the
	 * view of the cluster it kept from its last ones. */
	struct cas_client *stale[NEM_STALE];
	unsigned nstale;

	/* Filled by the calls below; read them after nem_work_stop. */
	struct cas_history *lib;
	struct cas_history *files;
	struct nem_rec *recs;
	size_t nrecs;
	struct nem_counts counts[NEM_GROUPS];
	uint64_t stale_ops;		   /* library operations of the stale clients */
	uint64_t cool_ops;		   /* library operations on the cool keys */
	uint64_t deletes_ok;		   /* deletes the library saw succeed */
	uint64_t slowest[NEM_GROUPS];	   /* ns of the longest call of each group */
	char slowest_what[NEM_GROUPS][96]; /* which operation and call that was */
	unsigned unexpected;		   /* results no correct system gives */
	char first_unexpected[256];

	/* Private. */
	pthread_mutex_t lock;
	pthread_cond_t stale_cond;
	uint64_t stale_wakes[NEM_STALE];
	size_t cap;
	uint64_t t0;
	volatile bool stop;
	pthread_t *threads;
	void *workers;
	size_t nthreads;
	bool oom;
};

/* Nanoseconds since nem_work_init: the history's clock. */
uint64_t nem_work_now(const struct nem_work *w);

/* Makes the histories and starts the clock. 0, or -1 when out of memory. */
int nem_work_init(struct nem_work *w);

/* Creates the files through mount 0 and checks, through both mounts, that
 * versions move as the model needs. These operations go into the history.
 * 0, or -1 with a reason in errmsg. */
int nem_work_setup(struct nem_work *w, char *errmsg, size_t errmsg_len);

/* Starts the client threads. 0, or -1 with a reason in errmsg (the
 * threads that started are stopped again). */
int nem_work_start(struct nem_work *w, char *errmsg, size_t errmsg_len);

/* Asks every thread to stop and joins them; each finishes its operation,
 * which ends within its deadline. */
void nem_work_stop(struct nem_work *w);

/* Wakes stale client s (below nstale) for NEM_STALE_OPS operations, made
 * by its own thread; safe from any thread between nem_work_start and
 * nem_work_stop. */
void nem_work_stale_wake(struct nem_work *w, unsigned s);

/* Reads every key with the library and every file through each mount,
 * into the histories. 0 when every read succeeded; -1 with a reason. */
int nem_work_final(struct nem_work *w, char *errmsg, size_t errmsg_len);

/* Frees the histories and records. */
void nem_work_free(struct nem_work *w);

#endif

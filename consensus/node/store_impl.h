/* store_impl.h - what the store's files share (store.c: the API and the
 * group commit writer; commit.c: a batch applied and made durable, and
 * the LMDB checkpoint; node.c: what a record means). Private to the
 * store. */
#ifndef CAS_STORE_IMPL_H
#define CAS_STORE_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <lmdb.h>

#include "memtable.h"
#include "store.h"
#include "wal.h"

struct cas_store {
	MDB_env *env;
	MDB_dbi dbi;
	pthread_t writer;
	pthread_mutex_t lock;	   /* guards the fields below, to stats */
	pthread_cond_t work;	   /* the writer has something to do */
	struct cas_store_op *head; /* requests waiting for the next batch */
	struct cas_store_op **tail;
	size_t waiting;
	bool busy;     /* a batch is being written, by the writer or inline */
	bool held;     /* cas_store_hold */
	bool stopping; /* cas_store_close: write what is queued, then end */
	struct cas_store_stats stats;
	/* Why the store takes no changes now (cas_store_writable), set by
	 * the batch writer: log_failed, for good; full, until a checkpoint
	 * succeeds (store.h). */
	bool log_failed;
	char unwritable[256];
	bool full;
	char full_reason[256];
	int (*fault)(void *arg, const struct cas_msg *req);
	void *fault_arg;

	/* The memtable: changed only by whoever writes a batch (one at a
	 * time: busy), under mem_lock; readers take mem_lock. */
	pthread_mutex_t mem_lock;
	struct memtable mem;

	/* The batch writer's own. */
	struct cas_wal wal;
	MDB_txn *rtxn; /* read transaction, reset between batches */
};

/* The LMDB key holding the log's epoch: a register key never has a NUL. */
#define CAS_STORE_EPOCH_KEY	"\0wal-epoch"
#define CAS_STORE_EPOCH_KEY_LEN (sizeof(CAS_STORE_EPOCH_KEY) - 1)

/* The LMDB key holding the floor (store.h, "A drop"); absent: 0. */
#define CAS_STORE_FLOOR_KEY	"\0floor"
#define CAS_STORE_FLOOR_KEY_LEN (sizeof(CAS_STORE_FLOOR_KEY) - 1)

/* Calls fn(arg, rec, rec_len) with key's committed (so durable) record,
 * valid during the call, and returns what fn returns; returns CAS_OK
 * without calling fn when s has no record of key. Errors: CAS_EKEY (bad
 * key), CAS_EIO (LMDB's reason), CAS_ENOMEM, with errmsg. Any thread. */
int cas_store_read(struct cas_store *s, const char *key,
		   int (*fn)(void *arg, const unsigned char *rec, size_t rec_len), void *arg,
		   char *errmsg, size_t errmsg_len);

/* Maps an LMDB failure rc of call to a code (CAS_ENOMEM or CAS_EIO), its
 * reason into errmsg. */
int cas_store_lmdb_err(int rc, const char *call, char *errmsg, size_t errmsg_len);

/* Applies batch (linked by next) in order and makes its changes durable
 * at once: every op ends with its reply, or failed. An op whose own step
 * fails (a corrupt record, no memory, an LMDB error) fails alone; a
 * failed write fails them all. Returns how many changes were made
 * durable. The caller is the only one writing a batch (busy). */
size_t cas_store_write_batch(struct cas_store *s, struct cas_store_op *batch);

/* Writes every durable memtable record into LMDB (deleting the dropped
 * keys' rows) and the floor, in one synchronous transaction that also
 * moves the log to the next epoch, then starts the log over. With
 * nothing to write it does nothing, unless new_epoch: then it moves the
 * log to the next epoch all the same (what every open does, store.h). On
 * failure (CAS_EIO or CAS_ENOMEM, with errmsg) nothing
 * changed: the log still holds the records. Only the batch writer, or
 * open and close. */
int cas_store_checkpoint(struct cas_store *s, bool new_epoch, char *errmsg, size_t errmsg_len);

#endif

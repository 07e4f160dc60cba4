/* store.h - the acceptor's durable state: a write-ahead log in front of
 * LMDB, one record per key; concurrent changes share one fdatasync of the
 * log before any reply leaves. */
#ifndef CAS_STORE_H
#define CAS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acceptor.h"
#include "msg.h"

/*
 * Record layout (value of the LMDB entry whose key is the register key;
 * all integers little-endian):
 *
 *   offset  size       field
 *   0       1          format, 1
 *   1       1          n_recent, 0..CAS_RECENT_MAX
 *   2       6          reserved, zero
 *   8       8          promise.counter
 *   16      8          promise.id
 *   24      8          accepted.counter
 *   32      8          accepted.id
 *   40      8          version
 *   48      24*n_recent recent changes, newest first, each
 *                      proposer (8), op (8), version (8)
 *   48+24n  8          len, the number of data bytes
 *   56+24n  len        data
 *
 * A record whose size or fields do not match this is reported as corrupt
 * (CAS_EIO) and never rewritten. A later format gets a new format byte.
 */
#define CAS_STORE_FORMAT 2

/*
 * A drop (a purge, PROTOCOL.md "Deletion"): the key's row goes and the
 * node's floor rises, in one atomic write. In the write-ahead log it is an
 * entry whose record part is
 *
 *   offset  size  field
 *   0       1     format, CAS_STORE_DROP_FORMAT
 *   1       7     reserved, zero
 *   8       8     floor: the node's floor after the drop
 *
 * and a replay applies both halves of it or, torn, neither. In LMDB the
 * key's row is deleted, and the floor (8 bytes, little-endian) stored
 * under CAS_STORE_FLOOR_KEY (store_impl.h), in the one transaction of a
 * checkpoint (or of a batch written straight into LMDB). The floor is
 * only ever raised: a drop's floor is the highest of the floor before it
 * and what the acceptor rules raised it to, and a replay or checkpoint
 * keeps the highest it has seen. A store without one has floor 0.
 */
#define CAS_STORE_DROP_FORMAT 0x80
#define CAS_STORE_DROP_LEN    16

/*
 * The write-ahead log (file "wal" beside LMDB's files): a batch of changes
 * is appended to it and made durable with one fdatasync, then answered.
 * The changed records also stay in memory (the memtable) until a
 * checkpoint writes them into LMDB in one synchronous transaction and
 * starts the log over. LMDB is written at checkpoints only, so its own two
 * syncs are paid once per checkpoint instead of once per batch.
 *
 * The log file has a fixed size, written in full once (zeroes) so that
 * appending to it overwrites allocated blocks and fdatasync has no file
 * size to record. Entries, all integers little-endian:
 *
 *   offset  size  field
 *   0       4     magic, "CASW"
 *   4       4     len, bytes after the header (2 + key length + record)
 *   8       8     epoch, the log's generation
 *   16      8     seq, strictly increasing within an epoch
 *   24      4     CRC-32C of bytes 0..23 and the len bytes that follow
 *   28      2     key length
 *   30      ...   key, then the record (the layout above), or a drop
 *                 (above)
 *
 * A checkpoint stores the next epoch in LMDB (under a key no register can
 * have: it starts with a NUL byte) in the same transaction as the records,
 * which makes every entry of the log before it stale at once. On open, the
 * entries of the current epoch are replayed from the start of the file
 * while each is whole, checks and has a higher seq than the one before;
 * the first that does not ends the log (a write torn by a crash, or what
 * an earlier epoch left). The replayed records then go into LMDB by a
 * checkpoint, which every open runs, replayed or not: every open starts
 * a new epoch. The magic names this layout: a later one gets another.
 *
 * Invariant: accepted and promised ballots never go backwards, across
 * crashes, torn writes and restarts that replay nothing. The argument:
 *
 * 1. A key's records are written in the order the acceptor rules made
 *    them, so within one epoch a later seq never holds a lower ballot.
 * 2. Seqs are never reused within an epoch: one process writes an epoch
 *    (the one whose open moved LMDB to it), handing out seqs in order;
 *    a failed batch's seqs are skipped, not handed out again. The one
 *    exception, an open that cannot move the epoch (LMDB full, below),
 *    first zeroes the file past the entries it replayed, durably, then
 *    hands out seqs above theirs: no entry of the epoch is left that
 *    could follow the new ones.
 * 3. So a replay, which takes entries of the current epoch only and in
 *    strictly increasing seq, applies each key's records in the order
 *    they were made: whatever stale entry follows the chain, if its seq
 *    is higher it is newer than all the chain before it.
 * 4. An acknowledged entry was durable before its answer, and nothing
 *    before it in the chain is overwritten afterwards within its epoch
 *    (only a failed, unanswered batch is written over); a checkpoint
 *    puts it into LMDB before the epoch moves on.
 *
 * A failed sync: when the log's write or fdatasync fails (an I/O error,
 * not a lack of memory before any write), the store takes no more
 * changes until it is closed and opened again. Every request of the
 * batch fails, every later PREPARE and ACCEPT fails at once with the
 * reason (CAS_EIO), cas_store_writable says why, and reads go on from
 * what was acknowledged (memory, then LMDB). Why not retry: after a
 * failed fdatasync the kernel may have dropped the dirty pages, or marked
 * them clean, so the page cache no longer says what the disk holds; the
 * next batch would rewrite the block the failed one began in, which also
 * holds acknowledged entries, and sync only what the cache believes
 * (PostgreSQL's "fsyncgate" made the same choice: stop, and recover from
 * the disk). Right after the failure the store checkpoints: the
 * acknowledged records, which memory still holds, go into LMDB, and the
 * failed batch's entries become stale, whatever reached the disk. If that
 * fails too, the next open replays the log as the disk has it: the
 * acknowledged entries, which were synced, and maybe some of the failed
 * batch, whose requests got errors (as if their answers had been lost).
 *
 * A full map: when a checkpoint fails with MDB_MAP_FULL (LMDB's map,
 * cas_store_config.map_size, is too small for the records), nothing is
 * lost: the log still holds them, and the memtable serves them. The
 * batch that needed the checkpoint fails (its reason names the map's
 * size, the use and casd's --map-size), cas_store_writable says why, and
 * every later batch that needs a checkpoint (the log is full) tries it
 * again: one that succeeds makes the store writable again. Batches that
 * fit in what is left of the log are still made durable there. An open
 * whose checkpoint fails so does not fail: it keeps the log as it is
 * (its size too), goes on in the current epoch after the replayed
 * entries (point 2 below), and serves them from the memtable. Restarted
 * with a larger map, the store checkpoints them.
 *
 * Point 2 is why an open moves the epoch even when it replayed nothing:
 * a torn first entry (power lost during the first batch after a
 * checkpoint, later blocks of that batch on disk) makes the replay find
 * nothing, and a process that kept the epoch would hand out seqs from 1
 * again; once its entries ended where a stale one of the torn batch
 * begins, the next replay would take that stale entry (its seq is higher)
 * over newer, acknowledged records.
 */

/* Default LMDB map size (the largest the store may grow), in MiB. */
#define CAS_STORE_DEFAULT_MAP_MIB 1024

/* Default size of the write-ahead log, in bytes. */
#define CAS_STORE_DEFAULT_WAL_SIZE ((size_t)8 << 20)

/* The smallest log allowed: room for a few records of any key. */
#define CAS_STORE_MIN_WAL_SIZE ((size_t)64 << 10)

/* How a store is opened. Zeroes give the defaults. */
struct cas_store_config {
	size_t map_size; /* LMDB map size in bytes (0: CAS_STORE_DEFAULT_MAP_MIB) */
	/* Bytes of the write-ahead log (0: CAS_STORE_DEFAULT_WAL_SIZE; at
	 * least CAS_STORE_MIN_WAL_SIZE). A checkpoint runs when a batch
	 * does not fit in what is left of it; a batch larger than a quarter
	 * of it is written straight into LMDB instead (after a checkpoint). */
	size_t wal_size;
	/* Write the log through the page cache and fdatasync it, instead of
	 * with O_DIRECT | O_DSYNC (which is what happens anyway where the
	 * file system refuses O_DIRECT). */
	bool buffered_log;
};

/* An open store, with its writer thread. Opaque. Every function below but
 * cas_store_open, cas_store_close and cas_store_set_fault is safe to call
 * from many threads at once. */
struct cas_store;

/* What the store did since it was opened. */
struct cas_store_stats {
	uint64_t commits;	/* batches made durable (one fdatasync each) */
	uint64_t changes;	/* requests whose change they made durable */
	uint64_t largest_batch; /* most requests in one committed batch */
	uint64_t checkpoints;	/* log contents written into LMDB */
	uint64_t replayed;	/* log entries replayed when opening */
	bool direct_log;	/* the log is written with O_DIRECT | O_DSYNC */
	uint64_t log_used;	/* bytes of the log written since its last checkpoint */
};

/* Opens (creating when missing) the LMDB environment and the write-ahead
 * log in the existing folder dir, replaying what the log holds (cfg may be
 * NULL: the defaults). On success *out is the caller's to close with
 * cas_store_close. On error (CAS_EIO with LMDB's or the system's reason in
 * errmsg, CAS_EINVAL for a bad cfg, or CAS_ENOMEM) *out is NULL. */
int cas_store_open(const char *dir, const struct cas_store_config *cfg, struct cas_store **out,
		   char *errmsg, size_t errmsg_len);

/* Writes what is queued, checkpoints, closes s and frees it. No call on s
 * may be running. s may be NULL. */
void cas_store_close(struct cas_store *s);

/* A request handed to the store with cas_store_submit. The caller sets
 * req, done and arg; the store fills the rest. The struct and *req must
 * stay alive and unchanged until done runs. */
struct cas_store_op {
	const struct cas_msg *req; /* PREPARE, ACCEPT or PURGE */
	/* Called once, on the store's writer thread, when req's outcome is
	 * final (committed, or failed); op is the caller's again from then
	 * on and may be freed inside done. Must not block: the next batch
	 * waits for it. */
	void (*done)(struct cas_store_op *op);
	void *arg;
	/* The outcome, to read in or after done. err as for
	 * cas_store_handle; on CAS_OK reply owns its value bytes (the
	 * caller clears it with cas_msg_clear), otherwise reply is zeroed
	 * and errmsg says why. */
	int err;
	struct cas_msg reply;
	char errmsg[256];
	/* The store's own. */
	struct cas_store_op *next;
	bool changed;
	bool failed;
};

/* Queues op->req for the acceptor rules (cas_acceptor_step, with the
 * store's floor, which the writer runs through node.h's cas_node_step)
 * against its key's record and returns at once; op->done runs once the
 * outcome is durable. When the state changed, the new record is appended
 * to the log and the log fdatasynced before done runs; a REJECT, or a
 * PURGE that drops nothing, changes nothing. A PURGE that drops the key
 * deletes its row and raises the floor in one log entry (a drop, above).
 *
 * Group commit: requests queue up while a batch is being written; the
 * store's writer thread then takes all of them as the next batch, applies
 * them in arrival order (each sees the changes of those before it, as if
 * they ran one by one) and makes them durable at once. done runs for each
 * only after that. A failed write fails every request of its batch; a
 * request failing on its own (a corrupt record, no memory) fails alone.
 * On a failure the caller must not answer as if promised or accepted (the
 * change may still reach the disk, as if its answer had been lost). A
 * failed sync of the log fails every later request too, until a reopen
 * (see "A failed sync" above).
 *
 * Returns CAS_OK when queued (done will run), or at once, without
 * calling done: CAS_EINVAL (not a request) or CAS_EKEY (bad key), also
 * in op->err with op->errmsg. */
int cas_store_submit(struct cas_store *s, struct cas_store_op *op);

/* Runs op->req at once on the calling thread, as a batch of its own, when
 * no batch is being written and none waits (and the store is not held);
 * returns true then, with the outcome in op (done is not called). Returns
 * false, having done nothing, when the store is busy: the caller submits
 * it instead. Saves two thread switches when requests come one by one. */
bool cas_store_run_if_idle(struct cas_store *s, struct cas_store_op *op);

/* cas_store_submit, waiting for the outcome: on CAS_OK *reply owns its
 * value bytes (cas_msg_clear). On error (CAS_EINVAL: not a PREPARE,
 * ACCEPT or PURGE; CAS_EKEY: bad key; CAS_EIO: LMDB failed, its reason in
 * errmsg, or the record is corrupt; CAS_ENOMEM) nothing of req was
 * written and *reply is zeroed. req is not changed. */
int cas_store_handle(struct cas_store *s, const struct cas_msg *req, struct cas_msg *reply,
		     char *errmsg, size_t errmsg_len);

/* Reads the state of key (all zeroes for a key never seen, or dropped)
 * into *out, whose value bytes are a malloc'd copy the caller frees
 * (free(out->value.data)). Errors as for cas_store_handle; *out is zeroed
 * on error. (Defined in node.c, which decodes what the store holds.) */
int cas_store_get(struct cas_store *s, const char *key, struct cas_acceptor_state *out,
		  char *errmsg, size_t errmsg_len);

/* Stores in *out how many keys s holds (a dropped key is not held).
 * Errors: CAS_EIO with errmsg. */
int cas_store_count(struct cas_store *s, uint64_t *out, char *errmsg, size_t errmsg_len);

/* s's durable floor (0: none; PROTOCOL.md, "Deletion"). Any thread. */
uint64_t cas_store_floor(struct cas_store *s);

/* Lists the keys s holds, in byte order (memcmp; a key that is a prefix
 * of another comes first), those after `after` (NULL: from the first), at
 * most limit (at least 1) of them. A key is held once a change of it is
 * durable (a promise alone is one), until a purge drops it. Every key held
 * from before the call to its end and after `after` is listed, in order,
 * up to limit, and no key dropped before the call; a key made durable or
 * dropped during the call may be or not. (Defined in store_keys.c.)
 *
 * On CAS_OK *keys is a malloc'd array of *n malloc'd keys
 * (cas_store_keys_free), and *more says whether s holds keys after the
 * last one listed. Errors: CAS_EKEY (after is not a key), CAS_EINVAL
 * (limit 0), CAS_EIO (LMDB's reason), CAS_ENOMEM, with errmsg; *keys is
 * NULL and *n 0 then. Any thread; reads memory and a read transaction,
 * never the writer. */
int cas_store_keys(struct cas_store *s, const char *after, size_t limit, char ***keys, size_t *n,
		   bool *more, char *errmsg, size_t errmsg_len);

/* Frees what cas_store_keys listed. keys may be NULL. */
void cas_store_keys_free(char **keys, size_t n);

/* Whether s takes changes now. When it does not, reason (reason_len
 * bytes, may be NULL) says why, in one line. Any thread. */
bool cas_store_writable(struct cas_store *s, char *reason, size_t reason_len);

/* Copies what s did so far into *out. */
void cas_store_get_stats(struct cas_store *s, struct cas_store_stats *out);

/* How much room s takes and has, for GET /v1/health (PROTOCOL.md). */
struct cas_store_usage {
	uint64_t bytes;	    /* LMDB's map in use: its pages up to the last one used */
	uint64_t map_size;  /* the map's size, the most it may grow to (--map-size) */
	uint64_t disk_free; /* free bytes of the data folder's filesystem for casd
			     * (statvfs f_bavail); UINT64_MAX when unknown */
	uint64_t log_used;  /* bytes of the log written since its last checkpoint */
	uint64_t log_size;  /* the log's size (--wal-size) */
};

/* Fills *out. Errors: CAS_EIO with LMDB's reason in errmsg (*out zeroed).
 * Any thread; never waits for the writer. */
int cas_store_usage(struct cas_store *s, struct cas_store_usage *out, char *errmsg,
		    size_t errmsg_len);

/* Test seam: when fn is not NULL, the writer of a batch calls fn(arg, req)
 * for each request of the batch that changes the state, in order, just
 * before the batch is written; a non-zero return makes the write fail
 * (nothing is written, every request of the batch gets CAS_EIO). Not
 * for production. Not thread-safe against running cas_store_handle
 * calls. */
void cas_store_set_fault(struct cas_store *s, int (*fn)(void *arg, const struct cas_msg *req),
			 void *arg);

/* Test seam: the next n syncs of the log fail with EIO after their write
 * (an fdatasync, or an O_DSYNC write, that reports an error): the batch's
 * entries may be in the file, or in the page cache only. Not for
 * production; any thread. */
void cas_store_fail_log_syncs(struct cas_store *s, unsigned n);

/* Test seam: while held, submitted requests queue up and wait; once
 * released, the queue is written as one batch. Not for production. */
void cas_store_hold(struct cas_store *s, bool hold);

/* Test seam: how many submitted requests wait for a batch to take them
 * (those in a batch being written are not counted). */
size_t cas_store_waiting(struct cas_store *s);

#endif

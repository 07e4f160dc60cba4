/* wal.h - the store's write-ahead log: its entries (layout in store.h),
 * appending a batch of them durably, and replaying them on open. Private
 * to the store: one batch writer at a time (the store's busy flag) uses
 * it, but for cas_wal_direct, which any thread may call. */
#ifndef CAS_WAL_H
#define CAS_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memtable.h"

#define CAS_WAL_BLOCK 4096 /* unit of the log's direct writes */

/* The log of one store, embedded in it. */
struct cas_wal {
	int fd;
	int dfd;	    /* the log opened O_DIRECT | O_DSYNC, or -1: fd and fdatasync */
	bool buffered;	    /* cas_store_config.buffered_log */
	size_t size;	    /* a multiple of CAS_WAL_BLOCK */
	size_t file_size;   /* the file's size when opened */
	uint64_t epoch;	    /* the log's generation, as LMDB has it */
	uint64_t seq;	    /* the last seq handed out in this epoch */
	size_t off;	    /* where the next batch goes */
	unsigned char *buf; /* the batch's log entries */
	size_t buf_len, buf_cap;
	unsigned char *dbuf; /* CAS_WAL_BLOCK-aligned, for direct writes */
	size_t dbuf_cap;
	unsigned char tail[CAS_WAL_BLOCK]; /* the log's last partial block */
	unsigned fail_syncs;		   /* test seam: cas_store_fail_log_syncs */
	const char *failed_call;	   /* what the last failed commit failed in */
};

/* Readies w, closed, for a log of size bytes (rounded down to a multiple
 * of CAS_WAL_BLOCK); buffered as cas_store_config.buffered_log. */
void cas_wal_init(struct cas_wal *w, size_t size, bool buffered);

/* Opens the log in dir (creating it when missing) and takes its entries of
 * w->epoch into mem, in order (store.h says which count); *replayed is how
 * many. A drop becomes the key's drop record (memtable.h) and raises
 * mem->floor to its floor when that is higher. An entry that checks but does not decode is
 * corruption, not a torn write: CAS_EIO. Errors (CAS_EINVAL: dir too long; CAS_EIO; CAS_ENOMEM)
 * come with errmsg, w closed, and mem holding what was replayed so far.
 * The caller then checkpoints the replayed records, and moves the log to
 * a new epoch even when there are none (store.h says why), before
 * cas_wal_ready. */
int cas_wal_open(struct cas_wal *w, const char *dir, struct memtable *mem, uint64_t *replayed,
		 char *errmsg, size_t errmsg_len);

/* The caller could not checkpoint what was replayed (LMDB is full): the
 * log keeps the replayed entries, and goes on in their epoch after them.
 * Zeroes the rest of the file, durably, so that no entry of the epoch is
 * left past them (store.h says why), and keeps the file's size as the
 * log's. CAS_EIO with errmsg when it cannot. Before cas_wal_ready. */
int cas_wal_keep(struct cas_wal *w, const char *dir, char *errmsg, size_t errmsg_len);

/* Sizes the opened log to w->size (zeroes, written in full; what it held
 * is gone then), and opens it for direct writes unless w->buffered. CAS_EIO
 * with errmsg when it cannot write it. */
int cas_wal_ready(struct cas_wal *w, const char *dir, char *errmsg, size_t errmsg_len);

/* Closes the log's files and frees its buffers. w may be closed. */
void cas_wal_close(struct cas_wal *w);

/* Appends to the batch a log entry for key's new record rec; its epoch,
 * seq and checksum are filled in by cas_wal_commit. CAS_ETOOBIG or
 * CAS_ENOMEM leave the batch as it was. */
int cas_wal_stage(struct cas_wal *w, const char *key, size_t key_len, const unsigned char *rec,
		  size_t rec_len);

/* Appends to the batch a log entry that drops key and raises the floor to
 * floor, as one (a drop, layout in store.h). Errors as cas_wal_stage. */
int cas_wal_stage_drop(struct cas_wal *w, const char *key, size_t key_len, uint64_t floor);

/* The batch is larger than a quarter of the log: it goes into LMDB. */
bool cas_wal_batch_too_large(const struct cas_wal *w);

/* The batch fits in what is left of the log (else: checkpoint first). */
bool cas_wal_batch_fits(const struct cas_wal *w);

/* Seals the batch's entries and writes them at w->off, returning once they
 * are durable; then w->off is past them. Returns 0, or -1 with errno and
 * w->failed_call naming the call that failed: the offset is where it was
 * then (the batch stays, to drop). With errno ENOMEM nothing was written;
 * otherwise the write or its sync failed, and what the file holds (or the
 * page cache says it holds) is not known: store.h says what the store
 * does then. */
int cas_wal_commit(struct cas_wal *w);

/* Forgets the batch's entries. */
void cas_wal_drop_batch(struct cas_wal *w);

/* A checkpoint made every entry stale: the log starts over in the next
 * epoch. */
void cas_wal_restart(struct cas_wal *w);

/* The log is written with O_DIRECT | O_DSYNC (a snapshot: the writer may
 * fall back to buffered writes). Any thread. */
bool cas_wal_direct(const struct cas_wal *w);

#endif

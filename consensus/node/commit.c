/* commit.c - a batch of requests applied in order and made durable at
 * once: in the write-ahead log, or in LMDB when too large for it; and the
 * checkpoint that moves the log's records into LMDB (store_impl.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cas/bytes.h>

#include "errmsg.h"
#include "metrics.h"
#include "node.h"
#include "store_impl.h"

int cas_store_lmdb_err(int rc, const char *call, char *errmsg, size_t errmsg_len)
{
	cas_errmsg_set(errmsg, errmsg_len, "lmdb: %s: %s", call, mdb_strerror(rc));
	return rc == ENOMEM ? CAS_ENOMEM : CAS_EIO;
}

/* LMDB's map is full (MDB_MAP_FULL from call, writing about more bytes
 * of records): says so in errmsg, with how much is in use and the option
 * that sizes it; a checkpoint that failed so also makes the store say it
 * takes no changes (cas_store_writable), until one succeeds. */
static int map_full(struct cas_store *s, const char *call, size_t more, bool checkpoint,
		    char *errmsg, size_t errmsg_len)
{
	const double mib = 1 << 20;
	double used = 0, size = 0;
	MDB_envinfo info;
	MDB_stat st;

	if (!mdb_env_info(s->env, &info) && !mdb_env_stat(s->env, &st)) {
		used = (double)(info.me_last_pgno + 1) * st.ms_psize / mib;
		size = (double)info.me_mapsize / mib;
	}
	cas_errmsg_set(errmsg, errmsg_len,
		       "store: LMDB map full (%s: MDB_MAP_FULL): %.1f of %.1f MiB in use, "
		       "%.1f MiB more to write; restart casd with a larger --map-size (the log "
		       "keeps what was acknowledged)",
		       call, used, size, (double)more / mib);
	if (checkpoint) {
		pthread_mutex_lock(&s->lock);
		s->full = true;
		cas_errmsg_set(s->full_reason, sizeof(s->full_reason), "%s", errmsg);
		pthread_mutex_unlock(&s->lock);
	}
	return CAS_EIO;
}

/* An LMDB failure rc of call in a write of about more bytes: map_full,
 * or as cas_store_lmdb_err. */
static int write_err(struct cas_store *s, int rc, const char *call, size_t more, bool checkpoint,
		     char *errmsg, size_t errmsg_len)
{
	if (rc == MDB_MAP_FULL)
		return map_full(s, call, more, checkpoint, errmsg, errmsg_len);
	return cas_store_lmdb_err(rc, call, errmsg, errmsg_len);
}

/* Finds key's record as the batch being written sees it (its own earlier
 * changes, then the memtable, then LMDB): *rec (NULL when none, or
 * dropped) borrows from them, for the batch. *entry is key's memtable
 * entry (NULL when none) and *in_lmdb whether LMDB has the key (set only
 * when there is no entry). */
static int batch_record(struct cas_store *s, const char *key, size_t len, uint32_t hash,
			const unsigned char **rec, size_t *rec_len, struct mem_entry **entry,
			bool *in_lmdb, char *errmsg, size_t errmsg_len)
{
	struct mem_entry *e = cas_memtable_find(&s->mem, key, len, hash);
	MDB_val k, v;
	int rc;

	*entry = e;
	*in_lmdb = false;
	*rec = NULL;
	*rec_len = 0;
	if (e && (e->pending || e->rec)) {
		*rec = e->pending ? e->pending : e->rec;
		*rec_len = e->pending ? e->pending_len : e->rec_len;
		if (cas_memtable_is_drop(*rec_len))
			*rec = NULL;
		return CAS_OK;
	}
	k.mv_size = len;
	k.mv_data = (void *)key;
	rc = mdb_get(s->rtxn, s->dbi, &k, &v);
	if (rc == MDB_NOTFOUND)
		return CAS_OK;
	if (rc)
		return cas_store_lmdb_err(rc, "mdb_get", errmsg, errmsg_len);
	*in_lmdb = true;
	*rec = v.mv_data;
	*rec_len = v.mv_size;
	return CAS_OK;
}

/* Fails op alone with err (its reason already in op->errmsg); its reply
 * is dropped. The batch goes on without it. */
static void fail_op(struct cas_store_op *op, int err)
{
	cas_msg_clear(&op->reply);
	op->err = err;
	op->failed = true;
}

/* Runs the node's step (the acceptor rules, node.h) for op against the
 * record the batch sees and the batch's floor, and stages the change: the
 * memtable entry's pending record (a drop: a record of 0 bytes, and the
 * batch's floor raised) and a log entry. On error op has failed alone and
 * nothing of it is staged. */
static void apply_op(struct cas_store *s, struct cas_store_op *op)
{
	const struct cas_msg *req = op->req;
	size_t len = strlen(req->key), old_len, rec_len;
	uint32_t hash = cas_memtable_hash(req->key, len);
	uint64_t floor = s->mem.pending_floor;
	enum cas_acceptor_change change;
	const unsigned char *old;
	struct mem_entry *e;
	unsigned char *rec;
	bool in_lmdb;
	int err;

	err = batch_record(s, req->key, len, hash, &old, &old_len, &e, &in_lmdb, op->errmsg,
			   sizeof(op->errmsg));
	if (err)
		goto out_fail;
	err = cas_node_step(old, old_len, req, &floor, &op->reply, &change, &rec, &rec_len,
			    op->errmsg, sizeof(op->errmsg));
	if (err)
		goto out_fail;
	if (change == CAS_ACCEPTOR_KEEP)
		return; /* a reject, or nothing to purge: nothing to persist */
	err = CAS_ENOMEM;
	if (change == CAS_ACCEPTOR_DROP) {
		rec = malloc(1); /* the drop's record: 0 bytes */
		rec_len = 0;
		if (!rec)
			goto out_nomem;
	}
	if (!cas_memtable_reserve(&s->mem))
		goto out_free_rec;
	if (!e) {
		pthread_mutex_lock(&s->mem_lock);
		e = cas_memtable_add(&s->mem, req->key, len, hash, !in_lmdb);
		pthread_mutex_unlock(&s->mem_lock);
		if (!e)
			goto out_free_rec;
	}
	if (change == CAS_ACCEPTOR_DROP)
		/* The row's deletion and the floor, in one entry. */
		err = cas_wal_stage_drop(&s->wal, req->key, len, floor);
	else
		err = cas_wal_stage(&s->wal, req->key, len, rec, rec_len);
	if (err)
		goto out_free_rec;
	cas_memtable_stage(&s->mem, e, rec, rec_len);
	s->mem.pending_floor = floor;
	op->changed = true;
	return;

out_free_rec:
	free(rec);
out_nomem:
	cas_errmsg_set(op->errmsg, sizeof(op->errmsg), "store: %s", cas_strerror(err));
out_fail:
	fail_op(op, err);
}

/* Drops what the batch staged. */
static void discard_staged(struct cas_store *s)
{
	cas_memtable_discard_staged(&s->mem);
	cas_wal_drop_batch(&s->wal);
}

/* The staged records are durable: readers see them from now on. in_lmdb:
 * they were written into LMDB, not the log. */
static void promote_staged(struct cas_store *s, bool in_lmdb)
{
	pthread_mutex_lock(&s->mem_lock);
	cas_memtable_promote_staged(&s->mem, in_lmdb);
	pthread_mutex_unlock(&s->mem_lock);
	cas_wal_drop_batch(&s->wal);
}

/* Writes key's record rec (rec_len bytes) into txn, or deletes its row
 * when rec is a drop (memtable.h). Returns LMDB's code. */
static int put_record(struct cas_store *s, MDB_txn *txn, const char *key, size_t key_len,
		      unsigned char *rec, size_t rec_len)
{
	MDB_val k = {key_len, (void *)key}, v = {rec_len, rec};
	int rc;

	if (!cas_memtable_is_drop(rec_len))
		return mdb_put(txn, s->dbi, &k, &v, 0);
	rc = mdb_del(txn, s->dbi, &k, NULL);
	return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

/* Writes the floor into txn (none while it is 0). Returns LMDB's code. */
static int put_floor(struct cas_store *s, MDB_txn *txn, uint64_t floor)
{
	unsigned char f[8];
	MDB_val k = {CAS_STORE_FLOOR_KEY_LEN, (void *)CAS_STORE_FLOOR_KEY}, v = {sizeof(f), f};

	if (!floor)
		return MDB_SUCCESS;
	cas_put_le64(f, floor);
	return mdb_put(txn, s->dbi, &k, &v, 0);
}

int cas_store_checkpoint(struct cas_store *s, bool new_epoch, char *errmsg, size_t errmsg_len)
{
	unsigned char ep[8];
	struct mem_entry *e;
	MDB_val k, v;
	MDB_txn *txn;
	uint64_t start;
	size_t i;
	int rc;

	if (!s->mem.n && !s->wal.off && !new_epoch)
		return CAS_OK;
	start = cas_metrics_now_ns();
	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc)
		return cas_store_lmdb_err(rc, "checkpoint: mdb_txn_begin", errmsg, errmsg_len);
	for (i = 0; i < s->mem.n_buckets; i++) {
		for (e = s->mem.buckets[i]; e; e = e->next) {
			if (!e->rec)
				continue;
			rc = put_record(s, txn, e->key, e->key_len, e->rec, e->rec_len);
			if (rc)
				goto out_abort;
		}
	}
	rc = put_floor(s, txn, s->mem.floor);
	if (rc)
		goto out_abort;
	cas_put_le64(ep, s->wal.epoch + 1);
	k.mv_size = CAS_STORE_EPOCH_KEY_LEN;
	k.mv_data = (void *)CAS_STORE_EPOCH_KEY;
	v.mv_size = sizeof(ep);
	v.mv_data = ep;
	rc = mdb_put(txn, s->dbi, &k, &v, 0);
	if (rc)
		goto out_abort;
	rc = mdb_txn_commit(txn);
	if (rc)
		return write_err(s, rc, "checkpoint: mdb_txn_commit", s->wal.off, true, errmsg,
				 errmsg_len);
	pthread_mutex_lock(&s->mem_lock);
	cas_memtable_drop_durable(&s->mem);
	pthread_mutex_unlock(&s->mem_lock);
	cas_wal_restart(&s->wal);
	pthread_mutex_lock(&s->lock);
	s->stats.checkpoints++;
	s->full = false;
	pthread_mutex_unlock(&s->lock);
	cas_metrics_checkpoint(start);
	return CAS_OK;

out_abort:
	mdb_txn_abort(txn);
	return write_err(s, rc, "checkpoint: mdb_put", s->wal.off, true, errmsg, errmsg_len);
}

/* A batch too large for the log: after a checkpoint, its records (and
 * drops, and floor) go straight into LMDB in one synchronous transaction. */
static int write_direct(struct cas_store *s, char *errmsg, size_t errmsg_len)
{
	struct mem_entry *e;
	MDB_txn *txn;
	size_t i;
	int rc, err;

	err = cas_store_checkpoint(s, false, errmsg, errmsg_len);
	if (err)
		return err;
	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc)
		return cas_store_lmdb_err(rc, "mdb_txn_begin", errmsg, errmsg_len);
	for (i = 0; i < s->mem.n_touched; i++) {
		e = s->mem.touched[i];
		rc = put_record(s, txn, e->key, e->key_len, e->pending, e->pending_len);
		if (rc)
			goto out_abort;
	}
	rc = put_floor(s, txn, s->mem.pending_floor);
	if (rc)
		goto out_abort;
	rc = mdb_txn_commit(txn);
	if (rc)
		return write_err(s, rc, "mdb_txn_commit", s->wal.buf_len, false, errmsg,
				 errmsg_len);
	promote_staged(s, true);
	return CAS_OK;

out_abort:
	mdb_txn_abort(txn);
	return write_err(s, rc, "mdb_put", s->wal.buf_len, false, errmsg, errmsg_len);
}

/* The log's write or sync failed with err: the store takes no more
 * changes (store.h says why). */
static void stop_writes(struct cas_store *s, int err)
{
	pthread_mutex_lock(&s->lock);
	s->log_failed = true;
	cas_errmsg_set(s->unwritable, sizeof(s->unwritable),
		       "store: write-ahead log: %s failed: %s; no changes are taken until a "
		       "restart, which replays what the disk holds",
		       s->wal.failed_call ? s->wal.failed_call : "write", strerror(err));
	pthread_mutex_unlock(&s->lock);
}

/* Makes the staged batch durable: appended to the log and fdatasynced
 * (after a checkpoint when the log is too full for it), or written into
 * LMDB when it is too large for the log. On failure it stays staged. */
static int write_staged(struct cas_store *s, char *errmsg, size_t errmsg_len)
{
	uint64_t start;
	int err;

	if (cas_wal_batch_too_large(&s->wal))
		return write_direct(s, errmsg, errmsg_len);
	if (!cas_wal_batch_fits(&s->wal)) {
		err = cas_store_checkpoint(s, false, errmsg, errmsg_len);
		if (err)
			return err;
	}
	/* Paper, section 2.2: persist before answering. */
	start = cas_metrics_now_ns();
	err = cas_wal_commit(&s->wal) ? errno : 0;
	cas_metrics_log_sync(start);
	if (err) {
		if (err == ENOMEM) {
			/* Nothing written: the next batch may try again. */
			cas_errmsg_set(errmsg, errmsg_len, "store: write-ahead log: %s",
				       strerror(err));
			return CAS_ENOMEM;
		}
		stop_writes(s, err);
		cas_errmsg_set(errmsg, errmsg_len, "%s", s->unwritable);
		return CAS_EIO;
	}
	promote_staged(s, false);
	return CAS_OK;
}

/* Fails every op of batch still standing with err and the reason fmt. */
__attribute__((format(printf, 3, 4))) static void fail_batch(struct cas_store_op *batch, int err,
							     const char *fmt, ...)
{
	struct cas_store_op *op;
	va_list ap;

	for (op = batch; op; op = op->next) {
		if (op->failed)
			continue;
		va_start(ap, fmt);
		vsnprintf(op->errmsg, sizeof(op->errmsg), fmt, ap);
		va_end(ap);
		fail_op(op, err);
	}
}

size_t cas_store_write_batch(struct cas_store *s, struct cas_store_op *batch)
{
	struct cas_store_op *op;
	char errmsg[256];
	size_t changes = 0;
	int rc, err;

	if (s->log_failed) {
		/* Set by this (the batch writer's) thread only: no lock. */
		fail_batch(batch, CAS_EIO, "%s", s->unwritable);
		return 0;
	}
	rc = mdb_txn_renew(s->rtxn);
	if (rc) {
		fail_batch(batch, rc == ENOMEM ? CAS_ENOMEM : CAS_EIO, "lmdb: mdb_txn_renew: %s",
			   mdb_strerror(rc));
		return 0;
	}
	for (op = batch; op; op = op->next) {
		if (op->failed)
			continue;
		apply_op(s, op);
		changes += op->changed;
	}
	mdb_txn_reset(s->rtxn);
	if (!changes)
		return 0; /* rejects only: nothing to make durable */
	for (op = batch; op && s->fault; op = op->next) {
		if (op->changed && s->fault(s->fault_arg, op->req)) {
			discard_staged(s);
			fail_batch(batch, CAS_EIO, "store: injected commit failure");
			return 0;
		}
	}
	err = write_staged(s, errmsg, sizeof(errmsg));
	if (err) {
		discard_staged(s);
		fail_batch(batch, err, "%s", errmsg);
		if (s->log_failed)
			/* The acknowledged records into LMDB now, past the
			 * log whose last block may be lost, and the failed
			 * batch's entries made stale. If it fails too, a
			 * restart replays the log. */
			(void)cas_store_checkpoint(s, true, errmsg, sizeof(errmsg));
		return 0;
	}
	cas_metrics_batch(changes);
	return changes;
}

/* store.c - the acceptor's durable state (store.h): opening and closing,
 * the queue of requests and the group commit writer thread, and reads. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cas/bytes.h>

#include "errmsg.h"
#include "store_impl.h"

static int sync_dir(const char *dir)
{
	int fd, rc;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* Reads the log's epoch from LMDB (0 when there is none yet). */
static int read_epoch(struct cas_store *s, MDB_txn *txn, char *errmsg, size_t errmsg_len)
{
	MDB_val k = {CAS_STORE_EPOCH_KEY_LEN, (void *)CAS_STORE_EPOCH_KEY}, v;
	int rc;

	rc = mdb_get(txn, s->dbi, &k, &v);
	if (rc == MDB_NOTFOUND)
		return CAS_OK;
	if (rc)
		return cas_store_lmdb_err(rc, "mdb_get", errmsg, errmsg_len);
	if (v.mv_size != 8) {
		cas_errmsg_set(errmsg, errmsg_len, "store: corrupt log epoch");
		return CAS_EIO;
	}
	s->wal.epoch = cas_get_le64(v.mv_data);
	return CAS_OK;
}

/* Reads the floor from LMDB into the memtable (0 when there is none). */
static int read_floor(struct cas_store *s, MDB_txn *txn, char *errmsg, size_t errmsg_len)
{
	MDB_val k = {CAS_STORE_FLOOR_KEY_LEN, (void *)CAS_STORE_FLOOR_KEY}, v;
	int rc;

	rc = mdb_get(txn, s->dbi, &k, &v);
	if (rc == MDB_NOTFOUND)
		return CAS_OK;
	if (rc)
		return cas_store_lmdb_err(rc, "mdb_get", errmsg, errmsg_len);
	if (v.mv_size != 8) {
		cas_errmsg_set(errmsg, errmsg_len, "store: corrupt floor");
		return CAS_EIO;
	}
	s->mem.floor = cas_get_le64(v.mv_data);
	return CAS_OK;
}

/* The open's checkpoint found LMDB full: the replayed records stay in the
 * memtable, and their entries in the log (store.h). Marks those whose key
 * LMDB lacks as fresh, and counts them for cas_store_count. */
static int keep_log(struct cas_store *s, const char *dir, char *errmsg, size_t errmsg_len)
{
	struct mem_entry *e;
	MDB_val k, v;
	size_t i;
	int rc = mdb_txn_renew(s->rtxn);

	if (rc)
		return cas_store_lmdb_err(rc, "mdb_txn_renew", errmsg, errmsg_len);
	for (i = 0; i < s->mem.n_buckets; i++) {
		for (e = s->mem.buckets[i]; e; e = e->next) {
			k.mv_size = e->key_len;
			k.mv_data = e->key;
			rc = mdb_get(s->rtxn, s->dbi, &k, &v);
			if (rc && rc != MDB_NOTFOUND) {
				mdb_txn_reset(s->rtxn);
				return cas_store_lmdb_err(rc, "mdb_get", errmsg, errmsg_len);
			}
			e->fresh = rc == MDB_NOTFOUND;
			if (e->rec && cas_memtable_is_drop(e->rec_len))
				s->mem.n_gone += !e->fresh;
			else
				s->mem.n_fresh += e->fresh && e->rec;
		}
	}
	mdb_txn_reset(s->rtxn);
	return cas_wal_keep(&s->wal, dir, errmsg, errmsg_len);
}

static void *writer_main(void *arg);

int cas_store_open(const char *dir, const struct cas_store_config *cfg, struct cas_store **out,
		   char *errmsg, size_t errmsg_len)
{
	size_t map_size =
		cfg && cfg->map_size ? cfg->map_size : (size_t)CAS_STORE_DEFAULT_MAP_MIB << 20;
	struct cas_store *s;
	MDB_txn *txn;
	int rc, dead, err;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s) {
		cas_errmsg_set(errmsg, errmsg_len, "store: out of memory");
		return CAS_ENOMEM;
	}
	cas_wal_init(&s->wal, cfg && cfg->wal_size ? cfg->wal_size : CAS_STORE_DEFAULT_WAL_SIZE,
		     cfg && cfg->buffered_log);
	if (s->wal.size < CAS_STORE_MIN_WAL_SIZE) {
		cas_errmsg_set(errmsg, errmsg_len,
			       "store: write-ahead log of %zu bytes is below the minimum of %zu",
			       s->wal.size, CAS_STORE_MIN_WAL_SIZE);
		free(s);
		return CAS_EINVAL;
	}
	s->tail = &s->head;
	if (pthread_mutex_init(&s->lock, NULL)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: cannot make a mutex");
		err = CAS_ENOMEM;
		goto out_free_store;
	}
	if (pthread_mutex_init(&s->mem_lock, NULL)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: cannot make a mutex");
		err = CAS_ENOMEM;
		goto out_destroy_lock;
	}
	if (pthread_cond_init(&s->work, NULL)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: cannot make a condition variable");
		err = CAS_ENOMEM;
		goto out_destroy_mem_lock;
	}
	rc = mdb_env_create(&s->env);
	if (rc) {
		err = cas_store_lmdb_err(rc, "mdb_env_create", errmsg, errmsg_len);
		goto out_destroy_cond;
	}
	rc = mdb_env_set_mapsize(s->env, map_size);
	if (rc) {
		err = cas_store_lmdb_err(rc, "mdb_env_set_mapsize", errmsg, errmsg_len);
		goto out_close_env;
	}
	/* MDB_NOTLS: read transactions move between threads (the batch
	 * writer's, the server's). Never MDB_NOSYNC or MDB_NOMETASYNC: a
	 * checkpoint's commit is what lets the log start over. */
	rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600);
	if (rc) {
		cas_errmsg_set(errmsg, errmsg_len, "lmdb: mdb_env_open %s: %s", dir,
			       mdb_strerror(rc));
		err = rc == ENOMEM ? CAS_ENOMEM : CAS_EIO;
		goto out_close_env;
	}
	/* Reader slots of a killed process would otherwise linger. */
	rc = mdb_reader_check(s->env, &dead);
	if (rc) {
		err = cas_store_lmdb_err(rc, "mdb_reader_check", errmsg, errmsg_len);
		goto out_close_env;
	}
	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc) {
		err = cas_store_lmdb_err(rc, "mdb_txn_begin", errmsg, errmsg_len);
		goto out_close_env;
	}
	rc = mdb_dbi_open(txn, NULL, 0, &s->dbi);
	if (rc) {
		err = cas_store_lmdb_err(rc, "mdb_dbi_open", errmsg, errmsg_len);
		goto out_abort_txn;
	}
	err = read_epoch(s, txn, errmsg, errmsg_len);
	if (!err)
		err = read_floor(s, txn, errmsg, errmsg_len);
	if (err)
		goto out_abort_txn;
	rc = mdb_txn_commit(txn);
	if (rc) {
		err = cas_store_lmdb_err(rc, "mdb_txn_commit", errmsg, errmsg_len);
		goto out_close_env;
	}
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->rtxn);
	if (rc) {
		err = cas_store_lmdb_err(rc, "mdb_txn_begin", errmsg, errmsg_len);
		goto out_close_env;
	}
	mdb_txn_reset(s->rtxn);
	/* The log's entries of the current epoch go into the memtable, then
	 * into LMDB by a checkpoint, before the log is sized (which may
	 * overwrite them). The checkpoint runs even when nothing was
	 * replayed: every open starts a new epoch (store.h says why). */
	err = cas_wal_open(&s->wal, dir, &s->mem, &s->stats.replayed, errmsg, errmsg_len);
	if (err)
		goto out_abort_rtxn;
	s->mem.pending_floor = s->mem.floor; /* raised by what was replayed */
	err = cas_store_checkpoint(s, true, errmsg, errmsg_len);
	if (err && s->full)
		/* Not fatal: the log keeps the records, reads are served,
		 * and a later checkpoint tries again. */
		err = keep_log(s, dir, errmsg, errmsg_len);
	if (err)
		goto out_close_wal;
	err = cas_wal_ready(&s->wal, dir, errmsg, errmsg_len);
	if (err)
		goto out_close_wal;
	/* LMDB and the log sync their files, not their names: make a
	 * freshly created store survive a power loss too. */
	if (sync_dir(dir)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: fsync %s: %s", dir, strerror(errno));
		err = CAS_EIO;
		goto out_close_wal;
	}
	s->stats.log_used = s->wal.off;
	rc = pthread_create(&s->writer, NULL, writer_main, s);
	if (rc) {
		cas_errmsg_set(errmsg, errmsg_len, "store: cannot start the writer: %s",
			       strerror(rc));
		err = CAS_ENOMEM;
		goto out_close_wal;
	}
	*out = s;
	return CAS_OK;

out_close_wal:
	cas_wal_close(&s->wal);
out_abort_rtxn:
	mdb_txn_abort(s->rtxn);
	cas_memtable_free(&s->mem);
	goto out_close_env;
out_abort_txn:
	mdb_txn_abort(txn);
out_close_env:
	mdb_env_close(s->env);
out_destroy_cond:
	pthread_cond_destroy(&s->work);
out_destroy_mem_lock:
	pthread_mutex_destroy(&s->mem_lock);
out_destroy_lock:
	pthread_mutex_destroy(&s->lock);
out_free_store:
	free(s);
	return err;
}

void cas_store_close(struct cas_store *s)
{
	char errmsg[256];

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->writer, NULL);
	/* A failed checkpoint loses nothing: the next open replays the log. */
	(void)cas_store_checkpoint(s, false, errmsg, sizeof(errmsg));
	cas_wal_close(&s->wal);
	mdb_txn_abort(s->rtxn);
	mdb_env_close(s->env);
	cas_memtable_free(&s->mem);
	pthread_cond_destroy(&s->work);
	pthread_mutex_destroy(&s->mem_lock);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void cas_store_set_fault(struct cas_store *s, int (*fn)(void *arg, const struct cas_msg *req),
			 void *arg)
{
	s->fault = fn;
	s->fault_arg = arg;
}

void cas_store_fail_log_syncs(struct cas_store *s, unsigned n)
{
	__atomic_store_n(&s->wal.fail_syncs, n, __ATOMIC_RELAXED);
}

bool cas_store_writable(struct cas_store *s, char *reason, size_t reason_len)
{
	bool writable;

	pthread_mutex_lock(&s->lock);
	writable = !s->log_failed && !s->full;
	if (!writable)
		cas_errmsg_set(reason, reason_len, "%s",
			       s->log_failed ? s->unwritable : s->full_reason);
	pthread_mutex_unlock(&s->lock);
	return writable;
}

static int check_key(const char *key, char *errmsg, size_t errmsg_len)
{
	if (!cas_key_valid(key, strnlen(key, CAS_KEY_MAX + 1))) {
		cas_errmsg_set(errmsg, errmsg_len, "store: bad key");
		return CAS_EKEY;
	}
	return CAS_OK;
}

/* Counts a written batch of n requests, before any reply leaves: a caller
 * holding its reply sees its batch in the stats. Called with s->lock. */
static void count_batch(struct cas_store *s, size_t n, size_t changes)
{
	s->stats.log_used = s->wal.off; /* the batch's writer owns wal */
	if (!changes)
		return;
	s->stats.commits++;
	s->stats.changes += changes;
	if (n > s->stats.largest_batch)
		s->stats.largest_batch = n;
}

/* The writer: takes every queued request as one batch, writes it, and
 * only then tells each request's caller. */
static void *writer_main(void *arg)
{
	struct cas_store *s = arg;
	struct cas_store_op *batch, *op, *next;
	size_t n, changes;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while ((!s->head || s->held || s->busy) && !s->stopping)
			pthread_cond_wait(&s->work, &s->lock);
		if (!s->head)
			break; /* stopping, nothing left */
		batch = s->head;
		n = s->waiting;
		s->head = NULL;
		s->tail = &s->head;
		s->waiting = 0;
		s->busy = true;
		pthread_mutex_unlock(&s->lock);

		changes = cas_store_write_batch(s, batch);

		pthread_mutex_lock(&s->lock);
		count_batch(s, n, changes);
		s->busy = false;
		pthread_mutex_unlock(&s->lock);
		for (op = batch; op; op = next) {
			next = op->next; /* op may be gone once done ran */
			op->done(op);
		}
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Readies op for the store; CAS_OK, or why it cannot run. */
static int prepare_op(struct cas_store_op *op)
{
	op->err = CAS_OK;
	op->errmsg[0] = '\0';
	memset(&op->reply, 0, sizeof(op->reply));
	op->next = NULL;
	op->changed = false;
	op->failed = false;
	if (op->req->type != CAS_MSG_PREPARE && op->req->type != CAS_MSG_ACCEPT &&
	    op->req->type != CAS_MSG_PURGE) {
		cas_errmsg_set(op->errmsg, sizeof(op->errmsg), "store: not a request");
		op->err = CAS_EINVAL;
		return op->err;
	}
	op->err = check_key(op->req->key, op->errmsg, sizeof(op->errmsg));
	return op->err;
}

int cas_store_submit(struct cas_store *s, struct cas_store_op *op)
{
	int err = prepare_op(op);

	if (err)
		return err;
	pthread_mutex_lock(&s->lock);
	*s->tail = op;
	s->tail = &op->next;
	s->waiting++;
	if (!s->busy)
		pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
	return CAS_OK;
}

bool cas_store_run_if_idle(struct cas_store *s, struct cas_store_op *op)
{
	size_t changes;

	if (prepare_op(op))
		return true;
	pthread_mutex_lock(&s->lock);
	if (s->busy || s->head || s->held || s->stopping) {
		pthread_mutex_unlock(&s->lock);
		return false;
	}
	s->busy = true;
	pthread_mutex_unlock(&s->lock);

	changes = cas_store_write_batch(s, op);

	pthread_mutex_lock(&s->lock);
	count_batch(s, 1, changes);
	s->busy = false;
	if (s->head)
		pthread_cond_signal(&s->work); /* queued meanwhile */
	pthread_mutex_unlock(&s->lock);
	return true;
}

/* A cas_store_handle call waiting for its op. */
struct waiter {
	struct cas_store_op op;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static void wake_waiter(struct cas_store_op *op)
{
	struct waiter *w = op->arg;

	pthread_mutex_lock(&w->lock);
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

int cas_store_handle(struct cas_store *s, const struct cas_msg *req, struct cas_msg *reply,
		     char *errmsg, size_t errmsg_len)
{
	struct waiter *w;
	int err;

	memset(reply, 0, sizeof(*reply));
	/* On the heap: an op is large, and callers' stacks may be small. */
	w = calloc(1, sizeof(*w));
	if (!w) {
		cas_errmsg_set(errmsg, errmsg_len, "store: out of memory");
		return CAS_ENOMEM;
	}
	w->op.req = req;
	w->op.done = wake_waiter;
	w->op.arg = w;
	if (pthread_mutex_init(&w->lock, NULL)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: cannot make a mutex");
		err = CAS_ENOMEM;
		goto out_free_waiter;
	}
	if (pthread_cond_init(&w->cond, NULL)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: cannot make a condition variable");
		err = CAS_ENOMEM;
		goto out_destroy_lock;
	}
	if (cas_store_run_if_idle(s, &w->op)) {
		err = w->op.err;
		*reply = w->op.reply;
	} else {
		err = cas_store_submit(s, &w->op);
		if (!err) {
			pthread_mutex_lock(&w->lock);
			while (!w->done)
				pthread_cond_wait(&w->cond, &w->lock);
			pthread_mutex_unlock(&w->lock);
			err = w->op.err;
			*reply = w->op.reply;
		}
	}
	if (err)
		cas_errmsg_set(errmsg, errmsg_len, "%s", w->op.errmsg);
	pthread_cond_destroy(&w->cond);
out_destroy_lock:
	pthread_mutex_destroy(&w->lock);
out_free_waiter:
	free(w);
	return err;
}

void cas_store_hold(struct cas_store *s, bool hold)
{
	pthread_mutex_lock(&s->lock);
	s->held = hold;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
}

size_t cas_store_waiting(struct cas_store *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->waiting;
	pthread_mutex_unlock(&s->lock);
	return n;
}

void cas_store_get_stats(struct cas_store *s, struct cas_store_stats *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->stats;
	/* Read where the batch writer may change it (direct writes refused
	 * after all): a snapshot, as the rest. */
	out->direct_log = cas_wal_direct(&s->wal);
	pthread_mutex_unlock(&s->lock);
}

int cas_store_read(struct cas_store *s, const char *key,
		   int (*fn)(void *arg, const unsigned char *rec, size_t rec_len), void *arg,
		   char *errmsg, size_t errmsg_len)
{
	size_t len, rec_len = 0;
	unsigned char *rec = NULL;
	struct mem_entry *e;
	bool found = false;
	MDB_val k, v;
	MDB_txn *txn;
	int rc, err;

	err = check_key(key, errmsg, errmsg_len);
	if (err)
		return err;
	/* The memtable first: a key absent there is, at this moment, as
	 * LMDB has it (a checkpoint writes LMDB before it drops entries). */
	len = strlen(key);
	pthread_mutex_lock(&s->mem_lock);
	e = cas_memtable_find(&s->mem, key, len, cas_memtable_hash(key, len));
	if (e && e->rec && cas_memtable_is_drop(e->rec_len)) {
		/* Dropped: no record, whatever LMDB still has. */
		pthread_mutex_unlock(&s->mem_lock);
		return CAS_OK;
	}
	if (e && e->rec) {
		found = true;
		rec_len = e->rec_len;
		rec = malloc(rec_len ? rec_len : 1);
		if (rec)
			memcpy(rec, e->rec, rec_len);
	}
	pthread_mutex_unlock(&s->mem_lock);
	if (found) {
		if (!rec) {
			cas_errmsg_set(errmsg, errmsg_len, "store: out of memory");
			return CAS_ENOMEM;
		}
		err = fn(arg, rec, rec_len);
		free(rec);
		return err;
	}
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return cas_store_lmdb_err(rc, "mdb_txn_begin", errmsg, errmsg_len);
	k.mv_size = len;
	k.mv_data = (void *)key;
	rc = mdb_get(txn, s->dbi, &k, &v);
	if (rc == MDB_NOTFOUND)
		err = CAS_OK;
	else if (rc)
		err = cas_store_lmdb_err(rc, "mdb_get", errmsg, errmsg_len);
	else
		err = fn(arg, v.mv_data, v.mv_size);
	mdb_txn_abort(txn);
	return err;
}

int cas_store_count(struct cas_store *s, uint64_t *out, char *errmsg, size_t errmsg_len)
{
	MDB_val epoch = {CAS_STORE_EPOCH_KEY_LEN, (void *)CAS_STORE_EPOCH_KEY};
	MDB_val floor = {CAS_STORE_FLOOR_KEY_LEN, (void *)CAS_STORE_FLOOR_KEY}, v;
	MDB_txn *txn;
	MDB_stat stat;
	int rc;

	*out = 0;
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return cas_store_lmdb_err(rc, "mdb_txn_begin", errmsg, errmsg_len);
	rc = mdb_stat(txn, s->dbi, &stat);
	/* The log's epoch and the floor are not registers. */
	if (!rc && mdb_get(txn, s->dbi, &epoch, &v) == 0 && stat.ms_entries)
		stat.ms_entries--;
	if (!rc && mdb_get(txn, s->dbi, &floor, &v) == 0 && stat.ms_entries)
		stat.ms_entries--;
	mdb_txn_abort(txn);
	if (rc)
		return cas_store_lmdb_err(rc, "mdb_stat", errmsg, errmsg_len);
	pthread_mutex_lock(&s->mem_lock);
	stat.ms_entries += s->mem.n_fresh;
	*out = stat.ms_entries > s->mem.n_gone ? stat.ms_entries - s->mem.n_gone : 0;
	pthread_mutex_unlock(&s->mem_lock);
	return CAS_OK;
}

uint64_t cas_store_floor(struct cas_store *s)
{
	uint64_t floor;

	pthread_mutex_lock(&s->mem_lock);
	floor = s->mem.floor;
	pthread_mutex_unlock(&s->mem_lock);
	return floor;
}

int cas_store_usage(struct cas_store *s, struct cas_store_usage *out, char *errmsg,
		    size_t errmsg_len)
{
	struct statvfs sv;
	MDB_envinfo info;
	MDB_stat st;
	int rc, fd;

	memset(out, 0, sizeof(*out));
	rc = mdb_env_info(s->env, &info);
	if (!rc)
		rc = mdb_env_stat(s->env, &st);
	if (rc)
		return cas_store_lmdb_err(rc, "mdb_env_info", errmsg, errmsg_len);
	out->bytes = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
	out->map_size = info.me_mapsize;
	out->disk_free = UINT64_MAX;
	if (mdb_env_get_fd(s->env, &fd) == 0 && fstatvfs(fd, &sv) == 0)
		out->disk_free = (uint64_t)sv.f_bavail * sv.f_frsize;
	out->log_size = s->wal.size; /* set at open, never changed */
	pthread_mutex_lock(&s->lock);
	out->log_used = s->stats.log_used;
	pthread_mutex_unlock(&s->lock);
	return CAS_OK;
}

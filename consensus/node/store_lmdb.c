/* store_lmdb.c - the acceptor's durable state: a write-ahead log in front of
 * LMDB (see store_lmdb.h). */
#define _GNU_SOURCE /* O_DIRECT */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include <cas/bytes.h>

#include "errmsg.h"
#include "store_lmdb.h"

#define REC_HEADER 48 /* bytes before the recent changes */
#define REC_RECENT 24 /* bytes of one recent change */

#define WAL_NAME       "wal"
#define WAL_MAGIC      0x57534143u /* "CASW" little-endian */
#define WAL_HEADER     28	   /* bytes before an entry's key length */
#define WAL_FILL_CHUNK ((size_t)1 << 20)
#define WAL_BLOCK      4096 /* unit of the log's direct writes */

/* The LMDB key holding the log's epoch: a register key never has a NUL. */
static const char epoch_key[] = "\0wal-epoch";
#define EPOCH_KEY_LEN (sizeof(epoch_key) - 1)

/* A key's record newer than LMDB's, in memory until the next checkpoint. */
struct mem_entry {
	struct mem_entry *next; /* in its bucket */
	unsigned char *rec;	/* durable record; NULL: LMDB holds the state */
	size_t rec_len;
	unsigned char *pending; /* what the batch being written makes it */
	size_t pending_len;
	bool fresh; /* the key is not in LMDB */
	uint32_t hash;
	size_t key_len;
	char key[]; /* NUL-terminated */
};

struct memtable {
	struct mem_entry **buckets;
	size_t n_buckets; /* a power of two, or 0 */
	size_t n;
	uint64_t n_fresh; /* entries with a durable record whose key LMDB lacks */
};

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
	int (*fault)(void *arg, const struct cas_msg *req);
	void *fault_arg;

	/* The memtable: changed only by whoever writes a batch (one at a
	 * time: busy), under mem_lock; readers take mem_lock. */
	pthread_mutex_t mem_lock;
	struct memtable mem;

	/* The batch writer's own. */
	int wal_fd;
	int wal_dfd;	    /* the log opened O_DIRECT | O_DSYNC, or -1: wal_fd and fdatasync */
	bool buffered_log;  /* cas_store_config.buffered_log */
	size_t wal_size;    /* a multiple of WAL_BLOCK */
	uint64_t epoch;	    /* the log's generation, as LMDB has it */
	uint64_t seq;	    /* the last seq handed out in this epoch */
	size_t wal_off;	    /* where the next batch goes */
	unsigned char *buf; /* the batch's log entries */
	size_t buf_len, buf_cap;
	unsigned char *dbuf; /* WAL_BLOCK-aligned, for direct writes */
	size_t dbuf_cap;
	unsigned char wal_tail[WAL_BLOCK]; /* the log's last partial block */
	struct mem_entry **touched;	   /* entries the batch changed */
	size_t n_touched, touched_cap;
	MDB_txn *rtxn; /* read transaction, reset between batches */
};

/* Maps an LMDB failure of call to a code, its reason into errmsg. */
static int lmdb_err(int rc, const char *call, char *errmsg, size_t errmsg_len)
{
	cas_errmsg_set(errmsg, errmsg_len, "lmdb: %s: %s", call, mdb_strerror(rc));
	return rc == ENOMEM ? CAS_ENOMEM : CAS_EIO;
}

/* Reads the record p[0..size) into st; st->value.data points into p. */
static bool decode_record(const unsigned char *p, size_t size, struct cas_acceptor_state *st)
{
	size_t n, i, off;
	uint64_t len;

	memset(st, 0, sizeof(*st));
	if (size < REC_HEADER + 8 || p[0] != CAS_STORE_FORMAT || p[1] > CAS_RECENT_MAX)
		return false;
	for (i = 2; i < 8; i++)
		if (p[i])
			return false;
	n = p[1];
	if (size < REC_HEADER + REC_RECENT * n + 8)
		return false;
	st->promise.counter = cas_get_le64(p + 8);
	st->promise.id = cas_get_le64(p + 16);
	st->accepted.counter = cas_get_le64(p + 24);
	st->accepted.id = cas_get_le64(p + 32);
	st->value.version = cas_get_le64(p + 40);
	for (i = 0; i < n; i++) {
		const unsigned char *r = p + REC_HEADER + REC_RECENT * i;

		st->value.recent[i].proposer = cas_get_le64(r);
		st->value.recent[i].op = cas_get_le64(r + 8);
		st->value.recent[i].version = cas_get_le64(r + 16);
	}
	st->value.n_recent = (uint32_t)n;
	off = REC_HEADER + REC_RECENT * n;
	len = cas_get_le64(p + off);
	off += 8;
	if (len != size - off)
		return false;
	st->value.len = (size_t)len;
	st->value.data = len ? (unsigned char *)p + off : NULL;
	return true;
}

/* Lays st out as a record in a malloc'd buffer, *out of *out_len bytes. */
static int encode_record(const struct cas_acceptor_state *st, unsigned char **out, size_t *out_len)
{
	size_t n = st->value.n_recent, off, i;
	unsigned char *p;

	if (n > CAS_RECENT_MAX || (st->value.len && !st->value.data))
		return CAS_EINVAL;
	off = REC_HEADER + REC_RECENT * n + 8;
	if (st->value.len > SIZE_MAX - off)
		return CAS_ETOOBIG;
	p = calloc(1, off + st->value.len);
	if (!p)
		return CAS_ENOMEM;
	p[0] = CAS_STORE_FORMAT;
	p[1] = (unsigned char)n;
	cas_put_le64(p + 8, st->promise.counter);
	cas_put_le64(p + 16, st->promise.id);
	cas_put_le64(p + 24, st->accepted.counter);
	cas_put_le64(p + 32, st->accepted.id);
	cas_put_le64(p + 40, st->value.version);
	for (i = 0; i < n; i++) {
		unsigned char *r = p + REC_HEADER + REC_RECENT * i;

		cas_put_le64(r, st->value.recent[i].proposer);
		cas_put_le64(r + 8, st->value.recent[i].op);
		cas_put_le64(r + 16, st->value.recent[i].version);
	}
	cas_put_le64(p + off - 8, st->value.len);
	if (st->value.len)
		memcpy(p + off, st->value.data, st->value.len);
	*out = p;
	*out_len = off + st->value.len;
	return CAS_OK;
}

static struct mem_entry *mem_find(const struct memtable *m, const char *key, size_t len,
				  uint32_t hash)
{
	struct mem_entry *e;

	if (!m->n_buckets)
		return NULL;
	for (e = m->buckets[hash & (m->n_buckets - 1)]; e; e = e->next)
		if (e->hash == hash && e->key_len == len && !memcmp(e->key, key, len))
			return e;
	return NULL;
}

/* Doubles the buckets once there are more entries than buckets. Without
 * memory the table stays as it is, only slower. */
static void mem_grow(struct memtable *m)
{
	size_t n = m->n_buckets ? m->n_buckets * 2 : 64, i;
	struct mem_entry **b, *e, *next;

	if (m->n < m->n_buckets)
		return;
	b = calloc(n, sizeof(*b));
	if (!b)
		return;
	for (i = 0; i < m->n_buckets; i++) {
		for (e = m->buckets[i]; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->n_buckets = n;
}

/* Adds an entry for key, with no record yet. NULL without memory. */
static struct mem_entry *mem_add(struct memtable *m, const char *key, size_t len, uint32_t hash,
				 bool fresh)
{
	struct mem_entry *e;

	mem_grow(m);
	if (!m->n_buckets)
		return NULL;
	e = calloc(1, sizeof(*e) + len + 1);
	if (!e)
		return NULL;
	e->hash = hash;
	e->key_len = len;
	e->fresh = fresh;
	memcpy(e->key, key, len);
	e->next = m->buckets[hash & (m->n_buckets - 1)];
	m->buckets[hash & (m->n_buckets - 1)] = e;
	m->n++;
	return e;
}

/* After a checkpoint: LMDB holds every durable record. Entries a batch is
 * changing stay (without their durable record), the others go. */
static void mem_drop_durable(struct memtable *m)
{
	struct mem_entry **pe, *e;
	size_t i;

	for (i = 0; i < m->n_buckets; i++) {
		pe = &m->buckets[i];
		while ((e = *pe) != NULL) {
			if (e->rec)
				e->fresh = false;
			free(e->rec);
			e->rec = NULL;
			e->rec_len = 0;
			if (e->pending) {
				pe = &e->next;
				continue;
			}
			*pe = e->next;
			free(e);
			m->n--;
		}
	}
	m->n_fresh = 0;
}

static void mem_free(struct memtable *m)
{
	struct mem_entry *e, *next;
	size_t i;

	for (i = 0; i < m->n_buckets; i++) {
		for (e = m->buckets[i]; e; e = next) {
			next = e->next;
			free(e->rec);
			free(e->pending);
			free(e);
		}
	}
	free(m->buckets);
	memset(m, 0, sizeof(*m));
}

/* Reads key's state as the batch being written sees it (its own earlier
 * changes, then the memtable, then LMDB) into *st, borrowing from them.
 * *entry is key's memtable entry (NULL when none) and *in_lmdb whether
 * LMDB has the key (set only when there is no entry). */
static int batch_state(struct cas_store *s, const char *key, size_t len, uint32_t hash,
		       struct cas_acceptor_state *st, struct mem_entry **entry, bool *in_lmdb,
		       char *errmsg, size_t errmsg_len)
{
	struct mem_entry *e = mem_find(&s->mem, key, len, hash);
	const unsigned char *p;
	MDB_val k, v;
	size_t n;
	int rc;

	*entry = e;
	*in_lmdb = false;
	memset(st, 0, sizeof(*st));
	if (e && (e->pending || e->rec)) {
		p = e->pending ? e->pending : e->rec;
		n = e->pending ? e->pending_len : e->rec_len;
	} else {
		k.mv_size = len;
		k.mv_data = (void *)key;
		rc = mdb_get(s->rtxn, s->dbi, &k, &v);
		if (rc == MDB_NOTFOUND)
			return CAS_OK;
		if (rc)
			return lmdb_err(rc, "mdb_get", errmsg, errmsg_len);
		*in_lmdb = true;
		p = v.mv_data;
		n = v.mv_size;
	}
	if (!decode_record(p, n, st)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: corrupt record for key \"%s\"", key);
		return CAS_EIO;
	}
	return CAS_OK;
}

static bool reserve(void *pp, size_t *cap, size_t need, size_t size)
{
	void **p = pp;
	size_t n = *cap ? *cap : 16;
	void *q;

	if (need <= *cap)
		return true;
	while (n < need)
		n *= 2;
	q = realloc(*p, n * size);
	if (!q)
		return false;
	*p = q;
	*cap = n;
	return true;
}

/* Appends a log entry for key's new record rec to the batch; its epoch,
 * seq and checksum are filled in by seal_entries. */
static int append_entry(struct cas_store *s, const char *key, size_t key_len,
			const unsigned char *rec, size_t rec_len)
{
	size_t len = 2 + key_len + rec_len;
	unsigned char *p;

	if (rec_len > UINT32_MAX - 2 - key_len)
		return CAS_ETOOBIG;
	if (!reserve(&s->buf, &s->buf_cap, s->buf_len + WAL_HEADER + len, 1))
		return CAS_ENOMEM;
	p = s->buf + s->buf_len;
	memset(p, 0, WAL_HEADER);
	cas_put_le32(p, WAL_MAGIC);
	cas_put_le32(p + 4, (uint32_t)len);
	cas_put_le16(p + WAL_HEADER, (uint16_t)key_len);
	memcpy(p + WAL_HEADER + 2, key, key_len);
	memcpy(p + WAL_HEADER + 2 + key_len, rec, rec_len);
	s->buf_len += WAL_HEADER + len;
	return CAS_OK;
}

static void seal_entries(struct cas_store *s)
{
	unsigned char *p;
	size_t off, len;
	uint32_t crc;

	for (off = 0; off < s->buf_len; off += WAL_HEADER + len) {
		p = s->buf + off;
		len = cas_get_le32(p + 4);
		cas_put_le64(p + 8, s->epoch);
		cas_put_le64(p + 16, ++s->seq);
		crc = cas_crc32c(0, p, 24);
		crc = cas_crc32c(crc, p + WAL_HEADER, len);
		cas_put_le32(p + 24, crc);
	}
}

/* Fails op alone with err (its reason already in op->errmsg); its reply
 * is dropped. The batch goes on without it. */
static void fail_op(struct cas_store_op *op, int err)
{
	cas_msg_clear(&op->reply);
	op->err = err;
	op->failed = true;
}

/* Runs the acceptor rules for op against the state the batch sees, and
 * stages the changed record: the memtable entry's pending record and a log
 * entry. On error op has failed alone and nothing of it is staged. */
static void apply_op(struct cas_store *s, struct cas_store_op *op)
{
	const struct cas_msg *req = op->req;
	size_t len = strlen(req->key), rec_len;
	uint32_t hash = (uint32_t)cas_fnv1a(CAS_FNV1A_INIT, req->key, len);
	struct cas_acceptor_state st;
	struct mem_entry *e;
	unsigned char *rec;
	struct cas_msg out;
	bool in_lmdb;
	int err;

	err = batch_state(s, req->key, len, hash, &st, &e, &in_lmdb, op->errmsg,
			  sizeof(op->errmsg));
	if (err)
		goto out_fail;
	if (!cas_acceptor_handle(&st, req, &out)) {
		/* A reject borrows nothing and persists nothing. */
		out.value.data = NULL;
		out.value.len = 0;
		op->reply = out;
		return;
	}
	/* out.value borrows from the state read or from req: take a copy
	 * before the staged record replaces it. */
	op->reply = out;
	err = cas_reg_copy(&op->reply.value, &out.value);
	if (err) {
		cas_errmsg_set(op->errmsg, sizeof(op->errmsg), "store: out of memory");
		goto out_fail;
	}
	err = encode_record(&st, &rec, &rec_len);
	if (err) {
		cas_errmsg_set(op->errmsg, sizeof(op->errmsg), "store: cannot lay out record: %s",
			       cas_strerror(err));
		goto out_fail;
	}
	err = CAS_ENOMEM;
	if (!reserve(&s->touched, &s->touched_cap, s->n_touched + 1, sizeof(*s->touched)))
		goto out_free_rec;
	if (!e) {
		pthread_mutex_lock(&s->mem_lock);
		e = mem_add(&s->mem, req->key, len, hash, !in_lmdb);
		pthread_mutex_unlock(&s->mem_lock);
		if (!e)
			goto out_free_rec;
	}
	err = append_entry(s, req->key, len, rec, rec_len);
	if (err)
		goto out_free_rec;
	if (!e->pending)
		s->touched[s->n_touched++] = e;
	free(e->pending);
	e->pending = rec;
	e->pending_len = rec_len;
	op->changed = true;
	return;

out_free_rec:
	free(rec);
	cas_errmsg_set(op->errmsg, sizeof(op->errmsg), "store: %s", cas_strerror(err));
out_fail:
	fail_op(op, err);
}

/* Drops what the batch staged. */
static void discard_staged(struct cas_store *s)
{
	size_t i;

	for (i = 0; i < s->n_touched; i++) {
		free(s->touched[i]->pending);
		s->touched[i]->pending = NULL;
		s->touched[i]->pending_len = 0;
	}
	s->n_touched = 0;
	s->buf_len = 0;
}

/* The staged records are durable: readers see them from now on. in_lmdb:
 * they were written into LMDB, not the log. */
static void promote_staged(struct cas_store *s, bool in_lmdb)
{
	struct mem_entry *e;
	size_t i;

	pthread_mutex_lock(&s->mem_lock);
	for (i = 0; i < s->n_touched; i++) {
		e = s->touched[i];
		if (in_lmdb) {
			if (e->fresh && e->rec)
				s->mem.n_fresh--;
			e->fresh = false;
		} else if (e->fresh && !e->rec) {
			s->mem.n_fresh++;
		}
		free(e->rec);
		e->rec = e->pending;
		e->rec_len = e->pending_len;
		e->pending = NULL;
		e->pending_len = 0;
	}
	pthread_mutex_unlock(&s->mem_lock);
	s->n_touched = 0;
	s->buf_len = 0;
}

/* Writes every durable memtable record into LMDB in one synchronous
 * transaction that also moves the log to the next epoch, then starts the
 * log over. On failure nothing changed: the log still holds the records. */
static int checkpoint(struct cas_store *s, char *errmsg, size_t errmsg_len)
{
	unsigned char ep[8];
	struct mem_entry *e;
	MDB_val k, v;
	MDB_txn *txn;
	size_t i;
	int rc;

	if (!s->mem.n && !s->wal_off)
		return CAS_OK;
	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc)
		return lmdb_err(rc, "checkpoint: mdb_txn_begin", errmsg, errmsg_len);
	for (i = 0; i < s->mem.n_buckets; i++) {
		for (e = s->mem.buckets[i]; e; e = e->next) {
			if (!e->rec)
				continue;
			k.mv_size = e->key_len;
			k.mv_data = e->key;
			v.mv_size = e->rec_len;
			v.mv_data = e->rec;
			rc = mdb_put(txn, s->dbi, &k, &v, 0);
			if (rc)
				goto out_abort;
		}
	}
	cas_put_le64(ep, s->epoch + 1);
	k.mv_size = EPOCH_KEY_LEN;
	k.mv_data = (void *)epoch_key;
	v.mv_size = sizeof(ep);
	v.mv_data = ep;
	rc = mdb_put(txn, s->dbi, &k, &v, 0);
	if (rc)
		goto out_abort;
	rc = mdb_txn_commit(txn);
	if (rc)
		return lmdb_err(rc, "checkpoint: mdb_txn_commit", errmsg, errmsg_len);
	pthread_mutex_lock(&s->mem_lock);
	mem_drop_durable(&s->mem);
	pthread_mutex_unlock(&s->mem_lock);
	s->epoch++;
	s->seq = 0;
	s->wal_off = 0;
	pthread_mutex_lock(&s->lock);
	s->stats.checkpoints++;
	pthread_mutex_unlock(&s->lock);
	return CAS_OK;

out_abort:
	mdb_txn_abort(txn);
	return lmdb_err(rc, "checkpoint: mdb_put", errmsg, errmsg_len);
}

/* A batch too large for the log: after a checkpoint, its records go
 * straight into LMDB in one synchronous transaction. */
static int write_direct(struct cas_store *s, char *errmsg, size_t errmsg_len)
{
	struct mem_entry *e;
	MDB_val k, v;
	MDB_txn *txn;
	size_t i;
	int rc, err;

	err = checkpoint(s, errmsg, errmsg_len);
	if (err)
		return err;
	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc)
		return lmdb_err(rc, "mdb_txn_begin", errmsg, errmsg_len);
	for (i = 0; i < s->n_touched; i++) {
		e = s->touched[i];
		k.mv_size = e->key_len;
		k.mv_data = e->key;
		v.mv_size = e->pending_len;
		v.mv_data = e->pending;
		rc = mdb_put(txn, s->dbi, &k, &v, 0);
		if (rc) {
			mdb_txn_abort(txn);
			return lmdb_err(rc, "mdb_put", errmsg, errmsg_len);
		}
	}
	rc = mdb_txn_commit(txn);
	if (rc)
		return lmdb_err(rc, "mdb_txn_commit", errmsg, errmsg_len);
	promote_staged(s, true);
	return CAS_OK;
}

static int pwrite_all(int fd, const unsigned char *p, size_t n, off_t off)
{
	ssize_t w;

	while (n) {
		w = pwrite(fd, p, n, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

static size_t block_up(size_t n)
{
	return (n + WAL_BLOCK - 1) & ~(size_t)(WAL_BLOCK - 1);
}

/* Writes the sealed entries at s->wal_off and returns once they are
 * durable: whole blocks with O_DIRECT | O_DSYNC (the partial block they
 * start in rewritten from s->wal_tail), which spares the page cache and lets
 * the disk write through instead of flushing its cache; or, where the
 * file system takes no direct writes, pwrite and fdatasync. Returns 0, or
 * -1 with errno. */
static int append_log(struct cas_store *s)
{
	size_t start = s->wal_off & ~(size_t)(WAL_BLOCK - 1), head = s->wal_off - start;
	size_t len = block_up(head + s->buf_len), end = s->wal_off + s->buf_len;
	void *p;

	if (s->wal_dfd < 0)
		goto buffered;
	if (len > s->dbuf_cap) {
		if (posix_memalign(&p, WAL_BLOCK, len)) {
			errno = ENOMEM;
			return -1;
		}
		free(s->dbuf);
		s->dbuf = p;
		s->dbuf_cap = len;
	}
	memcpy(s->dbuf, s->wal_tail, head);
	memcpy(s->dbuf + head, s->buf, s->buf_len);
	memset(s->dbuf + head + s->buf_len, 0, len - head - s->buf_len);
	if (pwrite_all(s->wal_dfd, s->dbuf, len, (off_t)start)) {
		if (errno != EINVAL)
			return -1;
		/* Direct writes refused after all: buffered from now on. */
		close(s->wal_dfd);
		__atomic_store_n(&s->wal_dfd, -1, __ATOMIC_RELAXED);
		goto buffered;
	}
	memcpy(s->wal_tail, s->dbuf + (end & ~(size_t)(WAL_BLOCK - 1)) - start,
	       end & (WAL_BLOCK - 1));
	return 0;

buffered:
	if (pwrite_all(s->wal_fd, s->buf, s->buf_len, (off_t)s->wal_off) || fdatasync(s->wal_fd))
		return -1;
	return 0;
}

/* Makes the staged batch durable: appended to the log and fdatasynced
 * (after a checkpoint when the log is too full for it), or written into
 * LMDB when it is too large for the log. On failure it stays staged. */
static int write_staged(struct cas_store *s, char *errmsg, size_t errmsg_len)
{
	int err;

	if (s->buf_len > s->wal_size / 4)
		return write_direct(s, errmsg, errmsg_len);
	if (block_up(s->wal_off + s->buf_len) > s->wal_size) {
		err = checkpoint(s, errmsg, errmsg_len);
		if (err)
			return err;
	}
	/* Paper, section 2.2: persist before answering. A failed write
	 * leaves the offset where it was; the next batch overwrites what
	 * this one may have left, with higher seqs, so that a replay never
	 * takes this batch's entries after the next one's. */
	seal_entries(s);
	if (append_log(s)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: write-ahead log: %s", strerror(errno));
		return CAS_EIO;
	}
	s->wal_off += s->buf_len;
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

/* Applies batch in order and makes its changes durable at once: every op
 * ends with its reply, or failed. An op whose own step fails (a corrupt
 * record, no memory, an LMDB error) fails alone; a failed write fails
 * them all. Returns how many changes were made durable. The caller is the
 * only one writing a batch (busy). */
static size_t write_batch(struct cas_store *s, struct cas_store_op *batch)
{
	struct cas_store_op *op;
	char errmsg[256];
	size_t changes = 0;
	int rc, err;

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
		return 0;
	}
	return changes;
}

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

/* Takes the log's entries of the current epoch into the memtable, in
 * order, then checkpoints them into LMDB. An entry that checks but does
 * not decode is corruption, not a torn write: the store does not open. */
static int replay(struct cas_store *s, const unsigned char *map, size_t size, const char *path,
		  char *errmsg, size_t errmsg_len)
{
	size_t off = 0, len, key_len, rec_len;
	const unsigned char *p, *rec;
	struct cas_acceptor_state st;
	struct mem_entry *e;
	uint64_t last = 0, seq, n = 0;
	uint32_t crc, hash;
	const char *key;

	while (size - off >= WAL_HEADER + 2) {
		p = map + off;
		len = cas_get_le32(p + 4);
		seq = cas_get_le64(p + 16);
		if (cas_get_le32(p) != WAL_MAGIC || cas_get_le64(p + 8) != s->epoch || seq <= last ||
		    len < 2 || len > size - off - WAL_HEADER)
			break;
		crc = cas_crc32c(0, p, 24);
		if (cas_crc32c(crc, p + WAL_HEADER, len) != cas_get_le32(p + 24))
			break;
		key_len = cas_get_le16(p + WAL_HEADER);
		key = (const char *)p + WAL_HEADER + 2;
		rec = p + WAL_HEADER + 2 + key_len;
		rec_len = len - 2 - key_len;
		if (key_len > len - 2 || !cas_key_valid(key, key_len) ||
		    !decode_record(rec, rec_len, &st)) {
			cas_errmsg_set(errmsg, errmsg_len, "store: %s: bad entry at offset %zu",
				       path, off);
			return CAS_EIO;
		}
		hash = (uint32_t)cas_fnv1a(CAS_FNV1A_INIT, key, key_len);
		e = mem_find(&s->mem, key, key_len, hash);
		if (!e)
			e = mem_add(&s->mem, key, key_len, hash, false);
		if (!e)
			goto out_nomem;
		free(e->rec);
		e->rec = malloc(rec_len ? rec_len : 1);
		if (!e->rec)
			goto out_nomem;
		memcpy(e->rec, rec, rec_len);
		e->rec_len = rec_len;
		last = seq;
		off += WAL_HEADER + len;
		n++;
	}
	s->stats.replayed = n;
	s->wal_off = off;
	return n ? checkpoint(s, errmsg, errmsg_len) : CAS_OK;

out_nomem:
	cas_errmsg_set(errmsg, errmsg_len, "store: out of memory replaying %s", path);
	return CAS_ENOMEM;
}

/* Writes the log file in full to size bytes of zeroes, so that appends
 * overwrite allocated blocks. */
static int fill_wal(int fd, size_t size)
{
	unsigned char *z = calloc(1, WAL_FILL_CHUNK);
	size_t off, n;
	int rc = -1;

	if (!z)
		return -1;
	if (ftruncate(fd, (off_t)size))
		goto out_free;
	for (off = 0; off < size; off += n) {
		n = size - off < WAL_FILL_CHUNK ? size - off : WAL_FILL_CHUNK;
		if (pwrite_all(fd, z, n, (off_t)off))
			goto out_free;
	}
	rc = fdatasync(fd);
out_free:
	free(z);
	return rc;
}

/* Opens the log in dir (creating it when missing), replays it, and sizes
 * it to s->wal_size. */
static int open_wal(struct cas_store *s, const char *dir, char *errmsg, size_t errmsg_len)
{
	char path[4096];
	struct stat sb;
	void *map;
	int fd, err;

	if ((size_t)snprintf(path, sizeof(path), "%s/" WAL_NAME, dir) >= sizeof(path)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: folder name too long: %s", dir);
		return CAS_EINVAL;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &sb)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: %s: %s", path, strerror(errno));
		err = CAS_EIO;
		goto out_close;
	}
	if (sb.st_size > 0) {
		map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			cas_errmsg_set(errmsg, errmsg_len, "store: mmap %s: %s", path,
				       strerror(errno));
			err = CAS_EIO;
			goto out_close;
		}
		err = replay(s, map, (size_t)sb.st_size, path, errmsg, errmsg_len);
		munmap(map, (size_t)sb.st_size);
		if (err)
			goto out_close;
	}
	if ((size_t)sb.st_size != s->wal_size) {
		if (fill_wal(fd, s->wal_size)) {
			cas_errmsg_set(errmsg, errmsg_len, "store: cannot write %s: %s", path,
				       strerror(errno));
			err = CAS_EIO;
			goto out_close;
		}
		/* Old entries are gone: none of them was replayed, or a
		 * checkpoint took them. */
		s->wal_off = 0;
	}
	s->wal_fd = fd;
	/* Where the file system takes no direct writes, or when asked, the
	 * log is written through the page cache and fdatasynced. */
	if (!s->buffered_log)
		s->wal_dfd = open(path, O_WRONLY | O_DIRECT | O_DSYNC | O_CLOEXEC);
	return CAS_OK;

out_close:
	if (fd >= 0)
		close(fd);
	return err;
}

/* Reads the log's epoch from LMDB (0 when there is none yet). */
static int read_epoch(struct cas_store *s, MDB_txn *txn, char *errmsg, size_t errmsg_len)
{
	MDB_val k = {EPOCH_KEY_LEN, (void *)epoch_key}, v;
	int rc;

	rc = mdb_get(txn, s->dbi, &k, &v);
	if (rc == MDB_NOTFOUND)
		return CAS_OK;
	if (rc)
		return lmdb_err(rc, "mdb_get", errmsg, errmsg_len);
	if (v.mv_size != 8) {
		cas_errmsg_set(errmsg, errmsg_len, "store: corrupt log epoch");
		return CAS_EIO;
	}
	s->epoch = cas_get_le64(v.mv_data);
	return CAS_OK;
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
	s->wal_fd = -1;
	s->wal_dfd = -1;
	s->wal_size = cfg && cfg->wal_size ? cfg->wal_size : CAS_STORE_DEFAULT_WAL_SIZE;
	s->wal_size &= ~(size_t)(WAL_BLOCK - 1);
	s->buffered_log = cfg && cfg->buffered_log;
	if (s->wal_size < CAS_STORE_MIN_WAL_SIZE) {
		cas_errmsg_set(errmsg, errmsg_len,
			       "store: write-ahead log of %zu bytes is below the minimum of %zu",
			       s->wal_size, CAS_STORE_MIN_WAL_SIZE);
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
		err = lmdb_err(rc, "mdb_env_create", errmsg, errmsg_len);
		goto out_destroy_cond;
	}
	rc = mdb_env_set_mapsize(s->env, map_size);
	if (rc) {
		err = lmdb_err(rc, "mdb_env_set_mapsize", errmsg, errmsg_len);
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
		err = lmdb_err(rc, "mdb_reader_check", errmsg, errmsg_len);
		goto out_close_env;
	}
	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc) {
		err = lmdb_err(rc, "mdb_txn_begin", errmsg, errmsg_len);
		goto out_close_env;
	}
	rc = mdb_dbi_open(txn, NULL, 0, &s->dbi);
	if (rc) {
		err = lmdb_err(rc, "mdb_dbi_open", errmsg, errmsg_len);
		goto out_abort_txn;
	}
	err = read_epoch(s, txn, errmsg, errmsg_len);
	if (err)
		goto out_abort_txn;
	rc = mdb_txn_commit(txn);
	if (rc) {
		err = lmdb_err(rc, "mdb_txn_commit", errmsg, errmsg_len);
		goto out_close_env;
	}
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->rtxn);
	if (rc) {
		err = lmdb_err(rc, "mdb_txn_begin", errmsg, errmsg_len);
		goto out_close_env;
	}
	mdb_txn_reset(s->rtxn);
	err = open_wal(s, dir, errmsg, errmsg_len);
	if (err)
		goto out_abort_rtxn;
	/* LMDB and the log sync their files, not their names: make a
	 * freshly created store survive a power loss too. */
	if (sync_dir(dir)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: fsync %s: %s", dir, strerror(errno));
		err = CAS_EIO;
		goto out_close_wal;
	}
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
	close(s->wal_fd);
	if (s->wal_dfd >= 0)
		close(s->wal_dfd);
out_abort_rtxn:
	mdb_txn_abort(s->rtxn);
	mem_free(&s->mem);
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
	(void)checkpoint(s, errmsg, sizeof(errmsg));
	close(s->wal_fd);
	if (s->wal_dfd >= 0)
		close(s->wal_dfd);
	mdb_txn_abort(s->rtxn);
	mdb_env_close(s->env);
	mem_free(&s->mem);
	free(s->buf);
	free(s->dbuf);
	free(s->touched);
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

		changes = write_batch(s, batch);

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
	if (op->req->type != CAS_MSG_PREPARE && op->req->type != CAS_MSG_ACCEPT) {
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

	changes = write_batch(s, op);

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
	out->direct_log = __atomic_load_n(&s->wal_dfd, __ATOMIC_RELAXED) >= 0;
	pthread_mutex_unlock(&s->lock);
}

/* Decodes rec (key's) into *out with a copy of its value bytes. */
static int copy_state(const char *key, const unsigned char *rec, size_t rec_len,
		      struct cas_acceptor_state *out, char *errmsg, size_t errmsg_len)
{
	struct cas_acceptor_state st;

	if (!decode_record(rec, rec_len, &st)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: corrupt record for key \"%s\"", key);
		return CAS_EIO;
	}
	*out = st;
	if (cas_reg_copy(&out->value, &st.value)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: out of memory");
		memset(out, 0, sizeof(*out));
		return CAS_ENOMEM;
	}
	return CAS_OK;
}

int cas_store_get(struct cas_store *s, const char *key, struct cas_acceptor_state *out,
		  char *errmsg, size_t errmsg_len)
{
	size_t len, rec_len = 0;
	unsigned char *rec = NULL;
	struct mem_entry *e;
	bool found = false;
	MDB_val k, v;
	MDB_txn *txn;
	int rc, err;

	memset(out, 0, sizeof(*out));
	err = check_key(key, errmsg, errmsg_len);
	if (err)
		return err;
	/* The memtable first: a key absent there is, at this moment, as
	 * LMDB has it (a checkpoint writes LMDB before it drops entries). */
	len = strlen(key);
	pthread_mutex_lock(&s->mem_lock);
	e = mem_find(&s->mem, key, len, (uint32_t)cas_fnv1a(CAS_FNV1A_INIT, key, len));
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
		err = copy_state(key, rec, rec_len, out, errmsg, errmsg_len);
		free(rec);
		return err;
	}
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return lmdb_err(rc, "mdb_txn_begin", errmsg, errmsg_len);
	k.mv_size = len;
	k.mv_data = (void *)key;
	rc = mdb_get(txn, s->dbi, &k, &v);
	if (rc == MDB_NOTFOUND)
		err = CAS_OK;
	else if (rc)
		err = lmdb_err(rc, "mdb_get", errmsg, errmsg_len);
	else
		err = copy_state(key, v.mv_data, v.mv_size, out, errmsg, errmsg_len);
	mdb_txn_abort(txn);
	return err;
}

int cas_store_count(struct cas_store *s, uint64_t *out, char *errmsg, size_t errmsg_len)
{
	MDB_val k = {EPOCH_KEY_LEN, (void *)epoch_key}, v;
	MDB_txn *txn;
	MDB_stat stat;
	int rc;

	*out = 0;
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return lmdb_err(rc, "mdb_txn_begin", errmsg, errmsg_len);
	rc = mdb_stat(txn, s->dbi, &stat);
	if (!rc && mdb_get(txn, s->dbi, &k, &v) == 0 && stat.ms_entries)
		stat.ms_entries--; /* the log's epoch is not a register */
	mdb_txn_abort(txn);
	if (rc)
		return lmdb_err(rc, "mdb_stat", errmsg, errmsg_len);
	pthread_mutex_lock(&s->mem_lock);
	*out = stat.ms_entries + s->mem.n_fresh;
	pthread_mutex_unlock(&s->mem_lock);
	return CAS_OK;
}

/* store_lmdb.c - the acceptor's durable state in LMDB (see store_lmdb.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "errmsg.h"
#include "store_lmdb.h"

#define REC_HEADER 48 /* bytes before the recent changes */
#define REC_RECENT 24 /* bytes of one recent change */

struct cas_store {
	MDB_env *env;
	MDB_dbi dbi;
	pthread_t writer;
	pthread_mutex_t lock;	   /* guards the fields below */
	pthread_cond_t work;	   /* the writer has something to do */
	struct cas_store_op *head; /* requests waiting for the next batch */
	struct cas_store_op **tail;
	size_t waiting;
	bool held;     /* cas_store_hold */
	bool stopping; /* cas_store_close: write what is queued, then end */
	struct cas_store_stats stats;
	int (*fault)(void *arg, const struct cas_msg *req);
	void *fault_arg;
};

/* Maps an LMDB failure of call to a code, its reason into errmsg. */
static int lmdb_err(int rc, const char *call, char *errmsg, size_t errmsg_len)
{
	cas_errmsg_set(errmsg, errmsg_len, "lmdb: %s: %s", call, mdb_strerror(rc));
	return rc == ENOMEM ? CAS_ENOMEM : CAS_EIO;
}

static void put_u64(unsigned char *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_u64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Reads a record into st; st->value.data points into rec. */
static bool decode_record(const MDB_val *rec, struct cas_acceptor_state *st)
{
	const unsigned char *p = rec->mv_data;
	size_t size = rec->mv_size, n, i, off;
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
	st->promise.counter = get_u64(p + 8);
	st->promise.id = get_u64(p + 16);
	st->accepted.counter = get_u64(p + 24);
	st->accepted.id = get_u64(p + 32);
	st->value.version = get_u64(p + 40);
	for (i = 0; i < n; i++) {
		const unsigned char *r = p + REC_HEADER + REC_RECENT * i;

		st->value.recent[i].proposer = get_u64(r);
		st->value.recent[i].op = get_u64(r + 8);
		st->value.recent[i].version = get_u64(r + 16);
	}
	st->value.n_recent = (uint32_t)n;
	off = REC_HEADER + REC_RECENT * n;
	len = get_u64(p + off);
	off += 8;
	if (len != size - off)
		return false;
	st->value.len = (size_t)len;
	st->value.data = len ? (unsigned char *)p + off : NULL;
	return true;
}

/* Lays st out as a record in a malloc'd buffer. */
static int encode_record(const struct cas_acceptor_state *st, MDB_val *rec)
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
	put_u64(p + 8, st->promise.counter);
	put_u64(p + 16, st->promise.id);
	put_u64(p + 24, st->accepted.counter);
	put_u64(p + 32, st->accepted.id);
	put_u64(p + 40, st->value.version);
	for (i = 0; i < n; i++) {
		unsigned char *r = p + REC_HEADER + REC_RECENT * i;

		put_u64(r, st->value.recent[i].proposer);
		put_u64(r + 8, st->value.recent[i].op);
		put_u64(r + 16, st->value.recent[i].version);
	}
	put_u64(p + off - 8, st->value.len);
	if (st->value.len)
		memcpy(p + off, st->value.data, st->value.len);
	rec->mv_data = p;
	rec->mv_size = off + st->value.len;
	return CAS_OK;
}

/* Reads key's state in txn into *st (zeroes when never seen); st->value
 * borrows from the map and is valid while txn is unchanged. */
static int read_state(MDB_txn *txn, MDB_dbi dbi, const char *key, struct cas_acceptor_state *st,
		      char *errmsg, size_t errmsg_len)
{
	MDB_val k = {strlen(key), (void *)key}, v;
	int rc;

	memset(st, 0, sizeof(*st));
	rc = mdb_get(txn, dbi, &k, &v);
	if (rc == MDB_NOTFOUND)
		return CAS_OK;
	if (rc)
		return lmdb_err(rc, "mdb_get", errmsg, errmsg_len);
	if (!decode_record(&v, st)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: corrupt record for key \"%s\"", key);
		return CAS_EIO;
	}
	return CAS_OK;
}

static void *writer_main(void *arg);

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

int cas_store_open(const char *dir, size_t map_size, struct cas_store **out, char *errmsg,
		   size_t errmsg_len)
{
	struct cas_store *s;
	MDB_txn *txn;
	int rc, dead, err;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s) {
		cas_errmsg_set(errmsg, errmsg_len, "store: out of memory");
		return CAS_ENOMEM;
	}
	s->tail = &s->head;
	if (pthread_mutex_init(&s->lock, NULL)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: cannot make a mutex");
		err = CAS_ENOMEM;
		goto out_free_store;
	}
	if (pthread_cond_init(&s->work, NULL)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: cannot make a condition variable");
		err = CAS_ENOMEM;
		goto out_destroy_lock;
	}
	rc = mdb_env_create(&s->env);
	if (rc) {
		err = lmdb_err(rc, "mdb_env_create", errmsg, errmsg_len);
		goto out_destroy_cond;
	}
	rc = mdb_env_set_mapsize(s->env,
				 map_size ? map_size : (size_t)CAS_STORE_DEFAULT_MAP_MIB << 20);
	if (rc) {
		err = lmdb_err(rc, "mdb_env_set_mapsize", errmsg, errmsg_len);
		goto out_close_env;
	}
	/* MDB_NOTLS: readers run on server threads from a pool. Never
	 * MDB_NOSYNC or MDB_NOMETASYNC: a commit is the fsync that makes a
	 * batch of promises durable. */
	rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600);
	if (rc) {
		cas_errmsg_set(errmsg, errmsg_len, "lmdb: mdb_env_open %s: %s", dir, mdb_strerror(rc));
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
	rc = mdb_txn_commit(txn);
	if (rc) {
		err = lmdb_err(rc, "mdb_txn_commit", errmsg, errmsg_len);
		goto out_close_env;
	}
	/* LMDB syncs its files, not their names: make a freshly created
	 * store survive a power loss too. */
	if (sync_dir(dir)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: fsync %s: %s", dir, strerror(errno));
		err = CAS_EIO;
		goto out_close_env;
	}
	rc = pthread_create(&s->writer, NULL, writer_main, s);
	if (rc) {
		cas_errmsg_set(errmsg, errmsg_len, "store: cannot start the writer: %s", strerror(rc));
		err = CAS_ENOMEM;
		goto out_close_env;
	}
	*out = s;
	return CAS_OK;

out_abort_txn:
	mdb_txn_abort(txn);
out_close_env:
	mdb_env_close(s->env);
out_destroy_cond:
	pthread_cond_destroy(&s->work);
out_destroy_lock:
	pthread_mutex_destroy(&s->lock);
out_free_store:
	free(s);
	return err;
}

void cas_store_close(struct cas_store *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->writer, NULL);
	mdb_env_close(s->env);
	pthread_cond_destroy(&s->work);
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

/* Fails op alone with err (its reason already in op->errmsg); its reply
 * is dropped. The batch goes on without it. */
static void fail_op(struct cas_store_op *op, int err)
{
	cas_msg_clear(&op->reply);
	op->err = err;
	op->failed = true;
}

/* Runs the acceptor rules for op in txn, writing the changed record. On
 * error op has failed and txn must be aborted: an LMDB call that failed
 * may have left it unusable. */
static int apply_op(struct cas_store *s, MDB_txn *txn, struct cas_store_op *op)
{
	const struct cas_msg *req = op->req;
	struct cas_acceptor_state st;
	struct cas_msg out;
	MDB_val k, rec;
	int rc, err;

	err = read_state(txn, s->dbi, req->key, &st, op->errmsg, sizeof(op->errmsg));
	if (err)
		goto out_fail;
	if (!cas_acceptor_handle(&st, req, &out)) {
		/* A reject borrows nothing and persists nothing. */
		out.value.data = NULL;
		out.value.len = 0;
		op->reply = out;
		return CAS_OK;
	}
	/* out.value borrows from the map or from req: take a copy now, the
	 * writes below may move the record it points into. */
	op->reply = out;
	err = cas_reg_copy(&op->reply.value, &out.value);
	if (err) {
		cas_errmsg_set(op->errmsg, sizeof(op->errmsg), "store: out of memory");
		goto out_fail;
	}
	err = encode_record(&st, &rec);
	if (err) {
		cas_errmsg_set(op->errmsg, sizeof(op->errmsg), "store: cannot lay out record: %s",
		       cas_strerror(err));
		goto out_fail;
	}
	k.mv_size = strlen(req->key);
	k.mv_data = (void *)req->key;
	rc = mdb_put(txn, s->dbi, &k, &rec, 0);
	free(rec.mv_data);
	if (rc) {
		err = lmdb_err(rc, "mdb_put", op->errmsg, sizeof(op->errmsg));
		goto out_fail;
	}
	op->changed = true;
	return CAS_OK;

out_fail:
	fail_op(op, err);
	return err;
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

/* Applies batch in order in one write transaction and commits it: every
 * op ends with its reply, or failed. An op whose own step fails (a
 * corrupt record, no memory, an LMDB error) is left out and the others
 * run again in a fresh transaction, since a failed LMDB call may leave the
 * transaction unusable. A failed commit fails them all. Returns how many
 * changes were committed. */
static size_t write_batch(struct cas_store *s, struct cas_store_op *batch)
{
	struct cas_store_op *op;
	size_t changes;
	MDB_txn *txn;
	int rc;

again:
	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc) {
		fail_batch(batch, rc == ENOMEM ? CAS_ENOMEM : CAS_EIO, "lmdb: mdb_txn_begin: %s",
			   mdb_strerror(rc));
		return 0;
	}
	changes = 0;
	for (op = batch; op; op = op->next) {
		if (op->failed)
			continue;
		if (apply_op(s, txn, op)) {
			/* Undo the others' replies: they run again. */
			mdb_txn_abort(txn);
			for (op = batch; op; op = op->next) {
				if (!op->failed)
					cas_msg_clear(&op->reply);
				op->changed = false;
			}
			goto again;
		}
		changes += op->changed;
	}
	if (!changes) {
		/* Rejects only: nothing to make durable. */
		mdb_txn_abort(txn);
		return 0;
	}
	for (op = batch; op && s->fault; op = op->next) {
		if (op->changed && s->fault(s->fault_arg, op->req)) {
			mdb_txn_abort(txn);
			fail_batch(batch, CAS_EIO, "store: injected commit failure");
			return 0;
		}
	}
	/* Paper, section 2.2: persist before answering. One synchronous
	 * commit (fsync) makes the whole batch durable; a failed one leaves
	 * the previous state, and every request of the batch fails. */
	rc = mdb_txn_commit(txn);
	if (rc) {
		fail_batch(batch, rc == ENOMEM ? CAS_ENOMEM : CAS_EIO, "lmdb: mdb_txn_commit: %s",
			   mdb_strerror(rc));
		return 0;
	}
	return changes;
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
		while ((!s->head || s->held) && !s->stopping)
			pthread_cond_wait(&s->work, &s->lock);
		if (!s->head)
			break; /* stopping, nothing left */
		batch = s->head;
		n = s->waiting;
		s->head = NULL;
		s->tail = &s->head;
		s->waiting = 0;
		pthread_mutex_unlock(&s->lock);

		changes = write_batch(s, batch);

		/* Counted before any reply leaves: a caller holding its
		 * reply sees its batch in the stats. */
		pthread_mutex_lock(&s->lock);
		if (changes) {
			s->stats.commits++;
			s->stats.changes += changes;
			if (n > s->stats.largest_batch)
				s->stats.largest_batch = n;
		}
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

int cas_store_submit(struct cas_store *s, struct cas_store_op *op)
{
	op->err = CAS_OK;
	op->errmsg[0] = '\0';
	memset(&op->reply, 0, sizeof(op->reply));
	op->next = NULL;
	op->changed = false;
	op->failed = false;
	if (op->req->type != CAS_MSG_PREPARE && op->req->type != CAS_MSG_ACCEPT) {
		cas_errmsg_set(op->errmsg, sizeof(op->errmsg), "store: not a request");
		return CAS_EINVAL;
	}
	op->err = check_key(op->req->key, op->errmsg, sizeof(op->errmsg));
	if (op->err)
		return op->err;
	pthread_mutex_lock(&s->lock);
	*s->tail = op;
	s->tail = &op->next;
	s->waiting++;
	pthread_cond_signal(&s->work);
	pthread_mutex_unlock(&s->lock);
	return CAS_OK;
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
	err = cas_store_submit(s, &w->op);
	if (!err) {
		pthread_mutex_lock(&w->lock);
		while (!w->done)
			pthread_cond_wait(&w->cond, &w->lock);
		pthread_mutex_unlock(&w->lock);
		err = w->op.err;
		*reply = w->op.reply;
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
	pthread_mutex_unlock(&s->lock);
}

int cas_store_get(struct cas_store *s, const char *key, struct cas_acceptor_state *out,
		  char *errmsg, size_t errmsg_len)
{
	struct cas_acceptor_state st;
	MDB_txn *txn;
	int rc, err;

	memset(out, 0, sizeof(*out));
	err = check_key(key, errmsg, errmsg_len);
	if (err)
		return err;
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return lmdb_err(rc, "mdb_txn_begin", errmsg, errmsg_len);
	err = read_state(txn, s->dbi, key, &st, errmsg, errmsg_len);
	if (err)
		goto out_abort_txn;
	*out = st;
	err = cas_reg_copy(&out->value, &st.value);
	if (err) {
		cas_errmsg_set(errmsg, errmsg_len, "store: out of memory");
		memset(out, 0, sizeof(*out));
	}

out_abort_txn:
	mdb_txn_abort(txn);
	return err;
}

int cas_store_count(struct cas_store *s, uint64_t *out, char *errmsg, size_t errmsg_len)
{
	MDB_txn *txn;
	MDB_stat stat;
	int rc;

	*out = 0;
	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return lmdb_err(rc, "mdb_txn_begin", errmsg, errmsg_len);
	rc = mdb_stat(txn, s->dbi, &stat);
	mdb_txn_abort(txn);
	if (rc)
		return lmdb_err(rc, "mdb_stat", errmsg, errmsg_len);
	*out = stat.ms_entries;
	return CAS_OK;
}

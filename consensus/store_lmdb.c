/* store_lmdb.c - the acceptor's durable state in LMDB (see store_lmdb.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lmdb.h>

#include "store_lmdb.h"

#define REC_HEADER 48 /* bytes before the recent ids */

struct cas_store {
	MDB_env *env;
	MDB_dbi dbi;
	int (*fault)(void *arg, const struct cas_msg *req);
	void *fault_arg;
};

__attribute__((format(printf, 3, 4))) static void seterr(char *errmsg, size_t errmsg_len,
							 const char *fmt, ...)
{
	va_list ap;

	if (!errmsg || !errmsg_len)
		return;
	va_start(ap, fmt);
	vsnprintf(errmsg, errmsg_len, fmt, ap);
	va_end(ap);
}

/* Maps an LMDB failure of call to a code, its reason into errmsg. */
static int lmdb_err(int rc, const char *call, char *errmsg, size_t errmsg_len)
{
	seterr(errmsg, errmsg_len, "lmdb: %s: %s", call, mdb_strerror(rc));
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
	if (size < REC_HEADER + 8 * n + 8)
		return false;
	st->promise.counter = get_u64(p + 8);
	st->promise.id = get_u64(p + 16);
	st->accepted.counter = get_u64(p + 24);
	st->accepted.id = get_u64(p + 32);
	st->value.version = get_u64(p + 40);
	for (i = 0; i < n; i++)
		st->value.recent[i] = get_u64(p + REC_HEADER + 8 * i);
	st->value.n_recent = (uint32_t)n;
	off = REC_HEADER + 8 * n;
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
	off = REC_HEADER + 8 * n + 8;
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
	for (i = 0; i < n; i++)
		put_u64(p + REC_HEADER + 8 * i, st->value.recent[i]);
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
		seterr(errmsg, errmsg_len, "store: corrupt record for key \"%s\"", key);
		return CAS_EIO;
	}
	return CAS_OK;
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

int cas_store_open(const char *dir, size_t map_size, struct cas_store **out, char *errmsg,
		   size_t errmsg_len)
{
	struct cas_store *s;
	MDB_txn *txn;
	int rc, dead, err;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s) {
		seterr(errmsg, errmsg_len, "store: out of memory");
		return CAS_ENOMEM;
	}
	rc = mdb_env_create(&s->env);
	if (rc) {
		err = lmdb_err(rc, "mdb_env_create", errmsg, errmsg_len);
		goto out_free_store;
	}
	rc = mdb_env_set_mapsize(s->env,
				 map_size ? map_size : (size_t)CAS_STORE_DEFAULT_MAP_MIB << 20);
	if (rc) {
		err = lmdb_err(rc, "mdb_env_set_mapsize", errmsg, errmsg_len);
		goto out_close_env;
	}
	/* MDB_NOTLS: server threads come from a pool. Never MDB_NOSYNC: a
	 * commit is the fsync that makes a promise durable. */
	rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600);
	if (rc) {
		seterr(errmsg, errmsg_len, "lmdb: mdb_env_open %s: %s", dir, mdb_strerror(rc));
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
		seterr(errmsg, errmsg_len, "store: fsync %s: %s", dir, strerror(errno));
		err = CAS_EIO;
		goto out_close_env;
	}
	*out = s;
	return CAS_OK;

out_abort_txn:
	mdb_txn_abort(txn);
out_close_env:
	mdb_env_close(s->env);
out_free_store:
	free(s);
	return err;
}

void cas_store_close(struct cas_store *s)
{
	if (!s)
		return;
	mdb_env_close(s->env);
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
		seterr(errmsg, errmsg_len, "store: bad key");
		return CAS_EKEY;
	}
	return CAS_OK;
}

int cas_store_handle(struct cas_store *s, const struct cas_msg *req, struct cas_msg *reply,
		     char *errmsg, size_t errmsg_len)
{
	struct cas_acceptor_state st;
	struct cas_msg out, copy;
	MDB_val k, rec;
	MDB_txn *txn;
	int rc, err;

	memset(reply, 0, sizeof(*reply));
	if (req->type != CAS_MSG_PREPARE && req->type != CAS_MSG_ACCEPT) {
		seterr(errmsg, errmsg_len, "store: not a request");
		return CAS_EINVAL;
	}
	err = check_key(req->key, errmsg, errmsg_len);
	if (err)
		return err;
	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc)
		return lmdb_err(rc, "mdb_txn_begin", errmsg, errmsg_len);
	err = read_state(txn, s->dbi, req->key, &st, errmsg, errmsg_len);
	if (err)
		goto out_abort_txn;
	if (!cas_acceptor_handle(&st, req, &out)) {
		/* A reject borrows nothing and persists nothing. */
		mdb_txn_abort(txn);
		out.value.data = NULL;
		out.value.len = 0;
		*reply = out;
		return CAS_OK;
	}
	/* out.value borrows from the map or from req: take a copy now, the
	 * write below may move the record it points into. */
	copy = out;
	err = cas_reg_copy(&copy.value, &out.value);
	if (err) {
		seterr(errmsg, errmsg_len, "store: out of memory");
		goto out_abort_txn;
	}
	err = encode_record(&st, &rec);
	if (err) {
		seterr(errmsg, errmsg_len, "store: cannot lay out record: %s", cas_strerror(err));
		goto out_free_copy;
	}
	k.mv_size = strlen(req->key);
	k.mv_data = (void *)req->key;
	rc = mdb_put(txn, s->dbi, &k, &rec, 0);
	free(rec.mv_data);
	if (rc) {
		err = lmdb_err(rc, "mdb_put", errmsg, errmsg_len);
		goto out_free_copy;
	}
	if (s->fault && s->fault(s->fault_arg, req)) {
		seterr(errmsg, errmsg_len, "store: injected commit failure");
		err = CAS_EIO;
		goto out_free_copy;
	}
	/* Paper, section 2.2: persist before answering. A failed commit
	 * leaves the previous state; the caller answers 500. */
	rc = mdb_txn_commit(txn);
	if (rc) {
		free(copy.value.data);
		return lmdb_err(rc, "mdb_txn_commit", errmsg, errmsg_len);
	}
	*reply = copy;
	return CAS_OK;

out_free_copy:
	free(copy.value.data);
out_abort_txn:
	mdb_txn_abort(txn);
	return err;
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
		seterr(errmsg, errmsg_len, "store: out of memory");
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

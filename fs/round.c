/* round.c - register rounds for the FUSE operations: the only file of the
 * mount that calls the client API (fs/gc.c, casctl's side, is the other
 * caller in fs/). */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cas/bytes.h>
#include <cas/os.h>

#include "fs.h"
#include "txn.h"

static const unsigned char root_id[CASFS_ID_LEN];

int casfs_err_of(int rc)
{
	return -cas_errno(rc);
}

void casfs_op_start(struct op *op, fuse_req_t req)
{
	op->fs = fuse_req_userdata(req);
	cas_os_monotonic(&op->end);
	cas_os_timespec_add_ms(&op->end, op->fs->timeout_ms);
}

/* Milliseconds left before the request's deadline, rounded up; 0 once it
 * has passed. */
static unsigned op_left(const struct op *op)
{
	return cas_os_ms_until(&op->end);
}

/* The stripe of key's lock: one round at a time per register from this
 * mount (fs.h). */
static size_t stripe(const char *key)
{
	return cas_fnv1a(CAS_FNV1A_INIT, key, strlen(key)) & (CASFS_KEY_LOCKS - 1);
}

static pthread_mutex_t *key_lock(struct casfs_fs *fs, const char *key)
{
	return &fs->key_locks[stripe(key)];
}

/* A view of the registers without a request: the root check at mount. */
struct plain {
	struct cas_client *client;
	struct timespec end;
};

/* regs.h over the client. For a request (arg: struct op) each round holds
 * its key's stripe, and every round and sleep ends by the deadline. */

static unsigned op_left_ms(void *arg)
{
	return op_left(arg);
}

static unsigned plain_left_ms(void *arg)
{
	const struct plain *p = arg;

	return cas_os_ms_until(&p->end);
}

static int client_read(struct cas_client *c, unsigned left, const char *key, struct cas_value *out)
{
	memset(out, 0, sizeof(*out));
	return left ? cas_read(c, key, left, out) : CAS_EUNAVAILABLE;
}

static int client_change(struct cas_client *c, unsigned left, const char *key, cas_change_fn fn,
			 void *fn_arg, struct cas_value *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	return left ? cas_change(c, key, fn, fn_arg, left, out) : CAS_EUNAVAILABLE;
}

static int client_del(struct cas_client *c, unsigned left, const char *key, cas_change_fn fn,
		      void *fn_arg, struct cas_value *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	return left ? cas_delete(c, key, fn, fn_arg, left, out) : CAS_EUNAVAILABLE;
}

/* A read's turn (share.h): its key's stripe, until the deadline. */
static int op_turn(void *arg, const char *key)
{
	struct op *op = arg;

	return pthread_mutex_clocklock(key_lock(op->fs, key), CLOCK_MONOTONIC, &op->end)
		       ? CAS_EUNAVAILABLE
		       : CAS_OK;
}

static int op_read_turn(void *arg, const char *key, struct cas_value *out)
{
	struct op *op = arg;
	int rc;

	rc = client_read(op->fs->client, op_left(op), key, out);
	pthread_mutex_unlock(key_lock(op->fs, key));
	return rc;
}

/* Reads of one key that wait for their turn together share a round. */
static int op_read(void *arg, const char *key, struct cas_value *out)
{
	struct op *op = arg;
	struct casfs_share_round r = {op_turn, op_read_turn, op};

	return casfs_share_read(&op->fs->read_shares[stripe(key)], key, &op->end, &r, out);
}

static int op_change(void *arg, const char *key, cas_change_fn fn, void *fn_arg,
		     struct cas_value *out)
{
	struct op *op = arg;
	int rc;

	if (out)
		memset(out, 0, sizeof(*out));
	if (pthread_mutex_clocklock(key_lock(op->fs, key), CLOCK_MONOTONIC, &op->end))
		return CAS_EUNAVAILABLE;
	rc = client_change(op->fs->client, op_left(op), key, fn, fn_arg, out);
	pthread_mutex_unlock(key_lock(op->fs, key));
	return rc;
}

static int op_del(void *arg, const char *key, cas_change_fn fn, void *fn_arg, struct cas_value *out)
{
	struct op *op = arg;
	int rc;

	if (out)
		memset(out, 0, sizeof(*out));
	if (pthread_mutex_clocklock(key_lock(op->fs, key), CLOCK_MONOTONIC, &op->end))
		return CAS_EUNAVAILABLE;
	rc = client_del(op->fs->client, op_left(op), key, fn, fn_arg, out);
	pthread_mutex_unlock(key_lock(op->fs, key));
	return rc;
}

static int plain_read(void *arg, const char *key, struct cas_value *out)
{
	struct plain *p = arg;

	return client_read(p->client, plain_left_ms(p), key, out);
}

static int plain_change(void *arg, const char *key, cas_change_fn fn, void *fn_arg,
			struct cas_value *out)
{
	struct plain *p = arg;

	return client_change(p->client, plain_left_ms(p), key, fn, fn_arg, out);
}

static int plain_del(void *arg, const char *key, cas_change_fn fn, void *fn_arg,
		     struct cas_value *out)
{
	struct plain *p = arg;

	return client_del(p->client, plain_left_ms(p), key, fn, fn_arg, out);
}

static void op_sleep_ms(void *arg, unsigned ms)
{
	unsigned left = op_left(arg);

	cas_os_sleep_ms(ms < left ? ms : left);
}

static void plain_sleep_ms(void *arg, unsigned ms)
{
	unsigned left = plain_left_ms(arg);

	cas_os_sleep_ms(ms < left ? ms : left);
}

static int os_random(void *arg, void *buf, size_t len)
{
	(void)arg;
	return cas_os_random(buf, len);
}

static const struct casfs_regs_ops op_ops = {op_read,	 op_change,   op_del,
					     op_left_ms, op_sleep_ms, os_random};
static const struct casfs_regs_ops plain_ops = {plain_read,    plain_change,   plain_del,
						plain_left_ms, plain_sleep_ms, os_random};

void casfs_op_regs(struct op *op, struct casfs_regs *out)
{
	out->ops = &op_ops;
	out->arg = op;
}

int casfs_load(struct op *op, const unsigned char *id, struct casfs_record *rec, uint64_t *version)
{
	struct cas_value v = {0};
	struct casfs_regs r;
	char key[CASFS_KEY_LEN];
	int rc;

	memset(rec, 0, sizeof(*rec));
	casfs_op_regs(op, &r);
	casfs_inodes_key(id, key);
	rc = casfs_txn_read(&r, key, &v);
	if (rc)
		return casfs_err_of(rc);
	if (v.version == 0) {
		cas_value_clear(&v);
		return -ENOENT;
	}
	rc = casfs_record_decode(v.data, v.len, rec);
	if (rc == CAS_EINVAL) {
		fuse_log(FUSE_LOG_ERR, "casfs: register %s holds no casfs record\n", key);
		rc = CAS_EIO;
	}
	if (version)
		*version = v.version;
	cas_value_clear(&v);
	return casfs_err_of(rc);
}

struct edit {
	struct casfs_fs *fs;
	casfs_edit_fn fn;
	void *arg;
	int err; /* the negative errno of fn's last run, or 0 */
};

/* A casfs_txn_fn: the record edit e on the committed value. */
static int edit_change(void *varg, const struct cas_value *cur, struct cas_value *next)
{
	struct edit *e = varg;
	struct casfs_record rec;
	int rc;

	e->err = 0;
	if (cur->version == 0) {
		e->err = -ENOENT;
		return CAS_EINVAL;
	}
	rc = casfs_record_decode(cur->data, cur->len, &rec);
	if (rc)
		return rc == CAS_EINVAL ? CAS_EIO : rc;
	rc = e->fn(e->arg, &rec, cur->version);
	if (rc < 0) {
		/* The client counts a version mismatch (ESTALE: a cas xattr
		 * on a moved version) as a conflict, the rest as refused. */
		e->err = rc;
		rc = rc == -ESTALE ? CAS_EVERSION : CAS_EINVAL;
	} else if (rc == CASFS_KEEP) {
		rc = CAS_ENOCHANGE;
	} else {
		rc = casfs_record_encode(&rec, e->fs->max_size, &next->data, &next->len);
	}
	casfs_record_clear(&rec);
	return rc;
}

int casfs_edit(struct op *op, const unsigned char *id, casfs_edit_fn fn, void *arg,
	       struct casfs_record *after, uint64_t *version)
{
	struct edit e = {op->fs, fn, arg, 0};
	struct cas_value out = {0};
	struct casfs_regs r;
	char key[CASFS_KEY_LEN];
	int rc;

	if (after)
		memset(after, 0, sizeof(*after));
	casfs_op_regs(op, &r);
	casfs_inodes_key(id, key);
	rc = casfs_txn_change(&r, key, edit_change, &e, &out);
	if ((rc == CAS_EINVAL || rc == CAS_EVERSION) && e.err)
		rc = e.err;
	else
		rc = casfs_err_of(rc);
	if (!rc && version)
		*version = out.version;
	if (!rc && after) {
		rc = casfs_record_decode(out.data, out.len, after);
		rc = casfs_err_of(rc == CAS_EINVAL ? CAS_EIO : rc);
	}
	cas_value_clear(&out);
	return rc;
}

/* The first value of a fresh register: written only while its committed
 * value is absent (a register never written, or whose creation a
 * transaction undid). */
struct fresh {
	const unsigned char *buf;
	size_t len;
};

static int fresh_change(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	const struct fresh *f = arg;

	if (cur->version != 0)
		return CAS_EVERSION;
	next->data = malloc(f->len);
	if (next->data == NULL)
		return CAS_ENOMEM;
	memcpy(next->data, f->buf, f->len);
	next->len = f->len;
	return CAS_OK;
}

/* Writes rec as key's first value: CAS_OK, CAS_EVERSION when the register
 * holds a value, or another code. */
static int store_fresh(const struct casfs_regs *r, const char *key, const struct casfs_record *rec,
		       size_t max_size)
{
	struct fresh f;
	unsigned char *buf;
	size_t len;
	int rc;

	rc = casfs_record_encode(rec, max_size, &buf, &len);
	if (rc)
		return rc;
	f = (struct fresh){buf, len};
	rc = casfs_txn_change(r, key, fresh_change, &f, NULL);
	free(buf);
	return rc;
}

int casfs_store_new(struct op *op, const unsigned char *id, const struct casfs_record *rec)
{
	struct casfs_regs r;
	char key[CASFS_KEY_LEN];
	int rc;

	casfs_op_regs(op, &r);
	casfs_inodes_key(id, key);
	rc = store_fresh(&r, key, rec, op->fs->max_size);
	if (rc == CAS_EVERSION) {
		fuse_log(FUSE_LOG_ERR, "casfs: fresh inode id %s already in use\n", key);
		rc = CAS_EIO;
	}
	return casfs_err_of(rc);
}

int casfs_fs_check_root(struct cas_client *c, unsigned timeout_ms, size_t max_size, unsigned uid,
			unsigned gid, char *errmsg, size_t errmsg_len)
{
	struct plain p = {c, {0, 0}};
	struct casfs_regs r = {&plain_ops, &p};
	struct cas_value v = {0};
	struct casfs_record rec;
	char key[CASFS_KEY_LEN], why[256];
	int rc;

	/* The root is made by casctl init only (PROTOCOL.md, "Creating a
	 * cluster"): a mount that finds none writes nothing. Seeds of two
	 * clusters, or of none, fail here, before any write. */
	(void)max_size;
	(void)uid;
	(void)gid;
	rc = cas_client_connect(c, timeout_ms, why, sizeof(why));
	if (rc) {
		if (errmsg)
			snprintf(errmsg, errmsg_len, "%s", why);
		/* Nodes that answered as uninitialized: a wrong node list,
		 * not an unreachable cluster; the caller says which node. */
		if (rc == CAS_EUNAVAILABLE && strstr(why, "not initialized") != NULL)
			rc = CAS_EINVAL;
		return rc;
	}
	casfs_inodes_key(root_id, key);
	cas_os_monotonic(&p.end);
	cas_os_timespec_add_ms(&p.end, timeout_ms);
	rc = casfs_txn_read(&r, key, &v);
	if (rc)
		goto out_msg;
	if (v.version == 0) {
		if (errmsg)
			snprintf(errmsg, errmsg_len, "cluster not initialized (casctl init)");
		return CAS_EINVAL;
	}
	rc = casfs_record_decode(v.data, v.len, &rec);
	if (rc == CAS_ENOMEM)
		goto out_msg;
	if (rc || rec.type != CASFS_DIR) {
		casfs_record_clear(&rec);
		cas_value_clear(&v);
		if (errmsg)
			snprintf(errmsg, errmsg_len,
				 "register %s is not a casfs root directory of format %d", key,
				 CASFS_FORMAT);
		return CAS_EPROTO;
	}
	casfs_record_clear(&rec);
	cas_value_clear(&v);
	return CAS_OK;

out_msg:
	cas_value_clear(&v);
	cas_client_errmsg(c, why, sizeof(why));
	if (errmsg)
		snprintf(errmsg, errmsg_len, "cannot read the root directory (register %s): %s%s%s",
			 key, cas_strerror(rc), why[0] ? ": " : "", why);
	return rc;
}

int casfs_usage(struct casfs_fs *fs, unsigned timeout_ms, struct cas_usage *out)
{
	return casfs_err_of(cas_client_usage(fs->client, timeout_ms, out));
}

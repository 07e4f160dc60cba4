/* round.c - register rounds for the FUSE operations: the only file of fs/
 * that calls the client API. */
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

static pthread_mutex_t *key_lock(struct casfs_fs *fs, const unsigned char *id)
{
	uint64_t h = cas_fnv1a(CAS_FNV1A_INIT, id, CASFS_ID_LEN);

	return &fs->key_locks[h & (CASFS_KEY_LOCKS - 1)];
}

/* Takes id's stripe before the request's deadline; 0 or -ETIMEDOUT (as
 * for an unavailable cluster). */
static int lock_key(struct op *op, const unsigned char *id)
{
	if (pthread_mutex_clocklock(key_lock(op->fs, id), CLOCK_MONOTONIC, &op->end))
		return casfs_err_of(CAS_EUNAVAILABLE);
	return 0;
}

static void unlock_key(struct op *op, const unsigned char *id)
{
	pthread_mutex_unlock(key_lock(op->fs, id));
}

int casfs_load(struct op *op, const unsigned char *id, struct casfs_record *rec, uint64_t *version)
{
	struct cas_value v = {0};
	char key[CASFS_KEY_LEN];
	unsigned left;
	int rc;

	memset(rec, 0, sizeof(*rec));
	rc = lock_key(op, id);
	if (rc)
		return rc;
	left = op_left(op);
	casfs_inodes_key(id, key);
	rc = left ? cas_read(op->fs->client, key, left, &v) : CAS_EUNAVAILABLE;
	unlock_key(op, id);
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
		e->err = rc;
		rc = CAS_EINVAL;
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
	char key[CASFS_KEY_LEN];
	unsigned left;
	int rc;

	if (after)
		memset(after, 0, sizeof(*after));
	rc = lock_key(op, id);
	if (rc)
		return rc;
	left = op_left(op);
	casfs_inodes_key(id, key);
	rc = left ? cas_change(op->fs->client, key, edit_change, &e, left, &out) : CAS_EUNAVAILABLE;
	unlock_key(op, id);
	if (rc == CAS_EINVAL && e.err)
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

int casfs_store_new(struct op *op, const unsigned char *id, const struct casfs_record *rec)
{
	char key[CASFS_KEY_LEN];
	unsigned char *buf;
	unsigned left;
	size_t len;
	int rc;

	rc = casfs_err_of(casfs_record_encode(rec, op->fs->max_size, &buf, &len));
	if (rc)
		return rc;
	left = op_left(op);
	casfs_inodes_key(id, key);
	rc = left ? cas_cas(op->fs->client, key, 0, buf, len, left, NULL) : CAS_EUNAVAILABLE;
	free(buf);
	if (rc == CAS_EVERSION) {
		fuse_log(FUSE_LOG_ERR, "casfs: fresh inode id %s already in use\n", key);
		rc = CAS_EIO;
	}
	return casfs_err_of(rc);
}

int casfs_fs_check_root(struct cas_client *c, unsigned timeout_ms, size_t max_size, unsigned uid,
			unsigned gid, char *errmsg, size_t errmsg_len)
{
	struct cas_value v = {0};
	struct casfs_record rec;
	char key[CASFS_KEY_LEN];
	struct timespec now;
	unsigned char *buf;
	size_t len;
	int rc;

	casfs_inodes_key(root_id, key);
	rc = cas_read(c, key, timeout_ms, &v);
	if (rc)
		goto out_msg;
	if (v.version == 0) {
		cas_os_realtime(&now);
		casfs_record_init(&rec, CASFS_DIR, 0755, uid, gid, &now);
		rc = casfs_record_encode(&rec, max_size, &buf, &len);
		if (rc)
			goto out_msg;
		rc = cas_cas(c, key, 0, buf, len, timeout_ms, NULL);
		free(buf);
		if (rc == CAS_OK) {
			cas_value_clear(&v);
			return CAS_OK;
		}
		if (rc != CAS_EVERSION)
			goto out_msg;
		/* Another mount created the root first: check what it wrote. */
		cas_value_clear(&v);
		rc = cas_read(c, key, timeout_ms, &v);
		if (rc)
			goto out_msg;
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
	if (errmsg)
		snprintf(errmsg, errmsg_len, "cannot read the root directory (register %s): %s",
			 key, cas_strerror(rc));
	return rc;
}

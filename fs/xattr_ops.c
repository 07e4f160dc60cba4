/* xattr_ops.c - the extended attribute operations: user.* attributes in
 * the record, and the user.casfs.* names that xattr.c parses. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include <cas/os.h>

#include "fs.h"
#include "lock.h"
#include "xattr.h"

/* user.casfs.lock: the lock register of the inode, read only (lock.h). */
#define LOCK_XATTR CASFS_XATTR_PREFIX "lock"

struct xset_arg {
	const char *name;
	const void *value;
	size_t size;
	int flags;
	uint64_t expected; /* CASFS_XA_CAS */
	bool cas;
	size_t max;
};

static int xset_edit(void *varg, struct casfs_record *rec, uint64_t version)
{
	struct xset_arg *a = varg;
	bool exists;
	int rc;

	if (a->cas) {
		if (version != a->expected)
			return casfs_err_of(CAS_EVERSION);
		if (rec->type == CASFS_DIR)
			return -EISDIR;
		if (rec->type != CASFS_REG)
			return -EINVAL;
		rc = casfs_record_set_data(rec, a->value, a->size, a->max);
		if (rc)
			return casfs_err_of(rc);
		cas_os_realtime(&rec->mtime);
		rec->ctime = rec->mtime;
		return 0;
	}
	exists = casfs_record_xattr_find(rec, a->name) != NULL;
	if ((a->flags & XATTR_CREATE) && exists)
		return -EEXIST;
	if ((a->flags & XATTR_REPLACE) && !exists)
		return -ENODATA;
	rc = casfs_record_xattr_set(rec, a->name, a->value, a->size);
	if (rc)
		return rc == CAS_EINVAL ? -E2BIG : casfs_err_of(rc);
	cas_os_realtime(&rec->ctime);
	return 0;
}

void casfs_fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		       size_t size, int flags)
{
	struct xset_arg a = {name, value, size, flags, 0, false, 0};
	unsigned char id[CASFS_ID_LEN];
	struct op op;
	int rc;

	casfs_op_start(&op, req);
	a.max = op.fs->max_size;
	if (!strcmp(name, LOCK_XATTR)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	switch (casfs_xattr_parse(name, &a.expected)) {
	case CASFS_XA_USER:
		break;
	case CASFS_XA_CAS:
		a.cas = true;
		break;
	case CASFS_XA_VERSION:
	case CASFS_XA_KEY:
		fuse_reply_err(req, EPERM);
		return;
	case CASFS_XA_RESERVED:
		fuse_reply_err(req, EINVAL);
		return;
	default:
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (!a.cas && strlen(name) > CASFS_NAME_MAX) {
		fuse_reply_err(req, ERANGE);
		return;
	}
	rc = casfs_node_id(&op, ino, id);
	if (!rc)
		rc = casfs_edit(&op, id, xset_edit, &a, NULL, NULL);
	fuse_reply_err(req, -rc);
}

/* Replies to a getxattr or listxattr with len bytes of val, or their
 * length when the caller asked for it (size 0). */
static void reply_xattr_value(fuse_req_t req, size_t size, const void *val, size_t len)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, len);
}

/* Replies with the text of user.casfs.lock: the fencing counter, then
 * each hold with its token. */
static void reply_lock_xattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	unsigned char id[CASFS_ID_LEN];
	struct op op;
	size_t len;
	char *text;
	int rc;

	casfs_op_start(&op, req);
	rc = casfs_node_id(&op, ino, id);
	if (!rc)
		rc = casfs_locks_xattr(&op, id, &text, &len);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	reply_xattr_value(req, size, text, len);
	free(text);
}

void casfs_fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	unsigned char id[CASFS_ID_LEN];
	struct casfs_record rec;
	const struct casfs_xattr *x;
	char text[CASFS_KEY_LEN + 24];
	enum casfs_xattr_kind kind;
	uint64_t version;
	struct op op;
	int rc;

	if (!strcmp(name, LOCK_XATTR)) {
		reply_lock_xattr(req, ino, size);
		return;
	}
	kind = casfs_xattr_parse(name, NULL);
	/* security.capability comes with every write: no round for it. */
	if (kind == CASFS_XA_OTHER || kind == CASFS_XA_RESERVED || kind == CASFS_XA_CAS) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	casfs_op_start(&op, req);
	rc = casfs_node_id(&op, ino, id);
	if (rc)
		goto out_reply_err;
	if (kind == CASFS_XA_KEY) {
		casfs_inodes_key(id, text);
		reply_xattr_value(req, size, text, strlen(text));
		return;
	}
	rc = casfs_load(&op, id, &rec, &version);
	if (rc)
		goto out_reply_err;
	if (kind == CASFS_XA_VERSION) {
		snprintf(text, sizeof(text), "%" PRIu64, version);
		reply_xattr_value(req, size, text, strlen(text));
	} else if ((x = casfs_record_xattr_find(&rec, name))) {
		reply_xattr_value(req, size, x->value, x->len);
	} else {
		fuse_reply_err(req, ENODATA);
	}
	casfs_record_clear(&rec);
	return;

out_reply_err:
	fuse_reply_err(req, -rc);
}

void casfs_fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	unsigned char id[CASFS_ID_LEN];
	struct casfs_record rec;
	size_t len = 0, i;
	struct op op;
	char *buf, *p;
	int rc;

	casfs_op_start(&op, req);
	rc = casfs_node_id(&op, ino, id);
	if (!rc)
		rc = casfs_load(&op, id, &rec, NULL);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	for (i = 0; i < rec.nxattr; i++)
		len += strlen(rec.xattrs[i].name) + 1;
	buf = malloc(len ? len : 1);
	if (!buf) {
		casfs_record_clear(&rec);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (p = buf, i = 0; i < rec.nxattr; i++) {
		size_t n = strlen(rec.xattrs[i].name) + 1;

		memcpy(p, rec.xattrs[i].name, n);
		p += n;
	}
	casfs_record_clear(&rec);
	reply_xattr_value(req, size, buf, len);
	free(buf);
}

static int xremove_edit(void *varg, struct casfs_record *rec, uint64_t version)
{
	(void)version;
	if (!casfs_record_xattr_remove(rec, varg))
		return -ENODATA;
	cas_os_realtime(&rec->ctime);
	return 0;
}

void casfs_fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	unsigned char id[CASFS_ID_LEN];
	struct op op;
	int rc;

	if (!strcmp(name, LOCK_XATTR)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	switch (casfs_xattr_parse(name, NULL)) {
	case CASFS_XA_USER:
		break;
	case CASFS_XA_VERSION:
	case CASFS_XA_KEY:
	case CASFS_XA_CAS:
		fuse_reply_err(req, EPERM);
		return;
	default:
		fuse_reply_err(req, ENODATA);
		return;
	}
	casfs_op_start(&op, req);
	rc = casfs_node_id(&op, ino, id);
	if (!rc)
		rc = casfs_edit(&op, id, xremove_edit, (void *)name, NULL, NULL);
	fuse_reply_err(req, -rc);
}

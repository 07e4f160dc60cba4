/* file.c - open files: open, read, write, flush, release, fsync, and the
 * O_TRUNC that rides on the first write or is committed by the first
 * flush. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cas/os.h>

#include "fs.h"
#include "session.h"

int casfs_handle_new(const unsigned char *id, int flags, struct handle **out)
{
	static _Atomic uint64_t serials;
	struct handle *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	if (pthread_mutex_init(&h->lock, NULL)) {
		free(h);
		return -ENOMEM;
	}
	memcpy(h->id, id, CASFS_ID_LEN);
	h->append = flags & O_APPEND;
	h->pending_trunc = flags & O_TRUNC;
	h->serial = ++serials;
	*out = h;
	return 0;
}

void casfs_handle_free(struct handle *h)
{
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* A handle's inode whose register is absent was deleted (its last name
 * went on another mount, or this one's collector took it): ESTALE, as
 * for a file handle whose file is gone (fs/FORMAT.md, "Deletion"). */
static int stale(int rc)
{
	return rc == -ENOENT ? -ESTALE : rc;
}

void casfs_fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	unsigned char id[CASFS_ID_LEN];
	struct handle *h;
	struct op op;
	int rc;

	casfs_op_start(&op, req);
	rc = casfs_node_id(&op, ino, id);
	if (!rc)
		rc = casfs_handle_new(id, fi->flags, &h);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)h;
	casfs_set_open_flags(op.fs, fi);
	/* Counted before the reply: an unlink on this mount that takes the
	 * last name from now on keeps the register until the last close. */
	casfs_inodes_open(op.fs->inodes, id);
	/* mmap: with direct_io (the default mode) the kernel maps a file
	 * private (MAP_PRIVATE, read-only or copy-on-write), read through the
	 * page cache, which it drops at each mmap; it refuses MAP_SHARED with
	 * ENODEV, and libfuse 3.14 cannot ask for FUSE_DIRECT_IO_ALLOW_MMAP.
	 * Page-cache reads for handles opened read-only, which would allow
	 * shared read-only mappings, are not linearizable: an open(O_TRUNC) on
	 * this mount sets the kernel's file size to 0 while the truncation
	 * waits for the write, and a concurrent read() then returns an empty
	 * file that never existed (nemesis_smoke caught it). */
	if (fuse_reply_open(req, fi)) {
		casfs_inodes_close(op.fs->inodes, id);
		casfs_handle_free(h);
	}
}

void casfs_fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct casfs_record rec;
	struct op op;
	bool empty;
	int rc;

	(void)ino;
	casfs_op_start(&op, req);
	pthread_mutex_lock(&h->lock);
	empty = h->pending_trunc;
	pthread_mutex_unlock(&h->lock);
	if (empty) {
		/* The handle's own O_TRUNC, not committed yet. */
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	rc = stale(casfs_load(&op, h->id, &rec, NULL));
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (rec.type != CASFS_REG)
		fuse_reply_err(req, EISDIR);
	else if (off < 0 || (uint64_t)off >= rec.len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, (const char *)rec.data + off,
			       rec.len - (size_t)off < size ? rec.len - (size_t)off : size);
	casfs_record_clear(&rec);
}

/* True when the caller of req is in the group gid (its own group or a
 * supplementary one). */
static bool in_group(fuse_req_t req, uint32_t gid)
{
	gid_t groups[256];
	int i, n;

	if (fuse_req_ctx(req)->gid == gid)
		return true;
	n = fuse_req_getgroups(req, 256, groups);
	for (i = 0; i < n && i < 256; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

/* Takes from rec's mode what a write or truncation by the caller of req
 * takes, as Linux does for a writer without CAP_FSETID: set-user-ID, and
 * set-group-ID when group execution is on or the writer is not in the
 * file's group. Here "without CAP_FSETID" is "any uid but 0": libfuse
 * 3.14 does not pass on the kernel's FUSE_WRITE_KILL_SUIDGID. This runs
 * in the write's own change round, so no write lands under a set-user-ID
 * bit. FUSE_CAP_HANDLE_KILLPRIV is off (ops.c): the kernel clears the bits
 * itself in the setattr of a truncate or chown, and sends no setattr
 * before a direct_io write. */
static void kill_priv(fuse_req_t req, struct casfs_record *rec)
{
	if (!(rec->mode & (S_ISUID | S_ISGID)) || fuse_req_ctx(req)->uid == 0)
		return;
	rec->mode &= ~(uint32_t)S_ISUID;
	if ((rec->mode & S_ISGID) && ((rec->mode & S_IXGRP) || !in_group(req, rec->gid)))
		rec->mode &= ~(uint32_t)S_ISGID;
}

struct write_arg {
	fuse_req_t req;
	const void *buf;
	size_t size;
	uint64_t off;
	bool append;
	bool trunc;
	size_t max;
};

static int write_edit(void *varg, struct casfs_record *rec, uint64_t version)
{
	struct write_arg *a = varg;
	uint64_t off = a->off;
	int rc;

	(void)version;
	if (rec->type != CASFS_REG)
		return -EISDIR;
	if (a->trunc)
		casfs_record_truncate(rec, 0, a->max);
	if (a->append)
		off = rec->len;
	rc = casfs_record_write(rec, off, a->buf, a->size, a->max);
	if (rc)
		return casfs_err_of(rc);
	if (a->size)
		kill_priv(a->req, rec);
	cas_os_realtime(&rec->mtime);
	rec->ctime = rec->mtime;
	return 0;
}

void casfs_fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct write_arg a = {req, buf, size, (uint64_t)off, false, false, 0};
	struct op op;
	int rc;

	(void)ino;
	casfs_op_start(&op, req);
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	a.max = op.fs->max_size;
	pthread_mutex_lock(&h->lock);
	a.append = h->append;
	a.trunc = h->pending_trunc;
	rc = stale(casfs_edit(&op, h->id, write_edit, &a, NULL, NULL));
	/* The truncation rides on the first write, whatever became of it: a
	 * lone truncation committed at close after a failed write could erase
	 * what others wrote meanwhile. */
	h->pending_trunc = false;
	pthread_mutex_unlock(&h->lock);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, size);
}

/* The edit of an O_TRUNC committed alone; varg is the request. */
static int trunc_edit(void *varg, struct casfs_record *rec, uint64_t version)
{
	(void)version;
	if (rec->type != CASFS_REG)
		return -EISDIR;
	casfs_record_truncate(rec, 0, 0);
	kill_priv(varg, rec);
	cas_os_realtime(&rec->mtime);
	rec->ctime = rec->mtime;
	return 0;
}

/* Commits h's pending O_TRUNC, if any, for req. Call with h->lock held.
 * On failure the truncation stays pending, for a write on h to carry. */
static int commit_trunc(struct op *op, fuse_req_t req, struct handle *h)
{
	int rc;

	if (!h->pending_trunc)
		return 0;
	rc = stale(casfs_edit(op, h->id, trunc_edit, req, NULL, NULL));
	if (!rc)
		h->pending_trunc = false;
	return rc;
}

void casfs_fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct op op;
	int rc = 0;

	(void)ino;
	casfs_op_start(&op, req);
	pthread_mutex_lock(&h->lock);
	/* Writes are committed when they return. What a flush commits is an
	 * O_TRUNC that no write carried yet, so that close() reports its
	 * failure and returns only once it is done: left for RELEASE, which
	 * the kernel sends after close() returned, it would land later and
	 * erase what others wrote meanwhile. The price: a shell's "cmd > f"
	 * closes a duplicate descriptor (FLUSH) before cmd writes, so there
	 * the truncation and the write are two rounds, with the file empty
	 * between them. After a failed flush the truncation stays pending:
	 * a write on the handle then carries it (the shell ignored the
	 * error), and RELEASE drops it. */
	rc = commit_trunc(&op, req, h);
	pthread_mutex_unlock(&h->lock);
	fuse_reply_err(req, -rc);
}

void casfs_fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct casfs_fs *fs = fuse_req_userdata(req);
	char key[CASFS_KEY_LEN];
	struct op op;
	int rc;

	(void)ino;
	/* The last close of a file whose last name went while it was open
	 * here: its register goes now (fs/FORMAT.md, "Deletion"). */
	if (casfs_inodes_close(fs->inodes, h->id)) {
		casfs_op_start(&op, req);
		rc = casfs_msession_release(&op, h->id);
		if (rc) {
			casfs_inodes_key(h->id, key);
			fuse_log(FUSE_LOG_ERR,
				 "casfs: could not delete %s at its last close (%s): casctl gc "
				 "collects it\n",
				 key, strerror(-rc));
		}
	}
	/* Nothing to commit: every close() flushed first (casfs_fs_flush). A
	 * truncation still pending is one whose flush failed and was
	 * reported; committing it now, after close() returned, could erase
	 * what others wrote since. */
	casfs_handle_free(h);
	fuse_reply_err(req, 0);
}

void casfs_fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct op op;
	int rc;

	(void)ino;
	(void)datasync;
	casfs_op_start(&op, req);
	/* Every committed write is already on a majority of acceptors. */
	pthread_mutex_lock(&h->lock);
	rc = commit_trunc(&op, req, h);
	pthread_mutex_unlock(&h->lock);
	fuse_reply_err(req, -rc);
}

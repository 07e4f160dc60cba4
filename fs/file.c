/* file.c - open files: open, read, write, flush, release, fsync, and the
 * O_TRUNC that rides on the first write or is committed by the first
 * flush. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cas/os.h>

#include "fs.h"

int casfs_handle_new(const unsigned char *id, int flags, struct handle **out)
{
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
	*out = h;
	return 0;
}

void casfs_handle_free(struct handle *h)
{
	pthread_mutex_destroy(&h->lock);
	free(h);
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
	if (fuse_reply_open(req, fi))
		casfs_handle_free(h);
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
	rc = casfs_load(&op, h->id, &rec, NULL);
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

struct write_arg {
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
	cas_os_realtime(&rec->mtime);
	rec->ctime = rec->mtime;
	return 0;
}

void casfs_fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct write_arg a = {buf, size, (uint64_t)off, false, false, 0};
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
	rc = casfs_edit(&op, h->id, write_edit, &a, NULL, NULL);
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
	(void)varg;
	(void)version;
	if (rec->type != CASFS_REG)
		return -EISDIR;
	casfs_record_truncate(rec, 0, 0);
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
	rc = casfs_edit(op, h->id, trunc_edit, req, NULL, NULL);
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

	(void)ino;
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

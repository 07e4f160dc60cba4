/* lock_ops.c - the FUSE lock operations (flock, getlk, setlk), the
 * write, flush and release that locks wrap, and user.casfs.lock (lock.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

#include "lock_impl.h"

/* The request's inode id and lock owner, or an answered error. */
static bool start(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct op *op,
		  unsigned char *id, struct casfs_lock_req *rq)
{
	int rc;

	casfs_op_start(op, req);
	rc = casfs_node_id(op, ino, id);
	if (rc) {
		fuse_reply_err(req, -rc);
		return false;
	}
	memset(rq, 0, sizeof(*rq));
	rq->owner = fi->lock_owner;
	rq->pid = (uint32_t)fuse_req_ctx(req)->pid;
	return true;
}

void casfs_fs_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op)
{
	struct casfs_locks *L = casfs_lk_of(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	unsigned char id[CASFS_ID_LEN];
	struct casfs_lock_req rq;
	struct op o;

	if (!start(req, ino, fi, &o, id, &rq))
		return;
	/* The kernel names a flock owner by the address of the open file, and
	 * reuses it once the file is closed, while the RELEASE that gives the
	 * old file's lock back may still be on its way: under that name a new
	 * open would take the lock as the old one's, and the late RELEASE
	 * would then unlock it. A handle lives until its RELEASE is done here,
	 * and its serial is never reused. */
	rq.owner = h->serial;
	rq.kind = CASFS_LK_FLOCK;
	rq.end = CASFS_LOCK_EOF;
	switch (op & ~LOCK_NB) {
	case LOCK_SH:
		rq.type = CASFS_LK_SHARED;
		break;
	case LOCK_EX:
		rq.type = CASFS_LK_EXCL;
		break;
	case LOCK_UN:
		fuse_reply_err(req, -casfs_lk_unlock(L, &o, id, rq.owner, CASFS_LK_FLOCK, 0,
						     CASFS_LOCK_EOF));
		return;
	default:
		fuse_reply_err(req, EINVAL);
		return;
	}
	casfs_lk_request(req, L, &o, id, &rq, h, !(op & LOCK_NB));
}

/* The range of a struct flock from libfuse (l_whence SEEK_SET, l_len 0:
 * to the end). false for a bad one. */
static bool range_of(const struct flock *lock, struct casfs_lock_req *rq)
{
	if (lock->l_start < 0 || lock->l_len < 0)
		return false;
	rq->start = (uint64_t)lock->l_start;
	if (lock->l_len == 0 || (uint64_t)lock->l_len - 1 > CASFS_LOCK_EOF - rq->start)
		rq->end = CASFS_LOCK_EOF;
	else
		rq->end = rq->start + (uint64_t)lock->l_len - 1;
	return true;
}

void casfs_fs_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock)
{
	struct casfs_locks *L = casfs_lk_of(req);
	unsigned char id[CASFS_ID_LEN];
	char key[CASFS_LOCK_KEY_LEN];
	struct casfs_lock_req rq;
	struct casfs_lockreg *l;
	struct casfs_regs r;
	struct held e;
	struct op o;
	size_t i;
	int rc;

	if (!start(req, ino, fi, &o, id, &rq))
		return;
	rq.kind = CASFS_LK_POSIX;
	rq.type = lock->l_type == F_RDLCK ? CASFS_LK_SHARED : CASFS_LK_EXCL;
	if (!range_of(lock, &rq)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	/* The owner's own locks are never in its way. */
	if (casfs_lk_find(L, id, rq.owner, CASFS_LK_POSIX, &e))
		memcpy(rq.sid, e.sid, CASFS_SID_LEN);
	l = malloc(sizeof(*l));
	if (!l) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	casfs_op_regs(&o, &r);
	casfs_lockreg_key(id, key);
	rc = casfs_lock_read(&r, key, l);
	if (rc) {
		free(l);
		fuse_reply_err(req, -casfs_err_of(rc));
		return;
	}
	if (casfs_lockreg_conflicts(l, &rq, &i)) {
		lock->l_type = l->h[i].type == CASFS_LK_EXCL ? F_WRLCK : F_RDLCK;
		lock->l_whence = SEEK_SET;
		lock->l_start = (off_t)l->h[i].start;
		lock->l_len = l->h[i].end == CASFS_LOCK_EOF
				      ? 0
				      : (off_t)(l->h[i].end - l->h[i].start + 1);
		/* A process id means something only on the holder's machine. */
		lock->l_pid = 0;
	} else {
		lock->l_type = F_UNLCK;
	}
	free(l);
	fuse_reply_lock(req, lock);
}

void casfs_fs_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock,
		    int sleep)
{
	struct casfs_locks *L = casfs_lk_of(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	unsigned char id[CASFS_ID_LEN];
	struct casfs_lock_req rq;
	struct op o;

	if (!start(req, ino, fi, &o, id, &rq))
		return;
	rq.kind = CASFS_LK_POSIX;
	if (!range_of(lock, &rq)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	switch (lock->l_type) {
	case F_RDLCK:
		rq.type = CASFS_LK_SHARED;
		break;
	case F_WRLCK:
		rq.type = CASFS_LK_EXCL;
		break;
	case F_UNLCK:
		fuse_reply_err(req, -casfs_lk_unlock(L, &o, id, rq.owner, CASFS_LK_POSIX, rq.start,
						     rq.end));
		return;
	default:
		fuse_reply_err(req, EINVAL);
		return;
	}
	casfs_lk_request(req, L, &o, id, &rq, h, sleep != 0);
}

/* True when a write through h by lock owner owner depends on a lock this
 * mount lost: h's flock lock, or owner's POSIX locks on h's inode. */
static bool lost_for(struct casfs_locks *L, const struct handle *h, uint64_t owner)
{
	struct held *e;
	bool lost = false;

	pthread_mutex_lock(&L->mu);
	for (e = L->held; e && !lost; e = e->next) {
		if ((e->kind == CASFS_LK_FLOCK && e->h == h) ||
		    (e->kind == CASFS_LK_POSIX && e->owner == owner &&
		     !memcmp(e->id, h->id, CASFS_ID_LEN)))
			lost = !casfs_msession_valid(&L->ms, e->gen);
	}
	pthread_mutex_unlock(&L->mu);
	return lost;
}

void casfs_fs_lk_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	if (lost_for(casfs_lk_of(req), h, fi->lock_owner)) {
		fuse_reply_err(req, ENOLCK);
		return;
	}
	casfs_fs_write(req, ino, buf, size, off, fi);
}

void casfs_fs_lk_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct casfs_locks *L = casfs_lk_of(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct held e;
	struct op o;

	/* POSIX: a close by a process gives back all its locks on the file. */
	if (casfs_lk_find(L, h->id, fi->lock_owner, CASFS_LK_POSIX, &e)) {
		casfs_op_start(&o, req);
		casfs_lk_give_back(L, &o, h->id, fi->lock_owner, CASFS_LK_POSIX);
	}
	casfs_fs_flush(req, ino, fi);
}

void casfs_fs_lk_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct casfs_locks *L = casfs_lk_of(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct held *x, e;
	struct op o;
	bool found;

	/* The open file's flock lock goes with it (the kernel also says so
	 * with fi->flock_release). */
	for (;;) {
		found = false;
		pthread_mutex_lock(&L->mu);
		for (x = L->held; x && !found; x = x->next)
			if (x->kind == CASFS_LK_FLOCK && x->h == h) {
				e = *x;
				x->h = NULL;
				found = true;
			}
		pthread_mutex_unlock(&L->mu);
		if (!found)
			break;
		casfs_op_start(&o, req);
		casfs_lk_give_back(L, &o, e.id, e.owner, CASFS_LK_FLOCK);
	}
	casfs_fs_release(req, ino, fi);
}

static const char *type_name(uint8_t type)
{
	return type == CASFS_LK_EXCL ? "exclusive" : "shared";
}

int casfs_locks_xattr(struct op *op, const unsigned char *id, char **text, size_t *len)
{
	char key[CASFS_LOCK_KEY_LEN], skey[CASFS_LOCK_KEY_LEN];
	struct casfs_lockreg *l = malloc(sizeof(*l));
	struct casfs_regs r;
	size_t cap, n, i;
	char *buf;
	int rc;

	if (!l)
		return -ENOMEM;
	casfs_op_regs(op, &r);
	casfs_lockreg_key(id, key);
	rc = casfs_lock_read(&r, key, l);
	if (rc) {
		free(l);
		return casfs_err_of(rc);
	}
	cap = 32 + l->n * 192;
	buf = malloc(cap);
	if (!buf) {
		free(l);
		return -ENOMEM;
	}
	n = (size_t)snprintf(buf, cap, "fence=%" PRIu64 "\n", l->fence);
	for (i = 0; i < l->n; i++) {
		const struct casfs_hold *h = &l->h[i];

		casfs_sessreg_key(h->sid, skey);
		n += (size_t)snprintf(buf + n, cap - n,
				      "%s %s token=%" PRIu64 " session=%s owner=%016" PRIx64
				      " pid=%" PRIu32,
				      h->kind == CASFS_LK_FLOCK ? "flock" : "posix",
				      type_name(h->type), h->token, skey + 2, h->owner, h->pid);
		if (h->kind == CASFS_LK_POSIX && h->end == CASFS_LOCK_EOF)
			n += (size_t)snprintf(buf + n, cap - n, " range=%" PRIu64 "-eof", h->start);
		else if (h->kind == CASFS_LK_POSIX)
			n += (size_t)snprintf(buf + n, cap - n, " range=%" PRIu64 "-%" PRIu64,
					      h->start, h->end);
		n += (size_t)snprintf(buf + n, cap - n, "\n");
	}
	free(l);
	*text = buf;
	*len = n;
	return 0;
}

/* attr.c - names and attributes: lookup, forget, getattr, setattr,
 * readlink. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cas/bytes.h>
#include <cas/os.h>

#include "fs.h"

/* How long a lookup that timed out is remembered (see casfs_fs_lookup). */
#define RELOOKUP_MS 100

static uint64_t hash_name(const char *name)
{
	return cas_fnv1a(CAS_FNV1A_INIT, name, strlen(name));
}

/* The kernel follows a failed revalidation of a cached name (a LOOKUP)
 * with a fresh LOOKUP of the same name. When the first failed for want of
 * a majority, the second fails at once, so that the system call still
 * ends within one deadline instead of two. True when this lookup is such
 * a repeat (and forgets the failure). */
static bool repeats_failed_lookup(struct casfs_fs *fs, fuse_req_t req, fuse_ino_t parent,
				  const char *name)
{
	pid_t pid = fuse_req_ctx(req)->pid;
	struct failed_lookup *f = &fs->failed[(unsigned)pid % CASFS_FAILED_LOOKUPS];
	struct timespec now;
	bool repeat;
	int64_t ms;

	cas_os_monotonic(&now);
	pthread_mutex_lock(&fs->failed_lock);
	ms = (int64_t)(now.tv_sec - f->at.tv_sec) * 1000 + (now.tv_nsec - f->at.tv_nsec) / 1000000;
	repeat = f->pid == pid && f->parent == parent && f->name_hash == hash_name(name) &&
		 ms >= 0 && ms < RELOOKUP_MS;
	if (repeat)
		f->pid = 0;
	pthread_mutex_unlock(&fs->failed_lock);
	return repeat;
}

static void note_failed_lookup(struct casfs_fs *fs, fuse_req_t req, fuse_ino_t parent,
			       const char *name)
{
	pid_t pid = fuse_req_ctx(req)->pid;
	struct failed_lookup *f = &fs->failed[(unsigned)pid % CASFS_FAILED_LOOKUPS];

	pthread_mutex_lock(&fs->failed_lock);
	f->parent = parent;
	f->name_hash = hash_name(name);
	f->pid = pid;
	cas_os_monotonic(&f->at);
	pthread_mutex_unlock(&fs->failed_lock);
}

void casfs_fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct casfs_record crec;
	unsigned char pid[CASFS_ID_LEN], cid[CASFS_ID_LEN];
	struct casfs_regs regs;
	struct casfs_ns ns;
	struct op op;
	struct stat st;
	uint8_t type;
	int rc;

	casfs_op_start(&op, req);
	casfs_ns_begin(&op, &regs, &ns);
	if (strlen(name) > CASFS_NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (repeats_failed_lookup(op.fs, req, parent, name)) {
		fuse_reply_err(req, -casfs_err_of(CAS_EUNAVAILABLE));
		return;
	}
	rc = casfs_node_id(&op, parent, pid);
	if (!rc)
		rc = casfs_ns_end(&ns, casfs_ns_lookup(&ns, pid, name, &type, cid));
	if (rc)
		goto out_reply_err;
	/* The name is read fresh; for an inode this mount reported before,
	 * its attributes are what it reported last: they expire at once
	 * (attribute timeout 0 unless -o cache), so the kernel asks for
	 * fresh ones (getattr) before it relies on them, and a lookup costs
	 * one round instead of two. */
	if (!op.fs->cache && casfs_inodes_get_attr(op.fs->inodes, cid, &st) &&
	    (st.st_mode & S_IFMT) == casfs_type_mode(type)) {
		casfs_reply_entry_attr(req, &op, cid, &st, NULL, NULL);
		return;
	}
	rc = casfs_ns_end(&ns, casfs_ns_load(&ns, cid, &crec, NULL));
	if (rc == -ENOENT)
		fuse_log(FUSE_LOG_ERR, "casfs: entry %s points to a missing register\n", name);
	if (rc)
		goto out_reply_err;
	casfs_reply_entry(req, &op, cid, &crec, NULL, NULL);
	casfs_record_clear(&crec);
	return;

out_reply_err:
	if (rc == casfs_err_of(CAS_EUNAVAILABLE))
		note_failed_lookup(op.fs, req, parent, name);
	if (rc == -ENOENT && op.fs->cache) {
		struct fuse_entry_param e;

		/* A negative entry the kernel may keep for a while. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = CASFS_CACHE_TIMEOUT;
		fuse_reply_entry(req, &e);
		return;
	}
	fuse_reply_err(req, -rc);
}

void casfs_fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct casfs_fs *fs = fuse_req_userdata(req);

	casfs_inodes_forget(fs->inodes, ino, nlookup);
	fuse_reply_none(req);
}

void casfs_fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct casfs_fs *fs = fuse_req_userdata(req);
	size_t i;

	for (i = 0; i < count; i++)
		casfs_inodes_forget(fs->inodes, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

void casfs_fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	unsigned char id[CASFS_ID_LEN];
	struct casfs_record rec;
	struct stat st;
	struct op op;
	int rc;

	(void)fi;
	casfs_op_start(&op, req);
	rc = casfs_node_id(&op, ino, id);
	if (!rc)
		rc = casfs_load(&op, id, &rec, NULL);
	if (rc) {
		/* A known inode whose register is absent was deleted: ESTALE,
		 * as through a handle (FORMAT.md, "Deletion"); the kernel
		 * then walks a path again, and its lookup says ENOENT. */
		fuse_reply_err(req, rc == -ENOENT ? ESTALE : -rc);
		return;
	}
	casfs_fill_stat(&rec, id, &st);
	casfs_record_clear(&rec);
	casfs_reply_attr(req, &op, id, &st);
}

struct setattr_arg {
	const struct stat *attr;
	int to_set;
	size_t max;
};

static int setattr_edit(void *varg, struct casfs_record *rec, uint64_t version)
{
	struct setattr_arg *a = varg;
	struct timespec now;
	int rc;

	(void)version;
	cas_os_realtime(&now);
	if (a->to_set & FUSE_SET_ATTR_MODE)
		rec->mode = a->attr->st_mode & 07777;
	if (a->to_set & FUSE_SET_ATTR_UID)
		rec->uid = a->attr->st_uid;
	if (a->to_set & FUSE_SET_ATTR_GID)
		rec->gid = a->attr->st_gid;
	if (a->to_set & FUSE_SET_ATTR_SIZE) {
		if (rec->type == CASFS_DIR)
			return -EISDIR;
		if (rec->type != CASFS_REG)
			return -EINVAL;
		if (a->attr->st_size < 0)
			return -EINVAL;
		rc = casfs_record_truncate(rec, (uint64_t)a->attr->st_size, a->max);
		if (rc)
			return casfs_err_of(rc);
		rec->mtime = now;
	}
	if (a->to_set & FUSE_SET_ATTR_ATIME_NOW)
		rec->atime = now;
	else if (a->to_set & FUSE_SET_ATTR_ATIME)
		rec->atime = a->attr->st_atim;
	if (a->to_set & FUSE_SET_ATTR_MTIME_NOW)
		rec->mtime = now;
	else if (a->to_set & FUSE_SET_ATTR_MTIME)
		rec->mtime = a->attr->st_mtim;
	rec->ctime = now;
	return 0;
}

void casfs_fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		      struct fuse_file_info *fi)
{
	struct setattr_arg a = {attr, to_set, 0};
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	unsigned char id[CASFS_ID_LEN];
	struct casfs_record rec;
	struct stat st;
	struct op op;
	int rc;

	casfs_op_start(&op, req);
	a.max = op.fs->max_size;
	rc = casfs_node_id(&op, ino, id);
	if (rc)
		goto out_reply_err;
	if (h && (to_set & FUSE_SET_ATTR_SIZE)) {
		/* ftruncate on a handle supersedes its pending O_TRUNC. */
		pthread_mutex_lock(&h->lock);
		rc = casfs_edit(&op, id, setattr_edit, &a, &rec, NULL);
		if (!rc)
			h->pending_trunc = false;
		pthread_mutex_unlock(&h->lock);
	} else {
		rc = casfs_edit(&op, id, setattr_edit, &a, &rec, NULL);
	}
	if (rc)
		goto out_reply_err;
	casfs_fill_stat(&rec, id, &st);
	casfs_record_clear(&rec);
	casfs_reply_attr(req, &op, id, &st);
	return;

out_reply_err:
	fuse_reply_err(req, -rc);
}

void casfs_fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	unsigned char id[CASFS_ID_LEN];
	struct casfs_record rec;
	struct op op;
	char *target;
	int rc;

	casfs_op_start(&op, req);
	rc = casfs_node_id(&op, ino, id);
	if (!rc)
		rc = casfs_load(&op, id, &rec, NULL);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (rec.type != CASFS_LNK) {
		casfs_record_clear(&rec);
		fuse_reply_err(req, EINVAL);
		return;
	}
	target = malloc(rec.len + 1);
	if (!target) {
		casfs_record_clear(&rec);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(target, rec.data, rec.len);
	target[rec.len] = '\0';
	casfs_record_clear(&rec);
	fuse_reply_readlink(req, target);
	free(target);
}

/* dir.c - directory entries (create, mkdir, symlink, mknod, unlink, rmdir)
 * and listings (opendir, readdir). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cas/os.h>

#include "fs.h"

/* Adding an entry to a directory. */
struct add_arg {
	const char *name;
	uint8_t type;
	const unsigned char *id;
	size_t max;
	/* When the name is taken: what it names. */
	uint8_t found_type;
	unsigned char found_id[CASFS_ID_LEN];
};

static int add_edit(void *varg, struct casfs_record *rec, uint64_t version)
{
	struct add_arg *a = varg;
	size_t len = strlen(a->name);
	long i;
	int rc;

	(void)version;
	if (rec->type != CASFS_DIR)
		return -ENOTDIR;
	if (rec->flags & CASFS_F_DEAD)
		return -ENOENT;
	i = casfs_record_dir_find(rec, a->name, len);
	if (i >= 0) {
		a->found_type = rec->ents[i].type;
		memcpy(a->found_id, rec->ents[i].id, CASFS_ID_LEN);
		return -EEXIST;
	}
	rc = casfs_record_dir_add(rec, a->name, len, a->type, a->id);
	if (rc)
		return casfs_err_of(rc);
	if (casfs_record_size(rec) > a->max)
		return -ENOSPC;
	cas_os_realtime(&rec->mtime);
	rec->ctime = rec->mtime;
	return 0;
}

/* A fresh random inode id, never the root's. */
static int new_id(unsigned char *id)
{
	do {
		if (cas_os_random(id, CASFS_ID_LEN) != CAS_OK)
			return -EIO;
	} while (casfs_inodes_is_root(id));
	return 0;
}

/* Opens the regular file that won a create race against us. */
static void open_existing(fuse_req_t req, struct op *op, const unsigned char *id,
			  struct fuse_file_info *fi)
{
	struct casfs_record rec;
	struct handle *h;
	int rc;

	rc = casfs_load(op, id, &rec, NULL);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = casfs_handle_new(id, fi->flags, &h);
	if (rc) {
		casfs_record_clear(&rec);
		fuse_reply_err(req, -rc);
		return;
	}
	casfs_reply_entry(req, op, id, &rec, fi, h);
	casfs_record_clear(&rec);
}

/* Creates rec as a new inode named name in parent: writes its register
 * first, then adds the entry, so that a crash in between leaves an orphan
 * register and never a dangling entry. fi: a create (open the result). */
static void make_node(fuse_req_t req, struct op *op, fuse_ino_t parent, const char *name,
		      struct casfs_record *rec, struct fuse_file_info *fi)
{
	unsigned char pid[CASFS_ID_LEN], id[CASFS_ID_LEN];
	struct add_arg a = {name, rec->type, id, op->fs->max_size, 0, {0}};
	struct handle *h = NULL;
	int rc;

	rc = casfs_check_name(name);
	if (!rc)
		rc = casfs_node_id(op, parent, pid);
	if (!rc)
		rc = new_id(id);
	if (rc)
		goto out_reply_err;
	rc = casfs_store_new(op, id, rec);
	if (rc)
		goto out_reply_err;
	rc = casfs_edit(op, pid, add_edit, &a, NULL, NULL);
	if (rc == -EEXIST && fi && !(fi->flags & O_EXCL)) {
		/* Lost a create race: open what won it, as open(2) would. */
		if (a.found_type == CASFS_REG) {
			open_existing(req, op, a.found_id, fi);
			return;
		}
		if (a.found_type == CASFS_DIR)
			rc = -EISDIR;
	}
	if (rc)
		goto out_reply_err;
	if (fi) {
		rc = casfs_handle_new(id, fi->flags & ~O_TRUNC, &h);
		if (rc)
			goto out_reply_err;
	}
	casfs_reply_entry(req, op, id, rec, fi, h);
	return;

out_reply_err:
	fuse_reply_err(req, -rc);
}

void casfs_fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct casfs_record rec;
	struct timespec now;
	struct op op;

	(void)rdev;
	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	casfs_op_start(&op, req);
	cas_os_realtime(&now);
	casfs_record_init(&rec, CASFS_REG, mode, ctx->uid, ctx->gid, &now);
	make_node(req, &op, parent, name, &rec, NULL);
}

void casfs_fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     struct fuse_file_info *fi)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct casfs_record rec;
	struct timespec now;
	struct op op;

	casfs_op_start(&op, req);
	cas_os_realtime(&now);
	casfs_record_init(&rec, CASFS_REG, mode, ctx->uid, ctx->gid, &now);
	make_node(req, &op, parent, name, &rec, fi);
}

void casfs_fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct casfs_record rec;
	struct timespec now;
	struct op op;

	casfs_op_start(&op, req);
	cas_os_realtime(&now);
	casfs_record_init(&rec, CASFS_DIR, mode, ctx->uid, ctx->gid, &now);
	make_node(req, &op, parent, name, &rec, NULL);
}

void casfs_fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct casfs_record rec;
	struct timespec now;
	size_t len = strlen(link);
	struct op op;

	if (len == 0 || len > CASFS_SYMLINK_MAX) {
		fuse_reply_err(req, len ? ENAMETOOLONG : ENOENT);
		return;
	}
	casfs_op_start(&op, req);
	cas_os_realtime(&now);
	casfs_record_init(&rec, CASFS_LNK, 0777, ctx->uid, ctx->gid, &now);
	rec.data = (unsigned char *)link; /* borrowed: not cleared */
	rec.len = len;
	make_node(req, &op, parent, name, &rec, NULL);
}

void casfs_fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	/* No hard links: an inode has exactly one entry (fs/FORMAT.md). */
	fuse_reply_err(req, EPERM);
}

int casfs_remove_edit(void *varg, struct casfs_record *rec, uint64_t version)
{
	struct remove_arg *a = varg;
	long i;

	(void)version;
	if (rec->type != CASFS_DIR)
		return -ENOTDIR;
	i = casfs_record_dir_find(rec, a->name, strlen(a->name));
	if (a->only_id) {
		if (i < 0 || memcmp(rec->ents[i].id, a->only_id, CASFS_ID_LEN))
			return CASFS_KEEP;
	} else {
		if (i < 0)
			return -ENOENT;
		if (!a->want_dir && rec->ents[i].type == CASFS_DIR)
			return -EISDIR;
		if (a->want_dir && rec->ents[i].type != CASFS_DIR)
			return -ENOTDIR;
	}
	casfs_record_dir_remove(rec, (size_t)i);
	cas_os_realtime(&rec->mtime);
	rec->ctime = rec->mtime;
	return 0;
}

void casfs_fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct remove_arg a = {name, false, NULL};
	unsigned char pid[CASFS_ID_LEN];
	struct op op;
	int rc;

	casfs_op_start(&op, req);
	rc = strlen(name) > CASFS_NAME_MAX ? -ENAMETOOLONG : casfs_node_id(&op, parent, pid);
	if (!rc)
		rc = casfs_edit(&op, pid, casfs_remove_edit, &a, NULL, NULL);
	fuse_reply_err(req, -rc);
}

int casfs_kill_edit(void *varg, struct casfs_record *rec, uint64_t version)
{
	struct kill_arg *a = varg;

	(void)version;
	a->changed = false;
	if (rec->type != CASFS_DIR)
		return -ENOTDIR;
	if (a->revive) {
		if (!(rec->flags & CASFS_F_DEAD))
			return CASFS_KEEP;
		rec->flags &= (uint16_t)~CASFS_F_DEAD;
		return 0;
	}
	if (rec->nent)
		return -ENOTEMPTY;
	if (rec->flags & CASFS_F_DEAD)
		return CASFS_KEEP;
	rec->flags |= CASFS_F_DEAD;
	cas_os_realtime(&rec->ctime);
	a->changed = true;
	return 0;
}

int casfs_find_entry(struct op *op, const unsigned char *dir, const char *name, uint8_t *type,
		     unsigned char *id)
{
	struct casfs_record rec;
	long i;
	int rc;

	rc = casfs_load(op, dir, &rec, NULL);
	if (rc)
		return rc;
	rc = -ENOTDIR;
	if (rec.type != CASFS_DIR)
		goto out_clear;
	rc = -ENOENT;
	i = casfs_record_dir_find(&rec, name, strlen(name));
	if (i < 0)
		goto out_clear;
	*type = rec.ents[i].type;
	memcpy(id, rec.ents[i].id, CASFS_ID_LEN);
	rc = 0;
out_clear:
	casfs_record_clear(&rec);
	return rc;
}

void casfs_fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	unsigned char pid[CASFS_ID_LEN], cid[CASFS_ID_LEN];
	struct remove_arg ra = {name, true, cid};
	struct kill_arg ka = {false, false};
	struct op op;
	uint8_t type;
	int rc;

	casfs_op_start(&op, req);
	rc = strlen(name) > CASFS_NAME_MAX ? -ENAMETOOLONG : casfs_node_id(&op, parent, pid);
	if (!rc)
		rc = casfs_find_entry(&op, pid, name, &type, cid);
	if (!rc && type != CASFS_DIR)
		rc = -ENOTDIR;
	/* First the directory refuses new entries (if it is empty), then its
	 * entry goes: no entry can be added to it once it is unreachable. */
	if (!rc)
		rc = casfs_edit(&op, cid, casfs_kill_edit, &ka, NULL, NULL);
	if (!rc)
		rc = casfs_edit(&op, pid, casfs_remove_edit, &ra, NULL, NULL);
	fuse_reply_err(req, -rc);
}

/* An open directory: the entries read at offset 0, so that later offsets
 * stay meaningful. */
struct dirhandle {
	pthread_mutex_t lock;
	unsigned char id[CASFS_ID_LEN];
	bool loaded;
	struct casfs_record rec;
};

void casfs_fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirhandle *d;
	struct op op;
	int rc;

	casfs_op_start(&op, req);
	d = calloc(1, sizeof(*d));
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = casfs_node_id(&op, ino, d->id);
	if (!rc && pthread_mutex_init(&d->lock, NULL))
		rc = -ENOMEM;
	if (rc) {
		free(d);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi)) {
		pthread_mutex_destroy(&d->lock);
		free(d);
	}
}

void casfs_fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct dirhandle *d = (struct dirhandle *)(uintptr_t)fi->fh;
	size_t pos = 0, i;
	struct op op;
	char *buf;
	int rc;

	(void)ino;
	casfs_op_start(&op, req);
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&d->lock);
	if (off == 0 || !d->loaded) {
		casfs_record_clear(&d->rec);
		d->loaded = false;
		rc = casfs_load(&op, d->id, &d->rec, NULL);
		if (!rc && d->rec.type != CASFS_DIR) {
			casfs_record_clear(&d->rec);
			rc = -ENOTDIR;
		}
		if (rc) {
			pthread_mutex_unlock(&d->lock);
			free(buf);
			fuse_reply_err(req, -rc);
			return;
		}
		d->loaded = true;
	}
	for (i = off < 0 ? 0 : (size_t)off; i < d->rec.nent + 2; i++) {
		const char *name;
		struct stat st;
		size_t n;

		memset(&st, 0, sizeof(st));
		if (i < 2) {
			name = i == 0 ? "." : "..";
			st.st_ino = i == 0 ? casfs_inodes_ino(d->id) : 1;
			st.st_mode = S_IFDIR;
		} else {
			const struct casfs_dirent *e = &d->rec.ents[i - 2];

			name = e->name;
			st.st_ino = casfs_inodes_ino(e->id);
			st.st_mode = e->type == CASFS_DIR   ? S_IFDIR
				     : e->type == CASFS_LNK ? S_IFLNK
							    : S_IFREG;
		}
		n = fuse_add_direntry(req, buf + pos, size - pos, name, &st, (off_t)(i + 1));
		if (n > size - pos)
			break;
		pos += n;
	}
	pthread_mutex_unlock(&d->lock);
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

void casfs_fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirhandle *d = (struct dirhandle *)(uintptr_t)fi->fh;

	(void)ino;
	casfs_record_clear(&d->rec);
	pthread_mutex_destroy(&d->lock);
	free(d);
	fuse_reply_err(req, 0);
}

void casfs_fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0);
}

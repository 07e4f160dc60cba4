/* dir.c - directory entries (create, mkdir, symlink, mknod, link, unlink,
 * rmdir: FUSE requests in, ns.h out) and listings (opendir, readdir). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cas/os.h>

#include "fs.h"
#include "session.h"

/* Opens the regular file that won a create race against us. */
static void open_existing(fuse_req_t req, struct op *op, struct casfs_ns *ns,
			  const unsigned char *id, struct fuse_file_info *fi)
{
	struct casfs_record rec;
	struct handle *h;
	int rc;

	rc = casfs_ns_end(ns, casfs_ns_load(ns, id, &rec, NULL));
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
	/* Counted for the handle's release (file.c), before the reply. */
	casfs_inodes_open(op->fs->inodes, id);
	casfs_reply_entry(req, op, id, &rec, fi, h);
	casfs_record_clear(&rec);
}

/* Creates rec (borrowed) as a new inode named name in parent (ns.h); fi:
 * a create (open the result). */
static void make_node(fuse_req_t req, fuse_ino_t parent, const char *name, struct casfs_record *rec,
		      struct fuse_file_info *fi)
{
	unsigned char pid[CASFS_ID_LEN], id[CASFS_ID_LEN], found[CASFS_ID_LEN];
	struct casfs_regs regs;
	struct casfs_ns ns;
	struct handle *h = NULL;
	uint8_t found_type = 0;
	struct op op;
	int rc;

	casfs_op_start(&op, req);
	casfs_ns_begin(&op, &regs, &ns);
	rc = casfs_check_name(name);
	if (!rc)
		rc = casfs_node_id(&op, parent, pid);
	if (!rc)
		rc = casfs_ns_end(&ns,
				  casfs_ns_create(&ns, pid, name, rec, id, &found_type, found));
	if (rc == -EEXIST && fi && !(fi->flags & O_EXCL)) {
		/* Lost a create race: open what won it, as open(2) would. */
		if (found_type == CASFS_REG) {
			open_existing(req, &op, &ns, found, fi);
			return;
		}
		if (found_type == CASFS_DIR)
			rc = -EISDIR;
	}
	if (rc)
		goto out_reply_err;
	if (fi) {
		rc = casfs_handle_new(id, fi->flags & ~O_TRUNC, &h);
		if (rc)
			goto out_reply_err;
	}
	if (fi)
		casfs_inodes_open(op.fs->inodes, id);
	casfs_reply_entry(req, &op, id, rec, fi, h);
	return;

out_reply_err:
	fuse_reply_err(req, -rc);
}

/* A new record of type for the request's caller. */
static void new_record(fuse_req_t req, struct casfs_record *rec, uint8_t type, mode_t mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct timespec now;

	cas_os_realtime(&now);
	casfs_record_init(rec, type, mode, ctx->uid, ctx->gid, &now);
}

void casfs_fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct casfs_record rec;
	uint8_t type;

	switch (mode & S_IFMT) {
	case S_IFREG:
		type = CASFS_REG;
		break;
	case S_IFIFO:
		type = CASFS_FIFO;
		break;
	case S_IFSOCK:
		type = CASFS_SOCK;
		break;
	case S_IFCHR:
		type = CASFS_CHR;
		break;
	case S_IFBLK:
		type = CASFS_BLK;
		break;
	default:
		fuse_reply_err(req, (mode & S_IFMT) == S_IFDIR ? EPERM : EINVAL);
		return;
	}
	new_record(req, &rec, type, mode);
	if (type == CASFS_CHR || type == CASFS_BLK)
		rec.rdev = (uint64_t)rdev;
	make_node(req, parent, name, &rec, NULL);
}

void casfs_fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     struct fuse_file_info *fi)
{
	struct casfs_record rec;

	new_record(req, &rec, CASFS_REG, mode);
	make_node(req, parent, name, &rec, fi);
}

void casfs_fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct casfs_record rec;

	new_record(req, &rec, CASFS_DIR, mode);
	make_node(req, parent, name, &rec, NULL);
}

void casfs_fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct casfs_record rec;
	size_t len = strlen(link);

	if (len == 0 || len > CASFS_SYMLINK_MAX) {
		fuse_reply_err(req, len ? ENAMETOOLONG : ENOENT);
		return;
	}
	new_record(req, &rec, CASFS_LNK, 0777);
	rec.data = (unsigned char *)link; /* borrowed: not cleared */
	rec.len = len;
	make_node(req, parent, name, &rec, NULL);
}

void casfs_fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	unsigned char id[CASFS_ID_LEN], pid[CASFS_ID_LEN];
	struct casfs_record rec;
	struct casfs_regs regs;
	struct casfs_ns ns;
	struct op op;
	int rc;

	casfs_op_start(&op, req);
	casfs_ns_begin(&op, &regs, &ns);
	rc = casfs_check_name(newname);
	if (!rc)
		rc = casfs_node_id(&op, ino, id);
	if (!rc)
		rc = casfs_node_id(&op, newparent, pid);
	if (!rc)
		rc = casfs_ns_end(&ns, casfs_ns_link(&ns, id, pid, newname, &rec));
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	casfs_reply_entry(req, &op, id, &rec, NULL, NULL);
	casfs_record_clear(&rec);
}

/* unlink and rmdir. */
static void remove_node(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir)
{
	unsigned char pid[CASFS_ID_LEN];
	struct casfs_regs regs;
	struct casfs_ns ns;
	struct op op;
	int rc;

	casfs_op_start(&op, req);
	casfs_ns_begin(&op, &regs, &ns);
	ns.held = casfs_msession_keep;
	ns.held_arg = &op;
	rc = strlen(name) > CASFS_NAME_MAX ? -ENAMETOOLONG : casfs_node_id(&op, parent, pid);
	if (!rc)
		rc = casfs_ns_end(&ns, dir ? casfs_ns_rmdir(&ns, pid, name)
					   : casfs_ns_unlink(&ns, pid, name));
	fuse_reply_err(req, -rc);
}

void casfs_fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_node(req, parent, name, false);
}

void casfs_fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_node(req, parent, name, true);
}

/* An open directory: the entries read at offset 0, so that later offsets
 * stay meaningful. */
struct dirhandle {
	pthread_mutex_t lock;
	unsigned char id[CASFS_ID_LEN];
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

/* Filling one readdir reply. */
struct fill {
	fuse_req_t req;
	char *buf;
	size_t size, pos;
};

static int fill_one(void *arg, const struct casfs_dirent *e, uint64_t place)
{
	struct fill *f = arg;
	struct stat st;
	size_t n;

	memset(&st, 0, sizeof(st));
	st.st_ino = casfs_inodes_ino(e->id);
	st.st_mode = casfs_type_mode(e->type);
	n = fuse_add_direntry(f->req, f->buf + f->pos, f->size - f->pos, e->name, &st,
			      (off_t)place);
	if (n > f->size - f->pos)
		return 1; /* full: the next call goes on from the last place */
	f->pos += n;
	return 0;
}

/* One page per call: the buckets from the place off on (casfs_ns_readdir),
 * so a large directory streams and a listing sees each entry that stays
 * once, though buckets split and merge under it (fs/FORMAT.md
 * "Directories"). Offsets 1 and 2 are "." and "..". */
void casfs_fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct dirhandle *d = (struct dirhandle *)(uintptr_t)fi->fh;
	struct fill f = {req, NULL, size, 0};
	struct casfs_regs regs;
	struct casfs_ns ns;
	struct op op;
	int rc = 0;
	off_t i;

	(void)ino;
	casfs_op_start(&op, req);
	f.buf = malloc(size);
	if (!f.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (i = off < 0 ? 0 : off; i < 2; i++) {
		struct stat st;
		size_t n;

		memset(&st, 0, sizeof(st));
		st.st_ino = i == 0 ? casfs_inodes_ino(d->id) : 1;
		st.st_mode = S_IFDIR;
		n = fuse_add_direntry(req, f.buf + f.pos, size - f.pos, i == 0 ? "." : "..", &st,
				      i + 1);
		if (n > size - f.pos)
			break;
		f.pos += n;
	}
	if (i >= 2) {
		casfs_ns_begin(&op, &regs, &ns);
		rc = casfs_ns_end(&ns, casfs_ns_readdir(&ns, d->id, off < 2 ? 0 : (uint64_t)off,
							fill_one, &f));
		/* Removed and deleted while open: it lists nothing, as a
		 * removed directory does. */
		if (rc == -ENOENT || rc == 1)
			rc = 0;
	}
	if (rc && f.pos == 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, f.buf, f.pos);
	free(f.buf);
}

void casfs_fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirhandle *d = (struct dirhandle *)(uintptr_t)fi->fh;

	(void)ino;
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

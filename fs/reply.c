/* reply.c - what the FUSE operations share: node ids and names in,
 * attributes and entries out. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fs.h"

int casfs_node_id(struct op *op, fuse_ino_t ino, unsigned char *id)
{
	return casfs_inodes_get(op->fs->inodes, ino, id) ? 0 : -ESTALE;
}

int casfs_check_name(const char *name)
{
	size_t len = strlen(name);

	if (len > CASFS_NAME_MAX)
		return -ENAMETOOLONG;
	if (!casfs_record_name_valid(name, len))
		return -EINVAL;
	return 0;
}

void casfs_fill_stat(const struct casfs_record *rec, const unsigned char *id, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = casfs_inodes_ino(id);
	switch (rec->type) {
	case CASFS_DIR:
		st->st_mode = S_IFDIR;
		st->st_nlink = 2 + casfs_record_dir_subdirs(rec);
		st->st_size = (off_t)casfs_record_size(rec);
		break;
	case CASFS_LNK:
		st->st_mode = S_IFLNK;
		st->st_nlink = 1;
		st->st_size = (off_t)rec->len;
		break;
	default:
		st->st_mode = S_IFREG;
		st->st_nlink = 1;
		st->st_size = (off_t)rec->len;
		break;
	}
	st->st_mode |= rec->mode;
	st->st_uid = rec->uid;
	st->st_gid = rec->gid;
	st->st_blksize = 4096;
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_atim = rec->atime;
	st->st_mtim = rec->mtime;
	st->st_ctim = rec->ctime;
}

static double cache_timeout(const struct casfs_fs *fs)
{
	return fs->cache ? CASFS_CACHE_TIMEOUT : 0.0;
}

void casfs_set_open_flags(const struct casfs_fs *fs, struct fuse_file_info *fi)
{
	fi->direct_io = !fs->cache;
	fi->keep_cache = 0;
}

void casfs_reply_entry_attr(fuse_req_t req, struct op *op, const unsigned char *id,
			    const struct stat *attr, struct fuse_file_info *fi, struct handle *h)
{
	struct fuse_entry_param e;
	uint64_t nodeid;

	if (casfs_inodes_ref(op->fs->inodes, id, &nodeid)) {
		if (h)
			casfs_handle_free(h);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	casfs_inodes_set_attr(op->fs->inodes, id, attr);
	memset(&e, 0, sizeof(e));
	e.ino = nodeid;
	e.attr = *attr;
	e.attr_timeout = cache_timeout(op->fs);
	e.entry_timeout = cache_timeout(op->fs);
	if (fi) {
		fi->fh = (uintptr_t)h;
		casfs_set_open_flags(op->fs, fi);
		if (fuse_reply_create(req, &e, fi)) {
			casfs_inodes_forget(op->fs->inodes, nodeid, 1);
			casfs_handle_free(h);
		}
	} else if (fuse_reply_entry(req, &e)) {
		casfs_inodes_forget(op->fs->inodes, nodeid, 1);
	}
}

void casfs_reply_entry(fuse_req_t req, struct op *op, const unsigned char *id,
		       const struct casfs_record *rec, struct fuse_file_info *fi, struct handle *h)
{
	struct stat st;

	casfs_fill_stat(rec, id, &st);
	casfs_reply_entry_attr(req, op, id, &st, fi, h);
}

void casfs_reply_attr(fuse_req_t req, struct op *op, const unsigned char *id, const struct stat *st)
{
	casfs_inodes_set_attr(op->fs->inodes, id, st);
	fuse_reply_attr(req, st, cache_timeout(op->fs));
}

/* reply.c - what the FUSE operations share: node ids and names in,
 * attributes and entries out. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <cas/os.h>

#include "fs.h"

void casfs_ns_begin(struct op *op, struct casfs_regs *regs, struct casfs_ns *ns)
{
	casfs_op_regs(op, regs);
	memset(ns, 0, sizeof(*ns));
	ns->regs = regs;
	ns->max_size = op->fs->max_size;
	cas_os_realtime(&ns->now);
}

int casfs_ns_end(const struct casfs_ns *ns, int rc)
{
	if (ns->errmsg[0])
		fuse_log(FUSE_LOG_ERR, "casfs: %s\n", ns->errmsg);
	return rc;
}

mode_t casfs_type_mode(uint8_t type)
{
	switch (type) {
	case CASFS_DIR:
		return S_IFDIR;
	case CASFS_LNK:
		return S_IFLNK;
	case CASFS_FIFO:
		return S_IFIFO;
	case CASFS_SOCK:
		return S_IFSOCK;
	case CASFS_CHR:
		return S_IFCHR;
	case CASFS_BLK:
		return S_IFBLK;
	default:
		return S_IFREG;
	}
}

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
	st->st_mode = casfs_type_mode(rec->type) | rec->mode;
	st->st_nlink = rec->nlink;
	switch (rec->type) {
	case CASFS_DIR:
		/* Its entry, ".", and the ".." of each subdirectory; 0 once
		 * removed. A split directory's other buckets are not read
		 * here: 1, which tools such as find take as "not counted". */
		if (rec->nlink && rec->depth)
			st->st_nlink = 1;
		else if (rec->nlink)
			st->st_nlink = 2 + casfs_record_dir_subdirs(rec);
		st->st_size = (off_t)casfs_record_size(rec);
		break;
	case CASFS_CHR:
	case CASFS_BLK:
		st->st_rdev = (dev_t)rec->rdev;
		break;
	case CASFS_REG:
	case CASFS_LNK:
		st->st_size = (off_t)rec->len;
		break;
	default:
		break;
	}
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

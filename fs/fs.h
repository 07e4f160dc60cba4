/* fs.h - what the files of the casfs filesystem share: the mount's state,
 * open files, and the operations each file holds for the table in ops.c. */
#ifndef CASFS_FS_H
#define CASFS_FS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <fuse_lowlevel.h>

#include <cas/client.h>

#include "inode.h"
#include "ns.h"
#include "ops.h"
#include "record.h"
#include "regs.h"
#include "share.h"
#include "round.h"

/* Kernel cache lifetime of names and attributes with -o cache, seconds. */
#define CASFS_CACHE_TIMEOUT 1.0
/* Stripes of the per-key locks (a power of two). */
#define CASFS_KEY_LOCKS 256
/* Remembered lookups that timed out (see casfs_fs_lookup). */
#define CASFS_FAILED_LOOKUPS 16

/* A lookup that failed because the cluster did not answer in time. */
struct failed_lookup {
	uint64_t parent;
	uint64_t name_hash;
	pid_t pid;
	struct timespec at; /* CLOCK_MONOTONIC */
};

struct casfs_fs {
	struct cas_client *client;
	struct casfs_inodes *inodes;
	unsigned timeout_ms;
	bool cache;
	size_t max_size;
	/* One round at a time per register from this mount: concurrent
	 * rounds of one proposer on one key only reject each other's ballots
	 * (every lookup reads its directory), and under load they back off
	 * until the deadline. Each round holds one stripe, never two. */
	pthread_mutex_t key_locks[CASFS_KEY_LOCKS];
	/* Reads of one key waiting for its stripe share a round (share.h). */
	struct casfs_share read_shares[CASFS_KEY_LOCKS];
	pthread_mutex_t failed_lock;
	struct failed_lookup failed[CASFS_FAILED_LOOKUPS];
	struct casfs_locks *locks; /* flock and fcntl locks (lock.h) */
};

/* An open file. lock serialises the handle's writes, flushes and
 * truncation. */
struct handle {
	pthread_mutex_t lock;
	unsigned char id[CASFS_ID_LEN];
	bool append;	    /* O_APPEND: write at the register's end */
	bool pending_trunc; /* O_TRUNC not committed yet */
	/* This open's number, never reused within the mount: the owner of its
	 * flock lock (lock_ops.c says why not the kernel's). */
	uint64_t serial;
};

/* reply.c: node ids and names in, attributes and entries out. */

/* Copies the register id of the kernel's node ino into id. 0 or -ESTALE
 * (id unchanged). */
int casfs_node_id(struct op *op, fuse_ino_t ino, unsigned char *id);

/* 0 when name may be a directory entry; -ENAMETOOLONG or -EINVAL. */
int casfs_check_name(const char *name);

/* Starts the namespace operations of op: regs for op (casfs_op_regs), ns
 * over regs (valid while regs is), its time now. */
void casfs_ns_begin(struct op *op, struct casfs_regs *regs, struct casfs_ns *ns);

/* Logs ns->errmsg, if any; returns rc. */
int casfs_ns_end(const struct casfs_ns *ns, int rc);

/* The file type bits (S_IF*) of a record or entry type. */
mode_t casfs_type_mode(uint8_t type);

/* Fills st (all of it) with the attributes of rec, the record of id. */
void casfs_fill_stat(const struct casfs_record *rec, const unsigned char *id, struct stat *st);

/* Sets the kernel cache flags of an opened file. */
void casfs_set_open_flags(const struct casfs_fs *fs, struct fuse_file_info *fi);

/* Replies to a lookup-like request with id's entry, taking a lookup
 * reference, or with a create reply opening h when fi is not NULL (h then
 * belongs to the kernel, or is freed when the reply fails). The entry
 * carries attr, which the mount remembers as what it last reported for id. */
void casfs_reply_entry_attr(fuse_req_t req, struct op *op, const unsigned char *id,
			    const struct stat *attr, struct fuse_file_info *fi, struct handle *h);

/* casfs_reply_entry_attr with the attributes of rec (borrowed). */
void casfs_reply_entry(fuse_req_t req, struct op *op, const unsigned char *id,
		       const struct casfs_record *rec, struct fuse_file_info *fi, struct handle *h);

/* Answers a getattr or setattr with st, remembered for later lookups. */
void casfs_reply_attr(fuse_req_t req, struct op *op, const unsigned char *id,
		      const struct stat *st);

/* file.c: open files. */

/* A handle on the regular file id opened with flags (O_APPEND, O_TRUNC
 * count). 0 and *out, to free with casfs_handle_free, or -ENOMEM (*out
 * unchanged). */
int casfs_handle_new(const unsigned char *id, int flags, struct handle **out);

void casfs_handle_free(struct handle *h);

void casfs_fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void casfs_fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		   struct fuse_file_info *fi);
void casfs_fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi);
void casfs_fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void casfs_fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void casfs_fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);

/* dir.c: directory entries (through ns.h) and listings. */

void casfs_fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev);
void casfs_fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     struct fuse_file_info *fi);
void casfs_fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode);
void casfs_fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name);
void casfs_fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname);
void casfs_fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void casfs_fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void casfs_fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void casfs_fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi);
void casfs_fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void casfs_fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi);

/* attr.c: lookups and attributes. */

void casfs_fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void casfs_fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup);
void casfs_fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets);
void casfs_fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void casfs_fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		      struct fuse_file_info *fi);
void casfs_fs_readlink(fuse_req_t req, fuse_ino_t ino);

/* rename.c */

void casfs_fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		     const char *newname, unsigned int flags);

/* xattr_ops.c: extended attributes, user.* and user.casfs.* (xattr.h). */

void casfs_fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		       size_t size, int flags);
void casfs_fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void casfs_fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void casfs_fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

#endif

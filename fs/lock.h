/* lock.h - flock(2) and fcntl(2) locks across mounts: the FUSE lock
 * operations over lock registers (lease.h), what this mount holds, and
 * the waiters of blocking requests, answered later from a thread of their
 * own so that no FUSE worker waits for a lock. Semantics: README.md,
 * "Locks". */
#ifndef CASFS_LOCK_H
#define CASFS_LOCK_H

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>

#include <fuse_lowlevel.h>

struct casfs_fs;
struct casfs_locks;
struct handle;
struct op;

/* The lock state of fs, with sessions of lease_ms. *out, or -ENOMEM. No
 * thread runs before the first lock. */
int casfs_locks_new(struct casfs_fs *fs, unsigned lease_ms, struct casfs_locks **out);

/* Answers every waiting request (EINTR), stops the threads and gives the
 * session up, so that other mounts take its locks at once. Call before
 * the FUSE session goes (the destroy operation). Idempotent. */
void casfs_locks_stop(struct casfs_locks *L);

/* Stops L and frees it. NULL is ignored. */
void casfs_locks_free(struct casfs_locks *L);

void casfs_fs_flock(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op);
void casfs_fs_getlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock);
void casfs_fs_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock,
		    int sleep);

/* The operations that locks wrap (lock_ops in ops.c's table): a write
 * through a handle whose lock was lost fails with ENOLCK; a flush gives
 * back the POSIX locks of its lock owner; a release the flock lock of its
 * open file. */
void casfs_fs_lk_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		       struct fuse_file_info *fi);
void casfs_fs_lk_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void casfs_fs_lk_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

/* The text of user.casfs.lock for the inode id: the fencing counter and
 * one line per hold. *text is malloc'd (the caller frees), *len its
 * length. 0 or -errno. */
int casfs_locks_xattr(struct op *op, const unsigned char *id, char **text, size_t *len);

#endif

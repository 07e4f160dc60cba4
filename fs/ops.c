/* ops.c - the casfs filesystem: its lifecycle and the table of FUSE
 * low-level operations over registers, which the other files of fs/ hold
 * (fs.h). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "fs.h"
#include "lease.h"
#include "lock.h"
#include "metrics.h"

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* open(O_TRUNC) arrives as one OPEN, not OPEN plus SETATTR: the
	 * truncation then rides on the first write, or the first flush
	 * commits it (file.c). */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	/* Off (libfuse 3 defaults to it where it passes it on; 3.14 on this
	 * kernel does not): with it, casfs would answer for clearing
	 * set-user-ID and set-group-ID on write, truncate and chown, and the
	 * kernel would drop those changes from its setattrs. Off, the kernel
	 * clears them itself in the setattr of a truncate or chown, and casfs
	 * clears them on write (file.c, kill_priv), the one case the kernel
	 * leaves to a direct_io filesystem. */
	conn->want &= ~(unsigned)FUSE_CAP_HANDLE_KILLPRIV;
	/* flock and fcntl locks come to casfs (lock.c) instead of staying in
	 * this kernel: they hold across mounts. */
	if (conn->capable & FUSE_CAP_FLOCK_LOCKS)
		conn->want |= FUSE_CAP_FLOCK_LOCKS;
	if (conn->capable & FUSE_CAP_POSIX_LOCKS)
		conn->want |= FUSE_CAP_POSIX_LOCKS;
}

/* Before the FUSE session goes: answer waiting lock requests and give the
 * lock session up, so that other mounts take its locks at once. */
static void fs_destroy(void *userdata)
{
	struct casfs_fs *fs = userdata;

	casfs_locks_stop(fs->locks);
}

/* Bytes a register is counted to take for the free "inodes" statfs
 * reports (README, "Monitor"): a small record, its key and its acceptor
 * state in an LMDB leaf, with room to spare. */
#define REGISTER_BYTES 512

/* Deadline of asking the nodes their use: df must not hang on a silent
 * node for a whole operation's deadline. */
#define STATFS_TIMEOUT_MS 1000

/* The cluster's use and room as its members report them (the client
 * keeps an answer for CAS_USAGE_CACHE_MS, so df costs no rounds, and at
 * most one health request per member every so often): blocks of 4 KiB,
 * the fullest member's bytes used out of the smallest member's capacity;
 * inodes: the registers held, and the free bytes over REGISTER_BYTES. */
static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct casfs_fs *fs = fuse_req_userdata(req);
	struct cas_usage u;
	struct statvfs sv;
	uint64_t free_bytes;
	int rc;

	(void)ino;
	rc = casfs_usage(fs, STATFS_TIMEOUT_MS, &u);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	free_bytes = u.capacity - u.bytes;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = u.capacity / 4096;
	sv.f_bfree = free_bytes / 4096;
	sv.f_bavail = sv.f_bfree;
	sv.f_ffree = free_bytes / REGISTER_BYTES;
	sv.f_favail = sv.f_ffree;
	sv.f_files = u.keys + sv.f_ffree;
	sv.f_namemax = CASFS_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

/* Every request of the table passes through one of these: they time it,
 * from the handler's call to its return (metrics.h; a lock request that
 * waits is timed until it is queued, lock.c). */
#define TIMED(NAME, label, fn, params, args)                                                       \
	static void timed_##label params                                                           \
	{                                                                                          \
		uint64_t t0 = casfs_metrics_begin(CASFS_OP_##NAME);                                \
                                                                                                   \
		fn args;                                                                           \
		casfs_metrics_end(CASFS_OP_##NAME, t0);                                            \
	}

TIMED(LOOKUP, lookup, casfs_fs_lookup, (fuse_req_t req, fuse_ino_t parent, const char *name),
      (req, parent, name))
TIMED(FORGET, forget, casfs_fs_forget, (fuse_req_t req, fuse_ino_t ino, uint64_t nlookup),
      (req, ino, nlookup))
TIMED(FORGET_MULTI, forget_multi, casfs_fs_forget_multi,
      (fuse_req_t req, size_t count, struct fuse_forget_data *forgets), (req, count, forgets))
TIMED(GETATTR, getattr, casfs_fs_getattr,
      (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi), (req, ino, fi))
TIMED(SETATTR, setattr, casfs_fs_setattr,
      (fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi),
      (req, ino, attr, to_set, fi))
TIMED(READLINK, readlink, casfs_fs_readlink, (fuse_req_t req, fuse_ino_t ino), (req, ino))
TIMED(MKNOD, mknod, casfs_fs_mknod,
      (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev),
      (req, parent, name, mode, rdev))
TIMED(MKDIR, mkdir, casfs_fs_mkdir,
      (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode), (req, parent, name, mode))
TIMED(UNLINK, unlink, casfs_fs_unlink, (fuse_req_t req, fuse_ino_t parent, const char *name),
      (req, parent, name))
TIMED(RMDIR, rmdir, casfs_fs_rmdir, (fuse_req_t req, fuse_ino_t parent, const char *name),
      (req, parent, name))
TIMED(SYMLINK, symlink, casfs_fs_symlink,
      (fuse_req_t req, const char *link, fuse_ino_t parent, const char *name),
      (req, link, parent, name))
TIMED(RENAME, rename, casfs_fs_rename,
      (fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
       const char *newname, unsigned int flags),
      (req, parent, name, newparent, newname, flags))
TIMED(LINK, link, casfs_fs_link,
      (fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname),
      (req, ino, newparent, newname))
TIMED(OPEN, open, casfs_fs_open, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
      (req, ino, fi))
TIMED(READ, read, casfs_fs_read,
      (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi),
      (req, ino, size, off, fi))
/* Locks wrap write, flush and release: ENOLCK for a write under a lost
 * lock, locks given back at close. */
TIMED(WRITE, write, casfs_fs_lk_write,
      (fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
       struct fuse_file_info *fi),
      (req, ino, buf, size, off, fi))
TIMED(FLUSH, flush, casfs_fs_lk_flush, (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi),
      (req, ino, fi))
TIMED(RELEASE, release, casfs_fs_lk_release,
      (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi), (req, ino, fi))
TIMED(FSYNC, fsync, casfs_fs_fsync,
      (fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi),
      (req, ino, datasync, fi))
TIMED(OPENDIR, opendir, casfs_fs_opendir,
      (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi), (req, ino, fi))
TIMED(READDIR, readdir, casfs_fs_readdir,
      (fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi),
      (req, ino, size, off, fi))
TIMED(RELEASEDIR, releasedir, casfs_fs_releasedir,
      (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi), (req, ino, fi))
TIMED(FSYNCDIR, fsyncdir, casfs_fs_fsyncdir,
      (fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi),
      (req, ino, datasync, fi))
TIMED(STATFS, statfs, fs_statfs, (fuse_req_t req, fuse_ino_t ino), (req, ino))
TIMED(SETXATTR, setxattr, casfs_fs_setxattr,
      (fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags),
      (req, ino, name, value, size, flags))
TIMED(GETXATTR, getxattr, casfs_fs_getxattr,
      (fuse_req_t req, fuse_ino_t ino, const char *name, size_t size), (req, ino, name, size))
TIMED(LISTXATTR, listxattr, casfs_fs_listxattr, (fuse_req_t req, fuse_ino_t ino, size_t size),
      (req, ino, size))
TIMED(REMOVEXATTR, removexattr, casfs_fs_removexattr,
      (fuse_req_t req, fuse_ino_t ino, const char *name), (req, ino, name))
TIMED(CREATE, create, casfs_fs_create,
      (fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi),
      (req, parent, name, mode, fi))
TIMED(GETLK, getlk, casfs_fs_getlk,
      (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock),
      (req, ino, fi, lock))
TIMED(SETLK, setlk, casfs_fs_setlk,
      (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct flock *lock, int sleep),
      (req, ino, fi, lock, sleep))
TIMED(FLOCK, flock, casfs_fs_flock,
      (fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, int op), (req, ino, fi, op))

const struct fuse_lowlevel_ops casfs_ops = {
	.init = fs_init,
	.destroy = fs_destroy,
	.lookup = timed_lookup,
	.forget = timed_forget,
	.forget_multi = timed_forget_multi,
	.getattr = timed_getattr,
	.setattr = timed_setattr,
	.readlink = timed_readlink,
	.mknod = timed_mknod,
	.mkdir = timed_mkdir,
	.unlink = timed_unlink,
	.rmdir = timed_rmdir,
	.symlink = timed_symlink,
	.rename = timed_rename,
	.link = timed_link,
	.open = timed_open,
	.read = timed_read,
	.write = timed_write,
	.flush = timed_flush,
	.release = timed_release,
	.fsync = timed_fsync,
	.opendir = timed_opendir,
	.readdir = timed_readdir,
	.releasedir = timed_releasedir,
	.fsyncdir = timed_fsyncdir,
	.statfs = timed_statfs,
	.setxattr = timed_setxattr,
	.getxattr = timed_getxattr,
	.listxattr = timed_listxattr,
	.removexattr = timed_removexattr,
	.create = timed_create,
	.getlk = timed_getlk,
	.setlk = timed_setlk,
	.flock = timed_flock,
};

int casfs_fs_new(struct cas_client *c, const struct casfs_options *o, struct casfs_fs **out)
{
	struct casfs_fs *fs = calloc(1, sizeof(*fs));
	size_t i;

	if (!fs)
		return CAS_ENOMEM;
	fs->inodes = casfs_inodes_new();
	if (!fs->inodes) {
		free(fs);
		return CAS_ENOMEM;
	}
	if (casfs_locks_new(fs, o->lease_ms ? o->lease_ms : CASFS_LEASE_DEFAULT_MS, &fs->locks)) {
		casfs_inodes_free(fs->inodes);
		free(fs);
		return CAS_ENOMEM;
	}
	for (i = 0; i < CASFS_KEY_LOCKS; i++) {
		pthread_mutex_init(&fs->key_locks[i], NULL);
		casfs_share_init(&fs->read_shares[i]);
	}
	pthread_mutex_init(&fs->failed_lock, NULL);
	fs->client = c;
	fs->timeout_ms = o->timeout_ms;
	fs->cache = o->cache;
	fs->max_size = o->max_size;
	*out = fs;
	return CAS_OK;
}

void casfs_fs_free(struct casfs_fs *fs)
{
	size_t i;

	if (!fs)
		return;
	casfs_locks_free(fs->locks);
	for (i = 0; i < CASFS_KEY_LOCKS; i++) {
		pthread_mutex_destroy(&fs->key_locks[i]);
		casfs_share_destroy(&fs->read_shares[i]);
	}
	pthread_mutex_destroy(&fs->failed_lock);
	casfs_inodes_free(fs->inodes);
	free(fs);
}

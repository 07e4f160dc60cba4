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

const struct fuse_lowlevel_ops casfs_ops = {
	.init = fs_init,
	.destroy = fs_destroy,
	.lookup = casfs_fs_lookup,
	.forget = casfs_fs_forget,
	.forget_multi = casfs_fs_forget_multi,
	.getattr = casfs_fs_getattr,
	.setattr = casfs_fs_setattr,
	.readlink = casfs_fs_readlink,
	.mknod = casfs_fs_mknod,
	.mkdir = casfs_fs_mkdir,
	.unlink = casfs_fs_unlink,
	.rmdir = casfs_fs_rmdir,
	.symlink = casfs_fs_symlink,
	.rename = casfs_fs_rename,
	.link = casfs_fs_link,
	.open = casfs_fs_open,
	.read = casfs_fs_read,
	/* Locks wrap these: ENOLCK for a write under a lost lock, locks given
	 * back at close. */
	.write = casfs_fs_lk_write,
	.flush = casfs_fs_lk_flush,
	.release = casfs_fs_lk_release,
	.fsync = casfs_fs_fsync,
	.opendir = casfs_fs_opendir,
	.readdir = casfs_fs_readdir,
	.releasedir = casfs_fs_releasedir,
	.fsyncdir = casfs_fs_fsyncdir,
	.statfs = fs_statfs,
	.setxattr = casfs_fs_setxattr,
	.getxattr = casfs_fs_getxattr,
	.listxattr = casfs_fs_listxattr,
	.removexattr = casfs_fs_removexattr,
	.create = casfs_fs_create,
	.getlk = casfs_fs_getlk,
	.setlk = casfs_fs_setlk,
	.flock = casfs_fs_flock,
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
	for (i = 0; i < CASFS_KEY_LOCKS; i++)
		pthread_mutex_init(&fs->key_locks[i], NULL);
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
	for (i = 0; i < CASFS_KEY_LOCKS; i++)
		pthread_mutex_destroy(&fs->key_locks[i]);
	pthread_mutex_destroy(&fs->failed_lock);
	casfs_inodes_free(fs->inodes);
	free(fs);
}

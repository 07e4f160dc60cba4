/* ns.h - the namespace operations (lookup, create, unlink, rmdir, link,
 * rename) over registers: no FUSE, no client, no OS, so that the namespace
 * checker (tests/sim/nscheck.c) runs the very code a mount runs. Every
 * operation that changes two or more registers is one transaction
 * (txn.h); what each one changes is in fs/FORMAT.md, "How operations
 * change registers".
 *
 * Every function returns 0 or a negative errno: -ENOENT, -EEXIST,
 * -ENOTEMPTY, -ENOTDIR, -EISDIR, -EINVAL, -ENOSPC (a directory past the
 * value size), -EIO (a register that holds no record of this format: see
 * ns->errmsg), -ENOMEM, -EBUSY (the names changed under the operation
 * too often; nothing was changed), or -cas_errno(CAS_EUNAVAILABLE) when
 * the cluster did not answer in time (the change may or may not have been
 * made). Nothing else is changed on error, except where a function says. */
#ifndef CASFS_NS_H
#define CASFS_NS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "record.h"
#include "regs.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

/* The depths of buckets seen in directories, by id and hash: where a
 * lookup starts (fs/FORMAT.md "Directories"), one table per mount. */
#define CASFS_NS_HINTS 16384
struct casfs_ns_hints {
	_Atomic uint64_t slot[CASFS_NS_HINTS];
};

/* One request's namespace context. */
struct casfs_ns {
	const struct casfs_regs *regs; /* borrowed */
	size_t max_size;	       /* largest register value */
	struct timespec now;	       /* the time changes record (mtime, ctime) */
	/* A one-line reason when a function returned -EIO, else "". */
	char errmsg[160];
	/* Inside ns.c: the change being run only confirms an error (its
	 * functions check what they would, and change nothing). */
	bool verify;
	/* Asked after an unlink, rmdir or rename over took the last name of
	 * inode id (nlink 0): true keeps its register, which the caller
	 * deletes later (casfs_ns_delete; a mount: at the last close of a
	 * file still open, fs/FORMAT.md "Deletion"). NULL: delete it now. */
	bool (*held)(void *arg, const unsigned char *id);
	void *held_arg;
	/* Bytes of entries a directory bucket holds before it splits (0:
	 * CASFS_NS_BUCKET_BYTES). */
	size_t bucket_max;
	/* Where lookups start; NULL: the process's own. */
	struct casfs_ns_hints *hints;
};

/* A directory bucket's entries, in bytes, before it splits: small enough
 * that a create rewrites little, large enough that a directory of a few
 * hundred short names stays one register. */
#define CASFS_NS_BUCKET_BYTES 8192

/* Test only: deliberately broken deletes for the checker's negative
 * controls; 0 in every real use. */
enum {
	/* unlink, rmdir, rename over delete the inode before the
	 * transaction that removes its name. */
	CASFS_NS_BROKEN_DELETE_FIRST = 1,
	/* ... delete it after, whatever its nlink (hard links). */
	CASFS_NS_BROKEN_DELETE_ANY_NLINK = 2,
};
extern unsigned casfs_ns_broken_delete;

/* Test only: deliberately broken directory buckets. */
enum {
	/* A split moves entries by two changes, not one transaction. */
	CASFS_NS_BROKEN_SPLIT_TWO_ROUNDS = 1,
	/* A bucket read through a stale depth is taken as the one that
	 * holds the name, without checking what it covers. */
	CASFS_NS_BROKEN_STALE_MAP = 2,
};
extern unsigned casfs_ns_broken_bucket;

/* Forgets every hint in h (NULL: the process's). */
void casfs_ns_hints_clear(struct casfs_ns_hints *h);

/* Test only: cross-directory renames the old, broken way (two changes, no
 * transaction, no cycle check), for the checker's negative control. */
extern bool casfs_ns_broken_two_round_rename;

/* Reads the record of id into rec (the caller clears it; rec owns
 * nothing on error); *version (may be NULL) gets its register's version.
 * A directory's entries are those of its first bucket only (all of them
 * when rec->depth is 0; casfs_ns_list reads every bucket).
 * -ENOENT when the register was never written. */
int casfs_ns_load(struct casfs_ns *ns, const unsigned char *id, struct casfs_record *rec,
		  uint64_t *version);

/* Reads the directory id with all its entries, from every bucket, into
 * rec (the caller clears it; entries of a split directory are in listing
 * order, not sorted by name). *version (may be NULL): its inode
 * register's version. -ENOTDIR for another type. */
int casfs_ns_list(struct casfs_ns *ns, const unsigned char *id, struct casfs_record *rec,
		  uint64_t *version);

/* Lists the entries of dir from the place from (0: the start) on, in
 * listing order: cb gets each with its place (always > 2 and > from: a
 * readdir offset) and returns non-zero to stop. 0, cb's value, or an
 * error. */
int casfs_ns_readdir(struct casfs_ns *ns, const unsigned char *dir, uint64_t from,
		     int (*cb)(void *arg, const struct casfs_dirent *e, uint64_t place), void *arg);

/* Looks name up in the directory dir: the entry's type and id. */
int casfs_ns_lookup(struct casfs_ns *ns, const unsigned char *dir, const char *name, uint8_t *type,
		    unsigned char *id);

/* Creates rec (type, mode, owner, times, data, rdev; borrowed, left as it
 * is but for nlink and parent) as a new inode named name in dir. id
 * receives the new inode's id as soon as it is chosen, before any register
 * is written, so that a caller that got an unknown outcome knows which
 * inode it may have made. -EEXIST when the name is taken: *found_type and
 * found_id (may be NULL) then say what it names. Two changes: the new
 * register (which must be absent), then the entry; when adding the entry
 * fails the new register is deleted again, so a failure leaves neither,
 * except after an unknown outcome (garbage for casctl gc). */
int casfs_ns_create(struct casfs_ns *ns, const unsigned char *dir, const char *name,
		    struct casfs_record *rec, unsigned char *id, uint8_t *found_type,
		    unsigned char *found_id);

/* Removes the entry name (not a directory: -EISDIR) from dir and takes one
 * from its inode's nlink; one transaction. When that was the last name,
 * the inode's register is deleted next (unless ns->held keeps it); a
 * failure to delete is not the unlink's (the register is garbage, which
 * casctl gc collects). The same goes for rmdir and a rename over an
 * inode. */
int casfs_ns_unlink(struct casfs_ns *ns, const unsigned char *dir, const char *name);

/* Removes the empty directory name (-ENOTDIR, -ENOTEMPTY) from dir and
 * sets its nlink to 0, so that it takes no new entries; one transaction. */
int casfs_ns_rmdir(struct casfs_ns *ns, const unsigned char *dir, const char *name);

/* Deletes the register of inode id when nothing names it: its nlink is 0
 * (a file whose last name went while it was open: at its last close).
 * An intent the register holds is resolved first. 0 when deleted or
 * absent already; -EEXIST when it has names (nothing deleted). */
int casfs_ns_delete(struct casfs_ns *ns, const unsigned char *id);

/* Adds the entry newname in newdir for the inode id (not a directory) and
 * adds one to its nlink; one transaction. after (may be NULL) receives the
 * inode's record as the transaction left it (the caller clears it). */
int casfs_ns_link(struct casfs_ns *ns, const unsigned char *id, const unsigned char *newdir,
		  const char *newname, struct casfs_record *after);

/* Renames dir/name to newdir/newname with flags 0, RENAME_NOREPLACE or
 * RENAME_EXCHANGE. Within one directory without replacing another inode:
 * one change of the directory; otherwise one transaction, over the two
 * directories, the moved directory (its parent id), the replaced inode
 * (its nlink) and, when a directory changes parent, the directory-move
 * register (the destination must not be inside the moved directory:
 * -EINVAL). -EINVAL for other flags. */
int casfs_ns_rename(struct casfs_ns *ns, const unsigned char *dir, const char *name,
		    const unsigned char *newdir, const char *newname, unsigned flags);

#endif

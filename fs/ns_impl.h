/* ns_impl.h - what ns.c and ns_rename.c share: edits of records as parts
 * of one change, and the parts every namespace operation is made of. */
#ifndef CASFS_NS_IMPL_H
#define CASFS_NS_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cas/cas.h>

#include "ns.h"
#include "txn.h"

/* How often an operation starts over when the entries it read changed
 * before its change. */
#define NS_TRIES 8
/* The deepest tree the cycle check walks before it calls the tree broken. */
#define WALK_MAX 4096
/* An edit function's "leave the register as it is". */
#define KEEP 1

/* An edit of one register's record: fn gets the decoded record (NULL for
 * a register never written) and returns 0 to write it back, KEEP, or a
 * negative errno to fail. */
typedef int (*edit_fn)(void *arg, struct casfs_record *rec);

/* One part of a change: fn on the record of id, or raw on its bytes; on
 * bucket (1..) of directory id instead when bucket is not 0. */
struct part {
	const unsigned char *id;
	edit_fn fn;
	void *arg;
	casfs_txn_fn raw;
	uint32_t bucket;
};

/* What the directory-move check found: its errno, or 0. */
struct check {
	int (*fn)(void *arg);
	void *arg;
	int *err;
};

/* An entry as read: whether it exists, its type and id. */
struct ent {
	bool found;
	uint8_t type;
	unsigned char id[CASFS_ID_LEN];
};

/* A directory as read: the raw value of the bucket that holds e (to tell
 * later whether it moved), whether it is removed, two of its entries and
 * the buckets that hold them. */
struct dirview {
	struct cas_value raw;
	bool dead;
	struct ent e, e2;
	uint32_t bucket, bucket2;
};

/* Changing an entry that was read as e: name must still be e, else
 * -EAGAIN (the operation starts over). set: what name becomes (not found:
 * removed). */
struct entry_arg {
	struct casfs_ns *ns;
	const char *name;
	const struct ent *e;
	const struct ent *set;
	/* A second entry that must still be as read (rename in one
	 * directory), or NULL. */
	const char *name2;
	const struct ent *e2;
	const struct ent *set2;
	bool dst; /* the destination of a move: refuse a removed directory */
	/* NS_EFULL: a name added to a full bucket, which to split. */
	bool full;
	uint32_t full_bucket;
};

/* Changes of an inode's own record. */
struct inode_arg {
	struct casfs_ns *ns;
	const unsigned char *parent; /* reparent: the new parent */
};

bool ns_id_eq(const unsigned char *a, const unsigned char *b);

/* Internal: an add found its bucket full; split it and try again. */
#define NS_EFULL (-EXFULL)

/* Buckets (ns_bucket.c; fs/FORMAT.md "Directories"). */

/* The bucket index of hash h at depth: its low depth bits. */
uint32_t ns_bucket_of(uint64_t h, unsigned depth);

/* The depth to look for hash h in dir at first (a hint). */
unsigned ns_hint(const struct casfs_ns *ns, const unsigned char *dir, uint64_t h);

/* True when the bucket rec (its depth, and rec->bucket) holds name. */
bool ns_covers(const struct casfs_record *rec, const char *name);

/* The register key of a part: the inode's (bucket 0) or the bucket's. key
 * holds CASFS_BUCKET_KEY_LEN bytes. */
void ns_part_key(const unsigned char *id, uint32_t bucket, char *key);

/* ns_decode for a part: a bucket's register decodes as a bucket (-ENOENT
 * when absent); rec->bucket is set. */
int ns_decode_part(struct casfs_ns *ns, const char *key, uint32_t bucket,
		   const struct cas_value *cur, struct casfs_record *rec);

/* Reads the bucket of dir that covers hash h, starting at the hinted
 * depth: its raw value into raw and its record into rec (rec->bucket set;
 * the caller clears both). -ENOENT when dir is absent, -ENOTDIR, -EBUSY
 * when the buckets kept moving under it. */
int ns_find_bucket(struct casfs_ns *ns, const unsigned char *dir, uint64_t h, struct cas_value *raw,
		   struct casfs_record *rec);

/* Splits bucket b of dir in two, as one transaction: 0 (also when it was
 * not split: it moved, or is as deep as it goes), -EAGAIN, -ENOSPC when
 * the bucket is too large for the transaction's intent, or the cluster's
 * error. */
int ns_split(struct casfs_ns *ns, const unsigned char *dir, uint32_t b);

/* Merges every bucket of dir back into its inode's register while all
 * are empty: 0 when dir is one register (or absent, or no directory),
 * -ENOTEMPTY when a bucket has entries (*full: which one), -EBUSY when
 * they kept moving, or an error. Each merge is a transaction and changes
 * no entry. */
int ns_collapse(struct casfs_ns *ns, const unsigned char *dir, uint32_t *full);

/* A name's place in a listing: the hash's low 32 bits reversed, then its
 * high ones reversed (fs/FORMAT.md "Directories"). */
uint64_t ns_name_order(const char *name);

/* Calls cb on every bucket of dir in listing order, from the bucket that
 * holds the place from on; cb gets the place from which its entries
 * count (entries before it were listed already). Stops at cb's first
 * non-zero return, which it returns; else 0 or an error of a read. */
int ns_walk(struct casfs_ns *ns, const unsigned char *dir, uint64_t from,
	    int (*cb)(void *arg, const struct casfs_record *rec, uint64_t from), void *arg);

/* Decodes cur, the value of key, into rec: 0, -ENOENT for a register never
 * written, -EIO (with ns->errmsg) for bytes that are no record, -ENOMEM. */
int ns_decode(struct casfs_ns *ns, const char *key, const struct cas_value *cur,
	      struct casfs_record *rec);

/* Applies the n parts as one change (one round for one part, else one
 * transaction); out (may be NULL) as for casfs_txn_run. 0 or -errno. */
int ns_apply(struct casfs_ns *ns, const struct part *p, size_t n, bool dirmove,
	     const struct check *chk, struct cas_value *out);

/* An error that one part found on its register (a directory not empty)
 * or the check found (a cycle) is the operation's only if the other
 * registers still held what the operation read at that moment: parts are
 * applied in an order of the transaction's own (txn.h). So the parts run
 * again as one transaction that changes nothing, each checking what it
 * would and that the error still stands: rc when it commits, else -EAGAIN
 * (start over) or the cluster's error. */
int ns_confirm(struct casfs_ns *ns, int rc, const struct part *p, size_t n, bool dirmove,
	       const struct check *chk);

/* Reads dir and its entries name and name2 (may be NULL) into v (the
 * caller clears v->raw). */
int ns_read_dir(struct casfs_ns *ns, const unsigned char *dir, const char *name, const char *name2,
		struct dirview *v);

/* True when dir still holds what v read: then everything decided from v
 * and reads made after it held at once. */
bool ns_dir_unchanged(struct casfs_ns *ns, const unsigned char *dir, const struct dirview *v);

int ns_entry_fn(void *varg, struct casfs_record *rec);

/* One name fewer: nlink - 1 (a register never written: nothing). */
int ns_unref_fn(void *varg, struct casfs_record *rec);

/* A directory's last name goes: it must be empty, and takes no new entries
 * from now on (nlink 0). */
int ns_kill_fn(void *varg, struct casfs_record *rec);

/* A directory moved to another parent. */
int ns_reparent_fn(void *varg, struct casfs_record *rec);

int ns_err_of(int rc);

/* After a change that took a name from inode id, whose committed value it
 * left as after: deletes the register when after has nlink 0 and
 * ns->held does not keep it. Best effort (garbage otherwise). */
void ns_reap(struct casfs_ns *ns, const unsigned char *id, const struct cas_value *after);

/* Test only (casfs_ns_broken_delete): deletes id at once. */
void ns_broken_delete(struct casfs_ns *ns, const unsigned char *id);

#endif

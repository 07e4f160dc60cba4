/* gc.h - the filesystem's side of casctl gc: the registers of a casfs tree
 * that nothing references any more (orphans), found online, and the held
 * register in which a mount lists the inodes it keeps open after their
 * last name went. The argument why a collection is safe against creates
 * in flight, open files and transactions is in fs/FORMAT.md, "Deletion".
 * No FUSE here: casctl links it. */
#ifndef CASFS_GC_H
#define CASFS_GC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cas/client.h>

#include "record.h"

/* Bytes of a held register's key: "h/", 32 hex digits, NUL. */
#define CASFS_HELD_KEY_LEN (2 + 2 * 16 + 1)
/* The most inode ids one held register lists. */
#define CASFS_HELD_MAX 4096

/* key gets "h/" and the 32 hex digits of the session id sid (16 bytes). */
void casfs_held_key(const unsigned char *sid, char *key);

/* Encodes the n ids (16 bytes each, n <= CASFS_HELD_MAX) of a held
 * register into *buf (malloc'd, the caller frees) and *len. CAS_OK,
 * CAS_EINVAL (too many) or CAS_ENOMEM. */
int casfs_held_encode(const unsigned char *ids, size_t n, unsigned char **buf, size_t *len);

/* Decodes a held register's value: *ids points into buf (valid while buf
 * is), *n ids of 16 bytes. CAS_OK or CAS_EINVAL. */
int casfs_held_decode(const unsigned char *buf, size_t len, const unsigned char **ids, size_t *n);

/* A register found orphaned, with the version it had. */
struct casfs_gc_orphan {
	char key[CASFS_KEY_LEN]; /* "i/", "t/", "h/", "s/" or "l/" and 32 hex digits */
	uint64_t version;
	const char *why; /* static: "no name", "created, never named", ... */
};

/* What one collector remembers from pass to pass: the registers it found
 * orphaned, the sessions it saw and when (its own monotonic clock), and
 * the keys named by transactions still pending. Opaque. */
struct casfs_gc;

/* A collector over c (borrowed: valid while g is), each round within
 * timeout_ms. NULL when out of memory. */
struct casfs_gc *casfs_gc_new(struct cas_client *c, unsigned timeout_ms);

void casfs_gc_free(struct casfs_gc *g);

/* One pass over every key of the cluster (cas_client_keys), changing
 * nothing but what is safe at any time: intents of final transactions
 * are settled, sessions silent for longer than their lease since an
 * earlier pass of g (on the collector's clock) are marked expired, and
 * transaction records seen pending, at one version, by two passes are
 * aborted. Then *out (valid until the next pass or casfs_gc_free) lists
 * the registers orphaned in this pass AND in the previous one at the
 * same version:
 *
 * - "i/" registers holding an empty value (absent to casfs, as an old
 *   roll back of a creation left them, but no tombstone);
 * - "i/" inodes no entry names: nlink 0; a directory whose parent does
 *   not name it; a file no directory of the tree names (only when the
 *   walk from the root read a tree that did not change under it).
 *   Never the root, nor an inode that holds a transaction's intent, that
 *   a pending transaction names, or that a live session holds (its
 *   mount keeps it open);
 * - "t/" transaction records that are final and whose keys hold none of
 *   their intents;
 * - "h/" held registers whose session is over;
 * - "s/" sessions marked expired, "l/" lock registers without holds
 *   whose inode is absent.
 *
 * Call it, wait a grace longer than the longest operation deadline of
 * any mount, call it again, and delete what the second call lists, each
 * with cas_delete_version at the version given: a create in flight at
 * the first pass has then named its inode or given up (FORMAT.md,
 * "Deletion"). The first call lists nothing. CAS_OK, or a code with a
 * reason in errmsg (CAS_EUNAVAILABLE: a round did not answer in time;
 * nothing is listed then). */
int casfs_gc_pass(struct casfs_gc *g, const struct casfs_gc_orphan **out, size_t *n, char *errmsg,
		  size_t errmsg_len);

/* True when the last pass of g found key named by a transaction still
 * pending (an absent register it may yet write: not to be purged). */
bool casfs_gc_named_by_pending(const struct casfs_gc *g, const char *key);

/* casctl gc's source (casctl.h, struct casctl_gc_source): two passes
 * grace_ms apart, then, unless dry_run, each orphan deleted with
 * cas_delete_version (one changed since, or whose delete failed, is
 * left for a later run). *keys (malloc'd array of *n malloc'd keys, free
 * with cas_keys_free) lists what was deleted (dry_run: what would be).
 * g is kept for casfs_gc_named_by_pending. Errors as casfs_gc_pass. */
int casfs_gc_collect(struct casfs_gc *g, unsigned grace_ms, bool dry_run, char ***keys, size_t *n,
		     char *errmsg, size_t errmsg_len);

#endif

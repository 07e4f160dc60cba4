/* inode.h - the table from kernel node ids to inode register ids. */
#ifndef CASFS_INODE_H
#define CASFS_INODE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "record.h"

/* Node id 1 is the root (FUSE_ROOT_ID); its register id is all zeroes.
 * Other node ids are handed out in increasing order and never reused, so a
 * stale node id from the kernel finds nothing rather than another inode.
 * Thread-safe. Opaque. */
struct casfs_inodes;

/* A new table holding only the root, or NULL when out of memory. Free it
 * with casfs_inodes_free. */
struct casfs_inodes *casfs_inodes_new(void);

void casfs_inodes_free(struct casfs_inodes *t);

/* The node id of register id, created when missing; adds one kernel lookup
 * to it (the root keeps no count). CAS_OK or CAS_ENOMEM (table unchanged). */
int casfs_inodes_ref(struct casfs_inodes *t, const unsigned char *id, uint64_t *nodeid);

/* Copies the register id of nodeid into id; false when nodeid is unknown. */
bool casfs_inodes_get(struct casfs_inodes *t, uint64_t nodeid, unsigned char *id);

/* Drops n kernel lookups from nodeid; the entry goes when none are left.
 * Unknown node ids and the root are ignored. */
void casfs_inodes_forget(struct casfs_inodes *t, uint64_t nodeid, uint64_t n);

/* Remembers attr as the attributes this mount last reported to the kernel
 * for id; nothing when id has no node id. */
void casfs_inodes_set_attr(struct casfs_inodes *t, const unsigned char *id,
			   const struct stat *attr);

/* Copies into attr the attributes last reported for id; false when none
 * were. */
bool casfs_inodes_get_attr(struct casfs_inodes *t, const unsigned char *id, struct stat *attr);

/* One more open handle of id on this mount (its node is made when it
 * has none yet: a create counts its handle before replying); false,
 * nothing counted, when out of memory. */
bool casfs_inodes_open(struct casfs_inodes *t, const unsigned char *id);

/* One open handle of id fewer. True when it was the last and id's last
 * name went while it was open (casfs_inodes_hold): the caller deletes
 * its register now (fs/FORMAT.md, "Deletion"). */
bool casfs_inodes_close(struct casfs_inodes *t, const unsigned char *id);

/* Called when id's last name went: true, and id is marked to be deleted
 * at its last close, when it has open handles on this mount; false when
 * it has none (delete it now). */
bool casfs_inodes_hold(struct casfs_inodes *t, const unsigned char *id);

/* Number of node ids in the table, the root included. */
size_t casfs_inodes_count(struct casfs_inodes *t);

/* True when id is the root's register id. */
bool casfs_inodes_is_root(const unsigned char *id);

/* The register key of id (casfs_record_key). */
void casfs_inodes_key(const unsigned char *id, char *key);

/* The st_ino of id: its first 8 bytes, 1 for the root (and never 0). */
uint64_t casfs_inodes_ino(const unsigned char *id);

#endif

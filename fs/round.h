/* round.h - register rounds for the FUSE operations: the one door from fs/
 * to the client API (include/cas/client.h). Every read and change goes
 * through txn.h, so registers that hold a transaction's intent read as
 * their committed values. */
#ifndef CASFS_ROUND_H
#define CASFS_ROUND_H

#include <stdint.h>
#include <time.h>

#include <fuse_lowlevel.h>

#include <cas/client.h>

#include "record.h"

struct casfs_fs;
struct casfs_regs;

/* An edit function's "leave the register as it is". */
#define CASFS_KEEP 1

/* One request: the filesystem and the request's deadline. */
struct op {
	struct casfs_fs *fs;
	struct timespec end;
};

/* The one place where a client code becomes an errno for FUSE: 0 or a
 * negative errno. */
int casfs_err_of(int rc);

/* Starts req: op->fs is the session's filesystem, op->end the monotonic
 * time its timeout from now. */
void casfs_op_start(struct op *op, fuse_req_t req);

/* Fills *out with the registers of the request op (regs.h) for txn.h and
 * the namespace code: rounds over the client that end by op's deadline
 * and hold the key's lock stripe, sleeps cut at the deadline, randomness
 * from the kernel. out->arg is op: valid while op is. */
void casfs_op_regs(struct op *op, struct casfs_regs *out);

/* Reads the record of id linearizably into rec (the caller clears it);
 * *version (may be NULL) gets the register's version. 0 or -errno; rec
 * owns nothing on error. */
int casfs_load(struct op *op, const unsigned char *id, struct casfs_record *rec, uint64_t *version);

/* An edit: changes a decoded record in place. Returns 0 to write it back,
 * CASFS_KEEP to leave the register unchanged, or a negative errno to fail.
 * May run several times in one operation, each time on a fresh record. */
typedef int (*casfs_edit_fn)(void *arg, struct casfs_record *rec, uint64_t version);

/* Applies fn to id's record in one change round. after (may be NULL)
 * receives the record as the round left it, *version (may be NULL) its
 * version. 0 or -errno; after owns nothing on error. */
int casfs_edit(struct op *op, const unsigned char *id, casfs_edit_fn fn, void *arg,
	       struct casfs_record *after, uint64_t *version);

/* Writes rec (borrowed, left unchanged) as the first value of the fresh
 * register id: a change round that writes only while its committed value
 * is absent (txn.h). 0 or -errno; -EIO when
 * the register already exists (an id in use is logged). */
int casfs_store_new(struct op *op, const unsigned char *id, const struct casfs_record *rec);

/* The cluster's use as its members report it (cas_client_usage), within
 * timeout_ms. 0 or -errno. */
int casfs_usage(struct casfs_fs *fs, unsigned timeout_ms, struct cas_usage *out);

#endif

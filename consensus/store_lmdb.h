/* store_lmdb.h - the acceptor's durable state in LMDB: one record per key,
 * changed and fsynced in one transaction before any reply leaves. */
#ifndef CAS_STORE_LMDB_H
#define CAS_STORE_LMDB_H

#include <stddef.h>
#include <stdint.h>

#include "acceptor.h"
#include "msg.h"

/*
 * Record layout (value of the LMDB entry whose key is the register key;
 * all integers little-endian):
 *
 *   offset  size       field
 *   0       1          format, 1
 *   1       1          n_recent, 0..CAS_RECENT_MAX
 *   2       6          reserved, zero
 *   8       8          promise.counter
 *   16      8          promise.id
 *   24      8          accepted.counter
 *   32      8          accepted.id
 *   40      8          version
 *   48      8*n_recent recent operation ids, newest first
 *   48+8n   8          len, the number of data bytes
 *   56+8n   len        data
 *
 * A record whose size or fields do not match this is reported as corrupt
 * (CAS_EIO) and never rewritten. A later format gets a new format byte.
 */
#define CAS_STORE_FORMAT 1

/* Default LMDB map size (the largest the store may grow), in MiB. */
#define CAS_STORE_DEFAULT_MAP_MIB 1024

/* An open store. Opaque. cas_store_handle, cas_store_get and
 * cas_store_count are safe to call from many threads at once; LMDB runs
 * one write transaction at a time. */
struct cas_store;

/* Opens (creating when missing) the LMDB environment in the existing
 * folder dir, with a map of map_size bytes (0: the default). On success
 * *out is the caller's to close with cas_store_close. On error (CAS_EIO
 * with LMDB's reason in errmsg, or CAS_ENOMEM) *out is NULL. */
int cas_store_open(const char *dir, size_t map_size, struct cas_store **out, char *errmsg,
		   size_t errmsg_len);

/* Closes s and frees it. No call on s may be running. s may be NULL. */
void cas_store_close(struct cas_store *s);

/* Runs the acceptor rules (cas_acceptor_handle) on req (PREPARE or ACCEPT)
 * against the key's record, in one LMDB write transaction. When the state
 * changed, the new record is written and the transaction committed (LMDB's
 * synchronous commit: fsync) before *reply is filled; a REJECT changes
 * nothing. On CAS_OK *reply owns its value bytes (cas_msg_clear). On error
 * (CAS_EINVAL: not a request; CAS_EKEY: bad key; CAS_EIO: LMDB failed, its
 * reason in errmsg, or the record is corrupt; CAS_ENOMEM) nothing was
 * written and *reply is zeroed: the caller must not answer as if promised
 * or accepted. req is not changed. */
int cas_store_handle(struct cas_store *s, const struct cas_msg *req, struct cas_msg *reply,
		     char *errmsg, size_t errmsg_len);

/* Reads the state of key (all zeroes for a key never seen) into *out, whose
 * value bytes are a malloc'd copy the caller frees (free(out->value.data)).
 * Errors as for cas_store_handle; *out is zeroed on error. */
int cas_store_get(struct cas_store *s, const char *key, struct cas_acceptor_state *out,
		  char *errmsg, size_t errmsg_len);

/* Stores in *out how many keys s holds. Errors: CAS_EIO with errmsg. */
int cas_store_count(struct cas_store *s, uint64_t *out, char *errmsg, size_t errmsg_len);

/* Test seam: when fn is not NULL, cas_store_handle calls fn(arg, req) just
 * before it commits a change; a non-zero return makes the commit fail
 * (the transaction is aborted, CAS_EIO). Not for production. Not
 * thread-safe against running cas_store_handle calls. */
void cas_store_set_fault(struct cas_store *s, int (*fn)(void *arg, const struct cas_msg *req),
			 void *arg);

#endif

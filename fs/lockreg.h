/* lockreg.h - the registers of cluster-wide locks: an inode's lock
 * register (key l/<inode id hex>: its holds and its fencing counter) and a
 * mount's session register (key s/<session id hex>: renewed while the
 * mount lives). Byte forms and the pure rules of conflict and change; no
 * rounds here (lease.h runs them). Formats: fs/FORMAT.md, "Locks". */
#ifndef CASFS_LOCKREG_H
#define CASFS_LOCKREG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cas/cas.h>

#define CASFS_SID_LEN	     16 /* bytes of a session id */
#define CASFS_LOCK_MAX_HOLDS 64 /* holds one lock register keeps */
/* The end of a range that runs to the end of the file (the kernel's
 * OFFSET_MAX). Ranges are inclusive. */
#define CASFS_LOCK_EOF ((uint64_t)INT64_MAX)
/* Bytes of a key "l/" or "s/" plus 32 hex digits, NUL included. */
#define CASFS_LOCK_KEY_LEN (2 + 2 * CASFS_SID_LEN + 1)

enum casfs_lock_kind {
	CASFS_LK_FLOCK = 1, /* flock(2): whole file, owned by an open file */
	CASFS_LK_POSIX = 2, /* fcntl(2) record locks and lockf: ranges, owned by a process */
};

enum casfs_lock_type {
	CASFS_LK_UNLOCK = 0,
	CASFS_LK_SHARED = 1,
	CASFS_LK_EXCL = 2,
};

/* One lock held: by lock owner owner of the mount whose session is sid. */
struct casfs_hold {
	unsigned char sid[CASFS_SID_LEN];
	uint64_t owner;	     /* the kernel's lock owner, unique within sid */
	uint64_t start, end; /* inclusive; end CASFS_LOCK_EOF: to the end */
	uint64_t token;	     /* the fencing counter's value at acquisition */
	uint32_t pid;	     /* the requesting process, on the holder's machine */
	uint8_t kind;	     /* enum casfs_lock_kind */
	uint8_t type;	     /* CASFS_LK_SHARED or CASFS_LK_EXCL */
};

/* A decoded lock register. fence only grows: every acquisition takes the
 * next value as its token. */
struct casfs_lockreg {
	uint64_t fence;
	size_t n;
	struct casfs_hold h[CASFS_LOCK_MAX_HOLDS];
};

/* What an owner asks of a lock register. type CASFS_LK_UNLOCK releases
 * [start, end] (for flock: the owner's lock). */
struct casfs_lock_req {
	unsigned char sid[CASFS_SID_LEN];
	uint64_t owner;
	uint64_t start, end;
	uint32_t pid;
	uint8_t kind, type;
};

/* A decoded session register. */
struct casfs_sessreg {
	bool expired;	   /* the session is over: its holds bind nobody */
	uint32_t lease_ms; /* the lease its mount runs by */
	uint64_t renewals; /* grows with every renewal */
};

/* key (CASFS_LOCK_KEY_LEN bytes) gets prefix, '/' and the 32 hex digits of
 * id (16 bytes: an inode or a session id). */
void casfs_id_key(char prefix, const unsigned char *id, char *key);

/* key gets "l/" and the 32 hex digits of the inode id (16 bytes). */
void casfs_lockreg_key(const unsigned char *id, char *key);

/* key gets "s/" and the 32 hex digits of sid. */
void casfs_sessreg_key(const unsigned char *sid, char *key);

/* Decodes len bytes of buf into *out; an empty value (len 0: a register
 * never written) is a free lock with fence 0. CAS_OK or CAS_EINVAL (out
 * unspecified). */
int casfs_lockreg_decode(const void *buf, size_t len, struct casfs_lockreg *out);

/* Encodes l into *buf (malloc'd, the caller frees), *len. CAS_OK or
 * CAS_ENOMEM. */
int casfs_lockreg_encode(const struct casfs_lockreg *l, unsigned char **buf, size_t *len);

/* True when hold h stands in the way of rq: another owner (or another
 * session), the same kind, overlapping ranges, one of them exclusive. */
bool casfs_hold_conflicts(const struct casfs_hold *h, const struct casfs_lock_req *rq);

/* The number of holds of l that conflict with rq; *first (may be NULL)
 * gets the index of the first. */
size_t casfs_lockreg_conflicts(const struct casfs_lockreg *l, const struct casfs_lock_req *rq,
			       size_t *first);

/* Applies rq to l, whatever conflicts: the owner's holds of rq's kind lose
 * their part within [start, end] (all of them, for flock), then a lock
 * adds a hold with token fence + 1. CAS_OK; CAS_ENOCHANGE when an unlock
 * found nothing to release; CAS_ETOOBIG when the holds would not fit (l
 * unchanged). */
int casfs_lockreg_apply(struct casfs_lockreg *l, const struct casfs_lock_req *rq);

/* Removes every hold of session sid; the number removed. */
size_t casfs_lockreg_drop_session(struct casfs_lockreg *l, const unsigned char *sid);

/* True when owner of session sid holds a lock of kind in l. */
bool casfs_lockreg_holds(const struct casfs_lockreg *l, const unsigned char *sid, uint64_t owner,
			 uint8_t kind);

/* 16 bytes: magic, format, flags, lease, renewals (fs/FORMAT.md). */
#define CASFS_SESSREG_LEN 16

/* Decodes a session register's value. CAS_OK or CAS_EINVAL. */
int casfs_sessreg_decode(const void *buf, size_t len, struct casfs_sessreg *out);

/* Encodes s into buf (CASFS_SESSREG_LEN bytes). */
void casfs_sessreg_encode(const struct casfs_sessreg *s, unsigned char *buf);

#endif

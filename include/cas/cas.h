/* cas.h - casfs public basics: the export macro, error codes, limits and
 * the types shared by the core, the client and the filesystem. */
#ifndef CAS_CAS_H
#define CAS_CAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) && __GNUC__ >= 4
#define CAS_API __attribute__((visibility("default")))
#else
#define CAS_API
#endif

#define CAS_VERSION_STRING "0.1.0"

/* Longest register key, in bytes. Keys are 1..CAS_KEY_MAX characters from
 * [A-Za-z0-9._:/@-]; see cas_key_valid(). */
#define CAS_KEY_MAX 250

/* Default largest register value (the bytes a caller stores), in bytes. */
#define CAS_DEFAULT_MAX_VALUE (1024u * 1024u)

/* Every fallible function in casfs returns one of these. Strings for them
 * come from one table (cas_strerror); the mapping to errno is in one place
 * (cas_errno). */
enum cas_err {
	CAS_OK = 0,
	CAS_ENOMEM,	  /* out of memory */
	CAS_EINVAL,	  /* bad argument or malformed input */
	CAS_EKEY,	  /* key empty, too long or with a forbidden byte */
	CAS_ETOOBIG,	  /* value larger than the configured maximum */
	CAS_EVERSION,	  /* conditional write: the version moved */
	CAS_EUNAVAILABLE, /* no majority answered before the deadline */
	CAS_ECONFLICT,	  /* a ballot was rejected (internal to rounds) */
	CAS_EPROTO,	  /* a peer sent something that breaks the protocol */
	CAS_EIO,	  /* a store or transport failure */
	CAS_ENOCHANGE,	  /* not an error: a change function keeps the value */
	CAS_EBALLOT,	  /* an acceptor holds a ballot past the range
			     proposers may use: the key cannot be written */
	CAS_ERR_COUNT
};

/* A static, human-readable string for code; never NULL. */
CAS_API const char *cas_strerror(int code);

/* The positive errno that stands for code (0 for CAS_OK and
 * CAS_ENOCHANGE). The one place where casfs codes become errno values:
 * CAS_EVERSION is ESTALE, CAS_EUNAVAILABLE is ETIMEDOUT, CAS_ETOOBIG is
 * EFBIG, CAS_ENOMEM is ENOMEM, CAS_EINVAL and CAS_EKEY are EINVAL, the
 * rest EIO. */
CAS_API int cas_errno(int code);

/* True when key (len bytes, need not be NUL-terminated) is a valid key. */
CAS_API bool cas_key_valid(const char *key, size_t len);

/* A register's value: its version (0 for a never-written key, 1 after the
 * first write, +1 per successful change) and its bytes. data is malloc'd
 * and owned by whoever holds the struct; free it with cas_value_clear. data
 * may be NULL when len is 0. */
struct cas_value {
	uint64_t version;
	unsigned char *data;
	size_t len;
};

/* Frees v->data and zeroes v. v may be NULL. */
CAS_API void cas_value_clear(struct cas_value *v);

/* A change function: given the current value cur (read-only, valid for the
 * call), decides the next one.
 * - Return CAS_OK after setting next->data (malloc'd; the library takes it,
 *   also on error) and next->len: the register becomes that, with version
 *   cur->version + 1. next->version is ignored.
 * - Return CAS_ENOCHANGE to keep the value as it is; the operation then
 *   succeeds without a new version.
 * - Return any other code to keep the value and fail the operation with
 *   that code (CAS_EVERSION for a lost precondition, say).
 * The value is written back in every case (CASPaxos' accept phase), so the
 * result is linearizable. The function may run several times in one
 * operation (after conflicts), each time on a fresh cur; it must not
 * depend on earlier calls. */
typedef int (*cas_change_fn)(void *arg, const struct cas_value *cur, struct cas_value *next);

#endif

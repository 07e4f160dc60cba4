/* codec_bin.h - the binary wire form of protocol messages (PROTOCOL.md,
 * "Binary form"): the same messages as codec.h, fixed little-endian
 * fields and raw value bytes. Pure: no I/O. */
#ifndef CAS_CODEC_BIN_H
#define CAS_CODEC_BIN_H

#include <stddef.h>

#include "msg.h"

/* The Content-Type of a binary body, request or reply. */
#define CAS_CODEC_BIN_TYPE "application/x-casfs"

/* The first byte of every binary body: the form and its version. */
#define CAS_CODEC_BIN_MAGIC 0xC1

/* Encodes m (any request or reply type) in the binary form. On success
 * *out is a malloc'd buffer of *out_len bytes, the caller's to free. A
 * request with a bad key is CAS_EKEY; more than CAS_RECENT_MAX recent
 * entries, value bytes missing or no such type CAS_EINVAL; value bytes
 * over 2^32 - 1 CAS_ETOOBIG. On error *out is NULL and *out_len 0. */
int cas_codec_bin_encode(const struct cas_msg *m, unsigned char **out, size_t *out_len);

/* Decodes a binary request body of the given type (CAS_MSG_PREPARE,
 * CAS_MSG_ACCEPT, CAS_MSG_QUERY or CAS_MSG_PURGE), as strictly as
 * cas_codec_decode_request and with its codes: a bad version byte, a
 * frame of another type, truncated input, trailing bytes or more than
 * CAS_RECENT_MAX recent entries are CAS_EINVAL, a bad key CAS_EKEY,
 * value bytes over max_value CAS_ETOOBIG; each with a one-line reason in
 * errmsg. Nothing is allocated unless the whole body is valid. On success
 * *out owns its value bytes (cas_msg_clear); on error *out is zeroed. */
int cas_codec_bin_decode_request(const void *body, size_t len, enum cas_msg_type type,
				 size_t max_value, struct cas_msg *out, char *errmsg,
				 size_t errmsg_len);

/* Decodes a binary reply (PROMISE, ACCEPTED, REJECT, CURRENT or PURGED,
 * told by its type byte). Ownership as for cas_codec_bin_decode_request. A
 * malformed reply is CAS_EPROTO; a value over max_value CAS_ETOOBIG. */
int cas_codec_bin_decode_reply(const void *body, size_t len, size_t max_value, struct cas_msg *out,
			       char *errmsg, size_t errmsg_len);

#endif

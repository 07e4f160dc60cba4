/* codec.h - the JSON wire form of protocol messages (PROTOCOL.md). Pure:
 * no I/O. 64-bit numbers travel as decimal strings; bytes as base64. */
#ifndef CAS_CODEC_H
#define CAS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"

/* Encodes m as its JSON body: requests (PREPARE, ACCEPT, QUERY, PURGE)
 * as sent to /v1/prepare, /v1/accept, /v1/query and /v1/purge, replies
 * (PROMISE, ACCEPTED, REJECT, CURRENT, PURGED) as acceptors answer. On
 * success *out is a malloc'd NUL-terminated text of *out_len bytes, the
 * caller's to free. */
int cas_codec_encode(const struct cas_msg *m, char **out, size_t *out_len);

/* Decodes a request body of the given type (CAS_MSG_PREPARE,
 * CAS_MSG_ACCEPT, CAS_MSG_QUERY or CAS_MSG_PURGE). Strict: unknown fields,
 * missing fields, wrong types, bad keys, bad base64, numbers out of range
 * and values over max_value bytes are errors (CAS_EINVAL, CAS_EKEY or
 * CAS_ETOOBIG) with a one-line reason in errmsg. On success *out owns its
 * value bytes (cas_msg_clear); on error *out is zeroed. */
int cas_codec_decode_request(const char *body, size_t len, enum cas_msg_type type, size_t max_value,
			     struct cas_msg *out, char *errmsg, size_t errmsg_len);

/* Decodes an acceptor's reply (PROMISE, ACCEPTED, REJECT, CURRENT or
 * PURGED, told by its "result" field). Ownership as for
 * cas_codec_decode_request. A malformed reply is CAS_EPROTO; a value over
 * max_value is CAS_ETOOBIG. */
int cas_codec_decode_reply(const char *body, size_t len, size_t max_value, struct cas_msg *out,
			   char *errmsg, size_t errmsg_len);

/* Base64 (RFC 4648, with padding). encode: *out malloc'd, NUL-terminated.
 * decode: rejects bad characters and padding; *out malloc'd (may be NULL
 * for empty input). */
/* Parses a canonical decimal u64, as 64-bit numbers travel in JSON ("0"
 * or [1-9][0-9]*, no sign, no overflow) into *out; false, *out untouched,
 * otherwise. */
bool cas_codec_u64_parse(const char *s, uint64_t *out);

int cas_base64_encode(const unsigned char *in, size_t len, char **out, size_t *out_len);
int cas_base64_decode(const char *in, size_t len, unsigned char **out, size_t *out_len);

#endif

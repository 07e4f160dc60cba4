/* auth.h - casd's shared token (PROTOCOL.md, "Authentication"): read once
 * at start from its file, kept only as its SHA-256 digest, compared in
 * constant time with what a request carries in "Authorization: Bearer". */
#ifndef CAS_AUTH_H
#define CAS_AUTH_H

#include <stdbool.h>
#include <stddef.h>

/* The longest token file read. */
#define CAS_TOKEN_FILE_MAX 4096

/* Tokens shorter than this are taken, with a warning. */
#define CAS_TOKEN_WEAK 16

struct cas_token {
	unsigned char digest[32]; /* SHA-256 of the token */
};

/* Reads the token in path into *out: the file's bytes, less one trailing
 * newline (LF or CRLF), which must be 1 to CAS_TOKEN_FILE_MAX printable
 * ASCII characters without spaces (what a header carries). The file must
 * be a regular file that others (neither owner nor group) cannot read.
 * Errors: CAS_EIO (cannot read it, or readable by others), CAS_EINVAL (an
 * empty or malformed token); one line in errmsg, never holding the token.
 * A short token is taken with a line in warn (empty otherwise). The bytes
 * read are wiped. */
int cas_token_read(const char *path, struct cas_token *out, char *warn, size_t warn_len,
		   char *errmsg, size_t errmsg_len);

/* Whether the len bytes at presented are the token t: in time that
 * depends on len only. */
bool cas_token_matches(const struct cas_token *t, const char *presented, size_t len);

#endif

/* nodes.h - the client's node list: a comma-separated list of acceptor
 * URLs, checked and normalized, and the one way to free a list of URLs. */
#ifndef CAS_NODES_H
#define CAS_NODES_H

#include <stddef.h>

/* Splits nodes on commas into 1 to CAS_NODES_MAX distinct base URLs,
 * each normalized to "scheme://host:port" (http or https; the scheme's
 * port when none is given; no user, query, fragment, nor a path but
 * "/"). Blanks
 * around an entry are ignored; an empty entry is an error. On success
 * *out is an array of *out_n malloc'd strings, the caller's to free with
 * cas_nodes_free. Errors: CAS_EINVAL (a bad or twice-listed URL, an
 * empty entry, too many, nodes NULL), CAS_ENOMEM; *out and *out_n are
 * unchanged then and errmsg holds a one-line reason. */
int cas_nodes_parse(const char *nodes, char ***out, size_t *out_n, char *errmsg, size_t errmsg_len);

/* Frees urls[0..n) and urls, an array of malloc'd strings (from
 * cas_nodes_parse or built alike); urls may be NULL, and so may any of
 * its strings. */
void cas_nodes_free(char **urls, size_t n);

#endif

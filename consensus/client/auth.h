/* auth.h - the client's TLS settings and token (cas/admin.h, struct
 * cas_auth) as libcurl options and a request header. Private to
 * consensus/client. */
#ifndef CAS_AUTH_H
#define CAS_AUTH_H

#include <curl/curl.h>

#include <cas/admin.h>

/* The request header that carries the token (PROTOCOL.md, "Security"). */
#define CAS_TOKEN_HEADER "Authorization"
#define CAS_TOKEN_SCHEME "Bearer"

/* Sets a's TLS options on easy: the peer and its host name verified
 * always; a's CA (and only it) trusted; a's client certificate and key;
 * https only when a uses TLS. a may be NULL (verification on, nothing
 * else). */
void cas_auth_apply(const struct cas_auth *a, CURL *easy);

/* What to add to libcurl's reason cc for a request to url that got no
 * answer: a node that checks client certificates closes a connection
 * without one, or with one it refuses, with no word ("Empty reply from
 * server"). "" when nothing helps. */
const char *cas_auth_hint(const struct cas_auth *a, const char *url, CURLcode cc);

/* Another reference to a (may be NULL), for a thread that may outlive
 * its client; cas_auth_free drops one, and frees a with the last. */
struct cas_auth *cas_auth_ref(struct cas_auth *a);

/* The header line with a's token ("Authorization: Bearer ..."), valid
 * until cas_auth_free; NULL when a is NULL or has no token. */
const char *cas_auth_header(const struct cas_auth *a);

#endif

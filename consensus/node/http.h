/* http.h - casd's HTTP front (libmicrohttpd): admits protocol
 * requests (PROTOCOL.md), hands them to the store, answers once durable. */
#ifndef CAS_HTTP_H
#define CAS_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "identity.h"
#include "store.h"

struct cas_token; /* auth.h */

/* Extra bytes a request body may have beyond the base64 of its value:
 * key, ballot, version, recent changes (16 at most, about 100 bytes
 * each), field names and some whitespace. */
#define CAS_SERVER_BODY_OVERHEAD 8192

/* The largest body of POST /v1/batch, whatever the largest value (413
 * past it): the items' bytes and their length fields. */
#define CAS_SERVER_BATCH_LIMIT (CAS_BATCH_MAX_BYTES + 4 * CAS_BATCH_MAX_ITEMS)

/* Default number of threads reading and answering requests. A request
 * waiting for its batch's fsync (store.h) holds no thread: its
 * connection is suspended meanwhile. Threads bound how many requests are
 * parsed and answered at once, so batches fill up while one commits. */
#define CAS_SERVER_DEFAULT_THREADS 16

/* Connection limits and deadlines (PROTOCOL.md, "Limits"). */
#define CAS_SERVER_DEFAULT_MAX_CONNECTIONS 1024
#define CAS_SERVER_DEFAULT_MAX_PER_ADDRESS 128
#define CAS_SERVER_DEFAULT_HEADER_MS	   10000
#define CAS_SERVER_DEFAULT_BODY_MS	   60000
#define CAS_SERVER_DEFAULT_IDLE_MS	   120000

/* Each 0 means its default. */
struct cas_server_limits {
	unsigned max_connections; /* open at once, in all */
	unsigned max_per_address; /* open at once from one client address */
	unsigned header_ms;	  /* a request's headers, from its request line
				   * (a connection's first: from its accept, TLS
				   * handshake included) */
	unsigned body_ms;	  /* the rest of a request, from its headers to
				   * its answer sent, less the time it waits for
				   * the store */
	unsigned idle_ms;	  /* a kept-alive connection between requests */
};

enum cas_server_log_level {
	CAS_SERVER_LOG_ERROR, /* the store or the HTTP library failed */
	CAS_SERVER_LOG_WARN,  /* a request was refused (4xx) */
	CAS_SERVER_LOG_INFO,  /* start and stop */
	CAS_SERVER_LOG_DEBUG, /* every request */
};

struct cas_server_config {
	/* Address to listen on: a numeric IPv4 or IPv6 address or a host
	 * name (its first address). NULL: every IPv4 interface. */
	const char *host;
	/* Port; 0 picks a free one (see cas_server_port). */
	uint16_t port;
	/* Largest decoded value an accept may carry; 0 means
	 * CAS_DEFAULT_MAX_VALUE. The request body limit follows from it. */
	size_t max_value;
	/* Threads answering requests; 0 means CAS_SERVER_DEFAULT_THREADS. */
	unsigned threads;
	/* Called from server threads with one line (no newline); may be
	 * NULL. Must be thread-safe. */
	void (*log)(void *arg, enum cas_server_log_level level, const char *line);
	void *log_arg;
	/* The most detailed level passed to log: lines past it are not even
	 * made (a debug line per request costs a formatting each). */
	enum cas_server_log_level log_level;
	/* The node's identity (identity.h), borrowed: it must outlive the
	 * server. Required. */
	struct cas_identity *identity;
	/* Transition (issue #12): an uninitialized node serves requests that
	 * carry neither identity header, as before identity existed, and
	 * its /v1/health says 200 "uninitialized" instead of 503, so that
	 * clients which do not send the headers yet keep working against
	 * nodes nobody joined. False: PROTOCOL.md to the letter (an
	 * uninitialized node refuses them all with 503). A joined node
	 * enforces the headers either way. */
	bool admit_unidentified;
	/* TLS (PEM text, copied): the node's certificate (its chain may
	 * follow) and key, both or neither (plain HTTP). */
	const char *tls_cert;
	const char *tls_key;
	/* PEM of the authority whose certificates clients must present: the
	 * TLS handshake fails without one (tls.h). Needs tls_cert. NULL:
	 * clients present none. */
	const char *tls_ca;
	/* The shared token (auth.h), copied: every request but GET
	 * /v1/health must carry it (401 otherwise). NULL: none. */
	const struct cas_token *token;
	/* Listen beyond loopback with neither client certificates nor a
	 * token; without it cas_server_start refuses to. */
	bool insecure;
	struct cas_server_limits limits;
};

/* A running server. Opaque. */
struct cas_server;

/* Starts serving store (borrowed: it must outlive the server) as cfg says
 * (cfg->identity must not be NULL: CAS_EINVAL). An address that is not
 * loopback (127.0.0.0/8, ::1) is refused, before anything listens, unless
 * clients must present certificates (tls_ca) or a token, or cfg->insecure.
 * On success *out runs in its own threads until cas_server_stop. On error
 * (CAS_EINVAL: bad host, option or certificate, or the refusal above;
 * CAS_EIO: cannot listen, the reason in errmsg; CAS_ENOMEM) *out is
 * NULL. */
int cas_server_start(struct cas_store *store, const struct cas_server_config *cfg,
		     struct cas_server **out, char *errmsg, size_t errmsg_len);

/* The port s listens on (the one picked when cfg->port was 0). */
uint16_t cas_server_port(const struct cas_server *s);

/* The largest request body s admits on its single-request routes, in
 * bytes (413 past it); POST /v1/batch admits CAS_SERVER_BATCH_LIMIT. */
size_t cas_server_body_limit(const struct cas_server *s);

/* Stops s (requests in progress finish first: the store must still be
 * open), frees it. s may be NULL. */
void cas_server_stop(struct cas_server *s);

#endif

/* conns.h - casd's connections, tracked for their limits and deadlines
 * (PROTOCOL.md, "Limits"): connections per client address and in all, a
 * deadline for a request's headers and one for the rest of it, idle
 * connections closed under pressure before a new client is refused.
 * Private to the server.
 *
 * Every connection is tracked from libmicrohttpd's accept to its close.
 * A connection the limits close is shut down (shutdown(2)), which its
 * libmicrohttpd thread sees as the peer leaving; the record goes when
 * libmicrohttpd says the connection closed, before it closes the socket,
 * so a socket shut down is never one reused meanwhile. */
#ifndef CAS_CONNS_H
#define CAS_CONNS_H

#include <stdbool.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "http_impl.h"

struct cas_server;

/* Where a connection is, for its deadline. */
enum cas_conn_state {
	CAS_CONN_NEW,	  /* accepted (TLS handshake, first request line):
			   * header_ms from the accept */
	CAS_CONN_HEADERS, /* a request line came, its headers are coming:
			   * header_ms from the request line */
	CAS_CONN_BODY,	  /* headers in: the body, running, the answer:
			   * body_ms from the headers */
	CAS_CONN_WAITING, /* suspended, waiting for the store: no deadline */
	CAS_CONN_IDLE,	  /* kept alive between requests: idle_ms, and the
			   * first to close under pressure */
};

struct cas_addr_count; /* conns.c */

/* A tracked connection; the socket context libmicrohttpd keeps for it. */
struct cas_conn {
	struct cas_conn *prev, *next; /* all of them, guarded by the conns' lock */
	struct cas_server *s;
	struct MHD_Connection *conn;
	struct cas_addr_count *addr; /* its address's count */
	int fd;
	enum cas_conn_state state; /* guarded by the conns' lock */
	uint64_t since_ms;	   /* when it came to state (monotonic) */
	bool closing;		   /* shut down here: no more counted */
	bool verified;		   /* its client certificate checked (auth.c);
				    * its own thread only */
	char peer[CAS_PEER_LEN];   /* cas_http_peer, made once */
};

/* The limits in force: cfg with defaults for zeros, in *out. */
void cas_conns_resolve(const struct cas_server_limits *cfg, struct cas_server_limits *out);

/* Starts tracking s's connections with the limits in cfg (resolved), and
 * the thread that enforces the deadlines. Errors: CAS_ENOMEM, CAS_EIO
 * (no thread), with errmsg. *out NULL on error. */
int cas_conns_start(struct cas_server *s, const struct cas_server_limits *cfg,
		    struct cas_conns **out, char *errmsg, size_t errmsg_len);

/* Stops the deadlines' thread and frees l, once libmicrohttpd stopped (every
 * connection closed). l may be NULL. */
void cas_conns_stop(struct cas_conns *l);

/* libmicrohttpd's accept policy (cls: the server): refuses a connection
 * over the limits unless it can close another to make room: at an
 * address's limit, that address's connection idle the longest; at the
 * limit in all, the connection idle the longest, else the one waiting
 * longest for its request's headers. Refusals and closes are logged
 * (rate-limited). Threads accepting at once may overshoot a limit by one
 * each: the count moves when the connection starts. */
enum MHD_Result cas_conns_accept(void *cls, const struct sockaddr *addr, socklen_t addr_len);

/* MHD_OPTION_NOTIFY_CONNECTION (cls: the server): a connection starts
 * (tracked; with client certificates, its TLS session is set up to check
 * them: tls.c) or closes (forgotten). */
void cas_conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
		      enum MHD_ConnectionNotificationCode toe);

/* MHD_OPTION_URI_LOG_CALLBACK (cls: the server): a request line came.
 * Returns NULL (the request's context starts empty). */
void *cas_conns_request_line(void *cls, const char *uri, struct MHD_Connection *conn);

/* conn is now in state (CAS_CONN_BODY, _WAITING or _IDLE), its deadline
 * counted from now. */
void cas_conns_set_state(struct MHD_Connection *conn, enum cas_conn_state state);

/* conn's record; NULL when it is not tracked (out of memory at its
 * start: it is being closed). Valid on conn's own thread until the
 * libmicrohttpd callback that asked returns. */
struct cas_conn *cas_conns_conn(struct MHD_Connection *conn);

/* The libmicrohttpd connection limit to set: room for the connections
 * being closed beyond those the limits count. */
unsigned cas_conns_mhd_limit(const struct cas_server_limits *cfg, unsigned threads);

#endif

/* http_impl.h - what casd's HTTP files share (http.c: libmicrohttpd
 * plumbing; routes.c: the single-request routes; batch_route.c: POST
 * /v1/batch). Private to the server. */
#ifndef CAS_HTTP_IMPL_H
#define CAS_HTTP_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "http.h"
#include "identity.h"
#include "msg.h"
#include "store.h"

/* Kinds of warn lines rate-limited apart (cas_http_log_limited): at most
 * one line per kind per second; the next one says how many were not
 * logged. A peer that keeps sending bad requests must not flood the log. */
enum cas_log_kind {
	CAS_LOG_ADMIT, /* + enum cas_admit: identity refusals */
	CAS_LOG_TOKEN = CAS_LOG_ADMIT + CAS_ADMIT_BEHIND + 1, /* 401 */
	CAS_LOG_CERT,		/* a client certificate refused in the handshake */
	CAS_LOG_BAD_REQUEST,	/* 400: a bad body, a bad header */
	CAS_LOG_NOT_FOUND,	/* 404, 405 */
	CAS_LOG_TOO_LARGE,	/* 413, 415 */
	CAS_LOG_OTHER,		/* other 4xx */
	CAS_LOG_PER_ADDRESS,	/* a connection refused: its address has too many */
	CAS_LOG_TOTAL,		/* a connection refused: too many in all */
	CAS_LOG_EVICTED,	/* an idle connection closed to make room */
	CAS_LOG_HEADER_TIMEOUT, /* headers not received in time */
	CAS_LOG_BODY_TIMEOUT,	/* a request not done in time */
	CAS_LOG_LIBRARY,	/* libmicrohttpd's own lines */
	CAS_LOG_KINDS
};

struct cas_conns; /* conns.h */
struct cas_token; /* auth.h */

struct cas_server {
	struct MHD_Daemon *daemon;
	struct cas_store *store;
	size_t max_value;
	size_t body_limit;
	uint16_t port;
	void (*log)(void *arg, enum cas_server_log_level level, const char *line);
	void *log_arg;
	enum cas_server_log_level log_level;
	struct cas_identity *identity;
	bool unidentified;	      /* cas_server_config.admit_unidentified */
	struct cas_token *token;      /* malloc'd; NULL: no token asked for */
	bool tls;		      /* serving HTTPS */
	bool client_certs;	      /* clients must present a certificate */
	char *tls_cert, *tls_key;     /* PEM, malloc'd; the key wiped when freed */
	char *tls_ca;		      /* PEM, malloc'd */
	struct cas_conns *conns;      /* connections: limits, deadlines */
	pthread_mutex_t ratelog_lock; /* guards ratelog */
	struct {
		uint64_t last_ms;	  /* when one was last logged */
		unsigned long suppressed; /* not logged since */
	} ratelog[CAS_LOG_KINDS];
	pthread_mutex_t lock; /* guards the fields below */
	pthread_cond_t idle;  /* suspended went down to 0 */
	size_t suspended;     /* connections waiting for the store */
	bool stopping;	      /* cas_server_stop: no more suspending */
};

enum route {
	ROUTE_PREPARE,
	ROUTE_ACCEPT,
	ROUTE_QUERY,
	ROUTE_BATCH,
	ROUTE_PURGE, /* POST /v1/purge */
	ROUTE_KEYS,  /* GET /v1/keys: admitted as the five above */
	ROUTE_HEALTH,
	ROUTE_CONFIG,	    /* GET /v1/config */
	ROUTE_JOIN,	    /* POST /v1/admin/join */
	ROUTE_ADMIN_CONFIG, /* POST /v1/admin/config */
	ROUTE_METRICS,	    /* GET /metrics */
	ROUTE_ERROR,	    /* refused from its headers; answered once read */
};

struct batch; /* batch_route.c */

/* One request in flight: its route and the body read so far, then its
 * protocol request while the store runs it. Answers go out once the
 * request is read in full: an answer queued earlier makes libmicrohttpd
 * close the connection. */
struct request {
	struct cas_server *server;
	struct MHD_Connection *conn;
	enum route route;
	enum route asked; /* the route asked for, before any refusal: metrics */
	bool binary;	  /* body and answer in the binary form, not JSON */
	bool stored;	  /* op is in the store, or done: answer from op */
	struct cas_msg req;
	struct cas_store_op op;
	struct batch *batch; /* ROUTE_BATCH, once split: answer from it */
	unsigned status;     /* ROUTE_ERROR: the answer */
	const char *reason;  /* ROUTE_ERROR: static */
	char *body;
	size_t len;
	size_t cap;
	size_t limit;	/* largest body of its route */
	size_t dropped; /* bytes past the limit, thrown away */
	bool too_big;
};

/* http.c */

/* Passes one line to s's log when level is within s's log level. */
void cas_http_log(const struct cas_server *s, enum cas_server_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* cas_http_log, at most one line of kind per second (enum cas_log_kind);
 * the next line logged says how many were not. */
void cas_http_log_limited(struct cas_server *s, enum cas_log_kind kind,
			  enum cas_server_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The peer of conn, numeric address and port ("[::1]:4242" for IPv6),
 * into buf; "?" when unknown. */
void cas_http_peer(struct MHD_Connection *conn, char *buf, size_t len);

/* Room for what cas_http_peer writes. */
#define CAS_PEER_LEN 64

/* Queues a response of the given Content-Type taking ownership of body
 * (malloc'd, freed even on failure); allow, when not NULL, is the Allow
 * header of a 405. */
enum MHD_Result cas_http_send_typed(struct MHD_Connection *conn, unsigned status, char *body,
				    size_t len, const char *type, const char *allow);

/* cas_http_send_typed with Content-Type application/json. */
enum MHD_Result cas_http_send_json(struct MHD_Connection *conn, unsigned status, char *body,
				   size_t len, const char *allow);

/* Answers {"error": reason} (reason is copied), and logs it with the
 * peer: a refusal (4xx) at warn level, rate-limited by kind, a failure
 * (5xx) at error level. A 401 carries WWW-Authenticate. Without memory
 * for it, a fixed body. */
enum MHD_Result cas_http_send_error(struct cas_server *s, struct MHD_Connection *conn,
				    const char *method, const char *url, unsigned status,
				    const char *reason);

/* Counts one more connection waiting, suspended, for the store (no
 * deadline runs meanwhile: conns.h); false once stopping (the caller
 * then waits on its own thread instead). */
bool cas_http_begin_wait(struct cas_server *s, struct MHD_Connection *conn);

/* The store is done with a suspended connection: libmicrohttpd may call
 * on_request for it again, which answers (and may free its request). */
void cas_http_end_wait(struct cas_server *s, struct MHD_Connection *conn);

/* auth.c */

/* The authentication of a request whose headers are in, before anything
 * else of it (its route aside): its TLS client certificate, checked again
 * (the handshake refused any other: tls.c), and the token when s has one
 * (every route but GET /v1/health). True when it may go on. Otherwise
 * *status is the answer (401, reason static, logged when sent), or 0:
 * drop the connection (logged here). */
bool cas_http_authorize(struct cas_server *s, struct MHD_Connection *conn, enum route route,
			unsigned *status, const char **reason);

/* Takes cfg's TLS files and token into s, after checking them, and
 * refuses an address beyond loopback that nothing protects (http.h);
 * errors as cas_server_start's. Whatever it took is freed by
 * cas_http_free_security, even on error. */
int cas_http_take_security(struct cas_server *s, const struct cas_server_config *cfg,
			   const struct sockaddr_storage *addr, char *errmsg, size_t errmsg_len);

/* Frees what cas_http_take_security took, wiping the key and token. */
void cas_http_free_security(struct cas_server *s);

/* admin.c: identity and membership (PROTOCOL.md, "Cluster identity and
 * membership"). */

/* The one admission of a request on a route that carries the identity
 * headers (prepare, accept, query, batch, keys), before anything of it
 * runs: true when it may run, the caller then holding the identity's gate
 * until it calls cas_identity_leave (identity.h), once the request is in
 * the store or answered. Otherwise the refusal is queued, its result in
 * *ret, logged at warn level (rate-limited), and nothing is held. */
bool cas_http_admit(struct cas_server *s, struct MHD_Connection *conn, const char *method,
		    const char *url, enum MHD_Result *ret);

/* GET /v1/config. */
enum MHD_Result cas_http_config(struct cas_server *s, struct MHD_Connection *conn,
				const char *method, const char *url);

/* POST /v1/admin/join and POST /v1/admin/config. */
enum MHD_Result cas_http_join(struct cas_server *s, struct MHD_Connection *conn, const char *method,
			      const char *url, struct request *r);
enum MHD_Result cas_http_admin_config(struct cas_server *s, struct MHD_Connection *conn,
				      const char *method, const char *url, struct request *r);

/* GET /v1/keys, admitted. */
enum MHD_Result cas_http_keys(struct cas_server *s, struct MHD_Connection *conn, const char *method,
			      const char *url);

/* routes.c: each answers r (read in full) on conn. */

/* GET /v1/health. */
enum MHD_Result cas_http_health(struct cas_server *s, struct MHD_Connection *conn,
				const char *method, const char *url);

/* GET /metrics (metrics.h). */
enum MHD_Result cas_http_metrics(struct cas_server *s, struct MHD_Connection *conn,
				 const char *method, const char *url);

/* POST /v1/query, from committed state. */
enum MHD_Result cas_http_query(struct cas_server *s, struct MHD_Connection *conn,
			       const char *method, const char *url, struct request *r);

/* POST /v1/prepare, /v1/accept and /v1/purge: hands r to the store;
 * r->stored from then on. Returns with the connection suspended when r
 * waits for its batch; cas_http_answer_stored answers it once resumed. */
enum MHD_Result cas_http_request(struct cas_server *s, struct MHD_Connection *conn,
				 const char *method, const char *url, struct request *r);

/* Answers a request the store ran (r->stored). */
enum MHD_Result cas_http_answer_stored(struct cas_server *s, struct MHD_Connection *conn,
				       const char *method, const char *url, struct request *r);

/* batch_route.c */

/* POST /v1/batch: splits r's body into r->batch and runs it; returns with
 * the connection suspended while its changing items wait for the store,
 * and cas_http_answer_batch answers it once resumed. */
enum MHD_Result cas_http_batch(struct cas_server *s, struct MHD_Connection *conn,
			       const char *method, const char *url, struct request *r);

/* Answers r's batch, whose items all have their outcome, and frees it. */
enum MHD_Result cas_http_answer_batch(struct cas_server *s, struct MHD_Connection *conn,
				      const char *method, const char *url, struct request *r);

/* Frees a batch and what its items hold. b may be NULL. Never while a
 * changing item is in the store. */
void cas_http_batch_free(struct batch *b);

#endif

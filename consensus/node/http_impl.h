/* http_impl.h - what casd's HTTP files share (http.c: libmicrohttpd
 * plumbing; routes.c: the single-request routes; batch_route.c: POST
 * /v1/batch). Private to the server. */
#ifndef CAS_HTTP_IMPL_H
#define CAS_HTTP_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "http.h"
#include "identity.h"
#include "msg.h"
#include "store.h"

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
	bool unidentified;	       /* cas_server_config.admit_unidentified */
	pthread_mutex_t refusals_lock; /* guards refusals */
	struct {
		uint64_t last_ms;	  /* when one was last logged */
		unsigned long suppressed; /* not logged since */
	} refusals[CAS_ADMIT_BEHIND + 1]; /* by enum cas_admit */
	pthread_mutex_t lock;		  /* guards the fields below */
	pthread_cond_t idle;		  /* suspended went down to 0 */
	size_t suspended;		  /* connections waiting for the store */
	bool stopping;			  /* cas_server_stop: no more suspending */
};

enum route {
	ROUTE_PREPARE,
	ROUTE_ACCEPT,
	ROUTE_QUERY,
	ROUTE_BATCH,
	ROUTE_KEYS, /* GET /v1/keys: admitted as the four above */
	ROUTE_HEALTH,
	ROUTE_CONFIG,	    /* GET /v1/config */
	ROUTE_JOIN,	    /* POST /v1/admin/join */
	ROUTE_ADMIN_CONFIG, /* POST /v1/admin/config */
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
	bool binary; /* body and answer in the binary form, not JSON */
	bool stored; /* op is in the store, or done: answer from op */
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

/* Queues a response of the given Content-Type taking ownership of body
 * (malloc'd, freed even on failure); allow, when not NULL, is the Allow
 * header of a 405. */
enum MHD_Result cas_http_send_typed(struct MHD_Connection *conn, unsigned status, char *body,
				    size_t len, const char *type, const char *allow);

/* cas_http_send_typed with Content-Type application/json. */
enum MHD_Result cas_http_send_json(struct MHD_Connection *conn, unsigned status, char *body,
				   size_t len, const char *allow);

/* Answers {"error": reason} (reason is copied), and logs it. Without
 * memory for it, a fixed body. */
enum MHD_Result cas_http_send_error(struct cas_server *s, struct MHD_Connection *conn,
				    const char *method, const char *url, unsigned status,
				    const char *reason);

/* Counts one more connection waiting, suspended, for the store; false
 * once stopping (the caller then waits on its own thread instead). */
bool cas_http_begin_wait(struct cas_server *s);

/* The store is done with a suspended connection: libmicrohttpd may call
 * on_request for it again, which answers (and may free its request). */
void cas_http_end_wait(struct cas_server *s, struct MHD_Connection *conn);

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

/* POST /v1/query, from committed state. */
enum MHD_Result cas_http_query(struct cas_server *s, struct MHD_Connection *conn,
			       const char *method, const char *url, struct request *r);

/* POST /v1/prepare and /v1/accept: hands r to the store; r->stored from
 * then on. Returns with the connection suspended when r waits for its
 * batch; cas_http_answer_stored answers it once resumed. */
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

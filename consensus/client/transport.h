/* transport.h - the client's HTTP transport: one protocol request fanned
 * out to every acceptor in parallel over kept-alive libcurl connections.
 * transport.c holds the channels and the send/next loop, over two ways to
 * a node: a transfer of its own (transport_direct.c) or the node's batch
 * pipe (transport_pipe.c); transport_int.h is what they share. */
#ifndef CAS_TRANSPORT_H
#define CAS_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cas/admin.h>

#include "msg.h"

/* A transport: the acceptors' base URLs and a pool of channels. Checking
 * channels out and in is thread-safe; everything else on a channel is for
 * the one thread that holds it. */
struct cas_transport;

/* A channel: one libcurl multi handle with its own easy handles, so its
 * connections stay alive from one operation to the next. Opaque. */
struct cas_channel;

/* Opens a transport on n (0..CAS_NODES_MAX) base URLs ("http://host:port",
 * no trailing slash), copied; node i is urls[i]. Replies larger than
 * max_value decoded bytes are refused. Every request has auth's TLS
 * settings and token (auth may be NULL; borrowed: it must outlive t).
 * Contacts no node. On error *out is untouched and errmsg holds a
 * one-line reason. */
int cas_transport_open(const char *const *urls, size_t n, size_t max_value,
		       const struct cas_auth *auth, struct cas_transport **out, char *errmsg,
		       size_t errmsg_len);

/* Adds the node url (copied) as node cas_transport_nodes(t), and returns
 * its index in *index. Thread-safe; nodes are never removed nor changed.
 * CAS_EINVAL when t has CAS_NODES_MAX nodes already, CAS_ENOMEM. */
int cas_transport_add(struct cas_transport *t, const char *url, size_t *index);

/* The number of nodes of t so far. */
size_t cas_transport_nodes(const struct cas_transport *t);

/* The base URL of node i (< cas_transport_nodes(t)), valid until
 * cas_transport_close. */
const char *cas_transport_url(const struct cas_transport *t, size_t i);

/* The identity a request carries (PROTOCOL.md, "Identity on every
 * request"): Cas-Cluster and Cas-Epoch. */
struct cas_ident {
	const char *cluster; /* 32 hex digits */
	uint64_t epoch;
};

/* Closes t and every channel in its pool. No channel may be checked out. */
void cas_transport_close(struct cas_transport *t);

/* Takes a channel from t's pool, or makes one when the pool is empty. The
 * caller gives it back with cas_transport_checkin. */
int cas_transport_checkout(struct cas_transport *t, struct cas_channel **out, char *errmsg,
			   size_t errmsg_len);

/* Gives ch back to t's pool. Transfers still running on ch go on in the
 * background (their answers are dropped) until ch is used again. */
void cas_transport_checkin(struct cas_transport *t, struct cas_channel *ch);

/* Sends m (PREPARE to /v1/prepare, ACCEPT to /v1/accept, QUERY to
 * /v1/query, PURGE to /v1/purge, never in a batch) with identity id to
 * every node i with bit i of mask set. From now on cas_transport_next reports the answers to this
 * send only; answers to earlier sends are dropped. Each request gives up at deadline_ms (absolute,
 * CLOCK_MONOTONIC). m is encoded at once and may change after the call. On error nothing was sent.
 */
int cas_transport_send(struct cas_channel *ch, const struct cas_msg *m, const struct cas_ident *id,
		       uint64_t mask, uint64_t deadline_ms, char *errmsg, size_t errmsg_len);

/* A node's refusal of a request's identity: it changed nothing and its
 * answer counts toward no quorum. */
enum cas_refusal {
	CAS_REFUSAL_NONE,
	CAS_REFUSAL_UNINITIALIZED, /* 503: the node has no identity */
	CAS_REFUSAL_CLUSTER,	   /* 421: the node is of another cluster */
	CAS_REFUSAL_STALE,	   /* 409: our epoch is older than the node's */
	CAS_REFUSAL_BEHIND,	   /* 409: the node's epoch is older than ours */
};

/* The refusal that an HTTP answer (status, and its body of len bytes, a
 * JSON error) stands for, or CAS_REFUSAL_NONE; *epoch gets the node's
 * epoch for STALE and BEHIND (0 otherwise). */
enum cas_refusal cas_transport_refusal(long status, const char *body, size_t len, uint64_t *epoch);

/* One node's answer to the current send. */
struct cas_transport_answer {
	size_t node;
	/* CAS_OK: msg is the decoded reply (an HTTP 200 or 409), owned by
	 * the answer (cas_transport_answer_clear). CAS_ETOOBIG: the node refused the
	 * body as too large (413), or its reply is larger than this client
	 * takes; retrying cannot help. Any other code: no answer (transport
	 * error, timeout, other status or a malformed reply); errmsg says
	 * what happened. */
	int code;
	struct cas_msg msg;
	/* With a code other than CAS_OK: whether the node refused the
	 * request's identity, and its epoch for STALE and BEHIND. */
	enum cas_refusal refusal;
	uint64_t epoch;
	char errmsg[256];
};

/* Frees what a holds and zeroes it. */
void cas_transport_answer_clear(struct cas_transport_answer *a);

enum cas_transport_event {
	CAS_TRANSPORT_ANSWER,  /* *a holds one node's answer */
	CAS_TRANSPORT_TIMEOUT, /* until_ms came first */
	CAS_TRANSPORT_IDLE,    /* every node of the current send has answered */
};

/* Waits until until_ms (absolute) for the next answer to the current send
 * and fills *a (zeroed first; the caller clears it). Answers come in the
 * order they arrive, one per node and send. Errors of the multi handle
 * itself become no-answers of every pending node. */
enum cas_transport_event cas_transport_next(struct cas_channel *ch, uint64_t until_ms,
					    struct cas_transport_answer *a);

/* Forgets the current send (its answers will be dropped) and waits until
 * until_ms, keeping the channel's transfers moving meanwhile. */
void cas_transport_sleep(struct cas_channel *ch, uint64_t until_ms);

/* GET node's /v1/health within timeout_ms. CAS_OK on an HTTP 200;
 * CAS_EUNAVAILABLE when the node did not answer, CAS_EPROTO on another
 * status, with a reason in errmsg. */
int cas_transport_ping(struct cas_transport *t, size_t node, unsigned timeout_ms, char *errmsg,
		       size_t errmsg_len);

/* Initializes libcurl once per process (thread-safe). CAS_EIO when it
 * cannot, with a reason in errmsg. */
int cas_transport_global_init(char *errmsg, size_t errmsg_len);

/* Milliseconds on CLOCK_MONOTONIC (cas_os_monotonic_ms, cas/os.h): the
 * clock of every deadline here. */
uint64_t cas_transport_now_ms(void);

#endif

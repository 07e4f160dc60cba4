/* transport_int.h - what the transport's three files share: its structs
 * and the calls between them. transport.c holds the transport and its
 * channels and drives a send; transport_direct.c runs a channel's own
 * transfers; transport_pipe.c runs the nodes' batch pipes on the I/O
 * thread. Private to consensus/client/transport*.c. */
#ifndef CAS_TRANSPORT_INT_H
#define CAS_TRANSPORT_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include <cas/cas.h>

#include "proposer.h" /* CAS_NODES_MAX */
#include "transport.h"

/* Transfers one channel keeps towards one node: a slow node's answer to an
 * earlier send may still be on its way when the next send starts. Past
 * this many, requests to the node go through its batch pipe instead; to a
 * node that takes no batches, the oldest is abandoned (which costs its
 * connection). */
#define XFERS_PER_NODE_MAX 4

/* Room for a reply's JSON around the base64 of its value. */
#define REPLY_SLACK (64u * 1024u)

/* Requests larger than this go on their own, never in a batch. */
#define BATCH_ITEM_MAX (64u * 1024u)

/* Batches are used while at least this many channels are checked out. */
#define BATCH_MIN_ACTIVE 4

/* One request body, shared by the transfers of one send. Made by
 * cas_transport_send; each busy transfer holds a reference (refs), and the
 * last one to let go frees it. */
struct body {
	unsigned refs;
	size_t len;
	char data[];
};

/* One easy handle of a channel; it talks to one node. Owned by its
 * channel (ch->xfers), for the thread that holds the channel. */
struct xfer {
	CURL *easy;
	struct cas_channel *ch;
	size_t node;
	uint64_t seq;	   /* the send it belongs to */
	bool busy;	   /* in the multi handle */
	struct body *body; /* a reference while busy */
	char *resp;
	size_t resp_len, resp_cap;
	bool resp_overflow;
	CURLcode result; /* of the finished transfer */
	char errbuf[CURL_ERROR_SIZE];
};

/* One channel's request to one node, waiting in the node's pipe or in the
 * batch in flight there. Owned by the pipe it is in, malloc'd. */
struct bitem {
	struct bitem *next;
	struct cas_channel *ch;
	uint64_t seq;		 /* ch->bseq of the send it belongs to */
	uint64_t deadline_ms;	 /* of that send */
	struct curl_slist *hdrs; /* its identity (t->idents) */
	size_t len;
	unsigned char data[]; /* the request, binary form */
};

/* An answer that came in a batch, for its channel to take. Owned by the
 * channel's list (ch->bans) until taken, malloc'd. */
struct banswer {
	struct banswer *next;
	struct cas_transport_answer a;
};

/* The batches to one node: at most one in flight; requests that come
 * meanwhile wait and go together in the next. */
struct pipe {
	struct bitem *head, **tail; /* waiting (t->block) */
	bool busy;		    /* a batch is in flight (t->block) */
	bool refused;		    /* the node takes no batches (t->block) */
	/* The I/O thread's own. */
	struct bitem *flight;	 /* the batch in flight, in order */
	struct curl_slist *hdrs; /* of every item of the batch */
	size_t n_flight;
	CURL *easy;
	unsigned char *req;
	size_t req_len, req_cap;
	unsigned char *resp;
	size_t resp_len, resp_cap, resp_max;
	bool resp_overflow;
	char errbuf[CURL_ERROR_SIZE];
};

struct cas_channel {
	struct cas_transport *t;
	CURLM *multi;
	struct xfer **xfers;
	size_t n_xfers, cap_xfers;
	uint64_t seq;	/* the current send */
	size_t pending; /* busy transfers of the current send */
	struct cas_channel *next_free;
	/* Answers in batches (t->block): */
	uint64_t bseq;	      /* the current send */
	size_t bpending;      /* batch answers it still waits for */
	struct banswer *bans; /* arrived, not taken yet */
	struct banswer **bans_tail;
};

/* The headers of one identity, kept until the transport closes: transfers
 * of earlier sends may still use them. */
struct ident_hdrs {
	struct ident_hdrs *next;
	char cluster[40];
	uint64_t epoch;
	struct curl_slist *h;
};

struct cas_transport {
	pthread_mutex_t lock;
	size_t n; /* grows (cas_transport_add); read it with __atomic_load_n */
	/* CAS_NODES_MAX entries each, the first n set. */
	char **urls;
	char **prepare_urls;
	char **accept_urls;
	char **query_urls;
	char **purge_urls;
	char **health_urls;
	size_t max_value;
	size_t max_reply;
	const struct cas_auth *auth; /* TLS and token of every handle */
	struct curl_slist *headers;  /* of every request, with the token */
	struct ident_hdrs *idents;   /* (t->lock) */
	struct cas_channel *free_list;
	char **batch_urls;
	/* Batching: while more than one channel is checked out, requests go
	 * through the nodes' pipes, which one I/O thread drives. */
	pthread_mutex_t block; /* guards what the structs above mark (t->block) */
	size_t active;	       /* channels checked out */
	bool io_running, io_stop;
	pthread_t io;
	CURLM *io_multi;
	struct pipe pipes[CAS_NODES_MAX];
};

/* ---- A channel's own transfers (transport_direct.c) ---- */

/* Starts a transfer of b to urls[i] for every node i with direct[i], as
 * part of ch's current send (ch->seq), each giving up at deadline_ms. b is
 * handed over: it is freed once no transfer holds it, at once when none
 * took it, and on error. On error (CAS_ENOMEM, CAS_EIO) no transfer of
 * this send is left running and errmsg says why. */
int cas_direct_send(struct cas_channel *ch, char *const *urls, struct curl_slist *hdrs,
		    struct body *b, const bool *direct, uint64_t deadline_ms, char *errmsg,
		    size_t errmsg_len);

/* Takes x out of the multi handle; an unfinished transfer is abandoned
 * and its connection closed. */
void cas_direct_stop(struct xfer *x);

/* Takes every finished transfer of an earlier send out of the multi
 * handle, and returns the first finished one of the current send (still
 * busy, for the caller to turn into an answer), or NULL. */
struct xfer *cas_direct_harvest(struct cas_channel *ch);

/* Makes a finished transfer x of the current send into answer a, and
 * stops x. */
void cas_direct_answer(struct xfer *x, struct cas_transport_answer *a);

/* The first busy transfer of the current send, or NULL. */
struct xfer *cas_direct_first_pending(struct cas_channel *ch);

/* Whether ch already has XFERS_PER_NODE_MAX transfers of earlier sends
 * running to node: a node that lags that far behind the others. */
bool cas_direct_backlogged(const struct cas_channel *ch, size_t node);

/* Stops and frees every transfer of ch, before ch->multi goes. */
void cas_direct_free_all(struct cas_channel *ch);

/* ---- The nodes' batch pipes (transport_pipe.c) ---- */

/* Queues the request bin (len bytes, copied), with the headers hdrs, as
 * part of ch's current send, in the pipe of every node of mask that takes
 * batches and that batching is for: every node while BATCH_MIN_ACTIVE channels are out, and
 * otherwise a node ch is backlogged on (whose oldest transfer would else be abandoned, and its
 * connection with it, at every send: the pipe keeps one connection and sends what piled up
 * together). direct[i] says which nodes are left for the caller to ask on their own: all of them
 * for requests over BATCH_ITEM_MAX or without memory; none outside mask. */
void cas_pipe_send(struct cas_channel *ch, const unsigned char *bin, size_t len,
		   struct curl_slist *hdrs, uint64_t mask, uint64_t deadline_ms, bool *direct);

/* Forgets the batch answers to ch's earlier sends: a new send begins. */
void cas_pipe_new_send(struct cas_channel *ch);

/* Takes the oldest batch answer waiting for ch into *a (the caller's to
 * clear) and returns true, or returns false when there is none. Either
 * way *bpending is the count of batch answers ch still waits for. */
bool cas_pipe_take_answer(struct cas_channel *ch, struct cas_transport_answer *a, size_t *bpending);

/* Frees the batch answers ch has not taken. Called with t->block held, or
 * once no other thread can reach ch. */
void cas_pipe_drop_answers(struct cas_channel *ch);

/* Stops the I/O thread; what waits or flies is dropped. No channel may
 * be checked out. */
void cas_pipe_shutdown(struct cas_transport *t);

#endif

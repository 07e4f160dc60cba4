/* batch_route.c - casd's POST /v1/batch: many binary requests in one,
 * run as concurrent single requests, answered together (PROTOCOL.md,
 * "Batches"; the format is batch.h's). */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "batch.h"
#include "codec_bin.h"
#include "http_impl.h"
#include "node.h"

/* One item of a batch (batch.h) while it runs. */
struct batch_item {
	enum cas_batch_status status; /* not CAS_BATCH_OK: op.errmsg says why */
	bool changing;		      /* a PREPARE or ACCEPT, run by the store */
	struct cas_msg req;
	struct cas_store_op op; /* changing: its outcome */
	unsigned char *reply;	/* the encoded reply, once there is one */
	size_t reply_len;
};

/* A batch of requests in flight, allocated per batch (a cas_msg and a
 * cas_store_op are large). Freed once answered, or with its request; never
 * while a changing item is in the store (its connection is suspended). */
struct batch {
	atomic_size_t pending; /* changing items the store has not done yet */
	size_t n;
	size_t changing;
	struct batch_item items[];
};

void cas_http_batch_free(struct batch *b)
{
	size_t i;

	if (!b)
		return;
	for (i = 0; i < b->n; i++) {
		cas_msg_clear(&b->items[i].req);
		cas_msg_clear(&b->items[i].op.reply);
		free(b->items[i].reply);
	}
	free(b);
}

/* Runs on the store's writer once a changing item of r's batch is done:
 * the last one lets libmicrohttpd call on_request again, which answers. */
static void on_batch_stored(struct cas_store_op *op)
{
	struct request *r = op->arg;
	struct cas_server *s = r->server;
	struct MHD_Connection *conn = r->conn;

	/* Until the last item is done nothing frees r; once this one is
	 * counted, r is not touched here any more. */
	if (atomic_fetch_sub(&r->batch->pending, 1) != 1)
		return;
	/* r may be answered and freed from here on. */
	cas_http_end_wait(s, conn);
}

/* Encodes it->req's reply into it->reply, or fails the item. */
static void batch_encode_reply(struct batch_item *it, const struct cas_msg *reply)
{
	int err;

	err = cas_codec_bin_encode(reply, &it->reply, &it->reply_len);
	if (err) {
		/* A changing item is already durable: the proposer sees a
		 * failure and retries above it, which is safe. */
		it->status = CAS_BATCH_FAILED;
		snprintf(it->op.errmsg, sizeof(it->op.errmsg), "cannot encode the reply: %s",
			 cas_strerror(err));
	}
}

/* Decodes one item as its type byte says; a failure stays with the item. */
static void batch_decode(const struct cas_server *s, struct batch_item *it,
			 const struct cas_batch_item *in)
{
	char *errmsg = it->op.errmsg;
	size_t errmsg_len = sizeof(it->op.errmsg);
	enum cas_msg_type type;
	int err;

	it->status = CAS_BATCH_BAD;
	if (in->len < 2) {
		snprintf(errmsg, errmsg_len, "item of %zu bytes: no type byte", in->len);
		return;
	}
	switch (in->data[1]) {
	case 0x01:
		type = CAS_MSG_PREPARE;
		break;
	case 0x02:
		type = CAS_MSG_ACCEPT;
		break;
	case 0x03:
		type = CAS_MSG_QUERY;
		break;
	case 0x04:
		/* Sent alone, after the write-back (PROTOCOL.md, "Deletion"). */
		snprintf(errmsg, errmsg_len, "a PURGE is not a batch item: use /v1/purge");
		return;
	default:
		snprintf(errmsg, errmsg_len, "type 0x%02x is not a request", in->data[1]);
		return;
	}
	err = cas_codec_bin_decode_request(in->data, in->len, type, s->max_value, &it->req, errmsg,
					   errmsg_len);
	if (err == CAS_ETOOBIG)
		it->status = CAS_BATCH_TOO_BIG;
	else if (err == CAS_ENOMEM)
		it->status = CAS_BATCH_FAILED;
	if (err)
		return;
	it->status = CAS_BATCH_OK;
	it->changing = type != CAS_MSG_QUERY;
}

/* Answers a QUERY item as cas_http_query does, from committed state. */
static void batch_query(struct cas_server *s, struct batch_item *it)
{
	struct cas_msg reply;

	if (cas_node_query(s->store, &it->req, &reply, it->op.errmsg, sizeof(it->op.errmsg))) {
		it->status = CAS_BATCH_FAILED;
		return;
	}
	batch_encode_reply(it, &reply);
	cas_msg_clear(&reply);
}

enum MHD_Result cas_http_answer_batch(struct cas_server *s, struct MHD_Connection *conn,
				      const char *method, const char *url, struct request *r)
{
	struct batch *b = r->batch;
	struct cas_batch_entry *entries;
	struct batch_item *it;
	enum MHD_Result ret;
	unsigned char *body;
	size_t i, len, failed = 0;
	int err;

	entries = calloc(b->n, sizeof(*entries));
	if (!entries) {
		ret = cas_http_send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
					  "out of memory");
		goto out_free_batch;
	}
	for (i = 0; i < b->n; i++) {
		it = &b->items[i];
		if (it->status == CAS_BATCH_OK && it->changing) {
			if (it->op.err) {
				it->status = CAS_BATCH_FAILED;
				if (!it->op.errmsg[0])
					snprintf(it->op.errmsg, sizeof(it->op.errmsg), "%s",
						 cas_strerror(it->op.err));
			} else {
				batch_encode_reply(it, &it->op.reply);
			}
		}
		entries[i].status = it->status;
		if (it->status == CAS_BATCH_OK) {
			entries[i].data = it->reply;
			entries[i].len = it->reply_len;
		} else {
			entries[i].data = it->op.errmsg;
			entries[i].len = strlen(it->op.errmsg);
			failed++;
		}
	}
	err = cas_batch_encode(entries, b->n, &body, &len);
	free(entries);
	if (err) {
		ret = cas_http_send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
					  cas_strerror(err));
		goto out_free_batch;
	}
	cas_http_log(s, CAS_SERVER_LOG_DEBUG, "%s %s items=%zu changing=%zu not_ok=%zu 200", method,
		     url, b->n, b->changing, failed);
	ret = cas_http_send_typed(conn, MHD_HTTP_OK, (char *)body, len, CAS_CODEC_BIN_TYPE, NULL);

out_free_batch:
	cas_http_batch_free(b);
	r->batch = NULL;
	return ret;
}

/* Splits and decodes the full body of a batch, answers its queries, and
 * hands its changing items to the store, each as cas_http_request would: the
 * connection waits, suspended, until the last is done (or, stopping, the
 * thread runs them one by one). */
enum MHD_Result cas_http_batch(struct cas_server *s, struct MHD_Connection *conn,
			       const char *method, const char *url, struct request *r)
{
	struct cas_batch_item split[CAS_BATCH_MAX_ITEMS];
	struct batch_item *items, *only = NULL;
	struct batch *b;
	char errmsg[256];
	size_t i, n, left;

	if (r->too_big)
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_CONTENT_TOO_LARGE,
					   "request body too large");
	if (cas_batch_split(r->body, r->len, split, &n, errmsg, sizeof(errmsg)))
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_BAD_REQUEST, errmsg);
	b = calloc(1, sizeof(*b) + n * sizeof(b->items[0]));
	if (!b)
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
					   "out of memory");
	b->n = n;
	r->batch = b;
	items = b->items;
	for (i = 0; i < n; i++) {
		batch_decode(s, &items[i], &split[i]);
		if (items[i].changing) {
			b->changing++;
			only = &items[i];
		} else if (items[i].status == CAS_BATCH_OK) {
			batch_query(s, &items[i]);
		}
	}
	free(r->body); /* not needed any more while the batch waits */
	r->body = NULL;
	r->len = r->cap = 0;
	for (i = 0; i < n; i++)
		items[i].op.req = &items[i].req;
	if (b->changing == 0)
		return cas_http_answer_batch(s, conn, method, url, r);
	if (b->changing == 1 && cas_store_run_if_idle(s->store, &only->op))
		return cas_http_answer_batch(s, conn, method, url, r);

	if (!cas_http_begin_wait(s, conn)) {
		for (i = 0; i < n; i++)
			if (items[i].changing)
				items[i].op.err = cas_store_handle(
					s->store, &items[i].req, &items[i].op.reply,
					items[i].op.errmsg, sizeof(items[i].op.errmsg));
		return cas_http_answer_batch(s, conn, method, url, r);
	}
	/* Suspended before the first is queued: the last done may resume it
	 * at once, after which neither b nor r is touched here. */
	r->server = s;
	r->conn = conn;
	atomic_store(&b->pending, b->changing);
	left = b->changing;
	for (i = 0; i < n; i++) {
		if (!items[i].changing)
			continue;
		items[i].op.done = on_batch_stored;
		items[i].op.arg = r;
	}
	MHD_suspend_connection(conn);
	for (i = 0; left; i++) {
		struct cas_store_op *op = &items[i].op;

		if (!items[i].changing)
			continue;
		left--;
		if (cas_store_submit(s->store, op))
			on_batch_stored(op); /* refused at once: op says why */
	}
	return MHD_YES;
}

/* server_http.c - casd's HTTP front on libmicrohttpd (PROTOCOL.md). */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "acceptor.h"
#include "batch.h"
#include "codec.h"
#include "codec_bin.h"
#include "server_http.h"

/* Seconds an idle kept-alive connection stays open. */
#define IDLE_TIMEOUT_S 120

/* A request whose body overflows without a Content-Length is drained to
 * its end to answer 413; past this many times the limit it is cut off. */
#define DRAIN_FACTOR 4

struct cas_server {
	struct MHD_Daemon *daemon;
	struct cas_store *store;
	size_t max_value;
	size_t body_limit;
	uint16_t port;
	void (*log)(void *arg, enum cas_server_log_level level, const char *line);
	void *log_arg;
	enum cas_server_log_level log_level;
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
	ROUTE_HEALTH,
	ROUTE_ERROR, /* refused from its headers; answered once read */
};

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

__attribute__((format(printf, 3, 4))) static void
logf_(const struct cas_server *s, enum cas_server_log_level level, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!s->log || level > s->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->log(s->log_arg, level, line);
}

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct cas_server *s = cls;
	char line[512];
	size_t n;

	if (!s->log)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	s->log(s->log_arg, CAS_SERVER_LOG_ERROR, line);
}

/* Queues a response of the given Content-Type taking ownership of body
 * (malloc'd); allow, when not NULL, is the Allow header of a 405. */
static enum MHD_Result send_typed(struct MHD_Connection *conn, unsigned status, char *body,
				  size_t len, const char *type, const char *allow)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	if (allow && MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow) != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, char *body,
				 size_t len, const char *allow)
{
	return send_typed(conn, status, body, len, "application/json", allow);
}

/* A request whose Content-Type names the binary form (parameters after a
 * ';' ignored); anything else is JSON. */
static bool is_binary(struct MHD_Connection *conn)
{
	const char *ct;
	size_t n = strlen(CAS_CODEC_BIN_TYPE);

	ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (!ct || strncasecmp(ct, CAS_CODEC_BIN_TYPE, n))
		return false;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* Decodes r's body in the form its Content-Type names. */
static int decode_body(const struct cas_server *s, struct request *r, enum cas_msg_type type,
		       char *errmsg, size_t errmsg_len)
{
	if (r->binary)
		return cas_codec_bin_decode_request(r->body, r->len, type, s->max_value, &r->req,
						    errmsg, errmsg_len);
	return cas_codec_decode_request(r->body, r->len, type, s->max_value, &r->req, errmsg,
					errmsg_len);
}

/* Encodes a reply in the form of the request it answers. */
static int encode_reply(const struct request *r, const struct cas_msg *reply, char **body,
			size_t *len)
{
	unsigned char *bin;
	int err;

	if (!r->binary)
		return cas_codec_encode(reply, body, len);
	err = cas_codec_bin_encode(reply, &bin, len);
	*body = (char *)bin;
	return err;
}

/* Queues an encoded reply (see encode_reply), taking ownership of body. */
static enum MHD_Result send_reply(const struct request *r, struct MHD_Connection *conn,
				  unsigned status, char *body, size_t len)
{
	return send_typed(conn, status, body, len,
			  r->binary ? CAS_CODEC_BIN_TYPE : "application/json", NULL);
}

/* Answers {"error": reason}. Without memory for it, a fixed body. */
static enum MHD_Result send_error(struct cas_server *s, struct MHD_Connection *conn,
				  const char *method, const char *url, unsigned status,
				  const char *reason)
{
	static const char fallback[] = "{\"error\":\"out of memory\"}";
	const char *allow = NULL;
	cJSON *root;
	char *body = NULL;

	logf_(s, status >= 500 ? CAS_SERVER_LOG_ERROR : CAS_SERVER_LOG_WARN, "%s %.64s %u: %s",
	      method, url, status, reason);
	root = cJSON_CreateObject();
	if (root && cJSON_AddStringToObject(root, "error", reason))
		body = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!body) {
		body = strdup(fallback);
		if (!body)
			return MHD_NO;
	}
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		allow = strcmp(url, "/v1/health") == 0 ? "GET, HEAD" : "POST";
	return send_json(conn, status, body, strlen(body), allow);
}

static enum MHD_Result handle_health(struct cas_server *s, struct MHD_Connection *conn,
				     const char *method, const char *url)
{
	char errmsg[256], keys[24];
	cJSON *root;
	char *body = NULL;
	uint64_t n;

	if (cas_store_count(s->store, &n, errmsg, sizeof(errmsg)))
		return send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR, errmsg);
	snprintf(keys, sizeof(keys), "%" PRIu64, n);
	root = cJSON_CreateObject();
	if (root && cJSON_AddStringToObject(root, "status", "ok") &&
	    cJSON_AddStringToObject(root, "version", CAS_VERSION_STRING) &&
	    cJSON_AddStringToObject(root, "keys", keys))
		body = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!body)
		return send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
				  "out of memory");
	logf_(s, CAS_SERVER_LOG_DEBUG, "%s %s 200", method, url);
	return send_json(conn, MHD_HTTP_OK, body, strlen(body), NULL);
}

/* Answers a request the store ran: its reply, or a 500 saying what failed
 * (nothing was promised or accepted then). */
static enum MHD_Result answer_stored(struct cas_server *s, struct MHD_Connection *conn,
				     const char *method, const char *url, struct request *r)
{
	struct cas_msg *reply = &r->op.reply;
	enum MHD_Result ret;
	unsigned status;
	char *body;
	size_t len;
	int err;

	if (r->op.err) {
		ret = send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
				 r->op.errmsg[0] ? r->op.errmsg : cas_strerror(r->op.err));
		goto out_clear;
	}
	err = encode_reply(r, reply, &body, &len);
	status = reply->type == CAS_MSG_REJECT ? MHD_HTTP_CONFLICT : MHD_HTTP_OK;
	logf_(s, CAS_SERVER_LOG_DEBUG,
	      "%s %s key=%s ballot=%" PRIu64 ".%" PRIu64 " %u (ballot %" PRIu64 ".%" PRIu64 ")",
	      method, url, r->req.key, r->req.ballot.counter, r->req.ballot.id, status,
	      reply->ballot.counter, reply->ballot.id);
	if (err)
		/* Already durable; the proposer will see a failure and retry
		 * with a higher ballot, which is safe. */
		ret = send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
				 cas_strerror(err));
	else
		ret = send_reply(r, conn, status, body, len);

out_clear:
	cas_msg_clear(reply);
	cas_msg_clear(&r->req);
	return ret;
}

/* Counts one more connection waiting, suspended, for the store; false
 * once stopping (the caller then waits on its own thread instead). */
static bool begin_wait(struct cas_server *s)
{
	bool stopping;

	pthread_mutex_lock(&s->lock);
	stopping = s->stopping;
	if (!stopping)
		s->suspended++;
	pthread_mutex_unlock(&s->lock);
	return !stopping;
}

/* The store is done with a suspended connection: libmicrohttpd may call
 * on_request for it again, which answers (and may free its request). */
static void end_wait(struct cas_server *s, struct MHD_Connection *conn)
{
	MHD_resume_connection(conn);
	pthread_mutex_lock(&s->lock);
	if (--s->suspended == 0)
		pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->lock);
}

/* Runs on the store's writer once r's outcome is durable (or failed):
 * lets libmicrohttpd call on_request again, which answers. */
static void on_stored(struct cas_store_op *op)
{
	struct request *r = op->arg;
	struct cas_server *s = r->server;

	/* r may be answered and freed from here on. */
	end_wait(s, r->conn);
}

/* Answers a query from a read transaction of committed (so durable)
 * state, without the writer: a query changes nothing. */
static enum MHD_Result handle_query(struct cas_server *s, struct MHD_Connection *conn,
				    const char *method, const char *url, struct request *r)
{
	struct cas_acceptor_state st;
	struct cas_msg reply;
	enum MHD_Result ret;
	char errmsg[256];
	char *body;
	size_t len;
	int err;

	if (r->too_big)
		return send_error(s, conn, method, url, MHD_HTTP_CONTENT_TOO_LARGE,
				  "request body too large");
	err = decode_body(s, r, CAS_MSG_QUERY, errmsg, sizeof(errmsg));
	if (err == CAS_ENOMEM)
		return send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR, errmsg);
	if (err)
		return send_error(s, conn, method, url, MHD_HTTP_BAD_REQUEST, errmsg);
	err = cas_store_get(s->store, r->req.key, &st, errmsg, sizeof(errmsg));
	if (err)
		return send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR, errmsg);
	cas_acceptor_handle(&st, &r->req, &reply);
	err = encode_reply(r, &reply, &body, &len);
	free(st.value.data);
	if (err)
		return send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
				  cas_strerror(err));
	logf_(s, CAS_SERVER_LOG_DEBUG, "%s %s key=%s 200", method, url, r->req.key);
	ret = send_reply(r, conn, MHD_HTTP_OK, body, len);
	return ret;
}

/* Decodes the full body and hands it to the store: runs it at once when
 * the store is idle, or else the connection waits, suspended, for the
 * batch its request is in to be committed, so that a thread serves other
 * connections meanwhile; once stopping, the thread waits instead. */
static enum MHD_Result handle_request(struct cas_server *s, struct MHD_Connection *conn,
				      const char *method, const char *url, struct request *r)
{
	enum cas_msg_type type = r->route == ROUTE_PREPARE ? CAS_MSG_PREPARE : CAS_MSG_ACCEPT;
	char errmsg[256];
	int err;

	if (r->too_big)
		return send_error(s, conn, method, url, MHD_HTTP_CONTENT_TOO_LARGE,
				  "request body too large");
	err = decode_body(s, r, type, errmsg, sizeof(errmsg));
	if (err == CAS_ETOOBIG)
		return send_error(s, conn, method, url, MHD_HTTP_CONTENT_TOO_LARGE, errmsg);
	if (err == CAS_ENOMEM)
		return send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR, errmsg);
	if (err)
		return send_error(s, conn, method, url, MHD_HTTP_BAD_REQUEST, errmsg);
	free(r->body); /* not needed any more while the request waits */
	r->body = NULL;
	r->len = r->cap = 0;

	r->stored = true;
	r->op.req = &r->req;
	/* An idle store runs it here and now: no hand-over to its writer
	 * and back, which is most of the cost of a lone request. */
	if (cas_store_run_if_idle(s->store, &r->op))
		return answer_stored(s, conn, method, url, r);
	if (!begin_wait(s)) {
		r->op.err = cas_store_handle(s->store, &r->req, &r->op.reply, r->op.errmsg,
					     sizeof(r->op.errmsg));
		return answer_stored(s, conn, method, url, r);
	}
	/* Suspended before it is queued: on_stored may resume it at once. */
	r->server = s;
	r->conn = conn;
	r->op.req = &r->req;
	r->op.done = on_stored;
	r->op.arg = r;
	MHD_suspend_connection(conn);
	if (cas_store_submit(s->store, &r->op))
		on_stored(&r->op); /* refused at once: op says why */
	return MHD_YES;
}

static void batch_free(struct batch *b)
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
	end_wait(s, conn);
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

/* Answers a QUERY item as handle_query does, from committed state. */
static void batch_query(struct cas_server *s, struct batch_item *it)
{
	struct cas_acceptor_state st;
	struct cas_msg reply;

	if (cas_store_get(s->store, it->req.key, &st, it->op.errmsg, sizeof(it->op.errmsg))) {
		it->status = CAS_BATCH_FAILED;
		return;
	}
	cas_acceptor_handle(&st, &it->req, &reply);
	batch_encode_reply(it, &reply);
	free(st.value.data);
}

/* Answers a batch whose items all have their outcome, and frees it. */
static enum MHD_Result answer_batch(struct cas_server *s, struct MHD_Connection *conn,
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
		ret = send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
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
		ret = send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
				 cas_strerror(err));
		goto out_free_batch;
	}
	logf_(s, CAS_SERVER_LOG_DEBUG, "%s %s items=%zu changing=%zu not_ok=%zu 200", method, url,
	      b->n, b->changing, failed);
	ret = send_typed(conn, MHD_HTTP_OK, (char *)body, len, CAS_CODEC_BIN_TYPE, NULL);

out_free_batch:
	batch_free(b);
	r->batch = NULL;
	return ret;
}

/* Splits and decodes the full body of a batch, answers its queries, and
 * hands its changing items to the store, each as handle_request would: the
 * connection waits, suspended, until the last is done (or, stopping, the
 * thread runs them one by one). */
static enum MHD_Result handle_batch(struct cas_server *s, struct MHD_Connection *conn,
				    const char *method, const char *url, struct request *r)
{
	struct cas_batch_item split[CAS_BATCH_MAX_ITEMS];
	struct batch_item *items, *only = NULL;
	struct batch *b;
	char errmsg[256];
	size_t i, n, left;

	if (r->too_big)
		return send_error(s, conn, method, url, MHD_HTTP_CONTENT_TOO_LARGE,
				  "request body too large");
	if (cas_batch_split(r->body, r->len, split, &n, errmsg, sizeof(errmsg)))
		return send_error(s, conn, method, url, MHD_HTTP_BAD_REQUEST, errmsg);
	b = calloc(1, sizeof(*b) + n * sizeof(b->items[0]));
	if (!b)
		return send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
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
		return answer_batch(s, conn, method, url, r);
	if (b->changing == 1 && cas_store_run_if_idle(s->store, &only->op))
		return answer_batch(s, conn, method, url, r);

	if (!begin_wait(s)) {
		for (i = 0; i < n; i++)
			if (items[i].changing)
				items[i].op.err = cas_store_handle(
					s->store, &items[i].req, &items[i].op.reply,
					items[i].op.errmsg, sizeof(items[i].op.errmsg));
		return answer_batch(s, conn, method, url, r);
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

/* Appends data to r's body, or notes that the limit is passed. */
static bool append_body(struct cas_server *s, struct request *r, const char *data, size_t n)
{
	size_t need, cap;
	char *p;

	if (r->route == ROUTE_ERROR || r->route == ROUTE_HEALTH) {
		r->dropped += n; /* a body nobody reads */
		return r->dropped / DRAIN_FACTOR <= s->body_limit;
	}
	if (r->too_big || n > r->limit - r->len) {
		r->too_big = true;
		r->dropped += n;
		free(r->body);
		r->body = NULL;
		r->len = r->cap = 0;
		return r->dropped / DRAIN_FACTOR <= r->limit;
	}
	need = r->len + n + 1; /* room for a NUL, kept for cJSON's sake */
	if (need > r->cap) {
		cap = r->cap ? r->cap : 4096;
		while (cap < need)
			cap *= 2;
		if (cap > r->limit + 1)
			cap = r->limit + 1;
		p = realloc(r->body, cap);
		if (!p)
			return false;
		r->body = p;
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return true;
}

/* A Content-Length above limit, told before any body byte is read. */
static bool declared_too_big(struct MHD_Connection *conn, size_t limit)
{
	const char *cl;
	char *end;
	unsigned long long n;

	cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (!cl)
		return false;
	errno = 0;
	n = strtoull(cl, &end, 10);
	if (errno == ERANGE)
		return true;
	return end != cl && n > limit;
}

/* The route of a request, from its path and method. */
static enum route route_of(const char *url, const char *method, unsigned *status,
			   const char **reason)
{
	if (strcmp(url, "/v1/health") == 0) {
		if (strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
		    strcmp(method, MHD_HTTP_METHOD_HEAD) == 0)
			return ROUTE_HEALTH;
		*status = MHD_HTTP_METHOD_NOT_ALLOWED;
		*reason = "use GET on /v1/health";
		return ROUTE_ERROR;
	}
	if (strcmp(url, "/v1/prepare") && strcmp(url, "/v1/accept") && strcmp(url, "/v1/query") &&
	    strcmp(url, "/v1/batch")) {
		*status = MHD_HTTP_NOT_FOUND;
		*reason = "unknown path";
		return ROUTE_ERROR;
	}
	if (strcmp(method, MHD_HTTP_METHOD_POST)) {
		*status = MHD_HTTP_METHOD_NOT_ALLOWED;
		*reason = "use POST";
		return ROUTE_ERROR;
	}
	if (strcmp(url, "/v1/query") == 0)
		return ROUTE_QUERY;
	if (strcmp(url, "/v1/batch") == 0)
		return ROUTE_BATCH;
	return strcmp(url, "/v1/prepare") == 0 ? ROUTE_PREPARE : ROUTE_ACCEPT;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct cas_server *s = cls;
	struct request *r = *con_cls;

	(void)version;
	if (!r) {
		unsigned status = 0;
		const char *reason = NULL;
		enum route route = route_of(url, method, &status, &reason);
		size_t limit = route == ROUTE_BATCH ? CAS_SERVER_BATCH_LIMIT : s->body_limit;

		/* Answered at once, closing the connection: reading the
		 * body would be a waste. */
		if (route != ROUTE_ERROR && route != ROUTE_HEALTH && declared_too_big(conn, limit))
			return send_error(s, conn, method, url, MHD_HTTP_CONTENT_TOO_LARGE,
					  "request body too large");
		r = calloc(1, sizeof(*r));
		if (!r)
			return send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
					  "out of memory");
		r->route = route;
		r->binary = is_binary(conn);
		r->status = status;
		r->reason = reason;
		r->limit = limit;
		if (route == ROUTE_BATCH && !r->binary) {
			r->route = ROUTE_ERROR;
			r->status = MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
			r->reason = "a batch is " CAS_CODEC_BIN_TYPE " only";
		}
		*con_cls = r;
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!append_body(s, r, upload_data, *upload_data_size))
			return MHD_NO; /* out of memory or a flood: drop the connection */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->stored)
		return answer_stored(s, conn, method, url, r);
	if (r->batch)
		return answer_batch(s, conn, method, url, r);
	switch (r->route) {
	case ROUTE_HEALTH:
		return handle_health(s, conn, method, url);
	case ROUTE_ERROR:
		return send_error(s, conn, method, url, r->status, r->reason);
	case ROUTE_QUERY:
		return handle_query(s, conn, method, url, r);
	case ROUTE_BATCH:
		return handle_batch(s, conn, method, url, r);
	default:
		return handle_request(s, conn, method, url, r);
	}
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct request *r = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (!r)
		return;
	/* A request answered or never stored holds no values; one cut off
	 * after its answer was made has had them cleared. */
	cas_msg_clear(&r->req);
	cas_msg_clear(&r->op.reply);
	batch_free(r->batch);
	free(r->body);
	free(r);
	*con_cls = NULL;
}

/* Resolves host into addr (port set), for binding. */
static int resolve(const char *host, uint16_t port, struct sockaddr_storage *addr,
		   socklen_t *addr_len, char *errmsg, size_t errmsg_len)
{
	struct addrinfo hints, *res;
	int rc;

	memset(addr, 0, sizeof(*addr));
	if (!host) {
		struct sockaddr_in *in = (struct sockaddr_in *)addr;

		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_ANY);
		in->sin_port = htons(port);
		*addr_len = sizeof(*in);
		return CAS_OK;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc) {
		snprintf(errmsg, errmsg_len, "cannot resolve \"%s\": %s", host, gai_strerror(rc));
		return CAS_EINVAL;
	}
	memcpy(addr, res->ai_addr, res->ai_addrlen);
	*addr_len = res->ai_addrlen;
	freeaddrinfo(res);
	if (addr->ss_family == AF_INET6)
		((struct sockaddr_in6 *)addr)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)addr)->sin_port = htons(port);
	return CAS_OK;
}

int cas_server_start(struct cas_store *store, const struct cas_server_config *cfg,
		     struct cas_server **out, char *errmsg, size_t errmsg_len)
{
	struct sockaddr_storage addr;
	const union MHD_DaemonInfo *info;
	struct cas_server *s;
	socklen_t addr_len;
	unsigned threads, flags;
	size_t b64;
	int err;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(errmsg, errmsg_len, "out of memory");
		return CAS_ENOMEM;
	}
	if (pthread_mutex_init(&s->lock, NULL)) {
		snprintf(errmsg, errmsg_len, "cannot make a mutex");
		err = CAS_ENOMEM;
		goto out_free_server;
	}
	if (pthread_cond_init(&s->idle, NULL)) {
		snprintf(errmsg, errmsg_len, "cannot make a condition variable");
		err = CAS_ENOMEM;
		goto out_destroy_lock;
	}
	s->store = store;
	s->max_value = cfg->max_value ? cfg->max_value : CAS_DEFAULT_MAX_VALUE;
	s->log = cfg->log;
	s->log_arg = cfg->log_arg;
	s->log_level = cfg->log_level;
	b64 = s->max_value / 3 + 1;
	if (b64 > (SIZE_MAX - CAS_SERVER_BODY_OVERHEAD) / 4 / DRAIN_FACTOR) {
		snprintf(errmsg, errmsg_len, "max value size %zu too large", s->max_value);
		err = CAS_EINVAL;
		goto out_destroy_cond;
	}
	s->body_limit = 4 * b64 + CAS_SERVER_BODY_OVERHEAD;
	threads = cfg->threads ? cfg->threads : CAS_SERVER_DEFAULT_THREADS;
	err = resolve(cfg->host, cfg->port, &addr, &addr_len, errmsg, errmsg_len);
	if (err)
		goto out_destroy_cond;
	flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
		MHD_ALLOW_SUSPEND_RESUME;
	if (addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	errno = 0;
	s->daemon = MHD_start_daemon(
		flags, cfg->port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log,
		s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
		threads, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
	if (!s->daemon) {
		snprintf(errmsg, errmsg_len, "cannot listen on %s:%u: %s",
			 cfg->host ? cfg->host : "*", (unsigned)cfg->port,
			 errno ? strerror(errno) : "libmicrohttpd refused");
		err = CAS_EIO;
		goto out_destroy_cond;
	}
	info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
	if (!info || !info->port) {
		snprintf(errmsg, errmsg_len, "cannot learn the bound port");
		err = CAS_EIO;
		goto out_stop_daemon;
	}
	s->port = info->port;
	logf_(s, CAS_SERVER_LOG_INFO, "listening on port %u, %u threads, body limit %zu bytes",
	      (unsigned)s->port, threads, s->body_limit);
	*out = s;
	return CAS_OK;

out_stop_daemon:
	MHD_stop_daemon(s->daemon);
out_destroy_cond:
	pthread_cond_destroy(&s->idle);
out_destroy_lock:
	pthread_mutex_destroy(&s->lock);
out_free_server:
	free(s);
	return err;
}

uint16_t cas_server_port(const struct cas_server *s)
{
	return s->port;
}

size_t cas_server_body_limit(const struct cas_server *s)
{
	return s->body_limit;
}

void cas_server_stop(struct cas_server *s)
{
	if (!s)
		return;
	/* libmicrohttpd must not be stopped with suspended connections:
	 * wait for the store to answer those, and have any request that
	 * comes meanwhile wait on its thread instead. */
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	while (s->suspended)
		pthread_cond_wait(&s->idle, &s->lock);
	pthread_mutex_unlock(&s->lock);
	MHD_stop_daemon(s->daemon);
	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

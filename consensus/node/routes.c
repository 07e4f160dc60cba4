/* routes.c - casd's single-request routes: POST /v1/prepare, /v1/accept,
 * /v1/query and /v1/purge, GET /v1/health (PROTOCOL.md), and GET
 * /metrics. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "codec.h"
#include "codec_bin.h"
#include "http_impl.h"
#include "metrics.h"
#include "node.h"

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
	return cas_http_send_typed(conn, status, body, len,
				   r->binary ? CAS_CODEC_BIN_TYPE : "application/json", NULL);
}

/* Adds a decimal string field (PROTOCOL.md: 64-bit numbers travel so). */
static bool add_u64(cJSON *root, const char *name, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return cJSON_AddStringToObject(root, name, buf) != NULL;
}

/* Health's usage fields: bytes and capacity of the store (capacity: the
 * map's size, or what the disk still has room for when that is less), and
 * the log's use. Left out, without failing, when the store cannot say. */
static bool add_usage(struct cas_server *s, cJSON *root)
{
	struct cas_store_usage u;
	uint64_t capacity;
	char errmsg[128];

	if (cas_store_usage(s->store, &u, errmsg, sizeof(errmsg)) != CAS_OK)
		return true;
	capacity = u.map_size;
	if (u.disk_free != UINT64_MAX && u.disk_free < capacity - u.bytes)
		capacity = u.bytes + u.disk_free;
	return add_u64(root, "bytes", u.bytes) && add_u64(root, "capacity", capacity) &&
	       add_u64(root, "log_used", u.log_used) && add_u64(root, "log_size", u.log_size);
}

enum MHD_Result cas_http_health(struct cas_server *s, struct MHD_Connection *conn,
				const char *method, const char *url)
{
	char errmsg[256], keys[24], epoch[24], floor[24], reason[256];
	struct cas_identity_view id;
	const char *state;
	cJSON *root;
	char *body = NULL;
	bool writable, ok;
	unsigned status;
	uint64_t n;

	if (cas_store_count(s->store, &n, errmsg, sizeof(errmsg)))
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
					   errmsg);
	snprintf(keys, sizeof(keys), "%" PRIu64, n);
	snprintf(floor, sizeof(floor), "%" PRIu64, cas_store_floor(s->store));
	cas_identity_view(s->identity, &id);
	snprintf(epoch, sizeof(epoch), "%" PRIu64, id.epoch);
	/* A store that takes no changes answers queries still, but the node
	 * is not healthy: 503, and why (PROTOCOL.md). An uninitialized node
	 * votes on nothing: 503 too, but while clients send no identity
	 * (admit_unidentified, http.h). */
	writable = cas_store_writable(s->store, reason, sizeof(reason));
	if (!writable) {
		state = "degraded";
		status = MHD_HTTP_SERVICE_UNAVAILABLE;
	} else if (!id.initialized) {
		state = "uninitialized";
		status = s->unidentified ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
	} else {
		state = "ok";
		status = MHD_HTTP_OK;
	}
	root = cJSON_CreateObject();
	ok = root && cJSON_AddStringToObject(root, "status", state) &&
	     (writable || cJSON_AddStringToObject(root, "reason", reason)) &&
	     cJSON_AddStringToObject(root, "version", CAS_VERSION_STRING) &&
	     cJSON_AddStringToObject(root, "keys", keys);
	if (ok && id.initialized)
		ok = cJSON_AddStringToObject(root, "cluster", id.cluster) &&
		     cJSON_AddStringToObject(root, "node", id.node) &&
		     cJSON_AddStringToObject(root, "epoch", epoch);
	if (ok && (id.initialized || !writable))
		ok = add_usage(s, root) && cJSON_AddStringToObject(root, "floor", floor);
	if (ok)
		body = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!body)
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
					   "out of memory");
	cas_http_log(s, writable ? CAS_SERVER_LOG_DEBUG : CAS_SERVER_LOG_WARN, "%s %s %u %s%s%s",
		     method, url, status, state, writable ? "" : ": ", writable ? "" : reason);
	return cas_http_send_json(conn, status, body, strlen(body), NULL);
}

enum MHD_Result cas_http_metrics(struct cas_server *s, struct MHD_Connection *conn,
				 const char *method, const char *url)
{
	struct cas_metrics_gauges g = {.version = CAS_VERSION_STRING};
	struct cas_store_usage usage;
	char errmsg[256], *body;
	size_t len;

	if (cas_store_count(s->store, &g.keys, errmsg, sizeof(errmsg)) ||
	    cas_store_usage(s->store, &usage, errmsg, sizeof(errmsg)))
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
					   errmsg);
	g.bytes = usage.bytes;
	g.log_used = usage.log_used;
	g.floor = cas_store_floor(s->store);
	if (cas_metrics_write(&g, &body, &len))
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
					   "out of memory");
	cas_http_log(s, CAS_SERVER_LOG_DEBUG, "%s %s 200", method, url);
	return cas_http_send_typed(conn, MHD_HTTP_OK, body, len,
				   "text/plain; version=0.0.4; charset=utf-8", NULL);
}

/* Answers a request the store ran: its reply, or a 500 saying what failed
 * (nothing was promised or accepted then). */
enum MHD_Result cas_http_answer_stored(struct cas_server *s, struct MHD_Connection *conn,
				       const char *method, const char *url, struct request *r)
{
	struct cas_msg *reply = &r->op.reply;
	enum MHD_Result ret;
	unsigned status;
	char *body;
	size_t len;
	int err;

	if (r->op.err) {
		ret = cas_http_send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
					  r->op.errmsg[0] ? r->op.errmsg : cas_strerror(r->op.err));
		goto out_clear;
	}
	err = encode_reply(r, reply, &body, &len);
	status = reply->type == CAS_MSG_REJECT ? MHD_HTTP_CONFLICT : MHD_HTTP_OK;
	cas_http_log(s, CAS_SERVER_LOG_DEBUG,
		     "%s %s key=%s ballot=%" PRIu64 ".%" PRIu64 " %u (ballot %" PRIu64 ".%" PRIu64
		     ")",
		     method, url, r->req.key, r->req.ballot.counter, r->req.ballot.id, status,
		     reply->ballot.counter, reply->ballot.id);
	if (err)
		/* Already durable; the proposer will see a failure and retry
		 * with a higher ballot, which is safe. */
		ret = cas_http_send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
					  cas_strerror(err));
	else
		ret = send_reply(r, conn, status, body, len);

out_clear:
	cas_msg_clear(reply);
	cas_msg_clear(&r->req);
	return ret;
}

/* Runs on the store's writer once r's outcome is durable (or failed):
 * lets libmicrohttpd call on_request again, which answers. */
static void on_stored(struct cas_store_op *op)
{
	struct request *r = op->arg;
	struct cas_server *s = r->server;

	/* r may be answered and freed from here on. */
	cas_http_end_wait(s, r->conn);
}

/* Answers a query from a read transaction of committed (so durable)
 * state, without the writer: a query changes nothing (cas_node_query). */
enum MHD_Result cas_http_query(struct cas_server *s, struct MHD_Connection *conn,
			       const char *method, const char *url, struct request *r)
{
	struct cas_msg reply;
	enum MHD_Result ret;
	char errmsg[256];
	char *body;
	size_t len;
	int err;

	if (r->too_big)
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_CONTENT_TOO_LARGE,
					   "request body too large");
	err = decode_body(s, r, CAS_MSG_QUERY, errmsg, sizeof(errmsg));
	if (err == CAS_ENOMEM)
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
					   errmsg);
	if (err)
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_BAD_REQUEST, errmsg);
	err = cas_node_query(s->store, &r->req, &reply, errmsg, sizeof(errmsg));
	if (err)
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
					   errmsg);
	err = encode_reply(r, &reply, &body, &len);
	cas_msg_clear(&reply);
	if (err)
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
					   cas_strerror(err));
	cas_http_log(s, CAS_SERVER_LOG_DEBUG, "%s %s key=%s 200", method, url, r->req.key);
	ret = send_reply(r, conn, MHD_HTTP_OK, body, len);
	return ret;
}

/* Decodes the full body and hands it to the store: runs it at once when
 * the store is idle, or else the connection waits, suspended, for the
 * batch its request is in to be committed, so that a thread serves other
 * connections meanwhile; once stopping, the thread waits instead. */
enum MHD_Result cas_http_request(struct cas_server *s, struct MHD_Connection *conn,
				 const char *method, const char *url, struct request *r)
{
	enum cas_msg_type type = r->route == ROUTE_PREPARE ? CAS_MSG_PREPARE
				 : r->route == ROUTE_PURGE ? CAS_MSG_PURGE
							   : CAS_MSG_ACCEPT;
	char errmsg[256];
	int err;

	if (r->too_big)
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_CONTENT_TOO_LARGE,
					   "request body too large");
	err = decode_body(s, r, type, errmsg, sizeof(errmsg));
	if (err == CAS_ETOOBIG)
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_CONTENT_TOO_LARGE,
					   errmsg);
	if (err == CAS_ENOMEM)
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
					   errmsg);
	if (err)
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_BAD_REQUEST, errmsg);
	free(r->body); /* not needed any more while the request waits */
	r->body = NULL;
	r->len = r->cap = 0;

	r->stored = true;
	r->op.req = &r->req;
	/* An idle store runs it here and now: no hand-over to its writer
	 * and back, which is most of the cost of a lone request. */
	if (cas_store_run_if_idle(s->store, &r->op))
		return cas_http_answer_stored(s, conn, method, url, r);
	if (!cas_http_begin_wait(s, conn)) {
		r->op.err = cas_store_handle(s->store, &r->req, &r->op.reply, r->op.errmsg,
					     sizeof(r->op.errmsg));
		return cas_http_answer_stored(s, conn, method, url, r);
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

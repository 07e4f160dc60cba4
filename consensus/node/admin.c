/* admin.c - casd's identity and membership over HTTP (PROTOCOL.md,
 * "Cluster identity and membership"): the admission of every request that
 * carries the identity headers, GET /v1/config, POST /v1/admin/join, POST
 * /v1/admin/config and GET /v1/keys. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "codec.h"
#include "config.h"
#include "http_impl.h"
#include "metrics.h"

/* GET /v1/keys: the default and largest page. */
#define KEYS_DEFAULT 1000
#define KEYS_MAX     10000

#define HTTP_MISDIRECTED 421

static const char *const admit_names[] = {
	[CAS_ADMIT_OK] = "admitted",
	[CAS_ADMIT_UNINITIALIZED] = "uninitialized",
	[CAS_ADMIT_BAD_HEADERS] = "bad identity headers",
	[CAS_ADMIT_OTHER_CLUSTER] = "other cluster",
	[CAS_ADMIT_STALE] = "stale configuration",
	[CAS_ADMIT_BEHIND] = "node is behind",
};

/* Logs a refusal at warn level with the peer, rate-limited by kind: a
 * peer that keeps sending the wrong cluster must not flood the log. */
static void log_refusal(struct cas_server *s, struct MHD_Connection *conn, const char *method,
			const char *url, enum cas_admit verdict, unsigned status,
			const char *reason)
{
	char peer[CAS_PEER_LEN];

	cas_metrics_refused(CAS_METRICS_IDENTITY);
	if (s->log_level < CAS_SERVER_LOG_WARN)
		return;
	cas_http_peer(conn, peer, sizeof(peer));
	cas_http_log_limited(s, (enum cas_log_kind)(CAS_LOG_ADMIT + verdict), CAS_SERVER_LOG_WARN,
			     "%s %.64s from %s %u (%s): %s", method, url, peer, status,
			     admit_names[verdict], reason);
}

/* Counts the identity headers, to refuse one sent twice. */
struct header_count {
	unsigned cluster, epoch;
};

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
				    const char *value)
{
	struct header_count *c = cls;

	(void)kind;
	(void)value;
	if (strcasecmp(key, "Cas-Cluster") == 0)
		c->cluster++;
	else if (strcasecmp(key, "Cas-Epoch") == 0)
		c->epoch++;
	return MHD_YES;
}

/* Queues body (malloc'd; NULL: out of memory) as a JSON answer. */
static enum MHD_Result send_body(struct cas_server *s, struct MHD_Connection *conn,
				 const char *method, const char *url, unsigned status, char *body)
{
	if (!body)
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
					   "out of memory");
	return cas_http_send_json(conn, status, body, strlen(body), NULL);
}

bool cas_http_admit(struct cas_server *s, struct MHD_Connection *conn, const char *method,
		    const char *url, enum MHD_Result *ret)
{
	struct header_count count = {0, 0};
	struct cas_identity_view view;
	const char *cluster, *epoch;
	enum cas_admit verdict;
	char errmsg[128], e[24];
	cJSON *root;
	char *body = NULL;
	unsigned status;
	bool ok;

	cluster = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Cas-Cluster");
	epoch = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Cas-Epoch");
	MHD_get_connection_values(conn, MHD_HEADER_KIND, count_header, &count);
	if (count.cluster > 1 || count.epoch > 1) {
		/* Which one would count is anyone's guess: neither. */
		cluster = count.cluster > 1 ? "twice" : cluster;
		epoch = count.epoch > 1 ? "twice" : epoch;
	}
	verdict = cas_identity_enter(s->identity, cluster, epoch, s->unidentified, &view, errmsg,
				     sizeof(errmsg));
	if (verdict == CAS_ADMIT_OK)
		return true;
	if (verdict == CAS_ADMIT_BAD_HEADERS && (count.cluster > 1 || count.epoch > 1))
		snprintf(errmsg, sizeof(errmsg), "header %s sent twice",
			 count.cluster > 1 ? "Cas-Cluster" : "Cas-Epoch");
	snprintf(e, sizeof(e), "%" PRIu64, view.epoch);
	root = cJSON_CreateObject();
	ok = root && cJSON_AddStringToObject(root, "error", errmsg);
	switch (verdict) {
	case CAS_ADMIT_UNINITIALIZED:
		status = MHD_HTTP_SERVICE_UNAVAILABLE;
		ok = ok && cJSON_AddStringToObject(root, "status", "uninitialized");
		break;
	case CAS_ADMIT_OTHER_CLUSTER:
		status = HTTP_MISDIRECTED;
		ok = ok && cJSON_AddStringToObject(root, "cluster", view.cluster);
		break;
	case CAS_ADMIT_STALE:
	case CAS_ADMIT_BEHIND:
		status = MHD_HTTP_CONFLICT;
		ok = ok && cJSON_AddStringToObject(root, "epoch", e);
		break;
	default:
		status = MHD_HTTP_BAD_REQUEST;
		break;
	}
	if (ok)
		body = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	log_refusal(s, conn, method, url, verdict, status, errmsg);
	*ret = send_body(s, conn, method, url, status, body);
	return false;
}

/* The node's configuration in the form of GET /v1/config, with "error"
 * first when error is not NULL; NULL when the node is not initialized
 * (*initialized false) or without memory. */
static char *config_view(struct cas_server *s, const char *error, bool *initialized)
{
	char node[CAS_NODE_HEX + 1];
	struct cas_config *cfg;
	cJSON *root = NULL;
	char *body = NULL;

	*initialized = true;
	cfg = malloc(sizeof(*cfg));
	if (!cfg)
		return NULL;
	if (!cas_identity_config(s->identity, node, cfg)) {
		*initialized = false;
		goto out_free;
	}
	root = cJSON_CreateObject();
	if (!root || (error && !cJSON_AddStringToObject(root, "error", error)) ||
	    cas_config_add_json(cfg, root) || !cJSON_AddStringToObject(root, "node", node))
		goto out_free;
	body = cJSON_PrintUnformatted(root);

out_free:
	cJSON_Delete(root);
	free(cfg);
	return body;
}

/* 503 {"error": "node is not initialized", "status": "uninitialized"}. */
static enum MHD_Result send_uninitialized(struct cas_server *s, struct MHD_Connection *conn,
					  const char *method, const char *url)
{
	static const char text[] =
		"{\"error\":\"node is not initialized\",\"status\":\"uninitialized\"}";

	cas_http_log(s, CAS_SERVER_LOG_DEBUG, "%s %s 503: node is not initialized", method, url);
	return send_body(s, conn, method, url, MHD_HTTP_SERVICE_UNAVAILABLE, strdup(text));
}

/* Answers with the node's configuration: status, and error (NULL for a
 * 200). */
static enum MHD_Result send_config(struct cas_server *s, struct MHD_Connection *conn,
				   const char *method, const char *url, unsigned status,
				   const char *error)
{
	bool initialized;
	char *body;

	body = config_view(s, error, &initialized);
	if (!initialized)
		return send_uninitialized(s, conn, method, url);
	if (error) {
		char peer[CAS_PEER_LEN];

		cas_http_peer(conn, peer, sizeof(peer));
		cas_http_log_limited(s, CAS_LOG_OTHER, CAS_SERVER_LOG_WARN, "%s %s from %s %u: %s",
				     method, url, peer, status, error);
	} else {
		cas_http_log(s, CAS_SERVER_LOG_DEBUG, "%s %s %u", method, url, status);
	}
	return send_body(s, conn, method, url, status, body);
}

enum MHD_Result cas_http_config(struct cas_server *s, struct MHD_Connection *conn,
				const char *method, const char *url)
{
	return send_config(s, conn, method, url, MHD_HTTP_OK, NULL);
}

/* Logs a change the node took, for the operator. */
static void log_taken(struct cas_server *s, const char *what)
{
	struct cas_identity_view v;

	cas_identity_view(s->identity, &v);
	cas_http_log(s, CAS_SERVER_LOG_INFO, "%s: node %s of cluster %s, epoch %" PRIu64 "%s", what,
		     v.node, v.cluster, v.epoch, v.member ? "" : " (removed: not in it)");
}

/* The answer to a join or a change: err as cas_identity_join or _update
 * returned it. */
static enum MHD_Result answer_change(struct cas_server *s, struct MHD_Connection *conn,
				     const char *method, const char *url, int err, bool changed,
				     const char *errmsg)
{
	switch (err) {
	case CAS_OK:
		if (changed)
			log_taken(s,
				  strcmp(url, "/v1/admin/join") ? "configuration taken" : "joined");
		return send_config(s, conn, method, url, MHD_HTTP_OK, NULL);
	case CAS_ECONFLICT:
		return send_config(s, conn, method, url, MHD_HTTP_CONFLICT, errmsg);
	case CAS_EUNAVAILABLE:
		return send_uninitialized(s, conn, method, url);
	case CAS_EINVAL:
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_BAD_REQUEST, errmsg);
	default:
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
					   errmsg);
	}
}

enum MHD_Result cas_http_join(struct cas_server *s, struct MHD_Connection *conn, const char *method,
			      const char *url, struct request *r)
{
	char node[CAS_NODE_HEX + 1], errmsg[256];
	struct cas_config *cfg;
	enum MHD_Result ret;
	bool changed = false;
	int err;

	if (r->too_big)
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_CONTENT_TOO_LARGE,
					   "request body too large");
	cfg = malloc(sizeof(*cfg));
	if (!cfg)
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
					   "out of memory");
	err = cas_join_parse(r->body, r->len, node, cfg, errmsg, sizeof(errmsg));
	if (err) {
		ret = cas_http_send_error(s, conn, method, url, MHD_HTTP_BAD_REQUEST, errmsg);
	} else {
		err = cas_identity_join(s->identity, node, cfg, &changed, errmsg, sizeof(errmsg));
		ret = answer_change(s, conn, method, url, err, changed, errmsg);
	}
	free(cfg);
	return ret;
}

/* Reads {"config": C} into *cfg. */
static int parse_config_body(const char *body, size_t len, struct cas_config *cfg, char *errmsg,
			     size_t errmsg_len)
{
	static const char *const names[] = {"config"};
	const cJSON *items[1];
	cJSON *root;
	int err;

	err = cas_json_parse_object(body, len, &root, errmsg, errmsg_len);
	if (err)
		return err;
	err = cas_json_fields(root, "body", names, 1, 1, items, errmsg, errmsg_len);
	if (!err)
		err = cas_config_from_json(items[0], cfg, errmsg, errmsg_len);
	cJSON_Delete(root);
	return err;
}

enum MHD_Result cas_http_admin_config(struct cas_server *s, struct MHD_Connection *conn,
				      const char *method, const char *url, struct request *r)
{
	struct cas_config *cfg;
	enum MHD_Result ret;
	bool changed = false;
	char errmsg[256];
	int err;

	if (r->too_big)
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_CONTENT_TOO_LARGE,
					   "request body too large");
	cfg = malloc(sizeof(*cfg));
	if (!cfg)
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_INTERNAL_SERVER_ERROR,
					   "out of memory");
	err = parse_config_body(r->body, r->len, cfg, errmsg, sizeof(errmsg));
	if (err) {
		ret = cas_http_send_error(s, conn, method, url, MHD_HTTP_BAD_REQUEST, errmsg);
	} else {
		err = cas_identity_update(s->identity, cfg, &changed, errmsg, sizeof(errmsg));
		ret = answer_change(s, conn, method, url, err, changed, errmsg);
	}
	free(cfg);
	return ret;
}

/* The query of GET /v1/keys, as read. */
struct keys_args {
	const char *after;
	const char *limit;
	const char *bad; /* an unknown, repeated or valueless argument */
};

static enum MHD_Result take_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				const char *value)
{
	struct keys_args *a = cls;
	const char **slot = NULL;

	(void)kind;
	if (strcmp(key, "after") == 0)
		slot = &a->after;
	else if (strcmp(key, "limit") == 0)
		slot = &a->limit;
	if (!slot || *slot || !value) {
		a->bad = key;
		return MHD_NO;
	}
	*slot = value;
	return MHD_YES;
}

/* {"keys": [...], "more": true|false}. */
static char *keys_body(char **keys, size_t n, bool more)
{
	cJSON *root, *arr, *k;
	char *body = NULL;
	size_t i;

	root = cJSON_CreateObject();
	arr = root ? cJSON_AddArrayToObject(root, "keys") : NULL;
	if (!arr)
		goto out_delete;
	for (i = 0; i < n; i++) {
		k = cJSON_CreateString(keys[i]);
		if (!k)
			goto out_delete;
		if (!cJSON_AddItemToArray(arr, k)) {
			cJSON_Delete(k);
			goto out_delete;
		}
	}
	if (cJSON_AddBoolToObject(root, "more", more))
		body = cJSON_PrintUnformatted(root);

out_delete:
	cJSON_Delete(root);
	return body;
}

enum MHD_Result cas_http_keys(struct cas_server *s, struct MHD_Connection *conn, const char *method,
			      const char *url)
{
	struct keys_args a = {NULL, NULL, NULL};
	uint64_t limit = KEYS_DEFAULT;
	char errmsg[256], **keys, *body;
	size_t n;
	bool more;
	int err;

	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, take_arg, &a);
	if (a.bad) {
		snprintf(errmsg, sizeof(errmsg),
			 "query argument \"%.32s\": only after=KEY and limit=N, each once", a.bad);
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_BAD_REQUEST, errmsg);
	}
	if (a.limit && (!cas_codec_u64_parse(a.limit, &limit) || limit < 1 || limit > KEYS_MAX)) {
		snprintf(errmsg, sizeof(errmsg), "limit: not a decimal from 1 to %d", KEYS_MAX);
		return cas_http_send_error(s, conn, method, url, MHD_HTTP_BAD_REQUEST, errmsg);
	}
	if (a.after && !cas_key_valid(a.after, strnlen(a.after, CAS_KEY_MAX + 1)))
		return cas_http_send_error(
			s, conn, method, url, MHD_HTTP_BAD_REQUEST,
			"after: not a key (1 to 250 of A-Z a-z 0-9 . _ : / @ -)");
	err = cas_store_keys(s->store, a.after, (size_t)limit, &keys, &n, &more, errmsg,
			     sizeof(errmsg));
	if (err)
		return cas_http_send_error(s, conn, method, url,
					   err == CAS_EKEY ? MHD_HTTP_BAD_REQUEST
							   : MHD_HTTP_INTERNAL_SERVER_ERROR,
					   errmsg);
	body = keys_body(keys, n, more);
	cas_store_keys_free(keys, n);
	cas_http_log(s, CAS_SERVER_LOG_DEBUG, "%s %s after=%s limit=%" PRIu64 " 200: %zu keys%s",
		     method, url, a.after ? a.after : "", limit, n, more ? ", more" : "");
	return send_body(s, conn, method, url, MHD_HTTP_OK, body);
}

/* admin.c - one-shot requests to one node's admin endpoints (cas/admin.h):
 * GET /v1/config, POST /v1/admin/join and /v1/admin/config, GET /v1/keys,
 * each on a libcurl easy handle of its own. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "config.h"
#include "errmsg.h"
#include "transport.h"

/* Largest answer taken from an admin endpoint. */
#define ADMIN_REPLY_MAX (8u << 20)

struct reply {
	char *body;
	size_t len, cap;
	bool overflow;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct reply *r = userdata;
	size_t n = size * nmemb;

	if (n > ADMIN_REPLY_MAX - r->len) {
		r->overflow = true;
		return 0;
	}
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 1024;
		char *p;

		while (cap < r->len + n + 1)
			cap *= 2;
		p = realloc(r->body, cap);
		if (p == NULL)
			return 0;
		r->body = p;
		r->cap = cap;
	}
	memcpy(r->body + r->len, ptr, n);
	r->len += n;
	r->body[r->len] = '\0';
	return n;
}

/* Asks base + path (post: the JSON body of a POST, or NULL for a GET),
 * with the identity of cfg when it is not NULL. CAS_OK when an HTTP answer
 * came: *status and *r (r->body malloc'd, NUL-terminated, may be NULL when
 * empty; the caller frees it). CAS_EUNAVAILABLE without one. */
static int http_ask(const char *base, const char *path, const char *post,
		    const struct cas_cluster_config *cfg, unsigned timeout_ms, long *status,
		    struct reply *r, char *errmsg, size_t errmsg_len)
{
	char errbuf[CURL_ERROR_SIZE] = "", *url, hdr[64];
	struct curl_slist *h = NULL, *h2;
	CURL *easy;
	CURLcode cc;
	int rc = CAS_OK;

	memset(r, 0, sizeof(*r));
	*status = 0;
	if (cas_transport_global_init(errmsg, errmsg_len) != CAS_OK)
		return CAS_EIO;
	url = malloc(strlen(base) + strlen(path) + 1);
	if (url == NULL)
		return CAS_ENOMEM;
	strcpy(url, base);
	strcat(url, path);
	easy = curl_easy_init();
	if (easy == NULL) {
		free(url);
		return CAS_ENOMEM;
	}
	h = curl_slist_append(NULL, "Expect:");
	if (h != NULL && post != NULL) {
		h2 = curl_slist_append(h, "Content-Type: application/json");
		h = h2 ? h2 : (curl_slist_free_all(h), NULL);
	}
	if (h != NULL && cfg != NULL) {
		snprintf(hdr, sizeof(hdr), "Cas-Cluster: %s", cfg->cluster);
		h2 = curl_slist_append(h, hdr);
		h = h2 ? h2 : (curl_slist_free_all(h), NULL);
		if (h != NULL) {
			snprintf(hdr, sizeof(hdr), "Cas-Epoch: %" PRIu64, cfg->epoch);
			h2 = curl_slist_append(h, hdr);
			h = h2 ? h2 : (curl_slist_free_all(h), NULL);
		}
	}
	if (h == NULL) {
		rc = CAS_ENOMEM;
		goto out_cleanup;
	}
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
	if (post != NULL) {
		curl_easy_setopt(easy, CURLOPT_POSTFIELDS, post);
		curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(post));
	} else {
		curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_PROXY, "");
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)(timeout_ms ? timeout_ms : 1));
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms ? timeout_ms : 1));
	cc = curl_easy_perform(easy);
	if (cc != CURLE_OK) {
		cas_errmsg_set(errmsg, errmsg_len, "%s: %s", base,
			       r->overflow ? "answer too large"
					   : (errbuf[0] ? errbuf : curl_easy_strerror(cc)));
		rc = r->overflow ? CAS_EPROTO : CAS_EUNAVAILABLE;
		free(r->body);
		memset(r, 0, sizeof(*r));
		goto out_cleanup;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, status);
out_cleanup:
	curl_slist_free_all(h);
	curl_easy_cleanup(easy);
	free(url);
	return rc;
}

/* The "error" of a JSON error body, or the body's start. */
static void body_reason(const struct reply *r, char *out, size_t len)
{
	cJSON *root = r->body ? cJSON_ParseWithLength(r->body, r->len) : NULL;
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");

	if (cJSON_IsString(e))
		cas_errmsg_set(out, len, "%s", e->valuestring);
	else
		cas_errmsg_set(out, len, "%.120s", r->body ? r->body : "");
	cJSON_Delete(root);
}

int cas_admin_get_config(const char *url, unsigned timeout_ms, enum cas_node_state *state,
			 struct cas_cluster_config *cfg, uint64_t *node_id, char *errmsg,
			 size_t errmsg_len)
{
	char why[200];
	struct reply r;
	long status;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if (node_id != NULL)
		*node_id = 0;
	*state = CAS_NODE_DOWN;
	rc = http_ask(url, "/v1/config", NULL, NULL, timeout_ms, &status, &r, errmsg, errmsg_len);
	if (rc == CAS_EUNAVAILABLE)
		return CAS_OK;
	if (rc != CAS_OK)
		return rc;
	if (status == 200) {
		rc = cas_cluster_config_parse(r.body ? r.body : "", r.len, cfg, node_id, why,
					      sizeof(why));
		if (rc == CAS_ENOMEM)
			goto out_free;
		if (rc != CAS_OK) {
			*state = CAS_NODE_BAD;
			cas_errmsg_set(errmsg, errmsg_len, "%s: %s", url, why);
			rc = CAS_OK;
			goto out_free;
		}
		*state = CAS_NODE_READY;
	} else if (status == 503) {
		*state = CAS_NODE_UNINITIALIZED;
		cas_errmsg_set(errmsg, errmsg_len, "node %s is not initialized", url);
	} else {
		*state = CAS_NODE_BAD;
		body_reason(&r, why, sizeof(why));
		cas_errmsg_set(errmsg, errmsg_len, "%s: HTTP %ld from /v1/config: %s", url, status,
			       why);
	}
out_free:
	free(r.body);
	return rc;
}

/* The outcome of an admin POST: 200 is CAS_OK, 409 CAS_EVERSION. */
static int admin_post(const char *url, const char *path, const char *body, unsigned timeout_ms,
		      char *errmsg, size_t errmsg_len)
{
	char why[200];
	struct reply r;
	long status;
	int rc;

	rc = http_ask(url, path, body, NULL, timeout_ms, &status, &r, errmsg, errmsg_len);
	if (rc != CAS_OK)
		return rc;
	if (status != 200) {
		body_reason(&r, why, sizeof(why));
		cas_errmsg_set(errmsg, errmsg_len, "%s: HTTP %ld from %s: %s", url, status, path,
			       why);
		rc = status == 409 ? CAS_EVERSION : CAS_EPROTO;
	}
	free(r.body);
	return rc;
}

/* {"node": ..., "config": ...} or {"config": ...} (node 0). */
static int admin_body(uint64_t node_id, const struct cas_cluster_config *cfg, char **out)
{
	char *json, hex[CAS_NODE_HEX + 1];
	size_t len;
	int rc;

	rc = cas_cluster_config_to_json(cfg, &json);
	if (rc != CAS_OK)
		return rc;
	len = strlen(json) + 64;
	*out = malloc(len);
	if (*out == NULL) {
		free(json);
		return CAS_ENOMEM;
	}
	cas_node_hex(node_id, hex);
	if (node_id != 0)
		snprintf(*out, len, "{\"node\":\"%s\",\"config\":%s}", hex, json);
	else
		snprintf(*out, len, "{\"config\":%s}", json);
	free(json);
	return CAS_OK;
}

int cas_admin_join(const char *url, uint64_t node_id, const struct cas_cluster_config *cfg,
		   unsigned timeout_ms, char *errmsg, size_t errmsg_len)
{
	char *body;
	int rc;

	if (node_id == 0 || !cas_cluster_config_has(cfg, node_id)) {
		cas_errmsg_set(errmsg, errmsg_len, "node id not in the configuration");
		return CAS_EINVAL;
	}
	rc = admin_body(node_id, cfg, &body);
	if (rc != CAS_OK)
		return rc;
	rc = admin_post(url, "/v1/admin/join", body, timeout_ms, errmsg, errmsg_len);
	free(body);
	return rc;
}

int cas_admin_set_config(const char *url, const struct cas_cluster_config *cfg, unsigned timeout_ms,
			 char *errmsg, size_t errmsg_len)
{
	char *body;
	int rc;

	rc = admin_body(0, cfg, &body);
	if (rc != CAS_OK)
		return rc;
	rc = admin_post(url, "/v1/admin/config", body, timeout_ms, errmsg, errmsg_len);
	free(body);
	return rc;
}

void cas_keys_free(char **keys, size_t n)
{
	if (keys == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}

int cas_admin_keys(const char *url, const struct cas_cluster_config *cfg, const char *after,
		   unsigned limit, unsigned timeout_ms, char ***keys, size_t *n, bool *more,
		   char *errmsg, size_t errmsg_len)
{
	char path[64 + CAS_KEY_MAX], why[200];
	const cJSON *arr, *m, *k;
	struct reply r;
	cJSON *root;
	size_t i = 0, count;
	long status;
	int rc;

	*keys = NULL;
	*n = 0;
	*more = false;
	if (after != NULL && !cas_key_valid(after, strlen(after))) {
		cas_errmsg_set(errmsg, errmsg_len, "bad key to list after");
		return CAS_EKEY;
	}
	/* Key characters need no escaping in a query. */
	snprintf(path, sizeof(path), "/v1/keys?limit=%u%s%s", limit, after ? "&after=" : "",
		 after ? after : "");
	rc = http_ask(url, path, NULL, cfg, timeout_ms, &status, &r, errmsg, errmsg_len);
	if (rc != CAS_OK)
		return rc;
	if (status != 200) {
		body_reason(&r, why, sizeof(why));
		cas_errmsg_set(errmsg, errmsg_len, "%s: HTTP %ld from /v1/keys: %s", url, status,
			       why);
		free(r.body);
		return CAS_EPROTO;
	}
	root = cJSON_ParseWithLength(r.body ? r.body : "", r.len);
	free(r.body);
	arr = cJSON_GetObjectItemCaseSensitive(root, "keys");
	m = cJSON_GetObjectItemCaseSensitive(root, "more");
	if (!cJSON_IsArray(arr) || !cJSON_IsBool(m)) {
		cas_errmsg_set(errmsg, errmsg_len, "%s: a malformed /v1/keys answer", url);
		rc = CAS_EPROTO;
		goto out_free;
	}
	count = (size_t)cJSON_GetArraySize(arr);
	*keys = calloc(count ? count : 1, sizeof(**keys));
	if (*keys == NULL) {
		rc = CAS_ENOMEM;
		goto out_free;
	}
	cJSON_ArrayForEach(k, arr)
	{
		if (!cJSON_IsString(k) || !cas_key_valid(k->valuestring, strlen(k->valuestring))) {
			cas_errmsg_set(errmsg, errmsg_len, "%s: a bad key from /v1/keys", url);
			rc = CAS_EPROTO;
			goto out_free_keys;
		}
		(*keys)[i] = strdup(k->valuestring);
		if ((*keys)[i++] == NULL) {
			rc = CAS_ENOMEM;
			goto out_free_keys;
		}
	}
	*n = count;
	*more = cJSON_IsTrue(m);
	cJSON_Delete(root);
	return CAS_OK;
out_free_keys:
	cas_keys_free(*keys, i);
	*keys = NULL;
out_free:
	cJSON_Delete(root);
	return rc;
}

/* admin.c - one-shot requests to one node's admin endpoints (cas/admin.h):
 * GET /v1/config, POST /v1/admin/join and /v1/admin/config, GET /v1/keys
 * and /v1/health, each on a libcurl easy handle of its own. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include <cas/os.h>

#include "auth.h"
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
 * with auth's TLS settings and token, and the identity of cfg when it is
 * not NULL. CAS_OK when an HTTP answer
 * came: *status and *r (r->body malloc'd, NUL-terminated, may be NULL when
 * empty; the caller frees it). CAS_EUNAVAILABLE without one. */
static int http_ask(const char *base, const struct cas_auth *auth, const char *path,
		    const char *post, const struct cas_cluster_config *cfg, unsigned timeout_ms,
		    long *status, struct reply *r, char *errmsg, size_t errmsg_len)
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
	if (h != NULL && cas_auth_header(auth) != NULL) {
		h2 = curl_slist_append(h, cas_auth_header(auth));
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
	cas_auth_apply(auth, easy);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)(timeout_ms ? timeout_ms : 1));
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms ? timeout_ms : 1));
	cc = curl_easy_perform(easy);
	if (cc != CURLE_OK) {
		/* libcurl's first word wins its error buffer: a connection the
		 * node closed at once (a refused handshake) may leave only
		 * "getpeername() failed" there; the code says more. */
		if (strncmp(errbuf, "getpeername", 11) == 0)
			errbuf[0] = '\0';
		cas_errmsg_set(errmsg, errmsg_len, "%s: %s%s", base,
			       r->overflow ? "answer too large"
					   : (errbuf[0] ? errbuf : curl_easy_strerror(cc)),
			       r->overflow ? "" : cas_auth_hint(auth, base, cc));
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

int cas_admin_get_config(const char *url, const struct cas_auth *auth, unsigned timeout_ms,
			 enum cas_node_state *state, struct cas_cluster_config *cfg,
			 uint64_t *node_id, char *errmsg, size_t errmsg_len)
{
	char why[200];
	struct reply r;
	long status;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if (node_id != NULL)
		*node_id = 0;
	*state = CAS_NODE_DOWN;
	rc = http_ask(url, auth, "/v1/config", NULL, NULL, timeout_ms, &status, &r, errmsg,
		      errmsg_len);
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
static int admin_post(const char *url, const struct cas_auth *auth, const char *path,
		      const char *body, unsigned timeout_ms, char *errmsg, size_t errmsg_len)
{
	char why[200];
	struct reply r;
	long status;
	int rc;

	rc = http_ask(url, auth, path, body, NULL, timeout_ms, &status, &r, errmsg, errmsg_len);
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

int cas_admin_join(const char *url, const struct cas_auth *auth, uint64_t node_id,
		   const struct cas_cluster_config *cfg, unsigned timeout_ms, char *errmsg,
		   size_t errmsg_len)
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
	rc = admin_post(url, auth, "/v1/admin/join", body, timeout_ms, errmsg, errmsg_len);
	free(body);
	return rc;
}

int cas_admin_set_config(const char *url, const struct cas_auth *auth,
			 const struct cas_cluster_config *cfg, unsigned timeout_ms, char *errmsg,
			 size_t errmsg_len)
{
	char *body;
	int rc;

	rc = admin_body(0, cfg, &body);
	if (rc != CAS_OK)
		return rc;
	rc = admin_post(url, auth, "/v1/admin/config", body, timeout_ms, errmsg, errmsg_len);
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

int cas_keys_append(char ***all, size_t *n_all, char **got, size_t n_got)
{
	char **p = realloc(*all, (*n_all + n_got + 1) * sizeof(**all));

	if (p == NULL) {
		cas_keys_free(got, n_got);
		return CAS_ENOMEM;
	}
	*all = p;
	if (n_got > 0)
		memcpy(p + *n_all, got, n_got * sizeof(*got));
	*n_all += n_got;
	free(got);
	return CAS_OK;
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

size_t cas_keys_sort_unique(char **keys, size_t n)
{
	size_t kept = 0;

	if (n > 0)
		qsort(keys, n, sizeof(*keys), cmp_keys);
	for (size_t i = 0; i < n; i++) {
		if (kept > 0 && strcmp(keys[kept - 1], keys[i]) == 0)
			free(keys[i]);
		else
			keys[kept++] = keys[i];
	}
	return kept;
}

int cas_admin_keys(const char *url, const struct cas_auth *auth,
		   const struct cas_cluster_config *cfg, const char *after, unsigned limit,
		   unsigned timeout_ms, char ***keys, size_t *n, bool *more, char *errmsg,
		   size_t errmsg_len)
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
	rc = http_ask(url, auth, path, NULL, cfg, timeout_ms, &status, &r, errmsg, errmsg_len);
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

/* Copies the string field name of root into out (len bytes); false when
 * it is there and not a string. */
static bool health_str(const cJSON *root, const char *name, char *out, size_t len)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, name);

	if (f == NULL)
		return true;
	if (!cJSON_IsString(f))
		return false;
	cas_errmsg_set(out, len, "%s", f->valuestring);
	return true;
}

/* The decimal string field name of root into *out; *seen says whether it
 * was there. False when it is there and not a canonical decimal. */
static bool health_u64(const cJSON *root, const char *name, uint64_t *out, bool *seen)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, name);
	const char *p;
	uint64_t v = 0;

	if (f == NULL)
		return true;
	if (!cJSON_IsString(f) || f->valuestring[0] == '\0' ||
	    (f->valuestring[0] == '0' && f->valuestring[1] != '\0'))
		return false;
	for (p = f->valuestring; *p; p++) {
		if (*p < '0' || *p > '9' || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*out = v;
	if (seen != NULL)
		*seen = true;
	return true;
}

int cas_admin_health(const char *url, const struct cas_auth *auth, unsigned timeout_ms,
		     struct cas_node_health *out, char *errmsg, size_t errmsg_len)
{
	struct timespec t0, t1;
	bool usage[4] = {false, false, false, false}, ok;
	struct reply r;
	cJSON *root;
	int rc;

	memset(out, 0, sizeof(*out));
	cas_os_monotonic(&t0);
	rc = http_ask(url, auth, "/v1/health", NULL, NULL, timeout_ms, &out->http_status, &r,
		      errmsg, errmsg_len);
	cas_os_monotonic(&t1);
	if (rc == CAS_EUNAVAILABLE)
		return CAS_OK;
	if (rc != CAS_OK)
		return rc;
	out->answered = true;
	out->rtt_us = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000u +
		      (uint64_t)((t1.tv_nsec - t0.tv_nsec) / 1000);
	root = cJSON_ParseWithLength(r.body ? r.body : "", r.len);
	ok = cJSON_IsObject(root) && health_str(root, "status", out->status, sizeof(out->status)) &&
	     health_str(root, "reason", out->reason, sizeof(out->reason)) &&
	     health_str(root, "version", out->version, sizeof(out->version)) &&
	     health_str(root, "cluster", out->cluster, sizeof(out->cluster)) &&
	     health_str(root, "node", out->node, sizeof(out->node)) &&
	     health_u64(root, "epoch", &out->epoch, NULL) &&
	     health_u64(root, "keys", &out->keys, NULL) &&
	     health_u64(root, "bytes", &out->bytes, &usage[0]) &&
	     health_u64(root, "capacity", &out->capacity, &usage[1]) &&
	     health_u64(root, "log_used", &out->log_used, &usage[2]) &&
	     health_u64(root, "log_size", &out->log_size, &usage[3]);
	if (!ok || out->status[0] == '\0') {
		char why[200];

		body_reason(&r, why, sizeof(why));
		cas_errmsg_set(errmsg, errmsg_len, "%s: HTTP %ld from /v1/health: %s", url,
			       out->http_status, why);
	}
	out->has_usage = ok && usage[0] && usage[1] && usage[2] && usage[3];
	out->healthy = ok && out->http_status == 200 && strcmp(out->status, "ok") == 0;
	cJSON_Delete(root);
	free(r.body);
	return CAS_OK;
}

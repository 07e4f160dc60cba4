/* backend_etcd.c - compare's etcd backend: the v3 JSON gateway over
 * libcurl, one kept-alive easy handle per thread. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "codec.h" /* cas_base64_encode, cas_base64_decode */
#include "compare.h"

struct etcd_conn {
	CURL *easy;
	struct curl_slist *headers;
	char txn_url[256];
	char range_url[256];
	char *req;
	size_t req_cap;
	char *resp;
	size_t resp_len, resp_cap;
	char curl_err[CURL_ERROR_SIZE];
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct etcd_conn *ec = arg;
	size_t len = size * n;

	if (ec->resp_len + len + 1 > ec->resp_cap) {
		size_t cap = (ec->resp_len + len + 1) * 2;
		char *r = realloc(ec->resp, cap);

		if (r == NULL)
			return 0; /* libcurl fails the transfer */
		ec->resp = r;
		ec->resp_cap = cap;
	}
	memcpy(ec->resp + ec->resp_len, p, len);
	ec->resp_len += len;
	ec->resp[ec->resp_len] = '\0';
	return len;
}

static void etcd_conn_close(void *conn)
{
	struct etcd_conn *ec = conn;

	if (ec == NULL)
		return;
	curl_easy_cleanup(ec->easy);
	curl_slist_free_all(ec->headers);
	free(ec->req);
	free(ec->resp);
	free(ec);
}

static int etcd_conn_open(struct backend *be, int idx, void **conn, char *err, size_t err_len)
{
	struct etcd *e = be->priv;
	const char *url = e->urls[e->leader < e->n ? e->leader : (size_t)idx % e->n];
	struct etcd_conn *ec = calloc(1, sizeof(*ec));

	if (ec == NULL)
		goto out_nomem;
	ec->easy = curl_easy_init();
	ec->headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (ec->easy == NULL || ec->headers == NULL)
		goto out_close;
	snprintf(ec->txn_url, sizeof(ec->txn_url), "%s/v3/kv/txn", url);
	snprintf(ec->range_url, sizeof(ec->range_url), "%s/v3/kv/range", url);
	curl_easy_setopt(ec->easy, CURLOPT_HTTPHEADER, ec->headers);
	curl_easy_setopt(ec->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(ec->easy, CURLOPT_WRITEDATA, ec);
	curl_easy_setopt(ec->easy, CURLOPT_ERRORBUFFER, ec->curl_err);
	curl_easy_setopt(ec->easy, CURLOPT_TIMEOUT_MS, (long)OP_TIMEOUT_MS);
	curl_easy_setopt(ec->easy, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(ec->easy, CURLOPT_NOSIGNAL, 1L);
	if (e->tls_ca != NULL)
		curl_easy_setopt(ec->easy, CURLOPT_CAINFO, e->tls_ca);
	if (e->tls_cert != NULL && e->tls_key != NULL) {
		curl_easy_setopt(ec->easy, CURLOPT_SSLCERT, e->tls_cert);
		curl_easy_setopt(ec->easy, CURLOPT_SSLKEY, e->tls_key);
	}
	*conn = ec;
	return 0;

out_close:
	etcd_conn_close(ec);
out_nomem:
	snprintf(err, err_len, "etcd: out of memory");
	return -1;
}

/* POSTs body to url; on HTTP 200 the parsed JSON answer, else NULL with a
 * reason in err. */
static cJSON *etcd_post(struct etcd_conn *ec, const char *url, const char *body, char *err,
			size_t err_len)
{
	long status = 0;
	CURLcode rc;
	cJSON *j;

	ec->resp_len = 0;
	ec->curl_err[0] = '\0';
	curl_easy_setopt(ec->easy, CURLOPT_URL, url);
	curl_easy_setopt(ec->easy, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(ec->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	rc = curl_easy_perform(ec->easy);
	if (rc != CURLE_OK) {
		snprintf(err, err_len, "etcd: %s",
			 ec->curl_err[0] ? ec->curl_err : curl_easy_strerror(rc));
		return NULL;
	}
	curl_easy_getinfo(ec->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		snprintf(err, err_len, "etcd: HTTP %ld: %.120s", status,
			 ec->resp_len ? ec->resp : "");
		return NULL;
	}
	j = cJSON_ParseWithLength(ec->resp_len ? ec->resp : "", ec->resp_len);
	if (j == NULL)
		snprintf(err, err_len, "etcd: answer is not JSON");
	return j;
}

/* A JSON int64 of etcd's gateway: a decimal string (or a number). */
static bool json_u64(const cJSON *j, uint64_t *out)
{
	char *end;

	if (cJSON_IsNumber(j) && j->valuedouble >= 0) {
		*out = (uint64_t)j->valuedouble;
		return true;
	}
	if (!cJSON_IsString(j) || j->valuestring[0] < '0' || j->valuestring[0] > '9')
		return false;
	errno = 0;
	*out = strtoull(j->valuestring, &end, 10);
	return errno == 0 && *end == '\0';
}

/* Fills cur from a range answer's "kvs" (absent: the key was never
 * written). */
static bool etcd_kvs(const cJSON *range, struct seen *cur, char *err, size_t err_len)
{
	const cJSON *kv = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(range, "kvs"), 0);
	const cJSON *val;
	unsigned char *bytes = NULL;
	size_t n = 0;

	cur->version = 0;
	cur->data[0] = '\0';
	if (kv == NULL)
		return true;
	if (!json_u64(cJSON_GetObjectItemCaseSensitive(kv, "version"), &cur->version)) {
		snprintf(err, err_len, "etcd: kv without a version");
		return false;
	}
	val = cJSON_GetObjectItemCaseSensitive(kv, "value");
	if (val == NULL)
		return true;
	if (!cJSON_IsString(val) ||
	    cas_base64_decode(val->valuestring, strlen(val->valuestring), &bytes, &n) != CAS_OK) {
		snprintf(err, err_len, "etcd: bad value");
		return false;
	}
	if (n > sizeof(cur->data) - 1)
		n = sizeof(cur->data) - 1;
	if (n)
		memcpy(cur->data, bytes, n);
	cur->data[n] = '\0';
	free(bytes);
	return true;
}

static bool reserve(struct etcd_conn *ec, size_t need)
{
	char *r;

	if (need <= ec->req_cap)
		return true;
	r = realloc(ec->req, need);
	if (r == NULL)
		return false;
	ec->req = r;
	ec->req_cap = need;
	return true;
}

/* CAS is a txn: compare the key's version, then put; on failure the same
 * txn reads the key, so a conflict costs one round trip like casfs's. */
static enum outcome etcd_cas(void *conn, const char *key, uint64_t expected, const void *data,
			     size_t len, bool want_data, struct seen *cur, char *err,
			     size_t err_len)
{
	static const char fmt[] =
		"{\"compare\":[{\"key\":\"%s\",\"result\":\"EQUAL\",\"target\":\"VERSION\","
		"\"version\":\"%" PRIu64 "\"}],"
		"\"success\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}],"
		"\"failure\":[{\"request_range\":{\"key\":\"%s\"}}]}";
	struct etcd_conn *ec = conn;
	enum outcome o = FAILED;
	char *k64 = NULL, *v64 = NULL;
	size_t klen, vlen;
	cJSON *j, *range;

	(void)want_data; /* the failure branch always returns the bytes */
	if (cas_base64_encode((const unsigned char *)key, strlen(key), &k64, &klen) != CAS_OK ||
	    cas_base64_encode(data, len, &v64, &vlen) != CAS_OK ||
	    !reserve(ec, sizeof(fmt) + 3 * klen + vlen + 24)) {
		snprintf(err, err_len, "etcd: out of memory");
		goto out_free;
	}
	snprintf(ec->req, ec->req_cap, fmt, k64, expected, k64, v64, k64);
	j = etcd_post(ec, ec->txn_url, ec->req, err, err_len);
	if (j == NULL)
		goto out_free;
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "succeeded"))) {
		cur->version = expected + 1;
		cur->data[0] = '\0';
		o = DONE;
	} else {
		range = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "responses"), 0);
		range = cJSON_GetObjectItemCaseSensitive(range, "response_range");
		if (range == NULL)
			snprintf(err, err_len, "etcd: failed txn without its range");
		else if (etcd_kvs(range, cur, err, err_len))
			o = CONFLICT;
	}
	cJSON_Delete(j);
out_free:
	free(k64);
	free(v64);
	return o;
}

/* Read is a range on the key, linearizable (etcd's default). */
static enum outcome etcd_read(void *conn, const char *key, struct seen *cur, char *err,
			      size_t err_len)
{
	struct etcd_conn *ec = conn;
	enum outcome o = FAILED;
	char *k64 = NULL;
	size_t klen;
	cJSON *j;

	if (cas_base64_encode((const unsigned char *)key, strlen(key), &k64, &klen) != CAS_OK ||
	    !reserve(ec, klen + 16)) {
		snprintf(err, err_len, "etcd: out of memory");
		goto out_free;
	}
	snprintf(ec->req, ec->req_cap, "{\"key\":\"%s\"}", k64);
	j = etcd_post(ec, ec->range_url, ec->req, err, err_len);
	if (j == NULL)
		goto out_free;
	if (etcd_kvs(j, cur, err, err_len))
		o = DONE;
	cJSON_Delete(j);
out_free:
	free(k64);
	return o;
}

const struct backend etcd_backend = {
	"etcd", etcd_conn_open, etcd_conn_close, etcd_cas, etcd_read, NULL,
};

int etcd_find_leader(struct etcd *e, char *err, size_t err_len)
{
	struct backend be = {.priv = e};

	for (size_t i = 0; i < e->n; i++) {
		struct etcd_conn *ec;
		char url[300];
		uint64_t member, leader;
		cJSON *j, *h;
		bool found;

		e->leader = i;
		if (etcd_conn_open(&be, 0, (void **)&ec, err, err_len))
			return -1;
		snprintf(url, sizeof(url), "%s/v3/maintenance/status", e->urls[i]);
		j = etcd_post(ec, url, "{}", err, err_len);
		etcd_conn_close(ec);
		if (j == NULL)
			return -1;
		h = cJSON_GetObjectItemCaseSensitive(j, "header");
		found = json_u64(cJSON_GetObjectItemCaseSensitive(h, "member_id"), &member) &&
			json_u64(cJSON_GetObjectItemCaseSensitive(j, "leader"), &leader) &&
			member == leader;
		cJSON_Delete(j);
		if (found)
			return 0;
	}
	snprintf(err, err_len, "etcd: no endpoint is the leader");
	return -1;
}

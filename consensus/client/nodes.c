/* nodes.c - the client's node list (nodes.h), parsed with libcurl's URL
 * API. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include <cas/admin.h>
#include <cas/cas.h>

#include "errmsg.h"
#include "nodes.h"
#include "proposer.h" /* CAS_NODES_MAX */

/* Checks one base URL (s, len bytes) and writes its normalized form
 * "scheme://host:port" to *out (malloc'd). */
static int parse_url(const char *s, size_t len, char **out, char *errmsg, size_t errmsg_len)
{
	char *text, *scheme = NULL, *host = NULL, *port = NULL, *part = NULL;
	CURLU *u;
	CURLUcode uc;
	int rc = CAS_EINVAL;
	size_t need;

	text = strndup(s, len);
	if (text == NULL) {
		cas_errmsg_set(errmsg, errmsg_len, "out of memory");
		return CAS_ENOMEM;
	}
	u = curl_url();
	if (u == NULL) {
		cas_errmsg_set(errmsg, errmsg_len, "out of memory");
		rc = CAS_ENOMEM;
		goto out_free_text;
	}
	uc = curl_url_set(u, CURLUPART_URL, text, 0);
	if (uc != CURLUE_OK) {
		cas_errmsg_set(errmsg, errmsg_len, "bad node URL \"%s\": %s", text,
			       curl_url_strerror(uc));
		goto out_free_url;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
		cas_errmsg_set(errmsg, errmsg_len,
			       "bad node URL \"%s\": the scheme must be http or https", text);
		goto out_free_parts;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
		cas_errmsg_set(errmsg, errmsg_len, "bad node URL \"%s\": no host", text);
		goto out_free_parts;
	}
	if (curl_url_get(u, CURLUPART_USER, &part, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_QUERY, &part, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_FRAGMENT, &part, 0) == CURLUE_OK) {
		cas_errmsg_set(errmsg, errmsg_len,
			       "bad node URL \"%s\": no user, query or fragment allowed", text);
		goto out_free_parts;
	}
	if (curl_url_get(u, CURLUPART_PATH, &part, 0) == CURLUE_OK && strcmp(part, "/") != 0 &&
	    part[0] != '\0') {
		cas_errmsg_set(errmsg, errmsg_len, "bad node URL \"%s\": a base URL has no path",
			       text);
		goto out_free_parts;
	}
	if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		cas_errmsg_set(errmsg, errmsg_len, "bad node URL \"%s\": no port", text);
		goto out_free_parts;
	}
	need = strlen(scheme) + strlen(host) + strlen(port) + 5;
	*out = malloc(need);
	if (*out == NULL) {
		rc = CAS_ENOMEM;
		cas_errmsg_set(errmsg, errmsg_len, "out of memory");
		goto out_free_parts;
	}
	snprintf(*out, need, "%s://%s:%s", scheme, host, port);
	rc = CAS_OK;
out_free_parts:
	curl_free(part);
	curl_free(port);
	curl_free(host);
	curl_free(scheme);
out_free_url:
	curl_url_cleanup(u);
out_free_text:
	free(text);
	return rc;
}

void cas_nodes_free(char **urls, size_t n)
{
	if (urls == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(urls[i]);
	free(urls);
}

/* Splits nodes on commas into at most CAS_NODES_MAX distinct URLs. */
int cas_nodes_parse(const char *nodes, char ***out, size_t *out_n, char *errmsg, size_t errmsg_len)
{
	char **urls;
	size_t n = 0;
	const char *p = nodes;
	int rc;

	if (nodes == NULL) {
		cas_errmsg_set(errmsg, errmsg_len, "no node list");
		return CAS_EINVAL;
	}
	urls = calloc(CAS_NODES_MAX, sizeof(*urls));
	if (urls == NULL) {
		cas_errmsg_set(errmsg, errmsg_len, "out of memory");
		return CAS_ENOMEM;
	}
	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *s = p;

		while (len > 0 && isspace((unsigned char)*s)) {
			s++;
			len--;
		}
		while (len > 0 && isspace((unsigned char)s[len - 1]))
			len--;
		if (len == 0) {
			cas_errmsg_set(errmsg, errmsg_len, "empty entry %zu in the node list",
				       n + 1);
			rc = CAS_EINVAL;
			goto out_free_urls;
		}
		if (n == CAS_NODES_MAX) {
			cas_errmsg_set(errmsg, errmsg_len, "more than %d nodes", CAS_NODES_MAX);
			rc = CAS_EINVAL;
			goto out_free_urls;
		}
		rc = parse_url(s, len, &urls[n], errmsg, errmsg_len);
		if (rc != CAS_OK)
			goto out_free_urls;
		/* The same acceptor twice would count its vote twice. */
		for (size_t i = 0; i < n; i++) {
			if (strcmp(urls[i], urls[n]) == 0) {
				cas_errmsg_set(errmsg, errmsg_len, "node %s is listed twice",
					       urls[n]);
				n++;
				rc = CAS_EINVAL;
				goto out_free_urls;
			}
		}
		n++;
		if (end == NULL)
			break;
		p = end + 1;
	}
	*out = urls;
	*out_n = n;
	return CAS_OK;

out_free_urls:
	cas_nodes_free(urls, n);
	return rc;
}

int cas_url_normalize(const char *url, char **out, char *errmsg, size_t errmsg_len)
{
	if (url == NULL || out == NULL) {
		cas_errmsg_set(errmsg, errmsg_len, "no URL");
		return CAS_EINVAL;
	}
	return parse_url(url, strlen(url), out, errmsg, errmsg_len);
}

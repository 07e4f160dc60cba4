/* transport_direct.c - a channel's own transfers: one libcurl easy handle
 * per request per node, on the channel's multi handle, kept alive between
 * operations (transport_int.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "auth.h"
#include "codec.h"
#include "codec_bin.h"
#include "errmsg.h"
#include "transport_int.h"

static void body_put(struct body *b)
{
	if (b != NULL && --b->refs == 0)
		free(b);
}

void cas_direct_stop(struct xfer *x)
{
	if (!x->busy)
		return;
	curl_multi_remove_handle(x->ch->multi, x->easy);
	x->busy = false;
	body_put(x->body);
	x->body = NULL;
	if (x->seq == x->ch->seq)
		x->ch->pending--;
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	size_t n = size * nmemb;
	size_t cap;
	char *p;

	if (n > x->ch->t->max_reply - x->resp_len) {
		x->resp_overflow = true;
		return 0; /* CURLE_WRITE_ERROR ends the transfer */
	}
	if (x->resp_len + n > x->resp_cap) {
		cap = x->resp_cap ? x->resp_cap : 1024;
		while (cap < x->resp_len + n)
			cap *= 2;
		p = realloc(x->resp, cap);
		if (p == NULL)
			return 0;
		x->resp = p;
		x->resp_cap = cap;
	}
	memcpy(x->resp + x->resp_len, ptr, n);
	x->resp_len += n;
	return n;
}

static struct xfer *xfer_new(struct cas_channel *ch, size_t node)
{
	struct xfer *x;
	struct xfer **xs;

	if (ch->n_xfers == ch->cap_xfers) {
		size_t cap = ch->cap_xfers ? ch->cap_xfers * 2 : 8;

		xs = realloc(ch->xfers, cap * sizeof(*xs));
		if (xs == NULL)
			return NULL;
		ch->xfers = xs;
		ch->cap_xfers = cap;
	}
	x = calloc(1, sizeof(*x));
	if (x == NULL)
		return NULL;
	x->easy = curl_easy_init();
	if (x->easy == NULL) {
		free(x);
		return NULL;
	}
	x->ch = ch;
	x->node = node;
	curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->easy, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(x->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	/* Acceptors are reached directly, whatever http_proxy says. */
	curl_easy_setopt(x->easy, CURLOPT_PROXY, "");
	cas_auth_apply(ch->t->auth, x->easy);
	ch->xfers[ch->n_xfers++] = x;
	return x;
}

/* A transfer for node that is free for a new request: an idle one, a new
 * one, or the oldest busy one abandoned. NULL when out of memory. */
static struct xfer *xfer_for(struct cas_channel *ch, size_t node)
{
	struct xfer *oldest = NULL;
	size_t busy = 0;

	for (size_t i = 0; i < ch->n_xfers; i++) {
		struct xfer *x = ch->xfers[i];

		if (x->node != node)
			continue;
		if (!x->busy)
			return x;
		busy++;
		if (oldest == NULL || x->seq < oldest->seq)
			oldest = x;
	}
	if (busy < XFERS_PER_NODE_MAX || oldest == NULL) {
		struct xfer *x = xfer_new(ch, node);

		if (x != NULL || oldest == NULL)
			return x;
	}
	cas_direct_stop(oldest);
	return oldest;
}

struct xfer *cas_direct_harvest(struct cas_channel *ch)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(ch->multi, &left)) != NULL) {
		struct xfer *x = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
		if (x == NULL || !x->busy)
			continue;
		if (x->seq == ch->seq) {
			/* m may be reused by the next info_read. */
			x->result = m->data.result;
			return x;
		}
		cas_direct_stop(x);
	}
	return NULL;
}

/* A reply whose Content-Type names the binary form; any other is taken
 * for JSON (what a node answers a JSON request with). */
static bool reply_is_binary(struct xfer *x)
{
	size_t n = strlen(CAS_CODEC_BIN_TYPE);
	char *ct = NULL;

	if (curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct) != CURLE_OK || ct == NULL)
		return false;
	return strncasecmp(ct, CAS_CODEC_BIN_TYPE, n) == 0 &&
	       (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

void cas_direct_answer(struct xfer *x, struct cas_transport_answer *a)
{
	struct cas_transport *t = x->ch->t;
	long status = 0;
	int rc;

	const char *url = t->urls[x->node];
	char why[160];

	a->node = x->node;
	if (x->result != CURLE_OK) {
		if (x->resp_overflow) {
			a->code = CAS_ETOOBIG;
			snprintf(a->errmsg, sizeof(a->errmsg),
				 "%s: reply larger than this client takes (%zu bytes of value)",
				 url, t->max_value);
		} else {
			a->code = CAS_EIO;
			cas_errmsg_set(a->errmsg, sizeof(a->errmsg), "%s: %s", url,
				       x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->result));
		}
		goto out_stop;
	}
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status == 413) {
		a->code = CAS_ETOOBIG;
		cas_errmsg_set(a->errmsg, sizeof(a->errmsg), "%s: value too large (HTTP 413)", url);
		goto out_stop;
	}
	if (status == 400) {
		/* This client's own encoding refused: most likely a node too
		 * old for the binary form (PROTOCOL.md). */
		a->code = CAS_EIO;
		cas_errmsg_set(a->errmsg, sizeof(a->errmsg),
			       "%s: HTTP 400 to a binary request (a casd without the binary "
			       "form?): %.*s",
			       url, (int)(x->resp_len < 120 ? x->resp_len : 120),
			       x->resp ? x->resp : "");
		goto out_stop;
	}
	if (status != 200 && !(status == 409 && reply_is_binary(x))) {
		a->refusal = cas_transport_refusal(status, x->resp, x->resp_len, &a->epoch);
	}
	if (status != 200 && status != 409 && a->refusal == CAS_REFUSAL_NONE) {
		a->code = CAS_EIO;
		cas_errmsg_set(a->errmsg, sizeof(a->errmsg), "%s: HTTP %ld: %.*s", url, status,
			       (int)(x->resp_len < 160 ? x->resp_len : 160),
			       x->resp ? x->resp : "");
		goto out_stop;
	}
	if (a->refusal != CAS_REFUSAL_NONE) {
		a->code = CAS_EIO;
		cas_errmsg_set(a->errmsg, sizeof(a->errmsg), "%s: HTTP %ld: %.*s", url, status,
			       (int)(x->resp_len < 160 ? x->resp_len : 160),
			       x->resp ? x->resp : "");
		goto out_stop;
	}
	why[0] = '\0';
	if (reply_is_binary(x))
		rc = cas_codec_bin_decode_reply(x->resp, x->resp_len, t->max_value, &a->msg, why,
						sizeof(why));
	else
		rc = cas_codec_decode_reply(x->resp ? x->resp : "", x->resp_len, t->max_value,
					    &a->msg, why, sizeof(why));
	a->code = rc;
	if (rc != CAS_OK && rc != CAS_ETOOBIG && rc != CAS_ENOMEM)
		a->code = CAS_EPROTO;
	if (rc != CAS_OK)
		cas_errmsg_set(a->errmsg, sizeof(a->errmsg), "%s: bad reply: %s", url, why);
out_stop:
	cas_direct_stop(x);
}

bool cas_direct_backlogged(const struct cas_channel *ch, size_t node)
{
	size_t busy = 0;

	for (size_t i = 0; i < ch->n_xfers; i++)
		busy += ch->xfers[i]->node == node && ch->xfers[i]->busy;
	return busy >= XFERS_PER_NODE_MAX;
}

struct xfer *cas_direct_first_pending(struct cas_channel *ch)
{
	for (size_t i = 0; i < ch->n_xfers; i++)
		if (ch->xfers[i]->busy && ch->xfers[i]->seq == ch->seq)
			return ch->xfers[i];
	return NULL;
}

int cas_direct_send(struct cas_channel *ch, char *const *urls, struct curl_slist *hdrs,
		    struct body *b, const bool *direct, uint64_t deadline_ms, char *errmsg,
		    size_t errmsg_len)
{
	struct xfer *xs[CAS_NODES_MAX];
	uint64_t now, left;
	CURLMcode mc;
	int running;

	for (size_t i = 0; i < CAS_NODES_MAX; i++) {
		xs[i] = NULL;
		if (!direct[i])
			continue;
		xs[i] = xfer_for(ch, i);
		if (xs[i] == NULL)
			goto out_free_body;
	}

	now = cas_transport_now_ms();
	left = deadline_ms > now ? deadline_ms - now : 1;
	if (left > LONG_MAX)
		left = LONG_MAX;
	for (size_t i = 0; i < CAS_NODES_MAX; i++) {
		struct xfer *x = xs[i];

		if (x == NULL)
			continue;
		x->seq = ch->seq;
		x->resp_len = 0;
		x->resp_overflow = false;
		x->result = CURLE_OK;
		x->errbuf[0] = '\0';
		curl_easy_setopt(x->easy, CURLOPT_URL, urls[i]);
		curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, hdrs);
		curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->len);
		curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, (char *)&b->data[0]);
		curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)left);
		curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)left);
		mc = curl_multi_add_handle(ch->multi, x->easy);
		if (mc != CURLM_OK)
			goto out_stop_sent;
		x->busy = true;
		x->body = b;
		b->refs++;
		ch->pending++;
	}
	if (b->refs == 0)
		free(b); /* every node has it in a batch */
	/* Start connecting and writing now, before the caller waits. */
	curl_multi_perform(ch->multi, &running);
	return CAS_OK;

out_stop_sent:
	cas_errmsg_set(errmsg, errmsg_len, "libcurl: %s", curl_multi_strerror(mc));
	b->refs++; /* held across the stops below */
	for (size_t i = 0; i < CAS_NODES_MAX; i++)
		if (xs[i] != NULL && xs[i]->seq == ch->seq)
			cas_direct_stop(xs[i]);
	free(b);
	return CAS_EIO;
out_free_body:
	free(b);
	cas_errmsg_set(errmsg, errmsg_len, "out of memory for a transfer");
	return CAS_ENOMEM;
}

void cas_direct_free_all(struct cas_channel *ch)
{
	for (size_t i = 0; i < ch->n_xfers; i++) {
		struct xfer *x = ch->xfers[i];

		cas_direct_stop(x);
		curl_easy_cleanup(x->easy);
		free(x->resp);
		free(x);
	}
	free(ch->xfers);
	ch->xfers = NULL;
	ch->n_xfers = ch->cap_xfers = 0;
}

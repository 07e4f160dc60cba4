/* transport.c - protocol requests fanned out to every acceptor with
 * libcurl's multi interface, over connections kept alive between
 * operations: the transport, its channels, and the send/next loop over
 * the direct transfers and the batch pipes (transport_int.h). */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include <cas/os.h>

#include "auth.h"
#include "codec_bin.h"
#include "errmsg.h"
#include "nodes.h"
#include "transport_int.h"

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int cas_transport_global_init(char *errmsg, size_t errmsg_len)
{
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK) {
		cas_errmsg_set(errmsg, errmsg_len, "libcurl: %s", curl_easy_strerror(global_rc));
		return CAS_EIO;
	}
	return CAS_OK;
}

uint64_t cas_transport_now_ms(void)
{
	return cas_os_monotonic_ms();
}

static char *join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);

	if (s == NULL)
		return NULL;
	memcpy(s, a, la);
	memcpy(s + la, b, lb + 1);
	return s;
}

/* An array of CAS_NODES_MAX URLs, the first n of them bases[i] + path. */
static char **make_urls(const char *const *bases, size_t n, const char *path)
{
	char **urls = calloc(CAS_NODES_MAX, sizeof(*urls));

	if (urls == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		urls[i] = join(bases[i], path);
		if (urls[i] == NULL) {
			cas_nodes_free(urls, n);
			return NULL;
		}
	}
	return urls;
}

int cas_transport_open(const char *const *urls, size_t n, size_t max_value,
		       const struct cas_auth *auth, struct cas_transport **out, char *errmsg,
		       size_t errmsg_len)
{
	struct cas_transport *t;
	struct curl_slist *h;
	int rc = CAS_ENOMEM;

	if (n > CAS_NODES_MAX) {
		cas_errmsg_set(errmsg, errmsg_len, "need at most %d nodes, not %zu", CAS_NODES_MAX,
			       n);
		return CAS_EINVAL;
	}
	if (cas_transport_global_init(errmsg, errmsg_len) != CAS_OK)
		return CAS_EIO;

	t = calloc(1, sizeof(*t));
	if (t == NULL)
		goto out_oom;
	if (pthread_mutex_init(&t->lock, NULL) != 0)
		goto out_free_t;
	if (pthread_mutex_init(&t->block, NULL) != 0) {
		pthread_mutex_destroy(&t->lock);
		goto out_free_t;
	}
	for (size_t i = 0; i < CAS_NODES_MAX; i++)
		t->pipes[i].tail = &t->pipes[i].head;
	t->n = n;
	t->max_value = max_value;
	t->auth = auth;
	t->max_reply = max_value / 3 * 4 + 4 + REPLY_SLACK;
	t->urls = make_urls(urls, n, "");
	t->prepare_urls = make_urls(urls, n, "/v1/prepare");
	t->accept_urls = make_urls(urls, n, "/v1/accept");
	t->query_urls = make_urls(urls, n, "/v1/query");
	t->purge_urls = make_urls(urls, n, "/v1/purge");
	t->health_urls = make_urls(urls, n, "/v1/health");
	t->batch_urls = make_urls(urls, n, "/v1/batch");
	if (t->urls == NULL || t->prepare_urls == NULL || t->accept_urls == NULL ||
	    t->query_urls == NULL || t->purge_urls == NULL || t->health_urls == NULL ||
	    t->batch_urls == NULL)
		goto out_free_urls;
	/* Requests go in the binary form; no "Expect: 100-continue" round
	 * trip before large bodies. */
	h = curl_slist_append(NULL, "Content-Type: " CAS_CODEC_BIN_TYPE);
	if (h == NULL)
		goto out_free_urls;
	t->headers = h;
	h = curl_slist_append(t->headers, "Expect:");
	if (h == NULL)
		goto out_free_headers;
	t->headers = h;
	if (cas_auth_header(auth) != NULL) {
		h = curl_slist_append(t->headers, cas_auth_header(auth));
		if (h == NULL)
			goto out_free_headers;
		t->headers = h;
	}
	*out = t;
	return CAS_OK;

out_free_headers:
	curl_slist_free_all(t->headers);
out_free_urls:
	cas_nodes_free(t->urls, CAS_NODES_MAX);
	cas_nodes_free(t->prepare_urls, CAS_NODES_MAX);
	cas_nodes_free(t->accept_urls, CAS_NODES_MAX);
	cas_nodes_free(t->query_urls, CAS_NODES_MAX);
	cas_nodes_free(t->purge_urls, CAS_NODES_MAX);
	cas_nodes_free(t->health_urls, CAS_NODES_MAX);
	cas_nodes_free(t->batch_urls, CAS_NODES_MAX);
	pthread_mutex_destroy(&t->block);
	pthread_mutex_destroy(&t->lock);
out_free_t:
	free(t);
out_oom:
	cas_errmsg_set(errmsg, errmsg_len, "out of memory");
	return rc;
}

int cas_transport_add(struct cas_transport *t, const char *url, size_t *index)
{
	static const char *const paths[] = {"",		 "/v1/prepare", "/v1/accept", "/v1/query",
					    "/v1/purge", "/v1/health",	"/v1/batch"};
	char **arrays[] = {t->urls,	  t->prepare_urls, t->accept_urls, t->query_urls,
			   t->purge_urls, t->health_urls,  t->batch_urls};
	size_t n;
	int rc = CAS_OK;

	pthread_mutex_lock(&t->lock);
	n = t->n;
	if (n == CAS_NODES_MAX) {
		rc = CAS_EINVAL;
		goto out_unlock;
	}
	for (size_t a = 0; a < sizeof(arrays) / sizeof(arrays[0]); a++) {
		arrays[a][n] = join(url, paths[a]);
		if (arrays[a][n] == NULL) {
			for (size_t b = 0; b <= a; b++) {
				free(arrays[b][n]);
				arrays[b][n] = NULL;
			}
			rc = CAS_ENOMEM;
			goto out_unlock;
		}
	}
	*index = n;
	/* Readers that see the new count see its URLs. */
	__atomic_store_n(&t->n, n + 1, __ATOMIC_RELEASE);
out_unlock:
	pthread_mutex_unlock(&t->lock);
	return rc;
}

size_t cas_transport_nodes(const struct cas_transport *t)
{
	return __atomic_load_n(&t->n, __ATOMIC_ACQUIRE);
}

const char *cas_transport_url(const struct cas_transport *t, size_t i)
{
	return i < cas_transport_nodes(t) ? t->urls[i] : NULL;
}

/* The headers of identity id: the common ones and Cas-Cluster, Cas-Epoch.
 * Made once per identity and kept until t closes. NULL without memory. */
static struct curl_slist *ident_headers(struct cas_transport *t, const struct cas_ident *id)
{
	struct ident_hdrs *ih;
	struct curl_slist *h = NULL, *h2;
	char line[96];

	pthread_mutex_lock(&t->lock);
	for (ih = t->idents; ih != NULL; ih = ih->next)
		if (ih->epoch == id->epoch && strcmp(ih->cluster, id->cluster) == 0)
			goto out_unlock;
	ih = calloc(1, sizeof(*ih));
	if (ih == NULL)
		goto out_unlock;
	snprintf(ih->cluster, sizeof(ih->cluster), "%s", id->cluster);
	ih->epoch = id->epoch;
	for (struct curl_slist *c = t->headers; c != NULL; c = c->next) {
		h2 = curl_slist_append(h, c->data);
		if (h2 == NULL)
			goto out_free;
		h = h2;
	}
	snprintf(line, sizeof(line), "Cas-Cluster: %s", ih->cluster);
	h2 = curl_slist_append(h, line);
	if (h2 == NULL)
		goto out_free;
	h = h2;
	snprintf(line, sizeof(line), "Cas-Epoch: %llu", (unsigned long long)ih->epoch);
	h2 = curl_slist_append(h, line);
	if (h2 == NULL)
		goto out_free;
	ih->h = h2;
	ih->next = t->idents;
	t->idents = ih;
	goto out_unlock;
out_free:
	curl_slist_free_all(h);
	free(ih);
	ih = NULL;
out_unlock:
	pthread_mutex_unlock(&t->lock);
	return ih ? ih->h : NULL;
}

/* The number in a JSON string field "name": "digits" of body, or 0. */
static uint64_t json_u64_field(const char *body, size_t len, const char *name)
{
	char pat[32];
	const char *p;
	uint64_t v = 0;

	snprintf(pat, sizeof(pat), "\"%s\"", name);
	p = memmem(body, len, pat, strlen(pat));
	if (p == NULL)
		return 0;
	p += strlen(pat);
	while (p < body + len && (*p == ' ' || *p == ':' || *p == '"'))
		p++;
	while (p < body + len && *p >= '0' && *p <= '9' && v < UINT64_MAX / 10)
		v = v * 10 + (uint64_t)(*p++ - '0');
	return v;
}

enum cas_refusal cas_transport_refusal(long status, const char *body, size_t len, uint64_t *epoch)
{
	*epoch = 0;
	if (body == NULL)
		body = "", len = 0;
	if (status == 421)
		return CAS_REFUSAL_CLUSTER;
	if (status == 503 && memmem(body, len, "uninitialized", 13) != NULL)
		return CAS_REFUSAL_UNINITIALIZED;
	if (status != 409 || memmem(body, len, "\"error\"", 7) == NULL)
		return CAS_REFUSAL_NONE;
	*epoch = json_u64_field(body, len, "epoch");
	if (memmem(body, len, "stale configuration", 19) != NULL)
		return CAS_REFUSAL_STALE;
	if (memmem(body, len, "node is behind", 14) != NULL)
		return CAS_REFUSAL_BEHIND;
	*epoch = 0;
	return CAS_REFUSAL_NONE;
}

static void channel_destroy(struct cas_channel *ch)
{
	cas_direct_free_all(ch);
	curl_multi_cleanup(ch->multi);
	cas_pipe_drop_answers(ch);
	free(ch);
}

void cas_transport_close(struct cas_transport *t)
{
	struct cas_channel *ch;

	if (t == NULL)
		return;
	cas_pipe_shutdown(t);
	while ((ch = t->free_list) != NULL) {
		t->free_list = ch->next_free;
		channel_destroy(ch);
	}
	curl_slist_free_all(t->headers);
	while (t->idents != NULL) {
		struct ident_hdrs *id = t->idents;

		t->idents = id->next;
		curl_slist_free_all(id->h);
		free(id);
	}
	cas_nodes_free(t->urls, CAS_NODES_MAX);
	cas_nodes_free(t->prepare_urls, CAS_NODES_MAX);
	cas_nodes_free(t->accept_urls, CAS_NODES_MAX);
	cas_nodes_free(t->query_urls, CAS_NODES_MAX);
	cas_nodes_free(t->purge_urls, CAS_NODES_MAX);
	cas_nodes_free(t->health_urls, CAS_NODES_MAX);
	cas_nodes_free(t->batch_urls, CAS_NODES_MAX);
	pthread_mutex_destroy(&t->block);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

int cas_transport_checkout(struct cas_transport *t, struct cas_channel **out, char *errmsg,
			   size_t errmsg_len)
{
	struct cas_channel *ch;

	pthread_mutex_lock(&t->lock);
	ch = t->free_list;
	if (ch != NULL)
		t->free_list = ch->next_free;
	pthread_mutex_unlock(&t->lock);
	if (ch != NULL) {
		ch->next_free = NULL;
		*out = ch;
		goto out_active;
	}

	ch = calloc(1, sizeof(*ch));
	if (ch == NULL)
		goto out_oom;
	ch->t = t;
	ch->multi = curl_multi_init();
	if (ch->multi == NULL)
		goto out_free_ch;
	/* Keep every connection a channel may have made alive. */
	curl_multi_setopt(ch->multi, CURLMOPT_MAXCONNECTS,
			  (long)(CAS_NODES_MAX * XFERS_PER_NODE_MAX));
	ch->bans_tail = &ch->bans;
	*out = ch;
out_active:
	pthread_mutex_lock(&t->block);
	t->active++;
	pthread_mutex_unlock(&t->block);
	return CAS_OK;

out_free_ch:
	free(ch);
out_oom:
	cas_errmsg_set(errmsg, errmsg_len, "out of memory for a channel");
	return CAS_ENOMEM;
}

void cas_transport_checkin(struct cas_transport *t, struct cas_channel *ch)
{
	if (ch == NULL)
		return;
	pthread_mutex_lock(&t->block);
	t->active--;
	pthread_mutex_unlock(&t->block);
	pthread_mutex_lock(&t->lock);
	ch->next_free = t->free_list;
	t->free_list = ch;
	pthread_mutex_unlock(&t->lock);
}

int cas_transport_send(struct cas_channel *ch, const struct cas_msg *m, const struct cas_ident *id,
		       uint64_t mask, uint64_t deadline_ms, char *errmsg, size_t errmsg_len)
{
	struct cas_transport *t = ch->t;
	struct curl_slist *hdrs;
	char **urls;
	unsigned char *bin;
	size_t len;
	struct body *b;
	bool direct[CAS_NODES_MAX];
	int running, rc;

	if (m->type == CAS_MSG_PREPARE) {
		urls = t->prepare_urls;
	} else if (m->type == CAS_MSG_ACCEPT) {
		urls = t->accept_urls;
	} else if (m->type == CAS_MSG_QUERY) {
		urls = t->query_urls;
	} else if (m->type == CAS_MSG_PURGE) {
		urls = t->purge_urls;
	} else {
		cas_errmsg_set(errmsg, errmsg_len, "message type %d is no request", (int)m->type);
		return CAS_EINVAL;
	}
	hdrs = ident_headers(t, id);
	if (hdrs == NULL) {
		cas_errmsg_set(errmsg, errmsg_len, "out of memory for headers");
		return CAS_ENOMEM;
	}
	rc = cas_codec_bin_encode(m, &bin, &len);
	if (rc != CAS_OK) {
		cas_errmsg_set(errmsg, errmsg_len, "encoding a request: %s", cas_strerror(rc));
		return rc;
	}
	b = malloc(sizeof(*b) + len);
	if (b == NULL)
		goto out_free_bin;
	b->refs = 0;
	b->len = len;
	memcpy(b->data, bin, len);
	free(bin);

	/* Answers to earlier sends are of no use any more; finished ones
	 * free their handles (and connections) for this send. */
	ch->seq++;
	ch->pending = 0;
	curl_multi_perform(ch->multi, &running);
	cas_direct_harvest(ch);
	cas_pipe_new_send(ch);

	/* While other channels are busy too, the request goes to each node
	 * in that node's next batch; otherwise (and to nodes that take no
	 * batches) on a transfer of its own. */
	if (m->type == CAS_MSG_PURGE) {
		/* Not an item of /v1/batch (PROTOCOL.md, "POST /v1/purge"). */
		size_t n = cas_transport_nodes(t);

		for (size_t i = 0; i < CAS_NODES_MAX; i++)
			direct[i] = i < n && (mask >> i & 1);
	} else {
		cas_pipe_send(ch, (const unsigned char *)b->data, b->len, hdrs, mask, deadline_ms,
			      direct);
	}
	rc = cas_direct_send(ch, urls, hdrs, b, direct, deadline_ms, errmsg, errmsg_len);
	if (rc != CAS_OK)
		cas_pipe_new_send(ch); /* the batched requests are dropped too */
	return rc;

out_free_bin:
	free(bin);
	cas_errmsg_set(errmsg, errmsg_len, "out of memory for a request");
	return CAS_ENOMEM;
}

void cas_transport_answer_clear(struct cas_transport_answer *a)
{
	if (a == NULL)
		return;
	cas_msg_clear(&a->msg);
	memset(a, 0, sizeof(*a));
}

static int poll_ms(uint64_t now, uint64_t until)
{
	uint64_t d = until > now ? until - now : 0;

	return d > INT_MAX ? INT_MAX : (int)d;
}

enum cas_transport_event cas_transport_next(struct cas_channel *ch, uint64_t until_ms,
					    struct cas_transport_answer *a)
{
	size_t bpending;
	CURLMcode mc;
	struct xfer *x;
	uint64_t now;
	int running;

	memset(a, 0, sizeof(*a));
	for (;;) {
		if (cas_pipe_take_answer(ch, a, &bpending))
			return CAS_TRANSPORT_ANSWER;
		x = cas_direct_harvest(ch);
		if (x != NULL) {
			cas_direct_answer(x, a);
			return CAS_TRANSPORT_ANSWER;
		}
		if (ch->pending == 0 && bpending == 0)
			return CAS_TRANSPORT_IDLE;
		now = cas_transport_now_ms();
		if (now >= until_ms)
			return CAS_TRANSPORT_TIMEOUT;
		mc = curl_multi_poll(ch->multi, NULL, 0, poll_ms(now, until_ms), NULL);
		if (mc == CURLM_OK)
			mc = curl_multi_perform(ch->multi, &running);
		if (mc != CURLM_OK) {
			/* The multi handle itself failed: count a pending
			 * node as silent, one per call, so that the op sees
			 * every node fail rather than hang. */
			x = cas_direct_first_pending(ch);
			if (x == NULL) {
				/* Only batch answers to wait for. */
				cas_os_sleep_ms(1);
				continue;
			}
			a->node = x->node;
			a->code = CAS_EIO;
			cas_errmsg_set(a->errmsg, sizeof(a->errmsg), "libcurl: %s",
				       curl_multi_strerror(mc));
			cas_direct_stop(x);
			return CAS_TRANSPORT_ANSWER;
		}
	}
}

void cas_transport_sleep(struct cas_channel *ch, uint64_t until_ms)
{
	uint64_t now;
	int running;

	ch->seq++;
	ch->pending = 0;
	cas_pipe_new_send(ch);
	for (;;) {
		cas_direct_harvest(ch);
		now = cas_transport_now_ms();
		if (now >= until_ms)
			return;
		if (curl_multi_poll(ch->multi, NULL, 0, poll_ms(now, until_ms), NULL) != CURLM_OK)
			cas_os_sleep_ms(1);
		curl_multi_perform(ch->multi, &running);
	}
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	(void)ptr;
	(void)userdata;
	return size * nmemb;
}

int cas_transport_ping(struct cas_transport *t, size_t node, unsigned timeout_ms, char *errmsg,
		       size_t errmsg_len)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	CURL *easy;
	CURLcode cc;
	long status = 0;
	int rc = CAS_OK;

	if (node >= cas_transport_nodes(t)) {
		cas_errmsg_set(errmsg, errmsg_len, "no node %zu", node);
		return CAS_EINVAL;
	}
	easy = curl_easy_init();
	if (easy == NULL) {
		cas_errmsg_set(errmsg, errmsg_len, "out of memory for a ping");
		return CAS_ENOMEM;
	}
	curl_easy_setopt(easy, CURLOPT_URL, t->health_urls[node]);
	curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->headers);
	cas_auth_apply(t->auth, easy);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_PROXY, "");
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)(timeout_ms ? timeout_ms : 1));
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms ? timeout_ms : 1));
	cc = curl_easy_perform(easy);
	if (cc != CURLE_OK) {
		cas_errmsg_set(errmsg, errmsg_len, "%s",
			       errbuf[0] ? errbuf : curl_easy_strerror(cc));
		rc = CAS_EUNAVAILABLE;
		goto out_cleanup;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		cas_errmsg_set(errmsg, errmsg_len, "HTTP %ld from /v1/health", status);
		rc = CAS_EPROTO;
	}
out_cleanup:
	curl_easy_cleanup(easy);
	return rc;
}

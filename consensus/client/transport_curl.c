/* transport_curl.c - protocol requests fanned out to every acceptor with
 * libcurl's multi interface, over connections kept alive between operations. */
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include <cas/bytes.h>

#include "batch.h"
#include "codec.h"
#include "codec_bin.h"
#include "errmsg.h"
#include "proposer.h"
#include "transport_curl.h"

/* Transfers one channel keeps towards one node: a slow node's answer to an
 * earlier send may still be on its way when the next send starts. Past
 * this many, requests to the node go through its batch pipe instead; to a
 * node that takes no batches, the oldest is abandoned (which costs its
 * connection). */
#define XFERS_PER_NODE_MAX 4

/* Room for a reply's JSON around the base64 of its value. */
#define REPLY_SLACK (64u * 1024u)

/* One request body, shared by the transfers of one send. */
struct body {
	unsigned refs;
	size_t len;
	char data[];
};

/* One easy handle of a channel; it talks to one node. */
struct xfer {
	CURL *easy;
	struct cas_channel *ch;
	size_t node;
	uint64_t seq;	   /* the send it belongs to */
	bool busy;	   /* in the multi handle */
	struct body *body; /* a reference while busy */
	char *resp;
	size_t resp_len, resp_cap;
	bool resp_overflow;
	CURLcode result; /* of the finished transfer */
	char errbuf[CURL_ERROR_SIZE];
};

/* Requests larger than this go on their own, never in a batch. */
#define BATCH_ITEM_MAX (64u * 1024u)

/* Batches are used while at least this many channels are checked out. */
#define BATCH_MIN_ACTIVE 4

/* One channel's request to one node, waiting in the node's pipe or in the
 * batch in flight there. */
struct bitem {
	struct bitem *next;
	struct cas_channel *ch;
	uint64_t seq;	      /* ch->bseq of the send it belongs to */
	uint64_t deadline_ms; /* of that send */
	size_t len;
	unsigned char data[]; /* the request, binary form */
};

/* An answer that came in a batch, for its channel to take. */
struct banswer {
	struct banswer *next;
	struct cas_transport_answer a;
};

/* The batches to one node: at most one in flight; requests that come
 * meanwhile wait and go together in the next. */
struct pipe {
	struct bitem *head, **tail; /* waiting (t->block) */
	bool busy;		    /* a batch is in flight (t->block) */
	bool refused;		    /* the node takes no batches (t->block) */
	/* The I/O thread's own. */
	struct bitem *flight; /* the batch in flight, in order */
	size_t n_flight;
	CURL *easy;
	unsigned char *req;
	size_t req_len, req_cap;
	unsigned char *resp;
	size_t resp_len, resp_cap, resp_max;
	bool resp_overflow;
	char errbuf[CURL_ERROR_SIZE];
};

struct cas_channel {
	struct cas_transport *t;
	CURLM *multi;
	struct xfer **xfers;
	size_t n_xfers, cap_xfers;
	uint64_t seq;	/* the current send */
	size_t pending; /* busy transfers of the current send */
	struct cas_channel *next_free;
	/* Answers in batches (t->block): */
	uint64_t bseq;	      /* the current send */
	size_t bpending;      /* batch answers it still waits for */
	struct banswer *bans; /* arrived, not taken yet */
	struct banswer **bans_tail;
};

struct cas_transport {
	pthread_mutex_t lock;
	size_t n;
	char **urls;
	char **prepare_urls;
	char **accept_urls;
	char **query_urls;
	char **health_urls;
	size_t max_value;
	size_t max_reply;
	struct curl_slist *headers;
	struct cas_channel *free_list;
	char **batch_urls;
	/* Batching: while more than one channel is checked out, requests go
	 * through the nodes' pipes, which one I/O thread drives. */
	pthread_mutex_t block; /* guards what the structs above mark (t->block) */
	size_t active;	       /* channels checked out */
	bool io_running, io_stop;
	pthread_t io;
	CURLM *io_multi;
	struct pipe pipes[CAS_NODES_MAX];
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static void global_init(void)
{
	global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

uint64_t cas_transport_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
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

static void free_urls(char **urls, size_t n)
{
	if (urls == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(urls[i]);
	free(urls);
}

static char **make_urls(const char *const *bases, size_t n, const char *path)
{
	char **urls = calloc(n, sizeof(*urls));

	if (urls == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		urls[i] = join(bases[i], path);
		if (urls[i] == NULL) {
			free_urls(urls, n);
			return NULL;
		}
	}
	return urls;
}

int cas_transport_open(const char *const *urls, size_t n, size_t max_value,
		       struct cas_transport **out, char *errmsg, size_t errmsg_len)
{
	struct cas_transport *t;
	struct curl_slist *h;
	int rc = CAS_ENOMEM;

	if (n == 0 || n > CAS_NODES_MAX) {
		cas_errmsg_set(errmsg, errmsg_len, "need 1 to %d nodes, not %zu", CAS_NODES_MAX, n);
		return CAS_EINVAL;
	}
	pthread_once(&global_once, global_init);
	if (global_rc != CURLE_OK) {
		cas_errmsg_set(errmsg, errmsg_len, "libcurl: %s", curl_easy_strerror(global_rc));
		return CAS_EIO;
	}

	t = calloc(1, sizeof(*t));
	if (t == NULL)
		goto out_oom;
	if (pthread_mutex_init(&t->lock, NULL) != 0)
		goto out_free_t;
	if (pthread_mutex_init(&t->block, NULL) != 0) {
		pthread_mutex_destroy(&t->lock);
		goto out_free_t;
	}
	for (size_t i = 0; i < n; i++)
		t->pipes[i].tail = &t->pipes[i].head;
	t->n = n;
	t->max_value = max_value;
	t->max_reply = max_value / 3 * 4 + 4 + REPLY_SLACK;
	t->urls = make_urls(urls, n, "");
	t->prepare_urls = make_urls(urls, n, "/v1/prepare");
	t->accept_urls = make_urls(urls, n, "/v1/accept");
	t->query_urls = make_urls(urls, n, "/v1/query");
	t->health_urls = make_urls(urls, n, "/v1/health");
	t->batch_urls = make_urls(urls, n, "/v1/batch");
	if (t->urls == NULL || t->prepare_urls == NULL || t->accept_urls == NULL ||
	    t->query_urls == NULL || t->health_urls == NULL || t->batch_urls == NULL)
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
	*out = t;
	return CAS_OK;

out_free_headers:
	curl_slist_free_all(t->headers);
out_free_urls:
	free_urls(t->urls, n);
	free_urls(t->prepare_urls, n);
	free_urls(t->accept_urls, n);
	free_urls(t->query_urls, n);
	free_urls(t->health_urls, n);
	free_urls(t->batch_urls, n);
	pthread_mutex_destroy(&t->block);
	pthread_mutex_destroy(&t->lock);
out_free_t:
	free(t);
out_oom:
	cas_errmsg_set(errmsg, errmsg_len, "out of memory");
	return rc;
}

static void body_put(struct body *b)
{
	if (b != NULL && --b->refs == 0)
		free(b);
}

/* Takes x out of the multi handle; an unfinished transfer is abandoned
 * and its connection closed. */
static void xfer_stop(struct xfer *x)
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

/* Frees the batch answers ch has not taken. Called with t->block held, or
 * once no other thread can reach ch. */
static void drop_answers(struct cas_channel *ch)
{
	struct banswer *ba;

	while ((ba = ch->bans) != NULL) {
		ch->bans = ba->next;
		cas_transport_answer_clear(&ba->a);
		free(ba);
	}
	ch->bans_tail = &ch->bans;
	ch->bpending = 0;
}

static void free_items(struct bitem *it)
{
	struct bitem *next;

	for (; it; it = next) {
		next = it->next;
		free(it);
	}
}

static void io_shutdown(struct cas_transport *t);

static void channel_destroy(struct cas_channel *ch)
{
	for (size_t i = 0; i < ch->n_xfers; i++) {
		struct xfer *x = ch->xfers[i];

		xfer_stop(x);
		curl_easy_cleanup(x->easy);
		free(x->resp);
		free(x);
	}
	free(ch->xfers);
	curl_multi_cleanup(ch->multi);
	drop_answers(ch);
	free(ch);
}

void cas_transport_close(struct cas_transport *t)
{
	struct cas_channel *ch;

	if (t == NULL)
		return;
	io_shutdown(t);
	while ((ch = t->free_list) != NULL) {
		t->free_list = ch->next_free;
		channel_destroy(ch);
	}
	curl_slist_free_all(t->headers);
	free_urls(t->urls, t->n);
	free_urls(t->prepare_urls, t->n);
	free_urls(t->accept_urls, t->n);
	free_urls(t->query_urls, t->n);
	free_urls(t->health_urls, t->n);
	free_urls(t->batch_urls, t->n);
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
	curl_multi_setopt(ch->multi, CURLMOPT_MAXCONNECTS, (long)(t->n * XFERS_PER_NODE_MAX));
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
	curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, ch->t->headers);
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
	xfer_stop(oldest);
	return oldest;
}

/* Takes every finished transfer of an earlier send out of the multi
 * handle, and returns the first finished one of the current send (still
 * busy, for the caller to turn into an answer), or NULL. */
static struct xfer *harvest(struct cas_channel *ch)
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
		xfer_stop(x);
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

/* Makes a finished transfer x of the current send into answer a. */
static void answer_from(struct xfer *x, struct cas_transport_answer *a)
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
	if (status != 200 && status != 409) {
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
	xfer_stop(x);
}

/* ---- Batches (batch.h) ---- */

static size_t on_batch_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct pipe *p = userdata;
	size_t n = size * nmemb, cap;
	unsigned char *q;

	if (n > p->resp_max - p->resp_len) {
		p->resp_overflow = true;
		return 0;
	}
	if (p->resp_len + n > p->resp_cap) {
		cap = p->resp_cap ? p->resp_cap : 4096;
		while (cap < p->resp_len + n)
			cap *= 2;
		q = realloc(p->resp, cap);
		if (q == NULL)
			return 0;
		p->resp = q;
		p->resp_cap = cap;
	}
	memcpy(p->resp + p->resp_len, ptr, n);
	p->resp_len += n;
	return n;
}

/* Moves what waits in node's pipe into a batch (requests of sends their
 * channels gave up on are dropped) and lays out its body. Returns whether
 * there is a batch to send. Called with t->block held. */
static bool take_batch(struct cas_transport *t, size_t node, uint64_t *deadline_ms)
{
	struct pipe *p = &t->pipes[node];
	struct bitem *it, **last = &p->flight;
	size_t need;
	unsigned char *q;

	p->flight = NULL;
	p->n_flight = 0;
	p->req_len = 0;
	*deadline_ms = 0;
	while ((it = p->head) != NULL && p->n_flight < CAS_BATCH_MAX_ITEMS &&
	       p->req_len + 4 + it->len <= CAS_BATCH_MAX_BYTES) {
		p->head = it->next;
		it->next = NULL;
		if (it->seq != it->ch->bseq) {
			free(it);
			continue;
		}
		need = p->req_len + 4 + it->len;
		if (need > p->req_cap) {
			q = realloc(p->req, need * 2);
			if (q == NULL) {
				/* Left waiting: the next round tries again. */
				it->next = p->head;
				p->head = it;
				break;
			}
			p->req = q;
			p->req_cap = need * 2;
		}
		cas_put_le32(p->req + p->req_len, (uint32_t)it->len);
		memcpy(p->req + p->req_len + 4, it->data, it->len);
		p->req_len = need;
		if (it->deadline_ms > *deadline_ms)
			*deadline_ms = it->deadline_ms;
		*last = it;
		last = &it->next;
		p->n_flight++;
	}
	if (p->head == NULL)
		p->tail = &p->head;
	p->busy = p->n_flight > 0;
	return p->busy;
}

/* Fills a with node's answer to one item of a batch, from its entry
 * (status, bytes) or, when entry is NULL, from code and why. */
static void batch_answer(struct cas_transport *t, size_t node, int status,
			 const unsigned char *data, size_t len, int code, const char *why,
			 struct cas_transport_answer *a)
{
	const char *url = t->urls[node];
	char reason[160];
	int rc;

	memset(a, 0, sizeof(*a));
	a->node = node;
	if (why != NULL) {
		a->code = code;
		cas_errmsg_set(a->errmsg, sizeof(a->errmsg), "%s: %s", url, why);
		return;
	}
	switch (status) {
	case CAS_BATCH_OK:
		reason[0] = '\0';
		rc = cas_codec_bin_decode_reply(data, len, t->max_value, &a->msg, reason,
						sizeof(reason));
		a->code = rc;
		if (rc != CAS_OK && rc != CAS_ETOOBIG && rc != CAS_ENOMEM)
			a->code = CAS_EPROTO;
		if (rc != CAS_OK)
			cas_errmsg_set(a->errmsg, sizeof(a->errmsg), "%s: bad reply: %s", url,
				       reason);
		return;
	case CAS_BATCH_TOO_BIG:
		a->code = CAS_ETOOBIG;
		break;
	case CAS_BATCH_BAD:
	case CAS_BATCH_FAILED:
		a->code = CAS_EIO;
		break;
	default:
		a->code = CAS_EPROTO;
		break;
	}
	cas_errmsg_set(a->errmsg, sizeof(a->errmsg), "%s: batch item refused: %.*s", url,
		       (int)(len < 160 ? len : 160), (const char *)data);
}

/* The batch to node ended with result: turns it into one answer per item
 * and hands each to its channel, waking the channel. */
static void finish_batch(struct cas_transport *t, size_t node, CURLcode result)
{
	struct pipe *p = &t->pipes[node];
	struct banswer *answers = NULL, **tail = &answers, *ba, *next;
	const unsigned char *q = p->resp, *end = p->resp + p->resp_len;
	const char *why = NULL;
	char whybuf[200];
	struct bitem *it;
	bool refused = false;
	long status = 0;
	int code = CAS_EIO;
	uint32_t len;

	curl_multi_remove_handle(t->io_multi, p->easy);
	if (result != CURLE_OK) {
		why = whybuf;
		if (p->resp_overflow) {
			code = CAS_ETOOBIG;
			snprintf(whybuf, sizeof(whybuf),
				 "batch reply larger than this client takes");
		} else {
			cas_errmsg_set(whybuf, sizeof(whybuf), "%s",
				       p->errbuf[0] ? p->errbuf : curl_easy_strerror(result));
		}
	} else {
		curl_easy_getinfo(p->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status != 200) {
			/* A node without batches (404, 405, 415) is asked
			 * request by request from now on. */
			refused = status == 404 || status == 405 || status == 415;
			why = whybuf;
			snprintf(whybuf, sizeof(whybuf), "HTTP %ld to a batch", status);
		}
	}
	for (it = p->flight; it; it = it->next) {
		ba = malloc(sizeof(*ba));
		if (ba == NULL)
			break; /* the channel times out waiting instead */
		ba->next = NULL;
		if (why != NULL || end - q < 5 || (size_t)(end - q - 5) < cas_get_le32(q + 1)) {
			batch_answer(t, node, 0, NULL, 0, why ? code : CAS_EPROTO,
				     why ? why : "malformed batch reply", &ba->a);
		} else {
			len = cas_get_le32(q + 1);
			batch_answer(t, node, q[0], q + 5, len, 0, NULL, &ba->a);
			q += 5 + len;
		}
		*tail = ba;
		tail = &ba->next;
	}

	pthread_mutex_lock(&t->block);
	if (refused)
		p->refused = true;
	ba = answers;
	for (it = p->flight; it && ba; it = it->next, ba = next) {
		next = ba->next;
		ba->next = NULL;
		if (it->seq != it->ch->bseq) {
			cas_transport_answer_clear(&ba->a);
			free(ba);
			continue;
		}
		*it->ch->bans_tail = ba;
		it->ch->bans_tail = &ba->next;
		it->ch->bpending--;
		/* The channel may be waiting in curl_multi_poll. */
		curl_multi_wakeup(it->ch->multi);
	}
	for (; ba; ba = next) { /* answers of items left without one (no memory) */
		next = ba->next;
		cas_transport_answer_clear(&ba->a);
		free(ba);
	}
	p->busy = false;
	pthread_mutex_unlock(&t->block);
	free_items(p->flight);
	p->flight = NULL;
	p->n_flight = 0;
}

/* Starts the batch laid out in node's pipe. */
static void start_batch(struct cas_transport *t, size_t node, uint64_t deadline_ms)
{
	struct pipe *p = &t->pipes[node];
	uint64_t now = cas_transport_now_ms(), left = deadline_ms > now ? deadline_ms - now : 1;

	if (left > LONG_MAX)
		left = LONG_MAX;
	p->resp_len = 0;
	p->resp_overflow = false;
	p->errbuf[0] = '\0';
	p->resp_max = p->n_flight * (5 + t->max_value + REPLY_SLACK);
	curl_easy_setopt(p->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)p->req_len);
	curl_easy_setopt(p->easy, CURLOPT_POSTFIELDS, (char *)p->req);
	curl_easy_setopt(p->easy, CURLOPT_TIMEOUT_MS, (long)left);
	curl_easy_setopt(p->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)left);
	if (curl_multi_add_handle(t->io_multi, p->easy) != CURLM_OK)
		finish_batch(t, node, CURLE_OUT_OF_MEMORY);
}

/* The I/O thread: sends each node's waiting requests as one batch as soon
 * as the node has none in flight, and hands out the answers. */
static void *io_main(void *arg)
{
	struct cas_transport *t = arg;
	uint64_t deadline[CAS_NODES_MAX];
	bool start[CAS_NODES_MAX], finished;
	struct pipe *p;
	CURLMsg *m;
	int running, left;

	for (;;) {
		pthread_mutex_lock(&t->block);
		if (t->io_stop) {
			pthread_mutex_unlock(&t->block);
			break;
		}
		for (size_t i = 0; i < t->n; i++) {
			p = &t->pipes[i];
			start[i] = !p->busy && p->head != NULL && take_batch(t, i, &deadline[i]);
		}
		pthread_mutex_unlock(&t->block);
		for (size_t i = 0; i < t->n; i++)
			if (start[i])
				start_batch(t, i, deadline[i]);
		curl_multi_perform(t->io_multi, &running);
		finished = false;
		while ((m = curl_multi_info_read(t->io_multi, &left)) != NULL) {
			size_t node = 0;
			char *priv = NULL;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
			node = (size_t)(priv - (char *)t->pipes) / sizeof(struct pipe);
			finish_batch(t, node, m->data.result);
			finished = true;
		}
		/* After a batch ended, what waited behind it goes at once. */
		if (!finished)
			curl_multi_poll(t->io_multi, NULL, 0, 1000, NULL);
	}
	return NULL;
}

/* Starts the I/O thread and the pipes' handles. Called with t->block
 * held. Returns false when it cannot (then requests go on their own). */
static bool io_start(struct cas_transport *t)
{
	struct pipe *p;
	size_t i;

	if (t->io_running)
		return true;
	t->io_multi = curl_multi_init();
	if (t->io_multi == NULL)
		return false;
	for (i = 0; i < t->n; i++) {
		p = &t->pipes[i];
		p->easy = curl_easy_init();
		if (p->easy == NULL)
			goto out_cleanup;
		curl_easy_setopt(p->easy, CURLOPT_PRIVATE, (char *)p);
		curl_easy_setopt(p->easy, CURLOPT_URL, t->batch_urls[i]);
		curl_easy_setopt(p->easy, CURLOPT_WRITEFUNCTION, on_batch_data);
		curl_easy_setopt(p->easy, CURLOPT_WRITEDATA, p);
		curl_easy_setopt(p->easy, CURLOPT_ERRORBUFFER, p->errbuf);
		curl_easy_setopt(p->easy, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(p->easy, CURLOPT_TCP_NODELAY, 1L);
		curl_easy_setopt(p->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
		curl_easy_setopt(p->easy, CURLOPT_PROXY, "");
		curl_easy_setopt(p->easy, CURLOPT_HTTPHEADER, t->headers);
	}
	if (pthread_create(&t->io, NULL, io_main, t) != 0)
		goto out_cleanup;
	t->io_running = true;
	return true;

out_cleanup:
	for (i = 0; i < t->n; i++) {
		curl_easy_cleanup(t->pipes[i].easy);
		t->pipes[i].easy = NULL;
	}
	curl_multi_cleanup(t->io_multi);
	t->io_multi = NULL;
	return false;
}

/* Stops the I/O thread; what waits or flies is dropped. No channel may
 * be checked out. */
static void io_shutdown(struct cas_transport *t)
{
	struct pipe *p;

	pthread_mutex_lock(&t->block);
	if (!t->io_running) {
		pthread_mutex_unlock(&t->block);
		return;
	}
	t->io_stop = true;
	pthread_mutex_unlock(&t->block);
	curl_multi_wakeup(t->io_multi);
	pthread_join(t->io, NULL);
	for (size_t i = 0; i < t->n; i++) {
		p = &t->pipes[i];
		if (p->busy)
			curl_multi_remove_handle(t->io_multi, p->easy);
		curl_easy_cleanup(p->easy);
		free_items(p->flight);
		free_items(p->head);
		free(p->req);
		free(p->resp);
	}
	curl_multi_cleanup(t->io_multi);
	t->io_running = false;
}

/* Whether ch already has XFERS_PER_NODE_MAX transfers of earlier sends
 * running to node: a node that lags that far behind the others. */
static bool backlogged(const struct cas_channel *ch, size_t node)
{
	size_t busy = 0;

	for (size_t i = 0; i < ch->n_xfers; i++)
		busy += ch->xfers[i]->node == node && ch->xfers[i]->busy;
	return busy >= XFERS_PER_NODE_MAX;
}

/* Queues the request bin, as part of ch's current send, in the pipe of
 * every node that takes batches and that batching is for: every node
 * while BATCH_MIN_ACTIVE channels are out, and otherwise a node ch is
 * backlogged on (whose oldest transfer would else be abandoned, and its
 * connection with it, at every send: the pipe keeps one connection and
 * sends what piled up together). direct[i] says which nodes are left for
 * the caller to ask on their own: all of them for requests over
 * BATCH_ITEM_MAX or without memory. */
static void send_batched(struct cas_channel *ch, const unsigned char *bin, size_t len,
			 uint64_t deadline_ms, bool *direct)
{
	struct cas_transport *t = ch->t;
	struct bitem *items[CAS_NODES_MAX] = {0};
	bool want[CAS_NODES_MAX], any = false, all, wake = false;
	size_t i;

	for (i = 0; i < t->n; i++)
		direct[i] = true;
	if (len > BATCH_ITEM_MAX)
		return;
	pthread_mutex_lock(&t->block);
	all = t->active >= BATCH_MIN_ACTIVE;
	pthread_mutex_unlock(&t->block);
	for (i = 0; i < t->n; i++) {
		want[i] = all || backlogged(ch, i);
		any |= want[i];
	}
	if (!any)
		return;
	for (i = 0; i < t->n; i++) {
		if (!want[i])
			continue;
		items[i] = malloc(sizeof(*items[i]) + len);
		if (items[i] == NULL)
			goto out_free;
		items[i]->next = NULL;
		items[i]->ch = ch;
		items[i]->deadline_ms = deadline_ms;
		items[i]->len = len;
		memcpy(items[i]->data, bin, len);
	}
	pthread_mutex_lock(&t->block);
	if (io_start(t)) {
		for (i = 0; i < t->n; i++) {
			struct pipe *p = &t->pipes[i];

			if (items[i] == NULL || p->refused)
				continue;
			items[i]->seq = ch->bseq;
			*p->tail = items[i];
			p->tail = &items[i]->next;
			items[i] = NULL;
			ch->bpending++;
			direct[i] = false;
			wake |= !p->busy;
		}
	}
	pthread_mutex_unlock(&t->block);
	if (wake)
		curl_multi_wakeup(t->io_multi);
out_free:
	for (i = 0; i < t->n; i++)
		free(items[i]);
}

/* Forgets the batch answers to ch's earlier sends: a new send begins. */
static void new_batch_send(struct cas_channel *ch)
{
	pthread_mutex_lock(&ch->t->block);
	ch->bseq++;
	drop_answers(ch);
	pthread_mutex_unlock(&ch->t->block);
}

int cas_transport_send(struct cas_channel *ch, const struct cas_msg *m, uint64_t deadline_ms,
		       char *errmsg, size_t errmsg_len)
{
	struct cas_transport *t = ch->t;
	char **urls;
	unsigned char *bin;
	size_t len;
	struct body *b;
	struct xfer *xs[CAS_NODES_MAX];
	bool direct[CAS_NODES_MAX];
	uint64_t now, left;
	CURLMcode mc;
	int running, rc;

	if (m->type == CAS_MSG_PREPARE) {
		urls = t->prepare_urls;
	} else if (m->type == CAS_MSG_ACCEPT) {
		urls = t->accept_urls;
	} else if (m->type == CAS_MSG_QUERY) {
		urls = t->query_urls;
	} else {
		cas_errmsg_set(errmsg, errmsg_len, "message type %d is no request", (int)m->type);
		return CAS_EINVAL;
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
	harvest(ch);
	new_batch_send(ch);

	/* While other channels are busy too, the request goes to each node
	 * in that node's next batch; otherwise (and to nodes that take no
	 * batches) on a transfer of its own. */
	send_batched(ch, (const unsigned char *)b->data, b->len, deadline_ms, direct);
	for (size_t i = 0; i < t->n; i++) {
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
	for (size_t i = 0; i < t->n; i++) {
		struct xfer *x = xs[i];

		if (x == NULL)
			continue;
		x->seq = ch->seq;
		x->resp_len = 0;
		x->resp_overflow = false;
		x->result = CURLE_OK;
		x->errbuf[0] = '\0';
		curl_easy_setopt(x->easy, CURLOPT_URL, urls[i]);
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
	for (size_t i = 0; i < t->n; i++)
		if (xs[i] != NULL && xs[i]->seq == ch->seq)
			xfer_stop(xs[i]);
	new_batch_send(ch);
	free(b);
	return CAS_EIO;
out_free_body:
	new_batch_send(ch);
	free(b);
	cas_errmsg_set(errmsg, errmsg_len, "out of memory for a transfer");
	return CAS_ENOMEM;
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

/* The first busy transfer of the current send, or NULL. */
static struct xfer *first_pending(struct cas_channel *ch)
{
	for (size_t i = 0; i < ch->n_xfers; i++)
		if (ch->xfers[i]->busy && ch->xfers[i]->seq == ch->seq)
			return ch->xfers[i];
	return NULL;
}

static int poll_ms(uint64_t now, uint64_t until)
{
	uint64_t d = until > now ? until - now : 0;

	return d > INT_MAX ? INT_MAX : (int)d;
}

enum cas_transport_event cas_transport_next(struct cas_channel *ch, uint64_t until_ms,
					    struct cas_transport_answer *a)
{
	struct banswer *ba;
	size_t bpending;
	CURLMcode mc;
	struct xfer *x;
	uint64_t now;
	int running;

	memset(a, 0, sizeof(*a));
	for (;;) {
		pthread_mutex_lock(&ch->t->block);
		ba = ch->bans;
		if (ba != NULL) {
			ch->bans = ba->next;
			if (ch->bans == NULL)
				ch->bans_tail = &ch->bans;
		}
		bpending = ch->bpending;
		pthread_mutex_unlock(&ch->t->block);
		if (ba != NULL) {
			*a = ba->a;
			free(ba);
			return CAS_TRANSPORT_ANSWER;
		}
		x = harvest(ch);
		if (x != NULL) {
			answer_from(x, a);
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
			x = first_pending(ch);
			if (x == NULL) {
				/* Only batch answers to wait for. */
				struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};

				nanosleep(&ts, NULL);
				continue;
			}
			a->node = x->node;
			a->code = CAS_EIO;
			cas_errmsg_set(a->errmsg, sizeof(a->errmsg), "libcurl: %s",
				       curl_multi_strerror(mc));
			xfer_stop(x);
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
	new_batch_send(ch);
	for (;;) {
		harvest(ch);
		now = cas_transport_now_ms();
		if (now >= until_ms)
			return;
		if (curl_multi_poll(ch->multi, NULL, 0, poll_ms(now, until_ms), NULL) != CURLM_OK) {
			struct timespec ts = {.tv_sec = 0, .tv_nsec = 1000000};

			nanosleep(&ts, NULL);
		}
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

	if (node >= t->n) {
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

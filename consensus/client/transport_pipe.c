/* transport_pipe.c - the nodes' batch pipes (batch.h): one POST /v1/batch
 * in flight per node, sent and answered on the transport's I/O thread,
 * which hands each item's answer to its channel (transport_int.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "auth.h"
#include "batch.h"
#include "codec_bin.h"
#include "errmsg.h"
#include "transport_int.h"

void cas_pipe_drop_answers(struct cas_channel *ch)
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
	struct bitem *it, **last = &p->flight, **pp = &p->head;

	p->flight = NULL;
	p->n_flight = 0;
	p->req_len = 0;
	p->hdrs = NULL;
	*deadline_ms = 0;
	/* One batch, one identity: items of another wait for the next. */
	while ((it = *pp) != NULL && p->n_flight < CAS_BATCH_MAX_ITEMS &&
	       p->req_len + CAS_BATCH_ITEM_HEAD + it->len <= CAS_BATCH_MAX_BYTES) {
		if (it->seq != it->ch->bseq) {
			*pp = it->next;
			free(it);
			continue;
		}
		if (p->hdrs != NULL && it->hdrs != p->hdrs) {
			pp = &it->next;
			continue;
		}
		if (cas_batch_append(&p->req, &p->req_len, &p->req_cap, it->data, it->len) !=
		    CAS_OK)
			break; /* left waiting: the next round tries again */
		*pp = it->next;
		it->next = NULL;
		p->hdrs = it->hdrs;
		if (it->deadline_ms > *deadline_ms)
			*deadline_ms = it->deadline_ms;
		*last = it;
		last = &it->next;
		p->n_flight++;
	}
	p->tail = &p->head;
	while (*p->tail != NULL)
		p->tail = &(*p->tail)->next;
	p->busy = p->n_flight > 0;
	return p->busy;
}

/* Fills a with node's answer to one item of a batch, from its entry
 * (status, bytes) or, when entry is NULL, from code and why. */
static void batch_answer(struct cas_transport *t, size_t node, const struct cas_batch_entry *entry,
			 int code, const char *why, enum cas_refusal refusal, uint64_t epoch,
			 struct cas_transport_answer *a)
{
	const char *url = t->urls[node];
	char reason[160];
	int rc;

	memset(a, 0, sizeof(*a));
	a->node = node;
	if (entry == NULL) {
		a->code = code;
		a->refusal = refusal;
		a->epoch = epoch;
		cas_errmsg_set(a->errmsg, sizeof(a->errmsg), "%s: %s", url, why);
		return;
	}
	switch (entry->status) {
	case CAS_BATCH_OK:
		reason[0] = '\0';
		rc = cas_codec_bin_decode_reply(entry->data, entry->len, t->max_value, &a->msg,
						reason, sizeof(reason));
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
		       (int)(entry->len < 160 ? entry->len : 160), (const char *)entry->data);
}

/* The batch to node ended with result: turns it into one answer per item
 * and hands each to its channel, waking the channel. */
static void finish_batch(struct cas_transport *t, size_t node, CURLcode result)
{
	struct pipe *p = &t->pipes[node];
	struct banswer *answers = NULL, **tail = &answers, *ba, *next;
	struct cas_batch_entry entry;
	const char *why = NULL;
	char whybuf[200];
	struct bitem *it;
	enum cas_refusal refusal = CAS_REFUSAL_NONE;
	uint64_t epoch = 0;
	bool refused = false;
	long status = 0;
	int code = CAS_EIO;
	size_t off = 0;

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
			refusal = cas_transport_refusal(status, (const char *)p->resp, p->resp_len,
							&epoch);
			why = whybuf;
			snprintf(whybuf, sizeof(whybuf), "HTTP %ld to a batch: %.*s", status,
				 (int)(p->resp_len < 120 ? p->resp_len : 120),
				 p->resp ? (const char *)p->resp : "");
		}
	}
	for (it = p->flight; it; it = it->next) {
		ba = malloc(sizeof(*ba));
		if (ba == NULL)
			break; /* the channel times out waiting instead */
		ba->next = NULL;
		if (why != NULL)
			batch_answer(t, node, NULL, code, why, refusal, epoch, &ba->a);
		else if (cas_batch_read_entry(p->resp, p->resp_len, &off, &entry) != CAS_OK)
			batch_answer(t, node, NULL, CAS_EPROTO, "malformed batch reply",
				     CAS_REFUSAL_NONE, 0, &ba->a);
		else
			batch_answer(t, node, &entry, 0, NULL, CAS_REFUSAL_NONE, 0, &ba->a);
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

/* Makes node's batch handle; false without memory. I/O thread only. */
static bool pipe_easy(struct cas_transport *t, size_t node)
{
	struct pipe *p = &t->pipes[node];

	p->easy = curl_easy_init();
	if (p->easy == NULL)
		return false;
	curl_easy_setopt(p->easy, CURLOPT_PRIVATE, (char *)p);
	curl_easy_setopt(p->easy, CURLOPT_URL, t->batch_urls[node]);
	curl_easy_setopt(p->easy, CURLOPT_WRITEFUNCTION, on_batch_data);
	curl_easy_setopt(p->easy, CURLOPT_WRITEDATA, p);
	curl_easy_setopt(p->easy, CURLOPT_ERRORBUFFER, p->errbuf);
	curl_easy_setopt(p->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(p->easy, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(p->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(p->easy, CURLOPT_PROXY, "");
	cas_auth_apply(t->auth, p->easy);
	return true;
}

/* Starts the batch laid out in node's pipe. */
static void start_batch(struct cas_transport *t, size_t node, uint64_t deadline_ms)
{
	struct pipe *p = &t->pipes[node];
	uint64_t now = cas_transport_now_ms(), left = deadline_ms > now ? deadline_ms - now : 1;

	if (left > LONG_MAX)
		left = LONG_MAX;
	if (p->easy == NULL && !pipe_easy(t, node)) {
		finish_batch(t, node, CURLE_OUT_OF_MEMORY);
		return;
	}
	curl_easy_setopt(p->easy, CURLOPT_HTTPHEADER, p->hdrs);
	p->resp_len = 0;
	p->resp_overflow = false;
	p->errbuf[0] = '\0';
	p->resp_max = p->n_flight * (CAS_BATCH_ENTRY_HEAD + t->max_value + REPLY_SLACK);
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
	size_t n;

	for (;;) {
		n = cas_transport_nodes(t);
		pthread_mutex_lock(&t->block);
		if (t->io_stop) {
			pthread_mutex_unlock(&t->block);
			break;
		}
		for (size_t i = 0; i < n; i++) {
			p = &t->pipes[i];
			start[i] = !p->busy && p->head != NULL && take_batch(t, i, &deadline[i]);
		}
		pthread_mutex_unlock(&t->block);
		for (size_t i = 0; i < n; i++)
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

/* Starts the I/O thread; the pipes' handles are made as they are first
 * used. Called with t->block held. Returns false when it cannot (then
 * requests go on their own). */
static bool io_start(struct cas_transport *t)
{
	if (t->io_running)
		return true;
	t->io_multi = curl_multi_init();
	if (t->io_multi == NULL)
		return false;
	if (pthread_create(&t->io, NULL, io_main, t) != 0) {
		curl_multi_cleanup(t->io_multi);
		t->io_multi = NULL;
		return false;
	}
	t->io_running = true;
	return true;
}

void cas_pipe_shutdown(struct cas_transport *t)
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
	for (size_t i = 0; i < CAS_NODES_MAX; i++) {
		p = &t->pipes[i];
		if (p->busy && p->easy != NULL)
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

void cas_pipe_send(struct cas_channel *ch, const unsigned char *bin, size_t len,
		   struct curl_slist *hdrs, uint64_t mask, uint64_t deadline_ms, bool *direct)
{
	struct cas_transport *t = ch->t;
	struct bitem *items[CAS_NODES_MAX] = {0};
	bool want[CAS_NODES_MAX], any = false, all, wake = false;
	size_t i, n = cas_transport_nodes(t);

	for (i = 0; i < CAS_NODES_MAX; i++)
		direct[i] = i < n && (mask >> i & 1);
	if (len > BATCH_ITEM_MAX)
		return;
	pthread_mutex_lock(&t->block);
	all = t->active >= BATCH_MIN_ACTIVE;
	pthread_mutex_unlock(&t->block);
	for (i = 0; i < n; i++) {
		want[i] = direct[i] && (all || cas_direct_backlogged(ch, i));
		any |= want[i];
	}
	if (!any)
		return;
	for (i = 0; i < n; i++) {
		if (!want[i])
			continue;
		items[i] = malloc(sizeof(*items[i]) + len);
		if (items[i] == NULL)
			goto out_free;
		items[i]->next = NULL;
		items[i]->ch = ch;
		items[i]->deadline_ms = deadline_ms;
		items[i]->hdrs = hdrs;
		items[i]->len = len;
		memcpy(items[i]->data, bin, len);
	}
	pthread_mutex_lock(&t->block);
	if (io_start(t)) {
		for (i = 0; i < n; i++) {
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
	for (i = 0; i < n; i++)
		free(items[i]);
}

void cas_pipe_new_send(struct cas_channel *ch)
{
	pthread_mutex_lock(&ch->t->block);
	ch->bseq++;
	cas_pipe_drop_answers(ch);
	pthread_mutex_unlock(&ch->t->block);
}

bool cas_pipe_take_answer(struct cas_channel *ch, struct cas_transport_answer *a, size_t *bpending)
{
	struct banswer *ba;

	pthread_mutex_lock(&ch->t->block);
	ba = ch->bans;
	if (ba != NULL) {
		ch->bans = ba->next;
		if (ch->bans == NULL)
			ch->bans_tail = &ch->bans;
	}
	*bpending = ch->bpending;
	pthread_mutex_unlock(&ch->t->block);
	if (ba == NULL)
		return false;
	*a = ba->a;
	free(ba);
	return true;
}

/* follow.c - the client learns its cluster's configuration from the nodes
 * (GET /v1/config), lazily at its first operation, and follows it when a
 * node says the client's epoch is stale (PROTOCOL.md, "Cluster identity
 * and membership"). It maps the configuration's nodes to the transport's
 * node indexes by node id, so that a node reached through a seed URL (a
 * proxy, another name) keeps that URL. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cas/os.h>

#include "auth.h"
#include "client_int.h"
#include "config.h"
#include "errmsg.h"

/* How long learning waits for the nodes that have not answered once a
 * majority of them did. */
#define FETCH_MS_MAX 1000u

/* One node's answer. Written by its fetch's thread, under the fetch_wait's
 * lock, until learning stops waiting; read by learning after that. */
struct fetch {
	const char *url;
	bool asked; /* the node answered (rc), in time */
	int rc;
	enum cas_node_state state;
	struct cas_cluster_config cfg;
	uint64_t id;
	char errmsg[200];
};

/* The answers of one fetch_range, shared with its threads; the last one
 * to leave frees it. A thread that answers after fetch_range stopped
 * waiting (abandoned) drops its answer. */
struct fetch_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* on CLOCK_MONOTONIC: an answer came */
	size_t answered;
	bool abandoned;
	unsigned refs; /* fetch_range and each thread still running */
};

/* A fetch's own: it may outlive the client (abandoned, it ends by its
 * deadline), so it holds a copy of the URL and a reference to the auth. */
struct fetch_job {
	struct fetch_wait *w;
	struct fetch *slot;
	char *url;
	struct cas_auth *auth;
	unsigned timeout_ms;
};

void cas_client_set_error(struct cas_client *c, const char *fmt, ...)
{
	char buf[sizeof(c->errmsg)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&c->cfg_lock);
	cas_errmsg_set(c->errmsg, sizeof(c->errmsg), "%s", buf);
	pthread_mutex_unlock(&c->cfg_lock);
}

/* Drops a reference to w, whose lock the caller holds (and which this
 * releases). */
static void wait_put(struct fetch_wait *w)
{
	bool last = --w->refs == 0;

	pthread_mutex_unlock(&w->lock);
	if (last) {
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->lock);
		free(w);
	}
}

static void *fetch_main(void *arg)
{
	struct fetch_job *j = arg;
	struct fetch r = {0};

	r.rc = cas_admin_get_config(j->url, j->auth, j->timeout_ms, &r.state, &r.cfg, &r.id,
				    r.errmsg, sizeof(r.errmsg));
	pthread_mutex_lock(&j->w->lock);
	if (!j->w->abandoned) {
		r.url = j->slot->url;
		r.asked = true;
		*j->slot = r; /* the slot takes r.cfg */
		j->w->answered++;
		pthread_cond_broadcast(&j->w->cond);
	} else {
		cas_cluster_config_clear(&r.cfg);
	}
	wait_put(j->w);
	cas_auth_free(j->auth);
	free(j->url);
	free(j);
	return NULL;
}

/* Starts the fetch of slot f on a thread of its own, *t, and returns
 * true; false when it ran in this thread (none could be made). Counted in
 * w. */
static bool fetch_start(struct cas_client *c, struct fetch_wait *w, struct fetch *f,
			unsigned timeout_ms, pthread_t *t)
{
	struct fetch_job *j = malloc(sizeof(*j));

	snprintf(f->errmsg, sizeof(f->errmsg), "node %s did not answer in time", f->url);
	if (j != NULL && (j->url = strdup(f->url)) == NULL) {
		free(j);
		j = NULL;
	}
	if (j == NULL) {
		f->rc = CAS_ENOMEM;
		f->asked = true;
		pthread_mutex_lock(&w->lock);
		w->answered++;
		pthread_mutex_unlock(&w->lock);
		return false;
	}
	j->w = w;
	j->slot = f;
	j->auth = cas_auth_ref(c->auth);
	j->timeout_ms = timeout_ms;
	pthread_mutex_lock(&w->lock);
	w->refs++;
	pthread_mutex_unlock(&w->lock);
	if (pthread_create(t, NULL, fetch_main, j) == 0)
		return true;
	fetch_main(j);
	return false;
}

/* Asks transport nodes from..to-1 for their configuration, in parallel,
 * until deadline_ms. Stops waiting when every node answered, at the
 * deadline, or once a majority of them answered and FETCH_MS_MAX has
 * passed: a node that stopped (SIGSTOP, a dead link) costs every learner
 * that second, not its whole deadline, and slow answers (TLS handshakes
 * on a loaded machine) are waited for while fewer than a majority came.
 * The nodes that did not answer read as not asked. */
static void fetch_range(struct cas_client *c, struct fetch *fs, size_t from, size_t to,
			uint64_t deadline_ms)
{
	uint64_t start = cas_os_monotonic_ms(), now, until;
	unsigned ms = deadline_ms > start ? (unsigned)(deadline_ms - start) : 1;
	size_t need = (to - from) / 2 + 1;
	struct fetch_wait *w;
	pthread_condattr_t attr;
	struct timespec ts;
	pthread_t threads[CAS_NODES_MAX];
	bool started[CAS_NODES_MAX], in_time[CAS_NODES_MAX];

	if (from >= to)
		return;
	w = calloc(1, sizeof(*w));
	if (w == NULL || pthread_mutex_init(&w->lock, NULL) != 0) {
		free(w);
		for (size_t i = from; i < to; i++)
			fs[i].rc = CAS_ENOMEM, fs[i].asked = true;
		return;
	}
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (pthread_cond_init(&w->cond, &attr) != 0) {
		pthread_condattr_destroy(&attr);
		pthread_mutex_destroy(&w->lock);
		free(w);
		for (size_t i = from; i < to; i++)
			fs[i].rc = CAS_ENOMEM, fs[i].asked = true;
		return;
	}
	pthread_condattr_destroy(&attr);
	w->refs = 1;
	for (size_t i = from; i < to; i++) {
		fs[i].url = cas_transport_url(c->transport, i);
		started[i] = fetch_start(c, w, &fs[i], ms, &threads[i]);
	}
	pthread_mutex_lock(&w->lock);
	for (;;) {
		now = cas_os_monotonic_ms();
		if (w->answered == to - from || now >= deadline_ms ||
		    (w->answered >= need && now >= start + FETCH_MS_MAX))
			break;
		until = w->answered >= need && start + FETCH_MS_MAX < deadline_ms
				? start + FETCH_MS_MAX
				: deadline_ms;
		ts.tv_sec = (time_t)(until / 1000);
		ts.tv_nsec = (long)(until % 1000) * 1000000L;
		pthread_cond_clockwait(&w->cond, &w->lock, CLOCK_MONOTONIC, &ts);
	}
	w->abandoned = true;
	for (size_t i = from; i < to; i++)
		in_time[i] = fs[i].asked;
	wait_put(w);
	/* Those that answered are ending: joined, so that what their
	 * libraries keep per thread goes with them. The others go on alone
	 * until their deadline. */
	for (size_t i = from; i < to; i++) {
		if (started[i] && in_time[i])
			pthread_join(threads[i], NULL);
		else if (started[i])
			pthread_detach(threads[i]);
	}
}

static void fetch_free(struct fetch *fs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cas_cluster_config_clear(&fs[i].cfg);
	free(fs);
}

static bool ready(const struct fetch *f)
{
	return f->asked && f->rc == CAS_OK && f->state == CAS_NODE_READY;
}

/* The initial choice, from the seeds' answers: one cluster, answered by a
 * majority of the seeds; its newest configuration. */
static int choose_first(struct cas_client *c, struct fetch *fs, size_t n,
			const struct cas_cluster_config **out)
{
	const struct fetch *first = NULL, *best = NULL;
	size_t ok = 0, uninit = 0, down = 0;
	char why[sizeof(c->errmsg)] = "";

	for (size_t i = 0; i < n; i++) {
		if (fs[i].rc == CAS_ENOMEM)
			return CAS_ENOMEM;
		if (!ready(&fs[i])) {
			if (fs[i].state == CAS_NODE_UNINITIALIZED)
				uninit++;
			else
				down++;
			if (why[0] == '\0' || fs[i].state == CAS_NODE_UNINITIALIZED)
				snprintf(why, sizeof(why), "%s", fs[i].errmsg);
			continue;
		}
		if (first == NULL)
			first = &fs[i];
		if (strcmp(fs[i].cfg.cluster, first->cfg.cluster) != 0) {
			cas_client_set_error(c, "node %s belongs to cluster %s, not %s", fs[i].url,
					     fs[i].cfg.cluster, first->cfg.cluster);
			return CAS_EINVAL;
		}
		ok++;
		if (best == NULL || fs[i].cfg.epoch > best->cfg.epoch)
			best = &fs[i];
	}
	if (ok == 0 && uninit > 0 && down == 0) {
		cas_client_set_error(c, "cluster not initialized (casctl init)");
		return CAS_EINVAL;
	}
	if (ok < n / 2 + 1) {
		if (ok == 0 && uninit > 0)
			cas_client_set_error(c, "cluster not initialized (casctl init): %s", why);
		else
			cas_client_set_error(c, "%zu of %zu nodes answered with the cluster: %s",
					     ok, n, why);
		return CAS_EUNAVAILABLE;
	}
	*out = &best->cfg;
	return CAS_OK;
}

/* A reload's choice: the newest configuration of c's cluster that any
 * node holds, or NULL. */
static const struct cas_cluster_config *choose_newest(struct cas_client *c, struct fetch *fs,
						      size_t n)
{
	const struct cas_cluster_config *best = NULL;

	for (size_t i = 0; i < n; i++)
		if (ready(&fs[i]) && strcmp(fs[i].cfg.cluster, c->view.cluster) == 0 &&
		    (best == NULL || fs[i].cfg.epoch > best->epoch))
			best = &fs[i].cfg;
	return best;
}

/* Every node of cfg, O first, each once. */
static size_t cfg_nodes(const struct cas_cluster_config *cfg, const struct cas_cluster_node **out)
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->n_members; i++)
		out[n++] = &cfg->members[i];
	for (size_t i = 0; i < cfg->n_joining; i++) {
		bool seen = false;

		for (size_t j = 0; j < cfg->n_members; j++)
			seen |= cfg->members[j].id == cfg->joining[i].id;
		if (!seen && n < 2 * CAS_NODES_MAX)
			out[n++] = &cfg->joining[i];
	}
	return n;
}

/* The transport index answering as node id in this round, else the one
 * c already maps to id, else SIZE_MAX. */
static size_t slot_of(const struct cas_client *c, const struct fetch *fs, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (ready(&fs[i]) && fs[i].id == id)
			return i;
	for (size_t i = 0; i < n; i++)
		if (c->ids[i] == id)
			return i;
	return SIZE_MAX;
}

/* Adds a transport node for every node of cfg that no index stands for,
 * at its URL: *n grows. */
static int add_slots(struct cas_client *c, const struct cas_cluster_config *cfg,
		     const struct fetch *fs, size_t *n)
{
	const struct cas_cluster_node *nodes[2 * CAS_NODES_MAX];
	size_t k = cfg_nodes(cfg, nodes), idx;
	int rc;

	for (size_t j = 0; j < k; j++) {
		bool have_url = false;

		if (slot_of(c, fs, *n, nodes[j]->id) != SIZE_MAX)
			continue;
		for (size_t i = 0; i < *n; i++)
			have_url |=
				strcmp(cas_transport_url(c->transport, i), nodes[j]->url) == 0 &&
				c->ids[i] == 0 && !ready(&fs[i]);
		if (have_url)
			continue;
		rc = cas_transport_add(c->transport, nodes[j]->url, &idx);
		if (rc != CAS_OK) {
			cas_client_set_error(c, "%s",
					     rc == CAS_ENOMEM ? "out of memory"
							      : "more than 64 nodes over "
								"this client's life");
			return rc;
		}
		*n = idx + 1;
	}
	return CAS_OK;
}

/* Makes cfg c's configuration and computes its view, from the answers of
 * this round fs[0..n) (every transport node). Called with cfg_lock. */
static int adopt(struct cas_client *c, const struct cas_cluster_config *cfg, const struct fetch *fs,
		 size_t n)
{
	const struct cas_cluster_node *nodes[2 * CAS_NODES_MAX];
	struct cas_cluster_config copy;
	struct cas_view v = {0};
	size_t k, idx;

	if (cas_cluster_config_copy(&copy, cfg) != CAS_OK)
		return CAS_ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (ready(&fs[i]))
			c->ids[i] = fs[i].id;
	k = cfg_nodes(cfg, nodes);
	for (size_t j = 0; j < k; j++) {
		const struct cas_cluster_node *x = nodes[j];
		size_t shared = 0, slot = SIZE_MAX, i;
		bool confirmed = false, elsewhere = false;
		uint64_t bit;

		for (size_t m = 0; m < k; m++)
			shared += strcmp(nodes[m]->url, x->url) == 0;
		for (i = 0; i < n && slot == SIZE_MAX; i++)
			if (ready(&fs[i]) && fs[i].id == x->id)
				slot = i, confirmed = true;
		for (i = 0; i < n && slot == SIZE_MAX; i++)
			if (c->ids[i] == x->id)
				slot = i;
		for (i = 0; i < n && slot == SIZE_MAX; i++)
			if (c->ids[i] == 0 &&
			    strcmp(cas_transport_url(c->transport, i), x->url) == 0)
				slot = i;
		/* Another node answers at its address: x is not there. */
		for (i = 0; i < n; i++)
			elsewhere |= ready(&fs[i]) && fs[i].id != x->id &&
				     strcmp(cas_transport_url(c->transport, i), x->url) == 0;
		if (slot == SIZE_MAX) {
			/* An index of its own, never sent to. */
			if (cas_transport_add(c->transport, x->url, &idx) != CAS_OK) {
				cas_cluster_config_clear(&copy);
				return CAS_ENOMEM;
			}
			slot = idx;
			elsewhere = true;
		}
		c->ids[slot] = x->id;
		bit = 1ull << slot;
		if (j < cfg->n_members)
			v.old_set |= bit;
		for (size_t m = 0; m < cfg->n_joining; m++)
			if (cfg->joining[m].id == x->id)
				v.new_set |= bit;
		/* Two nodes at one address: only the one that said so. */
		if ((shared > 1 && !confirmed) || (elsewhere && !confirmed))
			v.gone |= bit;
	}
	v.n_nodes = cas_transport_nodes(c->transport);
	v.epoch = cfg->epoch;
	memcpy(v.cluster, cfg->cluster, sizeof(v.cluster));
	cas_cluster_config_clear(&c->cfg);
	c->cfg = copy;
	c->view = v;
	c->have_view = true;
	return CAS_OK;
}

/* One round of learning: asks every transport node, chooses (the first
 * time from the seeds, later the newest of c's cluster, or pinned), maps
 * and adopts. Called with learn_lock. */
static int learn(struct cas_client *c, const struct cas_cluster_config *pinned,
		 uint64_t deadline_ms)
{
	const struct cas_cluster_config *cfg = pinned;
	struct cas_cluster_config chosen = {0};
	size_t n = cas_transport_nodes(c->transport), n2;
	struct fetch *fs;
	bool first;
	int rc;

	fs = calloc(CAS_NODES_MAX, sizeof(*fs));
	if (fs == NULL)
		return CAS_ENOMEM;
	fetch_range(c, fs, 0, n, deadline_ms);
	pthread_mutex_lock(&c->cfg_lock);
	first = !c->have_view;
	pthread_mutex_unlock(&c->cfg_lock);
	if (cfg == NULL) {
		if (first) {
			rc = choose_first(c, fs, c->n_seeds, &cfg);
			if (rc != CAS_OK)
				goto out_free;
		} else {
			cfg = choose_newest(c, fs, n);
			pthread_mutex_lock(&c->cfg_lock);
			if (cfg == NULL || cfg->epoch <= c->view.epoch) {
				pthread_mutex_unlock(&c->cfg_lock);
				rc = CAS_OK; /* nothing newer */
				goto out_free;
			}
			pthread_mutex_unlock(&c->cfg_lock);
		}
	}
	/* Copied: fs's configurations move below. */
	rc = cas_cluster_config_copy(&chosen, cfg);
	if (rc != CAS_OK)
		goto out_free;
	n2 = n;
	rc = add_slots(c, &chosen, fs, &n2);
	if (rc != CAS_OK)
		goto out_free;
	fetch_range(c, fs, n, n2, deadline_ms);
	pthread_mutex_lock(&c->cfg_lock);
	if (!c->have_view || chosen.epoch > c->view.epoch ||
	    (pinned != NULL && chosen.epoch == c->view.epoch))
		rc = adopt(c, &chosen, fs, n2);
	pthread_mutex_unlock(&c->cfg_lock);
out_free:
	cas_cluster_config_clear(&chosen);
	fetch_free(fs, CAS_NODES_MAX);
	return rc;
}

static void copy_view(struct cas_client *c, struct cas_view *v)
{
	pthread_mutex_lock(&c->cfg_lock);
	*v = c->view;
	pthread_mutex_unlock(&c->cfg_lock);
}

int cas_follow_view(struct cas_client *c, uint64_t deadline_ms, struct cas_view *v)
{
	bool have;
	int rc = CAS_OK;

	pthread_mutex_lock(&c->cfg_lock);
	have = c->have_view;
	*v = c->view;
	pthread_mutex_unlock(&c->cfg_lock);
	if (have)
		return CAS_OK;
	pthread_mutex_lock(&c->learn_lock);
	pthread_mutex_lock(&c->cfg_lock);
	have = c->have_view;
	pthread_mutex_unlock(&c->cfg_lock);
	if (!have)
		rc = learn(c, NULL, deadline_ms);
	pthread_mutex_unlock(&c->learn_lock);
	if (rc == CAS_ENOMEM)
		cas_client_set_error(c, "out of memory");
	copy_view(c, v);
	return rc;
}

int cas_follow_reload(struct cas_client *c, uint64_t epoch, uint64_t deadline_ms,
		      struct cas_view *v)
{
	bool newer;
	int rc = CAS_OK;

	pthread_mutex_lock(&c->learn_lock);
	pthread_mutex_lock(&c->cfg_lock);
	newer = c->view.epoch > epoch;
	pthread_mutex_unlock(&c->cfg_lock);
	if (!newer)
		rc = learn(c, NULL, deadline_ms);
	pthread_mutex_unlock(&c->learn_lock);
	copy_view(c, v);
	return rc;
}

int cas_follow_use(struct cas_client *c, const struct cas_cluster_config *cfg, char *errmsg,
		   size_t errmsg_len)
{
	int rc = CAS_OK;

	pthread_mutex_lock(&c->learn_lock);
	pthread_mutex_lock(&c->cfg_lock);
	if (c->have_view && strcmp(c->view.cluster, cfg->cluster) != 0) {
		cas_errmsg_set(errmsg, errmsg_len, "configuration of cluster %s, not %s",
			       cfg->cluster, c->view.cluster);
		rc = CAS_EINVAL;
	} else if (c->have_view && cfg->epoch < c->view.epoch) {
		cas_errmsg_set(errmsg, errmsg_len, "epoch %llu is older than the client's %llu",
			       (unsigned long long)cfg->epoch, (unsigned long long)c->view.epoch);
		rc = CAS_EVERSION;
	}
	pthread_mutex_unlock(&c->cfg_lock);
	if (rc == CAS_OK) {
		rc = learn(c, cfg, cas_os_monotonic_ms() + c->timeout_ms);
		if (rc != CAS_OK)
			cas_errmsg_set(errmsg, errmsg_len, "%s", cas_strerror(rc));
	}
	pthread_mutex_unlock(&c->learn_lock);
	return rc;
}

/* casctl_status.c - casctl status: what every node says of itself (GET
 * /v1/health and /v1/config), one line or one JSON object per node, and
 * whether a majority of the members is healthy. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <cas/admin.h>
#include <cas/client.h>

#include "casctl.h"

static const char *prog = "casctl";

/* Nodes shown at most: the seeds, and the members they did not name. */
#define MAX_NODES 128

/* One node asked: its URL (normalized, malloc'd), its health and who it
 * says it is. */
struct node {
	char *url;
	unsigned timeout_ms;
	pthread_t thread;
	bool started;
	bool member;   /* in the configuration shown (members or joining) */
	bool outsider; /* not in it, when there is one */
	struct cas_node_health h;
	char why[256];
	struct casctl_probe probe;
};

static void *ask_main(void *arg)
{
	struct node *n = arg;

	if (cas_admin_health(n->url, casctl_auth, n->timeout_ms, &n->h, n->why, sizeof(n->why)) !=
	    CAS_OK)
		snprintf(n->why, sizeof(n->why), "out of memory");
	casctl_probe(n->url, n->timeout_ms, &n->probe);
	return NULL;
}

/* Asks nodes[from..to) at once: a silent node costs one timeout, not one
 * each. */
static void ask_all(struct node *nodes, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		nodes[i].started = pthread_create(&nodes[i].thread, NULL, ask_main, &nodes[i]) == 0;
		if (!nodes[i].started)
			ask_main(&nodes[i]);
	}
	for (size_t i = from; i < to; i++)
		if (nodes[i].started)
			pthread_join(nodes[i].thread, NULL);
}

static long find(const struct node *nodes, size_t n, const char *url)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(nodes[i].url, url) == 0)
			return (long)i;
	return -1;
}

/* The newest configuration a node gave (of the cluster most of them name
 * when they disagree: the first one's), or NULL. */
static const struct cas_cluster_config *newest(const struct node *nodes, size_t n)
{
	const struct cas_cluster_config *best = NULL;

	for (size_t i = 0; i < n; i++) {
		const struct cas_cluster_config *c = &nodes[i].probe.cfg;

		if (nodes[i].probe.state != CAS_NODE_READY)
			continue;
		if (best == NULL ||
		    (strcmp(c->cluster, best->cluster) == 0 && c->epoch > best->epoch))
			best = c;
	}
	return best;
}

/* Whether a majority of set (n nodes) is healthy and of cluster. */
static bool majority(const struct node *nodes, size_t n_nodes, const struct cas_cluster_node *set,
		     size_t n, const char *cluster, size_t *healthy)
{
	*healthy = 0;
	for (size_t i = 0; i < n; i++) {
		long k = find(nodes, n_nodes, set[i].url);

		if (k >= 0 && nodes[k].h.healthy && strcmp(nodes[k].h.cluster, cluster) == 0)
			(*healthy)++;
	}
	return *healthy >= n / 2 + 1;
}

static void print_line(const struct node *n)
{
	const struct cas_node_health *h = &n->h;

	if (!h->answered) {
		printf("%s unreachable%s%s\n", n->url, n->why[0] ? ": " : "", n->why);
		return;
	}
	printf("%s reachable", n->url);
	if (h->cluster[0])
		printf(" cluster %s node %s epoch %" PRIu64, h->cluster, h->node, h->epoch);
	printf(" %s", h->status[0] ? h->status : "bad");
	if (h->version[0])
		printf(" version %s", h->version);
	printf(" keys %" PRIu64, h->keys);
	if (h->has_usage)
		printf(" bytes %" PRIu64 " capacity %" PRIu64 " log %" PRIu64 "/%" PRIu64, h->bytes,
		       h->capacity, h->log_used, h->log_size);
	printf(" rtt %.1fms", (double)h->rtt_us / 1000.0);
	if (n->outsider)
		printf(" not-a-member");
	if (h->reason[0])
		printf(" reason: %s", h->reason);
	else if (!h->healthy && n->why[0])
		printf(" reason: %s", n->why);
	printf("\n");
}

static cJSON *node_json(const struct node *n)
{
	const struct cas_node_health *h = &n->h;
	cJSON *o = cJSON_CreateObject();
	bool ok;

	ok = o && cJSON_AddStringToObject(o, "url", n->url) &&
	     cJSON_AddBoolToObject(o, "reachable", h->answered) &&
	     cJSON_AddBoolToObject(o, "healthy", h->healthy) &&
	     cJSON_AddBoolToObject(o, "member", n->member);
	if (ok && !h->answered)
		ok = cJSON_AddStringToObject(o, "error", n->why) != NULL;
	if (ok && h->answered)
		ok = cJSON_AddStringToObject(o, "status", h->status) &&
		     cJSON_AddStringToObject(o, "version", h->version) &&
		     cJSON_AddNumberToObject(o, "keys", (double)h->keys) &&
		     cJSON_AddNumberToObject(o, "rtt_ms", (double)h->rtt_us / 1000.0);
	if (ok && h->answered && (h->reason[0] || (!h->healthy && n->why[0])))
		ok = cJSON_AddStringToObject(o, "reason", h->reason[0] ? h->reason : n->why) !=
		     NULL;
	if (ok && h->cluster[0])
		ok = cJSON_AddStringToObject(o, "cluster", h->cluster) &&
		     cJSON_AddStringToObject(o, "node", h->node) &&
		     cJSON_AddNumberToObject(o, "epoch", (double)h->epoch);
	if (ok && h->has_usage)
		ok = cJSON_AddNumberToObject(o, "bytes", (double)h->bytes) &&
		     cJSON_AddNumberToObject(o, "capacity", (double)h->capacity) &&
		     cJSON_AddNumberToObject(o, "log_used", (double)h->log_used) &&
		     cJSON_AddNumberToObject(o, "log_size", (double)h->log_size);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* Prints the whole answer as one JSON object; false without memory. */
static bool print_json(const struct node *nodes, size_t n, const struct cas_cluster_config *cfg,
		       size_t healthy, bool ok)
{
	cJSON *root = cJSON_CreateObject(), *arr;
	char *text = NULL;
	bool good;

	good = root && cJSON_AddBoolToObject(root, "majority_healthy", ok) &&
	       cJSON_AddNumberToObject(root, "healthy", (double)healthy) &&
	       (arr = cJSON_AddArrayToObject(root, "nodes")) != NULL;
	if (good && cfg != NULL)
		good = cJSON_AddStringToObject(root, "cluster", cfg->cluster) &&
		       cJSON_AddNumberToObject(root, "epoch", (double)cfg->epoch) &&
		       cJSON_AddNumberToObject(root, "members", (double)cfg->n_members);
	for (size_t i = 0; good && i < n; i++) {
		cJSON *o = node_json(&nodes[i]);

		good = o != NULL && cJSON_AddItemToArray(arr, o);
	}
	if (good)
		text = cJSON_Print(root);
	cJSON_Delete(root);
	if (text == NULL)
		return false;
	printf("%s\n", text);
	free(text);
	return true;
}

int casctl_status(struct cas_client *c, unsigned timeout_ms, bool json)
{
	size_t n_seeds = cas_client_nodes(c), n = 0, healthy = 0, healthy_n = 0;
	const struct cas_cluster_config *cfg;
	struct node *nodes;
	bool ok = false;
	int rc = 0;

	nodes = calloc(MAX_NODES, sizeof(*nodes));
	if (nodes == NULL)
		goto out_oom;
	for (size_t i = 0; i < n_seeds && n < MAX_NODES / 2; i++) {
		nodes[n].url = strdup(cas_client_node_url(c, i));
		if (nodes[n].url == NULL)
			goto out_oom;
		nodes[n++].timeout_ms = timeout_ms;
	}
	ask_all(nodes, 0, n);
	/* The members the seeds did not name: a status of the whole cluster
	 * from one seed. */
	cfg = newest(nodes, n);
	if (cfg != NULL) {
		size_t seeds = n;

		for (size_t s = 0; s < 2; s++) {
			const struct cas_cluster_node *set = s ? cfg->joining : cfg->members;
			size_t k = s ? cfg->n_joining : cfg->n_members;

			for (size_t i = 0; i < k && n < MAX_NODES; i++) {
				long at = find(nodes, n, set[i].url);

				if (at >= 0) {
					nodes[at].member = true;
					continue;
				}
				nodes[n].url = strdup(set[i].url);
				if (nodes[n].url == NULL)
					goto out_oom;
				nodes[n].member = true;
				nodes[n++].timeout_ms = timeout_ms;
			}
		}
		ask_all(nodes, seeds, n);
		for (size_t i = 0; i < n; i++)
			nodes[i].outsider = !nodes[i].member;
		ok = majority(nodes, n, cfg->members, cfg->n_members, cfg->cluster, &healthy);
		if (cfg->n_joining > 0)
			ok = majority(nodes, n, cfg->joining, cfg->n_joining, cfg->cluster,
				      &healthy_n) &&
			     ok;
	} else {
		for (size_t i = 0; i < n; i++)
			healthy += nodes[i].h.healthy;
	}
	if (json) {
		if (!print_json(nodes, n, cfg, healthy, ok))
			goto out_oom;
	} else {
		for (size_t i = 0; i < n; i++)
			print_line(&nodes[i]);
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "%s: status: writing stdout failed\n", prog);
		rc = EXIT_OTHER;
	} else if (!ok) {
		if (cfg != NULL)
			fprintf(stderr,
				"%s: status: no majority healthy (%zu of %zu members of cluster "
				"%s)\n",
				prog, healthy, cfg->n_members, cfg->cluster);
		else
			fprintf(stderr, "%s: status: no initialized node answered\n", prog);
		rc = EXIT_UNAVAILABLE;
	}
	goto out_free;

out_oom:
	fprintf(stderr, "%s: out of memory\n", prog);
	rc = EXIT_OTHER;
out_free:
	for (size_t i = 0; nodes != NULL && i < MAX_NODES; i++) {
		free(nodes[i].url);
		cas_cluster_config_clear(&nodes[i].probe.cfg);
	}
	free(nodes);
	return rc;
}

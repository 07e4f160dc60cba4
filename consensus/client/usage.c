/* usage.c - cas_client_usage (client.h): the cluster's use of room, from
 * every member's GET /v1/health, asked at once and kept for a moment. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cas/os.h>

#include "client_int.h"

struct ask {
	const char *url;
	const struct cas_auth *auth;
	unsigned timeout_ms;
	pthread_t thread;
	bool started;
	int rc;
	struct cas_node_health h;
	char why[256];
};

static void *ask_main(void *arg)
{
	struct ask *a = arg;

	a->rc = cas_admin_health(a->url, a->auth, a->timeout_ms, &a->h, a->why, sizeof(a->why));
	return NULL;
}

/* Asks the members of cfg; sums what they said into *out. */
static int ask_members(struct cas_client *c, const struct cas_cluster_config *cfg,
		       unsigned timeout_ms, struct cas_usage *out)
{
	size_t n = cfg->n_members;
	const char *why = "no member answered";
	struct ask *asks;
	int rc = CAS_OK;

	asks = calloc(n ? n : 1, sizeof(*asks));
	if (asks == NULL)
		return CAS_ENOMEM;
	/* At once: a silent member costs one timeout, not one each. */
	for (size_t i = 0; i < n; i++) {
		asks[i].url = cfg->members[i].url;
		asks[i].auth = c->auth;
		asks[i].timeout_ms = timeout_ms;
		asks[i].started = pthread_create(&asks[i].thread, NULL, ask_main, &asks[i]) == 0;
		if (!asks[i].started)
			ask_main(&asks[i]);
	}
	out->members = n;
	for (size_t i = 0; i < n; i++) {
		const struct cas_node_health *h = &asks[i].h;

		if (asks[i].started)
			pthread_join(asks[i].thread, NULL);
		if (asks[i].rc == CAS_ENOMEM)
			rc = CAS_ENOMEM;
		if (asks[i].rc != CAS_OK || !h->has_usage) {
			if (asks[i].why[0])
				why = asks[i].why;
			continue;
		}
		if (out->answered == 0 || h->capacity < out->capacity)
			out->capacity = h->capacity;
		if (h->keys > out->keys)
			out->keys = h->keys;
		/* The log's records take room in the map at its next
		 * checkpoint: count them now. */
		if (h->bytes + h->log_used > out->bytes)
			out->bytes = h->bytes + h->log_used;
		out->answered++;
	}
	if (rc == CAS_OK && out->answered == 0) {
		cas_client_set_error(c, "usage: %s", why);
		rc = CAS_EUNAVAILABLE;
	}
	if (out->capacity < out->bytes)
		out->capacity = out->bytes;
	free(asks);
	return rc;
}

int cas_client_usage(struct cas_client *c, unsigned timeout_ms, struct cas_usage *out)
{
	struct cas_cluster_config cfg;
	uint64_t now = cas_os_monotonic_ms();
	char errmsg[256];
	int rc;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&c->cfg_lock);
	if (c->have_usage && now - c->usage_at_ms < CAS_USAGE_CACHE_MS) {
		*out = c->usage;
		pthread_mutex_unlock(&c->cfg_lock);
		return CAS_OK;
	}
	pthread_mutex_unlock(&c->cfg_lock);
	rc = cas_client_config(c, &cfg, errmsg, sizeof(errmsg));
	if (rc != CAS_OK)
		return rc;
	rc = ask_members(c, &cfg, timeout_ms ? timeout_ms : c->timeout_ms, out);
	cas_cluster_config_clear(&cfg);
	if (rc != CAS_OK) {
		memset(out, 0, sizeof(*out));
		return rc;
	}
	pthread_mutex_lock(&c->cfg_lock);
	c->have_usage = true;
	c->usage_at_ms = cas_os_monotonic_ms();
	c->usage = *out;
	pthread_mutex_unlock(&c->cfg_lock);
	return CAS_OK;
}

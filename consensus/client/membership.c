/* membership.c - the client's public calls about its configuration
 * (client.h): connect, the cluster id, the configuration, using one, the
 * last failure's reason, and listing keys. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cas/os.h>

#include "client_int.h"
#include "errmsg.h"

int cas_client_connect(struct cas_client *c, unsigned timeout_ms, char *errmsg, size_t errmsg_len)
{
	struct cas_view v;
	int rc;

	rc = cas_follow_view(c, cas_os_monotonic_ms() + (timeout_ms ? timeout_ms : c->timeout_ms),
			     &v);
	if (rc != CAS_OK)
		cas_client_errmsg(c, errmsg, errmsg_len);
	return rc;
}

void cas_client_cluster(struct cas_client *c, char out[CAS_CLUSTER_HEX + 1])
{
	pthread_mutex_lock(&c->cfg_lock);
	memcpy(out, c->have_view ? c->view.cluster : "", c->have_view ? CAS_CLUSTER_HEX + 1 : 1);
	pthread_mutex_unlock(&c->cfg_lock);
}

int cas_client_config(struct cas_client *c, struct cas_cluster_config *out, char *errmsg,
		      size_t errmsg_len)
{
	int rc;

	memset(out, 0, sizeof(*out));
	rc = cas_client_connect(c, 0, errmsg, errmsg_len);
	if (rc != CAS_OK)
		return rc;
	pthread_mutex_lock(&c->cfg_lock);
	rc = cas_cluster_config_copy(out, &c->cfg);
	pthread_mutex_unlock(&c->cfg_lock);
	if (rc != CAS_OK)
		cas_errmsg_set(errmsg, errmsg_len, "out of memory");
	return rc;
}

int cas_client_use_config(struct cas_client *c, const struct cas_cluster_config *cfg, char *errmsg,
			  size_t errmsg_len)
{
	if (cfg == NULL || cfg->n_members == 0) {
		cas_errmsg_set(errmsg, errmsg_len, "an empty configuration");
		return CAS_EINVAL;
	}
	return cas_follow_use(c, cfg, errmsg, errmsg_len);
}

void cas_client_errmsg(struct cas_client *c, char *buf, size_t len)
{
	if (buf == NULL || len == 0)
		return;
	pthread_mutex_lock(&c->cfg_lock);
	cas_errmsg_set(buf, len, "%s", c->errmsg);
	pthread_mutex_unlock(&c->cfg_lock);
}

int cas_client_keys(struct cas_client *c, const char *after, unsigned limit, unsigned timeout_ms,
		    char ***keys, size_t *n, bool *more, char *errmsg, size_t errmsg_len)
{
	struct cas_cluster_config cfg;
	char **all = NULL, **got;
	size_t n_all = 0, n_got, kept = 0;
	bool any = false, m;
	int rc;

	*keys = NULL;
	*n = 0;
	*more = false;
	if (limit == 0 || limit > 10000) {
		cas_errmsg_set(errmsg, errmsg_len, "a limit of 1 to 10000 keys, not %u", limit);
		return CAS_EINVAL;
	}
	rc = cas_client_config(c, &cfg, errmsg, errmsg_len);
	if (rc != CAS_OK)
		return rc;
	for (size_t i = 0; i < cfg.n_members; i++) {
		rc = cas_admin_keys(cfg.members[i].url, c->auth, &cfg, after, limit,
				    timeout_ms ? timeout_ms : c->timeout_ms, &got, &n_got, &m,
				    errmsg, errmsg_len);
		if (rc == CAS_ENOMEM)
			goto out_free;
		if (rc != CAS_OK)
			continue;
		any = true;
		*more |= m;
		rc = cas_keys_append(&all, &n_all, got, n_got);
		if (rc != CAS_OK)
			goto out_free;
	}
	if (!any) {
		rc = CAS_EUNAVAILABLE;
		goto out_free;
	}
	kept = cas_keys_sort_unique(all, n_all);
	if (kept > limit) {
		*more = true;
		for (size_t i = limit; i < kept; i++)
			free(all[i]);
		kept = limit;
	}
	*keys = all;
	*n = kept;
	cas_cluster_config_clear(&cfg);
	return CAS_OK;
out_free:
	cas_keys_free(all, n_all);
	cas_cluster_config_clear(&cfg);
	return rc;
}

int cas_client_keys_all(struct cas_client *c, unsigned timeout_ms, char ***all, size_t *n_all,
			char *errmsg, size_t errmsg_len)
{
	char *after = NULL, **keys;
	size_t n;
	bool more = true;
	int rc = CAS_OK;

	*all = NULL;
	*n_all = 0;
	while (more) {
		rc = cas_client_keys(c, after, CAS_KEYS_PAGE, timeout_ms, &keys, &n, &more, errmsg,
				     errmsg_len);
		if (rc != CAS_OK || n == 0) {
			if (rc == CAS_OK)
				free(keys);
			break;
		}
		free(after);
		after = strdup(keys[n - 1]);
		rc = after != NULL ? cas_keys_append(all, n_all, keys, n) : CAS_ENOMEM;
		if (rc != CAS_OK) {
			if (after == NULL)
				cas_keys_free(keys, n);
			cas_errmsg_set(errmsg, errmsg_len, "out of memory");
			break;
		}
	}
	free(after);
	if (rc != CAS_OK) {
		cas_keys_free(*all, *n_all);
		*all = NULL;
		*n_all = 0;
		return rc;
	}
	*n_all = cas_keys_sort_unique(*all, *n_all);
	return CAS_OK;
}

/* config.c - the configuration (cas/admin.h): copies, comparisons and its
 * JSON form, both halves, with cJSON. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "errmsg.h"
#include "nodes.h"

static void free_set(struct cas_cluster_node *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(set[i].url);
	free(set);
}

void cas_cluster_config_clear(struct cas_cluster_config *cfg)
{
	if (cfg == NULL)
		return;
	free_set(cfg->members, cfg->n_members);
	free_set(cfg->joining, cfg->n_joining);
	memset(cfg, 0, sizeof(*cfg));
}

static int copy_set(struct cas_cluster_node **dst, const struct cas_cluster_node *src, size_t n)
{
	*dst = NULL;
	if (n == 0)
		return CAS_OK;
	*dst = calloc(n, sizeof(**dst));
	if (*dst == NULL)
		return CAS_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		(*dst)[i].id = src[i].id;
		(*dst)[i].url = strdup(src[i].url);
		if ((*dst)[i].url == NULL) {
			free_set(*dst, n);
			*dst = NULL;
			return CAS_ENOMEM;
		}
	}
	return CAS_OK;
}

int cas_cluster_config_copy(struct cas_cluster_config *dst, const struct cas_cluster_config *src)
{
	memset(dst, 0, sizeof(*dst));
	memcpy(dst->cluster, src->cluster, sizeof(dst->cluster));
	dst->epoch = src->epoch;
	if (copy_set(&dst->members, src->members, src->n_members) != CAS_OK)
		goto out_oom;
	dst->n_members = src->n_members;
	if (copy_set(&dst->joining, src->joining, src->n_joining) != CAS_OK)
		goto out_oom;
	dst->n_joining = src->n_joining;
	return CAS_OK;
out_oom:
	cas_cluster_config_clear(dst);
	return CAS_ENOMEM;
}

long cas_cluster_config_find(const struct cas_cluster_config *cfg, bool joining, const char *url)
{
	const struct cas_cluster_node *set = joining ? cfg->joining : cfg->members;
	size_t n = joining ? cfg->n_joining : cfg->n_members;

	for (size_t i = 0; i < n; i++)
		if (strcmp(set[i].url, url) == 0)
			return (long)i;
	return -1;
}

bool cas_cluster_config_has(const struct cas_cluster_config *cfg, uint64_t id)
{
	for (size_t i = 0; i < cfg->n_members; i++)
		if (cfg->members[i].id == id)
			return true;
	for (size_t i = 0; i < cfg->n_joining; i++)
		if (cfg->joining[i].id == id)
			return true;
	return false;
}

static bool set_equal(const struct cas_cluster_node *a, size_t na, const struct cas_cluster_node *b,
		      size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (a[i].id != b[i].id || strcmp(a[i].url, b[i].url) != 0)
			return false;
	return true;
}

bool cas_cluster_config_equal(const struct cas_cluster_config *a,
			      const struct cas_cluster_config *b)
{
	return strcmp(a->cluster, b->cluster) == 0 && a->epoch == b->epoch &&
	       set_equal(a->members, a->n_members, b->members, b->n_members) &&
	       set_equal(a->joining, a->n_joining, b->joining, b->n_joining);
}

void cas_node_hex(uint64_t id, char out[CAS_NODE_HEX + 1])
{
	snprintf(out, CAS_NODE_HEX + 1, "%016" PRIx64, id);
}

static cJSON *set_to_json(const struct cas_cluster_node *set, size_t n)
{
	cJSON *arr = cJSON_CreateArray(), *o;
	char hex[CAS_NODE_HEX + 1];

	if (arr == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		o = cJSON_CreateObject();
		if (o == NULL || !cJSON_AddItemToArray(arr, o))
			goto out_free;
		cas_node_hex(set[i].id, hex);
		if (cJSON_AddStringToObject(o, "id", hex) == NULL ||
		    cJSON_AddStringToObject(o, "url", set[i].url) == NULL)
			goto out_free;
	}
	return arr;
out_free:
	cJSON_Delete(arr);
	return NULL;
}

int cas_cluster_config_to_json(const struct cas_cluster_config *cfg, char **out)
{
	cJSON *root = cJSON_CreateObject(), *set;
	char epoch[24];
	int rc = CAS_ENOMEM;

	if (root == NULL)
		return CAS_ENOMEM;
	snprintf(epoch, sizeof(epoch), "%" PRIu64, cfg->epoch);
	if (cJSON_AddStringToObject(root, "cluster", cfg->cluster) == NULL ||
	    cJSON_AddStringToObject(root, "epoch", epoch) == NULL)
		goto out_free;
	set = set_to_json(cfg->members, cfg->n_members);
	if (set == NULL || !cJSON_AddItemToObject(root, "members", set)) {
		cJSON_Delete(set);
		goto out_free;
	}
	if (cfg->n_joining > 0) {
		set = set_to_json(cfg->joining, cfg->n_joining);
		if (set == NULL || !cJSON_AddItemToObject(root, "joining", set)) {
			cJSON_Delete(set);
			goto out_free;
		}
	}
	*out = cJSON_PrintUnformatted(root);
	if (*out != NULL)
		rc = CAS_OK;
out_free:
	cJSON_Delete(root);
	return rc;
}

static bool parse_hex(const char *s, size_t digits, uint64_t *out)
{
	uint64_t v = 0;

	if (strlen(s) != digits)
		return false;
	for (size_t i = 0; i < digits; i++) {
		char c = s[i];

		if (c >= '0' && c <= '9')
			v = v << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v << 4 | (uint64_t)(c - 'a' + 10);
		else
			return false;
	}
	*out = v;
	return true;
}

/* Whether s starts with digits lowercase hex digits. */
static bool parse_hex_prefix(const char *s, size_t digits)
{
	for (size_t i = 0; i < digits; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static bool parse_dec(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0'))
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return true;
}

static int parse_set(const cJSON *arr, struct cas_cluster_node **out, size_t *out_n,
		     const char *name, char *errmsg, size_t errmsg_len)
{
	size_t n = 0, i = 0;
	const cJSON *o;
	int rc;

	*out = NULL;
	*out_n = 0;
	if (!cJSON_IsArray(arr)) {
		cas_errmsg_set(errmsg, errmsg_len, "\"%s\" is not an array", name);
		return CAS_EPROTO;
	}
	n = (size_t)cJSON_GetArraySize(arr);
	if (n == 0)
		return CAS_OK;
	*out = calloc(n, sizeof(**out));
	if (*out == NULL)
		return CAS_ENOMEM;
	cJSON_ArrayForEach(o, arr)
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
		const cJSON *url = cJSON_GetObjectItemCaseSensitive(o, "url");

		if (!cJSON_IsString(id) || !cJSON_IsString(url) ||
		    !parse_hex(id->valuestring, CAS_NODE_HEX, &(*out)[i].id) || (*out)[i].id == 0) {
			cas_errmsg_set(errmsg, errmsg_len, "bad node %zu in \"%s\"", i + 1, name);
			rc = CAS_EPROTO;
			goto out_free;
		}
		rc = cas_url_normalize(url->valuestring, &(*out)[i].url, errmsg, errmsg_len);
		if (rc != CAS_OK) {
			if (rc != CAS_ENOMEM)
				rc = CAS_EPROTO;
			goto out_free;
		}
		i++;
	}
	*out_n = n;
	return CAS_OK;
out_free:
	free_set(*out, n);
	*out = NULL;
	return rc;
}

int cas_cluster_config_parse(const char *body, size_t len, struct cas_cluster_config *cfg,
			     uint64_t *node_id, char *errmsg, size_t errmsg_len)
{
	const cJSON *cluster, *epoch, *members, *joining, *node;
	cJSON *root;
	uint64_t dummy;
	int rc = CAS_EPROTO;

	memset(cfg, 0, sizeof(*cfg));
	if (node_id != NULL)
		*node_id = 0;
	root = cJSON_ParseWithLength(body, len);
	if (root == NULL) {
		cas_errmsg_set(errmsg, errmsg_len, "a configuration that is not JSON");
		return CAS_EPROTO;
	}
	cluster = cJSON_GetObjectItemCaseSensitive(root, "cluster");
	epoch = cJSON_GetObjectItemCaseSensitive(root, "epoch");
	members = cJSON_GetObjectItemCaseSensitive(root, "members");
	joining = cJSON_GetObjectItemCaseSensitive(root, "joining");
	node = cJSON_GetObjectItemCaseSensitive(root, "node");
	if (!cJSON_IsString(cluster) || strlen(cluster->valuestring) != CAS_CLUSTER_HEX ||
	    !parse_hex(cluster->valuestring + CAS_NODE_HEX, CAS_NODE_HEX, &dummy) ||
	    !parse_hex_prefix(cluster->valuestring, CAS_NODE_HEX)) {
		cas_errmsg_set(errmsg, errmsg_len, "a configuration with a bad \"cluster\"");
		goto out_free;
	}
	memcpy(cfg->cluster, cluster->valuestring, CAS_CLUSTER_HEX + 1);
	if (!cJSON_IsString(epoch) || !parse_dec(epoch->valuestring, &cfg->epoch) ||
	    cfg->epoch == 0) {
		cas_errmsg_set(errmsg, errmsg_len, "a configuration with a bad \"epoch\"");
		goto out_free;
	}
	rc = parse_set(members, &cfg->members, &cfg->n_members, "members", errmsg, errmsg_len);
	if (rc != CAS_OK)
		goto out_free;
	if (cfg->n_members == 0 || cfg->n_members > 64) {
		cas_errmsg_set(errmsg, errmsg_len, "a configuration with %zu members",
			       cfg->n_members);
		rc = CAS_EPROTO;
		goto out_free;
	}
	if (joining != NULL && !cJSON_IsNull(joining)) {
		rc = parse_set(joining, &cfg->joining, &cfg->n_joining, "joining", errmsg,
			       errmsg_len);
		if (rc != CAS_OK)
			goto out_free;
	}
	if (node != NULL && node_id != NULL &&
	    (!cJSON_IsString(node) || !parse_hex(node->valuestring, CAS_NODE_HEX, node_id))) {
		cas_errmsg_set(errmsg, errmsg_len, "a configuration with a bad \"node\"");
		rc = CAS_EPROTO;
		goto out_free;
	}
	cJSON_Delete(root);
	return CAS_OK;
out_free:
	cJSON_Delete(root);
	cas_cluster_config_clear(cfg);
	return rc;
}

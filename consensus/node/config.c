/* config.c - a cluster's configuration in JSON: strict parsing, layout,
 * comparison (config.h). */
#include <stdio.h>
#include <string.h>

#include "cas/cas.h"
#include "codec.h"
#include "config.h"
#include "errmsg.h"

bool cas_hex_valid(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[n] == '\0';
}

int cas_json_parse_object(const char *body, size_t len, cJSON **out, char *errmsg,
			  size_t errmsg_len)
{
	const char *end = NULL;
	size_t i;
	cJSON *root;

	*out = NULL;
	if (!body || !len) {
		cas_errmsg_set(errmsg, errmsg_len, "empty body");
		return CAS_EINVAL;
	}
	/* cJSON strings end at a NUL: such a string would be cut short. */
	if (memchr(body, '\0', len)) {
		cas_errmsg_set(errmsg, errmsg_len, "NUL byte in body");
		return CAS_EINVAL;
	}
	for (i = 0; i + 6 <= len; i++) {
		if (body[i] == '\\' && memcmp(body + i + 1, "u0000", 5) == 0) {
			cas_errmsg_set(errmsg, errmsg_len, "NUL character in a string");
			return CAS_EINVAL;
		}
		if (body[i] == '\\')
			i++;
	}
	root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
	if (!root) {
		cas_errmsg_set(errmsg, errmsg_len, "malformed JSON");
		return CAS_EINVAL;
	}
	for (; end && end < body + len; end++) {
		if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
			cJSON_Delete(root);
			cas_errmsg_set(errmsg, errmsg_len, "trailing data after JSON");
			return CAS_EINVAL;
		}
	}
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		cas_errmsg_set(errmsg, errmsg_len, "body: not an object");
		return CAS_EINVAL;
	}
	*out = root;
	return CAS_OK;
}

int cas_json_fields(const cJSON *obj, const char *what, const char *const *names, size_t n,
		    size_t required, const cJSON **items, char *errmsg, size_t errmsg_len)
{
	const cJSON *it;
	size_t i;

	if (!cJSON_IsObject(obj)) {
		cas_errmsg_set(errmsg, errmsg_len, "%s: not an object", what);
		return CAS_EINVAL;
	}
	for (i = 0; i < n; i++)
		items[i] = NULL;
	cJSON_ArrayForEach(it, obj)
	{
		for (i = 0; i < n; i++)
			if (it->string && strcmp(it->string, names[i]) == 0)
				break;
		if (i == n) {
			cas_errmsg_set(errmsg, errmsg_len, "%s: unknown field \"%.64s\"", what,
				       it->string ? it->string : "");
			return CAS_EINVAL;
		}
		if (items[i]) {
			cas_errmsg_set(errmsg, errmsg_len, "%s: duplicate field \"%s\"", what,
				       names[i]);
			return CAS_EINVAL;
		}
		items[i] = it;
	}
	for (i = 0; i < required; i++) {
		if (!items[i]) {
			cas_errmsg_set(errmsg, errmsg_len, "%s: missing field \"%s\"", what,
				       names[i]);
			return CAS_EINVAL;
		}
	}
	return CAS_OK;
}

/* A base URL: http:// or https://, then at least one printable, non-space
 * ASCII character, CAS_URL_MAX bytes at most. */
static bool url_valid(const char *s)
{
	size_t n = strlen(s), i, start;

	if (n > CAS_URL_MAX)
		return false;
	if (strncmp(s, "http://", 7) == 0)
		start = 7;
	else if (strncmp(s, "https://", 8) == 0)
		start = 8;
	else
		return false;
	if (n == start)
		return false;
	for (i = start; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f)
			return false;
	return true;
}

/* Reads the array arr (a set of nodes, named what) into out[0..*n). */
static int take_nodes(const cJSON *arr, const char *what, struct cas_member *out, size_t *n,
		      char *errmsg, size_t errmsg_len)
{
	static const char *const names[] = {"id", "url"};
	const cJSON *it, *items[2];
	char sub[64];
	size_t i, k = 0;
	int err;

	if (!cJSON_IsArray(arr)) {
		cas_errmsg_set(errmsg, errmsg_len, "%s: not an array", what);
		return CAS_EINVAL;
	}
	cJSON_ArrayForEach(it, arr)
	{
		if (k == CAS_CONFIG_MAX_NODES) {
			cas_errmsg_set(errmsg, errmsg_len, "%s: more than %d nodes", what,
				       CAS_CONFIG_MAX_NODES);
			return CAS_EINVAL;
		}
		snprintf(sub, sizeof(sub), "%s[%zu]", what, k);
		err = cas_json_fields(it, sub, names, 2, 2, items, errmsg, errmsg_len);
		if (err)
			return err;
		if (!cJSON_IsString(items[0]) ||
		    !cas_hex_valid(items[0]->valuestring, CAS_NODE_HEX)) {
			cas_errmsg_set(errmsg, errmsg_len, "%s.id: not %d lowercase hex digits",
				       sub, CAS_NODE_HEX);
			return CAS_EINVAL;
		}
		if (!cJSON_IsString(items[1]) || !url_valid(items[1]->valuestring)) {
			cas_errmsg_set(errmsg, errmsg_len,
				       "%s.url: not an http:// or https:// URL of at most %d "
				       "printable characters",
				       sub, CAS_URL_MAX);
			return CAS_EINVAL;
		}
		for (i = 0; i < k; i++) {
			if (strcmp(out[i].id, items[0]->valuestring) == 0) {
				cas_errmsg_set(errmsg, errmsg_len, "%s: node %s twice", what,
					       out[i].id);
				return CAS_EINVAL;
			}
			if (strcmp(out[i].url, items[1]->valuestring) == 0) {
				cas_errmsg_set(errmsg, errmsg_len, "%s: URL %s twice", what,
					       out[i].url);
				return CAS_EINVAL;
			}
		}
		strcpy(out[k].id, items[0]->valuestring);
		strcpy(out[k].url, items[1]->valuestring);
		k++;
	}
	if (k == 0) {
		cas_errmsg_set(errmsg, errmsg_len, "%s: no nodes", what);
		return CAS_EINVAL;
	}
	*n = k;
	return CAS_OK;
}

/* The node of id in nodes[0..n), or NULL. */
static const struct cas_member *find(const struct cas_member *nodes, size_t n, const char *id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(nodes[i].id, id) == 0)
			return &nodes[i];
	return NULL;
}

int cas_config_from_json(const cJSON *obj, struct cas_config *out, char *errmsg, size_t errmsg_len)
{
	static const char *const names[] = {"cluster", "epoch", "members", "joining"};
	const struct cas_member *m;
	const cJSON *items[4];
	size_t i;
	int err;

	memset(out, 0, sizeof(*out));
	err = cas_json_fields(obj, "config", names, 4, 3, items, errmsg, errmsg_len);
	if (err)
		return err;
	if (!cJSON_IsString(items[0]) || !cas_hex_valid(items[0]->valuestring, CAS_CLUSTER_HEX)) {
		cas_errmsg_set(errmsg, errmsg_len, "config.cluster: not %d lowercase hex digits",
			       CAS_CLUSTER_HEX);
		return CAS_EINVAL;
	}
	strcpy(out->cluster, items[0]->valuestring);
	if (!cJSON_IsString(items[1]) || !cas_codec_u64_parse(items[1]->valuestring, &out->epoch) ||
	    out->epoch == 0) {
		cas_errmsg_set(errmsg, errmsg_len,
			       "config.epoch: not a canonical decimal string of at least 1");
		return CAS_EINVAL;
	}
	err = take_nodes(items[2], "config.members", out->members, &out->n_members, errmsg,
			 errmsg_len);
	if (err)
		return err;
	if (!items[3])
		return CAS_OK;
	err = take_nodes(items[3], "config.joining", out->joining, &out->n_joining, errmsg,
			 errmsg_len);
	if (err)
		return err;
	/* A node in both sets is one node, at one URL; two nodes in the two
	 * sets may share a URL (one replaces the other there). */
	for (i = 0; i < out->n_joining; i++) {
		m = find(out->members, out->n_members, out->joining[i].id);
		if (m && strcmp(m->url, out->joining[i].url)) {
			cas_errmsg_set(errmsg, errmsg_len,
				       "config: node %s has one URL in members, another in joining",
				       m->id);
			return CAS_EINVAL;
		}
	}
	return CAS_OK;
}

static int add_nodes(cJSON *obj, const char *name, const struct cas_member *nodes, size_t n)
{
	cJSON *arr, *it;
	size_t i;

	arr = cJSON_AddArrayToObject(obj, name);
	if (!arr)
		return CAS_ENOMEM;
	for (i = 0; i < n; i++) {
		it = cJSON_CreateObject();
		if (!it)
			return CAS_ENOMEM;
		if (!cJSON_AddItemToArray(arr, it)) {
			cJSON_Delete(it);
			return CAS_ENOMEM;
		}
		if (!cJSON_AddStringToObject(it, "id", nodes[i].id) ||
		    !cJSON_AddStringToObject(it, "url", nodes[i].url))
			return CAS_ENOMEM;
	}
	return CAS_OK;
}

int cas_config_add_json(const struct cas_config *c, cJSON *obj)
{
	char epoch[24];

	snprintf(epoch, sizeof(epoch), "%llu", (unsigned long long)c->epoch);
	if (!cJSON_AddStringToObject(obj, "cluster", c->cluster) ||
	    !cJSON_AddStringToObject(obj, "epoch", epoch) ||
	    add_nodes(obj, "members", c->members, c->n_members))
		return CAS_ENOMEM;
	if (c->n_joining && add_nodes(obj, "joining", c->joining, c->n_joining))
		return CAS_ENOMEM;
	return CAS_OK;
}

/* Whether a[0..n) and b[0..n) hold the same nodes, in any order (no id is
 * twice in one set). */
static bool same_nodes(const struct cas_member *a, const struct cas_member *b, size_t n)
{
	const struct cas_member *m;
	size_t i;

	for (i = 0; i < n; i++) {
		m = find(b, n, a[i].id);
		if (!m || strcmp(m->url, a[i].url))
			return false;
	}
	return true;
}

bool cas_config_same(const struct cas_config *a, const struct cas_config *b)
{
	return strcmp(a->cluster, b->cluster) == 0 && a->epoch == b->epoch &&
	       a->n_members == b->n_members && a->n_joining == b->n_joining &&
	       same_nodes(a->members, b->members, a->n_members) &&
	       same_nodes(a->joining, b->joining, a->n_joining);
}

bool cas_config_has(const struct cas_config *c, const char *node)
{
	return find(c->members, c->n_members, node) || find(c->joining, c->n_joining, node);
}

int cas_join_parse(const char *body, size_t len, char node[CAS_NODE_HEX + 1],
		   struct cas_config *cfg, char *errmsg, size_t errmsg_len)
{
	static const char *const names[] = {"node", "config"};
	const cJSON *items[2];
	cJSON *root;
	int err;

	err = cas_json_parse_object(body, len, &root, errmsg, errmsg_len);
	if (err)
		return err;
	err = cas_json_fields(root, "body", names, 2, 2, items, errmsg, errmsg_len);
	if (err)
		goto out_delete;
	if (!cJSON_IsString(items[0]) || !cas_hex_valid(items[0]->valuestring, CAS_NODE_HEX)) {
		cas_errmsg_set(errmsg, errmsg_len, "node: not %d lowercase hex digits",
			       CAS_NODE_HEX);
		err = CAS_EINVAL;
		goto out_delete;
	}
	err = cas_config_from_json(items[1], cfg, errmsg, errmsg_len);
	if (err)
		goto out_delete;
	strcpy(node, items[0]->valuestring);

out_delete:
	cJSON_Delete(root);
	return err;
}

int cas_join_format(const char *node, const struct cas_config *cfg, char **out)
{
	cJSON *root, *c;
	int err = CAS_ENOMEM;

	*out = NULL;
	root = cJSON_CreateObject();
	if (!root)
		return CAS_ENOMEM;
	if (!cJSON_AddStringToObject(root, "node", node))
		goto out_delete;
	c = cJSON_AddObjectToObject(root, "config");
	if (!c || cas_config_add_json(cfg, c))
		goto out_delete;
	*out = cJSON_PrintUnformatted(root);
	if (*out)
		err = CAS_OK;

out_delete:
	cJSON_Delete(root);
	return err;
}

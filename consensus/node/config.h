/* config.h - a cluster's configuration (PROTOCOL.md, "Cluster identity
 * and membership") and its JSON form: parsed strictly, laid out, compared.
 * Pure: no I/O. Used by identity.c (what a node stores) and admin.c (the
 * admin endpoints). */
#ifndef CAS_CONFIG_H
#define CAS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define CAS_CLUSTER_HEX	     32	 /* a cluster id: 128 bits in lowercase hex */
#define CAS_NODE_HEX	     16	 /* a node id: 64 bits in lowercase hex */
#define CAS_CONFIG_MAX_NODES 64	 /* most nodes in members, and in joining */
#define CAS_URL_MAX	     255 /* longest base URL of a node */

struct cas_member {
	char id[CAS_NODE_HEX + 1];
	char url[CAS_URL_MAX + 1];
};

/* A configuration: stable when n_joining is 0, else joint (members O,
 * joining N). Large (about 35 KiB): keep it on the heap. */
struct cas_config {
	char cluster[CAS_CLUSTER_HEX + 1];
	uint64_t epoch;	  /* at least 1 */
	size_t n_members; /* at least 1 */
	size_t n_joining; /* 0: no "joining" field */
	struct cas_member members[CAS_CONFIG_MAX_NODES];
	struct cas_member joining[CAS_CONFIG_MAX_NODES];
};

/* Whether s is exactly n lowercase hex digits and nothing more. */
bool cas_hex_valid(const char *s, size_t n);

/* Parses body[0..len) as one JSON object and nothing else (no NUL, no
 * trailing bytes). On CAS_OK *out is the caller's (cJSON_Delete); on
 * CAS_EINVAL errmsg says why and *out is NULL. */
int cas_json_parse_object(const char *body, size_t len, cJSON **out, char *errmsg,
			  size_t errmsg_len);

/* Checks that obj (named what in errors) has only fields among
 * names[0..n-1], each at most once, names[0..required-1] all present, and
 * stores them in items[] in the order of names (NULL when absent).
 * CAS_EINVAL with errmsg otherwise. */
int cas_json_fields(const cJSON *obj, const char *what, const char *const *names, size_t n,
		    size_t required, const cJSON **items, char *errmsg, size_t errmsg_len);

/* Reads obj, the JSON form of a configuration, into *out. Strict: unknown,
 * missing, duplicate or mistyped fields, a cluster id or node id that is
 * not its number of lowercase hex digits, an epoch that is not a canonical
 * decimal of at least 1, an empty or oversized "members" or "joining", a
 * URL that is not http:// or https:// and printable, a node id twice in
 * one set, a URL twice in one set, or one node with two URLs are
 * CAS_EINVAL, with errmsg; *out is then unspecified. */
int cas_config_from_json(const cJSON *obj, struct cas_config *out, char *errmsg, size_t errmsg_len);

/* Adds c's fields ("cluster", "epoch", "members", and "joining" when
 * joint) to the object obj. CAS_ENOMEM (obj may hold some of them). */
int cas_config_add_json(const struct cas_config *c, cJSON *obj);

/* Whether a and b are the same configuration: cluster, epoch, and the
 * same members and joining nodes (ids and URLs), in any order. */
bool cas_config_same(const struct cas_config *a, const struct cas_config *b);

/* Whether node (an id) is in c's members or joining. */
bool cas_config_has(const struct cas_config *c, const char *node);

/* Reads body[0..len), {"node": "<16 hex>", "config": C} (a join's body,
 * and the identity file), into node and *cfg. Strict as
 * cas_config_from_json. node need not be in C (a removed node's identity
 * file): a join checks that (cas_identity_join). */
int cas_join_parse(const char *body, size_t len, char node[CAS_NODE_HEX + 1],
		   struct cas_config *cfg, char *errmsg, size_t errmsg_len);

/* Lays out node and cfg as cas_join_parse reads them: *out is a malloc'd
 * NUL-terminated text (the caller frees it). CAS_ENOMEM. */
int cas_join_format(const char *node, const struct cas_config *cfg, char **out);

#endif

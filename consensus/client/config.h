/* config.h - the configuration's JSON form (PROTOCOL.md, "The
 * configuration"), private to the client library; the struct and the
 * public calls are in cas/admin.h. */
#ifndef CAS_CLIENT_CONFIG_H
#define CAS_CLIENT_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <cas/admin.h>

/* Parses a configuration from body (len bytes of JSON): an object with
 * "cluster", "epoch", "members" and optionally "joining", as GET /v1/config
 * and a 409 of POST /v1/admin/config answer; other fields are ignored but
 * "node", which goes to *node_id (0 when absent; node_id may be NULL).
 * Every URL is normalized. On error (CAS_EPROTO, CAS_ENOMEM) *cfg is
 * zeroed and errmsg says why. */
int cas_cluster_config_parse(const char *body, size_t len, struct cas_cluster_config *cfg,
			     uint64_t *node_id, char *errmsg, size_t errmsg_len);

/* Writes id as 16 lowercase hex digits and a NUL into out. */
void cas_node_hex(uint64_t id, char out[CAS_NODE_HEX + 1]);

/* Whether id of node id appears in cfg's members or joining. */
bool cas_cluster_config_has(const struct cas_cluster_config *cfg, uint64_t id);

#endif

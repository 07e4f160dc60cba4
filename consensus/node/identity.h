/* identity.h - what a casd node is: uninitialized, or a node (its id) of
 * a cluster at a configuration (PROTOCOL.md, "Cluster identity and
 * membership"), kept durably in its data folder, and the one decision on
 * whether a request's identity headers let it run.
 *
 * Storage: the file "identity.json" in the data folder, holding
 * {"node": "<16 hex>", "config": C} (C as config.h reads it; the same
 * text as a join's body). It is replaced atomically: the new text goes to
 * "identity.json.tmp", which is fsynced, renamed over it, and the folder
 * fsynced; only then does the node use it and answer. A crash leaves the
 * old file or the new one, never a mix, and a stray .tmp is ignored. Not
 * in LMDB: the identity is the node's, not an acceptor's state; a file
 * keeps it apart from the key space, from the store's checkpoints and
 * counts, readable by an operator (cat), and wiped with the folder. No
 * file: the node is uninitialized. */
#ifndef CAS_IDENTITY_H
#define CAS_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define CAS_IDENTITY_FILE "identity.json"

/* A node's identity, with its lock. Opaque; every function below but
 * open, close and the test seam is safe from many threads. */
struct cas_identity;

/* A snapshot of the identity, small enough for the stack. */
struct cas_identity_view {
	bool initialized; /* false: the fields below are empty */
	bool member;	  /* node is in config's members or joining */
	char node[CAS_NODE_HEX + 1];
	char cluster[CAS_CLUSTER_HEX + 1];
	uint64_t epoch;
};

/* Reads dir's identity file (none: uninitialized). On CAS_OK *out is the
 * caller's (cas_identity_close). On error (CAS_EIO: unreadable, or not a
 * valid identity, the reason and the path in errmsg; CAS_ENOMEM) *out is
 * NULL: a node must not start with an identity it cannot read. */
int cas_identity_open(const char *dir, struct cas_identity **out, char *errmsg, size_t errmsg_len);

/* Frees id. May be NULL. Nothing may be using it. */
void cas_identity_close(struct cas_identity *id);

/* Copies what id is now into *out. */
void cas_identity_view(struct cas_identity *id, struct cas_identity_view *out);

/* Copies id's configuration into *cfg and its node id into node; false
 * (both untouched) when id is uninitialized. */
bool cas_identity_config(struct cas_identity *id, char node[CAS_NODE_HEX + 1],
			 struct cas_config *cfg);

/* The join (POST /v1/admin/join): an uninitialized id takes node and cfg
 * (node must be in cfg: cas_config_has), durably, before it returns:
 * CAS_OK, *changed true. The same node and configuration again: CAS_OK,
 * *changed false, nothing written. Any other join of an initialized id:
 * CAS_ECONFLICT, nothing changed. CAS_EINVAL: node is not in cfg.
 * CAS_EIO: the file could not be written (errmsg says why); id is
 * unchanged, the disk holds the old file or the new one. */
int cas_identity_join(struct cas_identity *id, const char *node, const struct cas_config *cfg,
		      bool *changed, char *errmsg, size_t errmsg_len);

/* A configuration change (POST /v1/admin/config): id takes cfg, durably,
 * when cfg is of id's cluster and has a higher epoch: CAS_OK, *changed
 * true (id may be absent from cfg: removed). The same configuration: CAS_OK,
 * *changed false. Another cluster, a lower epoch, or the same epoch with
 * other nodes: CAS_ECONFLICT, with errmsg. Uninitialized:
 * CAS_EUNAVAILABLE. CAS_EIO as for cas_identity_join. */
int cas_identity_update(struct cas_identity *id, const struct cas_config *cfg, bool *changed,
			char *errmsg, size_t errmsg_len);

/* The admission of a protocol request (PROTOCOL.md, "Identity on every
 * request"), decided on its Cas-Cluster and Cas-Epoch headers (NULL:
 * absent). In this order:
 *
 *   uninitialized                         CAS_ADMIT_UNINITIALIZED
 *     (but with unidentified set and neither header: CAS_ADMIT_OK)
 *   a header absent or malformed          CAS_ADMIT_BAD_HEADERS
 *   another cluster                       CAS_ADMIT_OTHER_CLUSTER
 *   an epoch below the node's             CAS_ADMIT_STALE
 *   an epoch above the node's             CAS_ADMIT_BEHIND
 *   the node is not in its configuration  CAS_ADMIT_STALE (removed)
 *   otherwise                             CAS_ADMIT_OK
 *
 * *view is the identity the decision was made on. On CAS_ADMIT_OK the
 * caller holds id's gate until cas_identity_leave: no configuration
 * change completes meanwhile, so a request admitted at epoch E is handed
 * to the store (which runs requests in the order they come) before the
 * node answers a change to E+1. The caller must not call anything of id
 * in between. Otherwise errmsg says why, and nothing is held. */
enum cas_admit {
	CAS_ADMIT_OK,
	CAS_ADMIT_UNINITIALIZED,
	CAS_ADMIT_BAD_HEADERS,
	CAS_ADMIT_OTHER_CLUSTER,
	CAS_ADMIT_STALE,
	CAS_ADMIT_BEHIND,
};
enum cas_admit cas_identity_enter(struct cas_identity *id, const char *cluster, const char *epoch,
				  bool unidentified, struct cas_identity_view *view, char *errmsg,
				  size_t errmsg_len);

/* Ends what cas_identity_enter admitted. */
void cas_identity_leave(struct cas_identity *id);

/* Test seam: the next n writes of the identity file fail (CAS_EIO) before
 * the rename. Not for production. */
void cas_identity_fail_writes(struct cas_identity *id, unsigned n);

#endif

/* admin.h - cluster identity and membership (PROTOCOL.md, "Cluster
 * identity and membership"): the configuration, and one-shot requests to
 * one node's admin endpoints, for casctl init and casctl member. */
#ifndef CAS_ADMIN_H
#define CAS_ADMIN_H

#include <cas/cas.h>

/* Hex digits of a cluster id (128 bits) and of a node id (64 bits). */
#define CAS_CLUSTER_HEX 32
#define CAS_NODE_HEX	16

/* One node of a configuration: its id (never 0) and base URL (malloc'd,
 * normalized as cas_url_normalize does). */
struct cas_cluster_node {
	uint64_t id;
	char *url;
};

/* A configuration: the set O of members and, while a change runs, the set
 * N it moves to (joining; n_joining 0 when the configuration is stable).
 * Everything it points to is malloc'd and owned by it: free it with
 * cas_cluster_config_clear. */
struct cas_cluster_config {
	char cluster[CAS_CLUSTER_HEX + 1]; /* 32 lowercase hex digits */
	uint64_t epoch;			   /* >= 1 */
	struct cas_cluster_node *members;
	size_t n_members;
	struct cas_cluster_node *joining;
	size_t n_joining;
};

/* Frees what cfg holds and zeroes it. cfg may be NULL. */
CAS_API void cas_cluster_config_clear(struct cas_cluster_config *cfg);

/* Deep copy of src into *dst (overwritten, not freed first). CAS_ENOMEM
 * leaves *dst zeroed. */
CAS_API int cas_cluster_config_copy(struct cas_cluster_config *dst,
				    const struct cas_cluster_config *src);

/* The index of the member (joining: false) or joining node (true) with
 * URL url (normalized), or -1. */
CAS_API long cas_cluster_config_find(const struct cas_cluster_config *cfg, bool joining,
				     const char *url);

/* Whether two configurations say the same (cluster, epoch, both sets in
 * order). */
CAS_API bool cas_cluster_config_equal(const struct cas_cluster_config *a,
				      const struct cas_cluster_config *b);

/* The configuration as its JSON text (PROTOCOL.md); *out malloc'd, the
 * caller's to free. */
CAS_API int cas_cluster_config_to_json(const struct cas_cluster_config *cfg, char **out);

/* Normalizes one base URL ("http://host:port", as the node lists of
 * cas_client_open); *out malloc'd. CAS_EINVAL with a reason in errmsg. */
CAS_API int cas_url_normalize(const char *url, char **out, char *errmsg, size_t errmsg_len);

/* How a client proves itself to the nodes and checks them (README,
 * "Security"): file names, NULL or "" for a setting left out. Each file
 * is read, and checked, when the settings are loaded (cas_auth_load,
 * cas_client_open); libcurl reads the certificate files again (by their
 * absolute names) for every new connection, so replace them by renaming. */
struct cas_auth_config {
	/* CA certificates (PEM): a node's certificate must chain to one of
	 * them and name the host of the node's URL. Only these are trusted,
	 * not the system's. Setting it (or tls_cert) makes every request go
	 * over https: an http:// node URL fails instead of carrying the
	 * token in clear. */
	const char *tls_ca;
	/* This client's certificate and its unencrypted private key (PEM),
	 * for nodes that check client certificates: both or neither. */
	const char *tls_cert;
	const char *tls_key;
	/* The cluster's shared token: the file's content less one trailing
	 * newline, as casd --token-file reads it (PROTOCOL.md,
	 * "Authentication"), sent with every request. The file must not be
	 * readable by others; the token is never put in an error message. */
	const char *token_file;
};

/* Loaded settings: immutable, safe to share between threads. Opaque. */
struct cas_auth;

/* Reads and checks the files cfg names (cfg may be NULL: no settings) and
 * makes *out, to free with cas_auth_free. Errors, *out untouched:
 * CAS_EINVAL with a one-line reason naming the file (never its content)
 * in errmsg: a file that is missing, unreadable, empty, not PEM, a
 * certificate without its key or a key without its certificate, a token
 * file that others may read, a token with spaces or control characters
 * or on more than one line; CAS_ENOMEM. */
CAS_API int cas_auth_load(const struct cas_auth_config *cfg, struct cas_auth **out, char *errmsg,
			  size_t errmsg_len);

/* Frees a, wiping the token it holds. a may be NULL. */
CAS_API void cas_auth_free(struct cas_auth *a);

/* Whether a uses TLS (a CA or a client certificate was given). */
CAS_API bool cas_auth_tls(const struct cas_auth *a);

/* What GET /v1/config said about a node. */
enum cas_node_state {
	CAS_NODE_DOWN,		/* no answer in time */
	CAS_NODE_UNINITIALIZED, /* 503: it has no identity yet */
	CAS_NODE_READY,		/* 200: *cfg and *node_id are its own */
	CAS_NODE_BAD,		/* another answer: errmsg says which */
};

/* The calls below ask one node, with the settings auth (NULL: plain
 * requests, no token; borrowed for the call). */

/* GET url/v1/config within timeout_ms. Returns CAS_OK whenever the
 * question was asked (the answer is in *state); *cfg (zeroed otherwise)
 * and *node_id (may be NULL) are set for CAS_NODE_READY; errmsg says why
 * for DOWN and BAD. CAS_ENOMEM, CAS_EINVAL (bad url) otherwise. */
CAS_API int cas_admin_get_config(const char *url, const struct cas_auth *auth, unsigned timeout_ms,
				 enum cas_node_state *state, struct cas_cluster_config *cfg,
				 uint64_t *node_id, char *errmsg, size_t errmsg_len);

/* POST url/v1/admin/join: the uninitialized node at url takes the identity
 * node_id and the configuration cfg (which must name it). CAS_OK on 200;
 * CAS_EVERSION when the node is initialized already (409; it changed
 * nothing); CAS_EUNAVAILABLE without an answer; CAS_EPROTO on another
 * status. errmsg says why on error. */
CAS_API int cas_admin_join(const char *url, const struct cas_auth *auth, uint64_t node_id,
			   const struct cas_cluster_config *cfg, unsigned timeout_ms, char *errmsg,
			   size_t errmsg_len);

/* POST url/v1/admin/config: the node takes cfg when its epoch is lower.
 * CAS_OK on 200 (taken, or it held cfg already); CAS_EVERSION on 409 (it
 * holds another configuration: changed nothing); CAS_EUNAVAILABLE,
 * CAS_EPROTO as for cas_admin_join. */
CAS_API int cas_admin_set_config(const char *url, const struct cas_auth *auth,
				 const struct cas_cluster_config *cfg, unsigned timeout_ms,
				 char *errmsg, size_t errmsg_len);

/* GET url/v1/keys after key after (NULL: from the start), at most limit
 * (1..10000) keys, with cfg's identity. On CAS_OK *keys is a malloc'd
 * array of *n malloc'd keys (free with cas_keys_free) and *more says
 * whether keys follow. Errors as for cas_admin_join (a refusal of the
 * identity is CAS_EPROTO with the node's reason in errmsg). */
CAS_API int cas_admin_keys(const char *url, const struct cas_auth *auth,
			   const struct cas_cluster_config *cfg, const char *after, unsigned limit,
			   unsigned timeout_ms, char ***keys, size_t *n, bool *more, char *errmsg,
			   size_t errmsg_len);

/* Frees keys[0..n) and keys. keys may be NULL. */
CAS_API void cas_keys_free(char **keys, size_t n);

/* Moves the n_got keys of got (an array from cas_admin_keys) to the end
 * of *all (n_all keys, growing). got is taken in every case: freed, its
 * keys now in *all on CAS_OK, all of them freed on CAS_ENOMEM (*all and
 * *n_all then unchanged). */
CAS_API int cas_keys_append(char ***all, size_t *n_all, char **got, size_t n_got);

/* Sorts keys[0..n) bytewise and frees the duplicates; returns how many
 * distinct keys stay at the front. */
CAS_API size_t cas_keys_sort_unique(char **keys, size_t n);

/* What GET /v1/health said about one node (PROTOCOL.md). Fields the node
 * left out are 0 or "". */
struct cas_node_health {
	bool answered; /* an HTTP answer came (else errmsg says why) */
	bool healthy;  /* 200 with "status": "ok" */
	long http_status;
	uint64_t rtt_us; /* the request's time, connecting included */
	char status[16]; /* "ok", "degraded", "uninitialized" */
	char reason[256];
	char version[32];
	char cluster[CAS_CLUSTER_HEX + 1];
	char node[CAS_NODE_HEX + 1];
	uint64_t epoch, keys;
	bool has_usage; /* bytes to log_size came */
	uint64_t bytes, capacity, log_used, log_size;
};

/* GET url/v1/health within timeout_ms into *out (zeroed first). CAS_OK
 * whenever the question was asked, answered or not (out->answered; errmsg
 * says why not, or what was malformed); CAS_ENOMEM, CAS_EIO otherwise. */
CAS_API int cas_admin_health(const char *url, const struct cas_auth *auth, unsigned timeout_ms,
			     struct cas_node_health *out, char *errmsg, size_t errmsg_len);

#endif

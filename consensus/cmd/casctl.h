/* casctl.h - what casctl.c (the register commands), casctl_init.c and
 * casctl_member.c (the cluster's commands) share. */
#ifndef CASCTL_H
#define CASCTL_H

#include <stdbool.h>
#include <stdint.h>

#include <cas/admin.h>

/* Exit statuses, documented in casctl's usage. */
#define EXIT_OTHER	 1
#define EXIT_USAGE	 2
#define EXIT_VERSION	 3
#define EXIT_UNAVAILABLE 4

/* The TLS files and token file of --tls-ca, --tls-cert, --tls-key,
 * --token-file (or CAS_TLS_CA, ...), for every client casctl opens, and
 * those settings loaded, for its one-shot admin calls. Set once by main
 * before any command runs. */
extern struct cas_auth_config casctl_auth_cfg;
extern const struct cas_auth *casctl_auth;

/* casctl init: nodes is the --nodes list. Returns the exit status. */
int casctl_init(const char *nodes, unsigned timeout_ms);

/* casctl member SUB ARGS...: list, add URL, remove URL, replace OLD NEW.
 * argv[0] is SUB. Returns the exit status. */
int casctl_member(const char *nodes, unsigned timeout_ms, int argc, char **argv);

/* casctl status [--json] on c's seeds and the members they name
 * (casctl_status.c). Returns the exit status: 0 when a majority of the
 * members is healthy, EXIT_UNAVAILABLE otherwise. */
struct cas_client;
int casctl_status(struct cas_client *c, unsigned timeout_ms, bool json);

/* casctl dump FILE ("-": stdout) and casctl restore FILE
 * (casctl_dump.c). Return the exit status. */
int casctl_dump(const char *nodes, unsigned timeout_ms, const char *path);
int casctl_restore(const char *nodes, unsigned timeout_ms, const char *path);

/* What one node says of itself (GET /v1/config). */
struct casctl_probe {
	enum cas_node_state state;
	struct cas_cluster_config cfg; /* the caller clears it */
	uint64_t id;
	char why[256];
};

/* Asks url who it is within timeout_ms; a node that cannot be asked is
 * CAS_NODE_DOWN. */
void casctl_probe(const char *url, unsigned timeout_ms, struct casctl_probe *p);

/* A random node id, never 0. CAS_EIO without random bytes. */
int casctl_random_id(uint64_t *id);

/* The exit status of a casfs code (cas.h). */
int casctl_exit_code(int rc);

#endif

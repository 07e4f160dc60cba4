/* casctl.h - what casctl.c (the register commands), casctl_init.c and
 * casctl_member.c (the cluster's commands) share. */
#ifndef CASCTL_H
#define CASCTL_H

#include <stdbool.h>
#include <stdint.h>

#include <cas/admin.h>
#include <cas/client.h>

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
int casctl_status(struct cas_client *c, unsigned timeout_ms, bool json);

/* casctl dump FILE ("-": stdout) and casctl restore FILE
 * (casctl_dump.c). Return the exit status. */
int casctl_dump(const char *nodes, unsigned timeout_ms, const char *path);
int casctl_restore(const char *nodes, unsigned timeout_ms, const char *path);

/* casctl gc [--grace SECONDS] [--jobs N] [--dry-run] (casctl_gc.c): argv holds
 * the arguments after "gc". Returns the exit status: 0 when every
 * candidate was purged (or written since), EXIT_UNAVAILABLE when some
 * were left because a node did not answer, EXIT_OTHER when some were
 * left for another reason, EXIT_USAGE on bad arguments. */
int casctl_gc(struct cas_client *c, const char *nodes, const struct cas_client_config *ccfg,
	      unsigned timeout_ms, int argc, char **argv);

/* A source of garbage for casctl gc: registers only an application knows
 * to be garbage (the filesystem's orphaned inodes, say), and the absent
 * registers it still needs. Before it notes the tombstones, gc asks every
 * source for its garbage and deletes each register (cas_delete with
 * still_garbage), so that they are purged in the same run, one grace
 * later; and it leaves alone every absent register a source spares.
 * With --dry-run it only prints the garbage ("garbage KEY (name)").
 * Every member may be NULL but name. */
struct casctl_gc_source {
	const char *name; /* in gc's output: "deleted KEY (name)" */
	void *arg;	  /* passed to the calls below */
	/* Lists the registers to delete: *keys a malloc'd array of *n
	 * malloc'd keys (gc frees them with cas_keys_free). Another code
	 * than CAS_OK, with a reason in errmsg, stops gc before it purges
	 * anything. */
	int (*list)(void *arg, struct cas_client *c, unsigned timeout_ms, char ***keys, size_t *n,
		    char *errmsg, size_t errmsg_len);
	/* The condition of each delete (arg is the source's arg): CAS_OK
	 * deletes the register, CAS_EVERSION keeps it ("kept KEY": in use
	 * again), another code keeps it and counts as a failure. NULL:
	 * delete whatever the value. */
	cas_change_fn still_garbage;
	/* Whether gc must not purge the absent register key in this run
	 * (an unresolved transaction holds it, say). */
	bool (*spare)(void *arg, const char *key);
	/* Called once before anything else of the run, with its grace and
	 * whether it is a dry run, and once after everything (spare included),
	 * whatever happened: the source's state lives between the two. */
	void (*begin)(void *arg, unsigned grace_ms, bool dry_run);
	void (*end)(void *arg);
};

/* The sources casctl gc asks, in order, NULL-terminated (casctl_gc.c). */
extern const struct casctl_gc_source *const casctl_gc_sources[];

/* The filesystem's source (casctl_gc_fs.c, over fs/gc.h). */
extern const struct casctl_gc_source casctl_gc_casfs;

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

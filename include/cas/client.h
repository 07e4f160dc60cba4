/* client.h - the CASPaxos register client: read, change and cas on a
 * cluster of casd acceptors. */
#ifndef CAS_CLIENT_H
#define CAS_CLIENT_H

#include <cas/admin.h>
#include <cas/cas.h>

/* A client: a proposer with its own id and kept-alive connections to every
 * acceptor. Opaque. All functions below are safe to call from many threads
 * at once on one client, except cas_client_close. */
struct cas_client;

struct cas_client_config {
	/* Deadline of one operation when the call passes timeout_ms == 0.
	 * 0 here means 5000 ms. */
	unsigned timeout_ms;
	/* Largest value a change may write (EFBIG-style CAS_ETOOBIG past it).
	 * 0 means CAS_DEFAULT_MAX_VALUE. */
	size_t max_value_size;
	/* Turns off the one-round-trip optimization (each operation then
	 * runs a prepare and an accept); for measurements. */
	bool no_fast_path;
	/* TLS and the token (cas/admin.h): read and checked by
	 * cas_client_open; the strings need not outlive it. */
	struct cas_auth_config auth;
};

/* Opens a client on nodes, a comma-separated list of acceptor base URLs
 * ("http://127.0.0.1:7001,http://127.0.0.1:7002,..."), at most 64: the
 * seeds. cfg may be NULL for defaults. Contacts no node: the client learns
 * its cluster's configuration (PROTOCOL.md, "Cluster identity and
 * membership") at its first operation, or at cas_client_connect, from the
 * seeds (GET /v1/config): a majority of them must answer, all of one
 * cluster, and the newest configuration among their answers is the
 * client's. From then on it talks to that configuration's nodes (a node
 * reached through a seed keeps the seed's URL), with the cluster's id and
 * the epoch on every request, and follows changes of the members: when a
 * node says the client's epoch is stale, the client learns the newest
 * configuration from every node it knows and runs the operation's next
 * attempt in it, within the operation's deadline. The client's proposer id
 * (the low part of its ballots) is drawn from the kernel's random source
 * at every open and cannot be chosen: an id used again after a restart
 * would reuse ballots. Without random bytes the open fails (CAS_EIO).
 * The files of cfg->auth are read here: one missing, unreadable or bad is
 * CAS_EINVAL (errmsg names it; see cas_auth_load).
 * On success *out is a client to close with cas_client_close. On error *out is untouched and errmsg
 * (when not NULL) holds a one-line reason. */
CAS_API int cas_client_open(const char *nodes, const struct cas_client_config *cfg,
			    struct cas_client **out, char *errmsg, size_t errmsg_len);

/* The settings c was opened with (cfg->auth), for the one-shot admin
 * calls of cas/admin.h; valid until cas_client_close. */
CAS_API const struct cas_auth *cas_client_auth(const struct cas_client *c);

/* Closes c and frees everything it holds. No call may be running on c. */
CAS_API void cas_client_close(struct cas_client *c);

/* Number of acceptors c was opened on (the seeds). */
CAS_API size_t cas_client_nodes(const struct cas_client *c);

/* The base URL of seed i (0 <= i < cas_client_nodes(c)); valid until
 * cas_client_close. */
CAS_API const char *cas_client_node_url(const struct cas_client *c, size_t i);

/* Asks seed i for its health endpoint; CAS_OK when it answered 200 within
 * timeout_ms. */
CAS_API int cas_client_ping(struct cas_client *c, size_t i, unsigned timeout_ms);

/* Applies fn to key's register within timeout_ms (0: the client's default).
 * On CAS_OK, and on a code that fn returned, out (may be NULL) receives
 * the register's value after the operation; the caller frees it with
 * cas_value_clear. On other errors out is zeroed. CAS_EUNAVAILABLE: no
 * majority in time, or (rarely: 16 other clients changed the key during
 * this call) an earlier attempt of this call may have been applied and
 * then dropped from the register's memory of its last 16 writers; either
 * way the change may or may not have been applied. Before its first
 * operation the client learns its configuration (cas_client_connect):
 * what that returns, an operation returns too, having sent nothing
 * (cas_client_errmsg says why). Calls of one client on one key run one at
 * a time, in turn. */
CAS_API int cas_change(struct cas_client *c, const char *key, cas_change_fn fn, void *arg,
		       unsigned timeout_ms, struct cas_value *out);

/* Reads key linearizably: a query of every acceptor, answered when a
 * majority agree on the accepted ballot; otherwise a prepare and an accept
 * of the identity. out as for cas_change. */
CAS_API int cas_read(struct cas_client *c, const char *key, unsigned timeout_ms,
		     struct cas_value *out);

/* A full round (prepare and accept) of key's value as it is, never a
 * query alone: afterwards the value is accepted by the quorum of c's
 * configuration (during a membership change, a majority of the joining
 * set too: PROTOCOL.md, step 3 "Rescan"). The version does not change;
 * *version (may be NULL) gets it. Errors as for cas_change. */
CAS_API int cas_touch(struct cas_client *c, const char *key, unsigned timeout_ms,
		      uint64_t *version);

/* Writes data (len bytes, copied) to key whatever its value. On success
 * *version (may be NULL) is the new version. */
CAS_API int cas_put(struct cas_client *c, const char *key, const void *data, size_t len,
		    unsigned timeout_ms, uint64_t *version);

/* Writes data to key only if its version is still expected (0: the key was
 * never written). CAS_EVERSION when it moved: nothing is written and
 * *version (may be NULL) is the current version. On success *version is
 * the new version (expected + 1). */
CAS_API int cas_cas(struct cas_client *c, const char *key, uint64_t expected, const void *data,
		    size_t len, unsigned timeout_ms, uint64_t *version);

/* Deletes key (PROTOCOL.md, "Deletion"): when fn (NULL: always) returns
 * CAS_OK on the register's value, the register becomes a tombstone, which
 * reads as absent (version 0, no bytes) until a later write starts a new
 * life at version 1; the bytes fn may put in next are ignored. fn may
 * refuse with a code of its own (CAS_EVERSION...), returned as is.
 * Deleting an absent key succeeds and changes nothing. out and errors as
 * for cas_change; the space is freed later, by the collector (casctl gc). */
CAS_API int cas_delete(struct cas_client *c, const char *key, cas_change_fn fn, void *arg,
		       unsigned timeout_ms, struct cas_value *out);

/* Deletes key only if its version is still expected: CAS_EVERSION when
 * it moved (nothing is deleted, *version, may be NULL, is the current
 * version). On success *version is 0. */
CAS_API int cas_delete_version(struct cas_client *c, const char *key, uint64_t expected,
			       unsigned timeout_ms, uint64_t *version);

/* The collector (PROTOCOL.md, "Deletion", "The purge"): the calls that
 * free the nodes' storage of deleted registers, for casctl gc. A purge
 * is safe only in these steps, per key:
 *
 *   0. cas_collect_note: the key reads as absent; note its last change;
 *      then wait the grace period (CAS_COLLECT_GRACE_MS, or longer than
 *      the longest deadline any client gives an operation), on the
 *      collector's own clock;
 *   1. and 2. cas_collect_purge: the tombstone written back at a fresh
 *      ballot B by EVERY node of the configuration, then dropped by each
 *      of them.
 *
 * The grace keeps an operation that began before the delete from
 * finding the key gone and applying its change a second time; the
 * write-back by all and the nodes' floors keep every deleted value from
 * coming back. A collector keeps nothing between runs: after a crash it
 * starts again at step 0. */

/* The grace period casctl gc waits by default: more than the longest
 * default deadline of an operation (5 s, of this library, casctl
 * --timeout and casfs -o timeout). Clients that run with a longer
 * deadline need a longer grace. */
#define CAS_COLLECT_GRACE_MS 10000u

/* A tombstone as cas_collect_note saw it. */
struct cas_tombstone {
	/* Its last change (the register's recent[0], PROTOCOL.md
	 * "Conventions": which proposer's which proposal made change
	 * number change); all zeroes for a register that has none (never
	 * written, or dropped by the nodes that answered). */
	uint64_t proposer, op, change;
	/* When it was noted, on CLOCK_MONOTONIC in ms (cas_os_monotonic_ms). */
	uint64_t noted_ms;
};

/* Step 0: reads key with a full round (prepare and accept of the value as
 * it is, as cas_touch), within timeout_ms (0: c's default). On CAS_OK
 * *absent says whether the key reads as absent (never written, or
 * deleted) and, when it does, *tomb is its tombstone (zeroed otherwise).
 * Errors as for cas_touch; *absent false and *tomb zeroed then. */
CAS_API int cas_collect_note(struct cas_client *c, const char *key, unsigned timeout_ms,
			     bool *absent, struct cas_tombstone *tomb);

/* What step 2 of a purge found. */
struct cas_purge_result {
	uint64_t epoch; /* the configuration the tombstone was written back in */
	size_t nodes;	/* its nodes (O, and N when joint): each answered */
	size_t dropped; /* of them, those that hold nothing of key now */
	size_t kept;	/* those that hold a later value of key, written
			   after the write-back, which the purge left */
};

/* Steps 1 and 2 for key, noted as *tomb by cas_collect_note at least
 * grace_ms ago (CAS_EINVAL, nothing sent, when less): writes the
 * tombstone back at a fresh ballot B, accepted by every node of c's
 * configuration (O and N when joint), then asks every node to drop key
 * (POST /v1/purge with B) until each has answered. When a node refuses
 * the configuration's epoch (it changed), c learns the new one and starts
 * again at step 1 there. All within timeout_ms (0: c's default). *out
 * (may be NULL) is zeroed first.
 *
 * CAS_OK: every node answered the purge (*out says how many dropped key).
 * CAS_EVERSION: key is not that tombstone any more (written since, or
 *   deleted again): nothing was written; note it again for a later run.
 * CAS_EUNAVAILABLE: a node refused or did not answer in time, at step 1
 *   (nothing was dropped) or step 2 (some nodes may have dropped key:
 *   harmless, run again once the node is back). cas_client_errmsg says
 *   which node and why.
 * CAS_EKEY, CAS_EINVAL (c or tomb NULL; grace not over), CAS_ENOMEM, and
 * the errors of learning the configuration (cas_client_connect). */
CAS_API int cas_collect_purge(struct cas_client *c, const char *key,
			      const struct cas_tombstone *tomb, unsigned grace_ms,
			      unsigned timeout_ms, struct cas_purge_result *out);

/* Learns c's configuration now, when it has none yet (the first operation
 * would otherwise), within timeout_ms (0: the client's default). CAS_OK
 * when c has one. Errors, with a one-line reason in errmsg:
 * CAS_EINVAL when the seeds belong to two clusters ("node URL belongs to
 * cluster X, not Y") or none is initialized ("cluster not initialized
 * (casctl init)"); CAS_EUNAVAILABLE when fewer than a majority of the
 * seeds answered with the cluster (naming a node that is not initialized
 * or did not answer); CAS_ENOMEM. Nothing is written to any node. */
CAS_API int cas_client_connect(struct cas_client *c, unsigned timeout_ms, char *errmsg,
			       size_t errmsg_len);

/* Copies c's cluster id (32 hex digits and a NUL) into out; "" while c
 * has not learned its configuration. */
CAS_API void cas_client_cluster(struct cas_client *c, char out[CAS_CLUSTER_HEX + 1]);

/* Copies c's configuration into *out (the caller frees it with
 * cas_cluster_config_clear), learning it first as cas_client_connect
 * does. On error *out is zeroed. */
CAS_API int cas_client_config(struct cas_client *c, struct cas_cluster_config *out, char *errmsg,
			      size_t errmsg_len);

/* Makes cfg (copied; of c's cluster, epoch not below c's) c's
 * configuration, without asking the nodes which one they hold: for
 * casctl member, which runs its rescan in the joint configuration it
 * installed. c still follows newer ones. CAS_EINVAL (another cluster),
 * CAS_EVERSION (older than c's), with a reason in errmsg. */
CAS_API int cas_client_use_config(struct cas_client *c, const struct cas_cluster_config *cfg,
				  char *errmsg, size_t errmsg_len);

/* Copies a one-line reason for the last failure of an operation of c (any
 * thread; "" when none) into buf: a node that refused, that did not
 * answer, the seeds that did not agree... */
CAS_API void cas_client_errmsg(struct cas_client *c, char *buf, size_t len);

/* Lists the keys the members of c's configuration hold, in byte order,
 * after after (NULL: from the start), at most limit (1..10000): the union
 * of every member's GET /v1/keys that answered. On CAS_OK *keys is a
 * malloc'd array of *n malloc'd keys (free with cas_keys_free) and *more
 * says whether some member has more keys past the last one. CAS_EUNAVAILABLE
 * when no member answered. */
CAS_API int cas_client_keys(struct cas_client *c, const char *after, unsigned limit,
			    unsigned timeout_ms, char ***keys, size_t *n, bool *more, char *errmsg,
			    size_t errmsg_len);

/* Every key the members of c's configuration hold (cas_client_keys,
 * page after page of CAS_KEYS_PAGE), in byte order, each once: *all is a
 * malloc'd array of *n_all malloc'd keys (free with cas_keys_free). A key
 * written while the pages are read may be missing. Errors as for
 * cas_client_keys, with a reason in errmsg; nothing is returned then. */
#define CAS_KEYS_PAGE 1000u
CAS_API int cas_client_keys_all(struct cas_client *c, unsigned timeout_ms, char ***all,
				size_t *n_all, char *errmsg, size_t errmsg_len);

/* The cluster's use of room, as its members report it (GET /v1/health,
 * PROTOCOL.md). Every member holds every register, so the cluster holds
 * what its fullest member holds and has the room of its smallest. */
struct cas_usage {
	uint64_t keys;	   /* the most registers a member holds */
	uint64_t bytes;	   /* the most bytes a member's store takes (its map in
			    * use, and its log's records, bound for the map) */
	uint64_t capacity; /* the least capacity of a member (>= bytes) */
	size_t answered;   /* members that reported their use */
	size_t members;	   /* members asked */
};

/* Asks every member of c's configuration for its health, at once, within
 * timeout_ms (0: the client's default), and sums up their use into *out
 * (zeroed on error). An answer younger than CAS_USAGE_CACHE_MS is given
 * again without asking, so that frequent callers (statfs) cost no
 * requests. CAS_EUNAVAILABLE when no member reported its use; errors of
 * learning the configuration as cas_client_connect's. A reason is in
 * cas_client_errmsg. */
#define CAS_USAGE_CACHE_MS 2000
CAS_API int cas_client_usage(struct cas_client *c, unsigned timeout_ms, struct cas_usage *out);

/* What register operations (cas_read, cas_change, cas_put, cas_cas,
 * cas_touch, cas_delete...) did, for monitoring (casfs's metrics, README
 * "Monitor"). */
enum cas_round_kind {
	CAS_ROUND_READ,	  /* cas_read */
	CAS_ROUND_CHANGE, /* cas_change, cas_put, cas_cas */
	CAS_ROUND_DELETE, /* cas_delete, cas_delete_version */
	CAS_ROUND_TOUCH,  /* cas_touch */
	CAS_ROUND_KINDS
};
enum cas_round_result {
	CAS_ROUND_OK,	       /* CAS_OK (or CAS_ENOCHANGE) */
	CAS_ROUND_VERSION,     /* CAS_EVERSION: the version moved */
	CAS_ROUND_REFUSED,     /* another code the change function returned */
	CAS_ROUND_UNAVAILABLE, /* CAS_EUNAVAILABLE: no majority in time */
	CAS_ROUND_ERROR,       /* any other code */
	CAS_ROUND_RESULTS
};
struct cas_client_stats {
	/* Operations ended, by kind and result. */
	uint64_t rounds[CAS_ROUND_KINDS][CAS_ROUND_RESULTS];
	/* Refusals of a prepare or an accept because a node had promised a
	 * higher ballot (another proposer's, PROTOCOL.md): one per answer. */
	uint64_t rejects;
	/* Attempts that failed (rejected, or a majority out of reach) and
	 * were tried again with a new ballot after a random backoff. */
	uint64_t retries;
};

/* Copies c's counters since cas_client_open into *out. Cheap (atomic
 * loads, no lock) and safe while operations run: each counter is exact,
 * the set need not be one instant's. */
CAS_API void cas_client_stats(struct cas_client *c, struct cas_client_stats *out);

#endif

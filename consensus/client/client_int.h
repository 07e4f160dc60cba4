/* client_int.h - the client's struct and the calls between client.c (the
 * operations) and follow.c (learning and following the cluster's
 * configuration). Private to consensus/client. */
#ifndef CAS_CLIENT_INT_H
#define CAS_CLIENT_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cas/admin.h>
#include <cas/client.h>

#include "pcache.h"
#include "proposer.h"
#include "stats.h"
#include "transport.h"

/* What one attempt of an operation addresses: the configuration's epoch
 * and its sets O and N as masks over the transport's nodes (PROTOCOL.md,
 * "The configuration"). gone: nodes of O or N that the client knows are
 * not at their address any more (another node answers there): never sent
 * to, and counted as silent. */
struct cas_view {
	char cluster[CAS_CLUSTER_HEX + 1];
	uint64_t epoch;
	size_t n_nodes;
	uint64_t old_set, new_set, gone;
};

struct cas_client {
	size_t n_seeds; /* transport nodes 0..n_seeds-1: the URLs opened on */
	unsigned timeout_ms;
	size_t max_value;
	pthread_mutex_t lock; /* guards proposer */
	struct cas_proposer proposer;
	uint64_t ops;	       /* operations started, atomic: each op's id */
	struct cas_auth *auth; /* TLS and token of every request */
	struct cas_transport *transport;
	struct cas_pcache *cache; /* NULL: the fast path is off */
	/* Keys with an operation running: a proposer runs one operation at a
	 * time on a key (msg.h, struct cas_recent), later ones wait. */
	pthread_mutex_t busy_lock;
	pthread_cond_t busy_cond; /* on CLOCK_MONOTONIC */
	char **busy;
	size_t n_busy, cap_busy;
	/* The configuration (follow.c). */
	pthread_mutex_t learn_lock; /* one learner at a time */
	pthread_mutex_t cfg_lock;   /* guards what follows */
	bool have_view;
	struct cas_view view;
	struct cas_cluster_config cfg;
	uint64_t ids[CAS_NODES_MAX]; /* node id of each transport node (0: unknown) */
	char errmsg[256];	     /* the last failure's reason */
	/* cas_client_usage's last answer (usage.c), under cfg_lock. */
	bool have_usage;
	uint64_t usage_at_ms;
	struct cas_usage usage;
	/* What its operations did (stats.c), atomic: cas_client_stats. */
	struct cas_client_stats stats;
};

/* The collector's rounds (collect.c; PROTOCOL.md, "Deletion"), which
 * client.c runs. */
struct cas_collect_round {
	/* cas_client_note_round's answer: whether key reads as absent, and
	 * its last change (recent[0]; all zeroes: none). */
	bool absent;
	struct cas_recent last;
	/* cas_client_write_back's question: the noted last change ... */
	struct cas_recent tomb;
	/* ... and its answer on CAS_OK: the ballot B every node of view's O
	 * and N accepted the tombstone at, and that configuration (old_set
	 * never 0). */
	struct cas_ballot ballot;
	struct cas_view view;
};

/* Step 0: a full round of key's value as it is (cas_touch), which fills
 * col->absent and col->last on CAS_OK. Errors as cas_touch's. */
int cas_client_note_round(struct cas_client *c, const char *key, unsigned timeout_ms,
			  struct cas_collect_round *col);

/* Step 1: the write-back of the tombstone col->tomb (cas_op_config.collect)
 * within timeout_ms (0: c's default), which fills col->ballot and
 * col->view on CAS_OK: every node of the configuration accepted it.
 * CAS_EVERSION: key is not that tombstone any more (nothing written).
 * CAS_EUNAVAILABLE: some node refused or did not answer by the deadline
 * (a reason in c's errmsg). */
int cas_client_write_back(struct cas_client *c, const char *key, unsigned timeout_ms,
			  struct cas_collect_round *col);

/* Records a one-line reason for the last failure of c (any thread). */
void cas_client_set_error(struct cas_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Copies c's view into *v, learning the configuration from the seeds
 * first when c has none yet, by deadline_ms (absolute, monotonic ms).
 * Errors (with the reason in c's errmsg): CAS_EUNAVAILABLE (too few seeds
 * answered), CAS_EINVAL (seeds of two clusters; no initialized node),
 * CAS_ENOMEM. */
int cas_follow_view(struct cas_client *c, uint64_t deadline_ms, struct cas_view *v);

/* A node refused epoch as stale: learns the newest configuration of c's
 * cluster from every node c knows, unless a newer one than epoch is
 * there already, and copies the view into *v. CAS_OK also when nothing
 * newer was found (*v is then the current view). */
int cas_follow_reload(struct cas_client *c, uint64_t epoch, uint64_t deadline_ms,
		      struct cas_view *v);

/* Makes cfg (of c's cluster, or the first) c's configuration when its
 * epoch is not below the current one; from then on c reloads only
 * toward newer epochs. */
int cas_follow_use(struct cas_client *c, const struct cas_cluster_config *cfg, char *errmsg,
		   size_t errmsg_len);

#endif

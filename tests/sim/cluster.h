/* cluster.h - a simulated CASPaxos cluster for tests: the real core's
 * acceptors and proposers in one process, a seeded network that drops,
 * delays, duplicates, reorders and partitions, acceptor crashes (keeping
 * exactly what was durable) and proposer crashes. Deterministic: one seed,
 * one run. What the proposers do is the caller's (struct cluster_hooks). */
#ifndef CAS_TEST_CLUSTER_H
#define CAS_TEST_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acceptor.h"
#include "proposer.h"

#define CLUSTER_MAX_ACC	 5
#define CLUSTER_MAX_PROP 4
#define CLUSTER_KEYS	 2
#define CLUSTER_DEADLINE 400 /* ticks (the core's milliseconds) an op may take */

/* The registers, by index: "ka", "kb". */
extern const char *const cluster_keys[CLUSTER_KEYS];

struct cluster;

/* What drives the proposers. Each hook gets the arg of cluster_init. */
struct cluster_hooks {
	/* Whether proposer pi has an op left to start. */
	bool (*has_work)(struct cluster *C, int pi, void *arg);
	/* Proposer pi is idle and should start an op now: the hook calls
	 * cluster_start_op once. */
	void (*start)(struct cluster *C, int pi, void *arg);
	/* Proposer pi's op ended: op->result is its code, *v the register
	 * it saw (valid during the call). crashed: the proposer crashed
	 * while it ran, and the op's outcome is unknown. */
	void (*done)(struct cluster *C, int pi, const struct cas_op *op, const struct cas_value *v,
		     bool crashed, void *arg);
	void *arg;
};

/* How rough one seed's world is; drawn from the seed. */
struct cluster_weather {
	unsigned drop;	    /* per mille of delivery events that drop */
	unsigned dup;	    /* per mille that duplicate */
	unsigned max_delay; /* ticks a packet may wait before it can land */
	unsigned crash;	    /* per mille of events that crash an acceptor */
	unsigned partition; /* per mille of events that change the partition */
	unsigned pcrash;    /* per mille of events that crash a proposer */
};

struct cluster_acceptor {
	bool up;
	/* vol: what the acceptor answers from; dur: what survives a crash.
	 * Both own their value bytes. */
	struct cas_acceptor_state vol[CLUSTER_KEYS];
	struct cas_acceptor_state dur[CLUSTER_KEYS];
	bool dirty[CLUSTER_KEYS];
};

struct cluster_proposer {
	struct cas_proposer core;
	unsigned generation; /* restarts so far */
	unsigned reach;	     /* bit i: acceptor i reachable (partitions) */
	bool busy;
	struct cas_op op;
	uint64_t serial; /* of the current op, to drop old replies */
	int key;	 /* of the current op */
	uint64_t deadline;
	uint64_t sent_at; /* of the current phase */
	uint64_t wake_at; /* when sleeping */
	bool sleeping;
	uint64_t rng; /* the proposer's own: backoff, and the caller's choices */
	/* Promises cached by the one-round-trip optimization (owned). */
	bool cached[CLUSTER_KEYS];
	struct cas_ballot cache_ballot[CLUSTER_KEYS];
	struct cas_reg cache_value[CLUSTER_KEYS];
};

struct cluster_packet {
	bool to_acceptor;
	int acc, prop, key;
	uint64_t serial;
	uint32_t attempt;
	uint64_t ready_at;
	struct cas_msg m; /* owns its value bytes */
};

struct cluster {
	uint64_t seed;
	uint64_t rng;
	bool verbose;
	bool reply_before_durable; /* negative control, in the sim's store */
	bool use_cache;		   /* the one-round-trip optimization */
	bool use_query;		   /* reads start with a query */
	struct cluster_weather w;
	int n_acc, n_prop;
	struct cluster_acceptor acc[CLUSTER_MAX_ACC];
	struct cluster_proposer prop[CLUSTER_MAX_PROP];
	struct cluster_packet *net;
	size_t n_net, cap_net;
	uint64_t now; /* ticks */
	uint64_t serial;
	struct cluster_hooks hooks;
	unsigned long rounds, faults;
	unsigned long cached_starts; /* ops that started from a cached promise */
};

/* Draws a world from seed: 3 or 5 acceptors, 2 to 4 proposers, whether
 * the one-round-trip optimization and read queries are on, and the
 * weather. All acceptors up, all proposers idle. reply_before_durable: the
 * negative control of a store that answers before it persists. Exits the
 * process when out of memory (here and in every call below). */
void cluster_init(struct cluster *C, uint64_t seed, bool verbose, bool reply_before_durable,
		  const struct cluster_hooks *hooks);

/* Frees what C holds. */
void cluster_free(struct cluster *C);

/* Starts an op of proposer pi (idle) on register key: fn with arg, as in
 * struct cas_op_config; read: a read, which starts with a query when the
 * world uses them. The op's deadline is CLUSTER_DEADLINE ticks away. */
void cluster_start_op(struct cluster *C, int pi, int key, cas_change_fn fn, void *arg, bool read);

/* One event: a packet lands (or is lost), the clock ticks, or a fault. */
void cluster_step(struct cluster *C);

/* Whether every proposer is idle with no work left. */
bool cluster_done(struct cluster *C);

#endif

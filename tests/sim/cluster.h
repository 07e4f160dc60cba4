/* cluster.h - a simulated CASPaxos cluster for tests: the real core's
 * acceptors and proposers in one process, a seeded network that drops,
 * delays, duplicates, reorders and partitions, acceptor crashes (keeping
 * exactly what was durable) and proposer crashes. Some seeds also change
 * the members (PROTOCOL.md, "Changing the members"): a reconfigurer actor
 * moves the cluster from O to N while the proposers work, see "Membership"
 * below. Some seeds delete registers, and a collector purges them, see
 * "Deletion" below. Deterministic: one seed, one run. What the proposers
 * do is the caller's (struct cluster_hooks). */
#ifndef CAS_TEST_CLUSTER_H
#define CAS_TEST_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acceptor.h"
#include "proposer.h"

#define CLUSTER_MAX_ACC 6 /* addresses: acceptor processes */
#define CLUSTER_MAX_IDS 6 /* node identities, the proposers' node indexes */
#define CLUSTER_MAX_PROP                                                                           \
	4 /* clients; the reconfigurer's and the collector's                                       \
	     proposers are two more */
#define CLUSTER_KEYS	 2
#define CLUSTER_DEADLINE 400 /* ticks (the core's milliseconds) an op may take */
/* How long a tombstone must stay the latest value before the collector
 * purges it: longer than any op's deadline (acceptor.h, "Deletion"). */
#define CLUSTER_GRACE (CLUSTER_DEADLINE + 10)

/* What cluster_start_op runs, beside the change function. */
#define CLUSTER_OP_READ	  1 /* a read: a query first, when the world uses them */
#define CLUSTER_OP_DELETE 2 /* a delete (cas_op_config.del) */

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
	unsigned rcrash;    /* per mille that crash the reconfigurer */
	unsigned gcrash;    /* per mille that crash the collector */
};

/* Membership.
 *
 * Node identities (indexes 0..n_ids-1, what an op's node indexes are)
 * live at addresses (acceptor slots, addr[]); a configuration names
 * identities. A seed without a change: n_acc identities at addresses
 * 0..n_acc-1, epoch 1 throughout. A seed with one (reconf.on) runs one of
 *
 *   add            3 -> 4 or 4 -> 5: a new identity at a new address
 *   remove         4 -> 3 or 5 -> 4: one member leaves (never below 3)
 *   replace        one member leaves, a new identity at a new address
 *   replace-wiped  the acceptor at a member's address loses everything
 *                  (a new disk: no state, no identity, no configuration),
 *                  and a new identity joins at that same address
 *
 * by PROTOCOL.md's steps, the reconfigurer driving them over the same
 * lossy network: (1) JOIN the new identity with the joint configuration
 * (epoch E+1, members O, joining N); (2) install it on every node of O
 * and N until majorities of O and of N took it; (3) rescan: a full round
 * of the identity change on every key at E+1 (its own proposer);
 * (4) install the stable N (E+2) until a majority of N took it. The
 * reconfigurer crashes now and then, and resumes later by re-running the
 * step it was at (casctl learns the step from the nodes).
 *
 * An acceptor refuses a request of another epoch than its own (older:
 * stale, newer: behind), every request when it has no identity (empty)
 * and every request once it is not in its own configuration (removed);
 * the proposer feeds the core a NULL reply for a refusal (never a vote).
 * Proposers start from epoch 1; proposer 0 keeps its view until a node
 * refuses it as stale and then reloads (from that node), the others also
 * reload from a random node before some ops. An identity whose address
 * now hosts a joining identity (replace-wiped) is not sent to: the
 * driver's rule of proposer.h, "Membership". */

struct cluster_config {
	uint64_t epoch;	  /* 0: none (an empty node) */
	unsigned members; /* O: identities, bit i for identity i */
	unsigned joining; /* N while joint, else 0 */
};

enum cluster_change { CHANGE_NONE, CHANGE_ADD, CHANGE_REMOVE, CHANGE_REPLACE, CHANGE_WIPED };

/* The reconfigurer's progress (steps 1 to 4, then 5: done). */
struct cluster_reconf {
	bool on;
	bool skip_rescan; /* negative control: step 3 left out */
	enum cluster_change change;
	int leaving, joining; /* identities; -1 when none */
	struct cluster_config from, joint, to;
	int step;	   /* 0: not yet begun */
	uint64_t start_at; /* tick step 1 begins */
	uint64_t wipe_at;  /* replace-wiped: tick the disk is lost */
	bool wiped;
	bool down; /* crashed, resumes at resume_at */
	uint64_t resume_at;
	unsigned acked;	  /* identities that took this step's config */
	uint64_t sent_at; /* of this step's last round of messages */
	int key;	  /* step 3: the key being rescanned */
	unsigned crashes, rescans;
	uint64_t done_at;
};

/* Deletion (PROTOCOL.md, "Deletion"; acceptor.h).
 *
 * In a seed with deletes (del.on), the clients' ops include deletes. Once
 * every client is through its first ops, the collector (casctl gc) goes
 * over the keys, one after the other: it reads the key (a full round);
 * when that is a tombstone, it waits CLUSTER_GRACE and then runs the
 * write-back of that same tombstone (an op in collect mode: every node
 * of its view must accept it at one ballot B), and then sends PURGE(key,
 * B) to every node of its view until each answered. The clients' second
 * ops are released when the first write-back begins, or when its purge
 * begins (drawn per seed), so that they race with both steps; and they
 * start with the promises they cached before the delete. The collector
 * crashes now and then and starts again from its read, as casctl gc would
 * (it keeps nothing); a node that refuses its epoch sends it back to the
 * write-back in the configuration it reloads. Acceptors keep a durable
 * floor; a wiped one comes back without it (a node that joins needs
 * none, acceptor.h). */
enum cluster_gc_step {
	GC_WAIT,  /* the clients' first ops are not all done */
	GC_READ,  /* reading the key */
	GC_GRACE, /* the tombstone must stay that long */
	GC_WRITE, /* the write-back, accepted by all */
	GC_PURGE, /* PURGE to every node */
	GC_PAUSE, /* before the next key */
};

struct cluster_gc {
	bool on;
	bool skip_grace;       /* negative control: no wait */
	bool release_at_purge; /* the second ops wait for the purge, not the
				  write-back */
	bool released;
	uint64_t think; /* then clients start an op one tick in think */
	enum cluster_gc_step step;
	int key;
	int visited; /* keys of this pass */
	struct cas_recent tomb;
	uint64_t until; /* GRACE, PAUSE */
	struct cas_ballot ballot;
	unsigned acked;	 /* identities that answered the PURGE */
	uint64_t serial; /* of this PURGE round */
	uint64_t sent_at;
	bool down;
	uint64_t resume_at;
	unsigned long crashes, writebacks, purges, drops, aborted;
};

struct cluster_acceptor {
	bool up;
	/* Identity and configuration: durable, lost only with the disk. */
	int id; /* -1: none */
	struct cluster_config cfg;
	/* vol: what the acceptor answers from; dur: what survives a crash.
	 * Both own their value bytes. */
	struct cas_acceptor_state vol[CLUSTER_KEYS];
	struct cas_acceptor_state dur[CLUSTER_KEYS];
	bool dirty[CLUSTER_KEYS];
	uint64_t floor; /* deletion's, durable with each drop */
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
	uint64_t cache_epoch[CLUSTER_KEYS];
	struct cluster_config view; /* the configuration it believes in */
	bool keeps_view;	    /* reloads only when refused as stale */
};

enum cluster_pkt {
	PKT_MSG,    /* a protocol request or its answer */
	PKT_CONFIG, /* POST /v1/admin/config and its answer */
	PKT_JOIN,   /* POST /v1/admin/join and its answer */
	PKT_PURGE,  /* the collector's PURGE and its answer */
};

enum cluster_refusal { REFUSE_NONE, REFUSE_EMPTY, REFUSE_STALE, REFUSE_BEHIND };

struct cluster_packet {
	bool to_acceptor;
	enum cluster_pkt kind;
	int acc, prop, key;
	int node; /* the identity a request is for; in an answer to a config or
		     a join, the identity that answered */
	uint64_t serial;
	uint32_t attempt;
	uint64_t epoch;		      /* a request's configuration epoch */
	enum cluster_refusal refused; /* answers */
	bool took;		      /* answers to a config or a join */
	struct cluster_config cfg;    /* a config or join request's; in a
					 refusal, the acceptor's own */
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
	int n_acc, n_prop; /* addresses in use; clients */
	int n_ids;	   /* identities an op addresses */
	int addr[CLUSTER_MAX_IDS];
	struct cluster_reconf reconf;
	struct cluster_gc gc;
	struct cluster_acceptor acc[CLUSTER_MAX_ACC];
	/* The clients', then the reconfigurer's (n_prop) and the collector's
	 * (n_prop + 1). */
	struct cluster_proposer prop[CLUSTER_MAX_PROP + 2];
	struct cluster_packet *net;
	size_t n_net, cap_net;
	uint64_t now; /* ticks */
	uint64_t serial;
	struct cluster_hooks hooks;
	unsigned long rounds, faults;
	unsigned long cached_starts;  /* ops that started from a cached promise */
	unsigned long refusals;	      /* requests refused for their epoch */
	unsigned long floor_refusals; /* and by a floor (deletion) */
	bool calm;		      /* the weather cleared for the change to end */
};

struct cluster_options {
	bool verbose;
	bool reply_before_durable; /* negative control: a store that answers
				      before it persists */
	bool changes;		   /* one seed in three changes its members */
	bool skip_rescan;	   /* negative control: a change without step 3 */
	bool deletes;		   /* one seed in two deletes and collects */
	bool skip_grace;	   /* negative control: the collector purges
				      without waiting */
};

/* Draws a world from seed: 3 or 5 acceptors, 2 to 4 proposers, whether
 * the one-round-trip optimization and read queries are on, and the
 * weather; one seed in three (with changes set) also a change of members
 * (see "Membership"), with 3 to 5 acceptors; one seed in two (with
 * deletes set) deletes and collects (see "Deletion"). All acceptors up,
 * all proposers idle. Exits the process when out of memory (here and in
 * every call below). */
void cluster_init(struct cluster *C, uint64_t seed, const struct cluster_options *opt,
		  const struct cluster_hooks *hooks);

/* Frees what C holds. */
void cluster_free(struct cluster *C);

/* Starts an op of proposer pi (idle) on register key: fn with arg, as in
 * struct cas_op_config; flags: CLUSTER_OP_READ, a read, which starts with
 * a query when the world uses them; CLUSTER_OP_DELETE, a delete. The
 * op's deadline is CLUSTER_DEADLINE ticks away. */
void cluster_start_op(struct cluster *C, int pi, int key, cas_change_fn fn, void *arg,
		      unsigned flags);

/* One event: a packet lands (or is lost), the clock ticks, or a fault. */
void cluster_step(struct cluster *C);

/* Whether every proposer is idle with no work left, and the change of
 * members (if any) is done. (The collector is left where it is.) */
bool cluster_done(struct cluster *C);

#endif

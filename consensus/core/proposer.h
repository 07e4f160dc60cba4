/* proposer.h - the CASPaxos proposer, pure: one operation (a change of one
 * key) is a state machine fed with replies and the clock, and it answers
 * with the effect its driver must carry out. Drivers: client/client.c (libcurl)
 * and the simulation in tests/. */
#ifndef CAS_PROPOSER_H
#define CAS_PROPOSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cas/cas.h>

#include "msg.h"

/* Largest cluster one operation can address. */
#define CAS_NODES_MAX 64

/* Backoff after a failed attempt: uniform in [0, min(CAP, BASE << n)) ms. */
#define CAS_BACKOFF_BASE_MS 1
#define CAS_BACKOFF_CAP_MS  64

/* After a backoff, a proposer's ballot counter leaps by this much per
 * millisecond slept: more than a busy proposer's ballots grow meanwhile
 * (two per operation, an operation taking a round trip and an fsync). */
#define CAS_BALLOT_LEAP_PER_MS 8

/* A proposer's ballot source. Not thread-safe: a driver shared by threads
 * serializes calls that take a proposer. */
struct cas_proposer {
	uint64_t id;	  /* != 0 */
	uint64_t counter; /* highest counter used or seen */
#ifdef CAS_SIM_FAULTS
	struct cas_ballot reuse; /* negative control only (faults.h) */
	struct cas_reg reuse_base;
	bool reuse_set;
#endif
};

void cas_proposer_init(struct cas_proposer *p, uint64_t id);

/* A fresh ballot, higher than every ballot p made or observed. */
struct cas_ballot cas_proposer_next_ballot(struct cas_proposer *p);

/* Remembers that seen exists, so the next ballot is above it. */
void cas_proposer_observe(struct cas_proposer *p, struct cas_ballot seen);

/* Majority of n: n / 2 + 1. */
size_t cas_quorum(size_t n);

enum cas_op_phase {
	CAS_OP_IDLE,
	CAS_OP_QUERY,	/* waiting for the current values of a read */
	CAS_OP_PREPARE, /* waiting for promises */
	CAS_OP_ACCEPT,	/* waiting for accepts */
	CAS_OP_BACKOFF, /* sleeping before the next attempt */
	CAS_OP_DONE,
};

enum cas_effect_kind {
	CAS_EFFECT_WAIT,  /* nothing to do: wait for replies or the deadline */
	CAS_EFFECT_SEND,  /* send msg to the targets, tagged with attempt */
	CAS_EFFECT_SLEEP, /* call cas_op_wake at until_ms (or at the deadline) */
	CAS_EFFECT_DONE,  /* finished: see op->result and cas_op_take_value */
};

struct cas_effect {
	enum cas_effect_kind kind;
	const struct cas_msg *msg; /* SEND: valid until the next call on op */
	uint32_t attempt;	   /* SEND: replies must carry it back; every
				      SEND (prepare or accept) has its own */
	uint64_t targets;	   /* SEND: the nodes to send to, bit i for
				      node i: the attempt's O and N (all
				      n_nodes nodes when stable) */
	uint64_t epoch;		   /* SEND: the configuration epoch to tag
				      every request of it with (cfg.epoch of
				      this attempt) */
	uint64_t until_ms;	   /* SLEEP */
};

/* Membership (consensus/PROTOCOL.md, "Cluster identity and membership").
 *
 * An op addresses nodes 0..n_nodes-1; one index stands for one node
 * identity. Its configuration gives two bitmasks over them: O (old_set,
 * the members; 0 means all n_nodes nodes) and, while the configuration
 * is joint, N (new_set, the members the cluster moves to; 0 when
 * stable). The quorums:
 *
 *	phase			completes with
 *	prepare			a majority of O
 *	accept			a majority of O and a majority of N
 *	a read's query		agreeing nodes that form a majority of O
 *				and a majority of N
 *	cached promise		promises from a majority of O and of N
 *				(the accept's quorum, see cas_op_take_cache)
 *
 * and a phase fails (BACKOFF) as soon as the nodes that failed it leave
 * one of its required majorities out of reach. With N = 0 every rule is
 * a majority of O, as before membership changes existed.
 *
 * Why: every prepare quorum meets every accept quorum (an accept quorum
 * holds a majority of O), so within one epoch a prepare sees every value
 * chosen before it. A value chosen in the joint configuration was
 * accepted by a majority of N, so the stable configuration N that follows
 * sees it; a value chosen before the joint one (by a majority of O only)
 * reaches a majority of N by the rescan (PROTOCOL.md, step 3), which is
 * a full round at the joint epoch: its prepare meets the majority of O
 * that chose the value, its accept puts it on a majority of N. Across
 * epochs the nodes keep the rest: they answer only requests of their own
 * epoch, so a stale proposer's quorum is never completed with nodes that
 * moved on. That is why an attempt (its prepare and its accept) carries
 * one epoch: a prepare at one epoch and an accept at another would pair
 * quorums of two configurations that need not meet.
 *
 * A node outside both sets is not sent to (SEND's targets leave it out)
 * and its answers are ignored. A node replaced by an empty one at the
 * same address is two identities, so two indexes: the old one in O, the
 * new one in N. The driver must never count the new node's answer for
 * the old index (it does not send to an index whose node it knows to be
 * gone, and feeds it NULL): an empty node counted in O would let a
 * prepare miss the value the old one held. */

struct cas_op_config {
	const char *key;  /* valid for the op's life */
	size_t n_nodes;	  /* 1..CAS_NODES_MAX */
	uint64_t old_set; /* O, bit i for node i; 0: all n_nodes nodes */
	uint64_t new_set; /* N while joint; 0 when stable */
	uint64_t epoch;	  /* the configuration's epoch, opaque to the core:
			     SEND hands it back for the requests' tags */

	cas_change_fn fn; /* the change; see client.h */
	void *arg;
	uint64_t op_id;	      /* unique among the proposer's operations, != 0;
				 a proposer runs one operation at a time on a
				 key (msg.h, struct cas_recent) */
	uint64_t deadline_ms; /* absolute, on the driver's clock */
	size_t max_value;     /* largest value fn may produce */
	/* The one-round-trip optimization: when cached_value is not NULL, a
	 * majority promised cached_ballot with the accept of cached_value
	 * (see cas_op_take_cache), so the op starts with the accept phase.
	 * Borrowed for cas_op_start only. Each cached promise may start one
	 * op only: a ballot must never carry two values. A promise holds in
	 * the configuration it was made in: cached_epoch is the epoch of the
	 * op that made it (its cfg.epoch once DONE), and the cache is ignored
	 * (a full round runs) when it is not epoch. */
	struct cas_ballot cached_ballot;
	const struct cas_reg *cached_value;
	uint64_t cached_epoch;
	/* A read (fn is the identity): start with a query, which changes
	 * nothing and costs no fsync; when a majority answer with the same
	 * accepted ballot, that value is the answer. Otherwise (a write is
	 * under way) a full round follows. */
	bool read_only;
	/* A delete (PROTOCOL.md, "Deletion"): when fn returns CAS_OK (fn may
	 * be NULL: always), the register becomes a tombstone (msg.h: version
	 * 0, no data; its recent changes name this op) instead of version + 1
	 * with fn's bytes, which are ignored. A register already absent is
	 * written back unchanged. fn sees the register as for a write, so it
	 * may refuse (CAS_EVERSION: a conditional delete). */
	bool del;
	/* The collector's write-back of a tombstone (acceptor.h, "Deletion",
	 * step 1). fn is not called, no cached promise is used and no next
	 * ballot is asked for: the op builds on cur only when cur is absent
	 * and its last change is tomb (recent[0]; all zeroes: no change, a
	 * register never changed or already dropped where the prepare
	 * looked), writes it back unchanged, and completes only when every
	 * node of O and of N accepted it (any refusal or silence fails the
	 * attempt). Otherwise it ends at once with CAS_EVERSION, having
	 * written nothing. After CAS_OK, op->ballot is the ballot B that
	 * every node accepted, for the PURGE of step 2. */
	bool collect;
	struct cas_recent tomb;
};

/* One operation. Fields are the op's own; drivers read phase, attempt and
 * result, and touch nothing else. */
struct cas_op {
	struct cas_op_config cfg;    /* of the current attempt */
	uint64_t set_o, set_n;	     /* its O (never 0) and N (0: stable) */
	size_t quorum_o, quorum_n;   /* their majorities */
	size_t next_n_nodes;	     /* the next attempt's members */
	uint64_t next_old, next_new; /* (cas_op_set_members) */
	uint64_t next_epoch;
	bool next_set;
	enum cas_op_phase phase;
	uint32_t attempt;
	struct cas_ballot ballot;
	uint64_t answered[(CAS_NODES_MAX + 63) / 64];
	uint64_t ok_nodes, failed_nodes; /* this phase's, bit i: node i */
	size_t oks, fails;
	struct cas_ballot best_ballot; /* highest accepted ballot promised */
	struct cas_reg best;	       /* its value (owned) */
	bool best_set;
	struct cas_msg out;	      /* the message of the current phase;
					 in ACCEPT and after, out.value is
					 the proposal (owned) */
	int verdict;		      /* what fn said in this attempt */
	int result;		      /* set when DONE */
	bool have_value;	      /* DONE after an accepted proposal */
	bool out_is_change;	      /* out.value is a new version of ours */
	struct cas_reg *mine;	      /* our earlier proposals (owned), to */
	size_t n_mine;		      /* answer with when one of them won */
	size_t answer;		      /* index in mine of the proposal that */
	bool answer_set;	      /* won, as seen by this attempt */
	bool from_cache;	      /* this attempt skipped the prepare */
	uint64_t promised;	      /* accepts that promised out.next */
	struct cas_reg *q_vals;	      /* QUERY: the distinct accepted values */
	struct cas_ballot *q_ballots; /* answered, their ballots, and which */
	uint64_t *q_nodes;	      /* nodes answered each */
	size_t n_q;
#ifdef CAS_SIM_FAULTS
	struct cas_reg fault_base; /* negative control only (faults.h) */
#endif
	uint64_t conflicts;	/* rejected phases so far */
	uint64_t slept_from_ms; /* when the current backoff began */
};

/* Sets op up for cfg; no I/O. */
void cas_op_init(struct cas_op *op, const struct cas_op_config *cfg);

/* The driver learned a newer configuration (a node refused the op's
 * epoch as stale, and the driver reloaded): the op's next attempt uses
 * n_nodes, old_set, new_set and epoch as in struct cas_op_config. The
 * attempt under way keeps its own (one attempt, one epoch): it fails
 * through its refusals, and the attempt after its backoff prepares in
 * the new configuration. Before cas_op_start it applies at once. An
 * index keeps naming the same node across the change (earlier replies
 * are counted by index). */
void cas_op_set_members(struct cas_op *op, size_t n_nodes, uint64_t old_set, uint64_t new_set,
			uint64_t epoch);

/* Begins the first attempt: a SEND of a PREPARE with a fresh ballot. */
void cas_op_start(struct cas_op *op, struct cas_proposer *p, struct cas_effect *eff);

/* Feeds node's reply to attempt. reply == NULL stands for "no answer"
 * (transport error or that node's timeout; also a node that refused the
 * request's cluster or epoch: such a refusal never counts toward a
 * quorum). Replies to other attempts, from nodes outside the attempt's O
 * and N, duplicates and replies of the wrong type are ignored (WAIT).
 * When a phase fails (one of its majorities is out of reach, see
 * "Membership" above) the op goes to BACKOFF
 * with a SLEEP, or to DONE with CAS_EUNAVAILABLE when the sleep would pass
 * the deadline. rng is the driver's PRNG state. */
void cas_op_on_reply(struct cas_op *op, struct cas_proposer *p, size_t node, uint32_t attempt,
		     const struct cas_msg *reply, uint64_t now_ms, uint64_t *rng,
		     struct cas_effect *eff);

/* Ends a BACKOFF: a fresh ballot and a new PREPARE. Past the deadline: DONE
 * with CAS_EUNAVAILABLE. */
void cas_op_wake(struct cas_op *op, struct cas_proposer *p, uint64_t now_ms,
		 struct cas_effect *eff);

/* The deadline passed while waiting: DONE with CAS_EUNAVAILABLE (a no-op
 * when already DONE). */
void cas_op_expire(struct cas_op *op, struct cas_effect *eff);

/* The driver got an answer that retrying cannot mend (a node said the
 * value is too large, say): DONE with code (a no-op when already DONE). */
void cas_op_abort(struct cas_op *op, int code, struct cas_effect *eff);

/* After DONE with result CAS_OK or a code that fn returned: moves the
 * register's value (as it is after the op) into *out, which the caller
 * frees with cas_value_clear. Otherwise *out is zeroed. */
void cas_op_take_value(struct cas_op *op, struct cas_value *out);

/* After DONE with an accepted proposal, and before cas_op_take_value: when
 * the nodes that also promised the op's next ballot form the accept's
 * quorum (a majority of O, and of N when joint), copies that ballot and
 * the accepted value (owned by the caller) for a later op on the same key
 * to start from (cas_op_config.cached_value, with cached_epoch =
 * op->cfg.epoch), and returns true. */
bool cas_op_take_cache(const struct cas_op *op, struct cas_ballot *ballot, struct cas_reg *value);

/* Frees what op owns. */
void cas_op_clear(struct cas_op *op);

#endif

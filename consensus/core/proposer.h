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
	CAS_EFFECT_SEND,  /* send msg to every node, tagged with attempt */
	CAS_EFFECT_SLEEP, /* call cas_op_wake at until_ms (or at the deadline) */
	CAS_EFFECT_DONE,  /* finished: see op->result and cas_op_take_value */
};

struct cas_effect {
	enum cas_effect_kind kind;
	const struct cas_msg *msg; /* SEND: valid until the next call on op */
	uint32_t attempt;	   /* SEND: replies must carry it back; every
				      SEND (prepare or accept) has its own */
	uint64_t until_ms;	   /* SLEEP */
};

struct cas_op_config {
	const char *key;  /* valid for the op's life */
	size_t n_nodes;	  /* 1..CAS_NODES_MAX */
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
	 * op only: a ballot must never carry two values. */
	struct cas_ballot cached_ballot;
	const struct cas_reg *cached_value;
	/* A read (fn is the identity): start with a query, which changes
	 * nothing and costs no fsync; when a majority answer with the same
	 * accepted ballot, that value is the answer. Otherwise (a write is
	 * under way) a full round follows. */
	bool read_only;
};

/* One operation. Fields are the op's own; drivers read phase, attempt and
 * result, and touch nothing else. */
struct cas_op {
	struct cas_op_config cfg;
	size_t quorum;
	enum cas_op_phase phase;
	uint32_t attempt;
	struct cas_ballot ballot;
	uint64_t answered[(CAS_NODES_MAX + 63) / 64];
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
	size_t promised;	      /* accepts that promised out.next */
	struct cas_reg *q_vals;	      /* QUERY: the distinct accepted values */
	struct cas_ballot *q_ballots; /* answered, their ballots, and how */
	size_t *q_count, n_q;	      /* many nodes answered each */
#ifdef CAS_SIM_FAULTS
	struct cas_reg fault_base; /* negative control only (faults.h) */
#endif
	uint64_t conflicts;	/* rejected phases so far */
	uint64_t slept_from_ms; /* when the current backoff began */
};

/* Sets op up for cfg; no I/O. */
void cas_op_init(struct cas_op *op, const struct cas_op_config *cfg);

/* Begins the first attempt: a SEND of a PREPARE with a fresh ballot. */
void cas_op_start(struct cas_op *op, struct cas_proposer *p, struct cas_effect *eff);

/* Feeds node's reply to attempt. reply == NULL stands for "no answer"
 * (transport error or that node's timeout). Replies to other attempts,
 * duplicates and replies of the wrong type are ignored (WAIT). When a
 * phase fails (a majority can no longer agree) the op goes to BACKOFF
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
 * a majority also promised the op's next ballot, copies that ballot and
 * the accepted value (owned by the caller) for a later op on the same key
 * to start from (cas_op_config.cached_value), and returns true. */
bool cas_op_take_cache(const struct cas_op *op, struct cas_ballot *ballot, struct cas_reg *value);

/* Frees what op owns. */
void cas_op_clear(struct cas_op *op);

#endif

/* acceptor.c - the CASPaxos acceptor rules (paper, section 2.2), and the
 * floor and purge of deletion (section 3.1; acceptor.h, "Deletion"). */
#include <stdint.h>
#include <string.h>

#include "acceptor.h"
#include "faults.h"

static void reject(struct cas_msg *reply, const struct cas_acceptor_state *st)
{
	/* The blocking ballot tells the proposer how high to go next. */
	reply->type = CAS_MSG_REJECT;
	reply->ballot = cas_ballot_max(st->promise, st->accepted);
}

static bool prepare_blocked(struct cas_ballot b, struct cas_ballot seen)
{
	/* The counter-only control takes an equal ballot for a
	 * retransmission and promises again, as implementations that compare
	 * counters alone do. */
	if (CAS_FAULT(CAS_FAULT_COUNTER_ONLY))
		return cas_ballot_cmp(b, seen) < 0;
	return cas_ballot_cmp(b, seen) <= 0;
}

bool cas_acceptor_handle(struct cas_acceptor_state *st, const struct cas_msg *req,
			 struct cas_msg *reply)
{
	memset(reply, 0, sizeof(*reply));

	switch (req->type) {
	case CAS_MSG_PREPARE:
		/* Step 2: reject a ballot not above everything seen. */
		if (prepare_blocked(req->ballot, st->promise) ||
		    prepare_blocked(req->ballot, st->accepted)) {
			reject(reply, st);
			return false;
		}
		st->promise = req->ballot;
		/* Step 3: answer with the *accepted* ballot and its value,
		 * never the promise just made. */
		reply->type = CAS_MSG_PROMISE;
		reply->ballot = CAS_FAULT(CAS_FAULT_PROMISE_BALLOT) ? st->promise : st->accepted;
		reply->value = st->value;
		return true;
	case CAS_MSG_ACCEPT:
		/* Step 5: accept unless a higher ballot was promised or
		 * accepted meanwhile. */
		if (cas_ballot_cmp(req->ballot, st->promise) < 0 ||
		    cas_ballot_cmp(req->ballot, st->accepted) < 0) {
			reject(reply, st);
			return false;
		}
		st->promise = req->ballot;
		st->accepted = req->ballot;
		st->value = req->value;
		reply->type = CAS_MSG_ACCEPTED;
		reply->ballot = req->ballot;
		if (cas_ballot_cmp(req->next, req->ballot) > 0) {
			/* The one-round-trip optimization: promise the
			 * proposer's next ballot with this accept. */
			st->promise = req->next;
			reply->next = req->next;
		}
		return true;
	case CAS_MSG_QUERY:
		reply->type = CAS_MSG_CURRENT;
		reply->ballot = st->accepted;
		reply->value = st->value;
		return false;
	default:
		reply->type = CAS_MSG_REJECT;
		return false;
	}
}

bool cas_acceptor_may_drop(const struct cas_acceptor_state *st, struct cas_ballot b)
{
	return !cas_ballot_is_zero(b) && cas_ballot_cmp(st->accepted, b) == 0 &&
	       cas_reg_absent(&st->value) && st->value.len == 0;
}

/* A key the acceptor does not hold: never seen, or dropped. */
static bool held(const struct cas_acceptor_state *st)
{
	return !cas_ballot_is_zero(st->promise) || !cas_ballot_is_zero(st->accepted);
}

enum cas_acceptor_change cas_acceptor_step(struct cas_acceptor_state *st, uint64_t *floor,
					   const struct cas_msg *req, struct cas_msg *reply)
{
	memset(reply, 0, sizeof(*reply));
	if (req->type == CAS_MSG_PURGE) {
		reply->type = CAS_MSG_PURGED;
		if (!cas_acceptor_may_drop(st, req->ballot)) {
			reply->ballot = st->accepted;
			return CAS_ACCEPTOR_KEEP;
		}
		/* Past every ballot this acceptor promised or accepted for
		 * the key (its promise, >= the tombstone's ballot): a drop
		 * must not forget a promise. */
		if (!CAS_FAULT(CAS_FAULT_SKIP_FLOOR)) {
			if (req->ballot.counter > *floor)
				*floor = req->ballot.counter;
			if (st->promise.counter > *floor && !CAS_FAULT(CAS_FAULT_FLOOR_AT_BALLOT))
				*floor = st->promise.counter;
		}
		return CAS_ACCEPTOR_DROP;
	}
	if ((req->type == CAS_MSG_PREPARE || req->type == CAS_MSG_ACCEPT) && !held(st) &&
	    *floor > 0 && req->ballot.counter <= *floor) {
		reply->type = CAS_MSG_REJECT;
		reply->ballot = (struct cas_ballot){*floor, UINT64_MAX};
		return CAS_ACCEPTOR_KEEP;
	}
	return cas_acceptor_handle(st, req, reply) ? CAS_ACCEPTOR_STORE : CAS_ACCEPTOR_KEEP;
}

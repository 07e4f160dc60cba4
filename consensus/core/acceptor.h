/* acceptor.h - the CASPaxos acceptor rules, pure: state and request in,
 * new state and reply out. Storage is the caller's: casd's node/node.c is the one
 * place that applies these rules to stored state. */
#ifndef CAS_ACCEPTOR_H
#define CAS_ACCEPTOR_H

#include <stdbool.h>

#include "msg.h"

/* What an acceptor keeps for one key. A key never seen is all zeroes. */
struct cas_acceptor_state {
	struct cas_ballot promise;
	struct cas_ballot accepted;
	struct cas_reg value;
};

/* Applies req (PREPARE or ACCEPT) to st and fills *reply.
 *
 * PREPARE b: rejected when b <= promise or b <= accepted (reply REJECT
 * with the blocking ballot); otherwise promise = b and reply PROMISE with
 * the accepted ballot and value (paper, section 2.2, steps 2 and 3).
 * ACCEPT b, v, next n: rejected when b < promise or b < accepted;
 * otherwise accepted = b, value = v, promise = n when n > b (a prepare of
 * n answered at once: the proposer knows what it would return) or b, and
 * reply ACCEPTED b with the promise n (step 5).
 *
 * QUERY: reply CURRENT with the accepted ballot and value; no change.
 * (When a majority answer a query with the same accepted ballot, that
 * value is chosen and no later one was chosen before they answered: a
 * linearizable read without a write; see proposer.c.)
 *
 * Returns true when st changed: the caller must make st durable before
 * it sends reply. Any other req type yields a REJECT with a zero ballot and
 * no change. Borrowing: reply->value.data points into st; after an
 * ACCEPT, st->value.data points into req. Nothing is allocated. */
bool cas_acceptor_handle(struct cas_acceptor_state *st, const struct cas_msg *req,
			 struct cas_msg *reply);

#endif

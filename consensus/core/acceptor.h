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

/* Deletion (PROTOCOL.md, "Deletion"; the CASPaxos paper, section 3.1).
 *
 * A delete is an ordinary change whose new value is a tombstone (msg.h:
 * version 0, no data). Later a collector purges it, per key K:
 *
 *   1. write-back: a full round (prepare, then accept of the tombstone
 *      unchanged) at a fresh ballot B whose accept EVERY acceptor of the
 *      configuration (O and N) accepted; an acceptor that does not answer
 *      means: stop, try again later;
 *   2. purge: PURGE(K, B) to every acceptor. One whose accepted ballot
 *      for K is B (so its value is that tombstone) drops K and raises its
 *      floor F to at least the counter of its promise for K (which is >=
 *      B), in one durable write; the others keep what they have.
 *
 * The floor is one number per acceptor, not per key: on a key the
 * acceptor does not hold (its state all zeroes), a PREPARE or ACCEPT whose
 * ballot counter is <= F is rejected with the blocking ballot
 * (F, UINT64_MAX), the highest ballot with counter F, so the proposer
 * moves past it (the paper's "age" of the tombstone that proposers must
 * pass). Keys the acceptor holds follow cas_acceptor_handle alone.
 *
 * Why a drop forgets no promise. After the drop the acceptor rejects every
 * ballot with counter <= F on K, so it acts as the acceptor it was with
 * its promise raised to (F, UINT64_MAX): it answers no prepare and takes
 * no accept it had promised to refuse. With F raised to B.counter only,
 * a promise made after step 1 (a new write's prepare at P > B) would be
 * forgotten, and an older proposal between B and P accepted after it: the
 * simulation found exactly that (a write chosen, then missed by the
 * prepare that had the promise), hence F >= the promise's counter.
 *
 * Why no old value comes back. Step 1 makes every acceptor accept the
 * tombstone T at B, so from then on each acceptor's accepted ballot for K
 * is >= B (accepted ballots only grow) until it drops K, and it drops K
 * only while its accepted ballot is exactly B. So every acceptor answers
 * either a value accepted at >= B (T, or a value chosen after T, built on
 * it: T was chosen at B, and Paxos keeps every later value a descendant)
 * or "absent" ({0,0} and an empty version-0 value, which reads exactly as
 * T does). A value V chosen before T had a ballot < B; to bring it back a
 * proposer must get an accept quorum to take a proposal built on V:
 *
 *   - a new prepare: every acceptor answers >= B or absent, so no quorum
 *     answers V as the highest value;
 *   - a promise made before the purge, used now (a cached promise of the
 *     one-round-trip optimization, or an accept delayed in the network or
 *     in a slow proposer): its ballot b was promised before step 1's
 *     prepare passed it, so b < B. An acceptor holding K has accepted
 *     >= B > b and rejects it; one that dropped K has F >= B.counter >=
 *     b.counter and rejects it. Without the floor, the acceptors that
 *     dropped K would take it (sim --broken skip-floor);
 *   - an acceptor down or cut off during the purge: if it missed step 1,
 *     step 1 did not complete and step 2 never ran; if it missed step 2,
 *     it still holds T at B and answers T (the collector sends step 2
 *     again later). Were step 1 to complete with a majority, such an
 *     acceptor could keep V under B and be the highest answer of a quorum
 *     whose others dropped K (sim --broken skip-all-accept).
 *
 * The floor must be durable with the drop: an acceptor that restarts
 * without it takes stale accepts. A node that joins later needs no floor:
 * it answers only requests of its own, later epoch, and a promise is used
 * only at the epoch it was made in (proposer.h, "Membership"); what it
 * holds of K came from rounds at its epoch, whose prepares passed the
 * floors or accepted ballots of a majority of the old members.
 *
 * What the floor does not cover: an operation still retrying when its
 * change is deleted and purged may find K absent and apply its change
 * again. The collector purges only a tombstone that stayed the latest
 * value (the same last change, cas_reg_seq) for longer than the longest
 * operation deadline (PROTOCOL.md, "Deletion"). */

/* What the caller must make durable before it sends the reply. */
enum cas_acceptor_change {
	CAS_ACCEPTOR_KEEP,  /* nothing changed */
	CAS_ACCEPTOR_STORE, /* st changed: store it */
	CAS_ACCEPTOR_DROP,  /* drop the key and store *floor, in one atomic
			       write; st is left as it was (the caller frees
			       its bytes): the key's state is all zeroes from
			       then on */
};

/* Whether an acceptor whose state for a key is st drops it on PURGE with
 * ballot b: its accepted ballot is b (not {0,0}) and its value a
 * tombstone. */
bool cas_acceptor_may_drop(const struct cas_acceptor_state *st, struct cas_ballot b);

/* The acceptor with deletion: cas_acceptor_handle, plus the floor *floor
 * (0: none) on keys the acceptor does not hold (st all zeroes; a held key
 * always has a promise), plus PURGE: when cas_acceptor_may_drop, raises
 * *floor to at least st->promise.counter and req->ballot.counter, replies
 * PURGED {0,0} and returns CAS_ACCEPTOR_DROP; otherwise replies PURGED
 * with st's accepted ballot and changes nothing. Borrowing as for
 * cas_acceptor_handle. */
enum cas_acceptor_change cas_acceptor_step(struct cas_acceptor_state *st, uint64_t *floor,
					   const struct cas_msg *req, struct cas_msg *reply);

#endif

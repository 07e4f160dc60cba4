/* ballot.h - CASPaxos ballots: (counter, proposer id), totally ordered. */
#ifndef CAS_BALLOT_H
#define CAS_BALLOT_H

#include <stdbool.h>
#include <stdint.h>

/* The highest ballot counter acceptors take, 2^62. A ballot near 2^64
 * would leave no room above it: once promised, no proposer could ever
 * prepare the key again. Acceptors refuse requests whose ballots pass
 * this (PROTOCOL.md); proposers that meet one fail with CAS_EBALLOT. Far
 * out of reach of honest proposers: a counter grows by a few per
 * operation and by CAS_BALLOT_LEAP_PER_MS per millisecond of backoff. */
#define CAS_BALLOT_COUNTER_MAX (UINT64_C(1) << 62)

/* Ordered by counter, then by id. {0, 0} is "no ballot": lower than every
 * ballot a proposer makes (proposers count from 1 and have ids != 0). */
struct cas_ballot {
	uint64_t counter;
	uint64_t id;
};

/* <0, 0, >0 as a is lower than, equal to, or higher than b. */
int cas_ballot_cmp(struct cas_ballot a, struct cas_ballot b);

/* True for the "no ballot" value {0, 0}. */
bool cas_ballot_is_zero(struct cas_ballot b);

/* True when b's counter is at most CAS_BALLOT_COUNTER_MAX. */
bool cas_ballot_in_range(struct cas_ballot b);

/* The higher of a and b. */
struct cas_ballot cas_ballot_max(struct cas_ballot a, struct cas_ballot b);

#endif

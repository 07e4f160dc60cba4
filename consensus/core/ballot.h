/* ballot.h - CASPaxos ballots: (counter, proposer id), totally ordered. */
#ifndef CAS_BALLOT_H
#define CAS_BALLOT_H

#include <stdbool.h>
#include <stdint.h>

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

/* The higher of a and b. */
struct cas_ballot cas_ballot_max(struct cas_ballot a, struct cas_ballot b);

#endif

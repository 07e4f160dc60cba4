/* ballot.c - ordering of CASPaxos ballots. */
#include "ballot.h"
#include "faults.h"

#ifdef CAS_SIM_FAULTS
unsigned cas_sim_faults;
#endif

int cas_ballot_cmp(struct cas_ballot a, struct cas_ballot b)
{
	/* Both parts matter: comparing counters alone lets two proposers
	 * with the same counter both win a prepare. */
	if (a.counter != b.counter)
		return a.counter < b.counter ? -1 : 1;
	if (a.id != b.id && !CAS_FAULT(CAS_FAULT_COUNTER_ONLY))
		return a.id < b.id ? -1 : 1;
	return 0;
}

bool cas_ballot_in_range(struct cas_ballot b)
{
	return b.counter <= CAS_BALLOT_COUNTER_MAX;
}

bool cas_ballot_is_zero(struct cas_ballot b)
{
	return b.counter == 0 && b.id == 0;
}

struct cas_ballot cas_ballot_max(struct cas_ballot a, struct cas_ballot b)
{
	return cas_ballot_cmp(a, b) >= 0 ? a : b;
}

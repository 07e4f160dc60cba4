/* faults.h - deliberate bugs for negative controls. Compiled only into the
 * core built for the simulation (CAS_SIM_FAULTS defined); the simulation
 * switches one on and must then catch it. Production builds have no trace
 * of them. */
#ifndef CAS_FAULTS_H
#define CAS_FAULTS_H

#ifdef CAS_SIM_FAULTS

enum cas_fault {
	CAS_FAULT_QUORUM_ONE = 1 << 0,	     /* a "majority" of one */
	CAS_FAULT_PROMISE_BALLOT = 1 << 1,   /* promise returns the promised
						ballot, not the accepted one */
	CAS_FAULT_COUNTER_ONLY = 1 << 2,     /* ballots compared on counter
						alone; an equal one is taken for
						a retransmission */
	CAS_FAULT_QUERY_ONE = 1 << 4,	     /* a read's query trusts one
						answer */
	CAS_FAULT_BALLOT_REUSE = 1 << 3,     /* after a failed accept, the
						next operation reuses its ballot
						for another value, no prepare */
	CAS_FAULT_MINE_BY_VERSION = 1 << 5,  /* an op that finds an earlier
						proposal of its own chosen takes
						the first one of that version,
						not the one that won */
	CAS_FAULT_SKIP_FLOOR = 1 << 6,	     /* a purge drops the key without
						raising the floor: stale promises
						and accepts pass */
	CAS_FAULT_FLOOR_AT_BALLOT = 1 << 8,  /* a purge raises the floor to
						the tombstone's ballot only,
						forgetting a higher promise */
	CAS_FAULT_COLLECT_MAJORITY = 1 << 7, /* the collector's write-back
						of a tombstone completes with a
						majority, not every acceptor */
};

/* The faults switched on; 0 outside negative controls. */
extern unsigned cas_sim_faults;

#define CAS_FAULT(f) (cas_sim_faults & (f))
#else
#define CAS_FAULT(f) 0
#endif

#endif

/* memregs.h - an in-memory cluster of registers behind fs/regs.h, for the
 * namespace checker: simulated proposers run one at a time on their own
 * stacks under a seeded scheduler (every regs call is a scheduling point,
 * sleep_ms lets the others run), and their calls fail as their faults say. */
#ifndef CAS_MEMREGS_H
#define CAS_MEMREGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "regs.h"

struct memregs;

/* Faults of one proposer, each in calls per 10,000. */
struct memregs_faults {
	unsigned read_fail;   /* a read fails: CAS_EUNAVAILABLE, nothing read */
	unsigned fail_before; /* a change fails before it applies: CAS_EUNAVAILABLE */
	unsigned fail_after;  /* a change applies, then reports CAS_EUNAVAILABLE */
	unsigned crash;	      /* the proposer crashes: this and every later call
				 fails without effect */
};

/* A cluster with no registers and no proposers, its scheduler seeded with
 * seed. NULL when out of memory. */
struct memregs *memregs_new(uint64_t seed);

void memregs_free(struct memregs *m);

/* Regs over m for the caller itself, outside the scheduler: no faults, no
 * scheduling points, no deadline. With scratch, changes go to a scratch
 * layer over the registers that memregs_scratch_clear drops (reads see
 * it): an observer may resolve what it meets without changing the run. */
void memregs_direct(struct memregs *m, bool scratch, struct casfs_regs *out);

void memregs_scratch_clear(struct memregs *m);

/* Adds a proposer that will run fn(arg, regs) on its own stack with the
 * faults f. CAS_OK or CAS_ENOMEM. */
int memregs_spawn(struct memregs *m, const struct memregs_faults *f,
		  void (*fn)(void *arg, const struct casfs_regs *r), void *arg);

/* Runs the proposers until every one has returned. After each step in
 * which a register changed, calls step(arg); stops early when it returns
 * false. True when every proposer finished. */
bool memregs_run(struct memregs *m, bool (*step)(void *arg), void *arg);

/* The logical clock: milliseconds, one per scheduling step. */
uint64_t memregs_now(const struct memregs *m);

/* Starts an operation of the proposer behind r: its deadline is ms from now. */
void memregs_deadline(const struct casfs_regs *r, unsigned ms);

/* True once the proposer behind r has crashed. */
bool memregs_crashed(const struct casfs_regs *r);

/* Calls step after every step, not only after those that changed a
 * register (an invariant that depends on time). */
void memregs_every_step(struct memregs *m, bool on);

/* Gives the proposer behind r its own clock: offset_ms plus the logical
 * clock's milliseconds times (10^6 + ppm) / 10^6 (ppm > -10^6). Its
 * sleep_ms then counts on that clock. Call from the proposer. */
void memregs_clock(const struct casfs_regs *r, uint64_t offset_ms, int ppm);

/* The own clock of the proposer behind r (the logical clock by default). */
uint64_t memregs_local_ms(const struct casfs_regs *r);

/* per10k of the proposer's reads and changes wait up to max_ms (logical)
 * before they reach the cluster, and as long again before their answer
 * comes back: a change then applies somewhere within a long call. */
void memregs_delays(const struct casfs_regs *r, unsigned per10k, unsigned max_ms);

/* Cuts the proposer behind r off from the cluster from logical time
 * from_ms until until_ms: calls that would reach it then fail
 * (CAS_EUNAVAILABLE) without effect, and a change applied just before
 * loses its answer. */
void memregs_partition(const struct casfs_regs *r, uint64_t from_ms, uint64_t until_ms);

/* Registers changed so far (a statistic). */
uint64_t memregs_changes(const struct memregs *m);

/* Delete rounds that left a tombstone so far (a statistic). */
uint64_t memregs_deletes(const struct memregs *m);

/* Calls fn for every register that is not absent (neither never written
 * nor a tombstone), outside the scheduler; v is valid for the call. */
void memregs_each(struct memregs *m,
		  void (*fn)(void *arg, const char *key, const struct cas_value *v), void *arg);

/* One multi-register compare-and-set as a single step (setting up a run,
 * or a stand-in transaction layer): when every keys[i] still has version
 * versions[i],
 * sets those with vals[i].data != NULL (taking the data) and returns
 * CAS_OK; else CAS_ECONFLICT. Faults apply as to a change. */
int memregs_multi(const struct casfs_regs *r, size_t n, const char *const *keys,
		  const uint64_t *versions, struct cas_value *vals);

#endif

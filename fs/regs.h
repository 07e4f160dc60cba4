/* regs.h - the registers the namespace code runs on: reads and change
 * rounds by key, plus the clock, sleep and randomness the transaction
 * code needs. A mount implements it over the client library (round.c);
 * the namespace checker over an in-memory cluster that injects faults
 * (tests/sim). Nothing in txn.c or ns.c touches the client or the OS
 * except through here. */
#ifndef CASFS_REGS_H
#define CASFS_REGS_H

#include <stddef.h>
#include <stdint.h>

#include <cas/cas.h>

struct casfs_regs_ops {
	/* Reads key linearizably into *out (version 0 and no bytes for a
	 * register never written; the caller frees out with
	 * cas_value_clear). Returns what cas_read returns: CAS_OK, or
	 * CAS_EUNAVAILABLE when no majority answered in time, CAS_EIO, ... */
	int (*read)(void *arg, const char *key, struct cas_value *out);
	/* One change round on key with fn, with cas_change's contract
	 * (client.h): fn may run several times, each on a fresh cur; out
	 * (may be NULL) receives the value after the round. Returns what
	 * cas_change returns: CAS_OK, a code fn returned, or
	 * CAS_EUNAVAILABLE when the change may or may not have been
	 * applied. */
	int (*change)(void *arg, const char *key, cas_change_fn fn, void *fn_arg,
		      struct cas_value *out);
	/* One delete round on key, with cas_delete's contract (client.h):
	 * when fn (run as for change, several times perhaps) returns CAS_OK
	 * the register becomes a tombstone, which reads as absent (version 0,
	 * no bytes) and whose next write is version 1; CAS_ENOCHANGE leaves
	 * it as it is; another code is returned. out (may be NULL) receives
	 * the value after the round. CAS_EUNAVAILABLE: may or may not have
	 * been applied. */
	int (*del)(void *arg, const char *key, cas_change_fn fn, void *fn_arg,
		   struct cas_value *out);
	/* Milliseconds left before the current request's deadline; 0 once
	 * it has passed. */
	unsigned (*left_ms)(void *arg);
	/* Sleeps ms milliseconds (at most until the deadline). In the
	 * checker: lets the other proposers run. */
	void (*sleep_ms)(void *arg, unsigned ms);
	/* Fills buf with len random bytes. CAS_OK or CAS_EIO. */
	int (*random)(void *arg, void *buf, size_t len);
};

/* One request's view of the registers: the operations and their state. */
struct casfs_regs {
	const struct casfs_regs_ops *ops;
	void *arg;
};

#endif

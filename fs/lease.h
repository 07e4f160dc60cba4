/* lease.h - sessions, leases and lock attempts over regs.h, without FUSE
 * and without the OS: a mount's session (created, renewed, given up), a
 * contender's judgement that a silent session has expired, and one
 * attempt at a lock register that clears the holds of expired sessions
 * it meets. The mount (lock.c, session.c) and the lease simulation
 * (tests/sim/leasesim.c) run this same code. Why it is safe without
 * synchronized clocks: the top of lease.c and README.md, "Locks". */
#ifndef CASFS_LEASE_H
#define CASFS_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "lockreg.h"
#include "regs.h"

/* The default lease, and its bounds (-o lease=SECONDS). */
#define CASFS_LEASE_DEFAULT_MS 10000
#define CASFS_LEASE_MIN_MS     500
#define CASFS_LEASE_MAX_MS     3600000

/* The holder gives its locks up this long before its lease runs out on
 * its own clock: room for clocks that run at different rates (up to 10%
 * apart, see lease.c). */
#define CASFS_LEASE_MARGIN_MS(lease) ((lease) / 5)

/* A monotonic clock in milliseconds: the mount's CLOCK_MONOTONIC, or a
 * simulated proposer's clock. Never goes back. */
struct casfs_clock {
	uint64_t (*now_ms)(void *arg);
	void *arg;
};

/* A session as its own mount sees it. */
struct casfs_session {
	unsigned char sid[CASFS_SID_LEN];
	uint32_t lease_ms;
	uint64_t renewals;    /* the counter the last successful renewal wrote */
	uint64_t valid_until; /* own clock: from then on its locks are lost */
	bool lost;	      /* sticky: once lost, never valid again */
};

/* Creates a session with a fresh random id, registered in the cluster
 * with lease_ms; valid until the start of that round plus the lease minus
 * the margin. CAS_OK and *s; otherwise *s is not a session (a code of the
 * round: the register may have been written, and is then never renewed). */
int casfs_session_create(const struct casfs_regs *r, const struct casfs_clock *clk,
			 uint32_t lease_ms, struct casfs_session *s);

/* One renewal round. CAS_OK: s->valid_until moved to the start of this
 * round plus lease minus margin. CAS_EVERSION: the session is lost (its
 * time ran out before or during the round, or a contender expired it);
 * s->lost is then set. Another code: the round failed; s is unchanged
 * but may have run out meanwhile. */
int casfs_session_renew(const struct casfs_regs *r, const struct casfs_clock *clk,
			struct casfs_session *s);

/* True while s's locks stand at now (own clock). The first call at or
 * after valid_until sets s->lost, for good. */
bool casfs_session_check(struct casfs_session *s, uint64_t now);

/* Marks session sid expired in the cluster (its holder gives up: an
 * unmount, or a session it lost): its holds then bind nobody and every
 * contender clears them at once. CAS_OK or the round's code. */
int casfs_session_end(const struct casfs_regs *r, const unsigned char *sid);

/* What a contender remembers of the sessions whose holds stood in its
 * way: the version of each one's register it last read and when it first
 * read that version, on its own clock. lock/unlock (may be NULL) guard
 * the table when several threads share it; never held across a round. */
#define CASFS_WATCH_MAX 32
struct casfs_watch_entry {
	bool used;
	unsigned char sid[CASFS_SID_LEN];
	uint64_t version;
	uint64_t since; /* own clock, after the read that first saw version */
	uint64_t seen;	/* own clock, the last read */
};
struct casfs_watch {
	struct casfs_watch_entry e[CASFS_WATCH_MAX];
	void (*lock)(void *arg);
	void (*unlock)(void *arg);
	void *lock_arg;
};

/* The outcome of casfs_lock_try. */
struct casfs_lock_result {
	uint64_t token;		    /* a lock: the new hold's token */
	struct casfs_hold conflict; /* CAS_EVERSION: the first hold in the way */
	bool holds_left;	    /* the owner still holds locks of rq's kind */
};

/* One attempt at rq on the lock register key, in one change round (more
 * when it meets holds of sessions that turn out expired): drops those
 * holds, and applies rq when nothing else stands in the way. For each
 * session in the way it reads the session register and notes it in w; a
 * session whose register shows the same version for longer than its
 * lease (on clk) is marked expired (conditional on that version) and its
 * holds dropped. CAS_OK and *res; CAS_EVERSION when a live hold is in the
 * way (res->conflict); CAS_ETOOBIG when the register is full; a code of
 * the rounds (CAS_EUNAVAILABLE: may or may not have been applied). The
 * caller checks its own session after a lock (casfs_session_check). */
int casfs_lock_try(const struct casfs_regs *r, const struct casfs_clock *clk, const char *key,
		   const struct casfs_lock_req *rq, struct casfs_watch *w,
		   struct casfs_lock_result *res);

/* Reads the lock register key (through casfs_txn_read) into *out.
 * CAS_OK, CAS_EIO for a value that is not a lock register, or the read's
 * code. */
int casfs_lock_read(const struct casfs_regs *r, const char *key, struct casfs_lockreg *out);

/* Deliberately broken variants, for the lease simulation's negative
 * controls; 0 in every real use. */
enum {
	/* The holder measures its lease from the end of a renewal round. */
	CASFS_LEASE_FAULT_HOLDER_END = 1,
	/* A contender clears a silent session's holds without marking the
	 * session expired first. */
	CASFS_LEASE_FAULT_NO_MARK = 2,
	/* A contender starts its wait before the read that saw the version. */
	CASFS_LEASE_FAULT_EARLY_WATCH = 4,
	/* A holder counts a renewal that succeeds after its locks ran out:
	 * loss is not sticky. */
	CASFS_LEASE_FAULT_REVIVE = 8,
};
extern unsigned casfs_lease_fault;

#endif

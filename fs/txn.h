/* txn.h - changes that span registers: all or nothing, linearizable with
 * every single-register change, finished or undone by whoever meets them
 * when the proposer that began one dies (a transaction record plus an
 * intent on each register it changes, in the manner of Percolator; the
 * argument and what a crash at each step leaves are in fs/FORMAT.md).
 *
 * Every read and change of a casfs register goes through here, so that an
 * intent is never taken for a value: casfs_txn_read and casfs_txn_change
 * resolve the intents they meet (a committed transaction's is rolled
 * forward, an aborted one's rolled back; a pending one is waited for a
 * little, then aborted). Values here are whole register values (bytes);
 * what they mean (fs records) is the caller's. */
#ifndef CASFS_TXN_H
#define CASFS_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cas/cas.h>

#include "regs.h"

/* Most registers one transaction changes (a rename over an existing
 * name: two directories, the moved inode, the replaced one, and the
 * cluster-wide directory-move register). */
#define CASFS_TXN_MAX_PARTS 6

/* The key of the register that serializes moves of directories across
 * directories cluster-wide (each such move changes it), so that two moves
 * cannot together make a cycle. */
#define CASFS_TXN_DIRMOVE_KEY "m/dirmove"

/* Transactions waited for before they are aborted: a writer that meets
 * a pending transaction's intent sleeps (regs->sleep_ms, 1, 2, 4, ... up
 * to 32 ms) at most this many times, reading its record after each. */
#define CASFS_TXN_WAIT_SLEEPS 12

/* A change of one register's committed value: given cur (read-only,
 * valid for the call; version 0 and no bytes when the value is absent:
 * a register never written, or one whose creation by a transaction was
 * undone), either set next->data (malloc'd, taken also on error) and
 * next->len and return CAS_OK; return CAS_ENOCHANGE to leave it as it is;
 * or return another CAS_* code to fail (in a transaction: to abort it;
 * the code is returned). An empty next makes the value absent: callers
 * store no empty values (fs records never are), nor values that begin
 * with the intent magic (fs/FORMAT.md, "Transactions").
 * next->version is ignored. The function may run several times, each on
 * a fresh cur, and must not depend on earlier runs. A function that wants
 * to fail with an errno keeps it in its own arg and returns CAS_EINVAL. */
typedef int (*casfs_txn_fn)(void *arg, const struct cas_value *cur, struct cas_value *next);

struct casfs_txn_part {
	const char *key; /* borrowed for the call */
	casfs_txn_fn fn;
	void *arg;
};

/* Reads key's committed value into *out (the caller clears it): the
 * register's bytes, or, when it holds an intent, the value the intent's
 * transaction stands for now (the new one if it committed, else the old
 * one). out->version is the register's version (an intent and its
 * resolution each move it), 0 when the value is absent. Returns a CAS_*
 * code; CAS_EUNAVAILABLE when the cluster did not answer in time. */
int casfs_txn_read(const struct casfs_regs *r, const char *key, struct cas_value *out);

/* Applies fn to key's committed value in one change round, first
 * resolving an intent the register holds. out (may be NULL) receives the
 * committed value after the change. Returns CAS_OK, a code fn returned, or
 * CAS_EUNAVAILABLE (may or may not have been applied). */
int casfs_txn_change(const struct casfs_regs *r, const char *key, casfs_txn_fn fn, void *arg,
		     struct cas_value *out);

/* Deletes key (regs.h's del: a tombstone, absent) when fn, run on its
 * committed value after an intent the register holds is resolved,
 * returns CAS_OK; CAS_ENOCHANGE keeps it; another code is returned and
 * nothing is deleted. out (may be NULL) as for casfs_txn_change: absent
 * after a delete. The register's next write starts at version 1. */
int casfs_txn_delete(const struct casfs_regs *r, const char *key, casfs_txn_fn fn, void *arg,
		     struct cas_value *out);

/* Deletes the transaction record key ("t/" and the id) when it is final
 * (committed or aborted); a pending record is kept (CAS_EVERSION), an
 * absent one left so. Only when no register holds an intent of it, nor
 * will (fs/FORMAT.md, "Deletion"): the owner after settling every
 * intent, the collector after checking every key the record names. */
int casfs_txn_drop_record(const struct casfs_regs *r, const char *key);

/* For the collector (fs/gc.c). A record's states: */
enum { CASFS_TXN_PENDING = 1, CASFS_TXN_COMMITTED = 2, CASFS_TXN_ABORTED = 3 };

/* Decodes the transaction record value v: *state, and the *n keys it
 * names into keys (NUL-terminated). CAS_OK, or CAS_EIO when v is no
 * record (an absent one is not either). */
int casfs_txn_record_parse(const struct cas_value *v, int *state,
			   char keys[CASFS_TXN_MAX_PARTS + 1][CAS_KEY_MAX + 1], size_t *n);

/* True when the register value v holds an intent of the transaction
 * whose record key is record_key ("t/" and 32 hex digits). */
bool casfs_txn_intent_of(const struct cas_value *v, const char *record_key);

/* Aborts the transaction of record key record_key if it is still pending
 * (safe at any time: its owner's commit then fails, txn.c 7). CAS_OK
 * when the record is final or absent after, or a round's error. */
int casfs_txn_abort(const struct casfs_regs *r, const char *record_key);

/* Applies every part (1..CASFS_TXN_MAX_PARTS, distinct keys) as one
 * change: all or nothing, linearizable with every other change. The parts'
 * functions see the committed values. Returns CAS_OK (out[i], when out is
 * not NULL, receive the new committed values, to clear), the code of the
 * first function that failed (nothing was changed), or CAS_EUNAVAILABLE
 * when the deadline passed with the outcome unknown (the transaction is
 * then committed or aborted by whoever meets it next; never half). When
 * dirmove is true the transaction also changes CASFS_TXN_DIRMOVE_KEY,
 * first of all, and check (may be NULL) runs after that register holds
 * the transaction's intent and before any other part is changed: a move
 * of a directory checks there that the destination is not inside the
 * moved directory (reads through casfs_txn_read see every earlier
 * directory move); a non-zero CAS_* code from check aborts with that code. */
int casfs_txn_run(const struct casfs_regs *r, const struct casfs_txn_part *parts, size_t n,
		  bool dirmove, int (*check)(void *arg), void *check_arg, struct cas_value *out);

/* Deliberately broken variants, for tests that show the checkers catch
 * them (negative controls); 0 in every real use. */
enum {
	/* casfs_txn_read answers a pending transaction's new value. */
	CASFS_TXN_FAULT_READ_PENDING_NEW = 1,
	/* casfs_txn_run rolls forward without committing its record. */
	CASFS_TXN_FAULT_SKIP_COMMIT = 2,
	/* casfs_txn_read takes an absent record for an abort of the intent
	 * it met, though the record may have been deleted after a commit. */
	CASFS_TXN_FAULT_TRUST_ABSENT = 4,
};
extern unsigned casfs_txn_fault;

#endif

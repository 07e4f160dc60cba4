/* msg.h - register values and the messages of the CASPaxos protocol, as
 * the pure core sees them (the wire form is in codec.h and PROTOCOL.md). */
#ifndef CAS_MSG_H
#define CAS_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cas/cas.h>

#include "ballot.h"

/* How many proposers' last changes a register remembers. */
#define CAS_RECENT_MAX 16

/* The last change a proposer made to a register: which proposal made it
 * (each attempt of an operation proposes under its own id), and the
 * change's number, version here (the register's version after it until
 * the register is first deleted; it counts deletes too and never goes
 * back, see cas_reg_seq). A proposer whose accept failed
 * finds its operation here on retry and knows its change was applied,
 * instead of applying it twice. A proposer runs one operation at a time on
 * a key, so its entry names its latest change there; entries of the
 * proposers that changed the register least recently are dropped past
 * CAS_RECENT_MAX, and an operation whose entry could have been dropped
 * that way reports its outcome unknown rather than risk applying twice. */
struct cas_recent {
	uint64_t proposer;
	uint64_t op;
	uint64_t version;
};

/* A register's value as acceptors store it. Who owns data is said by each
 * function that fills one. recent is newest first, one entry a proposer.
 *
 * Version 0 is an absent register: never written, or deleted (a
 * tombstone, PROTOCOL.md "Deletion"). It carries no data; reads answer
 * it as absent and the next write makes version 1, a new life. A
 * tombstone keeps its recent changes (the delete's among them), so that
 * a retried delete or write recognises its own change across it. */
struct cas_reg {
	uint64_t version;
	uint32_t n_recent;
	struct cas_recent recent[CAS_RECENT_MAX];
	unsigned char *data;
	size_t len;
};

enum cas_msg_type {
	CAS_MSG_NONE = 0,
	CAS_MSG_PREPARE,  /* request: key, ballot */
	CAS_MSG_ACCEPT,	  /* request: key, ballot, value, and next: a higher
			     ballot to promise once accepted ({0,0}: none),
			     the paper's one-round-trip optimization */
	CAS_MSG_PROMISE,  /* reply to PREPARE: ballot = accepted ballot
			     ({0,0}: none), value = accepted value */
	CAS_MSG_ACCEPTED, /* reply to ACCEPT: ballot = the accepted ballot,
			     next = the ballot promised with it ({0,0}:
			     none) */
	CAS_MSG_REJECT,	  /* reply to either: ballot = the blocking ballot
			     (the acceptor's promise or accepted ballot,
			     whichever is higher) */
	CAS_MSG_QUERY,	  /* request: key; changes nothing */
	CAS_MSG_CURRENT,  /* reply to QUERY: ballot = accepted ballot
			     ({0,0}: none), value = accepted value */
	CAS_MSG_PURGE,	  /* request: key, ballot: the collector's drop of
			     a tombstone accepted at ballot by every
			     acceptor (PROTOCOL.md, "Deletion") */
	CAS_MSG_PURGED,	  /* reply to PURGE: ballot = the key's accepted
			     ballot after it ({0,0}: the acceptor holds no
			     value of the key: dropped, or never had one) */
};

struct cas_msg {
	enum cas_msg_type type;
	char key[CAS_KEY_MAX + 1]; /* NUL-terminated; "" in replies */
	struct cas_ballot ballot;
	struct cas_ballot next;
	struct cas_reg value;
};

/* Frees m->value.data (when m owns it) and zeroes m. */
void cas_msg_clear(struct cas_msg *m);

/* Checks what both wire forms leave to the meaning of a decoded request
 * m: its ballots are in range (CAS_BALLOT_COUNTER_MAX). CAS_OK, or
 * CAS_EINVAL with a one-line reason in errmsg. */
int cas_msg_check_request(const struct cas_msg *m, char *errmsg, size_t errmsg_len);

/* Whether r is absent: version 0, a register never written or a
 * tombstone. */
bool cas_reg_absent(const struct cas_reg *r);

/* The number of r's last change: recent[0].version (0 when no change
 * was ever made). One more with every change, deletes included, so it
 * grows across a register's lives while its version starts again at 1;
 * it equals the version until the first delete. */
uint64_t cas_reg_seq(const struct cas_reg *r);

/* Copies src into dst, value bytes included (dst owns its copy).
 * CAS_ENOMEM leaves dst zeroed. */
int cas_reg_copy(struct cas_reg *dst, const struct cas_reg *src);

#endif

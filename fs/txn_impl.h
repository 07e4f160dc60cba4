/* txn_impl.h - what txn.c and txn_codec.c share: the formats of
 * transaction records, intents and the directory-move register
 * (fs/FORMAT.md, "Transactions"). Private to fs/. */
#ifndef CASFS_TXN_IMPL_H
#define CASFS_TXN_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include <cas/cas.h>

#define ID_LEN 16

#define FORMAT_VERSION 1
static const unsigned char record_magic[2] = {'c', 'T'};
static const unsigned char intent_magic[2] = {'c', 'I'};
static const unsigned char move_magic[2] = {'c', 'M'};

/* Record: magic, version, state, key count, reserved; then the keys. */
#define RECORD_HEAD 6
enum { ST_PENDING = 1, ST_COMMITTED = 2, ST_ABORTED = 3 };

/* Intent: magic, version, flags, id, old length; old; new length; new. */
#define INTENT_HEAD 24
#define INTENT_OLD  1 /* flags: there is an old value (else absent) */
#define INTENT_NEW  2 /* flags: there is a new value (else absent) */

/* The directory-move register: magic, version, reserved, moves (64). */
#define MOVE_LEN 12

/* An intent decoded in place: pointers into the value it came from. */
struct intent {
	const unsigned char *id;
	const unsigned char *old;
	size_t old_len;
	const unsigned char *new_;
	size_t new_len;
};

/* Whether v holds an intent (by its magic). */
bool txn_is_intent(const struct cas_value *v);

/* Decodes the intent v holds (txn_is_intent(v)). CAS_OK or CAS_EIO. */
int txn_intent_decode(const struct cas_value *v, struct intent *in);

/* Sets *out (version 0) to the intent of transaction id replacing old by
 * next (both as committed values: empty for absent). */
int txn_intent_encode(const unsigned char *id, const struct cas_value *old,
		      const struct cas_value *next, struct cas_value *out);

/* The committed value of a register that holds no intent, borrowing cur's
 * bytes: an empty value is absent (version 0). */
struct cas_value txn_plain_view(const struct cas_value *cur);

/* Turns v, which holds no intent, into its committed value in place. */
void txn_own_plain(struct cas_value *v);

#endif

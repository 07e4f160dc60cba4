/* txn.c - changes that span registers (txn.h): a transaction record plus
 * one intent per register changed, resolved by whoever meets them. */

/*
 * Why it is safe. fs/FORMAT.md ("Transactions") has the formats and what
 * a crash at each step leaves behind.
 *
 * Every register R has a *committed value* at every moment: the value it
 * holds (absent when empty), or, when it holds an intent of transaction
 * T, the intent's new value once T's record says COMMITTED and its old
 * value while the record says PENDING or ABORTED (or is absent; see 2).
 * A transaction takes effect at its *commit point*, the change round that
 * turns its record from PENDING to COMMITTED; a single-register change at
 * its change round; a read at a moment argued in 5.
 *
 * 1. A record's state moves only PENDING -> COMMITTED (by its owner) or
 *    PENDING -> ABORTED (by anyone), each by a change round whose function
 *    checks the current state: once it left PENDING it is final.
 * 2. The owner creates its record (a round that returned CAS_OK, so every
 *    later read sees it) before it places any intent, so an intent's
 *    record exists. An absent record reads as aborted: the garbage
 *    collector of a later issue removes a record only once none of its
 *    intents is left.
 * 3. An intent is replaced only by a *settle* round (roll forward, roll
 *    back) whose function checks that the register still holds that
 *    transaction's intent, sent after its record was seen COMMITTED
 *    (forward) or ABORTED (back), or by the owner rolling back its own
 *    intents once it will never commit them. Every other change function
 *    here refuses to write over an intent. So from the placement of T's
 *    intent on R to T's commit point R's committed value stays the old
 *    value T's part function saw, and at the commit point every part of T
 *    still holds T's intent (one rolled back means the record was aborted,
 *    and then the commit round fails). The commit round therefore switches
 *    the committed values of all T's registers at once, from the values its
 *    functions read to the values they returned: all or nothing, and in
 *    sequence with every other change.
 * 4. A settle leaves R's committed value as it is (it writes what the
 *    intent stands for, given a final state), so anyone may settle, as
 *    often as it likes, in any order, and a crash between settles is
 *    harmless.
 * 5. casfs_txn_read reads R at t1 and then T's record at t2 > t1.
 *    PENDING at t2: T's commit point, if any, comes after t2, and R held
 *    the intent all through [t1, t2] (3), so the old value was R's
 *    committed value at t1: the read takes effect at t1, without a write.
 *    COMMITTED at t2: the commit point c < t2, and R held the intent at
 *    max(t1, c), when its committed value was the new value. ABORTED: as
 *    PENDING (an abort after t1) or the old value since the abort.
 * 6. casfs_txn_change applies its function in a round whose function
 *    checks that R holds no intent: R's committed value is then the value
 *    the function sees, and the round is the change's point.
 * 7. Progress: a pending transaction is waited for a bounded number of
 *    short sleeps, then aborted (safe at any time, by 1 and 3: its owner's
 *    commit round fails, and the owner rolls back and starts again). Intents
 *    are placed in one order (the directory-move register, then the keys
 *    sorted), so a transaction waits only for one that holds no key before
 *    the one it waits at, which therefore does not wait for it.
 * 8. A round that reported CAS_EUNAVAILABLE may have been applied. Every
 *    round of the owner is idempotent and tried again: creating the
 *    record finds it there, placing an intent finds its own (same id),
 *    committing finds COMMITTED, settling finds no intent of its id.
 * 9. Records are deleted (FORMAT.md, "Deletion"): by the owner once every
 *    intent of a final try is settled, or by the collector once a final
 *    record's keys hold none of its intents. Settled intents never come
 *    back and no intent is placed after the commit, so a committed
 *    record is never absent while one of its intents is left: an intent
 *    whose record is absent is one of a try that never committed (or
 *    was aborted before its record went), and means its old value. A
 *    reader that met the intent before the record went cannot know
 *    which case it is in, so it trusts only the settle round, which
 *    looks at the register again: either it replaces the intent (never
 *    committed: the old value is the committed one then) or it finds
 *    the register settled since, and answers what it holds then.
 *    An absent record never comes back: committing it fails, aborting
 *    it changes nothing, and only its owner creates it, before its
 *    first intent. A settle to an absent value is a delete round, so
 *    that a register made by an undone creation, or emptied by a
 *    transaction, leaves a tombstone that casctl gc purges.
 */
#include <stdlib.h>
#include <string.h>

#include <cas/bytes.h>

#include "lockreg.h"
#include "txn.h"
#include "txn_impl.h"

unsigned casfs_txn_fault;

#define RECORD_KEY_LEN (2 + 2 * ID_LEN + 1)
/* The parts and the directory-move register. */
#define SLOTS (CASFS_TXN_MAX_PARTS + 1)

/* Codes of our change functions, never returned to callers (far past the
 * CAS_* codes that part functions return). */
#define TXN_EINTENT  1001 /* the register holds another transaction's intent */
#define TXN_EABORTED 1002 /* our record was aborted by someone else */
#define TXN_EEMPTY   1003 /* a settle leaves the register absent: a delete round */

/* Tries of one idempotent round, or intents resolved on one register,
 * before giving up as unavailable (also bounded by the deadline). */
#define ROUNDS_MAX 16
/* Tries of a whole transaction aborted by others. */
#define ATTEMPTS_MAX 8

/* Sets out's bytes to a malloc'd copy of len bytes at p (none when len is
 * 0); out->version is left as it is. */
static int copy_bytes(const unsigned char *p, size_t len, struct cas_value *out)
{
	out->data = NULL;
	out->len = len;
	if (len == 0)
		return CAS_OK;
	out->data = malloc(len);
	if (out->data == NULL) {
		out->len = 0;
		return CAS_ENOMEM;
	}
	memcpy(out->data, p, len);
	return CAS_OK;
}

static void record_key(const unsigned char *id, char *key)
{
	casfs_id_key('t', id, key);
}

/* The state a record's value says; an absent record is aborted (2).
 * CAS_OK or CAS_EIO. */
static int record_state_of(const struct cas_value *v, int *state)
{
	if (v->len == 0) {
		*state = ST_ABORTED;
		return CAS_OK;
	}
	if (v->len < RECORD_HEAD || memcmp(v->data, record_magic, 2) != 0 ||
	    v->data[2] != FORMAT_VERSION || v->data[3] < ST_PENDING || v->data[3] > ST_ABORTED)
		return CAS_EIO;
	*state = v->data[3];
	return CAS_OK;
}

/* Reads the state of transaction id's record; *absent (may be NULL)
 * says whether the record was absent (read as aborted). */
static int record_state(const struct casfs_regs *r, const unsigned char *id, int *state,
			bool *absent)
{
	struct cas_value v = {0};
	char key[RECORD_KEY_LEN];
	int rc;

	record_key(id, key);
	rc = r->ops->read(r->arg, key, &v);
	if (rc == CAS_OK)
		rc = record_state_of(&v, state);
	if (absent)
		*absent = v.len == 0;
	cas_value_clear(&v);
	return rc;
}

/* One idempotent change round on key (a delete round when del), tried
 * again while it reports CAS_EUNAVAILABLE (8) and time is left. */
static int round_again(const struct casfs_regs *r, const char *key, cas_change_fn fn, void *arg,
		       struct cas_value *out, bool del)
{
	int rc;

	for (unsigned i = 1;; i++) {
		rc = del ? r->ops->del(r->arg, key, fn, arg, out)
			 : r->ops->change(r->arg, key, fn, arg, out);
		if (rc != CAS_EUNAVAILABLE || i == ROUNDS_MAX || r->ops->left_ms(r->arg) == 0)
			return rc;
		cas_value_clear(out);
	}
}

static int change_again(const struct casfs_regs *r, const char *key, cas_change_fn fn, void *arg,
			struct cas_value *out)
{
	return round_again(r, key, fn, arg, out, false);
}

/* Moving a record out of PENDING (1). */
struct flip {
	int to;	   /* ST_COMMITTED or ST_ABORTED */
	int state; /* the record's state after the last run */
};

static int flip_fn(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	struct flip *f = arg;
	int rc;

	rc = record_state_of(cur, &f->state);
	if (rc)
		return rc;
	if (f->state != ST_PENDING) {
		/* Final already: our retried round, or someone else's. */
		if (f->to == ST_COMMITTED && f->state == ST_ABORTED)
			return TXN_EABORTED;
		return CAS_ENOCHANGE;
	}
	rc = copy_bytes(cur->data, cur->len, next);
	if (rc)
		return rc;
	next->data[3] = (unsigned char)f->to;
	f->state = f->to;
	return CAS_OK;
}

/* Moves transaction id's record to `to` unless it is final already;
 * *state gets its final state on CAS_OK. Committing an aborted record
 * returns TXN_EABORTED. */
static int flip_record(const struct casfs_regs *r, const unsigned char *id, int to, int *state)
{
	struct flip f = {to, 0};
	char key[RECORD_KEY_LEN];
	int rc;

	record_key(id, key);
	rc = change_again(r, key, flip_fn, &f, NULL);
	*state = f.state;
	return rc;
}

/* Replacing an intent of transaction id by what it stands for (3, 4). */
struct settle {
	const unsigned char *id;
	bool forward; /* the new value (committed), else the old one */
	bool del;     /* a delete round: what the intent stands for is absent */
};

static int settle_fn(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	const struct settle *s = arg;
	struct intent in;
	size_t len;
	int rc;

	if (!txn_is_intent(cur))
		return CAS_ENOCHANGE;
	rc = txn_intent_decode(cur, &in);
	if (rc)
		return rc;
	if (memcmp(in.id, s->id, ID_LEN) != 0)
		return CAS_ENOCHANGE; /* settled already, and taken since */
	len = s->forward ? in.new_len : in.old_len;
	/* An absent value is left as a tombstone, not as an empty value:
	 * the register is then deleted (FORMAT.md, "Deletion"). An intent's
	 * bytes never change, so the delete round finds it absent too. */
	if (len == 0)
		return s->del ? CAS_OK : TXN_EEMPTY;
	if (s->del)
		return CAS_EIO;
	if (s->forward)
		return copy_bytes(in.new_, in.new_len, next);
	return copy_bytes(in.old, in.old_len, next);
}

/* Settles key's intent of transaction id, if it still holds one; out (may
 * be NULL) gets the register's value after. */
static int settle(const struct casfs_regs *r, const char *key, const unsigned char *id,
		  bool forward, struct cas_value *out)
{
	struct settle s = {id, forward, false};
	int rc;

	rc = change_again(r, key, settle_fn, &s, out);
	if (rc == TXN_EEMPTY) {
		cas_value_clear(out);
		s.del = true;
		rc = round_again(r, key, settle_fn, &s, out, true);
	}
	return rc;
}

/* Deleting a record once final (FORMAT.md, "Deletion"): a pending one is
 * kept (CAS_EVERSION), an absent one left as it is. */
static int final_fn(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	int rc, state;

	(void)arg;
	(void)next;
	if (cur->len == 0)
		return CAS_ENOCHANGE;
	rc = record_state_of(cur, &state);
	if (rc)
		return rc;
	return state == ST_PENDING ? CAS_EVERSION : CAS_OK;
}

int casfs_txn_drop_record(const struct casfs_regs *r, const char *key)
{
	return round_again(r, key, final_fn, NULL, NULL, true);
}

/* The pause before the n-th look at a pending record: 1, 2, 4 ... 32 ms. */
static unsigned wait_ms(unsigned n)
{
	return 1u << (n < 5 ? n : 5);
}

/* Brings key's intent of transaction id to its outcome, for a writer: a
 * pending transaction is waited for CASFS_TXN_WAIT_SLEEPS sleeps, then
 * aborted (7). */
static int resolve(const struct casfs_regs *r, const char *key, const unsigned char *id)
{
	unsigned sleeps = 0;
	int rc, state;

	for (;;) {
		rc = record_state(r, id, &state, NULL);
		if (rc)
			return rc;
		if (state != ST_PENDING)
			break;
		if (r->ops->left_ms(r->arg) == 0)
			return CAS_EUNAVAILABLE;
		if (sleeps == CASFS_TXN_WAIT_SLEEPS) {
			rc = flip_record(r, id, ST_ABORTED, &state);
			if (rc)
				return rc;
			break;
		}
		r->ops->sleep_ms(r->arg, wait_ms(sleeps++));
	}
	return settle(r, key, id, state == ST_COMMITTED, NULL);
}

int casfs_txn_read(const struct casfs_regs *r, const char *key, struct cas_value *out)
{
	struct cas_value v = {0}, after = {0};
	struct intent in;
	bool forward, absent;
	int rc, src, state;
	unsigned tries = 0;

	memset(out, 0, sizeof(*out));
again:
	rc = r->ops->read(r->arg, key, &v);
	if (rc) {
		cas_value_clear(&v);
		return rc;
	}
	if (!txn_is_intent(&v)) {
		txn_own_plain(&v);
		*out = v;
		return CAS_OK;
	}
	/* The record is read after the register: 5. */
	rc = txn_intent_decode(&v, &in);
	if (rc == CAS_OK)
		rc = record_state(r, in.id, &state, &absent);
	if (rc)
		goto out_clear;
	forward = state == ST_COMMITTED;
	if (state == ST_PENDING && (casfs_txn_fault & CASFS_TXN_FAULT_READ_PENDING_NEW))
		forward = true;
	/* A final outcome: settle it for the next reader (best effort). What
	 * the settle round leaves is a committed value too, read later. */
	src = state != ST_PENDING ? settle(r, key, in.id, forward, &after) : CAS_OK;
	if (state != ST_PENDING && src == CAS_OK && !txn_is_intent(&after)) {
		txn_own_plain(&after);
		*out = after;
		goto out_clear;
	}
	cas_value_clear(&after);
	if (absent && !(casfs_txn_fault & CASFS_TXN_FAULT_TRUST_ABSENT)) {
		/* A record deleted since the register was read (9): the
		 * intent's old value is its meaning only while the register
		 * still holds it, which the settle round did not see. */
		cas_value_clear(&v);
		if (src != CAS_OK)
			return src;
		if (++tries == ROUNDS_MAX)
			return CAS_EUNAVAILABLE;
		goto again;
	}
	if (forward)
		rc = copy_bytes(in.new_, in.new_len, out);
	else
		rc = copy_bytes(in.old, in.old_len, out);
	out->version = out->len ? v.version : 0;
out_clear:
	cas_value_clear(&v);
	return rc;
}

int casfs_txn_record_parse(const struct cas_value *v, int *state,
			   char keys[CASFS_TXN_MAX_PARTS + 1][CAS_KEY_MAX + 1], size_t *n)
{
	const unsigned char *p = v->data;
	size_t at = RECORD_HEAD, k, i, count;

	*n = 0;
	if (v->len == 0 || record_state_of(v, state))
		return CAS_EIO;
	count = p[4];
	if (count == 0 || count > CASFS_TXN_MAX_PARTS + 1 || p[5] != 0)
		return CAS_EIO;
	for (i = 0; i < count; i++) {
		if (at >= v->len)
			return CAS_EIO;
		k = p[at++];
		if (k == 0 || k > CAS_KEY_MAX || k > v->len - at)
			return CAS_EIO;
		memcpy(keys[i], p + at, k);
		keys[i][k] = '\0';
		at += k;
	}
	if (at != v->len)
		return CAS_EIO;
	*n = count;
	return CAS_OK;
}

bool casfs_txn_intent_of(const struct cas_value *v, const char *rkey)
{
	char key[RECORD_KEY_LEN];
	struct intent in;

	if (!txn_is_intent(v) || txn_intent_decode(v, &in))
		return false;
	record_key(in.id, key);
	return strcmp(key, rkey) == 0;
}

int casfs_txn_abort(const struct casfs_regs *r, const char *rkey)
{
	struct flip f = {ST_ABORTED, 0};

	return change_again(r, rkey, flip_fn, &f, NULL);
}

/* A single-register change or delete on a register without intent (6). */
struct apply {
	casfs_txn_fn fn;
	void *arg;
	unsigned char other[ID_LEN]; /* the intent met, on TXN_EINTENT */
};

static int apply_fn(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	struct apply *a = arg;
	struct cas_value committed;
	struct intent in;
	int rc;

	if (txn_is_intent(cur)) {
		rc = txn_intent_decode(cur, &in);
		if (rc)
			return rc;
		memcpy(a->other, in.id, ID_LEN);
		return TXN_EINTENT;
	}
	committed = txn_plain_view(cur);
	return a->fn(a->arg, &committed, next);
}

static int change_or_delete(const struct casfs_regs *r, const char *key, casfs_txn_fn fn, void *arg,
			    struct cas_value *out, bool del)
{
	struct apply a = {fn, arg, {0}};
	struct cas_value v = {0};
	int rc;

	for (unsigned i = 1;; i++) {
		/* Not tried again on CAS_EUNAVAILABLE: fn need not be
		 * idempotent (an append is not). */
		rc = del ? r->ops->del(r->arg, key, apply_fn, &a, &v)
			 : r->ops->change(r->arg, key, apply_fn, &a, &v);
		if (rc != TXN_EINTENT)
			break;
		cas_value_clear(&v);
		if (i == ROUNDS_MAX) {
			rc = CAS_EUNAVAILABLE;
			break;
		}
		rc = resolve(r, key, a.other);
		if (rc)
			break;
	}
	if (txn_is_intent(&v) || out == NULL)
		cas_value_clear(&v);
	txn_own_plain(&v);
	if (out)
		*out = v;
	return rc;
}

int casfs_txn_change(const struct casfs_regs *r, const char *key, casfs_txn_fn fn, void *arg,
		     struct cas_value *out)
{
	return change_or_delete(r, key, fn, arg, out, false);
}

int casfs_txn_delete(const struct casfs_regs *r, const char *key, casfs_txn_fn fn, void *arg,
		     struct cas_value *out)
{
	return change_or_delete(r, key, fn, arg, out, true);
}

/* One register of a transaction, in the order intents are placed. */
struct slot {
	const char *key;
	casfs_txn_fn fn; /* NULL: the directory-move register */
	void *arg;
	size_t part;	       /* index in the caller's parts */
	bool touched;	       /* a placement round was sent: may hold our intent */
	uint64_t version;      /* the register's version with our intent */
	struct cas_value next; /* the value our intent stands for if committed */
};

struct txn {
	const struct casfs_regs *r;
	unsigned char id[ID_LEN];
	char key[RECORD_KEY_LEN];
	struct slot slot[SLOTS];
	size_t n;
};

/* The directory-move register's change: one more move. */
static int move_fn(const struct cas_value *cur, struct cas_value *next)
{
	uint64_t moves = 0;

	if (cur->len) {
		if (cur->len != MOVE_LEN || memcmp(cur->data, move_magic, 2) != 0 ||
		    cur->data[2] != FORMAT_VERSION)
			return CAS_EIO;
		moves = cas_get_le64(cur->data + 4);
	}
	next->data = calloc(1, MOVE_LEN);
	if (next->data == NULL)
		return CAS_ENOMEM;
	next->len = MOVE_LEN;
	memcpy(next->data, move_magic, 2);
	next->data[2] = FORMAT_VERSION;
	cas_put_le64(next->data + 4, moves + 1);
	return CAS_OK;
}

/* Placing one intent of t (3). */
struct place {
	const struct txn *t;
	const struct slot *s;
	unsigned char other[ID_LEN]; /* the intent met, on TXN_EINTENT */
};

static int place_fn(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	struct place *p = arg;
	struct cas_value old, nv = {0};
	struct intent in;
	int rc;

	if (txn_is_intent(cur)) {
		rc = txn_intent_decode(cur, &in);
		if (rc)
			return rc;
		if (memcmp(in.id, p->t->id, ID_LEN) == 0)
			return CAS_ENOCHANGE; /* an earlier try of this round (8) */
		memcpy(p->other, in.id, ID_LEN);
		return TXN_EINTENT;
	}
	old = txn_plain_view(cur);
	rc = p->s->fn ? p->s->fn(p->s->arg, &old, &nv) : move_fn(&old, &nv);
	if (rc == CAS_OK)
		rc = txn_intent_encode(p->t->id, &old, &nv, next);
	else if (rc == CAS_ENOCHANGE) /* still an intent: what fn read must hold */
		rc = txn_intent_encode(p->t->id, &old, &old, next);
	free(nv.data);
	return rc;
}

static int place(struct txn *t, struct slot *s)
{
	const struct casfs_regs *r = t->r;
	struct place p = {t, s, {0}};
	struct cas_value out = {0};
	struct intent in;
	int rc;

	for (unsigned i = 1;; i++) {
		s->touched = true;
		rc = r->ops->change(r->arg, s->key, place_fn, &p, &out);
		if (rc != TXN_EINTENT && rc != CAS_EUNAVAILABLE)
			break;
		cas_value_clear(&out);
		if (i == ROUNDS_MAX || r->ops->left_ms(r->arg) == 0)
			return CAS_EUNAVAILABLE;
		if (rc == TXN_EINTENT) {
			rc = resolve(r, s->key, p.other);
			if (rc != CAS_OK && rc != CAS_EUNAVAILABLE)
				return rc;
		}
	}
	if (rc == CAS_OK)
		rc = txn_is_intent(&out) ? txn_intent_decode(&out, &in) : CAS_EIO;
	if (rc == CAS_OK && memcmp(in.id, t->id, ID_LEN) != 0)
		rc = CAS_EIO;
	if (rc == CAS_OK) {
		s->version = out.version;
		rc = copy_bytes(in.new_, in.new_len, &s->next);
	}
	cas_value_clear(&out);
	return rc;
}

/* Creating t's record: version 0 -> PENDING, or ours already (8). */
static int create_fn(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	const struct cas_value *rec = arg;

	if (cur->version == 0)
		return copy_bytes(rec->data, rec->len, next);
	if (cur->len == rec->len && memcmp(cur->data, rec->data, rec->len) == 0)
		return CAS_ENOCHANGE;
	return CAS_EIO; /* an id in use: the random source is broken */
}

static int create_record(struct txn *t)
{
	struct cas_value rec = {0};
	unsigned char *p;
	size_t len = RECORD_HEAD;
	int rc;

	for (size_t i = 0; i < t->n; i++)
		len += 1 + strlen(t->slot[i].key);
	rec.data = p = malloc(len);
	if (p == NULL)
		return CAS_ENOMEM;
	rec.len = len;
	memcpy(p, record_magic, 2);
	p[2] = FORMAT_VERSION;
	p[3] = ST_PENDING;
	p[4] = (unsigned char)t->n;
	p[5] = 0;
	p += RECORD_HEAD;
	for (size_t i = 0; i < t->n; i++) {
		size_t k = strlen(t->slot[i].key);

		*p++ = (unsigned char)k;
		memcpy(p, t->slot[i].key, k);
		p += k;
	}
	rc = change_again(t->r, t->key, create_fn, &rec, NULL);
	cas_value_clear(&rec);
	return rc;
}

/* Gives up this try, which will never commit: the record to ABORTED, and
 * every intent it may have placed rolled back. Best effort: whoever meets
 * an intent left over finds the record aborted, or pending and aborts it. */
static void abandon(struct txn *t)
{
	bool clean;
	int state;

	clean = flip_record(t->r, t->id, ST_ABORTED, &state) == CAS_OK;
	for (size_t i = t->n; i-- > 0;)
		if (t->slot[i].touched && settle(t->r, t->slot[i].key, t->id, false, NULL))
			clean = false;
	/* No intent of this try is left, nor will be: the record goes (9). */
	if (clean)
		(void)casfs_txn_drop_record(t->r, t->key);
}

/* One try of t: CAS_OK, a part's or check's code, TXN_EABORTED (aborted
 * by someone else: nothing changed, try again), or CAS_EUNAVAILABLE. */
static int attempt(struct txn *t, int (*check)(void *arg), void *check_arg)
{
	const struct casfs_regs *r = t->r;
	bool clean = true;
	int rc, state;

	for (size_t i = 0; i < t->n; i++) {
		t->slot[i].touched = false;
		cas_value_clear(&t->slot[i].next);
	}
	rc = r->ops->random(r->arg, t->id, ID_LEN);
	if (rc)
		return rc;
	record_key(t->id, t->key);
	rc = create_record(t);
	if (rc)
		return rc; /* at most a pending record that no intent names */
	for (size_t i = 0; i < t->n; i++) {
		rc = place(t, &t->slot[i]);
		if (rc == CAS_OK && i == 0 && t->slot[0].fn == NULL && check)
			rc = check(check_arg);
		if (rc) {
			abandon(t);
			return rc;
		}
	}
	if (casfs_txn_fault & CASFS_TXN_FAULT_SKIP_COMMIT)
		rc = CAS_OK;
	else
		rc = flip_record(r, t->id, ST_COMMITTED, &state);
	if (rc == TXN_EABORTED) {
		abandon(t);
		return rc;
	}
	if (rc)
		return rc; /* the outcome is unknown: left to whoever meets it */
	for (size_t i = 0; i < t->n; i++)
		if (settle(r, t->slot[i].key, t->id, true, NULL))
			clean = false;
	/* Every intent settled, and none is placed after the commit: the
	 * record goes (9). Otherwise whoever settles the rest reads it. */
	if (clean)
		(void)casfs_txn_drop_record(r, t->key);
	return CAS_OK;
}

/* Fills t's slots from parts, in the order of placement. */
static int prepare(struct txn *t, const struct casfs_txn_part *parts, size_t n, bool dirmove)
{
	size_t first = dirmove ? 1 : 0;

	if (n == 0 || n > CASFS_TXN_MAX_PARTS)
		return CAS_EINVAL;
	if (dirmove)
		t->slot[0] = (struct slot){.key = CASFS_TXN_DIRMOVE_KEY};
	for (size_t i = 0; i < n; i++) {
		struct slot s = {.key = parts[i].key, .fn = parts[i].fn, .arg = parts[i].arg};
		size_t j = first + i;

		s.part = i;
		if (s.key == NULL || s.fn == NULL)
			return CAS_EINVAL;
		if (!cas_key_valid(s.key, strnlen(s.key, CAS_KEY_MAX + 1)))
			return CAS_EKEY;
		/* Sorted by key (7), by insertion. */
		for (; j > first && strcmp(t->slot[j - 1].key, s.key) > 0; j--)
			t->slot[j] = t->slot[j - 1];
		t->slot[j] = s;
	}
	t->n = first + n;
	for (size_t i = 1; i < t->n; i++)
		if (strcmp(t->slot[i - 1].key, t->slot[i].key) == 0 ||
		    strcmp(t->slot[i].key, CASFS_TXN_DIRMOVE_KEY) == 0)
			return CAS_EINVAL;
	return CAS_OK;
}

int casfs_txn_run(const struct casfs_regs *r, const struct casfs_txn_part *parts, size_t n,
		  bool dirmove, int (*check)(void *arg), void *check_arg, struct cas_value *out)
{
	struct txn t = {.r = r};
	int rc;

	if (out && n <= CASFS_TXN_MAX_PARTS)
		memset(out, 0, n * sizeof(*out));
	rc = prepare(&t, parts, n, dirmove);
	if (rc)
		return rc;
	for (unsigned i = 1;; i++) {
		rc = attempt(&t, check, check_arg);
		if (rc != TXN_EABORTED)
			break;
		if (i == ATTEMPTS_MAX || r->ops->left_ms(r->arg) == 0) {
			rc = CAS_EUNAVAILABLE;
			break;
		}
	}
	for (size_t i = 0; i < t.n; i++) {
		struct slot *s = &t.slot[i];

		/* Rolled forward by us or anyone, the register is one
		 * version past the intent. */
		if (rc == CAS_OK && out && s->fn) {
			out[s->part] = s->next;
			out[s->part].version = s->next.len ? s->version + 1 : 0;
		} else {
			cas_value_clear(&s->next);
		}
	}
	return rc;
}

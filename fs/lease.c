/* lease.c - sessions, leases and lock attempts over regs.h (lease.h).
 *
 * Why a lock is never held by two sessions at once, without synchronized
 * clocks. Each party judges time only on its own monotonic clock, and
 * clocks may run at rates up to 10% apart; no clock is ever compared
 * with another.
 *
 * 1. A holder (a mount's session S, lease L on its clock, margin
 *    M = L/5) counts its locks valid until t_s + L - M, where t_s is its
 *    clock read BEFORE the last renewal round of S that succeeded began
 *    (or the creation round). At that moment its locks are lost for
 *    good (casfs_session_check): it never counts them valid again, even
 *    if a later round succeeds.
 * 2. A contender that meets a hold of S reads S's register. It notes the
 *    version it read and its own clock AFTER the read returned, when it
 *    first saw that version. Only when later reads still show that same
 *    version, more than L (S's lease, which S's register states) after
 *    that note, does it mark S expired: a change round that applies only
 *    while the register still has that version and no mark. Holds of an
 *    expired session bind nobody; any contender removes them.
 * 3. A renewal round refuses to renew a session marked expired.
 *
 * Take a mark made at real time T_x. By 3 and the mark's condition, the
 * version v the contender watched was the last ever written by a renewal
 * of S: every later renewal either came before the mark (and moved the
 * version, so the mark would not apply) or after it (and failed). The
 * round that wrote v began at real time R, before it was applied, hence
 * before the contender's read that saw v returned, at real time C: R < C.
 * The contender waited more than L on its clock from C: at least
 * L / 1.1 of real time, so T_x > C + L/1.1. The holder's locks ran out
 * after (L - M) on its clock from R: at most (L - M) / 0.9 = 0.889 L of
 * real time, before R + 0.89 L < C + L / 1.1 < T_x. So every hold a
 * contender removes was already lost to its holder; and a hold the holder
 * adds after T_x is found lost when the round returns (it ends after T_x,
 * past the holder's validity), so the holder never counts it.
 *
 * Why the mark, when loss is sticky: with 1 alone, a contender that read
 * version v late enough could remove the holds without a mark, since a
 * renewal that applies after its read began after the holder's validity
 * ran out, and a lost session never counts again. The mark makes the
 * decision the cluster's: a renewal after it fails whatever its holder
 * believes, and every other contender clears the session's holds at once
 * instead of waiting a lease of its own (an unmount marks its session
 * too). The negative controls of tests/sim/leasesim.c break step 1 (the
 * holder measures from the round's end), step 2 (the wait starts before
 * the read) and both safeguards at once (a holder that counts a late
 * renewal again, and contenders that clear without marking); the
 * simulation catches each. */
#include <stdlib.h>
#include <string.h>

#include "lease.h"
#include "txn.h"

#define MAX_WAY	 8 /* sessions in the way that one attempt judges */
#define MAX_DEAD 8
#define TRIES	 4

unsigned casfs_lease_fault;

static uint64_t now_of(const struct casfs_clock *clk)
{
	return clk->now_ms(clk->arg);
}

bool casfs_session_check(struct casfs_session *s, uint64_t now)
{
	if (casfs_lease_fault & CASFS_LEASE_FAULT_REVIVE)
		return now < s->valid_until;
	if (!s->lost && now >= s->valid_until)
		s->lost = true;
	return !s->lost;
}

static int encode_session(const struct casfs_sessreg *sr, struct cas_value *next)
{
	next->data = malloc(CASFS_SESSREG_LEN);
	if (!next->data)
		return CAS_ENOMEM;
	casfs_sessreg_encode(sr, next->data);
	next->len = CASFS_SESSREG_LEN;
	return CAS_OK;
}

/* The creation round: writes only a register never written. */
static int create_change(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	struct casfs_sessreg sr = {false, *(const uint32_t *)arg, 0};

	if (cur->version != 0)
		return CAS_EVERSION;
	return encode_session(&sr, next);
}

static uint64_t valid_from(uint64_t start, uint64_t end, uint32_t lease_ms)
{
	uint64_t from = (casfs_lease_fault & CASFS_LEASE_FAULT_HOLDER_END) ? end : start;

	return from + lease_ms - CASFS_LEASE_MARGIN_MS(lease_ms);
}

int casfs_session_create(const struct casfs_regs *r, const struct casfs_clock *clk,
			 uint32_t lease_ms, struct casfs_session *s)
{
	char key[CASFS_LOCK_KEY_LEN];
	uint64_t start;
	int rc;

	memset(s, 0, sizeof(*s));
	s->lost = true;
	rc = r->ops->random(r->arg, s->sid, CASFS_SID_LEN);
	if (rc)
		return rc;
	s->lease_ms = lease_ms;
	casfs_sessreg_key(s->sid, key);
	start = now_of(clk);
	rc = casfs_txn_change(r, key, create_change, &lease_ms, NULL);
	if (rc)
		return rc;
	s->lost = false;
	s->valid_until = valid_from(start, now_of(clk), lease_ms);
	return casfs_session_check(s, now_of(clk)) ? CAS_OK : CAS_EUNAVAILABLE;
}

/* A renewal: the counter + 1, refused once the session is marked
 * expired (step 3 of the argument). */
static int renew_change(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	struct casfs_sessreg sr;
	uint64_t *renewals = arg;

	if (cur->version == 0)
		return CAS_EVERSION;
	if (casfs_sessreg_decode(cur->data, cur->len, &sr))
		return CAS_EIO;
	if (sr.expired)
		return CAS_EVERSION;
	sr.renewals++;
	*renewals = sr.renewals;
	return encode_session(&sr, next);
}

int casfs_session_renew(const struct casfs_regs *r, const struct casfs_clock *clk,
			struct casfs_session *s)
{
	char key[CASFS_LOCK_KEY_LEN];
	uint64_t start = now_of(clk), end, renewals = 0;
	int rc;

	if (!casfs_session_check(s, start) && !(casfs_lease_fault & CASFS_LEASE_FAULT_REVIVE))
		return CAS_EVERSION;
	casfs_sessreg_key(s->sid, key);
	rc = casfs_txn_change(r, key, renew_change, &renewals, NULL);
	end = now_of(clk);
	if (rc == CAS_EVERSION || rc == CAS_EIO)
		s->lost = true;
	if (rc)
		return rc == CAS_EIO ? CAS_EVERSION : rc;
	if (casfs_lease_fault & CASFS_LEASE_FAULT_REVIVE)
		s->lost = false;
	else if (!casfs_session_check(s, end))
		return CAS_EVERSION;
	s->renewals = renewals;
	s->valid_until = valid_from(start, end, s->lease_ms);
	return CAS_OK;
}

/* The mark of an expired session; arg points to the version it must
 * still have (0: any). */
static int expire_change(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	const uint64_t *version = arg;
	struct casfs_sessreg sr;

	if (cur->version == 0)
		return CAS_ENOCHANGE;
	if (casfs_sessreg_decode(cur->data, cur->len, &sr))
		return CAS_EIO;
	if (sr.expired)
		return CAS_ENOCHANGE;
	if (*version && cur->version != *version)
		return CAS_EVERSION;
	sr.expired = true;
	return encode_session(&sr, next);
}

int casfs_session_end(const struct casfs_regs *r, const unsigned char *sid)
{
	char key[CASFS_LOCK_KEY_LEN];
	uint64_t any = 0;
	int rc;

	casfs_sessreg_key(sid, key);
	rc = casfs_txn_change(r, key, expire_change, &any, NULL);
	return rc == CAS_ENOCHANGE ? CAS_OK : rc;
}

static void watch_lock(struct casfs_watch *w)
{
	if (w->lock)
		w->lock(w->lock_arg);
}

static void watch_unlock(struct casfs_watch *w)
{
	if (w->unlock)
		w->unlock(w->lock_arg);
}

/* Notes that sid's register read version at t (own clock). True when it
 * has shown that version for longer than lease_ms. */
static bool watch_note(struct casfs_watch *w, const unsigned char *sid, uint64_t version,
		       uint64_t t, uint32_t lease_ms)
{
	struct casfs_watch_entry *e = NULL, *oldest = NULL;
	bool silent = false;
	size_t i;

	watch_lock(w);
	for (i = 0; i < CASFS_WATCH_MAX && !e; i++) {
		struct casfs_watch_entry *x = &w->e[i];

		if (x->used && !memcmp(x->sid, sid, CASFS_SID_LEN))
			e = x;
		else if (!oldest || !x->used || (oldest->used && x->seen < oldest->seen))
			oldest = x;
	}
	if (!e) {
		/* Forgetting a session only restarts its wait. */
		e = oldest;
		e->used = true;
		memcpy(e->sid, sid, CASFS_SID_LEN);
		e->version = version;
		e->since = t;
	} else if (e->version != version) {
		e->version = version;
		e->since = t;
	} else {
		silent = t > e->since && t - e->since > lease_ms;
	}
	e->seen = t > e->seen ? t : e->seen;
	watch_unlock(w);
	return silent;
}

/* Judges session sid, whose holds stand in a contender's way: *dead when
 * they bind nobody (the session is marked expired, its register was
 * never written, or it was silent for longer than its lease and this
 * call marked it). CAS_OK or the code of a round. */
static int judge(const struct casfs_regs *r, const struct casfs_clock *clk, struct casfs_watch *w,
		 const unsigned char *sid, bool *dead)
{
	char key[CASFS_LOCK_KEY_LEN];
	struct cas_value v = {0};
	struct casfs_sessreg sr;
	uint64_t before, after;
	int rc;

	*dead = false;
	casfs_sessreg_key(sid, key);
	before = now_of(clk);
	rc = casfs_txn_read(r, key, &v);
	after = now_of(clk);
	if (rc)
		return rc;
	if (v.version == 0) {
		*dead = true;
	} else if (casfs_sessreg_decode(v.data, v.len, &sr) == CAS_OK) {
		uint64_t t = (casfs_lease_fault & CASFS_LEASE_FAULT_EARLY_WATCH) ? before : after;

		if (sr.expired) {
			*dead = true;
		} else if (watch_note(w, sid, v.version, t, sr.lease_ms)) {
			if (casfs_lease_fault & CASFS_LEASE_FAULT_NO_MARK) {
				*dead = true;
			} else {
				rc = casfs_txn_change(r, key, expire_change, &v.version, NULL);
				if (rc == CAS_OK || rc == CAS_ENOCHANGE)
					*dead = true;
				else if (rc == CAS_EVERSION)
					rc = CAS_OK; /* renewed meanwhile: alive */
			}
		}
	}
	/* A session register that does not decode is not ours to judge: its
	 * holds stay in the way. */
	cas_value_clear(&v);
	return rc;
}

struct try_arg {
	const struct casfs_lock_req *rq;
	unsigned char (*dead)[CASFS_SID_LEN];
	size_t ndead;
	/* What the last run found. */
	bool conflict;
	struct casfs_hold first;
	unsigned char way[MAX_WAY][CASFS_SID_LEN];
	size_t nway;
	uint64_t token;
	bool holds_left;
};

static void note_way(struct try_arg *a, const unsigned char *sid)
{
	size_t i;

	for (i = 0; i < a->nway; i++)
		if (!memcmp(a->way[i], sid, CASFS_SID_LEN))
			return;
	if (a->nway < MAX_WAY)
		memcpy(a->way[a->nway++], sid, CASFS_SID_LEN);
}

/* The change of one attempt: drop the holds of dead sessions, then apply
 * the request unless a hold is in the way. */
static int try_change(void *varg, const struct cas_value *cur, struct cas_value *next)
{
	struct try_arg *a = varg;
	const struct casfs_lock_req *rq = a->rq;
	struct casfs_lockreg *l;
	size_t i, dropped = 0;
	int rc;

	a->conflict = false;
	a->nway = 0;
	a->token = 0;
	l = malloc(sizeof(*l));
	if (!l)
		return CAS_ENOMEM;
	rc = casfs_lockreg_decode(cur->data, cur->len, l);
	if (rc) {
		rc = CAS_EIO;
		goto out_free;
	}
	for (i = 0; i < a->ndead; i++)
		dropped += casfs_lockreg_drop_session(l, a->dead[i]);
	if (rq->type != CASFS_LK_UNLOCK && casfs_lockreg_conflicts(l, rq, &i)) {
		a->conflict = true;
		a->first = l->h[i];
		for (; i < l->n; i++)
			if (casfs_hold_conflicts(&l->h[i], rq))
				note_way(a, l->h[i].sid);
		rc = dropped ? CAS_OK : CAS_ENOCHANGE;
	} else {
		rc = casfs_lockreg_apply(l, rq);
		if (rc == CAS_ENOCHANGE && dropped)
			rc = CAS_OK;
		if (rq->type != CASFS_LK_UNLOCK)
			a->token = l->fence;
	}
	a->holds_left = casfs_lockreg_holds(l, rq->sid, rq->owner, rq->kind);
	if (rc == CAS_OK)
		rc = casfs_lockreg_encode(l, &next->data, &next->len);
out_free:
	free(l);
	return rc;
}

int casfs_lock_try(const struct casfs_regs *r, const struct casfs_clock *clk, const char *key,
		   const struct casfs_lock_req *rq, struct casfs_watch *w,
		   struct casfs_lock_result *res)
{
	unsigned char dead[MAX_DEAD][CASFS_SID_LEN];
	struct try_arg a;
	size_t i, j, fresh;
	int rc, n;

	memset(res, 0, sizeof(*res));
	memset(&a, 0, sizeof(a));
	a.rq = rq;
	a.dead = dead;
	for (n = 0;; n++) {
		rc = casfs_txn_change(r, key, try_change, &a, NULL);
		if (rc == CAS_ENOCHANGE)
			rc = CAS_OK;
		if (rc)
			return rc;
		res->holds_left = a.holds_left;
		if (!a.conflict) {
			res->token = a.token;
			return CAS_OK;
		}
		res->conflict = a.first;
		if (n + 1 == TRIES)
			return CAS_EVERSION;
		fresh = 0;
		for (i = 0; i < a.nway && a.ndead < MAX_DEAD; i++) {
			bool is_dead;

			for (j = 0; j < a.ndead; j++)
				if (!memcmp(dead[j], a.way[i], CASFS_SID_LEN))
					break;
			if (j < a.ndead)
				continue;
			rc = judge(r, clk, w, a.way[i], &is_dead);
			if (rc)
				return rc;
			if (is_dead) {
				memcpy(dead[a.ndead++], a.way[i], CASFS_SID_LEN);
				fresh++;
			}
		}
		if (!fresh)
			return CAS_EVERSION;
	}
}

int casfs_lock_read(const struct casfs_regs *r, const char *key, struct casfs_lockreg *out)
{
	struct cas_value v = {0};
	int rc;

	rc = casfs_txn_read(r, key, &v);
	if (!rc && casfs_lockreg_decode(v.data, v.len, out))
		rc = CAS_EIO;
	cas_value_clear(&v);
	return rc;
}

/* lockreg.c - byte forms of the lock and session registers and the rules
 * of conflict and change between holds (lockreg.h). */
#include <stdlib.h>
#include <string.h>

#include <cas/bytes.h>

#include "lockreg.h"

#define LOCK_HEAD 14 /* magic, format, reserved, fence, count */
#define HOLD_LEN  56

void casfs_id_key(char prefix, const unsigned char *id, char *key)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	key[0] = prefix;
	key[1] = '/';
	for (i = 0; i < CASFS_SID_LEN; i++) {
		key[2 + 2 * i] = digits[id[i] >> 4];
		key[3 + 2 * i] = digits[id[i] & 15];
	}
	key[2 + 2 * CASFS_SID_LEN] = '\0';
}

void casfs_lockreg_key(const unsigned char *id, char *key)
{
	casfs_id_key('l', id, key);
}

void casfs_sessreg_key(const unsigned char *sid, char *key)
{
	casfs_id_key('s', sid, key);
}

int casfs_lockreg_decode(const void *buf, size_t len, struct casfs_lockreg *out)
{
	const unsigned char *p = buf;
	size_t i, n;

	out->fence = 0;
	out->n = 0;
	if (len == 0)
		return CAS_OK;
	if (len < LOCK_HEAD || p[0] != 'c' || p[1] != 'L' || p[2] != 1 || p[3] != 0)
		return CAS_EINVAL;
	out->fence = cas_get_le64(p + 4);
	n = cas_get_le16(p + 12);
	if (n > CASFS_LOCK_MAX_HOLDS || len != LOCK_HEAD + n * HOLD_LEN)
		return CAS_EINVAL;
	for (i = 0, p += LOCK_HEAD; i < n; i++, p += HOLD_LEN) {
		struct casfs_hold *h = &out->h[i];

		memcpy(h->sid, p, CASFS_SID_LEN);
		h->owner = cas_get_le64(p + 16);
		h->start = cas_get_le64(p + 24);
		h->end = cas_get_le64(p + 32);
		h->token = cas_get_le64(p + 40);
		h->pid = cas_get_le32(p + 48);
		h->kind = p[52];
		h->type = p[53];
		if ((h->kind != CASFS_LK_FLOCK && h->kind != CASFS_LK_POSIX) ||
		    (h->type != CASFS_LK_SHARED && h->type != CASFS_LK_EXCL) || p[54] || p[55] ||
		    h->start > h->end || h->end > CASFS_LOCK_EOF || h->token == 0 ||
		    h->token > out->fence)
			return CAS_EINVAL;
	}
	out->n = n;
	return CAS_OK;
}

int casfs_lockreg_encode(const struct casfs_lockreg *l, unsigned char **buf, size_t *len)
{
	size_t i, n = LOCK_HEAD + l->n * HOLD_LEN;
	unsigned char *p = calloc(1, n);

	if (!p)
		return CAS_ENOMEM;
	*buf = p;
	*len = n;
	p[0] = 'c';
	p[1] = 'L';
	p[2] = 1;
	cas_put_le64(p + 4, l->fence);
	cas_put_le16(p + 12, (uint16_t)l->n);
	for (i = 0, p += LOCK_HEAD; i < l->n; i++, p += HOLD_LEN) {
		const struct casfs_hold *h = &l->h[i];

		memcpy(p, h->sid, CASFS_SID_LEN);
		cas_put_le64(p + 16, h->owner);
		cas_put_le64(p + 24, h->start);
		cas_put_le64(p + 32, h->end);
		cas_put_le64(p + 40, h->token);
		cas_put_le32(p + 48, h->pid);
		p[52] = h->kind;
		p[53] = h->type;
	}
	return CAS_OK;
}

static bool same_owner(const struct casfs_hold *h, const unsigned char *sid, uint64_t owner)
{
	return h->owner == owner && !memcmp(h->sid, sid, CASFS_SID_LEN);
}

bool casfs_hold_conflicts(const struct casfs_hold *h, const struct casfs_lock_req *rq)
{
	if (h->kind != rq->kind || same_owner(h, rq->sid, rq->owner))
		return false;
	if (h->type != CASFS_LK_EXCL && rq->type != CASFS_LK_EXCL)
		return false;
	return h->start <= rq->end && rq->start <= h->end;
}

size_t casfs_lockreg_conflicts(const struct casfs_lockreg *l, const struct casfs_lock_req *rq,
			       size_t *first)
{
	size_t i, n = 0;

	for (i = 0; i < l->n; i++) {
		if (!casfs_hold_conflicts(&l->h[i], rq))
			continue;
		if (n++ == 0 && first)
			*first = i;
	}
	return n;
}

int casfs_lockreg_apply(struct casfs_lockreg *l, const struct casfs_lock_req *rq)
{
	struct casfs_hold out[CASFS_LOCK_MAX_HOLDS + 1];
	size_t i, n = 0;
	bool changed = false;
	uint64_t start = rq->kind == CASFS_LK_FLOCK ? 0 : rq->start;
	uint64_t end = rq->kind == CASFS_LK_FLOCK ? CASFS_LOCK_EOF : rq->end;

	for (i = 0; i < l->n; i++) {
		struct casfs_hold h = l->h[i];

		if (h.kind != rq->kind || !same_owner(&h, rq->sid, rq->owner) || h.end < start ||
		    h.start > end) {
			out[n++] = h;
			continue;
		}
		/* The owner's hold loses its part within [start, end]: what is
		 * left is up to two pieces, each keeping its token. */
		changed = true;
		if (h.start < start) {
			if (n == CASFS_LOCK_MAX_HOLDS)
				return CAS_ETOOBIG;
			out[n] = h;
			out[n++].end = start - 1;
		}
		if (h.end > end) {
			if (n == CASFS_LOCK_MAX_HOLDS)
				return CAS_ETOOBIG;
			out[n] = h;
			out[n++].start = end + 1;
		}
	}
	if (rq->type != CASFS_LK_UNLOCK) {
		if (n == CASFS_LOCK_MAX_HOLDS)
			return CAS_ETOOBIG;
		memset(&out[n], 0, sizeof(out[n]));
		memcpy(out[n].sid, rq->sid, CASFS_SID_LEN);
		out[n].owner = rq->owner;
		out[n].start = start;
		out[n].end = end;
		out[n].token = l->fence + 1;
		out[n].pid = rq->pid;
		out[n].kind = rq->kind;
		out[n].type = rq->type;
		n++;
		l->fence++;
		changed = true;
	}
	if (!changed)
		return CAS_ENOCHANGE;
	memcpy(l->h, out, n * sizeof(out[0]));
	l->n = n;
	return CAS_OK;
}

size_t casfs_lockreg_drop_session(struct casfs_lockreg *l, const unsigned char *sid)
{
	size_t i, n = 0, dropped;

	for (i = 0; i < l->n; i++)
		if (memcmp(l->h[i].sid, sid, CASFS_SID_LEN))
			l->h[n++] = l->h[i];
	dropped = l->n - n;
	l->n = n;
	return dropped;
}

bool casfs_lockreg_holds(const struct casfs_lockreg *l, const unsigned char *sid, uint64_t owner,
			 uint8_t kind)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->h[i].kind == kind && same_owner(&l->h[i], sid, owner))
			return true;
	return false;
}

int casfs_sessreg_decode(const void *buf, size_t len, struct casfs_sessreg *out)
{
	const unsigned char *p = buf;

	if (len != CASFS_SESSREG_LEN || p[0] != 'c' || p[1] != 'S' || p[2] != 1 || (p[3] & ~1u))
		return CAS_EINVAL;
	out->expired = p[3] & 1;
	out->lease_ms = cas_get_le32(p + 4);
	out->renewals = cas_get_le64(p + 8);
	return out->lease_ms ? CAS_OK : CAS_EINVAL;
}

void casfs_sessreg_encode(const struct casfs_sessreg *s, unsigned char *buf)
{
	buf[0] = 'c';
	buf[1] = 'S';
	buf[2] = 1;
	buf[3] = s->expired ? 1 : 0;
	cas_put_le32(buf + 4, s->lease_ms);
	cas_put_le64(buf + 8, s->renewals);
}

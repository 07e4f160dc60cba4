/* ns_bucket.c - a directory's entries over several registers (ns_impl.h):
 * finding the bucket that holds a name, splitting a full bucket, merging
 * empty ones, and walking every bucket in hash order. The format and the
 * argument why it is safe are in fs/FORMAT.md, "Directories". */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cas/cas.h>

#include "ns_impl.h"
#include "txn.h"

unsigned casfs_ns_broken_bucket;

/* Reads of buckets one search makes before it calls the directory busy
 * (each read that misses learns a deeper or shallower depth). */
#define FIND_MAX (2 * CASFS_DEPTH_MAX + 8)
/* Walks one collapse makes (each merges every pair of sibling buckets at
 * the deepest level it saw). */
#define COLLAPSE_MAX (2 * CASFS_DEPTH_MAX + 8)

/* Where lookups start: hints only (a wrong one costs a read, never a
 * wrong answer: every bucket read says what it covers). A slot holds 43
 * bits of a directory's id, a class, and a depth: for class c < 4096, the
 * depth of the bucket last found for hashes whose low 12 bits are c (for
 * a directory of fewer than 4096 buckets, exactly the bucket that holds
 * them); for class 4096, the deepest bucket seen in the directory, the
 * fallback. Another directory's tag in the slot is no hint. */
#define CLASS_BITS 12
#define CLASS_ANY  (1u << CLASS_BITS)

static struct casfs_ns_hints process_hints;

void casfs_ns_hints_clear(struct casfs_ns_hints *h)
{
	if (!h)
		h = &process_hints;
	for (size_t i = 0; i < CASFS_NS_HINTS; i++)
		atomic_store_explicit(&h->slot[i], 0, memory_order_relaxed);
}

static uint64_t hint_tag(const unsigned char *dir, unsigned cls)
{
	uint64_t t = 0;

	for (int i = 0; i < 6; i++)
		t = t << 8 | dir[i];
	return ((t >> 5) << 13 | cls) << 8;
}

static _Atomic uint64_t *hint_slot(const struct casfs_ns *ns, const unsigned char *dir,
				   unsigned cls)
{
	struct casfs_ns_hints *h = ns->hints ? ns->hints : &process_hints;
	uint64_t i = ((uint64_t)dir[7] << 8 | dir[8]) * 0x9e3779b97f4a7c15ull + cls * 4099u;

	return &h->slot[(i ^ (i >> 29)) % CASFS_NS_HINTS];
}

static bool hint_get(const struct casfs_ns *ns, const unsigned char *dir, unsigned cls,
		     unsigned *depth)
{
	uint64_t v = atomic_load_explicit(hint_slot(ns, dir, cls), memory_order_relaxed);

	if ((v & ~(uint64_t)0xff) != hint_tag(dir, cls))
		return false;
	*depth = (unsigned)(v & 0xff);
	return true;
}

unsigned ns_hint(const struct casfs_ns *ns, const unsigned char *dir, uint64_t h)
{
	unsigned d = 0;

	if (!hint_get(ns, dir, (unsigned)(h & (CLASS_ANY - 1)), &d))
		(void)hint_get(ns, dir, CLASS_ANY, &d);
	return d;
}

static void hint_put(const struct casfs_ns *ns, const unsigned char *dir, unsigned cls,
		     unsigned depth)
{
	atomic_store_explicit(hint_slot(ns, dir, cls), hint_tag(dir, cls) | depth,
			      memory_order_relaxed);
}

/* Records that the bucket of hash h in dir has depth (NULL h: a bucket of
 * dir has); a directory back to one register (whole) resets its deepest. */
static void hint_set(const struct casfs_ns *ns, const unsigned char *dir, const uint64_t *h,
		     unsigned depth, bool whole)
{
	unsigned max = 0;

	if (h)
		hint_put(ns, dir, (unsigned)(*h & (CLASS_ANY - 1)), depth);
	if (whole || !hint_get(ns, dir, CLASS_ANY, &max) || depth > max)
		hint_put(ns, dir, CLASS_ANY, depth);
}

uint32_t ns_bucket_of(uint64_t h, unsigned depth)
{
	return depth >= 32 ? (uint32_t)h : (uint32_t)(h & ((1ull << depth) - 1));
}

bool ns_covers(const struct casfs_record *rec, const char *name)
{
	if (casfs_ns_broken_bucket == CASFS_NS_BROKEN_STALE_MAP)
		return true;
	return ns_bucket_of(casfs_name_hash(name, strlen(name)), rec->depth) == rec->bucket;
}

void ns_part_key(const unsigned char *id, uint32_t bucket, char *key)
{
	if (bucket)
		casfs_bucket_key(id, bucket, key);
	else
		casfs_record_key(id, key);
}

int ns_decode_part(struct casfs_ns *ns, const char *key, uint32_t bucket,
		   const struct cas_value *cur, struct casfs_record *rec)
{
	int rc;

	if (!bucket) {
		rc = ns_decode(ns, key, cur, rec);
	} else {
		memset(rec, 0, sizeof(*rec));
		if (cur->version == 0)
			return -ENOENT;
		rc = casfs_bucket_decode(cur->data, cur->len, rec);
		if (rc == CAS_EINVAL) {
			snprintf(ns->errmsg, sizeof(ns->errmsg),
				 "register %s holds no casfs directory bucket", key);
			return -EIO;
		}
		rc = ns_err_of(rc);
	}
	rec->bucket = bucket;
	return rc;
}

int ns_find_bucket(struct casfs_ns *ns, const unsigned char *dir, uint64_t h, struct cas_value *raw,
		   struct casfs_record *rec)
{
	char key[CASFS_BUCKET_KEY_LEN];
	unsigned g = ns_hint(ns, dir, h);
	uint32_t b;
	int rc, i;

	for (i = 0; i < FIND_MAX; i++) {
		b = ns_bucket_of(h, g);
		ns_part_key(dir, b, key);
		memset(raw, 0, sizeof(*raw));
		rc = casfs_txn_read(ns->regs, key, raw);
		if (rc)
			return ns_err_of(rc);
		rc = ns_decode_part(ns, key, b, raw, rec);
		if (rc == -ENOENT && b) {
			/* No such bucket (yet, or any more): a shallower one
			 * covers h. */
			cas_value_clear(raw);
			while (ns_bucket_of(h, g) == b)
				g--;
			continue;
		}
		if (!rc && rec->type != CASFS_DIR)
			rc = -ENOTDIR;
		if (rc) {
			casfs_record_clear(rec);
			cas_value_clear(raw);
			return rc;
		}
		if (ns_bucket_of(h, rec->depth) == b ||
		    casfs_ns_broken_bucket == CASFS_NS_BROKEN_STALE_MAP) {
			hint_set(ns, dir, &h, rec->depth, b == 0 && rec->depth == 0);
			return 0;
		}
		/* Split since the hint: the bucket says how deep to look. */
		g = rec->depth;
		casfs_record_clear(rec);
		cas_value_clear(raw);
	}
	return -EBUSY;
}

/* A raw part: the register must still hold expect (absent: version 0),
 * and then holds the len bytes of buf (0: absent, a delete). */
struct swap {
	const struct cas_value *expect;
	const unsigned char *buf;
	size_t len;
};

static int swap_fn(void *varg, const struct cas_value *cur, struct cas_value *next)
{
	struct swap *s = varg;

	if (!s->expect || !s->expect->version) {
		if (cur->version)
			return CAS_EVERSION;
	} else if (!cur->version || cur->len != s->expect->len ||
		   memcmp(cur->data, s->expect->data, cur->len)) {
		return CAS_EVERSION;
	}
	next->len = s->len;
	next->data = NULL;
	if (!s->len)
		return CAS_OK;
	next->data = malloc(s->len);
	if (!next->data)
		return CAS_ENOMEM;
	memcpy(next->data, s->buf, s->len);
	return CAS_OK;
}

static int encode_part(struct casfs_ns *ns, const struct casfs_record *rec, unsigned char **out,
		       size_t *len)
{
	int rc = rec->bucket ? casfs_bucket_encode(rec, ns->max_size, out, len)
			     : casfs_record_encode(rec, ns->max_size, out, len);

	return rc == CAS_ETOOBIG ? -ENOSPC : ns_err_of(rc);
}

/* Runs the two swaps as one transaction (or, broken on purpose, as two
 * changes): 0, -EAGAIN when a register moved since it was read, or the
 * cluster's error. */
static int swap2(struct casfs_ns *ns, const unsigned char *dir, uint32_t b1, struct swap *s1,
		 uint32_t b2, struct swap *s2)
{
	struct part p[2] = {{dir, NULL, s1, swap_fn, b1}, {dir, NULL, s2, swap_fn, b2}};
	int rc;

	if (casfs_ns_broken_bucket == CASFS_NS_BROKEN_SPLIT_TWO_ROUNDS) {
		rc = ns_apply(ns, &p[0], 1, false, NULL, NULL);
		if (!rc)
			rc = ns_apply(ns, &p[1], 1, false, NULL, NULL);
	} else {
		rc = ns_apply(ns, p, 2, false, NULL, NULL);
	}
	return rc == -cas_errno(CAS_EVERSION) ? -EAGAIN : rc;
}

int ns_split(struct casfs_ns *ns, const unsigned char *dir, uint32_t b)
{
	char key[CASFS_BUCKET_KEY_LEN];
	struct cas_value raw = {0};
	struct casfs_record lo, hi;
	unsigned char *lobuf = NULL, *hibuf = NULL;
	struct swap s1, s2;
	size_t lolen = 0, hilen = 0, i, n = 0;
	unsigned d;
	int rc;

	memset(&hi, 0, sizeof(hi));
	ns_part_key(dir, b, key);
	rc = casfs_txn_read(ns->regs, key, &raw);
	if (rc)
		return ns_err_of(rc);
	rc = ns_decode_part(ns, key, b, &raw, &lo);
	if (rc == -ENOENT && b)
		rc = -EAGAIN;
	if (rc)
		goto out_clear;
	d = lo.depth;
	/* Removed (it takes no entries), or as deep as it goes: nothing to
	 * split; the caller's add says why. */
	if (lo.type != CASFS_DIR || lo.nlink == 0 || d >= CASFS_DEPTH_MAX)
		goto out_clear;
	hi.type = CASFS_DIR;
	hi.nlink = 1;
	hi.depth = (uint8_t)(d + 1);
	hi.bucket = b | (uint32_t)1 << d;
	hi.ents = calloc(lo.nent ? lo.nent : 1, sizeof(*hi.ents));
	rc = -ENOMEM;
	if (!hi.ents)
		goto out_clear;
	for (i = 0; i < lo.nent; i++) {
		struct casfs_dirent *e = &lo.ents[i];

		if (ns_bucket_of(casfs_name_hash(e->name, strlen(e->name)), d + 1) == b)
			lo.ents[n++] = *e;
		else
			hi.ents[hi.nent++] = *e;
	}
	lo.nent = n;
	lo.depth = (uint8_t)(d + 1);
	rc = encode_part(ns, &lo, &lobuf, &lolen);
	if (!rc)
		rc = encode_part(ns, &hi, &hibuf, &hilen);
	if (rc)
		goto out_clear;
	s1 = (struct swap){&raw, lobuf, lolen};
	s2 = (struct swap){NULL, hibuf, hilen};
	rc = swap2(ns, dir, b, &s1, hi.bucket, &s2);
	/* Old and new values of the bucket do not fit in one intent (a
	 * record of format 2 grown past two thirds of the value size before
	 * buckets existed): it cannot split. */
	if (rc == -EFBIG)
		rc = -ENOSPC;
	if (!rc)
		hint_set(ns, dir, NULL, d + 1, false);
out_clear:
	free(lobuf);
	free(hibuf);
	casfs_record_clear(&lo);
	casfs_record_clear(&hi);
	cas_value_clear(&raw);
	return rc;
}

/* Merges bucket s (depth d, the upper of two siblings) into its sibling:
 * 0, -EAGAIN when either moved, or the cluster's error. */
static int merge(struct casfs_ns *ns, const unsigned char *dir, uint32_t s, unsigned d)
{
	uint32_t p = s & ~((uint32_t)1 << (d - 1));
	char pk[CASFS_BUCKET_KEY_LEN], sk[CASFS_BUCKET_KEY_LEN];
	struct cas_value pv = {0}, sv = {0};
	struct casfs_record pr, sr;
	unsigned char *buf = NULL;
	struct swap s1, s2;
	size_t len = 0, i;
	int rc;

	memset(&pr, 0, sizeof(pr));
	memset(&sr, 0, sizeof(sr));
	ns_part_key(dir, p, pk);
	ns_part_key(dir, s, sk);
	rc = ns_err_of(casfs_txn_read(ns->regs, pk, &pv));
	if (!rc)
		rc = ns_err_of(casfs_txn_read(ns->regs, sk, &sv));
	if (!rc)
		rc = ns_decode_part(ns, pk, p, &pv, &pr);
	if (!rc)
		rc = ns_decode_part(ns, sk, s, &sv, &sr);
	if (rc == -ENOENT || (!rc && (pr.type != CASFS_DIR || pr.depth != d || sr.depth != d)))
		rc = -EAGAIN;
	for (i = 0; !rc && i < sr.nent; i++) {
		const struct casfs_dirent *e = &sr.ents[i];

		if (casfs_record_dir_add(&pr, e->name, strlen(e->name), e->type, e->id))
			rc = -ENOMEM;
	}
	if (rc)
		goto out_clear;
	pr.depth = (uint8_t)(d - 1);
	rc = encode_part(ns, &pr, &buf, &len);
	if (rc)
		goto out_clear;
	s1 = (struct swap){&pv, buf, len};
	s2 = (struct swap){&sv, NULL, 0};
	rc = swap2(ns, dir, p, &s1, s, &s2);
out_clear:
	free(buf);
	casfs_record_clear(&pr);
	casfs_record_clear(&sr);
	cas_value_clear(&pv);
	cas_value_clear(&sv);
	return rc;
}

static uint32_t rev32(uint32_t x)
{
	x = (x >> 1 & 0x55555555u) | (x & 0x55555555u) << 1;
	x = (x >> 2 & 0x33333333u) | (x & 0x33333333u) << 2;
	x = (x >> 4 & 0x0f0f0f0fu) | (x & 0x0f0f0f0fu) << 4;
	x = (x >> 8 & 0x00ff00ffu) | (x & 0x00ff00ffu) << 8;
	return x >> 16 | x << 16;
}

uint64_t ns_name_order(const char *name)
{
	uint64_t h = casfs_name_hash(name, strlen(name));

	return (uint64_t)rev32((uint32_t)h) << 32 | rev32((uint32_t)(h >> 32));
}

int ns_walk(struct casfs_ns *ns, const unsigned char *dir, uint64_t from,
	    int (*cb)(void *arg, const struct casfs_record *rec, uint64_t from), void *arg)
{
	struct cas_value raw;
	struct casfs_record rec;
	uint64_t r = from >> 32; /* the cursor: reversed low bits of hashes */
	unsigned d;
	int rc;

	for (;;) {
		rc = ns_find_bucket(ns, dir, rev32((uint32_t)r), &raw, &rec);
		if (rc)
			return rc;
		rc = cb(arg, &rec, from);
		d = rec.depth;
		casfs_record_clear(&rec);
		cas_value_clear(&raw);
		if (rc || d == 0)
			return rc;
		/* The bucket covers the cursors whose top d bits are its
		 * own: go past them. Splits and merges never move an entry
		 * to another place in this order. */
		r = ((r >> (32 - d)) + 1) << (32 - d);
		if (r >> 32)
			return 0;
		from = r << 32;
	}
}

/* What a collapse's walk saw. */
struct seen {
	uint32_t *idx;
	unsigned char *depth;
	size_t n, cap;
	bool full;
	uint32_t full_bucket;
};

static int seen_cb(void *arg, const struct casfs_record *rec, uint64_t from)
{
	struct seen *s = arg;

	(void)from;
	if (rec->nent) {
		s->full = true;
		s->full_bucket = rec->bucket;
		return 1;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		uint32_t *idx = realloc(s->idx, cap * sizeof(*idx));
		unsigned char *depth;

		if (!idx)
			return -ENOMEM;
		s->idx = idx;
		depth = realloc(s->depth, cap);
		if (!depth)
			return -ENOMEM;
		s->depth = depth;
		s->cap = cap;
	}
	s->idx[s->n] = rec->bucket;
	s->depth[s->n++] = rec->depth;
	return 0;
}

int ns_collapse(struct casfs_ns *ns, const unsigned char *dir, uint32_t *full)
{
	struct seen s = {0};
	unsigned deep;
	size_t i, j;
	int rc = -EBUSY, k;

	for (k = 0; k < COLLAPSE_MAX; k++) {
		s.n = 0;
		s.full = false;
		rc = ns_walk(ns, dir, 0, seen_cb, &s);
		if (rc == 1) {
			*full = s.full_bucket;
			rc = -ENOTEMPTY;
			break;
		}
		if (rc == -ENOENT || rc == -ENOTDIR)
			rc = 0; /* nothing to collapse: the caller's change says */
		if (rc)
			break;
		deep = 0;
		for (i = 0; i < s.n; i++)
			deep = s.depth[i] > deep ? s.depth[i] : deep;
		if (deep == 0)
			break;
		/* Every upper bucket of the deepest level whose sibling is
		 * there at the same depth. */
		for (i = 0; i < s.n && (!rc || rc == -EAGAIN); i++) {
			uint32_t lower = s.idx[i] & ~((uint32_t)1 << (deep - 1));

			if (s.depth[i] != deep || s.idx[i] == lower)
				continue;
			for (j = 0; j < s.n && !(s.idx[j] == lower && s.depth[j] == deep); j++)
				;
			if (j < s.n)
				rc = merge(ns, dir, s.idx[i], deep);
		}
		if (rc && rc != -EAGAIN)
			break;
		rc = -EBUSY; /* if the tries run out */
	}
	free(s.idx);
	free(s.depth);
	return rc;
}

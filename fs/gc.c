/* gc.c - the filesystem's side of casctl gc (gc.h): orphaned registers of
 * a casfs tree found online, and the held register's format. Besides
 * round.c, the one file of fs/ that calls the client API: it runs in
 * casctl, without FUSE. The argument is in fs/FORMAT.md, "Deletion". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cas/admin.h>
#include <cas/bytes.h>
#include <cas/os.h>

#include "gc.h"
#include "lockreg.h"
#include "regs.h"
#include "txn.h"

static const unsigned char root_id[CASFS_ID_LEN];

/* The 16 bytes of an "x/" key's 32 hex digits; false when it has none. */
static bool id_of_key(const char *key, unsigned char *id)
{
	if (strlen(key) != 2 + 2 * CASFS_ID_LEN || key[1] != '/')
		return false;
	for (size_t i = 0; i < 2 * CASFS_ID_LEN; i++) {
		char c = key[2 + i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;

		if (v < 0)
			return false;
		if (i % 2 == 0)
			id[i / 2] = (unsigned char)(v << 4);
		else
			id[i / 2] |= (unsigned char)v;
	}
	return true;
}

/* A session as the collector watched it. */
struct watch {
	unsigned char sid[CASFS_SID_LEN];
	uint64_t version;
	uint64_t since_ms; /* when it was first seen at that version */
};

/* An inode as one pass read it. */
struct ino {
	unsigned char id[CASFS_ID_LEN];
	uint64_t version;
	bool intent, record; /* holds an intent; holds a record of this format */
	bool empty;	     /* holds an empty value: absent, left by an old roll back */
	uint8_t type;
	uint32_t nlink;
	unsigned char parent[CASFS_ID_LEN];
	unsigned char *ents; /* a directory's entries' ids, from every bucket */
	size_t nent;
	bool reached, protect;
	uint8_t depth; /* a directory's: not 0 when split into buckets */
	double cover;  /* the part of the hash space the buckets read cover */
};

/* A directory bucket as one pass read it. */
struct bkt {
	const char *key; /* borrowed from the pass's key list */
	uint64_t version;
};

struct list {
	struct casfs_gc_orphan *v;
	size_t n, cap;
};

struct casfs_gc {
	struct cas_client *c;
	unsigned timeout_ms;
	bool dry;
	bool root;	     /* the last pass found a casfs root: a casfs cluster */
	struct timespec end; /* the current round's deadline */
	/* Orphans: this pass's (cur), and without the sessions' protection
	 * (raw), the previous pass's raw ones, and both at once (out). */
	struct list prev, cur, raw, out;
	struct watch *w;
	size_t nw, capw;
	/* Keys named by pending records: this pass's, and the records
	 * themselves as the previous pass saw them. */
	char **pkeys;
	size_t npkeys;
	struct list pending, pending_prev;
};

/* regs.h over the client: each call ends by g->end. */
static unsigned left_ms(void *arg)
{
	struct casfs_gc *g = arg;

	return cas_os_ms_until(&g->end);
}

static int r_read(void *arg, const char *key, struct cas_value *out)
{
	struct casfs_gc *g = arg;
	unsigned left = left_ms(g);

	memset(out, 0, sizeof(*out));
	return left ? cas_read(g->c, key, left, out) : CAS_EUNAVAILABLE;
}

static int r_change(void *arg, const char *key, cas_change_fn fn, void *fn_arg,
		    struct cas_value *out)
{
	struct casfs_gc *g = arg;
	unsigned left = left_ms(g);

	if (out)
		memset(out, 0, sizeof(*out));
	return left ? cas_change(g->c, key, fn, fn_arg, left, out) : CAS_EUNAVAILABLE;
}

static int r_del(void *arg, const char *key, cas_change_fn fn, void *fn_arg, struct cas_value *out)
{
	struct casfs_gc *g = arg;
	unsigned left = left_ms(g);

	if (out)
		memset(out, 0, sizeof(*out));
	return left ? cas_delete(g->c, key, fn, fn_arg, left, out) : CAS_EUNAVAILABLE;
}

static void r_sleep(void *arg, unsigned ms)
{
	unsigned left = left_ms(arg);

	cas_os_sleep_ms(ms < left ? ms : left);
}

static int r_random(void *arg, void *buf, size_t len)
{
	(void)arg;
	return cas_os_random(buf, len);
}

static const struct casfs_regs_ops gc_ops = {r_read, r_change, r_del, left_ms, r_sleep, r_random};

/* The regs of g for one more operation: its deadline starts now. */
static struct casfs_regs regs_now(struct casfs_gc *g)
{
	cas_os_monotonic(&g->end);
	cas_os_timespec_add_ms(&g->end, g->timeout_ms);
	return (struct casfs_regs){&gc_ops, g};
}

struct casfs_gc *casfs_gc_new(struct cas_client *c, unsigned timeout_ms)
{
	struct casfs_gc *g = calloc(1, sizeof(*g));

	if (g) {
		g->c = c;
		g->timeout_ms = timeout_ms;
	}
	return g;
}

static void free_pkeys(struct casfs_gc *g)
{
	for (size_t i = 0; i < g->npkeys; i++)
		free(g->pkeys[i]);
	free(g->pkeys);
	g->pkeys = NULL;
	g->npkeys = 0;
}

void casfs_gc_free(struct casfs_gc *g)
{
	if (!g)
		return;
	free(g->prev.v);
	free(g->cur.v);
	free(g->raw.v);
	free(g->out.v);
	free(g->pending.v);
	free(g->pending_prev.v);
	free(g->w);
	free_pkeys(g);
	free(g);
}

static int push(struct list *l, const char *key, uint64_t version, const char *why)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct casfs_gc_orphan *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return CAS_ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	snprintf(l->v[l->n].key, sizeof(l->v[l->n].key), "%s", key);
	l->v[l->n].version = version;
	l->v[l->n++].why = why;
	return CAS_OK;
}

static bool listed(const struct list *l, const char *key, uint64_t version)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].version == version && !strcmp(l->v[i].key, key))
			return true;
	return false;
}

bool casfs_gc_named_by_pending(const struct casfs_gc *g, const char *key)
{
	for (size_t i = 0; i < g->npkeys; i++)
		if (!strcmp(g->pkeys[i], key))
			return true;
	return false;
}

/* The expiry mark, only while the session is still at the version the
 * collector watched for longer than its lease (as a lock contender does,
 * fs/lease.c). */
static int expire_fn(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	const uint64_t *version = arg;
	struct casfs_sessreg sr;

	if (cur->version == 0)
		return CAS_ENOCHANGE;
	if (casfs_sessreg_decode(cur->data, cur->len, &sr))
		return CAS_EIO;
	if (sr.expired)
		return CAS_ENOCHANGE;
	if (cur->version != *version)
		return CAS_EVERSION;
	sr.expired = true;
	next->data = malloc(CASFS_SESSREG_LEN);
	if (!next->data)
		return CAS_ENOMEM;
	casfs_sessreg_encode(&sr, next->data);
	next->len = CASFS_SESSREG_LEN;
	return CAS_OK;
}

/* Whether session sid is over: absent, marked expired, or silent (one
 * version) for longer than its lease since g first saw that version, on
 * g's clock; then marked expired (not in a dry run). */
static int session_over(struct casfs_gc *g, const unsigned char *sid, bool *over)
{
	char key[CASFS_LOCK_KEY_LEN];
	struct casfs_regs r = regs_now(g);
	struct cas_value v = {0};
	struct casfs_sessreg sr;
	struct watch *w = NULL;
	uint64_t now = cas_os_monotonic_ms();
	int rc;

	*over = false;
	casfs_sessreg_key(sid, key);
	rc = casfs_txn_read(&r, key, &v);
	if (rc)
		return rc;
	if (v.version == 0) {
		*over = true; /* absent: over (fs/lease.c) */
		goto out_clear;
	}
	if (casfs_sessreg_decode(v.data, v.len, &sr))
		goto out_clear; /* not a session: not ours to judge, live */
	if (sr.expired) {
		*over = true;
		goto out_clear;
	}
	for (size_t i = 0; i < g->nw; i++)
		if (!memcmp(g->w[i].sid, sid, CASFS_SID_LEN))
			w = &g->w[i];
	if (!w) {
		if (g->nw == g->capw) {
			size_t cap = g->capw ? 2 * g->capw : 16;
			struct watch *nw = realloc(g->w, cap * sizeof(*nw));

			if (!nw) {
				rc = CAS_ENOMEM;
				goto out_clear;
			}
			g->w = nw;
			g->capw = cap;
		}
		w = &g->w[g->nw++];
		memcpy(w->sid, sid, CASFS_SID_LEN);
		w->version = 0;
	}
	if (w->version != v.version) {
		w->version = v.version;
		w->since_ms = now;
	} else if (now - w->since_ms > sr.lease_ms && !g->dry) {
		r = regs_now(g);
		rc = casfs_txn_change(&r, key, expire_fn, &w->version, NULL);
		*over = rc == CAS_OK;
		rc = rc == CAS_EVERSION ? CAS_OK : rc;
	}
out_clear:
	cas_value_clear(&v);
	return rc;
}

static struct ino *find_ino(struct ino *t, size_t n, const unsigned char *id)
{
	/* Keys are sorted, and so are the ids they name. */
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = memcmp(t[mid].id, id, CASFS_ID_LEN);

		if (c == 0)
			return &t[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Reads inode register key into *in. */
static int read_ino(struct casfs_gc *g, const char *key, struct ino *in)
{
	struct casfs_regs r = regs_now(g);
	struct cas_value v = {0};
	struct casfs_record rec;
	int rc;

	memset(in, 0, sizeof(*in));
	id_of_key(key, in->id);
	rc = r.ops->read(r.arg, key, &v);
	if (rc)
		return rc;
	in->version = v.version;
	in->empty = v.version && v.len == 0;
	if (v.len >= 2 && v.data[0] == 'c' && v.data[1] == 'I') {
		in->intent = true;
	} else if (v.version && !casfs_record_decode(v.data, v.len, &rec)) {
		in->record = true;
		in->type = rec.type;
		in->nlink = rec.nlink;
		in->depth = rec.type == CASFS_DIR ? rec.depth : 0;
		in->cover = 1.0 / (double)(1ull << in->depth);
		memcpy(in->parent, rec.parent, CASFS_ID_LEN);
		if (rec.type == CASFS_DIR && rec.nent) {
			in->ents = malloc(rec.nent * CASFS_ID_LEN);
			if (!in->ents) {
				casfs_record_clear(&rec);
				cas_value_clear(&v);
				return CAS_ENOMEM;
			}
			for (size_t i = 0; i < rec.nent; i++)
				memcpy(in->ents + i * CASFS_ID_LEN, rec.ents[i].id, CASFS_ID_LEN);
			in->nent = rec.nent;
		}
		casfs_record_clear(&rec);
	}
	cas_value_clear(&v);
	return CAS_OK;
}

/* Reads the directory bucket key into its directory's entries (b, its
 * version). *unsure when it holds an intent or no bucket: the pass then
 * judges nothing by names. */
static int read_bucket(struct casfs_gc *g, const char *key, struct ino *t, size_t nt, struct bkt *b,
		       bool *unsure)
{
	struct casfs_regs r = regs_now(g);
	struct cas_value v = {0};
	struct casfs_record rec;
	unsigned char id[CASFS_ID_LEN];
	char ikey[CASFS_KEY_LEN];
	struct ino *in;
	unsigned char *ents;
	int rc;

	b->key = key;
	b->version = 0;
	/* "b/", the directory's id, "/", the bucket. */
	if (strlen(key) != CASFS_BUCKET_KEY_LEN - 1 || key[2 + 2 * CASFS_ID_LEN] != '/')
		return CAS_OK;
	memcpy(ikey, key, 2 + 2 * CASFS_ID_LEN);
	ikey[2 + 2 * CASFS_ID_LEN] = '\0';
	if (!id_of_key(ikey, id))
		return CAS_OK;
	rc = r.ops->read(r.arg, key, &v);
	if (rc)
		return rc;
	b->version = v.version;
	in = find_ino(t, nt, id);
	if (!v.version || !in) {
		cas_value_clear(&v);
		return CAS_OK;
	}
	/* A bucket that holds an intent, or whose directory's first bucket
	 * (its inode) does: some of the directory's entries are unknown. */
	if (in->intent || casfs_bucket_decode(v.data, v.len, &rec)) {
		*unsure = true;
		cas_value_clear(&v);
		return CAS_OK;
	}
	cas_value_clear(&v);
	in->cover += 1.0 / (double)(1ull << rec.depth);
	if (rec.nent) {
		ents = realloc(in->ents, (in->nent + rec.nent) * CASFS_ID_LEN);
		if (!ents) {
			casfs_record_clear(&rec);
			return CAS_ENOMEM;
		}
		in->ents = ents;
		for (size_t i = 0; i < rec.nent; i++)
			memcpy(ents + (in->nent + i) * CASFS_ID_LEN, rec.ents[i].id, CASFS_ID_LEN);
		in->nent += rec.nent;
	}
	casfs_record_clear(&rec);
	return CAS_OK;
}

static bool names(const struct ino *dir, const unsigned char *id)
{
	for (size_t i = 0; i < dir->nent; i++)
		if (!memcmp(dir->ents + i * CASFS_ID_LEN, id, CASFS_ID_LEN))
			return true;
	return false;
}

/* A transaction record: pending (its keys protected, and aborted when
 * two passes saw it pending at one version), or final and garbage once
 * none of its keys holds its intent (settled first). */
static int scan_record(struct casfs_gc *g, const char *key)
{
	char keys[CASFS_TXN_MAX_PARTS + 1][CAS_KEY_MAX + 1];
	struct casfs_regs r = regs_now(g);
	struct cas_value v = {0}, kv = {0};
	size_t n, i;
	bool clean = true;
	int rc, state;

	rc = r.ops->read(r.arg, key, &v);
	if (rc || v.len == 0 || casfs_txn_record_parse(&v, &state, keys, &n))
		goto out_clear;
	if (state == CASFS_TXN_PENDING) {
		for (i = 0; i < n && rc == CAS_OK; i++) {
			char **p = realloc(g->pkeys, (g->npkeys + 1) * sizeof(*p));

			if (!p || !(p[g->npkeys] = strdup(keys[i]))) {
				if (p)
					g->pkeys = p;
				rc = CAS_ENOMEM;
				break;
			}
			g->pkeys = p;
			g->npkeys++;
		}
		if (rc == CAS_OK)
			rc = push(&g->pending, key, v.version, "pending");
		/* Pending through a whole grace: its owner gave up. Aborted
		 * now, collected by a later run. */
		if (rc == CAS_OK && !g->dry && listed(&g->pending_prev, key, v.version)) {
			r = regs_now(g);
			(void)casfs_txn_abort(&r, key);
		}
		goto out_clear;
	}
	for (i = 0; i < n && rc == CAS_OK; i++) {
		r = regs_now(g);
		rc = r.ops->read(r.arg, keys[i], &kv);
		if (rc == CAS_OK && casfs_txn_intent_of(&kv, key)) {
			bool left = true;

			if (!g->dry) {
				/* A read settles a final transaction's intent. */
				cas_value_clear(&kv);
				r = regs_now(g);
				(void)casfs_txn_read(&r, keys[i], &kv);
				cas_value_clear(&kv);
				r = regs_now(g);
				rc = r.ops->read(r.arg, keys[i], &kv);
				left = rc != CAS_OK || casfs_txn_intent_of(&kv, key);
			}
			if (left)
				clean = false;
		}
		cas_value_clear(&kv);
	}
	if (rc == CAS_OK && clean)
		rc = push(&g->cur, key, v.version, "resolved transaction");
out_clear:
	cas_value_clear(&v);
	return rc == CAS_EUNAVAILABLE ? rc : rc == CAS_ENOMEM ? rc : CAS_OK;
}

/* A session register marked expired is garbage: an expired session never
 * renews, and an absent one reads as over everywhere (fs/lease.c), its id
 * never comes back. A lock register without holds whose inode is absent
 * (deleted, its id never reused) is garbage too. */
static int scan_lock_or_session(struct casfs_gc *g, const char *key, struct ino *t, size_t nt)
{
	unsigned char id[CASFS_ID_LEN];
	struct casfs_regs r = regs_now(g);
	struct cas_value v = {0};
	struct casfs_sessreg sr;
	struct casfs_lockreg *lr;
	int rc;

	if (!id_of_key(key, id))
		return CAS_OK;
	rc = r.ops->read(r.arg, key, &v);
	if (rc || v.version == 0)
		goto out_clear;
	if (key[0] == 's') {
		if (!casfs_sessreg_decode(v.data, v.len, &sr) && sr.expired)
			rc = push(&g->cur, key, v.version, "session over");
		goto out_clear;
	}
	if (find_ino(t, nt, id))
		goto out_clear;
	lr = malloc(sizeof(*lr));
	if (!lr) {
		rc = CAS_ENOMEM;
		goto out_clear;
	}
	if (!casfs_lockreg_decode(v.data, v.len, lr) && lr->n == 0)
		rc = push(&g->cur, key, v.version, "lock of a deleted inode");
	free(lr);
out_clear:
	cas_value_clear(&v);
	return rc == CAS_EUNAVAILABLE || rc == CAS_ENOMEM ? rc : CAS_OK;
}

/* True when every directory the walk reached still has the version it
 * was read at: the walk saw one tree, as it was at one moment. */
static bool tree_unchanged(struct casfs_gc *g, const struct ino *t, size_t n)
{
	char key[CASFS_KEY_LEN];

	for (size_t i = 0; i < n; i++) {
		struct casfs_regs r;
		struct cas_value v = {0};
		bool same;

		if (!t[i].reached || t[i].type != CASFS_DIR)
			continue;
		r = regs_now(g);
		casfs_record_key(t[i].id, key);
		if (r.ops->read(r.arg, key, &v))
			return false;
		same = v.version == t[i].version;
		cas_value_clear(&v);
		if (!same)
			return false;
	}
	return true;
}

/* True when every bucket read still has the version it was read at. */
static bool buckets_unchanged(struct casfs_gc *g, const struct bkt *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct casfs_regs r = regs_now(g);
		struct cas_value v = {0};
		bool same;

		if (r.ops->read(r.arg, b[i].key, &v))
			return false;
		same = v.version == b[i].version;
		cas_value_clear(&v);
		if (!same)
			return false;
	}
	return true;
}

int casfs_gc_pass(struct casfs_gc *g, const struct casfs_gc_orphan **out, size_t *nout,
		  char *errmsg, size_t errmsg_len)
{
	struct ino *t = NULL;
	size_t nt = 0, nk = 0, i, j, head, *queue = NULL, nq = 0;
	char **keys = NULL, key[CASFS_KEY_LEN];
	struct list swap;
	struct bkt *bk = NULL;
	size_t nb = 0;
	bool consistent, unsure = false;
	int rc;

	*out = NULL;
	*nout = 0;
	if (errmsg_len)
		errmsg[0] = '\0';
	g->cur.n = g->raw.n = g->out.n = g->pending.n = 0;
	free_pkeys(g);
	rc = cas_client_keys_all(g->c, g->timeout_ms, &keys, &nk, errmsg, errmsg_len);
	if (rc)
		return rc;
	t = calloc(nk ? nk : 1, sizeof(*t));
	queue = calloc(nk ? nk : 1, sizeof(*queue));
	bk = calloc(nk ? nk : 1, sizeof(*bk));
	if (!t || !queue || !bk) {
		rc = CAS_ENOMEM;
		goto out_free;
	}
	/* Transactions first: their intents settled before the inodes are
	 * read, their pending keys known. */
	for (i = 0; i < nk && rc == CAS_OK; i++)
		if (!strncmp(keys[i], "t/", 2))
			rc = scan_record(g, keys[i]);
	for (i = 0; i < nk && rc == CAS_OK; i++) {
		unsigned char id[CASFS_ID_LEN];

		if (strncmp(keys[i], "i/", 2) || !id_of_key(keys[i], id))
			continue;
		rc = read_ino(g, keys[i], &t[nt]);
		if (rc == CAS_OK && t[nt].version)
			nt++;
		else
			free(t[nt].ents);
	}
	/* Directory buckets: their entries are their directory's. A split
	 * directory whose buckets read do not cover its whole hash space
	 * (one split after the keys were listed), or a bucket that holds an
	 * intent, makes the pass judge nothing by names (FORMAT.md). */
	for (i = 0; i < nk && rc == CAS_OK; i++)
		if (!strncmp(keys[i], "b/", 2))
			rc = read_bucket(g, keys[i], t, nt, &bk[nb++], &unsure);
	for (i = 0; i < nt; i++)
		if (t[i].record && t[i].type == CASFS_DIR && t[i].depth && t[i].cover != 1.0)
			unsure = true;
	/* Held registers: the ids of live sessions are protected; those of
	 * sessions over are garbage. Read after the inodes (FORMAT.md). */
	for (i = 0; i < nk && rc == CAS_OK; i++) {
		unsigned char sid[CASFS_SID_LEN];
		const unsigned char *ids = NULL;
		struct casfs_regs r;
		struct cas_value v = {0};
		size_t n = 0;
		bool over = false;

		if (strncmp(keys[i], "h/", 2) || !id_of_key(keys[i], sid))
			continue;
		r = regs_now(g);
		rc = r.ops->read(r.arg, keys[i], &v);
		/* Not a held register (another application's key): not ours. */
		if (rc == CAS_OK && (!v.version || casfs_held_decode(v.data, v.len, &ids, &n))) {
			cas_value_clear(&v);
			continue;
		}
		if (rc == CAS_OK)
			rc = session_over(g, sid, &over);
		if (rc == CAS_OK && over) {
			rc = push(&g->cur, keys[i], v.version, "session over");
		} else if (rc == CAS_OK) {
			for (j = 0; j < n; j++) {
				struct ino *in = find_ino(t, nt, ids + j * CASFS_ID_LEN);

				if (in)
					in->protect = true;
			}
		}
		cas_value_clear(&v);
	}
	/* Sessions over and locks of deleted inodes. */
	for (i = 0; i < nk && rc == CAS_OK; i++)
		if (!strncmp(keys[i], "s/", 2) || !strncmp(keys[i], "l/", 2))
			rc = scan_lock_or_session(g, keys[i], t, nt);
	if (rc)
		goto out_free;
	/* The walk from the root, over what this pass read. */
	g->root = false;
	for (i = 0; i < nt; i++)
		if (!memcmp(t[i].id, root_id, CASFS_ID_LEN) && t[i].record) {
			t[i].reached = true;
			queue[nq++] = i;
			g->root = true;
		}
	for (head = 0; head < nq; head++) {
		const struct ino *d = &t[queue[head]];

		for (j = 0; j < d->nent; j++) {
			struct ino *c = find_ino(t, nt, d->ents + j * CASFS_ID_LEN);

			if (c && !c->reached) {
				c->reached = true;
				queue[nq++] = (size_t)(c - t);
			}
		}
	}
	consistent = !unsure && tree_unchanged(g, t, nt) && buckets_unchanged(g, bk, nb);
	for (i = 0; i < nt && rc == CAS_OK; i++) {
		struct ino *in = &t[i];
		const char *why = NULL;

		casfs_record_key(in->id, key);
		if (!memcmp(in->id, root_id, CASFS_ID_LEN) || in->intent ||
		    casfs_gc_named_by_pending(g, key))
			continue;
		if (in->empty) {
			why = "empty value"; /* absent, but no tombstone */
		} else if (!in->record) {
			continue; /* not a record of this format: not ours to judge */
		} else if (in->nlink == 0) {
			why = "no name left";
		} else if (in->type == CASFS_DIR) {
			struct ino *p = find_ino(t, nt, in->parent);

			if ((!p || !names(p, in->id)) && (!p || !p->depth || consistent))
				why = "directory its parent does not name";
		} else if (!in->reached && consistent) {
			why = "named by no directory";
		}
		/* A live session's protection counts at the deciding pass
		 * only: a file its dead mount held is then collected in one
		 * run, its orphan state having been seen a grace earlier. */
		if (why)
			rc = push(&g->raw, key, in->version, why);
		if (why && !in->protect && rc == CAS_OK)
			rc = push(&g->cur, key, in->version, why);
	}
	/* Records and held registers need no protection. */
	for (i = 0; i < g->cur.n && rc == CAS_OK; i++)
		if (strncmp(g->cur.v[i].key, "i/", 2))
			rc = push(&g->raw, g->cur.v[i].key, g->cur.v[i].version, g->cur.v[i].why);
	if (rc)
		goto out_free;
	/* Orphans of this pass and of the previous one at one version. */
	for (i = 0; i < g->cur.n && rc == CAS_OK; i++)
		if (listed(&g->prev, g->cur.v[i].key, g->cur.v[i].version))
			rc = push(&g->out, g->cur.v[i].key, g->cur.v[i].version, g->cur.v[i].why);
	swap = g->prev;
	g->prev = g->raw;
	g->raw = swap;
	swap = g->pending_prev;
	g->pending_prev = g->pending;
	g->pending = swap;
	if (rc == CAS_OK) {
		*out = g->out.v;
		*nout = g->out.n;
	}
out_free:
	if (rc && errmsg_len && !errmsg[0])
		snprintf(errmsg, errmsg_len, "%s", cas_strerror(rc));
	for (i = 0; i < nt; i++)
		free(t[i].ents);
	free(t);
	free(queue);
	free(bk);
	cas_keys_free(keys, nk);
	return rc;
}

int casfs_gc_collect(struct casfs_gc *g, unsigned grace_ms, bool dry_run, char ***keys, size_t *n,
		     char *errmsg, size_t errmsg_len)
{
	const struct casfs_gc_orphan *o;
	size_t no, i;
	uint64_t until;
	int rc;

	*keys = NULL;
	*n = 0;
	g->dry = dry_run;
	rc = casfs_gc_pass(g, &o, &no, errmsg, errmsg_len);
	if (rc)
		return rc;
	if (!g->root)
		return CAS_OK; /* no casfs tree here: nothing to wait for */
	until = cas_os_monotonic_ms() + grace_ms;
	for (uint64_t now = cas_os_monotonic_ms(); now < until; now = cas_os_monotonic_ms())
		cas_os_sleep_ms((unsigned)(until - now));
	rc = casfs_gc_pass(g, &o, &no, errmsg, errmsg_len);
	if (rc)
		return rc;
	*keys = calloc(no ? no : 1, sizeof(**keys));
	if (!*keys)
		return CAS_ENOMEM;
	for (i = 0; i < no; i++) {
		if (!dry_run) {
			uint64_t version;

			/* Changed since (in use), or not deleted this time (a
			 * node did not answer): left for a later run. */
			if (cas_delete_version(g->c, o[i].key, o[i].version, g->timeout_ms,
					       &version) != CAS_OK)
				continue;
		}
		(*keys)[*n] = strdup(o[i].key);
		if (!(*keys)[*n]) {
			snprintf(errmsg, errmsg_len, "out of memory");
			cas_keys_free(*keys, *n);
			*keys = NULL;
			*n = 0;
			return CAS_ENOMEM;
		}
		(*n)++;
	}
	return CAS_OK;
}

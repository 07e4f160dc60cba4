/* nscheck.c - the namespace model checker: simulated proposers run the
 * namespace operations of fs/ns.c (creates, mkdir, unlink, rmdir, link,
 * renames within and across directories) on an in-memory cluster with
 * faults (memregs.h), one at a time under a seeded scheduler. After every
 * step that changed a register the logical tree (registers read through
 * casfs_txn_read, on a scratch layer) must hold: nlink exact, parent ids
 * agree with the entries, no directory its own ancestor, nothing reachable
 * lost, nothing deleted back, no entry naming a deleted register. Each
 * proposer holds one file open (ns->held keeps its register when its last
 * name goes) and deletes it at the end, as a mount does at the last close.
 * At the end the history of results must be linearizable against a
 * sequential filesystem model (Wing & Gong search, memoized; operations of
 * unknown outcome may or may not take effect), and a run without faults
 * must leave no garbage: no inode register that no entry names, no
 * transaction record.
 *
 *   nscheck [--seeds N] [--seed S] [--broken CONTROL] [-v]
 *
 * Three seeds in four split directories into buckets of one entry each
 * (ns->bucket_max), so that creates split buckets, rmdir merges them,
 * renames move names between buckets; the tree is read through every
 * bucket, and a bucket of a directory no entry names is garbage.
 *
 * Controls: two-round-rename (renames across directories as two changes),
 * delete-first (an inode deleted before the transaction that removes its
 * name), delete-any-nlink (deleted after it whatever its nlink),
 * split-two-rounds (a bucket split as two changes, not one transaction),
 * stale-map (a bucket read through a stale depth taken as the name's,
 * without checking what it covers), remembered-lookup (a lookup answered
 * from what the proposer learnt before, and a create or mkdir of a name
 * it knows refused with EEXIST without a round, as the kernel would from
 * a positive entry that a mount answered from memory: the shortcut of
 * README, "On the final tree, and why the targets are not met", without
 * a check).
 *
 * Exit 0 when every seed passes; with --broken, 0 when some seed fails
 * (the control is caught) and 1 when none does. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memregs.h"
#include "ns.h"
#include "txn.h"

#define NPROP	    4
#define OPS_PER	    10
#define MAX_OPS	    (NPROP * OPS_PER)
#define NAMES	    3
#define MAX_INODES  64
#define MAX_KNOWN   24
#define DEADLINE_MS 3000
#define MAX_SIZE    4096
#define MEMO_SLOTS  (1u << 16)

static const char *const names[NAMES] = {"a", "b", "c"};
static const unsigned char root_id[CASFS_ID_LEN];

enum kind { OP_CREATE, OP_MKDIR, OP_UNLINK, OP_RMDIR, OP_RENAME, OP_LINK, OP_LOOKUP, OP_NLINK };
static const char *const kind_names[] = {"create", "mkdir", "unlink", "rmdir",
					 "rename", "link",  "lookup", "nlink"};

/* One operation as its proposer saw it. */
struct hop {
	enum kind kind;
	unsigned char dir[CASFS_ID_LEN], dir2[CASFS_ID_LEN], x[CASFS_ID_LEN];
	int name, name2;
	unsigned flags;
	uint64_t invoke, complete;
	int result;
	bool unknown;			 /* timed out or crashed: may take effect or not */
	bool dropped;			 /* -EBUSY: no effect */
	unsigned char rid[CASFS_ID_LEN]; /* create: the new id; lookup: the answer */
	uint32_t nlink;
	int proposer;
};

struct run;

struct prop {
	struct run *run;
	int idx;
	uint64_t rng;
	struct hop *cur;
	/* The file this proposer holds open, and whether ns->held kept
	 * its register when its last name went. */
	unsigned char hold[CASFS_ID_LEN];
	bool kept;
	/* remembered-lookup: names this proposer learnt, by directory and
	 * name (a lookup's answer, a create's new id). */
	struct {
		bool known;
		unsigned char dir[CASFS_ID_LEN], id[CASFS_ID_LEN];
	} learnt[MAX_KNOWN + 1][NAMES];
};

/* The remembered-lookup control. */
static bool broken_remembered_lookup;

struct id16 {
	unsigned char b[CASFS_ID_LEN];
};

struct link3 {
	struct id16 parent, child;
	int name;
};

struct run {
	struct memregs *m;
	uint64_t seed;
	struct hop hist[MAX_OPS];
	int nhist;
	struct prop props[NPROP];
	struct id16 dirs[MAX_KNOWN], files[MAX_KNOWN];
	int ndirs, nfiles;
	/* The tree at the previous check. */
	struct id16 reach[MAX_INODES * 2];
	int nreach;
	struct link3 links[MAX_INODES * 4];
	int nlinks;
	struct id16 gone[MAX_INODES * 2];
	int ngone;
	char why[512];
	uint64_t checks;
};

static bool verbose;
/* This seed's ns->bucket_max. */
static size_t bucket_max;
/* Each proposer's hints, as each mount has its own. */
static struct casfs_ns_hints hints[NPROP];

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static bool id_eq(const unsigned char *a, const unsigned char *b)
{
	return !memcmp(a, b, CASFS_ID_LEN);
}

static void fail(struct run *r, const char *fmt, ...)
{
	va_list ap;

	if (r->why[0])
		return;
	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
}

static const char *hex(const unsigned char *id)
{
	static char buf[4][9];
	static int k;
	char *b = buf[k++ & 3];

	if (id_eq(id, root_id))
		return "root";
	snprintf(b, 9, "%02x%02x%02x%02x", id[0], id[1], id[2], id[3]);
	return b;
}

/* ---- the logical tree, checked after every step ---- */

/* Reads id's record as casfs_txn_read sees it, on the scratch layer. */
static int logical(struct run *r, const unsigned char *id, struct casfs_record *rec)
{
	struct casfs_regs obs;
	struct casfs_ns ns = {0};
	int rc;

	memregs_direct(r->m, true, &obs);
	ns.regs = &obs;
	ns.max_size = MAX_SIZE;
	rc = casfs_ns_load(&ns, id, rec, NULL);
	if (!rc && rec->type == CASFS_DIR && rec->depth) {
		casfs_record_clear(rec);
		rc = casfs_ns_list(&ns, id, rec, NULL);
	}
	return rc;
}

static int name_idx(const char *n)
{
	int i;

	for (i = 0; i < NAMES; i++)
		if (!strcmp(n, names[i]))
			return i;
	return -1;
}

static int find16(const struct id16 *a, int n, const unsigned char *id)
{
	int i;

	for (i = 0; i < n; i++)
		if (id_eq(a[i].b, id))
			return i;
	return -1;
}

/* May an operation in flight (or of unknown outcome) remove the entry
 * name of dir? */
static bool removal_target(struct run *r, const unsigned char *dir, int name)
{
	uint64_t now = memregs_now(r->m);
	int i;

	/* Ops that completed in this very step count as in flight. */
	for (i = 0; i < r->nhist; i++) {
		const struct hop *o = &r->hist[i];
		bool open = o->unknown || o->complete == UINT64_MAX || o->complete + 1 >= now;

		if (!open)
			continue;
		if ((o->kind == OP_UNLINK || o->kind == OP_RMDIR) && id_eq(o->dir, dir) &&
		    o->name == name)
			return true;
		if (o->kind == OP_RENAME && !(o->flags & RENAME_EXCHANGE) && id_eq(o->dir2, dir) &&
		    o->name2 == name)
			return true;
	}
	return false;
}

static bool check_tree(void *arg)
{
	struct run *r = arg;
	struct id16 reach[MAX_INODES * 2], parents[MAX_INODES * 2];
	struct link3 links[MAX_INODES * 4];
	int count[MAX_INODES * 2] = {0};
	uint32_t nlink[MAX_INODES * 2];
	uint8_t type[MAX_INODES * 2];
	int nreach = 1, nlinks = 0, head, i, j, k;
	struct casfs_record rec;
	int rc;

	r->checks++;
	memset(reach, 0, sizeof(reach[0]));
	type[0] = CASFS_DIR;
	nlink[0] = 1;
	for (head = 0; head < nreach && !r->why[0]; head++) {
		if (type[head] != CASFS_DIR)
			continue;
		rc = logical(r, reach[head].b, &rec);
		if (rc) {
			fail(r, "reachable directory %s does not read: %d", hex(reach[head].b), rc);
			break;
		}
		for (i = 0; i < (int)rec.nent && !r->why[0]; i++) {
			const struct casfs_dirent *e = &rec.ents[i];
			struct casfs_record c;

			if (nlinks == MAX_INODES * 4)
				break;
			links[nlinks].parent = reach[head];
			memcpy(links[nlinks].child.b, e->id, CASFS_ID_LEN);
			links[nlinks++].name = name_idx(e->name);
			k = find16(reach, nreach, e->id);
			if (k >= 0) {
				count[k]++;
				continue;
			}
			if (nreach == MAX_INODES * 2)
				break;
			rc = logical(r, e->id, &c);
			if (rc) {
				fail(r, "entry %s/%s names %s, which does not read: %d",
				     hex(reach[head].b), e->name, hex(e->id), rc);
				break;
			}
			if (c.type != e->type)
				fail(r, "entry %s/%s has type %d, its inode %d", hex(reach[head].b),
				     e->name, e->type, c.type);
			if (c.type == CASFS_DIR && !id_eq(c.parent, reach[head].b))
				fail(r, "directory %s is named in %s but its parent id is %s",
				     hex(e->id), hex(reach[head].b), hex(c.parent));
			k = nreach++;
			memcpy(reach[k].b, e->id, CASFS_ID_LEN);
			memcpy(parents[k].b, c.parent, CASFS_ID_LEN);
			type[k] = c.type;
			nlink[k] = c.nlink;
			count[k] = 1;
			casfs_record_clear(&c);
		}
		casfs_record_clear(&rec);
	}
	/* nlink exact; a directory has one name. */
	for (k = 1; k < nreach && !r->why[0]; k++) {
		if ((int)nlink[k] != count[k])
			fail(r, "%s %s has %d names, nlink %u",
			     type[k] == CASFS_DIR ? "directory" : "file", hex(reach[k].b), count[k],
			     nlink[k]);
	}
	/* No directory its own ancestor: parent ids lead to the root. */
	for (k = 1; k < nreach && !r->why[0]; k++) {
		struct id16 cur = parents[k];

		if (type[k] != CASFS_DIR)
			continue;
		for (j = 0; j <= nreach && !id_eq(cur.b, root_id); j++) {
			if (id_eq(cur.b, reach[k].b))
				break;
			i = find16(reach, nreach, cur.b);
			if (i < 0)
				break;
			cur = parents[i];
		}
		if (!id_eq(cur.b, root_id))
			fail(r, "directory %s does not lead to the root by parent ids",
			     hex(reach[k].b));
	}
	/* Nothing reachable lost, nothing deleted back. */
	for (k = 0; k < r->nreach && !r->why[0]; k++) {
		bool ok = false;

		if (find16(reach, nreach, r->reach[k].b) >= 0)
			continue;
		for (i = 0; i < r->nlinks && !ok; i++)
			ok = id_eq(r->links[i].child.b, r->reach[k].b) &&
			     find16(reach, nreach, r->links[i].parent.b) >= 0 &&
			     removal_target(r, r->links[i].parent.b, r->links[i].name);
		if (!ok)
			fail(r, "%s became unreachable, and no operation removes its name",
			     hex(r->reach[k].b));
		else if (r->ngone < MAX_INODES * 2)
			r->gone[r->ngone++] = r->reach[k];
	}
	for (k = 0; k < nreach && !r->why[0]; k++)
		if (find16(r->gone, r->ngone, reach[k].b) >= 0)
			fail(r, "%s was removed and is reachable again", hex(reach[k].b));
	memcpy(r->reach, reach, sizeof(reach[0]) * (size_t)nreach);
	r->nreach = nreach;
	memcpy(r->links, links, sizeof(links[0]) * (size_t)nlinks);
	r->nlinks = nlinks;
	memregs_scratch_clear(r->m);
	return !r->why[0];
}

/* ---- garbage left at the end ---- */

static int unhex(char c)
{
	return c >= 'a' ? c - 'a' + 10 : c - '0';
}

static void garbage_of(void *arg, const char *key, const struct cas_value *v)
{
	struct run *r = arg;
	unsigned char id[CASFS_ID_LEN];
	int i;

	if (!strncmp(key, "t/", 2)) {
		fail(r, "transaction record %s left", key);
		return;
	}
	if (!strncmp(key, "b/", 2) && strlen(key) == CASFS_BUCKET_KEY_LEN - 1) {
		for (i = 0; i < CASFS_ID_LEN; i++)
			id[i] = (unsigned char)(unhex(key[2 + 2 * i]) << 4 | unhex(key[3 + 2 * i]));
		if (v->version && find16(r->reach, r->nreach, id) < 0)
			fail(r, "bucket %s of a directory no entry names", key);
		return;
	}
	if (strncmp(key, "i/", 2) || strlen(key) != 2 + 2 * CASFS_ID_LEN)
		return;
	for (i = 0; i < CASFS_ID_LEN; i++)
		id[i] = (unsigned char)(unhex(key[2 + 2 * i]) << 4 | unhex(key[3 + 2 * i]));
	if (find16(r->reach, r->nreach, id) < 0)
		fail(r, "inode %s is named by no entry, and not deleted", hex(id));
}

/* ---- the proposers ---- */

static void pick(uint64_t *s, const struct id16 *a, int n, unsigned char *out)
{
	memcpy(out, a[rnd(s) % (uint64_t)n].b, CASFS_ID_LEN);
}

static void gen(struct prop *p, struct hop *o)
{
	struct run *r = p->run;
	unsigned w = (unsigned)(rnd(&p->rng) % 100);

	memset(o, 0, sizeof(*o));
	o->proposer = p->idx;
	o->kind = w < 14   ? OP_CREATE
		  : w < 26 ? OP_MKDIR
		  : w < 36 ? OP_UNLINK
		  : w < 44 ? OP_RMDIR
		  : w < 74 ? OP_RENAME
		  : w < 84 ? OP_LINK
		  : w < 94 ? OP_LOOKUP
			   : OP_NLINK;
	pick(&p->rng, r->dirs, r->ndirs, o->dir);
	o->name = (int)(rnd(&p->rng) % NAMES);
	o->name2 = (int)(rnd(&p->rng) % NAMES);
	if (o->kind == OP_RENAME) {
		if (rnd(&p->rng) % 3)
			pick(&p->rng, r->dirs, r->ndirs, o->dir2);
		else
			memcpy(o->dir2, o->dir, CASFS_ID_LEN);
		w = (unsigned)(rnd(&p->rng) % 100);
		o->flags = w < 70 ? 0 : w < 85 ? RENAME_NOREPLACE : RENAME_EXCHANGE;
	}
	if (o->kind == OP_LINK)
		pick(&p->rng, r->files, r->nfiles, o->x);
	if (o->kind == OP_NLINK) {
		if (rnd(&p->rng) % 2)
			pick(&p->rng, r->files, r->nfiles, o->x);
		else
			pick(&p->rng, r->dirs, r->ndirs, o->x);
	}
}

static int exec(struct casfs_ns *ns, struct hop *o)
{
	struct casfs_record rec;
	uint8_t type;
	int rc;

	switch (o->kind) {
	case OP_CREATE:
	case OP_MKDIR:
		casfs_record_init(&rec, o->kind == OP_MKDIR ? CASFS_DIR : CASFS_REG, 0644, 0, 0,
				  &ns->now);
		return casfs_ns_create(ns, o->dir, names[o->name], &rec, o->rid, NULL, NULL);
	case OP_UNLINK:
		return casfs_ns_unlink(ns, o->dir, names[o->name]);
	case OP_RMDIR:
		return casfs_ns_rmdir(ns, o->dir, names[o->name]);
	case OP_RENAME:
		return casfs_ns_rename(ns, o->dir, names[o->name], o->dir2, names[o->name2],
				       o->flags);
	case OP_LINK:
		return casfs_ns_link(ns, o->x, o->dir, names[o->name], NULL);
	case OP_LOOKUP:
		return casfs_ns_lookup(ns, o->dir, names[o->name], &type, o->rid);
	case OP_NLINK:
		rc = casfs_ns_load(ns, o->x, &rec, NULL);
		o->nlink = rec.nlink;
		casfs_record_clear(&rec);
		return rc;
	}
	return -EINVAL;
}

/* remembered-lookup: the slot of (dir, name) in p's memory, or NULL when
 * it is full. */
static unsigned char *learnt_slot(struct prop *p, const unsigned char *dir, int name, bool add)
{
	int i;

	for (i = 0; i <= MAX_KNOWN; i++) {
		if (p->learnt[i][name].known && id_eq(p->learnt[i][name].dir, dir))
			return p->learnt[i][name].id;
	}
	for (i = 0; add && i <= MAX_KNOWN; i++) {
		if (!p->learnt[i][name].known) {
			p->learnt[i][name].known = true;
			memcpy(p->learnt[i][name].dir, dir, CASFS_ID_LEN);
			return p->learnt[i][name].id;
		}
	}
	return NULL;
}

/* remembered-lookup: answers o from memory when p knows its name. True
 * when answered. */
static bool answer_from_memory(struct prop *p, struct hop *o)
{
	unsigned char *id;

	if (o->kind != OP_LOOKUP && o->kind != OP_CREATE && o->kind != OP_MKDIR)
		return false;
	id = learnt_slot(p, o->dir, o->name, false);
	if (!id)
		return false;
	if (o->kind == OP_LOOKUP) {
		memcpy(o->rid, id, CASFS_ID_LEN);
		o->result = 0;
	} else {
		o->result = -EEXIST;
	}
	return true;
}

/* remembered-lookup: what o taught p. */
static void learn(struct prop *p, const struct hop *o)
{
	unsigned char *id;

	if (o->unknown || o->result ||
	    (o->kind != OP_LOOKUP && o->kind != OP_CREATE && o->kind != OP_MKDIR))
		return;
	id = learnt_slot(p, o->dir, o->name, true);
	if (id)
		memcpy(id, o->rid, CASFS_ID_LEN);
}

/* ns->held: this proposer holds one file open. */
static bool held(void *arg, const unsigned char *id)
{
	struct prop *p = arg;

	if (!id_eq(id, p->hold))
		return false;
	p->kept = true;
	return true;
}

static void proposer(void *arg, const struct casfs_regs *regs)
{
	struct prop *p = arg;
	struct run *r = p->run;
	static const unsigned char zero[CASFS_ID_LEN];
	struct casfs_record rec;
	struct casfs_ns ns;
	struct hop *o;
	int i;

	for (i = 0; i < OPS_PER && !memregs_crashed(regs); i++) {
		o = &r->hist[r->nhist++];
		gen(p, o);
		o->invoke = memregs_now(r->m);
		o->complete = UINT64_MAX;
		p->cur = o;
		memset(&ns, 0, sizeof(ns));
		ns.regs = regs;
		ns.max_size = MAX_SIZE;
		ns.bucket_max = bucket_max;
		ns.hints = &hints[p->idx];
		ns.now.tv_sec = (time_t)(1700000000 + o->invoke / 1000);
		ns.held = held;
		ns.held_arg = p;
		memregs_deadline(regs, DEADLINE_MS);
		if (!broken_remembered_lookup || !answer_from_memory(p, o))
			o->result = exec(&ns, o);
		o->complete = memregs_now(r->m);
		o->unknown = o->result == -cas_errno(CAS_EUNAVAILABLE) || memregs_crashed(regs);
		o->dropped = !o->unknown && o->result == -EBUSY;
		p->cur = NULL;
		if (broken_remembered_lookup)
			learn(p, o);
		/* Only a create that succeeded hands out its id: a client
		 * learns an id from a reply or a lookup, never from an
		 * operation whose outcome it does not know (that inode may
		 * stay unnamed for ever, and nothing can name it). */
		if ((o->kind == OP_CREATE || o->kind == OP_MKDIR) && !id_eq(o->rid, zero) &&
		    !o->unknown && !o->result) {
			if (o->kind == OP_MKDIR && r->ndirs < MAX_KNOWN)
				memcpy(r->dirs[r->ndirs++].b, o->rid, CASFS_ID_LEN);
			if (o->kind == OP_CREATE && r->nfiles < MAX_KNOWN)
				memcpy(r->files[r->nfiles++].b, o->rid, CASFS_ID_LEN);
		}
	}
	/* The last close of the file held open: its register goes if its
	 * last name went meanwhile. */
	if (p->kept && !memregs_crashed(regs)) {
		memset(&ns, 0, sizeof(ns));
		ns.regs = regs;
		ns.max_size = MAX_SIZE;
		ns.bucket_max = bucket_max;
		ns.hints = &hints[p->idx];
		memregs_deadline(regs, DEADLINE_MS);
		/* Kept by this proposer's own removal: still readable here. */
		i = casfs_ns_load(&ns, p->hold, &rec, NULL);
		casfs_record_clear(&rec);
		if (i == -ENOENT)
			fail(r, "p%d: %s, held open, was deleted", p->idx, hex(p->hold));
		i = casfs_ns_delete(&ns, p->hold);
		if (i && i != -cas_errno(CAS_EUNAVAILABLE))
			fail(r, "p%d: the last close of %s: %d", p->idx, hex(p->hold), i);
	}
}

/* ---- the sequential model ---- */

struct minode {
	unsigned char id[CASFS_ID_LEN];
	uint8_t type;
	uint32_t nlink;
	int parent;
	int ent[NAMES]; /* index of the inode, or -1 */
};

struct model {
	int n;
	struct minode in[MAX_INODES];
};

static int m_find(const struct model *m, const unsigned char *id)
{
	int i;

	for (i = 0; i < m->n; i++)
		if (id_eq(m->in[i].id, id))
			return i;
	return -1;
}

static int m_add(struct model *m, const unsigned char *id, uint8_t type, int parent)
{
	struct minode *n;

	if (m->n == MAX_INODES)
		return -1;
	n = &m->in[m->n];
	memcpy(n->id, id, CASFS_ID_LEN);
	n->type = type;
	n->nlink = 1;
	n->parent = parent;
	n->ent[0] = n->ent[1] = n->ent[2] = -1;
	return m->n++;
}

/* A directory that takes entries: it exists and is not removed. */
static bool m_live_dir(const struct model *m, int d)
{
	return d >= 0 && m->in[d].type == CASFS_DIR && m->in[d].nlink > 0;
}

static bool m_empty(const struct model *m, int d)
{
	return m->in[d].ent[0] < 0 && m->in[d].ent[1] < 0 && m->in[d].ent[2] < 0;
}

/* True when the directory q is s or inside it. */
static bool m_inside(const struct model *m, int q, int s)
{
	int i;

	for (i = 0; i <= m->n && q >= 0; i++) {
		if (q == s)
			return true;
		if (q == 0)
			return false;
		q = m->in[q].parent;
	}
	return false;
}

/* One name fewer for inode i (a directory: removed). */
static void m_drop(struct model *m, int i)
{
	if (m->in[i].type == CASFS_DIR)
		m->in[i].nlink = 0;
	else if (m->in[i].nlink)
		m->in[i].nlink--;
}

static unsigned ebit(int e)
{
	switch (e) {
	case ENOENT:
		return 1u << 0;
	case EEXIST:
		return 1u << 1;
	case ENOTEMPTY:
		return 1u << 2;
	case ENOTDIR:
		return 1u << 3;
	case EISDIR:
		return 1u << 4;
	case EINVAL:
		return 1u << 5;
	case EPERM:
		return 1u << 6;
	default:
		return 1u << 31;
	}
}

#define E(x) ebit(x)

/* Applies o to m: the errors it may fail with (none: it succeeds and m
 * changes), and for a lookup or nlink what it answers. */
static unsigned m_apply(struct model *m, const struct hop *o, int *found, uint32_t *nlink)
{
	int p = m_find(m, o->dir), q, s, d, x;
	unsigned e = 0;
	bool exchange = o->flags & RENAME_EXCHANGE;

	*found = -1;
	switch (o->kind) {
	case OP_CREATE:
	case OP_MKDIR:
		if (!m_live_dir(m, p))
			return E(ENOENT);
		if (m->in[p].ent[o->name] >= 0)
			return E(EEXIST);
		x = m_add(m, o->rid, o->kind == OP_MKDIR ? CASFS_DIR : CASFS_REG, p);
		m->in[p].ent[o->name] = x;
		return 0;
	case OP_UNLINK:
	case OP_RMDIR:
		s = p >= 0 ? m->in[p].ent[o->name] : -1;
		if (s < 0)
			return E(ENOENT);
		if (o->kind == OP_UNLINK && m->in[s].type == CASFS_DIR)
			return E(EISDIR);
		if (o->kind == OP_RMDIR && m->in[s].type != CASFS_DIR)
			return E(ENOTDIR);
		if (o->kind == OP_RMDIR && !m_empty(m, s))
			return E(ENOTEMPTY);
		m->in[p].ent[o->name] = -1;
		m_drop(m, s);
		return 0;
	case OP_LINK:
		x = m_find(m, o->x);
		q = p;
		if (x < 0 || m->in[x].nlink == 0)
			e |= E(ENOENT);
		if (!m_live_dir(m, q))
			e |= E(ENOENT);
		else if (m->in[q].ent[o->name] >= 0)
			e |= E(EEXIST);
		if (e)
			return e;
		m->in[q].ent[o->name] = x;
		m->in[x].nlink++;
		return 0;
	case OP_LOOKUP:
		*found = p >= 0 ? m->in[p].ent[o->name] : -1;
		return *found < 0 ? E(ENOENT) : 0;
	case OP_NLINK:
		x = m_find(m, o->x);
		if (x < 0)
			return E(ENOENT);
		*nlink = m->in[x].nlink;
		return 0;
	case OP_RENAME:
		break;
	}
	q = m_find(m, o->dir2);
	s = p >= 0 ? m->in[p].ent[o->name] : -1;
	if (s < 0)
		return E(ENOENT);
	d = q >= 0 ? m->in[q].ent[o->name2] : -1;
	if (p != q && !m_live_dir(m, q))
		e |= E(ENOENT);
	if (exchange && d < 0)
		e |= E(ENOENT);
	if ((o->flags & RENAME_NOREPLACE) && d >= 0)
		e |= E(EEXIST);
	if (d == s)
		return e;
	if (q >= 0 && m->in[s].type == CASFS_DIR && m_inside(m, q, s))
		e |= E(EINVAL);
	if (exchange && d >= 0 && m->in[d].type == CASFS_DIR && m_inside(m, p, d))
		e |= E(EINVAL);
	if (!exchange && d >= 0) {
		if (m->in[s].type == CASFS_DIR && m->in[d].type != CASFS_DIR)
			e |= E(ENOTDIR);
		if (m->in[s].type != CASFS_DIR && m->in[d].type == CASFS_DIR)
			e |= E(EISDIR);
		if (m->in[d].type == CASFS_DIR && !m_empty(m, d))
			e |= E(ENOTEMPTY);
	}
	if (e)
		return e;
	m->in[p].ent[o->name] = exchange ? d : -1;
	m->in[q].ent[o->name2] = s;
	if (m->in[s].type == CASFS_DIR)
		m->in[s].parent = q;
	if (exchange && m->in[d].type == CASFS_DIR)
		m->in[d].parent = p;
	if (!exchange && d >= 0)
		m_drop(m, d);
	return 0;
}

/* Does o's result agree with the model's answer? */
static bool m_matches(const struct model *m, const struct hop *o, unsigned errs, int found,
		      uint32_t nlink)
{
	if (o->unknown)
		return true;
	if (errs)
		return o->result < 0 && (errs & ebit(-o->result));
	if (o->kind == OP_NLINK && o->result == -ENOENT && nlink == 0)
		return true; /* no name left: deleted, or not yet */
	if (o->result)
		return false;
	if (o->kind == OP_LOOKUP)
		return id_eq(o->rid, m->in[found].id);
	if (o->kind == OP_NLINK)
		return o->nlink == nlink;
	return true;
}

static uint64_t m_hash(const struct model *m)
{
	uint64_t h = 0xcbf29ce484222325ull;
	const unsigned char *b;
	size_t k;
	int i;

	for (i = 0; i < m->n; i++) {
		const struct minode *n = &m->in[i];
		uint32_t v[5] = {n->nlink, (uint32_t)n->parent, (uint32_t)n->ent[0],
				 (uint32_t)n->ent[1], (uint32_t)n->ent[2]};

		for (b = n->id, k = 0; k < 8; k++)
			h = (h ^ b[k]) * 0x100000001b3ull;
		for (b = (const unsigned char *)v, k = 0; k < sizeof(v); k++)
			h = (h ^ b[k]) * 0x100000001b3ull;
	}
	return h;
}

/* Visited (linearized set, state) pairs. */
struct memo {
	uint64_t mask[MEMO_SLOTS], state[MEMO_SLOTS];
	uint32_t gen[MEMO_SLOTS];
	uint32_t now;
	size_t used;
};

static struct memo memo;

/* True when (mask, state) was visited; else notes it. */
static bool memo_seen(uint64_t mask, uint64_t state)
{
	uint64_t h = (mask * 0x9e3779b97f4a7c15ull) ^ state;
	size_t i = (size_t)(h & (MEMO_SLOTS - 1)), n;

	for (n = 0; n < MEMO_SLOTS; n++, i = (i + 1) & (MEMO_SLOTS - 1)) {
		if (memo.gen[i] != memo.now) {
			if (memo.used * 2 > MEMO_SLOTS)
				return false; /* full: search on, unmemoized */
			memo.gen[i] = memo.now;
			memo.mask[i] = mask;
			memo.state[i] = state;
			memo.used++;
			return false;
		}
		if (memo.mask[i] == mask && memo.state[i] == state)
			return true;
	}
	return false;
}

struct search {
	const struct hop *ops[MAX_OPS];
	int n;
	uint64_t need; /* completed ops: all must be placed */
	int best;
	uint64_t budget;
};

static bool lin(struct search *s, const struct model *m, uint64_t mask)
{
	uint64_t minc = UINT64_MAX;
	struct model next;
	int i, found, placed = __builtin_popcountll(mask);
	uint32_t nlink;
	unsigned errs;

	if ((mask & s->need) == s->need)
		return true;
	if (placed > s->best)
		s->best = placed;
	if (!s->budget--)
		return true; /* gave up: counted as passing, reported */
	if (memo_seen(mask, m_hash(m)))
		return false;
	for (i = 0; i < s->n; i++)
		if (!(mask >> i & 1) && !s->ops[i]->unknown && s->ops[i]->complete < minc)
			minc = s->ops[i]->complete;
	for (i = 0; i < s->n; i++) {
		const struct hop *o = s->ops[i];

		if ((mask >> i & 1) || o->invoke > minc)
			continue;
		next = *m;
		nlink = 0;
		errs = m_apply(&next, o, &found, &nlink);
		if (!m_matches(&next, o, errs, found, nlink))
			continue;
		if (lin(s, &next, mask | 1ull << i))
			return true;
	}
	return false;
}

/* ---- one seed ---- */

static int setup(struct run *r, struct model *m)
{
	static const struct {
		int parent, name;
		uint8_t type;
	} tree[] = {{0, 0, CASFS_DIR},
		    {0, 1, CASFS_DIR},
		    {1, 0, CASFS_DIR},
		    {2, 2, CASFS_REG},
		    {0, 2, CASFS_REG}};
	struct casfs_regs d;
	struct casfs_ns ns = {0};
	struct casfs_record rec;
	unsigned char *buf;
	struct id16 ids[6];
	size_t len, i;
	int rc, k;

	memregs_direct(r->m, false, &d);
	ns.regs = &d;
	ns.max_size = MAX_SIZE;
	ns.bucket_max = bucket_max;
	casfs_record_init(&rec, CASFS_DIR, 0755, 0, 0, &ns.now);
	rc = casfs_record_encode(&rec, MAX_SIZE, &buf, &len);
	if (rc)
		return rc;
	{
		char key[CASFS_KEY_LEN];
		struct cas_value v = {1, buf, len};

		casfs_record_key(root_id, key);
		rc = memregs_multi(&d, 1, (const char *const[]){key}, (const uint64_t[]){0}, &v);
	}
	if (rc)
		return rc;
	memset(m, 0, sizeof(*m));
	m_add(m, root_id, CASFS_DIR, 0);
	memset(ids, 0, sizeof(ids));
	r->ndirs = r->nfiles = 0;
	r->dirs[r->ndirs++] = ids[0];
	for (i = 0; i < sizeof(tree) / sizeof(tree[0]); i++) {
		casfs_record_init(&rec, tree[i].type, 0755, 0, 0, &ns.now);
		rc = casfs_ns_create(&ns, ids[tree[i].parent].b, names[tree[i].name], &rec,
				     ids[i + 1].b, NULL, NULL);
		if (rc)
			return CAS_EIO;
		k = m_add(m, ids[i + 1].b, tree[i].type, tree[i].parent);
		m->in[tree[i].parent].ent[tree[i].name] = k;
		if (tree[i].type == CASFS_DIR)
			r->dirs[r->ndirs++] = ids[i + 1];
		else
			r->files[r->nfiles++] = ids[i + 1];
	}
	return CAS_OK;
}

static void print_history(const struct run *r)
{
	int i;

	for (i = 0; i < r->nhist; i++) {
		const struct hop *o = &r->hist[i];

		fprintf(stderr, "  p%d [%llu,%llu] %s %s/%s", o->proposer,
			(unsigned long long)o->invoke, (unsigned long long)o->complete,
			kind_names[o->kind], hex(o->kind == OP_LINK ? o->x : o->dir),
			o->kind == OP_NLINK ? "" : names[o->name]);
		if (o->kind == OP_RENAME)
			fprintf(stderr, " -> %s/%s flags %u", hex(o->dir2), names[o->name2],
				o->flags);
		if (o->kind == OP_LINK)
			fprintf(stderr, " as %s/%s", hex(o->dir), names[o->name]);
		if (o->kind == OP_CREATE || o->kind == OP_MKDIR || o->kind == OP_LOOKUP)
			fprintf(stderr, " id %s", hex(o->rid));
		if (o->kind == OP_NLINK)
			fprintf(stderr, " %s nlink %u", hex(o->x), o->nlink);
		fprintf(stderr, " = %d%s%s\n", o->result, o->unknown ? " (unknown)" : "",
			o->dropped ? " (dropped)" : "");
	}
}

/* Runs one seed: true when every check passed; why says what failed. */
static bool run_seed(uint64_t seed, char *why, size_t why_len, uint64_t *checks)
{
	static struct run r;
	struct memregs_faults f = {0};
	struct model m;
	struct search s;
	uint64_t rng = seed * 7919 + 1;
	int i, mode = (int)(seed % 3);
	bool ok = false;

	memset(&r, 0, sizeof(r));
	r.seed = seed;
	/* One entry of a one-letter name per bucket, or the default. */
	bucket_max = seed % 4 ? 2 + 1 + CASFS_ID_LEN : 0;
	casfs_ns_hints_clear(NULL);
	for (i = 0; i < NPROP; i++)
		casfs_ns_hints_clear(&hints[i]);
	r.m = memregs_new(seed);
	if (!r.m) {
		snprintf(why, why_len, "out of memory");
		return false;
	}
	if (setup(&r, &m)) {
		snprintf(why, why_len, "setup failed");
		goto out_free;
	}
	if (mode) {
		f.read_fail = mode == 1 ? 100 : 300;
		f.fail_before = mode == 1 ? 100 : 300;
		f.fail_after = mode == 1 ? 100 : 300;
		f.crash = mode == 2 ? 30 : 0;
	}
	for (i = 0; i < NPROP; i++) {
		r.props[i] = (struct prop){.run = &r, .idx = i, .rng = rnd(&rng)};
		pick(&rng, r.files, r.nfiles, r.props[i].hold);
		if (memregs_spawn(r.m, &f, proposer, &r.props[i])) {
			snprintf(why, why_len, "out of memory");
			goto out_free;
		}
	}
	check_tree(&r);
	memregs_run(r.m, check_tree, &r);
	if (!r.why[0])
		check_tree(&r);
	/* Without faults nothing is left over: every operation knew its
	 * outcome and finished its deletes. */
	if (!mode && !r.why[0]) {
		bool clean = true;

		for (i = 0; i < r.nhist; i++)
			clean = clean && !r.hist[i].unknown;
		if (clean)
			memregs_each(r.m, garbage_of, &r);
	}
	for (i = 0; !r.why[0] && i < r.nhist; i++)
		if (!r.hist[i].unknown && r.hist[i].result &&
		    !(ebit(-r.hist[i].result) & ~(1u << 31)) && r.hist[i].result != -EBUSY)
			fail(&r, "op %d failed with %d (%s)", i, r.hist[i].result,
			     strerror(-r.hist[i].result));
	if (!r.why[0]) {
		memset(&s, 0, sizeof(s));
		for (i = 0; i < r.nhist; i++) {
			if (r.hist[i].dropped)
				continue;
			if (!r.hist[i].unknown)
				s.need |= 1ull << s.n;
			s.ops[s.n++] = &r.hist[i];
		}
		s.budget = 2000000;
		memo.now++;
		memo.used = 0;
		if (!lin(&s, &m, 0))
			fail(&r, "history not linearizable (longest order: %d of %d ops)", s.best,
			     s.n);
		else if (!s.budget)
			fprintf(stderr, "nscheck: seed %llu: search budget spent, not checked\n",
				(unsigned long long)seed);
	}
	ok = !r.why[0];
	if (!ok) {
		snprintf(why, why_len, "%s", r.why);
		if (verbose)
			print_history(&r);
	}
	*checks += r.checks;
out_free:
	memregs_free(r.m);
	return ok;
}

int main(int argc, char **argv)
{
	static const char *const controls[] = {"two-round-rename", "delete-first",
					       "delete-any-nlink", "split-two-rounds",
					       "stale-map",	   "remembered-lookup"};
	uint64_t seeds = 1000, first = 1, checks = 0, s;
	const char *control = NULL;
	bool broken = false;
	int c;
	char why[512];
	int i, failed = 0;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seeds") && i + 1 < argc) {
			seeds = strtoull(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			first = strtoull(argv[++i], NULL, 10);
			seeds = 1;
		} else if (!strcmp(argv[i], "--broken") && i + 1 < argc) {
			for (c = 0; c < 6 && strcmp(argv[i + 1], controls[c]); c++)
				;
			if (c == 6) {
				fprintf(stderr, "nscheck: unknown control %s\n", argv[i + 1]);
				return 2;
			}
			control = controls[c];
			broken = true;
			casfs_ns_broken_two_round_rename = c == 0;
			casfs_ns_broken_delete = c == 1	  ? CASFS_NS_BROKEN_DELETE_FIRST
						 : c == 2 ? CASFS_NS_BROKEN_DELETE_ANY_NLINK
							  : 0;
			casfs_ns_broken_bucket = c == 3	  ? CASFS_NS_BROKEN_SPLIT_TWO_ROUNDS
						 : c == 4 ? CASFS_NS_BROKEN_STALE_MAP
							  : 0;
			broken_remembered_lookup = c == 5;
			i++;
		} else if (!strcmp(argv[i], "-v")) {
			verbose = true;
		} else {
			fprintf(stderr, "usage: nscheck [--seeds N] [--seed S] [--broken "
					"two-round-rename|delete-first|delete-any-nlink|"
					"split-two-rounds|stale-map|remembered-lookup] [-v]\n");
			return 2;
		}
	}
	for (s = first; s < first + seeds; s++) {
		if (run_seed(s, why, sizeof(why), &checks))
			continue;
		failed++;
		printf("nscheck: seed %llu: %s\n", (unsigned long long)s, why);
		if (broken || failed >= 5)
			break;
	}
	if (broken) {
		if (failed)
			printf("nscheck: control %s caught by seed %llu\n", control,
			       (unsigned long long)s);
		else
			printf("nscheck: control %s NOT caught in %llu seeds\n", control,
			       (unsigned long long)seeds);
		return failed ? 0 : 1;
	}
	printf("nscheck: %llu seeds, %llu tree checks, %d failed\n", (unsigned long long)seeds,
	       (unsigned long long)checks, failed);
	return failed ? 1 : 0;
}

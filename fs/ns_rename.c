/* ns_rename.c - rename (ns.h): within one directory one change, else one
 * transaction; a directory that changes parent goes through the
 * directory-move register and the cycle check. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ns_impl.h"

static const unsigned char root_id[CASFS_ID_LEN];

/* A rename: its arguments and the two entries as read. */
struct rn {
	struct casfs_ns *ns;
	const unsigned char *dir, *newdir;
	const char *name, *newname;
	unsigned flags;
	struct ent src, dst;
	int err;	 /* the cycle check's errno */
	uint32_t sb, db; /* the buckets that hold name and newname */
	uint32_t vb;	 /* the replaced directory's bucket that has entries, or 0 */
};

/* What the rename does, given the entries as read: 1 nothing (success), 0
 * a change, or -errno. */
static int rename_decide(const struct rn *r, bool dst_dead)
{
	bool exchange = r->flags & RENAME_EXCHANGE;

	if (!r->src.found || dst_dead)
		return -ENOENT;
	if (exchange && !r->dst.found)
		return -ENOENT;
	if ((r->flags & RENAME_NOREPLACE) && r->dst.found)
		return -EEXIST;
	if (r->src.type == CASFS_DIR && ns_id_eq(r->src.id, r->newdir))
		return -EINVAL;
	if (!r->dst.found)
		return 0;
	if (ns_id_eq(r->src.id, r->dst.id))
		return 1;
	if (ns_id_eq(r->dst.id, r->dir))
		return exchange ? -EINVAL : -ENOTEMPTY;
	if (exchange)
		return 0;
	if (r->src.type == CASFS_DIR && r->dst.type != CASFS_DIR)
		return -ENOTDIR;
	if (r->src.type != CASFS_DIR && r->dst.type == CASFS_DIR)
		return -EISDIR;
	return 0;
}

/* Walks from the directory from up to the root by parent ids: CAS_EINVAL
 * (r->err -EINVAL) when it meets moved. */
static int walk(struct rn *r, const unsigned char *from, const unsigned char *moved)
{
	unsigned char cur[CASFS_ID_LEN];
	struct casfs_record rec;
	struct cas_value v;
	char key[CASFS_KEY_LEN];
	int rc, i;

	memcpy(cur, from, CASFS_ID_LEN);
	for (i = 0; i < WALK_MAX; i++) {
		if (ns_id_eq(cur, moved)) {
			if (r->ns->verify)
				return CAS_OK;
			r->err = -EINVAL;
			return CAS_EINVAL;
		}
		if (ns_id_eq(cur, root_id)) {
			if (!r->ns->verify)
				return CAS_OK;
			r->err = -EAGAIN;
			return CAS_EINVAL;
		}
		memset(&v, 0, sizeof(v));
		casfs_record_key(cur, key);
		rc = casfs_txn_read(r->ns->regs, key, &v);
		if (rc)
			return rc;
		rc = ns_decode(r->ns, key, &v, &rec);
		cas_value_clear(&v);
		if (!rc && rec.type != CASFS_DIR)
			rc = -EIO;
		if (rc) {
			casfs_record_clear(&rec);
			r->err = rc;
			return CAS_EINVAL;
		}
		memcpy(cur, rec.parent, CASFS_ID_LEN);
		casfs_record_clear(&rec);
	}
	snprintf(r->ns->errmsg, sizeof(r->ns->errmsg), "the tree is deeper than %d or has a cycle",
		 WALK_MAX);
	r->err = -EIO;
	return CAS_EINVAL;
}

/* The directory-move check: neither moved directory ends up inside itself. */
static int cycle_check(void *arg)
{
	struct rn *r = arg;
	bool both = (r->flags & RENAME_EXCHANGE) && r->dst.type == CASFS_DIR;
	int rc = CAS_OK;

	if (r->src.type == CASFS_DIR)
		rc = walk(r, r->newdir, r->src.id);
	/* Confirming: one cycle is enough. */
	if (r->ns->verify && r->src.type == CASFS_DIR && (rc == CAS_OK || !both))
		return rc;
	if (both && (!rc || r->ns->verify))
		rc = walk(r, r->dir, r->dst.id);
	return rc;
}

/* After NS_EFULL: splits the bucket an entry function found full (the
 * first of the n args that says so), in dir; -EAGAIN to start over. */
static int split_full(struct casfs_ns *ns, const unsigned char *dir, struct entry_arg *const *a,
		      size_t n)
{
	int rc;

	for (size_t i = 0; i < n; i++)
		if (a[i]->full) {
			rc = ns_split(ns, dir, a[i]->full_bucket);
			return rc && rc != -EAGAIN ? rc : -EAGAIN;
		}
	return -EAGAIN;
}

/* Within one directory: one change, or a transaction with the replaced
 * inode. */
static int rename_local(struct rn *r)
{
	static const struct ent gone;
	bool exchange = r->flags & RENAME_EXCHANGE;
	struct inode_arg ia = {r->ns, NULL};
	struct entry_arg ea = {r->ns,	   r->name, &r->src, exchange ? &r->dst : &gone,
			       r->newname, &r->dst, &r->src, false,
			       false,	   0};
	/* The names in two buckets: one part each. */
	struct entry_arg ea1 = {r->ns, r->name, &r->src, exchange ? &r->dst : &gone,
				NULL,  NULL,	NULL,	 false,
				false, 0};
	struct entry_arg ea2 = {r->ns, r->newname, &r->dst, &r->src, NULL,
				NULL,  NULL,	   false,   false,   0};
	struct part p[3] = {{r->dir, ns_entry_fn, &ea, NULL, r->sb},
			    {r->dst.id, NULL, &ia, NULL, r->vb},
			    {r->dir, ns_entry_fn, &ea2, NULL, r->db}};
	struct cas_value out[3] = {{0}};
	size_t n = 1, victim = 1;

	int rc;

	if (r->sb != r->db) {
		p[0].arg = &ea1;
		p[1] = p[2];
		p[2] = (struct part){r->dst.id, NULL, &ia, NULL, r->vb};
		n = 2;
		victim = 2;
	}
	if (r->dst.found && !exchange) {
		p[victim].fn = r->dst.type == CASFS_DIR ? ns_kill_fn : ns_unref_fn;
		n++;
		if (casfs_ns_broken_delete == CASFS_NS_BROKEN_DELETE_FIRST)
			ns_broken_delete(r->ns, r->dst.id);
	}
	rc = ns_apply(r->ns, p, n, false, NULL, out);
	if (rc == NS_EFULL)
		rc = split_full(r->ns, r->dir, (struct entry_arg *const[]){&ea, &ea1, &ea2}, 3);
	if (!rc && n > victim)
		ns_reap(r->ns, r->dst.id, &out[victim]);
	cas_value_clear(&out[0]);
	cas_value_clear(&out[1]);
	cas_value_clear(&out[2]);
	if (rc == -ENOTEMPTY)
		rc = ns_confirm(r->ns, rc, p, n, false, NULL);
	return rc;
}

/* Test only: the old two-round move, add then remove, no cycle check. */
static int rename_two_rounds(struct rn *r)
{
	static const struct ent gone;
	struct inode_arg ia = {r->ns, r->newdir};
	struct entry_arg add = {r->ns, r->newname, &r->dst, &r->src, NULL,
				NULL,  NULL,	   true,    false,   0};
	struct entry_arg rm = {r->ns, r->name, &r->src, &gone, NULL, NULL, NULL, false, false, 0};
	struct part p;
	int rc;

	p = (struct part){r->newdir, ns_entry_fn, &add, NULL, r->db};
	rc = ns_apply(r->ns, &p, 1, false, NULL, NULL);
	if (!rc && r->src.type == CASFS_DIR) {
		p = (struct part){r->src.id, ns_reparent_fn, &ia, NULL, 0};
		rc = ns_apply(r->ns, &p, 1, false, NULL, NULL);
	}
	if (!rc) {
		p = (struct part){r->dir, ns_entry_fn, &rm, NULL, r->sb};
		rc = ns_apply(r->ns, &p, 1, false, NULL, NULL);
		if (rc == -EAGAIN)
			rc = 0; /* the name moved: the old code did nothing */
	}
	if (!rc && r->dst.found) {
		p = (struct part){r->dst.id, r->dst.type == CASFS_DIR ? ns_kill_fn : ns_unref_fn,
				  &ia, NULL, r->vb};
		rc = ns_apply(r->ns, &p, 1, false, NULL, NULL);
	}
	return rc;
}

/* Across directories: one transaction. */
static int rename_cross(struct rn *r)
{
	static const struct ent gone;
	bool exchange = r->flags & RENAME_EXCHANGE;
	struct inode_arg src_ia = {r->ns, r->newdir}, dst_ia = {r->ns, r->dir};
	struct entry_arg from = {r->ns, r->name, &r->src, exchange ? &r->dst : &gone,
				 NULL,	NULL,	 NULL,	  false,
				 false, 0};
	struct entry_arg to = {r->ns, r->newname, &r->dst, &r->src, NULL,
			       NULL,  NULL,	  true,	   false,   0};
	struct check chk = {cycle_check, r, &r->err};
	struct cas_value out[4] = {{0}};
	struct part p[4];
	bool dirmove = r->src.type == CASFS_DIR;
	size_t n = 2, victim = 0, i;
	int rc;

	if (casfs_ns_broken_two_round_rename && !exchange)
		return rename_two_rounds(r);
	p[0] = (struct part){r->dir, ns_entry_fn, &from, NULL, r->sb};
	p[1] = (struct part){r->newdir, ns_entry_fn, &to, NULL, r->db};
	if (r->src.type == CASFS_DIR)
		p[n++] = (struct part){r->src.id, ns_reparent_fn, &src_ia, NULL, 0};
	if (r->dst.found && exchange && r->dst.type == CASFS_DIR) {
		p[n++] = (struct part){r->dst.id, ns_reparent_fn, &dst_ia, NULL, 0};
		dirmove = true;
	} else if (r->dst.found && !exchange) {
		victim = n;
		p[n++] = (struct part){r->dst.id,
				       r->dst.type == CASFS_DIR ? ns_kill_fn : ns_unref_fn, &dst_ia,
				       NULL, r->vb};
		if (casfs_ns_broken_delete == CASFS_NS_BROKEN_DELETE_FIRST)
			ns_broken_delete(r->ns, r->dst.id);
	}
	rc = ns_apply(r->ns, p, n, dirmove, dirmove ? &chk : NULL, out);
	if (rc == NS_EFULL)
		rc = from.full ? split_full(r->ns, r->dir, (struct entry_arg *const[]){&from}, 1)
			       : split_full(r->ns, r->newdir, (struct entry_arg *const[]){&to}, 1);
	if (!rc && victim)
		ns_reap(r->ns, r->dst.id, &out[victim]);
	for (i = 0; i < n; i++)
		cas_value_clear(&out[i]);
	if (rc == -ENOTEMPTY || (rc == -EINVAL && dirmove))
		rc = ns_confirm(r->ns, rc, p, n, dirmove, dirmove ? &chk : NULL);
	return rc;
}

/* A directory to be replaced is merged back into one register first (or
 * found not empty: r->vb, the bucket with entries, which the change then
 * confirms). */
static int replace_prepare(struct rn *r)
{
	int rc;

	r->vb = 0;
	if (!r->dst.found || r->dst.type != CASFS_DIR || (r->flags & RENAME_EXCHANGE) ||
	    ns_id_eq(r->src.id, r->dst.id))
		return 0;
	rc = ns_collapse(r->ns, r->dst.id, &r->vb);
	return rc == -ENOTEMPTY ? 0 : rc;
}

int casfs_ns_rename(struct casfs_ns *ns, const unsigned char *dir, const char *name,
		    const unsigned char *newdir, const char *newname, unsigned flags)
{
	struct rn r = {ns, dir, newdir, name, newname, flags, {0}, {0}, 0, 0, 0, 0};
	bool cross = !ns_id_eq(dir, newdir);
	struct dirview from, to;
	int rc, i;

	if ((flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) ||
	    ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)))
		return -EINVAL;
	for (i = 0; i < NS_TRIES; i++) {
		rc = ns_read_dir(ns, dir, name, cross ? NULL : newname, &from);
		r.src = from.e;
		r.dst = from.e2;
		r.sb = from.bucket;
		r.db = from.bucket2;
		if (!rc && !r.src.found)
			rc = -ENOENT;
		if (rc) {
			cas_value_clear(&from.raw);
			return rc;
		}
		if (!cross) {
			rc = rename_decide(&r, false);
			/* Decided from two buckets' reads: as across
			 * directories below. */
			if (rc && r.sb != r.db && !ns_dir_unchanged(ns, dir, &from))
				rc = -EAGAIN;
			else if (rc)
				rc = rc > 0 ? 0 : rc;
			else if (!(rc = replace_prepare(&r)))
				rc = rename_local(&r);
			cas_value_clear(&from.raw);
		} else {
			rc = ns_read_dir(ns, newdir, newname, NULL, &to);
			cas_value_clear(&to.raw);
			r.dst = to.e;
			r.db = to.bucket;
			if (!rc) {
				rc = rename_decide(&r, to.dead);
				/* Decided from two reads: it held at the second
				 * read if the first directory did not move since. */
				if (rc && !ns_dir_unchanged(ns, dir, &from))
					rc = -EAGAIN;
				else if (rc)
					rc = rc > 0 ? 0 : rc;
				else if (!(rc = replace_prepare(&r)))
					rc = rename_cross(&r);
			}
			cas_value_clear(&from.raw);
		}
		if (rc != -EAGAIN)
			return rc;
	}
	return -EBUSY;
}

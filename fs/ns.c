/* ns.c - the namespace operations over registers (ns.h): lookups, and
 * changes of names as one change or one transaction (txn.h); rename is in
 * ns_rename.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cas/cas.h>

#include "ns_impl.h"
#include "txn.h"

bool casfs_ns_broken_two_round_rename;
unsigned casfs_ns_broken_delete;

static const unsigned char root_id[CASFS_ID_LEN];

bool ns_id_eq(const unsigned char *a, const unsigned char *b)
{
	return memcmp(a, b, CASFS_ID_LEN) == 0;
}

int ns_err_of(int rc)
{
	return -cas_errno(rc);
}

/* Decodes cur, the value of key, into rec: 0, -ENOENT for a register never
 * written, -EIO (with ns->errmsg) for bytes that are no record, -ENOMEM. */
int ns_decode(struct casfs_ns *ns, const char *key, const struct cas_value *cur,
	      struct casfs_record *rec)
{
	int rc, format;

	memset(rec, 0, sizeof(*rec));
	if (cur->version == 0)
		return -ENOENT;
	rc = casfs_record_decode(cur->data, cur->len, rec);
	if (rc != CAS_EINVAL)
		return ns_err_of(rc);
	format = casfs_record_format_of(cur->data, cur->len);
	if (format >= 0 && format != CASFS_FORMAT)
		snprintf(ns->errmsg, sizeof(ns->errmsg),
			 "register %s holds a record of format %d; this casfs reads format %d", key,
			 format, CASFS_FORMAT);
	else
		snprintf(ns->errmsg, sizeof(ns->errmsg), "register %s holds no casfs record", key);
	return -EIO;
}

struct edit {
	struct casfs_ns *ns;
	const char *key;
	uint32_t bucket;
	edit_fn fn;
	void *arg;
	int err; /* the errno of fn's last run, or 0 */
};

/* The casfs_txn_fn of an edit. */
static int edit_run(void *varg, const struct cas_value *cur, struct cas_value *next)
{
	struct edit *e = varg;
	struct casfs_record rec;
	int rc;

	e->err = 0;
	rc = ns_decode_part(e->ns, e->key, e->bucket, cur, &rec);
	if (rc == -ENOENT && e->bucket)
		rc = -EAGAIN; /* the bucket went (merged): the operation reads again */
	else if (rc == -ENOENT)
		rc = e->fn(e->arg, NULL);
	else if (!rc)
		rc = e->fn(e->arg, &rec);
	if (rc == KEEP) {
		rc = CAS_ENOCHANGE;
	} else if (!rc) {
		rc = e->bucket
			     ? casfs_bucket_encode(&rec, e->ns->max_size, &next->data, &next->len)
			     : casfs_record_encode(&rec, e->ns->max_size, &next->data, &next->len);
		if (rc == CAS_ETOOBIG)
			rc = rec.type == CASFS_DIR ? -ENOSPC : -EFBIG;
		else if (rc)
			rc = ns_err_of(rc);
	}
	if (rc < 0) {
		e->err = rc;
		rc = CAS_EINVAL;
	}
	casfs_record_clear(&rec);
	return rc;
}

/* Applies the n parts as one change (one round for one part, else one
 * transaction); out (may be NULL) as for casfs_txn_run. 0 or -errno. */
int ns_apply(struct casfs_ns *ns, const struct part *p, size_t n, bool dirmove,
	     const struct check *chk, struct cas_value *out)
{
	char keys[CASFS_TXN_MAX_PARTS][CASFS_BUCKET_KEY_LEN];
	struct casfs_txn_part tp[CASFS_TXN_MAX_PARTS];
	struct edit e[CASFS_TXN_MAX_PARTS];
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		ns_part_key(p[i].id, p[i].bucket, keys[i]);
		e[i] = (struct edit){ns, keys[i], p[i].bucket, p[i].fn, p[i].arg, 0};
		tp[i] = p[i].raw ? (struct casfs_txn_part){keys[i], p[i].raw, p[i].arg}
				 : (struct casfs_txn_part){keys[i], edit_run, &e[i]};
	}
	if (chk)
		*chk->err = 0;
	if (n == 1 && !dirmove)
		rc = casfs_txn_change(ns->regs, keys[0], tp[0].fn, tp[0].arg, out);
	else
		rc = casfs_txn_run(ns->regs, tp, n, dirmove, chk ? chk->fn : NULL,
				   chk ? chk->arg : NULL, out);
	if (rc == CAS_OK)
		return 0;
	if (rc == CAS_EINVAL) {
		if (chk && *chk->err)
			return *chk->err;
		for (i = 0; i < n; i++)
			if (e[i].err)
				return e[i].err;
	}
	return ns_err_of(rc);
}

/* An error that one part found on its register (a directory not empty)
 * or the check found (a cycle) is the operation's only if the other
 * registers still held what the operation read at that moment: parts are
 * applied in an order of the transaction's own (txn.h). So the parts run
 * again as one transaction that changes nothing, each checking what it
 * would and that the error still stands: rc when it commits, else -EAGAIN
 * (start over) or the cluster's error. */
int ns_confirm(struct casfs_ns *ns, int rc, const struct part *p, size_t n, bool dirmove,
	       const struct check *chk)
{
	int vrc;

	ns->verify = true;
	vrc = ns_apply(ns, p, n, dirmove, chk, NULL);
	ns->verify = false;
	if (!vrc)
		return rc;
	return vrc == -cas_errno(CAS_EUNAVAILABLE) ? vrc : -EAGAIN;
}

int casfs_ns_load(struct casfs_ns *ns, const unsigned char *id, struct casfs_record *rec,
		  uint64_t *version)
{
	struct cas_value v = {0};
	char key[CASFS_KEY_LEN];
	int rc;

	memset(rec, 0, sizeof(*rec));
	casfs_record_key(id, key);
	rc = casfs_txn_read(ns->regs, key, &v);
	if (rc)
		return ns_err_of(rc);
	rc = ns_decode(ns, key, &v, rec);
	if (!rc && version)
		*version = v.version;
	cas_value_clear(&v);
	return rc;
}

static void ent_of(const struct casfs_record *rec, const char *name, struct ent *e)
{
	long i = casfs_record_dir_find(rec, name, strlen(name));

	memset(e, 0, sizeof(*e));
	if (i < 0)
		return;
	e->found = true;
	e->type = rec->ents[i].type;
	memcpy(e->id, rec->ents[i].id, CASFS_ID_LEN);
}

static bool ent_eq(const struct ent *a, const struct ent *b)
{
	return a->found == b->found &&
	       (!a->found || (a->type == b->type && ns_id_eq(a->id, b->id)));
}

/* Reads dir and its entries name and name2 (may be NULL) into v (the
 * caller clears v->raw). */
int ns_read_dir(struct casfs_ns *ns, const unsigned char *dir, const char *name, const char *name2,
		struct dirview *v)
{
	struct casfs_record rec, rec2;
	struct cas_value raw2 = {0};
	int rc;

	memset(v, 0, sizeof(*v));
	rc = ns_find_bucket(ns, dir, casfs_name_hash(name, strlen(name)), &v->raw, &rec);
	if (rc)
		return rc;
	/* Only the inode's register says a directory is removed; a removed
	 * directory has no other bucket (FORMAT.md "Directories"). */
	v->dead = rec.bucket == 0 && rec.nlink == 0;
	v->bucket = v->bucket2 = rec.bucket;
	ent_of(&rec, name, &v->e);
	if (name2 && ns_covers(&rec, name2)) {
		ent_of(&rec, name2, &v->e2);
	} else if (name2) {
		rc = ns_find_bucket(ns, dir, casfs_name_hash(name2, strlen(name2)), &raw2, &rec2);
		if (!rc) {
			v->bucket2 = rec2.bucket;
			ent_of(&rec2, name2, &v->e2);
			casfs_record_clear(&rec2);
			cas_value_clear(&raw2);
		}
	}
	casfs_record_clear(&rec);
	return rc;
}

/* True when dir still holds what v read: then everything decided from v
 * and reads made after it held at once. */
bool ns_dir_unchanged(struct casfs_ns *ns, const unsigned char *dir, const struct dirview *v)
{
	struct cas_value now = {0};
	char key[CASFS_BUCKET_KEY_LEN];
	bool same;

	ns_part_key(dir, v->bucket, key);
	if (casfs_txn_read(ns->regs, key, &now))
		return false;
	same = now.version == v->raw.version && now.len == v->raw.len &&
	       (!now.len || !memcmp(now.data, v->raw.data, now.len));
	cas_value_clear(&now);
	return same;
}

int casfs_ns_lookup(struct casfs_ns *ns, const unsigned char *dir, const char *name, uint8_t *type,
		    unsigned char *id)
{
	struct dirview v;
	int rc;

	rc = ns_read_dir(ns, dir, name, NULL, &v);
	cas_value_clear(&v.raw);
	if (rc)
		return rc;
	if (!v.e.found)
		return -ENOENT;
	*type = v.e.type;
	memcpy(id, v.e.id, CASFS_ID_LEN);
	return 0;
}

static void touch(struct casfs_ns *ns, struct casfs_record *rec)
{
	rec->mtime = ns->now;
	rec->ctime = ns->now;
}

/* Adding an entry. */
struct add_arg {
	struct casfs_ns *ns;
	const char *name;
	uint8_t type;
	const unsigned char *id;
	struct ent found; /* when the name is taken */
	uint32_t full;	  /* NS_EFULL: the bucket to split */
};

static int add_fn(void *varg, struct casfs_record *rec)
{
	struct add_arg *a = varg;
	size_t len = strlen(a->name);

	if (!rec || (rec->type == CASFS_DIR && rec->nlink == 0))
		return -ENOENT;
	if (rec->type != CASFS_DIR)
		return -ENOTDIR;
	if (!ns_covers(rec, a->name))
		return -EAGAIN;
	ent_of(rec, a->name, &a->found);
	if (a->found.found)
		return -EEXIST;
	if (casfs_record_entries_size(rec) + 2 + len + CASFS_ID_LEN >
		    (a->ns->bucket_max ? a->ns->bucket_max : CASFS_NS_BUCKET_BYTES) &&
	    rec->depth < CASFS_DEPTH_MAX) {
		a->full = rec->bucket;
		return NS_EFULL;
	}
	if (casfs_record_dir_add(rec, a->name, len, a->type, a->id))
		return -ENOMEM;
	touch(a->ns, rec);
	return 0;
}

/* Tries of an add: each split, or each bucket found moved, is one. */
#define ADD_TRIES (2 * CASFS_DEPTH_MAX + 8)

/* Adds a's entry to dir, in one change with the part other (may be NULL):
 * in the bucket the hint points at, else in the one a read finds; a full
 * bucket is split first. out as for ns_apply. */
static int add_entry(struct casfs_ns *ns, const unsigned char *dir, struct add_arg *a,
		     const struct part *other, struct cas_value *out)
{
	uint64_t h = casfs_name_hash(a->name, strlen(a->name));
	uint32_t b = ns_bucket_of(h, ns_hint(ns, dir, h));
	struct casfs_record rec;
	struct cas_value raw;
	struct part p[2];
	int rc, i;

	for (i = 0; i < ADD_TRIES; i++) {
		p[0] = (struct part){dir, add_fn, a, NULL, b};
		if (other)
			p[1] = *other;
		rc = ns_apply(ns, p, other ? 2 : 1, false, NULL, out);
		if (rc == NS_EFULL) {
			rc = ns_split(ns, dir, a->full);
			if (rc && rc != -EAGAIN)
				return rc;
		} else if (rc != -EAGAIN) {
			return rc;
		}
		/* The hint was wrong, or the bucket moved: read where the
		 * name goes now. */
		rc = ns_find_bucket(ns, dir, h, &raw, &rec);
		if (rc)
			return rc;
		b = rec.bucket;
		casfs_record_clear(&rec);
		cas_value_clear(&raw);
	}
	return -EBUSY;
}

/* Writing a fresh register. */
struct store_arg {
	const unsigned char *buf;
	size_t len;
};

static int store_fn(void *varg, const struct cas_value *cur, struct cas_value *next)
{
	struct store_arg *a = varg;

	if (cur->version)
		return CAS_EVERSION;
	next->data = malloc(a->len);
	if (!next->data)
		return CAS_ENOMEM;
	memcpy(next->data, a->buf, a->len);
	next->len = a->len;
	return CAS_OK;
}

/* A fresh inode's register, still at its first version, deleted. */
static int fresh_fn(void *varg, const struct cas_value *cur, struct cas_value *next)
{
	(void)varg;
	(void)next;
	return cur->version == 1 ? CAS_OK : CAS_ENOCHANGE;
}

static int delete_fresh(struct casfs_ns *ns, const unsigned char *id)
{
	char key[CASFS_KEY_LEN];

	casfs_record_key(id, key);
	return ns_err_of(casfs_txn_delete(ns->regs, key, fresh_fn, NULL, NULL));
}

int casfs_ns_create(struct casfs_ns *ns, const unsigned char *dir, const char *name,
		    struct casfs_record *rec, unsigned char *id, uint8_t *found_type,
		    unsigned char *found_id)
{
	struct add_arg a = {ns, name, rec->type, id, {0}, 0};
	struct store_arg s;
	struct part fresh = {id, NULL, &s, store_fn, 0};
	char key[CASFS_KEY_LEN];
	unsigned char *buf;
	int rc;

	do {
		rc = ns->regs->ops->random(ns->regs->arg, id, CASFS_ID_LEN);
		if (rc)
			return ns_err_of(rc);
	} while (ns_id_eq(id, root_id));
	rec->nlink = 1;
	if (rec->type == CASFS_DIR)
		memcpy(rec->parent, dir, CASFS_ID_LEN);
	rc = casfs_record_encode(rec, ns->max_size, &buf, &s.len);
	if (rc)
		return rc == CAS_ETOOBIG ? -EFBIG : ns_err_of(rc);
	s.buf = buf;
	/* Two single changes, not a transaction: the inode first (its
	 * register's first version), then its entry. A crash between them
	 * leaves an inode that no name reaches, garbage that nothing can
	 * link to (a link needs a name); never an entry naming a register
	 * that does not exist. So a create costs two rounds, and a new file
	 * is at version 1 as before transactions. */
	rc = ns_apply(ns, &fresh, 1, false, NULL, NULL);
	if (!rc) {
		rc = add_entry(ns, dir, &a, NULL, NULL);
		/* No entry was added (the name is taken, the directory
		 * went...): nothing names the new inode, nor ever will, as no
		 * one else learned its id. Delete it; after an unknown
		 * outcome it may be named, and is left to casctl gc. */
		if (rc && rc != -cas_errno(CAS_EUNAVAILABLE))
			(void)delete_fresh(ns, id);
	}
	free(buf);
	if (rc == -cas_errno(CAS_EVERSION)) {
		casfs_record_key(id, key);
		snprintf(ns->errmsg, sizeof(ns->errmsg), "fresh inode id %s already in use", key);
		return -EIO;
	}
	if (rc == -EEXIST) {
		if (found_type)
			*found_type = a.found.type;
		if (found_id)
			memcpy(found_id, a.found.id, CASFS_ID_LEN);
	}
	return rc;
}

static int set_entry(struct casfs_record *rec, const char *name, const struct ent *set)
{
	long i = casfs_record_dir_find(rec, name, strlen(name));

	if (i >= 0 && !set->found) {
		casfs_record_dir_remove(rec, (size_t)i);
	} else if (i >= 0) {
		rec->ents[i].type = set->type;
		memcpy(rec->ents[i].id, set->id, CASFS_ID_LEN);
	} else if (set->found &&
		   casfs_record_dir_add(rec, name, strlen(name), set->type, set->id)) {
		return -ENOMEM;
	}
	return 0;
}

int ns_entry_fn(void *varg, struct casfs_record *rec)
{
	struct entry_arg *a = varg;
	struct ent now;
	size_t added;
	int rc;

	if (!rec || (a->dst && rec->type == CASFS_DIR && rec->nlink == 0))
		return a->dst && !a->ns->verify ? -ENOENT : -EAGAIN;
	if (rec->type != CASFS_DIR)
		return a->ns->verify ? -EAGAIN : -ENOTDIR;
	/* The bucket must still hold the names: a split or merge since the
	 * read moved them. */
	if (!ns_covers(rec, a->name) || (a->name2 && !ns_covers(rec, a->name2)))
		return -EAGAIN;
	ent_of(rec, a->name, &now);
	if (!ent_eq(&now, a->e))
		return -EAGAIN;
	if (a->name2) {
		ent_of(rec, a->name2, &now);
		if (!ent_eq(&now, a->e2))
			return -EAGAIN;
	}
	if (a->ns->verify)
		return KEEP;
	/* A name added to a full bucket: split it first, as a create does. */
	added = casfs_record_entries_size(rec);
	if (a->set->found && !a->e->found)
		added += 2 + strlen(a->name) + CASFS_ID_LEN;
	if (a->name2 && a->set2->found && !a->e2->found)
		added += 2 + strlen(a->name2) + CASFS_ID_LEN;
	if (added > casfs_record_entries_size(rec) &&
	    added > (a->ns->bucket_max ? a->ns->bucket_max : CASFS_NS_BUCKET_BYTES) &&
	    rec->depth < CASFS_DEPTH_MAX) {
		a->full = true;
		a->full_bucket = rec->bucket;
		return NS_EFULL;
	}
	/* Remove before adding: a rename in one directory removes one name
	 * and adds the other. */
	if (a->name2 && !a->set2->found) {
		rc = set_entry(rec, a->name2, a->set2);
		if (!rc)
			rc = set_entry(rec, a->name, a->set);
	} else {
		rc = set_entry(rec, a->name, a->set);
		if (!rc && a->name2)
			rc = set_entry(rec, a->name2, a->set2);
	}
	if (rc)
		return rc;
	touch(a->ns, rec);
	return 0;
}

/* One name fewer: nlink - 1 (a register never written: nothing). */
int ns_unref_fn(void *varg, struct casfs_record *rec)
{
	struct inode_arg *a = varg;

	if (!rec || a->ns->verify)
		return KEEP;
	if (rec->nlink)
		rec->nlink--;
	rec->ctime = a->ns->now;
	return 0;
}

/* A directory's last name goes: it must be empty, and takes no new entries
 * from now on (nlink 0). */
int ns_kill_fn(void *varg, struct casfs_record *rec)
{
	struct inode_arg *a = varg;

	if (!rec)
		return KEEP;
	if (rec->type != CASFS_DIR)
		return -EAGAIN;
	if (a->ns->verify)
		return rec->nent ? KEEP : -EAGAIN;
	if (rec->nent)
		return -ENOTEMPTY;
	/* Split: the other buckets may hold entries; the caller collapses
	 * the directory (or finds the bucket with entries) first. */
	if (rec->bucket || rec->depth)
		return -EAGAIN;
	rec->nlink = 0;
	rec->ctime = a->ns->now;
	return 0;
}

/* One name more. */
static int ref_fn(void *varg, struct casfs_record *rec)
{
	struct inode_arg *a = varg;

	if (!rec || rec->nlink == 0)
		return -ENOENT;
	if (rec->type == CASFS_DIR)
		return -EPERM;
	if (rec->nlink == UINT32_MAX)
		return -EMLINK;
	rec->nlink++;
	rec->ctime = a->ns->now;
	return 0;
}

/* A directory moved to another parent. */
int ns_reparent_fn(void *varg, struct casfs_record *rec)
{
	struct inode_arg *a = varg;

	if (!rec || rec->type != CASFS_DIR)
		return -EAGAIN;
	if (a->ns->verify)
		return KEEP;
	memcpy(rec->parent, a->parent, CASFS_ID_LEN);
	rec->ctime = a->ns->now;
	return 0;
}

/* Deleting an inode's register (casfs_ns_delete). */
struct del_arg {
	struct casfs_ns *ns;
	const char *key;
	bool any; /* test only: whatever its nlink */
	int err;
};

static int del_fn(void *varg, const struct cas_value *cur, struct cas_value *next)
{
	struct del_arg *a = varg;
	struct casfs_record rec;
	int rc;

	(void)next;
	a->err = 0;
	if (a->any)
		return CAS_OK;
	rc = ns_decode(a->ns, a->key, cur, &rec);
	if (rc == -ENOENT)
		return CAS_ENOCHANGE;
	if (!rc && rec.nlink)
		rc = -EEXIST;
	casfs_record_clear(&rec);
	if (rc) {
		a->err = rc;
		return CAS_EINVAL;
	}
	return CAS_OK;
}

static int delete_inode(struct casfs_ns *ns, const unsigned char *id, bool any)
{
	char key[CASFS_KEY_LEN];
	struct del_arg a = {ns, key, any, 0};
	int rc;

	casfs_record_key(id, key);
	rc = casfs_txn_delete(ns->regs, key, del_fn, &a, NULL);
	if (rc == CAS_EINVAL && a.err)
		return a.err;
	return ns_err_of(rc);
}

int casfs_ns_delete(struct casfs_ns *ns, const unsigned char *id)
{
	if (ns_id_eq(id, root_id))
		return -EEXIST;
	return delete_inode(ns, id, false);
}

void ns_broken_delete(struct casfs_ns *ns, const unsigned char *id)
{
	(void)delete_inode(ns, id, true);
}

void ns_reap(struct casfs_ns *ns, const unsigned char *id, const struct cas_value *after)
{
	struct casfs_record rec;
	char key[CASFS_KEY_LEN];
	bool gone;

	if (casfs_ns_broken_delete == CASFS_NS_BROKEN_DELETE_ANY_NLINK) {
		ns_broken_delete(ns, id);
		return;
	}
	if (after->version == 0)
		return; /* absent: deleted already */
	casfs_record_key(id, key);
	if (ns_decode(ns, key, after, &rec))
		return;
	gone = rec.nlink == 0;
	casfs_record_clear(&rec);
	/* Deleted after its last name went (the transaction committed), so
	 * no entry names an absent register; the delete checks nlink 0
	 * again, on the register's committed value (FORMAT.md, "Deletion"). */
	if (gone && !(ns->held && ns->held(ns->held_arg, id)))
		(void)casfs_ns_delete(ns, id);
}

/* unlink (want_dir false) and rmdir. */
static int remove_name(struct casfs_ns *ns, const unsigned char *dir, const char *name,
		       bool want_dir)
{
	struct inode_arg ia = {ns, NULL};
	struct entry_arg ea = {ns, name, NULL, NULL, NULL, NULL, NULL, false, false, 0};
	static const struct ent gone;
	struct cas_value out[2] = {{0}};
	struct part p[2];
	struct dirview v;
	struct ent e;
	uint32_t full = 0;
	int rc, i;

	ea.set = &gone;
	ea.e = &e;
	for (i = 0; i < NS_TRIES; i++) {
		rc = ns_read_dir(ns, dir, name, NULL, &v);
		cas_value_clear(&v.raw);
		if (rc)
			return rc;
		if (!v.e.found)
			return -ENOENT;
		e = v.e;
		if (want_dir && e.type != CASFS_DIR)
			return -ENOTDIR;
		if (!want_dir && e.type == CASFS_DIR)
			return -EISDIR;
		/* A split directory is merged back first; one whose bucket
		 * has entries is not empty, which the change confirms. */
		full = 0;
		if (want_dir) {
			rc = ns_collapse(ns, e.id, &full);
			if (rc && rc != -ENOTEMPTY)
				return rc;
		}
		p[0] = (struct part){dir, ns_entry_fn, &ea, NULL, v.bucket};
		p[1] = (struct part){e.id, want_dir ? ns_kill_fn : ns_unref_fn, &ia, NULL, full};
		if (casfs_ns_broken_delete == CASFS_NS_BROKEN_DELETE_FIRST)
			ns_broken_delete(ns, e.id);
		rc = ns_apply(ns, p, 2, false, NULL, out);
		if (!rc)
			ns_reap(ns, e.id, &out[1]);
		cas_value_clear(&out[0]);
		cas_value_clear(&out[1]);
		if (rc == -ENOTEMPTY)
			rc = ns_confirm(ns, rc, p, 2, false, NULL);
		if (rc != -EAGAIN)
			return rc;
	}
	return -EBUSY;
}

int casfs_ns_unlink(struct casfs_ns *ns, const unsigned char *dir, const char *name)
{
	return remove_name(ns, dir, name, false);
}

int casfs_ns_rmdir(struct casfs_ns *ns, const unsigned char *dir, const char *name)
{
	return remove_name(ns, dir, name, true);
}

int casfs_ns_link(struct casfs_ns *ns, const unsigned char *id, const unsigned char *newdir,
		  const char *newname, struct casfs_record *after)
{
	struct casfs_record rec;
	struct inode_arg ia = {ns, NULL};
	struct add_arg a = {ns, newname, 0, id, {0}, 0};
	struct cas_value out[2] = {{0}};
	struct part p[2];
	char key[CASFS_KEY_LEN];
	int rc;

	if (after)
		memset(after, 0, sizeof(*after));
	rc = casfs_ns_load(ns, id, &rec, NULL);
	if (rc)
		return rc;
	a.type = rec.type;
	casfs_record_clear(&rec);
	if (a.type == CASFS_DIR)
		return -EPERM;
	p[1] = (struct part){id, ref_fn, &ia, NULL, 0};
	rc = add_entry(ns, newdir, &a, &p[1], after ? out : NULL);
	if (!rc && after) {
		casfs_record_key(id, key);
		rc = ns_decode(ns, key, &out[1], after);
	}
	cas_value_clear(&out[0]);
	cas_value_clear(&out[1]);
	return rc;
}

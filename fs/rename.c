/* rename.c - rename within and across directories, RENAME_NOREPLACE and
 * RENAME_EXCHANGE (fs/FORMAT.md, "How operations change registers"). */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include <cas/os.h>

#include "fs.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

/* How often rename starts over when its destination changed under it. */
#define RENAME_TRIES 4

struct rename_arg {
	const char *name, *newname;
	unsigned flags;
	size_t max;
	/* The destination directory emptied and killed beforehand, if any. */
	bool dst_killed;
	unsigned char dst_id[CASFS_ID_LEN];
	/* Across directories: the entry being moved. */
	uint8_t type;
	unsigned char id[CASFS_ID_LEN];
};

/* May the entry (stype, sid) replace the entry d of rec? 0, CASFS_KEEP (same
 * inode: nothing to do), or -errno. */
static int may_replace(const struct rename_arg *a, const struct casfs_record *rec, long d,
		       uint8_t stype, const unsigned char *sid)
{
	const struct casfs_dirent *e = &rec->ents[d];

	if (a->flags & RENAME_NOREPLACE)
		return -EEXIST;
	if (!memcmp(e->id, sid, CASFS_ID_LEN))
		return CASFS_KEEP;
	if (stype == CASFS_DIR && e->type != CASFS_DIR)
		return -ENOTDIR;
	if (stype != CASFS_DIR && e->type == CASFS_DIR)
		return -EISDIR;
	/* A directory is replaced only once it was found empty and killed. */
	if (e->type == CASFS_DIR && !(a->dst_killed && !memcmp(e->id, a->dst_id, CASFS_ID_LEN)))
		return -EAGAIN;
	return 0;
}

static void touch_dir(struct casfs_record *rec)
{
	cas_os_realtime(&rec->mtime);
	rec->ctime = rec->mtime;
}

/* Within one directory: one change, so atomic. */
static int rename_edit(void *varg, struct casfs_record *rec, uint64_t version)
{
	struct rename_arg *a = varg;
	struct casfs_dirent tmp;
	long s, d;
	int rc;

	(void)version;
	if (rec->type != CASFS_DIR)
		return -ENOTDIR;
	s = casfs_record_dir_find(rec, a->name, strlen(a->name));
	if (s < 0)
		return -ENOENT;
	d = casfs_record_dir_find(rec, a->newname, strlen(a->newname));
	if (a->flags & RENAME_EXCHANGE) {
		if (d < 0)
			return -ENOENT;
		tmp = rec->ents[s];
		rec->ents[s].type = rec->ents[d].type;
		memcpy(rec->ents[s].id, rec->ents[d].id, CASFS_ID_LEN);
		rec->ents[d].type = tmp.type;
		memcpy(rec->ents[d].id, tmp.id, CASFS_ID_LEN);
		touch_dir(rec);
		return 0;
	}
	if (d >= 0) {
		rc = may_replace(a, rec, d, rec->ents[s].type, rec->ents[s].id);
		if (rc)
			return rc;
		rec->ents[d].type = rec->ents[s].type;
		memcpy(rec->ents[d].id, rec->ents[s].id, CASFS_ID_LEN);
		casfs_record_dir_remove(rec, (size_t)s);
	} else {
		uint8_t type = rec->ents[s].type;
		unsigned char id[CASFS_ID_LEN];

		memcpy(id, rec->ents[s].id, CASFS_ID_LEN);
		casfs_record_dir_remove(rec, (size_t)s);
		rc = casfs_record_dir_add(rec, a->newname, strlen(a->newname), type, id);
		if (rc)
			return casfs_err_of(rc);
		if (casfs_record_size(rec) > a->max)
			return -ENOSPC;
	}
	touch_dir(rec);
	return 0;
}

/* Across directories, first step: the entry appears in the new one. */
static int move_in_edit(void *varg, struct casfs_record *rec, uint64_t version)
{
	struct rename_arg *a = varg;
	long d;
	int rc;

	(void)version;
	if (rec->type != CASFS_DIR)
		return -ENOTDIR;
	if (rec->flags & CASFS_F_DEAD)
		return -ENOENT;
	d = casfs_record_dir_find(rec, a->newname, strlen(a->newname));
	if (d >= 0) {
		rc = may_replace(a, rec, d, a->type, a->id);
		if (rc)
			return rc;
		rec->ents[d].type = a->type;
		memcpy(rec->ents[d].id, a->id, CASFS_ID_LEN);
	} else {
		rc = casfs_record_dir_add(rec, a->newname, strlen(a->newname), a->type, a->id);
		if (rc)
			return casfs_err_of(rc);
		if (casfs_record_size(rec) > a->max)
			return -ENOSPC;
	}
	touch_dir(rec);
	return 0;
}

/* One attempt at a rename; -EAGAIN when the destination changed under it. */
static int rename_once(struct op *op, const unsigned char *pid, const unsigned char *npid,
		       struct rename_arg *a)
{
	struct remove_arg ra = {a->name, false, a->id};
	struct kill_arg ka = {false, false};
	unsigned char did[CASFS_ID_LEN];
	uint8_t dtype;
	bool cross = memcmp(pid, npid, CASFS_ID_LEN) != 0;
	int rc, rc2;

	a->dst_killed = false;
	rc = casfs_find_entry(op, pid, a->name, &a->type, a->id);
	if (rc)
		return rc;
	rc = casfs_find_entry(op, npid, a->newname, &dtype, did);
	if (rc && rc != -ENOENT)
		return rc;
	if (!rc && dtype == CASFS_DIR && a->type == CASFS_DIR &&
	    !(a->flags & (RENAME_NOREPLACE | RENAME_EXCHANGE)) &&
	    memcmp(did, a->id, CASFS_ID_LEN)) {
		/* Replacing a directory: it must be empty and stay so. */
		rc = casfs_edit(op, did, casfs_kill_edit, &ka, NULL, NULL);
		if (rc)
			return rc;
		a->dst_killed = true;
		memcpy(a->dst_id, did, CASFS_ID_LEN);
	}
	if (!cross) {
		rc = casfs_edit(op, pid, rename_edit, a, NULL, NULL);
	} else {
		rc = casfs_edit(op, npid, move_in_edit, a, NULL, NULL);
		/* The entry is now in both directories; a crash here leaves it
		 * so (fs/FORMAT.md), never in neither. */
		if (!rc)
			rc = casfs_edit(op, pid, casfs_remove_edit, &ra, NULL, NULL);
	}
	if (rc && ka.changed) {
		struct kill_arg revive = {true, false};

		rc2 = casfs_edit(op, did, casfs_kill_edit, &revive, NULL, NULL);
		if (rc2)
			fuse_log(FUSE_LOG_ERR, "casfs: rename left directory %s dead: %s\n",
				 a->newname, strerror(-rc2));
	}
	return rc;
}

void casfs_fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		     const char *newname, unsigned int flags)
{
	unsigned char pid[CASFS_ID_LEN], npid[CASFS_ID_LEN];
	struct rename_arg a;
	struct op op;
	int rc, i;

	casfs_op_start(&op, req);
	memset(&a, 0, sizeof(a));
	a.name = name;
	a.newname = newname;
	a.flags = flags;
	a.max = op.fs->max_size;
	rc = strlen(name) > CASFS_NAME_MAX ? -ENAMETOOLONG : casfs_check_name(newname);
	if (!rc && ((flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) ||
		    (flags & RENAME_NOREPLACE && flags & RENAME_EXCHANGE)))
		rc = -EINVAL;
	if (!rc)
		rc = casfs_node_id(&op, parent, pid);
	if (!rc)
		rc = casfs_node_id(&op, newparent, npid);
	/* An exchange across directories would take two rounds that cannot
	 * be made atomic. */
	if (!rc && (flags & RENAME_EXCHANGE) && memcmp(pid, npid, CASFS_ID_LEN))
		rc = -EINVAL;
	for (i = 0; !rc && i < RENAME_TRIES; i++) {
		rc = rename_once(&op, pid, npid, &a);
		if (rc != -EAGAIN)
			break;
		rc = 0;
	}
	if (!rc && i == RENAME_TRIES)
		rc = -EBUSY;
	fuse_reply_err(req, -rc);
}

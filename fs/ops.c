/* ops.c - the casfs filesystem: FUSE low-level operations over registers. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>

#include <cas/bytes.h>

#include "inode.h"
#include "ops.h"
#include "record.h"
#include "xattr.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

/* Kernel cache lifetime of names and attributes with -o cache, seconds. */
#define CACHE_TIMEOUT 1.0
/* How often rename starts over when its destination changed under it. */
#define RENAME_TRIES 4
/* An edit function's "leave the register as it is". */
#define KEEP 1
/* Stripes of the per-key locks (a power of two). */
#define KEY_LOCKS 256
/* Remembered lookups that timed out, and for how long (see fs_lookup). */
#define FAILED_LOOKUPS 16
#define RELOOKUP_MS 100

/* A lookup that failed because the cluster did not answer in time. */
struct failed_lookup {
	uint64_t parent;
	uint64_t name_hash;
	pid_t pid;
	struct timespec at;	/* CLOCK_MONOTONIC */
};

struct casfs_fs {
	struct cas_client *client;
	struct casfs_inodes *inodes;
	unsigned timeout_ms;
	bool cache;
	size_t max_size;
	/* One round at a time per register from this mount: concurrent
	 * rounds of one proposer on one key only reject each other's ballots
	 * (every lookup reads its directory), and under load they back off
	 * until the deadline. Each round holds one stripe, never two. */
	pthread_mutex_t key_locks[KEY_LOCKS];
	pthread_mutex_t failed_lock;
	struct failed_lookup failed[FAILED_LOOKUPS];
};

/* An open file. lock serialises the handle's writes, flushes and
 * truncation. */
struct handle {
	pthread_mutex_t lock;
	unsigned char id[CASFS_ID_LEN];
	bool append;		/* O_APPEND: write at the register's end */
	bool pending_trunc;	/* O_TRUNC not committed yet */
	unsigned flushes;
};

/* An open directory: the entries read at offset 0, so that later offsets
 * stay meaningful. */
struct dirhandle {
	pthread_mutex_t lock;
	unsigned char id[CASFS_ID_LEN];
	bool loaded;
	struct casfs_record rec;
};

/* One request: the filesystem and the request's deadline. */
struct op {
	struct casfs_fs *fs;
	struct timespec end;
};

static const unsigned char root_id[CASFS_ID_LEN];

/* The one place where a client code becomes an errno for FUSE: 0 or a
 * negative errno. */
static int err_of(int rc)
{
	return -cas_errno(rc);
}

static void op_start(struct op *op, fuse_req_t req)
{
	op->fs = fuse_req_userdata(req);
	clock_gettime(CLOCK_MONOTONIC, &op->end);
	op->end.tv_sec += op->fs->timeout_ms / 1000;
	op->end.tv_nsec += (long)(op->fs->timeout_ms % 1000) * 1000000L;
	if (op->end.tv_nsec >= 1000000000L) {
		op->end.tv_sec++;
		op->end.tv_nsec -= 1000000000L;
	}
}

/* Milliseconds left before the request's deadline, rounded up; 0 once it
 * has passed. */
static unsigned op_left(const struct op *op)
{
	struct timespec now;
	int64_t ns;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ns = (int64_t)(op->end.tv_sec - now.tv_sec) * 1000000000 + (op->end.tv_nsec - now.tv_nsec);
	if (ns <= 0)
		return 0;
	return (unsigned)((ns + 999999) / 1000000);
}

static pthread_mutex_t *key_lock(struct casfs_fs *fs, const unsigned char *id)
{
	uint64_t h = cas_fnv1a(CAS_FNV1A_INIT, id, CASFS_ID_LEN);

	return &fs->key_locks[h & (KEY_LOCKS - 1)];
}

/* Takes id's stripe before the request's deadline; 0 or -ETIMEDOUT (as
 * for an unavailable cluster). */
static int lock_key(struct op *op, const unsigned char *id)
{
	if (pthread_mutex_clocklock(key_lock(op->fs, id), CLOCK_MONOTONIC, &op->end))
		return err_of(CAS_EUNAVAILABLE);
	return 0;
}

static void unlock_key(struct op *op, const unsigned char *id)
{
	pthread_mutex_unlock(key_lock(op->fs, id));
}

static void now_real(struct timespec *t)
{
	clock_gettime(CLOCK_REALTIME, t);
}

static int node_id(struct op *op, fuse_ino_t ino, unsigned char *id)
{
	return casfs_inodes_get(op->fs->inodes, ino, id) ? 0 : -ESTALE;
}

/* A fresh random inode id, never the root's. */
static int new_id(unsigned char *id)
{
	do {
		if (getrandom(id, CASFS_ID_LEN, 0) != CASFS_ID_LEN)
			return -EIO;
	} while (casfs_inodes_is_root(id));
	return 0;
}

/* Reads the record of id linearizably into rec (the caller clears it);
 * *version (may be NULL) gets the register's version. 0 or -errno; rec
 * owns nothing on error. */
static int load(struct op *op, const unsigned char *id, struct casfs_record *rec,
		uint64_t *version)
{
	struct cas_value v = { 0 };
	char key[CASFS_KEY_LEN];
	unsigned left;
	int rc;

	memset(rec, 0, sizeof(*rec));
	rc = lock_key(op, id);
	if (rc)
		return rc;
	left = op_left(op);
	casfs_inodes_key(id, key);
	rc = left ? cas_read(op->fs->client, key, left, &v) : CAS_EUNAVAILABLE;
	unlock_key(op, id);
	if (rc)
		return err_of(rc);
	if (v.version == 0) {
		cas_value_clear(&v);
		return -ENOENT;
	}
	rc = casfs_record_decode(v.data, v.len, rec);
	if (rc == CAS_EINVAL) {
		fuse_log(FUSE_LOG_ERR, "casfs: register %s holds no casfs record\n", key);
		rc = CAS_EIO;
	}
	if (version)
		*version = v.version;
	cas_value_clear(&v);
	return err_of(rc);
}

/* An edit: changes a decoded record in place. Returns 0 to write it back,
 * KEEP to leave the register unchanged, or a negative errno to fail. May
 * run several times in one operation, each time on a fresh record. */
typedef int (*edit_fn)(void *arg, struct casfs_record *rec, uint64_t version);

struct edit {
	struct casfs_fs *fs;
	edit_fn fn;
	void *arg;
	int err;	/* the negative errno of fn's last run, or 0 */
};

static int edit_change(void *varg, const struct cas_value *cur, struct cas_value *next)
{
	struct edit *e = varg;
	struct casfs_record rec;
	int rc;

	e->err = 0;
	if (cur->version == 0) {
		e->err = -ENOENT;
		return CAS_EINVAL;
	}
	rc = casfs_record_decode(cur->data, cur->len, &rec);
	if (rc)
		return rc == CAS_EINVAL ? CAS_EIO : rc;
	rc = e->fn(e->arg, &rec, cur->version);
	if (rc < 0) {
		e->err = rc;
		rc = CAS_EINVAL;
	} else if (rc == KEEP) {
		rc = CAS_ENOCHANGE;
	} else {
		rc = casfs_record_encode(&rec, e->fs->max_size, &next->data, &next->len);
	}
	casfs_record_clear(&rec);
	return rc;
}

/* Applies fn to id's record in one change round. after (may be NULL)
 * receives the record as the round left it, *version (may be NULL) its
 * version. 0 or -errno; after owns nothing on error. */
static int edit(struct op *op, const unsigned char *id, edit_fn fn, void *arg,
		struct casfs_record *after, uint64_t *version)
{
	struct edit e = { op->fs, fn, arg, 0 };
	struct cas_value out = { 0 };
	char key[CASFS_KEY_LEN];
	unsigned left;
	int rc;

	if (after)
		memset(after, 0, sizeof(*after));
	rc = lock_key(op, id);
	if (rc)
		return rc;
	left = op_left(op);
	casfs_inodes_key(id, key);
	rc = left ? cas_change(op->fs->client, key, edit_change, &e, left, &out) :
		    CAS_EUNAVAILABLE;
	unlock_key(op, id);
	if (rc == CAS_EINVAL && e.err)
		rc = e.err;
	else
		rc = err_of(rc);
	if (!rc && version)
		*version = out.version;
	if (!rc && after) {
		rc = casfs_record_decode(out.data, out.len, after);
		rc = err_of(rc == CAS_EINVAL ? CAS_EIO : rc);
	}
	cas_value_clear(&out);
	return rc;
}

/* The file type bits of a record or entry type. */
static mode_t type_mode(uint8_t type)
{
	return type == CASFS_DIR ? S_IFDIR : type == CASFS_LNK ? S_IFLNK : S_IFREG;
}

static void fill_stat(const struct casfs_record *rec, const unsigned char *id, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = casfs_inodes_ino(id);
	switch (rec->type) {
	case CASFS_DIR:
		st->st_mode = S_IFDIR;
		st->st_nlink = 2 + casfs_record_dir_subdirs(rec);
		st->st_size = (off_t)casfs_record_size(rec);
		break;
	case CASFS_LNK:
		st->st_mode = S_IFLNK;
		st->st_nlink = 1;
		st->st_size = (off_t)rec->len;
		break;
	default:
		st->st_mode = S_IFREG;
		st->st_nlink = 1;
		st->st_size = (off_t)rec->len;
		break;
	}
	st->st_mode |= rec->mode;
	st->st_uid = rec->uid;
	st->st_gid = rec->gid;
	st->st_blksize = 4096;
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_atim = rec->atime;
	st->st_mtim = rec->mtime;
	st->st_ctim = rec->ctime;
}

static double cache_timeout(const struct casfs_fs *fs)
{
	return fs->cache ? CACHE_TIMEOUT : 0.0;
}

static void set_open_flags(const struct casfs_fs *fs, struct fuse_file_info *fi)
{
	fi->direct_io = !fs->cache;
	fi->keep_cache = 0;
}

static int handle_new(const unsigned char *id, int flags, struct handle **out)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	if (pthread_mutex_init(&h->lock, NULL)) {
		free(h);
		return -ENOMEM;
	}
	memcpy(h->id, id, CASFS_ID_LEN);
	h->append = flags & O_APPEND;
	h->pending_trunc = flags & O_TRUNC;
	*out = h;
	return 0;
}

static void handle_free(struct handle *h)
{
	pthread_mutex_destroy(&h->lock);
	free(h);
}

/* Replies to a lookup-like request with id's entry, taking a lookup
 * reference, or with a create reply opening h when fi is not NULL (h then
 * belongs to the kernel, or is freed when the reply fails). */
/* Answers an entry with attr, which the mount remembers as what it last
 * reported for id. */
static void reply_entry_attr(fuse_req_t req, struct op *op, const unsigned char *id,
			     const struct stat *attr, struct fuse_file_info *fi, struct handle *h)
{
	struct fuse_entry_param e;
	uint64_t nodeid;

	if (casfs_inodes_ref(op->fs->inodes, id, &nodeid)) {
		if (h)
			handle_free(h);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	casfs_inodes_set_attr(op->fs->inodes, id, attr);
	memset(&e, 0, sizeof(e));
	e.ino = nodeid;
	e.attr = *attr;
	e.attr_timeout = cache_timeout(op->fs);
	e.entry_timeout = cache_timeout(op->fs);
	if (fi) {
		fi->fh = (uintptr_t)h;
		set_open_flags(op->fs, fi);
		if (fuse_reply_create(req, &e, fi)) {
			casfs_inodes_forget(op->fs->inodes, nodeid, 1);
			handle_free(h);
		}
	} else if (fuse_reply_entry(req, &e)) {
		casfs_inodes_forget(op->fs->inodes, nodeid, 1);
	}
}

static void reply_entry(fuse_req_t req, struct op *op, const unsigned char *id,
			const struct casfs_record *rec, struct fuse_file_info *fi, struct handle *h)
{
	struct stat st;

	fill_stat(rec, id, &st);
	reply_entry_attr(req, op, id, &st, fi, h);
}

/* Answers a getattr or setattr with st, remembered for later lookups. */
static void reply_attr(fuse_req_t req, struct op *op, const unsigned char *id,
		       const struct stat *st)
{
	casfs_inodes_set_attr(op->fs->inodes, id, st);
	fuse_reply_attr(req, st, cache_timeout(op->fs));
}

static int check_name(const char *name)
{
	size_t len = strlen(name);

	if (len > CASFS_NAME_MAX)
		return -ENAMETOOLONG;
	if (!casfs_record_name_valid(name, len))
		return -EINVAL;
	return 0;
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* open(O_TRUNC) arrives as one OPEN, not OPEN plus SETATTR: the
	 * truncation then waits for the first write (no empty state). */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
}

static uint64_t hash_name(const char *name)
{
	return cas_fnv1a(CAS_FNV1A_INIT, name, strlen(name));
}

/* The kernel follows a failed revalidation of a cached name (a LOOKUP)
 * with a fresh LOOKUP of the same name. When the first failed for want of
 * a majority, the second fails at once, so that the system call still
 * ends within one deadline instead of two. True when this lookup is such
 * a repeat (and forgets the failure). */
static bool repeats_failed_lookup(struct casfs_fs *fs, fuse_req_t req, fuse_ino_t parent,
				  const char *name)
{
	pid_t pid = fuse_req_ctx(req)->pid;
	struct failed_lookup *f = &fs->failed[(unsigned)pid % FAILED_LOOKUPS];
	struct timespec now;
	bool repeat;
	int64_t ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&fs->failed_lock);
	ms = (int64_t)(now.tv_sec - f->at.tv_sec) * 1000 + (now.tv_nsec - f->at.tv_nsec) / 1000000;
	repeat = f->pid == pid && f->parent == parent && f->name_hash == hash_name(name) &&
		 ms >= 0 && ms < RELOOKUP_MS;
	if (repeat)
		f->pid = 0;
	pthread_mutex_unlock(&fs->failed_lock);
	return repeat;
}

static void note_failed_lookup(struct casfs_fs *fs, fuse_req_t req, fuse_ino_t parent,
			       const char *name)
{
	pid_t pid = fuse_req_ctx(req)->pid;
	struct failed_lookup *f = &fs->failed[(unsigned)pid % FAILED_LOOKUPS];

	pthread_mutex_lock(&fs->failed_lock);
	f->parent = parent;
	f->name_hash = hash_name(name);
	f->pid = pid;
	clock_gettime(CLOCK_MONOTONIC, &f->at);
	pthread_mutex_unlock(&fs->failed_lock);
}

static int find_entry(struct op *op, const unsigned char *dir, const char *name, uint8_t *type,
		      unsigned char *id);

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct casfs_record crec;
	unsigned char pid[CASFS_ID_LEN], cid[CASFS_ID_LEN];
	struct op op;
	struct stat st;
	uint8_t type;
	int rc;

	op_start(&op, req);
	if (strlen(name) > CASFS_NAME_MAX) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (repeats_failed_lookup(op.fs, req, parent, name)) {
		fuse_reply_err(req, -err_of(CAS_EUNAVAILABLE));
		return;
	}
	rc = node_id(&op, parent, pid);
	if (!rc)
		rc = find_entry(&op, pid, name, &type, cid);
	if (rc)
		goto out_reply_err;
	/* The name is read fresh; for an inode this mount reported before,
	 * its attributes are what it reported last: they expire at once
	 * (attribute timeout 0 unless -o cache), so the kernel asks for
	 * fresh ones (getattr) before it relies on them, and a lookup costs
	 * one round instead of two. */
	if (!op.fs->cache && casfs_inodes_get_attr(op.fs->inodes, cid, &st) &&
	    (st.st_mode & S_IFMT) == type_mode(type)) {
		reply_entry_attr(req, &op, cid, &st, NULL, NULL);
		return;
	}
	rc = load(&op, cid, &crec, NULL);
	if (rc == -ENOENT)
		fuse_log(FUSE_LOG_ERR, "casfs: entry %s points to a missing register\n", name);
	if (rc)
		goto out_reply_err;
	reply_entry(req, &op, cid, &crec, NULL, NULL);
	casfs_record_clear(&crec);
	return;

out_reply_err:
	if (rc == err_of(CAS_EUNAVAILABLE))
		note_failed_lookup(op.fs, req, parent, name);
	if (rc == -ENOENT && op.fs->cache) {
		struct fuse_entry_param e;

		/* A negative entry the kernel may keep for a while. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = CACHE_TIMEOUT;
		fuse_reply_entry(req, &e);
		return;
	}
	fuse_reply_err(req, -rc);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct casfs_fs *fs = fuse_req_userdata(req);

	casfs_inodes_forget(fs->inodes, ino, nlookup);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct casfs_fs *fs = fuse_req_userdata(req);
	size_t i;

	for (i = 0; i < count; i++)
		casfs_inodes_forget(fs->inodes, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	unsigned char id[CASFS_ID_LEN];
	struct casfs_record rec;
	struct stat st;
	struct op op;
	int rc;

	(void)fi;
	op_start(&op, req);
	rc = node_id(&op, ino, id);
	if (!rc)
		rc = load(&op, id, &rec, NULL);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fill_stat(&rec, id, &st);
	casfs_record_clear(&rec);
	reply_attr(req, &op, id, &st);
}

struct setattr_arg {
	const struct stat *attr;
	int to_set;
	size_t max;
};

static int setattr_edit(void *varg, struct casfs_record *rec, uint64_t version)
{
	struct setattr_arg *a = varg;
	struct timespec now;
	int rc;

	(void)version;
	now_real(&now);
	if (a->to_set & FUSE_SET_ATTR_MODE)
		rec->mode = a->attr->st_mode & 07777;
	if (a->to_set & FUSE_SET_ATTR_UID)
		rec->uid = a->attr->st_uid;
	if (a->to_set & FUSE_SET_ATTR_GID)
		rec->gid = a->attr->st_gid;
	if (a->to_set & FUSE_SET_ATTR_SIZE) {
		if (rec->type == CASFS_DIR)
			return -EISDIR;
		if (rec->type != CASFS_REG)
			return -EINVAL;
		if (a->attr->st_size < 0)
			return -EINVAL;
		rc = casfs_record_truncate(rec, (uint64_t)a->attr->st_size, a->max);
		if (rc)
			return err_of(rc);
		rec->mtime = now;
	}
	if (a->to_set & FUSE_SET_ATTR_ATIME_NOW)
		rec->atime = now;
	else if (a->to_set & FUSE_SET_ATTR_ATIME)
		rec->atime = a->attr->st_atim;
	if (a->to_set & FUSE_SET_ATTR_MTIME_NOW)
		rec->mtime = now;
	else if (a->to_set & FUSE_SET_ATTR_MTIME)
		rec->mtime = a->attr->st_mtim;
	rec->ctime = now;
	return 0;
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct setattr_arg a = { attr, to_set, 0 };
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	unsigned char id[CASFS_ID_LEN];
	struct casfs_record rec;
	struct stat st;
	struct op op;
	int rc;

	op_start(&op, req);
	a.max = op.fs->max_size;
	rc = node_id(&op, ino, id);
	if (rc)
		goto out_reply_err;
	if (h && (to_set & FUSE_SET_ATTR_SIZE)) {
		/* ftruncate on a handle supersedes its pending O_TRUNC. */
		pthread_mutex_lock(&h->lock);
		rc = edit(&op, id, setattr_edit, &a, &rec, NULL);
		if (!rc)
			h->pending_trunc = false;
		pthread_mutex_unlock(&h->lock);
	} else {
		rc = edit(&op, id, setattr_edit, &a, &rec, NULL);
	}
	if (rc)
		goto out_reply_err;
	fill_stat(&rec, id, &st);
	casfs_record_clear(&rec);
	reply_attr(req, &op, id, &st);
	return;

out_reply_err:
	fuse_reply_err(req, -rc);
}

static void fs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	unsigned char id[CASFS_ID_LEN];
	struct casfs_record rec;
	struct op op;
	char *target;
	int rc;

	op_start(&op, req);
	rc = node_id(&op, ino, id);
	if (!rc)
		rc = load(&op, id, &rec, NULL);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (rec.type != CASFS_LNK) {
		casfs_record_clear(&rec);
		fuse_reply_err(req, EINVAL);
		return;
	}
	target = malloc(rec.len + 1);
	if (!target) {
		casfs_record_clear(&rec);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(target, rec.data, rec.len);
	target[rec.len] = '\0';
	casfs_record_clear(&rec);
	fuse_reply_readlink(req, target);
	free(target);
}

/* Adding an entry to a directory. */
struct add_arg {
	const char *name;
	uint8_t type;
	const unsigned char *id;
	size_t max;
	/* When the name is taken: what it names. */
	uint8_t found_type;
	unsigned char found_id[CASFS_ID_LEN];
};

static int add_edit(void *varg, struct casfs_record *rec, uint64_t version)
{
	struct add_arg *a = varg;
	size_t len = strlen(a->name);
	long i;
	int rc;

	(void)version;
	if (rec->type != CASFS_DIR)
		return -ENOTDIR;
	if (rec->flags & CASFS_F_DEAD)
		return -ENOENT;
	i = casfs_record_dir_find(rec, a->name, len);
	if (i >= 0) {
		a->found_type = rec->ents[i].type;
		memcpy(a->found_id, rec->ents[i].id, CASFS_ID_LEN);
		return -EEXIST;
	}
	rc = casfs_record_dir_add(rec, a->name, len, a->type, a->id);
	if (rc)
		return err_of(rc);
	if (casfs_record_size(rec) > a->max)
		return -ENOSPC;
	now_real(&rec->mtime);
	rec->ctime = rec->mtime;
	return 0;
}

/* Opens the regular file that won a create race against us. */
static void open_existing(fuse_req_t req, struct op *op, const unsigned char *id,
			  struct fuse_file_info *fi)
{
	struct casfs_record rec;
	struct handle *h;
	int rc;

	rc = load(op, id, &rec, NULL);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	rc = handle_new(id, fi->flags, &h);
	if (rc) {
		casfs_record_clear(&rec);
		fuse_reply_err(req, -rc);
		return;
	}
	reply_entry(req, op, id, &rec, fi, h);
	casfs_record_clear(&rec);
}

/* Creates rec as a new inode named name in parent: writes its register
 * first, then adds the entry, so that a crash in between leaves an orphan
 * register and never a dangling entry. fi: a create (open the result). */
static void make_node(fuse_req_t req, struct op *op, fuse_ino_t parent, const char *name,
		      struct casfs_record *rec, struct fuse_file_info *fi)
{
	unsigned char pid[CASFS_ID_LEN], id[CASFS_ID_LEN];
	struct add_arg a = { name, rec->type, id, op->fs->max_size, 0, { 0 } };
	char key[CASFS_KEY_LEN];
	struct handle *h = NULL;
	unsigned char *buf;
	unsigned left;
	size_t len;
	int rc;

	rc = check_name(name);
	if (!rc)
		rc = node_id(op, parent, pid);
	if (!rc)
		rc = new_id(id);
	if (rc)
		goto out_reply_err;
	rc = err_of(casfs_record_encode(rec, op->fs->max_size, &buf, &len));
	if (rc)
		goto out_reply_err;
	left = op_left(op);
	casfs_inodes_key(id, key);
	rc = left ? cas_cas(op->fs->client, key, 0, buf, len, left, NULL) : CAS_EUNAVAILABLE;
	free(buf);
	if (rc == CAS_EVERSION) {
		fuse_log(FUSE_LOG_ERR, "casfs: fresh inode id %s already in use\n", key);
		rc = CAS_EIO;
	}
	rc = err_of(rc);
	if (rc)
		goto out_reply_err;
	rc = edit(op, pid, add_edit, &a, NULL, NULL);
	if (rc == -EEXIST && fi && !(fi->flags & O_EXCL)) {
		/* Lost a create race: open what won it, as open(2) would. */
		if (a.found_type == CASFS_REG) {
			open_existing(req, op, a.found_id, fi);
			return;
		}
		if (a.found_type == CASFS_DIR)
			rc = -EISDIR;
	}
	if (rc)
		goto out_reply_err;
	if (fi) {
		rc = handle_new(id, fi->flags & ~O_TRUNC, &h);
		if (rc)
			goto out_reply_err;
	}
	reply_entry(req, op, id, rec, fi, h);
	return;

out_reply_err:
	fuse_reply_err(req, -rc);
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct casfs_record rec;
	struct timespec now;
	struct op op;

	(void)rdev;
	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	op_start(&op, req);
	now_real(&now);
	casfs_record_init(&rec, CASFS_REG, mode, ctx->uid, ctx->gid, &now);
	make_node(req, &op, parent, name, &rec, NULL);
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct casfs_record rec;
	struct timespec now;
	struct op op;

	op_start(&op, req);
	now_real(&now);
	casfs_record_init(&rec, CASFS_REG, mode, ctx->uid, ctx->gid, &now);
	make_node(req, &op, parent, name, &rec, fi);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct casfs_record rec;
	struct timespec now;
	struct op op;

	op_start(&op, req);
	now_real(&now);
	casfs_record_init(&rec, CASFS_DIR, mode, ctx->uid, ctx->gid, &now);
	make_node(req, &op, parent, name, &rec, NULL);
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct casfs_record rec;
	struct timespec now;
	size_t len = strlen(link);
	struct op op;

	if (len == 0 || len > CASFS_SYMLINK_MAX) {
		fuse_reply_err(req, len ? ENAMETOOLONG : ENOENT);
		return;
	}
	op_start(&op, req);
	now_real(&now);
	casfs_record_init(&rec, CASFS_LNK, 0777, ctx->uid, ctx->gid, &now);
	rec.data = (unsigned char *)link;	/* borrowed: not cleared */
	rec.len = len;
	make_node(req, &op, parent, name, &rec, NULL);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	/* No hard links: an inode has exactly one entry (fs/FORMAT.md). */
	fuse_reply_err(req, EPERM);
}

/* Removing an entry from a directory. */
struct remove_arg {
	const char *name;
	bool want_dir;			/* rmdir (ENOTDIR) or unlink (EISDIR) */
	const unsigned char *only_id;	/* remove only if it still names this */
};

static int remove_edit(void *varg, struct casfs_record *rec, uint64_t version)
{
	struct remove_arg *a = varg;
	long i;

	(void)version;
	if (rec->type != CASFS_DIR)
		return -ENOTDIR;
	i = casfs_record_dir_find(rec, a->name, strlen(a->name));
	if (a->only_id) {
		if (i < 0 || memcmp(rec->ents[i].id, a->only_id, CASFS_ID_LEN))
			return KEEP;
	} else {
		if (i < 0)
			return -ENOENT;
		if (!a->want_dir && rec->ents[i].type == CASFS_DIR)
			return -EISDIR;
		if (a->want_dir && rec->ents[i].type != CASFS_DIR)
			return -ENOTDIR;
	}
	casfs_record_dir_remove(rec, (size_t)i);
	now_real(&rec->mtime);
	rec->ctime = rec->mtime;
	return 0;
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct remove_arg a = { name, false, NULL };
	unsigned char pid[CASFS_ID_LEN];
	struct op op;
	int rc;

	op_start(&op, req);
	rc = strlen(name) > CASFS_NAME_MAX ? -ENAMETOOLONG : node_id(&op, parent, pid);
	if (!rc)
		rc = edit(&op, pid, remove_edit, &a, NULL, NULL);
	fuse_reply_err(req, -rc);
}

/* Marking an empty directory dead (it then takes no new entries), or
 * bringing it back. */
struct kill_arg {
	bool revive;
	bool changed;	/* this run set the flag */
};

static int kill_edit(void *varg, struct casfs_record *rec, uint64_t version)
{
	struct kill_arg *a = varg;

	(void)version;
	a->changed = false;
	if (rec->type != CASFS_DIR)
		return -ENOTDIR;
	if (a->revive) {
		if (!(rec->flags & CASFS_F_DEAD))
			return KEEP;
		rec->flags &= (uint16_t)~CASFS_F_DEAD;
		return 0;
	}
	if (rec->nent)
		return -ENOTEMPTY;
	if (rec->flags & CASFS_F_DEAD)
		return KEEP;
	rec->flags |= CASFS_F_DEAD;
	now_real(&rec->ctime);
	a->changed = true;
	return 0;
}

/* Looks name up in the directory id: its type and id. 0 or -errno. */
static int find_entry(struct op *op, const unsigned char *dir, const char *name, uint8_t *type,
		      unsigned char *id)
{
	struct casfs_record rec;
	long i;
	int rc;

	rc = load(op, dir, &rec, NULL);
	if (rc)
		return rc;
	rc = -ENOTDIR;
	if (rec.type != CASFS_DIR)
		goto out_clear;
	rc = -ENOENT;
	i = casfs_record_dir_find(&rec, name, strlen(name));
	if (i < 0)
		goto out_clear;
	*type = rec.ents[i].type;
	memcpy(id, rec.ents[i].id, CASFS_ID_LEN);
	rc = 0;
out_clear:
	casfs_record_clear(&rec);
	return rc;
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	unsigned char pid[CASFS_ID_LEN], cid[CASFS_ID_LEN];
	struct remove_arg ra = { name, true, cid };
	struct kill_arg ka = { false, false };
	struct op op;
	uint8_t type;
	int rc;

	op_start(&op, req);
	rc = strlen(name) > CASFS_NAME_MAX ? -ENAMETOOLONG : node_id(&op, parent, pid);
	if (!rc)
		rc = find_entry(&op, pid, name, &type, cid);
	if (!rc && type != CASFS_DIR)
		rc = -ENOTDIR;
	/* First the directory refuses new entries (if it is empty), then its
	 * entry goes: no entry can be added to it once it is unreachable. */
	if (!rc)
		rc = edit(&op, cid, kill_edit, &ka, NULL, NULL);
	if (!rc)
		rc = edit(&op, pid, remove_edit, &ra, NULL, NULL);
	fuse_reply_err(req, -rc);
}

/* Renames. */
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

/* May the entry (stype, sid) replace the entry d of rec? 0, KEEP (same
 * inode: nothing to do), or -errno. */
static int may_replace(const struct rename_arg *a, const struct casfs_record *rec, long d,
		       uint8_t stype, const unsigned char *sid)
{
	const struct casfs_dirent *e = &rec->ents[d];

	if (a->flags & RENAME_NOREPLACE)
		return -EEXIST;
	if (!memcmp(e->id, sid, CASFS_ID_LEN))
		return KEEP;
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
	now_real(&rec->mtime);
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
			return err_of(rc);
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
			return err_of(rc);
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
	struct remove_arg ra = { a->name, false, a->id };
	struct kill_arg ka = { false, false };
	unsigned char did[CASFS_ID_LEN];
	uint8_t dtype;
	bool cross = memcmp(pid, npid, CASFS_ID_LEN) != 0;
	int rc, rc2;

	a->dst_killed = false;
	rc = find_entry(op, pid, a->name, &a->type, a->id);
	if (rc)
		return rc;
	rc = find_entry(op, npid, a->newname, &dtype, did);
	if (rc && rc != -ENOENT)
		return rc;
	if (!rc && dtype == CASFS_DIR && a->type == CASFS_DIR &&
	    !(a->flags & (RENAME_NOREPLACE | RENAME_EXCHANGE)) &&
	    memcmp(did, a->id, CASFS_ID_LEN)) {
		/* Replacing a directory: it must be empty and stay so. */
		rc = edit(op, did, kill_edit, &ka, NULL, NULL);
		if (rc)
			return rc;
		a->dst_killed = true;
		memcpy(a->dst_id, did, CASFS_ID_LEN);
	}
	if (!cross) {
		rc = edit(op, pid, rename_edit, a, NULL, NULL);
	} else {
		rc = edit(op, npid, move_in_edit, a, NULL, NULL);
		/* The entry is now in both directories; a crash here leaves it
		 * so (fs/FORMAT.md), never in neither. */
		if (!rc)
			rc = edit(op, pid, remove_edit, &ra, NULL, NULL);
	}
	if (rc && ka.changed) {
		struct kill_arg revive = { true, false };

		rc2 = edit(op, did, kill_edit, &revive, NULL, NULL);
		if (rc2)
			fuse_log(FUSE_LOG_ERR, "casfs: rename left directory %s dead: %s\n",
				 a->newname, strerror(-rc2));
	}
	return rc;
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	unsigned char pid[CASFS_ID_LEN], npid[CASFS_ID_LEN];
	struct rename_arg a;
	struct op op;
	int rc, i;

	op_start(&op, req);
	memset(&a, 0, sizeof(a));
	a.name = name;
	a.newname = newname;
	a.flags = flags;
	a.max = op.fs->max_size;
	rc = strlen(name) > CASFS_NAME_MAX ? -ENAMETOOLONG : check_name(newname);
	if (!rc && ((flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) ||
		    (flags & RENAME_NOREPLACE && flags & RENAME_EXCHANGE)))
		rc = -EINVAL;
	if (!rc)
		rc = node_id(&op, parent, pid);
	if (!rc)
		rc = node_id(&op, newparent, npid);
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

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	unsigned char id[CASFS_ID_LEN];
	struct handle *h;
	struct op op;
	int rc;

	op_start(&op, req);
	rc = node_id(&op, ino, id);
	if (!rc)
		rc = handle_new(id, fi->flags, &h);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)h;
	set_open_flags(op.fs, fi);
	if (fuse_reply_open(req, fi))
		handle_free(h);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct casfs_record rec;
	struct op op;
	bool empty;
	int rc;

	(void)ino;
	op_start(&op, req);
	pthread_mutex_lock(&h->lock);
	empty = h->pending_trunc;
	pthread_mutex_unlock(&h->lock);
	if (empty) {
		/* The handle's own O_TRUNC, not committed yet. */
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	rc = load(&op, h->id, &rec, NULL);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (rec.type != CASFS_REG)
		fuse_reply_err(req, EISDIR);
	else if (off < 0 || (uint64_t)off >= rec.len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, (const char *)rec.data + off,
			       rec.len - (size_t)off < size ? rec.len - (size_t)off : size);
	casfs_record_clear(&rec);
}

struct write_arg {
	const void *buf;
	size_t size;
	uint64_t off;
	bool append;
	bool trunc;
	size_t max;
};

static int write_edit(void *varg, struct casfs_record *rec, uint64_t version)
{
	struct write_arg *a = varg;
	uint64_t off = a->off;
	int rc;

	(void)version;
	if (rec->type != CASFS_REG)
		return -EISDIR;
	if (a->trunc)
		casfs_record_truncate(rec, 0, a->max);
	if (a->append)
		off = rec->len;
	rc = casfs_record_write(rec, off, a->buf, a->size, a->max);
	if (rc)
		return err_of(rc);
	now_real(&rec->mtime);
	rec->ctime = rec->mtime;
	return 0;
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct write_arg a = { buf, size, (uint64_t)off, false, false, 0 };
	struct op op;
	int rc;

	(void)ino;
	op_start(&op, req);
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	a.max = op.fs->max_size;
	pthread_mutex_lock(&h->lock);
	a.append = h->append;
	a.trunc = h->pending_trunc;
	rc = edit(&op, h->id, write_edit, &a, NULL, NULL);
	/* The truncation rides on the first write, whatever became of it: a
	 * lone truncation committed at close after a failed write could erase
	 * what others wrote meanwhile. */
	h->pending_trunc = false;
	pthread_mutex_unlock(&h->lock);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, size);
}

static int trunc_edit(void *varg, struct casfs_record *rec, uint64_t version)
{
	(void)varg;
	(void)version;
	if (rec->type != CASFS_REG)
		return -EISDIR;
	casfs_record_truncate(rec, 0, 0);
	now_real(&rec->mtime);
	rec->ctime = rec->mtime;
	return 0;
}

/* Commits h's pending O_TRUNC, if any. Call with h->lock held. */
static int commit_trunc(struct op *op, struct handle *h)
{
	int rc;

	if (!h->pending_trunc)
		return 0;
	rc = edit(op, h->id, trunc_edit, NULL, NULL, NULL);
	if (!rc)
		h->pending_trunc = false;
	return rc;
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct op op;
	int rc = 0;

	(void)ino;
	op_start(&op, req);
	pthread_mutex_lock(&h->lock);
	/* Writes are committed when they return: a flush has nothing to do,
	 * except a truncation still pending at a second flush (": > f" in a
	 * shell: OPEN, FLUSH, FLUSH, RELEASE). The first flush never commits
	 * it: in "echo x > f" it comes before the write. */
	if (++h->flushes > 1)
		rc = commit_trunc(&op, h);
	pthread_mutex_unlock(&h->lock);
	fuse_reply_err(req, -rc);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct op op;
	int rc;

	(void)ino;
	op_start(&op, req);
	pthread_mutex_lock(&h->lock);
	rc = commit_trunc(&op, h);
	pthread_mutex_unlock(&h->lock);
	if (rc)
		fuse_log(FUSE_LOG_ERR, "casfs: truncation at close failed: %s\n", strerror(-rc));
	handle_free(h);
	fuse_reply_err(req, 0);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct op op;
	int rc;

	(void)ino;
	(void)datasync;
	op_start(&op, req);
	/* Every committed write is already on a majority of acceptors. */
	pthread_mutex_lock(&h->lock);
	rc = commit_trunc(&op, h);
	pthread_mutex_unlock(&h->lock);
	fuse_reply_err(req, -rc);
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirhandle *d;
	struct op op;
	int rc;

	op_start(&op, req);
	d = calloc(1, sizeof(*d));
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = node_id(&op, ino, d->id);
	if (!rc && pthread_mutex_init(&d->lock, NULL))
		rc = -ENOMEM;
	if (rc) {
		free(d);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi)) {
		pthread_mutex_destroy(&d->lock);
		free(d);
	}
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct dirhandle *d = (struct dirhandle *)(uintptr_t)fi->fh;
	size_t pos = 0, i;
	struct op op;
	char *buf;
	int rc;

	(void)ino;
	op_start(&op, req);
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&d->lock);
	if (off == 0 || !d->loaded) {
		casfs_record_clear(&d->rec);
		d->loaded = false;
		rc = load(&op, d->id, &d->rec, NULL);
		if (!rc && d->rec.type != CASFS_DIR) {
			casfs_record_clear(&d->rec);
			rc = -ENOTDIR;
		}
		if (rc) {
			pthread_mutex_unlock(&d->lock);
			free(buf);
			fuse_reply_err(req, -rc);
			return;
		}
		d->loaded = true;
	}
	for (i = off < 0 ? 0 : (size_t)off; i < d->rec.nent + 2; i++) {
		const char *name;
		struct stat st;
		size_t n;

		memset(&st, 0, sizeof(st));
		if (i < 2) {
			name = i == 0 ? "." : "..";
			st.st_ino = i == 0 ? casfs_inodes_ino(d->id) : 1;
			st.st_mode = S_IFDIR;
		} else {
			const struct casfs_dirent *e = &d->rec.ents[i - 2];

			name = e->name;
			st.st_ino = casfs_inodes_ino(e->id);
			st.st_mode = e->type == CASFS_DIR ? S_IFDIR :
				     e->type == CASFS_LNK ? S_IFLNK : S_IFREG;
		}
		n = fuse_add_direntry(req, buf + pos, size - pos, name, &st, (off_t)(i + 1));
		if (n > size - pos)
			break;
		pos += n;
	}
	pthread_mutex_unlock(&d->lock);
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dirhandle *d = (struct dirhandle *)(uintptr_t)fi->fh;

	(void)ino;
	casfs_record_clear(&d->rec);
	pthread_mutex_destroy(&d->lock);
	free(d);
	fuse_reply_err(req, 0);
}

static void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	(void)ino;
	/* The cluster has no fixed capacity to report: big round numbers. */
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = 1ULL << 28;
	sv.f_bfree = 1ULL << 28;
	sv.f_bavail = 1ULL << 28;
	sv.f_files = 1ULL << 32;
	sv.f_ffree = 1ULL << 32;
	sv.f_favail = 1ULL << 32;
	sv.f_namemax = CASFS_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

/* Extended attributes. */

struct xset_arg {
	const char *name;
	const void *value;
	size_t size;
	int flags;
	uint64_t expected;	/* CASFS_XA_CAS */
	bool cas;
	size_t max;
};

static int xset_edit(void *varg, struct casfs_record *rec, uint64_t version)
{
	struct xset_arg *a = varg;
	bool exists;
	int rc;

	if (a->cas) {
		if (version != a->expected)
			return err_of(CAS_EVERSION);
		if (rec->type == CASFS_DIR)
			return -EISDIR;
		if (rec->type != CASFS_REG)
			return -EINVAL;
		rc = casfs_record_set_data(rec, a->value, a->size, a->max);
		if (rc)
			return err_of(rc);
		now_real(&rec->mtime);
		rec->ctime = rec->mtime;
		return 0;
	}
	exists = casfs_record_xattr_find(rec, a->name) != NULL;
	if ((a->flags & XATTR_CREATE) && exists)
		return -EEXIST;
	if ((a->flags & XATTR_REPLACE) && !exists)
		return -ENODATA;
	rc = casfs_record_xattr_set(rec, a->name, a->value, a->size);
	if (rc)
		return rc == CAS_EINVAL ? -E2BIG : err_of(rc);
	now_real(&rec->ctime);
	return 0;
}

static void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct xset_arg a = { name, value, size, flags, 0, false, 0 };
	unsigned char id[CASFS_ID_LEN];
	struct op op;
	int rc;

	op_start(&op, req);
	a.max = op.fs->max_size;
	switch (casfs_xattr_parse(name, &a.expected)) {
	case CASFS_XA_USER:
		break;
	case CASFS_XA_CAS:
		a.cas = true;
		break;
	case CASFS_XA_VERSION:
	case CASFS_XA_KEY:
		fuse_reply_err(req, EPERM);
		return;
	case CASFS_XA_RESERVED:
		fuse_reply_err(req, EINVAL);
		return;
	default:
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (!a.cas && strlen(name) > CASFS_NAME_MAX) {
		fuse_reply_err(req, ERANGE);
		return;
	}
	rc = node_id(&op, ino, id);
	if (!rc)
		rc = edit(&op, id, xset_edit, &a, NULL, NULL);
	fuse_reply_err(req, -rc);
}

/* Replies to a getxattr or listxattr with len bytes of val, or their
 * length when the caller asked for it (size 0). */
static void reply_xattr_value(fuse_req_t req, size_t size, const void *val, size_t len)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, len);
}

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	unsigned char id[CASFS_ID_LEN];
	struct casfs_record rec;
	const struct casfs_xattr *x;
	char text[CASFS_KEY_LEN + 24];
	enum casfs_xattr_kind kind;
	uint64_t version;
	struct op op;
	int rc;

	kind = casfs_xattr_parse(name, NULL);
	/* security.capability comes with every write: no round for it. */
	if (kind == CASFS_XA_OTHER || kind == CASFS_XA_RESERVED || kind == CASFS_XA_CAS) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	op_start(&op, req);
	rc = node_id(&op, ino, id);
	if (rc)
		goto out_reply_err;
	if (kind == CASFS_XA_KEY) {
		casfs_inodes_key(id, text);
		reply_xattr_value(req, size, text, strlen(text));
		return;
	}
	rc = load(&op, id, &rec, &version);
	if (rc)
		goto out_reply_err;
	if (kind == CASFS_XA_VERSION) {
		snprintf(text, sizeof(text), "%" PRIu64, version);
		reply_xattr_value(req, size, text, strlen(text));
	} else if ((x = casfs_record_xattr_find(&rec, name))) {
		reply_xattr_value(req, size, x->value, x->len);
	} else {
		fuse_reply_err(req, ENODATA);
	}
	casfs_record_clear(&rec);
	return;

out_reply_err:
	fuse_reply_err(req, -rc);
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	unsigned char id[CASFS_ID_LEN];
	struct casfs_record rec;
	size_t len = 0, i;
	struct op op;
	char *buf, *p;
	int rc;

	op_start(&op, req);
	rc = node_id(&op, ino, id);
	if (!rc)
		rc = load(&op, id, &rec, NULL);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	for (i = 0; i < rec.nxattr; i++)
		len += strlen(rec.xattrs[i].name) + 1;
	buf = malloc(len ? len : 1);
	if (!buf) {
		casfs_record_clear(&rec);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (p = buf, i = 0; i < rec.nxattr; i++) {
		size_t n = strlen(rec.xattrs[i].name) + 1;

		memcpy(p, rec.xattrs[i].name, n);
		p += n;
	}
	casfs_record_clear(&rec);
	reply_xattr_value(req, size, buf, len);
	free(buf);
}

static int xremove_edit(void *varg, struct casfs_record *rec, uint64_t version)
{
	(void)version;
	if (!casfs_record_xattr_remove(rec, varg))
		return -ENODATA;
	now_real(&rec->ctime);
	return 0;
}

static void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	unsigned char id[CASFS_ID_LEN];
	struct op op;
	int rc;

	switch (casfs_xattr_parse(name, NULL)) {
	case CASFS_XA_USER:
		break;
	case CASFS_XA_VERSION:
	case CASFS_XA_KEY:
	case CASFS_XA_CAS:
		fuse_reply_err(req, EPERM);
		return;
	default:
		fuse_reply_err(req, ENODATA);
		return;
	}
	op_start(&op, req);
	rc = node_id(&op, ino, id);
	if (!rc)
		rc = edit(&op, id, xremove_edit, (void *)name, NULL, NULL);
	fuse_reply_err(req, -rc);
}

const struct fuse_lowlevel_ops casfs_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.readlink = fs_readlink,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.open = fs_open,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.release = fs_release,
	.fsync = fs_fsync,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
	.fsyncdir = fs_fsyncdir,
	.statfs = fs_statfs,
	.setxattr = fs_setxattr,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.removexattr = fs_removexattr,
	.create = fs_create,
};

int casfs_fs_new(struct cas_client *c, const struct casfs_options *o, struct casfs_fs **out)
{
	struct casfs_fs *fs = calloc(1, sizeof(*fs));
	size_t i;

	if (!fs)
		return CAS_ENOMEM;
	fs->inodes = casfs_inodes_new();
	if (!fs->inodes) {
		free(fs);
		return CAS_ENOMEM;
	}
	for (i = 0; i < KEY_LOCKS; i++)
		pthread_mutex_init(&fs->key_locks[i], NULL);
	pthread_mutex_init(&fs->failed_lock, NULL);
	fs->client = c;
	fs->timeout_ms = o->timeout_ms;
	fs->cache = o->cache;
	fs->max_size = o->max_size;
	*out = fs;
	return CAS_OK;
}

void casfs_fs_free(struct casfs_fs *fs)
{
	size_t i;

	if (!fs)
		return;
	for (i = 0; i < KEY_LOCKS; i++)
		pthread_mutex_destroy(&fs->key_locks[i]);
	pthread_mutex_destroy(&fs->failed_lock);
	casfs_inodes_free(fs->inodes);
	free(fs);
}

int casfs_fs_check_root(struct cas_client *c, unsigned timeout_ms, size_t max_size,
			unsigned uid, unsigned gid, char *errmsg, size_t errmsg_len)
{
	struct cas_value v = { 0 };
	struct casfs_record rec;
	char key[CASFS_KEY_LEN];
	struct timespec now;
	unsigned char *buf;
	size_t len;
	int rc;

	casfs_inodes_key(root_id, key);
	rc = cas_read(c, key, timeout_ms, &v);
	if (rc)
		goto out_msg;
	if (v.version == 0) {
		now_real(&now);
		casfs_record_init(&rec, CASFS_DIR, 0755, uid, gid, &now);
		rc = casfs_record_encode(&rec, max_size, &buf, &len);
		if (rc)
			goto out_msg;
		rc = cas_cas(c, key, 0, buf, len, timeout_ms, NULL);
		free(buf);
		if (rc == CAS_OK) {
			cas_value_clear(&v);
			return CAS_OK;
		}
		if (rc != CAS_EVERSION)
			goto out_msg;
		/* Another mount created the root first: check what it wrote. */
		cas_value_clear(&v);
		rc = cas_read(c, key, timeout_ms, &v);
		if (rc)
			goto out_msg;
	}
	rc = casfs_record_decode(v.data, v.len, &rec);
	if (rc == CAS_ENOMEM)
		goto out_msg;
	if (rc || rec.type != CASFS_DIR) {
		casfs_record_clear(&rec);
		cas_value_clear(&v);
		if (errmsg)
			snprintf(errmsg, errmsg_len,
				 "register %s is not a casfs root directory of format %d", key,
				 CASFS_FORMAT);
		return CAS_EPROTO;
	}
	casfs_record_clear(&rec);
	cas_value_clear(&v);
	return CAS_OK;

out_msg:
	cas_value_clear(&v);
	if (errmsg)
		snprintf(errmsg, errmsg_len, "cannot read the root directory (register %s): %s",
			 key, cas_strerror(rc));
	return rc;
}

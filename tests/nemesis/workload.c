/* workload.c - client threads on the library and on two mounts, recording register histories. */
#define _GNU_SOURCE
#include "workload.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

/* Largest content a file read takes in one read(2): far above any value
 * written here, so one read returns the whole file from one register
 * read (a second read(2) would read the register again). */
#define READ_MAX 4096
/* Deadline of each final library read. */
#define FINAL_TIMEOUT_MS 5000

struct worker {
	struct nem_work *w;
	pthread_t thread;
	enum nem_group group;
	unsigned id;
	uint64_t rng;
	uint64_t seq;
	/* Library only: the version each key had when last seen. */
	uint64_t seen[NEM_MAX_KEYS];
	bool stale;	/* a stale-configuration client's worker */
	bool cool;	/* the worker of the cool keys */
	uint64_t woken; /* stale only: wake-ups served */
};

/* The longest call of an operation, and which call it was. */
struct timing {
	uint64_t ns;
	const char *call;
};

static uint64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

uint64_t nem_work_now(const struct nem_work *w)
{
	return mono_ns() - w->t0;
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void think(struct worker *k, unsigned max_us)
{
	unsigned us = (unsigned)(rnd(&k->rng) % (max_us + 1));
	struct timespec t = {us / 1000000, (long)(us % 1000000) * 1000};

	nanosleep(&t, NULL);
}

/* Notes a result no correct system gives; the run then fails. */
__attribute__((format(printf, 2, 3))) static void unexpected(struct nem_work *w, const char *fmt,
							     ...)
{
	va_list ap;

	pthread_mutex_lock(&w->lock);
	if (w->unexpected++ == 0) {
		va_start(ap, fmt);
		vsnprintf(w->first_unexpected, sizeof(w->first_unexpected), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&w->lock);
}

/* Adds op on key to the library's or the files' history, and its record. */
static void record(struct nem_work *w, enum nem_group g, const char *key,
		   const struct cas_hist_op *op, const struct timing *tm, bool eio)
{
	uint64_t longest = tm ? tm->ns : 0;
	struct nem_counts *c = &w->counts[g];
	struct nem_rec *grown;

	pthread_mutex_lock(&w->lock);
	if (cas_history_add(g == NEM_LIB ? w->lib : w->files, key, op))
		w->oom = true;
	if (w->nrecs == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 4096;

		grown = realloc(w->recs, cap * sizeof(*grown));
		if (!grown) {
			w->oom = true;
			goto out_unlock;
		}
		w->recs = grown;
		w->cap = cap;
	}
	w->recs[w->nrecs++] = (struct nem_rec){
		op->invoke, op->complete == CAS_TIME_PENDING ? op->invoke : op->complete, longest,
		(uint8_t)g, (uint8_t)op->status};
	if (longest > w->slowest[g]) {
		w->slowest[g] = longest;
		snprintf(w->slowest_what[g], sizeof(w->slowest_what[g]), "%s, %s", op->label,
			 tm->call ? tm->call : "?");
	}
	c->ops++;
	switch (op->status) {
	case CAS_HIST_OK:
		c->ok++;
		break;
	case CAS_HIST_MISMATCH:
		c->mismatch++;
		break;
	case CAS_HIST_FAILED:
		c->failed++;
		break;
	case CAS_HIST_UNKNOWN:
		c->unknown++;
		break;
	}
	if (eio)
		c->eio++;
out_unlock:
	pthread_mutex_unlock(&w->lock);
}

/* --- the library --- */

static void lib_key(unsigned i, char *key, size_t len)
{
	snprintf(key, len, "nemesis/k%u", i);
}

/* One library operation of worker k through client c: a read (35 %), a
 * blind write (25 %), a conditional write (25 %), a delete (5 %) or a
 * conditional delete (10 %); on a cool key (the cool worker's) a read
 * (30 %), a blind write (25 %), a delete (25 %) or a conditional delete
 * (20 %). */
static void lib_op(struct worker *k, struct cas_client *c)
{
	struct nem_work *w = k->w;
	struct cas_hist_op op = {0};
	struct cas_value v = {0};
	char key[32], val[48], label[64];
	unsigned i = (unsigned)(rnd(&k->rng) % w->nkeys), what = (unsigned)(rnd(&k->rng) % 20);
	struct timing tm = {0, NULL};
	uint64_t ver = 0;
	bool del_if = false;
	int rc;

	if (k->cool) {
		i = w->nkeys + (unsigned)(rnd(&k->rng) % w->ncool);
		what = what < 6 ? 0 : what < 11 ? 7 : what < 16 ? 17 : 18;
	}
	if (!w->deletes && what >= 17)
		what = 7; /* a blind write instead */
	lib_key(i, key, sizeof(key));
	snprintf(val, sizeof(val), "%s%u.%" PRIu64, k->stale ? "S" : "L", k->id, k->seq);
	snprintf(label, sizeof(label), "%s t%u op %" PRIu64,
		 k->stale  ? "stale"
		 : k->cool ? "cool"
			   : "lib",
		 k->id, k->seq++);
	op.label = label;
	op.version = CAS_VERSION_ANY;
	op.invoke = nem_work_now(w);
	if (what < 7) {
		op.kind = CAS_HIST_READ;
		tm.call = "cas_read";
		rc = cas_read(c, key, w->lib_timeout_ms, &v);
		op.value = v.data;
		op.len = v.len;
		ver = v.version;
	} else if (what < 12) {
		op.kind = CAS_HIST_WRITE;
		op.value = val;
		op.len = strlen(val);
		tm.call = "cas_put";
		rc = cas_put(c, key, val, op.len, w->lib_timeout_ms, &ver);
	} else if (what < 17) {
		op.kind = CAS_HIST_CAS;
		op.value = val;
		op.len = strlen(val);
		op.expected = k->seen[i];
		tm.call = "cas_cas";
		rc = cas_cas(c, key, op.expected, val, op.len, w->lib_timeout_ms, &ver);
	} else if (what < 18) {
		op.kind = CAS_HIST_DELETE;
		tm.call = "cas_delete";
		rc = cas_delete(c, key, NULL, NULL, w->lib_timeout_ms, NULL);
		ver = 0;
	} else {
		/* The checker has no conditional delete: a success is recorded
		 * as a delete (weaker: it may place it anywhere a delete fits),
		 * a mismatch as a cas mismatch (the same observation: no effect,
		 * the version was not the expected one but the reported one). */
		op.kind = CAS_HIST_DELETE;
		op.expected = k->seen[i];
		tm.call = "cas_delete_version";
		del_if = true;
		snprintf(label + strlen(label), sizeof(label) - strlen(label),
			 " (delete if %" PRIu64 ")", op.expected);
		rc = cas_delete_version(c, key, op.expected, w->lib_timeout_ms, &ver);
	}
	op.complete = nem_work_now(w);
	tm.ns = op.complete - op.invoke;
	switch (rc) {
	case CAS_OK:
		op.status = CAS_HIST_OK;
		op.version = ver;
		k->seen[i] = ver;
		if (op.kind == CAS_HIST_DELETE && ver != 0)
			goto out_unexpected;
		break;
	case CAS_EVERSION:
		if (op.kind != CAS_HIST_CAS && !del_if)
			goto out_unexpected;
		op.kind = CAS_HIST_CAS;
		op.status = CAS_HIST_MISMATCH;
		op.version = ver;
		k->seen[i] = ver;
		break;
	case CAS_EUNAVAILABLE:
		op.status = CAS_HIST_UNKNOWN;
		break;
	default:
		goto out_unexpected;
	}
	record(w, NEM_LIB, key, &op, &tm, false);
	pthread_mutex_lock(&w->lock);
	w->stale_ops += k->stale;
	w->cool_ops += k->cool;
	w->deletes_ok += op.kind == CAS_HIST_DELETE && op.status == CAS_HIST_OK;
	pthread_mutex_unlock(&w->lock);
	cas_value_clear(&v);
	return;

out_unexpected:
	unexpected(w, "%s on %s: %s", label, key, cas_strerror(rc));
	op.status = CAS_HIST_UNKNOWN;
	record(w, NEM_LIB, key, &op, &tm, false);
	cas_value_clear(&v);
}

/* --- the mounts --- */

/* A timed syscall: tm grows to its duration. */
#define TIMED(tm, name, expr)                                                                      \
	({                                                                                         \
		uint64_t t_ = mono_ns();                                                           \
		__typeof__(expr) r_ = (expr);                                                      \
		int e_ = errno;                                                                    \
		t_ = mono_ns() - t_;                                                               \
		if (t_ > (tm)->ns) {                                                               \
			(tm)->ns = t_;                                                             \
			(tm)->call = (name);                                                       \
		}                                                                                  \
		errno = e_;                                                                        \
		r_;                                                                                \
	})

/* The errors an operation may get from a cluster that lost its majority
 * or a transport that failed: the outcome is unknown. */
static bool unavailable(int e)
{
	return e == ETIMEDOUT || e == EIO;
}

static void file_key(unsigned i, char *key, size_t len)
{
	snprintf(key, len, "f%u", i);
}

/* Reads path whole: open, one read(2), close. 0 and the content in buf
 * (*len bytes), or an errno. */
static int read_file(const char *path, char *buf, size_t *len, struct timing *tm)
{
	ssize_t n;
	int fd, e;

	fd = TIMED(tm, "open", open(path, O_RDONLY | O_CLOEXEC));
	if (fd < 0)
		return errno;
	n = TIMED(tm, "read", read(fd, buf, READ_MAX));
	e = errno;
	if (TIMED(tm, "close", close(fd)) && n >= 0)
		return errno ? errno : EIO;
	if (n < 0)
		return e;
	if (n >= READ_MAX)
		return EFBIG;
	*len = (size_t)n;
	return 0;
}

static void file_read(struct worker *k, const char *path, const char *key, char *label)
{
	struct nem_work *w = k->w;
	struct cas_hist_op op = {0};
	struct timing tm = {0, NULL};
	char buf[READ_MAX];
	size_t len = 0;
	int e;

	op.kind = CAS_HIST_READ;
	op.label = label;
	op.version = CAS_VERSION_ANY;
	op.invoke = nem_work_now(w);
	e = read_file(path, buf, &len, &tm);
	op.complete = nem_work_now(w);
	if (e == 0) {
		op.status = CAS_HIST_OK;
		op.value = buf;
		op.len = len;
	} else {
		op.status = CAS_HIST_UNKNOWN;
		if (!unavailable(e))
			unexpected(w, "%s: read %s: %s", label, path, strerror(e));
	}
	record(w, k->group, key, &op, &tm, e == EIO);
}

static void file_write(struct worker *k, const char *path, const char *key, const char *val,
		       char *label)
{
	struct nem_work *w = k->w;
	struct cas_hist_op op = {0};
	struct timing tm = {0, NULL};
	size_t len = strlen(val);
	ssize_t n;
	int fd, e = 0;

	op.kind = CAS_HIST_WRITE;
	op.label = label;
	op.value = val;
	op.len = len;
	op.version = CAS_VERSION_ANY;
	op.invoke = nem_work_now(w);
	fd = TIMED(&tm, "open", open(path, O_WRONLY | O_TRUNC | O_CLOEXEC));
	if (fd < 0) {
		/* Nothing was written: open reads (lookup) and keeps O_TRUNC
		 * pending in the handle it did not make. */
		e = errno;
		op.complete = nem_work_now(w);
		op.status = CAS_HIST_FAILED;
		if (!unavailable(e))
			unexpected(w, "%s: open %s: %s", label, path, strerror(e));
		record(w, k->group, key, &op, &tm, e == EIO);
		return;
	}
	n = TIMED(&tm, "write", write(fd, val, len));
	if (n < 0)
		e = errno;
	if (TIMED(&tm, "close", close(fd)))
		unexpected(w, "%s: close %s after a write: %s", label, path, strerror(errno));
	op.complete = nem_work_now(w);
	if (n == (ssize_t)len) {
		op.status = CAS_HIST_OK;
		record(w, k->group, key, &op, &tm, false);
		return;
	}
	if (n >= 0 || !unavailable(e))
		unexpected(w, "%s: write %s: %s", label, path, n < 0 ? strerror(e) : "short write");
	op.status = CAS_HIST_UNKNOWN;
	record(w, k->group, key, &op, &tm, e == EIO);
	/* The handle's O_TRUNC is still pending when its write failed; the
	 * release that follows close commits it, asynchronously: an empty
	 * write, maybe, some time after invoke. */
	op.value = "";
	op.len = 0;
	op.complete = CAS_TIME_PENDING;
	record(w, k->group, key, &op, NULL, false);
}

static void file_cas(struct worker *k, const char *path, const char *key, const char *val,
		     char *label)
{
	struct nem_work *w = k->w;
	struct cas_hist_op op = {0};
	char buf[32], name[64], *end;
	struct timing tm = {0, NULL};
	ssize_t n;
	int r, e;

	op.kind = CAS_HIST_CAS;
	op.label = label;
	op.value = val;
	op.len = strlen(val);
	op.version = CAS_VERSION_ANY;
	op.invoke = nem_work_now(w);
	n = TIMED(&tm, "getxattr", getxattr(path, "user.casfs.version", buf, sizeof(buf) - 1));
	if (n <= 0) {
		e = n < 0 ? errno : EINVAL;
		op.complete = nem_work_now(w);
		op.status = CAS_HIST_FAILED;
		if (!unavailable(e))
			unexpected(w, "%s: getxattr version %s: %s", label, path, strerror(e));
		record(w, k->group, key, &op, &tm, e == EIO);
		return;
	}
	buf[n] = '\0';
	errno = 0;
	op.expected = strtoull(buf, &end, 10);
	if (errno || *end || op.expected == 0) {
		unexpected(w, "%s: version of %s is \"%s\"", label, path, buf);
		return;
	}
	snprintf(name, sizeof(name), "user.casfs.cas.%" PRIu64, op.expected);
	/* The conditional write is the setxattr: its interval is the op's. */
	op.invoke = nem_work_now(w);
	r = TIMED(&tm, "setxattr", setxattr(path, name, val, op.len, 0));
	e = errno;
	op.complete = nem_work_now(w);
	if (r == 0) {
		op.status = CAS_HIST_OK;
		op.version = op.expected + 1;
	} else if (e == ESTALE) {
		op.status = CAS_HIST_MISMATCH;
	} else {
		op.status = CAS_HIST_UNKNOWN;
		if (!unavailable(e))
			unexpected(w, "%s: setxattr %s %s: %s", label, path, name, strerror(e));
	}
	record(w, k->group, key, &op, &tm, r && e == EIO);
}

static void file_op(struct worker *k)
{
	struct nem_work *w = k->w;
	unsigned m = k->group == NEM_MOUNT0 ? 0 : 1;
	unsigned i = (unsigned)(rnd(&k->rng) % w->nfiles), what = (unsigned)(rnd(&k->rng) % 10);
	char path[4096], key[16], val[48], label[48];

	file_key(i, key, sizeof(key));
	snprintf(path, sizeof(path), "%s/%s", w->mounts[m], key);
	snprintf(val, sizeof(val), "M%u.%u.%" PRIu64, m, k->id, k->seq);
	snprintf(label, sizeof(label), "m%u t%u op %" PRIu64, m, k->id, k->seq++);
	if (what < 4)
		file_read(k, path, key, label);
	else if (what < 7)
		file_write(k, path, key, val, label);
	else
		file_cas(k, path, key, val, label);
}

static void *work(void *arg)
{
	struct worker *k = arg;

	while (!k->w->stop) {
		if (k->cool) {
			lib_op(k, k->w->client);
			think(k, 1400000);
		} else if (k->group == NEM_LIB) {
			lib_op(k, k->w->client);
			think(k, 2000);
		} else {
			file_op(k);
			think(k, 2000);
		}
	}
	return NULL;
}

/* A stale-configuration client: idle until woken (nem_work_stale_wake),
 * then a few operations at once, with whatever view of the cluster it
 * kept from its last ones. */
static void *stale_work(void *arg)
{
	struct worker *k = arg;
	struct nem_work *w = k->w;
	unsigned s = k->id - w->lib_threads, n;

	for (;;) {
		pthread_mutex_lock(&w->lock);
		while (!w->stop && k->woken >= w->stale_wakes[s])
			pthread_cond_wait(&w->stale_cond, &w->lock);
		if (w->stop) {
			pthread_mutex_unlock(&w->lock);
			return NULL;
		}
		k->woken++;
		pthread_mutex_unlock(&w->lock);
		for (n = 0; n < NEM_STALE_OPS && !w->stop; n++)
			lib_op(k, w->stale[s]);
	}
}

void nem_work_stale_wake(struct nem_work *w, unsigned s)
{
	pthread_mutex_lock(&w->lock);
	w->stale_wakes[s]++;
	pthread_cond_broadcast(&w->stale_cond);
	pthread_mutex_unlock(&w->lock);
}

int nem_work_init(struct nem_work *w)
{
	w->t0 = mono_ns() - 1000; /* the history's times start above 0 */
	if (pthread_mutex_init(&w->lock, NULL))
		return -1;
	if (pthread_cond_init(&w->stale_cond, NULL))
		goto out_destroy_lock;
	if (cas_history_new(&w->lib))
		goto out_destroy_cond;
	if (cas_history_new(&w->files))
		goto out_free_lib;
	return 0;

out_free_lib:
	cas_history_free(w->lib);
	w->lib = NULL;
out_destroy_cond:
	pthread_cond_destroy(&w->stale_cond);
out_destroy_lock:
	pthread_mutex_destroy(&w->lock);
	return -1;
}

/* The version of path through getxattr, or 0. */
static uint64_t version_of(const char *path)
{
	char buf[32];
	ssize_t n;

	n = getxattr(path, "user.casfs.version", buf, sizeof(buf) - 1);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strtoull(buf, NULL, 10);
}

int nem_work_setup(struct nem_work *w, char *errmsg, size_t errmsg_len)
{
	char path[4096], other[4096], key[16], val[32], buf[READ_MAX];
	struct cas_hist_op op = {0};
	struct timing tm = {0, NULL};
	uint64_t v;
	size_t len;
	unsigned i;
	int fd, e;

	for (i = 0; i < w->nfiles; i++) {
		file_key(i, key, sizeof(key));
		snprintf(path, sizeof(path), "%s/%s", w->mounts[0], key);
		snprintf(other, sizeof(other), "%s/%s", w->mounts[1], key);
		snprintf(val, sizeof(val), "init-%u", i);

		/* A create: the register's first version, empty. */
		op = (struct cas_hist_op){.kind = CAS_HIST_WRITE,
					  .version = CAS_VERSION_ANY,
					  .value = "",
					  .label = "setup create"};
		op.invoke = nem_work_now(w);
		fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0)
			goto out_errno;
		op.complete = nem_work_now(w);
		op.status = CAS_HIST_OK;
		record(w, NEM_MOUNT0, key, &op, NULL, false);

		op.invoke = nem_work_now(w);
		op.value = val;
		op.len = strlen(val);
		op.label = "setup write";
		if (write(fd, val, op.len) != (ssize_t)op.len) {
			e = errno;
			close(fd);
			errno = e;
			goto out_errno;
		}
		if (close(fd))
			goto out_errno;
		op.complete = nem_work_now(w);
		record(w, NEM_MOUNT0, key, &op, NULL, false);

		/* The model's versions: a create and a write are one change
		 * each, a read (from the other mount) none. */
		if ((v = version_of(other)) != 2) {
			snprintf(errmsg, errmsg_len,
				 "%s has version %" PRIu64 " after a create and a write, not 2: "
				 "a file's version does not count our writes",
				 other, v);
			return -1;
		}
		op = (struct cas_hist_op){
			.kind = CAS_HIST_READ, .version = CAS_VERSION_ANY, .label = "setup read"};
		op.invoke = nem_work_now(w);
		e = read_file(other, buf, &len, &tm);
		op.complete = nem_work_now(w);
		if (e) {
			errno = e;
			goto out_errno;
		}
		op.status = CAS_HIST_OK;
		op.value = buf;
		op.len = len;
		record(w, NEM_MOUNT1, key, &op, NULL, false);
		if (len != strlen(val) || memcmp(buf, val, len)) {
			snprintf(errmsg, errmsg_len, "%s reads \"%.*s\", not \"%s\"", other,
				 (int)len, buf, val);
			return -1;
		}
		if ((v = version_of(path)) != 2) {
			snprintf(errmsg, errmsg_len,
				 "%s has version %" PRIu64 " after a read, not 2: a read changes "
				 "the file's register",
				 path, v);
			return -1;
		}
	}
	return 0;

out_errno:
	snprintf(errmsg, errmsg_len, "setting up %s: %s", path, strerror(errno));
	return -1;
}

int nem_work_start(struct nem_work *w, char *errmsg, size_t errmsg_len)
{
	size_t files_end = w->lib_threads + NEM_MOUNTS * w->mount_threads;
	size_t stale_end = files_end + w->nstale;
	size_t n = stale_end + (w->ncool ? 1 : 0), i;
	struct worker *ks;

	ks = calloc(n, sizeof(*ks));
	if (!ks) {
		snprintf(errmsg, errmsg_len, "out of memory");
		return -1;
	}
	w->workers = ks;
	w->stop = false;
	for (i = 0; i < n; i++) {
		struct worker *k = &ks[i];

		k->w = w;
		if (i >= stale_end) {
			k->group = NEM_LIB;
			k->cool = true;
			k->id = (unsigned)(w->lib_threads + w->nstale);
		} else if (i >= files_end) {
			/* Stale clients: ids after the library threads'; each
			 * runs once at the start, to learn the configuration. */
			k->group = NEM_LIB;
			k->stale = true;
			k->id = (unsigned)(w->lib_threads + i - files_end);
			w->stale_wakes[i - files_end] = 1;
		} else if (i < w->lib_threads) {
			k->group = NEM_LIB;
			k->id = (unsigned)i;
		} else {
			size_t j = i - w->lib_threads;

			k->group = j < w->mount_threads ? NEM_MOUNT0 : NEM_MOUNT1;
			k->id = (unsigned)(j % w->mount_threads);
		}
		k->rng = w->seed * 1000003u + i;
		if (pthread_create(&k->thread, NULL, k->stale ? stale_work : work, k)) {
			snprintf(errmsg, errmsg_len, "cannot start client thread %zu", i);
			w->nthreads = i;
			nem_work_stop(w);
			return -1;
		}
	}
	w->nthreads = n;
	return 0;
}

void nem_work_stop(struct nem_work *w)
{
	struct worker *ks = w->workers;
	size_t i;

	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->stale_cond);
	pthread_mutex_unlock(&w->lock);
	for (i = 0; i < w->nthreads; i++)
		pthread_join(ks[i].thread, NULL);
	w->nthreads = 0;
	free(ks);
	w->workers = NULL;
}

int nem_work_final(struct nem_work *w, char *errmsg, size_t errmsg_len)
{
	char key[32], path[4096], buf[READ_MAX], label[48];
	struct cas_hist_op op;
	struct cas_value v;
	struct timing tm;
	unsigned i, m;
	size_t len;
	int rc;

	for (i = 0; i < w->nkeys + w->ncool; i++) {
		lib_key(i, key, sizeof(key));
		op = (struct cas_hist_op){.kind = CAS_HIST_READ, .label = "final read"};
		op.invoke = nem_work_now(w);
		rc = cas_read(w->client, key, FINAL_TIMEOUT_MS, &v);
		op.complete = nem_work_now(w);
		if (rc) {
			snprintf(errmsg, errmsg_len, "final read of %s: %s", key, cas_strerror(rc));
			return -1;
		}
		op.status = CAS_HIST_OK;
		op.value = v.data;
		op.len = v.len;
		op.version = v.version;
		tm = (struct timing){op.complete - op.invoke, "cas_read"};
		record(w, NEM_LIB, key, &op, &tm, false);
		cas_value_clear(&v);
	}
	for (m = 0; m < NEM_MOUNTS; m++) {
		for (i = 0; i < w->nfiles; i++) {
			file_key(i, key, sizeof(key));
			snprintf(path, sizeof(path), "%s/%s", w->mounts[m], key);
			snprintf(label, sizeof(label), "final read m%u", m);
			op = (struct cas_hist_op){
				.kind = CAS_HIST_READ, .label = label, .version = CAS_VERSION_ANY};
			tm = (struct timing){0, NULL};
			op.invoke = nem_work_now(w);
			rc = read_file(path, buf, &len, &tm);
			op.complete = nem_work_now(w);
			if (rc) {
				snprintf(errmsg, errmsg_len, "final read of %s: %s", path,
					 strerror(rc));
				return -1;
			}
			op.status = CAS_HIST_OK;
			op.value = buf;
			op.len = len;
			record(w, m ? NEM_MOUNT1 : NEM_MOUNT0, key, &op, &tm, false);
		}
	}
	if (w->oom) {
		snprintf(errmsg, errmsg_len, "out of memory while recording the history");
		return -1;
	}
	return 0;
}

void nem_work_free(struct nem_work *w)
{
	cas_history_free(w->lib);
	cas_history_free(w->files);
	free(w->recs);
	w->lib = w->files = NULL;
	w->recs = NULL;
	pthread_cond_destroy(&w->stale_cond);
	pthread_mutex_destroy(&w->lock);
}

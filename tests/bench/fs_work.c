/* fs_work.c - file workloads through a mount (casfs, or the in-memory
 * floor memfs): open-trunc-write-close and open-read-close by 1 or 32
 * threads on distinct files, bash's own `echo x > f` loop, and create
 * latency in a directory of a given size. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compare.h"

const struct fs_def fs_defs[F_COUNT] = {
	[F_WRITE1] = {"fs open-trunc-write-close, 1 thread", 1, true},
	[F_WRITE32] = {"fs open-trunc-write-close, 32 threads", 32, true},
	[F_READ1] = {"fs open-read-close, 1 thread", 1, false},
	[F_READ32] = {"fs open-read-close, 32 threads", 32, false},
	[F_BASH] = {"fs bash 'echo x > f' loop (mean)", 1, true},
};

static int write_file(const char *path, int flags)
{
	int fd = open(path, O_WRONLY | flags, 0644);
	int rc = 0;

	if (fd < 0)
		return -1;
	if (write(fd, "x\n", 2) != 2)
		rc = -1;
	if (close(fd))
		rc = -1;
	return rc;
}

/* Reads path to its end, as cat does; EBADMSG when it does not hold what
 * write_file wrote. */
static int read_file(const char *path)
{
	char buf[64];
	size_t got = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY);
	int rc = 0;

	if (fd < 0)
		return -1;
	while ((n = read(fd, buf + got, sizeof(buf) - got)) > 0)
		got += (size_t)n;
	if (n < 0) {
		rc = -1;
	} else if (got != 2 || memcmp(buf, "x\n", 2)) {
		errno = EBADMSG; /* not what was written */
		rc = -1;
	}
	if (close(fd))
		rc = -1;
	return rc;
}

/* Runs bash's own `echo x > f` n times; the wall time in *us. */
static int bash_loop(const char *path, unsigned long n, uint64_t *us)
{
	static const char script[] =
		"f=$1; n=$2; for ((i = 0; i < n; i++)); do echo x > \"$f\" || exit 1; done";
	char count[24];
	int status;
	uint64_t t0;
	pid_t pid;

	snprintf(count, sizeof(count), "%lu", n);
	t0 = now_us();
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		execlp("bash", "bash", "-c", script, "bash", path, count, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		return -1;
	*us = now_us() - t0;
	return 0;
}

/* The start line of a file workload's threads. */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool go, abort;
};

/* One thread of a file workload, on its own file. */
struct fs_worker {
	struct gate *start;
	const struct bench *b;
	bool write;
	char path[4096];
	struct lat lat;
	uint64_t ok, t_end;
	int err; /* errno of the first failure, 0 */
	pthread_t thread;
};

static void *fs_run(void *arg)
{
	struct fs_worker *w = arg;
	uint64_t end;
	bool abort;

	pthread_mutex_lock(&w->start->lock);
	while (!w->start->go)
		pthread_cond_wait(&w->start->cond, &w->start->lock);
	abort = w->start->abort;
	pthread_mutex_unlock(&w->start->lock);
	if (abort)
		return NULL;
	end = now_us() + (uint64_t)w->b->seconds * 1000000u;
	for (;;) {
		uint64_t s = now_us();
		int rc;

		if (w->b->count ? w->ok >= w->b->count : s >= end)
			break;
		rc = w->write ? write_file(w->path, O_TRUNC) : read_file(w->path);
		if (rc || !lat_add(&w->lat, now_us() - s)) {
			w->err = rc ? errno : ENOMEM;
			break;
		}
		w->ok++;
	}
	w->t_end = now_us();
	return NULL;
}

int measure_fs(struct bench *b, const char *dir, enum fs_workload f, int run, double write_rate,
	       struct cell *c)
{
	const struct fs_def *d = &fs_defs[f];
	struct fs_worker *ws;
	const struct lat *lats[MAX_THREADS];
	struct gate start = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, false};
	uint64_t t0, wall, last = 0;
	int i, started = 0, rc = -1;

	memset(c, 0, sizeof(*c));
	ws = calloc((size_t)d->threads, sizeof(*ws));
	if (ws == NULL) {
		snprintf(c->why, sizeof(c->why), "out of memory");
		return -1;
	}
	for (i = 0; i < d->threads; i++) {
		ws[i].b = b;
		ws[i].write = d->write;
		snprintf(ws[i].path, sizeof(ws[i].path), "%s/compare-%016" PRIx64 "-%d-%d", dir,
			 b->id, run, i);
		/* The reads read what the writes left; each file exists
		 * before its first timed open. */
		if (write_file(ws[i].path, O_CREAT | O_TRUNC)) {
			snprintf(c->why, sizeof(c->why), "cannot create %.160s: %s", ws[i].path,
				 strerror(errno));
			goto out_free;
		}
	}
	if (f == F_BASH) {
		/* About as long as the C loop ran. */
		unsigned long n = (unsigned long)(write_rate * b->seconds);

		if (n < 20)
			n = 20;
		if (bash_loop(ws[0].path, n, &wall)) {
			snprintf(c->why, sizeof(c->why), "bash 'echo x > %.160s' failed",
				 ws[0].path);
			goto out_free;
		}
		c->ok = n;
		c->p50 = (double)wall / (double)n;
		c->p99 = -1;
		c->rate = (double)n * 1e6 / (double)wall;
		c->done = true;
		if (read_file(ws[0].path)) {
			c->failed = true;
			snprintf(c->why, sizeof(c->why), "%.160s after the bash loop: %s",
				 ws[0].path, strerror(errno));
			goto out_free;
		}
		rc = 0;
		goto out_free;
	}
	for (i = 0; i < d->threads; i++) {
		ws[i].start = &start;
		if (pthread_create(&ws[i].thread, NULL, fs_run, &ws[i]))
			break;
		started++;
	}
	pthread_mutex_lock(&start.lock);
	start.go = true;
	start.abort = started < d->threads;
	pthread_cond_broadcast(&start.cond);
	pthread_mutex_unlock(&start.lock);
	t0 = now_us();
	if (started < d->threads) {
		snprintf(c->why, sizeof(c->why), "cannot start %d threads", d->threads);
		for (i = 0; i < started; i++)
			pthread_join(ws[i].thread, NULL);
		goto out_free;
	}
	for (i = 0; i < d->threads; i++) {
		pthread_join(ws[i].thread, NULL);
		lats[i] = &ws[i].lat;
		c->ok += ws[i].ok;
		if (ws[i].t_end > last)
			last = ws[i].t_end;
	}
	for (i = 0; i < d->threads; i++) {
		if (ws[i].err) {
			/* A read of other bytes than written refuses the row. */
			c->done = c->failed = ws[i].err == EBADMSG;
			snprintf(c->why, sizeof(c->why), "%s %.160s: %s",
				 d->write ? "write" : "read", ws[i].path, strerror(ws[i].err));
			goto out_free;
		}
	}
	wall = last - t0;
	c->rate = wall ? (double)c->ok * 1e6 / (double)wall : 0;
	rc = percentiles(lats, d->threads, c);
	c->done = rc == 0;
out_free:
	for (i = 0; i < d->threads; i++)
		free(ws[i].lat.v);
	free(ws);
	return rc;
}

/* ---- directories ---- */

/* The name of entry i of a filled directory: short names, as most are. */
static void entry_name(char *out, size_t len, const char *dir, unsigned long i)
{
	snprintf(out, len, "%s/e%07lu", dir, i);
}

/* What one thread of dir_fill shares and reports. */
struct filler {
	const char *dir;
	unsigned long entries;
	uint64_t end;
	_Atomic unsigned long *next, *made;
	int err; /* errno of the first failure, 0 */
	bool late;
};

/* One thread of dir_fill: mknods the next entry until the count or the
 * deadline is reached, or one fails. */
static void *fill_run(void *arg)
{
	struct filler *f = arg;
	char path[4096];
	unsigned long i;

	/* mknod: one request per entry, no open file to flush and release. */
	while ((i = (*f->next)++) < f->entries) {
		if (now_us() >= f->end) {
			f->late = true;
			break;
		}
		entry_name(path, sizeof(path), f->dir, i);
		if (mknod(path, S_IFREG | 0644, 0) && errno != EEXIST) {
			f->err = errno;
			break;
		}
		(*f->made)++;
	}
	return NULL;
}

int dir_fill(const char *dir, unsigned long entries, unsigned budget_s, unsigned long *have,
	     char *why, size_t why_len)
{
	uint64_t end = now_us() + (uint64_t)budget_s * 1000000u;
	_Atomic unsigned long next = *have, made = 0;
	struct filler f[DIR_FILL_THREADS];
	pthread_t t[DIR_FILL_THREADS];
	int i, n = 0, err = 0;
	bool late = false;

	if (mkdir(dir, 0755) && errno != EEXIST) {
		snprintf(why, why_len, "mkdir %.160s: %s", dir, strerror(errno));
		return -1;
	}
	if (*have >= entries)
		return 0;
	/* Entries [*have, entries) by several threads at once (the set-up is
	 * not measured): the entries made are counted, and a short fill
	 * leaves *have at the count, whichever names they took. */
	for (i = 0; i < DIR_FILL_THREADS; i++) {
		f[i] = (struct filler){
			.dir = dir, .entries = entries, .end = end, .next = &next, .made = &made};
		if (pthread_create(&t[i], NULL, fill_run, &f[i]))
			break;
		n++;
	}
	for (i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		if (f[i].err && !err)
			err = f[i].err;
		late |= f[i].late;
	}
	*have += made;
	if (n == 0) {
		snprintf(why, why_len, "cannot start a thread");
		return -1;
	}
	if (err) {
		snprintf(why, why_len, "%lu entries, then mknod: %s", *have, strerror(err));
		return -1;
	}
	if (late || *have < entries) {
		snprintf(why, why_len, "%lu entries after the %u s set-up budget", *have, budget_s);
		return -1;
	}
	return 0;
}

int measure_create(struct bench *b, const char *dir, int run, struct cell *c)
{
	struct lat lat = {0};
	const struct lat *lats[1] = {&lat};
	uint64_t t0, end, wall;
	unsigned long n = 0;
	char path[4096];
	int rc = -1;

	memset(c, 0, sizeof(*c));
	t0 = now_us();
	end = t0 + (uint64_t)b->seconds * 1000000u;
	/* A create, timed, then its unlink, not timed: the directory keeps
	 * its size. At most DIR_CREATES_MAX of them, and at least 3. */
	while (n < DIR_CREATES_MAX && (n < 3 || now_us() < end)) {
		uint64_t s;
		int fd;

		snprintf(path, sizeof(path), "%s/new-%016" PRIx64 "-%d-%lu", dir, b->id, run, n);
		s = now_us();
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0 || close(fd) || !lat_add(&lat, now_us() - s)) {
			snprintf(c->why, sizeof(c->why), "create %.160s: %s", path,
				 strerror(errno));
			goto out_free;
		}
		if (unlink(path)) {
			snprintf(c->why, sizeof(c->why), "unlink %.160s: %s", path,
				 strerror(errno));
			goto out_free;
		}
		n++;
	}
	wall = now_us() - t0;
	c->ok = n;
	c->rate = (double)n * 1e6 / (double)wall; /* creates and unlinks */
	rc = percentiles(lats, 1, c);
	c->done = rc == 0;
out_free:
	free(lat.v);
	return rc;
}

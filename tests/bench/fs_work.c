/* fs_work.c - compare's file workloads through a casfs mount: echo x > f
 * and cat f, timed in C and as bash's own loop. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compare.h"

const char *const fs_labels[F_COUNT] = {
	[F_WRITE] = "fs open-write-close (echo x > f)",
	[F_READ] = "fs open-read-close (cat f)",
	[F_BASH] = "fs bash 'echo x > f' loop (mean)",
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

int measure_fs(struct bench *b, enum fs_workload f, int run, double write_rate, struct cell *c)
{
	struct lat lat = {0};
	const struct lat *lats[1] = {&lat};
	uint64_t ok = 0;
	char path[4096];
	uint64_t t0, end, wall;
	int rc = 0;

	memset(c, 0, sizeof(*c));
	snprintf(path, sizeof(path), "%s/compare-%016" PRIx64 "-%d", b->mount, b->id, run);
	if (f == F_WRITE && write_file(path, O_CREAT | O_TRUNC)) {
		snprintf(c->why, sizeof(c->why), "cannot create %.160s: %s", path, strerror(errno));
		return -1;
	}
	if (f == F_BASH) {
		/* About as long as the C loop ran. */
		unsigned long n = (unsigned long)(write_rate * b->seconds);

		if (n < 20)
			n = 20;
		if (bash_loop(path, n, &wall)) {
			snprintf(c->why, sizeof(c->why), "bash 'echo x > %.160s' failed", path);
			return -1;
		}
		c->ok = n;
		c->p50 = (double)wall / (double)n;
		c->p99 = -1;
		c->rate = (double)n * 1e6 / (double)wall;
		c->done = true;
		if (read_file(path)) {
			c->failed = true;
			snprintf(c->why, sizeof(c->why), "%.160s after the bash loop: %s", path,
				 strerror(errno));
			return -1;
		}
		return 0;
	}
	t0 = now_us();
	end = t0 + (uint64_t)b->seconds * 1000000u;
	while (now_us() < end) {
		uint64_t s = now_us();

		rc = f == F_WRITE ? write_file(path, O_TRUNC) : read_file(path);
		if (!lat_add(&lat, now_us() - s) || rc) {
			/* A read of other bytes than written refuses the row. */
			c->done = c->failed = errno == EBADMSG;
			snprintf(c->why, sizeof(c->why), "%s %.160s: %s",
				 f == F_WRITE ? "write" : "read", path, strerror(errno));
			free(lat.v);
			return -1;
		}
		ok++;
	}
	wall = now_us() - t0;
	c->ok = ok;
	c->rate = (double)ok * 1e6 / (double)wall;
	rc = percentiles(lats, 1, c);
	free(lat.v);
	c->done = rc == 0;
	return rc;
}

/* procs.c - child processes, bounded waits, mounts and temporary folders for the nemesis. */
#define _GNU_SOURCE
#include "procs.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Poll interval of the bounded waits below. */
#define POLL_MS 10

unsigned long long nem_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (unsigned long long)t.tv_sec * 1000 + (unsigned long long)t.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&t, &t) && errno == EINTR)
		;
}

void nem_nap(unsigned ms, const volatile bool *stop)
{
	unsigned long long end = nem_now_ms() + ms, now;

	while ((now = nem_now_ms()) < end) {
		if (stop && *stop)
			return;
		sleep_ms(end - now < 20 ? (unsigned)(end - now) : 20);
	}
}

pid_t nem_spawn(char *const argv[], const char *log, int deathsig)
{
	pid_t parent = getpid(), pid;
	int in, out;

	in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1;
	out = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (out < 0) {
		close(in);
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		/* Only async-signal-safe calls from here to exec. */
		if (deathsig && (prctl(PR_SET_PDEATHSIG, deathsig) || getppid() != parent))
			_exit(127);
		if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
			_exit(127);
		close_range(3, ~0U, 0);
		if (strchr(argv[0], '/'))
			execv(argv[0], argv);
		else
			execvp(argv[0], argv);
		_exit(127);
	}
	close(in);
	close(out);
	return pid;
}

bool nem_reap(pid_t pid, unsigned timeout_ms, int *status)
{
	unsigned long long end = nem_now_ms() + timeout_ms;
	int st;
	pid_t r;

	for (;;) {
		r = waitpid(pid, &st, WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD)) {
			if (status)
				*status = r == pid ? st : 0;
			return true;
		}
		if (nem_now_ms() >= end)
			return false;
		sleep_ms(POLL_MS);
	}
}

bool nem_alive(pid_t pid, int *status)
{
	return !nem_reap(pid, 0, status);
}

bool nem_stop(pid_t pid, int sig, unsigned timeout_ms)
{
	if (pid <= 0)
		return true;
	kill(pid, SIGCONT);
	kill(pid, sig);
	if (nem_reap(pid, timeout_ms, NULL))
		return true;
	kill(pid, SIGKILL);
	return nem_reap(pid, timeout_ms, NULL);
}

int nem_run(char *const argv[], const char *log, unsigned timeout_ms)
{
	pid_t pid = nem_spawn(argv, log, 0);
	int st;

	if (pid < 0)
		return -1;
	if (!nem_reap(pid, timeout_ms, &st)) {
		nem_stop(pid, SIGKILL, 1000);
		return -1;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Undoes mountinfo's octal escapes (\040 for a blank, ...) in place. */
static void unescape(char *s)
{
	char *d = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*d++ = *s++;
		}
	}
	*d = '\0';
}

bool nem_mounted(const char *path)
{
	char *line = NULL, *save, *tok;
	size_t cap = 0;
	bool found = false;
	FILE *f;
	int i;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return false;
	while (!found && getline(&line, &cap, f) > 0) {
		/* id parent major:minor root MOUNTPOINT ... */
		tok = strtok_r(line, " ", &save);
		for (i = 0; tok && i < 4; i++)
			tok = strtok_r(NULL, " ", &save);
		if (!tok)
			continue;
		unescape(tok);
		found = strcmp(tok, path) == 0;
	}
	free(line);
	fclose(f);
	return found;
}

bool nem_read_port(const char *path, unsigned *port)
{
	char buf[16];
	unsigned long v;
	char *end;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	errno = 0;
	v = strtoul(buf, &end, 10);
	/* A complete file ends its number with a newline. */
	if (errno || end == buf || *end != '\n' || v == 0 || v > 65535)
		return false;
	*port = (unsigned)v;
	return true;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0; /* go on: what stays is reported by the final rmdir */
}

int nem_rmtree(const char *path)
{
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	return access(path, F_OK) == 0 ? -1 : 0;
}

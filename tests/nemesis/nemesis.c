/* nemesis.c - real processes under faults and membership changes; the histories must linearize. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <cas/client.h>

#include "linearize.h"
#include "procs.h"
#include "proxy.h"
#include "workload.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define HAVE_DEATH_CALLBACK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#include <sanitizer/common_interface_defs.h>
#define HAVE_DEATH_CALLBACK 1
#endif
#endif

/* Nodes 0..2 start as the members; node 3 is the spare (its data folder
 * empty: uninitialized), which membership changes bring in. */
#define MEMBERS 3
#define NODES	4
/* Longest temporary folder name: room for the files below it. */
#define TMP_MAX_LEN 256
/* Deadline of one library call, and of one filesystem request (-o timeout=). */
#define LIB_TIMEOUT_MS	1000
#define MOUNT_TIMEOUT_S 2
/* What a call may take past its deadline before it counts as a hang: the
 * processes are slow under AddressSanitizer on a loaded machine. The
 * deadline is per FUSE request, and one file syscall may make three: the
 * revalidation of the name (a lookup), when that fails a fresh lookup,
 * then the operation itself. */
#define SLACK_MS      3000
#define LIB_BOUND_MS  (LIB_TIMEOUT_MS + SLACK_MS)
#define FILE_BOUND_MS (3 * MOUNT_TIMEOUT_S * 1000 + SLACK_MS)
/* The phase without a majority: long enough for every client to see a
 * failure after its in-flight call ended. */
#define WINDOW_MS (2 * MOUNT_TIMEOUT_S * 1000 + 2000)
/* Bounded waits for processes. */
#define START_MS 20000
#define EXIT_MS	 10000
/* The watchdog ends a run this long past --seconds. */
#define WATCHDOG_S 240
/* No membership change starts this close to a phase without a majority;
 * one still running then is driven to its end first. */
#define CHANGE_ROOM_MS 3000
/* Longest a step of a membership change may take, all its runs of
 * casctl included; past it the run fails. */
#define STEP_MS 60000
/* Times casctl is killed mid-step at most, per step. */
#define STEP_KILLS 3
/* casctl gc's grace, in seconds: above every client's deadline (the
 * library's 1 s, the mounts' 2 s), as PROTOCOL.md ("The purge") asks. */
#define GC_GRACE "3"
/* How long the end of a run waits for the casctl gc still running at the
 * heal and one more run. A run waits its grace twice (between fs/gc.c's
 * passes, then before the purges), 6 s, plus its rounds: 9.5 to 12 s
 * each under sanitizers and TLS on a loaded machine, where 20 s for the
 * two once ran out. A hang still fails. */
#define GC_END_MS 45000

enum fault { F_KILL, F_PAUSE, F_CUT, F_DELAY, F_BLACKHOLE, F_KINDS };

/* A step of a membership change: a casctl member command, run again
 * until it exits 0 (it resumes from what the nodes record), or the wipe
 * of a node that left (it becomes the spare: empty, uninitialized). */
enum mstep_kind { MS_REPLACE, MS_ADD, MS_REMOVE, MS_WIPE };

struct mstep {
	enum mstep_kind kind;
	unsigned a; /* replace: OLD; remove, wipe: the node */
	unsigned b; /* replace: NEW; add: the node */
};

struct node {
	pid_t pid; /* 0: not running */
	unsigned port;
	bool paused;
	bool member; /* in the cluster's configuration, as far as the schedule knows */
	char dir[PATH_MAX];
	char port_file[PATH_MAX];
	char log[PATH_MAX];
	struct nem_proxy *proxy;
};

struct mount {
	pid_t pid;
	char dir[PATH_MAX];
};

/* The TLS files of --tls DIR (README, Security), as tests/lib.sh's TLS
 * mode makes them. */
enum tls_file { T_CA, T_NODE_CRT, T_NODE_KEY, T_CLIENT_CRT, T_CLIENT_KEY, T_TOKEN, T_FILES };
static const char *const tls_names[T_FILES] = {"ca.crt",     "node.crt",   "node.key",
					       "client.crt", "client.key", "token"};

static struct {
	const char *bin;
	const char *scheme;	      /* "http", or "https" with --tls */
	char tls[T_FILES][PATH_MAX];  /* empty without --tls */
	struct cas_auth_config auth;  /* the client's share of tls */
	struct cas_auth *auth_loaded; /* for the one-shot admin calls */
	char tmp[TMP_MAX_LEN];
	char log[PATH_MAX]; /* casfs and fusermount3 */
	struct node nodes[NODES];
	struct mount mounts[NEM_MOUNTS];
	struct cas_client *direct; /* health pings, past the proxies */
	pthread_mutex_t cleanup_lock;
	bool cleaned;
	bool keep;
	volatile bool interrupted;
	unsigned long long t0;
	unsigned faults[F_KINDS];
	unsigned two_down;
	int fault_node;		/* the node a single fault is on, or -1 */
	bool changes_on;	/* membership changes in the schedule */
	bool ctl_all;		/* casctl member is given the spare's URL too */
	char ctl_log[PATH_MAX]; /* casctl's output */
	struct nem_work *work;	/* for the stale clients' wake-ups */
	/* The membership change under way. */
	struct {
		struct mstep steps[3];
		unsigned nsteps, cur;
		bool active;
		bool calm; /* no more kills of casctl: drive it to its end */
		pid_t pid; /* casctl, or 0 */
		unsigned long long spawned, kill_at, retry_at, step_start;
		unsigned kills, runs; /* of this step */
		uint64_t rng;
	} mc;
	unsigned changes, ctl_runs, ctl_killed, ctl_failed, crash_mid_change;
	/* casctl gc, run now and then when casctl has it. */
	struct {
		bool on;
		pid_t pid;
		unsigned long long next_at;
		unsigned runs, ok, failed;
		long log_at; /* casctl.log's size when the run started */
		uint64_t rng;
	} gc;
	/* The watchdog. */
	pthread_mutex_t done_lock;
	pthread_cond_t done_cond;
	bool done;
	unsigned limit_s;
} g = {.scheme = "http",
       .fault_node = -1,
       .cleanup_lock = PTHREAD_MUTEX_INITIALIZER,
       .done_lock = PTHREAD_MUTEX_INITIALIZER};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
	va_list ap;

	printf("nemesis: [%7.2f] ", (double)(nem_now_ms() - g.t0) / 1000.0);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned between(uint64_t *s, unsigned lo, unsigned hi)
{
	return lo + (unsigned)(rnd(s) % (hi - lo + 1));
}

/* --- cleanup --- */

static void unmount(struct mount *m)
{
	char *argv[] = {"fusermount3", "-u", m->dir, NULL};
	char *lazy[] = {"fusermount3", "-uz", m->dir, NULL};

	if (!m->dir[0])
		return;
	if (nem_mounted(m->dir))
		nem_run(argv, g.log, EXIT_MS);
	if (m->pid > 0) {
		if (!nem_reap(m->pid, EXIT_MS, NULL))
			nem_stop(m->pid, SIGTERM, EXIT_MS);
		m->pid = 0;
	}
	if (nem_mounted(m->dir))
		nem_run(lazy, g.log, EXIT_MS);
	/* Root can detach without fusermount3 (which needs a free descriptor). */
	if (nem_mounted(m->dir))
		umount2(m->dir, MNT_DETACH);
}

/* Unmounts, kills our casd, removes the temporary folder; once, from
 * whichever path gets here first (normal end, exit, a signal, the
 * watchdog, a sanitizer report). */
static void cleanup(void)
{
	unsigned i;

	if (pthread_mutex_trylock(&g.cleanup_lock))
		return; /* another thread is at it */
	if (g.cleaned)
		goto out_unlock;
	g.cleaned = true;
	if (g.mc.pid > 0)
		nem_stop(g.mc.pid, SIGKILL, EXIT_MS);
	g.mc.pid = 0;
	if (g.gc.pid > 0)
		nem_stop(g.gc.pid, SIGKILL, EXIT_MS);
	g.gc.pid = 0;
	for (i = 0; i < NEM_MOUNTS; i++)
		unmount(&g.mounts[i]);
	for (i = 0; i < NODES; i++) {
		if (g.nodes[i].pid > 0)
			nem_stop(g.nodes[i].pid, SIGKILL, EXIT_MS);
		g.nodes[i].pid = 0;
	}
	if (!g.tmp[0])
		goto out_unlock;
	if (g.keep)
		printf("nemesis: kept %s\n", g.tmp);
	else if (nem_rmtree(g.tmp))
		fprintf(stderr, "nemesis: could not remove all of %s\n", g.tmp);
out_unlock:
	pthread_mutex_unlock(&g.cleanup_lock);
}

static void *signals(void *arg)
{
	sigset_t *set = arg;
	int sig, n = 0;

	for (;;) {
		if (sigwait(set, &sig))
			continue;
		if (n++ == 0) {
			fprintf(stderr, "nemesis: %s, stopping\n", strsignal(sig));
			g.interrupted = true;
			continue;
		}
		cleanup();
		_exit(2);
	}
	return NULL;
}

static void *watchdog(void *arg)
{
	struct timespec end;

	(void)arg;
	clock_gettime(CLOCK_REALTIME, &end);
	end.tv_sec += g.limit_s;
	pthread_mutex_lock(&g.done_lock);
	while (!g.done)
		if (pthread_cond_timedwait(&g.done_cond, &g.done_lock, &end) == ETIMEDOUT)
			break;
	if (!g.done) {
		fprintf(stderr, "nemesis: FAIL: still running %u s after the start: hung\n",
			g.limit_s);
		cleanup();
		_exit(3);
	}
	pthread_mutex_unlock(&g.done_lock);
	return NULL;
}

static void watchdog_done(void)
{
	pthread_mutex_lock(&g.done_lock);
	g.done = true;
	pthread_cond_broadcast(&g.done_cond);
	pthread_mutex_unlock(&g.done_lock);
}

/* --- nodes --- */

/* A free port on 127.0.0.1 below the ephemeral range, so that no outgoing
 * connection takes it while its node is down. */
static unsigned pick_port(uint64_t *rng)
{
	unsigned lo = 32768, hi = 60999, port, tries;
	struct sockaddr_in a;
	FILE *f;
	int fd, one = 1;

	f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
	if (f) {
		if (fscanf(f, "%u %u", &lo, &hi) != 2)
			lo = 32768;
		fclose(f);
	}
	if (lo < 2048)
		lo = 2048;
	for (tries = 0; tries < 1000; tries++) {
		port = between(rng, lo / 2, lo - 1);
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return 0;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_port = htons((uint16_t)port);
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
			close(fd);
			return port;
		}
		close(fd);
	}
	return 0;
}

/* Starts node i's casd on its port and waits for its port file. Retries
 * while casd exits at once (its port still held), up to START_MS. */
static int node_spawn(unsigned i)
{
	struct node *n = &g.nodes[i];
	char casd[PATH_MAX], listen[32];
	unsigned long long end = nem_now_ms() + START_MS;
	char *argv[] = {casd,
			"--listen",
			listen,
			"--data",
			n->dir,
			"--port-file",
			n->port_file,
			"--tls-cert",
			g.tls[T_NODE_CRT],
			"--tls-key",
			g.tls[T_NODE_KEY],
			"--tls-ca",
			g.tls[T_CA],
			"--token-file",
			g.tls[T_TOKEN],
			NULL};
	unsigned port;

	if (!g.tls[T_CA][0])
		argv[7] = NULL; /* no --tls */
	snprintf(casd, sizeof(casd), "%s/casd", g.bin);
	snprintf(listen, sizeof(listen), "127.0.0.1:%u", n->port);
	while (nem_now_ms() < end && !g.interrupted) {
		unlink(n->port_file);
		n->pid = nem_spawn(argv, n->log, SIGKILL);
		if (n->pid < 0) {
			n->pid = 0;
			fprintf(stderr, "nemesis: cannot start %s: %s\n", casd, strerror(errno));
			return -1;
		}
		n->paused = false;
		while (nem_now_ms() < end) {
			if (nem_read_port(n->port_file, &port)) {
				if (port != n->port) {
					fprintf(stderr, "nemesis: n%u listens on %u, not %u\n", i,
						port, n->port);
					return -1;
				}
				return 0;
			}
			if (!nem_alive(n->pid, NULL)) {
				n->pid = 0;
				break;
			}
			nem_nap(10, NULL);
		}
		if (n->pid)
			break;
		nem_nap(100, &g.interrupted);
	}
	fprintf(stderr, "nemesis: n%u did not start on port %u (see its log)\n", i, n->port);
	return -1;
}

/* Whether node i answers GET /v1/config: with its configuration, or
 * that it is not initialized. */
static bool node_answers(unsigned i)
{
	struct cas_cluster_config cfg;
	enum cas_node_state st;
	char url[64];

	snprintf(url, sizeof(url), "%s://127.0.0.1:%u", g.scheme, g.nodes[i].port);
	if (cas_admin_get_config(url, g.auth_loaded, 1000, &st, &cfg, NULL, NULL, 0) != CAS_OK)
		return false;
	cas_cluster_config_clear(&cfg);
	return st == CAS_NODE_READY || st == CAS_NODE_UNINITIALIZED;
}

static int node_wait_healthy(unsigned i)
{
	unsigned long long end = nem_now_ms() + START_MS;

	while (nem_now_ms() < end) {
		/* Up: it answers, initialized or not yet (casctl init). */
		if (node_answers(i))
			return 0;
		if (g.nodes[i].pid == 0 || !nem_alive(g.nodes[i].pid, NULL))
			break;
		nem_nap(20, NULL);
	}
	fprintf(stderr, "nemesis: n%u does not answer /v1/health\n", i);
	return -1;
}

static int node_restart(unsigned i)
{
	if (node_spawn(i) || node_wait_healthy(i))
		return -1;
	return 0;
}

static int node_kill(unsigned i)
{
	struct node *n = &g.nodes[i];

	if (!nem_stop(n->pid, SIGKILL, EXIT_MS)) {
		fprintf(stderr, "nemesis: n%u (pid %d) did not die\n", i, (int)n->pid);
		return -1;
	}
	n->pid = 0;
	n->paused = false;
	return 0;
}

static void node_pause(unsigned i, bool on)
{
	struct node *n = &g.nodes[i];

	kill(n->pid, on ? SIGSTOP : SIGCONT);
	n->paused = on;
}

/* The proxies' URLs of the nodes in mask (bit i: node i), comma-separated. */
static void proxy_urls(char *buf, size_t len, unsigned mask)
{
	size_t used = 0;
	unsigned i;

	buf[0] = '\0';
	for (i = 0; i < NODES; i++)
		if (mask & (1u << i))
			used += (size_t)snprintf(buf + used, len - used, "%s%s://127.0.0.1:%u",
						 used ? "," : "", g.scheme,
						 nem_proxy_port(g.nodes[i].proxy));
}

/* argv for casctl --nodes NODES [TLS options] and the n words of cmd:
 * argv needs room for 12 + n entries, casctl_path for the program. */
static void casctl_argv(char **argv, char *casctl_path, size_t path_len, char *nodes,
			char *const *cmd, unsigned n)
{
	unsigned k = 0, i;

	snprintf(casctl_path, path_len, "%s/casctl", g.bin);
	argv[k++] = casctl_path;
	argv[k++] = "--nodes";
	argv[k++] = nodes;
	if (g.tls[T_CA][0]) {
		argv[k++] = "--tls-ca";
		argv[k++] = g.tls[T_CA];
		argv[k++] = "--tls-cert";
		argv[k++] = g.tls[T_CLIENT_CRT];
		argv[k++] = "--tls-key";
		argv[k++] = g.tls[T_CLIENT_KEY];
		argv[k++] = "--token-file";
		argv[k++] = g.tls[T_TOKEN];
	}
	for (i = 0; i < n; i++)
		argv[k++] = cmd[i];
	argv[k] = NULL;
}

/* Starts the nodes (the spare too) and their proxies, and makes nodes
 * 0..MEMBERS-1 a cluster with casctl init, through the proxies: the
 * members' URLs are the proxies', so that every client, casctl included,
 * reaches every member through its proxy. */
static int start_cluster(uint64_t *rng)
{
	char urls[256] = "", *p = urls, purls[256], casctl[PATH_MAX], *argv[24];
	char *init[] = {"init"};
	struct cas_client_config cfg = {.auth = g.auth};
	unsigned i, tries;
	char err[256];

	for (i = 0; i < NODES; i++) {
		struct node *n = &g.nodes[i];

		snprintf(n->dir, sizeof(n->dir), "%s/n%u", g.tmp, i);
		snprintf(n->port_file, sizeof(n->port_file), "%s/n%u.port", g.tmp, i);
		snprintf(n->log, sizeof(n->log), "%s/n%u.log", g.tmp, i);
		for (tries = 0; tries < 5; tries++) {
			n->port = pick_port(rng);
			if (n->port && node_spawn(i) == 0)
				break;
			n->port = 0;
		}
		if (!n->port)
			return -1;
		p += sprintf(p, "%s%s://127.0.0.1:%u", i ? "," : "", g.scheme, n->port);
	}
	if (cas_client_open(urls, &cfg, &g.direct, err, sizeof(err))) {
		fprintf(stderr, "nemesis: client on %s: %s\n", urls, err);
		return -1;
	}
	for (i = 0; i < NODES; i++)
		if (node_wait_healthy(i))
			return -1;
	for (i = 0; i < NODES; i++) {
		if (nem_proxy_start((uint16_t)g.nodes[i].port, &g.nodes[i].proxy, err,
				    sizeof(err))) {
			fprintf(stderr, "nemesis: proxy for n%u: %s\n", i, err);
			return -1;
		}
	}
	/* One cluster, with its filesystem root: casctl init, as people do. */
	proxy_urls(purls, sizeof(purls), (1u << MEMBERS) - 1);
	casctl_argv(argv, casctl, sizeof(casctl), purls, init, 1);
	if (nem_run(argv, g.ctl_log, START_MS) != 0) {
		fprintf(stderr, "nemesis: casctl init %s failed (see %s)\n", purls, g.ctl_log);
		return -1;
	}
	for (i = 0; i < MEMBERS; i++)
		g.nodes[i].member = true;
	return 0;
}

static int mount_one(unsigned m, const char *urls)
{
	struct mount *mt = &g.mounts[m];
	char casfs[PATH_MAX], opts[512 + 4 * PATH_MAX + 64];
	char *argv[] = {casfs, "-f", "-o", opts, mt->dir, NULL};
	unsigned long long end = nem_now_ms() + START_MS;

	snprintf(mt->dir, sizeof(mt->dir), "%s/m%u", g.tmp, m);
	if (mkdir(mt->dir, 0755)) {
		fprintf(stderr, "nemesis: mkdir %s: %s\n", mt->dir, strerror(errno));
		return -1;
	}
	snprintf(casfs, sizeof(casfs), "%s/casfs", g.bin);
	snprintf(opts, sizeof(opts), "nodes=%s,timeout=%u", urls, MOUNT_TIMEOUT_S);
	if (g.tls[T_CA][0])
		snprintf(opts + strlen(opts), sizeof(opts) - strlen(opts),
			 ",tls_ca=%s,tls_cert=%s,tls_key=%s,token_file=%s", g.tls[T_CA],
			 g.tls[T_CLIENT_CRT], g.tls[T_CLIENT_KEY], g.tls[T_TOKEN]);
	/* SIGTERM when we die: casfs then unmounts itself. */
	mt->pid = nem_spawn(argv, g.log, SIGTERM);
	if (mt->pid < 0) {
		mt->pid = 0;
		fprintf(stderr, "nemesis: cannot start %s: %s\n", casfs, strerror(errno));
		return -1;
	}
	while (nem_now_ms() < end) {
		if (nem_mounted(mt->dir))
			return 0;
		if (!nem_alive(mt->pid, NULL)) {
			mt->pid = 0;
			break;
		}
		nem_nap(10, NULL);
	}
	fprintf(stderr, "nemesis: casfs did not mount %s (see its log)\n", mt->dir);
	return -1;
}

/* --- the schedule --- */

/* Stops node i and empties its data folder; with keep_identity, puts its
 * identity file back alone (the negative control: a member that lost its
 * data but still claims its place). Then starts it again on its port. */
static int node_wipe(unsigned i, bool keep_identity)
{
	struct node *n = &g.nodes[i];
	char path[PATH_MAX + 32], *id = NULL;
	size_t len = 0;
	FILE *f;
	int rc = -1;

	if (n->pid && node_kill(i))
		return -1;
	if (keep_identity) {
		snprintf(path, sizeof(path), "%s/identity.json", n->dir);
		f = fopen(path, "re");
		if (!f) {
			fprintf(stderr, "nemesis: %s: %s\n", path, strerror(errno));
			return -1;
		}
		id = malloc(1 << 16);
		if (id)
			len = fread(id, 1, 1 << 16, f);
		fclose(f);
		if (!id || len == 0 || len == 1 << 16) {
			fprintf(stderr, "nemesis: cannot read %s\n", path);
			goto out_free;
		}
	}
	if (nem_rmtree(n->dir)) {
		fprintf(stderr, "nemesis: cannot empty %s\n", n->dir);
		goto out_free;
	}
	if (keep_identity) {
		if (mkdir(n->dir, 0700)) {
			fprintf(stderr, "nemesis: mkdir %s: %s\n", n->dir, strerror(errno));
			goto out_free;
		}
		f = fopen(path, "we");
		if (!f || fwrite(id, 1, len, f) != len) {
			fprintf(stderr, "nemesis: cannot write %s\n", path);
			if (f)
				fclose(f);
			goto out_free;
		}
		if (fclose(f))
			goto out_free;
	}
	rc = node_restart(i);
out_free:
	free(id);
	return rc;
}

/* Appends a line to casctl's log, to tell its runs apart. */
__attribute__((format(printf, 1, 2))) static void log_line(const char *fmt, ...)
{
	FILE *f = fopen(g.ctl_log, "ae");
	va_list ap;

	if (!f)
		return;
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fclose(f);
}

/* casctl.log's size now, or 0. */
static long log_size(void)
{
	struct stat st;

	return stat(g.ctl_log, &st) ? 0 : (long)st.st_size;
}

/* Prints what casctl.log got from offset from on (at most 30 lines,
 * those of member runs left out), each line after prefix. */
static void show_log(long from, const char *prefix)
{
	char line[512];
	unsigned n = 0;
	FILE *f = fopen(g.ctl_log, "re");

	if (!f)
		return;
	if (fseek(f, from, SEEK_SET) == 0)
		while (n < 30 && fgets(line, sizeof(line), f))
			if (strncmp(line, "casctl: member", 14) && strncmp(line, "epoch ", 6) &&
			    !strstr(line, "casctl member")) {
				printf("nemesis:   %s %s", prefix, line);
				n++;
			}
	fclose(f);
}

static const char *const mstep_names[] = {"replace", "add", "remove", "wipe"};

static void mstep_say(const struct mstep *st, char *buf, size_t len)
{
	switch (st->kind) {
	case MS_REPLACE:
		snprintf(buf, len, "member replace n%u n%u", st->a, st->b);
		break;
	case MS_ADD:
		snprintf(buf, len, "member add n%u", st->b);
		break;
	default:
		snprintf(buf, len, "member %s n%u", mstep_names[st->kind], st->a);
	}
}

/* Starts casctl for the current step. Its node list is the members'
 * proxies, as an operator gives it; a run killed after it joined the new
 * node, but before any member took the joint configuration, is resumed
 * from the new node's joint configuration. With --ctl-all, every node's
 * proxy, the spare's too. */
static int member_spawn(void)
{
	struct mstep *st = &g.mc.steps[g.mc.cur];
	char nodes[512], casctl[PATH_MAX], a[64], b[64], *argv[24], what[64];
	char *cmd[] = {"member", (char *)mstep_names[st->kind], a, b};
	unsigned n = 3, i, mask = 0;

	for (i = 0; i < NODES; i++)
		if (g.ctl_all || g.nodes[i].member)
			mask |= 1u << i;
	proxy_urls(nodes, sizeof(nodes), mask);
	snprintf(a, sizeof(a), "%s://127.0.0.1:%u", g.scheme,
		 nem_proxy_port(g.nodes[st->kind == MS_ADD ? st->b : st->a].proxy));
	if (st->kind == MS_REPLACE) {
		snprintf(b, sizeof(b), "%s://127.0.0.1:%u", g.scheme,
			 nem_proxy_port(g.nodes[st->b].proxy));
		n = 4;
	}
	casctl_argv(argv, casctl, sizeof(casctl), nodes, cmd, n);
	mstep_say(st, what, sizeof(what));
	log_line("[%7.2f] casctl %s (run %u):", (double)(nem_now_ms() - g.t0) / 1000.0, what,
		 g.mc.runs + 1);
	g.mc.pid = nem_spawn(argv, g.ctl_log, SIGKILL);
	if (g.mc.pid < 0) {
		g.mc.pid = 0;
		fprintf(stderr, "nemesis: cannot start %s: %s\n", casctl, strerror(errno));
		return -1;
	}
	g.mc.spawned = nem_now_ms();
	g.mc.runs++;
	g.ctl_runs++;
	/* Kill it at a random point: every run until one was killed (20-150
	 * ms in: a run that fails without a majority ends in about 100 ms),
	 * then half of the first runs of a step and a quarter of the others
	 * (5-400 ms in). */
	g.mc.kill_at = 0;
	if (!g.mc.calm && g.mc.kills < STEP_KILLS && g.ctl_killed == 0)
		g.mc.kill_at = g.mc.spawned + between(&g.mc.rng, 20, 150);
	else if (!g.mc.calm && g.mc.kills < STEP_KILLS &&
		 rnd(&g.mc.rng) % (g.mc.runs == 1 ? 2 : 4) == 0)
		g.mc.kill_at = g.mc.spawned + between(&g.mc.rng, 5, 400);
	say("casctl %s (run %u)%s", what, g.mc.runs, g.mc.kill_at ? ", to be killed mid-way" : "");
	return 0;
}

/* A membership change: the spare replaces a member, or joins and then a
 * member leaves; the node that left is wiped and becomes the spare. */
static void member_start(void)
{
	unsigned spare = NODES, olds[NODES], n = 0, i, x;

	for (i = 0; i < NODES; i++) {
		if (!g.nodes[i].member)
			spare = i;
		else
			olds[n++] = i;
	}
	if (spare == NODES || n == 0)
		return;
	x = olds[rnd(&g.mc.rng) % n];
	if (rnd(&g.mc.rng) % 3 == 0) {
		g.mc.steps[0] = (struct mstep){MS_ADD, 0, spare};
		g.mc.steps[1] = (struct mstep){MS_REMOVE, x, 0};
		g.mc.steps[2] = (struct mstep){MS_WIPE, x, 0};
		g.mc.nsteps = 3;
	} else {
		g.mc.steps[0] = (struct mstep){MS_REPLACE, x, spare};
		g.mc.steps[1] = (struct mstep){MS_WIPE, x, 0};
		g.mc.nsteps = 2;
	}
	say("membership change %u: %s n%u, then wipe n%u (the next spare)", g.changes + 1,
	    g.mc.nsteps == 3 ? "add the spare, remove" : "the spare replaces", x, x);
	g.mc.cur = 0;
	g.mc.active = true;
	g.mc.calm = false;
	g.mc.pid = 0;
	g.mc.runs = g.mc.kills = 0;
	g.mc.retry_at = 0;
	g.mc.step_start = nem_now_ms();
}

/* Moves the membership change on: starts, kills, reaps and runs casctl
 * again, wipes the node that left, wakes the stale clients at the end.
 * Called every 20 ms from the schedule. 0, or -1 when a step took longer
 * than STEP_MS (the run fails). */
static int member_poll(void)
{
	struct mstep *st;
	unsigned long long now = nem_now_ms();
	char what[64];
	int status;

	if (!g.mc.active)
		return 0;
	st = &g.mc.steps[g.mc.cur];
	mstep_say(st, what, sizeof(what));
	if (now - g.mc.step_start > STEP_MS) {
		printf("nemesis: FAIL: %s did not complete in %u s (%u runs of casctl; see %s)\n",
		       what, STEP_MS / 1000, g.mc.runs, g.ctl_log);
		return -1;
	}
	if (st->kind == MS_WIPE) {
		if ((int)st->a == g.fault_node)
			return 0; /* after the fault on it */
		say("wipe n%u: it left; it comes back empty, the next spare", st->a);
		if (node_wipe(st->a, false))
			return -1;
		goto out_next;
	}
	if (g.mc.pid == 0) {
		if (now >= g.mc.retry_at && member_spawn())
			return -1;
		return 0;
	}
	if (nem_alive(g.mc.pid, &status)) {
		if (g.mc.kill_at && now >= g.mc.kill_at) {
			nem_stop(g.mc.pid, SIGKILL, EXIT_MS);
			g.mc.pid = 0;
			g.mc.kills++;
			g.ctl_killed++;
			say("casctl %s killed after %llu ms: run it again", what,
			    now - g.mc.spawned);
			g.mc.retry_at = now + between(&g.mc.rng, 20, 500);
		}
		return 0;
	}
	g.mc.pid = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		g.ctl_failed++;
		say("casctl %s exited %d after %llu ms (see casctl.log): run it again", what,
		    WIFEXITED(status) ? WEXITSTATUS(status) : -1, now - g.mc.spawned);
		g.mc.retry_at = now + between(&g.mc.rng, 100, 500);
		return 0;
	}
	say("casctl %s done (run %u)", what, g.mc.runs);
	if (st->kind == MS_REPLACE || st->kind == MS_REMOVE)
		g.nodes[st->a].member = false;
	if (st->kind == MS_REPLACE || st->kind == MS_ADD)
		g.nodes[st->b].member = true;
out_next:
	g.mc.runs = g.mc.kills = 0;
	g.mc.retry_at = 0;
	g.mc.step_start = nem_now_ms();
	if (++g.mc.cur < g.mc.nsteps)
		return 0;
	g.mc.active = false;
	g.changes++;
	/* Stale client 0 slept through this change, client 1 through two. */
	say("membership change %u done; waking stale-configuration client%s", g.changes,
	    g.changes % 2 ? " 0" : "s 0 and 1");
	nem_work_stale_wake(g.work, 0);
	if (g.changes % 2 == 0)
		nem_work_stale_wake(g.work, 1);
	return 0;
}

/* Whether $CAS_BIN/casctl has the gc command (its --help says so). */
static bool casctl_has_gc(void)
{
	char casctl[PATH_MAX], help[PATH_MAX], line[256];
	char *argv[] = {casctl, "--help", NULL};
	bool has = false;
	FILE *f;

	snprintf(casctl, sizeof(casctl), "%s/casctl", g.bin);
	snprintf(help, sizeof(help), "%s/casctl-help.txt", g.tmp);
	if (nem_run(argv, help, EXIT_MS) != 0)
		return false;
	f = fopen(help, "re");
	if (!f)
		return false;
	while (!has && fgets(line, sizeof(line), f))
		has = strncmp(line, "  gc ", 5) == 0;
	fclose(f);
	return has;
}

/* Runs casctl gc --grace GC_GRACE now and then, in the background, so
 * that purges meet faults, membership changes and the clients' deletes;
 * its outcome is only counted (a node that is down stops a purge: exit
 * 4). With stop, starts no more of them; with now, one at once. */
static void gc_poll(bool stop, bool at_once)
{
	char nodes[512], casctl[PATH_MAX], *argv[24];
	char *cmd[] = {"gc", "--grace", GC_GRACE};
	unsigned long long now = nem_now_ms();
	int status;

	if (!g.gc.on)
		return;
	if (g.gc.pid) {
		if (nem_alive(g.gc.pid, &status))
			return;
		g.gc.pid = 0;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			g.gc.ok++;
		} else {
			g.gc.failed++;
			say("casctl gc exited %d (see casctl.log)",
			    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 4)
				show_log(g.gc.log_at, "gc:");
		}
		g.gc.next_at = now + between(&g.gc.rng, 500, 3000);
		return;
	}
	if (stop || (now < g.gc.next_at && !at_once))
		return;
	proxy_urls(nodes, sizeof(nodes), (1u << NODES) - 1);
	casctl_argv(argv, casctl, sizeof(casctl), nodes, cmd, 3);
	log_line("[%7.2f] casctl gc --grace %s:", (double)(now - g.t0) / 1000.0, GC_GRACE);
	g.gc.log_at = log_size();
	g.gc.pid = nem_spawn(argv, g.ctl_log, SIGKILL);
	if (g.gc.pid < 0) {
		g.gc.pid = 0;
		g.gc.on = false;
		say("cannot start casctl gc: %s", strerror(errno));
		return;
	}
	g.gc.runs++;
	say("casctl gc --grace %s (run %u)", GC_GRACE, g.gc.runs);
}

/* Naps ms, moving the membership change and the collector on meanwhile. */
static int nap(unsigned ms)
{
	unsigned long long end = nem_now_ms() + ms, now;

	while (!g.interrupted) {
		gc_poll(false, false);
		if (member_poll())
			return -1;
		now = nem_now_ms();
		if (now >= end)
			break;
		nem_nap(end - now < 20 ? (unsigned)(end - now) : 20, &g.interrupted);
	}
	return 0;
}

/* Drives the membership change under way to its end, casctl no longer
 * killed (before a phase without a majority, and at the end). */
static int member_settle(void)
{
	if (!g.mc.active)
		return 0;
	say("let the membership change finish");
	g.mc.calm = true;
	while (g.mc.active && !g.interrupted)
		if (nap(20))
			return -1;
	return 0;
}

/* Brings every node back: running, not paused, its proxy passing. */
static int heal_all(void)
{
	unsigned i;
	int rc = 0;

	for (i = 0; i < NODES; i++) {
		struct node *n = &g.nodes[i];

		if (nem_proxy_set(n->proxy, NEM_PROXY_PASS, 0))
			rc = -1;
		if (n->paused)
			node_pause(i, false);
		if (!n->pid && node_restart(i))
			rc = -1;
	}
	for (i = 0; i < NODES && !rc; i++)
		rc = node_wait_healthy(i);
	return rc;
}

/* One fault on one node for dur ms, then its repair. While casctl runs,
 * half the faults are a crash of a node the change is about. */
static int single_fault(uint64_t *rng, unsigned dur)
{
	unsigned i = between(rng, 0, NODES - 1), kind = between(rng, 0, F_KINDS - 1), ms;
	struct node *n;
	unsigned long long end;
	int rc = 0;

	if (g.mc.active && g.mc.pid && g.mc.steps[g.mc.cur].kind != MS_WIPE && rnd(rng) % 2 == 0) {
		const struct mstep *st = &g.mc.steps[g.mc.cur];

		i = st->kind == MS_ADD			       ? st->b
		    : (rnd(rng) % 2 && st->kind == MS_REPLACE) ? st->b
							       : st->a;
		kind = F_KILL;
		g.crash_mid_change++;
	}
	n = &g.nodes[i];
	g.faults[kind]++;
	g.fault_node = (int)i;
	switch (kind) {
	case F_KILL:
		say("kill n%u, restart after %u ms", i, dur);
		if (node_kill(i))
			return -1;
		rc = nap(dur);
		if (node_restart(i))
			rc = -1;
		break;
	case F_PAUSE:
		say("pause n%u (SIGSTOP) for %u ms", i, dur);
		node_pause(i, true);
		rc = nap(dur);
		node_pause(i, false);
		break;
	case F_CUT:
		say("cut n%u's connections every 50-400 ms for %u ms", i, dur);
		end = nem_now_ms() + dur;
		do {
			if (nem_proxy_cut(n->proxy))
				return -1;
			rc = nap(between(rng, 50, 400));
		} while (!rc && nem_now_ms() < end && !g.interrupted);
		break;
	case F_DELAY:
		ms = between(rng, 5, 300);
		say("delay n%u by %u ms each way for %u ms", i, ms, dur);
		if (nem_proxy_set(n->proxy, NEM_PROXY_DELAY, ms))
			return -1;
		rc = nap(dur);
		if (nem_proxy_set(n->proxy, NEM_PROXY_PASS, 0))
			rc = -1;
		break;
	default:
		say("blackhole n%u for %u ms", i, dur);
		if (nem_proxy_set(n->proxy, NEM_PROXY_BLACKHOLE, 0))
			return -1;
		rc = nap(dur);
		if (nem_proxy_set(n->proxy, NEM_PROXY_PASS, 0))
			rc = -1;
		break;
	}
	g.fault_node = -1;
	return rc;
}

/* A phase without a majority, in the history's clock. */
struct window {
	uint64_t from;
	uint64_t to;
};

/* Two members out (one killed, one blackholed) for WINDOW_MS: no
 * majority. No membership change runs meanwhile (member_settle). */
static int two_down(uint64_t *rng, const struct nem_work *w, struct window *win)
{
	unsigned m[NODES], n = 0, i, a, b;

	for (i = 0; i < NODES; i++)
		if (g.nodes[i].member)
			m[n++] = i;
	a = between(rng, 0, n - 1);
	b = m[(a + between(rng, 1, n - 1)) % n];
	a = m[a];
	g.two_down++;
	say("no majority: kill n%u and blackhole n%u for %u ms", a, b, WINDOW_MS);
	if (node_kill(a) || nem_proxy_set(g.nodes[b].proxy, NEM_PROXY_BLACKHOLE, 0))
		return -1;
	win->from = nem_work_now(w);
	nem_nap(WINDOW_MS, &g.interrupted);
	win->to = nem_work_now(w);
	say("majority back: n%u passes, n%u restarts", b, a);
	if (nem_proxy_set(g.nodes[b].proxy, NEM_PROXY_PASS, 0))
		return -1;
	return node_restart(a);
}

/* The negative control "empty-node" (issue #12, scenario 1, with the
 * safeguard taken away): member a misses writes; then member b loses its
 * data but keeps its identity file, and with a (stale) forms the majority
 * while c, which has the writes, is down. A read then returns a value
 * older than an acknowledged write. */
static int empty_node(uint64_t *rng)
{
	unsigned a = between(rng, 0, MEMBERS - 1), b = (a + 1) % MEMBERS, c = (a + 2) % MEMBERS;

	say("broken: kill n%u; writes go on without it", a);
	if (node_kill(a))
		return -1;
	nem_nap(1500, &g.interrupted);
	say("broken: kill n%u and n%u; n%u comes back with its identity file alone, n%u as it "
	    "was",
	    c, b, b, a);
	if (node_kill(c) || node_wipe(b, true) || node_restart(a))
		return -1;
	nem_nap(2500, &g.interrupted);
	say("broken: n%u restarts", c);
	return node_restart(c);
}

/* How many phases without a majority a run of seconds has: one in the
 * middle of each minute, or one in the middle of a short run. */
static unsigned windows_of(unsigned seconds)
{
	return seconds >= 120 ? seconds / 60 : 1;
}

/* Runs single faults until the end of the run, with windows_of(seconds)
 * phases without a majority (win[], filled) in the middles of equal
 * slices of it, and membership changes in the gaps, then heals
 * everything. *nwin gets the phases that ran. */
static int run_schedule(uint64_t seed, unsigned seconds, const struct nem_work *w,
			struct window *win, unsigned *nwin, bool broken_empty)
{
	unsigned long long start = nem_now_ms(), end = start + seconds * 1000ull, slice, next;
	unsigned long long next_change = start + 500, gc_end;
	unsigned n = windows_of(seconds), k = 0, dur;
	uint64_t rng = seed;

	g.mc.rng = seed * 0x2545f4914f6cdd1dull + 1;
	g.gc.rng = seed * 0x9e3779b97f4a7c15ull + 7;
	g.gc.next_at = start + between(&g.gc.rng, 1000, 3000);
	slice = seconds * 1000ull / n;
	*nwin = 0;
	if (nap(500))
		return -1;
	if (broken_empty && empty_node(&rng))
		return -1;
	while (!g.interrupted) {
		unsigned long long now = nem_now_ms();

		/* The next phase's start, or the end of the faults. */
		next = k < n ? start + k * slice + slice / 2 - WINDOW_MS / 2 : end - 1500;
		if (g.changes_on && !g.mc.active && now >= next_change &&
		    now + CHANGE_ROOM_MS < next) {
			member_start();
			next_change = UINT64_MAX;
		}
		if (!g.mc.active && next_change == UINT64_MAX)
			next_change = now + between(&rng, 1000, 4000);
		if (k < n && now + 1000 >= next) {
			if (member_settle() || two_down(&rng, w, &win[k]))
				return -1;
			*nwin = ++k;
			next_change = nem_now_ms() + between(&rng, 500, 2000);
		} else if (now + 1500 >= end) {
			break;
		} else {
			dur = between(&rng, 300, 2000);
			if (now + dur > next)
				dur = next > now + 300 ? (unsigned)(next - now) : 300;
			if (single_fault(&rng, dur))
				return -1;
		}
		if (nap(between(&rng, 100, 800)))
			return -1;
	}
	say("heal everything");
	if (heal_all() || member_settle())
		return -1;
	/* One more run of the collector on the healed cluster, the clients
	 * still running: with every node up, purges go through. */
	gc_end = nem_now_ms() + GC_END_MS;
	while (g.gc.pid && nem_now_ms() < gc_end && !g.interrupted) {
		gc_poll(true, false);
		nem_nap(20, &g.interrupted);
	}
	gc_poll(false, true);
	while (g.gc.pid && nem_now_ms() < gc_end && !g.interrupted) {
		gc_poll(true, false);
		nem_nap(20, &g.interrupted);
	}
	if (g.gc.pid) {
		printf("nemesis: FAIL: casctl gc still runs %u s after healing\n",
		       GC_END_MS / 1000);
		return -1;
	}
	return 0;
}

/* --- checks --- */

static const char *const group_names[NEM_GROUPS] = {"library", "mount 0", "mount 1"};

/* Calls that took longer than their deadline allows, and the phases
 * without a majority: nothing may succeed in one, and in each every client
 * must see failures come (no hang). */
static int check_records(const struct nem_work *w, const struct window *win, unsigned nwin)
{
	uint64_t longest[NEM_GROUPS] = {0};
	unsigned slow = 0, k, gr;
	int rc = 0;
	size_t i;

	for (i = 0; i < w->nrecs; i++) {
		const struct nem_rec *r = &w->recs[i];
		uint64_t bound = (r->group == NEM_LIB ? LIB_BOUND_MS : FILE_BOUND_MS) * 1000000ull;

		if (r->longest > longest[r->group])
			longest[r->group] = r->longest;
		if (r->longest > bound)
			slow++;
	}
	for (gr = 0; gr < NEM_GROUPS; gr++)
		printf("nemesis: longest call of %s: %.2f s (bound %.1f s): %s\n", group_names[gr],
		       longest[gr] / 1e9, (gr == NEM_LIB ? LIB_BOUND_MS : FILE_BOUND_MS) / 1e3,
		       w->slowest_what[gr]);
	if (slow) {
		printf("nemesis: FAIL: %u calls outlived their deadline (a hang)\n", slow);
		rc = -1;
	}
	for (k = 0; k < nwin; k++) {
		uint64_t failed_in[NEM_GROUPS] = {0}, in = 0, ok_in = 0;

		for (i = 0; i < w->nrecs; i++) {
			const struct nem_rec *r = &w->recs[i];

			if (r->invoke >= win[k].from && r->complete <= win[k].to) {
				in++;
				if (r->status == CAS_HIST_OK || r->status == CAS_HIST_MISMATCH)
					ok_in++;
			}
			if (r->complete >= win[k].from && r->complete <= win[k].to &&
			    (r->status == CAS_HIST_UNKNOWN || r->status == CAS_HIST_FAILED))
				failed_in[r->group]++;
		}
		printf("nemesis: no-majority phase %u (%.2f s): %" PRIu64 " ops inside it, %" PRIu64
		       " answered; failures seen by library %" PRIu64 ", mount 0 %" PRIu64
		       ", mount 1 %" PRIu64 "\n",
		       k + 1, (double)(win[k].to - win[k].from) / 1e9, in, ok_in,
		       failed_in[NEM_LIB], failed_in[NEM_MOUNT0], failed_in[NEM_MOUNT1]);
		if (ok_in) {
			printf("nemesis: FAIL: %" PRIu64
			       " operations succeeded without a majority\n",
			       ok_in);
			rc = -1;
		}
		for (gr = 0; gr < NEM_GROUPS; gr++) {
			if (!failed_in[gr]) {
				printf("nemesis: FAIL: %s saw no failure without a majority "
				       "(hung?)\n",
				       group_names[gr]);
				rc = -1;
			}
		}
	}
	return rc;
}

/* Checks h; on a violation prints why and writes h to DIR/nemesis-SEED-NAME.hist. */
static int check_history(const struct cas_history *h, const char *name, const char *out_dir,
			 uint64_t seed)
{
	static char why[8192];
	char path[PATH_MAX], abs[PATH_MAX];
	bool ok = false;
	FILE *f;
	int rc;

	rc = cas_history_check(h, &ok, why, sizeof(why));
	if (rc == CAS_OK && ok) {
		printf("nemesis: %s history of %zu ops is linearizable\n", name,
		       cas_history_count(h));
		return 0;
	}
	printf("nemesis: FAIL: %s history of %zu ops is %s:\n%s\n", name, cas_history_count(h),
	       rc == CAS_OK ? "not linearizable" : "too big to check", why);
	snprintf(path, sizeof(path), "%s/nemesis-%" PRIu64 "-%s.hist", out_dir, seed, name);
	f = fopen(path, "we");
	if (!f || cas_history_write(h, f) != CAS_OK) {
		fprintf(stderr, "nemesis: cannot write %s: %s\n", path, strerror(errno));
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	printf("nemesis: history written to %s (check it with histcheck)\n",
	       realpath(path, abs) ? abs : path);
	return -1;
}

/* The keys casctl gc said it purged, from the summaries in its log
 * ("gc: ... N purged, ..."). */
static unsigned gc_purged(void)
{
	char line[512], *p;
	unsigned n = 0, k;
	FILE *f = fopen(g.ctl_log, "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "gc: ", 4))
			continue;
		p = strstr(line, " purged");
		if (!p)
			continue;
		while (p > line && p[-1] >= '0' && p[-1] <= '9')
			p--;
		if (sscanf(p, "%u", &k) == 1)
			n += k;
	}
	fclose(f);
	return n;
}

static void print_counts(const struct nem_work *w)
{
	struct nem_proxy_stats st;
	uint64_t resets = 0, accepted = 0;
	unsigned i;

	for (i = 0; i < NEM_GROUPS; i++) {
		const struct nem_counts *c = &w->counts[i];

		printf("nemesis: %-7s %6" PRIu64 " ops: %" PRIu64 " ok, %" PRIu64
		       " mismatch, %" PRIu64 " unknown, %" PRIu64 " failed (%" PRIu64 " EIO)\n",
		       group_names[i], c->ops, c->ok, c->mismatch, c->unknown, c->failed, c->eio);
	}
	printf("nemesis: library: %" PRIu64 " operations by stale-configuration clients, %" PRIu64
	       " on the cool keys; %" PRIu64 " deletes succeeded\n",
	       w->stale_ops, w->cool_ops, w->deletes_ok);
	for (i = 0; i < NODES; i++) {
		nem_proxy_stats(g.nodes[i].proxy, &st);
		resets += st.resets;
		accepted += st.accepted;
	}
	printf("nemesis: faults: %u kill, %u pause, %u cut, %u delay, %u blackhole, %u "
	       "no-majority; proxies: %" PRIu64 " connections, %" PRIu64 " reset\n",
	       g.faults[F_KILL], g.faults[F_PAUSE], g.faults[F_CUT], g.faults[F_DELAY],
	       g.faults[F_BLACKHOLE], g.two_down, accepted, resets);
	printf("nemesis: membership: %u changes done; casctl ran %u times, %u killed mid-way, "
	       "%u failed and ran again; %u crashes of a node the change was about\n",
	       g.changes, g.ctl_runs, g.ctl_killed, g.ctl_failed, g.crash_mid_change);
	if (g.gc.on)
		printf("nemesis: collector: casctl gc ran %u times, %u done, %u stopped "
		       "(a node out); %u keys purged\n",
		       g.gc.runs, g.gc.ok, g.gc.failed, gc_purged());
	else
		printf("nemesis: collector: casctl has no gc command: not run\n");
}

/* --- main --- */

static void usage(FILE *f)
{
	fprintf(f, "usage: nemesis [--seconds N] [--seed S] [--out DIR] [--keep] [--broken WHAT]\n"
		   "               [--tls DIR] [--ctl-all]\n"
		   "\n"
		   "Runs four casd (from $CAS_BIN; three members and a spare) behind\n"
		   "fault-injecting proxies, two casfs mounts and library clients for N seconds\n"
		   "(default 20, at least 12) under a fault schedule seeded with S (default 1),\n"
		   "with membership changes (casctl member) and purges (casctl gc); checks that\n"
		   "the histories are linearizable. A failing history goes to DIR (default .).\n"
		   "  --keep          keep the temporary folder (logs, data)\n"
		   "  --broken WHAT   a negative control that must fail: stale-read (a made-up\n"
		   "                  stale read in each history) or empty-node (a member\n"
		   "                  loses its data but keeps its identity file, and forms a\n"
		   "                  majority with a member that missed writes)\n"
		   "  --ctl-all       give casctl member every node's URL, the spare's too,\n"
		   "                  not the members' alone\n"
		   "  --tls DIR       TLS with client certificates and a token (the proxies\n"
		   "                  pass TLS through): DIR holds ca.crt, node.crt, node.key,\n"
		   "                  client.crt, client.key and token (tests/lib.sh's\n"
		   "                  cas_tls_on makes them)\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"seconds", required_argument, NULL, 'n'},
		{"seed", required_argument, NULL, 's'},
		{"out", required_argument, NULL, 'o'},
		{"keep", no_argument, NULL, 'k'},
		{"broken", required_argument, NULL, 'b'},
		{"tls", required_argument, NULL, 't'},
		{"ctl-all", no_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct cas_client_config cfg = {.timeout_ms = LIB_TIMEOUT_MS};
	struct nem_work w = {0};
	struct cas_client *client = NULL;
	const char *out_dir = ".", *broken = NULL;
	unsigned seconds = 20, i;
	uint64_t seed = 1, rng;
	struct window *win = NULL;
	unsigned nwin = 0;
	pthread_t sig_thread, dog_thread;
	struct cas_client *stale[NEM_STALE] = {NULL};
	char urls[512], err[512];
	char *end, *tmpdir;
	sigset_t set;
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			seconds = (unsigned)strtoul(optarg, &end, 10);
			if (*end || seconds < 12 || seconds > 86400) {
				fprintf(stderr, "nemesis: --seconds wants 12..86400\n");
				return 2;
			}
			break;
		case 's':
			seed = strtoull(optarg, &end, 10);
			if (*end) {
				fprintf(stderr, "nemesis: --seed wants a number\n");
				return 2;
			}
			break;
		case 'o':
			out_dir = optarg;
			break;
		case 'k':
			g.keep = true;
			break;
		case 'b':
			broken = optarg;
			if (strcmp(broken, "stale-read") && strcmp(broken, "empty-node")) {
				usage(stderr);
				return 2;
			}
			break;
		case 'm':
			g.ctl_all = true;
			break;
		case 't':
			for (i = 0; i < T_FILES; i++)
				snprintf(g.tls[i], sizeof(g.tls[i]), "%s/%s", optarg, tls_names[i]);
			g.scheme = "https";
			g.auth = (struct cas_auth_config){.tls_ca = g.tls[T_CA],
							  .tls_cert = g.tls[T_CLIENT_CRT],
							  .tls_key = g.tls[T_CLIENT_KEY],
							  .token_file = g.tls[T_TOKEN]};
			if (cas_auth_load(&g.auth, &g.auth_loaded, err, sizeof(err))) {
				fprintf(stderr, "nemesis: --tls: %s\n", err);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	g.bin = getenv("CAS_BIN");
	if (!g.bin || !*g.bin) {
		fprintf(stderr, "nemesis: CAS_BIN must name the folder with casd and casfs\n");
		return 2;
	}
	g.t0 = nem_now_ms();
	g.limit_s = seconds + WATCHDOG_S;
	rng = seed ^ ((uint64_t)getpid() << 32) ^ nem_now_ms(); /* ports only */

	/* Signals go to one thread; every other thread blocks them. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_REALTIME);
		pthread_cond_init(&g.done_cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (pthread_create(&sig_thread, NULL, signals, &set) ||
	    pthread_create(&dog_thread, NULL, watchdog, NULL)) {
		fprintf(stderr, "nemesis: cannot start threads\n");
		return 2;
	}
	pthread_detach(sig_thread);
	pthread_detach(dog_thread);

	tmpdir = getenv("TMPDIR");
	if (tmpdir && strlen(tmpdir) > TMP_MAX_LEN - 32) {
		fprintf(stderr, "nemesis: TMPDIR is too long\n");
		return 2;
	}
	snprintf(g.tmp, sizeof(g.tmp), "%s/nemesis.XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
	if (!mkdtemp(g.tmp)) {
		fprintf(stderr, "nemesis: mkdtemp %s: %s\n", g.tmp, strerror(errno));
		g.tmp[0] = '\0';
		return 2;
	}
	snprintf(g.log, sizeof(g.log), "%s/casfs.log", g.tmp);
	snprintf(g.ctl_log, sizeof(g.ctl_log), "%s/casctl.log", g.tmp);
	atexit(cleanup);
#ifdef HAVE_DEATH_CALLBACK
	__sanitizer_set_death_callback(cleanup);
#endif
	say("seed %" PRIu64 ", %u s, folder %s%s%s%s", seed, seconds, g.tmp,
	    broken ? ", broken: " : "", broken ? broken : "",
	    g.tls[T_CA][0] ? ", TLS with client certificates and a token" : "");

	if (start_cluster(&rng))
		goto out_cleanup;
	/* Every client is given the first members' list, and follows the
	 * changes from there. */
	proxy_urls(urls, sizeof(urls), (1u << MEMBERS) - 1);
	if (mount_one(0, urls) || mount_one(1, urls))
		goto out_cleanup;
	cfg.auth = g.auth;
	if (cas_client_open(urls, &cfg, &client, err, sizeof(err))) {
		fprintf(stderr, "nemesis: client on %s: %s\n", urls, err);
		goto out_cleanup;
	}
	for (i = 0; i < NEM_STALE; i++) {
		if (cas_client_open(urls, &cfg, &stale[i], err, sizeof(err))) {
			fprintf(stderr, "nemesis: client on %s: %s\n", urls, err);
			goto out_close_client;
		}
	}
	say("3 members and a spare behind proxies; mounts %s, %s on %s", g.mounts[0].dir,
	    g.mounts[1].dir, urls);

	w.client = client;
	w.lib_timeout_ms = LIB_TIMEOUT_MS;
	w.mounts[0] = g.mounts[0].dir;
	w.mounts[1] = g.mounts[1].dir;
	w.nkeys = 6;
	w.ncool = 2;
	w.nfiles = 2;
	w.lib_threads = 8;
	w.mount_threads = 2;
	w.seed = seed;
	w.deletes = true;
	for (i = 0; i < NEM_STALE; i++)
		w.stale[i] = stale[i];
	w.nstale = NEM_STALE;
	g.work = &w;
	/* Membership changes, unless a control needs the nodes it breaks. */
	g.changes_on = !broken || strcmp(broken, "empty-node");
	g.gc.on = casctl_has_gc();
	if (nem_work_init(&w)) {
		fprintf(stderr, "nemesis: out of memory\n");
		goto out_close_client;
	}
	if (nem_work_setup(&w, err, sizeof(err))) {
		fprintf(stderr, "nemesis: FAIL: setup: %s\n", err);
		goto out_free_work;
	}
	if (nem_work_start(&w, err, sizeof(err))) {
		fprintf(stderr, "nemesis: %s\n", err);
		goto out_free_work;
	}
	say("%u library threads, %u threads on each mount", w.lib_threads, w.mount_threads);

	win = calloc(windows_of(seconds), sizeof(*win));
	if (!win) {
		fprintf(stderr, "nemesis: out of memory\n");
		nem_work_stop(&w);
		goto out_free_work;
	}
	rc = run_schedule(seed, seconds, &w, win, &nwin, broken && !strcmp(broken, "empty-node"));
	if (rc == 0 && !g.interrupted) {
		/* A moment of calm: every client works again. */
		nem_nap(1000, &g.interrupted);
	}
	say("stopping the clients");
	nem_work_stop(&w);
	if (rc || g.interrupted) {
		fprintf(stderr, "nemesis: %s\n",
			g.interrupted ? "interrupted"
				      : "FAIL: the schedule could not run (see above)");
		rc = g.interrupted ? 2 : 1;
		goto out_free_work;
	}
	rc = 0;
	if (nem_work_final(&w, err, sizeof(err))) {
		printf("nemesis: FAIL: after healing: %s\n", err);
		rc = 1;
	} else {
		say("final reads ok");
	}
	if (broken && !strcmp(broken, "stale-read")) {
		/* The first value each register had, read after everything. */
		struct cas_hist_op op = {.kind = CAS_HIST_READ,
					 .status = CAS_HIST_OK,
					 .version = CAS_VERSION_ANY,
					 .label = "made-up stale read"};

		op.invoke = nem_work_now(&w);
		op.complete = op.invoke + 1;
		cas_history_add(w.lib, "nemesis/k0", &op);
		op.value = "init-0";
		op.len = strlen("init-0");
		cas_history_add(w.files, "f0", &op);
	}
	print_counts(&w);
	if (w.unexpected) {
		printf("nemesis: FAIL: %u unexpected results; the first: %s\n", w.unexpected,
		       w.first_unexpected);
		rc = 1;
	}
	if (nwin != windows_of(seconds)) {
		printf("nemesis: FAIL: %u of %u phases without a majority ran\n", nwin,
		       windows_of(seconds));
		rc = 1;
	}
	if (check_records(&w, win, nwin))
		rc = 1;
	if (g.changes_on && (g.changes == 0 || g.ctl_killed == 0)) {
		printf("nemesis: FAIL: %u membership changes done, %u runs of casctl killed "
		       "mid-way: the run needs at least one of each\n",
		       g.changes, g.ctl_killed);
		rc = 1;
	}
	if (check_history(w.lib, "library", out_dir, seed))
		rc = 1;
	if (check_history(w.files, "files", out_dir, seed))
		rc = 1;
	printf("nemesis: %s (seed %" PRIu64 ")\n", rc ? "FAIL" : "PASS", seed);

out_free_work:
	free(win);
	nem_work_free(&w);
out_close_client:
	for (i = 0; i < NEM_STALE; i++)
		cas_client_close(stale[i]);
	cas_client_close(client);
out_cleanup:
	for (i = 0; i < NEM_MOUNTS; i++)
		unmount(&g.mounts[i]);
	for (i = 0; i < NODES; i++) {
		nem_proxy_stop(g.nodes[i].proxy);
		g.nodes[i].proxy = NULL;
	}
	cas_client_close(g.direct);
	g.direct = NULL;
	cleanup();
	watchdog_done();
	return rc;
}

/* casd.c - a casfs node: the durable CASPaxos acceptor served over HTTP. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "http.h"
#include "identity.h"
#include "store.h"
#include "tls.h"

#define EXIT_USAGE 2

/* Issue #12: casctl and casfs send Cas-Cluster and Cas-Epoch, and every
 * cluster is made by casctl init; so a node nobody joined serves nothing
 * (503 "uninitialized", health too), as PROTOCOL.md says (http.h,
 * admit_unidentified: true only in the transition, before the clients
 * sent the headers). */
#define ADMIT_UNIDENTIFIED false

struct options {
	char *host; /* malloc'd */
	uint16_t port;
	const char *data;
	size_t max_value;
	size_t map_size;
	size_t wal_size;
	unsigned threads;
	const char *port_file;
	const char *log_file; /* NULL: the log goes to stderr */
	enum cas_server_log_level log_level;
	const char *tls_cert, *tls_key, *tls_ca; /* files; NULL: none */
	const char *token_file;			 /* NULL: no token */
	bool insecure;
	struct cas_server_limits limits;
};

static const char usage_text[] =
	"usage: casd --listen HOST:PORT --data DIR [options]\n"
	"\n"
	"A casfs node: a CASPaxos acceptor kept in LMDB, served over HTTP.\n"
	"\n"
	"  --listen HOST:PORT      address to listen on (PORT 0: any free port;\n"
	"                          IPv6 as [ADDR]:PORT)\n"
	"  --data DIR              folder of the LMDB store and the node's identity\n"
	"                          (created if missing; empty: an uninitialized node,\n"
	"                          to join with POST /v1/admin/join)\n"
	"  --max-value-size BYTES  largest register value accepted (default 1048576)\n"
	"  --map-size MIB          largest the store may grow, in MiB (default 1024)\n"
	"  --wal-size MIB          size of the write-ahead log, in MiB (default 8)\n"
	"  --threads N             threads answering requests (default 16)\n"
	"  --port-file FILE        once listening, write the port to FILE\n"
	"  --log-level LEVEL       error, warn, info (default) or debug\n"
	"  --log-file FILE         append the log (all of stderr) to FILE; SIGHUP\n"
	"                          reopens it, for log rotation\n"
	"\n"
	"Security (see README, \"Security\"):\n"
	"  --tls-cert FILE         serve HTTPS with this certificate (PEM; its chain\n"
	"                          may follow); needs --tls-key\n"
	"  --tls-key FILE          the certificate's private key (PEM, unencrypted)\n"
	"  --tls-ca FILE           clients must present a certificate signed by\n"
	"                          this authority (PEM), or the TLS handshake fails\n"
	"  --token-file FILE       requests but GET /v1/health must carry the token\n"
	"                          in FILE (Authorization: Bearer TOKEN), else 401;\n"
	"                          FILE must not be readable by others\n"
	"  --insecure              listen beyond loopback with neither --tls-ca nor\n"
	"                          --token-file (refused without it)\n"
	"  --max-connections N     connections open at once (default 1024)\n"
	"  --max-per-address N     connections open at once from one client address\n"
	"                          (default 128)\n"
	"  --header-timeout-ms MS  close a connection whose request headers take\n"
	"                          longer than MS (default 10000)\n"
	"  --body-timeout-ms MS    close a connection whose request is not done MS\n"
	"                          after its headers (default 60000)\n"
	"  --idle-timeout-ms MS    close a kept-alive connection idle for MS\n"
	"                          (default 120000)\n"
	"  --help                  show this help\n"
	"  --version               show the version\n";

static const char *const level_names[] = {"error", "warn", "info", "debug"};

__attribute__((format(printf, 1, 2), noreturn)) static void usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("casd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see casd --help)\n", stderr);
	exit(EXIT_USAGE);
}

static void log_line(void *arg, enum cas_server_log_level level, const char *line)
{
	const struct options *o = arg;
	struct timespec ts;
	struct tm tm;
	char when[32];

	if (level > o->log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ld casd[%ld] %s: %s\n", when, ts.tv_nsec / 1000000L, (long)getpid(),
		level_names[level], line);
}

/* A decimal number in [min, max], or exit 2 naming opt. */
static unsigned long long parse_number(const char *opt, const char *s, unsigned long long min,
				       unsigned long long max)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		usage_error("%s: \"%s\" is not a number", opt, s);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end)
		usage_error("%s: \"%s\" is not a number", opt, s);
	if (errno == ERANGE || v < min || v > max)
		usage_error("%s: %s is out of range [%llu, %llu]", opt, s, min, max);
	return v;
}

/* HOST:PORT or [HOST]:PORT. */
static void parse_listen(const char *s, struct options *o)
{
	const char *colon, *host = s;
	size_t host_len;

	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			usage_error("--listen: \"%s\" is not [HOST]:PORT", s);
		host = s + 1;
		host_len = (size_t)(close - host);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			usage_error("--listen: \"%s\" is not HOST:PORT", s);
		host_len = (size_t)(colon - s);
	}
	if (!host_len)
		usage_error("--listen: \"%s\" has no host", s);
	o->port = (uint16_t)parse_number("--listen port", colon + 1, 0, 65535);
	free(o->host);
	o->host = strndup(host, host_len);
	if (!o->host) {
		fputs("casd: out of memory\n", stderr);
		exit(1);
	}
}

/* A file name given to opt: not empty. */
static const char *file_arg(const char *opt, const char *s)
{
	if (!*s)
		usage_error("%s: empty file name", opt);
	return s;
}

static void parse_options(int argc, char **argv, struct options *o)
{
	enum {
		OPT_LISTEN = 256,
		OPT_DATA,
		OPT_MAX_VALUE,
		OPT_MAP_SIZE,
		OPT_WAL_SIZE,
		OPT_THREADS,
		OPT_PORT_FILE,
		OPT_LOG_LEVEL,
		OPT_LOG_FILE,
		OPT_TLS_CERT,
		OPT_TLS_KEY,
		OPT_TLS_CA,
		OPT_TOKEN_FILE,
		OPT_INSECURE,
		OPT_MAX_CONNECTIONS,
		OPT_MAX_PER_ADDRESS,
		OPT_HEADER_TIMEOUT,
		OPT_BODY_TIMEOUT,
		OPT_IDLE_TIMEOUT,
		OPT_HELP,
		OPT_VERSION
	};
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, OPT_LISTEN},
		{"data", required_argument, NULL, OPT_DATA},
		{"max-value-size", required_argument, NULL, OPT_MAX_VALUE},
		{"map-size", required_argument, NULL, OPT_MAP_SIZE},
		{"wal-size", required_argument, NULL, OPT_WAL_SIZE},
		{"threads", required_argument, NULL, OPT_THREADS},
		{"port-file", required_argument, NULL, OPT_PORT_FILE},
		{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
		{"log-file", required_argument, NULL, OPT_LOG_FILE},
		{"tls-cert", required_argument, NULL, OPT_TLS_CERT},
		{"tls-key", required_argument, NULL, OPT_TLS_KEY},
		{"tls-ca", required_argument, NULL, OPT_TLS_CA},
		{"token-file", required_argument, NULL, OPT_TOKEN_FILE},
		{"insecure", no_argument, NULL, OPT_INSECURE},
		{"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
		{"max-per-address", required_argument, NULL, OPT_MAX_PER_ADDRESS},
		{"header-timeout-ms", required_argument, NULL, OPT_HEADER_TIMEOUT},
		{"body-timeout-ms", required_argument, NULL, OPT_BODY_TIMEOUT},
		{"idle-timeout-ms", required_argument, NULL, OPT_IDLE_TIMEOUT},
		{"help", no_argument, NULL, OPT_HELP},
		{"version", no_argument, NULL, OPT_VERSION},
		{NULL, 0, NULL, 0},
	};
	bool listen_set = false;
	size_t i;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_LISTEN:
			parse_listen(optarg, o);
			listen_set = true;
			break;
		case OPT_DATA:
			if (!*optarg)
				usage_error("--data: empty folder name");
			o->data = optarg;
			break;
		case OPT_MAX_VALUE:
			/* Kept well below what base64 and size_t can carry. */
			o->max_value =
				(size_t)parse_number("--max-value-size", optarg, 1, 1ull << 30);
			break;
		case OPT_MAP_SIZE:
			o->map_size = (size_t)parse_number("--map-size", optarg, 1, 1ull << 24)
				      << 20;
			break;
		case OPT_WAL_SIZE:
			o->wal_size = (size_t)parse_number("--wal-size", optarg, 1, 1ull << 12)
				      << 20;
			break;
		case OPT_THREADS:
			o->threads = (unsigned)parse_number("--threads", optarg, 1, 1024);
			break;
		case OPT_PORT_FILE:
			if (!*optarg)
				usage_error("--port-file: empty file name");
			o->port_file = optarg;
			break;
		case OPT_LOG_LEVEL:
			for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
				if (strcmp(optarg, level_names[i]) == 0)
					break;
			if (i == sizeof(level_names) / sizeof(level_names[0]))
				usage_error("--log-level: \"%s\" is not error, warn, info or debug",
					    optarg);
			o->log_level = (enum cas_server_log_level)i;
			break;
		case OPT_LOG_FILE:
			if (!*optarg)
				usage_error("--log-file: empty file name");
			o->log_file = optarg;
			break;
		case OPT_TLS_CERT:
			o->tls_cert = file_arg("--tls-cert", optarg);
			break;
		case OPT_TLS_KEY:
			o->tls_key = file_arg("--tls-key", optarg);
			break;
		case OPT_TLS_CA:
			o->tls_ca = file_arg("--tls-ca", optarg);
			break;
		case OPT_TOKEN_FILE:
			o->token_file = file_arg("--token-file", optarg);
			break;
		case OPT_INSECURE:
			o->insecure = true;
			break;
		case OPT_MAX_CONNECTIONS:
			o->limits.max_connections =
				(unsigned)parse_number("--max-connections", optarg, 1, 1u << 20);
			break;
		case OPT_MAX_PER_ADDRESS:
			o->limits.max_per_address =
				(unsigned)parse_number("--max-per-address", optarg, 1, 1u << 20);
			break;
		case OPT_HEADER_TIMEOUT:
			o->limits.header_ms =
				(unsigned)parse_number("--header-timeout-ms", optarg, 10, 3600000);
			break;
		case OPT_BODY_TIMEOUT:
			o->limits.body_ms =
				(unsigned)parse_number("--body-timeout-ms", optarg, 10, 3600000);
			break;
		case OPT_IDLE_TIMEOUT:
			o->limits.idle_ms =
				(unsigned)parse_number("--idle-timeout-ms", optarg, 10, 86400000);
			break;
		case 'h':
		case OPT_HELP:
			fputs(usage_text, stdout);
			exit(0);
		case OPT_VERSION:
			printf("casd %s\n", CAS_VERSION_STRING);
			exit(0);
		case ':':
			usage_error("%s needs a value", argv[optind - 1]);
		default:
			usage_error("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument \"%s\"", argv[optind]);
	if (!listen_set)
		usage_error("--listen HOST:PORT is required");
	if (!o->data)
		usage_error("--data DIR is required");
	if (!o->tls_cert != !o->tls_key)
		usage_error("--tls-cert and --tls-key go together");
	if (o->tls_ca && !o->tls_cert)
		usage_error("--tls-ca needs --tls-cert and --tls-key");
}

/* Opens path for appending (created 0640 when missing) as stderr, where
 * the log goes; stderr is left unchanged on error (-1, errno set). Safe
 * while other threads log: dup2 swaps the file in one step. */
static int open_log_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd < 0)
		return -1;
	if (dup2(fd, STDERR_FILENO) < 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	close(fd);
	return 0;
}

/* SIGHUP: reopens the log file (after a rotation moved it away), or says
 * that there is none. Never stops the node. */
static void reopen_log(struct options *o)
{
	char line[PATH_MAX + 64];

	if (!o->log_file) {
		log_line(o, CAS_SERVER_LOG_INFO, "SIGHUP: no --log-file to reopen; ignored");
		return;
	}
	if (open_log_file(o->log_file)) {
		snprintf(line, sizeof(line), "SIGHUP: cannot reopen %s: %s; logging on",
			 o->log_file, strerror(errno));
		log_line(o, CAS_SERVER_LOG_ERROR, line);
		return;
	}
	snprintf(line, sizeof(line), "SIGHUP: reopened %s", o->log_file);
	log_line(o, CAS_SERVER_LOG_INFO, line);
}

/* mkdir -p, mode 0700 for what it creates. */
static int make_dirs(const char *path)
{
	char buf[PATH_MAX];
	size_t n = strlen(path), i;

	if (n >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -1;
		buf[i] = path[i];
	}
	return 0;
}

/* Takes DIR/casd.lock so that two nodes never share one store; the kernel
 * drops the lock when the process dies, SIGKILL included. Returns the fd
 * (kept open for the process's life) or -1. */
static int lock_data_dir(const char *dir)
{
	char path[PATH_MAX];
	int fd, n;

	n = snprintf(path, sizeof(path), "%s/casd.lock", dir);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* Writes "PORT\n" to path atomically: readers see all of it or nothing. */
static int write_port_file(const char *path, uint16_t port)
{
	char tmp[PATH_MAX];
	FILE *f;
	int n;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	f = fopen(tmp, "w");
	if (!f)
		return -1;
	if (fprintf(f, "%u\n", (unsigned)port) < 0 || fflush(f) || fsync(fileno(f))) {
		int saved = errno;

		fclose(f);
		unlink(tmp);
		errno = saved;
		return -1;
	}
	if (fclose(f) || rename(tmp, path)) {
		int saved = errno;

		unlink(tmp);
		errno = saved;
		return -1;
	}
	return 0;
}

/* One line on how well group commit did, for the operator. */
static void log_stats(struct options *o, struct cas_store *store)
{
	struct cas_store_stats st;
	char line[256];

	cas_store_get_stats(store, &st);
	snprintf(line, sizeof(line),
		 "store: %llu changes in %llu commits (%.2f per commit, at most %llu), "
		 "%llu checkpoints, %llu log entries replayed at start",
		 (unsigned long long)st.changes, (unsigned long long)st.commits,
		 st.commits ? (double)st.changes / (double)st.commits : 0.0,
		 (unsigned long long)st.largest_batch, (unsigned long long)st.checkpoints,
		 (unsigned long long)st.replayed);
	log_line(o, CAS_SERVER_LOG_INFO, line);
}

/* One line on who the node is, for the operator. */
static void log_identity(struct options *o, struct cas_identity *identity)
{
	struct cas_identity_view v;
	char line[256];

	cas_identity_view(identity, &v);
	if (!v.initialized)
		snprintf(line, sizeof(line), "uninitialized: waiting for POST /v1/admin/join");
	else
		snprintf(line, sizeof(line), "node %s of cluster %s, epoch %llu%s", v.node,
			 v.cluster, (unsigned long long)v.epoch,
			 v.member ? "" : " (removed: not in its configuration)");
	log_line(o, CAS_SERVER_LOG_INFO, line);
}

/* What casd reads at start for TLS and the token (tls.h, auth.h). */
struct secrets {
	char *cert, *key, *ca; /* PEM, malloc'd; NULL: not given */
	struct cas_token token;
	bool has_token;
};

/* Reads the files o names into sec, each once, at start: false (a one-line
 * error on stderr) when one cannot be read or is not what it should be.
 * What was read stays in sec for free_secrets, even on error. */
static bool read_secrets(struct options *o, struct secrets *sec)
{
	char errmsg[PATH_MAX + 256], warn[PATH_MAX + 256];

	if ((o->tls_cert &&
	     cas_tls_read_pem(o->tls_cert, "--tls-cert", &sec->cert, errmsg, sizeof(errmsg))) ||
	    (o->tls_key &&
	     cas_tls_read_pem(o->tls_key, "--tls-key", &sec->key, errmsg, sizeof(errmsg))) ||
	    (o->tls_ca &&
	     cas_tls_read_pem(o->tls_ca, "--tls-ca", &sec->ca, errmsg, sizeof(errmsg)))) {
		fprintf(stderr, "casd: %s\n", errmsg);
		return false;
	}
	if (sec->cert && cas_tls_check(sec->cert, sec->key, sec->ca, warn, sizeof(warn), errmsg,
				       sizeof(errmsg))) {
		fprintf(stderr, "casd: %s\n", errmsg);
		return false;
	}
	if (o->token_file) {
		if (cas_token_read(o->token_file, &sec->token, warn, sizeof(warn), errmsg,
				   sizeof(errmsg))) {
			fprintf(stderr, "casd: %s\n", errmsg);
			return false;
		}
		if (*warn)
			log_line(o, CAS_SERVER_LOG_WARN, warn);
		sec->has_token = true;
	}
	return true;
}

static void free_secrets(struct secrets *sec)
{
	cas_tls_free_pem(sec->cert);
	cas_tls_free_pem(sec->key);
	cas_tls_free_pem(sec->ca);
	explicit_bzero(&sec->token, sizeof(sec->token));
}

/* Raises the open-file limit to what the connection limit may take, when
 * the hard limit lets it; a warning when it stays below. */
static void raise_file_limit(struct options *o)
{
	struct cas_server_limits lim = o->limits;
	struct rlimit rl;
	rlim_t need, least;
	char line[256];

	if (!lim.max_connections)
		lim.max_connections = CAS_SERVER_DEFAULT_MAX_CONNECTIONS;
	/* libmicrohttpd's limit (twice ours, connections being closed
	 * included), the store's and the log's files, some spare. */
	need = (rlim_t)2 * lim.max_connections + 4 * o->threads + 64;
	least = (rlim_t)lim.max_connections + 64;
	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= need)
		return;
	rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need ? rl.rlim_max : need;
	setrlimit(RLIMIT_NOFILE, &rl);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < least) {
		snprintf(line, sizeof(line),
			 "open-file limit %llu is below the %llu that %u connections need: "
			 "connections past it fail (raise LimitNOFILE or ulimit -n)",
			 (unsigned long long)rl.rlim_cur, (unsigned long long)least,
			 lim.max_connections);
		log_line(o, CAS_SERVER_LOG_WARN, line);
	}
}

int main(int argc, char **argv)
{
	struct options o = {
		.max_value = CAS_DEFAULT_MAX_VALUE,
		.threads = CAS_SERVER_DEFAULT_THREADS,
		.log_level = CAS_SERVER_LOG_INFO,
	};
	struct cas_store_config store_cfg = {0};
	struct secrets sec = {0};
	struct cas_server_config cfg;
	struct cas_identity *identity;
	struct cas_server *server;
	struct cas_store *store;
	char errmsg[512];
	sigset_t stop;
	int sig = SIGTERM, lock_fd, rc = 1;

	parse_options(argc, argv, &o);
	if (o.log_file && open_log_file(o.log_file)) {
		fprintf(stderr, "casd: cannot open %s: %s\n", o.log_file, strerror(errno));
		goto out_free_host;
	}
	if (!read_secrets(&o, &sec))
		goto out_free_secrets;
	raise_file_limit(&o);

	/* Blocked before any thread starts, so only sigwait below sees them. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (make_dirs(o.data)) {
		fprintf(stderr, "casd: cannot create %s: %s\n", o.data, strerror(errno));
		goto out_free_secrets;
	}
	lock_fd = lock_data_dir(o.data);
	if (lock_fd < 0) {
		fprintf(stderr, "casd: cannot lock %s: %s\n", o.data,
			errno == EWOULDBLOCK ? "in use by another casd" : strerror(errno));
		goto out_free_secrets;
	}
	store_cfg.map_size = o.map_size;
	store_cfg.wal_size = o.wal_size;
	if (cas_store_open(o.data, &store_cfg, &store, errmsg, sizeof(errmsg))) {
		fprintf(stderr, "casd: %s\n", errmsg);
		goto out_unlock_dir;
	}
	/* Started all the same: it serves what it holds (README). */
	if (!cas_store_writable(store, errmsg, sizeof(errmsg)))
		log_line(&o, CAS_SERVER_LOG_WARN, errmsg);
	if (cas_identity_open(o.data, &identity, errmsg, sizeof(errmsg))) {
		fprintf(stderr, "casd: %s\n", errmsg);
		goto out_close_store;
	}
	log_identity(&o, identity);
	memset(&cfg, 0, sizeof(cfg));
	cfg.host = o.host;
	cfg.port = o.port;
	cfg.max_value = o.max_value;
	cfg.threads = o.threads;
	cfg.log = log_line;
	cfg.log_arg = &o;
	cfg.log_level = o.log_level;
	cfg.identity = identity;
	cfg.admit_unidentified = ADMIT_UNIDENTIFIED;
	cfg.tls_cert = sec.cert;
	cfg.tls_key = sec.key;
	cfg.tls_ca = sec.ca;
	cfg.token = sec.has_token ? &sec.token : NULL;
	cfg.insecure = o.insecure;
	cfg.limits = o.limits;
	if (cas_server_start(store, &cfg, &server, errmsg, sizeof(errmsg))) {
		fprintf(stderr, "casd: %s\n", errmsg);
		goto out_close_identity;
	}
	if (o.port_file && write_port_file(o.port_file, cas_server_port(server))) {
		fprintf(stderr, "casd: cannot write %s: %s\n", o.port_file, strerror(errno));
		goto out_stop_server;
	}
	/* SIGINT and SIGTERM stop: requests in progress finish, the store
	 * writes what is queued and checkpoints. SIGHUP reopens the log. */
	while (sigwait(&stop, &sig) == 0 && sig == SIGHUP)
		reopen_log(&o);
	log_line(&o, CAS_SERVER_LOG_INFO, sig == SIGINT ? "SIGINT: stopping" : "SIGTERM: stopping");
	rc = 0;

out_stop_server:
	cas_server_stop(server);
	log_stats(&o, store);
out_close_identity:
	cas_identity_close(identity);
out_close_store:
	cas_store_close(store);
	if (rc == 0)
		log_line(&o, CAS_SERVER_LOG_INFO, "stopped");
out_unlock_dir:
	close(lock_fd);
out_free_secrets:
	free_secrets(&sec);
out_free_host:
	free(o.host);
	return rc;
}

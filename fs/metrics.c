/* metrics.c - casfs's metrics: FUSE request latency histograms (atomics,
 * one registry per process), the text exposition (format 0.0.4, as casd's
 * consensus/node/metrics.c writes it) and its HTTP server. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include <cas/cas.h>

#include "metrics.h"

/* Upper bounds of the latency buckets, in ns: 100 µs to 10 s (casd's
 * bounds, and past its 1 s up to twice the default operation deadline). */
static const uint64_t bounds_ns[] = {
	100000,	  250000,    500000,	1000000,   2500000,    5000000,	   10000000,   25000000,
	50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000, 5000000000, 10000000000,
};
#define N_BOUNDS (sizeof(bounds_ns) / sizeof(bounds_ns[0]))

/* One op's histogram: counts per bucket (not cumulative: the writer sums
 * them), the last one past every bound (+Inf); the sum in ns. */
struct histogram {
	atomic_uint_fast64_t buckets[N_BOUNDS + 1];
	atomic_uint_fast64_t sum_ns;
};

static struct histogram ops[CASFS_OPS];
static atomic_int_fast64_t in_flight;

#define CASFS_METRICS_NAME(name, label) [CASFS_OP_##name] = #label,
static const char *const op_names[CASFS_OPS] = {CASFS_METRICS_OPS(CASFS_METRICS_NAME)};
#undef CASFS_METRICS_NAME

static const char *const kind_names[CAS_ROUND_KINDS] = {
	[CAS_ROUND_READ] = "read",
	[CAS_ROUND_CHANGE] = "change",
	[CAS_ROUND_DELETE] = "delete",
	[CAS_ROUND_TOUCH] = "touch",
};
static const char *const result_names[CAS_ROUND_RESULTS] = {
	[CAS_ROUND_OK] = "ok",		 [CAS_ROUND_VERSION] = "version",
	[CAS_ROUND_REFUSED] = "refused", [CAS_ROUND_UNAVAILABLE] = "unavailable",
	[CAS_ROUND_ERROR] = "error",
};

#define RELAXED memory_order_relaxed

uint64_t casfs_metrics_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t casfs_metrics_begin(enum casfs_metrics_op op)
{
	(void)op;
	atomic_fetch_add_explicit(&in_flight, 1, RELAXED);
	return casfs_metrics_now_ns();
}

void casfs_metrics_end(enum casfs_metrics_op op, uint64_t start_ns)
{
	uint64_t now = casfs_metrics_now_ns(), ns = now > start_ns ? now - start_ns : 0;
	struct histogram *h;
	size_t i = 0;

	atomic_fetch_sub_explicit(&in_flight, 1, RELAXED);
	if ((unsigned)op >= CASFS_OPS)
		return;
	h = &ops[op];
	while (i < N_BOUNDS && ns > bounds_ns[i])
		i++;
	atomic_fetch_add_explicit(&h->buckets[i], 1, RELAXED);
	atomic_fetch_add_explicit(&h->sum_ns, ns, RELAXED);
}

static void header(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The samples of one op's histogram, labelled op="label". */
static void write_histogram(FILE *f, const char *name, const char *label, struct histogram *h)
{
	uint64_t cum = 0;
	size_t i;

	for (i = 0; i <= N_BOUNDS; i++) {
		cum += atomic_load_explicit(&h->buckets[i], RELAXED);
		if (i < N_BOUNDS)
			fprintf(f, "%s_bucket{op=\"%s\",le=\"%g\"} %llu\n", name, label,
				(double)bounds_ns[i] / 1e9, (unsigned long long)cum);
		else
			fprintf(f, "%s_bucket{op=\"%s\",le=\"+Inf\"} %llu\n", name, label,
				(unsigned long long)cum);
	}
	/* The count is what the buckets say: read apart, it could run ahead
	 * of them by the observations made meanwhile. */
	fprintf(f, "%s_sum{op=\"%s\"} %.9g\n", name, label,
		(double)atomic_load_explicit(&h->sum_ns, RELAXED) / 1e9);
	fprintf(f, "%s_count{op=\"%s\"} %llu\n", name, label, (unsigned long long)cum);
}

int casfs_metrics_write(const struct cas_client_stats *st, char **out, size_t *len)
{
	uint64_t versions = 0, unavailable = 0;
	int64_t n_flight;
	size_t k, r;
	FILE *f;

	*out = NULL;
	*len = 0;
	f = open_memstream(out, len);
	if (!f)
		return CAS_ENOMEM;
	header(f, "casfs_build_info", "gauge", "casfs's version, in its label; always 1.");
	fprintf(f, "casfs_build_info{version=\"%s\"} 1\n", CAS_VERSION_STRING);
	header(f, "casfs_rounds_total", "counter",
	       "Register operations of the mount's client, by kind and result.");
	for (k = 0; k < CAS_ROUND_KINDS; k++) {
		versions += st->rounds[k][CAS_ROUND_VERSION];
		unavailable += st->rounds[k][CAS_ROUND_UNAVAILABLE];
		for (r = 0; r < CAS_ROUND_RESULTS; r++)
			fprintf(f, "casfs_rounds_total{kind=\"%s\",result=\"%s\"} %llu\n",
				kind_names[k], result_names[r],
				(unsigned long long)st->rounds[k][r]);
	}
	header(f, "casfs_conflicts_total", "counter",
	       "Conflicts: operations that found the version moved (version), prepares and "
	       "accepts a node rejected for a higher ballot (ballot).");
	fprintf(f, "casfs_conflicts_total{reason=\"version\"} %llu\n",
		(unsigned long long)versions);
	fprintf(f, "casfs_conflicts_total{reason=\"ballot\"} %llu\n",
		(unsigned long long)st->rejects);
	header(f, "casfs_retries_total", "counter",
	       "Attempts of an operation tried again, with a new ballot, after a backoff.");
	fprintf(f, "casfs_retries_total %llu\n", (unsigned long long)st->retries);
	header(f, "casfs_timeouts_total", "counter",
	       "Operations that ended without a majority within their deadline.");
	fprintf(f, "casfs_timeouts_total %llu\n", (unsigned long long)unavailable);
	header(f, "casfs_fuse_requests_in_flight", "gauge",
	       "FUSE requests whose handler is running now.");
	n_flight = atomic_load_explicit(&in_flight, RELAXED);
	fprintf(f, "casfs_fuse_requests_in_flight %lld\n",
		(long long)(n_flight > 0 ? n_flight : 0));
	header(f, "casfs_fuse_request_seconds", "histogram",
	       "Time from a FUSE request's call to its handler's return, by operation.");
	for (k = 0; k < CASFS_OPS; k++)
		write_histogram(f, "casfs_fuse_request_seconds", op_names[k], &ops[k]);
	if (ferror(f)) {
		fclose(f);
		free(*out);
		*out = NULL;
		*len = 0;
		return CAS_ENOMEM;
	}
	if (fclose(f)) {
		free(*out);
		*out = NULL;
		*len = 0;
		return CAS_ENOMEM;
	}
	return CAS_OK;
}

int casfs_metrics_listen(const char *host, unsigned port, int *fd, char *errmsg, size_t errmsg_len)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	const char *l = strchr(host, ':') ? "[" : "", *r = *l ? "]" : "";
	socklen_t sslen;
	int s, one = 1;

	*fd = -1;
	memset(&ss, 0, sizeof(ss));
	if (port < 1 || port > 65535) {
		snprintf(errmsg, errmsg_len, "bad metrics port %u", port);
		return CAS_EINVAL;
	}
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		sslen = sizeof(*v4);
	} else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		sslen = sizeof(*v6);
	} else {
		snprintf(errmsg, errmsg_len, "bad metrics address %s: not an IP address", host);
		return CAS_EINVAL;
	}
	s = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		goto out_error;
	/* Restarts need not wait out TIME_WAIT; a port another socket
	 * listens on stays refused. */
	if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		goto out_close;
	/* [::] means IPv6 only, as written: bind what was asked, no more. */
	if (ss.ss_family == AF_INET6 && setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)))
		goto out_close;
	if (bind(s, (struct sockaddr *)&ss, sslen) || listen(s, 16))
		goto out_close;
	*fd = s;
	return CAS_OK;

out_close : {
	int e = errno;

	close(s);
	errno = e;
}
out_error:
	snprintf(errmsg, errmsg_len, "cannot serve metrics on %s%s%s:%u: %s", l, host, r, port,
		 strerror(errno));
	return CAS_EIO;
}

struct casfs_metrics_server {
	struct MHD_Daemon *daemon;
	casfs_metrics_stats_fn *stats;
	void *arg;
};

/* Sends status with a short text body. */
static enum MHD_Result send_text(struct MHD_Connection *conn, unsigned status, const char *text,
				 const char *allow)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	if (allow)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **req_cls)
{
	struct casfs_metrics_server *s = cls;
	struct cas_client_stats st;
	struct MHD_Response *resp;
	enum MHD_Result ret;
	char *body;
	size_t len;

	(void)version;
	(void)upload;
	/* The first call only announces the request's headers. */
	if (!*req_cls) {
		*req_cls = s;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0; /* a body is read and ignored */
		return MHD_YES;
	}
	if (strcmp(url, "/metrics"))
		return send_text(conn, MHD_HTTP_NOT_FOUND, "not found: casfs serves GET /metrics\n",
				 NULL);
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return send_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET\n", "GET, HEAD");
	s->stats(s->arg, &st);
	if (casfs_metrics_write(&st, &body, &len))
		return send_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", NULL);
	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; version=0.0.4; charset=utf-8");
	ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Connections at once, and the seconds one may idle: a scraper needs one. */
#define MAX_CONNECTIONS 16
#define IDLE_S		10

int casfs_metrics_start(int fd, casfs_metrics_stats_fn *stats, void *arg,
			struct casfs_metrics_server **out, char *errmsg, size_t errmsg_len)
{
	struct casfs_metrics_server *s = calloc(1, sizeof(*s));
	int mine;

	*out = NULL;
	if (!s) {
		close(fd);
		snprintf(errmsg, errmsg_len, "metrics: out of memory");
		return CAS_ENOMEM;
	}
	s->stats = stats;
	s->arg = arg;
	/* libmicrohttpd gets a copy: it closes it when it stops, and whether
	 * it does when it fails to start is not said. */
	mine = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	close(fd);
	if (mine < 0) {
		snprintf(errmsg, errmsg_len, "cannot serve metrics: %s", strerror(errno));
		free(s);
		return CAS_EIO;
	}
	errno = 0;
	s->daemon =
		MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO, 0, NULL, NULL,
				 on_request, s, MHD_OPTION_LISTEN_SOCKET, mine,
				 MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
				 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_S, MHD_OPTION_END);
	if (!s->daemon) {
		snprintf(errmsg, errmsg_len, "cannot serve metrics: %s",
			 errno ? strerror(errno) : "libmicrohttpd refused");
		free(s);
		return CAS_EIO;
	}
	*out = s;
	return CAS_OK;
}

void casfs_metrics_stop(struct casfs_metrics_server *s)
{
	if (!s)
		return;
	/* Closes the listening socket too, ours or not. */
	MHD_stop_daemon(s->daemon);
	free(s);
}

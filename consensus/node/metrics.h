/* metrics.h - casd's Prometheus metrics (GET /metrics, README "Monitor"):
 * one process-wide registry of atomic counters and histograms, updated
 * where the events happen, and the text exposition writer (format 0.0.4). */
#ifndef CAS_METRICS_H
#define CAS_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* The kind of a request, from the route it asked for. */
enum cas_metrics_kind {
	CAS_METRICS_PREPARE,
	CAS_METRICS_ACCEPT,
	CAS_METRICS_QUERY,
	CAS_METRICS_BATCH,
	CAS_METRICS_PURGE,
	CAS_METRICS_ADMIN, /* /v1/keys, /v1/config, /v1/admin/... */
	CAS_METRICS_HEALTH,
	CAS_METRICS_METRICS, /* GET /metrics */
	CAS_METRICS_OTHER,   /* an unknown path */
	CAS_METRICS_KINDS
};

/* Why a request or connection was refused before it ran. */
enum cas_metrics_refusal {
	CAS_METRICS_TOKEN,	 /* 401: no token, or a wrong one */
	CAS_METRICS_CERTIFICATE, /* a client certificate refused */
	CAS_METRICS_IDENTITY,	 /* cluster, node or epoch headers refused */
	CAS_METRICS_LIMITS,	 /* 413, or a header or request deadline passed */
	CAS_METRICS_REFUSALS
};

/* Why a connection was refused at its accept. */
enum cas_metrics_conn_refusal {
	CAS_METRICS_PER_ADDRESS, /* its address has the most it may */
	CAS_METRICS_TOTAL,	 /* the most in all are open */
	CAS_METRICS_CONN_REFUSALS
};

/* Counts one request of kind answered with an HTTP status: 2xx ok, 409
 * reject, other 4xx client_error, 5xx server_error. */
void cas_metrics_request(enum cas_metrics_kind kind, unsigned status);

/* Counts one refusal. */
void cas_metrics_refused(enum cas_metrics_refusal why);

/* A connection opened, closed, refused. */
void cas_metrics_conn_open(void);
void cas_metrics_conn_close(void);
void cas_metrics_conn_refused(enum cas_metrics_conn_refusal why);

/* A monotonic clock in nanoseconds, to time what the next calls observe. */
uint64_t cas_metrics_now_ns(void);

/* A sync of the write-ahead log started at start_ns (cas_metrics_now_ns)
 * ended now: counts it and observes its latency. */
void cas_metrics_log_sync(uint64_t start_ns);

/* A checkpoint started at start_ns ended now. */
void cas_metrics_checkpoint(uint64_t start_ns);

/* The store made a batch of n changes durable at once. */
void cas_metrics_batch(uint64_t n);

/* What the registry does not count itself, read at scrape time. */
struct cas_metrics_gauges {
	uint64_t keys;	   /* registers held */
	uint64_t bytes;	   /* LMDB's map in use */
	uint64_t log_used; /* bytes of the log since its last checkpoint */
	uint64_t floor;	   /* the store's floor (PROTOCOL.md, "Deletion") */
	const char *version;
};

/* Writes every metric, with g's, in the text exposition format 0.0.4.
 * On CAS_OK *out is malloc'd (the caller frees it), *len its bytes;
 * CAS_ENOMEM otherwise, *out NULL. */
int cas_metrics_write(const struct cas_metrics_gauges *g, char **out, size_t *len);

#endif

/* metrics.c - casd's metrics registry (atomics, one per process) and its
 * Prometheus text exposition (format 0.0.4); README "Monitor" lists them. */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cas/cas.h>

#include "metrics.h"

/* A histogram: counts per bucket (not cumulative: the writer sums them),
 * the last one past every bound (+Inf); the sum in the unit's 1/scale. */
struct histogram {
	const double *bounds;
	size_t n_bounds;
	double scale; /* sum / scale is the sum in the metric's unit */
	atomic_uint_fast64_t buckets[16];
	atomic_uint_fast64_t count;
	atomic_uint_fast64_t sum;
};

/* Seconds, 100 µs to 1 s. */
static const double latency_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
					0.025,	0.05,	 0.1,	 0.25,	0.5,	1};
/* Checkpoints take longer: 1 ms to 10 s. */
static const double checkpoint_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
					   0.25,  0.5,	  1,	 2.5,  5,     10};
static const double batch_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};

#define N_BOUNDS(a) (sizeof(a) / sizeof((a)[0]))

static atomic_uint_fast64_t requests[CAS_METRICS_KINDS][4];
static atomic_uint_fast64_t refused[CAS_METRICS_REFUSALS];
static atomic_uint_fast64_t conns_refused[CAS_METRICS_CONN_REFUSALS];
static atomic_int_fast64_t conns_open;
static struct histogram log_sync = {latency_bounds, N_BOUNDS(latency_bounds), 1e9, {0}, 0, 0};
static struct histogram checkpoint = {
	checkpoint_bounds, N_BOUNDS(checkpoint_bounds), 1e9, {0}, 0, 0};
static struct histogram batch = {batch_bounds, N_BOUNDS(batch_bounds), 1, {0}, 0, 0};

static const char *const kind_names[CAS_METRICS_KINDS] = {
	[CAS_METRICS_PREPARE] = "prepare", [CAS_METRICS_ACCEPT] = "accept",
	[CAS_METRICS_QUERY] = "query",	   [CAS_METRICS_BATCH] = "batch",
	[CAS_METRICS_PURGE] = "purge",	   [CAS_METRICS_ADMIN] = "admin",
	[CAS_METRICS_HEALTH] = "health",   [CAS_METRICS_METRICS] = "metrics",
	[CAS_METRICS_OTHER] = "other",
};
static const char *const result_names[4] = {"ok", "reject", "client_error", "server_error"};
static const char *const refusal_names[CAS_METRICS_REFUSALS] = {
	[CAS_METRICS_TOKEN] = "token",
	[CAS_METRICS_CERTIFICATE] = "certificate",
	[CAS_METRICS_IDENTITY] = "identity",
	[CAS_METRICS_LIMITS] = "limits",
};
static const char *const conn_refusal_names[CAS_METRICS_CONN_REFUSALS] = {
	[CAS_METRICS_PER_ADDRESS] = "per_address",
	[CAS_METRICS_TOTAL] = "total",
};

#define RELAXED memory_order_relaxed

void cas_metrics_request(enum cas_metrics_kind kind, unsigned status)
{
	unsigned result;

	if ((unsigned)kind >= CAS_METRICS_KINDS)
		kind = CAS_METRICS_OTHER;
	if (status == 409)
		result = 1;
	else if (status >= 500)
		result = 3;
	else if (status >= 400)
		result = 2;
	else
		result = 0;
	atomic_fetch_add_explicit(&requests[kind][result], 1, RELAXED);
}

void cas_metrics_refused(enum cas_metrics_refusal why)
{
	if ((unsigned)why < CAS_METRICS_REFUSALS)
		atomic_fetch_add_explicit(&refused[why], 1, RELAXED);
}

void cas_metrics_conn_open(void)
{
	atomic_fetch_add_explicit(&conns_open, 1, RELAXED);
}

void cas_metrics_conn_close(void)
{
	atomic_fetch_sub_explicit(&conns_open, 1, RELAXED);
}

void cas_metrics_conn_refused(enum cas_metrics_conn_refusal why)
{
	if ((unsigned)why < CAS_METRICS_CONN_REFUSALS)
		atomic_fetch_add_explicit(&conns_refused[why], 1, RELAXED);
}

uint64_t cas_metrics_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Adds one observation of v (in 1/h->scale of the unit) to h. */
static void observe(struct histogram *h, uint64_t v)
{
	double x = (double)v / h->scale;
	size_t i = 0;

	while (i < h->n_bounds && x > h->bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->buckets[i], 1, RELAXED);
	atomic_fetch_add_explicit(&h->sum, v, RELAXED);
	atomic_fetch_add_explicit(&h->count, 1, RELAXED);
}

/* Nanoseconds since start, 0 when the clock seems to have gone back. */
static uint64_t since(uint64_t start_ns)
{
	uint64_t now = cas_metrics_now_ns();

	return now > start_ns ? now - start_ns : 0;
}

void cas_metrics_log_sync(uint64_t start_ns)
{
	observe(&log_sync, since(start_ns));
}

void cas_metrics_checkpoint(uint64_t start_ns)
{
	observe(&checkpoint, since(start_ns));
}

void cas_metrics_batch(uint64_t n)
{
	observe(&batch, n);
}

static void header(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void write_histogram(FILE *f, const char *name, const char *help, struct histogram *h)
{
	uint64_t cum = 0;
	size_t i;

	header(f, name, "histogram", help);
	for (i = 0; i <= h->n_bounds; i++) {
		cum += atomic_load_explicit(&h->buckets[i], RELAXED);
		if (i < h->n_bounds)
			fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i],
				(unsigned long long)cum);
		else
			fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
	}
	/* The count read after the buckets may run ahead of them by the
	 * observations made meanwhile: +Inf is what the buckets say. */
	fprintf(f, "%s_sum %.9g\n", name,
		(double)atomic_load_explicit(&h->sum, RELAXED) / h->scale);
	fprintf(f, "%s_count %llu\n", name, (unsigned long long)cum);
}

/* A label value with its \, " and newlines escaped. */
static void write_label(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fputc('\\', f);
		if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

int cas_metrics_write(const struct cas_metrics_gauges *g, char **out, size_t *len)
{
	size_t k, r;
	FILE *f;
	int64_t n_open;

	*out = NULL;
	*len = 0;
	f = open_memstream(out, len);
	if (!f)
		return CAS_ENOMEM;
	header(f, "casd_build_info", "gauge", "casd's version, in its label; always 1.");
	fputs("casd_build_info{version=\"", f);
	write_label(f, g->version ? g->version : "");
	fputs("\"} 1\n", f);
	header(f, "casd_requests_total", "counter", "HTTP requests answered, by kind and result.");
	for (k = 0; k < CAS_METRICS_KINDS; k++)
		for (r = 0; r < 4; r++)
			fprintf(f, "casd_requests_total{kind=\"%s\",result=\"%s\"} %llu\n",
				kind_names[k], result_names[r],
				(unsigned long long)atomic_load_explicit(&requests[k][r], RELAXED));
	header(f, "casd_refused_total", "counter", "Requests refused before they ran, by reason.");
	for (k = 0; k < CAS_METRICS_REFUSALS; k++)
		fprintf(f, "casd_refused_total{reason=\"%s\"} %llu\n", refusal_names[k],
			(unsigned long long)atomic_load_explicit(&refused[k], RELAXED));
	header(f, "casd_connections_open", "gauge", "Connections open now.");
	n_open = atomic_load_explicit(&conns_open, RELAXED);
	fprintf(f, "casd_connections_open %lld\n", (long long)(n_open > 0 ? n_open : 0));
	header(f, "casd_connections_refused_total", "counter",
	       "Connections refused at their accept by the connection limits, by reason.");
	for (k = 0; k < CAS_METRICS_CONN_REFUSALS; k++)
		fprintf(f, "casd_connections_refused_total{reason=\"%s\"} %llu\n",
			conn_refusal_names[k],
			(unsigned long long)atomic_load_explicit(&conns_refused[k], RELAXED));
	write_histogram(f, "casd_store_batch_size",
			"Changes made durable together, by one log sync or LMDB commit.", &batch);
	header(f, "casd_log_syncs_total", "counter", "Writes and syncs of the write-ahead log.");
	fprintf(f, "casd_log_syncs_total %llu\n",
		(unsigned long long)atomic_load_explicit(&log_sync.count, RELAXED));
	write_histogram(f, "casd_log_sync_seconds",
			"Time to write and sync a batch into the write-ahead log.", &log_sync);
	write_histogram(f, "casd_checkpoint_seconds", "Time to write the log's contents into LMDB.",
			&checkpoint);
	header(f, "casd_keys", "gauge", "Registers the store holds.");
	fprintf(f, "casd_keys %llu\n", (unsigned long long)g->keys);
	header(f, "casd_bytes", "gauge", "Bytes of LMDB's map in use.");
	fprintf(f, "casd_bytes %llu\n", (unsigned long long)g->bytes);
	header(f, "casd_log_bytes", "gauge",
	       "Bytes of the write-ahead log written since its last checkpoint.");
	fprintf(f, "casd_log_bytes %llu\n", (unsigned long long)g->log_used);
	header(f, "casd_floor", "gauge",
	       "The node's floor: the highest ballot counter its purges passed.");
	fprintf(f, "casd_floor %llu\n", (unsigned long long)g->floor);
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

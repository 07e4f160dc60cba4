/* casbench.c - measures CAS and read latency and throughput of a cluster
 * with 1, 8 and 32 client threads on distinct keys. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <cas/client.h>

static const int thread_counts[] = {1, 8, 32};

enum bench_op { OP_CAS, OP_READ };

struct worker {
	struct cas_client *c;
	enum bench_op op;
	char key[64];
	size_t ops;
	size_t value_size;
	uint32_t *lat_us; /* ops entries */
	size_t errors;
	int last_error;
	pthread_t thread;
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct cas_value v;
	unsigned char *data;
	uint64_t version = 0, t0, t;
	int rc;

	data = malloc(w->value_size ? w->value_size : 1);
	if (data == NULL) {
		w->errors = w->ops;
		w->last_error = CAS_ENOMEM;
		return NULL;
	}
	memset(data, 'x', w->value_size);
	if (w->op == OP_CAS) {
		rc = cas_read(w->c, w->key, 0, &v);
		if (rc == CAS_OK)
			version = v.version;
		cas_value_clear(&v);
	}
	for (size_t i = 0; i < w->ops; i++) {
		t0 = now_us();
		if (w->op == OP_CAS) {
			rc = cas_cas(w->c, w->key, version, data, w->value_size, 0, &version);
		} else {
			rc = cas_read(w->c, w->key, 0, &v);
			cas_value_clear(&v);
		}
		t = now_us() - t0;
		w->lat_us[i] = t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
		if (rc != CAS_OK) {
			w->errors++;
			w->last_error = rc;
		}
	}
	free(data);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Runs one row of the table: threads workers, ops operations in all. */
static int run_row(struct cas_client *c, uint64_t run, int threads, enum bench_op op, size_t ops,
		   size_t value_size)
{
	struct worker *ws;
	uint32_t *lat;
	size_t each = ops / (size_t)threads, total, errors = 0, n = 0;
	uint64_t t0, wall;
	int last_error = CAS_OK;

	if (each == 0)
		each = 1;
	total = each * (size_t)threads;
	ws = calloc((size_t)threads, sizeof(*ws));
	lat = calloc(total, sizeof(*lat));
	if (ws == NULL || lat == NULL) {
		free(ws);
		free(lat);
		fprintf(stderr, "casbench: out of memory\n");
		return 1;
	}
	for (int i = 0; i < threads; i++) {
		ws[i].c = c;
		ws[i].op = op;
		ws[i].ops = each;
		ws[i].value_size = value_size;
		ws[i].lat_us = lat + (size_t)i * each;
		snprintf(ws[i].key, sizeof(ws[i].key), "bench/%016llx/%d/%d",
			 (unsigned long long)run, threads, i);
	}
	t0 = now_us();
	for (int i = 0; i < threads; i++) {
		if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0) {
			fprintf(stderr, "casbench: cannot start thread %d\n", i);
			for (int j = 0; j < i; j++)
				pthread_join(ws[j].thread, NULL);
			free(ws);
			free(lat);
			return 1;
		}
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(ws[i].thread, NULL);
		errors += ws[i].errors;
		if (ws[i].errors)
			last_error = ws[i].last_error;
	}
	wall = now_us() - t0;
	n = total;
	qsort(lat, n, sizeof(*lat), cmp_u32);
	printf("%7d  %-4s  %7zu  %8u  %8u  %9.0f  %6zu%s%s\n", threads,
	       op == OP_CAS ? "cas" : "read", n, lat[n / 2],
	       lat[n * 99 / 100 < n ? n * 99 / 100 : n - 1],
	       wall ? (double)n * 1e6 / (double)wall : 0.0, errors, errors ? "  " : "",
	       errors ? cas_strerror(last_error) : "");
	fflush(stdout);
	free(ws);
	free(lat);
	return errors ? 1 : 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: casbench --nodes URL,URL,... [--ops N] [--value-size BYTES] "
		   "[--no-fast-path]\n"
		   "  --nodes       acceptor URLs (default: $CAS_NODES)\n"
		   "  --ops         operations per row, split over the threads (default 2000)\n"
		   "  --value-size  bytes written by each cas (default 100)\n"
		   "  --no-fast-path  a prepare and an accept for every operation (no\n"
		   "                one-round-trip optimization), to compare\n");
}

static bool parse_size(const char *s, size_t *out)
{
	unsigned long long v;
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > SIZE_MAX)
		return false;
	*out = (size_t)v;
	return true;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"nodes", required_argument, NULL, 'n'},
		{"ops", required_argument, NULL, 'o'},
		{"value-size", required_argument, NULL, 's'},
		{"no-fast-path", no_argument, NULL, 'F'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *nodes = getenv("CAS_NODES");
	size_t ops = 2000, value_size = 100;
	struct cas_client_config cfg = {0};
	struct cas_client *c;
	char errmsg[256];
	uint64_t run = 0;
	int opt, rc = 0;

	while ((opt = getopt_long(argc, argv, "n:o:s:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			nodes = optarg;
			break;
		case 'o':
			if (!parse_size(optarg, &ops) || ops == 0) {
				fprintf(stderr, "casbench: bad --ops \"%s\"\n", optarg);
				return 2;
			}
			break;
		case 's':
			if (!parse_size(optarg, &value_size) ||
			    value_size > CAS_DEFAULT_MAX_VALUE) {
				fprintf(stderr, "casbench: bad --value-size \"%s\"\n", optarg);
				return 2;
			}
			break;
		case 'F':
			cfg.no_fast_path = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || nodes == NULL || nodes[0] == '\0') {
		usage(stderr);
		return 2;
	}
	cfg.timeout_ms = 10000;
	if (cas_client_open(nodes, &cfg, &c, errmsg, sizeof(errmsg)) != CAS_OK) {
		fprintf(stderr, "casbench: %s\n", errmsg);
		return 2;
	}
	if (getrandom(&run, sizeof(run), 0) != (ssize_t)sizeof(run))
		run = (uint64_t)time(NULL);

	printf("casbench: %zu nodes, %zu ops per row, %zu-byte values, fast path %s\n",
	       cas_client_nodes(c), ops, value_size, cfg.no_fast_path ? "off" : "on");
	printf("%7s  %-4s  %7s  %8s  %8s  %9s  %6s\n", "threads", "op", "ops", "p50_us", "p99_us",
	       "ops_per_s", "errors");
	for (size_t i = 0; i < sizeof(thread_counts) / sizeof(thread_counts[0]); i++) {
		rc |= run_row(c, run, thread_counts[i], OP_CAS, ops, value_size);
		rc |= run_row(c, run, thread_counts[i], OP_READ, ops, value_size);
	}
	cas_client_close(c);
	return rc;
}

/* compare.c - the same CAS and read workloads against a casd cluster and an
 * etcd cluster, file operations through a casfs mount next to etcd and to
 * an in-memory FUSE filesystem (the floor), and create latency in large
 * directories: a few tables. */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <curl/curl.h>

#include <cas/client.h>

#include "compare.h"

/* ---- the table ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The per-figure median of runs cells into *m; failed if any run failed. */
static void median(const struct cell *cells, int runs, struct cell *m)
{
	double p50[RUNS_MAX], p99[RUNS_MAX], rate[RUNS_MAX];
	int n = 0;

	memset(m, 0, sizeof(*m));
	for (int r = 0; r < runs; r++) {
		const struct cell *c = &cells[r];

		if (!c->done)
			continue;
		if (c->failed) {
			m->failed = true;
			snprintf(m->why, sizeof(m->why), "%s", c->why);
		}
		if (c->errors && m->why[0] == '\0')
			snprintf(m->why, sizeof(m->why), "%s", c->why);
		m->ok += c->ok;
		m->conflicts += c->conflicts;
		m->errors += c->errors;
		p50[n] = c->p50;
		p99[n] = c->p99;
		rate[n] = c->rate;
		n++;
	}
	if (n == 0)
		return;
	qsort(p50, (size_t)n, sizeof(double), cmp_double);
	qsort(p99, (size_t)n, sizeof(double), cmp_double);
	qsort(rate, (size_t)n, sizeof(double), cmp_double);
	m->p50 = n % 2 ? p50[n / 2] : (p50[n / 2 - 1] + p50[n / 2]) / 2;
	m->p99 = n % 2 ? p99[n / 2] : (p99[n / 2 - 1] + p99[n / 2]) / 2;
	m->rate = n % 2 ? rate[n / 2] : (rate[n / 2 - 1] + rate[n / 2]) / 2;
	m->done = true;
}

/* Three columns: p50 and p99 in µs, ops per second. */
static void print_figures(const struct cell *c)
{
	if (!c->done)
		printf(" %8s %8s %9s", "-", "-", "-");
	else if (c->failed)
		printf(" %-27s", "  REFUSED (see below)");
	else if (c->p99 < 0)
		printf(" %8.0f %8s %9.0f", c->p50, "-", c->rate);
	else
		printf(" %8.0f %8.0f %9.0f", c->p50, c->p99, c->rate);
}

static bool usable(const struct cell *c)
{
	return c->done && !c->failed && c->p50 > 0 && c->rate > 0;
}

static void print_row(const char *label, const struct cell *a, const struct cell *e,
		      const char *ratio_note)
{
	printf("%-34s", label);
	print_figures(a);
	printf(" |");
	print_figures(e);
	if (usable(a) && usable(e))
		printf(" | %7.2f %7.2f%s\n", a->p50 / e->p50, a->rate / e->rate, ratio_note);
	else
		printf(" | %7s %7s\n", "-", "-");
}

/* The directory rows' sizes: 10, 10^4, 10^5 entries. */
#define DIR_SIZES 3
static const unsigned long dir_sizes[DIR_SIZES] = {10, 10000, 100000};

/* One file system's directory rows: the folder grown in steps, and the
 * create latency measured at each size it reached. */
struct dir_rows {
	const char *name;
	char path[4096];
	unsigned long have, reached[DIR_SIZES];
	struct cell cells[DIR_SIZES][RUNS_MAX], med[DIR_SIZES];
	char why[ERR_LEN]; /* why the folder stopped short of a size */
};

/* Grows d's folder to each size in turn (within budget_s seconds in all)
 * and times creates there; a size it cannot reach is measured at the size
 * reached, once, and said so. */
static void measure_dirs(struct bench *b, struct dir_rows *d, unsigned budget_s, int runs)
{
	uint64_t end = now_us() + (uint64_t)budget_s * 1000000u;

	for (int s = 0; s < DIR_SIZES; s++) {
		uint64_t now = now_us();
		unsigned left = now < end ? (unsigned)((end - now) / 1000000u) : 0;
		bool short_of = false;

		if (dir_fill(d->path, dir_sizes[s], left, &d->have, d->why, sizeof(d->why)))
			short_of = true;
		d->reached[s] = d->have;
		for (int r = 0; r < runs; r++)
			if (measure_create(b, d->path, r, &d->cells[s][r]))
				fprintf(stderr, "compare: %s create at %lu entries: %s\n", d->name,
					d->have, d->cells[s][r].why);
		median(d->cells[s], runs, &d->med[s]);
		if (short_of) {
			fprintf(stderr, "compare: %s: a folder of %lu entries not set up: %s\n",
				d->name, dir_sizes[s], d->why);
			break;
		}
	}
}

static void print_dirs(const struct dir_rows *m, const struct dir_rows *f)
{
	printf("\n%-34s %-27s | %-27s | %s\n", "create in a folder of N entries", m->name,
	       f ? f->name : "", "vs N=10");
	printf("%-34s %8s %8s %9s | %8s %8s %9s | %7s\n", "entries", "p50_us", "p99_us",
	       "ops_per_s", "p50_us", "p99_us", "ops_per_s", "latency");
	for (int s = 0; s < DIR_SIZES; s++) {
		char label[64];

		if (!m->med[s].done && (f == NULL || !f->med[s].done))
			continue;
		if (m->med[s].done && m->reached[s] != dir_sizes[s])
			snprintf(label, sizeof(label), "%lu (%s: only %lu)", dir_sizes[s], m->name,
				 m->reached[s]);
		else
			snprintf(label, sizeof(label), "%lu", dir_sizes[s]);
		printf("%-34s", label);
		print_figures(&m->med[s]);
		printf(" |");
		if (f)
			print_figures(&f->med[s]);
		else
			printf(" %8s %8s %9s", "", "", "");
		if (usable(&m->med[s]) && usable(&m->med[0]))
			printf(" | %7.2f\n", m->med[s].p50 / m->med[0].p50);
		else
			printf(" | %7s\n", "-");
	}
	printf("(a create is open O_CREAT|O_EXCL and close, then an unlink not timed; ops_per_s\n"
	       " counts create-unlink pairs)\n");
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: compare --casd URL,... [--etcd URL,...] [--mount DIR] [--floor DIR]\n"
		"               [--dirs] [--dir-budget S] [--seconds S] [--runs N]\n"
		"               [--value-size BYTES] [--etcd-spread] [--client-per-thread]\n"
		"  --casd        casd acceptor URLs (the casfs backend)\n"
		"  --etcd        etcd client URLs (the etcd backend; without it, casfs alone)\n"
		"  --mount       a casfs mount of the same casd cluster, for the fs rows\n"
		"  --floor       a memfs mount: the same fs rows on an in-memory filesystem\n"
		"  --dirs        the directory rows: create latency in folders of 10, 10^4\n"
		"                and 10^5 entries (in --mount, and --floor if given)\n"
		"  --dir-budget  seconds to spend filling the casfs folder (default 300)\n"
		"  --seconds     length of each measurement (default 3)\n"
		"  --runs        measurements of each figure; the table shows medians (default 3)\n"
		"  --value-size  bytes each cas writes (default 100)\n"
		"  --etcd-spread spread etcd threads over all endpoints (default: all to the\n"
		"                leader, etcd's best case)\n"
		"  --client-per-thread  a casfs client (proposer) per thread (default: one\n"
		"                shared, as in a mount)\n");
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno == 0 && *end == '\0' && *out <= max;
}

/* Splits a comma-separated list into e->urls. */
static int split_urls(const char *list, struct etcd *e)
{
	char *copy = strdup(list), *save = NULL, *tok;

	if (copy == NULL)
		return -1;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char **u = realloc(e->urls, (e->n + 1) * sizeof(*u));

		if (u == NULL)
			break;
		e->urls = u;
		e->urls[e->n] = strdup(tok);
		if (e->urls[e->n] == NULL)
			break;
		e->n++;
	}
	free(copy);
	return tok == NULL && e->n > 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"casd", required_argument, NULL, 'c'},
		{"etcd", required_argument, NULL, 'e'},
		{"mount", required_argument, NULL, 'm'},
		{"floor", required_argument, NULL, 'f'},
		{"dirs", no_argument, NULL, 'd'},
		{"dir-budget", required_argument, NULL, 'B'},
		{"seconds", required_argument, NULL, 's'},
		{"runs", required_argument, NULL, 'r'},
		{"value-size", required_argument, NULL, 'v'},
		{"etcd-spread", no_argument, NULL, 'S'},
		{"client-per-thread", no_argument, NULL, 'P'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct bench b = {.seconds = 3, .value_size = 100};
	struct cas_client_config cfg = {.timeout_ms = OP_TIMEOUT_MS};
	struct backend backends[2] = {casfs_backend, etcd_backend};
	static struct cell cells[2][W_COUNT][RUNS_MAX], fs_cells[F_COUNT][RUNS_MAX];
	static struct cell floor_cells[F_COUNT][RUNS_MAX];
	struct cell med[2][W_COUNT], fs_med[F_COUNT], floor_med[F_COUNT];
	static struct dir_rows dir_mount = {.name = "casfs mount"}, dir_floor = {.name = "memfs"};
	bool dirs = false;
	unsigned long dir_budget = 300;
	const char *casd = NULL, *etcd_urls = NULL;
	struct etcd e = {0};
	struct casfs cf = {0};
	struct cas_client *client;
	bool spread = false, refused = false;
	unsigned long v, runs = 3;
	char err[ERR_LEN];
	int opt, nb, rc = 1;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			casd = optarg;
			break;
		case 'e':
			etcd_urls = optarg;
			break;
		case 'm':
			b.mount = optarg;
			break;
		case 'f':
			b.floor = optarg;
			break;
		case 'd':
			dirs = true;
			break;
		case 'B':
			if (!parse_uint(optarg, 86400, &dir_budget))
				goto out_usage;
			break;
		case 's':
			if (!parse_uint(optarg, 600, &v) || v == 0)
				goto out_usage;
			b.seconds = (unsigned)v;
			break;
		case 'r':
			if (!parse_uint(optarg, RUNS_MAX, &runs) || runs == 0)
				goto out_usage;
			break;
		case 'v':
			if (!parse_uint(optarg, 65536, &v))
				goto out_usage;
			b.value_size = v;
			break;
		case 'S':
			spread = true;
			break;
		case 'P':
			cf.per_thread = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			goto out_usage;
		}
	}
	if (optind != argc || casd == NULL || (dirs && b.mount == NULL))
		goto out_usage;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (getrandom(&b.id, sizeof(b.id), 0) != (ssize_t)sizeof(b.id))
		b.id = (uint64_t)time(NULL);
	b.value = malloc(b.value_size + 1);
	if (b.value == NULL) {
		fprintf(stderr, "compare: out of memory\n");
		return 1;
	}
	memset(b.value, 'x', b.value_size);
	/* TLS (compare.sh --tls): the same files for both clusters. */
	cf.auth.tls_ca = e.tls_ca = getenv("CAS_TLS_CA");
	cf.auth.tls_cert = e.tls_cert = getenv("CAS_TLS_CERT");
	cf.auth.tls_key = e.tls_key = getenv("CAS_TLS_KEY");
	cf.auth.token_file = getenv("CAS_TOKEN_FILE");
	cfg.auth = cf.auth;
	if (cas_client_open(casd, &cfg, &client, err, sizeof(err)) != CAS_OK) {
		fprintf(stderr, "compare: casd: %s\n", err);
		goto out_free_value;
	}
	cf.shared = client;
	cf.nodes = casd;
	backends[0].priv = &cf;
	nb = 1;
	if (etcd_urls) {
		if (split_urls(etcd_urls, &e)) {
			fprintf(stderr, "compare: bad --etcd list\n");
			goto out_close_client;
		}
		if (etcd_find_leader(&e, err, sizeof(err))) {
			fprintf(stderr, "compare: %s\n", err);
			goto out_free_etcd;
		}
		if (spread)
			e.leader = e.n;
		backends[1].priv = &e;
		nb = 2;
	}

	printf("compare: casfs on %zu casd nodes (%s)", cas_client_nodes(client),
	       cf.per_thread ? "a client per thread" : "one client for all threads");
	if (nb == 2)
		printf(" vs etcd on %zu nodes (threads to %s)", e.n,
		       spread ? "all endpoints" : "the leader");
	printf("; %lu run(s) of %u s per figure, medians; %zu-byte values\n", runs, b.seconds,
	       b.value_size);
	fflush(stdout);

	for (int r = 0; r < (int)runs; r++) {
		struct keys keys[2];
		double write_rate = 0;

		for (int i = 0; i < 2; i++)
			for (int wl = 0; wl < W_COUNT; wl++)
				for (int t = 0; t < MAX_THREADS; t++)
					keys[i].version[wl][t] = NO_VERSION;

		/* Backends take turns on each workload, so that load from
		 * elsewhere on the machine falls on both alike. */
		for (int wl = 0; wl < W_COUNT; wl++) {
			for (int i = 0; i < nb; i++) {
				struct cell *c = &cells[i][wl][r];

				if (measure(&b, &backends[i], (enum workload)wl, r, &keys[i], c))
					fprintf(stderr, "compare: %s %s: %s\n", backends[i].name,
						workloads[wl].label, c->why);
				else if (c->failed)
					fprintf(stderr, "compare: %s %s: %s\n", backends[i].name,
						workloads[wl].label, c->why);
			}
		}
		if (b.mount == NULL)
			continue;
		/* The mount and the floor take turns too. */
		for (int f = 0; f < F_COUNT; f++) {
			struct cell *c = &fs_cells[f][r];

			if (measure_fs(&b, b.mount, (enum fs_workload)f, r, write_rate, c))
				fprintf(stderr, "compare: %s: %s\n", fs_defs[f].label, c->why);
			if (f == F_WRITE1)
				write_rate = c->rate;
			if (b.floor == NULL)
				continue;
			c = &floor_cells[f][r];
			if (measure_fs(&b, b.floor, (enum fs_workload)f, r, write_rate, c))
				fprintf(stderr, "compare: memfs %s: %s\n", fs_defs[f].label,
					c->why);
		}
	}
	if (dirs) {
		snprintf(dir_mount.path, sizeof(dir_mount.path), "%s/compare-dir-%016" PRIx64,
			 b.mount, b.id);
		measure_dirs(&b, &dir_mount, (unsigned)dir_budget, (int)runs);
		if (b.floor) {
			snprintf(dir_floor.path, sizeof(dir_floor.path),
				 "%s/compare-dir-%016" PRIx64, b.floor, b.id);
			measure_dirs(&b, &dir_floor, 3600, (int)runs);
		}
	}

	for (int i = 0; i < 2; i++)
		for (int wl = 0; wl < W_COUNT; wl++)
			median(cells[i][wl], (int)runs, &med[i][wl]);
	for (int f = 0; f < F_COUNT; f++) {
		median(fs_cells[f], (int)runs, &fs_med[f]);
		median(floor_cells[f], (int)runs, &floor_med[f]);
	}

	printf("\n%-34s %-27s | %-27s | %s\n", "", "casfs", nb == 2 ? "etcd" : "", "casfs/etcd");
	printf("%-34s %8s %8s %9s | %8s %8s %9s | %7s %7s\n", "workload", "p50_us", "p99_us",
	       "ops_per_s", "p50_us", "p99_us", "ops_per_s", "latency", "tput");
	for (int wl = 0; wl < W_COUNT; wl++)
		print_row(workloads[wl].label, &med[0][wl], &med[1][wl], "");
	if (b.mount) {
		printf("%-34s %-27s | %-27s | %s\n", "", "casfs mount", "raw casfs client (above)",
		       "mount/raw");
		print_row(fs_defs[F_WRITE1].label, &fs_med[F_WRITE1], &med[0][W_CAS1],
			  "  vs cas, 1");
		print_row(fs_defs[F_READ1].label, &fs_med[F_READ1], &med[0][W_READ1],
			  "  vs read, 1");
		print_row(fs_defs[F_BASH].label, &fs_med[F_BASH], &med[0][W_CAS1], "  vs cas, 1");
		if (nb == 2) {
			printf("%-34s %-27s | %-27s | %s\n", "", "casfs mount", "etcd (above)",
			       "mount/etcd");
			print_row(fs_defs[F_WRITE32].label, &fs_med[F_WRITE32], &med[1][W_CAS32],
				  "  vs cas, 32");
			print_row(fs_defs[F_READ32].label, &fs_med[F_READ32], &med[1][W_READ32],
				  "  vs read, 32");
			print_row(fs_defs[F_READ1].label, &fs_med[F_READ1], &med[1][W_READ1],
				  "  vs read, 1");
			print_row(fs_defs[F_WRITE1].label, &fs_med[F_WRITE1], &med[1][W_CAS1],
				  "  vs cas, 1");
		}
		if (b.floor) {
			printf("%-34s %-27s | %-27s | %s\n", "", "casfs mount", "memfs (the floor)",
			       "mount/floor");
			for (int f = 0; f < F_COUNT; f++)
				print_row(fs_defs[f].label, &fs_med[f], &floor_med[f], "");
		}
	}
	if (dirs)
		print_dirs(&dir_mount, b.floor ? &dir_floor : NULL);

	printf("\n");
	for (int i = 0; i < nb; i++) {
		const struct cell *c = &med[i][W_CONTEND8];

		if (c->done)
			printf("contention, %s: %" PRIu64 " increments, %" PRIu64
			       " conflicts, %" PRIu64 " unknown outcomes over %lu run(s); %s\n",
			       backends[i].name, c->ok, c->conflicts, c->errors, runs,
			       c->failed ? "COUNTER WRONG" : "counter exact");
	}
	for (int i = 0; i < nb; i++) {
		for (int wl = 0; wl < W_COUNT; wl++) {
			const struct cell *c = &med[i][wl];

			if (c->failed)
				refused = true;
			if (c->failed || c->errors)
				printf("%s %s: %" PRIu64 " errors; %s%s\n", backends[i].name,
				       workloads[wl].label, c->errors,
				       c->failed ? "figures refused: " : "first: ", c->why);
		}
	}
	for (int f = 0; f < F_COUNT; f++) {
		if (fs_med[f].failed) {
			refused = true;
			printf("%s: figures refused: %s\n", fs_defs[f].label, fs_med[f].why);
		}
		if (floor_med[f].failed) {
			refused = true;
			printf("memfs %s: figures refused: %s\n", fs_defs[f].label,
			       floor_med[f].why);
		}
	}

	printf("\ntargets:\n");
	if (nb == 2 && usable(&med[0][W_CAS1]) && usable(&med[1][W_CAS1])) {
		double r1 = med[0][W_CAS1].p50 / med[1][W_CAS1].p50;

		printf("  sequential cas latency <= 1/4 of etcd's: %.2f (%.0f vs %.0f us): %s\n",
		       r1, med[0][W_CAS1].p50, med[1][W_CAS1].p50, r1 <= 0.25 ? "met" : "NOT met");
	}
	if (nb == 2 && usable(&med[0][W_CAS32]) && usable(&med[1][W_CAS32])) {
		double r2 = med[0][W_CAS32].rate / med[1][W_CAS32].rate;

		printf("  32-client cas throughput >= 3x etcd's: %.2fx (%.0f vs %.0f/s): %s\n", r2,
		       med[0][W_CAS32].rate, med[1][W_CAS32].rate, r2 >= 3 ? "met" : "NOT met");
	}
	if (usable(&fs_med[F_WRITE1]) && usable(&med[0][W_CAS1])) {
		double r3 = fs_med[F_WRITE1].p50 / med[0][W_CAS1].p50;

		printf("  echo x > f through the mount <= 2x a raw cas: %.2fx (%.0f vs %.0f us):"
		       " %s\n",
		       r3, fs_med[F_WRITE1].p50, med[0][W_CAS1].p50, r3 <= 2 ? "met" : "NOT met");
	}
	if (nb == 2 && usable(&fs_med[F_WRITE32]) && usable(&med[1][W_CAS32])) {
		double r = fs_med[F_WRITE32].rate / med[1][W_CAS32].rate;

		printf("  32 threads writing through the mount >= 4x etcd's 32-client cas rate:"
		       " %.2fx (%.0f vs %.0f/s): %s\n",
		       r, fs_med[F_WRITE32].rate, med[1][W_CAS32].rate, r >= 4 ? "met" : "NOT met");
	}
	if (nb == 2 && usable(&fs_med[F_READ32]) && usable(&med[1][W_READ32])) {
		double r = fs_med[F_READ32].rate / med[1][W_READ32].rate;

		printf("  32 threads reading through the mount >= 2x etcd's 32-client read rate:"
		       " %.2fx (%.0f vs %.0f/s): %s\n",
		       r, fs_med[F_READ32].rate, med[1][W_READ32].rate, r >= 2 ? "met" : "NOT met");
	}
	if (nb == 2 && usable(&fs_med[F_READ1]) && usable(&med[1][W_READ1])) {
		double r = fs_med[F_READ1].p50 / med[1][W_READ1].p50;

		printf("  open-read-close, 1 thread <= 0.4x etcd's linearizable read latency:"
		       " %.2f (%.0f vs %.0f us): %s\n",
		       r, fs_med[F_READ1].p50, med[1][W_READ1].p50, r <= 0.4 ? "met" : "NOT met");
	}
	if (dirs && usable(&dir_mount.med[0])) {
		const struct cell *big = &dir_mount.med[DIR_SIZES - 1];

		if (usable(big) && dir_mount.reached[DIR_SIZES - 1] == dir_sizes[DIR_SIZES - 1])
			printf("  create at 10^5 entries <= 1.5x at 10: %.2fx (%.0f vs %.0f us): "
			       "%s\n",
			       big->p50 / dir_mount.med[0].p50, big->p50, dir_mount.med[0].p50,
			       big->p50 <= 1.5 * dir_mount.med[0].p50 ? "met" : "NOT met");
		else
			printf("  create at 10^5 entries <= 1.5x at 10: NOT met (no folder of 10^5"
			       " entries: %s)\n",
			       dir_mount.why);
	}
	rc = refused ? 1 : 0;
	if (refused)
		printf("\ncompare: a correctness check failed; its figures are refused\n");

out_free_etcd:
	for (size_t i = 0; i < e.n; i++)
		free(e.urls[i]);
	free(e.urls);
out_close_client:
	cas_client_close(client);
out_free_value:
	free(b.value);
	curl_global_cleanup();
	return rc;

out_usage:
	usage(stderr);
	return 2;
}

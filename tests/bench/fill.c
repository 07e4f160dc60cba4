/* fill.c - fills a cluster with registers through the client library, then
 * times reads and cas on random existing keys (driven by scale.sh). */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cas/client.h>

#define KEY_FMT "scale/%08llu"

struct options {
	const char *nodes;
	unsigned long long from, to; /* keys [from, to) are written */
	unsigned threads;
	size_t value_size;
	size_t samples;
	uint64_t seed;
};

struct filler {
	struct cas_client *c;
	const struct options *o;
	atomic_ullong *next; /* next key to write */
	const unsigned char *data;
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

/* xorshift64*: the sample keys need no more. */
static uint64_t next_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static void *fill_main(void *arg)
{
	struct filler *f = arg;
	unsigned long long i;
	char key[64];
	int rc;

	while ((i = atomic_fetch_add(f->next, 1)) < f->o->to) {
		snprintf(key, sizeof(key), KEY_FMT, i);
		rc = cas_put(f->c, key, f->data, f->o->value_size, 0, NULL);
		if (rc != CAS_OK) {
			f->errors++;
			f->last_error = rc;
		}
	}
	return NULL;
}

/* Writes keys [from, to) with o->threads threads; prints one line. */
static int fill(struct cas_client *c, const struct options *o, const unsigned char *data)
{
	atomic_ullong next = o->from;
	struct filler *fs;
	size_t errors = 0;
	int last_error = CAS_OK;
	uint64_t t0, wall;
	unsigned i, started;

	fs = calloc(o->threads, sizeof(*fs));
	if (!fs) {
		fprintf(stderr, "fill: out of memory\n");
		return 1;
	}
	t0 = now_us();
	for (started = 0; started < o->threads; started++) {
		fs[started] = (struct filler){.c = c, .o = o, .next = &next, .data = data};
		if (pthread_create(&fs[started].thread, NULL, fill_main, &fs[started])) {
			fprintf(stderr, "fill: cannot start thread %u\n", started);
			break;
		}
	}
	for (i = 0; i < started; i++) {
		pthread_join(fs[i].thread, NULL);
		errors += fs[i].errors;
		if (fs[i].errors)
			last_error = fs[i].last_error;
	}
	wall = now_us() - t0;
	printf("fill %llu %llu seconds %.1f puts_per_s %.0f errors %zu%s%s\n", o->from, o->to,
	       (double)wall / 1e6, wall ? (double)(o->to - o->from) * 1e6 / (double)wall : 0.0,
	       errors, errors ? " " : "", errors ? cas_strerror(last_error) : "");
	free(fs);
	return started == o->threads && !errors ? 0 : 1;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Picks a key in [0, to) not picked before (used has to bits). */
static unsigned long long pick(uint64_t *rng, unsigned char *used, unsigned long long to)
{
	unsigned long long k;

	do
		k = next_rand(rng) % to;
	while (used[k / 8] & (1u << (k % 8)));
	used[k / 8] |= (unsigned char)(1u << (k % 8));
	return k;
}

/* Times o->samples reads, then as many cas, one at a time, each on a
 * distinct random key of [0, to) that no earlier sample touched: no
 * cached promise helps (each is a prepare and an accept). A cas expects
 * version 1; one that finds the key moved (an earlier run's sample)
 * still ran a full round and is timed, counted as "moved". */
static int sample(struct cas_client *c, const struct options *o, const unsigned char *data)
{
	unsigned long long to = o->to, k;
	size_t n = o->samples, i, errors[2] = {0, 0}, moved = 0;
	uint64_t rng = o->seed ? o->seed : 1, t0, t, version;
	unsigned char *used;
	uint32_t *lat;
	struct cas_value v;
	char key[64];
	int op, rc, ret = 0;

	if (2 * n > to)
		n = to / 2;
	used = calloc(to / 8 + 1, 1);
	lat = calloc(n ? n : 1, sizeof(*lat));
	if (!used || !lat) {
		fprintf(stderr, "fill: out of memory\n");
		free(used);
		free(lat);
		return 1;
	}
	for (op = 0; op < 2; op++) {
		for (i = 0; i < n; i++) {
			k = pick(&rng, used, to);
			snprintf(key, sizeof(key), KEY_FMT, k);
			t0 = now_us();
			if (op == 0) {
				rc = cas_read(c, key, 0, &v);
				if (rc == CAS_OK && v.version == 0)
					rc = CAS_EINVAL; /* a key the fill did not write */
				cas_value_clear(&v);
			} else {
				rc = cas_cas(c, key, 1, data, o->value_size, 0, &version);
				if (rc == CAS_EVERSION) {
					moved++;
					rc = CAS_OK;
				}
			}
			t = now_us() - t0;
			lat[i] = t > UINT32_MAX ? UINT32_MAX : (uint32_t)t;
			if (rc != CAS_OK)
				errors[op]++;
		}
		qsort(lat, n, sizeof(*lat), cmp_u32);
		printf("%s keys %llu samples %zu p50_us %u p99_us %u errors %zu",
		       op ? "cas" : "read", to, n, n ? lat[n / 2] : 0, n ? lat[n * 99 / 100] : 0,
		       errors[op]);
		if (op)
			printf(" moved %zu", moved);
		printf("\n");
		ret |= errors[op] ? 1 : 0;
	}
	free(used);
	free(lat);
	return ret;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: fill --nodes URL,... --to N [--from N] [--threads N] [--value-size BYTES]\n"
		"            [--samples N] [--seed N]\n"
		"Writes keys " KEY_FMT " for i in [from, to) with cas_put from many threads,\n"
		"then times --samples reads and as many cas (default 2000 each, one at a\n"
		"time) on distinct random keys of [0, to).\n",
		0ull);
}

static bool parse_ull(const char *s, unsigned long long *out)
{
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0';
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"nodes", required_argument, NULL, 'n'},
		{"from", required_argument, NULL, 'f'},
		{"to", required_argument, NULL, 't'},
		{"threads", required_argument, NULL, 'j'},
		{"value-size", required_argument, NULL, 's'},
		{"samples", required_argument, NULL, 'S'},
		{"seed", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct options o = {.threads = 64, .value_size = 100, .samples = 2000, .seed = 1};
	struct cas_client_config cfg = {.timeout_ms = 30000};
	unsigned long long v;
	struct cas_client *c;
	unsigned char *data;
	char errmsg[256];
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (opt == 'h') {
			usage(stdout);
			return 0;
		}
		if (opt == 'n') {
			o.nodes = optarg;
			continue;
		}
		if (opt == '?' || !parse_ull(optarg, &v)) {
			usage(stderr);
			return 2;
		}
		switch (opt) {
		case 'f':
			o.from = v;
			break;
		case 't':
			o.to = v;
			break;
		case 'j':
			o.threads = v && v <= 1024 ? (unsigned)v : 0;
			break;
		case 's':
			o.value_size = v <= CAS_DEFAULT_MAX_VALUE ? (size_t)v : SIZE_MAX;
			break;
		case 'S':
			o.samples = (size_t)v;
			break;
		case 'r':
			o.seed = v;
			break;
		}
	}
	if (optind != argc || !o.nodes || !o.to || o.from > o.to || !o.threads ||
	    o.value_size == SIZE_MAX) {
		usage(stderr);
		return 2;
	}
	if (cas_client_open(o.nodes, &cfg, &c, errmsg, sizeof(errmsg)) != CAS_OK) {
		fprintf(stderr, "fill: %s\n", errmsg);
		return 2;
	}
	data = malloc(o.value_size ? o.value_size : 1);
	if (!data) {
		fprintf(stderr, "fill: out of memory\n");
		cas_client_close(c);
		return 1;
	}
	memset(data, 'v', o.value_size);
	rc = o.from < o.to ? fill(c, &o, data) : 0;
	fflush(stdout);
	if (!rc && o.samples)
		rc = sample(c, &o, data);
	free(data);
	cas_client_close(c);
	return rc;
}

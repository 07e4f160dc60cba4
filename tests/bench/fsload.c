/* fsload.c - one of compare's file workloads through a mount, alone: for
 * profiling a mount (perf, casfs -d, the nodes' /metrics) while it runs
 * a known number of operations. */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "compare.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: fsload [--seconds S | --count N] [--entries N] DIR WORKLOAD\n"
		   "  WORKLOAD: write1, write32, read1, read32 (open-trunc-write-close or\n"
		   "            open-read-close, 1 or 32 threads on distinct files), or\n"
		   "            create (in DIR/dir, filled to --entries files first)\n"
		   "  --seconds  length of the measurement (default 3)\n"
		   "  --count    operations per thread instead (not for create)\n"
		   "  --entries  files in the create workload's folder (default 10)\n"
		   "prints: workload ops p50_us p99_us ops_per_s\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"seconds", required_argument, NULL, 's'},
		{"count", required_argument, NULL, 'n'},
		{"entries", required_argument, NULL, 'e'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static const char *const names[F_COUNT] = {
		[F_WRITE1] = "write1", [F_WRITE32] = "write32", [F_READ1] = "read1",
		[F_READ32] = "read32", [F_BASH] = "bash",
	};
	struct bench b = {.seconds = 3};
	unsigned long entries = 10, have = 0;
	struct cell c;
	char why[ERR_LEN], sub[4096];
	const char *dir, *wl;
	int opt, f, rc;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			b.seconds = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'n':
			b.count = strtoul(optarg, NULL, 10);
			break;
		case 'e':
			entries = strtoul(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind != 2 || (b.seconds == 0 && b.count == 0)) {
		usage(stderr);
		return 2;
	}
	dir = argv[optind];
	wl = argv[optind + 1];
	if (getrandom(&b.id, sizeof(b.id), 0) != (ssize_t)sizeof(b.id))
		b.id = (uint64_t)time(NULL);
	if (!strcmp(wl, "create")) {
		snprintf(sub, sizeof(sub), "%s/dir", dir);
		if (dir_fill(sub, entries, 3600, &have, why, sizeof(why))) {
			fprintf(stderr, "fsload: %s\n", why);
			return 1;
		}
		rc = measure_create(&b, sub, 0, &c);
	} else {
		for (f = 0; f < F_COUNT; f++)
			if (!strcmp(wl, names[f]))
				break;
		if (f == F_COUNT || f == F_BASH) {
			usage(stderr);
			return 2;
		}
		rc = measure_fs(&b, dir, (enum fs_workload)f, 0, 0, &c);
	}
	if (rc) {
		fprintf(stderr, "fsload: %s\n", c.why);
		return 1;
	}
	printf("%s %" PRIu64 " %.0f %.0f %.0f\n", wl, c.ok, c.p50, c.p99, c.rate);
	return 0;
}

/* sim.c - the deterministic simulation's sweep: for each seed, a simulated
 * cluster (cluster.h) under random reads, writes and conditional writes,
 * one seed in three while its members change (cluster.h, "Membership"),
 * each client then reading every key once the change is done; one seed
 * in two also deletes, and a collector purges the tombstones while the
 * clients run more ops (cluster.h, "Deletion"). Every history goes to the
 * linearizability checker, whose model reads a deleted key as absent.
 * With --broken, a negative control: a deliberate bug the sweep must
 * catch. */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "faults.h"
#include "linearize.h"
#include "rand.h"

#define OPS_PER_PROP 8
#define OPS_AFTER    8 /* in a seed with deletes, once the collector is at work */
#define MAX_STEPS    200000

/* Over all seeds run: ops, and ops that started from a cached promise. */
static unsigned long total_ops, cached_starts, queries_answered;
/* Over the seeds that changed members: how many, by change, refusals of
 * an epoch, reconfigurer crashes. */
static unsigned long changes_run[5], epoch_refusals, reconf_crashes;
/* Over the seeds that deleted: how many, deletes that succeeded, the
 * collector's write-backs, purges, acceptors that dropped a key, crashes,
 * requests refused by a floor. */
static unsigned long gc_seeds, deletes_ok, gc_writebacks, gc_purges, gc_drops, gc_crashes,
	floor_refusals;

enum op_kind { K_READ, K_WRITE, K_CAS, K_DELETE };

/* What proposer i of the cluster is asked to do, and what it saw. */
struct client {
	int ops_left;
	int ops_after;	 /* once the collector is at work (deletes) */
	int reads_after; /* reads of each key once the members changed */
	enum op_kind kind;
	uint64_t expected;
	char value[32];
	int calls; /* of the change function in this op */
	uint64_t invoke;
	uint64_t last_version[CLUSTER_KEYS];
};

/* One seed's run: the cluster, its clients and their history. */
struct run {
	struct cluster cluster;
	struct client client[CLUSTER_MAX_PROP];
	uint64_t step; /* logical time of the history */
	struct cas_history *hist;
};

/* Writes the client's value stamped with the call's number ("p1.0.7#2"):
 * a change function that is not deterministic, as casfs's (it stamps the
 * time), so that an op answering with the wrong one of its own proposals
 * is caught (--broken mine-by-version). */
static int fn_put(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	struct client *P = arg;
	char s[48];

	(void)cur;
	snprintf(s, sizeof(s), "%s#%d", P->value, P->calls++);
	next->len = strlen(s);
	next->data = malloc(next->len);
	if (next->data == NULL)
		return CAS_ENOMEM;
	memcpy(next->data, s, next->len);
	return CAS_OK;
}

static int fn_cas(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	struct client *P = arg;

	if (cur->version != P->expected)
		return CAS_EVERSION;
	return fn_put(P, cur, next);
}

static int fn_read(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	(void)arg;
	(void)cur;
	(void)next;
	return CAS_ENOCHANGE;
}

static bool has_work(struct cluster *C, int pi, void *arg)
{
	struct run *R = arg;

	if (R->client[pi].ops_left > 0)
		return true;
	if (C->gc.on && C->gc.released && R->client[pi].ops_after > 0)
		return true;
	return C->reconf.on && C->reconf.step == 5 && R->client[pi].reads_after > 0;
}

/* The workload: 30% reads, 20% writes, 50% conditional writes on the
 * version this client last saw, on a random register; in a seed with
 * deletes, one op in six of any kind is a delete instead, and the last of
 * the first ops one in two. */
static void start(struct cluster *C, int pi, void *arg)
{
	struct run *R = arg;
	struct client *P = &R->client[pi];
	uint64_t *rng = &C->prop[pi].rng;
	unsigned r = (unsigned)cas_rand_below(rng, 10);
	int key = (int)cas_rand_below(rng, CLUSTER_KEYS);
	cas_change_fn fn;
	unsigned flags;
	bool final_read = false;

	if (P->ops_left <= 0 && C->gc.on && C->gc.released && P->ops_after > 0) {
		P->ops_after--;
	} else if (P->ops_left <= 0) {
		/* After a change of members: read every key once more. */
		r = 0;
		key = --P->reads_after;
		final_read = true;
	}
	P->kind = r < 3 ? K_READ : r < 5 ? K_WRITE : K_CAS;
	if (C->gc.on && !final_read && cas_rand_below(rng, 6) == 0)
		P->kind = K_DELETE;
	if (C->gc.on && P->ops_left == 1 && cas_rand_below(rng, 2) == 0)
		P->kind = K_DELETE; /* so that the collector finds tombstones */
	P->expected = P->last_version[key];
	snprintf(P->value, sizeof(P->value), "p%d.%u.%d", pi, C->prop[pi].generation, P->ops_left);
	total_ops++;
	P->calls = 0;
	P->invoke = ++R->step;
	fn = P->kind == K_READ	  ? fn_read
	     : P->kind == K_WRITE ? fn_put
	     : P->kind == K_CAS	  ? fn_cas
				  : NULL;
	flags = P->kind == K_READ ? CLUSTER_OP_READ : P->kind == K_DELETE ? CLUSTER_OP_DELETE : 0;
	cluster_start_op(C, pi, key, fn, P, flags);
}

static void add(struct run *R, int key, const struct cas_hist_op *h)
{
	if (cas_history_add(R->hist, cluster_keys[key], h) != CAS_OK) {
		fprintf(stderr, "sim: cannot record an operation\n");
		exit(2);
	}
}

/* A write whose outcome is unknown may have left any one of its
 * proposals (each call of the change function made its own bytes): each
 * goes into the history as an unknown write (none when no proposal left
 * the proposer). The checker may then take more than one of them; only
 * one can really have been chosen, so this is looser, never stricter. */
static void add_unknown_proposals(struct run *R, int key, const struct cas_op *op,
				  struct cas_hist_op *h)
{
	for (size_t i = 0; i <= op->n_mine; i++) {
		const struct cas_reg *m = i < op->n_mine ? &op->mine[i] : &op->out.value;

		if (i == op->n_mine && !op->out_is_change)
			break;
		h->value = m->data;
		h->len = m->len;
		add(R, key, h);
	}
}

/* Writes the op down in the history. */
static void done(struct cluster *C, int pi, const struct cas_op *op, const struct cas_value *v,
		 bool crashed, void *arg)
{
	struct run *R = arg;
	struct client *P = &R->client[pi];
	int key = C->prop[pi].key;
	struct cas_hist_op h = {.invoke = P->invoke};
	char label[48];
	int rc = op->result;

	if (!crashed)
		++R->step;
	h.complete = R->step;
	snprintf(label, sizeof(label), "proposer %d op %d", pi, OPS_PER_PROP - P->ops_left);
	h.label = label;
	h.kind = P->kind == K_READ    ? CAS_HIST_READ
		 : P->kind == K_WRITE ? CAS_HIST_WRITE
		 : P->kind == K_CAS   ? CAS_HIST_CAS
				      : CAS_HIST_DELETE;
	h.expected = P->expected;
	h.value = P->value;
	h.len = strlen(P->value);
	if ((crashed || rc == CAS_EUNAVAILABLE) && P->kind == K_DELETE) {
		/* Every proposal of a delete is the same deletion. */
		h.status = CAS_HIST_UNKNOWN;
		if (crashed)
			h.complete = CAS_TIME_PENDING;
		if (op->n_mine > 0 || op->out_is_change)
			add(R, key, &h);
		goto out_log;
	} else if ((crashed || rc == CAS_EUNAVAILABLE) && P->kind != K_READ) {
		h.status = CAS_HIST_UNKNOWN;
		if (crashed)
			h.complete = CAS_TIME_PENDING;
		add_unknown_proposals(R, key, op, &h);
		goto out_log;
	} else if (crashed || rc == CAS_EUNAVAILABLE) {
		h.status = CAS_HIST_UNKNOWN;
		if (crashed)
			h.complete = CAS_TIME_PENDING;
	} else if (rc == CAS_OK) {
		if (op->cfg.read_only && op->ballot.counter == 0)
			queries_answered++; /* no full round was needed */
		h.status = CAS_HIST_OK;
		h.version = v->version;
		/* What the op reports: for a write, the proposal it says won. */
		h.value = v->data;
		h.len = v->len;
		P->last_version[key] = v->version;
		if (P->kind == K_DELETE)
			deletes_ok++;
	} else if (rc == CAS_EVERSION) {
		h.status = CAS_HIST_MISMATCH;
		h.version = v->version;
		P->last_version[key] = v->version;
	} else {
		fprintf(stderr, "sim: seed %" PRIu64 ": unexpected result %s\n", C->seed,
			cas_strerror(rc));
		exit(2);
	}
	add(R, key, &h);
out_log:
	if (C->verbose)
		printf("%" PRIu64 ": proposer %d %s %s -> %s v%" PRIu64 "\n", C->now, pi,
		       P->kind == K_READ    ? "read"
		       : P->kind == K_WRITE ? "write"
		       : P->kind == K_CAS   ? "cas"
					    : "delete",
		       cluster_keys[key], crashed ? "crashed" : cas_strerror(rc), v->version);
	P->ops_left--;
}

static void run_free(struct run *R)
{
	cached_starts += R->cluster.cached_starts;
	if (R->cluster.gc.on) {
		gc_seeds++;
		gc_writebacks += R->cluster.gc.writebacks;
		gc_purges += R->cluster.gc.purges;
		gc_drops += R->cluster.gc.drops;
		gc_crashes += R->cluster.gc.crashes;
		floor_refusals += R->cluster.floor_refusals;
	}
	if (R->cluster.reconf.on) {
		changes_run[R->cluster.reconf.change]++;
		epoch_refusals += R->cluster.refusals;
		reconf_crashes += R->cluster.reconf.crashes;
	}
	cluster_free(&R->cluster);
	cas_history_free(R->hist);
}

/* Runs one seed. Returns 0 when its history is linearizable, 1 when not. */
static int run_seed(uint64_t seed, const struct cluster_options *opt, bool print_failure)
{
	bool verbose = opt->verbose;
	struct run R;
	struct cluster_hooks hooks = {
		.has_work = has_work, .start = start, .done = done, .arg = &R};
	struct cluster *C = &R.cluster;
	char why[2048];
	bool ok = false;

	memset(&R, 0, sizeof(R));
	cluster_init(C, seed, opt, &hooks);
	if (cas_history_new(&R.hist) != CAS_OK) {
		fprintf(stderr, "sim: out of memory\n");
		exit(2);
	}
	for (int pi = 0; pi < C->n_prop; pi++) {
		R.client[pi].ops_left = OPS_PER_PROP;
		R.client[pi].ops_after = C->gc.on ? OPS_AFTER : 0;
		R.client[pi].reads_after = CLUSTER_KEYS;
	}

	for (unsigned long s = 0; s < MAX_STEPS && !cluster_done(C); s++)
		cluster_step(C);
	if (!cluster_done(C)) {
		fprintf(stderr, "sim: seed %" PRIu64 ": did not finish in %d steps\n", seed,
			MAX_STEPS);
		run_free(&R);
		return 1;
	}
	if (cas_history_check(R.hist, &ok, why, sizeof(why)) != CAS_OK) {
		fprintf(stderr, "sim: seed %" PRIu64 ": checker out of memory\n", seed);
		ok = false;
	}
	if (verbose) {
		printf("history (%zu ops, %lu faults):\n", cas_history_count(R.hist), C->faults);
		cas_history_write(R.hist, stdout);
	}
	if (!ok && print_failure)
		fprintf(stderr, "sim: seed %" PRIu64 " is not linearizable: %s\n", seed, why);
	run_free(&R);
	return ok ? 0 : 1;
}

static const struct {
	const char *name;
	unsigned fault;
	bool durable;
	bool skip_rescan;
	bool skip_grace;
} controls[] = {
	{"quorum-one", CAS_FAULT_QUORUM_ONE, false, false, false},
	{"promise-ballot", CAS_FAULT_PROMISE_BALLOT, false, false, false},
	{"counter-only", CAS_FAULT_COUNTER_ONLY, false, false, false},
	{"ballot-reuse", CAS_FAULT_BALLOT_REUSE, false, false, false},
	{"query-one", CAS_FAULT_QUERY_ONE, false, false, false},
	{"mine-by-version", CAS_FAULT_MINE_BY_VERSION, false, false, false},
	{"reply-before-durable", 0, true, false, false},
	/* A change of members without its rescan (PROTOCOL.md, step 3). */
	{"skip-rescan", 0, false, true, false},
	/* Deletion (acceptor.h): a purge that leaves no floor, or one at the
	 * tombstone's ballot that forgets a higher promise; a write-back that
	 * a majority completes; a collector that does not wait. */
	{"skip-floor", CAS_FAULT_SKIP_FLOOR, false, false, false},
	{"floor-at-ballot", CAS_FAULT_FLOOR_AT_BALLOT, false, false, false},
	{"skip-all-accept", CAS_FAULT_COLLECT_MAJORITY, false, false, false},
	{"skip-grace", 0, false, false, true},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: sim [--seeds N] [--first S] [--seed S] [--verbose] [--no-changes]\n"
		   "           [--no-deletes]\n"
		   "           [--broken quorum-one|promise-ballot|counter-only|ballot-reuse|\n"
		   "                     query-one|mine-by-version|reply-before-durable|\n"
		   "                     skip-rescan|skip-floor|floor-at-ballot|\n"
		   "                     skip-all-accept|skip-grace]\n"
		   "Runs N seeds from S (default 10000 from 1), or the one seed --seed S,\n"
		   "and checks every history for linearizability. One seed in three also\n"
		   "changes the cluster's members while it runs (--no-changes: none\n"
		   "does); one seed in two deletes, and a collector purges what it\n"
		   "deleted (--no-deletes: none does). With --broken, a deliberate bug\n"
		   "is switched on and the run passes only if some seed catches it.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"seeds", required_argument, NULL, 'n'},
		{"first", required_argument, NULL, 'f'},
		{"seed", required_argument, NULL, 's'},
		{"broken", required_argument, NULL, 'b'},
		{"verbose", no_argument, NULL, 'v'},
		{"no-changes", no_argument, NULL, 'c'},
		{"no-deletes", no_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint64_t first = 1, n = 10000;
	struct cluster_options opt = {.changes = true, .deletes = true};
	bool one = false;
	const char *broken = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			n = strtoull(optarg, NULL, 10);
			break;
		case 'f':
			first = strtoull(optarg, NULL, 10);
			break;
		case 's':
			first = strtoull(optarg, NULL, 10);
			n = 1;
			one = true;
			break;
		case 'b':
			broken = optarg;
			break;
		case 'v':
			opt.verbose = true;
			break;
		case 'c':
			opt.changes = false;
			break;
		case 'd':
			opt.deletes = false;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (broken != NULL) {
		size_t i;

		for (i = 0; i < sizeof(controls) / sizeof(controls[0]); i++)
			if (strcmp(controls[i].name, broken) == 0)
				break;
		if (i == sizeof(controls) / sizeof(controls[0])) {
			fprintf(stderr, "sim: unknown --broken %s\n", broken);
			return 2;
		}
		cas_sim_faults = controls[i].fault;
		opt.reply_before_durable = controls[i].durable;
		opt.skip_rescan = controls[i].skip_rescan;
		opt.skip_grace = controls[i].skip_grace;
	}

	for (uint64_t s = first; s < first + n; s++) {
		if (run_seed(s, &opt, broken == NULL || one) == 0)
			continue;
		if (broken != NULL) {
			printf("sim: --broken %s caught by seed %" PRIu64 " (%" PRIu64
			       " seeds run)\n",
			       broken, s, s - first + 1);
			return 0;
		}
		fprintf(stderr, "sim: replay with: sim --seed %" PRIu64 " --verbose\n", s);
		return 1;
	}
	if (broken != NULL) {
		fprintf(stderr, "sim: --broken %s was NOT caught in %" PRIu64 " seeds\n", broken,
			n);
		return 1;
	}
	printf("sim: %" PRIu64 " seeds from %" PRIu64 ", every history linearizable "
	       "(%lu operations, %lu started from a cached promise, %lu reads answered by a "
	       "query)\n",
	       n, first, total_ops, cached_starts, queries_answered);
	printf("sim: members changed in %lu seeds (%lu add, %lu remove, %lu replace, %lu replace "
	       "by an empty node at the same address), %lu requests refused for their epoch, "
	       "%lu reconfigurer crashes\n",
	       changes_run[CHANGE_ADD] + changes_run[CHANGE_REMOVE] + changes_run[CHANGE_REPLACE] +
		       changes_run[CHANGE_WIPED],
	       changes_run[CHANGE_ADD], changes_run[CHANGE_REMOVE], changes_run[CHANGE_REPLACE],
	       changes_run[CHANGE_WIPED], epoch_refusals, reconf_crashes);
	printf("sim: deleted in %lu seeds (%lu deletes), %lu write-backs of a tombstone by "
	       "every node, %lu purges, %lu keys dropped by an acceptor, %lu requests refused by "
	       "a floor, %lu collector crashes\n",
	       gc_seeds, deletes_ok, gc_writebacks, gc_purges, gc_drops, floor_refusals,
	       gc_crashes);
	return 0;
}

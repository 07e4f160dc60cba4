/* sim.c - deterministic simulation of CASPaxos: the real core's proposers
 * and acceptors in one process, a seeded network that drops, delays,
 * duplicates, reorders and partitions, acceptor crashes (keeping exactly
 * what was durable), proposer crashes; every history goes to the
 * linearizability checker. */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acceptor.h"
#include "faults.h"
#include "linearize.h"
#include "proposer.h"
#include "rand.h"

#define MAX_ACC 5
#define MAX_PROP 4
#define N_KEYS 2
#define OPS_PER_PROP 8
#define MAX_STEPS 200000
#define OP_DEADLINE 400 /* ticks (the core's milliseconds) */
#define RPC_TIMEOUT 25  /* a node that did not answer by then counts as down */

static const char *const keys[N_KEYS] = {"ka", "kb"};

/* Over all seeds run: ops, and ops that started from a cached promise. */
static unsigned long total_ops, cached_starts, queries_answered;

/* How rough one seed's world is; drawn from the seed. */
struct weather {
	unsigned drop;      /* per mille of delivery events that drop */
	unsigned dup;       /* per mille that duplicate */
	unsigned max_delay; /* ticks a packet may wait before it can land */
	unsigned crash;     /* per mille of events that crash an acceptor */
	unsigned partition; /* per mille of events that change the partition */
	unsigned pcrash;    /* per mille of events that crash a proposer */
};

struct acceptor {
	bool up;
	/* vol: what the acceptor answers from; dur: what survives a crash.
	 * Both own their value bytes. */
	struct cas_acceptor_state vol[N_KEYS];
	struct cas_acceptor_state dur[N_KEYS];
	bool dirty[N_KEYS];
};

enum op_kind { K_READ, K_WRITE, K_CAS };

struct proposer {
	struct cas_proposer core;
	unsigned generation;
	unsigned reach;   /* bit i: acceptor i reachable (partitions) */
	int ops_left;
	bool busy;
	struct cas_op op;
	uint64_t serial;  /* of the current op, to drop old replies */
	enum op_kind kind;
	int key;
	uint64_t expected;
	char value[32];
	uint64_t invoke;
	uint64_t deadline;
	uint64_t sent_at; /* of the current phase */
	uint64_t wake_at; /* when sleeping */
	bool sleeping;
	uint64_t last_version[N_KEYS];
	uint64_t rng;
	/* Promises cached by the one-round-trip optimization (owned). */
	bool cached[N_KEYS];
	struct cas_ballot cache_ballot[N_KEYS];
	struct cas_reg cache_value[N_KEYS];
};

struct packet {
	bool to_acceptor;
	int acc, prop, key;
	uint64_t serial;
	uint32_t attempt;
	uint64_t ready_at;
	struct cas_msg m; /* owns its value bytes */
};

struct world {
	uint64_t seed;
	uint64_t rng;
	bool verbose;
	bool reply_before_durable; /* negative control, in the sim's store */
	bool use_cache;            /* the one-round-trip optimization */
	bool use_query;            /* reads start with a query */
	struct weather w;
	int n_acc, n_prop;
	struct acceptor acc[MAX_ACC];
	struct proposer prop[MAX_PROP];
	struct packet *net;
	size_t n_net, cap_net;
	uint64_t now;  /* ticks */
	uint64_t step; /* logical time of the history */
	uint64_t serial;
	struct cas_history *hist;
	unsigned long rounds, faults;
};

static void die_oom(void)
{
	fprintf(stderr, "sim: out of memory\n");
	exit(2);
}

static void state_copy(struct cas_acceptor_state *dst, const struct cas_acceptor_state *src)
{
	free(dst->value.data);
	dst->promise = src->promise;
	dst->accepted = src->accepted;
	if (cas_reg_copy(&dst->value, &src->value) != CAS_OK)
		die_oom();
}

static void send_packet(struct world *W, const struct packet *p)
{
	struct packet *q;

	if (W->n_net == W->cap_net) {
		size_t cap = W->cap_net ? W->cap_net * 2 : 64;
		struct packet *n = realloc(W->net, cap * sizeof(*n));

		if (n == NULL)
			die_oom();
		W->net = n;
		W->cap_net = cap;
	}
	q = &W->net[W->n_net++];
	*q = *p;
	if (cas_reg_copy(&q->m.value, &p->m.value) != CAS_OK)
		die_oom();
	q->ready_at = W->now + cas_rand_below(&W->rng, W->w.max_delay + 1);
}

/* --- acceptors --- */

static void acceptor_receive(struct world *W, struct packet *p)
{
	struct acceptor *a = &W->acc[p->acc];
	struct cas_acceptor_state *st = &a->vol[p->key];
	struct cas_acceptor_state before = *st;
	struct packet out = {.to_acceptor = false, .acc = p->acc, .prop = p->prop, .key = p->key,
			     .serial = p->serial, .attempt = p->attempt};

	if (!a->up)
		return;
	if (cas_acceptor_handle(st, &p->m, &out.m)) {
		/* st->value may now borrow from the packet: own a copy. */
		struct cas_reg own;

		if (cas_reg_copy(&own, &st->value) != CAS_OK)
			die_oom();
		if (before.value.data != NULL && before.value.data != own.data)
			free(before.value.data);
		st->value = own;
		if (out.m.type == CAS_MSG_PROMISE)
			out.m.value = st->value;
		if (W->reply_before_durable)
			a->dirty[p->key] = true;
		else
			state_copy(&a->dur[p->key], st); /* persist, then reply */
	}
	send_packet(W, &out);
}

static void acceptor_crash(struct world *W, int i)
{
	struct acceptor *a = &W->acc[i];

	a->up = false;
	for (int k = 0; k < N_KEYS; k++) {
		state_copy(&a->vol[k], &a->dur[k]);
		a->dirty[k] = false;
	}
	if (W->verbose)
		printf("%" PRIu64 ": acceptor %d crashes\n", W->now, i);
}

/* --- proposers --- */

static int fn_put(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	const char *s = arg;

	(void)cur;
	next->len = strlen(s);
	next->data = malloc(next->len);
	if (next->data == NULL)
		return CAS_ENOMEM;
	memcpy(next->data, s, next->len);
	return CAS_OK;
}

static int fn_cas(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	struct proposer *P = arg;

	if (cur->version != P->expected)
		return CAS_EVERSION;
	return fn_put(P->value, cur, next);
}

static int fn_read(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	(void)arg;
	(void)cur;
	(void)next;
	return CAS_ENOCHANGE;
}

static void apply_effect(struct world *W, int pi, const struct cas_effect *eff);

static void uncache(struct proposer *P, int key)
{
	free(P->cache_value[key].data);
	memset(&P->cache_value[key], 0, sizeof(P->cache_value[key]));
	P->cached[key] = false;
}

static void record(struct world *W, struct proposer *P, int pi, bool crashed)
{
	struct cas_hist_op h = {.invoke = P->invoke, .complete = W->step};
	struct cas_value v;
	char label[48];
	int rc = P->op.result;

	{
		struct cas_ballot nb;
		struct cas_reg nv;

		if (!crashed && W->use_cache && cas_op_take_cache(&P->op, &nb, &nv)) {
			uncache(P, P->key);
			P->cached[P->key] = true;
			P->cache_ballot[P->key] = nb;
			P->cache_value[P->key] = nv;
		} else if (!P->op.cfg.read_only) {
			/* A read did not take its cached promise (a query
			 * changes nothing); anything else used it up. */
			uncache(P, P->key);
		}
	}
	cas_op_take_value(&P->op, &v);
	snprintf(label, sizeof(label), "proposer %d op %d", pi, OPS_PER_PROP - P->ops_left);
	h.label = label;
	h.kind = P->kind == K_READ ? CAS_HIST_READ : P->kind == K_WRITE ? CAS_HIST_WRITE : CAS_HIST_CAS;
	h.expected = P->expected;
	h.value = P->value;
	h.len = strlen(P->value);
	if (crashed || rc == CAS_EUNAVAILABLE) {
		h.status = CAS_HIST_UNKNOWN;
		if (crashed)
			h.complete = CAS_TIME_PENDING;
	} else if (rc == CAS_OK) {
		if (P->op.cfg.read_only && P->op.ballot.counter == 0)
			queries_answered++; /* no full round was needed */
		h.status = CAS_HIST_OK;
		h.version = v.version;
		if (P->kind == K_READ) {
			h.value = v.data;
			h.len = v.len;
		}
		P->last_version[P->key] = v.version;
	} else if (rc == CAS_EVERSION) {
		h.status = CAS_HIST_MISMATCH;
		h.version = v.version;
		P->last_version[P->key] = v.version;
	} else {
		fprintf(stderr, "sim: seed %" PRIu64 ": unexpected result %s\n", W->seed,
			cas_strerror(rc));
		exit(2);
	}
	if (cas_history_add(W->hist, keys[P->key], &h) != CAS_OK) {
		fprintf(stderr, "sim: cannot record an operation\n");
		exit(2);
	}
	if (W->verbose)
		printf("%" PRIu64 ": proposer %d %s %s -> %s v%" PRIu64 "\n", W->now, pi,
		       P->kind == K_READ ? "read" : P->kind == K_WRITE ? "write" : "cas",
		       keys[P->key], crashed ? "crashed" : cas_strerror(rc), v.version);
	free(v.data);
	cas_op_clear(&P->op);
	P->busy = false;
	P->sleeping = false;
	P->ops_left--;
}

static void start_op(struct world *W, int pi)
{
	struct proposer *P = &W->prop[pi];
	struct cas_op_config cfg = {.n_nodes = (size_t)W->n_acc, .max_value = 64};
	struct cas_effect eff;
	unsigned r = (unsigned)cas_rand_below(&P->rng, 10);

	P->key = (int)cas_rand_below(&P->rng, N_KEYS);
	P->kind = r < 3 ? K_READ : r < 5 ? K_WRITE : K_CAS;
	P->expected = P->last_version[P->key];
	snprintf(P->value, sizeof(P->value), "p%d.%u.%d", pi, P->generation, P->ops_left);
	cfg.key = keys[P->key];
	cfg.fn = P->kind == K_READ ? fn_read : P->kind == K_WRITE ? fn_put : fn_cas;
	cfg.arg = P->kind == K_CAS ? (void *)P : (void *)P->value;
	cfg.op_id = ((uint64_t)pi + 1) << 48 | ++W->serial;
	cfg.deadline_ms = W->now + OP_DEADLINE;
	total_ops++;
	cfg.read_only = P->kind == K_READ && W->use_query;
	if (P->cached[P->key] && !cfg.read_only) {
		cached_starts++;
		cfg.cached_ballot = P->cache_ballot[P->key];
		cfg.cached_value = &P->cache_value[P->key];
	}
	P->serial = W->serial;
	P->deadline = cfg.deadline_ms;
	P->invoke = ++W->step;
	P->busy = true;
	W->rounds++;
	cas_op_init(&P->op, &cfg);
	cas_op_start(&P->op, &P->core, &eff);
	if (!cfg.read_only)
		uncache(P, P->key); /* a cached promise starts one op only */
	apply_effect(W, pi, &eff);
}

static void apply_effect(struct world *W, int pi, const struct cas_effect *eff)
{
	struct proposer *P = &W->prop[pi];

	switch (eff->kind) {
	case CAS_EFFECT_SEND:
		P->sent_at = W->now;
		P->sleeping = false;
		for (int i = 0; i < W->n_acc; i++) {
			struct packet p = {.to_acceptor = true, .acc = i, .prop = pi, .key = P->key,
					   .serial = P->serial, .attempt = eff->attempt,
					   .m = *eff->msg};

			send_packet(W, &p);
		}
		break;
	case CAS_EFFECT_SLEEP:
		P->sleeping = true;
		P->wake_at = eff->until_ms;
		break;
	case CAS_EFFECT_DONE:
		++W->step;
		record(W, P, pi, false);
		break;
	case CAS_EFFECT_WAIT:
		break;
	}
}

static void proposer_receive(struct world *W, struct packet *p)
{
	struct proposer *P = &W->prop[p->prop];
	struct cas_effect eff;

	if (!P->busy || p->serial != P->serial)
		return;
	cas_op_on_reply(&P->op, &P->core, (size_t)p->acc, p->attempt, &p->m, W->now, &P->rng,
			&eff);
	apply_effect(W, p->prop, &eff);
}

static void proposer_crash(struct world *W, int pi)
{
	struct proposer *P = &W->prop[pi];

	if (!P->busy)
		return;
	if (W->verbose)
		printf("%" PRIu64 ": proposer %d crashes\n", W->now, pi);
	record(W, P, pi, true);
	for (int k = 0; k < N_KEYS; k++)
		uncache(P, k);
	/* A restarted client is a new proposer: a fresh id, counter 0. */
	P->generation++;
	cas_proposer_init(&P->core, (uint64_t)P->generation << 8 | (uint64_t)(pi + 1));
}

/* Timers: backoff wake-ups, per-node timeouts and op deadlines. */
static void tick(struct world *W)
{
	W->now++;
	for (int pi = 0; pi < W->n_prop; pi++) {
		struct proposer *P = &W->prop[pi];
		struct cas_effect eff = {.kind = CAS_EFFECT_WAIT};

		if (!P->busy) {
			if (P->ops_left > 0 && cas_rand_below(&W->rng, 4) == 0)
				start_op(W, pi);
			continue;
		}
		if (W->now >= P->deadline) {
			cas_op_expire(&P->op, &eff);
			apply_effect(W, pi, &eff);
			continue;
		}
		if (P->sleeping) {
			if (W->now >= P->wake_at) {
				cas_op_wake(&P->op, &P->core, W->now, &eff);
				apply_effect(W, pi, &eff);
			}
			continue;
		}
		if (W->now >= P->sent_at + RPC_TIMEOUT) {
			uint32_t attempt = P->op.attempt;

			for (int i = 0; i < W->n_acc && P->busy && P->op.attempt == attempt &&
					!P->sleeping;
			     i++) {
				cas_op_on_reply(&P->op, &P->core, (size_t)i, attempt, NULL, W->now,
						&P->rng, &eff);
				apply_effect(W, pi, &eff);
			}
		}
	}
}

static bool all_done(const struct world *W)
{
	for (int pi = 0; pi < W->n_prop; pi++)
		if (W->prop[pi].busy || W->prop[pi].ops_left > 0)
			return false;
	return true;
}

static void deliver_one(struct world *W)
{
	size_t ready[64];
	size_t n = 0;

	for (size_t i = 0; i < W->n_net && n < 64; i++)
		if (W->net[i].ready_at <= W->now)
			ready[n++] = i;
	if (n == 0) {
		tick(W);
		return;
	}
	size_t i = ready[cas_rand_below(&W->rng, n)];
	struct packet p = W->net[i];
	unsigned roll = (unsigned)cas_rand_below(&W->rng, 1000);
	bool cut = !(W->prop[p.prop].reach & (1u << p.acc));

	if (roll < W->w.dup) {
		/* Deliver a copy now, keep the original for later. */
		if (cas_reg_copy(&p.m.value, &W->net[i].m.value) != CAS_OK)
			die_oom();
		W->net[i].ready_at = W->now + cas_rand_below(&W->rng, W->w.max_delay + 1);
		W->faults++;
	} else {
		W->net[i] = W->net[--W->n_net];
	}
	if (roll >= W->w.dup && roll < W->w.dup + W->w.drop)
		cut = true;
	if (!cut) {
		if (p.to_acceptor)
			acceptor_receive(W, &p);
		else
			proposer_receive(W, &p);
	} else {
		W->faults++;
	}
	cas_msg_clear(&p.m);
}

static void nemesis(struct world *W)
{
	unsigned roll = (unsigned)cas_rand_below(&W->rng, 1000);
	int i = (int)cas_rand_below(&W->rng, (uint64_t)W->n_acc);

	if (roll < W->w.crash) {
		if (W->acc[i].up) {
			acceptor_crash(W, i);
		} else {
			W->acc[i].up = true;
			if (W->verbose)
				printf("%" PRIu64 ": acceptor %d restarts\n", W->now, i);
		}
		W->faults++;
	} else if (roll < W->w.crash + W->w.partition) {
		int pi = (int)cas_rand_below(&W->rng, (uint64_t)W->n_prop);
		unsigned all = (1u << W->n_acc) - 1;

		/* Cut a proposer off some acceptors, or heal it. */
		W->prop[pi].reach = cas_rand_below(&W->rng, 2) ? all
							       : (unsigned)cas_rand_below(&W->rng, all + 1);
		W->faults++;
	} else if (roll < W->w.crash + W->w.partition + W->w.pcrash) {
		proposer_crash(W, (int)cas_rand_below(&W->rng, (uint64_t)W->n_prop));
		W->faults++;
	} else if (W->reply_before_durable) {
		/* The broken store flushes now and then. */
		for (int k = 0; k < N_KEYS; k++)
			if (W->acc[i].dirty[k] && W->acc[i].up) {
				state_copy(&W->acc[i].dur[k], &W->acc[i].vol[k]);
				W->acc[i].dirty[k] = false;
			}
	}
}

static void world_free(struct world *W)
{
	for (size_t i = 0; i < W->n_net; i++)
		cas_msg_clear(&W->net[i].m);
	free(W->net);
	for (int i = 0; i < MAX_ACC; i++)
		for (int k = 0; k < N_KEYS; k++) {
			free(W->acc[i].vol[k].value.data);
			free(W->acc[i].dur[k].value.data);
		}
	for (int pi = 0; pi < MAX_PROP; pi++) {
		cas_op_clear(&W->prop[pi].op);
		for (int k = 0; k < N_KEYS; k++)
			uncache(&W->prop[pi], k);
#ifdef CAS_SIM_FAULTS
		free(W->prop[pi].core.reuse_base.data);
#endif
	}
	cas_history_free(W->hist);
}

/* Runs one seed. Returns 0 when its history is linearizable, 1 when not. */
static int run_seed(uint64_t seed, bool verbose, bool reply_before_durable, bool print_failure)
{
	struct world W;
	char why[2048];
	bool ok = false;
	uint64_t r;

	memset(&W, 0, sizeof(W));
	W.seed = seed;
	W.rng = seed * 0x9e3779b97f4a7c15ull + 1;
	W.verbose = verbose;
	W.reply_before_durable = reply_before_durable;
	r = cas_rand_next(&W.rng);
	W.n_acc = (r & 3) == 0 ? 5 : 3;
	W.n_prop = 2 + (int)((r >> 2) % 3);
	/* Most seeds use the one-round-trip optimization, some do not. */
	W.use_cache = (r >> 8) % 4 != 0;
	W.use_query = (r >> 10) % 4 != 0;
	/* Calm seeds and stormy ones. */
	W.w.drop = (unsigned)cas_rand_below(&W.rng, 150);
	W.w.dup = (unsigned)cas_rand_below(&W.rng, 100);
	W.w.max_delay = (unsigned)cas_rand_below(&W.rng, 30);
	W.w.crash = (unsigned)cas_rand_below(&W.rng, 30);
	W.w.partition = (unsigned)cas_rand_below(&W.rng, 30);
	W.w.pcrash = (unsigned)cas_rand_below(&W.rng, 8);
	if (cas_history_new(&W.hist) != CAS_OK)
		die_oom();
	for (int i = 0; i < W.n_acc; i++)
		W.acc[i].up = true;
	for (int pi = 0; pi < W.n_prop; pi++) {
		struct proposer *P = &W.prop[pi];

		cas_proposer_init(&P->core, (uint64_t)(pi + 1));
		P->reach = (1u << W.n_acc) - 1;
		P->ops_left = OPS_PER_PROP;
		P->rng = cas_rand_next(&W.rng);
	}

	for (unsigned long s = 0; s < MAX_STEPS && !all_done(&W); s++) {
		unsigned roll = (unsigned)cas_rand_below(&W.rng, 100);

		if (roll < 70)
			deliver_one(&W);
		else if (roll < 90)
			tick(&W);
		else
			nemesis(&W);
	}
	if (!all_done(&W)) {
		fprintf(stderr, "sim: seed %" PRIu64 ": did not finish in %d steps\n", seed,
			MAX_STEPS);
		world_free(&W);
		return 1;
	}
	if (cas_history_check(W.hist, &ok, why, sizeof(why)) != CAS_OK) {
		fprintf(stderr, "sim: seed %" PRIu64 ": checker out of memory\n", seed);
		ok = false;
	}
	if (verbose) {
		printf("history (%zu ops, %lu faults):\n", cas_history_count(W.hist), W.faults);
		cas_history_write(W.hist, stdout);
	}
	if (!ok && print_failure)
		fprintf(stderr, "sim: seed %" PRIu64 " is not linearizable: %s\n", seed, why);
	world_free(&W);
	return ok ? 0 : 1;
}

static const struct {
	const char *name;
	unsigned fault;
	bool durable;
} controls[] = {
	{"quorum-one", CAS_FAULT_QUORUM_ONE, false},
	{"promise-ballot", CAS_FAULT_PROMISE_BALLOT, false},
	{"counter-only", CAS_FAULT_COUNTER_ONLY, false},
	{"ballot-reuse", CAS_FAULT_BALLOT_REUSE, false},
	{"query-one", CAS_FAULT_QUERY_ONE, false},
	{"reply-before-durable", 0, true},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: sim [--seeds N] [--first S] [--seed S] [--verbose]\n"
		   "           [--broken quorum-one|promise-ballot|counter-only|ballot-reuse|\n"
		   "                     query-one|reply-before-durable]\n"
		   "Runs N seeds from S (default 10000 from 1), or the one seed --seed S,\n"
		   "and checks every history for linearizability. With --broken, a\n"
		   "deliberate bug is switched on and the run passes only if some seed\n"
		   "catches it.\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"seeds", required_argument, NULL, 'n'}, {"first", required_argument, NULL, 'f'},
		{"seed", required_argument, NULL, 's'},  {"broken", required_argument, NULL, 'b'},
		{"verbose", no_argument, NULL, 'v'},     {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	uint64_t first = 1, n = 10000;
	bool verbose = false, durable_bug = false, one = false;
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
			verbose = true;
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
		durable_bug = controls[i].durable;
	}

	for (uint64_t s = first; s < first + n; s++) {
		if (run_seed(s, verbose, durable_bug, broken == NULL || one) == 0)
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
	return 0;
}

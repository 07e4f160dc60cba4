/* cluster.c - the simulated cluster of cluster.h: acceptors, a seeded
 * network, proposers driving the pure core, and faults. */
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "rand.h"

#define RPC_TIMEOUT 25 /* a node that did not answer by then counts as down */

const char *const cluster_keys[CLUSTER_KEYS] = {"ka", "kb"};

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

static void send_packet(struct cluster *C, const struct cluster_packet *p)
{
	struct cluster_packet *q;

	if (C->n_net == C->cap_net) {
		size_t cap = C->cap_net ? C->cap_net * 2 : 64;
		struct cluster_packet *n = realloc(C->net, cap * sizeof(*n));

		if (n == NULL)
			die_oom();
		C->net = n;
		C->cap_net = cap;
	}
	q = &C->net[C->n_net++];
	*q = *p;
	if (cas_reg_copy(&q->m.value, &p->m.value) != CAS_OK)
		die_oom();
	q->ready_at = C->now + cas_rand_below(&C->rng, C->w.max_delay + 1);
}

/* --- acceptors --- */

static void acceptor_receive(struct cluster *C, struct cluster_packet *p)
{
	struct cluster_acceptor *a = &C->acc[p->acc];
	struct cas_acceptor_state *st = &a->vol[p->key];
	struct cas_acceptor_state before = *st;
	struct cluster_packet out = {.to_acceptor = false,
				     .acc = p->acc,
				     .prop = p->prop,
				     .key = p->key,
				     .serial = p->serial,
				     .attempt = p->attempt};

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
		if (C->reply_before_durable)
			a->dirty[p->key] = true;
		else
			state_copy(&a->dur[p->key], st); /* persist, then reply */
	}
	send_packet(C, &out);
}

static void acceptor_crash(struct cluster *C, int i)
{
	struct cluster_acceptor *a = &C->acc[i];

	a->up = false;
	for (int k = 0; k < CLUSTER_KEYS; k++) {
		state_copy(&a->vol[k], &a->dur[k]);
		a->dirty[k] = false;
	}
	if (C->verbose)
		printf("%" PRIu64 ": acceptor %d crashes\n", C->now, i);
}

/* --- proposers --- */

static void apply_effect(struct cluster *C, int pi, const struct cas_effect *eff);

static void uncache(struct cluster_proposer *P, int key)
{
	free(P->cache_value[key].data);
	memset(&P->cache_value[key], 0, sizeof(P->cache_value[key]));
	P->cached[key] = false;
}

/* Ends proposer pi's op: keeps or drops its cached promise, and tells the
 * hooks. */
static void finish(struct cluster *C, int pi, bool crashed)
{
	struct cluster_proposer *P = &C->prop[pi];
	struct cas_ballot nb;
	struct cas_reg nv;
	struct cas_value v;

	if (!crashed && C->use_cache && cas_op_take_cache(&P->op, &nb, &nv)) {
		uncache(P, P->key);
		P->cached[P->key] = true;
		P->cache_ballot[P->key] = nb;
		P->cache_value[P->key] = nv;
	} else if (!P->op.cfg.read_only) {
		/* A read did not take its cached promise (a query changes
		 * nothing); anything else used it up. */
		uncache(P, P->key);
	}
	cas_op_take_value(&P->op, &v);
	C->hooks.done(C, pi, &P->op, &v, crashed, C->hooks.arg);
	free(v.data);
	cas_op_clear(&P->op);
	P->busy = false;
	P->sleeping = false;
}

void cluster_start_op(struct cluster *C, int pi, int key, cas_change_fn fn, void *arg, bool read)
{
	struct cluster_proposer *P = &C->prop[pi];
	struct cas_op_config cfg = {.n_nodes = (size_t)C->n_acc, .max_value = 64};
	struct cas_effect eff;

	P->key = key;
	cfg.key = cluster_keys[key];
	cfg.fn = fn;
	cfg.arg = arg;
	cfg.op_id = ((uint64_t)pi + 1) << 48 | ++C->serial;
	cfg.deadline_ms = C->now + CLUSTER_DEADLINE;
	cfg.read_only = read && C->use_query;
	if (P->cached[key] && !cfg.read_only) {
		C->cached_starts++;
		cfg.cached_ballot = P->cache_ballot[key];
		cfg.cached_value = &P->cache_value[key];
	}
	P->serial = C->serial;
	P->deadline = cfg.deadline_ms;
	P->busy = true;
	C->rounds++;
	cas_op_init(&P->op, &cfg);
	cas_op_start(&P->op, &P->core, &eff);
	if (!cfg.read_only)
		uncache(P, key); /* a cached promise starts one op only */
	apply_effect(C, pi, &eff);
}

static void apply_effect(struct cluster *C, int pi, const struct cas_effect *eff)
{
	struct cluster_proposer *P = &C->prop[pi];

	switch (eff->kind) {
	case CAS_EFFECT_SEND:
		P->sent_at = C->now;
		P->sleeping = false;
		for (int i = 0; i < C->n_acc; i++) {
			struct cluster_packet p = {.to_acceptor = true,
						   .acc = i,
						   .prop = pi,
						   .key = P->key,
						   .serial = P->serial,
						   .attempt = eff->attempt,
						   .m = *eff->msg};

			send_packet(C, &p);
		}
		break;
	case CAS_EFFECT_SLEEP:
		P->sleeping = true;
		P->wake_at = eff->until_ms;
		break;
	case CAS_EFFECT_DONE:
		finish(C, pi, false);
		break;
	case CAS_EFFECT_WAIT:
		break;
	}
}

static void proposer_receive(struct cluster *C, struct cluster_packet *p)
{
	struct cluster_proposer *P = &C->prop[p->prop];
	struct cas_effect eff;

	if (!P->busy || p->serial != P->serial)
		return;
	cas_op_on_reply(&P->op, &P->core, (size_t)p->acc, p->attempt, &p->m, C->now, &P->rng, &eff);
	apply_effect(C, p->prop, &eff);
}

static void proposer_crash(struct cluster *C, int pi)
{
	struct cluster_proposer *P = &C->prop[pi];

	if (!P->busy)
		return;
	if (C->verbose)
		printf("%" PRIu64 ": proposer %d crashes\n", C->now, pi);
	finish(C, pi, true);
	for (int k = 0; k < CLUSTER_KEYS; k++)
		uncache(P, k);
	/* A restarted client is a new proposer: a fresh id, counter 0. */
	P->generation++;
	cas_proposer_init(&P->core, (uint64_t)P->generation << 8 | (uint64_t)(pi + 1));
}

/* Timers: new ops, backoff wake-ups, per-node timeouts and op deadlines. */
static void tick(struct cluster *C)
{
	C->now++;
	for (int pi = 0; pi < C->n_prop; pi++) {
		struct cluster_proposer *P = &C->prop[pi];
		struct cas_effect eff = {.kind = CAS_EFFECT_WAIT};

		if (!P->busy) {
			if (C->hooks.has_work(C, pi, C->hooks.arg) &&
			    cas_rand_below(&C->rng, 4) == 0)
				C->hooks.start(C, pi, C->hooks.arg);
			continue;
		}
		if (C->now >= P->deadline) {
			cas_op_expire(&P->op, &eff);
			apply_effect(C, pi, &eff);
			continue;
		}
		if (P->sleeping) {
			if (C->now >= P->wake_at) {
				cas_op_wake(&P->op, &P->core, C->now, &eff);
				apply_effect(C, pi, &eff);
			}
			continue;
		}
		if (C->now >= P->sent_at + RPC_TIMEOUT) {
			uint32_t attempt = P->op.attempt;

			for (int i = 0;
			     i < C->n_acc && P->busy && P->op.attempt == attempt && !P->sleeping;
			     i++) {
				cas_op_on_reply(&P->op, &P->core, (size_t)i, attempt, NULL, C->now,
						&P->rng, &eff);
				apply_effect(C, pi, &eff);
			}
		}
	}
}

bool cluster_done(struct cluster *C)
{
	for (int pi = 0; pi < C->n_prop; pi++)
		if (C->prop[pi].busy || C->hooks.has_work(C, pi, C->hooks.arg))
			return false;
	return true;
}

static void deliver_one(struct cluster *C)
{
	size_t ready[64];
	size_t n = 0;

	for (size_t i = 0; i < C->n_net && n < 64; i++)
		if (C->net[i].ready_at <= C->now)
			ready[n++] = i;
	if (n == 0) {
		tick(C);
		return;
	}
	size_t i = ready[cas_rand_below(&C->rng, n)];
	struct cluster_packet p = C->net[i];
	unsigned roll = (unsigned)cas_rand_below(&C->rng, 1000);
	bool cut = !(C->prop[p.prop].reach & (1u << p.acc));

	if (roll < C->w.dup) {
		/* Deliver a copy now, keep the original for later. */
		if (cas_reg_copy(&p.m.value, &C->net[i].m.value) != CAS_OK)
			die_oom();
		C->net[i].ready_at = C->now + cas_rand_below(&C->rng, C->w.max_delay + 1);
		C->faults++;
	} else {
		C->net[i] = C->net[--C->n_net];
	}
	if (roll >= C->w.dup && roll < C->w.dup + C->w.drop)
		cut = true;
	if (!cut) {
		if (p.to_acceptor)
			acceptor_receive(C, &p);
		else
			proposer_receive(C, &p);
	} else {
		C->faults++;
	}
	cas_msg_clear(&p.m);
}

static void nemesis(struct cluster *C)
{
	unsigned roll = (unsigned)cas_rand_below(&C->rng, 1000);
	int i = (int)cas_rand_below(&C->rng, (uint64_t)C->n_acc);

	if (roll < C->w.crash) {
		if (C->acc[i].up) {
			acceptor_crash(C, i);
		} else {
			C->acc[i].up = true;
			if (C->verbose)
				printf("%" PRIu64 ": acceptor %d restarts\n", C->now, i);
		}
		C->faults++;
	} else if (roll < C->w.crash + C->w.partition) {
		int pi = (int)cas_rand_below(&C->rng, (uint64_t)C->n_prop);
		unsigned all = (1u << C->n_acc) - 1;

		/* Cut a proposer off some acceptors, or heal it. */
		C->prop[pi].reach = cas_rand_below(&C->rng, 2)
					    ? all
					    : (unsigned)cas_rand_below(&C->rng, all + 1);
		C->faults++;
	} else if (roll < C->w.crash + C->w.partition + C->w.pcrash) {
		proposer_crash(C, (int)cas_rand_below(&C->rng, (uint64_t)C->n_prop));
		C->faults++;
	} else if (C->reply_before_durable) {
		/* The broken store flushes now and then. */
		for (int k = 0; k < CLUSTER_KEYS; k++)
			if (C->acc[i].dirty[k] && C->acc[i].up) {
				state_copy(&C->acc[i].dur[k], &C->acc[i].vol[k]);
				C->acc[i].dirty[k] = false;
			}
	}
}

void cluster_step(struct cluster *C)
{
	unsigned roll = (unsigned)cas_rand_below(&C->rng, 100);

	if (roll < 70)
		deliver_one(C);
	else if (roll < 90)
		tick(C);
	else
		nemesis(C);
}

void cluster_init(struct cluster *C, uint64_t seed, bool verbose, bool reply_before_durable,
		  const struct cluster_hooks *hooks)
{
	uint64_t r;

	memset(C, 0, sizeof(*C));
	C->seed = seed;
	C->rng = seed * 0x9e3779b97f4a7c15ull + 1;
	C->verbose = verbose;
	C->reply_before_durable = reply_before_durable;
	C->hooks = *hooks;
	r = cas_rand_next(&C->rng);
	C->n_acc = (r & 3) == 0 ? 5 : 3;
	C->n_prop = 2 + (int)((r >> 2) % 3);
	/* Most seeds use the one-round-trip optimization, some do not. */
	C->use_cache = (r >> 8) % 4 != 0;
	C->use_query = (r >> 10) % 4 != 0;
	/* Calm seeds and stormy ones. */
	C->w.drop = (unsigned)cas_rand_below(&C->rng, 150);
	C->w.dup = (unsigned)cas_rand_below(&C->rng, 100);
	C->w.max_delay = (unsigned)cas_rand_below(&C->rng, 30);
	C->w.crash = (unsigned)cas_rand_below(&C->rng, 30);
	C->w.partition = (unsigned)cas_rand_below(&C->rng, 30);
	C->w.pcrash = (unsigned)cas_rand_below(&C->rng, 8);
	for (int i = 0; i < C->n_acc; i++)
		C->acc[i].up = true;
	for (int pi = 0; pi < C->n_prop; pi++) {
		struct cluster_proposer *P = &C->prop[pi];

		cas_proposer_init(&P->core, (uint64_t)(pi + 1));
		P->reach = (1u << C->n_acc) - 1;
		P->rng = cas_rand_next(&C->rng);
	}
}

void cluster_free(struct cluster *C)
{
	for (size_t i = 0; i < C->n_net; i++)
		cas_msg_clear(&C->net[i].m);
	free(C->net);
	for (int i = 0; i < CLUSTER_MAX_ACC; i++)
		for (int k = 0; k < CLUSTER_KEYS; k++) {
			free(C->acc[i].vol[k].value.data);
			free(C->acc[i].dur[k].value.data);
		}
	for (int pi = 0; pi < CLUSTER_MAX_PROP; pi++) {
		cas_op_clear(&C->prop[pi].op);
		for (int k = 0; k < CLUSTER_KEYS; k++)
			uncache(&C->prop[pi], k);
#ifdef CAS_SIM_FAULTS
		free(C->prop[pi].core.reuse_base.data);
#endif
	}
}

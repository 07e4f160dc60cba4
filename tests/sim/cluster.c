/* cluster.c - the simulated cluster of cluster.h: acceptors, a seeded
 * network, proposers driving the pure core, the reconfigurer, the
 * collector, and faults. */
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

static bool has(const struct cluster_config *cfg, int id)
{
	return id >= 0 && ((cfg->members | cfg->joining) >> id & 1);
}

/* --- acceptors --- */

/* The node's checks before the acceptor rules (PROTOCOL.md, "Identity on
 * every request"). */
static enum cluster_refusal refusal(const struct cluster_acceptor *a, uint64_t epoch)
{
	if (a->id < 0 || a->cfg.epoch == 0)
		return REFUSE_EMPTY;
	if (!has(&a->cfg, a->id) || epoch < a->cfg.epoch)
		return REFUSE_STALE; /* removed nodes refuse everything so */
	if (epoch > a->cfg.epoch)
		return REFUSE_BEHIND;
	return REFUSE_NONE;
}

/* POST /v1/admin/join and /v1/admin/config: took says whether the node
 * now has the configuration (durable at once: it is small). */
static void acceptor_admin(struct cluster *C, struct cluster_acceptor *a,
			   const struct cluster_packet *p, struct cluster_packet *out)
{
	if (p->kind == PKT_JOIN && a->id < 0) {
		a->id = p->node;
		a->cfg = p->cfg;
	} else if (p->kind == PKT_CONFIG && a->id >= 0 && a->cfg.epoch < p->cfg.epoch) {
		a->cfg = p->cfg;
	}
	out->took = a->id >= 0 && a->cfg.epoch == p->cfg.epoch &&
		    (p->kind == PKT_CONFIG || a->id == p->node);
	out->node = a->id;
	out->cfg = a->cfg;
	if (C->verbose)
		printf("%" PRIu64 ": acceptor %d (node %d) %s epoch %" PRIu64 "\n", C->now, p->acc,
		       a->id, out->took ? "has" : "refuses", p->cfg.epoch);
}

static void acceptor_receive(struct cluster *C, struct cluster_packet *p)
{
	struct cluster_acceptor *a = &C->acc[p->acc];
	struct cas_acceptor_state *st = &a->vol[p->key];
	struct cas_acceptor_state before = *st;
	enum cas_acceptor_change change;
	struct cluster_packet out = {.to_acceptor = false,
				     .kind = p->kind,
				     .acc = p->acc,
				     .prop = p->prop,
				     .key = p->key,
				     .node = p->node,
				     .serial = p->serial,
				     .attempt = p->attempt};

	if (!a->up)
		return;
	if (p->kind == PKT_CONFIG || p->kind == PKT_JOIN) {
		acceptor_admin(C, a, p, &out);
		send_packet(C, &out);
		return;
	}
	out.refused = refusal(a, p->epoch);
	if (out.refused != REFUSE_NONE) {
		/* Changes nothing; the refusal says the node's epoch. */
		out.cfg = a->cfg;
		C->refusals++;
		send_packet(C, &out);
		return;
	}
	change = cas_acceptor_step(st, &a->floor, &p->m, &out.m);
	if (out.m.type == CAS_MSG_REJECT && out.m.ballot.id == UINT64_MAX)
		C->floor_refusals++;
	if (change == CAS_ACCEPTOR_DROP) {
		/* The key and the floor, durable together. */
		free(st->value.data);
		memset(st, 0, sizeof(*st));
		free(a->dur[p->key].value.data);
		memset(&a->dur[p->key], 0, sizeof(a->dur[p->key]));
		a->dirty[p->key] = false;
		C->gc.drops++;
		if (C->verbose)
			printf("%" PRIu64 ": acceptor %d drops %s, floor %" PRIu64 "\n", C->now,
			       p->acc, cluster_keys[p->key], a->floor);
	} else if (change == CAS_ACCEPTOR_STORE) {
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

/* The disk at address i is lost: state, identity and configuration. */
static void acceptor_wipe(struct cluster *C, int i)
{
	struct cluster_acceptor *a = &C->acc[i];

	for (int k = 0; k < CLUSTER_KEYS; k++) {
		free(a->vol[k].value.data);
		free(a->dur[k].value.data);
		memset(&a->vol[k], 0, sizeof(a->vol[k]));
		memset(&a->dur[k], 0, sizeof(a->dur[k]));
		a->dirty[k] = false;
	}
	a->id = -1;
	memset(&a->cfg, 0, sizeof(a->cfg));
	a->floor = 0; /* and it joins without one */
	if (C->verbose)
		printf("%" PRIu64 ": acceptor %d is wiped\n", C->now, i);
}

/* --- proposers --- */

static void apply_effect(struct cluster *C, int pi, const struct cas_effect *eff);
static void reconf_done(struct cluster *C, const struct cas_op *op, bool crashed);
static void gc_done(struct cluster *C, const struct cas_op *op, bool crashed);

/* The collector's proposer slot. */
static int gc_slot(const struct cluster *C)
{
	return C->n_prop + 1;
}

/* The op's O and N as masks over identities. */
static uint64_t old_set(const struct cluster *C, const struct cluster_config *v)
{
	return C->reconf.on ? v->members : 0;
}

/* Whether the identity id of view v is gone: its address now hosts a
 * joining identity (a member replaced by an empty node at its address). */
static bool gone(const struct cluster *C, const struct cluster_config *v, int id)
{
	for (int j = 0; j < C->n_ids; j++)
		if (j != id && (v->joining >> j & 1) && C->addr[j] == C->addr[id])
			return (v->members >> id & 1) && !(v->joining >> id & 1);
	return false;
}

/* Proposer pi takes the configuration cfg when it is newer than its view;
 * its op (if any) uses it from its next attempt. */
static void reload(struct cluster *C, int pi, const struct cluster_config *cfg)
{
	struct cluster_proposer *P = &C->prop[pi];

	if (cfg->epoch <= P->view.epoch)
		return;
	P->view = *cfg;
	if (P->busy)
		cas_op_set_members(&P->op, (size_t)C->n_ids, old_set(C, cfg), cfg->joining,
				   cfg->epoch);
	if (C->verbose)
		printf("%" PRIu64 ": proposer %d reloads epoch %" PRIu64 "\n", C->now, pi,
		       cfg->epoch);
}

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

	/* The rescan never starts from a cached promise: a full round. */
	if (!crashed && C->use_cache && pi < C->n_prop && cas_op_take_cache(&P->op, &nb, &nv)) {
		uncache(P, P->key);
		P->cached[P->key] = true;
		P->cache_ballot[P->key] = nb;
		P->cache_value[P->key] = nv;
		P->cache_epoch[P->key] = P->op.cfg.epoch;
	} else if (!P->op.cfg.read_only) {
		/* A read did not take its cached promise (a query changes
		 * nothing); anything else used it up. */
		uncache(P, P->key);
	}
	cas_op_take_value(&P->op, &v);
	if (pi < C->n_prop)
		C->hooks.done(C, pi, &P->op, &v, crashed, C->hooks.arg);
	else if (pi == gc_slot(C))
		gc_done(C, &P->op, crashed);
	else
		reconf_done(C, &P->op, crashed);
	free(v.data);
	cas_op_clear(&P->op);
	P->busy = false;
	P->sleeping = false;
}

void cluster_start_op(struct cluster *C, int pi, int key, cas_change_fn fn, void *arg,
		      unsigned flags)
{
	struct cluster_proposer *P = &C->prop[pi];
	struct cas_op_config cfg = {.n_nodes = (size_t)C->n_ids, .max_value = 64};
	struct cas_effect eff;
	bool read = flags & CLUSTER_OP_READ;

	if (C->reconf.on && pi != C->n_prop && !P->keeps_view && cas_rand_below(&P->rng, 2)) {
		/* GET /v1/config from some node. */
		const struct cluster_acceptor *a = &C->acc[cas_rand_below(&P->rng, C->n_acc)];

		if (a->up && a->id >= 0)
			reload(C, pi, &a->cfg);
	}
	cfg.old_set = old_set(C, &P->view);
	cfg.new_set = P->view.joining;
	cfg.epoch = P->view.epoch;
	P->key = key;
	cfg.key = cluster_keys[key];
	cfg.fn = fn;
	cfg.arg = arg;
	cfg.op_id = ((uint64_t)pi + 1) << 48 | ++C->serial;
	cfg.deadline_ms = C->now + CLUSTER_DEADLINE;
	cfg.read_only = read && C->use_query;
	cfg.del = flags & CLUSTER_OP_DELETE;
	if (pi == gc_slot(C) && C->gc.step == GC_WRITE) {
		cfg.collect = true;
		cfg.tomb = C->gc.tomb;
	}
	if (P->cached[key] && !cfg.read_only) {
		C->cached_starts++;
		cfg.cached_ballot = P->cache_ballot[key];
		cfg.cached_value = &P->cache_value[key];
		cfg.cached_epoch = P->cache_epoch[key];
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
	case CAS_EFFECT_SEND: {
		uint64_t skipped = 0;

		P->sent_at = C->now;
		P->sleeping = false;
		for (int i = 0; i < C->n_ids; i++) {
			struct cluster_packet p = {.to_acceptor = true,
						   .acc = C->addr[i],
						   .prop = pi,
						   .key = P->key,
						   .node = i,
						   .serial = P->serial,
						   .attempt = eff->attempt,
						   .epoch = eff->epoch,
						   .m = *eff->msg};

			if (!(eff->targets >> i & 1))
				continue;
			if (gone(C, &P->view, i)) {
				skipped |= 1ull << i;
				continue;
			}
			send_packet(C, &p);
		}
		/* A gone node answers nothing: say so at once. */
		for (int i = 0; skipped != 0 && i < C->n_ids; i++) {
			uint32_t attempt = eff->attempt;
			struct cas_effect next;

			if (!(skipped >> i & 1) || !P->busy || P->op.attempt != attempt)
				continue;
			cas_op_on_reply(&P->op, &P->core, (size_t)i, attempt, NULL, C->now, &P->rng,
					&next);
			apply_effect(C, pi, &next);
		}
		break;
	}
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

static void reconf_answer(struct cluster *C, const struct cluster_packet *p);
static void gc_answer(struct cluster *C, const struct cluster_packet *p);

static void proposer_receive(struct cluster *C, struct cluster_packet *p)
{
	struct cluster_proposer *P = &C->prop[p->prop];
	struct cas_effect eff;

	if (p->kind == PKT_PURGE) {
		gc_answer(C, p);
		return;
	}
	if (p->kind != PKT_MSG) {
		reconf_answer(C, p);
		return;
	}
	if (!P->busy || p->serial != P->serial)
		return;
	if (p->refused != REFUSE_NONE) {
		/* Never a vote; a stale view is reloaded (409 "stale
		 * configuration": the client reloads and tries again). */
		if (p->refused == REFUSE_STALE)
			reload(C, p->prop, &p->cfg);
		cas_op_on_reply(&P->op, &P->core, (size_t)p->node, p->attempt, NULL, C->now,
				&P->rng, &eff);
	} else {
		cas_op_on_reply(&P->op, &P->core, (size_t)p->node, p->attempt, &p->m, C->now,
				&P->rng, &eff);
	}
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

/* --- the reconfigurer (cluster.h, "Membership") --- */

static bool majority_of(unsigned nodes, unsigned set)
{
	return set == 0 || (unsigned)__builtin_popcount(nodes & set) >=
				   (unsigned)__builtin_popcount(set) / 2 + 1;
}

static int fn_identity(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	(void)arg;
	(void)cur;
	(void)next;
	return CAS_ENOCHANGE;
}

static void reconf_next_step(struct cluster *C)
{
	struct cluster_reconf *R = &C->reconf;

	R->step++;
	R->acked = 0;
	R->sent_at = 0;
	R->key = 0;
	if (R->step == 1 && R->joining < 0)
		R->step = 2; /* nobody joins */
	if (R->step == 3 && R->skip_rescan)
		R->step = 4; /* the negative control */
	if (R->step == 5)
		R->done_at = C->now;
	if (C->verbose)
		printf("%" PRIu64 ": reconfigurer at step %d\n", C->now, R->step);
}

/* Sends this step's configuration to the identities that did not take it
 * yet: JOIN to the new one (step 1), the joint (2) or stable (4) one to
 * every node of O and N. */
static void reconf_send(struct cluster *C)
{
	struct cluster_reconf *R = &C->reconf;
	const struct cluster_config *cfg = R->step == 4 ? &R->to : &R->joint;
	unsigned to = R->step == 1 ? 1u << R->joining : R->joint.members | R->joint.joining;

	R->sent_at = C->now;
	for (int i = 0; i < C->n_ids; i++) {
		struct cluster_packet p = {.to_acceptor = true,
					   .kind = R->step == 1 ? PKT_JOIN : PKT_CONFIG,
					   .acc = C->addr[i],
					   .prop = C->n_prop,
					   .node = i,
					   .cfg = *cfg};

		if ((to >> i & 1) && !(R->acked >> i & 1) && !gone(C, &R->joint, i))
			send_packet(C, &p);
	}
}

static void reconf_answer(struct cluster *C, const struct cluster_packet *p)
{
	struct cluster_reconf *R = &C->reconf;
	const struct cluster_config *cfg = R->step == 4 ? &R->to : &R->joint;

	if (R->down || !p->took || p->node < 0 || p->cfg.epoch != cfg->epoch ||
	    (R->step != 1 && R->step != 2 && R->step != 4))
		return;
	R->acked |= 1u << p->node;
	if ((R->step == 1 && p->node == R->joining) ||
	    (R->step == 2 && majority_of(R->acked, R->joint.members) &&
	     majority_of(R->acked, R->joint.joining)) ||
	    (R->step == 4 && majority_of(R->acked, R->to.members)))
		reconf_next_step(C);
}

static void reconf_done(struct cluster *C, const struct cas_op *op, bool crashed)
{
	struct cluster_reconf *R = &C->reconf;

	if (C->verbose)
		printf("%" PRIu64 ": reconfigurer rescans %s -> %s\n", C->now, op->cfg.key,
		       crashed ? "crashed" : cas_strerror(op->result));
	if (crashed || R->step != 3 || op->result != CAS_OK)
		return; /* the same key again */
	R->rescans++;
	if (++R->key == CLUSTER_KEYS)
		reconf_next_step(C);
}

/* The reconfigurer's turn at a tick, when its proposer is idle. */
static void reconf_tick(struct cluster *C)
{
	struct cluster_reconf *R = &C->reconf;
	struct cluster_proposer *P = &C->prop[C->n_prop];

	if (R->change == CHANGE_WIPED && !R->wiped && C->now >= R->wipe_at) {
		acceptor_wipe(C, C->addr[R->leaving]);
		R->wiped = true;
	}
	if (R->step == 5 || P->busy)
		return;
	if (R->down) {
		if (C->now < R->resume_at)
			return;
		R->down = false; /* re-runs the step it was at */
		if (C->verbose)
			printf("%" PRIu64 ": reconfigurer resumes at step %d\n", C->now, R->step);
	}
	if (R->step == 0) {
		if (C->now < R->start_at)
			return;
		reconf_next_step(C);
	}
	if (R->step == 3) {
		P->view = R->joint;
		cluster_start_op(C, C->n_prop, R->key, fn_identity, NULL, false);
		return;
	}
	if (R->sent_at == 0 || C->now >= R->sent_at + RPC_TIMEOUT)
		reconf_send(C);
}

static void reconf_crash(struct cluster *C)
{
	struct cluster_reconf *R = &C->reconf;
	struct cluster_proposer *P = &C->prop[C->n_prop];

	if (R->step == 0 || R->step == 5 || R->down)
		return;
	if (P->busy)
		finish(C, C->n_prop, true);
	R->down = true;
	R->acked = 0;
	R->sent_at = 0;
	R->key = 0;
	R->crashes++;
	R->resume_at = C->now + 1 + cas_rand_below(&C->rng, 150);
	P->generation++;
	cas_proposer_init(&P->core, (uint64_t)P->generation << 8 | (uint64_t)(C->n_prop + 1));
	if (C->verbose)
		printf("%" PRIu64 ": reconfigurer crashes at step %d\n", C->now, R->step);
}

/* --- the collector (cluster.h, "Deletion") --- */

/* Whether the clients are idle with nothing they may start. */
static bool clients_idle(struct cluster *C)
{
	for (int pi = 0; pi < C->n_prop; pi++)
		if (C->prop[pi].busy || C->hooks.has_work(C, pi, C->hooks.arg))
			return false;
	return true;
}

static void gc_release(struct cluster *C)
{
	if (C->gc.released)
		return;
	C->gc.released = true;
	if (C->verbose)
		printf("%" PRIu64 ": collector releases the clients\n", C->now);
}

/* On to the next key, after a pause; a pass over every key without a
 * release releases the clients all the same. */
static void gc_next_key(struct cluster *C)
{
	struct cluster_gc *G = &C->gc;

	G->step = GC_PAUSE;
	G->until = C->now + 1 + cas_rand_below(&C->rng, 40);
	G->key = (G->key + 1) % CLUSTER_KEYS;
	if (++G->visited >= CLUSTER_KEYS)
		gc_release(C);
}

static void gc_set_step(struct cluster *C, enum cluster_gc_step step)
{
	static const char *const names[] = {"wait",	  "read",  "grace",
					    "write-back", "purge", "pause"};

	C->gc.step = step;
	C->gc.acked = 0;
	C->gc.sent_at = 0;
	if (C->verbose)
		printf("%" PRIu64 ": collector %s %s\n", C->now, names[step],
		       cluster_keys[C->gc.key]);
}

static void gc_done(struct cluster *C, const struct cas_op *op, bool crashed)
{
	struct cluster_gc *G = &C->gc;
	const struct cas_reg *r = &op->out.value;

	if (crashed)
		return; /* gc_crash starts over */
	if (G->step == GC_READ) {
		if (op->result != CAS_OK || !cas_reg_absent(r)) {
			gc_next_key(C);
			return;
		}
		/* A tombstone (or nothing): it must stay this one. */
		memset(&G->tomb, 0, sizeof(G->tomb));
		if (r->n_recent > 0)
			G->tomb = r->recent[0];
		G->until = C->now + (G->skip_grace ? 0 : CLUSTER_GRACE);
		gc_set_step(C, GC_GRACE);
	} else if (G->step == GC_WRITE) {
		if (op->result == CAS_OK) {
			G->ballot = op->ballot;
			G->serial = ++C->serial; /* its answers, not older ones */
			G->writebacks++;
			gc_set_step(C, GC_PURGE);
			if (G->release_at_purge)
				gc_release(C);
		} else if (op->result == CAS_EUNAVAILABLE) {
			G->aborted++;
			gc_next_key(C); /* a node did not answer: later */
		} else {
			gc_next_key(C); /* no longer that tombstone */
		}
	}
}

/* PURGE(key, B) to every identity of the collector's view that did not
 * answer yet. */
static void gc_send(struct cluster *C)
{
	struct cluster_gc *G = &C->gc;
	struct cluster_proposer *P = &C->prop[gc_slot(C)];

	G->sent_at = C->now;
	for (int i = 0; i < C->n_ids; i++) {
		struct cluster_packet p = {.to_acceptor = true,
					   .kind = PKT_PURGE,
					   .acc = C->addr[i],
					   .prop = gc_slot(C),
					   .key = G->key,
					   .node = i,
					   .serial = G->serial,
					   .epoch = P->view.epoch,
					   .m = {.type = CAS_MSG_PURGE, .ballot = G->ballot}};

		if (!has(&P->view, i) || (G->acked >> i & 1) || gone(C, &P->view, i))
			continue;
		strcpy(p.m.key, cluster_keys[G->key]);
		send_packet(C, &p);
	}
}

static void gc_answer(struct cluster *C, const struct cluster_packet *p)
{
	struct cluster_gc *G = &C->gc;
	struct cluster_proposer *P = &C->prop[gc_slot(C)];
	unsigned all = 0;

	if (G->down || G->step != GC_PURGE || p->serial != G->serial)
		return;
	if (p->refused != REFUSE_NONE) {
		/* Another configuration: its nodes took no write-back of
		 * ours. Reload, and write back again there. */
		reload(C, gc_slot(C), &p->cfg);
		gc_set_step(C, GC_WRITE);
		return;
	}
	G->acked |= 1u << p->node;
	for (int i = 0; i < C->n_ids; i++)
		if (has(&P->view, i) && !gone(C, &P->view, i))
			all |= 1u << i;
	if ((G->acked & all) == all) {
		G->purges++;
		gc_next_key(C);
	}
}

/* The collector's turn at a tick, when its proposer is idle. */
static void gc_tick(struct cluster *C)
{
	struct cluster_gc *G = &C->gc;
	struct cluster_proposer *P = &C->prop[gc_slot(C)];

	if (P->busy)
		return;
	if (G->down) {
		if (C->now < G->resume_at)
			return;
		G->down = false;
		gc_set_step(C, GC_READ); /* from the start: it keeps nothing */
	}
	if (G->released && clients_idle(C))
		return; /* the clients are through: it is left where it is */
	if (!G->released && clients_idle(C)) {
		/* Only the collector works: crashed nodes come back and its
		 * partition heals sooner than the storm alone would do it (an
		 * operator is at work), so that a write-back by all can happen
		 * at all. */
		for (int i = 0; i < C->n_acc; i++)
			if (!C->acc[i].up && cas_rand_below(&C->rng, 30) == 0) {
				C->acc[i].up = true;
				if (C->verbose)
					printf("%" PRIu64 ": acceptor %d restarts\n", C->now, i);
			}
		if (cas_rand_below(&C->rng, 30) == 0)
			P->reach = (1u << C->n_acc) - 1;
	}
	switch (G->step) {
	case GC_WAIT:
		if (clients_idle(C))
			gc_set_step(C, GC_READ);
		return;
	case GC_READ:
		cluster_start_op(C, gc_slot(C), G->key, fn_identity, NULL, 0);
		return;
	case GC_GRACE:
		if (C->now >= G->until)
			gc_set_step(C, GC_WRITE);
		return;
	case GC_WRITE:
		if (!G->release_at_purge)
			gc_release(C);
		cluster_start_op(C, gc_slot(C), G->key, NULL, NULL, 0);
		return;
	case GC_PURGE:
		if (G->sent_at == 0 || C->now >= G->sent_at + RPC_TIMEOUT)
			gc_send(C);
		return;
	case GC_PAUSE:
		if (C->now >= G->until)
			gc_set_step(C, GC_READ);
		return;
	}
}

static void gc_crash(struct cluster *C)
{
	struct cluster_gc *G = &C->gc;
	struct cluster_proposer *P = &C->prop[gc_slot(C)];

	if (G->step == GC_WAIT || G->down)
		return;
	if (P->busy)
		finish(C, gc_slot(C), true);
	G->down = true;
	G->crashes++;
	G->resume_at = C->now + 1 + cas_rand_below(&C->rng, 100);
	P->generation++;
	cas_proposer_init(&P->core, (uint64_t)P->generation << 8 | (uint64_t)(gc_slot(C) + 1));
	if (C->verbose)
		printf("%" PRIu64 ": collector crashes\n", C->now);
}

/* Timers: new ops, backoff wake-ups, per-node timeouts and op deadlines. */
static void tick(struct cluster *C)
{
	C->now++;
	for (int pi = 0; pi <= gc_slot(C); pi++) {
		struct cluster_proposer *P = &C->prop[pi];
		struct cas_effect eff = {.kind = CAS_EFFECT_WAIT};

		if (pi == C->n_prop && !C->reconf.on)
			continue;
		if (pi == gc_slot(C) && !C->gc.on)
			continue;
		if (pi == C->n_prop)
			reconf_tick(C);
		if (pi == gc_slot(C))
			gc_tick(C);
		if (!P->busy && pi >= C->n_prop)
			continue;
		if (!P->busy) {
			/* Once the collector is at work, the clients of some
			 * seeds think between ops, so that more than one purge
			 * meets them. */
			if (C->hooks.has_work(C, pi, C->hooks.arg) &&
			    cas_rand_below(&C->rng, C->gc.released ? C->gc.think : 4) == 0)
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
			     i < C->n_ids && P->busy && P->op.attempt == attempt && !P->sleeping;
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
	if (C->gc.on && !C->gc.released)
		return false; /* the clients' second ops are to come */
	return !C->reconf.on || C->reconf.step == 5;
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
		int pi = (int)cas_rand_below(&C->rng, (uint64_t)C->n_prop + (C->gc.on ? 1 : 0));
		unsigned all = (1u << C->n_acc) - 1;

		/* Cut a proposer (a client, or the collector) off some
		 * acceptors, or heal it. */
		if (pi == C->n_prop)
			pi = gc_slot(C);
		C->prop[pi].reach = cas_rand_below(&C->rng, 2)
					    ? all
					    : (unsigned)cas_rand_below(&C->rng, all + 1);
		C->faults++;
	} else if (roll < C->w.crash + C->w.partition + C->w.pcrash) {
		proposer_crash(C, (int)cas_rand_below(&C->rng, (uint64_t)C->n_prop));
		C->faults++;
	} else if (C->reconf.on && roll < C->w.crash + C->w.partition + C->w.pcrash + C->w.rcrash) {
		reconf_crash(C);
		C->faults++;
	} else if (C->gc.on && roll >= 990 && roll < 990 + C->w.gcrash) {
		gc_crash(C);
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

/* The clients are through and the change of members is not: the storm
 * passes (an operator retries a change until it goes through), so that
 * every change completes and the clients' reads after it run. */
static void calm(struct cluster *C)
{
	C->calm = true;
	C->w.drop = C->w.dup = C->w.crash = C->w.partition = C->w.pcrash = C->w.rcrash = 0;
	if (C->w.max_delay > 8)
		C->w.max_delay = 8; /* round trips within RPC_TIMEOUT */
	for (int i = 0; i < C->n_acc; i++)
		C->acc[i].up = true;
	for (int pi = 0; pi < C->n_prop; pi++)
		C->prop[pi].reach = (1u << C->n_acc) - 1;
	if (C->verbose)
		printf("%" PRIu64 ": calm\n", C->now);
}

void cluster_step(struct cluster *C)
{
	unsigned roll = (unsigned)cas_rand_below(&C->rng, 100);

	if (C->reconf.on && !C->calm && C->reconf.step != 5 && (!C->gc.on || C->gc.released) &&
	    clients_idle(C))
		calm(C);

	if (roll < 70)
		deliver_one(C);
	else if (roll < 90)
		tick(C);
	else
		nemesis(C);
}

static const char *const change_names[] = {"none", "add", "remove", "replace", "replace-wiped"};

/* Draws the change of members of a seed that has one, from its own
 * stream (the other seeds' draws stay what they were): which change, from
 * how many members, when, and how often the reconfigurer crashes. */
static void draw_change(struct cluster *C, bool skip_rescan)
{
	struct cluster_reconf *R = &C->reconf;
	uint64_t rr = C->seed * 0xd1b54a32d192ed03ull + 7;
	unsigned r = (unsigned)cas_rand_below(&rr, 100);
	unsigned all;
	int n0;

	R->on = true;
	R->skip_rescan = skip_rescan;
	R->change = r < 20   ? CHANGE_ADD
		    : r < 40 ? CHANGE_REMOVE
		    : r < 65 ? CHANGE_REPLACE
			     : CHANGE_WIPED;
	r = (unsigned)cas_rand_below(&rr, 4);
	if (R->change == CHANGE_ADD)
		n0 = r == 0 ? 4 : 3;
	else if (R->change == CHANGE_REMOVE)
		n0 = r == 0 ? 5 : 4;
	else
		n0 = r == 0 ? 5 : r == 1 ? 4 : 3;
	all = (1u << n0) - 1;
	R->leaving = R->change == CHANGE_ADD ? -1 : (int)cas_rand_below(&rr, (uint64_t)n0);
	R->joining = R->change == CHANGE_REMOVE ? -1 : n0;
	C->n_ids = R->joining < 0 ? n0 : n0 + 1;
	C->n_acc = R->change == CHANGE_ADD || R->change == CHANGE_REPLACE ? n0 + 1 : n0;
	for (int i = 0; i < C->n_ids; i++)
		C->addr[i] = i;
	if (R->change == CHANGE_WIPED)
		C->addr[n0] = R->leaving; /* the same address, an empty disk */
	R->from = (struct cluster_config){.epoch = 1, .members = all};
	R->joint.epoch = 2;
	R->joint.members = all;
	R->joint.joining = all;
	if (R->leaving >= 0)
		R->joint.joining &= ~(1u << R->leaving);
	if (R->joining >= 0)
		R->joint.joining |= 1u << R->joining;
	R->to = (struct cluster_config){.epoch = 3, .members = R->joint.joining};
	/* While the clients work: they run before, during and after it. */
	R->start_at = 40 + cas_rand_below(&rr, 160);
	R->wipe_at = R->start_at - cas_rand_below(&rr, 11);
	C->w.rcrash = (unsigned)cas_rand_below(&rr, 20);
	if (C->verbose)
		printf("change: %s, %d members, node %d leaves, node %d joins at address %d, "
		       "from tick %" PRIu64 "\n",
		       change_names[R->change], n0, R->leaving, R->joining,
		       R->joining < 0 ? -1 : C->addr[R->joining], R->start_at);
}

/* Whether the seed deletes and collects, and how, from its own stream
 * (the other draws stay what they were). */
static void draw_deletes(struct cluster *C, bool skip_grace)
{
	uint64_t rr = C->seed * 0xa0761d6478bd642full + 11;

	if (cas_rand_below(&rr, 2) != 0)
		return;
	C->gc.on = true;
	C->gc.skip_grace = skip_grace;
	C->gc.release_at_purge = cas_rand_below(&rr, 2);
	C->gc.key = (int)cas_rand_below(&rr, CLUSTER_KEYS);
	C->w.gcrash = (unsigned)cas_rand_below(&rr, 3);
	C->gc.think = cas_rand_below(&rr, 2) ? 40 : 4;
}

void cluster_init(struct cluster *C, uint64_t seed, const struct cluster_options *opt,
		  const struct cluster_hooks *hooks)
{
	bool verbose = opt->verbose, changes = opt->changes;
	uint64_t r;

	memset(C, 0, sizeof(*C));
	C->seed = seed;
	C->rng = seed * 0x9e3779b97f4a7c15ull + 1;
	C->verbose = verbose;
	C->reply_before_durable = opt->reply_before_durable;
	C->hooks = *hooks;
	r = cas_rand_next(&C->rng);
	C->n_acc = (r & 3) == 0 ? 5 : 3;
	C->n_ids = C->n_acc;
	for (int i = 0; i < C->n_acc; i++)
		C->addr[i] = i;
	C->reconf.from = (struct cluster_config){.epoch = 1, .members = (1u << C->n_acc) - 1};
	if (changes && (seed * 0x9e3779b97f4a7c15ull >> 40) % 3 == 0)
		draw_change(C, opt->skip_rescan);
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
	for (int i = 0; i < C->n_acc; i++) {
		C->acc[i].up = true;
		C->acc[i].id = -1; /* not initialized */
	}
	/* casctl init: the first members, epoch 1. */
	for (int i = 0; i < C->n_ids; i++)
		if (C->reconf.from.members >> i & 1) {
			C->acc[C->addr[i]].id = i;
			C->acc[C->addr[i]].cfg = C->reconf.from;
		}
	for (int pi = 0; pi < C->n_prop; pi++) {
		struct cluster_proposer *P = &C->prop[pi];

		cas_proposer_init(&P->core, (uint64_t)(pi + 1));
		P->reach = (1u << C->n_acc) - 1;
		P->rng = cas_rand_next(&C->rng);
		P->view = C->reconf.from;
		P->keeps_view = pi == 0;
	}
	if (C->reconf.on) {
		struct cluster_proposer *P = &C->prop[C->n_prop];

		cas_proposer_init(&P->core, (uint64_t)(C->n_prop + 1));
		P->reach = (1u << C->n_acc) - 1;
		P->rng = cas_rand_next(&C->rng);
	}
	if (opt->deletes)
		draw_deletes(C, opt->skip_grace);
	if (C->gc.on) {
		struct cluster_proposer *P = &C->prop[gc_slot(C)];

		cas_proposer_init(&P->core, (uint64_t)(gc_slot(C) + 1));
		P->reach = (1u << C->n_acc) - 1;
		P->rng = cas_rand_next(&C->rng);
		P->view = C->reconf.from;
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
	for (int pi = 0; pi < CLUSTER_MAX_PROP + 2; pi++) {
		cas_op_clear(&C->prop[pi].op);
		for (int k = 0; k < CLUSTER_KEYS; k++)
			uncache(&C->prop[pi], k);
#ifdef CAS_SIM_FAULTS
		free(C->prop[pi].core.reuse_base.data);
#endif
	}
}

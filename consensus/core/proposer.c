/* proposer.c - the CASPaxos proposer as a pure state machine (paper,
 * section 2.2, steps 1 to 6, with conflict handling and backoff). */
#include <stdlib.h>
#include <string.h>

#include "faults.h"
#include "proposer.h"
#include "rand.h"

void cas_proposer_init(struct cas_proposer *p, uint64_t id)
{
	p->id = id;
	p->counter = 0;
}

struct cas_ballot cas_proposer_next_ballot(struct cas_proposer *p)
{
	p->counter++;
	return (struct cas_ballot){.counter = p->counter, .id = p->id};
}

void cas_proposer_observe(struct cas_proposer *p, struct cas_ballot seen)
{
	if (seen.counter > p->counter)
		p->counter = seen.counter;
}

size_t cas_quorum(size_t n)
{
	if (CAS_FAULT(CAS_FAULT_QUORUM_ONE))
		return 1;
	return n / 2 + 1;
}

static size_t count(uint64_t nodes)
{
	size_t n = 0;

	for (; nodes != 0; nodes &= nodes - 1)
		n++;
	return n;
}

/* Takes the members of the attempt about to begin: O and N as masks
 * over the op's nodes (bits past n_nodes dropped), and their majorities. */
static void use_members(struct cas_op *op)
{
	uint64_t all = op->cfg.n_nodes >= 64 ? ~0ull : (1ull << op->cfg.n_nodes) - 1;

	op->set_o = op->cfg.old_set & all;
	if (op->set_o == 0)
		op->set_o = all;
	op->set_n = op->cfg.new_set & all;
	op->quorum_o = cas_quorum(count(op->set_o));
	op->quorum_n = op->set_n != 0 ? cas_quorum(count(op->set_n)) : 0;
}

void cas_op_init(struct cas_op *op, const struct cas_op_config *cfg)
{
	memset(op, 0, sizeof(*op));
	op->cfg = *cfg;
	use_members(op);
	op->phase = CAS_OP_IDLE;
	op->result = CAS_EUNAVAILABLE;
}

void cas_op_set_members(struct cas_op *op, size_t n_nodes, uint64_t old_set, uint64_t new_set,
			uint64_t epoch)
{
	if (op->phase != CAS_OP_IDLE) {
		/* One attempt, one epoch: begin_attempt takes these. */
		op->next_n_nodes = n_nodes;
		op->next_old = old_set;
		op->next_new = new_set;
		op->next_epoch = epoch;
		op->next_set = true;
		return;
	}
	op->cfg.n_nodes = n_nodes;
	op->cfg.old_set = old_set;
	op->cfg.new_set = new_set;
	op->cfg.epoch = epoch;
	use_members(op);
}

/* Whether node counts in this attempt: it is in O or in N. */
static bool is_member(const struct cas_op *op, size_t node)
{
	return node < op->cfg.n_nodes && node < 64 && ((op->set_o | op->set_n) >> node & 1);
}

/* Whether nodes hold a majority of O and, when with_n and the
 * configuration is joint, a majority of N. */
static bool majorities(const struct cas_op *op, uint64_t nodes, bool with_n)
{
	if (count(nodes & op->set_o) < op->quorum_o)
		return false;
	return !with_n || op->set_n == 0 || count(nodes & op->set_n) >= op->quorum_n;
}

/* Whether the failed nodes leave one of those majorities out of reach. */
static bool out_of_reach(const struct cas_op *op, uint64_t failed, bool with_n)
{
	if (count(failed & op->set_o) > count(op->set_o) - op->quorum_o)
		return true;
	return with_n && op->set_n != 0 &&
	       count(failed & op->set_n) > count(op->set_n) - op->quorum_n;
}

static void reset_tally(struct cas_op *op)
{
	memset(op->answered, 0, sizeof(op->answered));
	op->ok_nodes = 0;
	op->failed_nodes = 0;
	op->oks = 0;
	op->fails = 0;
}

static void finish(struct cas_op *op, int result, struct cas_effect *eff)
{
	op->phase = CAS_OP_DONE;
	op->result = result;
	eff->kind = CAS_EFFECT_DONE;
}

static void send(struct cas_op *op, struct cas_effect *eff)
{
	/* A new tag per SEND, so that late replies to an earlier phase or
	 * attempt can never be counted in this one. */
	op->attempt++;
	reset_tally(op);
	eff->kind = CAS_EFFECT_SEND;
	eff->msg = &op->out;
	eff->attempt = op->attempt;
	eff->targets = op->set_o | op->set_n;
	eff->epoch = op->cfg.epoch;
}

/* Step 1: a fresh ballot for every attempt, so one ballot is never sent
 * with two values, whatever happened to an earlier accept. */
static void begin_attempt(struct cas_op *op, struct cas_proposer *p, struct cas_effect *eff)
{
	if (op->next_set) {
		/* A newer configuration, from this attempt on. */
		op->cfg.n_nodes = op->next_n_nodes;
		op->cfg.old_set = op->next_old;
		op->cfg.new_set = op->next_new;
		op->cfg.epoch = op->next_epoch;
		op->next_set = false;
		use_members(op);
	}
	free(op->best.data);
	memset(&op->best, 0, sizeof(op->best));
	op->best_ballot = (struct cas_ballot){0, 0};
	op->best_set = false;

	if (op->out_is_change) {
		/* Keep our failed proposal: a later attempt may find that it
		 * won after all, and must then answer with it. */
		struct cas_reg *m = realloc(op->mine, (op->n_mine + 1) * sizeof(*m));

		if (m != NULL) {
			op->mine = m;
			op->mine[op->n_mine++] = op->out.value;
			memset(&op->out.value, 0, sizeof(op->out.value));
		}
		op->out_is_change = false;
	}
	cas_msg_clear(&op->out);
	op->out.type = CAS_MSG_PREPARE;
	strncpy(op->out.key, op->cfg.key, CAS_KEY_MAX);
	op->ballot = cas_proposer_next_ballot(p);
	op->out.ballot = op->ballot;
	op->phase = CAS_OP_PREPARE;
	send(op, eff);
}

static void prepared(struct cas_op *op, struct cas_proposer *p, struct cas_effect *eff);

static void clear_query(struct cas_op *op)
{
	for (size_t i = 0; i < op->n_q; i++)
		free(op->q_vals[i].data);
	free(op->q_vals);
	free(op->q_ballots);
	free(op->q_nodes);
	op->q_vals = NULL;
	op->q_ballots = NULL;
	op->q_nodes = NULL;
	op->n_q = 0;
}

/* A read's first try: ask every node for its accepted ballot and value,
 * changing nothing. */
static bool start_query(struct cas_op *op, struct cas_effect *eff)
{
	size_t n = op->cfg.n_nodes;

	op->q_vals = calloc(n, sizeof(*op->q_vals));
	op->q_ballots = calloc(n, sizeof(*op->q_ballots));
	op->q_nodes = calloc(n, sizeof(*op->q_nodes));
	if (op->q_vals == NULL || op->q_ballots == NULL || op->q_nodes == NULL) {
		clear_query(op);
		return false; /* a full round needs none of it */
	}
	cas_msg_clear(&op->out);
	op->out.type = CAS_MSG_QUERY;
	strncpy(op->out.key, op->cfg.key, CAS_KEY_MAX);
	op->phase = CAS_OP_QUERY;
	send(op, eff);
	return true;
}

void cas_op_start(struct cas_op *op, struct cas_proposer *p, struct cas_effect *eff)
{
	if (op->cfg.collect) {
		/* A full round: its prepare must pass every promise made before
		 * it in a quorum (acceptor.h, "Deletion"). */
		op->cfg.read_only = false;
		op->cfg.cached_value = NULL;
	}
	if (op->cfg.read_only && start_query(op, eff))
		return;
	if (op->cfg.cached_value != NULL && op->cfg.cached_epoch != op->cfg.epoch)
		op->cfg.cached_value = NULL; /* made in another configuration */
	if (op->cfg.cached_value != NULL) {
		/* A majority promised this ballot with their last accept, and
		 * what they accepted is what a prepare would return. */
		if (cas_reg_copy(&op->best, op->cfg.cached_value) != CAS_OK) {
			finish(op, CAS_ENOMEM, eff);
			return;
		}
		op->cfg.cached_value = NULL;
		op->best_set = true;
		op->ballot = op->cfg.cached_ballot;
		cas_proposer_observe(p, op->ballot);
		op->from_cache = true;
		prepared(op, p, eff);
		return;
	}
#ifdef CAS_SIM_FAULTS
	if (CAS_FAULT(CAS_FAULT_BALLOT_REUSE) && p->reuse_set) {
		/* The bug, continued: no prepare, the old ballot, a new value. */
		p->reuse_set = false;
		op->ballot = p->reuse;
		op->best = p->reuse_base;
		memset(&p->reuse_base, 0, sizeof(p->reuse_base));
		op->best_set = true;
		prepared(op, p, eff);
		return;
	}
#endif
	begin_attempt(op, p, eff);
}

/* Our proposer's entry among r's recent changes, or NULL. */
static const struct cas_recent *our_entry(const struct cas_reg *r, uint64_t proposer)
{
	for (uint32_t i = 0; i < r->n_recent && i < CAS_RECENT_MAX; i++)
		if (r->recent[i].proposer == proposer)
			return &r->recent[i];
	return NULL;
}

/* Whether one of our earlier proposals may have been chosen without our
 * being able to see it in cur, the value this attempt builds on (called
 * when cur does not name this op as our last change).
 *
 * Had a proposal that made change number s (cas_reg_seq) been chosen
 * before this attempt's prepare, cur would descend from it (cur has the
 * highest accepted ballot in a quorum that meets the one that chose it),
 * so cur would name this op as our last change (we run one op at a time
 * on a key) unless our entry was dropped: that takes CAS_RECENT_MAX other
 * proposers' changes after it, so a full list, no entry of ours, and a
 * change number at least s + CAS_RECENT_MAX. Otherwise the proposal was
 * not chosen yet; if this attempt's accept succeeds it never will be, and
 * if it fails it stays in the running (it is kept). Change numbers, not
 * versions: a version starts again at 1 after a delete, change numbers go
 * on. (A purge forgets them: the collector's grace, acceptor.h.) */
static bool mine_unknown(const struct cas_op *op, const struct cas_reg *cur, bool listed)
{
	uint64_t seq = cas_reg_seq(cur);

	if (listed || cur->n_recent < CAS_RECENT_MAX)
		return false;
	for (size_t i = 0; i < op->n_mine; i++) {
		uint64_t s = cas_reg_seq(&op->mine[i]);

		if (s != 0 && s <= seq && seq - s >= CAS_RECENT_MAX)
			return true;
	}
	return false;
}

/* The identity this op's proposal records in the register's recent
 * changes. Every proposal has its own: two attempts of one op can propose
 * the same version with different bytes (a change function that stamps
 * the time, say), and the one that won must be told from the others. A
 * mix of the op's id with the attempt (every proposal follows its own
 * prepare or cached promise, so attempts differ), never 0; ids of other
 * ops stay unlikely to meet (splitmix64's finalizer). */
static uint64_t proposal_id(const struct cas_op *op)
{
	uint64_t z = op->cfg.op_id + (uint64_t)op->attempt * 0x9e3779b97f4a7c15ull;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return z ? z : 1;
}

/* Whether the recent change r was made by one of this op's earlier
 * proposals (begin_attempt keeps them in mine). */
static bool is_mine(const struct cas_op *op, const struct cas_recent *r)
{
	for (size_t i = 0; i < op->n_mine; i++)
		if (op->mine[i].n_recent > 0 && op->mine[i].recent[0].op == r->op)
			return true;
	return false;
}

/* An earlier proposal of this op won (ours names it): answer with the
 * value that proposal wrote, found by its identity, not its version. */
static int answer_with_mine(struct cas_op *op, const struct cas_recent *ours)
{
	for (size_t i = 0; i < op->n_mine; i++) {
		const struct cas_reg *m = &op->mine[i];

		if (m->n_recent > 0 && m->recent[0].op == ours->op &&
		    m->recent[0].version == ours->version) {
			op->answer = i;
			op->answer_set = true;
			return CAS_OK;
		}
#ifdef CAS_SIM_FAULTS
		/* The negative control: recognise a proposal by its version
		 * alone, as before proposals had their own identity. */
		if (CAS_FAULT(CAS_FAULT_MINE_BY_VERSION) && m->version == ours->version) {
			op->answer = i;
			op->answer_set = true;
			return CAS_OK;
		}
#endif
	}
	/* Only a proposal we failed to keep (out of memory) gets here. */
	return CAS_ENOMEM;
}

/* Whether cur is the tombstone the collector means to purge: absent, and
 * its last change (none when it has none) is cfg.tomb. */
static bool collectable(const struct cas_op *op, const struct cas_reg *cur)
{
	struct cas_recent none = {0, 0, 0};
	const struct cas_recent *last = cur->n_recent > 0 ? &cur->recent[0] : &none;

	return cas_reg_absent(cur) && cur->len == 0 && last->proposer == op->cfg.tomb.proposer &&
	       last->op == op->cfg.tomb.op && last->version == op->cfg.tomb.version;
}

/* Steps 3 and 4: a majority promised; apply the change to the value with
 * the highest accepted ballot, and send it with our own ballot. */
static void prepared(struct cas_op *op, struct cas_proposer *p, struct cas_effect *eff)
{
	struct cas_reg *cur = &op->best;
	const struct cas_recent *ours;
	struct cas_reg next;
	int rc;

#ifdef CAS_SIM_FAULTS
	free(op->fault_base.data);
	if (cas_reg_copy(&op->fault_base, cur) != CAS_OK) {
		finish(op, CAS_ENOMEM, eff);
		return;
	}
#endif
	op->out_is_change = false;
	op->answer_set = false;
	ours = our_entry(cur, p->id);
	if (op->cfg.collect) {
		if (!collectable(op, cur)) {
			finish(op, CAS_EVERSION, eff);
			return;
		}
		op->verdict = CAS_OK;
		next = *cur;
		cur->data = NULL;
	} else if (ours != NULL && is_mine(op, ours)) {
		/* An earlier attempt's accept reached enough acceptors to be
		 * picked up: our change is in, do not apply it twice. Write
		 * back what is there, so that it is chosen. */
		op->verdict = answer_with_mine(op, ours);
		next = *cur;
		cur->data = NULL;
	} else if (mine_unknown(op, cur, ours != NULL)) {
		finish(op, CAS_EUNAVAILABLE, eff);
		return;
	} else {
		struct cas_value in = {.version = cur->version, .data = cur->data, .len = cur->len};
		struct cas_value out = {0};

		rc = op->cfg.fn != NULL ? op->cfg.fn(op->cfg.arg, &in, &out) : CAS_OK;
		if (rc == CAS_OK && op->cfg.del) {
			/* A delete: the bytes fn made do not matter; deleting
			 * what is absent changes nothing. */
			free(out.data);
			memset(&out, 0, sizeof(out));
			if (cas_reg_absent(cur))
				rc = CAS_ENOCHANGE;
		}
		if (rc == CAS_OK) {
			if (out.len > op->cfg.max_value) {
				free(out.data);
				finish(op, CAS_ETOOBIG, eff);
				return;
			}
			next.version = op->cfg.del ? 0 : cur->version + 1;
			next.recent[0] =
				(struct cas_recent){p->id, proposal_id(op), cas_reg_seq(cur) + 1};
			next.n_recent = 1;
			for (uint32_t i = 0; i < cur->n_recent && next.n_recent < CAS_RECENT_MAX;
			     i++)
				if (cur->recent[i].proposer != p->id)
					next.recent[next.n_recent++] = cur->recent[i];
			next.data = out.data;
			next.len = out.len;
			op->verdict = CAS_OK;
			op->out_is_change = true;
		} else {
			/* Keep the value, but still write it back: what we
			 * report must be a chosen value, not a dirty one. */
			free(out.data);
			op->verdict = rc == CAS_ENOCHANGE ? CAS_OK : rc;
			next = *cur;
			cur->data = NULL;
		}
	}

	cas_msg_clear(&op->out);
	op->out.type = CAS_MSG_ACCEPT;
	strncpy(op->out.key, op->cfg.key, CAS_KEY_MAX);
	op->out.ballot = op->ballot;
	/* Ask for a promise of our next ballot with the accept: the next op
	 * on this key can then skip its prepare. (Not the collector's: it
	 * would only be one more promise to pass.) */
	if (!op->cfg.collect)
		op->out.next = cas_proposer_next_ballot(p);
	op->out.value = next;
	op->phase = CAS_OP_ACCEPT;
	op->promised = 0;
	send(op, eff);
}

static void attempt_failed(struct cas_op *op, struct cas_proposer *p, uint64_t now_ms,
			   uint64_t *rng, struct cas_effect *eff)
{
	uint64_t span = CAS_BACKOFF_CAP_MS;
	uint64_t wait;

	(void)p; /* used by the negative controls only */
	/* A refused cached accept is a conflict like any other: someone else
	 * is at work on the key, and backing off lets it finish (going at
	 * once starves it). */
	op->from_cache = false;
	op->conflicts++;
#ifdef CAS_SIM_FAULTS
	if (CAS_FAULT(CAS_FAULT_BALLOT_REUSE) && op->phase == CAS_OP_ACCEPT && !p->reuse_set) {
		/* The bug: keep the ballot of a failed accept for the next
		 * operation, as if its promise still held. */
		p->reuse = op->ballot;
		p->reuse_base = op->fault_base;
		memset(&op->fault_base, 0, sizeof(op->fault_base));
		p->reuse_set = true;
	}
#endif
	if (op->conflicts < 16 && ((uint64_t)CAS_BACKOFF_BASE_MS << op->conflicts) < span)
		span = (uint64_t)CAS_BACKOFF_BASE_MS << op->conflicts;
	wait = cas_rand_below(rng, span + 1);
	if (now_ms + wait >= op->cfg.deadline_ms) {
		finish(op, CAS_EUNAVAILABLE, eff);
		return;
	}
	op->phase = CAS_OP_BACKOFF;
	op->slept_from_ms = now_ms;
	eff->kind = CAS_EFFECT_SLEEP;
	eff->until_ms = now_ms + wait;
}

static bool take_answer(struct cas_op *op, size_t node)
{
	uint64_t bit = 1ull << (node % 64);

	if (op->answered[node / 64] & bit)
		return false;
	op->answered[node / 64] |= bit;
	return true;
}

/* A node's answer to a read's query.
 *
 * When an accept quorum (a majority of O, and of N when joint) report the
 * same accepted ballot b, b's value v is chosen (an accept quorum accepted
 * it), and no value with a higher ballot was chosen before this query
 * started: it would have been accepted by an accept quorum, whose majority
 * of O meets ours (or, chosen at a later epoch, by nodes that no longer
 * answer ours), and accepted ballots only grow. So v is the latest chosen
 * value at some moment within the query: the read is linearizable without
 * writing anything. A majority of O alone is not enough while joint: a
 * value on a majority of O only may be missed by the stable N that
 * follows. Otherwise (a write is under way, or too few agree) the read
 * falls back to a full round at once. */
static void on_query_reply(struct cas_op *op, struct cas_proposer *p, size_t node,
			   const struct cas_msg *reply, struct cas_effect *eff)
{
	uint64_t bit = 1ull << node;
	size_t i;

	if (reply == NULL) {
		op->fails++;
		op->failed_nodes |= bit;
	} else {
		op->oks++;
		op->ok_nodes |= bit;
		for (i = 0; i < op->n_q; i++)
			if (cas_ballot_cmp(op->q_ballots[i], reply->ballot) == 0)
				break;
		if (i == op->n_q) {
			if (cas_reg_copy(&op->q_vals[i], &reply->value) != CAS_OK) {
				finish(op, CAS_ENOMEM, eff);
				return;
			}
			op->q_ballots[i] = reply->ballot;
			op->n_q++;
		}
		op->q_nodes[i] |= bit;
		if (majorities(op, op->q_nodes[i], true) || CAS_FAULT(CAS_FAULT_QUERY_ONE)) {
			cas_msg_clear(&op->out);
			op->out.value = op->q_vals[i];
			memset(&op->q_vals[i], 0, sizeof(op->q_vals[i]));
			clear_query(op);
			op->have_value = true;
			finish(op, CAS_OK, eff);
			return;
		}
	}
	if (majorities(op, op->ok_nodes, true) || out_of_reach(op, op->failed_nodes, true)) {
		clear_query(op);
		begin_attempt(op, p, eff);
	}
}

void cas_op_on_reply(struct cas_op *op, struct cas_proposer *p, size_t node, uint32_t attempt,
		     const struct cas_msg *reply, uint64_t now_ms, uint64_t *rng,
		     struct cas_effect *eff)
{
	bool with_n;

	eff->kind = CAS_EFFECT_WAIT;
	if (op->phase == CAS_OP_QUERY && attempt == op->attempt && is_member(op, node) &&
	    (reply == NULL || reply->type == CAS_MSG_CURRENT) && take_answer(op, node)) {
		on_query_reply(op, p, node, reply, eff);
		return;
	}
	if ((op->phase != CAS_OP_PREPARE && op->phase != CAS_OP_ACCEPT) || attempt != op->attempt ||
	    !is_member(op, node))
		return;
	if (reply != NULL && reply->type != CAS_MSG_REJECT &&
	    reply->type != (op->phase == CAS_OP_PREPARE ? CAS_MSG_PROMISE : CAS_MSG_ACCEPTED))
		return;
	if (!take_answer(op, node))
		return;

	if (reply == NULL) {
		op->fails++;
		op->failed_nodes |= 1ull << node;
	} else if (reply->type == CAS_MSG_REJECT) {
		/* Step 6 of a lost race: learn the blocking ballot; one past
		 * the range leaves nothing above it to try. */
		if (!cas_ballot_in_range(reply->ballot)) {
			finish(op, CAS_EBALLOT, eff);
			return;
		}
		cas_proposer_observe(p, reply->ballot);
		op->fails++;
		op->failed_nodes |= 1ull << node;
	} else if (reply->type == CAS_MSG_PROMISE) {
		/* A promise from N alone counts for no prepare quorum, but its
		 * value may still be the highest: more promises than a quorum
		 * never hide a chosen value. */
		if (!op->best_set || cas_ballot_cmp(reply->ballot, op->best_ballot) > 0) {
			free(op->best.data);
			if (cas_reg_copy(&op->best, &reply->value) != CAS_OK) {
				finish(op, CAS_ENOMEM, eff);
				return;
			}
			op->best_ballot = reply->ballot;
			op->best_set = true;
		}
		op->oks++;
		op->ok_nodes |= 1ull << node;
	} else if (cas_ballot_cmp(reply->ballot, op->ballot) == 0) {
		op->oks++;
		op->ok_nodes |= 1ull << node;
		if (cas_ballot_cmp(reply->next, op->out.next) == 0)
			op->promised |= 1ull << node;
	} else {
		op->fails++;
		op->failed_nodes |= 1ull << node;
	}

	/* A prepare needs a majority of O; an accept, of O and of N; the
	 * collector's accept, every node of both. */
	with_n = op->phase == CAS_OP_ACCEPT;
	if (with_n && op->cfg.collect && !CAS_FAULT(CAS_FAULT_COLLECT_MAJORITY)) {
		uint64_t all = op->set_o | op->set_n;

		if ((op->ok_nodes & all) == all) {
			op->have_value = true;
			finish(op, op->verdict, eff);
		} else if ((op->failed_nodes & all) != 0) {
			attempt_failed(op, p, now_ms, rng, eff);
		}
	} else if (majorities(op, op->ok_nodes, with_n)) {
		if (op->phase == CAS_OP_PREPARE) {
			prepared(op, p, eff);
		} else {
			op->have_value = true;
			finish(op, op->verdict, eff);
		}
	} else if (out_of_reach(op, op->failed_nodes, with_n)) {
		attempt_failed(op, p, now_ms, rng, eff);
	}
}

void cas_op_wake(struct cas_op *op, struct cas_proposer *p, uint64_t now_ms, struct cas_effect *eff)
{
	eff->kind = CAS_EFFECT_WAIT;
	if (op->phase != CAS_OP_BACKOFF)
		return;
	if (now_ms >= op->cfg.deadline_ms) {
		finish(op, CAS_EUNAVAILABLE, eff);
		return;
	}
	/* Whoever kept winning while we slept kept raising its promises
	 * (the one-round-trip optimization promises a new ballot with every
	 * accept): leap over what it can have promised meanwhile, or we lose
	 * again and again. */
	if (now_ms >= op->slept_from_ms)
		p->counter += (now_ms - op->slept_from_ms + 1) * CAS_BALLOT_LEAP_PER_MS;
	begin_attempt(op, p, eff);
}

void cas_op_expire(struct cas_op *op, struct cas_effect *eff)
{
	if (op->phase != CAS_OP_DONE)
		finish(op, CAS_EUNAVAILABLE, eff);
	eff->kind = CAS_EFFECT_DONE;
}

void cas_op_abort(struct cas_op *op, int code, struct cas_effect *eff)
{
	if (op->phase != CAS_OP_DONE)
		finish(op, code, eff);
	eff->kind = CAS_EFFECT_DONE;
}

bool cas_op_take_cache(const struct cas_op *op, struct cas_ballot *ballot, struct cas_reg *value)
{
	if (op->phase != CAS_OP_DONE || !op->have_value || cas_ballot_is_zero(op->out.next) ||
	    !majorities(op, op->promised, true))
		return false;
	if (cas_reg_copy(value, &op->out.value) != CAS_OK)
		return false;
	*ballot = op->out.next;
	return true;
}

void cas_op_take_value(struct cas_op *op, struct cas_value *out)
{
	memset(out, 0, sizeof(*out));
	if (op->phase != CAS_OP_DONE || !op->have_value)
		return;
	if (op->answer_set) {
		struct cas_reg *won = &op->mine[op->answer];

		out->version = won->version;
		out->data = won->data;
		out->len = won->len;
		memset(won, 0, sizeof(*won));
		op->answer_set = false;
		op->have_value = false;
		return;
	}
	out->version = op->out.value.version;
	out->data = op->out.value.data;
	out->len = op->out.value.len;
	op->out.value.data = NULL;
	op->out.value.len = 0;
	op->have_value = false;
}

void cas_op_clear(struct cas_op *op)
{
#ifdef CAS_SIM_FAULTS
	free(op->fault_base.data);
#endif
	free(op->best.data);
	cas_msg_clear(&op->out);
	for (size_t i = 0; i < op->n_mine; i++)
		free(op->mine[i].data);
	free(op->mine);
	clear_query(op);
	memset(op, 0, sizeof(*op));
}

/* linearize.c - Wing & Gong linearizability search, memoized as Lowe proposed, per register. */
#include "linearize.h"

#include <cas/cas.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* One added operation; op.value and op.label point at the copies. */
struct hop {
	char *key;
	char *label;
	void *value;
	struct cas_hist_op op;
};

struct cas_history {
	struct hop *ops;
	size_t len;
	size_t cap;
};

int cas_history_new(struct cas_history **out)
{
	struct cas_history *h = calloc(1, sizeof(*h));

	if (!h)
		return CAS_ENOMEM;
	*out = h;
	return CAS_OK;
}

void cas_history_free(struct cas_history *h)
{
	size_t i;

	if (!h)
		return;
	for (i = 0; i < h->len; i++) {
		free(h->ops[i].key);
		free(h->ops[i].label);
		free(h->ops[i].value);
	}
	free(h->ops);
	free(h);
}

size_t cas_history_count(const struct cas_history *h)
{
	return h->len;
}

static bool op_valid(const char *key, const struct cas_hist_op *op)
{
	if (!key || (!op->value && op->len > 0))
		return false;
	if (op->kind != CAS_HIST_READ && op->kind != CAS_HIST_WRITE && op->kind != CAS_HIST_CAS &&
	    op->kind != CAS_HIST_DELETE)
		return false;
	if (op->status != CAS_HIST_OK && op->status != CAS_HIST_MISMATCH &&
	    op->status != CAS_HIST_FAILED && op->status != CAS_HIST_UNKNOWN)
		return false;
	if (op->complete < op->invoke)
		return false;
	if (op->status == CAS_HIST_MISMATCH && op->kind != CAS_HIST_CAS)
		return false;
	if (op->complete == CAS_TIME_PENDING && op->status != CAS_HIST_UNKNOWN)
		return false;
	return true;
}

int cas_history_add(struct cas_history *h, const char *key, const struct cas_hist_op *op)
{
	struct hop *o;

	if (!op_valid(key, op))
		return CAS_EINVAL;
	if (h->len == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 64;
		struct hop *ops = realloc(h->ops, cap * sizeof(*ops));

		if (!ops)
			return CAS_ENOMEM;
		h->ops = ops;
		h->cap = cap;
	}
	o = &h->ops[h->len];
	memset(o, 0, sizeof(*o));
	o->key = strdup(key);
	if (!o->key)
		goto out_enomem;
	if (op->label) {
		o->label = strdup(op->label);
		if (!o->label)
			goto out_free_key;
	}
	/* One spare byte so that an empty value still has a buffer. */
	o->value = malloc(op->len + 1);
	if (!o->value)
		goto out_free_label;
	if (op->len)
		memcpy(o->value, op->value, op->len);
	o->op = *op;
	o->op.value = o->value;
	if (op->kind == CAS_HIST_DELETE)
		o->op.len = 0; /* a delete leaves the empty value */
	o->op.label = o->label;
	h->len++;
	return CAS_OK;

out_free_label:
	free(o->label);
out_free_key:
	free(o->key);
out_enomem:
	return CAS_ENOMEM;
}

/* --- explanations --- */

/* A bounded writer into the caller's why buffer: always NUL-terminated,
 * silently truncated. */
struct why {
	char *buf;
	size_t len;
	size_t used;
};

__attribute__((format(printf, 2, 3))) static void why_printf(struct why *w, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (w->len == 0 || w->used + 1 >= w->len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(w->buf + w->used, w->len - w->used, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	w->used += (size_t)n;
	if (w->used >= w->len)
		w->used = w->len - 1;
}

/* Appends value as a quoted string, at most max bytes of it. */
static void why_value(struct why *w, const void *value, size_t len, size_t max)
{
	const unsigned char *p = value;
	size_t i;

	why_printf(w, "\"");
	for (i = 0; i < len && i < max; i++) {
		if (p[i] == '"' || p[i] == '\\')
			why_printf(w, "\\%c", p[i]);
		else if (isprint(p[i]))
			why_printf(w, "%c", p[i]);
		else
			why_printf(w, "\\x%02x", p[i]);
	}
	why_printf(w, len > max ? "\"..." : "\"");
}

static void why_version(struct why *w, uint64_t v)
{
	if (v == CAS_VERSION_ANY)
		why_printf(w, "?");
	else
		why_printf(w, "%llu", (unsigned long long)v);
}

#define WHY_VALUE_MAX 24

/* "line 3: cas 1 "y" [15,20] -> mismatch 2" */
static void why_op(struct why *w, const struct cas_history *h, size_t i)
{
	const struct cas_hist_op *op = &h->ops[i].op;
	static const char *const status[] = {"ok", "mismatch", "fail", "unknown"};

	if (op->label)
		why_printf(w, "%s: ", op->label);
	else
		why_printf(w, "#%zu: ", i);
	switch (op->kind) {
	case CAS_HIST_READ:
		why_printf(w, "read");
		break;
	case CAS_HIST_WRITE:
		why_printf(w, "write ");
		why_value(w, op->value, op->len, WHY_VALUE_MAX);
		break;
	case CAS_HIST_CAS:
		why_printf(w, "cas %llu ", (unsigned long long)op->expected);
		why_value(w, op->value, op->len, WHY_VALUE_MAX);
		break;
	case CAS_HIST_DELETE:
		why_printf(w, "delete");
		break;
	}
	why_printf(w, " [%llu,", (unsigned long long)op->invoke);
	if (op->complete == CAS_TIME_PENDING)
		why_printf(w, "-] -> ");
	else
		why_printf(w, "%llu] -> ", (unsigned long long)op->complete);
	if (op->kind == CAS_HIST_READ && op->status == CAS_HIST_OK) {
		why_version(w, op->version);
		why_printf(w, " ");
		why_value(w, op->value, op->len, WHY_VALUE_MAX);
		return;
	}
	why_printf(w, "%s", status[op->status]);
	if (op->status == CAS_HIST_OK || op->status == CAS_HIST_MISMATCH) {
		why_printf(w, " ");
		why_version(w, op->version);
	}
}

/* --- the per-key model --- */

/* An operation the search must place: a read or a cas mismatch (observe
 * only), a put (write, or cas when cond), or a delete. */
enum mkind { M_READ, M_MISMATCH, M_PUT, M_DEL };

struct mop {
	uint64_t invoke;
	uint64_t complete; /* CAS_TIME_PENDING: optional, no deadline */
	uint64_t expected;
	uint64_t version; /* CAS_VERSION_ANY: not checked */
	uint32_t val;	  /* interned value */
	uint32_t after;	  /* 1 + the op of its class placed before it; 0: none */
	uint8_t kind;
	bool cond;
	size_t src; /* index in the history */
};

struct state {
	uint64_t version;
	uint32_t val;
};

/* Applies m to s; false (s unchanged) when the model forbids the result m
 * reports. A pending cas is only ever placed where it succeeds: placing it
 * where it fails is the same as never placing it. */
static bool step(const struct mop *m, struct state *s)
{
	switch (m->kind) {
	case M_READ:
		return (m->version == CAS_VERSION_ANY || m->version == s->version) &&
		       m->val == s->val;
	case M_MISMATCH:
		return s->version != m->expected &&
		       (m->version == CAS_VERSION_ANY || m->version == s->version);
	case M_PUT:
		if (m->cond && s->version != m->expected)
			return false;
		if (m->version != CAS_VERSION_ANY && m->version != s->version + 1)
			return false;
		s->version++;
		s->val = m->val;
		return true;
	case M_DEL:
		if (m->version != CAS_VERSION_ANY && m->version != 0)
			return false;
		s->version = 0;
		s->val = m->val; /* the empty value's id */
		return true;
	}
	return false;
}

/* --- memo of visited (linearized set, state) --- */

struct centry {
	uint64_t hash;
	uint64_t version;
	uint32_t val;
};

struct cache {
	uint32_t *slots; /* entry index + 1; 0 is empty */
	size_t mask;
	size_t count;
	struct centry *ents;
	uint64_t *bits; /* words per entry */
	size_t cap;
	size_t words;
	bool over; /* gave up: CAS_CHECK_MEMO_MAX reached */
};

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static int cache_init(struct cache *c, size_t words)
{
	memset(c, 0, sizeof(*c));
	c->words = words;
	c->mask = 1023;
	c->slots = calloc(c->mask + 1, sizeof(*c->slots));
	return c->slots ? CAS_OK : CAS_ENOMEM;
}

static void cache_free(struct cache *c)
{
	free(c->slots);
	free(c->ents);
	free(c->bits);
}

static int cache_grow_slots(struct cache *c)
{
	size_t mask = 2 * c->mask + 1;
	uint32_t *slots = calloc(mask + 1, sizeof(*slots));
	size_t i, j;

	if (!slots)
		return CAS_ENOMEM;
	for (i = 0; i < c->count; i++) {
		for (j = c->ents[i].hash & mask; slots[j]; j = (j + 1) & mask)
			;
		slots[j] = (uint32_t)(i + 1);
	}
	free(c->slots);
	c->slots = slots;
	c->mask = mask;
	return CAS_OK;
}

/* Adds (bits, s) with hash unless present. *added tells which. */
static int cache_add(struct cache *c, uint64_t hash, const uint64_t *bits, struct state s,
		     bool *added)
{
	size_t j;
	struct centry *e;

	for (j = hash & c->mask; c->slots[j]; j = (j + 1) & c->mask) {
		size_t i = c->slots[j] - 1;

		e = &c->ents[i];
		if (e->hash == hash && e->version == s.version && e->val == s.val &&
		    !memcmp(c->bits + i * c->words, bits, c->words * sizeof(*bits))) {
			*added = false;
			return CAS_OK;
		}
	}
	if (c->count == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 1024;
		struct centry *ents;
		uint64_t *nbits;

		if (cap >= UINT32_MAX ||
		    cap * (sizeof(*ents) + c->words * sizeof(*nbits) + 2 * sizeof(*c->slots)) >
			    CAS_CHECK_MEMO_MAX) {
			c->over = true;
			return CAS_ENOMEM;
		}
		ents = realloc(c->ents, cap * sizeof(*ents));
		if (!ents)
			return CAS_ENOMEM;
		c->ents = ents;
		nbits = realloc(c->bits, cap * c->words * sizeof(*nbits));
		if (!nbits)
			return CAS_ENOMEM;
		c->bits = nbits;
		c->cap = cap;
	}
	e = &c->ents[c->count];
	e->hash = hash;
	e->version = s.version;
	e->val = s.val;
	memcpy(c->bits + c->count * c->words, bits, c->words * sizeof(*bits));
	c->slots[j] = (uint32_t)(c->count + 1);
	c->count++;
	*added = true;
	if (2 * c->count > c->mask)
		return cache_grow_slots(c);
	return CAS_OK;
}

/* --- the search over one key --- */

/* Call and return events in time order, as a doubly linked list from which
 * linearized operations are lifted (Porcupine's layout). A pending
 * operation has only a call. */
struct entry {
	struct entry *prev;
	struct entry *next;
	struct entry *match; /* a call's return; NULL when pending */
	uint32_t op;
	uint32_t pos; /* index in time order */
	bool is_call;
};

struct frame {
	struct entry *call;
	struct state before;
};

struct search {
	const struct cas_history *h;
	struct mop *ops;
	size_t n;
	struct entry *ents;
	size_t nents;
	struct entry head;
	uint64_t *bits;
	size_t words;
	uint64_t *zob;
	struct cache cache;
	struct frame *stack;
	size_t depth;
	uint32_t empty_val; /* id of the initial, empty value */
	/* The furthest return event any branch reached, and that branch. */
	bool stuck;
	uint32_t stuck_pos;
	uint32_t stuck_op;
	uint32_t *best;
	size_t best_depth;
	struct state best_state;
};

struct vkey {
	const void *p;
	size_t len;
	size_t slot; /* index in ops, or n for the empty initial value */
};

static int vkey_cmp(const void *a, const void *b)
{
	const struct vkey *x = a, *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return x->len ? memcmp(x->p, y->p, x->len) : 0;
}

/* Gives every distinct byte string among ops (and the empty initial value)
 * a small id, so that states compare in O(1) and exactly. */
static int intern_values(struct search *s)
{
	struct vkey *keys = malloc((s->n + 1) * sizeof(*keys));
	size_t i;
	uint32_t id = 0;

	if (!keys)
		return CAS_ENOMEM;
	for (i = 0; i < s->n; i++) {
		const struct cas_hist_op *op = &s->h->ops[s->ops[i].src].op;

		keys[i] = (struct vkey){op->value, op->len, i};
	}
	keys[s->n] = (struct vkey){"", 0, s->n};
	qsort(keys, s->n + 1, sizeof(*keys), vkey_cmp);
	for (i = 0; i <= s->n; i++) {
		if (i > 0 && vkey_cmp(&keys[i - 1], &keys[i]))
			id++;
		if (keys[i].slot == s->n)
			s->empty_val = id;
		else
			s->ops[keys[i].slot].val = id;
	}
	free(keys);
	return CAS_OK;
}

/* Only reads look at values, so every value no read returned is given one
 * id: states that differ only there behave alike and share memo entries. */
static int merge_unread_values(struct search *s)
{
	bool *read = calloc(s->n + 2, sizeof(*read));
	uint32_t unread = (uint32_t)s->n + 1; /* ids from interning are <= n */
	size_t i;

	if (!read)
		return CAS_ENOMEM;
	for (i = 0; i < s->n; i++)
		if (s->ops[i].kind == M_READ)
			read[s->ops[i].val] = true;
	for (i = 0; i < s->n; i++)
		if (s->ops[i].kind == M_PUT && !read[s->ops[i].val])
			s->ops[i].val = unread;
	if (!read[s->empty_val])
		s->empty_val = unread;
	for (i = 0; i < s->n; i++)
		if (s->ops[i].kind == M_DEL)
			s->ops[i].val = s->empty_val;
	free(read);
	return CAS_OK;
}

static int pending_cmp(const void *a, const void *b)
{
	const struct mop *x = *(const struct mop *const *)a, *y = *(const struct mop *const *)b;

	if (x->cond != y->cond)
		return x->cond ? 1 : -1;
	if (x->cond && x->expected != y->expected)
		return x->expected < y->expected ? -1 : 1;
	if (x->invoke != y->invoke)
		return x->invoke < y->invoke ? -1 : 1;
	return x < y ? -1 : x > y;
}

/*
 * Pending puts of values no read returned, with the same condition, are
 * interchangeable: they differ only in their invocation times, and having
 * no deadline, an earlier-invoked one can take the place of a later one in
 * any linearization. So allow placing one only after every earlier-invoked
 * one of its class: k such writes then cost k + 1 branches, not 2^k.
 * Call after merge_unread_values.
 */
static int chain_pending(struct search *s)
{
	struct mop **p = malloc((s->n ? s->n : 1) * sizeof(*p));
	uint32_t unread = (uint32_t)s->n + 1;
	size_t i, k = 0;

	if (!p)
		return CAS_ENOMEM;
	for (i = 0; i < s->n; i++) {
		struct mop *m = &s->ops[i];

		if (m->kind == M_PUT && m->complete == CAS_TIME_PENDING && m->val == unread)
			p[k++] = m;
	}
	qsort(p, k, sizeof(*p), pending_cmp);
	for (i = 1; i < k; i++)
		if (p[i]->cond == p[i - 1]->cond &&
		    (!p[i]->cond || p[i]->expected == p[i - 1]->expected))
			p[i]->after = (uint32_t)(p[i - 1] - s->ops) + 1;
	free(p);
	return CAS_OK;
}

struct event {
	uint64_t time;
	uint32_t op;
	bool is_return;
};

/* Time order; at equal times calls first, so that equal times overlap. */
static int event_cmp(const void *a, const void *b)
{
	const struct event *x = a, *y = b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	if (x->is_return != y->is_return)
		return x->is_return ? 1 : -1;
	if (x->op != y->op)
		return x->op < y->op ? -1 : 1;
	return 0;
}

static int build_list(struct search *s)
{
	struct event *ev = malloc(2 * s->n * sizeof(*ev));
	struct entry **call_of;
	struct entry *prev = &s->head;
	size_t i, k = 0;

	if (!ev)
		return CAS_ENOMEM;
	call_of = calloc(s->n, sizeof(*call_of));
	if (!call_of)
		goto out_free_ev;
	for (i = 0; i < s->n; i++) {
		ev[k++] = (struct event){s->ops[i].invoke, (uint32_t)i, false};
		if (s->ops[i].complete != CAS_TIME_PENDING)
			ev[k++] = (struct event){s->ops[i].complete, (uint32_t)i, true};
	}
	qsort(ev, k, sizeof(*ev), event_cmp);
	s->ents = calloc(k, sizeof(*s->ents));
	if (!s->ents)
		goto out_free_call_of;
	s->nents = k;
	s->head.next = NULL;
	s->head.prev = NULL;
	for (i = 0; i < k; i++) {
		struct entry *e = &s->ents[i];

		e->op = ev[i].op;
		e->pos = (uint32_t)i;
		e->is_call = !ev[i].is_return;
		if (e->is_call) {
			call_of[e->op] = e;
		} else {
			e->match = call_of[e->op];
			call_of[e->op]->match = e;
		}
		e->prev = prev;
		prev->next = e;
		prev = e;
	}
	free(call_of);
	free(ev);
	return CAS_OK;

out_free_call_of:
	free(call_of);
out_free_ev:
	free(ev);
	return CAS_ENOMEM;
}

static void lift(struct entry *call)
{
	struct entry *ret = call->match;

	call->prev->next = call->next;
	if (call->next)
		call->next->prev = call->prev;
	if (ret) {
		ret->prev->next = ret->next;
		if (ret->next)
			ret->next->prev = ret->prev;
	}
}

static void unlift(struct entry *call)
{
	struct entry *ret = call->match;

	if (ret) {
		ret->prev->next = ret;
		if (ret->next)
			ret->next->prev = ret;
	}
	call->prev->next = call;
	if (call->next)
		call->next->prev = call;
}

static bool is_placed(const struct search *s, uint32_t op)
{
	return s->bits[op / 64] & (1ULL << (op % 64));
}

static uint64_t state_hash(uint64_t set_hash, struct state st)
{
	return set_hash ^ mix64(st.version * 0x9e3779b97f4a7c15ULL + st.val + 1);
}

/* Remembers the branch that got furthest before a return forced a
 * backtrack: that return ends the shortest prefix without linearization. */
static void note_stuck(struct search *s, const struct entry *ret, struct state st)
{
	size_t i;

	if (s->stuck && ret->pos <= s->stuck_pos)
		return;
	s->stuck = true;
	s->stuck_pos = ret->pos;
	s->stuck_op = ret->op;
	for (i = 0; i < s->depth; i++)
		s->best[i] = s->stack[i].call->op;
	s->best_depth = s->depth;
	s->best_state = st;
}

/* True for a read or a mismatch: placing it changes nothing. */
static bool observer(const struct mop *m)
{
	return m->kind == M_READ || m->kind == M_MISMATCH;
}

/* Places e's operation, leading to state next, unless (set, next) was
 * explored before. Returns CAS_OK or CAS_ENOMEM; *placed tells which. */
static int place(struct search *s, struct entry *e, struct state *st, struct state next,
		 uint64_t *set_hash, bool *placed)
{
	uint64_t h2 = *set_hash ^ s->zob[e->op];
	int rc;

	s->bits[e->op / 64] |= 1ULL << (e->op % 64);
	rc = cache_add(&s->cache, state_hash(h2, next), s->bits, next, placed);
	if (rc || !*placed) {
		s->bits[e->op / 64] &= ~(1ULL << (e->op % 64));
		return rc;
	}
	s->stack[s->depth++] = (struct frame){e, *st};
	*st = next;
	*set_hash = h2;
	lift(e);
	return CAS_OK;
}

/*
 * Wing & Gong: place any operation whose call precedes the first return
 * not yet placed; backtrack on reaching such a return. Lowe: never explore
 * the same (placed set, state) twice. Besides, an observer (read or
 * mismatch) that fits now goes first and alone: any linearization from
 * here can be rewritten to place it now, since it changes no state and
 * everything that must precede it is placed. If that fails, so does the
 * node, and the search backtracks past it.
 */
static int search_run(struct search *s, bool *ok)
{
	struct state st = {0, s->empty_val};
	uint64_t set_hash = 0;
	struct entry *e = NULL;
	bool fresh = true, placed;
	int rc;

	for (;;) {
		if (fresh) {
			/* A new node: look for an observer that fits. */
			fresh = false;
			for (e = s->head.next; e && e->is_call; e = e->next) {
				const struct mop *m = &s->ops[e->op];
				struct state next = st;

				if (observer(m) && step(m, &next))
					break;
			}
			if (e && e->is_call) {
				rc = place(s, e, &st, st, &set_hash, &placed);
				if (rc)
					return rc;
				if (placed) {
					fresh = true;
					continue;
				}
				goto backtrack;
			}
			e = s->head.next;
		}
		if (!e) {
			/* Only calls of pending operations remain: leave them out. */
			*ok = true;
			return CAS_OK;
		}
		if (e->is_call) {
			const struct mop *m = &s->ops[e->op];
			struct state next = st;

			if (!observer(m) && (!m->after || is_placed(s, m->after - 1)) &&
			    step(m, &next)) {
				rc = place(s, e, &st, next, &set_hash, &placed);
				if (rc)
					return rc;
				if (placed) {
					fresh = true;
					continue;
				}
			}
			e = e->next;
			continue;
		}
		note_stuck(s, e, st);
	backtrack:
		for (;;) {
			struct frame *f;

			if (s->depth == 0) {
				*ok = false;
				return CAS_OK;
			}
			f = &s->stack[--s->depth];
			st = f->before;
			set_hash ^= s->zob[f->call->op];
			s->bits[f->call->op / 64] &= ~(1ULL << (f->call->op % 64));
			unlift(f->call);
			e = f->call->next;
			/* A failed observer condemns the node that placed it. */
			if (!observer(&s->ops[f->call->op]))
				break;
		}
	}
}

static void explain(const struct search *s, const char *key, struct why *w)
{
	const struct mop *m = &s->ops[s->stuck_op];
	size_t i, from, shown = 6;

	why_printf(w,
		   "key \"%s\": not linearizable: no order of its operations fits the register "
		   "once this one completes (t=%llu):\n  ",
		   key, (unsigned long long)m->complete);
	why_op(w, s->h, m->src);
	why_printf(w, "\nlongest order found places %zu of %zu operations", s->best_depth, s->n);
	if (s->best_depth == 0) {
		why_printf(w, "; state v0 \"\"\n");
		return;
	}
	why_printf(w, ", ending with:\n");
	from = s->best_depth > shown ? s->best_depth - shown : 0;
	if (from > 0)
		why_printf(w, "  ... (%zu more)\n", from);
	for (i = from; i < s->best_depth; i++) {
		why_printf(w, "  ");
		why_op(w, s->h, s->ops[s->best[i]].src);
		why_printf(w, "\n");
	}
	why_printf(w, "  which leaves v%llu ", (unsigned long long)s->best_state.version);
	for (i = s->best_depth; i > 0; i--) {
		const struct mop *put = &s->ops[s->best[i - 1]];

		if (put->kind == M_PUT || put->kind == M_DEL) {
			const struct cas_hist_op *v = &s->h->ops[put->src].op;

			why_value(w, v->value, v->len, WHY_VALUE_MAX);
			why_printf(w, "\n");
			return;
		}
	}
	why_printf(w, "\"\"\n");
}

/* True when op can be left out: it neither changed nor observed anything. */
static bool droppable(const struct cas_hist_op *op)
{
	if (op->status == CAS_HIST_FAILED)
		return true;
	return op->kind == CAS_HIST_READ && op->status == CAS_HIST_UNKNOWN;
}

/* Checks the n operations idx[] (all on one key). */
static int check_key(const struct cas_history *h, const size_t *idx, size_t n, bool *ok,
		     struct why *w)
{
	struct search s;
	size_t i;
	int rc = CAS_ENOMEM;

	memset(&s, 0, sizeof(s));
	s.h = h;
	s.n = n;
	if (n >= UINT32_MAX)
		return CAS_ENOMEM;
	s.ops = calloc(n ? n : 1, sizeof(*s.ops));
	if (!s.ops)
		goto out;
	for (i = 0; i < n; i++) {
		const struct cas_hist_op *op = &h->ops[idx[i]].op;
		struct mop *m = &s.ops[i];

		m->src = idx[i];
		m->invoke = op->invoke;
		m->expected = op->expected;
		m->version = op->version;
		if (op->status == CAS_HIST_UNKNOWN) {
			/* In flight until proven otherwise: no deadline. */
			m->complete = CAS_TIME_PENDING;
			m->version = CAS_VERSION_ANY;
		} else {
			m->complete = op->complete;
		}
		if (op->kind == CAS_HIST_READ) {
			m->kind = M_READ;
		} else if (op->kind == CAS_HIST_DELETE) {
			m->kind = M_DEL;
		} else if (op->status == CAS_HIST_MISMATCH) {
			m->kind = M_MISMATCH;
		} else {
			m->kind = M_PUT;
			m->cond = op->kind == CAS_HIST_CAS;
		}
	}
	rc = intern_values(&s);
	if (!rc)
		rc = merge_unread_values(&s);
	if (!rc)
		rc = chain_pending(&s);
	if (rc)
		goto out;
	rc = build_list(&s);
	if (rc)
		goto out;
	rc = CAS_ENOMEM;
	s.words = (n + 63) / 64;
	s.bits = calloc(s.words ? s.words : 1, sizeof(*s.bits));
	s.zob = malloc((n ? n : 1) * sizeof(*s.zob));
	s.stack = malloc((n ? n : 1) * sizeof(*s.stack));
	s.best = malloc((n ? n : 1) * sizeof(*s.best));
	if (!s.bits || !s.zob || !s.stack || !s.best)
		goto out;
	for (i = 0; i < n; i++)
		s.zob[i] = mix64(0x5851f42d4c957f2dULL * (i + 1));
	rc = cache_init(&s.cache, s.words);
	if (rc)
		goto out;
	rc = search_run(&s, ok);
	if (!rc && !*ok)
		explain(&s, h->ops[idx[0]].key, w);
	if (rc && s.cache.over)
		why_printf(w,
			   "key \"%s\": gave up: the search of its %zu operations outgrew "
			   "%llu MiB after %zu states",
			   h->ops[idx[0]].key, n, (unsigned long long)CAS_CHECK_MEMO_MAX >> 20,
			   s.cache.count);
	cache_free(&s.cache);
out:
	free(s.best);
	free(s.stack);
	free(s.zob);
	free(s.bits);
	free(s.ents);
	free(s.ops);
	return rc;
}

struct kidx {
	const char *key;
	size_t i;
};

/* By key, then by index, so each key's operations are contiguous and in
 * the order added. */
static int kidx_cmp(const void *a, const void *b)
{
	const struct kidx *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c)
		return c;
	return x->i < y->i ? -1 : x->i > y->i;
}

int cas_history_check(const struct cas_history *h, bool *ok, char *why, size_t why_len)
{
	struct why w = {why, why_len, 0};
	struct kidx *k;
	size_t *idx;
	size_t i, n = 0, start;
	int rc = CAS_OK;
	bool res = true;

	if (why_len)
		why[0] = '\0';
	k = malloc((h->len ? h->len : 1) * sizeof(*k));
	if (!k)
		goto out_enomem;
	idx = malloc((h->len ? h->len : 1) * sizeof(*idx));
	if (!idx)
		goto out_free_k;
	for (i = 0; i < h->len; i++)
		if (!droppable(&h->ops[i].op))
			k[n++] = (struct kidx){h->ops[i].key, i};
	qsort(k, n, sizeof(*k), kidx_cmp);
	for (i = 0; i < n; i++)
		idx[i] = k[i].i;
	for (start = 0; start < n && res; start = i) {
		for (i = start + 1; i < n && !strcmp(k[i].key, k[start].key); i++)
			;
		rc = check_key(h, idx + start, i - start, &res, &w);
		if (rc)
			break;
	}
	free(idx);
	free(k);
	if (rc)
		goto out_enomem;
	*ok = res;
	return CAS_OK;

out_free_k:
	free(k);
out_enomem:
	if (w.used == 0)
		why_printf(&w, "out of memory while checking");
	return CAS_ENOMEM;
}

bool cas_linearizable(const struct cas_history *h, char *why, size_t why_len)
{
	bool ok = false;

	if (cas_history_check(h, &ok, why, why_len))
		return false;
	return ok;
}

/* --- text format --- */

struct tok {
	char *s; /* decoded, NUL-terminated */
	size_t len;
	bool quoted;
};

#define MAX_TOKS 12

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Splits line into tokens decoded into out (room for strlen(line) +
 * MAX_TOKS bytes). Returns the count, or -1 with a message in err. */
static int tokenize(const char *line, char *out, struct tok *t, char *err, size_t err_len)
{
	const char *p = line;
	int n = 0;

	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		if (!*p)
			return n;
		if (n == MAX_TOKS) {
			snprintf(err, err_len, "too many fields");
			return -1;
		}
		t[n].s = out;
		t[n].quoted = *p == '"';
		if (*p != '"') {
			while (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
				*out++ = *p++;
		} else {
			for (p++; *p != '"'; p++) {
				int hi, lo;

				if (!*p) {
					snprintf(err, err_len, "unterminated string");
					return -1;
				}
				if (*p != '\\') {
					*out++ = *p;
					continue;
				}
				switch (*++p) {
				case '\\':
				case '"':
					*out++ = *p;
					break;
				case 'n':
					*out++ = '\n';
					break;
				case 'r':
					*out++ = '\r';
					break;
				case 't':
					*out++ = '\t';
					break;
				case '0':
					*out++ = '\0';
					break;
				case 'x':
					hi = p[1] ? hexval(p[1]) : -1;
					lo = hi >= 0 && p[2] ? hexval(p[2]) : -1;
					if (lo < 0) {
						snprintf(err, err_len, "\\x needs two hex digits");
						return -1;
					}
					*out++ = (char)(hi * 16 + lo);
					p += 2;
					break;
				default:
					snprintf(err, err_len, "unknown escape in string");
					return -1;
				}
			}
			p++;
			if (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
				snprintf(err, err_len, "junk after closing quote");
				return -1;
			}
		}
		t[n].len = (size_t)(out - t[n].s);
		*out++ = '\0';
		n++;
	}
}

static bool is_word(const struct tok *t, const char *w)
{
	return !t->quoted && !strcmp(t->s, w);
}

static bool parse_u64(const struct tok *t, uint64_t *v)
{
	unsigned long long x;
	char *end;

	if (t->quoted || !isdigit((unsigned char)t->s[0]))
		return false;
	errno = 0;
	x = strtoull(t->s, &end, 10);
	if (errno || *end)
		return false;
	*v = x;
	return true;
}

static bool parse_version(const struct tok *t, uint64_t *v)
{
	if (is_word(t, "?")) {
		*v = CAS_VERSION_ANY;
		return true;
	}
	return parse_u64(t, v) && *v != CAS_VERSION_ANY;
}

int cas_history_add_line(struct cas_history *h, const char *line, const char *label, char *err,
			 size_t err_len)
{
	struct tok t[MAX_TOKS];
	struct cas_hist_op op = {.label = label, .version = CAS_VERSION_ANY};
	char *buf;
	int n, i, rc = CAS_EINVAL;
	char dummy[1];

	if (err_len == 0) {
		err = dummy;
		err_len = sizeof(dummy);
	}
	err[0] = '\0';
	buf = malloc(strlen(line) + MAX_TOKS + 1);
	if (!buf) {
		snprintf(err, err_len, "out of memory");
		return CAS_ENOMEM;
	}
	n = tokenize(line, buf, t, err, err_len);
	if (n < 0)
		goto out_free_buf;
	if (n == 0 || (!t[0].quoted && t[0].s[0] == '#')) {
		rc = CAS_OK;
		goto out_free_buf;
	}
	if (n < 4) {
		snprintf(err, err_len, "expected KEY INVOKE COMPLETE OP ...");
		goto out_free_buf;
	}
	if (!parse_u64(&t[1], &op.invoke)) {
		snprintf(err, err_len, "bad invocation time '%s'", t[1].s);
		goto out_free_buf;
	}
	if (is_word(&t[2], "-")) {
		op.complete = CAS_TIME_PENDING;
	} else if (!parse_u64(&t[2], &op.complete) || op.complete == CAS_TIME_PENDING) {
		snprintf(err, err_len, "bad completion time '%s'", t[2].s);
		goto out_free_buf;
	}
	i = 4;
	if (is_word(&t[3], "read")) {
		op.kind = CAS_HIST_READ;
	} else if (is_word(&t[3], "write") && n > 4) {
		op.kind = CAS_HIST_WRITE;
		op.value = t[4].s;
		op.len = t[4].len;
		i = 5;
	} else if (is_word(&t[3], "delete")) {
		op.kind = CAS_HIST_DELETE;
	} else if (is_word(&t[3], "cas") && n > 5) {
		op.kind = CAS_HIST_CAS;
		if (!parse_u64(&t[4], &op.expected)) {
			snprintf(err, err_len, "bad expected version '%s'", t[4].s);
			goto out_free_buf;
		}
		op.value = t[5].s;
		op.len = t[5].len;
		i = 6;
	} else {
		snprintf(err, err_len, "expected read, write VALUE, cas EXPECTED VALUE or delete");
		goto out_free_buf;
	}
	if (i == n && op.complete == CAS_TIME_PENDING) {
		op.status = CAS_HIST_UNKNOWN;
	} else if (i + 1 >= n || !is_word(&t[i], "->")) {
		snprintf(err, err_len, "expected '-> RESULT' after the call");
		goto out_free_buf;
	} else if (is_word(&t[i + 1], "unknown") && n == i + 2) {
		op.status = CAS_HIST_UNKNOWN;
	} else if (is_word(&t[i + 1], "fail") && n == i + 2) {
		op.status = CAS_HIST_FAILED;
	} else if (op.kind == CAS_HIST_READ) {
		if (n != i + 3 || !parse_version(&t[i + 1], &op.version)) {
			snprintf(err, err_len, "a read's result is VERSION VALUE, fail or unknown");
			goto out_free_buf;
		}
		op.status = CAS_HIST_OK;
		op.value = t[i + 2].s;
		op.len = t[i + 2].len;
	} else if ((is_word(&t[i + 1], "ok") ||
		    (op.kind == CAS_HIST_CAS && is_word(&t[i + 1], "mismatch"))) &&
		   n <= i + 3) {
		op.status = is_word(&t[i + 1], "ok") ? CAS_HIST_OK : CAS_HIST_MISMATCH;
		if (n == i + 3 && !parse_version(&t[i + 2], &op.version)) {
			snprintf(err, err_len, "bad version '%s'", t[i + 2].s);
			goto out_free_buf;
		}
	} else {
		snprintf(err, err_len, "bad result: expected ok [VERSION]%s, fail or unknown",
			 op.kind == CAS_HIST_CAS ? ", mismatch [VERSION]" : "");
		goto out_free_buf;
	}
	if (op.complete == CAS_TIME_PENDING && op.status != CAS_HIST_UNKNOWN) {
		snprintf(err, err_len, "a never-completed operation's result must be unknown");
		goto out_free_buf;
	}
	if (op.complete < op.invoke) {
		snprintf(err, err_len, "completes before it is invoked");
		goto out_free_buf;
	}
	if (t[0].len != strlen(t[0].s) || t[0].len == 0) {
		snprintf(err, err_len, "bad key");
		goto out_free_buf;
	}
	rc = cas_history_add(h, t[0].s, &op);
	if (rc == CAS_ENOMEM)
		snprintf(err, err_len, "out of memory");
	else if (rc)
		snprintf(err, err_len, "inconsistent operation");

out_free_buf:
	free(buf);
	return rc;
}

static void write_value(FILE *f, const void *value, size_t len)
{
	const unsigned char *p = value;
	size_t i;

	fputc('"', f);
	for (i = 0; i < len; i++) {
		if (p[i] == '"' || p[i] == '\\')
			fprintf(f, "\\%c", p[i]);
		else if (p[i] >= 0x20 && p[i] < 0x7f)
			fputc(p[i], f);
		else
			fprintf(f, "\\x%02x", p[i]);
	}
	fputc('"', f);
}

static void write_version(FILE *f, uint64_t v)
{
	if (v == CAS_VERSION_ANY)
		fputs("?", f);
	else
		fprintf(f, "%llu", (unsigned long long)v);
}

int cas_history_write(const struct cas_history *h, FILE *f)
{
	static const char *const status[] = {"ok", "mismatch", "fail", "unknown"};
	size_t i;

	for (i = 0; i < h->len; i++) {
		const struct hop *o = &h->ops[i];
		const struct cas_hist_op *op = &o->op;

		if (strpbrk(o->key, " \t\r\n\"\\") || o->key[0] == '#')
			write_value(f, o->key, strlen(o->key));
		else
			fputs(o->key, f);
		fprintf(f, " %llu ", (unsigned long long)op->invoke);
		if (op->complete == CAS_TIME_PENDING)
			fputs("-", f);
		else
			fprintf(f, "%llu", (unsigned long long)op->complete);
		switch (op->kind) {
		case CAS_HIST_READ:
			fputs(" read", f);
			break;
		case CAS_HIST_WRITE:
			fputs(" write ", f);
			write_value(f, op->value, op->len);
			break;
		case CAS_HIST_CAS:
			fprintf(f, " cas %llu ", (unsigned long long)op->expected);
			write_value(f, op->value, op->len);
			break;
		case CAS_HIST_DELETE:
			fputs(" delete", f);
			break;
		}
		fputs(" -> ", f);
		if (op->kind == CAS_HIST_READ && op->status == CAS_HIST_OK) {
			write_version(f, op->version);
			fputc(' ', f);
			write_value(f, op->value, op->len);
		} else {
			fputs(status[op->status], f);
			if (op->status == CAS_HIST_OK || op->status == CAS_HIST_MISMATCH) {
				fputc(' ', f);
				write_version(f, op->version);
			}
		}
		fputc('\n', f);
	}
	return ferror(f) ? CAS_EIO : CAS_OK;
}

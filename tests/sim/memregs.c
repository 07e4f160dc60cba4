/* memregs.c - an in-memory cluster of registers with a seeded scheduler
 * of simulated proposers and their faults (memregs.h). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include "memregs.h"

#define SLOTS	      4096 /* registers a run may create (a power of two) */
#define KEY_MAX	      64
#define STACK_SIZE    (512 * 1024)
#define MAX_PROPOSERS 16

struct slot {
	bool used;
	char key[KEY_MAX];
	struct cas_value v;
};

struct table {
	struct slot *s;
	size_t *used; /* indices in use, to clear quickly */
	size_t nused;
};

struct client {
	struct memregs *m;
	struct casfs_regs regs;
	bool scheduled; /* a proposer, not the caller itself */
	bool scratch;
	struct memregs_faults f;
	uint64_t rng;
	bool crashed;
	bool done;
	uint64_t deadline, wake;
	/* The simulated clock: offset + real * (10^6 + ppm) / 10^6. */
	uint64_t clock_offset;
	int ppm;
	unsigned delay_per10k, delay_max; /* each call waits, before and after */
	uint64_t part_from, part_until;	  /* real times: cut off from the cluster */
	ucontext_t ctx;
	void *stack;
	void (*fn)(void *arg, const struct casfs_regs *r);
	void *arg;
};

struct memregs {
	struct table regs, scratch;
	uint64_t rng;
	uint64_t now;
	uint64_t changes;
	uint64_t deletes; /* delete rounds that left a tombstone */
	bool changed;	  /* a register changed in this step */
	bool every_step;
	ucontext_t main;
	struct client *running;
	struct client direct, observer;
	struct client *p[MAX_PROPOSERS];
	size_t np;
};

static uint64_t next_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* True with probability per10k / 10,000. */
static bool chance(uint64_t *s, unsigned per10k)
{
	return per10k && next_rand(s) % 10000 < per10k;
}

static uint64_t hash_key(const char *key)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (; *key; key++)
		h = (h ^ (unsigned char)*key) * 0x100000001b3ull;
	return h;
}

/* The slot of key in t, or the free slot where it goes; NULL when full. */
static struct slot *find(struct table *t, const char *key)
{
	size_t i = hash_key(key) & (SLOTS - 1), n;

	for (n = 0; n < SLOTS; n++, i = (i + 1) & (SLOTS - 1))
		if (!t->s[i].used || !strcmp(t->s[i].key, key))
			return &t->s[i];
	return NULL;
}

static void table_clear(struct table *t)
{
	size_t i;

	for (i = 0; i < t->nused; i++) {
		cas_value_clear(&t->s[t->used[i]].v);
		t->s[t->used[i]].used = false;
	}
	t->nused = 0;
}

static bool table_init(struct table *t)
{
	t->s = calloc(SLOTS, sizeof(*t->s));
	t->used = calloc(SLOTS, sizeof(*t->used));
	t->nused = 0;
	return t->s && t->used;
}

/* The value key holds for c (the scratch layer first), or NULL. */
static const struct cas_value *lookup(struct client *c, const char *key)
{
	struct slot *s;

	if (c->scratch) {
		s = find(&c->m->scratch, key);
		if (s && s->used)
			return &s->v;
	}
	s = find(&c->m->regs, key);
	return s && s->used ? &s->v : NULL;
}

static int copy_value(const struct cas_value *from, struct cas_value *to)
{
	memset(to, 0, sizeof(*to));
	if (!from)
		return CAS_OK;
	to->version = from->version;
	if (from->len) {
		to->data = malloc(from->len);
		if (!to->data)
			return CAS_ENOMEM;
		memcpy(to->data, from->data, from->len);
		to->len = from->len;
	}
	return CAS_OK;
}

/* Sets key to next (taking its data) with the given version. */
static int store(struct client *c, const char *key, struct cas_value *next, uint64_t version)
{
	struct table *t = c->scratch ? &c->m->scratch : &c->m->regs;
	struct slot *s = find(t, key);

	if (!s || strlen(key) >= KEY_MAX) {
		free(next->data);
		return CAS_ENOMEM;
	}
	if (!s->used) {
		s->used = true;
		snprintf(s->key, KEY_MAX, "%s", key);
		t->used[t->nused++] = (size_t)(s - t->s);
	}
	cas_value_clear(&s->v);
	s->v.version = version;
	s->v.data = next->data;
	s->v.len = next->len;
	next->data = NULL;
	if (!c->scratch) {
		c->m->changed = true;
		c->m->changes++;
	}
	return CAS_OK;
}

/* A scheduling point: back to the scheduler, until it picks c again. */
static void yield(struct client *c)
{
	if (c->scheduled)
		swapcontext(&c->ctx, &c->m->main);
}

/* Enters a call of c: false when it fails without effect (a crash). */
static bool enter(struct client *c)
{
	yield(c);
	if (!c->scheduled)
		return true;
	if (!c->crashed && chance(&c->rng, c->f.crash))
		c->crashed = true;
	return !c->crashed;
}

/* A call of a scheduled proposer may wait before it reaches the cluster
 * and again before its answer comes back. */
static void delay(struct client *c)
{
	if (!c->scheduled || !c->delay_max || !chance(&c->rng, c->delay_per10k))
		return;
	c->wake = c->m->now + 1 + next_rand(&c->rng) % c->delay_max;
	yield(c);
}

/* True while c is cut off from the cluster. */
static bool partitioned(const struct client *c)
{
	return c->scheduled && c->m->now >= c->part_from && c->m->now < c->part_until;
}

static int op_read(void *arg, const char *key, struct cas_value *out)
{
	struct client *c = arg;
	int rc;

	memset(out, 0, sizeof(*out));
	if (!enter(c) || (c->scheduled && chance(&c->rng, c->f.read_fail)))
		return CAS_EUNAVAILABLE;
	delay(c);
	if (partitioned(c))
		return CAS_EUNAVAILABLE;
	rc = copy_value(lookup(c, key), out);
	delay(c);
	if (partitioned(c))
		cas_value_clear(out);
	return partitioned(c) ? CAS_EUNAVAILABLE : rc;
}

/* A change round, or a delete round (del): fn's CAS_OK then leaves a
 * tombstone, version 0 and no bytes. */
static int round_of(void *arg, const char *key, cas_change_fn fn, void *fn_arg,
		    struct cas_value *out, bool del)
{
	struct client *c = arg;
	struct cas_value cur, next = {0};
	int rc;

	if (out)
		memset(out, 0, sizeof(*out));
	if (!enter(c) || (c->scheduled && chance(&c->rng, c->f.fail_before)))
		return CAS_EUNAVAILABLE;
	delay(c);
	if (partitioned(c))
		return CAS_EUNAVAILABLE;
	rc = copy_value(lookup(c, key), &cur);
	if (rc)
		return rc;
	rc = fn(fn_arg, &cur, &next);
	if (rc == CAS_OK && del) {
		free(next.data);
		next = (struct cas_value){0};
		rc = store(c, key, &next, 0);
		if (!rc && !c->scratch)
			c->m->deletes++;
	} else if (rc == CAS_OK) {
		rc = store(c, key, &next, cur.version + 1);
	} else
		free(next.data);
	if (rc == CAS_ENOCHANGE)
		rc = CAS_OK;
	cas_value_clear(&cur);
	if (rc)
		return rc;
	delay(c);
	/* Applied, but the answer is lost. */
	if (partitioned(c) || (c->scheduled && chance(&c->rng, c->f.fail_after)))
		return CAS_EUNAVAILABLE;
	return out ? copy_value(lookup(c, key), out) : CAS_OK;
}

static int op_change(void *arg, const char *key, cas_change_fn fn, void *fn_arg,
		     struct cas_value *out)
{
	return round_of(arg, key, fn, fn_arg, out, false);
}

static int op_del(void *arg, const char *key, cas_change_fn fn, void *fn_arg, struct cas_value *out)
{
	return round_of(arg, key, fn, fn_arg, out, true);
}

static unsigned op_left_ms(void *arg)
{
	struct client *c = arg;

	if (!c->scheduled)
		return 1000;
	return c->deadline > c->m->now ? (unsigned)(c->deadline - c->m->now) : 0;
}

static void op_sleep_ms(void *arg, unsigned ms)
{
	struct client *c = arg;

	/* ms on c's own clock. */
	c->wake = c->m->now + (ms * 1000000ull + (uint64_t)(1000000 + c->ppm) - 1) /
				      (uint64_t)(1000000 + c->ppm);
	yield(c);
}

static int op_random(void *arg, void *buf, size_t len)
{
	struct client *c = arg;
	unsigned char *b = buf;
	size_t i;

	if (!enter(c))
		return CAS_EUNAVAILABLE;
	for (i = 0; i < len; i++)
		b[i] = (unsigned char)next_rand(&c->rng);
	return CAS_OK;
}

static const struct casfs_regs_ops ops = {op_read,    op_change,   op_del,
					  op_left_ms, op_sleep_ms, op_random};

int memregs_multi(const struct casfs_regs *r, size_t n, const char *const *keys,
		  const uint64_t *versions, struct cas_value *vals)
{
	struct client *c = r->arg;
	const struct cas_value *v;
	size_t i;
	int rc = CAS_OK;

	if (!enter(c) || (c->scheduled && chance(&c->rng, c->f.fail_before)))
		rc = CAS_EUNAVAILABLE;
	for (i = 0; !rc && i < n; i++) {
		v = lookup(c, keys[i]);
		if ((v ? v->version : 0) != versions[i])
			rc = CAS_ECONFLICT;
	}
	for (i = 0; i < n; i++) {
		if (!rc && vals[i].data)
			rc = store(c, keys[i], &vals[i], versions[i] + 1);
		cas_value_clear(&vals[i]);
	}
	if (!rc && c->scheduled && chance(&c->rng, c->f.fail_after))
		rc = CAS_EUNAVAILABLE;
	return rc;
}

static void client_init(struct memregs *m, struct client *c)
{
	c->m = m;
	c->regs.ops = &ops;
	c->regs.arg = c;
}

struct memregs *memregs_new(uint64_t seed)
{
	struct memregs *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	if (!table_init(&m->regs) || !table_init(&m->scratch)) {
		memregs_free(m);
		return NULL;
	}
	m->rng = seed;
	client_init(m, &m->direct);
	client_init(m, &m->observer);
	m->observer.scratch = true;
	return m;
}

void memregs_free(struct memregs *m)
{
	size_t i;

	if (!m)
		return;
	for (i = 0; i < m->np; i++) {
		free(m->p[i]->stack);
		free(m->p[i]);
	}
	if (m->regs.s)
		table_clear(&m->regs);
	if (m->scratch.s)
		table_clear(&m->scratch);
	free(m->regs.s);
	free(m->regs.used);
	free(m->scratch.s);
	free(m->scratch.used);
	free(m);
}

void memregs_direct(struct memregs *m, bool scratch, struct casfs_regs *out)
{
	*out = scratch ? m->observer.regs : m->direct.regs;
}

void memregs_scratch_clear(struct memregs *m)
{
	table_clear(&m->scratch);
}

static void trampoline(unsigned lo, unsigned hi)
{
	struct client *c = (struct client *)(((uintptr_t)hi << 32) | lo);

	c->fn(c->arg, &c->regs);
	c->done = true;
	swapcontext(&c->ctx, &c->m->main);
}

int memregs_spawn(struct memregs *m, const struct memregs_faults *f,
		  void (*fn)(void *arg, const struct casfs_regs *r), void *arg)
{
	struct client *c;
	uintptr_t p;

	if (m->np == MAX_PROPOSERS)
		return CAS_ENOMEM;
	c = calloc(1, sizeof(*c));
	if (!c)
		return CAS_ENOMEM;
	c->stack = malloc(STACK_SIZE);
	if (!c->stack) {
		free(c);
		return CAS_ENOMEM;
	}
	client_init(m, c);
	c->scheduled = true;
	c->f = *f;
	c->rng = next_rand(&m->rng);
	c->fn = fn;
	c->arg = arg;
	getcontext(&c->ctx);
	c->ctx.uc_stack.ss_sp = c->stack;
	c->ctx.uc_stack.ss_size = STACK_SIZE;
	c->ctx.uc_link = NULL;
	p = (uintptr_t)c;
	makecontext(&c->ctx, (void (*)(void))trampoline, 2, (unsigned)(p & 0xffffffffu),
		    (unsigned)(p >> 32));
	m->p[m->np++] = c;
	return CAS_OK;
}

bool memregs_run(struct memregs *m, bool (*step)(void *arg), void *arg)
{
	struct client *ready[MAX_PROPOSERS];
	size_t i, n;
	uint64_t wake;

	for (;;) {
		n = 0;
		wake = UINT64_MAX;
		for (i = 0; i < m->np; i++) {
			if (m->p[i]->done)
				continue;
			if (m->p[i]->wake <= m->now)
				ready[n++] = m->p[i];
			else if (m->p[i]->wake < wake)
				wake = m->p[i]->wake;
		}
		if (!n && wake == UINT64_MAX)
			return true;
		if (!n) {
			m->now = wake;
			continue;
		}
		m->running = ready[next_rand(&m->rng) % n];
		m->changed = false;
		swapcontext(&m->main, &m->running->ctx);
		m->running = NULL;
		m->now++;
		if ((m->changed || m->every_step) && step && !step(arg))
			return false;
	}
}

uint64_t memregs_now(const struct memregs *m)
{
	return m->now;
}

void memregs_deadline(const struct casfs_regs *r, unsigned ms)
{
	struct client *c = r->arg;

	c->deadline = c->m->now + ms;
}

bool memregs_crashed(const struct casfs_regs *r)
{
	const struct client *c = r->arg;

	return c->crashed;
}

uint64_t memregs_changes(const struct memregs *m)
{
	return m->changes;
}

uint64_t memregs_deletes(const struct memregs *m)
{
	return m->deletes;
}

void memregs_each(struct memregs *m,
		  void (*fn)(void *arg, const char *key, const struct cas_value *v), void *arg)
{
	for (size_t i = 0; i < m->regs.nused; i++) {
		const struct slot *s = &m->regs.s[m->regs.used[i]];

		if (s->v.version || s->v.len)
			fn(arg, s->key, &s->v);
	}
}

void memregs_every_step(struct memregs *m, bool on)
{
	m->every_step = on;
}

void memregs_clock(const struct casfs_regs *r, uint64_t offset_ms, int ppm)
{
	struct client *c = r->arg;

	c->clock_offset = offset_ms;
	c->ppm = ppm;
}

uint64_t memregs_local_ms(const struct casfs_regs *r)
{
	const struct client *c = r->arg;

	return c->clock_offset + c->m->now * (uint64_t)(1000000 + c->ppm) / 1000000;
}

void memregs_delays(const struct casfs_regs *r, unsigned per10k, unsigned max_ms)
{
	struct client *c = r->arg;

	c->delay_per10k = per10k;
	c->delay_max = max_ms;
}

void memregs_partition(const struct casfs_regs *r, uint64_t from_ms, uint64_t until_ms)
{
	struct client *c = r->arg;

	c->part_from = from_ms;
	c->part_until = until_ms;
}

/* memtable.c - records newer than LMDB's, in memory (memtable.h). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "memtable.h"

struct mem_entry *cas_memtable_find(const struct memtable *m, const char *key, size_t len,
				    uint32_t hash)
{
	struct mem_entry *e;

	if (!m->n_buckets)
		return NULL;
	for (e = m->buckets[hash & (m->n_buckets - 1)]; e; e = e->next)
		if (e->hash == hash && e->key_len == len && !memcmp(e->key, key, len))
			return e;
	return NULL;
}

/* Doubles the buckets once there are more entries than buckets. Without
 * memory the table stays as it is, only slower. */
static void grow(struct memtable *m)
{
	size_t n = m->n_buckets ? m->n_buckets * 2 : 64, i;
	struct mem_entry **b, *e, *next;

	if (m->n < m->n_buckets)
		return;
	b = calloc(n, sizeof(*b));
	if (!b)
		return;
	for (i = 0; i < m->n_buckets; i++) {
		for (e = m->buckets[i]; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->n_buckets = n;
}

struct mem_entry *cas_memtable_add(struct memtable *m, const char *key, size_t len, uint32_t hash,
				   bool fresh)
{
	struct mem_entry *e;

	grow(m);
	if (!m->n_buckets)
		return NULL;
	e = calloc(1, sizeof(*e) + len + 1);
	if (!e)
		return NULL;
	e->hash = hash;
	e->key_len = len;
	e->fresh = fresh;
	memcpy(e->key, key, len);
	e->next = m->buckets[hash & (m->n_buckets - 1)];
	m->buckets[hash & (m->n_buckets - 1)] = e;
	m->n++;
	return e;
}

bool cas_memtable_reserve(struct memtable *m)
{
	size_t need = m->n_touched + 1, n = m->touched_cap ? m->touched_cap : 16;
	struct mem_entry **q;

	if (need <= m->touched_cap)
		return true;
	while (n < need)
		n *= 2;
	q = realloc(m->touched, n * sizeof(*q));
	if (!q)
		return false;
	m->touched = q;
	m->touched_cap = n;
	return true;
}

void cas_memtable_stage(struct memtable *m, struct mem_entry *e, unsigned char *rec, size_t rec_len)
{
	if (!e->pending)
		m->touched[m->n_touched++] = e;
	free(e->pending);
	e->pending = rec;
	e->pending_len = rec_len;
}

void cas_memtable_discard_staged(struct memtable *m)
{
	size_t i;

	for (i = 0; i < m->n_touched; i++) {
		free(m->touched[i]->pending);
		m->touched[i]->pending = NULL;
		m->touched[i]->pending_len = 0;
	}
	m->n_touched = 0;
	m->pending_floor = m->floor;
}

/* Counts e's durable record in or out (sign 1 or -1) of the keys LMDB
 * does not say right: a record whose key LMDB lacks adds one, a drop
 * whose key LMDB has takes one away. */
static void count(struct memtable *m, const struct mem_entry *e, int sign)
{
	if (!e->rec)
		return;
	if (e->fresh && !cas_memtable_is_drop(e->rec_len))
		m->n_fresh += (uint64_t)(int64_t)sign;
	else if (!e->fresh && cas_memtable_is_drop(e->rec_len))
		m->n_gone += (uint64_t)(int64_t)sign;
}

void cas_memtable_promote_staged(struct memtable *m, bool in_lmdb)
{
	struct mem_entry *e;
	size_t i;

	for (i = 0; i < m->n_touched; i++) {
		e = m->touched[i];
		count(m, e, -1);
		free(e->rec);
		e->rec = e->pending;
		e->rec_len = e->pending_len;
		e->pending = NULL;
		e->pending_len = 0;
		if (in_lmdb)
			e->fresh = cas_memtable_is_drop(e->rec_len);
		count(m, e, 1);
	}
	m->n_touched = 0;
	m->floor = m->pending_floor;
}

void cas_memtable_drop_durable(struct memtable *m)
{
	struct mem_entry **pe, *e;
	size_t i;

	for (i = 0; i < m->n_buckets; i++) {
		pe = &m->buckets[i];
		while ((e = *pe) != NULL) {
			if (e->rec)
				e->fresh = cas_memtable_is_drop(e->rec_len);
			free(e->rec);
			e->rec = NULL;
			e->rec_len = 0;
			if (e->pending) {
				pe = &e->next;
				continue;
			}
			*pe = e->next;
			free(e);
			m->n--;
		}
	}
	m->n_fresh = 0;
	m->n_gone = 0;
}

void cas_memtable_free(struct memtable *m)
{
	struct mem_entry *e, *next;
	size_t i;

	for (i = 0; i < m->n_buckets; i++) {
		for (e = m->buckets[i]; e; e = next) {
			next = e->next;
			free(e->rec);
			free(e->pending);
			free(e);
		}
	}
	free(m->buckets);
	free(m->touched);
	memset(m, 0, sizeof(*m));
}

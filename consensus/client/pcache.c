/* pcache.c - a bounded, thread-safe map from key to cached promise. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cas/bytes.h>

#include "pcache.h"

struct entry {
	struct entry *next_in_bucket;
	struct entry *older, *newer; /* the eviction order */
	struct cas_ballot ballot;
	struct cas_reg value;
	char key[];
};

struct cas_pcache {
	pthread_mutex_t lock;
	struct entry **buckets;
	size_t n_buckets; /* a power of two */
	size_t n, max_entries;
	size_t bytes, max_bytes;
	struct entry *oldest, *newest;
};

static uint64_t hash(const char *s)
{
	return cas_fnv1a(CAS_FNV1A_INIT, s, strlen(s));
}

int cas_pcache_new(size_t max_entries, size_t max_bytes, struct cas_pcache **out)
{
	struct cas_pcache *c = calloc(1, sizeof(*c));
	size_t nb = 64;

	if (c == NULL)
		return CAS_ENOMEM;
	while (nb < max_entries && nb < ((size_t)1 << 20))
		nb *= 2;
	c->buckets = calloc(nb, sizeof(*c->buckets));
	if (c->buckets == NULL) {
		free(c);
		return CAS_ENOMEM;
	}
	c->n_buckets = nb;
	c->max_entries = max_entries;
	c->max_bytes = max_bytes;
	pthread_mutex_init(&c->lock, NULL);
	*out = c;
	return CAS_OK;
}

static struct entry **slot_of(struct cas_pcache *c, const char *key)
{
	struct entry **e = &c->buckets[hash(key) & (c->n_buckets - 1)];

	while (*e != NULL && strcmp((*e)->key, key) != 0)
		e = &(*e)->next_in_bucket;
	return e;
}

/* Unlinks *slot's entry from its bucket and the eviction order. */
static struct entry *unlink_entry(struct cas_pcache *c, struct entry **slot)
{
	struct entry *e = *slot;

	*slot = e->next_in_bucket;
	if (e->older != NULL)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
	if (e->newer != NULL)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	c->n--;
	c->bytes -= e->value.len;
	return e;
}

static void drop_oldest(struct cas_pcache *c)
{
	struct entry *e = unlink_entry(c, slot_of(c, c->oldest->key));

	free(e->value.data);
	free(e);
}

void cas_pcache_free(struct cas_pcache *c)
{
	if (c == NULL)
		return;
	while (c->oldest != NULL)
		drop_oldest(c);
	pthread_mutex_destroy(&c->lock);
	free(c->buckets);
	free(c);
}

bool cas_pcache_take(struct cas_pcache *c, const char *key, struct cas_ballot *ballot,
		     struct cas_reg *value)
{
	struct entry **slot, *e;

	pthread_mutex_lock(&c->lock);
	slot = slot_of(c, key);
	if (*slot == NULL) {
		pthread_mutex_unlock(&c->lock);
		return false;
	}
	e = unlink_entry(c, slot);
	pthread_mutex_unlock(&c->lock);
	*ballot = e->ballot;
	*value = e->value;
	free(e);
	return true;
}

void cas_pcache_put(struct cas_pcache *c, const char *key, struct cas_ballot ballot,
		    struct cas_reg *value)
{
	size_t key_len = strlen(key);
	struct entry **slot, *e;

	if (value->len > c->max_bytes || c->max_entries == 0)
		goto out_drop_value;
	e = malloc(sizeof(*e) + key_len + 1);
	if (e == NULL)
		goto out_drop_value;
	memcpy(e->key, key, key_len + 1);
	e->ballot = ballot;
	e->value = *value;
	memset(value, 0, sizeof(*value));

	pthread_mutex_lock(&c->lock);
	slot = slot_of(c, key);
	if (*slot != NULL) {
		struct entry *old = unlink_entry(c, slot);

		free(old->value.data);
		free(old);
		slot = slot_of(c, key);
	}
	e->next_in_bucket = *slot;
	*slot = e;
	e->older = c->newest;
	e->newer = NULL;
	if (c->newest != NULL)
		c->newest->newer = e;
	else
		c->oldest = e;
	c->newest = e;
	c->n++;
	c->bytes += e->value.len;
	while (c->n > c->max_entries || c->bytes > c->max_bytes)
		drop_oldest(c);
	pthread_mutex_unlock(&c->lock);
	return;

out_drop_value:
	free(value->data);
	memset(value, 0, sizeof(*value));
}

size_t cas_pcache_count(struct cas_pcache *c)
{
	size_t n;

	pthread_mutex_lock(&c->lock);
	n = c->n;
	pthread_mutex_unlock(&c->lock);
	return n;
}

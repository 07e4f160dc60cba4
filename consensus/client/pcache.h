/* pcache.h - the client's cache of promises for the one-round-trip
 * optimization: per key, the ballot a majority promised with its last
 * accept and the value it accepted. Thread-safe, bounded in entries and
 * bytes, least recently stored evicted first. */
#ifndef CAS_PCACHE_H
#define CAS_PCACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "msg.h"

struct cas_pcache;

/* A cache holding at most max_entries entries and max_bytes value bytes.
 * CAS_ENOMEM leaves *out untouched. */
int cas_pcache_new(size_t max_entries, size_t max_bytes, struct cas_pcache **out);

/* Frees c and every entry. NULL is a no-op. */
void cas_pcache_free(struct cas_pcache *c);

/* Removes key's entry and moves it into *ballot and *value (the caller
 * then owns value->data). False, and nothing touched, when there is none.
 * A promise is taken out so that it starts one operation only. */
bool cas_pcache_take(struct cas_pcache *c, const char *key, struct cas_ballot *ballot,
		     struct cas_reg *value);

/* Stores ballot and *value for key, replacing any entry; takes value's
 * bytes (also when it cannot keep them, then it frees them) and zeroes
 * *value. */
void cas_pcache_put(struct cas_pcache *c, const char *key, struct cas_ballot ballot,
		    struct cas_reg *value);

/* Number of entries (for tests). */
size_t cas_pcache_count(struct cas_pcache *c);

#endif

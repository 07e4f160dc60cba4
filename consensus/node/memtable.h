/* memtable.h - the records newer than LMDB's, in memory until the next
 * checkpoint (store.h), and the batch being staged on top of them. Private
 * to the store. Only the writer of a batch (one at a time) changes it;
 * what readers see (the entries, their durable records, n_fresh) changes
 * under the store's mem_lock, which readers take too. Staged (pending)
 * records are the writer's alone. */
#ifndef CAS_MEMTABLE_H
#define CAS_MEMTABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cas/bytes.h>

/* A key's record newer than LMDB's, in memory until the next checkpoint.
 * A record of 0 bytes (rec or pending not NULL, its length 0) says the
 * key was dropped (a purge): the store holds no row of it. */
struct mem_entry {
	struct mem_entry *next; /* in its bucket */
	unsigned char *rec;	/* durable record; NULL: LMDB holds the state */
	size_t rec_len;
	unsigned char *pending; /* what the batch being written makes it */
	size_t pending_len;
	bool fresh; /* the key is not in LMDB */
	uint32_t hash;
	size_t key_len;
	char key[]; /* NUL-terminated */
};

struct memtable {
	struct mem_entry **buckets;
	size_t n_buckets; /* a power of two, or 0 */
	size_t n;
	uint64_t n_fresh;	    /* entries with a durable record whose key LMDB lacks */
	uint64_t n_gone;	    /* entries with a durable drop whose key LMDB has */
	uint64_t floor;		    /* the durable floor (PROTOCOL.md, "Deletion") */
	uint64_t pending_floor;	    /* the floor the batch being written makes it */
	struct mem_entry **touched; /* entries the batch changed */
	size_t n_touched, touched_cap;
};

/* Whether a record of rec_len bytes (rec not NULL) is a drop. */
static inline bool cas_memtable_is_drop(size_t rec_len)
{
	return rec_len == 0;
}

/* The hash a key is filed under. */
static inline uint32_t cas_memtable_hash(const char *key, size_t len)
{
	return (uint32_t)cas_fnv1a(CAS_FNV1A_INIT, key, len);
}

/* key's entry (len bytes, hash from cas_memtable_hash), or NULL. Valid
 * until the entry is dropped (cas_memtable_drop_durable, _free). */
struct mem_entry *cas_memtable_find(const struct memtable *m, const char *key, size_t len,
				    uint32_t hash);

/* Adds an entry for key, with no record yet; fresh: LMDB lacks the key.
 * NULL without memory (m unchanged). The entry is m's. */
struct mem_entry *cas_memtable_add(struct memtable *m, const char *key, size_t len, uint32_t hash,
				   bool fresh);

/* Makes room to stage one more entry, so that cas_memtable_stage cannot
 * fail; false without memory. */
bool cas_memtable_reserve(struct memtable *m);

/* Stages rec (malloc'd, rec_len bytes, 0 for a drop; m takes it) as e's
 * pending record, replacing any pending one. Needs room from
 * cas_memtable_reserve. */
void cas_memtable_stage(struct memtable *m, struct mem_entry *e, unsigned char *rec,
			size_t rec_len);

/* Drops what the batch staged (its records and its floor). */
void cas_memtable_discard_staged(struct memtable *m);

/* The staged records and floor are durable: readers see them from now
 * on. in_lmdb: they were written into LMDB, not the log. */
void cas_memtable_promote_staged(struct memtable *m, bool in_lmdb);

/* After a checkpoint: LMDB holds every durable record (and lacks every
 * dropped key) and the floor. Entries a batch is changing stay (without
 * their durable record), the others go. */
void cas_memtable_drop_durable(struct memtable *m);

/* Frees every entry and zeroes m. */
void cas_memtable_free(struct memtable *m);

#endif

/* store_keys.c - the store's keys in byte order, a page at a time
 * (cas_store_keys, store.h): LMDB's keys merged with the memtable's newer
 * ones. */
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"
#include "store_impl.h"

/* Byte order of NUL-terminated keys (no key holds a NUL): memcmp's, as
 * LMDB's default order, for keys given by their addresses. */
static int compare_keys(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void cas_store_keys_free(char **keys, size_t n)
{
	size_t i;

	if (!keys)
		return;
	for (i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
}

/* A list of malloc'd keys being gathered. */
struct list {
	char **keys;
	size_t n;
};

static bool list_add(struct list *l, const char *key, size_t len)
{
	char *k = malloc(len + 1);

	if (!k)
		return false;
	memcpy(k, key, len);
	k[len] = '\0';
	l->keys[l->n++] = k;
	return true;
}

/* The memtable's keys with a durable record after `after` (NULL: all):
 * the want smallest, in byte order, into l (room for want); and those of
 * them whose record is a drop, all of them, in byte order, into gone
 * (its array malloc'd here). */
static int memtable_keys(struct cas_store *s, const char *after, size_t want, struct list *l,
			 struct list *gone)
{
	struct mem_entry *e;
	size_t i, count = 0, n_gone = 0;
	char **found;
	bool drop;
	int err = CAS_OK;

	pthread_mutex_lock(&s->mem_lock);
	for (i = 0; i < s->mem.n_buckets; i++) {
		for (e = s->mem.buckets[i]; e; e = e->next) {
			if (!e->rec || (after && strcmp(e->key, after) <= 0))
				continue;
			drop = cas_memtable_is_drop(e->rec_len);
			n_gone += drop;
			count += !drop;
		}
	}
	if (!count && !n_gone)
		goto out_unlock;
	/* The live keys first, then the dropped ones. */
	found = malloc((count + n_gone) * sizeof(*found));
	gone->keys = malloc((n_gone ? n_gone : 1) * sizeof(*gone->keys));
	if (!found || !gone->keys) {
		err = CAS_ENOMEM;
		goto out_free_found;
	}
	count = n_gone = 0;
	for (i = 0; i < s->mem.n_buckets; i++) {
		for (e = s->mem.buckets[i]; e; e = e->next) {
			if (!e->rec || (after && strcmp(e->key, after) <= 0))
				continue;
			if (cas_memtable_is_drop(e->rec_len))
				gone->keys[n_gone++] = e->key; /* moved to the end below */
			else
				found[count++] = e->key;
		}
	}
	memcpy(found + count, gone->keys, n_gone * sizeof(*found));
	qsort(found, count, sizeof(*found), compare_keys);
	qsort(found + count, n_gone, sizeof(*found), compare_keys);
	for (i = 0; i < count && i < want && !err; i++)
		if (!list_add(l, found[i], strlen(found[i])))
			err = CAS_ENOMEM;
	for (i = 0; i < n_gone && !err; i++)
		if (!list_add(gone, found[count + i], strlen(found[count + i])))
			err = CAS_ENOMEM;
out_free_found:
	free(found);
out_unlock:
	pthread_mutex_unlock(&s->mem_lock);
	return err;
}

/* Whether key (len bytes) is one of gone's (in byte order). */
static bool is_gone(const struct list *gone, const char *key, size_t len)
{
	size_t lo = 0, hi = gone->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strncmp(gone->keys[mid], key, len);
		if (c == 0 && gone->keys[mid][len])
			c = 1; /* longer: after key */
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* LMDB's keys after `after` (NULL: from the first), the want smallest,
 * in byte order, into l (room for want). Entries that are not register
 * keys (the log's epoch, the floor) and the keys of gone (dropped since
 * the last checkpoint) are skipped. */
static int lmdb_keys(struct cas_store *s, const char *after, size_t want, const struct list *gone,
		     struct list *l, char *errmsg, size_t errmsg_len)
{
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_txn *txn;
	int rc, err = CAS_OK;

	rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return cas_store_lmdb_err(rc, "mdb_txn_begin", errmsg, errmsg_len);
	rc = mdb_cursor_open(txn, s->dbi, &cur);
	if (rc) {
		err = cas_store_lmdb_err(rc, "mdb_cursor_open", errmsg, errmsg_len);
		goto out_abort;
	}
	if (after) {
		k.mv_size = strlen(after);
		k.mv_data = (void *)after;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (!rc && k.mv_size == strlen(after) && !memcmp(k.mv_data, after, k.mv_size))
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	} else {
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	}
	while (!rc && l->n < want) {
		if (cas_key_valid(k.mv_data, k.mv_size) && !is_gone(gone, k.mv_data, k.mv_size) &&
		    !list_add(l, k.mv_data, k.mv_size)) {
			cas_errmsg_set(errmsg, errmsg_len, "store: out of memory");
			err = CAS_ENOMEM;
			goto out_close;
		}
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (rc && rc != MDB_NOTFOUND)
		err = cas_store_lmdb_err(rc, "mdb_cursor_get", errmsg, errmsg_len);
out_close:
	mdb_cursor_close(cur);
out_abort:
	mdb_txn_abort(txn);
	return err;
}

int cas_store_keys(struct cas_store *s, const char *after, size_t limit, char ***keys, size_t *n,
		   bool *more, char *errmsg, size_t errmsg_len)
{
	struct list mem = {0}, db = {0}, out = {0}, gone = {0};
	size_t want, i = 0, j = 0;
	int err = CAS_ENOMEM, c;

	*keys = NULL;
	*n = 0;
	*more = false;
	if (after && !cas_key_valid(after, strnlen(after, CAS_KEY_MAX + 1))) {
		cas_errmsg_set(errmsg, errmsg_len, "store: bad key");
		return CAS_EKEY;
	}
	if (limit == 0 || limit > SIZE_MAX / sizeof(char *) / 2 - 1) {
		cas_errmsg_set(errmsg, errmsg_len, "store: bad limit %zu", limit);
		return CAS_EINVAL;
	}
	/* One more than asked for, to tell whether there are more. */
	want = limit + 1;
	mem.keys = malloc(want * sizeof(char *));
	db.keys = malloc(want * sizeof(char *));
	out.keys = malloc(want * sizeof(char *));
	if (!mem.keys || !db.keys || !out.keys) {
		cas_errmsg_set(errmsg, errmsg_len, "store: out of memory");
		goto out_free;
	}
	/* The memtable first, as cas_store_read: a key it lacks now is in
	 * LMDB by the time LMDB is read (a checkpoint writes LMDB before it
	 * drops entries), and a key dropped now is gone from LMDB by then, or
	 * skipped there. */
	err = memtable_keys(s, after, want, &mem, &gone);
	if (err) {
		cas_errmsg_set(errmsg, errmsg_len, "store: out of memory");
		goto out_free;
	}
	err = lmdb_keys(s, after, want, &gone, &db, errmsg, errmsg_len);
	if (err)
		goto out_free;
	/* Merged; a key in both (LMDB holds an older record) once. The
	 * moved keys are out's, and their slots in mem and db cleared. */
	while (out.n < want && (i < mem.n || j < db.n)) {
		c = i == mem.n ? 1 : j == db.n ? -1 : strcmp(mem.keys[i], db.keys[j]);
		if (c <= 0) {
			out.keys[out.n++] = mem.keys[i];
			mem.keys[i++] = NULL;
			if (c == 0)
				j++;
		} else {
			out.keys[out.n++] = db.keys[j];
			db.keys[j++] = NULL;
		}
	}
	if (out.n > limit) {
		*more = true;
		free(out.keys[--out.n]);
	}
	*keys = out.keys;
	*n = out.n;
	out.keys = NULL;
	out.n = 0;
	err = CAS_OK;

out_free:
	for (i = 0; i < mem.n; i++)
		free(mem.keys ? mem.keys[i] : NULL);
	for (j = 0; j < db.n; j++)
		free(db.keys ? db.keys[j] : NULL);
	free(mem.keys);
	free(db.keys);
	cas_store_keys_free(gone.keys, gone.n);
	cas_store_keys_free(out.keys, out.n);
	return err;
}

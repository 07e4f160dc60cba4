/* inode.c - the table from kernel node ids to inode register ids. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cas/bytes.h>

#include "inode.h"

#define ROOT_NODEID 1

struct node {
	uint64_t nodeid;
	unsigned char id[CASFS_ID_LEN];
	uint64_t nlookup;
	uint64_t nopen; /* open handles on this mount */
	bool held;	/* its last name went while open: deleted at the last close */
	bool has_attr;
	struct stat attr;	  /* last reported to the kernel */
	struct node *next_nodeid; /* chain in by_nodeid */
	struct node *next_id;	  /* chain in by_id */
};

struct casfs_inodes {
	pthread_mutex_t lock;
	struct node **by_nodeid;
	struct node **by_id;
	size_t nbuckets; /* a power of two */
	size_t count;
	uint64_t next_nodeid;
};

static const unsigned char root_id[CASFS_ID_LEN];

static size_t hash_nodeid(uint64_t n, size_t nbuckets)
{
	n ^= n >> 33;
	n *= 0xff51afd7ed558ccdULL;
	n ^= n >> 33;
	return (size_t)n & (nbuckets - 1);
}

static size_t hash_id(const unsigned char *id, size_t nbuckets)
{
	return (size_t)cas_fnv1a(CAS_FNV1A_INIT, id, CASFS_ID_LEN) & (nbuckets - 1);
}

static void insert(struct casfs_inodes *t, struct node *n)
{
	size_t a = hash_nodeid(n->nodeid, t->nbuckets), b = hash_id(n->id, t->nbuckets);

	n->next_nodeid = t->by_nodeid[a];
	t->by_nodeid[a] = n;
	n->next_id = t->by_id[b];
	t->by_id[b] = n;
}

/* Doubles the buckets; keeps the old ones when out of memory. */
static void grow(struct casfs_inodes *t)
{
	struct node **old = t->by_nodeid, **a, **b;
	size_t oldn = t->nbuckets, i;

	a = calloc(oldn * 2, sizeof(*a));
	b = calloc(oldn * 2, sizeof(*b));
	if (!a || !b) {
		free(a);
		free(b);
		return;
	}
	free(t->by_id);
	t->by_nodeid = a;
	t->by_id = b;
	t->nbuckets = oldn * 2;
	for (i = 0; i < oldn; i++) {
		struct node *n = old[i], *next;

		for (; n; n = next) {
			next = n->next_nodeid;
			insert(t, n);
		}
	}
	free(old);
}

struct casfs_inodes *casfs_inodes_new(void)
{
	struct casfs_inodes *t = calloc(1, sizeof(*t));
	struct node *root;

	if (!t)
		return NULL;
	t->nbuckets = 64;
	t->by_nodeid = calloc(t->nbuckets, sizeof(*t->by_nodeid));
	t->by_id = calloc(t->nbuckets, sizeof(*t->by_id));
	root = calloc(1, sizeof(*root));
	if (!t->by_nodeid || !t->by_id || !root)
		goto out_free;
	if (pthread_mutex_init(&t->lock, NULL))
		goto out_free;
	root->nodeid = ROOT_NODEID;
	insert(t, root);
	t->count = 1;
	t->next_nodeid = ROOT_NODEID + 1;
	return t;

out_free:
	free(root);
	free(t->by_nodeid);
	free(t->by_id);
	free(t);
	return NULL;
}

void casfs_inodes_free(struct casfs_inodes *t)
{
	size_t i;

	if (!t)
		return;
	for (i = 0; i < t->nbuckets; i++) {
		struct node *n = t->by_nodeid[i], *next;

		for (; n; n = next) {
			next = n->next_nodeid;
			free(n);
		}
	}
	free(t->by_nodeid);
	free(t->by_id);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static struct node *find_id(struct casfs_inodes *t, const unsigned char *id)
{
	struct node *n = t->by_id[hash_id(id, t->nbuckets)];

	while (n && memcmp(n->id, id, CASFS_ID_LEN))
		n = n->next_id;
	return n;
}

static struct node *find_nodeid(struct casfs_inodes *t, uint64_t nodeid)
{
	struct node *n = t->by_nodeid[hash_nodeid(nodeid, t->nbuckets)];

	while (n && n->nodeid != nodeid)
		n = n->next_nodeid;
	return n;
}

int casfs_inodes_ref(struct casfs_inodes *t, const unsigned char *id, uint64_t *nodeid)
{
	struct node *n;
	int rc = CAS_OK;

	pthread_mutex_lock(&t->lock);
	n = find_id(t, id);
	if (!n) {
		n = calloc(1, sizeof(*n));
		if (!n) {
			rc = CAS_ENOMEM;
			goto out_unlock;
		}
		n->nodeid = t->next_nodeid++;
		memcpy(n->id, id, CASFS_ID_LEN);
		if (t->count >= t->nbuckets)
			grow(t);
		insert(t, n);
		t->count++;
	}
	if (n->nodeid != ROOT_NODEID)
		n->nlookup++;
	*nodeid = n->nodeid;
out_unlock:
	pthread_mutex_unlock(&t->lock);
	return rc;
}

bool casfs_inodes_get(struct casfs_inodes *t, uint64_t nodeid, unsigned char *id)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = find_nodeid(t, nodeid);
	if (n)
		memcpy(id, n->id, CASFS_ID_LEN);
	pthread_mutex_unlock(&t->lock);
	return n != NULL;
}

void casfs_inodes_set_attr(struct casfs_inodes *t, const unsigned char *id, const struct stat *attr)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = find_id(t, id);
	if (n) {
		n->attr = *attr;
		n->has_attr = true;
	}
	pthread_mutex_unlock(&t->lock);
}

bool casfs_inodes_get_attr(struct casfs_inodes *t, const unsigned char *id, struct stat *attr)
{
	struct node *n;
	bool found;

	pthread_mutex_lock(&t->lock);
	n = find_id(t, id);
	found = n && n->has_attr;
	if (found)
		*attr = n->attr;
	pthread_mutex_unlock(&t->lock);
	return found;
}

static void unlink_node(struct casfs_inodes *t, struct node *n)
{
	struct node **p = &t->by_nodeid[hash_nodeid(n->nodeid, t->nbuckets)];

	while (*p != n)
		p = &(*p)->next_nodeid;
	*p = n->next_nodeid;
	p = &t->by_id[hash_id(n->id, t->nbuckets)];
	while (*p != n)
		p = &(*p)->next_id;
	*p = n->next_id;
}

void casfs_inodes_forget(struct casfs_inodes *t, uint64_t nodeid, uint64_t count)
{
	struct node *n;

	if (nodeid == ROOT_NODEID)
		return;
	pthread_mutex_lock(&t->lock);
	n = find_nodeid(t, nodeid);
	if (n) {
		n->nlookup = count >= n->nlookup ? 0 : n->nlookup - count;
		if (n->nlookup == 0 && n->nopen == 0) {
			unlink_node(t, n);
			t->count--;
			free(n);
		}
	}
	pthread_mutex_unlock(&t->lock);
}

bool casfs_inodes_open(struct casfs_inodes *t, const unsigned char *id)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = find_id(t, id);
	if (!n) {
		/* A create's handle, counted before its reply registers the
		 * node: the node waits for it, with no lookup yet. */
		n = calloc(1, sizeof(*n));
		if (n) {
			n->nodeid = t->next_nodeid++;
			memcpy(n->id, id, CASFS_ID_LEN);
			if (t->count >= t->nbuckets)
				grow(t);
			insert(t, n);
			t->count++;
		}
	}
	if (n)
		n->nopen++;
	pthread_mutex_unlock(&t->lock);
	return n != NULL;
}

bool casfs_inodes_close(struct casfs_inodes *t, const unsigned char *id)
{
	struct node *n;
	bool last = false;

	pthread_mutex_lock(&t->lock);
	n = find_id(t, id);
	if (n && n->nopen) {
		n->nopen--;
		last = n->nopen == 0 && n->held;
		if (last)
			n->held = false;
		if (n->nopen == 0 && n->nlookup == 0 && n->nodeid != ROOT_NODEID) {
			unlink_node(t, n);
			t->count--;
			free(n);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return last;
}

bool casfs_inodes_hold(struct casfs_inodes *t, const unsigned char *id)
{
	struct node *n;
	bool open;

	pthread_mutex_lock(&t->lock);
	n = find_id(t, id);
	open = n && n->nopen;
	if (open)
		n->held = true;
	pthread_mutex_unlock(&t->lock);
	return open;
}

size_t casfs_inodes_count(struct casfs_inodes *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->count;
	pthread_mutex_unlock(&t->lock);
	return n;
}

bool casfs_inodes_is_root(const unsigned char *id)
{
	return memcmp(id, root_id, CASFS_ID_LEN) == 0;
}

void casfs_inodes_key(const unsigned char *id, char *key)
{
	casfs_record_key(id, key);
}

uint64_t casfs_inodes_ino(const unsigned char *id)
{
	uint64_t v = 0;
	size_t i;

	if (casfs_inodes_is_root(id))
		return 1;
	for (i = 0; i < 8; i++)
		v = v << 8 | id[i];
	return v > 1 ? v : v + 2;
}

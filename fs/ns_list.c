/* ns_list.c - listing a directory's entries over its buckets (ns.h:
 * casfs_ns_list, casfs_ns_readdir; fs/FORMAT.md, "Directories"). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cas/cas.h>

#include "ns_impl.h"
#include "txn.h"

/* Entries gathered from buckets: those at or past a place. */
struct gather {
	struct casfs_dirent *ents;
	size_t n, cap;
	uint64_t *order;
};

static int gather_cb(void *arg, const struct casfs_record *rec, uint64_t from)
{
	struct gather *g = arg;
	size_t i;

	for (i = 0; i < rec->nent; i++) {
		const struct casfs_dirent *e = &rec->ents[i];
		uint64_t o = ns_name_order(e->name);

		if (o < from)
			continue;
		if (g->n == g->cap) {
			size_t cap = g->cap ? 2 * g->cap : 64;
			struct casfs_dirent *ents = realloc(g->ents, cap * sizeof(*ents));
			uint64_t *order;

			if (!ents)
				return -ENOMEM;
			g->ents = ents;
			order = realloc(g->order, cap * sizeof(*order));
			if (!order)
				return -ENOMEM;
			g->order = order;
			g->cap = cap;
		}
		g->ents[g->n] = *e;
		g->ents[g->n].name = strdup(e->name);
		if (!g->ents[g->n].name)
			return -ENOMEM;
		g->order[g->n++] = o;
	}
	return 0;
}

static void gather_clear(struct gather *g)
{
	size_t i;

	for (i = 0; i < g->n; i++)
		free(g->ents[i].name);
	free(g->ents);
	free(g->order);
	memset(g, 0, sizeof(*g));
}

int casfs_ns_list(struct casfs_ns *ns, const unsigned char *id, struct casfs_record *rec,
		  uint64_t *version)
{
	struct gather g = {0};
	int rc;

	rc = casfs_ns_load(ns, id, rec, version);
	if (rc)
		return rc;
	if (rec->type != CASFS_DIR) {
		casfs_record_clear(rec);
		return -ENOTDIR;
	}
	if (!rec->depth)
		return 0;
	rc = ns_walk(ns, id, 0, gather_cb, &g);
	if (rc) {
		gather_clear(&g);
		casfs_record_clear(rec);
		return rc;
	}
	for (size_t i = 0; i < rec->nent; i++)
		free(rec->ents[i].name);
	free(rec->ents);
	rec->ents = g.ents;
	rec->nent = g.n;
	free(g.order);
	return 0;
}

/* A readdir place from a listing order: past ., .. (1, 2), fits off_t. */
static uint64_t place_of(uint64_t order)
{
	return (order >> 2) + 3;
}

struct placed {
	uint64_t order;
	size_t i;
};

static int placed_cmp(const void *a, const void *b)
{
	const struct placed *x = a, *y = b;

	return x->order < y->order ? -1 : x->order > y->order;
}

/* Readdir: one bucket at a time, in listing order. */
struct rd {
	int (*cb)(void *arg, const struct casfs_dirent *e, uint64_t place);
	void *arg;
	uint64_t after; /* places up to this one were listed */
	struct gather g;
	struct placed *by;
};

static int rd_cb(void *arg, const struct casfs_record *rec, uint64_t from)
{
	struct rd *r = arg;
	size_t i, j;
	int rc;

	r->g.n = 0;
	rc = gather_cb(&r->g, rec, from);
	if (!rc && r->g.n > 1) {
		/* By place within the bucket. */
		r->by = malloc(r->g.n * sizeof(*r->by));
		if (!r->by)
			rc = -ENOMEM;
		for (i = 0; !rc && i < r->g.n; i++)
			r->by[i] = (struct placed){r->g.order[i], i};
		if (!rc)
			qsort(r->by, r->g.n, sizeof(*r->by), placed_cmp);
	}
	for (i = 0; !rc && i < r->g.n; i++) {
		j = r->by ? r->by[i].i : i;
		if (place_of(r->g.order[j]) > r->after)
			rc = r->cb(r->arg, &r->g.ents[j], place_of(r->g.order[j]));
	}
	free(r->by);
	r->by = NULL;
	for (i = 0; i < r->g.n; i++)
		free(r->g.ents[i].name);
	r->g.n = 0;
	return rc;
}
int casfs_ns_readdir(struct casfs_ns *ns, const unsigned char *dir, uint64_t from,
		     int (*cb)(void *arg, const struct casfs_dirent *e, uint64_t place), void *arg)
{
	struct rd r = {cb, arg, from, {0}, NULL};
	int rc;

	rc = ns_walk(ns, dir, from > 2 ? (from - 3) << 2 : 0, rd_cb, &r);
	gather_clear(&r.g);
	return rc;
}

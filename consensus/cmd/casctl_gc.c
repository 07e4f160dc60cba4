/* casctl_gc.c - casctl gc: the collector (PROTOCOL.md, "Deletion", "The
 * purge") over every key the members list, with the grace waited once
 * for the whole run, and the sources of garbage applications plug in
 * (casctl.h, struct casctl_gc_source). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cas/admin.h>
#include <cas/client.h>
#include <cas/os.h>

#include "casctl.h"

static const char *prog = "casctl";

/* Keys noted and purged at once (--jobs), by default and at most. */
#define GC_JOBS	    16
#define GC_JOBS_MAX 64

/* Longest grace --grace takes: a week. */
#define GRACE_MAX_S (7.0 * 86400.0)

/* The sources of garbage casctl gc asks. To plug one in, add its address
 * before the NULL (casctl.h). */
const struct casctl_gc_source *const casctl_gc_sources[] = {
	&casctl_gc_casfs,
	NULL,
};

/* One key of the run. */
struct candidate {
	char *key;
	struct cas_tombstone tomb;
};

/* What one node said of itself before and after. */
struct node_use {
	const char *url; /* borrowed from the configuration */
	bool before_ok, after_ok;
	struct cas_node_health before, after;
};

struct gc {
	struct cas_client *c;
	const char *seeds; /* for the workers' own clients */
	const struct cas_client_config *ccfg;
	unsigned jobs;
	pthread_mutex_t lock; /* guards what follows, while workers run */
	size_t next;	      /* the next key or candidate a worker takes */
	const char *down;     /* the node that stopped the purges */
	unsigned timeout_ms;
	unsigned grace_ms;
	bool dry_run;
	struct cas_cluster_config cfg;
	struct node_use *nodes;
	size_t n_nodes;
	struct candidate *cands;
	size_t n_cands, cap_cands;
	/* Counts for the summary and the exit status. */
	size_t listed, live, spared, purged, written, left, left_unavailable;
	size_t deleted; /* by the sources */
};

/* Parses SECONDS (>= 0, fractions allowed) into ms, rounded up. */
static bool parse_grace(const char *s, unsigned *ms)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(d >= 0) || d > GRACE_MAX_S)
		return false;
	*ms = (unsigned)(d * 1000.0);
	if ((double)*ms < d * 1000.0)
		(*ms)++;
	return true;
}

/* Asks every node of the configuration (members and joining) for its
 * use; after: into the after fields. */
static void ask_nodes(struct gc *g, bool after)
{
	for (size_t i = 0; i < g->n_nodes; i++) {
		struct node_use *u = &g->nodes[i];
		struct cas_node_health *h = after ? &u->after : &u->before;
		char why[256] = "";
		bool ok;

		ok = cas_admin_health(u->url, casctl_auth, g->timeout_ms, h, why, sizeof(why)) ==
			     CAS_OK &&
		     h->answered && h->http_status == 200;
		if (after)
			u->after_ok = ok;
		else
			u->before_ok = ok;
	}
}

/* The first node of the configuration that does not answer now, or NULL. */
static const char *node_down(struct gc *g)
{
	for (size_t i = 0; i < g->n_nodes; i++) {
		struct cas_node_health h;
		char why[256];

		if (cas_admin_health(g->nodes[i].url, casctl_auth, g->timeout_ms, &h, why,
				     sizeof(why)) != CAS_OK ||
		    !h.answered || h.http_status != 200)
			return g->nodes[i].url;
	}
	return NULL;
}

static int load_nodes(struct gc *g)
{
	char why[256];
	size_t n;
	int rc;

	rc = cas_client_config(g->c, &g->cfg, why, sizeof(why));
	if (rc != CAS_OK) {
		fprintf(stderr, "%s: gc: %s: %s\n", prog, cas_strerror(rc), why);
		return rc;
	}
	n = g->cfg.n_members + g->cfg.n_joining;
	g->nodes = calloc(n ? n : 1, sizeof(*g->nodes));
	if (g->nodes == NULL)
		return CAS_ENOMEM;
	for (size_t i = 0; i < g->cfg.n_members; i++)
		g->nodes[g->n_nodes++].url = g->cfg.members[i].url;
	for (size_t i = 0; i < g->cfg.n_joining; i++)
		g->nodes[g->n_nodes++].url = g->cfg.joining[i].url;
	return CAS_OK;
}

/* Reports rc for key (a failure of c's, in step what) as a key left. */
static void report_left(struct gc *g, struct cas_client *c, const char *key, int rc,
			const char *what)
{
	char why[256] = "";

	cas_client_errmsg(c, why, sizeof(why));
	/* A purge needs every node, not a majority. */
	printf("left %s: %s: %s%s%s\n", key, what,
	       rc == CAS_EUNAVAILABLE && strcmp(what, "purging") == 0
		       ? "a node did not answer in time"
		       : cas_strerror(rc),
	       why[0] ? ": " : "", why);
	pthread_mutex_lock(&g->lock);
	g->left++;
	if (rc == CAS_EUNAVAILABLE)
		g->left_unavailable++;
	pthread_mutex_unlock(&g->lock);
}

/* The sources' garbage: deleted (or, dry, listed) before the keys are
 * noted, so that they are purged in this run. */
static int run_sources(struct gc *g)
{
	for (size_t s = 0; casctl_gc_sources[s] != NULL; s++) {
		const struct casctl_gc_source *src = casctl_gc_sources[s];
		char why[256] = "", **keys = NULL;
		size_t n = 0;
		int rc;

		if (src->list == NULL)
			continue;
		rc = src->list(src->arg, g->c, g->timeout_ms, &keys, &n, why, sizeof(why));
		if (rc != CAS_OK) {
			fprintf(stderr, "%s: gc: %s: listing garbage: %s: %s\n", prog, src->name,
				cas_strerror(rc), why);
			return rc;
		}
		for (size_t i = 0; i < n; i++) {
			if (g->dry_run) {
				printf("garbage %s (%s)\n", keys[i], src->name);
				continue;
			}
			rc = cas_delete(g->c, keys[i], src->still_garbage, src->arg, g->timeout_ms,
					NULL);
			if (rc == CAS_OK) {
				printf("deleted %s (%s)\n", keys[i], src->name);
				g->deleted++;
			} else if (rc == CAS_EVERSION) {
				printf("kept %s (%s): in use again\n", keys[i], src->name);
			} else {
				report_left(g, g->c, keys[i], rc, "deleting");
			}
		}
		cas_keys_free(keys, n);
	}
	return CAS_OK;
}

/* Every key a member lists, sorted, each once. */
static int list_keys(struct gc *g, char ***all, size_t *n_all)
{
	char why[256];
	int rc;

	rc = cas_client_keys_all(g->c, g->timeout_ms, all, n_all, why, sizeof(why));
	if (rc != CAS_OK)
		fprintf(stderr, "%s: gc: listing keys: %s: %s\n", prog, cas_strerror(rc), why);
	return rc;
}

/* Whether a source asks to leave key alone in this run. */
static const char *spared_by(const char *key)
{
	for (size_t s = 0; casctl_gc_sources[s] != NULL; s++) {
		const struct casctl_gc_source *src = casctl_gc_sources[s];

		if (src->spare != NULL && src->spare(src->arg, key))
			return src->name;
	}
	return NULL;
}

/* Step 0 for key (taken: kept as a candidate or freed). Dry, a read,
 * which changes nothing, stands for the note. */
static int note(struct gc *g, struct cas_client *c, char *key)
{
	struct cas_tombstone tomb;
	const char *by;
	bool absent = false;
	int rc;

	by = spared_by(key);
	if (by != NULL) {
		printf("spared %s (%s)\n", key, by);
		pthread_mutex_lock(&g->lock);
		g->spared++;
		pthread_mutex_unlock(&g->lock);
		goto out_free;
	}
	if (g->dry_run) {
		struct cas_value v;

		rc = cas_read(c, key, g->timeout_ms, &v);
		absent = rc == CAS_OK && v.version == 0;
		cas_value_clear(&v);
		memset(&tomb, 0, sizeof(tomb));
	} else {
		rc = cas_collect_note(c, key, g->timeout_ms, &absent, &tomb);
	}
	if (rc != CAS_OK) {
		report_left(g, c, key, rc, "reading");
		goto out_free;
	}
	pthread_mutex_lock(&g->lock);
	if (!absent) {
		g->live++;
		pthread_mutex_unlock(&g->lock);
		goto out_free;
	}
	if (g->n_cands == g->cap_cands) {
		size_t cap = g->cap_cands ? 2 * g->cap_cands : 64;
		struct candidate *p = realloc(g->cands, cap * sizeof(*p));

		if (p == NULL) {
			pthread_mutex_unlock(&g->lock);
			fprintf(stderr, "%s: gc: out of memory\n", prog);
			free(key);
			return CAS_ENOMEM;
		}
		g->cands = p;
		g->cap_cands = cap;
	}
	g->cands[g->n_cands].key = key;
	g->cands[g->n_cands].tomb = tomb;
	g->n_cands++;
	pthread_mutex_unlock(&g->lock);
	if (g->dry_run)
		printf("candidate %s\n", key);
	return CAS_OK;
out_free:
	free(key);
	return CAS_OK;
}

/* Counts one more of *what under g's lock. */
static void count(struct gc *g, size_t *what)
{
	pthread_mutex_lock(&g->lock);
	(*what)++;
	pthread_mutex_unlock(&g->lock);
}

/* Steps 1 and 2 for candidate k. g->down: the node that stopped the run
 * (then k is left without a try). */
static void purge(struct gc *g, struct cas_client *c, const struct candidate *k)
{
	struct cas_purge_result res;
	struct cas_value v;
	const char *down;
	int rc;

	pthread_mutex_lock(&g->lock);
	down = g->down;
	if (down != NULL) {
		g->left++;
		g->left_unavailable++;
	}
	pthread_mutex_unlock(&g->lock);
	if (down != NULL) {
		printf("left %s: node %s does not answer\n", k->key, down);
		return;
	}
	rc = cas_collect_purge(c, k->key, &k->tomb, g->grace_ms, g->timeout_ms, &res);
	if (rc == CAS_OK && res.kept == 0) {
		printf("purged %s\n", k->key);
		count(g, &g->purged);
		return;
	}
	if (rc == CAS_OK || rc == CAS_EVERSION) {
		/* Not that tombstone any more, or some nodes hold a later
		 * ballot than the write-back's: written since the note
		 * (nothing to purge: it lives), or deleted again or written
		 * back by another round (a later run purges it). */
		rc = cas_read(c, k->key, g->timeout_ms, &v);
		if (rc == CAS_OK && v.version > 0) {
			printf("live %s: written since it was noted\n", k->key);
			count(g, &g->written);
		} else {
			printf("left %s: changed since it was noted (deleted again, or "
			       "written back); the next run purges it\n",
			       k->key);
			count(g, &g->left);
		}
		cas_value_clear(&v);
		return;
	}
	report_left(g, c, k->key, rc, "purging");
	if (rc == CAS_EUNAVAILABLE) {
		down = node_down(g); /* NULL: the key alone (contention) */
		pthread_mutex_lock(&g->lock);
		if (g->down == NULL)
			g->down = down;
		pthread_mutex_unlock(&g->lock);
	}
}

/* The workers: each has a client of its own (so that a failure's reason
 * is its own key's) and takes keys, then candidates, in turn. */
struct worker {
	struct gc *g;
	struct cas_client *c;
	char **keys; /* the note phase's, taken by note; else NULL */
	size_t n_keys;
	int rc; /* the note phase's first error */
	pthread_t thread;
};

/* Takes the next index below n, or returns false. */
static bool take(struct gc *g, size_t n, size_t *i)
{
	bool ok;

	pthread_mutex_lock(&g->lock);
	ok = g->next < n;
	if (ok)
		*i = g->next++;
	pthread_mutex_unlock(&g->lock);
	return ok;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	size_t i;

	if (w->keys != NULL) {
		while (w->rc == CAS_OK && take(w->g, w->n_keys, &i)) {
			w->rc = note(w->g, w->c, w->keys[i]);
			w->keys[i] = NULL;
		}
	} else {
		while (take(w->g, w->g->n_cands, &i))
			purge(w->g, w->c, &w->g->cands[i]);
	}
	return NULL;
}

/* Runs the note phase over keys (taken: each is noted or freed), or with
 * keys NULL the purge phase over the candidates, on up to g->jobs
 * threads (the first on g's client). The first error of a note. */
static int run_workers(struct gc *g, struct worker *ws, size_t n_ws, char **keys, size_t n_keys)
{
	size_t started = 0;
	int rc = CAS_OK;

	g->next = 0;
	for (size_t i = 0; i < n_ws; i++) {
		ws[i].keys = keys;
		ws[i].n_keys = n_keys;
		ws[i].rc = CAS_OK;
		if (i > 0 && pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0)
			break;
		started = i + 1;
	}
	worker_main(&ws[0]);
	for (size_t i = 1; i < started; i++)
		pthread_join(ws[i].thread, NULL);
	for (size_t i = 0; i < started; i++)
		if (rc == CAS_OK)
			rc = ws[i].rc;
	return rc;
}

/* The workers' clients: ws[0] uses g's; the others open their own (as
 * many as open, at least one worker in all). */
static size_t open_workers(struct gc *g, struct worker *ws)
{
	char why[256];
	size_t n = 1;

	ws[0].g = g;
	ws[0].c = g->c;
	for (; n < g->jobs; n++) {
		ws[n].g = g;
		if (cas_client_open(g->seeds, g->ccfg, &ws[n].c, why, sizeof(why)) != CAS_OK)
			break;
	}
	return n;
}

static void print_use(const struct gc *g)
{
	for (size_t i = 0; i < g->n_nodes; i++) {
		const struct node_use *u = &g->nodes[i];

		if (!u->before_ok || !u->after_ok) {
			printf("node %s: %s\n", u->url,
			       !u->before_ok ? "did not answer before" : "did not answer after");
			continue;
		}
		printf("node %s: keys %" PRIu64 " -> %" PRIu64 ", bytes %" PRIu64 " -> %" PRIu64
		       "\n",
		       u->url, u->before.keys, u->after.keys, u->before.bytes + u->before.log_used,
		       u->after.bytes + u->after.log_used);
	}
}

int casctl_gc(struct cas_client *c, const char *nodes, const struct cas_client_config *ccfg,
	      unsigned timeout_ms, int argc, char **argv)
{
	struct gc g = {.c = c,
		       .seeds = nodes,
		       .ccfg = ccfg,
		       .jobs = GC_JOBS,
		       .timeout_ms = timeout_ms,
		       .grace_ms = CAS_COLLECT_GRACE_MS,
		       .lock = PTHREAD_MUTEX_INITIALIZER};
	struct worker ws[GC_JOBS_MAX] = {0};
	size_t n_ws = 0;
	char **keys = NULL;
	size_t n_keys = 0, i;
	uint64_t until;
	bool begun = false;
	int rc, status;

	for (int a = 0; a < argc; a++) {
		if (strcmp(argv[a], "--dry-run") == 0) {
			g.dry_run = true;
		} else if (strcmp(argv[a], "--jobs") == 0 && a + 1 < argc) {
			char *end;
			unsigned long j;

			errno = 0;
			j = strtoul(argv[++a], &end, 10);
			if (errno != 0 || end == argv[a] || *end != '\0' || j < 1 ||
			    j > GC_JOBS_MAX) {
				fprintf(stderr, "%s: gc: bad --jobs \"%s\": want 1 to %d\n", prog,
					argv[a], GC_JOBS_MAX);
				return EXIT_USAGE;
			}
			g.jobs = (unsigned)j;
		} else if (strcmp(argv[a], "--grace") == 0 && a + 1 < argc) {
			if (!parse_grace(argv[++a], &g.grace_ms)) {
				fprintf(stderr,
					"%s: gc: bad --grace \"%s\": want seconds >= 0, at most "
					"a week\n",
					prog, argv[a]);
				return EXIT_USAGE;
			}
		} else {
			fprintf(stderr, "%s: gc: unknown argument \"%s\" (see --help)\n", prog,
				argv[a]);
			return EXIT_USAGE;
		}
	}

	rc = load_nodes(&g);
	if (rc != CAS_OK) {
		status = casctl_exit_code(rc);
		goto out_free;
	}
	ask_nodes(&g, false);
	for (i = 0; casctl_gc_sources[i] != NULL; i++)
		if (casctl_gc_sources[i]->begin != NULL)
			casctl_gc_sources[i]->begin(casctl_gc_sources[i]->arg, g.grace_ms,
						    g.dry_run);
	begun = true;
	rc = run_sources(&g);
	if (rc != CAS_OK) {
		status = casctl_exit_code(rc);
		goto out_free;
	}
	rc = list_keys(&g, &keys, &n_keys);
	if (rc != CAS_OK) {
		status = casctl_exit_code(rc);
		goto out_free;
	}
	g.listed = n_keys;
	n_ws = open_workers(&g, ws);
	rc = run_workers(&g, ws, n_ws, keys, n_keys);
	for (i = 0; i < n_keys; i++)
		free(keys[i]); /* those no worker took, after an error */
	free(keys);
	if (rc != CAS_OK) {
		status = casctl_exit_code(rc);
		goto out_free;
	}

	if (!g.dry_run && g.n_cands > 0) {
		/* Once for the run: every candidate was noted before now. */
		until = cas_os_monotonic_ms() + g.grace_ms;
		if (g.grace_ms > 0)
			fprintf(stderr, "%s: gc: %zu candidates; waiting %.3f s (the grace)\n",
				prog, g.n_cands, g.grace_ms / 1000.0);
		for (uint64_t now = cas_os_monotonic_ms(); now < until; now = cas_os_monotonic_ms())
			cas_os_sleep_ms((unsigned)(until - now));
		g.down = node_down(&g);
		run_workers(&g, ws, n_ws, NULL, 0);
	}
	ask_nodes(&g, true);
	print_use(&g);
	printf("gc: %zu keys listed, %zu live, %zu %s, %zu purged, %zu written since, %zu "
	       "left\n",
	       g.listed, g.live, g.n_cands, g.dry_run ? "candidates (dry run)" : "candidates",
	       g.purged, g.written, g.left);
	if (g.deleted > 0 || g.spared > 0)
		printf("gc: %zu deleted by the sources, %zu spared\n", g.deleted, g.spared);
	status = g.left == 0 ? 0 : g.left_unavailable > 0 ? EXIT_UNAVAILABLE : EXIT_OTHER;
	if (fflush(stdout) != 0) {
		fprintf(stderr, "%s: gc: writing stdout: %s\n", prog, strerror(errno));
		status = EXIT_OTHER;
	}

out_free:
	for (i = 1; i < n_ws; i++)
		cas_client_close(ws[i].c);
	for (i = 0; begun && casctl_gc_sources[i] != NULL; i++)
		if (casctl_gc_sources[i]->end != NULL)
			casctl_gc_sources[i]->end(casctl_gc_sources[i]->arg);
	for (i = 0; i < g.n_cands; i++)
		free(g.cands[i].key);
	free(g.cands);
	free(g.nodes);
	cas_cluster_config_clear(&g.cfg);
	return status;
}

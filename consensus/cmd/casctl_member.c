/* casctl_member.c - casctl member: listing the members and changing them
 * by the steps of PROTOCOL.md ("Changing the members"), resumable from
 * what the nodes record. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cas/admin.h>
#include <cas/client.h>
#include <cas/os.h>

#include "casctl.h"

static const char *prog = "casctl";

/* Keys asked of a node's /v1/keys at a time. */
#define KEYS_PAGE 1000u

/* ---- casctl member ---- */

enum change_kind { ADD, REMOVE, REPLACE };

/* A change under way: the configuration it starts from (cur, epoch E,
 * members O), the joint one (E+1, O and N) and the stable one (E+2, N),
 * and what every node of O and N says of itself. */
struct change {
	enum change_kind kind;
	const char *a, *b; /* add/remove: a; replace: a (OLD), b (NEW) */
	unsigned timeout_ms;
	struct cas_client *client;
	struct cas_cluster_config cur, joint, stable;
};

static bool has_id(const struct cas_cluster_node *set, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (set[i].id == id)
			return true;
	return false;
}

/* Whether the joint configuration j is the change c asks for. */
static bool is_change(const struct change *c, const struct cas_cluster_config *j)
{
	const struct cas_cluster_node *added = NULL, *removed = NULL;
	size_t n_added = 0, n_removed = 0;

	for (size_t i = 0; i < j->n_joining; i++)
		if (!has_id(j->members, j->n_members, j->joining[i].id))
			added = &j->joining[i], n_added++;
	for (size_t i = 0; i < j->n_members; i++)
		if (!has_id(j->joining, j->n_joining, j->members[i].id))
			removed = &j->members[i], n_removed++;
	switch (c->kind) {
	case ADD:
		return n_added == 1 && n_removed == 0 && strcmp(added->url, c->a) == 0;
	case REMOVE:
		return n_added == 0 && n_removed == 1 && strcmp(removed->url, c->a) == 0;
	case REPLACE:
		return n_added == 1 && n_removed == 1 && strcmp(removed->url, c->a) == 0 &&
		       strcmp(added->url, c->b) == 0;
	}
	return false;
}

static int set_add(struct cas_cluster_node **set, size_t *n, uint64_t id, const char *url)
{
	struct cas_cluster_node *p = realloc(*set, (*n + 1) * sizeof(**set));

	if (p == NULL)
		return CAS_ENOMEM;
	*set = p;
	p[*n].id = id;
	p[*n].url = strdup(url);
	if (p[*n].url == NULL)
		return CAS_ENOMEM;
	(*n)++;
	return CAS_OK;
}

/* The configuration of epoch with members from (with joining to, when
 * to is not NULL). */
static int make_config(const struct cas_cluster_config *base, uint64_t epoch,
		       const struct cas_cluster_node *from, size_t n_from,
		       const struct cas_cluster_node *to, size_t n_to,
		       struct cas_cluster_config *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->cluster, base->cluster, sizeof(out->cluster));
	out->epoch = epoch;
	for (size_t i = 0; i < n_from; i++)
		if (set_add(&out->members, &out->n_members, from[i].id, from[i].url) != CAS_OK)
			goto out_oom;
	for (size_t i = 0; to != NULL && i < n_to; i++)
		if (set_add(&out->joining, &out->n_joining, to[i].id, to[i].url) != CAS_OK)
			goto out_oom;
	return CAS_OK;
out_oom:
	cas_cluster_config_clear(out);
	return CAS_ENOMEM;
}

/* Counts the nodes of set that are themselves at their URL (same id, of
 * cfg's cluster) and hold an epoch of at least epoch. */
static size_t count_at(const struct cas_cluster_node *set, size_t n,
		       const struct cas_cluster_config *cfg, uint64_t epoch, unsigned timeout_ms)
{
	struct casctl_probe p;
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		casctl_probe(set[i].url, timeout_ms, &p);
		k += p.state == CAS_NODE_READY && p.id == set[i].id &&
		     strcmp(p.cfg.cluster, cfg->cluster) == 0 && p.cfg.epoch >= epoch;
		cas_cluster_config_clear(&p.cfg);
	}
	return k;
}

/* Sends cfg to every node of its members and joining (each URL once),
 * then checks which hold it: done when a majority of the members (when
 * need_o) and of the joining nodes, or of the members when cfg is stable
 * and need_o is false... see the callers. Returns whether the majorities
 * took it; *o_ok and *n_ok count the members and joining nodes that did. */
static bool install(const struct cas_cluster_config *cfg, const struct cas_cluster_node *o,
		    size_t n_o, const struct cas_cluster_node *nn, size_t n_n, unsigned timeout_ms,
		    size_t *o_ok, size_t *n_ok)
{
	char why[256];

	for (size_t i = 0; i < n_o + n_n; i++) {
		const char *url = i < n_o ? o[i].url : nn[i - n_o].url;
		bool sent = false;

		for (size_t j = 0; j < i; j++)
			sent |= strcmp(url, j < n_o ? o[j].url : nn[j - n_o].url) == 0;
		if (sent)
			continue;
		if (cas_admin_set_config(url, casctl_auth, cfg, timeout_ms, why, sizeof(why)) !=
		    CAS_OK)
			fprintf(stderr, "%s: member: %s\n", prog, why);
	}
	*o_ok = count_at(o, n_o, cfg, cfg->epoch, timeout_ms);
	*n_ok = count_at(nn, n_n, cfg, cfg->epoch, timeout_ms);
	return *o_ok >= n_o / 2 + 1 && (n_n == 0 || *n_ok >= n_n / 2 + 1);
}

/* Step 3: every key that a majority of O's nodes hold, each written back
 * with a full round in the joint configuration. */
static int rescan(struct change *c)
{
	const struct cas_cluster_config *j = &c->joint;
	char **all = NULL, **got, why[256], *after = NULL;
	size_t n_all = 0, n_got, listed = 0, touched = 0;
	bool more;
	int rc;

	rc = cas_client_use_config(c->client, j, why, sizeof(why));
	if (rc != CAS_OK) {
		fprintf(stderr, "%s: member: rescan: %s\n", prog, why);
		return casctl_exit_code(rc);
	}
	for (size_t i = 0; i < j->n_members; i++) {
		bool ok = true;

		free(after);
		after = NULL;
		do {
			rc = cas_admin_keys(j->members[i].url, casctl_auth, j, after, KEYS_PAGE,
					    c->timeout_ms, &got, &n_got, &more, why, sizeof(why));
			if (rc != CAS_OK) {
				ok = false;
				break;
			}
			free(after);
			after = n_got > 0 ? strdup(got[n_got - 1]) : NULL;
			if (n_got > 0 && after == NULL) {
				cas_keys_free(got, n_got);
				rc = CAS_ENOMEM;
				goto out_free;
			}
			rc = cas_keys_append(&all, &n_all, got, n_got);
			if (rc != CAS_OK)
				goto out_free;
		} while (more && after != NULL);
		if (ok)
			listed++;
	}
	if (listed < j->n_members / 2 + 1) {
		fprintf(stderr,
			"%s: member: rescan: only %zu of %zu members listed their keys (need a "
			"majority): run the command again\n",
			prog, listed, j->n_members);
		rc = CAS_EUNAVAILABLE;
		goto out_free;
	}
	n_all = cas_keys_sort_unique(all, n_all);
	for (size_t i = 0; i < n_all; i++) {
		rc = cas_touch(c->client, all[i], c->timeout_ms, NULL);
		if (rc != CAS_OK) {
			cas_client_errmsg(c->client, why, sizeof(why));
			fprintf(stderr,
				"%s: member: rescan: key %s: %s: %s (run the command again)\n",
				prog, all[i], cas_strerror(rc), why);
			goto out_free;
		}
		touched++;
	}
	fprintf(stderr, "%s: member: rescanned %zu keys\n", prog, touched);
	rc = CAS_OK;
out_free:
	free(after);
	cas_keys_free(all, n_all);
	return rc == CAS_OK ? 0 : casctl_exit_code(rc);
}

/* Steps 2 to 4 from the joint configuration c->joint. */
static int finish(struct change *c)
{
	const struct cas_cluster_config *j = &c->joint;
	size_t o_ok, n_ok;
	int st;

	if (!install(j, j->members, j->n_members, j->joining, j->n_joining, c->timeout_ms, &o_ok,
		     &n_ok)) {
		fprintf(stderr,
			"%s: member: the joint configuration (epoch %llu) reached %zu of %zu "
			"members and %zu of %zu new members; a majority of each is needed: run "
			"the command again\n",
			prog, (unsigned long long)j->epoch, o_ok, j->n_members, n_ok, j->n_joining);
		return EXIT_UNAVAILABLE;
	}
	st = rescan(c);
	if (st != 0)
		return st;
	if (make_config(j, j->epoch + 1, j->joining, j->n_joining, NULL, 0, &c->stable) != CAS_OK)
		return EXIT_OTHER;
	if (!install(&c->stable, j->joining, j->n_joining, j->members, j->n_members, c->timeout_ms,
		     &n_ok, &o_ok)) {
		fprintf(stderr,
			"%s: member: the new configuration (epoch %llu) reached %zu of %zu members "
			"(a majority is needed): run the command again\n",
			prog, (unsigned long long)c->stable.epoch, n_ok, j->n_joining);
		return EXIT_UNAVAILABLE;
	}
	printf("epoch %llu:", (unsigned long long)c->stable.epoch);
	for (size_t i = 0; i < c->stable.n_members; i++)
		printf(" %s", c->stable.members[i].url);
	printf("\n");
	return 0;
}

/* Step 1 for the node of N that is not in O, when it is still empty. */
static int join_new(struct change *c)
{
	const struct cas_cluster_config *j = &c->joint;
	char why[256];
	struct casctl_probe p;
	int st = 0;

	for (size_t i = 0; i < j->n_joining; i++) {
		if (has_id(j->members, j->n_members, j->joining[i].id))
			continue;
		casctl_probe(j->joining[i].url, c->timeout_ms, &p);
		if (p.state == CAS_NODE_UNINITIALIZED) {
			if (cas_admin_join(j->joining[i].url, casctl_auth, j->joining[i].id, j,
					   c->timeout_ms, why, sizeof(why)) != CAS_OK) {
				fprintf(stderr, "%s: member: joining %s: %s\n", prog,
					j->joining[i].url, why);
				st = EXIT_UNAVAILABLE;
			}
		} else if (p.state != CAS_NODE_READY || p.id != j->joining[i].id) {
			fprintf(stderr, "%s: member: new node %s: %s\n", prog, j->joining[i].url,
				p.state == CAS_NODE_READY ? "holds another identity" : p.why);
			st = p.state == CAS_NODE_DOWN ? EXIT_UNAVAILABLE : EXIT_OTHER;
		}
		cas_cluster_config_clear(&p.cfg);
	}
	return st;
}

/* A joint configuration that is not the change asked for and that no
 * majority of O took: undone by a stable configuration of O at the next
 * epoch (nothing can have been chosen in it). */
static int roll_back(struct change *c)
{
	const struct cas_cluster_config *j = &c->cur;
	struct cas_cluster_config r;
	size_t o_ok, n_ok;

	if (count_at(j->members, j->n_members, j, j->epoch, c->timeout_ms) >=
	    j->n_members / 2 + 1) {
		fprintf(stderr,
			"%s: member: another change is under way (epoch %llu) and reached a "
			"majority: run the command that started it again to finish it\n",
			prog, (unsigned long long)j->epoch);
		return EXIT_OTHER;
	}
	if (make_config(j, j->epoch + 1, j->members, j->n_members, NULL, 0, &r) != CAS_OK)
		return EXIT_OTHER;
	if (!install(&r, j->members, j->n_members, j->joining, j->n_joining, c->timeout_ms, &o_ok,
		     &n_ok)) {
		fprintf(stderr,
			"%s: member: rolling back the unfinished change: %zu of %zu members "
			"took epoch %llu (a majority is needed)\n",
			prog, o_ok, j->n_members, (unsigned long long)r.epoch);
		cas_cluster_config_clear(&r);
		return EXIT_UNAVAILABLE;
	}
	fprintf(stderr, "%s: member: rolled back an unfinished change (now epoch %llu)\n", prog,
		(unsigned long long)r.epoch);
	cas_cluster_config_clear(&c->cur);
	c->cur = r;
	return 0;
}

/* From the stable c->cur: checks the change and builds c->joint. Returns
 * -1 when there is nothing to do (said on stderr), else the exit status. */
static int plan(struct change *c)
{
	const struct cas_cluster_config *o = &c->cur;
	struct cas_cluster_node *n = NULL;
	size_t n_n = 0, here;
	const char *new_url = c->kind == ADD ? c->a : c->kind == REPLACE ? c->b : NULL;
	long gone = c->kind == ADD ? -1 : cas_cluster_config_find(o, false, c->a);
	uint64_t id = 0;
	struct casctl_probe p = {0};
	int st = EXIT_OTHER;

	if (c->kind == ADD && cas_cluster_config_find(o, false, c->a) >= 0) {
		fprintf(stderr, "%s: member add: %s is a member already\n", prog, c->a);
		return -1;
	}
	if (c->kind == REMOVE && gone < 0) {
		fprintf(stderr, "%s: member remove: %s is not a member\n", prog, c->a);
		return -1;
	}
	if (c->kind == REMOVE && o->n_members == 1) {
		fprintf(stderr, "%s: member remove: %s is the only member\n", prog, c->a);
		return EXIT_USAGE;
	}
	if (c->kind == REPLACE && gone < 0) {
		if (cas_cluster_config_find(o, false, c->b) >= 0) {
			fprintf(stderr, "%s: member replace: %s is a member and %s is not\n", prog,
				c->b, c->a);
			return -1;
		}
		fprintf(stderr, "%s: member replace: %s is not a member\n", prog, c->a);
		return EXIT_USAGE;
	}
	if (c->kind == REPLACE && strcmp(c->a, c->b) != 0 &&
	    cas_cluster_config_find(o, false, c->b) >= 0) {
		fprintf(stderr, "%s: member replace: %s is a member already\n", prog, c->b);
		return EXIT_USAGE;
	}
	if (new_url != NULL) {
		casctl_probe(new_url, c->timeout_ms, &p);
		if (p.state == CAS_NODE_READY && c->kind == REPLACE && gone >= 0 &&
		    p.id == o->members[gone].id && strcmp(c->a, c->b) == 0) {
			fprintf(stderr,
				"%s: member replace: %s is member %016llx still: nothing to "
				"replace\n",
				prog, c->b, (unsigned long long)p.id);
			st = -1;
			goto out_free;
		}
		if (p.state == CAS_NODE_READY && p.cfg.epoch == o->epoch + 1 &&
		    p.cfg.n_joining > 0 && strcmp(p.cfg.cluster, o->cluster) == 0 &&
		    is_change(c, &p.cfg) && has_id(p.cfg.joining, p.cfg.n_joining, p.id) &&
		    !has_id(o->members, o->n_members, p.id)) {
			/* Step 1 of an interrupted run of this change: the new
			 * node joined with the joint configuration, which no
			 * member took yet. Go on with that configuration (its
			 * new node keeps the id it joined with). */
			fprintf(stderr,
				"%s: member: resuming the change to epoch %llu begun on %s\n", prog,
				(unsigned long long)p.cfg.epoch, new_url);
			st = cas_cluster_config_copy(&c->joint, &p.cfg) == CAS_OK ? 0 : EXIT_OTHER;
			goto out_free;
		}
		if (p.state != CAS_NODE_UNINITIALIZED) {
			if (p.state == CAS_NODE_READY)
				fprintf(stderr,
					"%s: member: node %s is initialized (cluster %s, epoch "
					"%llu): a new node must be empty; nothing changed\n",
					prog, new_url, p.cfg.cluster,
					(unsigned long long)p.cfg.epoch);
			else
				fprintf(stderr, "%s: member: new node: %s; nothing changed\n", prog,
					p.why);
			st = p.state == CAS_NODE_DOWN ? EXIT_UNAVAILABLE : EXIT_OTHER;
			goto out_free;
		}
	}
	here = count_at(o->members, o->n_members, o, o->epoch, c->timeout_ms);
	if (here < o->n_members / 2 + 1) {
		fprintf(stderr,
			"%s: member: only %zu of %zu members answer at epoch %llu (a majority is "
			"needed): nothing changed\n",
			prog, here, o->n_members, (unsigned long long)o->epoch);
		st = EXIT_UNAVAILABLE;
		goto out_free;
	}
	for (size_t i = 0; i < o->n_members; i++)
		if ((long)i != gone &&
		    set_add(&n, &n_n, o->members[i].id, o->members[i].url) != CAS_OK)
			goto out_free_n;
	if (new_url != NULL) {
		do {
			if (casctl_random_id(&id) != CAS_OK)
				goto out_free_n;
		} while (has_id(o->members, o->n_members, id));
		if (set_add(&n, &n_n, id, new_url) != CAS_OK)
			goto out_free_n;
	}
	if (make_config(o, o->epoch + 1, o->members, o->n_members, n, n_n, &c->joint) != CAS_OK)
		goto out_free_n;
	st = 0;
out_free_n:
	for (size_t i = 0; i < n_n; i++)
		free(n[i].url);
	free(n);
out_free:
	cas_cluster_config_clear(&p.cfg);
	return st;
}

static int member_list(struct cas_client *client, unsigned timeout_ms)
{
	struct cas_cluster_config cfg;
	char why[256];
	struct casctl_probe p;
	int rc;

	rc = cas_client_config(client, &cfg, why, sizeof(why));
	if (rc != CAS_OK) {
		fprintf(stderr, "%s: member list: %s\n", prog, why);
		return casctl_exit_code(rc);
	}
	for (size_t i = 0; i < cfg.n_members + cfg.n_joining; i++) {
		bool joining = i >= cfg.n_members;
		const struct cas_cluster_node *m =
			joining ? &cfg.joining[i - cfg.n_members] : &cfg.members[i];
		const char *role = joining ? "joining" : "member";
		char epoch[32];

		if (joining && has_id(cfg.members, cfg.n_members, m->id))
			continue;
		if (!joining && cfg.n_joining > 0 && !has_id(cfg.joining, cfg.n_joining, m->id))
			role = "leaving";
		casctl_probe(m->url, timeout_ms, &p);
		if (p.state == CAS_NODE_READY && p.id == m->id)
			snprintf(epoch, sizeof(epoch), "%llu", (unsigned long long)p.cfg.epoch);
		else
			snprintf(epoch, sizeof(epoch), "%s",
				 p.state == CAS_NODE_DOWN	     ? "down"
				 : p.state == CAS_NODE_UNINITIALIZED ? "uninitialized"
				 : p.state == CAS_NODE_READY	     ? "another-node"
								     : "bad");
		printf("%s %016llx %s %s\n", m->url, (unsigned long long)m->id, role, epoch);
		cas_cluster_config_clear(&p.cfg);
	}
	cas_cluster_config_clear(&cfg);
	return 0;
}

int casctl_member(const char *nodes, unsigned timeout_ms, int argc, char **argv)
{
	struct cas_client_config ccfg = {.timeout_ms = timeout_ms, .auth = casctl_auth_cfg};
	struct change c = {.timeout_ms = timeout_ms};
	char *a = NULL, *b = NULL, why[256];
	const char *sub = argv[0];
	int want, st, rc;

	if (strcmp(sub, "list") == 0) {
		want = 0;
	} else if (strcmp(sub, "add") == 0) {
		c.kind = ADD, want = 1;
	} else if (strcmp(sub, "remove") == 0) {
		c.kind = REMOVE, want = 1;
	} else if (strcmp(sub, "replace") == 0) {
		c.kind = REPLACE, want = 2;
	} else {
		fprintf(stderr, "%s: member: unknown subcommand \"%s\" (see --help)\n", prog, sub);
		return EXIT_USAGE;
	}
	if (argc - 1 != want) {
		fprintf(stderr, "%s: member %s takes %d arguments, not %d\n", prog, sub, want,
			argc - 1);
		return EXIT_USAGE;
	}
	if ((want >= 1 && cas_url_normalize(argv[1], &a, why, sizeof(why)) != CAS_OK) ||
	    (want == 2 && cas_url_normalize(argv[2], &b, why, sizeof(why)) != CAS_OK)) {
		fprintf(stderr, "%s: member %s: %s\n", prog, sub, why);
		st = EXIT_USAGE;
		goto out_free;
	}
	c.a = a;
	c.b = b;
	rc = cas_client_open(nodes, &ccfg, &c.client, why, sizeof(why));
	if (rc != CAS_OK) {
		fprintf(stderr, "%s: %s\n", prog, why);
		st = casctl_exit_code(rc);
		goto out_free;
	}
	if (want == 0) {
		st = member_list(c.client, timeout_ms);
		goto out_close;
	}
	rc = cas_client_config(c.client, &c.cur, why, sizeof(why));
	if (rc != CAS_OK) {
		fprintf(stderr, "%s: member %s: %s\n", prog, sub, why);
		st = casctl_exit_code(rc);
		goto out_close;
	}
	if (c.cur.n_joining > 0) {
		if (is_change(&c, &c.cur)) {
			/* An interrupted run of this change: go on. */
			st = cas_cluster_config_copy(&c.joint, &c.cur) == CAS_OK ? 0 : EXIT_OTHER;
			if (st == 0)
				st = join_new(&c);
			if (st == 0)
				st = finish(&c);
			goto out_close;
		}
		st = roll_back(&c);
		if (st != 0)
			goto out_close;
	}
	st = plan(&c);
	if (st == -1) {
		/* Done before: make sure every member holds the configuration
		 * (an interrupted step 4 may have reached a majority only). */
		size_t o_ok, n_ok;

		st = install(&c.cur, c.cur.members, c.cur.n_members, NULL, 0, timeout_ms, &o_ok,
			     &n_ok)
			     ? 0
			     : EXIT_UNAVAILABLE;
		goto out_close;
	}
	if (st == 0)
		st = join_new(&c);
	if (st == 0)
		st = finish(&c);
out_close:
	cas_cluster_config_clear(&c.cur);
	cas_cluster_config_clear(&c.joint);
	cas_cluster_config_clear(&c.stable);
	cas_client_close(c.client);
out_free:
	free(a);
	free(b);
	return st;
}

/* casctl_init.c - casctl init: making empty nodes one cluster and writing
 * its filesystem root (PROTOCOL.md, "Creating a cluster"); and what init
 * and member share: asking a node who it is, drawing ids. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cas/admin.h>
#include <cas/client.h>
#include <cas/os.h>

#include "casctl.h"
#include "record.h"

static const char *prog = "casctl";

void casctl_probe(const char *url, unsigned timeout_ms, struct casctl_probe *p)
{
	memset(p, 0, sizeof(*p));
	if (cas_admin_get_config(url, casctl_auth, timeout_ms, &p->state, &p->cfg, &p->id, p->why,
				 sizeof(p->why)) != CAS_OK) {
		p->state = CAS_NODE_DOWN;
		snprintf(p->why, sizeof(p->why), "%s: out of memory", url);
	}
}

/* Splits the comma-separated nodes into normalized URLs; EXIT_USAGE on a
 * bad or repeated one. */
static int split_urls(const char *nodes, char ***out, size_t *n)
{
	char *copy = strdup(nodes), *tok, *save = NULL, why[256];
	char **urls = calloc(64, sizeof(*urls));
	size_t k = 0;

	if (copy == NULL || urls == NULL)
		goto out_oom;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ')
			tok++;
		if (k == 64) {
			fprintf(stderr, "%s: more than 64 nodes\n", prog);
			goto out_usage;
		}
		if (cas_url_normalize(tok, &urls[k], why, sizeof(why)) != CAS_OK) {
			fprintf(stderr, "%s: %s\n", prog, why);
			goto out_usage;
		}
		for (size_t i = 0; i < k; i++)
			if (strcmp(urls[i], urls[k]) == 0) {
				fprintf(stderr, "%s: node %s is listed twice\n", prog, urls[k]);
				k++;
				goto out_usage;
			}
		k++;
	}
	if (k == 0) {
		fprintf(stderr, "%s: no nodes\n", prog);
		goto out_usage;
	}
	free(copy);
	*out = urls;
	*n = k;
	return 0;
out_oom:
	fprintf(stderr, "%s: out of memory\n", prog);
	free(copy);
	free(urls);
	return EXIT_OTHER;
out_usage:
	for (size_t i = 0; i < k; i++)
		free(urls[i]);
	free(urls);
	free(copy);
	return EXIT_USAGE;
}

static void free_urls(char **urls, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(urls[i]);
	free(urls);
}

int casctl_random_id(uint64_t *id)
{
	*id = 0;
	while (*id == 0)
		if (cas_os_random(id, sizeof(*id)) != CAS_OK)
			return CAS_EIO;
	return CAS_OK;
}

/* Writes the root directory's record at i/000...0 unless there is one. */
static int make_root(const char *nodes, unsigned timeout_ms)
{
	static const unsigned char root_id[CASFS_ID_LEN];
	struct cas_client_config ccfg = {.timeout_ms = timeout_ms, .auth = casctl_auth_cfg};
	struct casfs_record rec;
	struct cas_client *c;
	char key[CASFS_KEY_LEN], why[256];
	struct timespec now;
	unsigned char *buf;
	size_t len;
	int rc;

	rc = cas_client_open(nodes, &ccfg, &c, why, sizeof(why));
	if (rc != CAS_OK) {
		fprintf(stderr, "%s: init: %s\n", prog, why);
		return casctl_exit_code(rc);
	}
	cas_os_realtime(&now);
	casfs_record_init(&rec, CASFS_DIR, 0755, 0, 0, &now);
	rc = casfs_record_encode(&rec, CAS_DEFAULT_MAX_VALUE, &buf, &len);
	casfs_record_clear(&rec);
	if (rc == CAS_OK) {
		casfs_record_key(root_id, key);
		rc = cas_cas(c, key, 0, buf, len, timeout_ms, NULL);
		free(buf);
		if (rc == CAS_EVERSION)
			rc = CAS_OK; /* an earlier init wrote it */
	}
	if (rc != CAS_OK) {
		cas_client_errmsg(c, why, sizeof(why));
		fprintf(stderr, "%s: init: writing the root directory: %s%s%s\n", prog,
			cas_strerror(rc), why[0] ? ": " : "", why);
	}
	cas_client_close(c);
	return casctl_exit_code(rc);
}

/* Whether some node of ps[0..n) is uninitialized. */
static bool any_empty(const struct casctl_probe *ps, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ps[i].state == CAS_NODE_UNINITIALIZED)
			return true;
	return false;
}

/* Whether the root directory's record exists (or cannot be told). */
static bool root_made(const char *nodes, unsigned timeout_ms)
{
	static const unsigned char root_id[CASFS_ID_LEN];
	struct cas_client_config ccfg = {.timeout_ms = timeout_ms, .auth = casctl_auth_cfg};
	struct cas_client *c;
	struct cas_value v;
	char key[CASFS_KEY_LEN];
	bool made = true;

	if (cas_client_open(nodes, &ccfg, &c, NULL, 0) != CAS_OK)
		return true;
	casfs_record_key(root_id, key);
	if (cas_read(c, key, timeout_ms, &v) == CAS_OK)
		made = v.version != 0;
	cas_value_clear(&v);
	cas_client_close(c);
	return made;
}

/* Whether cfg is an init of exactly urls: epoch 1, stable. */
static bool init_of(const struct cas_cluster_config *cfg, char **urls, size_t n)
{
	if (cfg->epoch != 1 || cfg->n_joining != 0 || cfg->n_members != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (cas_cluster_config_find(cfg, false, urls[i]) < 0)
			return false;
	return true;
}

int casctl_init(const char *nodes, unsigned timeout_ms)
{
	struct cas_cluster_config cfg = {0};
	const struct cas_cluster_config *resume = NULL;
	struct casctl_probe *ps = NULL;
	unsigned char cid[16];
	char **urls, why[256];
	size_t n;
	int st;

	st = split_urls(nodes, &urls, &n);
	if (st != 0)
		return st;
	ps = calloc(n, sizeof(*ps));
	if (ps == NULL) {
		st = EXIT_OTHER;
		goto out_free;
	}
	for (size_t i = 0; i < n; i++)
		casctl_probe(urls[i], timeout_ms, &ps[i]);
	/* Every node answers and is empty; or this is an init that stopped
	 * half-way (every initialized node holds its epoch 1 of these
	 * nodes), which goes on. */
	for (size_t i = 0; i < n; i++) {
		if (ps[i].state == CAS_NODE_READY && init_of(&ps[i].cfg, urls, n) &&
		    (resume == NULL || strcmp(resume->cluster, ps[i].cfg.cluster) == 0) &&
		    (resume == NULL || cas_cluster_config_equal(resume, &ps[i].cfg))) {
			resume = &ps[i].cfg;
			continue;
		}
		if (ps[i].state == CAS_NODE_READY) {
			fprintf(stderr,
				"%s: init: node %s is initialized already (cluster %s, epoch "
				"%llu): "
				"nothing changed\n",
				prog, urls[i], ps[i].cfg.cluster,
				(unsigned long long)ps[i].cfg.epoch);
			st = EXIT_OTHER;
			goto out_free;
		}
		if (ps[i].state == CAS_NODE_DOWN) {
			fprintf(stderr, "%s: init: node %s does not answer (%s): nothing changed\n",
				prog, urls[i], ps[i].why);
			st = EXIT_UNAVAILABLE;
			goto out_free;
		}
		if (ps[i].state == CAS_NODE_BAD) {
			fprintf(stderr, "%s: init: %s: nothing changed\n", prog, ps[i].why);
			st = EXIT_OTHER;
			goto out_free;
		}
	}
	if (resume != NULL && !any_empty(ps, n) && root_made(nodes, timeout_ms)) {
		fprintf(stderr,
			"%s: init: node %s is initialized already (cluster %s, epoch 1): nothing "
			"changed\n",
			prog, urls[0], resume->cluster);
		st = EXIT_OTHER;
		goto out_free;
	}
	if (resume != NULL) {
		if (cas_cluster_config_copy(&cfg, resume) != CAS_OK) {
			st = EXIT_OTHER;
			goto out_free;
		}
	} else {
		cfg.members = calloc(n, sizeof(*cfg.members));
		if (cfg.members == NULL || cas_os_random(cid, sizeof(cid)) != CAS_OK) {
			fprintf(stderr, "%s: init: out of memory or random bytes\n", prog);
			st = EXIT_OTHER;
			goto out_free;
		}
		for (size_t i = 0; i < sizeof(cid); i++)
			snprintf(cfg.cluster + 2 * i, 3, "%02x", cid[i]);
		cfg.epoch = 1;
		cfg.n_members = n;
		for (size_t i = 0; i < n; i++) {
			bool twice = true;

			while (twice) {
				if (casctl_random_id(&cfg.members[i].id) != CAS_OK) {
					st = EXIT_OTHER;
					goto out_free;
				}
				twice = false;
				for (size_t j = 0; j < i; j++)
					twice |= cfg.members[j].id == cfg.members[i].id;
			}
			cfg.members[i].url = strdup(urls[i]);
			if (cfg.members[i].url == NULL) {
				st = EXIT_OTHER;
				goto out_free;
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		long m = cas_cluster_config_find(&cfg, false, urls[i]);
		int rc;

		if (ps[i].state != CAS_NODE_UNINITIALIZED)
			continue;
		rc = cas_admin_join(urls[i], casctl_auth, cfg.members[m].id, &cfg, timeout_ms, why,
				    sizeof(why));
		if (rc != CAS_OK) {
			fprintf(stderr,
				"%s: init: joining %s: %s (run the same init again to finish)\n",
				prog, urls[i], why);
			st = casctl_exit_code(rc == CAS_EVERSION ? CAS_EIO : rc);
			goto out_free;
		}
	}
	st = make_root(nodes, timeout_ms);
	if (st == 0)
		printf("%s\n", cfg.cluster);
out_free:
	if (ps != NULL)
		for (size_t i = 0; i < n; i++)
			cas_cluster_config_clear(&ps[i].cfg);
	free(ps);
	cas_cluster_config_clear(&cfg);
	free_urls(urls, n);
	return st;
}

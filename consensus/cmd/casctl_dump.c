/* casctl_dump.c - casctl dump and restore: every register of a cluster
 * (key, version, value) to a file and back into a new cluster, in the
 * format of README "Backups". */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cas/bytes.h>
#include <cas/client.h>
#include <cas/os.h>

#include "casctl.h"

static const char *prog = "casctl";

/* The file: a header, records, an end (README, "Backups"). */
#define DUMP_MAGIC0   'c'
#define DUMP_MAGIC1   'D'
#define DUMP_VERSION  1
#define DUMP_HEADER   48
#define DUMP_MAX_DATA ((size_t)64 << 20)

/* Keys listed, and read at once, at a time; threads that read or write. */
#define PAGE	1000u
#define WORKERS 16

/* Progress on stderr every so often. */
#define PROGRESS_MS 2000

/* The root directory's key, which casctl init writes (fs/FORMAT.md). */
static const char root_key[] = "i/00000000000000000000000000000000";

/* A register read, or to write. */
struct reg {
	char *key;
	uint64_t version;
	unsigned char *data;
	size_t len;
	int rc;
};

static void reg_clear(struct reg *r)
{
	free(r->key);
	free(r->data);
	memset(r, 0, sizeof(*r));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_txn_record(const char *key)
{
	return strncmp(key, "t/", 2) == 0;
}

static struct cas_client *open_client(const char *nodes, unsigned timeout_ms, size_t max_value)
{
	struct cas_client_config cfg = {
		.timeout_ms = timeout_ms, .max_value_size = max_value, .auth = casctl_auth_cfg};
	struct cas_client *c;
	char errmsg[256];
	int rc;

	rc = cas_client_open(nodes, &cfg, &c, errmsg, sizeof(errmsg));
	if (rc == CAS_OK)
		rc = cas_client_connect(c, 0, errmsg, sizeof(errmsg));
	else
		c = NULL;
	if (rc != CAS_OK) {
		fprintf(stderr, "%s: %s\n", prog, errmsg);
		cas_client_close(c);
		return NULL;
	}
	return c;
}

/* ---- running a function over many items on WORKERS threads ---- */

struct pool {
	pthread_mutex_t lock;
	size_t next, n;
	void *arg;
	void (*fn)(void *arg, size_t i);
};

static void *pool_main(void *arg)
{
	struct pool *p = arg;
	size_t i;

	for (;;) {
		pthread_mutex_lock(&p->lock);
		i = p->next < p->n ? p->next++ : p->n;
		pthread_mutex_unlock(&p->lock);
		if (i == p->n)
			return NULL;
		p->fn(p->arg, i);
	}
}

/* Calls fn(arg, i) for i in [0, n), on up to WORKERS threads at once. */
static void pool_run(size_t n, void (*fn)(void *arg, size_t i), void *arg)
{
	struct pool p = {.n = n, .arg = arg, .fn = fn};
	pthread_t threads[WORKERS];
	size_t started = 0;

	pthread_mutex_init(&p.lock, NULL);
	while (started < WORKERS && started < n &&
	       pthread_create(&threads[started], NULL, pool_main, &p) == 0)
		started++;
	pool_main(&p); /* the caller works too (alone when no thread started) */
	for (size_t i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	pthread_mutex_destroy(&p.lock);
}

/* ---- dump ---- */

struct dumper {
	struct cas_client *c;
	unsigned timeout_ms;
	FILE *f;
	const char *path;
	uint32_t crc;
	uint64_t records, bytes, t0_ms, said_ms;
	char **seen; /* keys read so far, sorted after each pass */
	size_t n_seen, cap_seen;
	struct reg *later; /* transaction records, written last */
	size_t n_later, cap_later;
};

static bool put(struct dumper *d, const void *p, size_t n)
{
	d->crc = cas_crc32c(d->crc, p, n);
	return fwrite(p, 1, n, d->f) == n;
}

static bool put_reg(struct dumper *d, const struct reg *r)
{
	unsigned char head[1 + CAS_KEY_MAX], tail[12];
	size_t kl = strlen(r->key);

	head[0] = (unsigned char)kl;
	memcpy(head + 1, r->key, kl);
	cas_put_le64(tail, r->version);
	cas_put_le32(tail + 8, (uint32_t)r->len);
	d->records++;
	d->bytes += r->len;
	return put(d, head, 1 + kl) && put(d, tail, sizeof(tail)) &&
	       (r->len == 0 || put(d, r->data, r->len));
}

/* A page of registers read at once. */
struct page {
	struct dumper *d;
	struct reg *regs;
};

static void read_one(void *arg, size_t i)
{
	struct page *pg = arg;
	struct reg *r = &pg->regs[i];
	struct cas_value v;

	r->rc = cas_read(pg->d->c, r->key, pg->d->timeout_ms, &v);
	if (r->rc == CAS_OK) {
		r->version = v.version;
		r->data = v.data;
		r->len = v.len;
	}
}

static void progress(struct dumper *d, const char *what)
{
	uint64_t now = cas_os_monotonic_ms();

	if (now - d->said_ms < PROGRESS_MS)
		return;
	d->said_ms = now;
	fprintf(stderr, "%s: %s: %" PRIu64 " registers, %.1f MiB so far\n", prog, what,
		d->records + d->n_later, (double)d->bytes / (1 << 20));
}

/* Reads keys[0..n) (taking them) linearizably, at once, and writes those
 * ever written; transaction records are kept for the end. */
static int dump_keys(struct dumper *d, char **keys, size_t n)
{
	struct reg *regs = calloc(n ? n : 1, sizeof(*regs));
	struct page pg = {d, regs};
	int rc = CAS_OK;

	if (regs == NULL) {
		cas_keys_free(keys, n);
		return CAS_ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		regs[i].key = keys[i];
	free(keys);
	pool_run(n, read_one, &pg);
	for (size_t i = 0; i < n; i++) {
		struct reg *r = &regs[i];

		if (rc == CAS_OK && r->rc != CAS_OK) {
			char why[256];

			cas_client_errmsg(d->c, why, sizeof(why));
			fprintf(stderr, "%s: dump: reading %s: %s%s%s\n", prog, r->key,
				cas_strerror(r->rc), why[0] ? ": " : "", why);
			rc = r->rc;
		}
		if (rc != CAS_OK || r->version == 0) {
			/* Never written, or deleted: absent, nothing to copy. */
			reg_clear(r);
			continue;
		}
		if (is_txn_record(r->key)) {
			if (d->n_later == d->cap_later) {
				size_t cap = d->cap_later ? 2 * d->cap_later : 256;
				struct reg *p = realloc(d->later, cap * sizeof(*p));

				if (p == NULL) {
					rc = CAS_ENOMEM;
					reg_clear(r);
					continue;
				}
				d->later = p;
				d->cap_later = cap;
			}
			d->later[d->n_later++] = *r;
			continue;
		}
		if (!put_reg(d, r))
			rc = CAS_EIO;
		reg_clear(r);
	}
	free(regs);
	progress(d, "dump");
	return rc;
}

static bool seen_before(const struct dumper *d, size_t sorted, const char *key)
{
	return sorted > 0 && bsearch(&key, d->seen, sorted, sizeof(*d->seen), cmp_str) != NULL;
}

/* Adds a copy of key to the keys read. */
static bool remember(struct dumper *d, const char *key)
{
	if (d->n_seen == d->cap_seen) {
		size_t cap = 2 * d->cap_seen + PAGE;
		char **p = realloc(d->seen, cap * sizeof(*p));

		if (p == NULL)
			return false;
		d->seen = p;
		d->cap_seen = cap;
	}
	d->seen[d->n_seen] = strdup(key);
	return d->seen[d->n_seen] != NULL && ++d->n_seen;
}

/* One pass over every key the members hold: reads those not read in an
 * earlier pass. *found: how many it read. */
static int dump_pass(struct dumper *d, size_t *found)
{
	size_t sorted = d->n_seen, n, kept;
	char **keys, *after = NULL, why[256];
	bool more = true;
	int rc = CAS_OK;

	*found = 0;
	while (more && rc == CAS_OK) {
		rc = cas_client_keys(d->c, after, PAGE, d->timeout_ms, &keys, &n, &more, why,
				     sizeof(why));
		if (rc != CAS_OK) {
			fprintf(stderr, "%s: dump: listing keys: %s: %s\n", prog, cas_strerror(rc),
				why);
			break;
		}
		if (n == 0) {
			free(keys);
			break;
		}
		free(after);
		after = strdup(keys[n - 1]);
		kept = 0;
		for (size_t i = 0; i < n; i++) {
			if (seen_before(d, sorted, keys[i])) {
				free(keys[i]);
				continue;
			}
			if (after == NULL || !remember(d, keys[i])) {
				rc = CAS_ENOMEM;
				free(keys[i]);
				continue;
			}
			keys[kept++] = keys[i];
		}
		*found += kept;
		if (rc == CAS_OK)
			rc = dump_keys(d, keys, kept);
		else
			cas_keys_free(keys, kept);
	}
	free(after);
	if (d->n_seen > 0)
		qsort(d->seen, d->n_seen, sizeof(*d->seen), cmp_str);
	return rc;
}

static int dump_all(struct dumper *d, const char *cluster)
{
	unsigned char head[DUMP_HEADER] = {DUMP_MAGIC0, DUMP_MAGIC1, DUMP_VERSION}, end[13];
	size_t found;
	int rc, pass;

	memcpy(head + 8, cluster, CAS_CLUSTER_HEX);
	cas_put_le64(head + 40, (uint64_t)time(NULL));
	if (!put(d, head, sizeof(head)))
		return CAS_EIO;
	/* Later passes read the keys made meanwhile that sort before where
	 * the listing was: a file whose entry was read but whose inode was
	 * not listed yet, say. Three passes, then what is made during the
	 * last is left out (README, "Backups": no snapshot). */
	for (pass = 0; pass < 3; pass++) {
		rc = dump_pass(d, &found);
		if (rc != CAS_OK)
			return rc;
		if (found == 0)
			break;
	}
	/* Transaction records last: a record read after the registers whose
	 * intents name it says how its transaction ended as late as any of
	 * them, so the copy resolves each intent as the cluster would have
	 * at that moment or later. */
	for (size_t i = 0; i < d->n_later; i++)
		if (!put_reg(d, &d->later[i]))
			return CAS_EIO;
	end[0] = 0;
	cas_put_le64(end + 1, d->records);
	if (!put(d, end, 9))
		return CAS_EIO;
	cas_put_le32(end + 9, d->crc);
	if (fwrite(end + 9, 1, 4, d->f) != 4)
		return CAS_EIO;
	return CAS_OK;
}

int casctl_dump(const char *nodes, unsigned timeout_ms, const char *path)
{
	struct dumper d = {.timeout_ms = timeout_ms, .path = path};
	char cluster[CAS_CLUSTER_HEX + 1];
	bool to_stdout = strcmp(path, "-") == 0;
	int rc, ret = 0;

	d.c = open_client(nodes, timeout_ms, DUMP_MAX_DATA);
	if (d.c == NULL)
		return EXIT_UNAVAILABLE;
	cas_client_cluster(d.c, cluster);
	d.f = to_stdout ? stdout : fopen(path, "wbx");
	if (d.f == NULL) {
		fprintf(stderr, "%s: dump: cannot create %s: %s\n", prog, path, strerror(errno));
		cas_client_close(d.c);
		return EXIT_USAGE;
	}
	d.t0_ms = d.said_ms = cas_os_monotonic_ms();
	rc = dump_all(&d, cluster);
	if (rc == CAS_EIO || (rc == CAS_OK && fflush(d.f) != 0) ||
	    (rc == CAS_OK && !to_stdout && fsync(fileno(d.f)) != 0)) {
		fprintf(stderr, "%s: dump: writing %s: %s\n", prog, path, strerror(errno));
		rc = CAS_EIO;
	} else if (rc == CAS_ENOMEM) {
		fprintf(stderr, "%s: dump: out of memory\n", prog);
	}
	if (!to_stdout && fclose(d.f) != 0 && rc == CAS_OK) {
		fprintf(stderr, "%s: dump: writing %s: %s\n", prog, path, strerror(errno));
		rc = CAS_EIO;
	}
	if (rc != CAS_OK) {
		if (!to_stdout)
			unlink(path);
		ret = rc == CAS_EIO ? EXIT_OTHER : casctl_exit_code(rc);
	} else {
		fprintf(stderr,
			"%s: dumped %" PRIu64 " registers (%" PRIu64
			" bytes of values) of cluster %s in %.1f s\n",
			prog, d.records, d.bytes, cluster,
			(double)(cas_os_monotonic_ms() - d.t0_ms) / 1000.0);
	}
	for (size_t i = 0; i < d.n_later; i++)
		reg_clear(&d.later[i]);
	free(d.later);
	cas_keys_free(d.seen, d.n_seen);
	cas_client_close(d.c);
	return ret;
}

/* ---- restore ---- */

struct reader {
	FILE *f;
	const char *path;
	uint32_t crc;
	uint64_t records, rounds, largest;
	char why[256];
};

static bool get(struct reader *r, void *p, size_t n)
{
	if (fread(p, 1, n, r->f) != n) {
		snprintf(r->why, sizeof(r->why), "%s",
			 ferror(r->f) ? strerror(errno) : "cut short");
		return false;
	}
	r->crc = cas_crc32c(r->crc, p, n);
	return true;
}

/* The next record into *out (its key and data malloc'd), or *end at the
 * end marker. False with r->why on a malformed file. */
static bool next_reg(struct reader *r, struct reg *out, bool *end)
{
	unsigned char kl, tail[12];
	char key[CAS_KEY_MAX + 1];

	memset(out, 0, sizeof(*out));
	*end = false;
	if (!get(r, &kl, 1))
		return false;
	if (kl == 0) {
		*end = true;
		return true;
	}
	if (kl > CAS_KEY_MAX || !get(r, key, kl) || !get(r, tail, sizeof(tail)))
		return r->why[0] ? false : (snprintf(r->why, sizeof(r->why), "a bad key"), false);
	key[kl] = '\0';
	if (!cas_key_valid(key, kl)) {
		snprintf(r->why, sizeof(r->why), "a bad key");
		return false;
	}
	out->version = cas_get_le64(tail);
	out->len = cas_get_le32(tail + 8);
	if (out->version == 0 || out->len > DUMP_MAX_DATA) {
		snprintf(r->why, sizeof(r->why), "register %.200s: a bad version or length", key);
		return false;
	}
	out->key = strdup(key);
	out->data = malloc(out->len ? out->len : 1);
	if (out->key == NULL || out->data == NULL) {
		snprintf(r->why, sizeof(r->why), "out of memory");
		reg_clear(out);
		return false;
	}
	if (out->len > 0 && !get(r, out->data, out->len)) {
		reg_clear(out);
		return false;
	}
	return true;
}

/* Opens path and reads its header; false with r->why. */
static bool open_dump(struct reader *r, const char *path)
{
	unsigned char head[DUMP_HEADER];

	memset(r, 0, sizeof(*r));
	r->path = path;
	r->f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	if (r->f == NULL) {
		snprintf(r->why, sizeof(r->why), "%s", strerror(errno));
		return false;
	}
	if (!get(r, head, sizeof(head)))
		return false;
	if (head[0] != DUMP_MAGIC0 || head[1] != DUMP_MAGIC1 || head[2] != DUMP_VERSION) {
		snprintf(r->why, sizeof(r->why), "not a casctl dump of format %d", DUMP_VERSION);
		return false;
	}
	return true;
}

/* Reads the whole file: well formed, its count and checksum right. */
static bool check_dump(struct reader *r)
{
	unsigned char tail[12];
	struct reg reg;
	uint32_t crc;
	bool end = false;

	while (!end) {
		if (!next_reg(r, &reg, &end))
			return false;
		if (end)
			break;
		r->records++;
		r->rounds += reg.version;
		if (reg.len > r->largest)
			r->largest = reg.len;
		reg_clear(&reg);
	}
	if (!get(r, tail, 8))
		return false;
	crc = r->crc;
	if (fread(tail + 8, 1, 4, r->f) != 4 || fgetc(r->f) != EOF) {
		snprintf(r->why, sizeof(r->why), "a bad end");
		return false;
	}
	if (cas_get_le64(tail) != r->records || cas_get_le32(tail + 8) != crc) {
		snprintf(r->why, sizeof(r->why), "its count or checksum does not match");
		return false;
	}
	return true;
}

/* Whether the cluster holds nothing but the root casctl init wrote (at
 * version 1); *root_version gets the root's version. Says why not. */
static int check_empty(struct cas_client *c, unsigned timeout_ms, uint64_t *root_version)
{
	char **keys = NULL, *after = NULL, why[256];
	struct cas_value v;
	uint64_t version;
	bool more = true;
	size_t n = 0;
	int rc = CAS_OK;

	*root_version = 0;
	while (more && rc == CAS_OK) {
		rc = cas_client_keys(c, after, PAGE, timeout_ms, &keys, &n, &more, why,
				     sizeof(why));
		if (rc != CAS_OK) {
			fprintf(stderr, "%s: restore: listing keys: %s: %s\n", prog,
				cas_strerror(rc), why);
			break;
		}
		for (size_t i = 0; i < n && rc == CAS_OK; i++) {
			bool root = strcmp(keys[i], root_key) == 0;

			rc = cas_read(c, keys[i], timeout_ms, &v);
			if (rc != CAS_OK) {
				fprintf(stderr, "%s: restore: reading %s: %s\n", prog, keys[i],
					cas_strerror(rc));
				break;
			}
			version = v.version;
			cas_value_clear(&v);
			if (root)
				*root_version = version;
			if (version > (root ? 1u : 0u)) {
				fprintf(stderr,
					"%s: restore: the cluster is not empty: register %s is at "
					"version %" PRIu64
					"; restore only into a new cluster (casctl init on empty "
					"nodes)\n",
					prog, keys[i], version);
				rc = CAS_EVERSION;
			}
		}
		free(after);
		after = n > 0 ? strdup(keys[n - 1]) : NULL;
		cas_keys_free(keys, n);
		if (n == 0)
			break;
	}
	free(after);
	return rc;
}

struct restorer {
	struct cas_client *c;
	unsigned timeout_ms;
	uint64_t root_version;
	struct reader *r;
	pthread_mutex_t lock; /* guards what follows */
	bool failed, at_end;
	uint64_t total, done, rounds, said_ms;
};

/* Brings g->key from version from to g->version: empty values up to the
 * version before, then the value (README, "Backups", says why). A root
 * that casctl init left at a version the dump's does not pass gets one
 * round more. */
static int write_reg(struct restorer *s, const struct reg *g, uint64_t from)
{
	static const unsigned char none[1];
	uint64_t at = from, target = g->version > from ? g->version : from + 1, got;
	unsigned tries = 0;
	int rc;

	while (at < target) {
		bool last = at + 1 == target;

		rc = cas_cas(s->c, g->key, at, last ? g->data : none, last ? g->len : 0,
			     s->timeout_ms, &got);
		if (rc == CAS_EUNAVAILABLE && ++tries <= 3) {
			struct cas_value v;

			/* Applied or not: the version says. */
			if (cas_read(s->c, g->key, s->timeout_ms, &v) != CAS_OK)
				return rc;
			got = v.version;
			cas_value_clear(&v);
			if (got != at && got != at + 1)
				return CAS_EVERSION;
			at = got;
			continue;
		}
		if (rc != CAS_OK)
			return rc;
		at = got;
		pthread_mutex_lock(&s->lock);
		s->rounds++;
		pthread_mutex_unlock(&s->lock);
	}
	return CAS_OK;
}

static void *restore_main(void *arg)
{
	struct restorer *s = arg;
	struct reg g;
	bool end;
	int rc;

	for (;;) {
		pthread_mutex_lock(&s->lock);
		if (s->failed || s->at_end) {
			pthread_mutex_unlock(&s->lock);
			return NULL;
		}
		if (!next_reg(s->r, &g, &end) || end) {
			s->failed = !end;
			if (!end)
				fprintf(stderr, "%s: restore: %s: %s\n", prog, s->r->path,
					s->r->why);
			s->at_end = true;
			pthread_mutex_unlock(&s->lock);
			return NULL;
		}
		pthread_mutex_unlock(&s->lock);
		rc = write_reg(s, &g, strcmp(g.key, root_key) == 0 ? s->root_version : 0);
		pthread_mutex_lock(&s->lock);
		if (rc != CAS_OK && !s->failed) {
			char why[256];

			cas_client_errmsg(s->c, why, sizeof(why));
			fprintf(stderr, "%s: restore: writing %s: %s%s%s\n", prog, g.key,
				rc == CAS_EVERSION ? "changed by someone else meanwhile"
						   : cas_strerror(rc),
				why[0] && rc != CAS_EVERSION ? ": " : "",
				rc != CAS_EVERSION ? why : "");
			s->failed = true;
		}
		s->done++;
		if (cas_os_monotonic_ms() - s->said_ms >= PROGRESS_MS) {
			s->said_ms = cas_os_monotonic_ms();
			fprintf(stderr, "%s: restore: %" PRIu64 " of %" PRIu64 " registers\n", prog,
				s->done, s->total);
		}
		pthread_mutex_unlock(&s->lock);
		reg_clear(&g);
	}
}

int casctl_restore(const char *nodes, unsigned timeout_ms, const char *path)
{
	struct restorer s = {.timeout_ms = timeout_ms};
	pthread_t threads[WORKERS];
	uint64_t t0 = cas_os_monotonic_ms();
	struct reader r;
	size_t started = 0;
	int rc;

	if (strcmp(path, "-") == 0) {
		fprintf(stderr, "%s: restore: needs a file (it is read twice), not stdin\n", prog);
		return EXIT_USAGE;
	}
	/* The whole file is checked before anything is written. */
	if (!open_dump(&r, path) || !check_dump(&r)) {
		fprintf(stderr, "%s: restore: %s: %s\n", prog, path, r.why);
		if (r.f != NULL)
			fclose(r.f);
		return EXIT_USAGE;
	}
	s.c = open_client(nodes, timeout_ms, r.largest > CAS_DEFAULT_MAX_VALUE ? r.largest : 0);
	if (s.c == NULL) {
		fclose(r.f);
		return EXIT_UNAVAILABLE;
	}
	rc = check_empty(s.c, timeout_ms, &s.root_version);
	if (rc != CAS_OK)
		goto out_close;
	s.total = r.records;
	fclose(r.f);
	if (!open_dump(&r, path)) {
		fprintf(stderr, "%s: restore: %s: %s\n", prog, path, r.why);
		rc = CAS_EIO;
		goto out_close;
	}
	s.r = &r;
	s.said_ms = t0;
	pthread_mutex_init(&s.lock, NULL);
	while (started < WORKERS && pthread_create(&threads[started], NULL, restore_main, &s) == 0)
		started++;
	restore_main(&s);
	for (size_t i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	pthread_mutex_destroy(&s.lock);
	rc = s.failed ? CAS_EIO : CAS_OK;
	if (rc == CAS_OK)
		fprintf(stderr,
			"%s: restored %" PRIu64 " registers in %" PRIu64 " rounds, %.1f s\n", prog,
			s.done, s.rounds, (double)(cas_os_monotonic_ms() - t0) / 1000.0);
out_close:
	if (r.f != NULL)
		fclose(r.f);
	cas_client_close(s.c);
	if (rc == CAS_EVERSION)
		return EXIT_OTHER;
	return rc == CAS_EIO ? EXIT_OTHER : casctl_exit_code(rc);
}

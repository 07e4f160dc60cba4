/* compare.h - what the parts of compare share: the backends' interface,
 * the workloads, one measurement's figures, and the driver that runs them.
 * compare.c: the command line and the table; driver.c: threads timing a
 * backend; fs_work.c: file operations through a mount; backend_cas.c,
 * backend_etcd.c: the two systems under test. */
#ifndef CAS_BENCH_COMPARE_H
#define CAS_BENCH_COMPARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cas/client.h>

#define MAX_THREADS   32
#define RUNS_MAX      9
#define KEY_LEN	      96
#define ERR_LEN	      256
#define OP_TIMEOUT_MS 10000
#define WARMUP_READS  3
#define NO_VERSION    UINT64_MAX

/* What one call of a backend ended in. */
enum outcome {
	DONE,	  /* the CAS was applied, or the read answered */
	CONFLICT, /* the CAS found another version: nothing written */
	FAILED,	  /* error or timeout: a CAS may or may not have been applied */
};

/* A register as a backend saw it. data is NUL-terminated, cut at cap. */
struct seen {
	uint64_t version;
	char data[64];
};

/* One system under test. A connection serves one thread. */
struct backend {
	const char *name;
	/* Opens the connection of worker thread idx. */
	int (*conn_open)(struct backend *be, int idx, void **conn, char *err, size_t err_len);
	void (*conn_close)(void *conn);
	/* Writes data to key if its version is still expected. DONE: *cur
	 * has the new version; CONFLICT: *cur has the current version and,
	 * when want_data, the current bytes. */
	enum outcome (*cas)(void *conn, const char *key, uint64_t expected, const void *data,
			    size_t len, bool want_data, struct seen *cur, char *err,
			    size_t err_len);
	/* Reads key linearizably into *cur (version 0: never written). */
	enum outcome (*read)(void *conn, const char *key, struct seen *cur, char *err,
			     size_t err_len);
	void *priv;
};

/* ---- the backends ---- */

/* The casfs backend: the client library; by default one client shared by
 * all threads, as a mount shares its own. priv: a struct casfs. */
extern const struct backend casfs_backend;

struct casfs {
	struct cas_client *shared;
	const char *nodes;
	bool per_thread;	     /* a client (a proposer) per thread instead */
	struct cas_auth_config auth; /* TLS and token: CAS_TLS_* */
};

/* The etcd backend: the v3 JSON gateway over libcurl, one kept-alive easy
 * handle per thread. priv: a struct etcd. */
extern const struct backend etcd_backend;

struct etcd {
	char **urls; /* client URLs */
	size_t n;
	size_t leader; /* index in urls, or n when spreading threads */
	/* With https:// URLs: the CA, client certificate and key (the
	 * casd cluster's, CAS_TLS_*), or NULL. */
	const char *tls_ca, *tls_cert, *tls_key;
};

/* Finds the leader among e->urls (its maintenance status names it). */
int etcd_find_leader(struct etcd *e, char *err, size_t err_len);

/* ---- workloads ---- */

enum kind { K_CAS, K_CONTEND, K_READ };

enum workload { W_CAS1, W_CAS32, W_CONTEND8, W_READ1, W_READ32, W_COUNT };

extern const struct workload_def {
	const char *name; /* in keys */
	const char *label;
	int threads;
	enum kind kind;
} workloads[W_COUNT];

enum fs_workload { F_WRITE1, F_WRITE32, F_READ1, F_READ32, F_BASH, F_COUNT };

extern const struct fs_def {
	const char *label;
	int threads; /* each on its own file */
	bool write;  /* open(O_TRUNC)-write-close; else open-read-close */
} fs_defs[F_COUNT];

/* Creates timed in one measure_create at most. */
#define DIR_CREATES_MAX 2000

/* One measurement. */
struct cell {
	bool done;   /* measured (not skipped) */
	bool failed; /* a correctness check failed: no figures */
	double p50, p99, rate;
	uint64_t ok, conflicts, errors;
	char why[ERR_LEN];
};

struct lat {
	uint32_t *v;
	size_t n, cap;
};

/* Appends one latency in µs; false when out of memory. */
bool lat_add(struct lat *l, uint64_t us);

/* The monotonic clock in µs. */
uint64_t now_us(void);

/* p50 and p99 of the latencies of lats[0..n) into *out. */
int percentiles(const struct lat *const *lats, int n, struct cell *out);

/* What a run learned about its keys, for the read workloads to check. */
struct keys {
	uint64_t version[W_COUNT][MAX_THREADS]; /* per cas workload; NO_VERSION: unknown */
};

struct bench {
	uint64_t id; /* random, in every key */
	unsigned seconds;
	size_t value_size;
	char *value;
	const char *mount;
	const char *floor;   /* a mount of memfs, the floor; may be NULL */
	unsigned long count; /* fs workloads: operations per thread; 0: seconds */
};

/* Runs workload wl on be for b->seconds; the figures go to *c. */
int measure(struct bench *b, struct backend *be, enum workload wl, int run, struct keys *k,
	    struct cell *c);

/* Runs file workload f in the folder dir (a mount) for b->seconds, or
 * b->count operations per thread (F_BASH: about as many times as
 * write_rate, F_WRITE1's rate, says); the figures go to *c. */
int measure_fs(struct bench *b, const char *dir, enum fs_workload f, int run, double write_rate,
	       struct cell *c);

/* Threads of dir_fill. */
#define DIR_FILL_THREADS 16

/* Makes the folder dir (if missing) and creates empty files in it until
 * it holds entries of them, DIR_FILL_THREADS at a time; *have counts
 * those made so far (start at 0) and is kept across calls, to grow one
 * folder in steps. Gives up after
 * budget_s seconds: -1 with a reason in why, *have telling how far it
 * got. */
int dir_fill(const char *dir, unsigned long entries, unsigned budget_s, unsigned long *have,
	     char *why, size_t why_len);

/* Times creates of new files in dir (open O_CREAT|O_EXCL, close), each
 * unlinked after it, for b->seconds; the figures go to *c (rate: creates
 * and unlinks per second). */
int measure_create(struct bench *b, const char *dir, int run, struct cell *c);

#endif

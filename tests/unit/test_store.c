/* test_store.c - unit tests of the LMDB acceptor store on real files:
 * acceptor rules through the store, persistence across reopen, failed
 * commits that leave nothing behind, corrupt records, LMDB errors, group
 * commit (batches in order, a failed batch, many threads at once), the
 * write-ahead log (replay after a crash, checkpoints, torn and stale
 * entries). */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "store.h"

struct fixture {
	char dir[4096];
	struct cas_store *store;
};

/* CAS_TEST_BUFFERED_LOG set: every store here writes its log through the
 * page cache (cas_store_config.buffered_log), the path taken where the
 * file system refuses O_DIRECT. */
static bool buffered_log(void)
{
	return getenv("CAS_TEST_BUFFERED_LOG") != NULL;
}

static void reopen(struct fixture *f, size_t map_size)
{
	struct cas_store_config cfg = {.map_size = map_size, .buffered_log = buffered_log()};
	char errmsg[256];

	cas_store_close(f->store);
	f->store = NULL;
	assert_int_equal(cas_store_open(f->dir, &cfg, &f->store, errmsg, sizeof(errmsg)), CAS_OK);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	const char *tmp = getenv("TMPDIR");

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/cas-test-store.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	reopen(f, 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char path[4200];

	cas_store_close(f->store);
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/lock.mdb", f->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/wal", f->dir);
	unlink(path);
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

static struct cas_ballot B(uint64_t counter, uint64_t id) {
	return (struct cas_ballot){counter, id};
}

static struct cas_msg
prepare_msg(const char *key, struct cas_ballot b)
{
	struct cas_msg m = {.type = CAS_MSG_PREPARE, .ballot = b};

	strcpy(m.key, key);
	return m;
}

/* data is borrowed: the store must copy what it keeps. */
static struct cas_msg accept_msg(const char *key, struct cas_ballot b, const char *data,
				 uint64_t version)
{
	struct cas_msg m = {.type = CAS_MSG_ACCEPT, .ballot = b};

	strcpy(m.key, key);
	m.value.version = version;
	m.value.n_recent = 2;
	m.value.recent[0] = (struct cas_recent){version * 100, 7, version};
	m.value.recent[1] = (struct cas_recent){UINT64_MAX, UINT64_MAX, 1};
	m.value.data = (unsigned char *)data;
	m.value.len = strlen(data);
	return m;
}

static int handle(struct fixture *f, const struct cas_msg *req, struct cas_msg *reply)
{
	char errmsg[256] = "";
	int err;

	err = cas_store_handle(f->store, req, reply, errmsg, sizeof(errmsg));
	if (err)
		assert_true(errmsg[0] != '\0');
	return err;
}

static void assert_state(struct fixture *f, const char *key, struct cas_ballot promise,
			 struct cas_ballot accepted, const char *data, uint64_t version)
{
	struct cas_acceptor_state st;
	char errmsg[256];

	assert_int_equal(cas_store_get(f->store, key, &st, errmsg, sizeof(errmsg)), CAS_OK);
	assert_int_equal(cas_ballot_cmp(st.promise, promise), 0);
	assert_int_equal(cas_ballot_cmp(st.accepted, accepted), 0);
	assert_int_equal(st.value.version, version);
	assert_int_equal(st.value.len, strlen(data));
	if (st.value.len)
		assert_memory_equal(st.value.data, data, st.value.len);
	else
		assert_null(st.value.data);
	if (version) {
		assert_int_equal(st.value.n_recent, 2);
		assert_int_equal(st.value.recent[0].proposer, version * 100);
		assert_int_equal(st.value.recent[0].op, 7);
		assert_int_equal(st.value.recent[0].version, version);
		assert_true(st.value.recent[1].proposer == UINT64_MAX);
		assert_true(st.value.recent[1].op == UINT64_MAX);
	}
	free(st.value.data);
}

static void test_rules_through_store(void **state)
{
	struct fixture *f = *state;
	struct cas_msg req, reply;
	char data[] = "hello";

	/* A key never seen: promise, with no accepted value. */
	assert_state(f, "k", B(0, 0), B(0, 0), "", 0);
	req = prepare_msg("k", B(5, 1));
	assert_int_equal(handle(f, &req, &reply), CAS_OK);
	assert_int_equal(reply.type, CAS_MSG_PROMISE);
	assert_true(cas_ballot_is_zero(reply.ballot));
	assert_int_equal(reply.value.len, 0);
	cas_msg_clear(&reply);
	assert_state(f, "k", B(5, 1), B(0, 0), "", 0);

	/* Same ballot again: rejected, blocking ballot named. */
	assert_int_equal(handle(f, &req, &reply), CAS_OK);
	assert_int_equal(reply.type, CAS_MSG_REJECT);
	assert_int_equal(cas_ballot_cmp(reply.ballot, B(5, 1)), 0);
	cas_msg_clear(&reply);

	/* Accept at the promised ballot; the store keeps its own copy. */
	req = accept_msg("k", B(5, 1), data, 1);
	assert_int_equal(handle(f, &req, &reply), CAS_OK);
	assert_int_equal(reply.type, CAS_MSG_ACCEPTED);
	assert_int_equal(cas_ballot_cmp(reply.ballot, B(5, 1)), 0);
	cas_msg_clear(&reply);
	memset(data, 'X', 5);
	assert_state(f, "k", B(5, 1), B(5, 1), "hello", 1);

	/* Lower accept: rejected, nothing changes. */
	req = accept_msg("k", B(4, 9), "nope", 7);
	assert_int_equal(handle(f, &req, &reply), CAS_OK);
	assert_int_equal(reply.type, CAS_MSG_REJECT);
	assert_int_equal(cas_ballot_cmp(reply.ballot, B(5, 1)), 0);
	cas_msg_clear(&reply);
	assert_state(f, "k", B(5, 1), B(5, 1), "hello", 1);

	/* A higher prepare returns the accepted ballot and value, not the
	 * new promise; the reply owns its bytes. */
	req = prepare_msg("k", B(5, 2));
	assert_int_equal(handle(f, &req, &reply), CAS_OK);
	assert_int_equal(reply.type, CAS_MSG_PROMISE);
	assert_int_equal(cas_ballot_cmp(reply.ballot, B(5, 1)), 0);
	assert_int_equal(reply.value.version, 1);
	assert_int_equal(reply.value.n_recent, 2);
	reopen(f, 0); /* the map may go away; reply.value must not */
	assert_int_equal(reply.value.len, 5);
	assert_memory_equal(reply.value.data, "hello", 5);
	cas_msg_clear(&reply);
	assert_state(f, "k", B(5, 2), B(5, 1), "hello", 1);

	/* Other keys are independent. */
	assert_state(f, "other", B(0, 0), B(0, 0), "", 0);
}

static void test_persists_across_reopen(void **state)
{
	struct fixture *f = *state;
	struct cas_msg req, reply;
	uint64_t n;
	char errmsg[256];

	req = accept_msg("a/b", B(3, 3), "v1", 1);
	assert_int_equal(handle(f, &req, &reply), CAS_OK);
	cas_msg_clear(&reply);
	req = prepare_msg("a/c", B(9, 1));
	assert_int_equal(handle(f, &req, &reply), CAS_OK);
	cas_msg_clear(&reply);
	reopen(f, 0);
	assert_state(f, "a/b", B(3, 3), B(3, 3), "v1", 1);
	assert_state(f, "a/c", B(9, 1), B(0, 0), "", 0);
	assert_int_equal(cas_store_count(f->store, &n, errmsg, sizeof(errmsg)), CAS_OK);
	assert_int_equal(n, 2);
}

struct fault {
	int calls;
	int fail;
};

static int fault_fn(void *arg, const struct cas_msg *req)
{
	struct fault *ft = arg;

	(void)req;
	ft->calls++;
	return ft->fail;
}

static void test_failed_commit_changes_nothing(void **state)
{
	struct fixture *f = *state;
	struct fault ft = {0, 1};
	struct cas_msg req, reply;
	char errmsg[256] = "";
	uint64_t n;

	req = accept_msg("k", B(2, 1), "first", 1);
	assert_int_equal(handle(f, &req, &reply), CAS_OK);
	cas_msg_clear(&reply);

	cas_store_set_fault(f->store, fault_fn, &ft);
	/* A prepare that would promise: the commit fails, no reply. */
	req = prepare_msg("k", B(3, 1));
	assert_int_equal(cas_store_handle(f->store, &req, &reply, errmsg, sizeof(errmsg)), CAS_EIO);
	assert_non_null(strstr(errmsg, "injected"));
	assert_int_equal(reply.type, CAS_MSG_NONE);
	assert_null(reply.value.data);
	assert_int_equal(ft.calls, 1);
	/* An accept that would change the value: same. */
	req = accept_msg("k", B(4, 1), "second", 2);
	assert_int_equal(handle(f, &req, &reply), CAS_EIO);
	assert_int_equal(reply.type, CAS_MSG_NONE);
	/* A new key: not even created. */
	req = prepare_msg("fresh", B(1, 1));
	assert_int_equal(handle(f, &req, &reply), CAS_EIO);
	assert_int_equal(ft.calls, 3);
	/* A reject commits nothing, so the fault is not reached. */
	req = prepare_msg("k", B(1, 1));
	assert_int_equal(handle(f, &req, &reply), CAS_OK);
	assert_int_equal(reply.type, CAS_MSG_REJECT);
	assert_int_equal(ft.calls, 3);

	/* Nothing of it reached the disk. */
	reopen(f, 0);
	assert_state(f, "k", B(2, 1), B(2, 1), "first", 1);
	assert_state(f, "fresh", B(0, 0), B(0, 0), "", 0);
	assert_int_equal(cas_store_count(f->store, &n, errmsg, sizeof(errmsg)), CAS_OK);
	assert_int_equal(n, 1);

	/* Without the fault, the same requests succeed. */
	req = prepare_msg("k", B(3, 1));
	assert_int_equal(handle(f, &req, &reply), CAS_OK);
	assert_int_equal(reply.type, CAS_MSG_PROMISE);
	cas_msg_clear(&reply);
	assert_state(f, "k", B(3, 1), B(2, 1), "first", 1);
}

static void test_bad_requests(void **state)
{
	struct fixture *f = *state;
	struct cas_msg req, reply;
	struct cas_acceptor_state st;

	req = prepare_msg("a b", B(1, 1));
	assert_int_equal(handle(f, &req, &reply), CAS_EKEY);
	req = prepare_msg("", B(1, 1));
	assert_int_equal(handle(f, &req, &reply), CAS_EKEY);
	req = prepare_msg("k", B(1, 1));
	req.type = CAS_MSG_PROMISE;
	assert_int_equal(handle(f, &req, &reply), CAS_EINVAL);
	assert_int_equal(cas_store_get(f->store, "", &st, NULL, 0), CAS_EKEY);
}

/* Writes raw bytes as key's record, behind the store's back. */
static void put_raw(struct fixture *f, const char *key, const void *bytes, size_t len)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)bytes};

	cas_store_close(f->store);
	f->store = NULL;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	reopen(f, 0);
}

static void test_corrupt_record(void **state)
{
	struct fixture *f = *state;
	unsigned char rec[64] = {CAS_STORE_FORMAT};
	struct cas_acceptor_state st;
	struct cas_msg req, reply;
	char errmsg[256] = "";

	/* A good empty record (n_recent 0, len 0) reads back. */
	rec[8] = 7; /* promise.counter */
	put_raw(f, "ok", rec, 56);
	assert_state(f, "ok", B(7, 0), B(0, 0), "", 0);

	/* Length field disagrees with the size. */
	rec[48] = 5;
	put_raw(f, "bad", rec, 56);
	assert_int_equal(cas_store_get(f->store, "bad", &st, errmsg, sizeof(errmsg)), CAS_EIO);
	assert_non_null(strstr(errmsg, "corrupt"));
	req = prepare_msg("bad", B(100, 1));
	assert_int_equal(handle(f, &req, &reply), CAS_EIO);
	assert_int_equal(reply.type, CAS_MSG_NONE);
	/* Unknown format, too many recent ids, truncated. */
	rec[48] = 0;
	rec[0] = CAS_STORE_FORMAT + 1;
	put_raw(f, "bad", rec, 56);
	assert_int_equal(handle(f, &req, &reply), CAS_EIO);
	rec[0] = CAS_STORE_FORMAT;
	rec[1] = CAS_RECENT_MAX + 1;
	put_raw(f, "bad", rec, 64);
	assert_int_equal(handle(f, &req, &reply), CAS_EIO);
	rec[1] = 0;
	put_raw(f, "bad", rec, 20);
	assert_int_equal(handle(f, &req, &reply), CAS_EIO);
}

static void test_lmdb_error_carries_reason(void **state)
{
	struct fixture *f = *state;
	struct cas_msg req, reply;
	char errmsg[256] = "", *big;
	struct cas_store *other;
	size_t len = 4u << 20;

	/* A map far too small for the value: MDB_MAP_FULL, said as such. */
	reopen(f, 1u << 20);
	big = malloc(len + 1);
	assert_non_null(big);
	memset(big, 'z', len);
	big[len] = '\0';
	req = accept_msg("k", B(1, 1), big, 1);
	assert_int_equal(cas_store_handle(f->store, &req, &reply, errmsg, sizeof(errmsg)), CAS_EIO);
	assert_non_null(strstr(errmsg, "MDB_MAP_FULL"));
	assert_int_equal(reply.type, CAS_MSG_NONE);
	free(big);
	assert_state(f, "k", B(0, 0), B(0, 0), "", 0);

	/* Opening a folder that does not exist names the folder. */
	assert_int_equal(
		cas_store_open("/nonexistent/cas-test", NULL, &other, errmsg, sizeof(errmsg)),
		CAS_EIO);
	assert_null(other);
	assert_non_null(strstr(errmsg, "/nonexistent/cas-test"));
}

/* Completions of cas_store_submit calls, counted. */
struct done_count {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int n;
};

static struct done_count done_count = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static void count_done(struct cas_store_op *op)
{
	struct done_count *d = op->arg;

	pthread_mutex_lock(&d->lock);
	d->n++;
	pthread_cond_signal(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/* Submits reqs[0..n) while the store is held, so that they make one
 * batch in that order, then releases it and waits for every outcome. */
static void run_batch(struct fixture *f, const struct cas_msg *reqs, struct cas_store_op *ops,
		      int n)
{
	int i;

	done_count.n = 0;
	cas_store_hold(f->store, true);
	for (i = 0; i < n; i++) {
		memset(&ops[i], 0, sizeof(ops[i]));
		ops[i].req = &reqs[i];
		ops[i].done = count_done;
		ops[i].arg = &done_count;
		assert_int_equal(cas_store_submit(f->store, &ops[i]), CAS_OK);
	}
	assert_int_equal(cas_store_waiting(f->store), n);
	cas_store_hold(f->store, false);
	pthread_mutex_lock(&done_count.lock);
	while (done_count.n < n)
		pthread_cond_wait(&done_count.cond, &done_count.lock);
	pthread_mutex_unlock(&done_count.lock);
	assert_int_equal(cas_store_waiting(f->store), 0);
}

static void test_batch_in_order(void **state)
{
	struct fixture *f = *state;
	struct cas_msg reqs[7];
	struct cas_store_op ops[7];
	struct cas_store_stats st;
	int i;

	reqs[0] = prepare_msg("k", B(5, 1));
	reqs[1] = prepare_msg("k", B(4, 1));		  /* below 5: rejected */
	reqs[2] = accept_msg("k", B(5, 1), "five", 1);	  /* sees the promise */
	reqs[3] = prepare_msg("k", B(6, 1));		  /* sees the accept */
	reqs[4] = accept_msg("k", B(5, 1), "late", 2);	  /* below 6: rejected */
	reqs[5] = accept_msg("other", B(1, 1), "one", 1); /* another key */
	reqs[6] = prepare_msg("k", B(6, 1));		  /* the same ballot again */
	run_batch(f, reqs, ops, 7);
	for (i = 0; i < 7; i++)
		assert_int_equal(ops[i].err, CAS_OK);
	assert_int_equal(ops[0].reply.type, CAS_MSG_PROMISE);
	assert_true(cas_ballot_is_zero(ops[0].reply.ballot));
	assert_int_equal(ops[1].reply.type, CAS_MSG_REJECT);
	assert_int_equal(cas_ballot_cmp(ops[1].reply.ballot, B(5, 1)), 0);
	assert_int_equal(ops[2].reply.type, CAS_MSG_ACCEPTED);
	assert_int_equal(ops[3].reply.type, CAS_MSG_PROMISE);
	assert_int_equal(cas_ballot_cmp(ops[3].reply.ballot, B(5, 1)), 0);
	assert_int_equal(ops[3].reply.value.len, 4);
	assert_memory_equal(ops[3].reply.value.data, "five", 4);
	assert_int_equal(ops[4].reply.type, CAS_MSG_REJECT);
	assert_int_equal(cas_ballot_cmp(ops[4].reply.ballot, B(6, 1)), 0);
	assert_int_equal(ops[5].reply.type, CAS_MSG_ACCEPTED);
	assert_int_equal(ops[6].reply.type, CAS_MSG_REJECT);
	for (i = 0; i < 7; i++)
		cas_msg_clear(&ops[i].reply);

	/* One commit carried the four changes. */
	cas_store_get_stats(f->store, &st);
	assert_int_equal(st.commits, 1);
	assert_int_equal(st.changes, 4);
	assert_int_equal(st.largest_batch, 7);
	reopen(f, 0);
	assert_state(f, "k", B(6, 1), B(5, 1), "five", 1);
	assert_state(f, "other", B(1, 1), B(1, 1), "one", 1);
}

/* Fails the commit of any batch that would change key "boom". */
static int fault_boom(void *arg, const struct cas_msg *req)
{
	struct fault *ft = arg;

	ft->calls++;
	return strcmp(req->key, "boom") == 0;
}

static void test_failed_batch_fails_all(void **state)
{
	struct fixture *f = *state;
	struct fault ft = {0, 0};
	struct cas_msg reqs[5], reply;
	struct cas_store_op ops[5];
	struct cas_store_stats st;
	uint64_t n;
	char errmsg[256];
	int i;

	reqs[0] = accept_msg("k", B(2, 1), "first", 1);
	assert_int_equal(handle(f, &reqs[0], &reply), CAS_OK);
	cas_msg_clear(&reply);

	cas_store_set_fault(f->store, fault_boom, &ft);
	reqs[0] = prepare_msg("k", B(3, 1));
	reqs[1] = accept_msg("k", B(3, 1), "second", 2);
	reqs[2] = prepare_msg("k", B(1, 1)); /* a reject, in a failed batch */
	reqs[3] = prepare_msg("fresh", B(1, 1));
	reqs[4] = accept_msg("boom", B(1, 1), "x", 1);
	run_batch(f, reqs, ops, 5);
	/* The hook saw every change up to the one it failed on. */
	assert_int_equal(ft.calls, 4);
	for (i = 0; i < 5; i++) {
		assert_int_equal(ops[i].err, CAS_EIO);
		assert_non_null(strstr(ops[i].errmsg, "injected"));
		assert_int_equal(ops[i].reply.type, CAS_MSG_NONE);
		assert_null(ops[i].reply.value.data);
	}
	cas_store_get_stats(f->store, &st);
	assert_int_equal(st.commits, 1); /* the first accept only */

	/* Nothing of the batch reached the disk. */
	reopen(f, 0);
	assert_state(f, "k", B(2, 1), B(2, 1), "first", 1);
	assert_state(f, "fresh", B(0, 0), B(0, 0), "", 0);
	assert_state(f, "boom", B(0, 0), B(0, 0), "", 0);
	assert_int_equal(cas_store_count(f->store, &n, errmsg, sizeof(errmsg)), CAS_OK);
	assert_int_equal(n, 1);

	/* The same batch without "boom" commits. */
	cas_store_set_fault(f->store, fault_boom, &ft);
	run_batch(f, reqs, ops, 4);
	for (i = 0; i < 4; i++)
		assert_int_equal(ops[i].err, CAS_OK);
	assert_int_equal(ops[2].reply.type, CAS_MSG_REJECT);
	assert_int_equal(cas_ballot_cmp(ops[2].reply.ballot, B(3, 1)), 0);
	for (i = 0; i < 4; i++)
		cas_msg_clear(&ops[i].reply);
	reopen(f, 0);
	assert_state(f, "k", B(3, 1), B(3, 1), "second", 2);
	assert_state(f, "fresh", B(1, 1), B(0, 0), "", 0);
}

static void test_batch_skips_bad_record(void **state)
{
	struct fixture *f = *state;
	unsigned char rec[64] = {CAS_STORE_FORMAT, 0};
	struct cas_msg reqs[3];
	struct cas_store_op ops[3];

	/* A corrupt record fails its request alone; the others commit. */
	rec[48] = 5; /* length disagrees with the size */
	put_raw(f, "bad", rec, 56);
	reqs[0] = prepare_msg("a", B(1, 1));
	reqs[1] = prepare_msg("bad", B(1, 1));
	reqs[2] = accept_msg("a", B(1, 1), "v", 1);
	run_batch(f, reqs, ops, 3);
	assert_int_equal(ops[0].err, CAS_OK);
	assert_int_equal(ops[0].reply.type, CAS_MSG_PROMISE);
	assert_int_equal(ops[1].err, CAS_EIO);
	assert_non_null(strstr(ops[1].errmsg, "corrupt"));
	assert_int_equal(ops[1].reply.type, CAS_MSG_NONE);
	assert_int_equal(ops[2].err, CAS_OK);
	assert_int_equal(ops[2].reply.type, CAS_MSG_ACCEPTED);
	reopen(f, 0);
	assert_state(f, "a", B(1, 1), B(1, 1), "v", 1);
}

#define THREADS 4
#define ROUNDS	50

struct worker {
	struct fixture *f;
	int id;
	int accepted;
};

/* Each thread runs prepare+accept rounds on its own key and on a key
 * shared by all. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct cas_msg req, reply;
	char key[16], errmsg[256];
	int i;

	snprintf(key, sizeof(key), "own%d", w->id);
	for (i = 1; i <= ROUNDS; i++) {
		req = prepare_msg(key, B((uint64_t)i, (uint64_t)w->id));
		if (cas_store_handle(w->f->store, &req, &reply, errmsg, sizeof(errmsg)) ||
		    reply.type != CAS_MSG_PROMISE)
			return NULL;
		cas_msg_clear(&reply);
		req = accept_msg(key, B((uint64_t)i, (uint64_t)w->id), "v", (uint64_t)i);
		if (cas_store_handle(w->f->store, &req, &reply, errmsg, sizeof(errmsg)) ||
		    reply.type != CAS_MSG_ACCEPTED)
			return NULL;
		cas_msg_clear(&reply);
		req = accept_msg("shared", B((uint64_t)i, (uint64_t)w->id), "s", (uint64_t)i);
		if (cas_store_handle(w->f->store, &req, &reply, errmsg, sizeof(errmsg)))
			return NULL;
		w->accepted += reply.type == CAS_MSG_ACCEPTED;
		cas_msg_clear(&reply);
	}
	return w;
}

static void test_threads(void **state)
{
	struct fixture *f = *state;
	struct worker w[THREADS];
	pthread_t t[THREADS];
	char key[16];
	int i, accepted = 0;
	void *ret;

	for (i = 0; i < THREADS; i++) {
		w[i] = (struct worker){f, i + 1, 0};
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	/* Join all before any check: a failed check ends the test and
	 * closes the store under running threads. */
	for (i = 0; i < THREADS; i++) {
		if (pthread_join(t[i], &ret) || ret != &w[i])
			w[i].accepted = -1000;
	}
	for (i = 0; i < THREADS; i++) {
		assert_true(w[i].accepted >= 0);
		accepted += w[i].accepted;
	}
	assert_true(accepted >= 1);
	for (i = 0; i < THREADS; i++) {
		snprintf(key, sizeof(key), "own%d", i + 1);
		assert_state(f, key, B(ROUNDS, (uint64_t)i + 1), B(ROUNDS, (uint64_t)i + 1), "v",
			     ROUNDS);
	}
	/* Whoever came last, the highest ballot won the shared key. */
	assert_state(f, "shared", B(ROUNDS, THREADS), B(ROUNDS, THREADS), "s", ROUNDS);
}

/* Many threads at once on shared and private keys. Every reply must fit
 * the acceptor rules in some serial order, and what the last change of
 * that order left must be on disk after a reopen. */
#define SERIAL_THREADS 16
#define SERIAL_ROUNDS  25
#define SERIAL_KEYS    3 /* "shared", "pair<t/2>", "own<t>" */
#define SERIAL_OPS     (SERIAL_ROUNDS * SERIAL_KEYS * 2)

struct op_rec {
	enum cas_msg_type type; /* PREPARE or ACCEPT */
	struct cas_ballot b;
	int err;
	enum cas_msg_type reply;
	struct cas_ballot rb;
	uint64_t version;
	char data[32];
	char key[16];
};

struct serial_worker {
	struct fixture *f;
	int t;
	struct op_rec recs[SERIAL_OPS];
};

static void serial_key(int t, int k, char *key, size_t len)
{
	if (k == 0)
		snprintf(key, len, "shared");
	else if (k == 1)
		snprintf(key, len, "pair%d", t / 2);
	else
		snprintf(key, len, "own%d", t);
}

static void *serial_main(void *arg)
{
	struct serial_worker *w = arg;
	struct cas_msg req, reply;
	char errmsg[256];
	struct op_rec *r = w->recs;
	int i, k, phase;

	for (i = 1; i <= SERIAL_ROUNDS; i++) {
		for (k = 0; k < SERIAL_KEYS; k++) {
			for (phase = 0; phase < 2; phase++, r++) {
				serial_key(w->t, k, r->key, sizeof(r->key));
				r->b = B((uint64_t)i, (uint64_t)w->t + 1);
				if (phase == 0) {
					req = prepare_msg(r->key, r->b);
				} else {
					snprintf(r->data, sizeof(r->data), "t%d-r%d", w->t, i);
					req = accept_msg(r->key, r->b, r->data, (uint64_t)i);
				}
				r->type = req.type;
				r->err = cas_store_handle(w->f->store, &req, &reply, errmsg,
							  sizeof(errmsg));
				r->reply = reply.type;
				r->rb = reply.ballot;
				if (reply.type == CAS_MSG_PROMISE) {
					r->version = reply.value.version;
					snprintf(r->data, sizeof(r->data), "%.*s",
						 (int)reply.value.len, (char *)reply.value.data);
				}
				cas_msg_clear(&reply);
			}
		}
	}
	return w;
}

static int cmp_success(const void *a, const void *b)
{
	const struct op_rec *x = *(const struct op_rec *const *)a;
	const struct op_rec *y = *(const struct op_rec *const *)b;
	int c = cas_ballot_cmp(x->b, y->b);

	if (c)
		return c;
	return (x->type == CAS_MSG_ACCEPT) - (y->type == CAS_MSG_ACCEPT);
}

/* Checks the ops on key against the rules. With ballots unique to each
 * (thread, round) and accepts without "next", a success installs its
 * ballot as the promise and never lowers it: the successes in ballot
 * order, a prepare before the accept of its ballot, are the serial order.
 * A reject fits it where the promise equalled its blocking ballot. */
static void check_key_history(struct fixture *f, struct serial_worker *ws, const char *key)
{
	struct op_rec *succ[SERIAL_THREADS * SERIAL_OPS], *r;
	struct cas_ballot promise = {0, 0}, accepted = {0, 0};
	uint64_t version = 0;
	const char *data = "";
	size_t n = 0, i, j;
	int t;

	for (t = 0; t < SERIAL_THREADS; t++)
		for (i = 0; i < SERIAL_OPS; i++)
			if (strcmp(ws[t].recs[i].key, key) == 0 &&
			    ws[t].recs[i].reply != CAS_MSG_REJECT)
				succ[n++] = &ws[t].recs[i];
	qsort(succ, n, sizeof(succ[0]), cmp_success);
	for (i = 0; i < n; i++) {
		r = succ[i];
		if (r->type == CAS_MSG_PREPARE) {
			assert_int_equal(r->reply, CAS_MSG_PROMISE);
			assert_true(cas_ballot_cmp(r->b, promise) > 0);
			assert_true(cas_ballot_cmp(r->b, accepted) > 0);
			/* The accepted ballot and value, not the promise. */
			assert_int_equal(cas_ballot_cmp(r->rb, accepted), 0);
			assert_int_equal(r->version, version);
			assert_string_equal(r->data, data);
			promise = r->b;
		} else {
			assert_int_equal(r->reply, CAS_MSG_ACCEPTED);
			assert_true(cas_ballot_cmp(r->b, promise) >= 0);
			assert_int_equal(cas_ballot_cmp(r->rb, r->b), 0);
			promise = accepted = r->b;
			version = r->b.counter;
			data = r->data;
		}
	}
	for (t = 0; t < SERIAL_THREADS; t++) {
		for (i = 0; i < SERIAL_OPS; i++) {
			r = &ws[t].recs[i];
			if (strcmp(r->key, key) || r->reply != CAS_MSG_REJECT)
				continue;
			if (r->type == CAS_MSG_PREPARE)
				assert_true(cas_ballot_cmp(r->b, r->rb) <= 0);
			else
				assert_true(cas_ballot_cmp(r->b, r->rb) < 0);
			/* The blocking ballot was the promise at some point. */
			for (j = 0; j < n; j++)
				if (cas_ballot_cmp(succ[j]->b, r->rb) == 0)
					break;
			assert_true(j < n);
		}
	}
	assert_state(f, key, promise, accepted, data, version);
}

static void test_threads_serial(void **state)
{
	struct fixture *f = *state;
	struct serial_worker *ws;
	pthread_t t[SERIAL_THREADS];
	struct cas_store_stats st;
	char key[16];
	size_t i;
	int k, w;
	void *ret;

	ws = calloc(SERIAL_THREADS, sizeof(*ws));
	assert_non_null(ws);
	for (w = 0; w < SERIAL_THREADS; w++) {
		ws[w].f = f;
		ws[w].t = w;
		assert_int_equal(pthread_create(&t[w], NULL, serial_main, &ws[w]), 0);
	}
	/* Join all before any check: a failed check ends the test and
	 * closes the store under running threads. */
	for (w = 0; w < SERIAL_THREADS; w++)
		if (pthread_join(t[w], &ret) || ret != &ws[w])
			ws[w].recs[0].err = -1;
	for (w = 0; w < SERIAL_THREADS; w++)
		for (i = 0; i < SERIAL_OPS; i++)
			assert_int_equal(ws[w].recs[i].err, CAS_OK);
	cas_store_get_stats(f->store, &st);
	printf("# %llu changes in %llu commits, at most %llu requests in one\n",
	       (unsigned long long)st.changes, (unsigned long long)st.commits,
	       (unsigned long long)st.largest_batch);

	/* Everything acknowledged is durable. */
	reopen(f, 0);
	for (w = 0; w < SERIAL_THREADS; w++) {
		for (k = 0; k < SERIAL_KEYS; k++) {
			serial_key(w, k, key, sizeof(key));
			if (k == 0 && w > 0)
				continue;
			if (k == 1 && w % 2)
				continue;
			check_key_history(f, ws, key);
		}
	}
	/* Own keys saw no rival: every round was promised and accepted. */
	assert_state(f, "own0", B(SERIAL_ROUNDS, 1), B(SERIAL_ROUNDS, 1), "t0-r25", SERIAL_ROUNDS);
	free(ws);
}

/* ---- The write-ahead log ---- */

#define SMALL_WAL	CAS_STORE_MIN_WAL_SIZE
#define WAL_TEST_HEADER 28

/* CRC-32C of a log entry as store.h lays it out, computed here
 * bit by bit, apart from the store's table. */
static uint32_t wal_test_crc(const unsigned char *entry, size_t len)
{
	uint32_t crc = 0xffffffffu;
	size_t i;
	int k;

	for (i = 0; i < WAL_TEST_HEADER + len; i++) {
		if (i >= 24 && i < WAL_TEST_HEADER)
			continue;
		crc ^= entry[i];
		for (k = 0; k < 8; k++)
			crc = crc & 1 ? crc >> 1 ^ 0x82f63b78u : crc >> 1;
	}
	return ~crc;
}

/* Opens the fixture's folder with a log of wal_size bytes. */
static void reopen_wal(struct fixture *f, size_t wal_size)
{
	struct cas_store_config cfg = {.wal_size = wal_size, .buffered_log = buffered_log()};
	char errmsg[256];

	cas_store_close(f->store);
	f->store = NULL;
	assert_int_equal(cas_store_open(f->dir, &cfg, &f->store, errmsg, sizeof(errmsg)), CAS_OK);
}

/* Runs fn on a store of f's folder in a child process that then dies
 * without closing it: what fn's requests left is what a crash leaves.
 * The fixture's own store is closed first. */
static void in_crashing_child_cfg(struct fixture *f, struct cas_store_config cfg,
				  void (*fn)(struct cas_store *s, void *arg), void *arg)
{
	struct cas_store *s;
	char errmsg[256];
	int status;
	pid_t pid;

	cas_store_close(f->store);
	f->store = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (cas_store_open(f->dir, &cfg, &s, errmsg, sizeof(errmsg)) != CAS_OK)
			_exit(10);
		fn(s, arg);
		_exit(0); /* no cas_store_close: no checkpoint */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void in_crashing_child(struct fixture *f, size_t wal_size,
			      void (*fn)(struct cas_store *s, void *arg), void *arg)
{
	struct cas_store_config cfg = {.wal_size = wal_size, .buffered_log = buffered_log()};

	in_crashing_child_cfg(f, cfg, fn, arg);
}

/* Accepts "k<i % keys>" = "v<i>" for i in [from, to), ballot i, as one
 * request each; exits the process on any failure. */
struct writes {
	int from, to, keys;
};

static void do_writes(struct cas_store *s, void *arg)
{
	const struct writes *w = arg;
	struct cas_msg req, reply;
	char key[32], data[32], errmsg[256];
	int i;

	for (i = w->from; i < w->to; i++) {
		snprintf(key, sizeof(key), "k%d", i % w->keys);
		snprintf(data, sizeof(data), "v%05d", i);
		req = accept_msg(key, B((uint64_t)i + 1, 1), data, (uint64_t)i + 1);
		if (cas_store_handle(s, &req, &reply, errmsg, sizeof(errmsg)) != CAS_OK ||
		    reply.type != CAS_MSG_ACCEPTED)
			_exit(11);
		cas_msg_clear(&reply);
	}
}

/* The state do_writes leaves for key number k after writes [0, n). */
static void assert_written(struct fixture *f, int k, int n, int keys)
{
	char key[32], data[32];
	int i = k + (n - 1 - k) / keys * keys; /* the last i < n with i % keys == k */

	snprintf(key, sizeof(key), "k%d", k);
	snprintf(data, sizeof(data), "v%05d", i);
	assert_state(f, key, B((uint64_t)i + 1, 1), B((uint64_t)i + 1, 1), data, (uint64_t)i + 1);
}

static void test_wal_replay_after_crash(void **state)
{
	struct fixture *f = *state;
	struct writes w = {0, 40, 7};
	struct cas_store_stats st;
	char errmsg[256];
	uint64_t n;
	int k;

	in_crashing_child(f, 0, do_writes, &w);
	reopen_wal(f, 0);
	cas_store_get_stats(f->store, &st);
	assert_int_equal(st.replayed, 40);
	assert_int_equal(st.checkpoints, 1);
	for (k = 0; k < 7; k++)
		assert_written(f, k, 40, 7);
	assert_int_equal(cas_store_count(f->store, &n, errmsg, sizeof(errmsg)), CAS_OK);
	assert_int_equal(n, 7);
	/* Replayed into LMDB: a second start has nothing left to replay. */
	reopen_wal(f, 0);
	cas_store_get_stats(f->store, &st);
	assert_int_equal(st.replayed, 0);
	assert_written(f, 3, 40, 7);
}

static void test_wal_checkpoints_when_full(void **state)
{
	struct fixture *f = *state;
	struct writes w = {0, 3000, 50};
	struct cas_store_stats st;
	char errmsg[256];
	uint64_t n;
	int k;

	/* About 200 bytes an entry: 3000 of them fill a small log many
	 * times over; the child reports its checkpoints through the state
	 * it leaves. */
	in_crashing_child(f, SMALL_WAL, do_writes, &w);
	reopen_wal(f, SMALL_WAL);
	cas_store_get_stats(f->store, &st);
	assert_true(st.replayed > 0);
	assert_true(st.replayed < 3000); /* the rest went in by checkpoints */
	for (k = 0; k < 50; k++)
		assert_written(f, k, 3000, 50);
	assert_int_equal(cas_store_count(f->store, &n, errmsg, sizeof(errmsg)), CAS_OK);
	assert_int_equal(n, 50);

	/* In this process too: checkpoints counted, reads right throughout. */
	w = (struct writes){3000, 4000, 50};
	do_writes(f->store, &w);
	cas_store_get_stats(f->store, &st);
	assert_true(st.checkpoints >= 2);
	for (k = 0; k < 50; k++)
		assert_written(f, k, 4000, 50);
	assert_int_equal(cas_store_count(f->store, &n, errmsg, sizeof(errmsg)), CAS_OK);
	assert_int_equal(n, 50);
}

/* Reads the log file of f's folder. */
static unsigned char *read_wal(struct fixture *f, size_t *size)
{
	char path[4200];
	unsigned char *buf;
	struct stat sb;
	int fd;

	snprintf(path, sizeof(path), "%s/wal", f->dir);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	*size = (size_t)sb.st_size;
	buf = malloc(*size);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, *size, 0), (ssize_t)*size);
	close(fd);
	return buf;
}

static void write_wal(struct fixture *f, const unsigned char *buf, size_t size)
{
	char path[4200];
	int fd;

	snprintf(path, sizeof(path), "%s/wal", f->dir);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, size, 0), (ssize_t)size);
	close(fd);
}

static void test_wal_torn_tail(void **state)
{
	struct fixture *f = *state;
	struct writes w = {0, 10, 10};
	struct cas_store_stats st;
	unsigned char *buf;
	size_t size, end;
	int k;

	in_crashing_child(f, 0, do_writes, &w);
	/* Tear the last entry: its last byte is lost. */
	buf = read_wal(f, &size);
	for (end = size; end > 0 && !buf[end - 1]; end--)
		;
	assert_true(end > 0);
	buf[end - 1] ^= 0x5a;
	write_wal(f, buf, size);
	free(buf);
	reopen_wal(f, 0);
	cas_store_get_stats(f->store, &st);
	assert_int_equal(st.replayed, 9);
	for (k = 0; k < 9; k++)
		assert_written(f, k, 10, 10);
	assert_state(f, "k9", B(0, 0), B(0, 0), "", 0);
}

static void test_wal_stale_epoch_ignored(void **state)
{
	struct fixture *f = *state;
	struct writes w = {0, 2, 1};
	struct cas_store_stats st;
	unsigned char *before, *after;
	size_t size;

	/* Epoch 0 holds k0 = v00000, then k0 = v00001; a restart replays
	 * both and starts epoch 1, leaving them in the file. */
	in_crashing_child(f, 0, do_writes, &w);
	before = read_wal(f, &size);
	reopen_wal(f, 0);
	assert_written(f, 0, 2, 1);
	/* Epoch 1 writes one entry of the same size over the first: the
	 * second entry of epoch 0 follows it, with a higher seq. */
	w = (struct writes){2, 3, 1};
	in_crashing_child(f, 0, do_writes, &w);
	after = read_wal(f, &size);
	assert_memory_not_equal(before, after, 64);
	free(before);
	free(after);
	reopen_wal(f, 0);
	cas_store_get_stats(f->store, &st);
	assert_int_equal(st.replayed, 1);
	assert_written(f, 0, 3, 1);
}

/* Promises key "<prefix><i>" (42 characters: every log entry of a
 * promise-only record is 128 bytes, so 32 fill a log block) at ballot
 * counter/1 for i in [0, n), as one batch. */
static void prepare_batch(struct cas_store *s, char prefix, int n, uint64_t counter)
{
	struct cas_msg *reqs = calloc((size_t)n, sizeof(*reqs));
	struct cas_store_op *ops = calloc((size_t)n, sizeof(*ops));
	char key[64];
	int i;

	if (!reqs || !ops)
		_exit(12);
	done_count.n = 0;
	cas_store_hold(s, true);
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "%c%041d", prefix, i);
		reqs[i] = prepare_msg(key, B(counter, 1));
		ops[i].req = &reqs[i];
		ops[i].done = count_done;
		ops[i].arg = &done_count;
		if (cas_store_submit(s, &ops[i]))
			_exit(13);
	}
	cas_store_hold(s, false);
	pthread_mutex_lock(&done_count.lock);
	while (done_count.n < n)
		pthread_cond_wait(&done_count.cond, &done_count.lock);
	pthread_mutex_unlock(&done_count.lock);
	for (i = 0; i < n; i++) {
		if (ops[i].err || ops[i].reply.type != CAS_MSG_PROMISE)
			_exit(14);
		cas_msg_clear(&ops[i].reply);
	}
	free(ops);
	free(reqs);
}

static void first_batch(struct cas_store *s, void *arg)
{
	(void)arg;
	prepare_batch(s, 'q', 64, 10); /* offsets 0 to 8192 */
	prepare_batch(s, 'p', 64, 10); /* 8192 to 16384 */
}

static void second_batch(struct cas_store *s, void *arg)
{
	(void)arg;
	prepare_batch(s, 'p', 64, 20); /* 0 to 8192: up to the stale "p" entries */
}

static void test_wal_restart_replaying_nothing(void **state)
{
	struct fixture *f = *state;
	struct cas_acceptor_state st;
	char key[64], errmsg[256];
	unsigned char *buf;
	int i, back = 0;
	size_t size;

	/* The first batches after a checkpoint, as a crash leaves them, then
	 * power lost mid-write: the first block never reached the disk, the
	 * later ones did (an unacknowledged batch, torn). */
	in_crashing_child(f, 0, first_batch, NULL);
	buf = read_wal(f, &size);
	memset(buf, 0, 4096);
	write_wal(f, buf, size);
	free(buf);
	/* The next start replays nothing. Its acknowledged promises at 20
	 * end where the torn batch's stale entries of "p" begin. */
	in_crashing_child(f, 0, second_batch, NULL);
	reopen_wal(f, 0);
	for (i = 0; i < 64; i++) {
		snprintf(key, sizeof(key), "p%041d", i);
		assert_int_equal(cas_store_get(f->store, key, &st, errmsg, sizeof(errmsg)), CAS_OK);
		back += st.promise.counter != 20;
		free(st.value.data);
	}
	if (back)
		print_message("%d of 64 acknowledged promises went back from 20/1\n", back);
	assert_int_equal(back, 0);
}

static void test_wal_bad_entry_refuses_to_open(void **state)
{
	struct fixture *f = *state;
	struct writes w = {0, 3, 3};
	struct cas_store *s = NULL;
	char errmsg[256] = "";
	unsigned char *buf;
	size_t size, len;
	uint32_t crc = 0;

	in_crashing_child(f, 0, do_writes, &w);
	/* A first entry whose checksum holds but whose key is bad is no
	 * torn write: the store must not open (and skip what follows). */
	buf = read_wal(f, &size);
	len = (size_t)buf[4] | (size_t)buf[5] << 8;
	buf[WAL_TEST_HEADER + 2] = ' ';
	crc = wal_test_crc(buf, len);
	memcpy(buf + 24, &crc, 4); /* little-endian machine */
	write_wal(f, buf, size);
	free(buf);
	assert_int_equal(cas_store_open(f->dir, NULL, &s, errmsg, sizeof(errmsg)), CAS_EIO);
	assert_null(s);
	assert_non_null(strstr(errmsg, "bad entry at offset 0"));
	/* Repaired, it opens (the fixture's teardown needs a store). */
	buf = read_wal(f, &size);
	memset(buf, 0, size);
	write_wal(f, buf, size);
	free(buf);
	reopen_wal(f, 0);
}

/* What a sync failure leaves: the acknowledged state, and a prepare of
 * "k" at 5/1 that failed, which may or may not be there. */
static void assert_after_sync_failure(struct fixture *f)
{
	struct cas_acceptor_state st;
	char errmsg[256];

	assert_int_equal(cas_store_get(f->store, "k", &st, errmsg, sizeof(errmsg)), CAS_OK);
	assert_int_equal(cas_ballot_cmp(st.accepted, B(2, 1)), 0);
	assert_true(cas_ballot_cmp(st.promise, B(2, 1)) == 0 ||
		    cas_ballot_cmp(st.promise, B(5, 1)) == 0);
	assert_int_equal(st.value.len, 5);
	assert_memory_equal(st.value.data, "first", 5);
	free(st.value.data);
	assert_state(f, "j", B(3, 1), B(0, 0), "", 0);
	assert_state(f, "later", B(0, 0), B(0, 0), "", 0);
}

/* Acknowledged changes, then a batch whose sync fails, then more
 * requests: returns 0, or the number of the first step whose outcome is
 * not as store.h says. */
static int sync_failure_steps(struct cas_store *s)
{
	struct cas_msg reqs[2], req, reply;
	struct cas_store_op ops[2];
	char errmsg[256], reason[256];
	int i;

	req = accept_msg("k", B(2, 1), "first", 1);
	if (cas_store_handle(s, &req, &reply, errmsg, sizeof(errmsg)))
		return 20;
	cas_msg_clear(&reply);
	req = prepare_msg("j", B(3, 1));
	if (cas_store_handle(s, &req, &reply, errmsg, sizeof(errmsg)))
		return 21;
	cas_msg_clear(&reply);
	if (!cas_store_writable(s, reason, sizeof(reason)))
		return 22;

	/* The batch whose sync fails: each of its requests gets an error. */
	cas_store_fail_log_syncs(s, 1);
	reqs[0] = prepare_msg("k", B(5, 1));
	reqs[1] = accept_msg("fresh", B(1, 1), "x", 1);
	done_count.n = 0;
	cas_store_hold(s, true);
	for (i = 0; i < 2; i++) {
		memset(&ops[i], 0, sizeof(ops[i]));
		ops[i].req = &reqs[i];
		ops[i].done = count_done;
		ops[i].arg = &done_count;
		if (cas_store_submit(s, &ops[i]))
			return 23;
	}
	cas_store_hold(s, false);
	pthread_mutex_lock(&done_count.lock);
	while (done_count.n < 2)
		pthread_cond_wait(&done_count.cond, &done_count.lock);
	pthread_mutex_unlock(&done_count.lock);
	for (i = 0; i < 2; i++)
		if (ops[i].err != CAS_EIO || ops[i].reply.type != CAS_MSG_NONE ||
		    !strstr(ops[i].errmsg, "write-ahead log"))
			return 24;

	/* Nothing later is acknowledged, though the disk would take it now:
	 * a change, and a request that would be a reject. */
	req = prepare_msg("later", B(1, 1));
	if (cas_store_handle(s, &req, &reply, errmsg, sizeof(errmsg)) != CAS_EIO)
		return 25;
	if (!strstr(errmsg, "write-ahead log") || !strstr(errmsg, "restart"))
		return 26;
	req = prepare_msg("k", B(1, 1));
	if (cas_store_handle(s, &req, &reply, errmsg, sizeof(errmsg)) != CAS_EIO)
		return 27;
	/* The store says so, and why. */
	if (cas_store_writable(s, reason, sizeof(reason)))
		return 28;
	if (!strstr(reason, "fdatasync") && !strstr(reason, "O_DSYNC"))
		return 29;
	return 0;
}

static void sync_failure(struct cas_store *s, void *arg)
{
	int rc = sync_failure_steps(s);

	(void)arg;
	if (rc)
		_exit(rc);
}

static void test_log_sync_failure_stops_writes(void **state)
{
	struct fixture *f = *state;
	struct cas_msg req, reply;
	char reason[256];

	/* Reads go on: the state of the acknowledged changes. */
	reopen(f, 0);
	assert_int_equal(sync_failure_steps(f->store), 0);
	assert_after_sync_failure(f);
	assert_false(cas_store_writable(f->store, reason, sizeof(reason)));
	print_message("(%s)\n", reason);

	/* After a restart, the acknowledged state is there, and the store
	 * takes changes again. */
	reopen(f, 0);
	assert_true(cas_store_writable(f->store, NULL, 0));
	assert_after_sync_failure(f);
	req = prepare_msg("later", B(1, 1));
	assert_int_equal(handle(f, &req, &reply), CAS_OK);
	assert_int_equal(reply.type, CAS_MSG_PROMISE);
	assert_state(f, "later", B(1, 1), B(0, 0), "", 0);
}

static void test_log_sync_failure_then_crash(void **state)
{
	struct fixture *f = *state;

	/* The same, then the process dies without closing the store. */
	in_crashing_child(f, 0, sync_failure, NULL);
	reopen(f, 0);
	assert_after_sync_failure(f);
	assert_true(cas_store_writable(f->store, NULL, 0));
}

/* Opens the fixture's folder with a map of map_mib MiB and a small log. */
static void reopen_map(struct fixture *f, size_t map_mib)
{
	struct cas_store_config cfg = {
		.map_size = map_mib << 20, .wal_size = SMALL_WAL, .buffered_log = buffered_log()};
	char errmsg[256] = "";
	int err;

	cas_store_close(f->store);
	f->store = NULL;
	err = cas_store_open(f->dir, &cfg, &f->store, errmsg, sizeof(errmsg));
	if (err)
		print_message("cas_store_open: %s\n", errmsg);
	assert_int_equal(err, CAS_OK);
}

#define FULL_VALUE 1500 /* bytes of each value: the log takes about 40 */

/* Accepts key "f<i>" = FULL_VALUE bytes of 'a' + i % 26, ballot i + 1. */
static int accept_full(struct fixture *f, int i, char *errmsg, size_t errmsg_len)
{
	char key[16], data[FULL_VALUE + 1];
	struct cas_msg req, reply;
	int err;

	snprintf(key, sizeof(key), "f%d", i);
	memset(data, 'a' + i % 26, FULL_VALUE);
	data[FULL_VALUE] = '\0';
	req = accept_msg(key, B((uint64_t)i + 1, 1), data, 1);
	err = cas_store_handle(f->store, &req, &reply, errmsg, errmsg_len);
	if (!err)
		assert_int_equal(reply.type, CAS_MSG_ACCEPTED);
	cas_msg_clear(&reply);
	return err;
}

static void assert_full_written(struct fixture *f, int n)
{
	char key[16], data[FULL_VALUE + 1];
	int i;

	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "f%d", i);
		memset(data, 'a' + i % 26, FULL_VALUE);
		data[FULL_VALUE] = '\0';
		assert_state(f, key, B((uint64_t)i + 1, 1), B((uint64_t)i + 1, 1), data, 1);
	}
}

static void test_map_full(void **state)
{
	struct fixture *f = *state;
	char errmsg[256] = "", reason[256] = "";
	struct cas_store_stats st;
	int n, err = CAS_OK;
	uint64_t keys;

	/* Writes until LMDB's map of 1 MiB is full: a checkpoint fails. */
	reopen_map(f, 1);
	for (n = 0; n < 5000; n++) {
		err = accept_full(f, n, errmsg, sizeof(errmsg));
		if (err)
			break;
	}
	assert_int_equal(err, CAS_EIO);
	print_message("(%d acknowledged, then: %s)\n", n, errmsg);
	assert_non_null(strstr(errmsg, "MDB_MAP_FULL"));
	assert_non_null(strstr(errmsg, "--map-size"));
	assert_non_null(strstr(errmsg, "in use"));
	/* It says so while writes fail; reads go on. */
	assert_int_equal(accept_full(f, n, errmsg, sizeof(errmsg)), CAS_EIO);
	assert_false(cas_store_writable(f->store, reason, sizeof(reason)));
	assert_non_null(strstr(reason, "--map-size"));
	assert_full_written(f, n);

	/* A restart with the same map size starts (its checkpoint fails
	 * too: the log keeps the records) and serves what was acknowledged,
	 * saying it takes no changes. */
	reopen_map(f, 1);
	cas_store_get_stats(f->store, &st);
	assert_true(st.replayed > 0);
	assert_false(cas_store_writable(f->store, reason, sizeof(reason)));
	assert_non_null(strstr(reason, "--map-size"));
	assert_full_written(f, n);
	assert_int_equal(cas_store_count(f->store, &keys, errmsg, sizeof(errmsg)), CAS_OK);
	assert_int_equal(keys, n);
	/* And again: what the log keeps survives more restarts. */
	reopen_map(f, 1);
	assert_full_written(f, n);

	/* A larger map takes it all, and changes again. */
	reopen_map(f, 8);
	assert_true(cas_store_writable(f->store, NULL, 0));
	assert_full_written(f, n);
	assert_int_equal(accept_full(f, n, errmsg, sizeof(errmsg)), CAS_OK);
	assert_full_written(f, n + 1);
	assert_int_equal(cas_store_count(f->store, &keys, errmsg, sizeof(errmsg)), CAS_OK);
	assert_int_equal(keys, n + 1);
}

/* Fills the LMDB map of f's folder (1 MiB) to the brim, behind the
 * store's back, with keys no register has. */
static void fill_map(struct fixture *f)
{
	static char big[8192];
	size_t sizes[] = {sizeof(big), 1024, 128}, i;
	char key[32];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k, v;
	int n = 0, rc;

	cas_store_close(f->store);
	f->store = NULL;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_mapsize(env, 1 << 20), 0);
	assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		do {
			snprintf(key, sizeof(key), "%cfill%d", 1, n++);
			k = (MDB_val){strlen(key), key};
			v = (MDB_val){sizes[i], big};
			assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
			assert_int_equal(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
			rc = mdb_put(txn, dbi, &k, &v, 0);
			if (!rc)
				rc = mdb_txn_commit(txn);
			else
				mdb_txn_abort(txn);
		} while (!rc);
		assert_int_equal(rc, MDB_MAP_FULL);
	}
	mdb_env_close(env);
}

/* Bytes of each value below: log entries of 2048 bytes, two a block. */
#define KEEP_VALUE 1910

/* Accepts keys "f000".."f029" (log entries of 2048 bytes), ballot i + 1. */
static void thirty_accepts(struct cas_store *s, void *arg)
{
	char key[16], data[KEEP_VALUE + 1], errmsg[256];
	struct cas_msg req, reply;
	int i;

	(void)arg;
	for (i = 0; i < 30; i++) {
		snprintf(key, sizeof(key), "f%03d", i);
		memset(data, 'a' + i % 26, KEEP_VALUE);
		data[KEEP_VALUE] = '\0';
		req = accept_msg(key, B((uint64_t)i + 1, 1), data, 1);
		if (cas_store_handle(s, &req, &reply, errmsg, sizeof(errmsg)))
			_exit(30);
		cas_msg_clear(&reply);
	}
}

static void test_map_full_keeps_log(void **state)
{
	struct fixture *f = *state;
	struct cas_store_config cfg = {.map_size = 1 << 20, .buffered_log = buffered_log()};
	char key[16], data[KEEP_VALUE + 1];
	struct cas_acceptor_state st;
	struct cas_store_stats stats;
	struct cas_msg req, reply;
	unsigned char *buf;
	size_t size, entry = WAL_TEST_HEADER + 2 + 4 + 48 + 2 * 24 + 8 + KEEP_VALUE;
	char errmsg[256];
	int i;

	/* LMDB full; thirty entries in the log, the 21st torn (the batch of
	 * the last ten was never acknowledged, say), the nine after it
	 * stale entries of the epoch, with higher seqs. */
	fill_map(f);
	in_crashing_child_cfg(f, cfg, thirty_accepts, NULL);
	buf = read_wal(f, &size);
	buf[20 * entry + WAL_TEST_HEADER + 10] ^= 0x5a;
	write_wal(f, buf, size);
	free(buf);

	/* The open cannot checkpoint the twenty it replays: it keeps the
	 * log, and goes on in its epoch. Acknowledged accepts of f021 and
	 * f022 at 5000 end where the stale entry of f022 at 23 begins, at a
	 * block's start (which direct writes do not pad over). */
	reopen_map(f, 1);
	cas_store_get_stats(f->store, &stats);
	assert_int_equal(stats.replayed, 20);
	assert_false(cas_store_writable(f->store, NULL, 0));
	memset(data, 'z', KEEP_VALUE);
	data[KEEP_VALUE] = '\0';
	for (i = 21; i <= 22; i++) {
		snprintf(key, sizeof(key), "f%03d", i);
		req = accept_msg(key, B(5000, 1), data, 1);
		assert_int_equal(handle(f, &req, &reply), CAS_OK);
		assert_int_equal(reply.type, CAS_MSG_ACCEPTED);
		cas_msg_clear(&reply);
	}

	/* Replayed twice more, the acknowledged state holds. */
	for (i = 0; i < 2; i++) {
		reopen_map(f, 1);
		cas_store_get_stats(f->store, &stats);
		assert_int_equal(stats.replayed, 22);
		assert_int_equal(cas_store_get(f->store, "f022", &st, errmsg, sizeof(errmsg)),
				 CAS_OK);
		assert_int_equal(st.promise.counter, 5000);
		free(st.value.data);
		assert_int_equal(cas_store_get(f->store, "f019", &st, errmsg, sizeof(errmsg)),
				 CAS_OK);
		assert_int_equal(st.promise.counter, 20);
		free(st.value.data);
		assert_state(f, "f025", B(0, 0), B(0, 0), "", 0);
	}
	/* A map with room takes it all into LMDB. */
	reopen_map(f, 8);
	assert_true(cas_store_writable(f->store, NULL, 0));
	for (i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "f%03d", i);
		assert_int_equal(cas_store_get(f->store, key, &st, errmsg, sizeof(errmsg)), CAS_OK);
		assert_int_equal(st.promise.counter, i + 1);
		free(st.value.data);
	}
	assert_state(f, "f021", B(5000, 1), B(5000, 1), data, 1);
	assert_state(f, "f022", B(5000, 1), B(5000, 1), data, 1);
}

static void test_wal_size_checked(void **state)
{
	struct fixture *f = *state;
	struct cas_store_config cfg = {.wal_size = CAS_STORE_MIN_WAL_SIZE - 1};
	struct cas_store *s = NULL;
	char errmsg[256] = "";

	assert_int_equal(cas_store_open(f->dir, &cfg, &s, errmsg, sizeof(errmsg)), CAS_EINVAL);
	assert_null(s);
	assert_non_null(strstr(errmsg, "minimum"));
}

static void test_run_if_idle(void **state)
{
	struct fixture *f = *state;
	struct cas_msg req = prepare_msg("idle", B(5, 1));
	struct cas_store_stats st;
	struct cas_store_op op;

	memset(&op, 0, sizeof(op));
	op.req = &req;
	assert_true(cas_store_run_if_idle(f->store, &op));
	assert_int_equal(op.err, CAS_OK);
	assert_int_equal(op.reply.type, CAS_MSG_PROMISE);
	cas_store_get_stats(f->store, &st);
	assert_int_equal(st.commits, 1);
	/* Asked for, the buffered path is the one taken. */
	if (buffered_log())
		assert_false(st.direct_log);
	print_message("(the log is written %s)\n",
		      st.direct_log ? "with O_DIRECT | O_DSYNC" : "and fdatasynced");
	assert_state(f, "idle", B(5, 1), B(0, 0), "", 0);
	/* Held (as when a batch waits): not run, nothing changed. */
	cas_store_hold(f->store, true);
	req = prepare_msg("idle", B(6, 1));
	assert_false(cas_store_run_if_idle(f->store, &op));
	cas_store_hold(f->store, false);
	assert_state(f, "idle", B(5, 1), B(0, 0), "", 0);
	/* A bad key is an outcome too. */
	req = prepare_msg("bad key", B(6, 1));
	assert_true(cas_store_run_if_idle(f->store, &op));
	assert_int_equal(op.err, CAS_EKEY);
}

/* Lists all keys of f's store by pages of limit into out (one string,
 * keys separated by spaces), checking each page's "more". */
static void list_all(struct fixture *f, size_t limit, char *out, size_t out_len)
{
	char errmsg[256], last[CAS_KEY_MAX + 1] = "", **keys;
	size_t n, i;
	bool more = true;

	out[0] = '\0';
	while (more) {
		assert_int_equal(cas_store_keys(f->store, last[0] ? last : NULL, limit, &keys, &n,
						&more, errmsg, sizeof(errmsg)),
				 CAS_OK);
		assert_true(n <= limit);
		assert_true(!more || n == limit);
		for (i = 0; i < n; i++) {
			if (out[0])
				strncat(out, " ", out_len - strlen(out) - 1);
			strncat(out, keys[i], out_len - strlen(out) - 1);
			if (last[0])
				assert_true(strcmp(last, keys[i]) < 0);
			strcpy(last, keys[i]);
		}
		cas_store_keys_free(keys, n);
		if (!n)
			break;
	}
}

/* cas_store_keys: byte order (a prefix first), LMDB's keys and the
 * memtable's newer ones merged, a key in both once, the log's epoch
 * never, pages that end where they should; bad arguments change nothing. */
static void test_keys(void **state)
{
	static const char *const old[] = {"b", "a/b", "m", "z@1"};
	static const char *const fresh[] = {"a", "ab", "n", "Z", "a-"};
	struct fixture *f = *state;
	struct cas_msg req, reply;
	char all[512], errmsg[256], **keys;
	size_t i, n;
	bool more;

	list_all(f, 3, all, sizeof(all));
	assert_string_equal(all, "");
	for (i = 0; i < sizeof(old) / sizeof(old[0]); i++) {
		req = prepare_msg(old[i], B(1, 1));
		assert_int_equal(handle(f, &req, &reply), CAS_OK);
		cas_msg_clear(&reply);
	}
	reopen(f, 0); /* into LMDB */
	for (i = 0; i < sizeof(fresh) / sizeof(fresh[0]); i++) {
		req = prepare_msg(fresh[i], B(1, 1));
		assert_int_equal(handle(f, &req, &reply), CAS_OK);
		cas_msg_clear(&reply);
	}
	/* In LMDB and, newer, in the memtable. */
	req = prepare_msg("m", B(2, 1));
	assert_int_equal(handle(f, &req, &reply), CAS_OK);
	cas_msg_clear(&reply);
	/* A read makes no key. */
	assert_int_equal(cas_store_get(f->store, "q", &(struct cas_acceptor_state){0}, errmsg,
				       sizeof(errmsg)),
			 CAS_OK);

	for (i = 1; i <= 10; i++) {
		list_all(f, i, all, sizeof(all));
		assert_string_equal(all, "Z a a- a/b ab b m n z@1");
	}
	assert_int_equal(
		cas_store_keys(f->store, "a/b", 2, &keys, &n, &more, errmsg, sizeof(errmsg)),
		CAS_OK);
	assert_int_equal(n, 2);
	assert_string_equal(keys[0], "ab");
	assert_string_equal(keys[1], "b");
	assert_true(more);
	cas_store_keys_free(keys, n);
	/* after need not be a key the store holds. */
	assert_int_equal(
		cas_store_keys(f->store, "mm", 5, &keys, &n, &more, errmsg, sizeof(errmsg)),
		CAS_OK);
	assert_int_equal(n, 2);
	assert_string_equal(keys[0], "n");
	assert_string_equal(keys[1], "z@1");
	assert_false(more);
	cas_store_keys_free(keys, n);

	assert_int_equal(
		cas_store_keys(f->store, "a b", 5, &keys, &n, &more, errmsg, sizeof(errmsg)),
		CAS_EKEY);
	assert_null(keys);
	assert_int_equal(cas_store_keys(f->store, "", 5, &keys, &n, &more, errmsg, sizeof(errmsg)),
			 CAS_EKEY);
	assert_int_equal(
		cas_store_keys(f->store, NULL, 0, &keys, &n, &more, errmsg, sizeof(errmsg)),
		CAS_EINVAL);
	assert_int_equal(n, 0);

	/* After a checkpoint, all of them from LMDB alone. */
	reopen(f, 0);
	list_all(f, 4, all, sizeof(all));
	assert_string_equal(all, "Z a a- a/b ab b m n z@1");
}

/* Deletion (PROTOCOL.md, "Deletion"; store.h, "A drop"). */

/* An accept of a tombstone of key at b: version 0, no bytes, one recent
 * change (the delete's). */
static struct cas_msg tomb_msg(const char *key, struct cas_ballot b)
{
	struct cas_msg m = {.type = CAS_MSG_ACCEPT, .ballot = b};

	strcpy(m.key, key);
	m.value.n_recent = 1;
	m.value.recent[0] = (struct cas_recent){9, b.counter, 4};
	return m;
}

static struct cas_msg purge_msg(const char *key, struct cas_ballot b)
{
	struct cas_msg m = {.type = CAS_MSG_PURGE, .ballot = b};

	strcpy(m.key, key);
	return m;
}

/* Runs req and checks its answer's type and ballot. */
static void expect(struct fixture *f, struct cas_msg req, enum cas_msg_type type,
		   struct cas_ballot ballot)
{
	struct cas_msg reply;

	assert_int_equal(handle(f, &req, &reply), CAS_OK);
	assert_int_equal(reply.type, type);
	assert_int_equal(reply.ballot.counter, ballot.counter);
	assert_true(reply.ballot.id == ballot.id);
	cas_msg_clear(&reply);
}

static uint64_t count_keys(struct fixture *f)
{
	char errmsg[256];
	uint64_t n;

	assert_int_equal(cas_store_count(f->store, &n, errmsg, sizeof(errmsg)), CAS_OK);
	return n;
}

/* key has no row: it reads as all zeroes. */
static void assert_no_row(struct fixture *f, const char *key)
{
	assert_state(f, key, B(0, 0), B(0, 0), "", 0);
}

/* The store's floor and keys, and the rows of "t" (purged at 5/1 after a
 * promise of 7/2), "live" and "u" (purged at 3/1), as
 * test_purge_drops_and_raises_floor leaves them. */
static void assert_after_purges(struct fixture *f)
{
	char all[256];

	assert_int_equal(cas_store_floor(f->store), 7);
	assert_no_row(f, "t");
	assert_no_row(f, "u");
	assert_state(f, "live", B(2, 1), B(2, 1), "x", 1);
	assert_int_equal(count_keys(f), 1);
	list_all(f, 1, all, sizeof(all));
	assert_string_equal(all, "live");
}

/* A purge at the tombstone's ballot drops the key and raises the floor to
 * its promise's counter; at another ballot it changes nothing. The floor
 * then refuses low ballots on keys without a row, never goes down, and
 * all of it is there after a checkpoint, with the rows in LMDB. */
static void test_purge_drops_and_raises_floor(void **state)
{
	struct fixture *f = *state;
	const uint64_t max = UINT64_MAX;

	expect(f, accept_msg("live", B(2, 1), "x", 1), CAS_MSG_ACCEPTED, B(2, 1));
	expect(f, tomb_msg("t", B(5, 1)), CAS_MSG_ACCEPTED, B(5, 1));
	expect(f, prepare_msg("t", B(7, 2)), CAS_MSG_PROMISE, B(5, 1));
	expect(f, tomb_msg("u", B(3, 1)), CAS_MSG_ACCEPTED, B(3, 1));
	assert_int_equal(count_keys(f), 3);
	reopen(f, 0); /* "u" dropped from LMDB, "t" from the memtable */
	expect(f, prepare_msg("t", B(7, 3)), CAS_MSG_PROMISE, B(5, 1));
	assert_int_equal(cas_store_floor(f->store), 0);

	/* Another ballot, a live value, a key never seen: nothing changes. */
	expect(f, purge_msg("t", B(4, 1)), CAS_MSG_PURGED, B(5, 1));
	expect(f, purge_msg("t", B(7, 3)), CAS_MSG_PURGED, B(5, 1));
	expect(f, purge_msg("live", B(2, 1)), CAS_MSG_PURGED, B(2, 1));
	expect(f, purge_msg("never", B(1, 1)), CAS_MSG_PURGED, B(0, 0));
	assert_int_equal(cas_store_floor(f->store), 0);
	assert_int_equal(count_keys(f), 3);
	assert_state(f, "t", B(7, 3), B(5, 1), "", 0);

	/* The tombstone's ballot: dropped, the floor at the promise's 7. */
	expect(f, purge_msg("t", B(5, 1)), CAS_MSG_PURGED, B(0, 0));
	assert_int_equal(cas_store_floor(f->store), 7);
	assert_no_row(f, "t");
	assert_int_equal(count_keys(f), 2);
	/* Again: nothing left to drop. */
	expect(f, purge_msg("t", B(5, 1)), CAS_MSG_PURGED, B(0, 0));
	/* "u" is in LMDB: a drop hides its row there. Its purge's floor (3)
	 * leaves the floor at 7. */
	expect(f, purge_msg("u", B(3, 1)), CAS_MSG_PURGED, B(0, 0));
	assert_after_purges(f);

	/* On keys without a row, ballots of counter <= 7 are refused. */
	expect(f, prepare_msg("t", B(7, max - 1)), CAS_MSG_REJECT, B(7, max));
	expect(f, tomb_msg("t", B(6, 1)), CAS_MSG_REJECT, B(7, max));
	expect(f, prepare_msg("new", B(1, 1)), CAS_MSG_REJECT, B(7, max));
	reopen(f, 0);
	assert_after_purges(f);
	/* Keys with a row follow the ordinary rules alone. */
	expect(f, accept_msg("live", B(3, 1), "y", 2), CAS_MSG_ACCEPTED, B(3, 1));
	expect(f, prepare_msg("live", B(3, 1)), CAS_MSG_REJECT, B(3, 1));

	/* Above the floor, a dropped key lives again. */
	expect(f, prepare_msg("t", B(8, 1)), CAS_MSG_PROMISE, B(0, 0));
	expect(f, accept_msg("t", B(8, 1), "again", 1), CAS_MSG_ACCEPTED, B(8, 1));
	assert_state(f, "t", B(8, 1), B(8, 1), "again", 1);
	assert_int_equal(count_keys(f), 2);
	reopen(f, 0);
	assert_state(f, "t", B(8, 1), B(8, 1), "again", 1);
	assert_int_equal(cas_store_floor(f->store), 7);
	assert_int_equal(count_keys(f), 2);
}

/* What the child of test_purge_replay_after_crash does before it dies: a
 * tombstone of "t" at 5/1 promised 6/1, then purged, and "old" (in LMDB)
 * purged. */
static void purge_then_crash(struct cas_store *s, void *arg)
{
	struct cas_msg reqs[4], reply;
	char errmsg[256];
	int i;

	(void)arg;
	reqs[0] = tomb_msg("t", B(5, 1));
	reqs[1] = prepare_msg("t", B(6, 1));
	reqs[2] = purge_msg("t", B(5, 1));
	reqs[3] = purge_msg("old", B(4, 1));
	for (i = 0; i < 4; i++) {
		if (cas_store_handle(s, &reqs[i], &reply, errmsg, sizeof(errmsg)) != CAS_OK)
			_exit(11);
		if (i >= 2 && (reply.type != CAS_MSG_PURGED || !cas_ballot_is_zero(reply.ballot)))
			_exit(12);
		cas_msg_clear(&reply);
	}
}

/* The log entry at *off of buf, which must be a drop of key with floor:
 * one entry deletes the row and raises the floor. */
static void assert_drop_entry(const unsigned char *buf, size_t *off, const char *key,
			      uint64_t floor)
{
	const unsigned char *p = buf + *off, *rec;
	size_t len = (size_t)p[4] | (size_t)p[5] << 8, key_len = strlen(key);
	uint64_t got = 0;
	int i;

	assert_int_equal(len, 2 + key_len + CAS_STORE_DROP_LEN);
	assert_int_equal(p[WAL_TEST_HEADER] | p[WAL_TEST_HEADER + 1] << 8, key_len);
	assert_memory_equal(p + WAL_TEST_HEADER + 2, key, key_len);
	rec = p + WAL_TEST_HEADER + 2 + key_len;
	assert_int_equal(rec[0], CAS_STORE_DROP_FORMAT);
	for (i = 7; i >= 0; i--)
		got = got << 8 | rec[8 + i];
	assert_int_equal(got, floor);
	*off += WAL_TEST_HEADER + len;
}

/* A drop is one log entry, replayed after a crash: the row gone (from the
 * memtable and from LMDB) and the floor raised, then both in LMDB. */
static void test_purge_replay_after_crash(void **state)
{
	struct fixture *f = *state;
	struct cas_store_stats st;
	unsigned char *buf;
	size_t size, off = 0;
	char all[256];
	int i;

	expect(f, accept_msg("live", B(2, 1), "x", 1), CAS_MSG_ACCEPTED, B(2, 1));
	expect(f, tomb_msg("old", B(4, 1)), CAS_MSG_ACCEPTED, B(4, 1));
	reopen(f, 0); /* into LMDB */
	in_crashing_child(f, 0, purge_then_crash, NULL);

	buf = read_wal(f, &size);
	for (i = 0; i < 2; i++) /* the tombstone and the promise of "t" */
		off += WAL_TEST_HEADER + ((size_t)buf[off + 4] | (size_t)buf[off + 5] << 8);
	assert_drop_entry(buf, &off, "t", 6); /* the promise's counter */
	assert_drop_entry(buf, &off, "old", 6);
	free(buf);

	for (i = 0; i < 2; i++) {
		reopen_wal(f, 0);
		cas_store_get_stats(f->store, &st);
		assert_int_equal(st.replayed, i ? 0 : 4);
		assert_int_equal(cas_store_floor(f->store), 6);
		assert_no_row(f, "t");
		assert_no_row(f, "old");
		assert_state(f, "live", B(2, 1), B(2, 1), "x", 1);
		assert_int_equal(count_keys(f), 1);
		list_all(f, 2, all, sizeof(all));
		assert_string_equal(all, "live");
		expect(f, prepare_msg("old", B(6, 9)), CAS_MSG_REJECT, B(6, UINT64_MAX));
	}
}

/* A purge in a batch is applied in order with the others (the floor it
 * raises refuses the prepare after it); a failed batch's drop and floor
 * are gone with it. */
static void test_purge_in_batch(void **state)
{
	struct fixture *f = *state;
	struct fault ft = {0, 0};
	struct cas_msg reqs[4];
	struct cas_store_op ops[4];
	int i;

	expect(f, tomb_msg("b", B(5, 1)), CAS_MSG_ACCEPTED, B(5, 1));
	expect(f, tomb_msg("c", B(8, 1)), CAS_MSG_ACCEPTED, B(8, 1));
	reqs[0] = prepare_msg("b", B(5, 9)); /* the ordinary rules: promised */
	reqs[1] = purge_msg("b", B(5, 1));
	reqs[2] = prepare_msg("b", B(5, 10)); /* now the floor's */
	reqs[3] = prepare_msg("b", B(6, 1));
	run_batch(f, reqs, ops, 4);
	for (i = 0; i < 4; i++)
		assert_int_equal(ops[i].err, CAS_OK);
	assert_int_equal(ops[0].reply.type, CAS_MSG_PROMISE);
	assert_int_equal(ops[1].reply.type, CAS_MSG_PURGED);
	assert_true(cas_ballot_is_zero(ops[1].reply.ballot));
	assert_int_equal(ops[2].reply.type, CAS_MSG_REJECT);
	assert_int_equal(cas_ballot_cmp(ops[2].reply.ballot, B(5, UINT64_MAX)), 0);
	assert_int_equal(ops[3].reply.type, CAS_MSG_PROMISE);
	assert_true(cas_ballot_is_zero(ops[3].reply.ballot));
	for (i = 0; i < 4; i++)
		cas_msg_clear(&ops[i].reply);
	assert_int_equal(cas_store_floor(f->store), 5);
	assert_state(f, "b", B(6, 1), B(0, 0), "", 0);

	/* The purge of "c" would raise the floor to 8: its batch fails. */
	cas_store_set_fault(f->store, fault_boom, &ft);
	reqs[0] = purge_msg("c", B(8, 1));
	reqs[1] = prepare_msg("boom", B(9, 1));
	run_batch(f, reqs, ops, 2);
	assert_int_equal(ops[0].err, CAS_EIO);
	assert_int_equal(ops[1].err, CAS_EIO);
	cas_store_set_fault(f->store, NULL, NULL);
	assert_int_equal(cas_store_floor(f->store), 5);
	assert_state(f, "c", B(8, 1), B(8, 1), "", 0);
	assert_int_equal(count_keys(f), 2);
	/* Neither is the next batch's floor 8. */
	expect(f, prepare_msg("d", B(7, 1)), CAS_MSG_PROMISE, B(0, 0));
	reopen(f, 0);
	assert_int_equal(cas_store_floor(f->store), 5);
	assert_int_equal(count_keys(f), 3);
}

/* Many keys dropped in one batch too large for the log (straight into
 * LMDB) and in batches that fill it (checkpoints): the rows go, the
 * floor is the highest, the count and the list agree. */
static void test_purge_many(void **state)
{
	enum { N = 1500, SINGLE = N - 64 };
	struct fixture *f = *state;
	struct cas_msg reqs[64];
	struct cas_store_op ops[64];
	struct cas_store_stats st;
	char key[32], all[64];
	uint64_t checkpoints;
	int i;

	reopen_wal(f, SMALL_WAL);
	for (i = 0; i < N; i++) {
		snprintf(key, sizeof(key), "k%04d", i);
		expect(f, tomb_msg(key, B(10 + (uint64_t)i, 1)), CAS_MSG_ACCEPTED,
		       B(10 + (uint64_t)i, 1));
	}
	expect(f, accept_msg("live", B(1, 1), "x", 1), CAS_MSG_ACCEPTED, B(1, 1));
	/* One at a time: more drops than the small log holds. */
	cas_store_get_stats(f->store, &st);
	checkpoints = st.checkpoints;
	for (i = 0; i < SINGLE; i++) {
		snprintf(key, sizeof(key), "k%04d", i);
		expect(f, purge_msg(key, B(10 + (uint64_t)i, 1)), CAS_MSG_PURGED, B(0, 0));
	}
	cas_store_get_stats(f->store, &st);
	assert_true(st.checkpoints > checkpoints);
	assert_int_equal(count_keys(f), 65);
	assert_int_equal(cas_store_floor(f->store), 10 + SINGLE - 1);
	/* 63 more in one batch with a value of a quarter of the log: too
	 * large for it, the batch goes straight into LMDB. */
	for (i = 0; i < 63; i++) {
		snprintf(key, sizeof(key), "k%04d", N - 1 - i);
		reqs[i] = purge_msg(key, B(10 + (uint64_t)(N - 1 - i), 1));
	}
	{
		static char big[SMALL_WAL / 4];

		memset(big, 'b', sizeof(big) - 1);
		reqs[63] = accept_msg("live", B(2, 1), big, 2);
		run_batch(f, reqs, ops, 64);
	}
	for (i = 0; i < 64; i++) {
		assert_int_equal(ops[i].err, CAS_OK);
		cas_msg_clear(&ops[i].reply);
	}
	assert_int_equal(cas_store_floor(f->store), 10 + N - 1);
	snprintf(key, sizeof(key), "k%04d live", SINGLE);
	for (i = 0; i < 2; i++) {
		assert_int_equal(count_keys(f), 2); /* k<SINGLE> and "live" */
		list_all(f, 1, all, sizeof(all));
		assert_string_equal(all, key);
		assert_no_row(f, "k1499");
		reopen_wal(f, SMALL_WAL);
		assert_int_equal(cas_store_floor(f->store), 10 + N - 1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_rules_through_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_persists_across_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_commit_changes_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lmdb_error_carries_reason, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_in_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_batch_fails_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch_skips_bad_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads_serial, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_replay_after_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_checkpoints_when_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_stale_epoch_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_bad_entry_refuses_to_open, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_wal_restart_replaying_nothing, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_log_sync_failure_stops_writes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_log_sync_failure_then_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_full_keeps_log, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_size_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_if_idle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purge_drops_and_raises_floor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purge_replay_after_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purge_in_batch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_purge_many, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

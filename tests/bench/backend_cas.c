/* backend_cas.c - compare's casfs backend: the client library, by default
 * one client shared by all threads, as a mount shares its own. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cas/client.h>

#include "compare.h"

struct casfs_conn {
	struct cas_client *c;
	bool own;
};

static int casfs_conn_open(struct backend *be, int idx, void **conn, char *err, size_t err_len)
{
	struct casfs *cf = be->priv;
	struct cas_client_config cfg = {.timeout_ms = OP_TIMEOUT_MS, .auth = cf->auth};
	struct casfs_conn *cc = calloc(1, sizeof(*cc));

	(void)idx;
	if (cc == NULL) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	cc->c = cf->shared;
	if (cf->per_thread) {
		if (cas_client_open(cf->nodes, &cfg, &cc->c, err, err_len) != CAS_OK) {
			free(cc);
			return -1;
		}
		cc->own = true;
	}
	*conn = cc;
	return 0;
}

static void casfs_conn_close(void *conn)
{
	struct casfs_conn *cc = conn;

	if (cc->own)
		cas_client_close(cc->c);
	free(cc);
}

static void copy_seen(struct seen *cur, const struct cas_value *v)
{
	size_t n = v->len < sizeof(cur->data) - 1 ? v->len : sizeof(cur->data) - 1;

	cur->version = v->version;
	if (n)
		memcpy(cur->data, v->data, n);
	cur->data[n] = '\0';
}

struct cond_write {
	uint64_t expected;
	const void *data;
	size_t len;
};

/* cas_cas's change function, for when the caller wants the current bytes
 * back on a conflict: the same single round. */
static int cond_write_fn(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	const struct cond_write *w = arg;

	if (cur->version != w->expected)
		return CAS_EVERSION;
	next->len = w->len;
	next->data = malloc(w->len ? w->len : 1);
	if (next->data == NULL)
		return CAS_ENOMEM;
	memcpy(next->data, w->data, w->len);
	return CAS_OK;
}

static enum outcome casfs_cas(void *conn, const char *key, uint64_t expected, const void *data,
			      size_t len, bool want_data, struct seen *cur, char *err,
			      size_t err_len)
{
	struct cas_client *c = ((struct casfs_conn *)conn)->c;
	uint64_t version = 0;
	int rc;

	cur->data[0] = '\0';
	if (want_data) {
		struct cond_write w = {expected, data, len};
		struct cas_value v;

		rc = cas_change(c, key, cond_write_fn, &w, 0, &v);
		if (rc == CAS_OK || rc == CAS_EVERSION)
			copy_seen(cur, &v);
		cas_value_clear(&v);
	} else {
		rc = cas_cas(c, key, expected, data, len, 0, &version);
		cur->version = version;
	}
	if (rc == CAS_OK)
		return DONE;
	if (rc == CAS_EVERSION)
		return CONFLICT;
	snprintf(err, err_len, "%s", cas_strerror(rc));
	return FAILED;
}

static enum outcome casfs_read(void *conn, const char *key, struct seen *cur, char *err,
			       size_t err_len)
{
	struct cas_value v;
	int rc;

	rc = cas_read(((struct casfs_conn *)conn)->c, key, 0, &v);
	if (rc == CAS_OK)
		copy_seen(cur, &v);
	cas_value_clear(&v);
	if (rc == CAS_OK)
		return DONE;
	snprintf(err, err_len, "%s", cas_strerror(rc));
	return FAILED;
}

const struct backend casfs_backend = {
	"casfs", casfs_conn_open, casfs_conn_close, casfs_cas, casfs_read, NULL,
};

/* node.c - casd's node logic (node.h): what a stored record means, and the
 * one caller of the acceptor rules. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cas/bytes.h>

#include "errmsg.h"
#include "node.h"
#include "store_impl.h"

/* The stored record (layout in store.h). */
#define REC_HEADER 48 /* bytes before the recent changes */
#define REC_RECENT 24 /* bytes of one recent change */

/* Reads the record p[0..size) into st; st->value.data points into p. */
static bool decode_record(const unsigned char *p, size_t size, struct cas_acceptor_state *st)
{
	size_t n, i, off;
	uint64_t len;

	memset(st, 0, sizeof(*st));
	if (size < REC_HEADER + 8 || p[0] != CAS_STORE_FORMAT || p[1] > CAS_RECENT_MAX)
		return false;
	for (i = 2; i < 8; i++)
		if (p[i])
			return false;
	n = p[1];
	if (size < REC_HEADER + REC_RECENT * n + 8)
		return false;
	st->promise.counter = cas_get_le64(p + 8);
	st->promise.id = cas_get_le64(p + 16);
	st->accepted.counter = cas_get_le64(p + 24);
	st->accepted.id = cas_get_le64(p + 32);
	st->value.version = cas_get_le64(p + 40);
	for (i = 0; i < n; i++) {
		const unsigned char *r = p + REC_HEADER + REC_RECENT * i;

		st->value.recent[i].proposer = cas_get_le64(r);
		st->value.recent[i].op = cas_get_le64(r + 8);
		st->value.recent[i].version = cas_get_le64(r + 16);
	}
	st->value.n_recent = (uint32_t)n;
	off = REC_HEADER + REC_RECENT * n;
	len = cas_get_le64(p + off);
	off += 8;
	if (len != size - off)
		return false;
	st->value.len = (size_t)len;
	st->value.data = len ? (unsigned char *)p + off : NULL;
	return true;
}

/* Lays st out as a record in a malloc'd buffer, *out of *out_len bytes. */
static int encode_record(const struct cas_acceptor_state *st, unsigned char **out, size_t *out_len)
{
	size_t n = st->value.n_recent, off, i;
	unsigned char *p;

	if (n > CAS_RECENT_MAX || (st->value.len && !st->value.data))
		return CAS_EINVAL;
	off = REC_HEADER + REC_RECENT * n + 8;
	if (st->value.len > SIZE_MAX - off)
		return CAS_ETOOBIG;
	p = calloc(1, off + st->value.len);
	if (!p)
		return CAS_ENOMEM;
	p[0] = CAS_STORE_FORMAT;
	p[1] = (unsigned char)n;
	cas_put_le64(p + 8, st->promise.counter);
	cas_put_le64(p + 16, st->promise.id);
	cas_put_le64(p + 24, st->accepted.counter);
	cas_put_le64(p + 32, st->accepted.id);
	cas_put_le64(p + 40, st->value.version);
	for (i = 0; i < n; i++) {
		unsigned char *r = p + REC_HEADER + REC_RECENT * i;

		cas_put_le64(r, st->value.recent[i].proposer);
		cas_put_le64(r + 8, st->value.recent[i].op);
		cas_put_le64(r + 16, st->value.recent[i].version);
	}
	cas_put_le64(p + off - 8, st->value.len);
	if (st->value.len)
		memcpy(p + off, st->value.data, st->value.len);
	*out = p;
	*out_len = off + st->value.len;
	return CAS_OK;
}

bool cas_node_record_valid(const unsigned char *rec, size_t rec_len)
{
	struct cas_acceptor_state st;

	return decode_record(rec, rec_len, &st);
}

/* Reads key's record rec (NULL: a key never seen) into *st, borrowing
 * from it. */
static int read_state(const char *key, const unsigned char *rec, size_t rec_len,
		      struct cas_acceptor_state *st, char *errmsg, size_t errmsg_len)
{
	memset(st, 0, sizeof(*st));
	if (rec && !decode_record(rec, rec_len, st)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: corrupt record for key \"%s\"", key);
		return CAS_EIO;
	}
	return CAS_OK;
}

int cas_node_step(const unsigned char *rec, size_t rec_len, const struct cas_msg *req,
		  uint64_t *floor, struct cas_msg *reply, enum cas_acceptor_change *change,
		  unsigned char **new_rec, size_t *new_len, char *errmsg, size_t errmsg_len)
{
	struct cas_acceptor_state st;
	struct cas_msg out;
	uint64_t f = *floor;
	int err;

	memset(reply, 0, sizeof(*reply));
	*change = CAS_ACCEPTOR_KEEP;
	*new_rec = NULL;
	*new_len = 0;
	err = read_state(req->key, rec, rec_len, &st, errmsg, errmsg_len);
	if (err)
		return err;
	switch (cas_acceptor_step(&st, &f, req, &out)) {
	case CAS_ACCEPTOR_KEEP:
		/* A reject, or a purge that drops nothing: it borrows
		 * nothing and persists nothing. */
		out.value.data = NULL;
		out.value.len = 0;
		*reply = out;
		return CAS_OK;
	case CAS_ACCEPTOR_DROP:
		/* The caller deletes the row and stores the floor, at once. */
		*reply = out;
		*floor = f;
		*change = CAS_ACCEPTOR_DROP;
		return CAS_OK;
	case CAS_ACCEPTOR_STORE:
		break;
	}
	/* out.value borrows from the state read or from req: take a copy
	 * before the new record replaces it. */
	*reply = out;
	err = cas_reg_copy(&reply->value, &out.value);
	if (err) {
		cas_errmsg_set(errmsg, errmsg_len, "store: out of memory");
		goto out_clear_reply;
	}
	err = encode_record(&st, new_rec, new_len);
	if (err) {
		cas_errmsg_set(errmsg, errmsg_len, "store: cannot lay out record: %s",
			       cas_strerror(err));
		goto out_clear_reply;
	}
	*change = CAS_ACCEPTOR_STORE;
	return CAS_OK;

out_clear_reply:
	cas_msg_clear(reply);
	return err;
}

/* What cas_store_get reads into. */
struct get {
	const char *key;
	struct cas_acceptor_state *out;
	char *errmsg;
	size_t errmsg_len;
};

/* Decodes rec (key's) into g->out with a copy of its value bytes. */
static int copy_state(void *arg, const unsigned char *rec, size_t rec_len)
{
	struct get *g = arg;
	struct cas_acceptor_state st;
	int err;

	err = read_state(g->key, rec, rec_len, &st, g->errmsg, g->errmsg_len);
	if (err)
		return err;
	*g->out = st;
	if (cas_reg_copy(&g->out->value, &st.value)) {
		cas_errmsg_set(g->errmsg, g->errmsg_len, "store: out of memory");
		memset(g->out, 0, sizeof(*g->out));
		return CAS_ENOMEM;
	}
	return CAS_OK;
}

/* The store's read (store.h), here because it decodes what the store
 * holds. */
int cas_store_get(struct cas_store *s, const char *key, struct cas_acceptor_state *out,
		  char *errmsg, size_t errmsg_len)
{
	struct get g = {key, out, errmsg, errmsg_len};

	memset(out, 0, sizeof(*out));
	return cas_store_read(s, key, copy_state, &g, errmsg, errmsg_len);
}

int cas_node_query(struct cas_store *s, const struct cas_msg *req, struct cas_msg *reply,
		   char *errmsg, size_t errmsg_len)
{
	struct cas_acceptor_state st;
	uint64_t floor = cas_store_floor(s);
	int err;

	memset(reply, 0, sizeof(*reply));
	if (req->type != CAS_MSG_QUERY) {
		cas_errmsg_set(errmsg, errmsg_len, "store: not a query");
		return CAS_EINVAL;
	}
	err = cas_store_get(s, req->key, &st, errmsg, errmsg_len);
	if (err)
		return err;
	/* Changes nothing: no write, no fsync. The reply's value is st's,
	 * whose bytes cas_store_get copied: reply owns them now. */
	(void)cas_acceptor_step(&st, &floor, req, reply);
	return CAS_OK;
}

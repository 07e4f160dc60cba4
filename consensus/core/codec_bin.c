/* codec_bin.c - binary wire form of protocol messages (PROTOCOL.md), strict.
 * Hand-written: a fixed layout of a dozen integers has no Debian library
 * that would be simpler than these loads and stores. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cas/bytes.h>

#include "codec_bin.h"
#include "errmsg.h"

/* Type bytes: requests below 0x80, replies above. */
enum wire_type {
	WIRE_PREPARE = 0x01,
	WIRE_ACCEPT = 0x02,
	WIRE_QUERY = 0x03,
	WIRE_PURGE = 0x04,
	WIRE_PROMISE = 0x81,
	WIRE_ACCEPTED = 0x82,
	WIRE_REJECT = 0x83,
	WIRE_CURRENT = 0x84,
	WIRE_PURGED = 0x85,
};

#define BALLOT_SIZE 16
#define RECENT_SIZE 24
/* version, n_recent and data length around the recent entries and data. */
#define VALUE_FIXED_SIZE (8 + 1 + 4)

/* Which fields a type carries, in this order: key, ballot, next, value. */
struct shape {
	bool key, ballot, next, value;
};

static bool shape_of(enum cas_msg_type type, struct shape *s)
{
	memset(s, 0, sizeof(*s));
	switch (type) {
	case CAS_MSG_PREPARE:
	case CAS_MSG_PURGE:
		s->key = s->ballot = true;
		return true;
	case CAS_MSG_ACCEPT:
		s->key = s->ballot = s->next = s->value = true;
		return true;
	case CAS_MSG_QUERY:
		s->key = true;
		return true;
	case CAS_MSG_PROMISE:
	case CAS_MSG_CURRENT:
		s->ballot = s->value = true;
		return true;
	case CAS_MSG_ACCEPTED:
		s->ballot = s->next = true;
		return true;
	case CAS_MSG_REJECT:
	case CAS_MSG_PURGED:
		s->ballot = true;
		return true;
	default:
		return false;
	}
}

static int wire_of(enum cas_msg_type type)
{
	switch (type) {
	case CAS_MSG_PREPARE:
		return WIRE_PREPARE;
	case CAS_MSG_ACCEPT:
		return WIRE_ACCEPT;
	case CAS_MSG_QUERY:
		return WIRE_QUERY;
	case CAS_MSG_PROMISE:
		return WIRE_PROMISE;
	case CAS_MSG_ACCEPTED:
		return WIRE_ACCEPTED;
	case CAS_MSG_REJECT:
		return WIRE_REJECT;
	case CAS_MSG_CURRENT:
		return WIRE_CURRENT;
	case CAS_MSG_PURGE:
		return WIRE_PURGE;
	case CAS_MSG_PURGED:
		return WIRE_PURGED;
	default:
		return -1;
	}
}

static enum cas_msg_type type_of(unsigned char wire)
{
	switch (wire) {
	case WIRE_PREPARE:
		return CAS_MSG_PREPARE;
	case WIRE_ACCEPT:
		return CAS_MSG_ACCEPT;
	case WIRE_QUERY:
		return CAS_MSG_QUERY;
	case WIRE_PROMISE:
		return CAS_MSG_PROMISE;
	case WIRE_ACCEPTED:
		return CAS_MSG_ACCEPTED;
	case WIRE_REJECT:
		return CAS_MSG_REJECT;
	case WIRE_CURRENT:
		return CAS_MSG_CURRENT;
	case WIRE_PURGE:
		return CAS_MSG_PURGE;
	case WIRE_PURGED:
		return CAS_MSG_PURGED;
	default:
		return CAS_MSG_NONE;
	}
}

static const char *type_name(enum cas_msg_type type)
{
	switch (type) {
	case CAS_MSG_PREPARE:
		return "prepare";
	case CAS_MSG_ACCEPT:
		return "accept";
	case CAS_MSG_QUERY:
		return "query";
	case CAS_MSG_PROMISE:
		return "promise";
	case CAS_MSG_ACCEPTED:
		return "accepted";
	case CAS_MSG_REJECT:
		return "reject";
	case CAS_MSG_CURRENT:
		return "current";
	case CAS_MSG_PURGE:
		return "purge";
	case CAS_MSG_PURGED:
		return "purged";
	default:
		return "none";
	}
}

static bool is_request(enum cas_msg_type type)
{
	return type == CAS_MSG_PREPARE || type == CAS_MSG_ACCEPT || type == CAS_MSG_QUERY ||
	       type == CAS_MSG_PURGE;
}

/* ---- little-endian loads and stores ---- */

static unsigned char *store_u32(unsigned char *p, uint32_t v)
{
	cas_put_le32(p, v);
	return p + 4;
}

static unsigned char *store_u64(unsigned char *p, uint64_t v)
{
	cas_put_le64(p, v);
	return p + 8;
}

static unsigned char *store_ballot(unsigned char *p, struct cas_ballot b)
{
	return store_u64(store_u64(p, b.counter), b.id);
}

/* ---- decoding ---- */

/* A body seen through its layout, before anything is checked beyond the
 * lengths: pointers into the body. */
struct frame {
	enum cas_msg_type type;
	const unsigned char *key;
	size_t key_len;
	const unsigned char *ballot, *next;
	const unsigned char *version;
	unsigned n_recent;
	const unsigned char *recent;
	const unsigned char *data;
	size_t data_len;
};

struct reader {
	const unsigned char *p;
	size_t left;
};

/* The next n bytes, or NULL when fewer are left. */
static const unsigned char *take(struct reader *r, size_t n)
{
	const unsigned char *p = r->p;

	if (n > r->left)
		return NULL;
	r->p += n;
	r->left -= n;
	return p;
}

/* Fills f from the body's layout: CAS_OK, or bad with a reason when the
 * body is cut short or runs on. */
static int read_frame(struct reader *r, const struct shape *s, struct frame *f, int bad,
		      char *errmsg, size_t errmsg_len)
{
	const char *what;
	const unsigned char *p;

	if (s->key) {
		what = "key";
		p = take(r, 1);
		if (!p)
			goto out_truncated;
		f->key_len = *p;
		f->key = take(r, f->key_len);
		if (!f->key)
			goto out_truncated;
	}
	if (s->ballot) {
		what = "ballot";
		f->ballot = take(r, BALLOT_SIZE);
		if (!f->ballot)
			goto out_truncated;
	}
	if (s->next) {
		what = f->type == CAS_MSG_ACCEPT ? "next" : "promised";
		f->next = take(r, BALLOT_SIZE);
		if (!f->next)
			goto out_truncated;
	}
	if (s->value) {
		what = "value";
		f->version = take(r, 8);
		if (!f->version)
			goto out_truncated;
		p = take(r, 1);
		if (!p)
			goto out_truncated;
		f->n_recent = *p;
		what = "value.recent";
		f->recent = take(r, (size_t)f->n_recent * RECENT_SIZE);
		if (!f->recent)
			goto out_truncated;
		what = "value.data";
		p = take(r, 4);
		if (!p)
			goto out_truncated;
		f->data_len = cas_get_le32(p);
		f->data = take(r, f->data_len);
		if (!f->data)
			goto out_truncated;
	}
	if (r->left) {
		cas_errmsg_set(errmsg, errmsg_len, "%zu trailing bytes after the %s message",
			       r->left, type_name(f->type));
		return bad;
	}
	return CAS_OK;

out_truncated:
	cas_errmsg_set(errmsg, errmsg_len, "truncated %s message: %s cut short", type_name(f->type),
		       what);
	return bad;
}

/* Decodes body as a message of type want (a request type), or as any
 * reply when want is CAS_MSG_NONE; malformed input is bad. */
static int decode(const void *body, size_t len, enum cas_msg_type want, size_t max_value, int bad,
		  struct cas_msg *out, char *errmsg, size_t errmsg_len)
{
	struct reader r = {body, len};
	struct frame f = {0};
	struct shape s;
	const unsigned char *p;
	unsigned char *data = NULL;
	int err;

	memset(out, 0, sizeof(*out));
	p = body;
	if (!len) {
		cas_errmsg_set(errmsg, errmsg_len, "empty body");
		return bad;
	}
	if (p[0] != CAS_CODEC_BIN_MAGIC) {
		cas_errmsg_set(errmsg, errmsg_len,
			       "not a binary casfs body: first byte 0x%02x, want 0x%02x", p[0],
			       CAS_CODEC_BIN_MAGIC);
		return bad;
	}
	if (!take(&r, 2)) {
		cas_errmsg_set(errmsg, errmsg_len, "truncated: no type byte");
		return bad;
	}
	f.type = type_of(p[1]);
	if (f.type == CAS_MSG_NONE) {
		cas_errmsg_set(errmsg, errmsg_len, "unknown message type 0x%02x", p[1]);
		return bad;
	}
	if (want != CAS_MSG_NONE && f.type != want) {
		cas_errmsg_set(errmsg, errmsg_len, "a %s message where a %s request belongs",
			       type_name(f.type), type_name(want));
		return bad;
	}
	if (want == CAS_MSG_NONE && is_request(f.type)) {
		cas_errmsg_set(errmsg, errmsg_len, "a %s request where a reply belongs",
			       type_name(f.type));
		return bad;
	}
	shape_of(f.type, &s);
	err = read_frame(&r, &s, &f, bad, errmsg, errmsg_len);
	if (err)
		return err;
	/* Then what the JSON decoder checks once the body parses, in its
	 * order and with its codes. */
	if (s.key && !cas_key_valid((const char *)f.key, f.key_len)) {
		cas_errmsg_set(errmsg, errmsg_len,
			       "key: must be 1 to %d characters from A-Z a-z 0-9 . _ : / @ -",
			       CAS_KEY_MAX);
		return CAS_EKEY;
	}
	if (s.value && f.n_recent > CAS_RECENT_MAX) {
		cas_errmsg_set(errmsg, errmsg_len, "value.recent: more than %d entries",
			       CAS_RECENT_MAX);
		return bad;
	}
	if (s.value && f.data_len > max_value) {
		cas_errmsg_set(errmsg, errmsg_len, "value.data: larger than %zu bytes", max_value);
		return CAS_ETOOBIG;
	}
	if (f.data_len) {
		data = malloc(f.data_len);
		if (!data) {
			cas_errmsg_set(errmsg, errmsg_len, "value.data: out of memory");
			return CAS_ENOMEM;
		}
		memcpy(data, f.data, f.data_len);
	}

	out->type = f.type;
	if (s.key) {
		memcpy(out->key, f.key, f.key_len);
		out->key[f.key_len] = '\0';
	}
	if (s.ballot) {
		out->ballot.counter = cas_get_le64(f.ballot);
		out->ballot.id = cas_get_le64(f.ballot + 8);
	}
	if (s.next) {
		out->next.counter = cas_get_le64(f.next);
		out->next.id = cas_get_le64(f.next + 8);
	}
	if (s.value) {
		out->value.version = cas_get_le64(f.version);
		out->value.n_recent = f.n_recent;
		for (unsigned i = 0; i < f.n_recent; i++) {
			const unsigned char *e = f.recent + (size_t)i * RECENT_SIZE;

			out->value.recent[i].proposer = cas_get_le64(e);
			out->value.recent[i].op = cas_get_le64(e + 8);
			out->value.recent[i].version = cas_get_le64(e + 16);
		}
		out->value.data = data;
		out->value.len = f.data_len;
	}
	return CAS_OK;
}

int cas_codec_bin_decode_request(const void *body, size_t len, enum cas_msg_type type,
				 size_t max_value, struct cas_msg *out, char *errmsg,
				 size_t errmsg_len)
{
	int err;

	if (!is_request(type)) {
		memset(out, 0, sizeof(*out));
		cas_errmsg_set(errmsg, errmsg_len, "not a request type");
		return CAS_EINVAL;
	}
	err = decode(body, len, type, max_value, CAS_EINVAL, out, errmsg, errmsg_len);
	if (err == CAS_OK) {
		err = cas_msg_check_request(out, errmsg, errmsg_len);
		if (err)
			cas_msg_clear(out);
	}
	return err;
}

int cas_codec_bin_decode_reply(const void *body, size_t len, size_t max_value, struct cas_msg *out,
			       char *errmsg, size_t errmsg_len)
{
	return decode(body, len, CAS_MSG_NONE, max_value, CAS_EPROTO, out, errmsg, errmsg_len);
}

/* ---- encoding ---- */

int cas_codec_bin_encode(const struct cas_msg *m, unsigned char **out, size_t *out_len)
{
	const struct cas_reg *v = &m->value;
	struct shape s;
	size_t n = 2, key_len = 0;
	unsigned char *buf, *p;
	int wire;

	*out = NULL;
	*out_len = 0;
	wire = wire_of(m->type);
	if (wire < 0 || !shape_of(m->type, &s))
		return CAS_EINVAL;
	if (s.key) {
		key_len = strnlen(m->key, sizeof(m->key));
		if (!cas_key_valid(m->key, key_len))
			return CAS_EKEY;
		n += 1 + key_len;
	}
	if (s.ballot)
		n += BALLOT_SIZE;
	if (s.next)
		n += BALLOT_SIZE;
	if (s.value) {
		if (v->n_recent > CAS_RECENT_MAX || (v->len && !v->data))
			return CAS_EINVAL;
		if (v->len > UINT32_MAX)
			return CAS_ETOOBIG;
		n += VALUE_FIXED_SIZE + (size_t)v->n_recent * RECENT_SIZE + v->len;
	}
	buf = malloc(n);
	if (!buf)
		return CAS_ENOMEM;
	p = buf;
	*p++ = CAS_CODEC_BIN_MAGIC;
	*p++ = (unsigned char)wire;
	if (s.key) {
		*p++ = (unsigned char)key_len;
		memcpy(p, m->key, key_len);
		p += key_len;
	}
	if (s.ballot)
		p = store_ballot(p, m->ballot);
	if (s.next)
		p = store_ballot(p, m->next);
	if (s.value) {
		p = store_u64(p, v->version);
		*p++ = (unsigned char)v->n_recent;
		for (uint32_t i = 0; i < v->n_recent; i++) {
			p = store_u64(p, v->recent[i].proposer);
			p = store_u64(p, v->recent[i].op);
			p = store_u64(p, v->recent[i].version);
		}
		p = store_u32(p, (uint32_t)v->len);
		if (v->len)
			memcpy(p, v->data, v->len);
		p += v->len;
	}
	*out = buf;
	*out_len = (size_t)(p - buf);
	return CAS_OK;
}

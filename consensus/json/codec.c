/* codec.c - JSON wire form of protocol messages (PROTOCOL.md), strict. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "codec.h"
#include "errmsg.h"

/* Longest decimal form of a uint64_t ("18446744073709551615"). */
#define U64_DIGITS_MAX 20

/* ---- base64 (RFC 4648 section 4, with padding) ---- */

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int cas_base64_encode(const unsigned char *in, size_t len, char **out, size_t *out_len)
{
	size_t groups = len / 3 + (len % 3 != 0);
	size_t n, i, o = 0;
	char *s;

	*out = NULL;
	*out_len = 0;
	if (groups > (SIZE_MAX - 1) / 4)
		return CAS_ETOOBIG;
	n = groups * 4;
	s = malloc(n + 1);
	if (!s)
		return CAS_ENOMEM;
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		s[o++] = b64_alphabet[v >> 18 & 63];
		s[o++] = b64_alphabet[v >> 12 & 63];
		s[o++] = b64_alphabet[v >> 6 & 63];
		s[o++] = b64_alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;

		s[o++] = b64_alphabet[v >> 18 & 63];
		s[o++] = b64_alphabet[v >> 12 & 63];
		s[o++] = '=';
		s[o++] = '=';
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;

		s[o++] = b64_alphabet[v >> 18 & 63];
		s[o++] = b64_alphabet[v >> 12 & 63];
		s[o++] = b64_alphabet[v >> 6 & 63];
		s[o++] = '=';
	}
	s[o] = '\0';
	*out = s;
	*out_len = o;
	return CAS_OK;
}

/* The 6-bit value of c, or -1 when c is not in the alphabet. */
static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Bytes that in (len bytes of base64) decodes to; only meaningful when
 * len is a multiple of 4. */
static size_t b64_decoded_len(const char *in, size_t len)
{
	size_t n = len / 4 * 3;

	if (len >= 1 && in[len - 1] == '=')
		n--;
	if (len >= 2 && in[len - 2] == '=')
		n--;
	return n;
}

int cas_base64_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
	size_t n, i, o = 0, pad = 0;
	unsigned char *d;

	*out = NULL;
	*out_len = 0;
	if (len % 4)
		return CAS_EINVAL;
	if (!len)
		return CAS_OK;
	if (in[len - 1] == '=')
		pad = (in[len - 2] == '=') ? 2 : 1;
	n = b64_decoded_len(in, len);
	d = malloc(n ? n : 1);
	if (!d)
		return CAS_ENOMEM;
	for (i = 0; i < len; i += 4) {
		bool last = (i + 4 == len);
		int c[4];
		int k, valid = last ? 4 - (int)pad : 4;
		uint32_t v = 0;

		for (k = 0; k < 4; k++) {
			if (k >= valid) {
				if (in[i + k] != '=')
					goto out_free;
				c[k] = 0;
				continue;
			}
			c[k] = b64_value((unsigned char)in[i + k]);
			if (c[k] < 0)
				goto out_free;
		}
		v = (uint32_t)c[0] << 18 | (uint32_t)c[1] << 12 | (uint32_t)c[2] << 6 |
		    (uint32_t)c[3];
		/* Canonical form only: the bits padding drops must be zero. */
		if ((valid == 2 && (v & 0xffff)) || (valid == 3 && (v & 0xff)))
			goto out_free;
		d[o++] = v >> 16 & 0xff;
		if (valid >= 3)
			d[o++] = v >> 8 & 0xff;
		if (valid == 4)
			d[o++] = v & 0xff;
	}
	*out = d;
	*out_len = o;
	return CAS_OK;

out_free:
	free(d);
	return CAS_EINVAL;
}

/* ---- decoding helpers ---- */

/* A decoding context: where the reason goes and which code malformed
 * input earns (CAS_EINVAL for requests, CAS_EPROTO for replies). */
struct dctx {
	char *errmsg;
	size_t errmsg_len;
	int bad;
};

bool cas_codec_u64_parse(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t i, n = strlen(s);

	if (n == 0 || n > U64_DIGITS_MAX)
		return false;
	if (s[0] == '0' && n > 1)
		return false;
	for (i = 0; i < n; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return false;
		d = (unsigned)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* Checks that obj is an object whose members are among names[0..n-1],
 * each once, with names[0..required-1] all present, and stores them in
 * items[] in the order of names (NULL for an absent optional one). */
static int take_fields_opt(struct dctx *c, const cJSON *obj, const char *what,
			   const char *const *names, size_t n, size_t required, const cJSON **items)
{
	const cJSON *it;
	size_t i;

	if (!cJSON_IsObject(obj)) {
		cas_errmsg_set(c->errmsg, c->errmsg_len, "%s: not an object", what);
		return c->bad;
	}
	for (i = 0; i < n; i++)
		items[i] = NULL;
	cJSON_ArrayForEach(it, obj)
	{
		for (i = 0; i < n; i++)
			if (it->string && strcmp(it->string, names[i]) == 0)
				break;
		if (i == n) {
			cas_errmsg_set(c->errmsg, c->errmsg_len, "%s: unknown field \"%.64s\"",
				       what, it->string ? it->string : "");
			return c->bad;
		}
		if (items[i]) {
			cas_errmsg_set(c->errmsg, c->errmsg_len, "%s: duplicate field \"%s\"", what,
				       names[i]);
			return c->bad;
		}
		items[i] = it;
	}
	for (i = 0; i < required; i++) {
		if (!items[i]) {
			cas_errmsg_set(c->errmsg, c->errmsg_len, "%s: missing field \"%s\"", what,
				       names[i]);
			return c->bad;
		}
	}
	return CAS_OK;
}

/* take_fields_opt with every field required. */
static int take_fields(struct dctx *c, const cJSON *obj, const char *what, const char *const *names,
		       size_t n, const cJSON **items)
{
	return take_fields_opt(c, obj, what, names, n, n, items);
}

static int take_u64(struct dctx *c, const cJSON *item, const char *what, uint64_t *out)
{
	if (!cJSON_IsString(item)) {
		cas_errmsg_set(c->errmsg, c->errmsg_len, "%s: must be a decimal string", what);
		return c->bad;
	}
	if (!cas_codec_u64_parse(item->valuestring, out)) {
		cas_errmsg_set(c->errmsg, c->errmsg_len, "%s: not a canonical 64-bit decimal",
			       what);
		return c->bad;
	}
	return CAS_OK;
}

static int take_ballot(struct dctx *c, const cJSON *obj, const char *what, struct cas_ballot *out)
{
	static const char *const names[] = {"counter", "id"};
	const cJSON *items[2];
	char sub[64];
	int err;

	err = take_fields(c, obj, what, names, 2, items);
	if (err)
		return err;
	snprintf(sub, sizeof(sub), "%s.counter", what);
	err = take_u64(c, items[0], sub, &out->counter);
	if (err)
		return err;
	snprintf(sub, sizeof(sub), "%s.id", what);
	return take_u64(c, items[1], sub, &out->id);
}

static int take_recent(struct dctx *c, const cJSON *obj, struct cas_recent *out)
{
	static const char *const names[] = {"proposer", "op", "version"};
	const cJSON *items[3];
	int err;

	err = take_fields(c, obj, "value.recent[]", names, 3, items);
	if (!err)
		err = take_u64(c, items[0], "value.recent[].proposer", &out->proposer);
	if (!err)
		err = take_u64(c, items[1], "value.recent[].op", &out->op);
	if (!err)
		err = take_u64(c, items[2], "value.recent[].version", &out->version);
	return err;
}

/* Fills out (zeroed by the caller) from a value object; out->data is
 * malloc'd, and may be set even on error (the caller clears out). */
static int take_value(struct dctx *c, const cJSON *obj, size_t max_value, struct cas_reg *out)
{
	static const char *const names[] = {"version", "recent", "data"};
	const cJSON *items[3], *it;
	const char *b64;
	size_t b64_len, n;
	int err;

	err = take_fields(c, obj, "value", names, 3, items);
	if (err)
		return err;
	err = take_u64(c, items[0], "value.version", &out->version);
	if (err)
		return err;
	if (!cJSON_IsArray(items[1])) {
		cas_errmsg_set(c->errmsg, c->errmsg_len, "value.recent: not an array");
		return c->bad;
	}
	n = 0;
	cJSON_ArrayForEach(it, items[1])
	{
		if (n == CAS_RECENT_MAX) {
			cas_errmsg_set(c->errmsg, c->errmsg_len,
				       "value.recent: more than %d entries", CAS_RECENT_MAX);
			return c->bad;
		}
		err = take_recent(c, it, &out->recent[n]);
		if (err)
			return err;
		n++;
	}
	out->n_recent = (uint32_t)n;
	if (!cJSON_IsString(items[2])) {
		cas_errmsg_set(c->errmsg, c->errmsg_len, "value.data: must be a base64 string");
		return c->bad;
	}
	b64 = items[2]->valuestring;
	b64_len = strlen(b64);
	if (b64_len % 4) {
		cas_errmsg_set(c->errmsg, c->errmsg_len, "value.data: bad base64");
		return c->bad;
	}
	if (b64_decoded_len(b64, b64_len) > max_value) {
		cas_errmsg_set(c->errmsg, c->errmsg_len, "value.data: larger than %zu bytes",
			       max_value);
		return CAS_ETOOBIG;
	}
	err = cas_base64_decode(b64, b64_len, &out->data, &out->len);
	if (err == CAS_ENOMEM) {
		cas_errmsg_set(c->errmsg, c->errmsg_len, "value.data: out of memory");
		return err;
	}
	if (err) {
		cas_errmsg_set(c->errmsg, c->errmsg_len, "value.data: bad base64");
		return c->bad;
	}
	return CAS_OK;
}

/* Parses body as one JSON document and nothing else. Bodies with a NUL
 * (raw or escaped) are refused: cJSON strings end at NUL, so such a
 * string would be silently cut short. */
static int parse_body(struct dctx *c, const char *body, size_t len, cJSON **out)
{
	const char *end = NULL;
	size_t i;
	cJSON *root;

	*out = NULL;
	if (!body || !len) {
		cas_errmsg_set(c->errmsg, c->errmsg_len, "empty body");
		return c->bad;
	}
	if (memchr(body, '\0', len)) {
		cas_errmsg_set(c->errmsg, c->errmsg_len, "NUL byte in body");
		return c->bad;
	}
	for (i = 0; i + 6 <= len; i++) {
		if (body[i] == '\\' && memcmp(body + i + 1, "u0000", 5) == 0) {
			cas_errmsg_set(c->errmsg, c->errmsg_len, "NUL character in a string");
			return c->bad;
		}
		if (body[i] == '\\')
			i++; /* skip the escaped character */
	}
	root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
	if (!root) {
		/* cJSON cannot tell a parse error from a failed allocation. */
		cas_errmsg_set(c->errmsg, c->errmsg_len, "malformed JSON");
		return c->bad;
	}
	for (; end && end < body + len; end++) {
		if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
			cJSON_Delete(root);
			cas_errmsg_set(c->errmsg, c->errmsg_len, "trailing data after JSON");
			return c->bad;
		}
	}
	*out = root;
	return CAS_OK;
}

int cas_codec_decode_request(const char *body, size_t len, enum cas_msg_type type, size_t max_value,
			     struct cas_msg *out, char *errmsg, size_t errmsg_len)
{
	static const char *const names[] = {"key", "ballot", "value", "next"};
	struct dctx c = {errmsg, errmsg_len, CAS_EINVAL};
	const cJSON *items[4];
	cJSON *root;
	const char *key;
	size_t n, key_len;
	int err;

	memset(out, 0, sizeof(*out));
	if (type != CAS_MSG_PREPARE && type != CAS_MSG_ACCEPT && type != CAS_MSG_QUERY &&
	    type != CAS_MSG_PURGE) {
		cas_errmsg_set(errmsg, errmsg_len, "not a request type");
		return CAS_EINVAL;
	}
	n = type == CAS_MSG_ACCEPT ? 4 : type == CAS_MSG_QUERY ? 1 : 2;
	err = parse_body(&c, body, len, &root);
	if (err)
		return err;
	err = take_fields_opt(&c, root, "request", names, n, n == 4 ? 3 : n, items);
	if (err)
		goto out_delete_root;
	if (!cJSON_IsString(items[0])) {
		cas_errmsg_set(errmsg, errmsg_len, "key: must be a string");
		err = CAS_EINVAL;
		goto out_delete_root;
	}
	key = items[0]->valuestring;
	key_len = strlen(key);
	if (!cas_key_valid(key, key_len)) {
		cas_errmsg_set(errmsg, errmsg_len,
			       "key: must be 1 to %d characters from A-Z a-z 0-9 . _ : / @ -",
			       CAS_KEY_MAX);
		err = CAS_EKEY;
		goto out_delete_root;
	}
	memcpy(out->key, key, key_len + 1);
	if (type != CAS_MSG_QUERY) {
		err = take_ballot(&c, items[1], "ballot", &out->ballot);
		if (err)
			goto out_delete_root;
	}
	if (type == CAS_MSG_ACCEPT) {
		err = take_value(&c, items[2], max_value, &out->value);
		if (err)
			goto out_delete_root;
		if (items[3]) {
			err = take_ballot(&c, items[3], "next", &out->next);
			if (err)
				goto out_delete_root;
		}
	}
	out->type = type;
	err = cas_msg_check_request(out, errmsg, errmsg_len);
	if (err)
		goto out_delete_root;
	cJSON_Delete(root);
	return CAS_OK;

out_delete_root:
	cJSON_Delete(root);
	cas_msg_clear(out);
	return err;
}

int cas_codec_decode_reply(const char *body, size_t len, size_t max_value, struct cas_msg *out,
			   char *errmsg, size_t errmsg_len)
{
	static const char *const promise_names[] = {"result", "accepted", "value"};
	static const char *const accepted_names[] = {"result", "ballot", "promised"};
	static const char *const reject_names[] = {"result", "blocking"};
	static const char *const purged_names[] = {"result", "accepted"};
	struct dctx c = {errmsg, errmsg_len, CAS_EPROTO};
	const cJSON *result, *items[3];
	cJSON *root;
	int err;

	memset(out, 0, sizeof(*out));
	err = parse_body(&c, body, len, &root);
	if (err)
		return err;
	if (!cJSON_IsObject(root)) {
		cas_errmsg_set(errmsg, errmsg_len, "reply: not an object");
		err = CAS_EPROTO;
		goto out_delete_root;
	}
	result = cJSON_GetObjectItemCaseSensitive(root, "result");
	if (!cJSON_IsString(result)) {
		cas_errmsg_set(errmsg, errmsg_len, "reply: \"result\" missing or not a string");
		err = CAS_EPROTO;
		goto out_delete_root;
	}
	if (strcmp(result->valuestring, "promise") == 0 ||
	    strcmp(result->valuestring, "current") == 0) {
		bool current = result->valuestring[0] == 'c';

		err = take_fields(&c, root, "reply", promise_names, 3, items);
		if (!err)
			err = take_ballot(&c, items[1], "accepted", &out->ballot);
		if (!err)
			err = take_value(&c, items[2], max_value, &out->value);
		out->type = current ? CAS_MSG_CURRENT : CAS_MSG_PROMISE;
	} else if (strcmp(result->valuestring, "accepted") == 0) {
		err = take_fields_opt(&c, root, "reply", accepted_names, 3, 2, items);
		if (!err)
			err = take_ballot(&c, items[1], "ballot", &out->ballot);
		if (!err && items[2])
			err = take_ballot(&c, items[2], "promised", &out->next);
		out->type = CAS_MSG_ACCEPTED;
	} else if (strcmp(result->valuestring, "reject") == 0) {
		err = take_fields(&c, root, "reply", reject_names, 2, items);
		if (!err)
			err = take_ballot(&c, items[1], "blocking", &out->ballot);
		out->type = CAS_MSG_REJECT;
	} else if (strcmp(result->valuestring, "purged") == 0) {
		err = take_fields(&c, root, "reply", purged_names, 2, items);
		if (!err)
			err = take_ballot(&c, items[1], "accepted", &out->ballot);
		out->type = CAS_MSG_PURGED;
	} else {
		cas_errmsg_set(errmsg, errmsg_len, "reply: unknown result \"%.32s\"",
			       result->valuestring);
		err = CAS_EPROTO;
	}
	if (err)
		goto out_delete_root;
	cJSON_Delete(root);
	return CAS_OK;

out_delete_root:
	cJSON_Delete(root);
	cas_msg_clear(out);
	return err;
}

/* ---- encoding ---- */

static bool add_u64(cJSON *obj, const char *name, uint64_t v)
{
	char buf[U64_DIGITS_MAX + 1];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return cJSON_AddStringToObject(obj, name, buf) != NULL;
}

static bool add_ballot(cJSON *obj, const char *name, struct cas_ballot b)
{
	cJSON *o = cJSON_AddObjectToObject(obj, name);

	return o && add_u64(o, "counter", b.counter) && add_u64(o, "id", b.id);
}

static int add_value(cJSON *obj, const struct cas_reg *v)
{
	cJSON *o, *arr, *s, *r;
	char *b64;
	size_t b64_len;
	uint32_t i;
	int err;

	if (v->n_recent > CAS_RECENT_MAX || (v->len && !v->data))
		return CAS_EINVAL;
	o = cJSON_AddObjectToObject(obj, "value");
	if (!o || !add_u64(o, "version", v->version))
		return CAS_ENOMEM;
	arr = cJSON_AddArrayToObject(o, "recent");
	if (!arr)
		return CAS_ENOMEM;
	for (i = 0; i < v->n_recent; i++) {
		r = cJSON_CreateObject();
		if (!r || !cJSON_AddItemToArray(arr, r)) {
			cJSON_Delete(r);
			return CAS_ENOMEM;
		}
		if (!add_u64(r, "proposer", v->recent[i].proposer) ||
		    !add_u64(r, "op", v->recent[i].op) ||
		    !add_u64(r, "version", v->recent[i].version))
			return CAS_ENOMEM;
	}
	err = cas_base64_encode(v->data, v->len, &b64, &b64_len);
	if (err)
		return err;
	s = cJSON_AddStringToObject(o, "data", b64);
	free(b64);
	return s ? CAS_OK : CAS_ENOMEM;
}

int cas_codec_encode(const struct cas_msg *m, char **out, size_t *out_len)
{
	cJSON *root;
	char *text;
	int err = CAS_ENOMEM;

	*out = NULL;
	*out_len = 0;
	if ((m->type == CAS_MSG_PREPARE || m->type == CAS_MSG_ACCEPT || m->type == CAS_MSG_QUERY ||
	     m->type == CAS_MSG_PURGE) &&
	    !cas_key_valid(m->key, strnlen(m->key, sizeof(m->key))))
		return CAS_EKEY;
	root = cJSON_CreateObject();
	if (!root)
		return CAS_ENOMEM;
	switch (m->type) {
	case CAS_MSG_QUERY:
		if (!cJSON_AddStringToObject(root, "key", m->key))
			goto out_delete_root;
		break;
	case CAS_MSG_PREPARE:
	case CAS_MSG_ACCEPT:
	case CAS_MSG_PURGE:
		if (!cJSON_AddStringToObject(root, "key", m->key) ||
		    !add_ballot(root, "ballot", m->ballot))
			goto out_delete_root;
		if (m->type == CAS_MSG_ACCEPT) {
			err = add_value(root, &m->value);
			if (err)
				goto out_delete_root;
			err = CAS_ENOMEM;
			if (!cas_ballot_is_zero(m->next) && !add_ballot(root, "next", m->next))
				goto out_delete_root;
		}
		break;
	case CAS_MSG_PROMISE:
	case CAS_MSG_CURRENT:
		if (!cJSON_AddStringToObject(root, "result",
					     m->type == CAS_MSG_PROMISE ? "promise" : "current") ||
		    !add_ballot(root, "accepted", m->ballot))
			goto out_delete_root;
		err = add_value(root, &m->value);
		if (err)
			goto out_delete_root;
		break;
	case CAS_MSG_ACCEPTED:
		if (!cJSON_AddStringToObject(root, "result", "accepted") ||
		    !add_ballot(root, "ballot", m->ballot))
			goto out_delete_root;
		if (!cas_ballot_is_zero(m->next) && !add_ballot(root, "promised", m->next))
			goto out_delete_root;
		break;
	case CAS_MSG_REJECT:
		if (!cJSON_AddStringToObject(root, "result", "reject") ||
		    !add_ballot(root, "blocking", m->ballot))
			goto out_delete_root;
		break;
	case CAS_MSG_PURGED:
		if (!cJSON_AddStringToObject(root, "result", "purged") ||
		    !add_ballot(root, "accepted", m->ballot))
			goto out_delete_root;
		break;
	default:
		err = CAS_EINVAL;
		goto out_delete_root;
	}
	text = cJSON_PrintUnformatted(root);
	if (!text) {
		err = CAS_ENOMEM;
		goto out_delete_root;
	}
	cJSON_Delete(root);
	*out = text;
	*out_len = strlen(text);
	return CAS_OK;

out_delete_root:
	cJSON_Delete(root);
	return err;
}

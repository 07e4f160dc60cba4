/* test_codec_bin.c - unit tests of the binary wire codec: round trips
 * that agree with the JSON form, the byte layout of PROTOCOL.md, and every
 * kind of malformed input refused with the right code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec_bin.h"
#include "codec_test.h"

static int bin_decode(const unsigned char *body, size_t len, enum cas_msg_type type,
		      struct cas_msg *out)
{
	char errmsg[256] = "";
	int err;

	if (type == CAS_MSG_NONE)
		err = cas_codec_bin_decode_reply(body, len, MAXV, out, errmsg, sizeof(errmsg));
	else
		err = cas_codec_bin_decode_request(body, len, type, MAXV, out, errmsg,
						   sizeof(errmsg));
	if (err) {
		assert_true(errmsg[0] != '\0');
		for (const char *q = errmsg; *q; q++)
			assert_true((unsigned char)*q >= 0x20 && *q != 0x7f);
		assert_zeroed(out);
	}
	return err;
}

static void assert_msg_equal(const struct cas_msg *a, const struct cas_msg *b)
{
	assert_int_equal(a->type, b->type);
	assert_string_equal(a->key, b->key);
	assert_true(a->ballot.counter == b->ballot.counter && a->ballot.id == b->ballot.id);
	assert_true(a->next.counter == b->next.counter && a->next.id == b->next.id);
	assert_true(a->value.version == b->value.version);
	assert_int_equal(a->value.n_recent, b->value.n_recent);
	assert_memory_equal(a->value.recent, b->value.recent,
			    a->value.n_recent * sizeof(a->value.recent[0]));
	assert_int_equal(a->value.len, b->value.len);
	if (a->value.len)
		assert_memory_equal(a->value.data, b->value.data, a->value.len);
	else
		assert_null(b->value.data);
}

/* One message of each type, every field set that the type carries. */
static void sample_msgs(struct cas_msg *ms, unsigned char *bytes)
{
	static const enum cas_msg_type types[] = {
		CAS_MSG_PREPARE,  CAS_MSG_ACCEPT, CAS_MSG_QUERY,   CAS_MSG_PROMISE,
		CAS_MSG_ACCEPTED, CAS_MSG_REJECT, CAS_MSG_CURRENT,
	};

	for (size_t i = 0; i < MAXV; i++)
		bytes[i] = (unsigned char)(i * 37);
	for (size_t t = 0; t < 7; t++) {
		struct cas_msg *m = &ms[t];

		memset(m, 0, sizeof(*m));
		m->type = types[t];
		if (t < 3)
			strcpy(m->key, "dir/a.b_c:d@e-F9");
		/* Requests at the top of the range they may use
		 * (CAS_BALLOT_COUNTER_MAX), replies at the top of 64 bits. */
		if (m->type != CAS_MSG_QUERY)
			m->ballot = (struct cas_ballot){t < 3 ? CAS_BALLOT_COUNTER_MAX : UINT64_MAX,
							0x0102030405060708u + t};
		if (m->type == CAS_MSG_ACCEPT || m->type == CAS_MSG_ACCEPTED)
			m->next = (struct cas_ballot){
				t < 3 ? CAS_BALLOT_COUNTER_MAX : UINT64_MAX - 1, 42};
		if (m->type == CAS_MSG_ACCEPT || m->type == CAS_MSG_PROMISE ||
		    m->type == CAS_MSG_CURRENT) {
			m->value.version = UINT64_MAX - t;
			m->value.n_recent = CAS_RECENT_MAX;
			for (uint64_t k = 0; k < CAS_RECENT_MAX; k++)
				m->value.recent[k] = (struct cas_recent){UINT64_MAX - k, k, 3 + k};
			m->value.data = bytes;
			m->value.len = MAXV; /* exactly the limit */
		}
	}
}

/* Every type survives the binary form, and decodes to what its JSON form
 * decodes to. */
static void test_bin_roundtrip(void **state)
{
	unsigned char bytes[MAXV], *bin;
	struct cas_msg ms[7], d, j;
	size_t len, text_len;
	char *text;

	(void)state;
	sample_msgs(ms, bytes);
	for (size_t t = 0; t < 7; t++) {
		enum cas_msg_type kind = t < 3 ? ms[t].type : CAS_MSG_NONE;

		assert_int_equal(cas_codec_bin_encode(&ms[t], &bin, &len), CAS_OK);
		assert_int_equal(bin[0], CAS_CODEC_BIN_MAGIC);
		assert_int_equal(bin_decode(bin, len, kind, &d), CAS_OK);
		assert_msg_equal(&ms[t], &d);
		assert_int_equal(cas_codec_encode(&ms[t], &text, &text_len), CAS_OK);
		if (kind == CAS_MSG_NONE)
			assert_int_equal(decode_reply(text, &j), CAS_OK);
		else
			assert_int_equal(decode(text, kind, &j), CAS_OK);
		assert_msg_equal(&j, &d);
		/* Smaller than JSON, which spells out names and base64. */
		assert_true(len < text_len);
		cas_msg_clear(&j);
		cas_msg_clear(&d);
		free(text);
		free(bin);

		/* An empty value, no recent entries, no next. */
		ms[t].value.n_recent = 0;
		ms[t].value.data = NULL;
		ms[t].value.len = 0;
		ms[t].next = (struct cas_ballot){0, 0};
		assert_int_equal(cas_codec_bin_encode(&ms[t], &bin, &len), CAS_OK);
		assert_int_equal(bin_decode(bin, len, kind, &d), CAS_OK);
		assert_msg_equal(&ms[t], &d);
		assert_null(d.value.data);
		cas_msg_clear(&d);
		free(bin);
	}
}

/* The layout of PROTOCOL.md, byte by byte. */
static void test_bin_layout(void **state)
{
	/* clang-format off */
	static const unsigned char prepare[] = {
		0xc1, 0x01,				/* magic, PREPARE */
		0x02, 'a', 'b',				/* key */
		0x07, 0, 0, 0, 0, 0, 0, 0,		/* ballot.counter */
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* ballot.id */
	};
	static const unsigned char accept[] = {
		0xc1, 0x02,				/* magic, ACCEPT */
		0x01, 'k',				/* key */
		1, 0, 0, 0, 0, 0, 0, 0,			/* ballot.counter */
		2, 0, 0, 0, 0, 0, 0, 0,			/* ballot.id */
		3, 0, 0, 0, 0, 0, 0, 0,			/* next.counter */
		4, 0, 0, 0, 0, 0, 0, 0,			/* next.id */
		5, 0, 0, 0, 0, 0, 0, 0,			/* value.version */
		1,					/* value n_recent */
		6, 0, 0, 0, 0, 0, 0, 0,			/* recent[0].proposer */
		7, 0, 0, 0, 0, 0, 0, 0,			/* recent[0].op */
		5, 0, 0, 0, 0, 0, 0, 0,			/* recent[0].version */
		2, 0, 0, 0,				/* data length */
		'h', 'i',				/* data */
	};
	static const unsigned char accepted[] = {
		0xc1, 0x82,				/* magic, ACCEPTED */
		9, 0, 0, 0, 0, 0, 0, 0,			/* ballot.counter */
		1, 0, 0, 0, 0, 0, 0, 0,			/* ballot.id */
		0, 0, 0, 0, 0, 0, 0, 0,			/* promised.counter: none */
		0, 0, 0, 0, 0, 0, 0, 0,			/* promised.id */
	};
	/* clang-format on */
	static const unsigned char query[] = {0xc1, 0x03, 0x01, 'q'};
	struct cas_msg m = {.type = CAS_MSG_PREPARE, .ballot = {7, 0x0102030405060708u}};
	unsigned char *bin;
	size_t len;

	(void)state;
	strcpy(m.key, "ab");
	assert_int_equal(cas_codec_bin_encode(&m, &bin, &len), CAS_OK);
	assert_int_equal(len, sizeof(prepare));
	assert_memory_equal(bin, prepare, len);
	free(bin);

	memset(&m, 0, sizeof(m));
	m.type = CAS_MSG_ACCEPT;
	strcpy(m.key, "k");
	m.ballot = (struct cas_ballot){1, 2};
	m.next = (struct cas_ballot){3, 4};
	m.value.version = 5;
	m.value.n_recent = 1;
	m.value.recent[0] = (struct cas_recent){6, 7, 5};
	m.value.data = (unsigned char *)"hi";
	m.value.len = 2;
	assert_int_equal(cas_codec_bin_encode(&m, &bin, &len), CAS_OK);
	assert_int_equal(len, sizeof(accept));
	assert_memory_equal(bin, accept, len);
	free(bin);

	memset(&m, 0, sizeof(m));
	m.type = CAS_MSG_ACCEPTED;
	m.ballot = (struct cas_ballot){9, 1};
	assert_int_equal(cas_codec_bin_encode(&m, &bin, &len), CAS_OK);
	assert_int_equal(len, sizeof(accepted));
	assert_memory_equal(bin, accepted, len);
	free(bin);

	memset(&m, 0, sizeof(m));
	m.type = CAS_MSG_QUERY;
	strcpy(m.key, "q");
	assert_int_equal(cas_codec_bin_encode(&m, &bin, &len), CAS_OK);
	assert_int_equal(len, sizeof(query));
	assert_memory_equal(bin, query, len);
	free(bin);
}

/* PURGE and PURGED (PROTOCOL.md, "Deletion"), byte by byte, the same
 * messages as their JSON form, and refused where they do not belong. */
static void test_bin_purge(void **state)
{
	/* clang-format off */
	static const unsigned char purge[] = {
		0xc1, 0x04,				/* magic, PURGE */
		0x02, 'a', 'b',				/* key */
		0x07, 0, 0, 0, 0, 0, 0, 0,		/* ballot.counter */
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* ballot.id */
	};
	static const unsigned char purged[] = {
		0xc1, 0x85,				/* magic, PURGED */
		0, 0, 0, 0, 0, 0, 0, 0,			/* accepted.counter: none */
		0, 0, 0, 0, 0, 0, 0, 0,			/* accepted.id */
	};
	/* clang-format on */
	struct cas_msg m = {.type = CAS_MSG_PURGE, .ballot = {7, 0x0102030405060708u}}, d, j;
	unsigned char *bin, big[sizeof(purge)];
	size_t len, text_len;
	char *text;

	(void)state;
	strcpy(m.key, "ab");
	assert_int_equal(cas_codec_bin_encode(&m, &bin, &len), CAS_OK);
	assert_int_equal(len, sizeof(purge));
	assert_memory_equal(bin, purge, len);
	assert_int_equal(bin_decode(bin, len, CAS_MSG_PURGE, &d), CAS_OK);
	assert_msg_equal(&m, &d);
	assert_int_equal(cas_codec_encode(&m, &text, &text_len), CAS_OK);
	assert_int_equal(decode(text, CAS_MSG_PURGE, &j), CAS_OK);
	assert_msg_equal(&j, &d);
	free(text);
	/* Not on another route, not as a reply, not cut short. */
	assert_int_equal(bin_decode(bin, len, CAS_MSG_PREPARE, &d), CAS_EINVAL);
	assert_int_equal(bin_decode(bin, len, CAS_MSG_NONE, &d), CAS_EPROTO);
	assert_int_equal(bin_decode(bin, len - 1, CAS_MSG_PURGE, &d), CAS_EINVAL);
	free(bin);
	/* A ballot past the range a request may use. */
	memcpy(big, purge, sizeof(purge));
	big[5 + 7] = 0x80;
	assert_int_equal(bin_decode(big, sizeof(big), CAS_MSG_PURGE, &d), CAS_EINVAL);

	memset(&m, 0, sizeof(m));
	m.type = CAS_MSG_PURGED;
	assert_int_equal(cas_codec_bin_encode(&m, &bin, &len), CAS_OK);
	assert_int_equal(len, sizeof(purged));
	assert_memory_equal(bin, purged, len);
	assert_int_equal(bin_decode(bin, len, CAS_MSG_NONE, &d), CAS_OK);
	assert_msg_equal(&m, &d);
	assert_int_equal(bin_decode(bin, len, CAS_MSG_PURGE, &d), CAS_EINVAL);
	free(bin);
}

/* Every prefix of a valid body is truncated, every extension has trailing
 * bytes: both malformed, for each type. */
static void test_bin_truncated_and_trailing(void **state)
{
	unsigned char bytes[MAXV], *bin, *longer;
	struct cas_msg ms[7], d;
	size_t len;

	(void)state;
	sample_msgs(ms, bytes);
	for (size_t t = 0; t < 7; t++) {
		enum cas_msg_type kind = t < 3 ? ms[t].type : CAS_MSG_NONE;
		int bad = t < 3 ? CAS_EINVAL : CAS_EPROTO;

		assert_int_equal(cas_codec_bin_encode(&ms[t], &bin, &len), CAS_OK);
		for (size_t n = 0; n < len; n++)
			if (bin_decode(bin, n, kind, &d) != bad)
				fail_msg("type %zu cut to %zu of %zu bytes: not refused", t, n,
					 len);
		longer = malloc(len + 1);
		assert_non_null(longer);
		memcpy(longer, bin, len);
		longer[len] = 0;
		assert_int_equal(bin_decode(longer, len + 1, kind, &d), bad);
		free(longer);
		free(bin);
	}
}

/* A valid binary ACCEPT to patch: key "k", ballot 1/2, next 0/0, value
 * version 5, one recent entry, data "hi". */
static size_t bin_accept(unsigned char *buf)
{
	struct cas_msg m = {.type = CAS_MSG_ACCEPT, .ballot = {1, 2}};
	unsigned char *bin;
	size_t len;

	strcpy(m.key, "k");
	m.value.version = 5;
	m.value.n_recent = 1;
	m.value.recent[0] = (struct cas_recent){6, 7, 5};
	m.value.data = (unsigned char *)"hi";
	m.value.len = 2;
	assert_int_equal(cas_codec_bin_encode(&m, &bin, &len), CAS_OK);
	memcpy(buf, bin, len);
	free(bin);
	return len;
}

/* Offsets in bin_accept's body. */
#define ACC_KEY_LEN  2
#define ACC_N_RECENT (3 + 1 + 16 + 16 + 8)
#define ACC_DATA_LEN (ACC_N_RECENT + 1 + 24)

static void test_bin_request_rejects(void **state)
{
	unsigned char buf[8192], *bin;
	struct cas_msg d, m = {.type = CAS_MSG_PREPARE, .ballot = {1, 1}};
	size_t len, n;
	char errmsg[256];

	(void)state;
	n = bin_accept(buf);
	assert_int_equal(bin_decode(buf, n, CAS_MSG_ACCEPT, &d), CAS_OK);
	cas_msg_clear(&d);

	/* Not the binary form: empty, JSON, another version byte. */
	assert_int_equal(bin_decode(buf, 0, CAS_MSG_ACCEPT, &d), CAS_EINVAL);
	assert_int_equal(
		bin_decode((const unsigned char *)"{\"key\":\"k\"}", 11, CAS_MSG_QUERY, &d),
		CAS_EINVAL);
	buf[0] = 0xc2;
	assert_int_equal(cas_codec_bin_decode_request(buf, n, CAS_MSG_ACCEPT, MAXV, &d, errmsg,
						      sizeof(errmsg)),
			 CAS_EINVAL);
	assert_non_null(strstr(errmsg, "0xc2"));
	assert_zeroed(&d);
	buf[0] = CAS_CODEC_BIN_MAGIC;

	/* Unknown types, and types that do not belong on the route. */
	for (unsigned t = 0; t < 256; t++) {
		unsigned char save = buf[1];

		buf[1] = (unsigned char)t;
		assert_int_equal(bin_decode(buf, n, CAS_MSG_ACCEPT, &d),
				 t == 0x02 ? CAS_OK : CAS_EINVAL);
		cas_msg_clear(&d);
		buf[1] = save;
	}
	assert_int_equal(bin_decode(buf, n, CAS_MSG_PREPARE, &d), CAS_EINVAL);
	assert_int_equal(bin_decode(buf, n, CAS_MSG_QUERY, &d), CAS_EINVAL);
	/* A request type is asked for. */
	assert_int_equal(cas_codec_bin_decode_request(buf, n, CAS_MSG_PROMISE, MAXV, &d, errmsg,
						      sizeof(errmsg)),
			 CAS_EINVAL);
	assert_zeroed(&d);

	/* Ballots that leave no room above them: ballot or next past 2^62. */
	for (int which = 0; which < 2; which++) {
		struct cas_msg big = {.type = CAS_MSG_ACCEPT, .ballot = {7, 1}, .next = {8, 1}};

		strcpy(big.key, "k");
		if (which)
			big.next.counter = CAS_BALLOT_COUNTER_MAX + 1;
		else
			big.ballot.counter = UINT64_MAX;
		assert_int_equal(cas_codec_bin_encode(&big, &bin, &len), CAS_OK);
		assert_int_equal(cas_codec_bin_decode_request(bin, len, CAS_MSG_ACCEPT, MAXV, &d,
							      errmsg, sizeof(errmsg)),
				 CAS_EINVAL);
		assert_non_null(strstr(errmsg, which ? "next" : "ballot"));
		assert_zeroed(&d);
		free(bin);
	}

	/* Keys: a forbidden byte, a NUL, empty, too long. */
	buf[3] = ' ';
	assert_int_equal(bin_decode(buf, n, CAS_MSG_ACCEPT, &d), CAS_EKEY);
	buf[3] = '\0';
	assert_int_equal(bin_decode(buf, n, CAS_MSG_ACCEPT, &d), CAS_EKEY);
	buf[3] = 0xc3;
	assert_int_equal(bin_decode(buf, n, CAS_MSG_ACCEPT, &d), CAS_EKEY);
	buf[3] = 'k';
	m.key[0] = 'k';
	assert_int_equal(cas_codec_bin_encode(&m, &bin, &len), CAS_OK);
	memcpy(buf + 1000, bin, len);
	free(bin);
	/* An empty key: the key byte left in place is then the ballot's
	 * first, and its last byte is trailing. */
	buf[1000 + ACC_KEY_LEN] = 0;
	assert_int_equal(bin_decode(buf + 1000, len, CAS_MSG_PREPARE, &d), CAS_EINVAL);
	assert_int_equal(bin_decode(buf + 1000, len - 1, CAS_MSG_PREPARE, &d), CAS_EKEY);
	for (size_t k = CAS_KEY_MAX; k <= 255; k++) {
		memset(m.key, 'k', sizeof(m.key));
		m.key[CAS_KEY_MAX] = '\0';
		assert_int_equal(cas_codec_bin_encode(&m, &bin, &len), CAS_OK);
		memcpy(buf + 1000, bin, 3 + CAS_KEY_MAX);
		memset(buf + 1000 + 3 + CAS_KEY_MAX, 'k', k - CAS_KEY_MAX);
		memcpy(buf + 1000 + 3 + k, bin + 3 + CAS_KEY_MAX, len - 3 - CAS_KEY_MAX);
		buf[1000 + ACC_KEY_LEN] = (unsigned char)k;
		assert_int_equal(bin_decode(buf + 1000, len + k - CAS_KEY_MAX, CAS_MSG_PREPARE, &d),
				 k == CAS_KEY_MAX ? CAS_OK : CAS_EKEY);
		assert_int_equal(strlen(d.key), k == CAS_KEY_MAX ? CAS_KEY_MAX : 0);
		free(bin);
	}

	/* A bad key is told before an oversized value, as in JSON. */
	n = bin_accept(buf);
	buf[3] = '!';
	buf[ACC_DATA_LEN] = MAXV + 1;
	memset(buf + ACC_DATA_LEN + 4, 'v', MAXV + 1);
	assert_int_equal(bin_decode(buf, ACC_DATA_LEN + 4 + MAXV + 1, CAS_MSG_ACCEPT, &d),
			 CAS_EKEY);
	buf[3] = 'k';
	assert_int_equal(bin_decode(buf, ACC_DATA_LEN + 4 + MAXV + 1, CAS_MSG_ACCEPT, &d),
			 CAS_ETOOBIG);
	buf[ACC_DATA_LEN] = MAXV;
	assert_int_equal(bin_decode(buf, ACC_DATA_LEN + 4 + MAXV, CAS_MSG_ACCEPT, &d), CAS_OK);
	assert_int_equal(d.value.len, MAXV);
	cas_msg_clear(&d);
	/* A length that claims more than the body holds is truncation. */
	buf[ACC_DATA_LEN + 3] = 0x80;
	assert_int_equal(bin_decode(buf, ACC_DATA_LEN + 4 + MAXV, CAS_MSG_ACCEPT, &d), CAS_EINVAL);

	/* CAS_RECENT_MAX recent entries pass, more fail, up to the 255 a byte
	 * can say. */
	for (size_t c = 0; c < 3; c++) {
		static const unsigned counts[] = {CAS_RECENT_MAX, CAS_RECENT_MAX + 1, 255};
		unsigned count = counts[c];

		n = bin_accept(buf);
		memmove(buf + ACC_N_RECENT + 1 + 24 * count, buf + ACC_N_RECENT + 1 + 24,
			n - ACC_N_RECENT - 1 - 24);
		for (unsigned i = 1; i < count; i++)
			memcpy(buf + ACC_N_RECENT + 1 + 24 * i, buf + ACC_N_RECENT + 1, 24);
		buf[ACC_N_RECENT] = (unsigned char)count;
		n += 24 * (count - 1);
		assert_int_equal(bin_decode(buf, n, CAS_MSG_ACCEPT, &d),
				 count == CAS_RECENT_MAX ? CAS_OK : CAS_EINVAL);
		assert_int_equal(d.value.n_recent, count == CAS_RECENT_MAX ? count : 0);
		cas_msg_clear(&d);
	}

	/* The length is honoured: garbage after it is not read. */
	n = bin_accept(buf);
	memset(buf + n, 0xff, 8);
	assert_int_equal(bin_decode(buf, n, CAS_MSG_ACCEPT, &d), CAS_OK);
	cas_msg_clear(&d);
}

static void test_bin_reply_rejects(void **state)
{
	unsigned char buf[4096], *bin;
	struct cas_msg d, m = {.type = CAS_MSG_PROMISE, .ballot = {1, 1}};
	size_t len;

	(void)state;
	m.value.data = (unsigned char *)"hi";
	m.value.len = 2;
	assert_int_equal(cas_codec_bin_encode(&m, &bin, &len), CAS_OK);
	memcpy(buf, bin, len);
	free(bin);
	assert_int_equal(bin_decode(buf, len, CAS_MSG_NONE, &d), CAS_OK);
	cas_msg_clear(&d);
	assert_int_equal(bin_decode(buf, 0, CAS_MSG_NONE, &d), CAS_EPROTO);
	/* Requests and unknown types are no replies. */
	for (unsigned t = 0; t < 256; t++) {
		unsigned char save = buf[1];
		int want = t == 0x81 || t == 0x84 ? CAS_OK : CAS_EPROTO;

		buf[1] = (unsigned char)t;
		assert_int_equal(bin_decode(buf, len, CAS_MSG_NONE, &d), want);
		cas_msg_clear(&d);
		buf[1] = save;
	}
	/* Too many recent entries; a value over the limit. */
	buf[2 + 16 + 8] = CAS_RECENT_MAX + 1;
	assert_int_equal(bin_decode(buf, len, CAS_MSG_NONE, &d), CAS_EPROTO);
	buf[2 + 16 + 8] = 0;
	buf[2 + 16 + 8 + 1] = MAXV + 1;
	memset(buf + 2 + 16 + 8 + 5, 'v', MAXV + 1);
	assert_int_equal(bin_decode(buf, 2 + 16 + 8 + 5 + MAXV + 1, CAS_MSG_NONE, &d), CAS_ETOOBIG);
	/* JSON is not the binary form. */
	assert_int_equal(bin_decode((const unsigned char *)"{}", 2, CAS_MSG_NONE, &d), CAS_EPROTO);
}

static void test_bin_encode_rejects(void **state)
{
	struct cas_msg m = {.type = CAS_MSG_QUERY};
	unsigned char *bin = (unsigned char *)"x";
	size_t len = 9;

	(void)state;
	strcpy(m.key, "a b");
	assert_int_equal(cas_codec_bin_encode(&m, &bin, &len), CAS_EKEY);
	assert_null(bin);
	assert_int_equal(len, 0);
	m.key[0] = '\0';
	assert_int_equal(cas_codec_bin_encode(&m, &bin, &len), CAS_EKEY);
	strcpy(m.key, "k");
	m.type = CAS_MSG_ACCEPT;
	m.value.n_recent = CAS_RECENT_MAX + 1;
	assert_int_equal(cas_codec_bin_encode(&m, &bin, &len), CAS_EINVAL);
	m.value.n_recent = 0;
	m.value.len = 1; /* no bytes */
	assert_int_equal(cas_codec_bin_encode(&m, &bin, &len), CAS_EINVAL);
	assert_null(bin);
	m.type = CAS_MSG_NONE;
	assert_int_equal(cas_codec_bin_encode(&m, &bin, &len), CAS_EINVAL);
	m.type = (enum cas_msg_type)99;
	assert_int_equal(cas_codec_bin_encode(&m, &bin, &len), CAS_EINVAL);
	/* A reply's key is not sent (JSON does not send it either). */
	m.type = CAS_MSG_REJECT;
	strcpy(m.key, "a b");
	assert_int_equal(cas_codec_bin_encode(&m, &bin, &len), CAS_OK);
	assert_int_equal(len, 2 + 16);
	free(bin);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bin_roundtrip),
		cmocka_unit_test(test_bin_layout),
		cmocka_unit_test(test_bin_purge),
		cmocka_unit_test(test_bin_truncated_and_trailing),
		cmocka_unit_test(test_bin_request_rejects),
		cmocka_unit_test(test_bin_reply_rejects),
		cmocka_unit_test(test_bin_encode_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

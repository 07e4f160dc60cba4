/* test_codec.c - unit tests of the JSON and binary wire codecs and base64:
 * round trips, and every kind of malformed input refused with the right
 * code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "codec_bin.h"

#define MAXV 64 /* max value size used by most tests */

static int decode(const char *body, enum cas_msg_type type, struct cas_msg *out)
{
	char errmsg[256] = "";
	int err;

	err = cas_codec_decode_request(body, strlen(body), type, MAXV, out, errmsg, sizeof(errmsg));
	if (err)
		assert_true(errmsg[0] != '\0'); /* every refusal says why */
	return err;
}

static int decode_reply(const char *body, struct cas_msg *out)
{
	char errmsg[256] = "";
	int err;

	err = cas_codec_decode_reply(body, strlen(body), MAXV, out, errmsg, sizeof(errmsg));
	if (err)
		assert_true(errmsg[0] != '\0');
	return err;
}

/* Every byte of m is zero (what decoders leave on error). */
static void assert_zeroed(const struct cas_msg *m)
{
	static const struct cas_msg zero;

	assert_memory_equal(m, &zero, sizeof(zero));
}

/* --- base64 --- */

static void test_base64_vectors(void **state)
{
	/* RFC 4648, section 10. */
	static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const coded[] = {"",		"Zg==",	    "Zm8=",    "Zm9v",
					    "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	unsigned char *bytes;
	size_t i, n;
	char *text;

	(void)state;
	for (i = 0; i < 7; i++) {
		assert_int_equal(cas_base64_encode((const unsigned char *)plain[i],
						   strlen(plain[i]), &text, &n),
				 CAS_OK);
		assert_string_equal(text, coded[i]);
		assert_int_equal(n, strlen(coded[i]));
		free(text);
		assert_int_equal(cas_base64_decode(coded[i], strlen(coded[i]), &bytes, &n), CAS_OK);
		assert_int_equal(n, strlen(plain[i]));
		if (n)
			assert_memory_equal(bytes, plain[i], n);
		else
			assert_null(bytes);
		free(bytes);
	}
}

static void test_base64_all_bytes(void **state)
{
	unsigned char in[256], *out;
	size_t i, n, len;
	char *text;

	(void)state;
	for (i = 0; i < 256; i++)
		in[i] = (unsigned char)(255 - i);
	for (len = 0; len <= 256; len += 1) {
		assert_int_equal(cas_base64_encode(in, len, &text, &n), CAS_OK);
		assert_int_equal(cas_base64_decode(text, n, &out, &n), CAS_OK);
		assert_int_equal(n, len);
		if (len)
			assert_memory_equal(out, in, len);
		free(out);
		free(text);
	}
}

static void test_base64_rejects(void **state)
{
	static const char *const bad[] = {
		"Zg=",	    /* not a multiple of 4 */
		"Zg",	    /* no padding */
		"Zm9v\n",   /* whitespace */
		"Zm 9",	    /* space */
		"Zm9-",	    /* base64url alphabet */
		"Zm9_",	    /* base64url alphabet */
		"Z===",	    /* too much padding */
		"====",	    /* padding only */
		"Zg==Zg==", /* padding in the middle */
		"Z=g=",	    /* padding then data */
		"Zh==",	    /* non-zero bits after the last byte */
		"Zm9=",	    /* non-zero bits after the last byte */
		"Zm9v\0Zg=",
	};
	unsigned char *out = (unsigned char *)"x";
	size_t i, n = 99;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len = i == 12 ? 8 : strlen(bad[i]);

		assert_int_equal(cas_base64_decode(bad[i], len, &out, &n), CAS_EINVAL);
		assert_null(out);
		assert_int_equal(n, 0);
	}
}

/* --- requests --- */

static void test_prepare_roundtrip(void **state)
{
	struct cas_msg m = {.type = CAS_MSG_PREPARE, .ballot = {UINT64_MAX, 42}}, d;
	size_t len;
	char *text;

	(void)state;
	strcpy(m.key, "dir/a.b_c:d@e-F9");
	assert_int_equal(cas_codec_encode(&m, &text, &len), CAS_OK);
	assert_int_equal(len, strlen(text));
	assert_string_equal(text, "{\"key\":\"dir/a.b_c:d@e-F9\",\"ballot\":{\"counter\":"
				  "\"18446744073709551615\",\"id\":\"42\"}}");
	assert_int_equal(decode(text, CAS_MSG_PREPARE, &d), CAS_OK);
	assert_int_equal(d.type, CAS_MSG_PREPARE);
	assert_string_equal(d.key, m.key);
	assert_true(d.ballot.counter == UINT64_MAX);
	assert_int_equal(d.ballot.id, 42);
	cas_msg_clear(&d);
	free(text);
}

static void test_accept_roundtrip(void **state)
{
	struct cas_msg m = {.type = CAS_MSG_ACCEPT, .ballot = {7, 1234}}, d;
	unsigned char bytes[MAXV];
	size_t len, i;
	char *text;

	(void)state;
	for (i = 0; i < sizeof(bytes); i++)
		bytes[i] = (unsigned char)(i * 37);
	strcpy(m.key, "k");
	m.value.version = 3;
	m.value.n_recent = CAS_RECENT_MAX;
	for (i = 0; i < CAS_RECENT_MAX; i++)
		m.value.recent[i] = (struct cas_recent){UINT64_MAX - i, i, 3 - i};
	m.value.data = bytes;
	m.value.len = sizeof(bytes); /* exactly the limit */
	assert_int_equal(cas_codec_encode(&m, &text, &len), CAS_OK);
	assert_int_equal(decode(text, CAS_MSG_ACCEPT, &d), CAS_OK);
	assert_int_equal(d.type, CAS_MSG_ACCEPT);
	assert_string_equal(d.key, "k");
	assert_int_equal(d.ballot.counter, 7);
	assert_int_equal(d.ballot.id, 1234);
	assert_int_equal(d.value.version, 3);
	assert_int_equal(d.value.n_recent, CAS_RECENT_MAX);
	for (i = 0; i < CAS_RECENT_MAX; i++) {
		assert_true(d.value.recent[i].proposer == UINT64_MAX - i);
		assert_true(d.value.recent[i].op == i);
		assert_true(d.value.recent[i].version == 3 - i);
	}
	assert_int_equal(d.value.len, sizeof(bytes));
	assert_memory_equal(d.value.data, bytes, sizeof(bytes));
	cas_msg_clear(&d);
	free(text);

	/* An empty value, no recent ids. */
	m.value.n_recent = 0;
	m.value.len = 0;
	m.value.data = NULL;
	assert_int_equal(cas_codec_encode(&m, &text, &len), CAS_OK);
	assert_non_null(strstr(text, "\"recent\":[],\"data\":\"\""));
	assert_int_equal(decode(text, CAS_MSG_ACCEPT, &d), CAS_OK);
	assert_int_equal(d.value.len, 0);
	assert_null(d.value.data);
	cas_msg_clear(&d);
	free(text);
}

static void test_request_whitespace_and_order(void **state)
{
	struct cas_msg d;

	(void)state;
	assert_int_equal(decode(" \n{ \"ballot\" : {\"id\":\"2\", \"counter\":\"1\"},\t"
				"\"key\":\"x\" }\r\n",
				CAS_MSG_PREPARE, &d),
			 CAS_OK);
	assert_int_equal(d.ballot.counter, 1);
	assert_int_equal(d.ballot.id, 2);
	cas_msg_clear(&d);
	/* An escaped slash is still a slash. */
	assert_int_equal(decode("{\"key\":\"a\\/b\",\"ballot\":{\"counter\":\"1\",\"id\":\"2\"}}",
				CAS_MSG_PREPARE, &d),
			 CAS_OK);
	assert_string_equal(d.key, "a/b");
	cas_msg_clear(&d);
}

#define BAL "\"ballot\":{\"counter\":\"1\",\"id\":\"2\"}"
#define VAL "\"value\":{\"version\":\"1\",\"recent\":[],\"data\":\"\"}"

struct bad_case {
	enum cas_msg_type type;
	const char *body;
	int err;
};

static void test_request_rejects(void **state)
{
	static const struct bad_case cases[] = {
		/* Not JSON, or not one object. */
		{CAS_MSG_PREPARE, "", CAS_EINVAL},
		{CAS_MSG_PREPARE, "{", CAS_EINVAL},
		{CAS_MSG_PREPARE, "null", CAS_EINVAL},
		{CAS_MSG_PREPARE, "[]", CAS_EINVAL},
		{CAS_MSG_PREPARE, "\"key\"", CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":\"k\"," BAL "} {}", CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":\"k\"," BAL "}x", CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":\"k\"," BAL ",}", CAS_EINVAL},
		/* Missing, unknown, duplicate fields. */
		{CAS_MSG_PREPARE, "{" BAL "}", CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":\"k\"}", CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":\"k\"," BAL ",\"x\":1}", CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":\"k\"," BAL "," VAL "}", CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":\"k\",\"Key\":\"k\"," BAL "}", CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":\"k\",\"key\":\"k\"," BAL "}", CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"KEY\":\"k\"," BAL "}", CAS_EINVAL},
		{CAS_MSG_ACCEPT, "{\"key\":\"k\"," BAL "}", CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":\"k\",\"ballot\":{\"counter\":\"1\"}}", CAS_EINVAL},
		{CAS_MSG_PREPARE,
		 "{\"key\":\"k\",\"ballot\":{\"counter\":\"1\",\"id\":\"2\",\"x\":\"3\"}}",
		 CAS_EINVAL},
		{CAS_MSG_ACCEPT,
		 "{\"key\":\"k\"," BAL ",\"value\":{\"version\":\"1\",\"data\":\"\"}}", CAS_EINVAL},
		{CAS_MSG_ACCEPT,
		 "{\"key\":\"k\"," BAL
		 ",\"value\":{\"version\":\"1\",\"recent\":[],\"data\":\"\",\"x\":null}}",
		 CAS_EINVAL},
		/* Wrong types. */
		{CAS_MSG_PREPARE, "{\"key\":5," BAL "}", CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":null," BAL "}", CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":[\"k\"]," BAL "}", CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":\"k\",\"ballot\":\"1\"}", CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":\"k\",\"ballot\":{\"counter\":1,\"id\":\"2\"}}",
		 CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":\"k\",\"ballot\":{\"counter\":\"1\",\"id\":true}}",
		 CAS_EINVAL},
		{CAS_MSG_ACCEPT, "{\"key\":\"k\"," BAL ",\"value\":\"\"}", CAS_EINVAL},
		{CAS_MSG_ACCEPT,
		 "{\"key\":\"k\"," BAL ",\"value\":{\"version\":1,\"recent\":[],\"data\":\"\"}}",
		 CAS_EINVAL},
		{CAS_MSG_ACCEPT,
		 "{\"key\":\"k\"," BAL
		 ",\"value\":{\"version\":\"1\",\"recent\":{},\"data\":\"\"}}",
		 CAS_EINVAL},
		{CAS_MSG_ACCEPT,
		 "{\"key\":\"k\"," BAL
		 ",\"value\":{\"version\":\"1\",\"recent\":[1],\"data\":\"\"}}",
		 CAS_EINVAL},
		{CAS_MSG_ACCEPT,
		 "{\"key\":\"k\"," BAL
		 ",\"value\":{\"version\":\"1\",\"recent\":[],\"data\":null}}",
		 CAS_EINVAL},
		/* Numbers: sign, leading zeros, overflow, not digits. */
		{CAS_MSG_PREPARE, "{\"key\":\"k\",\"ballot\":{\"counter\":\"-1\",\"id\":\"2\"}}",
		 CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":\"k\",\"ballot\":{\"counter\":\"+1\",\"id\":\"2\"}}",
		 CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":\"k\",\"ballot\":{\"counter\":\"01\",\"id\":\"2\"}}",
		 CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":\"k\",\"ballot\":{\"counter\":\"\",\"id\":\"2\"}}",
		 CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":\"k\",\"ballot\":{\"counter\":\" 1\",\"id\":\"2\"}}",
		 CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":\"k\",\"ballot\":{\"counter\":\"1.0\",\"id\":\"2\"}}",
		 CAS_EINVAL},
		{CAS_MSG_PREPARE, "{\"key\":\"k\",\"ballot\":{\"counter\":\"0x1\",\"id\":\"2\"}}",
		 CAS_EINVAL},
		{CAS_MSG_PREPARE,
		 "{\"key\":\"k\",\"ballot\":{\"counter\":\"18446744073709551616\",\"id\":\"2\"}}",
		 CAS_EINVAL},
		{CAS_MSG_PREPARE,
		 "{\"key\":\"k\",\"ballot\":{\"counter\":\"99999999999999999999\",\"id\":\"2\"}}",
		 CAS_EINVAL},
		{CAS_MSG_PREPARE,
		 "{\"key\":\"k\",\"ballot\":{\"counter\":\"100000000000000000000\",\"id\":\"2\"}}",
		 CAS_EINVAL},
		/* Keys. */
		{CAS_MSG_PREPARE, "{\"key\":\"\"," BAL "}", CAS_EKEY},
		{CAS_MSG_PREPARE, "{\"key\":\"a b\"," BAL "}", CAS_EKEY},
		{CAS_MSG_PREPARE, "{\"key\":\"a\\nb\"," BAL "}", CAS_EKEY},
		{CAS_MSG_PREPARE, "{\"key\":\"a\\\\b\"," BAL "}", CAS_EKEY},
		{CAS_MSG_PREPARE, "{\"key\":\"caf\xc3\xa9\"," BAL "}", CAS_EKEY},
		{CAS_MSG_PREPARE, "{\"key\":\"a\\u00e9\"," BAL "}", CAS_EKEY},
		{CAS_MSG_PREPARE, "{\"key\":\"a\\u0000b\"," BAL "}", CAS_EINVAL},
		/* Values: base64, recent list length. */
		{CAS_MSG_ACCEPT,
		 "{\"key\":\"k\"," BAL
		 ",\"value\":{\"version\":\"1\",\"recent\":[],\"data\":\"Zg=\"}}",
		 CAS_EINVAL},
		{CAS_MSG_ACCEPT,
		 "{\"key\":\"k\"," BAL
		 ",\"value\":{\"version\":\"1\",\"recent\":[],\"data\":\"Zm9*\"}}",
		 CAS_EINVAL},
		{CAS_MSG_ACCEPT,
		 "{\"key\":\"k\"," BAL
		 ",\"value\":{\"version\":\"1\",\"recent\":[\"01\"],\"data\":\"\"}}",
		 CAS_EINVAL},
		{CAS_MSG_ACCEPT,
		 "{\"key\":\"k\"," BAL
		 ",\"value\":{\"version\":\"1\",\"recent\":[{\"proposer\":\"1\",\"op\":\"01\","
		 "\"version\":\"1\"}],\"data\":\"\"}}",
		 CAS_EINVAL},
		{CAS_MSG_ACCEPT,
		 "{\"key\":\"k\"," BAL
		 ",\"value\":{\"version\":\"1\",\"recent\":[{\"proposer\":\"1\",\"op\":\"1\"}],"
		 "\"data\":\"\"}}",
		 CAS_EINVAL},
	};
	struct cas_msg d;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int err = decode(cases[i].body, cases[i].type, &d);

		if (err != cases[i].err)
			fail_msg("case %zu (%s): got %d, want %d", i, cases[i].body, err,
				 cases[i].err);
		assert_zeroed(&d);
	}
}

static void test_request_limits(void **state)
{
	char key[CAS_KEY_MAX + 2], body[1024], data[MAXV * 2];
	unsigned char bytes[MAXV + 1];
	struct cas_msg d;
	size_t n;
	char *b64;

	(void)state;
	/* Key of exactly CAS_KEY_MAX characters passes, one more fails. */
	memset(key, 'k', CAS_KEY_MAX);
	key[CAS_KEY_MAX] = '\0';
	snprintf(body, sizeof(body), "{\"key\":\"%s\"," BAL "}", key);
	assert_int_equal(decode(body, CAS_MSG_PREPARE, &d), CAS_OK);
	assert_int_equal(strlen(d.key), CAS_KEY_MAX);
	cas_msg_clear(&d);
	strcat(key, "k");
	snprintf(body, sizeof(body), "{\"key\":\"%s\"," BAL "}", key);
	assert_int_equal(decode(body, CAS_MSG_PREPARE, &d), CAS_EKEY);
	assert_zeroed(&d);

	/* A value one byte over the maximum is CAS_ETOOBIG. */
	memset(bytes, 'v', sizeof(bytes));
	assert_int_equal(cas_base64_encode(bytes, sizeof(bytes), &b64, &n), CAS_OK);
	assert_true(n < sizeof(data));
	snprintf(body, sizeof(body),
		 "{\"key\":\"k\"," BAL ",\"value\":{\"version\":\"1\",\"recent\":[],"
		 "\"data\":\"%s\"}}",
		 b64);
	assert_int_equal(decode(body, CAS_MSG_ACCEPT, &d), CAS_ETOOBIG);
	assert_zeroed(&d);
	free(b64);

	/* CAS_RECENT_MAX recent ids pass, one more fails. */
	for (n = 0; n < 2; n++) {
		size_t i, count = CAS_RECENT_MAX + n;

		snprintf(body, sizeof(body),
			 "{\"key\":\"k\"," BAL ",\"value\":{\"version\":\"1\",\"recent\":[");
		for (i = 0; i < count; i++)
			snprintf(body + strlen(body), sizeof(body) - strlen(body),
				 "%s{\"proposer\":\"%zu\",\"op\":\"1\",\"version\":\"1\"}",
				 i ? "," : "", i + 1);
		strcat(body, "],\"data\":\"\"}}");
		assert_int_equal(decode(body, CAS_MSG_ACCEPT, &d), n ? CAS_EINVAL : CAS_OK);
		if (!n)
			assert_int_equal(d.value.n_recent, CAS_RECENT_MAX);
		cas_msg_clear(&d);
	}

	/* Not a request type. */
	assert_int_equal(decode("{}", CAS_MSG_PROMISE, &d), CAS_EINVAL);
	/* A raw NUL inside the given length. */
	assert_int_equal(cas_codec_decode_request("{\"key\":\"a\0b\"," BAL "}",
						  sizeof("{\"key\":\"a\0b\"," BAL "}") - 1,
						  CAS_MSG_PREPARE, MAXV, &d, NULL, 0),
			 CAS_EINVAL);
	/* The length is honoured: a valid prefix, garbage after it. */
	snprintf(body, sizeof(body), "{\"key\":\"k\"," BAL "}garbage");
	assert_int_equal(cas_codec_decode_request(body, strlen(body) - 7, CAS_MSG_PREPARE, MAXV, &d,
						  NULL, 0),
			 CAS_OK);
	cas_msg_clear(&d);
}

/* --- replies --- */

static void test_reply_roundtrip(void **state)
{
	struct cas_msg m = {.type = CAS_MSG_PROMISE, .ballot = {9, 3}}, d;
	unsigned char bytes[] = "hello";
	size_t len;
	char *text;

	(void)state;
	m.value.version = 2;
	m.value.n_recent = 1;
	m.value.recent[0] = (struct cas_recent){77, 5, 2};
	m.value.data = bytes;
	m.value.len = 5;
	assert_int_equal(cas_codec_encode(&m, &text, &len), CAS_OK);
	assert_string_equal(text, "{\"result\":\"promise\",\"accepted\":{\"counter\":\"9\","
				  "\"id\":\"3\"},\"value\":{\"version\":\"2\",\"recent\":[{\"proposer\":"
				  "\"77\",\"op\":\"5\",\"version\":\"2\"}],"
				  "\"data\":\"aGVsbG8=\"}}");
	assert_int_equal(decode_reply(text, &d), CAS_OK);
	assert_int_equal(d.type, CAS_MSG_PROMISE);
	assert_int_equal(d.ballot.counter, 9);
	assert_int_equal(d.ballot.id, 3);
	assert_int_equal(d.value.version, 2);
	assert_int_equal(d.value.n_recent, 1);
	assert_int_equal(d.value.recent[0].proposer, 77);
	assert_int_equal(d.value.recent[0].op, 5);
	assert_int_equal(d.value.recent[0].version, 2);
	assert_int_equal(d.value.len, 5);
	assert_memory_equal(d.value.data, "hello", 5);
	cas_msg_clear(&d);
	free(text);

	memset(&m, 0, sizeof(m));
	m.type = CAS_MSG_ACCEPTED;
	m.ballot.counter = 4;
	m.ballot.id = 1;
	assert_int_equal(cas_codec_encode(&m, &text, &len), CAS_OK);
	assert_string_equal(
		text, "{\"result\":\"accepted\",\"ballot\":{\"counter\":\"4\",\"id\":\"1\"}}");
	assert_int_equal(decode_reply(text, &d), CAS_OK);
	assert_int_equal(d.type, CAS_MSG_ACCEPTED);
	assert_int_equal(d.ballot.counter, 4);
	cas_msg_clear(&d);
	free(text);

	m.type = CAS_MSG_REJECT;
	assert_int_equal(cas_codec_encode(&m, &text, &len), CAS_OK);
	assert_string_equal(
		text, "{\"result\":\"reject\",\"blocking\":{\"counter\":\"4\",\"id\":\"1\"}}");
	assert_int_equal(decode_reply(text, &d), CAS_OK);
	assert_int_equal(d.type, CAS_MSG_REJECT);
	assert_int_equal(d.ballot.id, 1);
	cas_msg_clear(&d);
	free(text);
}

/* The one-round-trip optimization's fields: "next" on an accept and
 * "promised" on an accepted reply, both optional and strictly typed. */
static void test_next_and_promised(void **state)
{
	struct cas_msg m = {.type = CAS_MSG_ACCEPT, .ballot = {7, 1}, .next = {8, 1}}, d;
	size_t len;
	char *text;

	(void)state;
	strcpy(m.key, "k");
	assert_int_equal(cas_codec_encode(&m, &text, &len), CAS_OK);
	assert_non_null(strstr(text, "\"next\":{\"counter\":\"8\",\"id\":\"1\"}"));
	assert_int_equal(decode(text, CAS_MSG_ACCEPT, &d), CAS_OK);
	assert_int_equal(d.next.counter, 8);
	assert_int_equal(d.next.id, 1);
	cas_msg_clear(&d);
	free(text);

	/* Without one, none is sent and none decoded. */
	m.next = (struct cas_ballot){0, 0};
	assert_int_equal(cas_codec_encode(&m, &text, &len), CAS_OK);
	assert_null(strstr(text, "next"));
	assert_int_equal(decode(text, CAS_MSG_ACCEPT, &d), CAS_OK);
	assert_true(cas_ballot_is_zero(d.next));
	cas_msg_clear(&d);
	free(text);

	/* A prepare has no "next"; a mistyped one is refused. */
	assert_int_equal(decode("{\"key\":\"k\",\"ballot\":{\"counter\":\"1\",\"id\":\"1\"},"
				"\"next\":{\"counter\":\"2\",\"id\":\"1\"}}",
				CAS_MSG_PREPARE, &d),
			 CAS_EINVAL);
	assert_zeroed(&d);
	assert_int_equal(decode("{\"key\":\"k\",\"ballot\":{\"counter\":\"1\",\"id\":\"1\"},"
				"\"value\":{\"version\":\"0\",\"recent\":[],\"data\":\"\"},"
				"\"next\":\"2.1\"}",
				CAS_MSG_ACCEPT, &d),
			 CAS_EINVAL);
	assert_zeroed(&d);

	memset(&m, 0, sizeof(m));
	m.type = CAS_MSG_ACCEPTED;
	m.ballot = (struct cas_ballot){4, 1};
	m.next = (struct cas_ballot){5, 1};
	assert_int_equal(cas_codec_encode(&m, &text, &len), CAS_OK);
	assert_string_equal(text, "{\"result\":\"accepted\",\"ballot\":{\"counter\":\"4\","
				  "\"id\":\"1\"},\"promised\":{\"counter\":\"5\",\"id\":\"1\"}}");
	assert_int_equal(decode_reply(text, &d), CAS_OK);
	assert_int_equal(d.next.counter, 5);
	cas_msg_clear(&d);
	free(text);
	assert_int_equal(decode_reply("{\"result\":\"accepted\",\"ballot\":{\"counter\":\"4\","
				      "\"id\":\"1\"},\"promised\":7}",
				      &d),
			 CAS_EPROTO);
}

/* A read's query and its answer. */
static void test_query_roundtrip(void **state)
{
	struct cas_msg m = {.type = CAS_MSG_QUERY}, d;
	size_t len;
	char *text;

	(void)state;
	strcpy(m.key, "i/00ff");
	assert_int_equal(cas_codec_encode(&m, &text, &len), CAS_OK);
	assert_string_equal(text, "{\"key\":\"i/00ff\"}");
	assert_int_equal(decode(text, CAS_MSG_QUERY, &d), CAS_OK);
	assert_int_equal(d.type, CAS_MSG_QUERY);
	assert_string_equal(d.key, "i/00ff");
	free(text);
	/* Nothing but the key. */
	assert_int_equal(decode("{\"key\":\"k\",\"ballot\":{\"counter\":\"1\",\"id\":\"1\"}}",
				CAS_MSG_QUERY, &d),
			 CAS_EINVAL);
	assert_int_equal(decode("{}", CAS_MSG_QUERY, &d), CAS_EINVAL);
	assert_int_equal(decode("{\"key\":\"a b\"}", CAS_MSG_QUERY, &d), CAS_EKEY);

	memset(&m, 0, sizeof(m));
	m.type = CAS_MSG_CURRENT;
	m.ballot = (struct cas_ballot){4, 2};
	m.value.version = 1;
	m.value.data = (unsigned char *)"hi";
	m.value.len = 2;
	assert_int_equal(cas_codec_encode(&m, &text, &len), CAS_OK);
	assert_non_null(strstr(text, "\"result\":\"current\""));
	assert_int_equal(decode_reply(text, &d), CAS_OK);
	assert_int_equal(d.type, CAS_MSG_CURRENT);
	assert_int_equal(d.ballot.counter, 4);
	assert_int_equal(d.value.len, 2);
	cas_msg_clear(&d);
	free(text);
}

/* A reason quotes what the peer sent, but stays one line of text. */
static void test_errmsg_one_line(void **state)
{
	static const char *const bodies[] = {
		"{\"key\":\"k\",\"x\ncasd: FORGED\":1}",
		"{\"key\":\"k\",\"x\\ncasd: FORGED\":1}",
		"{\"key\":\"k\",\"x\\u000acasd: \\u001b[31mFORGED\":1}",
	};
	char errmsg[256];
	struct cas_msg d;

	(void)state;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		assert_int_equal(cas_codec_decode_request(bodies[i], strlen(bodies[i]),
							  CAS_MSG_PREPARE, MAXV, &d, errmsg,
							  sizeof(errmsg)),
				 CAS_EINVAL);
		assert_non_null(strstr(errmsg, "FORGED"));
		for (const char *q = errmsg; *q; q++)
			assert_true((unsigned char)*q >= 0x20 && *q != 0x7f);
	}
	assert_int_equal(decode_reply("{\"result\":\"no\\npe\"}", &d), CAS_EPROTO);
}

static void test_reply_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"{}",
		"{\"result\":\"maybe\",\"ballot\":{\"counter\":\"1\",\"id\":\"2\"}}",
		"{\"result\":1,\"ballot\":{\"counter\":\"1\",\"id\":\"2\"}}",
		"{\"result\":\"accepted\"}",
		"{\"result\":\"accepted\",\"blocking\":{\"counter\":\"1\",\"id\":\"2\"}}",
		"{\"result\":\"reject\",\"blocking\":{\"counter\":\"1\",\"id\":\"2\"},\"x\":1}",
		"{\"result\":\"promise\",\"accepted\":{\"counter\":\"1\",\"id\":\"2\"}}",
		"{\"result\":\"promise\",\"accepted\":{\"counter\":\"1\",\"id\":\"2\"},"
		"\"value\":{\"version\":\"1\",\"recent\":[],\"data\":\"!!!!\"}}",
	};
	struct cas_msg d;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int err = decode_reply(bad[i], &d);

		if (err != CAS_EPROTO)
			fail_msg("case %zu (%s): got %d, want CAS_EPROTO", i, bad[i], err);
		assert_zeroed(&d);
	}
}

static void test_encode_rejects(void **state)
{
	struct cas_msg m = {.type = CAS_MSG_PREPARE};
	size_t len = 9;
	char *text = (char *)"x";

	(void)state;
	/* Bad key in a request. */
	strcpy(m.key, "a b");
	assert_int_equal(cas_codec_encode(&m, &text, &len), CAS_EKEY);
	assert_null(text);
	assert_int_equal(len, 0);
	/* Too many recent ids. */
	strcpy(m.key, "k");
	m.type = CAS_MSG_ACCEPT;
	m.value.n_recent = CAS_RECENT_MAX + 1;
	assert_int_equal(cas_codec_encode(&m, &text, &len), CAS_EINVAL);
	assert_null(text);
	/* No such type. */
	m.type = CAS_MSG_NONE;
	assert_int_equal(cas_codec_encode(&m, &text, &len), CAS_EINVAL);
}

/* --- binary form --- */

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
		if (m->type != CAS_MSG_QUERY)
			m->ballot = (struct cas_ballot){UINT64_MAX, 0x0102030405060708u + t};
		if (m->type == CAS_MSG_ACCEPT || m->type == CAS_MSG_ACCEPTED)
			m->next = (struct cas_ballot){UINT64_MAX - 1, 42};
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
		cmocka_unit_test(test_base64_vectors),
		cmocka_unit_test(test_base64_all_bytes),
		cmocka_unit_test(test_base64_rejects),
		cmocka_unit_test(test_prepare_roundtrip),
		cmocka_unit_test(test_accept_roundtrip),
		cmocka_unit_test(test_request_whitespace_and_order),
		cmocka_unit_test(test_request_rejects),
		cmocka_unit_test(test_request_limits),
		cmocka_unit_test(test_reply_roundtrip),
		cmocka_unit_test(test_next_and_promised),
		cmocka_unit_test(test_query_roundtrip),
		cmocka_unit_test(test_errmsg_one_line),
		cmocka_unit_test(test_reply_rejects),
		cmocka_unit_test(test_encode_rejects),
		cmocka_unit_test(test_bin_roundtrip),
		cmocka_unit_test(test_bin_layout),
		cmocka_unit_test(test_bin_truncated_and_trailing),
		cmocka_unit_test(test_bin_request_rejects),
		cmocka_unit_test(test_bin_reply_rejects),
		cmocka_unit_test(test_bin_encode_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

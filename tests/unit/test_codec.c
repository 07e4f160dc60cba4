/* test_codec.c - unit tests of the JSON codec and base64: round trips, and
 * every kind of malformed input refused with the right code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec_test.h"

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
	struct cas_msg m = {.type = CAS_MSG_PREPARE, .ballot = {CAS_BALLOT_COUNTER_MAX, 42}}, d;
	size_t len;
	char *text;

	(void)state;
	strcpy(m.key, "dir/a.b_c:d@e-F9");
	assert_int_equal(cas_codec_encode(&m, &text, &len), CAS_OK);
	assert_int_equal(len, strlen(text));
	assert_string_equal(text, "{\"key\":\"dir/a.b_c:d@e-F9\",\"ballot\":{\"counter\":"
				  "\"4611686018427387904\",\"id\":\"42\"}}");
	assert_int_equal(decode(text, CAS_MSG_PREPARE, &d), CAS_OK);
	assert_int_equal(d.type, CAS_MSG_PREPARE);
	assert_string_equal(d.key, m.key);
	assert_true(d.ballot.counter == CAS_BALLOT_COUNTER_MAX);
	assert_int_equal(d.ballot.id, 42);
	cas_msg_clear(&d);
	free(text);
}

/* A request whose ballot leaves no room above it (counter past 2^62) is
 * refused: once promised, no proposer could write the key again. Replies
 * may carry any ballot: the proposer judges them. */
static void test_ballot_past_range_refused(void **state)
{
	static const char *const bodies[] = {
		"{\"key\":\"k\",\"ballot\":{\"counter\":\"18446744073709551615\",\"id\":\"1\"}}",
		"{\"key\":\"k\",\"ballot\":{\"counter\":\"4611686018427387905\",\"id\":\"1\"}}",
	};
	struct cas_msg d;

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(decode(bodies[i], CAS_MSG_PREPARE, &d), CAS_EINVAL);
		assert_zeroed(&d);
	}
	assert_int_equal(decode("{\"key\":\"k\",\"ballot\":{\"counter\":\"7\",\"id\":\"1\"},"
				"\"value\":{\"version\":\"1\",\"recent\":[],\"data\":\"\"},"
				"\"next\":{\"counter\":\"18446744073709551615\",\"id\":\"1\"}}",
				CAS_MSG_ACCEPT, &d),
			 CAS_EINVAL);
	assert_zeroed(&d);
	assert_int_equal(decode_reply("{\"result\":\"reject\",\"blocking\":{\"counter\":"
				      "\"18446744073709551615\",\"id\":\"1\"}}",
				      &d),
			 CAS_OK);
	assert_true(d.ballot.counter == UINT64_MAX);
	cas_msg_clear(&d);
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
	assert_string_equal(text,
			    "{\"result\":\"promise\",\"accepted\":{\"counter\":\"9\","
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

/* The collector's PURGE and its answer (PROTOCOL.md, "Deletion"): a key
 * and a ballot, as a prepare, on /v1/purge; the answer names the key's
 * accepted ballot after it. */
static void test_purge_roundtrip(void **state)
{
	struct cas_msg m = {.type = CAS_MSG_PURGE, .ballot = {12, 3}}, d;
	size_t len;
	char *text;

	(void)state;
	strcpy(m.key, "i/00ff");
	assert_int_equal(cas_codec_encode(&m, &text, &len), CAS_OK);
	assert_string_equal(text,
			    "{\"key\":\"i/00ff\",\"ballot\":{\"counter\":\"12\",\"id\":\"3\"}}");
	assert_int_equal(decode(text, CAS_MSG_PURGE, &d), CAS_OK);
	assert_int_equal(d.type, CAS_MSG_PURGE);
	assert_string_equal(d.key, "i/00ff");
	assert_true(d.ballot.counter == 12 && d.ballot.id == 3);
	free(text);
	/* Exactly a key and a ballot, in range. */
	assert_int_equal(decode("{\"key\":\"k\"}", CAS_MSG_PURGE, &d), CAS_EINVAL);
	assert_int_equal(decode("{\"key\":\"k\",\"ballot\":{\"counter\":\"1\",\"id\":\"1\"},"
				"\"next\":{\"counter\":\"2\",\"id\":\"1\"}}",
				CAS_MSG_PURGE, &d),
			 CAS_EINVAL);
	assert_int_equal(decode("{\"key\":\"k\",\"ballot\":{\"counter\":"
				"\"4611686018427387905\",\"id\":\"1\"}}",
				CAS_MSG_PURGE, &d),
			 CAS_EINVAL);
	assert_int_equal(decode("{\"key\":\"a b\",\"ballot\":{\"counter\":\"1\",\"id\":\"1\"}}",
				CAS_MSG_PURGE, &d),
			 CAS_EKEY);

	memset(&m, 0, sizeof(m));
	m.type = CAS_MSG_PURGED;
	m.ballot = (struct cas_ballot){0, 0};
	assert_int_equal(cas_codec_encode(&m, &text, &len), CAS_OK);
	assert_string_equal(
		text, "{\"result\":\"purged\",\"accepted\":{\"counter\":\"0\",\"id\":\"0\"}}");
	assert_int_equal(decode_reply(text, &d), CAS_OK);
	assert_int_equal(d.type, CAS_MSG_PURGED);
	assert_true(cas_ballot_is_zero(d.ballot));
	free(text);
	assert_int_equal(decode_reply("{\"result\":\"purged\"}", &d), CAS_EPROTO);
	assert_int_equal(decode_reply("{\"result\":\"purged\",\"accepted\":{\"counter\":\"7\","
				      "\"id\":\"1\"},\"value\":1}",
				      &d),
			 CAS_EPROTO);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64_vectors),
		cmocka_unit_test(test_base64_all_bytes),
		cmocka_unit_test(test_base64_rejects),
		cmocka_unit_test(test_prepare_roundtrip),
		cmocka_unit_test(test_ballot_past_range_refused),
		cmocka_unit_test(test_accept_roundtrip),
		cmocka_unit_test(test_request_whitespace_and_order),
		cmocka_unit_test(test_request_rejects),
		cmocka_unit_test(test_request_limits),
		cmocka_unit_test(test_reply_roundtrip),
		cmocka_unit_test(test_next_and_promised),
		cmocka_unit_test(test_query_roundtrip),
		cmocka_unit_test(test_purge_roundtrip),
		cmocka_unit_test(test_errmsg_one_line),
		cmocka_unit_test(test_reply_rejects),
		cmocka_unit_test(test_encode_rejects),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

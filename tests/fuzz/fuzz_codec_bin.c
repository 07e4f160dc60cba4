/* fuzz_codec_bin.c - libFuzzer target for the binary wire form: arbitrary
 * bytes as a request of each type and as a reply; whatever decodes must
 * encode to the very same bytes (the form is canonical), and say the same
 * in JSON. */
#include <stdbool.h>
#include <string.h>

#include "codec.h"
#include "codec_bin.h"
#include "fuzz.h"

/* Small, so that values over the limit (CAS_ETOOBIG) are within reach. */
#define MAX_VALUE 1024

static bool reg_equal(const struct cas_reg *a, const struct cas_reg *b)
{
	return a->version == b->version && a->n_recent == b->n_recent &&
	       !memcmp(a->recent, b->recent, a->n_recent * sizeof(a->recent[0])) &&
	       a->len == b->len && (!a->len || !memcmp(a->data, b->data, a->len));
}

static bool msg_equal(const struct cas_msg *a, const struct cas_msg *b)
{
	return a->type == b->type && !strcmp(a->key, b->key) &&
	       !cas_ballot_cmp(a->ballot, b->ballot) && !cas_ballot_cmp(a->next, b->next) &&
	       reg_equal(&a->value, &b->value);
}

static bool msg_zeroed(const struct cas_msg *m)
{
	static const struct cas_msg zero;

	return !memcmp(m, &zero, sizeof(zero));
}

/* Decodes as a request of type kind, or as a reply when kind is
 * CAS_MSG_NONE, and checks the decoder kept its contract (codec_bin.h). */
static int decode(const uint8_t *body, size_t len, enum cas_msg_type kind, struct cas_msg *out)
{
	char errmsg[256];
	int err;

	memset(errmsg, 0, sizeof(errmsg));
	if (kind == CAS_MSG_NONE)
		err = cas_codec_bin_decode_reply(body, len, MAX_VALUE, out, errmsg, sizeof(errmsg));
	else
		err = cas_codec_bin_decode_request(body, len, kind, MAX_VALUE, out, errmsg,
						   sizeof(errmsg));
	if (err) {
		CHECK(msg_zeroed(out));
		CHECK(errmsg[0] != '\0');
		for (const char *q = errmsg; *q; q++)
			CHECK((unsigned char)*q >= 0x20 && *q != 0x7f);
		if (kind == CAS_MSG_NONE)
			CHECK(err == CAS_EPROTO || err == CAS_ETOOBIG || err == CAS_ENOMEM);
		else
			CHECK(err == CAS_EINVAL || err == CAS_EKEY || err == CAS_ETOOBIG ||
			      err == CAS_ENOMEM);
		return err;
	}
	if (kind == CAS_MSG_NONE) {
		CHECK(out->type == CAS_MSG_PROMISE || out->type == CAS_MSG_ACCEPTED ||
		      out->type == CAS_MSG_REJECT || out->type == CAS_MSG_CURRENT);
		CHECK(out->key[0] == '\0');
	} else {
		CHECK(out->type == kind);
		CHECK(cas_key_valid(out->key, strlen(out->key)));
	}
	CHECK(out->value.n_recent <= CAS_RECENT_MAX);
	CHECK(out->value.len <= MAX_VALUE);
	CHECK(!out->value.len == !out->value.data);
	return CAS_OK;
}

/* The JSON form of m decodes to m: both forms carry the same messages. */
static void same_in_json(const struct cas_msg *m, enum cas_msg_type kind)
{
	struct cas_msg j;
	char *text;
	size_t len;
	int err;

	CHECK(cas_codec_encode(m, &text, &len) == CAS_OK);
	if (kind == CAS_MSG_NONE)
		err = cas_codec_decode_reply(text, len, MAX_VALUE, &j, NULL, 0);
	else
		err = cas_codec_decode_request(text, len, kind, MAX_VALUE, &j, NULL, 0);
	CHECK(err == CAS_OK);
	CHECK(msg_equal(m, &j));
	cas_msg_clear(&j);
	free(text);
}

static void round_trip(const uint8_t *body, size_t len, enum cas_msg_type kind)
{
	struct cas_msg m;
	unsigned char *bin;
	size_t bin_len;

	if (decode(body, len, kind, &m))
		return;
	CHECK(cas_codec_bin_encode(&m, &bin, &bin_len) == CAS_OK);
	CHECK(bin_len == len && !memcmp(bin, body, len));
	free(bin);
	same_in_json(&m, kind);
	cas_msg_clear(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	round_trip(data, size, CAS_MSG_PREPARE);
	round_trip(data, size, CAS_MSG_ACCEPT);
	round_trip(data, size, CAS_MSG_QUERY);
	round_trip(data, size, CAS_MSG_NONE);
	return 0;
}

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

#include "fuzz_msg.h"

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
	check_decoded(err, out, errmsg, kind);
	if (!err)
		CHECK(!out->value.len == !out->value.data); /* canonical: no bytes, no buffer */
	return err;
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
	round_trip(data, size, CAS_MSG_PURGE);
	round_trip(data, size, CAS_MSG_NONE);
	return 0;
}

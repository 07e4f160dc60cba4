/* fuzz_codec.c - libFuzzer target for the wire codec: arbitrary bytes as a
 * request of either type, as a reply, and as base64; whatever decodes must
 * encode, decode again to the same message, and encode to the same text. */
#include <stdbool.h>
#include <string.h>

#include "codec.h"
#include "fuzz.h"

/* Small, so that values over the limit (CAS_ETOOBIG) are within reach. */
#define MAX_VALUE 1024

#include "fuzz_msg.h"

/* Decodes len bytes of body as a request of type kind, or as a reply when
 * kind is CAS_MSG_NONE, and checks the decoder kept its contract
 * (codec.h) whatever the outcome. */
static int decode(const char *body, size_t len, enum cas_msg_type kind, struct cas_msg *out)
{
	char errmsg[256];
	int err;

	memset(errmsg, 0, sizeof(errmsg));
	if (kind == CAS_MSG_NONE)
		err = cas_codec_decode_reply(body, len, MAX_VALUE, out, errmsg, sizeof(errmsg));
	else
		err = cas_codec_decode_request(body, len, kind, MAX_VALUE, out, errmsg,
					       sizeof(errmsg));
	check_decoded(err, out, errmsg, kind);
	return err;
}

static void round_trip(const char *body, size_t len, enum cas_msg_type kind)
{
	struct cas_msg m, again;
	char *text, *text2;
	size_t text_len, text2_len;

	if (decode(body, len, kind, &m))
		return;
	CHECK(cas_codec_encode(&m, &text, &text_len) == CAS_OK);
	CHECK(text_len == strlen(text));
	CHECK(decode(text, text_len, kind, &again) == CAS_OK);
	CHECK(msg_equal(&m, &again));
	/* One message, one text: what decoded encodes to the same bytes. */
	CHECK(cas_codec_encode(&again, &text2, &text2_len) == CAS_OK);
	CHECK(text2_len == text_len && !memcmp(text, text2, text_len));
	free(text2);
	free(text);
	cas_msg_clear(&again);
	cas_msg_clear(&m);
}

/* Base64 is canonical both ways: text that decodes is what its bytes
 * encode to, and any bytes survive encoding and decoding. */
static void base64_round_trip(const uint8_t *data, size_t size)
{
	unsigned char *bytes;
	size_t n, text_len;
	char *text;

	if (cas_base64_decode((const char *)data, size, &bytes, &n) == CAS_OK) {
		CHECK(cas_base64_encode(bytes, n, &text, &text_len) == CAS_OK);
		CHECK(text_len == size && !memcmp(text, data, size));
		free(text);
		free(bytes);
	}
	CHECK(cas_base64_encode(data, size, &text, &text_len) == CAS_OK);
	CHECK(text_len == strlen(text));
	CHECK(cas_base64_decode(text, text_len, &bytes, &n) == CAS_OK);
	CHECK(n == size && (!n || !memcmp(bytes, data, n)));
	free(bytes);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;

	round_trip(body, size, CAS_MSG_PREPARE);
	round_trip(body, size, CAS_MSG_ACCEPT);
	round_trip(body, size, CAS_MSG_PURGE);
	round_trip(body, size, CAS_MSG_NONE);
	base64_round_trip(data, size);
	return 0;
}

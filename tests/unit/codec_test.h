/* codec_test.h - what the JSON and binary codec tests decode with: each
 * refusal must say why, and leave the message zeroed. Include after
 * <cmocka.h>. */
#ifndef CAS_TEST_CODEC_TEST_H
#define CAS_TEST_CODEC_TEST_H

#include <string.h>

#include "codec.h"

#define MAXV 64 /* max value size used by most tests */

static inline int decode(const char *body, enum cas_msg_type type, struct cas_msg *out)
{
	char errmsg[256] = "";
	int err;

	err = cas_codec_decode_request(body, strlen(body), type, MAXV, out, errmsg, sizeof(errmsg));
	if (err)
		assert_true(errmsg[0] != '\0'); /* every refusal says why */
	return err;
}

static inline int decode_reply(const char *body, struct cas_msg *out)
{
	char errmsg[256] = "";
	int err;

	err = cas_codec_decode_reply(body, strlen(body), MAXV, out, errmsg, sizeof(errmsg));
	if (err)
		assert_true(errmsg[0] != '\0');
	return err;
}

/* Every byte of m is zero (what decoders leave on error). */
static inline void assert_zeroed(const struct cas_msg *m)
{
	static const struct cas_msg zero;

	assert_memory_equal(m, &zero, sizeof(zero));
}

#endif

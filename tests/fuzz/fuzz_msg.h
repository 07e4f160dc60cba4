/* fuzz_msg.h - what the codec targets share: comparing messages, and the
 * contract every decoder keeps (codec.h, codec_bin.h), whatever the body.
 * Each target defines MAX_VALUE before including it. */
#ifndef CAS_FUZZ_MSG_H
#define CAS_FUZZ_MSG_H

#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "msg.h"

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

/* A decoder's outcome err for a request of type kind (a reply when kind
 * is CAS_MSG_NONE): on error a zeroed message, an allowed code and a
 * one-line reason; on success a message of the right type that keeps the
 * limits. */
static void check_decoded(int err, const struct cas_msg *out, const char *errmsg,
			  enum cas_msg_type kind)
{
	if (err) {
		CHECK(msg_zeroed(out));
		CHECK(errmsg[0] != '\0');
		/* One line of text, whatever the body quoted into it. */
		for (const char *q = errmsg; *q; q++)
			CHECK((unsigned char)*q >= 0x20 && *q != 0x7f);
		if (kind == CAS_MSG_NONE)
			CHECK(err == CAS_EPROTO || err == CAS_ETOOBIG || err == CAS_ENOMEM);
		else
			CHECK(err == CAS_EINVAL || err == CAS_EKEY || err == CAS_ETOOBIG ||
			      err == CAS_ENOMEM);
		return;
	}
	if (kind == CAS_MSG_NONE) {
		CHECK(out->type == CAS_MSG_PROMISE || out->type == CAS_MSG_ACCEPTED ||
		      out->type == CAS_MSG_REJECT || out->type == CAS_MSG_CURRENT ||
		      out->type == CAS_MSG_PURGED);
		CHECK(out->key[0] == '\0');
	} else {
		CHECK(out->type == kind);
		CHECK(cas_key_valid(out->key, strlen(out->key)));
	}
	CHECK(out->value.n_recent <= CAS_RECENT_MAX);
	CHECK(out->value.len <= MAX_VALUE);
	CHECK(!out->value.len || out->value.data);
}

#endif

/* fuzz_acceptor.c - libFuzzer target for the acceptor rules: a state made
 * from the input's first bytes, then requests decoded from the rest, each
 * run through cas_acceptor_handle against the rules of acceptor.h, and
 * each reply sent through the codec as a proposer would read it. */
#include <stdbool.h>
#include <string.h>

#include "acceptor.h"
#include "codec.h"
#include "fuzz.h"

#define MAX_VALUE 1024
/* promise/accepted (two ballots, the higher is the promise), version. */
#define HEADER_LEN 40

/*
 * Input layout:
 *
 *   HEADER_LEN bytes    two ballots and a version, little-endian (missing
 *                       bytes read as zero)
 *   chunk NUL chunk ... requests; a chunk is a selector byte and a JSON
 *                       body: bit 0 picks ACCEPT over PREPARE; bit 1 turns
 *                       the decoded request into a non-request type
 *                       (bits 2-3: none, promise, accepted, reject)
 */

static uint64_t get64(const uint8_t *data, size_t size, size_t off)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | (off + (size_t)i < size ? data[off + (size_t)i] : 0);
	return v;
}

static bool reg_equal(const struct cas_reg *a, const struct cas_reg *b)
{
	return a->version == b->version && a->n_recent == b->n_recent &&
	       !memcmp(a->recent, b->recent, a->n_recent * sizeof(a->recent[0])) &&
	       a->len == b->len && (!a->len || !memcmp(a->data, b->data, a->len));
}

static bool ballot_eq(struct cas_ballot a, struct cas_ballot b)
{
	return cas_ballot_cmp(a, b) == 0;
}

/* Same ballots, same value, same value bytes (the pointer, not a copy). */
static bool state_same(const struct cas_acceptor_state *a, const struct cas_acceptor_state *b)
{
	return ballot_eq(a->promise, b->promise) && ballot_eq(a->accepted, b->accepted) &&
	       reg_equal(&a->value, &b->value) && a->value.data == b->value.data;
}

/* The reply as a proposer gets it: it encodes, and decodes to itself. */
static void check_wire(const struct cas_msg *reply)
{
	struct cas_msg back;
	char errmsg[256];
	size_t len;
	char *text;

	CHECK(cas_codec_encode(reply, &text, &len) == CAS_OK);
	CHECK(cas_codec_decode_reply(text, len, MAX_VALUE, &back, errmsg, sizeof(errmsg)) ==
	      CAS_OK);
	CHECK(back.type == reply->type);
	CHECK(ballot_eq(back.ballot, reply->ballot));
	if (reply->type == CAS_MSG_PROMISE)
		CHECK(reg_equal(&back.value, &reply->value));
	cas_msg_clear(&back);
	free(text);
}

/* Runs req on st and checks the outcome against acceptor.h. */
static void step(struct cas_acceptor_state *st, const struct cas_msg *req)
{
	const struct cas_acceptor_state before = *st;
	struct cas_ballot b = req->ballot;
	struct cas_msg reply;
	bool changed, blocked;

	changed = cas_acceptor_handle(st, req, &reply);

	/* What holds after every request. */
	CHECK(cas_ballot_cmp(st->promise, before.promise) >= 0);
	CHECK(cas_ballot_cmp(st->accepted, before.accepted) >= 0);
	CHECK(cas_ballot_cmp(st->accepted, st->promise) <= 0);
	CHECK(reply.key[0] == '\0');
	/* true when st changed (it may say so for a rewrite of the same). */
	CHECK(changed || state_same(st, &before));

	if (req->type == CAS_MSG_PREPARE)
		blocked = cas_ballot_cmp(b, before.promise) <= 0 ||
			  cas_ballot_cmp(b, before.accepted) <= 0;
	else if (req->type == CAS_MSG_ACCEPT)
		blocked = cas_ballot_cmp(b, before.promise) < 0 ||
			  cas_ballot_cmp(b, before.accepted) < 0;
	else
		blocked = true;

	if (req->type != CAS_MSG_PREPARE && req->type != CAS_MSG_ACCEPT) {
		CHECK(reply.type == CAS_MSG_REJECT);
		CHECK(cas_ballot_is_zero(reply.ballot));
	} else if (blocked) {
		/* Rejected, with a ballot to outbid; nothing changed. */
		CHECK(reply.type == CAS_MSG_REJECT);
		CHECK(ballot_eq(reply.ballot, cas_ballot_max(before.promise, before.accepted)));
		CHECK(cas_ballot_cmp(reply.ballot, b) >= 0);
		if (req->type == CAS_MSG_ACCEPT)
			CHECK(cas_ballot_cmp(reply.ballot, b) > 0);
	} else if (req->type == CAS_MSG_PREPARE) {
		/* Step 3: the promise is b; the reply carries the accepted
		 * ballot and value, never the promise just made. */
		CHECK(reply.type == CAS_MSG_PROMISE);
		CHECK(ballot_eq(st->promise, b));
		CHECK(ballot_eq(st->accepted, before.accepted));
		CHECK(ballot_eq(reply.ballot, st->accepted));
		CHECK(reg_equal(&reply.value, &st->value));
		CHECK(st->value.data == before.value.data);
	} else {
		/* Step 5. */
		CHECK(reply.type == CAS_MSG_ACCEPTED);
		CHECK(ballot_eq(reply.ballot, b));
		CHECK(ballot_eq(st->promise, b) && ballot_eq(st->accepted, b));
		CHECK(reg_equal(&st->value, &req->value));
	}
	if (blocked)
		CHECK(!changed && state_same(st, &before));
	check_wire(&reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum cas_msg_type other[] = {CAS_MSG_NONE, CAS_MSG_PROMISE, CAS_MSG_ACCEPTED,
						  CAS_MSG_REJECT};
	struct cas_acceptor_state st;
	struct cas_ballot x, y;
	unsigned char *owned = NULL;
	size_t off = HEADER_LEN;

	memset(&st, 0, sizeof(st));
	x = (struct cas_ballot){get64(data, size, 0), get64(data, size, 8)};
	y = (struct cas_ballot){get64(data, size, 16), get64(data, size, 24)};
	/* Only reachable states: accepted <= promise. */
	st.promise = cas_ballot_max(x, y);
	st.accepted = cas_ballot_cmp(x, y) < 0 ? x : y;
	st.value.version = get64(data, size, 32);

	while (off < size) {
		const uint8_t *chunk = data + off;
		const uint8_t *end = memchr(chunk, '\0', size - off);
		size_t len = end ? (size_t)(end - chunk) : size - off;
		uint8_t sel = len ? chunk[0] : 0;
		struct cas_msg req;
		char errmsg[256];

		off += len + 1;
		if (len < 2)
			continue;
		if (cas_codec_decode_request((const char *)chunk + 1, len - 1,
					     sel & 1 ? CAS_MSG_ACCEPT : CAS_MSG_PREPARE, MAX_VALUE,
					     &req, errmsg, sizeof(errmsg)))
			continue;
		if (sel & 2)
			req.type = other[sel >> 2 & 3];
		step(&st, &req);
		/* After an accept st borrows req's bytes: keep a copy. */
		if (st.value.data != owned) {
			unsigned char *copy = NULL;

			if (st.value.len) {
				copy = malloc(st.value.len);
				CHECK(copy);
				memcpy(copy, st.value.data, st.value.len);
			}
			free(owned);
			owned = copy;
			st.value.data = owned;
		}
		cas_msg_clear(&req);
	}
	free(owned);
	return 0;
}

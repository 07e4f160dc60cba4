/* txn_codec.c - the bytes of a transaction's intents (txn_impl.h;
 * fs/FORMAT.md, "Transactions"). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cas/bytes.h>

#include "txn_impl.h"

bool txn_is_intent(const struct cas_value *v)
{
	return v->len >= 2 && memcmp(v->data, intent_magic, 2) == 0;
}

int txn_intent_decode(const struct cas_value *v, struct intent *in)
{
	const unsigned char *p = v->data;
	size_t len = v->len, at;
	uint8_t flags;

	if (len < INTENT_HEAD + 4 || p[2] != FORMAT_VERSION)
		return CAS_EIO;
	flags = p[3];
	in->id = p + 4;
	in->old = p + INTENT_HEAD;
	in->old_len = cas_get_le32(p + 20);
	if (in->old_len > len - INTENT_HEAD - 4)
		return CAS_EIO;
	at = INTENT_HEAD + in->old_len;
	in->new_ = p + at + 4;
	in->new_len = cas_get_le32(p + at);
	if (in->new_len != len - at - 4 || (flags & ~(INTENT_OLD | INTENT_NEW)) ||
	    !(flags & INTENT_OLD) != (in->old_len == 0) ||
	    !(flags & INTENT_NEW) != (in->new_len == 0))
		return CAS_EIO;
	return CAS_OK;
}

int txn_intent_encode(const unsigned char *id, const struct cas_value *old,
		      const struct cas_value *next, struct cas_value *out)
{
	unsigned char *p;
	size_t at;

	if (old->len > UINT32_MAX || next->len > UINT32_MAX ||
	    next->len > SIZE_MAX - INTENT_HEAD - 4 - old->len)
		return CAS_ETOOBIG;
	out->len = INTENT_HEAD + 4 + old->len + next->len;
	out->data = p = malloc(out->len);
	if (p == NULL)
		return CAS_ENOMEM;
	memcpy(p, intent_magic, 2);
	p[2] = FORMAT_VERSION;
	p[3] = (old->len ? INTENT_OLD : 0) | (next->len ? INTENT_NEW : 0);
	memcpy(p + 4, id, ID_LEN);
	cas_put_le32(p + 20, (uint32_t)old->len);
	if (old->len)
		memcpy(p + INTENT_HEAD, old->data, old->len);
	at = INTENT_HEAD + old->len;
	cas_put_le32(p + at, (uint32_t)next->len);
	if (next->len)
		memcpy(p + at + 4, next->data, next->len);
	return CAS_OK;
}

struct cas_value txn_plain_view(const struct cas_value *cur)
{
	struct cas_value v = *cur;

	if (v.len == 0) {
		v.version = 0;
		v.data = NULL;
	}
	return v;
}

void txn_own_plain(struct cas_value *v)
{
	if (v->len == 0)
		cas_value_clear(v);
}

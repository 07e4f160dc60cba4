/* msg.c - lifetime helpers for register values and protocol messages. */
#include <stdlib.h>
#include <string.h>

#include "errmsg.h"
#include "msg.h"

void cas_msg_clear(struct cas_msg *m)
{
	free(m->value.data);
	memset(m, 0, sizeof(*m));
}

int cas_msg_check_request(const struct cas_msg *m, char *errmsg, size_t errmsg_len)
{
	if (!cas_ballot_in_range(m->ballot) || !cas_ballot_in_range(m->next)) {
		cas_errmsg_set(errmsg, errmsg_len,
			       "%s: counter above 2^62 leaves no room for later ballots",
			       cas_ballot_in_range(m->ballot) ? "next" : "ballot");
		return CAS_EINVAL;
	}
	return CAS_OK;
}

bool cas_reg_absent(const struct cas_reg *r)
{
	return r->version == 0;
}

uint64_t cas_reg_seq(const struct cas_reg *r)
{
	/* A register written before deletes existed has recent[0].version
	 * equal to its version, so the count carries on from it. */
	return r->n_recent > 0 ? r->recent[0].version : r->version;
}

int cas_reg_copy(struct cas_reg *dst, const struct cas_reg *src)
{
	unsigned char *data = NULL;

	if (src->len > 0) {
		data = malloc(src->len);
		if (data == NULL) {
			memset(dst, 0, sizeof(*dst));
			return CAS_ENOMEM;
		}
		memcpy(data, src->data, src->len);
	}
	*dst = *src;
	dst->data = data;
	return CAS_OK;
}

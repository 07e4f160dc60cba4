/* batch.c - both halves of the batch format (batch.h): the node's (split a
 * body into items, build the answer) and the client's (build a body, read
 * the answer). Pure: no I/O. */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cas/bytes.h>
#include <cas/cas.h>

#include "batch.h"
#include "errmsg.h"

/* Bytes of an item's or an entry's length field. */
#define LEN_SIZE 4

int cas_batch_split(const void *body, size_t len, struct cas_batch_item items[CAS_BATCH_MAX_ITEMS],
		    size_t *n, char *errmsg, size_t errmsg_len)
{
	const unsigned char *p = body;
	size_t off = 0, count = 0;
	uint32_t item_len;

	*n = 0;
	if (len == 0) {
		cas_errmsg_set(errmsg, errmsg_len, "empty batch: no item");
		return CAS_EINVAL;
	}
	while (off < len) {
		if (count == CAS_BATCH_MAX_ITEMS) {
			cas_errmsg_set(errmsg, errmsg_len, "more than %d items in a batch",
				       CAS_BATCH_MAX_ITEMS);
			return CAS_EINVAL;
		}
		if (len - off < LEN_SIZE) {
			cas_errmsg_set(errmsg, errmsg_len,
				       "batch item %zu: %zu bytes left for its 4-byte length",
				       count, len - off);
			return CAS_EINVAL;
		}
		item_len = cas_get_le32(p + off);
		off += LEN_SIZE;
		if (item_len > len - off) {
			cas_errmsg_set(errmsg, errmsg_len,
				       "batch item %zu: length %" PRIu32
				       " past the body's end (%zu left)",
				       count, item_len, len - off);
			return CAS_EINVAL;
		}
		items[count].data = p + off;
		items[count].len = item_len;
		count++;
		off += item_len;
	}
	*n = count;
	return CAS_OK;
}

int cas_batch_encode(const struct cas_batch_entry *entries, size_t n, unsigned char **out,
		     size_t *out_len)
{
	unsigned char *buf, *p;
	size_t i, total = 0;

	*out = NULL;
	*out_len = 0;
	for (i = 0; i < n; i++) {
		if (entries[i].len > UINT32_MAX)
			return CAS_ETOOBIG;
		if (entries[i].len > SIZE_MAX - total - 1 - LEN_SIZE)
			return CAS_ETOOBIG;
		total += 1 + LEN_SIZE + entries[i].len;
	}
	buf = malloc(total ? total : 1);
	if (!buf)
		return CAS_ENOMEM;
	p = buf;
	for (i = 0; i < n; i++) {
		*p++ = (unsigned char)entries[i].status;
		cas_put_le32(p, (uint32_t)entries[i].len);
		p += LEN_SIZE;
		if (entries[i].len)
			memcpy(p, entries[i].data, entries[i].len);
		p += entries[i].len;
	}
	*out = buf;
	*out_len = total;
	return CAS_OK;
}

int cas_batch_append(unsigned char **buf, size_t *len, size_t *cap, const void *item,
		     size_t item_len)
{
	unsigned char *q;
	size_t need;

	if (item_len > UINT32_MAX || item_len > SIZE_MAX / 2 - CAS_BATCH_ITEM_HEAD ||
	    *len > SIZE_MAX / 2 - CAS_BATCH_ITEM_HEAD - item_len)
		return CAS_ETOOBIG;
	need = *len + CAS_BATCH_ITEM_HEAD + item_len;
	if (need > *cap) {
		q = realloc(*buf, need * 2);
		if (q == NULL)
			return CAS_ENOMEM;
		*buf = q;
		*cap = need * 2;
	}
	cas_put_le32(*buf + *len, (uint32_t)item_len);
	if (item_len)
		memcpy(*buf + *len + CAS_BATCH_ITEM_HEAD, item, item_len);
	*len = need;
	return CAS_OK;
}

int cas_batch_read_entry(const void *answer, size_t len, size_t *off, struct cas_batch_entry *e)
{
	const unsigned char *p = answer;
	uint32_t entry_len;

	if (*off > len || len - *off < CAS_BATCH_ENTRY_HEAD)
		return CAS_EPROTO;
	p += *off;
	entry_len = cas_get_le32(p + 1);
	if (entry_len > len - *off - CAS_BATCH_ENTRY_HEAD)
		return CAS_EPROTO;
	e->status = (enum cas_batch_status)p[0];
	e->data = p + CAS_BATCH_ENTRY_HEAD;
	e->len = entry_len;
	*off += CAS_BATCH_ENTRY_HEAD + entry_len;
	return CAS_OK;
}

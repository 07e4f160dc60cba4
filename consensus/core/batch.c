/* batch.c - splitting a batch body into items and building its answer
 * (batch.h). Pure: no I/O. */
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

/* fuzz_batch.c - libFuzzer target for batch bodies (consensus/batch.h):
 * arbitrary bytes through cas_batch_split, which must either refuse them
 * with a one-line reason or give items that tile the body exactly; the
 * items then go through cas_batch_encode, whose answer must lay them out
 * as batch.h says. */
#include <stdbool.h>
#include <string.h>

#include "batch.h"
#include "cas/cas.h"
#include "fuzz.h"

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cas_batch_item items[CAS_BATCH_MAX_ITEMS];
	static struct cas_batch_entry entries[CAS_BATCH_MAX_ITEMS];
	char errmsg[256] = "";
	unsigned char *out;
	size_t n = 99, off = 0, out_len, i;
	int rc;

	rc = cas_batch_split(data, size, items, &n, errmsg, sizeof(errmsg));
	if (rc != CAS_OK) {
		CHECK(rc == CAS_EINVAL);
		CHECK(n == 0);
		CHECK(errmsg[0] != '\0' && !strchr(errmsg, '\n'));
		return 0;
	}
	/* The items tile the body: each after its 4-byte length, in order. */
	CHECK(n >= 1 && n <= CAS_BATCH_MAX_ITEMS);
	for (i = 0; i < n; i++) {
		CHECK(size - off >= 4);
		CHECK(le32(data + off) == items[i].len);
		CHECK(items[i].data == data + off + 4);
		CHECK(items[i].len <= size - off - 4);
		off += 4 + items[i].len;
		entries[i].status = (enum cas_batch_status)(i % 4);
		entries[i].data = items[i].data;
		entries[i].len = items[i].len;
	}
	CHECK(off == size);

	/* An answer of the same bytes: status, length, bytes, in order. */
	rc = cas_batch_encode(entries, n, &out, &out_len);
	if (rc == CAS_ENOMEM)
		return 0;
	CHECK(rc == CAS_OK);
	CHECK(out_len == size + n);
	for (i = 0, off = 0; i < n; i++) {
		CHECK(out[off] == i % 4);
		CHECK(le32(out + off + 1) == items[i].len);
		CHECK(!items[i].len || !memcmp(out + off + 5, items[i].data, items[i].len));
		off += 5 + items[i].len;
	}
	free(out);
	return 0;
}

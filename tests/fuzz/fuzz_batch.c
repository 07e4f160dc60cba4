/* fuzz_batch.c - libFuzzer target for both halves of the batch format
 * (consensus/core/batch.h). The node's half: arbitrary bytes through
 * cas_batch_split, which must either refuse them with a one-line reason or
 * give items that tile the body exactly; the items then go through
 * cas_batch_encode, whose answer must lay them out as batch.h says. The
 * client's half: the same bytes read as an untrusted answer by
 * cas_batch_read_entry, which must stay inside them; and both round trips,
 * an answer built by the node's half read back by the client's, and a body
 * built by the client's half split back by the node's. */
#include <stdbool.h>
#include <string.h>

#include "batch.h"
#include "cas/bytes.h"
#include "cas/cas.h"
#include "fuzz.h"

/* Reads data as a batch answer, entry by entry, as a client would. */
static void read_answer(const uint8_t *data, size_t size)
{
	struct cas_batch_entry e, before;
	size_t off = 0, was;
	int rc;

	for (;;) {
		memset(&e, 0xA5, sizeof(e));
		memcpy(&before, &e, sizeof(e));
		was = off;
		rc = cas_batch_read_entry(data, size, &off, &e);
		if (rc != CAS_OK) {
			/* No whole entry left: untouched cursor and entry. */
			CHECK(rc == CAS_EPROTO);
			CHECK(off == was);
			CHECK(!memcmp(&e, &before, sizeof(e)));
			CHECK(size - off < CAS_BATCH_ENTRY_HEAD ||
			      cas_get_le32(data + off + 1) > size - off - CAS_BATCH_ENTRY_HEAD);
			return;
		}
		/* The entry is the bytes at the cursor, inside the answer. */
		CHECK(size - was >= CAS_BATCH_ENTRY_HEAD);
		CHECK((unsigned)e.status == data[was]);
		CHECK(e.len == cas_get_le32(data + was + 1));
		CHECK((const uint8_t *)e.data == data + was + CAS_BATCH_ENTRY_HEAD);
		CHECK(e.len <= size - was - CAS_BATCH_ENTRY_HEAD);
		CHECK(off == was + CAS_BATCH_ENTRY_HEAD + e.len);
	}
}

/* Builds a request body of items[0..n) with the client's half: it must be
 * data itself, and split back into the same items. */
static void rebuild_body(const uint8_t *data, size_t size, const struct cas_batch_item *items,
			 size_t n)
{
	static struct cas_batch_item again[CAS_BATCH_MAX_ITEMS];
	unsigned char *body = NULL;
	size_t len = 0, cap = 0, m = 0, i;
	char errmsg[256] = "";
	int rc;

	for (i = 0; i < n; i++) {
		rc = cas_batch_append(&body, &len, &cap, items[i].data, items[i].len);
		if (rc == CAS_ENOMEM)
			goto out_free_body;
		CHECK(rc == CAS_OK);
		CHECK(len <= cap);
	}
	CHECK(len == size);
	CHECK(!size || !memcmp(body, data, size));
	rc = cas_batch_split(body, len, again, &m, errmsg, sizeof(errmsg));
	CHECK(rc == CAS_OK);
	CHECK(m == n);
	for (i = 0; i < n; i++) {
		CHECK(again[i].len == items[i].len);
		CHECK(!items[i].len || !memcmp(again[i].data, items[i].data, items[i].len));
	}
out_free_body:
	free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cas_batch_item items[CAS_BATCH_MAX_ITEMS];
	static struct cas_batch_entry entries[CAS_BATCH_MAX_ITEMS];
	struct cas_batch_entry e;
	char errmsg[256] = "";
	unsigned char *out;
	size_t n = 99, off = 0, out_len, i;
	int rc;

	read_answer(data, size);

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
		CHECK(cas_get_le32(data + off) == items[i].len);
		CHECK(items[i].data == data + off + 4);
		CHECK(items[i].len <= size - off - 4);
		off += 4 + items[i].len;
		entries[i].status = (enum cas_batch_status)(i % 4);
		entries[i].data = items[i].data;
		entries[i].len = items[i].len;
	}
	CHECK(off == size);
	rebuild_body(data, size, items, n);

	/* An answer of the same bytes: status, length, bytes, in order. */
	rc = cas_batch_encode(entries, n, &out, &out_len);
	if (rc == CAS_ENOMEM)
		return 0;
	CHECK(rc == CAS_OK);
	CHECK(out_len == size + n);
	for (i = 0, off = 0; i < n; i++) {
		CHECK(out[off] == i % 4);
		CHECK(cas_get_le32(out + off + 1) == items[i].len);
		CHECK(!items[i].len || !memcmp(out + off + 5, items[i].data, items[i].len));
		off += 5 + items[i].len;
	}

	/* The client reads back every entry, and nothing after the last. */
	for (i = 0, off = 0; i < n; i++) {
		CHECK(cas_batch_read_entry(out, out_len, &off, &e) == CAS_OK);
		CHECK(e.status == entries[i].status);
		CHECK(e.len == entries[i].len);
		CHECK(!e.len || !memcmp(e.data, entries[i].data, e.len));
	}
	CHECK(off == out_len);
	CHECK(cas_batch_read_entry(out, out_len, &off, &e) == CAS_EPROTO);
	free(out);
	return 0;
}

/* fuzz_wal.c - libFuzzer target for the store's write-ahead log replay
 * (consensus/node/store.h). An input describes log entries, which become a
 * log file with correct checksums and increasing seqs (so that the fuzzer
 * reaches the keys and records, not only the checksum), then damaged as
 * the input says; the store is opened on it. It must open, or refuse with
 * a one-line reason; once open it must have replayed at most the entries
 * written and read back every key of the ones it replayed.
 *
 * Input: a flags byte (bit 0: xor the byte at a position, bit 1: one entry
 * of an old epoch, bit 2: one entry repeats its seq), a 16-bit position,
 * an xor byte, then entries, each a key length byte, the key, a 16-bit
 * record length and the record. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cas/cas.h"
#include "fuzz.h"
#include "store.h"

#define HEADER	    28
#define MAX_ENTRIES 64

static char dir[4096];

static uint32_t crc32c(uint32_t crc, const unsigned char *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? crc >> 1 ^ 0x82f63b78u : crc >> 1;
	}
	return ~crc;
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void remove_store(void);

static void remove_dir(void)
{
	remove_store();
	rmdir(dir);
}

static void remove_store(void)
{
	static const char *const files[] = {"data.mdb", "lock.mdb", "wal"};
	char path[4200];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cas_store_config cfg = {.wal_size = CAS_STORE_MIN_WAL_SIZE};
	char keys[MAX_ENTRIES][256], errmsg[256] = "", path[4200];
	unsigned char *log = NULL;
	size_t log_len = 0, off = 4, n = 0, klen, rlen, pos;
	struct cas_store_stats st;
	struct cas_acceptor_state state;
	struct cas_store *s = NULL;
	unsigned flags;
	FILE *f;
	int rc;

	if (!dir[0]) {
		const char *tmp = getenv("TMPDIR");

		snprintf(dir, sizeof(dir), "%s/cas-fuzz-wal.XXXXXX", tmp && *tmp ? tmp : "/tmp");
		CHECK(mkdtemp(dir) != NULL);
		atexit(remove_dir);
	}
	if (size < 4)
		return 0;
	flags = data[0];
	pos = (size_t)data[1] | (size_t)data[2] << 8;
	while (n < MAX_ENTRIES && size - off >= 1) {
		unsigned char *p;

		klen = data[off];
		if (size - off - 1 < klen + 2)
			break;
		rlen = (size_t)data[off + 1 + klen] | (size_t)data[off + 2 + klen] << 8;
		if (size - off - 3 - klen < rlen)
			break;
		p = realloc(log, log_len + HEADER + 2 + klen + rlen);
		CHECK(p != NULL);
		log = p;
		p = log + log_len;
		put_le(p, 0x57534143u, 4); /* "CASW" */
		put_le(p + 4, 2 + klen + rlen, 4);
		put_le(p + 8, (flags & 2) && n == 1 ? 7 : 0, 8); /* a fresh store: epoch 0 */
		put_le(p + 16, (flags & 4) && n == 2 ? 2 : n + 1, 8);
		put_le(p + HEADER, klen, 2);
		memcpy(p + HEADER + 2, data + off + 1, klen);
		memcpy(p + HEADER + 2 + klen, data + off + 3 + klen, rlen);
		put_le(p + 24, crc32c(crc32c(0, p, 24), p + HEADER, 2 + klen + rlen), 4);
		memcpy(keys[n], data + off + 1, klen);
		keys[n][klen] = '\0';
		log_len += HEADER + 2 + klen + rlen;
		off += 3 + klen + rlen;
		n++;
	}
	if ((flags & 1) && log_len)
		log[pos % log_len] ^= data[3] ? data[3] : 1;

	remove_store();
	snprintf(path, sizeof(path), "%s/wal", dir);
	f = fopen(path, "wb");
	CHECK(f != NULL);
	CHECK(!log_len || fwrite(log, 1, log_len, f) == log_len);
	CHECK(fclose(f) == 0);
	free(log);

	rc = cas_store_open(dir, &cfg, &s, errmsg, sizeof(errmsg));
	if (rc != CAS_OK) {
		CHECK(rc == CAS_EIO);
		CHECK(s == NULL);
		CHECK(errmsg[0] != '\0' && !strchr(errmsg, '\n'));
		return 0;
	}
	cas_store_get_stats(s, &st);
	CHECK(st.replayed <= n);
	for (size_t i = 0; i < st.replayed; i++) {
		/* A replayed entry had a good key (or the store would not
		 * have opened), and its state reads back. */
		CHECK(cas_key_valid(keys[i], strlen(keys[i])));
		CHECK(cas_store_get(s, keys[i], &state, errmsg, sizeof(errmsg)) == CAS_OK);
		free(state.value.data);
	}
	cas_store_close(s);
	return 0;
}

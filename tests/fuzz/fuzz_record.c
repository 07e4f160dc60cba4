/* fuzz_record.c - libFuzzer target for the inode record (fs/record.h):
 * arbitrary bytes through the decoder, which must either refuse them or
 * give back a record that encodes to the very same bytes; and the same
 * bytes read as edits on a new record, which must encode to bytes that
 * decode to it. */
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "record.h"

#define MAX_CONTENT (1u << 20)

/* Sorted by name, bytewise, strictly (no duplicates). */
static bool names_ascending(const char *a, const char *b)
{
	return strcmp(a, b) < 0;
}

/* What every record from the decoder or the editing functions holds. */
static void check_record(const struct casfs_record *rec)
{
	size_t i;

	CHECK(casfs_type_valid(rec->type));
	CHECK(!(rec->mode & ~07777u));
	CHECK(!rec->flags);
	if (rec->type != CASFS_CHR && rec->type != CASFS_BLK)
		CHECK(!rec->rdev);
	if (rec->type != CASFS_REG && rec->type != CASFS_LNK)
		CHECK(!rec->len);
	CHECK(rec->nxattr <= UINT16_MAX);
	for (i = 0; i < rec->nxattr; i++) {
		const struct casfs_xattr *x = &rec->xattrs[i];
		size_t n = strlen(x->name);

		CHECK(n >= 1 && n <= CASFS_NAME_MAX);
		CHECK(x->len <= CASFS_XATTR_VALUE_MAX);
		CHECK(!x->len || x->value);
		if (i)
			CHECK(names_ascending(rec->xattrs[i - 1].name, x->name));
		CHECK(casfs_record_xattr_find(rec, x->name) == x);
	}
	if (rec->type != CASFS_DIR)
		CHECK(!rec->nent);
	for (i = 0; i < rec->nent; i++) {
		const struct casfs_dirent *e = &rec->ents[i];

		CHECK(casfs_record_name_valid(e->name, strlen(e->name)));
		CHECK(casfs_type_valid(e->type));
		if (i)
			CHECK(names_ascending(rec->ents[i - 1].name, e->name));
		CHECK(casfs_record_dir_find(rec, e->name, strlen(e->name)) == (long)i);
	}
	CHECK(!rec->len || rec->data);
}

/* Bytes that decode are the encoding of what they decode to. */
static void decode_encode(const uint8_t *data, size_t size)
{
	struct casfs_record rec;
	unsigned char *out;
	size_t out_len;
	int rc;

	rc = casfs_record_decode(data, size, &rec);
	if (rc) {
		static const struct casfs_record zero;

		CHECK(rc == CAS_EINVAL || rc == CAS_ENOMEM);
		CHECK(!memcmp(&rec, &zero, sizeof(zero)));
		return;
	}
	check_record(&rec);
	CHECK(rec.type != CASFS_LNK || (rec.len >= 1 && rec.len <= CASFS_SYMLINK_MAX));
	CHECK(casfs_record_size(&rec) == size);
	CHECK(casfs_record_encode(&rec, size, &out, &out_len) == CAS_OK);
	CHECK(out_len == size && !memcmp(out, data, size));
	free(out);
	if (size > 0)
		CHECK(casfs_record_encode(&rec, size - 1, &out, &out_len) == CAS_ETOOBIG);
	casfs_record_clear(&rec);
}

/* A reader of edit operations; reads past the end give zeroes. */
struct ops {
	const uint8_t *p;
	size_t left;
};

static uint8_t op8(struct ops *o)
{
	if (!o->left)
		return 0;
	o->left--;
	return *o->p++;
}

static uint16_t op16(struct ops *o)
{
	uint16_t lo = op8(o);

	return (uint16_t)(lo | op8(o) << 8);
}

/* Up to max bytes (a length byte first) into buf, NUL-terminated; returns
 * how many. */
static size_t opbytes(struct ops *o, char *buf, size_t max)
{
	size_t n = op8(o);

	if (n > max)
		n = max;
	if (n > o->left)
		n = o->left;
	memcpy(buf, o->p, n);
	buf[n] = '\0';
	o->p += n;
	o->left -= n;
	return n;
}

static void edit(struct casfs_record *rec, struct ops *o)
{
	char name[CASFS_NAME_MAX + 1];
	unsigned char val[256], id[CASFS_ID_LEN];
	const struct casfs_xattr *x;
	size_t n, vlen;
	long at;
	int rc;

	switch (op8(o) % 6) {
	case 0: /* setxattr */
		opbytes(o, name, CASFS_NAME_MAX);
		vlen = opbytes(o, (char *)val, sizeof(val) - 1);
		rc = casfs_record_xattr_set(rec, name, val, vlen);
		CHECK(rc == (name[0] ? CAS_OK : CAS_EINVAL));
		if (!rc) {
			x = casfs_record_xattr_find(rec, name);
			CHECK(x && x->len == vlen && (!vlen || !memcmp(x->value, val, vlen)));
		}
		break;
	case 1: /* removexattr */
		opbytes(o, name, CASFS_NAME_MAX);
		x = casfs_record_xattr_find(rec, name);
		CHECK(casfs_record_xattr_remove(rec, name) == (x != NULL));
		CHECK(!casfs_record_xattr_find(rec, name));
		break;
	case 2: /* link */
		if (rec->type != CASFS_DIR)
			break;
		n = opbytes(o, name, CASFS_NAME_MAX);
		memset(id, op8(o), sizeof(id));
		at = casfs_record_dir_find(rec, name, n);
		rc = casfs_record_dir_add(rec, name, n, (uint8_t)(1 + op8(o) % 7), id);
		CHECK(rc == (casfs_record_name_valid(name, n) && at < 0 ? CAS_OK : CAS_EINVAL));
		if (!rc)
			CHECK(casfs_record_dir_find(rec, name, n) >= 0);
		break;
	case 3: /* unlink */
		if (!rec->nent)
			break;
		n = op8(o) % rec->nent;
		snprintf(name, sizeof(name), "%s", rec->ents[n].name);
		casfs_record_dir_remove(rec, n);
		CHECK(casfs_record_dir_find(rec, name, strlen(name)) < 0);
		break;
	case 4: /* write */
		if (rec->type != CASFS_REG)
			break;
		n = op16(o);
		vlen = opbytes(o, (char *)val, sizeof(val) - 1);
		CHECK(casfs_record_write(rec, n, val, vlen, MAX_CONTENT) == CAS_OK);
		CHECK(rec->len >= n + vlen && (!vlen || !memcmp(rec->data + n, val, vlen)));
		break;
	case 5: /* truncate */
		if (rec->type != CASFS_REG)
			break;
		n = op16(o);
		CHECK(casfs_record_truncate(rec, n, MAX_CONTENT) == CAS_OK);
		CHECK(rec->len == n);
		break;
	}
}

/* A record built by the editing functions encodes to bytes that decode
 * to the same record. */
static void edit_encode_decode(const uint8_t *data, size_t size)
{
	const struct timespec now = {1700000000, 123456789};
	struct ops o = {data, size};
	struct casfs_record rec, back;
	unsigned char *out, *again;
	size_t out_len, again_len;
	uint8_t first = op8(&o);

	casfs_record_init(&rec, first & 1 ? CASFS_DIR : CASFS_REG, 0100644, 1000, 1000, &now);
	rec.nlink = (uint32_t)(first >> 1) * 0x01010101u;
	if (rec.type == CASFS_DIR)
		memset(rec.parent, first, sizeof(rec.parent));
	while (o.left)
		edit(&rec, &o);
	check_record(&rec);
	CHECK(casfs_record_encode(&rec, SIZE_MAX, &out, &out_len) == CAS_OK);
	CHECK(out_len == casfs_record_size(&rec));
	CHECK(casfs_record_decode(out, out_len, &back) == CAS_OK);
	check_record(&back);
	CHECK(back.type == rec.type && back.flags == rec.flags && back.nxattr == rec.nxattr &&
	      back.nent == rec.nent && back.len == rec.len && back.nlink == rec.nlink &&
	      !memcmp(back.parent, rec.parent, CASFS_ID_LEN) && back.rdev == rec.rdev);
	CHECK(casfs_record_encode(&back, out_len, &again, &again_len) == CAS_OK);
	CHECK(again_len == out_len && !memcmp(again, out, out_len));
	free(again);
	free(out);
	casfs_record_clear(&back);
	casfs_record_clear(&rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	decode_encode(data, size);
	edit_encode_decode(data, size);
	return 0;
}

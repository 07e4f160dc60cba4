/* test_fs_record.c - the inode record: round trips, edits and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "record.h"

static const struct timespec t0 = {1700000000, 123456789};

static unsigned char *encode(const struct casfs_record *rec, size_t *len)
{
	unsigned char *buf = NULL;

	assert_int_equal(casfs_record_encode(rec, CAS_DEFAULT_MAX_VALUE, &buf, len), CAS_OK);
	assert_int_equal(*len, casfs_record_size(rec));
	return buf;
}

static void test_file_roundtrip(void **state)
{
	struct casfs_record rec, back;
	unsigned char *buf;
	size_t len;

	(void)state;
	casfs_record_init(&rec, CASFS_REG, 0100644, 1000, 100, &t0);
	assert_int_equal(rec.mode, 0644);
	assert_int_equal(casfs_record_write(&rec, 0, "hello\0world", 11, 1 << 20), CAS_OK);
	assert_int_equal(casfs_record_xattr_set(&rec, "user.b", "2", 1), CAS_OK);
	assert_int_equal(casfs_record_xattr_set(&rec, "user.a", "", 0), CAS_OK);
	buf = encode(&rec, &len);
	assert_int_equal(casfs_record_decode(buf, len, &back), CAS_OK);
	assert_int_equal(back.type, CASFS_REG);
	assert_int_equal(back.mode, 0644);
	assert_int_equal(back.uid, 1000);
	assert_int_equal(back.gid, 100);
	assert_int_equal(back.mtime.tv_sec, t0.tv_sec);
	assert_int_equal(back.mtime.tv_nsec, t0.tv_nsec);
	assert_int_equal(back.len, 11);
	assert_memory_equal(back.data, "hello\0world", 11);
	assert_int_equal(back.nxattr, 2);
	assert_string_equal(back.xattrs[0].name, "user.a");
	assert_int_equal(back.xattrs[0].len, 0);
	assert_string_equal(back.xattrs[1].name, "user.b");
	assert_memory_equal(back.xattrs[1].value, "2", 1);
	free(buf);
	casfs_record_clear(&back);
	casfs_record_clear(&rec);
}

static void test_empty_records(void **state)
{
	static const uint8_t types[] = {CASFS_REG, CASFS_DIR};
	struct casfs_record rec, back;
	unsigned char *buf;
	size_t len, i;

	(void)state;
	for (i = 0; i < 2; i++) {
		casfs_record_init(&rec, types[i], 0755, 0, 0, &t0);
		buf = encode(&rec, &len);
		assert_int_equal(len,
				 CASFS_HEADER_LEN + (types[i] == CASFS_DIR ? CASFS_ID_LEN + 4 : 0));
		assert_int_equal(casfs_record_decode(buf, len, &back), CAS_OK);
		assert_int_equal(back.type, types[i]);
		assert_int_equal(back.nlink, 1);
		free(buf);
		casfs_record_clear(&back);
	}
}

static void test_dir_entries(void **state)
{
	unsigned char id1[CASFS_ID_LEN], id2[CASFS_ID_LEN];
	struct casfs_record rec, back;
	unsigned char *buf;
	size_t len;

	(void)state;
	memset(id1, 1, sizeof(id1));
	memset(id2, 2, sizeof(id2));
	casfs_record_init(&rec, CASFS_DIR, 0755, 0, 0, &t0);
	memcpy(rec.parent, id2, CASFS_ID_LEN);
	rec.nlink = 0;
	assert_int_equal(casfs_record_dir_add(&rec, "b", 1, CASFS_REG, id1), CAS_OK);
	assert_int_equal(casfs_record_dir_add(&rec, "a", 1, CASFS_DIR, id2), CAS_OK);
	assert_int_equal(casfs_record_dir_add(&rec, "ab", 2, CASFS_LNK, id2), CAS_OK);
	assert_int_equal(casfs_record_dir_add(&rec, "a", 1, CASFS_REG, id1), CAS_EINVAL);
	assert_int_equal(casfs_record_dir_add(&rec, "x/y", 3, CASFS_REG, id1), CAS_EINVAL);
	assert_int_equal(casfs_record_dir_add(&rec, "..", 2, CASFS_REG, id1), CAS_EINVAL);
	assert_int_equal(casfs_record_dir_add(&rec, "", 0, CASFS_REG, id1), CAS_EINVAL);
	assert_int_equal(rec.nent, 3);
	assert_string_equal(rec.ents[0].name, "a");
	assert_string_equal(rec.ents[1].name, "ab");
	assert_string_equal(rec.ents[2].name, "b");
	assert_int_equal(casfs_record_dir_subdirs(&rec), 1);
	buf = encode(&rec, &len);
	assert_int_equal(casfs_record_decode(buf, len, &back), CAS_OK);
	assert_int_equal(back.nent, 3);
	assert_int_equal(back.nlink, 0);
	assert_memory_equal(back.parent, id2, CASFS_ID_LEN);
	assert_int_equal(casfs_record_dir_find(&back, "ab", 2), 1);
	assert_int_equal(casfs_record_dir_find(&back, "abc", 3), -1);
	assert_memory_equal(back.ents[2].id, id1, CASFS_ID_LEN);
	assert_int_equal(back.ents[0].type, CASFS_DIR);
	casfs_record_dir_remove(&back, 1);
	assert_int_equal(back.nent, 2);
	assert_int_equal(casfs_record_dir_find(&back, "b", 1), 1);
	free(buf);
	casfs_record_clear(&back);
	casfs_record_clear(&rec);
}

static void test_symlink(void **state)
{
	struct casfs_record rec, back;
	unsigned char *buf;
	size_t len;

	(void)state;
	casfs_record_init(&rec, CASFS_LNK, 0777, 0, 0, &t0);
	assert_int_equal(casfs_record_set_data(&rec, "../target", 9, 4096), CAS_OK);
	buf = encode(&rec, &len);
	assert_int_equal(casfs_record_decode(buf, len, &back), CAS_OK);
	assert_int_equal(back.len, 9);
	assert_memory_equal(back.data, "../target", 9);
	free(buf);
	casfs_record_clear(&back);
	/* An empty target is malformed. */
	casfs_record_clear(&rec);
	casfs_record_init(&rec, CASFS_LNK, 0777, 0, 0, &t0);
	buf = encode(&rec, &len);
	assert_int_equal(casfs_record_decode(buf, len, &back), CAS_EINVAL);
	free(buf);
}

static void test_write_truncate(void **state)
{
	struct casfs_record rec;

	(void)state;
	casfs_record_init(&rec, CASFS_REG, 0644, 0, 0, &t0);
	assert_int_equal(casfs_record_write(&rec, 4, "xy", 2, 100), CAS_OK);
	assert_int_equal(rec.len, 6);
	assert_memory_equal(rec.data, "\0\0\0\0xy", 6);
	assert_int_equal(casfs_record_write(&rec, 1, "A", 1, 100), CAS_OK);
	assert_memory_equal(rec.data, "\0A\0\0xy", 6);
	assert_int_equal(casfs_record_write(&rec, 99, "ab", 2, 100), CAS_ETOOBIG);
	assert_int_equal(casfs_record_write(&rec, UINT64_MAX - 1, "ab", 2, 100), CAS_ETOOBIG);
	assert_int_equal(rec.len, 6);
	assert_int_equal(casfs_record_truncate(&rec, 2, 100), CAS_OK);
	assert_int_equal(rec.len, 2);
	assert_int_equal(casfs_record_truncate(&rec, 5, 100), CAS_OK);
	assert_memory_equal(rec.data, "\0A\0\0\0", 5);
	assert_int_equal(casfs_record_truncate(&rec, 101, 100), CAS_ETOOBIG);
	casfs_record_clear(&rec);
}

static void test_encode_limit(void **state)
{
	struct casfs_record rec;
	unsigned char *buf = NULL;
	size_t len = 0;

	(void)state;
	casfs_record_init(&rec, CASFS_REG, 0644, 0, 0, &t0);
	assert_int_equal(casfs_record_write(&rec, 0, "0123456789", 10, 100), CAS_OK);
	assert_int_equal(casfs_record_encode(&rec, CASFS_HEADER_LEN + 9, &buf, &len), CAS_ETOOBIG);
	assert_null(buf);
	assert_int_equal(casfs_record_encode(&rec, CASFS_HEADER_LEN + 10, &buf, &len), CAS_OK);
	free(buf);
	casfs_record_clear(&rec);
}

static void test_xattrs(void **state)
{
	struct casfs_record rec;
	char big[CASFS_NAME_MAX + 2];

	(void)state;
	casfs_record_init(&rec, CASFS_REG, 0644, 0, 0, &t0);
	assert_int_equal(casfs_record_xattr_set(&rec, "user.x", "1", 1), CAS_OK);
	assert_int_equal(casfs_record_xattr_set(&rec, "user.x", "22", 2), CAS_OK);
	assert_int_equal(rec.nxattr, 1);
	assert_int_equal(casfs_record_xattr_find(&rec, "user.x")->len, 2);
	assert_null(casfs_record_xattr_find(&rec, "user.y"));
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(casfs_record_xattr_set(&rec, big, "", 0), CAS_EINVAL);
	assert_int_equal(casfs_record_xattr_set(&rec, "", "", 0), CAS_EINVAL);
	assert_int_equal(casfs_record_xattr_set(&rec, "user.z", big, CASFS_XATTR_VALUE_MAX + 1),
			 CAS_EINVAL);
	assert_true(casfs_record_xattr_remove(&rec, "user.x"));
	assert_false(casfs_record_xattr_remove(&rec, "user.x"));
	assert_int_equal(rec.nxattr, 0);
	casfs_record_clear(&rec);
}

/* A valid directory record with two entries, to break in many ways. */
static unsigned char *sample_dir(size_t *len)
{
	unsigned char id[CASFS_ID_LEN] = {7};
	struct casfs_record rec;
	unsigned char *buf;

	casfs_record_init(&rec, CASFS_DIR, 0755, 0, 0, &t0);
	assert_int_equal(casfs_record_xattr_set(&rec, "user.k", "v", 1), CAS_OK);
	assert_int_equal(casfs_record_dir_add(&rec, "aa", 2, CASFS_REG, id), CAS_OK);
	assert_int_equal(casfs_record_dir_add(&rec, "bb", 2, CASFS_DIR, id), CAS_OK);
	buf = encode(&rec, len);
	casfs_record_clear(&rec);
	return buf;
}

/* A refusal leaves the record zeroed, all of it (record.h). */
static void expect_malformed(const unsigned char *buf, size_t len)
{
	static const struct casfs_record zero;
	struct casfs_record rec;

	assert_int_equal(casfs_record_decode(buf, len, &rec), CAS_EINVAL);
	assert_memory_equal(&rec, &zero, sizeof(zero));
}

static void test_malformed(void **state)
{
	size_t len, i, ent0;
	unsigned char *buf = sample_dir(&len), *copy = malloc(len + 1);
	struct casfs_record rec;

	(void)state;
	assert_int_equal(casfs_record_decode(buf, len, &rec), CAS_OK);
	casfs_record_clear(&rec);
	/* Every truncation is malformed, and so is a trailing byte. */
	for (i = 0; i < len; i++)
		expect_malformed(buf, i);
	memcpy(copy, buf, len);
	copy[len] = 0;
	expect_malformed(copy, len + 1);
	/* Field by field. */
#define BREAK(off, val)                                                                            \
	do {                                                                                       \
		memcpy(copy, buf, len);                                                            \
		copy[off] = (val);                                                                 \
		expect_malformed(copy, len);                                                       \
	} while (0)
	BREAK(0, 'x'); /* magic */
	BREAK(2, 1);   /* format 1: refused */
	BREAK(2, 3);   /* format */
	BREAK(3, 0);   /* type */
	BREAK(3, 8);
	BREAK(4, 1); /* a flag (none is defined) */
	BREAK(5, 0x80);
	BREAK(9, 0x10);			/* mode beyond 07777 */
	BREAK(7, 1);			/* reserved */
	BREAK(6, CASFS_DEPTH_MAX + 1);	/* a directory's depth past the most */
	BREAK(31, 0xff);		/* atime nsec >= 1e9 */
	BREAK(CASFS_HEADER_LEN - 2, 2); /* xattr count past the data */
	BREAK(CASFS_HEADER_LEN, 0);	/* empty xattr name */
	/* Entries: after xattr "user.k" = "v" and the entry count. */
	ent0 = CASFS_HEADER_LEN + 1 + 6 + 4 + 1 + CASFS_ID_LEN + 4;
	BREAK(ent0 - 4, 3);    /* entry count past the data */
	BREAK(ent0 - 1, 0x80); /* huge entry count */
	BREAK(ent0, 9);	       /* entry type */
	BREAK(ent0 + 1, 0);    /* empty name */
	BREAK(ent0 + 2, '/');  /* slash in a name */
	BREAK(ent0 + 2, '\0'); /* NUL in a name */
	BREAK(ent0 + 2, 'c');  /* "ca" before "bb": out of order */
	memcpy(copy, buf, len);
	copy[ent0 + 22] = 'a'; /* the second entry called "aa" too */
	copy[ent0 + 23] = 'a'; /* ... "aa" twice is not */
	expect_malformed(copy, len);
#undef BREAK
	/* Garbage of every length up to 64 bytes never crashes. */
	for (i = 0; i < 64; i++) {
		memset(copy, (int)(i * 37), len);
		expect_malformed(copy, i);
	}
	free(copy);
	free(buf);
}

/* A directory's depth (byte 6) round trips; other types refuse one. */
static void test_dir_depth(void **state)
{
	struct casfs_record rec, back;
	unsigned char *buf;
	size_t len;

	(void)state;
	buf = sample_dir(&len);
	assert_int_equal(buf[6], 0); /* format 2 as before: one register */
	buf[6] = 5;
	assert_int_equal(casfs_record_decode(buf, len, &rec), CAS_OK);
	assert_int_equal(rec.depth, 5);
	free(buf);
	buf = encode(&rec, &len);
	assert_int_equal(casfs_record_decode(buf, len, &back), CAS_OK);
	assert_int_equal(back.depth, 5);
	assert_int_equal(back.nent, 2);
	casfs_record_clear(&back);
	casfs_record_clear(&rec);
	free(buf);
	casfs_record_init(&rec, CASFS_REG, 0644, 0, 0, &t0);
	buf = encode(&rec, &len);
	buf[6] = 1;
	expect_malformed(buf, len);
	free(buf);
}

/* Buckets: round trip, and every malformation refused. */
static void test_bucket(void **state)
{
	unsigned char id[CASFS_ID_LEN] = {0xab, 1};
	struct casfs_record rec, back;
	unsigned char *buf, *copy;
	char key[CASFS_BUCKET_KEY_LEN];
	size_t len, i;

	(void)state;
	memset(&rec, 0, sizeof(rec));
	rec.type = CASFS_DIR;
	rec.depth = 3;
	assert_int_equal(casfs_record_dir_add(&rec, "x", 1, CASFS_REG, id), CAS_OK);
	assert_int_equal(casfs_record_dir_add(&rec, "yy", 2, CASFS_DIR, id), CAS_OK);
	assert_int_equal(casfs_bucket_encode(&rec, 1 << 20, &buf, &len), CAS_OK);
	assert_int_equal(len, 8 + casfs_record_entries_size(&rec));
	assert_int_equal(casfs_bucket_encode(&rec, len - 1, &copy, &i), CAS_ETOOBIG);
	assert_int_equal(casfs_bucket_decode(buf, len, &back), CAS_OK);
	assert_int_equal(back.type, CASFS_DIR);
	assert_int_equal(back.nlink, 1);
	assert_int_equal(back.depth, 3);
	assert_int_equal(back.nent, 2);
	assert_string_equal(back.ents[1].name, "yy");
	casfs_record_clear(&back);
	/* Not a record, and a record is not a bucket. */
	assert_int_equal(casfs_record_decode(buf, len, &back), CAS_EINVAL);
	copy = malloc(len + 1);
	for (i = 0; i < len; i++) {
		assert_int_equal(casfs_bucket_decode(buf, i, &back), CAS_EINVAL);
	}
	memcpy(copy, buf, len);
	copy[len] = 0;
	assert_int_equal(casfs_bucket_decode(copy, len + 1, &back), CAS_EINVAL);
	memcpy(copy, buf, len);
	copy[3] = 0; /* depth 0: the inode's own register, never a bucket */
	assert_int_equal(casfs_bucket_decode(copy, len, &back), CAS_EINVAL);
	copy[3] = CASFS_DEPTH_MAX + 1;
	assert_int_equal(casfs_bucket_decode(copy, len, &back), CAS_EINVAL);
	memcpy(copy, buf, len);
	copy[2] = 2; /* version */
	assert_int_equal(casfs_bucket_decode(copy, len, &back), CAS_EINVAL);
	free(copy);
	free(buf);
	casfs_record_clear(&rec);
	casfs_bucket_key(id, 0x1234abcd, key);
	assert_string_equal(key, "b/ab010000000000000000000000000000/1234abcd");
	/* The hash is part of the format: it must never change. */
	assert_true(casfs_name_hash("a", 1) == 0xb4d2960f93be2488ull);
	assert_true(casfs_name_hash("a", 1) != casfs_name_hash("b", 1));
}

static void test_special_files(void **state)
{
	static const uint8_t types[] = {CASFS_FIFO, CASFS_SOCK, CASFS_CHR, CASFS_BLK};
	struct casfs_record rec, back;
	unsigned char *buf;
	size_t len, i;

	(void)state;
	for (i = 0; i < 4; i++) {
		casfs_record_init(&rec, types[i], 0640, 1, 2, &t0);
		rec.nlink = 3;
		if (types[i] == CASFS_CHR || types[i] == CASFS_BLK)
			rec.rdev = 0x0123456789abcdefull;
		buf = encode(&rec, &len);
		assert_int_equal(len, CASFS_HEADER_LEN + (rec.rdev ? CASFS_RDEV_LEN : 0));
		assert_int_equal(casfs_record_decode(buf, len, &back), CAS_OK);
		assert_int_equal(back.type, types[i]);
		assert_int_equal(back.nlink, 3);
		assert_true(back.rdev == rec.rdev);
		casfs_record_clear(&back);
		/* No body but the device number. */
		buf = realloc(buf, len + 1);
		assert_non_null(buf);
		buf[len] = 0;
		expect_malformed(buf, len + 1);
		if (rec.rdev)
			expect_malformed(buf, len - 1);
		free(buf);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_roundtrip), cmocka_unit_test(test_empty_records),
		cmocka_unit_test(test_dir_entries),    cmocka_unit_test(test_symlink),
		cmocka_unit_test(test_write_truncate), cmocka_unit_test(test_encode_limit),
		cmocka_unit_test(test_xattrs),	       cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_special_files),  cmocka_unit_test(test_dir_depth),
		cmocka_unit_test(test_bucket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

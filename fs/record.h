/* record.h - the binary inode record stored in one register (fs/FORMAT.md). */
#ifndef CASFS_RECORD_H
#define CASFS_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cas/cas.h>

#define CASFS_FORMAT	      2	  /* record format version written in every record */
#define CASFS_ID_LEN	      16  /* bytes of an inode id */
#define CASFS_NAME_MAX	      255 /* longest entry or xattr name, in bytes */
#define CASFS_XATTR_VALUE_MAX 65536
#define CASFS_SYMLINK_MAX     4095
#define CASFS_HEADER_LEN      62 /* fixed part of a record, up to the xattr count */
#define CASFS_RDEV_LEN	      8	 /* body of a device record */
#define CASFS_DEPTH_MAX	      32 /* most hash bits a directory bucket covers */

enum casfs_type {
	CASFS_REG = 1,
	CASFS_DIR = 2,
	CASFS_LNK = 3,
	CASFS_FIFO = 4,
	CASFS_SOCK = 5,
	CASFS_CHR = 6,
	CASFS_BLK = 7,
};

/* True when type is one of enum casfs_type. */
bool casfs_type_valid(uint8_t type);

struct casfs_xattr {
	char *name;	      /* NUL-terminated, 1..CASFS_NAME_MAX bytes */
	unsigned char *value; /* may be NULL when len is 0 */
	size_t len;
};

struct casfs_dirent {
	char *name;   /* NUL-terminated, 1..CASFS_NAME_MAX bytes */
	uint8_t type; /* enum casfs_type */
	unsigned char id[CASFS_ID_LEN];
};

/* A decoded record. Every pointer in it is malloc'd and owned by the
 * record; casfs_record_clear frees them all. Xattrs and entries are kept
 * sorted by name (bytewise, shorter first on a common prefix). */
struct casfs_record {
	uint8_t type;
	uint16_t flags; /* none defined: 0 */
	uint32_t mode;	/* permission bits only (07777) */
	uint32_t uid, gid;
	struct timespec atime, mtime, ctime;
	/* Entries that name the inode; 0 once the last is gone. A directory
	 * has 1 while it is named and 0 once removed (it then takes no new
	 * entries). */
	uint32_t nlink;
	/* CASFS_DIR: the directory that names it (the root: its own id). */
	unsigned char parent[CASFS_ID_LEN];
	/* CASFS_CHR, CASFS_BLK: the device number. */
	uint64_t rdev;
	size_t nxattr;
	struct casfs_xattr *xattrs;
	/* CASFS_REG: the content; CASFS_LNK: the target (no NUL). */
	unsigned char *data;
	size_t len;
	/* CASFS_DIR: the entries (of this bucket only, in a split
	 * directory: fs/FORMAT.md "Directories"). */
	size_t nent;
	struct casfs_dirent *ents;
	/* CASFS_DIR: the hash bits the bucket covers (0: the whole
	 * directory is this one register). */
	uint8_t depth;
	/* Not stored: which bucket of its directory this was read as (0:
	 * the inode's own register). */
	uint32_t bucket;
};

/* Fills rec as a new, empty record of type with mode & 07777, owner and
 * all three times set to now, nlink 1, parent and rdev 0. Allocates
 * nothing. */
void casfs_record_init(struct casfs_record *rec, uint8_t type, uint32_t mode, uint32_t uid,
		       uint32_t gid, const struct timespec *now);

/* Frees everything rec holds and zeroes it. rec may be NULL. */
void casfs_record_clear(struct casfs_record *rec);

/* Decodes len bytes of buf into rec (which it overwrites). CAS_EINVAL when
 * the bytes are not a well-formed record of CASFS_FORMAT, CAS_ENOMEM; on
 * error rec is zeroed and owns nothing. */
int casfs_record_decode(const unsigned char *buf, size_t len, struct casfs_record *rec);

/* The register key of id: "i/" and 32 lowercase hex digits, NUL-terminated,
 * into key (at least CASFS_KEY_LEN bytes). */
#define CASFS_KEY_LEN (2 + 2 * CASFS_ID_LEN + 1)
void casfs_record_key(const unsigned char *id, char *key);

/* The format version byte of a record's bytes (for messages about records
 * that do not decode), or -1 when they do not start with the magic. */
int casfs_record_format_of(const unsigned char *buf, size_t len);

/* The number of bytes casfs_record_encode would produce. */
size_t casfs_record_size(const struct casfs_record *rec);

/* Encodes rec into a malloc'd buffer the caller frees: *out, *outlen.
 * CAS_ETOOBIG when the record would exceed max bytes; CAS_ENOMEM. On error
 * *out and *outlen are untouched. */
int casfs_record_encode(const struct casfs_record *rec, size_t max, unsigned char **out,
			size_t *outlen);

/* Directory buckets (fs/FORMAT.md "Directories"). A bucket decodes to a
 * record of type CASFS_DIR with nlink 1, its depth and its entries, and
 * nothing else; encoding one writes only those. Errors as for the
 * record's functions. */
int casfs_bucket_decode(const unsigned char *buf, size_t len, struct casfs_record *rec);
int casfs_bucket_encode(const struct casfs_record *rec, size_t max, unsigned char **out,
			size_t *outlen);

/* The register key of bucket (1..2^32-1) of directory id: "b/", 32 hex
 * digits, "/", 8 hex digits, NUL-terminated, into key. */
#define CASFS_BUCKET_KEY_LEN (2 + 2 * CASFS_ID_LEN + 1 + 8 + 1)
void casfs_bucket_key(const unsigned char *id, uint32_t bucket, char *key);

/* The hash of an entry name that places it in a bucket (its low bits) and
 * orders a listing. Stable: part of the format. */
uint64_t casfs_name_hash(const char *name, size_t len);

/* The bytes the entries take in a record or bucket. */
size_t casfs_record_entries_size(const struct casfs_record *rec);

/* Entries. name is len bytes, not NUL-terminated. */

/* True when name is a valid entry name: 1..CASFS_NAME_MAX bytes, no '/'
 * or NUL, not "." or "..". */
bool casfs_record_name_valid(const char *name, size_t len);

/* The index of the entry called name, or -1. */
long casfs_record_dir_find(const struct casfs_record *rec, const char *name, size_t len);

/* Adds an entry name -> (type, id). CAS_EINVAL when the name is invalid
 * or taken, CAS_ENOMEM; rec is unchanged on error. */
int casfs_record_dir_add(struct casfs_record *rec, const char *name, size_t len, uint8_t type,
			 const unsigned char *id);

/* Removes entry i (0 <= i < nent). */
void casfs_record_dir_remove(struct casfs_record *rec, size_t i);

/* Number of entries of type CASFS_DIR. */
size_t casfs_record_dir_subdirs(const struct casfs_record *rec);

/* Extended attributes. name is NUL-terminated. */

/* The xattr called name, or NULL. */
struct casfs_xattr *casfs_record_xattr_find(const struct casfs_record *rec, const char *name);

/* Sets name to len bytes of value (copied), adding it if needed.
 * CAS_EINVAL for a bad name or a value over CASFS_XATTR_VALUE_MAX,
 * CAS_ENOMEM; rec is unchanged on error. */
int casfs_record_xattr_set(struct casfs_record *rec, const char *name, const void *value,
			   size_t len);

/* Removes name; false when there was no such attribute. */
bool casfs_record_xattr_remove(struct casfs_record *rec, const char *name);

/* Content. */

/* Writes len bytes of buf at off, growing the content (zero-filled) as
 * needed. CAS_ETOOBIG when the content would pass max bytes, CAS_ENOMEM;
 * rec is unchanged on error. */
int casfs_record_write(struct casfs_record *rec, uint64_t off, const void *buf, size_t len,
		       size_t max);

/* Sets the content's length to size (zero-filling growth). CAS_ETOOBIG
 * past max, CAS_ENOMEM; rec is unchanged on error. */
int casfs_record_truncate(struct casfs_record *rec, uint64_t size, size_t max);

/* Replaces the content (or target) with a copy of len bytes of buf.
 * CAS_ETOOBIG past max, CAS_ENOMEM; rec is unchanged on error. */
int casfs_record_set_data(struct casfs_record *rec, const void *buf, size_t len, size_t max);

#endif

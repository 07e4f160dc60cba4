/* record.c - encode, decode and edit the binary inode record (fs/FORMAT.md). */
#include <stdlib.h>
#include <string.h>

#include <cas/bytes.h>

#include "record.h"

static const unsigned char magic[2] = {'c', 'F'};

/* Little-endian writer over a buffer known to be large enough. */
struct wbuf {
	unsigned char *p;
};

static void put8(struct wbuf *w, uint8_t v)
{
	*w->p++ = v;
}

static void put16(struct wbuf *w, uint16_t v)
{
	cas_put_le16(w->p, v);
	w->p += 2;
}

static void put32(struct wbuf *w, uint32_t v)
{
	cas_put_le32(w->p, v);
	w->p += 4;
}

static void put64(struct wbuf *w, uint64_t v)
{
	cas_put_le64(w->p, v);
	w->p += 8;
}

static void putbytes(struct wbuf *w, const void *b, size_t n)
{
	if (n)
		memcpy(w->p, b, n);
	w->p += n;
}

static void puttime(struct wbuf *w, const struct timespec *t)
{
	put64(w, (uint64_t)(int64_t)t->tv_sec);
	put32(w, (uint32_t)t->tv_nsec);
}

/* Bounds-checked little-endian reader. */
struct rbuf {
	const unsigned char *p;
	size_t left;
};

static bool get8(struct rbuf *r, uint8_t *v)
{
	if (r->left < 1)
		return false;
	*v = r->p[0];
	r->p++;
	r->left--;
	return true;
}

static bool get16(struct rbuf *r, uint16_t *v)
{
	if (r->left < 2)
		return false;
	*v = cas_get_le16(r->p);
	r->p += 2;
	r->left -= 2;
	return true;
}

static bool get32(struct rbuf *r, uint32_t *v)
{
	if (r->left < 4)
		return false;
	*v = cas_get_le32(r->p);
	r->p += 4;
	r->left -= 4;
	return true;
}

static bool get64(struct rbuf *r, uint64_t *v)
{
	if (r->left < 8)
		return false;
	*v = cas_get_le64(r->p);
	r->p += 8;
	r->left -= 8;
	return true;
}

static bool gettime(struct rbuf *r, struct timespec *t)
{
	uint64_t sec;
	uint32_t nsec;

	if (!get64(r, &sec) || !get32(r, &nsec) || nsec >= 1000000000u)
		return false;
	t->tv_sec = (time_t)(int64_t)sec;
	t->tv_nsec = nsec;
	return true;
}

/* A malloc'd NUL-terminated copy of n bytes of s, or NULL. */
static char *strndup_len(const void *s, size_t n)
{
	char *c = malloc(n + 1);

	if (!c)
		return NULL;
	memcpy(c, s, n);
	c[n] = '\0';
	return c;
}

/* Bytewise order, shorter first on a common prefix (strcmp for names). */
static int namecmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

bool casfs_type_valid(uint8_t type)
{
	return type >= CASFS_REG && type <= CASFS_BLK;
}

void casfs_record_init(struct casfs_record *rec, uint8_t type, uint32_t mode, uint32_t uid,
		       uint32_t gid, const struct timespec *now)
{
	memset(rec, 0, sizeof(*rec));
	rec->type = type;
	rec->mode = mode & 07777;
	rec->uid = uid;
	rec->gid = gid;
	rec->atime = *now;
	rec->mtime = *now;
	rec->ctime = *now;
	rec->nlink = 1;
}

void casfs_record_clear(struct casfs_record *rec)
{
	size_t i;

	if (!rec)
		return;
	for (i = 0; i < rec->nxattr; i++) {
		free(rec->xattrs[i].name);
		free(rec->xattrs[i].value);
	}
	free(rec->xattrs);
	for (i = 0; i < rec->nent; i++)
		free(rec->ents[i].name);
	free(rec->ents);
	free(rec->data);
	memset(rec, 0, sizeof(*rec));
}

bool casfs_record_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > CASFS_NAME_MAX)
		return false;
	if (memchr(name, '/', len) || memchr(name, '\0', len))
		return false;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	return true;
}

static bool xattr_name_valid(const char *name, size_t len)
{
	return len > 0 && len <= CASFS_NAME_MAX && !memchr(name, '\0', len);
}

static int decode_xattrs(struct rbuf *r, struct casfs_record *rec)
{
	uint16_t n;
	size_t i;

	if (!get16(r, &n))
		return CAS_EINVAL;
	if (n == 0)
		return CAS_OK;
	rec->xattrs = calloc(n, sizeof(*rec->xattrs));
	if (!rec->xattrs)
		return CAS_ENOMEM;
	for (i = 0; i < n; i++) {
		struct casfs_xattr *x = &rec->xattrs[i];
		uint8_t nlen;
		uint32_t vlen;

		if (!get8(r, &nlen) || r->left < nlen ||
		    !xattr_name_valid((const char *)r->p, nlen))
			return CAS_EINVAL;
		x->name = strndup_len(r->p, nlen);
		if (!x->name)
			return CAS_ENOMEM;
		rec->nxattr = i + 1;
		r->p += nlen;
		r->left -= nlen;
		if (i > 0) {
			const char *prev = rec->xattrs[i - 1].name;

			if (namecmp(prev, strlen(prev), x->name, nlen) >= 0)
				return CAS_EINVAL;
		}
		if (!get32(r, &vlen) || vlen > CASFS_XATTR_VALUE_MAX || r->left < vlen)
			return CAS_EINVAL;
		if (vlen) {
			x->value = malloc(vlen);
			if (!x->value)
				return CAS_ENOMEM;
			memcpy(x->value, r->p, vlen);
		}
		x->len = vlen;
		r->p += vlen;
		r->left -= vlen;
	}
	return CAS_OK;
}

static int decode_entries(struct rbuf *r, struct casfs_record *rec)
{
	uint32_t n;
	size_t i;

	if (!get32(r, &n))
		return CAS_EINVAL;
	/* Each entry takes at least 19 bytes: refuse counts the rest cannot
	 * hold before allocating for them. */
	if (n > r->left / (2 + 1 + CASFS_ID_LEN))
		return CAS_EINVAL;
	if (n == 0)
		return r->left ? CAS_EINVAL : CAS_OK;
	rec->ents = calloc(n, sizeof(*rec->ents));
	if (!rec->ents)
		return CAS_ENOMEM;
	for (i = 0; i < n; i++) {
		struct casfs_dirent *e = &rec->ents[i];
		uint8_t type, nlen;

		if (!get8(r, &type) || !casfs_type_valid(type))
			return CAS_EINVAL;
		if (!get8(r, &nlen) || r->left < (size_t)nlen + CASFS_ID_LEN ||
		    !casfs_record_name_valid((const char *)r->p, nlen))
			return CAS_EINVAL;
		e->name = strndup_len(r->p, nlen);
		if (!e->name)
			return CAS_ENOMEM;
		rec->nent = i + 1;
		e->type = type;
		r->p += nlen;
		r->left -= nlen;
		memcpy(e->id, r->p, CASFS_ID_LEN);
		r->p += CASFS_ID_LEN;
		r->left -= CASFS_ID_LEN;
		if (i > 0) {
			const char *prev = rec->ents[i - 1].name;

			if (namecmp(prev, strlen(prev), e->name, nlen) >= 0)
				return CAS_EINVAL;
		}
	}
	return r->left ? CAS_EINVAL : CAS_OK;
}

static int decode_dir(struct rbuf *r, struct casfs_record *rec)
{
	if (r->left < CASFS_ID_LEN)
		return CAS_EINVAL;
	memcpy(rec->parent, r->p, CASFS_ID_LEN);
	r->p += CASFS_ID_LEN;
	r->left -= CASFS_ID_LEN;
	return decode_entries(r, rec);
}

int casfs_record_decode(const unsigned char *buf, size_t len, struct casfs_record *rec)
{
	struct rbuf r = {buf, len};
	uint8_t m0, m1, format, type;
	uint16_t flags, reserved;
	int rc = CAS_EINVAL;

	memset(rec, 0, sizeof(*rec));
	if (!get8(&r, &m0) || !get8(&r, &m1) || m0 != magic[0] || m1 != magic[1])
		goto out_clear;
	if (!get8(&r, &format) || format != CASFS_FORMAT)
		goto out_clear;
	if (!get8(&r, &type) || !casfs_type_valid(type))
		goto out_clear;
	if (!get16(&r, &flags) || flags)
		goto out_clear;
	/* Byte 6: a directory's hash depth (fs/FORMAT.md "Directories"). */
	if (!get16(&r, &reserved) || (reserved >> 8) || (type != CASFS_DIR && reserved) ||
	    reserved > CASFS_DEPTH_MAX)
		goto out_clear;
	rec->depth = (uint8_t)reserved;
	rec->type = type;
	rec->flags = flags;
	if (!get32(&r, &rec->mode) || (rec->mode & ~07777u) || !get32(&r, &rec->uid) ||
	    !get32(&r, &rec->gid) || !gettime(&r, &rec->atime) || !gettime(&r, &rec->mtime) ||
	    !gettime(&r, &rec->ctime) || !get32(&r, &rec->nlink))
		goto out_clear;
	rc = decode_xattrs(&r, rec);
	if (rc)
		goto out_clear;
	if (type == CASFS_DIR) {
		rc = decode_dir(&r, rec);
		if (rc)
			goto out_clear;
		return CAS_OK;
	}
	rc = CAS_EINVAL;
	if (type == CASFS_LNK &&
	    (r.left == 0 || r.left > CASFS_SYMLINK_MAX || memchr(r.p, '\0', r.left)))
		goto out_clear;
	if (type == CASFS_FIFO || type == CASFS_SOCK) {
		if (r.left)
			goto out_clear;
		return CAS_OK;
	}
	if (type == CASFS_CHR || type == CASFS_BLK) {
		if (!get64(&r, &rec->rdev) || r.left)
			goto out_clear;
		return CAS_OK;
	}
	if (r.left) {
		rec->data = malloc(r.left);
		rc = CAS_ENOMEM;
		if (!rec->data)
			goto out_clear;
		memcpy(rec->data, r.p, r.left);
		rec->len = r.left;
	}
	return CAS_OK;

out_clear:
	casfs_record_clear(rec);
	return rc;
}

void casfs_record_key(const unsigned char *id, char *key)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	key[0] = 'i';
	key[1] = '/';
	for (i = 0; i < CASFS_ID_LEN; i++) {
		key[2 + 2 * i] = hex[id[i] >> 4];
		key[3 + 2 * i] = hex[id[i] & 0xf];
	}
	key[2 + 2 * CASFS_ID_LEN] = '\0';
}

int casfs_record_format_of(const unsigned char *buf, size_t len)
{
	if (len < 3 || buf[0] != magic[0] || buf[1] != magic[1])
		return -1;
	return buf[2];
}

size_t casfs_record_size(const struct casfs_record *rec)
{
	size_t n = CASFS_HEADER_LEN, i;

	for (i = 0; i < rec->nxattr; i++)
		n += 1 + strlen(rec->xattrs[i].name) + 4 + rec->xattrs[i].len;
	switch (rec->type) {
	case CASFS_DIR:
		n += CASFS_ID_LEN + 4;
		for (i = 0; i < rec->nent; i++)
			n += 2 + strlen(rec->ents[i].name) + CASFS_ID_LEN;
		break;
	case CASFS_FIFO:
	case CASFS_SOCK:
		break;
	case CASFS_CHR:
	case CASFS_BLK:
		n += CASFS_RDEV_LEN;
		break;
	default:
		n += rec->len;
		break;
	}
	return n;
}

static void put_entries(struct wbuf *w, const struct casfs_record *rec)
{
	size_t i;

	put32(w, (uint32_t)rec->nent);
	for (i = 0; i < rec->nent; i++) {
		size_t nlen = strlen(rec->ents[i].name);

		put8(w, rec->ents[i].type);
		put8(w, (uint8_t)nlen);
		putbytes(w, rec->ents[i].name, nlen);
		putbytes(w, rec->ents[i].id, CASFS_ID_LEN);
	}
}

int casfs_record_encode(const struct casfs_record *rec, size_t max, unsigned char **out,
			size_t *outlen)
{
	size_t n = casfs_record_size(rec), i;
	unsigned char *buf;
	struct wbuf w;

	if (n > max)
		return CAS_ETOOBIG;
	buf = malloc(n);
	if (!buf)
		return CAS_ENOMEM;
	w.p = buf;
	putbytes(&w, magic, 2);
	put8(&w, CASFS_FORMAT);
	put8(&w, rec->type);
	put16(&w, rec->flags);
	put16(&w, rec->type == CASFS_DIR ? rec->depth : 0);
	put32(&w, rec->mode & 07777);
	put32(&w, rec->uid);
	put32(&w, rec->gid);
	puttime(&w, &rec->atime);
	puttime(&w, &rec->mtime);
	puttime(&w, &rec->ctime);
	put32(&w, rec->nlink);
	put16(&w, (uint16_t)rec->nxattr);
	for (i = 0; i < rec->nxattr; i++) {
		size_t nlen = strlen(rec->xattrs[i].name);

		put8(&w, (uint8_t)nlen);
		putbytes(&w, rec->xattrs[i].name, nlen);
		put32(&w, (uint32_t)rec->xattrs[i].len);
		putbytes(&w, rec->xattrs[i].value, rec->xattrs[i].len);
	}
	switch (rec->type) {
	case CASFS_DIR:
		putbytes(&w, rec->parent, CASFS_ID_LEN);
		put_entries(&w, rec);
		break;
	case CASFS_FIFO:
	case CASFS_SOCK:
		break;
	case CASFS_CHR:
	case CASFS_BLK:
		put64(&w, rec->rdev);
		break;
	default:
		putbytes(&w, rec->data, rec->len);
		break;
	}
	*out = buf;
	*outlen = n;
	return CAS_OK;
}

size_t casfs_record_entries_size(const struct casfs_record *rec)
{
	size_t n = 0, i;

	for (i = 0; i < rec->nent; i++)
		n += 2 + strlen(rec->ents[i].name) + CASFS_ID_LEN;
	return n;
}

static const unsigned char bucket_magic[2] = {'c', 'B'};
#define BUCKET_FORMAT 1
#define BUCKET_HEAD   8 /* magic, version, depth, count */

int casfs_bucket_decode(const unsigned char *buf, size_t len, struct casfs_record *rec)
{
	struct rbuf r = {buf, len};
	uint8_t m0, m1, format, depth;
	int rc = CAS_EINVAL;

	memset(rec, 0, sizeof(*rec));
	if (!get8(&r, &m0) || !get8(&r, &m1) || m0 != bucket_magic[0] || m1 != bucket_magic[1])
		goto out_clear;
	if (!get8(&r, &format) || format != BUCKET_FORMAT)
		goto out_clear;
	if (!get8(&r, &depth) || depth == 0 || depth > CASFS_DEPTH_MAX)
		goto out_clear;
	rec->type = CASFS_DIR;
	rec->nlink = 1;
	rec->depth = depth;
	rc = decode_entries(&r, rec);
	if (rc)
		goto out_clear;
	return CAS_OK;

out_clear:
	casfs_record_clear(rec);
	return rc;
}

int casfs_bucket_encode(const struct casfs_record *rec, size_t max, unsigned char **out,
			size_t *outlen)
{
	size_t n = BUCKET_HEAD + casfs_record_entries_size(rec);
	unsigned char *buf;
	struct wbuf w;

	if (n > max)
		return CAS_ETOOBIG;
	buf = malloc(n);
	if (!buf)
		return CAS_ENOMEM;
	w.p = buf;
	putbytes(&w, bucket_magic, 2);
	put8(&w, BUCKET_FORMAT);
	put8(&w, rec->depth);
	put_entries(&w, rec);
	*out = buf;
	*outlen = n;
	return CAS_OK;
}

void casfs_bucket_key(const unsigned char *id, uint32_t bucket, char *key)
{
	static const char hexd[] = "0123456789abcdef";
	size_t i;

	key[0] = 'b';
	key[1] = '/';
	for (i = 0; i < CASFS_ID_LEN; i++) {
		key[2 + 2 * i] = hexd[id[i] >> 4];
		key[3 + 2 * i] = hexd[id[i] & 15];
	}
	key[2 + 2 * CASFS_ID_LEN] = '/';
	for (i = 0; i < 8; i++)
		key[3 + 2 * CASFS_ID_LEN + i] = hexd[(bucket >> (28 - 4 * i)) & 15];
	key[3 + 2 * CASFS_ID_LEN + 8] = '\0';
}

uint64_t casfs_name_hash(const char *name, size_t len)
{
	/* FNV-1a mixes its low bits poorly; buckets take the low bits, so
	 * finish with the splitmix64 mixer. */
	uint64_t z = cas_fnv1a(CAS_FNV1A_INIT, name, len);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Binary search: the index of name, or -(insertion point) - 1. */
static long dir_search(const struct casfs_record *rec, const char *name, size_t len)
{
	size_t lo = 0, hi = rec->nent;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *m = rec->ents[mid].name;
		int c = namecmp(m, strlen(m), name, len);

		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

long casfs_record_dir_find(const struct casfs_record *rec, const char *name, size_t len)
{
	long i = dir_search(rec, name, len);

	return i < 0 ? -1 : i;
}

int casfs_record_dir_add(struct casfs_record *rec, const char *name, size_t len, uint8_t type,
			 const unsigned char *id)
{
	struct casfs_dirent *ents;
	long at;
	char *copy;

	if (!casfs_record_name_valid(name, len) || !casfs_type_valid(type))
		return CAS_EINVAL;
	at = dir_search(rec, name, len);
	if (at >= 0)
		return CAS_EINVAL;
	at = -at - 1;
	copy = strndup_len(name, len);
	if (!copy)
		return CAS_ENOMEM;
	ents = realloc(rec->ents, (rec->nent + 1) * sizeof(*ents));
	if (!ents) {
		free(copy);
		return CAS_ENOMEM;
	}
	rec->ents = ents;
	memmove(&ents[at + 1], &ents[at], (rec->nent - (size_t)at) * sizeof(*ents));
	ents[at].name = copy;
	ents[at].type = type;
	memcpy(ents[at].id, id, CASFS_ID_LEN);
	rec->nent++;
	return CAS_OK;
}

void casfs_record_dir_remove(struct casfs_record *rec, size_t i)
{
	free(rec->ents[i].name);
	memmove(&rec->ents[i], &rec->ents[i + 1], (rec->nent - i - 1) * sizeof(*rec->ents));
	rec->nent--;
}

size_t casfs_record_dir_subdirs(const struct casfs_record *rec)
{
	size_t i, n = 0;

	for (i = 0; i < rec->nent; i++)
		n += rec->ents[i].type == CASFS_DIR;
	return n;
}

static long xattr_search(const struct casfs_record *rec, const char *name)
{
	size_t lo = 0, hi = rec->nxattr, len = strlen(name);

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const char *m = rec->xattrs[mid].name;
		int c = namecmp(m, strlen(m), name, len);

		if (c == 0)
			return (long)mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -(long)lo - 1;
}

struct casfs_xattr *casfs_record_xattr_find(const struct casfs_record *rec, const char *name)
{
	long i = xattr_search(rec, name);

	return i < 0 ? NULL : &rec->xattrs[i];
}

int casfs_record_xattr_set(struct casfs_record *rec, const char *name, const void *value,
			   size_t len)
{
	struct casfs_xattr *xs;
	unsigned char *copy = NULL;
	char *ncopy;
	long at;

	if (!xattr_name_valid(name, strlen(name)) || len > CASFS_XATTR_VALUE_MAX)
		return CAS_EINVAL;
	if (len) {
		copy = malloc(len);
		if (!copy)
			return CAS_ENOMEM;
		memcpy(copy, value, len);
	}
	at = xattr_search(rec, name);
	if (at >= 0) {
		free(rec->xattrs[at].value);
		rec->xattrs[at].value = copy;
		rec->xattrs[at].len = len;
		return CAS_OK;
	}
	if (rec->nxattr >= UINT16_MAX) {
		free(copy);
		return CAS_EINVAL;
	}
	ncopy = strndup_len(name, strlen(name));
	if (!ncopy)
		goto out_free_copy;
	xs = realloc(rec->xattrs, (rec->nxattr + 1) * sizeof(*xs));
	if (!xs) {
		free(ncopy);
		goto out_free_copy;
	}
	rec->xattrs = xs;
	at = -at - 1;
	memmove(&xs[at + 1], &xs[at], (rec->nxattr - (size_t)at) * sizeof(*xs));
	xs[at].name = ncopy;
	xs[at].value = copy;
	xs[at].len = len;
	rec->nxattr++;
	return CAS_OK;

out_free_copy:
	free(copy);
	return CAS_ENOMEM;
}

bool casfs_record_xattr_remove(struct casfs_record *rec, const char *name)
{
	long i = xattr_search(rec, name);

	if (i < 0)
		return false;
	free(rec->xattrs[i].name);
	free(rec->xattrs[i].value);
	memmove(&rec->xattrs[i], &rec->xattrs[i + 1],
		(rec->nxattr - (size_t)i - 1) * sizeof(*rec->xattrs));
	rec->nxattr--;
	return true;
}

/* Makes room for size bytes of content, zero-filling growth. */
static int resize(struct casfs_record *rec, uint64_t size, size_t max)
{
	unsigned char *d;

	if (size > max)
		return CAS_ETOOBIG;
	if (size <= rec->len) {
		rec->len = (size_t)size;
		return CAS_OK;
	}
	d = realloc(rec->data, (size_t)size);
	if (!d)
		return CAS_ENOMEM;
	memset(d + rec->len, 0, (size_t)size - rec->len);
	rec->data = d;
	rec->len = (size_t)size;
	return CAS_OK;
}

int casfs_record_write(struct casfs_record *rec, uint64_t off, const void *buf, size_t len,
		       size_t max)
{
	int rc;

	if (off > max || len > max - off)
		return CAS_ETOOBIG;
	if (off + len > rec->len) {
		rc = resize(rec, off + len, max);
		if (rc)
			return rc;
	}
	if (len)
		memcpy(rec->data + off, buf, len);
	return CAS_OK;
}

int casfs_record_truncate(struct casfs_record *rec, uint64_t size, size_t max)
{
	return resize(rec, size, max);
}

int casfs_record_set_data(struct casfs_record *rec, const void *buf, size_t len, size_t max)
{
	unsigned char *d = NULL;

	if (len > max)
		return CAS_ETOOBIG;
	if (len) {
		d = malloc(len);
		if (!d)
			return CAS_ENOMEM;
		memcpy(d, buf, len);
	}
	free(rec->data);
	rec->data = d;
	rec->len = len;
	return CAS_OK;
}

/* wal.c - the store's write-ahead log: format, append, replay (wal.h; the
 * layout is in store.h). */
#define _GNU_SOURCE /* O_DIRECT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cas/bytes.h>

#include "errmsg.h"
#include "node.h"
#include "wal.h"

#define WAL_NAME       "wal"
#define WAL_MAGIC      0x57534143u /* "CASW" little-endian */
#define WAL_HEADER     28	   /* bytes before an entry's key length */
#define WAL_FILL_CHUNK ((size_t)1 << 20)

void cas_wal_init(struct cas_wal *w, size_t size, bool buffered)
{
	memset(w, 0, sizeof(*w));
	w->fd = -1;
	w->dfd = -1;
	w->size = size & ~(size_t)(CAS_WAL_BLOCK - 1);
	w->buffered = buffered;
}

/* Makes room for need bytes in the batch's buffer. */
static bool reserve(struct cas_wal *w, size_t need)
{
	size_t n = w->buf_cap ? w->buf_cap : 16;
	unsigned char *q;

	if (need <= w->buf_cap)
		return true;
	while (n < need)
		n *= 2;
	q = realloc(w->buf, n);
	if (!q)
		return false;
	w->buf = q;
	w->buf_cap = n;
	return true;
}

int cas_wal_stage(struct cas_wal *w, const char *key, size_t key_len, const unsigned char *rec,
		  size_t rec_len)
{
	size_t len = 2 + key_len + rec_len;
	unsigned char *p;

	if (rec_len > UINT32_MAX - 2 - key_len)
		return CAS_ETOOBIG;
	if (!reserve(w, w->buf_len + WAL_HEADER + len))
		return CAS_ENOMEM;
	p = w->buf + w->buf_len;
	memset(p, 0, WAL_HEADER);
	cas_put_le32(p, WAL_MAGIC);
	cas_put_le32(p + 4, (uint32_t)len);
	cas_put_le16(p + WAL_HEADER, (uint16_t)key_len);
	memcpy(p + WAL_HEADER + 2, key, key_len);
	memcpy(p + WAL_HEADER + 2 + key_len, rec, rec_len);
	w->buf_len += WAL_HEADER + len;
	return CAS_OK;
}

int cas_wal_stage_drop(struct cas_wal *w, const char *key, size_t key_len, uint64_t floor)
{
	unsigned char rec[CAS_STORE_DROP_LEN] = {CAS_STORE_DROP_FORMAT};

	cas_put_le64(rec + 8, floor);
	return cas_wal_stage(w, key, key_len, rec, sizeof(rec));
}

/* Whether rec[0..rec_len) is a drop (layout in store.h); its floor into
 * *floor then. */
static bool read_drop(const unsigned char *rec, size_t rec_len, uint64_t *floor)
{
	size_t i;

	if (rec_len != CAS_STORE_DROP_LEN || rec[0] != CAS_STORE_DROP_FORMAT)
		return false;
	for (i = 1; i < 8; i++)
		if (rec[i])
			return false;
	*floor = cas_get_le64(rec + 8);
	return true;
}

static void seal_entries(struct cas_wal *w)
{
	unsigned char *p;
	size_t off, len;
	uint32_t crc;

	for (off = 0; off < w->buf_len; off += WAL_HEADER + len) {
		p = w->buf + off;
		len = cas_get_le32(p + 4);
		cas_put_le64(p + 8, w->epoch);
		cas_put_le64(p + 16, ++w->seq);
		crc = cas_crc32c(0, p, 24);
		crc = cas_crc32c(crc, p + WAL_HEADER, len);
		cas_put_le32(p + 24, crc);
	}
}

static int pwrite_all(int fd, const unsigned char *p, size_t n, off_t off)
{
	ssize_t w;

	while (n) {
		w = pwrite(fd, p, n, off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

static size_t block_up(size_t n)
{
	return (n + CAS_WAL_BLOCK - 1) & ~(size_t)(CAS_WAL_BLOCK - 1);
}

/* The test seam (cas_store_fail_log_syncs): true, with errno EIO, when
 * this sync is one to fail. The entries were written (for a buffered log,
 * into the page cache only), as an fdatasync that fails may leave them. */
static bool injected_failure(struct cas_wal *w)
{
	unsigned n = __atomic_load_n(&w->fail_syncs, __ATOMIC_RELAXED);

	while (n && !__atomic_compare_exchange_n(&w->fail_syncs, &n, n - 1, false, __ATOMIC_RELAXED,
						 __ATOMIC_RELAXED))
		;
	if (!n)
		return false;
	errno = EIO;
	return true;
}

/* Writes the sealed entries at w->off and returns once they are
 * durable: whole blocks with O_DIRECT | O_DSYNC (the partial block they
 * start in rewritten from w->tail), which spares the page cache and lets
 * the disk write through instead of flushing its cache; or, where the
 * file system takes no direct writes, pwrite and fdatasync. Returns 0, or
 * -1 with errno. */
static int append_log(struct cas_wal *w)
{
	size_t start = w->off & ~(size_t)(CAS_WAL_BLOCK - 1), head = w->off - start;
	size_t len = block_up(head + w->buf_len), end = w->off + w->buf_len;
	void *p;

	if (w->dfd < 0)
		goto buffered;
	if (len > w->dbuf_cap) {
		if (posix_memalign(&p, CAS_WAL_BLOCK, len)) {
			w->failed_call = "posix_memalign";
			errno = ENOMEM;
			return -1;
		}
		free(w->dbuf);
		w->dbuf = p;
		w->dbuf_cap = len;
	}
	memcpy(w->dbuf, w->tail, head);
	memcpy(w->dbuf + head, w->buf, w->buf_len);
	memset(w->dbuf + head + w->buf_len, 0, len - head - w->buf_len);
	w->failed_call = "O_DSYNC write";
	if (pwrite_all(w->dfd, w->dbuf, len, (off_t)start)) {
		if (errno != EINVAL)
			return -1;
		/* Direct writes refused after all: buffered from now on. */
		close(w->dfd);
		__atomic_store_n(&w->dfd, -1, __ATOMIC_RELAXED);
		goto buffered;
	}
	if (injected_failure(w))
		return -1;
	memcpy(w->tail, w->dbuf + (end & ~(size_t)(CAS_WAL_BLOCK - 1)) - start,
	       end & (CAS_WAL_BLOCK - 1));
	return 0;

buffered:
	w->failed_call = "pwrite";
	if (pwrite_all(w->fd, w->buf, w->buf_len, (off_t)w->off))
		return -1;
	w->failed_call = "fdatasync";
	if (injected_failure(w) || fdatasync(w->fd))
		return -1;
	return 0;
}

bool cas_wal_batch_too_large(const struct cas_wal *w)
{
	return w->buf_len > w->size / 4;
}

bool cas_wal_batch_fits(const struct cas_wal *w)
{
	return block_up(w->off + w->buf_len) <= w->size;
}

int cas_wal_commit(struct cas_wal *w)
{
	/* A failed write leaves the offset where it was; the next batch
	 * overwrites what this one may have left, with higher seqs, so that
	 * a replay never takes this batch's entries after the next one's. */
	seal_entries(w);
	if (append_log(w))
		return -1;
	w->off += w->buf_len;
	return 0;
}

void cas_wal_drop_batch(struct cas_wal *w)
{
	w->buf_len = 0;
}

void cas_wal_restart(struct cas_wal *w)
{
	w->epoch++;
	w->seq = 0;
	w->off = 0;
}

bool cas_wal_direct(const struct cas_wal *w)
{
	/* Read where the batch writer may change it (direct writes refused
	 * after all). */
	return __atomic_load_n(&w->dfd, __ATOMIC_RELAXED) >= 0;
}

/* Takes the log's entries of the current epoch into mem, in order. An
 * entry that checks but does not decode is corruption, not a torn write:
 * the store does not open. */
static int replay(struct cas_wal *w, struct memtable *mem, const unsigned char *map, size_t size,
		  const char *path, uint64_t *replayed, char *errmsg, size_t errmsg_len)
{
	size_t off = 0, len, key_len, rec_len;
	const unsigned char *p, *rec;
	struct mem_entry *e;
	uint64_t last = 0, seq, n = 0, floor;
	uint32_t crc, hash;
	const char *key;
	bool drop;

	while (size - off >= WAL_HEADER + 2) {
		p = map + off;
		len = cas_get_le32(p + 4);
		seq = cas_get_le64(p + 16);
		if (cas_get_le32(p) != WAL_MAGIC || cas_get_le64(p + 8) != w->epoch ||
		    seq <= last || len < 2 || len > size - off - WAL_HEADER)
			break;
		crc = cas_crc32c(0, p, 24);
		if (cas_crc32c(crc, p + WAL_HEADER, len) != cas_get_le32(p + 24))
			break;
		key_len = cas_get_le16(p + WAL_HEADER);
		key = (const char *)p + WAL_HEADER + 2;
		rec = p + WAL_HEADER + 2 + key_len;
		rec_len = len - 2 - key_len;
		drop = key_len <= len - 2 && read_drop(rec, rec_len, &floor);
		if (key_len > len - 2 || !cas_key_valid(key, key_len) ||
		    (!drop && !cas_node_record_valid(rec, rec_len))) {
			cas_errmsg_set(errmsg, errmsg_len, "store: %s: bad entry at offset %zu",
				       path, off);
			return CAS_EIO;
		}
		hash = cas_memtable_hash(key, key_len);
		e = cas_memtable_find(mem, key, key_len, hash);
		if (!e)
			e = cas_memtable_add(mem, key, key_len, hash, false);
		if (!e)
			goto out_nomem;
		free(e->rec);
		if (drop) {
			/* The key's row goes, and the floor rises, at once. */
			rec_len = 0;
			if (floor > mem->floor)
				mem->floor = floor;
		}
		e->rec = malloc(rec_len ? rec_len : 1);
		if (!e->rec)
			goto out_nomem;
		memcpy(e->rec, rec, rec_len);
		e->rec_len = rec_len;
		last = seq;
		off += WAL_HEADER + len;
		n++;
	}
	*replayed = n;
	w->off = off;
	w->seq = last;
	return CAS_OK;

out_nomem:
	cas_errmsg_set(errmsg, errmsg_len, "store: out of memory replaying %s", path);
	return CAS_ENOMEM;
}

/* Writes zeroes over bytes [from, to) of fd and fdatasyncs it. */
static int zero_range(int fd, size_t from, size_t to)
{
	unsigned char *z = calloc(1, WAL_FILL_CHUNK);
	size_t off, n;
	int rc = -1;

	if (!z)
		return -1;
	for (off = from; off < to; off += n) {
		n = to - off < WAL_FILL_CHUNK ? to - off : WAL_FILL_CHUNK;
		if (pwrite_all(fd, z, n, (off_t)off))
			goto out_free;
	}
	rc = fdatasync(fd);
out_free:
	free(z);
	return rc;
}

/* Writes the log file in full to size bytes of zeroes, so that appends
 * overwrite allocated blocks. */
static int fill_wal(int fd, size_t size)
{
	if (ftruncate(fd, (off_t)size))
		return -1;
	return zero_range(fd, 0, size);
}

/* The log's file name in dir, into path (path_len bytes). */
static int wal_path(const char *dir, char *path, size_t path_len, char *errmsg, size_t errmsg_len)
{
	if ((size_t)snprintf(path, path_len, "%s/" WAL_NAME, dir) >= path_len) {
		cas_errmsg_set(errmsg, errmsg_len, "store: folder name too long: %s", dir);
		return CAS_EINVAL;
	}
	return CAS_OK;
}

int cas_wal_open(struct cas_wal *w, const char *dir, struct memtable *mem, uint64_t *replayed,
		 char *errmsg, size_t errmsg_len)
{
	char path[4096];
	struct stat sb;
	void *map;
	int fd, err;

	*replayed = 0;
	err = wal_path(dir, path, sizeof(path), errmsg, errmsg_len);
	if (err)
		return err;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &sb)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: %s: %s", path, strerror(errno));
		err = CAS_EIO;
		goto out_close;
	}
	if (sb.st_size > 0) {
		map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			cas_errmsg_set(errmsg, errmsg_len, "store: mmap %s: %s", path,
				       strerror(errno));
			err = CAS_EIO;
			goto out_close;
		}
		err = replay(w, mem, map, (size_t)sb.st_size, path, replayed, errmsg, errmsg_len);
		munmap(map, (size_t)sb.st_size);
		if (err)
			goto out_close;
	}
	w->fd = fd;
	w->file_size = (size_t)sb.st_size;
	return CAS_OK;

out_close:
	if (fd >= 0)
		close(fd);
	return err;
}

int cas_wal_keep(struct cas_wal *w, const char *dir, char *errmsg, size_t errmsg_len)
{
	size_t head = w->off & (CAS_WAL_BLOCK - 1);
	char path[4096];
	int err;

	err = wal_path(dir, path, sizeof(path), errmsg, errmsg_len);
	if (err)
		return err;
	if (!w->file_size)
		return CAS_OK; /* nothing to keep: cas_wal_ready writes it */
	if (w->file_size % CAS_WAL_BLOCK || w->file_size < CAS_STORE_MIN_WAL_SIZE) {
		cas_errmsg_set(errmsg, errmsg_len, "store: %s: cannot keep a log of %zu bytes",
			       path, w->file_size);
		return CAS_EIO;
	}
	/* No entry of this epoch is left past the replayed ones: the seqs
	 * handed out from here on are above every one in the file. */
	if (zero_range(w->fd, w->off, w->file_size) ||
	    (head && pread(w->fd, w->tail, head, (off_t)(w->off - head)) != (ssize_t)head)) {
		cas_errmsg_set(errmsg, errmsg_len, "store: cannot write %s: %s", path,
			       strerror(errno));
		return CAS_EIO;
	}
	w->size = w->file_size;
	return CAS_OK;
}

int cas_wal_ready(struct cas_wal *w, const char *dir, char *errmsg, size_t errmsg_len)
{
	char path[4096];
	int err;

	err = wal_path(dir, path, sizeof(path), errmsg, errmsg_len);
	if (err)
		return err;
	if (w->file_size != w->size) {
		if (fill_wal(w->fd, w->size)) {
			cas_errmsg_set(errmsg, errmsg_len, "store: cannot write %s: %s", path,
				       strerror(errno));
			return CAS_EIO;
		}
		/* Old entries are gone: none of them was replayed, or a
		 * checkpoint took them. */
		w->off = 0;
	}
	/* Where the file system takes no direct writes, or when asked, the
	 * log is written through the page cache and fdatasynced. */
	if (!w->buffered)
		w->dfd = open(path, O_WRONLY | O_DIRECT | O_DSYNC | O_CLOEXEC);
	return CAS_OK;
}

void cas_wal_close(struct cas_wal *w)
{
	if (w->fd >= 0)
		close(w->fd);
	if (w->dfd >= 0)
		close(w->dfd);
	w->fd = -1;
	w->dfd = -1;
	free(w->buf);
	free(w->dbuf);
	w->buf = w->dbuf = NULL;
	w->buf_len = w->buf_cap = w->dbuf_cap = 0;
}

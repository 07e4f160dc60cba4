/* bytes.h - byte order, checksums and hashes: the one place casfs writes
 * them. Every wire and disk format of casfs is little-endian. */
#ifndef CAS_BYTES_H
#define CAS_BYTES_H

#include <stddef.h>
#include <stdint.h>

#include <cas/cas.h>

static inline void cas_put_le16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static inline void cas_put_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static inline void cas_put_le64(unsigned char *p, uint64_t v)
{
	cas_put_le32(p, (uint32_t)v);
	cas_put_le32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t cas_get_le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t cas_get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t cas_get_le64(const unsigned char *p)
{
	return (uint64_t)cas_get_le32(p) | (uint64_t)cas_get_le32(p + 4) << 32;
}

#define CAS_FNV1A_INIT 1469598103934665603ull

/* Continues a 64-bit FNV-1a hash h (start with CAS_FNV1A_INIT) over n
 * bytes at p. For hash tables of short keys and ids, not for security. */
static inline uint64_t cas_fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n--)
		h = (h ^ *b++) * 1099511628211ull;
	return h;
}

/* Continues a CRC-32C (Castagnoli) checksum crc (start with 0) over n
 * bytes at p. */
CAS_API uint32_t cas_crc32c(uint32_t crc, const void *p, size_t n);

#endif

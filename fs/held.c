/* held.c - a mount's held register (gc.h; fs/FORMAT.md, "Deletion"):
 * the ids of the open files it keeps after their last name went. */
#include <stdlib.h>
#include <string.h>

#include <cas/bytes.h>

#include "gc.h"
#include "lockreg.h"

#define HELD_HEAD 8 /* magic, format, reserved, count (32) */

static const unsigned char held_magic[2] = {'c', 'H'};

void casfs_held_key(const unsigned char *sid, char *key)
{
	casfs_id_key('h', sid, key);
}

int casfs_held_encode(const unsigned char *ids, size_t n, unsigned char **buf, size_t *len)
{
	unsigned char *p;

	if (n > CASFS_HELD_MAX)
		return CAS_EINVAL;
	*len = HELD_HEAD + n * CASFS_ID_LEN;
	*buf = p = malloc(*len);
	if (!p)
		return CAS_ENOMEM;
	memcpy(p, held_magic, 2);
	p[2] = 1;
	p[3] = 0;
	cas_put_le32(p + 4, (uint32_t)n);
	if (n)
		memcpy(p + HELD_HEAD, ids, n * CASFS_ID_LEN);
	return CAS_OK;
}

int casfs_held_decode(const unsigned char *buf, size_t len, const unsigned char **ids, size_t *n)
{
	uint32_t count;

	if (len < HELD_HEAD || memcmp(buf, held_magic, 2) || buf[2] != 1 || buf[3] != 0)
		return CAS_EINVAL;
	count = cas_get_le32(buf + 4);
	if (count > CASFS_HELD_MAX || len != HELD_HEAD + (size_t)count * CASFS_ID_LEN)
		return CAS_EINVAL;
	*ids = buf + HELD_HEAD;
	*n = count;
	return CAS_OK;
}

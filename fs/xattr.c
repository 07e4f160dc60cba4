/* xattr.c - what an extended attribute name means to casfs. */
#include <stdbool.h>
#include <string.h>

#include "xattr.h"

static bool parse_version(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0' || (s[0] == '0' && s[1] != '\0'))
		return false;
	for (; *s; s++) {
		unsigned d;

		if (*s < '0' || *s > '9')
			return false;
		d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

enum casfs_xattr_kind casfs_xattr_parse(const char *name, uint64_t *version)
{
	const char *rest;
	uint64_t v;

	if (strncmp(name, "user.", 5) != 0)
		return CASFS_XA_OTHER;
	if (strncmp(name, CASFS_XATTR_PREFIX, strlen(CASFS_XATTR_PREFIX)) != 0)
		return CASFS_XA_USER;
	rest = name + strlen(CASFS_XATTR_PREFIX);
	if (strcmp(rest, "version") == 0)
		return CASFS_XA_VERSION;
	if (strcmp(rest, "key") == 0)
		return CASFS_XA_KEY;
	if (strncmp(rest, "cas.", 4) == 0 && parse_version(rest + 4, &v)) {
		if (version)
			*version = v;
		return CASFS_XA_CAS;
	}
	return CASFS_XA_RESERVED;
}

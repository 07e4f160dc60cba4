/* fuzz_xattr.c - libFuzzer target for what an xattr name means to casfs
 * (fs/xattr.h): every name gets the kind its prefix says, and a
 * user.casfs.cas.VERSION name is exactly the canonical decimal of the
 * version it yields. */
#include <inttypes.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "xattr.h"

#define CAS_NAME CASFS_XATTR_PREFIX "cas."

static bool starts_with(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

/* The kind of name from its spelling alone, as xattr.h describes it;
 * a user.casfs.cas. name is left to the caller. */
static enum casfs_xattr_kind expected_kind(const char *name)
{
	if (!starts_with(name, "user."))
		return CASFS_XA_OTHER;
	if (!starts_with(name, CASFS_XATTR_PREFIX))
		return CASFS_XA_USER;
	if (!strcmp(name, CASFS_XATTR_PREFIX "version"))
		return CASFS_XA_VERSION;
	if (!strcmp(name, CASFS_XATTR_PREFIX "key"))
		return CASFS_XA_KEY;
	return CASFS_XA_RESERVED;
}

static void check_name(const char *name)
{
	enum casfs_xattr_kind kind, want = expected_kind(name);
	uint64_t version = 0x5a5a5a5a5a5a5a5aull, v2;
	char canon[sizeof(CAS_NAME) + 20];

	kind = casfs_xattr_parse(name, &version);
	CHECK(casfs_xattr_parse(name, NULL) == kind);
	if (kind != CASFS_XA_CAS) {
		CHECK(kind == want);
		return;
	}
	/* One spelling per version: no sign, no leading zero, no overflow. */
	CHECK(want == CASFS_XA_RESERVED && starts_with(name, CAS_NAME));
	snprintf(canon, sizeof(canon), CAS_NAME "%" PRIu64, version);
	CHECK(!strcmp(canon, name));
	CHECK(casfs_xattr_parse(canon, &v2) == CASFS_XA_CAS && v2 == version);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char canon[sizeof(CAS_NAME) + 20];
	uint64_t v = 0, back;
	char *name;
	size_t i;

	/* The bytes as a name (cut at a NUL, as the kernel would). */
	name = malloc(size + 1);
	CHECK(name);
	memcpy(name, data, size);
	name[size] = '\0';
	check_name(name);
	free(name);

	/* The first 8 bytes as a version: its canonical name parses back. */
	for (i = 0; i < 8 && i < size; i++)
		v = v << 8 | data[i];
	snprintf(canon, sizeof(canon), CAS_NAME "%" PRIu64, v);
	CHECK(casfs_xattr_parse(canon, &back) == CASFS_XA_CAS && back == v);
	return 0;
}

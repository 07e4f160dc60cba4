/* xattr.h - what an extended attribute name means to casfs. */
#ifndef CASFS_XATTR_H
#define CASFS_XATTR_H

#include <stdint.h>

#define CASFS_XATTR_PREFIX "user.casfs."

enum casfs_xattr_kind {
	CASFS_XA_USER,	   /* user.* outside user.casfs.: stored in the inode */
	CASFS_XA_VERSION,  /* user.casfs.version: the inode register's version */
	CASFS_XA_KEY,	   /* user.casfs.key: the inode register's key */
	CASFS_XA_CAS,	   /* user.casfs.cas.VERSION: conditional write */
	CASFS_XA_RESERVED, /* any other user.casfs.* name, or a bad cas.N */
	CASFS_XA_OTHER,	   /* security.*, trusted.*, system.*: not stored */
};

/* Classifies name (NUL-terminated). For CASFS_XA_CAS, *version (may be
 * NULL) receives VERSION, a decimal without sign or leading zeros that
 * fits 64 bits; a malformed one makes the name CASFS_XA_RESERVED. */
enum casfs_xattr_kind casfs_xattr_parse(const char *name, uint64_t *version);

#endif

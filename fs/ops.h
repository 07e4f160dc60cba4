/* ops.h - the casfs filesystem: FUSE low-level operations over registers. */
#ifndef CASFS_OPS_H
#define CASFS_OPS_H

#include <stddef.h>

#include <fuse_lowlevel.h>

#include <cas/client.h>

#include "options.h"

/* One mounted filesystem: the client, the node id table and the options.
 * Opaque; it is the userdata of the FUSE session. */
struct casfs_fs;

/* The operations, to pass to fuse_session_new with a casfs_fs. */
extern const struct fuse_lowlevel_ops casfs_ops;

/* A filesystem on client c with the options o (copied; o->nodes is not
 * kept). c stays owned by the caller and must outlive the filesystem.
 * CAS_OK and *out, or CAS_ENOMEM. */
int casfs_fs_new(struct cas_client *c, const struct casfs_options *o, struct casfs_fs **out);

void casfs_fs_free(struct casfs_fs *fs);

/* Reads the root directory's register, creating an empty root (mode 0755,
 * owned by uid:gid) when the cluster has none. CAS_OK when the root is a
 * casfs directory; CAS_EUNAVAILABLE when no majority answered within
 * timeout_ms; CAS_EPROTO when the root register holds something else.
 * errmsg (when not NULL) receives a one-line reason on error. */
int casfs_fs_check_root(struct cas_client *c, unsigned timeout_ms, size_t max_size, unsigned uid,
			unsigned gid, char *errmsg, size_t errmsg_len);

#endif

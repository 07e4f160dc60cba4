/* rename.c - the rename request: within and across directories,
 * RENAME_NOREPLACE and RENAME_EXCHANGE (ns.h; fs/FORMAT.md, "How
 * operations change registers"). */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "fs.h"
#include "session.h"

void casfs_fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		     const char *newname, unsigned int flags)
{
	unsigned char pid[CASFS_ID_LEN], npid[CASFS_ID_LEN];
	struct casfs_regs regs;
	struct casfs_ns ns;
	struct op op;
	int rc;

	casfs_op_start(&op, req);
	casfs_ns_begin(&op, &regs, &ns);
	ns.held = casfs_msession_keep;
	ns.held_arg = &op;
	rc = strlen(name) > CASFS_NAME_MAX ? -ENAMETOOLONG : casfs_check_name(newname);
	if (!rc)
		rc = casfs_node_id(&op, parent, pid);
	if (!rc)
		rc = casfs_node_id(&op, newparent, npid);
	if (!rc)
		rc = casfs_ns_end(&ns, casfs_ns_rename(&ns, pid, name, npid, newname, flags));
	fuse_reply_err(req, -rc);
}

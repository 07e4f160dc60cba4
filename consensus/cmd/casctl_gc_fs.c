/* casctl_gc_fs.c - the filesystem's source of garbage for casctl gc
 * (casctl.h, struct casctl_gc_source): casfs's orphaned inodes, resolved
 * transaction records and the held registers of mounts that died, found
 * by fs/gc.c in two passes a grace apart (fs/FORMAT.md, "Deletion"). */
#include <stdbool.h>
#include <stddef.h>

#include "casctl.h"
#include "gc.h"

static struct casfs_gc *fs_gc;
static unsigned fs_grace_ms;
static bool fs_dry_run;

static void fs_begin(void *arg, unsigned grace_ms, bool dry_run)
{
	(void)arg;
	fs_grace_ms = grace_ms;
	fs_dry_run = dry_run;
}

static void fs_end(void *arg)
{
	(void)arg;
	casfs_gc_free(fs_gc);
	fs_gc = NULL;
}

/* Deletes the orphans itself, each at the version both passes saw, and
 * lists them for gc to report (and purge in this run). */
static int fs_list(void *arg, struct cas_client *c, unsigned timeout_ms, char ***keys, size_t *n,
		   char *errmsg, size_t errmsg_len)
{
	(void)arg;
	*keys = NULL;
	*n = 0;
	if (!fs_gc)
		fs_gc = casfs_gc_new(c, timeout_ms);
	if (!fs_gc)
		return CAS_ENOMEM;
	return casfs_gc_collect(fs_gc, fs_grace_ms, fs_dry_run, keys, n, errmsg, errmsg_len);
}

/* gc's own delete of a listed key: it is absent already (deleted by
 * fs_list); anything else is a register in use again. */
static int fs_still_garbage(void *arg, const struct cas_value *cur, struct cas_value *next)
{
	(void)arg;
	(void)next;
	return cur->version == 0 ? CAS_OK : CAS_EVERSION;
}

static bool fs_spare(void *arg, const char *key)
{
	(void)arg;
	return fs_gc && casfs_gc_named_by_pending(fs_gc, key);
}

const struct casctl_gc_source casctl_gc_casfs = {
	.name = "casfs",
	.list = fs_list,
	.still_garbage = fs_still_garbage,
	.spare = fs_spare,
	.begin = fs_begin,
	.end = fs_end,
};

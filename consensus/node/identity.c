/* identity.c - a node's identity and configuration, kept in its data
 * folder, and the admission of requests by their identity headers
 * (identity.h). */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cas/cas.h"
#include "codec.h"
#include "errmsg.h"
#include "identity.h"

/* The largest identity file read: a configuration of the most nodes with
 * the longest URLs, and room to spare. */
#define FILE_MAX ((size_t)2 * CAS_CONFIG_MAX_NODES * (CAS_URL_MAX + 64) + 4096)

struct cas_identity {
	/* Held for reading by admitted requests (cas_identity_enter), and
	 * by readers of the fields; for writing by a join or a change once
	 * its file is durable, to put it in place. Writers first: a change
	 * is not starved by a stream of requests. */
	pthread_rwlock_t gate;
	pthread_mutex_t change; /* one join or change at a time */
	char file[PATH_MAX];
	char tmp[PATH_MAX];
	char dir[PATH_MAX];
	bool initialized;
	char node[CAS_NODE_HEX + 1];
	struct cas_config *cfg; /* NULL while uninitialized */
	unsigned fail_writes;	/* test seam */
};

/* Reads the identity file, when there is one, into id. */
static int load(struct cas_identity *id, char *errmsg, size_t errmsg_len)
{
	char reason[256];
	struct stat st;
	char *text;
	ssize_t got;
	size_t len = 0;
	int fd, err;

	fd = open(id->file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return CAS_OK; /* uninitialized */
	if (fd < 0) {
		cas_errmsg_set(errmsg, errmsg_len, "identity: open %s: %s", id->file,
			       strerror(errno));
		return CAS_EIO;
	}
	if (fstat(fd, &st) || st.st_size < 0 || (size_t)st.st_size > FILE_MAX) {
		cas_errmsg_set(errmsg, errmsg_len, "identity: %s: %s", id->file,
			       errno ? strerror(errno) : "too large");
		close(fd);
		return CAS_EIO;
	}
	text = malloc((size_t)st.st_size + 1);
	id->cfg = malloc(sizeof(*id->cfg));
	if (!text || !id->cfg) {
		cas_errmsg_set(errmsg, errmsg_len, "identity: out of memory");
		err = CAS_ENOMEM;
		goto out_free;
	}
	while (len < (size_t)st.st_size) {
		got = read(fd, text + len, (size_t)st.st_size - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			cas_errmsg_set(errmsg, errmsg_len, "identity: read %s: %s", id->file,
				       got ? strerror(errno) : "cut short");
			err = CAS_EIO;
			goto out_free;
		}
		len += (size_t)got;
	}
	if (cas_join_parse(text, len, id->node, id->cfg, reason, sizeof(reason))) {
		cas_errmsg_set(errmsg, errmsg_len, "identity: %s is not a node's identity: %s",
			       id->file, reason);
		err = CAS_EIO;
		goto out_free;
	}
	id->initialized = true;
	free(text);
	close(fd);
	return CAS_OK;

out_free:
	free(text);
	free(id->cfg);
	id->cfg = NULL;
	close(fd);
	return err;
}

int cas_identity_open(const char *dir, struct cas_identity **out, char *errmsg, size_t errmsg_len)
{
	pthread_rwlockattr_t attr;
	struct cas_identity *id;
	int err, n1, n2, n3;

	*out = NULL;
	id = calloc(1, sizeof(*id));
	if (!id) {
		cas_errmsg_set(errmsg, errmsg_len, "identity: out of memory");
		return CAS_ENOMEM;
	}
	n1 = snprintf(id->file, sizeof(id->file), "%s/%s", dir, CAS_IDENTITY_FILE);
	n2 = snprintf(id->tmp, sizeof(id->tmp), "%s/%s.tmp", dir, CAS_IDENTITY_FILE);
	n3 = snprintf(id->dir, sizeof(id->dir), "%s", dir);
	if (n1 < 0 || n2 < 0 || n3 < 0 || (size_t)n2 >= sizeof(id->tmp)) {
		cas_errmsg_set(errmsg, errmsg_len, "identity: folder name too long");
		err = CAS_EIO;
		goto out_free;
	}
	if (pthread_rwlockattr_init(&attr)) {
		cas_errmsg_set(errmsg, errmsg_len, "identity: cannot make a lock");
		err = CAS_ENOMEM;
		goto out_free;
	}
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	err = pthread_rwlock_init(&id->gate, &attr);
	pthread_rwlockattr_destroy(&attr);
	if (err) {
		cas_errmsg_set(errmsg, errmsg_len, "identity: cannot make a lock");
		err = CAS_ENOMEM;
		goto out_free;
	}
	if (pthread_mutex_init(&id->change, NULL)) {
		cas_errmsg_set(errmsg, errmsg_len, "identity: cannot make a mutex");
		err = CAS_ENOMEM;
		goto out_destroy_gate;
	}
	err = load(id, errmsg, errmsg_len);
	if (err)
		goto out_destroy_change;
	*out = id;
	return CAS_OK;

out_destroy_change:
	pthread_mutex_destroy(&id->change);
out_destroy_gate:
	pthread_rwlock_destroy(&id->gate);
out_free:
	free(id);
	return err;
}

void cas_identity_close(struct cas_identity *id)
{
	if (!id)
		return;
	pthread_mutex_destroy(&id->change);
	pthread_rwlock_destroy(&id->gate);
	free(id->cfg);
	free(id);
}

/* Fills *out from id; the caller holds the gate. */
static void view_locked(const struct cas_identity *id, struct cas_identity_view *out)
{
	memset(out, 0, sizeof(*out));
	if (!id->initialized)
		return;
	out->initialized = true;
	out->member = cas_config_has(id->cfg, id->node);
	strcpy(out->node, id->node);
	strcpy(out->cluster, id->cfg->cluster);
	out->epoch = id->cfg->epoch;
}

void cas_identity_view(struct cas_identity *id, struct cas_identity_view *out)
{
	pthread_rwlock_rdlock(&id->gate);
	view_locked(id, out);
	pthread_rwlock_unlock(&id->gate);
}

bool cas_identity_config(struct cas_identity *id, char node[CAS_NODE_HEX + 1],
			 struct cas_config *cfg)
{
	bool initialized;

	pthread_rwlock_rdlock(&id->gate);
	initialized = id->initialized;
	if (initialized) {
		strcpy(node, id->node);
		*cfg = *id->cfg;
	}
	pthread_rwlock_unlock(&id->gate);
	return initialized;
}

static int sync_dir(const char *dir)
{
	int fd, rc;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

/* Writes node and cfg as the identity file, durably (identity.h). The
 * caller holds id->change. */
static int persist(struct cas_identity *id, const char *node, const struct cas_config *cfg,
		   char *errmsg, size_t errmsg_len)
{
	const char *step = "write";
	size_t len, done = 0;
	ssize_t n;
	char *text;
	int fd, err;

	if (cas_join_format(node, cfg, &text)) {
		cas_errmsg_set(errmsg, errmsg_len, "identity: out of memory");
		return CAS_ENOMEM;
	}
	len = strlen(text);
	fd = open(id->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		step = "open";
		goto out_fail;
	}
	if (id->fail_writes) {
		id->fail_writes--;
		errno = EIO;
		goto out_close;
	}
	while (done < len) {
		n = write(fd, text + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto out_close;
		done += (size_t)n;
	}
	step = "fsync";
	if (fsync(fd))
		goto out_close;
	step = "close";
	if (close(fd)) {
		fd = -1;
		goto out_close;
	}
	step = "rename";
	if (rename(id->tmp, id->file))
		goto out_fail;
	/* From here the disk may hold the new file: a failure is reported
	 * all the same (the change then surfaces after a restart, as if its
	 * answer had been lost). */
	step = "fsync of the folder of";
	if (sync_dir(id->dir))
		goto out_fail;
	free(text);
	return CAS_OK;

out_close:
	err = errno;
	if (fd >= 0)
		close(fd);
	errno = err;
out_fail:
	err = errno;
	unlink(id->tmp);
	cas_errmsg_set(errmsg, errmsg_len, "identity: %s %s: %s", step, id->tmp, strerror(err));
	free(text);
	return CAS_EIO;
}

/* Makes node and cfg id's, durably first. The caller holds id->change. */
static int take(struct cas_identity *id, const char *node, const struct cas_config *cfg,
		char *errmsg, size_t errmsg_len)
{
	struct cas_config *copy;
	int err;

	copy = malloc(sizeof(*copy));
	if (!copy) {
		cas_errmsg_set(errmsg, errmsg_len, "identity: out of memory");
		return CAS_ENOMEM;
	}
	*copy = *cfg;
	err = persist(id, node, cfg, errmsg, errmsg_len);
	if (err) {
		free(copy);
		return err;
	}
	/* Once the gate is ours, every request admitted at the old
	 * configuration is in the store, which runs requests in the order
	 * they come: none runs after the caller answers. */
	pthread_rwlock_wrlock(&id->gate);
	free(id->cfg);
	id->cfg = copy;
	if (node != id->node)
		strcpy(id->node, node);
	id->initialized = true;
	pthread_rwlock_unlock(&id->gate);
	return CAS_OK;
}

int cas_identity_join(struct cas_identity *id, const char *node, const struct cas_config *cfg,
		      bool *changed, char *errmsg, size_t errmsg_len)
{
	int err = CAS_OK;

	*changed = false;
	if (!cas_config_has(cfg, node)) {
		cas_errmsg_set(errmsg, errmsg_len,
			       "node %s is neither in config.members nor in config.joining", node);
		return CAS_EINVAL;
	}
	/* Only this function and cas_identity_update change the fields, and
	 * both hold change: they may be read here without the gate. */
	pthread_mutex_lock(&id->change);
	if (id->initialized) {
		if (strcmp(id->node, node) || !cas_config_same(id->cfg, cfg)) {
			cas_errmsg_set(errmsg, errmsg_len,
				       "node is already initialized: node %s of cluster %s",
				       id->node, id->cfg->cluster);
			err = CAS_ECONFLICT;
		}
		goto out_unlock;
	}
	err = take(id, node, cfg, errmsg, errmsg_len);
	*changed = err == CAS_OK;

out_unlock:
	pthread_mutex_unlock(&id->change);
	return err;
}

int cas_identity_update(struct cas_identity *id, const struct cas_config *cfg, bool *changed,
			char *errmsg, size_t errmsg_len)
{
	int err = CAS_OK;

	*changed = false;
	pthread_mutex_lock(&id->change);
	if (!id->initialized) {
		cas_errmsg_set(errmsg, errmsg_len, "node is not initialized");
		err = CAS_EUNAVAILABLE;
	} else if (strcmp(cfg->cluster, id->cfg->cluster)) {
		cas_errmsg_set(errmsg, errmsg_len, "node belongs to cluster %s", id->cfg->cluster);
		err = CAS_ECONFLICT;
	} else if (cfg->epoch < id->cfg->epoch) {
		cas_errmsg_set(errmsg, errmsg_len,
			       "stale configuration: epoch %llu is below the node's %llu",
			       (unsigned long long)cfg->epoch, (unsigned long long)id->cfg->epoch);
		err = CAS_ECONFLICT;
	} else if (cfg->epoch == id->cfg->epoch) {
		if (!cas_config_same(cfg, id->cfg)) {
			cas_errmsg_set(errmsg, errmsg_len,
				       "epoch %llu is the node's, with other nodes",
				       (unsigned long long)cfg->epoch);
			err = CAS_ECONFLICT;
		}
	} else {
		err = take(id, id->node, cfg, errmsg, errmsg_len);
		*changed = err == CAS_OK;
	}
	pthread_mutex_unlock(&id->change);
	return err;
}

enum cas_admit cas_identity_enter(struct cas_identity *id, const char *cluster, const char *epoch,
				  bool unidentified, struct cas_identity_view *view, char *errmsg,
				  size_t errmsg_len)
{
	enum cas_admit verdict = CAS_ADMIT_OK;
	uint64_t e = 0;

	pthread_rwlock_rdlock(&id->gate);
	view_locked(id, view);
	if (!view->initialized) {
		if (unidentified && !cluster && !epoch)
			return CAS_ADMIT_OK; /* the clients of before identity */
		cas_errmsg_set(errmsg, errmsg_len, "node is not initialized");
		verdict = CAS_ADMIT_UNINITIALIZED;
	} else if (!cluster || !epoch) {
		cas_errmsg_set(errmsg, errmsg_len, "missing header %s",
			       !cluster ? "Cas-Cluster" : "Cas-Epoch");
		verdict = CAS_ADMIT_BAD_HEADERS;
	} else if (!cas_hex_valid(cluster, CAS_CLUSTER_HEX)) {
		cas_errmsg_set(errmsg, errmsg_len, "Cas-Cluster: not %d lowercase hex digits",
			       CAS_CLUSTER_HEX);
		verdict = CAS_ADMIT_BAD_HEADERS;
	} else if (!cas_codec_u64_parse(epoch, &e) || e == 0) {
		cas_errmsg_set(errmsg, errmsg_len,
			       "Cas-Epoch: not a canonical decimal of at least 1");
		verdict = CAS_ADMIT_BAD_HEADERS;
	} else if (strcmp(cluster, view->cluster)) {
		cas_errmsg_set(errmsg, errmsg_len, "node belongs to cluster %s", view->cluster);
		verdict = CAS_ADMIT_OTHER_CLUSTER;
	} else if (e < view->epoch) {
		cas_errmsg_set(errmsg, errmsg_len, "stale configuration");
		verdict = CAS_ADMIT_STALE;
	} else if (e > view->epoch) {
		cas_errmsg_set(errmsg, errmsg_len, "node is behind");
		verdict = CAS_ADMIT_BEHIND;
	} else if (!view->member) {
		cas_errmsg_set(errmsg, errmsg_len, "stale configuration");
		verdict = CAS_ADMIT_STALE;
	}
	if (verdict != CAS_ADMIT_OK)
		pthread_rwlock_unlock(&id->gate);
	return verdict;
}

void cas_identity_leave(struct cas_identity *id)
{
	pthread_rwlock_unlock(&id->gate);
}

void cas_identity_fail_writes(struct cas_identity *id, unsigned n)
{
	pthread_mutex_lock(&id->change);
	id->fail_writes = n;
	pthread_mutex_unlock(&id->change);
}

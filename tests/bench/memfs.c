/* memfs.c - a minimal in-memory FUSE filesystem, the floor of compare's
 * file workloads: the kernel's requests as casfs gets them (no caching:
 * entry and attribute timeouts 0, direct_io, open(O_TRUNC) in one OPEN,
 * security.capability asked on truncation), each answered from memory
 * under one lock. Regular files and folders only, no readdir; nothing is
 * freed before the unmount. Not a filesystem to keep anything in.
 *
 * Usage: memfs [FUSE options] MOUNTPOINT (-f to stay in the foreground). */
#define FUSE_USE_VERSION 314
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <fuse_lowlevel.h>

/* casfs's default (fs/casfs.c). */
#define MAX_THREADS 64
#define BUCKETS	    (1u << 18)

struct node {
	struct stat st;
	char *data;
	size_t cap;
};

struct entry {
	struct entry *next;
	fuse_ino_t parent, ino;
	char name[];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct node **nodes; /* by inode number; 0 unused, 1 the root */
static size_t n_nodes, cap_nodes;
static struct entry *table[BUCKETS];

static uint32_t hash(fuse_ino_t parent, const char *name)
{
	uint32_t h = 2166136261u ^ (uint32_t)parent;

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 16777619u;
	return h & (BUCKETS - 1);
}

static struct entry **find(fuse_ino_t parent, const char *name)
{
	struct entry **e = &table[hash(parent, name)];

	while (*e && ((*e)->parent != parent || strcmp((*e)->name, name)))
		e = &(*e)->next;
	return e;
}

static struct node *node_of(fuse_ino_t ino)
{
	return ino < n_nodes ? nodes[ino] : NULL;
}

/* A new node of mode; its number in *ino. -errno or 0. */
static int node_new(mode_t mode, fuse_ino_t *ino)
{
	struct node *n;
	struct timespec now;

	if (n_nodes == cap_nodes) {
		size_t cap = cap_nodes ? cap_nodes * 2 : 1024;
		struct node **v = realloc(nodes, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		nodes = v;
		cap_nodes = cap;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	clock_gettime(CLOCK_REALTIME, &now);
	n->st.st_ino = n_nodes;
	n->st.st_mode = mode;
	n->st.st_nlink = S_ISDIR(mode) ? 2 : 1;
	n->st.st_blksize = 4096;
	n->st.st_atim = n->st.st_mtim = n->st.st_ctim = now;
	*ino = n_nodes;
	nodes[n_nodes++] = n;
	return 0;
}

static void reply_entry(fuse_req_t req, struct node *n)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = n->st.st_ino;
	e.attr = n->st;
	fuse_reply_entry(req, &e);
}

static void mem_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	conn->want &= ~(unsigned)FUSE_CAP_HANDLE_KILLPRIV;
}

static void mem_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct entry *e;

	pthread_mutex_lock(&lock);
	e = *find(parent, name);
	if (e)
		reply_entry(req, nodes[e->ino]);
	else
		fuse_reply_err(req, ENOENT);
	pthread_mutex_unlock(&lock);
}

static void mem_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n;

	(void)fi;
	pthread_mutex_lock(&lock);
	n = node_of(ino);
	if (n)
		fuse_reply_attr(req, &n->st, 0);
	else
		fuse_reply_err(req, ENOENT);
	pthread_mutex_unlock(&lock);
}

static void set_size(struct node *n, off_t size)
{
	if ((size_t)size > n->cap) {
		char *d = realloc(n->data, (size_t)size);

		if (!d)
			return;
		n->data = d;
		n->cap = (size_t)size;
	}
	if (size > n->st.st_size)
		memset(n->data + n->st.st_size, 0, (size_t)(size - n->st.st_size));
	n->st.st_size = size;
	n->st.st_blocks = (size + 511) / 512;
}

static void mem_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
			struct fuse_file_info *fi)
{
	struct node *n;

	(void)fi;
	pthread_mutex_lock(&lock);
	n = node_of(ino);
	if (!n) {
		fuse_reply_err(req, ENOENT);
		goto out_unlock;
	}
	if (to_set & FUSE_SET_ATTR_SIZE)
		set_size(n, attr->st_size);
	if (to_set & FUSE_SET_ATTR_MODE)
		n->st.st_mode = (n->st.st_mode & S_IFMT) | (attr->st_mode & 07777);
	if (to_set & FUSE_SET_ATTR_MTIME)
		n->st.st_mtim = attr->st_mtim;
	if (to_set & FUSE_SET_ATTR_ATIME)
		n->st.st_atim = attr->st_atim;
	fuse_reply_attr(req, &n->st, 0);
out_unlock:
	pthread_mutex_unlock(&lock);
}

/* Links a new node of mode as name in parent; the node or NULL with
 * *err set. */
static struct node *make(fuse_ino_t parent, const char *name, mode_t mode, int *err)
{
	struct node *dir = node_of(parent);
	struct entry **slot, *e;
	fuse_ino_t ino;

	if (!dir || !S_ISDIR(dir->st.st_mode)) {
		*err = ENOTDIR;
		return NULL;
	}
	slot = find(parent, name);
	if (*slot) {
		*err = EEXIST;
		return NULL;
	}
	e = malloc(sizeof(*e) + strlen(name) + 1);
	if (!e || node_new(mode, &ino)) {
		free(e);
		*err = ENOMEM;
		return NULL;
	}
	e->next = NULL;
	e->parent = parent;
	e->ino = ino;
	strcpy(e->name, name);
	*slot = e;
	dir->st.st_size++;
	if (S_ISDIR(mode))
		dir->st.st_nlink++;
	return nodes[ino];
}

static void mem_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct node *n;
	int err;

	(void)rdev;
	pthread_mutex_lock(&lock);
	if (!S_ISREG(mode) && !S_ISDIR(mode))
		fuse_reply_err(req, EPERM);
	else if ((n = make(parent, name, mode, &err)))
		reply_entry(req, n);
	else
		fuse_reply_err(req, err);
	pthread_mutex_unlock(&lock);
}

static void mem_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	mem_mknod(req, parent, name, S_IFDIR | (mode & 07777), 0);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir)
{
	struct entry **slot, *e;
	struct node *n;

	pthread_mutex_lock(&lock);
	slot = find(parent, name);
	e = *slot;
	if (!e) {
		fuse_reply_err(req, ENOENT);
		goto out_unlock;
	}
	n = nodes[e->ino];
	if (dir != (bool)S_ISDIR(n->st.st_mode)) {
		fuse_reply_err(req, dir ? ENOTDIR : EISDIR);
		goto out_unlock;
	}
	if (dir && n->st.st_size) {
		fuse_reply_err(req, ENOTEMPTY);
		goto out_unlock;
	}
	*slot = e->next;
	free(e);
	n->st.st_nlink = dir ? 0 : n->st.st_nlink - 1;
	nodes[parent]->st.st_size--;
	if (dir)
		nodes[parent]->st.st_nlink--;
	fuse_reply_err(req, 0);
out_unlock:
	pthread_mutex_unlock(&lock);
}

static void mem_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, false);
}

static void mem_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, true);
}

static void mem_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		       struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	struct node *n;
	int err;

	pthread_mutex_lock(&lock);
	n = make(parent, name, S_IFREG | (mode & 07777), &err);
	if (n) {
		memset(&e, 0, sizeof(e));
		e.ino = n->st.st_ino;
		e.attr = n->st;
		fi->direct_io = 1;
		fuse_reply_create(req, &e, fi);
	} else {
		fuse_reply_err(req, err);
	}
	pthread_mutex_unlock(&lock);
}

static void mem_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n;

	pthread_mutex_lock(&lock);
	n = node_of(ino);
	if (!n) {
		fuse_reply_err(req, ENOENT);
	} else if (S_ISDIR(n->st.st_mode)) {
		fuse_reply_err(req, EISDIR);
	} else {
		if (fi->flags & O_TRUNC)
			set_size(n, 0);
		fi->direct_io = 1;
		fuse_reply_open(req, fi);
	}
	pthread_mutex_unlock(&lock);
}

static void mem_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct node *n;

	(void)fi;
	pthread_mutex_lock(&lock);
	n = node_of(ino);
	if (!n)
		fuse_reply_err(req, ENOENT);
	else if (off >= n->st.st_size)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, n->data + off,
			       (size_t)(n->st.st_size - off) < size ? (size_t)(n->st.st_size - off)
								    : size);
	pthread_mutex_unlock(&lock);
}

static void mem_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct node *n;

	(void)fi;
	pthread_mutex_lock(&lock);
	n = node_of(ino);
	if (!n) {
		fuse_reply_err(req, ENOENT);
		goto out_unlock;
	}
	if ((off_t)(off + size) > n->st.st_size)
		set_size(n, off + (off_t)size);
	if ((size_t)(off + size) > n->cap) {
		fuse_reply_err(req, ENOSPC); /* set_size could not grow it */
		goto out_unlock;
	}
	memcpy(n->data + off, buf, size);
	clock_gettime(CLOCK_REALTIME, &n->st.st_mtim);
	fuse_reply_write(req, size);
out_unlock:
	pthread_mutex_unlock(&lock);
}

static void mem_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void mem_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

/* As casfs: no extended attributes here, and security.capability asked
 * on every truncation. */
static void mem_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	(void)ino;
	(void)name;
	(void)size;
	fuse_reply_err(req, ENODATA);
}

static const struct fuse_lowlevel_ops mem_ops = {
	.init = mem_init,
	.lookup = mem_lookup,
	.getattr = mem_getattr,
	.setattr = mem_setattr,
	.mknod = mem_mknod,
	.mkdir = mem_mkdir,
	.unlink = mem_unlink,
	.rmdir = mem_rmdir,
	.create = mem_create,
	.open = mem_open,
	.read = mem_read,
	.write = mem_write,
	.flush = mem_flush,
	.release = mem_release,
	.getxattr = mem_getxattr,
};

#define THREADS_KEY 1

static int note_option(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	(void)arg;
	(void)outargs;
	if (key == THREADS_KEY)
		*(bool *)data = true;
	return 1;
}

/* Whether -o max_threads= is among args, as casfs asks (fs/casfs.c). */
static bool threads_given(const struct fuse_args *args)
{
	static const struct fuse_opt spec[] = {FUSE_OPT_KEY("max_threads=", THREADS_KEY),
					       FUSE_OPT_END};
	struct fuse_args copy = FUSE_ARGS_INIT(args->argc, args->argv);
	bool given = false;

	if (fuse_opt_parse(&copy, &given, spec, note_option))
		given = false;
	if (copy.allocated)
		fuse_opt_free_args(&copy);
	return given;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts cmd = {0};
	struct fuse_loop_config *loop;
	struct fuse_session *se;
	fuse_ino_t root;
	bool own_threads = !threads_given(&args);
	int ret = 1;

	if (fuse_parse_cmdline(&args, &cmd) != 0)
		return 1;
	if (cmd.show_help || !cmd.mountpoint) {
		printf("usage: %s [options] MOUNTPOINT\n", argv[0]);
		fuse_cmdline_help();
		ret = cmd.show_help ? 0 : 1;
		goto out_free;
	}
	if (node_new(S_IFDIR | 0755, &root) || node_new(S_IFDIR | 0755, &root)) {
		fprintf(stderr, "memfs: out of memory\n");
		goto out_free;
	}
	se = fuse_session_new(&args, &mem_ops, sizeof(mem_ops), NULL);
	if (!se)
		goto out_free;
	if (fuse_set_signal_handlers(se))
		goto out_destroy;
	if (fuse_session_mount(se, cmd.mountpoint))
		goto out_handlers;
	fuse_daemonize(cmd.foreground);
	if (cmd.singlethread) {
		ret = fuse_session_loop(se);
	} else {
		/* The loop casfs runs (fs/casfs.c). */
		loop = fuse_loop_cfg_create();
		if (!loop)
			goto out_unmount;
		fuse_loop_cfg_set_clone_fd(loop, (unsigned)cmd.clone_fd);
		if (cmd.max_idle_threads <= 100000)
			fuse_loop_cfg_set_idle_threads(loop, cmd.max_idle_threads);
		fuse_loop_cfg_set_max_threads(loop, !own_threads && cmd.max_threads &&
								    cmd.max_threads <= 100000
							    ? cmd.max_threads
							    : MAX_THREADS);
		ret = fuse_session_loop_mt(se, loop);
		fuse_loop_cfg_destroy(loop);
	}
	ret = ret < 0 ? 1 : 0;
out_unmount:
	fuse_session_unmount(se);
out_handlers:
	fuse_remove_signal_handlers(se);
out_destroy:
	fuse_session_destroy(se);
out_free:
	free(cmd.mountpoint);
	fuse_opt_free_args(&args);
	return ret;
}

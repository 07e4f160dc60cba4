/* casfs.c - mount a casd cluster as a FUSE filesystem. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include <cas/client.h>

#include "metrics.h"
#include "ops.h"
#include "options.h"

#define MAX_THREADS 64

static void usage(const char *prog)
{
	printf("usage: %s [options] [SOURCE] MOUNTPOINT\n\n", prog);
	printf("SOURCE, as mount(8) passes it (\"casfs\" in fstab), is ignored.\n\n");
	casfs_options_help(stdout);
	printf("\n");
	fuse_cmdline_help();
	fuse_lowlevel_help();
}

/* mount(8) runs "mount.fuse.casfs SOURCE DIR -o OPTS", and mount.fuse
 * passes the source on too: of two arguments that are not options, the
 * first is the source, dropped here (fuse_parse_cmdline takes one). */
static void drop_source(struct fuse_args *args)
{
	int i, first = 0, n = 0;

	for (i = 1; i < args->argc; i++) {
		const char *a = args->argv[i];

		if (!strcmp(a, "--"))
			break;
		if (!strcmp(a, "-o")) {
			i++;
			continue;
		}
		if (a[0] != '-' && n++ == 0)
			first = i;
	}
	if (n != 2)
		return; /* none, or too many: fuse_parse_cmdline says so */
	free(args->argv[first]);
	/* Shifts the NULL that ends argv too. */
	memmove(&args->argv[first], &args->argv[first + 1],
		(size_t)(args->argc - first) * sizeof(args->argv[0]));
	args->argc--;
}

/* fuse_opt callback of threads_given: notes -o max_threads= (every other
 * option and argument comes here too, with libfuse's own keys), keeps
 * all. */
#define THREADS_KEY 1
static int note_option(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	(void)arg;
	(void)outargs;
	if (key == THREADS_KEY)
		*(bool *)data = true;
	return 1;
}

/* Whether -o max_threads= is among args (left unchanged):
 * fuse_parse_cmdline reports libfuse's default of 10 when it is not, the
 * same as an explicit 10. */
static bool threads_given(const struct fuse_args *args)
{
	static const struct fuse_opt spec[] = {FUSE_OPT_KEY("max_threads=", THREADS_KEY),
					       FUSE_OPT_END};
	struct fuse_args copy = FUSE_ARGS_INIT(args->argc, args->argv);
	bool given = false;

	/* Parses a copy (fuse_opt_parse allocates its own argv for it); on
	 * out of memory, taken as not given. */
	if (fuse_opt_parse(&copy, &given, spec, note_option))
		given = false;
	if (copy.allocated)
		fuse_opt_free_args(&copy);
	return given;
}

/* libfuse's and casfs's messages once daemonized, when stderr is
 * /dev/null: to syslog (the journal), without the "casfs: " that the tag
 * already says and the newline. fuse_log levels are syslog's. */
static void log_to_syslog(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char line[1024];
	const char *p = line;
	size_t n;

	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	if (!strncmp(p, "casfs: ", 7))
		p += 7;
	syslog((int)level, "%s", p);
}

/* The TLS and token files of o, for cas_client_config. */
static struct cas_auth_config auth_config(const struct casfs_options *o)
{
	return (struct cas_auth_config){.tls_ca = o->tls_ca,
					.tls_cert = o->tls_cert,
					.tls_key = o->tls_key,
					.token_file = o->token_file};
}

/* The metrics' view of the mount's client (metrics.h). */
static void client_stats(void *arg, struct cas_client_stats *st)
{
	cas_client_stats(arg, st);
}

/* Checks that a majority of the cluster answers and that it holds a casfs
 * root (creating one on a fresh cluster). 0, or 1 after printing why. */
static int check_cluster(const struct casfs_options *o)
{
	struct cas_client_config cfg = {.timeout_ms = o->timeout_ms, .max_value_size = o->max_size};

	cfg.auth = auth_config(o);
	struct cas_client *c;
	char err[512];
	int rc;

	rc = cas_client_open(o->nodes, &cfg, &c, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "casfs: bad nodes=%s: %s\n", o->nodes, err);
		return 1;
	}
	err[0] = '\0';
	rc = casfs_fs_check_root(c, o->timeout_ms, o->max_size, (unsigned)getuid(),
				 (unsigned)getgid(), err, sizeof(err));
	cas_client_close(c);
	if (rc == CAS_EUNAVAILABLE) {
		/* err says why, e.g. a node that refused the token. */
		fprintf(stderr,
			"casfs: cluster unreachable: no majority of %s answered within %.3g "
			"s%s%s\n",
			o->nodes, o->timeout_ms / 1000.0, err[0] ? ": " : "", err);
		return 1;
	}
	if (rc) {
		fprintf(stderr, "casfs: %s\n", err);
		return 1;
	}
	return 0;
}

int main(int argc, char *argv[])
{
	struct fuse_args args;
	struct fuse_cmdline_opts cmd = {0};
	struct fuse_loop_config *loop;
	struct casfs_options o = {0};
	struct cas_client_config cfg;
	struct fuse_session *se;
	struct cas_auth *auth;
	struct cas_client *c;
	struct casfs_fs *fs;
	struct casfs_metrics_server *metrics = NULL;
	int metrics_fd = -1;
	char err[512];
	bool own_threads;
	int ret = 1;

	if (casfs_options_join_nodes(argc, argv, &args)) {
		fprintf(stderr, "casfs: out of memory\n");
		goto out_free_opts;
	}
	drop_source(&args);
	own_threads = !threads_given(&args);
	if (fuse_parse_cmdline(&args, &cmd) != 0) {
		fprintf(stderr, "casfs: bad command line; see casfs -h\n");
		goto out_free_opts;
	}
	if (cmd.show_help) {
		usage(argv[0]);
		ret = 0;
		goto out_free_cmd;
	}
	if (cmd.show_version) {
		printf("casfs %s\n", CAS_VERSION_STRING);
		fuse_lowlevel_version();
		ret = 0;
		goto out_free_cmd;
	}
	if (casfs_options_parse(&args, getenv("CAS_NODES"), &o, err, sizeof(err))) {
		fprintf(stderr, "casfs: %s\n", err);
		goto out_free_cmd;
	}
	if (!cmd.mountpoint) {
		fprintf(stderr, "casfs: no mount point given; see casfs -h\n");
		goto out_free_cmd;
	}
	/* A mount shared with other users has the kernel check permissions
	 * from the mode bits we report; that costs a GETATTR round per path
	 * component, so a private mount goes without. */
	if ((o.allow_other && fuse_opt_add_arg(&args, "-odefault_permissions")) ||
	    fuse_opt_add_arg(&args, "-ofsname=casfs") ||
	    fuse_opt_add_arg(&args, "-osubtype=casfs")) {
		fprintf(stderr, "casfs: out of memory\n");
		goto out_free_cmd;
	}
	/* The metrics address is taken now: a bad or busy one fails the
	 * mount, on stderr, before anything else is done. */
	if (o.metrics_host &&
	    casfs_metrics_listen(o.metrics_host, o.metrics_port, &metrics_fd, err, sizeof(err))) {
		fprintf(stderr, "casfs: %s\n", err);
		goto out_free_cmd;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.timeout_ms = o.timeout_ms;
	cfg.max_value_size = o.max_size;
	cfg.auth = auth_config(&o);
	/* A missing or unreadable TLS or token file: one line, exit 1. */
	if (cas_auth_load(&cfg.auth, &auth, err, sizeof(err))) {
		fprintf(stderr, "casfs: %s\n", err);
		goto out_free_cmd;
	}
	cas_auth_free(auth);
	if (cas_client_open(o.nodes, &cfg, &c, err, sizeof(err))) {
		fprintf(stderr, "casfs: bad nodes=%s: %s\n", o.nodes, err);
		goto out_free_cmd;
	}
	if (casfs_fs_new(c, &o, &fs)) {
		fprintf(stderr, "casfs: out of memory\n");
		goto out_close_client;
	}
	se = fuse_session_new(&args, &casfs_ops, sizeof(casfs_ops), fs);
	if (!se)
		goto out_free_fs; /* libfuse said why */
	/* Options are all known now; the cluster must answer before we mount. */
	if (check_cluster(&o))
		goto out_destroy_session;
	if (fuse_set_signal_handlers(se))
		goto out_destroy_session;
	if (fuse_session_mount(se, cmd.mountpoint))
		goto out_remove_handlers;
	/* Every error until here went to stderr with exit 1; from here on,
	 * without -f, messages go to syslog. */
	if (fuse_daemonize(cmd.foreground))
		goto out_unmount; /* libfuse said why, on stderr */
	if (!cmd.foreground) {
		openlog("casfs", LOG_PID, LOG_DAEMON);
		fuse_set_log_func(log_to_syslog);
		fuse_log(FUSE_LOG_INFO, "mounted %s (nodes=%s)\n", cmd.mountpoint, o.nodes);
	}
	/* Its threads start after fuse_daemonize, which they would not
	 * survive; the socket does. */
	if (metrics_fd >= 0) {
		int rc = casfs_metrics_start(metrics_fd, client_stats, c, &metrics, err,
					     sizeof(err));

		metrics_fd = -1;
		if (rc) {
			fuse_log(FUSE_LOG_ERR, "casfs: %s\n", err);
			goto out_unmount;
		}
	}
	if (cmd.singlethread) {
		ret = fuse_session_loop(se);
	} else {
		loop = fuse_loop_cfg_create();
		if (!loop) {
			fuse_log(FUSE_LOG_ERR, "casfs: out of memory\n");
			goto out_unmount;
		}
		fuse_loop_cfg_set_clone_fd(loop, (unsigned)cmd.clone_fd);
		if (cmd.max_idle_threads <= 100000) /* else unset */
			fuse_loop_cfg_set_idle_threads(loop, cmd.max_idle_threads);
		/* Every request may wait for the network: more threads than
		 * libfuse's default of 10, unless -o max_threads= says. */
		fuse_loop_cfg_set_max_threads(loop, !own_threads && cmd.max_threads &&
								    cmd.max_threads <= 100000
							    ? cmd.max_threads
							    : MAX_THREADS);
		ret = fuse_session_loop_mt(se, loop);
		fuse_loop_cfg_destroy(loop);
	}
	/* A signal ends the loop with its number: a clean exit. */
	ret = ret < 0 ? 1 : 0;
	if (!cmd.foreground)
		fuse_log(ret ? FUSE_LOG_ERR : FUSE_LOG_INFO, "%s: %s\n", cmd.mountpoint,
			 ret ? "stopped on an error" : "stopped");
out_unmount:
	casfs_metrics_stop(metrics);
	fuse_session_unmount(se);
out_remove_handlers:
	fuse_remove_signal_handlers(se);
out_destroy_session:
	fuse_session_destroy(se);
out_free_fs:
	casfs_fs_free(fs);
out_close_client:
	cas_client_close(c);
out_free_cmd:
	if (metrics_fd >= 0)
		close(metrics_fd);
	free(cmd.mountpoint);
out_free_opts:
	fuse_opt_free_args(&args);
	casfs_options_clear(&o);
	return ret;
}

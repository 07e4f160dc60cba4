/* options.h - casfs's own mount options (-o nodes=, timeout=, cache, max_size=,
 * lease=, tls_ca=, tls_cert=, tls_key=, token_file=, metrics=). */
#ifndef CASFS_OPTIONS_H
#define CASFS_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <fuse_opt.h>

#include <cas/cas.h>

#define CASFS_DEFAULT_TIMEOUT_MS 5000

struct casfs_options {
	char *nodes;	     /* malloc'd comma-separated acceptor URLs */
	unsigned timeout_ms; /* deadline of one filesystem operation */
	bool cache;	     /* relaxed kernel caching (weaker consistency) */
	size_t max_size;     /* largest register value, in bytes */
	bool allow_other;    /* -o allow_other was given (and left for libfuse) */
	unsigned lease_ms;   /* lease of the mount's lock session */
	/* TLS and token files (cas/admin.h, struct cas_auth_config),
	 * malloc'd, NULL when not given. */
	char *tls_ca, *tls_cert, *tls_key, *token_file;
	/* -o metrics=ADDRESS:PORT: the address (an IPv4 or IPv6 literal,
	 * without brackets; malloc'd, NULL when not given) and port (1 to
	 * 65535) the Prometheus metrics are served on (metrics.h). */
	char *metrics_host;
	unsigned metrics_port;
};

/* Copies argc/argv into out (cleared first; free with fuse_opt_free_args,
 * also on error) so that the commas between acceptor URLs in
 * "-o nodes=URL,URL" do not split the option: a URL token that follows
 * a nodes= token in one -o argument is joined to it with an escaped
 * comma, which fuse_opt reads back as a plain one. CAS_OK or CAS_ENOMEM. */
int casfs_options_join_nodes(int argc, char *argv[], struct fuse_args *out);

/* Takes casfs's options out of args (the rest stays for libfuse) and
 * fills o, which the caller frees with casfs_options_clear (also on
 * error). nodes defaults to env_nodes (the caller passes
 * getenv("CAS_NODES"), may be NULL). CAS_EINVAL with a one-line reason in
 * errmsg for a bad or missing value; CAS_ENOMEM. */
int casfs_options_parse(struct fuse_args *args, const char *env_nodes, struct casfs_options *o,
			char *errmsg, size_t errmsg_len);

void casfs_options_clear(struct casfs_options *o);

/* Prints the help text of casfs's options to f. */
void casfs_options_help(FILE *f);

#endif

/* options.c - casfs's own mount options, parsed with libfuse's fuse_opt. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cas/cas.h>

#include "lease.h"
#include "options.h"

#define MAX_TIMEOUT_S 3600.0
#define MIN_MAX_SIZE  4096
#define MAX_MAX_SIZE  (1024UL * 1024 * 1024)

struct raw {
	char *nodes;
	char *timeout;
	char *max_size;
	char *lease;
	char *tls_ca, *tls_cert, *tls_key, *token_file;
	char *metrics;
	int cache;
	int allow_other;
};

enum { KEY_ALLOW_OTHER };

static const struct fuse_opt specs[] = {{"nodes=%s", offsetof(struct raw, nodes), 0},
					{"timeout=%s", offsetof(struct raw, timeout), 0},
					{"max_size=%s", offsetof(struct raw, max_size), 0},
					{"lease=%s", offsetof(struct raw, lease), 0},
					{"tls_ca=%s", offsetof(struct raw, tls_ca), 0},
					{"tls_cert=%s", offsetof(struct raw, tls_cert), 0},
					{"tls_key=%s", offsetof(struct raw, tls_key), 0},
					{"token_file=%s", offsetof(struct raw, token_file), 0},
					{"metrics=%s", offsetof(struct raw, metrics), 0},
					{"cache", offsetof(struct raw, cache), 1},
					{"nocache", offsetof(struct raw, cache), 0},
					FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
					FUSE_OPT_END};

/* Notes allow_other and leaves it (and all else) for libfuse. */
static int keep_opt(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct raw *raw = data;

	(void)arg;
	(void)outargs;
	if (key == KEY_ALLOW_OTHER)
		raw->allow_other = 1;
	return 1;
}

/* Seconds (fractional) to milliseconds, rounded up; within (0, max_s]. */
static bool parse_seconds(const char *s, double max_s, unsigned *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v <= 0 || v > max_s)
		return false;
	*ms = (unsigned)ceil(v * 1000.0);
	if (*ms == 0)
		*ms = 1;
	return true;
}

/* Bytes, with an optional k or m suffix (powers of 1024). */
static bool parse_size(const char *s, size_t *out)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return false;
	if (*end == 'k' || *end == 'K') {
		v *= 1024;
		end++;
	} else if (*end == 'm' || *end == 'M') {
		v *= 1024 * 1024;
		end++;
	}
	if (*end || v < MIN_MAX_SIZE || v > MAX_MAX_SIZE)
		return false;
	*out = (size_t)v;
	return true;
}

/* ADDRESS:PORT, ADDRESS an IPv4 literal or a bracketed IPv6 one, PORT
 * 1 to 65535 in decimal: *host (malloc'd, without brackets) and *port.
 * False, *host NULL, when s is not one, or out of memory (*port 0). */
static bool parse_address(const char *s, char **host, unsigned *port)
{
	unsigned char buf[sizeof(struct in6_addr)];
	const char *colon, *p;
	unsigned long v = 0;
	int family = AF_INET;
	size_t len;

	*host = NULL;
	*port = 0;
	if (*s == '[') {
		colon = strchr(s, ']');
		if (!colon || colon[1] != ':')
			return false;
		family = AF_INET6;
		s++;
		len = (size_t)(colon - s);
		colon++;
	} else {
		colon = strchr(s, ':');
		if (!colon || strchr(colon + 1, ':'))
			return false;
		len = (size_t)(colon - s);
	}
	p = colon + 1;
	if (!*p || strlen(p) > 5)
		return false;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return false;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v < 1 || v > 65535)
		return false;
	*host = strndup(s, len);
	if (!*host)
		return false;
	if (inet_pton(family, *host, buf) != 1) {
		free(*host);
		*host = NULL;
		return false;
	}
	*port = (unsigned)v;
	return true;
}

static bool is_url(const char *s, size_t len)
{
	return (len > 7 && !strncmp(s, "http://", 7)) || (len > 8 && !strncmp(s, "https://", 8));
}

/* prefix and the -o argument opts, with URL tokens after nodes= joined
 * by "\,". A malloc'd string, or NULL when out of memory. */
static char *join_nodes(const char *prefix, const char *opts)
{
	char *out = malloc(strlen(prefix) + 2 * strlen(opts) + 1), *w;
	const char *tok = opts;
	bool in_nodes = false;

	if (!out)
		return NULL;
	w = stpcpy(out, prefix);
	for (;;) {
		const char *end = tok;
		size_t len;

		while (*end && *end != ',') {
			if (end[0] == '\\' && end[1])
				end++;
			end++;
		}
		len = (size_t)(end - tok);
		if (tok != opts) {
			if (in_nodes && is_url(tok, len))
				*w++ = '\\';
			else
				in_nodes = false;
			*w++ = ',';
		}
		if (len >= 6 && !strncmp(tok, "nodes=", 6))
			in_nodes = true;
		memcpy(w, tok, len);
		w += len;
		if (!*end)
			break;
		tok = end + 1;
	}
	*w = '\0';
	return out;
}

int casfs_options_join_nodes(int argc, char *argv[], struct fuse_args *out)
{
	int i, rc;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *prefix = "";
		char *joined;

		if (i > 0 && !strcmp(a, "-o") && i + 1 < argc) {
			if (fuse_opt_add_arg(out, "-o"))
				return CAS_ENOMEM;
			a = argv[++i];
		} else if (i > 0 && !strncmp(a, "-o", 2)) {
			prefix = "-o";
			a += 2;
		} else {
			if (fuse_opt_add_arg(out, a))
				return CAS_ENOMEM;
			continue;
		}
		joined = join_nodes(prefix, a);
		if (!joined)
			return CAS_ENOMEM;
		rc = fuse_opt_add_arg(out, joined);
		free(joined);
		if (rc)
			return CAS_ENOMEM;
	}
	return CAS_OK;
}

int casfs_options_parse(struct fuse_args *args, const char *env_nodes, struct casfs_options *o,
			char *errmsg, size_t errmsg_len)
{
	struct raw raw = {0};
	int rc = CAS_EINVAL;

	memset(o, 0, sizeof(*o));
	o->timeout_ms = CASFS_DEFAULT_TIMEOUT_MS;
	o->max_size = CAS_DEFAULT_MAX_VALUE;
	o->lease_ms = CASFS_LEASE_DEFAULT_MS;
	if (fuse_opt_parse(args, &raw, specs, keep_opt) == -1) {
		snprintf(errmsg, errmsg_len, "cannot parse the options");
		goto out_free_raw;
	}
	if (raw.timeout && !parse_seconds(raw.timeout, MAX_TIMEOUT_S, &o->timeout_ms)) {
		snprintf(errmsg, errmsg_len,
			 "bad timeout=%s: want seconds, more than 0 and at most %.0f", raw.timeout,
			 MAX_TIMEOUT_S);
		goto out_free_raw;
	}
	if (raw.max_size && !parse_size(raw.max_size, &o->max_size)) {
		snprintf(errmsg, errmsg_len,
			 "bad max_size=%s: want bytes (k and m suffixes allowed), %d to %lu",
			 raw.max_size, MIN_MAX_SIZE, MAX_MAX_SIZE);
		goto out_free_raw;
	}
	if (raw.lease && (!parse_seconds(raw.lease, CASFS_LEASE_MAX_MS / 1000.0, &o->lease_ms) ||
			  o->lease_ms < CASFS_LEASE_MIN_MS)) {
		snprintf(errmsg, errmsg_len, "bad lease=%s: want seconds, %g to %g", raw.lease,
			 CASFS_LEASE_MIN_MS / 1000.0, CASFS_LEASE_MAX_MS / 1000.0);
		goto out_free_raw;
	}
	if (raw.metrics && !parse_address(raw.metrics, &o->metrics_host, &o->metrics_port)) {
		snprintf(errmsg, errmsg_len,
			 "bad metrics=%s: want ADDRESS:PORT, ADDRESS an IPv4 address or an IPv6 "
			 "one in brackets, PORT 1 to 65535 (127.0.0.1:9101, [::1]:9101)",
			 raw.metrics);
		goto out_free_raw;
	}
	o->cache = raw.cache;
	o->allow_other = raw.allow_other;
	if (!raw.nodes && env_nodes && *env_nodes) {
		raw.nodes = strdup(env_nodes);
		if (!raw.nodes) {
			rc = CAS_ENOMEM;
			snprintf(errmsg, errmsg_len, "out of memory");
			goto out_free_raw;
		}
	}
	if (raw.nodes && !*raw.nodes) {
		snprintf(errmsg, errmsg_len, "bad nodes=: empty list of acceptor URLs");
		goto out_free_raw;
	}
	if (!raw.nodes) {
		snprintf(errmsg, errmsg_len,
			 "no cluster given: use -o nodes=URL,URL,... or set CAS_NODES");
		goto out_free_raw;
	}
	o->nodes = raw.nodes;
	raw.nodes = NULL;
	/* Names only: the files are read when the client opens. */
	o->tls_ca = raw.tls_ca;
	o->tls_cert = raw.tls_cert;
	o->tls_key = raw.tls_key;
	o->token_file = raw.token_file;
	raw.tls_ca = raw.tls_cert = raw.tls_key = raw.token_file = NULL;
	rc = CAS_OK;

out_free_raw:
	free(raw.nodes);
	free(raw.timeout);
	free(raw.max_size);
	free(raw.lease);
	free(raw.tls_ca);
	free(raw.tls_cert);
	free(raw.tls_key);
	free(raw.token_file);
	free(raw.metrics);
	return rc;
}

void casfs_options_clear(struct casfs_options *o)
{
	free(o->nodes);
	free(o->tls_ca);
	free(o->tls_cert);
	free(o->tls_key);
	free(o->token_file);
	free(o->metrics_host);
	memset(o, 0, sizeof(*o));
}

void casfs_options_help(FILE *f)
{
	fprintf(f,
		"casfs options:\n"
		"    -o nodes=URL,URL,...   acceptor base URLs (default: $CAS_NODES)\n"
		"    -o timeout=SECONDS     deadline of every operation (default %g)\n"
		"    -o max_size=BYTES      largest register value; a file's content\n"
		"                           plus its metadata must fit (default %u)\n"
		"    -o cache               let the kernel cache names, attributes (1 s)\n"
		"                           and file pages between opens: faster, but\n"
		"                           NOT linearizable across mounts\n"
		"    -o lease=SECONDS       lease of this mount's flock and fcntl locks:\n"
		"                           a mount silent that long loses them (default %g)\n"
		"    -o tls_ca=FILE         CA certificates (PEM) the nodes' certificates\n"
		"                           must chain to; node URLs are then https://\n"
		"    -o tls_cert=FILE       this mount's client certificate (PEM)\n"
		"    -o tls_key=FILE        its unencrypted private key (PEM)\n"
		"    -o token_file=FILE     the cluster's shared token: the file, less a\n"
		"                           newline (read at start; others must not read\n"
		"                           it; never give the token on the command line)\n"
		"    -o metrics=ADDR:PORT   serve Prometheus metrics on http://ADDR:PORT/metrics\n"
		"                           (ADDR an IPv4 address or [IPv6]; no token: use\n"
		"                           loopback or a firewall)\n",
		CASFS_DEFAULT_TIMEOUT_MS / 1000.0, (unsigned)CAS_DEFAULT_MAX_VALUE,
		CASFS_LEASE_DEFAULT_MS / 1000.0);
}

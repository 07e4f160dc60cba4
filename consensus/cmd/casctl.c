/* casctl.c - command-line register client: get, put, cas, delete,
 * version; the usage and dispatch of every command (status in
 * casctl_status.c, dump and restore in casctl_dump.c, gc in casctl_gc.c,
 * init and member in casctl_init.c and casctl_member.c). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cas/admin.h>
#include <cas/client.h>

#include "casctl.h"

static const char *prog = "casctl";

struct cas_auth_config casctl_auth_cfg;
const struct cas_auth *casctl_auth;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [--nodes URL,URL,...] [--timeout SECONDS] [--tls-ca FILE\n"
		"       --tls-cert FILE --tls-key FILE] [--token-file FILE] COMMAND\n"
		"\n"
		"commands:\n"
		"  get KEY                  print the value's bytes (nothing for a new key)\n"
		"  put KEY [FILE]           write FILE (stdin without FILE);\n"
		"                           prints the new version\n"
		"  cas KEY VERSION [FILE]   write only if the version is still VERSION\n"
		"                           (0: never written); prints the new version\n"
		"  delete KEY [VERSION]     delete the key (only if its version is still\n"
		"                           VERSION); it reads as absent, version 0, and\n"
		"                           the next write makes version 1\n"
		"  version KEY              print the key's version (0 for a new key)\n"
		"  status [--json]          one line per node (seeds and members): URL,\n"
		"                           reachable|unreachable, cluster, node id, epoch,\n"
		"                           ok|degraded|uninitialized, version, keys, bytes,\n"
		"                           capacity, log use, round-trip time; exit 4\n"
		"                           unless a majority of the members is healthy\n"
		"  dump FILE                write every register (key, version, value) to\n"
		"                           FILE (new; - for stdout), each read\n"
		"                           linearizably; progress on stderr\n"
		"  gc [--grace SECONDS] [--jobs N] [--dry-run]\n"
		"                           purge deleted keys from every node: note each\n"
		"                           absent key, wait the grace (default 10, more\n"
		"                           than any client's --timeout or -o timeout),\n"
		"                           then write back and purge; prints each key\n"
		"                           purged or left and each node's keys and bytes\n"
		"                           before and after; exit 4 when a node did not\n"
		"                           answer, 1 when keys were left otherwise;\n"
		"                           --dry-run lists the candidates only\n"
		"  restore FILE             load a dump into a new, empty cluster (only\n"
		"                           the root casctl init wrote), same versions\n"
		"  init                     make the --nodes (all empty) one new cluster\n"
		"                           and its filesystem root; prints the cluster id\n"
		"  member list              the configuration: URL, node id, role, epoch\n"
		"  member add URL           add the empty node URL to the members\n"
		"  member remove URL        remove the member URL\n"
		"  member replace OLD NEW   replace member OLD by the empty node NEW\n"
		"                           (NEW may be OLD's URL: a node that came back\n"
		"                           empty); member commands resume an\n"
		"                           interrupted change when run again\n"
		"\n"
		"options:\n"
		"  --nodes URLS      comma-separated acceptor URLs (default: $CAS_NODES)\n"
		"  --timeout SECONDS deadline of the operation, fractions allowed (default 5)\n"
		"  --tls-ca FILE     CA certificates (PEM) the nodes' certificates must chain\n"
		"                    to; node URLs are then https:// (default: $CAS_TLS_CA)\n"
		"  --tls-cert FILE   this client's certificate (PEM), for nodes that check\n"
		"                    client certificates (default: $CAS_TLS_CERT)\n"
		"  --tls-key FILE    its unencrypted private key (PEM) (default: $CAS_TLS_KEY)\n"
		"  --token-file FILE the cluster's shared token: the file, less a newline;\n"
		"                    others must not read it (default: $CAS_TOKEN_FILE)\n"
		"  --help, --version\n"
		"\n"
		"exit status: 0 success, 1 other error, 2 bad usage or input (bad key,\n"
		"unreadable file, value too large, bad number, a missing or unreadable\n"
		"TLS or token file), 3 version mismatch (the\n"
		"current version is printed on stderr), 4 no majority before the deadline\n"
		"(gc: a node did not answer)\n",
		prog);
}

int casctl_exit_code(int rc)
{
	switch (rc) {
	case CAS_OK:
		return 0;
	case CAS_EKEY:
	case CAS_EINVAL:
	case CAS_ETOOBIG:
		return EXIT_USAGE;
	case CAS_EVERSION:
		return EXIT_VERSION;
	case CAS_EUNAVAILABLE:
		return EXIT_UNAVAILABLE;
	default:
		return EXIT_OTHER;
	}
}

/* Reports rc for command cmd on key; returns the exit status. */
static int fail(struct cas_client *c, const char *cmd, const char *key, int rc)
{
	char why[256] = "";

	if (rc == CAS_EUNAVAILABLE || rc == CAS_EINVAL || rc == CAS_EPROTO || rc == CAS_EIO)
		cas_client_errmsg(c, why, sizeof(why));
	fprintf(stderr, "%s: %s %s: %s%s%s\n", prog, cmd, key, cas_strerror(rc), why[0] ? ": " : "",
		why);
	return casctl_exit_code(rc);
}

/* Parses a decimal uint64 with nothing around it. */
static bool parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*out = v;
	return true;
}

/* Parses SECONDS (> 0, fractions allowed) into milliseconds, rounded up. */
static bool parse_timeout(const char *s, unsigned *ms)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(d > 0) || d > 86400.0 * 30)
		return false;
	*ms = (unsigned)(d * 1000.0);
	if ((double)*ms < d * 1000.0)
		(*ms)++;
	return true;
}

/* Reads all of path ("-" or NULL: stdin), at most max bytes. CAS_ETOOBIG
 * past max; CAS_EINVAL when it cannot be read (errno-based message on
 * stderr). *data is malloc'd (may be NULL when *len is 0). */
static int read_input(const char *path, size_t max, unsigned char **data, size_t *len)
{
	FILE *f = stdin;
	unsigned char *buf = NULL, *p;
	size_t n = 0, cap = 0, got;
	int rc = CAS_OK;

	if (path != NULL && strcmp(path, "-") != 0) {
		f = fopen(path, "rb");
		if (f == NULL) {
			fprintf(stderr, "%s: cannot open %s: %s\n", prog, path, strerror(errno));
			return CAS_EINVAL;
		}
	}
	for (;;) {
		if (n == cap) {
			/* One byte past max tells "too large" from "exactly max". */
			if (cap > max) {
				fprintf(stderr, "%s: %s is larger than %zu bytes\n", prog,
					path ? path : "stdin", max);
				rc = CAS_ETOOBIG;
				goto out_close;
			}
			cap = cap ? cap * 2 : 64 * 1024;
			if (cap > max + 1)
				cap = max + 1;
			p = realloc(buf, cap);
			if (p == NULL) {
				fprintf(stderr, "%s: out of memory\n", prog);
				rc = CAS_ENOMEM;
				goto out_close;
			}
			buf = p;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (got == 0) {
			if (ferror(f)) {
				fprintf(stderr, "%s: cannot read %s: %s\n", prog,
					path ? path : "stdin", strerror(errno));
				rc = CAS_EINVAL;
			}
			break;
		}
	}
	if (rc == CAS_OK && n > max) {
		fprintf(stderr, "%s: %s is larger than %zu bytes\n", prog, path ? path : "stdin",
			max);
		rc = CAS_ETOOBIG;
	}
out_close:
	if (f != stdin)
		fclose(f);
	if (rc != CAS_OK) {
		free(buf);
		return rc;
	}
	*data = buf;
	*len = n;
	return CAS_OK;
}

static int cmd_get(struct cas_client *c, const char *key, unsigned timeout_ms)
{
	struct cas_value v;
	int rc;

	rc = cas_read(c, key, timeout_ms, &v);
	if (rc != CAS_OK)
		return fail(c, "get", key, rc);
	if ((v.len > 0 && fwrite(v.data, 1, v.len, stdout) != v.len) || fflush(stdout) != 0) {
		fprintf(stderr, "%s: get %s: writing stdout: %s\n", prog, key, strerror(errno));
		cas_value_clear(&v);
		return EXIT_OTHER;
	}
	cas_value_clear(&v);
	return 0;
}

static int cmd_version(struct cas_client *c, const char *key, unsigned timeout_ms)
{
	struct cas_value v;
	int rc;

	rc = cas_read(c, key, timeout_ms, &v);
	if (rc != CAS_OK)
		return fail(c, "version", key, rc);
	printf("%llu\n", (unsigned long long)v.version);
	cas_value_clear(&v);
	return 0;
}

static int cmd_delete(struct cas_client *c, const char *key, bool conditional, uint64_t expected,
		      unsigned timeout_ms)
{
	uint64_t version = 0;
	int rc;

	if (conditional)
		rc = cas_delete_version(c, key, expected, timeout_ms, &version);
	else
		rc = cas_delete(c, key, NULL, NULL, timeout_ms, NULL);
	if (rc == CAS_EVERSION) {
		fprintf(stderr, "%s: delete %s: version is %llu, not %llu\n", prog, key,
			(unsigned long long)version, (unsigned long long)expected);
		return EXIT_VERSION;
	}
	if (rc != CAS_OK)
		return fail(c, "delete", key, rc);
	return 0;
}

static int cmd_write(struct cas_client *c, const char *cmd, const char *key, bool conditional,
		     uint64_t expected, const char *path, unsigned timeout_ms)
{
	unsigned char *data = NULL;
	uint64_t version = 0;
	size_t len = 0;
	int rc;

	rc = read_input(path, CAS_DEFAULT_MAX_VALUE, &data, &len);
	if (rc != CAS_OK)
		return casctl_exit_code(rc);
	if (conditional)
		rc = cas_cas(c, key, expected, data, len, timeout_ms, &version);
	else
		rc = cas_put(c, key, data, len, timeout_ms, &version);
	free(data);
	if (rc == CAS_EVERSION) {
		fprintf(stderr, "%s: %s %s: version is %llu, not %llu\n", prog, cmd, key,
			(unsigned long long)version, (unsigned long long)expected);
		return EXIT_VERSION;
	}
	if (rc != CAS_OK)
		return fail(c, cmd, key, rc);
	printf("%llu\n", (unsigned long long)version);
	return 0;
}

/* Checks that cmd got between min and max arguments. */
static bool nargs(const char *cmd, int have, int min, int max)
{
	if (have >= min && have <= max)
		return true;
	fprintf(stderr, "%s: %s takes %d to %d arguments, not %d (see --help)\n", prog, cmd, min,
		max, have);
	return false;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"nodes", required_argument, NULL, 'n'},
		{"timeout", required_argument, NULL, 't'},
		{"tls-ca", required_argument, NULL, 'A'},
		{"tls-cert", required_argument, NULL, 'C'},
		{"tls-key", required_argument, NULL, 'K'},
		{"token-file", required_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct cas_client_config cfg = {0};
	struct cas_auth_config *ac = &casctl_auth_cfg;
	struct cas_auth *auth;
	struct cas_client *c;
	const char *nodes = getenv("CAS_NODES");
	const char *cmd, *key;
	char errmsg[256];
	unsigned timeout_ms = 5000;
	uint64_t expected = 0;
	int opt, rc, nargs_left;

	ac->tls_ca = getenv("CAS_TLS_CA");
	ac->tls_cert = getenv("CAS_TLS_CERT");
	ac->tls_key = getenv("CAS_TLS_KEY");
	ac->token_file = getenv("CAS_TOKEN_FILE");
	while ((opt = getopt_long(argc, argv, "+n:t:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			nodes = optarg;
			break;
		case 'A':
			ac->tls_ca = optarg;
			break;
		case 'C':
			ac->tls_cert = optarg;
			break;
		case 'K':
			ac->tls_key = optarg;
			break;
		case 'T':
			ac->token_file = optarg;
			break;
		case 't':
			if (!parse_timeout(optarg, &timeout_ms)) {
				fprintf(stderr, "%s: bad --timeout \"%s\": want seconds > 0\n",
					prog, optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("casctl %s\n", CAS_VERSION_STRING);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "%s: no command (see --help)\n", prog);
		return EXIT_USAGE;
	}
	cmd = argv[optind];
	nargs_left = argc - optind - 1;
	key = nargs_left > 0 ? argv[optind + 1] : "";

	if (strcmp(cmd, "get") == 0 || strcmp(cmd, "version") == 0) {
		if (!nargs(cmd, nargs_left, 1, 1))
			return EXIT_USAGE;
	} else if (strcmp(cmd, "put") == 0) {
		if (!nargs(cmd, nargs_left, 1, 2))
			return EXIT_USAGE;
	} else if (strcmp(cmd, "cas") == 0) {
		if (!nargs(cmd, nargs_left, 2, 3))
			return EXIT_USAGE;
		if (!parse_u64(argv[optind + 2], &expected)) {
			fprintf(stderr, "%s: cas: bad version \"%s\": want a decimal number\n",
				prog, argv[optind + 2]);
			return EXIT_USAGE;
		}
	} else if (strcmp(cmd, "delete") == 0) {
		if (!nargs(cmd, nargs_left, 1, 2))
			return EXIT_USAGE;
		if (nargs_left == 2 && !parse_u64(argv[optind + 2], &expected)) {
			fprintf(stderr, "%s: delete: bad version \"%s\": want a decimal number\n",
				prog, argv[optind + 2]);
			return EXIT_USAGE;
		}
	} else if (strcmp(cmd, "gc") == 0) {
		if (!nargs(cmd, nargs_left, 0, 3))
			return EXIT_USAGE;
	} else if (strcmp(cmd, "status") == 0) {
		if (!nargs(cmd, nargs_left, 0, 1))
			return EXIT_USAGE;
		if (nargs_left == 1 && strcmp(key, "--json") != 0) {
			fprintf(stderr, "%s: status: unknown option \"%s\" (see --help)\n", prog,
				key);
			return EXIT_USAGE;
		}
	} else if (strcmp(cmd, "init") == 0) {
		if (!nargs(cmd, nargs_left, 0, 0))
			return EXIT_USAGE;
	} else if (strcmp(cmd, "dump") == 0 || strcmp(cmd, "restore") == 0) {
		if (!nargs(cmd, nargs_left, 1, 1))
			return EXIT_USAGE;
	} else if (strcmp(cmd, "member") == 0) {
		if (!nargs(cmd, nargs_left, 1, 3))
			return EXIT_USAGE;
	} else {
		fprintf(stderr, "%s: unknown command \"%s\" (see --help)\n", prog, cmd);
		return EXIT_USAGE;
	}
	/* Before any I/O, and before reading stdin for put. */
	if (strcmp(cmd, "status") != 0 && strcmp(cmd, "init") != 0 && strcmp(cmd, "member") != 0 &&
	    strcmp(cmd, "dump") != 0 && strcmp(cmd, "restore") != 0 && strcmp(cmd, "gc") != 0 &&
	    !cas_key_valid(key, strlen(key))) {
		fprintf(stderr, "%s: %s: bad key \"%s\": want 1 to %d of A-Z a-z 0-9 . _ : / @ -\n",
			prog, cmd, key, CAS_KEY_MAX);
		return EXIT_USAGE;
	}
	if (nodes == NULL || nodes[0] == '\0') {
		fprintf(stderr, "%s: no nodes: pass --nodes or set CAS_NODES\n", prog);
		return EXIT_USAGE;
	}

	/* The files are read once here: a missing one fails before any
	 * request, whatever the command. */
	rc = cas_auth_load(ac, &auth, errmsg, sizeof(errmsg));
	if (rc != CAS_OK) {
		fprintf(stderr, "%s: %s\n", prog, errmsg);
		return casctl_exit_code(rc);
	}
	casctl_auth = auth;
	if (strcmp(cmd, "init") == 0) {
		rc = casctl_init(nodes, timeout_ms);
		goto out_free_auth;
	}
	if (strcmp(cmd, "member") == 0) {
		rc = casctl_member(nodes, timeout_ms, nargs_left, argv + optind + 1);
		goto out_free_auth;
	}
	if (strcmp(cmd, "dump") == 0 || strcmp(cmd, "restore") == 0) {
		rc = cmd[0] == 'd' ? casctl_dump(nodes, timeout_ms, key)
				   : casctl_restore(nodes, timeout_ms, key);
		goto out_free_auth;
	}

	cfg.timeout_ms = timeout_ms;
	cfg.auth = *ac;
	rc = cas_client_open(nodes, &cfg, &c, errmsg, sizeof(errmsg));
	if (rc != CAS_OK) {
		fprintf(stderr, "%s: %s\n", prog, errmsg);
		rc = casctl_exit_code(rc);
		goto out_free_auth;
	}

	if (strcmp(cmd, "get") == 0)
		rc = cmd_get(c, key, timeout_ms);
	else if (strcmp(cmd, "version") == 0)
		rc = cmd_version(c, key, timeout_ms);
	else if (strcmp(cmd, "put") == 0)
		rc = cmd_write(c, cmd, key, false, 0, nargs_left > 1 ? argv[optind + 2] : NULL,
			       timeout_ms);
	else if (strcmp(cmd, "cas") == 0)
		rc = cmd_write(c, cmd, key, true, expected,
			       nargs_left > 2 ? argv[optind + 3] : NULL, timeout_ms);
	else if (strcmp(cmd, "delete") == 0)
		rc = cmd_delete(c, key, nargs_left == 2, expected, timeout_ms);
	else if (strcmp(cmd, "gc") == 0)
		rc = casctl_gc(c, nodes, &cfg, timeout_ms, nargs_left, argv + optind + 1);
	else
		rc = casctl_status(c, timeout_ms, nargs_left == 1);

	cas_client_close(c);
out_free_auth:
	cas_auth_free(auth);
	return rc;
}

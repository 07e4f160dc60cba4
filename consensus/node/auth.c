/* auth.c - casd's authentication of requests: the shared token (auth.h),
 * the one check of every request once its headers are in
 * (cas_http_authorize, http_impl.h), and what a server takes of TLS and
 * the token at start, refusing to listen beyond loopback unprotected. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>

#include "auth.h"
#include "cas/cas.h"
#include "http_impl.h"
#include "metrics.h"
#include "conns.h"
#include "tls.h"

#define BEARER "Bearer "

/* The token's bytes in buf, minus one trailing newline; errors as
 * cas_token_read's. */
static int load(const char *path, char *buf, size_t *len, char *errmsg, size_t errmsg_len)
{
	struct stat st;
	ssize_t n;
	int fd;

	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		snprintf(errmsg, errmsg_len, "cannot read --token-file %s: %s", path,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return CAS_EIO;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & (S_IROTH | S_IWOTH))) {
		snprintf(errmsg, errmsg_len, "--token-file %s: %s", path,
			 S_ISREG(st.st_mode) ? "others may read or write it (chmod o-rw)"
					     : "not a regular file");
		close(fd);
		return CAS_EIO;
	}
	while (*len <= CAS_TOKEN_FILE_MAX) {
		n = read(fd, buf + *len, CAS_TOKEN_FILE_MAX + 1 - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(errmsg, errmsg_len, "cannot read --token-file %s: %s", path,
				 strerror(errno));
			close(fd);
			return CAS_EIO;
		}
		if (n == 0)
			break;
		*len += (size_t)n;
	}
	close(fd);
	if (*len > CAS_TOKEN_FILE_MAX) {
		snprintf(errmsg, errmsg_len, "--token-file %s: longer than %d bytes", path,
			 CAS_TOKEN_FILE_MAX);
		return CAS_EINVAL;
	}
	if (*len && buf[*len - 1] == '\n') {
		(*len)--;
		if (*len && buf[*len - 1] == '\r')
			(*len)--;
	}
	return CAS_OK;
}

int cas_token_read(const char *path, struct cas_token *out, char *warn, size_t warn_len,
		   char *errmsg, size_t errmsg_len)
{
	char buf[CAS_TOKEN_FILE_MAX + 1];
	size_t len, i;
	int err;

	if (warn && warn_len)
		*warn = '\0';
	err = load(path, buf, &len, errmsg, errmsg_len);
	if (err)
		goto out_wipe;
	if (!len) {
		snprintf(errmsg, errmsg_len, "--token-file %s: empty token", path);
		err = CAS_EINVAL;
		goto out_wipe;
	}
	for (i = 0; i < len; i++) {
		if (buf[i] < 0x21 || buf[i] > 0x7e) {
			snprintf(errmsg, errmsg_len,
				 "--token-file %s: the token must be printable ASCII without "
				 "spaces (byte %zu is not)",
				 path, i + 1);
			err = CAS_EINVAL;
			goto out_wipe;
		}
	}
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, buf, len, out->digest) < 0) {
		snprintf(errmsg, errmsg_len, "--token-file %s: cannot hash the token", path);
		err = CAS_EIO;
		goto out_wipe;
	}
	if (len < CAS_TOKEN_WEAK && warn && warn_len)
		snprintf(warn, warn_len,
			 "--token-file %s: the token has %zu characters; use %d or more "
			 "random ones (openssl rand -hex 32)",
			 path, len, CAS_TOKEN_WEAK);

out_wipe:
	explicit_bzero(buf, sizeof(buf));
	return err;
}

bool cas_token_matches(const struct cas_token *t, const char *presented, size_t len)
{
	unsigned char digest[sizeof(t->digest)];
	volatile unsigned char diff = 0;
	size_t i;

	/* Digests of equal length whatever was sent: the comparison learns
	 * nothing from where the first difference is, nor from lengths. */
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, presented, len, digest) < 0)
		return false;
	for (i = 0; i < sizeof(digest); i++)
		diff |= digest[i] ^ t->digest[i];
	explicit_bzero(digest, sizeof(digest));
	return diff == 0;
}

/* Counts the Authorization headers, to refuse one sent twice. */
static enum MHD_Result count_authorization(void *cls, enum MHD_ValueKind kind, const char *key,
					   const char *value)
{
	unsigned *n = cls;

	(void)kind;
	(void)value;
	if (strcasecmp(key, MHD_HTTP_HEADER_AUTHORIZATION) == 0)
		(*n)++;
	return MHD_YES;
}

/* Whether the request carries the token; why not in *reason. */
static bool has_token(struct cas_server *s, struct MHD_Connection *conn, const char **reason)
{
	const char *v;
	unsigned n = 0;

	MHD_get_connection_values(conn, MHD_HEADER_KIND, count_authorization, &n);
	if (n == 0) {
		*reason = "missing token (Authorization: Bearer TOKEN)";
		return false;
	}
	if (n > 1) {
		*reason = "header Authorization sent twice";
		return false;
	}
	v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!v || strncasecmp(v, BEARER, strlen(BEARER))) {
		*reason = "Authorization is not \"Bearer TOKEN\"";
		return false;
	}
	v += strlen(BEARER);
	if (!cas_token_matches(s->token, v, strlen(v))) {
		*reason = "wrong token";
		return false;
	}
	return true;
}

bool cas_http_authorize(struct cas_server *s, struct MHD_Connection *conn, enum route route,
			unsigned *status, const char **reason)
{
	struct cas_conn *c;
	char why[256];

	*status = 0;
	*reason = NULL;
	if (s->client_certs) {
		c = cas_conns_conn(conn);
		if (!c || !c->verified) {
			/* The handshake let no other through; checked once
			 * more, on the first request of each connection. */
			if (!cas_tls_peer_verified(conn, why, sizeof(why))) {
				char peer[CAS_PEER_LEN];

				cas_metrics_refused(CAS_METRICS_CERTIFICATE);
				cas_http_peer(conn, peer, sizeof(peer));
				cas_http_log_limited(s, CAS_LOG_CERT, CAS_SERVER_LOG_WARN,
						     "request from %s dropped: %s", peer, why);
				return false;
			}
			if (c)
				c->verified = true;
		}
	}
	if (s->token && route != ROUTE_HEALTH && !has_token(s, conn, reason)) {
		cas_metrics_refused(CAS_METRICS_TOKEN);
		*status = MHD_HTTP_UNAUTHORIZED;
		return false;
	}
	return true;
}

/* Whether addr is loopback: 127.0.0.0/8, ::1, or 127.0.0.0/8 mapped into
 * IPv6. */
static bool is_loopback(const struct sockaddr_storage *addr)
{
	if (addr->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)addr)->sin_addr.s_addr) >> 24) == 127;
	if (addr->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)addr)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

/* The numeric text of addr's address, for messages. */
static void addr_string(const struct sockaddr_storage *addr, char *buf, size_t len)
{
	const void *bytes = addr->ss_family == AF_INET6
				    ? (const void *)&((const struct sockaddr_in6 *)addr)->sin6_addr
				    : (const void *)&((const struct sockaddr_in *)addr)->sin_addr;

	if (!inet_ntop(addr->ss_family, bytes, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

int cas_http_take_security(struct cas_server *s, const struct cas_server_config *cfg,
			   const struct sockaddr_storage *addr, char *errmsg, size_t errmsg_len)
{
	char warn[256], where[INET6_ADDRSTRLEN];
	int err;

	if (!cfg->tls_cert != !cfg->tls_key) {
		snprintf(errmsg, errmsg_len, "TLS needs both a certificate and its key");
		return CAS_EINVAL;
	}
	if (cfg->tls_ca && !cfg->tls_cert) {
		snprintf(errmsg, errmsg_len,
			 "client certificates need TLS: the node's certificate and key");
		return CAS_EINVAL;
	}
	if (cfg->tls_cert) {
		err = cas_tls_check(cfg->tls_cert, cfg->tls_key, cfg->tls_ca, warn, sizeof(warn),
				    errmsg, errmsg_len);
		if (err)
			return err;
		if (*warn)
			cas_http_log(s, CAS_SERVER_LOG_WARN, "%s", warn);
		s->tls_cert = strdup(cfg->tls_cert);
		s->tls_key = strdup(cfg->tls_key);
		s->tls_ca = cfg->tls_ca ? strdup(cfg->tls_ca) : NULL;
		if (!s->tls_cert || !s->tls_key || (cfg->tls_ca && !s->tls_ca)) {
			snprintf(errmsg, errmsg_len, "out of memory");
			return CAS_ENOMEM;
		}
		s->tls = true;
		s->client_certs = cfg->tls_ca != NULL;
	}
	if (cfg->token) {
		s->token = malloc(sizeof(*s->token));
		if (!s->token) {
			snprintf(errmsg, errmsg_len, "out of memory");
			return CAS_ENOMEM;
		}
		*s->token = *cfg->token;
	}
	addr_string(addr, where, sizeof(where));
	if (!is_loopback(addr) && !s->client_certs && !s->token) {
		if (!cfg->insecure) {
			snprintf(
				errmsg, errmsg_len,
				"refusing to listen on %s: it is not loopback, and clients would "
				"need neither a certificate (--tls-ca) nor a token (--token-file); "
				"--insecure to do it all the same",
				where);
			return CAS_EINVAL;
		}
		cas_http_log(s, CAS_SERVER_LOG_WARN,
			     "--insecure: listening on %s with neither client certificates nor a "
			     "token: anyone who reaches it can read and change every register",
			     where);
	} else if (cfg->insecure) {
		cas_http_log(s, CAS_SERVER_LOG_WARN, "--insecure given, and not needed: %s",
			     !is_loopback(addr) ? "clients authenticate" : "loopback only");
	}
	return CAS_OK;
}

void cas_http_free_security(struct cas_server *s)
{
	free(s->tls_cert);
	cas_tls_free_pem(s->tls_key);
	free(s->tls_ca);
	if (s->token)
		explicit_bzero(s->token, sizeof(*s->token));
	free(s->token);
}

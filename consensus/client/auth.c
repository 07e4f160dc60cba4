/* auth.c - loading the client's TLS files and shared token (cas/admin.h)
 * and applying them to libcurl handles (auth.h). Every file is read once
 * here, so that a missing or unreadable one fails at start with its name,
 * not later at a connection with libcurl's words. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "errmsg.h"

/* Largest certificate, key or CA file taken, and largest token file. */
#define PEM_FILE_MAX   (4u << 20)
#define TOKEN_FILE_MAX 4096u

struct cas_auth {
	unsigned refs;	       /* cas_auth_ref's, and the loader's (atomic) */
	char *ca, *cert, *key; /* absolute names, or NULL */
	char *header;	       /* "Authorization: Bearer TOKEN", or NULL */
	size_t header_len;
};

static bool set(const char *s)
{
	return s != NULL && s[0] != '\0';
}

/* Reads all of path (what names it in messages) into *buf (malloc'd,
 * NUL-terminated), at most max bytes. */
static int read_file(const char *what, const char *path, size_t max, char **buf, size_t *len,
		     char *errmsg, size_t errmsg_len)
{
	struct stat st;
	char *b;
	size_t n = 0;
	ssize_t got;
	int fd, rc = CAS_EINVAL;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		cas_errmsg_set(errmsg, errmsg_len, "cannot read the %s %s: %s", what, path,
			       strerror(errno));
		return CAS_EINVAL;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		cas_errmsg_set(errmsg, errmsg_len, "cannot read the %s %s: not a regular file",
			       what, path);
		goto out_close;
	}
	if ((size_t)st.st_size > max) {
		cas_errmsg_set(errmsg, errmsg_len, "the %s %s is larger than %zu bytes", what, path,
			       max);
		goto out_close;
	}
	b = malloc((size_t)st.st_size + 1);
	if (b == NULL) {
		cas_errmsg_set(errmsg, errmsg_len, "out of memory");
		rc = CAS_ENOMEM;
		goto out_close;
	}
	while (n < (size_t)st.st_size) {
		got = read(fd, b + n, (size_t)st.st_size - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			cas_errmsg_set(errmsg, errmsg_len, "cannot read the %s %s: %s", what, path,
				       got < 0 ? strerror(errno) : "it shrank while read");
			explicit_bzero(b, n);
			free(b);
			goto out_close;
		}
		n += (size_t)got;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	rc = CAS_OK;
out_close:
	close(fd);
	return rc;
}

/* Checks that the PEM file path holds a block of one of the kinds (each
 * a "-----BEGIN " suffix such as "CERTIFICATE-----") and sets *abs to
 * its absolute name (malloc'd): libcurl opens it again for every new
 * connection, and casfs changes its directory to / once daemonized. */
static int load_pem(const char *what, const char *path, const char *const *kinds, char **abs,
		    char *errmsg, size_t errmsg_len)
{
	char *buf, *p;
	size_t len;
	bool found = false;
	int rc;

	rc = read_file(what, path, PEM_FILE_MAX, &buf, &len, errmsg, errmsg_len);
	if (rc != CAS_OK)
		return rc;
	for (p = buf; !found && (p = strstr(p, "-----BEGIN ")) != NULL; p += 11)
		for (size_t i = 0; kinds[i] != NULL && !found; i++)
			found = strncmp(p + 11, kinds[i], strlen(kinds[i])) == 0;
	explicit_bzero(buf, len);
	free(buf);
	if (!found) {
		cas_errmsg_set(errmsg, errmsg_len, "the %s %s holds no PEM %s", what, path,
			       kinds[0]);
		return CAS_EINVAL;
	}
	*abs = realpath(path, NULL);
	if (*abs == NULL) {
		cas_errmsg_set(errmsg, errmsg_len, "cannot resolve the %s %s: %s", what, path,
			       strerror(errno));
		return errno == ENOMEM ? CAS_ENOMEM : CAS_EINVAL;
	}
	return CAS_OK;
}

/* The token, as casd reads its own (PROTOCOL.md, "Authentication"): the
 * file's bytes less one trailing newline (LF or CRLF), 1 to
 * TOKEN_FILE_MAX visible ASCII characters, what a header carries without
 * quoting; a regular file that others cannot read or write. */
static int load_token(const char *path, char **header, size_t *header_len, char *errmsg,
		      size_t errmsg_len)
{
	struct stat st;
	char *buf;
	size_t len, n;
	int rc;

	if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & (S_IROTH | S_IWOTH))) {
		cas_errmsg_set(errmsg, errmsg_len,
			       "the token file %s: others may read or write it (chmod o-rw)", path);
		return CAS_EINVAL;
	}
	rc = read_file("token file", path, TOKEN_FILE_MAX, &buf, &len, errmsg, errmsg_len);
	if (rc != CAS_OK)
		return rc;
	n = len;
	if (n > 0 && buf[n - 1] == '\n') {
		n--;
		if (n > 0 && buf[n - 1] == '\r')
			n--;
	}
	rc = CAS_EINVAL;
	if (n == 0) {
		cas_errmsg_set(errmsg, errmsg_len, "the token file %s is empty", path);
		goto out_wipe;
	}
	for (size_t i = 0; i < n; i++) {
		if (buf[i] < 0x21 || buf[i] > 0x7e) {
			cas_errmsg_set(errmsg, errmsg_len,
				       "the token file %s: the token must be printable ASCII "
				       "without spaces, on one line (byte %zu is not)",
				       path, i + 1);
			goto out_wipe;
		}
	}
	*header_len = strlen(CAS_TOKEN_HEADER ": " CAS_TOKEN_SCHEME " ") + n + 1;
	*header = malloc(*header_len);
	if (*header == NULL) {
		cas_errmsg_set(errmsg, errmsg_len, "out of memory");
		rc = CAS_ENOMEM;
		goto out_wipe;
	}
	snprintf(*header, *header_len, "%s: %s %.*s", CAS_TOKEN_HEADER, CAS_TOKEN_SCHEME, (int)n,
		 buf);
	rc = CAS_OK;
out_wipe:
	explicit_bzero(buf, len);
	free(buf);
	return rc;
}

int cas_auth_load(const struct cas_auth_config *cfg, struct cas_auth **out, char *errmsg,
		  size_t errmsg_len)
{
	static const char *const ca_kinds[] = {"CERTIFICATE-----", "TRUSTED CERTIFICATE-----",
					       NULL};
	static const char *const cert_kinds[] = {"CERTIFICATE-----", NULL};
	static const char *const key_kinds[] = {"PRIVATE KEY-----", "RSA PRIVATE KEY-----",
						"EC PRIVATE KEY-----", NULL};
	struct cas_auth *a;
	int rc = CAS_OK;

	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		cas_errmsg_set(errmsg, errmsg_len, "out of memory");
		return CAS_ENOMEM;
	}
	a->refs = 1;
	if (cfg == NULL)
		goto out_done;
	if (set(cfg->tls_cert) != set(cfg->tls_key)) {
		cas_errmsg_set(errmsg, errmsg_len, "%s",
			       set(cfg->tls_cert) ? "a TLS client certificate needs its key too"
						  : "a TLS client key needs its certificate too");
		rc = CAS_EINVAL;
		goto out_free;
	}
	if (set(cfg->tls_ca))
		rc = load_pem("TLS CA file", cfg->tls_ca, ca_kinds, &a->ca, errmsg, errmsg_len);
	if (rc == CAS_OK && set(cfg->tls_cert))
		rc = load_pem("TLS certificate file", cfg->tls_cert, cert_kinds, &a->cert, errmsg,
			      errmsg_len);
	if (rc == CAS_OK && set(cfg->tls_key))
		rc = load_pem("TLS key file", cfg->tls_key, key_kinds, &a->key, errmsg, errmsg_len);
	if (rc == CAS_OK && set(cfg->token_file))
		rc = load_token(cfg->token_file, &a->header, &a->header_len, errmsg, errmsg_len);
	if (rc != CAS_OK)
		goto out_free;
out_done:
	*out = a;
	return CAS_OK;
out_free:
	cas_auth_free(a);
	return rc;
}

struct cas_auth *cas_auth_ref(struct cas_auth *a)
{
	if (a != NULL)
		__atomic_add_fetch(&a->refs, 1, __ATOMIC_RELAXED);
	return a;
}

void cas_auth_free(struct cas_auth *a)
{
	if (a == NULL || __atomic_sub_fetch(&a->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	free(a->ca);
	free(a->cert);
	free(a->key);
	if (a->header != NULL)
		explicit_bzero(a->header, a->header_len);
	free(a->header);
	free(a);
}

bool cas_auth_tls(const struct cas_auth *a)
{
	return a != NULL && (a->ca != NULL || a->cert != NULL);
}

void cas_auth_apply(const struct cas_auth *a, CURL *easy)
{
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	if (a == NULL)
		return;
	if (a->ca != NULL) {
		curl_easy_setopt(easy, CURLOPT_CAINFO, a->ca);
		curl_easy_setopt(easy, CURLOPT_CAPATH, NULL);
	}
	if (a->cert != NULL) {
		curl_easy_setopt(easy, CURLOPT_SSLCERT, a->cert);
		curl_easy_setopt(easy, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(easy, CURLOPT_SSLKEY, a->key);
		curl_easy_setopt(easy, CURLOPT_SSLKEYTYPE, "PEM");
	}
	if (cas_auth_tls(a))
		curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "https");
}

const char *cas_auth_header(const struct cas_auth *a)
{
	return a != NULL ? a->header : NULL;
}

const char *cas_auth_hint(const struct cas_auth *a, const char *url, CURLcode cc)
{
	if (strncmp(url, "https://", 8) != 0 ||
	    (cc != CURLE_GOT_NOTHING && cc != CURLE_RECV_ERROR && cc != CURLE_SEND_ERROR &&
	     cc != CURLE_SSL_CONNECT_ERROR))
		return "";
	if (a == NULL || a->cert == NULL)
		return " (no client certificate was given: does the node ask for one?)";
	return " (did the node refuse the client certificate? its log says)";
}

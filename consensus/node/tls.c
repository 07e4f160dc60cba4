/* tls.c - casd's TLS: files read at start, client certificates checked in
 * the handshake (tls.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "cas/cas.h"
#include "http_impl.h"
#include "metrics.h"
#include "conns.h"
#include "tls.h"

/* The largest PEM file read: a long chain fits with room to spare. */
#define PEM_MAX ((size_t)1 << 20)

int cas_tls_read_pem(const char *path, const char *option, char **out, char *errmsg,
		     size_t errmsg_len)
{
	struct stat st;
	size_t len = 0;
	ssize_t n;
	char *buf;
	int fd;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st)) {
		snprintf(errmsg, errmsg_len, "cannot read %s %s: %s", option, path,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return CAS_EIO;
	}
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size > PEM_MAX) {
		snprintf(errmsg, errmsg_len, "cannot read %s %s: %s", option, path,
			 S_ISREG(st.st_mode) ? "larger than 1 MiB" : "not a regular file");
		close(fd);
		return CAS_EIO;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		snprintf(errmsg, errmsg_len, "out of memory reading %s", option);
		close(fd);
		return CAS_ENOMEM;
	}
	while (len < (size_t)st.st_size) {
		n = read(fd, buf + len, (size_t)st.st_size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(errmsg, errmsg_len, "cannot read %s %s: %s", option, path,
				 n ? strerror(errno) : "shorter than its size");
			close(fd);
			cas_tls_free_pem(buf);
			return CAS_EIO;
		}
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	if (!strstr(buf, "-----BEGIN ")) {
		snprintf(errmsg, errmsg_len, "%s %s: not PEM (no -----BEGIN line)", option, path);
		cas_tls_free_pem(buf);
		return CAS_EIO;
	}
	*out = buf;
	return CAS_OK;
}

void cas_tls_free_pem(char *pem)
{
	if (!pem)
		return;
	explicit_bzero(pem, strlen(pem));
	free(pem);
}

/* A warning when the first certificate of pem is out of its dates. */
static void check_dates(const char *pem, char *warn, size_t warn_len)
{
	gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
	gnutls_x509_crt_t crt;
	time_t now = time(NULL), t;
	char when[32];

	if (gnutls_x509_crt_init(&crt) < 0)
		return;
	if (gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM) >= 0) {
		t = gnutls_x509_crt_get_expiration_time(crt);
		if (t != (time_t)-1 && t < now) {
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", gmtime(&t));
			snprintf(warn, warn_len,
				 "--tls-cert expired on %s: clients will refuse this node", when);
		}
		t = gnutls_x509_crt_get_activation_time(crt);
		if (t != (time_t)-1 && t > now) {
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", gmtime(&t));
			snprintf(warn, warn_len,
				 "--tls-cert is not valid before %s: clients will refuse this node",
				 when);
		}
	}
	gnutls_x509_crt_deinit(crt);
}

int cas_tls_check(const char *cert, const char *key, const char *ca, char *warn, size_t warn_len,
		  char *errmsg, size_t errmsg_len)
{
	gnutls_datum_t c = {(unsigned char *)cert, (unsigned)strlen(cert)};
	gnutls_datum_t k = {(unsigned char *)key, (unsigned)strlen(key)};
	gnutls_certificate_credentials_t cred;
	int rc, err = CAS_OK;

	if (warn && warn_len)
		*warn = '\0';
	rc = gnutls_certificate_allocate_credentials(&cred);
	if (rc < 0) {
		snprintf(errmsg, errmsg_len, "TLS: %s", gnutls_strerror(rc));
		return CAS_ENOMEM;
	}
	rc = gnutls_certificate_set_x509_key_mem(cred, &c, &k, GNUTLS_X509_FMT_PEM);
	if (rc < 0) {
		snprintf(errmsg, errmsg_len, "--tls-cert and --tls-key: %s", gnutls_strerror(rc));
		err = CAS_EINVAL;
		goto out_free;
	}
	if (ca) {
		gnutls_datum_t a = {(unsigned char *)ca, (unsigned)strlen(ca)};

		rc = gnutls_certificate_set_x509_trust_mem(cred, &a, GNUTLS_X509_FMT_PEM);
		if (rc <= 0) {
			snprintf(errmsg, errmsg_len, "--tls-ca: %s",
				 rc ? gnutls_strerror(rc) : "no certificate in it");
			err = CAS_EINVAL;
			goto out_free;
		}
	}
	if (warn && warn_len)
		check_dates(cert, warn, warn_len);

out_free:
	gnutls_certificate_free_credentials(cred);
	return err;
}

/* Whether session's peer presented a certificate for TLS client use that
 * verifies against the trusted authority, and why not. */
static bool verified(gnutls_session_t session, char *why, size_t why_len)
{
	gnutls_typed_vdata_st purpose = {
		.type = GNUTLS_DT_KEY_PURPOSE_OID,
		.data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT,
	};
	gnutls_datum_t text;
	unsigned status = 0;
	int rc;

	rc = gnutls_certificate_verify_peers(session, &purpose, 1, &status);
	if (rc == GNUTLS_E_NO_CERTIFICATE_FOUND) {
		snprintf(why, why_len, "no client certificate");
		return false;
	}
	if (rc < 0) {
		snprintf(why, why_len, "client certificate: %s", gnutls_strerror(rc));
		return false;
	}
	if (!status)
		return true;
	if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) >= 0) {
		snprintf(why, why_len, "client certificate: %s", text.data);
		gnutls_free(text.data);
	} else {
		snprintf(why, why_len, "client certificate does not verify (status 0x%x)", status);
	}
	return false;
}

/* GnuTLS's verify callback, in the handshake once the client's
 * certificate (or none) came: non-zero fails the handshake. */
static int verify_client(gnutls_session_t session)
{
	struct MHD_Connection *conn = gnutls_session_get_ptr(session);
	struct cas_conn *c = conn ? cas_conns_conn(conn) : NULL;
	char why[256];

	if (verified(session, why, sizeof(why)))
		return 0;
	cas_metrics_refused(CAS_METRICS_CERTIFICATE);
	if (c)
		cas_http_log_limited(c->s, CAS_LOG_CERT, CAS_SERVER_LOG_WARN,
				     "TLS handshake from %s refused: %s", c->peer, why);
	return -1;
}

bool cas_tls_setup_connection(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info;
	gnutls_session_t session;

	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (!info || !info->tls_session)
		return false;
	session = info->tls_session;
	/* verify_client finds the connection through the session, as
	 * libmicrohttpd links them: make sure it does. */
	if (gnutls_session_get_ptr(session) != conn)
		return false;
	/* REQUEST, not REQUIRE: then verify_client runs when no certificate
	 * comes too, and logs it; it fails the handshake all the same. */
	gnutls_certificate_server_set_request(session, GNUTLS_CERT_REQUEST);
	gnutls_session_set_verify_function(session, verify_client);
	return true;
}

bool cas_tls_peer_verified(struct MHD_Connection *conn, char *why, size_t why_len)
{
	const union MHD_ConnectionInfo *info;

	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (!info || !info->tls_session) {
		snprintf(why, why_len, "no TLS session");
		return false;
	}
	return verified(info->tls_session, why, why_len);
}

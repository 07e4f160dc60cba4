/* tls.h - casd's TLS (PROTOCOL.md, "Authentication"): the node's
 * certificate and key and the authority its clients' certificates must
 * come from, read once at start; a client certificate checked in the TLS
 * handshake, which fails without one from that authority. */
#ifndef CAS_TLS_H
#define CAS_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <microhttpd.h>

/* Reads the PEM file path, given with option (for messages, e.g.
 * "--tls-key"), into *out (malloc'd, NUL-terminated; the caller frees it,
 * wiping a key first with cas_tls_free_pem). Errors: CAS_EIO (cannot read
 * it, too large, or no PEM block in it), CAS_ENOMEM; one line in errmsg,
 * which never holds the file's contents. */
int cas_tls_read_pem(const char *path, const char *option, char **out, char *errmsg,
		     size_t errmsg_len);

/* Wipes and frees pem (may be NULL). */
void cas_tls_free_pem(char *pem);

/* Checks that cert and key (PEM) go together and that ca (PEM, may be
 * NULL) holds at least one certificate, as GnuTLS will load them.
 * Errors: CAS_EINVAL with GnuTLS's reason in errmsg. A certificate out of
 * its validity dates is not an error: warn (when not NULL) says so, else
 * is made empty. */
int cas_tls_check(const char *cert, const char *key, const char *ca, char *warn, size_t warn_len,
		  char *errmsg, size_t errmsg_len);

/* For a connection of a server that asks for client certificates, as it
 * starts (before the handshake): asks for the client's certificate and
 * has the handshake fail, logged with the peer (rate-limited), when none
 * comes or it does not verify against the authority (expired, another
 * signer, ...). False when the session cannot be set up so. */
bool cas_tls_setup_connection(struct MHD_Connection *conn);

/* Whether conn's client certificate verifies against the authority; the
 * handler asks once per connection, though the handshake refused any
 * other (tls_setup_connection). why says what is wrong when not. */
bool cas_tls_peer_verified(struct MHD_Connection *conn, char *why, size_t why_len);

#endif

/* holdproxy.c - a proxy on 127.0.0.1 in front of one casd that holds back
 * the requests that change state, or cuts every connection, on command:
 * races between mounts, forced from a shell test.
 *
 * holdproxy --upstream PORT --port-file FILE [--hold-file FILE]
 *           [--hold-ms N] [--cut-file FILE] [--max-seconds N]
 *           [--tls-cert FILE --tls-key FILE --tls-ca FILE]
 *
 *   --upstream PORT   the casd to forward to, on 127.0.0.1:PORT.
 *   --port-file FILE  where the proxy writes the port it listens on
 *                     (127.0.0.1, a free port), once it accepts; written
 *                     whole (a rename), so a test waits for it to exist.
 *   --hold-file FILE  while FILE exists, a request that changes state is
 *                     held --hold-ms before it is forwarded: POST
 *                     /v1/prepare, POST /v1/accept, and POST /v1/batch
 *                     whose body holds a PREPARE or ACCEPT item
 *                     (consensus/PROTOCOL.md, "Binary form", "Batches").
 *                     Queries, health and everything else pass at once.
 *                     Checked once per request, when its last byte came.
 *   --hold-ms N       how long a hold lasts (default 1000).
 *   --cut-file FILE   while FILE exists, every connection is closed and
 *                     new ones are accepted and closed at once: the node
 *                     is unreachable through this proxy. Checked when a
 *                     request is complete, at each accept and every 50 ms.
 *   --max-seconds N   exits after N seconds whatever happens (default 900).
 *   --tls-cert FILE, --tls-key FILE, --tls-ca FILE
 *                     TLS on both sides, for a cluster in TLS mode (all
 *                     three or none; PEM files): the proxy serves the
 *                     certificate FILE (for 127.0.0.1) and requires of
 *                     its clients a certificate for TLS client use signed
 *                     by the authority --tls-ca, as casd does; it connects
 *                     to casd over TLS, presenting the same certificate
 *                     (it must allow client use too, as the node
 *                     certificates of tests/certs.sh do) and checking
 *                     casd's against that authority and 127.0.0.1. What
 *                     the client sends (its token too) goes through as it
 *                     came, decrypted and encrypted again.
 *
 * Each held request is logged on stderr ("held POST /v1/accept 1000 ms"),
 * so a test can tell that its race happened. The proxy parses HTTP/1.1
 * requests (request line, headers, Content-Length body; no chunked
 * bodies), as casd's clients send them: kept-alive connections with one
 * request at a time; answers go back byte for byte. It exits on SIGTERM or
 * SIGINT and when its parent dies. Exit status 2: bad usage; 1: cannot
 * listen or read the TLS files. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

/* Connections held at once; past it, new ones are closed at once. */
#define CONNS_MAX 64
/* Largest request: a batch body (1 MiB + 4 x 256) and its headers. */
#define REQ_MAX (1049600 + 16384)
/* Largest header block of a request. */
#define HEAD_MAX 16384
/* Bytes of an answer buffered on their way to the client. */
#define DOWN_MAX 65536
/* Longest poll: how late a cut or the parent's death may be noticed. */
#define TICK_MS 50
/* Longest TLS handshake, with the client or with casd. */
#define HANDSHAKE_MS 2000

struct conn {
	int cfd;	       /* the client's side */
	int ufd;	       /* casd's side */
	gnutls_session_t ctls; /* TLS with the client; NULL in plain mode */
	gnutls_session_t utls; /* TLS with casd; NULL in plain mode */
	/* TLS handshakes still under way, both at once, ended by hs_end_ms;
	 * nothing is read or forwarded before both are done. */
	bool c_hs;
	bool u_hs;
	int64_t hs_end_ms;
	/* Client to casd: the request being read, then forwarded. */
	unsigned char *req;
	size_t len;	/* bytes in req */
	size_t need;	/* bytes of the complete request; 0 until its head is read */
	size_t sent;	/* bytes of it forwarded */
	int64_t due_ms; /* forward from then; -1 until complete */
	/* casd to client. */
	unsigned char down[DOWN_MAX];
	size_t down_len;
	size_t down_off;
	bool down_eof;
};

struct opts {
	unsigned upstream;
	const char *port_file;
	const char *hold_file;
	const char *cut_file;
	unsigned hold_ms;
	unsigned max_seconds;
	const char *tls_cert;
	const char *tls_key;
	const char *tls_ca;
	/* The certificate, key and authority, for both sides; NULL in plain
	 * mode. */
	gnutls_certificate_credentials_t cred;
};

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool exists(const char *path)
{
	struct stat st;

	return path && stat(path, &st) == 0;
}

static void conn_close(struct conn *c)
{
	if (c->ctls)
		gnutls_deinit(c->ctls);
	if (c->utls)
		gnutls_deinit(c->utls);
	if (c->cfd >= 0)
		close(c->cfd);
	if (c->ufd >= 0)
		close(c->ufd);
	free(c->req);
	memset(c, 0, sizeof(*c));
	c->cfd = -1;
	c->ufd = -1;
}

/* read(2) on fd, or through TLS session s when not NULL: bytes read, 0
 * at the end, or -1 with errno set (EAGAIN: nothing yet; EIO: a TLS
 * error, the peer's end without close_notify included). */
static ssize_t io_read(int fd, gnutls_session_t s, void *buf, size_t len)
{
	ssize_t n;

	if (!s)
		return read(fd, buf, len);
	n = gnutls_record_recv(s, buf, len);
	if (n >= 0)
		return n;
	errno = n == GNUTLS_E_AGAIN ? EAGAIN : n == GNUTLS_E_INTERRUPTED ? EINTR : EIO;
	return -1;
}

/* write(2) on fd, or through TLS session s when not NULL: bytes written
 * or -1 with errno set. After EAGAIN or EINTR through TLS, the caller
 * calls again with the same bytes, as GnuTLS asks. */
static ssize_t io_write(int fd, gnutls_session_t s, const void *buf, size_t len)
{
	ssize_t n;

	if (!s)
		return write(fd, buf, len);
	n = gnutls_record_send(s, buf, len);
	if (n >= 0)
		return n;
	errno = n == GNUTLS_E_AGAIN ? EAGAIN : n == GNUTLS_E_INTERRUPTED ? EINTR : EIO;
	return -1;
}

/* Whether TLS session s (may be NULL) holds decrypted bytes not read yet,
 * which poll(2) cannot tell. */
static bool tls_pending(gnutls_session_t s)
{
	return s && gnutls_record_check_pending(s) > 0;
}

/* A TLS session on the non-blocking socket fd, its handshake not begun:
 * a server session that requires a client certificate for TLS client use
 * from the authority, or a client session that checks casd's certificate
 * for 127.0.0.1, both with o's credentials. NULL when it cannot be set up. */
static gnutls_session_t tls_session(int fd, bool server, const struct opts *o)
{
	/* Static: GnuTLS keeps a pointer to it for the handshake. */
	static gnutls_typed_vdata_st client_use = {
		.type = GNUTLS_DT_KEY_PURPOSE_OID,
		.data = (unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT,
	};
	gnutls_session_t s;

	if (gnutls_init(&s, (server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK) < 0)
		return NULL;
	if (gnutls_set_default_priority(s) < 0 ||
	    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, o->cred) < 0) {
		gnutls_deinit(s);
		return NULL;
	}
	if (server) {
		gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
		gnutls_session_set_verify_cert2(s, &client_use, 1, 0);
	} else {
		gnutls_session_set_verify_cert(s, "127.0.0.1", 0);
	}
	gnutls_transport_set_int(s, fd);
	return s;
}

/* Takes the handshake of s a step further while *busy; clears *busy when
 * it is done. False (logged) when it failed. */
static bool tls_step(gnutls_session_t s, bool *busy, const char *peer)
{
	int rc;

	if (!*busy)
		return true;
	rc = gnutls_handshake(s);
	if (rc == 0)
		*busy = false;
	else if (gnutls_error_is_fatal(rc)) {
		fprintf(stderr, "holdproxy: TLS handshake with %s: %s\n", peer,
			gnutls_strerror(rc));
		return false;
	}
	return true;
}

/* The poll events a handshake under way waits for. */
static short tls_events(gnutls_session_t s)
{
	return gnutls_record_get_direction(s) ? POLLOUT : POLLIN;
}

/* Opens a connection to casd: its fd, or -1. A loopback connect ends at
 * once, or within the send timeout for a node that does not accept. */
static int connect_upstream(unsigned port)
{
	struct timeval tv = {1, 0};
	struct sockaddr_in a;
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The header block's length (up to and with its blank line), or 0 while
 * incomplete. */
static size_t head_len(const unsigned char *p, size_t len)
{
	size_t i;

	for (i = 3; i < len; i++)
		if (p[i - 3] == '\r' && p[i - 2] == '\n' && p[i - 1] == '\r' && p[i] == '\n')
			return i + 1;
	return 0;
}

/* Sets *clen from the Content-Length header of the head (0 when none).
 * False for what this proxy does not parse: chunked bodies, bad lengths. */
static bool body_len(const unsigned char *head, size_t hlen, size_t *clen)
{
	const char *p = (const char *)head, *end = p + hlen;

	*clen = 0;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t n = eol ? (size_t)(eol - p) : (size_t)(end - p);

		if (n > 15 && !strncasecmp(p, "content-length:", 15)) {
			char *stop;
			unsigned long long v = strtoull(p + 15, &stop, 10);

			if (stop == p + 15 || v > REQ_MAX)
				return false;
			*clen = (size_t)v;
		} else if (n > 18 && !strncasecmp(p, "transfer-encoding:", 18)) {
			return false;
		}
		p += n + 1;
	}
	return true;
}

/* True when a batch body holds a PREPARE (0x01) or ACCEPT (0x02) item. */
static bool batch_changes(const unsigned char *b, size_t len)
{
	size_t off = 0;

	while (len - off >= 4) {
		uint32_t n = (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 |
			     (uint32_t)b[off + 2] << 16 | (uint32_t)b[off + 3] << 24;

		off += 4;
		if (n > len - off)
			return false;
		if (n >= 2 && b[off] == 0xC1 && (b[off + 1] == 0x01 || b[off + 1] == 0x02))
			return true;
		off += n;
	}
	return false;
}

/* True when the complete request in c changes state on casd. Sets what
 * (a printable "METHOD PATH", at most size bytes) for the log. */
static bool changes_state(const struct conn *c, size_t hlen, char *what, size_t size)
{
	const char *p = (const char *)c->req;
	const char *sp1 = memchr(p, ' ', hlen), *sp2, *q;
	size_t plen;

	snprintf(what, size, "?");
	if (!sp1)
		return false;
	sp2 = memchr(sp1 + 1, ' ', hlen - (size_t)(sp1 + 1 - p));
	if (!sp2)
		return false;
	q = memchr(sp1 + 1, '?', (size_t)(sp2 - sp1 - 1));
	plen = (size_t)((q ? q : sp2) - sp1 - 1);
	snprintf(what, size, "%.*s", (int)(sp2 - p), p);
	if (sp1 - p != 4 || memcmp(p, "POST", 4))
		return false;
	sp1++;
	if ((plen == 11 && !memcmp(sp1, "/v1/prepare", 11)) ||
	    (plen == 10 && !memcmp(sp1, "/v1/accept", 10)))
		return true;
	return plen == 9 && !memcmp(sp1, "/v1/batch", 9) &&
	       batch_changes(c->req + hlen, c->need - hlen);
}

/* When the buffered bytes hold a complete request and none is waiting,
 * decides when it goes. False when the connection is done for. */
static bool settle(struct conn *c, const struct opts *o)
{
	size_t hlen, clen;
	char what[128];

	if (c->due_ms >= 0)
		return true; /* a next request, pipelined: after this one */
	if (!c->need) {
		hlen = head_len(c->req, c->len < HEAD_MAX ? c->len : HEAD_MAX);
		if (!hlen)
			return c->len < HEAD_MAX;
		if (!body_len(c->req, hlen, &clen) || hlen + clen > REQ_MAX)
			return false;
		c->need = hlen + clen;
	}
	if (c->len < c->need)
		return true;
	if (exists(o->cut_file))
		return false;
	hlen = head_len(c->req, c->need);
	c->due_ms = now_ms();
	if (exists(o->hold_file) && changes_state(c, hlen, what, sizeof(what))) {
		c->due_ms += o->hold_ms;
		fprintf(stderr, "held %s %u ms\n", what, o->hold_ms);
	}
	return true;
}

/* Reads what the client sent. False when the connection is done for. */
static bool read_client(struct conn *c, const struct opts *o)
{
	ssize_t n;

	if (c->len == REQ_MAX)
		return false;
	n = io_read(c->cfd, c->ctls, c->req + c->len, REQ_MAX - c->len);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return false;
	if (n > 0)
		c->len += (size_t)n;
	return settle(c, o);
}

/* Forwards the complete request once due; then starts on the next one.
 * False when the connection is done for. */
static bool forward(struct conn *c, const struct opts *o, int64_t now)
{
	ssize_t n;

	if (c->due_ms < 0 || now < c->due_ms)
		return true;
	n = io_write(c->ufd, c->utls, c->req + c->sent, c->need - c->sent);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	c->sent += (size_t)n;
	if (c->sent < c->need)
		return true;
	memmove(c->req, c->req + c->need, c->len - c->need);
	c->len -= c->need;
	c->need = 0;
	c->sent = 0;
	c->due_ms = -1;
	return settle(c, o);
}

/* Moves casd's answer to the client. False when the connection is done. */
static bool pass_down(struct conn *c, short urev, short crev)
{
	ssize_t n;

	if (c->down_len == 0 && !c->down_eof && (urev & (POLLIN | POLLHUP | POLLERR))) {
		n = io_read(c->ufd, c->utls, c->down, sizeof(c->down));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			c->down_eof = true;
		else if (n > 0)
			c->down_len = (size_t)n;
		c->down_off = 0;
	}
	if (c->down_len && (crev & POLLOUT)) {
		n = io_write(c->cfd, c->ctls, c->down + c->down_off, c->down_len - c->down_off);
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return false;
		if (n > 0)
			c->down_off += (size_t)n;
		if (c->down_off == c->down_len)
			c->down_len = 0;
	}
	return !(c->down_eof && c->down_len == 0);
}

static void accept_one(int lfd, struct conn *conns, const struct opts *o)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
	struct conn *c = NULL;
	size_t i;

	if (fd < 0)
		return;
	for (i = 0; i < CONNS_MAX && !c; i++)
		if (conns[i].cfd < 0)
			c = &conns[i];
	if (!c || exists(o->cut_file)) {
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->cfd = fd;
	c->ufd = connect_upstream(o->upstream);
	c->req = malloc(REQ_MAX);
	c->due_ms = -1;
	if (c->ufd < 0 || !c->req) {
		conn_close(c);
		return;
	}
	if (o->cred) {
		/* Both handshakes go on in the loop, side by side. */
		c->ctls = tls_session(c->cfd, true, o);
		c->utls = tls_session(c->ufd, false, o);
		c->c_hs = c->u_hs = true;
		c->hs_end_ms = now_ms() + HANDSHAKE_MS;
		if (!c->ctls || !c->utls || !tls_step(c->utls, &c->u_hs, "casd"))
			conn_close(c);
	}
}

static int listen_loopback(const char *port_file)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	char tmp[4096];
	FILE *f;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 128) ||
	    getsockname(fd, (struct sockaddr *)&a, &alen))
		goto out_close;
	snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
	f = fopen(tmp, "w");
	if (!f)
		goto out_close;
	fprintf(f, "%u\n", (unsigned)ntohs(a.sin_port));
	if (fclose(f) || rename(tmp, port_file))
		goto out_close;
	return fd;

out_close:
	close(fd);
	return -1;
}

static int usage(void)
{
	fprintf(stderr, "usage: holdproxy --upstream PORT --port-file FILE [--hold-file FILE]\n"
			"                 [--hold-ms N] [--cut-file FILE] [--max-seconds N]\n"
			"                 [--tls-cert FILE --tls-key FILE --tls-ca FILE]\n");
	return 2;
}

static bool parse_args(int argc, char **argv, struct opts *o)
{
	int i;

	memset(o, 0, sizeof(*o));
	o->hold_ms = 1000;
	o->max_seconds = 900;
	for (i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		char *end;
		unsigned long n = strtoul(v, &end, 10);
		bool num = *v && !*end && n <= 86400000;

		if (!strcmp(k, "--upstream") && num && n && n < 65536)
			o->upstream = (unsigned)n;
		else if (!strcmp(k, "--hold-ms") && num)
			o->hold_ms = (unsigned)n;
		else if (!strcmp(k, "--max-seconds") && num && n)
			o->max_seconds = (unsigned)n;
		else if (!strcmp(k, "--port-file"))
			o->port_file = v;
		else if (!strcmp(k, "--hold-file"))
			o->hold_file = v;
		else if (!strcmp(k, "--cut-file"))
			o->cut_file = v;
		else if (!strcmp(k, "--tls-cert"))
			o->tls_cert = v;
		else if (!strcmp(k, "--tls-key"))
			o->tls_key = v;
		else if (!strcmp(k, "--tls-ca"))
			o->tls_ca = v;
		else
			return false;
	}
	if (!o->tls_cert != !o->tls_key || !o->tls_cert != !o->tls_ca)
		return false; /* TLS takes all three */
	return i == argc && o->upstream && o->port_file;
}

/* Reads o's TLS files into o->cred. False (said on stderr) when one
 * cannot be read or holds nothing usable. */
static bool load_tls(struct opts *o)
{
	int rc;

	rc = gnutls_certificate_allocate_credentials(&o->cred);
	if (rc >= 0)
		rc = gnutls_certificate_set_x509_key_file(o->cred, o->tls_cert, o->tls_key,
							  GNUTLS_X509_FMT_PEM);
	if (rc >= 0) {
		rc = gnutls_certificate_set_x509_trust_file(o->cred, o->tls_ca,
							    GNUTLS_X509_FMT_PEM);
		if (rc == 0)
			rc = GNUTLS_E_NO_CERTIFICATE_FOUND;
	}
	if (rc >= 0)
		return true;
	fprintf(stderr, "holdproxy: TLS files %s, %s, %s: %s\n", o->tls_cert, o->tls_key, o->tls_ca,
		gnutls_strerror(rc));
	return false;
}

int main(int argc, char **argv)
{
	static struct conn conns[CONNS_MAX];
	struct pollfd pfd[1 + 2 * CONNS_MAX];
	struct sigaction sa;
	struct opts o;
	pid_t parent = getppid();
	int64_t end;
	int lfd;
	size_t i;

	if (!parse_args(argc, argv, &o))
		return usage();
	if (o.tls_cert && !load_tls(&o))
		return 1;
	/* Dies with the test that started it, whatever becomes of the test. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		return 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < CONNS_MAX; i++)
		conn_close(&conns[i]);
	lfd = listen_loopback(o.port_file);
	if (lfd < 0) {
		perror("holdproxy: listen");
		return 1;
	}
	end = now_ms() + (int64_t)o.max_seconds * 1000;
	while (!stopping && getppid() == parent && now_ms() < end) {
		int64_t now = now_ms(), wait = TICK_MS;
		bool cut = exists(o.cut_file);
		size_t n = 1;

		pfd[0].fd = lfd;
		pfd[0].events = POLLIN;
		for (i = 0; i < CONNS_MAX; i++) {
			struct conn *c = &conns[i];

			if (c->cfd < 0)
				continue;
			if (cut) {
				conn_close(c);
				continue;
			}
			if (c->due_ms >= 0 && c->due_ms - now < wait)
				wait = c->due_ms > now ? c->due_ms - now : 0;
			if (tls_pending(c->ctls) || (!c->down_len && tls_pending(c->utls)))
				wait = 0; /* decrypted bytes wait: poll cannot tell */
			pfd[n].fd = c->cfd;
			pfd[n].events = (short)(POLLIN | (c->down_len ? POLLOUT : 0));
			pfd[n + 1].fd = c->ufd;
			pfd[n + 1].events =
				(short)((c->down_len ? 0 : POLLIN) |
					(c->due_ms >= 0 && c->due_ms <= now ? POLLOUT : 0));
			if (c->c_hs || c->u_hs) {
				pfd[n].events = c->c_hs ? tls_events(c->ctls) : 0;
				pfd[n + 1].events = c->u_hs ? tls_events(c->utls) : 0;
				if (c->hs_end_ms - now < wait)
					wait = c->hs_end_ms > now ? c->hs_end_ms - now : 0;
			}
			n += 2;
		}
		if (poll(pfd, (nfds_t)n, (int)wait) < 0 && errno != EINTR)
			break;
		now = now_ms();
		n = 1;
		for (i = 0; i < CONNS_MAX; i++) {
			struct conn *c = &conns[i];
			short crev, urev;
			bool ok = true;

			if (c->cfd < 0)
				continue;
			if (pfd[n].fd != c->cfd)
				continue; /* accepted after the poll was set up */
			crev = pfd[n].revents;
			urev = pfd[n + 1].revents;
			n += 2;
			if (c->c_hs || c->u_hs) {
				if (now >= c->hs_end_ms) {
					fprintf(stderr,
						"holdproxy: TLS handshake with %s: timed out\n",
						c->c_hs ? "a client" : "casd");
					ok = false;
				} else if (((crev | urev) & (POLLHUP | POLLERR)) &&
					   !(crev & POLLIN) && !(urev & POLLIN)) {
					ok = false;
				} else {
					ok = tls_step(c->ctls, &c->c_hs, "a client") &&
					     tls_step(c->utls, &c->u_hs, "casd");
				}
				if (!ok)
					conn_close(c);
				continue; /* the data can wait for the next round */
			}
			if (tls_pending(c->ctls))
				crev |= POLLIN;
			if (tls_pending(c->utls))
				urev |= POLLIN;
			if (crev & POLLIN)
				ok = read_client(c, &o);
			else if (crev & (POLLHUP | POLLERR))
				ok = false;
			if (ok)
				ok = forward(c, &o, now);
			if (ok)
				ok = pass_down(c, urev, crev);
			if (!ok)
				conn_close(c);
		}
		if (pfd[0].revents & POLLIN)
			accept_one(lfd, conns, &o);
	}
	for (i = 0; i < CONNS_MAX; i++)
		conn_close(&conns[i]);
	close(lfd);
	if (o.cred)
		gnutls_certificate_free_credentials(o.cred);
	return 0;
}

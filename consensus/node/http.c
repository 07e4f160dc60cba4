/* http.c - casd's HTTP front on libmicrohttpd (PROTOCOL.md): starting and
 * stopping, routing, reading bodies, authenticating requests (auth.c and
 * tls.c decide) and admitting them by identity (admin.c decides), sending
 * answers (http.h). Connections are limited in conns.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "auth.h"
#include "codec_bin.h"
#include "conns.h"
#include "http_impl.h"
#include "metrics.h"
#include "tls.h"

/* At most one warn line per kind per this many ms (cas_http_log_limited). */
#define RATELOG_MS 1000

/* A request whose body overflows without a Content-Length is drained to
 * its end to answer 413; past this many times the limit it is cut off. */
#define DRAIN_FACTOR 4

/* The largest body of the admin routes: a configuration of the most nodes
 * with the longest URLs fits with room to spare. */
#define ADMIN_BODY_LIMIT ((size_t)128 << 10)

void cas_http_log(const struct cas_server *s, enum cas_server_log_level level, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!s->log || level > s->log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->log(s->log_arg, level, line);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Whether a line of kind may be logged now; *suppressed: how many were not
 * since the last one. */
static bool ratelog_take(struct cas_server *s, enum cas_log_kind kind, unsigned long *suppressed)
{
	uint64_t now = now_ms();
	bool take;

	pthread_mutex_lock(&s->ratelog_lock);
	take = !s->ratelog[kind].last_ms || now - s->ratelog[kind].last_ms >= RATELOG_MS;
	*suppressed = s->ratelog[kind].suppressed;
	if (take) {
		s->ratelog[kind].last_ms = now;
		s->ratelog[kind].suppressed = 0;
	} else {
		s->ratelog[kind].suppressed++;
	}
	pthread_mutex_unlock(&s->ratelog_lock);
	return take;
}

/* Logs line, with the count of lines not logged before it. */
static void log_taken(struct cas_server *s, enum cas_server_log_level level, const char *line,
		      unsigned long suppressed)
{
	if (suppressed)
		cas_http_log(s, level, "%s (and %lu more since, not logged)", line, suppressed);
	else
		cas_http_log(s, level, "%s", line);
}

void cas_http_log_limited(struct cas_server *s, enum cas_log_kind kind,
			  enum cas_server_log_level level, const char *fmt, ...)
{
	unsigned long suppressed;
	char line[512];
	va_list ap;

	if (!s->log || level > s->log_level || !ratelog_take(s, kind, &suppressed))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log_taken(s, level, line, suppressed);
}

void cas_http_peer(struct MHD_Connection *conn, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *info;
	char host[NI_MAXHOST], port[NI_MAXSERV];
	socklen_t alen;

	snprintf(buf, len, "?");
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!info || !info->client_addr)
		return;
	alen = info->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							: sizeof(struct sockaddr_in);
	if (getnameinfo(info->client_addr, alen, host, sizeof(host), port, sizeof(port),
			NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(buf, len, info->client_addr->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
			 host, port);
}

/* libmicrohttpd's own lines: mostly about what clients did (a closed
 * connection, a failed TLS handshake), rate-limited as refusals are. */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct cas_server *s = cls;
	unsigned long suppressed;
	char line[512];
	size_t n;

	if (!s->log || s->log_level < CAS_SERVER_LOG_WARN ||
	    !ratelog_take(s, CAS_LOG_LIBRARY, &suppressed))
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	log_taken(s, CAS_SERVER_LOG_WARN, line, suppressed);
}

enum MHD_Result cas_http_send_typed(struct MHD_Connection *conn, unsigned status, char *body,
				    size_t len, const char *type, const char *allow)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(body);
		return MHD_NO;
	}
	if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	if (allow && MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow) != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	if (status == MHD_HTTP_UNAUTHORIZED &&
	    MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
				    "Bearer realm=\"casd\"") != MHD_YES) {
		MHD_destroy_response(resp);
		return MHD_NO;
	}
	ret = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result cas_http_send_json(struct MHD_Connection *conn, unsigned status, char *body,
				   size_t len, const char *allow)
{
	return cas_http_send_typed(conn, status, body, len, "application/json", allow);
}

/* A request whose Content-Type names the binary form (parameters after a
 * ';' ignored); anything else is JSON. */
static bool is_binary(struct MHD_Connection *conn)
{
	const char *ct;
	size_t n = strlen(CAS_CODEC_BIN_TYPE);

	ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (!ct || strncasecmp(ct, CAS_CODEC_BIN_TYPE, n))
		return false;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

/* The methods a known path takes, for the Allow header of a 405. */
static const char *allow_of(const char *url)
{
	if (strcmp(url, "/v1/health") == 0)
		return "GET, HEAD";
	if (strcmp(url, "/v1/config") == 0 || strcmp(url, "/v1/keys") == 0 ||
	    strcmp(url, "/metrics") == 0)
		return "GET";
	return "POST";
}

enum MHD_Result cas_http_send_error(struct cas_server *s, struct MHD_Connection *conn,
				    const char *method, const char *url, unsigned status,
				    const char *reason)
{
	static const char fallback[] = "{\"error\":\"out of memory\"}";
	const char *allow = NULL;
	char peer[CAS_PEER_LEN];
	enum cas_log_kind kind;
	cJSON *root;
	char *body = NULL;

	cas_http_peer(conn, peer, sizeof(peer));
	if (status >= 500) {
		cas_http_log(s, CAS_SERVER_LOG_ERROR, "%s %.64s from %s %u: %s", method, url, peer,
			     status, reason);
	} else {
		switch (status) {
		case MHD_HTTP_BAD_REQUEST:
			kind = CAS_LOG_BAD_REQUEST;
			break;
		case MHD_HTTP_UNAUTHORIZED:
			kind = CAS_LOG_TOKEN;
			break;
		case MHD_HTTP_NOT_FOUND:
		case MHD_HTTP_METHOD_NOT_ALLOWED:
			kind = CAS_LOG_NOT_FOUND;
			break;
		case MHD_HTTP_CONTENT_TOO_LARGE:
			cas_metrics_refused(CAS_METRICS_LIMITS);
			kind = CAS_LOG_TOO_LARGE;
			break;
		case MHD_HTTP_UNSUPPORTED_MEDIA_TYPE:
			kind = CAS_LOG_TOO_LARGE;
			break;
		default:
			kind = CAS_LOG_OTHER;
			break;
		}
		cas_http_log_limited(s, kind, CAS_SERVER_LOG_WARN, "%s %.64s from %s %u: %s",
				     method, url, peer, status, reason);
	}
	root = cJSON_CreateObject();
	if (root && cJSON_AddStringToObject(root, "error", reason))
		body = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (!body) {
		body = strdup(fallback);
		if (!body)
			return MHD_NO;
	}
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		allow = allow_of(url);
	return cas_http_send_json(conn, status, body, strlen(body), allow);
}

bool cas_http_begin_wait(struct cas_server *s, struct MHD_Connection *conn)
{
	bool stopping;

	pthread_mutex_lock(&s->lock);
	stopping = s->stopping;
	if (!stopping)
		s->suspended++;
	pthread_mutex_unlock(&s->lock);
	if (!stopping)
		cas_conns_set_state(conn, CAS_CONN_WAITING);
	return !stopping;
}

void cas_http_end_wait(struct cas_server *s, struct MHD_Connection *conn)
{
	cas_conns_set_state(conn, CAS_CONN_BODY);
	MHD_resume_connection(conn);
	pthread_mutex_lock(&s->lock);
	if (--s->suspended == 0)
		pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->lock);
}

/* Appends data to r's body, or notes that the limit is passed. */
static bool append_body(struct cas_server *s, struct request *r, const char *data, size_t n)
{
	size_t need, cap;
	char *p;

	if (r->route == ROUTE_ERROR || r->route == ROUTE_HEALTH || r->route == ROUTE_CONFIG ||
	    r->route == ROUTE_KEYS || r->route == ROUTE_METRICS) {
		r->dropped += n; /* a body nobody reads */
		return r->dropped / DRAIN_FACTOR <= s->body_limit;
	}
	if (r->too_big || n > r->limit - r->len) {
		r->too_big = true;
		r->dropped += n;
		free(r->body);
		r->body = NULL;
		r->len = r->cap = 0;
		return r->dropped / DRAIN_FACTOR <= r->limit;
	}
	need = r->len + n + 1; /* room for a NUL, kept for cJSON's sake */
	if (need > r->cap) {
		cap = r->cap ? r->cap : 4096;
		while (cap < need)
			cap *= 2;
		if (cap > r->limit + 1)
			cap = r->limit + 1;
		p = realloc(r->body, cap);
		if (!p)
			return false;
		r->body = p;
		r->cap = cap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = '\0';
	return true;
}

/* A Content-Length above limit, told before any body byte is read. */
static bool declared_too_big(struct MHD_Connection *conn, size_t limit)
{
	const char *cl;
	char *end;
	unsigned long long n;

	cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (!cl)
		return false;
	errno = 0;
	n = strtoull(cl, &end, 10);
	if (errno == ERANGE)
		return true;
	return end != cl && n > limit;
}

/* The paths of the protocol and admin routes, with their method. */
static const struct {
	const char *path;
	const char *method;
	enum route route;
} routes[] = {
	{"/v1/prepare", MHD_HTTP_METHOD_POST, ROUTE_PREPARE},
	{"/v1/accept", MHD_HTTP_METHOD_POST, ROUTE_ACCEPT},
	{"/v1/query", MHD_HTTP_METHOD_POST, ROUTE_QUERY},
	{"/v1/batch", MHD_HTTP_METHOD_POST, ROUTE_BATCH},
	{"/v1/purge", MHD_HTTP_METHOD_POST, ROUTE_PURGE},
	{"/v1/keys", MHD_HTTP_METHOD_GET, ROUTE_KEYS},
	{"/v1/config", MHD_HTTP_METHOD_GET, ROUTE_CONFIG},
	{"/v1/admin/join", MHD_HTTP_METHOD_POST, ROUTE_JOIN},
	{"/v1/admin/config", MHD_HTTP_METHOD_POST, ROUTE_ADMIN_CONFIG},
	{"/metrics", MHD_HTTP_METHOD_GET, ROUTE_METRICS},
};

/* The kind a route's requests are counted under (metrics.h). */
static enum cas_metrics_kind kind_of(enum route route)
{
	switch (route) {
	case ROUTE_PREPARE:
		return CAS_METRICS_PREPARE;
	case ROUTE_ACCEPT:
		return CAS_METRICS_ACCEPT;
	case ROUTE_QUERY:
		return CAS_METRICS_QUERY;
	case ROUTE_BATCH:
		return CAS_METRICS_BATCH;
	case ROUTE_PURGE:
		return CAS_METRICS_PURGE;
	case ROUTE_KEYS:
	case ROUTE_CONFIG:
	case ROUTE_JOIN:
	case ROUTE_ADMIN_CONFIG:
		return CAS_METRICS_ADMIN;
	case ROUTE_HEALTH:
		return CAS_METRICS_HEALTH;
	case ROUTE_METRICS:
		return CAS_METRICS_METRICS;
	default:
		return CAS_METRICS_OTHER;
	}
}

/* The route of a request, from its path and method. */
static enum route route_of(const char *url, const char *method, unsigned *status,
			   const char **reason)
{
	size_t i;

	if (strcmp(url, "/v1/health") == 0) {
		if (strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
		    strcmp(method, MHD_HTTP_METHOD_HEAD) == 0)
			return ROUTE_HEALTH;
		*status = MHD_HTTP_METHOD_NOT_ALLOWED;
		*reason = "use GET on /v1/health";
		return ROUTE_ERROR;
	}
	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(url, routes[i].path))
			continue;
		if (strcmp(method, routes[i].method) == 0)
			return routes[i].route;
		*status = MHD_HTTP_METHOD_NOT_ALLOWED;
		*reason = strcmp(routes[i].method, MHD_HTTP_METHOD_GET) ? "use POST" : "use GET";
		return ROUTE_ERROR;
	}
	*status = MHD_HTTP_NOT_FOUND;
	*reason = "unknown path";
	return ROUTE_ERROR;
}

/* The largest body of a route. */
static size_t limit_of(const struct cas_server *s, enum route route)
{
	switch (route) {
	case ROUTE_BATCH:
		return CAS_SERVER_BATCH_LIMIT;
	case ROUTE_JOIN:
	case ROUTE_ADMIN_CONFIG:
		return ADMIN_BODY_LIMIT;
	default:
		return s->body_limit;
	}
}

/* Runs a request of a route that carries the identity headers, once
 * admitted (cas_http_admit): the store has it, or it is answered, when
 * this returns, and only then may a configuration change complete. */
static enum MHD_Result run_admitted(struct cas_server *s, struct MHD_Connection *conn,
				    const char *method, const char *url, struct request *r)
{
	enum MHD_Result ret;

	if (!cas_http_admit(s, conn, method, url, &ret))
		return ret;
	switch (r->route) {
	case ROUTE_QUERY:
		ret = cas_http_query(s, conn, method, url, r);
		break;
	case ROUTE_BATCH:
		ret = cas_http_batch(s, conn, method, url, r);
		break;
	case ROUTE_KEYS:
		ret = cas_http_keys(s, conn, method, url);
		break;
	default:
		ret = cas_http_request(s, conn, method, url, r);
		break;
	}
	cas_identity_leave(s->identity);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct cas_server *s = cls;
	struct request *r = *con_cls;

	(void)version;
	if (!r) {
		unsigned status = 0;
		const char *reason = NULL;
		enum route route = route_of(url, method, &status, &reason);
		size_t limit = limit_of(s, route);
		enum route asked = route;

		unsigned auth_status;
		const char *auth_reason;

		cas_conns_set_state(conn, CAS_CONN_BODY);
		/* Before anything else of the request: who sends it. */
		if (!cas_http_authorize(s, conn, route, &auth_status, &auth_reason)) {
			if (!auth_status)
				return MHD_NO; /* a certificate refused: logged */
			route = ROUTE_ERROR;
			status = auth_status;
			reason = auth_reason;
		}
		/* Answered at once, closing the connection: reading the
		 * body would be a waste. */
		if (route != ROUTE_ERROR && route != ROUTE_HEALTH && route != ROUTE_CONFIG &&
		    route != ROUTE_KEYS && route != ROUTE_METRICS &&
		    declared_too_big(conn, limit)) {
			cas_metrics_request(kind_of(route), MHD_HTTP_CONTENT_TOO_LARGE);
			return cas_http_send_error(s, conn, method, url, MHD_HTTP_CONTENT_TOO_LARGE,
						   "request body too large");
		}
		r = calloc(1, sizeof(*r));
		if (!r)
			return cas_http_send_error(s, conn, method, url,
						   MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
		r->route = route;
		r->asked = asked;
		r->binary = is_binary(conn);
		r->status = status;
		r->reason = reason;
		r->limit = limit;
		if (route == ROUTE_BATCH && !r->binary) {
			r->route = ROUTE_ERROR;
			r->status = MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
			r->reason = "a batch is " CAS_CODEC_BIN_TYPE " only";
		}
		*con_cls = r;
		return MHD_YES;
	}
	if (*upload_data_size) {
		if (!append_body(s, r, upload_data, *upload_data_size))
			return MHD_NO; /* out of memory or a flood: drop the connection */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->stored)
		return cas_http_answer_stored(s, conn, method, url, r);
	if (r->batch)
		return cas_http_answer_batch(s, conn, method, url, r);
	switch (r->route) {
	case ROUTE_HEALTH:
		return cas_http_health(s, conn, method, url);
	case ROUTE_METRICS:
		return cas_http_metrics(s, conn, method, url);
	case ROUTE_ERROR:
		return cas_http_send_error(s, conn, method, url, r->status, r->reason);
	case ROUTE_CONFIG:
		return cas_http_config(s, conn, method, url);
	case ROUTE_JOIN:
		return cas_http_join(s, conn, method, url, r);
	case ROUTE_ADMIN_CONFIG:
		return cas_http_admin_config(s, conn, method, url, r);
	default:
		return run_admitted(s, conn, method, url, r);
	}
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct request *r = *con_cls;
	const union MHD_ConnectionInfo *info;

	(void)cls;
	(void)toe;
	cas_conns_set_state(conn, CAS_CONN_IDLE);
	if (!r)
		return;
	/* Counted once answered: a request cut off before has no status. */
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_HTTP_STATUS);
	if (info && info->http_status)
		cas_metrics_request(kind_of(r->asked), info->http_status);
	/* A request answered or never stored holds no values; one cut off
	 * after its answer was made has had them cleared. */
	cas_msg_clear(&r->req);
	cas_msg_clear(&r->op.reply);
	cas_http_batch_free(r->batch);
	free(r->body);
	free(r);
	*con_cls = NULL;
}

/* Resolves host into addr (port set), for binding. */
static int resolve(const char *host, uint16_t port, struct sockaddr_storage *addr,
		   socklen_t *addr_len, char *errmsg, size_t errmsg_len)
{
	struct addrinfo hints, *res;
	int rc;

	memset(addr, 0, sizeof(*addr));
	if (!host) {
		struct sockaddr_in *in = (struct sockaddr_in *)addr;

		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_ANY);
		in->sin_port = htons(port);
		*addr_len = sizeof(*in);
		return CAS_OK;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc) {
		snprintf(errmsg, errmsg_len, "cannot resolve \"%s\": %s", host, gai_strerror(rc));
		return CAS_EINVAL;
	}
	memcpy(addr, res->ai_addr, res->ai_addrlen);
	*addr_len = res->ai_addrlen;
	freeaddrinfo(res);
	if (addr->ss_family == AF_INET6)
		((struct sockaddr_in6 *)addr)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)addr)->sin_port = htons(port);
	return CAS_OK;
}

int cas_server_start(struct cas_store *store, const struct cas_server_config *cfg,
		     struct cas_server **out, char *errmsg, size_t errmsg_len)
{
	struct MHD_OptionItem tls_opts[4] = {{MHD_OPTION_END, 0, NULL}};
	struct cas_server_limits lim;
	struct sockaddr_storage addr;
	const union MHD_DaemonInfo *info;
	struct cas_server *s;
	socklen_t addr_len;
	unsigned threads, flags, backstop_s;
	size_t b64, n = 0;
	int err;

	*out = NULL;
	if (!cfg->identity) {
		snprintf(errmsg, errmsg_len, "no identity");
		return CAS_EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(errmsg, errmsg_len, "out of memory");
		return CAS_ENOMEM;
	}
	if (pthread_mutex_init(&s->ratelog_lock, NULL)) {
		snprintf(errmsg, errmsg_len, "cannot make a mutex");
		err = CAS_ENOMEM;
		goto out_free_server;
	}
	if (pthread_mutex_init(&s->lock, NULL)) {
		snprintf(errmsg, errmsg_len, "cannot make a mutex");
		err = CAS_ENOMEM;
		goto out_destroy_ratelog;
	}
	if (pthread_cond_init(&s->idle, NULL)) {
		snprintf(errmsg, errmsg_len, "cannot make a condition variable");
		err = CAS_ENOMEM;
		goto out_destroy_lock;
	}
	s->store = store;
	s->identity = cfg->identity;
	s->unidentified = cfg->admit_unidentified;
	s->max_value = cfg->max_value ? cfg->max_value : CAS_DEFAULT_MAX_VALUE;
	s->log = cfg->log;
	s->log_arg = cfg->log_arg;
	s->log_level = cfg->log_level;
	b64 = s->max_value / 3 + 1;
	if (b64 > (SIZE_MAX - CAS_SERVER_BODY_OVERHEAD) / 4 / DRAIN_FACTOR) {
		snprintf(errmsg, errmsg_len, "max value size %zu too large", s->max_value);
		err = CAS_EINVAL;
		goto out_destroy_cond;
	}
	s->body_limit = 4 * b64 + CAS_SERVER_BODY_OVERHEAD;
	threads = cfg->threads ? cfg->threads : CAS_SERVER_DEFAULT_THREADS;
	err = resolve(cfg->host, cfg->port, &addr, &addr_len, errmsg, errmsg_len);
	if (err)
		goto out_destroy_cond;
	err = cas_http_take_security(s, cfg, &addr, errmsg, errmsg_len);
	if (err)
		goto out_free_security;
	cas_conns_resolve(&cfg->limits, &lim);
	err = cas_conns_start(s, &lim, &s->conns, errmsg, errmsg_len);
	if (err)
		goto out_free_security;
	flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
		MHD_ALLOW_SUSPEND_RESUME;
	if (addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (s->tls) {
		flags |= MHD_USE_TLS;
		tls_opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key};
		tls_opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert};
		if (s->tls_ca)
			tls_opts[n++] =
				(struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, s->tls_ca};
	}
	/* libmicrohttpd's own idle timeout only backs up conns.c's. */
	backstop_s = lim.idle_ms > lim.body_ms ? lim.idle_ms : lim.body_ms;
	backstop_s = (backstop_s > lim.header_ms ? backstop_s : lim.header_ms) / 1000 + 2;
	errno = 0;
	s->daemon = MHD_start_daemon(
		flags, cfg->port, cas_conns_accept, s, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
		on_mhd_log, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
		MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT,
		cas_conns_mhd_limit(&lim, threads), MHD_OPTION_CONNECTION_TIMEOUT, backstop_s,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
		cas_conns_notify, s, MHD_OPTION_URI_LOG_CALLBACK, cas_conns_request_line, s,
		MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
	if (!s->daemon) {
		snprintf(errmsg, errmsg_len, "cannot listen on %s:%u: %s",
			 cfg->host ? cfg->host : "*", (unsigned)cfg->port,
			 errno ? strerror(errno) : "libmicrohttpd refused");
		err = CAS_EIO;
		goto out_stop_conns;
	}
	info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
	if (!info || !info->port) {
		snprintf(errmsg, errmsg_len, "cannot learn the bound port");
		err = CAS_EIO;
		goto out_stop_daemon;
	}
	s->port = info->port;
	cas_http_log(s, CAS_SERVER_LOG_INFO,
		     "listening on port %u (%s%s%s), %u threads, body limit %zu bytes",
		     (unsigned)s->port, s->tls ? "HTTPS" : "HTTP",
		     s->client_certs ? ", client certificates" : "", s->token ? ", token" : "",
		     threads, s->body_limit);
	cas_http_log(s, CAS_SERVER_LOG_INFO,
		     "at most %u connections, %u per client address; deadlines: headers %u ms, "
		     "request %u ms, idle %u ms",
		     lim.max_connections, lim.max_per_address, lim.header_ms, lim.body_ms,
		     lim.idle_ms);
	*out = s;
	return CAS_OK;

out_stop_daemon:
	MHD_stop_daemon(s->daemon);
out_stop_conns:
	cas_conns_stop(s->conns);
out_free_security:
	cas_http_free_security(s);
out_destroy_cond:
	pthread_cond_destroy(&s->idle);
out_destroy_lock:
	pthread_mutex_destroy(&s->lock);
out_destroy_ratelog:
	pthread_mutex_destroy(&s->ratelog_lock);
out_free_server:
	free(s);
	return err;
}

uint16_t cas_server_port(const struct cas_server *s)
{
	return s->port;
}

size_t cas_server_body_limit(const struct cas_server *s)
{
	return s->body_limit;
}

void cas_server_stop(struct cas_server *s)
{
	if (!s)
		return;
	/* libmicrohttpd must not be stopped with suspended connections:
	 * wait for the store to answer those, and have any request that
	 * comes meanwhile wait on its thread instead. */
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	while (s->suspended)
		pthread_cond_wait(&s->idle, &s->lock);
	pthread_mutex_unlock(&s->lock);
	MHD_stop_daemon(s->daemon);
	cas_conns_stop(s->conns);
	cas_http_free_security(s);
	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->ratelog_lock);
	free(s);
}

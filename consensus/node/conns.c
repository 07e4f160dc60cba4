/* conns.c - casd's connections: limits and deadlines (conns.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "http_impl.h"
#include "metrics.h"
#include "conns.h"
#include "tls.h"

/* Buckets of the table of counts by address. */
#define ADDR_BUCKETS 256

/* The deadlines' thread looks this often (ms), at most: a quarter of the
 * shortest deadline, within these bounds. */
#define TICK_MIN_MS 10
#define TICK_MAX_MS 1000

/* The connections of one client address. */
struct cas_addr_count {
	struct cas_addr_count *next; /* in its bucket */
	int family;
	unsigned char bytes[16];
	unsigned live; /* tracked and not closing: what the limit counts */
	unsigned refs; /* records pointing here */
};

struct cas_conns {
	struct cas_server *s;
	struct cas_server_limits cfg;
	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t wake;  /* stopping */
	pthread_t thread;
	bool stopping;
	struct cas_conn *head; /* every tracked connection, oldest first */
	struct cas_conn *tail;
	unsigned live; /* tracked and not closing */
	struct cas_addr_count *buckets[ADDR_BUCKETS];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void cas_conns_resolve(const struct cas_server_limits *cfg, struct cas_server_limits *out)
{
	*out = *cfg;
	if (!out->max_connections)
		out->max_connections = CAS_SERVER_DEFAULT_MAX_CONNECTIONS;
	if (!out->max_per_address)
		out->max_per_address = CAS_SERVER_DEFAULT_MAX_PER_ADDRESS;
	if (out->max_per_address > out->max_connections)
		out->max_per_address = out->max_connections;
	if (!out->header_ms)
		out->header_ms = CAS_SERVER_DEFAULT_HEADER_MS;
	if (!out->body_ms)
		out->body_ms = CAS_SERVER_DEFAULT_BODY_MS;
	if (!out->idle_ms)
		out->idle_ms = CAS_SERVER_DEFAULT_IDLE_MS;
}

unsigned cas_conns_mhd_limit(const struct cas_server_limits *cfg, unsigned threads)
{
	/* libmicrohttpd splits its limit between its threads, and counts
	 * the connections being closed: twice ours, and some per thread. */
	return 2 * cfg->max_connections + 4 * threads;
}

/* The address of addr as a key (family and bytes); false for another
 * family. */
static bool key_of(const struct sockaddr *addr, socklen_t len, int *family, unsigned char bytes[16])
{
	memset(bytes, 0, 16);
	if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
		memcpy(bytes, &((const struct sockaddr_in *)addr)->sin_addr, 4);
		*family = AF_INET;
		return true;
	}
	if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
		memcpy(bytes, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
		*family = AF_INET6;
		return true;
	}
	return false;
}

static unsigned bucket_of(int family, const unsigned char bytes[16])
{
	uint32_t h = 2166136261u ^ (uint32_t)family; /* FNV-1a */
	int i;

	for (i = 0; i < 16; i++)
		h = (h ^ bytes[i]) * 16777619u;
	return h % ADDR_BUCKETS;
}

/* The count of an address; NULL when none is tracked. Lock held. */
static struct cas_addr_count *find_addr(struct cas_conns *l, int family,
					const unsigned char bytes[16])
{
	struct cas_addr_count *a;

	for (a = l->buckets[bucket_of(family, bytes)]; a; a = a->next)
		if (a->family == family && !memcmp(a->bytes, bytes, 16))
			return a;
	return NULL;
}

/* One more record for an address (made when missing); NULL without
 * memory. Lock held. */
static struct cas_addr_count *ref_addr(struct cas_conns *l, int family,
				       const unsigned char bytes[16])
{
	struct cas_addr_count *a = find_addr(l, family, bytes);
	unsigned b;

	if (!a) {
		a = calloc(1, sizeof(*a));
		if (!a)
			return NULL;
		a->family = family;
		memcpy(a->bytes, bytes, 16);
		b = bucket_of(family, bytes);
		a->next = l->buckets[b];
		l->buckets[b] = a;
	}
	a->refs++;
	return a;
}

/* One record fewer for a (freed at none). Lock held. */
static void unref_addr(struct cas_conns *l, struct cas_addr_count *a)
{
	struct cas_addr_count **p;

	if (--a->refs)
		return;
	for (p = &l->buckets[bucket_of(a->family, a->bytes)]; *p != a; p = &(*p)->next)
		;
	*p = a->next;
	free(a);
}

/* Shuts c's socket down and stops counting it: its thread closes it.
 * Lock held. */
static void close_conn(struct cas_conns *l, struct cas_conn *c)
{
	c->closing = true;
	l->live--;
	if (c->addr)
		c->addr->live--;
	shutdown(c->fd, SHUT_RDWR);
}

/* Closes, to make room, the connection of address a idle the longest;
 * with a NULL (the limit in all), any address's, and without an idle one
 * the one that has waited longest for a request's headers (a slow
 * client's, or an attacker's). False when there is none: the new
 * connection is refused. An address at its own limit never has its
 * connections that are sending a request closed for its next one. Lock
 * held. */
static bool evict(struct cas_conns *l, const struct cas_addr_count *a, uint64_t now)
{
	struct cas_conn *c, *idle = NULL, *slow = NULL, *victim;

	for (c = l->head; c; c = c->next) {
		if (c->closing || (a && c->addr != a))
			continue;
		if (c->state == CAS_CONN_IDLE && (!idle || c->since_ms < idle->since_ms))
			idle = c;
		else if (!a && (c->state == CAS_CONN_NEW || c->state == CAS_CONN_HEADERS) &&
			 (!slow || c->since_ms < slow->since_ms))
			slow = c;
	}
	victim = idle ? idle : slow;
	if (!victim)
		return false;
	close_conn(l, victim);
	cas_http_log_limited(
		l->s, CAS_LOG_EVICTED, CAS_SERVER_LOG_WARN,
		"closed connection from %s (%s for %llu ms) to make room for a new one",
		victim->peer, victim == idle ? "idle" : "no complete request",
		(unsigned long long)(now - victim->since_ms));
	return true;
}

/* The numeric address of addr, for a log line. */
static void addr_text(const struct sockaddr *addr, char *buf, size_t len)
{
	const void *bytes = NULL;

	snprintf(buf, len, "?");
	if (addr->sa_family == AF_INET)
		bytes = &((const struct sockaddr_in *)addr)->sin_addr;
	else if (addr->sa_family == AF_INET6)
		bytes = &((const struct sockaddr_in6 *)addr)->sin6_addr;
	if (bytes && !inet_ntop(addr->sa_family, bytes, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

enum MHD_Result cas_conns_accept(void *cls, const struct sockaddr *addr, socklen_t addr_len)
{
	struct cas_server *s = cls;
	struct cas_conns *l = s->conns;
	struct cas_addr_count *a = NULL;
	unsigned char bytes[16];
	char text[CAS_PEER_LEN];
	uint64_t now = now_ms();
	int family;
	bool ok = true;

	pthread_mutex_lock(&l->lock);
	if (key_of(addr, addr_len, &family, bytes))
		a = find_addr(l, family, bytes);
	if (a && a->live >= l->cfg.max_per_address && !evict(l, a, now)) {
		cas_metrics_conn_refused(CAS_METRICS_PER_ADDRESS);
		addr_text(addr, text, sizeof(text));
		cas_http_log_limited(s, CAS_LOG_PER_ADDRESS, CAS_SERVER_LOG_WARN,
				     "refused a connection from %s: it has %u open, the most "
				     "one address may have, none idle",
				     text, a->live);
		ok = false;
	} else if (l->live >= l->cfg.max_connections && !evict(l, NULL, now)) {
		cas_metrics_conn_refused(CAS_METRICS_TOTAL);
		addr_text(addr, text, sizeof(text));
		cas_http_log_limited(s, CAS_LOG_TOTAL, CAS_SERVER_LOG_WARN,
				     "refused a connection from %s: %u connections open, the "
				     "most in all, none idle or slow",
				     text, l->live);
		ok = false;
	}
	pthread_mutex_unlock(&l->lock);
	return ok ? MHD_YES : MHD_NO;
}

/* Makes and links the record of a new connection; NULL when it cannot be
 * tracked (then shut down). */
static struct cas_conn *track(struct cas_server *s, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info;
	struct cas_conns *l = s->conns;
	unsigned char bytes[16];
	struct cas_conn *c;
	int family, fd;

	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!info)
		return NULL;
	fd = info->connect_fd;
	c = calloc(1, sizeof(*c));
	if (!c) {
		shutdown(fd, SHUT_RDWR);
		return NULL;
	}
	c->s = s;
	c->conn = conn;
	c->fd = fd;
	c->state = CAS_CONN_NEW;
	c->since_ms = now_ms();
	cas_http_peer(conn, c->peer, sizeof(c->peer));
	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	pthread_mutex_lock(&l->lock);
	if (info && info->client_addr &&
	    key_of(info->client_addr,
		   info->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
							    : sizeof(struct sockaddr_in),
		   &family, bytes)) {
		c->addr = ref_addr(l, family, bytes);
		if (!c->addr) {
			pthread_mutex_unlock(&l->lock);
			free(c);
			shutdown(fd, SHUT_RDWR);
			return NULL;
		}
		c->addr->live++;
	}
	l->live++;
	cas_metrics_conn_open();
	c->prev = l->tail;
	if (l->tail)
		l->tail->next = c;
	else
		l->head = c;
	l->tail = c;
	pthread_mutex_unlock(&l->lock);
	return c;
}

static void untrack(struct cas_conns *l, struct cas_conn *c)
{
	cas_metrics_conn_close();
	pthread_mutex_lock(&l->lock);
	if (!c->closing) {
		l->live--;
		if (c->addr)
			c->addr->live--;
	}
	if (c->addr)
		unref_addr(l, c->addr);
	if (c->prev)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	pthread_mutex_unlock(&l->lock);
	free(c);
}

void cas_conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
		      enum MHD_ConnectionNotificationCode toe)
{
	struct cas_server *s = cls;
	struct cas_conn *c;

	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (*socket_context)
			untrack(s->conns, *socket_context);
		*socket_context = NULL;
		return;
	}
	c = track(s, conn);
	*socket_context = c;
	/* Before any byte of the handshake: its checks are set now. */
	if (c && s->client_certs && !cas_tls_setup_connection(conn)) {
		pthread_mutex_lock(&s->conns->lock);
		close_conn(s->conns, c);
		pthread_mutex_unlock(&s->conns->lock);
		cas_http_log_limited(s, CAS_LOG_CERT, CAS_SERVER_LOG_ERROR,
				     "closed connection from %s: cannot set up its TLS checks",
				     c->peer);
	}
}

struct cas_conn *cas_conns_conn(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info;

	info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return info ? info->socket_context : NULL;
}

void cas_conns_set_state(struct MHD_Connection *conn, enum cas_conn_state state)
{
	struct cas_conn *c = cas_conns_conn(conn);
	struct cas_conns *l;

	if (!c)
		return;
	l = c->s->conns;
	pthread_mutex_lock(&l->lock);
	c->state = state;
	c->since_ms = now_ms();
	pthread_mutex_unlock(&l->lock);
}

void *cas_conns_request_line(void *cls, const char *uri, struct MHD_Connection *conn)
{
	(void)cls;
	(void)uri;
	cas_conns_set_state(conn, CAS_CONN_HEADERS);
	return NULL;
}

/* Closes the connections past their deadline. Lock held. */
static void enforce(struct cas_conns *l, uint64_t now)
{
	struct cas_conn *c;
	uint64_t age;

	for (c = l->head; c; c = c->next) {
		if (c->closing || c->state == CAS_CONN_WAITING)
			continue;
		age = now - c->since_ms;
		switch (c->state) {
		case CAS_CONN_NEW:
		case CAS_CONN_HEADERS:
			if (age < l->cfg.header_ms)
				continue;
			close_conn(l, c);
			cas_metrics_refused(CAS_METRICS_LIMITS);
			cas_http_log_limited(l->s, CAS_LOG_HEADER_TIMEOUT, CAS_SERVER_LOG_WARN,
					     "closed connection from %s: no complete request "
					     "headers within %u ms",
					     c->peer, l->cfg.header_ms);
			break;
		case CAS_CONN_BODY:
			if (age < l->cfg.body_ms)
				continue;
			close_conn(l, c);
			cas_metrics_refused(CAS_METRICS_LIMITS);
			cas_http_log_limited(l->s, CAS_LOG_BODY_TIMEOUT, CAS_SERVER_LOG_WARN,
					     "closed connection from %s: request not done "
					     "within %u ms of its headers",
					     c->peer, l->cfg.body_ms);
			break;
		default:
			if (age < l->cfg.idle_ms)
				continue;
			close_conn(l, c);
			cas_http_log(l->s, CAS_SERVER_LOG_DEBUG,
				     "closed connection from %s: idle for %u ms", c->peer,
				     l->cfg.idle_ms);
			break;
		}
	}
}

static void *deadlines_main(void *arg)
{
	struct cas_conns *l = arg;
	unsigned tick = l->cfg.header_ms;
	struct timespec until;
	uint64_t ns;

	if (l->cfg.body_ms < tick)
		tick = l->cfg.body_ms;
	if (l->cfg.idle_ms < tick)
		tick = l->cfg.idle_ms;
	tick /= 4;
	tick = tick < TICK_MIN_MS ? TICK_MIN_MS : tick > TICK_MAX_MS ? TICK_MAX_MS : tick;
	pthread_mutex_lock(&l->lock);
	while (!l->stopping) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		ns = (uint64_t)until.tv_nsec + (uint64_t)tick * 1000000;
		until.tv_sec += (time_t)(ns / 1000000000);
		until.tv_nsec = (long)(ns % 1000000000);
		pthread_cond_timedwait(&l->wake, &l->lock, &until);
		if (!l->stopping)
			enforce(l, now_ms());
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

int cas_conns_start(struct cas_server *s, const struct cas_server_limits *cfg,
		    struct cas_conns **out, char *errmsg, size_t errmsg_len)
{
	pthread_condattr_t attr;
	struct cas_conns *l;
	int err = CAS_ENOMEM;

	*out = NULL;
	l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(errmsg, errmsg_len, "out of memory");
		return CAS_ENOMEM;
	}
	l->s = s;
	l->cfg = *cfg;
	if (pthread_mutex_init(&l->lock, NULL)) {
		snprintf(errmsg, errmsg_len, "cannot make a mutex");
		goto out_free;
	}
	if (pthread_condattr_init(&attr)) {
		snprintf(errmsg, errmsg_len, "cannot make a condition variable");
		goto out_destroy_lock;
	}
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	if (pthread_cond_init(&l->wake, &attr)) {
		pthread_condattr_destroy(&attr);
		snprintf(errmsg, errmsg_len, "cannot make a condition variable");
		goto out_destroy_lock;
	}
	pthread_condattr_destroy(&attr);
	if (pthread_create(&l->thread, NULL, deadlines_main, l)) {
		snprintf(errmsg, errmsg_len, "cannot start the deadlines' thread: %s",
			 strerror(errno));
		err = CAS_EIO;
		goto out_destroy_cond;
	}
	*out = l;
	return CAS_OK;

out_destroy_cond:
	pthread_cond_destroy(&l->wake);
out_destroy_lock:
	pthread_mutex_destroy(&l->lock);
out_free:
	free(l);
	return err;
}

void cas_conns_stop(struct cas_conns *l)
{
	struct cas_conn *c, *next;
	unsigned b;

	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	l->stopping = true;
	pthread_cond_broadcast(&l->wake);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->thread, NULL);
	/* libmicrohttpd said every connection closed; in case not: */
	for (c = l->head; c; c = next) {
		next = c->next;
		free(c);
	}
	for (b = 0; b < ADDR_BUCKETS; b++) {
		struct cas_addr_count *a, *an;

		for (a = l->buckets[b]; a; a = an) {
			an = a->next;
			free(a);
		}
	}
	pthread_cond_destroy(&l->wake);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

/* proxy.c - a fault-injecting TCP proxy on loopback: one poll loop per proxy. */
#define _GNU_SOURCE
#include "proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Largest read from one socket at a time. */
#define CHUNK_MAX 65536
/* Bytes one direction may hold before the proxy stops reading its source. */
#define QUEUE_MAX (1u << 20)
/* Longest poll: how late a mode change may be noticed without a wakeup. */
#define TICK_MS 100
/* How long nem_proxy_set and nem_proxy_cut wait for the thread. */
#define ANSWER_MS 5000
/* A connect to a paused node hangs (its backlog is full): give up then. */
#define CONNECT_MS 3000
/* Connections one proxy holds at most; past it, it stops accepting. */
#define CONNS_MAX 512

/* Bytes read from one side, to be written to the other once due. */
struct chunk {
	struct chunk *next;
	uint64_t due; /* ms on CLOCK_MONOTONIC */
	size_t len;
	size_t off;
	unsigned char data[];
};

/* One direction of a connection. */
struct flow {
	struct chunk *head;
	struct chunk *tail;
	size_t bytes;
	bool eof; /* the source said EOF */
};

struct conn {
	struct conn *next;
	int cfd;	 /* the client's side */
	int ufd;	 /* the upstream side; -1 until connecting */
	int idx;	 /* index of cfd's pollfd this round; -1: not polled */
	bool connecting; /* connect(ufd) in progress */
	uint64_t since;	 /* when the connect started (ms) */
	bool dead;
	struct flow up;	  /* client to upstream */
	struct flow down; /* upstream to client */
};

struct nem_proxy {
	pthread_t thread;
	int lfd;
	int wake[2];
	uint16_t port;
	uint16_t upstream;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* Under lock: what the control side asked, and what the thread took. */
	enum nem_proxy_mode mode;
	unsigned delay_ms;
	uint64_t req;
	uint64_t ack;
	uint64_t cut_req;
	bool stop;
	struct nem_proxy_stats st;
	/* The thread's own. */
	struct conn *conns;
	size_t nconns;
	uint64_t cut_done;
};

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void count(struct nem_proxy *p, uint64_t *field, uint64_t n)
{
	pthread_mutex_lock(&p->lock);
	*field += n;
	pthread_mutex_unlock(&p->lock);
}

static void flow_clear(struct flow *f)
{
	struct chunk *c, *next;

	for (c = f->head; c; c = next) {
		next = c->next;
		free(c);
	}
	memset(f, 0, sizeof(*f));
}

/* Closes fd so that the peer gets a reset, not an orderly EOF. */
static void close_reset(int fd)
{
	struct linger l = {1, 0};

	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

static void conn_reset(struct nem_proxy *p, struct conn *c)
{
	if (c->dead)
		return;
	close_reset(c->cfd);
	close_reset(c->ufd);
	c->cfd = c->ufd = -1;
	flow_clear(&c->up);
	flow_clear(&c->down);
	c->dead = true;
	count(p, &p->st.resets, 1);
}

static void conn_close(struct conn *c)
{
	close(c->cfd);
	if (c->ufd >= 0)
		close(c->ufd);
	c->cfd = c->ufd = -1;
	flow_clear(&c->up);
	flow_clear(&c->down);
	c->dead = true;
}

static void reset_all(struct nem_proxy *p)
{
	struct conn *c;

	for (c = p->conns; c; c = c->next)
		conn_reset(p, c);
}

static void reap(struct nem_proxy *p)
{
	struct conn **pp = &p->conns, *c;

	while ((c = *pp)) {
		if (c->dead) {
			*pp = c->next;
			free(c);
			p->nconns--;
		} else {
			pp = &c->next;
		}
	}
}

static void nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void accept_all(struct nem_proxy *p)
{
	struct conn *c;
	int fd;

	while ((fd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		c = calloc(1, sizeof(*c));
		if (!c) {
			close_reset(fd);
			continue;
		}
		nodelay(fd);
		c->cfd = fd;
		c->ufd = -1;
		c->idx = -1;
		c->next = p->conns;
		p->conns = c;
		p->nconns++;
		count(p, &p->st.accepted, 1);
		if (p->nconns >= CONNS_MAX)
			break;
	}
}

/* Starts connecting c to the upstream port; a refusal resets c. */
static void start_connect(struct nem_proxy *p, struct conn *c)
{
	struct sockaddr_in a;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		conn_reset(p, c);
		return;
	}
	nodelay(fd);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(p->upstream);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c->ufd = fd;
	c->since = now_ms();
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		return;
	if (errno == EINPROGRESS) {
		c->connecting = true;
		return;
	}
	conn_reset(p, c);
}

/* Reads what fd has into f, due delay_ms from now. -1 on a socket error. */
static int read_into(int fd, struct flow *f, unsigned delay_ms)
{
	unsigned char buf[CHUNK_MAX];
	struct chunk *c;
	ssize_t n;

	n = recv(fd, buf, sizeof(buf), 0);
	if (n == 0) {
		f->eof = true;
		return 0;
	}
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	c = malloc(sizeof(*c) + (size_t)n);
	if (!c)
		return -1;
	c->next = NULL;
	c->due = now_ms() + delay_ms;
	c->len = (size_t)n;
	c->off = 0;
	memcpy(c->data, buf, (size_t)n);
	if (f->tail)
		f->tail->next = c;
	else
		f->head = c;
	f->tail = c;
	f->bytes += (size_t)n;
	return 0;
}

/* Writes f's due chunks to fd until it would block. -1 on a socket error. */
static int write_out(struct nem_proxy *p, int fd, struct flow *f, uint64_t now)
{
	struct chunk *c;
	ssize_t n;

	while ((c = f->head) && c->due <= now) {
		n = send(fd, c->data + c->off, c->len - c->off, MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		c->off += (size_t)n;
		f->bytes -= (size_t)n;
		count(p, &p->st.bytes, (uint64_t)n);
		if (c->off < c->len)
			return 0;
		f->head = c->next;
		if (!f->head)
			f->tail = NULL;
		free(c);
	}
	return 0;
}

/* True once a side said EOF and everything it sent before was written:
 * the connection is then closed, both ways. HTTP clients and servers
 * close whole connections; keeping the other half open would only keep
 * sockets in CLOSE-WAIT on a node until its idle timeout. */
static bool finished(const struct conn *c)
{
	return (c->up.eof && !c->up.head && c->ufd >= 0 && !c->connecting) ||
	       (c->down.eof && !c->down.head);
}

static bool due(const struct flow *f, uint64_t now)
{
	return f->head && f->head->due <= now;
}

static short want_cfd(const struct conn *c, uint64_t now)
{
	short ev = 0;

	if (!c->up.eof && c->up.bytes < QUEUE_MAX)
		ev |= POLLIN;
	if (due(&c->down, now))
		ev |= POLLOUT;
	return ev;
}

static short want_ufd(const struct conn *c, uint64_t now)
{
	short ev = 0;

	if (c->ufd < 0)
		return 0;
	if (c->connecting)
		return POLLOUT;
	if (!c->down.eof && c->down.bytes < QUEUE_MAX)
		ev |= POLLIN;
	if (due(&c->up, now))
		ev |= POLLOUT;
	return ev;
}

/* Moves c's bytes as far as its sockets let it; resets c on an error. */
static void pump(struct nem_proxy *p, struct conn *c, const struct pollfd *pc,
		 const struct pollfd *pu, unsigned delay_ms)
{
	uint64_t now;
	int err = 0;
	socklen_t len = sizeof(err);

	if (c->connecting && pu->revents) {
		if (getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
			conn_reset(p, c);
			return;
		}
		c->connecting = false;
	}
	if (c->connecting && now_ms() - c->since > CONNECT_MS) {
		conn_reset(p, c);
		return;
	}
	if ((pc->events & POLLIN) && (pc->revents & (POLLIN | POLLHUP | POLLERR)) &&
	    read_into(c->cfd, &c->up, delay_ms)) {
		conn_reset(p, c);
		return;
	}
	if (!c->connecting && c->ufd >= 0 && (pu->events & POLLIN) &&
	    (pu->revents & (POLLIN | POLLHUP | POLLERR)) && read_into(c->ufd, &c->down, delay_ms)) {
		conn_reset(p, c);
		return;
	}
	now = now_ms();
	if (!c->connecting && c->ufd >= 0 && write_out(p, c->ufd, &c->up, now)) {
		conn_reset(p, c);
		return;
	}
	if (write_out(p, c->cfd, &c->down, now)) {
		conn_reset(p, c);
		return;
	}
	if (finished(c))
		conn_close(c);
}

/* The poll timeout: the next chunk to become due, at most TICK_MS. Chunks
 * due already wait for POLLOUT instead. */
static int next_timeout(const struct nem_proxy *p, uint64_t now)
{
	uint64_t t = now + TICK_MS;
	const struct conn *c;

	for (c = p->conns; c; c = c->next) {
		if (c->up.head && c->up.head->due > now && c->up.head->due < t)
			t = c->up.head->due;
		if (c->down.head && c->down.head->due > now && c->down.head->due < t)
			t = c->down.head->due;
	}
	return (int)(t - now);
}

static void *run(void *arg)
{
	struct nem_proxy *p = arg;
	struct pollfd *pfd = NULL, *grown;
	size_t cap = 0, n, i;
	enum nem_proxy_mode mode;
	unsigned delay_ms;
	uint64_t now, gen, cut;
	struct conn *c;
	char sink[64];
	int timeout;

	for (;;) {
		pthread_mutex_lock(&p->lock);
		if (p->stop) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		mode = p->mode;
		delay_ms = mode == NEM_PROXY_DELAY ? p->delay_ms : 0;
		gen = p->req;
		cut = p->cut_req;
		pthread_mutex_unlock(&p->lock);
		if (cut != p->cut_done) {
			reset_all(p);
			p->cut_done = cut;
		}
		reap(p);
		pthread_mutex_lock(&p->lock);
		p->ack = gen;
		pthread_cond_broadcast(&p->cond);
		pthread_mutex_unlock(&p->lock);

		if (mode != NEM_PROXY_BLACKHOLE)
			for (c = p->conns; c; c = c->next)
				if (!c->dead && c->ufd < 0)
					start_connect(p, c);
		reap(p);

		n = 2;
		for (c = p->conns; c; c = c->next)
			n += 2;
		if (n > cap) {
			grown = realloc(pfd, n * sizeof(*pfd));
			if (!grown) {
				reset_all(p);
				reap(p);
				continue;
			}
			pfd = grown;
			cap = n;
		}
		now = now_ms();
		pfd[0] = (struct pollfd){p->wake[0], POLLIN, 0};
		pfd[1] = (struct pollfd){p->nconns < CONNS_MAX ? p->lfd : -1, POLLIN, 0};
		i = 2;
		for (c = p->conns; c; c = c->next) {
			short ec = 0, eu = 0;

			if (mode != NEM_PROXY_BLACKHOLE) {
				ec = want_cfd(c, now);
				eu = want_ufd(c, now);
			}
			pfd[i] = (struct pollfd){ec ? c->cfd : -1, ec, 0};
			pfd[i + 1] = (struct pollfd){eu ? c->ufd : -1, eu, 0};
			c->idx = (int)i;
			i += 2;
		}
		timeout = mode == NEM_PROXY_BLACKHOLE ? TICK_MS : next_timeout(p, now);
		if (poll(pfd, n, timeout) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			while (read(p->wake[0], sink, sizeof(sink)) > 0)
				;
		if (mode != NEM_PROXY_BLACKHOLE)
			for (c = p->conns; c; c = c->next)
				if (!c->dead && c->idx >= 0)
					pump(p, c, &pfd[c->idx], &pfd[c->idx + 1], delay_ms);
		if (pfd[1].revents)
			accept_all(p);
		reap(p);
	}
	free(pfd);
	return NULL;
}

static void wake(struct nem_proxy *p)
{
	ssize_t n = write(p->wake[1], "x", 1);

	(void)n; /* a full pipe already wakes the thread */
}

/* Waits, with p->lock held, until the thread took request gen. */
static int wait_ack(struct nem_proxy *p, uint64_t gen)
{
	struct timespec end;
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += ANSWER_MS / 1000;
	while (p->ack < gen && rc == 0)
		rc = pthread_cond_timedwait(&p->cond, &p->lock, &end);
	return p->ack >= gen ? 0 : -1;
}

int nem_proxy_start(uint16_t upstream_port, struct nem_proxy **out, char *errmsg, size_t errmsg_len)
{
	struct nem_proxy *p;
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	pthread_condattr_t ca;
	int one = 1;

	p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(errmsg, errmsg_len, "out of memory");
		return -1;
	}
	p->upstream = upstream_port;
	p->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->lfd < 0)
		goto out_errno_free;
	setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(p->lfd, (struct sockaddr *)&a, sizeof(a)) || listen(p->lfd, 256) ||
	    getsockname(p->lfd, (struct sockaddr *)&a, &alen))
		goto out_errno_close_listen;
	p->port = ntohs(a.sin_port);
	if (pipe2(p->wake, O_NONBLOCK | O_CLOEXEC))
		goto out_errno_close_listen;
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&p->thread, NULL, run, p)) {
		snprintf(errmsg, errmsg_len, "cannot start the proxy thread");
		goto out_destroy_sync;
	}
	*out = p;
	return 0;

out_destroy_sync:
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	close(p->wake[0]);
	close(p->wake[1]);
	close(p->lfd);
	free(p);
	return -1;
out_errno_close_listen:
	snprintf(errmsg, errmsg_len, "proxy socket: %s", strerror(errno));
	close(p->lfd);
	free(p);
	return -1;
out_errno_free:
	snprintf(errmsg, errmsg_len, "proxy socket: %s", strerror(errno));
	free(p);
	return -1;
}

uint16_t nem_proxy_port(const struct nem_proxy *p)
{
	return p->port;
}

int nem_proxy_set(struct nem_proxy *p, enum nem_proxy_mode mode, unsigned delay_ms)
{
	uint64_t gen;
	int rc;

	pthread_mutex_lock(&p->lock);
	p->mode = mode;
	p->delay_ms = delay_ms;
	gen = ++p->req;
	wake(p);
	rc = wait_ack(p, gen);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

int nem_proxy_cut(struct nem_proxy *p)
{
	uint64_t gen;
	int rc;

	pthread_mutex_lock(&p->lock);
	p->cut_req++;
	p->st.cuts++;
	gen = ++p->req;
	wake(p);
	rc = wait_ack(p, gen);
	pthread_mutex_unlock(&p->lock);
	return rc;
}

void nem_proxy_stats(struct nem_proxy *p, struct nem_proxy_stats *st)
{
	pthread_mutex_lock(&p->lock);
	*st = p->st;
	pthread_mutex_unlock(&p->lock);
}

void nem_proxy_stop(struct nem_proxy *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	wake(p);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	reset_all(p);
	reap(p);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	close(p->wake[0]);
	close(p->wake[1]);
	close(p->lfd);
	free(p);
}

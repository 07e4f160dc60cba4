/* connflood.c - one address holding many connections to a casd: idle ones,
 * or requests whose headers come one line at a time (slowloris), as issue
 * #13 describes; casd_limits.sh runs it beside an honest client.
 *
 * connflood --port PORT [--host ADDR] [--bind ADDR] [--count N]
 *           [--mode idle|headers] [--interval-ms N] [--seconds N]
 *           [--ready-file FILE]
 *
 *   --host ADDR        the casd, an IPv4 address (default 127.0.0.1).
 *   --bind ADDR        the address the connections come from (default
 *                      127.0.0.2): only 127.0.0.0/8 in tests.
 *   --count N          connections to hold (default 1100, at most 4096).
 *   --mode idle        connect and send nothing (the default);
 *   --mode headers     send "POST /v1/accept HTTP/1.1" and a Host header,
 *                      then one more header line per connection every
 *                      --interval-ms (default 1000), never the blank line
 *                      that ends them.
 *   --seconds N        how long to hold them (default 10, at most 600).
 *   --ready-file FILE  written once every connection was tried.
 *
 * A connection the server closes (or refuses) is opened again a quarter of
 * a second later, as an attacker would; at the end it prints one line:
 * "opened O closed-by-server C open-at-end E" and exits 0 (1: a setup
 * error; 2: bad usage). It exits when its parent dies. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define COUNT_MAX 4096
/* How long a connection the server closed stays closed. */
#define REOPEN_MS 250

struct conn {
	int fd;
	bool connected;
	uint64_t next_ms; /* headers mode: when the next line goes; closed:
			   * when to connect again */
	unsigned lines;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void usage(void)
{
	fputs("usage: connflood --port PORT [--host ADDR] [--bind ADDR] [--count N]\n"
	      "                 [--mode idle|headers] [--interval-ms N] [--seconds N]\n"
	      "                 [--ready-file FILE]\n",
	      stderr);
	exit(2);
}

static unsigned long number(const char *s, unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v > max)
		usage();
	return v;
}

/* Starts a non-blocking connect from src to dst; -1 on a local error. */
static int open_conn(const struct sockaddr_in *src, const struct sockaddr_in *dst)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (bind(fd, (const struct sockaddr *)src, sizeof(*src)) ||
	    (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) && errno != EINPROGRESS)) {
		close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
	const char *host = "127.0.0.1", *bind_addr = "127.0.0.2", *ready = NULL;
	unsigned long count = 1100, interval = 1000, seconds = 10, port = 0;
	unsigned long opened = 0, closed = 0, open_now;
	bool headers = false;
	struct pollfd *pfd;
	struct conn *c;
	struct rlimit rl;
	uint64_t end, now;
	size_t i;
	int a;

	for (a = 1; a < argc; a++) {
		if (a + 1 >= argc)
			usage();
		if (!strcmp(argv[a], "--port"))
			port = number(argv[++a], 65535);
		else if (!strcmp(argv[a], "--host"))
			host = argv[++a];
		else if (!strcmp(argv[a], "--bind"))
			bind_addr = argv[++a];
		else if (!strcmp(argv[a], "--count"))
			count = number(argv[++a], COUNT_MAX);
		else if (!strcmp(argv[a], "--interval-ms"))
			interval = number(argv[++a], 600000);
		else if (!strcmp(argv[a], "--seconds"))
			seconds = number(argv[++a], 600);
		else if (!strcmp(argv[a], "--ready-file"))
			ready = argv[++a];
		else if (!strcmp(argv[a], "--mode")) {
			a++;
			if (!strcmp(argv[a], "headers"))
				headers = true;
			else if (strcmp(argv[a], "idle"))
				usage();
		} else
			usage();
	}
	if (!port || !count || inet_pton(AF_INET, host, &dst.sin_addr) != 1 ||
	    inet_pton(AF_INET, bind_addr, &src.sin_addr) != 1)
		usage();
	dst.sin_port = htons((uint16_t)port);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGPIPE, SIG_IGN);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < count + 64) {
		rl.rlim_cur = rl.rlim_max < count + 64 ? rl.rlim_max : count + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	c = calloc(count, sizeof(*c));
	pfd = calloc(count, sizeof(*pfd));
	if (!c || !pfd) {
		fputs("connflood: out of memory\n", stderr);
		return 1;
	}
	for (i = 0; i < count; i++) {
		c[i].fd = open_conn(&src, &dst);
		if (c[i].fd < 0) {
			fprintf(stderr, "connflood: connection %zu: %s\n", i, strerror(errno));
			return 1;
		}
		opened++;
	}
	if (ready) {
		FILE *f = fopen(ready, "w");

		if (f)
			fclose(f);
	}
	end = now_ms() + seconds * 1000;
	while ((now = now_ms()) < end) {
		for (i = 0; i < count; i++) {
			if (c[i].fd < 0 && now >= c[i].next_ms) {
				c[i] = (struct conn){.fd = open_conn(&src, &dst)};
				if (c[i].fd < 0) {
					fprintf(stderr, "connflood: reconnect: %s\n",
						strerror(errno));
					return 1;
				}
				opened++;
			}
			pfd[i].fd = c[i].fd; /* -1: ignored by poll */
			pfd[i].events = c[i].connected ? POLLIN : POLLOUT;
			pfd[i].revents = 0;
		}
		poll(pfd, count, 50);
		now = now_ms();
		for (i = 0; i < count; i++) {
			char buf[512];
			int n;

			if (c[i].fd < 0)
				continue;
			if (pfd[i].revents & POLLOUT && !c[i].connected) {
				int err = 0;
				socklen_t len = sizeof(err);

				getsockopt(c[i].fd, SOL_SOCKET, SO_ERROR, &err, &len);
				if (!err) {
					c[i].connected = true;
					c[i].next_ms = now;
					continue;
				}
			} else if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
				n = (int)recv(c[i].fd, buf, sizeof(buf), MSG_DONTWAIT);
				if (n > 0 || (n < 0 && errno == EAGAIN))
					continue; /* an answer: keep holding it */
			} else {
				if (headers && c[i].connected && now >= c[i].next_ms) {
					const char *line = c[i].lines
								   ? "X-Slow: 1\r\n"
								   : "POST /v1/accept HTTP/1.1\r\n"
								     "Host: casd\r\n";

					if (send(c[i].fd, line, strlen(line), MSG_NOSIGNAL) >= 0) {
						c[i].lines++;
						c[i].next_ms = now + interval;
						continue;
					}
				} else {
					continue;
				}
			}
			/* Closed or refused by the server: again, soon. */
			close(c[i].fd);
			closed++;
			c[i] = (struct conn){.fd = -1, .next_ms = now + REOPEN_MS};
		}
	}
	open_now = 0;
	for (i = 0; i < count; i++) {
		if (c[i].connected)
			open_now++;
		if (c[i].fd >= 0)
			close(c[i].fd);
	}
	printf("opened %lu closed-by-server %lu open-at-end %lu\n", opened, closed, open_now);
	free(c);
	free(pfd);
	return 0;
}

/* proxy.h - a fault-injecting TCP proxy on loopback: pass, delay, blackhole, cut. */
#ifndef NEM_PROXY_H
#define NEM_PROXY_H

#include <stddef.h>
#include <stdint.h>

/* One listening port on 127.0.0.1 that forwards every connection to one
 * upstream port on 127.0.0.1, run by its own thread. Opaque. */
struct nem_proxy;

enum nem_proxy_mode {
	NEM_PROXY_PASS,	     /* forward at once */
	NEM_PROXY_DELAY,     /* forward every chunk delay_ms after it arrived, both ways */
	NEM_PROXY_BLACKHOLE, /* accept, but forward nothing and connect nowhere */
};

struct nem_proxy_stats {
	uint64_t accepted; /* connections accepted */
	uint64_t resets;   /* connections reset (cut, or an error on either side) */
	uint64_t cuts;	   /* nem_proxy_cut calls */
	uint64_t bytes;	   /* bytes forwarded, both ways */
};

/* Listens on 127.0.0.1 (any free port) and forwards to upstream_port,
 * mode PASS. On success *out is a running proxy to stop with
 * nem_proxy_stop; on error *out is untouched and errmsg holds a reason.
 * Returns 0 or -1. */
int nem_proxy_start(uint16_t upstream_port, struct nem_proxy **out, char *errmsg,
		    size_t errmsg_len);

/* The port the proxy listens on; it stays the same until nem_proxy_stop. */
uint16_t nem_proxy_port(const struct nem_proxy *p);

/* Switches the mode (delay_ms matters for NEM_PROXY_DELAY only) and
 * returns once the proxy's thread has taken it (at most 5 s). Data a
 * blackhole held is forwarded, late, once the mode is PASS or DELAY again:
 * a network that delays a message arbitrarily. Returns 0, or -1 when the
 * thread did not answer in time. */
int nem_proxy_set(struct nem_proxy *p, enum nem_proxy_mode mode, unsigned delay_ms);

/* Resets every connection open now, both sides (RST), and returns once
 * done (at most 5 s). New connections are accepted as the mode says.
 * Returns 0 or -1. */
int nem_proxy_cut(struct nem_proxy *p);

/* Copies p's counters into st. */
void nem_proxy_stats(struct nem_proxy *p, struct nem_proxy_stats *st);

/* Stops the thread, resets every connection and frees p. NULL is a no-op. */
void nem_proxy_stop(struct nem_proxy *p);

#endif

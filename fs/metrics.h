/* metrics.h - casfs's Prometheus metrics (-o metrics=ADDRESS:PORT, README
 * "Monitor"): the latency of FUSE requests by operation (process-wide
 * atomic histograms), the client's counters (cas_client_stats) read at
 * scrape time, and the HTTP server that serves them on threads of its
 * own (libmicrohttpd). */
#ifndef CASFS_METRICS_H
#define CASFS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <cas/client.h>

/* Every FUSE operation casfs implements (ops.c's table, init and destroy
 * aside), as X(NAME, label): the label is the metric's op="...". */
#define CASFS_METRICS_OPS(X)                                                                       \
	X(LOOKUP, lookup)                                                                          \
	X(FORGET, forget)                                                                          \
	X(FORGET_MULTI, forget_multi)                                                              \
	X(GETATTR, getattr)                                                                        \
	X(SETATTR, setattr)                                                                        \
	X(READLINK, readlink)                                                                      \
	X(MKNOD, mknod)                                                                            \
	X(MKDIR, mkdir)                                                                            \
	X(UNLINK, unlink)                                                                          \
	X(RMDIR, rmdir)                                                                            \
	X(SYMLINK, symlink)                                                                        \
	X(RENAME, rename)                                                                          \
	X(LINK, link)                                                                              \
	X(OPEN, open)                                                                              \
	X(READ, read)                                                                              \
	X(WRITE, write)                                                                            \
	X(FLUSH, flush)                                                                            \
	X(RELEASE, release)                                                                        \
	X(FSYNC, fsync)                                                                            \
	X(OPENDIR, opendir)                                                                        \
	X(READDIR, readdir)                                                                        \
	X(RELEASEDIR, releasedir)                                                                  \
	X(FSYNCDIR, fsyncdir)                                                                      \
	X(STATFS, statfs)                                                                          \
	X(SETXATTR, setxattr)                                                                      \
	X(GETXATTR, getxattr)                                                                      \
	X(LISTXATTR, listxattr)                                                                    \
	X(REMOVEXATTR, removexattr)                                                                \
	X(CREATE, create)                                                                          \
	X(GETLK, getlk)                                                                            \
	X(SETLK, setlk)                                                                            \
	X(FLOCK, flock)

#define CASFS_METRICS_ENUM(name, label) CASFS_OP_##name,
enum casfs_metrics_op { CASFS_METRICS_OPS(CASFS_METRICS_ENUM) CASFS_OPS };
#undef CASFS_METRICS_ENUM

/* A monotonic clock in nanoseconds, to time what casfs_metrics_end
 * observes. */
uint64_t casfs_metrics_now_ns(void);

/* A FUSE request of op begins: counts it in flight; returns the time to
 * pass to casfs_metrics_end. Lock-free, any thread. */
uint64_t casfs_metrics_begin(enum casfs_metrics_op op);

/* The request of op begun at start_ns (casfs_metrics_begin) ended (its
 * handler returned): observes its latency. Lock-free, any thread. */
void casfs_metrics_end(enum casfs_metrics_op op, uint64_t start_ns);

/* Writes every metric, the client's from st, in the Prometheus text
 * exposition format 0.0.4. On CAS_OK *out is malloc'd (the caller frees
 * it) and *len its bytes; CAS_ENOMEM otherwise, *out NULL. */
int casfs_metrics_write(const struct cas_client_stats *st, char **out, size_t *len);

/* Opens a TCP socket listening on host:port, host an IPv4 or IPv6 address
 * literal (as casfs_options gives it, without brackets): *fd, to pass to
 * casfs_metrics_start (close-on-exec; it survives fuse_daemonize, which
 * threads do not: listen before daemonizing, start after). CAS_EINVAL for
 * a host that is no address, CAS_EIO when the address cannot be bound
 * (in use, not local, not allowed), with a one-line reason in errmsg that
 * names host:port; *fd is -1 then. */
int casfs_metrics_listen(const char *host, unsigned port, int *fd, char *errmsg, size_t errmsg_len);

/* A running metrics server. Opaque. */
struct casfs_metrics_server;

/* Fills *st with the client's counters (cas_client_stats), at every
 * scrape, on the server's thread. */
typedef void casfs_metrics_stats_fn(void *arg, struct cas_client_stats *st);

/* Serves GET (and HEAD) /metrics on fd (from casfs_metrics_listen; taken
 * over: closed by casfs_metrics_stop, or here on error) on a thread of
 * its own, with the counters stats(arg) gives; arg must outlive the
 * server. Other paths are 404, other methods 405. CAS_OK and *out, or
 * CAS_EIO / CAS_ENOMEM with a one-line reason in errmsg. */
int casfs_metrics_start(int fd, casfs_metrics_stats_fn *stats, void *arg,
			struct casfs_metrics_server **out, char *errmsg, size_t errmsg_len);

/* Stops s (NULL: nothing) and frees it: requests under way finish, the
 * socket closes. */
void casfs_metrics_stop(struct casfs_metrics_server *s);

#endif

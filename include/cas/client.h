/* client.h - the CASPaxos register client: read, change and cas on a
 * cluster of casd acceptors. */
#ifndef CAS_CLIENT_H
#define CAS_CLIENT_H

#include <cas/cas.h>

/* A client: a proposer with its own id and kept-alive connections to every
 * acceptor. Opaque. All functions below are safe to call from many threads
 * at once on one client, except cas_client_close. */
struct cas_client;

struct cas_client_config {
	/* Deadline of one operation when the call passes timeout_ms == 0.
	 * 0 here means 5000 ms. */
	unsigned timeout_ms;
	/* Largest value a change may write (EFBIG-style CAS_ETOOBIG past it).
	 * 0 means CAS_DEFAULT_MAX_VALUE. */
	size_t max_value_size;
	/* Turns off the one-round-trip optimization (each operation then
	 * runs a prepare and an accept); for measurements. */
	bool no_fast_path;
};

/* Opens a client on nodes, a comma-separated list of acceptor base URLs
 * ("http://127.0.0.1:7001,http://127.0.0.1:7002,..."), at most 64. cfg
 * may be NULL for defaults. Contacts no node. The client's proposer id
 * (the low part of its ballots) is drawn from the kernel's random source
 * at every open and cannot be chosen: an id used again after a restart
 * would reuse ballots. Without random bytes the open fails (CAS_EIO).
 * On success *out is a client to close with cas_client_close. On error *out is untouched and errmsg
 * (when not NULL) holds a one-line reason. */
CAS_API int cas_client_open(const char *nodes, const struct cas_client_config *cfg,
			    struct cas_client **out, char *errmsg, size_t errmsg_len);

/* Closes c and frees everything it holds. No call may be running on c. */
CAS_API void cas_client_close(struct cas_client *c);

/* Number of acceptors c was opened on. */
CAS_API size_t cas_client_nodes(const struct cas_client *c);

/* The base URL of acceptor i (0 <= i < cas_client_nodes(c)); valid until
 * cas_client_close. */
CAS_API const char *cas_client_node_url(const struct cas_client *c, size_t i);

/* Asks acceptor i for its health endpoint; CAS_OK when it answered within
 * timeout_ms. */
CAS_API int cas_client_ping(struct cas_client *c, size_t i, unsigned timeout_ms);

/* Applies fn to key's register within timeout_ms (0: the client's default).
 * On CAS_OK, and on a code that fn returned, out (may be NULL) receives
 * the register's value after the operation; the caller frees it with
 * cas_value_clear. On other errors out is zeroed. CAS_EUNAVAILABLE: no
 * majority in time, or (rarely: 16 other clients changed the key during
 * this call) an earlier attempt of this call may have been applied and
 * then dropped from the register's memory of its last 16 writers; either
 * way the change may or may not have been applied. Calls of one client on
 * one key run one at a time, in turn. */
CAS_API int cas_change(struct cas_client *c, const char *key, cas_change_fn fn, void *arg,
		       unsigned timeout_ms, struct cas_value *out);

/* Reads key linearizably: a query of every acceptor, answered when a
 * majority agree on the accepted ballot; otherwise a prepare and an accept
 * of the identity. out as for cas_change. */
CAS_API int cas_read(struct cas_client *c, const char *key, unsigned timeout_ms,
		     struct cas_value *out);

/* Writes data (len bytes, copied) to key whatever its value. On success
 * *version (may be NULL) is the new version. */
CAS_API int cas_put(struct cas_client *c, const char *key, const void *data, size_t len,
		    unsigned timeout_ms, uint64_t *version);

/* Writes data to key only if its version is still expected (0: the key was
 * never written). CAS_EVERSION when it moved: nothing is written and
 * *version (may be NULL) is the current version. On success *version is
 * the new version (expected + 1). */
CAS_API int cas_cas(struct cas_client *c, const char *key, uint64_t expected, const void *data,
		    size_t len, unsigned timeout_ms, uint64_t *version);

#endif

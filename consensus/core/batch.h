/* batch.h - many protocol requests in one HTTP request (POST /v1/batch),
 * so that concurrent operations of one client share round trips to a node
 * (PROTOCOL.md, "Batches"). Only the binary form travels in batches. */
#ifndef CAS_BATCH_H
#define CAS_BATCH_H

#include <stddef.h>

/*
 * Request body (Content-Type application/x-casfs), one or more items:
 *
 *   4     len, little-endian: the bytes of the item that follows
 *   len   one binary request (PREPARE, ACCEPT or QUERY, as codec_bin.h
 *         encodes it; its type byte says which)
 *
 * At most CAS_BATCH_MAX_ITEMS items. The node runs the items as if each
 * had come on its own request at the same time (a node's group commit
 * makes the changing ones durable together) and answers 200 once every
 * item has its outcome, with one entry per item, in the same order:
 *
 *   1     status, one of enum cas_batch_status
 *   4     len, little-endian
 *   len   CAS_BATCH_OK: the binary reply (PROMISE, ACCEPTED, REJECT or
 *         CURRENT); otherwise a one-line reason, text
 *
 * A body that does not split into items this way (truncated, trailing
 * bytes, no item, too many) is refused whole, 400 with a JSON error, and
 * nothing of it runs. An item that is malformed on its own fails alone.
 */

/* Most items in one batch. */
#define CAS_BATCH_MAX_ITEMS 256

/* Largest batch body a node takes (whatever its largest value); a client
 * sends an item that would not fit in one on its own, not in a batch. */
#define CAS_BATCH_MAX_BYTES (1024u * 1024u)

/* The outcome of one item. */
enum cas_batch_status {
	CAS_BATCH_OK = 0,      /* the node's reply follows */
	CAS_BATCH_BAD = 1,     /* malformed item (what a single request gets 400 for) */
	CAS_BATCH_TOO_BIG = 2, /* value over the node's limit (413) */
	CAS_BATCH_FAILED = 3,  /* the node failed to run it, nothing promised (500) */
};

/* One item of a batch body: len bytes at data, inside the body. */
struct cas_batch_item {
	const unsigned char *data;
	size_t len;
};

/* Splits a batch body into its items, in order, into items[0..*n). The
 * items point into body (borrowed: valid while body is). A body that does
 * not split (no item, a length running past its end, bytes after the last
 * item, more than CAS_BATCH_MAX_ITEMS items) is CAS_EINVAL with a
 * one-line reason in errmsg, *n 0. Items are not looked into. */
int cas_batch_split(const void *body, size_t len, struct cas_batch_item items[CAS_BATCH_MAX_ITEMS],
		    size_t *n, char *errmsg, size_t errmsg_len);

/* One entry of a batch answer: its status and its bytes (the binary reply
 * for CAS_BATCH_OK, else the reason's text). */
struct cas_batch_entry {
	enum cas_batch_status status;
	const void *data;
	size_t len;
};

/* Builds the answer made of entries[0..n), in order. On success *out is a
 * malloc'd buffer of *out_len bytes, the caller's to free. Errors:
 * CAS_ETOOBIG (an entry over 2^32 - 1 bytes), CAS_ENOMEM; *out is NULL
 * and *out_len 0 then. */
int cas_batch_encode(const struct cas_batch_entry *entries, size_t n, unsigned char **out,
		     size_t *out_len);

/* The client's half: building a request body, reading an answer. */

/* Bytes in front of an item of a request body (its length field), and in
 * front of an entry of an answer (its status and length fields). */
#define CAS_BATCH_ITEM_HEAD  4
#define CAS_BATCH_ENTRY_HEAD 5

/* Appends the item of item_len bytes at item (one binary request, not
 * looked into) to the request body in *buf: *len bytes used of *cap
 * allocated (*buf NULL and both 0 for a new body). When the item does not
 * fit, *buf is realloc'd to twice the bytes needed. The body stays the
 * caller's to free. The caller keeps the batch within CAS_BATCH_MAX_ITEMS
 * and CAS_BATCH_MAX_BYTES: they are not checked here. Errors: CAS_ETOOBIG
 * (an item over 2^32 - 1 bytes, or a body that would pass SIZE_MAX),
 * CAS_ENOMEM; *buf, *len and *cap are unchanged then. */
int cas_batch_append(unsigned char **buf, size_t *len, size_t *cap, const void *item,
		     size_t item_len);

/* Reads the entry of the answer (len bytes at answer, untrusted) that
 * starts at *off, and moves *off past it. On CAS_OK, e->data points into
 * answer (borrowed: valid while answer is) and e->status is the status
 * byte as sent, which may be none of enum cas_batch_status's values (the
 * caller decides what an unknown one means). CAS_EPROTO when no whole
 * entry starts at *off (fewer than CAS_BATCH_ENTRY_HEAD bytes left, or a
 * length running past len, or *off past len): *off and *e are unchanged.
 * Bytes after the last entry the caller reads are not looked at. */
int cas_batch_read_entry(const void *answer, size_t len, size_t *off, struct cas_batch_entry *e);

#endif

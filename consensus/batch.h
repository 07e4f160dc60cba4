/* batch.h - many protocol requests in one HTTP request (POST /v1/batch),
 * so that concurrent operations of one client share round trips to a node
 * (PROTOCOL.md, "Batches"). Only the binary form travels in batches. */
#ifndef CAS_BATCH_H
#define CAS_BATCH_H

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
	CAS_BATCH_OK = 0,	 /* the node's reply follows */
	CAS_BATCH_BAD = 1,	 /* malformed item (what a single request gets 400 for) */
	CAS_BATCH_TOO_BIG = 2, /* value over the node's limit (413) */
	CAS_BATCH_FAILED = 3,	 /* the node failed to run it, nothing promised (500) */
};

#endif

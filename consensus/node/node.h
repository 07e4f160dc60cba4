/* node.h - casd's node logic: the one place that knows what a stored
 * record means (its layout is in store.h) and applies the CASPaxos
 * acceptor rules (acceptor.h) to it.
 *
 * The store below is a durable map from key to record bytes, and a floor:
 * it queues changing requests (PREPARE, ACCEPT, PURGE), and its batch
 * writer reads the record each request of a batch sees, calls
 * cas_node_step, and makes the new records durable together before any
 * reply leaves. So group commit,
 * inline commit (cas_store_run_if_idle) and "persist before reply" stay
 * in the store, and the rules stay here. Queries change nothing and are
 * answered by cas_node_query from committed state, without the writer.
 * Nothing here touches the OS but through the store. */
#ifndef CAS_NODE_H
#define CAS_NODE_H

#include <stdbool.h>
#include <stddef.h>

#include "acceptor.h"
#include "msg.h"
#include "store.h"

/* Whether rec[0..rec_len) is a record of store.h's layout. */
bool cas_node_record_valid(const unsigned char *rec, size_t rec_len);

/* Runs req (PREPARE, ACCEPT or PURGE, key req->key) against the state
 * stored as the record rec[0..rec_len) (rec NULL: a key without a row,
 * never seen or dropped: all zeroes) and the floor *floor, by the acceptor
 * rules (cas_acceptor_step; paper, sections 2.2 and 3.1). rec is only
 * read, and not kept.
 *
 * On CAS_OK *reply is the answer, owning its value bytes (cas_msg_clear),
 * and *change says what the caller makes durable before reply is sent:
 * CAS_ACCEPTOR_KEEP, nothing (a REJECT, a PURGE that drops nothing);
 * CAS_ACCEPTOR_STORE, *new_rec, the new record, malloc'd, *new_len bytes,
 * which the caller frees; CAS_ACCEPTOR_DROP, the key's row deleted and the
 * floor *floor, raised here, in one atomic write. *floor is changed only
 * on a drop, and *new_rec is NULL but on a store. On error (CAS_EIO: rec
 * is corrupt; CAS_ENOMEM; CAS_EINVAL or CAS_ETOOBIG: the new state has no
 * record) errmsg says why, *reply is zeroed, *change CAS_ACCEPTOR_KEEP,
 * *new_rec NULL and *floor unchanged. Called by the store's batch writer. */
int cas_node_step(const unsigned char *rec, size_t rec_len, const struct cas_msg *req,
		  uint64_t *floor, struct cas_msg *reply, enum cas_acceptor_change *change,
		  unsigned char **new_rec, size_t *new_len, char *errmsg, size_t errmsg_len);

/* Answers req (a QUERY) from s's committed (so durable) state by the
 * acceptor rules (cas_acceptor_step, with s's floor): on CAS_OK *reply is
 * CURRENT, with the accepted ballot and value (0/0 and an empty version-0
 * value for a key without a row), and owns its value bytes
 * (cas_msg_clear). Errors as cas_store_get (CAS_EKEY, CAS_EIO,
 * CAS_ENOMEM, with errmsg), or CAS_EINVAL when req is not a QUERY;
 * *reply is zeroed then. Any thread. */
int cas_node_query(struct cas_store *s, const struct cas_msg *req, struct cas_msg *reply,
		   char *errmsg, size_t errmsg_len);

#endif

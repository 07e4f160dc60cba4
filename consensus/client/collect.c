/* collect.c - the collector's steps (client.h, cas_collect_*): note a
 * tombstone, write it back by every node, and purge it from every node
 * (PROTOCOL.md, "Deletion", "The purge"). */
#include <stdlib.h>
#include <string.h>

#include <cas/client.h>
#include <cas/os.h>

#include "client_int.h"

/* Between two rounds of PURGE to the nodes that have not answered. */
#define PURGE_RETRY_MS 50u

static bool key_ok(const char *key)
{
	return key != NULL && cas_key_valid(key, strnlen(key, CAS_KEY_MAX + 1));
}

int cas_collect_note(struct cas_client *c, const char *key, unsigned timeout_ms, bool *absent,
		     struct cas_tombstone *tomb)
{
	struct cas_collect_round col = {0};
	int rc;

	if (absent != NULL)
		*absent = false;
	if (tomb != NULL)
		memset(tomb, 0, sizeof(*tomb));
	if (!key_ok(key))
		return CAS_EKEY;
	if (c == NULL || absent == NULL || tomb == NULL)
		return CAS_EINVAL;
	rc = cas_client_note_round(c, key, timeout_ms, &col);
	if (rc != CAS_OK || !col.absent)
		return rc;
	*absent = true;
	tomb->proposer = col.last.proposer;
	tomb->op = col.last.op;
	tomb->change = col.last.version;
	/* After the round: the tombstone was chosen before this instant. */
	tomb->noted_ms = cas_os_monotonic_ms();
	return CAS_OK;
}

/* Step 2: PURGE(key, col->ballot) to every node of col->view until each
 * has answered, or deadline_ms. *stale: a node refused the epoch. */
static int purge_all(struct cas_client *c, const char *key, const struct cas_collect_round *col,
		     uint64_t deadline_ms, struct cas_purge_result *out, bool *stale)
{
	const struct cas_view *v = &col->view;
	struct cas_ident id = {v->cluster, v->epoch};
	struct cas_msg m = {.type = CAS_MSG_PURGE, .ballot = col->ballot};
	struct cas_transport_answer a;
	struct cas_channel *ch;
	uint64_t want = v->old_set | v->new_set, left = want, until;
	int rc;

	*stale = false;
	memcpy(m.key, key, strlen(key) + 1);
	out->epoch = v->epoch;
	out->nodes = (size_t)__builtin_popcountll(want);
	rc = cas_transport_checkout(c->transport, &ch, NULL, 0);
	if (rc != CAS_OK)
		return rc;
	while (left != 0) {
		char why[256];

		if (cas_transport_now_ms() >= deadline_ms) {
			rc = CAS_EUNAVAILABLE;
			break;
		}
		rc = cas_transport_send(ch, &m, &id, left, deadline_ms, why, sizeof(why));
		if (rc != CAS_OK) {
			cas_client_set_error(c, "purge %s: %s", key, why);
			break;
		}
		while (cas_transport_next(ch, deadline_ms, &a) == CAS_TRANSPORT_ANSWER) {
			const char *url = cas_transport_url(c->transport, a.node);

			if (a.code == CAS_OK && a.msg.type == CAS_MSG_PURGED) {
				left &= ~(1ull << a.node);
				if (cas_ballot_is_zero(a.msg.ballot))
					out->dropped++;
				else
					out->kept++;
			} else if (a.code == CAS_OK) {
				cas_client_set_error(c, "purge %s: %s answered no PURGED", key,
						     url);
			} else if (a.refusal == CAS_REFUSAL_STALE) {
				*stale = true;
				cas_client_set_error(
					c, "purge %s: node %s is at epoch %llu, past %llu", key,
					url, (unsigned long long)a.epoch,
					(unsigned long long)v->epoch);
			} else {
				cas_client_set_error(c, "purge %s: %s", key, a.errmsg);
			}
			cas_transport_answer_clear(&a);
		}
		if (*stale) {
			rc = CAS_EUNAVAILABLE;
			break;
		}
		if (left != 0) {
			until = cas_transport_now_ms() + PURGE_RETRY_MS;
			cas_transport_sleep(ch, until < deadline_ms ? until : deadline_ms);
		}
	}
	cas_transport_checkin(c->transport, ch);
	if (left == 0)
		return CAS_OK;
	if (rc == CAS_OK)
		rc = CAS_EUNAVAILABLE;
	return rc;
}

int cas_collect_purge(struct cas_client *c, const char *key, const struct cas_tombstone *tomb,
		      unsigned grace_ms, unsigned timeout_ms, struct cas_purge_result *out)
{
	struct cas_purge_result res;
	struct cas_collect_round col;
	uint64_t deadline, now;
	bool stale = false;
	int rc;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (!key_ok(key))
		return CAS_EKEY;
	if (c == NULL || tomb == NULL)
		return CAS_EINVAL;
	now = cas_os_monotonic_ms();
	if (now < tomb->noted_ms || now - tomb->noted_ms < grace_ms) {
		cas_client_set_error(c, "purge %s: noted %llu ms ago, within the grace of %u ms",
				     key, (unsigned long long)(now - tomb->noted_ms), grace_ms);
		return CAS_EINVAL;
	}
	deadline = now + (timeout_ms ? timeout_ms : c->timeout_ms);
	do {
		memset(&col, 0, sizeof(col));
		memset(&res, 0, sizeof(res));
		col.tomb = (struct cas_recent){tomb->proposer, tomb->op, tomb->change};
		now = cas_transport_now_ms();
		if (now >= deadline)
			return CAS_EUNAVAILABLE;
		/* Step 1: it follows a newer configuration by itself. */
		rc = cas_client_write_back(c, key, (unsigned)(deadline - now), &col);
		if (rc != CAS_OK)
			return rc;
		rc = purge_all(c, key, &col, deadline, &res, &stale);
		if (stale) {
			/* Another configuration took no write-back of ours:
			 * learn it, and write back again there. */
			struct cas_view v;

			if (cas_follow_reload(c, col.view.epoch, deadline, &v) != CAS_OK ||
			    v.epoch <= col.view.epoch)
				return CAS_EUNAVAILABLE;
		}
	} while (stale);
	if (out != NULL)
		*out = res;
	return rc;
}

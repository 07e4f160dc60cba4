/* stats.c - a client's counters of its register operations, read by
 * cas_client_stats (casfs's metrics, README "Monitor"). */
#include <cas/client.h>

#include "client_int.h"
#include "stats.h"

void cas_stats_round(struct cas_client_stats *s, enum cas_round_kind kind, int rc, bool by_fn)
{
	enum cas_round_result r;

	if ((unsigned)kind >= CAS_ROUND_KINDS)
		return;
	if (rc == CAS_OK || rc == CAS_ENOCHANGE)
		r = CAS_ROUND_OK;
	else if (rc == CAS_EVERSION)
		r = CAS_ROUND_VERSION;
	else if (by_fn)
		r = CAS_ROUND_REFUSED;
	else if (rc == CAS_EUNAVAILABLE)
		r = CAS_ROUND_UNAVAILABLE;
	else
		r = CAS_ROUND_ERROR;
	__atomic_add_fetch(&s->rounds[kind][r], 1, __ATOMIC_RELAXED);
}

void cas_stats_reject(struct cas_client_stats *s)
{
	__atomic_add_fetch(&s->rejects, 1, __ATOMIC_RELAXED);
}

void cas_stats_retry(struct cas_client_stats *s)
{
	__atomic_add_fetch(&s->retries, 1, __ATOMIC_RELAXED);
}

void cas_client_stats(struct cas_client *c, struct cas_client_stats *out)
{
	size_t k, r;

	for (k = 0; k < CAS_ROUND_KINDS; k++)
		for (r = 0; r < CAS_ROUND_RESULTS; r++)
			out->rounds[k][r] =
				__atomic_load_n(&c->stats.rounds[k][r], __ATOMIC_RELAXED);
	out->rejects = __atomic_load_n(&c->stats.rejects, __ATOMIC_RELAXED);
	out->retries = __atomic_load_n(&c->stats.retries, __ATOMIC_RELAXED);
}

/* stats.h - a client's counters of what its register operations did
 * (cas_client_stats): atomic adds, no lock, from any thread. */
#ifndef CAS_CLIENT_STATS_H
#define CAS_CLIENT_STATS_H

#include <stdbool.h>

#include <cas/client.h>

/* Counts one operation of kind that ended with code rc, which its change
 * function returned when by_fn. */
void cas_stats_round(struct cas_client_stats *s, enum cas_round_kind kind, int rc, bool by_fn);

/* Counts one REJECT answer. */
void cas_stats_reject(struct cas_client_stats *s);

/* Counts one attempt tried again after a backoff. */
void cas_stats_retry(struct cas_client_stats *s);

#endif

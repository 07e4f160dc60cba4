/* leasesim.c - the lease simulation: simulated mounts run the session and
 * lock code of fs/lease.c over an in-memory cluster (memregs.h), each on
 * its own clock (rates up to 9% off, any offset), with slow calls whose
 * change lands anywhere within them, lost answers, partitions that cut a
 * mount off for up to four leases, and mounts that die. Each mount
 * takes one exclusive lock, keeps it a while (renewing its session),
 * gives it back, and takes it again; a mount that lost its session starts
 * a new one. After every step: no two mounts believe they hold the lock,
 * and a mount that believes it holds it has its hold in the register
 * (believing = it acquired it and its session is still valid on its own
 * clock, casfs_session_check).
 *
 *   leasesim [--seeds N] [--first S] [--seed S]
 *            [--broken holder-end|early-watch|revive-no-mark] [-v]
 *
 * Exit 0 when every seed passes; with --broken, 0 when some seed fails
 * (the control is caught) and 1 when none does. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lease.h"
#include "memregs.h"

#define NPROP	    3
#define LEASE	    1000
#define DURATION    30000
#define DEADLINE_MS 2000

struct sim;

struct prop {
	struct sim *sim;
	int idx;
	const struct casfs_regs *r;
	uint64_t rng;
	int ppm;
	uint64_t offset;
	unsigned delay_per10k, delay_max;
	uint64_t part_from, part_until, crash_at;
	struct casfs_session s;
	bool have_session;
	struct casfs_watch w;
	bool holds; /* acquired and not given back: believed while s is valid */
	bool crashed;
	uint64_t owner;
	uint64_t hold_until, last_renew;
};

struct sim {
	struct memregs *m;
	uint64_t seed;
	struct prop p[NPROP];
	char key[CASFS_LOCK_KEY_LEN];
	char why[512];
	unsigned acquired, lost, takeovers;
	int last_holder;
};

static bool verbose;

static uint64_t rnd(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t prop_now(void *arg)
{
	const struct prop *p = arg;

	return memregs_local_ms(p->r);
}

/* True while p believes it holds the lock, judged as p would now (on a
 * copy: the observer changes nothing). */
static bool believes(const struct prop *p)
{
	struct casfs_session s = p->s;

	return p->holds && !p->crashed && p->have_session &&
	       casfs_session_check(&s, memregs_local_ms(p->r));
}

static void note(struct prop *p, const char *what)
{
	if (verbose)
		printf("  t=%llu p%d (clock %llu): %s\n",
		       (unsigned long long)memregs_now(p->sim->m), p->idx,
		       (unsigned long long)memregs_local_ms(p->r), what);
}

static void proposer(void *arg, const struct casfs_regs *r)
{
	struct prop *p = arg;
	struct sim *S = p->sim;
	struct casfs_clock clk = {prop_now, p};
	struct casfs_lock_result res;
	struct casfs_lock_req rq;
	uint64_t now;
	int rc;

	p->r = r;
	memregs_clock(r, p->offset, p->ppm);
	memregs_delays(r, p->delay_per10k, p->delay_max);
	memregs_partition(r, p->part_from, p->part_until);
	while (memregs_now(S->m) < DURATION) {
		if (p->crash_at && memregs_now(S->m) >= p->crash_at) {
			note(p, "dies");
			p->crashed = true;
			return;
		}
		memregs_deadline(r, DEADLINE_MS);
		now = prop_now(p);
		if (!p->have_session || !casfs_session_check(&p->s, now)) {
			if (p->have_session) {
				note(p, "session lost");
				S->lost++;
				if (rnd(&p->rng) % 2)
					casfs_session_end(r, p->s.sid);
			}
			p->holds = false;
			p->have_session = false;
			rc = casfs_session_create(r, &clk, LEASE, &p->s);
			if (rc) {
				r->ops->sleep_ms(r->arg, 50);
				continue;
			}
			p->have_session = true;
			p->last_renew = now;
			note(p, "new session");
			continue;
		}
		if (now - p->last_renew >= LEASE / 3) {
			p->last_renew = now;
			rc = casfs_session_renew(r, &clk, &p->s);
			if (rc && rc != CAS_EVERSION)
				p->last_renew = now - LEASE / 3 + 50; /* try again soon */
			continue;
		}
		memset(&rq, 0, sizeof(rq));
		memcpy(rq.sid, p->s.sid, CASFS_SID_LEN);
		rq.owner = p->owner;
		rq.end = CASFS_LOCK_EOF;
		rq.pid = (uint32_t)p->idx;
		rq.kind = CASFS_LK_FLOCK;
		if (p->holds) {
			if (now >= p->hold_until) {
				p->holds = false;
				note(p, "gives the lock back");
				rq.type = CASFS_LK_UNLOCK;
				casfs_lock_try(r, &clk, S->key, &rq, &p->w, &res);
			} else {
				r->ops->sleep_ms(r->arg, 20 + (unsigned)(rnd(&p->rng) % 100));
			}
			continue;
		}
		rq.type = CASFS_LK_EXCL;
		rc = casfs_lock_try(r, &clk, S->key, &rq, &p->w, &res);
		if (rc == CAS_OK && casfs_session_check(&p->s, prop_now(p))) {
			p->holds = true;
			p->hold_until = prop_now(p) + rnd(&p->rng) % (3 * LEASE);
			S->acquired++;
			if (S->last_holder >= 0 && S->last_holder != p->idx &&
			    S->p[S->last_holder].holds)
				S->takeovers++;
			S->last_holder = p->idx;
			note(p, "takes the lock");
			continue;
		}
		r->ops->sleep_ms(r->arg, 20 + (unsigned)(rnd(&p->rng) % 150));
	}
}

static void fail(struct sim *S, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct sim *S, const char *fmt, ...)
{
	va_list ap;

	if (S->why[0])
		return;
	va_start(ap, fmt);
	vsnprintf(S->why, sizeof(S->why), fmt, ap);
	va_end(ap);
}

/* The invariant, after every step. */
static bool check(void *arg)
{
	struct sim *S = arg;
	struct casfs_lockreg *l = malloc(sizeof(*l));
	struct casfs_regs direct;
	int i, believers = 0, first = -1;
	size_t j;

	if (!l) {
		fail(S, "out of memory");
		return false;
	}
	memregs_direct(S->m, false, &direct);
	if (casfs_lock_read(&direct, S->key, l)) {
		fail(S, "the lock register does not read");
		free(l);
		return false;
	}
	for (i = 0; i < NPROP; i++) {
		const struct prop *p = &S->p[i];
		bool found = false;

		if (!p->r || !believes(p))
			continue;
		if (believers++)
			fail(S, "p%d and p%d both believe they hold the lock", first, i);
		first = first < 0 ? i : first;
		for (j = 0; j < l->n; j++)
			if (!memcmp(l->h[j].sid, p->s.sid, CASFS_SID_LEN) &&
			    l->h[j].owner == p->owner && l->h[j].type == CASFS_LK_EXCL)
				found = true;
		if (!found)
			fail(S,
			     "p%d believes it holds the lock, but the register has %d holds, "
			     "none its own",
			     i, (int)l->n);
	}
	free(l);
	return !S->why[0];
}

static int run_seed(uint64_t seed)
{
	static const unsigned char zero[CASFS_SID_LEN];
	struct memregs_faults f = {150, 150, 150, 0};
	struct sim *S = calloc(1, sizeof(*S));
	uint64_t rng = seed * 0x2545f4914f6cdd1dull + 1;
	bool ok;
	int i;

	if (!S)
		return -1;
	S->seed = seed;
	S->last_holder = -1;
	casfs_lockreg_key(zero, S->key);
	S->m = memregs_new(seed);
	if (!S->m) {
		free(S);
		return -1;
	}
	memregs_every_step(S->m, true);
	for (i = 0; i < NPROP; i++) {
		struct prop *p = &S->p[i];

		p->sim = S;
		p->idx = i;
		p->rng = rnd(&rng);
		p->owner = 100 + (uint64_t)i;
		p->ppm = (int)(rnd(&rng) % 180001) - 90000;
		p->offset = rnd(&rng) % 1000000000;
		p->delay_per10k = (unsigned)(rnd(&rng) % 3000);
		p->delay_max = 1 + (unsigned)(rnd(&rng) % 700);
		if (rnd(&rng) % 10 < 6) {
			p->part_from = rnd(&rng) % DURATION;
			p->part_until = p->part_from + rnd(&rng) % (4 * LEASE);
		}
		if (rnd(&rng) % 10 < 2)
			p->crash_at = rnd(&rng) % DURATION;
		if (memregs_spawn(S->m, &f, proposer, p)) {
			memregs_free(S->m);
			free(S);
			return -1;
		}
	}
	ok = memregs_run(S->m, check, S) && !S->why[0];
	if (!ok)
		printf("seed %llu: FAIL at t=%llu: %s\n", (unsigned long long)seed,
		       (unsigned long long)memregs_now(S->m), S->why);
	else if (verbose)
		printf("seed %llu: ok, %u acquisitions, %u sessions lost, %u taken over\n",
		       (unsigned long long)seed, S->acquired, S->lost, S->takeovers);
	memregs_free(S->m);
	free(S);
	return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	uint64_t seeds = 1000, first = 1, s;
	const char *broken = NULL;
	unsigned failed = 0;
	int i, rc;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seeds") && i + 1 < argc) {
			seeds = strtoull(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--first") && i + 1 < argc) {
			first = strtoull(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			first = strtoull(argv[++i], NULL, 10);
			seeds = 1;
		} else if (!strcmp(argv[i], "--broken") && i + 1 < argc) {
			broken = argv[++i];
		} else if (!strcmp(argv[i], "-v")) {
			verbose = true;
		} else {
			fprintf(stderr,
				"usage: leasesim [--seeds N] [--first S] [--seed S] [--broken "
				"holder-end|early-watch|revive-no-mark] [-v]\n");
			return 2;
		}
	}
	if (broken) {
		if (!strcmp(broken, "holder-end"))
			casfs_lease_fault = CASFS_LEASE_FAULT_HOLDER_END;
		else if (!strcmp(broken, "early-watch"))
			casfs_lease_fault = CASFS_LEASE_FAULT_EARLY_WATCH;
		else if (!strcmp(broken, "revive-no-mark"))
			casfs_lease_fault = CASFS_LEASE_FAULT_REVIVE | CASFS_LEASE_FAULT_NO_MARK;
		else {
			fprintf(stderr, "leasesim: unknown control %s\n", broken);
			return 2;
		}
	}
	for (s = first; s < first + seeds; s++) {
		rc = run_seed(s);
		if (rc < 0) {
			fprintf(stderr, "leasesim: out of memory\n");
			return 2;
		}
		failed += (unsigned)rc;
		if (broken && failed)
			break;
	}
	if (broken) {
		printf("leasesim --broken %s: %s\n", broken,
		       failed ? "caught" : "NOT caught in any seed");
		return failed ? 0 : 1;
	}
	printf("leasesim: %llu seeds, %u failed\n", (unsigned long long)seeds, failed);
	return failed ? 1 : 0;
}

/* rand.h - a small deterministic PRNG (xorshift64*) whose state the caller
 * owns, so that the pure core stays reproducible under a seed. */
#ifndef CAS_RAND_H
#define CAS_RAND_H

#include <stdint.h>

/* Next 64-bit number from *state; a zero state is replaced by a constant. */
uint64_t cas_rand_next(uint64_t *state);

/* A number in [0, bound) (bound > 0). */
uint64_t cas_rand_below(uint64_t *state, uint64_t bound);

#endif

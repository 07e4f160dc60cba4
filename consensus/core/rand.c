/* rand.c - xorshift64*, a small PRNG with caller-owned state. */
#include "rand.h"

uint64_t cas_rand_next(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

uint64_t cas_rand_below(uint64_t *state, uint64_t bound)
{
	return cas_rand_next(state) % bound;
}

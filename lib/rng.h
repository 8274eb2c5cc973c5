/* rng.h — splitmix64 (Steele, Lea and Flood, 2014): a small, well-mixed
 * generator whose whole state is one 64-bit word, so a seed means the same
 * numbers on every machine. ds-fetch's --shuffle, ds-train's epoch order
 * and random initial weights draw from it, and it seeds the sampler's
 * xoshiro256** (sample.h). */
#ifndef DS_RNG_H
#define DS_RNG_H

#include <stdint.h>

/* The next number; advances *state. */
static inline uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

#endif

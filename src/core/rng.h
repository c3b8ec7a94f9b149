/*
 * rng.h — counter-based random numbers (Philox4x32-10).
 *
 * A random value is a pure function of (key, counter): the sampler keys by
 * (seed, request/sequence id) and counts by token position, so a sequence's
 * draws never depend on what else runs beside it, on batching, or on which
 * replica computes it.
 */
#ifndef SL_CORE_RNG_H
#define SL_CORE_RNG_H

#include <stdint.h>

/* Four 32-bit random words for (key, counter). */
void sl_philox4x32(uint64_t key, uint64_t ctr_hi, uint64_t ctr_lo, uint32_t out[4]);
/* Uniform double in [0, 1) with 53 random bits for (seed, stream, counter). */
double sl_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter);

#endif

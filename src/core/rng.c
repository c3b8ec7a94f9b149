/*
 * rng.c — Philox4x32-10 counter-based generator (Salmon, Moraes, Dror, Shaw:
 * "Parallel random numbers: as easy as 1, 2, 3", SC'11; Random123).
 *
 * Design: no state. Each call encrypts a 128-bit counter under a 64-bit key
 * with ten rounds of the Philox S-box (two 32x32->64 multiplies), bumping the
 * key by the Weyl constants between rounds. Word order follows Random123:
 * counter = {ctr_lo low, ctr_lo high, ctr_hi low, ctr_hi high},
 * key = {key low, key high}; so the published known-answer vectors apply.
 *
 * Invariants: output is a pure function of (key, ctr_hi, ctr_lo); the uniform
 * uses the first two output words (53 bits) and is always in [0, 1).
 */
#include "rng.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */
#define PHILOX_ROUNDS 10

static void philox_round(uint32_t c[4], const uint32_t k[2]) {
    uint64_t p0 = (uint64_t)PHILOX_M0 * c[0];
    uint64_t p1 = (uint64_t)PHILOX_M1 * c[2];
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t c1 = c[1], c3 = c[3];
    c[0] = hi1 ^ c1 ^ k[0];
    c[1] = lo1;
    c[2] = hi0 ^ c3 ^ k[1];
    c[3] = lo0;
}

void sl_philox4x32(uint64_t key, uint64_t ctr_hi, uint64_t ctr_lo, uint32_t out[4]) {
    uint32_t k[2] = {(uint32_t)key, (uint32_t)(key >> 32)};
    uint32_t c[4] = {(uint32_t)ctr_lo, (uint32_t)(ctr_lo >> 32), (uint32_t)ctr_hi, (uint32_t)(ctr_hi >> 32)};
    for (int r = 0; r < PHILOX_ROUNDS; r++) {
        if (r > 0) {
            k[0] += PHILOX_W0;
            k[1] += PHILOX_W1;
        }
        philox_round(c, k);
    }
    out[0] = c[0];
    out[1] = c[1];
    out[2] = c[2];
    out[3] = c[3];
}

double sl_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter) {
    uint32_t w[4];
    sl_philox4x32(seed, stream, counter, w);
    /* top 53 bits of (w0:w1), scaled by 2^-53: exactly representable, < 1 */
    uint64_t bits = (((uint64_t)w[0] << 32) | w[1]) >> 11;
    return (double)bits * 0x1.0p-53;
}

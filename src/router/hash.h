/*
 * hash.h — the router's 64-bit hash: keys on the ring, virtual node points,
 * session and prefix keys. Every router replica must compute the same values,
 * so the input is read as little-endian words whatever the host order.
 *
 * Design: splitmix64's finalizer (a bijection with full avalanche) applied to
 * each 8-byte word folded into the state; the length is mixed in so "a" and
 * "a\0" differ. Not cryptographic: clients choose session keys, and the worst
 * they can do is put their own sessions on one engine, which bounded loads
 * already limit.
 */
#ifndef SL_ROUTER_HASH_H
#define SL_ROUTER_HASH_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t sl_mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static inline uint64_t sl_hash64(const void *data, size_t n, uint64_t seed) {
    const unsigned char *s = data;
    uint64_t h = sl_mix64(seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15ULL));
    while (n >= 8) {
        uint64_t w = 0;
        for (int i = 7; i >= 0; i--) w = (w << 8) | s[i];
        h = sl_mix64(h ^ w) + 0x9e3779b97f4a7c15ULL;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = n; i > 0; i--) w = (w << 8) | s[i - 1];
    return sl_mix64(h ^ w ^ ((uint64_t)n << 59));
}

#endif

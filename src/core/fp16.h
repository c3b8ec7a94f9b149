/*
 * fp16.h — IEEE half and bfloat16 conversions (exact in both directions where
 * representable; float→half and float→bf16 round to nearest even).
 */
#ifndef SL_CORE_FP16_H
#define SL_CORE_FP16_H

#include <stdint.h>
#include <string.h>

static inline float sl_bits_to_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t sl_f32_to_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float sl_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0) {
        if (man == 0) return sl_bits_to_f32(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    if (exp == 31) return sl_bits_to_f32(sign | 0x7f800000u | (man << 13));
    return sl_bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
}

static inline uint16_t sl_f32_to_f16(float f) {
    uint32_t x = sl_f32_to_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) {                                   /* below 2^-14: subnormal */
        if (ax < 0x33000000u) return (uint16_t)sign;          /* < 2^-25: zero */
        uint32_t e = ax >> 23;
        uint32_t m = (ax & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - e; /* 14..24 + 1 */
        uint32_t half = 1u << (shift - 1);
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = ax + 0xc8000fffu + ((ax >> 13) & 1); /* rebias exponent, round to nearest even */
    return (uint16_t)(sign | (r >> 13));
}

static inline float sl_bf16_to_f32(uint16_t h) { return sl_bits_to_f32((uint32_t)h << 16); }

static inline uint16_t sl_f32_to_bf16(float f) {
    uint32_t x = sl_f32_to_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 64); /* quiet NaN */
    return (uint16_t)((x + (0x7fff + ((x >> 16) & 1))) >> 16);
}

#endif

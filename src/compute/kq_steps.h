/*
 * kq_steps.h — the steps that end one K-quant super-block for one token, once
 * the 16 rows' sub-block dots are summed with their scales (isum = Σ sc_j ·
 * isum_j, int32 per row): the canonical order of kernels.h,
 *   Q6_K:        isum -= 32 · Σ sc_j · bsum_j;  acc = fma(d·da, isum, acc)
 *   Q4_K / Q5_K: acc = fma(d·da, isum, acc);  acc = fma(-(dmin·da), Σ m_j · bsum_j, acc)
 * with bsum_j the activation's sums of sub-block j (ggml's Q8_K bsums, per 16
 * quants: paired for the 32-quant sub-blocks of Q4_K/Q5_K).
 *
 * Shared by the AVX-512 kernels (many tokens and decode) and the AMX ones, so
 * the steps exist once; include only from files built with the AVX-512 flags.
 */
#ifndef SL_COMPUTE_KQ_STEPS_H
#define SL_COMPUTE_KQ_STEPS_H

#include "quant.h"

#include <immintrin.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* mn: Q6_K: 8 vectors, vector i the scales of sub-blocks 2i, 2i + 1 of the
 * 16 rows as int16 pairs; Q4_K / Q5_K: 4 vectors, vector i the mins of
 * sub-blocks 2i, 2i + 1 as int16 pairs. d, dmin: the rows' super-block
 * scales (dmin unused for Q6_K). a: the token's activation super-block. */
static inline __attribute__((always_inline)) __m512 sl_kq_end(bool q6, __m512i isum, __m512 d, __m512 dmin,
                                                              const __m512i *mn, const block_q8_K *a, __m512 acc) {
    const __m512 da = _mm512_set1_ps(a->d);
    if (q6) {
        __m512i c = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            int32_t pr;
            memcpy(&pr, a->bsums + 2 * i, 4);
            c = _mm512_dpwssd_epi32(c, mn[i], _mm512_set1_epi32(pr));
        }
        isum = _mm512_sub_epi32(isum, _mm512_slli_epi32(c, 5));
    }
    acc = _mm512_fmadd_ps(_mm512_mul_ps(d, da), _mm512_cvtepi32_ps(isum), acc);
    if (!q6) {
        __m512i imin = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            const int16_t *bs = a->bsums + 4 * i;
            const int32_t s0 = bs[0] + bs[1], s1 = bs[2] + bs[3];
            const __m512i pr = _mm512_set1_epi32((int32_t)(((uint32_t)s0 & 0xFFFF) | ((uint32_t)s1 << 16)));
            imin = _mm512_dpwssd_epi32(imin, mn[i], pr);
        }
        const __m512 sm = _mm512_mul_ps(dmin, da);
        const __m512 nsm =
            _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(sm), _mm512_set1_epi32((int32_t)0x80000000u)));
        acc = _mm512_fmadd_ps(nsm, _mm512_cvtepi32_ps(imin), acc);
    }
    return acc;
}

#endif

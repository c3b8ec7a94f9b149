/*
 * kernels_avx512.c — AVX-512 (F, BW, VL, DQ, VNNI) kernels; built with the
 * AVX-512 flags and only called when cpuid reports them.
 *
 * Every kernel reproduces the canonical operation order of kernels.h, so
 * results equal the scalar kernels bit for bit:
 *   - float weights: one zmm accumulator per (row, token) = the 16 lanes;
 *     tails are masked FMAs that leave the other lanes untouched; then the
 *     halving tree 8, 4, 2, 1.
 *   - quantized weights: a tile of 16 rows is unpacked once into scratch
 *     (Q4_0/Q8_0: unsigned bytes q+8 / q+128, two rows per zmm, plus the
 *     16 row scales of each block; K-quants: int16 quants already multiplied
 *     by their sub-block scale, Q6_K's -32 folded in). For each token, the
 *     exact integer dot of each row's block comes from VNNI (vpdpbusd for
 *     bytes, vpdpwssd for int16) and a transposing tree of adds that puts
 *     row r in lane r; the float steps then run on 16 rows at once, in the
 *     per-output order of the scalar code.
 */
#include "kernels.h"

#include "core/fp16.h"
#include "quant.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

/* ---- shared helpers --------------------------------------------------------------- */

/* acc[0] after acc[i] += acc[i+s] for s = 8, 4, 2, 1. */
AI float reduce16(__m512 v) {
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
    return _mm_cvtss_f32(s1);
}

/* Lane i < 8: a[2i] + a[2i+1]; lane 8+i: b[2i] + b[2i+1]. */
AI __m512i pair_sums(__m512i a, __m512i b) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    return _mm512_add_epi32(_mm512_permutex2var_epi32(a, even, b), _mm512_permutex2var_epi32(a, odd, b));
}

/* d[p] holds row 2p in lanes 0-7 and row 2p+1 in lanes 8-15; returns the
 * sum of each row's 8 lanes in lane r (exact: integers). */
AI __m512i rows_to_lanes(const __m512i d[8]) {
    __m512i e0 = pair_sums(d[0], d[1]), e1 = pair_sums(d[2], d[3]);
    __m512i e2 = pair_sums(d[4], d[5]), e3 = pair_sums(d[6], d[7]);
    __m512i f0 = pair_sums(e0, e1), f1 = pair_sums(e2, e3);
    return pair_sums(f0, f1);
}

/* exp with exactly sl_expf's operations, 16 lanes. */
AI __m512 exp16(__m512 x) {
    const __mmask16 small = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_NGE_UQ);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    __m512 xc = _mm512_min_ps(x, _mm512_set1_ps(88.0f));
    __m512 t = _mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f));
    const __m512i ni = _mm512_cvtps_epi32(t); /* round half to even (MXCSR default), as sl_expf */
    const __m512 n = _mm512_cvtepi32_ps(ni);
    __m512 r = _mm512_fmadd_ps(n, _mm512_set1_ps(-0.693359375f), xc);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 z = _mm512_mul_ps(r, r);
    __m512 y = _mm512_fmadd_ps(p, z, r);
    y = _mm512_add_ps(y, _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(ni, _mm512_set1_epi32(127)), 23);
    __m512 res = _mm512_mul_ps(y, _mm512_castsi512_ps(e));
    res = _mm512_mask_blend_ps(small, res, _mm512_setzero_ps());
    return _mm512_mask_blend_ps(nan, res, x);
}

/* ---- float weights ----------------------------------------------------------------- */

AI __m512 load_w(sl_type T, const uint8_t *w, int64_t k) {
    if (T == SL_TYPE_F32) return _mm512_loadu_ps((const float *)w + k);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)w + k));
    if (T == SL_TYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

AI __m512 load_w_mask(sl_type T, const uint8_t *w, int64_t k, __mmask16 m) {
    if (T == SL_TYPE_F32) return _mm512_maskz_loadu_ps(m, (const float *)w + k);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + k);
    if (T == SL_TYPE_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* R rows × NT tokens, all accumulators in registers. */
AI void float_tile(sl_type T, int R, int NT, int64_t K, const uint8_t *w, size_t ws, const uint8_t *a, size_t as,
                   float *y, int64_t ldy) {
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) acc[r][t] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 x[4];
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) x[t] = _mm512_loadu_ps((const float *)(a + (size_t)t * as) + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 wv = load_w(T, w + (size_t)r * ws, k);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) acc[r][t] = _mm512_fmadd_ps(wv, x[t], acc[r][t]);
        }
    }
    if (k < K) {
        const __mmask16 m = (__mmask16)((1u << (K - k)) - 1);
        __m512 x[4];
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) x[t] = _mm512_maskz_loadu_ps(m, (const float *)(a + (size_t)t * as) + k);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            __m512 wv = load_w_mask(T, w + (size_t)r * ws, k, m);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) acc[r][t] = _mm512_mask3_fmadd_ps(wv, x[t], acc[r][t], m);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) y[(int64_t)t * ldy + r] = reduce16(acc[r][t]);
}

#define FT(TY, R, N)                                                                                            \
    static void ft_##TY##_##R##_##N(int64_t K, const uint8_t *w, size_t ws, const uint8_t *a, size_t as, float *y, \
                                    int64_t ldy) {                                                              \
        float_tile(SL_TYPE_##TY, R, N, K, w, ws, a, as, y, ldy);                                                \
    }
#define FT_ROW(TY, R) FT(TY, R, 1) FT(TY, R, 2) FT(TY, R, 3) FT(TY, R, 4)
#define FT_ALL(TY) FT_ROW(TY, 1) FT_ROW(TY, 2) FT_ROW(TY, 3) FT_ROW(TY, 4)
FT_ALL(F32)
FT_ALL(F16)
FT_ALL(BF16)

typedef void (*ft_fn)(int64_t, const uint8_t *, size_t, const uint8_t *, size_t, float *, int64_t);
#define FT_TABLE(TY)                                                                                         \
    static const ft_fn ft_##TY[4][4] = {                                                                    \
        {ft_##TY##_1_1, ft_##TY##_1_2, ft_##TY##_1_3, ft_##TY##_1_4},                                       \
        {ft_##TY##_2_1, ft_##TY##_2_2, ft_##TY##_2_3, ft_##TY##_2_4},                                       \
        {ft_##TY##_3_1, ft_##TY##_3_2, ft_##TY##_3_3, ft_##TY##_3_4},                                       \
        {ft_##TY##_4_1, ft_##TY##_4_2, ft_##TY##_4_3, ft_##TY##_4_4},                                       \
    };
FT_TABLE(F32)
FT_TABLE(F16)
FT_TABLE(BF16)

static void gemm_float(const ft_fn tab[4][4], int64_t K, const void *w, size_t ws, int64_t nr, const void *act,
                       size_t as, int64_t nt, float *y, int64_t ldy) {
    for (int64_t r0 = 0; r0 < nr; r0 += 4) {
        const int R = nr - r0 < 4 ? (int)(nr - r0) : 4;
        for (int64_t t0 = 0; t0 < nt; t0 += 4) {
            const int N = nt - t0 < 4 ? (int)(nt - t0) : 4;
            tab[R - 1][N - 1](K, (const uint8_t *)w + (size_t)r0 * ws, ws, (const uint8_t *)act + (size_t)t0 * as, as,
                              y + t0 * ldy + r0, ldy);
        }
    }
}

static void gemm_f32(int64_t K, const void *w, size_t ws, int64_t nr, const void *a, size_t as, int64_t nt, float *y,
                     int64_t ldy, void *scratch) {
    (void)scratch;
    gemm_float(ft_F32, K, w, ws, nr, a, as, nt, y, ldy);
}
static void gemm_f16(int64_t K, const void *w, size_t ws, int64_t nr, const void *a, size_t as, int64_t nt, float *y,
                     int64_t ldy, void *scratch) {
    (void)scratch;
    gemm_float(ft_F16, K, w, ws, nr, a, as, nt, y, ldy);
}
static void gemm_bf16(int64_t K, const void *w, size_t ws, int64_t nr, const void *a, size_t as, int64_t nt, float *y,
                      int64_t ldy, void *scratch) {
    (void)scratch;
    gemm_float(ft_BF16, K, w, ws, nr, a, as, nt, y, ldy);
}

/* ---- Q4_0 / Q8_0 ------------------------------------------------------------------------ */

/* Scratch per block: 8 zmm of unsigned quants (rows 2p | 2p+1), then the 16 row scales. */
#define Q0_BLOCK_BYTES 576

static void unpack_q4_0(const uint8_t *w, size_t ws, int nr, int64_t nb, uint8_t *dst) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *o = dst + b * Q0_BLOCK_BYTES;
        uint16_t dh[16];
        for (int p = 0; p < 8; p++) {
            __m256i v[2];
            for (int h = 0; h < 2; h++) {
                const int r = 2 * p + h;
                if (r < nr) {
                    const block_q4_0 *blk = (const block_q4_0 *)(w + (size_t)r * ws) + b;
                    __m128i q = _mm_loadu_si128((const __m128i *)blk->qs);
                    __m128i lo = _mm_and_si128(q, m4), hi = _mm_and_si128(_mm_srli_epi16(q, 4), m4);
                    v[h] = _mm256_set_m128i(hi, lo);
                    dh[r] = blk->d;
                } else {
                    v[h] = _mm256_setzero_si256();
                    dh[r] = 0;
                }
            }
            _mm512_store_si512((__m512i *)(o + 64 * p), _mm512_inserti64x4(_mm512_castsi256_si512(v[0]), v[1], 1));
        }
        _mm512_store_ps((float *)(o + 512), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)dh)));
    }
}

static void unpack_q8_0(const uint8_t *w, size_t ws, int nr, int64_t nb, uint8_t *dst) {
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *o = dst + b * Q0_BLOCK_BYTES;
        uint16_t dh[16];
        for (int p = 0; p < 8; p++) {
            __m256i v[2];
            for (int h = 0; h < 2; h++) {
                const int r = 2 * p + h;
                if (r < nr) {
                    const block_q8_0 *blk = (const block_q8_0 *)(w + (size_t)r * ws) + b;
                    v[h] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)blk->qs), flip);
                    dh[r] = blk->d;
                } else {
                    v[h] = _mm256_setzero_si256();
                    dh[r] = 0;
                }
            }
            _mm512_store_si512((__m512i *)(o + 64 * p), _mm512_inserti64x4(_mm512_castsi256_si512(v[0]), v[1], 1));
        }
        _mm512_store_ps((float *)(o + 512), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)dh)));
    }
}

/* The 16 outputs of one token against an unpacked tile. off = 8 (Q4_0) or
 * 128 (Q8_0): the unsigned quants are q + off, so each row's raw sum is
 * corrected by -off * (sum of the activation block), put into lanes 0 and 8
 * of every dpbusd accumulator (one per row). */
AI __m512 q0_token(const uint8_t *tile, int64_t nb, int32_t off, const uint8_t *at, int64_t K) {
    const float *da = (const float *)(at + K);
    const int32_t *sa = (const int32_t *)(at + K + nb * 4);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *o = tile + b * Q0_BLOCK_BYTES;
        const __m512i A = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(at + b * 32)));
        const __m512i c = _mm512_maskz_set1_epi32(0x0101, -off * sa[b]);
        __m512i d[8];
        for (int p = 0; p < 8; p++) d[p] = _mm512_dpbusd_epi32(c, _mm512_load_si512((const __m512i *)(o + 64 * p)), A);
        const __m512 f = _mm512_cvtepi32_ps(rows_to_lanes(d));
        const __m512 s = _mm512_mul_ps(_mm512_load_ps((const float *)(o + 512)), _mm512_set1_ps(da[b]));
        acc = _mm512_fmadd_ps(s, f, acc);
    }
    return acc;
}

static void gemm_q0(bool q8, int64_t K, const void *w, size_t ws, int64_t nr, const void *act, size_t as, int64_t nt,
                    float *y, int64_t ldy, void *scratch) {
    const int64_t nb = K / 32;
    for (int64_t r0 = 0; r0 < nr; r0 += 16) {
        const int R = nr - r0 < 16 ? (int)(nr - r0) : 16;
        const __mmask16 m = (__mmask16)((1u << R) - 1);
        const uint8_t *wr = (const uint8_t *)w + (size_t)r0 * ws;
        if (q8) unpack_q8_0(wr, ws, R, nb, scratch);
        else unpack_q4_0(wr, ws, R, nb, scratch);
        for (int64_t t = 0; t < nt; t++) {
            const __m512 v = q0_token(scratch, nb, q8 ? 128 : 8, (const uint8_t *)act + (size_t)t * as, K);
            _mm512_mask_storeu_ps(y + t * ldy + r0, m, v);
        }
    }
}

static void gemm_q4_0(int64_t K, const void *w, size_t ws, int64_t nr, const void *a, size_t as, int64_t nt, float *y,
                      int64_t ldy, void *scratch) {
    gemm_q0(false, K, w, ws, nr, a, as, nt, y, ldy, scratch);
}
static void gemm_q8_0(int64_t K, const void *w, size_t ws, int64_t nr, const void *a, size_t as, int64_t nt, float *y,
                      int64_t ldy, void *scratch) {
    gemm_q0(true, K, w, ws, nr, a, as, nt, y, ldy, scratch);
}

/* ---- K-quants ------------------------------------------------------------------------------- */

/* Scratch per super-block: 16 rows × 8 zmm of int16 (quant × sub-block scale),
 * then 4 zmm of int16 min pairs (lane r: m[2i], m[2i+1] of row r), then the
 * 16 row d and the 16 row dmin as floats. */
#define KQ_W_BYTES (16 * 512)
#define KQ_BLOCK_BYTES (KQ_W_BYTES + 256 + 128)

AI void store_scaled(uint8_t *o, __m256i q8, int16_t sc) {
    __m512i v = _mm512_cvtepu8_epi16(q8);
    _mm512_store_si512((__m512i *)o, _mm512_mullo_epi16(v, _mm512_set1_epi16(sc)));
}

static void unpack_q45_K(bool q5, const uint8_t *w, size_t ws, int nr, int64_t nb, uint8_t *dst) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    const size_t bb = q5 ? sizeof(block_q5_K) : sizeof(block_q4_K);
    for (int64_t s = 0; s < nb; s++) {
        uint8_t *o = dst + s * KQ_BLOCK_BYTES;
        uint16_t dh[16], mh[16];
        uint32_t mins[4][16];
        for (int r = 0; r < 16; r++) {
            uint8_t *orow = o + r * 512;
            if (r >= nr) {
                memset(orow, 0, 512);
                dh[r] = mh[r] = 0;
                for (int i = 0; i < 4; i++) mins[i][r] = 0;
                continue;
            }
            const uint8_t *blk = w + (size_t)r * ws + (size_t)s * bb;
            const block_q4_K *b4 = (const block_q4_K *)blk;
            uint8_t sc[8], mn[8];
            for (int j = 0; j < 8; j++) sl_q4k_scale_min(j, b4->scales, &sc[j], &mn[j]);
            for (int i = 0; i < 4; i++) mins[i][r] = (uint32_t)mn[2 * i] | ((uint32_t)mn[2 * i + 1] << 16);
            dh[r] = b4->d;
            mh[r] = b4->dmin;
            const uint8_t *qs = q5 ? ((const block_q5_K *)blk)->qs : b4->qs;
            __m256i qh = q5 ? _mm256_loadu_si256((const __m256i *)((const block_q5_K *)blk)->qh) : _mm256_setzero_si256();
            for (int c = 0; c < 4; c++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
                __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
                if (q5) {
                    lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one), 4));
                    hi = _mm256_or_si256(hi,
                                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one), 4));
                }
                store_scaled(orow + 128 * c, lo, sc[2 * c]);
                store_scaled(orow + 128 * c + 64, hi, sc[2 * c + 1]);
            }
        }
        for (int i = 0; i < 4; i++) _mm512_store_si512((__m512i *)(o + KQ_W_BYTES + 64 * i), _mm512_loadu_si512(mins[i]));
        _mm512_store_ps((float *)(o + KQ_W_BYTES + 256), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)dh)));
        _mm512_store_ps((float *)(o + KQ_W_BYTES + 320), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)mh)));
    }
}

static void unpack_q6_K(const uint8_t *w, size_t ws, int nr, int64_t nb, uint8_t *dst) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
    const __m512i k32 = _mm512_set1_epi16(32);
    for (int64_t s = 0; s < nb; s++) {
        uint8_t *o = dst + s * KQ_BLOCK_BYTES;
        uint16_t dh[16];
        for (int r = 0; r < 16; r++) {
            uint8_t *orow = o + r * 512;
            if (r >= nr) {
                memset(orow, 0, 512);
                dh[r] = 0;
                continue;
            }
            const block_q6_K *blk = (const block_q6_K *)(w + (size_t)r * ws) + s;
            dh[r] = blk->d;
            for (int h = 0; h < 2; h++) {
                __m256i l0 = _mm256_loadu_si256((const __m256i *)(blk->ql + 64 * h));
                __m256i l1 = _mm256_loadu_si256((const __m256i *)(blk->ql + 64 * h + 32));
                __m256i qh = _mm256_loadu_si256((const __m256i *)(blk->qh + 32 * h));
                __m256i q[4];
                q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
                q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
                q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
                q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                       _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
                for (int k = 0; k < 4; k++) {
                    /* elements 128h + 32k .. +31 = sub-blocks 8h + 2k, 8h + 2k + 1 */
                    const int j = 8 * h + 2 * k;
                    __m512i v = _mm512_sub_epi16(_mm512_cvtepu8_epi16(q[k]), k32);
                    __m512i sc = _mm512_inserti64x4(_mm512_set1_epi16(blk->scales[j]),
                                                    _mm256_set1_epi16(blk->scales[j + 1]), 1);
                    _mm512_store_si512((__m512i *)(orow + 64 * (4 * h + k)), _mm512_mullo_epi16(v, sc));
                }
            }
        }
        _mm512_store_ps((float *)(o + KQ_W_BYTES + 256), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)dh)));
    }
}

/* Exact Σ_k w16[r][k] * a[k] for the 16 rows of a super-block, row r in lane r. */
AI __m512i kq_rows(const uint8_t *o, const __m512i A[8]) {
    __m512i e[8];
    for (int p = 0; p < 8; p++) {
        __m512i acc0 = _mm512_setzero_si512(), acc1 = _mm512_setzero_si512();
        const uint8_t *r0 = o + (2 * p) * 512, *r1 = r0 + 512;
        for (int i = 0; i < 8; i++) {
            acc0 = _mm512_dpwssd_epi32(acc0, _mm512_load_si512((const __m512i *)(r0 + 64 * i)), A[i]);
            acc1 = _mm512_dpwssd_epi32(acc1, _mm512_load_si512((const __m512i *)(r1 + 64 * i)), A[i]);
        }
        e[p] = pair_sums(acc0, acc1);
    }
    return rows_to_lanes(e);
}

static void gemm_kq(sl_type type, int64_t K, const void *w, size_t ws, int64_t nr, const void *act, size_t as,
                    int64_t nt, float *y, int64_t ldy, void *scratch) {
    const int64_t nb = K / QK_K;
    const size_t bb = type == SL_TYPE_Q6_K ? sizeof(block_q6_K) : type == SL_TYPE_Q5_K ? sizeof(block_q5_K)
                                                                                        : sizeof(block_q4_K);
    uint8_t *tile = scratch;
    for (int64_t r0 = 0; r0 < nr; r0 += 16) {
        const int R = nr - r0 < 16 ? (int)(nr - r0) : 16;
        const __mmask16 m = (__mmask16)((1u << R) - 1);
        const uint8_t *wr = (const uint8_t *)w + (size_t)r0 * ws;
        if (type == SL_TYPE_Q6_K) unpack_q6_K(wr, ws, R, nb, tile);
        else unpack_q45_K(type == SL_TYPE_Q5_K, wr, ws, R, nb, tile);
        (void)bb;
        for (int64_t t = 0; t < nt; t++) {
            const block_q8_K *a = (const block_q8_K *)((const uint8_t *)act + (size_t)t * as);
            __m512 acc = _mm512_setzero_ps();
            for (int64_t s = 0; s < nb; s++) {
                const uint8_t *o = tile + s * KQ_BLOCK_BYTES;
                __m512i A[8];
                for (int i = 0; i < 8; i++)
                    A[i] = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(a[s].qs + 32 * i)));
                const __m512i isum = kq_rows(o, A);
                const __m512 da = _mm512_set1_ps(a[s].d);
                const __m512 sd = _mm512_mul_ps(_mm512_load_ps((const float *)(o + KQ_W_BYTES + 256)), da);
                acc = _mm512_fmadd_ps(sd, _mm512_cvtepi32_ps(isum), acc);
                if (type != SL_TYPE_Q6_K) {
                    __m512i imin = _mm512_setzero_si512();
                    for (int i = 0; i < 4; i++) {
                        const int32_t s0 = a[s].bsums[4 * i] + a[s].bsums[4 * i + 1];
                        const int32_t s1 = a[s].bsums[4 * i + 2] + a[s].bsums[4 * i + 3];
                        const __m512i pr = _mm512_set1_epi32((int32_t)(((uint32_t)s0 & 0xFFFF) | ((uint32_t)s1 << 16)));
                        imin = _mm512_dpwssd_epi32(imin, _mm512_load_si512((const __m512i *)(o + KQ_W_BYTES + 64 * i)),
                                                   pr);
                    }
                    const __m512 sm = _mm512_mul_ps(_mm512_load_ps((const float *)(o + KQ_W_BYTES + 320)), da);
                    const __m512 nsm = _mm512_castsi512_ps(
                        _mm512_xor_si512(_mm512_castps_si512(sm), _mm512_set1_epi32((int32_t)0x80000000u)));
                    acc = _mm512_fmadd_ps(nsm, _mm512_cvtepi32_ps(imin), acc);
                }
            }
            _mm512_mask_storeu_ps(y + t * ldy + r0, m, acc);
        }
    }
}

static void gemm_q4_K(int64_t K, const void *w, size_t ws, int64_t nr, const void *a, size_t as, int64_t nt, float *y,
                      int64_t ldy, void *scratch) {
    gemm_kq(SL_TYPE_Q4_K, K, w, ws, nr, a, as, nt, y, ldy, scratch);
}
static void gemm_q5_K(int64_t K, const void *w, size_t ws, int64_t nr, const void *a, size_t as, int64_t nt, float *y,
                      int64_t ldy, void *scratch) {
    gemm_kq(SL_TYPE_Q5_K, K, w, ws, nr, a, as, nt, y, ldy, scratch);
}
static void gemm_q6_K(int64_t K, const void *w, size_t ws, int64_t nr, const void *a, size_t as, int64_t nt, float *y,
                      int64_t ldy, void *scratch) {
    gemm_kq(SL_TYPE_Q6_K, K, w, ws, nr, a, as, nt, y, ldy, scratch);
}

/* ---- attention ------------------------------------------------------------------------------ */

/* 16 elements of a cached row as floats (F32 / F16 exact; Q8_0: q * d). */
AI __m512 kv_load(sl_type t, const uint8_t *row, int32_t i, __mmask16 m) {
    if (t == SL_TYPE_F32) return _mm512_maskz_loadu_ps(m, (const float *)row + i);
    if (t == SL_TYPE_F16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)row + i));
    const block_q8_0 *b = (const block_q8_0 *)row + i / 32;
    __m512 q = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, b->qs + i % 32)));
    return _mm512_mul_ps(q, _mm512_set1_ps(sl_f16_to_f32(b->d)));
}

#define ATT_MAXV 32 /* head_dim up to 512 */

static void attn_avx512(const sl_attn_args *a) {
    const int32_t D = a->head_dim, nv = (D + 15) / 16;
    const __mmask16 tail = (__mmask16)(D % 16 ? (1u << (D % 16)) - 1 : 0xFFFF);
    __m512 qv[ATT_MAXV], acc[ATT_MAXV];
    for (int32_t v = 0; v < nv; v++) {
        const __mmask16 m = v == nv - 1 ? tail : 0xFFFF;
        qv[v] = _mm512_maskz_loadu_ps(m, a->q + 16 * v);
        acc[v] = _mm512_setzero_ps();
    }
    float M = -INFINITY, l = 0.0f;
    float s[16] __attribute__((aligned(64))), e[16] __attribute__((aligned(64)));
    size_t offs[16];
    for (int32_t j0 = 0; j0 < a->n_pos; j0 += 16) {
        const int32_t n = a->n_pos - j0 < 16 ? a->n_pos - j0 : 16;
        float mc = -INFINITY;
        for (int32_t j = 0; j < n; j++) {
            const int32_t p = j0 + j;
            const size_t off = (size_t)a->blocks[p / a->block_size] * a->block_bytes +
                               (size_t)(p % a->block_size) * a->slot_bytes;
            offs[j] = off;
            const uint8_t *kr = a->k_base + off;
            __m512 dv = _mm512_setzero_ps();
            for (int32_t v = 0; v < nv; v++) {
                const __mmask16 m = v == nv - 1 ? tail : 0xFFFF;
                dv = _mm512_mask3_fmadd_ps(qv[v], kv_load(a->kv_type, kr, 16 * v, m), dv, m);
            }
            s[j] = reduce16(dv) * a->scale;
            mc = fmaxf(mc, s[j]);
        }
        const float Mn = fmaxf(M, mc);
        if (j0 > 0) {
            const float corr = sl_expf(M - Mn);
            l = l * corr;
            const __m512 c = _mm512_set1_ps(corr);
            for (int32_t v = 0; v < nv; v++) acc[v] = _mm512_mul_ps(acc[v], c);
        }
        M = Mn;
        const __mmask16 jm = (__mmask16)((1u << n) - 1);
        _mm512_store_ps(e, exp16(_mm512_sub_ps(_mm512_maskz_load_ps(jm, s), _mm512_set1_ps(M))));
        for (int32_t j = 0; j < n; j++) {
            const uint8_t *vr = a->v_base + offs[j];
            l = l + e[j];
            const __m512 pe = _mm512_set1_ps(e[j]);
            for (int32_t v = 0; v < nv; v++) {
                const __mmask16 m = v == nv - 1 ? tail : 0xFFFF;
                acc[v] = _mm512_mask3_fmadd_ps(pe, kv_load(a->kv_type, vr, 16 * v, m), acc[v], m);
            }
        }
    }
    const __m512 lv = _mm512_set1_ps(l);
    for (int32_t v = 0; v < nv; v++) {
        const __mmask16 m = v == nv - 1 ? tail : 0xFFFF;
        _mm512_mask_storeu_ps(a->out + 16 * v, m, _mm512_div_ps(acc[v], lv));
    }
}

/* ---- elementwise ------------------------------------------------------------------------------ */

static void silu_mul_avx512(const float *gate, const float *up, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
        const __m512 e = exp16(_mm512_xor_ps(g, _mm512_set1_ps(-0.0f)));
        const __m512 den = _mm512_add_ps(_mm512_set1_ps(1.0f), e);
        const __m512 s = _mm512_div_ps(g, den);
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, up + i)));
    }
}

bool sl_kernels_avx512_init(sl_kernels *k) {
    *k = (sl_kernels){
        .name = "avx512",
        .gemm = {
            [SL_TYPE_F32] = gemm_f32,
            [SL_TYPE_F16] = gemm_f16,
            [SL_TYPE_BF16] = gemm_bf16,
            [SL_TYPE_Q4_0] = gemm_q4_0,
            [SL_TYPE_Q8_0] = gemm_q8_0,
            [SL_TYPE_Q4_K] = gemm_q4_K,
            [SL_TYPE_Q5_K] = gemm_q5_K,
            [SL_TYPE_Q6_K] = gemm_q6_K,
        },
        .attn = attn_avx512,
        .silu_mul = silu_mul_avx512,
    };
    return true;
}

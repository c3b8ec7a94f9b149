/*
 * kernels_avx2.c — AVX2 + FMA + F16C kernels (for x86 CPUs without
 * AVX-512); built with those flags and only called when cpuid reports them.
 *
 * Same structure and the same canonical operation order as the AVX-512
 * kernels (see kernels.h), with 8-lane vectors:
 *   - float weights: the 16 lanes of an output are two ymm accumulators
 *     (lanes 0-7 and 8-15); tails load zeros, which leave an accumulator
 *     bit-identical (it starts at +0 and x + 0 == x); then the tree 8, 4, 2, 1.
 *   - quantized weights: tiles of 8 rows unpacked in transposed form (ymm g =
 *     quant group g of the 8 rows, row r in lane r). Without VNNI, the
 *     exact group dot is vpmaddubsw (unsigned byte × signed byte → int16
 *     pairs, which never saturate here) + vpmaddwd by ones; Q8_0 quants take
 *     the sign trick (|w| × sign(a, w)) since w + 128 would saturate.
 */
#include "kernels.h"
#include "ops.h"

#include "core/fp16.h"
#include "quant.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

/* ---- helpers ---------------------------------------------------------------------- */

/* lanes 0-7 in lo, 8-15 in hi: acc[i] += acc[i+s] for s = 8, 4, 2, 1 */
AI float reduce16(__m256 lo, __m256 hi) {
    __m256 s8 = _mm256_add_ps(lo, hi);
    __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    __m128 s1 = _mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1));
    return _mm_cvtss_f32(s1);
}

AI __m256 exp8(__m256 x) {
    const __m256 small = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_NGE_UQ);
    const __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    __m256 xc = _mm256_min_ps(x, _mm256_set1_ps(88.0f));
    __m256 t = _mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f));
    const __m256i ni = _mm256_cvtps_epi32(t);
    const __m256 n = _mm256_cvtepi32_ps(ni);
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-0.693359375f), xc);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 z = _mm256_mul_ps(r, r);
    __m256 y = _mm256_fmadd_ps(p, z, r);
    y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(ni, _mm256_set1_epi32(127)), 23);
    __m256 res = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    res = _mm256_blendv_ps(res, _mm256_setzero_ps(), small);
    return _mm256_blendv_ps(res, x, nan);
}

/* Lane mask of the first n (0..8) lanes. */
AI __m256i first_lanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0));
}

/* 8 weights as floats starting at element k; `n` < 8 loads only n (the rest 0). */
AI __m256 load_w8(sl_type T, const uint8_t *w, int64_t k, int n) {
    if (T == SL_TYPE_F32) {
        if (n >= 8) return _mm256_loadu_ps((const float *)w + k);
        return _mm256_maskload_ps((const float *)w + k, first_lanes(n));
    }
    uint16_t tmp[8] = {0};
    const uint16_t *src = (const uint16_t *)w + k;
    __m128i h;
    if (n >= 8) h = _mm_loadu_si128((const __m128i *)src);
    else {
        memcpy(tmp, src, (size_t)(n > 0 ? n : 0) * 2);
        h = _mm_loadu_si128((const __m128i *)tmp);
    }
    if (T == SL_TYPE_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

AI __m256 load_x8(const float *x, int64_t k, int n) {
    if (n >= 8) return _mm256_loadu_ps(x + k);
    return _mm256_maskload_ps(x + k, first_lanes(n));
}

/* ---- float weights ---------------------------------------------------------------- */

AI void float_tile(sl_type T, int R, int NT, int64_t K, const uint8_t *w, size_t ws, const uint8_t *a, size_t as,
                   float *y, int64_t ldy) {
    __m256 lo[4][4], hi[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) lo[r][t] = hi[r][t] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; k += 16) {
        const int n = K - k >= 16 ? 16 : (int)(K - k), n0 = n < 8 ? n : 8, n1 = n - n0;
        __m256 x0[4], x1[4];
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            const float *xt = (const float *)(a + (size_t)t * as);
            x0[t] = load_x8(xt, k, n0);
            x1[t] = n1 > 0 ? load_x8(xt, k + 8, n1) : _mm256_setzero_ps();
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const uint8_t *wr = w + (size_t)r * ws;
            const __m256 w0 = load_w8(T, wr, k, n0), w1 = n1 > 0 ? load_w8(T, wr, k + 8, n1) : _mm256_setzero_ps();
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) {
                lo[r][t] = _mm256_fmadd_ps(w0, x0[t], lo[r][t]);
                hi[r][t] = _mm256_fmadd_ps(w1, x1[t], hi[r][t]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) y[(int64_t)t * ldy + r] = reduce16(lo[r][t], hi[r][t]);
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
    int64_t tb = (int64_t)(SL_GEMM_TOKEN_BYTES / as);
    if (tb < 4) tb = 4;
    for (int64_t b0 = 0; b0 < nt; b0 += tb) {
        const int64_t b1 = nt - b0 < tb ? nt : b0 + tb;
        for (int64_t r0 = 0; r0 < nr; r0 += 4) {
            const int R = nr - r0 < 4 ? (int)(nr - r0) : 4;
            for (int64_t t0 = b0; t0 < b1; t0 += 4) {
                const int N = b1 - t0 < 4 ? (int)(b1 - t0) : 4;
                tab[R - 1][N - 1](K, (const uint8_t *)w + (size_t)r0 * ws, ws, (const uint8_t *)act + (size_t)t0 * as,
                                  as, y + t0 * ldy + r0, ldy);
            }
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

/* ---- quantized weights: transposed 8-row tiles ------------------------------------------- */

AI __m256i row_offsets(size_t ws) {
    return _mm256_mullo_epi32(_mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0), _mm256_set1_epi32((int32_t)ws));
}

/* dword at base + idx[r] for the first nr rows, 0 elsewhere (never read). */
AI __m256i gather(int nr, __m256i idx, const uint8_t *base) {
    return _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), (const int *)base, idx, first_lanes(nr), 1);
}

AI __m256i bcast32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

AI __m256 f16_lo(__m256i v) {
    /* the low halves of the 8 dwords → 8 halves → floats */
    const __m256i pick = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1, 0, 1, 4, 5, 8, 9, 12,
                                          13, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i p = _mm256_shuffle_epi8(v, pick);
    const __m128i h = _mm_unpacklo_epi64(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
    return _mm256_cvtph_ps(h);
}
AI __m256 f16_hi(__m256i v) { return f16_lo(_mm256_srli_epi32(v, 16)); }

/* Σ over the 4 bytes of each lane of u[i] * s[i] (u unsigned, s signed; no saturation for our ranges). */
AI __m256i dot4(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* ---- Q4_0 / Q8_0: packed tiles (layout in kernels.h), 8 rows at a time ---- */


/* One token against half h (rows 8h..8h+7) of a packed tile. */
AI __m256 q0p_token(bool q8, const uint8_t *tile, int h, int64_t nb, const uint8_t *a, int64_t K) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const size_t G = q8 ? 512 : 256;
    const uint8_t *scales = tile + (size_t)nb * G;
    __m256 res = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *tb = tile + (size_t)b * G + 32 * h;
        __m256i acc;
        if (q8) { /* sign trick: |q| × (a with q's sign); pair sums stay below 2 * 128 * 127 */
            acc = _mm256_setzero_si256();
            for (int j = 0; j < 8; j++) {
                const __m256i w = _mm256_loadu_si256((const __m256i *)(tb + 64 * j));
                acc = _mm256_add_epi32(acc, dot4(_mm256_abs_epi8(w), _mm256_sign_epi8(bcast32(a + b * 32 + 4 * j), w)));
            }
        } else { /* int16 pair sums of q + 8 (<= 15) stay below 8 * 2 * 15 * 127 < 32768 */
            __m256i a16 = _mm256_setzero_si256();
            for (int j = 0; j < 4; j++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(tb + 64 * j));
                a16 = _mm256_add_epi16(a16, _mm256_maddubs_epi16(_mm256_and_si256(v, m4), bcast32(a + b * 32 + 4 * j)));
                a16 = _mm256_add_epi16(a16, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4),
                                                                 bcast32(a + b * 32 + 16 + 4 * j)));
            }
            acc = _mm256_add_epi32(_mm256_madd_epi16(a16, _mm256_set1_epi16(1)), bcast32(a + K + nb * 4 + b * 4));
        }
        float da;
        memcpy(&da, a + K + b * 4, 4);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(scales + b * 32 + 16 * h)));
        res = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(da)), _mm256_cvtepi32_ps(acc), res);
    }
    return res;
}

AI void store_rows(float *y, int nr, __m256 v) {
    if (nr >= 8) _mm256_storeu_ps(y, v);
    else if (nr > 0) _mm256_maskstore_ps(y, first_lanes(nr), v);
}

static void gemm_q0_packed(bool q8, int64_t K, const void *tiles, int64_t nr, const void *act, size_t as, int64_t nt,
                           float *y, int64_t ldy) {
    const int64_t nb = K / 32;
    const size_t tile = sl_pack_tile_bytes(q8 ? SL_TYPE_Q8_0 : SL_TYPE_Q4_0, K);
    int64_t tb = (int64_t)(SL_GEMM_TOKEN_BYTES / as);
    if (tb < 1) tb = 1;
    for (int64_t b0 = 0; b0 < nt; b0 += tb) {
        const int64_t b1 = nt - b0 < tb ? nt : b0 + tb;
        for (int64_t r0 = 0; r0 < nr; r0 += 16) {
            const uint8_t *t16 = (const uint8_t *)tiles + (size_t)(r0 / 16) * tile;
            for (int h = 0; h < 2 && r0 + 8 * h < nr; h++) {
                const int R = nr - r0 - 8 * h < 8 ? (int)(nr - r0 - 8 * h) : 8;
                for (int64_t t = b0; t < b1; t++) {
                    const uint8_t *a = (const uint8_t *)act + (size_t)t * as;
                    store_rows(y + t * ldy + r0 + 8 * h, R,
                               q8 ? q0p_token(true, t16, h, nb, a, K) : q0p_token(false, t16, h, nb, a, K));
                }
            }
        }
    }
}

static void gemm_q4_0_packed(int64_t K, const void *tiles, int64_t nr, const void *a, size_t as, int64_t nt, float *y,
                             int64_t ldy, void *scratch) {
    (void)scratch;
    gemm_q0_packed(false, K, tiles, nr, a, as, nt, y, ldy);
}
static void gemm_q8_0_packed(int64_t K, const void *tiles, int64_t nr, const void *a, size_t as, int64_t nt, float *y,
                             int64_t ldy, void *scratch) {
    (void)scratch;
    gemm_q0_packed(true, K, tiles, nr, a, as, nt, y, ldy);
}

static void gemm_q4_0(int64_t K, const void *w, size_t ws, int64_t nr, const void *a, size_t as, int64_t nt, float *y,
                      int64_t ldy, void *scratch) {
    sl_gemm_packing(gemm_q4_0_packed, SL_TYPE_Q4_0, K, w, ws, nr, a, as, nt, y, ldy, scratch, 0);
}
static void gemm_q8_0(int64_t K, const void *w, size_t ws, int64_t nr, const void *a, size_t as, int64_t nt, float *y,
                      int64_t ldy, void *scratch) {
    sl_gemm_packing(gemm_q8_0_packed, SL_TYPE_Q8_0, K, w, ws, nr, a, as, nt, y, ldy, scratch, 0);
}

/* ---- K-quants ---- */

/* Scratch per super-block: 64 ymm of unsigned groups, 16 ymm of sub-block
 * scales (int32), 8 ymm of int16 pairs (mins of Q4_K/Q5_K, scales of Q6_K),
 * then d and dmin. */
#define KQ_SC 64
#define KQ_PAIR (KQ_SC + 16)
#define KQ_D (KQ_PAIR + 8)
#define KQ_DMIN (KQ_D + 1)
#define KQ_BLOCK_BYTES ((KQ_DMIN + 1) * 32)

AI __m256i byte_of(__m256i v, int k) { return _mm256_and_si256(_mm256_srli_epi32(v, 8 * k), _mm256_set1_epi32(0xFF)); }

static void unpack_q45_K(bool q5, const uint8_t *w, size_t ws, int nr, int64_t nb, uint8_t *dst) {
    const __m256i idx = row_offsets(ws), m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    const __m256i c63 = _mm256_set1_epi32(63), c15 = _mm256_set1_epi32(15);
    const size_t bb = q5 ? sizeof(block_q5_K) : sizeof(block_q4_K);
    for (int64_t s = 0; s < nb; s++) {
        const uint8_t *base = w + (size_t)s * bb;
        __m256i *o = (__m256i *)(dst + s * KQ_BLOCK_BYTES);
        const __m256i dd = gather(nr, idx, base);
        _mm256_store_ps((float *)(o + KQ_D), f16_lo(dd));
        _mm256_store_ps((float *)(o + KQ_DMIN), f16_hi(dd));
        const __m256i s0 = gather(nr, idx, base + 4), s1 = gather(nr, idx, base + 8), s2 = gather(nr, idx, base + 12);
        __m256i mn[8];
        for (int j = 0; j < 4; j++) {
            _mm256_store_si256(o + KQ_SC + j, _mm256_and_si256(byte_of(s0, j), c63));
            mn[j] = _mm256_and_si256(byte_of(s1, j), c63);
            const __m256i q8 = byte_of(s2, j);
            _mm256_store_si256(o + KQ_SC + 4 + j,
                               _mm256_or_si256(_mm256_and_si256(q8, c15),
                                               _mm256_slli_epi32(_mm256_srli_epi32(byte_of(s0, j), 6), 4)));
            mn[4 + j] = _mm256_or_si256(_mm256_srli_epi32(q8, 4), _mm256_slli_epi32(_mm256_srli_epi32(byte_of(s1, j), 6), 4));
        }
        for (int i = 0; i < 4; i++)
            _mm256_store_si256(o + KQ_PAIR + i, _mm256_or_si256(mn[2 * i], _mm256_slli_epi32(mn[2 * i + 1], 16)));
        const uint8_t *qs = base + (q5 ? 48 : 16);
        __m256i qh[8];
        if (q5)
            for (int i = 0; i < 8; i++) qh[i] = gather(nr, idx, base + 16 + 4 * i);
        for (int c = 0; c < 4; c++)
            for (int i = 0; i < 8; i++) {
                const __m256i t = gather(nr, idx, qs + 32 * c + 4 * i);
                __m256i lo = _mm256_and_si256(t, m4), hi = _mm256_and_si256(_mm256_srli_epi16(t, 4), m4);
                if (q5) {
                    lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi32(qh[i], 2 * c), one), 4));
                    hi = _mm256_or_si256(hi,
                                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi32(qh[i], 2 * c + 1), one), 4));
                }
                _mm256_store_si256(o + 16 * c + i, lo);
                _mm256_store_si256(o + 16 * c + 8 + i, hi);
            }
    }
}

static void unpack_q6_K(const uint8_t *w, size_t ws, int nr, int64_t nb, uint8_t *dst) {
    const __m256i idx = row_offsets(ws), m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
    for (int64_t s = 0; s < nb; s++) {
        const uint8_t *base = w + (size_t)s * sizeof(block_q6_K);
        __m256i *o = (__m256i *)(dst + s * KQ_BLOCK_BYTES);
        _mm256_store_ps((float *)(o + KQ_D), f16_hi(gather(nr, idx, base + 206)));
        for (int k = 0; k < 4; k++) {
            const __m256i v = gather(nr, idx, base + 192 + 4 * k);
            __m256i sc[4];
            for (int n = 0; n < 4; n++) {
                sc[n] = _mm256_srai_epi32(_mm256_slli_epi32(v, 24 - 8 * n), 24);
                _mm256_store_si256(o + KQ_SC + 4 * k + n, sc[n]);
            }
            for (int n = 0; n < 2; n++)
                _mm256_store_si256(o + KQ_PAIR + 2 * k + n,
                                   _mm256_or_si256(_mm256_and_si256(sc[2 * n], _mm256_set1_epi32(0xFFFF)),
                                                   _mm256_slli_epi32(sc[2 * n + 1], 16)));
        }
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < 8; i++) {
                const __m256i A = gather(nr, idx, base + 64 * h + 4 * i);
                const __m256i B = gather(nr, idx, base + 64 * h + 32 + 4 * i);
                const __m256i H = gather(nr, idx, base + 128 + 32 * h + 4 * i);
                const int g = 32 * h + i;
                _mm256_store_si256(o + g, _mm256_or_si256(_mm256_and_si256(A, m4), _mm256_slli_epi16(_mm256_and_si256(H, m3), 4)));
                _mm256_store_si256(o + g + 8, _mm256_or_si256(_mm256_and_si256(B, m4),
                                                              _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H, 2), m3), 4)));
                _mm256_store_si256(o + g + 16,
                                   _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(A, 4), m4),
                                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H, 4), m3), 4)));
                _mm256_store_si256(o + g + 24,
                                   _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(B, 4), m4),
                                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H, 6), m3), 4)));
            }
    }
}

AI __m256 kq_token(bool q6, const uint8_t *tile, int64_t nb, const block_q8_K *a) {
    __m256 res = _mm256_setzero_ps();
    for (int64_t s = 0; s < nb; s++) {
        const __m256i *o = (const __m256i *)(tile + s * KQ_BLOCK_BYTES);
        __m256i isum = _mm256_setzero_si256();
        const int n_sub = q6 ? 16 : 8, per = q6 ? 4 : 8;
        for (int j = 0; j < n_sub; j++) {
            __m256i acc = _mm256_setzero_si256();
            for (int g = j * per; g < (j + 1) * per; g++)
                acc = _mm256_add_epi32(acc, dot4(_mm256_load_si256(o + g), bcast32(a[s].qs + 4 * g)));
            isum = _mm256_add_epi32(isum, _mm256_mullo_epi32(acc, _mm256_load_si256(o + KQ_SC + j)));
        }
        const __m256 da = _mm256_set1_ps(a[s].d);
        if (q6) {
            __m256i c = _mm256_setzero_si256();
            for (int i = 0; i < 8; i++)
                c = _mm256_add_epi32(c, _mm256_madd_epi16(_mm256_load_si256(o + KQ_PAIR + i), bcast32(a[s].bsums + 2 * i)));
            isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(c, 5));
        }
        res = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_load_ps((const float *)(o + KQ_D)), da), _mm256_cvtepi32_ps(isum), res);
        if (!q6) {
            __m256i imin = _mm256_setzero_si256();
            for (int i = 0; i < 4; i++) {
                const int16_t *bs = a[s].bsums + 4 * i;
                const int32_t s0 = bs[0] + bs[1], s1 = bs[2] + bs[3];
                const __m256i pr = _mm256_set1_epi32((int32_t)(((uint32_t)s0 & 0xFFFF) | ((uint32_t)s1 << 16)));
                imin = _mm256_add_epi32(imin, _mm256_madd_epi16(_mm256_load_si256(o + KQ_PAIR + i), pr));
            }
            const __m256 sm = _mm256_mul_ps(_mm256_load_ps((const float *)(o + KQ_DMIN)), da);
            const __m256 nsm = _mm256_xor_ps(sm, _mm256_set1_ps(-0.0f));
            res = _mm256_fmadd_ps(nsm, _mm256_cvtepi32_ps(imin), res);
        }
    }
    return res;
}

static void gemm_kq(sl_type type, int64_t K, const void *w, size_t ws, int64_t nr, const void *act, size_t as,
                    int64_t nt, float *y, int64_t ldy, void *scratch) {
    const int64_t nb = K / QK_K;
    const bool q6 = type == SL_TYPE_Q6_K;
    const size_t tile = (size_t)nb * KQ_BLOCK_BYTES;
    int64_t tb = (int64_t)(SL_GEMM_TOKEN_BYTES / as);
    if (tb < 1) tb = 1;
    for (int64_t c0 = 0; c0 < nr; c0 += SL_GEMM_CHUNK) {
        const int64_t cr = nr - c0 < SL_GEMM_CHUNK ? nr - c0 : SL_GEMM_CHUNK;
        for (int64_t r0 = 0; r0 < cr; r0 += 8) {
            const uint8_t *wr = (const uint8_t *)w + (size_t)(c0 + r0) * ws;
            const int R = cr - r0 < 8 ? (int)(cr - r0) : 8;
            uint8_t *dst = (uint8_t *)scratch + (size_t)(r0 / 8) * tile;
            if (q6) unpack_q6_K(wr, ws, R, nb, dst);
            else unpack_q45_K(type == SL_TYPE_Q5_K, wr, ws, R, nb, dst);
        }
        for (int64_t b0 = 0; b0 < nt; b0 += tb) {
            const int64_t b1 = nt - b0 < tb ? nt : b0 + tb;
            for (int64_t r0 = 0; r0 < cr; r0 += 8) {
                const int R = cr - r0 < 8 ? (int)(cr - r0) : 8;
                const uint8_t *t8 = (const uint8_t *)scratch + (size_t)(r0 / 8) * tile;
                for (int64_t t = b0; t < b1; t++) {
                    const block_q8_K *a = (const block_q8_K *)((const uint8_t *)act + (size_t)t * as);
                    store_rows(y + t * ldy + c0 + r0, R, q6 ? kq_token(true, t8, nb, a) : kq_token(false, t8, nb, a));
                }
            }
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

/* ---- attention ---------------------------------------------------------------------------- */

/* Elements [i, i+n) of a cached row as floats (n <= 8; the rest 0). */
AI __m256 kv_load8(sl_type t, const uint8_t *row, int32_t i, int n) {
    if (t == SL_TYPE_F32 || t == SL_TYPE_F16) return load_w8(t, row, i, n);
    const block_q8_0 *b = (const block_q8_0 *)row + i / 32; /* head size is a multiple of 32 */
    __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b->qs + i % 32))));
    return _mm256_mul_ps(q, _mm256_set1_ps(sl_f16_to_f32(b->d)));
}

#define ATT_MAXV 32

static void attn_head(const sl_attn_args *a, const float *q, float *out) {
    const int32_t D = a->head_dim, nv = (D + 15) / 16;
    __m256 lo[ATT_MAXV], hi[ATT_MAXV], rl[ATT_MAXV], rh[ATT_MAXV];
    float M = -INFINITY, l = 0.0f, s[16] __attribute__((aligned(32))), e[16] __attribute__((aligned(32)));
    for (int32_t v = 0; v < nv; v++) lo[v] = hi[v] = _mm256_setzero_ps();
    /* the next chunk's K rows and this chunk's V rows are prefetched (kernels.h) */
    const size_t rb = sl_type_row_size(a->kv_type, D);
    size_t offs[16], next[16];
    for (int32_t j0 = 0; j0 < a->n_pos; j0 += 16) {
        const int32_t n = a->n_pos - j0 < 16 ? a->n_pos - j0 : 16;
        sl_attn_chunk(a, j0, rb, offs, next);
        for (int32_t j = 0; j < n; j++) {
            const uint8_t *kr = a->k_base + offs[j];
            __m256 d0 = _mm256_setzero_ps(), d1 = _mm256_setzero_ps();
            for (int32_t v = 0; v < nv; v++) {
                const int rem = D - 16 * v, n0 = rem < 8 ? rem : 8, n1 = rem - 8 < 8 ? rem - 8 : 8;
                d0 = _mm256_fmadd_ps(load_x8(q, 16 * v, n0), kv_load8(a->kv_type, kr, 16 * v, n0), d0);
                if (n1 > 0) d1 = _mm256_fmadd_ps(load_x8(q, 16 * v + 8, n1), kv_load8(a->kv_type, kr, 16 * v + 8, n1), d1);
            }
            s[j] = reduce16(d0, d1) * a->scale;
        }
        float mc = -INFINITY;
        for (int32_t j = 0; j < n; j++) mc = s[j] > mc ? s[j] : mc;
        const float Mn = mc > M ? mc : M;
        if (j0 > 0) {
            const float corr = _mm256_cvtss_f32(exp8(_mm256_set1_ps(M - Mn)));
            l = l * corr;
            const __m256 c = _mm256_set1_ps(corr);
            for (int32_t v = 0; v < nv; v++) {
                lo[v] = _mm256_mul_ps(lo[v], c);
                hi[v] = _mm256_mul_ps(hi[v], c);
            }
        }
        M = Mn;
        for (int32_t j = n; j < 16; j++) s[j] = 0.0f;
        _mm256_store_ps(e, exp8(_mm256_sub_ps(_mm256_load_ps(s), _mm256_set1_ps(M))));
        _mm256_store_ps(e + 8, exp8(_mm256_sub_ps(_mm256_load_ps(s + 8), _mm256_set1_ps(M))));
        for (int32_t j = 0; j < n; j++) {
            const uint8_t *vr = a->v_base + offs[j];
            l = l + e[j];
            const __m256 pe = _mm256_set1_ps(e[j]);
            for (int32_t v = 0; v < nv; v++) {
                const int rem = D - 16 * v, n0 = rem < 8 ? rem : 8, n1 = rem - 8 < 8 ? rem - 8 : 8;
                rl[v] = kv_load8(a->kv_type, vr, 16 * v, n0);
                lo[v] = _mm256_fmadd_ps(pe, rl[v], lo[v]);
                if (n1 > 0) {
                    rh[v] = kv_load8(a->kv_type, vr, 16 * v + 8, n1);
                    hi[v] = _mm256_fmadd_ps(pe, rh[v], hi[v]);
                }
            }
        }
    }
    const __m256 lv = _mm256_set1_ps(l);
    for (int32_t v = 0; v < nv; v++) {
        const int rem = D - 16 * v, n0 = rem < 8 ? rem : 8, n1 = rem - 8 < 8 ? rem - 8 : 8;
        _mm256_maskstore_ps(out + 16 * v, first_lanes(n0), _mm256_div_ps(lo[v], lv));
        if (n1 > 0) _mm256_maskstore_ps(out + 16 * v + 8, first_lanes(n1), _mm256_div_ps(hi[v], lv));
    }
}

static void attn_avx2(const sl_attn_args *a) { sl_attn_each(a, attn_head); }

/* ---- activation quantization (the same bytes as sl_act_quantize) ------------------------------ */

AI float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

AI int32_t hsum8i(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

AI __m256 abs8(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

/* 8 int32 (each in [-127, 127]) → 8 bytes at p */
AI void store_i8x8(int8_t *p, __m256i q) {
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    const __m128i b = _mm_packs_epi16(w, w);
    _mm_storel_epi64((__m128i *)p, b);
}

static void quant_q8_0_row(const float *x, int64_t K, uint8_t *out) {
    const int64_t nb = K / 32;
    int8_t *qs = (int8_t *)out;
    float *d = (float *)(out + K);
    int32_t *c8 = (int32_t *)(out + K + nb * 4), *c128 = (int32_t *)(out + K + nb * 8);
    for (int64_t b = 0; b < nb; b++) {
        __m256 v[4], am = _mm256_setzero_ps();
        for (int c = 0; c < 4; c++) {
            v[c] = _mm256_loadu_ps(x + 32 * b + 8 * c);
            am = _mm256_max_ps(am, abs8(v[c]));
        }
        const float amax = hmax8(am);
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        d[b] = sl_f16_to_f32(sl_f32_to_f16(amax / 127.0f));
        __m256i sum = _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            const __m256i q = _mm256_cvtps_epi32(_mm256_mul_ps(v[c], _mm256_set1_ps(id)));
            store_i8x8(qs + 32 * b + 8 * c, q);
            sum = _mm256_add_epi32(sum, q);
        }
        const int32_t s = hsum8i(sum);
        c8[b] = sl_act_q8_0_corr(s, 8);
        c128[b] = sl_act_q8_0_corr(s, 128);
    }
}

static void quant_q8_K_row(const float *x, int64_t K, block_q8_K *y) {
    for (int64_t i = 0; i < K / QK_K; i++, x += QK_K) {
        __m256 am = _mm256_setzero_ps();
        for (int c = 0; c < 32; c++) am = _mm256_max_ps(am, abs8(_mm256_loadu_ps(x + 8 * c)));
        const float amax = hmax8(am);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float max = 0.0f;
        for (int j = 0; j < QK_K; j++)
            if (fabsf(x[j]) == amax) {
                max = x[j];
                break;
            }
        const float iscale = -127.0f / max;
        for (int c = 0; c < 16; c++) {
            __m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16 * c), _mm256_set1_ps(iscale)));
            __m256i q1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 16 * c + 8), _mm256_set1_ps(iscale)));
            q0 = _mm256_min_epi32(q0, _mm256_set1_epi32(127));
            q1 = _mm256_min_epi32(q1, _mm256_set1_epi32(127));
            store_i8x8(y[i].qs + 16 * c, q0);
            store_i8x8(y[i].qs + 16 * c + 8, q1);
            y[i].bsums[c] = (int16_t)hsum8i(_mm256_add_epi32(q0, q1));
        }
        y[i].d = 1.0f / iscale;
    }
}

static void act_quantize_avx2(sl_act a, const float *x, int64_t ldx, int64_t n_tok, int64_t K, void *out) {
    if (a == SL_ACT_F32) {
        sl_act_quantize(a, x, ldx, n_tok, K, out);
        return;
    }
    const size_t rb = sl_act_row_bytes(a, K);
    for (int64_t t = 0; t < n_tok; t++) {
        uint8_t *o = (uint8_t *)out + (size_t)t * rb;
        if (a == SL_ACT_Q8_0) quant_q8_0_row(x + t * ldx, K, o);
        else quant_q8_K_row(x + t * ldx, K, (block_q8_K *)o);
    }
}

/* Four sequential streams (the quarters of the array) read together. */
static uint64_t sum_u64_avx2(const uint64_t *a, size_t n) {
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    const size_t q = n / 4 / 8 * 8;
    const uint64_t *p0 = a, *p1 = a + q, *p2 = a + 2 * q, *p3 = a + 3 * q;
    for (size_t i = 0; i < q; i += 8) {
        s0 = _mm256_add_epi64(s0, _mm256_add_epi64(_mm256_loadu_si256((const __m256i *)(p0 + i)),
                                                   _mm256_loadu_si256((const __m256i *)(p0 + i + 4))));
        s1 = _mm256_add_epi64(s1, _mm256_add_epi64(_mm256_loadu_si256((const __m256i *)(p1 + i)),
                                                   _mm256_loadu_si256((const __m256i *)(p1 + i + 4))));
        s2 = _mm256_add_epi64(s2, _mm256_add_epi64(_mm256_loadu_si256((const __m256i *)(p2 + i)),
                                                   _mm256_loadu_si256((const __m256i *)(p2 + i + 4))));
        s3 = _mm256_add_epi64(s3, _mm256_add_epi64(_mm256_loadu_si256((const __m256i *)(p3 + i)),
                                                   _mm256_loadu_si256((const __m256i *)(p3 + i + 4))));
    }
    const __m256i t = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
    uint64_t v[4];
    _mm256_storeu_si256((__m256i *)v, t);
    uint64_t s = v[0] + v[1] + v[2] + v[3];
    for (size_t i = 4 * q; i < n; i++) s += a[i];
    return s;
}

/* ---- elementwise ------------------------------------------------------------------------------ */

static void silu_mul_avx2(const float *gate, const float *up, float *out, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = exp8(_mm256_xor_ps(g, _mm256_set1_ps(-0.0f)));
        const __m256 s = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
    }
    if (i < n) {
        const __m256i m = first_lanes((int)(n - i));
        const __m256 g = _mm256_maskload_ps(gate + i, m);
        const __m256 e = exp8(_mm256_xor_ps(g, _mm256_set1_ps(-0.0f)));
        const __m256 s = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_maskstore_ps(out + i, m, _mm256_mul_ps(s, _mm256_maskload_ps(up + i, m)));
    }
}

bool sl_kernels_avx2_init(sl_kernels *k) {
    *k = (sl_kernels){
        .name = "avx2",
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
        .gemm_packed = {
            [SL_TYPE_Q4_0] = gemm_q4_0_packed,
            [SL_TYPE_Q8_0] = gemm_q8_0_packed,
        },
        .attn = attn_avx2,
        .act_quantize = act_quantize_avx2,
        .sum_u64 = sum_u64_avx2,
        .silu_mul = silu_mul_avx2,
        .rmsnorm = sl_rmsnorm_ref,
    };
    return true;
}

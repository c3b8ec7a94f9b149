/*
 * kernels_avx512.c — AVX-512 (F, BW, VL, DQ, VNNI) kernels; built with the
 * AVX-512 flags and only called when cpuid reports them.
 *
 * Every kernel reproduces the canonical operation order of kernels.h, so
 * results equal the scalar kernels bit for bit:
 *   - float weights: one zmm accumulator per (row, token) = the 16 lanes;
 *     tails are masked FMAs that leave the other lanes untouched; then the
 *     halving tree 8, 4, 2, 1.
 *   - quantized weights: a tile of 16 rows is unpacked once into scratch in
 *     transposed form (zmm g = quant group g of the 16 rows, row r in lane
 *     r, unsigned: Q4_0 q+8, Q8_0 q+128, K-quants as stored), with the row
 *     scales as vectors. vpdpbusd against each activation group broadcast
 *     to all lanes accumulates every row's exact integer dot along K in its
 *     own lane; the integer corrections (offsets, sub-block scales, mins)
 *     and the float steps then run on 16 rows at once, in the per-output
 *     order of the scalar code. Tokens are taken 8 at a time so each
 *     unpacked group is loaded once for 8 of them.
 */
#include "kernels.h"
#include "kq_steps.h"

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

/* Float weights, one token: prefetch into L2 the rows this many row groups on
 * (AMD Zen 4 guest, from memory (bench/kernel_ab.sh F16): 2 groups
 * 1.20x at K = 2048, 1.11x at K = 8192; 4 groups 1.16x and 1.02x; into L1
 * instead, 1 group: 0.90x and 0.83x. Intel Emerald Rapids guest, `shardlm
 * bench` F16 decode with 2 threads: 2 groups 1.05x, 4 groups 0.91-0.94x
 * against 2 (PERF.md, 2026-12-01)). */
#define PF_ROWS 2

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

/* R rows × NT tokens (R ≤ 4, or FT_ROWS1 for one token), all accumulators in
 * registers. With io, the call is one part of K: the accumulators start from
 * io unless first, and go back to io unless last (the lanes' chains go on
 * in the same order, so the same bits as one call over K). One token
 * prefetches the rows PF_ROWS groups on that lie below pf_rows (rows from w
 * on that are the call's: past them the rows are another unit's, which the
 * other threads may have read already — 2-thread decode fetched them twice). */
AI void float_tile(sl_type T, int R, int NT, int64_t K, const uint8_t *w, size_t ws, const uint8_t *a, size_t as,
                   float *y, int64_t ldy, __m512 *io, bool first, bool last, int64_t pf_rows) {
    __m512 acc[8][4];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) acc[r][t] = io && !first ? io[4 * r + t] : _mm512_setzero_ps();
    int64_t k = 0;
    const size_t esz = T == SL_TYPE_F32 ? 4 : 2;
    for (; k + 16 <= K; k += 16) {
        __m512 x[4];
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) x[t] = _mm512_loadu_ps((const float *)(a + (size_t)t * as) + k);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            /* one token streams its rows from memory: into L2, the lines of the rows PF_ROWS groups on, as
             * far into them as this row is */
            if (NT == 1 && ((size_t)k * esz) % 64 == 0 && PF_ROWS * R + r < pf_rows)
                _mm_prefetch((const char *)(w + (size_t)(PF_ROWS * R + r) * ws + (size_t)k * esz), _MM_HINT_T2);
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
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            __m512 wv = load_w_mask(T, w + (size_t)r * ws, k, m);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) acc[r][t] = _mm512_mask3_fmadd_ps(wv, x[t], acc[r][t], m);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) {
            if (io && !last) io[4 * r + t] = acc[r][t];
            else y[(int64_t)t * ldy + r] = reduce16(acc[r][t]);
        }
}

#ifndef FT_ROWS1
/* Rows one token reads at once: each row is its own stream, and one core
 * draws more bandwidth from more streams (see Q0_STREAMS); 8 instead of 4
 * made F16/BF16 decoding from memory 1.09-1.11x faster (bench/kernel_ab.sh;
 * 16: the same, and slower in cache). */
#define FT_ROWS1 8
#endif
#define FT(TY, R, N)                                                                                            \
    static void ft_##TY##_##R##_##N(int64_t K, const uint8_t *w, size_t ws, const uint8_t *a, size_t as, float *y, \
                                    int64_t ldy) {                                                              \
        float_tile(SL_TYPE_##TY, R, N, K, w, ws, a, as, y, ldy, NULL, true, true, 0);                           \
    }
#define FT_ROW(TY, R) FT(TY, R, 1) FT(TY, R, 2) FT(TY, R, 3) FT(TY, R, 4)
#define FT_ALL(TY) FT_ROW(TY, 1) FT_ROW(TY, 2) FT_ROW(TY, 3) FT_ROW(TY, 4)
FT_ALL(F32)
FT_ALL(F16)
FT_ALL(BF16)
/* one token, FT_ROWS1 rows: pf_rows as float_tile's */
#define FT1(TY)                                                                                                  \
    static void ft1_##TY(int64_t K, const uint8_t *w, size_t ws, const uint8_t *a, size_t as, float *y, int64_t ldy, \
                         int64_t pf_rows) {                                                                      \
        float_tile(SL_TYPE_##TY, FT_ROWS1, 1, K, w, ws, a, as, y, ldy, NULL, true, true, pf_rows);                \
    }
typedef void (*ft1_fn)(int64_t, const uint8_t *, size_t, const uint8_t *, size_t, float *, int64_t, int64_t);
FT1(F32)
FT1(F16)
FT1(BF16)
/* F32 tiles over one part of K (float_tile's io) */
#define FTP(R, N)                                                                                                \
    static void ftp_##R##_##N(int64_t K, const uint8_t *w, size_t ws, const uint8_t *a, size_t as, float *y,     \
                              int64_t ldy, __m512 *io, bool first, bool last) {                                  \
        float_tile(SL_TYPE_F32, R, N, K, w, ws, a, as, y, ldy, io, first, last, 0);                               \
    }
#define FTP_ROW(R) FTP(R, 1) FTP(R, 2) FTP(R, 3) FTP(R, 4)
FTP_ROW(1) FTP_ROW(2) FTP_ROW(3) FTP_ROW(4) FTP_ROW(5) FTP_ROW(6)
typedef void (*ftp_fn)(int64_t, const uint8_t *, size_t, const uint8_t *, size_t, float *, int64_t, __m512 *, bool, bool);
static const ftp_fn FTP_TAB[6][4] = {
    {ftp_1_1, ftp_1_2, ftp_1_3, ftp_1_4},
    {ftp_2_1, ftp_2_2, ftp_2_3, ftp_2_4},
    {ftp_3_1, ftp_3_2, ftp_3_3, ftp_3_4},
    {ftp_4_1, ftp_4_2, ftp_4_3, ftp_4_4},
    {ftp_5_1, ftp_5_2, ftp_5_3, ftp_5_4},
    {ftp_6_1, ftp_6_2, ftp_6_3, ftp_6_4},
};
/* rows per group of gemm_float_conv (6 rows × 4 tokens: 24 accumulators; 1.05-1.07x over 4 × 4, while
 * 8 × 2, 8 × 3 and 6 × 3 were 0.70-0.82, bench/kernel_ab.sh) */
#define FT_GR 6

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

/* Columns [0, K) of R rows of F16 / BF16 weights as floats (exact) at out,
 * rows kp floats apart. */
AI void rows_to_f32(sl_type T, const uint8_t *w, size_t ws, int R, int64_t K, int64_t kp, float *out) {
    for (int r = 0; r < R; r++) {
        const uint8_t *wr = w + (size_t)r * ws;
        float *o = out + (size_t)r * (size_t)kp;
        int64_t k = 0;
        for (; k + 16 <= K; k += 16) _mm512_store_ps(o + k, load_w(T, wr, k));
        if (k < K) _mm512_store_ps(o + k, load_w_mask(T, wr, k, (__mmask16)((1u << (K - k)) - 1)));
    }
}

/* F16 / BF16 rows against FT_CONVERT_TOKENS tokens or more: SL_GEMM_CHUNK
 * rows at a time, blocks of up to FT_CONV_BLOCK tokens × parts of FT_KPART
 * columns × groups of FT_GR rows. Each
 * group's part is turned into floats once (into scratch, where it stays in
 * L1) and runs through the F32 tiles of every token in the block, the
 * accumulators carried from part to part in scratch (float_tile's io): the
 * same float weights and the same chains, so the same bits as the F16 / BF16
 * tiles, without a conversion (two µops on the FMA ports) per 4
 * multiply-adds, and with a part's weights in L1 and its activations in L2
 * whatever K. bench/kernel_ab.sh: see docs/PERF.md. */
#ifndef FT_CONVERT_TOKENS
#define FT_CONVERT_TOKENS 32
#endif
#ifndef FT_CONV_BLOCK
#define FT_CONV_BLOCK 64
#endif
#ifndef FT_KPART
#define FT_KPART 512
#endif
#ifndef FT_CONV_PREFETCH
#define FT_CONV_PREFETCH 1
#endif
AI void conv_chunk(sl_type T, int64_t K, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *act, size_t as,
                   int64_t nt, float *y, int64_t ldy, void *scratch) {
    const int64_t kb = K <= FT_KPART ? (K + 15) / 16 * 16 : FT_KPART, groups = (nr + FT_GR - 1) / FT_GR;
    const size_t el = 2, wc_bytes = (size_t)kb * FT_GR * sizeof(float);
    float *wc = scratch;
    __m512 *io = (__m512 *)((uint8_t *)scratch + wc_bytes);
    /* with several parts, each group × 4 tokens keeps 4 FT_GR accumulators between parts: as many
     * tokens as scratch holds them for (at least 24: sl_gemm_scratch_bytes(K) for K > 512, 11 groups) */
    int64_t tb = FT_CONV_BLOCK;
    if (K > kb) {
        const int64_t fit = (int64_t)((sl_gemm_scratch_bytes(K) - wc_bytes) / ((size_t)groups * 64 * 4 * FT_GR)) * 4;
        tb = fit < tb ? fit : tb;
    }
    for (int64_t b0 = 0; b0 < nt; b0 += tb) {
        const int64_t b1 = nt - b0 < tb ? nt : b0 + tb, tiles = (b1 - b0 + 3) / 4;
        for (int64_t k0 = 0; k0 < K; k0 += kb) {
            const int64_t kn = K - k0 < kb ? K - k0 : kb;
            for (int64_t g = 0; g < groups; g++) {
                const int64_t r0 = FT_GR * g;
                const int R = nr - r0 < FT_GR ? (int)(nr - r0) : FT_GR;
                rows_to_f32(T, w + (size_t)r0 * ws + (size_t)k0 * el, ws, R, kn, kb, wc);
                /* the next part to convert (next group, or the first group's next columns) comes from
                 * memory while this one's tiles run: its lines spread over the tiles */
                const int64_t gn = g + 1 < groups ? g + 1 : 0, kn0 = g + 1 < groups ? k0 : k0 + kb;
                const uint8_t *pn = kn0 < K ? w + (size_t)(FT_GR * gn) * ws + (size_t)kn0 * el : NULL;
                const int64_t row_lines = ((K - kn0 < kb ? K - kn0 : kb) * (int64_t)el + 63) / 64,
                              per = (FT_GR * row_lines + tiles - 1) / tiles;
                int64_t pr = 0, pl = 0; /* the next line to prefetch: row pr of the part, line pl of it */
                for (int64_t i = 0; i < tiles; i++) {
                    if (pn && FT_CONV_PREFETCH)
                        for (int64_t n = 0; n < per && pr < FT_GR; n++) {
                            _mm_prefetch((const char *)(pn + (size_t)pr * ws + 64 * (size_t)pl), _MM_HINT_T1);
                            if (++pl == row_lines) pl = 0, pr++;
                        }
                    const int64_t t0 = b0 + 4 * i;
                    const int N = b1 - t0 < 4 ? (int)(b1 - t0) : 4;
                    FTP_TAB[R - 1][N - 1](kn, (const uint8_t *)wc, (size_t)kb * sizeof(float),
                                          act + (size_t)t0 * as + (size_t)k0 * sizeof(float), as, y + t0 * ldy + r0,
                                          ldy, io + 4 * FT_GR * (g * tiles + i), k0 == 0, k0 + kn == K);
                }
            }
        }
    }
}

AI void gemm_float_conv(sl_type T, int64_t K, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *act,
                        size_t as, int64_t nt, float *y, int64_t ldy, void *scratch) {
    for (int64_t c0 = 0; c0 < nr; c0 += SL_GEMM_CHUNK)
        conv_chunk(T, K, w + (size_t)c0 * ws, ws, nr - c0 < SL_GEMM_CHUNK ? nr - c0 : SL_GEMM_CHUNK, act, as, nt, y + c0,
                   ldy, scratch);
}

static void gemm_f16_conv(int64_t K, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *act, size_t as,
                          int64_t nt, float *y, int64_t ldy, void *scratch) {
    gemm_float_conv(SL_TYPE_F16, K, w, ws, nr, act, as, nt, y, ldy, scratch);
}
static void gemm_bf16_conv(int64_t K, const uint8_t *w, size_t ws, int64_t nr, const uint8_t *act, size_t as,
                           int64_t nt, float *y, int64_t ldy, void *scratch) {
    gemm_float_conv(SL_TYPE_BF16, K, w, ws, nr, act, as, nt, y, ldy, scratch);
}

/* Token blocks (activations stay in L2) × tiles of 4 rows × 4 tokens; F16 /
 * BF16 rows against many tokens through gemm_float_conv. */
static void gemm_float(sl_type T, const ft_fn tab[4][4], ft1_fn one, int64_t K, const void *w, size_t ws, int64_t nr,
                       const void *act, size_t as, int64_t nt, float *y, int64_t ldy, void *scratch) {
    if (nt == 1) { /* decoding: FT_ROWS1 rows (streams) at once, then 4 at most */
        int64_t r0 = 0;
        for (; r0 + FT_ROWS1 <= nr; r0 += FT_ROWS1)
            one(K, (const uint8_t *)w + (size_t)r0 * ws, ws, act, as, y + r0, ldy, nr - r0);
        for (; r0 < nr; r0 += 4) {
            const int R = nr - r0 < 4 ? (int)(nr - r0) : 4;
            tab[R - 1][0](K, (const uint8_t *)w + (size_t)r0 * ws, ws, act, as, y + r0, ldy);
        }
        return;
    }
    if (T != SL_TYPE_F32 && scratch && nt >= FT_CONVERT_TOKENS) {
        (T == SL_TYPE_F16 ? gemm_f16_conv : gemm_bf16_conv)(K, w, ws, nr, act, as, nt, y, ldy, scratch);
        return;
    }
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
    gemm_float(SL_TYPE_F32, ft_F32, ft1_F32, K, w, ws, nr, a, as, nt, y, ldy, scratch);
}
static void gemm_f16(int64_t K, const void *w, size_t ws, int64_t nr, const void *a, size_t as, int64_t nt, float *y,
                     int64_t ldy, void *scratch) {
    gemm_float(SL_TYPE_F16, ft_F16, ft1_F16, K, w, ws, nr, a, as, nt, y, ldy, scratch);
}
static void gemm_bf16(int64_t K, const void *w, size_t ws, int64_t nr, const void *a, size_t as, int64_t nt, float *y,
                      int64_t ldy, void *scratch) {
    gemm_float(SL_TYPE_BF16, ft_BF16, ft1_BF16, K, w, ws, nr, a, as, nt, y, ldy, scratch);
}

/* ---- quantized weights: transposed 16-row tiles --------------------------------------- */

/* A tile of 16 rows is unpacked into "transposed" form: zmm g holds group g
 * (4 consecutive quants) of the 16 rows, row r in lane r, as unsigned bytes.
 * vpdpbusd against the activation group broadcast to all lanes then adds
 * that group's 4 products to every row's lane: lane r accumulates row r's
 * dot along K and no horizontal reduction is needed. The tile is built with
 * dword gathers (row r at offset r * row_bytes; rows >= nr are masked off,
 * never read). */

AI __m512i row_offsets(size_t ws) {
    return _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                              _mm512_set1_epi32((int32_t)ws));
}

AI __m512i gather(__mmask16 m, __m512i idx, const uint8_t *base) {
    return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, base, 1);
}

AI __m512i bcast32(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
}

/* acc + dpbusd(w, the dword at p broadcast): gcc loads a broadcast operand
 * with a separate vpbroadcastd; the instruction's own {1to16} memory form
 * saves that instruction. */
AI __m512i dpbusd_b(__m512i acc, __m512i w, const void *p) {
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*(const int32_t *)p));
    return acc;
}

/* fp16 in the low (high) half of each dword → float */
AI __m512 f16_lo(__m512i v) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v)); }
AI __m512 f16_hi(__m512i v) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16))); }

/* ---- Q4_0 / Q8_0: packed tiles (layout in kernels.h) ---- */

/* Software prefetch distances of the decode kernels: into L1 (near) and
 * into L2 (far; 0: none), chosen by sl_kernels_avx512_init from the CPU's
 * vendor. Measured from DRAM (bench/kq_decode.c, ratio to sum_u64):
 * - Intel (Emerald Rapids guest), one thread: 4 KiB near; 16 KiB far took
 *   K-quants from ~77% to ~84% and Q4_0 from 74-75% to 81-82%; neutral on an
 *   L3-resident set, ~5-25% slower on an L2-resident one, which decode never
 *   streams.
 * - AMD (EPYC Zen 4 guest): 2 KiB near and 64 KiB far against Intel's
 *   distances, one process per core (both cores streaming, as a 2-thread
 *   decode does): Q4_0 29.0-30.8 -> 32.0-33.6 GB/s, Q4_K 27.8-30.8 ->
 *   31.5-31.7, Q8_0 32.5-32.7 -> 33.1-44.9; one process: Q4_0 +18%, Q4_K
 *   +10%, Q8_0 +8%, Q6_K -3%.
 * -DSL_PREFETCH_BYTES / -DSL_FAR_PREFETCH_BYTES fix them (for measurements). */
/* Unpacking K-quant tiles for many tokens: prefetch at the decode distances
 * ahead of the super-block being read (true), or the next tile's same
 * super-block into L1 (false: 18-72 KiB ahead at the 1B shape, beyond L1 at K
 * = 8192). AMD Zen 4 guest, from memory (bench/kernel_ab.sh): Q4_K 1.14x at
 * 16 tokens, K = 2048, 1.08x at K = 8192, 1.05x at 64 tokens; Q6_K 1.18x.
 * Intel (its AMX table unpacks the same way) keeps the old way, unmeasured. */
static bool pf_unpack_ahead = false;
#define PF_NEAR_INTEL 4096
#define PF_FAR_INTEL 16384
#ifdef SL_PREFETCH_BYTES
static const size_t pf_near = SL_PREFETCH_BYTES;
#else
static size_t pf_near = PF_NEAR_INTEL;
#endif
#ifdef SL_FAR_PREFETCH_BYTES
static const size_t pf_far = SL_FAR_PREFETCH_BYTES;
#else
static size_t pf_far = PF_FAR_INTEL;
#endif
#ifndef Q0_STREAMS
/* Tiles a Q4_0 / Q8_0 decode call reads at once: one core draws 10-11 GB/s
 * from one sequential stream here, 14-16 from two, 16-20 from four; from
 * memory the kernel went 1.06-1.20x faster with 4 (bench/kernel_ab.sh), and
 * `shardlm bench` decode from 69-82% to 81-92% of the bandwidth probe. */
#define Q0_STREAMS 4
#endif


/* Block b of a packed tile (its quants at tb, G bytes; the tile's scales at
 * scales): keep several lines in flight from memory, near into L1 and far
 * into L2 ahead (the first token group of a tile streams it in). */
AI void q0_prefetch(const uint8_t *tb, const uint8_t *scales, int64_t b, size_t G, size_t near, size_t far) {
#pragma GCC unroll 8
    for (size_t o = 0; o < G; o += 64) {
        _mm_prefetch((const char *)(tb + near + o), _MM_HINT_T0);
        if (far > 0) _mm_prefetch((const char *)(tb + far + o), _MM_HINT_T2);
    }
    if (b % 2 == 0) _mm_prefetch((const char *)(scales + b * 32 + near / 8), _MM_HINT_T0);
}

/* NT tokens against NS packed tiles (tile k at tile + k * tstride): out[k *
 * NT + t] = tile k's 16 rows for token t. Per block the unsigned groups are
 * formed in registers (Q4_0: nibbles, q + 8; Q8_0: q ^ 0x80 = q + 128), each
 * row's raw dot starts from the activation's correction -off * (sum of the
 * block) (c8 / c128 of the activation row) and accumulates group by group in
 * its own lane; then the float steps. The tiles' blocks are interleaved so
 * that NS streams are read at once (Q0_STREAMS); every output's steps are
 * the same whatever NS and NT. */
AI void q0p_tokens(int NS, int NT, bool q8, const uint8_t *tile, size_t tstride, int64_t nb, const uint8_t *act,
                   size_t as, int64_t K, bool dec, __m512 *out) {
    /* decode: the distances chosen for this CPU; many tokens: Intel's as constants (runtime distances
     * cost 1-3% there, bench/kernel_ab.sh at 64 tokens on AMD: the kernel has no register to spare) */
    const size_t near = dec ? pf_near : PF_NEAR_INTEL, far = dec ? pf_far : PF_FAR_INTEL;
    const __m512i m4 = _mm512_set1_epi8(0x0F), flip = _mm512_set1_epi8((char)0x80);
    const size_t G = q8 ? 512 : 256;
    const uint8_t *at[8];
    __m512 res[16];
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++) at[t] = act + (size_t)t * as;
#pragma GCC unroll 16
    for (int i = 0; i < NS * NT; i++) res[i] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
#pragma GCC unroll 4
        for (int k = 0; k < NS; k++) {
            const uint8_t *tk = tile + (size_t)k * tstride, *tb = tk + (size_t)b * G, *scales = tk + (size_t)nb * G;
            q0_prefetch(tb, scales, b, G, near, far);
            __m512i W[8];
            if (q8) {
#pragma GCC unroll 8
                for (int j = 0; j < 8; j++) W[j] = _mm512_xor_si512(_mm512_load_si512(tb + 64 * j), flip);
            } else {
#pragma GCC unroll 4
                for (int j = 0; j < 4; j++) {
                    const __m512i v = _mm512_load_si512(tb + 64 * j);
                    W[j] = _mm512_and_si512(v, m4);
                    W[j + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                }
            }
            const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(scales + b * 32)));
            __m512i acc[8];
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++) acc[t] = bcast32(at[t] + K + nb * (q8 ? 8 : 4) + b * 4);
            /* group-major, so the NT independent dpbusd chains interleave */
#pragma GCC unroll 8
            for (int j = 0; j < 8; j++)
#pragma GCC unroll 8
                for (int t = 0; t < NT; t++)
                    acc[t] = dpbusd_b(acc[t], W[j], at[t] + b * 32 + 4 * j);
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++) {
                float da;
                memcpy(&da, at[t] + K + b * 4, 4);
                const __m512 sc = _mm512_mul_ps(dw, _mm512_set1_ps(da));
                res[k * NT + t] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(acc[t]), res[k * NT + t]);
            }
        }
    }
#pragma GCC unroll 16
    for (int i = 0; i < NS * NT; i++) out[i] = res[i];
}

#define Q0_FN(NAME, NS, N, DEC)                                                                                   \
    static void q4p_##NAME##_##N(const uint8_t *tile, size_t ts, int64_t nb, const uint8_t *act, size_t as, int64_t K, \
                               __m512 *out) {                                                                     \
        q0p_tokens(NS, N, false, tile, ts, nb, act, as, K, DEC, out);                                             \
    }                                                                                                             \
    static void q8p_##NAME##_##N(const uint8_t *tile, size_t ts, int64_t nb, const uint8_t *act, size_t as, int64_t K, \
                               __m512 *out) {                                                                     \
        q0p_tokens(NS, N, true, tile, ts, nb, act, as, K, DEC, out);                                              \
    }
Q0_FN(1, 1, 1, false) Q0_FN(1, 1, 2, false) Q0_FN(1, 1, 3, false) Q0_FN(1, 1, 4, false) Q0_FN(1, 1, 5, false)
Q0_FN(1, 1, 6, false) Q0_FN(1, 1, 7, false) Q0_FN(1, 1, 8, false)
Q0_FN(d, 1, 1, true) Q0_FN(d, 1, 2, true) Q0_FN(d, 1, 3, true) Q0_FN(d, 1, 4, true) Q0_FN(d, 1, 5, true)
Q0_FN(d, 1, 6, true) Q0_FN(d, 1, 7, true) Q0_FN(d, 1, 8, true)
Q0_FN(4, 4, 2, true) Q0_FN(4, 4, 3, true) Q0_FN(2, 2, 4, true) Q0_FN(S, Q0_STREAMS, 1, true)
typedef void (*q0_fn)(const uint8_t *, size_t, int64_t, const uint8_t *, size_t, int64_t, __m512 *);
static const q0_fn Q0_TOKENS[2][8] = {
    {q4p_1_1, q4p_1_2, q4p_1_3, q4p_1_4, q4p_1_5, q4p_1_6, q4p_1_7, q4p_1_8},
    {q8p_1_1, q8p_1_2, q8p_1_3, q8p_1_4, q8p_1_5, q8p_1_6, q8p_1_7, q8p_1_8},
};
/* Decoding 1..4 tokens: several tiles at once: Q0_STREAMS for one token, 4 for 2 or 3 (from memory
 * 1.15-1.24x, bench/kernel_ab.sh), 2 for 4 (1.03x; 4 tiles would spill: 0.89x in L2). */
static const q0_fn Q0_MULTI[2][4] = {
    {q4p_S_1, q4p_4_2, q4p_4_3, q4p_2_4},
    {q8p_S_1, q8p_4_2, q8p_4_3, q8p_2_4},
};
/* With the decode distances: the tiles a decoding call leaves over, and a token block's first group of
 * 8 (it streams the tile in from memory; from memory at 16 tokens 1.04-1.05x on AMD) */
static const q0_fn Q0_DEC[2][8] = {
    {q4p_d_1, q4p_d_2, q4p_d_3, q4p_d_4, q4p_d_5, q4p_d_6, q4p_d_7, q4p_d_8},
    {q8p_d_1, q8p_d_2, q8p_d_3, q8p_d_4, q8p_d_5, q8p_d_6, q8p_d_7, q8p_d_8},
};

/* Token blocks that stay in L2 × tiles × groups of 8 tokens. */
static void gemm_q0_packed(bool q8, int64_t K, const void *tiles, int64_t nr, const void *act, size_t as, int64_t nt,
                           float *y, int64_t ldy) {
    const int64_t nb = K / 32;
    const size_t tile = sl_pack_tile_bytes(q8 ? SL_TYPE_Q8_0 : SL_TYPE_Q4_0, K);
    int64_t tb = (int64_t)(SL_GEMM_TOKEN_BYTES / as) / 8 * 8;
    if (tb < 8) tb = 8;
    if (nt <= 4) { /* decoding a few tokens: NS tiles at once, then the rest one by one */
        const int N = (int)nt, NS = nt == 1 ? Q0_STREAMS : nt < 4 ? 4 : 2;
        __m512 out[16];
        int64_t r0 = 0;
        for (; r0 + 16 * NS <= nr; r0 += 16 * NS) {
            Q0_MULTI[q8][N - 1]((const uint8_t *)tiles + (size_t)(r0 / 16) * tile, tile, nb, act, as, K, out);
            for (int k = 0; k < NS; k++)
                for (int t = 0; t < N; t++) _mm512_storeu_ps(y + t * ldy + r0 + 16 * k, out[k * N + t]);
        }
        for (; r0 < nr; r0 += 16) {
            const int R = nr - r0 < 16 ? (int)(nr - r0) : 16;
            Q0_DEC[q8][N - 1]((const uint8_t *)tiles + (size_t)(r0 / 16) * tile, tile, nb, act, as, K, out);
            for (int t = 0; t < N; t++) _mm512_mask_storeu_ps(y + t * ldy + r0, (__mmask16)((1u << R) - 1), out[t]);
        }
        return;
    }
    for (int64_t b0 = 0; b0 < nt; b0 += tb) {
        const int64_t b1 = nt - b0 < tb ? nt : b0 + tb;
        for (int64_t r0 = 0; r0 < nr; r0 += 16) {
            const int R = nr - r0 < 16 ? (int)(nr - r0) : 16;
            const __mmask16 m = (__mmask16)((1u << R) - 1);
            const uint8_t *t16 = (const uint8_t *)tiles + (size_t)(r0 / 16) * tile;
            for (int64_t t0 = b0; t0 < b1; t0 += 8) {
                const int N = b1 - t0 < 8 ? (int)(b1 - t0) : 8;
                __m512 out[8];
                (t0 == b0 ? Q0_DEC : Q0_TOKENS)[q8][N - 1](t16, tile, nb, (const uint8_t *)act + (size_t)t0 * as, as, K, out);
                for (int t = 0; t < N; t++) _mm512_mask_storeu_ps(y + (t0 + t) * ldy + r0, m, out[t]);
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

/* Sixteen tokens of a group (sl_act_group) against one packed tile: each
 * output's steps are q0p_tokens' (the same bits), in sixteen independent
 * vpdpbusd chains where q0p_tokens, its token pointers in registers, has
 * at most eight. A chain of eight dependent vpdpbusd per block is the
 * limit there: this core retires them at 2.6-3.4 G/s from eight chains and
 * 4.0-4.4 from twelve to sixteen ({1to16} memory operands, as here); with
 * the group every quant is one pointer plus a constant, which leaves the
 * registers to the sixteen chains. The sixteen sums stay in res (memory:
 * the vector registers hold the chains and a block's weight groups). */
AI void q0g_16(bool q8, const uint8_t *tile, int64_t nb, const uint8_t *grp, bool dec, float *res) {
    const size_t near = dec ? pf_near : PF_NEAR_INTEL, far = dec ? pf_far : PF_FAR_INTEL;
    const __m512i m4 = _mm512_set1_epi8(0x0F), flip = _mm512_set1_epi8((char)0x80);
    const size_t G = q8 ? 512 : 256;
    const uint8_t *scales = tile + (size_t)nb * G, *gd = grp + (size_t)nb * 512,
                  *gc = grp + (size_t)nb * (q8 ? 640 : 576);
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) _mm512_store_ps(res + 16 * t, _mm512_setzero_ps());
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *tb = tile + (size_t)b * G, *q = grp + 512 * (size_t)b;
        q0_prefetch(tb, scales, b, G, near, far);
        __m512i acc[16];
#pragma GCC unroll 16
        for (int t = 0; t < 16; t++) acc[t] = bcast32(gc + 64 * b + 4 * t);
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) {
            __m512i w;
            if (q8)
                w = _mm512_xor_si512(_mm512_load_si512(tb + 64 * j), flip);
            else if (j < 4)
                w = _mm512_and_si512(_mm512_load_si512(tb + 64 * j), m4);
            else
                w = _mm512_and_si512(_mm512_srli_epi16(_mm512_load_si512(tb + 64 * (j - 4)), 4), m4);
#pragma GCC unroll 16
            for (int t = 0; t < 16; t++) acc[t] = dpbusd_b(acc[t], w, q + 32 * t + 4 * j);
        }
        const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(scales + b * 32)));
#pragma GCC unroll 16
        for (int t = 0; t < 16; t++) {
            float da;
            memcpy(&da, gd + 64 * b + 4 * t, 4);
            const __m512 sc = _mm512_mul_ps(dw, _mm512_set1_ps(da));
            _mm512_store_ps(res + 16 * t,
                            _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(acc[t]), _mm512_load_ps(res + 16 * t)));
        }
    }
}

#define Q0G_FN(NAME, Q8, DEC)                                                                                      \
    static void NAME(const uint8_t *tile, int64_t nb, const uint8_t *grp, float *res) {                            \
        q0g_16(Q8, tile, nb, grp, DEC, res);                                                                       \
    }
Q0G_FN(q4g_16, false, false) Q0G_FN(q4g_d_16, false, true) Q0G_FN(q8g_16, true, false) Q0G_FN(q8g_d_16, true, true)
/* [q8][streaming the tile in: the decode distances] */
static void (*const Q0G[2][2])(const uint8_t *, int64_t, const uint8_t *, float *) = {
    {q4g_16, q4g_d_16},
    {q8g_16, q8g_d_16},
};

/* A group kernel's results (res: 16 tokens × 16 rows) for its tokens below
 * nt - t0 (the rest are padding) into y, t0's row first, masked to the
 * tile's valid rows. */
AI void store_group(const float *res, int64_t t0, int64_t nt, float *y, int64_t ldy, __mmask16 m) {
    for (int t = 0; t < 16 && t0 + t < nt; t++) _mm512_mask_storeu_ps(y + (t0 + t) * ldy, m, _mm512_load_ps(res + 16 * t));
}

/* Tokens after the last whole group: at least this many go through a group
 * kernel as a padded group (sl_act_group_pad), fewer through the per-row
 * kernels. From memory (bench/kernel_ab.sh, against those): Q4_0 with 16 +
 * 12 tokens 0.97x, + 13 0.99x, + 14 1.09x, + 15 1.03x, 13 alone 1.09x, 15
 * alone 1.20x; the K-quant decode kernel, which takes the tokens of a
 * grouped call of fewer than KQ_FUSED_TOKENS one by one, costs 1.8 times the
 * group kernel per token: Q4_K 13 alone 1.57x, 16 + 12 1.19x, Q6_K 16 + 12
 * 1.36x. */
#define GROUP_PAD_MIN 13
#define KQ_DECODE_PAD_MIN 9

/* The whole groups of 16 tokens through q0g_16 (token blocks that stay in
 * L2 × tiles × groups), a last partial group of GROUP_PAD_MIN or more too, the
 * other tokens after the last whole group through gemm_q0_packed. */
static void gemm_q0_grouped(bool q8, int64_t K, const void *tiles, int64_t nr, const void *act, size_t as,
                            const void *groups, int64_t nt, float *y, int64_t ldy) {
    const int64_t nb = K / 32, full = nt % 16 >= GROUP_PAD_MIN ? nt : nt / 16 * 16;
    const size_t tile = sl_pack_tile_bytes(q8 ? SL_TYPE_Q8_0 : SL_TYPE_Q4_0, K), gb = sl_act_group_bytes(SL_ACT_Q8_0, K);
    int64_t tb = (int64_t)(SL_GEMM_TOKEN_BYTES / gb) * 16;
    if (tb < 16) tb = 16;
    float res[256] __attribute__((aligned(64)));
    for (int64_t b0 = 0; b0 < full; b0 += tb) {
        const int64_t b1 = full - b0 < tb ? full : b0 + tb;
        for (int64_t r0 = 0; r0 < nr; r0 += 16) {
            const int R = nr - r0 < 16 ? (int)(nr - r0) : 16;
            const __mmask16 m = (__mmask16)((1u << R) - 1);
            const uint8_t *t16 = (const uint8_t *)tiles + (size_t)(r0 / 16) * tile;
            for (int64_t t0 = b0; t0 < b1; t0 += 16) {
                Q0G[q8][t0 == b0](t16, nb, (const uint8_t *)groups + (size_t)(t0 / 16) * gb, res);
                store_group(res, t0, nt, y + r0, ldy, m);
            }
        }
    }
    if (full < nt) gemm_q0_packed(q8, K, tiles, nr, (const uint8_t *)act + (size_t)full * as, as, nt - full, y + full * ldy, ldy);
}

static void gemm_q4_0_grouped(int64_t K, const void *tiles, int64_t nr, const void *a, size_t as, const void *g,
                              int64_t nt, float *y, int64_t ldy, void *scratch) {
    (void)scratch;
    gemm_q0_grouped(false, K, tiles, nr, a, as, g, nt, y, ldy);
}
static void gemm_q8_0_grouped(int64_t K, const void *tiles, int64_t nr, const void *a, size_t as, const void *g,
                              int64_t nt, float *y, int64_t ldy, void *scratch) {
    (void)scratch;
    gemm_q0_grouped(true, K, tiles, nr, a, as, g, nt, y, ldy);
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

/* Prefetch the next 16 rows (contiguous after this tile) a slice per block,
 * so the gathers of the next tile find them in cache. Prefetches do not
 * fault, so reading past the matrix is harmless. */
AI void prefetch_slice(const uint8_t *w, size_t ws, int64_t b, int64_t nb) {
    const size_t tile = 16 * ws, lo = tile * (size_t)b / (size_t)nb, hi = tile * (size_t)(b + 1) / (size_t)nb;
    for (size_t o = lo & ~(size_t)63; o < hi; o += 64) _mm_prefetch((const char *)(w + tile + o), _MM_HINT_T0);
}

/* The unpacked super-block (SL_KQ_* in kernels.h). */
#define KQ_W SL_KQ_W
#define KQ_SC SL_KQ_SC
#define KQ_MIN SL_KQ_MIN
#define KQ_D SL_KQ_D
#define KQ_DMIN SL_KQ_DMIN
#define KQ_BLOCK_BYTES SL_KQ_BLOCK_BYTES

AI __m512i byte_of(__m512i v, int k) { return _mm512_and_si512(_mm512_srli_epi32(v, 8 * k), _mm512_set1_epi32(0xFF)); }

/* Dword at byte `off` (a multiple of 4) of super-block s of the 16 rows, row
 * r in lane r: gathered from the rows as stored (w = row 0, ws apart), or
 * loaded from a packed tile (packed: w = the tile, ws = tile bytes). */
AI __m512i kq_dword(bool packed, __mmask16 m, __m512i idx, const uint8_t *w, size_t bs, size_t D, int64_t s, size_t off) {
    if (packed) return _mm512_load_si512(w + 64 * D * (size_t)s + 16 * off);
    return gather(m, idx, w + (size_t)s * bs + off);
}

AI void kq_prefetch(bool packed, const uint8_t *w, size_t ws, size_t D, int64_t s, int64_t nb) {
    if (!packed) {
        prefetch_slice(w, ws, s, nb);
        return;
    }
    if (pf_unpack_ahead) { /* this tile's stream, pf_near into L1 and pf_far into L2 ahead */
        for (size_t o = 0; o < 64 * D; o += 64) {
            _mm_prefetch((const char *)(w + 64 * D * (size_t)s + pf_near + o), _MM_HINT_T0);
            if (pf_far > 0) _mm_prefetch((const char *)(w + 64 * D * (size_t)s + pf_far + o), _MM_HINT_T2);
        }
        return;
    }
    for (size_t o = 0; o < 64 * D; o += 64) _mm_prefetch((const char *)(w + ws + 64 * D * (size_t)s + o), _MM_HINT_T0);
}

AI void unpack_q45_K_impl(bool packed, bool q5, const uint8_t *w, size_t ws, int nr, int64_t nb, uint8_t *dst) {
    const __mmask16 m = (__mmask16)((1u << nr) - 1);
    const __m512i idx = row_offsets(packed ? 0 : ws), m4 = _mm512_set1_epi8(0x0F), one = _mm512_set1_epi8(1);
    const __m512i c63 = _mm512_set1_epi32(63), c15 = _mm512_set1_epi32(15);
    const size_t bb = q5 ? sizeof(block_q5_K) : sizeof(block_q4_K), D = bb / 4;
#define LD(off) kq_dword(packed, m, idx, w, bb, D, s, (off))
    for (int64_t s = 0; s < nb; s++) {
        __m512i *o = (__m512i *)(dst + s * KQ_BLOCK_BYTES);
        kq_prefetch(packed, w, ws, D, s, nb);
        const __m512i dd = LD(0);
        _mm512_store_ps((float *)(o + KQ_D), f16_lo(dd));
        _mm512_store_ps((float *)(o + KQ_DMIN), f16_hi(dd));
        const __m512i s0 = LD(4), s1 = LD(8), s2 = LD(12);
        __m512i mn[8];
        for (int j = 0; j < 4; j++) {
            _mm512_store_si512(o + KQ_SC + j, _mm512_and_si512(byte_of(s0, j), c63));
            mn[j] = _mm512_and_si512(byte_of(s1, j), c63);
            const __m512i q8 = byte_of(s2, j);
            const __m512i sc = _mm512_or_si512(_mm512_and_si512(q8, c15), _mm512_slli_epi32(_mm512_srli_epi32(byte_of(s0, j), 6), 4));
            _mm512_store_si512(o + KQ_SC + 4 + j, sc);
            mn[4 + j] = _mm512_or_si512(_mm512_srli_epi32(q8, 4), _mm512_slli_epi32(_mm512_srli_epi32(byte_of(s1, j), 6), 4));
        }
        for (int i = 0; i < 4; i++)
            _mm512_store_si512(o + KQ_MIN + i, _mm512_or_si512(mn[2 * i], _mm512_slli_epi32(mn[2 * i + 1], 16)));
        const size_t qs = q5 ? 48 : 16;
        __m512i qh[8];
        if (q5)
            for (int i = 0; i < 8; i++) qh[i] = LD(16 + 4 * (size_t)i);
        for (int c = 0; c < 4; c++)
            for (int i = 0; i < 8; i++) {
                const __m512i t = LD(qs + 32 * (size_t)c + 4 * (size_t)i);
                __m512i lo = _mm512_and_si512(t, m4), hi = _mm512_and_si512(_mm512_srli_epi16(t, 4), m4);
                if (q5) {
                    lo = _mm512_or_si512(lo, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi32(qh[i], 2 * c), one), 4));
                    hi = _mm512_or_si512(hi, _mm512_slli_epi16(_mm512_and_si512(_mm512_srli_epi32(qh[i], 2 * c + 1), one), 4));
                }
                _mm512_store_si512(o + 16 * c + i, lo);
                _mm512_store_si512(o + 16 * c + 8 + i, hi);
            }
    }
#undef LD
}

/* Q6_K tiles (layout at pack_q6_K_block in kernels.c): group 16m + t
 * = zmm 3t + m & 63, group 48 + t from the top bit pairs of the three. */
AI void unpack_q6_K_packed(const uint8_t *w, size_t ws, int64_t nb, uint8_t *dst) {
    const __m512i c3f = _mm512_set1_epi8(0x3F), c03 = _mm512_set1_epi8(3), c0c = _mm512_set1_epi8(0x0C),
                  c30 = _mm512_set1_epi8(0x30);
    const size_t D = 52;
    for (int64_t s = 0; s < nb; s++) {
        __m512i *o = (__m512i *)(dst + s * KQ_BLOCK_BYTES);
        const uint8_t *pb = w + 64 * D * (size_t)s;
        kq_prefetch(true, w, ws, D, s, nb);
        _mm512_store_ps((float *)(o + KQ_D), _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(w + 64 * D * (size_t)nb + 32 * (size_t)s))));
        __m512i sc[16];
        for (int j = 0; j < 16; j++) {
            sc[j] = _mm512_cvtepi8_epi32(_mm_load_si128((const __m128i *)(pb + 64 * 48 + 16 * (size_t)j)));
            _mm512_store_si512(o + KQ_SC + j, sc[j]);
        }
        for (int i = 0; i < 8; i++)
            _mm512_store_si512(o + KQ_MIN + i, _mm512_or_si512(_mm512_and_si512(sc[2 * i], _mm512_set1_epi32(0xFFFF)),
                                                               _mm512_slli_epi32(sc[2 * i + 1], 16)));
        for (int t = 0; t < 16; t++) {
            const __m512i v0 = _mm512_load_si512(pb + 64 * (3 * (size_t)t)), v1 = _mm512_load_si512(pb + 64 * (3 * (size_t)t + 1)),
                          v2 = _mm512_load_si512(pb + 64 * (3 * (size_t)t + 2));
            _mm512_store_si512(o + t, _mm512_and_si512(v0, c3f));
            _mm512_store_si512(o + 16 + t, _mm512_and_si512(v1, c3f));
            _mm512_store_si512(o + 32 + t, _mm512_and_si512(v2, c3f));
            const __m512i q3 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v0, 6), c03),
                                               _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(v1, 4), c0c),
                                                               _mm512_and_si512(_mm512_srli_epi16(v2, 2), c30)));
            _mm512_store_si512(o + 48 + t, q3);
        }
    }
}

/* From packed tiles only: the rows-as-stored path packs its chunk first. */
void sl_kq_unpack(sl_type type, const uint8_t *tile, size_t tile_bytes, int nr, int64_t nb, uint8_t *dst) {
    if (type == SL_TYPE_Q6_K) unpack_q6_K_packed(tile, tile_bytes, nb, dst);
    else unpack_q45_K_impl(true, type == SL_TYPE_Q5_K, tile, tile_bytes, nr, nb, dst);
}

/* NT tokens against an unpacked K-quant tile. */
AI void kq_tokens(int NT, bool q6, const uint8_t *tile, int64_t nb, const uint8_t *act, size_t as, __m512 out[8]) {
    const block_q8_K *at[8];
    __m512 res[8];
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++) {
        at[t] = (const block_q8_K *)(act + (size_t)t * as);
        res[t] = _mm512_setzero_ps();
    }
    for (int64_t s = 0; s < nb; s++) {
        const __m512i *o = (const __m512i *)(tile + s * KQ_BLOCK_BYTES);
        __m512i isum[8];
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) isum[t] = _mm512_setzero_si512();
        const int n_sub = q6 ? 16 : 8, per = q6 ? 4 : 8;
        for (int j = 0; j < n_sub; j++) {
            __m512i acc[8];
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++) acc[t] = _mm512_setzero_si512();
            for (int g = j * per; g < (j + 1) * per; g++) {
                const __m512i W = _mm512_load_si512(o + g);
#pragma GCC unroll 8
                for (int t = 0; t < NT; t++) acc[t] = _mm512_dpbusd_epi32(acc[t], W, bcast32(at[t][s].qs + 4 * g));
            }
            const __m512i sc = _mm512_load_si512(o + KQ_SC + j);
#pragma GCC unroll 8
            for (int t = 0; t < NT; t++) isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(acc[t], sc));
        }
        const __m512 d = _mm512_load_ps((const float *)(o + KQ_D)), dmin = _mm512_load_ps((const float *)(o + KQ_DMIN));
#pragma GCC unroll 8
        for (int t = 0; t < NT; t++) res[t] = sl_kq_end(q6, isum[t], d, dmin, o + KQ_MIN, &at[t][s], res[t]);
    }
#pragma GCC unroll 8
    for (int t = 0; t < NT; t++) out[t] = res[t];
}

#define KQ_NT(N)                                                                                                    \
    static void kq45_nt##N(const uint8_t *tile, int64_t nb, const uint8_t *act, size_t as, __m512 out[8]) {          \
        kq_tokens(N, false, tile, nb, act, as, out);                                                                  \
    }                                                                                                                 \
    static void kq6_nt##N(const uint8_t *tile, int64_t nb, const uint8_t *act, size_t as, __m512 out[8]) {           \
        kq_tokens(N, true, tile, nb, act, as, out);                                                                   \
    }
KQ_NT(1) KQ_NT(2) KQ_NT(3) KQ_NT(4) KQ_NT(5) KQ_NT(6) KQ_NT(7) KQ_NT(8)
typedef void (*kq_fn)(const uint8_t *, int64_t, const uint8_t *, size_t, __m512 *);
static const kq_fn KQ_TOKENS[2][8] = {
    {kq45_nt1, kq45_nt2, kq45_nt3, kq45_nt4, kq45_nt5, kq45_nt6, kq45_nt7, kq45_nt8},
    {kq6_nt1, kq6_nt2, kq6_nt3, kq6_nt4, kq6_nt5, kq6_nt6, kq6_nt7, kq6_nt8},
};

/* One token (decode) straight from a packed tile: the same integers and
 * float steps as unpack + kq_tokens, without the round trip through scratch.
 * The integer work is arranged for port 0 (the only one that runs zmm
 * vpdpbusd, shifts and vpmulld on this class of core): no shift per loaded
 * vector where a mask will do, byte moves by vpshufb (port 5), one
 * independent vpdpbusd chain per sub-block, and every intermediate an exact
 * multiple of the canonical integer (bounds at each use). */

/* vpshufb index, per dword d of each 128-bit lane: byte j of the dword to
 * byte 0, bytes 1..3 zero. */
AI __m512i sel_byte(int j) {
    return _mm512_set4_epi32((int32_t)(0x80808000u | (12u + (unsigned)j)), (int32_t)(0x80808000u | (8u + (unsigned)j)),
                             (int32_t)(0x80808000u | (4u + (unsigned)j)), (int32_t)(0x80808000u | (unsigned)j));
}
/* bytes j, j + 1 of each dword to bytes 0 and 2 (an int16 pair), others zero. */
AI __m512i sel_pair(int j) {
    uint32_t e[4];
    for (unsigned d = 0; d < 4; d++) e[d] = 0x80008000u | (4u * d + (unsigned)j) | (4u * d + (unsigned)j + 1) << 16;
    return _mm512_set4_epi32((int32_t)e[3], (int32_t)e[2], (int32_t)e[1], (int32_t)e[0]);
}
/* Prefetch lines [lo, hi) of a super-block pf_near bytes ahead into L1
 * and pf_far ahead into L2: a few lines per step of the loop
 * over its quants rather than all at once, so the requests go out at the
 * rate the data is consumed. */
AI void kq_prefetch_lines(const uint8_t *pb, size_t lo, size_t hi) {
#pragma GCC unroll 64
    for (size_t l = lo; l < hi; l++) {
        _mm_prefetch((const char *)(pb + pf_near + 64 * l), _MM_HINT_T0);
        if (pf_far > 0) _mm_prefetch((const char *)(pb + pf_far + 64 * l), _MM_HINT_T2);
    }
}
#define KQ_PREFETCH_PART(pb, D, i, n) kq_prefetch_lines(pb, (D) * (size_t)(i) / (n), (D) * (size_t)((i) + 1) / (n))

/* (a & b) | c */
AI __m512i and_or(__m512i a, __m512i b, __m512i c) { return _mm512_ternarylogic_epi32(a, b, c, 0xEA); }

/* Q4_K / Q5_K. Sub-block 2c reads the low nibbles of quant dwords 8c..8c+7,
 * sub-block 2c+1 the high ones. Q4_K takes the high nibbles in place
 * (v & 0xF0 = 16 q): that sub-block's dot is 16 isum_j exactly, and
 * Σ_odd sc_j (16 isum_j) >> 4 = Σ_odd sc_j isum_j (|16 isum_j| <= 32*240*128
 * = 983040, times 63, four of them: < 2^28). Q5_K takes 2 q (the nibble
 * shifted right by 3 next to the fifth bit at bit 5), and >> 1. */
AI __m512 kq45_decode(bool q5, const uint8_t *tile, int64_t nb, const block_q8_K *a) {
    const size_t D = q5 ? 44 : 36;
    const __m512i c0f = _mm512_set1_epi8(0x0F), cf0 = _mm512_set1_epi8((char)0xF0), c3f = _mm512_set1_epi8(0x3F),
                  c30 = _mm512_set1_epi8(0x30), c10 = _mm512_set1_epi8(0x10), c20 = _mm512_set1_epi8(0x20),
                  c1e = _mm512_set1_epi8(0x1E);
    __m512 res = _mm512_setzero_ps();
#define LD(off) _mm512_load_si512(pb + 16 * (size_t)(off))
    for (int64_t s = 0; s < nb; s++) {
        const uint8_t *pb = tile + 64 * D * (size_t)s;
        const block_q8_K *as = &a[s];
        /* scales: byte j of scl / sch = sc_j / sc_{4+j}, of mnl / mnh = m_j / m_{4+j} */
        const __m512i dd = LD(0), s0 = LD(4), s1 = LD(8), s2 = LD(12);
        const __m512i scl = _mm512_and_si512(s0, c3f), mnl = _mm512_and_si512(s1, c3f);
        const __m512i sch = and_or(s2, c0f, _mm512_and_si512(_mm512_srli_epi32(s0, 2), c30));
        const __m512i mnh = and_or(_mm512_srli_epi32(s2, 4), c0f, _mm512_and_si512(_mm512_srli_epi32(s1, 2), c30));
        __m512i acc[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++) acc[j] = _mm512_setzero_si512();
        const size_t qs = q5 ? 48 : 16;
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            KQ_PREFETCH_PART(pb, D, i, 8);
            const __m512i qh = q5 ? LD(16 + 4 * i) : _mm512_setzero_si512();
#pragma GCC unroll 4
            for (int c = 0; c < 4; c++) {
                const __m512i v = LD(qs + 32 * (size_t)c + 4 * (size_t)i);
                __m512i lo, hi;
                if (q5) { /* t: bit 2c of qh at bit 4, bit 2c + 1 at bit 5 */
                    const __m512i t = c < 2 ? _mm512_slli_epi16(qh, 4 - 2 * c) : c == 2 ? qh : _mm512_srli_epi16(qh, 2);
                    lo = and_or(v, c0f, _mm512_and_si512(t, c10));
                    hi = and_or(_mm512_srli_epi16(v, 3), c1e, _mm512_and_si512(t, c20));
                } else {
                    lo = _mm512_and_si512(v, c0f);
                    hi = _mm512_and_si512(v, cf0);
                }
                acc[2 * c] = dpbusd_b(acc[2 * c], lo, as->qs + 64 * c + 4 * i);
                acc[2 * c + 1] = dpbusd_b(acc[2 * c + 1], hi, as->qs + 64 * c + 32 + 4 * i);
            }
        }
        __m512i ie = _mm512_setzero_si512(), io = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            const __m512i src = c < 2 ? scl : sch;
            ie = _mm512_add_epi32(ie, _mm512_mullo_epi32(acc[2 * c], _mm512_shuffle_epi8(src, sel_byte(2 * (c % 2)))));
            io = _mm512_add_epi32(io, _mm512_mullo_epi32(acc[2 * c + 1], _mm512_shuffle_epi8(src, sel_byte(2 * (c % 2) + 1))));
        }
        const __m512i isum = _mm512_add_epi32(ie, _mm512_srai_epi32(io, q5 ? 1 : 4));
        __m512i mn[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) mn[i] = _mm512_shuffle_epi8(i < 2 ? mnl : mnh, sel_pair(2 * (i % 2)));
        res = sl_kq_end(false, isum, f16_lo(dd), f16_hi(dd), mn, as, res);
    }
#undef LD
    return res;
}

/* Q6_K (layout at pack_q6_K_block in kernels.c). Quant zmm 3t + m gives
 * group 16m + t (sub-block 4m + t/4) as v & 63, and the three top bit pairs
 * give 4 q of group 48 + t (sub-block 12 + t/4): (v2 & 0xC0) | (v1 >> 2 & 0x30)
 * | (v0 >> 4 & 0x0C). Each sub-block's chain starts at -32 asum_j (-128 asum_j
 * for the 4 q ones), so it ends at isum_j - 32 asum_j exactly (times 4:
 * |.| <= 4*16*32*128; times the scale, four sub-blocks: < 2^28, then >> 2);
 * scales are sign-extended by vpmovsxbd from their byte-major rows. */
AI __m512 kq6_decode(const uint8_t *tile, size_t ptile, int64_t nb, const block_q8_K *a) {
    const size_t D = 52;
    const __m512i c3f = _mm512_set1_epi8(0x3F), c0c = _mm512_set1_epi8(0x0C), c30 = _mm512_set1_epi8(0x30),
                  cc0 = _mm512_set1_epi8((char)0xC0);
    __m512 res = _mm512_setzero_ps();
#define LD(z) _mm512_load_si512(pb + 64 * (size_t)(z))
    for (int64_t s = 0; s < nb; s++) {
        const uint8_t *pb = tile + 64 * D * (size_t)s;
        const block_q8_K *as = &a[s];
        if (s % 2 == 0) /* the next tile's d (its own stream, after its quants) */
            _mm_prefetch((const char *)(tile + ptile + 64 * D * (size_t)nb + 32 * (size_t)s), _MM_HINT_T0);
        int32_t corr[16] __attribute__((aligned(64))); /* -32 asum_j (-128 for sub-blocks 12..15), broadcast from memory */
        const __m512i bs = _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)as->bsums));
        _mm512_store_si512(corr, _mm512_sub_epi32(_mm512_setzero_si512(),
                                                  _mm512_sllv_epi32(bs, _mm512_set_epi32(7, 7, 7, 7, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5))));
        __m512i isum = _mm512_setzero_si512(), isum4 = _mm512_setzero_si512();
#pragma GCC unroll 2
        for (int h = 0; h < 2; h++) { /* t = 8h..8h+7: sub-blocks 4m + 2h, + 1 */
            __m512i acc[8]; /* acc[2m + e]: sub-block 4m + 2h + e */
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) acc[k] = _mm512_set1_epi32(corr[4 * (k / 2) + 2 * h + k % 2]);
#pragma GCC unroll 8
            for (int tt = 0; tt < 8; tt++) { /* t = 8h + 0, 4, 1, 5, ..: all 8 chains in flight */
                const int e = tt % 2, t = 8 * h + 4 * e + tt / 2;
                KQ_PREFETCH_PART(pb, D, 8 * h + tt, 16);
                const __m512i v0 = LD(3 * t), v1 = LD(3 * t + 1), v2 = LD(3 * t + 2);
                const __m512i q[4] = {
                    _mm512_and_si512(v0, c3f),
                    _mm512_and_si512(v1, c3f),
                    _mm512_and_si512(v2, c3f),
                    and_or(v2, cc0, and_or(_mm512_srli_epi16(v1, 2), c30, _mm512_and_si512(_mm512_srli_epi16(v0, 4), c0c))),
                };
#pragma GCC unroll 4
                for (int m = 0; m < 4; m++) /* group 16m + t: elements 64m + 4t.. */
                    acc[2 * m + e] = dpbusd_b(acc[2 * m + e], q[m], as->qs + 64 * m + 4 * t);
            }
#pragma GCC unroll 8
            for (int k = 0; k < 8; k++) {
                const int j = 4 * (k / 2) + 2 * h + k % 2;
                const __m512i sc = _mm512_cvtepi8_epi32(_mm_load_si128((const __m128i *)(pb + 64 * 48 + 16 * j)));
                if (k < 6) isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(acc[k], sc));
                else isum4 = _mm512_add_epi32(isum4, _mm512_mullo_epi32(acc[k], sc));
            }
        }
        isum = _mm512_add_epi32(isum, _mm512_srai_epi32(isum4, 2));
        const __m512 d = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(tile + 64 * D * (size_t)nb + 32 * (size_t)s)));
        res = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(as->d)), _mm512_cvtepi32_ps(isum), res);
    }
#undef LD
    return res;
}

static __m512 kq_decode_q4(const uint8_t *t, size_t pt, int64_t nb, const block_q8_K *a) {
    (void)pt;
    return kq45_decode(false, t, nb, a);
}
static __m512 kq_decode_q5(const uint8_t *t, size_t pt, int64_t nb, const block_q8_K *a) {
    (void)pt;
    return kq45_decode(true, t, nb, a);
}
static __m512 kq_decode_q6(const uint8_t *t, size_t pt, int64_t nb, const block_q8_K *a) { return kq6_decode(t, pt, nb, a); }

#ifndef KQ_DECODE_TOKENS
/* Calls of up to this many tokens take the decode kernel token by token,
 * against unpacking the tile to scratch for the many-token kernel. From
 * memory (bench/kernel_ab.sh, AMD Zen 4 guest, new/old median): Q4_K at K =
 * 2048: 3.47x at 2 tokens, 2.09x at 4, 1.43x at 8, 1.18x at 12, 1.06x at
 * 16; at K = 8192 (the tile no longer fits L1): 1.24x at 8, 1.01x at 12,
 * 0.94x at 16; Q6_K alike. */
#define KQ_DECODE_TOKENS 12
#endif

/* The float steps that end super-block s for token t of a Q8_K group (g:
 * its record): sl_kq_end's, with the token's d and min pairs read from the
 * group (Q4_K/Q5_K: mn the sub-block mins as int16 pairs; Q6_K: isum
 * already holds the -32 offsets). */
AI __m512 kqg_end(bool q6, __m512i isum, __m512 d, __m512 dmin, const __m512i mn[4], const uint8_t *g, int t, __m512 acc) {
    float da;
    memcpy(&da, g + SL_KGROUP_D + 4 * t, 4);
    const __m512 dav = _mm512_set1_ps(da);
    acc = _mm512_fmadd_ps(_mm512_mul_ps(d, dav), _mm512_cvtepi32_ps(isum), acc);
    if (q6) return acc;
    __m512i imin = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) imin = _mm512_dpwssd_epi32(imin, mn[i], bcast32(g + SL_KGROUP_MIN + 64 * i + 4 * t));
    const __m512 nsm = _mm512_castsi512_ps(
        _mm512_xor_si512(_mm512_castps_si512(_mm512_mul_ps(dmin, dav)), _mm512_set1_epi32((int32_t)0x80000000u)));
    return _mm512_fmadd_ps(nsm, _mm512_cvtepi32_ps(imin), acc);
}

/* Sixteen tokens of a Q8_K group (sl_act_group) against one unpacked
 * K-quant tile: kq_tokens' integers and float steps (the same bits), in
 * sixteen independent vpdpbusd chains per sub-block where kq_tokens has
 * eight, every broadcast operand one pointer plus a constant (as q0g_16).
 * The super-block's integer sums stay in isum (memory: the registers hold
 * the chains, a quant group and the sub-block's scales); Q6_K's chains start
 * at the group's -32 asum_j, which is kq_tokens' subtraction of 32 Σ sc_j
 * asum_j, sub-block by sub-block. */
AI void kqg_16(bool q6, const uint8_t *tile, int64_t nb, const uint8_t *grp, float *res) {
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) _mm512_store_ps(res + 16 * t, _mm512_setzero_ps());
    const int n_sub = q6 ? 16 : 8, per = q6 ? 4 : 8;
    for (int64_t s = 0; s < nb; s++) {
        const __m512i *o = (const __m512i *)(tile + s * KQ_BLOCK_BYTES);
        const uint8_t *g = grp + (size_t)s * SL_KGROUP_BYTES;
        __m512i isum[16];
        for (int j = 0; j < n_sub; j++) {
            const __m512i sc = _mm512_load_si512(o + KQ_SC + j);
#pragma GCC unroll 2
            for (int h = 0; h < 2; h++) {
                __m512i acc[8];
#pragma GCC unroll 8
                for (int t = 0; t < 8; t++)
                    acc[t] = q6 ? bcast32(g + SL_KGROUP_Q6 + 64 * j + 4 * (8 * h + t)) : _mm512_setzero_si512();
#pragma GCC unroll 8
                for (int i = 0; i < per; i++) {
                    const int gi = j * per + i;
                    const __m512i W = _mm512_load_si512(o + gi);
#pragma GCC unroll 8
                    for (int t = 0; t < 8; t++) acc[t] = dpbusd_b(acc[t], W, g + 256 * (8 * h + t) + 4 * gi);
                }
#pragma GCC unroll 8
                for (int t = 0; t < 8; t++) {
                    const __m512i p = _mm512_mullo_epi32(acc[t], sc);
                    isum[8 * h + t] = j ? _mm512_add_epi32(isum[8 * h + t], p) : p;
                }
            }
        }
        const __m512 d = _mm512_load_ps((const float *)(o + KQ_D)), dmin = _mm512_load_ps((const float *)(o + KQ_DMIN));
        __m512i mn[4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) mn[i] = q6 ? _mm512_setzero_si512() : _mm512_load_si512(o + KQ_MIN + i);
#pragma GCC unroll 16
        for (int t = 0; t < 16; t++)
            _mm512_store_ps(res + 16 * t, kqg_end(q6, isum[t], d, dmin, mn, g, t, _mm512_load_ps(res + 16 * t)));
    }
}

static void kqg45_16(const uint8_t *tile, int64_t nb, const uint8_t *grp, float *res) { kqg_16(false, tile, nb, grp, res); }
static void kqg6_16(const uint8_t *tile, int64_t nb, const uint8_t *grp, float *res) { kqg_16(true, tile, nb, grp, res); }

/* Sixteen tokens of a Q8_K group straight from a packed K-quant tile
 * (the layouts kq45_decode / kq6_decode read), for calls of few groups
 * (batched decoding): each quant group is formed in registers once for the
 * sixteen tokens, where the unpacked path writes the tile to scratch and
 * reads it back, and the tile streams in under the decode distances. The
 * integers are kqg_16's (Q4_K: q = the nibble; Q5_K: the nibble and bit j
 * of the qh byte; Q6_K: the six bits put together, chains from the group's
 * -32 asum_j) and so are the float
 * steps: the same bits. The sums of a super-block stay in isum (memory). */
AI void kqgp_16(bool q6, bool q5, const uint8_t *tile, int64_t nb, const uint8_t *grp, float *res) {
    const size_t D = q6 ? 52 : q5 ? 44 : 36;
    const __m512i c0f = _mm512_set1_epi8(0x0F), c3f = _mm512_set1_epi8(0x3F), c30 = _mm512_set1_epi8(0x30),
                  c03 = _mm512_set1_epi8(0x03), c0c = _mm512_set1_epi8(0x0C), c10 = _mm512_set1_epi8(0x10);
    int32_t isum[256] __attribute__((aligned(64)));
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) _mm512_store_ps(res + 16 * t, _mm512_setzero_ps());
    for (int64_t s = 0; s < nb; s++) {
        const uint8_t *pb = tile + 64 * D * (size_t)s, *g = grp + (size_t)s * SL_KGROUP_BYTES;
        __m512i scl = _mm512_setzero_si512(), sch = scl, mnl = scl, mnh = scl;
        if (!q6) { /* byte j of scl / sch = sc_j / sc_{4+j}, of mnl / mnh = m_j / m_{4+j} (kq45_decode) */
            const __m512i s0 = _mm512_load_si512(pb + 64), s1 = _mm512_load_si512(pb + 128), s2 = _mm512_load_si512(pb + 192);
            scl = _mm512_and_si512(s0, c3f);
            mnl = _mm512_and_si512(s1, c3f);
            sch = and_or(s2, c0f, _mm512_and_si512(_mm512_srli_epi32(s0, 2), c30));
            mnh = and_or(_mm512_srli_epi32(s2, 4), c0f, _mm512_and_si512(_mm512_srli_epi32(s1, 2), c30));
        }
        const int n_sub = q6 ? 16 : 8, per = q6 ? 4 : 8;
#pragma GCC unroll 16
        for (int t = 0; t < 16; t++) _mm512_store_si512(isum + 16 * t, _mm512_setzero_si512());
        for (int j = 0; j < n_sub; j++) {
            KQ_PREFETCH_PART(pb, D, j, n_sub);
            __m512i acc[16];
#pragma GCC unroll 16
            for (int t = 0; t < 16; t++) acc[t] = q6 ? bcast32(g + SL_KGROUP_Q6 + 64 * j + 4 * t) : _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int i = 0; i < per; i++) {
                const int gi = j * per + i; /* quants 4 gi .. 4 gi + 3 of the super-block */
                __m512i W;
                if (q5) { /* quant dword 12 + 8 (j / 2) + i as Q4_K's, bit j of qh dword 4 + i as bit 4 */
                    const __m512i v = _mm512_load_si512(pb + 64 * (12 + 8 * (size_t)(j / 2) + (size_t)i)),
                                  qh = _mm512_load_si512(pb + 64 * (4 + (size_t)i));
                    const __m512i hb = j <= 4 ? _mm512_sll_epi16(qh, _mm_cvtsi32_si128(4 - j))
                                              : _mm512_srl_epi16(qh, _mm_cvtsi32_si128(j - 4));
                    W = and_or(j % 2 ? _mm512_srli_epi16(v, 4) : v, c0f, _mm512_and_si512(hb, c10));
                } else if (!q6) { /* quant dword 4 + 8 (j / 2) + i: low nibbles for even j, high for odd */
                    const __m512i v = _mm512_load_si512(pb + 64 * (4 + 8 * (size_t)(j / 2) + (size_t)i));
                    W = j % 2 ? _mm512_and_si512(_mm512_srli_epi16(v, 4), c0f) : _mm512_and_si512(v, c0f);
                } else if (gi < 48) { /* zmm 3t + m holds group 16m + t */
                    W = _mm512_and_si512(_mm512_load_si512(pb + 64 * (3 * (size_t)(gi % 16) + (size_t)(gi / 16))), c3f);
                } else { /* group 48 + t: bit pairs 6-7 of zmm 3t, 3t + 1, 3t + 2 as bits 0-1, 2-3, 4-5 */
                    const size_t t3 = 3 * (size_t)(gi - 48);
                    const __m512i v0 = _mm512_load_si512(pb + 64 * t3), v1 = _mm512_load_si512(pb + 64 * (t3 + 1)),
                                  v2 = _mm512_load_si512(pb + 64 * (t3 + 2));
                    W = and_or(_mm512_srli_epi16(v2, 2), c30,
                               and_or(_mm512_srli_epi16(v1, 4), c0c, _mm512_and_si512(_mm512_srli_epi16(v0, 6), c03)));
                }
#pragma GCC unroll 16
                for (int t = 0; t < 16; t++) acc[t] = dpbusd_b(acc[t], W, g + 256 * t + 4 * gi);
            }
            const __m512i sc = q6 ? _mm512_cvtepi8_epi32(_mm_load_si128((const __m128i *)(pb + 64 * 48 + 16 * (size_t)j)))
                                  : _mm512_shuffle_epi8(j < 4 ? scl : sch, sel_byte(j % 4));
#pragma GCC unroll 16
            for (int t = 0; t < 16; t++) {
                _mm512_store_si512(isum + 16 * t, _mm512_add_epi32(_mm512_load_si512(isum + 16 * t), _mm512_mullo_epi32(acc[t], sc)));
            }
        }
        const __m512i dd = _mm512_load_si512(pb);
        const __m512 d = q6 ? _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(tile + 64 * D * (size_t)nb + 32 * (size_t)s)))
                            : f16_lo(dd),
                     dmin = f16_hi(dd);
        __m512i mn[4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++) mn[k] = _mm512_shuffle_epi8(k < 2 ? mnl : mnh, sel_pair(2 * (k % 2)));
#pragma GCC unroll 16
        for (int t = 0; t < 16; t++)
            _mm512_store_ps(res + 16 * t,
                            kqg_end(q6, _mm512_load_si512(isum + 16 * t), d, dmin, mn, g, t, _mm512_load_ps(res + 16 * t)));
    }
}

static void kqg4p_16(const uint8_t *tile, int64_t nb, const uint8_t *grp, float *res) { kqgp_16(false, false, tile, nb, grp, res); }
static void kqg5p_16(const uint8_t *tile, int64_t nb, const uint8_t *grp, float *res) { kqgp_16(false, true, tile, nb, grp, res); }
static void kqg6p_16(const uint8_t *tile, int64_t nb, const uint8_t *grp, float *res) { kqgp_16(true, false, tile, nb, grp, res); }

#ifndef KQ_FUSED_TOKENS
/* Calls of fewer tokens than this (groups of 16) read packed K-quant tiles
 * straight (kqgp_16); more unpack the tiles once for all their groups
 * (kqg_16). */
#define KQ_FUSED_TOKENS 48
#endif

/* Many tokens: up to SL_GEMM_CHUNK rows unpacked once into scratch, then
 * token blocks × tiles × groups — the whole groups of 16 of `groups` (NULL:
 * none) through kqg_16, a last partial one of GROUP_PAD_MIN or more too, the
 * other tokens after the last whole group (or all) in groups of 8 through
 * kq_tokens. */
static void gemm_kq_many(sl_type type, int64_t K, const void *tiles, int64_t nr, const void *act, size_t as,
                         const void *groups, int64_t nt, float *y, int64_t ldy, void *scratch) {
    const int64_t nb = K / QK_K, full = !groups ? 0 : nt % 16 >= GROUP_PAD_MIN ? nt : nt / 16 * 16;
    const bool q6 = type == SL_TYPE_Q6_K;
    const size_t tile = (size_t)nb * KQ_BLOCK_BYTES, ptile = sl_pack_tile_bytes(type, K),
                 gb = sl_act_group_bytes(SL_ACT_Q8_K, K);
    int64_t tb = (int64_t)(SL_GEMM_TOKEN_BYTES / as) / 16 * 16;
    if (tb < 16) tb = 16;
    float res[256] __attribute__((aligned(64)));
    for (int64_t c0 = 0; c0 < nr; c0 += SL_GEMM_CHUNK) {
        const int64_t cr = nr - c0 < SL_GEMM_CHUNK ? nr - c0 : SL_GEMM_CHUNK;
        for (int64_t r0 = 0; r0 < cr; r0 += 16)
            sl_kq_unpack(type, (const uint8_t *)tiles + (size_t)((c0 + r0) / 16) * ptile, ptile,
                             cr - r0 < 16 ? (int)(cr - r0) : 16, nb, (uint8_t *)scratch + (size_t)(r0 / 16) * tile);
        for (int64_t b0 = 0; b0 < nt; b0 += tb) {
            const int64_t b1 = nt - b0 < tb ? nt : b0 + tb;
            for (int64_t r0 = 0; r0 < cr; r0 += 16) {
                const int R = cr - r0 < 16 ? (int)(cr - r0) : 16;
                const __mmask16 m = (__mmask16)((1u << R) - 1);
                const uint8_t *t16 = (const uint8_t *)scratch + (size_t)(r0 / 16) * tile;
                int64_t t0 = b0;
                for (; t0 < b1 && t0 < full; t0 += 16) {
                    (q6 ? kqg6_16 : kqg45_16)(t16, nb, (const uint8_t *)groups + (size_t)(t0 / 16) * gb, res);
                    store_group(res, t0, nt, y + c0 + r0, ldy, m);
                }
                for (; t0 < b1; t0 += 8) {
                    const int N = b1 - t0 < 8 ? (int)(b1 - t0) : 8;
                    __m512 out[8];
                    KQ_TOKENS[q6][N - 1](t16, nb, (const uint8_t *)act + (size_t)t0 * as, as, out);
                    for (int t = 0; t < N; t++) _mm512_mask_storeu_ps(y + (t0 + t) * ldy + c0 + r0, m, out[t]);
                }
            }
        }
    }
}

/* Tokens [t0, t1) of the Q8_K rows at act against one packed tile, token
 * by token through the type's decode kernel, into y (t0's row first). */
static void kq_decode_tokens(sl_type type, const uint8_t *t16, size_t ptile, int64_t nb, const void *act, size_t as,
                             int64_t t0, int64_t t1, float *y, int64_t ldy, __mmask16 m) {
    __m512 (*fn)(const uint8_t *, size_t, int64_t, const block_q8_K *) =
        type == SL_TYPE_Q6_K ? kq_decode_q6 : type == SL_TYPE_Q5_K ? kq_decode_q5 : kq_decode_q4;
    for (int64_t t = t0; t < t1; t++)
        _mm512_mask_storeu_ps(y + t * ldy, m, fn(t16, ptile, nb, (const block_q8_K *)((const uint8_t *)act + (size_t)t * as)));
}

/* Packed tiles: up to KQ_DECODE_TOKENS tokens read them directly, token by
 * token (kq45_decode / kq6_decode); more tokens go through gemm_kq_many. */
static void gemm_kq_packed(sl_type type, int64_t K, const void *tiles, int64_t nr, const void *act, size_t as,
                           int64_t nt, float *y, int64_t ldy, void *scratch) {
    const int64_t nb = K / QK_K;
    const size_t ptile = sl_pack_tile_bytes(type, K);
    if (nt > KQ_DECODE_TOKENS) {
        gemm_kq_many(type, K, tiles, nr, act, as, NULL, nt, y, ldy, scratch);
        return;
    }
    /* the decode kernel once per token, tile by tile: the first token streams the tile in, the others
     * find it in L1/L2 (no unpacked copy to write and read back) */
    for (int64_t r0 = 0; r0 < nr; r0 += 16) {
        const int R = nr - r0 < 16 ? (int)(nr - r0) : 16;
        kq_decode_tokens(type, (const uint8_t *)tiles + (size_t)(r0 / 16) * ptile, ptile, nb, act, as, 0, nt, y + r0, ldy,
                         (__mmask16)((1u << R) - 1));
    }
}

/* With the Q8_K rows also as token groups: the whole groups through
 * kqgp_16 (fewer than KQ_FUSED_TOKENS tokens: a last partial
 * group of KQ_DECODE_PAD_MIN or more too, the other tokens after the last whole
 * group through the decode kernel) or kqg_16. */
static void gemm_kq_grouped(sl_type type, int64_t K, const void *tiles, int64_t nr, const void *act, size_t as,
                            const void *groups, int64_t nt, float *y, int64_t ldy, void *scratch) {
    if (nt >= KQ_FUSED_TOKENS) {
        gemm_kq_many(type, K, tiles, nr, act, as, groups, nt, y, ldy, scratch);
        return;
    }
    const bool q6 = type == SL_TYPE_Q6_K, q5 = type == SL_TYPE_Q5_K;
    const int64_t nb = K / QK_K, full = nt % 16 >= KQ_DECODE_PAD_MIN ? nt : nt / 16 * 16;
    const size_t ptile = sl_pack_tile_bytes(type, K), gb = sl_act_group_bytes(SL_ACT_Q8_K, K);
    float res[256] __attribute__((aligned(64)));
    for (int64_t r0 = 0; r0 < nr; r0 += 16) {
        const int R = nr - r0 < 16 ? (int)(nr - r0) : 16;
        const __mmask16 m = (__mmask16)((1u << R) - 1);
        const uint8_t *t16 = (const uint8_t *)tiles + (size_t)(r0 / 16) * ptile;
        for (int64_t t0 = 0; t0 < full; t0 += 16) {
            (q6 ? kqg6p_16 : q5 ? kqg5p_16 : kqg4p_16)(t16, nb, (const uint8_t *)groups + (size_t)(t0 / 16) * gb, res);
            store_group(res, t0, nt, y + r0, ldy, m);
        }
        kq_decode_tokens(type, t16, ptile, nb, act, as, full, nt, y + r0, ldy, m);
    }
}

/* Scratch the many-token K-quant kernel unpacks into (SL_GEMM_CHUNK rows); a
 * chunk packed from rows as stored goes after it. */
#define KQ_UNPACKED(K) ((size_t)SL_GEMM_CHUNK / 16 * (size_t)((K) / QK_K) * KQ_BLOCK_BYTES)

#define KQ_PACKED(name, type)                                                                                     \
    static void name(int64_t K, const void *tiles, int64_t nr, const void *a, size_t as, int64_t nt, float *y,     \
                     int64_t ldy, void *scratch) {                                                                \
        gemm_kq_packed(type, K, tiles, nr, a, as, nt, y, ldy, scratch);                                           \
    }
KQ_PACKED(gemm_q4_K_packed, SL_TYPE_Q4_K)
KQ_PACKED(gemm_q5_K_packed, SL_TYPE_Q5_K)
KQ_PACKED(gemm_q6_K_packed, SL_TYPE_Q6_K)
#define KQ_GROUPED(name, type)                                                                                    \
    static void name(int64_t K, const void *tiles, int64_t nr, const void *a, size_t as, const void *g, int64_t nt, \
                     float *y, int64_t ldy, void *scratch) {                                                      \
        gemm_kq_grouped(type, K, tiles, nr, a, as, g, nt, y, ldy, scratch);                                       \
    }
KQ_GROUPED(gemm_q4_K_grouped, SL_TYPE_Q4_K)
KQ_GROUPED(gemm_q5_K_grouped, SL_TYPE_Q5_K)
KQ_GROUPED(gemm_q6_K_grouped, SL_TYPE_Q6_K)

static void gemm_q4_K(int64_t K, const void *w, size_t ws, int64_t nr, const void *a, size_t as, int64_t nt, float *y,
                      int64_t ldy, void *scratch) {
    sl_gemm_packing(gemm_q4_K_packed, SL_TYPE_Q4_K, K, w, ws, nr, a, as, nt, y, ldy, scratch, KQ_UNPACKED(K));
}
static void gemm_q5_K(int64_t K, const void *w, size_t ws, int64_t nr, const void *a, size_t as, int64_t nt, float *y,
                      int64_t ldy, void *scratch) {
    sl_gemm_packing(gemm_q5_K_packed, SL_TYPE_Q5_K, K, w, ws, nr, a, as, nt, y, ldy, scratch, KQ_UNPACKED(K));
}
static void gemm_q6_K(int64_t K, const void *w, size_t ws, int64_t nr, const void *a, size_t as, int64_t nt, float *y,
                      int64_t ldy, void *scratch) {
    sl_gemm_packing(gemm_q6_K_packed, SL_TYPE_Q6_K, K, w, ws, nr, a, as, nt, y, ldy, scratch, KQ_UNPACKED(K));
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

/* Lane j = reduce16(v[j]) for 16 vectors at once, every sum the same pair
 * of operands as the halving tree's (so the same bits): the tree's step s
 * adds the upper half of each vector's remaining lanes to the lower half;
 * here each step adds two shuffles that put the lower halves of two
 * vectors in one register and the upper halves in another. Steps 8 and 4
 * move 128-bit lanes, steps 2 and 1 elements within them; the result holds
 * position 4k + l in lane 4l + k, put back in order by one permute. */
AI __m512 reduce16x16(const __m512 v[16]) {
    __m512 a[8], b[4], c[2];
#pragma GCC unroll 8
    for (int p = 0; p < 8; p++) /* acc[i] + acc[i + 8]: lanes (0, 1) + (2, 3) of v[2p] and v[2p+1] */
        a[p] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0x44),
                             _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0xEE));
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) /* acc[i] + acc[i + 4]: 128-bit lanes (0, 2) + (1, 3) */
        b[k] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], 0x88),
                             _mm512_shuffle_f32x4(a[2 * k], a[2 * k + 1], 0xDD));
#pragma GCC unroll 2
    for (int r = 0; r < 2; r++) /* acc[i] + acc[i + 2]: elements (0, 1) + (2, 3) of each 128-bit lane */
        c[r] = _mm512_add_ps(_mm512_shuffle_ps(b[2 * r], b[2 * r + 1], 0x44), _mm512_shuffle_ps(b[2 * r], b[2 * r + 1], 0xEE));
    /* acc[0] + acc[1]: elements (0, 2) + (1, 3) */
    const __m512 d = _mm512_add_ps(_mm512_shuffle_ps(c[0], c[1], 0x88), _mm512_shuffle_ps(c[0], c[1], 0xDD));
    return _mm512_permutexvar_ps(_mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0), d);
}

/* The softmax step of a chunk of n positions for G heads: sv[g] their
 * scores (lanes from n on 0), M[g] their running maxima. M becomes the
 * chunk's new maxima M', e[g] = e^(s - M') and, unless first, corr[g] =
 * e^(M - M'). The maximum is the largest score that is not NaN (-inf if
 * none), as a scan in position order finds it: a maximum does not depend on
 * the order; the sign of a zero may, and a zero M only meets x - M and
 * e^(M - M'), where it changes nothing. The heads' exponentials, each a long
 * chain of dependent steps, run one after another so they overlap; the
 * corrections go in one vector (exp16 works lane by lane). */
AI void chunk_softmax(int G, __m512 sv[4], __mmask16 jm, float *M, float e[][16], float corr[16], bool first) {
    float d[16] __attribute__((aligned(64))) = {0};
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
        const float mc = _mm512_mask_reduce_max_ps(_mm512_mask_cmp_ps_mask(jm, sv[g], sv[g], _CMP_ORD_Q), sv[g]);
        const float Mn = mc > M[g] ? mc : M[g];
        d[g] = M[g] - Mn;
        M[g] = Mn;
        sv[g] = _mm512_sub_ps(sv[g], _mm512_set1_ps(Mn));
    }
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) _mm512_storeu_ps(e[g], exp16(sv[g]));
    if (!first) _mm512_store_ps(corr, exp16(_mm512_load_ps(d)));
}

/* The query heads of a group share each converted K and V row. Specialized
 * on the cache type, the head size (8, 32, 64, 128, or any: DC = 0) and the number
 * of heads per call (1..4), so the common shapes keep everything in
 * registers; every variant performs the same per-head operations. */
AI void attn_impl(sl_type T, int DC, int G, const sl_attn_args *a, const float *q0, float *out0) {
    const int32_t D = DC ? DC : a->head_dim, nv = (D + 15) / 16;
    const __mmask16 tail = (__mmask16)(D % 16 ? (1u << (D % 16)) - 1 : 0xFFFF);
    __m512 acc[4][ATT_MAXV], row[ATT_MAXV];
    float M[4], l[4];
    float s[4][16] __attribute__((aligned(64))), e[4][16] __attribute__((aligned(64)));
    __m512 dvb[4][16]; /* each head's 16-lane dot vectors of a chunk's positions */
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
        M[g] = -INFINITY;
        l[g] = 0.0f;
#pragma GCC unroll 8
        for (int32_t v = 0; v < nv; v++) acc[g][v] = _mm512_setzero_ps();
    }
    /* the rows of a chunk are slot_bytes apart and a call reads few of them: the K rows of the next
     * chunk and the V rows of this one are prefetched (sl_attn_chunk) */
    const size_t rb = sl_type_row_size(T, D);
    size_t offs[16], next[16];
    for (int32_t j0 = 0; j0 < a->n_pos; j0 += 16) {
        const int32_t n = a->n_pos - j0 < 16 ? a->n_pos - j0 : 16;
        sl_attn_chunk(a, j0, rb, offs, next);
        for (int32_t j = 0; j < n; j++) {
            const uint8_t *kr = a->k_base + offs[j];
#pragma GCC unroll 8
            for (int32_t v = 0; v < nv; v++) row[v] = kv_load(T, kr, 16 * v, v == nv - 1 ? tail : 0xFFFF);
#pragma GCC unroll 4
            for (int g = 0; g < G; g++) {
                const float *q = q0 + (int64_t)g * D;
                __m512 dv = _mm512_setzero_ps();
#pragma GCC unroll 8
                for (int32_t v = 0; v < nv; v++) {
                    const __mmask16 m = v == nv - 1 ? tail : 0xFFFF;
                    dv = _mm512_mask3_fmadd_ps(_mm512_maskz_loadu_ps(m, q + 16 * v), row[v], dv, m);
                }
                dvb[g][j] = dv;
            }
        }
        for (int32_t j = n; j < 16; j++)
            for (int g = 0; g < G; g++) dvb[g][j] = _mm512_setzero_ps();
#pragma GCC unroll 4
        for (int g = 0; g < G; g++) _mm512_store_ps(s[g], _mm512_mul_ps(reduce16x16(dvb[g]), _mm512_set1_ps(a->scale)));
        const __mmask16 jm = (__mmask16)((1u << n) - 1);
        float corr[16] __attribute__((aligned(64)));
        __m512 sv[4];
#pragma GCC unroll 4
        for (int g = 0; g < G; g++) sv[g] = _mm512_maskz_load_ps(jm, s[g]);
        chunk_softmax(G, sv, jm, M, e, corr, j0 == 0);
        if (j0 > 0) {
#pragma GCC unroll 4
            for (int g = 0; g < G; g++) {
                l[g] = l[g] * corr[g];
                const __m512 c = _mm512_set1_ps(corr[g]);
#pragma GCC unroll 8
                for (int32_t v = 0; v < nv; v++) acc[g][v] = _mm512_mul_ps(acc[g][v], c);
            }
        }
        for (int32_t j = 0; j < n; j++) {
            const uint8_t *vr = a->v_base + offs[j];
#pragma GCC unroll 8
            for (int32_t v = 0; v < nv; v++) row[v] = kv_load(T, vr, 16 * v, v == nv - 1 ? tail : 0xFFFF);
#pragma GCC unroll 4
            for (int g = 0; g < G; g++) {
                l[g] = l[g] + e[g][j];
                const __m512 pe = _mm512_set1_ps(e[g][j]);
#pragma GCC unroll 8
                for (int32_t v = 0; v < nv; v++) {
                    const __mmask16 m = v == nv - 1 ? tail : 0xFFFF;
                    acc[g][v] = _mm512_mask3_fmadd_ps(pe, row[v], acc[g][v], m);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
        const __m512 lv = _mm512_set1_ps(l[g]);
#pragma GCC unroll 8
        for (int32_t v = 0; v < nv; v++) {
            const __mmask16 m = v == nv - 1 ? tail : 0xFFFF;
            _mm512_mask_storeu_ps(out0 + (int64_t)g * D + 16 * v, m, _mm512_div_ps(acc[g][v], lv));
        }
    }
}

typedef void (*attn_fn)(const sl_attn_args *, const float *, float *);
#define ATT_V(TY, DC, G)                                                                          \
    static void att_##TY##_##DC##_##G(const sl_attn_args *a, const float *q, float *o) {           \
        attn_impl(SL_TYPE_##TY, DC, G, a, q, o);                                                   \
    }
#define ATT_D(TY, DC) ATT_V(TY, DC, 1) ATT_V(TY, DC, 2) ATT_V(TY, DC, 3) ATT_V(TY, DC, 4)
#define ATT_T(TY) ATT_D(TY, 0) ATT_D(TY, 8) ATT_D(TY, 32) ATT_D(TY, 64) ATT_D(TY, 128)
ATT_T(F32)
ATT_T(F16)
ATT_T(Q8_0)
#define ATT_ROW(TY, DC) {att_##TY##_##DC##_1, att_##TY##_##DC##_2, att_##TY##_##DC##_3, att_##TY##_##DC##_4}
static const attn_fn ATT[3][5][4] = {
    {ATT_ROW(F32, 0), ATT_ROW(F32, 8), ATT_ROW(F32, 32), ATT_ROW(F32, 64), ATT_ROW(F32, 128)},
    {ATT_ROW(F16, 0), ATT_ROW(F16, 8), ATT_ROW(F16, 32), ATT_ROW(F16, 64), ATT_ROW(F16, 128)},
    {ATT_ROW(Q8_0, 0), ATT_ROW(Q8_0, 8), ATT_ROW(Q8_0, 32), ATT_ROW(Q8_0, 64), ATT_ROW(Q8_0, 128)},
};

/* A run of query tokens (sl_attn_args.n_t > 1, a prompt): each chunk's K and V
 * rows are converted to floats once, into L1, and every token and head of
 * the run takes its step over that chunk, its accumulators kept in memory
 * between chunks. Per head the operations are attn_impl's, in its order:
 * the same scores (16-lane dots, reduce16x16, * scale), maximum, correction,
 * exponentials and V sums, so each token gets the bits of a call for it
 * alone. */
#define ATT_ST 256 /* zmm of accumulators a pass keeps (16 KiB): tokens per pass = ATT_ST / (n_q * vectors per head) */

/* The 16 x 16 floats r[0..15] (row j, lane l) transposed into c (c[l] lane j = r[j] lane l). */
AI void transpose16(const __m512 r[16], __m512 *c) {
    __m512 t[16], u[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) { /* rows 2i, 2i+1 interleaved: lanes (0 1 0 1), (2 3 2 3) of each 128 bits */
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) /* u[4g + k]: rows 4g..4g+3 of lanes k, k+4, k+8, k+12 */
        for (int h = 0; h < 2; h++) {
            const __m512d x = _mm512_castps_pd(t[4 * g + h]), y = _mm512_castps_pd(t[4 * g + 2 + h]);
            u[4 * g + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(x, y));
            u[4 * g + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(x, y));
        }
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) { /* t[k]: lanes k, k+8 of rows 0-7; t[4+k]: k+4, k+12; t[8+k], t[12+k]: rows 8-15 */
        t[k] = _mm512_shuffle_f32x4(u[k], u[4 + k], 0x88);
        t[4 + k] = _mm512_shuffle_f32x4(u[k], u[4 + k], 0xDD);
        t[8 + k] = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0x88);
        t[12 + k] = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0xDD);
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        c[k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0x88);
        c[k + 8] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0xDD);
        c[k + 4] = _mm512_shuffle_f32x4(t[4 + k], t[12 + k], 0x88);
        c[k + 12] = _mm512_shuffle_f32x4(t[4 + k], t[12 + k], 0xDD);
    }
}

/* The scores of one head over a chunk's n (1..16) positions, from the
 * chunk's K rows transposed (kt[16 v + l] lane j = element 16 v + l of row
 * j): lane j of p[l] runs the FMA chain that lane l of attn_impl's dot
 * vector for position j runs, and the halving tree adds the same pairs, so
 * the scores are its bits, without its 16 reductions across lanes. Lanes
 * from n on are 0, as attn_impl's. */
AI __m512 attn_scores(int DC, int32_t Dr, const float *q, const __m512 *kt, int32_t n, float scale) {
    const int32_t D = DC ? DC : Dr, nv = (D + 15) / 16;
    __m512 p[16];
#pragma GCC unroll 16
    for (int l = 0; l < 16; l++) p[l] = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int32_t v = 0; v < nv; v++) {
        const int lanes = v == nv - 1 && D % 16 ? D % 16 : 16;
#pragma GCC unroll 16
        for (int l = 0; l < lanes; l++) p[l] = _mm512_fmadd_ps(_mm512_set1_ps(q[16 * v + l]), kt[16 * v + l], p[l]);
    }
#pragma GCC unroll 4
    for (int h = 8; h >= 1; h >>= 1)
#pragma GCC unroll 8
        for (int i = 0; i < h; i++) p[i] = _mm512_add_ps(p[i], p[i + h]);
    const __mmask16 jm = (__mmask16)((1u << n) - 1);
    return _mm512_maskz_mov_ps(jm, _mm512_mul_ps(p[0], _mm512_set1_ps(scale)));
}

/* G heads' accumulators (G * nv vectors at acc, sums at l) over a chunk's n
 * V rows (vf), in registers: corrected (unless first), then acc += e_j * v_j
 * and l += e_j position by position, as attn_impl. */
AI void attn_pv(int DC, int G, int32_t Dr, const __m512 *vf, int32_t n, bool first, const float e[4][16],
                const float corr[4], float *l, __m512 *acc) {
    const int32_t D = DC ? DC : Dr, nv = (D + 15) / 16;
    const __mmask16 tail = (__mmask16)(D % 16 ? (1u << (D % 16)) - 1 : 0xFFFF);
    __m512 r[4][ATT_MAXV];
    float lr[4];
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
        lr[g] = l[g];
#pragma GCC unroll 8
        for (int32_t v = 0; v < nv; v++) r[g][v] = acc[g * nv + v];
        if (!first) {
            lr[g] = lr[g] * corr[g];
            const __m512 c = _mm512_set1_ps(corr[g]);
#pragma GCC unroll 8
            for (int32_t v = 0; v < nv; v++) r[g][v] = _mm512_mul_ps(r[g][v], c);
        }
    }
    for (int32_t j = 0; j < n; j++)
#pragma GCC unroll 4
        for (int g = 0; g < G; g++) {
            lr[g] = lr[g] + e[g][j];
            const __m512 pe = _mm512_set1_ps(e[g][j]);
#pragma GCC unroll 8
            for (int32_t v = 0; v < nv; v++)
                r[g][v] = _mm512_mask3_fmadd_ps(pe, vf[j * nv + v], r[g][v], v == nv - 1 ? tail : 0xFFFF);
        }
#pragma GCC unroll 4
    for (int g = 0; g < G; g++) {
        l[g] = lr[g];
#pragma GCC unroll 8
        for (int32_t v = 0; v < nv; v++) acc[g * nv + v] = r[g][v];
    }
}

/* A chunk's nc K and V rows (offsets offs) as floats: nv vectors per row, tail lanes zero. Specialized
 * on the cache type only; the run kernel is specialized on the head size. */
typedef void (*kv_rows_fn)(const sl_attn_args *a, const size_t *offs, int32_t nc, __m512 *kf, __m512 *vf);
AI void kv_rows_impl(sl_type T, const sl_attn_args *a, const size_t *offs, int32_t nc, __m512 *kf, __m512 *vf) {
    const int32_t D = a->head_dim, nv = (D + 15) / 16;
    const __mmask16 tail = (__mmask16)(D % 16 ? (1u << (D % 16)) - 1 : 0xFFFF);
    for (int32_t j = 0; j < nc; j++)
        for (int32_t v = 0; v < nv; v++) {
            const __mmask16 m = v == nv - 1 ? tail : 0xFFFF;
            kf[j * nv + v] = kv_load(T, a->k_base + offs[j], 16 * v, m);
            vf[j * nv + v] = kv_load(T, a->v_base + offs[j], 16 * v, m);
        }
}
static void kv_rows_F32(const sl_attn_args *a, const size_t *offs, int32_t nc, __m512 *kf, __m512 *vf) {
    kv_rows_impl(SL_TYPE_F32, a, offs, nc, kf, vf);
}
static void kv_rows_F16(const sl_attn_args *a, const size_t *offs, int32_t nc, __m512 *kf, __m512 *vf) {
    kv_rows_impl(SL_TYPE_F16, a, offs, nc, kf, vf);
}
static void kv_rows_Q8_0(const sl_attn_args *a, const size_t *offs, int32_t nc, __m512 *kf, __m512 *vf) {
    kv_rows_impl(SL_TYPE_Q8_0, a, offs, nc, kf, vf);
}

AI void attn_tokens_impl(int DC, const sl_attn_args *a) {
    const int32_t D = DC ? DC : a->head_dim, nv = (D + 15) / 16, nq = a->n_q;
    const __mmask16 tail = (__mmask16)(D % 16 ? (1u << (D % 16)) - 1 : 0xFFFF);
    const size_t rb = sl_type_row_size(a->kv_type, D);
    const kv_rows_fn kv_rows = a->kv_type == SL_TYPE_F32 ? kv_rows_F32 : a->kv_type == SL_TYPE_F16 ? kv_rows_F16 : kv_rows_Q8_0;
    __m512 kf[16 * ATT_MAXV], kt[16 * ATT_MAXV], vf[16 * ATT_MAXV], st[ATT_ST];
    float M[ATT_ST], l[ATT_ST];
    const int32_t per_pass = ATT_ST / (nv * nq) < SL_ATTN_MAX_T ? ATT_ST / (nv * nq) : SL_ATTN_MAX_T;
    for (int32_t i0 = 0; i0 < a->n_t; i0 += per_pass) {
        const int32_t ni = a->n_t - i0 < per_pass ? a->n_t - i0 : per_pass, n_max = a->n_pos + i0 + ni - 1;
        for (int32_t s = 0; s < ni * nq; s++) {
            M[s] = -INFINITY;
            l[s] = 0.0f;
            for (int32_t v = 0; v < nv; v++) st[s * nv + v] = _mm512_setzero_ps();
        }
        sl_attn_args span = *a; /* the rows the pass's last token sees */
        span.n_pos = n_max;
        size_t offs[16], next[16];
        sl_attn_offsets(&span, 0, next);
        for (int32_t j0 = 0; j0 < n_max; j0 += 16) {
            const int32_t nc = n_max - j0 < 16 ? n_max - j0 : 16;
            for (int32_t j = 0; j < nc; j++) offs[j] = next[j];
            if (j0 + 16 < n_max) { /* the next chunk's rows arrive while this one is worked on */
                const int32_t nn = n_max - j0 - 16 < 16 ? n_max - j0 - 16 : 16;
                sl_attn_offsets(&span, j0 + 16, next);
                sl_attn_prefetch(a->k_base, next, nn, rb);
                sl_attn_prefetch(a->v_base, next, nn, rb);
            }
            kv_rows(a, offs, nc, kf, vf);
            for (int32_t j = nc; j < 16; j++) /* rows past the end: lanes of the transposed rows no score uses */
                for (int32_t v = 0; v < nv; v++) kf[j * nv + v] = _mm512_setzero_ps();
            for (int32_t v = 0; v < nv; v++) {
                __m512 r[16];
#pragma GCC unroll 16
                for (int j = 0; j < 16; j++) r[j] = kf[j * nv + v];
                transpose16(r, kt + 16 * v);
            }
            for (int32_t i = 0; i < ni; i++) {
                const int32_t n_pos = a->n_pos + i0 + i;
                if (n_pos <= j0) continue;
                const int32_t n = n_pos - j0 < 16 ? n_pos - j0 : 16;
                const float *q = a->q + (int64_t)(i0 + i) * a->q_stride;
                for (int32_t g0 = 0; g0 < nq; g0 += 4) {
                    const int G = nq - g0 < 4 ? nq - g0 : 4;
                    float e[4][16], corr[16] __attribute__((aligned(64)));
                    __m512 sv[4];
                    for (int g = 0; g < G; g++) sv[g] = attn_scores(DC, D, q + (int64_t)(g0 + g) * D, kt, n, a->scale);
                    chunk_softmax(G, sv, (__mmask16)((1u << n) - 1), M + i * nq + g0, e, corr, j0 == 0);
                    /* the heads' V sums together, as attn_impl's (independent chains) */
                    __m512 *acc = st + (size_t)(i * nq + g0) * (size_t)nv;
                    float *lg = l + i * nq + g0;
                    switch (G) {
                    case 1: attn_pv(DC, 1, D, vf, n, j0 == 0, e, corr, lg, acc); break;
                    case 2: attn_pv(DC, 2, D, vf, n, j0 == 0, e, corr, lg, acc); break;
                    case 3: attn_pv(DC, 3, D, vf, n, j0 == 0, e, corr, lg, acc); break;
                    default: attn_pv(DC, 4, D, vf, n, j0 == 0, e, corr, lg, acc); break;
                    }
                }
            }
        }
        for (int32_t i = 0; i < ni; i++)
            for (int32_t g = 0; g < nq; g++) {
                const int32_t s = i * nq + g;
                const __m512 lv = _mm512_set1_ps(l[s]);
                float *o = a->out + (int64_t)(i0 + i) * a->out_stride + (int64_t)g * D;
                for (int32_t v = 0; v < nv; v++)
                    _mm512_mask_storeu_ps(o + 16 * v, v == nv - 1 ? tail : 0xFFFF, _mm512_div_ps(st[s * nv + v], lv));
            }
    }
}

#define ATB_V(DC) \
    static void atb_##DC(const sl_attn_args *a) { attn_tokens_impl(DC, a); }
ATB_V(0)
ATB_V(64)
ATB_V(128)
/* by the one-token kernels' head-size index; the rare sizes 8 and 32 take the general one */
static const sl_attn_fn ATB[5] = {atb_0, atb_0, atb_0, atb_64, atb_128};

static void attn_avx512(const sl_attn_args *a) {
    const int ti = a->kv_type == SL_TYPE_F32 ? 0 : a->kv_type == SL_TYPE_F16 ? 1 : 2;
    const int32_t D = a->head_dim;
    const int di = D == 8 ? 1 : D == 32 ? 2 : D == 64 ? 3 : D == 128 ? 4 : 0;
    if (a->n_t > 1) {
        ATB[di](a);
        return;
    }
    for (int32_t g0 = 0; g0 < a->n_q; g0 += 4) {
        const int G = a->n_q - g0 < 4 ? a->n_q - g0 : 4;
        ATT[ti][di][G - 1](a, a->q + (int64_t)g0 * a->head_dim, a->out + (int64_t)g0 * a->head_dim);
    }
}

/* ---- activation quantization (the same bytes as sl_act_quantize) ------------------------------ */

static void quant_q8_0_row(const float *x, int64_t K, uint8_t *out) {
    const int64_t nb = K / 32;
    int8_t *qs = (int8_t *)out;
    float *d = (float *)(out + K);
    int32_t *c8 = (int32_t *)(out + K + nb * 4), *c128 = (int32_t *)(out + K + nb * 8);
    for (int64_t b = 0; b < nb; b++) {
        const __m512 v0 = _mm512_loadu_ps(x + 32 * b), v1 = _mm512_loadu_ps(x + 32 * b + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        d[b] = sl_f16_to_f32(sl_f32_to_f16(amax / 127.0f));
        const __m512 vid = _mm512_set1_ps(id);
        /* |q| <= 127 for finite inputs; a NaN or inf converts to INT32_MIN: clamped as the int8 store saturates, so
         * the sum below matches the stored quants and cannot overflow (the reduction ends in scalar int adds) */
        const __m512i lo = _mm512_set1_epi32(-128), hi = _mm512_set1_epi32(127);
        const __m512i q0 = _mm512_max_epi32(_mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v0, vid)), hi), lo),
                      q1 = _mm512_max_epi32(_mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v1, vid)), hi), lo);
        _mm_storeu_si128((__m128i *)(qs + 32 * b), _mm512_cvtsepi32_epi8(q0));
        _mm_storeu_si128((__m128i *)(qs + 32 * b + 16), _mm512_cvtsepi32_epi8(q1));
        const int32_t sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
        c8[b] = sl_act_q8_0_corr(sum, 8);
        c128[b] = sl_act_q8_0_corr(sum, 128);
    }
}

static void quant_q8_K_row(const float *x, int64_t K, block_q8_K *y) {
    for (int64_t i = 0; i < K / QK_K; i++, x += QK_K) {
        __m512 am = _mm512_setzero_ps();
        for (int c = 0; c < 16; c++) am = _mm512_max_ps(am, _mm512_abs_ps(_mm512_loadu_ps(x + 16 * c)));
        const float amax = _mm512_reduce_max_ps(am);
        if (amax == 0.0f) {
            memset(&y[i], 0, sizeof y[i]);
            continue;
        }
        float max = 0.0f; /* the first element of largest magnitude, with its sign (as the reference) */
        for (int c = 0; c < 16; c++) {
            const __mmask16 hit = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * c)), _mm512_set1_ps(amax), _CMP_EQ_OQ);
            if (hit) {
                max = x[16 * c + __builtin_ctz(hit)];
                break;
            }
        }
        const float iscale = -127.0f / max;
        const __m512 vs = _mm512_set1_ps(iscale);
        for (int c = 0; c < 16; c++) {
            __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + 16 * c), vs));
            q = _mm512_max_epi32(_mm512_min_epi32(q, _mm512_set1_epi32(127)), _mm512_set1_epi32(-128)); /* NaN: INT32_MIN */
            _mm_storeu_si128((__m128i *)(y[i].qs + 16 * c), _mm512_cvtsepi32_epi8(q));
            y[i].bsums[c] = (int16_t)_mm512_reduce_add_epi32(q);
        }
        y[i].d = 1.0f / iscale;
    }
}

static void act_quantize_avx512(sl_act a, const float *x, int64_t ldx, int64_t n_tok, int64_t K, void *out) {
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

/* Four sequential streams (the quarters of the array) read together, as a
 * matmul reads several rows at once. */
static uint64_t sum_u64_avx512(const uint64_t *a, size_t n) {
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    const size_t q = n / 4 / 16 * 16;
    const uint64_t *p0 = a, *p1 = a + q, *p2 = a + 2 * q, *p3 = a + 3 * q;
    for (size_t i = 0; i < q; i += 16) {
        s0 = _mm512_add_epi64(s0, _mm512_add_epi64(_mm512_loadu_si512(p0 + i), _mm512_loadu_si512(p0 + i + 8)));
        s1 = _mm512_add_epi64(s1, _mm512_add_epi64(_mm512_loadu_si512(p1 + i), _mm512_loadu_si512(p1 + i + 8)));
        s2 = _mm512_add_epi64(s2, _mm512_add_epi64(_mm512_loadu_si512(p2 + i), _mm512_loadu_si512(p2 + i + 8)));
        s3 = _mm512_add_epi64(s3, _mm512_add_epi64(_mm512_loadu_si512(p3 + i), _mm512_loadu_si512(p3 + i + 8)));
    }
    uint64_t s = (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3)));
    for (size_t i = 4 * q; i < n; i++) s += a[i];
    return s;
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

/* sl_rmsnorm_ref's steps: lane k of the accumulator is its partial sum k
 * (elements 8i + k: mul, then add, in double), the partials added pairwise,
 * then out = (float)(x * scale * w) in double, element by element. */
static void rmsnorm_avx512(const float *x, const float *w, float *out, int64_t n, float eps) {
    __m512d p = _mm512_setzero_pd();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + j));
        p = _mm512_add_pd(p, _mm512_mul_pd(v, v));
    }
    if (j < n) {
        const __mmask8 m = (__mmask8)((1u << (n - j)) - 1);
        const __m512d v = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + j));
        p = _mm512_mask_add_pd(p, m, p, _mm512_mul_pd(v, v));
    }
    double q[8];
    _mm512_storeu_pd(q, p);
    const double ss = ((q[0] + q[1]) + (q[2] + q[3])) + ((q[4] + q[5]) + (q[6] + q[7]));
    const __m512d sc = _mm512_set1_pd(1.0 / sqrt(ss / (double)n + (double)eps));
    for (j = 0; j < n; j += 8) { /* out may be x: each element is read before it is written */
        const __mmask8 m = n - j >= 8 ? 0xFF : (__mmask8)((1u << (n - j)) - 1);
        const __m512d xv = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, x + j)), wv = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, w + j));
        _mm256_mask_storeu_ps(out + j, m, _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_mul_pd(xv, sc), wv)));
    }
}

bool sl_kernels_avx512_init(sl_kernels *k) {
#if !defined(SL_PREFETCH_BYTES) && !defined(SL_FAR_PREFETCH_BYTES)
    __builtin_cpu_init();
    if (__builtin_cpu_is("amd")) {
        pf_near = 2048;
        pf_far = 65536;
        pf_unpack_ahead = true;
    }
#endif
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
        .gemm_packed = {
            [SL_TYPE_Q4_0] = gemm_q4_0_packed,
            [SL_TYPE_Q8_0] = gemm_q8_0_packed,
            [SL_TYPE_Q4_K] = gemm_q4_K_packed,
            [SL_TYPE_Q5_K] = gemm_q5_K_packed,
            [SL_TYPE_Q6_K] = gemm_q6_K_packed,
        },
        .gemm_grouped = {
            [SL_TYPE_Q4_0] = gemm_q4_0_grouped,
            [SL_TYPE_Q8_0] = gemm_q8_0_grouped,
            [SL_TYPE_Q4_K] = gemm_q4_K_grouped,
            [SL_TYPE_Q5_K] = gemm_q5_K_grouped,
            [SL_TYPE_Q6_K] = gemm_q6_K_grouped,
        },
        .attn = attn_avx512,
        .gemm_float_tokens = FT_CONV_BLOCK,
        .act_quantize = act_quantize_avx512,
        .sum_u64 = sum_u64_avx512,
        .silu_mul = silu_mul_avx512,
        .rmsnorm = rmsnorm_avx512,
    };
    return true;
}

/*
 * kernels.c — scalar kernels (the fallback and the oracle of the SIMD
 * variants), activation quantization, sl_expf, and the run-time dispatch.
 *
 * The scalar code spells out the canonical operation order of kernels.h
 * one output at a time: fmaf() for every fused multiply-add (correctly
 * rounded, as the hardware instruction), separate statements elsewhere so no
 * compiler contracts a*b+c behind our back. The SIMD files reproduce these
 * sequences lane by lane.
 */
#include "kernels.h"
#include "ops.h"

#include "core/fp16.h"
#include "quant.h"

#include <math.h>
#include <pthread.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <stdlib.h>
#include <string.h>
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

/* ---- activations --------------------------------------------------------- */

sl_act sl_act_of(sl_type t) {
    switch (t) {
    case SL_TYPE_Q4_0: case SL_TYPE_Q8_0: return SL_ACT_Q8_0;
    case SL_TYPE_Q4_K: case SL_TYPE_Q5_K: case SL_TYPE_Q6_K: return SL_ACT_Q8_K;
    default: return SL_ACT_F32;
    }
}

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t sl_act_row_bytes(sl_act a, int64_t K) {
    switch (a) {
    case SL_ACT_Q8_0: return round64((size_t)K + (size_t)(K / QK8_0) * 12);
    case SL_ACT_Q8_K: return round64((size_t)(K / QK_K) * sizeof(block_q8_K));
    default: return round64((size_t)K * sizeof(float));
    }
}

/* Round half to even for |v| < 2^22 (exact: adding 1.5*2^23 rounds in the FPU). */
static inline int32_t round_even(float v) {
    float f = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static void quantize_q8_0_act(const float *x, int64_t K, uint8_t *out) {
    const int64_t nb = K / QK8_0;
    int8_t *qs = (int8_t *)out;
    float *d = (float *)(out + K);
    int32_t *c8 = (int32_t *)(out + K + nb * 4), *c128 = (int32_t *)(out + K + nb * 8);
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + b * QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        d[b] = sl_f16_to_f32(sl_f32_to_f16(amax / 127.0f));
        int32_t s = 0;
        for (int j = 0; j < QK8_0; j++) {
            int32_t q = round_even(xb[j] * id);
            qs[b * QK8_0 + j] = (int8_t)q;
            s += q;
        }
        c8[b] = sl_act_q8_0_corr(s, 8);
        c128[b] = sl_act_q8_0_corr(s, 128);
    }
}

void sl_act_quantize(sl_act a, const float *x, int64_t ldx, int64_t n_tok, int64_t K, void *out) {
    const size_t rb = sl_act_row_bytes(a, K);
    for (int64_t t = 0; t < n_tok; t++) {
        uint8_t *o = (uint8_t *)out + (size_t)t * rb;
        const float *xt = x + t * ldx;
        switch (a) {
        case SL_ACT_Q8_0: quantize_q8_0_act(xt, K, o); break;
        case SL_ACT_Q8_K: sl_quantize_row_q8_K_ref(xt, (block_q8_K *)o, K); break;
        default: memcpy(o, xt, (size_t)K * sizeof(float)); break;
        }
    }
}

size_t sl_act_group_bytes(sl_act a, int64_t K) {
    return a == SL_ACT_Q8_K ? (size_t)(K / QK_K) * SL_KGROUP_BYTES : (size_t)(K / QK8_0) * (512 + 3 * 64);
}

static void group_q8_K(const block_q8_K *row, int64_t nb, int j, uint8_t *g) {
    for (int64_t s = 0; s < nb; s++) {
        const block_q8_K *b = &row[s];
        uint8_t *r = g + (size_t)s * SL_KGROUP_BYTES;
        memcpy(r + 256 * j, b->qs, 256);
        memcpy(r + SL_KGROUP_D + 4 * j, &b->d, 4);
        for (int i = 0; i < 4; i++) {
            const int32_t s0 = b->bsums[4 * i] + b->bsums[4 * i + 1], s1 = b->bsums[4 * i + 2] + b->bsums[4 * i + 3];
            const uint32_t pr = ((uint32_t)s0 & 0xFFFF) | ((uint32_t)s1 << 16);
            memcpy(r + SL_KGROUP_MIN + 64 * i + 4 * j, &pr, 4);
        }
        for (int i = 0; i < 16; i++) {
            const int32_t c = -32 * (int32_t)b->bsums[i];
            memcpy(r + SL_KGROUP_Q6 + 64 * i + 4 * j, &c, 4);
        }
    }
}

void sl_act_group(sl_act a, const void *act, size_t as, int64_t t0, int64_t t1, int64_t K, void *groups) {
    const size_t gb = sl_act_group_bytes(a, K);
    for (int64_t t = t0; t < t1; t++) {
        const uint8_t *row = (const uint8_t *)act + (size_t)t * as;
        uint8_t *g = (uint8_t *)groups + (size_t)(t / 16) * gb;
        if (a == SL_ACT_Q8_K) {
            group_q8_K((const block_q8_K *)row, K / QK_K, (int)(t % 16), g);
            continue;
        }
        const int64_t nb = K / QK8_0;
        uint8_t *dq = g + 32 * (size_t)(t % 16), *dd = g + (size_t)nb * 512 + 4 * (size_t)(t % 16);
        for (int64_t b = 0; b < nb; b++) { /* d, c8 and c128 are nb floats / int32 apart in the row, 64 nb bytes here */
            memcpy(dq + 512 * (size_t)b, row + 32 * (size_t)b, 32);
            for (int k = 0; k < 3; k++)
                memcpy(dd + 64 * ((size_t)k * (size_t)nb + (size_t)b), row + (size_t)K + 4 * ((size_t)k * (size_t)nb + (size_t)b), 4);
        }
    }
}

void sl_act_group_pad(sl_act a, int64_t nt, int64_t K, void *groups) {
    if (nt % 16 == 0) return;
    const size_t gb = sl_act_group_bytes(a, K);
    const int j0 = (int)(nt % 16);
    uint8_t *g = (uint8_t *)groups + (size_t)(nt / 16) * gb;
    if (a == SL_ACT_Q8_K) {
        for (int64_t s = 0; s < K / QK_K; s++) {
            uint8_t *r = g + (size_t)s * SL_KGROUP_BYTES;
            memset(r + 256 * j0, 0, 256 * (size_t)(16 - j0));
            for (int k = 0; k < 1 + 4 + 16; k++) /* d, the min pairs, the Q6_K offsets: 64 bytes each */
                memset(r + SL_KGROUP_D + 64 * k + 4 * j0, 0, 4 * (size_t)(16 - j0));
        }
        return;
    }
    const int64_t nb = K / QK8_0;
    for (int64_t b = 0; b < nb; b++) {
        for (int j = j0; j < 16; j++) memset(g + 512 * (size_t)b + 32 * (size_t)j, 0, 32);
        for (int k = 0; k < 3; k++) memset(g + 64 * ((size_t)(8 + k) * (size_t)nb + (size_t)b) + 4 * j0, 0, 4 * (size_t)(16 - j0));
    }
}

size_t sl_gemm_scratch_bytes(int64_t K) {
    /* The SIMD kernels pack SL_GEMM_CHUNK rows (at most 0.82 bytes per
     * weight, Q6_K) and unpack them (at most 1.41 bytes per weight, the
     * K-quants); the AMX kernels add two buffers of 16 tile products (32
     * KiB); the scalar kernels convert one row to floats. */
    return round64((size_t)SL_GEMM_CHUNK * (size_t)(K / 32 + 1) * 80 + (size_t)K * sizeof(float) + 4096 + 32768);
}

/* ---- packed weights ----------------------------------------------------------- */

size_t sl_pack_tile_bytes(sl_type t, int64_t K) {
    switch (t) { /* rounded up to 64 so every tile starts aligned */
    case SL_TYPE_Q4_0: return round64((size_t)(K / QK4_0) * 16 * sizeof(block_q4_0));
    case SL_TYPE_Q8_0: return round64((size_t)(K / QK8_0) * 16 * sizeof(block_q8_0));
    case SL_TYPE_Q4_K: return (size_t)(K / QK_K) * 16 * sizeof(block_q4_K);
    case SL_TYPE_Q5_K: return (size_t)(K / QK_K) * 16 * sizeof(block_q5_K);
    case SL_TYPE_Q6_K: return round64((size_t)(K / QK_K) * 16 * sizeof(block_q6_K));
    default: return 0;
    }
}

/* Q6_K super-block of row r into its 52 x 64 bytes of the tile: 48 zmm of
 * quants, then the 16 scales. Zmm 3t + m (t < 16, m < 3) holds at bytes
 * 4r..4r+3 element group 16m + t (elements 4(16m + t)..+3, unsigned) as
 * q | p << 6, p = bits 2m, 2m+1 of the same element of group 48 + t: groups
 * 0..47 read with & 63, group 48 + t from the three top bit pairs. Byte
 * 48*64 + 16j + r: scale j (int8). (The fp16 d follow the tile's quants.) */
static void pack_q6_K_block(const uint8_t *blk, int r, uint8_t *o) { /* blk: a block_q6_K */
    uint8_t q[QK_K];
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *ql = blk + offsetof(block_q6_K, ql) + 64 * h, *qh = blk + offsetof(block_q6_K, qh) + 32 * h;
            q[128 * h + l] = (uint8_t)((ql[l] & 0xF) | (qh[l] & 3) << 4);
            q[128 * h + l + 32] = (uint8_t)((ql[l + 32] & 0xF) | (qh[l] >> 2 & 3) << 4);
            q[128 * h + l + 64] = (uint8_t)(ql[l] >> 4 | (qh[l] >> 4 & 3) << 4);
            q[128 * h + l + 96] = (uint8_t)(ql[l + 32] >> 4 | (qh[l] >> 6 & 3) << 4);
        }
    for (int t = 0; t < 16; t++)
        for (int m = 0; m < 3; m++)
            for (int e = 0; e < 4; e++)
                o[64 * (3 * t + m) + 4 * r + e] =
                    (uint8_t)(q[4 * (16 * m + t) + e] | (q[4 * (48 + t) + e] >> (2 * m) & 3) << 6);
    for (int j = 0; j < 16; j++) o[64 * 48 + 16 * j + r] = blk[offsetof(block_q6_K, scales) + (size_t)j];
}

/* Q4_K / Q5_K: dword k of each super-block of row r at 64k + 4r; Q6_K: as
 * pack_q6_K_block, then the 16 rows' fp16 d, 32 bytes per super-block. */
static void pack_kquant(sl_type t, int64_t K, const uint8_t *w, size_t ws, int64_t nr, uint8_t *dst) {
    const int64_t nb = K / QK_K;
    const size_t bs = sl_type_get(t)->size, D = t == SL_TYPE_Q6_K ? 52 : bs / 4, tile = sl_pack_tile_bytes(t, K);
    for (int64_t r0 = 0; r0 < nr; r0 += 16) {
        uint8_t *o = dst + (size_t)(r0 / 16) * tile;
        memset(o, 0, tile);
        for (int r = 0; r < 16 && r0 + r < nr; r++) {
            const uint8_t *row = w + (size_t)(r0 + r) * ws;
            for (int64_t s = 0; s < nb; s++) {
                const uint8_t *blk = row + (size_t)s * bs;
                if (t == SL_TYPE_Q6_K) {
                    pack_q6_K_block(blk, r, o + 64 * D * (size_t)s);
                    memcpy(o + 64 * D * (size_t)nb + 32 * (size_t)s + 2 * (size_t)r, blk + 208, 2);
                } else {
                    for (size_t k = 0; k < D; k++) memcpy(o + 64 * D * (size_t)s + 64 * k + 4 * (size_t)r, blk + 4 * k, 4);
                }
            }
        }
    }
}

void sl_pack_rows(sl_type t, int64_t K, const void *w, size_t ws, int64_t nr, void *dst) {
    if (t == SL_TYPE_Q4_K || t == SL_TYPE_Q5_K || t == SL_TYPE_Q6_K) {
        pack_kquant(t, K, w, ws, nr, dst);
        return;
    }
    const int64_t nb = K / 32;
    const int groups = t == SL_TYPE_Q4_0 ? 4 : 8;
    const size_t G = (size_t)groups * 64, tile = sl_pack_tile_bytes(t, K);
    for (int64_t r0 = 0; r0 < nr; r0 += 16) {
        uint8_t *o = (uint8_t *)dst + (size_t)(r0 / 16) * tile;
        memset(o, 0, tile);
        for (int r = 0; r < 16 && r0 + r < nr; r++) {
            const uint8_t *row = (const uint8_t *)w + (size_t)(r0 + r) * ws;
            for (int64_t b = 0; b < nb; b++) {
                uint8_t *ob = o + (size_t)b * G;
                const uint8_t *qs;
                uint16_t d;
                if (t == SL_TYPE_Q4_0) {
                    const block_q4_0 *x = (const block_q4_0 *)row + b;
                    qs = x->qs;
                    d = x->d;
                } else {
                    const block_q8_0 *x = (const block_q8_0 *)row + b;
                    qs = (const uint8_t *)x->qs;
                    d = x->d;
                }
                for (int j = 0; j < groups; j++) memcpy(ob + 64 * j + 4 * r, qs + 4 * j, 4);
                memcpy(o + (size_t)nb * G + (size_t)b * 32 + 2 * r, &d, 2);
            }
        }
    }
}

void sl_gemm_packing(sl_gemm_packed_fn fn, sl_type t, int64_t K, const void *w, size_t ws, int64_t nr, const void *act,
                     size_t as, int64_t nt, float *y, int64_t ldy, void *scratch, size_t off) {
    uint8_t *packed = (uint8_t *)scratch + off;
    for (int64_t c0 = 0; c0 < nr; c0 += SL_GEMM_CHUNK) {
        const int64_t cr = nr - c0 < SL_GEMM_CHUNK ? nr - c0 : SL_GEMM_CHUNK;
        sl_pack_rows(t, K, (const uint8_t *)w + (size_t)c0 * ws, ws, cr, packed);
        fn(K, packed, cr, act, as, nt, y + c0, ldy, scratch);
    }
}

/* ---- exp ------------------------------------------------------------------ */

float sl_expf(float x) {
    if (!(x >= -87.0f)) return x != x ? x : 0.0f; /* NaN stays NaN; below e^-87 flush to 0 */
    if (x > 88.0f) x = 88.0f;
    const float n = (float)round_even(x * 1.44269504088896341f);
    float r = fmaf(n, -0.693359375f, x);
    r = fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    const float z = r * r;
    float y = fmaf(p, z, r);
    y = y + 1.0f;
    const float scale = sl_bits_to_f32((uint32_t)((int32_t)n + 127) << 23);
    return y * scale;
}

static void silu_mul_scalar(const float *gate, const float *up, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        const float e = sl_expf(-g);
        const float den = 1.0f + e;
        const float s = g / den;
        out[i] = s * up[i];
    }
}

/* ---- float weights: 16-lane dot ------------------------------------------- */

static float dot_l16(const float *w, const float *x, int64_t K) {
    float acc[16] = {0};
    for (int64_t k = 0; k < K; k++) acc[k & 15] = fmaf(w[k], x[k], acc[k & 15]);
    for (int s = 8; s >= 1; s >>= 1)
        for (int i = 0; i < s; i++) acc[i] = acc[i] + acc[i + s];
    return acc[0];
}

static void gemm_float(sl_type type, int64_t K, const void *w, size_t w_stride, int64_t nr, const void *act,
                       size_t act_stride, int64_t nt, float *y, int64_t ldy, void *scratch) {
    float *row = scratch;
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *wr = (const uint8_t *)w + (size_t)r * w_stride;
        sl_dequantize_row(type, wr, row, K); /* exact for F32/F16/BF16 */
        for (int64_t t = 0; t < nt; t++)
            y[t * ldy + r] = dot_l16(row, (const float *)((const uint8_t *)act + (size_t)t * act_stride), K);
    }
}

#define FLOAT_GEMM(name, type)                                                                                   \
    static void name(int64_t K, const void *w, size_t ws, int64_t nr, const void *a, size_t as, int64_t nt,     \
                     float *y, int64_t ldy, void *scratch) {                                                     \
        gemm_float(type, K, w, ws, nr, a, as, nt, y, ldy, scratch);                                               \
    }
FLOAT_GEMM(gemm_f32_scalar, SL_TYPE_F32)
FLOAT_GEMM(gemm_f16_scalar, SL_TYPE_F16)
FLOAT_GEMM(gemm_bf16_scalar, SL_TYPE_BF16)

/* ---- Q4_0 / Q8_0 × Q8_0 activations ------------------------------------- */

static void gemm_q4_0_scalar(int64_t K, const void *w, size_t ws, int64_t nr, const void *act, size_t as, int64_t nt,
                             float *y, int64_t ldy, void *scratch) {
    (void)scratch;
    const int64_t nb = K / QK4_0;
    for (int64_t r = 0; r < nr; r++) {
        const block_q4_0 *wb = (const block_q4_0 *)((const uint8_t *)w + (size_t)r * ws);
        for (int64_t t = 0; t < nt; t++) {
            const uint8_t *at = (const uint8_t *)act + (size_t)t * as;
            const int8_t *qa = (const int8_t *)at;
            const float *da = (const float *)(at + K);
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                int32_t isum = 0;
                for (int j = 0; j < QK4_0 / 2; j++) {
                    isum += ((wb[b].qs[j] & 15) - 8) * qa[b * QK4_0 + j];
                    isum += ((wb[b].qs[j] >> 4) - 8) * qa[b * QK4_0 + j + 16];
                }
                const float s = sl_f16_to_f32(wb[b].d) * da[b];
                acc = fmaf(s, (float)isum, acc);
            }
            y[t * ldy + r] = acc;
        }
    }
}

static void gemm_q8_0_scalar(int64_t K, const void *w, size_t ws, int64_t nr, const void *act, size_t as, int64_t nt,
                             float *y, int64_t ldy, void *scratch) {
    (void)scratch;
    const int64_t nb = K / QK8_0;
    for (int64_t r = 0; r < nr; r++) {
        const block_q8_0 *wb = (const block_q8_0 *)((const uint8_t *)w + (size_t)r * ws);
        for (int64_t t = 0; t < nt; t++) {
            const uint8_t *at = (const uint8_t *)act + (size_t)t * as;
            const int8_t *qa = (const int8_t *)at;
            const float *da = (const float *)(at + K);
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                int32_t isum = 0;
                for (int j = 0; j < QK8_0; j++) isum += wb[b].qs[j] * qa[b * QK8_0 + j];
                const float s = sl_f16_to_f32(wb[b].d) * da[b];
                acc = fmaf(s, (float)isum, acc);
            }
            y[t * ldy + r] = acc;
        }
    }
}

/* ---- K-quants × Q8_K -------------------------------------------------------- */

/* Quants of a super-block in element order (0..15 / 0..31 / 0..63). */
static void unpack_q4_K(const block_q4_K *x, uint8_t *q) {
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = x->qs[32 * c + l] & 0xF;
            q[64 * c + 32 + l] = x->qs[32 * c + l] >> 4;
        }
}

static void unpack_q5_K(const block_q5_K *x, uint8_t *q) {
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            q[64 * c + l] = (uint8_t)((x->qs[32 * c + l] & 0xF) | (((x->qh[l] >> (2 * c)) & 1) << 4));
            q[64 * c + 32 + l] = (uint8_t)((x->qs[32 * c + l] >> 4) | (((x->qh[l] >> (2 * c + 1)) & 1) << 4));
        }
}

static void unpack_q6_K(const block_q6_K *x, uint8_t *q) {
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = x->ql + 64 * h, *qh = x->qh + 32 * h;
        uint8_t *o = q + 128 * h;
        for (int l = 0; l < 32; l++) {
            o[l] = (uint8_t)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4));
            o[l + 32] = (uint8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4));
            o[l + 64] = (uint8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
            o[l + 96] = (uint8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
        }
    }
}

/* Q4_K and Q5_K share the scale/min layout; `unpack` gives the quants. */
static float dot_q45_K(const void *row, size_t blk_bytes, bool q5, const block_q8_K *a, int64_t nb) {
    float acc = 0.0f;
    uint8_t q[QK_K];
    for (int64_t s = 0; s < nb; s++) {
        const uint8_t *blk = (const uint8_t *)row + (size_t)s * blk_bytes;
        const block_q4_K *b4 = (const block_q4_K *)blk; /* d, dmin, scales are at the same offsets in Q5_K */
        if (q5) unpack_q5_K((const block_q5_K *)blk, q);
        else unpack_q4_K(b4, q);
        int32_t isum = 0, imin = 0;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            sl_q4k_scale_min(j, b4->scales, &sc, &m);
            int32_t sj = 0;
            for (int l = 0; l < 32; l++) sj += q[32 * j + l] * a[s].qs[32 * j + l];
            isum += sc * sj;
            imin += m * (a[s].bsums[2 * j] + a[s].bsums[2 * j + 1]);
        }
        const float sd = sl_f16_to_f32(b4->d) * a[s].d;
        const float sm = sl_f16_to_f32(b4->dmin) * a[s].d;
        acc = fmaf(sd, (float)isum, acc);
        acc = fmaf(-sm, (float)imin, acc);
    }
    return acc;
}

static float dot_q6_K(const block_q6_K *x, const block_q8_K *a, int64_t nb) {
    float acc = 0.0f;
    uint8_t q[QK_K];
    for (int64_t s = 0; s < nb; s++) {
        unpack_q6_K(&x[s], q);
        int32_t isum = 0;
        for (int j = 0; j < 16; j++) {
            int32_t sj = 0;
            for (int l = 0; l < 16; l++) sj += q[16 * j + l] * a[s].qs[16 * j + l];
            isum += x[s].scales[j] * (sj - 32 * a[s].bsums[j]);
        }
        const float sd = sl_f16_to_f32(x[s].d) * a[s].d;
        acc = fmaf(sd, (float)isum, acc);
    }
    return acc;
}

static void gemm_kquant(sl_type type, int64_t K, const void *w, size_t ws, int64_t nr, const void *act, size_t as,
                        int64_t nt, float *y, int64_t ldy) {
    const int64_t nb = K / QK_K;
    for (int64_t r = 0; r < nr; r++) {
        const uint8_t *wr = (const uint8_t *)w + (size_t)r * ws;
        for (int64_t t = 0; t < nt; t++) {
            const block_q8_K *a = (const block_q8_K *)((const uint8_t *)act + (size_t)t * as);
            float v;
            if (type == SL_TYPE_Q6_K) v = dot_q6_K((const block_q6_K *)wr, a, nb);
            else v = dot_q45_K(wr, type == SL_TYPE_Q5_K ? sizeof(block_q5_K) : sizeof(block_q4_K), type == SL_TYPE_Q5_K,
                               a, nb);
            y[t * ldy + r] = v;
        }
    }
}

#define KQ_GEMM(name, type)                                                                                      \
    static void name(int64_t K, const void *w, size_t ws, int64_t nr, const void *a, size_t as, int64_t nt,     \
                     float *y, int64_t ldy, void *scratch) {                                                     \
        (void)scratch;                                                                                            \
        gemm_kquant(type, K, w, ws, nr, a, as, nt, y, ldy);                                                       \
    }
KQ_GEMM(gemm_q4_K_scalar, SL_TYPE_Q4_K)
KQ_GEMM(gemm_q5_K_scalar, SL_TYPE_Q5_K)
KQ_GEMM(gemm_q6_K_scalar, SL_TYPE_Q6_K)

/* ---- attention ---------------------------------------------------------------- */

/* One cached row of the head as floats (exact for F32/F16; Q8_0: q*d rounded). */
static void kv_row(sl_type t, const uint8_t *p, float *out, int32_t n) {
    if (t == SL_TYPE_F32) memcpy(out, p, (size_t)n * sizeof(float));
    else if (t == SL_TYPE_F16)
        for (int32_t i = 0; i < n; i++) out[i] = sl_f16_to_f32(((const uint16_t *)p)[i]);
    else
        for (int32_t b = 0; b < n / QK8_0; b++) {
            const block_q8_0 *blk = (const block_q8_0 *)p + b;
            const float d = sl_f16_to_f32(blk->d);
            for (int j = 0; j < QK8_0; j++) out[b * QK8_0 + j] = (float)blk->qs[j] * d;
        }
}

static void attn_head_scalar(const sl_attn_args *a, const float *q, float *out) {
    const int32_t D = a->head_dim;
    float acc[512], kr[512], s[16];
    float M = -INFINITY, l = 0.0f;
    for (int32_t i = 0; i < D; i++) acc[i] = 0.0f;
    for (int32_t j0 = 0; j0 < a->n_pos; j0 += 16) {
        const int32_t n = a->n_pos - j0 < 16 ? a->n_pos - j0 : 16;
        float mc = -INFINITY;
        for (int32_t j = 0; j < n; j++) {
            const int32_t p = j0 + j;
            const size_t off = (size_t)a->blocks[p / a->block_size] * a->block_bytes +
                               (size_t)(p % a->block_size) * a->slot_bytes;
            kv_row(a->kv_type, a->k_base + off, kr, D);
            s[j] = dot_l16(q, kr, D) * a->scale;
            mc = s[j] > mc ? s[j] : mc;
        }
        const float Mn = mc > M ? mc : M;
        if (j0 > 0) {
            const float corr = sl_expf(M - Mn);
            l = l * corr;
            for (int32_t i = 0; i < D; i++) acc[i] = acc[i] * corr;
        }
        M = Mn;
        for (int32_t j = 0; j < n; j++) {
            const int32_t p = j0 + j;
            const size_t off = (size_t)a->blocks[p / a->block_size] * a->block_bytes +
                               (size_t)(p % a->block_size) * a->slot_bytes;
            kv_row(a->kv_type, a->v_base + off, kr, D);
            const float e = sl_expf(s[j] - M);
            l = l + e;
            for (int32_t i = 0; i < D; i++) acc[i] = fmaf(e, kr[i], acc[i]);
        }
    }
    for (int32_t i = 0; i < D; i++) out[i] = acc[i] / l;
}

static void attn_scalar(const sl_attn_args *a) { sl_attn_each(a, attn_head_scalar); }

static uint64_t sum_u64_scalar(const uint64_t *a, size_t n) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i];
        s1 += a[i + 1];
        s2 += a[i + 2];
        s3 += a[i + 3];
    }
    for (; i < n; i++) s0 += a[i];
    return s0 + s1 + s2 + s3;
}

/* ---- tables and dispatch ------------------------------------------------------- */

const sl_kernels sl_kernels_scalar_table = {
    .name = "scalar",
    .gemm = {
        [SL_TYPE_F32] = gemm_f32_scalar,
        [SL_TYPE_F16] = gemm_f16_scalar,
        [SL_TYPE_BF16] = gemm_bf16_scalar,
        [SL_TYPE_Q4_0] = gemm_q4_0_scalar,
        [SL_TYPE_Q8_0] = gemm_q8_0_scalar,
        [SL_TYPE_Q4_K] = gemm_q4_K_scalar,
        [SL_TYPE_Q5_K] = gemm_q5_K_scalar,
        [SL_TYPE_Q6_K] = gemm_q6_K_scalar,
    },
    .attn = attn_scalar,
    .act_quantize = sl_act_quantize,
    .sum_u64 = sum_u64_scalar,
    .silu_mul = silu_mul_scalar,
    .rmsnorm = sl_rmsnorm_ref,
};

static sl_kernels avx2_table, avx512_table, amx_table;
static bool have_avx2, have_avx512, have_amx;
static const sl_kernels *best;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) || defined(__i386__)
/* F16C (cpuid leaf 1, ecx bit 29): not every compiler's __builtin_cpu_supports knows it. */
static bool has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif

/* AMX-TILE and AMX-INT8 (cpuid leaf 7, edx bits 24, 25; GFNI, ecx bit 8,
 * which the AMX kernels' Q4_0 unpacking uses and every AMX CPU has), the tile state
 * enabled by the OS (XCR0 bits 17, 18) and granted to this process (Linux
 * hands out the tile data only on request). */
static bool amx_usable(void) {
#if defined(__linux__) && defined(__x86_64__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false; /* OSXSAVE */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 25)) || !(c & (1u << 8)))
        return false;
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    (void)hi;
    if ((lo & (3u << 17)) != (3u << 17)) return false;
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
#else
    return false;
#endif
}

static void detect(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
    if (avx2) have_avx2 = sl_kernels_avx2_init(&avx2_table);
    if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vnni"))
        have_avx512 = sl_kernels_avx512_init(&avx512_table);
    if (have_avx512 && amx_usable()) have_amx = sl_kernels_amx_init(&amx_table, &avx512_table);
#endif
    best = have_amx ? &amx_table : have_avx512 ? &avx512_table : have_avx2 ? &avx2_table : &sl_kernels_scalar_table;
    /* SHARDLM_KERNELS=scalar|avx2|avx512|amx forces a table (for measurements, tests, valgrind). */
    const char *env = getenv("SHARDLM_KERNELS");
    if (env && *env) {
        if (!strcmp(env, "scalar")) best = &sl_kernels_scalar_table;
        else if (!strcmp(env, "avx2") && have_avx2) best = &avx2_table;
        else if (!strcmp(env, "avx512") && have_avx512) best = &avx512_table;
        else if (!strcmp(env, "amx") && have_amx) best = &amx_table;
    }
}

const sl_kernels *sl_kernels_best(void) {
    pthread_once(&once, detect);
    return best;
}

const sl_kernels *sl_kernels_scalar(void) { return &sl_kernels_scalar_table; }

const sl_kernels *sl_kernels_get(const char *name) {
    pthread_once(&once, detect);
    if (!strcmp(name, "scalar")) return &sl_kernels_scalar_table;
    if (!strcmp(name, "avx2")) return have_avx2 ? &avx2_table : NULL;
    if (!strcmp(name, "avx512")) return have_avx512 ? &avx512_table : NULL;
    if (!strcmp(name, "amx")) return have_amx ? &amx_table : NULL;
    return NULL;
}

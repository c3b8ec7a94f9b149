/*
 * quant.c — scalar reference (de)quantization of the weight types (the
 * layouts and formulas are ggml's; see quant.h). Dequantization computes each
 * value with the same float operations as ggml's dequantize_row_* so both
 * give the same floats.
 */
#include "quant.h"

#include "core/fp16.h"
#include "core/status.h"

#include <math.h>
#include <stdalign.h>
#include <string.h>

void sl_dequantize_row_q4_0(const block_q4_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QK4_0; b++) {
        float d = sl_f16_to_f32(x[b].d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            y[b * QK4_0 + j] = (float)((x[b].qs[j] & 0x0f) - 8) * d;
            y[b * QK4_0 + j + QK4_0 / 2] = (float)((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

void sl_dequantize_row_q8_0(const block_q8_0 *x, float *y, int64_t n) {
    for (int64_t b = 0; b < n / QK8_0; b++) {
        float d = sl_f16_to_f32(x[b].d);
        for (int j = 0; j < QK8_0; j++) y[b * QK8_0 + j] = (float)x[b].qs[j] * d;
    }
}

void sl_quantize_row_q8_0_ref(const float *x, block_q8_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / QK8_0; b++) {
        const float *xb = x + b * QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; j++) amax = fmaxf(amax, fabsf(xb[j]));
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = sl_f32_to_f16(d);
        for (int j = 0; j < QK8_0; j++) y[b].qs[j] = (int8_t)roundf(xb[j] * id);
    }
}

void sl_quantize_row_q4_0_ref(const float *x, block_q4_0 *y, int64_t n) {
    for (int64_t b = 0; b < n / QK4_0; b++) {
        const float *xb = x + b * QK4_0;
        float amax = 0.0f, max = 0.0f; /* max keeps the sign of the largest magnitude */
        for (int j = 0; j < QK4_0; j++) {
            if (fabsf(xb[j]) > amax) {
                amax = fabsf(xb[j]);
                max = xb[j];
            }
        }
        float d = max / -8.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = sl_f32_to_f16(d);
        for (int j = 0; j < QK4_0 / 2; j++) {
            float x0 = xb[j] * id, x1 = xb[QK4_0 / 2 + j] * id;
            int xi0 = (int8_t)(x0 + 8.5f), xi1 = (int8_t)(x1 + 8.5f);
            if (xi0 > 15) xi0 = 15;
            if (xi1 > 15) xi1 = 15;
            y[b].qs[j] = (uint8_t)(xi0 | (xi1 << 4));
        }
    }
}

void sl_dequantize_row_q4_K(const block_q4_K *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *q = x[i].qs;
        const float d = sl_f16_to_f32(x[i].d), min = sl_f16_to_f32(x[i].dmin);
        for (int c = 0; c < 4; c++, q += 32) {
            uint8_t sc, m;
            sl_q4k_scale_min(2 * c, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            sl_q4k_scale_min(2 * c + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

void sl_dequantize_row_q5_K(const block_q5_K *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++) {
        const uint8_t *ql = x[i].qs, *qh = x[i].qh;
        const float d = sl_f16_to_f32(x[i].d), min = sl_f16_to_f32(x[i].dmin);
        for (int c = 0; c < 4; c++, ql += 32) {
            uint8_t sc, m;
            sl_q4k_scale_min(2 * c, x[i].scales, &sc, &m);
            const float d1 = d * sc, m1 = min * m;
            sl_q4k_scale_min(2 * c + 1, x[i].scales, &sc, &m);
            const float d2 = d * sc, m2 = min * m;
            const uint8_t u1 = (uint8_t)(1u << (2 * c)), u2 = (uint8_t)(2u << (2 * c));
            for (int l = 0; l < 32; l++) *y++ = d1 * (float)((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (float)((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        }
    }
}

void sl_dequantize_row_q6_K(const block_q6_K *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++) {
        const float d = sl_f16_to_f32(x[i].d);
        const uint8_t *ql = x[i].ql, *qh = x[i].qh;
        const int8_t *sc = x[i].scales;
        for (int h = 0; h < 2; h++, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l + 0] = d * (float)sc[is + 0] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

void sl_dequantize_row_q8_K(const block_q8_K *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++)
        for (int j = 0; j < QK_K; j++) *y++ = x[i].d * (float)x[i].qs[j];
}

/* Round to nearest, ties to even (ggml's nearest_int; |v| < 2^22). */
static int nearest_int(float v) {
    float f = v + 12582912.0f;
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

void sl_quantize_row_q8_K_ref(const float *x, block_q8_K *y, int64_t n) {
    for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < QK_K; j++) {
            float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        memset(y[i].bsums, 0, sizeof y[i].bsums);
        if (amax == 0.0f) {
            y[i].d = 0.0f;
            memset(y[i].qs, 0, QK_K);
            continue;
        }
        const float iscale = -127.0f / max;
        for (int j = 0; j < QK_K; j++) {
            int v = nearest_int(iscale * x[j]);
            y[i].qs[j] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int j = 0; j < QK_K / 16; j++) {
            int sum = 0;
            for (int l = 0; l < 16; l++) sum += y[i].qs[j * 16 + l];
            y[i].bsums[j] = (int16_t)sum;
        }
        y[i].d = 1.0f / iscale;
    }
}

bool sl_type_supported(sl_type t) {
    switch (t) {
    case SL_TYPE_F32: case SL_TYPE_F16: case SL_TYPE_BF16: case SL_TYPE_Q8_0: case SL_TYPE_Q4_0:
    case SL_TYPE_Q4_K: case SL_TYPE_Q5_K: case SL_TYPE_Q6_K:
        return true;
    default:
        return false;
    }
}

/* ---- widened types ---------------------------------------------------------- */

const int8_t sl_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

sl_type sl_type_widened(sl_type t) {
    switch (t) {
    case SL_TYPE_Q5_0: case SL_TYPE_IQ4_NL: return SL_TYPE_Q8_0;
    case SL_TYPE_Q3_K: return SL_TYPE_Q6_K;
    case SL_TYPE_Q4_1: case SL_TYPE_Q5_1: return SL_TYPE_F32;
    default: return SL_TYPE_COUNT;
    }
}

static void widen_q5_0(const block_q5_0 *x, block_q8_0 *y) {
    uint32_t qh;
    memcpy(&qh, x->qh, 4);
    y->d = x->d;
    for (int j = 0; j < 16; j++) {
        y->qs[j] = (int8_t)(((x->qs[j] & 0x0F) | ((qh >> j & 1) << 4)) - 16);
        y->qs[j + 16] = (int8_t)(((x->qs[j] >> 4) | ((qh >> (j + 16) & 1) << 4)) - 16);
    }
}

static void widen_iq4_nl(const block_iq4_nl *x, block_q8_0 *y) {
    y->d = x->d;
    for (int j = 0; j < 16; j++) {
        y->qs[j] = sl_iq4nl_values[x->qs[j] & 0x0F];
        y->qs[j + 16] = sl_iq4nl_values[x->qs[j] >> 4];
    }
}

/* Q4_1 (qh NULL) or Q5_1: d*q + m, the product exact, the sum rounded once as ggml's dequantizer does. */
static void widen_q_1(uint16_t dh, uint16_t mh, const uint8_t *qh4, const uint8_t *qs, float *y) {
    const float d = sl_f16_to_f32(dh), m = sl_f16_to_f32(mh);
    uint32_t qh = 0;
    if (qh4) memcpy(&qh, qh4, 4);
    for (int j = 0; j < 16; j++) {
        const int q0 = (qs[j] & 0x0F) | (int)(qh >> j & 1) << 4, q1 = (qs[j] >> 4) | (int)(qh >> (j + 16) & 1) << 4;
        y[j] = (float)q0 * d + m;
        y[j + 16] = (float)q1 * d + m;
    }
}

/* Element e of a super-block: half h = e / 128, group g = e % 128 / 32, l = e % 32; sub-block e / 16 in both. */
static void widen_q3_K(const block_q3_K *x, block_q6_K *y) {
    memset(y, 0, sizeof *y);
    y->d = x->d;
    for (int k = 0; k < 16; k++) {
        const int lo = k < 8 ? x->scales[k] & 0x0F : x->scales[k - 8] >> 4;
        const int hi = x->scales[8 + k % 4] >> (2 * (k / 4)) & 3;
        y->scales[k] = (int8_t)((lo | hi << 4) - 32);
    }
    for (int e = 0; e < QK_K; e++) {
        const int h = e / 128, g = e % 128 / 32, l = e % 32;
        const int q2 = x->qs[32 * h + l] >> (2 * g) & 3, high = x->hmask[l] >> (4 * h + g) & 1;
        const int q6 = q2 - (high ? 0 : 4) + 32; /* 28..35 */
        uint8_t *ql = &y->ql[64 * h + l + 32 * (g & 1)];
        *ql |= (uint8_t)((q6 & 0x0F) << (g < 2 ? 0 : 4));
        y->qh[32 * h + l] |= (uint8_t)((q6 >> 4) << (2 * g));
    }
}

void sl_widen_row(sl_type t, const void *x, void *y, int64_t n) {
    switch (t) {
    case SL_TYPE_Q5_0:
        for (int64_t b = 0; b < n / QK8_0; b++) widen_q5_0((const block_q5_0 *)x + b, (block_q8_0 *)y + b);
        break;
    case SL_TYPE_IQ4_NL:
        for (int64_t b = 0; b < n / QK8_0; b++) widen_iq4_nl((const block_iq4_nl *)x + b, (block_q8_0 *)y + b);
        break;
    case SL_TYPE_Q3_K:
        for (int64_t b = 0; b < n / QK_K; b++) widen_q3_K((const block_q3_K *)x + b, (block_q6_K *)y + b);
        break;
    case SL_TYPE_Q4_1:
        for (int64_t b = 0; b < n / 32; b++) {
            const block_q4_1 *xb = (const block_q4_1 *)x + b;
            widen_q_1(xb->d, xb->m, NULL, xb->qs, (float *)y + 32 * b);
        }
        break;
    case SL_TYPE_Q5_1:
        for (int64_t b = 0; b < n / 32; b++) {
            const block_q5_1 *xb = (const block_q5_1 *)x + b;
            widen_q_1(xb->d, xb->m, xb->qh, xb->qs, (float *)y + 32 * b);
        }
        break;
    default: SL_ASSERT(!"sl_widen_row: not a widened type");
    }
}

/* A widened type's row, block by block through its wider form. */
static void dequantize_widened(sl_type t, const void *x, float *y, int64_t n) {
    const sl_type w = sl_type_widened(t);
    const int64_t blk = sl_type_get(t)->blck;
    const size_t sb = sl_type_get(t)->size;
    alignas(64) uint8_t tmp[sizeof(block_q6_K)];
    for (int64_t b = 0; b < n / blk; b++) {
        sl_widen_row(t, (const uint8_t *)x + (size_t)b * sb, tmp, blk);
        sl_dequantize_row(w, tmp, y + b * blk, blk);
    }
}

bool sl_dequantize_row(sl_type t, const void *x, float *y, int64_t n) {
    switch (t) {
    case SL_TYPE_Q5_0: case SL_TYPE_IQ4_NL: case SL_TYPE_Q3_K: dequantize_widened(t, x, y, n); return true;
    case SL_TYPE_Q4_1: case SL_TYPE_Q5_1: sl_widen_row(t, x, y, n); return true;
    case SL_TYPE_F32: memcpy(y, x, (size_t)n * sizeof(float)); return true;
    case SL_TYPE_F16: {
        const uint16_t *h = x;
        for (int64_t i = 0; i < n; i++) y[i] = sl_f16_to_f32(h[i]);
        return true;
    }
    case SL_TYPE_BF16: {
        const uint16_t *h = x;
        for (int64_t i = 0; i < n; i++) y[i] = sl_bf16_to_f32(h[i]);
        return true;
    }
    case SL_TYPE_Q8_0: sl_dequantize_row_q8_0(x, y, n); return true;
    case SL_TYPE_Q4_0: sl_dequantize_row_q4_0(x, y, n); return true;
    case SL_TYPE_Q4_K: sl_dequantize_row_q4_K(x, y, n); return true;
    case SL_TYPE_Q5_K: sl_dequantize_row_q5_K(x, y, n); return true;
    case SL_TYPE_Q6_K: sl_dequantize_row_q6_K(x, y, n); return true;
    case SL_TYPE_Q8_K: sl_dequantize_row_q8_K(x, y, n); return true;
    default: return false;
    }
}

bool sl_quantize_row(sl_type t, const float *x, void *y, int64_t n) {
    switch (t) {
    case SL_TYPE_F32: memcpy(y, x, (size_t)n * sizeof(float)); return true;
    case SL_TYPE_F16: {
        uint16_t *h = y;
        for (int64_t i = 0; i < n; i++) h[i] = sl_f32_to_f16(x[i]);
        return true;
    }
    case SL_TYPE_BF16: {
        uint16_t *h = y;
        for (int64_t i = 0; i < n; i++) h[i] = sl_f32_to_bf16(x[i]);
        return true;
    }
    case SL_TYPE_Q8_0: sl_quantize_row_q8_0_ref(x, y, n); return true;
    case SL_TYPE_Q4_0: sl_quantize_row_q4_0_ref(x, y, n); return true;
    case SL_TYPE_Q8_K: sl_quantize_row_q8_K_ref(x, y, n); return true;
    default: return false;
    }
}

/*
 * quant.c — scalar reference (de)quantization of the weight types.
 */
#include "quant.h"

#include "core/fp16.h"

#include <math.h>
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

bool sl_type_supported(sl_type t) {
    return t == SL_TYPE_F32 || t == SL_TYPE_F16 || t == SL_TYPE_BF16 || t == SL_TYPE_Q8_0 || t == SL_TYPE_Q4_0;
}

bool sl_dequantize_row(sl_type t, const void *x, float *y, int64_t n) {
    switch (t) {
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
    default: return false;
    }
}

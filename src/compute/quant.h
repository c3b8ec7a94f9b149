/*
 * quant.h — block layouts of the quantized weight types and their scalar
 * reference conversions.
 *
 * The layouts are GGUF's (ggml's) exactly: packed structs with size checks.
 * dequantize_row_* give exactly the values the format encodes (the spec and
 * the test oracle); quantize_row_*_ref follow ggml's reference quantizers so
 * files we write round-trip through llama.cpp the same way.
 */
#ifndef SL_COMPUTE_QUANT_H
#define SL_COMPUTE_QUANT_H

#include "core/types.h"

#include <assert.h>
#include <stdint.h>

#define QK4_0 32
#define QK8_0 32

typedef struct {
    uint16_t d;            /* scale, fp16 */
    uint8_t qs[QK4_0 / 2]; /* nibbles: low nibble = element j, high = element j+16 */
} block_q4_0;
static_assert(sizeof(block_q4_0) == 18, "block_q4_0 size");

typedef struct {
    uint16_t d;        /* scale, fp16 */
    int8_t qs[QK8_0];  /* quants */
} block_q8_0;
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 size");

/* Dequantize one row of n elements (n a multiple of the block size) of type
 * t into y. Supported: F32, F16, BF16, Q8_0, Q4_0. Returns false for other
 * types. */
bool sl_dequantize_row(sl_type t, const void *x, float *y, int64_t n);
/* Quantize n floats into type t (same set of types). */
bool sl_quantize_row(sl_type t, const float *x, void *y, int64_t n);
/* Whether the compute layer has kernels for weight type t. */
bool sl_type_supported(sl_type t);

void sl_dequantize_row_q4_0(const block_q4_0 *x, float *y, int64_t n);
void sl_dequantize_row_q8_0(const block_q8_0 *x, float *y, int64_t n);
void sl_quantize_row_q4_0_ref(const float *x, block_q4_0 *y, int64_t n);
void sl_quantize_row_q8_0_ref(const float *x, block_q8_0 *y, int64_t n);

#endif

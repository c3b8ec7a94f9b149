/*
 * quant.h — block layouts of the quantized weight types and their scalar
 * reference conversions.
 *
 * The layouts are GGUF's (ggml's) exactly: packed structs with size checks.
 * dequantize_row_* give exactly the values the format encodes (the spec and
 * the test oracle); quantize_row_*_ref follow ggml's reference quantizers so
 * files we write round-trip through llama.cpp the same way.
 *
 * K-quants (super-blocks of QK_K = 256):
 *   Q4_K: 8 sub-blocks of 32, each with a 6-bit scale and a 6-bit min packed
 *         in scales[12]; w = d*sc*q - dmin*m, q in 0..15.
 *   Q5_K: as Q4_K with a fifth bit per weight in qh; q in 0..31.
 *   Q6_K: 16 sub-blocks of 16 with int8 scales; w = d*sc*(q - 32), q in 0..63.
 *   Q8_K: the activation partner of the K-quants: float scale, 256 int8 and
 *         the sums of each 16 quants (bsums).
 */
#ifndef SL_COMPUTE_QUANT_H
#define SL_COMPUTE_QUANT_H

#include "core/types.h"

#include <assert.h>
#include <stdint.h>

#define QK4_0 32
#define QK8_0 32
#define QK_K 256
#define K_SCALE_SIZE 12

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

typedef struct {
    uint16_t d;                   /* super-block scale of the sub-block scales, fp16 */
    uint16_t dmin;                /* super-block scale of the sub-block mins, fp16 */
    uint8_t scales[K_SCALE_SIZE]; /* 8 scales and 8 mins, 6 bits each (see sl_q4k_scale_min) */
    uint8_t qs[QK_K / 2];         /* 64-element chunk c: qs[32c+l] low nibble = element 64c+l, high = 64c+32+l */
} block_q4_K;
static_assert(sizeof(block_q4_K) == 144, "block_q4_K size");

typedef struct {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[K_SCALE_SIZE];
    uint8_t qh[QK_K / 8];         /* bit 2c of qh[l]: fifth bit of element 64c+l; bit 2c+1: of element 64c+32+l */
    uint8_t qs[QK_K / 2];         /* low 4 bits, laid out as in Q4_K */
} block_q5_K;
static_assert(sizeof(block_q5_K) == 176, "block_q5_K size");

typedef struct {
    uint8_t ql[QK_K / 2];      /* low 4 bits */
    uint8_t qh[QK_K / 4];      /* high 2 bits */
    int8_t scales[QK_K / 16];  /* scale of each 16 elements */
    uint16_t d;                /* fp16 */
} block_q6_K;
static_assert(sizeof(block_q6_K) == 210, "block_q6_K size");

typedef struct {
    float d;                   /* scale */
    int8_t qs[QK_K];           /* quants */
    int16_t bsums[QK_K / 16];  /* sum of each 16 quants */
} block_q8_K;
static_assert(sizeof(block_q8_K) == 292, "block_q8_K size");

/* Types without kernels of their own, read from files and kept in memory as
 * a wider type that holds the same values exactly (load time, per row):
 *   Q5_0:   32 weights, w = d*(q - 16), q in 0..31 (4 low bits in qs as
 *           Q4_0's nibbles, the fifth in bit j of qh for element j)
 *           → Q8_0 with the same d and quants q - 16;
 *   IQ4_NL: 32 weights, w = d*v[q], v the 16 int8 values of
 *           sl_iq4nl_values → Q8_0 with the same d and quants v[q];
 *   Q3_K:   16 sub-blocks of 16, w = d*(s - 32)*(q - 4*!h), s 6-bit, q 2-bit,
 *           h the high bit in hmask → Q6_K with the same d, scales s - 32 and
 *           quants q - 4*!h + 32.
 *   Q4_1, Q5_1: 32 weights, w = d*q + m, q in 0..15 / 0..31 (Q5_1's fifth
 *           bit as Q5_0's) → F32 holding d*q + m as ggml's dequantizer
 *           rounds it (no type with kernels has a per-block offset).
 * These are the types llama-quantize falls back to for rows whose length is
 * not a multiple of 256 (Q4_K → Q5_0, Q5_K → Q5_1, Q2_K/Q3_K → IQ4_NL), the
 * main type of Q3_K_S/M/L files, and the old Q4_1 / Q5_1 files. The memory
 * read per token grows accordingly (Q5_0: 34/22, IQ4_NL: 34/18, Q3_K:
 * 210/110, Q4_1: 128/20, Q5_1: 128/24). */
typedef struct {
    uint16_t d;
    uint8_t qh[4];         /* bit j (little-endian uint32): fifth bit of element j */
    uint8_t qs[QK4_0 / 2]; /* as Q4_0 */
} block_q5_0;
static_assert(sizeof(block_q5_0) == 22, "block_q5_0 size");

typedef struct {
    uint16_t d;
    uint8_t qs[QK4_0 / 2]; /* indices into sl_iq4nl_values, as Q4_0's nibbles */
} block_iq4_nl;
static_assert(sizeof(block_iq4_nl) == 18, "block_iq4_nl size");

typedef struct {
    uint16_t d, m;
    uint8_t qs[QK4_0 / 2]; /* as Q4_0 */
} block_q4_1;
static_assert(sizeof(block_q4_1) == 20, "block_q4_1 size");

typedef struct {
    uint16_t d, m;
    uint8_t qh[4];         /* as Q5_0 */
    uint8_t qs[QK4_0 / 2];
} block_q5_1;
static_assert(sizeof(block_q5_1) == 24, "block_q5_1 size");

typedef struct {
    uint8_t hmask[QK_K / 8]; /* bit 4h+j of hmask[l]: high bit of element 128h + 32j + l */
    uint8_t qs[QK_K / 4];    /* bits 2j..2j+1 of qs[32h+l]: low 2 bits of element 128h + 32j + l */
    uint8_t scales[12];      /* 16 6-bit scales: low 4 bits in nibbles, high 2 bits in bytes 8..11 */
    uint16_t d;
} block_q3_K;
static_assert(sizeof(block_q3_K) == 110, "block_q3_K size");

extern const int8_t sl_iq4nl_values[16];

/* The type t is kept in memory as (see above), or SL_TYPE_COUNT when t is
 * not widened. */
sl_type sl_type_widened(sl_type t);
/* Rewrite n elements (a multiple of t's block size) of widened type t from x
 * into y as sl_type_widened(t). Exact. */
void sl_widen_row(sl_type t, const void *x, void *y, int64_t n);

/* Scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block. */
static inline void sl_q4k_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Dequantize one row of n elements (n a multiple of the block size) of type
 * t into y. Supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K, Q8_K,
 * and the widened types (Q5_0, IQ4_NL, Q3_K, Q4_1, Q5_1).
 * Returns false for other types. */
bool sl_dequantize_row(sl_type t, const void *x, float *y, int64_t n);
/* Quantize n floats into type t (F32, F16, BF16, Q8_0, Q4_0, Q8_K). */
bool sl_quantize_row(sl_type t, const float *x, void *y, int64_t n);
/* Whether the compute layer has kernels for weight type t. */
bool sl_type_supported(sl_type t);

void sl_dequantize_row_q4_0(const block_q4_0 *x, float *y, int64_t n);
void sl_dequantize_row_q8_0(const block_q8_0 *x, float *y, int64_t n);
void sl_dequantize_row_q4_K(const block_q4_K *x, float *y, int64_t n);
void sl_dequantize_row_q5_K(const block_q5_K *x, float *y, int64_t n);
void sl_dequantize_row_q6_K(const block_q6_K *x, float *y, int64_t n);
void sl_dequantize_row_q8_K(const block_q8_K *x, float *y, int64_t n);
void sl_quantize_row_q4_0_ref(const float *x, block_q4_0 *y, int64_t n);
void sl_quantize_row_q8_0_ref(const float *x, block_q8_0 *y, int64_t n);
/* ggml's reference Q8_K quantizer: per 256, iscale = -127/max (max = the
 * element of largest magnitude, with its sign), q = round-half-even. */
void sl_quantize_row_q8_K_ref(const float *x, block_q8_K *y, int64_t n);

#endif

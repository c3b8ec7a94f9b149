/*
 * types.h — tensor element types as GGUF numbers them (ggml_type), with
 * block geometry. The numbers and block sizes are a file format: they must
 * match GGUF exactly. Types that ggml has retired (31-33, 36-38) are unknown.
 */
#ifndef SL_CORE_TYPES_H
#define SL_CORE_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum sl_type {
    SL_TYPE_F32 = 0,
    SL_TYPE_F16 = 1,
    SL_TYPE_Q4_0 = 2,
    SL_TYPE_Q4_1 = 3,
    SL_TYPE_Q5_0 = 6,
    SL_TYPE_Q5_1 = 7,
    SL_TYPE_Q8_0 = 8,
    SL_TYPE_Q8_1 = 9,
    SL_TYPE_Q2_K = 10,
    SL_TYPE_Q3_K = 11,
    SL_TYPE_Q4_K = 12,
    SL_TYPE_Q5_K = 13,
    SL_TYPE_Q6_K = 14,
    SL_TYPE_Q8_K = 15,
    SL_TYPE_IQ2_XXS = 16,
    SL_TYPE_IQ2_XS = 17,
    SL_TYPE_IQ3_XXS = 18,
    SL_TYPE_IQ1_S = 19,
    SL_TYPE_IQ4_NL = 20,
    SL_TYPE_IQ3_S = 21,
    SL_TYPE_IQ2_S = 22,
    SL_TYPE_IQ4_XS = 23,
    SL_TYPE_I8 = 24,
    SL_TYPE_I16 = 25,
    SL_TYPE_I32 = 26,
    SL_TYPE_I64 = 27,
    SL_TYPE_F64 = 28,
    SL_TYPE_IQ1_M = 29,
    SL_TYPE_BF16 = 30,
    SL_TYPE_TQ1_0 = 34,
    SL_TYPE_TQ2_0 = 35,
    SL_TYPE_MXFP4 = 39,
    SL_TYPE_COUNT = 40,
} sl_type;

typedef struct sl_type_info {
    const char *name;  /* "Q4_0"; NULL for unknown numbers */
    uint32_t blck;     /* elements per block */
    uint32_t size;     /* bytes per block */
} sl_type_info;

/* Geometry of a type, or NULL when `t` is not a known GGUF type. */
const sl_type_info *sl_type_get(uint32_t t);
const char *sl_type_name(uint32_t t); /* "?" for unknown */
/* Look a type up by name (case-insensitive); false when unknown. */
bool sl_type_from_name(const char *name, sl_type *out);
/* Bytes of a row of n elements; n must be a multiple of the block size. */
size_t sl_type_row_size(sl_type t, int64_t n);

#endif

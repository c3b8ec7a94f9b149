/*
 * types.c — the table of GGUF tensor types (see types.h).
 */
#include "types.h"

#include <strings.h>

static const sl_type_info TYPES[SL_TYPE_COUNT] = {
    [SL_TYPE_F32] = {"F32", 1, 4},
    [SL_TYPE_F16] = {"F16", 1, 2},
    [SL_TYPE_Q4_0] = {"Q4_0", 32, 18},
    [SL_TYPE_Q4_1] = {"Q4_1", 32, 20},
    [SL_TYPE_Q5_0] = {"Q5_0", 32, 22},
    [SL_TYPE_Q5_1] = {"Q5_1", 32, 24},
    [SL_TYPE_Q8_0] = {"Q8_0", 32, 34},
    [SL_TYPE_Q8_1] = {"Q8_1", 32, 36},
    [SL_TYPE_Q2_K] = {"Q2_K", 256, 84},
    [SL_TYPE_Q3_K] = {"Q3_K", 256, 110},
    [SL_TYPE_Q4_K] = {"Q4_K", 256, 144},
    [SL_TYPE_Q5_K] = {"Q5_K", 256, 176},
    [SL_TYPE_Q6_K] = {"Q6_K", 256, 210},
    [SL_TYPE_Q8_K] = {"Q8_K", 256, 292},
    [SL_TYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66},
    [SL_TYPE_IQ2_XS] = {"IQ2_XS", 256, 74},
    [SL_TYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98},
    [SL_TYPE_IQ1_S] = {"IQ1_S", 256, 50},
    [SL_TYPE_IQ4_NL] = {"IQ4_NL", 32, 18},
    [SL_TYPE_IQ3_S] = {"IQ3_S", 256, 110},
    [SL_TYPE_IQ2_S] = {"IQ2_S", 256, 82},
    [SL_TYPE_IQ4_XS] = {"IQ4_XS", 256, 136},
    [SL_TYPE_I8] = {"I8", 1, 1},
    [SL_TYPE_I16] = {"I16", 1, 2},
    [SL_TYPE_I32] = {"I32", 1, 4},
    [SL_TYPE_I64] = {"I64", 1, 8},
    [SL_TYPE_F64] = {"F64", 1, 8},
    [SL_TYPE_IQ1_M] = {"IQ1_M", 256, 56},
    [SL_TYPE_BF16] = {"BF16", 1, 2},
    [SL_TYPE_TQ1_0] = {"TQ1_0", 256, 54},
    [SL_TYPE_TQ2_0] = {"TQ2_0", 256, 66},
    [SL_TYPE_MXFP4] = {"MXFP4", 32, 17},
};

const sl_type_info *sl_type_get(uint32_t t) {
    if (t >= SL_TYPE_COUNT || TYPES[t].name == NULL) return NULL;
    return &TYPES[t];
}

const char *sl_type_name(uint32_t t) {
    const sl_type_info *ti = sl_type_get(t);
    return ti ? ti->name : "?";
}

bool sl_type_from_name(const char *name, sl_type *out) {
    for (uint32_t t = 0; t < SL_TYPE_COUNT; t++) {
        if (TYPES[t].name && strcasecmp(TYPES[t].name, name) == 0) {
            *out = (sl_type)t;
            return true;
        }
    }
    return false;
}

size_t sl_type_row_size(sl_type t, int64_t n) {
    const sl_type_info *ti = sl_type_get((uint32_t)t);
    return ti ? (size_t)(n / ti->blck) * ti->size : 0;
}

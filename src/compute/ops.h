/*
 * ops.h — the compute ops of the forward pass, scalar reference versions.
 *
 * Shapes are given per call; a "row" is one token's vector. The matmul takes
 * a weight view and a row range [r0, r1) of the output so a caller (a thread,
 * later a tensor-parallel rank) computes only its slice. Reference kernels
 * accumulate in double in a fixed order: a token's result never depends on
 * the other tokens of the batch.
 */
#ifndef SL_COMPUTE_OPS_H
#define SL_COMPUTE_OPS_H

#include "core/types.h"

#include <stdint.h>

/* A 2-D weight matrix in file layout: ne[0] = K (inputs per row), ne[1] = rows. */
typedef struct sl_tensor {
    const char *name;
    sl_type type;
    int64_t ne[2];
    size_t row_bytes;
    const void *data;
} sl_tensor;

static inline const void *sl_tensor_row(const sl_tensor *w, int64_t r) {
    return (const char *)w->data + (size_t)r * w->row_bytes;
}

/* y[t*ldy + (r - r0)] = dot(W[r, :], x[t*ldx : t*ldx + K]) for r in [r0, r1), t in [0, n_tok).
 * scratch: K floats. */
void sl_matmul_ref(const sl_tensor *w, int64_t r0, int64_t r1, const float *x, int64_t ldx, int64_t n_tok,
                   float *y, int64_t ldy, float *scratch);

/* out = x / sqrt(mean(x^2) + eps) * w, n elements. out may alias x. */
void sl_rmsnorm_ref(const float *x, const float *w, float *out, int64_t n, float eps);

/* Rotate pairs (x[2i], x[2i+1]) of the first n_rot dims of each of n_heads
 * heads (head_dim apart) by pos * base^(-2i/n_rot) / freq_factors[i]
 * (freq_factors may be NULL). NEOX style pairs (x[i], x[i + n_rot/2]) when neox. */
void sl_rope_ref(float *x, int32_t n_heads, int32_t head_dim, int32_t n_rot, int32_t pos, float base,
                 const float *freq_factors, int neox);

/* out[i] = silu(gate[i]) * up[i] */
void sl_swiglu_ref(const float *gate, const float *up, float *out, int64_t n);

/* In-place softmax of n values. */
void sl_softmax_ref(float *x, int64_t n);

#endif

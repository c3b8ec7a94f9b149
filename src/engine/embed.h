/*
 * embed.h — embeddings: how a sequence's normed final hidden states (what the
 * output matrix multiplies, sl_batch.hidden) are pooled into one vector, and
 * how that vector is normalized — llama.cpp's pooling types and its
 * embd_normalize, as `shardlm serve` (POST /v1/embeddings) and `shardlm
 * embed` use them.
 */
#ifndef SL_ENGINE_EMBED_H
#define SL_ENGINE_EMBED_H

#include "shardlm.h"

#include <stdbool.h>
#include <stdint.h>

/* Numbered as llama.cpp numbers them (its GGUF key <arch>.pooling_type). */
typedef enum sl_pooling {
    SL_POOL_NONE = 0, /* no pooling: every position's vector */
    SL_POOL_MEAN = 1, /* the mean over every position */
    SL_POOL_CLS = 2,  /* the first position's */
    SL_POOL_LAST = 3, /* the last position's (vLLM's default for decoder-only models) */
} sl_pooling;

/* "none", "mean", "cls", "last"; NULL for another value. */
const char *sl_pooling_name(sl_pooling p);
bool sl_pooling_from_name(const char *name, sl_pooling *out);

/* The pooling a model's file asks for (hp.pooling_type: mean, cls or last), else last. */
sl_pooling sl_pooling_default(int32_t pooling_type);

/* Normalize v[0, n) in place as llama.cpp's embd_normalize p says: -1 not at all, 0 scaled so that the
 * largest magnitude is 32760 (int16's range), 1 to unit taxicab norm, 2 to unit Euclidean norm, p > 2 to
 * unit p-norm. A zero vector stays zero. */
void sl_embd_normalize(float *v, int32_t n, int32_t p);

/* Pool hidden (n_pos rows of d floats, positions 0..n_pos-1) into out (d floats; sums in double). */
void sl_pool_rows(sl_pooling pooling, const float *hidden, int32_t n_pos, int32_t d, float *out);

#endif

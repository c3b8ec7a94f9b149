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
    SL_POOL_RANK = 4, /* a reranker's: one position's state through the model's classification head (sl_rank_head) */
} sl_pooling;

typedef struct sl_model sl_model;

/* "none", "mean", "cls", "last", "rank"; NULL for another value. */
const char *sl_pooling_name(sl_pooling p);
bool sl_pooling_from_name(const char *name, sl_pooling *out);

/* The pooling a model's file asks for (hp.pooling_type: mean, cls, last or rank), else last. */
sl_pooling sl_pooling_default(int32_t pooling_type);

/* Rank pooling, as llama.cpp pools a reranker: the classification head reads the first position's state (cls)
 * or, for Qwen3's rerankers, the last one's. */
sl_pooling sl_rank_position(const sl_model *m);
/* Whether m has a classification head (cls.weight or cls.output.weight) to rank with. */
bool sl_model_can_rank(const sl_model *m);
/* The head's outputs for a pooled state h (n_embd floats) into out, their number returned (n_cls_out, or n_embd
 * for a head without cls.output): cls.weight·h + cls.bias through tanh where the file has that layer, then
 * cls.output.weight·x + cls.output.bias, then (Qwen3) a softmax over the outputs — llama.cpp's rank pooling,
 * whose score is out[0]. Sums in double. out holds at least n_embd floats. */
int32_t sl_rank_head(const sl_model *m, const float *h, float *out);
/* The same head without the final softmax: its raw outputs (a classifier's logits). */
int32_t sl_cls_logits(const sl_model *m, const float *h, float *out);

/* Normalize v[0, n) in place as llama.cpp's embd_normalize p says: -1 not at all, 0 scaled so that the
 * largest magnitude is 32760 (int16's range), 1 to unit taxicab norm, 2 to unit Euclidean norm, p > 2 to
 * unit p-norm. A zero vector stays zero. */
void sl_embd_normalize(float *v, int32_t n, int32_t p);

/* Pool hidden (n_pos rows of d floats, positions 0..n_pos-1) into out (d floats; sums in double). */
void sl_pool_rows(sl_pooling pooling, const float *hidden, int32_t n_pos, int32_t d, float *out);

#endif

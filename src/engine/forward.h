/*
 * forward.h — one forward step over a flat batch of tokens.
 *
 * A batch holds tokens from any number of sequences, each with an explicit
 * position and the index of its sequence (into the `seqs` array of block
 * tables). Prefill chunks and decode tokens mix freely. For each token the
 * step writes its K/V into the sequence's blocks at its position, then
 * attends causally over positions [0, pos] of that sequence — so a
 * sequence's earlier tokens in the same batch are visible to its later ones.
 *
 * Logits are produced for tokens with want_logits set, in batch order,
 * n_vocab floats each; the normed final hidden state for those that ask. All buffers are allocated at sl_fwd_create (sized for
 * max_batch tokens); the step itself allocates nothing.
 *
 * Two paths compute the same function:
 *   - fast (the default): SIMD kernels chosen from cpuid (compute/kernels.h),
 *     activations quantized to the weight type's partner (Q8_0 / Q8_K; F32
 *     for float weights), float accumulation in a fixed order;
 *   - reference: scalar, exact dequantization, sums in double — the oracle.
 * Both are batch invariant: a token's logits are bit-identical whatever else
 * is in the batch, however its prompt was split, and whatever the thread
 * count (no reduction order depends on them).
 */
#ifndef SL_ENGINE_FORWARD_H
#define SL_ENGINE_FORWARD_H

#include "shardlm.h"
#include "core/pool.h"
#include "engine/kv.h"
#include "model/model.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct sl_batch {
    int32_t n_tokens;
    const int32_t *tokens;      /* (n_tokens) */
    const int32_t *pos;         /* (n_tokens) position of each token in its sequence */
    const int32_t *seq;         /* (n_tokens) index into seqs[] */
    const uint8_t *want_logits; /* (n_tokens) SL_WANT_* bits; NULL = logits of the last token only */
    /* Where the rows wanting SL_WANT_HIDDEN go, in batch order: the final
     * hidden state after the output norm (what the output matrix multiplies,
     * llama.cpp's result_norm; embeddings pool it), n_embd floats each. NULL
     * when no token wants it. */
    float *hidden;
} sl_batch;

#define SL_WANT_LOGITS 1 /* the token's logits */
#define SL_WANT_HIDDEN 2 /* its normed final hidden state (sl_batch.hidden) */

typedef struct sl_fwd sl_fwd;

typedef struct sl_fwd_params {
    int32_t max_batch;   /* tokens per step */
    int32_t n_ctx;       /* longest sequence (positions) */
    int32_t n_threads;
    bool reference;      /* force the scalar reference path (else: the process default, see below) */
    const char *kernels; /* fast path kernel table: NULL = best for this CPU, or "scalar", "avx2", "avx512" */
    bool round_acts;     /* reference path only: round each matmul input exactly as the fast path quantizes it
                          * (an oracle that isolates activation rounding from float32 accumulation) */
    /* Another forward's thread pool to run on (sl_fwd_pool; n_threads is then its count), so two forwards
     * stepped in turn by one thread (a draft model's and its target's) share one set of workers; NULL: the
     * forward makes its own. The pool must outlive this forward. */
    sl_pool *pool;
} sl_fwd_params;

/* Process-wide default for forwards created with reference = false
 * (initially false: the fast path). Tests that compare against float64
 * references set it to true. */
void sl_fwd_set_default_reference(bool reference);
bool sl_fwd_default_reference(void);
/* "reference" or the fast path's kernel table ("avx512", "avx2", "scalar"). */
const char *sl_fwd_path_name(const sl_fwd *f);

sl_status sl_fwd_create(const sl_model *m, sl_kv_cache *kv, const sl_fwd_params *p, sl_fwd **out);
/* The forward's thread pool (for sl_fwd_params.pool). */
sl_pool *sl_fwd_pool(const sl_fwd *f);
void sl_fwd_destroy(sl_fwd *f);

/* Run one step. logits: (number of tokens wanting logits, n_vocab). A token
 * that wants only its hidden state skips the output matmul. Errors
 * (bad token id, position past the sequence's blocks or n_ctx) are reported
 * before anything is computed. */
sl_status sl_fwd_step(sl_fwd *f, const sl_batch *b, sl_kv_seq *const *seqs, int32_t n_seqs, float *logits);

#endif

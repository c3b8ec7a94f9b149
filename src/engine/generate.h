/*
 * generate.h — single-sequence generation on top of the forward step: the
 * prompt is prefilled in chunks of up to `max_batch` tokens, then one token
 * per step is sampled and fed back. Used by `shardlm run`, `shardlm logits`
 * and the end-to-end tests; the server's scheduler drives sl_fwd_step itself.
 */
#ifndef SL_ENGINE_GENERATE_H
#define SL_ENGINE_GENERATE_H

#include "shardlm.h"
#include "engine/grammar.h"
#include "engine/sampler.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct sl_gen_params {
    int32_t n_predict;        /* tokens to generate; < 0: until EOS or the context is full */
    int32_t n_ctx;            /* 0: the model's context length */
    int32_t n_threads;
    int32_t max_batch;        /* prefill chunk (0: 512) */
    bool ignore_eos;          /* keep going past end-of-generation tokens */
    sl_sampler_params sampling;
    /* n-gram speculation (engine/ngram.h): tokens proposed per step, at most
     * 16 (0: off), and the n-gram lengths looked up (0, 0: 2 to 4). The
     * output is the same with it or without. */
    int32_t spec_tokens, spec_lookup_min, spec_lookup_max;
    /* A grammar the output follows (engine/grammar.h; NULL: none): only
     * tokens that keep it the start of a sentence are sampled, end of
     * generation only once it is a whole one, and generation stops
     * (SL_FINISH_STOP) when nothing may follow or no token can. */
    const sl_grammar *grammar;
    /* DRY's sequence breakers (sampling.dry_*; engine/sampler.h), NULL: none. */
    const sl_dry_breakers *dry_breakers;
    /* A draft model of the same vocabulary (NULL: none): it reads the sequence and proposes up to draft_max
     * tokens a step, greedily, stopping before one it gives less than draft_p_min, instead of the n-gram
     * lookup; checked the same way, the output is the same. It runs on the model's threads. */
    const sl_model *draft;
    int32_t draft_max;
    float draft_p_min;
} sl_gen_params;

/* Called for each generated token with the logits it was sampled from.
 * Return false to stop. */
typedef bool (*sl_gen_cb)(void *ud, int32_t id, const float *logits, int32_t n_vocab);

typedef enum sl_finish { SL_FINISH_LENGTH = 0, SL_FINISH_STOP, SL_FINISH_CALLER } sl_finish;

sl_status sl_generate(const sl_model *m, const int32_t *prompt, int32_t n_prompt, const sl_gen_params *p,
                      sl_gen_cb cb, void *ud, int32_t *n_generated, sl_finish *finish);

/* Teacher-forced evaluation: run tokens[0..n) as one sequence and write the
 * logits after each of the last n_out positions into logits (n_out, n_vocab). */
sl_status sl_eval_logits(const sl_model *m, const int32_t *tokens, int32_t n, int32_t n_out, int32_t n_threads,
                         float *logits);

/* The normed final hidden state (what the output matrix multiplies; an
 * embedding pools it) of every position of tokens[0..n), run as one
 * sequence in one step, into hidden (n, n_embd). */
sl_status sl_eval_hidden(const sl_model *m, const int32_t *tokens, int32_t n, int32_t n_threads, float *hidden);

#endif

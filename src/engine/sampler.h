/*
 * sampler.h — choose the next token from logits.
 *
 * Order (as llama.cpp's default chain): logit bias → penalties (repetition over the last
 * repeat_last_n tokens, presence, frequency) → greedy when temperature <= 0
 * (argmax, ties to the lowest id) → top-k → top-p → min-p → temperature →
 * softmax → draw. The draw uses sl_rng_uniform(seed, stream, position): the
 * same (seed, stream, position, logits, history) always picks the same token.
 * Logit bias and min_tokens suppression (sl_sampler_set_adjust) come first.
 * All scratch memory is allocated at create; sampling allocates nothing.
 * A NaN logit counts as -inf; history ids outside the vocabulary are
 * ignored by the penalties. sl_sampler_create rejects non-finite or
 * out-of-range parameters (SL_ERR_INVALID naming the parameter).
 */
#ifndef SL_ENGINE_SAMPLER_H
#define SL_ENGINE_SAMPLER_H

#include "shardlm.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct sl_sampler_params {
    float temperature;       /* <= 0: greedy */
    int32_t top_k;           /* <= 0: off */
    float top_p;             /* in (0, 1]; 1: off */
    float min_p;             /* in [0, 1]; 0: off */
    float repeat_penalty;    /* > 0; 1: off */
    int32_t repeat_last_n;   /* tokens of history the penalties look at; -1: all */
    float presence_penalty;  /* 0: off */
    float frequency_penalty; /* 0: off */
    uint64_t seed;
} sl_sampler_params;

/* Defaults as llama.cpp: temp 0.8, top_k 40, top_p 0.95, min_p 0.05,
 * repeat_penalty 1.0 (off), repeat_last_n 64, seed 0. */
sl_sampler_params sl_sampler_default_params(void);

typedef struct sl_sampler sl_sampler;

sl_status sl_sampler_create(const sl_sampler_params *p, int32_t n_vocab, sl_sampler **out);
void sl_sampler_destroy(sl_sampler *s);

/* One request's logit adjustments (OpenAI's logit_bias; vLLM's min_tokens,
 * allowed_token_ids and bad_words), applied to the logits before the
 * penalties, as llama.cpp's chain does: bias[i] is added to token
 * bias_ids[i]'s logit (an id listed twice gets both); while the history
 * holds fewer than suppress_until tokens, the tokens suppress[] get -inf (no
 * end of generation before min_tokens); with n_allow > 0 every token not in
 * allow[] gets -inf; bad words are n_bad token sequences, bad_len[i] ids
 * each, one after another in bad[]: a sequence's last token gets -inf when
 * the tokens before it end the output (the history from bad_from on), so
 * the output never contains one (vLLM's rule: a one-token word is never
 * sampled). Probabilities reported by sl_logprobs_top stay those of the
 * raw logits. */
typedef struct sl_logit_adjust {
    const int32_t *bias_ids;
    const float *bias;
    int32_t n_bias;
    const int32_t *suppress;
    int32_t n_suppress;
    int64_t suppress_until;
    const int32_t *allow;
    int32_t n_allow;
    const int32_t *bad;
    const int32_t *bad_len;
    int32_t n_bad;
    int64_t bad_from;
} sl_logit_adjust;

/* Copy the adjustments into the sampler (replacing earlier ones; NULL or
 * empty lists clear them). Rejects ids outside [0, n_vocab) and non-finite
 * biases (SL_ERR_INVALID naming the entry); on failure the sampler keeps
 * no adjustment. Allocates here, never while sampling. */
sl_status sl_sampler_set_adjust(sl_sampler *s, const sl_logit_adjust *a);

/* Pick a token. `history` is the sequence so far (prompt and generated);
 * `stream` identifies the sequence (request id), `position` the position of
 * the token being chosen. Logits are not modified. Returns -1 when no token
 * can be chosen: every logit is -inf or NaN once adjusted (an allow list the
 * caller's own mask refuses whole, say). */
int32_t sl_sampler_sample(sl_sampler *s, const float *logits, const int32_t *history, int64_t n_history,
                          uint64_t stream, uint64_t position);

/* The distribution the draw of sl_sampler_sample uses, for inspection
 * (tests, logging, speculative decoding): after penalties, filters and
 * temperature, the candidates in draw order (logit desc, ties by id asc) and
 * their probabilities (summing to 1). Returns the count; *ids and *probs
 * point into the sampler's scratch and stay valid until its next call.
 * Greedy gives one candidate with probability 1. Allocates nothing. */
int32_t sl_sampler_candidates(sl_sampler *s, const float *logits, const int32_t *history, int64_t n_history,
                              const int32_t **ids, const double **probs);

/* Log-probabilities of the raw logits (log-softmax, in double): the k most
 * likely (id, logprob) pairs, highest first (ties: lower id first); returns
 * how many (min(k, n_vocab)). Also gives the logprob of `chosen` in
 * *chosen_lp when non-NULL (-inf when chosen is not in [0, n_vocab)).
 * A NaN logit counts as -inf. Pure: no state, no allocation. */
int32_t sl_logprobs_top(const float *logits, int32_t n_vocab, int32_t k, int32_t *ids, float *logprobs,
                        int32_t chosen, float *chosen_lp);

#endif

/*
 * beam.h — beam search over the scheduler, as vLLM's use_beam_search runs
 * it: each step every live beam is a request of one token whose 2 x width
 * most likely next tokens (log probabilities of the raw logits) extend it;
 * an end-of-generation token ends a beam (unless ignore_eos), the others are
 * ranked and the best `width` go on. After max_tokens steps the ended beams
 * and the live ones are ranked together and the best `width` are the answer.
 * A beam's score is the sum of its tokens' log probabilities over its length
 * (the prompt's tokens included, an ending token not) to the power
 * length_penalty; ties keep the order the beams were found in. The steps'
 * requests share the prompt's and the beams' KV blocks through the prefix
 * cache, which is what makes a step cheap. With logprobs asked for, each
 * output token carries its log probability and the most likely alternatives
 * at its position (as vLLM's beam search returns them).
 */
#ifndef SL_SERVER_BEAM_H
#define SL_SERVER_BEAM_H

#include "server/sched.h"
#include "tokenizer/tokenizer.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct sl_beam {
    int32_t *ids;       /* the output's tokens (an ending token left out) */
    int32_t n;
    double cum_logprob; /* their log probabilities' sum (an ending token's included) */
    double score;
    bool ended;         /* ended by an end-of-generation token ("stop"); else it ran to max_tokens ("length") */
    sl_tok_out *lp;     /* with cfg.logprobs >= 0: each output token's log probability and alternatives (n), else NULL */
} sl_beam;

typedef struct sl_beam_cfg {
    int32_t width;           /* 1 .. SL_MAX_TOP_LOGPROBS / 2 */
    int32_t max_tokens;      /* >= 1 */
    bool ignore_eos;
    double length_penalty;
    int32_t logprobs;        /* -1: none; else each output token's log probability with this many alternatives (<= 20) */
    const sl_req_params *base; /* the steps' requests take its adapter and cache salt */
    const sl_tokenizer *tok;   /* which tokens end generation */
    /* polled while a step runs: true when the client has gone (the search then stops, SL_ERR_CLOSED) */
    bool (*gone)(void *ctx);
    void *ctx;
} sl_beam_cfg;

/* Beam search of prompt[0, n_prompt): the best beams in out[0, *n_out) (at most width; free with
 * sl_beam_free), best first. */
sl_status sl_beam_search(sl_sched *s, const int32_t *prompt, int32_t n_prompt, const sl_beam_cfg *cfg, sl_beam *out,
                         int32_t *n_out);
void sl_beam_free(sl_beam *b, int32_t n);

#endif

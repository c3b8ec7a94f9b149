/*
 * ngram.h — n-gram speculation (prompt lookup), shared by the server's
 * scheduler and `shardlm run`: a sequence whose last lookup_max ..
 * lookup_min tokens occurred earlier in it proposes the tokens that followed
 * the latest occurrence. The caller computes them in the step of its next
 * token and keeps each while it is the token sampled at its position; the
 * logits at a position are the same bits however many tokens a step computes
 * and the draw is keyed by position, so the output does not change.
 *
 * How many to propose adapts per sequence: one more than were kept last time
 * (doubling while all are, up to `max`); after proposals of which none was
 * kept, wait 1, 3, 7 .. 31 steps — a step that checks proposals that miss
 * costs more than a one-token step.
 *
 * With a prediction of the output (OpenAI's Predicted Outputs: the text a
 * model is expected to write again, an edited file), the proposals come from
 * it first.
 *
 * A draft model (a smaller one of the same vocabulary) proposes instead where
 * the callers have one: sl_spec_draft_vocab checks that it is one,
 * sl_spec_draft_pick reads its proposal from its logits.
 */
#ifndef SL_ENGINE_NGRAM_H
#define SL_ENGINE_NGRAM_H

#include "shardlm.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>

/* Tokens one proposal may hold at most (the callers' buffers). */
#define SL_SPEC_MAX_TOKENS 16

typedef struct sl_spec {
    int32_t max;                    /* tokens per proposal at most (0: off) */
    int32_t lookup_min, lookup_max; /* n-gram lengths looked up */
    int32_t k;                      /* how many to propose next */
    int32_t misses;                 /* proposals in a row of which none was kept */
    int32_t wait;                   /* steps to wait before proposing again */
    /* A prediction of the output (OpenAI's Predicted Outputs; sl_spec_predict), or NULL: looked at first */
    const int32_t *pred;
    int32_t n_pred, n_prompt; /* its tokens; the history's prompt (what comes after it is the output) */
    int32_t pred_at;          /* where in it the output is thought to be */
    int32_t pred_from;        /* where the last proposal began in it, or -1: not from it */
} sl_spec;

void sl_spec_init(sl_spec *s, int32_t max, int32_t lookup_min, int32_t lookup_max);
/* Look first at pred[0, n_pred) (the caller's, kept while s is used): an output (the history after its first
 * n_prompt tokens) that so far is the prediction's start proposes what follows it there; otherwise the last
 * n-gram is looked up in the prediction, nearest after where the output was last, then in the history. */
void sl_spec_predict(sl_spec *s, const int32_t *pred, int32_t n_pred, int32_t n_prompt);
/* Tokens proposed after h[0..n) into draft (at most kmax, and at most s->k);
 * 0 while waiting or when the last tokens did not occur before. */
int32_t sl_spec_propose(sl_spec *s, const int32_t *h, int32_t n, int32_t kmax, int32_t *draft);
/* After a proposal of n tokens of which `kept` were kept. */
void sl_spec_update(sl_spec *s, int32_t n, int32_t kept);

/* SL_OK when a draft model's vocabulary (draft) is the model's (target), token by token; else an error naming
 * the first difference. */
sl_status sl_spec_draft_vocab(const sl_tokenizer *target, const sl_tokenizer *draft);
/* A draft model's proposal from its logits: the most likely token (the lowest id of equals), and in *prob its
 * probability. */
int32_t sl_spec_draft_pick(const float *logits, int32_t n_vocab, float *prob);

#endif

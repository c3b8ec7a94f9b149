/*
 * sampler.h — choose the next token from logits.
 *
 * The chain is llama.cpp's: logit bias (and the other sl_logit_adjust
 * lists) → the stages in order, by default penalties (repetition over the
 * last repeat_last_n tokens, presence, frequency) → DRY → top-n-sigma →
 * top-k → typical-p → top-p → min-p → XTC → temperature (dynamic with
 * dynatemp_range > 0; <= 0: the best candidate alone, ties to the lowest
 * id) → the draw. A custom order (stages[]) runs the named stages only. With
 * mirostat 1 or 2 the chain is logit bias → temperature → mirostat, as
 * llama.cpp's. The draw uses sl_rng_uniform(seed, stream, position) and
 * XTC's coin another stream of the same key: the same (seed, stream,
 * position, logits, history) always picks the same token. Mirostat's
 * target surprise mu is the one state kept between calls (each
 * sl_sampler_sample moves it). All scratch memory is allocated at create
 * and by the set functions; sampling allocates nothing. A NaN logit counts
 * as -inf; history ids outside the vocabulary are ignored by the penalties
 * and DRY. sl_sampler_create rejects non-finite or out-of-range parameters
 * (SL_ERR_INVALID naming the parameter).
 */
#ifndef SL_ENGINE_SAMPLER_H
#define SL_ENGINE_SAMPLER_H

#include "shardlm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Stages of the chain, for a custom order (sl_sampler_params.stages). */
typedef enum sl_samp_stage {
    SL_SAMP_PENALTIES = 1,
    SL_SAMP_DRY,
    SL_SAMP_TOP_N_SIGMA,
    SL_SAMP_TOP_K,
    SL_SAMP_TYPICAL_P,
    SL_SAMP_TOP_P,
    SL_SAMP_MIN_P,
    SL_SAMP_XTC,
    SL_SAMP_TEMPERATURE,
    SL_SAMP_INFILL, /* llama.cpp's infill sampler (code completion): needs sl_sampler_set_infill */
} sl_samp_stage;
#define SL_SAMPLER_MAX_STAGES 16

/* The stage llama.cpp names `name` (len bytes): penalties, dry,
 * top_n_sigma, top_k, typ_p, top_p, min_p, xtc, temperature, infill, or one of
 * their other spellings (top-k, typical_p, typical, nucleus, temp, ...);
 * 0 when none. */
int sl_samp_stage_by_name(const char *name, size_t len);
/* The stage of a letter of llama.cpp's sampling sequence (e d s k y p m x
 * t i); 0 when none. */
int sl_samp_stage_by_letter(char c);

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
    /* llama.cpp's further samplers */
    float typical_p;          /* locally typical sampling, in [0, 1]; 1: off */
    float top_n_sigma;        /* keep logits within n standard deviations of the best; <= 0: off */
    float xtc_probability;    /* chance that XTC cuts, in [0, 1]; 0: off */
    float xtc_threshold;      /* XTC cuts the tokens above this probability but the least likely of them; > 0.5: off */
    float dynatemp_range;     /* temperature in [temperature - range, temperature + range] by the entropy; 0: off */
    float dynatemp_exponent;  /* >= 0 */
    float dry_multiplier;     /* DRY ("don't repeat yourself") penalty scale, >= 0; 0: off */
    float dry_base;           /* >= 0; below 1: DRY off */
    int32_t dry_allowed_length; /* repeats up to this long go unpunished, >= 0 */
    int32_t dry_penalty_last_n; /* history DRY looks at; -1: all (up to n_ctx); 0: off */
    int32_t n_ctx;            /* longest history DRY looks at (its scratch); 0: 4096 */
    int32_t mirostat;         /* 0: off; 1 or 2: mirostat (v1, v2) replaces the stages */
    float mirostat_tau;       /* target surprise (bits), >= 0 */
    float mirostat_eta;       /* learning rate, >= 0 */
    int32_t min_keep;         /* top-p, min-p, typical-p and XTC keep at least this many, >= 0 */
    bool custom_order;        /* true: stages[0..n_stages) replace the default order */
    int32_t n_stages;
    uint8_t stages[SL_SAMPLER_MAX_STAGES]; /* sl_samp_stage values */
} sl_sampler_params;

/* Defaults as llama.cpp: temp 0.8, top_k 40, top_p 0.95, min_p 0.05,
 * repeat_penalty 1.0 (off), repeat_last_n 64, seed 0; typical_p 1,
 * top_n_sigma -1, XTC 0 / 0.1, dynatemp 0 / 1, DRY 0 / 1.75 / 2 / -1,
 * mirostat 0 / 5 / 0.1, min_keep 0, the default order. */
sl_sampler_params sl_sampler_default_params(void);

typedef struct sl_sampler sl_sampler;

sl_status sl_sampler_create(const sl_sampler_params *p, int32_t n_vocab, sl_sampler **out);

/* The vocabulary the infill stage reads (end-of-generation tokens, token
 * texts, EOT). llama.cpp's infill sampler, over the candidates so far: when
 * the end-of-generation tokens hold more than a third of the text tokens'
 * mass per candidate, only they stay; else a token whose text starts
 * another's takes that one's probability (the likelier keeps both), text
 * tokens under 0.2 go, then those under 1 / (text tokens + 1); with no text
 * token left, EOT (else EOS) alone. The merging looks at the 4,096 likeliest
 * candidates at most (llama.cpp compares every pair). */
struct sl_tokenizer;
sl_status sl_sampler_set_infill(sl_sampler *s, const struct sl_tokenizer *tok); /* (allocates only for that stage) */
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

/* The distribution the draw of sl_sampler_sample(s, logits, history,
 * n_history, 0, n_history) uses, for inspection (tests, logging): after the
 * stages (or mirostat's cut at its current mu), the candidates in draw order
 * (logit desc, ties by id asc) and their probabilities (summing to 1).
 * Returns the count; *ids and *probs point into the sampler's scratch and
 * stay valid until its next call. Greedy gives one candidate with
 * probability 1. Moves nothing (mirostat's mu stays); allocates nothing. */
int32_t sl_sampler_candidates(sl_sampler *s, const float *logits, const int32_t *history, int64_t n_history,
                              const int32_t **ids, const double **probs);

/* DRY's sequence breakers: token sequences (a head token and the tokens
 * after it) that end a repeat: DRY matches no repeat across one, and never
 * punishes a token that is a breaker alone. n sequences; sequence i is
 * head[i] followed by tail[off[i]..off[i+1]). */
typedef struct sl_dry_breakers {
    int32_t n;
    int32_t *head;
    int32_t *off; /* (n + 1) */
    int32_t *tail;
} sl_dry_breakers;

/* llama.cpp's breakers for strings: every token whose text (control tokens
 * rendered) contains a string is a breaker alone; a token whose text ends
 * with the string's beginning is a head, the rest of the string tokenized
 * (at most 20 tokens) its tail. Strings longer than 40 bytes are cut there.
 * NULL strings or empty ones are refused (SL_ERR_INVALID). */
sl_status sl_dry_breakers_build(const sl_tokenizer *tok, const char *const *strs, const size_t *lens, int n,
                                sl_dry_breakers **out);
void sl_dry_breakers_free(sl_dry_breakers *b);
#define SL_DRY_MAX_BREAKERS 64 /* strings per set */
/* The same from a JSON array of strings (what its errors call it: `what`),
 * or llama.cpp's four ("\n", ":", "\"", "*") when `a` is NULL. An empty
 * array gives no breakers (*out NULL) where allow_empty, else is refused;
 * anything but an array of at most SL_DRY_MAX_BREAKERS non-empty strings is
 * refused (SL_ERR_INVALID naming `what`). */
struct json_t;
sl_status sl_dry_breakers_from_json(const sl_tokenizer *tok, const struct json_t *a, const char *what, bool allow_empty,
                                    sl_dry_breakers **out);

/* Whether these parameters turn DRY on (multiplier not 0, base >= 1, a
 * window): only then do breakers matter. */
bool sl_sampler_dry_on(const sl_sampler_params *p);

/* Copy the breakers into the sampler (replacing earlier ones; NULL: none).
 * Rejects ids outside the vocabulary (SL_ERR_INVALID). */
sl_status sl_sampler_set_dry_breakers(sl_sampler *s, const sl_dry_breakers *b);

/* Mirostat's current target surprise mu (2 tau at create). */
float sl_sampler_mirostat_mu(const sl_sampler *s);
/* Move mu as sl_sampler_sample does when it draws `token` from these logits
 * (replaying an output another replica produced). Returns false, leaving mu,
 * when mirostat is off or the token is not among mirostat's candidates. */
bool sl_sampler_mirostat_observe(sl_sampler *s, const float *logits, const int32_t *history, int64_t n_history,
                                 int32_t token);

/* Log-probabilities of the raw logits (log-softmax, in double): the k most
 * likely (id, logprob) pairs, highest first (ties: lower id first); returns
 * how many (min(k, n_vocab)). Also gives the logprob of `chosen` in
 * *chosen_lp when non-NULL (-inf when chosen is not in [0, n_vocab)).
 * A NaN logit counts as -inf. Pure: no state, no allocation. */
int32_t sl_logprobs_top(const float *logits, int32_t n_vocab, int32_t k, int32_t *ids, float *logprobs,
                        int32_t chosen, float *chosen_lp);

#endif

/*
 * sched.h — the engine of `shardlm serve`: requests, the continuous-batching
 * scheduler thread, and the output channel each request streams through.
 *
 * Threads: HTTP threads create requests and submit them; one scheduler
 * thread owns the model state (KV blocks, forward buffers, samplers) and is
 * the only one touching it. Every step it admits waiting requests under a
 * token budget (first come, first served; long prompts in chunks), runs one
 * forward step over decode tokens and prompt chunks mixed, samples, and
 * appends output to each request's channel (mutex + condition variable).
 * HTTP threads read the channel and may set `cancelled`; the scheduler
 * frees a cancelled request's blocks within one step.
 *
 * A request is refcounted: the HTTP side and the scheduler each hold one
 * reference; the last release frees it.
 */
#ifndef SL_SERVER_SCHED_H
#define SL_SERVER_SCHED_H

#include "shardlm.h"
#include "engine/embed.h"
#include "engine/thinkbudget.h"
#include "engine/grammar.h"
#include "engine/trigger.h"
#include "engine/jsonguide.h"
#include "engine/ngram.h"
#include "engine/sampler.h"
#include "server/kvmgr.h"
#include "server/metrics.h"
#include "tokenizer/tokenizer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define SL_MAX_TOP_LOGPROBS 20
#define SL_MAX_STOP 8
#define SL_MAX_STOP_IDS 64
#define SL_MAX_LOGIT_BIAS 1024
#define SL_MAX_BAD_WORDS 64          /* vLLM's bad_words per request */
#define SL_MAX_BAD_WORD_TOKENS 2048  /* their token sequences' ids together */

typedef enum sl_finish_reason {
    SL_FR_NONE = 0,
    SL_FR_STOP,    /* EOS/EOT token or a stop string */
    SL_FR_LENGTH,  /* max_tokens or the context is full */
    SL_FR_ABORT,   /* cancelled (client gone) or engine failure */
} sl_finish_reason;

/* The clock of a request's times (t_submit, t_first_token...): monotonic seconds. */
double sl_sched_now_s(void);
const char *sl_finish_reason_str(sl_finish_reason r);

typedef struct sl_req_params {
    int32_t max_tokens;
    int32_t priority;       /* vLLM's: lower is served first (with sl_sched_params.priority_policy; else 0) */
    sl_sampler_params sampling;
    bool ignore_eos;
    int32_t n_stop;
    char *stop[SL_MAX_STOP];
    int32_t logprobs;       /* -1: off; else how many top alternatives (0..20) */
    uint32_t adapter;       /* LoRA adapter id (0 = base model) */
    /* Resuming a stream another engine started (a router's failover): the
     * last resume_generated prompt tokens are that stream's output, of whose
     * text the client already has resume_text_sent bytes. They are replayed
     * through the detokenizer and the stop-string matcher, so text the other
     * engine still held back (a possible stop string, an incomplete UTF-8
     * character) is released here; 0: an ordinary request. With
     * max_tokens 0 (the other engine produced every token it was allowed
     * and failed before its final event) nothing is computed: the held-back
     * text is released and the request finishes with "length". */
    int32_t resume_generated;
    int64_t resume_text_sent;
    /* OpenAI's logit_bias: bias_vals[i] is added to token bias_ids[i]'s logit
     * before sampling (n_bias <= SL_MAX_LOGIT_BIAS). sl_req_create copies the
     * lists into the request's sampler; the request keeps none (its n_bias is 0). */
    int32_t n_bias;
    int32_t *bias_ids;
    float *bias_vals;
    /* vLLM's min_tokens: end-of-generation tokens (unless ignore_eos) and
     * stop_ids cannot be sampled before the output has this many tokens (a
     * resumed stream's replayed tokens count). */
    int32_t min_tokens;
    /* vLLM's stop_token_ids: sampling one of these ends the request with
     * "stop"; its text stays in the output, as vLLM keeps the text of stop
     * tokens that are not special. */
    int32_t n_stop_ids;
    int32_t stop_ids[SL_MAX_STOP_IDS];
    /* Completions' echo: the client gets the prompt back, so max_tokens may
     * be 0. With logprobs >= 0 the prompt's tokens get theirs too (sl_req.plp):
     * every prompt position is computed (no prefix-cache reuse for this
     * request), at most SL_PLP_ROWS of them per step. */
    bool echo;
    /* llama.cpp's n_predict 0: the prompt is computed (its KV blocks then
     * cached) and nothing generated; the request finishes "length". */
    bool prefill_only;
    /* vLLM's prompt_logprobs: -1 off, else the prompt's tokens get their
     * logprobs, ranks and this many top alternatives (sl_req.plp, computed as
     * for echo). */
    int32_t prompt_logprobs;
    /* Structured output (response_format json_object or json_schema): only
     * tokens that keep the output the start of an answer valid for this
     * compiled schema can be sampled, and the request ends ("stop") when the
     * answer is complete (engine/jsonguide.h). NULL: free text. The request
     * takes its own reference. */
    sl_json_schema *schema;
    /* Or a grammar (llama.cpp's grammar, vLLM's guided_grammar; GBNF,
     * engine/grammar.h): only tokens that keep the output the start of a
     * sentence of it, end of generation once it is a whole one, and the
     * request ends ("stop") when nothing may follow. The request takes its
     * own reference. */
    sl_grammar *grammar;
    /* llama.cpp's grammar_lazy: the schema or grammar above waits for one of
     * these triggers (engine/trigger.h); until then the output is free, then
     * the guide reads it from the trigger on. NULL: not lazy. The request
     * takes its own reference. */
    sl_triggers *triggers;
    /* vLLM's allowed_token_ids (n_allow > 0: only these may be sampled) and
     * bad_words (n_bad token sequences, bad_lens[i] ids each, one after
     * another in bad_ids: the output never contains one; engine/sampler.h).
     * sl_req_create copies them into the request's sampler, as the biases. */
    int32_t n_allow;
    int32_t *allow_ids;
    int32_t n_bad;
    int32_t *bad_ids;
    int32_t *bad_lens;
    /* DRY's sequence breakers (sampling.dry_*; engine/sampler.h), NULL: none.
     * sl_req_create copies them into the request's sampler, as the biases. */
    sl_dry_breakers *dry_breakers;
    /* vLLM's include_stop_str_in_output: the stop string that ends the
     * output stays at the end of its text. */
    bool include_stop_str;
    /* vLLM's skip_special_tokens = false: every control token the output
     * holds shows as its text (end of generation that ends it does not). */
    bool show_special;
    /* An embedding request (embed, max_tokens 0): the prompt is computed
     * and nothing generated; its normed final hidden states are pooled into
     * sl_req.embd (pooling none: every position's, n_prompt vectors, as they
     * are), then normalized as llama.cpp's embd_normalize says: -1 not, 0
     * scaled so the largest magnitude is 32760, 1 to unit taxicab norm, 2 to
     * unit Euclidean norm, p > 2 to unit p-norm. Unless pooled from the last
     * position, every position is computed (no prefix-cache reuse); the
     * prompt may fill the whole context. */
    /* llama.cpp's t_max_predict_ms (0: off): at a token whose text holds a
     * line break, the request ends ("length") once this many milliseconds
     * have passed since its first token. */
    double t_max_predict_ms;
    /* llama.cpp's n_indent (0: off): a line of the output that starts with
     * less indentation (spaces, tabs) than this ends the request ("length"),
     * checked as llama.cpp does it, a token after the line break showed;
     * with indent_cut (a whole answer, not a stream) the output is cut where
     * that line's text starts. */
    int32_t n_indent;
    bool indent_cut;
    bool embed;
    sl_pooling pooling;
    int32_t normalize;
    /* Control tokens the output text shows as their text (the markers of a
     * tool-call syntax that are control tokens, server/toolcall.h); others,
     * and end-of-generation tokens, never reach the text. */
    int32_t show_ids[SL_DETOK_SHOW_MAX];
    int n_show_ids;
    /* A reasoning budget (engine/thinkbudget.h; -1: none): once the
     * thinking block (opened by think_start's tokens in the output, or by
     * the prompt: think_open) has think_budget tokens, think_forced's tokens
     * come next whatever the logits say; think_end's ending the block first
     * ends the count. Not with structured output. sl_req_create copies the
     * lists. */
    /* vLLM's cache_salt: the request's prefix-cache blocks are keyed from
     * this salt (server/kvmgr.h), shared only with requests of the same. */
    bool has_cache_salt;
    uint8_t cache_salt[32];
    /* OpenAI's Predicted Outputs: the output as the client expects it (token ids), which speculation proposes
     * from first (engine/ngram.h) — with or without --spec-ngram; the output is the same either way.
     * sl_req_create copies them. */
    const int32_t *pred_ids;
    int32_t n_pred;
    int32_t think_budget;
    bool think_open;
    int32_t n_think_start, n_think_end, n_think_forced;
    const int32_t *think_start, *think_end, *think_forced;
} sl_req_params;

/* Prompt positions whose logits one step computes for echo with logprobs. */
#define SL_PLP_ROWS 32
/* Proposed tokens one step computes (n-gram speculation), and per sequence. */
#define SL_SPEC_ROWS 64
#define SL_MAX_SPEC SL_SPEC_MAX_TOKENS

/* One generated token as the channel reports it. */
typedef struct sl_tok_out {
    int32_t id;
    float logprob;
    int32_t rank; /* a prompt token's with prompt_logprobs: 1 + the tokens more likely; else 0 */
    int32_t n_top;
    int32_t top_ids[SL_MAX_TOP_LOGPROBS];
    float top_lps[SL_MAX_TOP_LOGPROBS];
} sl_tok_out;

typedef struct sl_req sl_req;
struct sl_req {
    /* scheduler lists (intrusive) */
    sl_req *next, *prev;
    _Atomic int refs;
    uint64_t id;
    sl_req_params p;
    int32_t *tokens;        /* prompt then generated, capacity cap_tokens */
    int32_t n_prompt, n_tokens, cap_tokens;
    int32_t max_ctx;        /* n_prompt + max_tokens, clamped to the context */
    atomic_bool cancelled;
    double t_submit;        /* seconds, monotonic (sl_sched_now_s) */

    /* scheduler-private */
    int state;
    int32_t n_computed;
    sl_kvm_seq kv;
    sl_sampler *sampler;
    sl_detok detok;
    char *held;             /* text held back: may be the start of a stop string */
    size_t n_held, cap_held;
    double t_last_token;
    int32_t n_cached_prompt; /* prompt tokens served from the prefix cache at first admission */
    bool admitted_once;
    sl_json_state json;     /* structured output: the output so far */
    sl_gram_state *gram;    /* a grammar's reading of the output so far (p.grammar) */
    bool awaiting;          /* a lazy guide (p.triggers) not yet triggered: the output is free so far */
    char *tbuf;             /* ... and that output's text, which the triggers look for */
    size_t tlen, tcap;
    int32_t n_draft;        /* tokens proposed in this step's batch (n-gram speculation) */
    int32_t *pred;          /* its prediction (p.pred_ids copied), or NULL */
    int32_t spec_proposed, spec_accepted; /* proposed tokens in all, and those kept (written before it finishes) */
    int32_t draft[SL_MAX_SPEC];
    sl_spec spec;           /* its n-gram speculation (engine/ngram.h) */
    /* a draft model's reading of it (sl_sched_params.draft): its KV blocks, the positions they hold (the
     * sequence's tokens up to there), and the tokens it proposed for this step */
    sl_kv_seq dkv;
    int32_t d_computed;
    int32_t n_dprop, d_max;
    int32_t dprop[SL_MAX_SPEC];
    sl_tbudget tb;          /* its reasoning budget (p.think_budget; state DONE: none) */

    /* output channel (guarded by mu) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *text;             /* all text released so far */
    size_t n_text, cap_text;
    size_t skip_text;       /* bytes still to drop before releasing (a resumed stream's text the client has) */
    sl_tok_out *out;        /* generated tokens */
    int32_t n_out, cap_out;
    bool finished;
    sl_finish_reason finish;
    int http_error;         /* 0, or an HTTP status when the request failed inside the engine */
    char error[256];
    double t_first_token;
    double t_admit;         /* first scheduled (0: not yet) */
    int stop_word; /* 1 + the index of the stop string that ended the output (p.stop), 0: none */
    /* echo with logprobs, or prompt_logprobs: plp[i] is prompt token i with its logprob given
     * tokens [0, i) (plp[0] has none: logprob NAN); entries [0, n_plp) are
     * filled, in order; NULL otherwise. */
    sl_tok_out *plp;
    int32_t n_plp;
    /* A resumed stream with mirostat: its target surprise replays each
     * replayed output token from the logits before it (prompt positions
     * [miro_next, n_prompt - 1) are left to compute), so the stream goes on
     * as on the engine it started on. With structured output the guide
     * takes the replayed tokens one by one as mu replays them (each draw saw
     * the mask of the answer so far), not all at once when the stream
     * resumes. */
    int32_t miro_next;
    /* n_indent: a line break was in the output (as of the token before), where the line to check starts, and
     * whether the output was cut there */
    bool ind_nl, ind_cut;
    size_t ind_last_nl;
    /* An embedding request's result (n_embd floats; with pooling none
     * n_prompt of them), complete once finished without an error; embd_acc:
     * the mean's running sum. */
    float *embd;
    double *embd_acc;
    int32_t n_embd;
};

typedef struct sl_sched_params {
    int32_t n_ctx;
    int32_t n_threads;
    int32_t max_num_seqs;
    int32_t max_num_batched_tokens; /* tokens per step at most (>= max_num_seqs) */
    int32_t max_prefill_tokens;     /* prompt tokens per step at most (0: only the limit above) */
    int32_t block_size;
    int64_t kv_mem_mib;
    sl_type kv_type;        /* F32, F16 (default) or Q8_0 */
    bool prefix_caching;
    /* n-gram speculation (prompt lookup): a decoding sequence whose last
     * spec_lookup_max .. spec_lookup_min tokens occurred earlier in it
     * proposes the spec_tokens that followed there; one step computes them
     * with its next token, and each is kept while it is what the sampler
     * picks at its position. The logits at a position do not depend on how
     * many tokens a step computes, and the draw is keyed by position, so the
     * output is the same with it or without. 0: off. */
    int32_t spec_tokens;
    int32_t spec_lookup_min, spec_lookup_max;
    /* no speculation in a step with more running sequences than this: a
     * step of many sequences is bound by compute, not by reading the
     * weights, so proposed tokens only add work (vLLM's
     * speculative_disable_by_batch_size) */
    int32_t spec_max_seqs;
    /* Speculation with a draft model (llama.cpp's --model-draft, vLLM's speculative draft model): a smaller
     * model of the same vocabulary, with a KV cache of its own (as many token slots as the target's), reads
     * each decoding sequence (its prompt the first time, then what was kept) and proposes up to draft_max
     * tokens, greedily, stopping before one it gives less than draft_p_min probability; they are checked as
     * n-gram proposals are (the same output with it or without), with spec_max_seqs as their limit too, and
     * before them. NULL: none. The model must outlive the scheduler. */
    const sl_model *draft;
    int32_t draft_max;
    float draft_p_min;
    /* vLLM's --scheduling-policy priority: requests are ordered by (priority, arrival) instead of arrival alone —
     * admitted, batched and kept (the last in that order yields its blocks) in that order */
    bool priority_policy;
    sl_kvm_pool_cfg pools[SL_KVM_MAX_POOLS];
    int n_pools;
} sl_sched_params;

typedef struct sl_sched sl_sched;

sl_status sl_sched_create(const sl_model *m, const char *model_id, const sl_sched_params *p, sl_metrics *metrics,
                          sl_sched **out);
/* Stop the thread (running requests are aborted) and free everything. */
void sl_sched_destroy(sl_sched *s);

/* Create a request for `prompt` (copied). On error (e.g. prompt longer than
 * the context) *out is NULL and the message names what is wrong. */
sl_status sl_req_create(sl_sched *s, const int32_t *prompt, int32_t n_prompt, const sl_req_params *p, sl_req **out);
void sl_req_release(sl_req *r);
/* Hand the request to the scheduler (takes its own reference). */
void sl_sched_submit(sl_sched *s, sl_req *r);
/* Ask the scheduler to drop the request (client gone). */
void sl_req_cancel(sl_sched *s, sl_req *r);

/* vLLM's reset_prefix_cache: between two steps the KV cache forgets every cached prefix (sl_kvm_reset_cache).
 * Returns the cached blocks freed, or -1 when the scheduler did not get to it within timeout_ms (or stops). */
int32_t sl_sched_reset_prefix_cache(sl_sched *s, long timeout_ms);
int32_t sl_sched_running(const sl_sched *s);
int32_t sl_sched_waiting(const sl_sched *s);
int32_t sl_sched_n_ctx(const sl_sched *s);
int32_t sl_sched_max_seqs(const sl_sched *s); /* sequences at once (--max-num-seqs) */
/* The KV pool as made: tokens it holds, bytes (--kv-mem, capped to what the sequences can use) */
int64_t sl_sched_kv_tokens(const sl_sched *s);
int64_t sl_sched_kv_bytes(const sl_sched *s);

#endif

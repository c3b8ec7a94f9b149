/*
 * sched.c — continuous batching (see sched.h).
 *
 * One step:
 *   1. take newly submitted requests into the waiting queue; drop cancelled
 *      requests (their blocks go back at once);
 *   2. running requests, oldest first: decode ones take 1 token, those still
 *      in their prompt take a chunk of what the budget leaves (prompt tokens
 *      also within the smaller prefill budget); when a pool
 *      runs out of blocks, the newest running request of that pool is
 *      preempted (its blocks released — full ones stay cached — and it goes
 *      back to the front of the waiting queue, to be recomputed);
 *   3. waiting requests, oldest first, are admitted while the budget, the
 *      sequence limit and their pool allow; the prefix cache supplies their
 *      leading blocks; a request whose pool is full does not block requests
 *      of other pools;
 *   4. one forward step over all of it; each request whose chunk reached its
 *      last token samples the next one; output goes to its channel;
 *   5. newly full blocks are added to the prefix index.
 * Waiting is FIFO and a preempted request re-enters at the front, so no
 * request starves. Under vLLM's --scheduling-policy priority, "oldest" reads
 * "first by (priority, submit time)" throughout — the running and waiting
 * lists are kept in that order and a preempted request re-enters the waiting
 * queue by it — so a request of lower priority waits while higher ones come
 * (as in vLLM, it can starve).
 */
#include "sched.h"

#include "core/alloc.h"
#include "core/pool.h"
#include "core/status.h"
#include "engine/forward.h"
#include "engine/kv.h"
#include "model/model.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { ST_NEW = 0, ST_WAITING, ST_RUNNING, ST_DONE };

typedef struct list {
    sl_req head; /* sentinel */
    int32_t n;
} list;

struct sl_sched {
    const sl_model *m;
    sl_sched_params p;
    sl_metrics *metrics;
    int64_t kv_blocks, kv_bytes; /* the KV pool as made (--kv-mem, capped to what can be used) */
    sl_kv_cache *kv;
    sl_kvm *kvm;
    sl_fwd *fwd;
    int32_t n_vocab;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu; /* guards incoming, stop, the reset counters */
    pthread_cond_t cv;
    list incoming;
    bool stop;
    /* reset_prefix_cache: asked (a ticket), done up to, the cached blocks the last one freed; reset_cv: done */
    uint64_t reset_asked, reset_done;
    int32_t reset_freed;
    pthread_cond_t reset_cv;
    _Atomic uint64_t next_id;

    list waiting, running; /* scheduler thread only */
    _Atomic int32_t n_running, n_waiting;

    /* step buffers */
    int32_t *b_tok, *b_pos, *b_seq;
    uint8_t *b_want;
    sl_kv_seq **b_seqs;
    sl_req **b_req;     /* per batch sequence */
    sl_req **b_snap;    /* running requests at the start of a step */
    int32_t *b_chunk;   /* tokens of each sequence in this step */
    float *logits;      /* (max_num_seqs + 1 + SL_PLP_ROWS [+ SL_SPEC_ROWS with speculation], n_vocab) */
    sl_json_guide *guide; /* structured output: the vocabulary's token texts */
    sl_gram_guide *gguide; /* grammars: those texts in a trie (made for the first request with a grammar) */
    float *masked;      /* (n_vocab) a structured-output request's logits, masked */
    float *hidden;      /* (max_num_batched_tokens, n_embd) embedding requests' hidden states (made for the first) */
    /* a draft model's (p.draft): its KV cache, forward (on the target's threads), logits of a draft step (one
     * row per sequence) and its step buffers */
    sl_kv_cache *dkv;
    sl_fwd *dfwd;
    float *dlogits;
    int32_t *d_tok, *d_pos, *d_seq;
    uint8_t *d_want;
    sl_kv_seq **d_seqs;
    sl_req **d_req;
    bool d_failed; /* a draft step failed: no more drafting (said once) */
};

double sl_sched_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *sl_finish_reason_str(sl_finish_reason r) {
    switch (r) {
    case SL_FR_STOP: return "stop";
    case SL_FR_LENGTH: return "length";
    case SL_FR_ABORT: return "abort";
    default: return NULL;
    }
}

/* ---- lists --------------------------------------------------------------- */

static void list_init(list *l) {
    l->head.next = l->head.prev = &l->head;
    l->n = 0;
}
static bool list_empty(const list *l) { return l->head.next == &l->head; }
static void list_remove(list *l, sl_req *r) {
    r->prev->next = r->next;
    r->next->prev = r->prev;
    r->next = r->prev = NULL;
    l->n--;
}
static void list_push_back(list *l, sl_req *r) {
    r->prev = l->head.prev;
    r->next = &l->head;
    l->head.prev->next = r;
    l->head.prev = r;
    l->n++;
}
/* The scheduling order: by priority (lower first; 0 for all but under --scheduling-policy priority), then by
 * submit time (oldest first). */
static bool before(const sl_req *a, const sl_req *b) {
    if (a->p.priority != b->p.priority) return a->p.priority < b->p.priority;
    return a->t_submit < b->t_submit;
}

/* Insert keeping the list in scheduling order. */
static void list_insert_in_order(list *l, sl_req *r) {
    sl_req *at = l->head.prev;
    while (at != &l->head && before(r, at)) at = at->prev;
    r->prev = at;
    r->next = at->next;
    at->next->prev = r;
    at->next = r;
    l->n++;
}

static void list_push_front(list *l, sl_req *r) {
    r->next = l->head.next;
    r->prev = &l->head;
    l->head.next->prev = r;
    l->head.next = r;
    l->n++;
}

/* ---- requests ------------------------------------------------------------ */

static bool feed_text(sl_req *r, const char *t, size_t n, bool final);

/* The output follows a schema or a grammar. */
static bool guided(const sl_req *r) { return r->p.schema || r->gram; }

/* Structured output (a schema or a grammar) takes token id; true when the answer is complete. A lazy guide
 * waiting for its trigger keeps the output's text, and once a trigger fires reads it from there: false with
 * *bad 1 when the guide refuses that text, 2 when there is no memory for it. */
static bool guide_take(sl_sched *s, sl_req *r, int32_t id, int *bad) {
    size_t n;
    const char *t = sl_json_guide_text(s->guide, id, &n);
    *bad = 0;
    const bool fired = r->awaiting;
    if (r->awaiting) {
        if (sl_triggers_token(r->p.triggers, id)) {
            r->awaiting = false;
        } else {
            if (!sl_grow((void **)&r->tbuf, &r->tcap, r->tlen + n, 1)) return !(*bad = 2);
            memcpy(r->tbuf + r->tlen, t, n);
            r->tlen += n;
            const int64_t from = sl_triggers_match(r->p.triggers, r->tbuf, r->tlen);
            if (from < 0) return false;
            r->awaiting = false;
            t = r->tbuf + from;
            n = r->tlen - (size_t)from;
            id = -1; /* (text, no token reference) */
        }
    }
    const bool took = r->gram ? (id >= 0 ? sl_gram_feed_token(r->gram, id, t, n) : sl_gram_feed_all(r->gram, t, n))
                              : sl_json_feed_all(&r->json, t, n);
    if (!took) {
        *bad = fired ? 1 : 0; /* (otherwise the guide's mask let the token through) */
        return false;
    }
    return r->gram ? sl_gram_done(r->gram) : sl_json_done(&r->json);
}

/* Structured output: lg with the tokens that cannot continue r's answer so far at -inf, in s->masked;
 * *allowed = how many can. NULL when the grammars' token trie cannot be made (the error is set). */
static const float *guide_mask(sl_sched *s, sl_req *r, const float *lg, int32_t *allowed) {
    if (r->awaiting) { /* a lazy guide before its trigger: any token */
        *allowed = s->n_vocab;
        return lg;
    }
    memcpy(s->masked, lg, sizeof(float) * (size_t)s->n_vocab);
    if (r->gram && !s->gguide && sl_gram_guide_create(s->guide, sl_model_tokenizer(s->m), &s->gguide) != SL_OK)
        return NULL;
    *allowed = r->gram ? sl_gram_guide_mask(s->gguide, r->gram, s->masked) : sl_json_guide_mask(s->guide, &r->json, s->masked);
    return s->masked;
}

/* A resumed stream (sl_req_params.resume_*): replay the other engine's output
 * tokens through the same detokenizer and stop matcher, dropping the first
 * resume_text_sent bytes released (the client has them); what the other
 * engine held back stays held here, or is released if more came out. */
/* r's reasoning budget takes output token id. */
static void budget_take(const sl_tokenizer *tok, sl_req *r, int32_t id) {
    if (r->tb.state == SL_TB_DONE) return;
    char buf[256];
    const int64_t n = sl_token_to_piece(tok, id, false, buf, sizeof buf);
    sl_tb_accept(&r->tb, id, n > (int64_t)sizeof buf || sl_utf8_ends_whole(buf, n));
}

static void resume(sl_sched *s, sl_req *r) {
    const sl_tokenizer *tok = sl_model_tokenizer(s->m);
    r->skip_text = (size_t)r->p.resume_text_sent;
    for (int32_t i = r->n_prompt - r->p.resume_generated; i < r->n_prompt; i++) {
        /* structured output goes on from the output so far (with mirostat, as its mu replays: record_plp) */
        int bad; /* (the other engine's tokens: they kept to the guide there) */
        if (guided(r) && r->miro_next >= r->n_prompt) guide_take(s, r, r->tokens[i], &bad);
        budget_take(tok, r, r->tokens[i]); /* (its reasoning budget goes on from where that engine's was) */
        if (!r->p.ignore_eos && sl_tokenizer_is_eog(tok, r->tokens[i])) continue;
        char buf[4096];
        int64_t n = sl_detok_push(&r->detok, r->tokens[i], buf, sizeof buf);
        if (n > 0) feed_text(r, buf, (size_t)n, false);
    }
}

/* r's sampler gets p's logit bias, allowed tokens and bad words (copied: p's
 * lists are the caller's) and, with min_tokens, the tokens that cannot end
 * the output before then: end of generation (unless ignore_eos) and the stop
 * token ids, while the output (replayed tokens of a resumed stream included)
 * is shorter than min_tokens. */
static sl_status set_adjust(sl_sched *s, sl_req *r, const sl_req_params *p) {
    const sl_tokenizer *tok = sl_model_tokenizer(s->m);
    const int32_t n_eog = p->ignore_eos ? 0 : sl_tokenizer_n_eog(tok);
    int32_t *sup = NULL, n_sup = 0;
    if (p->min_tokens > 0 && n_eog + p->n_stop_ids > 0) {
        sup = sl_alloc_array((size_t)(n_eog + p->n_stop_ids), sizeof(int32_t));
        if (!sup) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
        for (int32_t i = 0; i < n_eog; i++) sup[n_sup++] = sl_tokenizer_eog_at(tok, i);
        for (int32_t i = 0; i < p->n_stop_ids; i++) sup[n_sup++] = p->stop_ids[i];
    }
    const int64_t out_from = (int64_t)r->n_prompt - p->resume_generated; /* a resumed stream's output counts */
    const sl_logit_adjust a = {.bias_ids = p->bias_ids, .bias = p->bias_vals, .n_bias = p->n_bias,
                               .suppress = sup, .n_suppress = n_sup, .suppress_until = out_from + p->min_tokens,
                               .allow = p->allow_ids, .n_allow = p->n_allow, .bad = p->bad_ids, .bad_len = p->bad_lens,
                               .n_bad = p->n_bad, .bad_from = out_from};
    sl_status st = sl_sampler_set_adjust(r->sampler, &a);
    sl_free(sup);
    if (!st) st = sl_sampler_set_dry_breakers(r->sampler, p->dry_breakers);
    return st;
}

sl_status sl_req_create(sl_sched *s, const int32_t *prompt, int32_t n_prompt, const sl_req_params *p, sl_req **out) {
    *out = NULL;
    const int32_t n_ctx = s->p.n_ctx;
    if (n_prompt <= 0) return SL_FAIL(SL_ERR_INVALID, "the prompt is empty");
    if (p->embed && n_prompt > n_ctx)
        return SL_FAIL(SL_ERR_RANGE, "the input has %d tokens; this model's context is %d tokens", n_prompt, n_ctx);
    if (!p->embed && n_prompt >= n_ctx)
        return SL_FAIL(SL_ERR_RANGE, "the prompt has %d tokens; this model's context is %d tokens and at least one "
                       "must be left for the completion", n_prompt, n_ctx);
    if (p->embed && (p->pooling < SL_POOL_NONE || p->pooling > SL_POOL_LAST || p->max_tokens != 0))
        return SL_FAIL(SL_ERR_INVALID, "pooling %d with max_tokens %d: an embedding request (none, mean, cls or last "
                       "pooling) generates nothing", (int)p->pooling, p->max_tokens);
    for (int32_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= s->n_vocab)
            return SL_FAIL(SL_ERR_INVALID, "prompt token %d has id %d, outside the vocabulary [0, %d)", i, prompt[i],
                           s->n_vocab);
    if (p->resume_generated < 0 || p->resume_generated >= n_prompt || p->resume_text_sent < 0)
        return SL_FAIL(SL_ERR_INVALID, "resuming %d generated tokens with %lld bytes sent: needs 0 <= generated < %d "
                       "(the prompt) and bytes >= 0", p->resume_generated, (long long)p->resume_text_sent, n_prompt);
    if (p->max_tokens < 0 || (p->max_tokens == 0 && p->resume_generated == 0 && !p->echo && !p->embed && !p->prefill_only))
        return SL_FAIL(SL_ERR_INVALID, "max_tokens %d: needs at least 1 (0 only when resuming a stream or echoing the "
                       "prompt)", p->max_tokens);
    if (p->n_bias < 0 || p->n_bias > SL_MAX_LOGIT_BIAS || p->n_stop_ids < 0 || p->n_stop_ids > SL_MAX_STOP_IDS ||
        p->min_tokens < 0)
        return SL_FAIL(SL_ERR_INVALID, "%d logit biases, %d stop token ids, min_tokens %d: needs at most %d, at most %d, "
                       ">= 0", p->n_bias, p->n_stop_ids, p->min_tokens, SL_MAX_LOGIT_BIAS, SL_MAX_STOP_IDS);
    for (int32_t i = 0; i < p->n_stop_ids; i++)
        if (p->stop_ids[i] < 0 || p->stop_ids[i] >= s->n_vocab)
            return SL_FAIL(SL_ERR_INVALID, "stop token id %d is outside the vocabulary [0, %d)", p->stop_ids[i],
                           s->n_vocab);
    sl_req *r = sl_calloc(1, sizeof *r);
    if (!r) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    atomic_init(&r->refs, 1);
    atomic_init(&r->cancelled, false);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->id = atomic_fetch_add(&s->next_id, 1);
    r->p = *p;
    sl_json_schema_retain(r->p.schema);
    sl_grammar_retain(r->p.grammar);
    sl_triggers_retain(r->p.triggers);
    r->awaiting = r->p.triggers && (r->p.schema || r->p.grammar);
    for (int i = 0; i < p->n_stop; i++) r->p.stop[i] = NULL;
    /* the sampler keeps its own copy of the biases and token lists (set_adjust, below): the request keeps none */
    r->p.bias_ids = NULL;
    r->p.bias_vals = NULL;
    r->p.n_bias = 0;
    r->p.allow_ids = r->p.bad_ids = r->p.bad_lens = NULL;
    r->p.n_allow = r->p.n_bad = 0;
    r->p.dry_breakers = NULL;
    r->n_prompt = n_prompt;
    /* speculation: the server's, or for a request with a prediction of its output, what it allows at most */
    sl_spec_init(&r->spec, s->p.spec_tokens > 0 ? s->p.spec_tokens : p->n_pred > 0 ? SL_MAX_SPEC : 0,
                 s->p.spec_lookup_min > 0 ? s->p.spec_lookup_min : 2, s->p.spec_lookup_max > 0 ? s->p.spec_lookup_max : 4);
    r->p.pred_ids = NULL;
    r->p.n_pred = 0;
    if (p->n_pred > 0) {
        if (!(r->pred = sl_alloc_array((size_t)p->n_pred, sizeof(int32_t)))) goto nomem;
        memcpy(r->pred, p->pred_ids, sizeof(int32_t) * (size_t)p->n_pred);
        sl_spec_predict(&r->spec, r->pred, p->n_pred, n_prompt);
    }
    int64_t max_ctx = (int64_t)n_prompt + (p->max_tokens > 0 ? p->max_tokens : p->embed ? 0 : 1);
    r->max_ctx = (int32_t)(max_ctx > n_ctx ? n_ctx : max_ctx);
    r->cap_tokens = r->max_ctx + 1;
    r->tokens = sl_alloc_array((size_t)r->cap_tokens, sizeof(int32_t));
    if (!r->tokens) goto nomem;
    memcpy(r->tokens, prompt, sizeof(int32_t) * (size_t)n_prompt);
    r->n_tokens = n_prompt;
    if ((p->echo && p->logprobs >= 0) || p->prompt_logprobs >= 0) {
        r->plp = sl_alloc_array((size_t)n_prompt, sizeof(sl_tok_out));
        if (!r->plp) goto nomem;
        r->plp[0] = (sl_tok_out){.id = prompt[0], .logprob = NAN};
        r->n_plp = 1;
    }
    for (int i = 0; i < p->n_stop; i++) {
        r->p.stop[i] = sl_strdup(p->stop[i]);
        if (!r->p.stop[i]) goto nomem;
    }
    if (p->embed) { /* (no pooling: every position's vector) */
        r->n_embd = s->m->hp.n_embd;
        r->embd = sl_calloc((size_t)r->n_embd * (p->pooling == SL_POOL_NONE ? (size_t)n_prompt : 1), sizeof(float));
        r->embd_acc = p->pooling == SL_POOL_MEAN ? sl_calloc((size_t)r->n_embd, sizeof(double)) : NULL;
        if (!r->embd || (p->pooling == SL_POOL_MEAN && !r->embd_acc)) goto nomem;
    }
    sl_sampler_params sp = p->sampling;
    sp.n_ctx = r->max_ctx; /* (DRY looks at most this far back) */
    sl_status st = SL_OK;
    if (!p->embed) { /* (an embedding draws nothing: no sampler, whose scratch is several vocabulary-sized arrays) */
        st = sl_sampler_create(&sp, s->n_vocab, &r->sampler);
        if (!st) st = set_adjust(s, r, p);
        if (!st) st = sl_sampler_set_infill(r->sampler, sl_model_tokenizer(s->m)); /* (its infill stage reads the vocabulary) */
    }
    if (st) {
        sl_req_release(r);
        return st;
    }
    sl_detok_init(&r->detok, sl_model_tokenizer(s->m), p->show_special);
    sl_detok_show(&r->detok, r->p.show_ids, r->p.n_show_ids);
    sl_json_init(&r->json, r->p.schema);
    if (r->p.grammar && (st = sl_gram_state_create(r->p.grammar, &r->gram)) != SL_OK) {
        sl_req_release(r);
        return st;
    }
    r->miro_next = p->sampling.mirostat && p->resume_generated > 0 && p->max_tokens > 0
                       ? n_prompt - p->resume_generated - 1
                       : n_prompt;
    r->tb.state = SL_TB_DONE;
    if (!p->embed && p->think_budget >= 0 && p->n_think_forced > 0 && !guided(r) &&
        (st = sl_tb_init(&r->tb, p->think_budget, p->think_open, p->think_start, p->n_think_start, p->think_end,
                         p->n_think_end, p->think_forced, p->n_think_forced)) != SL_OK) {
        sl_req_release(r);
        return st;
    }
    r->p.think_start = r->p.think_end = r->p.think_forced = NULL; /* (the caller's lists) */
    if (p->resume_generated > 0) resume(s, r);
    int pool = sl_kvm_pool_for(s->kvm, r->max_ctx);
    sl_kvm_seq_init(&r->kv, pool, p->adapter);
    if (p->has_cache_salt) sl_kvm_seq_salt(&r->kv, p->cache_salt);
    int32_t need = (r->max_ctx + s->p.block_size - 1) / s->p.block_size;
    if (need > sl_kvm_pool_capacity(s->kvm, pool)) {
        sl_status e = SL_FAIL(SL_ERR_RANGE, "the request may reach %d tokens, more than the %d-token KV pool '%s' holds",
                              r->max_ctx, sl_kvm_pool_capacity(s->kvm, pool) * s->p.block_size,
                              sl_kvm_pool(s->kvm, pool)->name);
        sl_req_release(r);
        return e;
    }
    r->t_submit = sl_sched_now_s();
    *out = r;
    return SL_OK;
nomem:
    sl_req_release(r);
    return SL_FAIL(SL_ERR_NOMEM, "out of memory");
}

void sl_req_release(sl_req *r) {
    if (!r || atomic_fetch_sub(&r->refs, 1) != 1) return;
    for (int i = 0; i < r->p.n_stop; i++) sl_free(r->p.stop[i]);
    sl_sampler_destroy(r->sampler);
    sl_tb_free(&r->tb);
    sl_free(r->kv.table.blocks);
    sl_free(r->dkv.blocks);
    sl_free(r->tokens);
    sl_free(r->held);
    sl_free(r->text);
    sl_free(r->out);
    sl_free(r->plp);
    sl_free(r->embd);
    sl_free(r->embd_acc);
    sl_json_schema_release(r->p.schema);
    sl_gram_state_destroy(r->gram);
    sl_grammar_release(r->p.grammar);
    sl_triggers_release(r->p.triggers);
    sl_free(r->tbuf);
    sl_free(r->pred);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    sl_free(r);
}

void sl_sched_submit(sl_sched *s, sl_req *r) {
    atomic_fetch_add(&r->refs, 1);
    atomic_fetch_add(&s->metrics->prompt_tokens, (uint64_t)r->n_prompt);
    pthread_mutex_lock(&s->mu);
    r->state = ST_NEW;
    list_push_back(&s->incoming, r);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void sl_req_cancel(sl_sched *s, sl_req *r) {
    atomic_store(&r->cancelled, true);
    pthread_mutex_lock(&s->mu);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

int32_t sl_sched_reset_prefix_cache(sl_sched *s, long timeout_ms) {
    pthread_mutex_lock(&s->mu);
    const uint64_t ticket = ++s->reset_asked;
    pthread_cond_signal(&s->cv);
    for (long waited = 0; s->reset_done < ticket && !s->stop && waited < timeout_ms; waited += 50)
        sl_cond_wait_ms(&s->reset_cv, &s->mu, 50);
    const int32_t freed = s->reset_done >= ticket ? s->reset_freed : -1;
    pthread_mutex_unlock(&s->mu);
    return freed;
}

int32_t sl_sched_running(const sl_sched *s) { return atomic_load(&s->n_running); }
int32_t sl_sched_waiting(const sl_sched *s) { return atomic_load(&s->n_waiting); }
int32_t sl_sched_n_ctx(const sl_sched *s) { return s->p.n_ctx; }
int32_t sl_sched_max_seqs(const sl_sched *s) { return s->p.max_num_seqs; }
int64_t sl_sched_kv_tokens(const sl_sched *s) { return s->kv_blocks * s->p.block_size; }
int64_t sl_sched_kv_bytes(const sl_sched *s) { return s->kv_bytes; }

/* ---- output channel ------------------------------------------------------ */

/* Append text to the channel (caller holds r->mu). */
static void emit_text_locked(sl_req *r, const char *t, size_t n) {
    if (r->skip_text) { /* a resumed stream: the client already has these bytes */
        const size_t k = n < r->skip_text ? n : r->skip_text;
        r->skip_text -= k;
        t += k;
        n -= k;
    }
    if (n == 0) return;
    if (!sl_grow((void **)&r->text, &r->cap_text, r->n_text + n + 1, 1)) return;
    memcpy(r->text + r->n_text, t, n);
    r->n_text += n;
    r->text[r->n_text] = '\0';
}

/* Feed newly decoded text through the stop-string matcher. Returns true when
 * a stop string was found (the text before it is released, the rest dropped). */
static bool feed_text(sl_req *r, const char *t, size_t n, bool final) {
    if (r->p.n_stop == 0) {
        emit_text_locked(r, t, n);
        return false;
    }
    size_t cap = r->cap_held;
    if (!sl_grow((void **)&r->held, &cap, r->n_held + n + 1, 1)) return false;
    r->cap_held = cap;
    memcpy(r->held + r->n_held, t, n);
    r->n_held += n;
    r->held[r->n_held] = '\0';
    /* earliest stop string occurrence */
    size_t best = (size_t)-1, best_len = 0;
    int best_i = -1;
    for (int i = 0; i < r->p.n_stop; i++) {
        const size_t ls = strlen(r->p.stop[i]);
        const char *f = memmem(r->held, r->n_held, r->p.stop[i], ls);
        /* the earliest; of two there, the longer (it is the one the text shows whole) */
        if (f && ((size_t)(f - r->held) < best || ((size_t)(f - r->held) == best && ls > best_len))) {
            best = (size_t)(f - r->held);
            best_len = ls;
            best_i = i;
        }
    }
    if (best != (size_t)-1) {
        r->stop_word = best_i + 1;
        emit_text_locked(r, r->held, best + (r->p.include_stop_str ? best_len : 0));
        r->n_held = 0;
        return true;
    }
    /* hold back the longest suffix that is a prefix of some stop string */
    size_t keep = 0;
    if (!final)
        for (int i = 0; i < r->p.n_stop; i++) {
            size_t ls = strlen(r->p.stop[i]);
            for (size_t k = ls - 1; k > keep; k--)
                if (k <= r->n_held && !memcmp(r->held + r->n_held - k, r->p.stop[i], k)) {
                    keep = k;
                    break;
                }
        }
    /* never split a UTF-8 character: the detokenizer only gives whole ones */
    emit_text_locked(r, r->held, r->n_held - keep);
    memmove(r->held, r->held + r->n_held - keep, keep);
    r->n_held = keep;
    return false;
}

static void finish_req(sl_sched *s, sl_req *r, sl_finish_reason why, int http_error, const char *msg) {
    /* counted before the request's waiter wakes: a client that reads /metrics once answered finds its request */
    atomic_fetch_add(&s->metrics->requests_finished[why], 1);
    const double now = sl_sched_now_s();
    sl_metrics *mt = s->metrics;
    sl_hist_observe(&mt->e2e, now - r->t_submit);
    if (r->admitted_once) { /* (vLLM's request phases and sizes, of a request that ran) */
        sl_hist_observe(&mt->queue, r->t_admit - r->t_submit);
        sl_hist_observe(&mt->inference, now - r->t_admit);
        if (r->t_first_token > 0) {
            sl_hist_observe(&mt->prefill, r->t_first_token - r->t_admit);
            sl_hist_observe(&mt->decode, now - r->t_first_token);
        }
        sl_hist_observe(&mt->prompt_len, r->n_prompt);
        sl_hist_observe(&mt->gen_len, r->n_out);
        sl_hist_observe(&mt->max_tokens, r->p.max_tokens);
    }
    pthread_mutex_lock(&r->mu);
    if (why != SL_FR_ABORT && !r->ind_cut) { /* (an output cut for n_indent has nothing more) */
        char buf[64];
        int64_t n = sl_detok_flush(&r->detok, buf, sizeof buf);
        if (n > 0) feed_text(r, buf, (size_t)n, true);
        if (r->n_held) feed_text(r, "", 0, true);
    }
    r->finished = true;
    r->finish = why;
    r->http_error = http_error;
    if (msg) snprintf(r->error, sizeof r->error, "%s", msg);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* ---- scheduling ------------------------------------------------------------ */

static void drop_req(sl_sched *s, list *from, sl_req *r) {
    list_remove(from, r);
    sl_kvm_seq_deinit(s->kvm, &r->kv);
    if (s->dkv) sl_kv_seq_deinit(s->dkv, &r->dkv);
    r->state = ST_DONE;
    sl_req_release(r);
}

static void preempt(sl_sched *s, sl_req *r) {
    list_remove(&s->running, r);
    sl_kvm_release(s->kvm, &r->kv);
    if (s->dkv) sl_kv_seq_release(s->dkv, &r->dkv); /* (the draft reads it again when it decodes again) */
    r->d_computed = 0;
    r->n_computed = 0;
    r->state = ST_WAITING;
    if (s->p.priority_policy) list_insert_in_order(&s->waiting, r); /* (vLLM's: back into the queue by priority) */
    else list_push_front(&s->waiting, r);
    atomic_fetch_add(&s->metrics->preemptions, 1);
}

/* The last in scheduling order (the newest, or of the lowest priority) running request of `pool` other than
 * `except`. */
static sl_req *last_in_pool(sl_sched *s, int pool, sl_req *except) {
    sl_req *best = NULL;
    for (sl_req *r = s->running.head.next; r != &s->running.head; r = r->next)
        if (r != except && r->kv.pool == pool && (!best || before(best, r))) best = r;
    return best;
}

/* Blocks for positions [0, n_pos) for a running request, preempting requests
 * after it (in scheduling order) of its pool when needed. False when r itself
 * had to yield. The running list is kept in scheduling order and batched in
 * it, so a victim (after r) has never been batched in this step yet. */
static bool reserve_running(sl_sched *s, sl_req *r, int32_t n_pos) {
    for (;;) {
        if (sl_kvm_reserve(s->kvm, &r->kv, n_pos) == SL_OK) return true;
        sl_req *victim = last_in_pool(s, r->kv.pool, r);
        if (!victim || before(victim, r)) {
            preempt(s, r);
            return false;
        }
        preempt(s, victim);
    }
}

static void publish_gauges(sl_sched *s) {
    sl_metrics *mt = s->metrics;
    atomic_store(&s->n_running, s->running.n);
    atomic_store(&s->n_waiting, s->waiting.n);
    atomic_store(&mt->running, s->running.n);
    atomic_store(&mt->waiting, s->waiting.n);
    for (int i = 0; i < sl_kvm_n_pools(s->kvm) && i < SL_METRICS_POOLS; i++) {
        sl_kvm_stats st = sl_kvm_pool_stats(s->kvm, i);
        atomic_store(&mt->pool_total[i], st.total);
        atomic_store(&mt->pool_used[i], st.used);
        atomic_store(&mt->pool_free[i], st.free);
        atomic_store(&mt->pool_cached[i], st.cached);
    }
    atomic_store(&mt->prefix_hits, sl_kvm_hits(s->kvm));
    atomic_store(&mt->prefix_queries, sl_kvm_queries(s->kvm));
}

/* Prompt positions whose logits are still wanted: echo with logprobs or prompt_logprobs (the logits of
 * position i give prompt token i + 1's, for i in [n_plp - 1, n_prompt - 1)) and a resumed mirostat stream's
 * replay (i in [miro_next, n_prompt - 1)); record_plp takes them in order. */
static bool plp_pending(const sl_req *r) {
    return (r->plp && r->n_plp < r->n_prompt) || r->miro_next < r->n_prompt - 1;
}
static bool wants_plp(const sl_req *r, int32_t pos) {
    return pos < r->n_prompt - 1 && ((r->plp && pos + 1 >= r->n_plp) || pos >= r->miro_next);
}
/* The prompt positions computed before any whose logits are wanted: the prefix cache may hold these. */
static int32_t plp_known(const sl_req *r) {
    const int32_t a = r->plp ? r->n_plp : r->n_tokens, b = r->miro_next + 1;
    return a < b ? a : b;
}

/* Whether an embedding request pools the hidden state of position pos. */
static bool pools(const sl_req *r, int32_t pos) {
    return r->p.pooling == SL_POOL_MEAN || r->p.pooling == SL_POOL_NONE || (r->p.pooling == SL_POOL_CLS && pos == 0) ||
           (r->p.pooling == SL_POOL_LAST && pos == r->n_tokens - 1);
}

/* An embedding request's hidden state h of position pos (one that pools(r, pos)), into its pooled result. */
static void pool_row(sl_req *r, int32_t pos, const float *h) {
    if (r->p.pooling == SL_POOL_MEAN)
        for (int32_t i = 0; i < r->n_embd; i++) r->embd_acc[i] += h[i];
    else /* (none: every position's; CLS, last: the one position) */
        memcpy(r->embd + (r->p.pooling == SL_POOL_NONE ? (size_t)pos * (size_t)r->n_embd : 0), h,
               sizeof(float) * (size_t)r->n_embd);
}

/* Its prompt computed: the pooled vector (normalized if asked), and the request is done. */
static void finish_embedding(sl_sched *s, sl_req *r) {
    if (r->p.pooling == SL_POOL_MEAN)
        for (int32_t i = 0; i < r->n_embd; i++) r->embd[i] = (float)(r->embd_acc[i] / r->n_tokens);
    if (r->p.pooling != SL_POOL_NONE) sl_embd_normalize(r->embd, r->n_embd, r->p.normalize); /* (every position's: raw, as llama.cpp) */
    finish_req(s, r, SL_FR_STOP, 0, NULL);
    drop_req(s, &s->running, r);
}

/* Add r's next chunk (up to `budget` tokens) to the batch. */
static void add_to_batch(sl_sched *s, sl_req *r, int32_t chunk, int32_t *n_tok, int32_t *n_seq) {
    int32_t k = *n_seq;
    s->b_seqs[k] = &r->kv.table;
    s->b_req[k] = r;
    s->b_chunk[k] = chunk;
    for (int32_t i = 0; i < chunk; i++) {
        int32_t t = (*n_tok)++;
        s->b_tok[t] = r->tokens[r->n_computed + i];
        s->b_pos[t] = r->n_computed + i;
        s->b_seq[t] = k;
        /* the last token's logits (and those of the tokens proposed after it), or a prompt token's for echo;
         * an embedding request's: the hidden states it pools */
        if (r->p.embed) s->b_want[t] = pools(r, r->n_computed + i) ? SL_WANT_HIDDEN : 0;
        else s->b_want[t] = r->n_computed + i >= r->n_tokens - 1 || wants_plp(r, r->n_computed + i) ? SL_WANT_LOGITS : 0;
    }
    *n_seq = k + 1;
}

/* Byte i of the output so far: the text released, then the text held back (caller holds r->mu). */
static char out_at(const sl_req *r, size_t i) { return i < r->n_text ? r->text[i] : r->held[i - r->n_text]; }

/* llama.cpp's n_indent, after a token (caller holds r->mu): true when the line after the last line break
 * started with too little indentation (the output then cut where its text starts, with indent_cut). The line
 * checked, as in llama.cpp, moves one line break a token. */
static bool indent_ends(sl_req *r) {
    if (r->p.n_indent <= 0 || !r->ind_nl) return false;
    const size_t len = r->n_text + r->n_held;
    if (r->ind_last_nl > 0) {
        size_t pos = r->ind_last_nl;
        int32_t k = 0;
        while (pos < len && (out_at(r, pos) == ' ' || out_at(r, pos) == '\t')) k++, pos++;
        if (pos < len && k < r->p.n_indent) {
            if (r->p.indent_cut) { /* the output ends where that line's text starts */
                if (pos <= r->n_text) {
                    r->n_text = pos;
                    if (r->text) r->text[pos] = '\0';
                } else { /* (the part of the held-back text before it goes out now: nothing is flushed later) */
                    emit_text_locked(r, r->held, pos - r->n_text);
                }
                r->n_held = 0;
                r->ind_cut = true;
            }
            return true;
        }
    }
    for (size_t i = r->ind_last_nl; i < len; i++)
        if (out_at(r, i) == '\n') {
            r->ind_last_nl = i + 1;
            break;
        }
    return false;
}

/* Record the sampled token: output, stop conditions. Returns true when r finished. */
static bool accept_token(sl_sched *s, sl_req *r, int32_t id, const float *logits, double t) {
    const sl_tokenizer *tok = sl_model_tokenizer(s->m);
    sl_tok_out o = {.id = id};
    if (r->p.logprobs >= 0) {
        o.n_top = sl_logprobs_top(logits, s->n_vocab, r->p.logprobs, o.top_ids, o.top_lps, id, &o.logprob);
    }
    r->tokens[r->n_tokens++] = id;
    int32_t n_gen = r->n_tokens - r->n_prompt;
    atomic_fetch_add(&s->metrics->generation_tokens, 1);
    bool eog = !r->p.ignore_eos && sl_tokenizer_is_eog(tok, id);
    bool stop_hit = false, newline = false;
    pthread_mutex_lock(&r->mu);
    size_t cap = (size_t)r->n_out;
    size_t capo = (size_t)r->cap_out;
    if (sl_grow((void **)&r->out, &capo, cap + 1, sizeof(sl_tok_out))) {
        r->cap_out = (int32_t)capo;
        r->out[r->n_out++] = o;
    }
    if (n_gen == 1) {
        r->t_first_token = t;
        sl_hist_observe(&s->metrics->ttft, t - r->t_submit);
    } else {
        sl_hist_observe(&s->metrics->itl, t - r->t_last_token);
    }
    r->t_last_token = t;
    if (!eog) {
        char buf[4096];
        int64_t n = sl_detok_push(&r->detok, id, buf, sizeof buf);
        if (n > 0) stop_hit = feed_text(r, buf, (size_t)n, false);
        newline = n > 0 && memchr(buf, '\n', (size_t)n);
    }
    const bool indented_out = !eog && !stop_hit && indent_ends(r);
    if (newline) r->ind_nl = true;
    for (int32_t i = 0; i < r->p.n_stop_ids && !stop_hit; i++) stop_hit = id == r->p.stop_ids[i];
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (eog || stop_hit) {
        finish_req(s, r, SL_FR_STOP, 0, NULL);
        return true;
    }
    const bool timed_out = newline && r->p.t_max_predict_ms > 0 && (t - r->t_first_token) * 1e3 > r->p.t_max_predict_ms;
    if ((r->p.max_tokens > 0 && n_gen >= r->p.max_tokens) || r->n_tokens >= s->p.n_ctx || r->n_tokens >= r->max_ctx ||
        timed_out || indented_out) {
        finish_req(s, r, SL_FR_LENGTH, 0, NULL);
        return true;
    }
    return false;
}

/* The logits of prompt position pos: a resumed mirostat stream's mu moves as the draw of token pos + 1 moved
 * it; prompt token pos + 1's logprob (echo with logprobs, prompt_logprobs), the top alternatives that either
 * asks for, and with prompt_logprobs its rank. */
static void record_plp(sl_sched *s, sl_req *r, int32_t pos, const float *logits) {
    if (pos == r->miro_next) { /* a resumed stream's mirostat: its mu as the draw of token pos + 1 left it */
        const float *lg = logits;
        int32_t allowed = 0;
        /* structured output: that draw saw the answer's mask; its guide then took the token */
        if (guided(r) && !(lg = guide_mask(s, r, logits, &allowed))) {
            r->miro_next = r->n_prompt; /* (no grammar trie, no mask: sample_one ends the request) */
            return;
        }
        sl_sampler_mirostat_observe(r->sampler, lg, r->tokens, pos + 1, r->tokens[pos + 1]);
        int bad;
        if (guided(r)) guide_take(s, r, r->tokens[pos + 1], &bad);
        r->miro_next++;
    }
    if (!r->plp || pos + 1 < r->n_plp) return;
    sl_tok_out o = {.id = r->tokens[pos + 1]};
    const int32_t k = r->p.echo && r->p.logprobs > r->p.prompt_logprobs ? r->p.logprobs : r->p.prompt_logprobs;
    o.n_top = sl_logprobs_top(logits, s->n_vocab, k, o.top_ids, o.top_lps, o.id, &o.logprob);
    if (r->p.prompt_logprobs >= 0) {
        const float x = logits[o.id] != logits[o.id] ? -INFINITY : logits[o.id];
        o.rank = 1;
        for (int32_t i = 0; i < s->n_vocab; i++) o.rank += logits[i] > x; /* (a NaN is never more likely) */
    }
    pthread_mutex_lock(&r->mu);
    r->plp[pos + 1] = o;
    r->n_plp = pos + 2;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Speculation for a decoding request: propose tokens (engine/ngram.h), put them after its last one
 * (r->tokens has room up to max_ctx), and return how many; within the step's budget, the proposed rows
 * left, max_ctx and max_tokens. */
static int32_t speculate(sl_req *r, int32_t budget, int32_t rows) {
    int32_t kmax = SL_MAX_SPEC;
    if (kmax > rows) kmax = rows;
    if (kmax > budget - 1) kmax = budget - 1;
    if (kmax > r->max_ctx - r->n_tokens) kmax = r->max_ctx - r->n_tokens;
    if (r->p.max_tokens > 0 && kmax > r->p.max_tokens - (r->n_tokens - r->n_prompt) - 1)
        kmax = r->p.max_tokens - (r->n_tokens - r->n_prompt) - 1;
    if (kmax <= 0) return 0;
    int32_t m;
    if (r->n_dprop > 0) { /* the draft model's proposal, made for this step (draft_propose) */
        m = r->n_dprop < kmax ? r->n_dprop : kmax;
        memcpy(r->draft, r->dprop, sizeof(int32_t) * (size_t)m);
        r->n_dprop = 0;
    } else {
        m = sl_spec_propose(&r->spec, r->tokens, r->n_tokens, kmax, r->draft);
    }
    memcpy(r->tokens + r->n_tokens, r->draft, sizeof(int32_t) * (size_t)m);
    return m;
}

/* One draft step over n tokens of nseq sequences (s->d_*); false when it failed (drafting stops). */
static bool draft_step(sl_sched *s, int32_t n, int32_t nseq) {
    sl_batch b = {.n_tokens = n, .tokens = s->d_tok, .pos = s->d_pos, .seq = s->d_seq, .want_logits = s->d_want};
    if (sl_fwd_step(s->dfwd, &b, s->d_seqs, nseq, s->dlogits) == SL_OK) return true;
    fprintf(stderr, "shardlm serve: the draft model's step failed, no more drafting: %s\n", sl_last_error());
    s->d_failed = true;
    return false;
}

/* Speculation with the draft model, before a step: each decoding sequence (at most spec_max_seqs running) has
 * the draft read what it has not read of it yet (its prompt the first time: in one draft step with the
 * others', as far as a step holds), then propose tokens one draft step at a time, greedily, until its limit
 * or a token the draft gives less than draft_p_min; they wait in r->dprop for speculate(). The draft's KV
 * holds the sequence's tokens up to d_computed; past the last verified token nothing it holds counts. */
static void draft_propose(sl_sched *s) {
    if (!s->dfwd || s->d_failed || s->running.n > s->p.spec_max_seqs) return;
    const int32_t B = s->p.max_num_batched_tokens;
    int32_t n = 0, nseq = 0;
    for (sl_req *r = s->running.head.next; r != &s->running.head; r = r->next) {
        r->n_dprop = 0;
        r->d_max = 0;
        if (r->state != ST_RUNNING || r->n_tokens - r->n_computed != 1 || r->p.embed || r->p.max_tokens == 0) continue;
        int32_t kmax = s->p.draft_max < SL_MAX_SPEC ? s->p.draft_max : SL_MAX_SPEC;
        if (kmax > r->max_ctx - r->n_tokens) kmax = r->max_ctx - r->n_tokens;
        if (r->p.max_tokens > 0 && kmax > r->p.max_tokens - (r->n_tokens - r->n_prompt) - 1)
            kmax = r->p.max_tokens - (r->n_tokens - r->n_prompt) - 1;
        if (r->d_computed > r->n_tokens - 1) r->d_computed = r->n_tokens - 1; /* (past that: proposals not kept) */
        const int32_t behind = r->n_tokens - r->d_computed, take = behind < B - n ? behind : B - n;
        if (kmax <= 0 || take <= 0 || sl_kv_seq_reserve(s->dkv, &r->dkv, r->n_tokens + kmax - 1) != SL_OK) continue;
        for (int32_t i = 0; i < take; i++) {
            s->d_tok[n + i] = r->tokens[r->d_computed + i];
            s->d_pos[n + i] = r->d_computed + i;
            s->d_seq[n + i] = nseq;
            s->d_want[n + i] = i == behind - 1 ? SL_WANT_LOGITS : 0; /* (caught up: its first proposal) */
        }
        n += take;
        r->d_computed += take;
        r->d_max = take == behind ? kmax : 0; /* (still reading its prompt: no proposal this step) */
        s->d_seqs[nseq] = &r->dkv;
        s->d_req[nseq++] = r;
    }
    for (int32_t j = 0; nseq > 0; j++) { /* step j: the tokens read, then proposal j - 1; logits give proposal j */
        if (n == 0 || !draft_step(s, n, nseq)) return;
        int32_t row = 0, next = 0;
        for (int32_t k = 0; k < nseq; k++) {
            sl_req *r = s->d_req[k];
            if (r->d_max <= j) continue;
            float p;
            const int32_t id = sl_spec_draft_pick(s->dlogits + (int64_t)row++ * s->n_vocab, s->n_vocab, &p);
            if (p < s->p.draft_p_min) {
                r->d_max = j; /* (not confident enough: it stops here) */
                continue;
            }
            r->dprop[r->n_dprop++] = id;
            if (r->n_dprop == r->d_max) continue;
            s->d_tok[next] = id; /* its next draft step reads it */
            s->d_pos[next] = r->d_computed++;
            s->d_seq[next] = k;
            s->d_want[next++] = SL_WANT_LOGITS;
        }
        n = next;
    }
}

/* Sample r's next token from the logits of its last one and take it. Returns true when r finished (it is
 * then dropped). */
static bool sample_one(sl_sched *s, sl_req *r, const float *lg, double t) {
    const float *slg = lg;
    if (guided(r)) { /* structured output: only tokens that keep the output a valid answer's start */
        int32_t allowed = 0;
        if (!(slg = guide_mask(s, r, lg, &allowed))) {
            finish_req(s, r, SL_FR_ABORT, 500, sl_last_error());
            drop_req(s, &s->running, r);
            return true;
        }
        if (allowed == 0) { /* no token can continue it */
            finish_req(s, r, SL_FR_STOP, 0, NULL);
            drop_req(s, &s->running, r);
            return true;
        }
    }
    const int32_t forced = sl_tb_forced(&r->tb);
    if (forced >= 0) { /* the reasoning budget is spent: its message and closing tag, whatever the logits say */
        const float keep = lg[forced] == lg[forced] && lg[forced] > -INFINITY ? lg[forced] : 0.0f;
        for (int32_t i = 0; i < s->n_vocab; i++) s->masked[i] = -INFINITY;
        s->masked[forced] = keep;
        slg = s->masked;
    }
    int32_t id = sl_sampler_sample(r->sampler, slg, r->tokens, r->n_tokens, 0, (uint64_t)r->n_tokens);
    if (id < 0) { /* nothing may come (allowed_token_ids that the answer's schema refuses, say): it ends here */
        finish_req(s, r, SL_FR_STOP, 0, NULL);
        drop_req(s, &s->running, r);
        return true;
    }
    budget_take(sl_model_tokenizer(s->m), r, id);
    if (accept_token(s, r, id, lg, t)) {
        drop_req(s, &s->running, r);
        return true;
    }
    int bad = 0;
    if (guided(r) && guide_take(s, r, id, &bad)) { /* the answer is complete */
        finish_req(s, r, SL_FR_STOP, 0, NULL);
        drop_req(s, &s->running, r);
        return true;
    }
    if (bad) { /* a lazy guide's trigger fired on text the guide cannot read (as llama.cpp, an error) */
        finish_req(s, r, SL_FR_ABORT, 500,
                   bad == 1 ? "grammar_lazy: the output from where its trigger fired does not follow the grammar (or schema)"
                           : "out of memory");
        drop_req(s, &s->running, r);
        return true;
    }
    return false;
}

/* One scheduling step. Returns false when there was nothing to do. */
static bool step(sl_sched *s) {
    /* cancellations */
    list *lists[2] = {&s->running, &s->waiting};
    for (int li = 0; li < 2; li++)
        for (sl_req *r = lists[li]->head.next, *nx; r != &lists[li]->head; r = nx) {
            nx = r->next;
            if (atomic_load(&r->cancelled)) {
                finish_req(s, r, SL_FR_ABORT, 0, NULL);
                drop_req(s, lists[li], r);
            }
        }
    draft_propose(s);
    int32_t budget = s->p.max_num_batched_tokens, n_tok = 0, n_seq = 0;
    /* prompt tokens (prefill chunks, recomputation) also draw on their own, smaller budget: decodes always fit,
     * so a burst of prompts neither makes one long step that stalls every stream nor starves the decodes */
    int32_t prefill = s->p.max_prefill_tokens > 0 ? s->p.max_prefill_tokens : budget;
    /* prompt positions whose logits echo with logprobs needs: rows of s->logits beyond one per sequence */
    int32_t plp_rows = SL_PLP_ROWS;
    /* tokens proposed by n-gram speculation: rows beyond those */
    int32_t spec_rows = s->running.n <= s->p.spec_max_seqs ? SL_SPEC_ROWS : 0; /* (a request without: proposes none) */
    /* running requests in order; a preemption only ever moves a request that
     * has not been batched yet (see reserve_running), so a snapshot works */
    int32_t n_run = 0;
    for (sl_req *r = s->running.head.next; r != &s->running.head && n_run < s->p.max_num_seqs; r = r->next)
        s->b_snap[n_run++] = r;
    for (int32_t i = 0; i < n_run && budget > 0; i++) {
        sl_req *r = s->b_snap[i];
        if (r->state != ST_RUNNING) continue; /* preempted for an older request */
        int32_t remaining = r->n_tokens - r->n_computed;
        int32_t chunk = remaining < budget ? remaining : budget;
        if (remaining > 1 && chunk > prefill) chunk = prefill; /* still in its prompt */
        if (plp_pending(r) && chunk > plp_rows) chunk = plp_rows;
        r->n_draft = remaining == 1 && spec_rows > 0 && chunk == 1 ? speculate(r, budget, spec_rows) : 0;
        chunk += r->n_draft;
        if (chunk <= 0 || !reserve_running(s, r, r->n_computed + chunk)) continue;
        add_to_batch(s, r, chunk, &n_tok, &n_seq);
        budget -= chunk;
        if (remaining > 1) prefill -= chunk;
        if (plp_pending(r)) plp_rows -= chunk;
        spec_rows -= r->n_draft;
    }
    /* admit waiting requests, oldest first; a full pool blocks only its own requests */
    bool pool_blocked[SL_KVM_MAX_POOLS] = {false};
    for (sl_req *r = s->waiting.head.next, *nx; r != &s->waiting.head && budget > 0 && prefill > 0; r = nx) {
        nx = r->next;
        if (s->running.n >= s->p.max_num_seqs) break;
        if (pool_blocked[r->kv.pool] || (plp_pending(r) && plp_rows == 0)) continue;
        /* echo with logprobs: cached blocks only where the prompt logprobs are known */
        /* an embedding pooled over every position or the first: every position is computed */
        const bool all = r->p.embed && r->p.pooling != SL_POOL_LAST;
        int32_t cached = all ? 0 : sl_kvm_acquire_prefix(s->kvm, &r->kv, r->tokens, plp_pending(r) ? plp_known(r) : r->n_tokens);
        if (r->embd_acc) memset(r->embd_acc, 0, sizeof(double) * (size_t)r->n_embd); /* (again, if it was preempted) */
        int32_t remaining = r->n_tokens - cached;
        int32_t chunk = remaining < budget ? remaining : budget;
        if (chunk > prefill) chunk = prefill;
        if (plp_pending(r) && chunk > plp_rows) chunk = plp_rows;
        if (sl_kvm_reserve(s->kvm, &r->kv, cached + chunk) != SL_OK) {
            sl_kvm_release(s->kvm, &r->kv);
            pool_blocked[r->kv.pool] = true;
            continue;
        }
        r->n_computed = cached;
        r->n_draft = 0;
        if (!r->admitted_once) {
            r->admitted_once = true;
            r->t_admit = sl_sched_now_s();
            r->n_cached_prompt = cached;
            atomic_fetch_add(&s->metrics->cached_prompt_tokens, (uint64_t)cached);
        }
        list_remove(&s->waiting, r);
        r->state = ST_RUNNING;
        list_insert_in_order(&s->running, r);
        add_to_batch(s, r, chunk, &n_tok, &n_seq);
        budget -= chunk;
        prefill -= chunk;
        if (plp_pending(r)) plp_rows -= chunk;
    }
    publish_gauges(s);
    if (n_tok == 0) return false;
    sl_hist_observe(&s->metrics->step_tokens, n_tok);

    bool hidden = false;
    for (int32_t t = 0; t < n_tok && !hidden; t++) hidden = s->b_want[t] & SL_WANT_HIDDEN;
    if (hidden && !s->hidden)
        s->hidden = sl_alloc_array((size_t)s->p.max_num_batched_tokens * (size_t)s->m->hp.n_embd, sizeof(float));
    sl_batch b = {.n_tokens = n_tok, .tokens = s->b_tok, .pos = s->b_pos, .seq = s->b_seq, .want_logits = s->b_want,
                  .hidden = s->hidden};
    sl_status st = hidden && !s->hidden ? SL_FAIL(SL_ERR_NOMEM, "out of memory for the hidden states of embeddings")
                                        : sl_fwd_step(s->fwd, &b, s->b_seqs, n_seq, s->logits);
    double t = sl_sched_now_s();
    if (st) {
        /* an engine failure aborts the requests of this step; the server keeps serving */
        fprintf(stderr, "shardlm serve: forward step failed: %s\n", sl_last_error());
        for (int32_t k = 0; k < n_seq; k++) {
            sl_req *r = s->b_req[k];
            finish_req(s, r, SL_FR_ABORT, 500, sl_last_error());
            drop_req(s, &s->running, r);
        }
        return true;
    }
    /* logits rows: the tokens that wanted them, in batch order */
    int32_t row = 0, t0 = 0, hrow = 0;
    for (int32_t k = 0; k < n_seq; k++) {
        sl_req *r = s->b_req[k];
        /* lg[0]: the last token's logits; lg[1 + j]: those of proposed token j */
        const float *lg[1 + SL_MAX_SPEC];
        int32_t n_lg = 0;
        for (int32_t i = 0; i < s->b_chunk[k]; i++) {
            if (s->b_want[t0 + i] & SL_WANT_HIDDEN)
                pool_row(r, r->n_computed + i, s->hidden + (int64_t)hrow++ * s->m->hp.n_embd);
            if (!(s->b_want[t0 + i] & SL_WANT_LOGITS)) continue;
            const float *row_lg = s->logits + (int64_t)row++ * s->n_vocab;
            if (r->n_computed + i >= r->n_tokens - 1) lg[n_lg++] = row_lg;
            else record_plp(s, r, r->n_computed + i, row_lg);
        }
        t0 += s->b_chunk[k];
        /* proposed tokens count as computed once they turn out to be the tokens sampled */
        r->n_computed += s->b_chunk[k] - r->n_draft;
        sl_kvm_commit(s->kvm, &r->kv, r->tokens, r->n_computed);
        if (r->p.embed && r->n_computed == r->n_tokens) {
            finish_embedding(s, r);
            continue;
        }
        if (n_lg == 0) continue;
        if (r->p.max_tokens == 0) { /* echo of the prompt alone: its logprobs are all there is to compute */
            finish_req(s, r, SL_FR_LENGTH, 0, NULL);
            drop_req(s, &s->running, r);
            continue;
        }
        const int32_t n_draft = r->n_draft; /* r may be gone once it finishes */
        int32_t accepted = 0;
        bool gone = false;
        r->spec_proposed += n_draft;
        for (int32_t j = 0;; j++) {
            if ((gone = sample_one(s, r, lg[j], t))) break;
            /* proposed token j was what the sampler picked: the logits at its position hold, go on */
            if (j >= n_draft || r->tokens[r->n_tokens - 1] != r->draft[j]) break;
            r->n_computed++;
            sl_kvm_commit(s->kvm, &r->kv, r->tokens, r->n_computed);
            accepted++;
            r->spec_accepted++;
        }
        if (n_draft) {
            atomic_fetch_add(&s->metrics->spec_drafts, 1);
            atomic_fetch_add(&s->metrics->spec_draft_tokens, (uint64_t)n_draft);
            atomic_fetch_add(&s->metrics->spec_accepted_tokens, (uint64_t)accepted);
            if (!gone) sl_spec_update(&r->spec, n_draft, accepted);
        }
    }
    publish_gauges(s);
    return true;
}

static void *sched_main(void *arg) {
    sl_sched *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stop && list_empty(&s->incoming) && list_empty(&s->running) && list_empty(&s->waiting) &&
               s->reset_asked == s->reset_done)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stop) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        if (s->reset_asked != s->reset_done) { /* (between steps: the KV manager is this thread's) */
            s->reset_freed = sl_kvm_reset_cache(s->kvm);
            s->reset_done = s->reset_asked;
            publish_gauges(s); /* (the cached blocks /metrics shows) */
            pthread_cond_broadcast(&s->reset_cv);
        }
        list done;
        list_init(&done);
        while (!list_empty(&s->incoming)) {
            sl_req *r = s->incoming.head.next;
            list_remove(&s->incoming, r);
            /* a resumed stream with no token left: only its held-back text to release; an echo of the prompt
             * alone: nothing to compute, unless its logprobs were asked for */
            const bool nothing = r->p.max_tokens == 0 && !plp_pending(r) && !r->p.embed && !r->p.prefill_only;
            if (nothing) list_push_back(&done, r);
            else list_insert_in_order(&s->waiting, r);
            r->state = nothing ? ST_DONE : ST_WAITING;
        }
        pthread_mutex_unlock(&s->mu);
        while (!list_empty(&done)) {
            sl_req *r = done.head.next;
            list_remove(&done, r);
            finish_req(s, r, SL_FR_LENGTH, 0, NULL);
            sl_req_release(r);
        }
        if (!step(s)) {
            /* nothing runnable (e.g. everything waits for blocks): wait for a change */
            pthread_mutex_lock(&s->mu);
            bool cancelled = false;
            for (sl_req *r = s->waiting.head.next; r != &s->waiting.head; r = r->next)
                cancelled |= atomic_load(&r->cancelled);
            if (!s->stop && list_empty(&s->incoming) && !cancelled && s->reset_asked == s->reset_done) {
                sl_cond_wait_ms(&s->cv, &s->mu, 50);
            }
            pthread_mutex_unlock(&s->mu);
        }
    }
    /* abort whatever is left */
    list *lists[2] = {&s->running, &s->waiting};
    for (int li = 0; li < 2; li++)
        while (!list_empty(lists[li])) {
            sl_req *r = lists[li]->head.next;
            finish_req(s, r, SL_FR_ABORT, 503, "the server is shutting down");
            drop_req(s, lists[li], r);
        }
    pthread_mutex_lock(&s->mu);
    while (!list_empty(&s->incoming)) {
        sl_req *r = s->incoming.head.next;
        list_remove(&s->incoming, r);
        finish_req(s, r, SL_FR_ABORT, 503, "the server is shutting down");
        sl_req_release(r);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- create ---------------------------------------------------------------- */

/* The longest sequence a pool's class holds, with a context of n_ctx tokens. */
static int32_t pool_longest(const sl_kvm_pool_cfg *pc, int32_t n_ctx) {
    return pc->max_ctx > 0 && pc->max_ctx < n_ctx ? pc->max_ctx : n_ctx;
}

/* The draft model's part (p.draft, checked: the target's vocabulary, token by token), with n_blocks KV blocks
 * (the target's count: a slot for each of its tokens). */
static sl_status draft_create(sl_sched *s, const sl_model *d, int32_t n_blocks) {
    sl_status st = sl_spec_draft_vocab(sl_model_tokenizer(s->m), sl_model_tokenizer(d));
    if (st) return st;
    if (d->hp.n_vocab != s->m->hp.n_vocab)
        return SL_FAIL(SL_ERR_INVALID, "the draft model's output has %d rows, the model's %d", d->hp.n_vocab,
                       s->m->hp.n_vocab);
    if (s->p.draft_max < 1 || s->p.draft_max > SL_MAX_SPEC || !(s->p.draft_p_min >= 0 && s->p.draft_p_min <= 1))
        return SL_FAIL(SL_ERR_INVALID, "draft model: %d tokens at most per step (1 to %d), a probability floor of %g "
                       "(0 to 1)", s->p.draft_max, SL_MAX_SPEC, (double)s->p.draft_p_min);
    const int64_t kv_dim = (int64_t)d->hp.n_head_kv * d->hp.head_dim;
    sl_type type = s->p.kv_type; /* (the cache's type, where the draft's shape takes it) */
    if (type == SL_TYPE_Q8_0 && (kv_dim % 32 != 0 || d->hp.head_dim % 32 != 0)) type = SL_TYPE_F16;
    if ((st = sl_kv_create_typed(d->hp.n_layer, (int32_t)kv_dim, s->p.block_size, n_blocks, type, &s->dkv))) return st;
    sl_kv_prefault(s->dkv);
    const sl_fwd_params fp = {.max_batch = s->p.max_num_batched_tokens, .n_ctx = s->p.n_ctx, .n_threads = s->p.n_threads,
                              .pool = sl_fwd_pool(s->fwd)};
    if ((st = sl_fwd_create(d, s->dkv, &fp, &s->dfwd))) return st;
    const size_t B = (size_t)s->p.max_num_batched_tokens, S = (size_t)s->p.max_num_seqs + 1;
    s->dlogits = sl_alloc_array(S * (size_t)d->hp.n_vocab, sizeof(float));
    s->d_tok = sl_alloc_array(B, sizeof(int32_t));
    s->d_pos = sl_alloc_array(B, sizeof(int32_t));
    s->d_seq = sl_alloc_array(B, sizeof(int32_t));
    s->d_want = sl_alloc_array(B, 1);
    s->d_seqs = sl_alloc_array(S, sizeof(sl_kv_seq *));
    s->d_req = sl_alloc_array(S, sizeof(sl_req *));
    if (!s->dlogits || !s->d_tok || !s->d_pos || !s->d_seq || !s->d_want || !s->d_seqs || !s->d_req)
        return SL_FAIL(SL_ERR_NOMEM, "out of memory for the draft model's step buffers");
    return SL_OK;
}

sl_status sl_sched_create(const sl_model *m, const char *model_id, const sl_sched_params *p, sl_metrics *metrics,
                          sl_sched **out) {
    *out = NULL;
    const sl_hparams *hp = &m->hp;
    sl_sched *s = sl_calloc(1, sizeof *s);
    if (!s) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    s->m = m;
    s->p = *p;
    s->metrics = metrics;
    s->n_vocab = hp->n_vocab;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->reset_cv, NULL);
    list_init(&s->incoming);
    list_init(&s->waiting);
    list_init(&s->running);
    atomic_init(&s->next_id, 1);
    sl_status st;
    if (s->p.n_ctx <= 0 || s->p.n_ctx > hp->n_ctx_train) s->p.n_ctx = hp->n_ctx_train;
    const int32_t bs = s->p.block_size;
    const int64_t kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
    if (p->max_num_seqs < 1 || p->max_num_batched_tokens < p->max_num_seqs || p->max_prefill_tokens < 0) {
        /* a step must hold one token of every running sequence, or the youngest would wait for the oldest */
        st = SL_FAIL(SL_ERR_INVALID, "max_num_batched_tokens %d is less than max_num_seqs %d (or that is < 1, or "
                     "max_prefill_tokens %d < 0)", p->max_num_batched_tokens, p->max_num_seqs, p->max_prefill_tokens);
        goto fail;
    }
    if (p->spec_tokens < 0 || p->spec_tokens > SL_MAX_SPEC ||
        (p->spec_tokens > 0 && (p->spec_lookup_min < 1 || p->spec_lookup_max < p->spec_lookup_min))) {
        st = SL_FAIL(SL_ERR_INVALID, "speculation: %d tokens (0 to %d), n-grams of %d to %d tokens (1 <= min <= max)",
                     p->spec_tokens, SL_MAX_SPEC, p->spec_lookup_min, p->spec_lookup_max);
        goto fail;
    }
    if (p->kv_type != SL_TYPE_F32 && p->kv_type != SL_TYPE_F16 && p->kv_type != SL_TYPE_Q8_0) {
        st = SL_FAIL(SL_ERR_INVALID, "KV type %s is not supported (f32, f16, q8_0)", sl_type_name(p->kv_type));
        goto fail;
    }
    if (sl_type_row_size(p->kv_type, kv_dim) == 0 || kv_dim % (int64_t)sl_type_get(p->kv_type)->blck != 0) {
        st = SL_FAIL(SL_ERR_INVALID, "--kv-type %s needs a KV width that is a multiple of %u; this model's is %lld",
                     sl_type_name(p->kv_type), sl_type_get(p->kv_type)->blck, (long long)kv_dim);
        goto fail;
    }
    const int64_t block_bytes = (int64_t)sl_kv_bytes_per_block(p->kv_type, hp->n_layer, (int32_t)kv_dim, bs);
    int64_t n_blocks = p->kv_mem_mib * 1024 * 1024 / block_bytes;
    /* no point holding more than every sequence at full context, twice over (for the prefix cache) — but every
     * pool must hold the longest sequence of its class, whatever its share (one sequence at a time with the
     * default pools gave the short class 30% of two contexts: a request of the whole context was refused) */
    int64_t useful = 2 * (int64_t)p->max_num_seqs * ((s->p.n_ctx + bs - 1) / bs);
    for (int i = 0; i < p->n_pools; i++) {
        const int32_t longest = pool_longest(&p->pools[i], s->p.n_ctx);
        const int64_t blocks = (longest + bs - 1) / bs, whole = (int64_t)ceil((double)(blocks + 1) / p->pools[i].share);
        if (p->pools[i].share > 0 && whole > useful) useful = whole;
    }
    if (n_blocks > useful) n_blocks = useful;
    if (n_blocks < (s->p.n_ctx + bs - 1) / bs) {
        st = SL_FAIL(SL_ERR_INVALID, "--kv-mem %lld MiB holds %lld blocks of %d tokens, fewer than one full context (%d "
                     "tokens) needs", (long long)p->kv_mem_mib, (long long)n_blocks, bs, s->p.n_ctx);
        goto fail;
    }
    if (n_blocks > INT32_MAX / 2) n_blocks = INT32_MAX / 2;
    for (int i = 0; i < p->n_pools; i++) { /* (said at start: its longer requests are refused, each with a 400) */
        const int32_t longest = pool_longest(&p->pools[i], s->p.n_ctx);
        const int64_t holds = (int64_t)((double)n_blocks * p->pools[i].share) * bs;
        if (holds < longest)
            fprintf(stderr, "shardlm serve: warning: KV pool '%s' holds about %lld tokens (its %.0f%% of --kv-mem %lld MiB), "
                            "fewer than its longest requests (%d): those are refused\n",
                    p->pools[i].name, (long long)holds, 100 * p->pools[i].share, (long long)p->kv_mem_mib, longest);
    }
    /* the salt of every block key: model identity and KV element type */
    {
        char ident[512];
        int n = snprintf(ident, sizeof ident, "shardlm-kv-v1|%s|%s|%d|%d|%d|%d|%s", model_id, hp->arch, hp->n_layer,
                         hp->n_embd, hp->n_head_kv, hp->head_dim, sl_type_name(p->kv_type));
        uint8_t salt[SL_KVM_HASH];
        unsigned len = 0;
        EVP_Digest(ident, (size_t)n, salt, &len, EVP_sha256(), NULL);
        if ((st = sl_kvm_create((int32_t)n_blocks, bs, p->pools, p->n_pools, salt, p->prefix_caching, &s->kvm))) goto fail;
    }
    metrics->n_pools = p->n_pools < SL_METRICS_POOLS ? p->n_pools : SL_METRICS_POOLS;
    for (int i = 0; i < metrics->n_pools; i++) snprintf(metrics->pool_names[i], 16, "%s", p->pools[i].name);
    if ((st = sl_kv_create_typed(hp->n_layer, (int32_t)kv_dim, bs, (int32_t)n_blocks, p->kv_type, &s->kv))) goto fail;
    s->kv_blocks = n_blocks;
    s->kv_bytes = n_blocks * block_bytes;
    sl_kv_prefault(s->kv);
    sl_fwd_params fp = {.max_batch = p->max_num_batched_tokens, .n_ctx = s->p.n_ctx, .n_threads = p->n_threads};
    if ((st = sl_fwd_create(m, s->kv, &fp, &s->fwd))) goto fail;
    const size_t B = (size_t)p->max_num_batched_tokens, S = (size_t)p->max_num_seqs + 1;
    s->b_tok = sl_alloc_array(B, sizeof(int32_t));
    s->b_pos = sl_alloc_array(B, sizeof(int32_t));
    s->b_seq = sl_alloc_array(B, sizeof(int32_t));
    s->b_want = sl_alloc_array(B, 1);
    s->b_seqs = sl_alloc_array(S, sizeof(sl_kv_seq *));
    s->b_req = sl_alloc_array(S, sizeof(sl_req *));
    s->b_chunk = sl_alloc_array(S, sizeof(int32_t));
    s->b_snap = sl_alloc_array(S, sizeof(sl_req *));
    s->logits = sl_alloc_array((S + SL_PLP_ROWS + SL_SPEC_ROWS) * (size_t)hp->n_vocab, /* (any request may speculate) */
                               sizeof(float));
    s->masked = sl_alloc_array((size_t)hp->n_vocab, sizeof(float));
    if (p->draft && (st = draft_create(s, p->draft, (int32_t)n_blocks))) goto fail;
    if ((st = sl_json_guide_create(sl_model_tokenizer(m), &s->guide))) goto fail;
    if (!s->b_tok || !s->b_pos || !s->b_seq || !s->b_want || !s->b_seqs || !s->b_req || !s->b_chunk || !s->b_snap || !s->logits ||
        !s->masked) {
        st = SL_FAIL(SL_ERR_NOMEM, "out of memory for the scheduler's step buffers");
        goto fail;
    }
    publish_gauges(s);
    if (pthread_create(&s->thread, NULL, sched_main, s) != 0) {
        st = SL_FAIL(SL_ERR_NOMEM, "cannot start the scheduler thread");
        goto fail;
    }
    s->thread_started = true;
    *out = s;
    return SL_OK;
fail:
    sl_sched_destroy(s);
    return st;
}

void sl_sched_destroy(sl_sched *s) {
    if (!s) return;
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    sl_fwd_destroy(s->dfwd); /* (on the target's threads: first) */
    sl_kv_destroy(s->dkv);
    sl_free(s->dlogits);
    sl_free(s->d_tok);
    sl_free(s->d_pos);
    sl_free(s->d_seq);
    sl_free(s->d_want);
    sl_free(s->d_seqs);
    sl_free(s->d_req);
    sl_fwd_destroy(s->fwd);
    sl_kv_destroy(s->kv);
    sl_kvm_destroy(s->kvm);
    sl_free(s->b_tok);
    sl_free(s->b_pos);
    sl_free(s->b_seq);
    sl_free(s->b_want);
    sl_free(s->b_seqs);
    sl_free(s->b_req);
    sl_free(s->b_chunk);
    sl_free(s->b_snap);
    sl_free(s->logits);
    sl_free(s->masked);
    sl_free(s->hidden);
    sl_json_guide_destroy(s->guide);
    sl_gram_guide_destroy(s->gguide);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->reset_cv);
    sl_free(s);
}

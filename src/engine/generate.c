/*
 * generate.c — prefill + decode loop for one sequence (see generate.h).
 */
#include "generate.h"

#include "core/alloc.h"
#include "core/status.h"
#include "engine/forward.h"
#include "engine/kv.h"
#include "engine/ngram.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#include <string.h>

#define KV_BLOCK 16

typedef struct gen_ctx {
    sl_kv_cache *kv;
    sl_fwd *fwd;
    sl_kv_seq seq;
    int32_t *pos, *seqidx;
    uint8_t *want;
    int32_t max_batch;
} gen_ctx;

static void gen_deinit(gen_ctx *g) {
    if (g->kv) sl_kv_seq_deinit(g->kv, &g->seq);
    sl_fwd_destroy(g->fwd);
    sl_kv_destroy(g->kv);
    sl_free(g->pos);
    sl_free(g->seqidx);
    sl_free(g->want);
}

/* pool: another forward's threads to run on, or NULL */
static sl_status gen_init(gen_ctx *g, const sl_model *m, int32_t n_ctx, int32_t max_batch, int32_t n_threads, sl_pool *pool) {
    const sl_hparams *hp = &m->hp;
    sl_status st = sl_kv_create(hp->n_layer, hp->n_head_kv * hp->head_dim, KV_BLOCK, (n_ctx + KV_BLOCK - 1) / KV_BLOCK,
                                &g->kv);
    if (st) return st;
    sl_fwd_params fp = {.max_batch = max_batch, .n_ctx = n_ctx, .n_threads = n_threads, .pool = pool};
    if ((st = sl_fwd_create(m, g->kv, &fp, &g->fwd))) return st;
    g->max_batch = max_batch;
    g->pos = sl_alloc_array((size_t)max_batch, sizeof(int32_t));
    g->seqidx = sl_calloc((size_t)max_batch, sizeof(int32_t));
    g->want = sl_calloc((size_t)max_batch, 1);
    if (!g->pos || !g->seqidx || !g->want) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    return SL_OK;
}

/* Feed tokens[0..n) at positions start.. ; logits for the last `n_out` of them. */
static sl_status gen_feed(gen_ctx *g, const int32_t *tokens, int32_t n, int32_t start, int32_t n_out, float *logits,
                          int32_t n_vocab) {
    sl_status st = sl_kv_seq_reserve(g->kv, &g->seq, start + n);
    if (st) return st;
    sl_kv_seq *seqs[1] = {&g->seq};
    int32_t written = 0;
    for (int32_t off = 0; off < n; off += g->max_batch) {
        int32_t c = n - off < g->max_batch ? n - off : g->max_batch;
        int32_t wanted = 0;
        for (int32_t i = 0; i < c; i++) {
            g->pos[i] = start + off + i;
            g->want[i] = (off + i) >= n - n_out;
            wanted += g->want[i];
        }
        sl_batch b = {.n_tokens = c, .tokens = tokens + off, .pos = g->pos, .seq = g->seqidx, .want_logits = g->want};
        if ((st = sl_fwd_step(g->fwd, &b, seqs, 1, logits + (int64_t)written * n_vocab))) return st;
        written += wanted;
    }
    return SL_OK;
}

/* The draft model's proposal after hist[0, n_hist): it reads what it has not read of it (from *d_computed; past
 * the last token fed, n_hist - 1, what it holds is not the sequence's), then proposes greedily, at most kmax
 * tokens, stopping before one it gives less than p_min. */
static sl_status draft_propose(gen_ctx *dg, const int32_t *hist, int32_t n_hist, int32_t *d_computed, int32_t kmax,
                               float p_min, float *dlogits, int32_t n_vocab, int32_t *draft, int32_t *n_draft) {
    *n_draft = 0;
    if (*d_computed > n_hist - 1) *d_computed = n_hist - 1;
    if (kmax <= 0) return SL_OK;
    sl_status st = gen_feed(dg, hist + *d_computed, n_hist - *d_computed, *d_computed, 1, dlogits, n_vocab);
    for (*d_computed = n_hist; !st;) {
        float prob;
        const int32_t id = sl_spec_draft_pick(dlogits, n_vocab, &prob);
        if (prob < p_min) break;
        draft[(*n_draft)++] = id;
        if (*n_draft == kmax) break;
        st = gen_feed(dg, &id, 1, (*d_computed)++, 1, dlogits, n_vocab);
    }
    return st;
}

sl_status sl_generate(const sl_model *m, const int32_t *prompt, int32_t n_prompt, const sl_gen_params *p,
                      sl_gen_cb cb, void *ud, int32_t *n_generated, sl_finish *finish) {
    const int32_t n_vocab = m->hp.n_vocab;
    int32_t n_ctx = p->n_ctx > 0 ? p->n_ctx : m->hp.n_ctx_train;
    int32_t max_batch = p->max_batch > 0 ? p->max_batch : 512;
    if (max_batch > n_ctx) max_batch = n_ctx;
    *n_generated = 0;
    *finish = SL_FINISH_LENGTH;
    if (n_prompt <= 0) return SL_FAIL(SL_ERR_INVALID, "empty prompt: at least one token (e.g. BOS) is needed");
    if (n_prompt > n_ctx)
        return SL_FAIL(SL_ERR_RANGE, "prompt has %d tokens, longer than the context of %d", n_prompt, n_ctx);
    gen_ctx g = {0};
    sl_sampler *smp = NULL;
    sl_json_guide *texts = NULL; /* a grammar's token mask: the token texts, their trie, the output's reading */
    sl_gram_guide *guide = NULL;
    sl_gram_state *gs = NULL;
    float *masked = NULL;
    int32_t *hist = NULL;
    float *logits = NULL;
    const int32_t k_spec = p->spec_tokens < 0 ? 0 : p->spec_tokens > SL_SPEC_MAX_TOKENS ? SL_SPEC_MAX_TOKENS : p->spec_tokens;
    sl_spec spec;
    sl_spec_init(&spec, k_spec, p->spec_lookup_min > 0 ? p->spec_lookup_min : 2,
                 p->spec_lookup_max > 0 ? p->spec_lookup_max : 4);
    const int32_t k_draft = !p->draft ? 0 : p->draft_max < 1 ? 1 : p->draft_max > SL_SPEC_MAX_TOKENS ? SL_SPEC_MAX_TOKENS
                                                                                                    : p->draft_max;
    const int32_t k_max = k_draft > k_spec ? k_draft : k_spec;
    gen_ctx dg = {0};            /* the draft model's */
    int32_t d_computed = 0;      /* the positions its KV holds (the sequence's tokens up to there) */
    float *dlogits = NULL;
    sl_status st = gen_init(&g, m, n_ctx, max_batch > k_max + 1 ? max_batch : k_max + 1, p->n_threads > 0 ? p->n_threads : 1,
                            NULL);
    if (st) goto fail;
    if (p->draft) {
        if ((st = sl_spec_draft_vocab(m->tok, p->draft->tok))) goto fail;
        if (p->draft->hp.n_vocab != n_vocab) {
            st = SL_FAIL(SL_ERR_INVALID, "the draft model's output has %d rows, the model's %d", p->draft->hp.n_vocab, n_vocab);
            goto fail;
        }
        if ((st = gen_init(&dg, p->draft, n_ctx, max_batch, p->n_threads > 0 ? p->n_threads : 1, sl_fwd_pool(g.fwd)))) goto fail;
        if (!(dlogits = sl_alloc_array((size_t)n_vocab, sizeof(float)))) {
            st = SL_FAIL(SL_ERR_NOMEM, "out of memory");
            goto fail;
        }
    }
    sl_sampler_params sp = p->sampling;
    sp.n_ctx = n_ctx; /* (DRY looks at most this far back) */
    if ((st = sl_sampler_create(&sp, n_vocab, &smp)) || (st = sl_sampler_set_dry_breakers(smp, p->dry_breakers)) ||
        (st = sl_sampler_set_infill(smp, m->tok)))
        goto fail;
    if (p->grammar) {
        if ((st = sl_json_guide_create(m->tok, &texts)) || (st = sl_gram_guide_create(texts, m->tok, &guide)) ||
            (st = sl_gram_state_create(p->grammar, &gs)))
            goto fail;
        if (!(masked = sl_alloc_array((size_t)n_vocab, sizeof(float)))) {
            st = SL_FAIL(SL_ERR_NOMEM, "out of memory");
            goto fail;
        }
    }
    /* hist: the sequence, then the tokens proposed after it */
    hist = sl_alloc_array((size_t)n_ctx + 1 + SL_SPEC_MAX_TOKENS, sizeof(int32_t));
    logits = sl_alloc_array((size_t)(k_max + 1) * (size_t)n_vocab, sizeof(float));
    if (!hist || !logits) {
        st = SL_FAIL(SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int32_t i = 0; i < n_prompt; i++) hist[i] = prompt[i];
    if ((st = gen_feed(&g, prompt, n_prompt, 0, 1, logits, n_vocab))) goto fail;
    int32_t n_hist = n_prompt, n_draft = 0;
    int32_t draft[SL_SPEC_MAX_TOKENS];
    for (;;) {
        /* logits row j: after the last token fed before the proposals (j = 0), or after proposal j - 1,
         * which holds while the proposals before it were the tokens sampled */
        int32_t kept = 0, id = -1;
        bool stop = false;
        for (int32_t j = 0; j <= n_draft && !stop; j++) {
            if (p->n_predict >= 0 && *n_generated >= p->n_predict) {
                stop = true;
                break;
            }
            const float *lg = logits + (int64_t)j * n_vocab, *slg = lg;
            if (gs) {
                memcpy(masked, lg, sizeof(float) * (size_t)n_vocab);
                slg = masked;
                if (sl_gram_guide_mask(guide, gs, masked) == 0) { /* no token continues the grammar's sentence */
                    *finish = SL_FINISH_STOP;
                    stop = true;
                    break;
                }
            }
            id = sl_sampler_sample(smp, slg, hist, n_hist, 0, (uint64_t)n_hist);
            if (id < 0) {
                st = SL_FAIL(SL_ERR_INVALID, "generate: every logit after %d tokens is -inf or NaN: no token to sample",
                             (int)n_hist);
                goto fail;
            }
            hist[n_hist++] = id;
            (*n_generated)++;
            bool done = false;
            if (gs) {
                size_t n;
                const char *text = sl_json_guide_text(texts, id, &n);
                done = sl_gram_feed_token(gs, id, text, n) && sl_gram_done(gs);
            }
            if (!cb(ud, id, lg, n_vocab)) {
                *finish = SL_FINISH_CALLER;
                stop = true;
            } else if ((!p->ignore_eos && sl_tokenizer_is_eog(m->tok, id)) || done) {
                *finish = SL_FINISH_STOP;
                stop = true;
            } else if ((p->n_predict >= 0 && *n_generated >= p->n_predict) || n_hist >= n_ctx) {
                stop = true; /* length, or the context is full */
            } else if (j < n_draft && id == draft[j]) {
                kept++;
                continue;
            }
            break;
        }
        sl_spec_update(&spec, n_draft, kept);
        if (stop) break;
        /* feed the last token sampled with what it proposes after it (within the context and n_predict) */
        int32_t kmax = n_ctx - n_hist;
        if (p->n_predict >= 0 && kmax > p->n_predict - *n_generated - 1) kmax = p->n_predict - *n_generated - 1;
        if (p->draft) {
            if (kmax > k_draft) kmax = k_draft;
            if ((st = draft_propose(&dg, hist, n_hist, &d_computed, kmax, p->draft_p_min, dlogits, n_vocab, draft, &n_draft)))
                goto fail;
        } else {
            n_draft = sl_spec_propose(&spec, hist, n_hist, kmax, draft);
        }
        for (int32_t j = 0; j < n_draft; j++) hist[n_hist + j] = draft[j];
        if ((st = gen_feed(&g, hist + n_hist - 1, 1 + n_draft, n_hist - 1, 1 + n_draft, logits, n_vocab))) goto fail;
    }
fail:
    sl_free(dlogits);
    gen_deinit(&dg); /* (on g's threads: first) */
    sl_free(logits);
    sl_free(hist);
    sl_free(masked);
    sl_gram_state_destroy(gs);
    sl_gram_guide_destroy(guide);
    sl_json_guide_destroy(texts);
    sl_sampler_destroy(smp);
    gen_deinit(&g);
    return st;
}

sl_status sl_eval_logits(const sl_model *m, const int32_t *tokens, int32_t n, int32_t n_out, int32_t n_threads,
                         float *logits) {
    if (n <= 0 || n_out <= 0 || n_out > n) return SL_FAIL(SL_ERR_INVALID, "eval: %d tokens, %d outputs", n, n_out);
    if (n > m->hp.n_ctx_train)
        return SL_FAIL(SL_ERR_RANGE, "eval: %d tokens, longer than the context of %d", n, m->hp.n_ctx_train);
    gen_ctx g = {0};
    sl_status st = gen_init(&g, m, n, n, n_threads > 0 ? n_threads : 1, NULL);
    if (!st) st = gen_feed(&g, tokens, n, 0, n_out, logits, m->hp.n_vocab);
    gen_deinit(&g);
    return st;
}

sl_status sl_eval_hidden(const sl_model *m, const int32_t *tokens, int32_t n, int32_t n_threads, float *hidden) {
    if (n <= 0) return SL_FAIL(SL_ERR_INVALID, "eval: %d tokens", n);
    if (n > m->hp.n_ctx_train)
        return SL_FAIL(SL_ERR_RANGE, "eval: %d tokens, longer than the context of %d", n, m->hp.n_ctx_train);
    gen_ctx g = {0};
    sl_status st = gen_init(&g, m, n, n, n_threads > 0 ? n_threads : 1, NULL);
    if (!st) st = sl_kv_seq_reserve(g.kv, &g.seq, n);
    if (!st) {
        sl_kv_seq *seqs[1] = {&g.seq};
        for (int32_t i = 0; i < n; i++) {
            g.pos[i] = i;
            g.want[i] = SL_WANT_HIDDEN;
        }
        sl_batch b = {.n_tokens = n, .tokens = tokens, .pos = g.pos, .seq = g.seqidx, .want_logits = g.want, .hidden = hidden};
        st = sl_fwd_step(g.fwd, &b, seqs, 1, NULL);
    }
    gen_deinit(&g);
    return st;
}

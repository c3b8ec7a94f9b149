/*
 * beam.c — beam search over the scheduler (see beam.h).
 */
#include "server/beam.h"

#include "core/alloc.h"
#include "core/pool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_SLICE_MS 50

/* Its output tokens' log probabilities (with logprobs asked for), shared by the beams that extend it: each
 * node is one token's, its parent the token's before. */
typedef struct lp_node {
    sl_tok_out t;
    struct lp_node *parent;
    int32_t refs;
} lp_node;

static void lp_release(lp_node *n) {
    while (n && --n->refs == 0) {
        lp_node *p = n->parent;
        sl_free(n);
        n = p;
    }
}

/* A beam being searched: its tokens, their log probabilities' sum, where it was found (ties keep that order). */
typedef struct cand {
    int32_t *ids;
    int32_t n;
    double cum, score;
    bool ended;
    int64_t order;
    lp_node *lp; /* its last output token's (NULL: none, or not asked for) */
} cand;

static double score_of(double cum, int32_t n_prompt, int32_t n, double length_penalty) {
    return cum / pow((double)(n_prompt + n), length_penalty);
}

static int by_score(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static void cands_free(cand *c, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        sl_free(c[i].ids);
        lp_release(c[i].lp);
    }
}

/* c extended by token id (or, ended, not), with logprob lp; with logprobs asked for (top >= 0), the token's
 * record: its log probability and the first `top` alternatives of o. False when out of memory. */
static bool extend(cand *out, const cand *c, int32_t id, float lp, bool ended, int32_t n_prompt, double length_penalty,
                   int64_t order, const sl_tok_out *o, int32_t top) {
    out->n = c->n + (ended ? 0 : 1);
    out->lp = c->lp;
    if (out->lp) out->lp->refs++;
    out->ids = sl_alloc_array((size_t)out->n + 1, sizeof(int32_t));
    if (!out->ids) return false;
    if (top >= 0 && !ended) { /* (an ending token is not output) */
        lp_node *nd = sl_calloc(1, sizeof *nd);
        if (!nd) return false;
        nd->t = (sl_tok_out){.id = id, .logprob = lp, .n_top = o->n_top < top ? o->n_top : top};
        memcpy(nd->t.top_ids, o->top_ids, sizeof(int32_t) * (size_t)nd->t.n_top);
        memcpy(nd->t.top_lps, o->top_lps, sizeof(float) * (size_t)nd->t.n_top);
        nd->parent = out->lp; /* (the reference taken above moves to it) */
        nd->refs = 1;
        out->lp = nd;
    }
    if (c->n) memcpy(out->ids, c->ids, sizeof(int32_t) * (size_t)c->n);
    if (!ended) out->ids[c->n] = id;
    out->cum = c->cum + lp;
    out->ended = ended;
    out->score = score_of(out->cum, n_prompt, out->n, length_penalty);
    out->order = order;
    return true;
}

/* Run one step's requests (one per live beam) to their end; false with the status in *st when one failed or
 * the client went. */
static bool run_step(sl_sched *s, sl_req **reqs, int32_t n, const sl_beam_cfg *cfg, sl_status *st) {
    for (int32_t i = 0; i < n; i++) sl_sched_submit(s, reqs[i]);
    for (int32_t i = 0; i < n; i++) {
        sl_req *r = reqs[i];
        pthread_mutex_lock(&r->mu);
        while (!r->finished) {
            sl_cond_wait_ms(&r->cv, &r->mu, WAIT_SLICE_MS);
            if (!r->finished && cfg->gone && cfg->gone(cfg->ctx)) {
                pthread_mutex_unlock(&r->mu);
                for (int32_t k = 0; k < n; k++) sl_req_cancel(s, reqs[k]);
                *st = SL_FAIL(SL_ERR_CLOSED, "the client went away");
                return false;
            }
        }
        const bool failed = r->http_error != 0 || r->n_out < 1;
        if (failed) *st = SL_FAIL(SL_ERR_IO, "beam search: %s", r->error[0] ? r->error : "a step's request failed");
        pthread_mutex_unlock(&r->mu);
        if (failed) {
            for (int32_t k = 0; k < n; k++) sl_req_cancel(s, reqs[k]);
            return false;
        }
    }
    return true;
}

sl_status sl_beam_search(sl_sched *s, const int32_t *prompt, int32_t n_prompt, const sl_beam_cfg *cfg, sl_beam *out,
                         int32_t *n_out) {
    *n_out = 0;
    const int32_t w = cfg->width, k = 2 * cfg->width;
    /* each step's request: the 2 x width most likely tokens extend a beam; as many as logprobs asks are recorded */
    sl_req_params p = {.max_tokens = 1, .sampling = sl_sampler_default_params(),
                       .logprobs = cfg->logprobs > k ? cfg->logprobs : k, .prompt_logprobs = -1, .think_budget = -1};
    p.sampling.temperature = 0; /* (the sampled token does not matter: its alternatives do) */
    p.adapter = cfg->base->adapter;
    p.has_cache_salt = cfg->base->has_cache_salt;
    memcpy(p.cache_salt, cfg->base->cache_salt, sizeof p.cache_salt);
    /* live beams (at most w), ended ones (at most w per step, plus the live at the end), the step's new ones */
    cand *live = sl_calloc((size_t)w, sizeof *live), *next = sl_calloc((size_t)(w * k), sizeof *next);
    cand *ended = NULL; /* (grows: a beam's alternatives may hold several end-of-generation tokens) */
    size_t cap_ended = 0;
    sl_req **reqs = sl_calloc((size_t)w, sizeof *reqs);
    int32_t *buf = sl_alloc_array((size_t)n_prompt + (size_t)cfg->max_tokens + 1, sizeof(int32_t));
    int32_t n_live = 1, n_ended = 0;
    int64_t order = 0;
    sl_status st = SL_OK;
    if (!live || !next || !reqs || !buf || !(live[0].ids = sl_alloc_array(1, sizeof(int32_t)))) {
        st = SL_FAIL(SL_ERR_NOMEM, "beam search: out of memory");
        n_live = 0;
    }
    if (buf) memcpy(buf, prompt, sizeof(int32_t) * (size_t)n_prompt);
    for (int32_t step = 0; st == SL_OK && step < cfg->max_tokens && n_live > 0; step++) {
        int32_t made = 0;
        for (; made < n_live; made++) {
            memcpy(buf + n_prompt, live[made].ids, sizeof(int32_t) * (size_t)live[made].n);
            if ((st = sl_req_create(s, buf, n_prompt + live[made].n, &p, &reqs[made])) != SL_OK) break;
        }
        if (st == SL_OK) run_step(s, reqs, made, cfg, &st);
        int32_t n_next = 0;
        if (st == SL_OK && !sl_grow((void **)&ended, &cap_ended, (size_t)n_ended + (size_t)(n_live * k + w), sizeof *ended))
            st = SL_FAIL(SL_ERR_NOMEM, "beam search: out of memory");
        for (int32_t b = 0; st == SL_OK && b < n_live; b++) {
            const sl_tok_out *o = &reqs[b]->out[0]; /* (the request has finished: nothing writes it now) */
            for (int32_t j = 0; j < o->n_top && j < k && st == SL_OK; j++) {
                const bool eog = !cfg->ignore_eos && sl_tokenizer_is_eog(cfg->tok, o->top_ids[j]);
                cand *to = eog ? &ended[n_ended++] : &next[n_next++];
                if (!extend(to, &live[b], o->top_ids[j], o->top_lps[j], eog, n_prompt, cfg->length_penalty, order++, o,
                            cfg->logprobs))
                    st = SL_FAIL(SL_ERR_NOMEM, "beam search: out of memory");
            }
        }
        for (int32_t i = 0; i < made; i++) sl_req_release(reqs[i]);
        qsort(next, (size_t)n_next, sizeof *next, by_score);
        cands_free(live, n_live);
        n_live = n_next < w ? n_next : w;
        memcpy(live, next, sizeof *live * (size_t)n_live);
        cands_free(next + n_live, n_next - n_live);
    }
    if (st == SL_OK && !sl_grow((void **)&ended, &cap_ended, (size_t)n_ended + (size_t)n_live, sizeof *ended))
        st = SL_FAIL(SL_ERR_NOMEM, "beam search: out of memory");
    if (st == SL_OK) {
        memcpy(ended + n_ended, live, sizeof *live * (size_t)n_live); /* (after the ended ones, as vLLM extends) */
        for (int32_t i = 0; i < n_live; i++) ended[n_ended + i].order = order++;
        n_ended += n_live;
        n_live = 0;
        qsort(ended, (size_t)n_ended, sizeof *ended, by_score);
        for (int32_t i = 0; i < n_ended && i < w && st == SL_OK; i++) {
            out[i] = (sl_beam){.ids = ended[i].ids, .n = ended[i].n, .cum_logprob = ended[i].cum,
                               .score = ended[i].score, .ended = ended[i].ended};
            ended[i].ids = NULL;
            (*n_out)++;
            if (cfg->logprobs >= 0) { /* the chain of records, last first, as an array */
                if (!(out[i].lp = sl_alloc_array((size_t)out[i].n + 1, sizeof(sl_tok_out)))) {
                    st = SL_FAIL(SL_ERR_NOMEM, "beam search: out of memory");
                    break;
                }
                int32_t t = out[i].n;
                for (const lp_node *nd = ended[i].lp; nd && t > 0; nd = nd->parent) out[i].lp[--t] = nd->t;
            }
        }
    }
    cands_free(live, n_live);
    cands_free(ended, n_ended);
    sl_free(live);
    sl_free(next);
    sl_free(ended);
    sl_free(reqs);
    sl_free(buf);
    return st;
}

void sl_beam_free(sl_beam *b, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        sl_free(b[i].ids);
        sl_free(b[i].lp);
    }
}

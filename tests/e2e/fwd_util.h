/*
 * fwd_util.h — forward-pass helpers shared by the end-to-end tests of the
 * engine (test_fastpath.c, test_widen.c): a KV cache and a forward pass for
 * one model (runner), and the logits of every position of one sequence
 * computed in one step (eval_all).
 */
#ifndef TEST_FWD_UTIL_H
#define TEST_FWD_UTIL_H

#include "engine/forward.h"
#include "engine/kv.h"
#include "model/model.h"

#include <string.h>

typedef struct runner {
    sl_kv_cache *kv;
    sl_fwd *f;
    int32_t n_vocab;
} runner;

static inline sl_status runner_init(runner *r, const sl_model *m, int32_t max_batch, int32_t n_ctx, int32_t n_blocks,
                             sl_type kv_type, const sl_fwd_params *extra) {
    const sl_hparams *hp = &m->hp;
    memset(r, 0, sizeof *r);
    r->n_vocab = hp->n_vocab;
    sl_status st = sl_kv_create_typed(hp->n_layer, hp->n_head_kv * hp->head_dim, 16, n_blocks, kv_type, &r->kv);
    if (st) return st;
    sl_fwd_params fp = extra ? *extra : (sl_fwd_params){.n_threads = 1};
    fp.max_batch = max_batch;
    fp.n_ctx = n_ctx;
    if (fp.n_threads <= 0) fp.n_threads = 1;
    return sl_fwd_create(m, r->kv, &fp, &r->f);
}

static inline void runner_free(runner *r) {
    sl_fwd_destroy(r->f);
    sl_kv_destroy(r->kv);
}

/* One sequence, all tokens in one step; logits for every position (n, V). */
static inline sl_status eval_all(const sl_model *m, const int32_t *toks, int32_t n, sl_type kv_type, const sl_fwd_params *fp,
                          float *logits) {
    runner r;
    sl_status st = runner_init(&r, m, n, n, (n + 15) / 16, kv_type, fp);
    sl_kv_seq s = {0};
    if (!st) st = sl_kv_seq_reserve(r.kv, &s, n);
    if (!st) {
        int32_t pos[512], seq[512];
        uint8_t want[512];
        for (int32_t i = 0; i < n; i++) {
            pos[i] = i;
            seq[i] = 0;
            want[i] = 1;
        }
        sl_kv_seq *seqs[1] = {&s};
        sl_batch b = {.n_tokens = n, .tokens = toks, .pos = pos, .seq = seq, .want_logits = want};
        st = sl_fwd_step(r.f, &b, seqs, 1, logits);
    }
    if (r.kv) sl_kv_seq_deinit(r.kv, &s);
    runner_free(&r);
    return st;
}

#endif

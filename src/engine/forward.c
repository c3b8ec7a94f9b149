/*
 * forward.c — the Llama forward step over a flat batch (see forward.h).
 *
 * The whole step runs inside one sl_pool_run: every thread walks the same
 * sequence of ops and takes its share of each (rows of a matmul, tokens of a
 * norm, (token, head) pairs of attention), with a barrier between ops.
 * Each token's arithmetic is independent of the rest of the batch (fixed
 * reduction order), so a sequence's logits do not depend on what it is
 * batched with or how its prompt was split.
 */
#include "forward.h"

#include "compute/ops.h"
#include "compute/quant.h"
#include "core/alloc.h"
#include "core/status.h"

#include <math.h>
#include <string.h>

struct sl_fwd {
    const sl_model *m;
    sl_kv_cache *kv;
    sl_pool *pool;
    int32_t max_batch, n_ctx, n_threads;
    /* activations, (max_batch, width) */
    float *x;     /* residual stream (n_embd) */
    float *xb;    /* normed input (n_embd) */
    float *q;     /* (q_dim) */
    float *k;     /* (kv_dim) */
    float *v;     /* (kv_dim) */
    float *att;   /* attention output (q_dim) */
    float *tmp;   /* projection output (n_embd) */
    float *hb;    /* gate (n_ff) */
    float *hb2;   /* up (n_ff) */
    float *xo;    /* normed rows of tokens that want logits (n_embd) */
    /* per thread */
    float *row_scratch;  /* (n_threads, max_k) dequantized weight row */
    float *score_scratch; /* (n_threads, n_ctx) attention scores */
    double *acc_scratch;  /* (n_threads, head_dim) */
    int64_t max_k;
    /* current step */
    const sl_batch *b;
    sl_kv_seq *const *seqs;
    int32_t *out_rows;   /* (max_batch) token index of each logits row */
    int32_t n_out;
    float *logits;
};

sl_status sl_fwd_create(const sl_model *m, sl_kv_cache *kv, const sl_fwd_params *p, sl_fwd **out) {
    *out = NULL;
    const sl_hparams *hp = &m->hp;
    if (p->max_batch <= 0 || p->n_ctx <= 0 || p->n_threads <= 0)
        return SL_FAIL(SL_ERR_INVALID, "forward: invalid parameters (batch %d, ctx %d, threads %d)", p->max_batch,
                       p->n_ctx, p->n_threads);
    if (kv->n_layer != hp->n_layer || kv->kv_dim != hp->n_head_kv * hp->head_dim)
        return SL_FAIL(SL_ERR_INVALID, "forward: KV cache geometry (%d layers, kv_dim %d) does not fit the model", kv->n_layer,
                       kv->kv_dim);
    sl_fwd *f = sl_calloc(1, sizeof *f);
    if (!f) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    f->m = m;
    f->kv = kv;
    f->max_batch = p->max_batch;
    f->n_ctx = p->n_ctx;
    f->n_threads = p->n_threads;
    sl_status st = sl_pool_create(p->n_threads, &f->pool);
    if (st) goto fail;
    const size_t B = (size_t)p->max_batch, T = (size_t)p->n_threads;
    const size_t d = (size_t)hp->n_embd, qd = (size_t)hp->n_head * (size_t)hp->head_dim,
                 kvd = (size_t)hp->n_head_kv * (size_t)hp->head_dim, ff = (size_t)hp->n_ff;
    f->max_k = (int64_t)(d > ff ? d : ff);
    if ((int64_t)qd > f->max_k) f->max_k = (int64_t)qd;
    f->x = sl_malloc_aligned(B * d * sizeof(float));
    f->xb = sl_malloc_aligned(B * d * sizeof(float));
    f->q = sl_malloc_aligned(B * qd * sizeof(float));
    f->k = sl_malloc_aligned(B * kvd * sizeof(float));
    f->v = sl_malloc_aligned(B * kvd * sizeof(float));
    f->att = sl_malloc_aligned(B * qd * sizeof(float));
    f->tmp = sl_malloc_aligned(B * d * sizeof(float));
    f->hb = sl_malloc_aligned(B * ff * sizeof(float));
    f->hb2 = sl_malloc_aligned(B * ff * sizeof(float));
    f->xo = sl_malloc_aligned(B * d * sizeof(float));
    f->row_scratch = sl_malloc_aligned(T * (size_t)f->max_k * sizeof(float));
    f->score_scratch = sl_malloc_aligned(T * (size_t)p->n_ctx * sizeof(float));
    f->acc_scratch = sl_malloc_aligned(T * (size_t)hp->head_dim * sizeof(double));
    f->out_rows = sl_alloc_array(B, sizeof(int32_t));
    if (!f->x || !f->xb || !f->q || !f->k || !f->v || !f->att || !f->tmp || !f->hb || !f->hb2 || !f->xo ||
        !f->row_scratch || !f->score_scratch || !f->acc_scratch || !f->out_rows) {
        st = SL_FAIL(SL_ERR_NOMEM, "out of memory for forward buffers (batch %d)", p->max_batch);
        goto fail;
    }
    *out = f;
    return SL_OK;
fail:
    sl_fwd_destroy(f);
    return st;
}

void sl_fwd_destroy(sl_fwd *f) {
    if (!f) return;
    sl_pool_destroy(f->pool);
    float *bufs[] = {f->x, f->xb, f->q, f->k, f->v, f->att, f->tmp, f->hb, f->hb2, f->xo, f->row_scratch, f->score_scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) sl_free_aligned(bufs[i]);
    sl_free_aligned(f->acc_scratch);
    sl_free(f->out_rows);
    sl_free(f);
}

/* y(n_tok, w.ne[1]) = x(n_tok, K) · Wᵀ, this thread's share of the rows. */
static void matmul_part(sl_fwd *f, const sl_tensor *w, const float *x, int64_t n_tok, float *y, int ith, int nth) {
    long long lo, hi;
    sl_split_range(w->ne[1], ith, nth, &lo, &hi);
    if (lo < hi)
        sl_matmul_ref(w, lo, hi, x, w->ne[0], n_tok, y + lo, w->ne[1], f->row_scratch + (int64_t)ith * f->max_k);
}

static void attention_part(sl_fwd *f, int layer, int ith, int nth) {
    const sl_hparams *hp = &f->m->hp;
    const sl_batch *b = f->b;
    const int32_t H = hp->n_head, hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    const int64_t qd = (int64_t)H * hd;
    const double scale = 1.0 / sqrt((double)hd);
    float *scores = f->score_scratch + (int64_t)ith * f->n_ctx;
    double *acc = f->acc_scratch + (int64_t)ith * hd;
    long long lo, hi;
    sl_split_range((long long)b->n_tokens * H, ith, nth, &lo, &hi);
    for (long long w = lo; w < hi; w++) {
        int32_t t = (int32_t)(w / H), h = (int32_t)(w % H), kvh = h / group;
        const sl_kv_seq *s = f->seqs[b->seq[t]];
        const int32_t pos = b->pos[t];
        const float *q = f->q + t * qd + (int64_t)h * hd;
        for (int32_t j = 0; j <= pos; j++) {
            const float *k = sl_kv_k_at(f->kv, layer, s, j) + (int64_t)kvh * hd;
            double dot = 0.0;
            for (int32_t i = 0; i < hd; i++) dot += (double)q[i] * (double)k[i];
            scores[j] = (float)(dot * scale);
        }
        sl_softmax_ref(scores, pos + 1);
        for (int32_t i = 0; i < hd; i++) acc[i] = 0.0;
        for (int32_t j = 0; j <= pos; j++) {
            const float *v = sl_kv_v_at(f->kv, layer, s, j) + (int64_t)kvh * hd;
            const double a = scores[j];
            for (int32_t i = 0; i < hd; i++) acc[i] += a * (double)v[i];
        }
        float *o = f->att + t * qd + (int64_t)h * hd;
        for (int32_t i = 0; i < hd; i++) o[i] = (float)acc[i];
    }
}

static void step_worker(void *arg, int ith, int nth) {
    sl_fwd *f = arg;
    const sl_model *m = f->m;
    const sl_hparams *hp = &m->hp;
    const sl_batch *b = f->b;
    const int64_t n = b->n_tokens, d = hp->n_embd, qd = (int64_t)hp->n_head * hp->head_dim,
                  kvd = (int64_t)hp->n_head_kv * hp->head_dim, ff = hp->n_ff;
    long long t0, t1;
    sl_split_range(n, ith, nth, &t0, &t1);

    for (long long t = t0; t < t1; t++)
        sl_dequantize_row(m->tok_embd.type, sl_tensor_row(&m->tok_embd, b->tokens[t]), f->x + t * d, d);
    sl_pool_barrier(f->pool);

    for (int l = 0; l < hp->n_layer; l++) {
        const sl_layer *L = &m->layers[l];
        for (long long t = t0; t < t1; t++) sl_rmsnorm_ref(f->x + t * d, L->attn_norm, f->xb + t * d, d, hp->rms_eps);
        sl_pool_barrier(f->pool);
        matmul_part(f, &L->wq, f->xb, n, f->q, ith, nth);
        matmul_part(f, &L->wk, f->xb, n, f->k, ith, nth);
        matmul_part(f, &L->wv, f->xb, n, f->v, ith, nth);
        sl_pool_barrier(f->pool);
        for (long long t = t0; t < t1; t++) {
            float *q = f->q + t * qd, *k = f->k + t * kvd, *v = f->v + t * kvd;
            if (L->bq)
                for (int64_t i = 0; i < qd; i++) q[i] += L->bq[i];
            if (L->bk)
                for (int64_t i = 0; i < kvd; i++) k[i] += L->bk[i];
            if (L->bv)
                for (int64_t i = 0; i < kvd; i++) v[i] += L->bv[i];
            if (L->q_norm)
                for (int h = 0; h < hp->n_head; h++)
                    sl_rmsnorm_ref(q + h * hp->head_dim, L->q_norm, q + h * hp->head_dim, hp->head_dim, hp->rms_eps);
            if (L->k_norm)
                for (int h = 0; h < hp->n_head_kv; h++)
                    sl_rmsnorm_ref(k + h * hp->head_dim, L->k_norm, k + h * hp->head_dim, hp->head_dim, hp->rms_eps);
            sl_rope_ref(f->q + t * qd, hp->n_head, hp->head_dim, hp->n_rot, b->pos[t], hp->rope_base, m->rope_freqs,
                        hp->rope_neox);
            sl_rope_ref(f->k + t * kvd, hp->n_head_kv, hp->head_dim, hp->n_rot, b->pos[t], hp->rope_base, m->rope_freqs,
                        hp->rope_neox);
            const sl_kv_seq *s = f->seqs[b->seq[t]];
            memcpy(sl_kv_k_at(f->kv, l, s, b->pos[t]), f->k + t * kvd, (size_t)kvd * sizeof(float));
            memcpy(sl_kv_v_at(f->kv, l, s, b->pos[t]), f->v + t * kvd, (size_t)kvd * sizeof(float));
        }
        sl_pool_barrier(f->pool);
        attention_part(f, l, ith, nth);
        sl_pool_barrier(f->pool);
        matmul_part(f, &L->wo, f->att, n, f->tmp, ith, nth);
        sl_pool_barrier(f->pool);
        for (long long t = t0; t < t1; t++) {
            float *x = f->x + t * d;
            const float *y = f->tmp + t * d;
            for (int64_t i = 0; i < d; i++) x[i] += y[i];
            sl_rmsnorm_ref(x, L->ffn_norm, f->xb + t * d, d, hp->rms_eps);
        }
        sl_pool_barrier(f->pool);
        matmul_part(f, &L->w_gate, f->xb, n, f->hb, ith, nth);
        matmul_part(f, &L->w_up, f->xb, n, f->hb2, ith, nth);
        sl_pool_barrier(f->pool);
        for (long long t = t0; t < t1; t++) sl_swiglu_ref(f->hb + t * ff, f->hb2 + t * ff, f->hb + t * ff, ff);
        sl_pool_barrier(f->pool);
        matmul_part(f, &L->w_down, f->hb, n, f->tmp, ith, nth);
        sl_pool_barrier(f->pool);
        for (long long t = t0; t < t1; t++) {
            float *x = f->x + t * d;
            const float *y = f->tmp + t * d;
            for (int64_t i = 0; i < d; i++) x[i] += y[i];
        }
        sl_pool_barrier(f->pool);
    }

    long long j0, j1;
    sl_split_range(f->n_out, ith, nth, &j0, &j1);
    for (long long j = j0; j < j1; j++)
        sl_rmsnorm_ref(f->x + (int64_t)f->out_rows[j] * d, m->output_norm, f->xo + j * d, d, hp->rms_eps);
    sl_pool_barrier(f->pool);
    matmul_part(f, &m->output, f->xo, f->n_out, f->logits, ith, nth);
}

sl_status sl_fwd_step(sl_fwd *f, const sl_batch *b, sl_kv_seq *const *seqs, int32_t n_seqs, float *logits) {
    const sl_hparams *hp = &f->m->hp;
    if (b->n_tokens <= 0 || b->n_tokens > f->max_batch)
        return SL_FAIL(SL_ERR_INVALID, "forward: batch of %d tokens (allowed 1..%d)", b->n_tokens, f->max_batch);
    int32_t n_out = 0;
    for (int32_t t = 0; t < b->n_tokens; t++) {
        if (b->tokens[t] < 0 || b->tokens[t] >= hp->n_vocab)
            return SL_FAIL(SL_ERR_INVALID, "forward: token %d of the batch has id %d, outside the vocabulary [0, %d)", t,
                           b->tokens[t], hp->n_vocab);
        if (b->seq[t] < 0 || b->seq[t] >= n_seqs)
            return SL_FAIL(SL_ERR_INVALID, "forward: token %d names sequence %d of %d", t, b->seq[t], n_seqs);
        const sl_kv_seq *s = seqs[b->seq[t]];
        if (b->pos[t] < 0 || b->pos[t] >= f->n_ctx || b->pos[t] >= sl_kv_seq_capacity(f->kv, s))
            return SL_FAIL(SL_ERR_RANGE, "forward: token %d has position %d outside its sequence's %d reserved slots "
                           "(context %d)", t, b->pos[t], sl_kv_seq_capacity(f->kv, s), f->n_ctx);
        bool want = b->want_logits ? b->want_logits[t] != 0 : t == b->n_tokens - 1;
        if (want) f->out_rows[n_out++] = t;
    }
    f->b = b;
    f->seqs = seqs;
    f->n_out = n_out;
    f->logits = logits;
    sl_pool_run(f->pool, step_worker, f);
    f->b = NULL;
    f->seqs = NULL;
    return SL_OK;
}

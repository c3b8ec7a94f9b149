/*
 * forward.c — the Llama forward step over a flat batch (see forward.h).
 *
 * The whole step runs inside one sl_pool_run: every thread walks the same
 * sequence of ops and takes its share of each, with a barrier between ops.
 * Per-token ops (norms, rope, activation quantization, KV writes) split the
 * tokens evenly; matmuls and attention hand out work units (chunks of
 * SL_GEMM_ROWS-aligned rows; (token, head) pairs) through an atomic counter
 * per op, so a thread slowed by a busy core does not hold the others up.
 * Each op instance of a step has its own counter (`ops` below), reset before
 * the step; every thread numbers the ops the same way.
 *
 * Each token's arithmetic is independent of the rest of the batch and of
 * which thread computes it (fixed reduction order per output), so a
 * sequence's logits do not depend on what it is batched with, how its
 * prompt was split, or the thread count.
 */
#include "forward.h"

#include "compute/kernels.h"
#include "compute/ops.h"
#include "compute/quant.h"
#include "core/alloc.h"
#include "core/status.h"

#include <math.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>

#define MAX_HEAD_DIM 512
#define OPS_PER_LAYER 8

enum { MAT_Q, MAT_K, MAT_V, MAT_O, MAT_GATE, MAT_UP, MAT_DOWN, MATS };

static const sl_tensor *matrix(const sl_model *m, int32_t i) {
    if (i == m->hp.n_layer * MATS) return &m->output;
    const sl_layer *L = &m->layers[i / MATS];
    const sl_tensor *mats[MATS] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    return mats[i % MATS];
}

/* Packing at creation: units of SL_GEMM_CHUNK rows over every packed matrix. */
typedef struct pack_job {
    sl_fwd *f;
    _Atomic int64_t next;
} pack_job;

static void pack_worker(void *arg, int ith, int nth);

static _Atomic bool default_reference;

void sl_fwd_set_default_reference(bool reference) { atomic_store(&default_reference, reference); }
/* SHARDLM_KERNELS=reference: every forward on the reference path (F32 activations, weights dequantized exactly;
 * slow — for checking a served answer against a float64 reference). */
static bool env_reference(void) {
    static _Atomic int cached = -1;
    int v = atomic_load(&cached);
    if (v < 0) {
        const char *e = getenv("SHARDLM_KERNELS");
        v = e && !strcmp(e, "reference");
        atomic_store(&cached, v);
    }
    return v;
}
bool sl_fwd_default_reference(void) { return atomic_load(&default_reference) || env_reference(); }

struct sl_fwd {
    const sl_model *m;
    sl_kv_cache *kv;
    sl_pool *pool;
    bool own_pool; /* made here (else sl_fwd_params.pool's) */
    int32_t max_batch, n_ctx, n_threads;
    bool reference;
    bool round_acts;        /* reference path: matmul inputs rounded as the fast path does */
    const sl_kernels *kern; /* fast path */
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
    /* fast path */
    uint8_t *act[SL_ACT_COUNT]; /* quantized activations (max_batch, sl_act_row_bytes(max_k)) */
    uint8_t *act_groups[SL_ACT_COUNT]; /* the Q8_0 / Q8_K rows as token groups (sl_act_group), where the table has
                                        * grouped kernels */
    uint8_t *gemm_scratch;      /* (n_threads, gemm_scratch_bytes) */
    size_t gemm_scratch_bytes;
    double *rope_cs;            /* (max_batch, n_rot/2, 2): cos, sin of each token's angles */
    void **packed;              /* (n_layer * MATS + 1) packed tiles of each matrix (MAT_* order, then the
                                 * output), its rows copied as stored (row_copy), or NULL where the kernels
                                 * read the file's rows */
    _Atomic int64_t *ops;       /* work counter of each op of a step */
    int32_t n_ops;
    /* per thread (reference path) */
    float *row_scratch;  /* (n_threads, max_k) dequantized weight row */
    float *score_scratch; /* (n_threads, n_ctx) attention scores */
    double *acc_scratch;  /* (n_threads, head_dim) */
    float *kv_scratch;    /* (n_threads, head_dim) a dequantized K or V row */
    uint8_t *round_scratch; /* (n_threads, act row of max_k) for round_acts */
    int64_t max_k;
    /* current step */
    const sl_batch *b;
    sl_kv_seq *const *seqs;
    int32_t *out_rows;   /* (max_batch) token index of each output row (logits or hidden state) */
    int32_t *att_runs;   /* (max_batch + 1) first token of each run the attention takes in one call */
    int32_t n_att_runs;
    int32_t n_out;      /* rows that give logits or a hidden state */
    int32_t n_logits;   /* of those, the rows that give logits */
    int32_t n_hidden;   /* ... and those that give a hidden state */
    float *logits;
};

/* Float matrices (F32, F16, BF16: no packed layout) are copied once, rows
 * as stored, into memory of the process's own: buffers that large get huge
 * pages (sl_malloc_aligned), where the file's pages are 4 KiB ones and a
 * decode that streams them pays a page walk every 4 KiB. */
static bool row_copy(const sl_fwd *f, const sl_tensor *w) {
    return !f->kern->gemm_packed[w->type] &&
           (w->type == SL_TYPE_F32 || w->type == SL_TYPE_F16 || w->type == SL_TYPE_BF16);
}

const char *sl_fwd_path_name(const sl_fwd *f) { return f->reference ? "reference" : f->kern->name; }

sl_status sl_fwd_create(const sl_model *m, sl_kv_cache *kv, const sl_fwd_params *p, sl_fwd **out) {
    *out = NULL;
    const sl_hparams *hp = &m->hp;
    if (p->max_batch <= 0 || p->n_ctx <= 0 || p->n_threads <= 0)
        return SL_FAIL(SL_ERR_INVALID, "forward: invalid parameters (batch %d, ctx %d, threads %d)", p->max_batch,
                       p->n_ctx, p->n_threads);
    if (kv->n_layer != hp->n_layer || kv->kv_dim != hp->n_head_kv * hp->head_dim)
        return SL_FAIL(SL_ERR_INVALID, "forward: KV cache geometry (%d layers, kv_dim %d) does not fit the model", kv->n_layer,
                       kv->kv_dim);
    if (hp->head_dim > MAX_HEAD_DIM)
        return SL_FAIL(SL_ERR_UNSUPPORTED, "forward: head size %d is larger than %d", hp->head_dim, MAX_HEAD_DIM);
    if (kv->type == SL_TYPE_Q8_0 && hp->head_dim % QK8_0 != 0)
        return SL_FAIL(SL_ERR_UNSUPPORTED, "forward: a q8_0 KV cache needs the head size to be a multiple of 32 (it is %d)",
                       hp->head_dim);
    const sl_kernels *kern = sl_kernels_best();
    if (p->kernels && !(kern = sl_kernels_get(p->kernels)))
        return SL_FAIL(SL_ERR_UNSUPPORTED, "forward: kernel table '%s' is unknown or not supported by this CPU", p->kernels);
    sl_fwd *f = sl_calloc(1, sizeof *f);
    if (!f) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    f->m = m;
    f->kv = kv;
    f->max_batch = p->max_batch;
    f->n_ctx = p->n_ctx;
    f->n_threads = p->n_threads;
    f->reference = p->reference || sl_fwd_default_reference();
    f->round_acts = f->reference && p->round_acts;
    f->kern = kern;
    sl_status st = SL_OK;
    if (p->pool) {
        f->pool = p->pool;
        f->n_threads = sl_pool_size(p->pool);
    } else {
        f->own_pool = true;
        if ((st = sl_pool_create(p->n_threads, &f->pool))) goto fail;
    }
    const size_t B = (size_t)p->max_batch, T = (size_t)f->n_threads;
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
    f->out_rows = sl_alloc_array(B, sizeof(int32_t));
    f->att_runs = sl_alloc_array(B + 1, sizeof(int32_t));
    bool ok = f->x && f->xb && f->q && f->k && f->v && f->att && f->tmp && f->hb && f->hb2 && f->xo && f->out_rows &&
              f->att_runs;
    if (f->reference) {
        f->row_scratch = sl_malloc_aligned(T * (size_t)f->max_k * sizeof(float));
        f->score_scratch = sl_malloc_aligned(T * (size_t)p->n_ctx * sizeof(float));
        f->acc_scratch = sl_malloc_aligned(T * (size_t)hp->head_dim * sizeof(double));
        f->kv_scratch = sl_malloc_aligned(T * (size_t)hp->head_dim * sizeof(float));
        ok = ok && f->row_scratch && f->score_scratch && f->acc_scratch && f->kv_scratch;
        if (f->round_acts) {
            f->round_scratch = sl_malloc_aligned(T * sl_act_row_bytes(SL_ACT_Q8_0, f->max_k) +
                                                 T * sl_act_row_bytes(SL_ACT_Q8_K, f->max_k));
            ok = ok && f->round_scratch;
        }
    } else {
        for (int a = SL_ACT_Q8_0; a < SL_ACT_COUNT; a++) {
            f->act[a] = sl_malloc_aligned(B * sl_act_row_bytes((sl_act)a, f->max_k));
            ok = ok && f->act[a];
        }
        for (int t = 0; t < SL_TYPE_COUNT; t++) {
            const sl_act a = sl_act_of((sl_type)t);
            if (!f->kern->gemm_grouped[t] || f->act_groups[a]) continue;
            f->act_groups[a] = sl_malloc_aligned((size_t)((B + 15) / 16) * sl_act_group_bytes(a, f->max_k));
            ok = ok && f->act_groups[a];
        }
        f->gemm_scratch_bytes = sl_gemm_scratch_bytes(f->max_k);
        f->gemm_scratch = sl_malloc_aligned(T * f->gemm_scratch_bytes);
        f->rope_cs = sl_malloc_aligned(B * (size_t)(hp->n_rot / 2) * 2 * sizeof(double) + 64);
        f->n_ops = hp->n_layer * OPS_PER_LAYER + 4;
        f->ops = sl_malloc_aligned((size_t)f->n_ops * sizeof *f->ops);
        ok = ok && f->gemm_scratch && f->rope_cs && f->ops;
        if (ok)
            for (int32_t i = 0; i < f->n_ops; i++) atomic_init(&f->ops[i], 0);
        /* matrices whose type has a packed layout in this kernel table are packed once here, float ones
         * copied (row_copy) */
        const int32_t n_mats = hp->n_layer * MATS + 1;
        f->packed = ok ? sl_calloc((size_t)n_mats, sizeof *f->packed) : NULL;
        ok = ok && f->packed;
        for (int32_t i = 0; ok && i < n_mats; i++) {
            const sl_tensor *w = matrix(m, i);
            const size_t tile = sl_pack_tile_bytes(w->type, w->ne[0]);
            if (tile && kern->gemm_packed[w->type])
                f->packed[i] = sl_malloc_aligned(tile * (size_t)((w->ne[1] + 15) / 16));
            else if (row_copy(f, w))
                f->packed[i] = sl_malloc_aligned(w->row_bytes * (size_t)w->ne[1]);
            else
                continue;
            ok = f->packed[i] != NULL;
        }
        if (ok) {
            pack_job pj = {.f = f};
            atomic_init(&pj.next, 0);
            sl_pool_run(f->pool, pack_worker, &pj);
            /* the fast path reads only the packed copies from now on: the file's pages of those matrices
             * leave this process (read back from the file if the reference path or the embedding lookup
             * of a tied output matrix touches them), so a model is resident once, not twice */
            for (int32_t i = 0; i < n_mats; i++)
                if (f->packed[i]) {
                    const sl_tensor *w = matrix(m, i);
                    sl_gguf_drop_pages(m->gguf, w->data, w->row_bytes * (size_t)w->ne[1]);
                }
        }
    }
    if (!ok) {
        st = SL_FAIL(SL_ERR_NOMEM, "out of memory for forward buffers (batch %d)", p->max_batch);
        goto fail;
    }
    *out = f;
    return SL_OK;
fail:
    sl_fwd_destroy(f);
    return st;
}

sl_pool *sl_fwd_pool(const sl_fwd *f) { return f->pool; }

void sl_fwd_destroy(sl_fwd *f) {
    if (!f) return;
    if (f->own_pool) sl_pool_destroy(f->pool);
    float *bufs[] = {f->x,  f->xb, f->q,  f->k,          f->v,           f->att,       f->tmp,
                     f->hb, f->hb2, f->xo, f->row_scratch, f->score_scratch, f->kv_scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) sl_free_aligned(bufs[i]);
    for (int a = 0; a < SL_ACT_COUNT; a++) sl_free_aligned(f->act[a]);
    for (int a = 0; a < SL_ACT_COUNT; a++) sl_free_aligned(f->act_groups[a]);
    if (f->packed)
        for (int32_t i = 0; i <= f->m->hp.n_layer * MATS; i++) sl_free_aligned(f->packed[i]);
    sl_free(f->packed);
    sl_free_aligned(f->gemm_scratch);
    sl_free_aligned(f->rope_cs);
    sl_free_aligned((void *)f->ops);
    sl_free_aligned(f->acc_scratch);
    sl_free_aligned(f->round_scratch);
    sl_free(f->out_rows);
    sl_free(f->att_runs);
    sl_free(f);
}

/* ======================================================================== */
/* reference path                                                            */
/* ======================================================================== */

/* y(n_tok, w.ne[1]) = x(n_tok, K) · Wᵀ, this thread's share of the rows. */
static void matmul_part(sl_fwd *f, const sl_tensor *w, const float *x, int64_t n_tok, float *y, int ith, int nth) {
    long long lo, hi;
    sl_split_range(w->ne[1], ith, nth, &lo, &hi);
    if (lo < hi)
        sl_matmul_ref(w, lo, hi, x, w->ne[0], n_tok, y + lo, w->ne[1], f->row_scratch + (int64_t)ith * f->max_k);
}

/* round_acts: replace rows [t0, t1) of x (K floats each) by what the fast
 * path's activation format for w encodes. */
static void round_rows(sl_fwd *f, const sl_tensor *w, float *x, int64_t K, long long t0, long long t1, int ith) {
    if (!f->round_acts) return;
    const sl_act a = sl_act_of(w->type);
    if (a == SL_ACT_F32) return;
    const size_t rb = sl_act_row_bytes(SL_ACT_Q8_0, f->max_k) + sl_act_row_bytes(SL_ACT_Q8_K, f->max_k);
    uint8_t *buf = f->round_scratch + (size_t)ith * rb;
    for (long long t = t0; t < t1; t++) {
        float *xt = x + t * K;
        sl_act_quantize(a, xt, K, 1, K, buf);
        if (a == SL_ACT_Q8_0) {
            const float *d = (const float *)(buf + K);
            for (int64_t i = 0; i < K; i++) xt[i] = (float)((const int8_t *)buf)[i] * d[i / QK8_0];
        } else {
            sl_dequantize_row_q8_K((const block_q8_K *)buf, xt, K);
        }
    }
}

/* Head kvh of a cached row as floats. */
/* KV head kvh's row of position pos of a sequence (base: the cache's k or v) as floats. */
static const float *kv_head(const sl_fwd *f, const uint8_t *base, int layer, const sl_kv_seq *s, int32_t pos,
                            int32_t kvh, float *scratch) {
    const int32_t hd = f->m->hp.head_dim;
    const sl_kv_cache *kv = f->kv;
    const uint8_t *p = base + sl_kv_row_offset(kv, layer, s, pos, kvh, sl_type_row_size(kv->type, hd));
    if (kv->type == SL_TYPE_F32) return (const float *)p;
    sl_dequantize_row(kv->type, p, scratch, hd);
    return scratch;
}

static void attention_part(sl_fwd *f, int layer, int ith, int nth) {
    const sl_hparams *hp = &f->m->hp;
    const sl_batch *b = f->b;
    const int32_t H = hp->n_head, hd = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    const int64_t qd = (int64_t)H * hd;
    const double scale = 1.0 / sqrt((double)hd);
    float *scores = f->score_scratch + (int64_t)ith * f->n_ctx;
    double *acc = f->acc_scratch + (int64_t)ith * hd;
    float *rowbuf = f->kv_scratch + (int64_t)ith * hd;
    long long lo, hi;
    sl_split_range((long long)b->n_tokens * H, ith, nth, &lo, &hi);
    for (long long w = lo; w < hi; w++) {
        int32_t t = (int32_t)(w / H), h = (int32_t)(w % H), kvh = h / group;
        const sl_kv_seq *s = f->seqs[b->seq[t]];
        const int32_t pos = b->pos[t];
        const float *q = f->q + t * qd + (int64_t)h * hd;
        for (int32_t j = 0; j <= pos; j++) {
            const float *k = kv_head(f, f->kv->k, layer, s, j, kvh, rowbuf);
            double dot = 0.0;
            for (int32_t i = 0; i < hd; i++) dot += (double)q[i] * (double)k[i];
            scores[j] = (float)(dot * scale);
        }
        sl_softmax_ref(scores, pos + 1);
        for (int32_t i = 0; i < hd; i++) acc[i] = 0.0;
        for (int32_t j = 0; j <= pos; j++) {
            const float *v = kv_head(f, f->kv->v, layer, s, j, kvh, rowbuf);
            const double a = scores[j];
            for (int32_t i = 0; i < hd; i++) acc[i] += a * (double)v[i];
        }
        float *o = f->att + t * qd + (int64_t)h * hd;
        for (int32_t i = 0; i < hd; i++) o[i] = (float)acc[i];
    }
}

/* Biases, per-head q/k norms (exact reference ops, shared by both paths). */
static void qkv_post(const sl_fwd *f, const sl_layer *L, int64_t t) {
    const sl_hparams *hp = &f->m->hp;
    const int64_t qd = (int64_t)hp->n_head * hp->head_dim, kvd = (int64_t)hp->n_head_kv * hp->head_dim;
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
}

/* Store token t's K and V rows of this layer in the cache's element type, head by head (sl_kv_row_offset;
 * Q8_0 blocks never straddle heads: head_dim is a multiple of 32 there, so the bytes are those of the
 * whole row quantized at once). */
static void kv_store(const sl_fwd *f, int layer, int64_t t) {
    const sl_kv_cache *kv = f->kv;
    const int64_t kvd = kv->kv_dim, hd = f->m->hp.head_dim;
    const size_t hb = sl_type_row_size(kv->type, hd);
    const sl_kv_seq *s = f->seqs[f->b->seq[t]];
    const int32_t pos = f->b->pos[t];
    for (int32_t h = 0; h < f->m->hp.n_head_kv; h++) {
        const size_t off = sl_kv_row_offset(kv, layer, s, pos, h, hb);
        sl_quantize_row(kv->type, f->k + t * kvd + h * hd, kv->k + off, hd);
        sl_quantize_row(kv->type, f->v + t * kvd + h * hd, kv->v + off, hd);
    }
}

/* After the output norm (xo rows [0, n_out), this thread's [*j0, *j1)): the rows that want their hidden state
 * are copied out, in batch order, and the rows that want logits move to the front of xo for the output
 * matmul; *j0, *j1 become this thread's share of those. Nothing to do where every output row gives logits. */
static void take_hidden(sl_fwd *f, int ith, int nth, long long *j0, long long *j1) {
    if (f->n_hidden == 0) return;
    const int64_t d = f->m->hp.n_embd;
    sl_pool_barrier(f->pool);
    if (ith == 0) { /* one thread, in order: row k <= j is written only after row j was read */
        int32_t h = 0, k = 0;
        for (int32_t j = 0; j < f->n_out; j++) {
            const uint8_t w = f->b->want_logits[f->out_rows[j]];
            if (w & SL_WANT_HIDDEN) memcpy(f->b->hidden + (int64_t)h++ * d, f->xo + (int64_t)j * d, sizeof(float) * (size_t)d);
            if (!(w & SL_WANT_LOGITS)) continue;
            if (k != j) memcpy(f->xo + (int64_t)k * d, f->xo + (int64_t)j * d, sizeof(float) * (size_t)d);
            k++;
        }
    }
    sl_pool_barrier(f->pool);
    sl_split_range(f->n_logits, ith, nth, j0, j1);
}

static void step_ref(void *arg, int ith, int nth) {
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
        round_rows(f, &L->wq, f->xb, d, t0, t1, ith);
        sl_pool_barrier(f->pool);
        matmul_part(f, &L->wq, f->xb, n, f->q, ith, nth);
        matmul_part(f, &L->wk, f->xb, n, f->k, ith, nth);
        matmul_part(f, &L->wv, f->xb, n, f->v, ith, nth);
        sl_pool_barrier(f->pool);
        for (long long t = t0; t < t1; t++) {
            qkv_post(f, L, t);
            sl_rope_ref(f->q + t * qd, hp->n_head, hp->head_dim, hp->n_rot, b->pos[t], hp->rope_base, m->rope_freqs,
                        hp->rope_neox);
            sl_rope_ref(f->k + t * kvd, hp->n_head_kv, hp->head_dim, hp->n_rot, b->pos[t], hp->rope_base, m->rope_freqs,
                        hp->rope_neox);
            kv_store(f, l, t);
        }
        sl_pool_barrier(f->pool);
        attention_part(f, l, ith, nth);
        sl_pool_barrier(f->pool);
        round_rows(f, &L->wo, f->att, qd, t0, t1, ith);
        sl_pool_barrier(f->pool);
        matmul_part(f, &L->wo, f->att, n, f->tmp, ith, nth);
        sl_pool_barrier(f->pool);
        for (long long t = t0; t < t1; t++) {
            float *x = f->x + t * d;
            const float *y = f->tmp + t * d;
            for (int64_t i = 0; i < d; i++) x[i] += y[i];
            sl_rmsnorm_ref(x, L->ffn_norm, f->xb + t * d, d, hp->rms_eps);
        }
        round_rows(f, &L->w_gate, f->xb, d, t0, t1, ith);
        sl_pool_barrier(f->pool);
        matmul_part(f, &L->w_gate, f->xb, n, f->hb, ith, nth);
        matmul_part(f, &L->w_up, f->xb, n, f->hb2, ith, nth);
        sl_pool_barrier(f->pool);
        for (long long t = t0; t < t1; t++) sl_swiglu_ref(f->hb + t * ff, f->hb2 + t * ff, f->hb + t * ff, ff);
        round_rows(f, &L->w_down, f->hb, ff, t0, t1, ith);
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
    take_hidden(f, ith, nth, &j0, &j1);
    round_rows(f, &m->output, f->xo, d, j0, j1, ith);
    sl_pool_barrier(f->pool);
    matmul_part(f, &m->output, f->xo, f->n_logits, f->logits, ith, nth);
}

/* ======================================================================== */
/* fast path                                                                 */
/* ======================================================================== */

static void pack_worker(void *arg, int ith, int nth) {
    pack_job *pj = arg;
    sl_fwd *f = pj->f;
    (void)ith;
    (void)nth;
    const int32_t n_mats = f->m->hp.n_layer * MATS + 1;
    for (;;) {
        int64_t u = atomic_fetch_add(&pj->next, 1);
        int32_t i = 0;
        for (; i < n_mats; i++) {
            const sl_tensor *w = matrix(f->m, i);
            const int64_t units = f->packed[i] ? (w->ne[1] + SL_GEMM_CHUNK - 1) / SL_GEMM_CHUNK : 0;
            if (u < units) break;
            u -= units;
        }
        if (i == n_mats) return;
        const sl_tensor *w = matrix(f->m, i);
        const int64_t r0 = u * SL_GEMM_CHUNK, nr = w->ne[1] - r0 < SL_GEMM_CHUNK ? w->ne[1] - r0 : SL_GEMM_CHUNK;
        if (row_copy(f, w))
            memcpy((uint8_t *)f->packed[i] + (size_t)r0 * w->row_bytes, sl_tensor_row(w, r0), (size_t)nr * w->row_bytes);
        else
            sl_pack_rows(w->type, w->ne[0], sl_tensor_row(w, r0), w->row_bytes, nr,
                         (uint8_t *)f->packed[i] + (size_t)(r0 / 16) * sl_pack_tile_bytes(w->type, w->ne[0]));
    }
}

/* One matrix of a matmul op: y(n_tok, ne[1]) = input · Wᵀ; packed: f->packed's entry (tiles, copied rows
 * or NULL). */
typedef struct mm_job {
    const sl_tensor *w;
    float *y;
    const void *packed;
} mm_job;

/* The job's packed entry holds the matrix's rows as stored (row_copy). */
static bool copied(const sl_fwd *f, const mm_job *job) { return job->packed && row_copy(f, job->w); }

/* Whether job's matmul of n_tok tokens runs on the table's token-group
 * kernel (then its Q8_0 or Q8_K rows are also regrouped, sl_act_group). */
static bool grouped(const sl_fwd *f, const mm_job *job, int64_t n_tok) {
    return job->packed && n_tok >= SL_GROUP_MIN_TOKENS && f->kern->gemm_grouped[job->w->type] &&
           f->act_groups[sl_act_of(job->w->type)];
}

/* Quantize rows [t0, t1) of x (n_tok × K floats) into the activation formats
 * the jobs need. The token groups, where a job takes them, are written by
 * whole groups of 16 (each thread its share of the groups, once every row is
 * quantized): a group's scales and corrections of a block share one cache
 * line, which two threads writing their own tokens of one group would pass
 * back and forth (3% of a batch-16 decode step in sl_act_group). */
static void quantize_inputs(sl_fwd *f, const mm_job *jobs, int n_jobs, const float *x, int64_t K, int64_t n_tok,
                            long long t0, long long t1, int ith, int nth) {
    bool done[SL_ACT_COUNT] = {false}, groups[SL_ACT_COUNT] = {false}, any = false;
    for (int i = 0; i < n_jobs; i++) {
        const sl_act a = sl_act_of(jobs[i].w->type);
        if (grouped(f, &jobs[i], n_tok)) any = groups[a] = true;
        if (a == SL_ACT_F32 || done[a]) continue;
        done[a] = true;
        const size_t rb = sl_act_row_bytes(a, K);
        if (t1 > t0) f->kern->act_quantize(a, x + t0 * K, K, t1 - t0, K, f->act[a] + (size_t)t0 * rb);
    }
    if (any) {
        long long g0, g1;
        sl_split_range((n_tok + 15) / 16, ith, nth, &g0, &g1);
        sl_pool_barrier(f->pool);
        const long long e = 16 * g1 < n_tok ? 16 * g1 : n_tok;
        for (int a = 0; a < SL_ACT_COUNT; a++)
            if (groups[a] && 16 * g0 < e) {
                sl_act_group((sl_act)a, f->act[a], sl_act_row_bytes((sl_act)a, K), 16 * g0, e, K, f->act_groups[a]);
                if (e == n_tok) sl_act_group_pad((sl_act)a, n_tok, K, f->act_groups[a]); /* (this thread's is the last group) */
            }
    }
}

/* The matmuls of one op (same input x, n_tok rows of K floats, already
 * quantized), in units of `chunk` rows handed out by the op's counter. */
static void matmul_op(sl_fwd *f, int *op, const mm_job *jobs, int n_jobs, const float *x, int64_t n_tok, int ith,
                      int nth) {
    _Atomic int64_t *ctr = &f->ops[(*op)++];
    if (n_tok <= 0) return; /* a step whose tokens give no logits: the output matmul has no rows */
    const int64_t K = jobs[0].w->ne[0];
    int64_t rows = 0;
    for (int i = 0; i < n_jobs; i++) rows += jobs[i].w->ne[1];
    /* units of SL_GEMM_CHUNK rows (fewer when a matrix is too small to give
     * every thread several): each unit unpacks its rows once and runs every
     * token against them */
    int64_t chunk = rows / ((int64_t)nth * 4) / SL_GEMM_ROWS * SL_GEMM_ROWS;
    chunk = chunk < SL_GEMM_ROWS ? SL_GEMM_ROWS : chunk > SL_GEMM_CHUNK ? SL_GEMM_CHUNK : chunk;
    /* a few tokens (decoding, up to 8: memory-bound, the VNNI kernels): units of about 1/8 of a thread's
     * share — long sequential streams for the prefetchers and few atomic claims (the kernels work through
     * any number of rows, SL_GEMM_CHUNK at a time where they unpack); against SL_GEMM_CHUNK units, 1B-shape
     * decode 1.0-1.1x faster with Q4_0 and 2 threads, 4 sequences 1.11-1.22x (PERF.md, run G) */
    if (n_tok <= 8) {
        const int64_t big = rows / ((int64_t)nth * 8) / SL_GEMM_ROWS * SL_GEMM_ROWS;
        if (big > chunk) chunk = big;
    }
    /* F16 / BF16 rows over a long run of tokens: units of a token block × a chunk of rows, all of a block's
     * units before the next block's (its activations stay in L2 while the rows stream; a chunk against
     * every token re-reads all their activations from memory: 4 MiB for 512 tokens at K = 2048). Blocks
     * of equal size, a multiple of 4 tokens. */
    int64_t tb = n_tok;
    bool split = f->kern->gemm_float_tokens > 0 && n_tok > f->kern->gemm_float_tokens;
    for (int i = 0; i < n_jobs && split; i++)
        split = jobs[i].w->type != SL_TYPE_F32 && copied(f, &jobs[i]);
    if (split) {
        const int64_t nblk = (n_tok + f->kern->gemm_float_tokens - 1) / f->kern->gemm_float_tokens;
        tb = ((n_tok + nblk - 1) / nblk + 3) / 4 * 4;
    }
    int64_t units[8], per_block = 0;
    for (int i = 0; i < n_jobs; i++) {
        units[i] = (jobs[i].w->ne[1] + chunk - 1) / chunk;
        per_block += units[i];
    }
    const int64_t total = per_block * ((n_tok + tb - 1) / tb);
    uint8_t *scratch = f->gemm_scratch + (size_t)ith * f->gemm_scratch_bytes;
    for (;;) {
        int64_t u = atomic_fetch_add_explicit(ctr, 1, memory_order_relaxed);
        if (u >= total) break;
        const int64_t t0 = u / per_block * tb, nt = n_tok - t0 < tb ? n_tok - t0 : tb;
        u %= per_block;
        int j = 0;
        while (u >= units[j]) u -= units[j++];
        const sl_tensor *w = jobs[j].w;
        const int64_t r0 = u * chunk, nr = w->ne[1] - r0 < chunk ? w->ne[1] - r0 : chunk;
        const sl_act a = sl_act_of(w->type);
        const size_t as = a == SL_ACT_F32 ? (size_t)K * sizeof(float) : sl_act_row_bytes(a, K);
        const uint8_t *act = (a == SL_ACT_F32 ? (const uint8_t *)x : f->act[a]) + (size_t)t0 * as;
        float *y = jobs[j].y + t0 * w->ne[1] + r0;
        const bool copy = copied(f, &jobs[j]);
        const uint8_t *tiles = jobs[j].packed && !copy
                                   ? (const uint8_t *)jobs[j].packed + (size_t)(r0 / 16) * sl_pack_tile_bytes(w->type, K)
                                   : NULL;
        if (copy)
            f->kern->gemm[w->type](K, (const uint8_t *)jobs[j].packed + (size_t)r0 * w->row_bytes, w->row_bytes, nr, act, as,
                                   nt, y, w->ne[1], scratch);
        else if (grouped(f, &jobs[j], n_tok))
            f->kern->gemm_grouped[w->type](K, tiles, nr, act, as, f->act_groups[a], nt, y, w->ne[1], scratch);
        else if (tiles)
            f->kern->gemm_packed[w->type](K, tiles, nr, act, as, nt, y, w->ne[1], scratch);
        else
            f->kern->gemm[w->type](K, sl_tensor_row(w, r0), w->row_bytes, nr, act, as, nt, y, w->ne[1], scratch);
    }
}

/* cos and sin of token t's rope angles, as sl_rope_ref computes them. */
static void rope_table(sl_fwd *f, int64_t t) {
    const sl_hparams *hp = &f->m->hp;
    const int32_t half = hp->n_rot / 2, pos = f->b->pos[t];
    double *cs = f->rope_cs + t * half * 2;
    for (int32_t i = 0; i < half; i++) {
        double inv = pow((double)hp->rope_base, -2.0 * (double)i / (double)hp->n_rot);
        double theta = (double)pos * inv;
        if (f->m->rope_freqs) theta /= (double)f->m->rope_freqs[i];
        cs[2 * i] = cos(theta);
        cs[2 * i + 1] = sin(theta);
    }
}

/* sl_rope_ref with the angles from the table (same double arithmetic). */
static void rope_apply(const sl_fwd *f, float *x, int32_t n_heads, int64_t t) {
    const sl_hparams *hp = &f->m->hp;
    const int32_t half = hp->n_rot / 2;
    const double *cs = f->rope_cs + t * half * 2;
    /* head by head (each pair is rotated on its own, so the order of the pairs changes nothing), the
     * pairs' loop without branches so the compiler can vectorize it */
    for (int32_t h = 0; h < n_heads; h++) {
        float *xh = x + (int64_t)h * hp->head_dim;
        if (hp->rope_neox)
            for (int32_t i = 0; i < half; i++) {
                const double c = cs[2 * i], s = cs[2 * i + 1], x0 = xh[i], x1 = xh[i + half];
                xh[i] = (float)(x0 * c - x1 * s);
                xh[i + half] = (float)(x0 * s + x1 * c);
            }
        else
            for (int32_t i = 0; i < half; i++) {
                const double c = cs[2 * i], s = cs[2 * i + 1], x0 = xh[2 * i], x1 = xh[2 * i + 1];
                xh[2 * i] = (float)(x0 * c - x1 * s);
                xh[2 * i + 1] = (float)(x0 * s + x1 * c);
            }
    }
}

/* Runs of tokens that one attention call takes (sl_attn_args.n_t): tokens
 * of one sequence at consecutive positions, next to each other in the
 * batch, at most SL_ATTN_MAX_T (a prompt's chunk). A decoding step's tokens
 * are runs of one. */
static void attention_runs(sl_fwd *f) {
    const sl_batch *b = f->b;
    int32_t n = 0;
    for (int32_t t = 0; t < b->n_tokens; t++)
        if (t == 0 || b->seq[t] != b->seq[t - 1] || b->pos[t] != b->pos[t - 1] + 1 ||
            t - f->att_runs[n - 1] == SL_ATTN_MAX_T)
            f->att_runs[n++] = t;
    f->att_runs[n] = b->n_tokens;
    f->n_att_runs = n;
}

/* Work units: (run of tokens, KV head) pairs, the latest runs (the longest
 * contexts) first; each runs the group of query heads that share the KV
 * head (they read the same cached rows). */
static void attention_op(sl_fwd *f, int *op, int layer) {
    _Atomic int64_t *ctr = &f->ops[(*op)++];
    const sl_hparams *hp = &f->m->hp;
    const sl_kv_cache *kv = f->kv;
    const sl_batch *b = f->b;
    const int32_t H = hp->n_head, Hkv = hp->n_head_kv, hd = hp->head_dim, group = H / Hkv;
    const int32_t per_call = group <= 8 ? group : 8;
    const int64_t qd = (int64_t)H * hd, total = (int64_t)f->n_att_runs * Hkv;
    const size_t layer_off = sl_kv_block_offset(kv, layer, 0);
    sl_attn_args a = {.head_dim = hd, .scale = (float)(1.0 / sqrt((double)hd)), .kv_type = kv->type,
                      .block_size = kv->block_size, .block_bytes = kv->block_bytes,
                      .slot_bytes = sl_type_row_size(kv->type, hd), /* head-major blocks: a head's rows in a row */
                      .q_stride = qd, .out_stride = qd};
    for (;;) {
        const int64_t w = atomic_fetch_add_explicit(ctr, 1, memory_order_relaxed);
        if (w >= total) break;
        const int32_t r = f->n_att_runs - 1 - (int32_t)(w / Hkv), kvh = (int32_t)(w % Hkv), t = f->att_runs[r];
        a.n_t = f->att_runs[r + 1] - t;
        const size_t head_off = (size_t)kvh * (size_t)kv->block_size * a.slot_bytes;
        a.n_pos = b->pos[t] + 1;
        a.blocks = f->seqs[b->seq[t]]->blocks;
        a.k_base = kv->k + layer_off + head_off;
        a.v_base = kv->v + layer_off + head_off;
        for (int32_t h = kvh * group; h < (kvh + 1) * group; h += per_call) {
            a.n_q = (kvh + 1) * group - h < per_call ? (kvh + 1) * group - h : per_call;
            a.q = f->q + t * qd + (int64_t)h * hd;
            a.out = f->att + t * qd + (int64_t)h * hd;
            f->kern->attn(&a);
        }
    }
}

static void add_rows(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += y[i];
}

static void step_fast(void *arg, int ith, int nth) {
    sl_fwd *f = arg;
    const sl_model *m = f->m;
    const sl_hparams *hp = &m->hp;
    const sl_batch *b = f->b;
    const int64_t d = hp->n_embd, qd = (int64_t)hp->n_head * hp->head_dim,
                  kvd = (int64_t)hp->n_head_kv * hp->head_dim, ff = hp->n_ff;
    int64_t n = b->n_tokens; /* rows in flight: after the last layer's attention, only those that give logits */
    long long t0, t1;
    sl_split_range(n, ith, nth, &t0, &t1);
    int op = 0;

    for (long long t = t0; t < t1; t++) {
        sl_dequantize_row(m->tok_embd.type, sl_tensor_row(&m->tok_embd, b->tokens[t]), f->x + t * d, d);
        rope_table(f, t);
    }
    sl_pool_barrier(f->pool);

    for (int l = 0; l < hp->n_layer; l++) {
        const sl_layer *L = &m->layers[l];
        void *const *P = f->packed + l * MATS;
        const mm_job qkv[3] = {{&L->wq, f->q, P[MAT_Q]}, {&L->wk, f->k, P[MAT_K]}, {&L->wv, f->v, P[MAT_V]}};
        const mm_job o[1] = {{&L->wo, f->tmp, P[MAT_O]}};
        const mm_job gu[2] = {{&L->w_gate, f->hb, P[MAT_GATE]}, {&L->w_up, f->hb2, P[MAT_UP]}};
        const mm_job dn[1] = {{&L->w_down, f->tmp, P[MAT_DOWN]}};

        for (long long t = t0; t < t1; t++) {
            if (l > 0) add_rows(f->x + t * d, f->tmp + t * d, d); /* the previous layer's FFN output */
            f->kern->rmsnorm(f->x + t * d, L->attn_norm, f->xb + t * d, d, hp->rms_eps);
        }
        quantize_inputs(f, qkv, 3, f->xb, d, n, t0, t1, ith, nth);
        sl_pool_barrier(f->pool);
        matmul_op(f, &op, qkv, 3, f->xb, n, ith, nth);
        sl_pool_barrier(f->pool);
        for (long long t = t0; t < t1; t++) {
            qkv_post(f, L, t);
            rope_apply(f, f->q + t * qd, hp->n_head, t);
            rope_apply(f, f->k + t * kvd, hp->n_head_kv, t);
            kv_store(f, l, t);
        }
        sl_pool_barrier(f->pool);
        attention_op(f, &op, l);
        sl_pool_barrier(f->pool);
        if (l == hp->n_layer - 1 && f->n_out < n) {
            /* the rest of the last layer only matters for the rows that give logits (the KV cache has
             * every row already): their attention output and residual rows move to the front, in order
             * on one thread (out_rows ascends, so row out_rows[j] >= j is never overwritten before it
             * is read); per-row results do not depend on the other rows of a step */
            if (ith == 0)
                for (int32_t j = 0; j < f->n_out; j++)
                    if (f->out_rows[j] != j) {
                        memcpy(f->att + (int64_t)j * qd, f->att + (int64_t)f->out_rows[j] * qd, sizeof(float) * (size_t)qd);
                        memcpy(f->x + (int64_t)j * d, f->x + (int64_t)f->out_rows[j] * d, sizeof(float) * (size_t)d);
                    }
            n = f->n_out;
            sl_split_range(n, ith, nth, &t0, &t1);
            sl_pool_barrier(f->pool);
        }
        quantize_inputs(f, o, 1, f->att, qd, n, t0, t1, ith, nth);
        sl_pool_barrier(f->pool);
        matmul_op(f, &op, o, 1, f->att, n, ith, nth);
        sl_pool_barrier(f->pool);
        for (long long t = t0; t < t1; t++) {
            add_rows(f->x + t * d, f->tmp + t * d, d);
            f->kern->rmsnorm(f->x + t * d, L->ffn_norm, f->xb + t * d, d, hp->rms_eps);
        }
        quantize_inputs(f, gu, 2, f->xb, d, n, t0, t1, ith, nth);
        sl_pool_barrier(f->pool);
        matmul_op(f, &op, gu, 2, f->xb, n, ith, nth);
        sl_pool_barrier(f->pool);
        for (long long t = t0; t < t1; t++) f->kern->silu_mul(f->hb + t * ff, f->hb2 + t * ff, f->hb + t * ff, ff);
        quantize_inputs(f, dn, 1, f->hb, ff, n, t0, t1, ith, nth);
        sl_pool_barrier(f->pool);
        matmul_op(f, &op, dn, 1, f->hb, n, ith, nth);
        sl_pool_barrier(f->pool);
    }

    const mm_job out[1] = {{&m->output, f->logits, f->packed[hp->n_layer * MATS]}};
    long long j0, j1;
    sl_split_range(f->n_out, ith, nth, &j0, &j1);
    for (long long j = j0; j < j1; j++) { /* the output rows are the first n_out now */
        float *x = f->x + j * d;
        add_rows(x, f->tmp + j * d, d);
        f->kern->rmsnorm(x, m->output_norm, f->xo + j * d, d, hp->rms_eps);
    }
    take_hidden(f, ith, nth, &j0, &j1);
    quantize_inputs(f, out, 1, f->xo, d, f->n_logits, j0, j1, ith, nth);
    sl_pool_barrier(f->pool);
    matmul_op(f, &op, out, 1, f->xo, f->n_logits, ith, nth);
}

sl_status sl_fwd_step(sl_fwd *f, const sl_batch *b, sl_kv_seq *const *seqs, int32_t n_seqs, float *logits) {
    const sl_hparams *hp = &f->m->hp;
    if (b->n_tokens <= 0 || b->n_tokens > f->max_batch)
        return SL_FAIL(SL_ERR_INVALID, "forward: batch of %d tokens (allowed 1..%d)", b->n_tokens, f->max_batch);
    int32_t n_out = 0, n_logits = 0, n_hidden = 0;
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
        const uint8_t want = b->want_logits ? b->want_logits[t] : t == b->n_tokens - 1 ? SL_WANT_LOGITS : 0;
        if (want & (SL_WANT_LOGITS | SL_WANT_HIDDEN)) f->out_rows[n_out++] = t;
        n_logits += (want & SL_WANT_LOGITS) != 0;
        n_hidden += (want & SL_WANT_HIDDEN) != 0;
    }
    if (n_hidden > 0 && !b->hidden)
        return SL_FAIL(SL_ERR_INVALID, "forward: %d tokens want their hidden state and the batch has nowhere to put it",
                       n_hidden);
    f->b = b;
    f->seqs = seqs;
    f->n_out = n_out;
    f->n_logits = n_logits;
    f->n_hidden = n_hidden;
    f->logits = logits;
    if (f->reference) {
        sl_pool_run(f->pool, step_ref, f);
    } else {
        for (int32_t i = 0; i < f->n_ops; i++) atomic_store_explicit(&f->ops[i], 0, memory_order_relaxed);
        attention_runs(f);
        sl_pool_run(f->pool, step_fast, f);
    }
    f->b = NULL;
    f->seqs = NULL;
    return SL_OK;
}

/*
 * embed.c — pooling and normalization of embeddings (see embed.h).
 */
#include "embed.h"

#include "core/alloc.h"
#include "model/model.h"

#include <math.h>
#include <string.h>

static const char *const pooling_names[] = {"none", "mean", "cls", "last", "rank"};

const char *sl_pooling_name(sl_pooling p) { return p >= SL_POOL_NONE && p <= SL_POOL_RANK ? pooling_names[p] : NULL; }

bool sl_pooling_from_name(const char *name, sl_pooling *out) {
    for (int i = 0; i <= SL_POOL_RANK; i++)
        if (name && !strcmp(name, pooling_names[i])) {
            *out = (sl_pooling)i;
            return true;
        }
    return false;
}

sl_pooling sl_pooling_default(int32_t pooling_type) {
    return pooling_type >= SL_POOL_MEAN && pooling_type <= SL_POOL_RANK ? (sl_pooling)pooling_type : SL_POOL_LAST;
}

sl_pooling sl_rank_position(const sl_model *m) { return m->arch->rank_last ? SL_POOL_LAST : SL_POOL_CLS; }

bool sl_model_can_rank(const sl_model *m) { return m->cls_w || m->cls_out_w; }

int32_t sl_rank_head(const sl_model *m, const float *h, float *out) {
    const int32_t n = sl_cls_logits(m, h, out);
    if (n > 0 && m->arch->rank_last) { /* Qwen3's rerankers: the outputs as probabilities */
        double mx = out[0], sum = 0;
        for (int32_t i = 1; i < n; i++) mx = out[i] > mx ? out[i] : mx;
        for (int32_t i = 0; i < n; i++) sum += exp((double)out[i] - mx);
        for (int32_t i = 0; i < n; i++) out[i] = (float)(exp((double)out[i] - mx) / sum);
    }
    return n;
}

int32_t sl_cls_logits(const sl_model *m, const float *h, float *out) {
    const int32_t d = m->hp.n_embd;
    double *x = sl_alloc_array((size_t)d, sizeof(double));
    if (!x) return 0;
    for (int32_t i = 0; i < d; i++) x[i] = h[i];
    if (m->cls_w) { /* the dense layer and its tanh */
        double *y = sl_alloc_array((size_t)d, sizeof(double));
        if (!y) {
            sl_free(x);
            return 0;
        }
        for (int32_t r = 0; r < d; r++) {
            const float *w = m->cls_w + (size_t)r * (size_t)d;
            double acc = m->cls_b ? m->cls_b[r] : 0.0;
            for (int32_t i = 0; i < d; i++) acc += (double)w[i] * x[i];
            y[r] = tanh(acc);
        }
        sl_free(x);
        x = y;
    }
    int32_t n = d;
    if (m->cls_out_w) {
        n = m->n_cls_out;
        for (int32_t r = 0; r < n; r++) {
            const float *w = m->cls_out_w + (size_t)r * (size_t)d;
            double acc = m->cls_out_b ? m->cls_out_b[r] : 0.0;
            for (int32_t i = 0; i < d; i++) acc += (double)w[i] * x[i];
            out[r] = (float)acc;
        }
    } else {
        for (int32_t i = 0; i < d; i++) out[i] = (float)x[i];
    }
    sl_free(x);
    return n;
}

void sl_embd_normalize(float *v, int32_t n, int32_t p) {
    if (p < 0) return;
    double sum = 0;
    for (int32_t i = 0; i < n; i++) {
        const double a = fabs((double)v[i]);
        if (p == 0) sum = a > sum ? a : sum;
        else sum += p == 1 ? a : p == 2 ? a * a : pow(a, p);
    }
    sum = p == 0 ? sum / 32760.0 : p == 1 ? sum : p == 2 ? sqrt(sum) : pow(sum, 1.0 / p);
    const double inv = sum > 0 ? 1 / sum : 0;
    for (int32_t i = 0; i < n; i++) v[i] = (float)(v[i] * inv);
}

void sl_pool_rows(sl_pooling pooling, const float *hidden, int32_t n_pos, int32_t d, float *out) {
    if (pooling == SL_POOL_CLS || pooling == SL_POOL_LAST) {
        memcpy(out, hidden + (size_t)(pooling == SL_POOL_CLS ? 0 : n_pos - 1) * (size_t)d, sizeof(float) * (size_t)d);
        return;
    }
    for (int32_t i = 0; i < d; i++) { /* mean (none: the caller takes the rows themselves) */
        double acc = 0;
        for (int32_t t = 0; t < n_pos; t++) acc += hidden[(size_t)t * (size_t)d + (size_t)i];
        out[i] = (float)(acc / n_pos);
    }
}

/*
 * embed.c — pooling and normalization of embeddings (see embed.h).
 */
#include "embed.h"

#include <math.h>
#include <string.h>

static const char *const pooling_names[] = {"none", "mean", "cls", "last"};

const char *sl_pooling_name(sl_pooling p) { return p >= SL_POOL_NONE && p <= SL_POOL_LAST ? pooling_names[p] : NULL; }

bool sl_pooling_from_name(const char *name, sl_pooling *out) {
    for (int i = 0; i <= SL_POOL_LAST; i++)
        if (name && !strcmp(name, pooling_names[i])) {
            *out = (sl_pooling)i;
            return true;
        }
    return false;
}

sl_pooling sl_pooling_default(int32_t pooling_type) {
    return pooling_type >= SL_POOL_MEAN && pooling_type <= SL_POOL_LAST ? (sl_pooling)pooling_type : SL_POOL_LAST;
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

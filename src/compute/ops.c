/*
 * ops.c — scalar reference ops (the spec, the fallback and the test oracle
 * for faster variants). Sums run in double in index order.
 */
#include "ops.h"

#include "quant.h"

#include <math.h>

void sl_matmul_ref(const sl_tensor *w, int64_t r0, int64_t r1, const float *x, int64_t ldx, int64_t n_tok,
                   float *y, int64_t ldy, float *scratch) {
    const int64_t K = w->ne[0];
    for (int64_t r = r0; r < r1; r++) {
        sl_dequantize_row(w->type, sl_tensor_row(w, r), scratch, K);
        for (int64_t t = 0; t < n_tok; t++) {
            const float *xt = x + t * ldx;
            double s = 0.0;
            for (int64_t k = 0; k < K; k++) s += (double)scratch[k] * (double)xt[k];
            y[t * ldy + (r - r0)] = (float)s;
        }
    }
}

void sl_rmsnorm_ref(const float *x, const float *w, float *out, int64_t n, float eps) {
    /* Σ x² in double, element i into partial sum i mod 8, the partials added pairwise: one fixed order
     * (the only one: the fast path calls this too), and eight independent chains instead of one chain
     * of n dependent additions (2048 of them per norm of the 1B shape, 32 norms per token) */
    double p0 = 0, p1 = 0, p2 = 0, p3 = 0, p4 = 0, p5 = 0, p6 = 0, p7 = 0;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const float *v = x + j;
        p0 += (double)v[0] * v[0], p1 += (double)v[1] * v[1], p2 += (double)v[2] * v[2], p3 += (double)v[3] * v[3];
        p4 += (double)v[4] * v[4], p5 += (double)v[5] * v[5], p6 += (double)v[6] * v[6], p7 += (double)v[7] * v[7];
    }
    double *tail[8] = {&p0, &p1, &p2, &p3, &p4, &p5, &p6, &p7};
    for (int k = 0; j < n; j++, k++) *tail[k] += (double)x[j] * x[j];
    const double ss = ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7));
    double scale = 1.0 / sqrt(ss / (double)n + (double)eps);
    for (int64_t i = 0; i < n; i++) out[i] = (float)((double)x[i] * scale * (double)w[i]);
}

void sl_rope_ref(float *x, int32_t n_heads, int32_t head_dim, int32_t n_rot, int32_t pos, float base,
                 const float *freq_factors, int neox) {
    const int32_t half = n_rot / 2;
    for (int32_t i = 0; i < half; i++) {
        double inv = pow((double)base, -2.0 * (double)i / (double)n_rot);
        double theta = (double)pos * inv;
        if (freq_factors) theta /= (double)freq_factors[i];
        double c = cos(theta), s = sin(theta);
        for (int32_t h = 0; h < n_heads; h++) {
            float *xh = x + (int64_t)h * head_dim;
            int32_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
            double x0 = xh[a], x1 = xh[b];
            xh[a] = (float)(x0 * c - x1 * s);
            xh[b] = (float)(x0 * s + x1 * c);
        }
    }
}

void sl_swiglu_ref(const float *gate, const float *up, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double g = gate[i];
        out[i] = (float)(g / (1.0 + exp(-g)) * (double)up[i]);
    }
}

void sl_softmax_ref(float *x, int64_t n) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double e = exp((double)x[i] - (double)mx);
        x[i] = (float)e;
        sum += e;
    }
    for (int64_t i = 0; i < n; i++) x[i] = (float)((double)x[i] / sum);
}

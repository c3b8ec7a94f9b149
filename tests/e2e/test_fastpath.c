/*
 * test_fastpath.c — the fast forward path (SIMD kernels, quantized
 * activations) end to end.
 *
 * 1. stories260K (F32 weights, F32 activations on the fast path): llama.cpp's
 *    64 greedy ids exactly and its logits within 1e-4, with every kernel
 *    table the CPU has (scalar, AVX2, AVX-512) — and the tables give
 *    bit-identical logits.
 * 2. The small random Llama files against the float64 references
 *    (golden/small/NAME.NN.ref_f64.f32), teacher-forced: the reference path within
 *    1e-3 (proves the K-quant block layouts are read as GGUF writes them),
 *    the fast path within the band llama.cpp itself shows (README: F16 0.04,
 *    BF16 0.3, Q8_0/Q4_0 0.6-1.3, K-quants 1.2-1.9).
 * 3. mkmodel-written models in every type mkmodel writes: fast vs reference.
 *    Bound, derived from the activation rounding: the fast path computes
 *    exactly "dequantized weights × activations rounded to Q8_0/Q8_K", so
 *    against the reference path with the same rounding (round_acts, summing
 *    in double) it differs only by float32 accumulation and sl_expf:
 *    |fast - ref_rounded| <= 1e-4 * (1 + max|logit|) (float32 relative error
 *    ~1e-6 per op, amplified at most ~50x by these random networks, as the
 *    F16/BF16 files' 1.7e-5 against ref_f64 shows). And against the plain
 *    reference, |fast - ref| <= |ref_rounded - ref| + that float term; the
 *    rounding term itself is predicted from first principles: Q8 rounding
 *    leaves a relative error of at most 1/254 per element (half a step of
 *    amax/127), which becomes ~1/254/sqrt(3) relative RMS per matmul output;
 *    over S rounding sites (4 per layer + the output) the logits move by
 *    about sqrt(S) * 0.0023 * gain times their RMS, and we require the
 *    measured move to stay within 4x that estimate with gain <= 4.
 * 4. Batch invariance on the fast path: a sequence's logits are bit-identical
 *    alone, in a batch of 2, 7, 16 or 64 sequences, with its prompt fed
 *    whole, in chunks of 7, or token by token — on F32, Q4_0, Q8_0 and
 *    K-quant models, with F32, F16 and Q8_0 KV caches, and 1 or 2 threads.
 * 5. KV cache types on the fast path against llama.cpp (Q8_0 K and V).
 */
#include "harness.h"

#include "shardlm.h"
#include "compute/kernels.h"
#include "core/alloc.h"
#include "engine/forward.h"
#include "engine/kv.h"
#include "model/mkmodel.h"
#include "model/model.h"
#include "fwd_util.h"

#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

#define STORIES "../shared/models/stories260K.gguf"

/* ---- helpers ---------------------------------------------------------------- */

static double max_abs_diff(const float *a, const float *b, size_t n, size_t *at) {
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > w || d != d) {
            w = d;
            if (at) *at = i;
        }
    }
    return w;
}

static double max_abs(const float *a, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i]) > w) w = fabs(a[i]);
    return w;
}

static double rms(const float *a, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * a[i];
    return sqrt(s / (double)n);
}

static const char *ISAS[] = {"scalar", "avx2", "avx512", "amx"};

/* ---- 1. stories260K golden on the fast path ----------------------------------------- */

#define ST_GEN 64
#define ST_V 512

typedef struct st_golden {
    int32_t prompt[64];
    int n_prompt;
    int32_t gen[ST_GEN];
    float *logits; /* (ST_GEN, ST_V) */
} st_golden;

static bool st_load(int nn, st_golden *g) {
    char path[256];
    snprintf(path, sizeof path, "golden/stories260K/main.%02d.json", nn);
    const char *p = sl_test_shared(path);
    json_error_t je;
    json_t *j = p ? json_load_file(p, 0, &je) : NULL;
    if (!j) return false;
    json_t *pi = json_object_get(j, "prompt_token_ids"), *gi = json_object_get(j, "generated_token_ids");
    g->n_prompt = (int)json_array_size(pi);
    for (int i = 0; i < g->n_prompt && i < 64; i++) g->prompt[i] = (int32_t)json_integer_value(json_array_get(pi, i));
    for (int i = 0; i < ST_GEN; i++) g->gen[i] = (int32_t)json_integer_value(json_array_get(gi, i));
    json_decref(j);
    snprintf(path, sizeof path, "golden/stories260K/main.%02d.logits_all.txt", nn);
    p = sl_test_shared(path);
    char *txt = p ? sl_test_read_file(p, NULL) : NULL;
    if (!txt) return false;
    g->logits = malloc(sizeof(float) * ST_GEN * ST_V);
    char *s = txt;
    for (int i = 0; i < ST_GEN * ST_V; i++) g->logits[i] = strtof(s, &s);
    free(txt);
    return true;
}

/* Greedy generation with a given kernel table: prompt in one step, then one
 * token per step. ids (ST_GEN) and logits (ST_GEN, V). */
static sl_status st_generate(const sl_model *m, const st_golden *g, const char *isa, int threads, int32_t *ids,
                             float *logits) {
    runner r;
    sl_fwd_params fp = {.n_threads = threads, .kernels = isa};
    const int32_t n_ctx = g->n_prompt + ST_GEN;
    sl_status st = runner_init(&r, m, 64, n_ctx, (n_ctx + 15) / 16, SL_TYPE_F32, &fp);
    sl_kv_seq s = {0};
    if (!st) st = sl_kv_seq_reserve(r.kv, &s, n_ctx);
    if (!st && strcmp(sl_fwd_path_name(r.f), isa) != 0) st = SL_ERR_INVALID;
    int32_t pos[64], seq[64] = {0}, tok[64];
    sl_kv_seq *seqs[1] = {&s};
    int32_t n_in = g->n_prompt, at = 0;
    memcpy(tok, g->prompt, sizeof(int32_t) * (size_t)n_in);
    for (int k = 0; k < ST_GEN && !st; k++) {
        for (int32_t i = 0; i < n_in; i++) pos[i] = at + i;
        sl_batch b = {.n_tokens = n_in, .tokens = tok, .pos = pos, .seq = seq, .want_logits = NULL};
        float *lg = logits + (size_t)k * ST_V;
        if ((st = sl_fwd_step(r.f, &b, seqs, 1, lg))) break;
        int best = 0;
        for (int i = 1; i < ST_V; i++)
            if (lg[i] > lg[best]) best = i;
        ids[k] = best;
        at += n_in;
        tok[0] = best;
        n_in = 1;
    }
    if (r.kv) sl_kv_seq_deinit(r.kv, &s);
    runner_free(&r);
    return st;
}

TEST(stories_golden_every_isa) {
    sl_model *m = NULL;
    CHECK_OK(sl_model_load(STORIES, &m));
    float *first = malloc(sizeof(float) * ST_GEN * ST_V), *lg = malloc(sizeof(float) * ST_GEN * ST_V);
    int32_t ids[ST_GEN];
    for (int nn = 0; nn < 6; nn++) {
        st_golden g = {0};
        CHECK_MSG(st_load(nn, &g), "cannot read stories golden %02d", nn);
        bool have_first = false;
        for (int ii = 0; ii < 3; ii++) {
            if (!sl_kernels_get(ISAS[ii])) continue;
            sl_status st = st_generate(m, &g, ISAS[ii], 1 + (nn + ii) % 2, ids, lg);
            int bad = -1;
            for (int k = 0; k < ST_GEN && bad < 0 && !st; k++)
                if (ids[k] != g.gen[k]) bad = k;
            size_t at = 0;
            double worst = st ? 0 : max_abs_diff(lg, g.logits, ST_GEN * ST_V, &at);
            bool same = !have_first || memcmp(first, lg, sizeof(float) * ST_GEN * ST_V) == 0;
            if (!have_first) memcpy(first, lg, sizeof(float) * ST_GEN * ST_V);
            have_first = true;
            if (st || bad >= 0 || worst > 1e-4 || !same) {
                free(g.logits);
                free(first);
                free(lg);
                sl_model_destroy(m);
            }
            CHECK_OK(st);
            CHECK_MSG(bad < 0, "%s prompt %02d: generated id %d differs from llama.cpp", ISAS[ii], nn, bad);
            CHECK_MSG(worst <= 1e-4, "%s prompt %02d: logits differ by %.3g (position %zu, limit 1e-4)", ISAS[ii], nn,
                      worst, at / ST_V);
            CHECK_MSG(same, "%s prompt %02d: logits differ from the %s table's", ISAS[ii], nn, ISAS[0]);
        }
        free(g.logits);
    }
    free(first);
    free(lg);
    sl_model_destroy(m);
}

/* ---- 2. small random Llama files against float64 ------------------------------------ */

#define SM_V 32000
#define SM_ROWS 4

typedef struct sm_case {
    int32_t toks[64];
    int n;
    float *ref; /* (SM_ROWS, V) */
} sm_case;

static bool sm_load(const char *name, int nn, sm_case *c) {
    char path[256];
    snprintf(path, sizeof path, "golden/small/%s.%02d.json", name, nn);
    const char *p = sl_test_shared(path);
    json_error_t je;
    json_t *j = p ? json_load_file(p, 0, &je) : NULL;
    if (!j) return false;
    json_t *pi = json_object_get(j, "prompt_token_ids"), *gi = json_object_get(j, "generated_token_ids");
    int np = (int)json_array_size(pi);
    for (int i = 0; i < np; i++) c->toks[i] = (int32_t)json_integer_value(json_array_get(pi, i));
    for (int i = 0; i < SM_ROWS - 1; i++) c->toks[np + i] = (int32_t)json_integer_value(json_array_get(gi, i));
    c->n = np + SM_ROWS - 1;
    json_decref(j);
    snprintf(path, sizeof path, "golden/small/%s.%02d.ref_f64.f32", name, nn);
    p = sl_test_shared(path);
    size_t len = 0;
    c->ref = p ? (float *)sl_test_read_file(p, &len) : NULL;
    if (!c->ref || len != sizeof(float) * SM_ROWS * SM_V) {
        free(c->ref);
        c->ref = NULL;
        return false;
    }
    return true;
}

/* max |logit - ref_f64| over the 4 teacher-forced rows. */
static sl_status sm_diff(const sl_model *m, const sm_case *c, const sl_fwd_params *fp, double *out) {
    float *lg = malloc(sizeof(float) * (size_t)c->n * SM_V);
    sl_status st = eval_all(m, c->toks, c->n, SL_TYPE_F32, fp, lg);
    if (!st) *out = max_abs_diff(lg + (size_t)(c->n - SM_ROWS) * SM_V, c->ref, SM_ROWS * SM_V, NULL);
    free(lg);
    return st;
}

static void check_small(const char *name, double ref_tol, double fast_lo, double fast_hi) {
    char path[256];
    snprintf(path, sizeof path, "models/small/%s.gguf", name);
    const char *mp = sl_test_shared(path);
    CHECK_MSG(mp, "missing ../shared/%s", path);
    sl_model *m = NULL;
    CHECK_OK(sl_model_load(mp, &m));
    for (int nn = 0; nn < 2; nn++) {
        sm_case c = {0};
        if (!sm_load(name, nn, &c)) {
            sl_model_destroy(m);
            CHECK_MSG(0, "cannot read the golden files of %s prompt %02d", name, nn);
        }
        double d_ref = -1, d_fast = -1;
        sl_fwd_params ref = {.n_threads = 2, .reference = true}, fast = {.n_threads = 2};
        sl_status st = sm_diff(m, &c, &ref, &d_ref);
        if (!st) st = sm_diff(m, &c, &fast, &d_fast);
        free(c.ref);
        if (st) sl_model_destroy(m);
        CHECK_OK(st);
        printf("    %s prompt %02d: reference %.3g, fast %.3g (max |logit - ref_f64|)\n", name, nn, d_ref, d_fast);
        if (d_ref > ref_tol || !(d_fast <= fast_hi) || d_fast < fast_lo) sl_model_destroy(m);
        CHECK_MSG(d_ref <= ref_tol, "%s prompt %02d: reference path differs from ref_f64 by %.3g (limit %.0e)", name, nn,
                  d_ref, ref_tol);
        CHECK_MSG(d_fast <= fast_hi && d_fast >= fast_lo,
                  "%s prompt %02d: fast path differs from ref_f64 by %.3g (expected %.3g..%.3g)", name, nn, d_fast,
                  fast_lo, fast_hi);
    }
    sl_model_destroy(m);
}

/* Bands: llama.cpp's own distance to ref_f64 (README), with a margin of 25%
 * above; our fast path keeps F32 activations for F16/BF16 (hence closer). */
TEST(small_Q4_K_M) { check_small("small-llama-Q4_K_M", 1e-3, 0.05, 1.9 * 1.25); }
TEST(small_Q5_K_M) { check_small("small-llama-Q5_K_M", 1e-3, 0.05, 1.9 * 1.25); }
TEST(small_Q6_K) { check_small("small-llama-Q6_K", 1e-3, 0.05, 1.9 * 1.25); }
TEST(small_Q8_0) { check_small("small-llama-Q8_0", 1e-3, 0.05, 1.3 * 1.25); }
TEST(small_Q4_0) { check_small("small-llama-Q4_0", 1e-3, 0.05, 1.3 * 1.25); }
TEST(small_F16) { check_small("small-llama-F16", 1e-3, 0, 0.04); }
TEST(small_BF16) { check_small("small-llama-BF16", 1e-3, 0, 0.3); }
TEST(small_qwen2_Q8_0) { check_small("small-qwen2-Q8_0", 1e-3, 0.05, 1.3 * 1.25); }
TEST(small_qwen3_Q8_0) { check_small("small-qwen3-Q8_0", 1e-3, 0.05, 1.3 * 1.25); }

/* ---- 3. mkmodel models: fast vs reference ------------------------------------------- */

static sl_status write_model(const char *path, sl_type t, int64_t n_layers) {
    sl_mkmodel_params p;
    sl_mkmodel_params_default(&p);
    p.path = path;
    p.dim = 128;
    p.n_layers = n_layers;
    p.n_heads = 4;
    p.n_kv_heads = 2;
    p.n_ff = 352;
    p.n_ctx = 256;
    p.type = t;
    p.n_vocab = 600;
    p.tied = true;
    p.rope_base = 500000.0f;
    p.rope_scaling = SL_ROPE_SCALING_LLAMA3;
    p.seed = 7 + (uint64_t)t;
    return sl_mkmodel_write(&p);
}

TEST(mkmodel_fast_vs_reference) {
    static const sl_type types[] = {SL_TYPE_F32, SL_TYPE_F16, SL_TYPE_BF16, SL_TYPE_Q8_0, SL_TYPE_Q4_0};
    const int64_t n_layers = 3;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        char path[] = "/tmp/shardlm-fastpath-XXXXXX";
        int fd = mkstemp(path);
        CHECK(fd >= 0);
        close(fd);
        sl_status st = write_model(path, types[ti], n_layers);
        sl_model *m = NULL;
        if (!st) st = sl_model_load(path, &m);
        unlink(path);
        CHECK_OK(st);
        enum { N = 24 };
        int32_t toks[N];
        for (int i = 0; i < N; i++) toks[i] = (int32_t)((i * 37 + 11) % m->hp.n_vocab);
        const size_t nl = (size_t)N * (size_t)m->hp.n_vocab;
        float *fast = malloc(sizeof(float) * nl), *ref = malloc(sizeof(float) * nl), *refq = malloc(sizeof(float) * nl);
        sl_fwd_params pf = {.n_threads = 2}, pr = {.n_threads = 2, .reference = true},
                      pq = {.n_threads = 2, .reference = true, .round_acts = true};
        st = eval_all(m, toks, N, SL_TYPE_F32, &pf, fast);
        if (!st) st = eval_all(m, toks, N, SL_TYPE_F32, &pr, ref);
        if (!st) st = eval_all(m, toks, N, SL_TYPE_F32, &pq, refq);
        const double scale = max_abs(ref, nl), lrms = rms(ref, nl);
        const double d_q = max_abs_diff(fast, refq, nl, NULL), d_round = max_abs_diff(refq, ref, nl, NULL),
                     d = max_abs_diff(fast, ref, nl, NULL);
        free(fast);
        free(ref);
        free(refq);
        sl_model_destroy(m);
        CHECK_OK(st);
        const double float_tol = 1e-4 * (1.0 + scale);
        const bool quant = types[ti] == SL_TYPE_Q8_0 || types[ti] == SL_TYPE_Q4_0;
        /* first-order size of the rounding effect (see the file comment) */
        const double sites = 4.0 * (double)n_layers + 1.0;
        const double predicted = quant ? sqrt(sites) * (1.0 / 254.0 / sqrt(3.0)) * 4.0 * lrms * 4.0 : 0.0;
        printf("    %-4s: |fast - ref_rounded| %.3g (limit %.3g), |ref_rounded - ref| %.3g (limit %.3g), |fast - ref| %.3g\n",
               sl_type_name(types[ti]), d_q, float_tol, d_round, predicted, d);
        CHECK_MSG(d_q <= float_tol, "%s: fast path differs from the rounded reference by %.3g (limit %.3g)",
                  sl_type_name(types[ti]), d_q, float_tol);
        CHECK_MSG(d_round <= predicted, "%s: activation rounding moved the logits by %.3g, predicted at most %.3g",
                  sl_type_name(types[ti]), d_round, predicted);
        CHECK_MSG(d <= d_round + float_tol, "%s: |fast - ref| = %.3g > %.3g + %.3g", sl_type_name(types[ti]), d,
                  d_round, float_tol);
    }
}

/* ---- 4. batch invariance ------------------------------------------------------------------ */

/* Sequence 0 (toks, n) runs beside n_seq - 1 other sequences (other tokens,
 * other lengths); every sequence feeds `chunk` tokens per step (0: whole).
 * The logits of sequence 0 at every position go to out (n, V). Sequence 0's
 * tokens are placed in the middle of each step's batch. */
static sl_status run_batched(const sl_model *m, const int32_t *toks, int32_t n, int n_seq, int32_t chunk,
                             sl_type kv_type, int threads, float *out) {
    const int32_t V = m->hp.n_vocab, maxlen = n + 6;
    runner r;
    sl_fwd_params fp = {.n_threads = threads};
    const int32_t per = chunk ? chunk : maxlen;
    sl_status st = runner_init(&r, m, n_seq * per, maxlen, n_seq * ((maxlen + 15) / 16), kv_type, &fp);
    sl_kv_seq *s = calloc((size_t)n_seq, sizeof *s);
    sl_kv_seq **seqs = calloc((size_t)n_seq, sizeof *seqs);
    int32_t *len = calloc((size_t)n_seq, sizeof *len), *done = calloc((size_t)n_seq, sizeof *done);
    int32_t **tk = calloc((size_t)n_seq, sizeof *tk);
    const size_t B = (size_t)n_seq * (size_t)per;
    int32_t *bt = malloc(B * 4), *bp = malloc(B * 4), *bs = malloc(B * 4);
    uint8_t *bw = malloc(B);
    float *lg = malloc(sizeof(float) * (size_t)per * (size_t)V);
    for (int i = 0; i < n_seq && !st; i++) {
        seqs[i] = &s[i];
        len[i] = i == 0 ? n : n - 3 + (i * 5) % 9;
        tk[i] = malloc(sizeof(int32_t) * (size_t)len[i]);
        for (int32_t j = 0; j < len[i]; j++) tk[i][j] = i == 0 ? toks[j] : (int32_t)((j * 131 + i * 977 + 3) % V);
        st = sl_kv_seq_reserve(r.kv, &s[i], len[i]);
    }
    const int mid = n_seq / 2;
    while (!st && done[0] < n) {
        int32_t k = 0, k0 = 0, c0 = 0;
        for (int ii = 0; ii < n_seq; ii++) {
            const int i = ii < mid ? ii + 1 : ii == mid ? 0 : ii; /* sequence 0 in the middle */
            if (i >= n_seq) continue;
            const int32_t c = len[i] - done[i] < per ? len[i] - done[i] : per;
            if (i == 0) {
                k0 = k;
                c0 = c;
            }
            for (int32_t j = 0; j < c; j++, k++) {
                bt[k] = tk[i][done[i] + j];
                bp[k] = done[i] + j;
                bs[k] = i;
                bw[k] = i == 0;
            }
        }
        if (k == 0) break;
        sl_batch b = {.n_tokens = k, .tokens = bt, .pos = bp, .seq = bs, .want_logits = bw};
        if ((st = sl_fwd_step(r.f, &b, seqs, n_seq, lg))) break;
        (void)k0;
        memcpy(out + (size_t)done[0] * V, lg, sizeof(float) * (size_t)c0 * V);
        for (int i = 0; i < n_seq; i++) done[i] += len[i] - done[i] < per ? len[i] - done[i] : per;
    }
    for (int i = 0; i < n_seq; i++) {
        if (r.kv) sl_kv_seq_deinit(r.kv, &s[i]);
        free(tk ? tk[i] : NULL);
    }
    free(s);
    free(seqs);
    free(len);
    free(done);
    free(tk);
    free(bt);
    free(bp);
    free(bs);
    free(bw);
    free(lg);
    runner_free(&r);
    return st;
}

static void check_invariance(const char *model_path, sl_type kv_type, bool quick) {
    sl_model *m = NULL;
    CHECK_OK(sl_model_load(model_path, &m));
    enum { N = 20 };
    int32_t toks[N];
    for (int i = 0; i < N; i++) toks[i] = (int32_t)(1 + (i * 7919) % (m->hp.n_vocab - 1));
    const size_t V = (size_t)m->hp.n_vocab, nl = (size_t)N * V;
    float *want = malloc(sizeof(float) * nl), *got = malloc(sizeof(float) * nl);
    sl_fwd_params fp = {.n_threads = 1};
    sl_status st = eval_all(m, toks, N, kv_type, &fp, want);
    static const int sizes[] = {1, 2, 7, 16, 64};
    static const int32_t chunks[] = {0, 7, 1};
    for (int si = 0; si < 5 && !st; si++)
        for (int ci = 0; ci < 3 && !st; ci++) {
            if (quick && sizes[si] == 64 && chunks[ci] == 0) continue;
            const int threads = 1 + (si + ci) % 2;
            memset(got, 0, sizeof(float) * nl);
            st = run_batched(m, toks, N, sizes[si], chunks[ci], kv_type, threads, got);
            if (!st && memcmp(got, want, sizeof(float) * nl) != 0) {
                size_t at = 0;
                double d = max_abs_diff(got, want, nl, &at);
                free(want);
                free(got);
                sl_model_destroy(m);
                CHECK_MSG(0, "%s, KV %s: %d sequences, chunk %d, %d threads: logits not bit-identical (max diff %.3g at position %zu)",
                          model_path, sl_type_name(kv_type), sizes[si], chunks[ci], threads, d,
                          at / V);
            }
        }
    free(want);
    free(got);
    sl_model_destroy(m);
    CHECK_OK(st);
}

TEST(batch_invariance_stories) { check_invariance(STORIES, SL_TYPE_F32, false); }
TEST(batch_invariance_stories_f16_kv) { check_invariance(STORIES, SL_TYPE_F16, true); }
TEST(batch_invariance_q4_k_m) {
    const char *p = sl_test_shared("models/small/small-llama-Q4_K_M.gguf");
    CHECK(p);
    check_invariance(p, SL_TYPE_F32, false);
}
TEST(batch_invariance_q4_0_q8_kv) {
    const char *p = sl_test_shared("models/small/small-llama-Q4_0.gguf");
    CHECK(p);
    check_invariance(p, SL_TYPE_Q8_0, true);
}
/* float weights: over 32 tokens the matmul converts them once per token block, and the forward pass
 * splits a long run into blocks of gemm_float_tokens (64 with AVX-512) */
TEST(batch_invariance_f16) {
    const char *p = sl_test_shared("models/small/small-llama-F16.gguf");
    CHECK(p);
    check_invariance(p, SL_TYPE_F32, true);
}
TEST(batch_invariance_q8_0) {
    const char *p = sl_test_shared("models/small/small-qwen2-Q8_0.gguf");
    CHECK(p);
    check_invariance(p, SL_TYPE_F32, true);
}

/* A prompt in chunks the way the server feeds it: chunks whose tokens give no logits (a step with no
 * output rows: the output matmul gets no tokens), then the last chunk with two sequences interleaved,
 * only each sequence's last token wanted (the last layer runs only those rows). The last tokens' logits
 * must equal those of the prompt in one step with every position's logits wanted, on every kernel table
 * (the AVX-512 table crashed on the empty output matmul before). */
static void check_chunked_no_logits(const char *path) {
    sl_model *m = NULL;
    CHECK_OK(sl_model_load(path, &m));
    enum { N = 37 };
    int32_t toks[N];
    for (int i = 0; i < N; i++) toks[i] = (int32_t)(1 + (i * 7919) % (m->hp.n_vocab - 1));
    const size_t V = (size_t)m->hp.n_vocab;
    float *want = malloc(sizeof(float) * N * V), *lg = malloc(sizeof(float) * 2 * V);
    sl_status st = SL_OK;
    for (int ii = 0; ii < 4 && !st; ii++) {
        if (!sl_kernels_get(ISAS[ii])) continue;
        sl_fwd_params fp = {.n_threads = 1 + ii % 2, .kernels = ISAS[ii]};
        st = eval_all(m, toks, N, SL_TYPE_F16, &fp, want);
        runner r;
        if (!st) st = runner_init(&r, m, 64, N, 2 * ((N + 15) / 16), SL_TYPE_F16, &fp);
        else break;
        sl_kv_seq s[2] = {{0}};
        for (int q = 0; q < 2 && !st; q++) st = sl_kv_seq_reserve(r.kv, &s[q], N);
        sl_kv_seq *seqs[2] = {&s[0], &s[1]};
        int32_t bt[2 * N], bp[2 * N], bs[2 * N];
        uint8_t bw[2 * N];
        /* chunks [0, 9) and [9, 20) of sequence 0, [0, 20) of sequence 1: no logits */
        static const int32_t cuts[][3] = {{0, 0, 9}, {0, 9, 20}, {1, 0, 20}};
        for (int c = 0; c < 3 && !st; c++) {
            int32_t k = 0;
            for (int32_t p = cuts[c][1]; p < cuts[c][2]; p++, k++) {
                bt[k] = toks[p], bp[k] = p, bs[k] = cuts[c][0], bw[k] = 0;
            }
            sl_batch b = {.n_tokens = k, .tokens = bt, .pos = bp, .seq = bs, .want_logits = bw};
            st = sl_fwd_step(r.f, &b, seqs, 2, lg);
        }
        /* the rest of both, interleaved: only the last token of each wants logits */
        int32_t k = 0;
        for (int32_t p = 20; p < N; p++)
            for (int q = 0; q < 2; q++, k++) bt[k] = toks[p], bp[k] = p, bs[k] = q, bw[k] = p == N - 1;
        sl_batch b = {.n_tokens = k, .tokens = bt, .pos = bp, .seq = bs, .want_logits = bw};
        if (!st) st = sl_fwd_step(r.f, &b, seqs, 2, lg);
        for (int q = 0; q < 2; q++) sl_kv_seq_deinit(r.kv, &s[q]);
        runner_free(&r);
        if (st) break;
        for (int q = 0; q < 2; q++) {
            const bool same = memcmp(lg + (size_t)q * V, want + (size_t)(N - 1) * V, sizeof(float) * V) == 0;
            if (!same) {
                const double d = max_abs_diff(lg + (size_t)q * V, want + (size_t)(N - 1) * V, V, NULL);
                free(want);
                free(lg);
                sl_model_destroy(m);
                CHECK_MSG(0, "%s, %s table: sequence %d's last logits after chunks without logits differ from one step "
                          "(max diff %.3g)", path, ISAS[ii], q, d);
            }
        }
    }
    free(want);
    free(lg);
    sl_model_destroy(m);
    CHECK_OK(st);
}

TEST(chunks_without_logits_q4_0) {
    const char *p = sl_test_shared("models/small/small-llama-Q4_0.gguf");
    CHECK(p);
    check_chunked_no_logits(p);
}
TEST(chunks_without_logits_q4_k_m) {
    const char *p = sl_test_shared("models/small/small-llama-Q4_K_M.gguf");
    CHECK(p);
    check_chunked_no_logits(p);
}

/* ---- 5. KV cache types ---------------------------------------------------------------------- */

/* Q8_0 K and V against llama.cpp (flash attention, Q8_0 KV): logits0. llama.cpp
 * itself moves up to 0.85 from its F32-KV output here; we stay close to it. */
TEST(q8_0_kv_against_llama_cpp) {
    const char *mp = sl_test_shared("models/small/small-llama-F16.gguf");
    CHECK(mp);
    sl_model *m = NULL;
    CHECK_OK(sl_model_load(mp, &m));
    for (int nn = 0; nn < 2; nn++) {
        char path[128];
        snprintf(path, sizeof path, "golden/small/small-llama-F16.kvq8_0-fa.%02d.json", nn);
        const char *jp = sl_test_shared(path);
        json_error_t je;
        json_t *j = jp ? json_load_file(jp, 0, &je) : NULL;
        if (!j) sl_model_destroy(m);
        CHECK_MSG(j, "cannot read %s", path);
        json_t *pi = json_object_get(j, "prompt_token_ids"), *l0 = json_object_get(j, "logits0");
        int32_t toks[64];
        const int n = (int)json_array_size(pi);
        for (int i = 0; i < n; i++) toks[i] = (int32_t)json_integer_value(json_array_get(pi, i));
        float *want = malloc(sizeof(float) * SM_V), *lg = malloc(sizeof(float) * (size_t)n * SM_V),
              *lf = malloc(sizeof(float) * (size_t)n * SM_V);
        for (int i = 0; i < SM_V; i++) want[i] = (float)json_real_value(json_array_get(l0, i));
        json_decref(j);
        sl_fwd_params fp = {.n_threads = 2};
        sl_status st = eval_all(m, toks, n, SL_TYPE_Q8_0, &fp, lg);
        if (!st) st = eval_all(m, toks, n, SL_TYPE_F32, &fp, lf);
        const float *last = lg + (size_t)(n - 1) * SM_V;
        const double d = max_abs_diff(last, want, SM_V, NULL);
        const double moved = max_abs_diff(last, lf + (size_t)(n - 1) * SM_V, SM_V, NULL);
        free(want);
        free(lg);
        free(lf);
        if (st) sl_model_destroy(m);
        CHECK_OK(st);
        printf("    prompt %02d: Q8_0 KV vs llama.cpp Q8_0 KV %.3g; Q8_0 KV vs our F32 KV %.3g\n", nn, d, moved);
        if (d > 0.5 || moved > 0.85) sl_model_destroy(m);
        CHECK_MSG(d <= 0.5, "prompt %02d: Q8_0-KV logits differ from llama.cpp's by %.3g (limit 0.5)", nn, d);
        CHECK_MSG(moved <= 0.85, "prompt %02d: Q8_0 KV moved the logits by %.3g (llama.cpp: up to 0.85)", nn, moved);
    }
    sl_model_destroy(m);
}

TEST(kv_type_errors) {
    sl_kv_cache *kv = NULL;
    CHECK_EQ_INT(sl_kv_create_typed(2, 40, 16, 4, SL_TYPE_Q8_0, &kv), SL_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(sl_last_error(), "q8_0") && strstr(sl_last_error(), "40"), "message: %s", sl_last_error());
    CHECK_EQ_INT(sl_kv_create_typed(2, 64, 16, 4, SL_TYPE_Q4_0, &kv), SL_ERR_UNSUPPORTED);
    CHECK(kv == NULL);
    sl_type t;
    CHECK(sl_kv_type_from_name("F16", &t) && t == SL_TYPE_F16);
    CHECK(sl_kv_type_from_name("q8_0", &t) && t == SL_TYPE_Q8_0);
    CHECK(!sl_kv_type_from_name("q4_0", &t));
    CHECK_EQ_INT(sl_kv_bytes_per_block(SL_TYPE_Q8_0, 2, 64, 16), 2 * 2 * 16 * 68);
    /* stories260K's head size 8 cannot use a Q8_0 cache (as in llama.cpp) */
    sl_model *m = NULL;
    CHECK_OK(sl_model_load(STORIES, &m));
    CHECK_OK(sl_kv_create_typed(m->hp.n_layer, m->hp.n_head_kv * m->hp.head_dim, 16, 4, SL_TYPE_Q8_0, &kv));
    sl_fwd *f = NULL;
    sl_fwd_params fp = {.max_batch = 4, .n_ctx = 64, .n_threads = 1};
    sl_status st = sl_fwd_create(m, kv, &fp, &f);
    sl_kv_destroy(kv);
    sl_model_destroy(m);
    CHECK_EQ_INT(st, SL_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(sl_last_error(), "head size"), "message: %s", sl_last_error());
}

/* Bytes of the mapping that holds address p resident in this process (the
 * "Rss:" of its /proc/self/smaps entry), or -1. */
static long long mapping_rss(const void *p) {
    FILE *fp = fopen("/proc/self/smaps", "r");
    if (!fp) return -1;
    char line[512];
    bool inside = false;
    long long rss = -1;
    while (fgets(line, sizeof line, fp)) {
        unsigned long long lo, hi;
        if (sscanf(line, "%llx-%llx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
            continue;
        }
        long long kb;
        if (inside && sscanf(line, "Rss: %lld kB", &kb) == 1) {
            rss = kb * 1024;
            break;
        }
    }
    fclose(fp);
    return rss;
}

/* Once the fast path has packed a model's matrices (or copied a float
 * model's into memory of its own, where they get huge pages), the file's
 * pages of them leave the process (the model is resident once, not twice),
 * and are read back from the file when something touches them again. */
static void check_pages_leave(const char *file, bool float_copy) {
    const char *mp = sl_test_shared(file);
    CHECK_MSG(mp, "missing ../shared/%s", file);
    sl_model *m = NULL;
    CHECK_OK(sl_model_load(mp, &m));
    const sl_kernels *best = sl_kernels_best();
    /* every matrix the fast path packs or copies: read all its bytes first, so they are resident */
    long long packed = 0;
    volatile uint8_t sink = 0;
    for (int32_t i = 0; i <= 7 * m->hp.n_layer; i++) {
        const sl_layer *L = &m->layers[i / 7 < m->hp.n_layer ? i / 7 : 0];
        const sl_tensor *mats[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        const sl_tensor *w = i == 7 * m->hp.n_layer ? &m->output : mats[i % 7];
        if (!best->gemm_packed[w->type] && !float_copy) continue;
        const size_t bytes = w->row_bytes * (size_t)w->ne[1];
        for (size_t k = 0; k < bytes; k += 256) sink ^= ((const uint8_t *)w->data)[k];
        packed += (long long)bytes;
    }
    (void)sink;
    if (!packed) { /* the scalar table packs nothing */
        printf("    table %s packs no matrix of %s: nothing to check\n", best->name, file);
        sl_model_destroy(m);
        return;
    }
    const void *w0 = m->layers[0].wq.data;
    const long long before = mapping_rss(w0);
    runner r;
    sl_fwd_params fp = {.n_threads = 1, .reference = false, .kernels = best->name};
    CHECK_OK(runner_init(&r, m, 8, 64, 8, SL_TYPE_F32, &fp));
    const long long after = mapping_rss(w0);
    printf("    %s: mapping resident %lld KiB before packing, %lld KiB after; packed or copied matrices %lld KiB\n",
           file, before / 1024, after / 1024, packed / 1024);
    runner_free(&r);
    sl_model_destroy(m);
    CHECK(before > 0 && after >= 0);
    CHECK_MSG(before - after >= packed * 9 / 10, "only %lld of the %lld bytes packed left the process",
              before - after, packed);
}
TEST(packed_matrices_leave_the_process) {
    check_pages_leave("models/small/small-llama-Q4_0.gguf", false);
    check_pages_leave("models/small/small-llama-F16.gguf", true);
}

/*
 * test_kernels.c — the compute kernels.
 *
 * 1. Every SIMD table (AVX2, AVX-512, as the CPU allows) against the scalar
 *    table, on awkward shapes (one row, odd rows, 15/16/17/33 rows, K not a
 *    multiple of 16, tails, 1..9 tokens): bit-identical outputs, for every
 *    weight type. The canonical order of kernels.h makes exact equality the
 *    contract for float and integer paths alike.
 * 2. The scalar kernels against an independent float64 dot product of the
 *    dequantized weights (sl_dequantize_row, the GGUF spec) and dequantized
 *    activations: the integer formulation reads the block layouts right.
 * 3. Batch invariance at kernel level: a token's outputs do not depend on
 *    which other tokens or rows share the call.
 * 4. Activation quantizers against their definitions; sl_expf against exp;
 *    SIMD exp / silu / attention against the scalar ones.
 */
#include "harness.h"

#include "compute/kernels.h"
#include "compute/ops.h"
#include "compute/quant.h"
#include "core/fp16.h"

#include <stdlib.h>

static uint64_t rng_state = 88172645463325252ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}
static float rndf(void) { return (float)(rnd() & 0xFFFFFF) / 16777216.0f * 2.0f - 1.0f; } /* [-1, 1) */

/* A row of n random weights of type t in valid encodings. */
static void fill_row(sl_type t, uint8_t *row, int64_t n) {
    switch (t) {
    case SL_TYPE_F32:
        for (int64_t i = 0; i < n; i++) ((float *)row)[i] = rndf();
        break;
    case SL_TYPE_F16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)row)[i] = sl_f32_to_f16(rndf());
        break;
    case SL_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) ((uint16_t *)row)[i] = sl_f32_to_bf16(rndf());
        break;
    case SL_TYPE_Q4_0:
        for (int64_t b = 0; b < n / 32; b++) {
            block_q4_0 *x = (block_q4_0 *)row + b;
            x->d = sl_f32_to_f16(0.01f + 0.05f * (rndf() + 1.0f));
            for (int j = 0; j < 16; j++) x->qs[j] = (uint8_t)rnd();
        }
        break;
    case SL_TYPE_Q8_0:
        for (int64_t b = 0; b < n / 32; b++) {
            block_q8_0 *x = (block_q8_0 *)row + b;
            x->d = sl_f32_to_f16(0.001f + 0.01f * (rndf() + 1.0f));
            for (int j = 0; j < 32; j++) x->qs[j] = (int8_t)rnd(); /* includes -128 */
        }
        break;
    case SL_TYPE_Q4_K:
    case SL_TYPE_Q5_K: {
        const size_t bb = t == SL_TYPE_Q4_K ? sizeof(block_q4_K) : sizeof(block_q5_K);
        for (int64_t b = 0; b < n / 256; b++) {
            uint8_t *x = row + (size_t)b * bb;
            for (size_t i = 4; i < bb; i++) x[i] = (uint8_t)rnd(); /* scales, qh, qs: every pattern is valid */
            block_q4_K *h = (block_q4_K *)x;
            h->d = sl_f32_to_f16(0.001f + 0.002f * (rndf() + 1.0f));
            h->dmin = sl_f32_to_f16(0.001f + 0.002f * (rndf() + 1.0f));
        }
        break;
    }
    case SL_TYPE_Q6_K:
        for (int64_t b = 0; b < n / 256; b++) {
            block_q6_K *x = (block_q6_K *)row + b;
            for (size_t i = 0; i < sizeof x->ql; i++) x->ql[i] = (uint8_t)rnd();
            for (size_t i = 0; i < sizeof x->qh; i++) x->qh[i] = (uint8_t)rnd();
            for (size_t i = 0; i < 16; i++) x->scales[i] = (int8_t)rnd(); /* includes -128 */
            x->d = sl_f32_to_f16(0.0001f + 0.0002f * (rndf() + 1.0f));
        }
        break;
    default: break;
    }
}

typedef struct problem {
    sl_type type;
    int64_t K, nr, nt;
    size_t ws, as;
    uint8_t *w, *act;
    float *x; /* (nt, K) activations before quantization */
} problem;

static void make_problem(problem *p, sl_type t, int64_t K, int64_t nr, int64_t nt) {
    p->type = t;
    p->K = K;
    p->nr = nr;
    p->nt = nt;
    p->ws = sl_type_row_size(t, K);
    p->w = malloc(p->ws * (size_t)nr + 64);
    for (int64_t r = 0; r < nr; r++) fill_row(t, p->w + (size_t)r * p->ws, K);
    p->x = malloc(sizeof(float) * (size_t)(K * nt));
    for (int64_t i = 0; i < K * nt; i++) p->x[i] = rndf() * (i % 7 == 0 ? 3.0f : 1.0f);
    if (nt > 1) p->x[K] = 0.0f;
    const sl_act a = sl_act_of(t);
    p->as = sl_act_row_bytes(a, K);
    p->act = aligned_alloc(64, p->as * (size_t)nt);
    sl_act_quantize(a, p->x, K, nt, K, p->act);
}

static void free_problem(problem *p) {
    free(p->w);
    free(p->x);
    free(p->act);
}

static float *run_gemm(const sl_kernels *k, const problem *p, int64_t ldy) {
    float *y = malloc(sizeof(float) * (size_t)(ldy * p->nt));
    for (int64_t i = 0; i < ldy * p->nt; i++) y[i] = -12345.0f; /* also checks nothing outside is written */
    void *scratch = aligned_alloc(64, sl_gemm_scratch_bytes(p->K));
    k->gemm[p->type](p->K, p->w, p->ws, p->nr, p->act, p->as, p->nt, y, ldy, scratch);
    free(scratch);
    return y;
}

static const sl_type TYPES[] = {SL_TYPE_F32, SL_TYPE_F16, SL_TYPE_BF16, SL_TYPE_Q4_0,
                                SL_TYPE_Q8_0, SL_TYPE_Q4_K, SL_TYPE_Q5_K, SL_TYPE_Q6_K};
#define N_TYPES (sizeof TYPES / sizeof TYPES[0])

static int64_t block_of(sl_type t) { return (int64_t)sl_type_get(t)->blck; }

/* SIMD table `name` equals the scalar table bit for bit. */
static void check_isa(const char *name) {
    const sl_kernels *k = sl_kernels_get(name), *s = sl_kernels_scalar();
    if (!k) {
        printf("    (%s not supported by this CPU: skipped)\n", name);
        return;
    }
    static const int64_t rows[] = {1, 3, 15, 16, 17, 33};
    static const int64_t toks[] = {1, 2, 3, 5, 9};
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const sl_type t = TYPES[ti];
        const int64_t B = block_of(t);
        const int64_t Ks[] = {B == 1 ? 7 : B, B == 1 ? 33 : 3 * B, B == 1 ? 300 : 5 * B};
        for (size_t ki = 0; ki < 3; ki++)
            for (size_t ri = 0; ri < 6; ri++) {
                const int64_t nt = toks[(ki * 6 + ri) % 5];
                problem p;
                make_problem(&p, t, Ks[ki], rows[ri], nt);
                const int64_t ldy = p.nr + 3;
                float *want = run_gemm(s, &p, ldy), *got = run_gemm(k, &p, ldy);
                int bad = -1;
                for (int64_t i = 0; i < ldy * nt && bad < 0; i++)
                    if (memcmp(&want[i], &got[i], 4) != 0) bad = (int)i;
                const float wv = bad >= 0 ? want[bad] : 0, gv = bad >= 0 ? got[bad] : 0;
                free(want);
                free(got);
                free_problem(&p);
                CHECK_MSG(bad < 0, "%s %s K=%lld rows=%lld tokens=%lld: y[%d] = %.9g, scalar %.9g", name,
                          sl_type_name(t), (long long)Ks[ki], (long long)rows[ri], (long long)nt, bad, gv, wv);
            }
    }
}

TEST(avx512_matches_scalar) { check_isa("avx512"); }
TEST(avx2_matches_scalar) { check_isa("avx2"); }
TEST(amx_matches_scalar) { check_isa("amx"); }
/* Batches of more tokens than a kernel's token group (8), with tails, against
 * the scalar table, and a token's outputs in a big batch against the same
 * token alone. The float types' K (101, 1100) has a tail of 16; with 37 and
 * 70 tokens the AVX-512 table converts F16 / BF16 rows to floats
 * (gemm_float_conv): K = 1100 in three parts, 70 tokens in two blocks, 100
 * rows in two chunks of groups of 6 with a tail. */
TEST(large_batches_match_scalar_and_single_tokens) {
    static const char *isa[] = {"avx512", "avx2"};
    static const struct {
        sl_type t;
        int64_t K, nt, nr;
    } cases[] = {{SL_TYPE_Q4_0, 96, 37, 19},   {SL_TYPE_Q8_0, 96, 37, 19},   {SL_TYPE_Q4_K, 768, 37, 19},
                 {SL_TYPE_F16, 101, 37, 19},   {SL_TYPE_F16, 1100, 70, 19},  {SL_TYPE_F16, 1100, 33, 100},
                 {SL_TYPE_BF16, 101, 37, 19},  {SL_TYPE_BF16, 1100, 70, 19}, {SL_TYPE_F32, 101, 37, 19}};
    const sl_kernels *s = sl_kernels_scalar();
    for (int ii = 0; ii < 2; ii++) {
        const sl_kernels *k = sl_kernels_get(isa[ii]);
        if (!k) continue;
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            problem p;
            make_problem(&p, cases[ci].t, cases[ci].K, cases[ci].nr, cases[ci].nt);
            float *want = run_gemm(s, &p, p.nr), *got = run_gemm(k, &p, p.nr);
            bool same = memcmp(want, got, sizeof(float) * (size_t)(p.nr * p.nt)) == 0;
            void *scratch = aligned_alloc(64, sl_gemm_scratch_bytes(p.K));
            float one[100];
            for (int64_t t = 0; t < p.nt && same; t++) {
                k->gemm[p.type](p.K, p.w, p.ws, p.nr, p.act + (size_t)t * p.as, p.as, 1, one, p.nr, scratch);
                same = memcmp(one, got + t * p.nr, sizeof(float) * (size_t)p.nr) == 0;
            }
            free(scratch);
            free(want);
            free(got);
            free_problem(&p);
            CHECK_MSG(same, "%s %s K=%lld: %lld-token batch differs from scalar or from single tokens", isa[ii],
                      sl_type_name(cases[ci].t), (long long)cases[ci].K, (long long)cases[ci].nt);
        }
    }
}

/* Packed-weight kernels (gemm_packed: the forward pass's path) equal the
 * scalar table bit for bit, for every table and type that has them, over
 * token counts around the kernels' groups (8 for the per-row VNNI kernels,
 * 16 for the group kernels, whose last partial group may run padded, 16 × 2
 * for AMX tiles, with tails) and row counts around tiles (16), pairs (32) and
 * chunks (64). */
TEST(packed_kernels_match_scalar) {
    static const char *isa[] = {"avx2", "avx512", "amx"};
    static const int64_t rows[] = {1, 15, 17, 33, 64, 100};
    static const int64_t toks[] = {1, 3, 4, 8, 12, 15, 16, 17, 28, 31, 32, 33, 45, 60, 62, 70};
    const sl_kernels *s = sl_kernels_scalar();
    int checked = 0;
    for (int ii = 0; ii < 3; ii++) {
        const sl_kernels *k = sl_kernels_get(isa[ii]);
        if (!k) {
            printf("    (%s not supported by this CPU: skipped)\n", isa[ii]);
            continue;
        }
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            const sl_type t = TYPES[ti];
            if (!k->gemm_packed[t]) continue;
            const int64_t B = block_of(t), Ks[] = {B, 3 * B, 10 * B};
            for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++)
                for (size_t ni = 0; ni < sizeof toks / sizeof toks[0]; ni++) {
                    const int64_t K = Ks[(ri + ni) % 3], nt = toks[ni];
                    problem p;
                    make_problem(&p, t, K, rows[ri], nt);
                    const int64_t ldy = p.nr + 5;
                    void *tiles = aligned_alloc(64, sl_pack_tile_bytes(t, K) * (size_t)((p.nr + 15) / 16));
                    sl_pack_rows(t, K, p.w, p.ws, p.nr, tiles);
                    float *want = run_gemm(s, &p, ldy), *got = malloc(sizeof(float) * (size_t)(ldy * nt));
                    for (int64_t i = 0; i < ldy * nt; i++) got[i] = -12345.0f;
                    void *scratch = aligned_alloc(64, sl_gemm_scratch_bytes(K));
                    k->gemm_packed[t](K, tiles, p.nr, p.act, p.as, nt, got, ldy, scratch);
                    int bad = -1;
                    for (int64_t i = 0; i < ldy * nt && bad < 0; i++)
                        if (memcmp(&want[i], &got[i], 4) != 0) bad = (int)i;
                    CHECK_MSG(bad < 0, "%s packed %s K=%lld rows=%lld tokens=%lld: y[%d] = %.9g, scalar %.9g", isa[ii],
                              sl_type_name(t), (long long)K, (long long)p.nr, (long long)nt, bad,
                              bad >= 0 ? got[bad] : 0.0, bad >= 0 ? want[bad] : 0.0);
                    checked++;
                    if (k->gemm_grouped[t] && nt >= SL_GROUP_MIN_TOKENS) {
                        /* the token-group form of the same rows, grouped in two uneven ranges as two threads would */
                        void *groups = aligned_alloc(64, sl_act_group_bytes(sl_act_of(t), K) * (size_t)((nt + 15) / 16));
                        sl_act_group(sl_act_of(t), p.act, p.as, 0, nt / 3, K, groups);
                        sl_act_group(sl_act_of(t), p.act, p.as, nt / 3, nt, K, groups);
                        sl_act_group_pad(sl_act_of(t), nt, K, groups);
                        for (int64_t i = 0; i < ldy * nt; i++) got[i] = -12345.0f;
                        k->gemm_grouped[t](K, tiles, p.nr, p.act, p.as, groups, nt, got, ldy, scratch);
                        bad = -1;
                        for (int64_t i = 0; i < ldy * nt && bad < 0; i++)
                            if (memcmp(&want[i], &got[i], 4) != 0) bad = (int)i;
                        CHECK_MSG(bad < 0, "%s grouped %s K=%lld rows=%lld tokens=%lld: y[%d] = %.9g, scalar %.9g",
                                  isa[ii], sl_type_name(t), (long long)K, (long long)p.nr, (long long)nt, bad,
                                  bad >= 0 ? got[bad] : 0.0, bad >= 0 ? want[bad] : 0.0);
                        free(groups);
                        checked++;
                    }
                    free(scratch);
                    free(tiles);
                    free(want);
                    free(got);
                    free_problem(&p);
                    if (sl_test_failed()) return;
                }
        }
    }
    printf("    %d packed problems compared\n", checked);
}

/* sl_act_group puts every quant, scale and sum where kernels.h says, for Q8_0 and Q8_K rows. */
TEST(act_group_layout) {
    const int64_t K = 96, nb = K / 32, nt = 37;
    const size_t as = sl_act_row_bytes(SL_ACT_Q8_0, K), gb = sl_act_group_bytes(SL_ACT_Q8_0, K);
    CHECK(gb == (size_t)nb * (512 + 3 * 64));
    uint8_t *act = malloc(as * nt), *groups = malloc(gb * 3);
    for (size_t i = 0; i < as * nt; i++) act[i] = (uint8_t)(i * 7 + 3);
    memset(groups, 0xEE, gb * 3);
    sl_act_group(SL_ACT_Q8_0, act, as, 5, nt, K, groups); /* two ranges, the second first */
    sl_act_group(SL_ACT_Q8_0, act, as, 0, 5, K, groups);
    sl_act_group_pad(SL_ACT_Q8_0, nt, K, groups);
    int bad = 0;
    for (int64_t t = 0; t < nt; t++)
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *g = groups + (size_t)(t / 16) * gb, *row = act + (size_t)t * as;
            bad += memcmp(g + 512 * b + 32 * (t % 16), row + 32 * b, 32) != 0;
            bad += memcmp(g + (size_t)nb * 512 + 64 * (size_t)b + 4 * (size_t)(t % 16), row + K + 4 * b, 4) != 0;
            /* the corrections, as SL_ACT_Q8_0 lays them out after the scales */
            bad += memcmp(g + (size_t)nb * 576 + 64 * (size_t)b + 4 * (size_t)(t % 16), row + K + 4 * nb + 4 * b, 4) != 0;
            bad += memcmp(g + (size_t)nb * 640 + 64 * (size_t)b + 4 * (size_t)(t % 16), row + K + 8 * nb + 4 * b, 4) != 0;
        }
    CHECK_MSG(bad == 0, "%d misplaced quant or scale runs", bad);
    /* the slots of tokens past the last (group 2 holds tokens 32..36) are zero once padded, quants and scales and
     * corrections */
    for (int64_t b = 0; b < nb; b++)
        for (int j = 5; j < 16; j++) {
            for (int i = 0; i < 32; i++) bad += groups[2 * gb + 512 * (size_t)b + 32 * (size_t)j + (size_t)i] != 0;
            for (int k = 0; k < 3; k++)
                for (int i = 0; i < 4; i++) bad += groups[2 * gb + (size_t)nb * (512 + 64 * (size_t)k) + 64 * (size_t)b + 4 * (size_t)j + (size_t)i] != 0;
        }
    CHECK_MSG(bad == 0, "%d padding bytes not zero", bad);
    free(act);
    free(groups);
    /* Q8_K rows: per super-block the quants, d, the mins' int16 pairs and Q6_K's -32 offsets (from the block's sums
     * as kernels.h defines them) */
    const int64_t KK = 512, ns = KK / 256;
    const size_t ask = sl_act_row_bytes(SL_ACT_Q8_K, KK), gbk = sl_act_group_bytes(SL_ACT_Q8_K, KK);
    CHECK(gbk == (size_t)ns * SL_KGROUP_BYTES && SL_KGROUP_BYTES % 64 == 0);
    uint8_t *ak = malloc(ask * nt), *gk = malloc(gbk * 3);
    for (size_t i = 0; i < ask * nt; i++) ak[i] = (uint8_t)(i * 13 + 5);
    memset(gk, 0xEE, gbk * 3);
    sl_act_group(SL_ACT_Q8_K, ak, ask, 20, nt, KK, gk);
    sl_act_group(SL_ACT_Q8_K, ak, ask, 0, 20, KK, gk);
    sl_act_group_pad(SL_ACT_Q8_K, nt, KK, gk);
    bad = 0;
    for (int64_t t = 0; t < nt; t++)
        for (int64_t b = 0; b < ns; b++) {
            block_q8_K blk;
            memcpy(&blk, ak + (size_t)t * ask + (size_t)b * sizeof blk, sizeof blk);
            const uint8_t *r = gk + (size_t)(t / 16) * gbk + (size_t)b * SL_KGROUP_BYTES;
            const int j = (int)(t % 16);
            bad += memcmp(r + 256 * j, blk.qs, 256) != 0;
            bad += memcmp(r + SL_KGROUP_D + 4 * j, &blk.d, 4) != 0;
            for (int i = 0; i < 4; i++) {
                int32_t v;
                memcpy(&v, r + SL_KGROUP_MIN + 64 * i + 4 * j, 4);
                bad += (int16_t)(v & 0xFFFF) != (int16_t)(blk.bsums[4 * i] + blk.bsums[4 * i + 1]) ||
                       (int16_t)(v >> 16) != (int16_t)(blk.bsums[4 * i + 2] + blk.bsums[4 * i + 3]);
            }
            for (int i = 0; i < 16; i++) {
                int32_t v;
                memcpy(&v, r + SL_KGROUP_Q6 + 64 * i + 4 * j, 4);
                bad += v != -32 * blk.bsums[i];
            }
        }
    CHECK_MSG(bad == 0, "%d misplaced Q8_K quants, scales or sums", bad);
    for (int64_t b = 0; b < ns; b++)
        for (int j = 5; j < 16; j++) {
            const uint8_t *r = gk + 2 * gbk + (size_t)b * SL_KGROUP_BYTES;
            for (int i = 0; i < 256; i++) bad += r[256 * j + i] != 0;
            for (int k = 0; k < 21; k++) /* d, the 4 min pairs, the 16 Q6_K offsets */
                for (int i = 0; i < 4; i++) bad += r[SL_KGROUP_D + 64 * k + 4 * j + i] != 0;
        }
    CHECK_MSG(bad == 0, "%d Q8_K padding bytes not zero", bad);
    free(ak);
    free(gk);
}

/* Dequantized activations as the kernels see them. */
static void act_dequant(sl_act a, const uint8_t *row, int64_t K, double *out) {
    if (a == SL_ACT_F32) {
        for (int64_t i = 0; i < K; i++) out[i] = ((const float *)row)[i];
    } else if (a == SL_ACT_Q8_0) {
        const float *d = (const float *)(row + K);
        for (int64_t i = 0; i < K; i++) out[i] = (double)((const int8_t *)row)[i] * d[i / 32];
    } else {
        const block_q8_K *b = (const block_q8_K *)row;
        for (int64_t i = 0; i < K; i++) out[i] = (double)b[i / 256].qs[i % 256] * b[i / 256].d;
    }
}

/* The scalar kernels compute Σ dequant(w)·dequant(a) up to float rounding. */
TEST(scalar_kernels_match_dequantized_dot) {
    const sl_kernels *s = sl_kernels_scalar();
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const sl_type t = TYPES[ti];
        const int64_t K = block_of(t) == 1 ? 200 : 4 * block_of(t);
        problem p;
        make_problem(&p, t, K, 5, 3);
        float *y = run_gemm(s, &p, p.nr);
        float *wf = malloc(sizeof(float) * (size_t)K);
        double *af = malloc(sizeof(double) * (size_t)K);
        double worst = 0;
        for (int64_t r = 0; r < p.nr; r++) {
            CHECK(sl_dequantize_row(t, p.w + (size_t)r * p.ws, wf, K));
            for (int64_t tk = 0; tk < p.nt; tk++) {
                act_dequant(sl_act_of(t), p.act + (size_t)tk * p.as, K, af);
                double ref = 0, mag = 0;
                for (int64_t i = 0; i < K; i++) {
                    ref += (double)wf[i] * af[i];
                    mag += fabs((double)wf[i] * af[i]);
                }
                const double err = fabs(ref - (double)y[tk * p.nr + r]) / (mag + 1e-30);
                if (err > worst) worst = err;
            }
        }
        free(wf);
        free(af);
        free(y);
        free_problem(&p);
        /* float accumulation over K terms: relative to Σ|terms|, a few K·2^-24 at most */
        CHECK_MSG(worst < 2e-6, "%s: |kernel - float64 dot| / Σ|w·a| = %.3g", sl_type_name(t), worst);
    }
}

/* A token's outputs are the same alone, with other tokens, and for any row
 * range the caller picks (tiles start anywhere). */
TEST(kernel_batch_invariance) {
    const sl_kernels *k = sl_kernels_best();
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const sl_type t = TYPES[ti];
        const int64_t K = block_of(t) == 1 ? 77 : 2 * block_of(t);
        problem p;
        make_problem(&p, t, K, 37, 9);
        float *all = run_gemm(k, &p, p.nr);
        void *scratch = aligned_alloc(64, sl_gemm_scratch_bytes(K));
        bool same = true;
        for (int64_t tk = 0; tk < p.nt && same; tk++) {
            float one[37];
            /* rows 5..36 alone for token tk, then rows 0..4 */
            k->gemm[t](K, p.w + 5 * p.ws, p.ws, 32, p.act + (size_t)tk * p.as, p.as, 1, one + 5, 37, scratch);
            k->gemm[t](K, p.w, p.ws, 5, p.act + (size_t)tk * p.as, p.as, 1, one, 37, scratch);
            same = memcmp(one, all + tk * p.nr, sizeof one) == 0;
        }
        free(scratch);
        free(all);
        free_problem(&p);
        CHECK_MSG(same, "%s (%s): outputs depend on the batch or the row range", sl_type_name(t), k->name);
    }
}

TEST(act_q8_0_definition) {
    float x[64];
    for (int i = 0; i < 64; i++) x[i] = rndf() * 4.0f;
    x[5] = -7.5f;                          /* block 0 amax */
    for (int i = 32; i < 64; i++) x[i] = 0; /* block 1 all zero */
    uint8_t out[256] __attribute__((aligned(64)));
    sl_act_quantize(SL_ACT_Q8_0, x, 64, 1, 64, out);
    const int8_t *q = (const int8_t *)out;
    const float *d = (const float *)(out + 64);
    const int32_t *c8 = (const int32_t *)(out + 64 + 8), *c128 = (const int32_t *)(out + 64 + 16);
    CHECK_EQ_INT(q[5], -127);
    CHECK_NEAR(d[0], 7.5 / 127, 7.5 / 127 * 1e-3); /* fp16-rounded */
    CHECK(d[0] == sl_f16_to_f32(sl_f32_to_f16(7.5f / 127.0f)));
    int s0 = 0;
    for (int i = 0; i < 32; i++) {
        s0 += q[i];
        CHECK_MSG(fabs(q[i] - x[i] * 127.0 / 7.5) <= 0.5 + 1e-6, "q[%d] = %d for %g", i, q[i], x[i]);
    }
    CHECK_EQ_INT(c8[0], -8 * s0);
    CHECK_EQ_INT(c128[0], -128 * s0);
    CHECK(d[1] == 0.0f);
    CHECK_EQ_INT(c8[1], 0);
    CHECK_EQ_INT(c128[1], 0);
    for (int i = 32; i < 64; i++) CHECK_EQ_INT(q[i], 0);
}

TEST(act_q8_K_definition) {
    float x[256];
    for (int i = 0; i < 256; i++) x[i] = rndf();
    x[100] = 2.0f; /* the largest magnitude, positive: it maps to -127 */
    block_q8_K b;
    sl_quantize_row_q8_K_ref(x, &b, 256);
    CHECK_EQ_INT(b.qs[100], -127);
    CHECK_NEAR(b.d, -2.0 / 127, 1e-9);
    for (int j = 0; j < 16; j++) {
        int s = 0;
        for (int i = 0; i < 16; i++) s += b.qs[16 * j + i];
        CHECK_EQ_INT(b.bsums[j], s);
    }
    for (int i = 0; i < 256; i++) CHECK_MSG(fabs(b.qs[i] * b.d - x[i]) <= fabs(b.d) * 0.5 + 1e-7, "element %d", i);
}

/* The SIMD activation quantizers write the scalar one's bytes. */
TEST(act_quantize_simd_matches_scalar) {
    static const char *isa[] = {"avx512", "avx2"};
    enum { K = 512, NT = 3 };
    static float x[K * NT];
    for (int i = 0; i < K * NT; i++) x[i] = rndf() * (i % 5 ? 1.0f : 7.0f);
    for (int i = 256; i < 288; i++) x[i] = 0.0f;           /* an all-zero Q8_0 block */
    for (int i = K; i < K + 256; i++) x[i] = 0.0f;         /* an all-zero Q8_K block */
    x[2 * K + 3] = -9.0f;                                  /* ties in magnitude: the first one's sign wins */
    x[2 * K + 77] = 9.0f;
    for (int ii = 0; ii < 2; ii++) {
        const sl_kernels *k = sl_kernels_get(isa[ii]);
        if (!k) continue;
        for (int a = SL_ACT_Q8_0; a < SL_ACT_COUNT; a++) {
            const size_t rb = sl_act_row_bytes((sl_act)a, K);
            uint8_t *want = calloc(NT, rb), *got = calloc(NT, rb);
            sl_act_quantize((sl_act)a, x, K, NT, K, want);
            k->act_quantize((sl_act)a, x, K, NT, K, got);
            const bool same = memcmp(want, got, rb * NT) == 0;
            free(want);
            free(got);
            CHECK_MSG(same, "%s activation format %d differs from the scalar quantizer", isa[ii], a);
        }
    }
}

TEST(expf_accuracy) {
    double worst = 0;
    for (int i = 0; i < 200000; i++) {
        const float x = -87.0f + 175.0f * (float)i / 200000.0f;
        const double want = exp((double)x), got = sl_expf(x);
        const double rel = fabs(got - want) / want;
        if (rel > worst) worst = rel;
    }
    CHECK_MSG(worst < 3e-7, "sl_expf max relative error %.3g", worst);
    CHECK(sl_expf(-100.0f) == 0.0f);
    CHECK(sl_expf(-INFINITY) == 0.0f);
    CHECK(sl_expf(0.0f) == 1.0f);
    CHECK(isnan(sl_expf(NAN)));
}

static void check_silu(const char *name) {
    const sl_kernels *k = sl_kernels_get(name), *s = sl_kernels_scalar();
    if (!k) return;
    enum { N = 1000 + 13 };
    static float g[N], u[N], a[N], b[N];
    for (int i = 0; i < N; i++) {
        g[i] = rndf() * (i % 3 ? 10.0f : 100.0f);
        u[i] = rndf();
    }
    g[0] = 0.0f;
    g[1] = -0.0f;
    g[2] = -95.0f;
    g[3] = 95.0f;
    s->silu_mul(g, u, a, N);
    k->silu_mul(g, u, b, N);
    for (int i = 0; i < N; i++) CHECK_MSG(memcmp(&a[i], &b[i], 4) == 0, "%s silu[%d](%g): %.9g vs %.9g", name, i, g[i], b[i], a[i]);
    for (int i = 4; i < N; i++) {
        const double want = g[i] / (1.0 + exp(-(double)g[i])) * u[i];
        CHECK_MSG(fabs(a[i] - want) <= 1e-6 * fabs(want) + 1e-30, "silu(%g) = %.9g, want %.9g", g[i], a[i], want);
    }
}

/* Every table's rmsnorm is sl_rmsnorm_ref bit for bit (tails of the
 * 8-element partial sums, in place and not), and the reference is
 * x / sqrt(mean(x^2) + eps) * w within float rounding. */
TEST(rmsnorm_tables_match_reference) {
    static const int64_t ns[] = {1, 7, 8, 9, 63, 64, 2048, 2049};
    static const char *isa[] = {"scalar", "avx2", "avx512", "amx"};
    enum { NMAX = 2049 };
    static float x[NMAX], w[NMAX], want[NMAX], got[NMAX];
    for (int i = 0; i < NMAX; i++) {
        x[i] = rndf() * (i % 5 ? 3.0f : 300.0f);
        w[i] = 1.0f + 0.25f * rndf();
    }
    for (size_t ni = 0; ni < sizeof ns / sizeof ns[0]; ni++) {
        const int64_t n = ns[ni];
        sl_rmsnorm_ref(x, w, want, n, 1e-5f);
        long double ss = 0;
        for (int64_t i = 0; i < n; i++) ss += (long double)x[i] * x[i];
        const long double sc = 1.0L / sqrtl(ss / n + 1e-5L);
        for (int64_t i = 0; i < n; i++)
            CHECK_MSG(fabsl(want[i] - x[i] * sc * w[i]) <= 1e-6L * fabsl(x[i] * sc * w[i]) + 1e-30L,
                      "n=%lld: ref[%lld] = %.9g", (long long)n, (long long)i, want[i]);
        for (int ii = 0; ii < 4; ii++) {
            const sl_kernels *k = sl_kernels_get(isa[ii]);
            if (!k) continue;
            k->rmsnorm(x, w, got, n, 1e-5f);
            CHECK_MSG(memcmp(got, want, sizeof(float) * (size_t)n) == 0, "%s rmsnorm n=%lld differs from the reference",
                      isa[ii], (long long)n);
            memcpy(got, x, sizeof(float) * (size_t)n); /* in place, as the q/k norms run */
            k->rmsnorm(got, w, got, n, 1e-5f);
            CHECK_MSG(memcmp(got, want, sizeof(float) * (size_t)n) == 0, "%s rmsnorm in place n=%lld differs", isa[ii],
                      (long long)n);
        }
    }
}

TEST(silu_simd_matches_scalar) {
    check_silu("avx512");
    check_silu("avx2");
}

/* n_slots random K rows (values in [-kscale, kscale)) and V rows ([-1, 1)) of head size D, one after another */
static void fill_kv(sl_type kvt, int32_t D, uint8_t *K, uint8_t *V, int32_t n_slots, float kscale) {
    const size_t slot = sl_type_row_size(kvt, D);
    float row[512];
    for (int32_t j = 0; j < n_slots; j++) {
        for (int32_t i = 0; i < D; i++) row[i] = rndf() * kscale;
        sl_quantize_row(kvt, row, K + (size_t)j * slot, D);
        for (int32_t i = 0; i < D; i++) row[i] = rndf();
        sl_quantize_row(kvt, row, V + (size_t)j * slot, D);
    }
}

/* Attention over a paged cache: SIMD = scalar bit for bit, and both equal a
 * float64 softmax within float rounding. Blocks are shuffled on purpose. */
static void check_attn_bs(const char *name, sl_type kvt, int32_t D, int32_t n_pos, int32_t bs) {
    const sl_kernels *k = sl_kernels_get(name), *s = sl_kernels_scalar();
    if (!k) return;
    const int32_t nblk = (n_pos + bs - 1) / bs + 2;
    const size_t slot = sl_type_row_size(kvt, D), blkb = slot * (size_t)bs;
    uint8_t *K = calloc((size_t)nblk, blkb), *V = calloc((size_t)nblk, blkb);
    int32_t blocks[64];
    for (int32_t i = 0; i < nblk; i++) blocks[i] = nblk - 1 - i;
    float q[256];
    for (int32_t i = 0; i < D; i++) q[i] = rndf();
    /* a second query head sharing the KV head (GQA group of 2) */
    float q2[2 * 256], o2g[2 * 256], o1g[2 * 256];
    for (int32_t i = 0; i < D; i++) {
        q2[i] = q[i];
        q2[D + i] = rndf();
    }
    fill_kv(kvt, D, K, V, nblk * bs, 2.0f);
    float o1[256], o2[256];
    sl_attn_args a = {.q = q, .out = o1, .n_q = 1, .head_dim = D, .n_pos = n_pos, .scale = 1.0f / sqrtf((float)D),
                      .kv_type = kvt, .blocks = blocks, .block_size = bs, .block_bytes = blkb, .slot_bytes = slot,
                      .k_base = K, .v_base = V};
    s->attn(&a);
    a.out = o2;
    k->attn(&a);
    /* grouped: head 0 of the group equals the single-head result */
    a.q = q2;
    a.n_q = 2;
    a.out = o1g;
    s->attn(&a);
    a.out = o2g;
    k->attn(&a);
    /* float64 reference on the dequantized cache */
    double sc[600], mx = -1e300, sum = 0, ref[256] = {0};
    float kr[256];
    for (int32_t p = 0; p < n_pos; p++) {
        const size_t off = (size_t)blocks[p / bs] * blkb + (size_t)(p % bs) * slot;
        sl_dequantize_row(kvt, K + off, kr, D);
        double d = 0;
        for (int32_t i = 0; i < D; i++) d += (double)q[i] * kr[i];
        sc[p] = d / sqrt((double)D);
        if (sc[p] > mx) mx = sc[p];
    }
    for (int32_t p = 0; p < n_pos; p++) {
        const size_t off = (size_t)blocks[p / bs] * blkb + (size_t)(p % bs) * slot;
        sl_dequantize_row(kvt, V + off, kr, D);
        const double e = exp(sc[p] - mx);
        sum += e;
        for (int32_t i = 0; i < D; i++) ref[i] += e * kr[i];
    }
    free(K);
    free(V);
    CHECK_MSG(memcmp(o1g, o1, sizeof(float) * (size_t)D) == 0, "grouped scalar attention differs for head 0");
    CHECK_MSG(memcmp(o2g, o1g, sizeof(float) * 2 * (size_t)D) == 0, "%s grouped attention differs from scalar (%s, D=%d, %d positions, blocks of %d)", name, sl_type_name(kvt), D, n_pos, bs);
    for (int32_t i = 0; i < D; i++) {
        CHECK_MSG(memcmp(&o1[i], &o2[i], 4) == 0, "%s attn %s D=%d n=%d out[%d]: %.9g vs scalar %.9g", name,
                  sl_type_name(kvt), D, n_pos, i, o2[i], o1[i]);
        CHECK_MSG(fabs(o1[i] - ref[i] / sum) < 2e-6, "attn %s D=%d n=%d out[%d] = %.9g, float64 %.9g",
                  sl_type_name(kvt), D, n_pos, i, o1[i], ref[i] / sum);
    }
}

/* blocks of 16 slots, as the engine's */
static void check_attn(const char *name, sl_type kvt, int32_t D, int32_t n_pos) { check_attn_bs(name, kvt, D, n_pos, 16); }

/* A run of query tokens in one call (n_t > 1, as a prompt's attention):
 * every token's output equals, bit for bit, the scalar kernel's call for
 * that token alone. Shapes where one call takes several passes (n_q * D
 * large), tails of D, blocks that chunks cross, runs shorter than a chunk. */
static void check_attn_tokens(const char *name, sl_type kvt, int32_t D, int32_t n_q, int32_t pos0, int32_t n_t,
                              int32_t bs) {
    const sl_kernels *k = sl_kernels_get(name), *s = sl_kernels_scalar();
    if (!k) return;
    const int32_t n_pos = pos0 + n_t, nblk = (n_pos + bs - 1) / bs + 1;
    const size_t slot = sl_type_row_size(kvt, D), blkb = slot * (size_t)bs;
    const int64_t stride = (int64_t)n_q * D + 3; /* rows of a step are wider than one group's heads */
    uint8_t *K = calloc((size_t)nblk, blkb), *V = calloc((size_t)nblk, blkb);
    float *q = malloc(sizeof(float) * (size_t)(stride * n_t)), *o1 = malloc(sizeof(float) * (size_t)(stride * n_t)),
          *o2 = malloc(sizeof(float) * (size_t)(stride * n_t));
    int32_t blocks[128];
    /* shuffled blocks, a permutation since nblk is never a multiple of 7 here */
    for (int32_t i = 0; i < nblk; i++) blocks[i] = (i * 7 + 3) % nblk;
    for (int64_t i = 0; i < stride * n_t; i++) q[i] = rndf();
    memset(o1, 0, sizeof(float) * (size_t)(stride * n_t));
    memset(o2, 0, sizeof(float) * (size_t)(stride * n_t));
    fill_kv(kvt, D, K, V, nblk * bs, 3.0f);
    sl_attn_args a = {.n_q = n_q, .head_dim = D, .scale = 1.0f / sqrtf((float)D), .kv_type = kvt, .blocks = blocks,
                      .block_size = bs, .block_bytes = blkb, .slot_bytes = slot, .k_base = K, .v_base = V,
                      .q_stride = stride, .out_stride = stride};
    for (int32_t t = 0; t < n_t; t++) { /* one call per token */
        a.q = q + t * stride;
        a.out = o1 + t * stride;
        a.n_pos = pos0 + 1 + t;
        s->attn(&a);
    }
    a.q = q;
    a.out = o2;
    a.n_pos = pos0 + 1;
    a.n_t = n_t;
    k->attn(&a);
    for (int32_t t = 0; t < n_t && !sl_test_failed(); t++)
        for (int32_t i = 0; i < n_q * D; i++)
            CHECK_MSG(memcmp(&o1[t * stride + i], &o2[t * stride + i], 4) == 0,
                      "%s attention of %d tokens (%s, D=%d, %d heads, from position %d, blocks of %d): token %d out[%d] "
                      "%.9g, alone %.9g", name, n_t, sl_type_name(kvt), D, n_q, pos0, bs, t, i, o2[t * stride + i],
                      o1[t * stride + i]);
    free(K);
    free(V);
    free(q);
    free(o1);
    free(o2);
}

TEST(attention_of_token_runs_matches_one_token_calls) {
    static const char *isa[] = {"avx512", "avx2", "scalar"};
    for (int i = 0; i < 3; i++) {
        check_attn_tokens(isa[i], SL_TYPE_F16, 64, 4, 0, 16, 16);   /* a prompt's first chunk */
        check_attn_tokens(isa[i], SL_TYPE_F16, 64, 4, 37, 16, 16);
        check_attn_tokens(isa[i], SL_TYPE_F32, 64, 1, 5, 2, 16);
        check_attn_tokens(isa[i], SL_TYPE_Q8_0, 32, 2, 20, 7, 16);
        check_attn_tokens(isa[i], SL_TYPE_F32, 8, 8, 3, 13, 5);     /* chunks cross blocks of 5 */
        check_attn_tokens(isa[i], SL_TYPE_F32, 24, 3, 17, 16, 7);   /* a tail of D, odd group */
        check_attn_tokens(isa[i], SL_TYPE_F32, 128, 8, 40, 16, 16); /* four passes of 4 tokens */
        check_attn_tokens(isa[i], SL_TYPE_F16, 256, 8, 9, 5, 16);   /* passes of 2 tokens */
        check_attn_tokens(isa[i], SL_TYPE_F32, 512, 8, 20, 3, 16);  /* the largest head: a pass per token */
        check_attn_tokens(isa[i], SL_TYPE_F16, 48, 6, 100, 11, 16); /* any D, two groups of heads */
        if (sl_test_failed()) return;
    }
}

TEST(attention_simd_matches_scalar) {
    static const char *isa[] = {"avx512", "avx2"};
    for (int i = 0; i < 2; i++) {
        check_attn(isa[i], SL_TYPE_F32, 8, 1);
        check_attn(isa[i], SL_TYPE_F32, 8, 37);
        check_attn(isa[i], SL_TYPE_F32, 24, 16);
        check_attn(isa[i], SL_TYPE_F16, 64, 100);
        check_attn(isa[i], SL_TYPE_F32, 128, 33);
        check_attn(isa[i], SL_TYPE_Q8_0, 64, 70);
        check_attn(isa[i], SL_TYPE_Q8_0, 32, 5);
        /* blocks that a chunk of 16 positions crosses */
        check_attn_bs(isa[i], SL_TYPE_F16, 64, 45, 5);
        check_attn_bs(isa[i], SL_TYPE_F32, 32, 33, 7);
        if (sl_test_failed()) return;
    }
}

/* Block layouts: dequantization of hand-made K-quant blocks (values from the
 * formats' definitions in ggml-common.h). */
TEST(kquant_layouts) {
    block_q4_K b4;
    memset(&b4, 0, sizeof b4);
    b4.d = sl_f32_to_f16(1.0f);
    b4.dmin = sl_f32_to_f16(0.5f);
    /* sub-block 0: scale 3, min 2; sub-block 5: scale 33 (low 4 bits in scales[9], high 2 in scales[1] bits 6-7), min 17 */
    b4.scales[0] = 3;
    b4.scales[4] = 2;
    b4.scales[9] = (uint8_t)((33 & 0xF) | ((17 & 0xF) << 4));
    b4.scales[1] = (uint8_t)((33 >> 4) << 6);
    b4.scales[5] = (uint8_t)((17 >> 4) << 6);
    b4.qs[0] = 0x57;      /* element 0: 7, element 32: 5 */
    b4.qs[64 + 1] = 0xA0; /* element 64*2+32+1 = 161 (sub-block 5): 10 */
    float y[256];
    sl_dequantize_row_q4_K(&b4, y, 256);
    CHECK_NEAR(y[0], 3 * 7 - 0.5 * 2, 0);
    CHECK_NEAR(y[161], 33 * 10 - 0.5 * 17, 0);
    CHECK_NEAR(y[1], -1.0, 0); /* q = 0 → -dmin*m */

    block_q5_K b5;
    memset(&b5, 0, sizeof b5);
    b5.d = sl_f32_to_f16(1.0f);
    b5.scales[1] = 1; /* sub-block 1: scale 1 */
    b5.qs[3] = 0x20;  /* element 35 low bits 2 */
    b5.qh[3] = 2;     /* bit 1 = fifth bit of element 32+3 */
    sl_dequantize_row_q5_K(&b5, y, 256);
    CHECK_NEAR(y[35], 18, 0);

    block_q6_K b6;
    memset(&b6, 0, sizeof b6);
    b6.d = sl_f32_to_f16(0.5f);
    for (int i = 0; i < 16; i++) b6.scales[i] = (int8_t)(i - 8);
    b6.ql[64 + 32 + 2] = 0x90;  /* half 1, element 128+96+2 = 226 low 4 bits: 9 */
    b6.qh[32 + 2] = 3 << 6;     /* high 2 bits: 3 → q = 9 | 48 = 57 */
    sl_dequantize_row_q6_K(&b6, y, 256);
    CHECK_NEAR(y[226], 0.5 * (226 / 16 - 8) * (57 - 32), 0);
    CHECK_NEAR(y[0], 0.5 * -8 * -32, 0);
}

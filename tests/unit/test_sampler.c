/*
 * test_sampler.c — the sampler against hand-computed sets and against a
 * naive oracle written here from the definitions (full qsort, softmax in long
 * double): greedy and ties, top-k / top-p / min-p sets, temperature, the
 * empirical distribution of many draws, reproducibility per (seed, stream,
 * position), penalties, logit bias and min_tokens suppression, parameter
 * validation, no allocation while sampling, and sl_logprobs_top.
 */
#include "harness.h"

#include "core/alloc.h"
#include "core/rng.h"
#include "engine/sampler.h"
#include "model/gguf.h"
#include "tokenizer/tokenizer.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ------------------------------------------------------------ */

static sl_sampler_params plain(float temperature) {
    sl_sampler_params p = sl_sampler_default_params();
    p.temperature = temperature;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    return p;
}

/* deterministic test data: splitmix64 */
static uint64_t mix_state;
static uint64_t mix_next(void) {
    uint64_t z = (mix_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double mix_unit(void) { return (double)(mix_next() >> 11) / 9007199254740992.0; }
/* roughly normal logits with scale `sd` (sum of 4 uniforms) */
static void fill_logits(float *l, int32_t n, double sd, uint64_t seed) {
    mix_state = seed;
    for (int32_t i = 0; i < n; i++) l[i] = (float)((mix_unit() + mix_unit() + mix_unit() + mix_unit() - 2.0) * sd * 1.7);
}

/* ---- the oracle: definitions, no shortcuts ------------------------------ */

static const float *ref_logits;
static int cmp_rank(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    float lx = ref_logits[x], ly = ref_logits[y];
    if (lx > ly) return -1;
    if (lx < ly) return 1;
    return x < y ? -1 : 1;
}

/* Candidates and probabilities as the documented chain defines them (no
 * penalties; finite logits). Returns the count. */
static int32_t ref_candidates(const float *l, int32_t n, const sl_sampler_params *p, int32_t *ids, double *probs) {
    for (int32_t i = 0; i < n; i++) ids[i] = i;
    ref_logits = l;
    qsort(ids, (size_t)n, sizeof *ids, cmp_rank);
    if (p->temperature <= 0) {
        probs[0] = 1;
        return 1;
    }
    int32_t m = n;
    if (p->top_k > 0 && p->top_k < n) m = p->top_k;
    long double z = 0, mx = l[ids[0]];
    for (int32_t i = 0; i < m; i++) z += expl((long double)l[ids[i]] - mx);
    if (p->top_p < 1) {
        long double cum = 0;
        for (int32_t i = 0; i < m; i++) {
            cum += expl((long double)l[ids[i]] - mx) / z;
            if (cum >= (long double)p->top_p) {
                m = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0) {
        long double pmax = 1 / z;
        int32_t k = 0;
        for (int32_t i = 0; i < m; i++)
            if (expl((long double)l[ids[i]] - mx) / z >= (long double)p->min_p * pmax) ids[k++] = ids[i];
        m = k;
    }
    long double zt = 0;
    for (int32_t i = 0; i < m; i++) zt += expl(((long double)l[ids[i]] - mx) / p->temperature);
    for (int32_t i = 0; i < m; i++) probs[i] = (double)(expl(((long double)l[ids[i]] - mx) / p->temperature) / zt);
    return m;
}

/* Compare the sampler's candidates with the oracle's; returns false (and
 * reports) on the first difference. */
static bool same_as_oracle(const float *l, int32_t n, const sl_sampler_params *p, const char *what) {
    sl_sampler *s = NULL;
    int32_t *rids = malloc((size_t)n * sizeof *rids);
    double *rprobs = malloc((size_t)n * sizeof *rprobs);
    bool ok = false;
    if (!rids || !rprobs) goto done;
    if (sl_sampler_create(p, n, &s) != SL_OK) {
        sl_test_fail(__FILE__, __LINE__, "%s: create: %s", what, sl_last_error());
        goto done;
    }
    const int32_t *ids;
    const double *probs;
    int32_t m = sl_sampler_candidates(s, l, NULL, 0, &ids, &probs);
    int32_t rm = ref_candidates(l, n, p, rids, rprobs);
    if (m != rm) {
        sl_test_fail(__FILE__, __LINE__, "%s: %d candidates, oracle %d", what, m, rm);
        goto done;
    }
    for (int32_t i = 0; i < m; i++) {
        if (ids[i] != rids[i] || fabs(probs[i] - rprobs[i]) > 1e-9 + 1e-7 * rprobs[i]) {
            sl_test_fail(__FILE__, __LINE__, "%s: candidate %d: id %d p %.12g, oracle id %d p %.12g", what, i,
                         ids[i], probs[i], rids[i], rprobs[i]);
            goto done;
        }
    }
    ok = true;
done:
    sl_sampler_destroy(s);
    free(rids);
    free(rprobs);
    return ok;
}

/* Ids of the candidates, as a bit set over a small vocabulary. */
static unsigned cand_set(sl_sampler *s, const float *l, const double **probs_out) {
    const int32_t *ids;
    const double *probs;
    int32_t m = sl_sampler_candidates(s, l, NULL, 0, &ids, &probs);
    unsigned set = 0;
    for (int32_t i = 0; i < m; i++) set |= 1u << ids[i];
    if (probs_out) *probs_out = probs;
    return set;
}

/* ---- greedy ---------------------------------------------------------------- */

TEST(greedy_argmax_ties_lowest_id) {
    const float l[6] = {1.0f, 3.0f, -2.0f, 3.0f, 2.5f, 3.0f};
    float temps[3] = {0.0f, -1.0f, -0.0f};
    for (int t = 0; t < 3; t++) {
        sl_sampler_params p = sl_sampler_default_params();
        p.temperature = temps[t];
        sl_sampler *s;
        CHECK_OK(sl_sampler_create(&p, 6, &s));
        for (uint64_t pos = 0; pos < 20; pos++) CHECK_EQ_INT(sl_sampler_sample(s, l, NULL, 0, 1, pos), 1);
        sl_sampler_destroy(s);
    }
    /* NaN never wins; -0 ties +0 and the lower id wins */
    const float l2[4] = {NAN, -1.0f, -0.0f, 0.0f};
    sl_sampler_params p = plain(0.0f);
    sl_sampler *s;
    CHECK_OK(sl_sampler_create(&p, 4, &s));
    CHECK_EQ_INT(sl_sampler_sample(s, l2, NULL, 0, 0, 0), 2);
    sl_sampler_destroy(s);
}

TEST(top_k_one_equals_greedy_any_temperature) {
    enum { N = 3000 };
    static float l[N];
    float temps[4] = {0.05f, 0.7f, 1.0f, 8.0f};
    for (int trial = 0; trial < 10; trial++) {
        fill_logits(l, N, 2.0, 100 + (uint64_t)trial);
        if (trial % 2) /* quantized: many ties at the top */
            for (int32_t i = 0; i < N; i++) l[i] = floorf(l[i]);
        int32_t want = 0; /* argmax, lowest id on ties, computed here */
        for (int32_t i = 1; i < N; i++)
            if (l[i] > l[want]) want = i;
        for (int t = 0; t < 4; t++) {
            sl_sampler_params p = sl_sampler_default_params();
            p.temperature = temps[t];
            p.top_k = 1;
            sl_sampler *s;
            CHECK_OK(sl_sampler_create(&p, N, &s));
            for (uint64_t pos = 0; pos < 16; pos++)
                CHECK_EQ_INT(sl_sampler_sample(s, l, NULL, 0, (uint64_t)trial, pos), want);
            sl_sampler_destroy(s);
        }
    }
}

/* ---- truncation sets, by hand --------------------------------------------- */

/* probabilities 0.15, 0.5, 0.1, 0.25 at ids 0..3: sorted order is 1, 3, 0, 2
 * with cumulative mass 0.5, 0.75, 0.9, 1.0; logits are log(p) + 3. */
static void hand_logits(float l[4]) {
    const double pr[4] = {0.15, 0.5, 0.1, 0.25};
    for (int i = 0; i < 4; i++) l[i] = (float)(log(pr[i]) + 3.0);
}

static unsigned hand_set(float top_p, float min_p, int32_t top_k, const double **probs) {
    float l[4];
    hand_logits(l);
    sl_sampler_params p = plain(1.0f);
    p.top_p = top_p;
    p.min_p = min_p;
    p.top_k = top_k;
    sl_sampler *s;
    if (sl_sampler_create(&p, 4, &s) != SL_OK) return 0xdead;
    static double copy[4];
    const double *pr;
    unsigned set = cand_set(s, l, &pr);
    for (int i = 0; i < __builtin_popcount(set); i++) copy[i] = pr[i];
    if (probs) *probs = copy;
    sl_sampler_destroy(s);
    return set;
}

#define B(i) (1u << (i))

TEST(top_p_hand_sets) {
    /* smallest prefix whose mass reaches p */
    CHECK_EQ_INT(hand_set(0.4f, 0, 0, NULL), B(1));
    CHECK_EQ_INT(hand_set(0.7f, 0, 0, NULL), B(1) | B(3));
    CHECK_EQ_INT(hand_set(0.8f, 0, 0, NULL), B(1) | B(3) | B(0));
    CHECK_EQ_INT(hand_set(0.95f, 0, 0, NULL), B(1) | B(3) | B(0) | B(2));
    CHECK_EQ_INT(hand_set(1.0f, 0, 0, NULL), B(1) | B(3) | B(0) | B(2));
    /* at least one token even for a tiny p */
    CHECK_EQ_INT(hand_set(1e-6f, 0, 0, NULL), B(1));
    /* after top-k 2 the mass renormalizes to 2/3, 1/3: p 0.6 keeps only id 1 */
    CHECK_EQ_INT(hand_set(0.6f, 0, 2, NULL), B(1));
    CHECK_EQ_INT(hand_set(0.6f, 0, 0, NULL), B(1) | B(3));
    /* probabilities of the survivors renormalize: 0.5/0.75, 0.25/0.75 */
    const double *pr;
    CHECK_EQ_INT(hand_set(0.7f, 0, 0, &pr), B(1) | B(3));
    CHECK_NEAR(pr[0], 2.0 / 3.0, 1e-6);
    CHECK_NEAR(pr[1], 1.0 / 3.0, 1e-6);
}

TEST(min_p_hand_sets) {
    /* keep p >= min_p * 0.5 */
    CHECK_EQ_INT(hand_set(1.0f, 0.1f, 0, NULL), B(0) | B(1) | B(2) | B(3)); /* bar 0.05 */
    CHECK_EQ_INT(hand_set(1.0f, 0.25f, 0, NULL), B(1) | B(3) | B(0));       /* bar 0.125 */
    CHECK_EQ_INT(hand_set(1.0f, 0.4f, 0, NULL), B(1) | B(3));               /* bar 0.2 */
    CHECK_EQ_INT(hand_set(1.0f, 0.6f, 0, NULL), B(1));                      /* bar 0.3 */
    CHECK_EQ_INT(hand_set(1.0f, 1.0f, 0, NULL), B(1));                      /* bar 0.5 */
    /* together with top-p: the smaller of the two prefixes */
    CHECK_EQ_INT(hand_set(0.95f, 0.25f, 0, NULL), B(1) | B(3) | B(0));
    CHECK_EQ_INT(hand_set(0.7f, 0.25f, 0, NULL), B(1) | B(3));
    /* with top-k 3 first: bar 0.4 * p_max keeps 1 and 3 */
    CHECK_EQ_INT(hand_set(1.0f, 0.4f, 3, NULL), B(1) | B(3));
    const double *pr;
    CHECK_EQ_INT(hand_set(1.0f, 0.25f, 0, &pr), B(1) | B(3) | B(0));
    CHECK_NEAR(pr[0], 0.5 / 0.9, 1e-6);
    CHECK_NEAR(pr[1], 0.25 / 0.9, 1e-6);
    CHECK_NEAR(pr[2], 0.15 / 0.9, 1e-6);
}

TEST(top_k_ties_and_temperature) {
    const float l[5] = {1.0f, 2.0f, 2.0f, 0.0f, 2.0f};
    sl_sampler_params p = plain(1.0f);
    p.top_k = 2;
    sl_sampler *s;
    CHECK_OK(sl_sampler_create(&p, 5, &s));
    const int32_t *ids;
    const double *pr;
    CHECK_EQ_INT(sl_sampler_candidates(s, l, NULL, 0, &ids, &pr), 2);
    CHECK_EQ_INT(ids[0], 1);
    CHECK_EQ_INT(ids[1], 2);
    sl_sampler_destroy(s);
    p.top_k = 4;
    CHECK_OK(sl_sampler_create(&p, 5, &s));
    CHECK_EQ_INT(sl_sampler_candidates(s, l, NULL, 0, &ids, &pr), 4);
    CHECK(ids[0] == 1 && ids[1] == 2 && ids[2] == 4 && ids[3] == 0);
    sl_sampler_destroy(s);
    /* temperature 2 after top-p 0.7 on the hand distribution: weights sqrt(p) */
    float hl[4];
    hand_logits(hl);
    p = plain(2.0f);
    p.top_p = 0.7f;
    CHECK_OK(sl_sampler_create(&p, 4, &s));
    CHECK_EQ_INT(sl_sampler_candidates(s, hl, NULL, 0, &ids, &pr), 2);
    CHECK_NEAR(pr[0], sqrt(0.5) / (sqrt(0.5) + sqrt(0.25)), 1e-6);
    sl_sampler_destroy(s);
}

/* ---- against the oracle ----------------------------------------------------- */

TEST(matches_oracle_small_random) {
    static float l[300];
    for (int trial = 0; trial < 200; trial++) {
        int32_t n = 1 + (int32_t)(trial * 7 % 300);
        fill_logits(l, n, 0.5 + trial % 5, 1000 + (uint64_t)trial);
        if (trial % 3 == 0)
            for (int32_t i = 0; i < n; i++) l[i] = roundf(l[i] * 2) / 2; /* ties */
        sl_sampler_params p = plain(0.3f + (float)(trial % 7) * 0.4f);
        p.top_k = (trial % 4 == 0) ? 0 : 1 + trial % 50;
        p.top_p = (trial % 5 == 0) ? 1.0f : 0.5f + 0.1f * (float)(trial % 5);
        p.min_p = (trial % 6 == 0) ? 0.0f : 0.01f * (float)(trial % 6);
        char what[64];
        snprintf(what, sizeof what, "trial %d n %d", trial, n);
        CHECK(same_as_oracle(l, n, &p, what));
    }
}

TEST(matches_oracle_128k_vocab) {
    enum { N = 128256 };
    float *l = malloc(N * sizeof *l);
    CHECK(l);
    struct {
        int32_t top_k;
        float top_p, min_p, temp;
        bool ties;
    } cases[] = {
        {40, 0.95f, 0.05f, 0.8f, false},  /* defaults: heap path */
        {40, 0.95f, 0.05f, 0.8f, true},   /* heap path, many ties */
        {100, 1.0f, 0.0f, 1.0f, false},   /* top-k only */
        {5000, 0.99f, 0.0f, 1.3f, true},  /* large k: sorted path */
        {0, 0.9f, 0.0f, 1.0f, false},     /* top-p over the whole vocabulary */
        {0, 1.0f, 0.002f, 1.0f, true},    /* min-p prefilter */
        {0, 0.97f, 0.01f, 0.6f, false},   /* both */
        {0, 1.0f, 0.0f, 1.0f, true},      /* nothing: the whole vocabulary, sorted */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fill_logits(l, N, 3.0, 77 + c);
        if (cases[c].ties)
            for (int32_t i = 0; i < N; i++) l[i] = roundf(l[i] * 4) / 4;
        sl_sampler_params p = plain(cases[c].temp);
        p.top_k = cases[c].top_k;
        p.top_p = cases[c].top_p;
        p.min_p = cases[c].min_p;
        char what[64];
        snprintf(what, sizeof what, "case %zu", c);
        bool ok = same_as_oracle(l, N, &p, what);
        if (!ok) free(l);
        CHECK(ok);
    }
    free(l);
}

/* ---- draws ---------------------------------------------------------------- */

/* Each draw is the oracle's inverse CDF at u = sl_rng_uniform(seed, stream,
 * position): the first candidate, in ranking order, whose cumulative
 * probability exceeds u. Covers the paths that sort only a prefix. */
TEST(draw_is_inverse_cdf_of_oracle) {
    enum { N = 128256, DRAWS = 60 };
    float *l = malloc(N * sizeof *l);
    int32_t *rids = malloc(N * sizeof *rids);
    double *rprobs = malloc(N * sizeof *rprobs);
    CHECK(l && rids && rprobs);
    struct {
        int32_t n, top_k;
        float top_p, min_p, temp;
        double sd;
    } cases[] = {
        {N, 0, 1.0f, 0.0f, 1.0f, 3.0},    /* no filter: only the reachable prefix is sorted */
        {N, 0, 1.0f, 0.0f, 0.5f, 1.0},    /* no filter, flat logits */
        {N, 0, 1.0f, 0.0f, 3.0f, 3.0},    /* no filter, high temperature */
        {N, 0, 0.9f, 0.0f, 1.0f, 3.0},    /* top-p */
        {N, 0, 0.8f, 0.05f, 0.7f, 2.0},   /* top-p and min-p */
        {N, 3000, 0.95f, 0.0f, 1.0f, 1.0}, /* large top-k, then top-p */
        {N, 60, 0.95f, 0.05f, 1.0f, 1.0},  /* heap */
        {300, 0, 1.0f, 0.0f, 1.0f, 1.0},   /* small vocabulary, sorted whole */
    };
    bool ok = true;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0] && ok; c++) {
        int32_t n = cases[c].n;
        fill_logits(l, n, cases[c].sd, 300 + c);
        if (c % 2)
            for (int32_t i = 0; i < n; i++) l[i] = roundf(l[i] * 8) / 8;
        sl_sampler_params p = plain(cases[c].temp);
        p.top_k = cases[c].top_k;
        p.top_p = cases[c].top_p;
        p.min_p = cases[c].min_p;
        p.seed = 4242 + c;
        sl_sampler *s;
        if (sl_sampler_create(&p, n, &s) != SL_OK) {
            ok = false;
            break;
        }
        int32_t m = ref_candidates(l, n, &p, rids, rprobs);
        for (uint64_t pos = 0; pos < DRAWS && ok; pos++) {
            double u = sl_rng_uniform(p.seed, 5, pos);
            long double cum = 0;
            int32_t want = rids[m - 1];
            for (int32_t i = 0; i < m; i++) {
                cum += rprobs[i];
                if (cum > u) {
                    want = rids[i];
                    break;
                }
            }
            int32_t got = sl_sampler_sample(s, l, NULL, 0, 5, pos);
            if (got != want) {
                sl_test_fail(__FILE__, __LINE__, "case %zu position %d: drew %d, inverse CDF gives %d (u %.17g)", c,
                             (int)pos, got, want, u);
                ok = false;
            }
        }
        sl_sampler_destroy(s);
    }
    free(l);
    free(rids);
    free(rprobs);
    CHECK(ok);
}

/* Draw `n` tokens at positions 0..n-1 and compare the frequencies with the
 * expected probabilities: chi-square below `crit` and max |diff| < 0.005. */
static bool draws_match(sl_sampler *s, const float *l, int32_t nv, const double *want, int n, double crit) {
    int cnt[16] = {0};
    for (int i = 0; i < n; i++) {
        int32_t t = sl_sampler_sample(s, l, NULL, 0, 3, (uint64_t)i);
        if (t < 0 || t >= nv) return false;
        cnt[t]++;
    }
    double chi2 = 0, maxd = 0;
    for (int32_t t = 0; t < nv; t++) {
        double e = want[t] * n;
        if (want[t] == 0) {
            if (cnt[t] != 0) {
                sl_test_fail(__FILE__, __LINE__, "token %d drawn %d times, expected never", t, cnt[t]);
                return false;
            }
            continue;
        }
        chi2 += (cnt[t] - e) * (cnt[t] - e) / e;
        double d = fabs((double)cnt[t] / n - want[t]);
        if (d > maxd) maxd = d;
    }
    if (chi2 > crit || maxd > 0.005) {
        sl_test_fail(__FILE__, __LINE__, "chi2 %.2f (crit %.1f), max |diff| %.4f", chi2, crit, maxd);
        return false;
    }
    return true;
}

TEST(draws_follow_softmax_over_temperature) {
    const float l[8] = {0.3f, 1.2f, -0.5f, 2.0f, 1.9f, 0.0f, -1.5f, 1.0f};
    const float temps[2] = {0.7f, 1.6f};
    for (int t = 0; t < 2; t++) {
        double want[8], z = 0;
        for (int i = 0; i < 8; i++) z += exp(l[i] / temps[t]);
        for (int i = 0; i < 8; i++) want[i] = exp(l[i] / temps[t]) / z;
        sl_sampler_params p = plain(temps[t]);
        p.seed = 1234;
        sl_sampler *s;
        CHECK_OK(sl_sampler_create(&p, 8, &s));
        /* 7 dof: the 99.9% quantile of chi-square is 24.3 */
        bool ok = draws_match(s, l, 8, want, 200000, 24.3);
        sl_sampler_destroy(s);
        CHECK(ok);
    }
}

TEST(draws_follow_filtered_distribution) {
    /* top-k 3 of the hand distribution at T = 1: ids 1, 3, 0 with 0.5, 0.25, 0.15 over 0.9 */
    float l[4];
    hand_logits(l);
    sl_sampler_params p = plain(1.0f);
    p.top_k = 3;
    p.seed = 99;
    sl_sampler *s;
    CHECK_OK(sl_sampler_create(&p, 4, &s));
    const double want[4] = {0.15 / 0.9, 0.5 / 0.9, 0.0, 0.25 / 0.9};
    bool ok = draws_match(s, l, 4, want, 100000, 13.8); /* 2 dof, 99.9% */
    sl_sampler_destroy(s);
    CHECK(ok);
}

TEST(same_seed_stream_position_same_token) {
    enum { N = 500, STEPS = 200 };
    static float l[N], other[N];
    static int32_t first[STEPS];
    int32_t hist[STEPS];
    fill_logits(l, N, 1.0, 5);
    fill_logits(other, N, 3.0, 6);
    sl_sampler_params p = sl_sampler_default_params();
    p.temperature = 1.2f;
    p.top_k = 0;
    p.top_p = 0.98f;
    p.repeat_penalty = 1.3f;
    p.seed = 77;
    sl_sampler *s, *s2;
    CHECK_OK(sl_sampler_create(&p, N, &s));
    CHECK_OK(sl_sampler_create(&p, N, &s2));
    for (int i = 0; i < STEPS; i++) {
        first[i] = sl_sampler_sample(s, l, hist, i, 11, (uint64_t)i);
        hist[i] = first[i];
    }
    /* again, interleaved with other sequences (other logits, history, streams) */
    for (int i = 0; i < STEPS; i++) {
        sl_sampler_sample(s, other, hist, STEPS - i, 12, (uint64_t)i);
        sl_sampler_sample(s, other, first, i, 11, (uint64_t)i + 1000);
        CHECK_EQ_INT(sl_sampler_sample(s, l, hist, i, 11, (uint64_t)i), first[i]);
        CHECK_EQ_INT(sl_sampler_sample(s2, l, hist, i, 11, (uint64_t)i), first[i]);
    }
    /* a different stream gives a different sequence */
    int same = 0;
    for (int i = 0; i < STEPS; i++) same += sl_sampler_sample(s, l, hist, i, 12, (uint64_t)i) == first[i];
    CHECK_MSG(same < STEPS / 2, "stream 12 matched stream 11 at %d of %d positions", same, STEPS);
    sl_sampler_destroy(s);
    sl_sampler_destroy(s2);
}

TEST(different_seeds_differ) {
    enum { N = 50, STEPS = 400 };
    float l[N];
    for (int i = 0; i < N; i++) l[i] = 0.01f * (float)i; /* nearly flat */
    sl_sampler_params p = plain(1.0f);
    sl_sampler *a, *b;
    p.seed = 1;
    CHECK_OK(sl_sampler_create(&p, N, &a));
    p.seed = 2;
    CHECK_OK(sl_sampler_create(&p, N, &b));
    int same = 0;
    for (int i = 0; i < STEPS; i++)
        same += sl_sampler_sample(a, l, NULL, 0, 0, (uint64_t)i) == sl_sampler_sample(b, l, NULL, 0, 0, (uint64_t)i);
    /* independent draws agree with probability ~1/50 */
    CHECK_MSG(same < 30, "seeds 1 and 2 agree at %d of %d positions", same, STEPS);
    sl_sampler_destroy(a);
    sl_sampler_destroy(b);
}

/* ---- penalties -------------------------------------------------------------- */

static int32_t greedy_with(const float *l, int32_t n, float rp, int32_t last_n, float presence, float freq,
                           const int32_t *hist, int64_t n_hist) {
    sl_sampler_params p = plain(0.0f);
    p.repeat_penalty = rp;
    p.repeat_last_n = last_n;
    p.presence_penalty = presence;
    p.frequency_penalty = freq;
    sl_sampler *s;
    if (sl_sampler_create(&p, n, &s) != SL_OK) return -100;
    int32_t t = sl_sampler_sample(s, l, hist, n_hist, 0, 0);
    sl_sampler_destroy(s);
    return t;
}

TEST(repetition_penalty_changes_argmax) {
    /* positive logit divided: 2.0 / 1.1 = 1.818 < 1.9 */
    const float pos[3] = {2.0f, 1.9f, 0.0f};
    const int32_t h0[2] = {0, 2};
    CHECK_EQ_INT(greedy_with(pos, 3, 1.0f, 64, 0, 0, h0, 2), 0);
    CHECK_EQ_INT(greedy_with(pos, 3, 1.1f, 64, 0, 0, h0, 2), 1);
    CHECK_EQ_INT(greedy_with(pos, 3, 1.05f, 64, 0, 0, h0, 2), 0); /* 1.905 > 1.9 */
    /* negative logit multiplied: -1.0 * 1.1 = -1.1 < -1.05 */
    const float neg[2] = {-1.0f, -1.05f};
    CHECK_EQ_INT(greedy_with(neg, 2, 1.1f, 64, 0, 0, h0, 1), 1);
    /* the window: token 0 four entries back is outside last 3 */
    const int32_t h1[4] = {0, 2, 2, 2};
    CHECK_EQ_INT(greedy_with(pos, 3, 1.1f, 3, 0, 0, h1, 4), 0);
    CHECK_EQ_INT(greedy_with(pos, 3, 1.1f, 4, 0, 0, h1, 4), 1);
    CHECK_EQ_INT(greedy_with(pos, 3, 1.1f, -1, 0, 0, h1, 4), 1);
    CHECK_EQ_INT(greedy_with(pos, 3, 1.1f, 0, 0, 0, h1, 4), 0); /* 0: no history */
    /* ids outside the vocabulary are ignored */
    const int32_t h2[3] = {-5, 3, 1000};
    CHECK_EQ_INT(greedy_with(pos, 3, 1.1f, -1, 0, 0, h2, 3), 0);
}

TEST(presence_frequency_penalties) {
    const float l[2] = {1.0f, 0.5f};
    const int32_t h[3] = {0, 1, 0}; /* token 0 twice, token 1 once */
    /* frequency 0.3: token 0 at 1.0 - 2 * 0.3 = 0.4 still beats token 1 at 0.5 - 0.3 = 0.2 */
    CHECK_EQ_INT(greedy_with(l, 2, 1.0f, 64, 0, 0.3f, h, 3), 0);
    const int32_t h0[2] = {0, 0};
    CHECK_EQ_INT(greedy_with(l, 2, 1.0f, 64, 0, 0.3f, h0, 2), 1);  /* 0.4 < 0.5 */
    CHECK_EQ_INT(greedy_with(l, 2, 1.0f, 64, 0, 0.2f, h0, 2), 0);  /* 0.6 > 0.5 */
    CHECK_EQ_INT(greedy_with(l, 2, 1.0f, 64, 0.6f, 0, h0, 2), 1);  /* 0.4 < 0.5 */
    CHECK_EQ_INT(greedy_with(l, 2, 1.0f, 64, 0.4f, 0, h0, 2), 0);  /* 0.6 > 0.5 */
    CHECK_EQ_INT(greedy_with(l, 2, 1.0f, 64, -1.0f, 0, h, 3), 0);  /* negative: a bonus, both get it */

    /* exact values through the distribution: repeat 2, presence 0.5, frequency 0.25
     * token 0 (once):  2 / 2 - (0.25 + 0.5) = 0.25
     * token 1 (never): 1
     * token 2 (twice): -1 * 2 - (0.5 + 0.5) = -3 */
    const float l3[3] = {2.0f, 1.0f, -1.0f};
    const int32_t h3[4] = {2, 0, 2, 7};
    sl_sampler_params p = plain(1.0f);
    p.repeat_penalty = 2.0f;
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    sl_sampler *s;
    CHECK_OK(sl_sampler_create(&p, 3, &s));
    const int32_t *ids;
    const double *pr;
    CHECK_EQ_INT(sl_sampler_candidates(s, l3, h3, 4, &ids, &pr), 3);
    double z = exp(0.25) + exp(1.0) + exp(-3.0);
    CHECK(ids[0] == 1 && ids[1] == 0 && ids[2] == 2);
    CHECK_NEAR(pr[0], exp(1.0) / z, 1e-7);
    CHECK_NEAR(pr[1], exp(0.25) / z, 1e-7);
    CHECK_NEAR(pr[2], exp(-3.0) / z, 1e-7);
    /* logits are not modified, and nothing carries over to the next call */
    CHECK(l3[0] == 2.0f && l3[2] == -1.0f);
    CHECK_EQ_INT(sl_sampler_candidates(s, l3, NULL, 0, &ids, &pr), 3);
    z = exp(2.0) + exp(1.0) + exp(-1.0);
    CHECK_NEAR(pr[0], exp(2.0) / z, 1e-7);
    sl_sampler_destroy(s);
}

/* ---- logit bias and suppression (sl_sampler_set_adjust) ----------------------- */

TEST(logit_bias_then_penalties) {
    /* the bias comes before the penalty: token 1 at 1.0 + 1.5 = 2.5 beats token 0 (2.0); with token 1 in the
     * history and a repetition penalty of 2 it falls to 2.5 / 2 = 1.25 and token 0 wins */
    const float l[3] = {2.0f, 1.0f, 0.0f};
    const int32_t h[1] = {1};
    sl_sampler_params p = plain(0.0f);
    sl_sampler *s;
    CHECK_OK(sl_sampler_create(&p, 3, &s));
    const int32_t ids[2] = {1, 2};
    const float bias[2] = {1.5f, -3.0f};
    sl_logit_adjust a = {.bias_ids = ids, .bias = bias, .n_bias = 2};
    CHECK_OK(sl_sampler_set_adjust(s, &a));
    CHECK_EQ_INT(sl_sampler_sample(s, l, NULL, 0, 0, 0), 1); /* 2.5 > 2.0 */
    sl_sampler_destroy(s);
    p.repeat_penalty = 2.0f;
    CHECK_OK(sl_sampler_create(&p, 3, &s));
    CHECK_OK(sl_sampler_set_adjust(s, &a));
    CHECK_EQ_INT(sl_sampler_sample(s, l, h, 1, 0, 0), 0); /* (1.0 + 1.5) / 2 = 1.25 < 2.0 */
    sl_sampler_destroy(s);

    /* the distribution: logits {2, 2.5, -3}, temperature 1 */
    p = plain(1.0f);
    CHECK_OK(sl_sampler_create(&p, 3, &s));
    CHECK_OK(sl_sampler_set_adjust(s, &a));
    const int32_t *ci;
    const double *pr;
    CHECK_EQ_INT(sl_sampler_candidates(s, l, NULL, 0, &ci, &pr), 3);
    double z = exp(2.0) + exp(2.5) + exp(-3.0);
    CHECK(ci[0] == 1 && ci[1] == 0 && ci[2] == 2);
    CHECK_NEAR(pr[0], exp(2.5) / z, 1e-7);
    CHECK_NEAR(pr[2], exp(-3.0) / z, 1e-7);
    /* logprobs stay those of the raw logits */
    int32_t top[1];
    float lp[1], chosen;
    CHECK_EQ_INT(sl_logprobs_top(l, 3, 1, top, lp, 1, &chosen), 1);
    CHECK_EQ_INT(top[0], 0);
    /* NULL clears */
    CHECK_OK(sl_sampler_set_adjust(s, NULL));
    CHECK_EQ_INT(sl_sampler_candidates(s, l, NULL, 0, &ci, &pr), 3);
    CHECK_EQ_INT(ci[0], 0);
    sl_sampler_destroy(s);
}

TEST(suppression_until_history_length) {
    const float l[4] = {3.0f, 2.0f, 1.0f, 0.0f};
    const int32_t hist[6] = {3, 3, 3, 3, 3, 3};
    sl_sampler_params p = plain(0.0f);
    sl_sampler *s;
    CHECK_OK(sl_sampler_create(&p, 4, &s));
    const int32_t sup[2] = {0, 1};
    sl_logit_adjust a = {.suppress = sup, .n_suppress = 2, .suppress_until = 5};
    CHECK_OK(sl_sampler_set_adjust(s, &a));
    for (int64_t n = 0; n < 5; n++) CHECK_EQ_INT(sl_sampler_sample(s, l, hist, n, 0, (uint64_t)n), 2);
    CHECK_EQ_INT(sl_sampler_sample(s, l, hist, 5, 0, 5), 0);
    CHECK_EQ_INT(sl_sampler_sample(s, l, hist, 6, 0, 6), 0);
    /* sampled, a suppressed token has probability 0 */
    sl_sampler_destroy(s);
    p = plain(1.0f);
    CHECK_OK(sl_sampler_create(&p, 4, &s));
    CHECK_OK(sl_sampler_set_adjust(s, &a));
    for (uint64_t pos = 0; pos < 200; pos++) {
        int32_t t = sl_sampler_sample(s, l, hist, 2, 9, pos);
        CHECK(t == 2 || t == 3);
    }
    sl_sampler_destroy(s);
}

TEST(set_adjust_validates) {
    sl_sampler_params p = plain(0.0f);
    sl_sampler *s;
    CHECK_OK(sl_sampler_create(&p, 4, &s));
    const int32_t bad_id[1] = {4};
    const float ok_bias[1] = {1.0f}, inf_bias[1] = {INFINITY};
    const int32_t ok_id[1] = {3};
    sl_logit_adjust a = {.bias_ids = bad_id, .bias = ok_bias, .n_bias = 1};
    CHECK(sl_sampler_set_adjust(s, &a) == SL_ERR_INVALID && strstr(sl_last_error(), "token 4"));
    a.bias_ids = ok_id;
    a.bias = inf_bias;
    CHECK(sl_sampler_set_adjust(s, &a) == SL_ERR_INVALID && strstr(sl_last_error(), "finite"));
    const int32_t neg[1] = {-1};
    sl_logit_adjust b = {.suppress = neg, .n_suppress = 1, .suppress_until = 9};
    CHECK(sl_sampler_set_adjust(s, &b) == SL_ERR_INVALID && strstr(sl_last_error(), "suppressed token -1"));
    /* a failed call leaves no adjustment */
    const float l[4] = {0.0f, 0.0f, 0.0f, 1.0f};
    CHECK_EQ_INT(sl_sampler_sample(s, l, NULL, 0, 0, 0), 3);
    sl_sampler_destroy(s);
}

/* vLLM's allowed_token_ids: only the listed tokens, greedy and sampled; nothing left: -1. */
TEST(allowed_tokens_only) {
    const float l[5] = {4.0f, 3.0f, 2.0f, 1.0f, 0.0f};
    sl_sampler_params p = plain(0.0f);
    sl_sampler *s;
    CHECK_OK(sl_sampler_create(&p, 5, &s));
    const int32_t allow[3] = {3, 1, 3}; /* a repeat is harmless */
    sl_logit_adjust a = {.allow = allow, .n_allow = 3};
    CHECK_OK(sl_sampler_set_adjust(s, &a));
    CHECK_EQ_INT(sl_sampler_sample(s, l, NULL, 0, 0, 0), 1);
    sl_sampler_destroy(s);
    p = plain(1.0f);
    CHECK_OK(sl_sampler_create(&p, 5, &s));
    CHECK_OK(sl_sampler_set_adjust(s, &a));
    int seen[5] = {0};
    for (uint64_t pos = 0; pos < 400; pos++) seen[sl_sampler_sample(s, l, NULL, 0, 4, pos)]++;
    CHECK(seen[0] == 0 && seen[2] == 0 && seen[4] == 0 && seen[1] > 0 && seen[3] > 0);
    /* p(1) = e^3 / (e^3 + e^1) = 0.881: the draws follow it */
    CHECK_MSG(seen[1] > 320 && seen[1] < 380, "token 1 drawn %d times of 400", seen[1]);
    /* the caller's mask refuses both allowed tokens: no token, whatever the temperature */
    const float masked[5] = {4.0f, -INFINITY, 2.0f, -INFINITY, 0.0f};
    CHECK_EQ_INT(sl_sampler_sample(s, masked, NULL, 0, 4, 0), -1);
    sl_sampler_destroy(s);
    p = plain(0.0f);
    CHECK_OK(sl_sampler_create(&p, 5, &s));
    CHECK_OK(sl_sampler_set_adjust(s, &a));
    CHECK_EQ_INT(sl_sampler_sample(s, masked, NULL, 0, 0, 0), -1);
    const float nan5[5] = {NAN, NAN, NAN, NAN, NAN};
    CHECK_OK(sl_sampler_set_adjust(s, NULL));
    CHECK_EQ_INT(sl_sampler_sample(s, nan5, NULL, 0, 0, 0), -1);
    sl_sampler_destroy(s);
}

/* vLLM's bad_words: a one-token word is never sampled; a longer one's last token only after the tokens
 * before it, and only within the output (history from bad_from on). */
TEST(bad_words_end_no_output) {
    const float l[6] = {5.0f, 4.0f, 3.0f, 2.0f, 1.0f, 0.0f};
    sl_sampler_params p = plain(0.0f);
    sl_sampler *s;
    CHECK_OK(sl_sampler_create(&p, 6, &s));
    /* words: [1]; [4, 0]; [2, 3, 0] */
    const int32_t bad[6] = {1, 4, 0, 2, 3, 0}, len[3] = {1, 2, 3};
    sl_logit_adjust a = {.bad = bad, .bad_len = len, .n_bad = 3, .bad_from = 2};
    CHECK_OK(sl_sampler_set_adjust(s, &a));
    const int32_t h1[3] = {5, 5, 3};
    CHECK_EQ_INT(sl_sampler_sample(s, l, h1, 3, 0, 0), 0);     /* 0 after 3 alone: allowed */
    const int32_t h2[4] = {5, 5, 2, 3};
    CHECK_EQ_INT(sl_sampler_sample(s, l, h2, 4, 0, 0), 2);     /* [2, 3, 0] would end: 0 out, 1 is bad: 2 */
    const int32_t h3[3] = {5, 5, 4};
    CHECK_EQ_INT(sl_sampler_sample(s, l, h3, 3, 0, 0), 2);     /* [4, 0] */
    const int32_t h4[4] = {2, 3, 5, 5};
    CHECK_EQ_INT(sl_sampler_sample(s, l, h4, 2, 0, 0), 0);     /* [2, 3] is the prompt's (before bad_from) */
    CHECK_EQ_INT(sl_sampler_sample(s, l, h4, 4, 0, 0), 0);     /* the history's end is 5, 5 */
    const int32_t h5[3] = {4, 2, 3};
    CHECK_EQ_INT(sl_sampler_sample(s, l, h5, 3, 0, 0), 0);     /* 2 is the prompt's: [2, 3, 0] is not in the output */
    sl_sampler_destroy(s);
    /* validation */
    CHECK_OK(sl_sampler_create(&p, 6, &s));
    const int32_t zero_len[1] = {0};
    sl_logit_adjust z = {.bad = bad, .bad_len = zero_len, .n_bad = 1};
    CHECK(sl_sampler_set_adjust(s, &z) == SL_ERR_INVALID && strstr(sl_last_error(), "bad word 0 has 0 tokens"));
    const int32_t out_of[2] = {3, 6}, two[1] = {2};
    sl_logit_adjust o = {.bad = out_of, .bad_len = two, .n_bad = 1};
    CHECK(sl_sampler_set_adjust(s, &o) == SL_ERR_INVALID && strstr(sl_last_error(), "token 6, outside"));
    const int32_t neg[1] = {-2};
    sl_logit_adjust na = {.allow = neg, .n_allow = 1};
    CHECK(sl_sampler_set_adjust(s, &na) == SL_ERR_INVALID && strstr(sl_last_error(), "allowed token -2"));
    CHECK_EQ_INT(sl_sampler_sample(s, l, NULL, 0, 0, 0), 0); /* no adjustment left */
    sl_sampler_destroy(s);
}

/* ---- create / resources -------------------------------------------------------- */

static bool rejects(sl_sampler_params p, int32_t n, const char *name) {
    sl_sampler *s = (sl_sampler *)&p; /* must be overwritten with NULL */
    sl_status st = sl_sampler_create(&p, n, &s);
    if (st != SL_ERR_INVALID || s != NULL || !strstr(sl_last_error(), name)) {
        sl_test_fail(__FILE__, __LINE__, "%s: status %d, message \"%s\"", name, st, sl_last_error());
        sl_sampler_destroy(st == SL_OK ? s : NULL);
        return false;
    }
    return true;
}

TEST(create_validates_params) {
    sl_sampler_params d = sl_sampler_default_params(), p;
    CHECK(d.temperature == 0.8f && d.top_k == 40 && d.top_p == 0.95f && d.min_p == 0.05f);
    CHECK(d.repeat_penalty == 1.0f && d.repeat_last_n == 64 && d.seed == 0);
    p = d; p.temperature = NAN;        CHECK(rejects(p, 10, "temperature"));
    p = d; p.temperature = INFINITY;   CHECK(rejects(p, 10, "temperature"));
    p = d; p.top_p = NAN;              CHECK(rejects(p, 10, "top_p"));
    p = d; p.top_p = 0.0f;             CHECK(rejects(p, 10, "top_p"));
    p = d; p.top_p = 1.5f;             CHECK(rejects(p, 10, "top_p"));
    p = d; p.min_p = NAN;              CHECK(rejects(p, 10, "min_p"));
    p = d; p.min_p = -0.1f;            CHECK(rejects(p, 10, "min_p"));
    p = d; p.min_p = 1.01f;            CHECK(rejects(p, 10, "min_p"));
    p = d; p.repeat_penalty = NAN;     CHECK(rejects(p, 10, "repeat_penalty"));
    p = d; p.repeat_penalty = 0.0f;    CHECK(rejects(p, 10, "repeat_penalty"));
    p = d; p.repeat_last_n = -2;       CHECK(rejects(p, 10, "repeat_last_n"));
    p = d; p.presence_penalty = NAN;   CHECK(rejects(p, 10, "presence_penalty"));
    p = d; p.frequency_penalty = INFINITY; CHECK(rejects(p, 10, "frequency_penalty"));
    CHECK(rejects(d, 0, "n_vocab"));
    p = d; p.typical_p = 1.5f;         CHECK(rejects(p, 10, "typical_p"));
    p = d; p.top_n_sigma = NAN;        CHECK(rejects(p, 10, "top_n_sigma"));
    p = d; p.xtc_probability = -0.1f;  CHECK(rejects(p, 10, "xtc_probability"));
    p = d; p.xtc_threshold = 2.0f;     CHECK(rejects(p, 10, "xtc_threshold"));
    p = d; p.dynatemp_range = -1.0f;   CHECK(rejects(p, 10, "dynatemp_range"));
    p = d; p.dynatemp_exponent = INFINITY; CHECK(rejects(p, 10, "dynatemp_exponent"));
    p = d; p.dry_multiplier = -1.0f;   CHECK(rejects(p, 10, "dry_multiplier"));
    p = d; p.dry_base = NAN;           CHECK(rejects(p, 10, "dry_base"));
    p = d; p.dry_allowed_length = -1;  CHECK(rejects(p, 10, "dry_allowed_length"));
    p = d; p.dry_penalty_last_n = -2;  CHECK(rejects(p, 10, "dry_penalty_last_n"));
    p = d; p.mirostat = 3;             CHECK(rejects(p, 10, "mirostat"));
    p = d; p.mirostat_eta = -1.0f;     CHECK(rejects(p, 10, "mirostat_eta"));
    p = d; p.min_keep = -1;            CHECK(rejects(p, 10, "min_keep"));
    p = d; p.n_stages = SL_SAMPLER_MAX_STAGES + 1; CHECK(rejects(p, 10, "stages"));
    p = d; p.n_stages = 1; p.stages[0] = 0; CHECK(rejects(p, 10, "stage 0"));
    {
        sl_sampler *sb;
        CHECK_OK(sl_sampler_create(&d, 10, &sb));
        int32_t h = 10, o[2] = {0, 0};
        const sl_dry_breakers bad = {.n = 1, .head = &h, .off = o};
        CHECK(sl_sampler_set_dry_breakers(sb, &bad) == SL_ERR_INVALID && strstr(sl_last_error(), "token 10"));
        sl_sampler_destroy(sb);
    }
    /* accepted: negative temperature (greedy), bounds of the ranges, top_k beyond the vocabulary */
    sl_sampler *s;
    p = d; p.temperature = -3.0f; p.top_p = 1.0f; p.min_p = 1.0f; p.top_k = 1000;
    CHECK_OK(sl_sampler_create(&p, 10, &s));
    sl_sampler_destroy(s);
    sl_sampler_destroy(NULL);
}

TEST(create_out_of_memory_unwinds) {
    sl_sampler_params p = sl_sampler_default_params();
    bool done = false;
    for (int i = 0; i < 32 && !done; i++) {
        sl_sampler *s = NULL;
        sl_alloc_fail_after(i);
        sl_status st = sl_sampler_create(&p, 1000, &s);
        sl_alloc_fail_after(-1);
        if (st == SL_OK) {
            done = true;
            sl_sampler_destroy(s);
        } else {
            CHECK_EQ_INT(st, SL_ERR_NOMEM);
            CHECK(s == NULL);
        }
    }
    CHECK(done);
}

TEST(sampling_allocates_nothing) {
    enum { N = 20000 };
    static float l[N];
    static int32_t hist[300];
    fill_logits(l, N, 2.0, 9);
    for (int i = 0; i < 300; i++) hist[i] = (i * 37) % N;
    sl_sampler_params p = sl_sampler_default_params();
    p.repeat_penalty = 1.2f;
    p.frequency_penalty = 0.1f;
    sl_sampler *s;
    CHECK_OK(sl_sampler_create(&p, N, &s));
    uint64_t before = sl_alloc_count();
    for (int i = 0; i < 50; i++) sl_sampler_sample(s, l, hist, 300, 1, (uint64_t)i);
    CHECK_EQ_INT(sl_alloc_count(), before);
    p.top_k = 0; /* the sorted path as well */
    sl_sampler *s2;
    CHECK_OK(sl_sampler_create(&p, N, &s2));
    before = sl_alloc_count();
    for (int i = 0; i < 20; i++) sl_sampler_sample(s2, l, hist, 300, 1, (uint64_t)i);
    int32_t ids[5];
    float lps[5];
    sl_logprobs_top(l, N, 5, ids, lps, 3, NULL);
    CHECK_EQ_INT(sl_alloc_count(), before);
    sl_sampler_destroy(s);
    sl_sampler_destroy(s2);
    /* the general chain, DRY with breakers, mirostat */
    p.typical_p = 0.9f;
    p.xtc_probability = 0.5f;
    p.dynatemp_range = 0.2f;
    p.top_n_sigma = 2.0f;
    p.dry_multiplier = 0.8f;
    int32_t heads[2] = {3, 37}, off[3] = {0, 0, 1}, tail[1] = {74};
    const sl_dry_breakers brk = {.n = 2, .head = heads, .off = off, .tail = tail};
    for (int miro = 0; miro <= 2; miro++) {
        p.mirostat = miro;
        CHECK_OK(sl_sampler_create(&p, N, &s));
        CHECK_OK(sl_sampler_set_dry_breakers(s, &brk));
        before = sl_alloc_count();
        for (int i = 0; i < 10; i++) sl_sampler_sample(s, l, hist, 300, 1, (uint64_t)i);
        CHECK_EQ_INT(sl_alloc_count(), before);
        sl_sampler_destroy(s);
    }
}

/* ---- llama.cpp's further samplers ------------------------------------------ */

/* The candidates' probabilities by id (0 for the tokens cut). */
static void probs_by_id(sl_sampler *s, const float *l, int32_t n, const int32_t *hist, int64_t n_hist, double *by_id) {
    const int32_t *ids;
    const double *pr;
    for (int32_t i = 0; i < n; i++) by_id[i] = 0;
    const int32_t m = sl_sampler_candidates(s, l, hist, n_hist, &ids, &pr);
    for (int32_t i = 0; i < m; i++) by_id[ids[i]] = pr[i];
}

/* One case of llama.cpp's tests/test-sampling.cpp: logits log(probs[i]); `want` the probabilities by id after
 * the sampler (renormalized: that test prints some before its final softmax), within 1e-5 as there. */
static bool llama_case(const char *what, const float *probs, int32_t n, sl_sampler_params p, const int32_t *hist,
                       int32_t n_hist, const sl_dry_breakers *brk, const float *want) {
    float l[8];
    double got[8], sum = 0;
    for (int32_t i = 0; i < n; i++) l[i] = logf(probs[i]), sum += want[i];
    sl_sampler *s;
    if (sl_sampler_create(&p, n, &s) != SL_OK || sl_sampler_set_dry_breakers(s, brk) != SL_OK) {
        sl_test_fail(__FILE__, __LINE__, "%s: %s", what, sl_last_error());
        return false;
    }
    probs_by_id(s, l, n, hist, n_hist, got);
    sl_sampler_destroy(s);
    for (int32_t i = 0; i < n; i++)
        if (fabs(got[i] - want[i] / sum) > 1e-5) {
            sl_test_fail(__FILE__, __LINE__, "%s: token %d has p %.6f, llama.cpp's test %.6f", what, i, got[i],
                         want[i] / sum);
            return false;
        }
    return true;
}

TEST(llamacpp_test_sampling_cases) {
    static const float up[4] = {0.1f, 0.2f, 0.3f, 0.4f}, down[4] = {0.4f, 0.3f, 0.2f, 0.1f};
    sl_sampler_params p;
    /* temperature, dynamic temperature at range 0 */
    p = plain(1.0f);
    CHECK(llama_case("temp 1", up, 4, p, NULL, 0, NULL, up));
    p = plain(0.0f);
    CHECK(llama_case("temp 0", up, 4, p, NULL, 0, NULL, (const float[]){0, 0, 0, 1}));
    p = plain(0.0f);
    p.dynatemp_exponent = 1;
    CHECK(llama_case("temp_ext 0", up, 4, p, NULL, 0, NULL, (const float[]){0, 0, 0, 1}));
    /* top-k, top-p, min-p */
    p = plain(1.0f);
    p.top_k = 1;
    CHECK(llama_case("top_k 1", up, 4, p, NULL, 0, NULL, (const float[]){0, 0, 0, 1}));
    p.top_k = 3;
    CHECK(llama_case("top_k 3", up, 4, p, NULL, 0, NULL, (const float[]){0, 0.22222f, 0.33333f, 0.44444f}));
    p.top_k = 4;
    CHECK(llama_case("top_k 4", up, 4, p, NULL, 0, NULL, up));
    p = plain(1.0f);
    p.top_p = 0.7f;
    CHECK(llama_case("top_p 0.7", up, 4, p, NULL, 0, NULL, (const float[]){0, 0, 0.428571f, 0.571429f}));
    p.top_p = 0.8f;
    CHECK(llama_case("top_p 0.8", up, 4, p, NULL, 0, NULL, (const float[]){0, 0.22222f, 0.33333f, 0.44444f}));
    /* one knob over a few values: min-p on `up`; XTC (probability 1 where the test's 0.99 drew a cut) on `down` */
    enum { MIN_P, XTC_T, N_SIGMA };
    static const struct {
        int knob;
        float v;
        float want[4];
    } one[] = {
        {MIN_P, 0.0f, {0.1f, 0.2f, 0.3f, 0.4f}}, {MIN_P, 0.24f, {0.1f, 0.2f, 0.3f, 0.4f}}, {MIN_P, 0.26f, {0, 0.2f, 0.3f, 0.4f}},
        {MIN_P, 0.49f, {0, 0.2f, 0.3f, 0.4f}},   {MIN_P, 0.51f, {0, 0, 0.3f, 0.4f}},          {MIN_P, 0.74f, {0, 0, 0.3f, 0.4f}},
        {MIN_P, 0.76f, {0, 0, 0, 0.4f}},         {MIN_P, 1.0f, {0, 0, 0, 0.4f}},
        {XTC_T, 0.09f, {0, 0, 0, 0.1f}},         {XTC_T, 0.19f, {0, 0, 0.2f, 0.1f}},          {XTC_T, 0.29f, {0, 0.3f, 0.2f, 0.1f}},
        {XTC_T, 0.39f, {0.4f, 0.3f, 0.2f, 0.1f}},
        {N_SIGMA, 1.0f, {0, 0, 0.428571f, 0.571429f}}, {N_SIGMA, 0.0f, {0.1f, 0.2f, 0.3f, 0.4f}},
        {N_SIGMA, 3.0f, {0.1f, 0.2f, 0.3f, 0.4f}},
    };
    static const char *const knob_name[] = {"min_p", "xtc", "top_n_sigma"};
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++) {
        p = plain(1.0f);
        if (one[i].knob == MIN_P) p.min_p = one[i].v;
        if (one[i].knob == XTC_T) p.xtc_probability = 1.0f, p.xtc_threshold = one[i].v;
        if (one[i].knob == N_SIGMA) p.top_n_sigma = one[i].v;
        CHECK(llama_case(knob_name[one[i].knob], one[i].knob == XTC_T ? down : up, 4, p, NULL, 0, NULL, one[i].want));
    }
    /* typical-p */
    p = plain(1.0f);
    p.typical_p = 0.5f;
    CHECK(llama_case("typical 1", (const float[]){0.97f, 0.01f, 0.01f, 0.01f}, 4, p, NULL, 0, NULL,
                     (const float[]){0.97f, 0, 0, 0}));
    CHECK(llama_case("typical 2", (const float[]){0.4f, 0.2f, 0.2f, 0.2f}, 4, p, NULL, 0, NULL,
                     (const float[]){0, 0.2f, 0.2f, 0.2f}));
    /* penalties over the whole history */
    static const float fifth[5] = {0.2f, 0.2f, 0.2f, 0.2f, 0.2f};
    static const int32_t h0[] = {0}, h012[] = {0, 1, 2}, h01200[] = {0, 1, 2, 0, 0};
    p = plain(1.0f);
    p.repeat_last_n = -1;
    p.repeat_penalty = 50.0f;
    CHECK(llama_case("repeat 1", fifth, 5, p, h0, 1, NULL, (const float[]){0, 0.25f, 0.25f, 0.25f, 0.25f}));
    CHECK(llama_case("repeat 2", fifth, 5, p, h012, 3, NULL, (const float[]){0, 0, 0, 0.5f, 0.5f}));
    CHECK(llama_case("repeat 3", fifth, 5, p, h01200, 5, NULL, (const float[]){0, 0, 0, 0.5f, 0.5f}));
    p.repeat_penalty = 1.0f;
    p.frequency_penalty = 5.0f;
    p.presence_penalty = 5.0f;
    CHECK(llama_case("freq 1", fifth, 5, p, h0, 1, NULL,
                     (const float[]){0.000011f, 0.249997f, 0.249997f, 0.249997f, 0.249997f}));
    CHECK(llama_case("freq 2", fifth, 5, p, h012, 3, NULL,
                     (const float[]){0.000023f, 0.000023f, 0.000023f, 0.499966f, 0.499966f}));
    CHECK(llama_case("freq 3", fifth, 5, p, h01200, 5, NULL,
                     (const float[]){0.000000f, 0.000023f, 0.000023f, 0.499977f, 0.499977f}));
    /* DRY */
    static const float quarter[4] = {0.25f, 0.25f, 0.25f, 0.25f};
    static const int32_t d1[] = {0, 1}, d2[] = {0, 1, 2, 0, 1}, d3[] = {0, 1, 3, 4, 0, 1}, d5[] = {0, 1, 2, 3, 4, 0, 1};
    int32_t head3 = 3, off3[2] = {0, 0};
    const sl_dry_breakers brk3 = {.n = 1, .head = &head3, .off = off3, .tail = NULL};
    p = plain(1.0f);
    p.dry_multiplier = 1.0f;
    p.dry_base = 1.1f;
    p.dry_allowed_length = 2;
    p.dry_penalty_last_n = 4;
    CHECK(llama_case("dry 1", quarter, 4, p, d1, 2, NULL, quarter));
    p.dry_penalty_last_n = 5;
    CHECK(llama_case("dry 2", quarter, 4, p, d2, 5, NULL, (const float[]){0.296923f, 0.296923f, 0.109232f, 0.296923f}));
    p.dry_penalty_last_n = 6;
    CHECK(llama_case("dry 3", fifth, 5, p, d3, 6, &brk3, fifth));
    p.dry_multiplier = 2.0f;
    p.dry_penalty_last_n = 5;
    CHECK(llama_case("dry 4", fifth, 5, p, d2, 5, NULL,
                     (const float[]){0.241818f, 0.241818f, 0.032727f, 0.241818f, 0.241818f}));
    p.dry_multiplier = 1.0f;
    p.dry_allowed_length = 4;
    p.dry_penalty_last_n = 7;
    CHECK(llama_case("dry 5", fifth, 5, p, d5, 7, NULL, fifth));
}

/* ---- an oracle for the general chain, from the definitions (full sorts, long double) ---- */

typedef struct oc {
    int32_t id;
    long double l;
} oc;
static int oc_rank(const void *a, const void *b) {
    const oc *x = a, *y = b;
    if (x->l != y->l) return x->l > y->l ? -1 : 1;
    return x->id < y->id ? -1 : 1;
}
static long double oracle_softmax(const oc *c, int32_t m, long double *pr) {
    long double z = 0, ent = 0;
    for (int32_t i = 0; i < m; i++) z += pr[i] = expl(c[i].l - c[0].l);
    for (int32_t i = 0; i < m; i++) {
        pr[i] /= z;
        if (pr[i] > 0) ent -= pr[i] * logl(pr[i]);
    }
    return ent;
}
static long double oracle_score[70000];
static int oc_score(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (oracle_score[x] != oracle_score[y]) return oracle_score[x] < oracle_score[y] ? -1 : 1;
    return x < y ? -1 : 1;
}

/* The stages top-n-sigma, typical-p, min-p, XTC (xtc_cut: whether its coin fell), temperature (dynamic), in
 * this order, on logits l (no penalties). Returns the count; c[0..m) in rank order, probabilities pr. */
static int32_t oracle_chain(const float *l, int32_t n, const sl_sampler_params *p, bool xtc_cut, oc *c, long double *pr) {
    static int32_t idx[70000];
    static oc tmp[70000];
    int32_t m = 0;
    long double mx = -INFINITY, sum = 0;
    for (int32_t i = 0; i < n; i++) mx = l[i] > mx ? l[i] : mx, sum += l[i];
    long double var = 0;
    for (int32_t i = 0; i < n; i++) var += (l[i] - sum / n) * (l[i] - sum / n);
    for (int32_t i = 0; i < n; i++)
        if (!(p->top_n_sigma > 0) || l[i] >= mx - p->top_n_sigma * sqrtl(var / n)) c[m++] = (oc){i, l[i]};
    qsort(c, (size_t)m, sizeof *c, oc_rank);
    if (p->typical_p < 1) {
        const long double ent = oracle_softmax(c, m, pr);
        for (int32_t i = 0; i < m; i++) oracle_score[i] = fabsl(-logl(pr[i]) - ent), idx[i] = i;
        qsort(idx, (size_t)m, sizeof *idx, oc_score);
        long double cum = 0;
        int32_t keep = m;
        for (int32_t i = 0; i < m; i++) {
            cum += pr[idx[i]];
            if (cum > p->typical_p && i + 1 >= p->min_keep) {
                keep = i + 1;
                break;
            }
        }
        for (int32_t i = 0; i < keep; i++) tmp[i] = c[idx[i]];
        m = keep;
        memcpy(c, tmp, sizeof *c * (size_t)m);
        qsort(c, (size_t)m, sizeof *c, oc_rank);
    }
    if (p->min_p > 0)
        for (int32_t i = 1; i < m; i++)
            if (expl(c[i].l - c[0].l) < p->min_p && i >= p->min_keep) {
                m = i;
                break;
            }
    if (xtc_cut && m >= 2) {
        oracle_softmax(c, m, pr);
        int32_t last = 0;
        while (last + 1 < m && pr[last + 1] >= p->xtc_threshold) last++;
        if (pr[0] < p->xtc_threshold) last = 0;
        if (last > 0 && m - last >= p->min_keep) {
            memmove(c, c + last, sizeof *c * (size_t)(m - last));
            m -= last;
        }
    }
    long double t = p->temperature;
    if (p->dynatemp_range > 0 && m > 1) {
        const long double lo = t - p->dynatemp_range > 0 ? t - p->dynatemp_range : 0, hi = t + p->dynatemp_range;
        t = lo + (hi - lo) * powl(oracle_softmax(c, m, pr) / logl((long double)m), p->dynatemp_exponent);
    }
    for (int32_t i = 0; i < m; i++) c[i].l /= t;
    oracle_softmax(c, m, pr);
    return m;
}

TEST(general_chain_matches_oracle_large_vocab) {
    enum { N = 50000 };
    static float l[N];
    static oc c[N];
    static long double pr[N];
    static double got[N];
    static const struct {
        float typical, nsigma, min_p, xtc_p, xtc_t, dyn, temp;
        int32_t min_keep;
    } cases[] = {
        {0.7f, 0, 0, 0, 0.1f, 0, 1.0f, 0},        {0.95f, 2.0f, 0, 0, 0.1f, 0, 0.7f, 0},
        {1.0f, 1.5f, 0.01f, 1.0f, 0.002f, 0, 1.3f, 0}, {0.5f, 0, 0.001f, 0, 0.1f, 0.5f, 0.9f, 5},
        {1.0f, 0, 0, 1.0f, 0.0001f, 0.3f, 1.0f, 3}, {0.2f, 3.0f, 0, 0, 0.1f, 0, 1.0f, 40},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        fill_logits(l, N, 1.0 + (double)k * 0.7, 100 + k);
        sl_sampler_params p = plain(cases[k].temp);
        p.typical_p = cases[k].typical;
        p.top_n_sigma = cases[k].nsigma;
        p.min_p = cases[k].min_p;
        p.xtc_probability = cases[k].xtc_p;
        p.xtc_threshold = cases[k].xtc_t;
        p.dynatemp_range = cases[k].dyn;
        p.min_keep = cases[k].min_keep;
        sl_sampler *s;
        CHECK_OK(sl_sampler_create(&p, N, &s));
        probs_by_id(s, l, N, NULL, 0, got);
        sl_sampler_destroy(s);
        const int32_t m = oracle_chain(l, N, &p, cases[k].xtc_p > 0, c, pr);
        int32_t n_got = 0;
        for (int32_t i = 0; i < N; i++) n_got += got[i] > 0;
        CHECK_MSG(n_got == m, "case %zu: %d candidates, oracle %d", k, n_got, m);
        for (int32_t i = 0; i < m; i++)
            if (fabs(got[c[i].id] - (double)pr[i]) > 1e-9 + 1e-6 * (double)pr[i]) {
                CHECK_MSG(false, "case %zu: token %d p %.12g, oracle %.12g", k, c[i].id, got[c[i].id], (double)pr[i]);
                break;
            }
    }
}

/* A custom order runs only the stages it names, in that order: top-k after top-p differs from before it. */
TEST(custom_order) {
    const float l[6] = {5, 4, 3, 2, 1, 0};
    sl_sampler_params p = plain(1.0f);
    p.top_k = 2;
    p.top_p = 0.5f;
    p.custom_order = true;
    p.n_stages = 0; /* nothing: the softmax of the raw logits (no temperature either) */
    p.temperature = 5.0f;
    sl_sampler *s;
    double got[6];
    CHECK_OK(sl_sampler_create(&p, 6, &s));
    probs_by_id(s, l, 6, NULL, 0, got);
    CHECK(fabs(got[5] - 1 / (exp(5) + exp(4) + exp(3) + exp(2) + exp(1) + 1)) < 1e-12);
    sl_sampler_destroy(s);
    p.n_stages = 2;
    p.stages[0] = SL_SAMP_TEMPERATURE; /* flatter first: top-p keeps more, top-k cuts to 2 ... */
    p.stages[1] = SL_SAMP_TOP_P;
    CHECK_OK(sl_sampler_create(&p, 6, &s));
    probs_by_id(s, l, 6, NULL, 0, got);
    int n_kept = 0;
    for (int i = 0; i < 6; i++) n_kept += got[i] > 0;
    CHECK_EQ_INT(n_kept, 3); /* at temperature 5: 0.29, 0.24, 0.19 reach 0.5 with three */
    sl_sampler_destroy(s);
    p.stages[0] = SL_SAMP_TOP_P; /* ... while top-p first at temperature 1 keeps one */
    p.stages[1] = SL_SAMP_TEMPERATURE;
    CHECK_OK(sl_sampler_create(&p, 6, &s));
    probs_by_id(s, l, 6, NULL, 0, got);
    CHECK(got[0] == 1.0);
    sl_sampler_destroy(s);
    /* with temperature 0 in the chain, typical-p's set decides what the best is (it may drop the most likely) */
    p = plain(0.0f);
    p.typical_p = 0.5f;
    CHECK_OK(sl_sampler_create(&p, 4, &s));
    const float lt[4] = {logf(0.4f), logf(0.2f), logf(0.2f), logf(0.2f)};
    CHECK_EQ_INT(sl_sampler_sample(s, lt, NULL, 0, 0, 0), 1);
    sl_sampler_destroy(s);
}

/* Mirostat from its definition: v2 keeps the tokens of surprise (-log2 p, at the temperature) up to mu and
 * mu moves by eta times the drawn token's surprise (over the kept ones) minus tau; v1 keeps the k of the
 * Zipf estimate, exact on Zipfian logits. Both start at 2 tau. */
TEST(mirostat_definitions) {
    enum { N = 2000 };
    static float l[N];
    static double by_id[N];
    fill_logits(l, N, 2.0, 77);
    sl_sampler_params p = plain(0.9f);
    p.mirostat = 2;
    p.mirostat_tau = 3.0f;
    p.mirostat_eta = 0.3f;
    sl_sampler *s;
    CHECK_OK(sl_sampler_create(&p, N, &s));
    CHECK(sl_sampler_mirostat_mu(s) == 6.0f);
    for (int step = 0; step < 30; step++) {
        const float mu = sl_sampler_mirostat_mu(s);
        /* the reference set: softmax at 0.9 over all, keep the ranked prefix of surprise <= mu (at least 1) */
        long double z = 0, mx = -INFINITY;
        for (int32_t i = 0; i < N; i++) mx = l[i] > mx ? l[i] : mx;
        for (int32_t i = 0; i < N; i++) z += expl(((long double)l[i] - mx) / 0.9L);
        int32_t kept = 0;
        long double zk = 0;
        for (int32_t i = 0; i < N; i++) {
            const long double q = expl(((long double)l[i] - mx) / 0.9L) / z;
            if (-log2l(q) <= mu) kept++, zk += q;
        }
        probs_by_id(s, l, N, NULL, 0, by_id);
        int32_t n_got = 0;
        for (int32_t i = 0; i < N; i++) n_got += by_id[i] > 0;
        CHECK_EQ_INT(n_got, kept > 0 ? kept : 1);
        CHECK(sl_sampler_mirostat_mu(s) == mu); /* (inspection moves nothing) */
        const int32_t t = sl_sampler_sample(s, l, NULL, 0, 5, (uint64_t)step);
        CHECK(t >= 0 && by_id[t] > 0);
        const double want = mu - 0.3 * (-log2(by_id[t]) - 3.0);
        CHECK_MSG(fabs(sl_sampler_mirostat_mu(s) - want) < 1e-4, "step %d: mu %g, want %g", step,
                  (double)sl_sampler_mirostat_mu(s), want);
        for (int32_t i = 0; i < N; i++) l[i] += (float)(i % 7) * 0.01f; /* (the next step's logits) */
    }
    sl_sampler_destroy(s);
    /* replaying a draw moves mu alike */
    sl_sampler *r;
    CHECK_OK(sl_sampler_create(&p, N, &r));
    CHECK_OK(sl_sampler_create(&p, N, &s));
    const int32_t t = sl_sampler_sample(s, l, NULL, 0, 5, 0);
    CHECK(sl_sampler_mirostat_observe(r, l, NULL, 0, t));
    CHECK(sl_sampler_mirostat_mu(r) == sl_sampler_mirostat_mu(s));
    sl_sampler_destroy(r);
    sl_sampler_destroy(s);
    /* v1 on Zipfian logits: p_i ∝ 1 / i^1.2, so s_hat = 1.2 and k = (eps 2^mu / (1 - N^-eps))^(1 / s_hat) */
    for (int32_t i = 0; i < N; i++) l[i] = (float)(-1.2 * log((double)(i + 1)));
    p = plain(1.0f);
    p.mirostat = 1;
    p.mirostat_tau = 4.0f;
    CHECK_OK(sl_sampler_create(&p, N, &s));
    const double eps = 0.2, k = pow(eps * pow(2.0, 8.0) / (1 - pow((double)N, -eps)), 1 / 1.2);
    probs_by_id(s, l, N, NULL, 0, by_id);
    int32_t n_got = 0;
    for (int32_t i = 0; i < N; i++) n_got += by_id[i] > 0;
    CHECK_MSG(n_got == (int32_t)k, "v1 keeps %d, the estimate gives %g", n_got, k);
    CHECK(by_id[0] > 0 && by_id[n_got - 1] > 0);
    sl_sampler_destroy(s);
    /* mirostat leaves the penalties out, as llama.cpp's chain does */
    p.repeat_penalty = 100.0f;
    p.repeat_last_n = -1;
    CHECK_OK(sl_sampler_create(&p, N, &s));
    const int32_t h[1] = {0};
    probs_by_id(s, l, N, h, 1, by_id);
    CHECK(by_id[0] > by_id[1]);
    sl_sampler_destroy(s);
}

/* DRY's breakers from strings, checked token by token against the definition: a token whose text holds the
 * string breaks alone; one whose text ends with a proper beginning of it heads the rest, tokenized. */
TEST(dry_breakers_from_a_vocabulary) {
    const char *path = sl_test_shared("golden/tokenizer/ggml-vocab-llama-spm.gguf");
    if (!path) return;
    sl_gguf *g = NULL;
    sl_tokenizer *tok = NULL;
    CHECK_OK(sl_gguf_open(path, &g));
    CHECK_OK(sl_tokenizer_create(g, &tok));
    sl_gguf_close(g);
    static const char *const strs[2] = {"\n", "###"};
    const size_t lens[2] = {1, 3};
    sl_dry_breakers *b = NULL;
    CHECK_OK(sl_dry_breakers_build(tok, strs, lens, 2, &b));
    /* what the definition gives: per token, one entry if it holds either string, one per split of "###" */
    int32_t want_alone = 0, want_headed = 0, alone = 0, headed = 0;
    for (int32_t id = 0; id < sl_tokenizer_n_vocab(tok); id++) {
        char piece[512];
        const int64_t len = sl_token_to_piece(tok, id, true, piece, sizeof piece);
        if (len <= 0 || len >= (int64_t)sizeof piece) continue;
        const bool hash = memmem(piece, (size_t)len, "###", 3) != NULL;
        want_alone += memchr(piece, '\n', (size_t)len) || hash;
        if (!hash) want_headed += (piece[len - 1] == '#') + (len >= 2 && !memcmp(piece + len - 2, "##", 2));
    }
    for (int32_t i = 0; i < b->n; i++) {
        CHECK(i == 0 || b->head[i] >= b->head[i - 1]);
        char piece[512];
        const int64_t len = sl_token_to_piece(tok, b->head[i], true, piece, sizeof piece);
        if (b->off[i + 1] == b->off[i]) {
            alone++;
            CHECK(memchr(piece, '\n', (size_t)len) || memmem(piece, (size_t)len, "###", 3));
            continue;
        }
        headed++;
        /* the tail is the tokens of "###" after what the piece ends with: "#" or "##" */
        bool found = false;
        for (size_t k = 1; k <= 2 && !found; k++) {
            if ((size_t)len < k || memcmp(piece + len - (int64_t)k, "##", k) != 0) continue;
            int32_t *ids = NULL;
            size_t n_ids = 0;
            CHECK_OK(sl_tokenize(tok, "###" + k, 3 - k, false, false, &ids, &n_ids));
            found = (int32_t)n_ids == b->off[i + 1] - b->off[i] && !memcmp(ids, b->tail + b->off[i], n_ids * sizeof *ids);
            sl_free(ids);
        }
        CHECK_MSG(found, "sequence %d (head %d, '%.*s'): no split of \"###\" gives its tail", i, b->head[i], (int)len,
                  piece);
    }
    CHECK_MSG(alone == want_alone && want_alone > 0, "%d alone, %d tokens hold a breaker", alone, want_alone);
    CHECK_MSG(headed == want_headed && headed > 0, "%d headed, the definition gives %d", headed, want_headed);
    sl_dry_breakers_free(b);
    /* an empty string is refused */
    static const char *const empty[1] = {""};
    const size_t zero[1] = {0};
    CHECK(sl_dry_breakers_build(tok, empty, zero, 1, &b) == SL_ERR_INVALID && b == NULL);
    sl_tokenizer_destroy(tok);
}

/* ---- logprobs ----------------------------------------------------------------- */

TEST(logprobs_top_normalized_and_ordered) {
    enum { N = 1000 };
    static float l[N];
    static int32_t ids[N];
    static float lp[N];
    fill_logits(l, N, 4.0, 21);
    for (int i = 0; i < N; i++) l[i] = roundf(l[i] * 8) / 8 + 1000.0f; /* large, with ties */
    long double mx = l[0], z = 0;
    for (int i = 1; i < N; i++)
        if (l[i] > mx) mx = l[i];
    for (int i = 0; i < N; i++) z += expl((long double)l[i] - mx);
    long double lse = mx + logl(z);
    float chosen_lp = 0;
    CHECK_EQ_INT(sl_logprobs_top(l, N, N + 5, ids, lp, 17, &chosen_lp), N);
    double sum = 0;
    for (int i = 0; i < N; i++) {
        sum += exp(lp[i]);
        CHECK_NEAR(lp[i], (double)((long double)l[ids[i]] - lse), 1e-5);
        if (i > 0) {
            CHECK_MSG(lp[i] <= lp[i - 1], "not ordered at %d: %g after %g", i, lp[i], lp[i - 1]);
            if (l[ids[i]] == l[ids[i - 1]]) CHECK_MSG(ids[i] > ids[i - 1], "tie order at %d", i);
            CHECK(l[ids[i]] <= l[ids[i - 1]]);
        }
    }
    CHECK_NEAR(sum, 1.0, 1e-5);
    CHECK_NEAR(chosen_lp, (double)((long double)l[17] - lse), 1e-5);
    /* the top 5 are the first 5 of the full list */
    int32_t ids5[5];
    float lp5[5];
    CHECK_EQ_INT(sl_logprobs_top(l, N, 5, ids5, lp5, -1, &chosen_lp), 5);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ_INT(ids5[i], ids[i]);
        CHECK(lp5[i] == lp[i]);
    }
    CHECK(isinf(chosen_lp) && chosen_lp < 0);
    CHECK_EQ_INT(sl_logprobs_top(l, N, 0, NULL, NULL, 0, NULL), 0);
}

TEST(logprobs_top_ties_and_nan) {
    const float l[4] = {1.0f, NAN, 1.0f, 1.0f};
    int32_t ids[4];
    float lp[4];
    float c;
    CHECK_EQ_INT(sl_logprobs_top(l, 4, 4, ids, lp, 1, &c), 4);
    CHECK(ids[0] == 0 && ids[1] == 2 && ids[2] == 3 && ids[3] == 1);
    for (int i = 0; i < 3; i++) CHECK_NEAR(lp[i], -log(3.0), 1e-6);
    CHECK(isinf(lp[3]) && lp[3] < 0);
    CHECK(isinf(c) && c < 0);
}

/* llama.cpp's infill stage (samplers ["top_k", "infill"], top-k 3 over the Llama 2 vocabulary; the three
 * candidates' probabilities set by their logits, every other token far below): the end-of-generation token
 * alone when it outweighs a third of the text per candidate; " th" takes " the"'s probability (its text starts
 * the other's) and " dog" then falls under 0.2; of three text tokens at 0.45 / 0.33 / 0.22 the last falls under
 * 1 / 4; six even ones all fall under 0.2, leaving EOT (this vocabulary's EOS) alone. */
TEST(infill_stage) {
    const char *path = sl_test_shared("golden/tokenizer/ggml-vocab-llama-spm.gguf");
    CHECK(path);
    sl_gguf *g = NULL;
    sl_tokenizer *tok = NULL;
    CHECK_OK(sl_gguf_open(path, &g));
    CHECK_OK(sl_tokenizer_create(g, &tok));
    sl_gguf_close(g);
    const int32_t nv = sl_tokenizer_n_vocab(tok), eos = sl_tokenizer_eos(tok);
    const int32_t end = sl_tokenizer_eot(tok) >= 0 ? sl_tokenizer_eot(tok) : eos;
#define ID(t) sl_tokenizer_find(tok, t, strlen(t))
    const int32_t th = ID("\xe2\x96\x81" "th"), the = ID("\xe2\x96\x81" "the"), dog = ID("\xe2\x96\x81" "dog"),
                  cat = ID("\xe2\x96\x81" "cat"), tree = ID("\xe2\x96\x81" "tree"), sun = ID("\xe2\x96\x81" "sun"),
                  box = ID("\xe2\x96\x81" "box"), red = ID("\xe2\x96\x81" "red");
#undef ID
    CHECK(th >= 0 && the >= 0 && dog >= 0 && cat >= 0 && tree >= 0 && sun >= 0 && box >= 0 && red >= 0 && eos >= 0);
    sl_sampler_params p = plain(1.0f);
    p.top_k = 3;
    p.custom_order = true;
    p.n_stages = 2;
    p.stages[0] = SL_SAMP_TOP_K;
    p.stages[1] = SL_SAMP_INFILL;
    sl_sampler *s = NULL;
    CHECK_OK(sl_sampler_create(&p, nv, &s));
    CHECK_OK(sl_sampler_set_infill(s, tok));
    float *l = malloc(sizeof(float) * (size_t)nv);
    const struct {
        int32_t ids[6];
        double p[6];
        int n;
        int32_t want[3];
        int n_want;
    } cases[] = {
        {{eos, dog, cat}, {0.2, 0.5, 0.3}, 3, {eos}, 1},          /* 3 * 0.2 * 3 > 0.8 */
        {{th, the, dog}, {0.42, 0.40, 0.18}, 3, {th}, 1},         /* merged: 0.82, dog under 0.2 */
        {{dog, cat, tree}, {0.45, 0.33, 0.22}, 3, {dog, cat}, 2}, /* then 0.22 < 1/4 */
        {{dog, cat, tree, sun, box, red}, {1 / 6.0, 1 / 6.0, 1 / 6.0, 1 / 6.0, 1 / 6.0, 1 / 6.0}, 6, {end}, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        for (int32_t i = 0; i < nv; i++) l[i] = -40.0f;
        for (int i = 0; i < cases[k].n; i++) l[cases[k].ids[i]] = (float)log(cases[k].p[i]);
        p.top_k = cases[k].n;
        sl_sampler_destroy(s);
        s = NULL;
        CHECK_OK(sl_sampler_create(&p, nv, &s));
        CHECK_OK(sl_sampler_set_infill(s, tok));
        const int32_t *ids;
        const double *probs;
        const int32_t m = sl_sampler_candidates(s, l, NULL, 0, &ids, &probs);
        bool ok = m == cases[k].n_want;
        for (int i = 0; ok && i < m; i++) ok = ids[i] == cases[k].want[i];
        CHECK_MSG(ok, "case %zu: %d candidates, the first %d", k, (int)m, m > 0 ? (int)ids[0] : -1);
    }
    free(l);
    sl_sampler_destroy(s);
    sl_tokenizer_destroy(tok);
}

/*
 * test_rng.c — Philox4x32-10 against Random123's published known-answer
 * vectors (kat_vectors: philox4x32 10 rounds), and sanity statistics of the
 * uniform derived from it.
 */
#include "harness.h"

#include "core/rng.h"

/* One KAT line: counter words c0..c3, key words k0,k1, expected out0..out3. */
struct kat {
    uint32_t ctr[4], key[2], out[4];
};

static const struct kat kats[] = {
    {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

TEST(philox_known_answers) {
    for (size_t i = 0; i < sizeof kats / sizeof kats[0]; i++) {
        const struct kat *t = &kats[i];
        uint64_t key = ((uint64_t)t->key[1] << 32) | t->key[0];
        uint64_t lo = ((uint64_t)t->ctr[1] << 32) | t->ctr[0];
        uint64_t hi = ((uint64_t)t->ctr[3] << 32) | t->ctr[2];
        uint32_t out[4];
        sl_philox4x32(key, hi, lo, out);
        for (int w = 0; w < 4; w++)
            CHECK_MSG(out[w] == t->out[w], "kat %zu word %d: got 0x%08x want 0x%08x", i, w, out[w], t->out[w]);
    }
}

TEST(uniform_uses_first_two_words) {
    /* seed 0, stream 0, counter 0 is the all-zero KAT: (w0:w1) >> 11 scaled by 2^-53 */
    double want = (double)((((uint64_t)0x6627e8d5u << 32) | 0xe169c58du) >> 11) / 9007199254740992.0;
    CHECK(sl_rng_uniform(0, 0, 0) == want);
    /* all-ones KAT: seed = key, stream = ctr_hi, counter = ctr_lo */
    want = (double)((((uint64_t)0x408f276du << 32) | 0x41c83b0eu) >> 11) / 9007199254740992.0;
    CHECK(sl_rng_uniform(UINT64_MAX, UINT64_MAX, UINT64_MAX) == want);
}

TEST(uniform_mean_variance_range) {
    const int n = 1000000;
    double sum = 0, sum2 = 0, lo = 1, hi = 0;
    int buckets[16] = {0};
    for (int i = 0; i < n; i++) {
        double u = sl_rng_uniform(42, 7, (uint64_t)i);
        CHECK_MSG(u >= 0.0 && u < 1.0, "draw %d out of [0,1): %.17g", i, u);
        sum += u;
        sum2 += u * u;
        if (u < lo) lo = u;
        if (u > hi) hi = u;
        buckets[(int)(u * 16)]++;
    }
    double mean = sum / n, var = sum2 / n - mean * mean;
    /* standard error of the mean: sqrt(1/12/n) ~ 2.9e-4; allow > 5 sigma */
    CHECK_NEAR(mean, 0.5, 0.0015);
    CHECK_NEAR(var, 1.0 / 12.0, 0.001);
    CHECK(lo < 1e-4);
    CHECK(hi > 1 - 1e-4);
    /* chi-square over 16 equal buckets, 15 dof: 99.9% quantile is 37.7 */
    double chi2 = 0, e = n / 16.0;
    for (int b = 0; b < 16; b++) chi2 += (buckets[b] - e) * (buckets[b] - e) / e;
    CHECK_MSG(chi2 < 37.7, "chi2 = %.2f over 16 buckets", chi2);
}

TEST(streams_seeds_counters_differ) {
    /* different streams, seeds and counters give unrelated values */
    int same_stream = 0, same_seed = 0;
    double corr = 0;
    const int n = 10000;
    for (int i = 0; i < n; i++) {
        double a = sl_rng_uniform(1, 0, (uint64_t)i);
        double b = sl_rng_uniform(1, 1, (uint64_t)i);
        double c = sl_rng_uniform(2, 0, (uint64_t)i);
        same_stream += a == b;
        same_seed += a == c;
        corr += (a - 0.5) * (b - 0.5);
    }
    CHECK_EQ_INT(same_stream, 0);
    CHECK_EQ_INT(same_seed, 0);
    /* correlation coefficient of streams 0 and 1: |r| < 5 / sqrt(n) */
    double r = corr / n * 12.0;
    CHECK_MSG(fabs(r) < 0.05, "stream correlation %.4f", r);
    /* a pure function: same inputs, same value */
    CHECK(sl_rng_uniform(9, 3, 12345) == sl_rng_uniform(9, 3, 12345));
    CHECK(sl_rng_uniform(9, 3, 12345) != sl_rng_uniform(9, 3, 12346));
}

/*
 * test_ring.c — property tests of the consistent-hash ring (src/router/ring.c):
 * random member sets and operation sequences with the invariants checked after
 * every step — key movement on add/remove within 1/N ± 5 points, movement only
 * to/from the member that changed, rejection equal to removal, independence of
 * member order, balance, bounded loads. The hash is checked against values
 * computed by an independent Python transcription of splitmix64's finalizer.
 */
#include "harness.h"

#include "router/hash.h"
#include "router/ring.h"

#include <stdlib.h>

/* xorshift64*: the tests' own generator, independent of the code under test */
static uint64_t rnd(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dULL;
}

static void make_ids(uint64_t *s, int n, char ids[][32], const char **ptrs) {
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], 32, "http://10.%d.%d.%d:%d", (int)(rnd(s) % 256), (int)(rnd(s) % 256), (int)(rnd(s) % 256),
                 1024 + (int)(rnd(s) % 60000));
        ptrs[i] = ids[i];
    }
}

TEST(hash_known_values) {
    /* from an independent Python transcription of the definition in hash.h */
    CHECK(sl_mix64(1) == 0x5692161d100b05e5ULL);
    CHECK(sl_mix64(0x0123456789abcdefULL) == 0xb2c058e4ebb5112cULL);
    CHECK(sl_hash64("session-42", 10, 7) == 0xd84018fc500d1d75ULL);
    CHECK(sl_hash64("abcdefgh", 8, 0) == 0x76f9d67f9b766fcdULL);
}

TEST(errors_and_empty) {
    sl_ring *r = NULL;
    const char *ids[] = {"a", "b", "a"};
    CHECK(sl_ring_create(ids, 3, 128, &r) == SL_ERR_INVALID);
    CHECK(strstr(sl_last_error(), "'a' given twice") != NULL);
    CHECK(sl_ring_create(ids, 2, 0, &r) == SL_ERR_INVALID);
    CHECK(strstr(sl_last_error(), "vnodes is 0") != NULL);
    CHECK_OK(sl_ring_create(ids, 0, 128, &r));
    CHECK_EQ_INT(sl_ring_pick(r, 42, NULL, NULL), -1);
    sl_ring_destroy(r);
    CHECK_OK(sl_ring_create(ids, 2, 128, &r));
    CHECK(sl_ring_pick(r, 42, NULL, NULL) >= 0);
    sl_ring_destroy(r);
    sl_ring_destroy(NULL);
}

static bool reject_none(void *ctx, int m) {
    (void)ctx;
    (void)m;
    return true;
}

#define NKEYS 20000

/* Adding one member to N moves ~1/(N+1) of the keys, all of them to the new member. */
TEST(add_moves_about_1_over_n) {
    uint64_t s = 0x1234567;
    double worst = 0;
    for (int t = 0; t < 40; t++) {
        int n = 3 + (int)(rnd(&s) % 22);
        char ids[32][32];
        const char *p[32];
        make_ids(&s, n + 1, ids, p);
        sl_ring *a, *b;
        CHECK_OK(sl_ring_create(p, n, 128, &a));
        CHECK_OK(sl_ring_create(p, n + 1, 128, &b));
        int moved = 0;
        for (int k = 0; k < NKEYS; k++) {
            uint64_t key = rnd(&s);
            int x = sl_ring_pick(a, key, NULL, NULL), y = sl_ring_pick(b, key, reject_none, NULL);
            if (x != y) {
                CHECK_MSG(y == n, "trial %d: key moved from %d to %d, not to the new member %d", t, x, y, n);
                moved++;
            }
        }
        double frac = (double)moved / NKEYS, want = 1.0 / (n + 1);
        if (fabs(frac - want) > worst) worst = fabs(frac - want);
        CHECK_MSG(fabs(frac - want) <= 0.05, "trial %d: N %d -> %d moved %.4f of the keys, expected %.4f +- 0.05", t, n,
                  n + 1, frac, want);
        sl_ring_destroy(a);
        sl_ring_destroy(b);
    }
    printf("  add: worst |moved - 1/N| = %.4f\n", worst);
}

/* Removing one member moves exactly the keys it held: ~1/N of them. */
TEST(remove_moves_about_1_over_n) {
    uint64_t s = 0xabcdef;
    double worst = 0;
    for (int t = 0; t < 40; t++) {
        int n = 3 + (int)(rnd(&s) % 22);
        char ids[32][32];
        const char *p[32], *q[32];
        make_ids(&s, n, ids, p);
        int gone = (int)(rnd(&s) % (uint64_t)n), k2 = 0;
        for (int i = 0; i < n; i++)
            if (i != gone) q[k2++] = p[i];
        sl_ring *a, *b;
        CHECK_OK(sl_ring_create(p, n, 128, &a));
        CHECK_OK(sl_ring_create(q, n - 1, 128, &b));
        int moved = 0;
        for (int k = 0; k < NKEYS; k++) {
            uint64_t key = rnd(&s);
            const char *x = sl_ring_member_id(a, sl_ring_pick(a, key, NULL, NULL));
            const char *y = sl_ring_member_id(b, sl_ring_pick(b, key, NULL, NULL));
            if (strcmp(x, y) != 0) {
                CHECK_MSG(x == p[gone] || !strcmp(x, p[gone]), "trial %d: key moved from %s (not the removed one)", t, x);
                moved++;
            } else {
                CHECK(strcmp(x, p[gone]) != 0);
            }
        }
        double frac = (double)moved / NKEYS, want = 1.0 / n;
        if (fabs(frac - want) > worst) worst = fabs(frac - want);
        CHECK_MSG(fabs(frac - want) <= 0.05, "trial %d: N %d -> %d moved %.4f, expected %.4f +- 0.05", t, n, n - 1,
                  frac, want);
        sl_ring_destroy(a);
        sl_ring_destroy(b);
    }
    printf("  remove: worst |moved - 1/N| = %.4f\n", worst);
}

typedef struct rejset {
    const bool *rejected;
    int calls;
} rejset;

static bool accept_set(void *ctx, int m) {
    rejset *r = ctx;
    r->calls++;
    return !r->rejected[m];
}

/* Random sequences of add / remove / reject / re-admit; after every step the
 * ring with rejections answers like a ring built from the accepted ids alone,
 * never answers a rejected member, and does not depend on the member order. */
TEST(random_ops_reject_equals_remove) {
    uint64_t s = 0x77;
    char pool[64][32];
    const char *pp[64];
    make_ids(&s, 64, pool, pp);
    bool in[64] = {false}, rej[64] = {false};
    for (int i = 0; i < 5; i++) in[i] = true;
    for (int step = 0; step < 150; step++) {
        int i = (int)(rnd(&s) % 64);
        switch (rnd(&s) % 4) {
        case 0: in[i] = true; break;
        case 1: in[i] = false; break;
        case 2: rej[i] = true; break;
        default: rej[i] = false; break;
        }
        const char *all[64], *acc[64], *shuf[64];
        bool r_all[64];
        int n = 0, na = 0;
        for (int k = 0; k < 64; k++)
            if (in[k]) {
                r_all[n] = rej[k];
                all[n++] = pp[k];
                if (!rej[k]) acc[na++] = pp[k];
            }
        for (int k = 0; k < n; k++) shuf[k] = all[n - 1 - k];
        bool r_shuf[64];
        for (int k = 0; k < n; k++) r_shuf[k] = r_all[n - 1 - k];
        sl_ring *ra, *rb, *rs;
        CHECK_OK(sl_ring_create(all, n, 64, &ra));
        CHECK_OK(sl_ring_create(acc, na, 64, &rb));
        CHECK_OK(sl_ring_create(shuf, n, 64, &rs));
        for (int k = 0; k < 300; k++) {
            uint64_t key = rnd(&s);
            rejset c1 = {r_all, 0}, c2 = {r_shuf, 0};
            int x = sl_ring_pick(ra, key, accept_set, &c1);
            int y = sl_ring_pick(rb, key, NULL, NULL);
            int z = sl_ring_pick(rs, key, accept_set, &c2);
            CHECK_MSG(c1.calls <= n, "accept called %d times for %d members", c1.calls, n);
            if (na == 0) {
                CHECK_EQ_INT(x, -1);
                CHECK_EQ_INT(z, -1);
                continue;
            }
            CHECK_MSG(x >= 0 && !r_all[x], "step %d: picked %d, rejected or none", step, x);
            CHECK_STR(sl_ring_member_id(ra, x), sl_ring_member_id(rb, y));
            CHECK_STR(sl_ring_member_id(ra, x), sl_ring_member_id(rs, z));
        }
        sl_ring_destroy(ra);
        sl_ring_destroy(rb);
        sl_ring_destroy(rs);
    }
}

/* Each member's share of keys is close to 1/N with the default 128 vnodes. */
TEST(balance) {
    uint64_t s = 0x5eed;
    int ns[] = {2, 3, 5, 10, 20};
    double worst = 0;
    for (int t = 0; t < 5; t++) {
        for (int rep = 0; rep < 4; rep++) {
            int n = ns[t];
            char ids[32][32];
            const char *p[32];
            make_ids(&s, n, ids, p);
            sl_ring *r;
            CHECK_OK(sl_ring_create(p, n, 128, &r));
            int cnt[32] = {0};
            const int K = 100000;
            for (int k = 0; k < K; k++) cnt[sl_ring_pick(r, rnd(&s), NULL, NULL)]++;
            for (int i = 0; i < n; i++) {
                double dev = (double)cnt[i] * n / K - 1.0;
                if (fabs(dev) > worst) worst = fabs(dev);
                CHECK_MSG(fabs(dev) <= 0.10, "N %d: member %d has %.3f of the keys (%.1f%% from even)", n, i,
                          (double)cnt[i] / K, dev * 100);
            }
            sl_ring_destroy(r);
        }
    }
    printf("  balance: worst member share %.1f%% from 1/N\n", worst * 100);
}

typedef struct loads {
    const int64_t *load;
    int64_t cap;
} loads;

static bool under_cap(void *ctx, int m) {
    const loads *l = ctx;
    return l->load[m] < l->cap;
}

/* Bounded loads: random arrivals (few hot keys) and departures; no member ever
 * carries more than ceil(factor × mean) after an arrival. */
TEST(bounded_loads) {
    uint64_t s = 0xb0b;
    for (int t = 0; t < 20; t++) {
        int n = 2 + (int)(rnd(&s) % 12);
        double factor = 1.05 + (double)(rnd(&s) % 100) / 100.0;
        char ids[16][32];
        const char *p[16];
        make_ids(&s, n, ids, p);
        sl_ring *r;
        CHECK_OK(sl_ring_create(p, n, 128, &r));
        int64_t load[16] = {0}, total = 0;
        int owner[4096], n_live = 0;
        uint64_t hot[3] = {rnd(&s), rnd(&s), rnd(&s)};
        for (int step = 0; step < 3000; step++) {
            if (n_live > 0 && (rnd(&s) % 3 == 0 || n_live == 4096)) {
                int k = (int)(rnd(&s) % (uint64_t)n_live);
                load[owner[k]]--;
                total--;
                owner[k] = owner[--n_live];
                continue;
            }
            uint64_t key = rnd(&s) % 4 ? hot[rnd(&s) % 3] : rnd(&s); /* mostly three hot sessions */
            loads l = {load, sl_ring_load_cap(total, n, factor)};
            int m = sl_ring_pick(r, key, under_cap, &l);
            CHECK_MSG(m >= 0, "no member under the cap %lld (total %lld, n %d)", (long long)l.cap, (long long)total, n);
            load[m]++;
            total++;
            owner[n_live++] = m;
            double mean = (double)total / n;
            CHECK_MSG((double)load[m] <= ceil(factor * mean - 1e-9),
                      "member %d carries %lld > ceil(%.2f x mean %.2f)", m, (long long)load[m], factor, mean);
        }
        sl_ring_destroy(r);
    }
}

TEST(load_cap) {
    CHECK_EQ_INT(sl_ring_load_cap(0, 4, 1.25), 1);
    CHECK_EQ_INT(sl_ring_load_cap(7, 4, 1.25), 3);   /* 1.25 * 8 / 4 = 2.5 -> 3 */
    CHECK_EQ_INT(sl_ring_load_cap(99, 10, 1.25), 13); /* 12.5 -> 13 */
    CHECK_EQ_INT(sl_ring_load_cap(5, 0, 1.25), 0);
}

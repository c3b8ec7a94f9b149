/*
 * test_kvmgr.c — the KV block manager: pool spec parsing, prefix reuse,
 * FIFO vs LRU eviction order, pool isolation, and a property test of random
 * operation sequences with the invariants checked after every step —
 * including that a block reused through the prefix index holds exactly the
 * reusing sequence's tokens up to its end (a key that ignored one token
 * fails it within ~100 steps).
 */
#include "harness.h"

#include "server/kvmgr.h"

#include <stdlib.h>

static const uint8_t SALT[SL_KVM_HASH] = {1, 2, 3};

TEST(kvm_parse_pools) {
    sl_kvm_pool_cfg p[SL_KVM_MAX_POOLS];
    int n;
    CHECK_OK(sl_kvm_parse_pools("short:<=2048:30%:fifo,long:70%:lru", p, &n));
    CHECK_EQ_INT(n, 2);
    CHECK_STR(p[0].name, "short");
    CHECK_EQ_INT(p[0].max_ctx, 2048);
    CHECK_NEAR(p[0].share, 0.3, 1e-12);
    CHECK(!p[0].lru);
    CHECK_STR(p[1].name, "long");
    CHECK_EQ_INT(p[1].max_ctx, 0);
    CHECK(p[1].lru);
    CHECK_OK(sl_kvm_parse_pools("all:100%", p, &n));
    CHECK_EQ_INT(n, 1);
    CHECK(p[0].lru);
    const char *bad[] = {"", "a:50%", "a:<=10:50%,b:40%", "a:<=0:50%,b:50%", "a:x:100%", "a:<=100:50%,b:<=50:50%",
                         "a:50%,b:<=10:50%", "a:<=10:fifo,b:100%", "a:150%"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_status st = sl_kvm_parse_pools(bad[i], p, &n);
        CHECK_MSG(st == SL_ERR_INVALID && strstr(sl_last_error(), "--kv-pools"), "'%s' accepted (%s)", bad[i],
                  sl_last_error());
    }
}

static void fill_tokens(int32_t *t, int n, int seed) {
    for (int i = 0; i < n; i++) t[i] = (seed * 7919 + i * 31) % 1000;
}

TEST(kvm_prefix_reuse) {
    sl_kvm_pool_cfg p = {.name = "all", .share = 1.0, .lru = true};
    sl_kvm *m = NULL;
    CHECK_OK(sl_kvm_create(64, 16, &p, 1, SALT, true, &m));
    int32_t toks[100];
    fill_tokens(toks, 100, 1);
    sl_kvm_seq a, b;
    sl_kvm_seq_init(&a, 0, 0);
    CHECK_EQ_INT(sl_kvm_acquire_prefix(m, &a, toks, 100), 0);
    CHECK_OK(sl_kvm_reserve(m, &a, 100));
    sl_kvm_commit(m, &a, toks, 100);
    CHECK(sl_kvm_check(m));
    /* while a still runs, b shares its 6 full blocks */
    sl_kvm_seq_init(&b, 0, 0);
    CHECK_EQ_INT(sl_kvm_acquire_prefix(m, &b, toks, 100), 96);
    CHECK_EQ_INT(sl_kvm_pool_stats(m, 0).used, 7);
    /* the same tokens under another adapter do not match */
    sl_kvm_seq c;
    sl_kvm_seq_init(&c, 0, 5);
    CHECK_EQ_INT(sl_kvm_acquire_prefix(m, &c, toks, 100), 0);
    /* a prompt of exactly 6 blocks leaves its last block to compute */
    sl_kvm_seq d;
    sl_kvm_seq_init(&d, 0, 0);
    CHECK_EQ_INT(sl_kvm_acquire_prefix(m, &d, toks, 96), 80);
    sl_kvm_seq_deinit(m, &a);
    sl_kvm_seq_deinit(m, &b);
    sl_kvm_seq_deinit(m, &c);
    sl_kvm_seq_deinit(m, &d);
    CHECK(sl_kvm_check(m));
    sl_kvm_stats st = sl_kvm_pool_stats(m, 0);
    CHECK_EQ_INT(st.used, 0);
    CHECK_EQ_INT(st.cached, 6); /* the full, indexed blocks stay cached */
    /* after release, still a hit */
    sl_kvm_seq e;
    sl_kvm_seq_init(&e, 0, 0);
    CHECK_EQ_INT(sl_kvm_acquire_prefix(m, &e, toks, 100), 96);
    sl_kvm_seq_deinit(m, &e);
    /* without prefix caching nothing is indexed */
    sl_kvm *m2 = NULL;
    CHECK_OK(sl_kvm_create(64, 16, &p, 1, SALT, false, &m2));
    sl_kvm_seq_init(&a, 0, 0);
    CHECK_OK(sl_kvm_reserve(m2, &a, 100));
    sl_kvm_commit(m2, &a, toks, 100);
    sl_kvm_seq_deinit(m2, &a);
    sl_kvm_seq_init(&a, 0, 0);
    CHECK_EQ_INT(sl_kvm_acquire_prefix(m2, &a, toks, 100), 0);
    sl_kvm_seq_deinit(m2, &a);
    CHECK(sl_kvm_check(m2));
    sl_kvm_destroy(m2);
    sl_kvm_destroy(m);
}

/* reset_prefix_cache: the cached blocks go free, a block in use leaves the index and goes free when released;
 * nothing computed before is a hit after, what is computed after is. */
TEST(kvm_reset_cache) {
    sl_kvm_pool_cfg p[2] = {{.name = "short", .max_ctx = 64, .share = 0.5, .lru = false}, {.name = "long", .share = 0.5, .lru = true}};
    sl_kvm *m = NULL;
    CHECK_OK(sl_kvm_create(64, 16, p, 2, SALT, true, &m));
    int32_t toks[100], other[40];
    fill_tokens(toks, 100, 1);
    fill_tokens(other, 40, 2);
    sl_kvm_seq a, b;
    sl_kvm_seq_init(&a, 1, 0);
    CHECK_OK(sl_kvm_reserve(m, &a, 100));
    sl_kvm_commit(m, &a, toks, 100);
    sl_kvm_seq_deinit(m, &a); /* 6 cached in "long" */
    sl_kvm_seq_init(&b, 0, 0);
    CHECK_OK(sl_kvm_reserve(m, &b, 40));
    sl_kvm_commit(m, &b, other, 40); /* 2 indexed and in use in "short" */
    CHECK_EQ_INT(sl_kvm_pool_stats(m, 1).cached, 6);
    CHECK_EQ_INT(sl_kvm_reset_cache(m), 6);
    CHECK(sl_kvm_check(m));
    CHECK_EQ_INT(sl_kvm_pool_stats(m, 1).cached, 0);
    CHECK_EQ_INT(sl_kvm_pool_stats(m, 1).free, 32);
    CHECK_EQ_INT(sl_kvm_pool_stats(m, 0).used, 3);
    sl_kvm_seq q;
    sl_kvm_seq_init(&q, 0, 0);
    CHECK_EQ_INT(sl_kvm_acquire_prefix(m, &q, other, 40), 0); /* (in use, but forgotten) */
    sl_kvm_seq_deinit(m, &q);
    sl_kvm_seq_deinit(m, &b);
    CHECK_EQ_INT(sl_kvm_pool_stats(m, 0).cached, 0); /* went free, not cached */
    CHECK_EQ_INT(sl_kvm_pool_stats(m, 0).free, 32);
    sl_kvm_seq_init(&q, 1, 0);
    CHECK_EQ_INT(sl_kvm_acquire_prefix(m, &q, toks, 100), 0);
    CHECK_OK(sl_kvm_reserve(m, &q, 100));
    sl_kvm_commit(m, &q, toks, 100);
    sl_kvm_seq_deinit(m, &q);
    sl_kvm_seq_init(&q, 1, 0);
    CHECK_EQ_INT(sl_kvm_acquire_prefix(m, &q, toks, 100), 96); /* (cached again after the reset) */
    sl_kvm_seq_deinit(m, &q);
    CHECK(sl_kvm_check(m));
    sl_kvm_destroy(m);
}

/* Cache 3 one-block prompts A, B, C (in that order), hit A again, then
 * force one eviction: FIFO evicts A (oldest insertion), LRU evicts B. */
static int evicted_after_hit(bool lru) {
    sl_kvm_pool_cfg p = {.name = "x", .share = 1.0, .lru = lru};
    sl_kvm *m = NULL;
    if (sl_kvm_create(3, 4, &p, 1, SALT, true, &m)) return -1;
    int32_t t[3][5];
    for (int k = 0; k < 3; k++) fill_tokens(t[k], 5, k + 10);
    for (int k = 0; k < 3; k++) {
        sl_kvm_seq s;
        sl_kvm_seq_init(&s, 0, 0);
        sl_kvm_reserve(m, &s, 4);
        sl_kvm_commit(m, &s, t[k], 4);
        sl_kvm_seq_deinit(m, &s);
    }
    sl_kvm_seq s;
    sl_kvm_seq_init(&s, 0, 0);
    sl_kvm_acquire_prefix(m, &s, t[0], 5); /* hit A */
    sl_kvm_seq_deinit(m, &s);
    sl_kvm_seq_init(&s, 0, 0);
    sl_kvm_reserve(m, &s, 4); /* needs one block: evicts one cached */
    sl_kvm_seq_deinit(m, &s);
    int gone = -1;
    for (int k = 0; k < 3; k++) {
        sl_kvm_seq q;
        sl_kvm_seq_init(&q, 0, 0);
        if (sl_kvm_acquire_prefix(m, &q, t[k], 5) == 0) gone = k;
        sl_kvm_seq_deinit(m, &q);
    }
    bool ok = sl_kvm_check(m);
    sl_kvm_destroy(m);
    return ok ? gone : -2;
}

TEST(kvm_fifo_vs_lru) {
    CHECK_EQ_INT(evicted_after_hit(false), 0);
    CHECK_EQ_INT(evicted_after_hit(true), 1);
}

TEST(kvm_pools_never_evict_each_other) {
    sl_kvm_pool_cfg p[2] = {{.name = "short", .max_ctx = 64, .share = 0.5, .lru = false},
                            {.name = "long", .share = 0.5, .lru = true}};
    sl_kvm *m = NULL;
    CHECK_OK(sl_kvm_create(20, 16, p, 2, SALT, true, &m));
    CHECK_EQ_INT(sl_kvm_pool_for(m, 64), 0);
    CHECK_EQ_INT(sl_kvm_pool_for(m, 65), 1);
    int32_t st[40];
    fill_tokens(st, 40, 99);
    sl_kvm_seq s;
    sl_kvm_seq_init(&s, 0, 0);
    CHECK_OK(sl_kvm_reserve(m, &s, 40));
    sl_kvm_commit(m, &s, st, 40);
    sl_kvm_seq_deinit(m, &s);
    /* long sequences churn through far more than their pool */
    for (int k = 0; k < 20; k++) {
        int32_t lt[160];
        fill_tokens(lt, 160, k);
        sl_kvm_seq l;
        sl_kvm_seq_init(&l, 1, 0);
        CHECK_OK(sl_kvm_reserve(m, &l, 160));
        sl_kvm_commit(m, &l, lt, 160);
        sl_kvm_seq_deinit(m, &l);
        CHECK(sl_kvm_check(m));
    }
    /* a long sequence can never take more than its pool */
    sl_kvm_seq big;
    sl_kvm_seq_init(&big, 1, 0);
    CHECK_EQ_INT(sl_kvm_reserve(m, &big, 11 * 16), SL_ERR_FULL);
    CHECK_EQ_INT(big.table.n_blocks, 0);
    sl_kvm_seq_deinit(m, &big);
    sl_kvm_seq_init(&s, 0, 0);
    CHECK_EQ_INT(sl_kvm_acquire_prefix(m, &s, st, 40), 32);
    sl_kvm_seq_deinit(m, &s);
    sl_kvm_destroy(m);
}

/* Random operations on a few sequences sharing prefixes; invariants after every step. */
/* FNV-1a over tokens [0, n). */
static uint64_t prefix_hash(const int32_t *t, int32_t n) {
    uint64_t h = 14695981039346656037ull;
    for (int32_t i = 0; i < n; i++) h = (h ^ (uint32_t)t[i]) * 1099511628211ull;
    return h | 1; /* never 0, the "nothing complete" mark */
}

TEST(kvm_property_random_ops) {
    sl_kvm_pool_cfg p[2] = {{.name = "a", .max_ctx = 100, .share = 0.4, .lru = false},
                            {.name = "b", .share = 0.6, .lru = true}};
    sl_kvm *m = NULL;
    CHECK_OK(sl_kvm_create(50, 8, p, 2, SALT, true, &m));
    enum { NS = 6, LEN = 120 };
    sl_kvm_seq seqs[NS];
    int32_t toks[NS][LEN];
    int32_t computed[NS];
    srand(12345);
    for (int i = 0; i < NS; i++) {
        sl_kvm_seq_init(&seqs[i], i % 2, 0);
        computed[i] = 0;
    }
    /* What each block holds: the hash of the tokens [0, (j + 1) * 8) of the
     * sequence that computed it as its block j (0: nothing complete). A block
     * reused through the prefix index must hold exactly the acquiring
     * sequence's tokens up to its end — K/V depend on every earlier token. */
    static uint64_t holds[50];
    for (int step = 0; step < 20000; step++) {
        int i = rand() % NS;
        sl_kvm_seq *s = &seqs[i];
        int op = rand() % 4;
        if (op == 0 && s->table.n_blocks == 0) {
            /* start: one of 3 prompt families so prefixes are shared; then a common stretch whose block 5
             * comes in two versions that differ in their last token only, then random tokens */
            int fam = rand() % 3, ver = rand() % 2;
            for (int k = 0; k < LEN; k++)
                toks[i][k] = k < 40 ? (fam * 13 + k) % 97 : k == 47 ? 50 + ver : k < 80 ? (k * 7) % 97 : rand() % 97;
            int32_t n = 8 + rand() % (LEN - 8);
            computed[i] = sl_kvm_acquire_prefix(m, s, toks[i], n);
            CHECK(computed[i] % 8 == 0 && computed[i] < n);
            CHECK_EQ_INT(s->table.n_blocks, computed[i] / 8);
            for (int j = 0; j < s->table.n_blocks; j++)
                CHECK_MSG(holds[s->table.blocks[j]] == prefix_hash(toks[i], (j + 1) * 8),
                          "step %d: block %d reused as block %d of a sequence whose tokens differ", step,
                          s->table.blocks[j], j);
        } else if (op == 1 && computed[i] < LEN) {
            int32_t n = computed[i] + 1 + rand() % 20;
            if (n > LEN) n = LEN;
            const int32_t had = s->table.n_blocks;
            if (sl_kvm_reserve(m, s, n) == SL_OK) {
                CHECK(s->table.n_blocks * 8 >= n);
                for (int j = had; j < s->table.n_blocks; j++) holds[s->table.blocks[j]] = 0; /* new: not yet written */
                computed[i] = n;
                sl_kvm_commit(m, s, toks[i], n);
                for (int j = 0; j < n / 8; j++) holds[s->table.blocks[j]] = prefix_hash(toks[i], (j + 1) * 8);
            }
        } else if (op == 2) {
            sl_kvm_release(m, s);
            computed[i] = 0;
        } else if (op == 3 && rand() % 64 == 0) { /* reset_prefix_cache now and then */
            sl_kvm_reset_cache(m);
            CHECK_EQ_INT(sl_kvm_pool_stats(m, 0).cached + sl_kvm_pool_stats(m, 1).cached, 0);
        }
        if (!sl_kvm_check(m)) {
            CHECK_MSG(0, "step %d: %s", step, sl_last_error());
        }
        /* the blocks a sequence holds are distinct */
        for (int a = 0; a < s->table.n_blocks; a++)
            for (int b = a + 1; b < s->table.n_blocks; b++) CHECK(s->table.blocks[a] != s->table.blocks[b]);
        /* a block two sequences hold is a complete block at the same place in both, with the same tokens
         * before its end; a block still being written belongs to one sequence only */
        for (int x = 0; x < NS; x++)
            for (int y = x + 1; y < NS; y++)
                for (int a = 0; a < seqs[x].table.n_blocks; a++)
                    for (int b = 0; b < seqs[y].table.n_blocks; b++) {
                        if (seqs[x].table.blocks[a] != seqs[y].table.blocks[b]) continue;
                        CHECK_MSG(a == b && (a + 1) * 8 <= computed[x] && (a + 1) * 8 <= computed[y] &&
                                      !memcmp(toks[x], toks[y], sizeof(int32_t) * (size_t)(a + 1) * 8),
                                  "step %d: sequences %d and %d share block %d (their blocks %d and %d)", step, x, y,
                                  seqs[x].table.blocks[a], a, b);
                    }
    }
    for (int i = 0; i < NS; i++) sl_kvm_seq_deinit(m, &seqs[i]);
    CHECK(sl_kvm_check(m));
    CHECK_EQ_INT(sl_kvm_pool_stats(m, 0).used + sl_kvm_pool_stats(m, 1).used, 0);
    sl_kvm_destroy(m);
}

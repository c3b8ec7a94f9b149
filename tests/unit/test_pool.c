/*
 * test_pool.c — the compute thread pool: every thread runs each job once,
 * barriers separate phases, idle workers that went to sleep wake up, runs
 * allocate nothing, and the range split covers [0, n) exactly.
 */
#include "harness.h"

#include "core/alloc.h"
#include "core/pool.h"

#include <stdatomic.h>
#include <time.h>

typedef struct job {
    sl_pool *p;
    _Atomic int hits[16];
    _Atomic int counter;
    int bad;
    int phases;
} job;

static void mark(void *arg, int ith, int nth) {
    job *j = arg;
    (void)nth;
    atomic_fetch_add(&j->hits[ith], 1);
}

/* Each phase every thread adds 1; after the barrier all see nth * (phase + 1). */
static void phased(void *arg, int ith, int nth) {
    job *j = arg;
    (void)ith;
    for (int ph = 0; ph < j->phases; ph++) {
        atomic_fetch_add(&j->counter, 1);
        sl_pool_barrier(j->p);
        if (atomic_load(&j->counter) != nth * (ph + 1)) j->bad = 1; /* benign: any thread may flag */
        sl_pool_barrier(j->p);
    }
}

TEST(every_thread_runs_each_job_once) {
    for (int n = 1; n <= 4; n++) {
        job j = {0};
        CHECK_OK(sl_pool_create(n, &j.p));
        CHECK_EQ_INT(sl_pool_size(j.p), n);
        for (int r = 0; r < 500; r++) sl_pool_run(j.p, mark, &j);
        for (int i = 0; i < n; i++) CHECK_EQ_INT(atomic_load(&j.hits[i]), 500);
        sl_pool_destroy(j.p);
    }
}

TEST(barriers_separate_phases) {
    job j = {.phases = 200};
    CHECK_OK(sl_pool_create(3, &j.p));
    for (int r = 0; r < 20; r++) {
        atomic_store(&j.counter, 0);
        sl_pool_run(j.p, phased, &j);
        CHECK_EQ_INT(atomic_load(&j.counter), 3 * j.phases);
    }
    CHECK_EQ_INT(j.bad, 0);
    sl_pool_destroy(j.p);
}

/* Workers that waited long enough to sleep on the condition variable are
 * woken by the next run. */
TEST(sleeping_workers_wake_up) {
    job j = {0};
    CHECK_OK(sl_pool_create(2, &j.p));
    for (int r = 0; r < 5; r++) {
        struct timespec ts = {0, 3 * 1000 * 1000}; /* 3 ms: past the spin window */
        nanosleep(&ts, NULL);
        sl_pool_run(j.p, mark, &j);
    }
    CHECK_EQ_INT(atomic_load(&j.hits[1]), 5);
    sl_pool_destroy(j.p);
}

TEST(runs_allocate_nothing) {
    job j = {.phases = 3};
    CHECK_OK(sl_pool_create(2, &j.p));
    sl_pool_run(j.p, phased, &j);
    const uint64_t before = sl_alloc_count();
    for (int r = 0; r < 100; r++) sl_pool_run(j.p, phased, &j);
    CHECK_EQ_INT(sl_alloc_count(), before);
    sl_pool_destroy(j.p);
}

TEST(split_range_covers_exactly) {
    for (long long n = 0; n < 50; n++)
        for (int nth = 1; nth <= 7; nth++) {
            long long next = 0;
            for (int i = 0; i < nth; i++) {
                long long lo, hi;
                sl_split_range(n, i, nth, &lo, &hi);
                CHECK_EQ_INT(lo, next);
                CHECK(hi >= lo);
                next = hi;
            }
            CHECK_EQ_INT(next, n);
        }
}

TEST(bad_thread_count) {
    sl_pool *p = NULL;
    CHECK_EQ_INT(sl_pool_create(0, &p), SL_ERR_INVALID);
    CHECK(p == NULL);
    sl_pool_destroy(NULL);
}

/*
 * pool.c — thread pool with a generation counter to start work and a
 * sense-reversing atomic barrier between ops.
 *
 * Start: the caller publishes fn/arg and bumps the atomic `gen`. Idle
 * workers spin on `gen` for a short while (SPIN_NS: a decode loop issues its
 * next step within microseconds, and a futex wake-up costs tens of them),
 * then sleep on the condition variable after counting themselves in
 * `n_sleeping`; the caller broadcasts only when someone sleeps. (A worker
 * increments n_sleeping before re-checking gen and the caller bumps gen
 * before reading n_sleeping, both sequentially consistent, so one of them
 * always sees the other: no lost wake-up.)
 * Finish: workers count down `n_running`; the caller spins (then yields)
 * until it reaches zero.
 * Barrier: arrivals counted atomically; the last flips `barrier_phase`;
 * the others spin (then yield) until the phase changes.
 * Nothing here allocates after sl_pool_create.
 */
#include "pool.h"

#include "alloc.h"
#include "status.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#define SPIN_NS 200000 /* idle workers spin this long before sleeping */

struct sl_pool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic uint64_t gen;
    _Atomic bool stop;
    _Atomic int n_sleeping;
    sl_pool_fn fn;
    void *arg;
    _Atomic int n_running;
    _Atomic int barrier_count;
    _Atomic int barrier_phase;
};

typedef struct worker_arg {
    sl_pool *p;
    int ith;
} worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void spin_pause(int *spins) {
    if (++*spins < 2000) cpu_relax();
    else sched_yield();
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Wait for a generation other than `seen`; returns it (or `seen` on stop). */
static uint64_t wait_work(sl_pool *p, uint64_t seen) {
    const uint64_t t0 = now_ns();
    for (int i = 1;; i++) {
        uint64_t g = atomic_load_explicit(&p->gen, memory_order_acquire);
        if (g != seen || atomic_load_explicit(&p->stop, memory_order_acquire)) return g;
        cpu_relax();
        if ((i & 63) == 0 && now_ns() - t0 > SPIN_NS) break;
    }
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->n_sleeping, 1);
    uint64_t g;
    while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->cv, &p->mu);
    atomic_fetch_sub(&p->n_sleeping, 1);
    pthread_mutex_unlock(&p->mu);
    return g;
}

static void *worker(void *a) {
    worker_arg wa = *(worker_arg *)a;
    sl_free(a);
    sl_pool *p = wa.p;
    uint64_t seen = 0;
    for (;;) {
        uint64_t g = wait_work(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_acquire)) return NULL;
        seen = g;
        p->fn(p->arg, wa.ith, p->n);
        atomic_fetch_sub_explicit(&p->n_running, 1, memory_order_release);
    }
}

static void wake_all(sl_pool *p) {
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
}

sl_status sl_pool_create(int n_threads, sl_pool **out) {
    *out = NULL;
    if (n_threads < 1 || n_threads > 1024) return SL_FAIL(SL_ERR_INVALID, "thread count %d not in 1..1024", n_threads);
    sl_pool *p = sl_calloc(1, sizeof *p);
    if (!p) return SL_FAIL(SL_ERR_NOMEM, "out of memory for the thread pool");
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (n_threads > 1) {
        p->threads = sl_calloc((size_t)n_threads, sizeof(pthread_t));
        if (!p->threads) goto nomem;
        for (int i = 1; i < n_threads; i++) {
            worker_arg *wa = sl_malloc(sizeof *wa);
            if (!wa) goto nomem;
            wa->p = p;
            wa->ith = i;
            if (pthread_create(&p->threads[i], NULL, worker, wa) != 0) {
                sl_free(wa);
                p->n = i; /* join what started */
                sl_pool_destroy(p);
                return SL_FAIL(SL_ERR_NOMEM, "cannot start compute thread %d of %d", i, n_threads);
            }
        }
    }
    *out = p;
    return SL_OK;
nomem:
    p->n = 1;
    sl_pool_destroy(p);
    return SL_FAIL(SL_ERR_NOMEM, "out of memory for the thread pool");
}

void sl_pool_destroy(sl_pool *p) {
    if (!p) return;
    atomic_store(&p->stop, true);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    sl_free(p->threads);
    sl_free(p);
}

int sl_pool_size(const sl_pool *p) { return p->n; }

void sl_pool_run(sl_pool *p, sl_pool_fn fn, void *arg) {
    if (p->n == 1) {
        fn(arg, 0, 1);
        return;
    }
    atomic_store(&p->n_running, p->n - 1);
    atomic_store(&p->barrier_count, 0);
    p->fn = fn;
    p->arg = arg;
    atomic_fetch_add(&p->gen, 1); /* seq_cst: publishes fn/arg; ordered before the n_sleeping read */
    wake_all(p);
    fn(arg, 0, p->n);
    int spins = 0;
    while (atomic_load_explicit(&p->n_running, memory_order_acquire) != 0) spin_pause(&spins);
}

void sl_pool_barrier(sl_pool *p) {
    if (p->n == 1) return;
    int phase = atomic_load_explicit(&p->barrier_phase, memory_order_acquire);
    if (atomic_fetch_add_explicit(&p->barrier_count, 1, memory_order_acq_rel) == p->n - 1) {
        atomic_store_explicit(&p->barrier_count, 0, memory_order_relaxed);
        atomic_store_explicit(&p->barrier_phase, phase + 1, memory_order_release);
        return;
    }
    int spins = 0;
    while (atomic_load_explicit(&p->barrier_phase, memory_order_acquire) == phase) spin_pause(&spins);
}

void sl_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, long ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(cv, mu, &ts);
}

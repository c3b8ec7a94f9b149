/*
 * pool.c — thread pool with a generation counter to start work and a
 * sense-reversing atomic barrier between ops.
 *
 * Start: the caller bumps `gen` (under the mutex) and broadcasts; workers
 * wait on the condition variable for a new generation, run fn, then count
 * down `n_running`; the caller spins/yields until it reaches zero.
 * Barrier: arrivals counted atomically; the last flips `barrier_phase`;
 * the others spin (then yield) until the phase changes.
 */
#include "pool.h"

#include "alloc.h"
#include "status.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>

struct sl_pool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t gen;       /* guarded by mu */
    bool stop;          /* guarded by mu */
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

static void spin_pause(int *spins) {
    if (++*spins < 2000) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        sched_yield();
    }
}

static void *worker(void *a) {
    worker_arg wa = *(worker_arg *)a;
    sl_free(a);
    sl_pool *p = wa.p;
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (p->gen == seen && !p->stop) pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen = p->gen;
        sl_pool_fn fn = p->fn;
        void *arg = p->arg;
        pthread_mutex_unlock(&p->mu);
        fn(arg, wa.ith, p->n);
        atomic_fetch_sub_explicit(&p->n_running, 1, memory_order_release);
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
    pthread_mutex_lock(&p->mu);
    p->stop = true;
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
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->arg = arg;
    p->gen++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
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

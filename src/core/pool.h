/*
 * pool.h — persistent compute thread pool.
 *
 * sl_pool_run(pool, fn, arg) runs fn(arg, ith, nth) on all nth threads (the
 * caller is thread 0) and returns when all have finished. Inside fn, threads
 * synchronize between ops with sl_pool_barrier(). Workers are created once;
 * running allocates nothing. One run at a time per pool.
 */
#ifndef SL_CORE_POOL_H
#define SL_CORE_POOL_H

#include "shardlm.h"

#include <pthread.h>

typedef struct sl_pool sl_pool;
typedef void (*sl_pool_fn)(void *arg, int ith, int nth);

sl_status sl_pool_create(int n_threads, sl_pool **out);
void sl_pool_destroy(sl_pool *p);
int sl_pool_size(const sl_pool *p);
void sl_pool_run(sl_pool *p, sl_pool_fn fn, void *arg);
/* All nth threads of the current run wait here for each other. */
void sl_pool_barrier(sl_pool *p);

/* Wait on cv (mu held) for at most ms milliseconds: a bounded wait, whatever wakes it or not. */
void sl_cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, long ms);

/* Split [0, n) evenly: thread ith gets [*lo, *hi). */
static inline void sl_split_range(long long n, int ith, int nth, long long *lo, long long *hi) {
    *lo = n * ith / nth;
    *hi = n * (ith + 1) / nth;
}

#endif

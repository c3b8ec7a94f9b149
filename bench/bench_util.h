/*
 * bench_util.h — what the bench helpers (kq_decode.c, kernel_ab.c,
 * mkkquant.c) share: a fixed xorshift byte stream for random weights (the
 * same bytes every run), a monotonic clock in seconds and a sort for medians. Header-only: each
 * helper is one translation unit built by a command in its comment.
 */
#ifndef SL_BENCH_UTIL_H
#define SL_BENCH_UTIL_H

#include <stdint.h>
#include <time.h>

static uint64_t bench_rng = 0x9E3779B97F4A7C15ull;
static inline uint8_t rbyte(void) {
    bench_rng ^= bench_rng << 13;
    bench_rng ^= bench_rng >> 7;
    bench_rng ^= bench_rng << 17;
    return (uint8_t)(bench_rng >> 32);
}

static inline double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Sort v[0..n) ascending (n is small: the slices of one measurement). */
static inline void sort_doubles(double *v, int n) {
    for (int i = 1; i < n; i++) /* insertion sort */
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            const double z = v[j];
            v[j] = v[j - 1];
            v[j - 1] = z;
        }
}

/* Two measurements in turn, slices of `slice` seconds each, for `secs`: run(which, arg) is called for
 * which = 0, 1 until its slice is over. best[w]: each one's most calls per second in a slice; ratio[]:
 * rate of 1 / rate of 0 for each pair of neighbouring slices, sorted (at most max; returns how many).
 * The machine's drift hits both sides of a pair alike. */
static inline int bench_alternate(void (*run)(int which, void *arg), void *arg, double slice, double secs,
                                  double best[2], double *ratio, int max) {
    int n = 0;
    best[0] = best[1] = 0;
    for (const double start = now(); now() - start < secs && n < max;) {
        double rate[2];
        for (int which = 0; which < 2; which++) {
            long it = 0;
            const double t0 = now();
            double el = 0;
            while (el < slice) {
                run(which, arg);
                it++;
                el = now() - t0;
            }
            rate[which] = (double)it / el;
            if (rate[which] > best[which]) best[which] = rate[which];
        }
        ratio[n++] = rate[1] / rate[0];
    }
    sort_doubles(ratio, n);
    return n;
}

#endif

/*
 * stats.h — summary statistics of a benchmark series: mean, standard
 * deviation, min, max and percentiles by linear interpolation between the
 * closest ranks (numpy.percentile's default, which vLLM's benchmark uses).
 */
#ifndef SL_CLIENT_STATS_H
#define SL_CLIENT_STATS_H

#include <stddef.h>

typedef struct sl_stats {
    size_t n;
    double mean, std, min, max;
    double p50, p90, p99;
} sl_stats;

/* q-th percentile (0..100) of sorted[0..n); 0 when n == 0. */
double sl_stats_percentile(const double *sorted, size_t n, double q);
/* Summarize v[0..n) (sorts v in place). All zero when n == 0. */
void sl_stats_summarize(double *v, size_t n, sl_stats *out);

#endif

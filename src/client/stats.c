/*
 * stats.c — summary statistics (see stats.h). The percentile of rank
 * r = q/100 · (n-1) interpolates between sorted[floor r] and sorted[ceil r].
 */
#include "client/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double sl_stats_percentile(const double *sorted, size_t n, double q) {
    if (n == 0) return 0;
    if (q <= 0) return sorted[0];
    if (q >= 100) return sorted[n - 1];
    double r = q / 100.0 * (double)(n - 1);
    size_t lo = (size_t)floor(r);
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    double f = r - (double)lo;
    return sorted[lo] + (sorted[hi] - sorted[lo]) * f;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void sl_stats_summarize(double *v, size_t n, sl_stats *out) {
    memset(out, 0, sizeof *out);
    if (n == 0) return;
    qsort(v, n, sizeof *v, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += v[i];
    double mean = sum / (double)n, ss = 0;
    for (size_t i = 0; i < n; i++) ss += (v[i] - mean) * (v[i] - mean);
    out->n = n;
    out->mean = mean;
    out->std = sqrt(ss / (double)n);
    out->min = v[0];
    out->max = v[n - 1];
    out->p50 = sl_stats_percentile(v, n, 50);
    out->p90 = sl_stats_percentile(v, n, 90);
    out->p99 = sl_stats_percentile(v, n, 99);
}

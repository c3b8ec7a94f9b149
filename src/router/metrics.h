/*
 * metrics.h — Prometheus metrics of `shardlm route`: requests by status,
 * per-engine requests / errors / retries / migrations / ejections / load /
 * health, routing decisions by reason, and a histogram of the latency the
 * router adds to a request (its own time: request in → upstream request out,
 * plus upstream response in → client response out). Atomics, any thread.
 */
#ifndef SL_ROUTER_METRICS_H
#define SL_ROUTER_METRICS_H

#include "router/members.h"
#include "router/placement.h"

#include <stdatomic.h>
#include <stdint.h>

#define SL_RM_BUCKETS 14
#define SL_RM_STATUS 13

typedef struct sl_rmetrics {
    _Atomic uint64_t by_status[SL_RM_STATUS];
    _Atomic uint64_t decisions[SL_REASON_COUNT];
    _Atomic uint64_t retries, migrations, migrations_failed, no_engine;
    _Atomic uint64_t added_counts[SL_RM_BUCKETS + 1];
    _Atomic uint64_t added_sum_ns;
    _Atomic int64_t in_flight, connections;
} sl_rmetrics;

void sl_rmetrics_status(sl_rmetrics *m, int status);
void sl_rmetrics_added(sl_rmetrics *m, int64_t ns);
/* Render (malloc'd, free with free()). */
char *sl_rmetrics_render(const sl_rmetrics *m, const sl_view *v, bool ready);

#endif

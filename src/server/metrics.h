/*
 * metrics.h — Prometheus metrics of an engine: counters and histograms
 * updated with atomics from any thread, gauges published by the scheduler
 * each step, rendered in the Prometheus text exposition format.
 */
#ifndef SL_SERVER_METRICS_H
#define SL_SERVER_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SL_HIST_BUCKETS 16
#define SL_METRICS_POOLS 8
#define SL_METRICS_STATUS 8

typedef struct sl_hist {
    const double *bounds;             /* SL_HIST_BUCKETS upper bounds, seconds */
    _Atomic uint64_t counts[SL_HIST_BUCKETS + 1];
    _Atomic uint64_t sum_us;          /* sum in microseconds */
} sl_hist;

typedef struct sl_metrics {
    /* requests by final HTTP status: 200, 400, 401, 404, 405, 413, 500, 503 */
    _Atomic uint64_t requests_by_status[SL_METRICS_STATUS];
    _Atomic uint64_t requests_finished[4]; /* by finish reason: stop, length, abort */
    _Atomic uint64_t prompt_tokens;
    _Atomic uint64_t generation_tokens;
    _Atomic uint64_t cached_prompt_tokens;
    _Atomic uint64_t preemptions;
    _Atomic uint64_t spec_drafts;          /* speculation (n-gram or a draft model): proposals (steps of a sequence) */
    _Atomic uint64_t spec_draft_tokens;    /* ... tokens proposed */
    _Atomic uint64_t spec_accepted_tokens; /* proposed tokens that were what the model samples */
    _Atomic uint64_t prefix_hits;      /* KV blocks */
    _Atomic uint64_t prefix_queries;   /* KV blocks */
    _Atomic int64_t running, waiting;
    int n_pools;
    char pool_names[SL_METRICS_POOLS][16];
    _Atomic int64_t pool_total[SL_METRICS_POOLS], pool_used[SL_METRICS_POOLS], pool_free[SL_METRICS_POOLS],
        pool_cached[SL_METRICS_POOLS];
    sl_hist ttft, itl, e2e;
    /* a finished request's phases (vLLM's): waiting before it was first scheduled, from then to its first token,
     * from that to its end, and from first scheduled to the end; its prompt and generated tokens, its max_tokens;
     * and the tokens of each forward step */
    sl_hist queue, prefill, decode, inference;
    sl_hist prompt_len, gen_len, max_tokens, step_tokens;
} sl_metrics;

void sl_metrics_init(sl_metrics *m);
void sl_hist_observe(sl_hist *h, double seconds);
void sl_metrics_count_status(sl_metrics *m, int http_status);
/* Render into a malloc'd string (caller frees with free()). */
char *sl_metrics_render(const sl_metrics *m, const char *model_id);
/* The process collector's metrics every Prometheus client library exports (process_cpu_seconds_total,
 * process_resident_memory_bytes, process_virtual_memory_bytes, process_start_time_seconds, process_open_fds,
 * process_max_fds), read from /proc, appended to b; those it cannot read are left out. */
struct sl_strbuf;
void sl_metrics_process(struct sl_strbuf *b);

#endif

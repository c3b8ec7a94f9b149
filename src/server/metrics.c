/*
 * metrics.c — counters, histograms and the Prometheus text rendering.
 */
#include "metrics.h"

#include "core/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double LATENCY_BOUNDS[SL_HIST_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1,
                                                       0.25,  0.5,    1.0,   2.5,  5.0,   10.0, 30.0,  60.0};
static const int STATUS_CODES[SL_METRICS_STATUS] = {200, 400, 401, 404, 405, 413, 500, 503};
static const char *FINISH_NAMES[4] = {"none", "stop", "length", "abort"};

void sl_metrics_init(sl_metrics *m) {
    memset(m, 0, sizeof *m);
    m->ttft.bounds = LATENCY_BOUNDS;
    m->itl.bounds = LATENCY_BOUNDS;
    m->e2e.bounds = LATENCY_BOUNDS;
}

void sl_hist_observe(sl_hist *h, double s) {
    int i = 0;
    while (i < SL_HIST_BUCKETS && s > h->bounds[i]) i++;
    atomic_fetch_add(&h->counts[i], 1);
    atomic_fetch_add(&h->sum_us, (uint64_t)(s > 0 ? s * 1e6 : 0));
}

void sl_metrics_count_status(sl_metrics *m, int status) {
    for (int i = 0; i < SL_METRICS_STATUS; i++)
        if (STATUS_CODES[i] == status) {
            atomic_fetch_add(&m->requests_by_status[i], 1);
            return;
        }
    atomic_fetch_add(&m->requests_by_status[1], 1); /* other 4xx count as 400 */
}


static void render_hist(sl_strbuf *b, const char *name, const char *help, const sl_hist *h, const char *model) {
    sl_strbuf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < SL_HIST_BUCKETS; i++) {
        cum += atomic_load(&h->counts[i]);
        sl_strbuf_printf(b, "%s_bucket{model=\"%s\",le=\"%g\"} %llu\n", name, model, h->bounds[i], (unsigned long long)cum);
    }
    cum += atomic_load(&h->counts[SL_HIST_BUCKETS]);
    sl_strbuf_printf(b, "%s_bucket{model=\"%s\",le=\"+Inf\"} %llu\n", name, model, (unsigned long long)cum);
    sl_strbuf_printf(b, "%s_sum{model=\"%s\"} %.6f\n", name, model, (double)atomic_load(&h->sum_us) / 1e6);
    sl_strbuf_printf(b, "%s_count{model=\"%s\"} %llu\n", name, model, (unsigned long long)cum);
}

#define COUNTER(name, help, value)                                                                     \
    sl_strbuf_printf(&b, "# HELP " name " " help "\n# TYPE " name " counter\n" name "{model=\"%s\"} %llu\n", model, \
              (unsigned long long)(value))
#define GAUGE(name, help, fmt, value)                                                                  \
    sl_strbuf_printf(&b, "# HELP " name " " help "\n# TYPE " name " gauge\n" name "{model=\"%s\"} " fmt "\n", model, value)

char *sl_metrics_render(const sl_metrics *m, const char *model) {
    sl_strbuf b = {0};
    sl_strbuf_printf(&b, "# HELP shardlm_requests_total HTTP requests by final status.\n# TYPE shardlm_requests_total counter\n");
    for (int i = 0; i < SL_METRICS_STATUS; i++)
        sl_strbuf_printf(&b, "shardlm_requests_total{model=\"%s\",status=\"%d\"} %llu\n", model, STATUS_CODES[i],
                  (unsigned long long)atomic_load(&m->requests_by_status[i]));
    sl_strbuf_printf(&b, "# HELP shardlm_requests_finished_total Generation requests by finish reason.\n"
                  "# TYPE shardlm_requests_finished_total counter\n");
    for (int i = 1; i < 4; i++)
        sl_strbuf_printf(&b, "shardlm_requests_finished_total{model=\"%s\",reason=\"%s\"} %llu\n", model, FINISH_NAMES[i],
                  (unsigned long long)atomic_load(&m->requests_finished[i]));
    COUNTER("shardlm_prompt_tokens_total", "Prompt tokens received.", atomic_load(&m->prompt_tokens));
    COUNTER("shardlm_generation_tokens_total", "Tokens generated.", atomic_load(&m->generation_tokens));
    COUNTER("shardlm_prompt_tokens_cached_total", "Prompt tokens served from the prefix cache.",
            atomic_load(&m->cached_prompt_tokens));
    COUNTER("shardlm_preemptions_total", "Sequences preempted for lack of KV blocks.", atomic_load(&m->preemptions));
    COUNTER("shardlm_spec_decode_draft_tokens_total", "Tokens proposed by n-gram speculation (--spec-ngram).",
            atomic_load(&m->spec_draft_tokens));
    COUNTER("shardlm_spec_decode_accepted_tokens_total", "Proposed tokens that were the tokens sampled.",
            atomic_load(&m->spec_accepted_tokens));
    uint64_t hits = atomic_load(&m->prefix_hits), queries = atomic_load(&m->prefix_queries);
    COUNTER("shardlm_prefix_cache_hits_total", "Full prompt KV blocks found in the prefix cache.", hits);
    COUNTER("shardlm_prefix_cache_queries_total", "Full prompt KV blocks looked up in the prefix cache.", queries);
    GAUGE("shardlm_prefix_cache_hit_rate", "Prefix cache hits / queries since start.", "%.6f",
          queries ? (double)hits / (double)queries : 0.0);
    GAUGE("shardlm_requests_running", "Requests in the running batch.", "%lld", (long long)atomic_load(&m->running));
    GAUGE("shardlm_requests_waiting", "Requests waiting to be scheduled.", "%lld", (long long)atomic_load(&m->waiting));
    static const char *kinds[4] = {"total", "used", "free", "cached"};
    sl_strbuf_printf(&b, "# HELP shardlm_kv_blocks KV cache blocks per pool and state.\n# TYPE shardlm_kv_blocks gauge\n");
    for (int p = 0; p < m->n_pools; p++)
        for (int k = 0; k < 4; k++) {
            const _Atomic int64_t *v = k == 0 ? &m->pool_total[p] : k == 1 ? &m->pool_used[p] : k == 2 ? &m->pool_free[p]
                                                                                                      : &m->pool_cached[p];
            sl_strbuf_printf(&b, "shardlm_kv_blocks{model=\"%s\",pool=\"%s\",state=\"%s\"} %lld\n", model, m->pool_names[p],
                      kinds[k], (long long)atomic_load(v));
        }
    render_hist(&b, "shardlm_time_to_first_token_seconds", "Time from request arrival to its first token.", &m->ttft,
                model);
    render_hist(&b, "shardlm_inter_token_latency_seconds", "Time between consecutive tokens of a request.", &m->itl,
                model);
    render_hist(&b, "shardlm_e2e_request_latency_seconds", "Time from arrival to the end of a request.", &m->e2e, model);
    return b.p;
}

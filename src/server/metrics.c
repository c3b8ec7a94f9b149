/*
 * metrics.c — counters, histograms and the Prometheus text rendering.
 */
#include "metrics.h"

#include "core/strbuf.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double LATENCY_BOUNDS[SL_HIST_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1,
                                                       0.25,  0.5,    1.0,   2.5,  5.0,   10.0, 30.0,  60.0};
/* token counts: vLLM's 1-2-5 buckets */
static const double TOKEN_BOUNDS[SL_HIST_BUCKETS] = {1,    2,    5,    10,    20,    50,    100,   200,
                                                     500,  1000, 2000, 5000, 10000, 20000, 50000, 100000};
static const int STATUS_CODES[SL_METRICS_STATUS] = {200, 400, 401, 404, 405, 413, 500, 503};
static const char *FINISH_NAMES[4] = {"none", "stop", "length", "abort"};

void sl_metrics_init(sl_metrics *m) {
    memset(m, 0, sizeof *m);
    m->ttft.bounds = LATENCY_BOUNDS;
    m->itl.bounds = LATENCY_BOUNDS;
    m->e2e.bounds = LATENCY_BOUNDS;
    m->queue.bounds = m->prefill.bounds = m->decode.bounds = m->inference.bounds = LATENCY_BOUNDS;
    m->prompt_len.bounds = m->gen_len.bounds = m->max_tokens.bounds = m->step_tokens.bounds = TOKEN_BOUNDS;
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


/* A histogram in the text format, its series labelled label="model". */
static void render_hist(sl_strbuf *b, const char *name, const char *help, const sl_hist *h, const char *label,
                        const char *model) {
    sl_strbuf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < SL_HIST_BUCKETS; i++) {
        cum += atomic_load(&h->counts[i]);
        sl_strbuf_printf(b, "%s_bucket{%s=\"%s\",le=\"%g\"} %llu\n", name, label, model, h->bounds[i],
                         (unsigned long long)cum);
    }
    cum += atomic_load(&h->counts[SL_HIST_BUCKETS]);
    sl_strbuf_printf(b, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %llu\n", name, label, model, (unsigned long long)cum);
    sl_strbuf_printf(b, "%s_sum{%s=\"%s\"} %.6f\n", name, label, model, (double)atomic_load(&h->sum_us) / 1e6);
    sl_strbuf_printf(b, "%s_count{%s=\"%s\"} %llu\n", name, label, model, (unsigned long long)cum);
}

/* The histograms: shardlm's name (NULL: only vLLM's), what it measures, vLLM's name. */
static const struct {
    const char *name, *help, *vllm;
    size_t off;
} HISTS[] = {
    {"shardlm_time_to_first_token_seconds", "Time from request arrival to its first token.",
     "vllm:time_to_first_token_seconds", offsetof(sl_metrics, ttft)},
    {"shardlm_inter_token_latency_seconds", "Time between consecutive tokens of a request.",
     "vllm:inter_token_latency_seconds", offsetof(sl_metrics, itl)},
    {NULL, NULL, "vllm:time_per_output_token_seconds", offsetof(sl_metrics, itl)},
    {"shardlm_e2e_request_latency_seconds", "Time from arrival to the end of a request.",
     "vllm:e2e_request_latency_seconds", offsetof(sl_metrics, e2e)},
    {"shardlm_request_queue_time_seconds", "A finished request's wait before it was first scheduled.",
     "vllm:request_queue_time_seconds", offsetof(sl_metrics, queue)},
    {"shardlm_request_prefill_time_seconds", "A finished request's time from first scheduled to its first token.",
     "vllm:request_prefill_time_seconds", offsetof(sl_metrics, prefill)},
    {"shardlm_request_decode_time_seconds", "A finished request's time from its first token to its end.",
     "vllm:request_decode_time_seconds", offsetof(sl_metrics, decode)},
    {"shardlm_request_inference_time_seconds", "A finished request's time from first scheduled to its end.",
     "vllm:request_inference_time_seconds", offsetof(sl_metrics, inference)},
    {"shardlm_request_prompt_tokens", "A finished request's prompt tokens.", "vllm:request_prompt_tokens",
     offsetof(sl_metrics, prompt_len)},
    {"shardlm_request_generation_tokens", "A finished request's generated tokens.", "vllm:request_generation_tokens",
     offsetof(sl_metrics, gen_len)},
    {"shardlm_request_max_tokens", "A finished request's max_tokens.", "vllm:request_params_max_tokens",
     offsetof(sl_metrics, max_tokens)},
    {"shardlm_step_tokens", "Tokens of each forward step (decodes and prompt chunks).", "vllm:iteration_tokens_total",
     offsetof(sl_metrics, step_tokens)},
};

static const sl_hist *hist_at(const sl_metrics *m, size_t k) {
    return (const sl_hist *)((const char *)m + HISTS[k].off);
}

/* The same figures under vLLM's names (label model_name: what dashboards, autoscalers and the Kubernetes Gateway
 * API inference extension's endpoint picker read) and llama.cpp's (llamacpp:*). */
static void render_compat(sl_strbuf *b, const sl_metrics *m, const char *model) {
#define V_ONE(name, type, help, fmt, value)                                                                      \
    sl_strbuf_printf(b, "# HELP " name " " help "\n# TYPE " name " " type "\n" name "{model_name=\"%s\"} " fmt "\n", \
                     model, value)
    int64_t total = 0, used = 0;
    for (int p = 0; p < m->n_pools; p++) {
        total += atomic_load(&m->pool_total[p]);
        used += atomic_load(&m->pool_used[p]);
    }
    const double usage = total > 0 ? (double)used / (double)total : 0.0;
    const long long running = (long long)atomic_load(&m->running), waiting = (long long)atomic_load(&m->waiting);
    const unsigned long long prompt = (unsigned long long)atomic_load(&m->prompt_tokens),
                             gen = (unsigned long long)atomic_load(&m->generation_tokens);
    V_ONE("vllm:num_requests_running", "gauge", "Requests in the running batch.", "%lld", running);
    V_ONE("vllm:num_requests_waiting", "gauge", "Requests waiting to be scheduled.", "%lld", waiting);
    V_ONE("vllm:kv_cache_usage_perc", "gauge", "KV cache blocks in use (1 = all).", "%.6f", usage);
    V_ONE("vllm:gpu_cache_usage_perc", "gauge", "KV cache blocks in use (1 = all; vLLM's older name).", "%.6f", usage);
    V_ONE("vllm:prompt_tokens_total", "counter", "Prompt tokens received.", "%llu", prompt);
    V_ONE("vllm:generation_tokens_total", "counter", "Tokens generated.", "%llu", gen);
    V_ONE("vllm:num_preemptions_total", "counter", "Sequences preempted.", "%llu",
          (unsigned long long)atomic_load(&m->preemptions));
    V_ONE("vllm:spec_decode_num_drafts_total", "counter", "Proposals of speculation (a sequence's step).", "%llu",
          (unsigned long long)atomic_load(&m->spec_drafts));
    V_ONE("vllm:spec_decode_num_draft_tokens_total", "counter", "Tokens proposed by speculation.", "%llu",
          (unsigned long long)atomic_load(&m->spec_draft_tokens));
    V_ONE("vllm:spec_decode_num_accepted_tokens_total", "counter", "Proposed tokens that were the tokens sampled.", "%llu",
          (unsigned long long)atomic_load(&m->spec_accepted_tokens));
    V_ONE("vllm:prefix_cache_queries_total", "counter", "Prompt tokens looked up in the prefix cache.", "%llu", prompt);
    V_ONE("vllm:prefix_cache_hits_total", "counter", "Prompt tokens served from the prefix cache.", "%llu",
          (unsigned long long)atomic_load(&m->cached_prompt_tokens));
    sl_strbuf_printf(b, "# HELP vllm:request_success_total Finished requests by finish reason.\n"
                        "# TYPE vllm:request_success_total counter\n");
    for (int i = 1; i < 4; i++)
        sl_strbuf_printf(b, "vllm:request_success_total{model_name=\"%s\",finished_reason=\"%s\"} %llu\n", model,
                         FINISH_NAMES[i], (unsigned long long)atomic_load(&m->requests_finished[i]));
    /* no LoRA adapters are served yet: none running or waiting */
    sl_strbuf_printf(b, "# HELP vllm:lora_requests_info Running and waiting LoRA adapters.\n"
                        "# TYPE vllm:lora_requests_info gauge\n"
                        "vllm:lora_requests_info{max_lora=\"0\",running_lora_adapters=\"\",waiting_lora_adapters=\"\"} 1\n");
    for (size_t k = 0; k < sizeof HISTS / sizeof HISTS[0]; k++)
        render_hist(b, HISTS[k].vllm, "As shardlm's.", hist_at(m, k), "model_name", model);
    /* llama.cpp's (llama-server --metrics) */
    sl_strbuf_printf(b, "# HELP llamacpp:prompt_tokens_total Prompt tokens processed.\n# TYPE llamacpp:prompt_tokens_total counter\n"
                        "llamacpp:prompt_tokens_total %llu\n"
                        "# HELP llamacpp:tokens_predicted_total Tokens generated.\n# TYPE llamacpp:tokens_predicted_total counter\n"
                        "llamacpp:tokens_predicted_total %llu\n"
                        "# HELP llamacpp:requests_processing Requests being processed.\n# TYPE llamacpp:requests_processing gauge\n"
                        "llamacpp:requests_processing %lld\n"
                        "# HELP llamacpp:requests_deferred Requests waiting.\n# TYPE llamacpp:requests_deferred gauge\n"
                        "llamacpp:requests_deferred %lld\n"
                        "# HELP llamacpp:kv_cache_usage_ratio KV cache in use (1 = all).\n# TYPE llamacpp:kv_cache_usage_ratio gauge\n"
                        "llamacpp:kv_cache_usage_ratio %.6f\n",
                     prompt, gen, running, waiting, usage);
#undef V_ONE
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
    COUNTER("shardlm_spec_decode_draft_tokens_total", "Tokens proposed by speculation (--spec-ngram, a prediction, a "
            "draft model).", atomic_load(&m->spec_draft_tokens));
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
    for (size_t k = 0; k < sizeof HISTS / sizeof HISTS[0]; k++)
        if (HISTS[k].name) render_hist(&b, HISTS[k].name, HISTS[k].help, hist_at(m, k), "model", model);
    render_compat(&b, m, model);
    sl_metrics_process(&b);
    return b.p;
}

void sl_metrics_process(sl_strbuf *b) {
    const long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    const size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = '\0';
    /* fields after the command's closing parenthesis: 3 state ... 14 utime 15 stime ... 22 starttime 23 vsize 24 rss */
    const char *p = strrchr(buf, ')');
    unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
    long long rss = 0;
    const bool stat_ok = p && tick > 0 &&
                         sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %llu "
                                       "%llu %lld", &utime, &stime, &start, &vsize, &rss) == 5;
    double btime = -1;
    if ((f = fopen("/proc/stat", "r"))) { /* boot time: the start's base */
        char line[256];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "btime ", 6)) btime = atof(line + 6);
        fclose(f);
    }
    if (stat_ok) {
        sl_strbuf_printf(b, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n"
                            "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %.2f\n",
                         (double)(utime + stime) / (double)tick);
        sl_strbuf_printf(b, "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                            "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %llu\n", vsize);
        sl_strbuf_printf(b, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                            "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %lld\n", rss * page);
        if (btime >= 0)
            sl_strbuf_printf(b, "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.\n"
                                "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds %.2f\n",
                             btime + (double)start / (double)tick);
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        long fds = -1; /* (the descriptor reading the directory is left out) */
        for (const struct dirent *e; (e = readdir(d));) fds += e->d_name[0] != '.';
        closedir(d);
        sl_strbuf_printf(b, "# HELP process_open_fds Number of open file descriptors.\n"
                            "# TYPE process_open_fds gauge\nprocess_open_fds %ld\n", fds);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        sl_strbuf_printf(b, "# HELP process_max_fds Maximum number of open file descriptors.\n"
                            "# TYPE process_max_fds gauge\nprocess_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
}

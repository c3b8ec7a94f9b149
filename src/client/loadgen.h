/*
 * loadgen.h — a serving benchmark client (after vLLM's benchmark_serving):
 * many concurrent streaming requests to an OpenAI-compatible server, with
 * per-request time to first token, inter-token gaps, time per output token
 * and end-to-end latency, summarized as throughput and percentiles.
 *
 * Design: one thread, libcurl's multi interface (many transfers, one poll
 * loop), an incremental SSE parser per transfer (client/sse.h), prompts of
 * exact token lengths made lazily by client/promptgen.h. Timestamps are
 * taken when bytes arrive, before parsing. Closed loop (each of
 * `concurrency` clients sends its next request when the previous one ends)
 * or open loop (Poisson arrivals at `rate`, at most `concurrency` in flight).
 *
 * Invariants: every request has a timeout, and the run stops by itself: after
 * `requests` requests or, with `duration_s`, when no new request may start
 * and the running ones have ended. Figures cover successful requests only;
 * failures are counted by kind with the first message of each kind.
 */
#ifndef SL_CLIENT_LOADGEN_H
#define SL_CLIENT_LOADGEN_H

#include "client/stats.h"
#include "shardlm.h"

#include <stdbool.h>
#include <stdint.h>

/* An integer distribution: lo == hi is a constant, else uniform on [lo, hi]. */
typedef struct sl_lg_dist {
    int32_t lo, hi;
} sl_lg_dist;

/* "N" or "uniform:A:B", each value in [min, max]. */
sl_status sl_lg_dist_parse(const char *text, int32_t min, int32_t max, sl_lg_dist *out);

typedef enum sl_lg_endpoint { SL_LG_COMPLETIONS, SL_LG_CHAT } sl_lg_endpoint;

typedef enum sl_lg_error {
    SL_LG_E_TRANSPORT, /* connection refused or reset, truncated body, ... */
    SL_LG_E_TIMEOUT, /* the request's timeout expired */
    SL_LG_E_HTTP,    /* a status other than 200 */
    SL_LG_E_STREAM,  /* an error event inside the stream */
    SL_LG_E_NO_DONE, /* the stream ended without data: [DONE] */
    SL_LG_E_PROTO,   /* malformed SSE or JSON */
    SL_LG_E_COUNT
} sl_lg_error;

const char *sl_lg_error_name(sl_lg_error e);

typedef struct sl_loadgen_progress {
    double elapsed_s;
    int64_t issued, completed, failed, running;
    int64_t total;         /* requests planned, -1 when only a duration bounds the run */
    int64_t output_tokens; /* of the ended successful requests */
} sl_loadgen_progress;

typedef struct sl_loadgen_cfg {
    const char *url;        /* base URL: http://host:port (a trailing /v1 is accepted) */
    const char *api_key;    /* NULL: no Authorization header */
    const char *ca_file;    /* HTTPS: the CA certificates (PEM) the server's chains to (NULL: the system's) */
    const char *model;      /* NULL: the first id of GET /v1/models */
    sl_lg_endpoint endpoint;
    int32_t concurrency;    /* clients (closed loop) or most requests in flight (with rate) */
    int64_t requests;       /* total requests; 0 = no count (duration_s must be set) */
    double duration_s;      /* no new request after this many seconds; 0 = no limit */
    double rate;            /* requests per second, Poisson arrivals; 0 = back to back */
    sl_lg_dist prompt_tokens, max_tokens;
    double shared_prefix;   /* fraction of the shortest prompt shared by all prompts, [0, 1) */
    int32_t sessions;       /* > 0: 'user' = "session-<request mod sessions>" */
    double temperature;
    bool ignore_eos;
    const char *logit_bias; /* JSON object text, or NULL */
    double timeout_s;       /* per request */
    uint64_t seed;
    int32_t check_prompts;  /* prompts verified through /tokenize before the run */
    /* prompts from a file instead of made ones (as vLLM's benchmark takes a dataset): JSON Lines of {"prompt": text,
     * "output_tokens": N (optional)}, or ShareGPT's JSON (an array of {"conversations": [{"from": "human",
     * "value"}, {"from": "gpt", "value"}, ...]}: the first human turn the prompt, the answer's tokens its
     * max_tokens). Taken in an order shuffled by seed, again from the start when used up; max_tokens where an entry
     * gives none. NULL: made prompts. */
    const char *dataset;
    void (*progress)(void *ud, const sl_loadgen_progress *p); /* once a second and at the end; may be NULL */
    void *progress_ud;
} sl_loadgen_cfg;

typedef struct sl_loadgen_report {
    char model[256];
    int32_t prefix_tokens;  /* shared prefix length used (0 = none) */
    size_t n_words;         /* words of the built-in list usable with the server's tokenizer */
    int64_t n_dataset;      /* --dataset: its entries used (0: made prompts) */
    double setup_s;         /* model query, word costs and prompt checks */
    double duration_s;      /* first request sent → last request ended */
    int64_t issued, completed, failed;
    int64_t errors[SL_LG_E_COUNT];
    char error_sample[SL_LG_E_COUNT][256];
    int64_t input_tokens, output_tokens, cached_tokens;
    int64_t usage_missing;   /* successes without a usage object (tokens counted as chunks) */
    int64_t prompt_mismatch; /* usage.prompt_tokens differed from the intended length (completions) */
    int64_t short_outputs;   /* ignore_eos and fewer/more tokens than max_tokens */
    double request_throughput, output_throughput, total_throughput; /* per second */
    sl_stats ttft_ms, itl_ms, tpot_ms, e2e_ms, output_len;
} sl_loadgen_report;

/* Run the benchmark. Fails (with a message) only when the setup fails:
 * bad configuration, server unreachable, no model, prompts not composable.
 * Request failures are counted in the report. */
sl_status sl_loadgen_run(const sl_loadgen_cfg *cfg, sl_loadgen_report *out);

#endif

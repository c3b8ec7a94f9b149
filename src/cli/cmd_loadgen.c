/*
 * cmd_loadgen.c — `shardlm loadgen`: benchmark an OpenAI-compatible server
 * (ours or any other) with concurrent streaming requests, like vLLM's
 * benchmark_serving: request and token throughput, TTFT, inter-token
 * latency, TPOT and end-to-end latency percentiles, errors by kind.
 *
 * Presets --workload W1|W2 are the serving workloads of
 * ../shared/docs/REFERENCE.md: 128-token prompts (BOS included) of random
 * common English words, max_tokens 128, temperature 0, EOS ignored; W2 puts
 * a 115-token shared prefix before 13 unique tokens. Flags given explicitly
 * override a preset. Output: a table, or one JSON object with --json.
 * Exit status: 0 when every request succeeded, 1 otherwise.
 */
#include "commands.h"
#include "opts.h"

#include "client/loadgen.h"
#include "core/status.h"

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum { O_URL, O_WORKLOAD, O_CONC, O_REQS, O_DURATION, O_RATE, O_PTOK, O_MTOK, O_PREFIX, O_SESSIONS, O_TEMP,
       O_IGNORE_EOS, O_BIAS, O_APIKEY, O_ENDPOINT, O_MODEL, O_TIMEOUT, O_SEED, O_CHECK, O_JSON, O_QUIET, O_CACERT, O_DATASET, O_COUNT };

static const opt_def OPTS[O_COUNT] = {
    [O_URL] = {"url", NULL, OPT_STR, "http://127.0.0.1:8080", 0, -1, "server base URL"},
    [O_WORKLOAD] = {"workload", NULL, OPT_STR, NULL, 0, -1,
                    "preset: W1 (unique 128-token prompts) or W2 (115 shared + 13 unique); 128 tokens out, "
                    "temperature 0, EOS ignored"},
    [O_CONC] = {"concurrency", "c", OPT_INT, "1", 1, 4096,
                "clients sending back to back (with --rate: most requests in flight)"},
    [O_REQS] = {"requests", "n", OPT_INT, NULL, 1, 1e12, "requests in all (default 100, or no count with --duration)"},
    [O_DURATION] = {"duration", NULL, OPT_FLOAT, "0", 0, 1e7, "start no request after this many seconds (0: no limit)"},
    [O_RATE] = {"rate", NULL, OPT_FLOAT, "0", 0, 1e6, "requests per second, Poisson arrivals (0: back to back)"},
    [O_PTOK] = {"prompt-tokens", NULL, OPT_STR, NULL, 0, -1, "prompt length, BOS included: N or uniform:A:B (default 128)"},
    [O_MTOK] = {"max-tokens", NULL, OPT_STR, NULL, 0, -1, "max_tokens: N or uniform:A:B (default 128)"},
    [O_PREFIX] = {"shared-prefix", NULL, OPT_FLOAT, NULL, 0, 0.999,
                  "fraction of the shortest prompt shared by every prompt (default 0)"},
    [O_SESSIONS] = {"sessions", NULL, OPT_INT, "0", 0, 1 << 30, "send 'user' = session-<request mod K> (0: no user)"},
    [O_TEMP] = {"temperature", NULL, OPT_FLOAT, NULL, 0, 2, "sampling temperature (default 0)"},
    [O_IGNORE_EOS] = {"ignore-eos", NULL, OPT_BOOL, NULL, 0, -1, "send ignore_eos: every request makes max_tokens"},
    [O_BIAS] = {"logit-bias", NULL, OPT_STR, NULL, 0, -1,
                "logit_bias to send: a JSON object, or ID:BIAS and A-B:BIAS items joined by commas"},
    [O_APIKEY] = {"api-key", NULL, OPT_STR, NULL, 0, -1, "send 'Authorization: Bearer KEY'"},
    [O_DATASET] = {"dataset", NULL, OPT_STR, NULL, 0, -1,
                   "prompts from a file, as vLLM's benchmark takes them: JSON Lines of {\"prompt\", \"output_tokens\"} "
                   "or ShareGPT's JSON (first human turn, its answer's length as max_tokens), in an order shuffled by "
                   "--seed"},
    [O_CACERT] = {"cacert", NULL, OPT_STR, NULL, 0, -1, "https:// servers: CA certificates (PEM) to verify with (default: the system's)"},
    [O_ENDPOINT] = {"endpoint", NULL, OPT_STR, "completions", 0, -1, "completions or chat"},
    [O_MODEL] = {"model", NULL, OPT_STR | OPT_CMD_ENV, NULL, 0, -1, "model name to send (default: the first of /v1/models)"},
    [O_TIMEOUT] = {"timeout", NULL, OPT_FLOAT, "600", 0.001, 1e6, "seconds one request may take"},
    [O_SEED] = {"seed", NULL, OPT_INT, NULL, 0, 9.2e18,
                "seed of the prompts, lengths and arrivals (default: from the clock, so that a server's prefix "
                "cache never holds the prompts of an earlier run)"},
    [O_CHECK] = {"check-prompts", NULL, OPT_INT, "4", 0, 1 << 20, "prompts checked through /tokenize before the run"},
    [O_JSON] = {"json", NULL, OPT_BOOL, NULL, 0, -1, "print one JSON object with every figure"},
    [O_QUIET] = {"quiet", "q", OPT_BOOL, NULL, 0, -1, "no progress line on stderr"},
};

/* "ID:BIAS" and "A-B:BIAS" items joined by commas → a JSON object text (malloc'd). */
static char *bias_json(const char *s) {
    if (s[0] == '{') return strdup(s);
    json_t *o = json_object();
    const char *p = s;
    while (o && *p) {
        char *e;
        long a = strtol(p, &e, 10), b = a;
        if (e == p || a < 0) goto bad;
        if (*e == '-') {
            p = e + 1;
            b = strtol(p, &e, 10);
            if (e == p || b < a || b - a > 1000000) goto bad;
        }
        if (*e != ':') goto bad;
        p = e + 1;
        double v = strtod(p, &e);
        if (e == p) goto bad;
        for (long k = a; k <= b; k++) {
            char key[24];
            snprintf(key, sizeof key, "%ld", k);
            json_object_set_new(o, key, json_real(v));
        }
        p = e;
        if (*p == ',') p++;
        else if (*p) goto bad;
    }
    char *out = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return out;
bad:
    json_decref(o);
    return NULL;
}

static uint64_t clock_seed(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t s = ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^ ((uint64_t)getpid() << 40);
    return s & (uint64_t)INT64_MAX; /* printable as a JSON integer */
}

typedef struct progress_state {
    bool tty, printed;
} progress_state;

static void on_progress(void *ud, const sl_loadgen_progress *p) {
    progress_state *ps = ud;
    bool tty = ps->tty;
    ps->printed = true;
    char total[32] = "";
    if (p->total >= 0) snprintf(total, sizeof total, "/%lld", (long long)p->total);
    fprintf(stderr, "loadgen: %6.1f s  %lld%s done  %lld running  %lld failed  %.1f output tok/s%s",
            p->elapsed_s, (long long)p->completed, total, (long long)p->running, (long long)p->failed,
            p->elapsed_s > 0 ? (double)p->output_tokens / p->elapsed_s : 0.0, tty ? "   \r" : "\n");
    fflush(stderr);
}

static json_t *stats_json(const sl_stats *s) {
    return json_pack("{s:I,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "n", (json_int_t)s->n, "mean", s->mean, "std", s->std, "min",
                     s->min, "p50", s->p50, "p90", s->p90, "p99", s->p99, "max", s->max);
}

static void dist_text(sl_lg_dist d, char *buf, size_t cap) {
    if (d.lo == d.hi) snprintf(buf, cap, "%d", d.lo);
    else snprintf(buf, cap, "uniform:%d:%d", d.lo, d.hi);
}

static void print_json(const sl_loadgen_cfg *c, const char *workload, const sl_loadgen_report *r) {
    char pt[48], mt[48];
    dist_text(c->prompt_tokens, pt, sizeof pt);
    dist_text(c->max_tokens, mt, sizeof mt);
    json_t *errs = json_object(), *samples = json_object();
    for (int k = 0; k < SL_LG_E_COUNT; k++) {
        json_object_set_new(errs, sl_lg_error_name((sl_lg_error)k), json_integer(r->errors[k]));
        if (r->errors[k]) json_object_set_new(samples, sl_lg_error_name((sl_lg_error)k), json_string(r->error_sample[k]));
    }
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:o,s:i,s:f,s:I,s:f,s:s,s:s,s:i,s:i,s:f,s:b,s:I}", "url", c->url, "model", r->model, "endpoint",
        c->endpoint == SL_LG_CHAT ? "chat" : "completions", "workload", workload ? json_string(workload) : json_null(),
        "concurrency", c->concurrency, "rate", c->rate, "requests", (json_int_t)c->requests, "duration_limit_s",
        c->duration_s, "prompt_tokens", pt, "max_tokens", mt, "shared_prefix_tokens", r->prefix_tokens, "sessions",
        c->sessions, "temperature", c->temperature, "ignore_eos", c->ignore_eos, "seed", (json_int_t)c->seed);
    json_t *res = json_pack(
        "{s:I,s:I,s:I,s:f,s:f,s:I,s:I,s:I,s:f,s:f,s:f,s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:I,s:I,s:I}", "issued",
        (json_int_t)r->issued, "completed", (json_int_t)r->completed, "failed", (json_int_t)r->failed, "duration_s",
        r->duration_s, "setup_s", r->setup_s, "input_tokens", (json_int_t)r->input_tokens, "output_tokens",
        (json_int_t)r->output_tokens, "cached_tokens", (json_int_t)r->cached_tokens, "request_throughput",
        r->request_throughput, "output_throughput", r->output_throughput, "total_token_throughput",
        r->total_throughput, "ttft_ms", stats_json(&r->ttft_ms), "itl_ms", stats_json(&r->itl_ms), "tpot_ms",
        stats_json(&r->tpot_ms), "e2e_ms", stats_json(&r->e2e_ms), "output_len", stats_json(&r->output_len), "errors",
        errs, "error_samples", samples, "prompt_mismatch", (json_int_t)r->prompt_mismatch, "short_outputs",
        (json_int_t)r->short_outputs, "usage_missing", (json_int_t)r->usage_missing);
    if (o && c->dataset) json_object_set_new(o, "dataset", json_pack("{s:s,s:I}", "path", c->dataset, "entries",
                                                                      (json_int_t)r->n_dataset));
    if (o && res) json_object_update(o, res);
    json_decref(res);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    printf("%s\n", s ? s : "{}");
    free(s);
}

static void print_table(const sl_loadgen_cfg *c, const char *workload, const sl_loadgen_report *r) {
    char pt[48], mt[48], mode[64];
    dist_text(c->prompt_tokens, pt, sizeof pt);
    dist_text(c->max_tokens, mt, sizeof mt);
    if (c->rate > 0) snprintf(mode, sizeof mode, "%.3g req/s Poisson, at most %d in flight", c->rate, c->concurrency);
    else snprintf(mode, sizeof mode, "%d clients back to back", c->concurrency);
    printf("============ shardlm loadgen ============\n");
    printf("%-34s %s\n", "server", c->url);
    printf("%-34s %s (/v1/%s)\n", "model", r->model, c->endpoint == SL_LG_CHAT ? "chat/completions" : "completions");
    if (workload) printf("%-34s %s\n", "workload", workload);
    printf("%-34s %s\n", "load", mode);
    if (c->dataset) printf("%-34s %s (%lld entries)\n", "prompts", c->dataset, (long long)r->n_dataset);
    else printf("%-34s %s (shared prefix %d)\n", "prompt tokens", pt, r->prefix_tokens);
    printf("%-34s %s%s, temperature %g\n", "max tokens", mt, c->ignore_eos ? " (EOS ignored)" : "", c->temperature);
    printf("%-34s %llu\n", "seed", (unsigned long long)c->seed);
    printf("%-34s %lld\n", "successful requests", (long long)r->completed);
    printf("%-34s %lld\n", "failed requests", (long long)r->failed);
    printf("%-34s %.2f\n", "benchmark duration (s)", r->duration_s);
    printf("%-34s %lld (%lld cached)\n", "input tokens", (long long)r->input_tokens, (long long)r->cached_tokens);
    printf("%-34s %lld\n", "output tokens", (long long)r->output_tokens);
    printf("%-34s %.2f\n", "request throughput (req/s)", r->request_throughput);
    printf("%-34s %.2f\n", "output token throughput (tok/s)", r->output_throughput);
    printf("%-34s %.2f\n", "total token throughput (tok/s)", r->total_throughput);
    printf("%-12s %10s %10s %10s %10s %10s\n", "(ms)", "mean", "p50", "p90", "p99", "max");
    const struct {
        const char *name;
        const sl_stats *s;
    } rows[] = {{"TTFT", &r->ttft_ms}, {"ITL", &r->itl_ms}, {"TPOT", &r->tpot_ms}, {"E2E", &r->e2e_ms}};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        printf("%-12s %10.2f %10.2f %10.2f %10.2f %10.2f\n", rows[i].name, rows[i].s->mean, rows[i].s->p50,
               rows[i].s->p90, rows[i].s->p99, rows[i].s->max);
    for (int k = 0; k < SL_LG_E_COUNT; k++)
        if (r->errors[k])
            printf("errors %-27s %lld, first: %s\n", sl_lg_error_name((sl_lg_error)k), (long long)r->errors[k],
                   r->error_sample[k]);
    if (r->prompt_mismatch)
        printf("warning: %lld prompts were not the intended length (usage.prompt_tokens)\n",
               (long long)r->prompt_mismatch);
    if (r->short_outputs)
        printf("warning: %lld requests did not make exactly max_tokens despite ignore_eos\n",
               (long long)r->short_outputs);
    if (r->usage_missing)
        printf("note: %lld answers had no usage; their output tokens are token chunks\n", (long long)r->usage_missing);
}

int cmd_loadgen(int argc, char **argv) {
    opt_val v[O_COUNT];
    const char *pos[1];
    int n_pos;
    int r = opts_parse("loadgen", "[--url URL] [--workload W1|W2] [-c CLIENTS] [-n REQUESTS] [options]", OPTS, O_COUNT,
                       v, argc, argv, pos, 0, &n_pos);
    if (r) return r > 0 ? 0 : 1;
    signal(SIGPIPE, SIG_IGN);

    const char *workload = NULL;
    const char *ptok = "128", *mtok = "128";
    double prefix = 0, temp = 0;
    bool ignore_eos = false;
    if (v[O_WORKLOAD].set) {
        if (!strcasecmp(v[O_WORKLOAD].s, "W1")) workload = "W1";
        else if (!strcasecmp(v[O_WORKLOAD].s, "W2")) workload = "W2";
        else {
            fprintf(stderr, "shardlm loadgen: --workload '%s': expected W1 or W2\n", v[O_WORKLOAD].s);
            return 1;
        }
        ignore_eos = true;
        /* W2: 115 of the 128 tokens shared: 0.9 × 128 = 115.2 rounds to 115 */
        if (workload[1] == '2') prefix = 0.9;
    }
    if (v[O_PTOK].set) ptok = v[O_PTOK].s;
    if (v[O_MTOK].set) mtok = v[O_MTOK].s;
    if (v[O_PREFIX].set) prefix = v[O_PREFIX].f;
    if (v[O_TEMP].set) temp = v[O_TEMP].f;
    if (v[O_IGNORE_EOS].set) ignore_eos = v[O_IGNORE_EOS].b;

    sl_loadgen_cfg cfg = {
        .url = v[O_URL].s,
        .api_key = v[O_APIKEY].set ? v[O_APIKEY].s : NULL,
        .ca_file = v[O_CACERT].set ? v[O_CACERT].s : NULL,
        .dataset = v[O_DATASET].set ? v[O_DATASET].s : NULL,
        .model = v[O_MODEL].set ? v[O_MODEL].s : NULL,
        .concurrency = (int32_t)v[O_CONC].i,
        .requests = v[O_REQS].set ? v[O_REQS].i : v[O_DURATION].f > 0 ? 0 : 100,
        .duration_s = v[O_DURATION].f,
        .rate = v[O_RATE].f,
        .shared_prefix = prefix,
        .sessions = (int32_t)v[O_SESSIONS].i,
        .temperature = temp,
        .ignore_eos = ignore_eos,
        .timeout_s = v[O_TIMEOUT].f,
        .seed = v[O_SEED].set ? (uint64_t)v[O_SEED].i : clock_seed(),
        .check_prompts = (int32_t)v[O_CHECK].i,
    };
    if (!strcmp(v[O_ENDPOINT].s, "chat")) cfg.endpoint = SL_LG_CHAT;
    else if (!strcmp(v[O_ENDPOINT].s, "completions")) cfg.endpoint = SL_LG_COMPLETIONS;
    else {
        fprintf(stderr, "shardlm loadgen: --endpoint '%s': expected completions or chat\n", v[O_ENDPOINT].s);
        return 1;
    }
    if (sl_lg_dist_parse(ptok, 1, 1 << 24, &cfg.prompt_tokens) != SL_OK ||
        sl_lg_dist_parse(mtok, 1, 1 << 24, &cfg.max_tokens) != SL_OK) {
        fprintf(stderr, "shardlm loadgen: %s\n", sl_last_error());
        return 1;
    }
    char *bias = NULL;
    if (v[O_BIAS].set) {
        bias = bias_json(v[O_BIAS].s);
        if (!bias) {
            fprintf(stderr, "shardlm loadgen: --logit-bias '%s': expected a JSON object or ID:BIAS / A-B:BIAS items\n",
                    v[O_BIAS].s);
            return 1;
        }
        cfg.logit_bias = bias;
    }
    progress_state ps = {.tty = isatty(2) == 1};
    if (!v[O_QUIET].b) {
        cfg.progress = on_progress;
        cfg.progress_ud = &ps;
    }
    sl_loadgen_report rep;
    sl_status st = sl_loadgen_run(&cfg, &rep);
    free(bias);
    if (ps.tty && ps.printed) fputc('\n', stderr);
    if (st) {
        fprintf(stderr, "shardlm loadgen: %s\n", sl_last_error());
        return 1;
    }
    if (v[O_JSON].b) print_json(&cfg, workload, &rep);
    else print_table(&cfg, workload, &rep);
    fflush(stdout);
    if (rep.failed) {
        fprintf(stderr, "shardlm loadgen: %lld of %lld requests failed\n", (long long)rep.failed, (long long)rep.issued);
        return 1;
    }
    return 0;
}

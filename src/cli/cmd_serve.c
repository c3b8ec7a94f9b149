/*
 * cmd_serve.c — `shardlm serve`: one model replica as an OpenAI-compatible
 * HTTP server with continuous batching, paged KV cache and prefix caching.
 *
 * Shutdown: SIGTERM or SIGINT → /ready answers 503 and new generation
 * requests get 503; running requests finish (at most --shutdown-timeout
 * seconds, then they are aborted); exit 0.
 */
#include "commands.h"
#include "common.h"
#include "opts.h"

#include "core/alloc.h"
#include "core/strbuf.h"
#include "engine/kv.h"
#include "model/model.h"
#include "server/addr.h"
#include "server/http.h"
#include "server/sched.h"
#include "router/etcd.h"
#include "template/template.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { O_MODEL, O_HOST, O_PORT, O_NAME, O_THREADS, O_CTX, O_SEQS, O_BATCHED, O_PREFILL, O_BLOCK, O_KVMEM, O_NOPREFIX, O_POOLS,
       O_APIKEY, O_MAXBODY, O_SHUTDOWN, O_MAXCONN, O_TEMPLATE, O_KVTYPE, O_ETCD, O_CLUSTER, O_ENGINE_ID, O_MVERSION,
       O_ADVERTISE, O_ETCD_TTL, O_SPEC, O_SPEC_MIN, O_SPEC_MAX, O_SPEC_SEQS, O_REASONING, O_RSTORE, O_RSTORE_MIB,
       O_POOLING, O_RERANK, O_HFOVER, O_RBUDGET, O_RBUDGET_MSG, O_ORIGINS, O_NOACCESS, O_STATS, O_KEYFILE, O_SSLKEY, O_SSLCERT, O_SSLKEY2, O_SSLCERT2, O_SSLCA, O_ETCDCA, O_ETCDCERT, O_ETCDKEY, O_CERTREQS,
       O_TEMP, O_TOPK, O_TOPP, O_MINP, O_REPEAT, O_PRESENCE, O_FREQUENCY, O_NPREDICT, O_SEED, O_GENCONFIG, O_TPLKW,
       O_TPLKW2, O_MAXLEN, O_ALIAS, O_PARALLEL, O_SSLREFRESH, O_SCHEDPOL, O_DRAFT, O_DRAFT_MAX, O_DRAFT_PMIN, O_SPECCFG,
       O_KEYPASS, O_COUNT };

/* Default budgets of a step. On a CPU a step's time grows with its tokens
 * (about 3 ms per token for a 1B model on two cores). Prompt tokens get 128
 * per step: a burst of prompts is served in steps of a few hundred ms, so
 * decoding streams stall less and a wave of prompts gets its first tokens in
 * turn rather than all at the end of one long step. Decode tokens are not
 * held to it (only to the step's whole budget, 512 or --max-num-seqs), so
 * with many streams the decodes are not starved of prompts finishing.
 * docs/PERF.md: at 16 clients the W1 / W2 TTFT p50 went from 1,316 / 537 ms
 * (one 512-token budget) to 714 / 337 ms and the inter-token p99 from 1,090
 * to 380 ms; at 64 clients a single 128-token budget had cost W1 10% of its
 * throughput and doubled its TTFT. */
#define SERVE_STEP_TOKENS 512
#define SERVE_PREFILL_TOKENS "128"

/* The stats line: throughput since the last one, and the state now. */
typedef struct stats_state {
    uint64_t prompt, gen, hits, queries;
} stats_state;

static void log_stats(const sl_metrics *m, stats_state *s, double secs) {
    const uint64_t prompt = atomic_load(&m->prompt_tokens), gen = atomic_load(&m->generation_tokens),
                   hits = atomic_load(&m->prefix_hits), queries = atomic_load(&m->prefix_queries);
    const long long running = (long long)atomic_load(&m->running), waiting = (long long)atomic_load(&m->waiting);
    if (prompt == s->prompt && gen == s->gen && running == 0 && waiting == 0) return; /* (idle: nothing to say) */
    int64_t used = 0, total = 0;
    for (int p = 0; p < m->n_pools; p++) {
        used += atomic_load(&m->pool_used[p]);
        total += atomic_load(&m->pool_total[p]);
    }
    fprintf(stderr, "shardlm serve: prompt %.1f tokens/s, generation %.1f tokens/s, running %lld, waiting %lld, KV cache "
                    "%.1f%% used, prefix cache hits %.1f%%\n",
            (double)(prompt - s->prompt) / secs, (double)(gen - s->gen) / secs, running, waiting,
            total > 0 ? 100.0 * (double)used / (double)total : 0.0,
            queries > s->queries ? 100.0 * (double)(hits - s->hits) / (double)(queries - s->queries) : 0.0);
    *s = (stats_state){prompt, gen, hits, queries};
}

static const opt_def OPTS[O_COUNT] = {
    [O_MODEL] = {"model", "m", OPT_STR, NULL, 0, -1, "GGUF model file"},
    [O_HOST] = {"host", NULL, OPT_STR, "127.0.0.1", 0, -1, "address to listen on: IPv4, IPv6 (:: takes IPv4 too) or a name"},
    [O_PORT] = {"port", NULL, OPT_INT, "8080", 0, 65535, "port to listen on (0: any free port, printed at start)"},
    [O_NAME] = {"served-model-name", NULL, OPT_STR, NULL, 0, -1,
                "model id in the API (default: the file name); several separated by commas are all answered, the "
                "first named in answers (vLLM's several names)"},
    [O_THREADS] = {"threads", "t", OPT_INT, NULL, 1, 1024, "compute threads (default: number of CPUs)"},
    [O_CTX] = {"ctx-size", "c", OPT_INT, "0", 0, 1 << 24, "context length per sequence (0: the model's)"},
    [O_SEQS] = {"max-num-seqs", NULL, OPT_INT, "64", 1, 4096, "sequences in the running batch at most"},
    [O_BATCHED] = {"max-num-batched-tokens", NULL, OPT_INT, NULL, 16, 1 << 20,
                   "tokens per forward step at most, at least --max-num-seqs (default: 512, or --max-num-seqs if more)"},
    [O_PREFILL] = {"max-prefill-tokens", NULL, OPT_INT, SERVE_PREFILL_TOKENS, 16, 1 << 20,
                   "prompt tokens per forward step at most (chunked prefill; decodes are not counted)"},
    [O_BLOCK] = {"block-size", NULL, OPT_INT, "16", 1, 1024, "tokens per KV block"},
    [O_KVMEM] = {"kv-mem", NULL, OPT_STR, "1024", 0, -1, "KV cache memory: MiB, or a share of physical RAM (e.g. 25%)"},
    [O_NOPREFIX] = {"no-prefix-caching", NULL, OPT_BOOL, NULL, 0, -1, "do not reuse the KV blocks of shared prefixes"},
    [O_POOLS] = {"kv-pools", NULL, OPT_STR, "short:<=2048:30%:fifo,long:70%:lru", 0, -1,
                 "KV pools by context length: name:<=TOKENS:SHARE%:fifo|lru,..."},
    [O_APIKEY] = {"api-key", NULL, OPT_STR, NULL, 0, -1,
                  "require 'Authorization: Bearer KEY' (not on /health, /ready; several keys: separated by commas)"},
    [O_KEYFILE] = {"api-key-file", NULL, OPT_STR, NULL, 0, -1, "keys accepted too, one per line"},
    [O_SSLKEY] = {"ssl-keyfile", NULL, OPT_STR, NULL, 0, -1, "HTTPS: the private key (PEM), with --ssl-certfile"},
    [O_SSLCERT] = {"ssl-certfile", NULL, OPT_STR, NULL, 0, -1, "HTTPS: the certificate chain (PEM)"},
    [O_SSLCA] = {"ssl-ca-certs", NULL, OPT_STR, NULL, 0, -1,
                 "HTTPS: clients must present a certificate signed by these CAs (PEM; mutual TLS, e.g. from routers)"},
    [O_CERTREQS] = {"ssl-cert-reqs", NULL, OPT_INT, "2", 0, 2,
                    "with --ssl-ca-certs: 2 a client certificate is required, 1 checked where sent, 0 not asked for"},
    [O_SSLKEY2] = {"ssl-key-file", NULL, OPT_STR, NULL, 0, -1, "the same as --ssl-keyfile (llama.cpp's name)"},
    [O_SSLCERT2] = {"ssl-cert-file", NULL, OPT_STR, NULL, 0, -1, "the same as --ssl-certfile (llama.cpp's name)"},
    [O_MAXBODY] = {"max-body-bytes", NULL, OPT_INT, "8388608", 1024, 1 << 30, "largest request body"},
    [O_SHUTDOWN] = {"shutdown-timeout", NULL, OPT_INT, "30", 0, 3600, "seconds running requests get to finish at exit"},
    [O_MAXCONN] = {"max-connections", NULL, OPT_INT, "1024", 1, 65536, "concurrent HTTP connections at most"},
    [O_RSTORE] = {"responses-store", NULL, OPT_INT, "1024", 0, 1 << 20,
                  "Responses API: responses kept for previous_response_id and GET /v1/responses/ID (0: none)"},
    [O_RSTORE_MIB] = {"responses-store-mib", NULL, OPT_INT, "64", 1, 1 << 20, "... their JSON in MiB at most (the oldest go)"},
    [O_KVTYPE] = {"kv-type", NULL, OPT_STR, "f16", 0, -1, "KV cache element type: f32, f16 or q8_0"},
    [O_TEMPLATE] = {"chat-template", NULL, OPT_STR, NULL, 0, -1,
                    "Jinja chat template file (default: the model's tokenizer.chat_template, else a built-in one)"},
    [O_REASONING] = {"reasoning-format", NULL, OPT_STR, "auto", 0, -1,
                     "a chat answer's <think> block: deepseek (to message.reasoning_content), none (left in the "
                     "content), auto (deepseek when the chat template writes thinking tags)"},
    [O_POOLING] = {"pooling", NULL, OPT_STR, NULL, 0, -1,
                   "embeddings: mean, cls or last (the normed final hidden states of the input; default the file's "
                   "<arch>.pooling_type, else last, as vLLM pools decoder-only models), or none (every token's: "
                   "llama.cpp's /embedding only); rank: a reranker's (its classification head scores /rerank and "
                   "/score pairs)"},
    [O_RERANK] = {"reranking", NULL, OPT_BOOL, NULL, 0, -1, "the same as --pooling rank (llama.cpp's --reranking)"},
    [O_TEMP] = {"temp", NULL, OPT_FLOAT, NULL, 0, 100, "default temperature of requests that give none (llama.cpp's)"},
    [O_TOPK] = {"top-k", NULL, OPT_INT, NULL, 0, 1 << 30, "default top_k of requests that give none"},
    [O_TOPP] = {"top-p", NULL, OPT_FLOAT, NULL, 0, 1, "default top_p of requests that give none"},
    [O_MINP] = {"min-p", NULL, OPT_FLOAT, NULL, 0, 1, "default min_p of requests that give none"},
    [O_REPEAT] = {"repeat-penalty", NULL, OPT_FLOAT, NULL, 0, 100, "default repetition_penalty of requests that give none"},
    [O_PRESENCE] = {"presence-penalty", NULL, OPT_FLOAT, NULL, -2, 2, "default presence_penalty of requests that give none"},
    [O_FREQUENCY] = {"frequency-penalty", NULL, OPT_FLOAT, NULL, -2, 2, "default frequency_penalty of requests that give none"},
    [O_NPREDICT] = {"n-predict", "n", OPT_INT, NULL, -1, INT32_MAX,
                    "most tokens a request that gives no max_tokens gets (-1: what its context leaves)"},
    [O_SEED] = {"seed", "s", OPT_INT, NULL, -1, (double)INT64_MAX, "default seed of requests that give none (-1: a fresh one each)"},
    [O_GENCONFIG] = {"override-generation-config", NULL, OPT_STR, NULL, 0, -1,
                     "vLLM's default sampling of requests, JSON: repetition_penalty, temperature, top_k, top_p, min_p, "
                     "max_new_tokens (the flags above win over it)"},
    [O_TPLKW] = {"chat-template-kwargs", NULL, OPT_STR, NULL, 0, -1,
                 "chat template variables every chat request gets under its own, JSON (e.g. {\"enable_thinking\": false})"},
    [O_TPLKW2] = {"default-chat-template-kwargs", NULL, OPT_STR, NULL, 0, -1, "the same as --chat-template-kwargs (vLLM's name)"},
    [O_MAXLEN] = {"max-model-len", NULL, OPT_INT, NULL, 1, 1 << 24, "the same as --ctx-size (vLLM's name)"},
    [O_ALIAS] = {"alias", "a", OPT_STR, NULL, 0, -1, "the same as --served-model-name (llama.cpp's name)"},
    [O_PARALLEL] = {"parallel", NULL, OPT_INT, NULL, 1, 4096, "the same as --max-num-seqs (llama.cpp's -np)"},
    [O_SCHEDPOL] = {"scheduling-policy", NULL, OPT_STR, "fcfs", 0, -1,
                    "fcfs (first come, first served) or priority (vLLM's: a request's 'priority' orders it, lower "
                    "first, ties by arrival; when KV blocks run out the last in that order yields)"},
    [O_SSLREFRESH] = {"enable-ssl-refresh", NULL, OPT_BOOL, NULL, 0, -1,
                      "HTTPS: when --ssl-keyfile or --ssl-certfile change (a renewed certificate), new connections get "
                      "them; when --ssl-ca-certs changes, client certificates are checked against its CAs (looked at "
                      "once a second at most)"},
    [O_HFOVER] = {"hf-overrides", NULL, OPT_STR, NULL, 0, -1,
                  "model settings the GGUF file lacks, as vLLM's JSON: {\"is_matryoshka\": true} lets embeddings be "
                  "shortened by a request's dimensions, {\"matryoshka_dimensions\": [64, 128]} only to those sizes"},
    [O_RBUDGET] = {"reasoning-budget", NULL, OPT_INT, "-1", -1, INT32_MAX,
                   "a chat answer's thinking tokens at most, then the budget message and the closing tag are forced "
                   "(-1: no limit; a request's reasoning_budget_tokens overrides it)"},
    [O_ORIGINS] = {"allowed-origins", NULL, OPT_STR, "*", 0, -1,
                   "CORS: origins whose web pages may call the API (\"*\": any, as vLLM and llama.cpp allow; a list "
                   "separated by commas; \"\": none)"},
    [O_NOACCESS] = {"no-access-log", NULL, OPT_BOOL, NULL, 0, -1,
                    "no line on stderr per request (method, path, status or id, tokens, first token and total time)"},
    [O_STATS] = {"stats-interval", NULL, OPT_INT, "10", 0, 3600,
                 "seconds between stats lines on stderr while requests come (prompt and generation tokens/s, running, "
                 "waiting, KV cache use, prefix-cache hit rate; 0: none)"},
    [O_RBUDGET_MSG] = {"reasoning-budget-message", NULL, OPT_STR, NULL, 0, -1,
                       "text forced before the closing tag when the reasoning budget is spent (default none)"},
    [O_ETCDCA] = {"etcd-ca", NULL, OPT_STR, NULL, 0, -1, "https:// etcd: the CA (PEM) its certificate chains to (default: the system's)"},
    [O_ETCDCERT] = {"etcd-cert", NULL, OPT_STR, NULL, 0, -1, "https:// etcd with client-cert-auth: this process's certificate (PEM)"},
    [O_ETCDKEY] = {"etcd-key", NULL, OPT_STR, NULL, 0, -1, "... and its private key (PEM)"},
    [O_ETCD] = {"etcd", NULL, OPT_STR, NULL, 0, -1, "register in etcd (http(s)://HOST:PORT) under a lease, for routers"},
    [O_CLUSTER] = {"cluster", NULL, OPT_STR, "default", 0, -1, "cluster name: the key is /shardlm/NAME/engines/ID"},
    [O_ENGINE_ID] = {"engine-id", NULL, OPT_STR, NULL, 0, -1, "engine id in etcd (default HOST:PORT)"},
    [O_MVERSION] = {"model-version", NULL, OPT_STR, "", 0, -1, "model version label for rollouts (e.g. v2)"},
    [O_ADVERTISE] = {"advertise-url", NULL, OPT_STR, NULL, 0, -1, "URL routers use (default http://HOST:PORT)"},
    [O_ETCD_TTL] = {"etcd-ttl", NULL, OPT_INT, "10", 2, 3600, "etcd lease TTL, seconds"},
    [O_SPEC] = {"spec-ngram", NULL, OPT_INT, "0", 0, 16,
                "n-gram speculation: tokens a decoding sequence proposes from an earlier occurrence of its last "
                "tokens, checked in the same step (same output; 0: off)"},
    [O_SPEC_MIN] = {"spec-lookup-min", NULL, OPT_INT, "2", 1, 16, "shortest n-gram --spec-ngram looks up"},
    [O_SPEC_MAX] = {"spec-lookup-max", NULL, OPT_INT, "4", 1, 16, "longest n-gram --spec-ngram looks up"},
    [O_SPEC_SEQS] = {"spec-max-seqs", NULL, OPT_INT, "4", 1, 4096,
                     "no speculation while more sequences than this run (a step of many is bound by compute)"},
    CLI_DRAFT_OPTS(O_DRAFT, O_DRAFT_MAX, O_DRAFT_PMIN),
    CLI_KEY_PASSWORD_OPT(O_KEYPASS),
    [O_SPECCFG] = {"speculative-config", NULL, OPT_STR, NULL, 0, -1,
                   "vLLM's speculation settings, JSON: {\"model\": DRAFT, \"num_speculative_tokens\": K} (a draft "
                   "model, proposing K tokens a step) or {\"method\": \"ngram\", \"num_speculative_tokens\": K, "
                   "\"prompt_lookup_max\": N, \"prompt_lookup_min\": M}; \"disable_by_batch_size\" as --spec-max-seqs"},
};

/* vLLM's --speculative-config JSON into p (a draft model's path: *draft, kept in a static copy); false after
 * saying what is wrong. */
static bool speculative_config(const char *text, sl_sched_params *p, const char **draft) {
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    bool ok = false;
    const char *method = json_string_value(json_object_get(o, "method")), *model = json_string_value(json_object_get(o, "model"));
    const json_t *k = json_object_get(o, "num_speculative_tokens"), *dbs = json_object_get(o, "disable_by_batch_size");
    if (!json_is_object(o)) {
        fprintf(stderr, "shardlm serve: --speculative-config is not a JSON object: %s\n", o ? "" : je.text);
    } else if (!json_is_integer(k) || json_integer_value(k) < 1 || json_integer_value(k) > SL_MAX_SPEC) {
        fprintf(stderr, "shardlm serve: --speculative-config needs num_speculative_tokens, an integer from 1 to %d\n",
                SL_MAX_SPEC);
    } else if (dbs && (!json_is_integer(dbs) || json_integer_value(dbs) < 1)) {
        fprintf(stderr, "shardlm serve: --speculative-config: disable_by_batch_size must be an integer >= 1\n");
    } else if (method && !strcmp(method, "ngram")) {
        const json_t *mx = json_object_get(o, "prompt_lookup_max"), *mn = json_object_get(o, "prompt_lookup_min");
        p->spec_tokens = (int32_t)json_integer_value(k);
        if (json_is_integer(mx)) p->spec_lookup_max = (int32_t)json_integer_value(mx);
        if (json_is_integer(mn)) p->spec_lookup_min = (int32_t)json_integer_value(mn);
        ok = true;
    } else if ((!method || !strcmp(method, "draft_model")) && model) {
        static char path[4096];
        snprintf(path, sizeof path, "%s", model);
        *draft = path;
        p->draft_max = (int32_t)json_integer_value(k);
        p->draft_p_min = 0; /* (vLLM's draft proposes its K tokens each step) */
        ok = true;
    } else {
        fprintf(stderr, "shardlm serve: --speculative-config: method '%s' is not supported here (\"ngram\", or a draft "
                        "\"model\" are)\n", method ? method : "(none, and no model)");
    }
    if (ok && dbs) p->spec_max_seqs = (int32_t)json_integer_value(dbs);
    json_decref(o);
    return ok;
}

/* Whether a template compiles (a syntax error is known before any request). */
static bool template_compiles(const char *src) {
    sl_template *t = NULL;
    sl_status st = sl_template_compile(src, strlen(src), &t);
    sl_template_destroy(t);
    return st == SL_OK;
}

/* The chat template: --chat-template FILE (it must compile), else the file's
 * own (one that does not compile is reported and replaced by the built-in
 * fallback, as llama.cpp does); NULL = built-in fallback. */
static char *load_template(const opt_val *v, const sl_model *m, bool *failed) {
    *failed = false;
    if (v->set) {
        char *t = sl_read_file(v->s, NULL);
        if (!t) {
            fprintf(stderr, "shardlm serve: cannot read --chat-template '%s'\n", v->s);
            *failed = true;
        } else if (!template_compiles(t)) {
            fprintf(stderr, "shardlm serve: --chat-template '%s': %s\n", v->s, sl_last_error());
            free(t);
            t = NULL;
            *failed = true;
        }
        return t;
    }
    sl_str s;
    if (sl_gguf_find(m->gguf, "tokenizer.chat_template") && sl_gguf_get_str(m->gguf, "tokenizer.chat_template", &s) == SL_OK) {
        char *t = strndup(s.ptr, s.len);
        if (t && !template_compiles(t)) {
            fprintf(stderr, "shardlm serve: warning: the model's tokenizer.chat_template does not compile (%s); chat "
                            "requests use the built-in template\n", sl_last_error());
            free(t);
            t = NULL;
        }
        return t;
    }
    return NULL;
}

static char *default_model_id(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (n > 5 && !strcmp(b + n - 5, ".gguf")) n -= 5;
    return sl_strndup(b, n);
}

int cmd_serve(int argc, char **argv) {
    opt_val v[O_COUNT];
    const char *pos[1];
    int n_pos;
    int r = opts_parse("serve", "-m MODEL [--host H] [--port P] [options]", OPTS, O_COUNT, v, argc, argv, pos, 0, &n_pos);
    if (r) return r > 0 ? 0 : 1;
    /* other servers' names of the same settings */
    static const int same[][2] = {{O_MAXLEN, O_CTX}, {O_ALIAS, O_NAME}, {O_PARALLEL, O_SEQS}, {O_TPLKW2, O_TPLKW}};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        if (!v[same[i][0]].set) continue;
        if (v[same[i][1]].set && same[i][1] != O_SEQS && same[i][1] != O_CTX) {
            fprintf(stderr, "shardlm serve: --%s and --%s are the same setting: give one\n", OPTS[same[i][0]].name,
                    OPTS[same[i][1]].name);
            return 1;
        }
        v[same[i][1]] = v[same[i][0]];
    }
    if (!cli_etcd_tls("serve", v[O_ETCDCA].set ? v[O_ETCDCA].s : NULL, v[O_ETCDCERT].set ? v[O_ETCDCERT].s : NULL,
                      v[O_ETCDKEY].set ? v[O_ETCDKEY].s : NULL)) return 1;
    /* signals are taken by this thread only (sigtimedwait below) */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    sl_metrics *metrics = calloc(1, sizeof *metrics);
    char *model_id = NULL, *chat_template = NULL;
    sl_sched *sched = NULL;
    sl_http *http = NULL;
    sl_api_ctx api = {0}; /* (its request defaults are freed at the end) */
    sl_etcd_reg *reg = NULL;
    sl_model *m = cli_load_model("serve", v[O_MODEL].s), *draft = NULL;
    if (!m || !metrics) goto done;
    sl_metrics_init(metrics);
    /* vLLM's several served names (here separated by commas): the first is the one answers carry */
    const char *names = v[O_NAME].set ? v[O_NAME].s : NULL;
    if (names && (!*names || strstr(names, ",,") || names[0] == ',' || names[strlen(names) - 1] == ',')) {
        fprintf(stderr, "shardlm serve: --served-model-name '%s': an empty name among them\n", names);
        goto done;
    }
    model_id = names ? sl_strndup(names, strcspn(names, ",")) : default_model_id(v[O_MODEL].s);
    sl_sched_params sp = {
        .n_ctx = (int32_t)v[O_CTX].i,
        .n_threads = v[O_THREADS].set ? (int32_t)v[O_THREADS].i : cli_default_threads(),
        .max_num_seqs = (int32_t)v[O_SEQS].i,
        .max_num_batched_tokens = (int32_t)(v[O_BATCHED].set ? v[O_BATCHED].i
                                            : v[O_SEQS].i > SERVE_STEP_TOKENS ? v[O_SEQS].i : SERVE_STEP_TOKENS),
        .max_prefill_tokens = (int32_t)v[O_PREFILL].i,
        .block_size = (int32_t)v[O_BLOCK].i,
        .prefix_caching = !v[O_NOPREFIX].b,
        .spec_tokens = (int32_t)v[O_SPEC].i,
        .spec_lookup_min = (int32_t)v[O_SPEC_MIN].i,
        .spec_lookup_max = (int32_t)v[O_SPEC_MAX].i,
        .spec_max_seqs = (int32_t)v[O_SPEC_SEQS].i,
        .priority_policy = !strcmp(v[O_SCHEDPOL].s, "priority"),
    };
    const char *draft_path = v[O_DRAFT].set ? v[O_DRAFT].s : NULL;
    sp.draft_max = (int32_t)v[O_DRAFT_MAX].i;
    sp.draft_p_min = (float)v[O_DRAFT_PMIN].f;
    if (v[O_SPECCFG].set && !speculative_config(v[O_SPECCFG].s, &sp, &draft_path)) goto done;
    if (draft_path && !(draft = cli_load_model("serve", draft_path))) goto done;
    sp.draft = draft;
    if (strcmp(v[O_SCHEDPOL].s, "fcfs") && strcmp(v[O_SCHEDPOL].s, "priority")) {
        fprintf(stderr, "shardlm serve: --scheduling-policy '%s' is not one of fcfs, priority\n", v[O_SCHEDPOL].s);
        goto done;
    }
    if (sp.max_num_batched_tokens < sp.max_num_seqs) {
        fprintf(stderr,
                "shardlm serve: --max-num-batched-tokens %d is less than --max-num-seqs %d: every running sequence "
                "needs one token of each step\n",
                sp.max_num_batched_tokens, sp.max_num_seqs);
        goto done;
    }
    if (!cli_parse_mem_mib(v[O_KVMEM].s, &sp.kv_mem_mib)) {
        fprintf(stderr, "shardlm serve: --kv-mem '%s' is neither MiB (1 to 16777216) nor a share of RAM like 25%%\n",
                v[O_KVMEM].s);
        goto done;
    }
    if (!sl_kv_type_from_name(v[O_KVTYPE].s, &sp.kv_type)) {
        fprintf(stderr, "shardlm serve: --kv-type '%s' is not one of f32, f16, q8_0\n", v[O_KVTYPE].s);
        goto done;
    }
    if (sl_kvm_parse_pools(v[O_POOLS].s, sp.pools, &sp.n_pools) != SL_OK) {
        fprintf(stderr, "shardlm serve: %s\n", sl_last_error());
        goto done;
    }
    if (sl_sched_create(m, model_id, &sp, metrics, &sched) != SL_OK) {
        fprintf(stderr, "shardlm serve: %s\n", sl_last_error());
        goto done;
    }
    bool tpl_failed;
    chat_template = load_template(&v[O_TEMPLATE], m, &tpl_failed);
    if (tpl_failed) goto done;
    api = (sl_api_ctx){.model = m, .model_id = model_id, .model_names = names && strchr(names, ',') ? names : NULL,
                       .model_path = v[O_MODEL].s, .n_ctx = sl_sched_n_ctx(sched),
                       .chat_template = chat_template, .priority_policy = sp.priority_policy};
    if (!sl_reasoning_format_from_name(v[O_REASONING].s, &api.reasoning)) {
        fprintf(stderr, "shardlm serve: --reasoning-format '%s' is not one of none, deepseek, auto\n", v[O_REASONING].s);
        goto done;
    }
    api.pooling = sl_pooling_default(m->hp.pooling_type);
    if (api.pooling == SL_POOL_RANK && !sl_model_can_rank(m)) api.pooling = SL_POOL_LAST; /* (no head to rank with) */
    if (v[O_POOLING].set && !sl_pooling_from_name(v[O_POOLING].s, &api.pooling)) {
        fprintf(stderr, "shardlm serve: --pooling '%s' is not one of mean, cls, last, none, rank\n", v[O_POOLING].s);
        goto done;
    }
    if (v[O_RERANK].b) api.pooling = SL_POOL_RANK;
    char why[512];
    if (v[O_HFOVER].set && !sl_api_hf_overrides(&api, v[O_HFOVER].s, why, sizeof why)) {
        fprintf(stderr, "shardlm serve: %s\n", why);
        goto done;
    }
    const sl_api_flag_defaults fd = {
        .temperature = v[O_TEMP].set ? v[O_TEMP].f : NAN, .top_p = v[O_TOPP].set ? v[O_TOPP].f : NAN,
        .min_p = v[O_MINP].set ? v[O_MINP].f : NAN, .repeat_penalty = v[O_REPEAT].set ? v[O_REPEAT].f : NAN,
        .presence_penalty = v[O_PRESENCE].set ? v[O_PRESENCE].f : NAN,
        .frequency_penalty = v[O_FREQUENCY].set ? v[O_FREQUENCY].f : NAN, .top_k = v[O_TOPK].set ? v[O_TOPK].i : -1,
        .n_predict = v[O_NPREDICT].set ? v[O_NPREDICT].i : -1, .seed = v[O_SEED].set ? v[O_SEED].i : -1};
    if (!sl_api_defaults(&api, v[O_GENCONFIG].set ? v[O_GENCONFIG].s : NULL, &fd, why, sizeof why) ||
        (v[O_TPLKW].set && !sl_api_template_kwargs(&api, v[O_TPLKW].s, why, sizeof why))) {
        fprintf(stderr, "shardlm serve: %s\n", why);
        goto done;
    }
    api.think_budget_on = true;
    api.think_budget = (int32_t)v[O_RBUDGET].i;
    api.think_budget_message = v[O_RBUDGET_MSG].set ? v[O_RBUDGET_MSG].s : NULL;
    if (api.pooling == SL_POOL_RANK && !sl_model_can_rank(m)) {
        fprintf(stderr, "shardlm serve: %s has no classification head (cls.output.weight or cls.weight): it cannot rank "
                "(--pooling rank, --reranking)\n", v[O_MODEL].s);
        goto done;
    }
    sl_http_cfg hc = {.host = v[O_HOST].s, .port = (int)v[O_PORT].i, .api_key = v[O_APIKEY].set ? v[O_APIKEY].s : NULL,
                      .max_body_bytes = v[O_MAXBODY].i, .max_connections = (int)v[O_MAXCONN].i,
                      .responses_store = (int)v[O_RSTORE].i, .responses_store_mib = v[O_RSTORE_MIB].i,
                      .allowed_origins = v[O_ORIGINS].s, .access_log = !v[O_NOACCESS].b,
                      .api_key_file = v[O_KEYFILE].set ? v[O_KEYFILE].s : NULL,
                      .tls_key_file = v[O_SSLKEY].set ? v[O_SSLKEY].s : v[O_SSLKEY2].set ? v[O_SSLKEY2].s : NULL,
                      .tls_key_password = v[O_KEYPASS].set ? v[O_KEYPASS].s : NULL,
                      .tls_cert_file = v[O_SSLCERT].set ? v[O_SSLCERT].s : v[O_SSLCERT2].set ? v[O_SSLCERT2].s : NULL,
                      .tls_ca_file = v[O_SSLCA].set ? v[O_SSLCA].s : NULL, .tls_cert_reqs = (int)v[O_CERTREQS].i,
                      .tls_refresh = v[O_SSLREFRESH].b};
    if (sl_http_start(&hc, &api, sched, metrics, &http) != SL_OK) {
        fprintf(stderr, "shardlm serve: %s\n", sl_last_error());
        goto done;
    }
    sl_http_set_ready(http, true);
    char where[128];
    sl_host_url(v[O_HOST].s, sl_http_port(http), hc.tls_key_file != NULL, false, where, sizeof where);
    printf("shardlm serve: model '%s' on %s (context %d, %d threads, KV cache %.1f MiB: %lld tokens)\n", model_id, where,
           sl_sched_n_ctx(sched), sp.n_threads, (double)sl_sched_kv_bytes(sched) / (1 << 20),
           (long long)sl_sched_kv_tokens(sched));
    fflush(stdout);
    sl_etcd_reg_cfg ec = {.etcd = v[O_ETCD].s, .cluster = v[O_CLUSTER].s, .id = v[O_ENGINE_ID].s,
                          .url = v[O_ADVERTISE].s, .host = v[O_HOST].s, .port = sl_http_port(http), .model = api.model_names ? api.model_names : model_id,
                          .tls = hc.tls_key_file != NULL, .version = v[O_MVERSION].s, .capacity = (int)v[O_SEQS].i, .ttl_s = (int)v[O_ETCD_TTL].i};
    if (v[O_ETCD].set && sl_etcd_register_start(&ec, &reg) != SL_OK) {
        fprintf(stderr, "shardlm serve: %s\n", sl_last_error());
        goto done;
    }

    int sig;
    stats_state ss = {0};
    for (;;) { /* a stats line every --stats-interval seconds while requests come (vLLM's, llama.cpp's) */
        const struct timespec wait = {v[O_STATS].i > 0 ? v[O_STATS].i : 3600, 0};
        sig = sigtimedwait(&sigs, NULL, &wait);
        if (sig >= 0) break;
        if (errno == EAGAIN && v[O_STATS].i > 0) log_stats(metrics, &ss, (double)v[O_STATS].i);
    }
    fprintf(stderr, "shardlm serve: signal %d: draining (at most %lld s)\n", sig, (long long)v[O_SHUTDOWN].i);
    sl_etcd_register_stop(reg); /* leave the membership first */
    reg = NULL;
    sl_http_drain(http);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (sl_http_in_flight(http) == 0) break;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (t1.tv_sec - t0.tv_sec >= v[O_SHUTDOWN].i) {
            fprintf(stderr, "shardlm serve: %d requests still running at the shutdown timeout: aborting them\n",
                    sl_http_in_flight(http));
            break;
        }
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    rc = 0;
done:
    sl_etcd_register_stop(reg);
    /* the scheduler goes first: it finishes (aborts) what is left, which wakes the HTTP threads */
    sl_sched_destroy(sched);
    sl_http_stop(http);
    json_decref(api.defaults);
    json_decref(api.template_kwargs);
    sl_model_destroy(m);
    sl_model_destroy(draft);
    sl_free(model_id);
    free(chat_template);
    free(metrics);
    return rc;
}

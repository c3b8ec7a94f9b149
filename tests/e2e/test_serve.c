/*
 * test_serve.c — `shardlm serve` end to end: the real binary on 127.0.0.1
 * (port 0), talked to over HTTP with libcurl.
 *
 * Greedy output against llama.cpp's golden text; 16 concurrent requests
 * against each alone; SSE framing; prefix-cache hits; length-class pool
 * isolation; client disconnects freeing every block; bad input → 4xx with
 * the field named while the server keeps serving; API key; body limit;
 * SIGTERM drain.
 */
#include "harness.h"

#include "compute/quant.h"
#include "core/strbuf.h"
#include "model/model.h"
#include "rerank_util.h"
#include "tls_util.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MODEL "../shared/models/stories260K.gguf"

/* ---- HTTP helpers ------------------------------------------------------- */

typedef struct resp {
    long status;
    char *body;
    size_t n;
    double t_first; /* seconds from start to the first body byte */
    double t0;
} resp;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static size_t on_data(char *p, size_t sz, size_t nm, void *ud) {
    resp *r = ud;
    size_t n = sz * nm;
    if (r->n == 0 && n > 0) r->t_first = now_s() - r->t0;
    char *nb = realloc(r->body, r->n + n + 1);
    if (!nb) return 0;
    r->body = nb;
    memcpy(r->body + r->n, p, n);
    r->n += n;
    r->body[r->n] = '\0';
    return n;
}

static const char *tls_ca; /* the CA file clients trust (NULL: the system's) */
static const char *tls_cert, *tls_key; /* the client certificate they present (NULL: none) */

static CURL *make_easy(const char *url, const char *path, const char *body, const char *auth, resp *r,
                       struct curl_slist **hdrs) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", url, path);
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, full);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (tls_ca) curl_easy_setopt(c, CURLOPT_CAINFO, tls_ca); /* (the HTTPS test's own certificate) */
    if (tls_cert) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, tls_cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, tls_key);
    }
    *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (auth) *hdrs = curl_slist_append(*hdrs, auth);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdrs);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    r->t0 = now_s();
    return c;
}

static resp http(const char *url, const char *path, const char *body, const char *auth) {
    resp r = {0};
    struct curl_slist *h;
    CURL *c = make_easy(url, path, body, auth, &r, &h);
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    if (!r.body) r.body = calloc(1, 1);
    return r;
}

/* A request with another method (no body). */
static resp http_method(const char *url, const char *method, const char *path) {
    resp r = {0};
    struct curl_slist *h;
    CURL *c = make_easy(url, path, NULL, NULL, &r, &h);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    if (!r.body) r.body = calloc(1, 1);
    return r;
}

/* Text of a non-streaming completion (choices[0].text or .message.content); caller frees. */
/* llama.cpp's golden run nn of stories260K (prompt, ids, text), or NULL. */
static json_t *golden_json(int nn) {
    char path[128];
    snprintf(path, sizeof path, "golden/stories260K/main.%02d.json", nn);
    const char *p = sl_test_shared(path);
    json_error_t je;
    return p ? json_load_file(p, 0, &je) : NULL;
}

static char *completion_text(const resp *r) {
    json_error_t je;
    json_t *o = json_loads(r->body, 0, &je);
    json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
    json_t *t = json_object_get(ch, "text");
    if (!t) t = json_object_get(json_object_get(ch, "message"), "content");
    char *s = json_is_string(t) ? strdup(json_string_value(t)) : NULL;
    json_decref(o);
    return s;
}

static long long usage_field(const resp *r, const char *a, const char *b) {
    json_error_t je;
    json_t *o = json_loads(r->body, 0, &je);
    json_t *u = json_object_get(json_object_get(o, "usage"), a);
    if (b) u = json_object_get(u, b);
    long long v = json_is_integer(u) ? json_integer_value(u) : -1;
    json_decref(o);
    return v;
}

/* Value of a metric line starting with `prefix` (e.g. "shardlm_kv_blocks{...state=\"used\"}"). Sums matches. */
static double metric(const char *url, const char *name, const char *label_sub) {
    resp r = http(url, "/metrics", NULL, NULL);
    double sum = 0;
    for (char *line = strtok(r.body, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || strncmp(line, name, strlen(name)) != 0) continue;
        if (line[strlen(name)] != '{' && line[strlen(name)] != ' ') continue;
        if (label_sub && !strstr(line, label_sub)) continue;
        const char *sp = strrchr(line, ' ');
        if (sp) sum += atof(sp + 1);
    }
    free(r.body);
    return sum;
}

static bool wait_blocks_free(const char *url, double timeout_s) {
    double t0 = now_s();
    while (now_s() - t0 < timeout_s) {
        if (metric(url, "shardlm_kv_blocks", "state=\"used\"") == 0 && metric(url, "shardlm_requests_running", NULL) == 0)
            return true;
        usleep(20000);
    }
    return false;
}

static sl_test_proc server;
static bool server_up;

static const char *start_default(void) {
    if (server_up) return server.url;
    /* F32 KV: exact agreement with llama.cpp's F32-KV golden outputs */
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--kv-type", "f32", NULL};
    if (sl_test_proc_start(&server, args, 20) != 0) return NULL;
    server_up = true;
    return server.url;
}

/* ---- tests ------------------------------------------------------------------ */

TEST(serve_health_ready_models) {
    const char *url = start_default();
    CHECK_MSG(url, "server did not start");
    resp r = http(url, "/health", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    free(r.body);
    r = http(url, "/ready", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    free(r.body);
    r = http(url, "/v1/models", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK_MSG(strstr(r.body, "\"id\":\"stories260K\""), "models: %s", r.body);
    free(r.body);
    r = http(url, "/v1/models/stories260K", NULL, NULL); /* OpenAI's retrieve */
    CHECK_EQ_INT(r.status, 200);
    CHECK_MSG(strstr(r.body, "\"id\":\"stories260K\"") && strstr(r.body, "\"object\":\"model\""), "%s", r.body);
    free(r.body);
    r = http(url, "/v1/models/gpt-5", NULL, NULL);
    CHECK_EQ_INT(r.status, 404);
    CHECK_MSG(strstr(r.body, "\"code\":\"model_not_found\""), "%s", r.body);
    free(r.body);
    r = http(url, "/nope", NULL, NULL);
    CHECK_EQ_INT(r.status, 404);
    free(r.body);
    r = http(url, "/v1/completions", NULL, NULL); /* GET */
    CHECK_EQ_INT(r.status, 405);
    free(r.body);
    /* llama.cpp's other names: /v1/health, /models, /chat/completions; its /slots (not ours) is a 501 */
    r = http(url, "/v1/health", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    free(r.body);
    r = http(url, "/models", NULL, NULL);
    CHECK_MSG(r.status == 200 && strstr(r.body, "\"id\":\"stories260K\""), "%s", r.body);
    free(r.body);
    r = http(url, "/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":2}", NULL);
    CHECK_MSG(r.status == 200 && strstr(r.body, "\"object\":\"chat.completion\""), "%s", r.body);
    free(r.body);
    r = http(url, "/slots", NULL, NULL);
    CHECK_EQ_INT(r.status, 501);
    free(r.body);
    /* Ollama's model endpoints and /api/chat, as llama.cpp answers them */
    r = http(url, "/api/tags", NULL, NULL);
    json_t *o = json_loads(r.body, 0, NULL);
    CHECK_MSG(r.status == 200 && !strcmp(json_string_value(json_object_get(json_array_get(json_object_get(o, "models"), 0),
                                                                          "name")) ?: "", "stories260K") &&
                  json_array_size(json_object_get(o, "data")) == 1,
              "%s", r.body);
    json_decref(o);
    free(r.body);
    r = http(url, "/api/show", "{\"model\":\"stories260K\"}", NULL);
    o = json_loads(r.body, 0, NULL);
    CHECK_MSG(r.status == 200 && json_integer_value(json_object_get(json_object_get(o, "model_info"), "llama.context_length")) == 512 &&
                  json_string_length(json_object_get(o, "template")) > 0,
              "%s", r.body);
    json_decref(o);
    free(r.body);
    r = http(url, "/api/chat", "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],"
                               "\"stream\":false,\"options\":{\"num_predict\":2}}", NULL);
    CHECK_MSG(r.status == 200 && strstr(r.body, "\"done\":true") && strstr(r.body, "\"eval_count\":2"), "%s", r.body);
    free(r.body);
}

/* Ollama's native API (server/ollama.h) where its client does not look: a raw generate gives llama.cpp's golden
 * greedy text; a stream is newline-delimited JSON (application/x-ndjson), every line an object, only the last
 * one done; a request with no messages loads the model; each bad input a 400 in Ollama's form naming the
 * field, and the server keeps serving. */
TEST(serve_ollama_api) {
    const char *url = start_default();
    CHECK(url);
    for (int nn = 0; nn < 6; nn++) {
        json_t *g = golden_json(nn);
        CHECK(g);
        if (json_string_length(json_object_get(g, "prompt")) == 0) { /* (an empty prompt only loads the model) */
            json_decref(g);
            continue;
        }
        json_t *req = json_pack("{s:s,s:O,s:b,s:b,s:{s:f,s:f,s:i}}", "model", "stories260K", "prompt",
                                json_object_get(g, "prompt"), "raw", 1, "stream", 0, "options", "temperature", 0.0,
                                "repeat_penalty", 1.0, "num_predict", 64);
        char *body = json_dumps(req, 0);
        json_decref(req);
        resp r = http(url, "/api/generate", body, NULL);
        free(body);
        json_t *o = json_loads(r.body, 0, NULL);
        const char *text = json_string_value(json_object_get(o, "response")),
                   *want = json_string_value(json_object_get(g, "generated_text"));
        const bool cut = !strcmp(json_string_value(json_object_get(o, "done_reason")) ?: "", "length");
        /* (stopped at the end of text before 64 tokens: the golden's start, which ran on past it) */
        CHECK_MSG(r.status == 200 && text && want && (cut ? !strcmp(text, want) : !strncmp(text, want, strlen(text))) &&
                      (!cut || json_integer_value(json_object_get(o, "eval_count")) == 64) &&
                      json_integer_value(json_object_get(o, "prompt_eval_count")) ==
                          (json_int_t)json_array_size(json_object_get(g, "prompt_token_ids")),
                  "prompt %02d: %s\n    want [%s]", nn, r.body, want ? want : "");
        json_decref(o);
        json_decref(g);
        free(r.body);
    }

    resp r = {0};
    struct curl_slist *hd;
    CURL *c = make_easy(url, "/api/chat", "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":"
                        "\"Hi\"}],\"options\":{\"num_predict\":6,\"temperature\":0}}", NULL, &r, &hd);
    char *ctype = NULL;
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ctype);
    }
    CHECK_MSG(r.status == 200 && ctype && !strcmp(ctype, "application/x-ndjson"), "%ld %s", r.status, ctype ? ctype : "");
    curl_easy_cleanup(c);
    curl_slist_free_all(hd);
    int lines = 0, done = 0;
    bool all_objects = r.body != NULL;
    for (char *p = r.body, *nl; p && (nl = strchr(p, '\n')); p = nl + 1, lines++) {
        json_t *o = json_loadb(p, (size_t)(nl - p), 0, NULL);
        all_objects &= json_is_object(o) && json_is_object(json_object_get(o, "message"));
        if (json_is_true(json_object_get(o, "done"))) done = lines + 1; /* (the line it was, from 1) */
        json_decref(o);
    }
    CHECK_MSG(all_objects && lines >= 2 && done == lines && r.body[r.n - 1] == '\n', "%s", r.body ? r.body : "");
    free(r.body);

    r = http(url, "/api/chat", "{\"model\":\"stories260K:latest\",\"messages\":[]}", NULL);
    CHECK_MSG(r.status == 200 && strstr(r.body, "\"done_reason\":\"load\""), "%s", r.body);
    free(r.body);
    r = http(url, "/api/generate", "{\"model\":\"llama3.2\"}", NULL); /* (loading a model not served) */
    CHECK_MSG(r.status == 404 && strstr(r.body, "{\"error\":"), "%s", r.body);
    free(r.body);

    static const struct {
        const char *path, *body, *field;
    } bad[] = {
        {"/api/chat", "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\",\"images\":[\"aGk=\"]}]}",
         "images"},
        {"/api/chat", "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"bot\",\"content\":\"Hi\"}]}", "role"},
        {"/api/chat", "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"user\",\"content\":5}]}", "content"},
        {"/api/chat", "{\"model\":\"stories260K\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"x\":1}]}]}",
         "tool_calls"},
        {"/api/chat", "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", "model"},
        {"/api/chat", "{\"model\":\"stories260K\",\"messages\":{}}", "messages"},
        {"/api/generate", "{\"model\":\"stories260K\",\"prompt\":\"Hi\",\"images\":[\"aGk=\"]}", "images"},
        {"/api/generate", "{\"model\":\"stories260K\",\"prompt\":\"Hi\",\"template\":\"{{ .Prompt }}\"}", "template"},
        {"/api/generate", "{\"model\":\"stories260K\",\"prompt\":\"Hi\",\"context\":[1,2,3]}", "context"},
        {"/api/generate", "{\"model\":\"stories260K\",\"prompt\":7}", "prompt"},
        {"/api/generate", "{\"model\":\"stories260K\",\"prompt\":\"Hi\",\"format\":5}", "format"},
        {"/api/generate", "{\"model\":\"stories260K\",\"prompt\":\"Hi\",\"options\":[]}", "options"},
        {"/api/generate", "{\"model\":\"stories260K\",\"prompt\":\"Hi\",\"options\":{\"num_predict\":\"x\"}}",
         "options.num_predict"},
        {"/api/generate", "{\"model\":\"stories260K\",\"prompt\":\"Hi\",\"options\":{\"top_p\":7}}", "top_p"},
        {"/api/generate", "{\"model\":\"stories260K\",\"prompt\":\"Hi\",\"think\":\"maybe\"}", "think"},
        {"/api/generate", "{\"model\":\"stories260K\",\"prompt\":\"Hi\",\"stream\":\"yes\"}", "stream"},
        {"/api/generate", "{\"model\":\"stories260K\",\"prompt\":\"Hi\",\"raw\":1}", "raw"},
        {"/api/generate", "{\"model\":", "JSON"},
        {"/api/embed", "{\"model\":\"stories260K\",\"input\":[1,2]}", "input"},
        {"/api/embed", "{\"model\":\"stories260K\",\"input\":\"a\",\"truncate\":\"no\"}", "truncate"},
        {"/api/embeddings", "{\"model\":\"stories260K\",\"prompt\":[\"a\"]}", "prompt"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = http(url, bad[i].path, bad[i].body, NULL);
        json_t *o = json_loads(r.body, 0, NULL);
        const char *err = json_string_value(json_object_get(o, "error"));
        CHECK_MSG(r.status == 400 && err && strstr(err, bad[i].field) && json_object_size(o) == 1, "%s %s: %ld %s",
                  bad[i].path, bad[i].body, r.status, r.body);
        json_decref(o);
        free(r.body);
    }
    /* the model's details: stories260K's 292,800 parameters (llama2.c's shape: 512 × 64 embeddings and output, 5
     * layers of 4096 + 2048 + 2048 + 4096 attention and 3 × 172 × 64 feed-forward weights and 2 × 64 norms, a 64 norm) */
    r = http(url, "/api/show", "{\"model\":\"stories260K\"}", NULL);
    json_t *so = json_loads(r.body, 0, NULL);
    CHECK_MSG(r.status == 200 &&
                  !strcmp(json_string_value(json_object_get(json_object_get(so, "details"), "parameter_size")) ?: "", "292.80K") &&
                  json_integer_value(json_object_get(json_object_get(so, "model_info"), "general.parameter_count")) == 292800 &&
                  !strcmp(json_string_value(json_array_get(json_object_get(so, "capabilities"), 0)) ?: "", "completion"),
              "%.400s", r.body);
    json_decref(so);
    free(r.body);
    r = http(url, "/api/version", "{}", NULL);
    CHECK_EQ_INT(r.status, 405);
    free(r.body);
    r = http(url, "/api/version", NULL, NULL);
    CHECK_MSG(r.status == 200 && strstr(r.body, "\"version\""), "%s", r.body);
    free(r.body);
    r = http(url, "/api/generate", "{\"model\":\"stories260K\",\"prompt\":\"Hi\",\"stream\":false,\"options\":{\"num_predict\":3}}",
             NULL);
    CHECK_MSG(r.status == 200 && strstr(r.body, "\"eval_count\":3"), "%s", r.body);
    free(r.body);
}

/* Greedy output through HTTP equals llama.cpp's golden text for every prompt. */
TEST(serve_greedy_matches_golden) {
    const char *url = start_default();
    CHECK(url);
    for (int nn = 0; nn < 6; nn++) {
        char path[128];
        snprintf(path, sizeof path, "golden/stories260K/main.%02d.json", nn);
        const char *jp = sl_test_shared(path);
        CHECK(jp);
        json_error_t je;
        json_t *g = json_load_file(jp, 0, &je);
        CHECK(g);
        json_t *req = json_pack("{s:O,s:i,s:f,s:b}", "prompt", json_object_get(g, "prompt"), "max_tokens", 64,
                                "temperature", 0.0, "ignore_eos", 1);
        char *body = json_dumps(req, 0);
        json_decref(req);
        resp r = http(url, "/v1/completions", body, NULL);
        free(body);
        char *text = completion_text(&r);
        long long np = usage_field(&r, "prompt_tokens", NULL), nc = usage_field(&r, "completion_tokens", NULL);
        const char *want = json_string_value(json_object_get(g, "generated_text"));
        long long want_np = (long long)json_array_size(json_object_get(g, "prompt_token_ids"));
        int same = text && !strcmp(text, want);
        if (!same) fprintf(stderr, "    prompt %02d: got [%s]\n    want [%s]\n", nn, text ? text : r.body, want);
        free(text);
        free(r.body);
        json_decref(g);
        CHECK_EQ_INT(r.status, 200);
        CHECK(same);
        CHECK_EQ_INT(np, want_np);
        CHECK_EQ_INT(nc, 64);
    }
}

/* What an answer says, whole or as the events of a stream, choice by choice: the text of choice k
 * (completions' text, chat's message or delta content) joined in texts[k], chat's reasoning_content in
 * reasoning[k], its last finish reason in finish[k] ("" if none), and the usage's prompt and completion
 * tokens (-1 if none). Frees r's body. */
typedef struct answer {
    json_t *texts, *reasoning, *finish;
    long long np, nc;
} answer;

static void answer_free(answer *a) {
    json_decref(a->texts);
    json_decref(a->reasoning);
    json_decref(a->finish);
}

/* list[k] += the string s (nothing when s is not a string) */
static void join_at(json_t *list, size_t k, const json_t *s) {
    char *joined = NULL;
    if (json_is_string(s) &&
        asprintf(&joined, "%s%s", json_string_value(json_array_get(list, k)), json_string_value(s)) > 0)
        json_array_set_new(list, k, json_string(joined));
    free(joined);
}

static answer read_answer(resp *r, bool stream, int n) {
    answer a = {.texts = json_array(), .reasoning = json_array(), .finish = json_array(), .np = -1, .nc = -1};
    for (int k = 0; k < n; k++) {
        json_array_append_new(a.texts, json_string(""));
        json_array_append_new(a.reasoning, json_string(""));
        json_array_append_new(a.finish, json_string(""));
    }
    char *save = NULL;
    for (char *ev = stream ? strtok_r(r->body, "\n", &save) : r->body; ev;
         ev = stream ? strtok_r(NULL, "\n", &save) : NULL) {
        const char *js = stream ? (strncmp(ev, "data: {", 7) ? NULL : ev + 6) : ev;
        json_error_t je;
        json_t *o = js ? json_loads(js, 0, &je) : NULL;
        size_t i;
        json_t *ch;
        json_array_foreach(json_object_get(o, "choices"), i, ch) {
            const json_int_t k = json_integer_value(json_object_get(ch, "index"));
            const json_t *msg = json_object_get(ch, stream ? "delta" : "message"), *t = json_object_get(ch, "text");
            if (!t) t = json_object_get(msg, "content");
            if (k < 0 || k >= n) continue;
            join_at(a.texts, (size_t)k, t);
            join_at(a.reasoning, (size_t)k, json_object_get(msg, "reasoning_content"));
            if (json_is_string(json_object_get(ch, "finish_reason")))
                json_array_set(a.finish, (size_t)k, json_object_get(ch, "finish_reason"));
        }
        json_t *u = json_object_get(o, "usage");
        if (json_is_object(u)) {
            a.np = json_integer_value(json_object_get(u, "prompt_tokens"));
            a.nc = json_integer_value(json_object_get(u, "completion_tokens"));
        }
        json_decref(o);
    }
    free(r->body);
    r->body = NULL;
    return a;
}

/* Several prompts in one request (a list): choice i is llama.cpp's golden text
 * for prompt i, whole and streamed (events of the choices interleave, each
 * with its index); usage sums the prompts. */
TEST(serve_several_prompts_match_golden) {
    const char *url = start_default();
    CHECK(url);
    json_t *prompts = json_array(), *want = json_array();
    long long want_np = 0;
    for (int nn = 0; nn < 6; nn++) {
        json_t *g = golden_json(nn);
        CHECK(g);
        json_array_append(prompts, json_object_get(g, "prompt"));
        json_array_append(want, json_object_get(g, "generated_text"));
        want_np += (long long)json_array_size(json_object_get(g, "prompt_token_ids"));
        json_decref(g);
    }
    for (int stream = 0; stream < 2; stream++) {
        json_t *req = json_pack("{s:O,s:i,s:f,s:b,s:b}", "prompt", prompts, "max_tokens", 64, "temperature", 0.0,
                                "ignore_eos", 1, "stream", stream);
        if (stream) json_object_set_new(req, "stream_options", json_pack("{s:b}", "include_usage", 1));
        char *body = json_dumps(req, 0);
        json_decref(req);
        resp r = http(url, "/v1/completions", body, NULL);
        free(body);
        CHECK_EQ_INT(r.status, 200);
        answer a = read_answer(&r, stream, 6);
        int same = 0;
        for (int k = 0; k < 6; k++) {
            const char *w = json_string_value(json_array_get(want, (size_t)k));
            const char *t = json_string_value(json_array_get(a.texts, (size_t)k));
            if (!strcmp(t, w)) same++;
            else fprintf(stderr, "    %s prompt %d: got [%s]\n    want [%s]\n", stream ? "streamed" : "whole", k, t, w);
        }
        CHECK_EQ_INT(same, 6);
        CHECK_EQ_INT(a.np, want_np);
        CHECK_EQ_INT(a.nc, 6 * 64);
        answer_free(&a);
    }
    json_decref(prompts);
    json_decref(want);
    /* refused, naming the prompt: too many, an empty list, a prompt that is neither text nor ids */
    json_t *many = json_array();
    for (int i = 0; i < 65; i++) json_array_append_new(many, json_string("Once"));
    json_t *req = json_pack("{s:o}", "prompt", many);
    char *body = json_dumps(req, 0);
    json_decref(req);
    const char *bad[] = {body, "{\"prompt\":[]}", "{\"prompt\":[\"Once\", 5]}", "{\"prompt\":[\"Once\", [1, 512]]}"};
    const char *says[] = {"at most 64", "must be a string", "'prompt[1]' must be", "'prompt[1][1]' is not a token id"};
    for (int i = 0; i < 4; i++) {
        resp r = http(url, "/v1/completions", bad[i], NULL);
        CHECK_EQ_INT(r.status, 400);
        CHECK_MSG(strstr(r.body, says[i]) && strstr(r.body, "\"param\":\"prompt\""), "%s -> %s", says[i], r.body);
        free(r.body);
    }
    free(body);
}

/* n choices: greedy, each is llama.cpp's golden text; sampled with a seed,
 * choice j is what n = 1 gives with seed + j (vLLM's rule), whole and
 * streamed; the prompt counts once in usage. */
static json_t *choices_of(const char *url, const char *prompt, int n, double temp, int seed, bool stream,
                          long long *np, long long *nc) {
    json_t *req = json_pack("{s:s,s:i,s:f,s:i,s:b,s:i,s:b}", "prompt", prompt, "max_tokens", 20, "temperature", temp,
                            "seed", seed, "ignore_eos", 1, "n", n, "stream", stream);
    if (stream) json_object_set_new(req, "stream_options", json_pack("{s:b}", "include_usage", 1));
    char *body = json_dumps(req, 0);
    json_decref(req);
    resp r = http(url, "/v1/completions", body, NULL);
    free(body);
    answer a = read_answer(&r, stream, n);
    *np = a.np;
    *nc = a.nc;
    json_t *texts = json_incref(a.texts);
    answer_free(&a);
    return texts;
}

TEST(serve_n_choices) {
    const char *url = start_default();
    CHECK(url);
    json_t *g = golden_json(1);
    CHECK(g);
    const char *prompt = json_string_value(json_object_get(g, "prompt"));
    char want[1024];
    snprintf(want, sizeof want, "%s", json_string_value(json_object_get(g, "generated_text")));
    const long long n_p = (long long)json_array_size(json_object_get(g, "prompt_token_ids"));
    long long np = -1, nc = -1;
    /* greedy: every choice is the golden text's first 20 tokens, a prefix of it */
    json_t *t = choices_of(url, prompt, 3, 0.0, 1, false, &np, &nc);
    for (size_t k = 0; k < 3; k++) {
        const char *tk = json_string_value(json_array_get(t, k));
        CHECK_MSG(tk && *tk && !strncmp(want, tk, strlen(tk)), "greedy choice %zu: [%s]", k, tk);
    }
    CHECK_EQ_INT(np, n_p);
    CHECK_EQ_INT(nc, 60);
    json_decref(t);
    /* sampled: choice j = n 1 with seed 40 + j; whole and streamed alike */
    json_t *one[3];
    for (int j = 0; j < 3; j++) one[j] = choices_of(url, prompt, 1, 0.9, 40 + j, false, &np, &nc);
    for (int stream = 0; stream < 2; stream++) {
        t = choices_of(url, prompt, 3, 0.9, 40, stream, &np, &nc);
        int same = 0;
        for (size_t j = 0; j < 3; j++) same += json_equal(json_array_get(t, j), json_array_get(one[j], 0));
        CHECK_EQ_INT(same, 3);
        CHECK_EQ_INT(np, n_p);
        CHECK_EQ_INT(nc, 60);
        json_decref(t);
    }
    /* the seeds differ, so the samples do */
    CHECK(!json_equal(json_array_get(one[0], 0), json_array_get(one[1], 0)) ||
          !json_equal(json_array_get(one[1], 0), json_array_get(one[2], 0)));
    for (int j = 0; j < 3; j++) json_decref(one[j]);
    json_decref(g);
    /* bounds: n 1..64, and prompts times n at most 64 */
    const char *bad[] = {"{\"prompt\":\"x\",\"n\":0}", "{\"prompt\":\"x\",\"n\":65}",
                         "{\"prompt\":[\"x\",\"y\",\"z\"],\"n\":22}"};
    const char *param[] = {"\"param\":\"n\"", "\"param\":\"n\"", "\"param\":\"prompt\""};
    for (int i = 0; i < 3; i++) {
        resp r = http(url, "/v1/completions", bad[i], NULL);
        CHECK_EQ_INT(r.status, 400);
        CHECK_MSG(strstr(r.body, param[i]), "%s -> %s", bad[i], r.body);
        free(r.body);
    }
}

/* JSON mode (response_format json_object): what comes out is one JSON object
 * as jansson parses it when the request ends with "stop", or the start of
 * one (jansson's error at the end of the text) when max_tokens cut it; the
 * object's closing ends the request. stories260K writes stories, not JSON:
 * logit_bias raises '"' and '}' (its byte tokens, id = byte + 3) so objects
 * close within the budget. Streamed output equals the whole answer. */
static char *json_mode_text(const char *url, bool chat, int seed, bool stream, const char **finish) {
    json_t *req = json_pack("{s:i,s:i,s:{s:i,s:i,s:i},s:{s:s},s:b}", "max_tokens", 120, "seed", seed, "logit_bias", "37", 5,
                            "313", 5, "128", 12, "response_format", "type", "json_object", "stream", stream);
    if (chat) json_object_set_new(req, "messages", json_pack("[{s:s,s:s}]", "role", "user", "content", "Some JSON"));
    else json_object_set_new(req, "prompt", json_string("Once upon a time"));
    char *body = json_dumps(req, 0);
    json_decref(req);
    resp r = http(url, chat ? "/v1/chat/completions" : "/v1/completions", body, NULL);
    free(body);
    answer a = read_answer(&r, stream, 1);
    static char fin[16];
    snprintf(fin, sizeof fin, "%s", json_string_value(json_array_get(a.finish, 0)));
    char *text = strdup(json_string_value(json_array_get(a.texts, 0)));
    answer_free(&a);
    *finish = fin;
    return text;
}

TEST(serve_json_mode) {
    const char *url = start_default();
    CHECK(url);
    int stops = 0, bad = 0;
    for (int chat = 0; chat < 2; chat++)
        for (int seed = 1; seed <= 6; seed++) {
            const char *fin;
            char *text = json_mode_text(url, chat, seed, false, &fin);
            char fin_whole[16];
            snprintf(fin_whole, sizeof fin_whole, "%s", fin);
            json_error_t je;
            json_t *o = json_loads(text, 0, &je);
            if (!strcmp(fin_whole, "stop")) {
                stops++;
                bad += !json_is_object(o);
            } else {
                /* cut by max_tokens: the start of an object, refused only for ending early */
                bad += strcmp(fin_whole, "length") != 0 || o != NULL || je.position < (int)strlen(text);
            }
            if (bad) fprintf(stderr, "    %s seed %d (%s): %s\n      %s at %d\n", chat ? "chat" : "completion", seed,
                             fin_whole, text, je.text, je.position);
            json_decref(o);
            char *streamed = json_mode_text(url, chat, seed, true, &fin);
            CHECK_STR(streamed, text);
            CHECK_STR(fin, fin_whole);
            free(streamed);
            free(text);
        }
    CHECK_EQ_INT(bad, 0);
    CHECK_MSG(stops >= 8, "%d of 12 JSON-mode answers were complete objects", stops);
    resp r = http(url, "/v1/completions", "{\"prompt\":\"x\",\"response_format\":{\"type\":\"json_schema\"}}", NULL);
    CHECK_EQ_INT(r.status, 400);
    CHECK(strstr(r.body, "\"param\":\"response_format\""));
    free(r.body);
}

/* A JSON schema whose every answer is short (enums, a boolean, a string of at most 8 characters, at most 3
 * tags): each answer ends with "stop", and jansson finds it valid against the schema. */
TEST(serve_json_schema) {
    const char *url = start_default();
    CHECK(url);
    static const char schema[] =
        "{\"type\":\"object\",\"properties\":{\"mood\":{\"enum\":[\"happy\",\"sad\"]},"
        "\"name\":{\"type\":\"string\",\"maxLength\":8},\"ok\":{\"type\":\"boolean\"},"
        "\"tags\":{\"type\":\"array\",\"items\":{\"enum\":[\"red\",\"big\",7]},\"maxItems\":3}},"
        "\"required\":[\"mood\",\"name\",\"ok\"]}";
    int valid = 0;
    for (int chat = 0; chat < 2; chat++)
        for (int seed = 1; seed <= 6; seed++) {
            char body[1024];
            snprintf(body, sizeof body,
                     "{%s,\"max_tokens\":200,\"seed\":%d,\"response_format\":{\"type\":\"json_schema\","
                     "\"json_schema\":{\"name\":\"pet\",\"strict\":true,\"schema\":%s}}}",
                     chat ? "\"messages\":[{\"role\":\"user\",\"content\":\"Describe a pet\"}]"
                          : "\"prompt\":\"Once upon a time\"",
                     seed, schema);
            resp r = http(url, chat ? "/v1/chat/completions" : "/v1/completions", body, NULL);
            char *text = completion_text(&r);
            json_error_t je;
            json_t *o = text ? json_loads(text, 0, &je) : NULL;
            const char *mood = json_string_value(json_object_get(o, "mood"));
            const char *name = json_string_value(json_object_get(o, "name"));
            json_t *tags = json_object_get(o, "tags");
            size_t chars = 0;
            for (const char *c = name; c && *c; c++) chars += ((unsigned char)*c & 0xC0) != 0x80;
            bool ok = r.status == 200 && strstr(r.body, "\"finish_reason\":\"stop\"") && json_is_object(o) &&
                      mood && (!strcmp(mood, "happy") || !strcmp(mood, "sad")) && name && chars <= 8 &&
                      json_is_boolean(json_object_get(o, "ok")) && (!tags || (json_is_array(tags) && json_array_size(tags) <= 3));
            const char *k;
            json_t *v;
            json_object_foreach(o, k, v) ok &= !strcmp(k, "mood") || !strcmp(k, "name") || !strcmp(k, "ok") || !strcmp(k, "tags");
            size_t i;
            json_array_foreach(tags, i, v) ok &= (json_is_string(v) && (!strcmp(json_string_value(v), "red") ||
                                                                      !strcmp(json_string_value(v), "big"))) ||
                                                 (json_is_integer(v) && json_integer_value(v) == 7);
            if (!ok) fprintf(stderr, "    %s seed %d: %s\n", chat ? "chat" : "completion", seed, r.body);
            valid += ok;
            json_decref(o);
            free(text);
            free(r.body);
        }
    CHECK_EQ_INT(valid, 12);
    /* a schema this server cannot follow: 400 naming where */
    resp r = http(url, "/v1/completions",
                  "{\"prompt\":\"x\",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"schema\":"
                  "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"not\":{\"const\":3}}}}}}}",
                  NULL);
    CHECK_EQ_INT(r.status, 400);
    CHECK_MSG(strstr(r.body, "properties.n: 'not' is supported only as not: {}"), "%s", r.body);
    free(r.body);
    /* inheritance as Pydantic and zod write it (allOf of a $ref'd base and more; keywords beside a $ref) */
    static const char merged[] =
        "{\"allOf\":[{\"$ref\":\"#/$defs/Base\"},{\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":9},"
        "\"flags\":{\"$ref\":\"#/$defs/Flags\",\"maxProperties\":1}},\"required\":[\"n\",\"flags\"]}],"
        "\"$defs\":{\"Base\":{\"type\":\"object\",\"properties\":{\"kind\":{\"enum\":[\"cat\",\"dog\"]}},\"required\":[\"kind\"]},"
        "\"Flags\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"integer\"},\"y\":{\"type\":\"boolean\"}}}}}";
    valid = 0;
    for (int seed = 1; seed <= 6; seed++) {
        char body[1024];
        snprintf(body, sizeof body,
                 "{\"prompt\":\"Once upon a time\",\"max_tokens\":200,\"seed\":%d,\"response_format\":"
                 "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"pet\",\"schema\":%s}}}", seed, merged);
        resp m = http(url, "/v1/completions", body, NULL);
        char *text = completion_text(&m);
        json_t *o = text ? json_loads(text, 0, NULL) : NULL;
        const char *kind = json_string_value(json_object_get(o, "kind"));
        json_t *n = json_object_get(o, "n"), *flags = json_object_get(o, "flags");
        bool ok = m.status == 200 && strstr(m.body, "\"finish_reason\":\"stop\"") && json_object_size(o) == 3 && kind &&
                  (!strcmp(kind, "cat") || !strcmp(kind, "dog")) && json_is_integer(n) && json_integer_value(n) >= 0 &&
                  json_integer_value(n) <= 9 && json_is_object(flags) && json_object_size(flags) <= 1;
        const char *k;
        json_t *v;
        json_object_foreach(flags, k, v) ok &= !strcmp(k, "x") ? json_is_integer(v) : !strcmp(k, "y") && json_is_boolean(v);
        if (!ok) fprintf(stderr, "    merged schema, seed %d: %s\n", seed, m.body);
        valid += ok;
        json_decref(o);
        free(text);
        free(m.body);
    }
    CHECK_EQ_INT(valid, 6);
}

/* vLLM's guided decoding fields: guided_regex (the whole output matches, checked by PCRE2), guided_choice and
 * structured_outputs.choice (the output is one of the strings), guided_json as JSON text; sampled under several
 * seeds, each answer ends with "stop". Bad or conflicting guides get a 400 naming the field. */
TEST(serve_guided_decoding) {
    const char *url = start_default();
    CHECK(url);
    int err;
    PCRE2_SIZE eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR) "^[A-Z][a-z]{2,8}( [a-z]{1,8}){2,4}\\.$", PCRE2_ZERO_TERMINATED, 0, &err, &eoff, NULL);
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    int ok_regex = 0, ok_choice = 0, ok_json = 0;
    for (int seed = 1; seed <= 6; seed++) {
        char body[1024];
        snprintf(body, sizeof body,
                 "{\"prompt\":\"Once upon a time\",\"max_tokens\":100,\"temperature\":1,\"seed\":%d,"
                 "\"guided_regex\":\"[A-Z][a-z]{2,8}( [a-z]{1,8}){2,4}\\\\.\"}",
                 seed);
        resp r = http(url, "/v1/completions", body, NULL);
        char *text = completion_text(&r);
        const bool ok = r.status == 200 && text && strstr(r.body, "\"finish_reason\":\"stop\"") &&
                        pcre2_match(re, (PCRE2_SPTR)text, strlen(text), 0, 0, md, NULL) >= 0;
        if (!ok) fprintf(stderr, "    regex, seed %d: %s\n", seed, r.body);
        ok_regex += ok;
        free(text);
        free(r.body);
        snprintf(body, sizeof body,
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"Pick one\"}],\"max_tokens\":20,\"temperature\":1,"
                 "\"seed\":%d,%s}",
                 seed, seed % 2 ? "\"guided_choice\":[\"red\",\"green\",\"blue sky\",\"a.b\"]"
                                : "\"structured_outputs\":{\"choice\":[\"red\",\"green\",\"blue sky\",\"a.b\"]}");
        r = http(url, "/v1/chat/completions", body, NULL);
        text = completion_text(&r);
        const bool okc = r.status == 200 && text && strstr(r.body, "\"finish_reason\":\"stop\"") &&
                         (!strcmp(text, "red") || !strcmp(text, "green") || !strcmp(text, "blue sky") || !strcmp(text, "a.b"));
        if (!okc) fprintf(stderr, "    choice, seed %d: %s\n", seed, r.body);
        ok_choice += okc;
        free(text);
        free(r.body);
        snprintf(body, sizeof body,
                 "{\"prompt\":\"x\",\"max_tokens\":100,\"temperature\":1,\"seed\":%d,\"guided_json\":"
                 "\"{\\\"type\\\":\\\"object\\\",\\\"properties\\\":{\\\"n\\\":{\\\"type\\\":\\\"integer\\\","
                 "\\\"minimum\\\":1,\\\"maximum\\\":9}},\\\"required\\\":[\\\"n\\\"],"
                 "\\\"additionalProperties\\\":false}\"}",
                 seed);
        r = http(url, "/v1/completions", body, NULL);
        text = completion_text(&r);
        json_t *o = text ? json_loads(text, 0, NULL) : NULL;
        json_t *n = json_object_get(o, "n");
        const bool okj = r.status == 200 && json_object_size(o) == 1 && json_is_integer(n) && json_integer_value(n) >= 1 &&
                         json_integer_value(n) <= 9;
        if (!okj) fprintf(stderr, "    json, seed %d: %s\n", seed, r.body);
        ok_json += okj;
        json_decref(o);
        free(text);
        free(r.body);
    }
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    CHECK_EQ_INT(ok_regex, 6);
    CHECK_EQ_INT(ok_choice, 6);
    CHECK_EQ_INT(ok_json, 6);
    static const struct {
        const char *fields, *param;
    } bad[] = {
        {"\"guided_regex\":\"a(?=b)\"", "guided_regex"},
        {"\"guided_regex\":7", "guided_regex"},
        {"\"guided_choice\":[]", "guided_choice"},
        {"\"guided_choice\":[\"a\",1]", "guided_choice"},
        {"\"guided_json\":\"not json\"", "guided_json"},
        {"\"guided_grammar\":\"root ::= x\"", "guided_grammar"},
        {"\"guided_regex\":\"a\",\"guided_choice\":[\"b\"]", "guided_choice"},
        {"\"response_format\":{\"type\":\"json_object\"},\"guided_regex\":\"a\"", "guided_regex"},
        {"\"structured_outputs\":{\"grammar\":\"x\"}", "structured_outputs.grammar"},
        {"\"structured_outputs\":{\"structural_tag\":{}}", "structured_outputs"},
        {"\"structured_outputs\":[]", "structured_outputs"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "{\"prompt\":\"x\",%s}", bad[i].fields);
        resp r = http(url, "/v1/completions", body, NULL);
        json_t *o = json_loads(r.body, 0, NULL);
        json_t *param = json_object_get(json_object_get(o, "error"), "param");
        const bool ok = r.status == 400 && json_is_string(param) && !strcmp(json_string_value(param), bad[i].param);
        if (!ok) fprintf(stderr, "    %s -> %ld %s\n", body, r.status, r.body);
        json_decref(o);
        free(r.body);
        CHECK(ok);
    }
}

/* Grammars (GBNF): llama.cpp's grammar on completions, vLLM's guided_grammar and structured_outputs.grammar on
 * chat, whole and streamed, sampled under several seeds: every answer matches a PCRE2 pattern written for the
 * same language and ends with "stop" (nothing may follow), or with "length" as a prefix of one. A grammar that
 * may end or go on ends where the model puts end of generation. Bad grammars and conflicting guides get a 400
 * naming the field (and the line and column); the server keeps serving. */
TEST(serve_grammar) {
    const char *url = start_default();
    CHECK(url);
    static const struct {
        const char *path, *field, *gbnf, *pattern;
    } cases[] = {
        {"/v1/completions", "grammar", "root ::= (\"Tim\" | \"Lily\") \" \" verb \" \" [a-z]{2,6} \".\"\n"
                                       "verb ::= \"saw\" | \"had\" | \"liked\"",
         "^(?:Tim|Lily) (?:saw|had|liked) [a-z]{2,6}\\.$"},
        {"/v1/chat/completions", "guided_grammar", "root ::= \"[\" num (\", \" num){0,5} \"]\"\nnum ::= [1-9] [0-9]?",
         "^\\[[1-9][0-9]?(?:, [1-9][0-9]?){0,5}\\]$"},
        {"/v1/chat/completions", "structured_outputs", "root ::= (\"é\" | [α-γ])+ \"!\"{1,2}", "^(?:é|[α-γ])+!{1,2}$"},
    };
    int good = 0, total = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int err;
        PCRE2_SIZE eoff;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)cases[c].pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &err, &eoff, NULL);
        CHECK(re);
        pcre2_match_data *md = pcre2_match_data_create(4, NULL);
        for (int seed = 1; seed <= 4; seed++) {
            const bool stream = seed % 2 == 0, chat = !strcmp(cases[c].path, "/v1/chat/completions");
            json_t *req = json_pack("{s:i,s:i,s:f,s:b}", "max_tokens", 60, "seed", seed, "temperature", 1.0, "stream", stream);
            if (chat) json_object_set_new(req, "messages", json_pack("[{s:s,s:s}]", "role", "user", "content", "Say it"));
            else json_object_set_new(req, "prompt", json_string("Once upon a time"));
            if (!strcmp(cases[c].field, "structured_outputs"))
                json_object_set_new(req, "structured_outputs", json_pack("{s:s}", "grammar", cases[c].gbnf));
            else
                json_object_set_new(req, cases[c].field, json_string(cases[c].gbnf));
            char *body = json_dumps(req, 0);
            json_decref(req);
            resp r = http(url, cases[c].path, body, NULL);
            free(body);
            const long status = r.status;
            answer a = read_answer(&r, stream, 1);
            const char *text = json_string_value(json_array_get(a.texts, 0)),
                       *fin = json_string_value(json_array_get(a.finish, 0));
            const bool ok = status == 200 && text && fin && !strcmp(fin, "stop") &&
                            pcre2_match(re, (PCRE2_SPTR)text, strlen(text), 0, 0, md, NULL) >= 0;
            if (!ok) fprintf(stderr, "    %s seed %d: %ld %s (%s)\n", cases[c].field, seed, status, text ? text : "-", fin ? fin : "-");
            good += ok;
            total++;
            answer_free(&a);
        }
        pcre2_match_data_free(md);
        pcre2_code_free(re);
    }
    CHECK_EQ_INT(good, total);
    /* a grammar that takes any text masks nothing llama.cpp's greedy run takes: its golden text */
    for (int nn = 0; nn < 6; nn += 5) {
        json_t *g = golden_json(nn);
        CHECK(g);
        json_t *req = json_pack("{s:O,s:i,s:f,s:b,s:s}", "prompt", json_object_get(g, "prompt"), "max_tokens", 64,
                                "temperature", 0.0, "ignore_eos", 1, "grammar", "root ::= .*");
        char *body = json_dumps(req, 0);
        json_decref(req);
        resp gr = http(url, "/v1/completions", body, NULL);
        free(body);
        answer a = read_answer(&gr, false, 1);
        CHECK_STR(json_string_value(json_array_get(a.texts, 0)), json_string_value(json_object_get(g, "generated_text")));
        answer_free(&a);
        json_decref(g);
    }
    /* a token reference: stories260K's byte token for '\n' (id 13 = 0x0A + 3) by its id */
    resp r = http(url, "/v1/completions",
             "{\"prompt\":\"Once\",\"max_tokens\":20,\"temperature\":1,\"seed\":2,\"grammar\":\"root ::= \\\"yes\\\" "
             "<[13]> \\\"no\\\"\"}",
             NULL);
    CHECK_EQ_INT(r.status, 200);
    CHECK(r.body && strstr(r.body, "\"text\":\"yes\\nno\"") && strstr(r.body, "\"finish_reason\":\"stop\""));
    free(r.body);
    /* an empty grammar (llama.cpp's default) guides nothing */
    r = http(url, "/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":4,\"grammar\":\"\"}", NULL);
    CHECK_EQ_INT(r.status, 200);
    free(r.body);
    static const struct {
        const char *fields, *param, *msg;
    } bad[] = {
        {"\"grammar\":\"root ::= item\"", "grammar", "'item' is used but not defined at line 1, column 10"},
        {"\"grammar\":\"root ::= [a-\"", "grammar", "without its closing ']'"},
        {"\"grammar\":\"root ::= root \\\"a\\\"\"", "grammar", "left-recursive"},
        {"\"grammar\":7", "grammar", "a string"},
        {"\"grammar\":\"root ::= <[99999]>\"", "grammar", "no token id of the vocabulary [0, 512)"},
        {"\"guided_grammar\":\"start ::= \\\"a\\\"\"", "guided_grammar", "no rule named 'root'"},
        {"\"grammar\":\"root ::= \\\"a\\\"\",\"grammar_lazy\":true", "grammar_triggers", "needs 'grammar_triggers'"},
        {"\"grammar_lazy\":true,\"grammar_triggers\":[{\"type\":1,\"value\":\"a\"}]", "grammar_lazy", "needs a grammar"},
        {"\"grammar\":\"root ::= \\\"a\\\"\",\"grammar_lazy\":1", "grammar_lazy", "true or false"},
        {"\"grammar\":\"root ::= \\\"a\\\"\",\"grammar_lazy\":true,\"grammar_triggers\":[{\"type\":7,\"value\":\"a\"}]",
         "grammar_triggers[0]", "must be"},
        {"\"grammar\":\"root ::= \\\"a\\\"\",\"grammar_lazy\":true,\"grammar_triggers\":[{\"type\":\"word\",\"value\":\"a\"},"
         "{\"type\":\"pattern\",\"value\":\"a(b\"}]", "grammar_triggers", "trigger 1 (pattern): missing closing parenthesis at offset 3"},
        {"\"grammar\":\"root ::= \\\"a\\\"\",\"grammar_lazy\":true,\"grammar_triggers\":[{\"type\":\"token\",\"value\":\"Once upon\"}]",
         "grammar_triggers[0]", "one token"},
        {"\"grammar\":\"root ::= \\\"a\\\"\",\"grammar_lazy\":true,\"grammar_triggers\":[{\"type\":0,\"value\":\"x\",\"token\":512}]",
         "grammar_triggers[0]", "[0, 512)"},
        {"\"grammar\":\"root ::= \\\"a\\\"\",\"guided_regex\":\"a\"", "grammar", "something else"},
        {"\"response_format\":{\"type\":\"json_object\"},\"grammar\":\"root ::= \\\"a\\\"\"", "grammar", "something else"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "{\"prompt\":\"x\",%s}", bad[i].fields);
        r = http(url, "/v1/completions", body, NULL);
        json_t *o = json_loads(r.body, 0, NULL);
        json_t *err = json_object_get(o, "error");
        const char *param = json_string_value(json_object_get(err, "param")),
                   *msg = json_string_value(json_object_get(err, "message"));
        const bool ok = r.status == 400 && param && !strcmp(param, bad[i].param) && msg && strstr(msg, bad[i].msg);
        if (!ok) fprintf(stderr, "    %s -> %ld %s\n", body, r.status, r.body);
        json_decref(o);
        free(r.body);
        CHECK(ok);
    }
    /* a forced tool call is a guide of its own */
    r = http(url, "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"grammar\":\"root ::= \\\"a\\\"\",\"tools\":[{\"type\":"
             "\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":\"required\"}",
             NULL);
    CHECK_EQ_INT(r.status, 400);
    CHECK(r.body && strstr(r.body, "\"param\":\"tool_choice\""));
    free(r.body);
}

/* Pydantic's union of two models (anyOf of objects that begin alike) at the root and in an array: sampled
 * answers (16 seeds, temperature 2) end with "stop", jansson finds each element one of the two, and both
 * are taken. */
TEST(serve_json_schema_union_of_objects) {
    const char *url = start_default();
    CHECK(url);
    static const char schema[] =
        "{\"$defs\":{\"Cat\":{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"cat\"},"
        "\"lives\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":9}},\"required\":[\"kind\",\"lives\"],"
        "\"additionalProperties\":false},\"Dog\":{\"type\":\"object\",\"properties\":{\"kind\":{\"const\":\"dog\"},"
        "\"good\":{\"type\":\"boolean\"}},\"required\":[\"kind\",\"good\"],\"additionalProperties\":false}},"
        "\"type\":\"object\",\"properties\":{\"pets\":{\"type\":\"array\",\"items\":{\"anyOf\":[{\"$ref\":\"#/$defs/Cat\"},"
        "{\"$ref\":\"#/$defs/Dog\"}]},\"minItems\":1,\"maxItems\":3}},\"required\":[\"pets\"],\"additionalProperties\":false}";
    int valid = 0, cats = 0, dogs = 0;
    for (int seed = 1; seed <= 16; seed++) {
        char body[2048];
        snprintf(body, sizeof body,
                 "{\"prompt\":\"Once upon a time\",\"max_tokens\":300,\"temperature\":2,\"seed\":%d,"
                 "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"p\",\"schema\":%s}}}",
                 seed, schema);
        resp r = http(url, "/v1/completions", body, NULL);
        char *text = completion_text(&r);
        json_t *o = text ? json_loads(text, 0, NULL) : NULL, *pets = json_object_get(o, "pets"), *v;
        bool ok = r.status == 200 && strstr(r.body, "\"finish_reason\":\"stop\"") && json_object_size(o) == 1 &&
                  json_is_array(pets) && json_array_size(pets) >= 1 && json_array_size(pets) <= 3;
        size_t i;
        json_array_foreach(pets, i, v) {
            const char *kind = json_string_value(json_object_get(v, "kind"));
            json_t *lives = json_object_get(v, "lives"), *good = json_object_get(v, "good");
            const bool cat = kind && !strcmp(kind, "cat") && json_object_size(v) == 2 && json_is_integer(lives) &&
                             json_integer_value(lives) >= 1 && json_integer_value(lives) <= 9;
            const bool dog = kind && !strcmp(kind, "dog") && json_object_size(v) == 2 && json_is_boolean(good);
            ok &= cat || dog;
            cats += cat;
            dogs += dog;
        }
        if (!ok) fprintf(stderr, "    seed %d: %ld %s\n", seed, r.status, r.body);
        valid += ok;
        json_decref(o);
        free(text);
        free(r.body);
    }
    CHECK_EQ_INT(valid, 16);
    printf("   %d cats, %d dogs\n", cats, dogs);
    CHECK_MSG(cats > 0 && dogs > 0, "%d cats, %d dogs: both alternatives should be taken", cats, dogs);
}

/* What Pydantic writes for a date, a UUID, bounded numbers and a constrained string: sampled answers under
 * several seeds each end with "stop" and hold, checked here by jansson, sscanf, strtod and PCRE2. */
TEST(serve_json_schema_formats_and_bounds) {
    const char *url = start_default();
    CHECK(url);
    static const char schema[] =
        "{\"type\":\"object\",\"properties\":{\"day\":{\"type\":\"string\",\"format\":\"date\"},"
        "\"id\":{\"type\":\"string\",\"format\":\"uuid\"},\"n\":{\"type\":\"integer\",\"minimum\":-5,\"maximum\":40},"
        "\"x\":{\"type\":\"number\",\"exclusiveMinimum\":0,\"maximum\":1},"
        "\"code\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{2}-\\\\d{3}$\"}},"
        "\"required\":[\"day\",\"id\",\"n\",\"x\",\"code\"],\"additionalProperties\":false}";
    int err;
    PCRE2_SIZE eoff;
    pcre2_code *code_re = pcre2_compile((PCRE2_SPTR) "^[A-Z]{2}-[0-9]{3}$", PCRE2_ZERO_TERMINATED, 0, &err, &eoff, NULL);
    pcre2_code *uuid_re = pcre2_compile((PCRE2_SPTR) "^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$",
                                        PCRE2_ZERO_TERMINATED, 0, &err, &eoff, NULL);
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    int valid = 0;
    for (int seed = 1; seed <= 6; seed++) {
        char body[2048];
        snprintf(body, sizeof body,
                 "{\"prompt\":\"Once upon a time\",\"max_tokens\":400,\"temperature\":1.5,\"seed\":%d,"
                 "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"r\",\"schema\":%s}}}",
                 seed, schema);
        resp r = http(url, "/v1/completions", body, NULL);
        char *text = completion_text(&r);
        json_t *o = text ? json_loads(text, 0, NULL) : NULL;
        const char *day = json_string_value(json_object_get(o, "day")), *id = json_string_value(json_object_get(o, "id")),
                   *code = json_string_value(json_object_get(o, "code"));
        json_t *n = json_object_get(o, "n"), *x = json_object_get(o, "x");
        int y = 0, mo = 0, d = 0, used = 0;
        const bool day_ok = day && strlen(day) == 10 && sscanf(day, "%4d-%2d-%2d%n", &y, &mo, &d, &used) == 3 &&
                            used == 10 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31;
        const bool ok = r.status == 200 && strstr(r.body, "\"finish_reason\":\"stop\"") && json_object_size(o) == 5 &&
                        day_ok && id && pcre2_match(uuid_re, (PCRE2_SPTR)id, strlen(id), 0, 0, md, NULL) >= 0 &&
                        json_is_integer(n) && json_integer_value(n) >= -5 && json_integer_value(n) <= 40 &&
                        json_is_number(x) && json_number_value(x) > 0 && json_number_value(x) <= 1 && code &&
                        pcre2_match(code_re, (PCRE2_SPTR)code, strlen(code), 0, 0, md, NULL) >= 0;
        if (!ok) fprintf(stderr, "    seed %d: %ld %s\n", seed, r.status, r.body);
        valid += ok;
        json_decref(o);
        free(text);
        free(r.body);
    }
    pcre2_match_data_free(md);
    pcre2_code_free(code_re);
    pcre2_code_free(uuid_re);
    CHECK_EQ_INT(valid, 6);
}

/* ---- tool calls ---------------------------------------------------------------- */

#define TOOLS_JSON                                                                                                \
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather in a city\","       \
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"maxLength\":10},"        \
    "\"unit\":{\"enum\":[\"celsius\",\"fahrenheit\"]}},\"required\":[\"city\",\"unit\"],"                         \
    "\"additionalProperties\":false}}},"                                                                          \
    "{\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"parameters\":{\"type\":\"object\","             \
    "\"properties\":{\"zone\":{\"enum\":[\"utc\",\"local\"]}},\"required\":[\"zone\"]}}}]"

/* One chat answer with tools, whole or streamed: content, the calls [{id, name, arguments}] (stream: the
 * deltas joined by index), the finish reason; for streams, whether every call's first delta had its id,
 * type and name. */
typedef struct tool_answer {
    long status;
    char *content; /* NULL: null / none */
    json_t *calls;
    char finish[16];
    bool heads_ok;
    int arg_deltas; /* stream: the most argument deltas one call came in */
} tool_answer;

static tool_answer tool_request(const char *url, const char *choice, double temp, int seed, bool stream, const char *extra) {
    char *body = NULL;
    if (asprintf(&body,
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"What is the weather in Paris?\"}],\"tools\":%s,"
                 "%s%s%s\"max_tokens\":120,\"temperature\":%g,\"seed\":%d,\"stream\":%s%s}",
                 TOOLS_JSON, choice ? "\"tool_choice\":" : "", choice ? choice : "", choice ? "," : "", temp, seed,
                 stream ? "true" : "false", extra ? extra : "") < 0)
        abort();
    resp r = http(url, "/v1/chat/completions", body, NULL);
    free(body);
    tool_answer a = {.status = r.status, .calls = json_array(), .heads_ok = true};
    char *save = NULL;
    for (char *ev = stream ? strtok_r(r.body, "\n", &save) : r.body; ev; ev = stream ? strtok_r(NULL, "\n", &save) : NULL) {
        const char *js = stream ? (strncmp(ev, "data: {", 7) ? NULL : ev + 6) : ev;
        json_t *o = js ? json_loads(js, 0, NULL) : NULL;
        json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
        json_t *m = json_object_get(ch, stream ? "delta" : "message");
        json_t *content = json_object_get(m, "content");
        if (json_is_string(content) && (!stream || json_string_length(content))) {
            char *joined = NULL;
            if (asprintf(&joined, "%s%s", a.content ? a.content : "", json_string_value(content)) < 0) abort();
            free(a.content);
            a.content = joined;
        }
        size_t i;
        json_t *tc;
        json_array_foreach(json_object_get(m, "tool_calls"), i, tc) {
            const size_t k = stream ? (size_t)json_integer_value(json_object_get(tc, "index")) : i;
            json_t *fn = json_object_get(tc, "function");
            if (k == json_array_size(a.calls)) {
                a.heads_ok &= json_is_string(json_object_get(tc, "id")) && json_is_string(json_object_get(fn, "name")) &&
                              json_is_string(json_object_get(tc, "type"));
                json_array_append_new(a.calls, json_pack("{s:O?,s:O?,s:s}", "id", json_object_get(tc, "id"), "name",
                                                         json_object_get(fn, "name"), "arguments", ""));
            }
            json_t *c = json_array_get(a.calls, k);
            json_t *args = json_object_get(fn, "arguments");
            if (c && json_is_string(args) && json_string_length(args)) {
                const int nd = (int)json_integer_value(json_object_get(c, "deltas")) + 1;
                json_object_set_new(c, "deltas", json_integer(nd));
                if (nd > a.arg_deltas) a.arg_deltas = nd;
            }
            if (c && json_is_string(args)) {
                char *joined = NULL;
                if (asprintf(&joined, "%s%s", json_string_value(json_object_get(c, "arguments")), json_string_value(args)) < 0)
                    abort();
                json_object_set_new(c, "arguments", json_string(joined));
                free(joined);
            }
        }
        if (json_is_string(json_object_get(ch, "finish_reason")))
            snprintf(a.finish, sizeof a.finish, "%s", json_string_value(json_object_get(ch, "finish_reason")));
        json_decref(o);
    }
    if (r.status != 200) fprintf(stderr, "    tool request %s: %ld %s\n", choice ? choice : "(auto)", r.status, r.body);
    free(r.body);
    return a;
}

static void tool_answer_free(tool_answer *a) {
    free(a->content);
    json_decref(a->calls);
}

/* A call's arguments: a JSON object of get_weather's schema (city a string of at most 10 characters, unit
 * one of the enum, nothing else), or get_time's. */
static bool args_follow_schema(const json_t *call) {
    const char *name = json_string_value(json_object_get(call, "name"));
    json_t *o = json_loads(json_string_value(json_object_get(call, "arguments")), 0, NULL);
    bool ok = json_is_object(o) && name;
    if (ok && !strcmp(name, "get_weather")) {
        const char *city = json_string_value(json_object_get(o, "city")), *unit = json_string_value(json_object_get(o, "unit"));
        size_t chars = 0;
        for (const char *c = city; c && *c; c++) chars += ((unsigned char)*c & 0xC0) != 0x80;
        ok = city && chars <= 10 && unit && (!strcmp(unit, "celsius") || !strcmp(unit, "fahrenheit")) &&
             json_object_size(o) == 2;
    } else if (ok) {
        const char *zone = json_string_value(json_object_get(o, "zone"));
        ok = !strcmp(name, "get_time") && zone && (!strcmp(zone, "utc") || !strcmp(zone, "local"));
    }
    json_decref(o);
    return ok;
}

/* tool_choice naming a function: the answer is that function's arguments, guided by its schema, as one
 * call (content null, finish "stop" as OpenAI gives for a forced function), the same streamed (the id and
 * name first, the arguments as they come). "required": calls of the declared functions, each guided by
 * its schema (one without parallel_tool_calls), finish "tool_calls"; streamed, each call's arguments in
 * deltas as they are written, joined the same as the whole answer's. */
TEST(serve_tool_calls_forced) {
    const char *url = start_default();
    CHECK(url);
    static const char named[] = "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}}";
    tool_answer w = tool_request(url, named, 0, 1, false, NULL);
    tool_answer s = tool_request(url, named, 0, 1, true, NULL);
    const bool whole_ok = w.status == 200 && !w.content && json_array_size(w.calls) == 1 && !strcmp(w.finish, "stop") &&
                          args_follow_schema(json_array_get(w.calls, 0)) &&
                          !strcmp(json_string_value(json_object_get(json_array_get(w.calls, 0), "name")), "get_weather") &&
                          !strncmp(json_string_value(json_object_get(json_array_get(w.calls, 0), "id")), "call_", 5);
    const bool stream_ok = s.status == 200 && !s.content && json_array_size(s.calls) == 1 && s.heads_ok &&
                           !strcmp(s.finish, "stop") &&
                           !strcmp(json_string_value(json_object_get(json_array_get(s.calls, 0), "arguments")),
                                   json_string_value(json_object_get(json_array_get(w.calls, 0), "arguments")));
    if (!whole_ok || !stream_ok) {
        char *a = json_dumps(w.calls, 0), *b = json_dumps(s.calls, 0);
        fprintf(stderr, "    named: whole %s (%s), streamed %s (%s)\n", a, w.finish, b, s.finish);
        free(a);
        free(b);
    }
    tool_answer_free(&w);
    tool_answer_free(&s);
    CHECK(whole_ok);
    CHECK(stream_ok);
    int good = 0, pieces = 0;
    for (int seed = 1; seed <= 4; seed++) {
        /* seeds 3 and 4 without parallel calls: exactly one */
        const char *extra = seed > 2 ? ",\"parallel_tool_calls\":false" : NULL;
        tool_answer rw = tool_request(url, "\"required\"", 0.8, seed, false, extra);
        tool_answer rs = tool_request(url, "\"required\"", 0.8, seed, true, extra);
        const size_t nc = json_array_size(rw.calls);
        /* streamed, the arguments come as the answer writes them: in several deltas (how many depends on how
         * fast this client reads, as text made while it was away goes out in one delta: counted over the seeds) */
        bool ok = rw.status == 200 && !rw.content && nc >= 1 && (seed <= 2 || nc == 1) &&
                  !strcmp(rw.finish, "tool_calls") && rs.status == 200 && !rs.content && rs.heads_ok &&
                  json_array_size(rs.calls) == nc && !strcmp(rs.finish, "tool_calls");
        pieces += rs.arg_deltas > 2;
        for (size_t i = 0; i < nc && ok; i++) {
            const json_t *c = json_array_get(rw.calls, i), *d = json_array_get(rs.calls, i);
            ok = args_follow_schema(c) && json_equal(json_object_get(c, "name"), json_object_get(d, "name")) &&
                 json_equal(json_object_get(c, "arguments"), json_object_get(d, "arguments"));
        }
        if (!ok) {
            char *a = json_dumps(rw.calls, 0), *b = json_dumps(rs.calls, 0);
            fprintf(stderr, "    required seed %d: whole %s (%s), streamed %s (%s)\n", seed, a, rw.finish, b, rs.finish);
            free(a);
            free(b);
        }
        good += ok;
        tool_answer_free(&rw);
        tool_answer_free(&rs);
    }
    CHECK_EQ_INT(good, 4);
    CHECK_MSG(pieces >= 1, "no required call's arguments came in more than 2 deltas");
}

/* tool_choice "auto" (the default with tools) and "none": an answer with no call in it is plain content,
 * the same whole and streamed, and the same as without tools (the fallback template ignores them). A
 * conversation that carries calls and their results renders. A stream with tools asks a router to
 * continue it as a chat request. */
TEST(serve_tool_calls_auto_and_history) {
    const char *url = start_default();
    CHECK(url);
    resp r = http(url, "/v1/chat/completions",
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"What is the weather in Paris?\"}],"
                  "\"max_tokens\":120,\"temperature\":0}",
                  NULL);
    char *plain = completion_text(&r);
    free(r.body);
    CHECK(plain && *plain);
    const char *choices[] = {NULL, "\"auto\"", "\"none\""};
    for (int i = 0; i < 3; i++)
        for (int stream = 0; stream < 2; stream++) {
            tool_answer a = tool_request(url, choices[i], 0, 1, stream, ",\"parallel_tool_calls\":false");
            const bool ok = a.status == 200 && a.content && !strcmp(a.content, plain) && json_array_size(a.calls) == 0 &&
                            (!strcmp(a.finish, "length") || !strcmp(a.finish, "stop"));
            if (!ok) fprintf(stderr, "    %s %s: '%s' (%s)\n", choices[i] ? choices[i] : "default",
                             stream ? "streamed" : "whole", a.content ? a.content : "(null)", a.finish);
            tool_answer_free(&a);
            CHECK(ok);
        }
    free(plain);
    r = http(url, "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"},{\"role\":\"assistant\",\"content\":null,"
             "\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
             "\"arguments\":\"{\\\"city\\\": \\\"Paris\\\"}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"call_1\","
             "\"content\":\"sunny\"}],\"tools\":" TOOLS_JSON ",\"max_tokens\":4}",
             NULL);
    CHECK_MSG(r.status == 200, "%ld %s", r.status, r.body);
    free(r.body);
    /* a router's token ids: both streams have them; the one with tools (its calls held back and parsed at
     * the end) asks to be continued as a chat request */
    for (int tools = 0; tools < 2; tools++) {
        char *body = NULL;
        if (asprintf(&body, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":4,\"stream\":true%s%s}",
                     tools ? ",\"tools\":" : "", tools ? TOOLS_JSON : "") < 0)
            abort();
        r = http(url, "/v1/chat/completions", body, "X-Shardlm-Token-Ids: 1");
        free(body);
        const bool ids = strstr(r.body, ": prompt_token_ids ") != NULL, chat = strstr(r.body, ": resume chat\n") != NULL;
        CHECK_MSG(r.status == 200 && ids && chat == tools, "tools %d: %ld, ids %d, resume chat %d", tools, r.status, ids,
                  chat);
        free(r.body);
    }
}

/* vLLM's rendering fields: continue_final_message ends the prompt right after the last message's content
 * (the Llama 2 fallback template of stories260K writes "[INST] user [/INST] assistant </s>", so the
 * prompt is "[INST] Tell me a story [/INST] Once upon a time" and the greedy answer is the completion of
 * that text); chat_template_kwargs reach the template; bad values name the field. */
TEST(serve_chat_render_options) {
    const char *url = start_default();
    CHECK(url);
    resp r = http(url, "/v1/chat/completions",
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"},{\"role\":\"assistant\","
                  "\"content\":\"Once upon a time\"}],\"add_generation_prompt\":false,\"continue_final_message\":true,"
                  "\"max_tokens\":24,\"temperature\":0,\"chat_template_kwargs\":{\"enable_thinking\":false}}",
                  NULL);
    char *chat = completion_text(&r);
    const long long np = usage_field(&r, "prompt_tokens", NULL);
    CHECK_MSG(r.status == 200 && chat, "%ld %s", r.status, r.body);
    free(r.body);
    r = http(url, "/v1/completions",
             "{\"prompt\":\"[INST] Tell me a story [/INST] Once upon a time\",\"max_tokens\":24,\"temperature\":0}", NULL);
    char *comp = completion_text(&r);
    const long long np2 = usage_field(&r, "prompt_tokens", NULL);
    free(r.body);
    CHECK(comp != NULL);
    CHECK_STR(chat, comp);
    CHECK_EQ_INT(np, np2);
    /* vLLM's echo: each choice's content starts with the message it continues (text parts joined by newlines),
     * whole and streamed (the role chunk, the echo, then the answer); not where the answer is a new message */
    char *echoed = NULL;
    if (asprintf(&echoed, "Once upon a time%s", comp) < 0) abort();
    for (int stream = 0; stream < 2; stream++) {
        for (int parts = 0; parts < 2; parts++) {
            char *body = NULL;
            if (asprintf(&body, "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"},{\"role\":\"assistant\","
                         "\"content\":%s}],\"add_generation_prompt\":false,\"continue_final_message\":true,\"echo\":true,"
                         "\"max_tokens\":24,\"temperature\":0,\"n\":2,\"stream\":%s}",
                         parts ? "[{\"type\":\"text\",\"text\":\"Once upon\"},{\"type\":\"text\",\"text\":\" a time\"}]"
                               : "\"Once upon a time\"",
                         stream ? "true" : "false") < 0)
                abort();
            r = http(url, "/v1/chat/completions", body, NULL);
            free(body);
            CHECK_EQ_INT(r.status, 200);
            if (stream) { /* the first event: the role alone, its content empty */
                const char *d1 = strstr(r.body, "\"delta\":");
                static const char role_only[] = "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}";
                CHECK(d1 && !strncmp(d1, role_only, sizeof role_only - 1));
            }
            answer a = read_answer(&r, stream, 2);
            for (size_t k = 0; k < 2; k++) {
                const char *t = json_string_value(json_array_get(a.texts, k));
                if (!parts) CHECK_STR(t, echoed);
                else CHECK_MSG(t && !strncmp(t, "Once upon\n a time", 17) && !strcmp(t + 17, comp), "'%s'", t);
            }
            answer_free(&a);
        }
        char *body = NULL; /* a new message: nothing echoed */
        if (asprintf(&body, "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"echo\":true,"
                     "\"max_tokens\":8,\"temperature\":0,\"stream\":%s}", stream ? "true" : "false") < 0)
            abort();
        r = http(url, "/v1/chat/completions", body, NULL);
        free(body);
        answer a = read_answer(&r, stream, 1);
        const char *t = json_string_value(json_array_get(a.texts, 0));
        CHECK_MSG(t && strncmp(t, "Tell me", 7) != 0, "'%s'", t);
        answer_free(&a);
    }
    free(echoed);
    free(chat);
    free(comp);
    static const struct {
        const char *fields, *param;
    } cases[] = {
        {"\"echo\":\"yes\"", "echo"},
        {"\"continue_final_message\":true", "continue_final_message"},
        {"\"continue_final_message\":1", "continue_final_message"},
        {"\"add_generation_prompt\":\"no\"", "add_generation_prompt"},
        {"\"chat_template_kwargs\":[1]", "chat_template_kwargs"},
        {"\"chat_template_kwargs\":{\"messages\":[]}", "chat_template_kwargs"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *body = NULL;
        if (asprintf(&body, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],%s}", cases[i].fields) < 0) abort();
        r = http(url, "/v1/chat/completions", body, NULL);
        char want[96];
        snprintf(want, sizeof want, "\"param\":\"%s\"", cases[i].param);
        const bool ok = r.status == 400 && strstr(r.body, want);
        if (!ok) fprintf(stderr, "    case %zu %s -> %ld %s\n", i, body, r.status, r.body);
        free(body);
        free(r.body);
        CHECK(ok);
    }
}

/* Thinking: DeepSeek-R1's template opens a <think> block in its generation prompt, so stories260K's whole
 * answer (which never writes </think>) is thinking: message.reasoning_content holds it (without the
 * whitespace around it), content is empty, and the stream's reasoning_content deltas join to the same.
 * With "reasoning_format": "none" the same text is the content. */
/* gpt-oss's template (the harmony format): the answer goes through harmony.c's split. stories260K writes no
 * harmony markers, so the whole answer is content, the same whole and streamed, with and without tools (the
 * template renders them), and there is no reasoning_content or tool_calls. (The split itself is tested on answers
 * written by hand: test_harmony.c.) */
/* Whether a chat answer a grammar forces to be `text` (max_tokens: room for it, a character a token) has the content
 * `want`, whole and streamed. */
static bool forced_answer_is(const char *url, const char *text, int max_tokens, const char *want) {
    bool ok = true;
    for (int stream = 0; stream < 2; stream++) {
        json_t *req = json_pack("{s:[{s:s,s:s}],s:i,s:i,s:s++,s:b}", "messages", "role", "user", "content", "Hi", "max_tokens",
                                max_tokens, "temperature", 0, "grammar", "root ::= \"", text, "\"", "stream", stream);
        char *b = json_dumps(req, JSON_COMPACT);
        resp r = http(url, "/v1/chat/completions", b, NULL);
        answer a = read_answer(&r, stream, 1);
        const char *content = json_string_value(json_array_get(a.texts, 0));
        if (!content || strcmp(content, want) != 0) {
            fprintf(stderr, "    forced answer, stream %d: '%s', want '%s'\n", stream, content ? content : "(none)", want);
            ok = false;
        }
        answer_free(&a);
        free(b);
        json_decref(req);
    }
    return ok;
}

TEST(serve_harmony_template) {
    const char *tpl = "../shared/golden/chat-templates/openai-gpt-oss-120b.jinja";
    if (access(tpl, R_OK) != 0) return;
    sl_test_proc p;
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--chat-template", (char *)tpl, NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    /* (this template writes each tool's description: jinja2 refuses one without, and so does this server) */
    static const char *extras[] = {"", ",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                                       "\"description\":\"Weather in a city\",\"parameters\":{\"type\":\"object\","
                                       "\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}}]"};
    char *first = NULL;
    bool ok = true;
    for (int t = 0; t < 2 && ok; t++)
        for (int stream = 0; stream < 2 && ok; stream++) {
            char b[2048];
            snprintf(b, sizeof b,
                     "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"max_tokens\":30,"
                     "\"temperature\":0%s%s}",
                     extras[t], stream ? ",\"stream\":true" : "");
            resp r = http(p.url, "/v1/chat/completions", b, NULL);
            char *content = NULL;
            bool reasoning = strstr(r.body, "reasoning_content") != NULL, calls = strstr(r.body, "tool_calls") != NULL;
            if (stream) {
                content = calloc(1, r.n + 1);
                char *save = NULL;
                for (char *ev = strtok_r(r.body, "\n", &save); ev; ev = strtok_r(NULL, "\n", &save)) {
                    if (strncmp(ev, "data: {", 7)) continue;
                    json_t *e = json_loads(ev + 6, 0, NULL);
                    json_t *d = json_object_get(json_array_get(json_object_get(e, "choices"), 0), "delta");
                    if (json_is_string(json_object_get(d, "content"))) strcat(content, json_string_value(json_object_get(d, "content")));
                    json_decref(e);
                }
            } else {
                json_t *o = json_loads(r.body, 0, NULL);
                json_t *msg = json_object_get(json_array_get(json_object_get(o, "choices"), 0), "message");
                content = json_string_value(json_object_get(msg, "content")) ? strdup(json_string_value(json_object_get(msg, "content"))) : NULL;
                json_decref(o);
            }
            ok = r.status == 200 && content && *content && !reasoning && !calls && !strstr(content, "<|");
            if (ok && stream) ok = !strcmp(first, content); /* streamed: the same as whole */
            if (!ok) fprintf(stderr, "    tools %d stream %d: %s\n", t, stream, r.body);
            if (!stream) free(first), first = content;
            else free(content);
            free(r.body);
        }
    /* an answer in the harmony format (a grammar makes stories260K write it) is split, whole and streamed: the
     * markers go; with a guided answer the analysis stays in the content, as harmony.c has it without thinking */
    ok = ok && forced_answer_is(p.url, "<|channel|>analysis<|message|>Hmm.<|end|><|start|>assistant<|channel|>final"
                                       "<|message|>Hi", 200, "Hmm.Hi");
    /* OpenAI's reasoning_effort reaches the template (which writes "Reasoning: medium" without it); a variable of
     * chat_template_kwargs wins; another value is a 400 */
    static const char *const efforts[][2] = {{"", "Reasoning: medium\n"},
                                             {",\"reasoning_effort\":\"low\"", "Reasoning: low\n"},
                                             {",\"reasoning_effort\":\"low\",\"chat_template_kwargs\":{\"reasoning_effort\":\"high\"}",
                                              "Reasoning: high\n"},
                                             {",\"reasoning_effort\":\"extreme\"", "\"param\":\"reasoning_effort\""}};
    for (size_t i = 0; i < sizeof efforts / sizeof efforts[0] && ok; i++) {
        char b[512];
        snprintf(b, sizeof b, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]%s}", efforts[i][0]);
        resp r = http(p.url, "/apply-template", b, NULL);
        json_t *o = json_loads(r.body, 0, NULL);
        const char *prompt = json_string_value(json_object_get(o, "prompt"));
        ok = (prompt && strstr(prompt, efforts[i][1])) || (i == 3 && r.status == 400 && strstr(r.body, efforts[i][1]));
        if (!ok) fprintf(stderr, "    reasoning_effort case %zu: %ld %.300s\n", i, r.status, r.body);
        json_decref(o);
        free(r.body);
    }
    sl_test_proc_stop(&p, SIGTERM, 10);
    CHECK(ok);
    free(first);
}

/* Kimi K3's template (kimi3.c): the generation prompt opens the think section, so stories260K's answer (no
 * tags of its own) is all thinking: reasoning_content, the same whole and streamed; with reasoning_format
 * "none" it is the content; with the template's `thinking` off the prompt opens the response section and
 * the answer is content. (The split itself is tested on answers written after the template: test_kimi3.c.) */
TEST(serve_kimi3_template) {
    const char *tpl = "../shared/golden/chat-templates/Kimi-K3.jinja";
    if (access(tpl, R_OK) != 0) return;
    sl_test_proc p;
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--chat-template", (char *)tpl, NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    static const char body[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"max_tokens\":40,"
                               "\"temperature\":0%s}";
    static const char *extras[] = {",\"reasoning_format\":\"none\"", "", ",\"stream\":true",
                                   ",\"chat_template_kwargs\":{\"thinking\":false}"};
    const char *got[4][2] = {{NULL}}; /* [request][0: content, 1: reasoning] */
    answer ans[4];
    int status[4] = {0};
    for (int i = 0; i < 4; i++) {
        char b[512];
        snprintf(b, sizeof b, body, extras[i]);
        resp r = http(p.url, "/v1/chat/completions", b, NULL);
        status[i] = (int)r.status;
        if (status[i] != 200) fprintf(stderr, "    request %d: %s\n", i, r.body);
        ans[i] = read_answer(&r, i == 2, 1);
        got[i][0] = json_string_value(json_array_get(ans[i].texts, 0));
        got[i][1] = json_string_value(json_array_get(ans[i].reasoning, 0));
    }
    /* an answer in Kimi K3's sections (a grammar makes stories260K write it) is split, whole and streamed: the tags
     * go; with a guided answer the thinking stays in the content, as kimi3.c has it without thinking */
    const bool split = forced_answer_is(p.url, "Hmm.<|close|>think<|sep|><|open|>response<|sep|>Hi<|close|>response<|sep|>"
                                               "<|close|>message<|sep|>", 150, "Hmm.\n\nHi");
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
    CHECK(split);
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(status[i], 200);
    CHECK(*got[0][0] && !*got[0][1] && !strstr(got[0][0], "<|"));        /* no thinking: all content */
    CHECK(!strcmp(got[1][1], got[0][0]) && !*got[1][0]);                   /* the same text as thinking */
    CHECK(!strcmp(got[2][1], got[1][1]) && !strcmp(got[2][0], got[1][0])); /* streamed as whole */
    CHECK(*got[3][0] && !*got[3][1] && !strstr(got[3][0], "<|"));        /* thinking off: content */
    for (int i = 0; i < 4; i++) answer_free(&ans[i]);
}

TEST(serve_reasoning_content) {
    const char *tpl = "../shared/golden/chat-templates/deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja";
    if (access(tpl, R_OK) != 0) return;
    sl_test_proc p;
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--chat-template", (char *)tpl, NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    static const char body[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"max_tokens\":40,"
                               "\"temperature\":0%s}";
    char b[512];
    snprintf(b, sizeof b, body, ",\"reasoning_format\":\"none\"");
    resp r = http(p.url, "/v1/chat/completions", b, NULL);
    char *plain = completion_text(&r);
    free(r.body);
    snprintf(b, sizeof b, body, "");
    r = http(p.url, "/v1/chat/completions", b, NULL);
    json_t *o = json_loads(r.body, 0, NULL);
    json_t *msg = json_object_get(json_array_get(json_object_get(o, "choices"), 0), "message");
    const char *thinking = json_string_value(json_object_get(msg, "reasoning_content"));
    const char *content = json_string_value(json_object_get(msg, "content"));
    /* the plain text without its surrounding whitespace */
    const char *t0 = plain ? plain : "";
    while (*t0 == ' ' || *t0 == '\n') t0++;
    size_t tl = strlen(t0);
    while (tl && (t0[tl - 1] == ' ' || t0[tl - 1] == '\n')) tl--;
    const bool whole_ok = r.status == 200 && thinking && content && !*content && strlen(thinking) == tl &&
                          !strncmp(thinking, t0, tl) && tl > 0;
    if (!whole_ok) fprintf(stderr, "    plain '%s'\n    answer %s\n", plain ? plain : "(null)", r.body);
    free(r.body);
    snprintf(b, sizeof b, body, ",\"stream\":true");
    r = http(p.url, "/v1/chat/completions", b, NULL);
    char *joined = calloc(1, r.n + 1), *save = NULL;
    bool content_deltas = false;
    for (char *ev = strtok_r(r.body, "\n", &save); ev; ev = strtok_r(NULL, "\n", &save)) {
        if (strncmp(ev, "data: {", 7)) continue;
        json_t *e = json_loads(ev + 6, 0, NULL);
        json_t *d = json_object_get(json_array_get(json_object_get(e, "choices"), 0), "delta");
        if (json_is_string(json_object_get(d, "reasoning_content"))) strcat(joined, json_string_value(json_object_get(d, "reasoning_content")));
        content_deltas |= json_string_length(json_object_get(d, "content")) > 0;
        json_decref(e);
    }
    const bool stream_ok = thinking && !strcmp(joined, thinking) && !content_deltas;
    if (!stream_ok) fprintf(stderr, "    streamed thinking '%s'\n", joined);
    free(joined);
    free(r.body);
    /* the Responses API: the thinking is a reasoning item, whole and as reasoning_text deltas */
    r = http(p.url, "/v1/responses", "{\"input\":\"Tell me a story\",\"max_output_tokens\":40,\"temperature\":0}", NULL);
    json_t *ro = json_loads(r.body, 0, NULL), *item = json_array_get(json_object_get(ro, "output"), 0);
    const char *rtext = json_string_value(json_object_get(json_array_get(json_object_get(item, "content"), 0), "text"));
    const bool resp_ok = r.status == 200 && !strcmp(json_string_value(json_object_get(item, "type")) ?: "", "reasoning") &&
                         json_array_size(json_object_get(ro, "output")) == 1 && thinking && rtext && !strcmp(rtext, thinking);
    if (!resp_ok) fprintf(stderr, "    responses: %s\n", r.body);
    json_decref(ro);
    free(r.body);
    r = http(p.url, "/v1/responses", "{\"input\":\"Tell me a story\",\"max_output_tokens\":40,\"temperature\":0,\"stream\":true}", NULL);
    char *rjoined = calloc(1, r.n + 1);
    save = NULL;
    for (char *ev = strtok_r(r.body, "\n", &save); ev; ev = strtok_r(NULL, "\n", &save)) {
        if (strncmp(ev, "data: {", 7)) continue;
        json_t *e = json_loads(ev + 6, 0, NULL);
        if (!strcmp(json_string_value(json_object_get(e, "type")) ?: "", "response.reasoning_text.delta"))
            strcat(rjoined, json_string_value(json_object_get(e, "delta")) ?: "");
        json_decref(e);
    }
    const bool resp_stream_ok = thinking && !strcmp(rjoined, thinking);
    if (!resp_stream_ok) fprintf(stderr, "    responses streamed thinking '%s'\n", rjoined);
    free(rjoined);
    free(r.body);
    json_decref(o);
    free(plain);
    r = http(p.url, "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"reasoning_format\":\"loud\"}", NULL);
    const bool bad_ok = r.status == 400 && strstr(r.body, "\"param\":\"reasoning_format\"");
    free(r.body);
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
    CHECK(whole_ok);
    CHECK(stream_ok);
    CHECK(bad_ok);
    CHECK(resp_ok);
    CHECK(resp_stream_ok);
}

/* ---- reasoning budget ------------------------------------------------------------------------------- */

static int output_ids(const char *body, int32_t *ids, int cap, bool *named);

/* The ids of a JSON array body field (tokens / token ids), appended to a. */
static void ids_into(json_t *a, const char *body, const char *key) {
    json_t *o = json_loads(body ? body : "", 0, NULL);
    json_array_extend(a, json_object_get(o, key));
    json_decref(o);
}

/* A chat answer's output token ids (logprobs with return_tokens_as_token_ids), whole or streamed. */
static json_t *chat_output_ids(const resp *r, bool stream) {
    json_t *ids = json_array();
    const char *p = r->body;
    while (p && *p) {
        const char *start = stream ? strstr(p, "data: {") : p;
        if (!start) break;
        json_t *o = json_loads(start + (stream ? 6 : 0), JSON_DISABLE_EOF_CHECK, NULL);
        json_t *lp = json_object_get(json_array_get(json_object_get(o, "choices"), 0), "logprobs");
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(lp, "content"), i, t) {
            const char *s = json_string_value(json_object_get(t, "token"));
            json_array_append_new(ids, json_integer(s && !strncmp(s, "token_id:", 9) ? atoi(s + 9) : -1));
        }
        json_decref(o);
        if (!stream) break;
        p = start + 6;
    }
    return ids;
}

/* llama.cpp's reasoning budget: after `budget` tokens of thinking (DeepSeek-R1's template opens the block in the
 * prompt) the message and the closing tag are forced, and the answer goes on from them — the same ids as the
 * prompt's greedy output cut at the budget, then the forced ids, then the greedy continuation of all that (two
 * completions requests); whole and streamed, as a request field or the server's --reasoning-budget, and
 * Anthropic's thinking.budget_tokens; the parts split at the forced tag. */
TEST(serve_reasoning_budget) {
    const char *tpl = "../shared/golden/chat-templates/deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja";
    if (access(tpl, R_OK) != 0) return;
    enum { B = 10, MAXT = 40 };
    for (int by_flag = 0; by_flag < 2 && !sl_test_failed(); by_flag++) {
        sl_test_proc p;
        char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--chat-template", (char *)tpl,
                        by_flag ? "--reasoning-budget" : NULL, "10", "--reasoning-budget-message", " Enough.", NULL};
        CHECK(sl_test_proc_start(&p, args, 20) == 0);
        static const char msgs[] = "\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}]";
        char body[1024];
        snprintf(body, sizeof body, "{%s}", msgs);
        resp tk = http(p.url, "/tokenize", body, NULL);
        json_t *want = json_array(), *pg = json_array();
        ids_into(pg, tk.body, "tokens");
        free(tk.body);
        /* the greedy output, cut at the budget */
        json_t *cq = json_pack("{s:O,s:i,s:i,s:i,s:b}", "prompt", pg, "max_tokens", B, "temperature", 0, "logprobs", 0,
                               "return_tokens_as_token_ids", 1);
        char *cb = json_dumps(cq, 0);
        resp c1 = http(p.url, "/v1/completions", cb, NULL);
        int32_t g[B];
        bool named;
        CHECK_EQ_INT(output_ids(c1.body, g, B, &named), B);
        for (int i = 0; i < B; i++) {
            json_array_append_new(pg, json_integer(g[i]));
            json_array_append_new(want, json_integer(g[i]));
        }
        /* the forced tokens: the message and the closing tag */
        resp ft = http(p.url, "/tokenize", "{\"content\":\" Enough.</think>\",\"add_special\":false}", NULL);
        json_t *f = json_array();
        ids_into(f, ft.body, "tokens");
        json_array_extend(pg, f);
        json_array_extend(want, f);
        CHECK(json_array_size(f) > 1);
        /* and the greedy continuation of all that */
        json_t *cq2 = json_pack("{s:O,s:i,s:i,s:i,s:b}", "prompt", pg, "max_tokens", MAXT - B - (int)json_array_size(f),
                                "temperature", 0, "logprobs", 0, "return_tokens_as_token_ids", 1);
        char *cb2 = json_dumps(cq2, 0);
        resp c2 = http(p.url, "/v1/completions", cb2, NULL);
        int32_t rest[MAXT];
        const int nr = output_ids(c2.body, rest, MAXT, &named);
        CHECK(nr > 0);
        for (int i = 0; i < nr; i++) json_array_append_new(want, json_integer(rest[i]));
        for (int stream = 0; stream < 2 && !sl_test_failed(); stream++) {
            snprintf(body, sizeof body,
                     "{%s,\"max_tokens\":%d,\"temperature\":0,\"logprobs\":true,\"return_tokens_as_token_ids\":true%s%s}",
                     msgs, MAXT, by_flag ? "" : ",\"reasoning_budget_tokens\":10,\"reasoning_budget_message\":\" Enough.\"",
                     stream ? ",\"stream\":true" : "");
            resp r = http(p.url, "/v1/chat/completions", body, NULL);
            json_t *got = chat_output_ids(&r, stream);
            CHECK_MSG(json_equal(got, want), "server flag %d stream %d:\n      got  %s\n      want %s", by_flag, stream,
                      json_dumps(got, JSON_COMPACT), json_dumps(want, JSON_COMPACT));
            if (!stream) { /* the thinking ends with the message; the answer follows the tag */
                json_t *o = json_loads(r.body, 0, NULL);
                json_t *msg = json_object_get(json_array_get(json_object_get(o, "choices"), 0), "message");
                const char *th = json_string_value(json_object_get(msg, "reasoning_content")),
                           *ct = json_string_value(json_object_get(msg, "content"));
                CHECK_MSG(th && ct && strlen(th) > 8 && !strcmp(th + strlen(th) - 7, "Enough.") && *ct,
                          "reasoning '%s', content '%s'", th ? th : "(null)", ct ? ct : "(null)");
                json_decref(o);
            }
            json_decref(got);
            free(r.body);
        }
        if (by_flag == 0) {
            /* Anthropic's budget_tokens: the same budget, no message — the chat answer's text with budget 10 */
            snprintf(body, sizeof body, "{%s,\"max_tokens\":%d,\"temperature\":0,\"reasoning_budget_tokens\":10}", msgs, MAXT);
            resp r = http(p.url, "/v1/chat/completions", body, NULL);
            snprintf(body, sizeof body, "{\"model\":\"stories260K\",%s,\"max_tokens\":%d,\"temperature\":0,"
                                        "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":10}}", msgs, MAXT);
            resp a = http(p.url, "/v1/messages", body, NULL);
            json_t *ro = json_loads(r.body, 0, NULL), *ao = json_loads(a.body, 0, NULL);
            json_t *msg = json_object_get(json_array_get(json_object_get(ro, "choices"), 0), "message");
            const char *text = NULL, *thinking = NULL;
            size_t i;
            json_t *blk;
            json_array_foreach(json_object_get(ao, "content"), i, blk) {
                if (!strcmp(json_string_value(json_object_get(blk, "type")) ?: "", "text"))
                    text = json_string_value(json_object_get(blk, "text"));
                if (!strcmp(json_string_value(json_object_get(blk, "type")) ?: "", "thinking"))
                    thinking = json_string_value(json_object_get(blk, "thinking"));
            }
            CHECK_MSG(a.status == 200 && text && thinking && json_string_value(json_object_get(msg, "content")) &&
                          !strcmp(text, json_string_value(json_object_get(msg, "content"))) &&
                          !strcmp(thinking, json_string_value(json_object_get(msg, "reasoning_content")) ?: ""),
                      "messages %s\n      chat %s", a.body, r.body);
            json_decref(ro);
            json_decref(ao);
            free(r.body);
            free(a.body);
            resp bad = http(p.url, "/v1/chat/completions",
                            "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"reasoning_budget_tokens\":-2}", NULL);
            CHECK_MSG(bad.status == 400 && strstr(bad.body, "\"param\":\"reasoning_budget_tokens\""), "%ld %s", bad.status,
                      bad.body);
            free(bad.body);
        }
        json_decref(want);
        json_decref(pg);
        json_decref(f);
        json_decref(cq);
        json_decref(cq2);
        free(cb);
        free(cb2);
        free(c1.body);
        free(c2.body);
        free(ft.body);
        CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
    }
}

/* Bad tools and tool_choice: 400 naming the field. */
TEST(serve_tool_calls_bad_input) {
    const char *url = start_default();
    CHECK(url);
    static const char user[] = "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]";
    static const struct {
        const char *fields, *param;
    } cases[] = {
        {"\"tools\":\"get_weather\"", "tools"},
        {"\"tools\":[{\"function\":{\"name\":\"f\"}}]", "tools[0]"},
        {"\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get weather\"}}]", "tools[0].function.name"},
        {"\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}},{\"type\":\"function\",\"function\":"
         "{\"name\":\"f\"}}]",
         "tools[1].function.name"},
        {"\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":[]}}]",
         "tools[0].function.parameters"},
        {"\"tools\":" TOOLS_JSON ",\"tool_choice\":\"sometimes\"", "tool_choice"},
        {"\"tool_choice\":\"required\"", "tool_choice"},
        {"\"tools\":" TOOLS_JSON ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"nope\"}}", "tool_choice"},
        {"\"tools\":" TOOLS_JSON ",\"tool_choice\":\"required\",\"response_format\":{\"type\":\"json_object\"}",
         "tool_choice"},
        {"\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
         "\"properties\":{\"when\":{\"type\":\"string\",\"pattern\":\"(?=a)\"}}}}}],\"tool_choice\":\"required\"",
         "tools"},
        {"\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
         "\"properties\":{\"n\":{\"not\":{\"const\":2}}}}}}],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"f\"}}",
         "tools[0].function.parameters"},
        {"\"tools\":" TOOLS_JSON ",\"parallel_tool_calls\":1", "parallel_tool_calls"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *body = NULL;
        if (asprintf(&body, "{%s,%s}", user, cases[i].fields) < 0) abort();
        resp r = http(url, "/v1/chat/completions", body, NULL);
        json_t *o = json_loads(r.body, 0, NULL);
        json_t *param = json_object_get(json_object_get(o, "error"), "param");
        const bool ok = r.status == 400 && json_is_string(param) && !strcmp(json_string_value(param), cases[i].param);
        if (!ok) fprintf(stderr, "    case %zu %s -> %ld %s\n", i, body, r.status, r.body);
        json_decref(o);
        free(r.body);
        free(body);
        CHECK(ok);
    }
    resp r = http(url, "/v1/chat/completions",
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"tool_calls\":{}}]}", NULL);
    CHECK_MSG(r.status == 400 && strstr(r.body, "\"param\":\"messages[1].tool_calls\""), "%ld %s", r.status, r.body);
    free(r.body);
}

static char *prompt_body(int i, int max_tokens, bool stream, double temp, int seed) {
    static const char *starts[] = {"Once upon a time", "Lily and Ben went to the park.", "The little dog was sad because",
                                   "One day, Tom found a big red ball", "She said, \"I want to play!\"", "The sun was",
                                   "A cat and a bird", "Mom said"};
    char prompt[256];
    snprintf(prompt, sizeof prompt, "%s%s", starts[i % 8], i >= 8 ? " and then" : "");
    json_t *o = json_pack("{s:s,s:i,s:f,s:b,s:b}", "prompt", prompt, "max_tokens", max_tokens, "temperature", temp,
                          "ignore_eos", 1, "stream", stream);
    if (seed >= 0) json_object_set_new(o, "seed", json_integer(seed));
    char *b = json_dumps(o, 0);
    json_decref(o);
    return b;
}

/* choices[0] of a completion as JSON (text, logprobs, finish reason); caller frees. */
static char *choice_json(const resp *r) {
    json_error_t je;
    json_t *o = json_loads(r->body, 0, &je);
    json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
    char *s = ch ? json_dumps(ch, JSON_SORT_KEYS) : NULL;
    json_decref(o);
    return s;
}

/* Body b (freed) with key set to value (taken). */
static char *with_field(char *b, const char *key, json_t *value) {
    json_t *o = json_loads(b, 0, NULL);
    free(b);
    json_object_set_new(o, key, value);
    char *out = json_dumps(o, 0);
    json_decref(o);
    return out;
}

/* Send n requests (body_fn(i)) one at a time, then all at once; returns how
 * many concurrent answers equal their answer alone (printing the others):
 * the same key (completion_text, or choice_json). */
typedef char *(*body_fn)(int i);
typedef char *(*key_fn)(const resp *r);
typedef const char *(*path_fn)(int i);
static const char *completions_path(int i) {
    (void)i;
    return "/v1/completions";
}
static int alone_vs_together_at(const char *url, int n, path_fn path, body_fn body, key_fn key) {
    char **alone = calloc((size_t)n, sizeof *alone);
    for (int i = 0; i < n; i++) {
        char *b = body(i);
        resp r = http(url, path(i), b, NULL);
        alone[i] = key(&r);
        free(r.body);
        free(b);
    }
    CURLM *m = curl_multi_init();
    CURL **easy = calloc((size_t)n, sizeof *easy);
    resp *rs = calloc((size_t)n, sizeof *rs);
    struct curl_slist **hs = calloc((size_t)n, sizeof *hs);
    char **bodies = calloc((size_t)n, sizeof *bodies);
    for (int i = 0; i < n; i++) {
        bodies[i] = body(i);
        easy[i] = make_easy(url, path(i), bodies[i], NULL, &rs[i], &hs[i]);
        curl_multi_add_handle(m, easy[i]);
    }
    int running = n;
    double t0 = now_s();
    while (running && now_s() - t0 < 60) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    int same = 0;
    for (int i = 0; i < n; i++) {
        char *t = key(&rs[i]);
        if (alone[i] && t && *t && !strcmp(alone[i], t)) same++;
        else fprintf(stderr, "    request %d differs:\n      alone    [%s]\n      together [%s]\n", i, alone[i],
                     t ? t : rs[i].body);
        free(t);
        curl_multi_remove_handle(m, easy[i]);
        curl_easy_cleanup(easy[i]);
        curl_slist_free_all(hs[i]);
        free(rs[i].body);
        free(bodies[i]);
        free(alone[i]);
    }
    curl_multi_cleanup(m);
    free(alone);
    free(easy);
    free(rs);
    free(hs);
    free(bodies);
    return same;
}

static int alone_vs_together_by(const char *url, int n, body_fn body, key_fn key) {
    return alone_vs_together_at(url, n, completions_path, body, key);
}

static int alone_vs_together(const char *url, int n, body_fn body) {
    return alone_vs_together_by(url, n, body, completion_text);
}

static char *body_mixed40(int i) { return prompt_body(i, 40, false, i % 4 == 3 ? 0.9 : 0.0, i % 4 == 3 ? 1234 + i : -1); }
static char *body_greedy300(int i) { return prompt_body(i, 300, false, 0.0, -1); }
static char *body_greedy24(int i) { return prompt_body(i, 24, false, 0.0, -1); }

/* 16 concurrent requests give exactly what each gives alone (greedy and seeded sampling). */
TEST(serve_concurrent_equals_alone) {
    const char *url = start_default();
    CHECK(url);
    CHECK_EQ_INT(alone_vs_together(url, 16, body_mixed40), 16);
}

/* SSE framing: data: {json} events, one [DONE] at the end, text equal to the non-streaming answer. */
static void check_stream(const char *url, const char *path, const char *stream_body, const char *plain_body, bool chat) {
    resp plain = http(url, path, plain_body, NULL);
    char *want = completion_text(&plain);
    free(plain.body);
    resp r = http(url, path, stream_body, NULL);
    CHECK_EQ_INT(r.status, 200);
    char *text = calloc(1, r.n + 1);
    int n_done = 0, n_events = 0, bad = 0, after_done = 0, usage_chunks = 0;
    const char *finish = NULL;
    char finish_buf[32] = "";
    char *save = NULL;
    for (char *ev = strtok_r(r.body, "\n", &save); ev; ev = strtok_r(NULL, "\n", &save)) {
        if (strncmp(ev, "data: ", 6) != 0) {
            bad++;
            continue;
        }
        if (n_done) after_done++;
        if (!strcmp(ev + 6, "[DONE]")) {
            n_done++;
            continue;
        }
        n_events++;
        json_error_t je;
        json_t *o = json_loads(ev + 6, 0, &je);
        if (!o) {
            bad++;
            continue;
        }
        json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
        if (!ch && json_is_object(json_object_get(o, "usage"))) usage_chunks++;
        json_t *t = chat ? json_object_get(json_object_get(ch, "delta"), "content") : json_object_get(ch, "text");
        if (json_is_string(t)) strcat(text, json_string_value(t));
        json_t *fr = json_object_get(ch, "finish_reason");
        if (json_is_string(fr)) {
            snprintf(finish_buf, sizeof finish_buf, "%s", json_string_value(fr));
            finish = finish_buf;
        }
        json_decref(o);
    }
    int same = want && !strcmp(text, want);
    if (!same) fprintf(stderr, "    stream [%s]\n    plain  [%s]\n", text, want ? want : "?");
    free(text);
    free(want);
    free(r.body);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(n_done, 1);
    CHECK_EQ_INT(after_done, 0);
    CHECK(n_events >= 2);
    CHECK_MSG(finish && !strcmp(finish, "length"), "finish_reason %s", finish ? finish : "(none)");
    CHECK_EQ_INT(usage_chunks, 1);
    CHECK(same);
}

TEST(serve_sse_framing) {
    const char *url = start_default();
    CHECK(url);
    check_stream(url, "/v1/completions",
                 "{\"prompt\":\"The little dog\",\"max_tokens\":30,\"temperature\":0,\"ignore_eos\":true,\"stream\":true,"
                 "\"stream_options\":{\"include_usage\":true}}",
                 "{\"prompt\":\"The little dog\",\"max_tokens\":30,\"temperature\":0,\"ignore_eos\":true}", false);
    if (sl_test_failed()) return;
    check_stream(url, "/v1/chat/completions",
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"max_tokens\":30,\"temperature\":0,"
                 "\"ignore_eos\":true,\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
                 "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"max_tokens\":30,\"temperature\":0,"
                 "\"ignore_eos\":true}",
                 true);
}

/* Streaming with logprobs: every chunk that carries tokens carries their logprobs. */
TEST(serve_stream_logprobs) {
    const char *url = start_default();
    CHECK(url);
    resp r = http(url, "/v1/chat/completions",
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":20,\"temperature\":0,"
                  "\"ignore_eos\":true,\"stream\":true,\"logprobs\":true,\"top_logprobs\":3}", NULL);
    int n_tok = 0, bad = 0;
    char *save = NULL;
    for (char *ev = strtok_r(r.body, "\n", &save); ev; ev = strtok_r(NULL, "\n", &save)) {
        if (strncmp(ev, "data: {", 7) != 0) continue;
        json_error_t je;
        json_t *o = json_loads(ev + 6, 0, &je);
        json_t *lp = json_object_get(json_array_get(json_object_get(o, "choices"), 0), "logprobs");
        json_t *content = json_object_get(lp, "content");
        size_t i;
        json_t *e;
        json_array_foreach(content, i, e) {
            n_tok++;
            json_t *top = json_object_get(e, "top_logprobs");
            double l = json_real_value(json_object_get(e, "logprob"));
            if (json_array_size(top) != 3 || !(l <= 0) || !json_is_string(json_object_get(e, "token"))) bad++;
        }
        json_decref(o);
    }
    free(r.body);
    CHECK_EQ_INT(r.status, 200);
    CHECK_EQ_INT(n_tok, 20);
    CHECK_EQ_INT(bad, 0);
}

/* Completions' echo with logprobs, as lm-evaluation-harness scores a text:
 * a token prompt of llama.cpp's prompt ids plus its first 60 greedy tokens,
 * max_tokens 0. Each of those 60 tokens' logprob must be the log-softmax of
 * llama.cpp's logits at its position (main.00.logits_all.txt, line k: the
 * logits that produced generated token k), and its top alternative the token
 * itself; the first prompt token has none (null). The 65 positions take
 * several steps. Asked again, with the prompt's blocks now in the prefix
 * cache, the answer is the same (no cached tokens: every position computed);
 * streamed, the echo is the first chunk. */
#define ECHO_GEN 60
static json_t *echo_body(json_t *g, bool stream) {
    json_t *ids = json_deep_copy(json_object_get(g, "prompt_token_ids"));
    json_t *gen = json_object_get(g, "generated_token_ids");
    for (size_t i = 0; i < ECHO_GEN; i++) json_array_append(ids, json_array_get(gen, i));
    return json_pack("{s:o,s:i,s:b,s:i,s:b}", "prompt", ids, "max_tokens", 0, "echo", 1, "logprobs", 1, "stream", stream);
}

static char *echo_request(const char *url, json_t *g, bool stream) {
    json_t *b = echo_body(g, stream);
    char *body = json_dumps(b, 0);
    json_decref(b);
    resp r = http(url, "/v1/completions", body, NULL);
    free(body);
    if (r.status != 200) fprintf(stderr, "    echo: HTTP %ld: %s\n", r.status, r.body);
    return r.body;
}

/* Echo with logprobs, prompts of three sentences: 8 at once need more prompt positions' logits than one step
 * computes (SL_PLP_ROWS) */
static char *body_echo8(int i) {
    char *b = prompt_body(i, 8, false, 0.0, -1);
    json_t *o = json_loads(b, 0, NULL);
    char prompt[512];
    const char *p = json_string_value(json_object_get(o, "prompt"));
    snprintf(prompt, sizeof prompt, "%s. %s. %s.", p, p, p);
    json_decref(o);
    b = with_field(b, "prompt", json_string(prompt));
    b = with_field(b, "echo", json_true());
    return with_field(b, "logprobs", json_integer(2));
}

/* From llama.cpp's logits of golden prompt 00 (g): want[k], the log-softmax of generated token k at its
 * position, and second[k], that of the runner-up there. False when the file cannot be read. */
static bool golden_logprobs(json_t *g, double want[ECHO_GEN], double second[ECHO_GEN]) {
    char lp_path[256];
    snprintf(lp_path, sizeof lp_path, "%s", sl_test_shared("golden/stories260K/main.00.logits_all.txt"));
    FILE *f = fopen(lp_path, "r");
    if (!f) return false;
    static double logits[512];
    json_t *gen = json_object_get(g, "generated_token_ids");
    for (int k = 0; k < ECHO_GEN; k++) {
        double mx = -1e30, mx2 = -1e30, sum = 0;
        for (int v = 0; v < 512; v++) {
            if (fscanf(f, "%lf", &logits[v]) != 1) {
                fclose(f);
                return false;
            }
            if (logits[v] > mx) {
                mx2 = mx;
                mx = logits[v];
            } else if (logits[v] > mx2) {
                mx2 = logits[v];
            }
        }
        for (int v = 0; v < 512; v++) sum += exp(logits[v] - mx);
        want[k] = logits[json_integer_value(json_array_get(gen, (size_t)k))] - mx - log(sum);
        second[k] = mx2 - mx - log(sum);
    }
    fclose(f);
    return true;
}

TEST(serve_echo_prompt_logprobs) {
    const char *url = start_default();
    CHECK(url);
    json_t *g = golden_json(0);
    CHECK(g);
    static double want[ECHO_GEN], second[ECHO_GEN];
    CHECK(golden_logprobs(g, want, second));
    const size_t n_p = json_array_size(json_object_get(g, "prompt_token_ids"));

    char *first = NULL;
    for (int round = 0; round < 2; round++) {
        char *body = echo_request(url, g, false);
        json_t *o = json_loads(body, 0, NULL);
        json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
        json_t *lp = json_object_get(ch, "logprobs");
        json_t *lps = json_object_get(lp, "token_logprobs"), *tops = json_object_get(lp, "top_logprobs");
        CHECK_EQ_INT(json_array_size(lps), n_p + ECHO_GEN);
        CHECK(json_is_null(json_array_get(lps, 0)) && json_is_null(json_array_get(tops, 0)));
        for (size_t i = 1; i < n_p; i++) CHECK(json_real_value(json_array_get(lps, i)) <= 0);
        int off = 0, not_top = 0;
        double worst = 0;
        for (int k = 0; k < ECHO_GEN; k++) {
            const double got = json_real_value(json_array_get(lps, n_p + (size_t)k));
            if (fabs(got - want[k]) > worst) worst = fabs(got - want[k]);
            off += !(fabs(got - want[k]) <= 1e-3);
            /* the top alternative is the greedy token itself: its logprob */
            const char *key;
            json_t *v, *top = json_array_get(tops, n_p + (size_t)k);
            json_object_foreach(top, key, v) not_top += json_real_value(v) != got;
        }
        if (off) fprintf(stderr, "    round %d: %d of %d logprobs off (worst %.3g)\n", round, off, ECHO_GEN, worst);
        CHECK_EQ_INT(off, 0);
        CHECK_EQ_INT(not_top, 0);
        CHECK_STR(json_string_value(json_object_get(ch, "finish_reason")), "length");
        CHECK_EQ_INT(usage_field(&(resp){.body = body}, "completion_tokens", NULL), 0);
        CHECK_EQ_INT(usage_field(&(resp){.body = body}, "prompt_tokens_details", "cached_tokens"), 0);
        /* the echoed text is the text of the prompt's ids, each token's text at its text_offset */
        const char *text = json_string_value(json_object_get(ch, "text"));
        CHECK(text && strstr(text, "Once upon a time") == text + 1);
        json_t *toks = json_object_get(lp, "tokens"), *offs = json_object_get(lp, "text_offset");
        int misplaced = 0;
        for (size_t i = 1; i < n_p + ECHO_GEN; i++) {
            const char *piece = json_string_value(json_array_get(toks, i));
            const json_int_t at = json_integer_value(json_array_get(offs, i));
            misplaced += !piece || at < 0 || at > (json_int_t)strlen(text) || strncmp(text + at, piece, strlen(piece));
        }
        CHECK_EQ_INT(misplaced, 0);
        if (round == 0) {
            first = strdup(text);
            /* the prompt's blocks are now cached: a request without echo uses them */
            json_t *b = echo_body(g, false);
            json_object_del(b, "echo");
            json_object_set_new(b, "max_tokens", json_integer(1));
            char *pb = json_dumps(b, 0);
            json_decref(b);
            resp plain = http(url, "/v1/completions", pb, NULL);
            free(pb);
            CHECK(usage_field(&plain, "prompt_tokens_details", "cached_tokens") >= 48);
            free(plain.body);
        } else {
            CHECK_STR(text, first);
        }
        json_decref(o);
        free(body);
    }
    /* streamed: the echo (text and the prompt's logprobs) comes first */
    char *sb = echo_request(url, g, true);
    const char *ev = strstr(sb, "data: {");
    json_t *o = ev ? json_loadb(ev + 6, strcspn(ev + 6, "\n"), 0, NULL) : NULL;
    json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
    CHECK_STR(json_string_value(json_object_get(ch, "text")), first);
    CHECK_EQ_INT(json_array_size(json_object_get(json_object_get(ch, "logprobs"), "token_logprobs")), n_p + ECHO_GEN);
    CHECK(strstr(sb, "\"finish_reason\":\"length\"") && strstr(sb, "data: [DONE]"));
    json_decref(o);
    free(sb);
    free(first);
    /* max_tokens 0 needs echo */
    resp r = http(url, "/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":0}", NULL);
    CHECK_EQ_INT(r.status, 400);
    CHECK(strstr(r.body, "\"param\":\"max_tokens\""));
    free(r.body);
    json_decref(g);
    /* many at once: the same prompt logprobs, text and output as alone */
    CHECK_EQ_INT(alone_vs_together_by(url, 8, body_echo8, choice_json), 8);
}

/* A router resuming a stream (failover) tells the engine how many of the
 * prompt's tokens were the first engine's output and how much of their text
 * the client got: text the first engine still held back as a possible stop
 * string comes out first. Reference: llama.cpp's greedy ids and text. */
static char *resume_text(const char *url, json_t *g, int n, int max_tokens, const char *stop, long long sent) {
    json_t *ids = json_deep_copy(json_object_get(g, "prompt_token_ids"));
    for (int i = 0; i < n; i++) json_array_append(ids, json_array_get(json_object_get(g, "generated_token_ids"), (size_t)i));
    json_t *req = json_pack("{s:o,s:i,s:f,s:b}", "prompt", ids, "max_tokens", max_tokens, "temperature", 0.0,
                            "ignore_eos", 1);
    if (stop) json_object_set_new(req, "stop", json_pack("[s]", stop));
    if (sent >= 0) json_object_set_new(req, "shardlm_resume", json_pack("{s:i,s:I}", "generated", n, "text_sent", (json_int_t)sent));
    char *body = json_dumps(req, 0);
    json_decref(req);
    resp r = http(url, "/v1/completions", body, NULL);
    free(body);
    char *t = r.status == 200 ? completion_text(&r) : NULL;
    free(r.body);
    return t;
}

/* vLLM's prompt_logprobs on the same 65-token prompt (no echo, one token out): each of the 60 greedy tokens'
 * entry has llama.cpp's log-softmax and rank 1, and the runner-up at rank 2 has its runner-up's; the first
 * prompt token has none (null). Streaming refuses it. */
TEST(serve_prompt_logprobs_vllm_form) {
    const char *url = start_default();
    CHECK(url);
    json_t *g = golden_json(0);
    CHECK(g);
    static double want[ECHO_GEN], second[ECHO_GEN];
    CHECK(golden_logprobs(g, want, second));
    const size_t n_p = json_array_size(json_object_get(g, "prompt_token_ids"));
    json_t *b = echo_body(g, false);
    json_object_del(b, "echo");
    json_object_del(b, "logprobs");
    json_object_set_new(b, "max_tokens", json_integer(1));
    json_object_set_new(b, "prompt_logprobs", json_integer(2));
    char *body = json_dumps(b, 0);
    resp r = http(url, "/v1/completions", body, NULL);
    CHECK_EQ_INT(r.status, 200);
    json_t *o = json_loads(r.body, 0, NULL);
    json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
    json_t *plp = json_object_get(ch, "prompt_logprobs");
    CHECK(json_is_null(json_object_get(ch, "logprobs")));
    CHECK_EQ_INT(json_array_size(plp), n_p + ECHO_GEN);
    CHECK(json_is_null(json_array_get(plp, 0)));
    json_t *gen = json_object_get(g, "generated_token_ids");
    int off = 0, bad_rank = 0;
    for (int k = 0; k < ECHO_GEN; k++) {
        json_t *d = json_array_get(plp, n_p + (size_t)k);
        char id[16];
        snprintf(id, sizeof id, "%lld", (long long)json_integer_value(json_array_get(gen, (size_t)k)));
        json_t *mine = json_object_get(d, id);
        off += !(fabs(json_number_value(json_object_get(mine, "logprob")) - want[k]) <= 1e-3);
        bad_rank += json_integer_value(json_object_get(mine, "rank")) != 1;
        CHECK(json_is_string(json_object_get(mine, "decoded_token")));
        /* the runner-up: the other entry, rank 2 */
        const char *key;
        json_t *v;
        int others = 0;
        json_object_foreach(d, key, v) {
            if (!strcmp(key, id)) continue;
            others++;
            bad_rank += json_integer_value(json_object_get(v, "rank")) != 2;
            off += !(fabs(json_number_value(json_object_get(v, "logprob")) - second[k]) <= 1e-3);
        }
        CHECK_EQ_INT(others, 1);
    }
    CHECK_EQ_INT(off, 0);
    CHECK_EQ_INT(bad_rank, 0);
    json_decref(o);
    free(r.body);
    free(body);
    json_object_set_new(b, "stream", json_true());
    body = json_dumps(b, 0);
    r = http(url, "/v1/completions", body, NULL);
    CHECK_EQ_INT(r.status, 400);
    CHECK(strstr(r.body, "prompt_logprobs"));
    free(r.body);
    free(body);
    json_decref(b);
    json_decref(g);
}

TEST(serve_resume_releases_held_text) {
    const char *url = start_default();
    CHECK(url);
    json_t *g = golden_json(0);
    CHECK(g);
    const char *want = json_string_value(json_object_get(g, "generated_text"));
    enum { N = 20, M = 64 };
    /* the text of the first N tokens, as a stream would have it */
    json_t *req = json_pack("{s:O,s:i,s:f,s:b}", "prompt", json_object_get(g, "prompt_token_ids"), "max_tokens", N,
                            "temperature", 0.0, "ignore_eos", 1);
    char *body = json_dumps(req, 0);
    json_decref(req);
    resp r = http(url, "/v1/completions", body, NULL);
    free(body);
    char *tn = completion_text(&r);
    free(r.body);
    CHECK(tn && !strncmp(tn, want, strlen(tn)) && strlen(tn) > 3);
    const size_t L = strlen(tn);
    /* a stop string that starts with the last 3 bytes and never matches: after N tokens a stream holds those back */
    char stop[8];
    snprintf(stop, sizeof stop, "%s\x01", tn + L - 3);
    char *held = resume_text(url, g, N, M - N, stop, (long long)L - 3);
    CHECK_MSG(held && !strcmp(held, want + L - 3), "resumed with 3 bytes held: [%s], want [%s]", held ? held : "(error)",
              want + L - 3);
    /* nothing held: exactly the rest */
    char *rest = resume_text(url, g, N, M - N, NULL, (long long)L);
    CHECK_MSG(rest && !strcmp(rest, want + L), "resumed: [%s], want [%s]", rest ? rest : "(error)", want + L);
    /* every token already streamed (max_tokens 0): only the held-back bytes come, nothing is generated */
    char *tail = resume_text(url, g, N, 0, stop, (long long)L - 3);
    CHECK_MSG(tail && !strcmp(tail, tn + L - 3), "resumed with no token left: [%s], want [%s]", tail ? tail : "(error)",
              tn + L - 3);
    free(tail);
    /* max_tokens 0 is refused without the resume field */
    {
        resp z = http(url, "/v1/completions", "{\"prompt\":[1,2,3],\"max_tokens\":0}", NULL);
        CHECK_MSG(z.status == 400 && strstr(z.body, "max_tokens"), "max_tokens 0: %ld %s", z.status, z.body);
        free(z.body);
    }
    /* without the resume field the held bytes are not known to the engine: they are missing (what the field fixes) */
    char *plain = resume_text(url, g, N, M - N, stop, -1);
    CHECK(plain && !strcmp(plain, want + L));
    free(held);
    free(rest);
    free(plain);
    free(tn);
    /* bad values are refused with the field named */
    static const char *bad[] = {"{\"generated\":-1,\"text_sent\":0}", "{\"generated\":100000,\"text_sent\":0}",
                                "{\"generated\":1,\"text_sent\":-5}", "{\"generated\":\"x\"}", "[1]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char b[256];
        snprintf(b, sizeof b, "{\"prompt\":[1,2,3],\"max_tokens\":2,\"shardlm_resume\":%s}", bad[i]);
        resp e = http(url, "/v1/completions", b, NULL);
        CHECK_MSG(e.status == 400 && strstr(e.body, "shardlm_resume"), "%s: %ld %s", bad[i], e.status, e.body);
        free(e.body);
    }
    json_decref(g);
}

/* A repeated prompt hits the prefix cache: cached tokens in usage, hits in /metrics. */
/* One greedy completion of golden prompt g with extra fields (a JSON object, consumed). */
typedef struct adj_out {
    int status;
    char *text;
    char finish[16];
    long long n;
    double lp0;        /* logprob of the first token */
    double top0[2];    /* the two largest logprobs at the first position (with logprobs >= 2) */
} adj_out;

/* Golden prompt g's ids, greedy, EOS ignored, logprobs 2, max_tokens, and the fields of `extra` (taken; a
 * null one leaves that field out): the completions response. */
static resp adjusted_resp(const char *url, json_t *g, int max_tokens, json_t *extra) {
    json_t *req = json_pack("{s:O,s:i,s:f,s:b,s:i}", "prompt", json_object_get(g, "prompt_token_ids"), "max_tokens",
                            max_tokens, "temperature", 0.0, "ignore_eos", 1, "logprobs", 2);
    if (extra) json_object_update(req, extra);
    json_decref(extra);
    char *body = json_dumps(req, 0);
    json_decref(req);
    resp r = http(url, "/v1/completions", body, NULL);
    free(body);
    return r;
}

static adj_out adjusted(const char *url, json_t *g, int max_tokens, json_t *extra) {
    resp r = adjusted_resp(url, g, max_tokens, extra);
    adj_out o = {.status = (int)r.status, .text = completion_text(&r), .n = usage_field(&r, "completion_tokens", NULL)};
    json_error_t je;
    json_t *js = json_loads(r.body, 0, &je);
    json_t *ch = json_array_get(json_object_get(js, "choices"), 0), *lp = json_object_get(ch, "logprobs");
    snprintf(o.finish, sizeof o.finish, "%s", json_string_value(json_object_get(ch, "finish_reason")) ?: "");
    o.lp0 = json_number_value(json_array_get(json_object_get(lp, "token_logprobs"), 0));
    o.top0[0] = o.top0[1] = -1e30;
    const char *k;
    json_t *v;
    json_object_foreach(json_array_get(json_object_get(lp, "top_logprobs"), 0), k, v) {
        double x = json_number_value(v);
        if (x > o.top0[0]) {
            o.top0[1] = o.top0[0];
            o.top0[0] = x;
        } else if (x > o.top0[1]) o.top0[1] = x;
    }
    json_decref(js);
    free(r.body);
    return o;
}

/* logit_bias (OpenAI), stop_token_ids and min_tokens (vLLM) through HTTP,
 * against llama.cpp's greedy ids for golden prompt 00. */
TEST(serve_logit_bias_stop_ids_min_tokens) {
    const char *url = start_default();
    CHECK(url);
    json_t *g = golden_json(0);
    CHECK(g);
    json_t *gen = json_object_get(g, "generated_token_ids");
    /* k: the first token from the third on that has not come earlier */
    int k = 2;
    for (;; k++) {
        CHECK(k < 40);
        bool seen = false;
        for (int i = 0; i < k; i++) seen |= json_integer_value(json_array_get(gen, (size_t)i)) ==
                                            json_integer_value(json_array_get(gen, (size_t)k));
        if (!seen) break;
    }
    const json_int_t stop_id = json_integer_value(json_array_get(gen, (size_t)k));
    adj_out plain_k1 = adjusted(url, g, k + 1, NULL), plain_k2 = adjusted(url, g, k + 2, NULL),
            plain_k = adjusted(url, g, k, NULL);
    CHECK(plain_k1.text && plain_k2.text && plain_k.text);

    /* stop_token_ids: ends at token k with "stop"; its text stays (vLLM keeps non-special stop tokens) */
    adj_out a = adjusted(url, g, 30, json_pack("{s:[I]}", "stop_token_ids", stop_id));
    CHECK_EQ_INT(a.status, 200);
    CHECK_STR(a.finish, "stop");
    CHECK_EQ_INT(a.n, k + 1);
    CHECK(a.text && !strcmp(a.text, plain_k1.text));

    /* min_tokens k + 2: token k cannot be the stop id, so the text departs from llama.cpp's there */
    adj_out b = adjusted(url, g, k + 2, json_pack("{s:[I],s:i}", "stop_token_ids", stop_id, "min_tokens", k + 2));
    CHECK_EQ_INT(b.status, 200);
    CHECK_STR(b.finish, "length");
    CHECK_EQ_INT(b.n, k + 2);
    CHECK(b.text && !strncmp(b.text, plain_k.text, strlen(plain_k.text)) && strcmp(b.text, plain_k2.text) != 0);

    /* logit_bias -100 on llama.cpp's first token: the greedy pick is the runner-up, whose raw logprob is the
     * second largest of the unbiased first position */
    char key[16];
    snprintf(key, sizeof key, "%lld", (long long)json_integer_value(json_array_get(gen, 0)));
    adj_out c = adjusted(url, g, 1, json_pack("{s:{s:i}}", "logit_bias", key, -100));
    CHECK_EQ_INT(c.status, 200);
    CHECK(c.text && strcmp(c.text, plain_k1.text) != 0);
    CHECK_NEAR(plain_k1.top0[0], plain_k1.lp0, 1e-6);
    CHECK_NEAR(c.lp0, plain_k1.top0[1], 1e-6);

    /* logit_bias +100 on token 300: it wins every step */
    adj_out d = adjusted(url, g, 3, json_pack("{s:{s:i}}", "logit_bias", "300", 100));
    resp dt = http(url, "/detokenize", "{\"tokens\": [300, 300, 300]}", NULL);
    json_t *dj = json_loads(dt.body, 0, NULL);
    CHECK_EQ_INT(d.status, 200);
    CHECK(d.text && json_is_string(json_object_get(dj, "prompt")) &&
          !strcmp(d.text, json_string_value(json_object_get(dj, "prompt"))));
    json_decref(dj);
    free(dt.body);

    /* refused with the field named, and the server keeps serving */
    adj_out e = adjusted(url, g, 4, json_pack("{s:{s:i}}", "logit_bias", "999999", 1));
    CHECK_EQ_INT(e.status, 400);
    adj_out f = adjusted(url, g, 4, json_pack("{s:i}", "min_tokens", 5));
    CHECK_EQ_INT(f.status, 400);
    adj_out ok = adjusted(url, g, 1, NULL);
    CHECK_EQ_INT(ok.status, 200);
    adj_out *all[] = {&plain_k1, &plain_k2, &plain_k, &a, &b, &c, &d, &e, &f, &ok};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]->text);
    json_decref(g);
}

/* The output's token ids, read from logprobs named "token_id:N" (return_tokens_as_token_ids); n of them.
 * *named: every token and top alternative is so named. */
static int output_ids(const char *body, int32_t *ids, int cap, bool *named) {
    json_error_t je;
    json_t *o = json_loads(body, 0, &je);
    json_t *toks = json_object_get(json_object_get(json_array_get(json_object_get(o, "choices"), 0), "logprobs"),
                                   "tokens");
    int n = 0;
    *named = json_array_size(toks) > 0;
    for (size_t i = 0; i < json_array_size(toks) && n < cap; i++) {
        const char *t = json_string_value(json_array_get(toks, i));
        *named &= t && !strncmp(t, "token_id:", 9);
        ids[n++] = t ? (int32_t)atoi(t + 9) : -1;
    }
    const char *k;
    json_t *v;
    json_t *tops = json_object_get(json_object_get(json_array_get(json_object_get(o, "choices"), 0), "logprobs"),
                                   "top_logprobs");
    for (size_t i = 0; i < json_array_size(tops); i++)
        json_object_foreach(json_array_get(tops, i), k, v) *named &= !strncmp(k, "token_id:", 9);
    json_decref(o);
    return n;
}

/* vLLM's include_stop_str_in_output, allowed_token_ids, bad_words, truncate_prompt_tokens,
 * skip_special_tokens and return_tokens_as_token_ids, and llama.cpp's repeat_penalty / n_predict, through
 * HTTP on golden prompt 00 (whose greedy output is llama.cpp's, serve_greedy_matches_golden). */
TEST(serve_vllm_sampling_fields) {
    const char *url = start_default();
    CHECK(url);
    json_t *g = golden_json(0);
    CHECK(g);
    json_t *gen = json_object_get(g, "generated_token_ids");
    adj_out plain = adjusted(url, g, 30, NULL);
    CHECK(plain.text && strlen(plain.text) > 24);

    /* a stop string from the plain text: cut before it, or after it with include_stop_str_in_output */
    char stop[5];
    memcpy(stop, plain.text + 20, 4);
    stop[4] = '\0';
    const size_t at = (size_t)(strstr(plain.text, stop) - plain.text);
    adj_out a = adjusted(url, g, 30, json_pack("{s:s}", "stop", stop));
    adj_out b = adjusted(url, g, 30, json_pack("{s:s,s:b}", "stop", stop, "include_stop_str_in_output", 1));
    CHECK(a.text && strlen(a.text) == at && !strncmp(a.text, plain.text, at) && !strcmp(a.finish, "stop"));
    CHECK(b.text && strlen(b.text) == at + 4 && !strncmp(b.text, plain.text, at + 4) && !strcmp(b.finish, "stop"));

    /* allowed_token_ids: every token one of them (named by id); the first is llama.cpp's, which is allowed */
    const json_int_t g0 = json_integer_value(json_array_get(gen, 0)), g5 = json_integer_value(json_array_get(gen, 5));
    resp r = adjusted_resp(url, g, 12, json_pack("{s:[I,I,i],s:b}", "allowed_token_ids", g0, g5, 300,
                                                  "return_tokens_as_token_ids", 1));
    int32_t ids[64];
    bool named = false;
    int n = output_ids(r.body, ids, 64, &named);
    CHECK_EQ_INT(r.status, 200);
    CHECK(named && n == 12 && ids[0] == g0);
    for (int i = 0; i < n; i++) CHECK_MSG(ids[i] == g0 || ids[i] == g5 || ids[i] == 300, "token %d is %d", i, ids[i]);
    free(r.body);

    /* bad_words: the word of llama.cpp's first token never comes as /tokenize spells it */
    char piece_req[64];
    snprintf(piece_req, sizeof piece_req, "{\"tokens\": [%lld]}", (long long)g0);
    resp pr = http(url, "/detokenize", piece_req, NULL);
    json_t *pj = json_loads(pr.body, 0, NULL);
    const char *word = json_string_value(json_object_get(pj, "prompt"));
    CHECK(word);
    while (word && *word == ' ') word++;
    json_t *tq = json_pack("{s:s,s:b}", "prompt", word ? word : "", "add_special", 0);
    char *tb = json_dumps(tq, 0);
    resp tr = http(url, "/tokenize", tb, NULL);
    json_t *tj = json_loads(tr.body, 0, NULL);
    json_t *banned = json_object_get(tj, "tokens");
    CHECK(json_array_size(banned) >= 1);
    r = adjusted_resp(url, g, 30, json_pack("{s:i,s:[s],s:b}", "logprobs", 0, "bad_words", word ? word : "",
                                            "return_tokens_as_token_ids", 1));
    n = output_ids(r.body, ids, 64, &named);
    CHECK_EQ_INT(r.status, 200);
    CHECK(named && n == 30);
    const int nb = (int)json_array_size(banned);
    for (int i = 0; i + nb <= n; i++) {
        bool same = true;
        for (int j = 0; j < nb; j++) same &= ids[i + j] == json_integer_value(json_array_get(banned, (size_t)j));
        CHECK_MSG(!same, "the bad word '%s' comes at token %d", word, i);
    }
    if (nb == 1) CHECK(ids[0] != g0); /* llama.cpp's first token is the word: the output departs at once */
    free(r.body);
    json_decref(tj);
    json_decref(tq);
    free(tb);
    free(tr.body);
    json_decref(pj);
    free(pr.body);

    /* truncate_prompt_tokens K: what the prompt's last K ids give when sent alone */
    json_t *pids = json_object_get(g, "prompt_token_ids");
    const size_t np = json_array_size(pids), keep = np / 2;
    CHECK(np >= 2);
    json_t *lastk = json_array();
    for (size_t i = np - keep; i < np; i++) json_array_append(lastk, json_array_get(pids, i));
    adj_out c = adjusted(url, g, 10, json_pack("{s:i}", "truncate_prompt_tokens", (int)keep));
    json_t *g5p = json_pack("{s:o}", "prompt_token_ids", lastk);
    adj_out d = adjusted(url, g5p, 10, NULL);
    CHECK(c.status == 200 && c.text && d.text && !strcmp(c.text, d.text));
    json_decref(g5p);

    /* skip_special_tokens false: end of generation (ignored, the only token allowed) shows as its text */
    adj_out e = adjusted(url, g, 3, json_pack("{s:[i],s:b}", "allowed_token_ids", 2, "skip_special_tokens", 0));
    adj_out f = adjusted(url, g, 3, json_pack("{s:[i]}", "allowed_token_ids", 2));
    CHECK(e.text && !strcmp(e.text, "</s></s></s>") && f.text && !strcmp(f.text, ""));

    /* llama.cpp's names are the same knobs: repeat_penalty over the last 64 tokens, n_predict */
    adj_out h = adjusted(url, g, 20, json_pack("{s:f,s:i}", "repetition_penalty", 1.5, "repeat_last_n", 64));
    r = adjusted_resp(url, g, 0, json_pack("{s:f,s:i,s:n}", "repeat_penalty", 1.5, "n_predict", 20, "max_tokens"));
    char *rt = completion_text(&r);
    CHECK(h.text && rt && !strcmp(h.text, rt) && strcmp(h.text, plain.text) != 0);
    free(rt);
    free(r.body);

    /* refused, naming the field; the server keeps serving */
    adj_out k = adjusted(url, g, 4, json_pack("{s:f}", "tfs_z", 0.5));
    adj_out m = adjusted(url, g, 4, json_pack("{s:[]}", "allowed_token_ids"));
    adj_out ok = adjusted(url, g, 1, NULL);
    CHECK(k.status == 400 && m.status == 400 && ok.status == 200);
    adj_out *all[] = {&plain, &a, &b, &c, &d, &e, &f, &h, &k, &m, &ok};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]->text);
    json_decref(g);
}

TEST(serve_prefix_cache_hits) {
    const char *url = start_default();
    CHECK(url);
    const char *body = "{\"prompt\":\"Once upon a time, in a small town by the sea, there lived a kind old fisherman "
                       "who had a little boat and a big dog named Max. Every morning they went out together.\","
                       "\"max_tokens\":4,\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}}";
    double hits0 = metric(url, "shardlm_prefix_cache_hits_total", NULL);
    resp a = http(url, "/v1/completions", body, NULL);
    resp b = http(url, "/v1/completions", body, NULL);
    double hits1 = metric(url, "shardlm_prefix_cache_hits_total", NULL);
    const char *ca = strstr(a.body, "\"cached_tokens\":"), *cb = strstr(b.body, "\"cached_tokens\":");
    int cached_a = ca ? atoi(ca + 16) : -1, cached_b = cb ? atoi(cb + 16) : -1;
    printf("    TTFT first %.2f ms, repeated %.2f ms; cached prompt tokens %d then %d\n", a.t_first * 1e3,
           b.t_first * 1e3, cached_a, cached_b);
    free(a.body);
    free(b.body);
    CHECK_EQ_INT(cached_a, 0);
    CHECK_MSG(cached_b >= 32, "repeated prompt: %d cached tokens", cached_b);
    CHECK_MSG(hits1 - hits0 >= 2, "prefix cache hits went from %g to %g", hits0, hits1);
}

/* /metrics also under vLLM's names (model_name label) and llama.cpp's: the same figures as shardlm's; a request
 * moves them as it moves shardlm's; histograms count what shardlm's count; every sample line has a value. */
TEST(serve_metrics_vllm_and_llamacpp_names) {
    const char *url = start_default();
    CHECK(url);
    resp a = http(url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":8,\"temperature\":0}", NULL);
    CHECK_EQ_INT(a.status, 200);
    free(a.body);
    CHECK(wait_blocks_free(url, 10));
    static const struct {
        const char *ours, *theirs, *label;
    } same[] = {{"shardlm_prompt_tokens_total", "vllm:prompt_tokens_total", NULL},
                {"shardlm_generation_tokens_total", "vllm:generation_tokens_total", NULL},
                {"shardlm_prompt_tokens_total", "vllm:prefix_cache_queries_total", NULL},
                {"shardlm_prompt_tokens_cached_total", "vllm:prefix_cache_hits_total", NULL},
                {"shardlm_preemptions_total", "vllm:num_preemptions_total", NULL},
                {"shardlm_requests_running", "vllm:num_requests_running", NULL},
                {"shardlm_requests_waiting", "vllm:num_requests_waiting", NULL},
                {"shardlm_time_to_first_token_seconds_count", "vllm:time_to_first_token_seconds_count", NULL},
                {"shardlm_inter_token_latency_seconds_count", "vllm:inter_token_latency_seconds_count", NULL},
                {"shardlm_e2e_request_latency_seconds_count", "vllm:e2e_request_latency_seconds_count", NULL},
                {"shardlm_prompt_tokens_total", "llamacpp:prompt_tokens_total", NULL},
                {"shardlm_generation_tokens_total", "llamacpp:tokens_predicted_total", NULL},
                {"shardlm_requests_running", "llamacpp:requests_processing", NULL}};
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        const double x = metric(url, same[i].ours, NULL), y = metric(url, same[i].theirs, NULL);
        CHECK_MSG(x == y, "%s %g, %s %g", same[i].ours, x, same[i].theirs, y);
    }
    CHECK(metric(url, "vllm:generation_tokens_total", NULL) >= 8);
    CHECK(metric(url, "vllm:request_success_total", "finished_reason=\"length\"") ==
          metric(url, "shardlm_requests_finished_total", "reason=\"length\""));
    const double usage = metric(url, "vllm:kv_cache_usage_perc", NULL);
    CHECK(usage == 0 && metric(url, "llamacpp:kv_cache_usage_ratio", NULL) == 0); /* (every block free again) */
    resp m = http(url, "/metrics", NULL, NULL);
    CHECK(strstr(m.body, "vllm:num_requests_waiting{model_name=\"stories260K\"} 0\n") != NULL);
    int bad = 0;
    for (char *line = strtok(m.body, "\n"); line; line = strtok(NULL, "\n")) { /* name{labels} value */
        if (line[0] == '#') continue;
        const char *sp = strrchr(line, ' ');
        char *end = NULL;
        if (!sp || (strtod(sp + 1, &end), *end != '\0')) bad++;
    }
    CHECK_EQ_INT(bad, 0);
    free(m.body);
}

/* The server's request defaults (llama.cpp's --temp, --top-k, -n, --seed; vLLM's --override-generation-config and
 * --default-chat-template-kwargs): a request that gives none gets them — greedy and 7 tokens here, the same text as
 * the default server's request that asks for that —; a request's own fields win; the template variables reach
 * the template under a request's own; other servers' names of flags. */
TEST(serve_request_defaults) {
    const char *url = start_default();
    CHECK(url);
    char tpl[] = "/tmp/shardlm-tpl-XXXXXX";
    CHECK(sl_test_temp_file(tpl, "{% for m in messages %}{{ m.content }}{% endfor %}{{ greeting }}"
                                 "{% if reasoning_effort is defined %} {{ reasoning_effort }}{% endif %}"));
    sl_test_proc p;
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--kv-type", "f32", "--temp", "0", "-n", "7", "--seed", "3",
                    "--override-generation-config", "{\"top_k\":1,\"max_new_tokens\":99}", "--chat-template", tpl,
                    "--default-chat-template-kwargs", "{\"greeting\":\" Hello\",\"reasoning_effort\":\"high\"}", "--alias", "tiny,claude-x", "--max-model-len", "256",
                    NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    resp a = http(p.url, "/v1/completions", "{\"prompt\":\"Once upon a time\"}", NULL),
         b = http(url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"temperature\":0,\"max_tokens\":7}", NULL);
    char *ta = completion_text(&a), *tb = completion_text(&b);
    CHECK_MSG(ta && tb && !strcmp(ta, tb) && usage_field(&a, "completion_tokens", NULL) == 7 && strstr(a.body, "\"model\":\"tiny\""),
              "%s\n      want %s", a.body, b.body);
    free(ta);
    free(tb);
    free(a.body);
    free(b.body);
    /* the request's own: max_tokens, and a sampled answer (temperature, seed) as the default server gives it */
    static const char own[] = "{\"prompt\":\"Once upon a time\",\"temperature\":1.0,\"top_k\":0,\"seed\":11,\"max_tokens\":20}";
    a = http(p.url, "/v1/completions", own, NULL);
    b = http(url, "/v1/completions", own, NULL);
    ta = completion_text(&a);
    tb = completion_text(&b);
    CHECK_MSG(ta && tb && !strcmp(ta, tb) && usage_field(&a, "completion_tokens", NULL) == 20, "%s\n      want %s", a.body, b.body);
    free(ta);
    free(tb);
    free(a.body);
    free(b.body);
    /* llama.cpp's /completion: the server's defaults before llama.cpp's own (its temperature 0.8 would sample) */
    a = http(p.url, "/completion", "{\"prompt\":\"Once upon a time\"}", NULL);
    b = http(url, "/completion", "{\"prompt\":\"Once upon a time\",\"temperature\":0,\"n_predict\":7}", NULL);
    json_t *ja = json_loads(a.body, 0, NULL), *jb = json_loads(b.body, 0, NULL);
    CHECK_MSG(json_is_string(json_object_get(ja, "content")) && json_equal(json_object_get(ja, "content"), json_object_get(jb, "content")),
              "%s\n      want %s", a.body, b.body);
    json_decref(ja);
    json_decref(jb);
    free(a.body);
    free(b.body);
    resp m = http(p.url, "/v1/models", NULL, NULL); /* (--max-model-len: the context; each served name a model) */
    json_t *mo = json_loads(m.body, 0, NULL), *md = json_object_get(mo, "data");
    CHECK_MSG(strstr(m.body, "\"max_model_len\":256") && json_array_size(md) == 2 &&
                  !strcmp(json_string_value(json_object_get(json_array_get(md, 1), "id")) ?: "", "claude-x"),
              "%s", m.body);
    json_decref(mo);
    free(m.body);
    /* several served names (vLLM's): any is answered, the first named in the answer; another is a 404 */
    m = http(p.url, "/v1/completions", "{\"model\":\"claude-x\",\"prompt\":\"Hi\",\"max_tokens\":2}", NULL);
    CHECK_MSG(m.status == 200 && strstr(m.body, "\"model\":\"tiny\""), "%ld %s", m.status, m.body);
    free(m.body);
    m = http(p.url, "/v1/models/claude-x", NULL, NULL);
    CHECK_MSG(m.status == 200 && strstr(m.body, "\"id\":\"claude-x\""), "%ld %s", m.status, m.body);
    free(m.body);
    m = http(p.url, "/v1/completions", "{\"model\":\"claude\",\"prompt\":\"Hi\",\"max_tokens\":2}", NULL);
    CHECK_EQ_INT(m.status, 404);
    free(m.body);
    /* the template's variables: the server's, or the request's own (its reasoning_effort field too) */
    static const char *const kw[][2] = {{"", "Hi Hello high"},
                                        {",\"chat_template_kwargs\":{\"greeting\":\" Bye\"}", "Hi Bye high"},
                                        {",\"reasoning_effort\":\"low\"", "Hi Hello low"}};
    for (int k = 0; k < 3; k++) {
        char body[256];
        snprintf(body, sizeof body, "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]%s}", kw[k][0]);
        resp t = http(p.url, "/apply-template", body, NULL);
        json_t *o = json_loads(t.body, 0, NULL);
        CHECK_MSG(!strcmp(json_string_value(json_object_get(o, "prompt")) ?: "", kw[k][1]), "%s", t.body);
        json_decref(o);
        free(t.body);
    }
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
    unlink(tpl);
    static const char *const bad[][3] = {{"--override-generation-config", "{\"foo\":1}", "'foo'"},
                                         {"--override-generation-config", "{\"temperature\":-3}", "temperature"},
                                         {"--chat-template-kwargs", "{\"messages\":1}", "'messages'"},
                                         {"--top-p", "2", "--top-p"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv[] = {(char *)sl_test_bin(), "serve", "-m", MODEL, "--port", "0", (char *)bad[i][0], (char *)bad[i][1], NULL};
        char *out = NULL, *err = NULL;
        const int rc = sl_test_run(argv, &out, &err, 30);
        CHECK_MSG(rc != 0 && err && strstr(err, bad[i][2]), "%s %s: rc %d, %s", bad[i][0], bad[i][1], rc, err ? err : "");
        free(out);
        free(err);
    }
}

/* OpenAI's Predicted Outputs: with a prediction the answer is the same (greedy, and sampled with a seed; whole and
 * streamed; on chat too) — the prediction only makes speculation propose from it —, and usage counts the proposed
 * tokens kept and not: most of a prediction that is the answer itself are kept; a bad prediction is a 400. */
TEST(serve_predicted_outputs) {
    const char *url = start_default();
    CHECK(url);
    static const char *const bases[] = {"\"prompt\":\"Once upon a time\",\"max_tokens\":60,\"temperature\":0",
                                        "\"prompt\":\"Once upon a time\",\"max_tokens\":60,\"temperature\":0.8,\"seed\":3",
                                        "\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"max_tokens\":60,"
                                        "\"temperature\":0"};
    for (size_t k = 0; k < sizeof bases / sizeof bases[0]; k++) {
        const bool chat = k == 2;
        const char *path = chat ? "/v1/chat/completions" : "/v1/completions";
        char body[1024];
        snprintf(body, sizeof body, "{%s}", bases[k]);
        resp r = http(url, path, body, NULL);
        char *want = completion_text(&r);
        free(r.body);
        CHECK(want && strlen(want) > 40);
        json_t *pred = json_string(k == 1 ? "Lily and her mom went to the park to play." : want);
        char *pj = json_dumps(pred, JSON_ENCODE_ANY);
        for (int stream = 0; stream < 2; stream++) {
            snprintf(body, sizeof body, "{%s,\"prediction\":{\"type\":\"content\",\"content\":%s}%s}", bases[k], pj,
                     stream ? ",\"stream\":true,\"stream_options\":{\"include_usage\":true}" : "");
            r = http(url, path, body, NULL);
            CHECK_EQ_INT(r.status, 200);
            const char *u = strstr(r.body, "\"accepted_prediction_tokens\":");
            const long accepted = u ? atol(u + 29) : -1;
            answer a = read_answer(&r, stream, 1);
            const char *got = json_string_value(json_array_get(a.texts, 0));
            CHECK_MSG(got && !strcmp(got, want), "case %zu stream %d: '%s' against '%s'", k, stream, got ? got : "", want);
            CHECK_MSG(accepted >= 0 && (k == 1 || accepted >= 30), "case %zu stream %d: %ld accepted", k, stream, accepted);
            answer_free(&a);
        }
        free(pj);
        json_decref(pred);
        free(want);
    }
    resp r = http(url, "/v1/completions", "{\"prompt\":\"x\",\"prediction\":{\"type\":\"text\",\"content\":\"y\"}}", NULL);
    CHECK_MSG(r.status == 400 && strstr(r.body, "\"param\":\"prediction\""), "%ld %s", r.status, r.body);
    free(r.body);
}

/* The process collector's metrics (what every Prometheus client library exports): the resident memory within 25%
 * of the kernel's VmRSS for the server's pid, a start time between the test run's start and now, open descriptors
 * within a few of /proc's count, the descriptor limit this process passed on, CPU seconds that grow with work. */
TEST(serve_process_metrics) {
    const char *url = start_default();
    CHECK(url);
    const double m0 = metric(url, "process_cpu_seconds_total", NULL);
    free(http(url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":200,\"temperature\":0}", NULL).body);
    const double cpu = metric(url, "process_cpu_seconds_total", NULL), rss = metric(url, "process_resident_memory_bytes", NULL),
                 start = metric(url, "process_start_time_seconds", NULL), fds = metric(url, "process_open_fds", NULL),
                 max_fds = metric(url, "process_max_fds", NULL), vm = metric(url, "process_virtual_memory_bytes", NULL);
    const double vmrss = sl_test_vmrss((int)server.pid);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)server.pid);
    DIR *d = opendir(path);
    int n_fd = 0;
    for (const struct dirent *e; d && (e = readdir(d));) n_fd += e->d_name[0] != '.';
    if (d) closedir(d);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    const double now = (double)time(NULL);
    CHECK_MSG(vmrss > 0 && fabs(rss - vmrss) <= 0.25 * vmrss, "resident %.0f, VmRSS %.0f", rss, vmrss);
    CHECK_MSG(vm >= rss, "virtual %.0f below resident %.0f", vm, rss);
    CHECK_MSG(start <= now + 1 && start >= now - 3600, "start %.2f, now %.0f", start, now);
    CHECK_MSG(fds >= 3 && fabs(fds - n_fd) <= 4, "open fds %.0f, /proc has %d", fds, n_fd);
    CHECK_MSG(max_fds == (double)rl.rlim_cur, "max fds %.0f, the limit passed on %llu", max_fds, (unsigned long long)rl.rlim_cur);
    CHECK_MSG(cpu >= m0 && cpu > 0, "cpu seconds %.2f after %.2f", cpu, m0); /* (counted in clock ticks: may not move) */
}

/* vLLM's POST /reset_prefix_cache: a prompt cached before is computed again after it (no cached tokens, the same
 * text), /metrics shows no cached block, and the prompt is cached again after that; GET is a 405. */
TEST(serve_reset_prefix_cache) {
    const char *url = start_default();
    CHECK(url);
    static const char body[] = "{\"prompt\":\"The old owl sat in the tall tree and told the young birds about the "
                               "winter when the river froze and the fox came to the meadow.\",\"max_tokens\":6,\"temperature\":0}";
    long long cached[3];
    char *texts[3];
    for (int i = 0; i < 3; i++) {
        if (i == 0) free(http(url, "/v1/completions", body, NULL).body); /* (cached now, whatever came before) */
        if (i == 1) {
            resp rr = http(url, "/reset_prefix_cache", "", NULL);
            CHECK_MSG(rr.status == 200 && strstr(rr.body, "\"cached_blocks_freed\":"), "%ld %s", rr.status, rr.body);
            free(rr.body);
            CHECK(wait_blocks_free(url, 10));
            CHECK_EQ_INT((int)metric(url, "shardlm_kv_blocks", "state=\"cached\""), 0);
        }
        resp r = http(url, "/v1/completions", body, NULL);
        cached[i] = usage_field(&r, "prompt_tokens_details", "cached_tokens");
        texts[i] = completion_text(&r);
        free(r.body);
    }
    CHECK_MSG(cached[0] >= 32 && cached[1] == 0 && cached[2] >= 32, "cached tokens: %lld before, %lld after the reset, "
              "%lld again", cached[0], cached[1], cached[2]);
    for (int i = 1; i < 3; i++) CHECK(texts[0] && texts[i] && !strcmp(texts[0], texts[i]));
    for (int i = 0; i < 3; i++) free(texts[i]);
    resp g = http(url, "/reset_prefix_cache", NULL, NULL);
    CHECK_EQ_INT(g.status, 405);
    free(g.body);
}

/* One sequence at a time (llama.cpp's -np 1): a request of the whole context is served, in either pool (the KV
 * pool used to be capped to two contexts in all, the short class's 30% of it too small for one). */
TEST(serve_one_sequence_full_context) {
    sl_test_proc p;
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--max-num-seqs", "1", NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    resp r = http(p.url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":500,\"temperature\":0,"
                                            "\"ignore_eos\":true}", NULL);
    CHECK_MSG(r.status == 200 && usage_field(&r, "completion_tokens", NULL) == 500, "%ld %.300s", r.status, r.body);
    free(r.body);
    sl_test_proc_stop(&p, SIGTERM, 10);
}

/* A random model written by `shardlm mkmodel -o path FLAGS...` (path: a "/tmp/name-XXXXXX" template, rewritten);
 * false with mkmodel's stderr in *why (malloc'd) when it failed. */
static bool mk_model(char *path, const char *const *flags, char **why) {
    *why = NULL;
    if (!sl_test_temp_file(path, NULL)) return false;
    char *argv[40] = {(char *)sl_test_bin(), "mkmodel", "-o", path};
    int n = 4;
    for (int i = 0; flags[i] && n < 39; i++) argv[n++] = (char *)flags[i];
    argv[n] = NULL;
    char *out = NULL;
    const bool ok = sl_test_run(argv, &out, why, 60) == 0;
    free(out);
    if (ok) {
        free(*why);
        *why = NULL;
    }
    return ok;
}

/* vLLM's --scheduling-policy priority: with one sequence at a time, requests waiting together run in the order
 * of their priority (lower first), whatever order they came in. (The server is stopped while they arrive, so
 * they all wait behind the one running.) */
TEST(serve_priority_scheduling) {
    /* a model slow enough that the first request still runs when the others have come */
    char model[] = "/tmp/shardlm-prio-XXXXXX", *why;
    static const char *const shape[] = {"--dim", "512", "--layers", "8", "--heads", "8", "--ffn", "1536", "--vocab", "512",
                                        "--ctx", "1024", "--type", "Q8_0", NULL};
    CHECK_MSG(mk_model(model, shape, &why), "mkmodel: %s", why);
    sl_test_proc p;
    char *args[] = {"serve", "-m", model, "--port", "0", "-t", "1", "--scheduling-policy", "priority",
                    "--max-num-seqs", "1", "--kv-pools", "all:100%:lru", NULL};
    const bool up = sl_test_proc_start(&p, args, 20) == 0;
    unlink(model);
    CHECK(up);
    CURLM *m = curl_multi_init();
    enum { N = 5 };
    static const int prio[N] = {0, 5, -3, 0, 2}; /* [0]: the long one running first */
    static const int want_order[N - 1] = {2, 3, 4, 1};
    resp rs[N];
    struct curl_slist *hl[N];
    CURL *h[N];
    memset(rs, 0, sizeof rs);
    char bodies[N][256]; /* (libcurl reads them when it sends) */
    for (int i = 0; i < N; i++) {
        char *b = bodies[i];
        snprintf(b, sizeof bodies[i], "{\"prompt\":[1,2,3],\"max_tokens\":%d,\"temperature\":0,\"ignore_eos\":true,"
                              "\"priority\":%d%s}", i == 0 ? 300 : 8, prio[i], i == 0 ? ",\"stream\":true" : "");
        h[i] = make_easy(p.url, "/v1/completions", b, NULL, &rs[i], &hl[i]);
        curl_easy_setopt(h[i], CURLOPT_PRIVATE, (char *)NULL + i);
    }
    curl_multi_add_handle(m, h[0]);
    int running = 1;
    for (double t0 = now_s(); rs[0].n == 0 && now_s() - t0 < 20;) { /* the long one has begun */
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 5, NULL);
    }
    CHECK(rs[0].n > 0);
    kill(p.pid, SIGSTOP);
    for (int i = 1; i < N; i++) curl_multi_add_handle(m, h[i]);
    for (double t0 = now_s(); now_s() - t0 < 0.3;) { /* sent: they wait in the stopped server's sockets */
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 20, NULL);
    }
    kill(p.pid, SIGCONT);
    int order[N], n_done = 0;
    for (double t0 = now_s(); running && now_s() - t0 < 60;) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)))
            if (msg->msg == CURLMSG_DONE && n_done < N) {
                char *pv = NULL;
                curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &pv);
                order[n_done++] = (int)(pv - (char *)NULL);
            }
        if (running) curl_multi_poll(m, NULL, 0, 20, NULL);
    }
    CHECK_EQ_INT(n_done, N);
    CHECK_EQ_INT(order[0], 0);
    for (int i = 0; i + 1 < N && n_done == N; i++)
        CHECK_MSG(order[i + 1] == want_order[i], "finished in the order %d %d %d %d (priorities 5, -3, 0, 2 of 1..4)",
                  order[1], order[2], order[3], order[4]);
    for (int i = 0; i < N; i++) {
        long st = 0;
        curl_easy_getinfo(h[i], CURLINFO_RESPONSE_CODE, &st);
        CHECK_EQ_INT(st, 200);
        curl_multi_remove_handle(m, h[i]);
        curl_easy_cleanup(h[i]);
        curl_slist_free_all(hl[i]);
        free(rs[i].body);
    }
    curl_multi_cleanup(m);
    /* out of int32's range: refused by name */
    resp r = http(p.url, "/v1/completions", "{\"prompt\":[1],\"max_tokens\":2,\"priority\":3000000000}", NULL);
    CHECK_MSG(r.status == 400 && strstr(r.body, "\"param\":\"priority\""), "%s", r.body);
    free(r.body);
    sl_test_proc_stop(&p, SIGTERM, 10);
}

/* vLLM's request phase and size histograms (what its Grafana dashboard plots): one request alone adds its
 * prompt and generated tokens and its max_tokens to their sums, its computed tokens to the steps' (every prompt
 * token not cached, then one a step but the last), one to each phase's count, and its phases add up. */
TEST(serve_vllm_phase_metrics) {
    const char *url = start_default();
    CHECK(url);
    static const char *const names[] = {"vllm:request_prompt_tokens", "vllm:request_generation_tokens",
                                        "vllm:request_params_max_tokens", "vllm:iteration_tokens_total",
                                        "vllm:request_queue_time_seconds", "vllm:request_prefill_time_seconds",
                                        "vllm:request_decode_time_seconds", "vllm:request_inference_time_seconds",
                                        "vllm:e2e_request_latency_seconds"};
    enum { NM = sizeof names / sizeof names[0] };
    double sum0[NM], cnt0[NM], sum1[NM], cnt1[NM];
    char key[96];
    for (int i = 0; i < NM; i++) {
        snprintf(key, sizeof key, "%s_sum", names[i]);
        sum0[i] = metric(url, key, NULL);
        snprintf(key, sizeof key, "%s_count", names[i]);
        cnt0[i] = metric(url, key, NULL);
    }
    char body[256];
    snprintf(body, sizeof body, "{\"prompt\":\"A lonely heron %lld stood in the cold marsh\",\"max_tokens\":9,"
                                "\"temperature\":0,\"ignore_eos\":true}", (long long)(now_s() * 1e6));
    resp r = http(url, "/v1/completions", body, NULL);
    const long long P = usage_field(&r, "prompt_tokens", NULL), G = usage_field(&r, "completion_tokens", NULL),
                    C = usage_field(&r, "prompt_tokens_details", "cached_tokens");
    CHECK_MSG(r.status == 200 && G == 9 && P > 0 && C >= 0, "%ld %s", r.status, r.body);
    free(r.body);
    for (int i = 0; i < NM; i++) {
        snprintf(key, sizeof key, "%s_sum", names[i]);
        sum1[i] = metric(url, key, NULL) - sum0[i];
        snprintf(key, sizeof key, "%s_count", names[i]);
        cnt1[i] = metric(url, key, NULL) - cnt0[i];
    }
    CHECK_MSG(sum1[0] == P && sum1[1] == G && sum1[2] == 9 && sum1[3] == P - C + G - 1,
              "sums: prompt %g (want %lld), generated %g (%lld), max_tokens %g (9), step tokens %g (%lld)", sum1[0], P,
              sum1[1], G, sum1[2], sum1[3], P - C + G - 1);
    for (int i = 0; i < NM; i++)
        if (i != 3) CHECK_MSG(cnt1[i] == 1, "%s: %g more observations, want 1", names[i], cnt1[i]);
    CHECK_MSG(cnt1[3] == G, "steps: %g, want %lld (the prompt in one, then one a token but the last)", cnt1[3], G);
    CHECK_MSG(fabs(sum1[5] + sum1[6] - sum1[7]) < 3e-6 && sum1[4] + sum1[7] <= sum1[8] + 3e-6 && sum1[6] > 0,
              "phases: queue %g + inference %g <= e2e %g; prefill %g + decode %g = inference", sum1[4], sum1[7], sum1[8],
              sum1[5], sum1[6]);
}

/* vLLM's request fields: cache_salt keeps a tenant's prefix-cache blocks to itself (the same salt hits, another or
 * none does not, the text is the same); request_id names the answer; priority must be 0 (first come, first
 * served); return_token_ids gives the prompt's and the output's ids, streamed ids joining to the whole answer's. */
TEST(serve_vllm_request_fields) {
    const char *url = start_default();
    CHECK(url);
    static const char prompt[] = "\"prompt\":\"The cat sat by the window and watched the rain fall on the garden, where "
                                 "the little dog was digging a hole to hide his bone from the birds.\"";
    char body[1024];
    long long cached[4];
    char *texts[4];
    static const char *const salts[] = {",\"cache_salt\":\"tenant-a\"", ",\"cache_salt\":\"tenant-a\"",
                                        ",\"cache_salt\":\"tenant-b\"", ""};
    for (int i = 0; i < 4; i++) {
        snprintf(body, sizeof body, "{%s,\"max_tokens\":6,\"temperature\":0%s}", prompt, salts[i]);
        resp r = http(url, "/v1/completions", body, NULL);
        cached[i] = usage_field(&r, "prompt_tokens_details", "cached_tokens");
        texts[i] = completion_text(&r);
        free(r.body);
    }
    CHECK_MSG(cached[0] == 0 && cached[1] >= 32 && cached[2] == 0 && cached[3] == 0,
              "cached tokens: %lld (a), %lld (a again), %lld (b), %lld (none)", cached[0], cached[1], cached[2], cached[3]);
    for (int i = 1; i < 4; i++) CHECK(texts[0] && texts[i] && !strcmp(texts[0], texts[i]));
    for (int i = 0; i < 4; i++) free(texts[i]);
    resp r = http(url, "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":2,\"request_id\":\"req-42\"}", NULL);
    CHECK_MSG(r.status == 200 && strstr(r.body, "\"id\":\"cmpl-req-42\""), "%s", r.body);
    free(r.body);
    r = http(url, "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":2,\"priority\":3}", NULL);
    CHECK_MSG(r.status == 400 && strstr(r.body, "\"param\":\"priority\""), "%s", r.body);
    free(r.body);
    r = http(url, "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":2,\"cache_salt\":\"\"}", NULL);
    CHECK_MSG(r.status == 400 && strstr(r.body, "\"param\":\"cache_salt\""), "%s", r.body);
    free(r.body);
    /* return_token_ids: whole and streamed */
    resp tk = http(url, "/tokenize", "{\"prompt\":\"Once upon a time\"}", NULL);
    json_t *tko = json_loads(tk.body, 0, NULL);
    free(tk.body);
    r = http(url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0,\"return_token_ids\":true}",
             NULL);
    json_t *o = json_loads(r.body, 0, NULL), *c0 = json_array_get(json_object_get(o, "choices"), 0);
    json_t *ids = json_object_get(c0, "token_ids");
    CHECK_MSG(json_array_size(ids) == 12 && json_equal(json_object_get(c0, "prompt_token_ids"), json_object_get(tko, "tokens")),
              "%s", r.body);
    free(r.body);
    r = http(url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0,\"return_token_ids\":true,"
                                     "\"stream\":true}", NULL);
    json_t *joined = json_array(), *sprompt = NULL;
    for (const char *q = strstr(r.body, "data: {"); q; q = strstr(q + 6, "data: {")) {
        json_t *ev = json_loads(q + 6, JSON_DISABLE_EOF_CHECK, NULL), *ch = json_array_get(json_object_get(ev, "choices"), 0);
        json_array_extend(joined, json_object_get(ch, "token_ids"));
        if (!sprompt && json_object_get(ch, "prompt_token_ids")) sprompt = json_incref(json_object_get(ch, "prompt_token_ids"));
        json_decref(ev);
    }
    CHECK_MSG(json_equal(joined, ids) && json_equal(sprompt, json_object_get(tko, "tokens")), "%s", r.body);
    free(r.body);
    /* stream_options.continuous_usage_stats: every chunk's usage, the output so far (never less than before) */
    r = http(url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0,\"stream\":true,"
                                     "\"stream_options\":{\"continuous_usage_stats\":true}}", NULL);
    long long last = -1;
    int chunks = 0;
    bool monotone = true;
    for (const char *q = strstr(r.body, "data: {"); q; q = strstr(q + 6, "data: {")) {
        json_t *ev = json_loads(q + 6, JSON_DISABLE_EOF_CHECK, NULL), *u = json_object_get(ev, "usage");
        const long long ct = json_integer_value(json_object_get(u, "completion_tokens"));
        monotone &= json_is_object(u) && ct >= last && json_integer_value(json_object_get(u, "prompt_tokens")) > 0;
        last = ct;
        chunks++;
        json_decref(ev);
    }
    CHECK_MSG(chunks > 1 && monotone && last == 12, "%s", r.body);
    free(r.body);
    r = http(url, "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":3,"
                                          "\"return_token_ids\":true}", NULL);
    json_t *co = json_loads(r.body, 0, NULL);
    CHECK_MSG(json_array_size(json_object_get(co, "prompt_token_ids")) == (size_t)usage_field(&r, "prompt_tokens", NULL) &&
                  json_array_size(json_object_get(json_array_get(json_object_get(co, "choices"), 0), "token_ids")) == 3,
              "%s", r.body);
    free(r.body);
    json_decref(co);
    json_decref(joined);
    json_decref(sprompt);
    json_decref(o);
    json_decref(tko);
}

/* vLLM's documents reach the chat template: IBM Granite 3.3's (a RAG template) writes its grounding instruction and
 * each document into the prompt; bad documents are a 400 naming the field. */
TEST(serve_chat_documents) {
    const char *tpl = "../shared/golden/chat-templates/ibm-granite-granite-3.3-2B-Instruct.jinja";
    if (access(tpl, R_OK) != 0) return;
    sl_test_proc p;
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--chat-template", (char *)tpl, NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    static const char with[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"Where did Lily go?\"}],\"documents\":["
                               "{\"doc_id\":\"1\",\"title\":\"Lily\",\"text\":\"Lily went to the park with Ben.\"}]}";
    resp a = http(p.url, "/apply-template", with, NULL),
         b = http(p.url, "/apply-template", "{\"messages\":[{\"role\":\"user\",\"content\":\"Where did Lily go?\"}]}", NULL);
    CHECK_MSG(a.status == 200 && strstr(a.body, "Lily went to the park with Ben.") &&
                  strstr(a.body, "strictly aligning with the facts in the provided documents") &&
                  !strstr(b.body, "provided documents"),
              "%s\n      %s", a.body, b.body);
    resp c = http(p.url, "/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Where did Lily go?\"}],"
                                                 "\"documents\":[{\"text\":\"Lily went to the park.\"}],\"max_tokens\":4}", NULL),
         d = http(p.url, "/v1/chat/completions",
                  "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"documents\":[{\"text\":5}]}", NULL);
    CHECK_MSG(c.status == 200 && d.status == 400 && strstr(d.body, "\"param\":\"documents\""), "%s / %s", c.body, d.body);
    free(a.body);
    free(b.body);
    free(c.body);
    free(d.body);
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
}

/* llama.cpp's n_predict 0 (llama.vim warms the cache with such requests): the prompt is computed and nothing
 * generated — an empty answer, stop_type limit — and a request with that prompt then finds it in the prefix
 * cache; the OpenAI field stays at least 1. */
TEST(serve_llamacpp_n_predict_zero) {
    const char *url = start_default();
    CHECK(url);
    static const char warm[] = "{\"prompt\":\"Once upon a time, there was a little girl named Lily who loved to play in the "
                               "park with her big red ball and her friend Ben.\",\"n_predict\":0}";
    resp w = http(url, "/completion", warm, NULL);
    json_t *wo = json_loads(w.body, 0, NULL);
    CHECK_MSG(w.status == 200 && !strcmp(json_string_value(json_object_get(wo, "content")) ?: "-", "") &&
                  json_integer_value(json_object_get(wo, "tokens_predicted")) == 0 &&
                  !strcmp(json_string_value(json_object_get(wo, "stop_type")) ?: "", "limit") &&
                  json_integer_value(json_object_get(wo, "tokens_evaluated")) > 32,
              "%ld %s", w.status, w.body);
    resp g = http(url, "/completion", "{\"prompt\":\"Once upon a time, there was a little girl named Lily who loved to play "
                                      "in the park with her big red ball and her friend Ben.\",\"n_predict\":4,\"temperature\":0}",
                  NULL);
    json_t *go = json_loads(g.body, 0, NULL);
    CHECK_MSG(g.status == 200 && json_integer_value(json_object_get(go, "tokens_cached")) >= 32 &&
                  json_integer_value(json_object_get(go, "tokens_predicted")) == 4,
              "%s", g.body);
    resp o = http(url, "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":0}", NULL);
    CHECK_MSG(o.status == 400 && strstr(o.body, "\"param\":\"max_tokens\""), "%ld %s", o.status, o.body);
    CHECK(wait_blocks_free(url, 10));
    json_decref(wo);
    json_decref(go);
    free(w.body);
    free(g.body);
    free(o.body);
}

/* Anthropic's document and search_result blocks are read as text — title, context, then the text — so the input
 * counts and the greedy answer are those of the same text given as a text block; a PDF's base64 source is a
 * 400 in Anthropic's form. */
TEST(serve_anthropic_documents) {
    const char *url = start_default();
    CHECK(url);
    static const char *const as_doc[] = {
        "{\"model\":\"stories260K\",\"max_tokens\":12,\"temperature\":0,\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"document\",\"title\":\"Lily\",\"context\":\"A story.\",\"source\":{\"type\":\"text\","
        "\"media_type\":\"text/plain\",\"data\":\"Lily went to the park.\"}},{\"type\":\"text\",\"text\":\"What next?\"}]}]}",
        "{\"model\":\"stories260K\",\"max_tokens\":12,\"temperature\":0,\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"document\",\"title\":\"Lily\",\"context\":\"A story.\",\"source\":{\"type\":\"content\","
        "\"content\":[{\"type\":\"text\",\"text\":\"Lily went to the park.\"}]}},{\"type\":\"text\",\"text\":\"What next?\"}]}]}",
        "{\"model\":\"stories260K\",\"max_tokens\":12,\"temperature\":0,\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"search_result\",\"source\":\"https://example.com\",\"title\":\"Lily\",\"context\":\"A story.\","
        "\"content\":[{\"type\":\"text\",\"text\":\"Lily went to the park.\"}]},{\"type\":\"text\",\"text\":\"What next?\"}]}]}"};
    static const char as_text[] =
        "{\"model\":\"stories260K\",\"max_tokens\":12,\"temperature\":0,\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"Lily\\n\\nA story.\\n\\nLily went to the park.\"},{\"type\":\"text\",\"text\":\"What next?\"}]}]}";
    resp t = http(url, "/v1/messages", as_text, NULL), tc = http(url, "/v1/messages/count_tokens", as_text, NULL);
    json_t *to = json_loads(t.body, 0, NULL);
    CHECK_EQ_INT(t.status, 200);
    for (size_t k = 0; k < sizeof as_doc / sizeof as_doc[0]; k++) {
        resp d = http(url, "/v1/messages", as_doc[k], NULL), dc = http(url, "/v1/messages/count_tokens", as_doc[k], NULL);
        json_t *dobj = json_loads(d.body, 0, NULL);
        CHECK_MSG(d.status == 200 && json_equal(json_object_get(dobj, "content"), json_object_get(to, "content")) &&
                      !strcmp(dc.body, tc.body),
                  "%zu: %s\n      %s / %s %s", k, d.body, t.body, dc.body, tc.body);
        json_decref(dobj);
        free(d.body);
        free(dc.body);
    }
    resp pdf = http(url, "/v1/messages",
                    "{\"model\":\"stories260K\",\"max_tokens\":4,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                    "\"document\",\"source\":{\"type\":\"base64\",\"media_type\":\"application/pdf\",\"data\":\"JVBE\"}}]}]}",
                    NULL);
    CHECK_MSG(pdf.status == 400 && strstr(pdf.body, "\"type\":\"error\"") && strstr(pdf.body, "source type 'base64'"), "%ld %s",
              pdf.status, pdf.body);
    free(pdf.body);
    json_decref(to);
    free(t.body);
    free(tc.body);
}

static char *token_prompt_body(int first, int n, int max_tokens) {
    json_t *arr = json_array();
    json_array_append_new(arr, json_integer(1));
    for (int i = 1; i < n; i++) json_array_append_new(arr, json_integer(3 + (first * 131 + i * 7) % 500));
    json_t *o = json_pack("{s:o,s:i,s:f,s:b,s:s}", "prompt", arr, "max_tokens", max_tokens, "temperature", 0.0,
                          "ignore_eos", 1, "user", "pool-test");
    char *b = json_dumps(o, 0);
    json_decref(o);
    return b;
}

/* Pool isolation: a burst of long prompts that overflows the long pool does
 * not evict a short conversation's cached prefix — but with one shared pool
 * it does (the control, showing the burst is big enough). */
static int short_hit_after_burst(const char *pools) {
    sl_test_proc p;
    char *args[] = {"serve",    "-m", MODEL,         "--port",       "0", "-t", "1", "--kv-type", "f32",
                    "--kv-mem", "2",  "--kv-pools", (char *)pools, NULL};
    if (sl_test_proc_start(&p, args, 20) != 0) return -1;
    char *shortb = token_prompt_body(999, 60, 8); /* context 68: the short class */
    resp r = http(p.url, "/v1/completions", shortb, NULL);
    free(r.body);
    for (int i = 0; i < 10; i++) { /* 10 distinct long prompts: 10 x 14 blocks > the long pool */
        char *lb = token_prompt_body(i, 200, 24);
        r = http(p.url, "/v1/completions", lb, NULL);
        free(r.body);
        free(lb);
    }
    r = http(p.url, "/v1/completions", shortb, NULL);
    long long cached = usage_field(&r, "prompt_tokens_details", "cached_tokens");
    free(r.body);
    free(shortb);
    sl_test_proc_stop(&p, SIGTERM, 10);
    return (int)cached;
}

TEST(serve_pools_isolate_eviction) {
    int with_pools = short_hit_after_burst("short:<=160:40%:fifo,long:60%:lru");
    int one_pool = short_hit_after_burst("all:100%:lru");
    printf("    short prompt's cached tokens after the burst: %d with pools, %d with one pool\n", with_pools, one_pool);
    CHECK_MSG(with_pools >= 48, "with pools: %d cached tokens", with_pools);
    CHECK_MSG(one_pool == 0, "one pool: %d cached tokens (the burst did not evict: test too weak)", one_pool);
}

/* With too few KV blocks for everyone, sequences are preempted and
 * recomputed — and still produce exactly what they produce alone. */
TEST(serve_preemption_keeps_outputs) {
    sl_test_proc p;
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--kv-type", "f32", "--kv-mem", "1", "--kv-pools",
                    "all:100%:lru", "--max-num-batched-tokens", "64", NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    double pre0 = metric(p.url, "shardlm_preemptions_total", NULL);
    int same = alone_vs_together(p.url, 4, body_greedy300);
    double pre1 = metric(p.url, "shardlm_preemptions_total", NULL);
    bool freed = wait_blocks_free(p.url, 10);
    int rc = sl_test_proc_stop(&p, SIGTERM, 10);
    printf("    preemptions: %g\n", pre1 - pre0);
    CHECK_MSG(pre1 - pre0 >= 1, "no preemption happened (test too weak)");
    CHECK_EQ_INT(same, 4);
    CHECK(freed);
    CHECK_EQ_INT(rc, 0);
}

/* Quantized KV caches: requests still give the same output batched as alone. */
TEST(serve_kv_types) {
    /* q8_0 needs heads of a multiple of 32 values: the small Llama (head size 32) */
    const char *types[] = {"f16", "q8_0"};
    char small[256];
    snprintf(small, sizeof small, "%s", sl_test_shared("models/small/small-llama-Q8_0.gguf"));
    const char *models[] = {MODEL, small};
    for (int k = 0; k < 2; k++) {
        sl_test_proc p;
        char *args[] = {"serve", "-m", (char *)models[k], "--port", "0", "-t", "2", "--kv-type", (char *)types[k],
                        "--kv-mem", "64", NULL};
        CHECK(sl_test_proc_start(&p, args, 20) == 0);
        int same = alone_vs_together(p.url, 6, body_greedy24);
        int rc = sl_test_proc_stop(&p, SIGTERM, 10);
        CHECK_MSG(same == 6, "--kv-type %s: %d of 6 requests equal alone and batched", types[k], same);
        CHECK_EQ_INT(rc, 0);
    }
    char *bad[] = {(char *)sl_test_bin(), "serve", "-m", MODEL, "--port", "0", "--kv-type", "q4", NULL};
    char *out = NULL, *err = NULL;
    int rc = sl_test_run(bad, &out, &err, 20);
    bool named = err && strstr(err, "--kv-type");
    free(out);
    free(err);
    CHECK_EQ_INT(rc, 1);
    CHECK(named);
}

/* n-gram speculation changes nothing in the output: greedy answers with --spec-ngram are llama.cpp's golden
 * texts, sampled ones (and JSON mode) equal the server without it, concurrent ones equal each alone; and
 * proposed tokens were accepted (the path ran). */
static char *spec_body(int i) {
    char *b = prompt_body(i, 80, false, i % 3 ? 0.9 : 0.0, 77 + i);
    if (i % 4 == 1) b = with_field(b, "response_format", json_pack("{s:s}", "type", "json_object")); /* JSON mode too */
    return b;
}

/* One sampled completion of "Once upon a time" (40 tokens, seed 11, temperature 1, EOS ignored) with the
 * fields of `extra` (a JSON object text), whole or streamed; NULL unless 200. */
static char *sampled_text(const char *url, const char *extra, bool stream, json_t *prompt_ids, int resumed) {
    char *body = NULL;
    if (prompt_ids) {
        char *ids = json_dumps(prompt_ids, JSON_COMPACT);
        if (asprintf(&body, "{\"prompt\":%s,\"max_tokens\":%d,\"seed\":11,\"temperature\":1,\"ignore_eos\":true,"
                            "\"shardlm_resume\":{\"generated\":%d,\"text_sent\":0},%s}", ids, 40 - resumed, resumed,
                     extra) < 0)
            body = NULL;
        free(ids);
    } else if (asprintf(&body, "{\"prompt\":\"Once upon a time\",\"max_tokens\":40,\"seed\":11,\"temperature\":1,"
                               "\"ignore_eos\":true,\"stream\":%s,%s}", stream ? "true" : "false", extra) < 0) {
        body = NULL;
    }
    if (!body) return NULL;
    resp r = http(url, "/v1/completions", body, NULL);
    free(body);
    char *text = NULL;
    if (r.status == 200 && stream) {
        answer a = read_answer(&r, true, 1);
        const char *t = json_string_value(json_array_get(a.texts, 0));
        text = t ? strdup(t) : NULL;
        answer_free(&a);
    } else if (r.status == 200) {
        text = completion_text(&r);
    }
    free(r.body);
    return text;
}

/* `shardlm run` of the same: prompt and output ids and the text (a JSON object), NULL on failure. */
static json_t *sampled_cli(char *const *flags) {
    char *argv[40] = {(char *)sl_test_bin(), "run", "-m", MODEL, "-p", "Once upon a time", "-n", "40", "--seed", "11",
                      "--temp", "1", "--ignore-eos", "--top-k", "0", "--top-p", "1", "--min-p", "0",
                      "--repeat-last-n", "-1", "-t", "1", "--json"};
    int n = 0;
    while (argv[n]) n++;
    for (int i = 0; flags[i] && n < 39; i++) argv[n++] = flags[i];
    argv[n] = NULL;
    char *out = NULL, *err = NULL;
    const int rc = sl_test_run(argv, &out, &err, 120);
    json_error_t je;
    json_t *j = rc == 0 && out ? json_loads(out, 0, &je) : NULL;
    if (!j) fprintf(stderr, "    shardlm run exited %d: %s\n", rc, err ? err : "");
    free(out);
    free(err);
    return j;
}

/* llama.cpp's samplers through HTTP: each setting gives what `shardlm run` gives with llama-cli's flags for it
 * (the same seed, so the same draws), streamed as whole; `samplers` as names or as letters alike; a mirostat
 * stream resumed after 15 tokens, as a router's failover sends it, goes on with the same tokens (its target
 * surprise replayed from the logits), where a plain continuation of those tokens does not; bad values are
 * 400s naming the field, and the server keeps serving. */
TEST(serve_llama_samplers) {
    const char *url = start_default();
    CHECK(url);
    static const struct {
        const char *api;
        char *cli[12];
    } cases[] = {
        {"\"mirostat\":2,\"mirostat_tau\":1,\"mirostat_eta\":0.5",
         {"--mirostat", "2", "--mirostat-ent", "1", "--mirostat-lr", "0.5"}},
        {"\"mirostat\":1,\"mirostat_tau\":2,\"mirostat_eta\":0.5",
         {"--mirostat", "1", "--mirostat-ent", "2", "--mirostat-lr", "0.5"}},
        {"\"dry_multiplier\":0.8,\"dry_allowed_length\":1,\"dry_base\":2", {"--dry-multiplier", "0.8", "--dry-allowed-length", "1", "--dry-base", "2"}},
        {"\"dry_multiplier\":3,\"dry_allowed_length\":1,\"dry_sequence_breakers\":[\" a\",\".\"]",
         {"--dry-multiplier", "3", "--dry-allowed-length", "1", "--dry-sequence-breakers", "[\" a\", \".\"]"}},
        {"\"typical_p\":0.6,\"xtc_probability\":0.7,\"xtc_threshold\":0.15",
         {"--typical", "0.6", "--xtc-probability", "0.7", "--xtc-threshold", "0.15"}},
        {"\"dynatemp_range\":0.5,\"dynatemp_exponent\":2,\"top_n_sigma\":1.5,\"min_keep\":2",
         {"--dynatemp-range", "0.5", "--dynatemp-exp", "2", "--top-nsigma", "1.5", "--min-keep", "2"}},
        {"\"samplers\":[\"top_k\",\"temperature\"],\"top_k\":5", {"--samplers", "top_k;temperature", "--top-k", "5"}},
        {"\"samplers\":\"kt\",\"top_k\":5", {"--sampling-seq", "kt", "--top-k", "5"}},
    };
    char *texts[8] = {NULL};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char *whole = sampled_text(url, cases[c].api, false, NULL, 0), *streamed = sampled_text(url, cases[c].api, true, NULL, 0);
        json_t *cli = sampled_cli((char *const *)cases[c].cli);
        const char *ct = json_string_value(json_object_get(cli, "text"));
        CHECK_MSG(whole && streamed && ct && !strcmp(whole, streamed) && !strcmp(whole, ct),
                  "{%s}:\n      HTTP     %s\n      streamed %s\n      run      %s", cases[c].api, whole, streamed, ct);
        texts[c] = whole;
        free(streamed);
        json_decref(cli);
    }
    CHECK(texts[6] && texts[7] && !strcmp(texts[6], texts[7])); /* names and letters */
    /* the settings do change the output: every text differs from plain sampling's */
    char *plain = sampled_text(url, "\"top_k\":0", false, NULL, 0);
    for (size_t c = 0; c < 6; c++) CHECK_MSG(texts[c] && plain && strcmp(texts[c], plain), "{%s} = plain", cases[c].api);

    /* a mirostat stream resumed after 15 of its 40 tokens: the same text (all of it: text_sent 0) */
    json_t *cli = sampled_cli((char *const *)cases[0].cli);
    json_t *ids = json_deep_copy(json_object_get(cli, "prompt_ids"));
    for (size_t i = 0; i < 15; i++) json_array_append(ids, json_array_get(json_object_get(cli, "generated_ids"), i));
    char *resumed = sampled_text(url, cases[0].api, false, ids, 15);
    CHECK_MSG(resumed && texts[0] && !strcmp(resumed, texts[0]), "resumed: %s\n      whole:   %s", resumed, texts[0]);
    /* ... which the replay of mu makes so: the same tokens as a plain prompt start over at mu = 2 tau */
    char *ids_text = json_dumps(ids, JSON_COMPACT), *body = NULL;
    CHECK(asprintf(&body, "{\"prompt\":%s,\"max_tokens\":25,\"seed\":11,\"temperature\":1,\"ignore_eos\":true,%s}",
                   ids_text, cases[0].api) > 0);
    resp r = http(url, "/v1/completions", body, NULL);
    char *fresh = completion_text(&r);
    CHECK(fresh && resumed && strlen(resumed) > strlen(fresh) &&
          strcmp(resumed + strlen(resumed) - strlen(fresh), fresh) != 0);
    free(r.body);
    free(body);
    free(ids_text);
    free(fresh);
    free(resumed);
    json_decref(ids);
    json_decref(cli);

    /* ... and with a grammar too: each replayed draw saw the mask of the answer so far */
    static char *const gcli[] = {"--mirostat", "2", "--mirostat-ent", "1", "--mirostat-lr", "0.5", "--grammar",
                                 "root ::= [a-z ]+", NULL};
    static const char gapi[] = "\"mirostat\":2,\"mirostat_tau\":1,\"mirostat_eta\":0.5,\"grammar\":\"root ::= [a-z ]+\"";
    cli = sampled_cli(gcli);
    const char *gct = json_string_value(json_object_get(cli, "text"));
    char *gwhole = sampled_text(url, gapi, false, NULL, 0);
    CHECK_MSG(gwhole && gct && !strcmp(gwhole, gct), "grammar: HTTP %s\n      run  %s", gwhole, gct);
    ids = json_deep_copy(json_object_get(cli, "prompt_ids"));
    for (size_t i = 0; i < 15; i++) json_array_append(ids, json_array_get(json_object_get(cli, "generated_ids"), i));
    resumed = sampled_text(url, gapi, false, ids, 15);
    CHECK_MSG(resumed && gwhole && !strcmp(resumed, gwhole), "grammar, resumed: %s\n      whole:   %s", resumed, gwhole);
    free(resumed);
    free(gwhole);
    json_decref(ids);
    json_decref(cli);

    static const char *const bad[][2] = {
        {"\"mirostat\":3", "mirostat"},
        {"\"typical_p\":-0.5", "typical_p"},
        {"\"samplers\":[\"top_k\",\"beam\"]", "samplers"},
        {"\"dry_multiplier\":1,\"dry_sequence_breakers\":[]", "dry_sequence_breakers"},
        {"\"tfs_z\":0.5", "tfs_z"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *b = NULL;
        CHECK(asprintf(&b, "{\"prompt\":\"x\",\"max_tokens\":2,%s}", bad[i][0]) > 0);
        resp e = http(url, "/v1/completions", b, NULL);
        char want[64];
        snprintf(want, sizeof want, "\"param\":\"%s\"", bad[i][1]);
        CHECK_MSG(e.status == 400 && e.body && strstr(e.body, want), "%s: %ld %s", bad[i][0], e.status, e.body);
        free(e.body);
        free(b);
    }
    char *again = sampled_text(url, "\"top_k\":0", false, NULL, 0);
    CHECK(again && plain && !strcmp(again, plain));
    free(again);
    free(plain);
    for (size_t c = 0; c < 8; c++) free(texts[c]);
}

/* llama.cpp's grammar_lazy: until a trigger fires the output is the free one (llama.cpp's greedy golden text),
 * then the grammar reads it from the trigger on — the same for a word, a pattern, a full pattern's group and a
 * token trigger at the same place; a trigger whose text the grammar cannot read ends the request with an
 * error, as in llama.cpp. */
TEST(serve_grammar_lazy) {
    const char *url = start_default();
    CHECK(url);
    json_t *g = golden_json(0); /* ", there was a little girl named Lily. ..." */
    CHECK(g);
    const char *gold = json_string_value(json_object_get(g, "generated_text"));
    CHECK(gold && strstr(gold, "little girl named"));
    static const struct {
        const char *gbnf, *triggers, *upto; /* the golden text up to and including upto, then [a-z ]* */
    } cases[] = {
        {"root ::= \"girl\" [a-z ]*", "[{\"type\":\"word\",\"value\":\"girl\"}]", "girl"},
        {"root ::= \"girl\" [a-z ]*", "[{\"type\":2,\"value\":\"gi+rl\"},{\"type\":1,\"value\":\"Lily\"}]", "girl"},
        {"root ::= \"little\" [a-z ]*", "[{\"type\":\"pattern_full\",\"value\":\"[\\\\s\\\\S]*?(lit+le)[\\\\s\\\\S]*\"}]", "little"},
        /* (a token trigger's value is tokenized as llama.cpp does: SentencePiece's space before "little") */
        {"root ::= \" little\" [a-z ]*", "[{\"type\":\"token\",\"value\":\"little\"}]", "little"},
        {"root ::= \" little\" [a-z ]*", "[{\"type\":0,\"value\":\"x\",\"token\":376}]", "little"}, /* ' little' */
        {"root ::= \"girl\" [a-z ]*", "[{\"word\":\"girl\"}]", "girl"}, /* older llama.cpp's form */
    };
    char *first = NULL;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int stream = 0; stream < 2; stream++) {
            json_error_t je;
            json_t *tr = json_loads(cases[c].triggers, 0, &je);
            json_t *req = json_pack("{s:s,s:i,s:f,s:b,s:s,s:b,s:o,s:b}", "prompt", "Once upon a time", "max_tokens", 40,
                                    "temperature", 0.0, "ignore_eos", 1, "grammar", cases[c].gbnf, "grammar_lazy", 1,
                                    "grammar_triggers", tr, "stream", stream);
            char *body = json_dumps(req, 0);
            json_decref(req);
            resp r = http(url, "/v1/completions", body, NULL);
            free(body);
            const long status = r.status;
            answer a = read_answer(&r, stream, 1);
            const char *text = json_string_value(json_array_get(a.texts, 0));
            const char *at = strstr(gold, cases[c].upto);
            const size_t pre = at ? (size_t)(at - gold) + strlen(cases[c].upto) : 0;
            bool ok = status == 200 && text && at && strlen(text) > pre && !strncmp(text, gold, pre) &&
                      strspn(text + pre, "abcdefghijklmnopqrstuvwxyz ") == strlen(text + pre) &&
                      strncmp(text + pre, gold + pre, strlen(text + pre)) != 0;
            if (!strcmp(cases[c].upto, "girl") && text) { /* the same trigger point, the same text */
                if (!first) first = strdup(text);
                else ok &= !strcmp(first, text);
            }
            CHECK_MSG(ok, "case %zu stream %d: %ld %s", c, stream, status, text ? text : r.body);
            answer_free(&a);
        }
    }
    /* a schema's guide waits the same way (guided_regex: a whole-output pattern) */
    resp rr = http(url, "/v1/completions",
                   "{\"prompt\":\"Once upon a time\",\"max_tokens\":40,\"temperature\":0,\"ignore_eos\":true,"
                   "\"guided_regex\":\"girl[a-z ]*\",\"grammar_lazy\":true,\"grammar_triggers\":[{\"type\":\"word\",\"value\":\"girl\"}]}",
                   NULL);
    char *rt = completion_text(&rr);
    CHECK_MSG(rt && first && !strcmp(rt, first), "guided_regex: %s\n      grammar:      %s", rt, first);
    free(rt);
    free(rr.body);
    free(first);
    /* a trigger the grammar cannot read from: an error (500), and the server keeps serving */
    resp r = http(url, "/v1/completions",
                  "{\"prompt\":\"Once upon a time\",\"max_tokens\":40,\"temperature\":0,\"grammar\":\"root ::= \\\"boy\\\"\","
                  "\"grammar_lazy\":true,\"grammar_triggers\":[{\"type\":\"word\",\"value\":\"girl\"}]}",
                  NULL);
    CHECK_MSG(r.status == 500 && r.body && strstr(r.body, "grammar_lazy"), "%ld %s", r.status, r.body);
    free(r.body);
    /* without grammar_lazy the triggers are not read: the grammar holds from the start */
    r = http(url, "/v1/completions",
             "{\"prompt\":\"Once upon a time\",\"max_tokens\":10,\"temperature\":0,\"grammar\":\"root ::= [a-z ]+\","
             "\"grammar_triggers\":[{\"type\":\"word\",\"value\":\"girl\"}]}",
             NULL);
    char *t = completion_text(&r);
    CHECK_MSG(r.status == 200 && t && strspn(t, "abcdefghijklmnopqrstuvwxyz ") == strlen(t), "%ld %s", r.status, r.body);
    free(t);
    free(r.body);
    json_decref(g);
}

/* OpenAI's Responses API (as vLLM serves it) on the chat path: the answer is chat's for the same messages
 * (instructions as a system message, text parts joined, a function call and its output as the chat turns
 * they are), text.format a schema the answer follows; what it cannot serve is a 400 naming the field. */
TEST(serve_responses_api) {
    const char *url = start_default();
    CHECK(url);
    resp r = http(url, "/v1/chat/completions",
                  "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":"
                  "\"Tell me about Lily.\"}],\"max_tokens\":20,\"temperature\":0}",
                  NULL);
    json_t *chat = json_loads(r.body, 0, NULL);
    free(r.body);
    const char *want = json_string_value(json_object_get(json_object_get(json_array_get(json_object_get(chat, "choices"), 0),
                                                                         "message"), "content"));
    CHECK(want && *want);
    r = http(url, "/v1/responses",
             "{\"instructions\":\"Be brief.\",\"input\":[{\"type\":\"message\",\"role\":\"user\",\"content\":[{\"type\":"
             "\"input_text\",\"text\":\"Tell me \"},{\"type\":\"input_text\",\"text\":\"about Lily.\"}]}],"
             "\"max_output_tokens\":20,\"temperature\":0,\"metadata\":{\"k\":\"v\"}}",
             NULL);
    json_t *o = json_loads(r.body, 0, NULL), *out = json_object_get(o, "output");
    json_t *msg = json_array_get(out, 0), *part = json_array_get(json_object_get(msg, "content"), 0);
    CHECK_MSG(r.status == 200 && json_array_size(out) == 1 && !strcmp(json_string_value(json_object_get(msg, "type")), "message") &&
                  !strcmp(json_string_value(json_object_get(part, "type")), "output_text") &&
                  !strcmp(json_string_value(json_object_get(part, "text")) ?: "", want) &&
                  !strcmp(json_string_value(json_object_get(json_object_get(o, "metadata"), "k")) ?: "", "v") &&
                  !strncmp(json_string_value(json_object_get(o, "id")) ?: "", "resp_", 5),
              "%ld %s\n      chat: %s", r.status, r.body, want);
    json_decref(o);
    json_decref(chat);
    free(r.body);
    /* the output text's logprobs (include, top_logprobs): chat's for the same request, whole and streamed */
    r = http(url, "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":6,\"temperature\":0,\"logprobs\":true,"
             "\"top_logprobs\":2}",
             NULL);
    chat = json_loads(r.body, 0, NULL);
    free(r.body);
    json_t *clp = json_object_get(json_object_get(json_array_get(json_object_get(chat, "choices"), 0), "logprobs"), "content");
    CHECK(json_array_size(clp) == 6);
    for (int stream = 0; stream < 2; stream++) {
        r = http(url, "/v1/responses",
                 stream ? "{\"input\":\"Hi\",\"max_output_tokens\":6,\"temperature\":0,\"top_logprobs\":2,\"stream\":true,"
                          "\"include\":[\"message.output_text.logprobs\"]}"
                        : "{\"input\":\"Hi\",\"max_output_tokens\":6,\"temperature\":0,\"top_logprobs\":2,"
                          "\"include\":[\"message.output_text.logprobs\"]}",
                 NULL);
        json_t *ro = NULL;
        if (stream) { /* the last event's response */
            static const char ev[] = "event: response.incomplete\ndata: ";
            const char *last = r.body ? strstr(r.body, ev) : NULL;
            json_t *d = last ? json_loads(last + strlen(ev), JSON_DISABLE_EOF_CHECK, NULL) : NULL;
            ro = json_incref(json_object_get(d, "response"));
            json_decref(d);
        } else {
            ro = json_loads(r.body, 0, NULL);
        }
        json_t *rlp = json_object_get(
            json_array_get(json_object_get(json_array_get(json_object_get(ro, "output"), 0), "content"), 0), "logprobs");
        CHECK_MSG(r.status == 200 && json_equal(rlp, clp), "stream %d: %ld %.600s", stream, r.status, r.body);
        json_decref(ro);
        free(r.body);
    }
    json_decref(chat);
    /* a conversation with a call and its result: accepted as the chat turns */
    r = http(url, "/v1/responses",
             "{\"input\":[{\"role\":\"user\",\"content\":\"Weather?\"},{\"type\":\"function_call\",\"call_id\":\"call_1\","
             "\"name\":\"get_weather\",\"arguments\":\"{}\"},{\"type\":\"function_call_output\",\"call_id\":\"call_1\","
             "\"output\":\"sunny\"}],\"tools\":[{\"type\":\"function\",\"name\":\"get_weather\",\"parameters\":{\"type\":"
             "\"object\"}}],\"max_output_tokens\":4}",
             NULL);
    CHECK_MSG(r.status == 200 && strstr(r.body, "\"object\":\"response\""), "%ld %s", r.status, r.body);
    free(r.body);
    /* text.format: the answer follows the schema */
    r = http(url, "/v1/responses",
             "{\"input\":\"x\",\"max_output_tokens\":200,\"temperature\":0.8,\"seed\":3,\"text\":{\"format\":{\"type\":"
             "\"json_schema\",\"name\":\"n\",\"schema\":{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\","
             "\"multipleOf\":5}},\"required\":[\"n\"],\"additionalProperties\":false}}}}",
             NULL);
    o = json_loads(r.body, 0, NULL);
    const char *t = json_string_value(json_object_get(
        json_array_get(json_object_get(json_array_get(json_object_get(o, "output"), 0), "content"), 0), "text"));
    json_t *doc = t ? json_loads(t, 0, NULL) : NULL;
    json_t *n = json_object_get(doc, "n");
    CHECK_MSG(r.status == 200 && json_is_integer(n) && json_integer_value(n) % 5 == 0 && json_object_size(doc) == 1,
              "%ld %s", r.status, r.body);
    json_decref(doc);
    json_decref(o);
    free(r.body);
    static const struct {
        const char *body, *param;
    } bad[] = {
        {"{\"input\":\"x\",\"previous_response_id\":\"resp_1\"}", "previous_response_id"},
        {"{\"input\":\"x\",\"tools\":[{\"type\":\"web_search\"}]}", "tools"},
        {"{\"max_output_tokens\":4}", "input"},
        {"{\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\",\"image_url\":\"x\"}]}]}", "input"},
        {"{\"input\":[{\"type\":\"file_search_call\"}]}", "input"},
        {"{\"input\":\"x\",\"text\":{\"format\":{\"type\":\"xml\"}}}", "text"},
        {"{\"input\":\"x\",\"tool_choice\":{\"type\":\"mcp\"}}", "tool_choice"},
        {"{\"input\":\"x\",\"background\":true,\"store\":false}", "background"},
        {"{\"input\":\"x\",\"background\":true,\"stream\":true}", "background"},
        {"{\"input\":\"x\",\"n\":2}", "n"},
        {"{\"input\":\"x\",\"max_output_tokens\":-1}", "max_output_tokens"},
        {"{\"input\":[{\"role\":\"user\",\"content\":\"x\"},{\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\","
         "\"text\":\"y\"}]},{\"role\":\"tool\",\"content\":\"z\"}]}", "input"},
        {"{\"input\":\"x\",\"model\":\"gpt-5\"}", "model"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = http(url, "/v1/responses", bad[i].body, NULL);
        char p[64];
        snprintf(p, sizeof p, "\"param\":\"%s\"", bad[i].param);
        CHECK_MSG(r.status >= 400 && r.status < 500 && r.body && strstr(r.body, p), "%s: %ld %s", bad[i].body, r.status, r.body);
        free(r.body);
    }
    r = http(url, "/v1/responses", "{\"input\":", NULL);
    CHECK_MSG(r.status == 400 && r.body && strstr(r.body, "not valid JSON"), "%ld %s", r.status, r.body);
    free(r.body);
}

/* The text of a response object's first message, or NULL. */
static char *response_text(const json_t *o) {
    size_t i;
    const json_t *it;
    json_array_foreach(json_object_get(o, "output"), i, it) {
        const json_t *t = json_object_get(json_array_get(json_object_get(it, "content"), 0), "text");
        if (json_is_string(t)) return strdup(json_string_value(t));
    }
    return NULL;
}
/* Responses kept for previous_response_id: a second turn is what chat answers for the whole conversation
 * (the first input and output, then the new input), streamed turns are kept too, GET /v1/responses/{id}
 * reads one back; "store": false keeps nothing; an unknown id is a 404; with --responses-store 0 a 400. */
/* Background responses: answered at once (queued), then read back until done — the same text as in the
 * foreground; with two sequences at a time, the last of several waits, and cancelling it keeps it "cancelled"
 * with no output; only background responses can be cancelled; SIGTERM lets the running ones finish (exit 0)
 * and every KV block is free. */
static json_t *poll_response(const char *url, const char *id, const char *until_not) {
    char path[160];
    snprintf(path, sizeof path, "/v1/responses/%s", id);
    json_t *o = NULL;
    for (int i = 0; i < 600; i++) {
        resp r = http(url, path, NULL, NULL);
        json_decref(o);
        o = json_loads(r.body, 0, NULL);
        free(r.body);
        const char *st = json_string_value(json_object_get(o, "status"));
        if (st && strcmp(st, until_not) && strcmp(st, "queued")) break;
        usleep(50000);
    }
    return o;
}

TEST(serve_responses_background) {
    sl_test_proc p;
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--kv-type", "f32", "--max-num-seqs", "2",
                    "--max-num-batched-tokens", "64", NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    static const char fg[] = "{\"input\":\"Tell me a story.\",\"max_output_tokens\":300,\"temperature\":0}";
    static const char bgb[] = "{\"input\":\"Tell me a story.\",\"max_output_tokens\":300,\"temperature\":0,\"background\":true}";
    resp f = http(p.url, "/v1/responses", fg, NULL);
    json_t *fo = json_loads(f.body, 0, NULL);
    char *want = response_text(fo);
    resp b = http(p.url, "/v1/responses", bgb, NULL);
    json_t *bo = json_loads(b.body, 0, NULL);
    const char *id = json_string_value(json_object_get(bo, "id"));
    CHECK_MSG(b.status == 200 && id && !strcmp(json_string_value(json_object_get(bo, "status")) ?: "", "queued") &&
                  json_is_true(json_object_get(bo, "background")) && json_array_size(json_object_get(bo, "output")) == 0,
              "%s", b.body);
    json_t *done = poll_response(p.url, id, "in_progress");
    char *got = response_text(done);
    CHECK_MSG(want && got && !strcmp(want, got) &&
                  !strcmp(json_string_value(json_object_get(done, "status")) ?: "", "incomplete"),
              "background: %s\n      foreground text: %s", json_dumps(done, 0), want);
    free(got);
    json_decref(done);
    /* five at once, two sequences at a time: the last waits its turn, and is cancelled there */
    char ids[5][96];
    for (int i = 0; i < 5; i++) {
        resp q = http(p.url, "/v1/responses", bgb, NULL);
        json_t *qo = json_loads(q.body, 0, NULL);
        snprintf(ids[i], sizeof ids[i], "%s", json_string_value(json_object_get(qo, "id")) ?: "");
        json_decref(qo);
        free(q.body);
    }
    char path[200];
    snprintf(path, sizeof path, "/v1/responses/%s/cancel", ids[4]);
    resp cr = http(p.url, path, "", NULL);
    json_t *co = json_loads(cr.body, 0, NULL);
    CHECK_MSG(cr.status == 200 && !strcmp(json_string_value(json_object_get(co, "status")) ?: "", "cancelled") &&
                  !strcmp(json_string_value(json_object_get(co, "id")) ?: "", ids[4]),
              "%ld %s", cr.status, cr.body);
    json_decref(co);
    free(cr.body);
    json_t *first = poll_response(p.url, ids[0], "in_progress");
    got = response_text(first);
    CHECK_MSG(got && !strcmp(got, want), "the first of five: %s", json_dumps(first, 0));
    free(got);
    json_decref(first);
    /* a foreground response cannot be cancelled; an unknown one is not there */
    snprintf(path, sizeof path, "/v1/responses/%s/cancel", json_string_value(json_object_get(fo, "id")) ?: "x");
    resp nb = http(p.url, path, "", NULL), nf = http(p.url, "/v1/responses/resp_nope/cancel", "", NULL);
    CHECK_MSG(nb.status == 400 && nf.status == 404, "%ld %s / %ld %s", nb.status, nb.body, nf.status, nf.body);
    free(nb.body);
    free(nf.body);
    /* SIGTERM while some still run: they finish, exit 0 */
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 30), 0);
    free(want);
    json_decref(fo);
    json_decref(bo);
    free(f.body);
    free(b.body);
}

TEST(serve_responses_kept) {
    const char *url = start_default();
    CHECK(url);
    resp r = http(url, "/v1/responses", "{\"input\":\"Tell me about Lily.\",\"max_output_tokens\":12,\"temperature\":0}", NULL);
    json_t *o1 = json_loads(r.body, 0, NULL);
    free(r.body);
    const char *id1 = json_string_value(json_object_get(o1, "id"));
    char *t1 = response_text(o1);
    CHECK(id1 && t1 && *t1 && json_is_true(json_object_get(o1, "store")));
    char *body = NULL;
    CHECK(asprintf(&body, "{\"previous_response_id\":\"%s\",\"input\":\"And Tim?\",\"max_output_tokens\":12,\"temperature\":0}",
                   id1) > 0);
    r = http(url, "/v1/responses", body, NULL);
    free(body);
    json_t *o2 = json_loads(r.body, 0, NULL);
    free(r.body);
    char *t2 = response_text(o2);
    json_t *conv = json_pack("{s:[{s:s,s:s},{s:s,s:s},{s:s,s:s}],s:i,s:i}", "messages", "role", "user", "content",
                             "Tell me about Lily.", "role", "assistant", "content", t1 ? t1 : "", "role", "user", "content",
                             "And Tim?", "max_tokens", 12, "temperature", 0);
    body = json_dumps(conv, 0);
    json_decref(conv);
    r = http(url, "/v1/chat/completions", body, NULL);
    free(body);
    char *want = completion_text(&r);
    free(r.body);
    CHECK_MSG(t2 && want && !strcmp(t2, want) &&
                  !strcmp(json_string_value(json_object_get(o2, "previous_response_id")) ?: "", id1),
              "second turn: %s\n      chat:        %s", t2, want);
    /* a streamed third turn is kept as well: read back by its id */
    CHECK(asprintf(&body, "{\"previous_response_id\":\"%s\",\"input\":\"More.\",\"max_output_tokens\":8,\"temperature\":0,"
                          "\"stream\":true}",
                   json_string_value(json_object_get(o2, "id"))) > 0);
    r = http(url, "/v1/responses", body, NULL);
    free(body);
    static const char ev[] = "event: response.incomplete\ndata: ";
    const char *last = r.body ? strstr(r.body, ev) : NULL;
    json_t *d = last ? json_loads(last + strlen(ev), JSON_DISABLE_EOF_CHECK, NULL) : NULL;
    const char *id3 = json_string_value(json_object_get(json_object_get(d, "response"), "id"));
    char path[160];
    snprintf(path, sizeof path, "/v1/responses/%s", id3 ? id3 : "none");
    resp g = http(url, path, NULL, NULL);
    json_t *o3 = json_loads(g.body, 0, NULL);
    CHECK_MSG(g.status == 200 && json_equal(o3, json_object_get(d, "response")), "GET %s: %ld %.300s", path, g.status, g.body);
    json_decref(o3);
    json_decref(d);
    free(g.body);
    free(r.body);
    /* the second turn's input items: the conversation it answered, newest first unless asc, a page at a time */
    {
        const char *id2 = json_string_value(json_object_get(o2, "id"));
        static const char *const roles[] = {"user", "assistant", "user"};
        const char *texts[] = {"Tell me about Lily.", t1 ? t1 : "", "And Tim?"};
        snprintf(path, sizeof path, "/v1/responses/%s/input_items?order=asc", id2 ? id2 : "none");
        resp li = http(url, path, NULL, NULL);
        json_t *lo = json_loads(li.body, 0, NULL), *data = json_object_get(lo, "data");
        bool ok = li.status == 200 && json_array_size(data) == 3 && json_is_false(json_object_get(lo, "has_more"));
        for (size_t i = 0; ok && i < 3; i++) {
            json_t *it = json_array_get(data, i), *part = json_array_get(json_object_get(it, "content"), 0);
            ok = !strcmp(json_string_value(json_object_get(it, "type")) ?: "", "message") &&
                 !strcmp(json_string_value(json_object_get(it, "role")) ?: "", roles[i]) &&
                 !strcmp(json_string_value(json_object_get(part, "text")) ?: "-", texts[i]) &&
                 json_is_string(json_object_get(it, "id"));
        }
        CHECK_MSG(ok, "%ld %s", li.status, li.body);
        snprintf(path, sizeof path, "/v1/responses/%s/input_items?limit=2", id2 ? id2 : "none");
        resp p1 = http(url, path, NULL, NULL);
        json_t *po = json_loads(p1.body, 0, NULL);
        const char *lastid = json_string_value(json_object_get(po, "last_id"));
        snprintf(path, sizeof path, "/v1/responses/%s/input_items?limit=2&after=%s", id2 ? id2 : "none", lastid ? lastid : "");
        resp p2 = http(url, path, NULL, NULL);
        json_t *po2 = json_loads(p2.body, 0, NULL);
        json_t *d1 = json_object_get(po, "data"), *d2 = json_object_get(po2, "data");
        CHECK_MSG(json_array_size(d1) == 2 && json_is_true(json_object_get(po, "has_more")) &&
                      json_equal(json_array_get(d1, 0), json_array_get(data, 2)) && json_array_size(d2) == 1 &&
                      json_equal(json_array_get(d2, 0), json_array_get(data, 0)) &&
                      json_is_false(json_object_get(po2, "has_more")),
                  "%s\n      %s", p1.body, p2.body);
        resp bad = http(url, "/v1/responses/resp_nope/input_items", NULL, NULL);
        CHECK_EQ_INT(bad.status, 404);
        json_decref(lo);
        json_decref(po);
        json_decref(po2);
        free(li.body);
        free(p1.body);
        free(p2.body);
        free(bad.body);
    }
    /* store false: nothing kept */
    r = http(url, "/v1/responses", "{\"input\":\"x\",\"max_output_tokens\":2,\"store\":false}", NULL);
    json_t *o4 = json_loads(r.body, 0, NULL);
    free(r.body);
    snprintf(path, sizeof path, "/v1/responses/%s", json_string_value(json_object_get(o4, "id")) ?: "none");
    g = http(url, path, NULL, NULL);
    CHECK_EQ_INT(g.status, 404);
    free(g.body);
    CHECK(asprintf(&body, "{\"previous_response_id\":\"%s\",\"input\":\"x\"}", json_string_value(json_object_get(o4, "id")) ?: "") > 0);
    r = http(url, "/v1/responses", body, NULL);
    free(body);
    CHECK_MSG(r.status == 404 && r.body && strstr(r.body, "\"param\":\"previous_response_id\""), "%ld %s", r.status, r.body);
    free(r.body);
    json_decref(o4);
    g = http(url, "/v1/responses/resp_nope", NULL, NULL);
    CHECK_EQ_INT(g.status, 404);
    free(g.body);
    /* DELETE forgets one */
    snprintf(path, sizeof path, "/v1/responses/%s", id1);
    g = http_method(url, "DELETE", path);
    CHECK_MSG(g.status == 200 && strstr(g.body, "\"deleted\":true"), "%ld %s", g.status, g.body);
    free(g.body);
    g = http(url, path, NULL, NULL);
    CHECK_EQ_INT(g.status, 404);
    free(g.body);
    free(t1);
    free(t2);
    free(want);
    json_decref(o1);
    json_decref(o2);
    /* a server that keeps nothing */
    sl_test_proc p;
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--responses-store", "0", NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    r = http(p.url, "/v1/responses", "{\"previous_response_id\":\"resp_1\",\"input\":\"x\"}", NULL);
    CHECK_MSG(r.status == 400 && r.body && strstr(r.body, "--responses-store 0"), "%ld %s", r.status, r.body);
    free(r.body);
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
}

/* llama.cpp's own POST /completion: llama.cpp's greedy golden text as "content", whole and streamed (no
 * [DONE]), with its counts (tokens_evaluated: the golden prompt's ids, BOS included) and stop_type limit;
 * a stop string gives stop_type word and its stopping_word (and vLLM's stop_reason on /v1/completions);
 * several prompts give an array; /completions is the same endpoint. */
TEST(serve_llamacpp_completion) {
    const char *url = start_default();
    CHECK(url);
    json_t *g = golden_json(0);
    CHECK(g);
    const char *gold = json_string_value(json_object_get(g, "generated_text"));
    const long n_gen = (long)json_array_size(json_object_get(g, "generated_token_ids"));
    const long n_prompt = (long)json_array_size(json_object_get(g, "prompt_token_ids"));
    char body[256];
    snprintf(body, sizeof body, "{\"prompt\":\"%s\",\"n_predict\":%ld,\"temperature\":0}",
             json_string_value(json_object_get(g, "prompt")), n_gen);
    for (int alias = 0; alias < 2; alias++) {
        resp r = http(url, alias ? "/completions" : "/completion", body, NULL);
        json_t *o = json_loads(r.body, 0, NULL);
        CHECK_MSG(r.status == 200 && !strcmp(json_string_value(json_object_get(o, "content")) ?: "", gold) &&
                      json_is_true(json_object_get(o, "stop")) &&
                      !strcmp(json_string_value(json_object_get(o, "stop_type")) ?: "", "limit") &&
                      json_integer_value(json_object_get(o, "tokens_predicted")) == n_gen &&
                      json_integer_value(json_object_get(o, "tokens_evaluated")) == n_prompt &&
                      json_is_object(json_object_get(o, "timings")),
                  "%ld %.400s", r.status, r.body);
        json_decref(o);
        free(r.body);
    }
    /* streamed: the pieces join to the same text; the last event closes it */
    char sbody[300];
    snprintf(sbody, sizeof sbody, "{\"prompt\":\"%s\",\"n_predict\":%ld,\"temperature\":0,\"stream\":true}",
             json_string_value(json_object_get(g, "prompt")), n_gen);
    resp r = http(url, "/completion", sbody, NULL);
    char *joined = calloc(1, r.n + 1), *save = NULL;
    int stops = 0, events = 0;
    for (char *ev = strtok_r(r.body, "\n", &save); ev; ev = strtok_r(NULL, "\n", &save)) {
        if (strncmp(ev, "data: ", 6)) continue;
        events++;
        json_t *e = json_loads(ev + 6, 0, NULL);
        strcat(joined, json_string_value(json_object_get(e, "content")) ?: "");
        stops += json_is_true(json_object_get(e, "stop"));
        json_decref(e);
    }
    CHECK_MSG(!strcmp(joined, gold) && stops == 1 && events >= 2 && !strstr(r.body ? r.body : "", "[DONE]"), "streamed: %s", joined);
    free(joined);
    free(r.body);
    /* a stop string */
    r = http(url, "/completion", "{\"prompt\":\"Once upon a time\",\"n_predict\":40,\"temperature\":0,\"stop\":[\"girl\"]}", NULL);
    json_t *o = json_loads(r.body, 0, NULL);
    const char *c = json_string_value(json_object_get(o, "content"));
    CHECK_MSG(c && !strncmp(c, gold, strlen(c)) && !strncmp(gold + strlen(c), "girl", 4) &&
                  !strcmp(json_string_value(json_object_get(o, "stop_type")) ?: "", "word") &&
                  !strcmp(json_string_value(json_object_get(o, "stopping_word")) ?: "", "girl"),
              "%.300s", r.body);
    json_decref(o);
    free(r.body);
    r = http(url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":40,\"temperature\":0,\"stop\":[\"girl\"]}", NULL);
    CHECK_MSG(r.body && strstr(r.body, "\"finish_reason\":\"stop\",\"stop_reason\":\"girl\""), "%s", r.body);
    free(r.body);
    r = http(url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":4}", NULL);
    CHECK_MSG(r.body && strstr(r.body, "\"finish_reason\":\"length\",\"stop_reason\":null"), "%s", r.body);
    free(r.body);
    /* n_probs: llama.cpp's completion_probabilities — each output token (llama.cpp's greedy ids) with its
     * logprob and its 3 most likely alternatives, the log-softmax of llama.cpp's logits there */
    {
        const char *lt = sl_test_shared("golden/stories260K/main.00.logits_all.txt");
        char *all = lt ? sl_test_read_file(lt, NULL) : NULL, *q = all;
        CHECK(all);
        static float lg[4][512];
        for (int i = 0; i < 4 * 512; i++) lg[i / 512][i % 512] = strtof(q, &q);
        free(all);
        char pb[256];
        snprintf(pb, sizeof pb, "{\"prompt\":\"%s\",\"n_predict\":4,\"temperature\":0,\"n_probs\":3%s}",
                 json_string_value(json_object_get(g, "prompt")), "");
        for (int stream = 0; stream < 2 && !sl_test_failed(); stream++) {
            if (stream) snprintf(pb, sizeof pb, "{\"prompt\":\"%s\",\"n_predict\":4,\"temperature\":0,\"n_probs\":3,"
                                 "\"stream\":true}", json_string_value(json_object_get(g, "prompt")));
            resp pr = http(url, "/completion", pb, NULL);
            json_t *recs = json_array();
            for (char *ev = pr.body, *nl; ev && *ev; ev = nl ? nl + 1 : NULL) { /* the JSON, or each event's */
                nl = strchr(ev, '\n');
                if (nl) *nl = '\0';
                if (stream && strncmp(ev, "data: ", 6)) continue;
                json_t *e = json_loads(stream ? ev + 6 : ev, 0, NULL);
                json_array_extend(recs, json_object_get(e, "completion_probabilities"));
                json_decref(e);
            }
            CHECK_MSG(json_array_size(recs) == 4, "%s: %zu records", stream ? "streamed" : "whole", json_array_size(recs));
            for (size_t k = 0; k < json_array_size(recs); k++) {
                json_t *rec = json_array_get(recs, k), *top = json_object_get(rec, "top_logprobs");
                const long long id = json_integer_value(json_object_get(rec, "id"));
                double mx = -1e300, se = 0;
                for (int v = 0; v < 512; v++) mx = fmax(mx, lg[k][v]);
                for (int v = 0; v < 512; v++) se += exp(lg[k][v] - mx);
                bool ok = id == json_integer_value(json_array_get(json_object_get(g, "generated_token_ids"), k)) &&
                          json_array_size(top) == 3 && json_integer_value(json_object_get(json_array_get(top, 0), "id")) == id;
                for (size_t a = 0; ok && a < 3; a++) {
                    json_t *alt = json_array_get(top, a);
                    const long long aid = json_integer_value(json_object_get(alt, "id"));
                    const double want = lg[k][aid] - mx - log(se);
                    ok = aid >= 0 && aid < 512 && fabs(json_number_value(json_object_get(alt, "logprob")) - want) < 1e-3 &&
                         (a == 0 || json_number_value(json_object_get(alt, "logprob")) <=
                                        json_number_value(json_object_get(json_array_get(top, a - 1), "logprob")));
                }
                CHECK_MSG(ok, "record %zu: %s", k, json_dumps(rec, JSON_COMPACT));
            }
            json_decref(recs);
            free(pr.body);
        }
    }
    /* t_max_predict_ms (llama.vscode's): past the limit, the output ends at the next token holding a line break */
    {
        json_t *g4 = golden_json(4);
        const char *gold4 = json_string_value(json_object_get(g4, "generated_text"));
        char tb[256];
        snprintf(tb, sizeof tb, "{\"prompt\":\"%s\",\"n_predict\":200,\"temperature\":0,\"t_max_predict_ms\":1}", "She said, \\\"I want to play!\\\"");
        resp tr = http(url, "/completion", tb, NULL);
        json_t *to = json_loads(tr.body, 0, NULL);
        const char *c4 = json_string_value(json_object_get(to, "content"));
        const size_t n4 = c4 ? strlen(c4) : 0, m4 = gold4 ? strlen(gold4) : 0;
        const char *lastnl = c4 ? strrchr(c4, '\n') : NULL;
        CHECK_MSG(c4 && gold4 && !strncmp(c4, gold4, n4 < m4 ? n4 : m4) && lastnl && n4 - (size_t)(lastnl - c4) <= 4 &&
                      !strcmp(json_string_value(json_object_get(to, "stop_type")) ?: "", "limit") &&
                      json_integer_value(json_object_get(to, "tokens_predicted")) < 200,
                  "%s", tr.body);
        json_decref(to);
        json_decref(g4);
        free(tr.body);
    }
    /* n_indent (llama.vscode's): a line with less indentation ends the output, cut where that line's text starts
     * (golden 04's second line starts at once: the answer is its first line, line break included); streamed, the
     * output ends there too, uncut (as llama.cpp streams it) */
    {
        json_t *g4 = golden_json(4);
        const char *gold4 = json_string_value(json_object_get(g4, "generated_text"));
        const char *nl = gold4 ? strchr(gold4, '\n') : NULL;
        const size_t first = nl ? (size_t)(nl - gold4) + 1 : 0;
        static const char ib[] = "{\"prompt\":\"She said, \\\"I want to play!\\\"\",\"n_predict\":64,\"temperature\":0,\"n_indent\":1%s}";
        char nb[256];
        snprintf(nb, sizeof nb, ib, "");
        resp ir = http(url, "/completion", nb, NULL);
        json_t *io = json_loads(ir.body, 0, NULL);
        const char *ic = json_string_value(json_object_get(io, "content"));
        CHECK_MSG(nl && ic && strlen(ic) == first && !strncmp(ic, gold4, first) &&
                      !strcmp(json_string_value(json_object_get(io, "stop_type")) ?: "", "limit"),
                  "%s", ir.body);
        snprintf(nb, sizeof nb, ib, ",\"stream\":true");
        resp sr = http(url, "/completion", nb, NULL);
        char *sj = calloc(1, sr.n + 1), *sv = NULL;
        for (char *ev = strtok_r(sr.body, "\n", &sv); ev; ev = strtok_r(NULL, "\n", &sv)) {
            if (strncmp(ev, "data: ", 6)) continue;
            json_t *e = json_loads(ev + 6, 0, NULL);
            strcat(sj, json_string_value(json_object_get(e, "content")) ?: "");
            json_decref(e);
        }
        CHECK_MSG(strlen(sj) > first && strlen(sj) < strlen(gold4) && !strncmp(sj, gold4, strlen(sj)),
                  "streamed: %s", sj);
        free(sj);
        json_decref(io);
        json_decref(g4);
        free(ir.body);
        free(sr.body);
    }
    /* response_fields: the answer holds those fields, each path as its key (as llama.cpp writes it) */
    {
        resp fr = http(url, "/completion", "{\"prompt\":\"Once upon a time\",\"n_predict\":4,\"temperature\":0,"
                                           "\"response_fields\":[\"content\",\"timings/prompt_n\",\"tokens_predicted\",\"no/such\"]}", NULL);
        json_t *fo = json_loads(fr.body, 0, NULL);
        CHECK_MSG(json_object_size(fo) == 3 && json_is_string(json_object_get(fo, "content")) &&
                      json_integer_value(json_object_get(fo, "tokens_predicted")) == 4 &&
                      json_integer_value(json_object_get(fo, "timings/prompt_n")) > 0,
                  "%s", fr.body);
        json_decref(fo);
        free(fr.body);
    }
    /* llama.cpp's sampling defaults where the body gives none: what /v1/completions gives with them */
    r = http(url, "/completion", "{\"prompt\":\"Once upon a time\",\"n_predict\":24,\"seed\":7}", NULL);
    resp v1 = http(url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"seed\":7,"
                                          "\"temperature\":0.8,\"top_k\":40,\"top_p\":0.95,\"min_p\":0.05}", NULL);
    o = json_loads(r.body, 0, NULL);
    char *t1 = completion_text(&v1);
    CHECK_MSG(t1 && !strcmp(json_string_value(json_object_get(o, "content")) ?: "-", t1), "%s\n      %s", r.body, v1.body);
    free(t1);
    json_decref(o);
    free(r.body);
    free(v1.body);
    /* several prompts: one result each */
    r = http(url, "/completion", "{\"prompt\":[\"Once upon a time\",\"Lily\"],\"n_predict\":3,\"temperature\":0}", NULL);
    o = json_loads(r.body, 0, NULL);
    CHECK_MSG(json_is_array(o) && json_array_size(o) == 2 &&
                  json_integer_value(json_object_get(json_array_get(o, 1), "index")) == 1,
              "%.300s", r.body);
    json_decref(o);
    free(r.body);
    json_decref(g);
}

/* A server started with args speculates and changes nothing in the output: greedy answers are llama.cpp's golden
 * texts, sampled and JSON-mode ones the same as the default server's (sl_test_proc, no speculation), alone or 8
 * together; tokens were proposed (all of them kept: all_kept). */
static void spec_same_output(char **args, bool all_kept) {
    const char *url = start_default();
    CHECK(url);
    sl_test_proc p;
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    int golden = 0;
    for (int nn = 0; nn < 6; nn++) {
        json_t *g = golden_json(nn);
        json_t *req = json_pack("{s:O,s:i,s:f,s:b}", "prompt", json_object_get(g, "prompt"), "max_tokens", 64,
                                "temperature", 0.0, "ignore_eos", 1);
        char *body = json_dumps(req, 0);
        json_decref(req);
        resp r = http(p.url, "/v1/completions", body, NULL);
        free(body);
        char *text = completion_text(&r);
        golden += text && !strcmp(text, json_string_value(json_object_get(g, "generated_text")));
        free(text);
        free(r.body);
        json_decref(g);
    }
    CHECK_EQ_INT(golden, 6);
    int same = 0;
    for (int i = 0; i < 8; i++) {
        char *body = spec_body(i);
        resp a = http(p.url, "/v1/completions", body, NULL), b = http(url, "/v1/completions", body, NULL);
        char *ta = choice_json(&a), *tb = choice_json(&b);
        if (ta && tb && !strcmp(ta, tb)) same++;
        else fprintf(stderr, "    request %d: with speculation %s\n      without %s\n", i, ta, tb);
        free(ta);
        free(tb);
        free(a.body);
        free(b.body);
        free(body);
    }
    CHECK_EQ_INT(same, 8);
    CHECK_EQ_INT(alone_vs_together_by(p.url, 8, spec_body, choice_json), 8);
    const double drafted = metric(p.url, "shardlm_spec_decode_draft_tokens_total", NULL),
                 accepted = metric(p.url, "shardlm_spec_decode_accepted_tokens_total", NULL);
    fprintf(stderr, "    proposed %.0f tokens, %.0f accepted\n", drafted, accepted);
    CHECK(drafted > 0 && drafted >= accepted && (!all_kept || accepted == drafted));
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
}

TEST(serve_spec_ngram_same_output) {
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--kv-type", "f32", "--spec-ngram", "5", "--spec-max-seqs", "64", NULL};
    spec_same_output(args, false);
}

/* A draft model changes nothing in the output either. The model itself as its draft (its greedy guesses are
 * what greedy decoding picks: each one kept); a random model of the same vocabulary (its guesses fail; in
 * vLLM's --speculative-config form, proposing its K tokens whatever their probability). */
TEST(serve_draft_model_same_output) {
    char *self[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--kv-type", "f32", "-md", MODEL, "--spec-max-seqs", "64",
                    NULL};
    spec_same_output(self, false);
    char path[] = "/tmp/shardlm-draft-XXXXXX";
    CHECK(sl_test_tiny_model(path, MODEL));
    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"model\": \"%s\", \"num_speculative_tokens\": 4, \"disable_by_batch_size\": 64}", path);
    char *other[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--kv-type", "f32", "--speculative-config", cfg, NULL};
    spec_same_output(other, false);
    unlink(path);
}

/* The model itself as its draft: greedy guesses all kept (the same forward pass, batch invariant). */
TEST(serve_draft_model_self_kept) {
    sl_test_proc p;
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "-md", MODEL, "--draft-p-min", "0", NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    resp r = http(p.url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":64,\"temperature\":0,"
                                            "\"ignore_eos\":true}", NULL);
    CHECK_EQ_INT(r.status, 200);
    free(r.body);
    const double drafted = metric(p.url, "shardlm_spec_decode_draft_tokens_total", NULL),
                 accepted = metric(p.url, "shardlm_spec_decode_accepted_tokens_total", NULL);
    /* 16 a step, each kept, and the step's own token: 64 tokens in 4 steps, 59 of them proposed */
    CHECK_MSG(drafted >= 48 && accepted == drafted, "proposed %.0f, kept %.0f", drafted, accepted);
    /* vLLM's names of the same counters */
    const double vd = metric(p.url, "vllm:spec_decode_num_draft_tokens_total", NULL),
                 va = metric(p.url, "vllm:spec_decode_num_accepted_tokens_total", NULL),
                 vn = metric(p.url, "vllm:spec_decode_num_drafts_total", NULL);
    CHECK_MSG(vd == drafted && va == accepted && vn >= 3 && vn <= 8, "vLLM's: %.0f drafts, %.0f tokens, %.0f kept", vn, vd, va);
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
}

/* A draft model of another vocabulary, or bad speculation settings, are refused at start, named. */
TEST(serve_draft_model_refusals) {
    char path[] = "/tmp/shardlm-draft-XXXXXX";
    CHECK(sl_test_tiny_model(path, NULL));
    static const char *const cfgs[] = {"{\"method\": \"eagle\", \"num_speculative_tokens\": 3}", "{\"model\": \"x\"}",
                                       "{\"method\": \"ngram\", \"num_speculative_tokens\": 99}", "[1]"};
    static const char *const why[] = {"eagle", "num_speculative_tokens", "num_speculative_tokens", "JSON object"};
    for (int i = -1; i < 4; i++) {
        char *argv[] = {(char *)sl_test_bin(), "serve", "-m", MODEL, "--port", "0", i < 0 ? "-md" : "--speculative-config",
                        i < 0 ? path : (char *)cfgs[i], NULL};
        char *out = NULL, *err = NULL;
        const int rc = sl_test_run(argv, &out, &err, 20);
        const char *want = i < 0 ? "vocabulary" : why[i];
        CHECK_MSG(rc == 1 && err && strstr(err, want), "%d: exit %d, stderr '%s'", i, rc, err ? err : "");
        free(out);
        free(err);
    }
    unlink(path);
}

/* --kv-mem takes MiB or a share of physical RAM; anything else is refused
 * with the flag named. */
TEST(serve_kv_mem_forms) {
    sl_test_proc p;
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--kv-mem", "1%", NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    int same = alone_vs_together(p.url, 2, body_greedy24);
    CHECK_EQ_INT(same, 2);
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
    const char *bad[] = {"abc", "0%", "101%", "5x", "0", "-3", "20000000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv[] = {(char *)sl_test_bin(), "serve", "-m", MODEL, "--port", "0", "--kv-mem", (char *)bad[i], NULL};
        char *out = NULL, *err = NULL;
        int rc = sl_test_run(argv, &out, &err, 20);
        bool named = err && strstr(err, "--kv-mem");
        CHECK_MSG(rc == 1 && named, "--kv-mem %s: exit %d, stderr '%s'", bad[i], rc, err ? err : "");
        free(out);
        free(err);
    }
}

/* A step must hold a token of every running sequence: a budget below
 * --max-num-seqs is refused naming both flags; without --max-num-batched-tokens
 * the budget follows a larger --max-num-seqs, and the server serves — here
 * with prompts cut into 16-token chunks (--max-prefill-tokens) while others
 * decode, and outputs the same as alone. */
TEST(serve_step_budget_covers_seqs) {
    char *argv[] = {(char *)sl_test_bin(), "serve", "-m", MODEL, "--port", "0", "--max-num-seqs", "200",
                    "--max-num-batched-tokens", "100", NULL};
    char *out = NULL, *err = NULL;
    int rc = sl_test_run(argv, &out, &err, 20);
    bool named = err && strstr(err, "--max-num-batched-tokens 100") && strstr(err, "--max-num-seqs 200");
    CHECK_MSG(rc == 1 && named, "exit %d, stderr '%s'", rc, err ? err : "");
    free(out);
    free(err);
    sl_test_proc p;
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--max-num-seqs", "200", "--max-prefill-tokens",
                    "16", NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    CHECK_EQ_INT(alone_vs_together(p.url, 4, body_greedy24), 4);
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
}

static int raw_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void send_to(int fd, const char *path, const char *body) {
    char head[256];
    int n = snprintf(head, sizeof head,
                     "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n", path,
                     strlen(body));
    if (write(fd, head, (size_t)n) < 0 || write(fd, body, strlen(body)) < 0) return;
}

static void send_request(int fd, const char *body) { send_to(fd, "/v1/completions", body); }

/* A client that disconnects before its first token, or mid-stream, has its
 * request aborted and every block freed. The small Llama (2048 context) makes
 * the streams long enough that they cannot finish before the hang-up is seen. */
TEST(serve_disconnect_frees_blocks) {
    sl_test_proc p;
    char small[256];
    snprintf(small, sizeof small, "%s", sl_test_shared("models/small/small-llama-Q8_0.gguf"));
    char *args[] = {"serve", "-m", small, "--port", "0", "-t", "1", "--kv-mem", "64", NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    const char *body = "{\"prompt\":\"Once\",\"max_tokens\":2000,\"temperature\":0,\"ignore_eos\":true,\"stream\":true}";
    double aborts0 = metric(p.url, "shardlm_requests_finished_total", "reason=\"abort\"");
    /* before the first token: send and close at once */
    int fd = raw_connect(p.port);
    send_request(fd, body);
    close(fd);
    bool freed1 = wait_blocks_free(p.url, 10);
    /* mid-stream: read the first bytes of the stream, then close */
    fd = raw_connect(p.port);
    send_request(fd, body);
    char buf[2048];
    ssize_t got = 0;
    while (fd >= 0 && got < 400) {
        ssize_t k = read(fd, buf, sizeof buf);
        if (k <= 0) break;
        got += k;
    }
    if (fd >= 0) close(fd);
    bool freed2 = wait_blocks_free(p.url, 10);
    double aborts1 = metric(p.url, "shardlm_requests_finished_total", "reason=\"abort\"");
    int rc = sl_test_proc_stop(&p, SIGTERM, 10);
    CHECK_MSG(freed1, "blocks still used after a disconnect before the first token");
    CHECK_MSG(got >= 400, "read %zd bytes of the stream", got);
    CHECK_MSG(freed2, "blocks still used after a disconnect mid-stream");
    CHECK_MSG(aborts1 - aborts0 == 2, "aborted requests went from %g to %g", aborts0, aborts1);
    CHECK_EQ_INT(rc, 0);
}

/* A client that hangs up on a long embeddings request (64 inputs of 1,500 tokens on the small Llama) has its
 * inputs' requests aborted (most of them before they ran) and every block freed. */
TEST(serve_embeddings_disconnect_frees_blocks) {
    sl_test_proc p;
    char small[256];
    snprintf(small, sizeof small, "%s", sl_test_shared("models/small/small-llama-Q8_0.gguf"));
    char *args[] = {"serve", "-m", small, "--port", "0", "-t", "1", "--kv-mem", "64", NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    char *body = malloc(64 * 1500 * 7 + 64), *q = body;
    q += sprintf(q, "{\"input\":[");
    for (int i = 0; i < 64; i++) {
        q += sprintf(q, "%s[1", i ? "," : "");
        for (int t = 1; t < 1500; t++) q += sprintf(q, ",%d", 300 + (i * 7 + t * 13) % 30000);
        q += sprintf(q, "]");
    }
    strcpy(q, "]}");
    const double aborts0 = metric(p.url, "shardlm_requests_finished_total", "reason=\"abort\"");
    int fd = raw_connect(p.port);
    send_to(fd, "/v1/embeddings", body);
    usleep(300000);
    close(fd);
    const bool freed = wait_blocks_free(p.url, 10);
    const double aborts1 = metric(p.url, "shardlm_requests_finished_total", "reason=\"abort\"");
    free(body);
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
    CHECK_MSG(freed, "blocks still used after the client hung up on its embeddings");
    CHECK_MSG(aborts1 - aborts0 >= 32, "aborted requests went from %g to %g", aborts0, aborts1);
}

/* Bad input: the right 4xx naming the field; the server keeps serving. */
TEST(serve_bad_input) {
    const char *url = start_default();
    CHECK(url);
    static const struct {
        const char *path, *body;
        int status;
        const char *param;
    } cases[] = {
        {"/v1/completions", "{bad json", 400, NULL},
        {"/v1/completions", "[1,2]", 400, NULL},
        {"/v1/completions", "{}", 400, "prompt"},
        {"/v1/completions", "{\"prompt\":12}", 400, "prompt"},
        {"/v1/completions", "{\"prompt\":[1, 99999]}", 400, "prompt"},
        {"/v1/completions", "{\"prompt\":[\"a\",[]]}", 400, "prompt"},
        {"/v1/completions", "{\"prompt\":\"x\",\"model\":\"nope\"}", 404, "model"},
        {"/v1/completions", "{\"prompt\":\"x\",\"model\":7}", 400, "model"},
        {"/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":0}", 400, "max_tokens"},
        {"/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":-5}", 400, "max_tokens"}, /* (-1: no limit, as llama.cpp) */
        {"/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":100000}", 400, "max_tokens"},
        {"/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":\"ten\"}", 400, "max_tokens"},
        {"/v1/completions", "{\"prompt\":\"x\",\"temperature\":-1}", 400, "temperature"},
        {"/v1/completions", "{\"prompt\":\"x\",\"temperature\":1e308}", 400, "temperature"},
        {"/v1/completions", "{\"prompt\":\"x\",\"top_p\":0}", 400, "top_p"},
        {"/v1/completions", "{\"prompt\":\"x\",\"top_k\":1.5}", 400, "top_k"},
        {"/v1/completions", "{\"prompt\":\"x\",\"n\":99}", 400, "n"},
        {"/v1/completions", "{\"prompt\":\"x\",\"stop\":5}", 400, "stop"},
        {"/v1/completions", "{\"prompt\":\"x\",\"stream\":\"yes\"}", 400, "stream"},
        {"/v1/completions", "{\"prompt\":\"x\",\"logprobs\":50}", 400, "logprobs"},
        {"/v1/completions", "{\"prompt\":\"x\",\"presence_penalty\":9}", 400, "presence_penalty"},
        {"/v1/completions", "{\"prompt\":\"x\",\"seed\":\"s\"}", 400, "seed"},
        {"/v1/chat/completions", "{\"messages\":\"hi\"}", 400, "messages"},
        {"/v1/chat/completions", "{\"messages\":[]}", 400, "messages"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"king\",\"content\":\"x\"}]}", 400, "messages[0].role"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", 400, "messages[0].content"},
        {"/v1/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":3}", 400,
         "top_logprobs"},
        {"/tokenize", "{\"prompt\":3}", 400, "prompt"},
        {"/detokenize", "{\"tokens\":[1,-4]}", 400, "tokens"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        resp r = http(url, cases[i].path, cases[i].body, NULL);
        json_error_t je;
        json_t *o = json_loads(r.body, 0, &je);
        json_t *err = json_object_get(o, "error");
        json_t *param = json_object_get(err, "param");
        bool ok_param = cases[i].param ? json_is_string(param) && !strcmp(json_string_value(param), cases[i].param)
                                       : json_is_null(param);
        bool ok = r.status == cases[i].status && json_is_string(json_object_get(err, "message")) && ok_param;
        if (!ok) fprintf(stderr, "    case %zu %s %s -> %ld %s\n", i, cases[i].path, cases[i].body, r.status, r.body);
        json_decref(o);
        free(r.body);
        CHECK(ok);
    }
    /* invalid UTF-8 inside a JSON string */
    resp r = http(url, "/v1/completions", "{\"prompt\":\"\xff\xfe\"}", NULL);
    CHECK_EQ_INT(r.status, 400);
    free(r.body);
    /* a prompt longer than the context */
    json_t *arr = json_array();
    for (int i = 0; i < 600; i++) json_array_append_new(arr, json_integer(5));
    json_t *o = json_pack("{s:o}", "prompt", arr);
    char *b = json_dumps(o, 0);
    json_decref(o);
    r = http(url, "/v1/completions", b, NULL);
    free(b);
    CHECK_MSG(r.status == 400 && strstr(r.body, "\"param\":\"prompt\""), "long prompt: %ld %s", r.status, r.body);
    free(r.body);
    /* still serving */
    r = http(url, "/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":3}", NULL);
    CHECK_EQ_INT(r.status, 200);
    free(r.body);
}

static size_t on_header_text(char *p, size_t sz, size_t nm, void *ud) {
    strncat((char *)ud, p, 4095 - strlen((char *)ud) < sz * nm ? 4095 - strlen((char *)ud) : sz * nm);
    return sz * nm;
}

/* A request with method and an Origin header (and a preflight's request headers); its status, its response
 * headers in hdrs (4 KiB). */
static long cors_request(const char *url, const char *method, const char *path, const char *origin, const char *auth,
                         char *hdrs) {
    char full[512], o[256];
    snprintf(full, sizeof full, "%s%s", url, path);
    snprintf(o, sizeof o, "Origin: %s", origin);
    hdrs[0] = '\0';
    CURL *h = curl_easy_init();
    struct curl_slist *hl = curl_slist_append(NULL, o);
    hl = curl_slist_append(hl, "Access-Control-Request-Method: POST");
    hl = curl_slist_append(hl, "Access-Control-Request-Headers: content-type,authorization");
    if (auth) hl = curl_slist_append(hl, auth);
    curl_easy_setopt(h, CURLOPT_URL, full);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_NOBODY, !strcmp(method, "OPTIONS") ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header_text);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    resp sink = {0};
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    long status = 0;
    if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    free(sink.body);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    return status;
}

/* CORS, as vLLM and llama.cpp allow it: a preflight is answered 204 before the key check, with the methods and
 * the headers asked for; answers carry the allowed origin ("*" by default; a listed origin reflected, others
 * none). */
TEST(serve_cors) {
    sl_test_proc p;
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--api-key", "s3cret", "--allowed-origins",
                    "http://a.example, http://b.example", NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    char hdrs[4096];
    long st = cors_request(p.url, "OPTIONS", "/v1/chat/completions", "http://b.example", NULL, hdrs);
    CHECK_MSG(st == 204 && strcasestr(hdrs, "Access-Control-Allow-Origin: http://b.example") &&
                  strcasestr(hdrs, "Access-Control-Allow-Headers: content-type,authorization") &&
                  strcasestr(hdrs, "Access-Control-Allow-Methods: GET, POST"),
              "%ld %s", st, hdrs);
    st = cors_request(p.url, "GET", "/v1/models", "http://a.example", "Authorization: Bearer s3cret", hdrs);
    CHECK_MSG(st == 200 && strcasestr(hdrs, "Access-Control-Allow-Origin: http://a.example") && strcasestr(hdrs, "Vary: Origin"),
              "%ld %s", st, hdrs);
    st = cors_request(p.url, "GET", "/v1/models", "http://evil.example", "Authorization: Bearer s3cret", hdrs);
    CHECK_MSG(st == 200 && !strcasestr(hdrs, "Access-Control-Allow-Origin"), "%ld %s", st, hdrs);
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
    const char *url = start_default(); /* the default: any origin */
    CHECK(url);
    st = cors_request(url, "GET", "/health", "http://x.example", NULL, hdrs);
    CHECK_MSG(st == 200 && strcasestr(hdrs, "Access-Control-Allow-Origin: *"), "%ld %s", st, hdrs);
}

TEST(serve_api_key_and_body_limit) {
    sl_test_proc p;
    char keys[] = "/tmp/shardlm-keys-XXXXXX";
    CHECK(sl_test_temp_file(keys, "f1le-key\n"));
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--api-key", "s3cret,0ther", "--api-key-file", keys,
                    "--max-body-bytes", "2048", NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    /* llama.cpp's several keys (separated by commas) and key file: each accepted, nothing else */
    static const char *const also[] = {"Authorization: Bearer 0ther", "Authorization: Bearer f1le-key", "x-api-key: 0ther"};
    for (int i = 0; i < 3; i++) {
        resp k = http(p.url, "/v1/models", NULL, also[i]);
        CHECK_MSG(k.status == 200, "%s: %ld", also[i], k.status);
        free(k.body);
    }
    static const char *const refused[] = {"Authorization: Bearer s3cret,0ther", "Authorization: Bearer f1le",
                                          "Authorization: Bearer s3cret0ther"};
    for (int i = 0; i < 3; i++) {
        resp k = http(p.url, "/v1/models", NULL, refused[i]);
        CHECK_MSG(k.status == 401, "%s: %ld", refused[i], k.status);
        free(k.body);
    }
    unlink(keys);
    resp r = http(p.url, "/v1/models", NULL, NULL);
    long no_key = r.status;
    free(r.body);
    r = http(p.url, "/v1/models", NULL, "Authorization: Bearer wrong");
    long bad_key = r.status;
    free(r.body);
    r = http(p.url, "/v1/models", NULL, "Authorization: Bearer s3cret");
    long good_key = r.status;
    free(r.body);
    r = http(p.url, "/health", NULL, NULL);
    long health = r.status;
    free(r.body);
    r = http(p.url, "/ready", NULL, NULL);
    long ready = r.status;
    free(r.body);
    char *big = malloc(5000);
    memset(big, ' ', 4999);
    big[4999] = '\0';
    memcpy(big, "{\"prompt\":\"x\"}", 14);
    r = http(p.url, "/v1/completions", big, "Authorization: Bearer s3cret");
    long too_big = r.status;
    free(r.body);
    free(big);
    int rc = sl_test_proc_stop(&p, SIGTERM, 10);
    CHECK_EQ_INT(no_key, 401);
    CHECK_EQ_INT(bad_key, 401);
    CHECK_EQ_INT(good_key, 200);
    CHECK_EQ_INT(health, 200);
    CHECK_EQ_INT(ready, 200);
    CHECK_EQ_INT(too_big, 413);
    CHECK_EQ_INT(rc, 0);
}

/* SIGTERM: /ready goes 503, the running stream finishes, exit status 0. */
TEST(serve_sigterm_drains) {
    sl_test_proc p;
    char small[256];
    snprintf(small, sizeof small, "%s", sl_test_shared("models/small/small-llama-Q8_0.gguf"));
    char *args[] = {"serve", "-m", small, "--port", "0", "-t", "1", "--kv-mem", "64", NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    CURLM *m = curl_multi_init();
    resp rs = {0};
    struct curl_slist *h;
    CURL *e = make_easy(p.url, "/v1/completions",
                        "{\"prompt\":\"Once\",\"max_tokens\":600,\"temperature\":0,\"ignore_eos\":true,\"stream\":true}",
                        NULL, &rs, &h);
    curl_multi_add_handle(m, e);
    int running = 1;
    while (running && rs.n < 200) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 10, NULL);
    }
    kill(p.pid, SIGTERM);
    usleep(30000);
    resp ready = http(p.url, "/ready", NULL, NULL);
    resp gen = http(p.url, "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":2}", NULL);
    double t0 = now_s();
    while (running && now_s() - t0 < 30) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    bool done = rs.body && strstr(rs.body, "data: [DONE]") && strstr(rs.body, "\"finish_reason\":\"length\"");
    int rc = sl_test_proc_stop(&p, SIGTERM, 30);
    curl_multi_remove_handle(m, e);
    curl_easy_cleanup(e);
    curl_slist_free_all(h);
    curl_multi_cleanup(m);
    free(rs.body);
    long rs_ready = ready.status, rs_gen = gen.status;
    free(ready.body);
    free(gen.body);
    CHECK_MSG(rs_ready == 503, "/ready during drain: %ld", rs_ready);
    CHECK_MSG(rs_gen == 503, "new request during drain: %ld", rs_gen);
    CHECK_MSG(done, "the running stream did not finish");
    CHECK_EQ_INT(rc, 0);
}

/* /tokenize: control-token text is that token ("</s>": EOS, id 2 of this vocabulary), as vLLM's tokenizer and
 * llama.cpp read a prompt — completions' prompts too (usage counts it as one token); vLLM's return_token_strs
 * (the vocabulary's strings) and messages (what a chat completion of them counts), llama.cpp's with_pieces. */
TEST(serve_tokenize_forms) {
    const char *url = start_default();
    CHECK(url);
    resp a = http(url, "/tokenize", "{\"prompt\":\"Once upon a time</s>\",\"return_token_strs\":true}", NULL);
    resp b = http(url, "/tokenize", "{\"prompt\":\"Once upon a time\"}", NULL);
    json_t *ja = json_loads(a.body, 0, NULL), *jb = json_loads(b.body, 0, NULL);
    json_t *ta = json_object_get(ja, "tokens"), *tb = json_object_get(jb, "tokens"), *strs = json_object_get(ja, "token_strs");
    const size_t n = json_array_size(tb);
    bool same = n > 1 && json_array_size(ta) == n + 1 && json_array_size(strs) == n + 1 &&
                json_integer_value(json_array_get(ta, n)) == 2 &&
                !strcmp(json_string_value(json_array_get(strs, n)) ?: "", "</s>") &&
                !strcmp(json_string_value(json_array_get(strs, 1)) ?: "", "\xe2\x96\x81Once");
    for (size_t i = 0; same && i < n; i++) same = json_equal(json_array_get(ta, i), json_array_get(tb, i));
    CHECK_MSG(same, "%s\n      %s", a.body, b.body);
    resp c = http(url, "/v1/completions", "{\"prompt\":\"Once upon a time</s>\",\"max_tokens\":1}", NULL);
    CHECK_MSG(usage_field(&c, "prompt_tokens", NULL) == (long long)n + 1, "%s", c.body);
    resp p = http(url, "/tokenize", "{\"content\":\"Once upon a time\",\"with_pieces\":true}", NULL);
    json_t *jp = json_loads(p.body, 0, NULL);
    char joined[256] = "";
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(jp, "tokens"), i, v) {
        CHECK(json_integer_value(json_object_get(v, "id")) == json_integer_value(json_array_get(tb, i)));
        strncat(joined, json_string_value(json_object_get(v, "piece")) ?: "?", sizeof joined - strlen(joined) - 1);
    }
    CHECK_MSG(!strcmp(joined, "<s> Once upon a time"), "pieces: %s", p.body);
    static const char msgs[] = "[{\"role\":\"user\",\"content\":\"Tell me a story about a dog.\"}]";
    char body[256];
    snprintf(body, sizeof body, "{\"messages\":%s}", msgs);
    resp m = http(url, "/tokenize", body, NULL);
    snprintf(body, sizeof body, "{\"messages\":%s,\"max_tokens\":1}", msgs);
    resp cc = http(url, "/v1/chat/completions", body, NULL);
    json_t *jm = json_loads(m.body, 0, NULL);
    CHECK_MSG(m.status == 200 && json_integer_value(json_object_get(jm, "count")) == usage_field(&cc, "prompt_tokens", NULL) &&
                  json_integer_value(json_object_get(jm, "count")) > 8,
              "%s\n      %s", m.body, cc.body);
    json_decref(ja);
    json_decref(jb);
    json_decref(jp);
    json_decref(jm);
    free(a.body);
    free(b.body);
    free(c.body);
    free(p.body);
    free(m.body);
    free(cc.body);
}

/* llama.cpp's GET /props and POST /apply-template, vLLM's /version and /ping: the context, slots, model, BOS and
 * EOS of this vocabulary; the rendered conversation is what a chat completion of it counts. */
TEST(serve_props_and_apply_template) {
    const char *url = start_default();
    CHECK(url);
    resp p = http(url, "/props", NULL, NULL);
    json_t *o = json_loads(p.body, 0, NULL);
    CHECK_MSG(p.status == 200 &&
                  json_integer_value(json_object_get(json_object_get(o, "default_generation_settings"), "n_ctx")) == 512 &&
                  json_integer_value(json_object_get(o, "total_slots")) >= 1 &&
                  !strcmp(json_string_value(json_object_get(o, "model_alias")) ?: "", "stories260K") &&
                  !strcmp(json_string_value(json_object_get(o, "bos_token")) ?: "", "<s>") &&
                  !strcmp(json_string_value(json_object_get(o, "eos_token")) ?: "", "</s>") &&
                  json_string_length(json_object_get(o, "chat_template")) > 0,
              "%.400s", p.body);
    json_decref(o);
    free(p.body);
    static const char msgs[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story about a dog.\"}]";
    char body[256];
    snprintf(body, sizeof body, "%s}", msgs);
    resp a = http(url, "/apply-template", body, NULL);
    json_t *ja = json_loads(a.body, 0, NULL);
    const char *prompt = json_string_value(json_object_get(ja, "prompt"));
    CHECK_MSG(a.status == 200 && prompt && strstr(prompt, "Tell me a story about a dog."), "%s", a.body);
    json_t *tq = json_pack("{s:s}", "prompt", prompt ? prompt : "");
    char *tb = json_dumps(tq, 0);
    resp t = http(url, "/tokenize", tb, NULL);
    snprintf(body, sizeof body, "%s,\"max_tokens\":1}", msgs);
    resp cc = http(url, "/v1/chat/completions", body, NULL);
    json_t *jt = json_loads(t.body, 0, NULL);
    CHECK_MSG(json_integer_value(json_object_get(jt, "count")) == usage_field(&cc, "prompt_tokens", NULL), "%s %s", t.body,
              cc.body);
    resp bad = http(url, "/apply-template", "{\"messages\":3}", NULL);
    CHECK_MSG(bad.status == 400 && strstr(bad.body, "\"param\":\"messages\""), "%s", bad.body);
    resp v = http(url, "/version", NULL, NULL), g = http(url, "/ping", NULL, NULL);
    CHECK_MSG(v.status == 200 && strstr(v.body, "\"version\"") && g.status == 200, "%s", v.body);
    json_decref(ja);
    json_decref(tq);
    json_decref(jt);
    free(tb);
    free(a.body);
    free(t.body);
    free(cc.body);
    free(bad.body);
    free(v.body);
    free(g.body);
}

/* llama.cpp's POST /infill on a model with DeepSeek Coder's vocabulary (its FIM tokens: <｜fim▁begin｜> 32016,
 * <｜fim▁hole｜> 32015, <｜fim▁end｜> 32017; BOS 32013; no repository tokens): the answer is /completion's for
 * the token ids llama.cpp assembles — input_extra chunks, each after its "--- snippet ---" separator, BOS,
 * FIM_PRE, the prefix (its last 1,536 tokens: 3/4 of the 2,048 batch), the prompt, FIM_SUF, the suffix,
 * FIM_MID; a model without FIM tokens answers 501, a body without input_prefix 400. */
static json_t *ids_of(const char *url, const char *text) {
    json_t *q = json_pack("{s:s,s:b}", "prompt", text, "add_special", 0);
    char *b = json_dumps(q, 0);
    resp r = http(url, "/tokenize", b, NULL);
    json_t *o = json_loads(r.body, 0, NULL), *ids = json_incref(json_object_get(o, "tokens"));
    json_decref(o);
    json_decref(q);
    free(b);
    free(r.body);
    return ids;
}

TEST(serve_infill) {
    char model[] = "/tmp/shardlm-fim-XXXXXX";
    CHECK(sl_test_temp_file(model, NULL));
    char *mk[] = {(char *)sl_test_bin(), "mkmodel", "-o", model, "--dim", "64", "--layers", "2", "--heads", "4", "--ffn",
                  "128", "--ctx", "4096", "--type", "F32", "--seed", "3", "--vocab-from",
                  (char *)sl_test_shared("golden/tokenizer/ggml-vocab-deepseek-coder.gguf"), NULL};
    char *out = NULL, *err = NULL;
    CHECK_MSG(mk[19] && sl_test_run(mk, &out, &err, 60) == 0, "mkmodel: %s", err);
    free(out);
    free(err);
    sl_test_proc p;
    char *args[] = {"serve", "-m", model, "--port", "0", "-t", "1", "--kv-mem", "256", NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    static const char *pre = "def add(a, b):\n    ", *suf = "\n\nprint(add(1, 2))\n", *prompt = "return";
    char *long_pre = malloc(40000);
    strcpy(long_pre, "# notes\n");
    for (int i = 0; i < 700; i++) strcat(long_pre, "x = x + 1\n");
    for (int kase = 0; kase < 3 && !sl_test_failed(); kase++) {
        const char *the_pre = kase == 2 ? long_pre : pre;
        json_t *want = json_array();
        if (kase == 1) { /* two chunks of input_extra, before everything */
            static const char *chunks[] = {"import os\n", "X = 1\n"};
            for (int c = 0; c < 2; c++) {
                json_t *sep = ids_of(p.url, "\n\n--- snippet ---\n\n"), *ct = ids_of(p.url, chunks[c]);
                json_array_extend(want, sep);
                json_array_extend(want, ct);
                json_decref(sep);
                json_decref(ct);
            }
        }
        json_t *tp = ids_of(p.url, the_pre), *ts = ids_of(p.url, suf), *tq = ids_of(p.url, prompt);
        json_array_append_new(want, json_integer(32013));
        json_array_append_new(want, json_integer(32016));
        const size_t np = json_array_size(tp), keep = np < 1536 ? np : 1536;
        for (size_t i = np - keep; i < np; i++) json_array_append(want, json_array_get(tp, i));
        json_array_extend(want, tq);
        json_array_append_new(want, json_integer(32015));
        json_array_extend(want, ts);
        json_array_append_new(want, json_integer(32017));
        json_t *cq = json_pack("{s:O,s:i,s:i}", "prompt", want, "n_predict", 8, "temperature", 0);
        json_t *iq = json_pack("{s:s,s:s,s:s,s:i,s:i}", "input_prefix", the_pre, "input_suffix", suf, "prompt", prompt,
                               "n_predict", 8, "temperature", 0);
        if (kase == 1)
            json_object_set_new(iq, "input_extra", json_pack("[{s:s,s:s},{s:s}]", "filename", "a.py", "text", "import os\n",
                                                             "text", "X = 1\n"));
        char *cb = json_dumps(cq, 0), *ib = json_dumps(iq, 0);
        resp cr = http(p.url, "/completion", cb, NULL), ir = http(p.url, "/infill", ib, NULL);
        json_t *co = json_loads(cr.body, 0, NULL), *io = json_loads(ir.body, 0, NULL);
        CHECK_MSG(cr.status == 200 && ir.status == 200 && (kase != 2 || np > 1536), "case %d: %zu prefix tokens", kase, np);
        CHECK_MSG(json_integer_value(json_object_get(io, "tokens_evaluated")) == (json_int_t)json_array_size(want) &&
                      json_equal(json_object_get(io, "content"), json_object_get(co, "content")) &&
                      json_integer_value(json_object_get(io, "tokens_predicted")) == 8,
                  "case %d: %zu ids\n      infill %.300s\n      completion %.300s", kase, json_array_size(want), ir.body,
                  cr.body);
        json_decref(co);
        json_decref(io);
        json_decref(cq);
        json_decref(iq);
        json_decref(tp);
        json_decref(ts);
        json_decref(tq);
        json_decref(want);
        free(cb);
        free(ib);
        free(cr.body);
        free(ir.body);
    }
    free(long_pre);
    /* as llama.vscode asks: its samplers, the infill sampler last (its candidates: what the answer draws from) */
    resp vs = http(p.url, "/infill", "{\"input_prefix\":\"def add(a, b):\\n    \",\"input_suffix\":\"\\n\",\"n_predict\":8,"
                                      "\"top_k\":40,\"top_p\":0.99,\"samplers\":[\"top_k\",\"top_p\",\"infill\"],"
                                      "\"cache_prompt\":true,\"t_max_prompt_ms\":500,\"t_max_predict_ms\":1000}", NULL);
    CHECK_MSG(vs.status == 200 && strstr(vs.body, "\"content\""), "%ld %s", vs.status, vs.body);
    free(vs.body);
    resp bad = http(p.url, "/infill", "{\"input_suffix\":\"x\"}", NULL), bx = http(p.url, "/infill",
                                                                              "{\"input_prefix\":\"\",\"input_suffix\":\"\",\"input_extra\":{}}", NULL);
    CHECK_MSG(bad.status == 400 && strstr(bad.body, "\"param\":\"input_prefix\"") && bx.status == 400 &&
                  strstr(bx.body, "\"param\":\"input_extra\""),
              "%s %s", bad.body, bx.body);
    free(bad.body);
    free(bx.body);
    /* OpenAI's suffix on /v1/completions (DeepSeek's and Mistral's FIM APIs): the prompt before the insertion, the
     * suffix after it — the /infill prompt of the same text, whole and streamed */
    resp oi = http(p.url, "/infill", "{\"input_prefix\":\"def add(a, b):\\n    \",\"input_suffix\":\"\\n\\nprint(add(1, 2))\\n\",\"n_predict\":12,"
                                      "\"temperature\":0}", NULL);
    resp os = http(p.url, "/v1/completions", "{\"prompt\":\"def add(a, b):\\n    \",\"suffix\":\"\\n\\nprint(add(1, 2))\\n\",\"max_tokens\":12,"
                                              "\"temperature\":0}", NULL);
    resp ost = http(p.url, "/v1/completions", "{\"prompt\":\"def add(a, b):\\n    \",\"suffix\":\"\\n\\nprint(add(1, 2))\\n\",\"max_tokens\":12,"
                                               "\"temperature\":0,\"stream\":true}", NULL);
    json_t *oio = json_loads(oi.body, 0, NULL);
    char *ot = completion_text(&os);
    CHECK_MSG(oi.status == 200 && os.status == 200 && ot && json_string_value(json_object_get(oio, "content")) &&
                  !strcmp(ot, json_string_value(json_object_get(oio, "content"))),
              "suffix: %.300s\n      infill: %.300s", os.body, oi.body);
    CHECK_EQ_INT((int)usage_field(&os, "prompt_tokens", NULL), (int)json_integer_value(json_object_get(oio, "tokens_evaluated")));
    answer sa = read_answer(&ost, true, 1);
    const char *st0 = json_string_value(json_array_get(sa.texts, 0));
    CHECK_MSG(st0 && ot && !strcmp(st0, ot), "streamed '%s', whole '%s'", st0 ? st0 : "", ot ? ot : "");
    answer_free(&sa);
    free(ot);
    json_decref(oio);
    free(oi.body);
    free(os.body);
    free(ost.body);
    resp se = http(p.url, "/v1/completions", "{\"prompt\":\"a\",\"suffix\":\"b\",\"echo\":true}", NULL),
         sp = http(p.url, "/v1/completions", "{\"prompt\":[1,2],\"suffix\":\"b\"}", NULL);
    CHECK_MSG(se.status == 400 && strstr(se.body, "\"param\":\"echo\"") && sp.status == 400 &&
                  strstr(sp.body, "\"param\":\"prompt\""),
              "%s %s", se.body, sp.body);
    free(se.body);
    free(sp.body);
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 15), 0);
    unlink(model);
    const char *url = start_default(); /* stories260K: no FIM tokens */
    CHECK(url);
    resp no = http(url, "/infill", "{\"input_prefix\":\"a\",\"input_suffix\":\"b\"}", NULL);
    CHECK_MSG(no.status == 501 && strstr(no.body, "Infill is not supported by this model: prefix token is missing."),
              "%ld %s", no.status, no.body);
    free(no.body);
    no = http(url, "/v1/completions", "{\"prompt\":\"a\",\"suffix\":\"b\"}", NULL);
    CHECK_MSG(no.status == 400 && strstr(no.body, "\"param\":\"suffix\""), "%ld %s", no.status, no.body);
    free(no.body);
}

/* ---- POST /v1/embeddings ------------------------------------------------------ */

/* Vector idx of an embeddings answer (a float array or base64 of float32 little-endian), n floats in *n;
 * NULL when the answer has none. */
static float *embedding_of(const resp *r, int idx, int *n) {
    json_t *o = json_loads(r->body, 0, NULL);
    json_t *v = json_object_get(json_array_get(json_object_get(o, "data"), (size_t)idx), "embedding");
    float *out = NULL;
    *n = 0;
    if (json_is_array(v)) {
        out = malloc(sizeof(float) * (json_array_size(v) + 1));
        for (size_t i = 0; i < json_array_size(v); i++) out[i] = (float)json_number_value(json_array_get(v, i));
        *n = (int)json_array_size(v);
    } else if (json_is_string(v)) { /* base64, decoded here by hand */
        static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char *b = json_string_value(v);
        size_t len = strlen(b), nb = 0;
        unsigned char *bytes = malloc(len + 1);
        uint32_t acc = 0;
        int bits = 0;
        for (size_t i = 0; i < len && b[i] != '='; i++) {
            const char *q = strchr(A, b[i]);
            if (!q) break;
            acc = acc << 6 | (uint32_t)(q - A);
            if ((bits += 6) >= 8) {
                bits -= 8;
                bytes[nb++] = (unsigned char)(acc >> bits);
            }
        }
        out = malloc(nb + sizeof(float));
        for (size_t i = 0; i + 4 <= nb; i += 4) {
            uint32_t u = bytes[i] | (uint32_t)bytes[i + 1] << 8 | (uint32_t)bytes[i + 2] << 16 | (uint32_t)bytes[i + 3] << 24;
            memcpy(&out[i / 4], &u, 4);
        }
        *n = (int)(nb / 4);
        free(bytes);
    }
    json_decref(o);
    return out;
}

/* The embedding of one input (a JSON value) with extra fields (",..." or ""), from server url. */
static float *embed1(const char *url, const char *input, const char *extra, int *n) {
    size_t cap = strlen(input) + strlen(extra) + 64;
    char *body = malloc(cap);
    snprintf(body, cap, "{\"input\":%s%s}", input, extra);
    resp r = http(url, "/v1/embeddings", body, NULL);
    float *v = r.status == 200 ? embedding_of(&r, 0, n) : NULL;
    if (!v) fprintf(stderr, "    embeddings %ld: %.300s\n", r.status, r.body);
    free(body);
    free(r.body);
    return v;
}

/* stories260K's output matrix (n_vocab rows of n_embd), dequantized by the library (F32 in the file). */
static float *output_matrix(int *n_vocab, int *d) {
    sl_model *m = NULL;
    if (sl_model_load(MODEL, &m) != SL_OK) return NULL;
    *n_vocab = m->hp.n_vocab;
    *d = m->hp.n_embd;
    float *w = malloc(sizeof(float) * (size_t)*n_vocab * (size_t)*d);
    for (int v = 0; v < *n_vocab; v++) sl_dequantize_row(m->output.type, sl_tensor_row(&m->output, v), w + (size_t)v * *d, *d);
    sl_model_destroy(m);
    return w;
}

/* max |W e - gold| over the vocabulary, in double. */
static double projection_diff(const float *w, int n_vocab, int d, const float *e, const float *gold) {
    double worst = 0;
    for (int v = 0; v < n_vocab; v++) {
        double acc = 0;
        for (int i = 0; i < d; i++) acc += (double)w[(size_t)v * d + i] * e[i];
        const double diff = fabs(acc - gold[v]);
        if (diff > worst || diff != diff) worst = diff;
    }
    return worst;
}

/* A golden run's token ids as a JSON array: the prompt, then the first k generated ids. */
static char *golden_ids_json(json_t *g, int k) {
    json_t *a = json_deep_copy(json_object_get(g, "prompt_token_ids"));
    for (int i = 0; i < k; i++) json_array_append(a, json_array_get(json_object_get(g, "generated_token_ids"), (size_t)i));
    char *s = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return s;
}

static float *golden_logits0(json_t *g) {
    json_t *a = json_object_get(g, "logits0");
    float *l = malloc(sizeof(float) * (json_array_size(a) + 1));
    for (size_t i = 0; i < json_array_size(a); i++) l[i] = (float)json_number_value(json_array_get(a, i));
    return l;
}

/* Last-token pooling (the default): each golden prompt's embedding, unnormalized, multiplied by the model's
 * output matrix gives llama.cpp's logits after that prompt; as a string or its ids, alone or among the others in
 * one request (the same bits), floats or base64 (the same bits), a prefix-cache hit (the same bits); normalized
 * by default (unit length, the same direction) or as llama.cpp's embd_normalize says; bad input is a 400 naming
 * the field; afterwards every KV block is free again. */
TEST(serve_embeddings) {
    const char *url = start_default();
    CHECK(url);
    int nv = 0, d = 0, n = 0;
    float *w = output_matrix(&nv, &d);
    CHECK(w && nv == 512 && d == 64);
    float *solo[6] = {0};
    char *list_ids = strdup("[");
    for (int nn = 0; nn < 6 && !sl_test_failed(); nn++) {
        json_t *g = golden_json(nn);
        CHECK(g);
        char *ids = golden_ids_json(g, 0), *str = json_dumps(json_object_get(g, "prompt"), JSON_ENCODE_ANY);
        float *gold = golden_logits0(g);
        solo[nn] = embed1(url, ids, ",\"normalize\":false", &n);
        CHECK_MSG(solo[nn] && n == d, "prompt %02d: %d floats", nn, n);
        const double diff = projection_diff(w, nv, d, solo[nn], gold);
        CHECK_MSG(diff <= 1e-4, "prompt %02d: W x embedding differs from llama.cpp's logits by %.3g", nn, diff);
        /* the text (05's is empty: BOS alone) */
        float *again = embed1(url, str, ",\"normalize\":false,\"encoding_format\":\"float\"", &n);
        CHECK_MSG(again && n == d && !memcmp(again, solo[nn], sizeof(float) * (size_t)d), "prompt %02d as text", nn);
        free(again);
        list_ids = realloc(list_ids, strlen(list_ids) + strlen(ids) + 3);
        strcat(strcat(list_ids, nn ? "," : ""), ids);
        free(ids);
        free(str);
        free(gold);
        json_decref(g);
    }
    strcat(list_ids, "]");
    /* all six in one request, as floats or base64: each the bits it had alone, in order; usage counts every token */
    for (int form = 0; form < 2 && !sl_test_failed(); form++) {
        char *body = malloc(strlen(list_ids) + 128);
        sprintf(body, "{\"input\":%s,\"normalize\":false%s}", list_ids, form ? ",\"encoding_format\":\"base64\"" : "");
        resp r = http(url, "/v1/embeddings", body, NULL);
        CHECK_MSG(r.status == 200, "%ld %.300s", r.status, r.body);
        for (int nn = 0; nn < 6; nn++) {
            float *v = embedding_of(&r, nn, &n);
            CHECK_MSG(v && n == d && !memcmp(v, solo[nn], sizeof(float) * (size_t)d), "form %d, input %d", form, nn);
            free(v);
        }
        json_t *o = json_loads(r.body, 0, NULL);
        CHECK_MSG(json_integer_value(json_object_get(json_object_get(o, "usage"), "prompt_tokens")) > 6 &&
                      !strcmp(json_string_value(json_object_get(o, "object")) ?: "", "list") &&
                      !strcmp(json_string_value(json_object_get(o, "model")) ?: "", "stories260K"),
                  "%.300s", r.body);
        json_decref(o);
        free(body);
        free(r.body);
    }
    /* llama.cpp's /embedding (content; [{"index", "embedding": [vector]}]): the same vector as /v1/embeddings */
    {
        resp le = http(url, "/embedding", "{\"content\":\"Once upon a time\",\"embd_normalize\":-1}", NULL);
        json_t *lo = json_loads(le.body, 0, NULL), *v = json_array_get(json_object_get(json_array_get(lo, 0), "embedding"), 0);
        bool same = le.status == 200 && json_array_size(v) == (size_t)d;
        for (int i = 0; same && i < d; i++) same = (float)json_number_value(json_array_get(v, (size_t)i)) == solo[0][i];
        CHECK_MSG(same, "%ld %.300s", le.status, le.body);
        json_decref(lo);
        free(le.body);
    }
    /* normalized (the default): unit length, the same direction; embd_normalize 1 (taxicab): unit L1 */
    float *unit = embed1(url, "\"Once upon a time\"", "", &n);
    float *l1 = embed1(url, "\"Once upon a time\"", ",\"embd_normalize\":1", &n);
    CHECK(unit && l1);
    double len = 0, l1sum = 0, worst = 0;
    for (int i = 0; i < d; i++) len += (double)solo[0][i] * solo[0][i];
    len = sqrt(len);
    for (int i = 0; i < d; i++) {
        worst = fmax(worst, fabs(unit[i] - solo[0][i] / len));
        l1sum += fabs(l1[i]);
    }
    CHECK_MSG(worst < 1e-6 && fabs(l1sum - 1) < 1e-5, "normalized: %.3g off, taxicab norm %.7f", worst, l1sum);
    free(unit);
    free(l1);
    /* a prefix-cache hit (the same 40-token input again): the same bits */
    json_t *g1 = golden_json(1);
    char *long_ids = golden_ids_json(g1, 30);
    const double hits = metric(url, "shardlm_prefix_cache_hits_total", NULL);
    float *a = embed1(url, long_ids, "", &n), *b = embed1(url, long_ids, "", &n);
    CHECK(a && b && !memcmp(a, b, sizeof(float) * (size_t)d));
    CHECK_MSG(metric(url, "shardlm_prefix_cache_hits_total", NULL) > hits, "no prefix-cache hit");
    free(a);
    free(b);
    free(long_ids);
    json_decref(g1);
    /* vLLM's chat form: the conversation as the chat template renders it (no generation prompt unless asked):
     * the state after it gives the logprobs a chat completion of the same conversation starts from */
    {
        static const char msgs[] = "[{\"role\":\"user\",\"content\":\"Tell me a story about a dog.\"}]";
        char body[512];
        snprintf(body, sizeof body, "{\"messages\":%s,\"normalize\":false}", msgs);
        resp er = http(url, "/v1/embeddings", body, NULL);
        float *e = er.status == 200 ? embedding_of(&er, 0, &n) : NULL;
        snprintf(body, sizeof body, "{\"messages\":%s,\"add_generation_prompt\":false,\"max_tokens\":1,"
                 "\"logprobs\":true,\"top_logprobs\":5}", msgs);
        resp cr = http(url, "/v1/chat/completions", body, NULL);
        json_t *co = json_loads(cr.body, 0, NULL);
        json_t *top = json_object_get(json_array_get(json_object_get(json_object_get(json_array_get(
                                                         json_object_get(co, "choices"), 0), "logprobs"), "content"), 0),
                                      "top_logprobs");
        CHECK_MSG(e && n == d && json_array_size(top) == 5 &&
                      usage_field(&er, "prompt_tokens", NULL) == usage_field(&cr, "prompt_tokens", NULL),
                  "embeddings %ld %.200s\n      chat %.300s", er.status, er.body, cr.body);
        double lg[512], mx = -1e300, se = 0;
        for (int v = 0; v < nv; v++) {
            lg[v] = 0;
            for (int i = 0; i < d; i++) lg[v] += (double)w[(size_t)v * d + i] * e[i];
            mx = fmax(mx, lg[v]);
        }
        for (int v = 0; v < nv; v++) se += exp(lg[v] - mx);
        for (size_t k = 0; k < 5; k++) { /* the k-th largest log-softmax value */
            int best = 0;
            for (int v = 1; v < nv; v++) best = lg[v] > lg[best] ? v : best;
            const double want = lg[best] - mx - log(se);
            lg[best] = -1e300;
            const double got = json_number_value(json_object_get(json_array_get(top, k), "logprob"));
            CHECK_MSG(fabs(got - want) < 1e-4, "top logprob %zu: chat %.6f, from the embedding %.6f", k, got, want);
        }
        json_decref(co);
        free(e);
        free(er.body);
        free(cr.body);
        er = http(url, "/v1/embeddings", "{\"input\":\"x\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", NULL);
        CHECK_MSG(er.status == 400 && strstr(er.body, "\"param\":\"messages\""), "%s", er.body);
        free(er.body);
    }
    /* bad input: a 400 naming the field */
    static const struct {
        const char *body, *param;
    } bad[] = {
        {"{}", "input"},
        {"{\"input\":[]}", "input"},
        {"{\"input\":[[1,2],[]]}", "input"},
        {"{\"input\":[1,600]}", "input"},
        {"{\"input\":\"x\",\"encoding_format\":\"hex\"}", "encoding_format"},
        {"{\"input\":\"x\",\"dimensions\":8}", "dimensions"},
        {"{\"input\":\"x\",\"normalize\":1}", "normalize"},
        {"{\"input\":\"x\",\"normalize\":true,\"embd_normalize\":2}", "embd_normalize"},
        {"{\"input\":\"x\",\"add_special_tokens\":\"no\"}", "add_special_tokens"},
        {"{\"input\":\"x\",\"truncate_prompt_tokens\":0}", "truncate_prompt_tokens"},
        {"{\"input\":\"\",\"add_special_tokens\":false}", "input"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        resp r = http(url, "/v1/embeddings", bad[i].body, NULL);
        json_t *o = json_loads(r.body, 0, NULL);
        const char *param = json_string_value(json_object_get(json_object_get(o, "error"), "param"));
        CHECK_MSG(r.status == 400 && param && !strcmp(param, bad[i].param), "%s: %ld %s", bad[i].body, r.status, r.body);
        json_decref(o);
        free(r.body);
    }
    {
        /* too long for the context of 512: refused; cut to its last 512 by truncate_prompt_tokens -1: served */
        char *big = malloc(8 * 600 + 64), *q = big;
        q += sprintf(q, "[1");
        for (int i = 1; i < 600; i++) q += sprintf(q, ",%d", 100 + i % 300);
        strcpy(q, "]");
        int nb = 0;
        float *v = embed1(url, big, "", &nb);
        CHECK(!v);
        v = embed1(url, big, ",\"truncate_prompt_tokens\":-1", &nb);
        CHECK(v && nb == d);
        free(v);
        free(big);
    }
    resp r = http(url, "/v1/embeddings", "{\"input\":\"x\",\"model\":\"other\"}", NULL);
    CHECK_EQ_INT(r.status, 404);
    free(r.body);
    /* (the gauges are published at the end of the scheduler's step, after the answer may have gone) */
    CHECK_MSG(wait_blocks_free(url, 10), "KV blocks still used after the embeddings");
    for (int nn = 0; nn < 6; nn++) free(solo[nn]);
    free(list_ids);
    free(w);
}

/* Odd requests embeddings of the six golden prompts (the step's rows that want hidden states only, beside
 * others that want logits), even ones greedy completions of 300 tokens: together, each gives what it gives alone
 * (the completions' text, the embeddings' bits). */
static const char *mixed_path(int i) { return i % 2 ? "/v1/embeddings" : "/v1/completions"; }
static char *mixed_body(int i) {
    if (i % 2 == 0) return body_greedy300(i / 2);
    char *s = strdup("{\"normalize\":false,\"input\":[");
    for (int nn = 0; nn < 6; nn++) {
        json_t *g = golden_json((nn + i) % 6);
        char *ids = golden_ids_json(g, 3 * i);
        s = realloc(s, strlen(s) + strlen(ids) + 8);
        strcat(strcat(s, nn ? "," : ""), ids);
        free(ids);
        json_decref(g);
    }
    return strcat(s, "]}");
}
static char *mixed_key(const resp *r) {
    json_t *o = json_loads(r->body, 0, NULL), *data = json_object_get(o, "data");
    char *k = data ? json_dumps(data, JSON_COMPACT) : completion_text(r);
    json_decref(o);
    return k;
}

/* SageMaker's POST /invocations (as vLLM routes it): a chat body answers as /v1/chat/completions (whole and
 * streamed), a prompt as /v1/completions, an input as /v1/embeddings, the same texts and vectors; a body of none
 * of them is a 400 that lists what it takes. */
TEST(serve_invocations) {
    const char *url = start_default();
    CHECK(url);
    static const char *const bodies[][2] = {
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"max_tokens\":24,\"temperature\":0}",
         "/v1/chat/completions"},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"max_tokens\":24,\"temperature\":0,"
         "\"stream\":true}",
         "/v1/chat/completions"},
        {"{\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0}", "/v1/completions"},
        {"{\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0,\"stream\":true}", "/v1/completions"}};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        const bool stream = strstr(bodies[i][0], "stream") != NULL;
        resp a = http(url, bodies[i][1], bodies[i][0], NULL), b = http(url, "/invocations", bodies[i][0], NULL);
        CHECK_EQ_INT(b.status, 200);
        answer x = read_answer(&a, stream, 1), y = read_answer(&b, stream, 1);
        const char *tx = json_string_value(json_array_get(x.texts, 0)), *ty = json_string_value(json_array_get(y.texts, 0));
        CHECK_MSG(tx && ty && *tx && !strcmp(tx, ty), "%s: '%s' against '%s'", bodies[i][0], ty, tx);
        answer_free(&x);
        answer_free(&y);
    }
    int n1 = 0, n2 = 0;
    float *e1 = embed1(url, "\"Once upon a time\"", "", &n1);
    resp r = http(url, "/invocations", "{\"input\":\"Once upon a time\"}", NULL);
    float *e2 = r.status == 200 ? embedding_of(&r, 0, &n2) : NULL;
    free(r.body);
    CHECK(e1 && e2 && n1 == 64 && n2 == 64 && !memcmp(e1, e2, sizeof(float) * 64));
    free(e1);
    free(e2);
    static const char *const bad[] = {"{\"foo\":1}", "[1]", "nope", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = http(url, "/invocations", bad[i], NULL);
        CHECK_MSG(r.status == 400 && strstr(r.body, "POST /invocations takes"), "%s: %ld %s", bad[i], r.status, r.body);
        free(r.body);
    }
}

/* Matryoshka embeddings (vLLM's --hf-overrides): `dimensions` keeps the first that many of the pooled state (checked
 * against llama.cpp's logits through the output matrix), then normalizes them: the cut of the unnormalized
 * embedding scaled to unit length in double (within 1e-6), or its bits with "normalize": false; only the listed
 * sizes, never more than the model has; a model not declared Matryoshka is not cut; bad settings stop the server
 * naming them. */
TEST(serve_embeddings_matryoshka) {
    sl_test_proc p;
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--kv-type", "f32", "--hf-overrides",
                    "{\"matryoshka_dimensions\":[16,32]}", NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    int nv = 0, d = 0, n = 0;
    float *w = output_matrix(&nv, &d);
    CHECK(w && d == 64);
    for (int nn = 0; nn < 3 && !sl_test_failed(); nn++) {
        json_t *g = golden_json(nn);
        CHECK(g);
        char *ids = golden_ids_json(g, 0);
        float *gold = golden_logits0(g), *full = embed1(p.url, ids, ",\"normalize\":false", &n);
        CHECK_MSG(full && n == d && projection_diff(w, nv, d, full, gold) <= 1e-4, "prompt %02d: the whole embedding", nn);
        for (int dim = 16; dim <= 32; dim += 16) {
            char extra[64];
            snprintf(extra, sizeof extra, ",\"dimensions\":%d", dim);
            float *cut = embed1(p.url, ids, extra, &n);
            CHECK_MSG(cut && n == dim, "prompt %02d, %d dimensions: %d floats", nn, dim, n);
            double ss = 0, worst = 0;
            for (int i = 0; i < dim; i++) ss += (double)full[i] * full[i];
            for (int i = 0; i < dim; i++) worst = fmax(worst, fabs(cut[i] - full[i] / sqrt(ss)));
            CHECK_MSG(worst <= 1e-6, "prompt %02d, %d dimensions: %.3g from the cut normalized", nn, dim, worst);
            free(cut);
            snprintf(extra, sizeof extra, ",\"dimensions\":%d,\"normalize\":false", dim);
            cut = embed1(p.url, ids, extra, &n);
            CHECK_MSG(cut && n == dim && !memcmp(cut, full, sizeof(float) * (size_t)dim), "prompt %02d, %d unnormalized", nn, dim);
            free(cut);
        }
        free(full);
        free(gold);
        free(ids);
        json_decref(g);
    }
    static const char *const bad[] = {",\"dimensions\":24", ",\"dimensions\":65", ",\"dimensions\":0", ",\"dimensions\":\"16\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"input\":\"Hello\"%s}", bad[i]);
        resp r = http(p.url, "/v1/embeddings", body, NULL);
        CHECK_MSG(r.status == 400 && strstr(r.body, "\"param\":\"dimensions\""), "%s: %ld %s", body, r.status, r.body);
        free(r.body);
    }
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
    free(w);
    const char *url = start_default(); /* (not declared Matryoshka: the whole size only) */
    CHECK(url);
    resp r = http(url, "/v1/embeddings", "{\"input\":\"Hello\",\"dimensions\":16}", NULL);
    CHECK_MSG(r.status == 400 && strstr(r.body, "is_matryoshka"), "%ld %s", r.status, r.body);
    free(r.body);
    float *all = embed1(url, "\"Hello\"", ",\"dimensions\":64", &n);
    CHECK(all && n == 64);
    free(all);
    static const char *const settings[][2] = {{"{\"foo\":1}", "'foo'"},
                                              {"{\"matryoshka_dimensions\":[100]}", "matryoshka_dimensions[0]"},
                                              {"{\"is_matryoshka\":1}", "is_matryoshka"},
                                              {"[1", "not a JSON object"}};
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        char *argv[] = {(char *)sl_test_bin(), "serve", "-m", MODEL, "--port", "0", "--hf-overrides", (char *)settings[i][0], NULL};
        char *out = NULL, *err = NULL;
        const int rc = sl_test_run(argv, &out, &err, 30);
        CHECK_MSG(rc != 0 && err && strstr(err, "--hf-overrides") && strstr(err, settings[i][1]), "%s: rc %d, %s", settings[i][0],
                  rc, err ? err : "");
        free(out);
        free(err);
    }
}

TEST(serve_embeddings_beside_completions) {
    const char *url = start_default();
    CHECK(url);
    CHECK_EQ_INT(alone_vs_together_at(url, 16, mixed_path, mixed_body, mixed_key), 16);
}

/* Mean, CLS and no pooling (--pooling), on servers of their own. Mean: n times the mean of a golden sequence's
 * states, less n - 1 times its prefix's (asked first, so its blocks sit in the prefix cache), is the last
 * state, which gives llama.cpp's logits there — every position was computed, none taken from the cache
 * (measured: within 2e-5 at n = 70). CLS: the first position's (BOS) state, whatever follows: llama.cpp's
 * logits after BOS alone (golden 05). None: llama.cpp's /embedding gives every token's vector, each giving
 * llama.cpp's logits at its position; OpenAI's endpoint refuses it as llama.cpp does. */
TEST(serve_embeddings_mean_and_cls_pooling) {
    int nv = 0, d = 0, n = 0;
    float *w = output_matrix(&nv, &d);
    CHECK(w);
    json_t *g = golden_json(1), *g5 = golden_json(5);
    CHECK(g && g5);
    const char *txt = sl_test_shared("golden/stories260K/main.01.logits_all.txt");
    char *all = txt ? sl_test_read_file(txt, NULL) : NULL;
    CHECK(all);
    float *logits_all = malloc(sizeof(float) * 64 * 512);
    char *q = all;
    for (int i = 0; i < 64 * 512; i++) logits_all[i] = strtof(q, &q);
    free(all);
    const int n_prompt = (int)json_array_size(json_object_get(g, "prompt_token_ids"));
    static const char *const modes[] = {"mean", "cls", "none"};
    for (int mode = 0; mode < 3 && !sl_test_failed(); mode++) {
        sl_test_proc p;
        char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--kv-type", "f32", "--pooling",
                        (char *)modes[mode], NULL};
        CHECK(sl_test_proc_start(&p, args, 20) == 0);
        if (mode == 0) {
            static const int ks[] = {5, 30, 60};
            for (int i = 0; i < 3; i++) {
                const int k = ks[i];
                char *shorter = golden_ids_json(g, k - 1), *longer = golden_ids_json(g, k);
                float *es = embed1(p.url, shorter, ",\"normalize\":false", &n);
                float *el = embed1(p.url, longer, ",\"normalize\":false", &n);
                CHECK(es && el && n == d);
                float *last = malloc(sizeof(float) * (size_t)d);
                const int len = n_prompt + k;
                for (int j = 0; j < d; j++) last[j] = (float)((double)el[j] * len - (double)es[j] * (len - 1));
                const double diff = projection_diff(w, nv, d, last, logits_all + (size_t)k * 512);
                CHECK_MSG(diff <= 2e-4, "mean pooling, %d generated ids: the last state differs from llama.cpp's by %.3g",
                          k, diff);
                free(last);
                free(es);
                free(el);
                free(shorter);
                free(longer);
            }
        } else if (mode == 2) { /* every token's vector (llama.cpp's /embedding): each gives llama.cpp's logits there */
            char *ids = golden_ids_json(g, 30), body[2048];
            snprintf(body, sizeof body, "{\"content\":%s}", ids);
            resp r = http(p.url, "/embedding", body, NULL);
            json_t *o = json_loads(r.body, 0, NULL), *rows = json_object_get(json_array_get(o, 0), "embedding");
            CHECK_MSG(r.status == 200 && json_array_size(rows) == (size_t)(n_prompt + 30), "%ld %.300s", r.status, r.body);
            float *row = malloc(sizeof(float) * (size_t)d);
            double worst = 0;
            for (int k = 0; k <= 30 && json_array_size(rows) == (size_t)(n_prompt + 30); k++) {
                json_t *jr = json_array_get(rows, (size_t)(n_prompt - 1 + k));
                for (int j = 0; j < d; j++) row[j] = (float)json_number_value(json_array_get(jr, (size_t)j));
                worst = fmax(worst, projection_diff(w, nv, d, row, logits_all + (size_t)k * 512));
            }
            CHECK_MSG(worst <= 1e-4, "pooling none: a token's vector differs from llama.cpp's logits by %.3g", worst);
            free(row);
            json_decref(o);
            free(r.body);
            free(ids);
            r = http(p.url, "/v1/embeddings", "{\"input\":\"x\"}", NULL); /* (not OpenAI's: llama.cpp's refusal) */
            CHECK_MSG(r.status == 400 && strstr(r.body, "not OAI compatible"), "%ld %s", r.status, r.body);
            free(r.body);
        } else {
            float *gold = golden_logits0(g5);
            char *ids = golden_ids_json(g, 20);
            float *e = embed1(p.url, ids, ",\"normalize\":false", &n);
            CHECK(e && n == d);
            const double diff = projection_diff(w, nv, d, e, gold);
            CHECK_MSG(diff <= 1e-4, "CLS pooling: differs from llama.cpp's logits after BOS by %.3g", diff);
            free(e);
            free(ids);
            free(gold);
        }
        CHECK_MSG(wait_blocks_free(p.url, 10), "KV blocks still used");
        CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 15), 0);
    }
    free(logits_all);
    json_decref(g);
    json_decref(g5);
    free(w);
}

/* ---- rerankers ---------------------------------------------------------------------------------------- */

/* Row 0 of a small model's float64 reference logits (after the golden prompt). */
static float *ref_row0(const char *name, int nn) {
    char rel[128];
    snprintf(rel, sizeof rel, "golden/small/%s.%02d.ref_f64.f32", name, nn);
    const char *path = sl_test_shared(rel);
    FILE *f = path ? fopen(path, "rb") : NULL;
    float *l = malloc(sizeof(float) * 32000);
    if (!f || fread(l, sizeof(float), 32000, f) != 32000) {
        free(l);
        l = NULL;
    }
    if (f) fclose(f);
    return l;
}

static json_t *small_golden(const char *name, int nn) {
    char rel[128];
    snprintf(rel, sizeof rel, "golden/small/%s.%02d.json", name, nn);
    const char *p = sl_test_shared(rel);
    json_error_t je;
    return p ? json_load_file(p, 0, &je) : NULL;
}

/* The token of l (32000 logits) nearest in logit to token a (another one). */
static int nearest_logit(const float *l, int a) {
    int best = a == 0 ? 1 : 0;
    for (int v = 0; v < 32000; v++)
        if (v != a && fabs(l[v] - l[a]) < fabs(l[best] - l[a])) best = v;
    return best;
}

/* POST path body; the answer as JSON (status in *status). */
static json_t *post_json(const char *url, const char *path, const char *body, long *status) {
    resp r = http(url, path, body, NULL);
    *status = r.status;
    json_t *o = json_loads(r.body, 0, NULL);
    if (!o) fprintf(stderr, "    %s %ld: %.300s\n", path, r.status, r.body);
    free(r.body);
    return o;
}

/* A Qwen3 reranker (last position, softmax over the head's outputs), its head two of the output rows: a pair's
 * score is softmax(l[a], l[b])[0] of the logits after the pair's prompt, which for the pairs below are the
 * golden prompts' — checked against the float64 reference logits on the reference path (F32 activations),
 * through /score (1:1, 1:N, N:N), /rerank (ranked, top_n, documents; TEI's form) and with a rerank template
 * (the same tokens, the same scores); a server without --reranking answers 501; bad input 400. */
TEST(serve_rerank_qwen3) {
    static const char *const name = "small-qwen3-Q8_0";
    json_t *g0 = small_golden(name, 0), *g1 = small_golden(name, 1);
    float *l0 = ref_row0(name, 0), *l1 = ref_row0(name, 1);
    CHECK(g0 && g1 && l0 && l1);
    const int a = (int)json_integer_value(json_array_get(json_object_get(g1, "generated_token_ids"), 0)),
              b = nearest_logit(l1, a);
    const double want1 = 1.0 / (1.0 + exp((double)l1[b] - l1[a])), want0 = 1.0 / (1.0 + exp((double)l0[b] - l0[a]));
    printf("    tokens %d, %d: scores %.6f (prompt 01), %.6f (prompt 00)\n", a, b, want1, want0);
    const char *src = sl_test_shared("models/small/small-qwen3-Q8_0.gguf");
    char plain[] = "/tmp/shardlm-rerank-XXXXXX", tpl[] = "/tmp/shardlm-rerank-tpl-XXXXXX";
    CHECK(src && make_reranker(src, plain, a, b, NULL) && make_reranker(src, tpl, a, b, "<s>{query} {document}"));
    setenv("SHARDLM_KERNELS", "reference", 1);
    for (int file = 0; file < 2 && !sl_test_failed(); file++) {
        sl_test_proc p;
        char *args[] = {"serve", "-m", file ? tpl : plain, "--port", "0", "-t", "1", "--kv-mem", "64", "--kv-type", "f32",
                        "--ctx-size", "256", file ? "--pooling" : "--reranking", file ? "rank" : NULL, NULL};
        CHECK(sl_test_proc_start(&p, args, 30) == 0);
        long st;
        if (file == 0) { /* the pairs' prompts are the golden prompts: BOS, the query's tokens, the document's */
            resp r = http(p.url, "/tokenize", "{\"content\":\"The quick brown fox\"}", NULL);
            json_t *qo = json_loads(r.body, 0, NULL), *q = json_object_get(qo, "tokens");
            free(r.body);
            r = http(p.url, "/tokenize", "{\"content\":\"jumps over the lazy dog. It\",\"add_special\":false}", NULL);
            json_t *ddo = json_loads(r.body, 0, NULL), *dd = json_object_get(ddo, "tokens");
            free(r.body);
            json_t *want = json_object_get(g1, "prompt_token_ids");
            CHECK(json_array_size(q) + json_array_size(dd) == json_array_size(want));
            for (size_t i = 0; i < json_array_size(want) && !sl_test_failed(); i++)
                CHECK_EQ_INT((int)json_integer_value(json_array_get(i < json_array_size(q) ? q : dd,
                                                                    i < json_array_size(q) ? i : i - json_array_size(q))),
                             (int)json_integer_value(json_array_get(want, i)));
            json_decref(qo);
            json_decref(ddo);
        }
        /* /score N:N */
        json_t *o = post_json(p.url, "/v1/score",
                              "{\"text_1\":[\"The quick brown fox\",\"Once upon\"],\"text_2\":[\"jumps over the lazy dog. It\","
                              "\"a time\"]}", &st);
        CHECK_EQ_INT((int)st, 200);
        json_t *data = json_object_get(o, "data");
        CHECK_EQ_INT((int)json_array_size(data), 2);
        const double s1 = json_number_value(json_object_get(json_array_get(data, 0), "score")),
                     s0 = json_number_value(json_object_get(json_array_get(data, 1), "score"));
        printf("    %s: scores %.6f, %.6f\n", file ? "with a rerank template" : "no template", s1, s0);
        CHECK_MSG(fabs(s1 - want1) < 1e-3 && fabs(s0 - want0) < 1e-3, "scores %.6f %.6f, want %.6f %.6f", s1, s0, want1, want0);
        CHECK_STR(json_string_value(json_object_get(json_array_get(data, 0), "object")) ?: "", "score");
        CHECK_EQ_INT((int)json_integer_value(json_object_get(json_object_get(o, "usage"), "prompt_tokens")),
                     (int)(json_array_size(json_object_get(g1, "prompt_token_ids")) +
                           json_array_size(json_object_get(g0, "prompt_token_ids"))));
        CHECK(!strncmp(json_string_value(json_object_get(o, "id")) ?: "", "score-", 6));
        json_decref(o);
        /* vLLM's /classify: the golden prompts through the head, its outputs' softmax, the likelier label */
        o = post_json(p.url, "/classify", "{\"input\":[\"The quick brown fox jumps over the lazy dog. It\",\"Once upon a time\"]}",
                      &st);
        CHECK_EQ_INT((int)st, 200);
        for (int k = 0; k < 2 && !sl_test_failed(); k++) {
            json_t *x = json_array_get(json_object_get(o, "data"), (size_t)k), *pr = json_object_get(x, "probs");
            const double w = k == 0 ? want1 : want0;
            CHECK_MSG(json_array_size(pr) == 2 && fabs(json_number_value(json_array_get(pr, 0)) - w) < 1e-3 &&
                          fabs(json_number_value(json_array_get(pr, 1)) - (1 - w)) < 1e-3 &&
                          json_integer_value(json_object_get(x, "num_classes")) == 2 &&
                          !strcmp(json_string_value(json_object_get(x, "label")) ?: "", "yes"),
                      "classify %d: %s", k, json_dumps(x, JSON_COMPACT));
        }
        /* SageMaker's /invocations: a ranking server classifies an input, scores text_1 / text_2 */
        static const char *const inv_bodies[][2] = {
            {"{\"input\":[\"The quick brown fox jumps over the lazy dog. It\",\"Once upon a time\"]}", "/classify"},
            {"{\"text_1\":\"The quick brown fox\",\"text_2\":[\"jumps over the lazy dog. It\",\"a time\"]}", "/score"}};
        for (int k = 0; k < 2 && !sl_test_failed(); k++) {
            long st2;
            json_t *direct = post_json(p.url, inv_bodies[k][1], inv_bodies[k][0], &st), *inv = post_json(p.url, "/invocations", inv_bodies[k][0], &st2);
            CHECK_MSG(st == 200 && st2 == 200 && json_equal(json_object_get(direct, "data"), json_object_get(inv, "data")),
                      "/invocations as %s: %ld %s", inv_bodies[k][1], st2, json_dumps(inv, JSON_COMPACT));
            json_decref(direct);
            json_decref(inv);
        }
        json_decref(o);
        /* /rerank: the golden pair among others, ranked, each score that pair's /score (1:N) */
        o = post_json(p.url, "/score",
                      "{\"text_1\":\"The quick brown fox\",\"text_2\":[\"is red\",\"jumps over the lazy dog. It\",\"sleeps\"]}",
                      &st);
        CHECK_EQ_INT((int)st, 200);
        double by_score[3];
        for (int i = 0; i < 3; i++) by_score[i] = json_number_value(json_object_get(json_array_get(json_object_get(o, "data"), (size_t)i), "score"));
        CHECK_MSG(fabs(by_score[1] - want1) < 1e-3, "1:N score %.6f, want %.6f", by_score[1], want1);
        json_decref(o);
        o = post_json(p.url, "/v1/rerank",
                      "{\"query\":\"The quick brown fox\",\"documents\":[\"is red\",{\"text\":\"jumps over the lazy dog. "
                      "It\"},\"sleeps\"],\"top_n\":2}", &st);
        CHECK_EQ_INT((int)st, 200);
        json_t *res = json_object_get(o, "results");
        CHECK_EQ_INT((int)json_array_size(res), 2);
        int order[3] = {0, 1, 2};
        for (int i = 0; i < 3; i++)
            for (int j = i + 1; j < 3; j++)
                if (by_score[order[j]] > by_score[order[i]]) {
                    int t = order[i];
                    order[i] = order[j];
                    order[j] = t;
                }
        static const char *const docs[] = {"is red", "jumps over the lazy dog. It", "sleeps"};
        for (int k = 0; k < 2 && !sl_test_failed(); k++) {
            json_t *x = json_array_get(res, (size_t)k);
            CHECK_EQ_INT((int)json_integer_value(json_object_get(x, "index")), order[k]);
            CHECK(fabs(json_number_value(json_object_get(x, "relevance_score")) - by_score[order[k]]) < 1e-6);
            CHECK_STR(json_string_value(json_object_get(json_object_get(x, "document"), "text")) ?: "", docs[order[k]]);
        }
        json_decref(o);
        /* cutting: the golden pair's document with more after it, cut back to the golden pair (its score) by
         * vLLM's truncate_prompt_tokens (the pair's length) and Cohere's max_tokens_per_doc (the document's) */
        {
            static const char *const more = "jumps over the lazy dog. It was a sunny day, and the fox ran home.";
            o = post_json(p.url, "/score", "{\"text_1\":\"The quick brown fox\",\"text_2\":\"jumps over the lazy dog. It\"}", &st);
            const int L = (int)json_integer_value(json_object_get(json_object_get(o, "usage"), "prompt_tokens"));
            json_decref(o);
            resp r = http(p.url, "/tokenize", "{\"content\":\"jumps over the lazy dog. It\",\"add_special\":false}", NULL);
            json_t *to = json_loads(r.body ? r.body : "", 0, NULL);
            const int D = (int)json_array_size(json_object_get(to, "tokens"));
            json_decref(to);
            free(r.body);
            CHECK(L > D && D > 3);
            char body[1024];
            snprintf(body, sizeof body, "{\"text_1\":\"The quick brown fox\",\"text_2\":\"%s\",\"truncate_prompt_tokens\":%d}",
                     more, L);
            o = post_json(p.url, "/score", body, &st);
            CHECK_EQ_INT((int)st, 200);
            double sc = json_number_value(json_object_get(json_array_get(json_object_get(o, "data"), 0), "score"));
            CHECK_MSG(fabs(sc - want1) < 1e-3, "cut to %d tokens: score %.6f, want %.6f", L, sc, want1);
            CHECK_EQ_INT((int)json_integer_value(json_object_get(json_object_get(o, "usage"), "prompt_tokens")), L);
            json_decref(o);
            snprintf(body, sizeof body, "{\"query\":\"The quick brown fox\",\"documents\":[\"%s\"],\"max_tokens_per_doc\":%d}",
                     more, D);
            o = post_json(p.url, "/v1/rerank", body, &st);
            CHECK_EQ_INT((int)st, 200);
            json_t *x = json_array_get(json_object_get(o, "results"), 0);
            sc = json_number_value(json_object_get(x, "relevance_score"));
            CHECK_MSG(fabs(sc - want1) < 1e-3, "document cut to %d tokens: score %.6f, want %.6f", D, sc, want1);
            CHECK_STR(json_string_value(json_object_get(json_object_get(x, "document"), "text")) ?: "", more); /* (as sent) */
            json_decref(o);
            /* longer than the context: refused, or cut to the context (vLLM's -1, TEI's truncate) */
            sl_strbuf big = {0};
            sl_strbuf_printf(&big, "{\"query\":\"The quick brown fox\",\"texts\":[\"");
            for (int i = 0; i < 60; i++) sl_strbuf_printf(&big, "It was a sunny day. ");
            sl_strbuf_printf(&big, "\"]");
            o = post_json(p.url, "/rerank", big.p, &st);
            CHECK_EQ_INT((int)st, 400);
            json_decref(o);
            sl_strbuf_printf(&big, ",\"truncate\":true}");
            o = post_json(p.url, "/rerank", big.p, &st);
            CHECK_MSG(st == 200 && json_array_size(o) == 1, "TEI truncate: %ld", st);
            json_decref(o);
            big.p[big.n - strlen(",\"truncate\":true}")] = '\0';
            char *sb = NULL;
            CHECK(asprintf(&sb, "{\"text_1\":\"The quick brown fox\",\"text_2\":%s,\"truncate_prompt_tokens\":-1}",
                           strstr(big.p, "[\"It")) > 0);
            o = post_json(p.url, "/score", sb, &st);
            CHECK_EQ_INT((int)st, 200);
            resp m = http(p.url, "/v1/models", NULL, NULL);
            json_t *mo = json_loads(m.body ? m.body : "", 0, NULL);
            const json_int_t n_ctx = json_integer_value(json_object_get(json_array_get(json_object_get(mo, "data"), 0), "max_model_len"));
            CHECK_MSG(n_ctx > 0 && json_integer_value(json_object_get(json_object_get(o, "usage"), "prompt_tokens")) == n_ctx,
                      "cut to the context (%lld): %s", (long long)n_ctx, json_dumps(json_object_get(o, "usage"), 0));
            json_decref(mo);
            free(m.body);
            free(sb);
            free(big.p);
            json_decref(o);
        }
        /* llama.cpp's TEI form */
        o = post_json(p.url, "/rerank", "{\"query\":\"The quick brown fox\",\"texts\":[\"sleeps\",\"jumps over the lazy dog. It\"],"
                                       "\"return_text\":true}", &st);
        CHECK_EQ_INT((int)st, 200);
        CHECK(json_is_array(o) && json_array_size(o) == 2);
        for (size_t k = 0; k < json_array_size(o); k++) {
            json_t *x = json_array_get(o, k);
            const int idx = (int)json_integer_value(json_object_get(x, "index"));
            CHECK(fabs(json_number_value(json_object_get(x, "score")) - by_score[idx == 0 ? 2 : 1]) < 1e-6);
            CHECK_STR(json_string_value(json_object_get(x, "text")) ?: "", idx == 0 ? "sleeps" : "jumps over the lazy dog. It");
        }
        json_decref(o);
        /* bad input: 400 naming the field; embeddings are not what this server does */
        static const struct {
            const char *path, *body, *param;
        } bad[] = {{"/rerank", "{\"documents\":[\"a\"]}", "query"},
                   {"/rerank", "{\"query\":\"q\",\"documents\":[]}", "documents"},
                   {"/rerank", "{\"query\":\"q\",\"documents\":[1]}", "documents"},
                   {"/rerank", "{\"query\":\"q\",\"documents\":[\"a\"],\"top_n\":-1}", "top_n"},
                   {"/score", "{\"text_1\":[\"a\",\"b\"],\"text_2\":[\"a\",\"b\",\"c\"]}", "text_2"},
                   {"/score", "{\"text_1\":\"a\"}", "text_2"},
                   {"/score", "{\"text_1\":\"a\",\"text_2\":\"b\",\"truncate_prompt_tokens\":0}", "truncate_prompt_tokens"},
                   {"/score", "{\"text_1\":\"a\",\"text_2\":\"b\",\"truncate_prompt_tokens\":99999999}", "truncate_prompt_tokens"},
                   {"/score", "{\"text_1\":\"The quick brown fox jumps\",\"text_2\":\"b\",\"truncate_prompt_tokens\":3}",
                    "truncate_prompt_tokens"},
                   {"/rerank", "{\"query\":\"q\",\"documents\":[\"a\"],\"max_tokens_per_doc\":0}", "max_tokens_per_doc"},
                   {"/rerank", "{\"query\":\"q\",\"documents\":[\"a\"],\"truncate\":1}", "truncate"}};
        for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
            o = post_json(p.url, bad[k].path, bad[k].body, &st);
            CHECK_MSG(st == 400, "%s %s: %ld", bad[k].path, bad[k].body, st);
            CHECK_STR(json_string_value(json_object_get(json_object_get(o, "error"), "param")) ?: "", bad[k].param);
            json_decref(o);
        }
        o = post_json(p.url, "/v1/embeddings", "{\"input\":\"a\"}", &st);
        CHECK_EQ_INT((int)st, 400);
        json_decref(o);
        CHECK_MSG(wait_blocks_free(p.url, 10), "KV blocks still used");
        CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 15), 0);
    }
    unsetenv("SHARDLM_KERNELS");
    unlink(plain);
    unlink(tpl);
    /* a server without a reranker: llama.cpp's 501 */
    const char *url = start_default();
    CHECK(url);
    long st;
    json_t *o = post_json(url, "/rerank", "{\"query\":\"q\",\"documents\":[\"a\"]}", &st);
    CHECK_EQ_INT((int)st, 501);
    json_decref(o);
    free(l0);
    free(l1);
    json_decref(g0);
    json_decref(g1);
}

/* A Llama-architecture reranker reads the first position (llama.cpp's rank pooling for all but Qwen3), and its
 * score is the head's raw first output: for every pair, stories260K's logit of token a after BOS (golden
 * prompt 05). */
TEST(serve_rerank_first_position) {
    json_t *g5 = golden_json(5);
    CHECK(g5);
    float *l = golden_logits0(g5);
    const int a = 42, b = 7;
    char model[] = "/tmp/shardlm-rerank-llama-XXXXXX";
    CHECK(make_reranker(MODEL, model, a, b, NULL));
    sl_test_proc p;
    char *args[] = {"serve", "-m", model, "--port", "0", "-t", "1", "--kv-mem", "32", "--kv-type", "f32", NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0); /* (rank from the file's pooling_type) */
    long st;
    json_t *o = post_json(p.url, "/reranking", "{\"query\":\"Once upon a time\",\"documents\":[\"there was a dog\",\"Lily\"]}", &st);
    CHECK_EQ_INT((int)st, 200);
    json_t *res = json_object_get(o, "results");
    CHECK_EQ_INT((int)json_array_size(res), 2);
    for (size_t k = 0; k < json_array_size(res); k++) {
        const double s = json_number_value(json_object_get(json_array_get(res, k), "relevance_score"));
        CHECK_MSG(fabs(s - l[a]) < 1e-4, "score %.6f, llama.cpp's logit %.6f", s, (double)l[a]);
    }
    CHECK_EQ_INT((int)json_integer_value(json_object_get(json_array_get(res, 0), "index")), 0); /* (a tie: in order) */
    json_decref(o);
    /* shardlm embed --pooling rank: the head's two outputs, raw */
    char *emb[] = {(char *)sl_test_bin(), "embed", "-m", model, "-p", "Once upon a time", "--pooling", "rank", "--json", NULL};
    char *out = NULL, *err = NULL;
    CHECK_MSG(sl_test_run(emb, &out, &err, 60) == 0, "embed: %s", err);
    json_t *e = json_loads(out ? out : "", 0, NULL);
    json_t *v = json_object_get(json_array_get(json_object_get(e, "data"), 0), "embedding");
    CHECK_EQ_INT((int)json_array_size(v), 2);
    CHECK(fabs(json_number_value(json_array_get(v, 0)) - l[a]) < 1e-4 && fabs(json_number_value(json_array_get(v, 1)) - l[b]) < 1e-4);
    json_decref(e);
    free(out);
    free(err);
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 15), 0);
    unlink(model);
    free(l);
    json_decref(g5);
}

/* The access log: one line per request on stderr (a generation's with its id, tokens, finish and
 * times; none for a health check that succeeds), and the stats line while requests come. */
TEST(serve_access_log_and_stats) {
    char log[] = "/tmp/shardlm-access-XXXXXX";
    CHECK(sl_test_temp_file(log, NULL));
    sl_test_proc p;
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--no-access-log=0", "--stats-interval", "1", NULL};
    CHECK_MSG(sl_test_proc_start_log(&p, args, 20, log) == 0, "server did not start");
    resp r;
    static const char *const probes[] = {"/health", "/ready", "/metrics"}; /* (what routers and Prometheus poll) */
    for (int i = 0; i < 3; i++) {
        r = http(p.url, probes[i], NULL, NULL);
        CHECK_EQ_INT(r.status, 200);
        free(r.body);
    }
    r = http(p.url, "/v1/chat/completions",
             "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":5,\"temperature\":0}", NULL);
    CHECK_EQ_INT(r.status, 200);
    json_t *o = json_loads(r.body ? r.body : "", 0, NULL);
    char id[128];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(o, "id")) ?: "?");
    json_decref(o);
    free(r.body);
    r = http(p.url, "/v1/completions", "{\"prompt\":", NULL);
    CHECK_EQ_INT(r.status, 400);
    free(r.body);
    r = http(p.url, "/nope", NULL, NULL);
    CHECK_EQ_INT(r.status, 404);
    free(r.body);
    char *all = NULL;
    for (double t0 = now_s(); now_s() - t0 < 10;) { /* the stats line comes within the next interval */
        free(all);
        all = sl_test_read_file(log, NULL);
        if (all && strstr(all, "generation ")) break;
        usleep(100000);
    }
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 15), 0);
    free(all);
    all = sl_test_read_file(log, NULL);
    CHECK(all);
    char want[256];
    snprintf(want, sizeof want, "POST /v1/chat/completions %s prompt ", id);
    const char *line = all ? strstr(all, want) : NULL;
    CHECK_MSG(line, "no line for %s in:\n%s", id, all);
    const char *eol = line ? strchr(line, '\n') : NULL;
    CHECK_MSG(line && eol && strstr(line, "completion 5, length, first token ") < eol && strstr(line, " ms, total ") < eol,
              "%s", line);
    CHECK_MSG(all && strstr(all, "POST /v1/completions 400 "), "%s", all);
    CHECK_MSG(all && strstr(all, "GET /nope 404 "), "%s", all);
    CHECK_MSG(all && !strstr(all, "GET /health") && !strstr(all, "GET /ready") && !strstr(all, "GET /metrics"), "%s", all);
    const char *st = all ? strstr(all, "shardlm serve: prompt ") : NULL;
    CHECK_MSG(st && strstr(st, " tokens/s, generation ") && strstr(st, "KV cache ") && strstr(st, "prefix cache hits "),
              "%s", all);
    free(all);
    unlink(log);
}

/* --host as vLLM and llama.cpp take it: a name (localhost), and where this machine has IPv6, :: (both
 * families: IPv4 clients too) and [::1]. */
TEST(serve_host_forms) {
    sl_test_proc p;
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--host", "localhost", NULL};
    CHECK_MSG(sl_test_proc_start(&p, args, 20) == 0, "--host localhost");
    resp r = http(p.url, "/health", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    free(r.body);
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    const bool v6 = fd >= 0 && bind(fd, (struct sockaddr *)&a6, sizeof a6) == 0;
    if (fd >= 0) close(fd);
    if (!v6) {
        printf("    (no IPv6 on this machine: :: and [::1] not tried)\n");
        return;
    }
    char *args6[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--host", "::", NULL};
    CHECK_MSG(sl_test_proc_start(&p, args6, 20) == 0, "--host ::");
    char u6[64];
    snprintf(u6, sizeof u6, "http://[::1]:%d", p.port);
    r = http(p.url, "/health", NULL, NULL); /* (127.0.0.1) */
    CHECK_EQ_INT(r.status, 200);
    free(r.body);
    r = http(u6, "/v1/models", NULL, NULL);
    CHECK_EQ_INT(r.status, 200);
    free(r.body);
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
}

/* --enable-ssl-refresh (vLLM's): a renewed key and certificate, swapped into the files as a secret volume swaps
 * them, reach new connections within seconds; a broken file leaves the ones before in use, said on stderr. */
TEST(serve_ssl_refresh) {
    char ka[] = "/tmp/shardlm-key-XXXXXX", ca[] = "/tmp/shardlm-cert-XXXXXX", kb[] = "/tmp/shardlm-key-XXXXXX",
         cb[] = "/tmp/shardlm-cert-XXXXXX", key[] = "/tmp/shardlm-key-XXXXXX", cert[] = "/tmp/shardlm-cert-XXXXXX",
         log[] = "/tmp/shardlm-log-XXXXXX";
    CHECK(tls_refresh_files(ka, ca, kb, cb, key, cert, log));
    sl_test_proc p;
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--ssl-keyfile", key, "--ssl-certfile", cert,
                    "--enable-ssl-refresh", NULL};
    CHECK(sl_test_proc_start_log(&p, args, 20, log) == 0);
    char why[128] = "";
    CHECK_MSG(tls_refresh_works(p.url, ca, kb, cb, key, cert, why, sizeof why), "%s", why);
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
    char *err = sl_read_file(log, NULL);
    CHECK_MSG(err && strstr(err, "not a PEM file") && strstr(err, "stay in use") && strstr(err, "new connections get them"),
              "%s", err ? err : "");
    free(err);
    const char *files[] = {ka, ca, kb, cb, key, cert, log};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(files[i]);
}

/* --enable-ssl-refresh with --ssl-ca-certs (vLLM refreshes the CA file too): client certificates are checked
 * against the CAs of the file as it is now — a renewed CA file takes over within seconds, a broken one leaves the
 * CAs before in use. */
TEST(serve_ssl_refresh_client_ca) {
    char key[] = "/tmp/shardlm-key-XXXXXX", cert[] = "/tmp/shardlm-cert-XXXXXX", kb[] = "/tmp/shardlm-key-XXXXXX",
         cb[] = "/tmp/shardlm-cert-XXXXXX", cas[] = "/tmp/shardlm-ca-XXXXXX", log[] = "/tmp/shardlm-log-XXXXXX";
    CHECK(tls_make_cert(key, cert) && tls_make_cert(kb, cb) && sl_test_temp_file(cas, NULL) &&
          sl_test_temp_file(log, NULL) && tls_replace(cas, cert, NULL));
    sl_test_proc p;
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--ssl-keyfile", key, "--ssl-certfile", cert,
                    "--ssl-ca-certs", cas, "--enable-ssl-refresh", NULL};
    CHECK(sl_test_proc_start_log(&p, args, 20, log) == 0);
    tls_ca = cert;
    long st[2]; /* the status with the first CA's client certificate, and with the second's */
    const char *certs[2][2] = {{key, cert}, {kb, cb}};
#define BOTH()                                                                                                         \
    for (int w = 0; w < 2; w++) {                                                                                      \
        tls_key = certs[w][0];                                                                                         \
        tls_cert = certs[w][1];                                                                                        \
        resp rr = http(p.url, "/v1/models", NULL, NULL);                                                               \
        st[w] = rr.status;                                                                                             \
        free(rr.body);                                                                                                 \
    }
    BOTH();
    CHECK_MSG(st[0] == 200 && st[1] == 403, "the first CA: %ld, the second: %ld", st[0], st[1]);
    CHECK(tls_replace(cas, NULL, "not a certificate\n"));
    usleep(1500 * 1000);
    BOTH();
    CHECK_MSG(st[0] == 200 && st[1] == 403, "after a broken CA file: %ld, %ld", st[0], st[1]);
    CHECK(tls_replace(cas, cb, NULL));
    for (int i = 0; i < 50 && !(st[0] == 403 && st[1] == 200); i++) {
        usleep(100 * 1000);
        BOTH();
    }
    CHECK_MSG(st[0] == 403 && st[1] == 200, "the renewed CA file: the first CA's %ld, the second's %ld", st[0], st[1]);
#undef BOTH
    tls_cert = tls_key = tls_ca = NULL;
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
    char *err = sl_read_file(log, NULL);
    CHECK_MSG(err && strstr(err, "not a PEM file") && strstr(err, "the CAs before stay in use") &&
                  strstr(err, "client certificates are checked against its CAs"),
              "%s", err ? err : "");
    free(err);
    const char *files[] = {key, cert, kb, cb, cas, log};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(files[i]);
}

/* HTTPS (vLLM's --ssl-keyfile / --ssl-certfile, llama.cpp's --ssl-key-file / --ssl-cert-file): a client that
 * verifies the certificate gets the same greedy text as over plain HTTP, streamed too; plain HTTP to it fails;
 * a key that is not the certificate's, or a file without a key, is refused by name. */
TEST(serve_https) {
    char key[] = "/tmp/shardlm-key-XXXXXX", cert[] = "/tmp/shardlm-cert-XXXXXX";
    CHECK(tls_make_cert(key, cert));
    const char *url = start_default();
    CHECK(url);
    static const char body[] = "{\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0}";
    resp plain = http(url, "/v1/completions", body, NULL);
    sl_test_proc p;
    char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--kv-type", "f32", "--ssl-keyfile", key,
                    "--ssl-cert-file", cert, NULL};
    CHECK(sl_test_proc_start(&p, args, 20) == 0);
    CHECK_MSG(!strncmp(p.url, "https://", 8), "%s", p.url);
    tls_ca = cert;
    resp r = http(p.url, "/v1/completions", body, NULL);
    CHECK_EQ_INT(r.status, 200);
    json_t *a = json_loads(plain.body ? plain.body : "", 0, NULL), *b = json_loads(r.body ? r.body : "", 0, NULL);
    const char *ta = json_string_value(json_object_get(json_array_get(json_object_get(a, "choices"), 0), "text"));
    const char *tb = json_string_value(json_object_get(json_array_get(json_object_get(b, "choices"), 0), "text"));
    CHECK_MSG(ta && tb && !strcmp(ta, tb) && strlen(ta) > 10, "%s | %s", plain.body, r.body);
    free(r.body);
    r = http(p.url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0,\"stream\":true}", NULL);
    CHECK_MSG(r.status == 200 && strstr(r.body, "data: [DONE]"), "%ld %s", r.status, r.body);
    free(r.body);
    tls_ca = NULL;
    { /* shardlm loadgen against it, with the CA (curl's --cacert) */
        char *lg[] = {(char *)sl_test_bin(), "loadgen", "--url", p.url, "--cacert", cert, "-c", "2", "-n", "4", "--max-tokens", "8",
                      "--prompt-tokens", "16", "--json", "-q", NULL};
        char *out = NULL, *err = NULL;
        const int rc = sl_test_run(lg, &out, &err, 60);
        json_t *o = json_loads(out ? out : "", 0, NULL);
        CHECK_MSG(rc == 0 && json_integer_value(json_object_get(o, "completed")) == 4, "loadgen rc %d: %s %s", rc, out, err);
        json_decref(o);
        free(out);
        free(err);
    }
    char purl[64];
    snprintf(purl, sizeof purl, "http://127.0.0.1:%d", p.port);
    r = http(purl, "/health", NULL, NULL);
    CHECK_MSG(r.status != 200, "plain HTTP answered %ld", r.status);
    free(r.body);
    r = http(p.url, "/health", NULL, NULL); /* (a certificate the system does not trust) */
    CHECK_MSG(r.status != 200, "an untrusted certificate answered %ld", r.status);
    free(r.body);
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
    json_decref(a);
    json_decref(b);
    free(plain.body);
    /* mutual TLS (vLLM's --ssl-ca-certs): a client certificate of that CA is required: 403 without one or with
     * another's, served with it */
    char *margs[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--ssl-keyfile", key, "--ssl-certfile", cert,
                     "--ssl-ca-certs", cert, NULL};
    CHECK(sl_test_proc_start(&p, margs, 20) == 0);
    tls_ca = cert;
    r = http(p.url, "/v1/models", NULL, NULL);
    CHECK_MSG(r.status == 403 && strstr(r.body, "client certificate"), "%ld %s", r.status, r.body);
    free(r.body);
    tls_cert = cert;
    tls_key = key;
    r = http(p.url, "/v1/models", NULL, NULL);
    CHECK_MSG(r.status == 200, "%ld %s", r.status, r.body);
    free(r.body);
    char stranger_key[] = "/tmp/shardlm-key-XXXXXX", stranger_cert[] = "/tmp/shardlm-cert-XXXXXX";
    CHECK(tls_make_cert(stranger_key, stranger_cert));
    tls_cert = stranger_cert;
    tls_key = stranger_key;
    r = http(p.url, "/v1/models", NULL, NULL);
    CHECK_MSG(r.status == 403, "another CA's client certificate: %ld %s", r.status, r.body);
    free(r.body);
    tls_cert = tls_key = tls_ca = NULL;
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
    /* --ssl-cert-reqs 1 (vLLM's CERT_OPTIONAL): no certificate passes, a wrong one does not */
    char *oargs[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--ssl-keyfile", key, "--ssl-certfile", cert,
                     "--ssl-ca-certs", cert, "--ssl-cert-reqs", "1", NULL};
    CHECK(sl_test_proc_start(&p, oargs, 20) == 0);
    tls_ca = cert;
    r = http(p.url, "/v1/models", NULL, NULL);
    CHECK_MSG(r.status == 200, "optional, none sent: %ld %s", r.status, r.body);
    free(r.body);
    tls_cert = stranger_cert;
    tls_key = stranger_key;
    r = http(p.url, "/v1/models", NULL, NULL);
    CHECK_MSG(r.status == 403, "optional, another CA's sent: %ld %s", r.status, r.body);
    free(r.body);
    tls_cert = tls_key = tls_ca = NULL;
    CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
    unlink(stranger_key);
    unlink(stranger_cert);
    /* refused by name */
    char other_key[] = "/tmp/shardlm-key-XXXXXX", other_cert[] = "/tmp/shardlm-cert-XXXXXX";
    CHECK(tls_make_cert(other_key, other_cert));
    static const struct {
        int k, c;
        const char *want;
    } bad[] = {{0, 3, "is not the key of"}, {1, 1, "no unencrypted private key"}, {0, 0, "no certificate"}, {0, -1, "both"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *files[] = {key, cert, other_key, other_cert};
        char *cmd[16] = {(char *)sl_test_bin(), "serve", "-m", MODEL, "--port", "0", "--ssl-keyfile", (char *)files[bad[i].k]};
        int n = 8;
        if (bad[i].c >= 0) {
            cmd[n++] = "--ssl-certfile";
            cmd[n++] = (char *)files[bad[i].c];
        }
        cmd[n] = NULL;
        char *out = NULL, *err = NULL;
        const int rc = sl_test_run(cmd, &out, &err, 30);
        CHECK_MSG(rc != 0 && err && strstr(err, bad[i].want), "case %zu: rc %d: %s", i, rc, err ? err : "");
        free(out);
        free(err);
    }
    unlink(key);
    unlink(cert);
    unlink(other_key);
    unlink(other_cert);
}

/* ---- beam search ---- */

/* A beam of the test's own beam search. */
typedef struct rbeam {
    int ids[64];
    int n;
    double cum, score;
    double end_lp; /* an ended beam's ending token's log probability (in cum, not an output token's) */
    bool ended;
    long order;
} rbeam;

typedef struct ralt {
    int id;
    double lp;
} ralt;

static int rbeam_cmp(const void *a, const void *b) {
    const rbeam *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* vLLM's beam search written out here, each step's alternatives asked of the engine (/v1/completions with
 * logprobs: the log probabilities of its raw logits, checked against llama.cpp elsewhere): w beams, their score
 * cum / (prompt + output tokens)^lp, token 2 (stories260K's end of text) ends a beam. */
static int ref_beam_search(const char *url, json_t *prompt, int w, int max_tokens, double lp, rbeam *out) {
    rbeam live[10] = {{.n = 0}}, ended[512], next[200];
    int n_live = 1, n_ended = 0;
    long order = 0;
    const int np = (int)json_array_size(prompt);
    for (int step = 0; step < max_tokens && n_live > 0; step++) {
        int n_next = 0;
        for (int b = 0; b < n_live; b++) {
            json_t *ids = json_deep_copy(prompt);
            for (int i = 0; i < live[b].n; i++) json_array_append_new(ids, json_integer(live[b].ids[i]));
            json_t *req = json_pack("{s:o,s:i,s:i,s:i,s:b}", "prompt", ids, "max_tokens", 1, "temperature", 0, "logprobs",
                                    2 * w, "return_tokens_as_token_ids", 1);
            char *body = json_dumps(req, JSON_COMPACT);
            long st;
            json_t *o = post_json(url, "/v1/completions", body, &st);
            free(body);
            json_decref(req);
            json_t *top = json_array_get(json_object_get(json_object_get(json_array_get(json_object_get(o, "choices"), 0),
                                                                         "logprobs"), "top_logprobs"), 0);
            ralt alt[20];
            int n_alt = 0;
            const char *key;
            json_t *v;
            json_object_foreach(top, key, v) if (n_alt < 20) alt[n_alt++] = (ralt){atoi(key + 9), json_number_value(v)};
            for (int i = 1; i < n_alt; i++) /* most likely first (insertion: ties keep the answer's order) */
                for (int j = i; j > 0 && alt[j].lp > alt[j - 1].lp; j--) {
                    ralt t = alt[j];
                    alt[j] = alt[j - 1];
                    alt[j - 1] = t;
                }
            json_decref(o);
            for (int a = 0; a < n_alt; a++) {
                const bool eos = alt[a].id == 2;
                rbeam *to = eos ? &ended[n_ended++] : &next[n_next++];
                *to = live[b];
                if (!eos) to->ids[to->n++] = alt[a].id;
                to->cum = live[b].cum + alt[a].lp;
                to->end_lp = eos ? alt[a].lp : 0;
                to->ended = eos;
                to->order = order++;
                to->score = to->cum / pow(np + to->n, lp);
            }
        }
        qsort(next, (size_t)n_next, sizeof *next, rbeam_cmp);
        n_live = n_next < w ? n_next : w;
        memcpy(live, next, sizeof *live * (size_t)n_live);
    }
    for (int b = 0; b < n_live; b++) {
        ended[n_ended] = live[b];
        ended[n_ended++].order = order++;
    }
    qsort(ended, (size_t)n_ended, sizeof *ended, rbeam_cmp);
    const int n = n_ended < w ? n_ended : w;
    memcpy(out, ended, sizeof *out * (size_t)n);
    return n;
}

/* vLLM's use_beam_search: one beam is greedy decoding (llama.cpp's golden text, ignore_eos over its 64 tokens);
 * three beams are the test's own beam search over the engine's step-by-step log probabilities (the same ids, in
 * the same order, the same finish reasons), with length_penalty 1 and 0.3; chat gives n choices, streamed as
 * whole; fields a beam search does not take are 400s. */
TEST(serve_beam_search) {
    const char *url = start_default();
    CHECK(url);
    for (int nn = 0; nn < 5 && !sl_test_failed(); nn++) {
        json_t *g = golden_json(nn);
        CHECK(g);
        json_t *req = json_pack("{s:O,s:i,s:b,s:b,s:i}", "prompt", json_object_get(g, "prompt_token_ids"), "max_tokens",
                                (int)json_array_size(json_object_get(g, "generated_token_ids")), "use_beam_search", 1,
                                "ignore_eos", 1, "n", 1);
        char *body = json_dumps(req, JSON_COMPACT);
        resp r = http(url, "/v1/completions", body, NULL);
        char *text = completion_text(&r);
        CHECK_MSG(r.status == 200 && text && !strcmp(text, json_string_value(json_object_get(g, "generated_text"))),
                  "prompt %02d: %ld '%s'", nn, r.status, text ? text : r.body);
        free(text);
        free(r.body);
        free(body);
        json_decref(req);
        json_decref(g);
    }
    /* several beams, on a small random model whose end of text (id 2) is often among the alternatives, so
     * beams end at different lengths and the length penalty decides between them */
    char model[] = "/tmp/shardlm-beam-XXXXXX", *why;
    static const char *const shape[] = {"--dim", "64", "--layers", "2", "--heads", "4", "--ffn", "128", "--vocab", "260",
                                        "--ctx", "512", "--type", "F32", NULL};
    CHECK_MSG(mk_model(model, shape, &why), "mkmodel: %s", why);
    sl_test_proc tiny;
    char *targs[] = {"serve", "-m", model, "--port", "0", "-t", "1", "--kv-type", "f32", NULL};
    CHECK(sl_test_proc_start(&tiny, targs, 20) == 0);
    json_t *prompt = json_pack("[i,i,i,i]", 1, 5, 9, 12);
    static const struct {
        int w;
        double lp;
    } runs[] = {{3, 1.0}, {3, 0.3}, {3, 2.0}, {6, 1.0}, {6, 0.3}};
    int stops = 0, lengths = 0;
    for (size_t k = 0; k < sizeof runs / sizeof runs[0] && !sl_test_failed(); k++) {
        rbeam want[10];
        const int n_want = ref_beam_search(tiny.url, prompt, runs[k].w, 40, runs[k].lp, want);
        json_t *req = json_pack("{s:O,s:i,s:b,s:i,s:f,s:b,s:i}", "prompt", prompt, "max_tokens", 40, "use_beam_search", 1,
                                "n", runs[k].w, "length_penalty", runs[k].lp, "return_token_ids", 1, "logprobs", 2);
        char *body = json_dumps(req, JSON_COMPACT);
        long st;
        json_t *o = post_json(tiny.url, "/v1/completions", body, &st);
        json_t *choices = json_object_get(o, "choices");
        CHECK_MSG(st == 200 && (int)json_array_size(choices) == n_want && n_want == runs[k].w, "%ld: %d choices, %d beams",
                  st, (int)json_array_size(choices), n_want);
        for (int b = 0; b < n_want && !sl_test_failed(); b++) {
            json_t *ch = json_array_get(choices, (size_t)b), *ids = json_object_get(ch, "token_ids");
            bool same = (int)json_array_size(ids) == want[b].n &&
                        !strcmp(json_string_value(json_object_get(ch, "finish_reason")) ?: "", want[b].ended ? "stop" : "length");
            for (int i = 0; same && i < want[b].n; i++) same = json_integer_value(json_array_get(ids, (size_t)i)) == want[b].ids[i];
            CHECK_MSG(same, "width %d, length_penalty %.1f, beam %d: %s (want %d tokens, %s)", runs[k].w, runs[k].lp, b,
                      json_dumps(ch, JSON_COMPACT), want[b].n, want[b].ended ? "stop" : "length");
            /* its logprobs: one per output token, 2 alternatives each, summing to the beam's own (the ending
             * token's left out, as its text leaves it out) */
            json_t *lps = json_object_get(json_object_get(ch, "logprobs"), "token_logprobs");
            double sum = 0;
            size_t i;
            json_t *v;
            json_array_foreach(lps, i, v) sum += json_number_value(v);
            CHECK_MSG((int)json_array_size(lps) == want[b].n &&
                          json_object_size(json_array_get(json_object_get(json_object_get(ch, "logprobs"), "top_logprobs"), 0)) == 2 &&
                          fabs(sum - (want[b].cum - want[b].end_lp)) < 1e-4 * (1 + fabs(sum)),
                      "beam %d: %zu logprobs summing to %.6f, want %d summing to %.6f", b, json_array_size(lps), sum,
                      want[b].n, want[b].cum - want[b].end_lp);
            stops += want[b].ended;
            lengths += !want[b].ended;
        }
        json_decref(o);
        free(body);
        json_decref(req);
    }
    CHECK_MSG(stops > 0 && lengths > 0, "the runs ended %d beams and ran %d to the limit: both should happen", stops, lengths);
    json_decref(prompt);
    CHECK_EQ_INT(sl_test_proc_stop(&tiny, SIGTERM, 10), 0);
    unlink(model);
    /* chat: n choices, the stream's the same texts */
    static const char chat[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"max_tokens\":16,"
                               "\"use_beam_search\":true,\"n\":2%s}";
    char b1[256], b2[256];
    snprintf(b1, sizeof b1, chat, "");
    snprintf(b2, sizeof b2, chat, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    resp r1 = http(url, "/v1/chat/completions", b1, NULL), r2 = http(url, "/v1/chat/completions", b2, NULL);
    CHECK(r1.status == 200 && r2.status == 200 && strstr(r2.body, "data: [DONE]"));
    answer a1 = read_answer(&r1, false, 2), a2 = read_answer(&r2, true, 2);
    CHECK(json_equal(a1.texts, a2.texts) && json_string_length(json_array_get(a1.texts, 0)) > 0 && a1.np == a2.np &&
          a1.nc == a2.nc && a1.nc > 0);
    answer_free(&a1);
    answer_free(&a2);
    /* logprobs with one beam: the greedy answer's own (the same tokens, log probabilities and alternatives) */
    resp gl = http(url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0,"
                                           "\"ignore_eos\":true,\"logprobs\":3}", NULL),
         bl = http(url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"use_beam_search\":true,"
                                           "\"n\":1,\"ignore_eos\":true,\"logprobs\":3}", NULL);
    json_t *glo = json_loads(gl.body, 0, NULL), *blo = json_loads(bl.body, 0, NULL);
    json_t *glp = json_object_get(json_array_get(json_object_get(glo, "choices"), 0), "logprobs"),
           *blp = json_object_get(json_array_get(json_object_get(blo, "choices"), 0), "logprobs");
    CHECK_MSG(json_array_size(json_object_get(glp, "tokens")) == 12 && json_equal(glp, blp), "greedy %s\n      beam %s",
              gl.body, bl.body);
    json_decref(glo);
    json_decref(blo);
    free(gl.body);
    free(bl.body);
    static const char *const bad[][2] = {{",\"prompt_logprobs\":1", "prompt_logprobs"}, {",\"stop\":[\".\"]", "stop"},
                                         {",\"n\":11", "n"}, {",\"response_format\":{\"type\":\"json_object\"}", "response_format"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[256], want_param[64];
        snprintf(body, sizeof body, "{\"prompt\":\"Once\",\"use_beam_search\":true,\"max_tokens\":4%s}", bad[i][0]);
        snprintf(want_param, sizeof want_param, "\"param\":\"%s\"", bad[i][1]);
        resp r = http(url, "/v1/completions", body, NULL);
        CHECK_MSG(r.status == 400 && strstr(r.body, want_param), "%s: %ld %s", body, r.status, r.body);
        free(r.body);
    }
}

TEST(zz_stop_server) {
    if (!server_up) return;
    int rc = sl_test_proc_stop(&server, SIGTERM, 15);
    server_up = false;
    CHECK_EQ_INT(rc, 0);
}

/* OpenAI's allowed_tools tool choice: with mode "required" the call is to one of the allowed functions (two
 * declared, one allowed: its enum arguments), in the Chat Completions form and the Responses one; "auto" answers;
 * an undeclared name and a bad mode are 400s naming tool_choice. */
TEST(serve_allowed_tools) {
    const char *url = start_default();
    CHECK(url);
    static const char tools[] =
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\","
        "\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}},{\"type\":\"function\",\"function\":"
        "{\"name\":\"get_time\",\"parameters\":{\"type\":\"object\",\"properties\":{\"zone\":{\"type\":\"string\",\"enum\":"
        "[\"utc\",\"cet\"]}},\"required\":[\"zone\"]}}}]";
    static const char *const choices[] = {
        "{\"type\":\"allowed_tools\",\"allowed_tools\":{\"mode\":\"required\",\"tools\":[{\"type\":\"function\",\"function\":"
        "{\"name\":\"get_time\"}}]}}",
        "{\"type\":\"allowed_tools\",\"mode\":\"required\",\"tools\":[{\"type\":\"function\",\"name\":\"get_time\"}]}",
        "{\"type\":\"allowed_tools\",\"allowed_tools\":{\"mode\":\"auto\",\"tools\":[{\"type\":\"function\",\"function\":"
        "{\"name\":\"get_time\"}}]}}",
        "{\"type\":\"allowed_tools\",\"allowed_tools\":{\"mode\":\"required\",\"tools\":[{\"type\":\"function\",\"function\":"
        "{\"name\":\"get_date\"}}]}}",
        "{\"type\":\"allowed_tools\",\"allowed_tools\":{\"mode\":\"sometimes\",\"tools\":[{\"type\":\"function\",\"function\":"
        "{\"name\":\"get_time\"}}]}}",
    };
    for (int i = 0; i < 5; i++) {
        char body[2048];
        snprintf(body, sizeof body, "{\"messages\":[{\"role\":\"user\",\"content\":\"What time is it?\"}],\"max_tokens\":40,"
                                    "\"temperature\":0,%s,\"tool_choice\":%s}", tools, choices[i]);
        resp r = http(url, "/v1/chat/completions", body, NULL);
        json_t *o = json_loads(r.body, 0, NULL), *msg = json_object_get(json_array_get(json_object_get(o, "choices"), 0), "message");
        json_t *call = json_array_get(json_object_get(msg, "tool_calls"), 0), *fn = json_object_get(call, "function");
        json_t *args = json_loads(json_string_value(json_object_get(fn, "arguments")) ?: "", 0, NULL);
        const char *zone = json_string_value(json_object_get(args, "zone"));
        if (i < 2)
            CHECK_MSG(r.status == 200 && json_array_size(json_object_get(msg, "tool_calls")) == 1 &&
                          !strcmp(json_string_value(json_object_get(fn, "name")) ?: "", "get_time") && zone &&
                          (!strcmp(zone, "utc") || !strcmp(zone, "cet")),
                      "%d: %s", i, r.body);
        else if (i == 2)
            CHECK_MSG(r.status == 200 && msg, "%d: %s", i, r.body);
        else
            CHECK_MSG(r.status == 400 && !strcmp(json_string_value(json_object_get(json_object_get(o, "error"), "param")) ?: "",
                                                 "tool_choice") &&
                          strstr(json_string_value(json_object_get(json_object_get(o, "error"), "message")) ?: "",
                                 i == 3 ? "get_date" : "mode"),
                      "%d: %s", i, r.body);
        json_decref(args);
        json_decref(o);
        free(r.body);
    }
    /* the Responses API: its tools and its allowed_tools form */
    resp r = http(url, "/v1/responses",
                  "{\"input\":\"What time is it?\",\"max_output_tokens\":40,\"temperature\":0,\"tools\":[{\"type\":\"function\","
                  "\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}},"
                  "{\"type\":\"function\",\"name\":\"get_time\",\"parameters\":{\"type\":\"object\",\"properties\":{\"zone\":"
                  "{\"type\":\"string\",\"enum\":[\"utc\",\"cet\"]}},\"required\":[\"zone\"]}}],\"tool_choice\":{\"type\":"
                  "\"allowed_tools\",\"mode\":\"required\",\"tools\":[{\"type\":\"function\",\"name\":\"get_time\"}]}}",
                  NULL);
    json_t *o = json_loads(r.body, 0, NULL), *item = json_array_get(json_object_get(o, "output"), 0);
    CHECK_MSG(r.status == 200 && !strcmp(json_string_value(json_object_get(item, "type")) ?: "", "function_call") &&
                  !strcmp(json_string_value(json_object_get(item, "name")) ?: "", "get_time"),
              "%s", r.body);
    json_decref(o);
    free(r.body);
}

/* An encrypted private key (PKCS#8, AES-256-CBC) with --ssl-keyfile-password (uvicorn's name): served over
 * HTTPS as a plain key is, with --enable-ssl-refresh too; without the passphrase, or with a wrong one, the
 * server does not start and says why. */
TEST(serve_https_encrypted_key) {
    char key[] = "/tmp/shardlm-key-XXXXXX", cert[] = "/tmp/shardlm-cert-XXXXXX", enc[] = "/tmp/shardlm-enckey-XXXXXX";
    CHECK(tls_make_cert(key, cert) && tls_encrypt_key(key, enc, "s3cret pass"));
    FILE *f = fopen(enc, "r");
    char head[64] = "";
    CHECK(f && fgets(head, sizeof head, f));
    fclose(f);
    CHECK_MSG(strstr(head, "ENCRYPTED PRIVATE KEY") != NULL, "%s", head);
    for (int refresh = 0; refresh < 2; refresh++) {
        sl_test_proc p;
        char *args[] = {"serve", "-m", MODEL, "--port", "0", "-t", "1", "--ssl-keyfile", enc, "--ssl-certfile", cert,
                        "--ssl-keyfile-password", "s3cret pass", refresh ? "--enable-ssl-refresh" : NULL, NULL};
        CHECK(sl_test_proc_start(&p, args, 20) == 0);
        tls_ca = cert;
        resp r = http(p.url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":4}", NULL);
        tls_ca = NULL;
        CHECK_MSG(r.status == 200 && strstr(r.body, "\"text\""), "refresh %d: %ld %s", refresh, r.status, r.body);
        free(r.body);
        CHECK_EQ_INT(sl_test_proc_stop(&p, SIGTERM, 10), 0);
    }
    for (int i = 0; i < 2; i++) {
        char *argv[] = {(char *)sl_test_bin(), "serve", "-m", MODEL, "--port", "0", "--ssl-keyfile", enc, "--ssl-certfile", cert,
                        i ? "--ssl-keyfile-password" : NULL, "wrong", NULL};
        char *out = NULL, *err = NULL;
        const int rc = sl_test_run(argv, &out, &err, 20);
        CHECK_MSG(rc == 1 && err && strstr(err, "--ssl-keyfile-password"), "%d: exit %d, stderr '%s'", i, rc, err ? err : "");
        free(out);
        free(err);
    }
    unlink(key);
    unlink(cert);
    unlink(enc);
}

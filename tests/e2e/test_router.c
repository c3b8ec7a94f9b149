/*
 * test_router.c — `shardlm route` end to end with static membership: real
 * engines (`shardlm serve` on stories260K) and a real router on 127.0.0.1,
 * free ports, stopped by PID.
 *
 * Expected outputs are never produced by the router: a response through the
 * router is compared with the same request sent to an engine directly, and
 * a stream that survived a `kill -9` of its engine with the undisturbed
 * greedy output of an engine.
 */
#include "core/strbuf.h"
#include "test_router_util.h"
#include "rerank_util.h"
#include "tls_util.h"

static bool start_engines(sl_test_proc *e, int n, const char **urls) {
    for (int i = 0; i < n; i++) {
        if (!rt_start_engine(&e[i], NULL)) return false;
        urls[i] = e[i].url;
    }
    return true;
}

/* A router over `urls` (each may carry #VERSION) plus extra flags. */
static bool start_router(sl_test_proc *r, const char **urls, int n, const char *const *extra) {
    char *args[48] = {"route", "--port", "0", "--probe-interval-ms", "200"};
    int k = 5;
    for (int i = 0; i < n; i++) {
        args[k++] = "--engine";
        args[k++] = (char *)urls[i];
    }
    for (int i = 0; extra && extra[i]; i++) args[k++] = (char *)extra[i];
    args[k] = NULL;
    if (!rt_start(r, args)) return false;
    return rt_wait_ready(r->url, 20);
}

static void stop_all(sl_test_proc *ps, int n) {
    for (int i = 0; i < n; i++)
        if (ps[i].pid > 0) sl_test_proc_stop(&ps[i], SIGTERM, 10);
}

TEST(proxy_matches_engine) {
    CHECK(sl_test_shared("models/stories260K.gguf") != NULL);
    sl_test_proc e[2], r;
    const char *urls[2];
    CHECK(start_engines(e, 2, urls));
    CHECK(start_router(&r, urls, 2, NULL));
    const char *body = "{\"prompt\":\"Once upon a time\",\"max_tokens\":40,\"temperature\":0}";
    rresp direct = rt_post(e[0].url, "/v1/completions", body);
    rresp via = rt_post(r.url, "/v1/completions", body);
    CHECK_EQ_INT(direct.status, 200);
    CHECK_EQ_INT(via.status, 200);
    CHECK_MSG(rt_which(via.engine, urls, 2) >= 0, "x-shardlm-engine '%s' is not an engine", via.engine);
    char *a = rt_text(&direct, NULL, NULL), *b = rt_text(&via, NULL, NULL);
    CHECK(strlen(a) > 20);
    CHECK_STR(b, a);
    /* streaming: same text, one [DONE] */
    const char *sbody = "{\"prompt\":\"Once upon a time\",\"max_tokens\":40,\"temperature\":0,\"stream\":true}";
    rresp s = rt_post(r.url, "/v1/completions", sbody);
    int done = 0, errs = 0;
    char *c = rt_text(&s, &done, &errs);
    CHECK_EQ_INT(s.status, 200);
    CHECK_STR(c, a);
    CHECK_EQ_INT(done, 1);
    CHECK_EQ_INT(errs, 0);
    CHECK(rt_which(s.engine, urls, 2) >= 0);
    CHECK_MSG(!strstr(s.body, "token_ids"), "the router leaked its token-id comments to the client");
    /* chat, non-streaming and streaming */
    const char *chat = "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"max_tokens\":30,\"temperature\":0}";
    const char *chats = "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"max_tokens\":30,"
                        "\"temperature\":0,\"stream\":true}";
    rresp cd = rt_post(e[1].url, "/v1/chat/completions", chat), cv = rt_post(r.url, "/v1/chat/completions", chats);
    char *x = rt_text(&cd, NULL, NULL), *y = rt_text(&cv, &done, NULL);
    CHECK_STR(y, x);
    CHECK_EQ_INT(done, 1);
    /* the router's own endpoints, and errors passed through */
    rresp m = rt_http(r.url, NULL, "/v1/models", NULL, NULL, NULL);
    CHECK_EQ_INT(m.status, 200);
    CHECK(strstr(m.body, "\"stories260K\"") != NULL);
    rresp m1 = rt_http(r.url, NULL, "/v1/models/stories260K", NULL, NULL, NULL),
          m0 = rt_http(r.url, NULL, "/v1/models/nope", NULL, NULL, NULL);
    CHECK_EQ_INT(m1.status, 200);
    CHECK(strstr(m1.body, "\"id\":\"stories260K\"") && !strstr(m1.body, "\"data\""));
    CHECK_EQ_INT(m0.status, 404);
    CHECK(strstr(m0.body, "\"param\":\"model\"") != NULL);
    rresp h = rt_http(r.url, NULL, "/health", NULL, NULL, NULL), nf = rt_http(r.url, NULL, "/nope", NULL, NULL, NULL);
    CHECK_EQ_INT(h.status, 200);
    CHECK_EQ_INT(nf.status, 404);
    rresp bad = rt_post(r.url, "/v1/completions", "{\"prompt\": 5}");
    CHECK_EQ_INT(bad.status, 400);
    CHECK(strstr(bad.body, "\"param\":\"prompt\"") != NULL);
    rresp tok = rt_post(r.url, "/tokenize", "{\"prompt\":\"Once upon a time\"}");
    rresp tokd = rt_post(e[0].url, "/tokenize", "{\"prompt\":\"Once upon a time\"}");
    CHECK_EQ_INT(tok.status, 200);
    CHECK_STR(tok.body, tokd.body);
    static const char conv[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}";
    rresp at = rt_post(r.url, "/apply-template", conv), atd = rt_post(e[0].url, "/apply-template", conv);
    CHECK_EQ_INT(at.status, 200);
    CHECK_STR(at.body, atd.body);
    /* /infill is relayed as the engine answers it (this model has no FIM tokens: llama.cpp's 501) */
    static const char fim[] = "{\"input_prefix\":\"a\",\"input_suffix\":\"b\"}";
    rresp inf = rt_post(r.url, "/infill", fim), infd = rt_post(e[0].url, "/infill", fim);
    CHECK_EQ_INT(inf.status, 501);
    CHECK_STR(inf.body, infd.body);
    /* llama.cpp's other names, through the router */
    rresp al1 = rt_http(r.url, NULL, "/models", NULL, NULL, NULL),
          al2 = rt_post(r.url, "/chat/completions", "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":2}"),
          al3 = rt_http(r.url, NULL, "/v1/health", NULL, NULL, NULL);
    CHECK_MSG(al1.status == 200 && strstr(al1.body ? al1.body : "", "\"object\":\"list\"") && al2.status == 200 &&
                  al3.status == 200,
              "%ld %ld %ld", al1.status, al2.status, al3.status);
    rt_free(&al1);
    rt_free(&al2);
    rt_free(&al3);
    rresp adm = rt_http(r.url, NULL, "/admin/engines", NULL, NULL, NULL);
    CHECK_EQ_INT(adm.status, 403);
    { /* vLLM's POST /reset_prefix_cache: every engine in rotation resets its cache (a prompt each had cached is
       * computed again), and the answer lists each one's */
        static const char pb[] = "{\"prompt\":\"The old owl sat in the tall tree and told the young birds about the "
                                 "winter when the river froze.\",\"max_tokens\":2,\"temperature\":0}";
        for (int round = 0; round < 3; round++) { /* cached on both, then after the reset on neither */
            if (round == 2) {
                rresp rpc = rt_post(r.url, "/reset_prefix_cache", "");
                json_t *o = json_loads(rpc.body ? rpc.body : "", 0, NULL), *es = json_object_get(o, "engines");
                size_t k;
                json_t *en;
                int freed = 0;
                json_array_foreach(es, k, en) {
                    freed += json_integer_value(json_object_get(en, "status")) == 200 &&
                             json_integer_value(json_object_get(json_object_get(en, "answer"), "cached_blocks_freed")) > 0;
                }
                CHECK_MSG(rpc.status == 200 && json_is_true(json_object_get(o, "reset")) && json_array_size(es) == 2 &&
                              freed == 2,
                          "%ld %s", rpc.status, rpc.body);
                json_decref(o);
                rt_free(&rpc);
            }
            for (int i = 0; i < 2; i++) {
                rresp q = rt_post(urls[i], "/v1/completions", pb);
                json_t *qo = json_loads(q.body ? q.body : "", 0, NULL);
                const json_int_t cached = json_integer_value(json_object_get(
                    json_object_get(json_object_get(qo, "usage"), "prompt_tokens_details"), "cached_tokens"));
                if (round > 0) CHECK_MSG(q.status == 200 && (round == 1 ? cached > 0 : cached == 0),
                                         "engine %d, round %d: %s", i, round, q.body);
                json_decref(qo);
                rt_free(&q);
            }
        }
    }
    CHECK(rt_metric(r.url, "shardlm_router_engine_up") == 2);
    CHECK(rt_metric(r.url, "shardlm_router_requests_total{status=\"200\"}") >= 4);
    { /* the process collector's metrics: the router's resident memory as the kernel counts it for its pid */
        const double vmrss = sl_test_vmrss((int)r.pid), rss = rt_metric(r.url, "process_resident_memory_bytes");
        CHECK_MSG(vmrss > 0 && fabs(rss - vmrss) <= 0.25 * vmrss && rt_metric(r.url, "process_open_fds") >= 3 &&
                      rt_metric(r.url, "process_start_time_seconds") > 1e9,
                  "resident %.0f, VmRSS %.0f", rss, vmrss);
    }
    rresp *all[] = {&direct, &via, &s, &cd, &cv, &m, &m1, &m0, &h, &nf, &bad, &tok, &tokd, &at, &atd, &inf, &infd, &adm};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) rt_free(all[i]);
    free(a), free(b), free(c), free(x), free(y);
    stop_all(&r, 1);
    stop_all(e, 2);
}

TEST(session_affinity_and_spread) {
    sl_test_proc e[3], r;
    const char *urls[3];
    CHECK(start_engines(e, 3, urls));
    /* named engines: their ring points do not depend on the free ports they got, so the spread
     * below is the same on every run (with names drawn at random, hashing 1,000 sessions into 3
     * engines lands outside +-15% about once in 200 rings: multinomial noise, sd 4.5%) */
    char named[3][200];
    const char *nurls[3];
    for (int i = 0; i < 3; i++) {
        snprintf(named[i], sizeof named[i], "engine-%c=%s", 'a' + i, urls[i]);
        nurls[i] = named[i];
    }
    CHECK(start_router(&r, nurls, 3, NULL));
    /* two turns of one conversation (the user field), and a session header */
    const char *t1 = "{\"user\":\"alice\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":5}";
    const char *t2 = "{\"user\":\"alice\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},{\"role\":\"assistant\","
                     "\"content\":\"Hello there\"},{\"role\":\"user\",\"content\":\"Tell me more\"}],\"max_tokens\":5}";
    rresp a = rt_post(r.url, "/v1/chat/completions", t1), b = rt_post(r.url, "/v1/chat/completions", t2);
    CHECK_EQ_INT(a.status, 200);
    CHECK_EQ_INT(b.status, 200);
    CHECK_STR(a.engine, b.engine);
    for (int k = 0; k < 3; k++) {
        rresp c = rt_http(r.url, NULL, "/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":1}", "X-Session-Id: bob", NULL);
        rresp d = rt_http(r.url, NULL, "/v1/completions", "{\"prompt\":\"other text\",\"max_tokens\":1}",
                          "X-Session-Id: bob", NULL);
        CHECK_STR(c.engine, d.engine);
        rt_free(&c);
        rt_free(&d);
    }
    /* 1,000 sessions spread within 15% of even */
    int count[3] = {0};
    for (int i = 0; i < 1000; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"prompt\":\"Hello\",\"max_tokens\":1,\"user\":\"session-%d\"}", i);
        rresp x = rt_post(r.url, "/v1/completions", body);
        int k = rt_which(x.engine, urls, 3);
        CHECK_MSG(x.status == 200 && k >= 0, "session %d: status %ld engine '%s'", i, x.status, x.engine);
        count[k]++;
        rt_free(&x);
    }
    printf("  1000 sessions over 3 engines: %d %d %d\n", count[0], count[1], count[2]);
    for (int k = 0; k < 3; k++)
        CHECK_MSG(fabs(count[k] - 1000.0 / 3) <= 0.15 * 1000.0 / 3, "engine %d took %d of 1000 sessions", k, count[k]);
    CHECK(rt_metric(r.url, "shardlm_router_routing_decisions_total{reason=\"session\"}") >= 1000);
    rt_free(&a);
    rt_free(&b);
    stop_all(&r, 1);
    stop_all(e, 3);
}

/* Requests sharing a prefix longer than --prefix-bytes (256) meet on one engine. */
TEST(prefix_affinity_without_session) {
    sl_test_proc e[3], r;
    const char *urls[3];
    CHECK(start_engines(e, 3, urls));
    CHECK(start_router(&r, urls, 3, NULL));
    char first[256] = "";
    for (int i = 0; i < 8; i++) {
        char body[1024];
        snprintf(body, sizeof body,
                 "{\"messages\":[{\"role\":\"system\",\"content\":\"You are a storyteller. You tell short stories about "
                 "animals who live in a forest, with a happy ending, for children who are going to sleep. Every story has a "
                 "beginning, a middle and an end, and the animals are always kind to each other and to the trees.\"},"
                 "{\"role\":\"user\",\"content\":\"Question number %d\"}],\"max_tokens\":2}",
                 i);
        rresp x = rt_post(r.url, "/v1/chat/completions", body);
        CHECK_EQ_INT(x.status, 200);
        if (i == 0) snprintf(first, sizeof first, "%s", x.engine);
        CHECK_STR(x.engine, first);
        rt_free(&x);
    }
    CHECK(rt_metric(r.url, "shardlm_router_routing_decisions_total{reason=\"prefix\"}") >= 8);
    stop_all(&r, 1);
    stop_all(e, 3);
}

typedef struct multi_req {
    rresp r;
    struct curl_slist *hl;
    CURL *h;
} multi_req;

/* Bounded loads: concurrent streams of one session overflow to the other engine. */
TEST(bounded_loads_overflow) {
    sl_test_proc e[2], r;
    const char *urls[2];
    CHECK(start_engines(e, 2, urls));
    CHECK(start_router(&r, urls, 2, NULL));
    enum { N = 8 };
    multi_req q[N];
    CURLM *m = curl_multi_init();
    for (int i = 0; i < N; i++) {
        memset(&q[i], 0, sizeof q[i]);
        q[i].h = rt_easy(r.url, NULL, "/v1/completions",
                         "{\"prompt\":\"Once upon a time\",\"max_tokens\":300,\"temperature\":0,\"stream\":true,"
                         "\"user\":\"hot-session\"}",
                         NULL, NULL, &q[i].r, &q[i].hl, 60);
        curl_multi_add_handle(m, q[i].h);
    }
    int running = 1;
    while (running) {
        curl_multi_perform(m, &running);
        if (running) curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    int on[2] = {0};
    for (int i = 0; i < N; i++) {
        long st;
        curl_easy_getinfo(q[i].h, CURLINFO_RESPONSE_CODE, &st);
        CHECK_EQ_INT(st, 200);
        int k = rt_which(q[i].r.engine, urls, 2);
        CHECK(k >= 0);
        on[k]++;
        curl_multi_remove_handle(m, q[i].h);
        curl_easy_cleanup(q[i].h);
        curl_slist_free_all(q[i].hl);
        rt_free(&q[i].r);
    }
    curl_multi_cleanup(m);
    printf("  8 concurrent streams of one session: %d and %d per engine\n", on[0], on[1]);
    CHECK_MSG(on[0] > 0 && on[1] > 0, "one hot session put %d/%d on the engines: bounded loads did not spread it", on[0],
              on[1]);
    CHECK(rt_metric(r.url, "shardlm_router_routing_decisions_total{reason=\"overflow\"}") >= 1);
    stop_all(&r, 1);
    stop_all(e, 2);
}

/* A chat answer's parts, whole or streamed: "C:content R:reasoning A:name(arguments)... N:calls", the
 * calls counted by their ids (a stream's first delta of a call carries one). */
static char *chat_parts(const rresp *r) {
    json_t *acc = json_pack("{s:s,s:s,s:s}", "C", "", "R", "", "A", "");
    int calls = 0;
    const bool whole = r->body && r->body[0] == '{';
    char *copy = strdup(r->body ? r->body : ""), *save = NULL;
    for (char *ev = whole ? copy : strtok_r(copy, "\n", &save); ev; ev = whole ? NULL : strtok_r(NULL, "\n", &save)) {
        if (!whole && strncmp(ev, "data: {", 7)) continue;
        json_t *o = json_loads(whole ? ev : ev + 6, 0, NULL);
        json_t *m = json_object_get(json_array_get(json_object_get(o, "choices"), 0), whole ? "message" : "delta");
        json_t *parts[3] = {json_object_get(m, "content"), json_object_get(m, "reasoning_content"), NULL};
        static const char *K[3] = {"C", "R", "A"};
        size_t i;
        json_t *tc;
        json_array_foreach(json_object_get(m, "tool_calls"), i, tc) {
            json_t *fn = json_object_get(tc, "function");
            calls += json_is_string(json_object_get(tc, "id"));
            char *piece = NULL;
            if (asprintf(&piece, "%s%s", json_is_string(json_object_get(fn, "name")) ? json_string_value(json_object_get(fn, "name")) : "",
                         json_is_string(json_object_get(fn, "arguments")) ? json_string_value(json_object_get(fn, "arguments")) : "") < 0)
                abort();
            parts[2] = json_string(piece);
            free(piece);
            char *j = NULL;
            if (asprintf(&j, "%s%s", json_string_value(json_object_get(acc, "A")), json_string_value(parts[2])) < 0) abort();
            json_object_set_new(acc, "A", json_string(j));
            free(j);
            json_decref(parts[2]);
            parts[2] = NULL;
        }
        for (int k = 0; k < 2; k++) {
            if (!json_is_string(parts[k])) continue;
            char *j = NULL;
            if (asprintf(&j, "%s%s", json_string_value(json_object_get(acc, K[k])), json_string_value(parts[k])) < 0) abort();
            json_object_set_new(acc, K[k], json_string(j));
            free(j);
        }
        json_decref(o);
    }
    free(copy);
    char *out = NULL;
    if (asprintf(&out, "C:%s R:%s A:%s N:%d", json_string_value(json_object_get(acc, "C")),
                 json_string_value(json_object_get(acc, "R")), json_string_value(json_object_get(acc, "A")), calls) < 0)
        abort();
    json_decref(acc);
    return out;
}

/* POST body to the router at base as a stream, kill -9 the engine of the two serving it (urls, e) once
 * kill_after events came; the answer in *got. */
static CURLcode stream_killing(const char *base, const char *path, const char *body, const char **urls,
                               const sl_test_proc *e, int kill_after, rresp *got) {
    memset(got, 0, sizeof *got);
    static pid_t pids[2];
    pids[0] = e[0].pid;
    pids[1] = e[1].pid;
    got->kill_after = kill_after;
    got->engine_urls = urls;
    got->engine_pids = pids;
    got->n_engine = 2;
    struct curl_slist *hl = NULL;
    CURL *h = rt_easy(base, NULL, path, body, NULL, NULL, got, &hl, 60);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &got->status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hl);
    return rc;
}

/* kill -9 the engine serving a greedy stream mid-answer: the stream completes
 * and equals the undisturbed output; one migration is counted. engine_extra: more flags of the engines;
 * parts: compare chat answers part by part (chat_parts) instead of their text. */
static void midstream_kill_tls(const char *path, const char *plain, const char *stream, const char *const *engine_extra,
                               bool parts, const char *const *router_extra) {
    sl_test_proc e[2], r, ref;
    const char *urls[2];
    for (int i = 0; i < 2; i++) {
        CHECK(rt_start_engine(&e[i], engine_extra));
        urls[i] = e[i].url;
    }
    CHECK(rt_start_engine(&ref, engine_extra));
    CHECK(start_router(&r, urls, 2, router_extra));
    rresp want = rt_post(ref.url, path, plain);
    CHECK_EQ_INT(want.status, 200);
    char *wt = parts ? chat_parts(&want) : rt_text(&want, NULL, NULL);
    CHECK_MSG(strlen(wt) > 300, "the reference answer is too short to kill mid-way (%zu bytes)", strlen(wt));
    double mig0 = rt_metric(r.url, "shardlm_router_migrations_total");
    rresp got;
    CURLcode rc = stream_killing(r.url, path, stream, urls, e, 20, &got);
    CHECK_MSG(rc == CURLE_OK, "the client's stream broke: %s", curl_easy_strerror(rc));
    CHECK(got.killed);
    int done = 0, errs = 0;
    char *gt = rt_text(&got, &done, &errs);
    if (parts) {
        free(gt);
        gt = chat_parts(&got);
    }
    CHECK_EQ_INT(errs, 0);
    CHECK_EQ_INT(done, 1);
    if (!strcmp(path, "/completion") || !strcmp(path, "/infill")) /* llama.cpp's events to the end, no completions chunk */
        CHECK(got.body && strstr(got.body, "\"stop\":true") && !strstr(got.body, "[DONE]") &&
              !strstr(got.body, "text_completion"));
    if (!strcmp(path, "/v1/messages")) /* Anthropic's events to the end, no chat chunk */
        CHECK(got.body && strstr(got.body, "event: message_stop\n") && !strstr(got.body, "[DONE]") &&
              !strstr(got.body, "chat.completion.chunk"));
    if (!strncmp(path, "/api/", 5)) /* Ollama's lines to the end, the last one done, no chat chunk */
        CHECK(got.body && strstr(got.body, "\"done\":true") && !strstr(got.body, "[DONE]") &&
              !strstr(got.body, "chunk") && !strstr(got.body, "data:"));
    if (!strcmp(path, "/v1/responses")) /* Responses events to the end, no chat chunk */
        CHECK(got.body && strstr(got.body, "event: response.incomplete\n") && !strstr(got.body, "[DONE]") &&
              !strstr(got.body, "chat.completion.chunk"));
    CHECK_MSG(!strcmp(gt, wt), "migrated stream differs from the undisturbed one:\n got  %zu bytes: %.300s\n want %zu bytes: %.300s",
              strlen(gt), gt, strlen(wt), wt);
    CHECK_EQ_INT(rt_metric(r.url, "shardlm_router_migrations_total") - mig0, 1);
    int k = rt_which(got.engine, urls, 2);
    CHECK(k >= 0);
    CHECK(rt_metric(r.url, "shardlm_router_engine_migrations_total") == 1);
    free(gt);
    free(wt);
    rt_free(&got);
    rt_free(&want);
    stop_all(&r, 1);
    stop_all(e, 2);
    stop_all(&ref, 1);
}

static void midstream_kill_with(const char *path, const char *plain, const char *stream, const char *const *engine_extra,
                                bool parts) {
    midstream_kill_tls(path, plain, stream, engine_extra, parts, NULL);
}

static void midstream_kill(const char *path, const char *plain, const char *stream) {
    midstream_kill_with(path, plain, stream, NULL, false);
}

TEST(kill9_midstream_completions) {
    midstream_kill("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":400,\"temperature\":0}",
                   "{\"prompt\":\"Once upon a time\",\"max_tokens\":400,\"temperature\":0,\"stream\":true,"
                   "\"stream_options\":{\"include_usage\":true}}");
}

/* With echo, the stream's first chunk is the prompt: the continuation still starts where the output stopped. */
TEST(kill9_midstream_completions_echo) {
    midstream_kill("/v1/completions",
                   "{\"prompt\":\"Once upon a time\",\"max_tokens\":400,\"temperature\":0,\"echo\":true,\"logprobs\":1}",
                   "{\"prompt\":\"Once upon a time\",\"max_tokens\":400,\"temperature\":0,\"echo\":true,\"logprobs\":1,"
                   "\"stream\":true}");
}

/* vLLM's chat echo: the stream's first content is the message the answer continues; the continuation starts where
 * the output stopped and echoes nothing again. */
TEST(kill9_midstream_chat_echo) {
#define ECHO_CHAT "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"},{\"role\":\"assistant\"," \
                  "\"content\":\"Once upon a time\"}],\"add_generation_prompt\":false,\"continue_final_message\":true," \
                  "\"echo\":true,\"max_tokens\":400,\"temperature\":0"
    midstream_kill("/v1/chat/completions", ECHO_CHAT "}", ECHO_CHAT ",\"stream\":true}");
#undef ECHO_CHAT
}

/* An engine's request defaults hold through the router for llama.cpp's /completion too (the router once gave it
 * llama.cpp's own sampling defaults, which sampled where the engine says greedy). */
TEST(engine_defaults_through_the_router) {
    sl_test_proc e, r;
    const char *defaults[] = {"--temp", "0", "-n", "9", NULL};
    CHECK(rt_start_engine(&e, defaults));
    const char *urls[1] = {e.url};
    CHECK(start_router(&r, urls, 1, NULL));
    static const char body[] = "{\"prompt\":\"Once upon a time\"}";
    for (int k = 0; k < 3; k++) {
        rresp a = rt_post(e.url, "/completion", body), b = rt_post(r.url, "/completion", body);
        json_t *oa = json_loads(a.body ? a.body : "", 0, NULL), *ob = json_loads(b.body ? b.body : "", 0, NULL);
        CHECK_MSG(a.status == 200 && b.status == 200 && json_equal(json_object_get(oa, "content"), json_object_get(ob, "content")) &&
                      json_integer_value(json_object_get(ob, "tokens_predicted")) == 9,
                  "engine %.300s\n      router %.300s", a.body, b.body);
        json_decref(oa);
        json_decref(ob);
        rt_free(&a);
        rt_free(&b);
    }
    stop_all(&r, 1);
    stop_all(&e, 1);
}

/* vLLM's beam search through the router: the engine's beams, whole and streamed (one chunk per choice). */
TEST(beam_search_through_the_router) {
    sl_test_proc e, r;
    CHECK(rt_start_engine(&e, NULL));
    const char *urls[1] = {e.url};
    CHECK(start_router(&r, urls, 1, NULL));
    static const char body[] = "{\"prompt\":\"Once upon a time\",\"max_tokens\":16,\"use_beam_search\":true,\"n\":3}",
                      sbody[] = "{\"prompt\":\"Once upon a time\",\"max_tokens\":16,\"use_beam_search\":true,\"n\":3,"
                                "\"stream\":true}";
    rresp a = rt_post(e.url, "/v1/completions", body), b = rt_post(r.url, "/v1/completions", body),
          c = rt_post(r.url, "/v1/completions", sbody);
    json_t *oa = json_loads(a.body ? a.body : "", 0, NULL), *ob = json_loads(b.body ? b.body : "", 0, NULL);
    CHECK_MSG(a.status == 200 && b.status == 200 && json_array_size(json_object_get(oa, "choices")) == 3 &&
                  json_equal(json_object_get(oa, "choices"), json_object_get(ob, "choices")),
              "engine %.300s\n      router %.300s", a.body, b.body);
    for (int k = 0; k < 3; k++) { /* each choice's text in the stream */
        const char *t = json_string_value(json_object_get(json_array_get(json_object_get(oa, "choices"), (size_t)k), "text"));
        char *want = NULL;
        json_t *js = json_string(t ? t : "");
        char *q = json_dumps(js, JSON_ENCODE_ANY);
        if (asprintf(&want, "\"index\":%d,\"text\":%s", k, q) < 0) abort();
        CHECK_MSG(c.status == 200 && c.body && strstr(c.body, want) && strstr(c.body, "data: [DONE]"), "choice %d: %s", k,
                  c.body ? c.body : "");
        free(want);
        free(q);
        json_decref(js);
    }
    json_decref(oa);
    json_decref(ob);
    rt_free(&a);
    rt_free(&b);
    rt_free(&c);
    stop_all(&r, 1);
    stop_all(&e, 1);
}

/* SageMaker's /invocations with a chat body: proxied as the chat stream it is, continued on the other engine. */
TEST(kill9_midstream_invocations) {
#define INV_CHAT "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"max_tokens\":400,\"temperature\":0"
    midstream_kill("/invocations", INV_CHAT "}", INV_CHAT ",\"stream\":true}");
#undef INV_CHAT
}

/* JSON mode: the continuing engine goes on from the JSON the first one wrote. */
TEST(kill9_midstream_json_mode) {
    midstream_kill("/v1/completions",
                   "{\"prompt\":\"Once upon a time\",\"max_tokens\":400,\"temperature\":0,"
                   "\"response_format\":{\"type\":\"json_object\"}}",
                   "{\"prompt\":\"Once upon a time\",\"max_tokens\":400,\"temperature\":0,"
                   "\"response_format\":{\"type\":\"json_object\"},\"stream\":true}");
}

/* A grammar (llama.cpp's field): the continuing engine replays the output through it and goes on as the
 * undisturbed stream did. */
TEST(kill9_midstream_grammar) {
    midstream_kill("/v1/completions",
                   "{\"prompt\":\"Once upon a time\",\"max_tokens\":400,\"temperature\":0,"
                   "\"grammar\":\"root ::= sentence+\\nsentence ::= [ A-Z] [a-z ,]+ \\\". \\\"\"}",
                   "{\"prompt\":\"Once upon a time\",\"max_tokens\":400,\"temperature\":0,"
                   "\"grammar\":\"root ::= sentence+\\nsentence ::= [ A-Z] [a-z ,]+ \\\". \\\"\",\"stream\":true}");
}

/* A lazy grammar (llama.cpp's grammar_lazy): free until the trigger word, then the grammar; the continuing
 * engine replays the output through the trigger and the grammar, so it goes on constrained as before. */
TEST(kill9_midstream_grammar_lazy) {
#define LAZY "\"grammar\":\"root ::= \\\"girl\\\" sentence+\\nsentence ::= [a-z ,]+ \\\". \\\"\",\"grammar_lazy\":true," \
             "\"grammar_triggers\":[{\"type\":\"word\",\"value\":\"girl\"}]"
    midstream_kill("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":400,\"temperature\":0," LAZY "}",
                   "{\"prompt\":\"Once upon a time\",\"max_tokens\":400,\"temperature\":0," LAZY ",\"stream\":true}");
#undef LAZY
}

/* Mirostat (with DRY): its target surprise is state the draws leave behind; the continuing engine replays it
 * from the logits of the output so far, so the sampled stream goes on as the undisturbed one. */
TEST(kill9_midstream_mirostat) {
    midstream_kill("/v1/completions",
                   "{\"prompt\":\"Once upon a time\",\"max_tokens\":400,\"temperature\":1,\"seed\":5,\"mirostat\":2,"
                   "\"mirostat_tau\":1,\"mirostat_eta\":0.5,\"dry_multiplier\":0.5,\"ignore_eos\":true}",
                   "{\"prompt\":\"Once upon a time\",\"max_tokens\":400,\"temperature\":1,\"seed\":5,\"mirostat\":2,"
                   "\"mirostat_tau\":1,\"mirostat_eta\":0.5,\"dry_multiplier\":0.5,\"ignore_eos\":true,\"stream\":true}");
}

/* Chat with a JSON schema of short fields (a string of at most 6 characters, an enum): the continuation
 * (a completion from token ids) keeps response_format, so the sampled answer goes on as the undisturbed
 * one (without the schema the draws that follow leave it: the test failed so before 52df628). */
#define PETS_SCHEMA                                                                                                \
    "{\"type\":\"json_schema\",\"json_schema\":{\"schema\":{\"type\":\"object\",\"properties\":{\"pets\":{\"type\":" \
    "\"array\",\"minItems\":12,\"items\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":6}," \
    "\"mood\":{\"enum\":[\"happy\",\"sad\"]}},\"required\":[\"name\",\"mood\"],\"additionalProperties\":false}}}," \
    "\"required\":[\"pets\"],\"additionalProperties\":false}}}"
TEST(kill9_midstream_chat_json_schema) {
    midstream_kill("/v1/chat/completions",
                   "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story about a cat\"}],\"max_tokens\":400,"
                   "\"temperature\":1,\"seed\":7,\"response_format\":" PETS_SCHEMA "}",
                   "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story about a cat\"}],\"max_tokens\":400,"
                   "\"temperature\":1,\"seed\":7,\"response_format\":" PETS_SCHEMA ",\"stream\":true}");
}

/* A reasoning model's chat stream (DeepSeek-R1's template opens the thinking, so stories260K's whole answer
 * is reasoning_content): the engine splits it into parts, so it continues as a chat request that
 * resumes each part where the client's copy ends. */
TEST(kill9_midstream_chat_thinking) {
    const char *tpl = "../shared/golden/chat-templates/deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja";
    if (access(tpl, R_OK) != 0) return;
    const char *extra[] = {"--chat-template", tpl, NULL};
    midstream_kill_with("/v1/chat/completions",
                        "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story about a cat\"}],"
                        "\"max_tokens\":400,\"temperature\":0}",
                        "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story about a cat\"}],"
                        "\"max_tokens\":400,\"temperature\":0,\"stream\":true}",
                        extra, true);
}

/* With a reasoning budget: the continuing engine replays the output through the budget, so the message and the
 * closing tag are forced where the first engine would have forced them — after the move (budget 250), or before
 * it and not again (budget 12). */
static void midstream_kill_budget(int budget) {
    const char *tpl = "../shared/golden/chat-templates/deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja";
    if (access(tpl, R_OK) != 0) return;
    const char *extra[] = {"--chat-template", tpl, NULL};
    char plain[400], stream[400];
    snprintf(plain, sizeof plain,
             "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story about a cat\"}],\"max_tokens\":400,"
             "\"temperature\":0,\"reasoning_budget_tokens\":%d,\"reasoning_budget_message\":\" Done thinking.\"}", budget);
    snprintf(stream, sizeof stream, "%.*s,\"stream\":true}", (int)strlen(plain) - 1, plain);
    midstream_kill_with("/v1/chat/completions", plain, stream, extra, true);
}

TEST(kill9_midstream_chat_reasoning_budget_after) { midstream_kill_budget(250); }
TEST(kill9_midstream_chat_reasoning_budget_before) { midstream_kill_budget(12); }

/* A forced function call: its arguments stream as tool_calls deltas; after the move they go on from the
 * client's last byte, under the same call (one id). */
#define PETS_TOOLS_ITEMS(N)                                                                                      \
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"pets\",\"parameters\":{\"type\":\"object\",\"properties\":" \
    "{\"pets\":{\"type\":\"array\"," N ",\"items\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":"    \
    "\"string\",\"maxLength\":6},\"mood\":{\"enum\":[\"happy\",\"sad\"]}},\"required\":[\"name\",\"mood\"]}}},"           \
    "\"required\":[\"pets\"]}}}]"
TEST(kill9_midstream_chat_forced_call) {
#define PETS_TOOL PETS_TOOLS_ITEMS("\"minItems\":12") ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"pets\"}}"
    midstream_kill_with("/v1/chat/completions",
                        "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story about a cat\"}],"
                        "\"max_tokens\":400,\"temperature\":1,\"seed\":7," PETS_TOOL "}",
                        "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story about a cat\"}],"
                        "\"max_tokens\":400,\"temperature\":1,\"seed\":7,\"stream\":true," PETS_TOOL "}",
                        NULL, true);
}

/* tool_choice "required": the call's arguments stream as the answer writes them (sl_tool_parse_partial);
 * the engine that takes over knows from the client's byte count how far each call went, and the call
 * goes on under the same id (9 pets: the answer ends before max_tokens, a whole call). */
TEST(kill9_midstream_chat_required_call) {
    midstream_kill_with("/v1/chat/completions",
                        "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story about a cat\"}],"
                        "\"max_tokens\":480,\"temperature\":1,\"seed\":7," PETS_TOOLS_ITEMS("\"minItems\":9,\"maxItems\":9") ",\"tool_choice\":\"required\"}",
                        "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story about a cat\"}],"
                        "\"max_tokens\":480,\"temperature\":1,\"seed\":7,\"stream\":true," PETS_TOOLS_ITEMS("\"minItems\":9,\"maxItems\":9")
                        ",\"tool_choice\":\"required\"}",
                        NULL, true);
}

TEST(kill9_midstream_chat) {
    midstream_kill("/v1/chat/completions",
                   "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story about a cat\"}],\"max_tokens\":400,"
                   "\"temperature\":0}",
                   "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story about a cat\"}],\"max_tokens\":400,"
                   "\"temperature\":0,\"stream\":true,\"user\":\"carol\"}");
}

/* Each choice's text and finish of an answer of several (whole, or a stream's chunks by index), as
 * {"0": "text|finish", ...}, and its usage's counts ("usage P C"; "" when none came). */
static char *choice_texts(const rresp *r, char *usage, size_t ucap) {
    json_t *acc = json_object();
    usage[0] = '\0';
    const bool whole = r->body && (r->body[0] == '{' || r->body[0] == '[');
    char *copy = strdup(r->body ? r->body : ""), *save = NULL;
    for (char *ev = whole ? copy : strtok_r(copy, "\n", &save); ev; ev = whole ? NULL : strtok_r(NULL, "\n", &save)) {
        if (!whole && strncmp(ev, "data: {", 7)) continue;
        json_t *o = json_loads(whole ? ev : ev + 6, 0, NULL), *u = json_object_get(o, "usage");
        if (json_is_array(o) || json_is_string(json_object_get(o, "content"))) { /* llama.cpp's answers and events */
            json_t *all = json_is_array(o) ? json_incref(o) : json_pack("[O]", o);
            size_t i;
            json_t *a;
            json_array_foreach(all, i, a) {
                char key[16];
                snprintf(key, sizeof key, "%lld", (long long)json_integer_value(json_object_get(a, "index")));
                const char *have = json_string_value(json_object_get(acc, key));
                char *j = NULL;
                if (json_is_true(json_object_get(a, "stop"))) {
                    if (asprintf(&j, "%s%s|%s %lld", have ? have : "", json_string_value(json_object_get(a, "content")),
                                 json_string_value(json_object_get(a, "stop_type")),
                                 (long long)json_integer_value(json_object_get(a, "tokens_predicted"))) < 0)
                        abort();
                } else if (asprintf(&j, "%s%s", have ? have : "", json_string_value(json_object_get(a, "content"))) < 0) {
                    abort();
                }
                json_object_set_new(acc, key, json_string(j));
                free(j);
            }
            json_decref(all);
            json_decref(o);
            continue;
        }
        if (json_is_object(u))
            snprintf(usage, ucap, "usage %lld %lld", (long long)json_integer_value(json_object_get(u, "prompt_tokens")),
                     (long long)json_integer_value(json_object_get(u, "completion_tokens")));
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(o, "choices"), i, c) {
            char key[16];
            snprintf(key, sizeof key, "%lld", (long long)json_integer_value(json_object_get(c, "index")));
            json_t *t = json_object_get(c, "text");
            if (!t) t = json_object_get(json_object_get(c, whole ? "message" : "delta"), "content");
            const char *have = json_string_value(json_object_get(acc, key));
            char *j = NULL;
            if (asprintf(&j, "%s%s", have ? have : "", json_is_string(t) ? json_string_value(t) : "") < 0) abort();
            json_t *fin = json_object_get(c, "finish_reason");
            if (json_is_string(fin)) {
                char *f = NULL;
                if (asprintf(&f, "%s|%s", j, json_string_value(fin)) < 0) abort();
                free(j);
                j = f;
            }
            json_object_set_new(acc, key, json_string(j));
            free(j);
        }
        json_decref(o);
    }
    free(copy);
    char *out = json_dumps(acc, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(acc);
    return out;
}

/* kill -9 the engine mid-way through a stream of several choices (n, several prompts): each unfinished
 * choice continues on the other engine (its own seed, its own prompt), the client gets every choice's
 * text as the undisturbed answer has it, one [DONE], and the usage of the whole generation. (The router
 * used to end such a stream with an error, or with [DONE] once one choice had finished.) */
static void midstream_kill_choices(const char *path, const char *plain, const char *stream, int kill_after) {
    sl_test_proc e[2], r, ref;
    const char *urls[2];
    CHECK(start_engines(e, 2, urls));
    CHECK(rt_start_engine(&ref, NULL));
    CHECK(start_router(&r, urls, 2, NULL));
    rresp want = rt_post(ref.url, path, plain);
    CHECK_EQ_INT(want.status, 200);
    char wu[64], gu[64];
    char *wt = choice_texts(&want, wu, sizeof wu);
    rresp got;
    CURLcode rc = stream_killing(r.url, path, stream, urls, e, kill_after, &got);
    CHECK_MSG(rc == CURLE_OK, "the client's stream broke: %s", curl_easy_strerror(rc));
    CHECK(got.killed);
    int done = 0, errs = 0;
    free(rt_text(&got, &done, &errs));
    CHECK_MSG(errs == 0, "error events: %.600s", got.body);
    if (strcmp(path, "/completion")) CHECK_EQ_INT(done, 1);
    else CHECK(!strstr(got.body, "[DONE]")); /* (llama.cpp's stream: each answer's closing event, no [DONE]) */
    char *gt = choice_texts(&got, gu, sizeof gu);
    CHECK_MSG(!strcmp(gt, wt), "the continued choices differ from the undisturbed answer:\n got  %s\n want %s", gt, wt);
    if (strstr(stream, "include_usage")) CHECK_MSG(!strcmp(gu, wu), "usage: got '%s', want '%s'", gu, wu);
    else CHECK_MSG(!gu[0], "a usage chunk nobody asked for: %s", gu);
    CHECK(rt_metric(r.url, "shardlm_router_migrations_total") >= 1);
    printf("  %s: %s, %s\n", path, gu, got.killed ? "killed mid-stream" : "");
    free(gt);
    free(wt);
    rt_free(&got);
    rt_free(&want);
    stop_all(&r, 1);
    stop_all(e, 2);
    stop_all(&ref, 1);
}

TEST(kill9_midstream_several_choices) {
    /* two prompts, two choices each, sampled */
    midstream_kill_choices("/v1/completions",
                           "{\"prompt\":[\"Once upon a time\",\"The little dog\"],\"n\":2,\"max_tokens\":120,"
                           "\"temperature\":0.9,\"seed\":7}",
                           "{\"prompt\":[\"Once upon a time\",\"The little dog\"],\"n\":2,\"max_tokens\":120,"
                           "\"temperature\":0.9,\"seed\":7,\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
                           40);
    /* choices that stop at different places: the first prompt's at once (its answers start with ", there"),
     * before the kill, the second's later */
    midstream_kill_choices("/v1/completions",
                           "{\"prompt\":[\"Once upon a time\",\"The little dog\"],\"n\":2,\"max_tokens\":300,"
                           "\"temperature\":1.0,\"seed\":3,\"stop\":[\", there\"]}",
                           "{\"prompt\":[\"Once upon a time\",\"The little dog\"],\"n\":2,\"max_tokens\":300,"
                           "\"temperature\":1.0,\"seed\":3,\"stop\":[\", there\"],\"stream\":true,"
                           "\"stream_options\":{\"include_usage\":true}}",
                           40);
    /* llama.cpp's /completion of several prompts (its stream closes each answer with its counts) */
    midstream_kill_choices("/completion",
                           "{\"prompt\":[\"Once upon a time\",\"The little dog\",\"Lily\"],\"n_predict\":150,"
                           "\"temperature\":0.7,\"seed\":5}",
                           "{\"prompt\":[\"Once upon a time\",\"The little dog\",\"Lily\"],\"n_predict\":150,"
                           "\"temperature\":0.7,\"seed\":5,\"stream\":true}",
                           60);
    /* chat, three choices, no usage asked */
    midstream_kill_choices("/v1/chat/completions",
                           "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"n\":3,"
                           "\"max_tokens\":100,\"temperature\":0.8,\"seed\":11}",
                           "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"n\":3,"
                           "\"max_tokens\":100,\"temperature\":0.8,\"seed\":11,\"stream\":true}",
                           45);
}

/* OpenAI's Responses API through the router: proxied as its chat request, so a stream moved by a kill -9
 * continues exactly, still as Responses events (one response.completed / incomplete at the end). */
TEST(kill9_midstream_responses) {
    midstream_kill("/v1/responses",
                   "{\"input\":\"Tell me a story about a cat\",\"max_output_tokens\":400,\"temperature\":0}",
                   "{\"input\":[{\"role\":\"user\",\"content\":\"Tell me a story about a cat\"}],\"max_output_tokens\":400,"
                   "\"temperature\":0,\"stream\":true,\"user\":\"dave\"}");
}

/* Responses kept by the router (which translates them): a second turn by previous_response_id, placed on any
 * engine, is what an engine's chat answers for the whole conversation; GET /v1/responses/{id} on the router
 * reads the first one back. */
/* Anthropic's Messages API through the router: proxied as chat, its stream continues elsewhere when its
 * engine dies, as Anthropic's events to the end. */
TEST(kill9_midstream_anthropic) {
    midstream_kill("/v1/messages",
                   "{\"model\":\"stories260K\",\"max_tokens\":400,\"temperature\":0,\"messages\":[{\"role\":\"user\","
                   "\"content\":\"Tell me a story\"}]}",
                   "{\"model\":\"stories260K\",\"max_tokens\":400,\"temperature\":0,\"stream\":true,\"messages\":[{\"role\":"
                   "\"user\",\"content\":\"Tell me a story\"}]}");
}

/* Ollama's native API through the router: proxied as chat (and as a completion, a raw generate), its stream
 * continues elsewhere when its engine dies, as Ollama's lines to the end. */
TEST(kill9_midstream_ollama) {
    midstream_kill("/api/chat",
                   "{\"model\":\"stories260K\",\"stream\":false,\"options\":{\"num_predict\":400,\"temperature\":0},"
                   "\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}]}",
                   "{\"model\":\"stories260K\",\"options\":{\"num_predict\":400,\"temperature\":0},"
                   "\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}]}");
    midstream_kill("/api/generate",
                   "{\"model\":\"stories260K\",\"raw\":true,\"stream\":false,\"prompt\":\"Once upon a time\","
                   "\"options\":{\"num_predict\":400,\"temperature\":0}}",
                   "{\"model\":\"stories260K\",\"raw\":true,\"prompt\":\"Once upon a time\","
                   "\"options\":{\"num_predict\":400,\"temperature\":0}}");
}

/* Ollama's answers and errors through the router: a request with no messages loads the model, the router's
 * own errors (a key missing) and the engine's (an option refused, an unknown model) in Ollama's form, its model
 * list, version and running models read with GET, embeddings. */
TEST(ollama_through_the_router) {
    sl_test_proc e, r;
    CHECK(rt_start_engine(&e, NULL));
    const char *urls[1] = {e.url};
    const char *extra[] = {"--api-key", "k3y", NULL};
    CHECK(start_router(&r, urls, 1, extra));
    const char *hk = "Authorization: Bearer k3y";
    rresp no = rt_post(r.url, "/api/chat", "{\"model\":\"stories260K\",\"messages\":[]}");
    CHECK_MSG(no.status == 401 && !strncmp(no.body, "{\"error\":", 9), "%s", no.body);
    rresp load = rt_http(r.url, NULL, "/api/chat", "{\"model\":\"stories260K\",\"messages\":[]}", hk, NULL);
    CHECK_MSG(load.status == 200 && strstr(load.body, "\"done_reason\":\"load\""), "%s", load.body);
    rresp bad = rt_http(r.url, NULL, "/api/generate",
                        "{\"model\":\"stories260K\",\"prompt\":\"Hi\",\"stream\":false,\"options\":{\"top_k\":-5}}", hk, NULL);
    json_t *bo = json_loads(bad.body, 0, NULL);
    CHECK_MSG(bad.status == 400 && json_object_size(bo) == 1 && strstr(json_string_value(json_object_get(bo, "error")) ?: "", "top_k"),
              "%ld %s", bad.status, bad.body);
    json_decref(bo);
    rresp nf = rt_http(r.url, NULL, "/api/chat",
                       "{\"model\":\"nope\",\"stream\":false,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", hk, NULL);
    CHECK_MSG(nf.status == 404 && strstr(nf.body, "{\"error\":") && strstr(nf.body, "nope"), "%ld %s", nf.status, nf.body);
    rresp ok = rt_http(r.url, NULL, "/api/chat",
                       "{\"model\":\"stories260K\",\"stream\":false,\"options\":{\"num_predict\":5},"
                       "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", hk, NULL);
    json_t *oo = json_loads(ok.body, 0, NULL);
    CHECK_MSG(ok.status == 200 && json_integer_value(json_object_get(oo, "eval_count")) == 5 &&
                  json_integer_value(json_object_get(oo, "eval_duration")) > 0 &&
                  json_integer_value(json_object_get(oo, "prompt_eval_duration")) > 0 && ok.engine[0],
              "%ld %s", ok.status, ok.body);
    json_decref(oo);
    static const char *const gets[] = {"/api/tags", "/api/version", "/api/ps"};
    for (int i = 0; i < 3; i++) {
        rresp g = rt_http(r.url, "GET", gets[i], NULL, hk, NULL);
        CHECK_MSG(g.status == 200 && (strstr(g.body, "\"models\"") || strstr(g.body, "\"version\"")), "%s: %ld %s", gets[i],
                  g.status, g.body);
        rt_free(&g);
    }
    rresp em = rt_http(r.url, NULL, "/api/embed", "{\"model\":\"stories260K\",\"input\":[\"a\",\"b\"]}", hk, NULL);
    json_t *eo = json_loads(em.body, 0, NULL);
    CHECK_MSG(em.status == 200 && json_array_size(json_object_get(eo, "embeddings")) == 2, "%ld %.300s", em.status, em.body);
    json_decref(eo);
    rt_free(&em);
    rt_free(&no);
    rt_free(&load);
    rt_free(&bad);
    rt_free(&nf);
    rt_free(&ok);
    stop_all(&r, 1);
    stop_all(&e, 1);
}

/* Ollama's model list and running models through a router in front of engines of two models: each model once,
 * with the engine's details (Ollama's form, and OpenAI's beside in the list); requests placed by model. */
TEST(ollama_models_merged_by_the_router) {
    sl_test_proc e[2], r;
    const char *urls[2];
    const char *a[] = {"--served-model-name", "tiny-a", NULL}, *b[] = {"--served-model-name", "tiny-b", NULL};
    CHECK(rt_start_engine(&e[0], a));
    CHECK(rt_start_engine(&e[1], b));
    urls[0] = e[0].url;
    urls[1] = e[1].url;
    CHECK(start_router(&r, urls, 2, NULL));
    for (int k = 0; k < 2; k++) {
        rresp g = rt_http(r.url, "GET", k ? "/api/ps" : "/api/tags", NULL, NULL, NULL);
        json_t *o = json_loads(g.body, 0, NULL), *models = json_object_get(o, "models");
        const char *n0 = json_string_value(json_object_get(json_array_get(models, 0), "name")),
                   *n1 = json_string_value(json_object_get(json_array_get(models, 1), "name"));
        CHECK_MSG(g.status == 200 && json_array_size(models) == 2 && n0 && n1 && strcmp(n0, n1) &&
                      (!strcmp(n0, "tiny-a") || !strcmp(n0, "tiny-b")) && (!strcmp(n1, "tiny-a") || !strcmp(n1, "tiny-b")) &&
                      json_is_object(json_object_get(json_array_get(models, 0), "details")) &&
                      (k || json_array_size(json_object_get(o, "data")) == 2),
                  "%s: %ld %s", k ? "/api/ps" : "/api/tags", g.status, g.body);
        json_decref(o);
        rt_free(&g);
    }
    /* engines given by URL alone are placed by the models their /v1/models lists (once the probe has read them:
     * the router's merged list has both): a chat to either name (Ollama's :latest too) reaches its engine */
    for (int i = 0; i < 100; i++) {
        rresp m = rt_http(r.url, "GET", "/v1/models", NULL, NULL, NULL);
        json_t *o = json_loads(m.body, 0, NULL);
        const size_t n = json_array_size(json_object_get(o, "data"));
        json_decref(o);
        rt_free(&m);
        if (n == 2) break;
        rt_sleep_ms(50);
    }
    for (int k = 0; k < 6; k++) {
        char body[256];
        snprintf(body, sizeof body, "{\"model\":\"tiny-%c%s\",\"stream\":false,\"options\":{\"num_predict\":3},"
                                    "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", k % 2 ? 'b' : 'a',
                 k < 2 ? ":latest" : "");
        rresp c = rt_post(r.url, "/api/chat", body);
        CHECK_MSG(c.status == 200 && !strcmp(c.engine, urls[k % 2]) && strstr(c.body, "\"done\":true"), "%d: %ld %s (%s)",
                  k, c.status, c.body, c.engine);
        rt_free(&c);
    }
    stop_all(&r, 1);
    stop_all(e, 2);
}

/* Anthropic's errors through the router: its own (a key missing, as x-api-key may carry it) and the engine's
 * (a field refused), in Anthropic's form. */
TEST(anthropic_errors_through_the_router) {
    sl_test_proc e, r;
    CHECK(rt_start_engine(&e, NULL));
    const char *urls[1] = {e.url};
    const char *extra[] = {"--api-key", "k3y", NULL};
    CHECK(start_router(&r, urls, 1, extra));
    static const char body[] = "{\"model\":\"stories260K\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}";
    rresp no = rt_post(r.url, "/v1/messages", body);
    CHECK_MSG(no.status == 401 && strstr(no.body, "\"type\":\"error\"") && strstr(no.body, "authentication_error"), "%s", no.body);
    const char *hk = "x-api-key: k3y";
    rresp ok = rt_http(r.url, NULL, "/v1/messages", body, hk, NULL);
    CHECK_MSG(ok.status == 200 && strstr(ok.body, "\"type\":\"message\""), "%ld %s", ok.status, ok.body);
    rresp bad = rt_http(r.url, NULL, "/v1/messages",
                        "{\"model\":\"stories260K\",\"max_tokens\":-3,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", hk,
                        NULL);
    CHECK_MSG(bad.status == 400 && strstr(bad.body, "\"type\":\"error\"") && strstr(bad.body, "invalid_request_error") &&
                  strstr(bad.body, "max_tokens"),
              "%ld %s", bad.status, bad.body);
    rt_free(&no);
    rt_free(&ok);
    rt_free(&bad);
    stop_all(&r, 1);
    /* several keys (separated by commas) and a key file: each accepted, nothing else */
    char keys[] = "/tmp/shardlm-keys-XXXXXX";
    CHECK(sl_test_temp_file(keys, "k3y-from-file\n"));
    const char *more[] = {"--api-key", "k3y,k4y", "--api-key-file", keys, NULL};
    CHECK(start_router(&r, urls, 1, more));
    static const char *const hdr[] = {"x-api-key: k4y", "Authorization: Bearer k3y-from-file", "Authorization: Bearer k3y",
                                      "Authorization: Bearer k3y,k4y", "Authorization: Bearer k3y-from"};
    for (int i = 0; i < 5; i++) {
        rresp a = rt_http(r.url, NULL, "/v1/messages", body, hdr[i], NULL);
        CHECK_MSG(a.status == (i < 3 ? 200 : 401), "%s: %ld %s", hdr[i], a.status, a.body);
        rt_free(&a);
    }
    stop_all(&r, 1);
    unlink(keys);
    stop_all(&e, 1);
}

TEST(responses_kept_by_the_router) {
    sl_test_proc e[2], r;
    const char *urls[2];
    for (int i = 0; i < 2; i++) {
        CHECK(rt_start_engine(&e[i], NULL));
        urls[i] = e[i].url;
    }
    CHECK(start_router(&r, urls, 2, NULL));
    rresp a = rt_post(r.url, "/v1/responses", "{\"input\":\"Tell me about Lily.\",\"max_output_tokens\":12,\"temperature\":0}");
    json_t *o1 = json_loads(a.body ? a.body : "", 0, NULL);
    const char *id1 = json_string_value(json_object_get(o1, "id"));
    char *t1 = rt_text(&a, NULL, NULL);
    CHECK(a.status == 200 && id1 && t1 && *t1);
    char *body = NULL;
    CHECK(asprintf(&body, "{\"previous_response_id\":\"%s\",\"input\":\"And Tim?\",\"max_output_tokens\":12,\"temperature\":0,"
                          "\"user\":\"someone-else\"}", id1 ? id1 : "") > 0);
    rresp b = rt_post(r.url, "/v1/responses", body);
    free(body);
    char *t2 = rt_text(&b, NULL, NULL);
    json_t *conv = json_pack("{s:[{s:s,s:s},{s:s,s:s},{s:s,s:s}],s:i,s:i}", "messages", "role", "user", "content",
                             "Tell me about Lily.", "role", "assistant", "content", t1 ? t1 : "", "role", "user", "content",
                             "And Tim?", "max_tokens", 12, "temperature", 0);
    body = json_dumps(conv, 0);
    json_decref(conv);
    rresp c = rt_post(e[0].url, "/v1/chat/completions", body);
    free(body);
    char *want = rt_text(&c, NULL, NULL);
    CHECK_MSG(b.status == 200 && t2 && want && !strcmp(t2, want), "second turn: %ld %s\n      chat: %s", b.status, t2, want);
    char path[160];
    snprintf(path, sizeof path, "/v1/responses/%s", id1 ? id1 : "none");
    rresp g = rt_http(r.url, "GET", path, NULL, NULL, NULL);
    json_t *og = json_loads(g.body ? g.body : "", 0, NULL);
    CHECK_MSG(g.status == 200 && json_equal(og, o1), "GET %s: %ld %.300s", path, g.status, g.body);
    /* the second turn's input items, kept here: the conversation, oldest first with order=asc, a page of 2 */
    json_t *ob = json_loads(b.body ? b.body : "", 0, NULL);
    char ipath[200];
    snprintf(ipath, sizeof ipath, "/v1/responses/%s/input_items?order=asc&limit=2",
             json_string_value(json_object_get(ob, "id")) ?: "none");
    rresp it = rt_http(r.url, "GET", ipath, NULL, NULL, NULL);
    json_t *io = json_loads(it.body ? it.body : "", 0, NULL), *i0 = json_array_get(json_object_get(io, "data"), 0);
    CHECK_MSG(it.status == 200 && json_array_size(json_object_get(io, "data")) == 2 &&
                  json_is_true(json_object_get(io, "has_more")) &&
                  !strcmp(json_string_value(json_object_get(json_array_get(json_object_get(i0, "content"), 0), "text")) ?: "",
                          "Tell me about Lily."),
              "%ld %s", it.status, it.body);
    json_decref(io);
    json_decref(ob);
    rt_free(&it);
    rresp n = rt_post(r.url, "/v1/responses", "{\"previous_response_id\":\"resp_nope\",\"input\":\"x\"}");
    CHECK_MSG(n.status == 404 && n.body && strstr(n.body, "previous_response_id"), "%ld %s", n.status, n.body);
    rresp del = rt_http(r.url, "DELETE", path, NULL, NULL, NULL), gone = rt_http(r.url, "GET", path, NULL, NULL, NULL);
    CHECK_MSG(del.status == 200 && gone.status == 404, "DELETE %ld, then GET %ld", del.status, gone.status);
    rt_free(&del);
    rt_free(&gone);
    json_decref(og);
    json_decref(o1);
    free(t1);
    free(t2);
    free(want);
    rt_free(&a);
    rt_free(&b);
    rt_free(&c);
    rt_free(&g);
    rt_free(&n);
    stop_all(&r, 1);
    stop_all(e, 2);
}

/* A Responses object's output text (its messages' text parts), malloc'd. */
static char *output_text(const json_t *o) {
    char *out = calloc(1, 1);
    size_t n = 0, i;
    const json_t *item;
    json_array_foreach(json_object_get(o, "output"), i, item) {
        const json_t *t = json_object_get(json_array_get(json_object_get(item, "content"), 0), "text");
        if (!json_is_string(t)) continue;
        out = realloc(out, n + json_string_length(t) + 1);
        memcpy(out + n, json_string_value(t), json_string_length(t) + 1);
        n += json_string_length(t);
    }
    return out;
}

/* GET the kept response id through url (with header hdr, or NULL) until its status is neither queued nor
 * in_progress (at most 60 s). */
static json_t *poll_kept_with(const char *url, const char *id, const char *hdr) {
    char path[200];
    snprintf(path, sizeof path, "/v1/responses/%s", id);
    for (int i = 0; i < 600; i++) {
        rresp g = rt_http(url, "GET", path, NULL, hdr, NULL);
        json_t *o = json_loads(g.body ? g.body : "", 0, NULL);
        rt_free(&g);
        const char *st = json_string_value(json_object_get(o, "status"));
        if (st && strcmp(st, "queued") && strcmp(st, "in_progress")) return o;
        json_decref(o);
        usleep(100 * 1000);
    }
    return NULL;
}

static json_t *poll_kept(const char *url, const char *id) { return poll_kept_with(url, id, NULL); }

/* Background responses through the router: answered queued at once, served by the router's own request (placed,
 * proxied, kept under the same id): read back done, with the foreground answer's text; of ten queued behind
 * an engine that runs one sequence at a time, the last is cancelled while it waits (kept cancelled); a stream
 * or "store": false in the background is a 400; SIGTERM with some still running ends 0. */
TEST(background_responses_through_the_router) {
    sl_test_proc e, r;
    const char *one_seq[] = {"--max-num-seqs", "1", NULL};
    CHECK(rt_start_engine(&e, one_seq));
    const char *urls[1] = {e.url};
    CHECK(start_router(&r, urls, 1, NULL));
    static const char fg[] = "{\"input\":\"Tell me a story.\",\"max_output_tokens\":250,\"temperature\":0}";
    static const char bgb[] = "{\"input\":\"Tell me a story.\",\"max_output_tokens\":250,\"temperature\":0,\"background\":true}";
    rresp f = rt_post(r.url, "/v1/responses", fg);
    json_t *fo = json_loads(f.body ? f.body : "", 0, NULL);
    char *want = output_text(fo);
    CHECK_MSG(f.status == 200 && strlen(want) > 100, "%ld %.300s", f.status, f.body);
    rresp b = rt_post(r.url, "/v1/responses", bgb);
    json_t *bo = json_loads(b.body ? b.body : "", 0, NULL);
    const char *id = json_string_value(json_object_get(bo, "id"));
    CHECK_MSG(b.status == 200 && id && !strcmp(json_string_value(json_object_get(bo, "status")) ?: "", "queued") &&
                  json_is_true(json_object_get(bo, "background")) && json_array_size(json_object_get(bo, "output")) == 0,
              "%ld %.300s", b.status, b.body);
    json_t *done = id ? poll_kept(r.url, id) : NULL;
    char *got = output_text(done);
    CHECK_MSG(!strcmp(got, want) && !strcmp(json_string_value(json_object_get(done, "status")) ?: "", "incomplete") &&
                  json_is_true(json_object_get(done, "background")) &&
                  !strcmp(json_string_value(json_object_get(done, "id")) ?: "", id ? id : "-"),
              "background: %.300s\n      foreground text: %.200s", got, want);
    free(got);
    json_decref(done);
    char ids[10][96];
    for (int i = 0; i < 10; i++) {
        rresp q = rt_post(r.url, "/v1/responses", bgb);
        json_t *qo = json_loads(q.body ? q.body : "", 0, NULL);
        snprintf(ids[i], sizeof ids[i], "%s", json_string_value(json_object_get(qo, "id")) ?: "");
        json_decref(qo);
        rt_free(&q);
    }
    char path[200];
    snprintf(path, sizeof path, "/v1/responses/%s/cancel", ids[9]);
    rresp cr = rt_post(r.url, path, "");
    json_t *co = json_loads(cr.body ? cr.body : "", 0, NULL);
    CHECK_MSG(cr.status == 200 && !strcmp(json_string_value(json_object_get(co, "status")) ?: "", "cancelled") &&
                  !strcmp(json_string_value(json_object_get(co, "id")) ?: "", ids[9]),
              "%ld %.300s", cr.status, cr.body);
    json_decref(co);
    rt_free(&cr);
    json_t *first = poll_kept(r.url, ids[0]);
    got = output_text(first);
    CHECK_MSG(!strcmp(got, want), "the first of ten: %.300s", got);
    free(got);
    json_decref(first);
    json_t *last = poll_kept(r.url, ids[9]); /* (still cancelled: its run ended there) */
    CHECK(last && !strcmp(json_string_value(json_object_get(last, "status")) ?: "", "cancelled"));
    json_decref(last);
    snprintf(path, sizeof path, "/v1/responses/%s/cancel", json_string_value(json_object_get(fo, "id")) ?: "x");
    rresp nb = rt_post(r.url, path, ""), nf = rt_post(r.url, "/v1/responses/resp_nope/cancel", "");
    rresp bs = rt_post(r.url, "/v1/responses", "{\"input\":\"x\",\"background\":true,\"stream\":true}"),
          bn = rt_post(r.url, "/v1/responses", "{\"input\":\"x\",\"background\":true,\"store\":false}");
    CHECK_MSG(nb.status == 400 && nf.status == 404 && bs.status == 400 && bn.status == 400 &&
                  strstr(bs.body ? bs.body : "", "\"param\":\"background\""),
              "%ld / %ld / %ld %s / %ld", nb.status, nf.status, bs.status, bs.body, bn.status);
    rt_free(&nb);
    rt_free(&nf);
    rt_free(&bs);
    rt_free(&bn);
    CHECK_EQ_INT(sl_test_proc_stop(&r, SIGTERM, 30), 0); /* (some still run: they finish or are cancelled) */
    stop_all(&e, 1);
    free(want);
    json_decref(fo);
    json_decref(bo);
    rt_free(&f);
    rt_free(&b);
}

/* A background response cancelled mid-answer keeps what it had: status "cancelled", its message "incomplete" with
 * a text that is a start of the whole answer. The engine is stopped (SIGSTOP) once it has made 30 tokens of the
 * background response's 450 (its metrics say), so the cancel finds it mid-answer. */
TEST(background_cancel_keeps_partial_output) {
    sl_test_proc e, r;
    CHECK(rt_start_engine(&e, NULL));
    const char *urls[1] = {e.url};
    const char *fall[] = {"--fall", "100", NULL}; /* (the engine's pause is not a failure) */
    CHECK(start_router(&r, urls, 1, fall));
    static const char fg[] = "{\"input\":\"Tell me a story.\",\"max_output_tokens\":450,\"temperature\":0}";
    static const char bgb[] = "{\"input\":\"Tell me a story.\",\"max_output_tokens\":450,\"temperature\":0,\"background\":true}";
    rresp f = rt_post(r.url, "/v1/responses", fg);
    json_t *fo = json_loads(f.body ? f.body : "", 0, NULL);
    char *want = output_text(fo);
    CHECK_MSG(f.status == 200 && strlen(want) > 400, "%ld %.300s", f.status, f.body);
    /* An attempt is inconclusive only when nothing the engine made had reached the router before it stopped (its
     * connection thread had not run yet on a loaded machine): the cancelled response then has no text at all.
     * Three such attempts fail the test. */
    for (int attempt = 0; attempt < 3; attempt++) {
        const double made0 = rt_metric(e.url, "shardlm_generation_tokens_total");
        rresp b = rt_post(r.url, "/v1/responses", bgb);
        json_t *bo = json_loads(b.body ? b.body : "", 0, NULL);
        const char *id = json_string_value(json_object_get(bo, "id"));
        CHECK_MSG(b.status == 200 && id, "%ld %.300s", b.status, b.body);
        double made = 0;
        for (double t0 = rt_now(); rt_now() - t0 < 30 && made < 30;) made = rt_metric(e.url, "shardlm_generation_tokens_total") - made0;
        kill(e.pid, SIGSTOP);
        CHECK_MSG(made >= 30 && made < 400, "stopped after %.0f tokens", made);
        rt_sleep_ms(300); /* (what the engine wrote before it stopped reaches the router's own request) */
        char path[200];
        snprintf(path, sizeof path, "/v1/responses/%s/cancel", id);
        rresp cr = rt_post(r.url, path, "");
        kill(e.pid, SIGCONT);
        json_t *co = json_loads(cr.body ? cr.body : "", 0, NULL);
        json_t *kept = poll_kept(r.url, id);
        bool empty = attempt < 2;
        for (int k = 0; k < 2; k++) {
            const json_t *o = k ? kept : co;
            char *got = output_text(o);
            empty &= !*got && json_array_size(json_object_get(o, "output")) == 0 &&
                     !strcmp(json_string_value(json_object_get(o, "status")) ?: "", "cancelled");
            free(got);
        }
        if (empty) fprintf(stderr, "    nothing had reached the router before the engine stopped: again\n");
        for (int k = 0; k < 2 && !empty; k++) {
            const json_t *o = k ? kept : co, *item = json_array_get(json_object_get(o, "output"), 0);
            char *got = output_text(o);
            CHECK_MSG(!strcmp(json_string_value(json_object_get(o, "status")) ?: "", "cancelled") &&
                          !strcmp(json_string_value(json_object_get(item, "status")) ?: "", "incomplete") && *got &&
                          strlen(got) < strlen(want) && !strncmp(got, want, strlen(got)),
                      "%s: %.400s\n      whole answer: %.200s", k ? "kept" : "cancel's answer", json_dumps(o, 0), want);
            free(got);
        }
        json_decref(co);
        json_decref(kept);
        rt_free(&cr);
        rt_free(&b);
        json_decref(bo);
        if (!empty) break;
    }
    rt_free(&f);
    json_decref(fo);
    free(want);
    stop_all(&r, 1);
    stop_all(&e, 1);
}

/* llama.cpp's /completion through the router: proxied as a completions request, answered in llama.cpp's
 * form as the engine answers it (content, stop_type, stopping_word, counts), whole and streamed; a stream
 * moved by a kill -9 continues exactly and closes once. */
TEST(llamacpp_completion_through_the_router) {
    sl_test_proc e, r;
    CHECK(rt_start_engine(&e, NULL));
    const char *urls[1] = {e.url};
    CHECK(start_router(&r, urls, 1, NULL));
    static const char body[] = "{\"prompt\":\"Once upon a time\",\"n_predict\":40,\"temperature\":0,\"stop\":[\"Lily\"]}";
    rresp a = rt_post(e.url, "/completion", body), b = rt_post(r.url, "/completion", body);
    json_t *oa = json_loads(a.body ? a.body : "", 0, NULL), *ob = json_loads(b.body ? b.body : "", 0, NULL);
    static const char *const same[] = {"content", "stop_type", "stopping_word", "tokens_predicted", "tokens_evaluated", "model", "stop"};
    bool ok = a.status == 200 && b.status == 200 && json_is_string(json_object_get(oa, "content"));
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) ok &= json_equal(json_object_get(oa, same[i]), json_object_get(ob, same[i]));
    CHECK_MSG(ok && !strcmp(json_string_value(json_object_get(ob, "stop_type")) ?: "", "word"), "engine %s\n      router %s",
              a.body, b.body);
    rresp c = rt_post(r.url, "/completion", "{\"prompt\":\"Once upon a time\",\"n_predict\":40,\"temperature\":0,"
                                            "\"stop\":[\"Lily\"],\"stream\":true}");
    int done = 0, errs = 0;
    char *t = rt_text(&c, &done, &errs);
    CHECK_MSG(t && !strcmp(t, json_string_value(json_object_get(oa, "content")) ?: "-") && done == 1 && errs == 0 &&
                  !strstr(c.body ? c.body : "", "[DONE]") && strstr(c.body ? c.body : "", "\"stopping_word\":\"Lily\""),
              "streamed: %s", c.body);
    free(t);
    /* response_fields through the router, as the engine keeps them */
    static const char rf[] = "{\"prompt\":\"Once upon a time\",\"n_predict\":4,\"temperature\":0,"
                             "\"response_fields\":[\"content\",\"stop_type\",\"timings/predicted_n\"]}";
    rresp fe = rt_post(e.url, "/completion", rf), fv = rt_post(r.url, "/completion", rf);
    json_t *ofe = json_loads(fe.body ? fe.body : "", 0, NULL), *ofv = json_loads(fv.body ? fv.body : "", 0, NULL);
    CHECK_MSG(json_object_size(ofv) == 3 && json_equal(json_object_get(ofe, "content"), json_object_get(ofv, "content")) &&
                  json_equal(json_object_get(ofe, "timings/predicted_n"), json_object_get(ofv, "timings/predicted_n")) &&
                  json_equal(json_object_get(ofe, "stop_type"), json_object_get(ofv, "stop_type")),
              "engine %s\n      router %s", fe.body, fv.body);
    json_decref(ofe);
    json_decref(ofv);
    rt_free(&fe);
    rt_free(&fv);
    /* n_probs: the engine's completion_probabilities through the router, whole and streamed (the records of the
     * stream's pieces, in order, are the whole answer's) */
    static const char np[] = "{\"prompt\":\"Once upon a time\",\"n_predict\":6,\"temperature\":0,\"n_probs\":3}",
                      nps[] = "{\"prompt\":\"Once upon a time\",\"n_predict\":6,\"temperature\":0,\"n_probs\":3,"
                              "\"stream\":true}";
    rresp pe = rt_post(e.url, "/completion", np), pv = rt_post(r.url, "/completion", np), ps = rt_post(r.url, "/completion", nps);
    json_t *ope = json_loads(pe.body ? pe.body : "", 0, NULL), *opv = json_loads(pv.body ? pv.body : "", 0, NULL);
    json_t *want_p = json_object_get(ope, "completion_probabilities"), *streamed = json_array();
    for (const char *q = ps.body ? strstr(ps.body, "data: ") : NULL; q; q = strstr(q + 6, "data: ")) {
        json_t *ev = json_loads(q + 6, JSON_DISABLE_EOF_CHECK, NULL);
        json_array_extend(streamed, json_object_get(ev, "completion_probabilities"));
        json_decref(ev);
    }
    CHECK_MSG(json_array_size(want_p) == 6 && json_array_size(json_object_get(json_array_get(want_p, 0), "top_logprobs")) == 3 &&
                  json_equal(want_p, json_object_get(opv, "completion_probabilities")) && json_equal(want_p, streamed),
              "engine %.300s\n      router %.300s\n      streamed %.300s", pe.body, pv.body, ps.body);
    json_decref(ope);
    json_decref(opv);
    json_decref(streamed);
    rt_free(&pe);
    rt_free(&pv);
    rt_free(&ps);
    /* n_predict 0 (a cache warm-up): the prompt computed, an empty answer, through the router as on the engine */
    rresp z = rt_post(r.url, "/completion", "{\"prompt\":\"Once upon a time\",\"n_predict\":0}");
    json_t *zo = json_loads(z.body ? z.body : "", 0, NULL);
    CHECK_MSG(z.status == 200 && !strcmp(json_string_value(json_object_get(zo, "content")) ?: "-", "") &&
                  json_integer_value(json_object_get(zo, "tokens_predicted")) == 0,
              "%ld %s", z.status, z.body);
    json_decref(zo);
    rt_free(&z);
    /* llama.cpp's sampling defaults where the body gives none, through the router as on the engine */
    static const char sampled[] = "{\"prompt\":\"Once upon a time\",\"n_predict\":24,\"seed\":7}";
    rresp d = rt_post(e.url, "/completion", sampled), f = rt_post(r.url, "/completion", sampled);
    json_t *od = json_loads(d.body ? d.body : "", 0, NULL), *of = json_loads(f.body ? f.body : "", 0, NULL);
    CHECK_MSG(d.status == 200 && json_equal(json_object_get(od, "content"), json_object_get(of, "content")),
              "engine %s\n      router %s", d.body, f.body);
    json_decref(od);
    json_decref(of);
    rt_free(&d);
    rt_free(&f);
    /* several prompts: each answer's own counts, whole and streamed, as the engine gives them (the router
     * gave each the whole generation's) */
    static const char many[] = "{\"prompt\":[\"Once upon a time\",\"Lily\"],\"n_predict\":12,\"temperature\":0,"
                               "\"stop\":[\"park\"]}",
                      many_s[] = "{\"prompt\":[\"Once upon a time\",\"Lily\"],\"n_predict\":12,\"temperature\":0,"
                                 "\"stop\":[\"park\"],\"stream\":true}";
    rresp me = rt_post(e.url, "/completion", many), mv = rt_post(r.url, "/completion", many),
          ms = rt_post(r.url, "/completion", many_s);
    char mu[64];
    char *te = choice_texts(&me, mu, sizeof mu), *tv = choice_texts(&mv, mu, sizeof mu), *ts = choice_texts(&ms, mu, sizeof mu);
    CHECK_MSG(me.status == 200 && strstr(te, "|limit 12") && !strcmp(te, tv) && !strcmp(te, ts),
              "engine %s\n      router %s\n      streamed %s", te, tv, ts);
    free(te);
    free(tv);
    free(ts);
    rt_free(&me);
    rt_free(&mv);
    rt_free(&ms);
    json_decref(oa);
    json_decref(ob);
    rt_free(&a);
    rt_free(&b);
    rt_free(&c);
    stop_all(&r, 1);
    stop_all(&e, 1);
}

TEST(kill9_midstream_llamacpp) {
    midstream_kill("/completion", "{\"prompt\":\"Once upon a time\",\"n_predict\":400,\"temperature\":0}",
                   "{\"prompt\":\"Once upon a time\",\"n_predict\":400,\"temperature\":0,\"stream\":true}");
}

/* llama.cpp's /infill through the router, streamed and killed mid-answer: sent as /v1/completions with the infill
 * fields (the engine builds the fill-in-the-middle prompt and names its ids), continued from those ids on the
 * other engine, llama.cpp's events to the end — the text of the undisturbed /infill. */
TEST(kill9_midstream_infill) {
    char model[] = "/tmp/shardlm-rt-fim-XXXXXX";
    CHECK(sl_test_temp_file(model, NULL));
    char *mk[] = {(char *)sl_test_bin(), "mkmodel", "-o", model, "--dim", "64", "--layers", "2", "--heads", "4", "--ffn",
                  "128", "--ctx", "4096", "--type", "F32", "--seed", "6", "--vocab-from",
                  (char *)sl_test_shared("golden/tokenizer/ggml-vocab-deepseek-coder.gguf"), NULL};
    char *out = NULL, *err = NULL;
    CHECK_MSG(mk[19] && sl_test_run(mk, &out, &err, 60) == 0, "mkmodel: %s", err);
    free(out);
    free(err);
    const char *extra[] = {"-m", model, NULL};
    midstream_kill_with("/infill",
                        "{\"input_prefix\":\"def add(a, b):\\n    \",\"input_suffix\":\"\\n\\nprint(add(1, 2))\\n\","
                        "\"n_predict\":400,\"temperature\":0}",
                        "{\"input_prefix\":\"def add(a, b):\\n    \",\"input_suffix\":\"\\n\\nprint(add(1, 2))\\n\","
                        "\"n_predict\":400,\"temperature\":0,\"stream\":true}",
                        extra, false);
    unlink(model);
}

/* With --api-key the router checks the key before it reads a Responses body or its kept responses. */
TEST(responses_need_the_key) {
    sl_test_proc e, r;
    CHECK(rt_start_engine(&e, NULL));
    const char *urls[1] = {e.url};
    const char *extra[] = {"--api-key", "k3y", NULL};
    CHECK(start_router(&r, urls, 1, extra));
    rresp a = rt_post(r.url, "/v1/responses", "{\"previous_response_id\":\"resp_x\",\"input\":\"x\"}");
    rresp b = rt_http(r.url, "GET", "/v1/responses/resp_x", NULL, NULL, NULL);
    rresp c = rt_http(r.url, "GET", "/v1/responses/resp_x", NULL, "Authorization: Bearer k3y", NULL);
    rresp d = rt_http(r.url, NULL, "/v1/responses", "{\"input\":\"Hi\",\"max_output_tokens\":2}", "Authorization: Bearer k3y", NULL);
    CHECK_EQ_INT(a.status, 401);
    CHECK_EQ_INT(b.status, 401);
    CHECK_EQ_INT(c.status, 404);
    /* a CORS preflight needs no key (browsers send none with it) */
    rresp pf = rt_http(r.url, "OPTIONS", "/v1/chat/completions", NULL, "Origin: http://a.example",
                       "Access-Control-Request-Method: POST");
    CHECK_EQ_INT(pf.status, 204);
    rt_free(&pf);
    CHECK_MSG(d.status == 200 && d.body && strstr(d.body, "\"object\":\"response\""), "%ld %s", d.status, d.body);
    /* a background response: the router's own request carries the client's key, and is served */
    rresp bg = rt_http(r.url, NULL, "/v1/responses", "{\"input\":\"Hi\",\"max_output_tokens\":2,\"background\":true}",
                       "Authorization: Bearer k3y", NULL);
    json_t *bgo = json_loads(bg.body ? bg.body : "", 0, NULL);
    json_t *bgd = bg.status == 200 ? poll_kept_with(r.url, json_string_value(json_object_get(bgo, "id")) ?: "x", "Authorization: Bearer k3y") : NULL;
    CHECK_MSG(bgd && !strcmp(json_string_value(json_object_get(bgd, "status")) ?: "", "incomplete"), "%ld %s", bg.status, bg.body);
    json_decref(bgo);
    json_decref(bgd);
    rt_free(&bg);
    rt_free(&a);
    rt_free(&b);
    rt_free(&c);
    rt_free(&d);
    stop_all(&r, 1);
    stop_all(&e, 1);
}

/* An engine that fails before the first byte: the request goes to the next
 * engine; the failed one leaves the ring at once. */
TEST(retry_before_first_byte) {
    sl_test_proc e[2], r;
    const char *urls[2];
    CHECK(start_engines(e, 2, urls));
    const char *slow_probe[] = {"--probe-interval-ms", "60000", NULL};
    CHECK(start_router(&r, urls, 2, slow_probe));
    sl_test_proc_stop(&e[0], SIGKILL, 5); /* the router's probes will not notice for a minute */
    for (int i = 0; i < 20; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"prompt\":\"Hi\",\"max_tokens\":2,\"user\":\"u%d\"%s}", i,
                 i % 2 ? ",\"stream\":true" : "");
        rresp x = rt_post(r.url, "/v1/completions", body);
        CHECK_MSG(x.status == 200, "request %d: %ld %s", i, x.status, x.body);
        CHECK_STR(x.engine, urls[1]);
        rt_free(&x);
    }
    CHECK(rt_metric(r.url, "shardlm_router_retries_total") >= 1);
    CHECK(rt_metric(r.url, "shardlm_router_engine_up") == 1);
    stop_all(&r, 1);
    stop_all(e, 2);
}

/* POST /v1/embeddings through the router: the engine's answer, placed by the user's session (the same engine
 * each time), and retried whole on the other engine when its engine is dead. */
TEST(embeddings_through_the_router) {
    sl_test_proc e[2], r;
    const char *urls[2];
    CHECK(start_engines(e, 2, urls));
    const char *slow_probe[] = {"--probe-interval-ms", "60000", NULL};
    CHECK(start_router(&r, urls, 2, slow_probe));
    static const char body[] = "{\"input\":[\"Once upon a time\",[1,500,200]],\"user\":\"u7\"}";
    rresp direct = rt_post(e[0].url, "/v1/embeddings", body);
    json_t *wdoc = json_loads(direct.body ? direct.body : "", 0, NULL), *want = json_object_get(wdoc, "data");
    CHECK_MSG(direct.status == 200 && json_array_size(want) == 2, "%ld %s", direct.status, direct.body);
    char *engine = NULL;
    for (int i = 0; i < 3; i++) {
        rresp x = rt_post(r.url, "/v1/embeddings", body);
        json_t *o = json_loads(x.body ? x.body : "", 0, NULL);
        CHECK_MSG(x.status == 200 && json_equal(json_object_get(o, "data"), want), "%ld %.300s", x.status, x.body);
        if (!engine) engine = strdup(x.engine);
        CHECK_STR(x.engine, engine);
        json_decref(o);
        rt_free(&x);
    }
    rresp inv = rt_post(r.url, "/invocations", body); /* (SageMaker's: the engine embeds an input) */
    json_t *io = json_loads(inv.body ? inv.body : "", 0, NULL);
    CHECK_MSG(inv.status == 200 && json_equal(json_object_get(io, "data"), want), "%ld %.300s", inv.status, inv.body);
    json_decref(io);
    rt_free(&inv);
    inv = rt_post(r.url, "/invocations", "{\"nothing\":1}");
    CHECK_MSG(inv.status == 400 && strstr(inv.body ? inv.body : "", "POST /invocations takes"), "%ld %.300s", inv.status, inv.body);
    rt_free(&inv);
    const int dead = !strcmp(engine, urls[0]) ? 0 : 1;
    sl_test_proc_stop(&e[dead], SIGKILL, 5); /* the router's probes will not notice for a minute */
    rresp x = rt_post(r.url, "/v1/embeddings", body);
    json_t *o = json_loads(x.body ? x.body : "", 0, NULL);
    CHECK_MSG(x.status == 200 && json_equal(json_object_get(o, "data"), want), "%ld %.300s", x.status, x.body);
    CHECK_STR(x.engine, urls[1 - dead]);
    CHECK(rt_metric(r.url, "shardlm_router_retries_total") >= 1);
    json_decref(o);
    rt_free(&x);
    json_decref(wdoc);
    free(engine);
    rt_free(&direct);
    stop_all(&r, 1);
    stop_all(e, 2);
}

/* POST /rerank and /score through the router: the engine's results, placed by the query (the same engine each
 * time), retried whole on the other engine when its engine is dead. */
TEST(rerank_through_the_router) {
    char model[] = "/tmp/shardlm-rt-rerank-XXXXXX";
    CHECK(make_reranker(RT_MODEL, model, 42, 7, NULL));
    sl_test_proc e[2], r;
    const char *urls[2];
    const char *extra[] = {"-m", model, "--reranking", NULL};
    for (int i = 0; i < 2; i++) {
        CHECK(rt_start_engine(&e[i], extra));
        urls[i] = e[i].url;
    }
    const char *slow_probe[] = {"--probe-interval-ms", "60000", NULL};
    CHECK(start_router(&r, urls, 2, slow_probe));
    static const struct {
        const char *path, *body, *key;
    } reqs[] = {{"/v1/rerank", "{\"query\":\"Once upon a time\",\"documents\":[\"a dog\",\"Lily\"],\"top_n\":1}", "results"},
                {"/score", "{\"text_1\":\"Once upon a time\",\"text_2\":[\"a dog\",\"Lily\"]}", "data"}};
    char *engine = NULL;
    for (size_t k = 0; k < 2 && !sl_test_failed(); k++) {
        rresp direct = rt_post(e[0].url, reqs[k].path, reqs[k].body);
        json_t *wdoc = json_loads(direct.body ? direct.body : "", 0, NULL), *want = json_object_get(wdoc, reqs[k].key);
        CHECK_MSG(direct.status == 200 && json_array_size(want) > 0, "%ld %s", direct.status, direct.body);
        for (int i = 0; i < 3; i++) {
            rresp x = rt_post(r.url, reqs[k].path, reqs[k].body);
            json_t *o = json_loads(x.body ? x.body : "", 0, NULL);
            CHECK_MSG(x.status == 200 && json_equal(json_object_get(o, reqs[k].key), want), "%ld %.300s", x.status, x.body);
            if (!engine) engine = strdup(x.engine);
            CHECK_STR(x.engine, engine);
            json_decref(o);
            rt_free(&x);
        }
        if (k == 1) { /* the placed engine dies: the other one answers */
            const int dead = !strcmp(engine, urls[0]) ? 0 : 1;
            sl_test_proc_stop(&e[dead], SIGKILL, 5);
            rresp x = rt_post(r.url, reqs[k].path, reqs[k].body);
            json_t *o = json_loads(x.body ? x.body : "", 0, NULL);
            CHECK_MSG(x.status == 200 && json_equal(json_object_get(o, reqs[k].key), want), "%ld %.300s", x.status, x.body);
            CHECK_STR(x.engine, urls[1 - dead]);
            CHECK(rt_metric(r.url, "shardlm_router_retries_total") >= 1);
            json_decref(o);
            rt_free(&x);
        }
        json_decref(wdoc);
        rt_free(&direct);
    }
    free(engine);
    stop_all(&r, 1);
    stop_all(e, 2);
    unlink(model);
}

/* Nothing left to try: an SSE error event and [DONE] mid-stream, an error
 * status before it — never a hang. */
TEST(no_engine_left) {
    sl_test_proc e[1], r;
    const char *urls[1];
    CHECK(start_engines(e, 1, urls));
    CHECK(start_router(&r, urls, 1, NULL));
    rresp got;
    memset(&got, 0, sizeof got);
    pid_t pids[1] = {e[0].pid};
    got.kill_after = 10;
    got.engine_urls = urls;
    got.engine_pids = pids;
    got.n_engine = 1;
    struct curl_slist *hl = NULL;
    CURL *h = rt_easy(r.url, NULL, "/v1/completions",
                      "{\"prompt\":\"Once upon a time\",\"max_tokens\":400,\"temperature\":0,\"stream\":true}", NULL, NULL,
                      &got, &hl, 30);
    double t0 = rt_now();
    CURLcode rc = curl_easy_perform(h);
    curl_easy_cleanup(h);
    curl_slist_free_all(hl);
    CHECK_MSG(rc == CURLE_OK, "stream: %s", curl_easy_strerror(rc));
    CHECK(rt_now() - t0 < 10);
    int done = 0, errs = 0;
    char *t = rt_text(&got, &done, &errs);
    CHECK_EQ_INT(done, 1);
    CHECK_EQ_INT(errs, 1);
    free(t);
    rt_free(&got);
    rresp x = rt_post(r.url, "/v1/completions", "{\"prompt\":\"Hi\",\"max_tokens\":2}");
    CHECK_MSG(x.status == 503 || x.status == 502, "status %ld", x.status);
    CHECK(strstr(x.body, "\"error\"") != NULL);
    rt_free(&x);
    rresp rd = rt_http(r.url, NULL, "/ready", NULL, NULL, NULL);
    CHECK_EQ_INT(rd.status, 503);
    rt_free(&rd);
    stop_all(&r, 1);
}

/* Rollout by weight between versions, sticky per session, changed and rolled back at run time. */
TEST(rollout_weights_admin) {
    sl_test_proc e[2], r;
    const char *urls[2];
    CHECK(start_engines(e, 2, urls));
    char u1[160], u2[160];
    snprintf(u1, sizeof u1, "%s#v1", urls[0]);
    snprintf(u2, sizeof u2, "%s#v2", urls[1]);
    const char *vurls[2] = {u1, u2};
    const char *extra[] = {"--admin-key", "sekret", NULL};
    CHECK(start_router(&r, vurls, 2, extra));
    rresp no = rt_http(r.url, "PUT", "/admin/rollout", "{\"v1\":90,\"v2\":10}", NULL, NULL);
    CHECK_EQ_INT(no.status, 401);
    rresp put = rt_http(r.url, "PUT", "/admin/rollout", "{\"weights\":{\"v1\":90,\"v2\":10}}",
                        "Authorization: Bearer sekret", NULL);
    CHECK_MSG(put.status == 200, "%ld %s", put.status, put.body);
    int on_v2 = 0;
    char first[64][256];
    for (int i = 0; i < 1000; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"prompt\":\"Hi\",\"max_tokens\":1,\"user\":\"s%d\"}", i);
        rresp x = rt_post(r.url, "/v1/completions", body);
        CHECK_EQ_INT(x.status, 200);
        if (!strcmp(x.engine, urls[1])) on_v2++;
        if (i < 64) snprintf(first[i], sizeof first[i], "%s", x.engine);
        rt_free(&x);
    }
    printf("  90/10 rollout: %d of 1000 sessions on v2\n", on_v2);
    CHECK_MSG(on_v2 >= 60 && on_v2 <= 140, "%d of 1000 sessions on v2 with weight 10%%", on_v2);
    for (int i = 0; i < 64; i++) { /* sticky: the same session, the same version */
        char body[128];
        snprintf(body, sizeof body, "{\"prompt\":\"Hi\",\"max_tokens\":1,\"user\":\"s%d\"}", i);
        rresp x = rt_post(r.url, "/v1/completions", body);
        CHECK_STR(x.engine, first[i]);
        rt_free(&x);
    }
    /* rollback */
    rresp back = rt_http(r.url, "PUT", "/admin/rollout", "{\"v1\":100,\"v2\":0}", "Authorization: Bearer sekret", NULL);
    CHECK_EQ_INT(back.status, 200);
    for (int i = 0; i < 100; i++) {
        char body[128];
        snprintf(body, sizeof body, "{\"prompt\":\"Hi\",\"max_tokens\":1,\"user\":\"s%d\"}", i);
        rresp x = rt_post(r.url, "/v1/completions", body);
        CHECK_STR(x.engine, urls[0]);
        rt_free(&x);
    }
    rresp get = rt_http(r.url, NULL, "/admin/rollout", NULL, "Authorization: Bearer sekret", NULL);
    CHECK(strstr(get.body, "\"v1\":100") != NULL);
    rt_free(&no);
    rt_free(&put);
    rt_free(&back);
    rt_free(&get);
    stop_all(&r, 1);
    stop_all(e, 2);
}

/* `shardlm cluster up` starts engines and a router; SIGTERM stops them all. */
TEST(cluster_up) {
    sl_test_proc c;
    char *args[] = {"cluster", "up", "-n", "2", "-m", RT_MODEL, "--port", "0", "--kv-mem", "64", NULL};
    CHECK(rt_start(&c, args));
    rresp x = rt_post(c.url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":10,\"temperature\":0}");
    CHECK_EQ_INT(x.status, 200);
    CHECK(strncmp(x.engine, "http://127.0.0.1:", 17) == 0);
    CHECK(rt_metric(c.url, "shardlm_router_engines") == 2);
    rt_free(&x);
    CHECK_EQ_INT(sl_test_proc_stop(&c, SIGTERM, 20), 0);
    /* its engines went with it */
    rresp y = rt_post(x.engine, "/health", NULL);
    CHECK(y.status == 0);
    rt_free(&y);
}

/* An engine that stops answering (SIGSTOP) mid-stream: after --upstream-timeout
 * of silence the stream moves on and still equals the undisturbed output. */
TEST(stalled_engine_times_out) {
    sl_test_proc e[2], r, ref;
    const char *urls[2];
    CHECK(start_engines(e, 2, urls));
    CHECK(rt_start_engine(&ref, NULL));
    const char *extra[] = {"--upstream-timeout", "1", NULL};
    CHECK(start_router(&r, urls, 2, extra));
    const char *plain = "{\"prompt\":\"Once upon a time\",\"max_tokens\":400,\"temperature\":0}";
    const char *stream = "{\"prompt\":\"Once upon a time\",\"max_tokens\":400,\"temperature\":0,\"stream\":true}";
    rresp want = rt_post(ref.url, "/v1/completions", plain);
    char *wt = rt_text(&want, NULL, NULL);
    rresp got;
    memset(&got, 0, sizeof got);
    /* rt_on_data sends SIGKILL; for a stall we stop the engine by hand from the header instead */
    struct curl_slist *hl = NULL;
    CURL *h = rt_easy(r.url, NULL, "/v1/completions", stream, NULL, NULL, &got, &hl, 60);
    CURLM *m = curl_multi_init();
    curl_multi_add_handle(m, h);
    int running = 1;
    pid_t stopped = 0;
    double t0 = rt_now();
    while (running) {
        curl_multi_perform(m, &running);
        if (!stopped && got.events >= 20) {
            int k = rt_which(got.engine, urls, 2);
            CHECK(k >= 0);
            stopped = e[k].pid;
            kill(stopped, SIGSTOP);
        }
        if (running) curl_multi_poll(m, NULL, 0, 20, NULL);
    }
    curl_multi_remove_handle(m, h);
    curl_easy_cleanup(h);
    curl_multi_cleanup(m);
    curl_slist_free_all(hl);
    CHECK(stopped > 0);
    kill(stopped, SIGCONT);
    double took = rt_now() - t0;
    int done = 0, errs = 0;
    char *gt = rt_text(&got, &done, &errs);
    CHECK_EQ_INT(errs, 0);
    CHECK_EQ_INT(done, 1);
    CHECK_MSG(!strcmp(gt, wt), "stream after a stall differs:\n got  %.200s\n want %.200s", gt, wt);
    CHECK_MSG(took < 10, "took %.1f s", took);
    CHECK_EQ_INT(rt_metric(r.url, "shardlm_router_migrations_total"), 1);
    free(gt);
    free(wt);
    rt_free(&got);
    rt_free(&want);
    stop_all(&r, 1);
    stop_all(e, 2);
    stop_all(&ref, 1);
}

/* Raw HTTP/1.1 on one connection: pipelining, chunked and Expect bodies, errors. */
static int raw_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Read until `n` responses (by Content-Length) arrived or the peer closed. */
static char *raw_read(int fd, int n, bool *closed) {
    size_t cap = 65536, len = 0;
    char *buf = calloc(1, cap);
    *closed = false;
    for (;;) {
        int got = 0;
        const char *p = buf;
        while (p && (p = strstr(p, "HTTP/1.1 ")) != NULL) {
            const char *e = strstr(p, "\r\n\r\n");
            if (!e) break;
            const char *cl = strcasestr(p, "Content-Length:");
            size_t bl = cl && cl < e ? (size_t)atol(cl + 15) : 0;
            if ((size_t)(e + 4 - buf) + bl > len) break;
            if (strncmp(p, "HTTP/1.1 100", 12) != 0) got++;
            p = e + 4 + bl;
        }
        if (got >= n) return buf;
        ssize_t k = read(fd, buf + len, cap - len - 1);
        if (k <= 0) {
            *closed = true;
            return buf;
        }
        len += (size_t)k;
        buf[len] = '\0';
    }
}

TEST(http_edge_cases) {
    sl_test_proc e[1], r;
    const char *urls[1];
    CHECK(start_engines(e, 1, urls));
    const char *extra[] = {"--max-body-bytes", "4096", NULL};
    CHECK(start_router(&r, urls, 1, extra));
    /* two pipelined requests, the second with a chunked body, in one write */
    int fd = raw_connect(r.port);
    CHECK(fd >= 0);
    const char *two = "POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n{\"prompt\":\"Hello\"} \n"
                      "POST /tokenize HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "b\r\n{\"prompt\":\"\r\n8\r\nGoodbye\"\r\n1\r\n}\r\n0\r\n\r\n";
    CHECK(write(fd, two, strlen(two)) == (ssize_t)strlen(two));
    bool closed;
    char *out = raw_read(fd, 2, &closed);
    CHECK_MSG(!closed, "connection closed: %s", out);
    char *first = strstr(out, "HTTP/1.1 200"), *second = first ? strstr(first + 1, "HTTP/1.1 200") : NULL;
    CHECK_MSG(first && second, "expected two 200 answers: %s", out);
    CHECK(strstr(out, "x-shardlm-engine: ") != NULL);
    free(out);
    /* Expect: 100-continue gets its interim answer before the body is sent */
    const char *head = "POST /tokenize HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 18\r\n\r\n";
    CHECK(write(fd, head, strlen(head)) == (ssize_t)strlen(head));
    char interim[64] = {0};
    CHECK(read(fd, interim, 25) == 25);
    CHECK(strncmp(interim, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
    CHECK(write(fd, "{\"prompt\":\"Hello\"}", 18) == 18);
    out = raw_read(fd, 1, &closed);
    CHECK(strstr(out, "HTTP/1.1 200") != NULL);
    free(out);
    close(fd);
    /* a body over the limit: 413 and the connection closes */
    fd = raw_connect(r.port);
    const char *big = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n";
    CHECK(write(fd, big, strlen(big)) == (ssize_t)strlen(big));
    out = raw_read(fd, 1, &closed);
    CHECK_MSG(strstr(out, "HTTP/1.1 413") != NULL, "%s", out);
    free(out);
    out = raw_read(fd, 2, &closed);
    CHECK(closed);
    free(out);
    close(fd);
    /* garbage: 400 with a JSON error, then close */
    fd = raw_connect(r.port);
    const char *junk = "HELLO THERE\r\n\r\n";
    CHECK(write(fd, junk, strlen(junk)) == (ssize_t)strlen(junk));
    out = raw_read(fd, 1, &closed);
    CHECK_MSG(strstr(out, "HTTP/1.1 400") != NULL && strstr(out, "\"error\"") != NULL, "%s", out);
    free(out);
    close(fd);
    /* garbage that is not UTF-8: the message quoting it is scrubbed, still a JSON error object */
    fd = raw_connect(r.port);
    const char *junk8 = "GET / \xc8TTP/1.1\r\n\r\n";
    CHECK(write(fd, junk8, strlen(junk8)) == (ssize_t)strlen(junk8));
    out = raw_read(fd, 1, &closed);
    CHECK_MSG(strstr(out, "HTTP/1.1 505") != NULL && strstr(out, "\"error\"") != NULL && strstr(out, "?TTP") != NULL,
              "%s", out);
    free(out);
    close(fd);
    /* a POST without a body goes to the engine, whose 400 names it (the router once passed memcpy the body's
     * NULL pointer: UBSan stopped it) */
    fd = raw_connect(r.port);
    const char *nobody = "POST /completion HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    CHECK(write(fd, nobody, strlen(nobody)) == (ssize_t)strlen(nobody));
    out = raw_read(fd, 1, &closed);
    CHECK_MSG(strstr(out, "HTTP/1.1 400") != NULL && strstr(out, "\"error\"") != NULL, "%s", out);
    free(out);
    close(fd);
    /* the router still serves */
    rresp x = rt_post(r.url, "/tokenize", "{\"prompt\":\"Hello\"}");
    CHECK_EQ_INT(x.status, 200);
    rt_free(&x);
    stop_all(&r, 1);
    stop_all(e, 1);
}

/* Active probes: an engine that stops answering /ready leaves the rotation
 * after --fall failed probes and comes back after --rise good ones. */
TEST(probe_eject_and_readmit) {
    sl_test_proc e[2], r;
    const char *urls[2];
    CHECK(start_engines(e, 2, urls));
    const char *extra[] = {"--fall", "2", "--rise", "3", NULL};
    CHECK(start_router(&r, urls, 2, extra)); /* probes every 200 ms (start_router) */
    CHECK(rt_metric(r.url, "shardlm_router_engine_up") == 2);
    kill(e[0].pid, SIGSTOP);
    double t0 = rt_now();
    bool out = rt_wait_metric(r.url, "shardlm_router_engine_up", 1, 10);
    kill(e[0].pid, SIGCONT);
    CHECK_MSG(out, "a frozen engine stayed in rotation");
    printf("  frozen engine out of rotation after %.2f s\n", rt_now() - t0);
    for (int i = 0; i < 10; i++) { /* meanwhile everything goes to the other one */
        char body[96];
        snprintf(body, sizeof body, "{\"prompt\":\"Hi\",\"max_tokens\":1,\"user\":\"p%d\"}", i);
        rresp x = rt_post(r.url, "/v1/completions", body);
        CHECK_EQ_INT(x.status, 200);
        rt_free(&x);
    }
    t0 = rt_now();
    CHECK_MSG(rt_wait_metric(r.url, "shardlm_router_engine_up", 2, 10), "the engine did not come back");
    double back = rt_now() - t0;
    printf("  back in rotation after %.2f s\n", back);
    CHECK_MSG(back >= 0.3, "re-admitted after %.2f s: sooner than 3 probes 200 ms apart allow", back);
    CHECK(rt_metric(r.url, "shardlm_router_engine_ejections_total") >= 1);
    stop_all(&r, 1);
    stop_all(e, 2);
}

static size_t leave_after_5(char *p, size_t sz, size_t nm, void *ud) {
    const size_t n = rt_on_data(p, sz, nm, ud);
    return ((rresp *)ud)->events >= 5 ? 0 : n; /* (the client hangs up) */
}

/* The router's access log: a line per request on stderr — a proxied one with the engine that answered
 * and how many failed before it; none for a health check that succeeds. */
TEST(router_access_log) {
    sl_test_proc e, r;
    CHECK(rt_start_engine(&e, NULL));
    char eng[128], log[] = "/tmp/shardlm-raccess-XXXXXX";
    snprintf(eng, sizeof eng, "one=%s", e.url);
    CHECK(sl_test_temp_file(log, NULL));
    char *args[] = {"route", "--port", "0", "--probe-interval-ms", "200", "--engine", eng, "--no-access-log=0", NULL};
    CHECK(sl_test_proc_start_log(&r, args, 60, log) == 0);
    CHECK(rt_wait_ready(r.url, 20));
    rresp a = rt_post(r.url, "/v1/chat/completions",
                      "{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":4,\"user\":\"ann\"}");
    CHECK_EQ_INT(a.status, 200);
    rt_free(&a);
    a = rt_post(r.url, "/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":4,\"stream\":true}");
    CHECK_EQ_INT(a.status, 200);
    rt_free(&a);
    a = rt_http(r.url, "GET", "/nope", NULL, NULL, NULL);
    CHECK_EQ_INT(a.status, 404);
    rt_free(&a);
    a = rt_http(r.url, "GET", "/health", NULL, NULL, NULL);
    CHECK_EQ_INT(a.status, 200);
    rt_free(&a);
    { /* a client that leaves mid-stream still gets its line (it once went unwritten) */
        rresp s;
        memset(&s, 0, sizeof s);
        struct curl_slist *hl = NULL;
        CURL *h = rt_easy(r.url, NULL, "/v1/chat/completions",
                          "{\"messages\":[{\"role\":\"user\",\"content\":\"Tell me a story\"}],\"max_tokens\":400,"
                          "\"stream\":true}", NULL, NULL, &s, &hl, 30);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, leave_after_5);
        curl_easy_perform(h);
        curl_easy_cleanup(h);
        curl_slist_free_all(hl);
        rt_free(&s);
        rt_sleep_ms(300);
    }
    stop_all(&r, 1);
    stop_all(&e, 1);
    char *all = sl_test_read_file(log, NULL);
    CHECK_MSG(all && strstr(all, "shardlm route: POST /v1/chat/completions 200 engine one, 0 failed, ") &&
                  strstr(strstr(all, "shardlm route: POST /v1/chat/completions 200 engine one, 0 failed, ") + 10,
                         "shardlm route: POST /v1/chat/completions 200 engine one, 0 failed, "),
              "the stream the client left has no line: %s", all ? all : "");
    CHECK(all);
    CHECK_MSG(all && strstr(all, "shardlm route: POST /v1/chat/completions 200 engine one, 0 failed, "), "%s", all);
    CHECK_MSG(all && strstr(all, "shardlm route: POST /v1/completions 200 engine one, 0 failed, "), "%s", all);
    CHECK_MSG(all && strstr(all, "shardlm route: GET /nope 404 "), "%s", all);
    CHECK_MSG(all && !strstr(all, "GET /health"), "%s", all);
    free(all);
    unlink(log);
}

/* The router on an IPv6 wildcard (IPv4 clients too) in front of an engine on [::1], where this machine has
 * IPv6; on a name (localhost) everywhere. */
TEST(router_host_forms) {
    sl_test_proc e, r;
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    const bool v6 = fd >= 0 && bind(fd, (struct sockaddr *)&a6, sizeof a6) == 0;
    if (fd >= 0) close(fd);
    const char *host[] = {"--host", v6 ? "::1" : "localhost", NULL};
    CHECK(rt_start_engine(&e, host));
    char eng[96];
    snprintf(eng, sizeof eng, v6 ? "http://[::1]:%d" : "http://localhost:%d", e.port);
    char *args[] = {"route", "--port", "0", "--probe-interval-ms", "200", "--engine", eng, "--host", v6 ? "::" : "localhost", NULL};
    CHECK(rt_start(&r, args));
    CHECK(rt_wait_ready(r.url, 20)); /* (127.0.0.1) */
    rresp a = rt_post(r.url, "/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":4}");
    CHECK_MSG(a.status == 200 && strstr(a.body, "text_completion"), "%ld %s", a.status, a.body);
    rt_free(&a);
    if (v6) {
        char u6[64];
        snprintf(u6, sizeof u6, "http://[::1]:%d", r.port);
        a = rt_http(u6, "GET", "/v1/models", NULL, NULL, NULL);
        CHECK_EQ_INT(a.status, 200);
        rt_free(&a);
    } else {
        printf("    (no IPv6 on this machine: localhost only)\n");
    }
    stop_all(&r, 1);
    stop_all(&e, 1);
}

/* Engines serving HTTPS (https:// URLs, their certificate verified against --engine-ca): proxied whole and
 * streamed, and a stream continued on the other engine when its engine is killed mid-answer; without the CA
 * (the system's do not know a self-signed certificate) no engine comes into rotation. */
TEST(https_engines) {
    char key[] = "/tmp/shardlm-key-XXXXXX", cert[] = "/tmp/shardlm-cert-XXXXXX";
    CHECK(tls_make_cert(key, cert));
    rt_tls_ca = cert;
    const char *tls[] = {"--ssl-keyfile", key, "--ssl-certfile", cert, NULL};
    const char *ca[] = {"--engine-ca", cert, NULL};
    midstream_kill_tls("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":400,\"temperature\":0}",
                       "{\"prompt\":\"Once upon a time\",\"max_tokens\":400,\"temperature\":0,\"stream\":true}", tls, false, ca);
    sl_test_proc e, r;
    CHECK(rt_start_engine(&e, tls));
    CHECK_MSG(!strncmp(e.url, "https://", 8), "%s", e.url);
    char *args[] = {"route", "--port", "0", "--probe-interval-ms", "200", "--engine", e.url, NULL};
    CHECK(rt_start(&r, args));
    rt_sleep_ms(800);
    rresp a = rt_post(r.url, "/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":4}");
    CHECK_MSG(a.status == 503 || a.status == 502, "an engine whose certificate is not trusted answered: %ld %s", a.status, a.body);
    rt_free(&a);
    stop_all(&r, 1);
    stop_all(&e, 1);
    rt_tls_ca = NULL;
    unlink(key);
    unlink(cert);
}

/* The router's --enable-ssl-refresh: a renewed key and certificate reach new connections within seconds; a broken
 * file leaves the ones before in use, said on stderr. */
TEST(router_ssl_refresh) {
    char ka[] = "/tmp/shardlm-key-XXXXXX", ca[] = "/tmp/shardlm-cert-XXXXXX", kb[] = "/tmp/shardlm-key-XXXXXX",
         cb[] = "/tmp/shardlm-cert-XXXXXX", key[] = "/tmp/shardlm-key-XXXXXX", cert[] = "/tmp/shardlm-cert-XXXXXX",
         log[] = "/tmp/shardlm-log-XXXXXX";
    CHECK(tls_refresh_files(ka, ca, kb, cb, key, cert, log));
    sl_test_proc e, r;
    CHECK(rt_start_engine(&e, NULL));
    char *args[] = {"route", "--port", "0", "--engine", e.url, "--ssl-keyfile", key, "--ssl-certfile", cert,
                    "--enable-ssl-refresh", NULL};
    CHECK(sl_test_proc_start_log(&r, args, 30, log) == 0);
    char why[128] = "";
    CHECK_MSG(tls_refresh_works(r.url, ca, kb, cb, key, cert, why, sizeof why), "%s", why);
    rt_tls_ca = cb; /* (a request proxied over the renewed one) */
    rresp via = rt_post(r.url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":4}");
    rt_tls_ca = NULL;
    CHECK_EQ_INT(via.status, 200);
    rt_free(&via);
    CHECK_EQ_INT(sl_test_proc_stop(&r, SIGTERM, 10), 0);
    stop_all(&e, 1);
    char *err = sl_read_file(log, NULL);
    CHECK_MSG(err && strstr(err, "stay in use") && strstr(err, "new connections get them"), "%s", err ? err : "");
    free(err);
    const char *files[] = {ka, ca, kb, cb, key, cert, log};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(files[i]);
}

/* The router serving HTTPS (--ssl-keyfile / --ssl-cert-file): proxied whole and streamed to a client that
 * verifies its certificate, a background response served by its own request over TLS, plain HTTP refused;
 * a key that is not the certificate's refused by name. */
TEST(https_router) {
    char key[] = "/tmp/shardlm-key-XXXXXX", cert[] = "/tmp/shardlm-cert-XXXXXX";
    CHECK(tls_make_cert(key, cert));
    sl_test_proc e, r;
    CHECK(rt_start_engine(&e, NULL));
    const char *urls[1] = {e.url};
    const char *tls[] = {"--ssl-keyfile", key, "--ssl-cert-file", cert, "--responses-store", "16", NULL};
    rt_tls_ca = cert;
    CHECK(start_router(&r, urls, 1, tls));
    CHECK_MSG(!strncmp(r.url, "https://", 8), "%s", r.url);
    static const char body[] = "{\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0}";
    rresp direct = rt_post(e.url, "/v1/completions", body), via = rt_post(r.url, "/v1/completions", body);
    CHECK_EQ_INT(via.status, 200);
    char *a = rt_text(&direct, NULL, NULL), *b = rt_text(&via, NULL, NULL);
    CHECK_MSG(strlen(a) > 10 && !strcmp(a, b), "%s | %s", a, b);
    rresp s = rt_post(r.url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":24,\"temperature\":0,\"stream\":true}");
    int done = 0;
    char *c = rt_text(&s, &done, NULL);
    CHECK_MSG(s.status == 200 && done == 1 && !strcmp(c, a), "%ld %s", s.status, c);
    rresp bg = rt_post(r.url, "/v1/responses", "{\"input\":\"Tell me about Lily.\",\"max_output_tokens\":8,\"background\":true}");
    json_t *q = json_loads(bg.body ? bg.body : "", 0, NULL);
    const char *id = json_string_value(json_object_get(q, "id"));
    CHECK_MSG(bg.status == 200 && id, "%s", bg.body);
    json_t *kept = id ? poll_kept(r.url, id) : NULL;
    const char *kst = json_string_value(json_object_get(kept, "status"));
    CHECK_MSG(kept && kst && (!strcmp(kst, "completed") || !strcmp(kst, "incomplete")) &&
                  json_integer_value(json_object_get(json_object_get(kept, "usage"), "output_tokens")) == 8,
              "%s", kept ? json_dumps(kept, 0) : "(none)");
    json_decref(kept);
    json_decref(q);
    char plain[64];
    snprintf(plain, sizeof plain, "http://127.0.0.1:%d", r.port);
    rresp p = rt_http(plain, "GET", "/v1/models", NULL, NULL, NULL);
    CHECK_MSG(p.status != 200, "plain HTTP answered %ld", p.status);
    rt_free(&p);
    free(a);
    free(b);
    free(c);
    rt_free(&direct);
    rt_free(&via);
    rt_free(&s);
    rt_free(&bg);
    stop_all(&r, 1);
    stop_all(&e, 1);
    rt_tls_ca = NULL;
    char other_key[] = "/tmp/shardlm-key-XXXXXX", other_cert[] = "/tmp/shardlm-cert-XXXXXX";
    CHECK(tls_make_cert(other_key, other_cert));
    char *cmd[] = {(char *)sl_test_bin(), "route", "--port", "0", "--engine", "http://127.0.0.1:1", "--ssl-keyfile", other_key,
                   "--ssl-certfile", cert, NULL};
    char *out = NULL, *err = NULL;
    CHECK_MSG(sl_test_run(cmd, &out, &err, 30) != 0 && err && strstr(err, "is not the key of"), "%s", err ? err : "");
    free(out);
    free(err);
    unlink(key);
    unlink(cert);
    unlink(other_key);
    unlink(other_cert);
}

/* Mutual TLS end to end: engines that require a client certificate (--ssl-ca-certs), a router that presents
 * one to them (--engine-tls-cert / --engine-tls-key) and requires one of its own clients: served whole,
 * streamed and in the background; a client without a certificate is refused at the handshake; a router
 * without one never brings the engine into rotation. */
TEST(mutual_tls) {
    char key[] = "/tmp/shardlm-key-XXXXXX", cert[] = "/tmp/shardlm-cert-XXXXXX";
    CHECK(tls_make_cert(key, cert));
    sl_test_proc e, r;
    const char *etls[] = {"--ssl-keyfile", key, "--ssl-certfile", cert, "--ssl-ca-certs", cert, NULL};
    CHECK(rt_start_engine(&e, etls));
    const char *urls[1] = {e.url};
    const char *rtls[] = {"--engine-ca", cert, "--engine-tls-cert", cert, "--engine-tls-key", key, "--ssl-keyfile", key,
                          "--ssl-certfile", cert, "--ssl-ca-certs", cert, "--responses-store", "8", NULL};
    rt_tls_ca = cert;
    rt_tls_cert = cert;
    rt_tls_key = key;
    CHECK(start_router(&r, urls, 1, rtls));
    rresp a = rt_post(r.url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0}");
    rresp d = rt_post(e.url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0}");
    char *ta = rt_text(&a, NULL, NULL), *td = rt_text(&d, NULL, NULL);
    CHECK_MSG(a.status == 200 && strlen(ta) > 5 && !strcmp(ta, td), "%ld %s | %s", a.status, ta, td);
    rresp s = rt_post(r.url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":12,\"temperature\":0,\"stream\":true}");
    int done = 0;
    char *ts = rt_text(&s, &done, NULL);
    CHECK_MSG(s.status == 200 && done == 1 && !strcmp(ts, td), "%ld %s", s.status, ts);
    rresp bg = rt_post(r.url, "/v1/responses", "{\"input\":\"Hi\",\"max_output_tokens\":4,\"background\":true}");
    json_t *q = json_loads(bg.body ? bg.body : "", 0, NULL);
    const char *id = json_string_value(json_object_get(q, "id"));
    json_t *kept = id ? poll_kept(r.url, id) : NULL;
    CHECK_MSG(kept && json_integer_value(json_object_get(json_object_get(kept, "usage"), "output_tokens")) == 4, "%s",
              kept ? json_dumps(kept, 0) : bg.body);
    json_decref(kept);
    json_decref(q);
    rt_tls_cert = rt_tls_key = NULL;
    rresp no = rt_post(r.url, "/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":2}");
    CHECK_MSG(no.rc != CURLE_OK && no.status == 0, "a client without a certificate got %ld", no.status);
    free(ta);
    free(td);
    free(ts);
    rt_free(&a);
    rt_free(&d);
    rt_free(&s);
    rt_free(&bg);
    rt_free(&no);
    stop_all(&r, 1);
    /* --ssl-cert-reqs 1: a client without a certificate is served */
    const char *opt[] = {"--engine-ca", cert, "--engine-tls-cert", cert, "--engine-tls-key", key, "--ssl-keyfile", key,
                         "--ssl-certfile", cert, "--ssl-ca-certs", cert, "--ssl-cert-reqs", "1", NULL};
    CHECK(start_router(&r, urls, 1, opt));
    rresp op = rt_post(r.url, "/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":2}");
    CHECK_MSG(op.status == 200, "optional client certificate, none sent: %ld %s", op.status, op.body);
    rt_free(&op);
    stop_all(&r, 1);
    /* a router without a client certificate: the engine's probes are refused, it never comes into rotation */
    rt_tls_ca = NULL;
    char *args[] = {"route", "--port", "0", "--probe-interval-ms", "200", "--engine", (char *)e.url, "--engine-ca", cert, NULL};
    CHECK(rt_start(&r, args));
    rt_sleep_ms(800);
    rresp x = rt_post(r.url, "/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":2}");
    CHECK_MSG(x.status == 503 || x.status == 502, "%ld %s", x.status, x.body);
    rt_free(&x);
    stop_all(&r, 1);
    stop_all(&e, 1);
    unlink(key);
    unlink(cert);
}

/* The router's HTTPS with an encrypted key and --ssl-keyfile-password: requests proxied over it; without the
 * passphrase the router does not start (never asks on a terminal) and says why. */
TEST(router_https_encrypted_key) {
    char key[] = "/tmp/shardlm-key-XXXXXX", cert[] = "/tmp/shardlm-cert-XXXXXX", enc[] = "/tmp/shardlm-enckey-XXXXXX";
    CHECK(tls_make_cert(key, cert) && tls_encrypt_key(key, enc, "s3cret"));
    sl_test_proc e, r;
    CHECK(rt_start_engine(&e, NULL));
    char *args[] = {"route", "--port", "0", "--engine", e.url, "--ssl-keyfile", enc, "--ssl-certfile", cert,
                    "--ssl-keyfile-password", "s3cret", NULL};
    CHECK(rt_start(&r, args));
    CHECK_MSG(!strncmp(r.url, "https://", 8), "%s", r.url);
    rt_tls_ca = cert;
    CHECK(rt_wait_ready(r.url, 10));
    rresp via = rt_post(r.url, "/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":4}");
    rt_tls_ca = NULL;
    CHECK_MSG(via.status == 200, "%ld %s", via.status, via.body);
    rt_free(&via);
    stop_all(&r, 1);
    char *argv[] = {(char *)sl_test_bin(), "route", "--port", "0", "--engine", e.url, "--ssl-keyfile", enc, "--ssl-certfile",
                    cert, NULL};
    char *out = NULL, *err = NULL;
    const int rc = sl_test_run(argv, &out, &err, 20);
    CHECK_MSG(rc == 1 && err && strstr(err, "--ssl-keyfile-password"), "exit %d, stderr '%s'", rc, err ? err : "");
    free(out);
    free(err);
    stop_all(&e, 1);
    unlink(key);
    unlink(cert);
    unlink(enc);
}

/*
 * test_loadgen.c — `shardlm loadgen` and its client modules.
 *
 * - SSE parser (client/sse.h): a stream using every rule of the event-stream
 *   format, fed whole, one byte at a time and in random splits, must give the
 *   events the WHATWG rules define; limits and the stop request.
 * - Statistics: numpy.percentile's values on known series.
 * - Prompt generator: prompts checked against the model's own tokenizer
 *   (itself checked against llama.cpp), exact lengths, shared prefixes.
 * - Error accounting: an in-process fake server answers with HTTP 500, error
 *   events, malformed events, streams without [DONE] and truncated bodies.
 * - End to end: the real `shardlm serve` on stories260K (port 0, stopped with
 *   SIGTERM) driven by the real binary: counts, token totals with
 *   ignore_eos, ordered percentiles, --json, W2's shared prefix, chat,
 *   HTTP errors, timeouts, prompts from a dataset file (JSON Lines, ShareGPT);
 *   and a URL where nothing listens.
 */
#include "harness.h"

#include "client/loadgen.h"
#include "client/promptgen.h"
#include "client/sse.h"
#include "client/stats.h"
#include "core/alloc.h"
#include "core/strbuf.h"
#include "model/model.h"
#include "shardlm.h"
#include "tokenizer/tokenizer.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- SSE parser ------------------------------------------------------------------ */

#define MAX_EVS 16
typedef struct evlog {
    int n;
    char type[MAX_EVS][64];
    char data[MAX_EVS][128];
    int stop_after; /* ask the parser to stop after this many events (0: never) */
} evlog;

static int log_event(void *ud, const sl_sse_event *ev) {
    evlog *l = ud;
    if (l->n < MAX_EVS) {
        snprintf(l->type[l->n], sizeof l->type[0], "%s", ev->type);
        snprintf(l->data[l->n], sizeof l->data[0], "%.*s", (int)ev->data_len, ev->data);
        if (strlen(ev->data) != ev->data_len) snprintf(l->data[l->n], sizeof l->data[0], "<length mismatch>");
    }
    l->n++;
    return l->stop_after && l->n >= l->stop_after;
}

/* Every rule at once: BOM, comments, CRLF / LF / CR line ends, multi-line
 * data, a field without a colon, one stripped space only, id/retry, an event
 * type without data (dropped, and forgotten), an unterminated event. */
static const char STREAM[] = "\xEF\xBB\xBF"
                             ": a comment\r\n"
                             "data: {\"a\":1}\r\n\r\n"
                             "event: ping\ndata:x\ndata:  y\n\n"
                             "data\n\n"
                             "id: 5\nretry: 10\n\n"
                             "data: z\r\r"
                             "event: lost\n\n"
                             "data: after\r\n\n"
                             "unknown: field\ndata: [DONE]\n\n"
                             "data: partial";
static const char *const WANT_TYPE[] = {"message", "ping", "message", "message", "message", "message"};
static const char *const WANT_DATA[] = {"{\"a\":1}", "x\n y", "", "z", "after", "[DONE]"};
#define N_WANT 6

static bool check_log(const evlog *l) {
    if (l->n != N_WANT) {
        sl_test_fail(__FILE__, __LINE__, "got %d events, want %d", l->n, N_WANT);
        return false;
    }
    for (int i = 0; i < N_WANT; i++)
        if (strcmp(l->type[i], WANT_TYPE[i]) || strcmp(l->data[i], WANT_DATA[i])) {
            sl_test_fail(__FILE__, __LINE__, "event %d: (%s, \"%s\"), want (%s, \"%s\")", i, l->type[i], l->data[i],
                         WANT_TYPE[i], WANT_DATA[i]);
            return false;
        }
    return true;
}

TEST(sse_whole_stream) {
    sl_sse p;
    sl_sse_init(&p, 1024);
    evlog l = {0};
    sl_status st = sl_sse_feed(&p, STREAM, sizeof STREAM - 1, log_event, &l);
    bool partial = sl_sse_partial(&p);
    sl_sse_deinit(&p);
    CHECK_OK(st);
    CHECK(check_log(&l));
    CHECK(partial);
}

TEST(sse_one_byte_at_a_time) {
    sl_sse p;
    sl_sse_init(&p, 1024);
    evlog l = {0};
    sl_status st = SL_OK;
    for (size_t i = 0; i < sizeof STREAM - 1 && !st; i++) st = sl_sse_feed(&p, STREAM + i, 1, log_event, &l);
    sl_sse_deinit(&p);
    CHECK_OK(st);
    CHECK(check_log(&l));
}

TEST(sse_random_splits) {
    uint64_t x = 0x2545F4914F6CDD1Dull;
    for (int iter = 0; iter < 500; iter++) {
        sl_sse p;
        sl_sse_init(&p, 1024);
        evlog l = {0};
        sl_status st = SL_OK;
        size_t i = 0, n = sizeof STREAM - 1;
        while (i < n && !st) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            size_t k = 1 + (size_t)(x % 9); /* pieces of 1..9 bytes, also empty feeds */
            if (x % 11 == 0) st = sl_sse_feed(&p, STREAM + i, 0, log_event, &l);
            if (k > n - i) k = n - i;
            if (!st) st = sl_sse_feed(&p, STREAM + i, k, log_event, &l);
            i += k;
        }
        sl_sse_deinit(&p);
        CHECK_OK(st);
        if (!check_log(&l)) return;
    }
}

TEST(sse_reset_and_reuse) {
    sl_sse p;
    sl_sse_init(&p, 1024);
    evlog l = {0};
    sl_status st = sl_sse_feed(&p, "data: half", 10, log_event, &l);
    sl_sse_reset(&p);
    if (!st) st = sl_sse_feed(&p, "data: whole\n\n", 13, log_event, &l);
    sl_sse_deinit(&p);
    CHECK_OK(st);
    CHECK_EQ_INT(l.n, 1);
    CHECK_STR(l.data[0], "whole");
}

TEST(sse_limits_and_stop) {
    sl_sse p;
    evlog l = {0};
    char big[200];
    memset(big, 'x', sizeof big);
    /* one line over the limit */
    sl_sse_init(&p, 64);
    sl_status st = sl_sse_feed(&p, "data: ", 6, log_event, &l);
    if (!st) st = sl_sse_feed(&p, big, sizeof big, log_event, &l);
    bool named = strstr(sl_last_error(), "longer than 64") != NULL;
    sl_status st2 = sl_sse_feed(&p, "\n\n", 2, log_event, &l);
    sl_sse_deinit(&p);
    CHECK_EQ_INT(st, SL_ERR_PROTO);
    CHECK_MSG(named, "the message does not name the limit");
    CHECK_EQ_INT(st2, SL_ERR_PROTO); /* refused after the error */
    CHECK_EQ_INT(l.n, 0);
    /* short lines adding up to an event over the limit */
    sl_sse_init(&p, 64);
    st = SL_OK;
    for (int i = 0; i < 10 && !st; i++) st = sl_sse_feed(&p, "data: 0123456789\n", 17, log_event, &l);
    sl_sse_deinit(&p);
    CHECK_EQ_INT(st, SL_ERR_PROTO);
    /* the callback asks to stop after the first event */
    sl_sse_init(&p, 64);
    l.stop_after = 1;
    st = sl_sse_feed(&p, "data: 1\n\ndata: 2\n\n", 18, log_event, &l);
    sl_sse_deinit(&p);
    CHECK_EQ_INT(st, SL_ERR_CLOSED);
    CHECK_EQ_INT(l.n, 1);
}

/* ---- statistics and distributions --------------------------------------------------------- */

TEST(stats_numpy_percentiles) {
    double v[10] = {7, 3, 10, 1, 9, 2, 8, 4, 6, 5}; /* 1..10 shuffled */
    sl_stats s;
    sl_stats_summarize(v, 10, &s);
    /* numpy.percentile(range(1, 11), [50, 90, 99]) = 5.5, 9.1, 9.91 */
    CHECK_EQ_INT(s.n, 10);
    CHECK_NEAR(s.p50, 5.5, 1e-12);
    CHECK_NEAR(s.p90, 9.1, 1e-12);
    CHECK_NEAR(s.p99, 9.91, 1e-12);
    CHECK_NEAR(s.mean, 5.5, 1e-12);
    CHECK_NEAR(s.std, sqrt(8.25), 1e-12); /* population standard deviation, as numpy.std */
    CHECK_NEAR(s.min, 1, 0);
    CHECK_NEAR(s.max, 10, 0);
    double one = 42;
    sl_stats_summarize(&one, 1, &s);
    CHECK_NEAR(s.p99, 42, 0);
    CHECK_NEAR(s.p50, 42, 0);
    sl_stats_summarize(NULL, 0, &s);
    CHECK_EQ_INT(s.n, 0);
    CHECK_NEAR(s.p50, 0, 0);
}

TEST(dist_parse) {
    sl_lg_dist d;
    CHECK_OK(sl_lg_dist_parse("128", 1, 1000, &d));
    CHECK_EQ_INT(d.lo, 128);
    CHECK_EQ_INT(d.hi, 128);
    CHECK_OK(sl_lg_dist_parse("uniform:16:64", 1, 1000, &d));
    CHECK_EQ_INT(d.lo, 16);
    CHECK_EQ_INT(d.hi, 64);
    CHECK_EQ_INT(sl_lg_dist_parse("uniform:64:16", 1, 1000, &d), SL_ERR_INVALID);
    CHECK_EQ_INT(sl_lg_dist_parse("0", 1, 1000, &d), SL_ERR_RANGE);
    CHECK_EQ_INT(sl_lg_dist_parse("12x", 1, 1000, &d), SL_ERR_INVALID);
    CHECK_EQ_INT(sl_lg_dist_parse("uniform:1", 1, 1000, &d), SL_ERR_INVALID);
    CHECK_EQ_INT(sl_lg_dist_parse("normal:1:2", 1, 1000, &d), SL_ERR_INVALID);
}

/* ---- prompt generator against a real tokenizer ------------------------------------------------ */

static sl_status local_tokenize(void *ud, const char *text, int32_t **ids, size_t *n) {
    const sl_tokenizer *t = ud;
    return sl_tokenize(t, text, strlen(text), sl_tokenizer_add_bos(t), false, ids, n);
}

static void check_promptgen(const char *model_rel) {
    const char *path = sl_test_shared(model_rel);
    CHECK_MSG(path, "missing ../shared/%s", model_rel);
    sl_model *m = NULL;
    CHECK_OK(sl_model_load(path, &m));
    const sl_tokenizer *tok = sl_model_tokenizer(m);
    sl_promptgen *g = NULL, *w2 = NULL;
    sl_promptgen_cfg cfg = {.max_tokens = 300, .prefix_tokens = 0, .seed = 7};
    sl_status st = sl_promptgen_create(&cfg, local_tokenize, (void *)tok, &g);
    sl_promptgen_cfg cfg2 = {.max_tokens = 128, .prefix_tokens = 115, .seed = 7};
    if (!st) st = sl_promptgen_create(&cfg2, local_tokenize, (void *)tok, &w2);
    if (st) {
        sl_promptgen_destroy(g);
        sl_model_destroy(m);
    }
    CHECK_OK(st);
    bool ok = sl_promptgen_n_words(g) > 100;
    const int32_t lens[] = {sl_promptgen_min_tokens(g), 2, 3, 13, 64, 127, 128, 129, 300};
    char *prev = NULL;
    for (size_t i = 0; ok && i < sizeof lens / sizeof lens[0]; i++) {
        for (uint64_t idx = 0; ok && idx < 3; idx++) {
            char *text = NULL, *again = NULL;
            st = sl_promptgen_make(g, idx, lens[i], &text);
            if (!st) st = sl_promptgen_make(g, idx, lens[i], &again);
            int32_t *ids = NULL;
            size_t n = 0;
            if (!st) st = sl_tokenize(tok, text, strlen(text), sl_tokenizer_add_bos(tok), false, &ids, &n);
            sl_free(ids);
            if (st) {
                sl_test_fail(__FILE__, __LINE__, "length %d index %llu: %s", lens[i], (unsigned long long)idx,
                             sl_last_error());
                ok = false;
            } else if ((int64_t)n != lens[i]) {
                sl_test_fail(__FILE__, __LINE__, "'%s': %zu tokens, asked for %d", text, n, lens[i]);
                ok = false;
            } else if (strcmp(text, again) != 0) {
                sl_test_fail(__FILE__, __LINE__, "prompt %llu differs between two calls", (unsigned long long)idx);
                ok = false;
            } else if (text[0] == ' ' || strstr(text, "  ") || text[strlen(text) - 1] == ' ') {
                sl_test_fail(__FILE__, __LINE__, "'%s': words must be joined by single spaces", text);
                ok = false;
            } else if (lens[i] > 8 && prev && !strcmp(prev, text)) {
                sl_test_fail(__FILE__, __LINE__, "prompts %llu and %llu are equal", (unsigned long long)idx,
                             (unsigned long long)idx - 1);
                ok = false;
            }
            sl_free(prev);
            sl_free(again);
            prev = text;
        }
    }
    /* W2: 115 shared tokens + 13 unique, checked by token ids */
    size_t plen = strlen(sl_promptgen_prefix(w2));
    for (uint64_t idx = 0; ok && idx < 8; idx++) {
        char *text = NULL;
        st = sl_promptgen_make(w2, idx, 128, &text);
        if (!st) st = sl_promptgen_check(w2, text, 128, local_tokenize, (void *)tok);
        if (st) {
            sl_test_fail(__FILE__, __LINE__, "W2 prompt %llu: %s", (unsigned long long)idx, sl_last_error());
            ok = false;
        } else if (strncmp(text, sl_promptgen_prefix(w2), plen) != 0 || text[plen] != ' ') {
            sl_test_fail(__FILE__, __LINE__, "W2 prompt %llu does not start with the prefix and a space",
                         (unsigned long long)idx);
            ok = false;
        }
        sl_free(text);
    }
    /* a prompt no longer than the prefix cannot be made; nor one past max_tokens */
    char *text = NULL;
    sl_status st_short = sl_promptgen_make(w2, 0, 115, &text);
    sl_free(text);
    sl_status st_long = sl_promptgen_make(g, 0, 301, &text);
    sl_free(text);
    bool can[5] = {sl_promptgen_can_make(w2, 115), sl_promptgen_can_make(w2, 116), sl_promptgen_can_make(w2, 128),
                   sl_promptgen_can_make(g, 300), sl_promptgen_can_make(g, 301)};
    sl_free(prev);
    sl_promptgen_destroy(g);
    sl_promptgen_destroy(w2);
    sl_model_destroy(m);
    CHECK(ok);
    CHECK(!can[0] && can[2] && can[3] && !can[4]);
    (void)can[1]; /* one word after the prefix: only when some word costs one token */
    CHECK_EQ_INT(st_short, SL_ERR_RANGE);
    CHECK_EQ_INT(st_long, SL_ERR_RANGE);
}

TEST(promptgen_exact_lengths_stories260K) { check_promptgen("models/stories260K.gguf"); }
TEST(promptgen_exact_lengths_llama_vocab) { check_promptgen("models/small/small-llama-Q4_0.gguf"); }
TEST(promptgen_exact_lengths_qwen2_bpe_vocab) { check_promptgen("models/small/small-qwen2-Q8_0.gguf"); }

static sl_status failing_tokenize(void *ud, const char *text, int32_t **ids, size_t *n) {
    (void)ud;
    (void)text;
    *ids = NULL;
    *n = 0;
    return SL_ERR_IO;
}

TEST(promptgen_bad_config) {
    sl_promptgen *g = NULL;
    sl_promptgen_cfg cfg = {.max_tokens = 16, .prefix_tokens = 16};
    CHECK_EQ_INT(sl_promptgen_create(&cfg, local_tokenize, NULL, &g), SL_ERR_INVALID);
    cfg.prefix_tokens = 0;
    CHECK_EQ_INT(sl_promptgen_create(&cfg, failing_tokenize, NULL, &g), SL_ERR_IO);
    CHECK(g == NULL);
}

/* ---- a fake server for error accounting ------------------------------------------------------ */

typedef struct fake {
    int fd, port;
    pthread_t th;
    atomic_int stop;
    const char *mode; /* how /v1/completions answers */
    const char *key;  /* required API key, or NULL */
} fake;

static void send_all(int c, const char *s, size_t n) {
    while (n) {
        ssize_t k = send(c, s, n, MSG_NOSIGNAL);
        if (k <= 0) return;
        s += k;
        n -= (size_t)k;
    }
}

static void reply(int c, int status, const char *ctype, const char *body, size_t claimed) {
    char head[256];
    int h = snprintf(head, sizeof head, "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, ctype, claimed ? claimed : strlen(body));
    send_all(c, head, (size_t)h);
    send_all(c, body, strlen(body));
}

/* The fake tokenizer: BOS plus one token per space-separated word. */
static int fake_count(const char *text) {
    int n = 1;
    for (const char *p = text; *p; p++)
        if (*p != ' ' && (p == text || p[-1] == ' ')) n++;
    return n;
}

#define CHUNK(t) "data: {\"choices\":[{\"index\":0,\"text\":\"" t "\",\"finish_reason\":null}]}\r\n\r\n"
#define FIN "data: {\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"length\"}]}\r\n\r\n"

static void fake_serve(fake *f, int c) {
    char buf[65536];
    size_t n = 0;
    char *body = NULL;
    double t0 = mono_s();
    while (n < sizeof buf - 1 && mono_s() - t0 < 5) { /* headers, then Content-Length bytes */
        struct pollfd p = {c, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0) continue;
        ssize_t k = recv(c, buf + n, sizeof buf - 1 - n, 0);
        if (k <= 0) return;
        n += (size_t)k;
        buf[n] = '\0';
        char *e = strstr(buf, "\r\n\r\n");
        if (!e) continue;
        const char *cl = strcasestr(buf, "Content-Length:");
        size_t want = cl && cl < e ? (size_t)strtoul(cl + 15, NULL, 10) : 0;
        if (n >= (size_t)(e + 4 - buf) + want) {
            body = e + 4;
            break;
        }
    }
    if (!body) return;
    if (f->key) {
        char want[128];
        snprintf(want, sizeof want, "\r\nAuthorization: Bearer %s\r\n", f->key);
        if (!strstr(buf, want)) {
            reply(c, 401, "application/json", "{\"error\":{\"message\":\"missing or wrong API key\"}}", 0);
            return;
        }
    }
    if (!strncmp(buf, "GET /v1/models ", 15)) {
        reply(c, 200, "application/json", "{\"object\":\"list\",\"data\":[{\"id\":\"fake\"}]}", 0);
    } else if (!strncmp(buf, "POST /tokenize ", 15)) {
        json_t *o = json_loads(body, 0, NULL);
        const char *text = json_string_value(json_object_get(o, "prompt"));
        char out[8192];
        size_t k = (size_t)snprintf(out, sizeof out, "{\"tokens\":[1");
        for (int i = 1; text && i < fake_count(text) && k < sizeof out - 16; i++)
            k += (size_t)snprintf(out + k, sizeof out - k, ",%d", 100 + i);
        snprintf(out + k, sizeof out - k, "]}");
        json_decref(o);
        reply(c, 200, "application/json", out, 0);
    } else if (!strncmp(buf, "POST /v1/completions ", 21)) {
        const char *m = f->mode;
        if (!strcmp(m, "ok"))
            reply(c, 200, "text/event-stream", CHUNK("a") CHUNK("b") CHUNK("c") FIN "data: [DONE]\r\n\r\n", 0);
        else if (!strcmp(m, "usage"))
            reply(c, 200, "text/event-stream",
                  CHUNK("a") CHUNK("bc") FIN "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":16,"
                  "\"completion_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":5}}}\n\ndata: [DONE]\n\n", 0);
        else if (!strcmp(m, "500"))
            reply(c, 500, "application/json", "{\"error\":{\"message\":\"fake failure\"}}", 0);
        else if (!strcmp(m, "error_event"))
            reply(c, 200, "text/event-stream",
                  CHUNK("a") "data: {\"error\":{\"message\":\"generation broke\",\"type\":\"server_error\"}}\n\n"
                  "data: [DONE]\n\n", 0);
        else if (!strcmp(m, "no_done"))
            reply(c, 200, "text/event-stream", CHUNK("a") FIN, 0);
        else if (!strcmp(m, "garbage"))
            reply(c, 200, "text/event-stream", CHUNK("a") "data: {not json\n\ndata: [DONE]\n\n", 0);
        else if (!strcmp(m, "truncated"))
            reply(c, 200, "text/event-stream", CHUNK("a"), 4096); /* closes before the promised length */
    }
}

static void *fake_main(void *arg) {
    fake *f = arg;
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {f->fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        int c = accept(f->fd, NULL, NULL);
        if (c < 0) continue;
        fake_serve(f, c);
        close(c);
    }
    return NULL;
}

/* A listening socket on 127.0.0.1 with a free port. */
static int listen_any(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 64) ||
        getsockname(fd, (struct sockaddr *)&a, &len)) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static void check_fake_mode(fake *f, const char *mode, sl_lg_error want, int64_t n_req, sl_loadgen_report *rep) {
    f->mode = mode;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", f->port);
    sl_loadgen_cfg cfg = {.url = url, .concurrency = 1, .requests = n_req, .prompt_tokens = {16, 16},
                          .max_tokens = {3, 3}, .timeout_s = 5, .seed = 1, .check_prompts = 2};
    sl_status st = sl_loadgen_run(&cfg, rep);
    CHECK_OK(st);
    CHECK_STR(rep->model, "fake");
    CHECK_EQ_INT(rep->issued, n_req);
    if ((int)want < 0) {
        CHECK_EQ_INT(rep->completed, n_req);
        CHECK_EQ_INT(rep->failed, 0);
        return;
    }
    CHECK_EQ_INT(rep->completed, 0);
    CHECK_EQ_INT(rep->failed, n_req);
    CHECK_MSG(rep->errors[want] == n_req, "mode %s: %lld errors of kind %s, want %lld (first: %s)", mode,
              (long long)rep->errors[want], sl_lg_error_name(want), (long long)n_req, rep->error_sample[want]);
    CHECK_MSG(rep->error_sample[want][0], "mode %s: no error message kept", mode);
}

static void fake_checks(fake *f) {
    sl_loadgen_report rep;
    check_fake_mode(f, "ok", (sl_lg_error)-1, 3, &rep);
    if (sl_test_failed()) return;
    /* no usage: output tokens are the token chunks; the final empty chunk is none */
    CHECK_EQ_INT(rep.usage_missing, 3);
    CHECK_EQ_INT(rep.output_tokens, 9);
    CHECK_EQ_INT(rep.input_tokens, 48);
    CHECK_EQ_INT(rep.itl_ms.n, 6);
    CHECK_EQ_INT(rep.tpot_ms.n, 3);
    CHECK(rep.ttft_ms.p50 <= rep.e2e_ms.p50);
    check_fake_mode(f, "usage", (sl_lg_error)-1, 2, &rep);
    if (sl_test_failed()) return;
    CHECK_EQ_INT(rep.usage_missing, 0);
    CHECK_EQ_INT(rep.output_tokens, 6); /* usage wins over the 2 chunks */
    CHECK_EQ_INT(rep.cached_tokens, 10);
    CHECK_EQ_INT(rep.prompt_mismatch, 0);
    check_fake_mode(f, "500", SL_LG_E_HTTP, 2, &rep);
    if (sl_test_failed()) return;
    CHECK_MSG(strstr(rep.error_sample[SL_LG_E_HTTP], "HTTP 500") && strstr(rep.error_sample[SL_LG_E_HTTP], "fake failure"),
              "sample: %s", rep.error_sample[SL_LG_E_HTTP]);
    check_fake_mode(f, "error_event", SL_LG_E_STREAM, 2, &rep);
    if (sl_test_failed()) return;
    CHECK_MSG(strstr(rep.error_sample[SL_LG_E_STREAM], "generation broke"), "sample: %s",
              rep.error_sample[SL_LG_E_STREAM]);
    check_fake_mode(f, "no_done", SL_LG_E_NO_DONE, 2, &rep);
    check_fake_mode(f, "garbage", SL_LG_E_PROTO, 2, &rep);
    check_fake_mode(f, "truncated", SL_LG_E_TRANSPORT, 2, &rep);
    if (sl_test_failed()) return;
    /* an API key goes with every request, the setup ones included */
    f->key = "sekrit";
    f->mode = "ok";
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", f->port);
    sl_loadgen_cfg cfg = {.url = url, .concurrency = 2, .requests = 4, .prompt_tokens = {16, 16},
                          .max_tokens = {3, 3}, .timeout_s = 5, .seed = 1, .check_prompts = 1};
    sl_status st = sl_loadgen_run(&cfg, &rep);
    bool refused = st == SL_ERR_PROTO && strstr(sl_last_error(), "HTTP 401");
    cfg.api_key = "sekrit";
    sl_status st_key = sl_loadgen_run(&cfg, &rep);
    f->key = NULL;
    CHECK_MSG(refused, "without the key: status %d", (int)st);
    CHECK_OK(st_key);
    CHECK_EQ_INT(rep.completed, 4);
}

TEST(loadgen_error_kinds_fake_server) {
    fake f = {.fd = -1};
    f.fd = listen_any(&f.port);
    CHECK(f.fd >= 0);
    if (pthread_create(&f.th, NULL, fake_main, &f) != 0) {
        close(f.fd);
        CHECK_MSG(0, "pthread_create");
    }
    fake_checks(&f);
    atomic_store(&f.stop, 1);
    pthread_join(f.th, NULL);
    close(f.fd);
}

TEST(loadgen_bad_config) {
    sl_loadgen_report rep;
    sl_loadgen_cfg cfg = {.url = "http://127.0.0.1:1", .concurrency = 1, .requests = 0, .prompt_tokens = {8, 8},
                          .max_tokens = {8, 8}, .timeout_s = 1};
    CHECK_EQ_INT(sl_loadgen_run(&cfg, &rep), SL_ERR_INVALID); /* neither a count nor a duration */
    cfg.requests = 1;
    cfg.shared_prefix = 1.0;
    CHECK_EQ_INT(sl_loadgen_run(&cfg, &rep), SL_ERR_INVALID);
    cfg.shared_prefix = 0;
    cfg.logit_bias = "[1, 2]";
    cfg.model = "m";
    CHECK_EQ_INT(sl_loadgen_run(&cfg, &rep), SL_ERR_INVALID);
}

/* ---- end to end against `shardlm serve` ------------------------------------------------------ */

typedef struct server {
    pid_t pid;
    int out;
    int port;
} server;

static bool server_start(server *s) {
    s->pid = -1;
    s->out = -1;
    s->port = 0;
    const char *model = sl_test_shared("models/stories260K.gguf");
    if (!model) {
        sl_test_fail(__FILE__, __LINE__, "missing ../shared/models/stories260K.gguf");
        return false;
    }
    int p[2];
    if (pipe(p) != 0) return false;
    fflush(stdout);
    fflush(stderr);
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return false;
    }
    if (pid == 0) {
        sl_test_child_setup(parent); /* never outlive the test */
        dup2(p[1], 1);
        int dn = open("/dev/null", O_RDWR);
        if (dn >= 0) {
            dup2(dn, 0);
            dup2(dn, 2);
        }
        close(p[0]);
        close(p[1]);
        execl(sl_test_bin(), sl_test_bin(), "serve", "-m", model, "--port", "0", "-t", "1", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    sl_test_track(pid);
    s->pid = pid;
    s->out = p[0];
    char buf[4096];
    size_t n = 0;
    double t0 = mono_s();
    while (mono_s() - t0 < 30 && n < sizeof buf - 1) {
        struct pollfd pf = {s->out, POLLIN, 0};
        if (poll(&pf, 1, 100) <= 0) continue;
        ssize_t k = read(s->out, buf + n, sizeof buf - 1 - n);
        if (k <= 0) break;
        n += (size_t)k;
        buf[n] = '\0';
        const char *at = strstr(buf, "http://127.0.0.1:");
        if (at && strchr(at, '\n')) {
            s->port = atoi(at + 17);
            return s->port > 0;
        }
    }
    sl_test_fail(__FILE__, __LINE__, "the server did not print its address: '%.*s'", (int)n, buf);
    return false;
}

static void server_stop(server *s) {
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        int status;
        double t0 = mono_s();
        while (waitpid(s->pid, &status, WNOHANG) == 0) {
            if (mono_s() - t0 > 15) {
                kill(s->pid, SIGKILL);
                waitpid(s->pid, &status, 0);
                break;
            }
            struct timespec ts = {0, 10 * 1000000};
            nanosleep(&ts, NULL);
        }
    }
    if (s->out >= 0) close(s->out);
    s->pid = -1;
    s->out = -1;
}

/* Run `shardlm loadgen --url <server> ARGS...`; JSON of stdout when asked. */
static int loadgen(const server *s, const char *const *args, char **out, char **err, double *secs) {
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", s->port);
    char *argv[32];
    int a = 0;
    argv[a++] = (char *)sl_test_bin();
    argv[a++] = "loadgen";
    argv[a++] = "--url";
    argv[a++] = url;
    for (int i = 0; args[i] && a < 31; i++) argv[a++] = (char *)args[i];
    argv[a] = NULL;
    double t0 = mono_s();
    int rc = sl_test_run(argv, out, err, 60);
    if (secs) *secs = mono_s() - t0;
    return rc;
}

/* A --json run: its exit status in *rc, its report (NULL when stdout does
 * not parse; both outputs are printed then). */
static json_t *loadgen_json(const server *s, const char *const *args, int *rc, double *secs) {
    char *out = NULL, *err = NULL;
    *rc = loadgen(s, args, &out, &err, secs);
    json_t *o = json_loads(out ? out : "", 0, NULL);
    if (!o) fprintf(stderr, "    stdout: %s\n    stderr: %s\n", out ? out : "", err ? err : "");
    free(out);
    free(err);
    return o;
}

static double num(json_t *o, const char *path) {
    char key[64];
    snprintf(key, sizeof key, "%s", path);
    char *dot = strchr(key, '.');
    if (dot) {
        *dot = '\0';
        o = json_object_get(o, key);
        return json_number_value(json_object_get(o, dot + 1));
    }
    return json_number_value(json_object_get(o, key));
}

static void check_ordered(json_t *o, const char *name, bool positive) {
    json_t *s = json_object_get(o, name);
    CHECK_MSG(json_is_object(s), "no %s in the report", name);
    double mn = num(s, "min"), p50 = num(s, "p50"), p90 = num(s, "p90"), p99 = num(s, "p99"), mx = num(s, "max"),
           mean = num(s, "mean");
    CHECK_MSG(mn <= p50 && p50 <= p90 && p90 <= p99 && p99 <= mx && mn <= mean && mean <= mx,
              "%s: min %g p50 %g p90 %g p99 %g max %g mean %g out of order", name, mn, p50, p90, p99, mx, mean);
    CHECK_MSG(!positive || mn > 0, "%s: min %g must be positive", name, mn);
    CHECK_MSG(mx < 60000, "%s: max %g ms is not sane", name, mx);
}

static void e2e_main_run(const server *s) {
    const char *args[] = {"-c", "4", "-n", "20", "--max-tokens", "32", "--ignore-eos", "--json", NULL};
    char *out = NULL, *err = NULL;
    int rc = loadgen(s, args, &out, &err, NULL);
    json_error_t je;
    json_t *o = json_loads(out ? out : "", 0, &je);
    bool progress = err && strstr(err, "20/20 done");
    if (rc != 0 || !o) fprintf(stderr, "    stdout: %s\n    stderr: %s\n", out, err);
    free(out);
    free(err);
    CHECK_EQ_INT(rc, 0);
    CHECK_MSG(o, "--json output does not parse: %s", je.text);
    CHECK_MSG(progress, "no final progress line on stderr");
    CHECK_STR(json_string_value(json_object_get(o, "model")), "stories260K");
    CHECK_EQ_INT(num(o, "completed"), 20);
    CHECK_EQ_INT(num(o, "failed"), 0);
    CHECK_EQ_INT(num(o, "output_tokens"), 20 * 32);
    CHECK_EQ_INT(num(o, "input_tokens"), 20 * 128);
    CHECK_EQ_INT(num(o, "prompt_mismatch"), 0);
    CHECK_EQ_INT(num(o, "short_outputs"), 0);
    CHECK_EQ_INT(num(o, "usage_missing"), 0);
    CHECK_EQ_INT(num(o, "output_len.min"), 32);
    CHECK_EQ_INT(num(o, "output_len.max"), 32);
    CHECK_EQ_INT(num(o, "ttft_ms.n"), 20);
    CHECK_EQ_INT(num(o, "tpot_ms.n"), 20);
    CHECK_EQ_INT(num(o, "e2e_ms.n"), 20);
    double n_itl = num(o, "itl_ms.n");
    CHECK_MSG(n_itl >= 20 && n_itl <= 20 * 31, "%g inter-token gaps for 20 × 32 tokens", n_itl);
    check_ordered(o, "ttft_ms", true);
    check_ordered(o, "itl_ms", false);
    check_ordered(o, "tpot_ms", true);
    check_ordered(o, "e2e_ms", true);
    CHECK(num(o, "e2e_ms.min") >= num(o, "ttft_ms.min"));
    CHECK(num(o, "e2e_ms.max") >= num(o, "ttft_ms.max"));
    double dur = num(o, "duration_s");
    CHECK(dur > 0);
    CHECK_NEAR(num(o, "request_throughput"), 20 / dur, 1e-6 * 20 / dur);
    CHECK_NEAR(num(o, "output_throughput"), 640 / dur, 1e-6 * 640 / dur);
    CHECK_NEAR(num(o, "total_token_throughput"), (640 + 2560) / dur, 1e-6 * 3200 / dur);
    json_decref(o);
}

static void e2e_w2_chat_table(const server *s) {
    /* W2: every prompt checked by ids to share the 115-token prefix; the server caches it */
    const char *w2[] = {"-c", "2", "-n", "6", "--workload", "W2", "--max-tokens", "8", "--check-prompts", "6",
                        "--sessions", "3", "--json", NULL};
    int rc;
    json_t *o = loadgen_json(s, w2, &rc, NULL);
    CHECK_EQ_INT(rc, 0);
    CHECK(o);
    CHECK_STR(json_string_value(json_object_get(o, "workload")), "W2");
    CHECK_EQ_INT(num(o, "shared_prefix_tokens"), 115);
    CHECK_EQ_INT(num(o, "completed"), 6);
    CHECK_EQ_INT(num(o, "output_tokens"), 6 * 8);
    CHECK_EQ_INT(num(o, "input_tokens"), 6 * 128);
    CHECK_MSG(num(o, "cached_tokens") > 0, "no prefix-cache hits for the shared prefix");
    json_decref(o);
    /* chat endpoint, text report */
    const char *chat[] = {"-n", "3", "--endpoint", "chat", "--max-tokens", "8", "--ignore-eos", "--logit-bias",
                          "131-258:-100", NULL};
    char *out = NULL, *err = NULL;
    rc = loadgen(s, chat, &out, &err, NULL);
    bool table = out && strstr(out, "successful requests                3") && strstr(out, "output tokens                      24") &&
                 strstr(out, "TTFT") && strstr(out, "TPOT");
    if (rc != 0 || !table) fprintf(stderr, "    stdout: %s\n    stderr: %s\n", out, err);
    free(out);
    free(err);
    CHECK_EQ_INT(rc, 0);
    CHECK(table);
}

static void e2e_errors(const server *s) {
    /* an unknown model: every request answered 404 */
    const char *bad[] = {"-n", "4", "-c", "2", "--model", "nope", "--max-tokens", "4", "--json", "-q", NULL};
    int rc;
    json_t *o = loadgen_json(s, bad, &rc, NULL);
    CHECK_EQ_INT(rc, 1);
    CHECK(o);
    CHECK_EQ_INT(num(o, "failed"), 4);
    CHECK_EQ_INT(num(o, "completed"), 0);
    CHECK_EQ_INT(num(o, "errors.http"), 4);
    json_decref(o);
    /* a timeout far shorter than the request: reported, and no hang */
    const char *slow[] = {"-n", "2", "--max-tokens", "380", "--ignore-eos", "--timeout", "0.02", "--json", "-q", NULL};
    double secs = 0;
    o = loadgen_json(s, slow, &rc, &secs);
    CHECK_EQ_INT(rc, 1);
    CHECK(o);
    CHECK_EQ_INT(num(o, "errors.timeout"), 2);
    json_decref(o);
    CHECK_MSG(secs < 10, "a run of two timed-out requests took %.1f s", secs);
}

/* --dataset: the prompts of a JSON Lines file and of a ShareGPT file, each entry's output_tokens (or, ShareGPT, its
 * answer's tokens) as max_tokens, else --max-tokens; the token totals are the sums the model's own tokenizer (checked
 * against llama.cpp) gives for the entries; files that do not read are named. */
static void e2e_dataset(const server *s) {
    static const char *const prompts[] = {"Once upon a time", "Lily and Ben went to the park.", "The little dog was sad because"};
    static const int outs[] = {5, 0, 7}; /* (0: --max-tokens 3) */
    char jl[] = "/tmp/shardlm-ds-XXXXXX", sg[] = "/tmp/shardlm-ds-XXXXXX", bad[] = "/tmp/shardlm-ds-XXXXXX";
    sl_strbuf text = {0};
    for (int i = 0; i < 3; i++) {
        json_t *o = json_pack("{s:s}", "prompt", prompts[i]);
        if (outs[i]) json_object_set_new(o, "output_tokens", json_integer(outs[i]));
        char *l = json_dumps(o, JSON_COMPACT);
        sl_strbuf_printf(&text, "%s\n%s", l, i == 1 ? "\n" : ""); /* (a blank line is skipped) */
        free(l);
        json_decref(o);
    }
    static const char sharegpt[] =
        "[{\"conversations\":[{\"from\":\"human\",\"value\":\"Tell me a story about a cat.\"},{\"from\":\"gpt\","
        "\"value\":\"The cat sat on the mat.\"}]},{\"conversations\":[{\"from\":\"system\",\"value\":\"be nice\"},"
        "{\"from\":\"human\",\"value\":\"Hi there\"}]},{\"conversations\":[]}]";
    CHECK(sl_test_temp_file(jl, text.p) && sl_test_temp_file(sg, sharegpt) && sl_test_temp_file(bad, "{\"prompt\": 1\n"));
    free(text.p);
    sl_model *m = NULL;
    CHECK_OK(sl_model_load(sl_test_shared("models/stories260K.gguf"), &m));
    const sl_tokenizer *t = sl_model_tokenizer(m);
    long long in = 0, out = 0;
    for (int i = 0; i < 3; i++) {
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(local_tokenize((void *)t, prompts[i], &ids, &n));
        in += 2 * (long long)n;
        out += 2 * (outs[i] ? outs[i] : 3);
        sl_free(ids);
    }
    const char *args[] = {"-n", "6", "-c", "2", "--dataset", jl, "--max-tokens", "3", "--ignore-eos", "--json", "-q", NULL};
    int rc;
    json_t *o = loadgen_json(s, args, &rc, NULL);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(num(o, "dataset.entries"), 3);
    CHECK_EQ_INT(num(o, "completed"), 6);
    CHECK_EQ_INT(num(o, "input_tokens"), in);
    CHECK_EQ_INT(num(o, "output_tokens"), out);
    CHECK_EQ_INT(num(o, "prompt_mismatch"), 0);
    json_decref(o);
    /* ShareGPT: the cat story's answer, without the BOS /tokenize adds, is its max_tokens; Hi there gets 4 */
    int32_t *ids = NULL;
    size_t n_answer = 0, n_p1 = 0, n_p2 = 0;
    CHECK_OK(sl_tokenize(t, "The cat sat on the mat.", 23, false, false, &ids, &n_answer));
    sl_free(ids);
    CHECK_OK(local_tokenize((void *)t, "Tell me a story about a cat.", &ids, &n_p1));
    sl_free(ids);
    CHECK_OK(local_tokenize((void *)t, "Hi there", &ids, &n_p2));
    sl_free(ids);
    const char *sargs[] = {"-n", "2", "--dataset", sg, "--max-tokens", "4", "--ignore-eos", "--json", "-q", NULL};
    o = loadgen_json(s, sargs, &rc, NULL);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(num(o, "dataset.entries"), 2);
    CHECK_EQ_INT(num(o, "output_tokens"), (double)n_answer + 4);
    CHECK_EQ_INT(num(o, "input_tokens"), (double)(n_p1 + n_p2));
    json_decref(o);
    sl_model_destroy(m);
    char *lout = NULL, *lerr = NULL;
    const char *bargs[] = {"-n", "2", "--dataset", bad, "-q", NULL};
    rc = loadgen(s, bargs, &lout, &lerr, NULL);
    CHECK_MSG(rc != 0 && lerr && strstr(lerr, "line 1 is not a JSON object"), "rc %d: %s", rc, lerr ? lerr : "");
    free(lout);
    free(lerr);
    unlink(jl);
    unlink(sg);
    unlink(bad);
}

/* SHARDLM_MODEL names a model file for serve/run: loadgen's --model (a model
 * name) takes only SHARDLM_LOADGEN_MODEL from the environment. */
static void e2e_env(const server *s) {
    const char *args[] = {"-n", "2", "-c", "1", "--max-tokens", "4", "--json", "-q", NULL};
    setenv("SHARDLM_MODEL", "../shared/models/stories260K.gguf", 1);
    int rc;
    json_t *o = loadgen_json(s, args, &rc, NULL);
    CHECK_EQ_INT(rc, 0);
    CHECK_STR(json_string_value(json_object_get(o, "model")), "stories260K");
    json_decref(o);
    setenv("SHARDLM_LOADGEN_MODEL", "nope", 1);
    o = loadgen_json(s, args, &rc, NULL);
    unsetenv("SHARDLM_MODEL");
    unsetenv("SHARDLM_LOADGEN_MODEL");
    CHECK_EQ_INT(rc, 1);
    CHECK_EQ_INT(num(o, "errors.http"), 2);
    json_decref(o);
}

TEST(loadgen_against_shardlm_serve) {
    server s;
    bool up = server_start(&s);
    if (up) e2e_main_run(&s);
    if (up && !sl_test_failed()) e2e_w2_chat_table(&s);
    if (up && !sl_test_failed()) e2e_errors(&s);
    if (up && !sl_test_failed()) e2e_env(&s);
    if (up && !sl_test_failed()) e2e_dataset(&s);
    server_stop(&s);
    CHECK(up);
}

TEST(loadgen_nothing_listening) {
    int port = 0;
    int fd = listen_any(&port);
    CHECK(fd >= 0);
    close(fd); /* the port is free now, and nothing listens there */
    server s = {.port = port};
    const char *args[] = {"-n", "4", "-c", "2", NULL};
    char *out = NULL, *err = NULL;
    double secs = 0;
    int rc = loadgen(&s, args, &out, &err, &secs);
    bool said = err && strstr(err, "cannot reach");
    if (!said) fprintf(stderr, "    stderr: %s\n", err);
    free(out);
    free(err);
    CHECK_MSG(rc != 0 && rc != -1, "exit status %d", rc);
    CHECK(said);
    CHECK_MSG(secs < 5, "took %.1f s", secs);
}

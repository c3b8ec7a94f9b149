/*
 * loadgen.c — the serving benchmark client (see loadgen.h).
 *
 * Setup (blocking, one easy handle with keep-alive): the model id from
 * /v1/models, the word costs through /tokenize, a few prompts checked.
 * Run: one slot per client, each owning a reused easy handle, its SSE parser
 * and its request's timestamps; the loop issues requests into free slots,
 * drives the transfers with curl_multi_perform, waits in curl_multi_poll
 * (bounded by the next arrival, the deadline and the next progress line) and
 * settles each ended transfer as a success or one error kind.
 *
 * Units: times are seconds (CLOCK_MONOTONIC) inside, milliseconds in the
 * report. A "token chunk" is an SSE event with new text for choice 0 (or an
 * empty text before the finish, i.e. tokens that do not end a character);
 * inter-token gaps are the gaps between token chunks, as vLLM's benchmark
 * measures them; output tokens come from usage when the server sends it.
 */
#include "client/loadgen.h"

#include "client/promptgen.h"
#include "client/sse.h"
#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"
#include "core/strbuf.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_EVENT_BYTES (4u << 20)
#define MAX_SETUP_BYTES (16u << 20)
#define SETUP_TIMEOUT_MS 30000L
#define CONNECT_TIMEOUT_MS 10000L
#define MAX_LENGTHS_CHECKED 65536
#define MAX_DATASET 100000 /* --dataset entries taken at most (a run by duration uses them in turn) */

/* independent random streams, all keyed by the seed */
enum { RNG_PROMPT_LEN = 1, RNG_MAX_TOKENS = 2, RNG_ARRIVAL = 3 };

static const char *const ERROR_NAMES[SL_LG_E_COUNT] = {"transport", "timeout", "http", "stream_error", "no_done",
                                                       "protocol"};

const char *sl_lg_error_name(sl_lg_error e) { return (unsigned)e < SL_LG_E_COUNT ? ERROR_NAMES[e] : "?"; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- distributions ------------------------------------------------------------- */

static bool parse_i32(const char *s, const char **end, int32_t *out) {
    char *e;
    long long x = strtoll(s, &e, 10);
    if (e == s || x < INT32_MIN || x > INT32_MAX) return false;
    *out = (int32_t)x;
    *end = e;
    return true;
}

sl_status sl_lg_dist_parse(const char *text, int32_t min, int32_t max, sl_lg_dist *out) {
    const char *p = text, *e;
    if (!text) return SL_FAIL(SL_ERR_INVALID, "no distribution given");
    if (!strncmp(p, "uniform:", 8)) {
        p += 8;
        if (!parse_i32(p, &e, &out->lo) || *e != ':' || !parse_i32(e + 1, &e, &out->hi) || *e)
            return SL_FAIL(SL_ERR_INVALID, "'%s': expected uniform:A:B with integers A <= B", text);
    } else {
        if (!parse_i32(p, &e, &out->lo) || *e)
            return SL_FAIL(SL_ERR_INVALID, "'%s': expected an integer or uniform:A:B", text);
        out->hi = out->lo;
    }
    if (out->lo > out->hi) return SL_FAIL(SL_ERR_INVALID, "'%s': the low end exceeds the high end", text);
    if (out->lo < min || out->hi > max) return SL_FAIL(SL_ERR_RANGE, "'%s': values must be in [%d, %d]", text, min, max);
    return SL_OK;
}

static int32_t dist_sample(sl_lg_dist d, uint64_t seed, uint64_t stream, uint64_t index) {
    if (d.lo == d.hi) return d.lo;
    uint64_t span = (uint64_t)((int64_t)d.hi - d.lo + 1);
    uint64_t k = (uint64_t)(sl_rng_uniform(seed ^ (stream * 0x9E3779B97F4A7C15ull), index, 0) * (double)span);
    return d.lo + (int32_t)(k < span ? k : span - 1);
}

/* ---- growable buffers -------------------------------------------------------------- */

typedef struct dvec {
    double *v;
    size_t n, cap;
} dvec;

static sl_status dvec_push(dvec *d, double x) {
    if (d->n == d->cap) {
        size_t c = d->cap ? d->cap * 2 : 256;
        double *nv = sl_realloc(d->v, c * sizeof *nv);
        if (!nv) return SL_FAIL(SL_ERR_NOMEM, "a series of %zu values", c);
        d->v = nv;
        d->cap = c;
    }
    d->v[d->n++] = x;
    return SL_OK;
}

typedef struct membuf {
    char *s;
    size_t n, cap;
    bool overflow;
} membuf;

static size_t membuf_write(char *p, size_t size, size_t nmemb, void *ud) {
    membuf *b = ud;
    size_t n = size * nmemb;
    if (b->n + n + 1 > MAX_SETUP_BYTES) {
        b->overflow = true;
        return 0;
    }
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap * 2 : 4096;
        while (c < b->n + n + 1) c *= 2;
        char *ns = sl_realloc(b->s, c);
        if (!ns) return 0;
        b->s = ns;
        b->cap = c;
    }
    memcpy(b->s + b->n, p, n);
    b->n += n;
    b->s[b->n] = '\0';
    return n;
}

/* ---- state --------------------------------------------------------------------- */

typedef struct loadgen loadgen;

typedef struct slot {
    loadgen *lg;
    CURL *easy;
    bool busy;
    int64_t index;
    char *body;              /* request JSON (jansson's malloc) */
    int32_t n_prompt, max_tokens;
    double t_start, t_first, t_last, t_now;
    int32_t chunks;          /* token chunks */
    int64_t usage_out, usage_prompt, usage_cached; /* -1 when the server sent none */
    bool got_done, proto_err, stream_err, status_known;
    long http_status;
    char err[256];           /* message of a protocol or stream error */
    char errbody[256];       /* start of a non-200 body */
    size_t n_errbody;
    char curl_err[CURL_ERROR_SIZE];
    sl_sse sse;
    dvec itl;                /* this request's gaps (s) */
} slot;

struct loadgen {
    const sl_loadgen_cfg *cfg;
    char base[512];
    char model[256];
    struct curl_slist *hdrs;
    CURL *setup;
    char setup_err[CURL_ERROR_SIZE];
    CURLM *multi;
    slot *slots;
    int32_t n_slots;
    sl_promptgen *pg;
    /* --dataset: its prompts, their lengths in tokens, their output lengths (0: --max-tokens), in the run's order */
    char **ds_prompt;
    int32_t *ds_len, *ds_out;
    int64_t n_ds;
    json_t *logit_bias;
    dvec ttft, itl, tpot, e2e, outlen;
    sl_loadgen_report *rep;
};

/* ---- setup requests ---------------------------------------------------------------- */

static sl_status setup_call(loadgen *lg, const char *path, const char *body, membuf *resp) {
    char url[600];
    snprintf(url, sizeof url, "%s%s", lg->base, path);
    resp->n = 0;
    resp->overflow = false;
    CURL *e = lg->setup;
    lg->setup_err[0] = '\0';
    curl_easy_setopt(e, CURLOPT_URL, url);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(e, CURLOPT_WRITEDATA, resp);
    CURLcode rc = curl_easy_perform(e);
    if (rc != CURLE_OK) {
        if (resp->overflow) return SL_FAIL(SL_ERR_PROTO, "%s: answer longer than %u bytes", url, MAX_SETUP_BYTES);
        return SL_FAIL(rc == CURLE_OPERATION_TIMEDOUT ? SL_ERR_TIMEOUT : SL_ERR_IO, "cannot reach %s: %s", url,
                       lg->setup_err[0] ? lg->setup_err : curl_easy_strerror(rc));
    }
    long code = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    if (code != 200)
        return SL_FAIL(SL_ERR_PROTO, "%s %s answered HTTP %ld: %.200s", body ? "POST" : "GET", url, code,
                       resp->s ? resp->s : "");
    if (!resp->s) return SL_FAIL(SL_ERR_PROTO, "%s: empty answer", url);
    return SL_OK;
}

/* sl_tokenize_fn over POST /tokenize: the text as vLLM's "prompt" and
 * llama-server's "content", with the special tokens a completion's prompt
 * gets (vLLM's add_special_tokens is true by default, llama-server's
 * add_special false) */
static sl_status http_tokenize(void *ud, const char *text, int32_t **ids, size_t *n) {
    loadgen *lg = ud;
    *ids = NULL;
    *n = 0;
    membuf resp = {0};
    sl_status st = SL_OK;
    json_t *req = json_pack("{s:s,s:s,s:b}", "prompt", text, "content", text, "add_special", 1), *o = NULL;
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (!body) {
        st = SL_FAIL(SL_ERR_NOMEM, "tokenize request body");
        goto fail;
    }
    if ((st = setup_call(lg, "/tokenize", body, &resp))) goto fail;
    json_error_t je;
    o = json_loadb(resp.s, resp.n, 0, &je);
    json_t *toks = json_object_get(o, "tokens");
    if (!json_is_array(toks)) {
        st = SL_FAIL(SL_ERR_PROTO, "/tokenize: the answer has no 'tokens' array: %.200s", resp.s);
        goto fail;
    }
    size_t k = json_array_size(toks);
    if (k) {
        *ids = sl_alloc_array(k, sizeof **ids);
        if (!*ids) {
            st = SL_FAIL(SL_ERR_NOMEM, "%zu token ids", k);
            goto fail;
        }
    }
    for (size_t i = 0; i < k; i++) {
        json_t *v = json_array_get(toks, i);
        if (!json_is_integer(v)) {
            st = SL_FAIL(SL_ERR_PROTO, "/tokenize: tokens[%zu] is not an integer", i);
            goto fail;
        }
        (*ids)[i] = (int32_t)json_integer_value(v);
    }
    *n = k;
fail:
    if (st) {
        sl_free(*ids);
        *ids = NULL;
    }
    json_decref(o);
    free(body);
    sl_free(resp.s);
    return st;
}

static sl_status query_model(loadgen *lg) {
    membuf resp = {0};
    sl_status st = setup_call(lg, "/v1/models", NULL, &resp);
    json_t *o = NULL;
    if (st) goto fail;
    json_error_t je;
    o = json_loadb(resp.s, resp.n, 0, &je);
    const char *id = json_string_value(json_object_get(json_array_get(json_object_get(o, "data"), 0), "id"));
    if (!id) {
        st = SL_FAIL(SL_ERR_PROTO, "/v1/models: no data[0].id in %.200s", resp.s);
        goto fail;
    }
    snprintf(lg->model, sizeof lg->model, "%s", id);
fail:
    json_decref(o);
    sl_free(resp.s);
    return st;
}

/* ---- streaming transfers ----------------------------------------------------------- */

static int on_event(void *ud, const sl_sse_event *ev) {
    slot *s = ud;
    if (s->got_done) return 0; /* nothing after [DONE] counts */
    if (ev->data_len == 6 && !memcmp(ev->data, "[DONE]", 6)) {
        s->got_done = true;
        return 0;
    }
    json_error_t je;
    json_t *o = json_loadb(ev->data, ev->data_len, 0, &je);
    if (!json_is_object(o)) {
        snprintf(s->err, sizeof s->err, "event data is not a JSON object (%.100s): %.80s", o ? "not an object" : je.text,
                 ev->data);
        s->proto_err = true;
        json_decref(o);
        return 1;
    }
    json_t *err = json_object_get(o, "error");
    if (err && !json_is_null(err)) {
        const char *m = json_is_string(err) ? json_string_value(err) : json_string_value(json_object_get(err, "message"));
        if (!s->stream_err) snprintf(s->err, sizeof s->err, "error event: %s", m ? m : "(no message)");
        s->stream_err = true;
    }
    json_t *u = json_object_get(o, "usage");
    if (json_is_object(u)) {
        json_t *c = json_object_get(u, "completion_tokens"), *p = json_object_get(u, "prompt_tokens");
        json_t *k = json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens");
        if (json_is_integer(c)) s->usage_out = json_integer_value(c);
        if (json_is_integer(p)) s->usage_prompt = json_integer_value(p);
        if (json_is_integer(k)) s->usage_cached = json_integer_value(k);
    }
    json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
    if (json_is_object(ch)) {
        json_t *fin = json_object_get(ch, "finish_reason"), *txt;
        bool finished = fin && !json_is_null(fin), role = false;
        if (s->lg->cfg->endpoint == SL_LG_CHAT) {
            json_t *d = json_object_get(ch, "delta");
            txt = json_object_get(d, "content");
            role = json_object_get(d, "role") != NULL;
        } else {
            txt = json_object_get(ch, "text");
        }
        size_t len = json_is_string(txt) ? json_string_length(txt) : 0;
        if (len > 0 || (json_is_string(txt) && !finished && !role)) {
            if (s->chunks == 0) s->t_first = s->t_now;
            else if (dvec_push(&s->itl, s->t_now - s->t_last)) {
                snprintf(s->err, sizeof s->err, "out of memory for inter-token gaps");
                s->proto_err = true;
                json_decref(o);
                return 1;
            }
            s->t_last = s->t_now;
            s->chunks++;
        }
    }
    json_decref(o);
    return 0;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud) {
    slot *s = ud;
    size_t n = size * nmemb;
    s->t_now = now_s();
    if (!s->status_known) {
        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &s->http_status);
        s->status_known = true;
    }
    if (s->http_status != 200) {
        size_t k = sizeof s->errbody - 1 - s->n_errbody;
        if (k > n) k = n;
        memcpy(s->errbody + s->n_errbody, p, k);
        s->n_errbody += k;
        s->errbody[s->n_errbody] = '\0';
        return n;
    }
    sl_status st = sl_sse_feed(&s->sse, p, n, on_event, s);
    if (st) {
        if (!s->proto_err) snprintf(s->err, sizeof s->err, "%s", sl_last_error());
        s->proto_err = true;
        return 0; /* abort the transfer */
    }
    return n;
}

/* A slot's handle for its next request (start_request): a new one each
 * time (the connections stay in the multi handle's cache, so they are still reused).
 * libcurl 7.88 counts the retries of a request sent on a kept-alive
 * connection the server had closed per handle, not per transfer: a handle
 * that lived through several requests to a server that closes its
 * connections (llama-server after 5 requests on one) failed one with
 * "Connection died, tried 5 times before giving up". */
static sl_status slot_easy(loadgen *lg, slot *s) {
    if (s->easy) curl_easy_cleanup(s->easy);
    s->easy = curl_easy_init();
    if (!s->easy) return SL_FAIL(SL_ERR_NOMEM, "curl_easy_init");
    char url[600];
    snprintf(url, sizeof url, "%s%s", lg->base,
             lg->cfg->endpoint == SL_LG_CHAT ? "/v1/chat/completions" : "/v1/completions");
    CURL *e = s->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, lg->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->curl_err);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (lg->cfg->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, lg->cfg->ca_file);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(lg->cfg->timeout_s * 1000.0));
    curl_easy_setopt(e, CURLOPT_PRIVATE, s);
    return SL_OK;
}

static void slot_init(loadgen *lg, slot *s) {
    s->lg = lg;
    sl_sse_init(&s->sse, MAX_EVENT_BYTES);
}

static void slot_deinit(slot *s) {
    if (s->easy) curl_easy_cleanup(s->easy);
    free(s->body);
    sl_sse_deinit(&s->sse);
    sl_free(s->itl.v);
}

static sl_status start_request(loadgen *lg, slot *s, int64_t idx) {
    const sl_loadgen_cfg *c = lg->cfg;
    int32_t n_prompt = dist_sample(c->prompt_tokens, c->seed, RNG_PROMPT_LEN, (uint64_t)idx);
    int32_t max_tokens = dist_sample(c->max_tokens, c->seed, RNG_MAX_TOKENS, (uint64_t)idx);
    char *text = NULL;
    sl_status st = SL_OK;
    if (lg->n_ds > 0) { /* the dataset's entry */
        const int64_t k = idx % lg->n_ds;
        n_prompt = lg->ds_len[k];
        if (lg->ds_out[k] > 0) max_tokens = lg->ds_out[k];
        if (!(text = sl_strdup(lg->ds_prompt[k]))) st = SL_FAIL(SL_ERR_NOMEM, "a prompt");
    } else {
        st = sl_promptgen_make(lg->pg, (uint64_t)idx, n_prompt, &text);
    }
    if (st) return sl_err_prefix(st, "request %lld", (long long)idx);
    json_t *o = json_pack("{s:s,s:i,s:f,s:b,s:{s:b}}", "model", lg->model, "max_tokens", max_tokens, "temperature",
                          c->temperature, "stream", 1, "stream_options", "include_usage", 1);
    if (o) {
        if (c->endpoint == SL_LG_CHAT)
            json_object_set_new(o, "messages", json_pack("[{s:s,s:s}]", "role", "user", "content", text));
        else
            json_object_set_new(o, "prompt", json_string(text));
        if (c->ignore_eos) json_object_set_new(o, "ignore_eos", json_true());
        if (lg->logit_bias) json_object_set(o, "logit_bias", lg->logit_bias);
        if (c->sessions > 0) {
            char user[48];
            snprintf(user, sizeof user, "session-%lld", (long long)(idx % c->sessions));
            json_object_set_new(o, "user", json_string(user));
        }
    }
    sl_free(text);
    free(s->body);
    s->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s->body) return SL_FAIL(SL_ERR_NOMEM, "request %lld: body", (long long)idx);
    s->index = idx;
    s->n_prompt = n_prompt;
    s->max_tokens = max_tokens;
    s->chunks = 0;
    s->usage_out = s->usage_prompt = s->usage_cached = -1;
    s->got_done = s->proto_err = s->stream_err = s->status_known = false;
    s->http_status = 0;
    s->err[0] = s->errbody[0] = s->curl_err[0] = '\0';
    s->n_errbody = 0;
    s->itl.n = 0;
    sl_sse_reset(&s->sse);
    if ((st = slot_easy(lg, s))) return st;
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, (long)strlen(s->body));
    s->t_start = now_s();
    s->t_first = s->t_last = s->t_now = s->t_start;
    if (curl_multi_add_handle(lg->multi, s->easy) != CURLM_OK)
        return SL_FAIL(SL_ERR_IO, "request %lld: curl_multi_add_handle failed", (long long)idx);
    s->busy = true;
    return SL_OK;
}

static void record_error(loadgen *lg, sl_lg_error kind, const char *fmt, ...) SL_PRINTF(3, 4);
static void record_error(loadgen *lg, sl_lg_error kind, const char *fmt, ...) {
    sl_loadgen_report *r = lg->rep;
    r->failed++;
    if (r->errors[kind]++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->error_sample[kind], sizeof r->error_sample[kind], fmt, ap);
        va_end(ap);
    }
}

/* A transfer ended: settle it as a success or an error. */
static sl_status finish_request(loadgen *lg, slot *s, CURLcode rc, double now) {
    curl_multi_remove_handle(lg->multi, s->easy);
    s->busy = false;
    sl_loadgen_report *r = lg->rep;
    double e2e = now - s->t_start;
    if (s->proto_err) {
        record_error(lg, SL_LG_E_PROTO, "%s", s->err);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        record_error(lg, SL_LG_E_TIMEOUT, "no complete answer within %g s (%d token chunks came)", lg->cfg->timeout_s,
                     s->chunks);
    } else if (rc != CURLE_OK) {
        record_error(lg, SL_LG_E_TRANSPORT, "%s", s->curl_err[0] ? s->curl_err : curl_easy_strerror(rc));
    } else if (s->http_status != 200) {
        if (!s->status_known) curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &s->http_status);
        if (s->http_status != 200) record_error(lg, SL_LG_E_HTTP, "HTTP %ld: %s", s->http_status, s->errbody);
    }
    if (s->proto_err || rc != CURLE_OK || s->http_status != 200) return SL_OK;
    if (s->stream_err) {
        record_error(lg, SL_LG_E_STREAM, "%s", s->err);
        return SL_OK;
    }
    if (!s->got_done) {
        record_error(lg, SL_LG_E_NO_DONE, "the stream ended without data: [DONE] (%d token chunks came)", s->chunks);
        return SL_OK;
    }
    r->completed++;
    int64_t out = s->usage_out >= 0 ? s->usage_out : s->chunks;
    if (s->usage_out < 0) r->usage_missing++;
    r->output_tokens += out;
    r->input_tokens += s->usage_prompt >= 0 ? s->usage_prompt : s->n_prompt;
    if (s->usage_cached > 0) r->cached_tokens += s->usage_cached;
    if (lg->cfg->endpoint == SL_LG_COMPLETIONS && s->usage_prompt >= 0 && s->usage_prompt != s->n_prompt)
        r->prompt_mismatch++;
    if (lg->cfg->ignore_eos && out != s->max_tokens) r->short_outputs++;
    sl_status st = dvec_push(&lg->e2e, e2e * 1e3);
    if (!st) st = dvec_push(&lg->outlen, (double)out);
    if (!st && s->chunks > 0) {
        double ttft = s->t_first - s->t_start;
        st = dvec_push(&lg->ttft, ttft * 1e3);
        if (!st && out > 1) st = dvec_push(&lg->tpot, (e2e - ttft) * 1e3 / (double)(out - 1));
    }
    for (size_t i = 0; !st && i < s->itl.n; i++) st = dvec_push(&lg->itl, s->itl.v[i] * 1e3);
    return st;
}

/* ---- the run ------------------------------------------------------------------------- */

static double next_gap(const sl_loadgen_cfg *c, uint64_t k) {
    double u = sl_rng_uniform(c->seed ^ (RNG_ARRIVAL * 0x9E3779B97F4A7C15ull), 0, k);
    return -log(1.0 - u) / c->rate; /* exponential: a Poisson process */
}

static sl_status validate(const sl_loadgen_cfg *c) {
    if (!c->url || !*c->url) return SL_FAIL(SL_ERR_INVALID, "no server URL");
    if (strlen(c->url) >= 400) return SL_FAIL(SL_ERR_INVALID, "server URL longer than 400 bytes");
    if (c->concurrency < 1) return SL_FAIL(SL_ERR_INVALID, "concurrency %d: must be at least 1", c->concurrency);
    if (c->requests < 0) return SL_FAIL(SL_ERR_INVALID, "requests %lld: must not be negative", (long long)c->requests);
    if (c->requests == 0 && !(c->duration_s > 0))
        return SL_FAIL(SL_ERR_INVALID, "neither a request count nor a duration bounds the run");
    if (!(c->duration_s >= 0) || !(c->rate >= 0) || !isfinite(c->rate))
        return SL_FAIL(SL_ERR_INVALID, "duration %g s / rate %g per s: must be finite and not negative", c->duration_s,
                       c->rate);
    if (!(c->timeout_s > 0)) return SL_FAIL(SL_ERR_INVALID, "timeout %g s: must be positive", c->timeout_s);
    if (!(c->shared_prefix >= 0 && c->shared_prefix < 1))
        return SL_FAIL(SL_ERR_INVALID, "shared prefix %g: must be in [0, 1)", c->shared_prefix);
    if (c->prompt_tokens.lo < 1 || c->max_tokens.lo < 1)
        return SL_FAIL(SL_ERR_INVALID, "prompt and output lengths must be at least 1");
    if (c->dataset && c->shared_prefix > 0)
        return SL_FAIL(SL_ERR_INVALID, "--dataset gives the prompts: a shared prefix cannot be made for them");
    return SL_OK;
}

static void progress(loadgen *lg, double t0, int64_t issued, int64_t running, int64_t total) {
    if (!lg->cfg->progress) return;
    sl_loadgen_progress p = {.elapsed_s = now_s() - t0, .issued = issued, .completed = lg->rep->completed,
                             .failed = lg->rep->failed, .running = running, .total = total,
                             .output_tokens = lg->rep->output_tokens};
    lg->cfg->progress(lg->cfg->progress_ud, &p);
}

static sl_status run_loop(loadgen *lg) {
    const sl_loadgen_cfg *c = lg->cfg;
    sl_loadgen_report *r = lg->rep;
    int64_t total = c->requests > 0 ? c->requests : INT64_MAX;
    int64_t issued = 0, running = 0;
    uint64_t n_arrivals = 0;
    double t0 = now_s(), t_end = t0;
    double next_arrival = t0, next_progress = t0 + 1.0;
    double deadline = c->duration_s > 0 ? t0 + c->duration_s : INFINITY;
    sl_status st = SL_OK;
    for (;;) {
        double now = now_s();
        bool may_issue = issued < total && now < deadline;
        while (may_issue && running < lg->n_slots && (c->rate <= 0 || next_arrival <= now)) {
            slot *s = NULL;
            for (int32_t i = 0; i < lg->n_slots && !s; i++)
                if (!lg->slots[i].busy) s = &lg->slots[i];
            SL_ASSERT(s);
            if ((st = start_request(lg, s, issued))) return st;
            issued++;
            running++;
            if (c->rate > 0) next_arrival += next_gap(c, n_arrivals++);
            may_issue = issued < total;
        }
        if (!may_issue && running == 0) break;
        int still = 0;
        curl_multi_perform(lg->multi, &still);
        CURLMsg *m;
        int left, ended = 0;
        while ((m = curl_multi_info_read(lg->multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            char *priv = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
            slot *s = (slot *)priv;
            CURLcode rc = m->data.result;
            t_end = now_s();
            if ((st = finish_request(lg, s, rc, t_end))) return st;
            running--;
            ended++;
        }
        now = now_s();
        if (now >= next_progress) {
            progress(lg, t0, issued, running, c->requests > 0 ? c->requests : -1);
            next_progress = now + 1.0;
        }
        if (ended) continue; /* clients send their next request at once */
        double wait = next_progress - now;
        if (may_issue && c->rate > 0 && running < lg->n_slots && next_arrival - now < wait) wait = next_arrival - now;
        if (may_issue && deadline - now < wait) wait = deadline - now;
        if (wait < 0) wait = 0;
        curl_multi_poll(lg->multi, NULL, 0, (int)ceil(wait * 1000.0), NULL);
    }
    r->issued = issued;
    r->duration_s = t_end - t0;
    progress(lg, t0, issued, 0, c->requests > 0 ? c->requests : -1); /* the final state */
    return SL_OK;
}

static void summarize(loadgen *lg) {
    sl_loadgen_report *r = lg->rep;
    sl_stats_summarize(lg->ttft.v, lg->ttft.n, &r->ttft_ms);
    sl_stats_summarize(lg->itl.v, lg->itl.n, &r->itl_ms);
    sl_stats_summarize(lg->tpot.v, lg->tpot.n, &r->tpot_ms);
    sl_stats_summarize(lg->e2e.v, lg->e2e.n, &r->e2e_ms);
    sl_stats_summarize(lg->outlen.v, lg->outlen.n, &r->output_len);
    if (r->duration_s > 0) {
        r->request_throughput = (double)r->completed / r->duration_s;
        r->output_throughput = (double)r->output_tokens / r->duration_s;
        r->total_throughput = (double)(r->input_tokens + r->output_tokens) / r->duration_s;
    }
}

/* One dataset entry: its prompt (and answer, whose tokens give its max_tokens), or nothing. */
static void ds_entry(const json_t *e, const char **prompt, const char **answer, int32_t *out_tokens) {
    *prompt = *answer = NULL;
    *out_tokens = 0;
    const json_t *conv = json_object_get(e, "conversations");
    size_t i;
    const json_t *turn;
    json_array_foreach(conv, i, turn) { /* ShareGPT's: the first human turn, the answer after it */
        const char *from = json_string_value(json_object_get(turn, "from")), *v = json_string_value(json_object_get(turn, "value"));
        if (!from || !v) continue;
        const bool human = !strcmp(from, "human") || !strcmp(from, "user");
        if (!*prompt && human) *prompt = v;
        else if (*prompt && !human) {
            *answer = v;
            break;
        }
    }
    if (!conv) {
        *prompt = json_string_value(json_object_get(e, "prompt"));
        const json_t *n = json_object_get(e, "output_tokens");
        if (!n) n = json_object_get(e, "max_tokens");
        if (json_is_integer(n) && json_integer_value(n) > 0 && json_integer_value(n) <= INT32_MAX)
            *out_tokens = (int32_t)json_integer_value(n);
    }
}

/* --dataset: the file's entries (JSON Lines or one JSON array), at most `cap`, in an order shuffled by seed, each
 * prompt's (and answer's) tokens counted by the server's /tokenize; entries without a prompt are skipped. */
static sl_status load_dataset(loadgen *lg, int64_t cap) {
    const sl_loadgen_cfg *c = lg->cfg;
    size_t len = 0;
    char *text = sl_read_file(c->dataset, &len);
    if (!text) return SL_FAIL(SL_ERR_IO, "--dataset %s: %s", c->dataset, strerror(errno));
    json_t *all = json_array();
    json_error_t je;
    json_t *whole = json_loadb(text, len, 0, &je);
    sl_status st = SL_OK;
    if (json_is_array(whole)) {
        json_array_extend(all, whole);
    } else { /* JSON Lines */
        int64_t line = 0;
        for (char *p = text, *nl; p && *p && st == SL_OK; p = nl ? nl + 1 : NULL) {
            nl = strchr(p, '\n');
            line++;
            const size_t n = nl ? (size_t)(nl - p) : strlen(p);
            size_t k = 0;
            while (k < n && (p[k] == ' ' || p[k] == '\t' || p[k] == '\r')) k++;
            if (k == n) continue;
            json_t *o = json_loadb(p, n, 0, &je);
            if (!json_is_object(o)) st = SL_FAIL(SL_ERR_INVALID, "--dataset %s: line %lld is not a JSON object: %s", c->dataset,
                                                 (long long)line, o ? "another JSON value" : je.text);
            else json_array_append(all, o);
            json_decref(o);
        }
    }
    json_decref(whole);
    free(text);
    const size_t n_all = json_array_size(all);
    size_t *order = st == SL_OK ? sl_alloc_array(n_all + 1, sizeof *order) : NULL;
    for (size_t i = 0; order && i < n_all; i++) order[i] = i;
    for (size_t i = n_all; order && i > 1; i--) { /* Fisher–Yates, by seed */
        const size_t j = (size_t)(sl_rng_uniform(c->seed ^ 0xD5A7A5E7ull, 0, i) * (double)i) % i;
        const size_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    if (st == SL_OK && !order) st = SL_FAIL(SL_ERR_NOMEM, "--dataset: %zu entries", n_all);
    const int64_t want = (int64_t)n_all < cap ? (int64_t)n_all : cap;
    lg->ds_prompt = st == SL_OK ? sl_calloc((size_t)want + 1, sizeof *lg->ds_prompt) : NULL;
    lg->ds_len = st == SL_OK ? sl_calloc((size_t)want + 1, sizeof *lg->ds_len) : NULL;
    lg->ds_out = st == SL_OK ? sl_calloc((size_t)want + 1, sizeof *lg->ds_out) : NULL;
    if (st == SL_OK && (!lg->ds_prompt || !lg->ds_len || !lg->ds_out)) st = SL_FAIL(SL_ERR_NOMEM, "--dataset entries");
    long n_bos = -1;
    for (size_t i = 0; st == SL_OK && i < n_all && lg->n_ds < want; i++) {
        const char *prompt, *answer;
        int32_t out_tokens;
        ds_entry(json_array_get(all, order[i]), &prompt, &answer, &out_tokens);
        if (!prompt || !*prompt) continue;
        int32_t *ids = NULL;
        size_t n = 0;
        if ((st = http_tokenize(lg, prompt, &ids, &n))) break;
        sl_free(ids);
        if (answer && *answer) { /* ShareGPT: as many tokens as its answer had (its own BOS not counted) */
            size_t na = 0;
            if ((st = http_tokenize(lg, answer, &ids, &na))) break;
            sl_free(ids);
            if (n_bos < 0) { /* (what /tokenize adds to any text, asked once) */
                size_t nb = 0;
                if ((st = http_tokenize(lg, "", &ids, &nb))) break;
                sl_free(ids);
                n_bos = (long)nb;
            }
            out_tokens = (long)na > n_bos ? (int32_t)((long)na - n_bos) : 1;
        }
        if (!(lg->ds_prompt[lg->n_ds] = sl_strdup(prompt))) st = SL_FAIL(SL_ERR_NOMEM, "a prompt");
        lg->ds_len[lg->n_ds] = (int32_t)n;
        lg->ds_out[lg->n_ds++] = out_tokens;
    }
    sl_free(order);
    json_decref(all);
    if (st == SL_OK && lg->n_ds == 0) st = SL_FAIL(SL_ERR_INVALID, "--dataset %s: no entry with a prompt", c->dataset);
    return st;
}

/* The made prompts: the word list priced through /tokenize, every length the distribution may draw composable, the
 * first few prompts checked. */
static sl_status make_prompts(loadgen *lg) {
    const sl_loadgen_cfg *c = lg->cfg;
    sl_status st;
    int32_t prefix = 0;
    if (c->shared_prefix > 0) {
        prefix = (int32_t)floor(c->shared_prefix * c->prompt_tokens.lo + 0.5);
        if (prefix >= c->prompt_tokens.lo) prefix = c->prompt_tokens.lo - 1;
    }
    sl_promptgen_cfg pc = {.max_tokens = c->prompt_tokens.hi, .prefix_tokens = prefix, .seed = c->seed};
    if ((st = sl_promptgen_create(&pc, http_tokenize, lg, &lg->pg))) return sl_err_prefix(st, "building prompts");
    lg->rep->prefix_tokens = prefix;
    lg->rep->n_words = sl_promptgen_n_words(lg->pg);
    /* every length the distribution can draw must be composable (the first
     * MAX_LENGTHS_CHECKED of a wide range and its top; a gap above that ends the run) */
    int64_t span = (int64_t)c->prompt_tokens.hi - c->prompt_tokens.lo + 1;
    for (int64_t k = 0; k < span && k < MAX_LENGTHS_CHECKED; k++) {
        int32_t len = k == MAX_LENGTHS_CHECKED - 1 ? c->prompt_tokens.hi : c->prompt_tokens.lo + (int32_t)k;
        if (!sl_promptgen_can_make(lg->pg, len))
            return SL_FAIL(SL_ERR_RANGE, "prompts of exactly %d tokens cannot be made from the built-in words%s", len,
                           prefix ? " after the shared prefix" : "");
    }
    int64_t n_check = c->check_prompts;
    if (c->requests > 0 && n_check > c->requests) n_check = c->requests;
    for (int64_t i = 0; i < n_check; i++) {
        int32_t len = dist_sample(c->prompt_tokens, c->seed, RNG_PROMPT_LEN, (uint64_t)i);
        char *text = NULL;
        st = sl_promptgen_make(lg->pg, (uint64_t)i, len, &text);
        if (!st) st = sl_promptgen_check(lg->pg, text, len, http_tokenize, lg);
        sl_free(text);
        if (st) return sl_err_prefix(st, "checking prompt %lld", (long long)i);
    }
    return SL_OK;
}

static sl_status setup(loadgen *lg) {
    const sl_loadgen_cfg *c = lg->cfg;
    sl_status st;
    /* base URL: no trailing '/', no trailing "/v1" */
    snprintf(lg->base, sizeof lg->base, "%s", c->url);
    size_t n = strlen(lg->base);
    while (n && lg->base[n - 1] == '/') lg->base[--n] = '\0';
    if (n >= 3 && !strcmp(lg->base + n - 3, "/v1")) lg->base[n -= 3] = '\0';

    lg->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (lg->hdrs) lg->hdrs = curl_slist_append(lg->hdrs, "Expect:"); /* no 100-continue round trip */
    if (lg->hdrs && c->api_key) {
        char auth[512];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->api_key);
        lg->hdrs = curl_slist_append(lg->hdrs, auth);
    }
    lg->setup = curl_easy_init();
    lg->multi = curl_multi_init();
    if (!lg->hdrs || !lg->setup || !lg->multi) return SL_FAIL(SL_ERR_NOMEM, "libcurl handles");
    curl_easy_setopt(lg->setup, CURLOPT_HTTPHEADER, lg->hdrs);
    curl_easy_setopt(lg->setup, CURLOPT_WRITEFUNCTION, membuf_write);
    curl_easy_setopt(lg->setup, CURLOPT_ERRORBUFFER, lg->setup_err);
    curl_easy_setopt(lg->setup, CURLOPT_NOSIGNAL, 1L);
    if (c->ca_file) curl_easy_setopt(lg->setup, CURLOPT_CAINFO, c->ca_file);
    curl_easy_setopt(lg->setup, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(lg->setup, CURLOPT_TIMEOUT_MS, SETUP_TIMEOUT_MS);
    curl_multi_setopt(lg->multi, CURLMOPT_MAXCONNECTS, (long)c->concurrency + 4);

    if (c->logit_bias) {
        json_error_t je;
        lg->logit_bias = json_loads(c->logit_bias, 0, &je);
        if (!json_is_object(lg->logit_bias))
            return SL_FAIL(SL_ERR_INVALID, "logit bias '%.80s' is not a JSON object: %s", c->logit_bias,
                           lg->logit_bias ? "another JSON value" : je.text);
    }
    if (c->model) snprintf(lg->model, sizeof lg->model, "%s", c->model);
    else if ((st = query_model(lg))) return st;
    snprintf(lg->rep->model, sizeof lg->rep->model, "%s", lg->model);

    if (c->dataset) { /* (prompts from the file: nothing to make) */
        const int64_t cap = c->requests > 0 ? c->requests : MAX_DATASET;
        if ((st = load_dataset(lg, cap < MAX_DATASET ? cap : MAX_DATASET))) return st;
        lg->rep->n_dataset = lg->n_ds;
    } else if ((st = make_prompts(lg))) {
        return st;
    }
    lg->n_slots = c->concurrency;
    lg->slots = sl_calloc((size_t)lg->n_slots, sizeof *lg->slots);
    if (!lg->slots) return SL_FAIL(SL_ERR_NOMEM, "%d client slots", lg->n_slots);
    for (int32_t i = 0; i < lg->n_slots; i++)
        slot_init(lg, &lg->slots[i]);
    return SL_OK;
}

sl_status sl_loadgen_run(const sl_loadgen_cfg *cfg, sl_loadgen_report *out) {
    memset(out, 0, sizeof *out);
    sl_status st = validate(cfg);
    if (st) return st;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return SL_FAIL(SL_ERR_IO, "curl_global_init failed");
    loadgen lg = {.cfg = cfg, .rep = out};
    double t_setup = now_s();
    st = setup(&lg);
    out->setup_s = now_s() - t_setup;
    if (!st) st = run_loop(&lg);
    if (!st) summarize(&lg);
    for (int32_t i = 0; lg.slots && i < lg.n_slots; i++) {
        if (lg.slots[i].busy) curl_multi_remove_handle(lg.multi, lg.slots[i].easy);
        slot_deinit(&lg.slots[i]);
    }
    sl_free(lg.slots);
    if (lg.multi) curl_multi_cleanup(lg.multi);
    if (lg.setup) curl_easy_cleanup(lg.setup);
    curl_slist_free_all(lg.hdrs);
    json_decref(lg.logit_bias);
    sl_promptgen_destroy(lg.pg);
    for (int64_t i = 0; i < lg.n_ds; i++) sl_free(lg.ds_prompt[i]);
    sl_free(lg.ds_prompt);
    sl_free(lg.ds_len);
    sl_free(lg.ds_out);
    sl_free(lg.ttft.v);
    sl_free(lg.itl.v);
    sl_free(lg.tpot.v);
    sl_free(lg.e2e.v);
    sl_free(lg.outlen.v);
    curl_global_cleanup();
    return st;
}

/*
 * background.c — the router's background responses (see background.h).
 */
#include "router/background.h"

#include "core/alloc.h"
#include "core/pool.h"
#include "router/router.h"
#include "router/evstream.h"
#include "router/proxy.h"
#include "server/addr.h"
#include "server/responses.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_RAW (64 << 10)    /* what a job keeps of a body that is not a stream, for its error message */
#define MAX_EVENT (16 << 20)  /* the longest chunk a job reads */

typedef struct job {
    struct sl_bg *b;
    char resp_id[96], chat_id[96];
    char *body, *auth;
    size_t n;
    json_t *req;         /* the translated request (what the kept objects are made of) */
    atomic_bool cancel;
    struct job *next;
} job;

struct sl_bg {
    sl_router *r;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *jobs; /* running */
};

sl_status sl_bg_create(sl_router *r, sl_bg **out) {
    *out = NULL;
    sl_bg *b = sl_calloc(1, sizeof *b);
    if (!b) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    b->r = r;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    *out = b;
    return SL_OK;
}

void sl_bg_destroy(sl_bg *b) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    for (job *j = b->jobs; j; j = j->next) atomic_store(&j->cancel, true);
    for (int i = 0; i < 200 && b->jobs; i++) sl_cond_wait_ms(&b->cv, &b->mu, 50); /* (each ends within a second) */
    const bool left = b->jobs != NULL;
    pthread_mutex_unlock(&b->mu);
    if (left) { /* (a thread still running keeps b: not freed) */
        fprintf(stderr, "shardlm route: background responses still running at exit\n");
        return;
    }
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    sl_free(b);
}

/* The kept object of j with status (and error: a failure's message), where it has not ended otherwise. */
static void keep_status(job *j, const char *status, const char *error) {
    sl_resp_store *st = j->b->r->store;
    json_t *o = sl_resp_store_get(st, j->resp_id);
    const char *now = json_string_value(json_object_get(o, "status"));
    if (o && now && (!strcmp(now, "queued") || !strcmp(now, "in_progress"))) {
        json_object_set_new(o, "status", json_string(status));
        if (error) json_object_set_new(o, "error", json_pack("{s:s,s:s}", "code", "server_error", "message", error));
        sl_resp_store_put(st, j->req, o);
    }
    json_decref(o);
}

/* What a job reads of its stream: the chat chunks become the response (rs, kept in the store when it ends), and
 * the start of a body that is not a stream (a refusal) is kept for its message. */
typedef struct reading {
    job *j;
    sl_evstream ev;
    sl_resp_stream *rs;
    sl_strbuf scratch; /* (the Responses events the chunks make: not sent anywhere) */
    char *err;         /* an error chunk's message, or NULL */
    sl_strbuf raw;     /* the body's first bytes */
} reading;

static bool on_event(void *ud, char *ev, size_t n) {
    reading *rd = ud;
    size_t pos = 0, ln, vl;
    const char *line, *v;
    while (sl_evstream_line(ev, n, &pos, &line, &ln)) {
        if (!sl_evstream_field(line, ln, "data", &v, &vl)) continue;
        json_t *o = json_loadb(v, vl, 0, NULL);
        if (!json_is_object(o)) {
            json_decref(o);
            continue;
        }
        const char *m = json_string_value(json_object_get(json_object_get(o, "error"), "message"));
        if (m && !rd->err) rd->err = strdup(m);
        if (!rd->rs) { /* (the response's id from the chat id the queued object was made with) */
            const char *model = json_string_value(json_object_get(o, "model"));
            rd->rs = sl_resp_stream_new(rd->j->req, rd->j->chat_id, model ? model : "",
                                        (long long)json_integer_value(json_object_get(o, "created")), &rd->scratch);
            sl_resp_stream_keep_in(rd->rs, rd->j->b->r->store);
        }
        if (rd->rs) sl_resp_stream_chunk(rd->rs, o, &rd->scratch);
        rd->scratch.n = 0;
        json_decref(o);
    }
    return true;
}

static size_t on_data(char *p, size_t sz, size_t nm, void *ud) {
    reading *rd = ud;
    const size_t n = sz * nm;
    if (rd->raw.n < MAX_RAW) sl_strbuf_add(&rd->raw, p, n < MAX_RAW - rd->raw.n ? n : MAX_RAW - rd->raw.n);
    return sl_evstream_feed(&rd->ev, p, n, on_event, rd) == SL_OK ? n : 0;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
    (void)dt, (void)dn, (void)ut, (void)un;
    return atomic_load(&((job *)ud)->cancel) ? 1 : 0;
}

static void job_free(job *j) {
    free(j->body);
    free(j->auth);
    json_decref(j->req);
    sl_free(j);
}

static void *job_main(void *arg) {
    job *j = arg;
    sl_bg *b = j->b;
    keep_status(j, "in_progress", NULL);
    const bool tls = b->r->cfg.tls_key_file != NULL;
    char url[160];
    sl_host_url(b->r->cfg.host, sl_router_port(b->r), tls, true, url, sizeof url - 24);
    strcat(url, "/v1/chat/completions");
    reading rd = {.j = j};
    sl_evstream_init(&rd.ev, MAX_EVENT);
    long status = 0;
    CURLcode rc = CURLE_FAILED_INIT;
    CURL *h = curl_easy_init();
    struct curl_slist *hl = NULL;
    if (h) {
        hl = curl_slist_append(hl, "Content-Type: application/json");
        if (j->auth) {
            char *line = malloc(strlen(j->auth) + 32);
            if (line) {
                sprintf(line, "Authorization: %s", j->auth);
                hl = curl_slist_append(hl, line);
                free(line);
            }
        }
        curl_easy_setopt(h, CURLOPT_URL, url);
        if (tls) { /* (the router's own listener, over loopback) */
            curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
            if (b->r->cfg.tls_ca_file && b->r->cfg.tls_cert_reqs > 0) { /* mutual TLS: the router's own certificate (it must
                                                                          * chain to --ssl-ca-certs) */
                curl_easy_setopt(h, CURLOPT_SSLCERT, b->r->cfg.tls_cert_file);
                curl_easy_setopt(h, CURLOPT_SSLKEY, b->r->cfg.tls_key_file);
            }
        }
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, j->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)j->n);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &rd);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, j);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)SL_BG_TIMEOUT_S);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        rc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    }
    if (atomic_load(&j->cancel)) { /* what it had, cancelled (also when it had ended: the cancel has the last word) */
        json_t *o = rd.rs ? sl_resp_stream_partial(rd.rs, "cancelled") : NULL;
        if (o && sl_resp_stream_ended(rd.rs)) { /* (an ended stream kept its answer: cancelled as it is) */
            json_t *kept = sl_resp_store_get(b->r->store, json_string_value(json_object_get(o, "id")));
            if (kept) {
                json_decref(o);
                o = kept;
                json_object_set_new(o, "status", json_string("cancelled"));
                json_object_set_new(o, "incomplete_details", json_null());
            }
        }
        if (o) sl_resp_store_put(b->r->store, j->req, o);
        else keep_status(j, "cancelled", NULL);
        json_decref(o);
    } else if (!sl_resp_stream_ended(rd.rs) || rd.err) { /* (an ended stream kept its answer) */
        char why[512];
        json_t *o = rd.raw.p ? json_loads(rd.raw.p, 0, NULL) : NULL;
        const char *msg = rd.err ? rd.err : json_string_value(json_object_get(json_object_get(o, "error"), "message"));
        if (msg) snprintf(why, sizeof why, "%s", msg);
        else if (rc != CURLE_OK) snprintf(why, sizeof why, "the router's request failed: %s", curl_easy_strerror(rc));
        else snprintf(why, sizeof why, "the engines failed it (HTTP %ld, the stream ended before its answer)", status);
        json_decref(o);
        keep_status(j, "failed", why);
    }
    curl_slist_free_all(hl);
    if (h) curl_easy_cleanup(h);
    sl_evstream_deinit(&rd.ev);
    sl_resp_stream_free(rd.rs);
    free(rd.scratch.p);
    free(rd.raw.p);
    free(rd.err);
    pthread_mutex_lock(&b->mu);
    for (job **p = &b->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    job_free(j);
    return NULL;
}

sl_status sl_bg_start(sl_bg *b, const char *resp_id, const char *chat_id, const char *chat_body, const char *auth,
                      json_t *req) {
    job *j = sl_calloc(1, sizeof *j);
    if (!j) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    j->b = b;
    snprintf(j->resp_id, sizeof j->resp_id, "%s", resp_id);
    snprintf(j->chat_id, sizeof j->chat_id, "%s", chat_id);
    json_t *o = json_loads(chat_body, 0, NULL); /* (streamed, to the usage chunk that ends the response) */
    if (json_is_object(o)) {
        json_object_set_new(o, "stream", json_true());
        json_object_set_new(o, "stream_options", json_pack("{s:b}", "include_usage", 1));
        j->body = json_dumps(o, JSON_COMPACT);
    }
    json_decref(o);
    j->auth = auth ? strdup(auth) : NULL;
    j->req = json_incref(req);
    if (!j->body || (auth && !j->auth)) {
        job_free(j);
        return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    }
    j->n = strlen(j->body);
    pthread_mutex_lock(&b->mu);
    j->next = b->jobs;
    b->jobs = j;
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    const bool started = pthread_create(&t, &at, job_main, j) == 0;
    pthread_attr_destroy(&at);
    if (!started) b->jobs = j->next;
    pthread_mutex_unlock(&b->mu);
    if (!started) {
        job_free(j);
        return SL_FAIL(SL_ERR_IO, "cannot start the background thread");
    }
    return SL_OK;
}

bool sl_bg_cancel(sl_bg *b, const char *resp_id) {
    pthread_mutex_lock(&b->mu);
    job *j = b->jobs;
    while (j && strcmp(j->resp_id, resp_id)) j = j->next;
    const bool found = j != NULL;
    if (j) atomic_store(&j->cancel, true);
    for (int i = 0; i < 100 && found; i++) { /* its end, at most 5 s */
        job *q = b->jobs;
        while (q && q != j) q = q->next;
        if (!q) break;
        sl_cond_wait_ms(&b->cv, &b->mu, 50);
    }
    pthread_mutex_unlock(&b->mu);
    return found;
}

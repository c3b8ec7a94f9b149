/*
 * background.c — the router's background responses (see background.h).
 */
#include "router/background.h"

#include "core/alloc.h"
#include "core/pool.h"
#include "router/router.h"
#include "router/proxy.h"
#include "server/addr.h"
#include "server/responses.h"

#include <curl/curl.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ANSWER (64 << 20) /* what a job reads of its answer (the router kept it already) */

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
    char secret[33];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *jobs; /* running */
};

sl_status sl_bg_create(sl_router *r, sl_bg **out) {
    *out = NULL;
    sl_bg *b = sl_calloc(1, sizeof *b);
    unsigned char raw[16];
    if (!b) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    if (RAND_bytes(raw, sizeof raw) != 1) {
        sl_free(b);
        return SL_FAIL(SL_ERR_IO, "background responses: no random bytes for the router's secret");
    }
    for (int i = 0; i < 16; i++) snprintf(b->secret + 2 * i, 3, "%02x", raw[i]);
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

bool sl_bg_is_own(const sl_bg *b, const char *value, size_t n, const char **id, size_t *id_len) {
    const size_t k = strlen(b->secret);
    if (!value || n <= k + 1 || memcmp(value, b->secret, k) != 0 || value[k] != ' ') return false;
    *id = value + k + 1;
    *id_len = n - k - 1;
    return true;
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

typedef struct answer {
    char *p;
    size_t n;
} answer;

static size_t on_data(char *p, size_t sz, size_t nm, void *ud) {
    answer *a = ud;
    const size_t n = sz * nm;
    if (a->n + n > MAX_ANSWER) return n; /* (the rest is not needed) */
    char *q = realloc(a->p, a->n + n + 1);
    if (!q) return 0;
    memcpy(q + a->n, p, n);
    a->n += n;
    q[a->n] = '\0';
    a->p = q;
    return n;
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
    char url[160], mark[256];
    sl_host_url(b->r->cfg.host, sl_router_port(b->r), tls, true, url, sizeof url - 16);
    strcat(url, "/v1/responses");
    snprintf(mark, sizeof mark, "%s: %s %s", SL_BG_HEADER, b->secret, j->chat_id);
    answer a = {0};
    long status = 0;
    CURLcode rc = CURLE_FAILED_INIT;
    CURL *h = curl_easy_init();
    struct curl_slist *hl = NULL;
    if (h) {
        hl = curl_slist_append(hl, "Content-Type: application/json");
        hl = curl_slist_append(hl, mark);
        if (j->auth) {
            char *line = malloc(strlen(j->auth) + 32);
            if (line) {
                sprintf(line, "Authorization: %s", j->auth);
                hl = curl_slist_append(hl, line);
                free(line);
            }
        }
        curl_easy_setopt(h, CURLOPT_URL, url);
        if (tls) { /* (the router's own listener, over loopback: the secret header is what vouches for the request) */
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
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, j);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)SL_BG_TIMEOUT_S);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        rc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    }
    json_t *done = rc == CURLE_OK && status == 200 && a.p ? json_loads(a.p, 0, NULL) : NULL;
    if (atomic_load(&j->cancel)) { /* (also when the answer came as it was cancelled: the cancel said cancelled) */
        keep_status(j, "cancelled", NULL);
    } else if (json_is_object(done) && json_is_string(json_object_get(done, "id"))) {
        sl_resp_store_put(b->r->store, j->req, done); /* (the router's own request keeps nothing: this job does) */
    } else {
        char why[512];
        json_t *o = a.p ? json_loads(a.p, 0, NULL) : NULL;
        const char *msg = json_string_value(json_object_get(json_object_get(o, "error"), "message"));
        if (rc != CURLE_OK) snprintf(why, sizeof why, "the router's request failed: %s", curl_easy_strerror(rc));
        else snprintf(why, sizeof why, "%s", msg ? msg : "the engines failed it");
        json_decref(o);
        keep_status(j, "failed", why);
    }
    json_decref(done);
    curl_slist_free_all(hl);
    if (h) curl_easy_cleanup(h);
    free(a.p);
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

sl_status sl_bg_start(sl_bg *b, const char *resp_id, const char *chat_id, const char *body, size_t n, const char *auth,
                      json_t *req) {
    job *j = sl_calloc(1, sizeof *j);
    if (!j) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    j->b = b;
    snprintf(j->resp_id, sizeof j->resp_id, "%s", resp_id);
    snprintf(j->chat_id, sizeof j->chat_id, "%s", chat_id);
    j->body = malloc(n + 1);
    j->auth = auth ? strdup(auth) : NULL;
    j->req = json_incref(req);
    if (!j->body || (auth && !j->auth)) {
        job_free(j);
        return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    }
    memcpy(j->body, body, n);
    j->body[n] = '\0';
    j->n = n;
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

/*
 * health.c — probes, load reports and model lists (see health.h).
 */
#include "router/health.h"

#include "core/alloc.h"
#include "core/status.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { P_READY, P_METRICS, P_MODELS };

struct sl_health {
    sl_router *r;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop, kicked;
    CURLM *multi;
};

typedef struct probe {
    sl_member *e;
    int what;
    CURL *h;
    char *buf;
    size_t n, cap;
    CURLcode rc;
    long code;
    bool done;
} probe;

static size_t on_data(char *p, size_t sz, size_t nm, void *ud) {
    probe *q = ud;
    size_t n = sz * nm;
    if (q->n + n + 1 > q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 8192;
        while (cap < q->n + n + 1) cap *= 2;
        if (cap > (8u << 20)) return 0;
        char *nb = realloc(q->buf, cap);
        if (!nb) return 0;
        q->buf = nb;
        q->cap = cap;
    }
    memcpy(q->buf + q->n, p, n);
    q->n += n;
    q->buf[q->n] = '\0';
    return n;
}

void sl_health_parse_load(const char *text, size_t n, int64_t *running, int64_t *waiting) {
    *running = *waiting = -1;
    const char *p = text, *end = text + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        bool run = (size_t)(le - p) > 24 && !strncmp(p, "shardlm_requests_running", 24) && (p[24] == '{' || p[24] == ' ');
        bool wait = (size_t)(le - p) > 24 && !strncmp(p, "shardlm_requests_waiting", 24) && (p[24] == '{' || p[24] == ' ');
        if (run || wait) {
            const char *sp = le;
            while (sp > p && sp[-1] != ' ') sp--;
            char num[32];
            size_t k = (size_t)(le - sp) < sizeof num - 1 ? (size_t)(le - sp) : sizeof num - 1;
            memcpy(num, sp, k);
            num[k] = '\0';
            char *e;
            double v = strtod(num, &e);
            if (e != num && v >= 0 && v < 1e12) {
                int64_t *dst = run ? running : waiting;
                *dst = (*dst < 0 ? 0 : *dst) + (int64_t)v;
            }
        }
        p = nl ? nl + 1 : end;
    }
}

static void add_probe(sl_health *hh, probe *q, sl_member *e, int what, long timeout_ms, struct curl_slist *auth) {
    static const char *PATHS[] = {"/ready", "/metrics", "/v1/models"};
    memset(q, 0, sizeof *q);
    q->e = e;
    q->what = what;
    q->h = curl_easy_init();
    if (!q->h) {
        q->done = true;
        q->rc = CURLE_OUT_OF_MEMORY;
        return;
    }
    char url[400];
    snprintf(url, sizeof url, "%s%s", e->spec.url, PATHS[what]);
    curl_easy_setopt(q->h, CURLOPT_URL, url);
    curl_easy_setopt(q->h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(q->h, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(q->h, CURLOPT_PRIVATE, q);
    curl_easy_setopt(q->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(q->h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(q->h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    if (hh->r->cfg.engine_ca) curl_easy_setopt(q->h, CURLOPT_CAINFO, hh->r->cfg.engine_ca); /* (https:// engines) */
    if (hh->r->cfg.engine_cert) { /* (engines that require a client certificate) */
        curl_easy_setopt(q->h, CURLOPT_SSLCERT, hh->r->cfg.engine_cert);
        curl_easy_setopt(q->h, CURLOPT_SSLKEY, hh->r->cfg.engine_key);
    }
    if (what == P_MODELS && auth) curl_easy_setopt(q->h, CURLOPT_HTTPHEADER, auth);
    curl_multi_add_handle(hh->multi, q->h);
}

static void admit(sl_router *r, sl_member *e, bool ok, bool refused) {
    if (ok) {
        e->fail_streak = 0;
        e->ok_streak++;
        bool ever = atomic_load(&e->ever_up);
        if (!atomic_load(&e->up) && e->ok_streak >= (ever ? r->cfg.rise : 1)) {
            atomic_store(&e->passive_fails, 0);
            atomic_store(&e->ever_up, true);
            atomic_store(&e->up, true);
            fprintf(stderr, "shardlm route: engine %s (%s) in rotation\n", e->spec.id, e->spec.url);
        }
        return;
    }
    e->ok_streak = 0;
    e->fail_streak++;
    if (refused || e->fail_streak >= r->cfg.fall)
        sl_member_eject(e, refused ? "probe: connection refused" : "probe: /ready failed");
}

static void round_once(sl_health *hh, sl_view *v, uint64_t round) {
    sl_router *r = hh->r;
    long timeout = r->cfg.probe_interval_ms < 2000 ? r->cfg.probe_interval_ms : 2000;
    if (timeout < 200) timeout = 200;
    int n = v->n * 3;
    if (n == 0) return;
    probe *qs = calloc((size_t)n, sizeof *qs);
    if (!qs) return;
    struct curl_slist *auth = NULL;
    if (r->cfg.engine_api_key) {
        char h[300];
        snprintf(h, sizeof h, "Authorization: Bearer %s", r->cfg.engine_api_key);
        auth = curl_slist_append(NULL, h);
    }
    int k = 0;
    for (int i = 0; i < v->n; i++) {
        sl_member *e = v->engines[i];
        /* an engine taken out (by the request path too) earns its way back from zero */
        bool up = atomic_load(&e->up);
        if (e->probe_saw_up && !up) e->ok_streak = 0;
        e->probe_saw_up = up;
        add_probe(hh, &qs[k++], e, P_READY, timeout, auth);
        add_probe(hh, &qs[k++], e, P_METRICS, timeout, auth);
        pthread_mutex_lock(&e->mu);
        bool need_models = !e->models_json || round % 30 == 0;
        pthread_mutex_unlock(&e->mu);
        if (need_models) add_probe(hh, &qs[k++], e, P_MODELS, timeout, auth);
    }
    int running = 1;
    while (running) {
        if (curl_multi_perform(hh->multi, &running) != CURLM_OK) break;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(hh->multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            probe *q = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&q);
            if (!q) continue;
            q->rc = msg->data.result;
            curl_easy_getinfo(q->h, CURLINFO_RESPONSE_CODE, &q->code);
            q->done = true;
        }
        if (!running) break;
        curl_multi_poll(hh->multi, NULL, 0, 100, NULL);
        pthread_mutex_lock(&hh->mu);
        bool stop = hh->stop;
        pthread_mutex_unlock(&hh->mu);
        if (stop) break;
    }
    for (int i = 0; i < k; i++) {
        probe *q = &qs[i];
        sl_member *e = q->e;
        bool ok = q->done && q->rc == CURLE_OK && q->code == 200;
        switch (q->what) {
        case P_READY:
            if (q->done) admit(r, e, ok, q->rc == CURLE_COULDNT_CONNECT);
            break;
        case P_METRICS: {
            int64_t run = -1, wait = -1;
            if (ok) sl_health_parse_load(q->buf ? q->buf : "", q->n, &run, &wait);
            atomic_store(&e->running, run);
            atomic_store(&e->waiting, wait);
            break;
        }
        case P_MODELS:
            if (ok) {
                json_t *o = json_loadb(q->buf ? q->buf : "", q->n, 0, NULL);
                json_t *data = json_object_get(o, "data");
                char *s = json_is_array(data) ? json_dumps(data, JSON_COMPACT) : NULL;
                if (s) { /* (the ids' hashes for placement: the count last, so a reader sees whole entries) */
                    int nm = 0;
                    size_t mi;
                    json_t *m;
                    atomic_store(&e->n_probed, 0);
                    json_array_foreach(data, mi, m) {
                        const json_t *id = json_object_get(m, "id");
                        if (json_is_string(id) && nm < SL_MEMBER_MAX_MODELS)
                            atomic_store(&e->probed[nm++], sl_member_model_hash(json_string_value(id), json_string_length(id)));
                    }
                    atomic_store(&e->n_probed, nm);
                }
                json_decref(o);
                if (s) {
                    pthread_mutex_lock(&e->mu);
                    free(e->models_json);
                    e->models_json = s;
                    pthread_mutex_unlock(&e->mu);
                }
            }
            break;
        }
        if (q->h) {
            curl_multi_remove_handle(hh->multi, q->h);
            curl_easy_cleanup(q->h);
        }
        free(q->buf);
    }
    curl_slist_free_all(auth);
    free(qs);
}

static void *health_main(void *arg) {
    sl_health *hh = arg;
    sl_view *v = NULL;
    uint64_t round = 0;
    for (;;) {
        v = sl_members_view(hh->r->members, v);
        round_once(hh, v, round++);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long ms = hh->r->cfg.probe_interval_ms;
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&hh->mu);
        /* wait for the next round; a membership change (seen within 50 ms) or a kick starts it early */
        while (!hh->stop && !hh->kicked && sl_members_gen(hh->r->members) == v->gen) {
            struct timespec now, slice;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec > ts.tv_sec || (now.tv_sec == ts.tv_sec && now.tv_nsec >= ts.tv_nsec)) break;
            slice = now;
            slice.tv_nsec += 50000000L;
            if (slice.tv_nsec >= 1000000000L) {
                slice.tv_sec++;
                slice.tv_nsec -= 1000000000L;
            }
            if (slice.tv_sec > ts.tv_sec || (slice.tv_sec == ts.tv_sec && slice.tv_nsec > ts.tv_nsec)) slice = ts;
            pthread_cond_timedwait(&hh->cv, &hh->mu, &slice);
        }
        bool stop = hh->stop;
        hh->kicked = false;
        pthread_mutex_unlock(&hh->mu);
        if (stop) break;
    }
    sl_view_release(v);
    return NULL;
}

sl_status sl_health_start(sl_router *r, sl_health **out) {
    *out = NULL;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sl_health *hh = sl_calloc(1, sizeof *hh);
    if (!hh) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    hh->r = r;
    hh->multi = curl_multi_init();
    pthread_mutex_init(&hh->mu, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&hh->cv, &a);
    pthread_condattr_destroy(&a);
    if (!hh->multi || pthread_create(&hh->th, NULL, health_main, hh) != 0) {
        if (hh->multi) curl_multi_cleanup(hh->multi);
        pthread_mutex_destroy(&hh->mu);
        pthread_cond_destroy(&hh->cv);
        sl_free(hh);
        return SL_FAIL(SL_ERR_IO, "cannot start the probe thread");
    }
    *out = hh;
    return SL_OK;
}

void sl_health_kick(sl_health *hh) {
    if (!hh) return;
    pthread_mutex_lock(&hh->mu);
    hh->kicked = true;
    pthread_cond_broadcast(&hh->cv);
    pthread_mutex_unlock(&hh->mu);
}

void sl_health_stop(sl_health *hh) {
    if (!hh) return;
    pthread_mutex_lock(&hh->mu);
    hh->stop = true;
    pthread_cond_broadcast(&hh->cv);
    pthread_mutex_unlock(&hh->mu);
    pthread_join(hh->th, NULL);
    curl_multi_cleanup(hh->multi);
    pthread_mutex_destroy(&hh->mu);
    pthread_cond_destroy(&hh->cv);
    sl_free(hh);
}

/*
 * etcd.c — etcd v3 JSON gateway client, engine registration, router watch
 * (see etcd.h).
 *
 * Every call runs one libcurl transfer through a multi handle polled in
 * 200 ms slices, so a stop request ends it promptly and no call waits past
 * its timeout. The gateway gives 64-bit integers as JSON strings.
 */
#include "router/etcd.h"

#include "core/alloc.h"
#include "core/status.h"
#include "core/strbuf.h"
#include "server/addr.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CALL_TIMEOUT_MS 3000
#define WATCH_MAX_MS 60000
#define RETRY_MS 1000

/* ---- base64 ----------------------------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t sl_b64_encode(const void *in, size_t n, char *out) {
    const unsigned char *s = in;
    size_t k = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) | (i + 2 < n ? s[i + 2] : 0);
        out[k++] = B64[v >> 18 & 63];
        out[k++] = B64[v >> 12 & 63];
        out[k++] = i + 1 < n ? B64[v >> 6 & 63] : '=';
        out[k++] = i + 2 < n ? B64[v & 63] : '=';
    }
    out[k] = '\0';
    return k;
}

long sl_b64_decode(const char *in, size_t n, unsigned char *out) {
    if (n % 4) return -1;
    long k = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            char c = in[i + j];
            const char *p = c ? strchr(B64, c) : NULL;
            if (c == '=' && i + 4 == n && j >= 2) {
                pad++;
                v <<= 6;
                continue;
            }
            if (!p || pad) return -1;
            v = v << 6 | (uint32_t)(p - B64);
        }
        out[k++] = (unsigned char)(v >> 16);
        if (pad < 2) out[k++] = (unsigned char)(v >> 8);
        if (pad < 1) out[k++] = (unsigned char)v;
    }
    out[k] = '\0';
    return k;
}

/* ---- HTTP calls ------------------------------------------------------------------- */

typedef struct call {
    char *buf;
    size_t n, cap;
    bool too_big;
    /* streaming (watch): each complete line goes to on_line */
    bool (*on_line)(void *ctx, char *line, size_t n);
    void *ctx;
    bool stop_stream;
} call;

static size_t on_data(char *p, size_t sz, size_t nm, void *ud) {
    call *c = ud;
    size_t n = sz * nm;
    if (c->n + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4096;
        while (cap < c->n + n + 1) cap *= 2;
        if (cap > (64u << 20)) {
            c->too_big = true;
            return 0;
        }
        char *nb = realloc(c->buf, cap);
        if (!nb) return 0;
        c->buf = nb;
        c->cap = cap;
    }
    memcpy(c->buf + c->n, p, n);
    c->n += n;
    c->buf[c->n] = '\0';
    if (c->on_line) {
        size_t start = 0;
        for (size_t i = 0; i < c->n; i++) {
            if (c->buf[i] != '\n') continue;
            c->buf[i] = '\0';
            if (i > start && !c->on_line(c->ctx, c->buf + start, i - start)) c->stop_stream = true;
            start = i + 1;
        }
        memmove(c->buf, c->buf + start, c->n - start);
        c->n -= start;
        c->buf[c->n] = '\0';
        if (c->stop_stream) return 0;
    }
    return n;
}

/* TLS to an https:// etcd (sl_etcd_tls): set once at start, read by every call. */
static struct {
    const char *ca, *cert, *key;
} tls;

void sl_etcd_tls(const char *ca, const char *cert, const char *key) {
    tls.ca = ca;
    tls.cert = cert;
    tls.key = key;
}

/* etcd's address: http:// or https:// (then TLS as sl_etcd_tls set it). */
static bool etcd_url_ok(const char *etcd) {
    return etcd && ((!strncmp(etcd, "http://", 7) && etcd[7]) || (!strncmp(etcd, "https://", 8) && etcd[8]));
}

/* POST body to etcd base + path. Returns SL_OK with the response in *out
 * (malloc'd; NULL allowed when the caller streams). */
static sl_status etcd_post(const char *base, const char *path, const char *body, long timeout_ms, atomic_bool *stop,
                           bool (*on_line)(void *, char *, size_t), void *ctx, char **out) {
    if (out) *out = NULL;
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    sl_status st = SL_OK;
    call c = {.on_line = on_line, .ctx = ctx};
    CURL *h = curl_easy_init();
    CURLM *m = curl_multi_init();
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    if (!h || !m || !hdr) {
        st = SL_FAIL(SL_ERR_NOMEM, "etcd: out of memory");
        goto done;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 2000 ? timeout_ms : 2000L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    if (tls.ca) curl_easy_setopt(h, CURLOPT_CAINFO, tls.ca);
    if (tls.cert) { /* (an etcd with --client-cert-auth) */
        curl_easy_setopt(h, CURLOPT_SSLCERT, tls.cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, tls.key);
    }
    curl_multi_add_handle(m, h);
    int running = 1;
    while (running) {
        if (curl_multi_perform(m, &running) != CURLM_OK) break;
        if (!running) break;
        if (stop && atomic_load(stop)) {
            st = SL_FAIL(SL_ERR_CLOSED, "etcd: stopped");
            break;
        }
        curl_multi_poll(m, NULL, 0, 200, NULL);
    }
    if (st == SL_OK) {
        CURLMsg *msg;
        int left;
        CURLcode rc = CURLE_OK;
        while ((msg = curl_multi_info_read(m, &left)))
            if (msg->msg == CURLMSG_DONE) rc = msg->data.result;
        long code = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        if (rc == CURLE_WRITE_ERROR && c.stop_stream) {
            /* the line handler asked to stop */
        } else if (rc == CURLE_OPERATION_TIMEDOUT && on_line) {
            st = SL_ERR_TIMEOUT; /* a watch that ran its course */
        } else if (rc != CURLE_OK) {
            st = SL_FAIL(rc == CURLE_OPERATION_TIMEDOUT ? SL_ERR_TIMEOUT : SL_ERR_IO, "etcd %s: %s", url,
                         curl_easy_strerror(rc));
        } else if (code != 200) {
            st = SL_FAIL(SL_ERR_PROTO, "etcd %s: HTTP %ld: %.200s", url, code, c.buf ? c.buf : "");
        }
    }
    if (st == SL_OK && out) {
        *out = c.buf;
        c.buf = NULL;
    }
done:
    if (m && h) curl_multi_remove_handle(m, h);
    curl_easy_cleanup(h);
    curl_multi_cleanup(m);
    curl_slist_free_all(hdr);
    free(c.buf);
    return st;
}

static json_t *etcd_json(const char *base, const char *path, json_t *req, atomic_bool *stop, sl_status *st) {
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!body) {
        *st = SL_FAIL(SL_ERR_NOMEM, "etcd: out of memory");
        return NULL;
    }
    char *resp = NULL;
    *st = etcd_post(base, path, body, CALL_TIMEOUT_MS, stop, NULL, NULL, &resp);
    free(body);
    if (*st) return NULL;
    json_error_t je;
    json_t *o = json_loads(resp, 0, &je);
    free(resp);
    if (!json_is_object(o)) {
        json_decref(o);
        *st = SL_FAIL(SL_ERR_PROTO, "etcd %s: the answer is not a JSON object", path);
        return NULL;
    }
    return o;
}

static json_t *b64_string(const char *s, size_t n) {
    char *e = malloc(4 * (n / 3 + 1) + 1);
    if (!e) return NULL;
    sl_b64_encode(s, n, e);
    json_t *j = json_string(e);
    free(e);
    return j;
}

/* A base64 JSON string decoded (malloc'd, NUL-terminated), or NULL. */
static char *b64_value(json_t *j, size_t *n) {
    if (!json_is_string(j)) return NULL;
    size_t l = json_string_length(j);
    unsigned char *d = malloc(l / 4 * 3 + 4);
    if (!d) return NULL;
    long k = sl_b64_decode(json_string_value(j), l, d);
    if (k < 0) {
        free(d);
        return NULL;
    }
    if (n) *n = (size_t)k;
    return (char *)d;
}

static long long json_i64(json_t *j) {
    if (json_is_integer(j)) return json_integer_value(j);
    if (json_is_string(j)) return strtoll(json_string_value(j), NULL, 10);
    return 0;
}

/* range_end for a prefix: the prefix with its last byte incremented. */
static void prefix_end(const char *p, char *out, size_t cap) {
    snprintf(out, cap, "%s", p);
    size_t n = strlen(out);
    out[n - 1]++;
}

static sl_status etcd_put(const char *base, const char *key, const char *val, long long lease, atomic_bool *stop) {
    json_t *req = json_pack("{s:o,s:o}", "key", b64_string(key, strlen(key)), "value", b64_string(val, strlen(val)));
    if (lease) json_object_set_new(req, "lease", json_integer(lease));
    sl_status st;
    json_t *o = etcd_json(base, "/v3/kv/put", req, stop, &st);
    json_decref(o);
    return st;
}

sl_status sl_etcd_put_config(const char *etcd, const char *cluster, const char *json) {
    char key[300];
    snprintf(key, sizeof key, "/shardlm/%s/config", cluster ? cluster : "default");
    return etcd_put(etcd, key, json, 0, NULL);
}

/* ---- sleeping that a stop interrupts ------------------------------------------------ */

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stop;
} waiter;

static void waiter_init(waiter *w) {
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &a);
    pthread_condattr_destroy(&a);
    atomic_init(&w->stop, false);
}

static void waiter_deinit(waiter *w) {
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

/* Sleep ms unless stopped; returns false when stopped. */
static bool nap(waiter *w, long ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (!atomic_load(&w->stop))
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT) break;
    pthread_mutex_unlock(&w->mu);
    return !atomic_load(&w->stop);
}

static void wake_stop(waiter *w) {
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->stop, true);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* ---- engine registration ------------------------------------------------------------ */

struct sl_etcd_reg {
    char base[256];
    char key[400];
    char *value;
    int ttl;
    waiter w;
    pthread_t th;
    long long lease;
    pthread_mutex_t lease_mu;
};

static sl_status grant_and_put(sl_etcd_reg *r) {
    sl_status st;
    json_t *o = etcd_json(r->base, "/v3/lease/grant", json_pack("{s:i}", "TTL", r->ttl), &r->w.stop, &st);
    if (!o) return st;
    long long id = json_i64(json_object_get(o, "ID"));
    json_decref(o);
    if (!id) return SL_FAIL(SL_ERR_PROTO, "etcd: lease grant gave no ID");
    st = etcd_put(r->base, r->key, r->value, id, &r->w.stop);
    if (st) return st;
    pthread_mutex_lock(&r->lease_mu);
    r->lease = id;
    pthread_mutex_unlock(&r->lease_mu);
    fprintf(stderr, "shardlm serve: registered in etcd as %s (lease %lld, TTL %d s)\n", r->key, id, r->ttl);
    return SL_OK;
}

static void *reg_main(void *arg) {
    sl_etcd_reg *r = arg;
    bool warned = false;
    long period = r->ttl * 1000L / 3;
    if (period < 300) period = 300;
    while (!atomic_load(&r->w.stop)) {
        sl_status st;
        if (!r->lease) {
            st = grant_and_put(r);
            if (st) {
                if (!warned && st != SL_ERR_CLOSED)
                    fprintf(stderr, "shardlm serve: etcd registration failed (retrying every second): %s\n",
                            sl_last_error());
                warned = true;
                if (!nap(&r->w, RETRY_MS)) break;
                continue;
            }
            warned = false;
        } else {
            json_t *o = etcd_json(r->base, "/v3/lease/keepalive", json_pack("{s:I}", "ID", (json_int_t)r->lease),
                                  &r->w.stop, &st);
            if (!o) {
                if (!warned && st != SL_ERR_CLOSED)
                    fprintf(stderr, "shardlm serve: etcd keepalive failed (retrying every second): %s\n", sl_last_error());
                warned = true;
                if (!nap(&r->w, RETRY_MS)) break;
                continue;
            }
            warned = false;
            long long ttl = json_i64(json_object_get(json_object_get(o, "result"), "TTL"));
            json_decref(o);
            if (ttl <= 0) { /* the lease expired (etcd was away too long): register again */
                fprintf(stderr, "shardlm serve: etcd lease %lld expired: registering again\n", r->lease);
                pthread_mutex_lock(&r->lease_mu);
                r->lease = 0;
                pthread_mutex_unlock(&r->lease_mu);
                continue;
            }
        }
        if (!nap(&r->w, period)) break;
    }
    return NULL;
}

sl_status sl_etcd_register_start(const sl_etcd_reg_cfg *cfg, sl_etcd_reg **out) {
    *out = NULL;
    if (!etcd_url_ok(cfg->etcd))
        return SL_FAIL(SL_ERR_INVALID, "--etcd '%s': expected http(s)://HOST:PORT", cfg->etcd ? cfg->etcd : "");
    const char *cluster = cfg->cluster ? cfg->cluster : "default";
    char id[160], url[300];
    const char *host = cfg->host && strcmp(cfg->host, "0.0.0.0") != 0 ? cfg->host : "127.0.0.1";
    snprintf(id, sizeof id, "%s", cfg->id ? cfg->id : "");
    if (!cfg->id) snprintf(id, sizeof id, "%s:%d", host, cfg->port);
    if (cfg->url) snprintf(url, sizeof url, "%s", cfg->url);
    else sl_host_url(cfg->host, cfg->port, cfg->tls, true, url, sizeof url); /* (an IPv6 address in brackets) */
    for (const char *p = id; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x21 || *p == '/')
            return SL_FAIL(SL_ERR_INVALID, "--engine-id '%s': use letters, digits and . _ : - only", id);
    if (!id[0]) return SL_FAIL(SL_ERR_INVALID, "--engine-id is empty");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sl_etcd_reg *r = sl_calloc(1, sizeof *r);
    if (!r) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    snprintf(r->base, sizeof r->base, "%s", cfg->etcd);
    size_t bl = strlen(r->base);
    while (bl && r->base[bl - 1] == '/') r->base[--bl] = '\0';
    snprintf(r->key, sizeof r->key, "/shardlm/%s/engines/%s", cluster, id);
    json_t *v = json_pack("{s:s,s:s,s:s,s:i}", "url", url, "model", cfg->model ? cfg->model : "", "version",
                          cfg->version ? cfg->version : "", "capacity", cfg->capacity);
    r->value = v ? json_dumps(v, JSON_COMPACT) : NULL;
    json_decref(v);
    r->ttl = cfg->ttl_s > 0 ? cfg->ttl_s : 10;
    waiter_init(&r->w);
    pthread_mutex_init(&r->lease_mu, NULL);
    if (!r->value || pthread_create(&r->th, NULL, reg_main, r) != 0) {
        free(r->value);
        waiter_deinit(&r->w);
        pthread_mutex_destroy(&r->lease_mu);
        sl_free(r);
        return SL_FAIL(SL_ERR_NOMEM, "cannot start the etcd registration thread");
    }
    *out = r;
    return SL_OK;
}

void sl_etcd_register_stop(sl_etcd_reg *r) {
    if (!r) return;
    wake_stop(&r->w);
    pthread_join(r->th, NULL);
    if (r->lease) { /* revoking deletes the key now, rather than at the end of the TTL */
        sl_status st;
        json_t *o = etcd_json(r->base, "/v3/lease/revoke", json_pack("{s:I}", "ID", (json_int_t)r->lease), NULL, &st);
        json_decref(o);
        if (st) fprintf(stderr, "shardlm serve: etcd lease revoke failed (the key expires with its TTL): %s\n",
                        sl_last_error());
    }
    free(r->value);
    waiter_deinit(&r->w);
    pthread_mutex_destroy(&r->lease_mu);
    sl_free(r);
}

/* ---- router watch ---------------------------------------------------------------------- */

typedef struct entry {
    char key[400];
    sl_member_spec spec;
} entry;

struct sl_etcd_watch {
    char base[256];
    char prefix[300];     /* /shardlm/<cluster>/ */
    sl_members *m;
    waiter w;
    pthread_t th;
    entry *entries;
    int n, cap;
    long long revision;
    bool resync;
    char *last_config; /* config value last applied */
};

bool sl_etcd_engine_parse(const char *id, const char *val, size_t n, sl_member_spec *s) {
    memset(s, 0, sizeof *s);
    json_t *o = json_loadb(val, n, 0, NULL);
    bool ok = false;
    const char *url = json_string_value(json_object_get(o, "url"));
    if (url && strlen(id) > 0 && strlen(id) < sizeof s->id && sl_member_spec_parse(url, s) == SL_OK) {
        snprintf(s->id, sizeof s->id, "%s", id);
        const char *model = json_string_value(json_object_get(o, "model"));
        const char *version = json_string_value(json_object_get(o, "version"));
        snprintf(s->model, sizeof s->model, "%s", model ? model : "");
        snprintf(s->version, sizeof s->version, "%s", version ? version : "");
        /* cut at the buffer's end, possibly inside a character: these go into JSON answers */
        sl_utf8_scrub(s->model);
        sl_utf8_scrub(s->version);
        const long long cap = json_i64(json_object_get(o, "capacity"));
        s->capacity = cap < 0 || cap > INT32_MAX ? 0 : (int)cap;
        ok = true;
        for (const char *p = s->id; *p; p++)
            if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) ok = false;
        if (!sl_utf8_valid(s->id, strlen(s->id))) ok = false; /* an etcd key: any bytes */
    }
    if (!ok) fprintf(stderr, "shardlm route: etcd: engine '%s' has a malformed value (skipped)\n", id);
    json_decref(o);
    return ok;
}

static void apply_kv(sl_etcd_watch *w, const char *key, const char *val, size_t vn, bool del) {
    size_t pl = strlen(w->prefix);
    if (strncmp(key, w->prefix, pl) != 0) return;
    const char *rest = key + pl;
    if (!strcmp(rest, "config")) {
        if (del ? !w->last_config : (w->last_config && strlen(w->last_config) == vn && !memcmp(w->last_config, val, vn)))
            return;
        free(w->last_config);
        w->last_config = del ? NULL : strndup(val, vn);
        char versions[SL_MAX_VERSIONS][64];
        double weights[SL_MAX_VERSIONS];
        int n = 0;
        if (!del && sl_weights_parse(val, vn, versions, weights, &n) != SL_OK) {
            fprintf(stderr, "shardlm route: etcd config ignored: %s\n", sl_last_error());
            return;
        }
        sl_members_set_weights(w->m, versions, weights, n);
        fprintf(stderr, "shardlm route: rollout weights from etcd: %.200s\n", del ? "(none)" : val);
        return;
    }
    if (strncmp(rest, "engines/", 8) != 0) return;
    const char *id = rest + 8;
    int at = -1;
    for (int i = 0; i < w->n && at < 0; i++)
        if (!strcmp(w->entries[i].key, key)) at = i;
    if (del) {
        if (at >= 0) w->entries[at] = w->entries[--w->n];
        return;
    }
    sl_member_spec s;
    if (!sl_etcd_engine_parse(id, val, vn, &s) || strlen(key) >= sizeof w->entries[0].key) return;
    if (at < 0) {
        if (w->n == w->cap) {
            int cap = w->cap ? w->cap * 2 : 16;
            entry *ne = sl_realloc(w->entries, sizeof(entry) * (size_t)cap);
            if (!ne) return;
            w->entries = ne;
            w->cap = cap;
        }
        at = w->n++;
    }
    snprintf(w->entries[at].key, sizeof w->entries[at].key, "%s", key);
    w->entries[at].spec = s;
}

static int cmp_entry(const void *a, const void *b) { return strcmp(((const entry *)a)->key, ((const entry *)b)->key); }

static void publish(sl_etcd_watch *w) {
    qsort(w->entries, (size_t)w->n, sizeof(entry), cmp_entry);
    sl_member_spec *specs = sl_alloc_array((size_t)(w->n ? w->n : 1), sizeof *specs);
    if (!specs) return;
    for (int i = 0; i < w->n; i++) specs[i] = w->entries[i].spec;
    sl_members_set(w->m, 1, specs, w->n);
    sl_free(specs);
}

/* Read the whole prefix; the membership becomes exactly what etcd holds. */
static sl_status full_read(sl_etcd_watch *w) {
    char end[300];
    prefix_end(w->prefix, end, sizeof end);
    sl_status st;
    json_t *o = etcd_json(w->base, "/v3/kv/range",
                          json_pack("{s:o,s:o}", "key", b64_string(w->prefix, strlen(w->prefix)), "range_end",
                                    b64_string(end, strlen(end))),
                          &w->w.stop, &st);
    if (!o) return st;
    w->revision = json_i64(json_object_get(json_object_get(o, "header"), "revision"));
    w->n = 0;
    bool saw_config = false;
    size_t i;
    json_t *kv;
    json_array_foreach(json_object_get(o, "kvs"), i, kv) {
        size_t vn = 0;
        char *k = b64_value(json_object_get(kv, "key"), NULL);
        char *v = b64_value(json_object_get(kv, "value"), &vn);
        if (k && v) {
            apply_kv(w, k, v, vn, false);
            if (!strcmp(k + strlen(w->prefix), "config")) saw_config = true;
        }
        free(k);
        free(v);
    }
    json_decref(o);
    if (!saw_config) {
        /* no config key: no rollout split from etcd (keep any set by flag or /admin when etcd never had one) */
    }
    publish(w);
    return SL_OK;
}

static bool on_watch_line(void *ctx, char *line, size_t n) {
    sl_etcd_watch *w = ctx;
    json_t *o = json_loadb(line, n, 0, NULL);
    json_t *res = json_object_get(o, "result");
    if (!res) {
        json_decref(o);
        w->resync = true;
        return false; /* an error object: read everything again */
    }
    if (json_is_true(json_object_get(res, "canceled")) || json_i64(json_object_get(res, "compact_revision")) > 0) {
        json_decref(o);
        w->resync = true;
        return false;
    }
    bool changed = false;
    size_t i;
    json_t *ev;
    json_array_foreach(json_object_get(res, "events"), i, ev) {
        json_t *kv = json_object_get(ev, "kv");
        const char *type = json_string_value(json_object_get(ev, "type"));
        bool del = type && !strcmp(type, "DELETE");
        size_t vn = 0;
        char *k = b64_value(json_object_get(kv, "key"), NULL);
        char *v = del ? NULL : b64_value(json_object_get(kv, "value"), &vn);
        if (k && (del || v)) {
            apply_kv(w, k, v ? v : "", vn, del);
            changed = true;
        }
        long long rev = json_i64(json_object_get(kv, "mod_revision"));
        if (rev > w->revision) w->revision = rev;
        free(k);
        free(v);
    }
    json_decref(o);
    if (changed) publish(w);
    return !atomic_load(&w->w.stop);
}

static void *watch_main(void *arg) {
    sl_etcd_watch *w = arg;
    bool warned = false;
    while (!atomic_load(&w->w.stop)) {
        sl_status st = full_read(w);
        if (st) {
            if (!warned && st != SL_ERR_CLOSED)
                fprintf(stderr, "shardlm route: etcd unreachable, keeping the last membership (retrying): %s\n",
                        sl_last_error());
            warned = true;
            if (!nap(&w->w, RETRY_MS)) break;
            continue;
        }
        if (warned) fprintf(stderr, "shardlm route: etcd reachable again\n");
        warned = false;
        char end[300];
        prefix_end(w->prefix, end, sizeof end);
        json_t *req = json_pack("{s:{s:o,s:o,s:I}}", "create_request", "key", b64_string(w->prefix, strlen(w->prefix)),
                                "range_end", b64_string(end, strlen(end)), "start_revision",
                                (json_int_t)(w->revision + 1));
        char *body = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        w->resync = false;
        st = body ? etcd_post(w->base, "/v3/watch", body, WATCH_MAX_MS, &w->w.stop, on_watch_line, w, NULL) : SL_ERR_NOMEM;
        free(body);
        if (st != SL_OK && st != SL_ERR_TIMEOUT && st != SL_ERR_CLOSED) {
            fprintf(stderr, "shardlm route: etcd watch ended: %s\n", sl_last_error());
            if (!nap(&w->w, 200)) break;
        }
    }
    return NULL;
}

sl_status sl_etcd_watch_start(const char *etcd, const char *cluster, sl_members *m, sl_etcd_watch **out) {
    *out = NULL;
    if (!etcd_url_ok(etcd)) return SL_FAIL(SL_ERR_INVALID, "--etcd '%s': expected http(s)://HOST:PORT", etcd ? etcd : "");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sl_etcd_watch *w = sl_calloc(1, sizeof *w);
    if (!w) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    snprintf(w->base, sizeof w->base, "%s", etcd);
    size_t bl = strlen(w->base);
    while (bl && w->base[bl - 1] == '/') w->base[--bl] = '\0';
    snprintf(w->prefix, sizeof w->prefix, "/shardlm/%s/", cluster ? cluster : "default");
    w->m = m;
    waiter_init(&w->w);
    if (pthread_create(&w->th, NULL, watch_main, w) != 0) {
        waiter_deinit(&w->w);
        sl_free(w);
        return SL_FAIL(SL_ERR_NOMEM, "cannot start the etcd watch thread");
    }
    *out = w;
    return SL_OK;
}

void sl_etcd_watch_stop(sl_etcd_watch *w) {
    if (!w) return;
    wake_stop(&w->w);
    pthread_join(w->th, NULL);
    waiter_deinit(&w->w);
    sl_free(w->entries);
    free(w->last_config);
    sl_free(w);
}

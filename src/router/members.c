/*
 * members.c — engine records and membership views (see members.h).
 */
#include "members.h"

#include "core/alloc.h"
#include "core/status.h"
#include "router/hash.h"

#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_SOURCES 2

struct sl_members {
    int vnodes;
    pthread_mutex_t mu;
    sl_member_spec *specs[N_SOURCES];
    int n_specs[N_SOURCES];
    int n_weights;
    char weight_version[SL_MAX_VERSIONS][64];
    double weight[SL_MAX_VERSIONS];
    sl_view *view;       /* current, guarded by mu */
    _Atomic uint64_t gen;
};

/* ---- engines ---------------------------------------------------------------- */

void sl_member_retain(sl_member *e) { atomic_fetch_add(&e->refs, 1); }

void sl_member_release(sl_member *e) {
    if (!e || atomic_fetch_sub(&e->refs, 1) != 1) return;
    pthread_mutex_destroy(&e->mu);
    free(e->models_json);
    sl_free(e);
}

int64_t sl_member_load(const sl_member *e) {
    int64_t q = atomic_load(&e->waiting);
    return atomic_load(&e->in_flight) + (q > 0 ? q : 0);
}

uint64_t sl_member_model_hash(const char *name, size_t n) { return sl_hash64(name, n, 0x6d6f64656c6e616dULL); }

bool sl_member_serves(const sl_member *e, uint64_t h) {
    const int n = atomic_load(&e->n_probed);
    for (int i = 0; i < n && i < SL_MEMBER_MAX_MODELS; i++)
        if (atomic_load(&e->probed[i]) == h) return true;
    return false;
}

void sl_member_eject(sl_member *e, const char *why) {
    if (atomic_exchange(&e->up, false)) {
        atomic_fetch_add(&e->n_ejections, 1);
        fprintf(stderr, "shardlm route: engine %s (%s) out of rotation: %s\n", e->spec.id, e->spec.url, why);
    }
}

sl_status sl_member_spec_parse(const char *text, sl_member_spec *out) {
    memset(out, 0, sizeof *out);
    const char *eq = strncmp(text, "http://", 7) != 0 && strncmp(text, "https://", 8) != 0 ? strchr(text, '=') : NULL;
    const char *full = text;
    if (eq) { /* ID=URL: a name of its own keeps the engine's ring points when its address changes */
        size_t il = (size_t)(eq - text);
        if (il == 0 || il >= sizeof out->id)
            return SL_FAIL(SL_ERR_INVALID, "engine '%s': the id before '=' must be 1..%zu characters", full,
                           sizeof out->id - 1);
        for (size_t i = 0; i < il; i++)
            if (text[i] == '"' || text[i] == '\\' || (unsigned char)text[i] < 0x21)
                return SL_FAIL(SL_ERR_INVALID, "engine '%s': the id has a quote, backslash or blank", full);
        text = eq + 1;
    }
    const char *hash = strchr(text, '#');
    size_t ulen = hash ? (size_t)(hash - text) : strlen(text);
    while (ulen > 0 && text[ulen - 1] == '/') ulen--;
    const size_t scheme = !strncmp(text, "https://", 8) ? 8 : !strncmp(text, "http://", 7) ? 7 : 0;
    if (scheme == 0 || ulen <= scheme)
        return SL_FAIL(SL_ERR_INVALID, "engine '%s': expected [ID=]http(s)://HOST:PORT[#VERSION]", full);
    if (ulen >= sizeof out->url) return SL_FAIL(SL_ERR_INVALID, "engine URL '%.40s...' is too long", text);
    memcpy(out->url, text, ulen);
    if (eq) memcpy(out->id, full, (size_t)(eq - full));
    else memcpy(out->id, text, ulen < sizeof out->id ? ulen : sizeof out->id - 1);
    if (hash) {
        if (strlen(hash + 1) == 0 || strlen(hash + 1) >= sizeof out->version)
            return SL_FAIL(SL_ERR_INVALID, "engine '%s': the version after '#' must be 1..%zu characters", text,
                           sizeof out->version - 1);
        snprintf(out->version, sizeof out->version, "%s", hash + 1);
    }
    return SL_OK;
}

/* Split http(s)://host:port into host and port and resolve it. */
static sl_status engine_create(const sl_member_spec *spec, sl_member **out) {
    *out = NULL;
    const bool tls = !strncmp(spec->url, "https://", 8);
    const char *h = spec->url + (tls ? 8 : 7);
    const char *slash = strchr(h, '/');
    size_t hl = slash ? (size_t)(slash - h) : strlen(h);
    char host[256], port[16] = "80";
    if (tls) snprintf(port, sizeof port, "443");
    if (hl == 0 || hl >= sizeof host) return SL_FAIL(SL_ERR_INVALID, "engine '%s': bad host", spec->url);
    if (slash && strcmp(slash, "/") != 0)
        return SL_FAIL(SL_ERR_INVALID, "engine '%s': a path is not supported (give http://HOST:PORT)", spec->url);
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *colon = strrchr(host, ':');
    if (colon && !strchr(colon, ']')) {
        snprintf(port, sizeof port, "%s", colon + 1);
        *colon = '\0';
        char *end;
        long p = strtol(port, &end, 10);
        if (*end || p < 1 || p > 65535) return SL_FAIL(SL_ERR_INVALID, "engine '%s': bad port '%s'", spec->url, port);
    }
    char *hn = host;
    if (hn[0] == '[') { /* [v6] */
        hn++;
        char *rb = strchr(hn, ']');
        if (rb) *rb = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(hn, port, &hints, &ai);
    if (rc || !ai) return SL_FAIL(SL_ERR_IO, "engine '%s': cannot resolve '%s': %s", spec->url, hn, gai_strerror(rc));
    sl_member *e = sl_calloc(1, sizeof *e);
    if (!e) {
        freeaddrinfo(ai);
        return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    }
    atomic_init(&e->refs, 1);
    e->spec = *spec;
    snprintf(e->hostport, sizeof e->hostport, "%s", h);
    if (slash) e->hostport[hl] = '\0';
    e->tls = tls;
    snprintf(e->tls_name, sizeof e->tls_name, "%s", hn);
    memcpy(&e->addr, ai->ai_addr, ai->ai_addrlen);
    e->addr_len = ai->ai_addrlen;
    freeaddrinfo(ai);
    atomic_init(&e->running, -1);
    atomic_init(&e->waiting, -1);
    pthread_mutex_init(&e->mu, NULL);
    *out = e;
    return SL_OK;
}

/* ---- views ---------------------------------------------------------------------- */

static void ringset_free(sl_ring_set *rs) {
    sl_ring_destroy(rs->ring);
    sl_free(rs->engine_of);
    rs->ring = NULL;
    rs->engine_of = NULL;
}

void sl_view_release(sl_view *v) {
    if (!v || atomic_fetch_sub(&v->refs, 1) != 1) return;
    for (int i = 0; i < v->n; i++) sl_member_release(v->engines[i]);
    sl_free(v->engines);
    ringset_free(&v->all);
    for (int i = 0; i < v->n_versions; i++) ringset_free(&v->versions[i]);
    sl_free(v);
}

static sl_status ringset_build(sl_view *v, const char *version, int vnodes, sl_ring_set *rs) {
    const char **ids = sl_calloc((size_t)(v->n ? v->n : 1), sizeof(char *));
    rs->engine_of = sl_calloc((size_t)(v->n ? v->n : 1), sizeof(int));
    if (!ids || !rs->engine_of) {
        sl_free(ids);
        return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    }
    snprintf(rs->version, sizeof rs->version, "%s", version ? version : "");
    int k = 0;
    for (int i = 0; i < v->n; i++) {
        if (version && strcmp(v->engines[i]->spec.version, version) != 0) continue;
        ids[k] = v->engines[i]->spec.id;
        rs->engine_of[k++] = i;
    }
    sl_status st = sl_ring_create(ids, k, vnodes, &rs->ring);
    sl_free(ids);
    return st;
}

static int cmp_str64(const void *a, const void *b) { return strcmp(a, b); }

/* Build and publish a view from the specs (mu held). */
static sl_status rebuild(sl_members *m) {
    sl_status st = SL_OK;
    sl_view *old = m->view;
    sl_view *v = sl_calloc(1, sizeof *v);
    int total = m->n_specs[0] + m->n_specs[1];
    if (!v || !(v->engines = sl_calloc((size_t)(total ? total : 1), sizeof(sl_member *)))) {
        sl_free(v);
        return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    }
    atomic_init(&v->refs, 1);
    for (int s = 0; s < N_SOURCES; s++) {
        for (int i = 0; i < m->n_specs[s]; i++) {
            const sl_member_spec *sp = &m->specs[s][i];
            bool dup = false;
            for (int j = 0; j < v->n && !dup; j++) dup = !strcmp(v->engines[j]->spec.id, sp->id);
            if (dup) continue;
            sl_member *e = NULL;
            for (int j = 0; old && j < old->n && !e; j++)
                if (!memcmp(&old->engines[j]->spec, sp, sizeof *sp)) e = old->engines[j];
            if (e) {
                sl_member_retain(e);
            } else if (engine_create(sp, &e) != SL_OK) {
                fprintf(stderr, "shardlm route: %s (skipped)\n", sl_last_error());
                continue;
            }
            v->engines[v->n++] = e;
        }
    }
    /* versions present, sorted */
    char names[SL_MAX_VERSIONS][64];
    int nv = 0;
    for (int i = 0; i < v->n; i++) {
        bool seen = false;
        for (int k = 0; k < nv && !seen; k++) seen = !strcmp(names[k], v->engines[i]->spec.version);
        if (!seen && nv < SL_MAX_VERSIONS) snprintf(names[nv++], 64, "%s", v->engines[i]->spec.version);
    }
    qsort(names, (size_t)nv, 64, cmp_str64);
    if ((st = ringset_build(v, NULL, m->vnodes, &v->all)) != SL_OK) goto fail;
    for (int k = 0; k < nv; k++) {
        if ((st = ringset_build(v, names[k], m->vnodes, &v->versions[k])) != SL_OK) goto fail;
        v->n_versions = k + 1;
    }
    v->n_weights = m->n_weights;
    memcpy(v->weight_version, m->weight_version, sizeof v->weight_version);
    memcpy(v->weight, m->weight, sizeof v->weight);
    v->gen = atomic_load(&m->gen) + 1;
    m->view = v;
    atomic_store(&m->gen, v->gen);
    sl_view_release(old);
    return SL_OK;
fail:
    sl_view_release(v);
    return st;
}

sl_status sl_members_create(int vnodes, sl_members **out) {
    *out = NULL;
    sl_members *m = sl_calloc(1, sizeof *m);
    if (!m) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    m->vnodes = vnodes;
    pthread_mutex_init(&m->mu, NULL);
    sl_status st = rebuild(m);
    if (st) {
        sl_members_destroy(m);
        return st;
    }
    *out = m;
    return SL_OK;
}

void sl_members_destroy(sl_members *m) {
    if (!m) return;
    sl_view_release(m->view);
    for (int s = 0; s < N_SOURCES; s++) sl_free(m->specs[s]);
    pthread_mutex_destroy(&m->mu);
    sl_free(m);
}

sl_status sl_members_set(sl_members *m, int source, const sl_member_spec *specs, int n) {
    SL_ASSERT(source >= 0 && source < N_SOURCES);
    sl_member_spec *copy = sl_alloc_array((size_t)(n ? n : 1), sizeof *copy);
    if (!copy) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    if (n) memcpy(copy, specs, sizeof *copy * (size_t)n);
    pthread_mutex_lock(&m->mu);
    bool same = m->n_specs[source] == n && (n == 0 || !memcmp(m->specs[source], copy, sizeof *copy * (size_t)n));
    sl_status st = SL_OK;
    if (!same) {
        sl_free(m->specs[source]);
        m->specs[source] = copy;
        m->n_specs[source] = n;
        copy = NULL;
        st = rebuild(m);
    }
    pthread_mutex_unlock(&m->mu);
    sl_free(copy);
    return st;
}

sl_status sl_members_set_weights(sl_members *m, char (*versions)[64], const double *weights, int n) {
    if (n < 0 || n > SL_MAX_VERSIONS)
        return SL_FAIL(SL_ERR_INVALID, "rollout: %d versions (at most %d)", n, SL_MAX_VERSIONS);
    pthread_mutex_lock(&m->mu);
    m->n_weights = n;
    for (int i = 0; i < n; i++) {
        snprintf(m->weight_version[i], 64, "%s", versions[i]);
        m->weight[i] = weights[i];
    }
    /* sorted by version so every router walks them in the same order */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(m->weight_version[j - 1], m->weight_version[j]) > 0; j--) {
            char t[64];
            memcpy(t, m->weight_version[j], 64);
            memcpy(m->weight_version[j], m->weight_version[j - 1], 64);
            memcpy(m->weight_version[j - 1], t, 64);
            double w = m->weight[j];
            m->weight[j] = m->weight[j - 1];
            m->weight[j - 1] = w;
        }
    sl_status st = rebuild(m);
    pthread_mutex_unlock(&m->mu);
    return st;
}

sl_status sl_weights_parse(const char *text, size_t len, char (*versions)[64], double *weights, int *n) {
    *n = 0;
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    sl_status st = SL_OK;
    if (!o || !json_is_object(o)) {
        st = SL_FAIL(SL_ERR_INVALID, "rollout weights must be a JSON object like {\"v1\": 90, \"v2\": 10}%s%s",
                     o ? "" : ": ", o ? "" : je.text);
        goto fail;
    }
    json_t *w = json_object_get(o, "weights");
    if (!w) w = json_object_get(o, "rollout");
    if (!w) w = o;
    if (!json_is_object(w)) {
        st = SL_FAIL(SL_ERR_INVALID, "rollout: 'weights' must be an object of version: weight");
        goto fail;
    }
    const char *k;
    json_t *val;
    json_object_foreach(w, k, val) {
        if (*n == SL_MAX_VERSIONS) {
            st = SL_FAIL(SL_ERR_INVALID, "rollout: more than %d versions", SL_MAX_VERSIONS);
            goto fail;
        }
        if (!json_is_number(val) || json_number_value(val) < 0 || json_number_value(val) > 1e9) {
            st = SL_FAIL(SL_ERR_INVALID, "rollout: the weight of '%s' must be a number >= 0", k);
            goto fail;
        }
        if (strlen(k) == 0 || strlen(k) >= 64) {
            st = SL_FAIL(SL_ERR_INVALID, "rollout: version names must be 1..63 characters");
            goto fail;
        }
        snprintf(versions[*n], 64, "%s", k);
        weights[(*n)++] = json_number_value(val);
    }
fail:
    json_decref(o);
    if (st) *n = 0;
    return st;
}

uint64_t sl_members_gen(const sl_members *m) { return atomic_load(&m->gen); }

sl_view *sl_members_view(sl_members *m, sl_view *held) {
    if (held && held->gen == atomic_load(&m->gen)) return held;
    pthread_mutex_lock(&m->mu);
    sl_view *v = m->view;
    atomic_fetch_add(&v->refs, 1);
    pthread_mutex_unlock(&m->mu);
    sl_view_release(held);
    return v;
}

/*
 * placement.c — rollout split and placement policies (see placement.h).
 */
#include "placement.h"

#include "router/hash.h"
#include "server/api.h"

#include <string.h>

#define SEED_ROLLOUT 0x726f6c6c6f75742eULL

static const char *REASONS[SL_REASON_COUNT] = {"session", "prefix", "overflow", "least_load", "round_robin", "failover"};

const char *sl_reason_str(sl_reason r) { return r >= 0 && r < SL_REASON_COUNT ? REASONS[r] : "?"; }

bool sl_policy_parse(const char *s, sl_policy *out) {
    if (!strcmp(s, "session")) *out = SL_POLICY_SESSION;
    else if (!strcmp(s, "prefix")) *out = SL_POLICY_PREFIX;
    else if (!strcmp(s, "least-load")) *out = SL_POLICY_LEAST_LOAD;
    else if (!strcmp(s, "round-robin")) *out = SL_POLICY_ROUND_ROBIN;
    else return false;
    return true;
}

/* May engine e take this request at all (rotation, model, not tried yet)? */
static bool eligible(const sl_member *e, const sl_place_req *q) {
    if (!atomic_load(&e->up)) return false;
    if (q->model && q->model[0] && e->spec.model[0] && !sl_api_name_in(e->spec.model, q->model)) return false; /* (its names) */
    if (q->by_probe && !e->spec.model[0] && !sl_member_serves(e, q->model_hash)) return false; /* (what it lists) */
    for (int i = 0; i < q->n_exclude; i++)
        if (q->exclude[i] == e) return false;
    return true;
}

typedef struct actx {
    const sl_view *v;
    const sl_ring_set *rs;
    const sl_place_req *q;
    int64_t cap; /* 0 = no load bound */
} actx;

static bool admit(void *ctx, int m) {
    const actx *a = ctx;
    const sl_member *e = a->v->engines[a->rs->engine_of[m]];
    return eligible(e, a->q) && (a->cap == 0 || sl_member_load(e) < a->cap);
}

/* Eligible engines of a ring set: count and total load. */
static int survey(const sl_view *v, const sl_ring_set *rs, const sl_place_req *q, int64_t *total) {
    int n = 0;
    *total = 0;
    for (int m = 0; m < sl_ring_members(rs->ring); m++) {
        const sl_member *e = v->engines[rs->engine_of[m]];
        if (!eligible(e, q)) continue;
        n++;
        *total += sl_member_load(e);
    }
    return n;
}

static const sl_ring_set *version_set(const sl_view *v, const char *version) {
    for (int i = 0; i < v->n_versions; i++)
        if (!strcmp(v->versions[i].version, version)) return &v->versions[i];
    return NULL;
}

/* Draw a version by weight among those with an eligible engine. */
static const sl_ring_set *rollout(const sl_view *v, const sl_place_req *q) {
    if (v->n_weights == 0) return NULL;
    const sl_ring_set *sets[SL_MAX_VERSIONS];
    double w[SL_MAX_VERSIONS], sum = 0;
    int n = 0;
    for (int i = 0; i < v->n_weights; i++) {
        const sl_ring_set *rs = version_set(v, v->weight_version[i]);
        int64_t t;
        if (!rs || v->weight[i] <= 0 || survey(v, rs, q, &t) == 0) continue;
        sets[n] = rs;
        w[n++] = v->weight[i];
        sum += v->weight[i];
    }
    if (n == 0) return NULL;
    uint64_t key = q->has_session ? q->session : q->has_prefix ? q->prefix : sl_mix64(q->ticket);
    double u = (double)(sl_mix64(key ^ SEED_ROLLOUT) >> 11) * 0x1.0p-53 * sum;
    for (int i = 0; i < n; i++) {
        if (u < w[i]) return sets[i];
        u -= w[i];
    }
    return sets[n - 1];
}

const char *sl_place_version(const sl_view *v, const sl_place_req *q) {
    const sl_ring_set *rs = rollout(v, q);
    return rs ? rs->version : NULL;
}

static sl_member *hashed(const sl_view *v, const sl_ring_set *rs, const sl_place_req *q, uint64_t key, double factor,
                         sl_reason base, sl_reason *why) {
    int64_t total;
    int n = survey(v, rs, q, &total);
    if (n == 0) return NULL;
    actx a = {v, rs, q, 0};
    int m = sl_ring_pick(rs->ring, key, admit, &a);
    if (m < 0) return NULL;
    sl_member *e = v->engines[rs->engine_of[m]];
    a.cap = sl_ring_load_cap(total, n, factor);
    if (sl_member_load(e) < a.cap) {
        *why = base;
        return e;
    }
    m = sl_ring_pick(rs->ring, key, admit, &a);
    if (m < 0) { /* cannot happen: some engine is under the cap; keep the hashed one */
        *why = base;
        return e;
    }
    *why = SL_REASON_OVERFLOW;
    return v->engines[rs->engine_of[m]];
}

static sl_member *least_load(const sl_view *v, const sl_ring_set *rs, const sl_place_req *q) {
    int n = sl_ring_members(rs->ring);
    sl_member *best = NULL;
    int64_t best_load = 0;
    for (int k = 0; k < n; k++) {
        int m = (int)((q->ticket + (uint64_t)k) % (uint64_t)n); /* rotate the start: ties go round */
        sl_member *e = v->engines[rs->engine_of[m]];
        if (!eligible(e, q)) continue;
        int64_t l = sl_member_load(e);
        if (!best || l < best_load) {
            best = e;
            best_load = l;
        }
    }
    return best;
}

static sl_member *round_robin(const sl_view *v, const sl_ring_set *rs, const sl_place_req *q) {
    int n = sl_ring_members(rs->ring);
    for (int k = 0; k < n; k++) {
        int m = (int)((q->ticket + (uint64_t)k) % (uint64_t)n);
        sl_member *e = v->engines[rs->engine_of[m]];
        if (eligible(e, q)) return e;
    }
    return NULL;
}

static sl_member *place_in(const sl_view *v, const sl_ring_set *rs, sl_policy policy, double factor,
                           const sl_place_req *q, sl_reason *why) {
    if (policy == SL_POLICY_SESSION && q->has_session)
        return hashed(v, rs, q, q->session, factor, SL_REASON_SESSION, why);
    if ((policy == SL_POLICY_SESSION || policy == SL_POLICY_PREFIX) && q->has_prefix)
        return hashed(v, rs, q, q->prefix, factor, SL_REASON_PREFIX, why);
    if (policy == SL_POLICY_ROUND_ROBIN) {
        *why = SL_REASON_ROUND_ROBIN;
        return round_robin(v, rs, q);
    }
    *why = SL_REASON_LEAST_LOAD;
    return least_load(v, rs, q);
}

sl_member *sl_place(const sl_view *v, sl_policy policy, double factor, const sl_place_req *q_in, sl_reason *why) {
    sl_place_req qq = *q_in;
    const sl_place_req *q = &qq;
    if (qq.model && qq.model[0]) { /* (a model no engine was seen to serve: placed as before, its engine says 404) */
        qq.model_hash = sl_member_model_hash(qq.model, strlen(qq.model));
        for (int i = 0; i < v->n && !qq.by_probe; i++)
            qq.by_probe = !v->engines[i]->spec.model[0] && atomic_load(&v->engines[i]->up) &&
                          sl_member_serves(v->engines[i], qq.model_hash);
    }
    *why = SL_REASON_LEAST_LOAD;
    const sl_ring_set *rs = rollout(v, q);
    sl_member *e = rs ? place_in(v, rs, policy, factor, q, why) : NULL;
    if (!e) e = place_in(v, &v->all, policy, factor, q, why);
    if (e && q->n_exclude > 0) *why = SL_REASON_FAILOVER;
    return e;
}

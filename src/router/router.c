/*
 * router.c — `shardlm route` assembled: membership, probes, etcd watch, I/O
 * threads (see router.h).
 */
#include "router/router.h"
#include "server/responses.h"

#include "core/alloc.h"
#include "core/status.h"
#include "router/background.h"
#include "router/etcd.h"
#include "router/health.h"
#include "router/proxy.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

sl_status sl_router_start(const sl_router_cfg *cfg, sl_router **out) {
    *out = NULL;
    sl_status st = SL_OK;
    if (cfg->threads < 1 || cfg->threads > 256) return SL_FAIL(SL_ERR_INVALID, "--threads %d: 1..256", cfg->threads);
    if (cfg->retries < 0 || cfg->retries > 15) return SL_FAIL(SL_ERR_INVALID, "--retries %d: 0..15", cfg->retries);
    if (cfg->load_factor < 1.0) return SL_FAIL(SL_ERR_INVALID, "--load-factor %g: must be at least 1", cfg->load_factor);
    if (cfg->n_engines == 0 && !cfg->etcd) return SL_FAIL(SL_ERR_INVALID, "give --engine URL (one or more) or --etcd URL");
    sl_router *r = sl_calloc(1, sizeof *r);
    if (!r) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    r->cfg = *cfg;
    sl_member_spec *specs = NULL;
    if ((st = sl_api_keys_load(&r->keys, cfg->api_key, cfg->api_key_file)) != SL_OK) goto fail;
    if ((st = sl_members_create(cfg->vnodes, &r->members)) != SL_OK) goto fail;
    if (cfg->n_engines) {
        specs = sl_calloc((size_t)cfg->n_engines, sizeof *specs);
        if (!specs) {
            st = SL_FAIL(SL_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (int i = 0; i < cfg->n_engines; i++)
            if ((st = sl_member_spec_parse(cfg->engines[i], &specs[i])) != SL_OK) goto fail;
        if ((st = sl_members_set(r->members, 0, specs, cfg->n_engines)) != SL_OK) goto fail;
    }
    if (cfg->rollout) {
        char versions[SL_MAX_VERSIONS][64];
        double weights[SL_MAX_VERSIONS];
        int n;
        if ((st = sl_weights_parse(cfg->rollout, strlen(cfg->rollout), versions, weights, &n)) != SL_OK ||
            (st = sl_members_set_weights(r->members, versions, weights, n)) != SL_OK) {
            sl_err_prefix(st, "--rollout");
            goto fail;
        }
    }
    if (cfg->responses_store > 0 &&
        !(r->store = sl_resp_store_new(cfg->responses_store, (size_t)(cfg->responses_store_mib > 0 ? cfg->responses_store_mib : 64) << 20))) {
        st = SL_FAIL(SL_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (r->store && (st = sl_bg_create(r, &r->bg)) != SL_OK) goto fail;
    if ((st = sl_health_start(r, &r->health)) != SL_OK) goto fail;
    if (cfg->etcd && (st = sl_etcd_watch_start(cfg->etcd, cfg->cluster, r->members, &r->watch)) != SL_OK) goto fail;
    if ((st = sl_proxy_start(r, &r->proxy)) != SL_OK) goto fail;
    sl_free(specs);
    *out = r;
    return SL_OK;
fail:
    sl_free(specs);
    sl_router_stop(r);
    return st;
}

int sl_router_port(const sl_router *r) { return sl_proxy_port(r->proxy); }
void sl_router_drain(sl_router *r) { atomic_store(&r->draining, true); }
int64_t sl_router_in_flight(const sl_router *r) { return atomic_load(&r->metrics.in_flight); }

bool sl_router_ready(sl_router *r) {
    if (atomic_load(&r->draining)) return false;
    sl_view *v = sl_members_view(r->members, NULL);
    bool any = false;
    for (int i = 0; i < v->n && !any; i++) any = atomic_load(&v->engines[i]->up);
    sl_view_release(v);
    return any;
}

void sl_router_stop(sl_router *r) {
    if (!r) return;
    sl_bg_destroy(r->bg); /* (its jobs talk to the proxy: cancelled and ended first) */
    sl_proxy_stop(r->proxy);
    sl_etcd_watch_stop(r->watch);
    sl_health_stop(r->health);
    sl_members_destroy(r->members);
    sl_resp_store_free(r->store);
    sl_api_keys_free(&r->keys);
    sl_free(r);
}

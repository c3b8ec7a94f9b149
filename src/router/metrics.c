/*
 * metrics.c — router metrics in the Prometheus text format (see metrics.h).
 */
#include "router/metrics.h"

#include "core/strbuf.h"
#include "server/metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int STATUSES[SL_RM_STATUS] = {200, 400, 401, 403, 404, 405, 408, 413, 431, 500, 502, 503, 504};
/* upper bounds of the added-latency buckets, nanoseconds */
static const int64_t BOUNDS_NS[SL_RM_BUCKETS] = {10000,   25000,   50000,    100000,   200000,   300000,   500000,
                                                 1000000, 2000000, 5000000, 10000000, 25000000, 50000000, 100000000};

void sl_rmetrics_status(sl_rmetrics *m, int status) {
    for (int i = 0; i < SL_RM_STATUS; i++)
        if (STATUSES[i] == status) {
            atomic_fetch_add(&m->by_status[i], 1);
            return;
        }
    atomic_fetch_add(&m->by_status[status < 500 ? 1 : 9], 1); /* other 4xx → 400, 5xx → 500 */
}

void sl_rmetrics_added(sl_rmetrics *m, int64_t ns) {
    if (ns < 0) ns = 0;
    int b = 0;
    while (b < SL_RM_BUCKETS && ns > BOUNDS_NS[b]) b++;
    atomic_fetch_add(&m->added_counts[b], 1);
    atomic_fetch_add(&m->added_sum_ns, (uint64_t)ns);
}


char *sl_rmetrics_render(const sl_rmetrics *m, const sl_view *v, bool ready) {
    sl_strbuf b = {0};
    sl_strbuf_printf(&b, "# HELP shardlm_router_requests_total Requests answered by the router, by HTTP status.\n"
            "# TYPE shardlm_router_requests_total counter\n");
    for (int i = 0; i < SL_RM_STATUS; i++)
        sl_strbuf_printf(&b, "shardlm_router_requests_total{status=\"%d\"} %llu\n", STATUSES[i],
            (unsigned long long)atomic_load(&m->by_status[i]));
    sl_strbuf_printf(&b, "# HELP shardlm_router_routing_decisions_total Engine choices by reason.\n"
            "# TYPE shardlm_router_routing_decisions_total counter\n");
    for (int i = 0; i < SL_REASON_COUNT; i++)
        sl_strbuf_printf(&b, "shardlm_router_routing_decisions_total{reason=\"%s\"} %llu\n", sl_reason_str((sl_reason)i),
            (unsigned long long)atomic_load(&m->decisions[i]));
    sl_strbuf_printf(&b, "# HELP shardlm_router_retries_total Requests re-sent to another engine before their first byte.\n"
            "# TYPE shardlm_router_retries_total counter\nshardlm_router_retries_total %llu\n",
        (unsigned long long)atomic_load(&m->retries));
    sl_strbuf_printf(&b, "# HELP shardlm_router_migrations_total Streams continued on another engine after their engine failed.\n"
            "# TYPE shardlm_router_migrations_total counter\nshardlm_router_migrations_total %llu\n",
        (unsigned long long)atomic_load(&m->migrations));
    sl_strbuf_printf(&b, "# HELP shardlm_router_migrations_failed_total Streams ended with an error: no engine left to try.\n"
            "# TYPE shardlm_router_migrations_failed_total counter\nshardlm_router_migrations_failed_total %llu\n",
        (unsigned long long)atomic_load(&m->migrations_failed));
    sl_strbuf_printf(&b, "# HELP shardlm_router_no_engine_total Requests refused because no engine was in rotation.\n"
            "# TYPE shardlm_router_no_engine_total counter\nshardlm_router_no_engine_total %llu\n",
        (unsigned long long)atomic_load(&m->no_engine));
    sl_strbuf_printf(&b, "# HELP shardlm_router_requests_running Requests being proxied.\n# TYPE shardlm_router_requests_running gauge\n"
            "shardlm_router_requests_running %lld\n",
        (long long)atomic_load(&m->in_flight));
    sl_strbuf_printf(&b, "# HELP shardlm_router_connections Open client connections.\n# TYPE shardlm_router_connections gauge\n"
            "shardlm_router_connections %lld\n",
        (long long)atomic_load(&m->connections));
    sl_strbuf_printf(&b, "# HELP shardlm_router_ready Whether the router has an engine in rotation.\n"
            "# TYPE shardlm_router_ready gauge\nshardlm_router_ready %d\n",
        ready ? 1 : 0);
    sl_strbuf_printf(&b, "# HELP shardlm_router_added_latency_seconds Time the router adds to a request (its own work).\n"
            "# TYPE shardlm_router_added_latency_seconds histogram\n");
    uint64_t cum = 0;
    for (int i = 0; i <= SL_RM_BUCKETS; i++) {
        cum += atomic_load(&m->added_counts[i]);
        if (i < SL_RM_BUCKETS)
            sl_strbuf_printf(&b, "shardlm_router_added_latency_seconds_bucket{le=\"%g\"} %llu\n", (double)BOUNDS_NS[i] * 1e-9,
                (unsigned long long)cum);
        else
            sl_strbuf_printf(&b, "shardlm_router_added_latency_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    sl_strbuf_printf(&b, "shardlm_router_added_latency_seconds_sum %.9f\nshardlm_router_added_latency_seconds_count %llu\n",
        (double)atomic_load(&m->added_sum_ns) * 1e-9, (unsigned long long)cum);
    static const struct {
        const char *name, *type, *help;
    } EM[] = {
        {"shardlm_router_engine_up", "gauge", "1 when the engine is in rotation."},
        {"shardlm_router_engine_requests_total", "counter", "Requests sent to the engine (attempts)."},
        {"shardlm_router_engine_errors_total", "counter", "Failed attempts on the engine (connection, timeout, 5xx)."},
        {"shardlm_router_engine_retries_total", "counter", "Requests retried elsewhere after failing on the engine."},
        {"shardlm_router_engine_migrations_total", "counter", "Streams moved off the engine mid-answer."},
        {"shardlm_router_engine_ejections_total", "counter", "Times the engine was taken out of rotation."},
        {"shardlm_router_engine_in_flight", "gauge", "Requests this router has on the engine."},
        {"shardlm_router_engine_running", "gauge", "Running requests the engine reports (-1 unknown)."},
        {"shardlm_router_engine_waiting", "gauge", "Waiting (queued) requests the engine reports (-1 unknown)."},
    };
    sl_strbuf_printf(&b, "# HELP shardlm_router_engines Engines in the membership.\n# TYPE shardlm_router_engines gauge\n"
            "shardlm_router_engines %d\n",
        v ? v->n : 0);
    for (size_t k = 0; k < sizeof EM / sizeof EM[0]; k++) {
        sl_strbuf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", EM[k].name, EM[k].help, EM[k].name, EM[k].type);
        for (int i = 0; v && i < v->n; i++) {
            const sl_member *e = v->engines[i];
            long long x = 0;
            switch (k) {
            case 0: x = atomic_load(&e->up); break;
            case 1: x = (long long)atomic_load(&e->n_requests); break;
            case 2: x = (long long)atomic_load(&e->n_errors); break;
            case 3: x = (long long)atomic_load(&e->n_retries); break;
            case 4: x = (long long)atomic_load(&e->n_migrations); break;
            case 5: x = (long long)atomic_load(&e->n_ejections); break;
            case 6: x = atomic_load(&e->in_flight); break;
            case 7: x = atomic_load(&e->running); break;
            default: x = atomic_load(&e->waiting); break;
            }
            sl_strbuf_printf(&b, "%s{engine=\"%s\",url=\"%s\",version=\"%s\"} %lld\n", EM[k].name, e->spec.id, e->spec.url,
                e->spec.version, x);
        }
    }
    if (v && v->n_weights) {
        sl_strbuf_printf(&b, "# HELP shardlm_router_rollout_weight Rollout weight of a model version.\n"
                "# TYPE shardlm_router_rollout_weight gauge\n");
        for (int i = 0; i < v->n_weights; i++)
            sl_strbuf_printf(&b, "shardlm_router_rollout_weight{version=\"%s\"} %g\n", v->weight_version[i], v->weight[i]);
    }
    sl_metrics_process(&b);
    return b.p;
}

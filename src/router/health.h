/*
 * health.h — the router's probe thread: every --probe-interval it asks each
 * engine for GET /ready (health), GET /metrics (running + waiting requests:
 * the load placement weighs) and, now and then, GET /v1/models (for the
 * merged model list), all at once through one libcurl multi handle, each
 * with a timeout.
 *
 * Rotation: a new engine enters after its first successful probe; one taken
 * out (failed probes, or a connection failure on the request path) comes back
 * after --rise consecutive successes; --fall consecutive failures take an
 * engine out, and a refused connection takes it out at once.
 */
#ifndef SL_ROUTER_HEALTH_H
#define SL_ROUTER_HEALTH_H

#include "router/router.h"

sl_status sl_health_start(sl_router *r, sl_health **out);
/* Probe now (the membership changed). */
void sl_health_kick(sl_health *h);
void sl_health_stop(sl_health *h);

/* Parse shardlm_requests_running and shardlm_requests_waiting (summed over
 * their label sets) from a Prometheus text body; -1 for one that is absent. */
void sl_health_parse_load(const char *text, size_t n, int64_t *running, int64_t *waiting);

#endif

/*
 * router.h — `shardlm route`: the cluster's front door. One process holds the
 * membership (static flags and/or etcd), a probe thread (health, load, model
 * lists), and I/O threads that proxy the OpenAI API to engines.
 *
 * Threads: `threads` I/O workers, each with its own epoll loop, listening
 * socket (SO_REUSEPORT) and keep-alive connection pools to engines — nothing
 * on the request path is shared but atomics and the published membership view;
 * one probe thread (health.c); one etcd watch thread when --etcd is given
 * (etcd.c). Every wait across a process boundary is bounded.
 */
#ifndef SL_ROUTER_ROUTER_H
#define SL_ROUTER_ROUTER_H

#include "router/members.h"
#include "router/metrics.h"
#include "router/placement.h"
#include "server/apikeys.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct sl_router_cfg {
    const char *host;
    int port;                   /* 0 = any free port */
    int threads;                /* I/O threads */
    const char *const *engines; /* static members: "[ID=]http://HOST:PORT[#VERSION]" */
    int n_engines;
    const char *etcd;           /* etcd URL (http://HOST:PORT), or NULL */
    const char *cluster;
    sl_policy policy;
    int vnodes;
    double load_factor;
    int prefix_bytes;           /* prompt bytes hashed by the prefix policy */
    int retries;                /* other engines tried before giving up */
    int connect_timeout_ms;
    int upstream_timeout_s;     /* silence from an engine that counts as failure */
    int probe_interval_ms;
    int rise;                   /* successful probes to re-admit an engine */
    int fall;                   /* failed probes (or timeouts) to eject one */
    const char *api_key;        /* clients must send it (NULL: no check) */
    const char *engine_api_key; /* sent to engines (NULL: forward the client's) */
    const char *admin_key;      /* the admin endpoints (NULL: admin disabled) */
    const char *rollout;        /* initial weights, JSON, or NULL */
    int64_t max_body_bytes;
    int max_connections;
    int responses_store;         /* Responses API: responses kept for previous_response_id (0: none) */
    int64_t responses_store_mib; /* ... and their JSON in MiB at most */
    const char *allowed_origins; /* CORS (server/cors.h): "*", origins separated by commas, NULL or "": none */
    bool access_log;             /* a line on stderr per request (method, path, status, engine, tries, time) */
    const char *api_key_file;    /* more client keys, one per line (server/apikeys.h) */
    const char *tls_key_file;    /* HTTPS for clients: the private key and certificate chain (PEM); NULL: HTTP */
    const char *tls_key_password; /* ... the key's passphrase (an encrypted PEM key), or NULL */
    const char *tls_cert_file;
    const char *tls_ca_file;     /* HTTPS: the CA (PEM) of client certificates; NULL: none asked for */
    int tls_cert_reqs;           /* with it: 2 a client certificate is required, 1 checked where one is sent, 0 none */
    bool tls_refresh;            /* --enable-ssl-refresh: changed key, certificate or client CA taken for new connections */
    const char *engine_cert;     /* a client certificate (PEM) for https:// engines that require one, with its key */
    const char *engine_key;
    const char *engine_ca;       /* CA certificates (PEM) that https:// engines' certificates chain to (NULL: the
                                  * system's) */
} sl_router_cfg;

typedef struct sl_proxy sl_proxy;
typedef struct sl_resp_store sl_resp_store;
typedef struct sl_health sl_health;
typedef struct sl_etcd_watch sl_etcd_watch;
typedef struct sl_bg sl_bg;

typedef struct sl_router {
    sl_router_cfg cfg;
    sl_members *members;
    sl_rmetrics metrics;
    sl_health *health;
    sl_etcd_watch *watch;
    sl_proxy *proxy;
    atomic_bool draining;
    _Atomic uint64_t ticket;
    sl_resp_store *store; /* Responses API: responses kept here (the router translates them), or NULL */
    sl_bg *bg;            /* background responses (router/background.h), with the store */
    sl_api_keys keys;     /* the client keys (--api-key, --api-key-file); none: no check */
} sl_router;

sl_status sl_router_start(const sl_router_cfg *cfg, sl_router **out);
int sl_router_port(const sl_router *r);
/* /ready answers 503 from now on; requests are still served. */
void sl_router_drain(sl_router *r);
int64_t sl_router_in_flight(const sl_router *r);
/* Whether an engine is in rotation. */
bool sl_router_ready(sl_router *r);
void sl_router_stop(sl_router *r);

#endif

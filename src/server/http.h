/*
 * http.h — the HTTP front of `shardlm serve` (libmicrohttpd): routing,
 * API-key check, OpenAI endpoints with Server-Sent Events streaming,
 * health/readiness, Prometheus metrics.
 *
 * Threads: libmicrohttpd runs one thread per connection. A generation
 * request's thread submits to the scheduler and then waits on the request's
 * channel (bounded waits of 50 ms), checking between waits whether the
 * client has hung up — so a client that disconnects, even before its first
 * token, has its request cancelled within one scheduler step.
 */
#ifndef SL_SERVER_HTTP_H
#define SL_SERVER_HTTP_H

#include "server/api.h"
#include "server/metrics.h"
#include "server/sched.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct sl_http_cfg {
    const char *host;        /* bind address, e.g. "127.0.0.1" or "0.0.0.0" */
    int port;                /* 0 = any free port */
    const char *api_key;     /* NULL = no authentication */
    int64_t max_body_bytes;
    int max_connections;
    int responses_store;        /* Responses API: responses kept for previous_response_id (0: none) */
    int64_t responses_store_mib; /* ... and their JSON in MiB at most */
    const char *allowed_origins; /* CORS (server/cors.h): "*", origins separated by commas, NULL or "": none */
    bool access_log;             /* a line on stderr per request (method, path, status, tokens, times) */
    const char *api_key_file;    /* more keys, one per line (server/apikeys.h) */
    const char *tls_key_file;    /* HTTPS: the private key and certificate chain (PEM files); NULL: plain HTTP */
    const char *tls_key_password; /* ... the key's passphrase (an encrypted PEM key), or NULL */
    const char *tls_cert_file;
    const char *tls_ca_file;     /* HTTPS: the CA (PEM) of client certificates; NULL: none asked for */
    int tls_cert_reqs;           /* with it: 2 a client certificate is required, 1 checked where one is sent, 0 none */
    bool tls_refresh;            /* --enable-ssl-refresh: a changed key and certificate are taken for new connections */
} sl_http_cfg;

typedef struct sl_http sl_http;

sl_status sl_http_start(const sl_http_cfg *cfg, const sl_api_ctx *api, sl_sched *sched, sl_metrics *metrics,
                        sl_http **out);
int sl_http_port(const sl_http *h);
void sl_http_set_ready(sl_http *h, bool ready);
/* Stop taking new generation requests (they get 503); /ready answers 503. */
void sl_http_drain(sl_http *h);
/* Generation requests still being answered. */
int sl_http_in_flight(const sl_http *h);
/* Stop serving and free everything: after the scheduler is stopped (its requests are then finished, so the
 * connections' and background responses' threads end). */
void sl_http_stop(sl_http *h);

#endif

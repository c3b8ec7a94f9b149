/*
 * cmd_route.c — `shardlm route`: the cluster's front door (src/router/).
 *
 * Engines come from --engine [ID=]URL[#VERSION] flags (repeatable, or comma
 * separated; ID names the engine on the ring, default its URL) and/or etcd (--etcd URL: engines registered by `shardlm serve
 * --etcd`, rollout weights in /shardlm/<cluster>/config).
 *
 * Shutdown: SIGTERM or SIGINT → /ready answers 503 (load balancers stop
 * sending), requests in flight finish (at most --shutdown-timeout seconds),
 * exit 0.
 */
#include "commands.h"
#include "common.h"
#include "opts.h"

#include "core/alloc.h"
#include "router/router.h"
#include "server/addr.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { O_HOST, O_PORT, O_THREADS, O_ENGINE, O_ETCD, O_CLUSTER, O_POLICY, O_VNODES, O_LOAD, O_PREFIX, O_RETRIES,
       O_CONNECT, O_UPTIMEOUT, O_PROBE, O_RISE, O_FALL, O_APIKEY, O_ENGINEKEY, O_ADMINKEY, O_ROLLOUT, O_MAXBODY,
       O_MAXCONN, O_SHUTDOWN, O_RSTORE, O_RSTORE_MIB, O_ORIGINS, O_NOACCESS, O_KEYFILE, O_ENGINECA, O_SSLKEY, O_SSLCERT, O_SSLKEY2, O_SSLCERT2, O_SSLCA, O_ENGINETLSCERT, O_ENGINETLSKEY, O_ETCDCA, O_ETCDCERT, O_ETCDKEY, O_CERTREQS, O_SSLREFRESH, O_KEYPASS, O_COUNT };

static const opt_def OPTS[O_COUNT] = {
    [O_HOST] = {"host", NULL, OPT_STR, "127.0.0.1", 0, -1, "address to listen on: IPv4, IPv6 (:: takes IPv4 too) or a name"},
    [O_PORT] = {"port", NULL, OPT_INT, "8000", 0, 65535, "port to listen on (0: any free port, printed at start)"},
    [O_THREADS] = {"threads", "t", OPT_INT, "2", 1, 256, "I/O threads"},
    [O_ENGINE] = {"engine", NULL, OPT_STR, NULL, 0, -1,
                  "engine [ID=]http://HOST:PORT[#VERSION] (repeat the flag, or separate with commas)"},
    [O_ETCDCA] = {"etcd-ca", NULL, OPT_STR, NULL, 0, -1, "https:// etcd: the CA (PEM) its certificate chains to (default: the system's)"},
    [O_ETCDCERT] = {"etcd-cert", NULL, OPT_STR, NULL, 0, -1, "https:// etcd with client-cert-auth: this process's certificate (PEM)"},
    [O_ETCDKEY] = {"etcd-key", NULL, OPT_STR, NULL, 0, -1, "... and its private key (PEM)"},
    [O_ETCD] = {"etcd", NULL, OPT_STR, NULL, 0, -1, "etcd URL (http(s)://HOST:PORT): engines and rollout weights from there"},
    [O_CLUSTER] = {"cluster", NULL, OPT_STR, "default", 0, -1, "cluster name: etcd keys live under /shardlm/NAME/"},
    [O_POLICY] = {"policy", NULL, OPT_STR, "session", 0, -1,
                  "placement: session (prefix when a request has no session key), prefix, least-load, round-robin"},
    [O_VNODES] = {"vnodes", NULL, OPT_INT, "128", 1, 4096, "points per engine on the consistent-hash ring"},
    [O_LOAD] = {"load-factor", NULL, OPT_FLOAT, "1.25", 1, 100, "bounded loads: no engine above this times the mean load"},
    [O_PREFIX] = {"prefix-bytes", NULL, OPT_INT, "256", 16, 4096, "prompt bytes hashed by the prefix policy"},
    [O_RETRIES] = {"retries", NULL, OPT_INT, "2", 0, 15, "other engines tried when one fails"},
    [O_CONNECT] = {"connect-timeout-ms", NULL, OPT_INT, "1000", 10, 60000, "engine connect timeout"},
    [O_UPTIMEOUT] = {"upstream-timeout", NULL, OPT_INT, "120", 1, 86400,
                     "seconds of silence from an engine that count as its failure"},
    [O_PROBE] = {"probe-interval-ms", NULL, OPT_INT, "1000", 50, 600000, "how often engines are probed (/ready, /metrics)"},
    [O_RISE] = {"rise", NULL, OPT_INT, "2", 1, 100, "successful probes that bring an engine back into rotation"},
    [O_FALL] = {"fall", NULL, OPT_INT, "3", 1, 100, "failed probes (or timeouts) that take an engine out"},
    [O_APIKEY] = {"api-key", NULL, OPT_STR, NULL, 0, -1,
                  "require 'Authorization: Bearer KEY' from clients (several keys: separated by commas)"},
    [O_KEYFILE] = {"api-key-file", NULL, OPT_STR, NULL, 0, -1, "client keys accepted too, one per line"},
    [O_SSLKEY] = {"ssl-keyfile", NULL, OPT_STR, NULL, 0, -1, "HTTPS for clients: the private key (PEM), with --ssl-certfile"},
    [O_SSLCERT] = {"ssl-certfile", NULL, OPT_STR, NULL, 0, -1, "HTTPS for clients: the certificate chain (PEM)"},
    [O_SSLKEY2] = {"ssl-key-file", NULL, OPT_STR, NULL, 0, -1, "the same as --ssl-keyfile (llama.cpp's name)"},
    CLI_KEY_PASSWORD_OPT(O_KEYPASS),
    [O_SSLCERT2] = {"ssl-cert-file", NULL, OPT_STR, NULL, 0, -1, "the same as --ssl-certfile (llama.cpp's name)"},
    [O_SSLCA] = {"ssl-ca-certs", NULL, OPT_STR, NULL, 0, -1,
                 "HTTPS: clients must present a certificate signed by these CAs (PEM; mutual TLS)"},
    [O_SSLREFRESH] = {"enable-ssl-refresh", NULL, OPT_BOOL, NULL, 0, -1,
                      "HTTPS: when --ssl-keyfile, --ssl-certfile or --ssl-ca-certs change (a renewed certificate), new "
                      "connections get them (looked at once a second at most)"},
    [O_CERTREQS] = {"ssl-cert-reqs", NULL, OPT_INT, "2", 0, 2,
                    "with --ssl-ca-certs: 2 a client certificate is required, 1 checked where sent, 0 not asked for"},
    [O_ENGINETLSCERT] = {"engine-tls-cert", NULL, OPT_STR, NULL, 0, -1,
                         "a client certificate (PEM) for https:// engines that require one (--ssl-ca-certs there)"},
    [O_ENGINETLSKEY] = {"engine-tls-key", NULL, OPT_STR, NULL, 0, -1, "its private key (PEM)"},
    [O_ENGINECA] = {"engine-ca", NULL, OPT_STR, NULL, 0, -1,
                    "CA certificates (PEM) that https:// engines' certificates chain to (default: the system's)"},
    [O_ENGINEKEY] = {"engine-api-key", NULL, OPT_STR, NULL, 0, -1, "API key sent to engines (default: the client's)"},
    [O_ADMINKEY] = {"admin-key", NULL, OPT_STR, NULL, 0, -1, "key for /admin/* (PUT /admin/rollout ...); off without it"},
    [O_ROLLOUT] = {"rollout", NULL, OPT_STR, NULL, 0, -1, "initial rollout weights, JSON: '{\"v1\": 90, \"v2\": 10}'"},
    [O_MAXBODY] = {"max-body-bytes", NULL, OPT_INT, "8388608", 1024, 1 << 30, "largest request body"},
    [O_NOACCESS] = {"no-access-log", NULL, OPT_BOOL, NULL, 0, -1,
                    "no line on stderr per request (method, path, status, engine, engines tried, time)"},
    [O_ORIGINS] = {"allowed-origins", NULL, OPT_STR, "*", 0, -1,
                   "CORS: origins whose web pages may call the API (\"*\": any; a list separated by commas; \"\": none)"},
    [O_RSTORE] = {"responses-store", NULL, OPT_INT, "1024", 0, 1 << 20,
                  "Responses API: responses kept for previous_response_id and GET /v1/responses/ID (0: none)"},
    [O_RSTORE_MIB] = {"responses-store-mib", NULL, OPT_INT, "64", 1, 1 << 20, "... their JSON in MiB at most (the oldest go)"},
    [O_MAXCONN] = {"max-connections", NULL, OPT_INT, "10000", 1, 1000000, "client connections per I/O thread at most"},
    [O_SHUTDOWN] = {"shutdown-timeout", NULL, OPT_INT, "30", 0, 3600, "seconds requests in flight get to finish at exit"},
};

/* --engine may be given many times: collect every value (commas split too) and
 * hand opts_parse the rest. */
static int collect_engines(int argc, char **argv, char **rest, int *n_rest, char ***engines, int *n_engines) {
    *n_rest = 0;
    *n_engines = 0;
    *engines = NULL;
    int cap = 0;
    for (int a = 0; a < argc; a++) {
        const char *val = NULL;
        if (a > 0 && !strcmp(argv[a], "--engine") && a + 1 < argc) val = argv[++a];
        else if (a > 0 && !strncmp(argv[a], "--engine=", 9)) val = argv[a] + 9;
        if (!val) {
            rest[(*n_rest)++] = argv[a];
            continue;
        }
        char *copy = sl_strdup(val), *save = NULL;
        if (!copy) return -1;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (*n_engines == cap) {
                cap = cap ? cap * 2 : 8;
                char **ne = sl_realloc(*engines, sizeof(char *) * (size_t)cap);
                if (!ne) {
                    sl_free(copy);
                    return -1;
                }
                *engines = ne;
            }
            (*engines)[(*n_engines)++] = sl_strdup(tok);
        }
        sl_free(copy);
    }
    return 0;
}

int cmd_route(int argc, char **argv) {
    char **rest = sl_calloc((size_t)argc + 1, sizeof(char *));
    char **engines = NULL;
    int n_rest = 0, n_engines = 0, rc = 1;
    sl_router *r = NULL;
    if (!rest || collect_engines(argc, argv, rest, &n_rest, &engines, &n_engines) < 0) {
        fprintf(stderr, "shardlm route: out of memory\n");
        goto done;
    }
    opt_val v[O_COUNT];
    const char *pos[1];
    int n_pos;
    int pr = opts_parse("route", "--engine URL [--engine URL ...] | --etcd URL [options]", OPTS, O_COUNT, v, n_rest,
                        rest, pos, 0, &n_pos);
    if (pr) {
        rc = pr > 0 ? 0 : 1;
        goto done;
    }
    if (n_engines == 0 && v[O_ENGINE].set) { /* from SHARDLM_ENGINE */
        char *argv2[3] = {"route", "--engine", (char *)v[O_ENGINE].s};
        char *r2[3];
        int nr2;
        if (collect_engines(3, argv2, r2, &nr2, &engines, &n_engines) < 0) goto done;
    }
    sl_policy policy;
    if (!sl_policy_parse(v[O_POLICY].s, &policy)) {
        fprintf(stderr, "shardlm route: --policy '%s': expected session, prefix, least-load or round-robin\n",
                v[O_POLICY].s);
        goto done;
    }
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    sl_router_cfg cfg = {
        .host = v[O_HOST].s,
        .port = (int)v[O_PORT].i,
        .threads = (int)v[O_THREADS].i,
        .engines = (const char *const *)engines,
        .n_engines = n_engines,
        .etcd = v[O_ETCD].set ? v[O_ETCD].s : NULL,
        .cluster = v[O_CLUSTER].s,
        .policy = policy,
        .vnodes = (int)v[O_VNODES].i,
        .load_factor = v[O_LOAD].f,
        .prefix_bytes = (int)v[O_PREFIX].i,
        .retries = (int)v[O_RETRIES].i,
        .connect_timeout_ms = (int)v[O_CONNECT].i,
        .upstream_timeout_s = (int)v[O_UPTIMEOUT].i,
        .probe_interval_ms = (int)v[O_PROBE].i,
        .rise = (int)v[O_RISE].i,
        .fall = (int)v[O_FALL].i,
        .api_key = v[O_APIKEY].set ? v[O_APIKEY].s : NULL,
        .engine_api_key = v[O_ENGINEKEY].set ? v[O_ENGINEKEY].s : NULL,
        .admin_key = v[O_ADMINKEY].set ? v[O_ADMINKEY].s : NULL,
        .rollout = v[O_ROLLOUT].set ? v[O_ROLLOUT].s : NULL,
        .max_body_bytes = v[O_MAXBODY].i,
        .max_connections = (int)v[O_MAXCONN].i,
        .responses_store = (int)v[O_RSTORE].i,
        .allowed_origins = v[O_ORIGINS].s,
        .access_log = !v[O_NOACCESS].b,
        .api_key_file = v[O_KEYFILE].set ? v[O_KEYFILE].s : NULL,
        .engine_ca = v[O_ENGINECA].set ? v[O_ENGINECA].s : NULL,
        .engine_cert = v[O_ENGINETLSCERT].set ? v[O_ENGINETLSCERT].s : NULL,
        .engine_key = v[O_ENGINETLSKEY].set ? v[O_ENGINETLSKEY].s : NULL,
        .tls_ca_file = v[O_SSLCA].set ? v[O_SSLCA].s : NULL,
        .tls_cert_reqs = (int)v[O_CERTREQS].i,
        .tls_refresh = v[O_SSLREFRESH].b,
        .tls_key_file = v[O_SSLKEY].set ? v[O_SSLKEY].s : v[O_SSLKEY2].set ? v[O_SSLKEY2].s : NULL,
        .tls_key_password = v[O_KEYPASS].set ? v[O_KEYPASS].s : NULL,
        .tls_cert_file = v[O_SSLCERT].set ? v[O_SSLCERT].s : v[O_SSLCERT2].set ? v[O_SSLCERT2].s : NULL,
        .responses_store_mib = v[O_RSTORE_MIB].i,
    };
    if (!cli_etcd_tls("route", v[O_ETCDCA].set ? v[O_ETCDCA].s : NULL, v[O_ETCDCERT].set ? v[O_ETCDCERT].s : NULL,
                      v[O_ETCDKEY].set ? v[O_ETCDKEY].s : NULL)) goto done;
    if (sl_router_start(&cfg, &r) != SL_OK) {
        fprintf(stderr, "shardlm route: %s\n", sl_last_error());
        goto done;
    }
    char where[128];
    sl_host_url(v[O_HOST].s, sl_router_port(r), cfg.tls_key_file != NULL, false, where, sizeof where);
    printf("shardlm route: on %s (%d static engine%s%s%s, policy %s, %d I/O threads)\n", where, n_engines, n_engines == 1 ? "" : "s", cfg.etcd ? ", etcd " : "", cfg.etcd ? cfg.etcd : "",
           v[O_POLICY].s, cfg.threads);
    fflush(stdout);

    int sig;
    do {
        sig = sigwaitinfo(&sigs, NULL);
    } while (sig < 0 && errno == EINTR);
    fprintf(stderr, "shardlm route: signal %d: draining (at most %lld s)\n", sig, (long long)v[O_SHUTDOWN].i);
    sl_router_drain(r);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (sl_router_in_flight(r) > 0) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (t1.tv_sec - t0.tv_sec >= v[O_SHUTDOWN].i) {
            fprintf(stderr, "shardlm route: %lld requests still in flight at the shutdown timeout\n",
                    (long long)sl_router_in_flight(r));
            break;
        }
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    rc = 0;
done:
    sl_router_stop(r);
    for (int i = 0; i < n_engines; i++) sl_free(engines[i]);
    sl_free(engines);
    sl_free(rest);
    return rc;
}

/*
 * members.h — who the router can send to: engine records, and immutable views
 * of the membership (engines, consistent-hash rings per model version,
 * rollout weights) that I/O threads read without locks.
 *
 * Design: membership comes from static --engine flags and/or etcd; any change
 * builds a new view and publishes it under a mutex with a generation number.
 * A reader keeps its view and only takes the mutex when the generation moved
 * (one atomic load per request otherwise). Engine records are refcounted and
 * carried over from view to view when id, URL, model and version are
 * unchanged, so health state and counters survive membership changes.
 *
 * Invariants: a view never changes after publication; an engine's identity
 * fields never change; its dynamic fields are atomics (health: the probe
 * thread and, for ejections, the I/O threads; loads: I/O threads and probes).
 */
#ifndef SL_ROUTER_MEMBERS_H
#define SL_ROUTER_MEMBERS_H

#include "shardlm.h"
#include "router/ring.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define SL_MAX_VERSIONS 16

/* What a membership source says about one engine. */
typedef struct sl_member_spec {
    char id[128];
    char url[256];
    char model[128];   /* "" when unknown */
    char version[64];  /* "" = unlabelled */
    int capacity;      /* sequences it runs at once, 0 = unknown */
} sl_member_spec;

#define SL_MEMBER_MAX_MODELS 16

typedef struct sl_member {
    _Atomic int refs;
    sl_member_spec spec;
    char hostport[280];              /* for the Host header */
    bool tls;                        /* https://: TLS to it, its certificate verified for tls_name */
    char tls_name[256];              /* the host: a name (SNI, verified) or an IP address (verified) */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    /* health */
    atomic_bool up;                  /* in rotation */
    atomic_bool ever_up;
    _Atomic int passive_fails;       /* consecutive failures seen by I/O threads */
    int ok_streak, fail_streak;      /* probe thread only */
    bool probe_saw_up;               /* probe thread only: `up` at its last round */
    /* load */
    _Atomic int64_t in_flight;       /* requests this router has on it */
    _Atomic int64_t running, waiting; /* as its /metrics last said, -1 unknown */
    /* counters */
    _Atomic uint64_t n_requests, n_errors, n_retries, n_migrations, n_ejections;
    /* /v1/models entries (JSON array text), refreshed by the probe thread */
    pthread_mutex_t mu;
    char *models_json;
    /* ... and their ids' hashes (sl_member_model_hash; at most SL_MEMBER_MAX_MODELS, n_probed of them, 0: not
     * known yet), read without a lock by placement, for an engine whose spec names no model */
    _Atomic uint64_t probed[SL_MEMBER_MAX_MODELS];
    _Atomic int n_probed;
} sl_member;

typedef struct sl_ring_set {
    char version[64];
    sl_ring *ring;
    int *engine_of; /* ring member -> index in view->engines */
} sl_ring_set;

typedef struct sl_view {
    _Atomic int refs;
    uint64_t gen;
    int n;
    sl_member **engines;
    sl_ring_set all;                    /* every engine */
    int n_versions;
    sl_ring_set versions[SL_MAX_VERSIONS];
    int n_weights;                      /* rollout: version -> weight, sorted by version */
    char weight_version[SL_MAX_VERSIONS][64];
    double weight[SL_MAX_VERSIONS];
} sl_view;

typedef struct sl_members sl_members;

sl_status sl_members_create(int vnodes, sl_members **out);
void sl_members_destroy(sl_members *m);

/* Parse "[ID=]URL[#VERSION]" (static --engine flag) into a spec; the id (the
 * engine's name on the ring) is the URL unless given. */
sl_status sl_member_spec_parse(const char *text, sl_member_spec *out);
/* Replace the members of one source (0: static flags, 1: etcd) and publish. */
sl_status sl_members_set(sl_members *m, int source, const sl_member_spec *specs, int n);
/* Rollout weights (version -> weight >= 0); n = 0 clears them. Publishes. */
sl_status sl_members_set_weights(sl_members *m, char (*versions)[64], const double *weights, int n);
/* Parse weights from JSON text {"v1": 90, "v2": 10} or {"weights": {...}}. */
sl_status sl_weights_parse(const char *json, size_t len, char (*versions)[64], double *weights, int *n);

/* The current view (retained); pass the view you hold to reuse it cheaply. */
sl_view *sl_members_view(sl_members *m, sl_view *held);
void sl_view_release(sl_view *v);
uint64_t sl_members_gen(const sl_members *m);

void sl_member_retain(sl_member *e);
void sl_member_release(sl_member *e);
/* The load placement weighs: this router's requests in flight on the engine
 * plus the queue (waiting requests) the engine reports — the queue shows load
 * from other routers once the engine is saturated, and a stale report of a
 * running request that has finished cannot make an idle engine look busy. */
int64_t sl_member_load(const sl_member *e);
/* A model name's hash as probed[] keeps them. */
uint64_t sl_member_model_hash(const char *name, size_t n);
/* Whether the probe saw e serve the model of hash h. */
bool sl_member_serves(const sl_member *e, uint64_t h);
/* Take out of rotation now (connection failure). */
void sl_member_eject(sl_member *e, const char *why);

#endif

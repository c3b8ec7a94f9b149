/*
 * etcd.h — membership and configuration through etcd v3's JSON gateway
 * (POST /v3/kv/range, /v3/kv/put, /v3/lease/grant, /v3/lease/keepalive,
 * /v3/lease/revoke, /v3/watch; keys and values base64) over libcurl.
 *
 * Keys, under /shardlm/<cluster>/:
 *   engines/<id>  {"url": ..., "model": ..., "version": ..., "capacity": N},
 *                 put under a lease the engine keeps alive
 *   config        {"rollout": {"v1": 90, "v2": 10}}
 *
 * Engines (`shardlm serve --etcd`): a thread grants a lease (TTL), puts the key
 * under it and keeps it alive every TTL/3; when etcd is unreachable it retries
 * every second, and when the lease is gone (expired while etcd was down) it
 * grants a new one and puts the key again. Stopping revokes the lease, which
 * deletes the key at once.
 *
 * Routers (`shardlm route --etcd`): a thread reads the prefix, applies it, and
 * watches it from the next revision, re-reading everything every minute and
 * after any error; while etcd is unreachable the last view stays in force.
 *
 * Every HTTP call has a timeout, and every wait ends within 200 ms of a stop.
 */
#ifndef SL_ROUTER_ETCD_H
#define SL_ROUTER_ETCD_H

#include "shardlm.h"
#include "router/members.h"

typedef struct sl_etcd_reg_cfg {
    const char *etcd;       /* http://HOST:PORT */
    const char *cluster;    /* NULL = "default" */
    const char *id;         /* NULL = "HOST:PORT" of the engine */
    const char *url;        /* NULL = "http://HOST:PORT" */
    const char *host;       /* the engine's listening address and port (for the defaults) */
    int port;
    bool tls;               /* it serves HTTPS (the default URL's scheme) */
    const char *model;
    const char *version;    /* NULL = "" */
    int capacity;
    int ttl_s;              /* 0 = 10 */
} sl_etcd_reg_cfg;

typedef struct sl_etcd_reg sl_etcd_reg;

/* An https:// etcd: the CA its certificate chains to (NULL: the system's) and, for an etcd that requires one
 * (--client-cert-auth), this process's client certificate and key (PEM files). Call once before any other
 * sl_etcd_ call; the strings must outlive them. */
void sl_etcd_tls(const char *ca, const char *cert, const char *key);

/* Start registering (returns at once; etcd may be down, the thread retries). */
sl_status sl_etcd_register_start(const sl_etcd_reg_cfg *cfg, sl_etcd_reg **out);
/* Revoke the lease (bounded wait) and stop. Accepts NULL. */
void sl_etcd_register_stop(sl_etcd_reg *r);

typedef struct sl_etcd_watch sl_etcd_watch;

sl_status sl_etcd_watch_start(const char *etcd, const char *cluster, sl_members *m, sl_etcd_watch **out);
void sl_etcd_watch_stop(sl_etcd_watch *w);

/* Put /shardlm/<cluster>/config (bounded wait). */
sl_status sl_etcd_put_config(const char *etcd, const char *cluster, const char *json);

/* An etcd record engines/<id> (JSON {"url", "model", "version", "capacity"}) into
 * a spec; false when malformed (the router skips it): no URL, an id that is
 * empty, too long, not UTF-8 or with quotes or control characters. A model or
 * version cut at its buffer's end stays valid UTF-8; a capacity out of range is
 * 0 (unknown). */
bool sl_etcd_engine_parse(const char *id, const char *val, size_t n, sl_member_spec *s);

/* base64 (standard alphabet, padded); out must hold 4*ceil(n/3)+1 / 3*n/4+1 bytes. */
size_t sl_b64_encode(const void *in, size_t n, char *out);
/* Returns the decoded length, or -1 for invalid input. */
long sl_b64_decode(const char *in, size_t n, unsigned char *out);

#endif

/*
 * placement.h — which engine takes a request: rollout split by model
 * version, then the placement policy on that version's ring.
 *
 *  - session: consistent hashing on the session key (the `user` field or an
 *    X-Session-Id header) so a conversation stays where its KV cache is;
 *    without a key, the prefix policy;
 *  - prefix: consistent hashing on a hash of the prompt's first bytes
 *    (rendered chat text), so requests sharing a long prefix meet their cache;
 *  - least-load, round-robin.
 * Hashing policies use bounded loads: an engine is passed over while its load
 * (max of this router's in-flight requests and the running + waiting it
 * reports) is at the cap ceil(factor × (total + 1) / N); the ring then gives
 * the next engine. Rollout: the version is drawn by weight from the same key
 * (sticky per session), or at random without one; a version with no engine in
 * rotation gives its share to the others.
 */
#ifndef SL_ROUTER_PLACEMENT_H
#define SL_ROUTER_PLACEMENT_H

#include "router/members.h"

typedef enum sl_policy { SL_POLICY_SESSION, SL_POLICY_PREFIX, SL_POLICY_LEAST_LOAD, SL_POLICY_ROUND_ROBIN } sl_policy;

typedef enum sl_reason {
    SL_REASON_SESSION,
    SL_REASON_PREFIX,
    SL_REASON_OVERFLOW,     /* the hashed engine was at its load cap */
    SL_REASON_LEAST_LOAD,
    SL_REASON_ROUND_ROBIN,
    SL_REASON_FAILOVER,     /* a retry or a migration */
    SL_REASON_COUNT
} sl_reason;

const char *sl_reason_str(sl_reason r);
/* "session" / "prefix" / "least-load" / "round-robin" → policy; false if unknown. */
bool sl_policy_parse(const char *s, sl_policy *out);

typedef struct sl_place_req {
    const char *model;            /* requested model id, NULL = any */
    bool has_session;
    uint64_t session;
    bool has_prefix;
    uint64_t prefix;
    sl_member *const *exclude;    /* engines already tried */
    int n_exclude;
    uint64_t ticket;              /* round-robin counter / random draw */
    /* (set by sl_place) engines whose spec names no model are placed by the models their /v1/models lists
     * (sl_member_serves) when some engine in rotation was seen to serve this one: its hash */
    bool by_probe;
    uint64_t model_hash;
} sl_place_req;

/* The engine (not retained: valid while the view is held), or NULL when no
 * engine in rotation can take it. */
sl_member *sl_place(const sl_view *v, sl_policy policy, double load_factor, const sl_place_req *q, sl_reason *why);

/* The rollout version for a key (NULL = no split in force); for tests and /admin. */
const char *sl_place_version(const sl_view *v, const sl_place_req *q);

#endif

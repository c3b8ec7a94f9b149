/*
 * ring.h — consistent hashing with virtual nodes, multi-probe lookup and
 * bounded loads: which engine takes a key.
 *
 * Each member (engine id) owns `vnodes` points on a 64-bit ring, placed by
 * hashing (id, i) only, so a point never moves when other members come or go.
 * A key is looked up at SL_RING_PROBES probe positions derived from it; each
 * probe walks clockwise to the first point whose member is acceptable, and the
 * probe with the shortest walk wins (multi-probe consistent hashing, Appleton &
 * O'Reilly 2015). With 128 points per member the probes bring each member's
 * share of keys to within ~2% of 1/N, where one probe leaves ~9% (one standard
 * deviation), which is what lets 1,000 sessions spread within ±15% of even.
 *
 * Invariants:
 *  - the answer depends only on the key and the set of member ids that are
 *    acceptable, not on their order or on the rejected ones: rejecting a
 *    member (down, excluded, overloaded) gives exactly the answer of a ring
 *    without it, so adding or removing a member moves only the keys that it
 *    takes or held (about 1/N of them);
 *  - bounded loads: with accept = "load < sl_ring_load_cap(...)" no member
 *    takes more than ceil(factor × (total + 1) / N) requests; overflow goes
 *    to the next acceptable point, as the "walk the ring" asks.
 */
#ifndef SL_ROUTER_RING_H
#define SL_ROUTER_RING_H

#include "shardlm.h"

#include <stdbool.h>
#include <stdint.h>

#define SL_RING_PROBES 8
#define SL_RING_MAX_MEMBERS 4096
#define SL_RING_MAX_VNODES 4096

typedef struct sl_ring sl_ring;

/* May member `m` (index into the ids given at create) take the key? */
typedef bool (*sl_ring_accept_fn)(void *ctx, int m);

/* A ring over n member ids (copied); ids must be distinct. n may be 0. */
sl_status sl_ring_create(const char *const *ids, int n, int vnodes, sl_ring **out);
void sl_ring_destroy(sl_ring *r);
int sl_ring_members(const sl_ring *r);
const char *sl_ring_member_id(const sl_ring *r, int m);

/* The member that takes `key` among those `accept` admits (NULL: all), or -1
 * when none does. `accept` is called at most once per member. */
int sl_ring_pick(const sl_ring *r, uint64_t key, sl_ring_accept_fn accept, void *ctx);

/* Most load one of n members may carry once a new request is added to
 * `total` (bounded loads): ceil(factor × (total + 1) / n), at least 1. */
int64_t sl_ring_load_cap(int64_t total, int n, double factor);

#endif

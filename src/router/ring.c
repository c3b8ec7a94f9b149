/*
 * ring.c — consistent hashing with virtual nodes (see ring.h).
 *
 * The points live in one array sorted by position; a probe finds its start by
 * binary search and walks forward (wrapping). Walks stop as soon as they are
 * longer than the best probe so far, so a lookup costs SL_RING_PROBES binary
 * searches plus a few steps when most members are acceptable.
 */
#include "ring.h"

#include "core/alloc.h"
#include "core/status.h"
#include "router/hash.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SEED_MEMBER 0x5368617264526e67ULL /* "ShardRng" */
#define GOLDEN 0x9e3779b97f4a7c15ULL

typedef struct point {
    uint64_t pos;
    uint64_t tie; /* member id hash: orders equal positions the same on every router */
    int32_t m;
} point;

struct sl_ring {
    int n;
    char **ids;
    point *pts; /* n * vnodes, sorted by (pos, tie) */
    int64_t n_pts;
};

static int cmp_point(const void *a, const void *b) {
    const point *x = a, *y = b;
    if (x->pos != y->pos) return x->pos < y->pos ? -1 : 1;
    if (x->tie != y->tie) return x->tie < y->tie ? -1 : 1;
    return 0;
}

void sl_ring_destroy(sl_ring *r) {
    if (!r) return;
    for (int i = 0; i < r->n; i++) sl_free(r->ids[i]);
    sl_free(r->ids);
    sl_free(r->pts);
    sl_free(r);
}

sl_status sl_ring_create(const char *const *ids, int n, int vnodes, sl_ring **out) {
    *out = NULL;
    sl_status st = SL_OK;
    if (n < 0 || n > SL_RING_MAX_MEMBERS)
        return SL_FAIL(SL_ERR_INVALID, "ring: %d members (at most %d)", n, SL_RING_MAX_MEMBERS);
    if (vnodes < 1 || vnodes > SL_RING_MAX_VNODES)
        return SL_FAIL(SL_ERR_INVALID, "ring: vnodes is %d; it must be 1..%d", vnodes, SL_RING_MAX_VNODES);
    sl_ring *r = sl_calloc(1, sizeof *r);
    if (!r) return SL_FAIL(SL_ERR_NOMEM, "ring: out of memory");
    r->ids = sl_calloc((size_t)(n ? n : 1), sizeof(char *));
    r->pts = sl_alloc_array((size_t)(n ? n : 1) * (size_t)vnodes, sizeof(point));
    if (!r->ids || !r->pts) {
        st = SL_FAIL(SL_ERR_NOMEM, "ring: out of memory for %d x %d points", n, vnodes);
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        r->ids[i] = sl_strdup(ids[i]);
        if (!r->ids[i]) {
            st = SL_FAIL(SL_ERR_NOMEM, "ring: out of memory");
            goto fail;
        }
        r->n = i + 1;
        for (int j = 0; j < i; j++)
            if (!strcmp(ids[i], ids[j])) {
                st = SL_FAIL(SL_ERR_INVALID, "ring: member id '%s' given twice", ids[i]);
                goto fail;
            }
        uint64_t h = sl_hash64(ids[i], strlen(ids[i]), SEED_MEMBER);
        for (int v = 0; v < vnodes; v++) {
            point *p = &r->pts[r->n_pts++];
            p->pos = sl_mix64(h ^ sl_mix64((uint64_t)(v + 1) * GOLDEN));
            p->tie = h;
            p->m = i;
        }
    }
    qsort(r->pts, (size_t)r->n_pts, sizeof(point), cmp_point);
    *out = r;
    return SL_OK;
fail:
    sl_ring_destroy(r);
    return st;
}

int sl_ring_members(const sl_ring *r) { return r ? r->n : 0; }
const char *sl_ring_member_id(const sl_ring *r, int m) { return m >= 0 && m < r->n ? r->ids[m] : NULL; }

/* First point with pos >= x (n_pts when none: wrap to 0). */
static int64_t lower_bound(const sl_ring *r, uint64_t x) {
    int64_t lo = 0, hi = r->n_pts;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (r->pts[mid].pos < x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

int sl_ring_pick(const sl_ring *r, uint64_t key, sl_ring_accept_fn accept, void *ctx) {
    if (!r || r->n == 0) return -1;
    uint8_t memo[SL_RING_MAX_MEMBERS]; /* 0 unknown, 1 accepted, 2 rejected */
    memset(memo, 0, (size_t)r->n);
    int best = -1;
    uint64_t best_d = UINT64_MAX, best_tie = 0;
    int n_rejected = 0;
    for (int j = 0; j < SL_RING_PROBES; j++) {
        uint64_t probe = sl_mix64(key + (uint64_t)j * GOLDEN);
        int64_t i = lower_bound(r, probe);
        for (int64_t step = 0; step < r->n_pts; step++, i++) {
            if (i == r->n_pts) i = 0;
            const point *p = &r->pts[i];
            uint64_t d = p->pos - probe; /* clockwise distance, wraps */
            if (d > best_d || (d == best_d && p->tie >= best_tie)) break;
            int m = p->m;
            if (!memo[m]) {
                memo[m] = !accept || accept(ctx, m) ? 1 : 2;
                if (memo[m] == 2 && ++n_rejected == r->n) return -1;
            }
            if (memo[m] == 1) {
                best = m;
                best_d = d;
                best_tie = p->tie;
                break;
            }
        }
    }
    return best;
}

int64_t sl_ring_load_cap(int64_t total, int n, double factor) {
    if (n <= 0) return 0;
    /* the epsilon keeps float error (1.39 * 100 = 139.00000000000003) from raising the cap by one */
    double c = ceil(factor * (double)(total + 1) / (double)n - 1e-9);
    return c < 1 ? 1 : (int64_t)c;
}

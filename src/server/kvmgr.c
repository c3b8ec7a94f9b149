/*
 * kvmgr.c — KV block manager with a prefix index and per-class pools.
 *
 * Data structures: a metadata record per block; per pool a free stack
 * (unindexed blocks with no users) and a min-heap of cached blocks (indexed,
 * no users) keyed by eviction order; one open-addressing index from block
 * key to block id (linear probing, backward-shift deletion).
 *
 * Eviction order: when a sequence releases its blocks they are visited
 * leaf first, so within one sequence the deepest block is evicted first and
 * chains shrink from the end. FIFO keeps the order stamp a block got the
 * first time it was cached; LRU re-stamps it at every release.
 */
#include "kvmgr.h"

#include "core/alloc.h"
#include "core/status.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B_FREE = 0, B_CACHED = 1, B_USED = 2 };

typedef struct blk {
    int32_t ref;
    int16_t pool;
    uint8_t state;
    uint8_t indexed;
    int32_t heap_pos;
    uint64_t order;       /* eviction order stamp; 0 = never cached */
    uint8_t key[SL_KVM_HASH];
} blk;

typedef struct pool {
    sl_kvm_pool_cfg cfg;
    int32_t first, count;
    int32_t *free_ids;
    int32_t n_free;
    int32_t *heap;
    int32_t n_heap;
    int32_t n_used;
} pool;

struct sl_kvm {
    int32_t n_blocks, block_size;
    bool prefix_caching;
    uint8_t salt[SL_KVM_HASH];
    blk *b;
    pool pools[SL_KVM_MAX_POOLS];
    int n_pools;
    int32_t *index;      /* block id or -1 */
    uint64_t index_cap;  /* power of two */
    uint64_t clock;
    uint64_t hits, queries;
};

/* ---- pools spec -------------------------------------------------------- */

sl_status sl_kvm_parse_pools(const char *spec, sl_kvm_pool_cfg *out, int *n_out) {
    *n_out = 0;
    char buf[512];
    if (strlen(spec) >= sizeof buf) return SL_FAIL(SL_ERR_INVALID, "--kv-pools: specification too long");
    strcpy(buf, spec);
    double total = 0;
    char *save = NULL;
    for (char *cls = strtok_r(buf, ",", &save); cls; cls = strtok_r(NULL, ",", &save)) {
        if (*n_out >= SL_KVM_MAX_POOLS)
            return SL_FAIL(SL_ERR_INVALID, "--kv-pools: at most %d classes", SL_KVM_MAX_POOLS);
        sl_kvm_pool_cfg *c = &out[*n_out];
        memset(c, 0, sizeof *c);
        char *save2 = NULL;
        char *name = strtok_r(cls, ":", &save2);
        if (!name || !*name || strlen(name) >= sizeof c->name)
            return SL_FAIL(SL_ERR_INVALID, "--kv-pools: class %d has no valid name", *n_out + 1);
        strcpy(c->name, name);
        bool have_share = false, have_policy = false;
        for (char *f = strtok_r(NULL, ":", &save2); f; f = strtok_r(NULL, ":", &save2)) {
            char *end;
            if (!strncmp(f, "<=", 2)) {
                long v = strtol(f + 2, &end, 10);
                if (*end || v <= 0 || v > (1 << 30))
                    return SL_FAIL(SL_ERR_INVALID, "--kv-pools: class '%s': bad bound '%s'", c->name, f);
                c->max_ctx = (int32_t)v;
            } else if (f[0] && f[strlen(f) - 1] == '%') {
                double v = strtod(f, &end);
                if (end != f + strlen(f) - 1 || !(v > 0 && v <= 100))
                    return SL_FAIL(SL_ERR_INVALID, "--kv-pools: class '%s': bad share '%s'", c->name, f);
                c->share = v / 100.0;
                have_share = true;
            } else if (!strcmp(f, "fifo") || !strcmp(f, "lru")) {
                c->lru = !strcmp(f, "lru");
                have_policy = true;
            } else {
                return SL_FAIL(SL_ERR_INVALID, "--kv-pools: class '%s': unknown field '%s' (want <=N, P%%, fifo or lru)",
                               c->name, f);
            }
        }
        if (!have_share) return SL_FAIL(SL_ERR_INVALID, "--kv-pools: class '%s' has no share (e.g. 30%%)", c->name);
        if (!have_policy) c->lru = true;
        if (*n_out > 0) {
            const sl_kvm_pool_cfg *p = &out[*n_out - 1];
            if (p->max_ctx == 0)
                return SL_FAIL(SL_ERR_INVALID, "--kv-pools: class '%s' follows the unbounded class '%s'", c->name, p->name);
            if (c->max_ctx && c->max_ctx <= p->max_ctx)
                return SL_FAIL(SL_ERR_INVALID, "--kv-pools: class bounds must increase ('%s' <= %d after <= %d)", c->name,
                               c->max_ctx, p->max_ctx);
        }
        total += c->share;
        (*n_out)++;
    }
    if (*n_out == 0) return SL_FAIL(SL_ERR_INVALID, "--kv-pools: no classes");
    if (total > 1.0 + 1e-9 || total < 1.0 - 1e-9)
        return SL_FAIL(SL_ERR_INVALID, "--kv-pools: shares add up to %.1f%%, not 100%%", total * 100);
    out[*n_out - 1].max_ctx = 0; /* the last class takes everything longer */
    return SL_OK;
}

/* ---- heap of cached blocks --------------------------------------------- */

static void heap_swap(sl_kvm *m, pool *p, int32_t i, int32_t j) {
    int32_t a = p->heap[i], c = p->heap[j];
    p->heap[i] = c;
    p->heap[j] = a;
    m->b[c].heap_pos = i;
    m->b[a].heap_pos = j;
}

static void heap_up(sl_kvm *m, pool *p, int32_t i) {
    while (i > 0) {
        int32_t parent = (i - 1) / 2;
        if (m->b[p->heap[parent]].order <= m->b[p->heap[i]].order) break;
        heap_swap(m, p, i, parent);
        i = parent;
    }
}

static void heap_down(sl_kvm *m, pool *p, int32_t i) {
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, s = i;
        if (l < p->n_heap && m->b[p->heap[l]].order < m->b[p->heap[s]].order) s = l;
        if (r < p->n_heap && m->b[p->heap[r]].order < m->b[p->heap[s]].order) s = r;
        if (s == i) return;
        heap_swap(m, p, i, s);
        i = s;
    }
}

static void heap_push(sl_kvm *m, pool *p, int32_t id) {
    p->heap[p->n_heap] = id;
    m->b[id].heap_pos = p->n_heap++;
    heap_up(m, p, p->n_heap - 1);
}

static void heap_remove(sl_kvm *m, pool *p, int32_t id) {
    int32_t i = m->b[id].heap_pos;
    p->n_heap--;
    if (i != p->n_heap) {
        heap_swap(m, p, i, p->n_heap);
        heap_down(m, p, i);
        heap_up(m, p, i);
    }
    m->b[id].heap_pos = -1;
}

/* ---- prefix index ------------------------------------------------------- */

static uint64_t key_slot(const sl_kvm *m, const uint8_t *key) {
    uint64_t h;
    memcpy(&h, key, 8);
    return h & (m->index_cap - 1);
}

static int32_t index_find(const sl_kvm *m, const uint8_t *key) {
    for (uint64_t i = key_slot(m, key);; i = (i + 1) & (m->index_cap - 1)) {
        int32_t id = m->index[i];
        if (id < 0) return -1;
        if (!memcmp(m->b[id].key, key, SL_KVM_HASH)) return id;
    }
}

static void index_insert(sl_kvm *m, int32_t id) {
    uint64_t i = key_slot(m, m->b[id].key);
    while (m->index[i] >= 0) i = (i + 1) & (m->index_cap - 1);
    m->index[i] = id;
    m->b[id].indexed = 1;
}

static void index_remove(sl_kvm *m, int32_t id) {
    uint64_t mask = m->index_cap - 1, i = key_slot(m, m->b[id].key);
    while (m->index[i] != id) i = (i + 1) & mask;
    /* backward-shift deletion keeps probe chains intact without tombstones */
    uint64_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        int32_t o = m->index[j];
        if (o < 0) break;
        uint64_t home = key_slot(m, m->b[o].key);
        /* can o move to i? only if its home is not in (i, j] cyclically */
        bool between = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            m->index[i] = o;
            i = j;
        }
    }
    m->index[i] = -1;
    m->b[id].indexed = 0;
}

static void block_key(const sl_kvm *m, const uint8_t *parent, uint32_t adapter, const int32_t *tokens,
                      uint8_t out[SL_KVM_HASH]) {
    uint8_t buf[SL_KVM_HASH * 2 + 4 + 4 * 1024];
    size_t n = 0;
    if (parent) memcpy(buf, parent, SL_KVM_HASH);
    else memset(buf, 0, SL_KVM_HASH);
    n += SL_KVM_HASH;
    memcpy(buf + n, m->salt, SL_KVM_HASH);
    n += SL_KVM_HASH;
    for (int k = 0; k < 4; k++) buf[n++] = (uint8_t)(adapter >> (8 * k));
    for (int32_t t = 0; t < m->block_size; t++)
        for (int k = 0; k < 4; k++) buf[n++] = (uint8_t)((uint32_t)tokens[t] >> (8 * k));
    unsigned len = 0;
    EVP_Digest(buf, n, out, &len, EVP_sha256(), NULL);
}

/* ---- create ---------------------------------------------------------- */

sl_status sl_kvm_create(int32_t n_blocks, int32_t block_size, const sl_kvm_pool_cfg *pools, int n_pools,
                        const uint8_t salt[SL_KVM_HASH], bool prefix_caching, sl_kvm **out) {
    *out = NULL;
    if (n_blocks <= 0 || block_size <= 0 || block_size > 1024 || n_pools <= 0 || n_pools > SL_KVM_MAX_POOLS)
        return SL_FAIL(SL_ERR_INVALID, "KV manager: %d blocks of %d tokens in %d pools", n_blocks, block_size, n_pools);
    if (n_blocks < n_pools)
        return SL_FAIL(SL_ERR_INVALID, "KV manager: %d blocks cannot make %d pools", n_blocks, n_pools);
    sl_kvm *m = sl_calloc(1, sizeof *m);
    if (!m) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    m->n_blocks = n_blocks;
    m->block_size = block_size;
    m->prefix_caching = prefix_caching;
    memcpy(m->salt, salt, SL_KVM_HASH);
    m->n_pools = n_pools;
    m->b = sl_calloc((size_t)n_blocks, sizeof *m->b);
    m->index_cap = 16;
    while (m->index_cap < (uint64_t)n_blocks * 2) m->index_cap <<= 1;
    m->index = sl_alloc_array(m->index_cap, sizeof(int32_t));
    if (!m->b || !m->index) goto nomem;
    memset(m->index, 0xff, m->index_cap * sizeof(int32_t));
    int32_t first = 0;
    for (int i = 0; i < n_pools; i++) {
        pool *p = &m->pools[i];
        p->cfg = pools[i];
        int32_t cnt = i == n_pools - 1 ? n_blocks - first : (int32_t)((double)n_blocks * pools[i].share + 0.5);
        if (cnt < 1) cnt = 1;
        if (cnt > n_blocks - first - (n_pools - 1 - i)) cnt = n_blocks - first - (n_pools - 1 - i);
        p->first = first;
        p->count = cnt;
        first += cnt;
        p->free_ids = sl_alloc_array((size_t)cnt, sizeof(int32_t));
        p->heap = sl_alloc_array((size_t)cnt, sizeof(int32_t));
        if (!p->free_ids || !p->heap) goto nomem;
        for (int32_t k = 0; k < cnt; k++) {
            int32_t id = p->first + cnt - 1 - k;
            p->free_ids[k] = id;
            m->b[id].pool = (int16_t)i;
            m->b[id].heap_pos = -1;
        }
        p->n_free = cnt;
    }
    *out = m;
    return SL_OK;
nomem:
    sl_kvm_destroy(m);
    return SL_FAIL(SL_ERR_NOMEM, "out of memory for the KV manager (%d blocks)", n_blocks);
}

void sl_kvm_destroy(sl_kvm *m) {
    if (!m) return;
    for (int i = 0; i < m->n_pools; i++) {
        sl_free(m->pools[i].free_ids);
        sl_free(m->pools[i].heap);
    }
    sl_free(m->b);
    sl_free(m->index);
    sl_free(m);
}

int sl_kvm_n_pools(const sl_kvm *m) { return m->n_pools; }
const sl_kvm_pool_cfg *sl_kvm_pool(const sl_kvm *m, int i) { return &m->pools[i].cfg; }
int32_t sl_kvm_pool_capacity(const sl_kvm *m, int i) { return m->pools[i].count; }
uint64_t sl_kvm_hits(const sl_kvm *m) { return m->hits; }
uint64_t sl_kvm_queries(const sl_kvm *m) { return m->queries; }

sl_kvm_stats sl_kvm_pool_stats(const sl_kvm *m, int i) {
    const pool *p = &m->pools[i];
    sl_kvm_stats s = {.total = p->count, .used = p->n_used, .free = p->n_free, .cached = p->n_heap};
    return s;
}

int sl_kvm_pool_for(const sl_kvm *m, int32_t ctx) {
    for (int i = 0; i < m->n_pools; i++)
        if (m->pools[i].cfg.max_ctx == 0 || ctx <= m->pools[i].cfg.max_ctx) return i;
    return m->n_pools - 1;
}

int32_t sl_kvm_available(const sl_kvm *m, int i) { return m->pools[i].n_free + m->pools[i].n_heap; }

/* ---- sequences ---------------------------------------------------------- */

void sl_kvm_seq_salt(sl_kvm_seq *s, const uint8_t salt[SL_KVM_HASH]) {
    memcpy(s->salt, salt, SL_KVM_HASH);
    s->salted = true;
}

void sl_kvm_seq_init(sl_kvm_seq *s, int pool_idx, uint32_t adapter) {
    memset(s, 0, sizeof *s);
    s->pool = pool_idx;
    s->adapter = adapter;
}

static sl_status table_push(sl_kvm_seq *s, int32_t id) {
    sl_kv_seq *t = &s->table;
    if (t->n_blocks == t->cap) {
        int32_t cap = t->cap ? t->cap * 2 : 16;
        int32_t *nb = sl_realloc(t->blocks, (size_t)cap * sizeof(int32_t));
        if (!nb) return SL_FAIL(SL_ERR_NOMEM, "out of memory for a block table");
        t->blocks = nb;
        t->cap = cap;
    }
    t->blocks[t->n_blocks++] = id;
    return SL_OK;
}

static void use_block(sl_kvm *m, int32_t id) {
    blk *b = &m->b[id];
    pool *p = &m->pools[b->pool];
    if (b->state == B_CACHED) {
        heap_remove(m, p, id);
        b->state = B_USED;
        p->n_used++;
    }
    b->ref++;
}

int32_t sl_kvm_acquire_prefix(sl_kvm *m, sl_kvm_seq *s, const int32_t *tokens, int32_t n) {
    if (!m->prefix_caching || s->table.n_blocks != 0 || n <= 1) return 0;
    const int32_t bs = m->block_size, n_full = (n - 1) / bs;
    uint8_t key[SL_KVM_HASH];
    int32_t got = 0;
    for (int32_t i = 0; i < n_full; i++) {
        m->queries++;
        block_key(m, i ? s->last_key : s->salted ? s->salt : NULL, s->adapter, tokens + (int64_t)i * bs, key);
        int32_t id = index_find(m, key);
        if (id < 0) break;
        if (table_push(s, id) != SL_OK) break;
        use_block(m, id);
        memcpy(s->last_key, key, SL_KVM_HASH);
        s->n_hashed = ++got;
        m->hits++;
    }
    /* count the remaining full blocks as looked up too (they missed) */
    if (got < n_full) m->queries += (uint64_t)(n_full - got - 1);
    return got * bs;
}

static int32_t take_block(sl_kvm *m, pool *p) {
    if (p->n_free > 0) return p->free_ids[--p->n_free];
    int32_t id = p->heap[0];
    heap_remove(m, p, id);
    index_remove(m, id);
    m->b[id].order = 0;
    return id;
}

sl_status sl_kvm_reserve(sl_kvm *m, sl_kvm_seq *s, int32_t n_pos) {
    const int32_t need = (n_pos + m->block_size - 1) / m->block_size - s->table.n_blocks;
    if (need <= 0) return SL_OK;
    pool *p = &m->pools[s->pool];
    if (need > p->n_free + p->n_heap)
        return SL_FAIL(SL_ERR_FULL, "KV pool '%s' full: %d more blocks needed, %d available", p->cfg.name, need,
                       p->n_free + p->n_heap);
    /* grow the table first so a failure there takes nothing */
    if (s->table.n_blocks + need > s->table.cap) {
        int32_t cap = s->table.cap ? s->table.cap : 16;
        while (cap < s->table.n_blocks + need) cap *= 2;
        int32_t *nb = sl_realloc(s->table.blocks, (size_t)cap * sizeof(int32_t));
        if (!nb) return SL_FAIL(SL_ERR_NOMEM, "out of memory for a block table");
        s->table.blocks = nb;
        s->table.cap = cap;
    }
    for (int32_t k = 0; k < need; k++) {
        int32_t id = take_block(m, p);
        blk *b = &m->b[id];
        b->state = B_USED;
        b->ref = 1;
        p->n_used++;
        s->table.blocks[s->table.n_blocks++] = id;
    }
    return SL_OK;
}

void sl_kvm_commit(sl_kvm *m, sl_kvm_seq *s, const int32_t *tokens, int32_t n_computed) {
    if (!m->prefix_caching) return;
    const int32_t bs = m->block_size;
    int32_t full = n_computed / bs;
    if (full > s->table.n_blocks) full = s->table.n_blocks;
    uint8_t key[SL_KVM_HASH];
    for (int32_t i = s->n_hashed; i < full; i++) {
        block_key(m, i ? s->last_key : s->salted ? s->salt : NULL, s->adapter, tokens + (int64_t)i * bs, key);
        int32_t id = s->table.blocks[i];
        blk *b = &m->b[id];
        if (!b->indexed && index_find(m, key) < 0) {
            memcpy(b->key, key, SL_KVM_HASH);
            index_insert(m, id);
        }
        memcpy(s->last_key, key, SL_KVM_HASH);
        s->n_hashed = i + 1;
    }
}

void sl_kvm_release(sl_kvm *m, sl_kvm_seq *s) {
    /* leaf first: the deepest block gets the earliest eviction stamp */
    for (int32_t i = s->table.n_blocks - 1; i >= 0; i--) {
        int32_t id = s->table.blocks[i];
        blk *b = &m->b[id];
        pool *p = &m->pools[b->pool];
        if (--b->ref > 0) continue;
        p->n_used--;
        if (b->indexed) {
            if (p->cfg.lru || b->order == 0) b->order = ++m->clock;
            b->state = B_CACHED;
            heap_push(m, p, id);
        } else {
            b->state = B_FREE;
            b->order = 0;
            p->free_ids[p->n_free++] = id;
        }
    }
    s->table.n_blocks = 0;
    s->n_hashed = 0;
}

void sl_kvm_seq_deinit(sl_kvm *m, sl_kvm_seq *s) {
    sl_kvm_release(m, s);
    sl_free(s->table.blocks);
    s->table.blocks = NULL;
    s->table.cap = 0;
}

int32_t sl_kvm_reset_cache(sl_kvm *m) {
    int32_t freed = 0;
    for (int i = 0; i < m->n_pools; i++) {
        pool *p = &m->pools[i];
        while (p->n_heap > 0) {
            const int32_t id = p->heap[0];
            heap_remove(m, p, id);
            index_remove(m, id);
            m->b[id].state = B_FREE;
            m->b[id].order = 0;
            p->free_ids[p->n_free++] = id;
            freed++;
        }
    }
    for (int32_t id = 0; id < m->n_blocks; id++) /* (used blocks: out of the index, free when released) */
        if (m->b[id].indexed) index_remove(m, id);
    return freed;
}

bool sl_kvm_check(const sl_kvm *m) {
    int32_t used[SL_KVM_MAX_POOLS] = {0}, cached[SL_KVM_MAX_POOLS] = {0}, fr[SL_KVM_MAX_POOLS] = {0};
    int64_t n_indexed = 0;
    for (int32_t id = 0; id < m->n_blocks; id++) {
        const blk *b = &m->b[id];
        const pool *p = &m->pools[b->pool];
        if (id < p->first || id >= p->first + p->count) {
            SL_FAIL(SL_ERR_INVALID, "block %d is outside its pool %d", id, b->pool);
            return false;
        }
        if (b->indexed) {
            n_indexed++;
            if (index_find(m, b->key) != id) {
                SL_FAIL(SL_ERR_INVALID, "block %d is marked indexed but the index does not find it", id);
                return false;
            }
        }
        switch (b->state) {
        case B_USED:
            if (b->ref <= 0) { SL_FAIL(SL_ERR_INVALID, "used block %d has ref %d", id, b->ref); return false; }
            used[b->pool]++;
            break;
        case B_CACHED:
            if (b->ref != 0 || !b->indexed || b->heap_pos < 0 || p->heap[b->heap_pos] != id) {
                SL_FAIL(SL_ERR_INVALID, "cached block %d: ref %d, indexed %d, heap slot %d", id, b->ref, b->indexed,
                        b->heap_pos);
                return false;
            }
            cached[b->pool]++;
            break;
        default:
            if (b->ref != 0 || b->indexed) {
                SL_FAIL(SL_ERR_INVALID, "free block %d: ref %d, indexed %d", id, b->ref, b->indexed);
                return false;
            }
            fr[b->pool]++;
        }
    }
    int64_t in_index = 0;
    for (uint64_t i = 0; i < m->index_cap; i++) in_index += m->index[i] >= 0;
    if (in_index != n_indexed) {
        SL_FAIL(SL_ERR_INVALID, "index holds %lld blocks, %lld are marked indexed", (long long)in_index,
                (long long)n_indexed);
        return false;
    }
    for (int i = 0; i < m->n_pools; i++) {
        const pool *p = &m->pools[i];
        if (used[i] != p->n_used || cached[i] != p->n_heap || fr[i] != p->n_free ||
            used[i] + cached[i] + fr[i] != p->count) {
            SL_FAIL(SL_ERR_INVALID, "pool %d counts: used %d/%d cached %d/%d free %d/%d of %d", i, used[i], p->n_used,
                    cached[i], p->n_heap, fr[i], p->n_free, p->count);
            return false;
        }
        for (int32_t k = 1; k < p->n_heap; k++)
            if (m->b[p->heap[(k - 1) / 2]].order > m->b[p->heap[k]].order) {
                SL_FAIL(SL_ERR_INVALID, "pool %d heap order broken at %d", i, k);
                return false;
            }
    }
    return true;
}

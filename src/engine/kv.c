/*
 * kv.c — block pool and per-sequence block tables (see kv.h).
 */
#include "kv.h"

#include "core/alloc.h"
#include "core/status.h"

#include <inttypes.h>

sl_status sl_kv_create(int32_t n_layer, int32_t kv_dim, int32_t block_size, int32_t n_blocks, sl_kv_cache **out) {
    *out = NULL;
    if (n_layer <= 0 || kv_dim <= 0 || block_size <= 0 || n_blocks <= 0)
        return SL_FAIL(SL_ERR_INVALID, "KV cache: invalid geometry (layers %d, kv_dim %d, block %d, blocks %d)", n_layer,
                       kv_dim, block_size, n_blocks);
    sl_kv_cache *kv = sl_calloc(1, sizeof *kv);
    if (!kv) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    kv->n_layer = n_layer;
    kv->kv_dim = kv_dim;
    kv->block_size = block_size;
    kv->n_blocks = n_blocks;
    uint64_t n = (uint64_t)n_layer * (uint64_t)n_blocks * (uint64_t)block_size * (uint64_t)kv_dim;
    if (n > SIZE_MAX / sizeof(float)) goto nomem;
    kv->k = sl_malloc_aligned(n * sizeof(float));
    kv->v = sl_malloc_aligned(n * sizeof(float));
    kv->free_ids = sl_alloc_array((size_t)n_blocks, sizeof(int32_t));
    if (!kv->k || !kv->v || !kv->free_ids) goto nomem;
    for (int32_t i = 0; i < n_blocks; i++) kv->free_ids[i] = n_blocks - 1 - i;
    kv->n_free = n_blocks;
    *out = kv;
    return SL_OK;
nomem:
    sl_kv_destroy(kv);
    return SL_FAIL(SL_ERR_NOMEM, "out of memory for a KV cache of %d blocks x %d tokens x %d layers x %d floats",
                   n_blocks, block_size, n_layer, kv_dim);
}

void sl_kv_destroy(sl_kv_cache *kv) {
    if (!kv) return;
    sl_free_aligned(kv->k);
    sl_free_aligned(kv->v);
    sl_free(kv->free_ids);
    sl_free(kv);
}

sl_status sl_kv_seq_reserve(sl_kv_cache *kv, sl_kv_seq *s, int32_t n_pos) {
    int32_t need = (n_pos + kv->block_size - 1) / kv->block_size;
    if (need <= s->n_blocks) return SL_OK;
    if (need - s->n_blocks > kv->n_free)
        return SL_FAIL(SL_ERR_FULL, "KV cache full: %d more blocks needed, %d free", need - s->n_blocks, kv->n_free);
    if (need > s->cap) {
        int32_t cap = s->cap ? s->cap : 8;
        while (cap < need) cap *= 2;
        int32_t *b = sl_realloc(s->blocks, (size_t)cap * sizeof(int32_t));
        if (!b) return SL_FAIL(SL_ERR_NOMEM, "out of memory for a block table of %d blocks", cap);
        s->blocks = b;
        s->cap = cap;
    }
    while (s->n_blocks < need) s->blocks[s->n_blocks++] = kv->free_ids[--kv->n_free];
    return SL_OK;
}

void sl_kv_seq_release(sl_kv_cache *kv, sl_kv_seq *s) {
    while (s->n_blocks > 0) kv->free_ids[kv->n_free++] = s->blocks[--s->n_blocks];
}

void sl_kv_seq_deinit(sl_kv_cache *kv, sl_kv_seq *s) {
    sl_kv_seq_release(kv, s);
    sl_free(s->blocks);
    s->blocks = NULL;
    s->cap = 0;
}

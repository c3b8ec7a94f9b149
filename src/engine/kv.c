/*
 * kv.c — block pool and per-sequence block tables (see kv.h). The storage is
 * two byte arrays (K and V) of n_layer × n_blocks × block_size rows; the
 * element type only changes the row size.
 */
#include "kv.h"

#include "core/alloc.h"
#include "core/status.h"

#include <inttypes.h>
#include <string.h>
#include <strings.h>

size_t sl_kv_bytes_per_block(sl_type type, int32_t n_layer, int32_t kv_dim, int32_t block_size) {
    return 2 * (size_t)n_layer * (size_t)block_size * sl_type_row_size(type, kv_dim);
}

bool sl_kv_type_from_name(const char *name, sl_type *out) {
    if (!strcasecmp(name, "f32")) *out = SL_TYPE_F32;
    else if (!strcasecmp(name, "f16")) *out = SL_TYPE_F16;
    else if (!strcasecmp(name, "q8_0")) *out = SL_TYPE_Q8_0;
    else return false;
    return true;
}

sl_status sl_kv_create(int32_t n_layer, int32_t kv_dim, int32_t block_size, int32_t n_blocks, sl_kv_cache **out) {
    return sl_kv_create_typed(n_layer, kv_dim, block_size, n_blocks, SL_TYPE_F32, out);
}

sl_status sl_kv_create_typed(int32_t n_layer, int32_t kv_dim, int32_t block_size, int32_t n_blocks, sl_type type,
                             sl_kv_cache **out) {
    *out = NULL;
    if (n_layer <= 0 || kv_dim <= 0 || block_size <= 0 || n_blocks <= 0)
        return SL_FAIL(SL_ERR_INVALID, "KV cache: invalid geometry (layers %d, kv_dim %d, block %d, blocks %d)", n_layer,
                       kv_dim, block_size, n_blocks);
    if (type != SL_TYPE_F32 && type != SL_TYPE_F16 && type != SL_TYPE_Q8_0)
        return SL_FAIL(SL_ERR_UNSUPPORTED, "KV cache: element type %s is not supported (f32, f16, q8_0)",
                       sl_type_name(type));
    if (type == SL_TYPE_Q8_0 && kv_dim % 32 != 0)
        return SL_FAIL(SL_ERR_UNSUPPORTED, "KV cache: q8_0 needs kv_dim to be a multiple of 32 (kv_dim %d)", kv_dim);
    sl_kv_cache *kv = sl_calloc(1, sizeof *kv);
    if (!kv) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    kv->n_layer = n_layer;
    kv->kv_dim = kv_dim;
    kv->block_size = block_size;
    kv->n_blocks = n_blocks;
    kv->type = type;
    kv->slot_bytes = sl_type_row_size(type, kv_dim);
    kv->block_bytes = kv->slot_bytes * (size_t)block_size;
    uint64_t n = (uint64_t)n_layer * (uint64_t)n_blocks * (uint64_t)kv->block_bytes;
    if (n > SIZE_MAX / 2) goto nomem;
    kv->k = sl_malloc_aligned(n);
    kv->v = sl_malloc_aligned(n);
    kv->free_ids = sl_alloc_array((size_t)n_blocks, sizeof(int32_t));
    if (!kv->k || !kv->v || !kv->free_ids) goto nomem;
    for (int32_t i = 0; i < n_blocks; i++) kv->free_ids[i] = n_blocks - 1 - i;
    kv->n_free = n_blocks;
    *out = kv;
    return SL_OK;
nomem:
    sl_kv_destroy(kv);
    return SL_FAIL(SL_ERR_NOMEM, "out of memory for a KV cache of %d blocks x %d tokens x %d layers x %d %s values",
                   n_blocks, block_size, n_layer, kv_dim, sl_type_name(type));
}

void sl_kv_prefault(sl_kv_cache *kv) {
    const size_t n = (size_t)kv->n_layer * (size_t)kv->n_blocks * kv->block_bytes;
    memset(kv->k, 0, n);
    memset(kv->v, 0, n);
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

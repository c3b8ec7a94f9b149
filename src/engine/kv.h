/*
 * kv.h — paged KV cache: fixed-size blocks of `block_size` token slots in
 * one pool, and a block table per sequence.
 *
 * Storage: K and V are (layer, block, slot, kv_dim) float arrays, so a
 * sequence's keys for a layer are found through its block table:
 * position p lives in block table[p / block_size], slot p % block_size.
 * Blocks come from a free stack; a sequence grows by whole blocks. Only the
 * thread that runs the scheduler touches the allocator; the forward pass
 * only reads and writes slots of blocks its sequences already own.
 */
#ifndef SL_ENGINE_KV_H
#define SL_ENGINE_KV_H

#include "shardlm.h"

#include <stdint.h>

typedef struct sl_kv_cache {
    int32_t n_layer;
    int32_t kv_dim;      /* n_head_kv * head_dim */
    int32_t block_size;  /* token slots per block */
    int32_t n_blocks;
    float *k;            /* (n_layer, n_blocks, block_size, kv_dim) */
    float *v;            /* (n_layer, n_blocks, block_size, kv_dim) */
    int32_t *free_ids;   /* stack of free block ids */
    int32_t n_free;
} sl_kv_cache;

/* A sequence's block table. */
typedef struct sl_kv_seq {
    int32_t *blocks;
    int32_t n_blocks;
    int32_t cap;
} sl_kv_seq;

sl_status sl_kv_create(int32_t n_layer, int32_t kv_dim, int32_t block_size, int32_t n_blocks, sl_kv_cache **out);
void sl_kv_destroy(sl_kv_cache *kv);

/* Make the sequence own enough blocks for positions [0, n_pos). SL_ERR_FULL
 * when the pool has too few free blocks (nothing is taken then). */
sl_status sl_kv_seq_reserve(sl_kv_cache *kv, sl_kv_seq *s, int32_t n_pos);
/* Return all of the sequence's blocks to the pool. */
void sl_kv_seq_release(sl_kv_cache *kv, sl_kv_seq *s);
void sl_kv_seq_deinit(sl_kv_cache *kv, sl_kv_seq *s);

static inline int32_t sl_kv_seq_capacity(const sl_kv_cache *kv, const sl_kv_seq *s) {
    return s->n_blocks * kv->block_size;
}

static inline float *sl_kv_k_at(const sl_kv_cache *kv, int32_t layer, const sl_kv_seq *s, int32_t pos) {
    int64_t b = s->blocks[pos / kv->block_size];
    return kv->k + (((int64_t)layer * kv->n_blocks + b) * kv->block_size + pos % kv->block_size) * kv->kv_dim;
}

static inline float *sl_kv_v_at(const sl_kv_cache *kv, int32_t layer, const sl_kv_seq *s, int32_t pos) {
    int64_t b = s->blocks[pos / kv->block_size];
    return kv->v + (((int64_t)layer * kv->n_blocks + b) * kv->block_size + pos % kv->block_size) * kv->kv_dim;
}

#endif

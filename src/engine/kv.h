/*
 * kv.h — paged KV cache: fixed-size blocks of `block_size` token slots in
 * one pool, and a block table per sequence.
 *
 * Storage: K and V are (layer, block, slot) arrays of rows of kv_dim
 * elements of the cache's type (F32 — the default —, F16, or Q8_0 blocks of
 * 32, which need kv_dim and the head size to be multiples of 32), so a
 * sequence's keys for a layer are found through its block table:
 * position p lives in block table[p / block_size], slot p % block_size.
 * Blocks come from a free stack; a sequence grows by whole blocks. Only the
 * thread that runs the scheduler touches the allocator; the forward pass
 * only reads and writes slots of blocks its sequences already own.
 */
#ifndef SL_ENGINE_KV_H
#define SL_ENGINE_KV_H

#include "shardlm.h"
#include "core/types.h"

#include <stddef.h>
#include <stdint.h>

typedef struct sl_kv_cache {
    int32_t n_layer;
    int32_t kv_dim;      /* n_head_kv * head_dim */
    int32_t block_size;  /* token slots per block */
    int32_t n_blocks;
    sl_type type;        /* element type: F32, F16 or Q8_0 */
    size_t slot_bytes;   /* one token's K (or V) of one layer, all heads: sl_type_row_size(type, kv_dim) */
    size_t block_bytes;  /* slot_bytes * block_size */
    uint8_t *k;          /* (n_layer, n_blocks) blocks of block_bytes, head-major (sl_kv_row_offset) */
    uint8_t *v;          /* the same for V */
    int32_t *free_ids;   /* stack of free block ids */
    int32_t n_free;
} sl_kv_cache;

/* A sequence's block table. */
typedef struct sl_kv_seq {
    int32_t *blocks;
    int32_t n_blocks;
    int32_t cap;
} sl_kv_seq;

/* An F32 cache. */
sl_status sl_kv_create(int32_t n_layer, int32_t kv_dim, int32_t block_size, int32_t n_blocks, sl_kv_cache **out);
/* A cache of element type `type` (F32, F16, Q8_0; anything else is SL_ERR_UNSUPPORTED). */
sl_status sl_kv_create_typed(int32_t n_layer, int32_t kv_dim, int32_t block_size, int32_t n_blocks, sl_type type,
                             sl_kv_cache **out);
/* Bytes one block takes, K and V of every layer (for sizing a cache from a memory budget). */
size_t sl_kv_bytes_per_block(sl_type type, int32_t n_layer, int32_t kv_dim, int32_t block_size);
/* Parse "f32" / "f16" / "q8_0" (case-insensitive); false when not one of them. */
bool sl_kv_type_from_name(const char *name, sl_type *out);
void sl_kv_destroy(sl_kv_cache *kv);
/* Write every page of the pool once, so the memory is the process's from the
 * start: a server that cannot have its --kv-mem fails when it starts, not
 * in the middle of a request, and no step pays the first touch of a page
 * (llama.cpp clears its KV buffer when it creates it). */
void sl_kv_prefault(sl_kv_cache *kv);

/* Make the sequence own enough blocks for positions [0, n_pos). SL_ERR_FULL
 * when the pool has too few free blocks (nothing is taken then). */
sl_status sl_kv_seq_reserve(sl_kv_cache *kv, sl_kv_seq *s, int32_t n_pos);
/* Return all of the sequence's blocks to the pool. */
void sl_kv_seq_release(sl_kv_cache *kv, sl_kv_seq *s);
void sl_kv_seq_deinit(sl_kv_cache *kv, sl_kv_seq *s);

static inline int32_t sl_kv_seq_capacity(const sl_kv_cache *kv, const sl_kv_seq *s) {
    return s->n_blocks * kv->block_size;
}

/* Byte offset of (layer, block, slot 0) in k or v. */
static inline size_t sl_kv_block_offset(const sl_kv_cache *kv, int32_t layer, int32_t block) {
    return ((size_t)layer * (size_t)kv->n_blocks + (size_t)block) * kv->block_bytes;
}

/* A block holds its positions head by head: the block_size rows of KV head 0 (head_bytes each, the row
 * size of head_dim elements; the caller divides slot_bytes into heads), then those of head 1, and so on.
 * One head's attention then reads its positions contiguously, 2 KiB per 16 F16 rows of 64 elements, where
 * a block of whole slots gave it 128 bytes of every 1 KiB: from memory, 34 against 53-58 ns per position
 * and KV head of a 16-sequence decode (4 query heads each), the same in cache. Byte offset in k or v of
 * head `head`'s row of position pos of a sequence. */
static inline size_t sl_kv_row_offset(const sl_kv_cache *kv, int32_t layer, const sl_kv_seq *s, int32_t pos,
                                      int32_t head, size_t head_bytes) {
    return sl_kv_block_offset(kv, layer, s->blocks[pos / kv->block_size]) +
           ((size_t)head * (size_t)kv->block_size + (size_t)(pos % kv->block_size)) * head_bytes;
}

#endif

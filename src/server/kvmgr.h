/*
 * kvmgr.h — KV block manager: who owns which block of the paged KV cache,
 * prefix caching, and pools by length class.
 *
 * Blocks are split into pools (length classes). A sequence is assigned one
 * pool (by the longest context it may reach) and draws new blocks only from
 * it; a pool evicts only its own cached blocks (FIFO: by the time a block
 * entered the cache; LRU: by its last use), so one class can never evict
 * another's cache.
 *
 * Prefix caching: a full block's key is SHA-256(parent key ‖ salt ‖ adapter
 * id ‖ the block's token ids), where the salt covers the model identity and
 * the KV element type, and the first block's "parent key" is zeros or the
 * sequence's own cache salt (vLLM's cache_salt: tenants that do not share). Keys of computed full blocks go into a prefix index;
 * a new sequence whose leading blocks match reuses them (refcount + 1) and
 * skips their computation. A block whose refcount drops to 0 stays cached
 * (evictable) until its pool needs the room.
 *
 * Invariants (checked by sl_kvm_check): every block is in exactly one state
 * — free (ref 0, not indexed), cached (ref 0, indexed, in its pool's
 * eviction heap) or used (ref > 0); pool counters match; the index holds
 * exactly the hashed blocks. Only the scheduler thread calls this module.
 */
#ifndef SL_SERVER_KVMGR_H
#define SL_SERVER_KVMGR_H

#include "shardlm.h"
#include "engine/kv.h"

#include <stdbool.h>
#include <stdint.h>

#define SL_KVM_MAX_POOLS 8
#define SL_KVM_HASH 32

typedef struct sl_kvm_pool_cfg {
    char name[16];
    int32_t max_ctx;  /* sequences whose context may reach at most this many tokens; 0 = unbounded */
    double share;     /* fraction of all blocks */
    bool lru;         /* eviction: LRU (true) or FIFO (false) */
} sl_kvm_pool_cfg;

/* Parse "short:<=2048:30%:fifo,long:70%:lru" (the last class may omit the bound). */
sl_status sl_kvm_parse_pools(const char *spec, sl_kvm_pool_cfg *out, int *n_out);

typedef struct sl_kvm_stats {
    int32_t total, used, free, cached; /* blocks */
} sl_kvm_stats;

/* A sequence's view: its block table plus prefix-cache bookkeeping. */
typedef struct sl_kvm_seq {
    sl_kv_seq table;
    int pool;
    int32_t n_hashed;                 /* leading blocks whose keys are known */
    uint8_t last_key[SL_KVM_HASH];    /* key of block n_hashed - 1 */
    uint32_t adapter;
    bool salted;                      /* vLLM's cache_salt: the first block's key starts from salt, not zeros */
    uint8_t salt[SL_KVM_HASH];
} sl_kvm_seq;

typedef struct sl_kvm sl_kvm;

sl_status sl_kvm_create(int32_t n_blocks, int32_t block_size, const sl_kvm_pool_cfg *pools, int n_pools,
                        const uint8_t salt[SL_KVM_HASH], bool prefix_caching, sl_kvm **out);
void sl_kvm_destroy(sl_kvm *m);

int sl_kvm_n_pools(const sl_kvm *m);
const sl_kvm_pool_cfg *sl_kvm_pool(const sl_kvm *m, int i);
sl_kvm_stats sl_kvm_pool_stats(const sl_kvm *m, int pool);
int32_t sl_kvm_pool_capacity(const sl_kvm *m, int pool); /* blocks */
/* The pool for a sequence that may reach ctx tokens. */
int sl_kvm_pool_for(const sl_kvm *m, int32_t ctx);
uint64_t sl_kvm_hits(const sl_kvm *m);    /* blocks found in the prefix index */
uint64_t sl_kvm_queries(const sl_kvm *m); /* full prompt blocks looked up */

void sl_kvm_seq_init(sl_kvm_seq *s, int pool, uint32_t adapter);
/* vLLM's cache_salt: s's blocks are keyed from salt (a hash of the tenant's string), so they are shared only with
 * sequences of the same salt (call before the first lookup). */
void sl_kvm_seq_salt(sl_kvm_seq *s, const uint8_t salt[SL_KVM_HASH]);
/* Take the cached leading blocks of tokens[0..n) (at most n - 1 tokens'
 * worth, so at least one token is left to compute). Returns the number of
 * tokens covered. */
int32_t sl_kvm_acquire_prefix(sl_kvm *m, sl_kvm_seq *s, const int32_t *tokens, int32_t n);
/* Own blocks for positions [0, n_pos); SL_ERR_FULL (nothing taken) when
 * the pool lacks room even after evicting its cached blocks. */
sl_status sl_kvm_reserve(sl_kvm *m, sl_kvm_seq *s, int32_t n_pos);
/* Blocks the pool could still hand out (free + cached). */
int32_t sl_kvm_available(const sl_kvm *m, int pool);
/* Tokens [0, n_computed) now hold valid K/V: index the newly full blocks. */
void sl_kvm_commit(sl_kvm *m, sl_kvm_seq *s, const int32_t *tokens, int32_t n_computed);
/* Give back all blocks (cached ones stay in the index). */
void sl_kvm_release(sl_kvm *m, sl_kvm_seq *s);
void sl_kvm_seq_deinit(sl_kvm *m, sl_kvm_seq *s);

/* Verify the invariants; returns false and records a message when broken. */
bool sl_kvm_check(const sl_kvm *m);
/* Forget the prefix cache (vLLM's reset_prefix_cache): every cached block is freed and no block stays in the
 * index, so no later prompt reuses what was computed before (blocks in use stay with their sequences, and go
 * free when released). Returns the cached blocks freed. */
int32_t sl_kvm_reset_cache(sl_kvm *m);

#endif

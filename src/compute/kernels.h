/*
 * kernels.h — the fast compute kernels and their run-time dispatch.
 *
 * One table per instruction set (scalar, AVX2, AVX-512 VNNI, AMX), each indexed
 * by weight type; sl_kernels_best() picks the best table the CPU supports
 * once, from cpuid. The scalar table is the fallback and the test oracle.
 *
 * Matmuls take activations quantized on the fly into the weight type's
 * partner format (sl_act): F32 for F32/F16/BF16 weights, Q8_0 blocks for
 * Q4_0/Q8_0 and Q8_K blocks for the K-quants, so quantized inner products
 * run in integers.
 *
 * Invariant (batch invariance): every output y[t][r] = dot(W[r], a[t]) is
 * computed by the same sequence of float operations whatever the tile, the
 * batch size, the thread or the instruction set — the integer parts are
 * exact, and the float parts follow one canonical order:
 *   float weights (F32, F16, BF16): 16 lanes, lane l accumulates
 *     fma(w[k], x[k], acc[l]) for k = l, l+16, ... in order; then
 *     acc[i] += acc[i+s] for s = 8, 4, 2, 1; the result is acc[0].
 *   Q4_0, Q8_0 (blocks of 32): acc = 0; for each block b in order:
 *     acc = fma(dw_b * da_b, (float)isum_b, acc), isum_b the exact integer
 *     dot of the block's quants (Q4_0 quants are q - 8).
 *   Q4_K, Q5_K (super-blocks of 256): acc = fma(d*da, (float)Σ sc_j·isum_j, acc);
 *     acc = fma(-(dmin*da), (float)Σ m_j·asum_j, acc), per super-block in order.
 *   Q6_K: acc = fma(d*da, (float)Σ sc_j·(isum_j - 32·asum_j), acc).
 * So a sequence's logits do not depend on what it is batched with, and the
 * SIMD kernels match the scalar ones bit for bit.
 */
#ifndef SL_COMPUTE_KERNELS_H
#define SL_COMPUTE_KERNELS_H

#include "core/types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Activation formats (in memory only, never in a file). */
typedef enum sl_act {
    SL_ACT_F32 = 0, /* K floats */
    SL_ACT_Q8_0,    /* K/32 blocks: int8 qs[K] | float d[K/32] | int32 c8[K/32] | int32 c128[K/32],
                     * c8 = -8 * (sum of the block's quants), c128 = -128 * (sum): the corrections of
                     * kernels that multiply unsigned q+8 (Q4_0) or q+128 (Q8_0) weights */
    SL_ACT_Q8_K,    /* K/256 block_q8_K */
    SL_ACT_COUNT,
} sl_act;

/* c = -k * s for block sum s of an SL_ACT_Q8_0 row (k = 8: c8, 128: c128),
 * wrapping (defined) where a non-finite input made the sum huge. */
static inline int32_t sl_act_q8_0_corr(int32_t s, uint32_t k) { return (int32_t)(0u - k * (uint32_t)s); }

/* The activation format that weight type t multiplies with. */
sl_act sl_act_of(sl_type t);
/* Bytes of one activation row of K elements (a multiple of 64). */
size_t sl_act_row_bytes(sl_act a, int64_t K);
/* Quantize n_tok rows of K floats (x, ldx floats apart) into act rows of
 * sl_act_row_bytes(a, K) bytes. Q8_0: d = amax/127 rounded to fp16,
 * q = round-half-even(x * 127/amax); Q8_K: ggml's reference quantizer. */
void sl_act_quantize(sl_act a, const float *x, int64_t ldx, int64_t n_tok, int64_t K, void *out);

/* Token groups of activation rows, for the token-group kernels (AMX tiles,
 * VNNI): tokens 16g..16g+15 regrouped block by block, so that every quant of
 * the group is one base pointer plus a constant, where the rows as quantized
 * put them a row apart. Group g takes sl_act_group_bytes(a, K) bytes from
 * groups + g * that; slots of tokens past the last are not written.
 * SL_ACT_Q8_0 rows (nb = K/32): a block's quants for the group are one
 * contiguous A tile (16 rows of 32 bytes), its 16 scales one cache line and
 * its 16 corrections of each kind another:
 *   byte [512 b + 32 j + i]             = qs[32 b + i] of token 16g + j
 *   float [(nb · 512 + 64 b) / 4 + j]   = d[b] of token 16g + j
 *   int32 [(nb · 576 + 64 b) / 4 + j]   = c8[b] of token 16g + j
 *   int32 [(nb · 640 + 64 b) / 4 + j]   = c128[b] of token 16g + j
 * (b < nb, j < 16, i < 32). SL_ACT_Q8_K rows (nb = K/256): a record of
 * SL_KGROUP_BYTES per super-block s, at SL_KGROUP_BYTES · s, with the terms
 * the K-quant kernels take per token ready to broadcast:
 *   byte [256 j + i]                = qs[i] of token 16g + j's block s (i < 256)
 *   float [(SL_KGROUP_D + 4 j) / 4]  = its d
 *   int32 [(SL_KGROUP_MIN + 64 i + 4 j) / 4] = (bsums[4i] + bsums[4i+1]) & 0xFFFF
 *                                     | (bsums[4i+2] + bsums[4i+3]) << 16 (i < 4: the
 *                                     int16 pairs Q4_K/Q5_K mins multiply)
 *   int32 [(SL_KGROUP_Q6 + 64 i + 4 j) / 4] = -32 · bsums[i] (i < 16: Q6_K's -32 offset) */
#define SL_KGROUP_D 4096
#define SL_KGROUP_MIN (SL_KGROUP_D + 64)
#define SL_KGROUP_Q6 (SL_KGROUP_MIN + 4 * 64)
#define SL_KGROUP_BYTES (SL_KGROUP_Q6 + 16 * 64)
size_t sl_act_group_bytes(sl_act a, int64_t K);
/* Copy tokens [t0, t1) of the rows of format a (Q8_0 or Q8_K) at act (as
 * bytes apart, token 0 first) into their slots of the groups (any range:
 * threads may split the tokens as they quantized them). */
void sl_act_group(sl_act a, const void *act, size_t as, int64_t t0, int64_t t1, int64_t K, void *groups);
/* Zero the slots of tokens nt.. of the last group of nt tokens (nothing when
 * nt is a multiple of 16): a kernel may then run the partial group as a
 * whole one, its extra tokens adding zeros. Call once the group is written. */
void sl_act_group_pad(sl_act a, int64_t nt, int64_t K, void *groups);

/* Rows per tile of the matmul kernels: row ranges handed to a kernel should
 * start on a multiple of this (not required for correctness). A call
 * unpacks up to SL_GEMM_CHUNK rows once and runs all its tokens against
 * them (in token blocks that stay in L2), so callers should hand out row
 * chunks of that size and every token at once. */
#define SL_GEMM_ROWS 16
#define SL_GEMM_CHUNK 64
/* Token blocks inside a kernel: as many activation rows as fit in this. */
#define SL_GEMM_TOKEN_BYTES (512 * 1024)

/* y[t*ldy + r] = dot(W row r, activation row t) for r in [0, nr), t in [0, nt);
 * nr >= 1 and nt >= 1 (callers skip empty calls: not every kernel checks).
 * w: row 0, rows w_stride bytes apart; act: token 0, rows act_stride bytes
 * apart; scratch: sl_gemm_scratch_bytes(K) bytes, 64-aligned (room for
 * SL_GEMM_CHUNK unpacked rows; longer calls are split). */
typedef void (*sl_gemm_fn)(int64_t K, const void *w, size_t w_stride, int64_t nr, const void *act, size_t act_stride,
                           int64_t nt, float *y, int64_t ldy, void *scratch);
size_t sl_gemm_scratch_bytes(int64_t K);

/* Packed weights (Q4_0, Q8_0, Q4_K, Q5_K, Q6_K): the rows of a matrix regrouped once into
 * tiles of 16 rows that the SIMD kernels read with contiguous, aligned
 * loads (no transposition per step). A tile holds the K/32 blocks of its 16
 * rows: first the quants of every block, G = 256 (Q4_0) or 512 (Q8_0)
 * bytes each,
 *   byte [G b + 64j + 4r + i] = qs[4j + i] of block b of row r
 *                               (j < G / 64, r < 16, i < 4),
 * then the scales, 32 bytes per block: the fp16 d of rows 0..15 — in all
 * the size of the 16 rows' blocks in the file (rounded up to 64 bytes). The
 * last tile of a matrix is padded with zero rows. K-quant tiles (Q4_K,
 * Q5_K: the blocks' dwords transposed across the 16 rows; Q6_K: regrouped
 * for the decode kernel) are described above pack_kquant and
 * pack_q6_K_block in kernels.c. sl_pack_tile_bytes is 0 for types without
 * a packed layout. */
size_t sl_pack_tile_bytes(sl_type t, int64_t K);
/* Pack rows [0, nr) (row r at w + r * w_stride) into ceil(nr / 16) tiles at dst. */
void sl_pack_rows(sl_type t, int64_t K, const void *w, size_t w_stride, int64_t nr, void *dst);
/* Like sl_gemm_fn, with w the packed tile of row 0 (nr rows from there). */
typedef void (*sl_gemm_packed_fn)(int64_t K, const void *tiles, int64_t nr, const void *act, size_t act_stride,
                                  int64_t nt, float *y, int64_t ldy, void *scratch);
/* Like sl_gemm_packed_fn, with the activations also as token groups
 * (sl_act_group of the same nt rows, in the type's activation format, the
 * last group padded by sl_act_group_pad; act, act_stride as there): the same
 * results, bit for bit. The kernels read whole groups of 16 from `groups`,
 * a last partial one as a whole where that is cheaper, and the rows for the
 * other tokens after the last whole group. */
typedef void (*sl_gemm_grouped_fn)(int64_t K, const void *tiles, int64_t nr, const void *act, size_t act_stride,
                                   const void *groups, int64_t nt, float *y, int64_t ldy, void *scratch);
/* Fewer tokens than this in a call: the grouped kernels gain nothing (a
 * VNNI group kernel on one padded group of 12 costs what 12 tokens cost the
 * per-row kernels; the tile kernels take groups of at least 9 tokens). */
#define SL_GROUP_MIN_TOKENS 12

/* An sl_gemm_fn on rows as stored through a packed kernel: SL_GEMM_CHUNK rows
 * at a time are packed to scratch + off, then fn runs on them (given the
 * whole scratch; it must not use [off, off + the packed chunk)). */
void sl_gemm_packing(sl_gemm_packed_fn fn, sl_type t, int64_t K, const void *w, size_t ws, int64_t nr, const void *act,
                     size_t as, int64_t nt, float *y, int64_t ldy, void *scratch, size_t off);

/* Attention of a query token (or a run of them, n_t) for the n_q query heads that share one KV
 * head (GQA): for each, softmax(q·K^T * scale) · V over positions
 * [0, n_pos) of a paged KV cache, with an online softmax over chunks of 16
 * positions (fixed by position, so chunking a prompt does not change the
 * result). Position j's row of the KV head is at
 * base + blocks[j / block_size] * block_bytes + (j % block_size) * slot_bytes.
 * Per head, in order: s_j = (16-lane dot, as the float matmul) * scale;
 * per chunk M' = max(M, max_j s_j), l *= e^(M-M'), acc *= e^(M-M') (from the
 * second chunk on); then for each j: p = e^(s_j - M'), l += p,
 * acc = fma(p, v_j, acc); finally out = acc / l. e^x is sl_expf. */
typedef struct sl_attn_args {
    const float *q;         /* (n_q, head_dim) of each token, q_stride floats apart */
    float *out;             /* (n_q, head_dim) of each token, out_stride floats apart */
    int32_t n_q;            /* 1..8 */
    int32_t head_dim;
    int32_t n_pos;          /* positions the first token sees */
    /* Tokens of one sequence at consecutive positions (0 counts as 1, at most
     * SL_ATTN_MAX_T): token i sees n_pos + i positions, and its result is the
     * same, bit for bit, as a call for it alone. A call for several reads
     * each cached row once for all of them (a prompt's attention). */
    int32_t n_t;
    int64_t q_stride, out_stride;
    float scale;
    sl_type kv_type;        /* F32, F16 or Q8_0 */
    const int32_t *blocks;  /* the sequence's block table */
    int32_t block_size;
    size_t block_bytes, slot_bytes;
    const uint8_t *k_base, *v_base; /* block 0, slot 0 of this layer and head */
} sl_attn_args;
typedef void (*sl_attn_fn)(const sl_attn_args *a);
#define SL_ATTN_MAX_T 16

/* A call made one token and one query head at a time (head: one head's
 * q and out, over a->n_pos positions), for tables without a kernel for runs. */
static inline void sl_attn_each(const sl_attn_args *a, void (*head)(const sl_attn_args *, const float *, float *)) {
    sl_attn_args one = *a;
    for (int32_t t = 0; t < (a->n_t > 1 ? a->n_t : 1); t++) {
        one.n_pos = a->n_pos + t;
        for (int32_t g = 0; g < a->n_q; g++)
            head(&one, a->q + t * a->q_stride + (int64_t)g * a->head_dim, a->out + t * a->out_stride + (int64_t)g * a->head_dim);
    }
}

/* For the SIMD attention kernels, at the start of chunk j0 (0, 16, ...;
 * next is kept by the caller from one chunk to the next): offs gets the
 * offsets from k_base / v_base of the chunk's rows (those from n_pos on are
 * not set) and next the following chunk's. A call reads few rows, slot_bytes
 * apart, so the next chunk's K rows and this chunk's V rows (rb bytes each)
 * are prefetched here (attention time in a 16-sequence decode step -40%). */
static inline void sl_attn_offsets(const sl_attn_args *a, int32_t j0, size_t offs[16]) {
    /* one division per chunk: the chunk's positions walk the block table slot by slot */
    const int32_t n = a->n_pos - j0 < 16 ? a->n_pos - j0 : 16, bs = a->block_size;
    int32_t b = j0 / bs, s = j0 % bs;
    size_t base = (size_t)a->blocks[b] * a->block_bytes;
    for (int32_t j = 0; j < n; j++) {
        offs[j] = base + (size_t)s * a->slot_bytes;
        if (++s == bs && j + 1 < n) {
            s = 0;
            base = (size_t)a->blocks[++b] * a->block_bytes;
        }
    }
}
static inline void sl_attn_prefetch(const uint8_t *base, const size_t offs[16], int32_t n, size_t rb) {
    for (int32_t j = 0; j < n; j++)
        for (size_t o = 0; o < rb; o += 64) __builtin_prefetch(base + offs[j] + o, 0, 3);
}
static inline void sl_attn_chunk(const sl_attn_args *a, int32_t j0, size_t rb, size_t offs[16], size_t next[16]) {
    const int32_t n = a->n_pos - j0 < 16 ? a->n_pos - j0 : 16;
    if (j0 == 0) { /* the first chunk's K and V rows, before they are read */
        sl_attn_offsets(a, 0, next);
        sl_attn_prefetch(a->k_base, next, n, rb);
        sl_attn_prefetch(a->v_base, next, n, rb);
    }
    for (int32_t j = 0; j < n; j++) offs[j] = next[j];
    if (j0 + 16 < a->n_pos) {
        const int32_t nn = a->n_pos - j0 - 16 < 16 ? a->n_pos - j0 - 16 : 16;
        sl_attn_offsets(a, j0 + 16, next);
        sl_attn_prefetch(a->k_base, next, nn, rb);
        sl_attn_prefetch(a->v_base, next, nn, rb);
    }
}

typedef struct sl_kernels {
    const char *name;                 /* "scalar", "avx2", "avx512", "amx" */
    sl_gemm_fn gemm[SL_TYPE_COUNT];   /* NULL where the type has no kernel */
    sl_gemm_packed_fn gemm_packed[SL_TYPE_COUNT]; /* NULL: the table reads that type unpacked */
    /* NULL where the table has none (only tile kernels use token groups) */
    sl_gemm_grouped_fn gemm_grouped[SL_TYPE_COUNT];
    sl_attn_fn attn;
    /* gemm on F16 / BF16 rows over many tokens runs fastest in calls of
     * about this many tokens (their activations stay in L2 while the
     * weights stream): the forward pass splits longer runs; 0: no split */
    int64_t gemm_float_tokens;
    /* sl_act_quantize, byte for byte (the scalar table's is sl_act_quantize) */
    void (*act_quantize)(sl_act a, const float *x, int64_t ldx, int64_t n_tok, int64_t K, void *out);
    /* Σ a[i] (wrapping): a memory read at full vector width in four
     * concurrent sequential streams, for bandwidth measurements */
    uint64_t (*sum_u64)(const uint64_t *a, size_t n);
    /* out[i] = gate[i] / (1 + exp(-gate[i])) * up[i] (sl_expf's exp) */
    void (*silu_mul)(const float *gate, const float *up, float *out, int64_t n);
    /* sl_rmsnorm_ref (ops.h), bit for bit: its order of the sum of squares is fixed */
    void (*rmsnorm)(const float *x, const float *w, float *out, int64_t n, float eps);
} sl_kernels;

/* The best table this CPU supports (chosen once; thread-safe;
 * SHARDLM_KERNELS=scalar|avx2|avx512|amx forces one — avx512 for valgrind,
 * which does not know AMX). */
const sl_kernels *sl_kernels_best(void);
/* A table by name ("scalar", "avx2", "avx512", "amx"); NULL when unknown or when
 * the CPU lacks the instructions. */
const sl_kernels *sl_kernels_get(const char *name);
const sl_kernels *sl_kernels_scalar(void);

/* exp(x) to about 1 ulp by one fixed sequence of float operations (every
 * ISA variant computes the same bits). */
float sl_expf(float x);

/* K-quant super-blocks of a packed 16-row tile unpacked for the AVX-512 and
 * AMX many-token kernels (sl_kq_unpack, in kernels_avx512.c): per super-block
 * SL_KQ_BLOCK_BYTES, as zmm: SL_KQ_W groups (zmm g = quants 4g..4g+3 of the 16
 * rows, row r in lane r, unsigned: Q4_K q, Q5_K q, Q6_K q + 32; the 32
 * quants of Q4_K/Q5_K sub-block j are groups 8j..8j+7, the 16 of Q6_K
 * sub-block j groups 4j..4j+3), then the sub-block scales as int32 (8 zmm for
 * Q4_K/Q5_K, 16 for Q6_K), int16 pairs (lane r = v[2i] | v[2i+1] << 16: the
 * 8 mins of Q4_K/Q5_K in 4 zmm, the 16 scales of Q6_K in 8 zmm, for the min
 * and -32 corrections), then d and dmin as floats. */
#define SL_KQ_W 64
#define SL_KQ_SC SL_KQ_W
#define SL_KQ_MIN (SL_KQ_SC + 16)
#define SL_KQ_D (SL_KQ_MIN + 8)
#define SL_KQ_DMIN (SL_KQ_D + 1)
#define SL_KQ_ZMMS (SL_KQ_DMIN + 1)
#define SL_KQ_BLOCK_BYTES (SL_KQ_ZMMS * 64)
/* Unpack super-blocks [0, nb) of the packed tile (tile_bytes apart from the
 * next; rows >= nr are zero) into dst. AVX-512 code: call only where the
 * avx512 table is available. */
void sl_kq_unpack(sl_type type, const uint8_t *tile, size_t tile_bytes, int nr, int64_t nb, uint8_t *dst);

/* Used by the ISA files to build their tables. */
extern const sl_kernels sl_kernels_scalar_table;
bool sl_kernels_avx2_init(sl_kernels *k);   /* false when not compiled in */
bool sl_kernels_avx512_init(sl_kernels *k);
/* The AVX-512 table with AMX tile kernels for many-token Q4_0/Q8_0 matmuls;
 * call only after amx is known usable (cpuid, XCR0, tile permission). */
bool sl_kernels_amx_init(sl_kernels *k, const sl_kernels *avx512);

#endif

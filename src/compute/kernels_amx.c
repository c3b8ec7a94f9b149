/*
 * kernels_amx.c — Intel AMX (Advanced Matrix Extensions) kernels for the
 * Q4_0 / Q8_0 matmul of many tokens at once (prompt processing, batched
 * decoding). Built with the AVX-512, AMX and GFNI flags; used only when cpuid
 * reports AMX-TILE, AMX-INT8 and GFNI, the OS enables the tile state in XCR0 and
 * grants this process the tile data (arch_prctl ARCH_REQ_XCOMP_PERM).
 *
 * The "amx" table is the AVX-512 table with the packed Q4_0/Q8_0/Q4_K/Q5_K
 * matmuls replaced: calls with fewer than AMX_MIN_TOKENS tokens (batch-1
 * decode, memory-bound) go on to the AVX-512 VNNI kernel; the others run
 * here.
 *
 * Same results, bit for bit: a tile multiply (TDPBSSD) yields, for 16
 * tokens × 16 rows, each block's exact integer dot isum_b of signed
 * activation quants and signed weight quants (Q4_0: q − 8) — the same
 * integers the VNNI and scalar kernels form. The float steps then follow
 * the canonical order of kernels.h with the same instructions as the
 * AVX-512 kernel: s = dw_b * da_b (vector × broadcast), acc = fma(s,
 * (float)isum_b, acc), block after block.
 *
 * Q4_0 / Q8_0: a call unpacks nothing for Q8_0 (the packed layout of
 * kernels.h is already a B tile per block: 8 rows of 64 bytes, row k4 the
 * quants 4k4..4k4+3 of the 16 rows) and, for Q4_0, turns each block's
 * nibbles into that form (q − 8) while its first token group streams the
 * tile in. A group of up to 16 tokens is an A tile: from the token groups
 * where the caller made them (gemm_grouped; sl_act_group in kernels.h: the
 * block's 16 × 32 quants contiguous, its 16 scales in one line), else read in
 * place from the rows (32 quants per token, the rows' stride apart: 16 lines
 * per tile and 16 for the scales). The groups are 1.03-1.07x faster per call
 * (bench/kernel_ab.sh, K = 2048, 3.5 MiB of weights: a QKV matmul's). Per block: one product (C = A ×
 * B, 16 tokens × 16 rows of int32) stored to a 1 KiB buffer, then the float
 * steps into 16 accumulators held in registers; two tile sets alternate so a
 * block's product is formed while the previous one is scaled.
 *
 * What it costs (measured on this VM): a tile product with its loads and
 * store takes about 10–16 ns whatever the number of token rows, so the
 * K = 32 blocks keep the tile unit far from its peak; the gain over VNNI is
 * 1.3–2x for 16 tokens and more (below 9 tokens VNNI is faster).
 */
#include "kernels.h"
#include "kq_steps.h"

#include "quant.h"

#include <immintrin.h>
#include <stdalign.h>
#include <stddef.h>
#include <string.h>

#define AI static inline __attribute__((always_inline))

/* Fewer tokens than this: the VNNI kernel (a tile product costs about the
 * same with few token rows as with 16; measured with bench/kernel_ab.sh: at 9–11
 * tokens the tiles are 1.3–1.45x faster for Q4_0/Q8_0, 1.18x for Q4_K/Q5_K,
 * at 8 tokens about even).
 * The same holds for the tail of a longer call: a last group of fewer than
 * AMX_MIN_TOKENS tokens goes to the VNNI kernel too. */
#ifndef AMX_MIN_TOKENS
#define AMX_MIN_TOKENS 9
#endif
/* Software prefetch distance while the first token group streams a tile in. */
#ifndef SL_AMX_PREFETCH
#define SL_AMX_PREFETCH 4096
#endif
/* ... and into L2 this far ahead (0: none), as the decode kernels do: the
 * first token group of a batched decoding step streams every weight from
 * memory (1.025-1.048x at 16 tokens over 64 MiB, 32 KiB about the same, 1.01
 * at 64 tokens; bench/kernel_ab.sh). */
#ifndef SL_AMX_FAR_PREFETCH
#define SL_AMX_FAR_PREFETCH 16384
#endif

/* The AVX-512 table's kernels that small calls fall through to. */
static sl_gemm_packed_fn vnni_packed[2], vnni_kq[SL_TYPE_COUNT];

/* Calls of fewer than AMX_MIN_TOKENS tokens, and the last tokens of a call
 * when they make a group that short, go to the VNNI kernel fn; returns how
 * many tokens (from the first) are left for the tiles. */
static int64_t vnni_part(sl_gemm_packed_fn fn, int64_t K, const void *tiles, int64_t nr, const void *act, size_t as,
                         int64_t nt, float *y, int64_t ldy, void *scratch) {
    const int64_t tail = nt < AMX_MIN_TOKENS ? nt : nt % 16 < AMX_MIN_TOKENS ? nt % 16 : 0;
    if (tail) fn(K, tiles, nr, (const uint8_t *)act + (size_t)(nt - tail) * as, as, tail, y + (nt - tail) * ldy, ldy,
                 scratch);
    return nt - tail;
}

/* The accumulators of tokens [0, m) into y (rows_valid of the tile's 16 rows). */
AI void store_rows(const __m512 acc[16], int m, float *y, int64_t ldy, int rows_valid) {
    const __mmask16 mk = (__mmask16)(rows_valid >= 16 ? 0xFFFF : (1u << rows_valid) - 1);
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++)
        if (t < m) _mm512_mask_storeu_ps(y + t * ldy, mk, acc[t]);
}

/* LDTILECFG's 64-byte operand (palette 1). */
typedef struct tilecfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;
_Static_assert(sizeof(tilecfg) == 64, "tile configuration is 64 bytes");

/* Tiles: C0, C1 (tmm0, 1) m tokens × 16 int32; A0, A1 (tmm2, 3) m tokens ×
 * kb quants; B0, B1 (tmm4, 5) kb/4 rows × 64 bytes (kb = 32, or 16 for
 * Q6_K's sub-blocks). Set s = {As, Bs, Cs} serves the blocks b with
 * b % 2 == s, so a block's loads and product never wait for the previous
 * block's tiles to be read. */
static void configure(int m, int kb) {
    alignas(64) tilecfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int s = 0; s < 2; s++) {
        c.rows[s] = (uint8_t)m;
        c.colsb[s] = 64;
        c.rows[2 + s] = (uint8_t)m;
        c.colsb[2 + s] = (uint16_t)kb;
        c.rows[4 + s] = (uint8_t)(kb / 4);
        c.colsb[4 + s] = 64;
    }
    /* gcc 12 models LDTILECFG as reading less than the 64 bytes and drops the
     * stores above without this barrier */
    __asm__ volatile("" : : "r"(&c) : "memory");
    _tile_loadconfig(&c);
}

/* One Q4_0 block of a packed tile (256 bytes) → B form (512 bytes): groups
 * 0..3 are the low nibbles (quants 4j..4j+3), groups 4..7 the high ones
 * (quants 16 + 4j..), both minus 8. q − 8 of a nibble q is its bits 0..2,
 * then !q3 in bits 3..7 (the 4-bit sign extension of q ^ 8): an affine map
 * over GF(2), so one GF2P8AFFINEQB per 64 bytes and nibble forms the B bytes
 * (rows of the bit matrix: output bit i is byte 7 − i; constant 0xF8). */
#define NIB_LO 0x0102040808080808ll
#define NIB_HI 0x1020408080808080ll
AI void unpack_block(const uint8_t *s, uint8_t *d) {
    const __m512i lo = _mm512_set1_epi64(NIB_LO), hi = _mm512_set1_epi64(NIB_HI);
    for (int j = 0; j < 4; j++) {
        const __m512i v = _mm512_load_si512(s + 64 * j);
        _mm512_store_si512(d + 64 * j, _mm512_gf2p8affine_epi64_epi8(v, lo, 0xF8));
        _mm512_store_si512(d + 256 + 64 * j, _mm512_gf2p8affine_epi64_epi8(v, hi, 0xF8));
    }
}

/* Where a token group's activations are: q its first quants, d its first
 * scale, as the rows' stride. Rows as quantized (grp false): A tile of block
 * b at q + 32 b, rows as apart; scale of token t at d + as t + 4 b. One group
 * of sl_act_group (grp true, as unused): q + 512 b, rows 32 apart; d + 4 t + 64 b. */
typedef struct act_at {
    const uint8_t *q, *d;
    size_t as;
} act_at;

/* Block b's product (16 rows × m tokens, exact integers; wb: the block's
 * quants in B form) into tile set b % 2 (C, A, B) — formed, not stored. */
AI void block_product(bool grp, const uint8_t *wb, const act_at *a, int64_t b) {
    const uint8_t *ab = a->q + (grp ? 512 : 32) * (size_t)b;
    const long rs = grp ? 32 : (long)a->as;
    if (b & 1) {
        _tile_loadd(3, ab, rs);
        _tile_loadd(5, wb, 64);
        _tile_zero(1);
        _tile_dpbssd(1, 3, 5);
    } else {
        _tile_loadd(2, ab, rs);
        _tile_loadd(4, wb, 64);
        _tile_zero(0);
        _tile_dpbssd(0, 2, 4);
    }
}

AI void store_product(int64_t b, int32_t *c) {
    if (b & 1) _tile_stored(1, c, 64);
    else _tile_stored(0, c, 64);
}

/* acc[t] = fma(dw_b * da_b(t), (float)C[t], acc[t]) for tokens t < m: the
 * canonical float steps of block b, C its stored product. */
AI void scale_block(bool grp, int64_t b, const int32_t *c, const uint8_t *sc, const act_at *a, int m, __m512 acc[16]) {
    const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(sc + b * 32)));
    const uint8_t *da = a->d + (grp ? 64 : 4) * (size_t)b;
    const size_t dt = grp ? 4 : a->as;
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) {
        if (t < m) {
            float d;
            memcpy(&d, da + (size_t)t * dt, 4);
            const __m512 s = _mm512_mul_ps(dw, _mm512_set1_ps(d));
            acc[t] = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(_mm512_load_si512(c + 16 * t)), acc[t]);
        }
    }
}

/* 16 rows (w: their quants in B form, 512 bytes per block; sc: the fp16 row
 * scales, 32 bytes per block) against tokens [0, m) of act, m ≤ 16: the
 * accumulators stay in registers. Products alternate between two tile sets
 * and are formed ahead of the float steps that use them, so the tile unit
 * works alongside the vector units. src (the first token group of a call)
 * streams the packed tile in from memory meanwhile; with ring (a call whose
 * tokens make one group: nothing reads the B form again) Q4_0's B form goes
 * to a ring of 4 blocks at w that stays in L1 — a 512-byte store per block
 * to the L2-sized buffer costs as much as the product on this CPU (1.05–1.35x
 * for 16 tokens, `bench/kernel_ab.sh`). */
AI void tile_tokens_impl(bool grp, const uint8_t *w, const uint8_t *sc, const uint8_t *src, bool q4, bool ring,
                         int64_t nb, const act_at *a, int m, float *y, int64_t ldy, int rows_valid, int32_t *cbuf) {
    __m512 acc[16];
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) acc[t] = _mm512_setzero_ps();
    const size_t G = q4 ? 256 : 512;
    if (src) {
        /* the first token group streams the tile in: prefetch ahead; Q4_0 unpacks two blocks ahead (so the
         * stores have reached the cache before a tile load reads them). Per block: the store of block b,
         * the product of block b + 1 (tile loads only), block b's float steps. */
        const int64_t slot = ring ? 3 : -1; /* block b's B form: w + 512 * (b & slot) */
        if (q4)
            for (int64_t b = 0; b < 2 && b < nb; b++)
                unpack_block(src + (size_t)b * G, (uint8_t *)w + (size_t)(b & slot) * 512);
        block_product(grp, w, a, 0);
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *p = src + (size_t)(b + 2) * G;
            for (size_t o = 0; o < G; o += 64) {
                _mm_prefetch((const char *)(p + SL_AMX_PREFETCH + o), _MM_HINT_T0);
                if (SL_AMX_FAR_PREFETCH > 0) _mm_prefetch((const char *)(p + SL_AMX_FAR_PREFETCH + o), _MM_HINT_T2);
            }
            if (b % 2 == 0) _mm_prefetch((const char *)(sc + b * 32 + SL_AMX_PREFETCH / 8), _MM_HINT_T0);
            if (q4 && b + 2 < nb) unpack_block(p, (uint8_t *)w + (size_t)((b + 2) & slot) * 512);
            store_product(b, cbuf);
            if (b + 1 < nb) block_product(grp, w + (size_t)((b + 1) & slot) * 512, a, b + 1);
            scale_block(grp, b, cbuf, sc, a, m, acc);
        }
    } else {
        /* weights in cache: one block deeper — the float steps of block b - 1 follow the store of block b
         * and the product of block b + 1 (two product buffers) */
        block_product(grp, w, a, 0);
        for (int64_t b = 0; b < nb; b++) {
            store_product(b, cbuf + 256 * (b & 1));
            if (b + 1 < nb) block_product(grp, w + (size_t)(b + 1) * 512, a, b + 1);
            if (b > 0) scale_block(grp, b - 1, cbuf + 256 * ((b - 1) & 1), sc, a, m, acc);
        }
        scale_block(grp, nb - 1, cbuf + 256 * ((nb - 1) & 1), sc, a, m, acc);
    }
    store_rows(acc, m, y, ldy, rows_valid);
}

/* The two forms of the activations, each compiled with its strides. */
static void tile_tokens_rows(const uint8_t *w, const uint8_t *sc, const uint8_t *src, bool q4, bool ring, int64_t nb,
                             const act_at *a, int m, float *y, int64_t ldy, int rows_valid, int32_t *cbuf) {
    tile_tokens_impl(false, w, sc, src, q4, ring, nb, a, m, y, ldy, rows_valid, cbuf);
}
static void tile_tokens_groups(const uint8_t *w, const uint8_t *sc, const uint8_t *src, bool q4, bool ring, int64_t nb,
                               const act_at *a, int m, float *y, int64_t ldy, int rows_valid, int32_t *cbuf) {
    tile_tokens_impl(true, w, sc, src, q4, ring, nb, a, m, y, ldy, rows_valid, cbuf);
}

/* Scratch: two stored products, 1 KiB each (4 KiB reserved) | Q4_0 quants
 * in B form (SL_GEMM_CHUNK rows × K bytes). */
static void gemm_q0_amx(bool q8, int64_t K, const void *tiles, int64_t nr, const void *act, size_t as,
                        const void *groups, int64_t nt, float *y, int64_t ldy, void *scratch) {
    if (!(nt = vnni_part(vnni_packed[q8], K, tiles, nr, act, as, nt, y, ldy, scratch))) return;
    const int64_t nb = K / 32;
    const size_t G = q8 ? 512 : 256, tile = sl_pack_tile_bytes(q8 ? SL_TYPE_Q8_0 : SL_TYPE_Q4_0, K);
    int32_t *cbuf = scratch;
    uint8_t *unpacked = (uint8_t *)scratch + 4096;
    int64_t tb = (int64_t)(SL_GEMM_TOKEN_BYTES / as) / 16 * 16;
    if (tb < 16) tb = 16;
    int cfg = -1;
    for (int64_t c0 = 0; c0 < nr; c0 += SL_GEMM_CHUNK) {
        const int64_t cr = nr - c0 < SL_GEMM_CHUNK ? nr - c0 : SL_GEMM_CHUNK, ntile = (cr + 15) / 16;
        const uint8_t *ct = (const uint8_t *)tiles + (size_t)(c0 / 16) * tile;
        for (int64_t b0 = 0; b0 < nt; b0 += tb) {
            const int64_t b1 = nt - b0 < tb ? nt : b0 + tb;
            for (int64_t i = 0; i < ntile; i++) {
                const uint8_t *src = ct + (size_t)i * tile;
                const bool ring = !q8 && b1 - b0 <= 16; /* one token group: the B form is not read again */
                const uint8_t *w = q8 ? src : ring ? unpacked : unpacked + (size_t)i * (size_t)nb * 512;
                for (int64_t t0 = b0; t0 < b1; t0 += 16) {
                    const int m = b1 - t0 < 16 ? (int)(b1 - t0) : 16;
                    if (m != cfg) {
                        configure(m, 32);
                        cfg = m;
                    }
                    act_at a = {.q = (const uint8_t *)act + (size_t)t0 * as, .as = as};
                    a.d = a.q + K;
                    if (groups) {
                        a.q = (const uint8_t *)groups + (size_t)(t0 / 16) * sl_act_group_bytes(SL_ACT_Q8_0, K);
                        a.d = a.q + (size_t)nb * 512;
                    }
                    (groups ? tile_tokens_groups : tile_tokens_rows)(w, src + (size_t)nb * G, t0 == 0 ? src : NULL, !q8, ring, nb, &a, m,
                                y + t0 * ldy + c0 + 16 * i, ldy, (int)(cr - 16 * i), cbuf);
                }
            }
        }
    }
    _tile_release();
}

/* ---- K-quants (Q4_K, Q5_K; the code also handles Q6_K, not used: see sl_kernels_amx_init) ----
 * The tile is unpacked once per call (sl_kq_unpack, the AVX-512 many-token
 * kernels' form: kernels.h); the quants of sub-block j are then already a B
 * tile (Q4_K/Q5_K: 8 rows, K = 32; Q6_K: 4 rows, K = 16), unsigned, and the
 * activation quants (Q8_K) of 16 tokens an A tile read in place. TDPBSUD
 * gives each sub-block's exact integer dot isum_j; the integer steps
 * (Σ sc_j·isum_j, the min / -32 corrections) and the float steps then run as
 * in the AVX-512 kernel, so results are bit-identical. The products of
 * super-block s + 1 are formed before s is scaled (two product buffers). */

/* The n_sub sub-block products of super-block s (unpacked at o) into c
 * (1 KiB each), alternating between the two tile sets: product j is formed
 * while product j - 1 is stored. */
AI void kq_products(int n_sub, int kb, const uint8_t *o, const uint8_t *act, size_t as, int64_t s, int32_t *c) {
    const uint8_t *a = act + (size_t)s * sizeof(block_q8_K) + offsetof(block_q8_K, qs);
    for (int j = 0; j < n_sub; j++) {
        if (j & 1) {
            _tile_loadd(3, a + kb * j, (long)as);
            _tile_loadd(5, o + 16 * kb * j, 64);
            _tile_zero(1);
            _tile_dpbsud(1, 3, 5);
            _tile_stored(0, c + 256 * (j - 1), 64);
        } else {
            _tile_loadd(2, a + kb * j, (long)as);
            _tile_loadd(4, o + 16 * kb * j, 64);
            _tile_zero(0);
            _tile_dpbsud(0, 2, 4);
            if (j) _tile_stored(1, c + 256 * (j - 1), 64);
        }
    }
    if (n_sub & 1) _tile_stored(0, c + 256 * (n_sub - 1), 64); /* n_sub is even: never */
    else _tile_stored(1, c + 256 * (n_sub - 1), 64);
}

/* The integer and float steps of super-block s for tokens t < m: kq_tokens'
 * sequence in kernels_avx512.c (sl_kq_end), with isum_j from the stored
 * products c. */
AI void kq_scale(bool q6, const uint8_t *ob, const int32_t *c, const uint8_t *act, size_t as, int64_t s, int m,
                 __m512 acc[16]) {
    const __m512i *o = (const __m512i *)ob;
    const int n_sub = q6 ? 16 : 8;
    const __m512 d = _mm512_load_ps((const float *)(o + SL_KQ_D)), dmin = _mm512_load_ps((const float *)(o + SL_KQ_DMIN));
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) {
        if (t >= m) continue;
        const block_q8_K *at = (const block_q8_K *)(act + (size_t)t * as) + s;
        __m512i isum = _mm512_setzero_si512();
        for (int j = 0; j < n_sub; j++)
            isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(_mm512_load_si512(c + 256 * j + 16 * t),
                                                             _mm512_load_si512(o + SL_KQ_SC + j)));
        acc[t] = sl_kq_end(q6, isum, d, dmin, o + SL_KQ_MIN, at, acc[t]);
    }
}

/* 16 unpacked rows (u: nb super-blocks) against tokens [0, m) of act, m ≤ 16. */
static void kq_tile_tokens(bool q6, const uint8_t *u, int64_t nb, const uint8_t *act, size_t as, int m, float *y,
                           int64_t ldy, int rows_valid, int32_t *cbuf) {
    const int n_sub = q6 ? 16 : 8, kb = q6 ? 16 : 32;
    __m512 acc[16];
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) acc[t] = _mm512_setzero_ps();
    kq_products(n_sub, kb, u, act, as, 0, cbuf);
    for (int64_t s = 0; s < nb; s++) {
        if (s + 1 < nb)
            kq_products(n_sub, kb, u + (size_t)(s + 1) * SL_KQ_BLOCK_BYTES, act, as, s + 1, cbuf + 4096 * ((s + 1) & 1));
        kq_scale(q6, u + (size_t)s * SL_KQ_BLOCK_BYTES, cbuf + 4096 * (s & 1), act, as, s, m, acc);
    }
    store_rows(acc, m, y, ldy, rows_valid);
}

/* Scratch: two product buffers of 16 KiB | the unpacked tiles (SL_GEMM_CHUNK rows). */
static void gemm_kq_amx(sl_type type, int64_t K, const void *tiles, int64_t nr, const void *act, size_t as, int64_t nt,
                        float *y, int64_t ldy, void *scratch) {
    if (!(nt = vnni_part(vnni_kq[type], K, tiles, nr, act, as, nt, y, ldy, scratch))) return;
    const bool q6 = type == SL_TYPE_Q6_K;
    const int64_t nb = K / QK_K;
    const size_t ptile = sl_pack_tile_bytes(type, K), utile = (size_t)nb * SL_KQ_BLOCK_BYTES;
    int32_t *cbuf = scratch;
    uint8_t *unpacked = (uint8_t *)scratch + 2 * 16384;
    int64_t tb = (int64_t)(SL_GEMM_TOKEN_BYTES / as) / 16 * 16;
    if (tb < 16) tb = 16;
    int cfg = -1;
    for (int64_t c0 = 0; c0 < nr; c0 += SL_GEMM_CHUNK) {
        const int64_t cr = nr - c0 < SL_GEMM_CHUNK ? nr - c0 : SL_GEMM_CHUNK, ntile = (cr + 15) / 16;
        for (int64_t i = 0; i < ntile; i++)
            sl_kq_unpack(type, (const uint8_t *)tiles + (size_t)(c0 / 16 + i) * ptile, ptile,
                         cr - 16 * i < 16 ? (int)(cr - 16 * i) : 16, nb, unpacked + (size_t)i * utile);
        for (int64_t b0 = 0; b0 < nt; b0 += tb) {
            const int64_t b1 = nt - b0 < tb ? nt : b0 + tb;
            for (int64_t i = 0; i < ntile; i++)
                for (int64_t t0 = b0; t0 < b1; t0 += 16) {
                    const int m = b1 - t0 < 16 ? (int)(b1 - t0) : 16;
                    if (m != cfg) {
                        configure(m, q6 ? 16 : 32);
                        cfg = m;
                    }
                    kq_tile_tokens(q6, unpacked + (size_t)i * utile, nb, (const uint8_t *)act + (size_t)t0 * as, as, m,
                                   y + t0 * ldy + c0 + 16 * i, ldy, (int)(cr - 16 * i), cbuf);
                }
        }
    }
    _tile_release();
}

#define KQ_AMX(name, type)                                                                                         \
    static void name(int64_t K, const void *tiles, int64_t nr, const void *a, size_t as, int64_t nt, float *y,      \
                     int64_t ldy, void *scratch) {                                                                 \
        gemm_kq_amx(type, K, tiles, nr, a, as, nt, y, ldy, scratch);                                               \
    }
KQ_AMX(gemm_q4_K_amx, SL_TYPE_Q4_K)
KQ_AMX(gemm_q5_K_amx, SL_TYPE_Q5_K)

static void gemm_q4_0_amx(int64_t K, const void *tiles, int64_t nr, const void *a, size_t as, int64_t nt, float *y,
                          int64_t ldy, void *scratch) {
    gemm_q0_amx(false, K, tiles, nr, a, as, NULL, nt, y, ldy, scratch);
}
static void gemm_q8_0_amx(int64_t K, const void *tiles, int64_t nr, const void *a, size_t as, int64_t nt, float *y,
                          int64_t ldy, void *scratch) {
    gemm_q0_amx(true, K, tiles, nr, a, as, NULL, nt, y, ldy, scratch);
}
static void gemm_q4_0_amx_grouped(int64_t K, const void *tiles, int64_t nr, const void *a, size_t as, const void *g,
                                  int64_t nt, float *y, int64_t ldy, void *scratch) {
    gemm_q0_amx(false, K, tiles, nr, a, as, g, nt, y, ldy, scratch);
}
static void gemm_q8_0_amx_grouped(int64_t K, const void *tiles, int64_t nr, const void *a, size_t as, const void *g,
                                  int64_t nt, float *y, int64_t ldy, void *scratch) {
    gemm_q0_amx(true, K, tiles, nr, a, as, g, nt, y, ldy, scratch);
}

bool sl_kernels_amx_init(sl_kernels *k, const sl_kernels *avx512) {
    *k = *avx512;
    k->name = "amx";
    vnni_packed[0] = avx512->gemm_packed[SL_TYPE_Q4_0];
    vnni_packed[1] = avx512->gemm_packed[SL_TYPE_Q8_0];
    if (!vnni_packed[0] || !vnni_packed[1]) return false;
    k->gemm_packed[SL_TYPE_Q4_0] = gemm_q4_0_amx;
    k->gemm_packed[SL_TYPE_Q8_0] = gemm_q8_0_amx;
    k->gemm_grouped[SL_TYPE_Q4_0] = gemm_q4_0_amx_grouped;
    k->gemm_grouped[SL_TYPE_Q8_0] = gemm_q8_0_amx_grouped;
    /* Q6_K stays on VNNI: its sub-blocks of 16 make tile products half as
     * useful, and measured slower (0.85-0.9x) */
    static const sl_type kq[] = {SL_TYPE_Q4_K, SL_TYPE_Q5_K};
    static const sl_gemm_packed_fn amx_kq[] = {gemm_q4_K_amx, gemm_q5_K_amx};
    for (int i = 0; i < 2; i++) {
        vnni_kq[kq[i]] = avx512->gemm_packed[kq[i]];
        if (vnni_kq[kq[i]]) {
            k->gemm_packed[kq[i]] = amx_kq[i];
            k->gemm_grouped[kq[i]] = NULL; /* (the tile kernels read the rows) */
        }
    }
    return true;
}

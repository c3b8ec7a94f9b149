/*
 * amx_gap.c — probe: does the engine's many-token Q4_0 AMX matmul
 * (kernels_amx.c) cost more than the bare tile + float sequence that
 * bench/amx_overlap.c times? Runs, in alternating 50 ms slices of one
 * process, the engine's kernel (the "amx" table, packed Q4_0, K = 2048, 4
 * tiles of 16 rows, TOKENS activation rows quantized by the engine) and a
 * copy of amx_overlap's "kernel" sequence (store product b, form product
 * b + 1, float steps of b) over the same amount of data: random weights in
 * B form, the engine's activation rows (same stride), every token group.
 * Prints the best slice of each, per 16 tokens x 16 rows x 32 block.
 *
 * Measured 2026-11-29 (two periods of this VM): engine 38.2 / 39.2 / 39.7 ns
 * against 35.7 / 36.7 / 38.8 for the bare sequence at 16 / 64 / 256 tokens;
 * later engine 33.1 / 29.0 against 28.4 / 28.3 at 16 / 64 tokens. At 16
 * tokens the engine also unpacks every block (a call's one token group
 * streams the tile in); from 64 tokens on the two are the same. So the
 * engine adds nothing measurable to the tile + float sequence; that
 * sequence costs 28-39 ns per block on this data, against the 22-23 ns
 * amx_overlap reports for one tile's zero-filled buffers used again and
 * again.
 *
 *   cc -O2 -march=sapphirerapids -Iinclude -Isrc bench/amx_gap.c build/libshardlm.a -lm -pthread -o build/amx_gap
 *   build/amx_gap [TOKENS=64]
 */
#include "compute/kernels.h"
#include "compute/quant.h"
#include "core/fp16.h"
#include "bench_util.h"

#include <immintrin.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define AI static inline __attribute__((always_inline))
#define K 2048
#define NB (K / 32)
#define NTILE 4

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

static int8_t *wq;   /* B form, NTILE tiles of NB blocks (512 bytes each) */
static uint8_t *wsc; /* fp16 row scales, 32 bytes per block */
static uint8_t *act;
static size_t as;
static int nt;
static alignas(64) int32_t cbuf[2][256];

AI void product(int s, int b, const int8_t *w, const uint8_t *a) {
    if (s) {
        _tile_loadd(3, a + 32 * b, (long)as);
        _tile_loadd(5, w + 512 * b, 64);
        _tile_zero(1);
        _tile_dpbssd(1, 3, 5);
    } else {
        _tile_loadd(2, a + 32 * b, (long)as);
        _tile_loadd(4, w + 512 * b, 64);
        _tile_zero(0);
        _tile_dpbssd(0, 2, 4);
    }
}

AI void store(int s, int32_t *c) {
    if (s) _tile_stored(1, c, 64);
    else _tile_stored(0, c, 64);
}

AI void scale(int b, const int32_t *c, const uint8_t *sc, const uint8_t *a, __m512 acc[16]) {
    const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(sc + 32 * b)));
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) {
        float d;
        memcpy(&d, a + (size_t)t * as + K + 4 * (size_t)b, 4);
        acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(d)),
                                 _mm512_cvtepi32_ps(_mm512_load_si512(c + 16 * t)), acc[t]);
    }
}

__attribute__((noinline)) static void bare(float *y) {
    for (int i = 0; i < NTILE; i++)
        for (int g = 0; g < nt / 16; g++) {
            const int8_t *w = wq + (size_t)i * NB * 512;
            const uint8_t *a = act + (size_t)g * 16 * as, *sc = wsc + (size_t)i * NB * 32;
            __m512 acc[16];
            for (int t = 0; t < 16; t++) acc[t] = _mm512_setzero_ps();
            product(0, 0, w, a);
            for (int b = 0; b < NB; b++) {
                store(b & 1, cbuf[b & 1]);
                if (b + 1 < NB) product((b + 1) & 1, b + 1, w, a);
                if (b > 0) scale(b - 1, cbuf[(b - 1) & 1], sc, a, acc);
            }
            scale(NB - 1, cbuf[(NB - 1) & 1], sc, a, acc);
            for (int t = 0; t < 16; t++) _mm512_storeu_ps(y + (size_t)(g * 16 + t) * NTILE * 16 + 16 * i, acc[t]);
        }
}

int main(int argc, char **argv) {
    nt = argc > 1 ? atoi(argv[1]) / 16 * 16 : 64;
    const sl_kernels *kt = sl_kernels_get("amx");
    if (nt < 16 || !kt || syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */)) {
        fprintf(stderr, "amx_gap: needs AMX and TOKENS >= 16\n");
        return 1;
    }
    const int nr = NTILE * 16;
    const size_t tile = sl_pack_tile_bytes(SL_TYPE_Q4_0, K), rs = (size_t)NB * sizeof(block_q4_0);
    uint8_t *w = malloc(rs * (size_t)nr), *packed = aligned_alloc(64, tile * NTILE);
    for (size_t i = 0; i < rs * (size_t)nr; i++) w[i] = rbyte();
    for (int r = 0; r < nr; r++)
        for (int b = 0; b < NB; b++) ((block_q4_0 *)(w + (size_t)r * rs))[b].d = sl_f32_to_f16(0.01f);
    sl_pack_rows(SL_TYPE_Q4_0, K, w, rs, nr, packed);
    as = sl_act_row_bytes(SL_ACT_Q8_0, K);
    act = aligned_alloc(64, as * (size_t)nt);
    float *x = malloc(sizeof(float) * K * (size_t)nt);
    for (size_t i = 0; i < (size_t)K * (size_t)nt; i++) x[i] = (float)((int)rbyte() - 128) / 64.0f;
    sl_act_quantize(SL_ACT_Q8_0, x, K, nt, K, act);
    wq = aligned_alloc(64, (size_t)NTILE * NB * 512);
    wsc = aligned_alloc(64, (size_t)NTILE * NB * 32);
    for (size_t i = 0; i < (size_t)NTILE * NB * 512; i++) wq[i] = (int8_t)((rbyte() & 15) - 8);
    for (size_t i = 0; i < (size_t)NTILE * NB * 16; i++) ((uint16_t *)wsc)[i] = sl_f32_to_f16(0.01f);
    float *y = malloc(sizeof(float) * (size_t)nr * (size_t)nt);
    void *scratch = aligned_alloc(64, (sl_gemm_scratch_bytes(K) + 63) / 64 * 64);
    alignas(64) tilecfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int s = 0; s < 2; s++) {
        c.rows[s] = 16, c.colsb[s] = 64;         /* C */
        c.rows[2 + s] = 16, c.colsb[2 + s] = 32; /* A */
        c.rows[4 + s] = 8, c.colsb[4 + s] = 64;  /* B */
    }
    double best[2] = {1e30, 1e30};
    for (int round = 0; round < 40; round++)
        for (int which = 0; which < 2; which++) {
            const double t0 = now();
            long it = 0;
            while (now() - t0 < 0.05) {
                if (which) {
                    __asm__ volatile("" : : "r"(&c) : "memory");
                    _tile_loadconfig(&c);
                    bare(y);
                } else {
                    kt->gemm_packed[SL_TYPE_Q4_0](K, packed, nr, act, as, nt, y, nr, scratch);
                }
                it++;
            }
            const double per = (now() - t0) / (double)it / (double)(NTILE * NB * (nt / 16)) * 1e9;
            if (per < best[which]) best[which] = per;
        }
    _tile_release();
    printf("tokens %d: engine %.2f ns, bare tile + float sequence %.2f ns per 16 x 16 x 32 block (best slices)\n", nt,
           best[0], best[1]);
    free(w), free(packed), free(act), free(x), free(wq), free(wsc), free(y), free(scratch);
    return 0;
}

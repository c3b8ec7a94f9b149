/*
 * amx_overlap.c — probe: does AMX tile work run alongside AVX-512 float
 * work on this CPU, as the many-token Q4_0 kernel (kernels_amx.c) assumes
 * when it forms one block's tile product while it scales the previous one?
 *
 * Everything stays in L1 (one 16-row tile of 64 Q4_0 blocks in B form, 16
 * tokens of activation quants); times are the best of many runs, per block
 * (16 tokens x 16 rows x 32):
 *   tiles       the kernel's tile sequence alone: store product b, then
 *               load A and B, zero C and multiply for block b + 1 (two sets)
 *   scale       the kernel's float steps alone (16 x mul, cvt, fma)
 *   kernel      both, interleaved as tile_tokens does with cached weights
 *   tiles4      tiles with four C tiles, products two blocks ahead
 *   kernel4     kernel with those four C tiles
 *   fma         48 independent FMAs (the float steps' port load, no memory)
 *   fma+zero    the same with one TILEZERO per block in between
 *   fma+zero16  the same with 16 TILEZEROs per 16 blocks, in one run
 *   fma+int     48 FMAs beside a chain of scalar integer work (control: no
 *               AMX instruction)
 *   burst2/4    kernel with the tile work of 2 (4) blocks back to back, then
 *               their float steps back to back: one switch between tile and
 *               vector work per 2 (4) blocks
 * If tile work and vector work overlapped, kernel would be near the larger
 * of tiles and scale; if they serialize, near their sum.
 *
 * On this VM (2026-11-29), in its quiet moments: tiles 12.1-12.8 ns, scale
 * 9.7-10.5, kernel 22.2-23.3 (the sum), tiles4 9.1-9.7 but kernel4
 * 21.8-22.1; fma 9.6-9.8, fma+zero 19.2-19.6 (one TILEZERO between two runs
 * of FMAs costs about 10 ns), fma+zero16 11.0-12.0, fma+int 9.8. So tile
 * instructions and AVX-512 float instructions do not run at the same time
 * here: the kernel's time is the tile time plus the float time, and
 * reordering them (more tile sets, scaling later) cannot hide one behind the
 * other. The tile figures (not the FMA ones) double for minutes at a time,
 * as if another guest shared the core's tile unit: compare runs only in a
 * quiet moment, and read the fma rows, which do not move, as the control.
 * Fewer switches do not help: burst2 22.4-22.6 against kernel 22.8, burst4
 * 28.7-28.8 (2026-11-29, same run) — the cost is the tile and float work
 * themselves, one after the other, not a penalty per switch.
 *
 *   cc -O2 -march=sapphirerapids bench/amx_overlap.c -o build/amx_overlap
 *   build/amx_overlap
 */
#include <immintrin.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define AI static inline __attribute__((always_inline))
#define NB 64    /* blocks per row: K = 2048 */
#define AS 2304  /* activation row stride: K quants, then NB float scales */

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

static alignas(64) int8_t wq[NB * 512];   /* weights in B form */
static alignas(64) uint8_t wsc[NB * 32];  /* fp16 row scales */
static alignas(64) uint8_t act[16 * AS];
static alignas(64) int32_t cbuf[4][256];
static volatile float sink;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* product of block b into tile set s (C: tmm s for s < 2, tmm 4 + s otherwise; A, B: tmm 2 + s % 2, 4 + s % 2
 * — A and B are only read while the product forms) */
AI void product(int s, int b) {
    switch (s) {
    case 0: _tile_loadd(2, act + 32 * b, AS); _tile_loadd(4, wq + 512 * b, 64); _tile_zero(0); _tile_dpbssd(0, 2, 4); break;
    case 1: _tile_loadd(3, act + 32 * b, AS); _tile_loadd(5, wq + 512 * b, 64); _tile_zero(1); _tile_dpbssd(1, 3, 5); break;
    case 2: _tile_loadd(2, act + 32 * b, AS); _tile_loadd(4, wq + 512 * b, 64); _tile_zero(6); _tile_dpbssd(6, 2, 4); break;
    default: _tile_loadd(3, act + 32 * b, AS); _tile_loadd(5, wq + 512 * b, 64); _tile_zero(7); _tile_dpbssd(7, 3, 5); break;
    }
}

AI void store(int s, int32_t *c) {
    switch (s) {
    case 0: _tile_stored(0, c, 64); break;
    case 1: _tile_stored(1, c, 64); break;
    case 2: _tile_stored(6, c, 64); break;
    default: _tile_stored(7, c, 64); break;
    }
}

/* the float steps of tile_tokens for block b (kernels_amx.c: scale_block) */
AI void scale(int b, const int32_t *c, __m512 acc[16]) {
    const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(wsc + 32 * b)));
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) {
        float d;
        memcpy(&d, act + (size_t)t * AS + 2048 + 4 * (size_t)b, 4);
        acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(d)),
                                 _mm512_cvtepi32_ps(_mm512_load_si512(c + 16 * t)), acc[t]);
    }
}

AI void fma48(__m512 acc[16], __m512 x) {
#pragma GCC unroll 16
    for (int t = 0; t < 16; t++) {
        acc[t] = _mm512_fmadd_ps(x, acc[t], x);
        acc[t] = _mm512_fmadd_ps(x, acc[t], x);
        acc[t] = _mm512_fmadd_ps(x, acc[t], x);
    }
}

AI void drain(__m512 acc[16]) {
    __m512 s = acc[0];
    for (int t = 1; t < 16; t++) s = _mm512_add_ps(s, acc[t]);
    sink = _mm512_reduce_add_ps(s);
}

#define VARIANT(NAME, BODY)                                                         \
    __attribute__((noinline)) static void NAME(int reps) {                          \
        __m512 acc[16];                                                             \
        for (int t = 0; t < 16; t++) acc[t] = _mm512_set1_ps((float)t * 1e-3f);     \
        const __m512 x = _mm512_set1_ps(sink * 1e-9f + 0.5f);                       \
        (void)x;                                                                    \
        for (int r = 0; r < reps; r++) { BODY }                                     \
        drain(acc);                                                                 \
    }

VARIANT(v_tiles, product(0, 0); for (int b = 0; b < NB; b++) {
    store(b & 1, cbuf[b & 1]);
    if (b + 1 < NB) product((b + 1) & 1, b + 1);
})
VARIANT(v_scale, for (int b = 0; b < NB; b++) scale(b, cbuf[b & 1], acc);)
VARIANT(v_kernel, product(0, 0); for (int b = 0; b < NB; b++) {
    store(b & 1, cbuf[b & 1]);
    if (b + 1 < NB) product((b + 1) & 1, b + 1);
    if (b > 0) scale(b - 1, cbuf[(b - 1) & 1], acc);
} scale(NB - 1, cbuf[(NB - 1) & 1], acc);)
VARIANT(v_tiles4, product(0, 0); product(1, 1); for (int b = 0; b < NB; b++) {
    if (b + 2 < NB) product((b + 2) & 3, b + 2);
    store(b & 3, cbuf[b & 3]);
})
VARIANT(v_kernel4, product(0, 0); product(1, 1); for (int b = 0; b < NB; b++) {
    if (b + 2 < NB) product((b + 2) & 3, b + 2);
    store(b & 3, cbuf[b & 3]);
    if (b > 0) scale(b - 1, cbuf[(b - 1) & 3], acc);
} scale(NB - 1, cbuf[(NB - 1) & 3], acc);)
/* bursts: the tile work of G blocks back to back (store the G products, form the next G), then their G float
 * steps back to back, so the core switches between tile and vector work once per G blocks */
VARIANT(v_burst2, product(0, 0); product(1, 1); for (int b = 0; b < NB; b += 2) {
    store(0, cbuf[0]);
    store(1, cbuf[1]);
    if (b + 2 < NB) {
        product(0, b + 2);
        product(1, b + 3);
    }
    scale(b, cbuf[0], acc);
    scale(b + 1, cbuf[1], acc);
})
VARIANT(v_burst4, for (int s = 0; s < 4; s++) product(s, s); for (int b = 0; b < NB; b += 4) {
    for (int s = 0; s < 4; s++) store(s, cbuf[s]);
    if (b + 4 < NB)
        for (int s = 0; s < 4; s++) product(s, b + 4 + s);
    for (int s = 0; s < 4; s++) scale(b + s, cbuf[s], acc);
})
VARIANT(v_fma, for (int b = 0; b < NB; b++) fma48(acc, x);)
VARIANT(v_fma_zero, for (int b = 0; b < NB; b++) {
    _tile_zero(0);
    fma48(acc, x);
})
VARIANT(v_fma_zero16, for (int b = 0; b < NB; b += 16) {
    for (int j = 0; j < 16; j += 2) {
        _tile_zero(0);
        _tile_zero(1);
    }
    for (int j = 0; j < 16; j++) fma48(acc, x);
})
VARIANT(v_fma_int, uint64_t u = (uint64_t)r + 1; for (int b = 0; b < NB; b++) {
    for (int j = 0; j < 8; j++) {
        u = u * 0x9E3779B97F4A7C15ull + 7;
        __asm__ volatile("" : "+r"(u));
    }
    fma48(acc, x);
} sink += (float)(u & 1);)

int main(void) {
    if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */)) {
        fprintf(stderr, "amx_overlap: the OS does not grant AMX tile data to this process\n");
        return 1;
    }
    alignas(64) tilecfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) {
        c.rows[t] = 16;
        c.colsb[t] = 64;
    }
    c.colsb[2] = c.colsb[3] = 32; /* A: 16 tokens x 32 quants */
    c.rows[4] = c.rows[5] = 8;    /* B: 8 rows of 4 quants x 16 rows */
    __asm__ volatile("" : : "r"(&c) : "memory");
    _tile_loadconfig(&c);
    for (int i = 0; i < NB * 16; i++) ((uint16_t *)wsc)[i] = 0x3c00; /* 1.0 */
    for (int t = 0; t < 16; t++)
        for (int b = 0; b < NB; b++) {
            const float d = 1e-3f;
            memcpy(act + (size_t)t * AS + 2048 + 4 * (size_t)b, &d, 4);
        }
    static const struct {
        const char *name;
        void (*fn)(int);
    } v[] = {{"tiles", v_tiles}, {"scale", v_scale},       {"kernel", v_kernel},         {"tiles4", v_tiles4},
             {"kernel4", v_kernel4}, {"fma", v_fma}, {"fma+zero", v_fma_zero}, {"fma+zero16", v_fma_zero16},
             {"fma+int", v_fma_int}, {"burst2", v_burst2}, {"burst4", v_burst4}};
    enum { NV = sizeof v / sizeof v[0], REPS = 4000 };
    double best[NV];
    for (int i = 0; i < NV; i++) best[i] = 1e30;
    for (int round = 0; round < 24; round++)
        for (int i = 0; i < NV; i++) {
            v[i].fn(50);
            for (int k = 0; k < 3; k++) {
                const double t0 = now();
                v[i].fn(REPS);
                const double ns = (now() - t0) / REPS / NB * 1e9;
                if (ns < best[i]) best[i] = ns;
            }
        }
    _tile_release();
    for (int i = 0; i < NV; i++) printf("%-11s %6.2f ns per block\n", v[i].name, best[i]);
    printf("kernel / (tiles + scale) = %.2f; kernel / max(tiles, scale) = %.2f\n", best[2] / (best[0] + best[1]),
           best[2] / (best[0] > best[1] ? best[0] : best[1]));
    return 0;
}

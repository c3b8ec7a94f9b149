/*
 * amx_bf16_order.c — probe: does an AMX BF16 tile product (TDPBF16PS) round
 * like a chain of AVX-512 VDPBF16PS, or like any simple sequential model?
 *
 * An F16 prompt path on AMX tiles (weights split into BF16 hi + lo) would
 * only keep batch invariance if the decode path (one token, no tiles) could
 * reproduce the tile unit's sums bit for bit. This draws random BF16 tiles
 * (16 × 2P by P × 16 pairs, P = 1, 2, 4, 16) and compares every output of
 * TDPBF16PS with:
 *   vdpbf16ps   one lane per column, the pairs in order (the instruction
 *               adds the odd product, then the even one)
 *   seq         each product added in turn, rounded each time (even, odd)
 *   pair        each pair's exact sum rounded to float, then added
 *   once        all products summed exactly, rounded, then added to C
 * Prints the share of outputs each model matches. On this VM (2026-11): for
 * one pair "pair" and "once" match every output (vdpbf16ps 99.2%); from two
 * pairs on none does — the best, "once", matches 98.2% (P = 2), 89.3% (4),
 * 52.0% (16), vdpbf16ps 95.3%, 83.8%, 43.2% — so the tile unit sums several
 * pairs in its own way, and no VDPBF16PS chain can stand in for it.
 *
 *   cc -O2 -march=sapphirerapids bench/amx_bf16_order.c -lm -o build/amx_bf16_order
 *   build/amx_bf16_order
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
/* A random BF16 in ±[2^-4, 2^4). */
static uint16_t rbf16(void) {
    float f = (float)((int64_t)(next() % 2000001) - 1000000) / 1e6f * ldexpf(1.0f, (int)(next() % 8) - 4);
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}
static float bf(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

int main(void) {
    if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */)) {
        puts("amx_bf16_order: no AMX tile data for this process");
        return 1;
    }
    static const int pairs[] = {1, 2, 4, 16};
    for (int pi = 0; pi < 4; pi++) {
        const int P = pairs[pi];
        tilecfg c;
        memset(&c, 0, sizeof c);
        c.palette = 1;
        c.colsb[0] = 64, c.rows[0] = 16;    /* C: 16 × 16 floats */
        c.colsb[1] = (uint16_t)(4 * P), c.rows[1] = 16; /* A: 16 rows × P pairs */
        c.colsb[2] = 64, c.rows[2] = (uint8_t)P;        /* B: P pair rows × 16 columns */
        _tile_loadconfig(&c);
        long match[4] = {0}, total = 0;
        for (int it = 0; it < 4000; it++) {
            uint16_t A[16][32], B[16][32];
            float C0[16][16], C[16][16];
            for (int m = 0; m < 16; m++)
                for (int k = 0; k < 32; k++) A[m][k] = rbf16();
            for (int k = 0; k < 16; k++)
                for (int j = 0; j < 32; j++) B[k][j] = rbf16();
            for (int m = 0; m < 16; m++)
                for (int n = 0; n < 16; n++) C0[m][n] = bf(rbf16());
            memcpy(C, C0, sizeof C);
            _tile_loadd(0, C, 64);
            _tile_loadd(1, A, 64);
            _tile_loadd(2, B, 64);
            _tile_dpbf16ps(0, 1, 2);
            _tile_stored(0, C, 64);
            for (int m = 0; m < 16; m++) {
                __m512 v = _mm512_loadu_ps(C0[m]);
                for (int k = 0; k < P; k++) {
                    uint32_t a2;
                    memcpy(&a2, &A[m][2 * k], 4);
                    v = _mm512_dpbf16_ps(v, (__m512bh)_mm512_loadu_si512(B[k]), (__m512bh)_mm512_set1_epi32((int)a2));
                }
                float vd[16];
                _mm512_storeu_ps(vd, v);
                for (int n = 0; n < 16; n++) {
                    double p[32];
                    for (int k = 0; k < 2 * P; k++) p[k] = (double)bf(A[m][k]) * bf(B[k / 2][2 * n + k % 2]);
                    float seq = C0[m][n], pair = C0[m][n];
                    double all = 0;
                    for (int k = 0; k < 2 * P; k++) seq = (float)((double)seq + p[k]), all += p[k];
                    for (int k = 0; k < P; k++) pair = (float)((double)pair + (double)(float)(p[2 * k] + p[2 * k + 1]));
                    const float once = (float)((double)C0[m][n] + (double)(float)all);
                    const float model[4] = {vd[n], seq, pair, once};
                    for (int i = 0; i < 4; i++) match[i] += memcmp(&model[i], &C[m][n], 4) == 0;
                    total++;
                }
            }
        }
        printf("pairs %2d: %ld outputs; matching TDPBF16PS: ", P, total);
        printf("vdpbf16ps %.1f%%, seq %.1f%%, pair %.1f%%, once %.1f%%\n", 100.0 * match[0] / total,
               100.0 * match[1] / total, 100.0 * match[2] / total, 100.0 * match[3] / total);
    }
    _tile_release();
    return 0;
}

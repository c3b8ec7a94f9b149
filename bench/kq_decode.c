/*
 * kq_decode.c — bench helper: in-cache throughput of one table's packed
 * one-token (decode) matmul, per weight type, in GB/s of packed weight
 * bytes. A set of 16-row tiles of about BYTES (default 256 KiB, so it
 * stays in L2) is read again and again; the output is checked against the
 * scalar table (memcmp) once, as a sanity check. With TOKENS > 1 it times
 * the many-token matmul of that many activation rows instead. Timed in slices of
 * 0.1 s, the kernel and the table's sum_u64 over the same bytes (the
 * bandwidth test of `shardlm bench`) in turn; reported: the best slice of
 * each and the median ratio of neighbouring slices (the machine may be
 * shared). With BYTES well over the last-level cache the ratio is the decode
 * efficiency of that type.
 *
 *   cc -O2 -Iinclude -Isrc bench/kq_decode.c build/libshardlm.a -lpcre2-8 -lutf8proc -lm -pthread -o build/kq_decode
 *   build/kq_decode [TABLE=avx512] [K=4096] [BYTES=262144] [SECONDS=1] [TYPES=Q4_K,Q5_K,Q6_K,Q4_0,Q8_0] [TOKENS=1]
 */
#include "compute/kernels.h"
#include "compute/quant.h"
#include "core/alloc.h"
#include "core/fp16.h"
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct kq_arg {
    const sl_kernels *kt;
    sl_type t;
    int64_t K, nr, nt;
    const uint8_t *packed, *act;
    size_t ab, set;
    float *y;
    void *scratch;
    uint64_t sink;
} kq_arg;

/* which 0: the kernel; 1: sum_u64 over the same bytes */
static void kq_run(int which, void *p) {
    kq_arg *a = p;
    if (which == 0) a->kt->gemm_packed[a->t](a->K, a->packed, a->nr, a->act, a->ab, a->nt, a->y, a->nr, a->scratch);
    else a->sink += a->kt->sum_u64((const uint64_t *)a->packed, a->set / 8);
}

static int run(const sl_kernels *kt, sl_type t, int64_t K, size_t bytes, double secs, int64_t nt) {
    const sl_kernels *ref = sl_kernels_get("scalar");
    const size_t bb = sl_type_get(t)->size, nblk = (size_t)K / sl_type_get(t)->blck, rs = nblk * bb;
    const size_t tile = sl_pack_tile_bytes(t, K);
    int64_t nr = (int64_t)(bytes / tile) * 16;
    if (nr < 16) nr = 16;
    uint8_t *w = malloc(rs * (size_t)nr), *packed = sl_malloc_aligned(tile * (size_t)(nr / 16)); /* huge pages, as the engine's */
    const sl_act ak = sl_act_of(t);
    const size_t ab = sl_act_row_bytes(ak, K);
    uint8_t *act = aligned_alloc(64, ab * (size_t)nt);
    float *x = malloc(sizeof(float) * (size_t)K * (size_t)nt), *y = malloc(sizeof(float) * (size_t)nr * (size_t)nt),
          *y0 = malloc(sizeof(float) * (size_t)nr * (size_t)nt);
    void *scratch = aligned_alloc(64, (sl_gemm_scratch_bytes(K) + 63) / 64 * 64);
    for (int64_t r = 0; r < nr; r++)
        for (size_t b = 0; b < nblk; b++) {
            uint8_t *blk = w + (size_t)r * rs + (size_t)b * bb;
            for (size_t i = 0; i < bb; i++) blk[i] = rbyte();
            if (t == SL_TYPE_Q4_0) {
                ((block_q4_0 *)blk)->d = sl_f32_to_f16(0.01f);
            } else if (t == SL_TYPE_Q6_K) {
                ((block_q6_K *)blk)->d = sl_f32_to_f16(0.0005f);
            } else {
                ((block_q4_K *)blk)->d = sl_f32_to_f16(0.001f);
                ((block_q4_K *)blk)->dmin = sl_f32_to_f16(0.001f);
            }
        }
    for (int64_t k = 0; k < K * nt; k++) x[k] = (float)((int)rbyte() - 128) / 64.0f;
    sl_act_quantize(ak, x, K, nt, K, act);
    sl_pack_rows(t, K, w, rs, nr, packed);
    ref->gemm[t](K, w, rs, nr, act, ab, nt, y0, nr, scratch);
    kt->gemm_packed[t](K, packed, nr, act, ab, nt, y, nr, scratch);
    const int same = memcmp(y, y0, sizeof(float) * (size_t)nr * (size_t)nt) == 0;
    /* slices of 0.1 s, the kernel and sum_u64 over the same bytes (the
     * bandwidth test of `shardlm bench`) in turn: the best of each, and the
     * median of the ratios of neighbouring slices (the machine may be shared) */
    const size_t set = tile * (size_t)(nr / 16);
    kq_arg ka = {.kt = kt, .t = t, .K = K, .nr = nr, .nt = nt, .packed = packed, .act = act, .ab = ab, .y = y,
                 .scratch = scratch, .set = set};
    double best[2], ratio[256];
    const int nratio = bench_alternate(kq_run, &ka, 0.1, secs, best, ratio, 256);
    /* calls per second to GB/s of the set; the ratios are sum_u64 over kernel: inverted */
    const double gbs = best[0] * (double)set * 1e-9, bw = best[1] * (double)set * 1e-9,
                 med = 1.0 / ratio[nratio - 1 - nratio / 2];
    printf("%s %-5s K=%lld rows=%lld tokens=%lld set=%zu KiB: %6.1f GB/s (sum_u64 %5.1f GB/s; median ratio %3.0f%%; "
           "%.1f ns per 16-row tile block)  %s\n",
           kt->name, sl_type_get(t)->name, (long long)K, (long long)nr, (long long)nt, set / 1024, gbs, bw, 100.0 * med,
           (double)tile / (double)(K / 32) / gbs,
           same ? "matches scalar" : "MISMATCH vs scalar");
    free(w);
    sl_free_aligned(packed);
    free(act);
    free(x);
    free(y);
    free(y0);
    free(scratch);
    return same ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "avx512";
    const int64_t K = argc > 2 ? atoll(argv[2]) : 4096;
    const size_t bytes = argc > 3 ? (size_t)atoll(argv[3]) : 262144;
    const double secs = argc > 4 ? atof(argv[4]) : 1.0;
    const char *only = argc > 5 ? argv[5] : NULL;
    const int64_t nt = argc > 6 ? atoll(argv[6]) : 1;
    const sl_kernels *kt = sl_kernels_get(name);
    if (!kt) {
        fprintf(stderr, "no kernel table %s\n", name);
        return 1;
    }
    int bad = 0;
    const sl_type types[] = {SL_TYPE_Q4_K, SL_TYPE_Q5_K, SL_TYPE_Q6_K, SL_TYPE_Q4_0, SL_TYPE_Q8_0};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (kt->gemm_packed[types[i]] && (!only || strstr(only, sl_type_get(types[i])->name)))
            bad |= run(kt, types[i], K, bytes, secs, nt);
    return bad;
}

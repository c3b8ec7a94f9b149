/*
 * kernel_ab.c — bench helper: one kernel table's packed matmul against the
 * same table as an older commit built it, in one process, so that the
 * machine's drift (this VM's speed moves ±30% over minutes) cancels out.
 * bench/kernel_ab.sh builds it: the older kernel file's global symbols get
 * the suffix _old, so both tables link into one binary.
 *
 * The two run in turn, 50 ms slices each, for SECONDS; each slice calls the
 * matmul in the engine's units of SL_GEMM_CHUNK rows over a set of about
 * BYTES of packed weights (256 KiB: in L2; 256 MiB: from memory) against
 * TOKENS activation rows. Reported: each one's best time per 16-row ×
 * 32-element block, and the median (with quartiles) of new/old speed over
 * neighbouring slices. The outputs of the two are compared bit for bit.
 * Each table runs the forward pass's path: its token-group kernel where it has
 * one (the activations grouped once per pass over the weights), else the
 * packed one.
 *
 *   build/kernel_ab TYPE K BYTES TOKENS [SECONDS=2]   (TYPE: Q4_0, Q8_0, Q4_K, Q5_K, Q6_K: the packed
 *   matmul; F16, BF16, F32: the matmul on rows as stored)
 *   build/kernel_ab ATTN N_POS HEAD_DIM N_Q [SECONDS=2] [KV=F16] [N_T=1]   (the attention kernel:
 *   one KV head's group of N_Q query heads over N_POS positions of a paged cache, 16-slot blocks in
 *   a shuffled order, 8 KV heads per slot; reported per position. With N_T > 1, a prompt's run of
 *   N_T tokens whose last sees N_POS positions: the new table takes them in one call
 *   (sl_attn_args.n_t), the old one token by token; reported per token and position)
 */
#include "compute/kernels.h"
#include "compute/quant.h"
#include "core/fp16.h"
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* the older table, filled by the renamed init of its kernel file */
extern const sl_kernels *kernel_ab_old(void);

typedef struct run {
    sl_type t;
    int64_t K, nr, nt;
    size_t tile, as, rs; /* tile: 0 for a type the table reads as stored (rows rs bytes apart) */
    const uint8_t *packed, *act;
    void *scratch, *groups; /* groups: room for the token groups (Q8_0 activations), or NULL */
} run;

/* The forward pass's path: a table's token-group kernel where it has one for
 * this many tokens (the rows grouped once per call, as the forward pass does
 * once per input), else its packed kernel, else the one on rows as stored. */
static void call(const sl_kernels *kt, const run *r, float *y) {
    const bool grouped = r->tile && r->groups && kt->gemm_grouped[r->t] && r->nt >= SL_GROUP_MIN_TOKENS;
    if (grouped) {
        sl_act_group(sl_act_of(r->t), r->act, r->as, 0, r->nt, r->K, r->groups);
        sl_act_group_pad(sl_act_of(r->t), r->nt, r->K, r->groups);
    }
    for (int64_t r0 = 0; r0 < r->nr; r0 += SL_GEMM_CHUNK) {
        const int64_t n = r->nr - r0 < SL_GEMM_CHUNK ? r->nr - r0 : SL_GEMM_CHUNK;
        if (grouped)
            kt->gemm_grouped[r->t](r->K, r->packed + (size_t)(r0 / 16) * r->tile, n, r->act, r->as, r->groups, r->nt,
                                   y + r0, r->nr, r->scratch);
        else if (r->tile)
            kt->gemm_packed[r->t](r->K, r->packed + (size_t)(r0 / 16) * r->tile, n, r->act, r->as, r->nt, y + r0, r->nr,
                                  r->scratch);
        else
            kt->gemm[r->t](r->K, r->packed + (size_t)r0 * r->rs, r->rs, n, r->act, r->as, r->nt, y + r0, r->nr,
                           r->scratch);
    }
}

/* Old and new in turn (bench_alternate), 50 ms slices each, for secs: returns the median new/old speed over
 * neighbouring slices (quartiles in q), each one's best calls per second in best. */
typedef struct ab_arg {
    void (*fn)(const sl_kernels *, const void *, float *);
    const void *arg;
    const sl_kernels *k[2];
    float *y[2];
} ab_arg;

static void ab_run(int which, void *p) {
    const ab_arg *a = p;
    a->fn(a->k[which], a->arg, a->y[which]);
}

static double ab_loop(void (*fn)(const sl_kernels *, const void *, float *), const void *arg, const sl_kernels *kold,
                      const sl_kernels *knew, float *y0, float *y1, double secs, double q[2], double best[2], int *pairs) {
    double ratio[1024];
    ab_arg a = {.fn = fn, .arg = arg, .k = {kold, knew}, .y = {y0, y1}};
    const int n = bench_alternate(ab_run, &a, 0.05, secs, best, ratio, 1024);
    q[0] = ratio[n / 4];
    q[1] = ratio[3 * n / 4];
    *pairs = n;
    return ratio[n / 2];
}

static void call_gemm(const sl_kernels *kt, const void *r, float *y) { call(kt, r, y); }

#define KV_HEADS 8
#define KV_BLOCK 16

static const sl_kernels *attn_new; /* the table whose calls take a run of tokens at once */

static void call_attn(const sl_kernels *kt, const void *a, float *y) {
    sl_attn_args args = *(const sl_attn_args *)a;
    args.out = y;
    if (kt == attn_new || args.n_t <= 1) {
        kt->attn(&args);
        return;
    }
    const int32_t n_t = args.n_t;
    args.n_t = 1;
    for (int32_t t = 0; t < n_t; t++) {
        kt->attn(&args);
        args.q += args.q_stride;
        args.out += args.out_stride;
        args.n_pos++;
    }
}

static int attn_ab(int argc, char **argv, const sl_kernels *kold, const sl_kernels *knew) {
    const int32_t n_pos = atoi(argv[2]), D = atoi(argv[3]), n_q = atoi(argv[4]);
    const double secs = argc > 5 ? atof(argv[5]) : 2.0;
    const char *kvn = argc > 6 ? argv[6] : "F16";
    const sl_type T = !strcmp(kvn, "F32") ? SL_TYPE_F32 : !strcmp(kvn, "Q8_0") ? SL_TYPE_Q8_0 : SL_TYPE_F16;
    const int32_t n_t = argc > 7 ? atoi(argv[7]) : 1;
    if (n_pos < 1 || D < 1 || (T == SL_TYPE_Q8_0 && D % 32) || n_q < 1 || n_q > 8 || n_t < 1 ||
        n_t > SL_ATTN_MAX_T || n_t > n_pos) {
        fprintf(stderr, "kernel_ab: ATTN N_POS HEAD_DIM N_Q [SECONDS] [F32|F16|Q8_0] [N_T] (N_Q 1..8, N_T 1..%d)\n",
                SL_ATTN_MAX_T);
        return 2;
    }
    const int32_t nblk = (n_pos + KV_BLOCK - 1) / KV_BLOCK;
    const size_t slot = sl_type_row_size(T, (int64_t)KV_HEADS * D), bbytes = slot * KV_BLOCK;
    const size_t kvb = (bbytes * (size_t)nblk + 63) / 64 * 64;
    uint8_t *k = aligned_alloc(64, kvb), *v = aligned_alloc(64, kvb);
    int32_t *blocks = malloc(sizeof(int32_t) * (size_t)nblk);
    const size_t qn = (size_t)n_t * (size_t)n_q * (size_t)D;
    float *row = malloc(sizeof(float) * (size_t)KV_HEADS * (size_t)D), *q = malloc(sizeof(float) * qn);
    float *y0 = malloc(sizeof(float) * qn), *y1 = malloc(sizeof(float) * qn);
    for (int32_t b = 0; b < nblk; b++) blocks[b] = b;
    for (int32_t b = nblk - 1; b > 0; b--) { /* a shuffled block table, as after a while of serving */
        const int32_t j = (int32_t)(rbyte() % (uint32_t)(b + 1)), z = blocks[b];
        blocks[b] = blocks[j];
        blocks[j] = z;
    }
    for (int32_t p = 0; p < nblk * KV_BLOCK; p++)
        for (int kv = 0; kv < 2; kv++) {
            for (int32_t i = 0; i < KV_HEADS * D; i++) row[i] = (float)((int)rbyte() - 128) / 64.0f;
            sl_quantize_row(T, row, (kv ? v : k) + (size_t)p * slot, (int64_t)KV_HEADS * D);
        }
    for (size_t i = 0; i < qn; i++) q[i] = (float)((int)rbyte() - 128) / 64.0f;
    const size_t head = sl_type_row_size(T, (int64_t)3 * D); /* KV head 3 of the slot */
    const sl_attn_args a = {.q = q, .n_q = n_q, .head_dim = D, .n_pos = n_pos - n_t + 1, .scale = 0.125f, .kv_type = T,
                            .blocks = blocks, .block_size = KV_BLOCK, .block_bytes = bbytes, .slot_bytes = slot,
                            .k_base = k + head, .v_base = v + head, .n_t = n_t, .q_stride = n_q * D,
                            .out_stride = n_q * D};
    attn_new = knew;
    call_attn(kold, &a, y0);
    call_attn(knew, &a, y1);
    const int same = memcmp(y0, y1, sizeof(float) * qn) == 0;
    double qs[2], best[2];
    int n;
    const double med = ab_loop(call_attn, &a, kold, knew, y0, y1, secs, qs, best, &n);
    const double per = (double)n_t * (n_pos - (n_t - 1) / 2.0); /* token-positions per call */
    printf("%s attention %s n_pos=%d head_dim=%d n_q=%d n_t=%d: old %.2f ns, new %.2f ns per %s (best slice); "
           "new/old speed: median %.3f, quartiles %.3f-%.3f over %d pairs; %s\n",
           knew->name, sl_type_name(T), n_pos, D, n_q, n_t, 1e9 / best[0] / per, 1e9 / best[1] / per,
           n_t > 1 ? "token and position" : "position", med, qs[0], qs[1], n, same ? "same bits" : "DIFFERENT OUTPUT");
    free(k), free(v), free(blocks), free(row), free(q), free(y0), free(y1);
    return same ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc >= 5 && !strcmp(argv[1], "ATTN")) {
        const sl_kernels *kold = kernel_ab_old(), *knew = kold ? sl_kernels_get(kold->name) : NULL;
        if (!knew) return 2;
        return attn_ab(argc, argv, kold, knew);
    }
    if (argc < 5) {
        fprintf(stderr, "usage: kernel_ab TYPE K BYTES TOKENS [SECONDS]\n");
        return 2;
    }
    sl_type t = SL_TYPE_COUNT;
    for (int i = 0; i < SL_TYPE_COUNT; i++)
        if (sl_type_get((sl_type)i) && !strcmp(sl_type_get((sl_type)i)->name, argv[1])) t = (sl_type)i;
    const int64_t K = atoll(argv[2]), nt = atoll(argv[4]);
    const size_t bytes = (size_t)atoll(argv[3]);
    const double secs = argc > 5 ? atof(argv[5]) : 2.0;
    const sl_kernels *kold = kernel_ab_old(), *knew = kold ? sl_kernels_get(kold->name) : NULL;
    const bool packs = knew && knew->gemm_packed[t] && kold->gemm_packed[t];
    if (t == SL_TYPE_COUNT || !knew || (!packs && (!knew->gemm[t] || !kold->gemm[t])) || K <= 0 || nt <= 0 ||
        K % sl_type_get(t)->blck) {
        fprintf(stderr, "kernel_ab: no %s kernel in this table, or a bad K / TOKENS\n", argv[1]);
        return 2;
    }
    const size_t bb = sl_type_get(t)->size, nblk = (size_t)(K / sl_type_get(t)->blck), rs = nblk * bb;
    run r = {.t = t, .K = K, .nt = nt, .tile = packs ? sl_pack_tile_bytes(t, K) : 0, .rs = rs};
    r.nr = (int64_t)(bytes / (packs ? r.tile : 16 * rs)) * 16;
    if (r.nr < 16) r.nr = 16;
    const size_t wbytes = packs ? r.tile * (size_t)(r.nr / 16) : rs * (size_t)r.nr;
    uint8_t *w = malloc(rs * (size_t)r.nr), *packed = aligned_alloc(64, (wbytes + 63) / 64 * 64);
    for (size_t i = 0; i < rs * (size_t)r.nr; i++) w[i] = rbyte();
    if (t == SL_TYPE_F16 || t == SL_TYPE_BF16 || t == SL_TYPE_F32) /* finite values: small random floats */
        for (size_t i = 0; i < (size_t)r.nr * (size_t)K; i++) {
            const float v = (float)((int)rbyte() - 128) / 1024.0f;
            if (t == SL_TYPE_F32) memcpy(w + 4 * i, &v, 4);
            else {
                const uint16_t h = t == SL_TYPE_F16 ? sl_f32_to_f16(v) : sl_f32_to_bf16(v);
                memcpy(w + 2 * i, &h, 2);
            }
        }
    const bool quantized = !(t == SL_TYPE_F16 || t == SL_TYPE_BF16 || t == SL_TYPE_F32);
    for (int64_t row = 0; row < r.nr && quantized; row++) /* sane scales: the first fp16 of every quantized type's block is a scale */
        for (size_t b = 0; b < nblk; b++) {
            const uint16_t d = sl_f32_to_f16(0.001f);
            memcpy(w + (size_t)row * rs + b * bb + (t == SL_TYPE_Q6_K ? bb - 2 : 0), &d, 2);
            if (t == SL_TYPE_Q4_K || t == SL_TYPE_Q5_K) memcpy(w + (size_t)row * rs + b * bb + 2, &d, 2);
        }
    const sl_act ak = sl_act_of(t);
    r.as = sl_act_row_bytes(ak, K);
    uint8_t *act = aligned_alloc(64, r.as * (size_t)nt);
    float *x = malloc(sizeof(float) * (size_t)(K * nt)), *y0 = malloc(sizeof(float) * (size_t)(r.nr * nt)),
          *y1 = malloc(sizeof(float) * (size_t)(r.nr * nt));
    for (int64_t k = 0; k < K * nt; k++) x[k] = (float)((int)rbyte() - 128) / 64.0f;
    sl_act_quantize(ak, x, K, nt, K, act);
    if (packs) sl_pack_rows(t, K, w, rs, r.nr, packed);
    else memcpy(packed, w, wbytes);
    r.packed = packed;
    r.act = act;
    r.scratch = aligned_alloc(64, (sl_gemm_scratch_bytes(K) + 63) / 64 * 64);
    if (ak != SL_ACT_F32) r.groups = aligned_alloc(64, sl_act_group_bytes(ak, K) * (size_t)((nt + 15) / 16));
    call(kold, &r, y0);
    call(knew, &r, y1);
    const int same = memcmp(y0, y1, sizeof(float) * (size_t)(r.nr * nt)) == 0;
    double qs[2], best[2];
    int n;
    const double med = ab_loop(call_gemm, &r, kold, knew, y0, y1, secs, qs, best, &n);
    const double blocks = (double)(r.nr / 16) * (double)(K / 32);
    printf("%s %s K=%lld set=%zu KiB tokens=%lld: old %.1f ns, new %.1f ns per 16-row x 32 block (best slice); "
           "new/old speed: median %.3f, quartiles %.3f-%.3f over %d pairs; %s\n",
           knew->name, argv[1], (long long)K, wbytes / 1024, (long long)nt,
           1e9 / best[0] / blocks, 1e9 / best[1] / blocks, med, qs[0], qs[1], n,
           same ? "same bits" : "DIFFERENT OUTPUT");
    free(w);
    free(packed);
    free(act);
    free(x);
    free(y0);
    free(y1);
    free(r.scratch);
    free(r.groups);
    return same ? 0 : 1;
}

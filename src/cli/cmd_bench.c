/*
 * cmd_bench.c — `shardlm bench -m MODEL [-p 512] [-n 128] [-b 1,4,16,64] [-t T]`:
 * throughput of the forward pass, measured like llama-bench (pp / tg) and
 * llama-batched-bench, plus the machine's memory read bandwidth in the same
 * run and the decode efficiency it implies.
 *
 *   prompt_tps   one sequence, -p tokens in one step from position 0
 *   decode_tps   one sequence, -n steps of one token from position 0
 *   batched_tps  B sequences, -n steps of B tokens (one per sequence)
 *   bandwidth    sum of a --bw-mib array with -t threads, each reading its
 *                part as four concurrent sequential streams, as a matmul
 *                reads several rows (GB/s, 1e9 bytes)
 *   efficiency   decode tokens/s × bytes of weights read per token ÷ bandwidth
 *                (the decode roofline: 1.0 = reading the weights at the
 *                measured bandwidth). On a shared machine the bandwidth drifts
 *                with the neighbours' load, so it is measured again right
 *                before each decode repetition and the efficiency is the
 *                median of the per-repetition ratios.
 * Each figure is the median of -r repetitions after one warm-up; --json
 * prints one object.
 */
#include "commands.h"
#include "common.h"
#include "opts.h"

#include "compute/kernels.h"
#include "core/alloc.h"
#include "core/pool.h"
#include "engine/forward.h"
#include "engine/kv.h"
#include "model/model.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { O_MODEL, O_PROMPT, O_N, O_BATCH, O_THREADS, O_REPS, O_KV, O_BW, O_KERNELS, O_JSON, O_COUNT };

static const opt_def OPTS[O_COUNT] = {
    [O_MODEL] = {"model", "m", OPT_STR, NULL, 0, -1, "GGUF model file"},
    [O_PROMPT] = {"n-prompt", "p", OPT_INT, "512", 0, 1 << 16, "prompt tokens (0: skip)"},
    [O_N] = {"n-gen", "n", OPT_INT, "128", 0, 1 << 16, "generated tokens per sequence (0: skip decoding)"},
    [O_BATCH] = {"batch", "b", OPT_STR, "1,4,16,64", 0, -1, "sequences decoded together, comma-separated"},
    [O_THREADS] = {"threads", "t", OPT_INT, NULL, 1, 1024, "compute threads (default: number of CPUs)"},
    [O_REPS] = {"repetitions", "r", OPT_INT, "3", 1, 1000, "repetitions of each test (median reported)"},
    [O_KV] = {"kv-type", NULL, OPT_STR, "f16", 0, -1, "KV cache element type: f32, f16, q8_0"},
    [O_BW] = {"bw-mib", NULL, OPT_INT, "512", 0, 1 << 20, "array size of the bandwidth test (0: skip)"},
    [O_KERNELS] = {"kernels", NULL, OPT_STR, NULL, 0, -1, "kernel table: scalar, avx2, avx512, amx (default: best)"},
    [O_JSON] = {"json", NULL, OPT_BOOL, NULL, 0, -1, "print one JSON object"},
};

#define MAX_B 32

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- memory bandwidth ------------------------------------------------------ */

typedef struct bw_job {
    const sl_kernels *k;
    const uint64_t *a;
    size_t n;
    uint64_t sums[1024];
} bw_job;

static void bw_sum(void *arg, int ith, int nth) {
    bw_job *j = arg;
    long long lo, hi;
    sl_split_range((long long)(j->n / 64), ith, nth, &lo, &hi);
    j->sums[ith] = j->k->sum_u64(j->a + lo * 64, (size_t)(hi - lo) * 64);
}

/* An array of `mib` MiB, written once (so its pages exist). */
static bw_job *bw_create(int64_t mib, const sl_kernels *k) {
    const size_t bytes = (size_t)mib << 20;
    bw_job *j = calloc(1, sizeof *j);
    uint64_t *a = sl_malloc_aligned(bytes);
    if (!j || !a) {
        free(j);
        sl_free_aligned(a);
        return NULL;
    }
    j->n = bytes / sizeof(uint64_t);
    for (size_t i = 0; i < j->n; i++) a[i] = i;
    j->a = a;
    j->k = k;
    return j;
}

static void bw_destroy(bw_job *j) {
    if (!j) return;
    sl_free_aligned((void *)j->a);
    free(j);
}

/* Read bandwidth in GB/s: one sum of the array with the pool's threads. */
static double bw_measure(sl_pool *pool, bw_job *j) {
    const double t0 = now_s();
    sl_pool_run(pool, bw_sum, j);
    return (double)(j->n * sizeof(uint64_t)) / (now_s() - t0) / 1e9;
}

/* ---- forward-pass tests ---------------------------------------------------------- */

typedef struct bench {
    const sl_model *m;
    sl_kv_cache *kv;
    sl_fwd *f;
    sl_kv_seq seqs[MAX_B > 64 ? MAX_B : 64];
    sl_kv_seq *seq_ptrs[64];
    int32_t *tok, *pos, *seq;
    float *logits;
    int32_t max_batch;
} bench;

static uint32_t rng = 12345;
static int32_t rand_token(int32_t n_vocab) {
    rng = rng * 1664525u + 1013904223u;
    return (int32_t)((rng >> 8) % (uint32_t)n_vocab);
}

/* One step of n tokens: n_seq sequences × per tokens each, at positions start.. */
static sl_status step(bench *b, int n_seq, int32_t per, int32_t start) {
    int32_t k = 0;
    for (int s = 0; s < n_seq; s++)
        for (int32_t i = 0; i < per; i++, k++) {
            b->tok[k] = rand_token(b->m->hp.n_vocab);
            b->pos[k] = start + i;
            b->seq[k] = s;
        }
    /* logits for the last token of each sequence (as a generator would) */
    uint8_t want[64 * 8];
    uint8_t *w = k <= (int32_t)sizeof want ? want : NULL;
    if (w)
        for (int32_t i = 0; i < k; i++) w[i] = (i % per) == per - 1;
    sl_batch bt = {.n_tokens = k, .tokens = b->tok, .pos = b->pos, .seq = b->seq, .want_logits = w};
    return sl_fwd_step(b->f, &bt, b->seq_ptrs, n_seq, b->logits);
}

static sl_status reserve(bench *b, int n_seq, int32_t n_pos) {
    for (int s = 0; s < 64; s++) sl_kv_seq_release(b->kv, &b->seqs[s]);
    for (int s = 0; s < n_seq; s++) {
        sl_status st = sl_kv_seq_reserve(b->kv, &b->seqs[s], n_pos);
        if (st) return st;
    }
    return SL_OK;
}

static sl_status run_prompt(bench *b, int32_t p, int reps, double *tps) {
    double t[1000];
    sl_status st = reserve(b, 1, p);
    for (int r = -1; r < reps && !st; r++) { /* r = -1: warm-up (pages of the mapped file) */
        double t0 = now_s();
        st = step(b, 1, p, 0);
        if (r >= 0) t[r] = (double)p / (now_s() - t0);
    }
    if (!st) *tps = median(t, reps);
    return st;
}

/* n steps of n_seq tokens; with a bandwidth probe (bw != NULL), the
 * bandwidth is measured before each repetition into bw_r[r]. */
static sl_status run_decode(bench *b, int n_seq, int32_t n, int reps, double *tps, sl_pool *pool, bw_job *bw,
                            double *bw_r, double *tps_r) {
    double t[1000];
    sl_status st = reserve(b, n_seq, n);
    for (int r = -1; r < reps && !st; r++) {
        if (r >= 0 && bw) bw_r[r] = bw_measure(pool, bw);
        double t0 = now_s();
        for (int32_t i = 0; i < (r < 0 ? 4 : n) && !st; i++) st = step(b, n_seq, 1, i);
        if (r >= 0) t[r] = (double)n * n_seq / (now_s() - t0);
        if (r >= 0 && tps_r) tps_r[r] = t[r];
    }
    if (!st) *tps = median(t, reps);
    return st;
}

static int parse_batches(const char *s, int *out) {
    int n = 0;
    while (*s && n < MAX_B) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 64) return -1;
        out[n++] = (int)v;
        s = end;
        if (*s == ',') s++;
        else if (*s) return -1;
    }
    return n;
}

int cmd_bench(int argc, char **argv) {
    static const char usage[] = "-m MODEL [-p 512] [-n 128] [-b 1,4,16,64] [-t THREADS] [-r 3] [--kv-type f16] [--json]";
    opt_val v[O_COUNT];
    const char *pos[1];
    int n_pos, rc = 1;
    int r = opts_parse("bench", usage, OPTS, O_COUNT, v, argc, argv, pos, 0, &n_pos);
    if (r) return r > 0 ? 0 : 1;
    int batches[MAX_B];
    const int n_b = parse_batches(v[O_BATCH].s, batches);
    if (n_b < 0) {
        fprintf(stderr, "shardlm bench: -b wants sequence counts 1..64 separated by commas, got '%s'\n", v[O_BATCH].s);
        return 1;
    }
    sl_type kv_type;
    if (!sl_kv_type_from_name(v[O_KV].s, &kv_type)) {
        fprintf(stderr, "shardlm bench: --kv-type must be f32, f16 or q8_0, got '%s'\n", v[O_KV].s);
        return 1;
    }
    const int threads = v[O_THREADS].set ? (int)v[O_THREADS].i : cli_default_threads();
    const int reps = (int)v[O_REPS].i;
    const int32_t P = (int32_t)v[O_PROMPT].i, N = (int32_t)v[O_N].i;
    sl_model *m = cli_load_model("bench", v[O_MODEL].s);
    if (!m) return 1;
    const sl_hparams *hp = &m->hp;
    bench b = {.m = m};
    sl_pool *pool = NULL;
    int max_seq = 1;
    for (int i = 0; i < n_b; i++)
        if (batches[i] > max_seq) max_seq = batches[i];
    const int32_t ctx = P > N ? P : N;
    b.max_batch = P > max_seq ? P : max_seq;
    if (b.max_batch < 1) b.max_batch = 1;
    const int32_t per_seq = (ctx + 15) / 16 + 1;
    double prompt_tps = 0, decode_tps = 0, bw = 0, eff = 0, batched[MAX_B] = {0};
    double bw_r[1000], tps_r[1000], eff_r[1000];
    bw_job *bwj = NULL;
    sl_status st = sl_kv_create_typed(hp->n_layer, hp->n_head_kv * hp->head_dim, 16, per_seq * max_seq, kv_type, &b.kv);
    sl_fwd_params fp = {.max_batch = b.max_batch, .n_ctx = ctx > 0 ? ctx : 1, .n_threads = threads,
                        .kernels = v[O_KERNELS].set ? v[O_KERNELS].s : NULL};
    if (!st) st = sl_fwd_create(m, b.kv, &fp, &b.f);
    b.tok = sl_alloc_array((size_t)b.max_batch, sizeof(int32_t));
    b.pos = sl_alloc_array((size_t)b.max_batch, sizeof(int32_t));
    b.seq = sl_alloc_array((size_t)b.max_batch, sizeof(int32_t));
    b.logits = sl_alloc_array((size_t)max_seq * (size_t)hp->n_vocab, sizeof(float));
    for (int s = 0; s < 64; s++) b.seq_ptrs[s] = &b.seqs[s];
    if (!st && (!b.tok || !b.pos || !b.seq || !b.logits)) st = SL_ERR_NOMEM;
    if (!st && v[O_BW].i > 0) {
        st = sl_pool_create(threads, &pool);
        const sl_kernels *k = v[O_KERNELS].set ? sl_kernels_get(v[O_KERNELS].s) : sl_kernels_best();
        if (!st && !(bwj = bw_create(v[O_BW].i, k ? k : sl_kernels_best()))) st = SL_ERR_NOMEM;
        if (!st) bw_measure(pool, bwj); /* warm-up */
    }
    if (!st && P > 0) st = run_prompt(&b, P, reps, &prompt_tps);
    if (!st && N > 0) st = run_decode(&b, 1, N, reps, &decode_tps, pool, bwj, bw_r, tps_r);
    if (!st && bwj) {
        if (N > 0) {
            for (int k = 0; k < reps; k++) eff_r[k] = tps_r[k] * (double)m->weight_bytes / (bw_r[k] * 1e9);
            eff = median(eff_r, reps);
        } else {
            for (int k = 0; k < reps; k++) bw_r[k] = bw_measure(pool, bwj);
        }
        bw = median(bw_r, reps);
    }
    for (int i = 0; i < n_b && !st && N > 0; i++) {
        if (batches[i] == 1) batched[i] = decode_tps;
        else st = run_decode(&b, batches[i], N, reps, &batched[i], NULL, NULL, NULL, NULL);
    }
    if (st) {
        fprintf(stderr, "shardlm bench: %s\n", st == SL_ERR_NOMEM ? "out of memory" : sl_last_error());
        goto done;
    }
    const double bytes = (double)m->weight_bytes;
    if (v[O_JSON].b) {
        json_t *o = json_object(), *bo = json_object();
        json_object_set_new(o, "model", json_string(v[O_MODEL].s));
        json_object_set_new(o, "kernels", json_string(sl_fwd_path_name(b.f)));
        json_object_set_new(o, "threads", json_integer(threads));
        json_object_set_new(o, "kv_type", json_string(v[O_KV].s));
        json_object_set_new(o, "n_prompt", json_integer(P));
        json_object_set_new(o, "n_gen", json_integer(N));
        json_object_set_new(o, "weight_bytes_per_token", json_integer((json_int_t)m->weight_bytes));
        json_object_set_new(o, "prompt_tps", json_real(prompt_tps));
        json_object_set_new(o, "decode_tps", json_real(decode_tps));
        for (int i = 0; i < n_b; i++) {
            char k[16];
            snprintf(k, sizeof k, "%d", batches[i]);
            json_object_set_new(bo, k, json_real(batched[i]));
        }
        json_object_set_new(o, "batched_tps", bo);
        json_object_set_new(o, "bandwidth_gbs", json_real(bw));
        json_object_set_new(o, "decode_efficiency", json_real(eff));
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
        json_decref(o);
        if (s) puts(s);
        free(s);
    } else {
        printf("model      %s (%s, %.2f GB of weights read per token)\n", v[O_MODEL].s, hp->arch, bytes / 1e9);
        printf("kernels    %s, %d threads, KV %s, median of %d\n", sl_fwd_path_name(b.f), threads, v[O_KV].s, reps);
        if (bw > 0) printf("bandwidth  %.1f GB/s (read, %lld MiB)\n", bw, (long long)v[O_BW].i);
        if (P > 0) printf("prompt     %.1f tokens/s (pp%d)\n", prompt_tps, P);
        if (N > 0) {
            printf("decode     %.2f tokens/s (tg%d)", decode_tps, N);
            if (bw > 0) printf(", %.0f%% of the bandwidth roofline (%.1f tokens/s at the median bandwidth)", eff * 100,
                               bw * 1e9 / bytes);
            printf("\n");
            for (int i = 0; i < n_b; i++)
                printf("batched    %2d sequences: %.1f tokens/s (%.2fx batch 1)\n", batches[i], batched[i],
                       decode_tps > 0 ? batched[i] / decode_tps : 0);
        }
    }
    rc = 0;
done:
    if (b.kv)
        for (int s = 0; s < 64; s++) sl_kv_seq_deinit(b.kv, &b.seqs[s]);
    bw_destroy(bwj);
    sl_pool_destroy(pool);
    sl_fwd_destroy(b.f);
    sl_kv_destroy(b.kv);
    sl_free(b.tok);
    sl_free(b.pos);
    sl_free(b.seq);
    sl_free(b.logits);
    sl_model_destroy(m);
    return rc;
}

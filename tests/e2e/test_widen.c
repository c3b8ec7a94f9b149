/*
 * test_widen.c — the weight types without kernels of their own, kept in
 * memory as a wider type (quant.h: Q5_0 and IQ4_NL as Q8_0, Q3_K as Q6_K,
 * Q4_1 and Q5_1 as F32).
 *
 * The oracles below restate ggml's block definitions (ggml-common.h) and
 * its dequantize_row_q5_0 / _iq4_nl / _q3_K / _q4_1 / _q5_1 loops as ggml
 * writes them — Q3_K's scales through the same 32-bit mask shuffle — while the library
 * converts element by element, so the two are different readings of the
 * format:
 *   - random blocks of each type, with the extreme codes forced in (Q3_K:
 *     scale 0 with quant -4, the product 128 that int8 cannot hold), give
 *     the same floats through the library (sl_widen_row, then the wider
 *     type's dequantizer; and sl_dequantize_row) as through the oracle;
 *   - small-llama-Q8_0 rewritten with its matrices in the five types
 *     (attention q/k Q5_0, v Q5_1, output Q4_1, gate/up IQ4_NL, down and
 *     the tied embedding Q3_K) loads, and its reference-path logits equal those of an F32 copy that
 *     holds the oracle's values; its fast path stays within the Q6_K band
 *     of test_fastpath.c (llama.cpp's own distance, plus 25%).
 */
#include "harness.h"

#include "shardlm.h"
#include "compute/quant.h"
#include "core/fp16.h"
#include "model/gguf.h"
#include "model/gguf_write.h"
#include "model/model.h"
#include "fwd_util.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

/* ---- oracles (ggml's loops) ------------------------------------------------------------ */

static const int8_t IQ4NL[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* block_q5_0: fp16 d, uint8 qh[4], uint8 qs[16] */
static void oracle_q5_0(const uint8_t *x, float *y) {
    const float d = sl_f16_to_f32((uint16_t)(x[0] | x[1] << 8));
    uint32_t qh;
    memcpy(&qh, x + 2, 4);
    const uint8_t *qs = x + 6;
    for (int j = 0; j < 16; j++) {
        const uint8_t xh_0 = (uint8_t)(((qh >> (j + 0)) << 4) & 0x10);
        const uint8_t xh_1 = (uint8_t)(((qh >> (j + 12))) & 0x10);
        const int32_t x0 = ((qs[j] & 0x0F) | xh_0) - 16;
        const int32_t x1 = ((qs[j] >> 4) | xh_1) - 16;
        y[j] = (float)x0 * d;
        y[j + 16] = (float)x1 * d;
    }
}

/* block_iq4_nl: fp16 d, uint8 qs[16] */
static void oracle_iq4_nl(const uint8_t *x, float *y) {
    const float d = sl_f16_to_f32((uint16_t)(x[0] | x[1] << 8));
    for (int j = 0; j < 16; j++) {
        y[j] = d * IQ4NL[x[2 + j] & 0xf];
        y[j + 16] = d * IQ4NL[x[2 + j] >> 4];
    }
}

/* block_q3_K: uint8 hmask[32], uint8 qs[64], uint8 scales[12], fp16 d */
static void oracle_q3_K(const uint8_t *x, float *y) {
    const uint32_t kmask1 = 0x03030303, kmask2 = 0x0f0f0f0f;
    uint32_t aux[4];
    const int8_t *scales = (const int8_t *)aux;
    const float d_all = sl_f16_to_f32((uint16_t)(x[108] | x[109] << 8));
    const uint8_t *q = x + 32, *hm = x;
    uint8_t m = 1;
    memcpy(aux, x + 96, 12);
    const uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
    aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
    aux[0] = (aux[0] & kmask2) | (((tmp >> 0) & kmask1) << 4);
    aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
    int is = 0;
    for (int n = 0; n < 256; n += 128) {
        int shift = 0;
        for (int j = 0; j < 4; ++j) {
            float dl = d_all * (float)(scales[is++] - 32);
            for (int l = 0; l < 16; ++l) *y++ = dl * (float)((int8_t)((q[l + 0] >> shift) & 3) - ((hm[l + 0] & m) ? 0 : 4));
            dl = d_all * (float)(scales[is++] - 32);
            for (int l = 0; l < 16; ++l) *y++ = dl * (float)((int8_t)((q[l + 16] >> shift) & 3) - ((hm[l + 16] & m) ? 0 : 4));
            shift += 2;
            m = (uint8_t)(m << 1);
        }
        q += 32;
    }
}

/* block_q4_1: fp16 d, fp16 m, uint8 qs[16]; block_q5_1: fp16 d, fp16 m, uint8 qh[4], uint8 qs[16] */
static void oracle_q4_1(const uint8_t *x, float *y) {
    const float d = sl_f16_to_f32((uint16_t)(x[0] | x[1] << 8)), m = sl_f16_to_f32((uint16_t)(x[2] | x[3] << 8));
    for (int j = 0; j < 16; ++j) {
        const int x0 = (x[4 + j] & 0x0F);
        const int x1 = (x[4 + j] >> 4);
        y[j + 0] = (float)x0 * d + m;
        y[j + 16] = (float)x1 * d + m;
    }
}

static void oracle_q5_1(const uint8_t *x, float *y) {
    const float d = sl_f16_to_f32((uint16_t)(x[0] | x[1] << 8)), m = sl_f16_to_f32((uint16_t)(x[2] | x[3] << 8));
    uint32_t qh;
    memcpy(&qh, x + 4, sizeof(qh));
    for (int j = 0; j < 16; ++j) {
        const uint8_t xh_0 = (uint8_t)(((qh >> (j + 0)) << 4) & 0x10);
        const uint8_t xh_1 = (uint8_t)(((qh >> (j + 12))) & 0x10);
        const int x0 = (x[8 + j] & 0x0F) | xh_0;
        const int x1 = (x[8 + j] >> 4) | xh_1;
        y[j + 0] = (float)x0 * d + m;
        y[j + 16] = (float)x1 * d + m;
    }
}

typedef struct wtype {
    sl_type t, wide;
    int blck, bytes;
    void (*oracle)(const uint8_t *, float *);
} wtype;

enum { N_WT = 5 };
static const wtype TYPES[N_WT] = {
    {SL_TYPE_Q5_0, SL_TYPE_Q8_0, 32, 22, oracle_q5_0},
    {SL_TYPE_IQ4_NL, SL_TYPE_Q8_0, 32, 18, oracle_iq4_nl},
    {SL_TYPE_Q3_K, SL_TYPE_Q6_K, 256, 110, oracle_q3_K},
    {SL_TYPE_Q4_1, SL_TYPE_F32, 32, 20, oracle_q4_1},
    {SL_TYPE_Q5_1, SL_TYPE_F32, 32, 24, oracle_q5_1},
};

/* ---- 1. blocks ------------------------------------------------------------------------- */

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (uint32_t)(rs >> 16);
}

TEST(widened_blocks_match_the_oracles) {
    enum { NBLK = 512 };
    for (int ti = 0; ti < N_WT; ti++) {
        const wtype *w = &TYPES[ti];
        CHECK_EQ_INT(sl_type_widened(w->t), w->wide);
        CHECK_EQ_INT((int)sl_type_get(w->t)->size, w->bytes);
        const int n = NBLK * w->blck;
        uint8_t *x = malloc((size_t)NBLK * (size_t)w->bytes);
        uint8_t *wide = malloc(sl_type_row_size(w->wide, n));
        float *want = malloc(sizeof(float) * (size_t)n), *got = malloc(sizeof(float) * (size_t)n),
              *direct = malloc(sizeof(float) * (size_t)n);
        for (int b = 0; b < NBLK; b++) {
            uint8_t *blk = x + (size_t)b * (size_t)w->bytes;
            for (int i = 0; i < w->bytes; i++) blk[i] = (uint8_t)rnd();
            /* a normal fp16 scale of either sign (bits 0x0400..0x7BFF) */
            const uint16_t d = (uint16_t)(0x0400 + rnd() % (0x7C00 - 0x0400)) | (uint16_t)((rnd() & 1) << 15);
            const int at = w->t == SL_TYPE_Q3_K ? 108 : 0;
            blk[at] = (uint8_t)d;
            blk[at + 1] = (uint8_t)(d >> 8);
            if (w->wide == SL_TYPE_F32) { /* the offset m: a normal fp16 too */
                const uint16_t mh = (uint16_t)(0x0400 + rnd() % (0x7C00 - 0x0400)) | (uint16_t)((rnd() & 1) << 15);
                blk[2] = (uint8_t)mh;
                blk[3] = (uint8_t)(mh >> 8);
            }
            if (b % 8 == 1) { /* extremes: every code the lowest, then every code the highest */
                if (w->t == SL_TYPE_Q3_K) {
                    memset(blk, 0, 32);                         /* high bits 0: q - 4 */
                    memset(blk + 32, b % 16 == 1 ? 0x00 : 0xFF, 64); /* q 0 (-4) or 3 (-1) */
                    memset(blk + 96, b % 16 == 1 ? 0x00 : 0xFF, 12); /* scales 0 (-32) or 63 (31) */
                } else {
                    const size_t q0 = w->wide == SL_TYPE_F32 ? 4 : 2; /* after d (and m) */
                    memset(blk + q0, b % 16 == 1 ? 0x00 : 0xFF, (size_t)w->bytes - q0);
                }
            }
        }
        sl_widen_row(w->t, x, wide, n);
        for (int b = 0; b < NBLK; b++) w->oracle(x + (size_t)b * (size_t)w->bytes, want + (size_t)b * (size_t)w->blck);
        CHECK(sl_dequantize_row(w->wide, wide, got, n));
        CHECK(sl_dequantize_row(w->t, x, direct, n));
        int bad = 0, first = -1;
        for (int i = 0; i < n; i++)
            if (memcmp(&got[i], &want[i], 4) != 0 || memcmp(&direct[i], &want[i], 4) != 0) {
                if (first < 0) first = i;
                bad++;
            }
        if (first >= 0)
            fprintf(stderr, "    %s element %d: oracle %g, widened %g, direct %g\n", sl_type_name(w->t), first,
                    (double)want[first], (double)got[first], (double)direct[first]);
        /* Q3_K's 128 = (-32) * (-4) came through */
        if (w->t == SL_TYPE_Q3_K) {
            const float d1 = sl_f16_to_f32((uint16_t)(x[110 + 108] | x[110 + 109] << 8));
            CHECK(want[256] == 128.0f * d1 && got[256] == want[256]);
        }
        free(x);
        free(wide);
        free(want);
        free(got);
        free(direct);
        CHECK_MSG(bad == 0, "%s: %d of %d values differ from the oracle", sl_type_name(w->t), bad, n);
    }
    CHECK_EQ_INT(sl_type_widened(SL_TYPE_Q2_K), SL_TYPE_COUNT);
    CHECK_EQ_INT(sl_type_widened(SL_TYPE_Q8_0), SL_TYPE_COUNT);
}

/* ---- 2. a model in the three types --------------------------------------------------------- */

/* Simple encoders (inputs only: the expected values are the oracle's reading of what they write). */
static uint16_t f16(float v) { return sl_f32_to_f16(v); }

static void enc_q5_0(const float *v, uint8_t *o) {
    float amax = 0;
    for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(v[i]));
    const uint16_t dh = f16(amax / 15.0f);
    const float d = sl_f16_to_f32(dh), id = d > 0 ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    memset(o, 0, 22);
    memcpy(o, &dh, 2);
    for (int j = 0; j < 32; j++) {
        int q = (int)lrintf(v[j] * id) + 16;
        q = q < 0 ? 0 : q > 31 ? 31 : q;
        o[6 + (j & 15)] |= (uint8_t)((q & 15) << (j < 16 ? 0 : 4));
        qh |= (uint32_t)(q >> 4) << j;
    }
    memcpy(o + 2, &qh, 4);
}

/* Q4_1 (bits 4) or Q5_1 (bits 5): m = min, d = (max - min) / (2^bits - 1). */
static void enc_q_1(int bits, const float *v, uint8_t *o) {
    float lo = v[0], hi = v[0];
    for (int i = 1; i < 32; i++) {
        lo = fminf(lo, v[i]);
        hi = fmaxf(hi, v[i]);
    }
    const int qmax = (1 << bits) - 1;
    const uint16_t dh = f16((hi - lo) / (float)qmax), mh = f16(lo);
    const float d = sl_f16_to_f32(dh), m = sl_f16_to_f32(mh), id = d > 0 ? 1.0f / d : 0.0f;
    memset(o, 0, bits == 4 ? 20 : 24);
    memcpy(o, &dh, 2);
    memcpy(o + 2, &mh, 2);
    uint8_t *qs = o + (bits == 4 ? 4 : 8);
    uint32_t qh = 0;
    for (int j = 0; j < 32; j++) {
        int q = (int)lrintf((v[j] - m) * id);
        q = q < 0 ? 0 : q > qmax ? qmax : q;
        qs[j & 15] |= (uint8_t)((q & 15) << (j < 16 ? 0 : 4));
        qh |= (uint32_t)(q >> 4) << j;
    }
    if (bits == 5) memcpy(o + 4, &qh, 4);
}

static void enc_iq4_nl(const float *v, uint8_t *o) {
    float amax = 0;
    for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(v[i]));
    const uint16_t dh = f16(amax / 127.0f);
    const float d = sl_f16_to_f32(dh);
    memset(o, 0, 18);
    memcpy(o, &dh, 2);
    for (int j = 0; j < 32; j++) {
        int best = 0;
        for (int k = 1; k < 16; k++)
            if (fabsf(v[j] - d * IQ4NL[k]) < fabsf(v[j] - d * IQ4NL[best])) best = k;
        o[2 + (j & 15)] |= (uint8_t)(best << (j < 16 ? 0 : 4));
    }
}

static void enc_q3_K(const float *v, uint8_t *o) {
    float sub[16], smax = 0;
    for (int k = 0; k < 16; k++) {
        float amax = 0;
        for (int i = 0; i < 16; i++) amax = fmaxf(amax, fabsf(v[16 * k + i]));
        sub[k] = amax / 4.0f;
        smax = fmaxf(smax, sub[k]);
    }
    const uint16_t dh = f16(smax / 31.0f);
    const float d = sl_f16_to_f32(dh);
    memset(o, 0, 110);
    memcpy(o + 108, &dh, 2);
    for (int k = 0; k < 16; k++) {
        int s = d > 0 ? (int)lrintf(sub[k] / d) : 0;
        s = s < -32 ? -32 : s > 31 ? 31 : s;
        const int u = s + 32; /* 6 bits: low 4 in nibble k, high 2 in byte 8 + k % 4 at bits 2 (k / 4) */
        o[96 + (k & 7)] |= (uint8_t)((u & 15) << (k < 8 ? 0 : 4));
        o[96 + 8 + k % 4] |= (uint8_t)((u >> 4) << (2 * (k / 4)));
        const float dl = d * (float)s;
        for (int i = 0; i < 16; i++) {
            const int e = 16 * k + i;
            int q = dl != 0 ? (int)lrintf(v[e] / dl) : 0;
            q = q < -4 ? -4 : q > 3 ? 3 : q;
            const int L = q + 4, h = e / 128, g = e % 128 / 32, l = e % 32;
            if (L > 3) o[l] |= (uint8_t)(1 << (4 * h + g));
            o[32 + 32 * h + l] |= (uint8_t)((L & 3) << (2 * g));
        }
    }
}

static const wtype *type_for(const char *name) {
    if (strstr(name, "attn_q") || strstr(name, "attn_k")) return &TYPES[0];
    if (strstr(name, "attn_v")) return &TYPES[4];
    if (strstr(name, "attn_output")) return &TYPES[3];
    if (strstr(name, "ffn_gate") || strstr(name, "ffn_up")) return &TYPES[1];
    return &TYPES[2]; /* ffn_down, token_embd */
}

/* small-llama-Q8_0 with its Q8_0 matrices re-encoded (widened_path) and as F32 holding the oracle's values of
 * those blocks (f32_path). */
static sl_status write_pair(const char *src, const char *widened_path, const char *f32_path, int *n_mats) {
    sl_gguf *g = NULL;
    sl_status st = sl_gguf_open(src, &g);
    if (st) return st;
    sl_gguf_writer *wa = NULL, *wb = NULL;
    if (!st) st = sl_gguf_writer_create(widened_path, &wa);
    if (!st) st = sl_gguf_writer_create(f32_path, &wb);
    for (int64_t i = 0; !st && i < sl_gguf_n_kv(g); i++) {
        st = sl_gguf_writer_copy_kv(wa, sl_gguf_kv_at(g, i));
        if (!st) st = sl_gguf_writer_copy_kv(wb, sl_gguf_kv_at(g, i));
    }
    *n_mats = 0;
    for (int64_t i = 0; !st && i < sl_gguf_n_tensors(g); i++) {
        const sl_gguf_tensor *t = sl_gguf_tensor_at(g, i);
        char name[80];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        const bool mat = t->type == SL_TYPE_Q8_0;
        *n_mats += mat;
        st = sl_gguf_writer_add_tensor(wa, name, t->n_dims, t->ne, mat ? type_for(name)->t : t->type);
        if (!st) st = sl_gguf_writer_add_tensor(wb, name, t->n_dims, t->ne, mat ? SL_TYPE_F32 : t->type);
    }
    if (!st) st = sl_gguf_writer_begin_data(wa);
    if (!st) st = sl_gguf_writer_begin_data(wb);
    for (int64_t i = 0; !st && i < sl_gguf_n_tensors(g); i++) {
        const sl_gguf_tensor *t = sl_gguf_tensor_at(g, i);
        if (t->type != SL_TYPE_Q8_0) {
            st = sl_gguf_writer_write(wa, t->data, t->nbytes);
            if (!st) st = sl_gguf_writer_write(wb, t->data, t->nbytes);
            continue;
        }
        char name[80];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        const wtype *w = type_for(name);
        const int64_t k = t->ne[0], nblk = k / w->blck;
        float *row = malloc(sizeof(float) * (size_t)k), *val = malloc(sizeof(float) * (size_t)k);
        uint8_t *enc = malloc((size_t)nblk * (size_t)w->bytes);
        for (int64_t r = 0; !st && r < t->ne[1]; r++) {
            sl_dequantize_row(SL_TYPE_Q8_0, (const uint8_t *)t->data + (size_t)r * sl_type_row_size(SL_TYPE_Q8_0, k), row,
                              k);
            for (int64_t b = 0; b < nblk; b++) {
                uint8_t *o = enc + (size_t)b * (size_t)w->bytes;
                const float *v = row + b * w->blck;
                if (w->t == SL_TYPE_Q5_0) enc_q5_0(v, o);
                else if (w->t == SL_TYPE_IQ4_NL) enc_iq4_nl(v, o);
                else if (w->t == SL_TYPE_Q4_1) enc_q_1(4, v, o);
                else if (w->t == SL_TYPE_Q5_1) enc_q_1(5, v, o);
                else enc_q3_K(v, o);
                w->oracle(o, val + b * w->blck);
            }
            st = sl_gguf_writer_write(wa, enc, (size_t)nblk * (size_t)w->bytes);
            if (!st) st = sl_gguf_writer_write(wb, val, sizeof(float) * (size_t)k);
        }
        free(row);
        free(val);
        free(enc);
    }
    if (!st) st = sl_gguf_writer_finish(wa);
    if (!st) st = sl_gguf_writer_finish(wb);
    sl_gguf_writer_destroy(wa);
    sl_gguf_writer_destroy(wb);
    sl_gguf_close(g);
    return st;
}

/* Logits of every position of toks (one sequence, one step), reference or fast path. */
static sl_status logits_of(const sl_model *m, const int32_t *toks, int32_t n, bool reference, float *out) {
    const sl_fwd_params fp = {.n_threads = 2, .reference = reference};
    return eval_all(m, toks, n, SL_TYPE_F32, &fp, out);
}

TEST(widened_model_runs) {
    const char *src = sl_test_shared("models/small/small-llama-Q8_0.gguf");
    CHECK(src);
    char pa[] = "/tmp/shardlm-test-widen-XXXXXX", pb[] = "/tmp/shardlm-test-widen-f32-XXXXXX";
    int fa = mkstemp(pa), fb = mkstemp(pb);
    CHECK(fa >= 0 && fb >= 0);
    close(fa);
    close(fb);
    int n_mats = 0;
    sl_status st = write_pair(src, pa, pb, &n_mats);
    sl_model *ma = NULL, *mb = NULL;
    if (!st) st = sl_model_load(pa, &ma);
    if (!st) st = sl_model_load(pb, &mb);
    unlink(pa);
    unlink(pb);
    CHECK_OK(st);
    CHECK_EQ_INT(ma->n_widened, n_mats);
    CHECK_EQ_INT(ma->tok_embd.type, SL_TYPE_Q6_K);
    CHECK_EQ_INT(ma->layers[0].wq.type, SL_TYPE_Q8_0);
    CHECK_EQ_INT(ma->layers[0].wv.type, SL_TYPE_F32);
    CHECK_EQ_INT(ma->layers[0].wo.type, SL_TYPE_F32);
    CHECK_EQ_INT(ma->layers[0].w_up.type, SL_TYPE_Q8_0);
    CHECK_EQ_INT(ma->layers[0].w_down.type, SL_TYPE_Q6_K);

    const int32_t toks[] = {1, 450, 4996, 17354, 1701, 432, 17204, 975, 278, 17366, 11203, 29889};
    const int32_t n = (int32_t)(sizeof toks / sizeof toks[0]), V = ma->hp.n_vocab;
    float *ra = malloc(sizeof(float) * (size_t)n * (size_t)V), *rb = malloc(sizeof(float) * (size_t)n * (size_t)V),
          *fa_ = malloc(sizeof(float) * (size_t)n * (size_t)V);
    st = logits_of(ma, toks, n, true, ra);
    if (!st) st = logits_of(mb, toks, n, true, rb);
    if (!st) st = logits_of(ma, toks, n, false, fa_);
    double d_ref = 0, d_fast = 0, scale = 0;
    for (size_t i = 0; !st && i < (size_t)n * (size_t)V; i++) {
        d_ref = fmax(d_ref, fabs((double)ra[i] - (double)rb[i]));
        d_fast = fmax(d_fast, fabs((double)fa_[i] - (double)rb[i]));
        scale = fmax(scale, fabs((double)rb[i]));
    }
    free(ra);
    free(rb);
    free(fa_);
    sl_model_destroy(ma);
    sl_model_destroy(mb);
    CHECK_OK(st);
    printf("    widened model against its F32 copy: reference path %.3g, fast path %.3g (max |logit| %.3g)\n", d_ref,
           d_fast, scale);
    CHECK(scale > 1.0);
    CHECK_MSG(d_ref <= 1e-4, "reference path: %.3g from the F32 copy", d_ref);
    CHECK_MSG(d_fast <= 1.9 * 1.25, "fast path: %.3g from the F32 copy (Q6_K band 2.4)", d_fast);
}

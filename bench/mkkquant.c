/*
 * mkkquant.c — bench helper: rewrite a GGUF (e.g. a 1B-shape file from
 * `shardlm mkmodel`) with the tensor types of llama.cpp's Q4_K_M mix, to
 * measure the K-quant kernels at the real model size (mkmodel writes only
 * F32/F16/BF16/Q8_0/Q4_0).
 *
 * Types (llama-quantize's Q4_K_M rule): matrices Q4_K; token_embd and
 * output Q6_K; attn_v and ffn_down Q6_K in the layers where
 * use_more_bits(i, n) = i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2; norms
 * and other vectors copied as they are. The quantized blocks are random
 * (valid encodings, scales near the source's magnitude): throughput depends
 * on the layout and size only, not on the values.
 *
 *   cc -O2 -Iinclude -Isrc bench/mkkquant.c build/libshardlm.a -lpcre2-8 -lutf8proc -lm -pthread -o build/mkkquant
 *   build/mkkquant IN.gguf OUT.gguf
 */
#include "shardlm.h"
#include "compute/quant.h"
#include "core/fp16.h"
#include "bench_util.h"
#include "model/gguf.h"
#include "model/gguf_write.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static sl_type pick(const sl_gguf_tensor *t, int n_layer) {
    char name[96];
    snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
    if (t->n_dims < 2 || t->ne[1] == 1 || t->ne[0] % 256 != 0) return t->type;
    if (!strcmp(name, "token_embd.weight") || !strcmp(name, "output.weight")) return SL_TYPE_Q6_K;
    int layer = -1;
    if (sscanf(name, "blk.%d.", &layer) == 1 && (strstr(name, "attn_v") || strstr(name, "ffn_down")) &&
        more_bits(layer, n_layer))
        return SL_TYPE_Q6_K;
    return SL_TYPE_Q4_K;
}

/* One row of random K-quant blocks whose weights have mean 0 and standard
 * deviation sd, as mkmodel's matrices (1/sqrt(n_in); token_embd 2/sqrt(dim)):
 * with the sub-block scales and quants uniform, Q4_K's w = d·sc·q - dmin·m
 * (sc, m in 0..63, q in 0..15) has mean (31.5·7.5·d - 31.5·dmin) = 0 for
 * dmin = 7.5 d and standard deviation 258 d; Q6_K's w = d·sc·(q - 32) (sc
 * int8, q in 0..63) has 1369 d. (Full-range random quants under a fixed d
 * of 0.001, as this tool once wrote, made weights near 1: the gates grew
 * so large that SiLU gave subnormal floats to ffn_down, whose float steps
 * then ran 2-3x slower than a real model's.) */
static void fill(sl_type t, uint8_t *row, int64_t n, double sd) {
    const size_t bb = sl_type_get(t)->size;
    for (int64_t b = 0; b < n / 256; b++) {
        uint8_t *x = row + (size_t)b * bb;
        for (size_t i = 0; i < bb; i++) x[i] = rbyte();
        if (t == SL_TYPE_Q6_K) {
            ((block_q6_K *)x)->d = sl_f32_to_f16((float)(sd / 1369.0));
        } else {
            ((block_q4_K *)x)->d = sl_f32_to_f16((float)(sd / 258.0));
            ((block_q4_K *)x)->dmin = sl_f32_to_f16((float)(7.5 * sd / 258.0));
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s IN.gguf OUT.gguf\n", argv[0]);
        return 2;
    }
    sl_gguf *g = NULL;
    sl_gguf_writer *w = NULL;
    sl_status st = sl_gguf_open(argv[1], &g);
    int n_layer = 0;
    for (int64_t i = 0; !st && i < sl_gguf_n_tensors(g); i++) {
        int l;
        const sl_gguf_tensor *t = sl_gguf_tensor_at(g, i);
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (sscanf(name, "blk.%d.", &l) == 1 && l + 1 > n_layer) n_layer = l + 1;
    }
    if (!st) st = sl_gguf_writer_create(argv[2], &w);
    for (int64_t i = 0; !st && i < sl_gguf_n_kv(g); i++) st = sl_gguf_writer_copy_kv(w, sl_gguf_kv_at(g, i));
    if (!st) st = sl_gguf_writer_set_u32(w, "general.file_type", 15); /* LLAMA_FTYPE_MOSTLY_Q4_K_M */
    for (int64_t i = 0; !st && i < sl_gguf_n_tensors(g); i++) {
        const sl_gguf_tensor *t = sl_gguf_tensor_at(g, i);
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        st = sl_gguf_writer_add_tensor(w, name, t->n_dims, t->ne, pick(t, n_layer));
    }
    if (!st) st = sl_gguf_writer_begin_data(w);
    uint8_t *row = NULL;
    for (int64_t i = 0; !st && i < sl_gguf_n_tensors(g); i++) {
        const sl_gguf_tensor *t = sl_gguf_tensor_at(g, i);
        const sl_type ty = pick(t, n_layer);
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (ty == t->type) {
            st = sl_gguf_writer_write(w, t->data, t->nbytes);
            continue;
        }
        const size_t rb = sl_type_row_size(ty, t->ne[0]);
        row = realloc(row, rb);
        const bool embd = !strncmp(name, "token_embd", 10) || !strncmp(name, "output.", 7);
        const double sd = (embd ? 2.0 : 1.0) / sqrt((double)t->ne[0]);
        for (int64_t r = 0; !st && r < t->ne[1]; r++) {
            fill(ty, row, t->ne[0], sd);
            st = sl_gguf_writer_write(w, row, rb);
        }
    }
    free(row);
    if (!st) st = sl_gguf_writer_finish(w);
    sl_gguf_writer_destroy(w);
    sl_gguf_close(g);
    if (st) {
        fprintf(stderr, "mkkquant: %s\n", sl_last_error());
        return 1;
    }
    return 0;
}

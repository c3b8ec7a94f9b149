/*
 * rerank_util.h — a reranker for end-to-end tests, made of a real model file
 * (header-only: each test program that includes it, after harness.h, gets
 * its own copy).
 */
#ifndef SL_TEST_RERANK_UTIL_H
#define SL_TEST_RERANK_UTIL_H

#include "compute/ops.h"
#include "compute/quant.h"
#include "model/gguf_write.h"
#include "model/model.h"

#include <stdlib.h>
#include <unistd.h>

/* A reranker made of model src: its file with <arch>.pooling_type = rank, a two-label classification head
 * (cls.output.weight, F32) whose rows are the model's output rows for tokens a and b (so the head's outputs are
 * those two logits), and rerank template tpl where given. */
static inline bool make_reranker(const char *src, char *dst, int a, int b, const char *tpl) {
    if (!sl_test_temp_file(dst, NULL)) return false;
    sl_model *m = NULL;
    sl_gguf_writer *w = NULL;
    if (sl_model_load(src, &m) != SL_OK) return false;
    const int d = m->hp.n_embd;
    float *rows = malloc(sizeof(float) * 2 * (size_t)d);
    sl_dequantize_row(m->output.type, sl_tensor_row(&m->output, a), rows, d);
    sl_dequantize_row(m->output.type, sl_tensor_row(&m->output, b), rows + d, d);
    const sl_gguf *g = m->gguf;
    char pool_key[64], labels_key[80];
    snprintf(pool_key, sizeof pool_key, "%s.pooling_type", m->hp.arch);
    snprintf(labels_key, sizeof labels_key, "%s.classifier.output_labels", m->hp.arch);
    sl_status st = sl_gguf_writer_create(dst, &w);
    for (int64_t i = 0; !st && i < sl_gguf_n_kv(g); i++) {
        const sl_gguf_kv *kv = sl_gguf_kv_at(g, i);
        if (!sl_str_eq(kv->key, pool_key)) st = sl_gguf_writer_copy_kv(w, kv);
    }
    static const char *const labels[] = {"yes", "no"};
    if (!st) st = sl_gguf_writer_set_u32(w, pool_key, 4);
    if (!st) st = sl_gguf_writer_set_arr_str(w, labels_key, labels, 2);
    if (!st && tpl) st = sl_gguf_writer_set_str(w, "tokenizer.chat_template.rerank", tpl);
    for (int64_t i = 0; !st && i < sl_gguf_n_tensors(g); i++) {
        const sl_gguf_tensor *t = sl_gguf_tensor_at(g, i);
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        st = sl_gguf_writer_add_tensor(w, name, t->n_dims, t->ne, t->type);
    }
    const int64_t ne[2] = {d, 2};
    if (!st) st = sl_gguf_writer_add_tensor(w, "cls.output.weight", 2, ne, SL_TYPE_F32);
    if (!st) st = sl_gguf_writer_begin_data(w);
    for (int64_t i = 0; !st && i < sl_gguf_n_tensors(g); i++) st = sl_gguf_writer_write(w, sl_gguf_tensor_at(g, i)->data, sl_gguf_tensor_at(g, i)->nbytes);
    if (!st) st = sl_gguf_writer_write(w, rows, sizeof(float) * 2 * (size_t)d);
    if (!st) st = sl_gguf_writer_finish(w);
    sl_gguf_writer_destroy(w);
    sl_model_destroy(m);
    free(rows);
    if (st) unlink(dst);
    return st == SL_OK;
}

#endif

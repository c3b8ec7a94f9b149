/*
 * test_embed.c — pooling names, and a reranker's classification head
 * (engine/embed.h) on a hand-made head: the dense layer with its tanh, the
 * output layer with its bias, raw for Llama and a softmax for Qwen3, checked
 * against the formula written out here.
 */
#include "harness.h"

#include "engine/embed.h"
#include "model/model.h"

#include <math.h>

TEST(pooling_names) {
    static const char *const names[] = {"none", "mean", "cls", "last", "rank"};
    for (int i = 0; i < 5; i++) {
        sl_pooling p;
        CHECK(sl_pooling_from_name(names[i], &p));
        CHECK_EQ_INT((int)p, i);
        CHECK_STR(sl_pooling_name(p), names[i]);
    }
    sl_pooling p;
    CHECK(!sl_pooling_from_name("max", &p));
    CHECK_EQ_INT((int)sl_pooling_default(4), (int)SL_POOL_RANK);
    CHECK_EQ_INT((int)sl_pooling_default(-1), (int)SL_POOL_LAST);
}

TEST(rank_head) {
    float cls_w[4] = {1.0f, 2.0f, 0.5f, -1.0f}, cls_b[2] = {0.1f, -0.2f};
    float out_w[6] = {1.0f, 0.0f, 0.0f, 1.0f, 1.0f, 1.0f}, out_b[3] = {0.0f, 0.5f, -0.5f};
    const float h[2] = {0.3f, 0.4f};
    for (int qwen = 0; qwen < 2; qwen++) {
        sl_model m = {0};
        m.arch = sl_arch_find(qwen ? "qwen3" : "llama");
        CHECK(m.arch);
        m.hp.n_embd = 2;
        CHECK(!sl_model_can_rank(&m));
        m.cls_w = cls_w;
        m.cls_b = cls_b;
        CHECK(sl_model_can_rank(&m));
        CHECK_EQ_INT((int)sl_rank_position(&m), qwen ? (int)SL_POOL_LAST : (int)SL_POOL_CLS);
        float out[3];
        /* the dense layer alone: its tanh outputs */
        const double y0 = tanh(1.0 * 0.3 + 2.0 * 0.4 + 0.1), y1 = tanh(0.5 * 0.3 - 1.0 * 0.4 - 0.2);
        m.arch = sl_arch_find("llama");
        CHECK_EQ_INT(sl_rank_head(&m, h, out), 2);
        CHECK(fabs(out[0] - y0) < 1e-6 && fabs(out[1] - y1) < 1e-6);
        m.arch = sl_arch_find(qwen ? "qwen3" : "llama");
        m.cls_out_w = out_w;
        m.cls_out_b = out_b;
        m.n_cls_out = 3;
        CHECK_EQ_INT(sl_rank_head(&m, h, out), 3);
        double want[3] = {y0, y1 + 0.5, y0 + y1 - 0.5};
        if (qwen) {
            const double s = exp(want[0]) + exp(want[1]) + exp(want[2]);
            for (int i = 0; i < 3; i++) want[i] = exp(want[i]) / s;
        }
        for (int i = 0; i < 3; i++) CHECK_MSG(fabs(out[i] - want[i]) < 1e-6, "output %d: %.7f, want %.7f", i, out[i], want[i]);
    }
}

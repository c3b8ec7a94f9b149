/*
 * test_small.c — the reference path on the small random-weight Llama files
 * (every weight type this layer supports) against an independent float64
 * forward pass (golden/small/NAME.NN.ref_f64.f32), teacher-forced on llama.cpp's
 * ids: 4 rows of 32000 logits, row k after prompt + generated[0:k]
 * (Q4_K_M, Q5_K_M and Q6_K included). Files in types without kernels must be refused
 * with an error naming the tensor and type.
 */
#include "harness.h"

#include "shardlm.h"
#include "core/alloc.h"
#include "engine/forward.h"
#include "engine/generate.h"
#include "model/gguf_write.h"
#include "tokenizer/tokenizer.h"

#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>

#define N_VOCAB 32000
#define N_ROWS 4

static void check_ref(const char *name, int nn, double tol) {
    char path[256];
    snprintf(path, sizeof path, "models/small/%s.gguf", name);
    const char *model_path = sl_test_shared(path);
    CHECK_MSG(model_path, "missing ../shared/%s", path);
    char mp[256];
    snprintf(mp, sizeof mp, "%s", model_path);
    snprintf(path, sizeof path, "golden/small/%s.%02d.json", name, nn);
    const char *jp = sl_test_shared(path);
    CHECK_MSG(jp, "missing ../shared/%s", path);
    json_error_t je;
    json_t *j = json_load_file(jp, 0, &je);
    CHECK_MSG(j, "cannot parse %s: %s", jp, je.text);
    json_t *pi = json_object_get(j, "prompt_token_ids"), *gi = json_object_get(j, "generated_token_ids");
    const char *prompt = json_string_value(json_object_get(j, "prompt"));
    int np = (int)json_array_size(pi);
    int32_t toks[64];
    for (int i = 0; i < np; i++) toks[i] = (int32_t)json_integer_value(json_array_get(pi, i));
    for (int i = 0; i < N_ROWS - 1; i++) toks[np + i] = (int32_t)json_integer_value(json_array_get(gi, i));
    int n = np + N_ROWS - 1;

    sl_model *m = NULL;
    sl_status st = sl_model_load(mp, &m);
    if (st) json_decref(j);
    CHECK_OK(st);
    /* the 32000-token SentencePiece vocabulary tokenizes the prompt as llama.cpp did */
    int32_t *ids = NULL;
    size_t n_ids = 0;
    st = sl_tokenize(sl_model_tokenizer(m), prompt, strlen(prompt), true, false, &ids, &n_ids);
    bool same = st == SL_OK && (int)n_ids == np;
    for (int i = 0; same && i < np; i++) same = ids[i] == toks[i];
    sl_free(ids);
    json_decref(j);

    float *got = malloc(sizeof(float) * N_ROWS * N_VOCAB);
    sl_fwd_set_default_reference(true); /* this file checks the scalar reference path */
    st = sl_eval_logits(m, toks, n, N_ROWS, 2, got);
    sl_model_destroy(m);
    if (st) free(got);
    CHECK_OK(st);
    CHECK_MSG(same, "%s: prompt %02d tokenizes differently from llama.cpp", name, nn);

    snprintf(path, sizeof path, "golden/small/%s.%02d.ref_f64.f32", name, nn);
    const char *rp = sl_test_shared(path);
    size_t len = 0;
    char *ref = rp ? sl_test_read_file(rp, &len) : NULL;
    if (!ref || len != sizeof(float) * N_ROWS * N_VOCAB) {
        free(got);
        free(ref);
        CHECK_MSG(0, "cannot read %s (%zu bytes)", path, len);
    }
    double worst = 0;
    int worst_row = 0, worst_id = 0;
    for (int r = 0; r < N_ROWS; r++)
        for (int i = 0; i < N_VOCAB; i++) {
            float want;
            memcpy(&want, ref + sizeof(float) * ((size_t)r * N_VOCAB + (size_t)i), 4);
            double d = fabs((double)got[(size_t)r * N_VOCAB + (size_t)i] - (double)want);
            if (d > worst || d != d) {
                worst = d;
                worst_row = r;
                worst_id = i;
            }
        }
    free(got);
    free(ref);
    printf("    %s prompt %02d: max |logit - ref_f64| = %.3g\n", name, nn, worst);
    CHECK_MSG(worst <= tol, "%s prompt %02d: max |logit - ref_f64| = %.3g at row %d, id %d (limit %.0e)", name, nn,
              worst, worst_row, worst_id, tol);
}

TEST(small_llama_F16) {
    check_ref("small-llama-F16", 0, 1e-3);
    check_ref("small-llama-F16", 1, 1e-3);
}
TEST(small_llama_BF16) {
    check_ref("small-llama-BF16", 0, 1e-3);
    check_ref("small-llama-BF16", 1, 1e-3);
}
TEST(small_llama_Q8_0) {
    check_ref("small-llama-Q8_0", 0, 1e-3);
    check_ref("small-llama-Q8_0", 1, 1e-3);
}
TEST(small_llama_Q4_0) {
    check_ref("small-llama-Q4_0", 0, 1e-3);
    check_ref("small-llama-Q4_0", 1, 1e-3);
}

TEST(small_llama_Q4_K_M) {
    check_ref("small-llama-Q4_K_M", 0, 1e-3);
    check_ref("small-llama-Q4_K_M", 1, 1e-3);
}
TEST(small_llama_Q5_K_M) {
    check_ref("small-llama-Q5_K_M", 0, 1e-3);
    check_ref("small-llama-Q5_K_M", 1, 1e-3);
}
TEST(small_llama_Q6_K) {
    check_ref("small-llama-Q6_K", 0, 1e-3);
    check_ref("small-llama-Q6_K", 1, 1e-3);
}

TEST(small_qwen2_Q8_0) {
    check_ref("small-qwen2-Q8_0", 0, 1e-3);
    check_ref("small-qwen2-Q8_0", 1, 1e-3);
}
TEST(small_qwen3_Q8_0) {
    check_ref("small-qwen3-Q8_0", 0, 1e-3);
    check_ref("small-qwen3-Q8_0", 1, 1e-3);
}

/* Copy a model file with one change: the architecture renamed, a tensor
 * dropped, or a tensor given another shape (same bytes, dims swapped). */
static sl_status copy_model(const char *src, const char *dst, const char *arch, const char *drop, const char *reshape) {
    sl_gguf *g = NULL;
    sl_gguf_writer *w = NULL;
    sl_status st = sl_gguf_open(src, &g);
    if (st) return st;
    if ((st = sl_gguf_writer_create(dst, &w))) goto done;
    for (int64_t i = 0; i < sl_gguf_n_kv(g) && !st; i++) {
        const sl_gguf_kv *kv = sl_gguf_kv_at(g, i);
        if (arch && sl_str_eq(kv->key, "general.architecture")) st = sl_gguf_writer_set_str(w, "general.architecture", arch);
        else st = sl_gguf_writer_copy_kv(w, kv);
    }
    for (int64_t i = 0; i < sl_gguf_n_tensors(g) && !st; i++) {
        const sl_gguf_tensor *t = sl_gguf_tensor_at(g, i);
        char name[80];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        if (drop && !strcmp(name, drop)) continue;
        int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        if (reshape && !strcmp(name, reshape)) { /* [n, 1] vector → [n/2, 2] */
            ne[0] = t->ne[0] / 2;
            ne[1] = 2;
        }
        st = sl_gguf_writer_add_tensor(w, name, reshape && !strcmp(name, reshape) ? 2 : t->n_dims, ne, t->type);
    }
    if (!st) st = sl_gguf_writer_begin_data(w);
    for (int64_t i = 0; i < sl_gguf_n_tensors(g) && !st; i++) {
        const sl_gguf_tensor *t = sl_gguf_tensor_at(g, i);
        if (drop && sl_str_eq(t->name, drop)) continue;
        st = sl_gguf_writer_write(w, t->data, t->nbytes);
    }
    if (!st) st = sl_gguf_writer_finish(w);
done:
    sl_gguf_writer_destroy(w);
    sl_gguf_close(g);
    return st;
}

static sl_status load_copy(const char *arch, const char *drop, const char *reshape) {
    const char *src = sl_test_shared("models/small/small-qwen2-Q8_0.gguf");
    if (!src) return SL_ERR_IO;
    char dst[] = "/tmp/shardlm-test-model-XXXXXX";
    int fd = mkstemp(dst);
    if (fd < 0) return SL_ERR_IO;
    close(fd);
    sl_status st = copy_model(src, dst, arch, drop, reshape);
    if (!st) {
        sl_model *m = NULL;
        st = sl_model_load(dst, &m);
        sl_model_destroy(m);
    }
    unlink(dst);
    return st;
}

/* A weight type without kernels (and not held as a wider one: quant.h) is
 * refused with the tensor and type named (the Q8_0 file with its matrices
 * relabelled Q2_K: 256 weights in 84 bytes). */
TEST(unsupported_type_is_named) {
    const char *src = sl_test_shared("models/small/small-qwen2-Q8_0.gguf");
    CHECK(src);
    sl_gguf *g = NULL;
    CHECK_OK(sl_gguf_open(src, &g));
    char dst[] = "/tmp/shardlm-test-q2k-XXXXXX";
    int fd = mkstemp(dst);
    CHECK(fd >= 0);
    close(fd);
    sl_gguf_writer *w = NULL;
    sl_status st = sl_gguf_writer_create(dst, &w);
    for (int64_t i = 0; !st && i < sl_gguf_n_kv(g); i++) st = sl_gguf_writer_copy_kv(w, sl_gguf_kv_at(g, i));
    /* Q2_K blocks hold 256 weights in 84 bytes (Q8_0: 32 in 34): write zero blocks of the new size */
    for (int64_t i = 0; !st && i < sl_gguf_n_tensors(g); i++) {
        const sl_gguf_tensor *t = sl_gguf_tensor_at(g, i);
        char name[80];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
        st = sl_gguf_writer_add_tensor(w, name, t->n_dims, t->ne, t->type == SL_TYPE_Q8_0 ? SL_TYPE_Q2_K : t->type);
    }
    if (!st) st = sl_gguf_writer_begin_data(w);
    static char zeros[1 << 16];
    for (int64_t i = 0; !st && i < sl_gguf_n_tensors(g); i++) {
        const sl_gguf_tensor *t = sl_gguf_tensor_at(g, i);
        if (t->type != SL_TYPE_Q8_0) {
            st = sl_gguf_writer_write(w, t->data, t->nbytes);
            continue;
        }
        uint64_t left = (uint64_t)(t->nbytes / 34) * 32 / 256 * 84;
        while (!st && left) {
            size_t k = left < sizeof zeros ? (size_t)left : sizeof zeros;
            st = sl_gguf_writer_write(w, zeros, k);
            left -= k;
        }
    }
    if (!st) st = sl_gguf_writer_finish(w);
    sl_gguf_writer_destroy(w);
    sl_gguf_close(g);
    if (st) unlink(dst);
    CHECK_OK(st);
    sl_model *m = NULL;
    st = sl_model_load(dst, &m);
    sl_model_destroy(m);
    unlink(dst);
    CHECK_EQ_INT(st, SL_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(sl_last_error(), "Q2_K") && strstr(sl_last_error(), ".weight"), "message: %s", sl_last_error());
}

/* An unknown architecture is refused by name. */
TEST(unknown_architecture_is_named) {
    sl_status st = load_copy("mamba9", NULL, NULL);
    CHECK_EQ_INT(st, SL_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(sl_last_error(), "mamba9"), "message: %s", sl_last_error());
}

/* A missing tensor is refused with the architecture and tensor named. */
TEST(missing_tensor_is_named) {
    sl_status st = load_copy(NULL, "blk.2.attn_k.bias", NULL);
    CHECK_EQ_INT(st, SL_ERR_FORMAT);
    CHECK_MSG(strstr(sl_last_error(), "blk.2.attn_k.bias") && strstr(sl_last_error(), "qwen2"), "message: %s",
              sl_last_error());
    st = load_copy(NULL, "blk.3.ffn_down.weight", NULL);
    CHECK_EQ_INT(st, SL_ERR_FORMAT);
    CHECK_MSG(strstr(sl_last_error(), "blk.3.ffn_down.weight"), "message: %s", sl_last_error());
}

/* A mis-shaped tensor is refused with expected and found shapes. */
TEST(misshaped_tensor_is_named) {
    sl_status st = load_copy(NULL, NULL, "blk.1.attn_q.bias");
    CHECK_EQ_INT(st, SL_ERR_FORMAT);
    CHECK_MSG(strstr(sl_last_error(), "blk.1.attn_q.bias") && strstr(sl_last_error(), "[128, 2") &&
                  strstr(sl_last_error(), "expected [256, 1]"),
              "message: %s", sl_last_error());
}

/*
 * model.c — load a Llama-architecture model from a GGUF file.
 *
 * Hyper-parameters come from `<arch>.*` keys, tensors are looked up by name
 * (quantized files are not in layer order), each is checked for type and
 * shape before use. Matrices stay in the mapping; norms become float arrays.
 */
#include "model.h"

#include "compute/quant.h"
#include "core/alloc.h"
#include "core/status.h"
#include "tokenizer/tokenizer.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The model families. Adding one: an entry here (plus a new op in the
 * forward pass only when the family needs one that does not exist yet). */
static const sl_arch ARCHS[] = {
    /* Llama 2/3, Mistral (no sliding window), TinyLlama, SmolLM, DeepSeek-R1-Distill-Llama */
    {.name = "llama", .rope_neox = 0, .qkv_bias = 1, .qk_norm = 0, .rope_base = 10000.0f},
    /* Qwen2, Qwen2.5, DeepSeek-R1-Distill-Qwen */
    {.name = "qwen2", .rope_neox = 1, .qkv_bias = 2, .qk_norm = 0, .rope_base = 10000.0f},
    /* dense Qwen3 */
    {.name = "qwen3", .rope_neox = 1, .qkv_bias = 0, .qk_norm = 2, .rope_base = 10000.0f, .rank_last = 1},
};

const sl_arch *sl_arch_find(const char *name) {
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++)
        if (!strcmp(ARCHS[i].name, name)) return &ARCHS[i];
    return NULL;
}

const char *sl_arch_list(void) { return "llama, qwen2, qwen3"; }

static sl_status key_u32(const sl_gguf *g, const char *arch, const char *suffix, bool required, uint32_t def,
                         uint32_t *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (!required) return sl_gguf_opt_u32(g, key, def, out);
    return sl_gguf_get_u32(g, key, out);
}

static sl_status key_f32(const sl_gguf *g, const char *arch, const char *suffix, float def, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return sl_gguf_opt_f32(g, key, def, out);
}

static const char *supported_list(void) {
    return "F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K; Q5_0 and IQ4_NL as Q8_0, Q3_K as Q6_K, Q4_1 and Q5_1 as F32";
}

/* Find tensor `name` with ne = {ne0, ne1} (ne1 = 1 for vectors). */
static sl_status find_tensor(const sl_model *m, const char *name, int64_t ne0, int64_t ne1, bool required,
                             const sl_gguf_tensor **out) {
    const sl_gguf *g = m->gguf;
    const sl_gguf_tensor *t = sl_gguf_find_tensor(g, name);
    *out = t;
    if (!t) {
        if (!required) return SL_OK;
        return SL_FAIL(SL_ERR_FORMAT, "%s: architecture '%s': missing tensor '%s' (expected shape [%" PRId64 ", %" PRId64
                       "])", sl_gguf_path(g), m->hp.arch, name, ne0, ne1);
    }
    if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
        return SL_FAIL(SL_ERR_FORMAT, "%s: architecture '%s': tensor '%s' has shape [%" PRId64 ", %" PRId64 ", %" PRId64
                       ", %" PRId64 "], expected [%" PRId64 ", %" PRId64 "]", sl_gguf_path(g), m->hp.arch, name,
                       t->ne[0], t->ne[1], t->ne[2], t->ne[3], ne0, ne1);
    if (!sl_type_supported(t->type) && sl_type_widened(t->type) == SL_TYPE_COUNT)
        return SL_FAIL(SL_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s, which is not supported (supported: %s)",
                       sl_gguf_path(g), name, sl_type_name(t->type), supported_list());
    return SL_OK;
}

static sl_status load_matrix(sl_model *m, const char *name, int64_t n_in, int64_t n_out, sl_tensor *w) {
    const sl_gguf_tensor *t;
    sl_status st = find_tensor(m, name, n_in, n_out, true, &t);
    if (st) return st;
    w->ne[0] = n_in;
    w->ne[1] = n_out;
    const sl_type wt = sl_type_widened(t->type);
    if (wt == SL_TYPE_COUNT) {
        w->type = t->type;
        w->row_bytes = sl_type_row_size(t->type, n_in);
        w->data = t->data;
        m->weight_bytes += t->nbytes;
        return SL_OK;
    }
    /* a type without kernels of its own: kept as the wider type that holds the same values (quant.h) */
    const size_t src_rb = sl_type_row_size(t->type, n_in), rb = sl_type_row_size(wt, n_in);
    if ((uint64_t)n_out > SIZE_MAX / rb) return SL_FAIL(SL_ERR_NOMEM, "tensor '%s' is too large to convert", name);
    uint8_t **list = sl_realloc(m->widened, sizeof *list * (size_t)(m->n_widened + 1));
    if (!list) return SL_FAIL(SL_ERR_NOMEM, "out of memory for tensor '%s'", name);
    m->widened = list;
    uint8_t *buf = sl_malloc_aligned((size_t)n_out * rb);
    if (!buf)
        return SL_FAIL(SL_ERR_NOMEM, "out of memory converting tensor '%s' from %s to %s (%.1f MiB)", name,
                       sl_type_name(t->type), sl_type_name(wt), (double)n_out * (double)rb / 1048576.0);
    m->widened[m->n_widened++] = buf;
    for (int64_t r = 0; r < n_out; r++)
        sl_widen_row(t->type, (const uint8_t *)t->data + (size_t)r * src_rb, buf + (size_t)r * rb, n_in);
    w->type = wt;
    w->row_bytes = rb;
    w->data = buf;
    m->weight_bytes += (uint64_t)n_out * rb;
    m->widened_bytes += (uint64_t)n_out * rb;
    return SL_OK;
}

/* A vector tensor converted to an owned float array; NULL in *out when optional and absent. */
static sl_status load_vector(sl_model *m, const char *name, int64_t n, bool required, float **out) {
    const sl_gguf_tensor *t;
    *out = NULL;
    sl_status st = find_tensor(m, name, n, 1, required, &t);
    if (st || !t) return st;
    float *v = sl_alloc_array((size_t)n, sizeof(float));
    if (!v) return SL_FAIL(SL_ERR_NOMEM, "out of memory for tensor '%s'", name);
    sl_dequantize_row(t->type, t->data, v, n);
    *out = v;
    return SL_OK;
}

static sl_status load_hparams(sl_model *m) {
    const sl_gguf *g = m->gguf;
    sl_hparams *hp = &m->hp;
    sl_str arch;
    sl_status st = sl_gguf_get_str(g, "general.architecture", &arch);
    if (st) return st;
    if (arch.len >= sizeof hp->arch) arch.len = sizeof hp->arch - 1;
    memcpy(hp->arch, arch.ptr, arch.len);
    hp->arch[arch.len] = '\0';
    m->arch = sl_arch_find(hp->arch);
    if (!m->arch)
        return SL_FAIL(SL_ERR_UNSUPPORTED, "%s: unknown architecture '%s' (supported: %s)", sl_gguf_path(g), hp->arch,
                       sl_arch_list());
    const char *a = hp->arch;
    uint32_t v, n_head, n_head_kv, n_embd;
    if ((st = key_u32(g, a, "embedding_length", true, 0, &n_embd))) return st;
    if ((st = key_u32(g, a, "block_count", true, 0, &v))) return st;
    hp->n_layer = (int32_t)v;
    if ((st = key_u32(g, a, "feed_forward_length", true, 0, &v))) return st;
    hp->n_ff = (int32_t)v;
    if ((st = key_u32(g, a, "attention.head_count", true, 0, &n_head))) return st;
    if ((st = key_u32(g, a, "attention.head_count_kv", false, n_head, &n_head_kv))) return st;
    if ((st = key_u32(g, a, "context_length", true, 0, &v))) return st;
    hp->n_ctx_train = (int32_t)(v > INT32_MAX ? INT32_MAX : v);
    if ((st = key_f32(g, a, "attention.layer_norm_rms_epsilon", 1e-5f, &hp->rms_eps))) return st;
    if ((st = key_f32(g, a, "rope.freq_base", m->arch->rope_base, &hp->rope_base))) return st;
    if ((st = key_u32(g, a, "pooling_type", false, UINT32_MAX, &v))) return st;
    hp->pooling_type = v > 4 ? -1 : (int32_t)v;
    const char *bad = NULL;
    if (n_embd == 0 || n_embd > (1u << 20)) bad = "embedding_length";
    else if (hp->n_layer <= 0 || hp->n_layer > 4096) bad = "block_count";
    else if (n_head == 0 || n_head > 4096 || n_embd % n_head != 0) bad = "attention.head_count";
    else if (n_head_kv == 0 || n_head % n_head_kv != 0) bad = "attention.head_count_kv";
    else if (hp->n_ff <= 0 || hp->n_ff > (1 << 22)) bad = "feed_forward_length";
    else if (hp->n_ctx_train <= 0) bad = "context_length";
    else if (!(hp->rms_eps > 0.0f && hp->rms_eps < 1.0f)) bad = "attention.layer_norm_rms_epsilon";
    else if (!(hp->rope_base > 0.0f)) bad = "rope.freq_base";
    if (bad) return SL_FAIL(SL_ERR_FORMAT, "%s: %s.%s has an invalid value", sl_gguf_path(g), a, bad);
    hp->n_embd = (int32_t)n_embd;
    hp->n_head = (int32_t)n_head;
    hp->n_head_kv = (int32_t)n_head_kv;
    uint32_t hd, vd;
    if ((st = key_u32(g, a, "attention.key_length", false, n_embd / n_head, &hd))) return st;
    if ((st = key_u32(g, a, "attention.value_length", false, hd, &vd))) return st;
    if (hd == 0 || hd > 4096 || hd % 2 != 0)
        return SL_FAIL(SL_ERR_FORMAT, "%s: %s.attention.key_length %" PRIu32 " is not an even size in 2..4096",
                       sl_gguf_path(g), a, hd);
    if (vd != hd)
        return SL_FAIL(SL_ERR_UNSUPPORTED, "%s: %s.attention.value_length %" PRIu32 " differs from key_length %" PRIu32,
                       sl_gguf_path(g), a, vd, hd);
    hp->head_dim = (int32_t)hd;
    if ((st = key_u32(g, a, "rope.dimension_count", false, hd, &v))) return st;
    if (v == 0 || v > hd || v % 2 != 0)
        return SL_FAIL(SL_ERR_FORMAT, "%s: %s.rope.dimension_count %" PRIu32 " must be even and <= head size %" PRIu32,
                       sl_gguf_path(g), a, v, hd);
    hp->n_rot = (int32_t)v;
    hp->rope_neox = m->arch->rope_neox;
    return SL_OK;
}

/* A matrix (n_in → n_out) as owned floats, row-major; NULL in *out when absent. */
static sl_status load_float_matrix(sl_model *m, const char *name, int64_t n_in, int64_t n_out, float **out) {
    const sl_gguf_tensor *t;
    *out = NULL;
    sl_status st = find_tensor(m, name, n_in, n_out, false, &t);
    if (st || !t) return st;
    float *v = sl_alloc_array((size_t)(n_in * n_out), sizeof(float));
    if (!v) return SL_FAIL(SL_ERR_NOMEM, "out of memory for tensor '%s'", name);
    const size_t rb = sl_type_row_size(t->type, n_in);
    for (int64_t r = 0; r < n_out; r++)
        sl_dequantize_row(t->type, (const uint8_t *)t->data + (size_t)r * rb, v + (size_t)(r * n_in), n_in);
    *out = v;
    return SL_OK;
}

/* A reranker's classification head, where the file has one (llama.cpp's tensor names; its number of outputs is
 * classifier.output_labels' length where that key is given, else cls.output's rows). */
static sl_status load_cls_head(sl_model *m) {
    const int64_t d = m->hp.n_embd;
    sl_status st;
    if ((st = load_float_matrix(m, "cls.weight", d, d, &m->cls_w))) return st;
    if ((st = load_vector(m, "cls.bias", d, false, &m->cls_b))) return st;
    const sl_gguf_tensor *t = sl_gguf_find_tensor(m->gguf, "cls.output.weight");
    if (!t) return SL_OK;
    char key[96];
    snprintf(key, sizeof key, "%s.classifier.output_labels", m->hp.arch);
    int64_t n = t->ne[1];
    const sl_gguf_kv *kv = sl_gguf_find(m->gguf, key);
    if (kv) {
        if (kv->type != SL_GGUF_ARRAY || kv->arr_n == 0 || kv->arr_n > 65536)
            return SL_FAIL(SL_ERR_FORMAT, "%s: %s must be a non-empty array of labels", sl_gguf_path(m->gguf), key);
        n = (int64_t)kv->arr_n;
    }
    if (n <= 0 || n > 65536)
        return SL_FAIL(SL_ERR_FORMAT, "%s: tensor 'cls.output.weight' has %" PRId64 " outputs (1..65536)", sl_gguf_path(m->gguf), n);
    if ((st = load_float_matrix(m, "cls.output.weight", d, n, &m->cls_out_w))) return st;
    if ((st = load_vector(m, "cls.output.bias", n, false, &m->cls_out_b))) return st;
    m->cls_labels = sl_calloc((size_t)n, sizeof *m->cls_labels);
    if (!m->cls_labels) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    m->n_cls_out = (int32_t)n;
    for (int64_t i = 0; i < n; i++) { /* (Hugging Face's default names where the file gives none) */
        const sl_str l = kv && kv->arr_type == SL_GGUF_STRING ? sl_gguf_arr_str(kv, (uint64_t)i) : (sl_str){0};
        char def[32];
        snprintf(def, sizeof def, "LABEL_%" PRId64, i);
        m->cls_labels[i] = sl_malloc(l.ptr ? l.len + 1 : strlen(def) + 1);
        if (!m->cls_labels[i]) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
        if (l.ptr) {
            memcpy(m->cls_labels[i], l.ptr, l.len);
            m->cls_labels[i][l.len] = '\0';
        } else {
            strcpy(m->cls_labels[i], def);
        }
    }
    return SL_OK;
}

static sl_status load_tensors(sl_model *m) {
    const sl_hparams *hp = &m->hp;
    const int64_t d = hp->n_embd, q_dim = (int64_t)hp->n_head * hp->head_dim,
                  kv_dim = (int64_t)hp->n_head_kv * hp->head_dim, V = hp->n_vocab;
    sl_status st;
    if ((st = load_matrix(m, "token_embd.weight", d, V, &m->tok_embd))) return st;
    m->weight_bytes -= m->tok_embd.row_bytes * (uint64_t)V; /* one row per token is read, not the table */
    if ((st = load_vector(m, "output_norm.weight", d, true, &m->output_norm))) return st;
    if (sl_gguf_find_tensor(m->gguf, "output.weight")) {
        if ((st = load_matrix(m, "output.weight", d, V, &m->output))) return st;
    } else {
        m->output = m->tok_embd;
        m->tied_output = 1;
        m->weight_bytes += m->tok_embd.row_bytes * (uint64_t)V;
    }
    if ((st = load_vector(m, "rope_freqs.weight", hp->n_rot / 2, false, &m->rope_freqs))) return st;
    if ((st = load_cls_head(m))) return st;
    m->layers = sl_calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return SL_FAIL(SL_ERR_NOMEM, "out of memory for %d layers", hp->n_layer);
    char name[96];
#define MAT(field, suffix, nin, nout)                                               \
    snprintf(name, sizeof name, "blk.%d." suffix ".weight", i);                   \
    if ((st = load_matrix(m, name, nin, nout, &L->field))) return st
#define VEC(field, suffix, n, req)                                                  \
    snprintf(name, sizeof name, "blk.%d." suffix, i);                             \
    if ((st = load_vector(m, name, n, req, &L->field))) return st
    for (int i = 0; i < hp->n_layer; i++) {
        sl_layer *L = &m->layers[i];
        const sl_arch *ar = m->arch;
        VEC(attn_norm, "attn_norm.weight", d, true);
        MAT(wq, "attn_q", d, q_dim);
        MAT(wk, "attn_k", d, kv_dim);
        MAT(wv, "attn_v", d, kv_dim);
        if (ar->qkv_bias) {
            VEC(bq, "attn_q.bias", q_dim, ar->qkv_bias == 2);
            VEC(bk, "attn_k.bias", kv_dim, ar->qkv_bias == 2 || L->bq);
            VEC(bv, "attn_v.bias", kv_dim, ar->qkv_bias == 2 || L->bq);
        }
        if (ar->qk_norm) {
            VEC(q_norm, "attn_q_norm.weight", hp->head_dim, ar->qk_norm == 2);
            VEC(k_norm, "attn_k_norm.weight", hp->head_dim, ar->qk_norm == 2 || L->q_norm);
        }
        MAT(wo, "attn_output", q_dim, d);
        VEC(ffn_norm, "ffn_norm.weight", d, true);
        MAT(w_gate, "ffn_gate", d, hp->n_ff);
        MAT(w_up, "ffn_up", d, hp->n_ff);
        MAT(w_down, "ffn_down", hp->n_ff, d);
    }
#undef MAT
#undef VEC
    return SL_OK;
}

/* The model of an open GGUF (path: for messages); takes g, also on failure. */
static sl_status model_from_gguf(sl_gguf *g, const char *path, sl_model **out) {
    *out = NULL;
    sl_model *m = sl_calloc(1, sizeof *m);
    if (!m) {
        sl_gguf_close(g);
        return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    }
    m->gguf = g;
    sl_status st;
    if ((st = load_hparams(m))) goto fail;
    if ((st = sl_tokenizer_create(m->gguf, &m->tok))) goto fail;
    m->hp.n_vocab = sl_tokenizer_n_vocab(m->tok);
    uint32_t vs;
    if ((st = key_u32(m->gguf, m->hp.arch, "vocab_size", false, (uint32_t)m->hp.n_vocab, &vs))) goto fail;
    if ((int64_t)vs != m->hp.n_vocab) {
        st = SL_FAIL(SL_ERR_FORMAT, "%s: %s.vocab_size %" PRIu32 " differs from the %d tokens of tokenizer.ggml.tokens",
                     path, m->hp.arch, vs, m->hp.n_vocab);
        goto fail;
    }
    if ((st = load_tensors(m))) goto fail;
    *out = m;
    return SL_OK;
fail:
    sl_model_destroy(m);
    return st;
}

sl_status sl_model_load(const char *path, sl_model **out) {
    *out = NULL;
    sl_gguf *g = NULL;
    sl_status st = sl_gguf_open(path, &g);
    return st ? st : model_from_gguf(g, path, out);
}

sl_status sl_model_load_memory(const void *buf, size_t len, sl_model **out) {
    *out = NULL;
    sl_gguf *g = NULL;
    sl_status st = sl_gguf_open_memory(buf, len, &g);
    return st ? st : model_from_gguf(g, "(memory)", out);
}

void sl_model_destroy(sl_model *m) {
    if (!m) return;
    if (m->layers)
        for (int i = 0; i < m->hp.n_layer; i++) {
            sl_layer *L = &m->layers[i];
            float *vecs[] = {L->attn_norm, L->ffn_norm, L->bq, L->bk, L->bv, L->q_norm, L->k_norm};
            for (size_t k = 0; k < sizeof vecs / sizeof vecs[0]; k++) sl_free(vecs[k]);
        }
    sl_free(m->layers);
    for (int32_t i = 0; i < m->n_widened; i++) sl_free_aligned(m->widened[i]);
    sl_free(m->widened);
    sl_free(m->output_norm);
    sl_free(m->rope_freqs);
    sl_free(m->cls_w);
    sl_free(m->cls_b);
    sl_free(m->cls_out_w);
    sl_free(m->cls_out_b);
    for (int32_t i = 0; m->cls_labels && i < m->n_cls_out; i++) sl_free(m->cls_labels[i]);
    sl_free(m->cls_labels);
    sl_tokenizer_destroy(m->tok);
    sl_gguf_close(m->gguf);
    sl_free(m);
}

int32_t sl_model_n_vocab(const sl_model *m) { return m->hp.n_vocab; }
int32_t sl_model_n_ctx(const sl_model *m) { return m->hp.n_ctx_train; }
const sl_tokenizer *sl_model_tokenizer(const sl_model *m) { return m->tok; }

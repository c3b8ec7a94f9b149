/*
 * model.h — a loaded model: hyper-parameters, weight views into the mapped
 * GGUF file, and the tokenizer.
 *
 * The model does not copy weights: each matrix is an sl_tensor view of the
 * mmap (rows addressable by index, so a thread or a tensor-parallel rank can
 * take a row range); the fast forward path packs or copies the matrices it
 * reads into memory of its own (sl_fwd_create). Small per-layer vectors
 * (norm weights, rope frequency factors) are converted to owned float
 * arrays at load.
 *
 * Every tensor is found by name, its type checked against what the compute
 * layer supports and its shape against the hyper-parameters; errors name
 * the architecture, the tensor, and expected vs found.
 */
#ifndef SL_MODEL_MODEL_H
#define SL_MODEL_MODEL_H

#include "shardlm.h"
#include "compute/ops.h"
#include "model/gguf.h"

typedef struct sl_hparams {
    char arch[32];
    int32_t n_vocab;
    int32_t n_ctx_train;  /* <arch>.context_length */
    int32_t n_embd;       /* dim */
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;     /* n_embd / n_head unless attention.key_length says otherwise */
    int32_t n_ff;
    int32_t n_rot;        /* rotated dims per head (rope.dimension_count) */
    float rope_base;      /* rope.freq_base, default 10000 */
    float rms_eps;
    int rope_neox;        /* 0: NORM pairs (llama), 1: NEOX halves */
    int32_t pooling_type; /* <arch>.pooling_type as llama.cpp numbers it (0 none, 1 mean, 2 cls, 3 last, 4 rank), -1 absent */
} sl_hparams;

/* What distinguishes one model family from another: a table entry (model.c). */
typedef struct sl_arch {
    const char *name;       /* general.architecture */
    int rope_neox;          /* 0: NORM pairs (x[2i], x[2i+1]); 1: NEOX halves (x[i], x[i+n_rot/2]) */
    int qkv_bias;           /* attn_q/k/v.bias: 0 absent, 1 optional, 2 required */
    int qk_norm;            /* attn_q_norm/attn_k_norm (per-head RMSNorm before rope): 0/1/2 as above */
    float rope_base;        /* default rope.freq_base */
    int rank_last;          /* rank pooling (a reranker's classification head) reads the last position, not the
                             * first, and ends in a softmax over the head's outputs (llama.cpp's Qwen3 rerankers) */
} sl_arch;

/* The table of supported families; NULL when `name` is not one of them. */
const sl_arch *sl_arch_find(const char *name);
/* "llama, qwen2, qwen3" */
const char *sl_arch_list(void);

typedef struct sl_layer {
    float *attn_norm;     /* (n_embd) */
    sl_tensor wq;         /* (n_embd → n_head*head_dim) */
    sl_tensor wk;         /* (n_embd → n_head_kv*head_dim) */
    sl_tensor wv;         /* (n_embd → n_head_kv*head_dim) */
    float *bq, *bk, *bv;  /* biases (n_head*head_dim), (kv_dim), (kv_dim), or NULL */
    float *q_norm, *k_norm; /* per-head RMSNorm weights (head_dim), or NULL */
    sl_tensor wo;         /* (n_head*head_dim → n_embd) */
    float *ffn_norm;      /* (n_embd) */
    sl_tensor w_gate;     /* (n_embd → n_ff) */
    sl_tensor w_up;       /* (n_embd → n_ff) */
    sl_tensor w_down;     /* (n_ff → n_embd) */
} sl_layer;

struct sl_model {
    sl_gguf *gguf;
    const sl_arch *arch;
    sl_hparams hp;
    sl_tensor tok_embd;   /* (n_embd, n_vocab): row t = embedding of token t */
    float *output_norm;   /* (n_embd) */
    sl_tensor output;     /* (n_embd → n_vocab); tok_embd when tied */
    int tied_output;
    float *rope_freqs;    /* (n_rot/2) frequency divisors, or NULL */
    sl_layer *layers;     /* (n_layer) */
    /* a reranker's classification head (llama.cpp's names; all optional): cls.weight (n_embd → n_embd) and
     * cls.bias, then tanh; cls.output.weight (→ n_cls_out) and cls.output.bias. Floats, row-major. */
    float *cls_w, *cls_b, *cls_out_w, *cls_out_b;
    int32_t n_cls_out;    /* outputs of cls.output (classifier.output_labels), 0 without it */
    char **cls_labels;    /* their labels (<arch>.classifier.output_labels; else LABEL_i), n_cls_out of them */
    sl_tokenizer *tok;
    uint64_t weight_bytes; /* bytes of all matrices (for bandwidth figures) */
    /* matrices of a type kept as a wider one (sl_type_widened): their
     * converted copies, owned, and the bytes they take */
    uint8_t **widened;
    int32_t n_widened;
    uint64_t widened_bytes;
};

#endif

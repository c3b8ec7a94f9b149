/*
 * mkmodel.h — write a Llama-architecture GGUF with seeded random weights.
 *
 * The file carries the metadata keys and tensor names llama.cpp reads for
 * `general.architecture = llama` (the same keys and value types as a file
 * made by llama.cpp's tools), a SentencePiece vocabulary (generated, or the
 * tokenizer.* keys copied from another GGUF), and weights drawn from a
 * seeded generator: the same parameters give the same bytes.
 *
 * Weights are generated and written one row at a time, so memory stays at a
 * row buffer whatever the model size. Scales: matrices uniform with standard
 * deviation 1/sqrt(n_in) (activations keep their scale through the layers);
 * token_embd/output 2/sqrt(dim) (logits of a unit-RMS hidden state have a
 * standard deviation near 2); norms 1 + noise of standard deviation 0.1.
 */
#ifndef SL_MODEL_MKMODEL_H
#define SL_MODEL_MKMODEL_H

#include "shardlm.h"
#include "core/types.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum sl_rope_scaling {
    SL_ROPE_SCALING_NONE = 0,
    SL_ROPE_SCALING_LLAMA3 = 1, /* rope_freqs.weight: factor 32, low 1, high 4, original context 8192 */
} sl_rope_scaling;

typedef struct sl_mkmodel_params {
    const char *path;       /* output file */
    const char *name;       /* general.name; NULL: a name built from the shape */
    int64_t dim;            /* embedding length */
    int64_t n_layers;
    int64_t n_heads;
    int64_t n_kv_heads;
    int64_t n_ff;           /* feed-forward length */
    int64_t n_ctx;          /* context length */
    sl_type type;           /* matrix type: F32, F16, BF16, Q8_0 or Q4_0 */
    int64_t n_vocab;        /* generated vocabulary size (ignored with vocab_from) */
    const char *vocab_from; /* GGUF whose tokenizer.* keys are copied, or NULL */
    bool tied;              /* no output.weight: the output reuses token_embd */
    float rope_base;
    sl_rope_scaling rope_scaling;
    uint64_t seed;
} sl_mkmodel_params;

/* Defaults: F16, vocab 32000, context 2048, rope base 10000, seed 1; the
 * shape fields are 0 (must be set); n_kv_heads 0 means n_heads. */
void sl_mkmodel_params_default(sl_mkmodel_params *p);

/* Check the parameters; messages name the command-line flag (--dim, ...). */
sl_status sl_mkmodel_validate(const sl_mkmodel_params *p);

/* llama.cpp's general.file_type (LLAMA_FTYPE) for a matrix type; -1 when
 * the type is not one mkmodel writes. */
int sl_mkmodel_file_type(sl_type t);

/* Validate and write the model. On failure a partially written file is
 * removed (when it is a regular file). */
sl_status sl_mkmodel_write(const sl_mkmodel_params *p);

/* The generated vocabulary: n token strings (caller frees each and the
 * array with sl_free), scores and types as written to the file. */
sl_status sl_mkmodel_vocab(int64_t n, char ***tokens, float **scores, int32_t **types);

#endif

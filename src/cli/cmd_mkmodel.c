/*
 * cmd_mkmodel.c — `shardlm mkmodel`: write a Llama-architecture GGUF with
 * seeded random weights (see src/model/mkmodel.h).
 *
 *   shardlm mkmodel -o tiny.gguf --dim 256 --layers 4 --heads 8 --kv-heads 2 \
 *       --ffn 768 --ctx 2048 --type Q8_0 [--vocab N | --vocab-from V.gguf] \
 *       [--tied] [--rope-base F] [--rope-scaling llama3] [--seed S]
 */
#include "commands.h"
#include "opts.h"

#include "core/types.h"
#include "model/mkmodel.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

enum {
    O_OUT, O_DIM, O_LAYERS, O_HEADS, O_KV_HEADS, O_FFN, O_CTX, O_TYPE, O_VOCAB, O_VOCAB_FROM, O_TIED,
    O_ROPE_BASE, O_ROPE_SCALING, O_SEED, O_NAME, O_COUNT
};

static const opt_def DEFS[O_COUNT] = {
    [O_OUT] = {"output", "o", OPT_STR, NULL, 0, -1, "output GGUF file (required)"},
    [O_DIM] = {"dim", NULL, OPT_INT, NULL, 1, 1 << 20, "embedding length (required)"},
    [O_LAYERS] = {"layers", NULL, OPT_INT, NULL, 1, 4096, "number of blocks (required)"},
    [O_HEADS] = {"heads", NULL, OPT_INT, NULL, 1, 1 << 20, "attention heads (required)"},
    [O_KV_HEADS] = {"kv-heads", NULL, OPT_INT, NULL, 1, 1 << 20, "key/value heads (default: --heads)"},
    [O_FFN] = {"ffn", NULL, OPT_INT, NULL, 1, 1 << 22, "feed-forward length (required)"},
    [O_CTX] = {"ctx", NULL, OPT_INT, "2048", 1, 2147483647.0, "context length"},
    [O_TYPE] = {"type", NULL, OPT_STR, "F16", 0, -1, "matrix type: F32, F16, BF16, Q8_0 or Q4_0"},
    [O_VOCAB] = {"vocab", NULL, OPT_INT, NULL, 260, 1 << 21, "generated vocabulary size (default 32000)"},
    [O_VOCAB_FROM] = {"vocab-from", NULL, OPT_STR, NULL, 0, -1, "copy the tokenizer.* keys of this GGUF"},
    [O_TIED] = {"tied", NULL, OPT_BOOL, NULL, 0, -1, "no output.weight: the output reuses token_embd"},
    [O_ROPE_BASE] = {"rope-base", NULL, OPT_FLOAT, "10000", 1e-6, 1e12, "rope frequency base"},
    [O_ROPE_SCALING] = {"rope-scaling", NULL, OPT_STR, "none", 0, -1, "none or llama3 (adds rope_freqs.weight)"},
    [O_SEED] = {"seed", NULL, OPT_INT, "1", 0, 9.2e18, "random seed"},
    [O_NAME] = {"name", NULL, OPT_STR, NULL, 0, -1, "general.name (default: built from the shape)"},
};

static const char USAGE[] = "-o FILE --dim N --layers N --heads N [--kv-heads N] --ffn N [options]";

int cmd_mkmodel(int argc, char **argv) {
    opt_val v[O_COUNT];
    int n_pos = 0;
    int rc = opts_parse("mkmodel", USAGE, DEFS, O_COUNT, v, argc, argv, NULL, 0, &n_pos);
    if (rc != 0) return rc > 0 ? 0 : 1;
    static const int required[] = {O_OUT, O_DIM, O_LAYERS, O_HEADS, O_FFN};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) {
        if (!v[required[i]].set) {
            const opt_def *d = &DEFS[required[i]];
            fprintf(stderr, "shardlm mkmodel: %s%s%s--%s is required (see shardlm mkmodel --help)\n",
                    d->alias ? "-" : "", d->alias ? d->alias : "", d->alias ? "/" : "", d->name);
            return 1;
        }
    }
    if (v[O_VOCAB].set && v[O_VOCAB_FROM].set) {
        fprintf(stderr, "shardlm mkmodel: --vocab and --vocab-from exclude each other\n");
        return 1;
    }
    sl_mkmodel_params p;
    sl_mkmodel_params_default(&p);
    p.path = v[O_OUT].s;
    p.name = v[O_NAME].set ? v[O_NAME].s : NULL;
    p.dim = v[O_DIM].i;
    p.n_layers = v[O_LAYERS].i;
    p.n_heads = v[O_HEADS].i;
    p.n_kv_heads = v[O_KV_HEADS].set ? v[O_KV_HEADS].i : 0;
    p.n_ff = v[O_FFN].i;
    p.n_ctx = v[O_CTX].i;
    if (v[O_VOCAB].set) p.n_vocab = v[O_VOCAB].i;
    p.vocab_from = v[O_VOCAB_FROM].set ? v[O_VOCAB_FROM].s : NULL;
    p.tied = v[O_TIED].set && v[O_TIED].b;
    p.rope_base = (float)v[O_ROPE_BASE].f;
    p.seed = (uint64_t)v[O_SEED].i;
    if (!sl_type_from_name(v[O_TYPE].s, &p.type) || sl_mkmodel_file_type(p.type) < 0) {
        fprintf(stderr, "shardlm mkmodel: --type %s is not supported (use F32, F16, BF16, Q8_0 or Q4_0)\n",
                v[O_TYPE].s);
        return 1;
    }
    if (!strcmp(v[O_ROPE_SCALING].s, "llama3")) p.rope_scaling = SL_ROPE_SCALING_LLAMA3;
    else if (!strcmp(v[O_ROPE_SCALING].s, "none")) p.rope_scaling = SL_ROPE_SCALING_NONE;
    else {
        fprintf(stderr, "shardlm mkmodel: --rope-scaling %s is not known (none or llama3)\n", v[O_ROPE_SCALING].s);
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    sl_status st = sl_mkmodel_write(&p);
    if (st) {
        fprintf(stderr, "shardlm mkmodel: %s\n", sl_last_error());
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "shardlm mkmodel: wrote %s (%s, %.2f s)\n", p.path, sl_type_name((uint32_t)p.type),
            (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    return 0;
}

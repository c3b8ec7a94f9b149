/*
 * cmd_embed.c — `shardlm embed -m MODEL -p TEXT`: embeddings of each line of
 * the text (llama.cpp's llama-embedding): the normed final hidden states of
 * the model pooled (--pooling mean, cls, last, or none: one vector per
 * token) and normalized (--normalize, llama.cpp's embd_normalize). One line
 * of %.9g values per vector (inputs with --pooling none separated by an empty
 * line), or with --json OpenAI's embeddings answer.
 */
#include "commands.h"
#include "common.h"
#include "opts.h"

#include "core/alloc.h"
#include "engine/embed.h"
#include "engine/generate.h"
#include "model/model.h"
#include "server/api.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { O_MODEL, O_PROMPT, O_THREADS, O_POOLING, O_NORMALIZE, O_SEPARATOR, O_JSON, O_COUNT };

static const opt_def OPTS[O_COUNT] = {
    [O_MODEL] = {"model", "m", OPT_STR, NULL, 0, -1, "GGUF model file"},
    [O_PROMPT] = {"prompt", "p", OPT_STR, "", 0, -1, "the text: each piece between separators is one input"},
    [O_THREADS] = {"threads", "t", OPT_INT, NULL, 1, 1024, "compute threads (default: number of CPUs)"},
    [O_POOLING] = {"pooling", NULL, OPT_STR, NULL, 0, -1,
                   "mean, cls, last, none (every token's) or rank (a reranker's classification head: its outputs, "
                   "score first); default the file's pooling_type, else last"},
    [O_NORMALIZE] = {"normalize", NULL, OPT_INT, "2", -1, 1000,
                     "-1 none, 0 max-abs to 32760, 1 taxicab, 2 Euclidean, p > 2 the p-norm (llama.cpp's embd_normalize)"},
    [O_SEPARATOR] = {"separator", NULL, OPT_STR, "\n", 0, -1, "what separates the inputs in the text"},
    [O_JSON] = {"json", NULL, OPT_BOOL, "false", 0, -1, "print OpenAI's embeddings answer"},
};

/* One input's vectors (rows of d floats) printed or added to the JSON list. */
static void emit(json_t *data, int idx, const float *rows, int32_t n_rows, int32_t d, bool per_token) {
    if (!data) {
        for (int32_t t = 0; t < n_rows; t++)
            for (int32_t i = 0; i < d; i++) printf("%.9g%c", rows[(size_t)t * (size_t)d + (size_t)i], i + 1 < d ? ' ' : '\n');
        if (per_token) printf("\n");
        return;
    }
    json_t *vecs = json_array();
    for (int32_t t = 0; t < n_rows; t++) json_array_append_new(vecs, sl_api_floats_json(rows + (size_t)t * (size_t)d, d));
    json_t *e = per_token ? json_incref(vecs) : json_incref(json_array_get(vecs, 0));
    json_decref(vecs);
    json_array_append_new(data, json_pack("{s:s,s:i,s:o}", "object", "embedding", "index", idx, "embedding", e));
}

int cmd_embed(int argc, char **argv) {
    opt_val v[O_COUNT];
    const char *pos[1];
    int n_pos, rc = 1;
    int r = opts_parse("embed", "-m MODEL -p TEXT", OPTS, O_COUNT, v, argc, argv, pos, 0, &n_pos);
    if (r) return r > 0 ? 0 : 1;
    sl_model *m = cli_load_model("embed", v[O_MODEL].s);
    if (!m) return 1;
    const int32_t d = m->hp.n_embd;
    sl_pooling pooling = sl_pooling_default(m->hp.pooling_type);
    if (pooling == SL_POOL_RANK && !sl_model_can_rank(m)) pooling = SL_POOL_LAST;
    if (v[O_POOLING].set && !sl_pooling_from_name(v[O_POOLING].s, &pooling)) {
        fprintf(stderr, "shardlm embed: --pooling '%s' is not one of mean, cls, last, none, rank\n", v[O_POOLING].s);
        sl_model_destroy(m);
        return 1;
    }
    if (pooling == SL_POOL_RANK && !sl_model_can_rank(m)) {
        fprintf(stderr, "shardlm embed: %s has no classification head (cls.output.weight or cls.weight) to rank with\n",
                v[O_MODEL].s);
        sl_model_destroy(m);
        return 1;
    }
    const char *sep = v[O_SEPARATOR].s;
    if (!sep[0]) {
        fprintf(stderr, "shardlm embed: --separator is empty\n");
        sl_model_destroy(m);
        return 1;
    }
    const int threads = v[O_THREADS].set ? (int)v[O_THREADS].i : cli_default_threads();
    json_t *data = v[O_JSON].b ? json_array() : NULL;
    long long n_tokens = 0;
    int idx = 0;
    for (const char *p = v[O_PROMPT].s;; idx++) {
        const char *end = strstr(p, sep);
        const size_t len = end ? (size_t)(end - p) : strlen(p);
        size_t n = 0;
        int32_t *ids = cli_tokenize_prompt("embed", m, p, len, &n);
        float *hidden = ids && n > 0 ? sl_alloc_array(n * (size_t)d, sizeof(float)) : NULL;
        float *pooled = sl_alloc_array((size_t)d, sizeof(float));
        bool ok = false;
        if (!ids) {
            /* (cli_tokenize_prompt said why) */
        } else if (n == 0) {
            fprintf(stderr, "shardlm embed: input %d has no tokens (the model adds no BOS)\n", idx);
        } else if (!hidden || !pooled) {
            fprintf(stderr, "shardlm embed: out of memory\n");
        } else if (sl_eval_hidden(m, ids, (int32_t)n, threads, hidden) != SL_OK) {
            fprintf(stderr, "shardlm embed: input %d: %s\n", idx, sl_last_error());
        } else {
            ok = true;
            n_tokens += (long long)n;
            if (pooling == SL_POOL_NONE) {
                for (size_t t = 0; t < n; t++) sl_embd_normalize(hidden + t * (size_t)d, d, (int32_t)v[O_NORMALIZE].i);
                emit(data, idx, hidden, (int32_t)n, d, true);
            } else if (pooling == SL_POOL_RANK) { /* the head's outputs, raw */
                sl_pool_rows(sl_rank_position(m), hidden, (int32_t)n, d, pooled);
                float *outs = sl_alloc_array((size_t)d, sizeof(float));
                const int32_t k = outs ? sl_rank_head(m, pooled, outs) : 0;
                if (k > 0) emit(data, idx, outs, 1, k, false);
                else fprintf(stderr, "shardlm embed: out of memory\n");
                ok = k > 0;
                sl_free(outs);
            } else {
                sl_pool_rows(pooling, hidden, (int32_t)n, d, pooled);
                sl_embd_normalize(pooled, d, (int32_t)v[O_NORMALIZE].i);
                emit(data, idx, pooled, 1, d, false);
            }
        }
        sl_free(ids);
        sl_free(hidden);
        sl_free(pooled);
        if (!ok) goto done;
        if (!end) break;
        p = end + strlen(sep);
    }
    if (data) {
        json_t *o = json_pack("{s:s,s:O,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model",
                              v[O_MODEL].s, "usage", "prompt_tokens", (json_int_t)n_tokens, "total_tokens",
                              (json_int_t)n_tokens);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (s) printf("%s\n", s);
        free(s);
        json_decref(o);
    }
    rc = 0;
done:
    json_decref(data);
    sl_model_destroy(m);
    return rc;
}

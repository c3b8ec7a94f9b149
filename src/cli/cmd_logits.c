/*
 * cmd_logits.c — `shardlm logits -m MODEL -p PROMPT`: the logits at the last
 * prompt position, one per line (line i = token id i), as %.9g.
 */
#include "commands.h"
#include "common.h"
#include "opts.h"

#include "core/alloc.h"
#include "engine/generate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { O_MODEL, O_PROMPT, O_THREADS, O_COUNT };

static const opt_def OPTS[O_COUNT] = {
    [O_MODEL] = {"model", "m", OPT_STR, NULL, 0, -1, "GGUF model file"},
    [O_PROMPT] = {"prompt", "p", OPT_STR, "", 0, -1, "prompt text"},
    [O_THREADS] = {"threads", "t", OPT_INT, NULL, 1, 1024, "compute threads (default: number of CPUs)"},
};

int cmd_logits(int argc, char **argv) {
    opt_val v[O_COUNT];
    const char *pos[1];
    int n_pos, rc = 1;
    int r = opts_parse("logits", "-m MODEL -p PROMPT", OPTS, O_COUNT, v, argc, argv, pos, 0, &n_pos);
    if (r) return r > 0 ? 0 : 1;
    sl_model *m = cli_load_model("logits", v[O_MODEL].s);
    int32_t *ids = NULL;
    float *logits = NULL;
    if (!m) goto done;
    size_t n_ids;
    ids = cli_tokenize_prompt("logits", m, v[O_PROMPT].s, strlen(v[O_PROMPT].s), &n_ids);
    if (!ids) goto done;
    if (n_ids == 0) {
        fprintf(stderr, "shardlm logits: the prompt has no tokens (the model adds no BOS)\n");
        goto done;
    }
    int32_t n_vocab = sl_model_n_vocab(m);
    logits = malloc((size_t)n_vocab * sizeof(float));
    if (!logits) {
        fprintf(stderr, "shardlm logits: out of memory\n");
        goto done;
    }
    int threads = v[O_THREADS].set ? (int)v[O_THREADS].i : cli_default_threads();
    if (sl_eval_logits(m, ids, (int32_t)n_ids, 1, threads, logits) != SL_OK) {
        fprintf(stderr, "shardlm logits: %s\n", sl_last_error());
        goto done;
    }
    for (int32_t i = 0; i < n_vocab; i++) printf("%.9g\n", logits[i]);
    rc = 0;
done:
    free(logits);
    sl_free(ids);
    sl_model_destroy(m);
    return rc;
}

/*
 * fuzz_model.c — libFuzzer target for the model layer above the GGUF reader
 * (`make fuzz`): hyper-parameters, tensor shapes and types, the tokenizer
 * built from metadata — and then the forward pass, since a model that loads
 * must run.
 *
 * Input: a GGUF image (the seeds are tiny `shardlm mkmodel` models with the
 * stories260K vocabulary, so mutations reach the model checks). When
 * sl_model_load_memory accepts it: a short text is tokenized (ids in the
 * vocabulary), and up to 3 tokens are evaluated with logits for the last one
 * (a refusal is fine, a crash or a sanitizer report is not). When it refuses:
 * the error message is non-empty.
 *
 * tests/unit/test_mkmodel.c includes this file (FUZZ_MODEL_NO_MAIN) and
 * replays tests/fuzz/corpus/model through fuzz_model_one().
 */
#include "engine/generate.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#include "core/alloc.h"
#include "core/status.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_model_check(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_model: invariant violated: %s\n", what);
        abort();
    }
}

/* 0: loaded (and ran or refused to run cleanly), 1: refused cleanly. */
static int fuzz_model_one(const uint8_t *data, size_t len) {
    sl_model *m = NULL;
    if (sl_model_load_memory(data, len, &m) != SL_OK) {
        fuzz_model_check(m == NULL, "a refused model is not returned");
        fuzz_model_check(sl_last_error()[0] != '\0', "a refusal names what was wrong");
        return 1;
    }
    const int32_t n_vocab = sl_model_n_vocab(m);
    fuzz_model_check(n_vocab > 0, "a loaded model has a vocabulary");
    int32_t *ids = NULL;
    size_t n_ids = 0;
    static const char text[] = "Once upon a time";
    if (sl_tokenize(sl_model_tokenizer(m), text, sizeof text - 1, true, false, &ids, &n_ids) == SL_OK)
        for (size_t i = 0; i < n_ids; i++) fuzz_model_check(ids[i] >= 0 && ids[i] < n_vocab, "ids in the vocabulary");
    sl_free(ids);
    const int32_t toks[3] = {0, 1 % n_vocab, 2 % n_vocab};
    int32_t n = sl_model_n_ctx(m) < 3 ? sl_model_n_ctx(m) : 3;
    if (n >= 1 && (size_t)n_vocab <= ((size_t)1 << 24)) {
        float *logits = sl_malloc(sizeof(float) * (size_t)n_vocab);
        fuzz_model_check(logits != NULL, "memory");
        sl_eval_logits(m, toks, n, 1, 1, logits);
        sl_free(logits);
    }
    sl_model_destroy(m);
    return 0;
}

#ifndef FUZZ_MODEL_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_model_one(data, size);
    return 0;
}
#endif

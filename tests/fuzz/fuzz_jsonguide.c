/*
 * fuzz_jsonguide.c — libFuzzer target for structured output's schema compiler
 * and recognizer (src/engine/jsonguide.c, `make fuzz`): schemas come from
 * clients, the bytes fed from a model.
 *
 * Input: a JSON Schema (or a JSON string: a whole-output pattern, as
 * guided_regex), a NUL byte, an output. Checked: a schema either compiles or
 * is refused with a message; the output is fed byte by byte, a refused byte
 * leaves the state as it was (its readings unchanged), a complete answer may
 * end; and an output taken whole and complete under a schema is one jansson,
 * an independent parser, reads as an object.
 *
 * tests/unit/test_jsonguide.c includes this file (FUZZ_JSONGUIDE_NO_MAIN) and
 * replays tests/fuzz/corpus/jsonguide through fuzz_jsonguide_one().
 */
#include "core/status.h"
#include "engine/jsonguide.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_jsonguide_check(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_jsonguide: invariant violated: %s\n", what);
        abort();
    }
}

/* 2: compiled and the output complete, 1: compiled, 0: refused. */
static int fuzz_jsonguide_one(const uint8_t *data, size_t len) {
    const uint8_t *nul = memchr(data, 0, len);
    if (!nul) return 0;
    json_t *schema = json_loadb((const char *)data, (size_t)(nul - data), 0, NULL);
    if (!schema) return 0;
    sl_json_schema *sc = NULL;
    const bool raw = json_is_string(schema);
    const sl_status st = raw ? sl_json_schema_compile_pattern(json_string_value(schema), json_string_length(schema), &sc)
                             : sl_json_schema_compile(schema, &sc);
    json_decref(schema);
    if (st != SL_OK) {
        fuzz_jsonguide_check(sc == NULL && sl_last_error()[0], "a refused schema names why");
        return 0;
    }
    const char *out = (const char *)nul + 1;
    const size_t n = len - (size_t)(nul - data) - 1;
    sl_json_state *s = malloc(sizeof *s), *before = malloc(sizeof *before);
    sl_json_init(s, sc);
    size_t fed = 0;
    for (; fed < n; fed++) {
        memcpy(before, s, sizeof *s);
        if (!sl_json_feed(s, (uint8_t)out[fed])) {
            fuzz_jsonguide_check(s->n == before->n && !memcmp(s->f, before->f, (size_t)s->n * sizeof s->f[0]),
                                 "a refused byte leaves the readings as they were");
            break;
        }
        fuzz_jsonguide_check(s->n >= 1 && s->n <= SL_JSON_MAX_FORKS, "readings within the limit");
        fuzz_jsonguide_check(!sl_json_done(s) || sl_json_may_end(s), "a complete answer may end");
    }
    int r = 1;
    if (fed == n && sl_json_done(s) && !raw) {
        json_t *doc = json_loadb(out, n, 0, NULL);
        fuzz_jsonguide_check(json_is_object(doc), "a complete answer is a JSON object");
        json_decref(doc);
        r = 2;
    }
    free(s);
    free(before);
    sl_json_schema_release(sc);
    return r;
}

#ifndef FUZZ_JSONGUIDE_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_jsonguide_one(data, size);
    return 0;
}
#endif

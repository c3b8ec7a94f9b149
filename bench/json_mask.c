/*
 * json_mask.c — bench helper: what JSON mode (engine/jsonguide.c) costs the
 * scheduler per sampled token of one request: one sl_json_guide_mask over a
 * model's vocabulary, in a few kinds of state (JSON mode: after '{', inside
 * a key, after ':', inside a number; under a schema: inside a free string,
 * a string with a pattern, a date, a number with bounds). Reports ms per
 * mask and the tokens it allows.
 *
 *   cc -O2 -Iinclude -Isrc bench/json_mask.c build/libshardlm.a -ljansson -lpcre2-8 -lutf8proc -lm -pthread -o build/json_mask
 *   build/json_mask MODEL.gguf [ROUNDS=200]
 */
#include "engine/jsonguide.h"
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: json_mask MODEL.gguf [ROUNDS]\n");
        return 2;
    }
    const int rounds = argc > 2 ? atoi(argv[2]) : 200;
    sl_model *m = NULL;
    if (sl_model_load(argv[1], &m) != SL_OK) {
        fprintf(stderr, "json_mask: cannot load %s\n", argv[1]);
        return 1;
    }
    const sl_tokenizer *tok = sl_model_tokenizer(m);
    sl_json_guide *g = NULL;
    if (sl_json_guide_create(tok, &g) != SL_OK) return 1;
    const int32_t n = sl_tokenizer_n_vocab(tok);
    float *l = calloc((size_t)n, sizeof(float));
    json_t *schema = json_loads("{\"type\":\"object\",\"properties\":{\"free\":{\"type\":\"string\"},"
                                "\"word\":{\"type\":\"string\",\"pattern\":\"^[a-z]+( [a-z]+)*$\"},"
                                "\"day\":{\"type\":\"string\",\"format\":\"date\"},"
                                "\"n\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":1000}}}",
                                0, NULL);
    sl_json_schema *any = NULL, *sc = NULL;
    if (!schema || sl_json_schema_compile(NULL, &any) != SL_OK || sl_json_schema_compile(schema, &sc) != SL_OK) return 1;
    json_decref(schema);
    static const struct {
        bool schema;
        const char *text;
    } states[] = {{false, "{"}, {false, "{\"name"}, {false, "{\"name\":"}, {false, "{\"n\":12"},
                  {true, "{\"free\":\"ab"}, {true, "{\"word\":\"ab"}, {true, "{\"day\":\"2024-0"}, {true, "{\"n\":1"}};
    for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
        sl_json_state s;
        sl_json_init(&s, states[k].schema ? sc : any);
        sl_json_feed_all(&s, states[k].text, strlen(states[k].text));
        int32_t allowed = 0;
        double best = 1e9;
        for (int r = 0; r < rounds; r++) {
            const double t0 = now_s();
            allowed = sl_json_guide_mask(g, &s, l);
            const double dt = now_s() - t0;
            if (dt < best) best = dt;
        }
        printf("%s after %-16s %6d of %d tokens allowed, %.3f ms per mask (best of %d)\n",
               states[k].schema ? "schema   " : "JSON mode", states[k].text, allowed, n, best * 1e3, rounds);
    }
    sl_json_schema_release(any);
    sl_json_schema_release(sc);
    free(l);
    sl_json_guide_destroy(g);
    sl_model_destroy(m);
    return 0;
}

/*
 * gram_mask.c — bench helper: what a GBNF grammar (engine/grammar.c) costs
 * the scheduler per sampled token of one request: the trie of the
 * vocabulary's texts (built once), and one sl_gram_guide_mask in a few kinds
 * of state of a JSON grammar and of a grammar whose readings multiply with
 * each nesting. For each state: the first mask (the trie walk, best of
 * ROUNDS fresh states) and the same state's next one (from its memo), with
 * the tokens allowed.
 *
 *   cc -O2 -Iinclude -Isrc bench/gram_mask.c build/libshardlm.a -ljansson -lpcre2-8 -lutf8proc -lm -pthread \
 *       -o build/gram_mask
 *   build/gram_mask VOCAB_OR_MODEL.gguf [ROUNDS=5]
 */
#include "engine/grammar.h"
#include "engine/jsonguide.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static const char JSON_GBNF[] =
    "root   ::= ws value ws\n"
    "value  ::= object | array | string | number | \"true\" | \"false\" | \"null\"\n"
    "object ::= \"{\" ws ( string ws \":\" ws value ws ( \",\" ws string ws \":\" ws value ws )* )? \"}\"\n"
    "array  ::= \"[\" ws ( value ws ( \",\" ws value ws )* )? \"]\"\n"
    "string ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1f] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} ) )* \"\\\"\"\n"
    "number ::= \"-\"? ( \"0\" | [1-9] [0-9]* ) ( \".\" [0-9]+ )? ( [eE] [-+]? [0-9]+ )?\n"
    "ws     ::= [ \\t\\n\\r]*\n";
static const char NESTED_GBNF[] = "root ::= e\ne ::= [a-z ]+ | \"(\" e \")\" | \"(\" e \"))\"\n";

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: gram_mask VOCAB_OR_MODEL.gguf [ROUNDS]\n");
        return 2;
    }
    const int rounds = argc > 2 ? atoi(argv[2]) : 5;
    sl_gguf *f = NULL;
    sl_tokenizer *tok = NULL;
    if (sl_gguf_open(argv[1], &f) != SL_OK || sl_tokenizer_create(f, &tok) != SL_OK) {
        fprintf(stderr, "gram_mask: %s\n", sl_last_error());
        return 1;
    }
    sl_gguf_close(f);
    sl_json_guide *texts = NULL;
    sl_gram_guide *guide = NULL;
    if (sl_json_guide_create(tok, &texts) != SL_OK) return 1;
    double t0 = now_s();
    if (sl_gram_guide_create(texts, tok, &guide) != SL_OK) return 1;
    const int32_t nv = sl_tokenizer_n_vocab(tok);
    printf("vocabulary: %d tokens; trie built in %.1f ms\n", nv, (now_s() - t0) * 1e3);
    float *logits = calloc((size_t)nv, sizeof(float));
    static const struct {
        const char *gbnf, *name, *after;
    } cases[] = {
        {JSON_GBNF, "json: start", ""},
        {JSON_GBNF, "json: inside a string", "{\"key\": \"some text"},
        {JSON_GBNF, "json: inside a number", "{\"key\": [1, 23"},
        {JSON_GBNF, "json: after ':'", "{\"a\": {\"b\":"},
        {NESTED_GBNF, "nested, 12 deep: inside text", "((((((((((((ab"},
    };
    printf("| state | first mask (ms) | next mask, same state (ms) | tokens allowed |\n|---|---|---|---|\n");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sl_grammar *g = NULL;
        if (sl_grammar_compile(cases[c].gbnf, strlen(cases[c].gbnf), &g) != SL_OK) {
            fprintf(stderr, "gram_mask: %s\n", sl_last_error());
            return 1;
        }
        double first = 1e9, next = 1e9;
        int32_t allowed = 0;
        for (int r = 0; r < rounds; r++) {
            sl_gram_state *s = NULL;
            if (sl_gram_state_create(g, &s) != SL_OK || !sl_gram_feed_all(s, cases[c].after, strlen(cases[c].after)))
                return 1;
            const double a = now_s();
            allowed = sl_gram_guide_mask(guide, s, logits);
            const double b = now_s();
            sl_gram_guide_mask(guide, s, logits);
            const double e = now_s();
            if (b - a < first) first = b - a;
            if (e - b < next) next = e - b;
            sl_gram_state_destroy(s);
        }
        printf("| %s | %.3f | %.3f | %d |\n", cases[c].name, first * 1e3, next * 1e3, allowed);
        sl_grammar_release(g);
    }
    free(logits);
    sl_gram_guide_destroy(guide);
    sl_json_guide_destroy(texts);
    sl_tokenizer_destroy(tok);
    return 0;
}

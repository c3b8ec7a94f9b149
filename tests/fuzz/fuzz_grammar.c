/*
 * fuzz_grammar.c — libFuzzer target for GBNF grammars (src/engine/grammar.c,
 * `make fuzz`): a grammar comes from a client's request.
 *
 * Input: a grammar, a NUL byte, an output. Checked: compiling any text either
 * fails with a message or gives a grammar whose start state exists; the
 * output fed one byte at a time is taken up to the first byte refused, and a
 * refused byte leaves the state as it was (it may end exactly when it could
 * before); the prefix taken, fed at once to a fresh state, is taken too and
 * ends alike, and with the refused byte after it is refused; a state that is
 * done takes no byte at all.
 *
 * tests/unit/test_grammar.c includes this file (FUZZ_GRAMMAR_NO_MAIN) and
 * replays tests/fuzz/corpus/grammar through fuzz_grammar_one().
 */
#include "core/status.h"
#include "engine/grammar.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_grammar_check(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_grammar: invariant violated: %s\n", what);
        abort();
    }
}

/* 1: compiled, 0: refused. */
static int fuzz_grammar_one(const uint8_t *data, size_t len) {
    const uint8_t *nul = memchr(data, 0, len);
    const size_t glen = nul ? (size_t)(nul - data) : len;
    const char *out = nul ? (const char *)nul + 1 : "";
    const size_t olen = nul ? len - glen - 1 : 0;
    sl_grammar *g = NULL;
    if (sl_grammar_compile((const char *)data, glen, &g) != SL_OK) {
        fuzz_grammar_check(g == NULL && sl_last_error()[0] != '\0', "a refused grammar has a message and no result");
        return 0;
    }
    sl_gram_state *s = NULL, *t = NULL;
    if (sl_gram_state_create(g, &s) != SL_OK) { /* out of memory only */
        sl_grammar_release(g);
        return 1;
    }
    size_t taken = 0;
    for (; taken < olen; taken++) {
        const bool end = sl_gram_may_end(s), done = sl_gram_done(s);
        if (!sl_gram_feed_all(s, out + taken, 1)) {
            fuzz_grammar_check(sl_gram_may_end(s) == end && sl_gram_done(s) == done, "a refused byte changes nothing");
            break;
        }
        fuzz_grammar_check(!done, "a done state takes no byte");
    }
    if (sl_gram_done(s))
        for (int c = 0; c < 256; c++) {
            const char b = (char)c;
            fuzz_grammar_check(!sl_gram_feed_all(s, &b, 1), "a done state takes no byte");
        }
    if (sl_gram_state_create(g, &t) == SL_OK) {
        fuzz_grammar_check(sl_gram_feed_all(t, out, taken), "the prefix taken byte by byte is taken at once");
        fuzz_grammar_check(sl_gram_may_end(t) == sl_gram_may_end(s) && sl_gram_done(t) == sl_gram_done(s),
                           "fed at once, it ends alike");
        if (taken < olen) {
            sl_gram_state *u = NULL;
            if (sl_gram_state_create(g, &u) == SL_OK)
                fuzz_grammar_check(!sl_gram_feed_all(u, out, taken + 1), "with the refused byte it is refused");
            sl_gram_state_destroy(u);
        }
    }
    sl_gram_state_destroy(t);
    sl_gram_state_destroy(s);
    sl_grammar_release(g);
    return 1;
}

#ifndef FUZZ_GRAMMAR_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_grammar_one(data, size);
    return 0;
}
#endif

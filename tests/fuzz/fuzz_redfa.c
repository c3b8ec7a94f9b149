/*
 * fuzz_redfa.c — libFuzzer target for JSON Schema patterns
 * (src/engine/redfa.c, `make fuzz`): a pattern comes from a client's schema.
 *
 * Input: a pattern, a NUL byte, a subject. Checked: compiling any pattern
 * either fails with a message or gives a DFA whose transitions stay in range,
 * whose start state is live, and whose character counts agree (a matching
 * state needs none, fewest <= most). Where PCRE2 also takes the pattern with
 * ECMA-262's meaning (constructs the two read differently — `\v`, POSIX
 * `[:...:]`, empty classes — are left out) and the subject is valid UTF-8,
 * the DFA matches the subject exactly when PCRE2 does.
 *
 * tests/unit/test_redfa.c includes this file (FUZZ_REDFA_NO_MAIN) and replays
 * tests/fuzz/corpus/redfa through fuzz_redfa_one().
 */
#include "engine/redfa.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_redfa_check(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_redfa: invariant violated: %s\n", what);
        abort();
    }
}

/* 1: compiled (and, where PCRE2 could judge, agreed), 0: refused. */
static int fuzz_redfa_one(const uint8_t *data, size_t len) {
    const uint8_t *nul = memchr(data, 0, len);
    const size_t plen = nul ? (size_t)(nul - data) : len;
    const char *pat = (const char *)data, *subj = nul ? (const char *)nul + 1 : "";
    const size_t slen = nul ? len - plen - 1 : 0;
    sl_redfa d;
    if (sl_redfa_compile(pat, plen, 512, &d) != SL_OK) {
        fuzz_redfa_check(d.next == NULL && d.n == 0, "a refused pattern leaves no DFA");
        return 0;
    }
    fuzz_redfa_check(d.n >= 1 && d.n <= 512, "state count within the limit");
    for (size_t i = 0; i < (size_t)d.n * 256; i++)
        fuzz_redfa_check(d.next[i] == SL_REDFA_DEAD || d.next[i] < d.n, "transitions stay in range");
    for (int i = 0; i < d.n; i++) {
        fuzz_redfa_check(!d.accept[i] || d.min_chars[i] == 0, "a matching state needs no more characters");
        fuzz_redfa_check(d.max_chars[i] == SL_REDFA_UNBOUNDED || d.min_chars[i] <= d.max_chars[i], "fewest <= most");
    }
    int st = 0;
    for (size_t i = 0; i < slen && st != SL_REDFA_DEAD; i++) st = d.next[(size_t)st * 256 + (uint8_t)subj[i]];
    const int dfa = st != SL_REDFA_DEAD && d.accept[st];
    sl_redfa_free(&d);
    /* PCRE2 as the reference, where it reads the pattern as ECMA-262 does */
    static const char *differ[] = {"\\v", "[:", "[]", "[^]"};
    for (size_t k = 0; k < sizeof differ / sizeof differ[0]; k++)
        if (memmem(pat, plen, differ[k], strlen(differ[k]))) return 1;
    int err;
    PCRE2_SIZE off;
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    pcre2_set_newline(cc, PCRE2_NEWLINE_ANYCRLF);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, plen, PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_ALT_BSUX, &err, &off, cc);
    pcre2_compile_context_free(cc);
    if (!re) return 1;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    const int rc = pcre2_match(re, (PCRE2_SPTR)subj, slen, 0, 0, md, NULL);
    if (rc >= 0 || rc == PCRE2_ERROR_NOMATCH) fuzz_redfa_check(dfa == (rc >= 0), "the DFA matches as PCRE2 does");
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return 1;
}

#ifndef FUZZ_REDFA_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_redfa_one(data, size);
    return 0;
}
#endif

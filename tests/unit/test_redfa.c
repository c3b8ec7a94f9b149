/*
 * test_redfa.c — JSON Schema patterns as byte DFAs (engine/redfa.c) against
 * PCRE2, an independent regex engine, set to ECMA-262's meaning (UTF, `$` only
 * at the end, `\u` escapes, `.` stopping at \r and \n): for every string of up
 * to five characters over each pattern's alphabet, plus random longer ones,
 * the DFA matches exactly when PCRE2 finds a match; for patterns anchored
 * with `^`, a prefix stays live exactly when PCRE2's hard partial match says
 * a match can still come (patterns whose every alternative is anchored).
 */
#include "harness.h"

#include "engine/redfa.h"
#define FUZZ_REDFA_NO_MAIN
#include "../fuzz/fuzz_redfa.c"
#include "core/status.h"

#include <stdlib.h>
#include <string.h>

/* The DFA's state after bytes s[0, n), or SL_REDFA_DEAD. */
static int run_dfa(const sl_redfa *d, const char *s, size_t n) {
    int st = 0;
    for (size_t i = 0; i < n && st != SL_REDFA_DEAD; i++) st = d->next[(size_t)st * 256 + (uint8_t)s[i]];
    return st;
}

typedef struct oracle {
    pcre2_code *re;
    pcre2_match_data *md;
} oracle;

static bool oracle_open(oracle *o, const char *pattern) {
    int err;
    PCRE2_SIZE off;
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    pcre2_set_newline(cc, PCRE2_NEWLINE_ANYCRLF); /* '.' stops at \r and \n, as ECMA-262's */
    o->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_ALT_BSUX,
                          &err, &off, cc);
    pcre2_compile_context_free(cc);
    if (!o->re) return false;
    o->md = pcre2_match_data_create_from_pattern(o->re, NULL);
    return true;
}
static void oracle_close(oracle *o) {
    pcre2_match_data_free(o->md);
    pcre2_code_free(o->re);
}
/* 1 match, 0 none, 2 a hard partial match (with partial set) */
static int oracle_match(const oracle *o, const char *s, size_t n, bool partial) {
    const int rc = pcre2_match(o->re, (PCRE2_SPTR)s, n, 0, partial ? PCRE2_PARTIAL_HARD : 0, o->md, NULL);
    if (rc >= 0) return 1;
    if (rc == PCRE2_ERROR_PARTIAL) return 2;
    return 0;
}

/* xorshift64: reproducible test data */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(uint32_t n) { return sl_test_xorshift(&rng_state, n); }

/* One pattern: whole strings agree; anchored patterns: prefixes agree. Returns false (and reports) on a difference. */
static bool agrees(const char *pattern, const char *alphabet, int *checked) {
    sl_redfa d;
    if (sl_redfa_compile(pattern, strlen(pattern), 2048, &d) != SL_OK) {
        sl_test_fail(__FILE__, __LINE__, "%s: %s", pattern, sl_last_error());
        return false;
    }
    oracle o;
    if (!oracle_open(&o, pattern)) {
        sl_test_fail(__FILE__, __LINE__, "PCRE2 refuses %s", pattern);
        sl_redfa_free(&d);
        return false;
    }
    const bool anchored = pattern[0] == '^';
    const char *ch[16];
    int cl[16];
    const int na = sl_test_utf8_split(alphabet, ch, cl);
    char s[64];
    bool ok = true;
    /* every string of up to 5 characters, then 2000 random ones of up to 12 */
    int idx[12];
    for (int len = 0; len <= 12 && ok; len++) {
        long total = 1;
        for (int k = 0; k < len; k++) total *= na;
        const bool all = len <= 5;
        const long count = all ? total : 2000 / 7;
        for (long t = 0; t < count && ok; t++) {
            long x = t;
            size_t n = 0;
            for (int k = 0; k < len; k++) {
                idx[k] = all ? (int)(x % na) : (int)rnd((uint32_t)na);
                x /= na;
                memcpy(s + n, ch[idx[k]], (size_t)cl[idx[k]]);
                n += (size_t)cl[idx[k]];
            }
            const int st = run_dfa(&d, s, n);
            const bool dfa = st != SL_REDFA_DEAD && d.accept[st];
            const bool ref = oracle_match(&o, s, n, false) == 1;
            if (dfa != ref) {
                sl_test_fail(__FILE__, __LINE__, "%s on \"%.*s\": DFA %d, PCRE2 %d", pattern, (int)n, s, dfa, ref);
                ok = false;
            }
            if (anchored && n > 0 && ok) {
                const bool live = st != SL_REDFA_DEAD, ref_live = oracle_match(&o, s, n, true) != 0;
                if (live != ref_live) {
                    sl_test_fail(__FILE__, __LINE__, "%s: prefix \"%.*s\" live %d, PCRE2 %d", pattern, (int)n, s, live,
                                 ref_live);
                    ok = false;
                }
            }
            ++*checked;
        }
    }
    oracle_close(&o);
    sl_redfa_free(&d);
    return ok;
}

TEST(patterns_match_as_pcre2_does) {
    static const struct {
        const char *pattern, *alphabet;
    } cases[] = {
        {"^[a-z]+$", "ab1Z"},
        {"^\\d{3}-\\d{4}$", "12-a"},
        {"abc", "abcx"},
        {"^(ab|a)*c$", "abcx"},
        {"^a{2,3}b?$", "abx"},
        {"^[^0-9]*$", "a5\xc3\xa9 "},
        {"^.{2}$", "a\n\r\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"},
        {"x|^y", "xyz"},
        {"^(?:foo|bar)baz$", "fobarz"},
        {"^\\w+@\\w+\\.com$", "a@.com_"},
        {"^[A-Z][a-z]*( [A-Z][a-z]*)*$", "Aa b"},
        {"\xc3\xa9+", "\xc3\xa9" "ea"},
        {"^[\\s\\S]{0,3}$", "a \n\xc3\xa9"},
        {"^\\D\\W\\S$", "1a \xc3\xa9_"},
        {"^(?<year>\\d{4})-(?<m>\\d\\d)$", "19-a"},
        {"^a*?b+?$", "abc"},
        {"^\\x41\\u00e9$", "A\xc3\xa9" "e"},
        {"a.c", "ac\nb"},
        {"^\\.\\*\\+\\?\\(\\)$", ".*+?()"},
        {"^\\[\\]\\{\\}\\|\\^\\$\\\\\\/$", "[]{}|^$\\/"},
        {"^[-a-c]+$", "-abd"},
        {"^[a\\-z]$", "a-zb"},
        {"^$", "ab"},
        {"^(a|)+$", "ab"},
        {"^(a*)*b$", "ab"},
        {"b$", "ab\n"},
        {"^[\\d.]+$", "1.a"},
        {"^[\\t\\n]x$", "\t\nx "},
        {"[^a-z]{2}", "aB1\xc3\xa9"},
        {"^a{0}b$", "ab"},
        {"^x{2}y{1,}z{0,1}$", "xyz"},
        {"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}$", "0aG-"},
        {"^(\\+|-)?\\d+(\\.\\d+)?$", "+-1."},
        {"^((25[0-5]|2[0-4]\\d|1?\\d?\\d)\\.){3}(25[0-5]|2[0-4]\\d|1?\\d?\\d)$", "2510."},
        {"^a{3,}$", "ab"},
        {"d$|^(a|b)c", "abcd"},
        {"^[\\]a]$", "]a["},
        {"^\\cJ$", "\nJ"},
        {"^[^\\d\\s]$", "1 a\xc3\xa9"},
        {"^[\\W]$", "a_ \xc3\xa9"},
        {"^\\{a\\}{2}$", "{a}"},
        {"a{x", "a{x"},
    };
    int checked = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (!agrees(cases[i].pattern, cases[i].alphabet, &checked)) return;
    CHECK(checked > 50000);
}

TEST(pattern_errors_say_what_and_where) {
    static const struct {
        const char *pattern, *says;
    } bad[] = {
        {"^(?=a)b", "lookahead is not supported at offset 1"},
        {"(?<!a)b", "lookbehind is not supported at offset 0"},
        {"(a)\\1", "backreference is not supported at offset 3"},
        {"\\bword", "word boundary"},
        {"\\p{L}", "Unicode property escape"},
        {"(ab", "'(' group is not closed at offset 0"},
        {"ab)", "')' without its '(' at offset 2"},
        {"[ab", "'[' class is not closed"},
        {"*a", "nothing to repeat at offset 0"},
        {"a**", "nothing to repeat at offset 2"},
        {"^*", "nothing to repeat"},
        {"[\xc3\xa9]", "non-ASCII character in a '[' class"},
        {"[z-a]", "runs backwards"},
        {"a{3,2}", "m below n"},
        {"a{1001}", "above 1000"},
        {"\\q", "unknown escape"},
        {"\\x4", "hex digits"},
        {"\\ud800", "surrogate"},
        {"a\\", "ends in '\\'"},
        {"(?P<n>a)", "unknown '(?' group"},
        {"\\01", "octal escape"},
        {"a^b", "matches no string"},
        {"(a|b|c|d|e|f|g|h|i|j){1000}", "automaton states"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_redfa d;
        const sl_status st = sl_redfa_compile(bad[i].pattern, strlen(bad[i].pattern), 2048, &d);
        CHECK_MSG(st == SL_ERR_INVALID && strstr(sl_last_error(), bad[i].says) && !d.next, "%s -> %d %s", bad[i].pattern,
                  (int)st, sl_last_error());
    }
    /* the state limit is the caller's */
    sl_redfa d;
    CHECK(sl_redfa_compile("^[a-z]{20}$", 11, 8, &d) == SL_ERR_INVALID && strstr(sl_last_error(), "more than 8"));
    CHECK_OK(sl_redfa_compile("^[a-z]{20}$", 11, 64, &d));
    CHECK_EQ_INT(d.n, 21);
    sl_redfa_free(&d);
}

/* The fewest and most characters to a match, from the start and from within a character, as counted here by
 * hand for each pattern. */
TEST(characters_to_a_match) {
    static const struct {
        const char *pattern, *fed;
        int min, max; /* -1: unbounded */
    } cases[] = {
        {"^[a-z]{20}$", "", 20, 20},
        {"^[a-z]{20}$", "abc", 17, 17},
        {"^a+b?$", "", 1, -1},
        {"^(ab|c)$", "", 1, 2},
        {"^(ab|c)$", "a", 1, 1},
        {"^\xc3\xa9{2,3}$", "", 2, 3},
        {"^\xc3\xa9{2,3}$", "\xc3", 1, 2}, /* within the first character: one or two more after it */
        {"^\xc3\xa9{2,3}$", "\xc3\xa9\xc3\xa9", 0, 1},
        {"x", "", 1, -1},
        {"^x", "x", 0, -1},
        {"^\\d{4}-\\d{2}$", "12", 5, 5},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_redfa d;
        CHECK_OK(sl_redfa_compile(cases[i].pattern, strlen(cases[i].pattern), 256, &d));
        const int st = run_dfa(&d, cases[i].fed, strlen(cases[i].fed));
        CHECK(st != SL_REDFA_DEAD);
        const int mn = d.min_chars[st], mx = d.max_chars[st] == SL_REDFA_UNBOUNDED ? -1 : d.max_chars[st];
        sl_redfa_free(&d);
        CHECK_MSG(mn == cases[i].min && mx == cases[i].max, "%s after '%s': %d..%d, want %d..%d", cases[i].pattern,
                  cases[i].fed, mn, mx, cases[i].min, cases[i].max);
    }
}

static long replay_one(const uint8_t *data, size_t len) { return fuzz_redfa_one(data, len); }

/* The fuzz target's corpus, replayed: every input keeps the invariants (a failure aborts). */
TEST(fuzz_corpus_replay) {
    long compiled = 0;
    const int n = sl_test_each_file("tests/fuzz/corpus/redfa", replay_one, &compiled);
    printf("   corpus: %d inputs, %ld compiled\n", n, compiled);
    CHECK(n >= 8 && compiled >= 8);
}

/*
 * test_grammar.c — GBNF grammars (engine/grammar.c) against independent
 * references: regular grammars against PCRE2 (every string of up to five
 * characters over an alphabet, whole and as a prefix, with PCRE2's hard
 * partial match saying whether a prefix can still become a match), balanced
 * parentheses against a counter, a JSON grammar against jansson; refusals
 * that name what is wrong and where; the token mask over real vocabularies
 * against each token's text run through the recognizer on its own.
 */
#include "harness.h"

#include "core/alloc.h"
#include "core/status.h"
#include "engine/grammar.h"
#include "engine/jsonguide.h"
#include "tokenizer/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sl_grammar *compile(const char *text) {
    sl_grammar *g = NULL;
    if (sl_grammar_compile(text, strlen(text), &g) != SL_OK) {
        sl_test_fail(__FILE__, __LINE__, "%s: %s", text, sl_last_error());
        return NULL;
    }
    return g;
}

/* 0: refused, 1: a live prefix, 2: a whole sentence */
static int judge(const sl_grammar *g, const char *s, size_t n) {
    sl_gram_state *st = NULL;
    if (sl_gram_state_create(g, &st) != SL_OK) return -1;
    int r = 0;
    if (sl_gram_feed_all(st, s, n)) r = sl_gram_may_end(st) ? 2 : 1;
    sl_gram_state_destroy(st);
    return r;
}

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint32_t rnd(uint32_t n) { return sl_test_xorshift(&rng_state, n); }

/* Strings over the alphabet: every one of up to 5 characters, then random ones of 6 to 10; fn judges each. */
static bool each_string(const char *alphabet, bool (*fn)(void *ctx, const char *s, size_t n), void *ctx) {
    const char *ch[16];
    int cl[16];
    const int na = sl_test_utf8_split(alphabet, ch, cl);
    char s[64];
    for (int len = 0; len <= 10; len++) {
        long total = 1;
        for (int k = 0; k < len; k++) total *= na;
        const bool all = len <= 5;
        const long count = all ? total : 400;
        for (long t = 0; t < count; t++) {
            long x = t;
            size_t n = 0;
            for (int k = 0; k < len; k++) {
                const int i = all ? (int)(x % na) : (int)rnd((uint32_t)na);
                x /= na;
                memcpy(s + n, ch[i], (size_t)cl[i]);
                n += (size_t)cl[i];
            }
            if (!fn(ctx, s, n)) return false;
        }
    }
    return true;
}

typedef struct vs_pcre {
    const sl_grammar *g;
    const char *gbnf;
    pcre2_code *re;
    pcre2_match_data *md;
    int checked;
} vs_pcre;

static bool agree_pcre(void *ctx, const char *s, size_t n) {
    vs_pcre *v = ctx;
    const int rc = pcre2_match(v->re, (PCRE2_SPTR)s, n, 0, PCRE2_PARTIAL_HARD, v->md, NULL);
    const int full = pcre2_match(v->re, (PCRE2_SPTR)s, n, 0, 0, v->md, NULL) >= 0;
    int ref = full ? 2 : (rc >= 0 || rc == PCRE2_ERROR_PARTIAL) ? 1 : 0;
    if (n == 0 && ref == 0) ref = 1; /* PCRE2 reports no partial match of nothing; every language here is not empty */
    const int got = judge(v->g, s, n);
    /* a whole match that could also go on is "2" on both sides (may end) */
    if (got != ref) {
        sl_test_fail(__FILE__, __LINE__, "%s on \"%.*s\": grammar %d, PCRE2 %d", v->gbnf, (int)n, s, got, ref);
        return false;
    }
    v->checked++;
    return true;
}

TEST(regular_grammars_agree_with_pcre2) {
    static const struct {
        const char *gbnf, *pattern, *alphabet;
    } cases[] = {
        {"root ::= [a-c]+ (\",\" [a-c]+)*", "[a-c]+(?:,[a-c]+)*", "abd,"},
        {"root ::= \"ab\" | \"abc\" | \"b\"?", "ab|abc|b?", "abc"},
        {"root ::= x{2,3} y?\nx ::= \"a\" | \"bb\"\ny ::= [^a-b]", "(?:a|bb){2,3}[^a-b]?", "abz"},
        {"root ::= ( \"a\" [0-9]{0,2} )* \".\"", "(?:a[0-9]{0,2})*\\.", "a1."},
        {"root ::= [α-γ]+ \"é\"?", "[α-γ]+é?", "αβδé"},
        {"root ::= \"x\" . \"y\"", "x.y", "xy\n"},
        {"root ::= \"\\x41\\u00e9\\n\" [\\t\\]]", "Aé\\n[\\t\\]]", "Aé\n\t]"},
        {"root ::= a{3}\na ::= \"a\" | \"\"", "a{0,3}", "ab"},
        {"root ::= \"a\"{2,} \"b\"{,2}", "a{2,}b{0,2}", "ab"},
        {"root ::= \"ab\"* [^\\x00-\\x60]", "(?:ab)*[^\\x00-\\x60]", "abz`"},
        {"# a comment\nroot ::= (\n  \"a\" |   # first\n  \"b\" \"c\"\n) \"d\" |\n  \"e\"  # last\n\n",
         "(?:a|bc)d|e", "abcde"},
        {"root ::= [-a] [a-] [\\-z]", "[-a][a-][\\-z]", "-az"},
        {"root ::= \"𝄞\" [^𝄞]", "\\x{1D11E}[^\\x{1D11E}]", "𝄞aé"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        vs_pcre v = {.gbnf = cases[i].gbnf};
        v.g = compile(cases[i].gbnf);
        if (!v.g) continue;
        char pat[256];
        snprintf(pat, sizeof pat, "^(?:%s)$", cases[i].pattern);
        int err;
        PCRE2_SIZE off;
        v.re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_DOTALL, &err,
                             &off, NULL);
        CHECK_MSG(v.re, "PCRE2 refuses %s", pat);
        if (v.re) {
            v.md = pcre2_match_data_create_from_pattern(v.re, NULL);
            CHECK(each_string(cases[i].alphabet, agree_pcre, &v));
            CHECK(v.checked > 100);
            pcre2_match_data_free(v.md);
            pcre2_code_free(v.re);
        }
        sl_grammar_release((sl_grammar *)v.g);
    }
}

/* Balanced parentheses (not regular), against a counter. */
typedef struct vs_count {
    const sl_grammar *g;
    int checked;
} vs_count;

static bool agree_balanced(void *ctx, const char *s, size_t n) {
    vs_count *v = ctx;
    int depth = 0, ref = 1;
    for (size_t i = 0; i < n && ref; i++) {
        if (s[i] == '(') depth++;
        else if (s[i] == ')' && depth > 0) depth--;
        else ref = 0;
    }
    if (ref && depth == 0) ref = 2;
    const int got = judge(v->g, s, n);
    if (got != ref) {
        sl_test_fail(__FILE__, __LINE__, "balanced on \"%.*s\": grammar %d, counter %d", (int)n, s, got, ref);
        return false;
    }
    v->checked++;
    return true;
}

TEST(balanced_parentheses_against_a_counter) {
    vs_count v = {0};
    v.g = compile("root ::= e\ne ::= (\"(\" e \")\")*");
    CHECK(v.g);
    if (!v.g) return;
    CHECK(each_string("()x", agree_balanced, &v));
    /* deep nesting, beyond what the strings above reach */
    char deep[4001];
    memset(deep, '(', 2000);
    memset(deep + 2000, ')', 2000);
    CHECK_EQ_INT(judge(v.g, deep, 2000), 1);
    CHECK_EQ_INT(judge(v.g, deep, 4000), 2);
    CHECK_EQ_INT(judge(v.g, deep + 1, 3999), 0);
    sl_grammar_release((sl_grammar *)v.g);
}

#define JSON_GBNF                                                                                                  \
    "root   ::= ws value ws\n"                                                                                      \
    "value  ::= object | array | string | number | \"true\" | \"false\" | \"null\"\n"                                \
    "object ::= \"{\" ws ( string ws \":\" ws value ws ( \",\" ws string ws \":\" ws value ws )* )? \"}\"\n"         \
    "array  ::= \"[\" ws ( value ws ( \",\" ws value ws )* )? \"]\"\n"                                              \
    "string ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1f] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} ) )* \"\\\"\"\n" \
    "number ::= \"-\"? ( \"0\" | [1-9] [0-9]* ) ( \".\" [0-9]+ )? ( [eE] [-+]? [0-9]+ )?\n"                         \
    "ws     ::= [ \\t\\n\\r]*\n"

static json_t *random_json(int depth) {
    switch (rnd(depth > 3 ? 5 : 7)) {
    case 0: return json_integer((json_int_t)rnd(2000) - 1000);
    case 1: return json_real((double)rnd(10000) / 64.0 - 50);
    case 2: {
        static const char *const strs[] = {"", "a b", "q\"uote", "back\\slash", "tab\t", "é✓𝄞", "\x01 ctl", "/"};
        return json_string(strs[rnd(8)]);
    }
    case 3: return rnd(2) ? json_true() : json_null();
    case 4: return json_false();
    case 5: {
        json_t *a = json_array();
        for (uint32_t k = rnd(4); k > 0; k--) json_array_append_new(a, random_json(depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        for (uint32_t k = rnd(4); k > 0; k--) {
            char key[8];
            snprintf(key, sizeof key, "k%u", rnd(100));
            json_object_set_new(o, key, random_json(depth + 1));
        }
        return o;
    }
    }
}

TEST(json_grammar_against_jansson) {
    sl_grammar *g = compile(JSON_GBNF);
    CHECK(g);
    if (!g) return;
    int accepted = 0, mutants = 0, sound = 0;
    for (int i = 0; i < 300; i++) {
        json_t *v = random_json(0);
        char *text = json_dumps(v, JSON_ENCODE_ANY | (i % 2 ? JSON_INDENT(2) : JSON_COMPACT) | JSON_ENSURE_ASCII * (i % 3 == 0));
        json_decref(v);
        const size_t n = strlen(text);
        accepted += judge(g, text, n) == 2;
        for (size_t k = 0; k < n; k += 1 + n / 8) CHECK_MSG(judge(g, text, k) >= 1, "prefix %zu of %s", k, text);
        /* one byte deleted, replaced or inserted: whatever the grammar takes whole, jansson parses */
        char m[4096];
        for (int t = 0; t < 8 && n + 2 < sizeof m; t++) {
            static const char ins[] = "{}[],:\" a1.e\\-";
            const size_t at = rnd((uint32_t)n + 1);
            size_t mn = 0;
            memcpy(m, text, at);
            mn = at;
            const uint32_t op = rnd(3);
            if (op != 0) m[mn++] = ins[rnd(sizeof ins - 1)];
            const size_t rest = op == 2 || at == n ? at : at + 1;
            memcpy(m + mn, text + rest, n - rest);
            mn += n - rest;
            if (judge(g, m, mn) == 2) {
                mutants++;
                json_error_t je;
                json_t *p = json_loadb(m, mn, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
                /* (JSON's grammar bounds no number and pairs no \u surrogate: jansson refuses numbers beyond a
                 * double's range and lone surrogates) */
                const bool ok = p || strstr(je.text, "overflow") || strstr(je.text, "Unicode");
                sound += ok;
                if (!ok) fprintf(stderr, "    grammar takes \"%.*s\", jansson does not\n", (int)mn, m);
                json_decref(p);
            }
        }
        free(text);
    }
    CHECK_EQ_INT(accepted, 300);
    CHECK_EQ_INT(sound, mutants);
    CHECK(mutants > 50);
    sl_grammar_release(g);
}

TEST(refusals_name_what_and_where) {
    static const struct {
        const char *gbnf, *msg;
    } bad[] = {
        {"", "no rule named 'root'"},
        {"start ::= \"a\"", "no rule named 'root'"},
        {"root ::= item\n", "the rule 'item' is used but not defined at line 1, column 10"},
        {"root ::= \"a\"\nroot ::= \"b\"", "defined twice at line 2, column 1"},
        {"root ::= root \"a\"", "'root' is left-recursive"},
        {"root ::= a\na ::= b? a \"x\"\nb ::= \"b\"", "'a' is left-recursive"},
        {"root ::= (\"a\"?)*", "left-recursive"},
        {"root ::= \"\\q\"", "unknown escape '\\q' at line 1, column 11"},
        {"root ::= \"abc", "a literal without its closing '\"' at line 1, column 10"},
        {"root ::= [abc", "without its closing ']'"},
        {"root ::= [z-a]", "is empty"},
        {"root ::= * \"a\"", "'*' repeats nothing"},
        {"root ::= \"a\"{3,2}", "the wrong way round"},
        {"root ::= \"a\"{1001}", "a repetition bound above 1000"},
        {"root ::= \"a\"{2", "without its '}'"},
        {"root ::= <think>", "token references"},
        {"root = \"a\"", "expected '::=' after the rule name 'root'"},
        {"root ::= (\"a\"", "a '(' without its ')'"},
        {"root ::= \"a\")", "a ')' without its '('"},
        {"root ::= \"a\"\n::= \"b\"", "expected a rule name at line 2, column 1"},
        {"root ::= \"\\uD800\"", "no Unicode character"},
        {"root ::= \"\\x4\"", "needs 2 hexadecimal digits"},
        {"root ::= \"\xff\"", "invalid UTF-8"},
        {"root ::= \"a\" ; \"b\"", "unexpected ';'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_grammar *g = NULL;
        const sl_status st = sl_grammar_compile(bad[i].gbnf, strlen(bad[i].gbnf), &g);
        CHECK_MSG(st != SL_OK && !g && strstr(sl_last_error(), bad[i].msg), "%s: %s (wanted \"%s\")", bad[i].gbnf,
                  st ? sl_last_error() : "accepted", bad[i].msg);
        sl_grammar_release(g);
    }
    char deep[200];
    memset(deep, 0, sizeof deep);
    strcpy(deep, "root ::= ");
    for (int i = 0; i < 70; i++) strcat(deep, "(");
    sl_grammar *g = NULL;
    CHECK(sl_grammar_compile(deep, strlen(deep), &g) != SL_OK && strstr(sl_last_error(), "nested more than 64"));
    const char nul[] = "root ::= \"a\"\0";
    CHECK(sl_grammar_compile(nul, sizeof nul - 1, &g) != SL_OK && strstr(sl_last_error(), "NUL"));
    /* a large but legal grammar compiles; one that expands past the symbol limit is refused */
    const char *wide = "root ::= ([a-z]{0,1000} \",\"){1000}";
    CHECK_OK(sl_grammar_compile(wide, strlen(wide), &g));
    sl_grammar_release(g);
    g = NULL;
    const char *huge = "root ::= x{1000}\nx ::= y{1000}\ny ::= \"abc\"{1000}";
    CHECK(sl_grammar_compile(huge, strlen(huge), &g) == SL_OK);
    sl_grammar_release(g);
    g = NULL;
    const char *big = "root ::= \"abcdefghijklmnopqrstuvwxyz\"{1000} \"abcdefghijklmnopqrstuvwxyz\"{1000}";
    CHECK_OK(sl_grammar_compile(big, strlen(big), &g));
    sl_grammar_release(g);
}

/* A state that follows the output: once done, nothing else; a refused byte leaves it as it was; an
 * ambiguous grammar's readings stay bounded. */
TEST(state_follows_the_output) {
    sl_grammar *g = compile("root ::= \"ab\" | \"a\" [b-c] \"d\"");
    CHECK(g);
    if (!g) return;
    sl_gram_state *s = NULL;
    CHECK_OK(sl_gram_state_create(g, &s));
    CHECK(!sl_gram_may_end(s) && !sl_gram_done(s));
    CHECK(sl_gram_feed_all(s, "a", 1));
    CHECK(!sl_gram_feed_all(s, "bx", 2)); /* refused as a whole: still after "a" */
    CHECK(sl_gram_feed_all(s, "b", 1));
    CHECK(sl_gram_may_end(s) && !sl_gram_done(s)); /* "ab" is whole, "abd" may still come */
    CHECK(sl_gram_feed_all(s, "d", 1));
    CHECK(sl_gram_done(s));
    CHECK(!sl_gram_feed_all(s, "d", 1));
    sl_gram_state_destroy(s);
    sl_grammar_release(g);
    /* a character split across feeds: its first byte alone is taken only when some character it begins is */
    g = compile("root ::= [é-ê] \"!\"");
    CHECK_OK(sl_gram_state_create(g, &s));
    CHECK(!sl_gram_feed_all(s, "\xe2", 1));
    CHECK(sl_gram_feed_all(s, "\xc3", 1));
    CHECK(!sl_gram_may_end(s));
    CHECK(!sl_gram_feed_all(s, "\xa0", 1)); /* à */
    CHECK(sl_gram_feed_all(s, "\xa9!", 2));
    CHECK(sl_gram_done(s));
    sl_gram_state_destroy(s);
    sl_grammar_release(g);
    /* a lead byte stands for the characters its length can encode (F0: U+10000 on, E0: U+0800 on; ED: up to
     * U+D7FF), not for whatever its own bits allow */
    g = compile("root ::= [\\x00-\\x7f\\u0800-\\u0900\\U0001F600]");
    static const struct {
        const char *bytes;
        bool ok;
    } leads[] = {{"\xf0", true},  {"\xf0\x9f", true},  {"\xf0\x9f\x98", true}, {"\xf0\x9f\x99", false},
                 {"\xf1", false}, {"\xe0", true},       {"\xe0\xa0", true},     {"\xe0\xa5", false},
                 {"\xc2", false}, {"\xed", false},      {"\xe1", false},         {"\xf0\x90", false}};
    for (size_t i = 0; i < sizeof leads / sizeof leads[0]; i++) {
        CHECK_OK(sl_gram_state_create(g, &s));
        CHECK_MSG(sl_gram_feed_all(s, leads[i].bytes, strlen(leads[i].bytes)) == leads[i].ok, "lead bytes %zu", i);
        sl_gram_state_destroy(s);
    }
    sl_grammar_release(g);
    /* exponentially ambiguous: (a|a|a)* keeps its readings under the limit, and long outputs stay cheap */
    g = compile("root ::= (\"a\" | \"a\" | [a-b] | x)* \"b\"\nx ::= \"a\" \"a\"?");
    CHECK_OK(sl_gram_state_create(g, &s));
    for (int i = 0; i < 5000; i++) CHECK(sl_gram_feed_all(s, "a", 1));
    CHECK(!sl_gram_done(s));
    CHECK(sl_gram_feed_all(s, "b", 1));
    CHECK(sl_gram_may_end(s));
    sl_gram_state_destroy(s);
    sl_grammar_release(g);
    /* readings that multiply with each nesting (2^12 after 12 '(') are cut at SL_GRAM_MAX_STACKS, the first
     * ones made kept: the all-')' reading goes on */
    g = compile("root ::= e\ne ::= [a-z ]+ | \"(\" e \")\" | \"(\" e \"))\"");
    CHECK_OK(sl_gram_state_create(g, &s));
    CHECK(sl_gram_feed_all(s, "((((((((((((ab c", 16));
    CHECK(!sl_gram_may_end(s));
    CHECK(sl_gram_feed_all(s, "))))))))))))", 12));
    CHECK(sl_gram_may_end(s));
    sl_gram_state_destroy(s);
    sl_grammar_release(g);
}

/* Every allocation that fails while compiling gives "out of memory" and leaves nothing behind (ASan's leak
 * check); while feeding, a failure refuses the bytes and leaves the state as it was. */
TEST(allocation_failures) {
    int k;
    sl_grammar *g = NULL;
    for (k = 0; k < 2000; k++) {
        sl_alloc_fail_after(k);
        const sl_status st = sl_grammar_compile(JSON_GBNF, strlen(JSON_GBNF), &g);
        sl_alloc_fail_after(-1);
        if (st == SL_OK) break;
        CHECK_MSG(st == SL_ERR_NOMEM && !g && strstr(sl_last_error(), "out of memory"), "allocation %d: %s", k,
                  sl_last_error());
        if (st != SL_ERR_NOMEM) break;
    }
    CHECK(g && k > 10 && k < 2000);
    const char *doc = "{\"a\": [1, 2.5, \"x\"], \"b\": {\"c\": null}}";
    for (k = 0; k < 200; k++) {
        sl_gram_state *s = NULL;
        sl_alloc_fail_after(k);
        const sl_status st = sl_gram_state_create(g, &s);
        bool fed = false;
        if (st == SL_OK) fed = sl_gram_feed_all(s, doc, strlen(doc));
        sl_alloc_fail_after(-1);
        if (st == SL_OK) {
            if (!fed) CHECK(sl_gram_feed_all(s, doc, strlen(doc))); /* refused whole: all of it still to come */
            CHECK(sl_gram_may_end(s));
            sl_gram_state_destroy(s);
        }
    }
    sl_grammar_release(g);
}

static sl_tokenizer *load_vocab(const char *rel) {
    const char *p = sl_test_shared(rel);
    if (!p) return NULL;
    sl_gguf *f = NULL;
    sl_tokenizer *t = NULL;
    if (sl_gguf_open(p, &f) == SL_OK) sl_tokenizer_create(f, &t);
    sl_gguf_close(f);
    return t;
}

/* The mask over a real vocabulary equals each token's text run through a fresh recognizer after the same
 * output; end of generation exactly where the output may end. */
static void mask_agrees(const char *vocab) {
    sl_tokenizer *tok = load_vocab(vocab);
    CHECK_MSG(tok, "%s", vocab);
    if (!tok) return;
    sl_json_guide *jg = NULL;
    sl_gram_guide *gg = NULL;
    CHECK_OK(sl_json_guide_create(tok, &jg));
    CHECK_OK(sl_gram_guide_create(jg, tok, &gg));
    const int32_t nv = sl_tokenizer_n_vocab(tok);
    float *l = malloc(sizeof(float) * (size_t)nv);
    static const struct {
        const char *gbnf, *after;
    } cases[] = {
        {JSON_GBNF, ""},
        {JSON_GBNF, "{\"k\": [1, tr"},
        {JSON_GBNF, "{\"k\": \"x y"},
        {JSON_GBNF, "{\"k\": \"\xc3"},
        {JSON_GBNF, "[1.5e"},
        {"root ::= (\"yes\" | \"no\" | \"maybe so\") \".\"", ""},
        {"root ::= (\"yes\" | \"no\" | \"maybe so\") \".\"", "maybe"},
        {"root ::= [^\\n]* \"\\n\" [0-9]{2,4}", "Once upon\n1"},
        {"root ::= \"é\" [α-ω]+ | \"€\"", ""},
    };
    char buf[256];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        sl_grammar *g = compile(cases[c].gbnf);
        if (!g) continue;
        sl_gram_state *s = NULL;
        CHECK_OK(sl_gram_state_create(g, &s));
        CHECK(sl_gram_feed_all(s, cases[c].after, strlen(cases[c].after)));
        for (int32_t i = 0; i < nv; i++) l[i] = 0;
        const int32_t allowed = sl_gram_guide_mask(gg, s, l);
        int32_t differ = 0, seen = 0;
        const bool may_end = sl_gram_may_end(s);
        for (int32_t i = 0; i < nv; i++) {
            size_t k;
            const char *t = sl_json_guide_text(jg, i, &k);
            bool want;
            if (sl_tokenizer_is_eog(tok, i)) {
                want = may_end;
            } else if (k == 0) {
                want = false;
            } else {
                const size_t a = strlen(cases[c].after);
                memcpy(buf, cases[c].after, a);
                memcpy(buf + a, t, k < sizeof buf - a ? k : sizeof buf - a);
                want = k < sizeof buf - a && judge(g, buf, a + k) >= 1;
            }
            differ += want == isinf(l[i]);
            seen += !isinf(l[i]);
        }
        CHECK_MSG(differ == 0 && seen == allowed && allowed > 0, "%s, %s after '%s': %d differ, %d allowed", vocab,
                  cases[c].gbnf, cases[c].after, differ, allowed);
        /* the state is what it was */
        CHECK_EQ_INT(sl_gram_may_end(s), may_end);
        CHECK(sl_gram_feed_all(s, "", 0));
        sl_gram_state_destroy(s);
        sl_grammar_release(g);
    }
    /* one state followed through a document, a mask after every character: inside the strings the states
     * repeat and masks come from the state's memo; each still equals the texts run through on their own */
    sl_grammar *g = compile(JSON_GBNF);
    sl_gram_state *s = NULL;
    CHECK_OK(sl_gram_state_create(g, &s));
    const char *doc = "{\"name\": \"a long string of words\", \"list\": [1, 22, 333], \"more\": \"text, text\"}";
    int wrong_steps = 0;
    for (size_t a = 0; a <= strlen(doc) && nv <= 1000; a++) {
        if (a > 0) CHECK(sl_gram_feed_all(s, doc + a - 1, 1));
        for (int32_t i = 0; i < nv; i++) l[i] = 0;
        sl_gram_guide_mask(gg, s, l);
        int32_t differ = 0;
        for (int32_t i = 0; i < nv; i++) {
            size_t k;
            const char *t = sl_json_guide_text(jg, i, &k);
            bool want = sl_tokenizer_is_eog(tok, i) ? sl_gram_may_end(s) : false;
            if (!sl_tokenizer_is_eog(tok, i) && k > 0 && k + a < sizeof buf) {
                memcpy(buf, doc, a);
                memcpy(buf + a, t, k);
                want = judge(g, buf, a + k) >= 1;
            }
            differ += want == isinf(l[i]);
        }
        wrong_steps += differ > 0;
    }
    CHECK_MSG(wrong_steps == 0, "%s: %d steps of the document masked wrongly", vocab, wrong_steps);
    sl_gram_state_destroy(s);
    sl_grammar_release(g);
    free(l);
    sl_gram_guide_destroy(gg);
    sl_json_guide_destroy(jg);
    sl_tokenizer_destroy(tok);
}

TEST(mask_over_real_vocabularies) {
    mask_agrees("models/stories260K.gguf");
    mask_agrees("golden/tokenizer/ggml-vocab-llama-spm.gguf");
    mask_agrees("golden/tokenizer/ggml-vocab-qwen2.gguf");
}

#define FUZZ_GRAMMAR_NO_MAIN
#include "../fuzz/fuzz_grammar.c"

static long replay_one(const uint8_t *data, size_t len) { return fuzz_grammar_one(data, len); }

/* The fuzz target's corpus, replayed: every input keeps the invariants (a failure aborts). */
TEST(fuzz_corpus_replay) {
    long compiled = 0;
    const int n = sl_test_each_file("tests/fuzz/corpus/grammar", replay_one, &compiled);
    printf("   corpus: %d inputs, %ld compiled\n", n, compiled);
    CHECK(n >= 7);
    CHECK(compiled >= 6);
}

/* Token references: <[id]>, <text> (one token, control tokens too), !<...>; the mask allows exactly the
 * tokens they name beside what the characters allow, and a token goes on by its reference or its text. */
TEST(token_references) {
    sl_tokenizer *tok = load_vocab("models/stories260K.gguf");
    CHECK(tok);
    if (!tok) return;
    sl_json_guide *jg = NULL;
    sl_gram_guide *gg = NULL;
    CHECK_OK(sl_json_guide_create(tok, &jg));
    CHECK_OK(sl_gram_guide_create(jg, tok, &gg));
    const int32_t nv = sl_tokenizer_n_vocab(tok);
    /* X: a token whose text is lowercase letters, two or more of them */
    int32_t x = -1, y = -1;
    for (int32_t i = 0; i < nv && y < 0; i++) {
        size_t k;
        const char *t = sl_json_guide_text(jg, i, &k);
        bool letters = k >= 2;
        for (size_t j = 0; j < k; j++) letters &= t[j] >= 'a' && t[j] <= 'z';
        if (letters && x < 0) x = i;
        else if (letters) y = i;
    }
    CHECK(x >= 0 && y >= 0);
    size_t xn, yn;
    const char *xt = sl_json_guide_text(jg, x, &xn), *yt = sl_json_guide_text(jg, y, &yn);
    float *l = malloc(sizeof(float) * (size_t)nv);
    char text[256];
    /* "a" <[X]> "b": after "a", X alone; X by reference, then "b" */
    snprintf(text, sizeof text, "root ::= \"a\" <[%d]> \"b\"", x);
    sl_grammar *g = NULL;
    CHECK_OK(sl_grammar_compile_vocab(text, strlen(text), tok, &g));
    sl_gram_state *s = NULL;
    CHECK_OK(sl_gram_state_create(g, &s));
    CHECK(sl_gram_feed_all(s, "a", 1));
    for (int32_t i = 0; i < nv; i++) l[i] = 0;
    CHECK_EQ_INT(sl_gram_guide_mask(gg, s, l), 1);
    CHECK(!isinf(l[x]));
    CHECK(!sl_gram_feed_token(s, y, yt, yn));
    CHECK(!sl_gram_feed_all(s, xt, xn)); /* its text alone is not the reference */
    CHECK(sl_gram_feed_token(s, x, xt, xn));
    CHECK(sl_gram_feed_all(s, "b", 1) && sl_gram_done(s));
    sl_gram_state_destroy(s);
    sl_grammar_release(g);
    /* !<[X]> "!": any token but X (end of generation not among them), then "!" */
    snprintf(text, sizeof text, "root ::= !<[%d]> \"!\"", x);
    CHECK_OK(sl_grammar_compile_vocab(text, strlen(text), tok, &g));
    CHECK_OK(sl_gram_state_create(g, &s));
    for (int32_t i = 0; i < nv; i++) l[i] = 0;
    int32_t n_eog = 0;
    for (int32_t i = 0; i < nv; i++) n_eog += sl_tokenizer_is_eog(tok, i);
    CHECK_EQ_INT(sl_gram_guide_mask(gg, s, l), nv - 1 - n_eog);
    CHECK(isinf(l[x]));
    CHECK(!sl_gram_feed_token(s, x, xt, xn));
    CHECK(sl_gram_feed_token(s, y, yt, yn));
    CHECK(sl_gram_feed_all(s, "!", 1) && sl_gram_done(s));
    sl_gram_state_destroy(s);
    sl_grammar_release(g);
    /* a reference beside characters that X's text also matches: both readings go on */
    snprintf(text, sizeof text, "root ::= <[%d]> \"1\" | [a-z]+ \"2\"", x);
    CHECK_OK(sl_grammar_compile_vocab(text, strlen(text), tok, &g));
    CHECK_OK(sl_gram_state_create(g, &s));
    CHECK(sl_gram_feed_token(s, x, xt, xn));
    for (int32_t i = 0; i < nv; i++) l[i] = 0;
    sl_gram_guide_mask(gg, s, l);
    CHECK(!isinf(l['1' + 3]) && !isinf(l['2' + 3])); /* stories260K's byte tokens: id = byte + 3 */
    CHECK(judge(g, "z2", 2) == 2);
    CHECK(sl_gram_feed_all(s, "1", 1) && sl_gram_done(s));
    sl_gram_state_destroy(s);
    CHECK_OK(sl_gram_state_create(g, &s));
    CHECK(sl_gram_feed_token(s, x, xt, xn));
    CHECK(sl_gram_feed_all(s, "2", 1) && sl_gram_may_end(s));
    sl_gram_state_destroy(s);
    sl_grammar_release(g);
    /* refusals */
    static const struct {
        const char *gbnf, *msg;
    } bad[] = {
        {"root ::= <[512]>", "'<[512]>' is no token id of the vocabulary [0, 512)"},
        {"root ::= <[]>", "no token id"},
        {"root ::= <[1x]>", "no token id"},
        {"root ::= <once upon a time there>", "tokens of the vocabulary, not one"},
        {"root ::= \"a\" <[3]", "without its '>' at line 1, column 14"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g = NULL;
        const sl_status st = sl_grammar_compile_vocab(bad[i].gbnf, strlen(bad[i].gbnf), tok, &g);
        CHECK_MSG(st != SL_OK && !g && strstr(sl_last_error(), bad[i].msg), "%s: %s", bad[i].gbnf,
                  st ? sl_last_error() : "accepted");
    }
    free(l);
    sl_gram_guide_destroy(gg);
    sl_json_guide_destroy(jg);
    sl_tokenizer_destroy(tok);
    /* a control token by its text (Qwen2's <|im_end|>) */
    tok = load_vocab("golden/tokenizer/ggml-vocab-qwen2.gguf");
    CHECK(tok);
    if (!tok) return;
    const char *q = "root ::= [a-z]+ <|im_end|>";
    CHECK_OK(sl_grammar_compile_vocab(q, strlen(q), tok, &g));
    CHECK_OK(sl_gram_state_create(g, &s));
    CHECK(sl_gram_feed_all(s, "ok", 2));
    CHECK(!sl_gram_feed_token(s, 151643, "", 0)); /* <|endoftext|> */
    CHECK(sl_gram_feed_token(s, 151645, "", 0) && sl_gram_done(s));
    sl_gram_state_destroy(s);
    sl_grammar_release(g);
    sl_tokenizer_destroy(tok);
}

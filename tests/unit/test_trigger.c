/*
 * test_trigger.c — what wakes a lazy grammar (engine/trigger.h): words at
 * their leftmost place against strstr, patterns and full patterns (with and
 * without a capturing group) at the places llama.cpp's rules name, the full
 * patterns tried first, the bounded search window, token triggers, and
 * refused definitions named.
 */
#include "harness.h"

#include "core/status.h"
#include "engine/trigger.h"

#include <stdlib.h>
#include <string.h>

static sl_triggers *make(const sl_trigger_def *d, int n) {
    sl_triggers *t = NULL;
    const sl_status st = sl_triggers_create(d, n, &t);
    if (st) fprintf(stderr, "    %s\n", sl_last_error());
    return st ? NULL : t;
}

static int64_t at(const sl_triggers *t, const char *text) { return sl_triggers_match(t, text, strlen(text)); }

/* Words: the leftmost place where any of them is, as strstr finds it; a word's bytes are matched as they
 * are (no regular expression). */
TEST(words_at_their_leftmost_place) {
    const sl_trigger_def d[] = {{SL_TRIG_WORD, "girl", -1}, {SL_TRIG_WORD, "a.b(", -1}, {SL_TRIG_WORD, "\xc3\xa9t\xc3\xa9", -1}};
    sl_triggers *t = make(d, 3);
    CHECK(t);
    static const char *texts[] = {"", "a little girl", "girls and a.b( here", "no trigger axb( here", "girgirl",
                                  "un \xc3\xa9t\xc3\xa9 chaud, girl", "a.b(", "gir", "girl"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        const char *best = NULL;
        for (int k = 0; k < 3; k++) {
            const char *p = strstr(texts[i], d[k].text);
            if (p && (!best || p < best)) best = p;
        }
        const int64_t want = best ? best - texts[i] : -1;
        CHECK_MSG(at(t, texts[i]) == want, "'%s': %lld, want %lld", texts[i], (long long)at(t, texts[i]), (long long)want);
    }
    sl_triggers_release(t);
}

/* Patterns (anywhere: the start of their match, the leftmost one), full patterns (the whole output: their
 * first capturing group that matched something, else the start), words at the start; full ones first. */
TEST(patterns_and_full_patterns) {
    const sl_trigger_def d[] = {{SL_TRIG_PATTERN, "gi+rl", -1}, {SL_TRIG_PATTERN, "<(tool)?call>", -1}};
    sl_triggers *t = make(d, 2);
    CHECK(t);
    CHECK_EQ_INT(at(t, "a giiirl"), 2);
    CHECK_EQ_INT(at(t, "grl"), -1);
    CHECK_EQ_INT(at(t, "x <call> giirl"), 2);   /* the leftmost: its match's start, not its inner group's */
    CHECK_EQ_INT(at(t, "xy <toolcall>"), 3);
    sl_triggers_release(t);

    const sl_trigger_def f[] = {{SL_TRIG_PATTERN_FULL, "\\s*(\\{\\s*\"name\")[\\s\\S]*", -1},
                                {SL_TRIG_PATTERN_FULL, "[a-z]+ (x)?(y)?z", -1}};
    t = make(f, 2);
    CHECK(t);
    CHECK_EQ_INT(at(t, "  {\"name\": 1"), 2);
    CHECK_EQ_INT(at(t, "a {\"name\""), -1); /* not the whole output */
    CHECK_EQ_INT(at(t, "abc yz"), 4);       /* group 1 unset: group 2 */
    CHECK_EQ_INT(at(t, "abc z"), 0);        /* no group matched: the start */
    CHECK_EQ_INT(at(t, "abc z!"), -1);
    sl_triggers_release(t);

    const sl_trigger_def s[] = {{SL_TRIG_WORD_AT_START, "[TOOL]", -1}, {SL_TRIG_WORD, "TOOL", -1}};
    t = make(s, 2);
    CHECK(t);
    CHECK_EQ_INT(at(t, " \n[TOOL] x"), 2); /* the full one first */
    CHECK_EQ_INT(at(t, "x [TOOL]"), 3);    /* not at the start: the word */
    sl_triggers_release(t);
}

/* Words and patterns are looked for in the last SL_TRIGGER_WINDOW bytes; full patterns while the output is
 * at most that long. */
TEST(bounded_search) {
    const size_t n = SL_TRIGGER_WINDOW + 1000;
    char *text = malloc(n + 1);
    memset(text, 'x', n);
    text[n] = 0;
    const sl_trigger_def d[] = {{SL_TRIG_WORD, "girl", -1}, {SL_TRIG_PATTERN_FULL, "x+", -1}};
    sl_triggers *t = make(d, 2);
    CHECK(t);
    memcpy(text + 10, "girl", 4);
    CHECK_EQ_INT(sl_triggers_match(t, text, n), -1); /* before the window; the full one: the output too long */
    CHECK_EQ_INT(sl_triggers_match(t, text + 10, SL_TRIGGER_WINDOW), 0);
    CHECK_EQ_INT(sl_triggers_match(t, text + 20, SL_TRIGGER_WINDOW), 0); /* all x: the full one */
    memcpy(text + n - 4, "girl", 4);
    CHECK_EQ_INT(sl_triggers_match(t, text, n), (int64_t)(n - 4));
    sl_triggers_release(t);
    free(text);
}

TEST(tokens_and_refusals) {
    const sl_trigger_def d[] = {{SL_TRIG_TOKEN, NULL, 42}, {SL_TRIG_TOKEN, NULL, 7}};
    sl_triggers *t = make(d, 2);
    CHECK(t);
    CHECK(sl_triggers_token(t, 42) && sl_triggers_token(t, 7) && !sl_triggers_token(t, 8));
    CHECK_EQ_INT(at(t, "anything"), -1);
    CHECK(sl_triggers_retain(t) == t);
    sl_triggers_release(t);
    sl_triggers_release(t);

    sl_triggers *bad = NULL;
    const sl_trigger_def p[] = {{SL_TRIG_WORD, "ok", -1}, {SL_TRIG_PATTERN, "a(b", -1}};
    CHECK(sl_triggers_create(p, 2, &bad) == SL_ERR_INVALID && !bad);
    CHECK_MSG(strstr(sl_last_error(), "trigger 1 (pattern)") && strstr(sl_last_error(), "offset 3"), "%s", sl_last_error());
    const sl_trigger_def e[] = {{SL_TRIG_WORD, "", -1}};
    CHECK(sl_triggers_create(e, 1, &bad) == SL_ERR_INVALID && strstr(sl_last_error(), "trigger 0 (word)"));
    const sl_trigger_def fp[] = {{SL_TRIG_PATTERN_FULL, "[z-a]", -1}};
    CHECK(sl_triggers_create(fp, 1, &bad) == SL_ERR_INVALID && strstr(sl_last_error(), "trigger 0 (pattern_full)"));
    sl_trigger_def many[SL_MAX_TRIGGERS + 1];
    for (int i = 0; i <= SL_MAX_TRIGGERS; i++) many[i] = (sl_trigger_def){SL_TRIG_WORD, "w", -1};
    CHECK(sl_triggers_create(many, SL_MAX_TRIGGERS + 1, &bad) == SL_ERR_INVALID);
    CHECK(sl_triggers_create(many, SL_MAX_TRIGGERS, &bad) == SL_OK && bad);
    sl_triggers_release(bad);
}

/*
 * test_harmony.c — gpt-oss's harmony answers (server/harmony.c), written by
 * hand after OpenAI's harmony format description: thinking, content and calls
 * of whole answers; every prefix streamed gives parts that only grow into the
 * whole answer's and never show a marker; detection on the real gpt-oss
 * template and not on the others in ../shared.
 */
#include "harness.h"

#include "server/harmony.h"

#include <dirent.h>
#include <stdlib.h>

#define A "<|channel|>analysis<|message|>User wants weather. Call the tool.<|end|>"
#define CALLW "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"location\": \"Tokyo\"}"
#define FINAL "<|start|>assistant<|channel|>final<|message|>It is sunny in Tokyo."

typedef struct want {
    const char *text, *reasoning, *content, *calls; /* calls as compact JSON, NULL: none */
    bool think, with_calls;
} want;

static const want cases[] = {
    {A FINAL, "User wants weather. Call the tool.", "It is sunny in Tokyo.", NULL, true, true},
    {A CALLW, "User wants weather. Call the tool.", "", "[{\"name\":\"get_weather\",\"arguments\":\"{\\\"location\\\":\\\"Tokyo\\\"}\"}]",
     true, true},
    {"<|channel|>analysis<|message|>x<|end|><|start|>assistant to=functions.f<|channel|>commentary json<|message|>{\"a\": 1}",
     "x", "", "[{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}]", true, true},
    {"<|channel|>commentary<|message|>Let me check.<|end|>" CALLW, "", "Let me check.",
     "[{\"name\":\"get_weather\",\"arguments\":\"{\\\"location\\\":\\\"Tokyo\\\"}\"}]", true, true},
    {"Just text, no channels.", "", "Just text, no channels.", NULL, true, true},
    {A FINAL, "", "User wants weather. Call the tool.It is sunny in Tokyo.", NULL, false, true},
    {A CALLW, "User wants weather. Call the tool.", "{\"location\": \"Tokyo\"}", NULL, true, false},
    {"<|channel|>final<|message|>a<|end|><|start|>assistant<|channel|>final<|message|>b", "", "ab", NULL, true, true},
    {"<|channel|>commentary to=functions.f<|message|>not json<|call|>", "", "not json", NULL, true, true},
};

static bool has_marker(const char *s) { return strstr(s, "<|") != NULL; }

TEST(whole_answers) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const want *w = &cases[i];
        sl_harmony h;
        CHECK(sl_harmony_split(w->text, strlen(w->text), w->think, w->with_calls, true, &h));
        char *calls = h.calls ? json_dumps(h.calls, JSON_COMPACT) : NULL;
        const bool ok = !strcmp(h.reasoning, w->reasoning) && !strcmp(h.content, w->content) &&
                        ((!calls && !w->calls) || (calls && w->calls && !strcmp(calls, w->calls)));
        if (!ok)
            sl_test_fail(__FILE__, __LINE__, "case %zu: reasoning '%s', content '%s', calls %s", i, h.reasoning, h.content,
                         calls ? calls : "none");
        free(calls);
        sl_harmony_free(&h);
        if (!ok) return;
    }
}

/* Streamed byte by byte: the parts only grow, stay the start of the whole answer's, show no marker, and the
 * calls come only with their message's end. */
TEST(streamed_prefixes_only_grow) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const want *w = &cases[i];
        const size_t n = strlen(w->text);
        sl_harmony whole;
        CHECK(sl_harmony_split(w->text, n, w->think, w->with_calls, true, &whole));
        size_t lr = 0, lc = 0;
        for (size_t k = 0; k <= n; k++) {
            sl_harmony h;
            CHECK(sl_harmony_split(w->text, k, w->think, w->with_calls, false, &h));
            const bool ok = h.n_reasoning >= lr && h.n_content >= lc && h.n_reasoning <= whole.n_reasoning &&
                            h.n_content <= whole.n_content && !memcmp(h.reasoning, whole.reasoning, h.n_reasoning) &&
                            !memcmp(h.content, whole.content, h.n_content) && !has_marker(h.reasoning) &&
                            !has_marker(h.content) && (!h.calls || json_array_size(h.calls) <= json_array_size(whole.calls));
            if (!ok)
                sl_test_fail(__FILE__, __LINE__, "case %zu at %zu: reasoning '%s' content '%s' (whole '%s' / '%s')", i, k,
                             h.reasoning, h.content, whole.reasoning, whole.content);
            lr = h.n_reasoning;
            lc = h.n_content;
            sl_harmony_free(&h);
            if (!ok) {
                sl_harmony_free(&whole);
                return;
            }
        }
        sl_harmony_free(&whole);
    }
    /* a call is not given while its message may go on */
    sl_harmony h;
    CHECK(sl_harmony_split(A CALLW, strlen(A CALLW), true, true, false, &h));
    CHECK(h.calls == NULL && h.n_content == 0);
    sl_harmony_free(&h);
    CHECK(sl_harmony_split(A CALLW "<|call|>", strlen(A CALLW "<|call|>"), true, true, false, &h));
    CHECK(h.calls && json_array_size(h.calls) == 1);
    sl_harmony_free(&h);
}

TEST(detected_on_the_gpt_oss_template_only) {
    const char *dir = sl_test_shared("golden/chat-templates");
    if (!dir) return;
    DIR *d = opendir(dir);
    CHECK(d);
    struct dirent *e;
    int found = 0, others = 0;
    while ((e = readdir(d))) {
        const size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 6, ".jinja")) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t n;
        char *src = sl_test_read_file(path, &n);
        CHECK(src);
        const bool h = sl_harmony_template(src);
        free(src);
        if (strstr(e->d_name, "gpt-oss")) {
            CHECK_MSG(h, "%s", e->d_name);
            found++;
        } else {
            CHECK_MSG(!h, "%s is not harmony", e->d_name);
            others++;
        }
    }
    closedir(d);
    CHECK(found == 1 && others > 30);
}

/*
 * test_kimi3.c — Kimi K3's answers (server/kimi3.c). The answers are written
 * by hand after what the real template (../shared/golden/chat-templates/
 * Kimi-K3.jinja) renders for assistant turns: thinking, content and calls of
 * whole answers, malformed ones, and every prefix streamed (its parts only
 * grow and stay the start of the whole answer's); assistant turns rendered
 * by the template engine read back into what was rendered; detection and the
 * open think section on real renders; random mutations that keep the
 * streaming invariants.
 */
#include "harness.h"

#include "core/alloc.h"
#include "server/kimi3.h"
#include "template/template.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>

#define OP "<|open|>"
#define CL "<|close|>"
#define SP "<|sep|>"
/* an argument and a call as the template's open_tag / close_tag write them */
#define ARG(key, type, value) OP "argument key=\"" key "\" type=\"" type "\"" SP value CL "argument" SP
#define CALL(tool, index, body) OP "call tool=\"" tool "\" index=\"" index "\"" SP body CL "call" SP
#define END_MSG CL "message" SP "<|end_of_msg|>"

/* What the template renders for {"city": "Pa\"ris", "days": 3, "opts": {"u": "C", "x": [1, 2.5]}, "flag":
 * true, "none": null} (shardlm template on /tmp/tc/m2.json), after the think section the prompt opened. */
#define WEATHER_CALL                                                                                             \
    "<|open|>call tool=\"get_weather\" index=\"1\"<|sep|><|open|>argument key=\"city\" type=\"string\"<|sep|>"     \
    "Pa\"ris<|close|>argument<|sep|><|open|>argument key=\"days\" type=\"number\"<|sep|>3<|close|>argument<|sep|>" \
    "<|open|>argument key=\"opts\" type=\"object\"<|sep|>{\"u\": \"C\", \"x\": [1, 2.5]}<|close|>argument<|sep|>"  \
    "<|open|>argument key=\"flag\" type=\"boolean\"<|sep|>true<|close|>argument<|sep|>"                            \
    "<|open|>argument key=\"none\" type=\"null\"<|sep|>null<|close|>argument<|sep|><|close|>call<|sep|>"
#define WEATHER_ARGS "{\"city\":\"Pa\\\"ris\",\"days\":3,\"opts\":{\"u\":\"C\",\"x\":[1,2.5]},\"flag\":true,\"none\":null}"
#define ANSWER_ONE_CALL                                                                                          \
    "User wants the weather.<|close|>think<|sep|><|open|>response<|sep|><|close|>response<|sep|><|open|>tools<|sep|>" \
    WEATHER_CALL "<|close|>tools<|sep|><|close|>message<|sep|><|end_of_msg|>"
/* Two calls after some content: a multi-line string, a real, an array, a string with markup-like text, the
 * arguments of a JSON string (the template's json block), and an escaped name with no arguments. */
#define TWO_CALLS                                                                                    \
    CALL("get_weather", "1",                                                                         \
         ARG("city", "string", "Paris\nFrance") ARG("days", "number", "3.5")                         \
             ARG("list", "array", "[\"a\", {\"b\": null}]") ARG("q", "string", "x&y<|z"))            \
    CALL("get_time", "2", OP "json type=\"object\"" SP "{\"tz\": \"CET\"}" CL "json" SP)              \
    CALL("na&quot;me&amp;x", "3", "")
#define ANSWER_TWO_CALLS                                                                               \
    CL "think" SP OP "response" SP "Let me check.\n" CL "response" SP OP "tools" SP TWO_CALLS CL "tools" SP END_MSG
#define TWO_CALLS_JSON                                                                                          \
    "[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\\nFrance\",\"days\":3.5,\"list\":[\"a\",{\"b\":null}]," \
    "\"q\":\"x&y<|z\"}},{\"name\":\"get_time\",\"arguments\":{\"tz\":\"CET\"}},"                                \
    "{\"name\":\"na\\\"me&x\",\"arguments\":{}}]"

typedef struct want {
    const char *text;
    bool think_open, think, calls;
    const char *reasoning, *content;
    const char *calls_json; /* [{"name", "arguments": an object}], NULL: none */
    bool clean;             /* reasoning and content show no marker */
} want;

static const want cases[] = {
    /* thinking and content (the prompt opened think) */
    {"The user greets.\nGreet back.<|close|>think<|sep|><|open|>response<|sep|>Hello!\nHow can I help?"
     "<|close|>response<|sep|><|close|>message<|sep|><|end_of_msg|>",
     true, true, true, "The user greets.\nGreet back.", "Hello!\nHow can I help?", NULL, true},
    /* thinking off: the prompt opened response */
    {"Hello!<|close|>response<|sep|><|close|>message<|sep|><|end_of_msg|>", false, true, true, "", "Hello!", NULL, true},
    /* the answer opens its sections itself */
    {OP "response" SP "\nHi there.\n" CL "response" SP, false, true, true, "", "Hi there.", NULL, true},
    {OP "think" SP "hmm" CL "think" SP OP "response" SP "ok" CL "response" SP, false, true, true, "hmm", "ok", NULL, true},
    /* an empty think section */
    {CL "think" SP OP "response" SP "2 + 2 = 4." CL "response" SP END_MSG, true, true, true, "", "2 + 2 = 4.", NULL, true},
    /* one call with every value type, no content */
    {ANSWER_ONE_CALL, true, true, true, "User wants the weather.", "",
     "[{\"name\":\"get_weather\",\"arguments\":" WEATHER_ARGS "}]", true},
    /* content and three calls */
    {ANSWER_TWO_CALLS, true, true, true, "", "Let me check.", TWO_CALLS_JSON, true},
    /* think false: the thinking is content */
    {"The user greets.<|close|>think<|sep|><|open|>response<|sep|>Hello!<|close|>response<|sep|>", true, false, true, "",
     "The user greets.\n\nHello!", NULL, true},
    {ANSWER_ONE_CALL, true, false, true, "", "User wants the weather.",
     "[{\"name\":\"get_weather\",\"arguments\":" WEATHER_ARGS "}]", true},
    /* calls false: the tools section is content as written */
    {ANSWER_ONE_CALL, true, true, false, "User wants the weather.", "<|open|>tools<|sep|>" WEATHER_CALL "<|close|>tools<|sep|>",
     NULL, false},
    /* text between sections, and after the message's end (dropped) */
    {"t<|close|>think<|sep|> junk <|open|>response<|sep|>c<|close|>response<|sep|>after" END_MSG "more text", true, true,
     true, "t", "junk\n\nc\n\nafter", NULL, true},
    {"a<|close|>think<|sep|><|open|>response<|sep|>b<|close|>message<|sep|>c", true, true, true, "a", "b", NULL, true},
    /* think never closed: a response still ends it; an answer cut inside think is all thinking */
    {"a<|open|>response<|sep|>b", true, true, true, "a", "b", NULL, true},
    {"still thinking", true, true, true, "still thinking", "", NULL, true},
    /* newlines between the calls, and a tools section the message's end closes */
    {OP "tools" SP "\n" CALL("f", "1", "\n" ARG("a", "number", "1") "\n") "\n" CALL("g", "2", "") END_MSG, false, true,
     true, "", "", "[{\"name\":\"f\",\"arguments\":{\"a\":1}},{\"name\":\"g\",\"arguments\":{}}]", true},
    /* a value that is not JSON for its type stays a string; an unknown type is read as JSON */
    {OP "tools" SP CALL("f", "1", ARG("n", "number", "three") ARG("i", "integer", "7") ARG("s", "string", "null")) CL "tools" SP,
     false, true, true, "", "", "[{\"name\":\"f\",\"arguments\":{\"n\":\"three\",\"i\":7,\"s\":\"null\"}}]", true},
    /* a call left open when the section ends, and one at the end of the answer (fin) */
    {OP "tools" SP OP "call tool=\"f\"" SP ARG("a", "boolean", "false") CL "tools" SP "then", false, true, true, "", "then",
     "[{\"name\":\"f\",\"arguments\":{\"a\":false}}]", true},
    {OP "tools" SP OP "call tool=\"f\"" SP ARG("a", "null", "null"), false, true, true, "", "",
     "[{\"name\":\"f\",\"arguments\":{\"a\":null}}]", true},
    /* malformed calls are content, the good ones around them still calls */
    {OP "tools" SP CALL("f", "1", "") OP "call index=\"2\"" SP CL "call" SP CALL("g", "3", "") CL "tools" SP, false, true,
     true, "", OP "call index=\"2\"" SP CL "call" SP, "[{\"name\":\"f\",\"arguments\":{}},{\"name\":\"g\",\"arguments\":{}}]",
     false},
    {OP "tools" SP OP "call tool=f" SP CL "call" SP CL "tools" SP, false, true, true, "", OP "call tool=f" SP CL "call" SP,
     NULL, false},
    {OP "tools" SP OP "call tool=\"f\" tool=\"g\"" SP CL "call" SP CL "tools" SP, false, true, true, "",
     OP "call tool=\"f\" tool=\"g\"" SP CL "call" SP, NULL, false},
    {OP "tools" SP OP "call tool=\"\"" SP CL "call" SP CL "tools" SP, false, true, true, "",
     OP "call tool=\"\"" SP CL "call" SP, NULL, false},
    {OP "tools" SP CALL("f", "1", "stray" ARG("a", "string", "x")) CL "tools" SP, false, true, true, "",
     CALL("f", "1", "stray" ARG("a", "string", "x")), NULL, false},
    {OP "tools" SP CALL("f", "1", OP "argument key=\"a\"" SP "x") CL "tools" SP, false, true, true, "",
     CALL("f", "1", OP "argument key=\"a\"" SP "x"), NULL, false},
    {OP "tools" SP CALL("f", "1", OP "argument type=\"string\"" SP "x" CL "argument" SP) CL "tools" SP, false, true, true, "",
     CALL("f", "1", OP "argument type=\"string\"" SP "x" CL "argument" SP), NULL, false},
    {OP "tools" SP CALL("f", "1", OP "json" SP "[1]" CL "json" SP) CL "tools" SP, false, true, true, "",
     CALL("f", "1", OP "json" SP "[1]" CL "json" SP), NULL, false},
    {OP "tools" SP CALL("f", "1", OP "foo" SP CL "foo" SP) CL "tools" SP, false, true, true, "",
     CALL("f", "1", OP "foo" SP CL "foo" SP), NULL, false},
    /* stray text between the calls is content */
    {OP "tools" SP " oops " CALL("f", "1", "") " and " CALL("g", "2", "") CL "tools" SP, false, true, true, "",
     "oops\n\nand", "[{\"name\":\"f\",\"arguments\":{}},{\"name\":\"g\",\"arguments\":{}}]", true},
    /* markers outside any tag the format knows are text */
    {"a <|sep|> b <|open|>x" SP, false, true, true, "", "a <|sep|> b <|open|>x" SP, NULL, false},
    {"", true, true, true, "", "", NULL, true},
    {"", false, true, true, "", "", NULL, true},
};

/* A call's arguments parsed (NULL when they are not JSON text). */
static json_t *args_of(const json_t *c) {
    const char *a = json_string_value(json_object_get(c, "arguments"));
    return a ? json_loads(a, 0, NULL) : NULL;
}

static bool has_marker(const char *s) {
    for (const char *const *m = sl_kimi3_markers(); *m; m++)
        if (strstr(s, *m)) return true;
    return false;
}

/* Whether the calls are those of the JSON text want ([{"name", "arguments": an object}], NULL: none), and
 * each call's arguments a JSON object's text. */
static bool calls_are(const json_t *calls, const char *want_json) {
    json_t *w = want_json ? json_loads(want_json, 0, NULL) : NULL;
    bool ok = want_json ? w && json_array_size(calls) == json_array_size(w) : calls == NULL;
    for (size_t i = 0; ok && i < json_array_size(w); i++) {
        const json_t *c = json_array_get(calls, i), *e = json_array_get(w, i);
        json_t *args = args_of(c);
        ok = json_equal(json_object_get(c, "name"), json_object_get(e, "name")) &&
             json_equal(args, json_object_get(e, "arguments")) && json_object_size(c) == 2;
        json_decref(args);
    }
    json_decref(w);
    return ok;
}

TEST(whole_answers) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const want *w = &cases[i];
        sl_harmony h;
        CHECK(sl_kimi3_split(w->text, strlen(w->text), w->think_open, w->think, w->calls, NULL, true, &h));
        char *calls = h.calls ? json_dumps(h.calls, JSON_COMPACT) : NULL;
        const bool ok = !strcmp(h.reasoning, w->reasoning) && !strcmp(h.content, w->content) &&
                        h.n_reasoning == strlen(h.reasoning) && h.n_content == strlen(h.content) &&
                        calls_are(h.calls, w->calls_json) &&
                        (!w->clean || (!has_marker(h.reasoning) && !has_marker(h.content)));
        if (!ok)
            sl_test_fail(__FILE__, __LINE__, "case %zu: reasoning '%s', content '%s', calls %s", i, h.reasoning, h.content,
                         calls ? calls : "none");
        free(calls);
        sl_harmony_free(&h);
        if (!ok) return;
    }
}

/* The arguments come as compact JSON text in the order written. */
TEST(arguments_are_compact_json_text) {
    sl_harmony h;
    CHECK(sl_kimi3_split(ANSWER_ONE_CALL, strlen(ANSWER_ONE_CALL), true, true, true, NULL, true, &h));
    CHECK(json_array_size(h.calls) == 1);
    CHECK_STR(json_string_value(json_object_get(json_array_get(h.calls, 0), "name")), "get_weather");
    CHECK_STR(json_string_value(json_object_get(json_array_get(h.calls, 0), "arguments")), WEATHER_ARGS);
    sl_harmony_free(&h);
}

/* An argument without a type attribute is typed by the request's tool schema, as the other XML syntaxes do. */
TEST(untyped_arguments_follow_the_tool_schema) {
    json_t *tools = json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
                               "\"properties\":{\"n\":{\"type\":\"integer\"},\"s\":{\"type\":\"string\"},"
                               "\"o\":{\"type\":\"object\"}}}}}]",
                               0, NULL);
    CHECK(tools);
    static const char t[] = OP "tools" SP OP "call tool=\"f\"" SP OP "argument key=\"n\"" SP "4" CL "argument" SP OP
                               "argument key=\"s\"" SP "4" CL "argument" SP OP "argument key=\"o\"" SP "{\"k\": 1}" CL
                               "argument" SP OP "argument key=\"u\"" SP "5" CL "argument" SP OP
                               "argument key=\"n2\" type=\"string\"" SP "6" CL "argument" SP CL "call" SP CL "tools" SP;
    sl_harmony h;
    const bool split = sl_kimi3_split(t, strlen(t), false, true, true, tools, true, &h);
    json_decref(tools);
    CHECK(split);
    const bool ok = calls_are(h.calls, "[{\"name\":\"f\",\"arguments\":{\"n\":4,\"s\":\"4\",\"o\":{\"k\":1},\"u\":\"5\","
                                       "\"n2\":\"6\"}}]");
    CHECK_MSG(ok, "content '%s'", h.content);
    sl_harmony_free(&h);
}

/* Whether split b is the start of split w: its reasoning and content start w's, its calls are w's first ones. */
static bool starts(const sl_harmony *b, const sl_harmony *w) {
    if (b->n_reasoning > w->n_reasoning || memcmp(b->reasoning, w->reasoning, b->n_reasoning)) return false;
    if (b->n_content > w->n_content || memcmp(b->content, w->content, b->n_content)) return false;
    if (json_array_size(b->calls) > json_array_size(w->calls)) return false;
    for (size_t i = 0; i < json_array_size(b->calls); i++)
        if (!json_equal(json_array_get(b->calls, i), json_array_get(w->calls, i))) return false;
    return true;
}

/* Every call has a non-empty name and a JSON object's text as arguments. */
static bool calls_well_formed(const json_t *calls) {
    if (calls && !json_array_size(calls)) return false;
    for (size_t i = 0; i < json_array_size(calls); i++) {
        const json_t *c = json_array_get(calls, i);
        const char *a = json_string_value(json_object_get(c, "arguments"));
        json_t *o = a ? json_loads(a, 0, NULL) : NULL;
        const bool ok = json_string_length(json_object_get(c, "name")) > 0 && json_is_object(o);
        json_decref(o);
        if (!ok) return false;
    }
    return true;
}

/* Streamed: each prefix t[0, k) (k in ks, ascending, or every k when ks is NULL) gives parts that are the
 * start of the whole answer's and of the next prefix's. Prints why not; false then (or when out of memory). */
static bool streams_well(const char *t, size_t n, bool think_open, bool think, bool calls, const size_t *ks, size_t nk) {
    sl_harmony whole, prev = {0}, cur;
    if (!sl_kimi3_split(t, n, think_open, think, calls, NULL, true, &whole)) return false;
    bool ok = calls_well_formed(whole.calls) && whole.reasoning[whole.n_reasoning] == '\0' &&
              whole.content[whole.n_content] == '\0';
    if (!ok) sl_test_fail(__FILE__, __LINE__, "'%.*s': the whole answer's parts are not well formed", (int)n, t);
    const size_t steps = ks ? nk : n + 2;
    size_t prev_k = 0;
    for (size_t s = 0; ok && s < steps; s++) {
        const size_t k = ks ? ks[s] : s < n + 1 ? s : n; /* (the last step: the whole text, not final yet) */
        if (!sl_kimi3_split(t, k, think_open, think, calls, NULL, false, &cur)) {
            ok = false;
            break;
        }
        ok = calls_well_formed(cur.calls) && starts(&cur, &whole) && (s == 0 || k < prev_k || starts(&prev, &cur));
        if (!ok)
            sl_test_fail(__FILE__, __LINE__,
                         "'%.*s' (think_open %d think %d calls %d) at %zu: reasoning '%s' content '%s' calls %zu, "
                         "before '%s' '%s' %zu, whole '%s' '%s' %zu",
                         (int)n, t, think_open, think, calls, k, cur.reasoning, cur.content, json_array_size(cur.calls),
                         s ? prev.reasoning : "", s ? prev.content : "", json_array_size(prev.calls), whole.reasoning,
                         whole.content, json_array_size(whole.calls));
        sl_harmony_free(&prev);
        prev = cur;
        prev_k = k;
    }
    sl_harmony_free(&prev);
    sl_harmony_free(&whole);
    return ok;
}

TEST(streamed_prefixes_only_grow) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const want *w = &cases[i];
        CHECK_MSG(streams_well(w->text, strlen(w->text), w->think_open, w->think, w->calls, NULL, 0), "case %zu", i);
        if (!w->clean) continue;
        /* and no prefix shows a marker, or a piece of one */
        for (size_t k = 0; k <= strlen(w->text); k++) {
            sl_harmony h;
            CHECK(sl_kimi3_split(w->text, k, w->think_open, w->think, w->calls, NULL, false, &h));
            const bool bad = has_marker(h.reasoning) || has_marker(h.content) || strstr(h.reasoning, "<|") ||
                             (strstr(h.content, "<|") && !strstr(w->content, "<|"));
            sl_harmony_free(&h);
            CHECK_MSG(!bad, "case %zu at %zu", i, k);
        }
    }
}

/* A call is given once its closing tag has arrived, not before; the content before it is not held back. */
TEST(calls_wait_for_their_close) {
    const char *t = ANSWER_TWO_CALLS;
    const size_t first_end = (size_t)(strstr(t, CL "call" SP) - t) + strlen(CL "call" SP);
    sl_harmony h;
    CHECK(sl_kimi3_split(t, first_end - 1, true, true, true, NULL, false, &h));
    CHECK(h.calls == NULL);
    CHECK_STR(h.content, "Let me check.");
    sl_harmony_free(&h);
    CHECK(sl_kimi3_split(t, first_end, true, true, true, NULL, false, &h));
    CHECK(json_array_size(h.calls) == 1);
    sl_harmony_free(&h);
    /* a call cut at the end of a streamed text waits; the same text final is parsed as far as it goes */
    static const char open_call[] = OP "tools" SP OP "call tool=\"f\"" SP ARG("a", "number", "1");
    CHECK(sl_kimi3_split(open_call, strlen(open_call), false, true, true, NULL, false, &h));
    CHECK(h.calls == NULL && h.n_content == 0);
    sl_harmony_free(&h);
    CHECK(sl_kimi3_split(open_call, strlen(open_call), false, true, true, NULL, true, &h));
    CHECK(json_array_size(h.calls) == 1 && h.n_content == 0);
    sl_harmony_free(&h);
    /* an argument cut short is no call: at fin its text is content */
    static const char cut[] = OP "tools" SP OP "call tool=\"f\"" SP OP "argument key=\"a\" type=\"number\"" SP "1";
    CHECK(sl_kimi3_split(cut, strlen(cut), false, true, true, NULL, true, &h));
    CHECK(h.calls == NULL);
    CHECK_STR(h.content, OP "call tool=\"f\"" SP OP "argument key=\"a\" type=\"number\"" SP "1");
    sl_harmony_free(&h);
}

/* NUL bytes and bytes that are not UTF-8 never make a call (its text is content), anywhere in it. */
TEST(nul_and_invalid_utf8) {
    static const char nul_value[] = OP "tools" SP CALL("f", "1", ARG("a", "string", "x\0y")) CL "tools" SP;
    static const char nul_name[] = OP "tools" SP CALL("f\0g", "1", "") CL "tools" SP;
    static const char bad_value[] = OP "tools" SP CALL("f", "1", ARG("a", "string", "\xff")) CL "tools" SP;
    static const char bad_key[] = OP "tools" SP CALL("f", "1", ARG("\xc3", "string", "x")) CL "tools" SP;
    static const char bad_name[] = OP "tools" SP CALL("\xe2\x82", "1", "") CL "tools" SP;
    const struct {
        const char *t;
        size_t n;
    } bad[] = {{nul_value, sizeof nul_value - 1},
               {nul_name, sizeof nul_name - 1},
               {bad_value, sizeof bad_value - 1},
               {bad_key, sizeof bad_key - 1},
               {bad_name, sizeof bad_name - 1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sl_harmony h;
        CHECK(sl_kimi3_split(bad[i].t, bad[i].n, false, true, true, NULL, true, &h));
        const size_t call_len = bad[i].n - strlen(OP "tools" SP) - strlen(CL "tools" SP);
        const bool ok = h.calls == NULL && h.n_content == call_len &&
                        !memcmp(h.content, bad[i].t + strlen(OP "tools" SP), call_len);
        sl_harmony_free(&h);
        CHECK_MSG(ok, "case %zu", i);
        CHECK_MSG(streams_well(bad[i].t, bad[i].n, false, true, true, NULL, 0), "case %zu", i);
    }
    /* text outside the calls is given as it is, NULs included */
    static const char text[] = "a\0b" CL "response" SP "\xff";
    sl_harmony h;
    CHECK(sl_kimi3_split(text, sizeof text - 1, false, true, true, NULL, true, &h));
    CHECK(h.n_content == 6 && !memcmp(h.content, "a\0b\n\n\xff", 6));
    sl_harmony_free(&h);
}

TEST(detected_on_the_kimi3_template_only) {
    const char *dir = sl_test_shared("golden/chat-templates");
    if (!dir) return;
    DIR *d = opendir(dir);
    CHECK(d);
    struct dirent *e;
    int found = 0, others = 0, named = 0;
    while ((e = readdir(d))) {
        const size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 6, ".jinja")) continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t n;
        char *src = sl_test_read_file(path, &n);
        CHECK(src);
        const bool k = sl_kimi3_template(src);
        free(src);
        if (!strcmp(e->d_name, "Kimi-K3.jinja")) {
            CHECK_MSG(k, "%s", e->d_name);
            found++;
        } else {
            CHECK_MSG(!k, "%s is not Kimi K3's", e->d_name);
            others++;
            named += !strcmp(e->d_name, "Qwen-Qwen3-0.6B.jinja") || !strcmp(e->d_name, "openai-gpt-oss-120b.jinja") ||
                     !strcmp(e->d_name, "moonshotai-Kimi-K2.jinja") || !strcmp(e->d_name, "Kimi-K2-Thinking.jinja");
        }
    }
    closedir(d);
    CHECK(found == 1 && others > 30 && named == 4);
    CHECK(!sl_kimi3_template(NULL));
    CHECK(!sl_kimi3_template(""));
}

/* The Kimi K3 template's source, or NULL when ../shared is absent. */
static char *k3_template(void) {
    const char *path = sl_test_shared("golden/chat-templates/Kimi-K3.jinja");
    size_t n;
    return path ? sl_test_read_file(path, &n) : NULL;
}

TEST(think_open_on_rendered_prompts) {
    /* renders of an independent implementation: four with the generation prompt (thinking on), one without */
    static const struct {
        const char *name;
        bool open;
    } golden[] = {{"a_user", true}, {"b_system_user", true}, {"c_multiturn", true}, {"d_nonascii", true},
                  {"e_no_genprompt", false}};
    for (size_t i = 0; i < sizeof golden / sizeof golden[0]; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "golden/chat-templates/expected/Kimi-K3.%s.txt", golden[i].name);
        const char *path = sl_test_shared(rel);
        if (!path) return;
        size_t n;
        char *p = sl_test_read_file(path, &n);
        CHECK(p);
        const bool open = sl_kimi3_think_open(p);
        free(p);
        CHECK_MSG(open == golden[i].open, "%s", golden[i].name);
    }
    /* rendered here, thinking on and off */
    char *tpl = k3_template();
    if (!tpl) return;
    json_t *msgs = json_loads("[{\"role\":\"user\",\"content\":\"hi\"}]", 0, NULL);
    json_t *off = json_pack("{s:b}", "thinking", 0), *on = json_pack("{s:b}", "thinking", 1);
    char *p_off = NULL, *p_on = NULL, *p_def = NULL;
    size_t n;
    const bool rendered = msgs && off && on && sl_chat_render(tpl, msgs, true, "", "", NULL, NULL, off, &p_off, &n) == SL_OK &&
                          sl_chat_render(tpl, msgs, true, "", "", NULL, NULL, on, &p_on, &n) == SL_OK &&
                          sl_chat_render(tpl, msgs, true, "", "", NULL, NULL, NULL, &p_def, &n) == SL_OK;
    const bool ok = rendered && !sl_kimi3_think_open(p_off) && sl_kimi3_think_open(p_on) && sl_kimi3_think_open(p_def);
    if (!ok) sl_test_fail(__FILE__, __LINE__, "off: '%s', on: '%s'", p_off ? p_off : "-", p_on ? p_on : "-");
    sl_free(p_off);
    sl_free(p_on);
    sl_free(p_def);
    json_decref(msgs);
    json_decref(off);
    json_decref(on);
    free(tpl);
    if (!ok) return;
    CHECK(sl_kimi3_think_open("x" OP "think" SP " \n"));
    CHECK(!sl_kimi3_think_open(OP "think" SP "a"));
    CHECK(!sl_kimi3_think_open(OP "think" SP CL "think" SP));
    CHECK(!sl_kimi3_think_open(""));
    CHECK(!sl_kimi3_think_open(NULL));
}

/* An assistant turn the template renders, after the prompt of the turns before it, read back: its thinking,
 * content and calls are those rendered. */
TEST(rendered_turns_read_back) {
    char *tpl = k3_template();
    if (!tpl) return;
    json_t *turn = json_loads(
        "{\"role\":\"assistant\",\"reasoning_content\":\"Two cities.\\nCall twice.\",\"content\":\"Checking <b>both</b>.\","
        "\"tool_calls\":[{\"id\":\"1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":"
        "{\"city\":\"Pa\\\"ris & Lyon\",\"days\":3,\"ratio\":-0.25,\"opts\":{\"u\":\"C\",\"x\":[1,2.5,null]},"
        "\"flag\":true,\"none\":null,\"list\":[\"a\",{\"b\":false}],\"empty\":\"\",\"multi\":\"line 1\\nline 2\","
        "\"uni\":\"Grüße 你好 👋\"}}},"
        "{\"id\":\"2\",\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"arguments\":{}}}]}",
        0, NULL);
    json_t *user = json_pack("{s:s,s:s}", "role", "user", "content", "Weather in Paris and Lyon?");
    bool ok = turn && user;
    for (int thinking = 0; ok && thinking < 2; thinking++) {
        json_t *extra = json_pack("{s:b}", "thinking", thinking);
        json_t *before = json_pack("[O]", user), *all = json_pack("[O,O]", user, turn);
        char *prompt = NULL, *full = NULL;
        size_t np = 0, nf = 0;
        ok = extra && before && all && sl_chat_render(tpl, before, true, "", "", NULL, NULL, extra, &prompt, &np) == SL_OK &&
             sl_chat_render(tpl, all, false, "", "", NULL, NULL, extra, &full, &nf) == SL_OK && nf > np &&
             !memcmp(full, prompt, np);
        sl_harmony h = {0};
        ok = ok && sl_kimi3_split(full + np, nf - np, sl_kimi3_think_open(prompt), true, true, NULL, true, &h);
        if (ok) {
            const json_t *tc = json_object_get(turn, "tool_calls");
            ok = !strcmp(h.reasoning, thinking ? "Two cities.\nCall twice." : "") &&
                 !strcmp(h.content, "Checking <b>both</b>.") && json_array_size(h.calls) == 2;
            for (size_t i = 0; ok && i < 2; i++) {
                const json_t *fn = json_object_get(json_array_get(tc, i), "function"), *c = json_array_get(h.calls, i);
                json_t *args = args_of(c);
                ok = json_equal(json_object_get(c, "name"), json_object_get(fn, "name")) &&
                     json_equal(args, json_object_get(fn, "arguments"));
                json_decref(args);
            }
            if (!ok)
                sl_test_fail(__FILE__, __LINE__, "thinking %d: answer '%s': reasoning '%s' content '%s' calls %zu",
                             thinking, full + np, h.reasoning, h.content, json_array_size(h.calls));
            ok = ok && streams_well(full + np, nf - np, sl_kimi3_think_open(prompt), true, true, NULL, 0);
        } else {
            sl_test_fail(__FILE__, __LINE__, "thinking %d: rendering failed", thinking);
        }
        sl_harmony_free(&h);
        sl_free(prompt);
        sl_free(full);
        json_decref(extra);
        json_decref(before);
        json_decref(all);
    }
    json_decref(turn);
    json_decref(user);
    free(tpl);
    CHECK(ok);
}

TEST(markers_are_the_control_tokens) {
    const char *const *m = sl_kimi3_markers();
    CHECK_STR(m[0], "<|open|>");
    CHECK_STR(m[1], "<|close|>");
    CHECK_STR(m[2], "<|sep|>");
    CHECK_STR(m[3], "<|end_of_msg|>");
    CHECK(m[4] == NULL);
}

/* ---- random mutations ------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *x) {
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return *x;
}

/* Mutated answers (bytes and whole tags replaced, deleted, inserted) never crash, and every prefix streamed
 * keeps the invariants of streams_well. */
TEST(random_mutations_keep_the_stream_invariants) {
    static const char *const seeds[] = {ANSWER_ONE_CALL, ANSWER_TWO_CALLS,
                                        "Think.<|close|>think<|sep|><|open|>response<|sep|>Hi!<|close|>response<|sep|>"};
    static const char *const tags[] = {OP,           CL,           SP,           "<|end_of_msg|>", OP "think" SP,
                                       CL "think" SP, OP "response" SP, CL "response" SP, OP "tools" SP, CL "tools" SP,
                                       OP "call tool=\"f\"" SP, CL "call" SP, OP "argument key=\"k\" type=\"number\"" SP,
                                       CL "argument" SP, CL "message" SP, OP "json" SP, "&quot;"};
    static const char alphabet[] = "<|>/\"= \n{}[]:,01.-&;acefgklmnoprstuy\0\xff\xc3";
    uint64_t x = 0x9E3779B97F4A7C15u;
    char buf[1024];
    int with_calls = 0, with_content = 0;
    for (int it = 0; it < 6000; it++) {
        const char *seed = seeds[it % 3];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        for (int m = (int)(rng_next(&x) % 6) + 1; m > 0; m--) {
            const size_t at = rng_next(&x) % (n + 1);
            const char *ins = tags[rng_next(&x) % (sizeof tags / sizeof tags[0])];
            const size_t il = strlen(ins);
            switch (rng_next(&x) % 5) {
            case 0:
                if (at < n) buf[at] = alphabet[rng_next(&x) % (sizeof alphabet - 1)]; /* replace a byte */
                break;
            case 1: { /* delete a run */
                const size_t l = at < n ? 1 + rng_next(&x) % (n - at < 12 ? n - at : 12) : 0;
                memmove(buf + at, buf + at + l, n - at - l), n -= l;
                break;
            }
            case 2: /* insert a byte */
                if (n < sizeof buf) memmove(buf + at + 1, buf + at, n - at), buf[at] = alphabet[rng_next(&x) % (sizeof alphabet - 1)], n++;
                break;
            default: /* insert a tag */
                if (n + il <= sizeof buf) memmove(buf + at + il, buf + at, n - at), memcpy(buf + at, ins, il), n += il;
            }
        }
        char *copy = malloc(n ? n : 1); /* exactly n bytes: ASan sees any read past the end */
        memcpy(copy, buf, n);
        const uint64_t flags = rng_next(&x);
        /* every prefix for some, eight random ones (and the step after each) for the rest */
        size_t ks[16];
        for (size_t k = 0; k < 16; k += 2) ks[k] = rng_next(&x) % (n + 1);
        for (size_t a = 0; a < 16; a += 2) /* (sorted, ascending) */
            for (size_t b = a + 2; b < 16; b += 2)
                if (ks[b] < ks[a]) {
                    const size_t tmp = ks[a];
                    ks[a] = ks[b], ks[b] = tmp;
                }
        for (size_t k = 0; k < 16; k += 2) ks[k + 1] = ks[k] < n ? ks[k] + 1 : n;
        const bool all = it % 20 == 0;
        const bool ok = streams_well(copy, n, flags & 1, flags & 2, flags & 4, all ? NULL : ks, 16);
        sl_harmony h;
        if (ok && sl_kimi3_split(copy, n, flags & 1, flags & 2, flags & 4, NULL, true, &h)) {
            with_calls += h.calls != NULL;
            with_content += h.n_content > 0;
            sl_harmony_free(&h);
        }
        free(copy);
        CHECK_MSG(ok, "mutation %d", it);
    }
    printf("   %d of 6000 mutations gave calls, %d content\n", with_calls, with_content);
    CHECK(with_calls > 300 && with_content > 1000);
}

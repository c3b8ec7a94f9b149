/*
 * fuzz_toolcall.c — libFuzzer target for the tool-call syntaxes
 * (src/server/toolcall.c, `make fuzz`): a model's answer is untrusted text.
 *
 * Input: one selector byte (the syntax: its value modulo the number of
 * syntaxes), then an answer. Checked: sl_tool_parse gives NULL or a
 * non-empty array of {"name": non-empty string, "arguments": the text of a
 * JSON object}, with the content inside the answer and ending on no
 * whitespace; sl_tool_content_safe over every prefix of the answer stays
 * within the prefix, never shrinks, and never goes past the content of an
 * answer that parses into calls (so a streamed answer's content is the
 * whole answer's); the streamed calls (sl_tool_parse_partial) over every
 * prefix are the whole answer's, their arguments a start of its, and only
 * grow from what a stream sent. The answer is also
 * parsed as a "required" answer: NULL or calls of the same shape. And its
 * thinking / content split (server/reasoning.c): both parts inside the
 * answer, and over every prefix the streamed parts only grow, within and
 * from the start of the whole answer's; and the same of its harmony split
 * (server/harmony.c) and its Kimi K3 split (server/kimi3.c).
 *
 * tests/unit/test_toolcall.c includes this file (FUZZ_TOOLCALL_NO_MAIN) and
 * replays tests/fuzz/corpus/toolcall through fuzz_toolcall_one().
 */
#include "server/harmony.h"
#include "server/kimi3.h"
#include "server/reasoning.h"
#include "server/toolcall.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_TOOLCALL_FORMATS SL_TOOLS_COUNT

static void fuzz_toolcall_check(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_toolcall: invariant violated: %s\n", what);
        abort();
    }
}

static void fuzz_toolcall_calls_one(const json_t *c) {
    const json_t *name = json_object_get(c, "name"), *args = json_object_get(c, "arguments");
    fuzz_toolcall_check(json_is_string(name) && json_string_length(name) > 0, "a call has a name");
    fuzz_toolcall_check(json_is_string(args), "a call has arguments text");
    json_t *o = json_loadb(json_string_value(args), json_string_length(args), 0, NULL);
    fuzz_toolcall_check(json_is_object(o), "a call's arguments are a JSON object");
    json_decref(o);
}

static void fuzz_toolcall_calls(const json_t *calls) {
    if (!calls) return;
    fuzz_toolcall_check(json_is_array(calls) && json_array_size(calls) > 0, "calls are a non-empty array");
    size_t i;
    const json_t *c;
    json_array_foreach(calls, i, c) fuzz_toolcall_calls_one(c);
}

/* Streamed calls (sl_tool_parse_partial) over every prefix: when the whole answer parses into calls
 * `whole`, each streamed call is there under its index and name, with arguments that begin with the
 * streamed ones (equal unless "partial"), and a call's streamed arguments never lose a byte once they
 * went out (what a client was sent stays the start of what it gets). */
static void fuzz_toolcall_partial(sl_tool_format f, bool required, const json_t *tools, const char *text, size_t n,
                                  const json_t *whole) {
    size_t ncalls = 0; /* the calls begun and the last one's arguments sent (stream_calls in http.c) */
    char *sent = NULL;
    size_t ns = 0;
    for (size_t k = 0; k <= n; k++) {
        json_t *p = sl_tool_parse_partial(f, required, tools, text, k);
        size_t i;
        const json_t *c;
        json_array_foreach(p, i, c) {
            const json_t *name = json_object_get(c, "name"), *args = json_object_get(c, "arguments");
            const bool partial = json_is_true(json_object_get(c, "partial"));
            fuzz_toolcall_check(json_is_string(name) && json_is_string(args), "a streamed call has a name and arguments");
            fuzz_toolcall_check(!partial || i + 1 == json_array_size(p), "only the last streamed call is partial");
            if (!partial) fuzz_toolcall_calls_one(c);
            const json_t *w = json_array_get(whole, i);
            if (whole) {
                fuzz_toolcall_check(w != NULL, "a streamed call is one of the whole answer's");
                fuzz_toolcall_check(json_equal(name, json_object_get(w, "name")), "a streamed call has its final name");
                const json_t *wa = json_object_get(w, "arguments");
                fuzz_toolcall_check(json_string_length(args) <= json_string_length(wa) &&
                                        !memcmp(json_string_value(args), json_string_value(wa), json_string_length(args)),
                                    "streamed arguments begin the final ones");
                fuzz_toolcall_check(partial || json_equal(args, wa), "a whole streamed call has its final arguments");
            }
            /* what a stream sends: arguments only grow */
            if (i + 1 < ncalls) continue;
            const size_t al = json_string_length(args);
            if (i == ncalls) {
                if (al == 0) break;
                ncalls++;
                ns = 0;
            }
            fuzz_toolcall_check(!memcmp(sent ? sent : "", json_string_value(args), al < ns ? al : ns),
                                "streamed arguments go on from what was sent");
            if (al > ns) {
                free(sent);
                sent = strndup(json_string_value(args), al);
                ns = al;
            }
            if (partial) break;
        }
        json_decref(p);
    }
    free(sent);
}

/* Returns the number of calls parsed (0: none). */
static int fuzz_toolcall_one(const uint8_t *data, size_t len) {
    if (len < 1) return 0;
    const sl_tool_format f = (sl_tool_format)(data[0] % FUZZ_TOOLCALL_FORMATS);
    const char *text = (const char *)data + 1;
    const size_t n = len - 1;
    static json_t *tools;
    if (!tools)
        tools = json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{\"type\":\"object\","
                           "\"properties\":{\"n\":{\"type\":\"integer\"},\"s\":{\"type\":\"string\"}}}}}]",
                           0, NULL);
    size_t content = n + 1;
    json_t *calls = sl_tool_parse(f, tools, text, n, &content);
    fuzz_toolcall_calls(calls);
    if (calls) {
        fuzz_toolcall_check(content <= n, "the content lies inside the answer");
        fuzz_toolcall_check(content == 0 || (text[content - 1] != ' ' && text[content - 1] != '\n' &&
                                             text[content - 1] != '\t' && text[content - 1] != '\r'),
                            "the content ends on no whitespace");
    }
    size_t prev = 0;
    for (size_t k = 0; k <= n; k++) {
        const size_t s = sl_tool_content_safe(f, text, k);
        fuzz_toolcall_check(s <= k, "the safe content lies inside the text so far");
        fuzz_toolcall_check(s >= prev, "the safe content never shrinks");
        prev = s;
    }
    if (calls) fuzz_toolcall_check(prev <= content, "no byte past the content was released as content");
    fuzz_toolcall_partial(f, false, tools, text, n, calls);
    const int got = calls ? (int)json_array_size(calls) : 0;
    json_decref(calls);
    /* thinking and content (reasoning.c): inside the answer, and streamed parts grow into the whole ones */
    for (int open = 0; open < 2 * SL_THINK_TAGS_COUNT; open++) {
        const sl_think_tags tg = (sl_think_tags)(open / 2);
        const sl_think_split w = sl_think_split_text(tg, text, n, open % 2, true);
        fuzz_toolcall_check(w.r0 <= w.r1 && w.r1 <= n && w.c0 <= w.c1 && w.c1 <= n, "the parts lie inside the answer");
        fuzz_toolcall_check(w.r1 == w.r0 || w.c0 >= w.r1, "the content comes after the thinking");
        size_t lr = 0, lc = 0;
        for (size_t k = 0; k <= n; k++) {
            const sl_think_split p = sl_think_split_text(tg, text, k, open % 2, false);
            fuzz_toolcall_check(p.r1 - p.r0 >= lr && p.c1 - p.c0 >= lc, "streamed parts never shrink");
            fuzz_toolcall_check(p.r1 - p.r0 <= w.r1 - w.r0 && p.c1 - p.c0 <= w.c1 - w.c0, "streamed parts stay within the whole");
            fuzz_toolcall_check((p.r1 == p.r0 || p.r0 == w.r0) && (p.c1 == p.c0 || p.c0 == w.c0), "streamed parts start where the whole do");
            lr = p.r1 - p.r0;
            lc = p.c1 - p.c0;
        }
    }
    json_t *req = sl_tool_parse_required(text, n);
    fuzz_toolcall_calls(req);
    fuzz_toolcall_partial(f, true, tools, text, n, req);
    json_decref(req);
    /* gpt-oss's harmony split (harmony.c) and Kimi K3's (kimi3.c): streamed parts only grow into the whole
     * ones, calls come whole */
    for (int mode = 0; mode < 2 + 8; mode++) {
        const bool kimi = mode >= 2, think = kimi ? (mode & 1) : mode, parse = kimi ? (mode & 2) != 0 : !mode,
                   open = (mode & 4) != 0;
#define FUZZ_SPLIT(k, fin, out)                                                                                   \
    (kimi ? sl_kimi3_split(text, (k), open, think, parse, tools, (fin), (out))                                    \
          : sl_harmony_split(text, (k), think, parse, (fin), (out)))
        sl_harmony w;
        fuzz_toolcall_check(FUZZ_SPLIT(n, true, &w), "message split");
        fuzz_toolcall_calls(w.calls);
        size_t lr = 0, lc = 0;
        for (size_t k = 0; k <= n; k++) {
            sl_harmony p;
            fuzz_toolcall_check(FUZZ_SPLIT(k, false, &p), "message split, streamed");
            fuzz_toolcall_check(p.n_reasoning >= lr && p.n_content >= lc, "messages: streamed parts never shrink");
            fuzz_toolcall_check(p.n_reasoning <= w.n_reasoning && p.n_content <= w.n_content &&
                                    !memcmp(p.reasoning, w.reasoning, p.n_reasoning) && !memcmp(p.content, w.content, p.n_content),
                                "messages: streamed parts are the start of the whole ones");
            fuzz_toolcall_calls(p.calls);
            lr = p.n_reasoning;
            lc = p.n_content;
            sl_harmony_free(&p);
        }
        sl_harmony_free(&w);
#undef FUZZ_SPLIT
    }
    return got;
}

#ifndef FUZZ_TOOLCALL_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_toolcall_one(data, size);
    return 0;
}
#endif

/*
 * test_toolcall_py.c — the LFM2 (pythonic) and Gemma 4 tool-call syntaxes
 * (server/toolcall_py.c). The answers are copied by hand from what the golden
 * templates (LFM2.5-8B-A1B.jinja, google-gemma-4-31B-it.jinja) render for an
 * assistant turn with tool_calls, and the expected calls are written by hand.
 * Also: malformed answers of every kind fail, every prefix of a valid answer
 * parses only where it is complete, and random mutations of valid answers
 * never crash and give only well-formed calls.
 */
#include "harness.h"

#include "server/toolcall_int.h"

#include <stdlib.h>
#include <string.h>

typedef bool (*parse_fn)(json_t *calls, const char *s, size_t n, size_t *content);

/* Parse s[0, n) with p. expect: NULL when it must fail, else a JSON array [[name, {arguments}], ...] compared
 * as JSON with what was parsed; content: the text before the first call. */
static bool parses_n(parse_fn p, const char *s, size_t n, const char *content, const char *expect) {
    json_t *calls = json_array(), *want = expect ? json_loads(expect, 0, NULL) : NULL;
    size_t cl = (size_t)-1;
    const bool ok = p(calls, s, n, &cl);
    bool good = ok == (expect != NULL);
    if (good && ok) {
        good = json_array_size(calls) == json_array_size(want) && cl == strlen(content) && !memcmp(s, content, cl);
        for (size_t i = 0; good && i < json_array_size(want); i++) {
            const json_t *c = json_array_get(calls, i), *w = json_array_get(want, i);
            json_t *args = json_loads(json_string_value(json_object_get(c, "arguments")), 0, NULL);
            good = json_equal(json_object_get(c, "name"), json_array_get(w, 0)) &&
                   json_equal(args, json_array_get(w, 1));
            json_decref(args);
        }
    }
    if (!good) {
        char *got = json_dumps(calls, JSON_COMPACT);
        fprintf(stderr, "   '%.*s'\n   gave %s %s, content %zu; expected %s, content '%s'\n", (int)n, s,
                ok ? "true" : "false", got ? got : "?", cl, expect ? expect : "false", content ? content : "");
        free(got);
    }
    json_decref(calls);
    json_decref(want);
    return good;
}

static bool parses(parse_fn p, const char *s, const char *content, const char *expect) {
    return parses_n(p, s, strlen(s), content, expect);
}

#define PY(s, content, expect) parses(sl_tc_parse_pythonic, s, content, expect)
#define PY_BAD(s) parses(sl_tc_parse_pythonic, s, NULL, NULL)
#define GM(s, content, expect) parses(sl_tc_parse_gemma4, s, content, expect)
#define GM_BAD(s) parses(sl_tc_parse_gemma4, s, NULL, NULL)

/* ---- LFM2 / LFM2.5 ------------------------------------------------------------ */

TEST(pythonic_calls_as_the_template_renders_them) {
    /* LFM2.5-8B-A1B.jinja, for get_weather {city: Paris, days: 3} and get_time {tz: CET} */
    CHECK(PY("<|tool_call_start|>[get_weather(city='Paris', days=3), get_time(tz='CET')]<|tool_call_end|>", "",
             "[[\"get_weather\", {\"city\": \"Paris\", \"days\": 3}], [\"get_time\", {\"tz\": \"CET\"}]]"));
    /* content before the block; every scalar the template writes with `| string` */
    CHECK(PY("Let me check.<|tool_call_start|>[get_weather(city='Paris', days=3, temp=-1.5, big=1e+20, "
             "small=1e-05, ok=True, no=False, none=None)]<|tool_call_end|>",
             "Let me check.",
             "[[\"get_weather\", {\"city\": \"Paris\", \"days\": 3, \"temp\": -1.5, \"big\": 1e20, \"small\": 1e-05, "
             "\"ok\": true, \"no\": false, \"none\": null}]]"));
    /* strings go out raw between '...' (quotes, newline, tab, backslash, non-ASCII), lists by Python's repr,
     * dicts by tojson; a call without arguments */
    CHECK(PY("<|tool_call_start|>[f.x-y(s='it's \"q\"\nline\ttab \\ back é 日本 😀', "
             "l=['a', 1, True, None, {'k': 'v'}, [2.5]], o={\"b\": {\"c\": [1, \"x's\"]}, \"t\": true, \"n\": null, "
             "\"a\": \"é\"}, e={}, el=[], es=''), noargs()]<|tool_call_end|>",
             "",
             "[[\"f.x-y\", {\"s\": \"it's \\\"q\\\"\\nline\\ttab \\\\ back é 日本 😀\", "
             "\"l\": [\"a\", 1, true, null, {\"k\": \"v\"}, [2.5]], \"o\": {\"b\": {\"c\": [1, \"x's\"]}, \"t\": true, "
             "\"n\": null, \"a\": \"é\"}, \"e\": {}, \"el\": [], \"es\": \"\"}], [\"noargs\", {}]]"));
    /* strings inside a list come by repr: double quotes around a quote, escapes for control characters */
    CHECK(PY("<|tool_call_start|>[f(l=[\"it's\", 'a\\nb', 'é', '\\x01', 'q\"d', 'both\\'\"'], "
             "d={\"x\": \"it's \\\"q\\\"\\n😀\"}, n=[[1, [2]], {'a': [True, None]}], f=0.1, i=-7)]<|tool_call_end|>",
             "",
             "[[\"f\", {\"l\": [\"it's\", \"a\\nb\", \"é\", \"\\u0001\", \"q\\\"d\", \"both'\\\"\"], "
             "\"d\": {\"x\": \"it's \\\"q\\\"\\n😀\"}, \"n\": [[1, [2]], {\"a\": [true, null]}], \"f\": 0.1, \"i\": -7}]]"));
    /* Python's own tojson escapes everything outside ASCII, non-BMP as a surrogate pair, and ' as \u0027 */
    CHECK(PY("<|tool_call_start|>[f(o={\"a\": \"\\u00e9\", \"e\": \"\\ud83d\\ude00\", \"q\": \"it\\u0027s\"})]"
             "<|tool_call_end|>",
             "", "[[\"f\", {\"o\": {\"a\": \"é\", \"e\": \"😀\", \"q\": \"it's\"}}]]"));
}

TEST(pythonic_literals) {
    /* escapes: hex, \u, \U, octal, the usual ones, an unknown one kept, a continued line */
    CHECK(PY("<|tool_call_start|>[f(s='\\x41\\u00e9\\U0001F600\\101\\t\\\\\\'\\q\\\nz')]", "",
             "[[\"f\", {\"s\": \"Aé😀A\\t\\\\'\\\\qz\"}]]"));
    CHECK(PY("<|tool_call_start|>[f(a='''it's''', b=\"\"\"say \"hi\"\n\"\"\", c=\"x\", d='')]", "",
             "[[\"f\", {\"a\": \"it's\", \"b\": \"say \\\"hi\\\"\\n\", \"c\": \"x\", \"d\": \"\"}]]"));
    /* numbers: underscores, exponents, a leading dot, an int past int64 (a double) */
    CHECK(PY("<|tool_call_start|>[f(a=1_000, b=-0.5e-3, c=.5, d=2E3, e=123456789012345678901234567890, g=-0)]",
             "", "[[\"f\", {\"a\": 1000, \"b\": -0.0005, \"c\": 0.5, \"d\": 2000.0, \"e\": 1.2345678901234568e29, "
                 "\"g\": 0}]]"));
    CHECK(PY("<|tool_call_start|>[f(a=9223372036854775807, b=-9223372036854775808)]", "",
             "[[\"f\", {\"a\": 9223372036854775807, \"b\": -9223372036854775808}]]"));
    /* tuples are arrays; (x) is x; trailing commas; spaces anywhere Python allows them */
    CHECK(PY("<|tool_call_start|>[ f ( t = (1, 'a') , one=(1,), p=(3), e=(), l=[1, 2,], d={'k': 1,}, ) , ]", "",
             "[[\"f\", {\"t\": [1, \"a\"], \"one\": [1], \"p\": 3, \"e\": [], \"l\": [1, 2], \"d\": {\"k\": 1}}]]"));
    /* a dict's repeated key keeps the last value, as Python does; a non-ASCII keyword */
    CHECK(PY("<|tool_call_start|>[f(d={'a': 1, 'a': 2}, città='Roma')]", "",
             "[[\"f\", {\"d\": {\"a\": 2}, \"città\": \"Roma\"}]]"));
}

TEST(pythonic_blocks_and_forms) {
    /* several blocks; the end marker missing where the answer ends */
    CHECK(PY("Sure.\n<|tool_call_start|>[a(x=1)]<|tool_call_end|>\n<|tool_call_start|>[b(), c(y='z')]", "Sure.\n",
             "[[\"a\", {\"x\": 1}], [\"b\", {}], [\"c\", {\"y\": \"z\"}]]"));
    CHECK(PY("<|tool_call_start|>[a(x=1)]\n", "", "[[\"a\", {\"x\": 1}]]"));
    /* one call without the brackets, and JSON calls (both read by sglang's LFM2 parser) */
    CHECK(PY("<|tool_call_start|>a(x=1)<|tool_call_end|>", "", "[[\"a\", {\"x\": 1}]]"));
    CHECK(PY("<|tool_call_start|>[{\"name\": \"a\", \"arguments\": {\"x\": [1]}}]<|tool_call_end|>", "",
             "[[\"a\", {\"x\": [1]}]]"));
    /* text after the last closed block is not content (as in the other syntaxes) */
    CHECK(PY("<|tool_call_start|>[a()]<|tool_call_end|> done", "", "[[\"a\", {}]]"));
}

TEST(pythonic_malformed_answers_fail) {
    static const char *bad[] = {
        "no call here",
        "[get_weather(city='Paris')]", /* no marker */
        "<|tool_call_start|>",
        "<|tool_call_start|>[]<|tool_call_end|>",
        "<|tool_call_start|>[f(a='x)]<|tool_call_end|>",   /* unterminated string */
        "<|tool_call_start|>[f(a='''x'')]<|tool_call_end|>",
        "<|tool_call_start|>[f('x')]<|tool_call_end|>",    /* positional arguments */
        "<|tool_call_start|>[f(1)]<|tool_call_end|>",
        "<|tool_call_start|>[f(x)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=1, 2)]<|tool_call_end|>",
        "<|tool_call_start|>[f(**k)]<|tool_call_end|>",
        "<|tool_call_start|>[f(1a=2)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a==1)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=1]<|tool_call_end|>",    /* brackets */
        "<|tool_call_start|>[f a=1)]<|tool_call_end|>",
        "<|tool_call_start|>[f]<|tool_call_end|>",
        "<|tool_call_start|>[(a=1)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=1)<|tool_call_end|>",
        "<|tool_call_start|>[f(a=[1, 2)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=1) junk]<|tool_call_end|>", /* garbage after a call */
        "<|tool_call_start|>[f(a=1) g()]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=1)] junk<|tool_call_end|>",
        "<|tool_call_start|>[f(a=1)] and more",
        "<|tool_call_start|>[f(a=1)]<|tool_call_end|><|tool_call_start|>[g(]<|tool_call_end|>",
        "<|tool_call_start|>[f(a={1: 'x'})]<|tool_call_end|>", /* dict keys must be strings */
        "<|tool_call_start|>[f(a={k: 'x'})]<|tool_call_end|>",
        "<|tool_call_start|>[f(a={None: 1})]<|tool_call_end|>",
        "<|tool_call_start|>[f(a={1, 2})]<|tool_call_end|>",
        "<|tool_call_start|>[f(a={'k' 1})]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=1, a=2)]<|tool_call_end|>", /* a repeated keyword */
        "<|tool_call_start|>[f(a=1,,b=2)]<|tool_call_end|>",
        "<|tool_call_start|>[f(,a=1)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=foo)]<|tool_call_end|>",  /* not literals */
        "<|tool_call_start|>[f(a=inf)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=0x10)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=1e999)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=-)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=1e)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=1__0)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=1_)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=1.2.3)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=r'x')]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=g(b=1))]<|tool_call_end|>",
        "<|tool_call_start|>[f(a=1+2)]<|tool_call_end|>",
        "<|tool_call_start|>[f(a='\\0')]<|tool_call_end|>",  /* escapes of NUL, surrogates, past U+10FFFF */
        "<|tool_call_start|>[f(a='\\x00')]<|tool_call_end|>",
        "<|tool_call_start|>[f(a='\\ud800')]<|tool_call_end|>",
        "<|tool_call_start|>[f(a='\\udc00\\ud800')]<|tool_call_end|>",
        "<|tool_call_start|>[f(a='\\U00110000')]<|tool_call_end|>",
        "<|tool_call_start|>[f(a='\\N{DASH}')]<|tool_call_end|>",
        "<|tool_call_start|>[f(a='\\xZZ')]<|tool_call_end|>",
        "<|tool_call_start|>[f(a='\\u12')]<|tool_call_end|>",
        "<|tool_call_start|>[f(a='\xff')]<|tool_call_end|>", /* not UTF-8 */
        "<|tool_call_start|>[f(a='\xed\xa0\x80')]<|tool_call_end|>",
        "<|tool_call_start|>[f(a={'\xff': 1})]<|tool_call_end|>",
        "<|tool_call_start|>[f(\xc3=1)]<|tool_call_end|>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK_MSG(PY_BAD(bad[i]), "case %zu", i);
    /* NUL bytes, given by length: in a string, in a name, in the marker */
    static const char nul1[] = "<|tool_call_start|>[f(a='x\0y')]<|tool_call_end|>";
    static const char nul2[] = "<|tool_call_start|>[f\0g(a=1)]<|tool_call_end|>";
    static const char nul3[] = "<|tool_call_start|>[f(a=1)]<|tool_call_end\0|>";
    static const char nul4[] = "<|tool_call_start|>[f(a={'x\0': 1})]<|tool_call_end|>";
    CHECK(parses_n(sl_tc_parse_pythonic, nul1, sizeof nul1 - 1, NULL, NULL));
    CHECK(parses_n(sl_tc_parse_pythonic, nul2, sizeof nul2 - 1, NULL, NULL));
    CHECK(parses_n(sl_tc_parse_pythonic, nul3, sizeof nul3 - 1, NULL, NULL));
    CHECK(parses_n(sl_tc_parse_pythonic, nul4, sizeof nul4 - 1, NULL, NULL));
    /* a NUL before the marker is only content */
    static const char nul5[] = "a\0b<|tool_call_start|>[f(a=1)]";
    size_t cl = 0;
    json_t *calls = json_array();
    CHECK(sl_tc_parse_pythonic(calls, nul5, sizeof nul5 - 1, &cl) && cl == 3 && json_array_size(calls) == 1);
    json_decref(calls);
}

/* A value nested `depth` lists deep, in syntax gemma or pythonic. */
static bool nested_parses(parse_fn p, bool gemma, int depth) {
    char buf[512];
    int k = snprintf(buf, sizeof buf, gemma ? "<|tool_call>call:f{a:" : "<|tool_call_start|>[f(a=");
    for (int d = 0; d < depth; d++) buf[k++] = '[';
    buf[k++] = '1';
    for (int d = 0; d < depth; d++) buf[k++] = ']';
    k += snprintf(buf + k, sizeof buf - (size_t)k, gemma ? "}<tool_call|>" : ")]<|tool_call_end|>");
    json_t *calls = json_array();
    size_t cl;
    const bool ok = p(calls, buf, (size_t)k, &cl);
    json_decref(calls);
    return ok;
}

TEST(nesting_is_capped) {
    CHECK(nested_parses(sl_tc_parse_pythonic, false, 63)); /* the arguments are the first level */
    CHECK(!nested_parses(sl_tc_parse_pythonic, false, 64));
    CHECK(!nested_parses(sl_tc_parse_pythonic, false, 200));
    CHECK(nested_parses(sl_tc_parse_gemma4, true, 63));
    CHECK(!nested_parses(sl_tc_parse_gemma4, true, 64));
    CHECK(!nested_parses(sl_tc_parse_gemma4, true, 200));
}

/* Every prefix of the valid answer s, copied to exactly its length (so ASan sees any read past it): it
 * parses into the first ok[i][2] calls of the whole answer when its length is in [ok[i][0], ok[i][1]], and
 * fails at any other length. */
static bool prefixes_parse_only_when_complete(parse_fn p, const char *s, const size_t (*ok)[3], size_t n_ok) {
    const size_t n = strlen(s);
    json_t *whole = json_array();
    size_t cl;
    bool good = p(whole, s, n, &cl);
    for (size_t k = 0; good && k <= n; k++) {
        size_t want = 0;
        for (size_t a = 0; a < n_ok; a++)
            if (ok[a][0] <= k && k <= ok[a][1]) want = ok[a][2];
        json_t *got = json_array();
        char *copy = malloc(k ? k : 1);
        memcpy(copy, s, k);
        const bool parsed = p(got, copy, k, &cl);
        good = parsed == (want > 0) && (!parsed || json_array_size(got) == want);
        for (size_t i = 0; good && i < want; i++) good = json_equal(json_array_get(got, i), json_array_get(whole, i));
        if (!good) fprintf(stderr, "   prefix of %zu bytes '%.*s': %s\n", k, (int)k, s, parsed ? "parsed" : "failed");
        free(copy);
        json_decref(got);
    }
    json_decref(whole);
    return good;
}

TEST(truncated_answers_parse_only_when_complete) {
    /* LFM2: complete at the list's ']' (the end marker may be missing there) and at the end */
    static const char py[] = "Sure.<|tool_call_start|>[get_weather(city='Paris', days=3), get_time(tz=\"CET\", "
                             "o={'a': [1.5, True]})]<|tool_call_end|>";
    const size_t py_close = (size_t)(strstr(py, ")]<|") - py) + 2, py_n = sizeof py - 1;
    const size_t py_ok[][3] = {{py_close, py_close, 2}, {py_n, py_n, 2}};
    CHECK(prefixes_parse_only_when_complete(sl_tc_parse_pythonic, py, py_ok, 2));
    /* Gemma 4: the first call alone at its '}', and after its end marker until the next begins (what follows
     * the last complete call is dropped, not content); both at the last '}' and at the end */
    static const char gm[] = "Sure.<|tool_call>call:get_weather{city:<|\"|>Paris<|\"|>,days:3,o:{a:[1.5,true]}}"
                             "<tool_call|><|tool_call>call:get_time{tz:<|\"|>CET<|\"|>}<tool_call|>";
    const size_t first = (size_t)(strstr(gm, "}}") - gm) + 2, marked = first + strlen("<tool_call|>");
    const size_t gm_n = sizeof gm - 1, last = gm_n - strlen("<tool_call|>");
    const size_t gm_ok[][3] = {
        {first, first, 1}, {marked, marked + strlen("<|tool_call>") - 1, 1}, {last, last, 2}, {gm_n, gm_n, 2}};
    CHECK(prefixes_parse_only_when_complete(sl_tc_parse_gemma4, gm, gm_ok, 4));
}

/* ---- Gemma 4 -------------------------------------------------------------------- */

TEST(gemma4_calls_as_the_template_renders_them) {
    /* google-gemma-4-31B-it.jinja, for get_weather {city: Paris, days: 3} and get_time {tz: CET}: keys sorted,
     * bare; strings between <|"|> tokens */
    CHECK(GM("<|tool_call>call:get_weather{city:<|\"|>Paris<|\"|>,days:3}<tool_call|>"
             "<|tool_call>call:get_time{tz:<|\"|>CET<|\"|>}<tool_call|>",
             "", "[[\"get_weather\", {\"city\": \"Paris\", \"days\": 3}], [\"get_time\", {\"tz\": \"CET\"}]]"));
    /* scalars: the template writes booleans as true/false and a null as None */
    CHECK(GM("<|tool_call>call:get_weather{big:1e+20,city:<|\"|>Paris<|\"|>,days:3,no:false,none:None,ok:true,"
             "small:1e-05,temp:-1.5}<tool_call|>",
             "",
             "[[\"get_weather\", {\"big\": 1e20, \"city\": \"Paris\", \"days\": 3, \"no\": false, \"none\": null, "
             "\"ok\": true, \"small\": 1e-05, \"temp\": -1.5}]]"));
    /* strings raw (quotes, newline, tab, backslash, non-ASCII, a control character); nested values with bare
     * keys; empty ones; a call without arguments */
    CHECK(GM("<|tool_call>call:f.x-y{e:{},el:[],es:<|\"|><|\"|>,l:[<|\"|>a<|\"|>,1,true,None,{k:<|\"|>v<|\"|>},"
             "[2.5]],o:{a:<|\"|>é<|\"|>,b:{c:[1,<|\"|>x's<|\"|>]},n:None,t:true},s:<|\"|>it's \"q\"\n"
             "line\ttab \\ back é 日本 😀\x01<|\"|>}<tool_call|><|tool_call>call:noargs{}<tool_call|>",
             "",
             "[[\"f.x-y\", {\"e\": {}, \"el\": [], \"es\": \"\", \"l\": [\"a\", 1, true, null, {\"k\": \"v\"}, [2.5]], "
             "\"o\": {\"a\": \"é\", \"b\": {\"c\": [1, \"x's\"]}, \"n\": null, \"t\": true}, "
             "\"s\": \"it's \\\"q\\\"\\nline\\ttab \\\\ back é 日本 😀\\u0001\"}], [\"noargs\", {}]]"));
    CHECK(GM("<|tool_call>call:f{d:{x:<|\"|>it's \"q\"\n😀<|\"|>},f:0.1,i:-7,n:[[1,[2]],{a:[true,None]}]}<tool_call|>",
             "", "[[\"f\", {\"d\": {\"x\": \"it's \\\"q\\\"\\n😀\"}, \"f\": 0.1, \"i\": -7, "
                 "\"n\": [[1, [2]], {\"a\": [true, null]}]}]]"));
}

TEST(gemma4_forms) {
    /* content before; whitespace between calls; the end marker missing where the answer ends */
    CHECK(GM("Checking.\n<|tool_call>call:a{x:1}<tool_call|>\n <|tool_call>call:b{y:<|\"|>}<|\"|>}", "Checking.\n",
             "[[\"a\", {\"x\": 1}], [\"b\", {\"y\": \"}\"}]]"));
    /* keys quoted as format_argument's default does; a bare key with a space; other spellings of the words;
     * whitespace around tokens; a trailing comma */
    CHECK(GM("<|tool_call>call:f{<|\"|>a b<|\"|>:1, my key : {<|\"|>k<|\"|>:<|\"|>v<|\"|>}, t:True, u:False, "
             "v:null, w:[ 1 , -2.5e3 , ], }<tool_call|>",
             "", "[[\"f\", {\"a b\": 1, \"my key\": {\"k\": \"v\"}, \"t\": true, \"u\": false, \"v\": null, "
                 "\"w\": [1, -2500.0]}]]"));
    /* a string may hold what would end a call */
    CHECK(GM("<|tool_call>call:f{s:<|\"|>}<tool_call|>{<|\"|>}<tool_call|>", "",
             "[[\"f\", {\"s\": \"}<tool_call|>{\"}]]"));
    /* text after the last closed call is not content */
    CHECK(GM("<|tool_call>call:f{}<tool_call|> done", "", "[[\"f\", {}]]"));
}

TEST(gemma4_malformed_answers_fail) {
    static const char *bad[] = {
        "no call here",
        "call:f{a:1}",
        "<|tool_call>",
        "<|tool_call>f{a:1}<tool_call|>",            /* no call: */
        "<|tool_call>call:f<tool_call|>",            /* no arguments */
        "<|tool_call>call:{a:1}<tool_call|>",        /* no name */
        "<|tool_call>call:f{a:<|\"|>x}<tool_call|>", /* unterminated string */
        "<|tool_call>call:f{a:Paris}<tool_call|>",   /* a bare string */
        "<|tool_call>call:f{a:1<tool_call|>",        /* brackets */
        "<|tool_call>call:f{a:[1,2}<tool_call|>",
        "<|tool_call>call:f{a:{b:1}<tool_call|>",
        "<|tool_call>call:f{a:1}x<tool_call|>",      /* garbage after a call */
        "<|tool_call>call:f{a:1} junk",
        "<|tool_call>call:f{a:1}<tool_call|><|tool_call>call:g{<tool_call|>",
        "<|tool_call>call:f{a:1 b:2}<tool_call|>",   /* separators */
        "<|tool_call>call:f{a:1,,b:2}<tool_call|>",
        "<|tool_call>call:f{,a:1}<tool_call|>",
        "<|tool_call>call:f{a 1}<tool_call|>",
        "<|tool_call>call:f{:1}<tool_call|>",
        "<|tool_call>call:f{a:}<tool_call|>",
        "<|tool_call>call:f{<|\"|>a:1}<tool_call|>",
        "<|tool_call>call:f{a:[1 2]}<tool_call|>",
        "<|tool_call>call:f{a:1_000}<tool_call|>",   /* numbers */
        "<|tool_call>call:f{a:1e999}<tool_call|>",
        "<|tool_call>call:f{a:nan}<tool_call|>",
        "<|tool_call>call:f{a:-}<tool_call|>",
        "<|tool_call>call:f{a:<|\"|>\xff<|\"|>}<tool_call|>", /* not UTF-8 */
        "<|tool_call>call:f{\xff:1}<tool_call|>",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK_MSG(GM_BAD(bad[i]), "case %zu", i);
    static const char nul1[] = "<|tool_call>call:f{a:<|\"|>x\0y<|\"|>}<tool_call|>";
    static const char nul2[] = "<|tool_call>call:f{a\0b:1}<tool_call|>";
    static const char nul3[] = "<|tool_call>call:f\0{a:1}<tool_call|>";
    CHECK(parses_n(sl_tc_parse_gemma4, nul1, sizeof nul1 - 1, NULL, NULL));
    CHECK(parses_n(sl_tc_parse_gemma4, nul2, sizeof nul2 - 1, NULL, NULL));
    CHECK(parses_n(sl_tc_parse_gemma4, nul3, sizeof nul3 - 1, NULL, NULL));
}

/* ---- random mutations ------------------------------------------------------------- */

static uint64_t rng_next(uint64_t *x) {
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    return *x;
}

/* What a parser gives on any bytes: false, or calls each with a non-empty name and a JSON object's text as
 * arguments, and the content inside the answer. */
static bool well_formed(parse_fn p, const char *s, size_t n) {
    json_t *calls = json_array();
    size_t cl = (size_t)-1;
    bool good = true;
    if (p(calls, s, n, &cl)) {
        good = cl <= n && json_array_size(calls) > 0;
        size_t i;
        const json_t *c;
        json_array_foreach(calls, i, c) {
            const json_t *name = json_object_get(c, "name"), *args = json_object_get(c, "arguments");
            json_t *o = json_loads(json_string_value(args) ? json_string_value(args) : "", 0, NULL);
            good = good && json_string_length(name) > 0 && json_is_object(o);
            json_decref(o);
        }
    }
    json_decref(calls);
    return good;
}

TEST(random_mutations_never_crash) {
    static const char *seeds[] = {
        "Hi.<|tool_call_start|>[f(s='it\\'s \\u00e9', l=[1, (2,), {'k': None}], d={\"a\": [true, -1.5e3]}), "
        "g(t='''x''')]<|tool_call_end|>",
        "Hi.<|tool_call>call:f{s:<|\"|>x<|\"|>,l:[1,{k:None}],d:{<|\"|>a<|\"|>:[true,-1.5e3]}}<tool_call|>"
        "<|tool_call>call:g{}<tool_call|>",
    };
    /* bytes that matter to the grammars, and some that never should */
    static const char alphabet[] = "[](){}'\",:=\\_-.eE0x1 \nuU<|\"|>\0\xff\xc3";
    uint64_t x = 0x9E3779B97F4A7C15u;
    char buf[256];
    int parsed = 0;
    for (int it = 0; it < 40000; it++) {
        const char *seed = seeds[it % 2];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        for (int m = (int)(rng_next(&x) % 4) + 1; m > 0; m--) {
            const size_t at = rng_next(&x) % n;
            const char c = alphabet[rng_next(&x) % (sizeof alphabet - 1)];
            switch (rng_next(&x) % 3) {
            case 0: buf[at] = c; break;                                            /* replace */
            case 1: memmove(buf + at, buf + at + 1, n - at - 1), n--; break;       /* delete */
            default:
                if (n < sizeof buf) memmove(buf + at + 1, buf + at, n - at), buf[at] = c, n++; /* insert */
            }
        }
        char *copy = malloc(n ? n : 1); /* exactly n bytes: ASan sees any read past the end */
        memcpy(copy, buf, n);
        for (int k = 0; k < 2; k++) {
            parse_fn p = k ? sl_tc_parse_gemma4 : sl_tc_parse_pythonic;
            CHECK_MSG(well_formed(p, copy, n), "mutation %d: '%.*s'", it, (int)n, copy);
            json_t *calls = json_array();
            size_t cl;
            parsed += p(calls, copy, n, &cl);
            json_decref(calls);
        }
        free(copy);
    }
    printf("   %d of 80000 mutations parsed\n", parsed);
    CHECK(parsed > 100);
}

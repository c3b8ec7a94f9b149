/*
 * test_template.c — the chat-template engine against Hugging Face.
 *
 * golden_chat_templates iterates over ../shared/golden/chat-templates/: every
 * *.jinja there is rendered for every case of cases.json with the variables
 * transformers passes (fixed clock for strftime_now); a case with an
 * expected/<template>.<case>.txt must match it byte for byte, a case without
 * one must fail with an error naming line and column. The other cases check
 * single semantics against values Python/jinja2 is known to produce, the
 * limits, the error messages, the CLI, and replay the fuzz corpus.
 */
#include "harness.h"

#include "core/alloc.h"
#include "template/template.h"

#include <dirent.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FUZZ_TEMPLATE_NO_MAIN
#include "../fuzz/fuzz_template.c"

/* ---- helpers ---------------------------------------------------------------- */

static sl_template_limits test_limits(void) {
    sl_template_limits lim;
    sl_template_limits_default(&lim);
    lim.fixed_clock = true;
    lim.now = 1741964966; /* 2025-03-14T15:09:26Z */
    return lim;
}

/* Render src with vars given as JSON text; returns the status; *out owned by caller. */
static int render_json(const char *src, const char *vars_json, char **out) {
    sl_template *t = NULL;
    json_error_t e;
    json_t *vars = vars_json ? json_loads(vars_json, 0, &e) : json_object();
    *out = NULL;
    if (!vars) return -1;
    sl_template_limits lim = test_limits();
    int st = sl_template_compile(src, strlen(src), &t);
    if (st == 0) st = sl_template_render(t, vars, &lim, out, NULL);
    sl_template_destroy(t);
    json_decref(vars);
    return st;
}

#define CHECK_RENDER(src, vars, want)                                                  \
    do {                                                                               \
        char *o_;                                                                      \
        int st__ = render_json((src), (vars), &o_);                                    \
        CHECK_MSG(st__ == 0, "render of %s failed: %s", #src, sl_last_error());        \
        bool ok__ = strcmp(o_, (want)) == 0;                                           \
        if (!ok__) sl_test_fail(__FILE__, __LINE__, "%s: \"%s\" != \"%s\"", #src, o_, (want)); \
        sl_free(o_);                                                                   \
        if (!ok__) return;                                                             \
    } while (0)

#define CHECK_RENDER_ERR(src, vars, needle)                                            \
    do {                                                                               \
        char *o_;                                                                      \
        int st__ = render_json((src), (vars), &o_);                                    \
        sl_free(o_);                                                                   \
        CHECK_MSG(st__ != 0, "%s rendered but should fail", #src);                     \
        CHECK_MSG(strstr(sl_last_error(), (needle)) != NULL, "%s: error \"%s\" lacks \"%s\"", #src, \
                  sl_last_error(), (needle));                                          \
    } while (0)

/* ---- golden: every template × every case ------------------------------------- */

static const char *const CASES[] = {"a_user", "b_system_user", "c_multiturn", "d_nonascii", "e_no_genprompt"};

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

TEST(golden_chat_templates) {
    const char *dir = sl_test_shared("golden/chat-templates");
    CHECK_MSG(dir != NULL, "../shared/golden/chat-templates is missing");
    char path[1024];
    snprintf(path, sizeof path, "%s/cases.json", dir);
    json_error_t jerr;
    json_t *cases = json_load_file(path, 0, &jerr);
    CHECK_MSG(cases != NULL, "cannot load %s: %s", path, jerr.text);
    json_t *tcases = json_object_get(cases, "cases"), *templates = json_object_get(cases, "templates");
    CHECK(json_is_object(tcases) && json_is_object(templates));

    DIR *d = opendir(dir);
    CHECK(d != NULL);
    char *names[512];
    size_t n_names = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n_names < 512) {
        size_t k = strlen(de->d_name);
        if (k > 6 && !strcmp(de->d_name + k - 6, ".jinja")) names[n_names++] = strndup(de->d_name, k - 6);
    }
    closedir(d);
    qsort(names, n_names, sizeof names[0], cmp_names);

    sl_template_limits lim = test_limits();
    int n_ok = 0, n_bad = 0, n_expected = 0, n_errors = 0;
    for (size_t ti = 0; ti < n_names; ti++) {
        const char *name = names[ti];
        snprintf(path, sizeof path, "%s/%s.jinja", dir, name);
        size_t src_len;
        char *src = sl_test_read_file(path, &src_len);
        json_t *tinfo = json_object_get(templates, name);
        const char *bos = json_string_value(json_object_get(tinfo, "bos_token"));
        const char *eos = json_string_value(json_object_get(tinfo, "eos_token"));
        sl_template *t = NULL;
        int cst = src ? (int)sl_template_compile(src, src_len, &t) : -1;
        char cerr[1024];
        snprintf(cerr, sizeof cerr, "%s", cst ? sl_last_error() : "");
        for (size_t ci = 0; ci < sizeof CASES / sizeof CASES[0]; ci++) {
            json_t *c = json_object_get(tcases, CASES[ci]);
            snprintf(path, sizeof path, "%s/expected/%s.%s.txt", dir, name, CASES[ci]);
            size_t want_len = 0;
            char *want = sl_test_read_file(path, &want_len);
            json_t *vars = json_pack("{s:O, s:O, s:s, s:s, s:n, s:n}", "messages", json_object_get(c, "messages"),
                                     "add_generation_prompt", json_object_get(c, "add_generation_prompt"),
                                     "bos_token", bos ? bos : "", "eos_token", eos ? eos : "", "tools", "documents");
            char *out = NULL;
            size_t out_len = 0;
            int st = cst ? cst : (int)sl_template_render(t, vars, &lim, &out, &out_len);
            const char *err = cst ? cerr : st ? sl_last_error() : "";
            if (want) {
                n_expected++;
                if (st) {
                    n_bad++;
                    sl_test_fail(__FILE__, __LINE__, "%s.%s: render failed: %s", name, CASES[ci], err);
                } else if (out_len != want_len || memcmp(out, want, want_len) != 0) {
                    size_t k = 0;
                    while (k < out_len && k < want_len && out[k] == want[k]) k++;
                    n_bad++;
                    sl_test_fail(__FILE__, __LINE__, "%s.%s: differs at byte %zu (got %zu bytes, want %zu):\n"
                                 "  got:  \"%.60s\"\n  want: \"%.60s\"", name, CASES[ci], k, out_len, want_len,
                                 out + (k > 20 ? k - 20 : 0), want + (k > 20 ? k - 20 : 0));
                } else {
                    n_ok++;
                }
            } else {
                n_errors++;
                if (st == 0) {
                    n_bad++;
                    sl_test_fail(__FILE__, __LINE__, "%s.%s: has no expected render but rendered %zu bytes", name,
                                 CASES[ci], out_len);
                } else if (!strstr(err, "line ") || !strstr(err, "column ")) {
                    n_bad++;
                    sl_test_fail(__FILE__, __LINE__, "%s.%s: error without line/column: %s", name, CASES[ci], err);
                } else {
                    n_ok++;
                }
            }
            sl_free(out);
            free(want);
            json_decref(vars);
        }
        sl_template_destroy(t);
        free(src);
        free(names[ti]);
    }
    json_decref(cases);
    printf("   chat templates: %zu templates, %d renders expected, %d errors expected, %d ok, %d bad\n", n_names,
           n_expected, n_errors, n_ok, n_bad);
    CHECK(n_names >= 60);
    CHECK_EQ_INT(n_bad, 0);
}

/* ---- single semantics, expected values from Python's jinja2 3.1 ----------------
 * Each row was rendered by jinja2 configured as transformers configures it
 * (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
 * tojson = json.dumps(ensure_ascii=False), the fixed clock) with VARS. */

static const char VARS[] =
    "{\"s\": \"Hello World\", \"l\": [3, 1, 2], \"d\": {\"b\": 2, \"a\": 1}, \"n\": null, \"u\": \"Grüße, 你好 👋\", "
    "\"m\": [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"U\"}], \"f\": 2.5, \"x\": 3}";

static const struct {
    const char *src, *want;
} JINJA2_ROWS[] = {
    {"{{ 1.0 }}|{{ 1e20 }}|{{ 1e-5 }}|{{ 0.1 + 0.2 }}|{{ 1/3 }}|{{ 10/2 }}|{{ -0.0 }}|{{ 1e16 }}|{{ 123456789.123456789 }}",
     "1.0|1e+20|1e-05|0.30000000000000004|0.3333333333333333|5.0|-0.0|1e+16|123456789.12345679"},
    {"{{ none }}|{{ true }}|{{ [1, 'a', none, true] }}|{{ {'a': 1, 'b': [1, 2]} }}|{{ (1,) }}|{{ () }}|{{ [\"it's\"] }}|{{ ['a\\nb', '\\x01é'] }}",
     "None|True|[1, 'a', None, True]|{'a': 1, 'b': [1, 2]}|(1,)|()|[\"it's\"]|['a\\nb', '\\x01é']"},
    {"{{ d }}|{{ m[0] }}|{{ undefined_var }}|{{ d.items() }}|{{ d.keys() }}|{{ range(3) }}|{{ range(1, 10, 3) }}",
     "{'b': 2, 'a': 1}|{'role': 'system', 'content': 'S'}||dict_items([('b', 2), ('a', 1)])|dict_keys(['b', 'a'])|range(0, 3)|range(1, 10, 3)"},
    {"{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7.5 % 2 }} {{ -7.5 // 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 3 // 2.0 }} {{ -3 % 2.5 }}",
     "3 -4 1 2 1.5 -4.0 1024 0.5 1.0 2.0"},
    {"{{ 1 + 2 * 3 - 4 / 2 }} {{ 2 * 3 ~ 4 }} {{ -2 ** 2 }} {{ 2 ** 3 ** 2 }} {{ not 1 == 2 }} {{ -x|abs }}",
     "5.0 64 4 64 True 3"},
    {"{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ 1 == true }} {{ (1,) == [1] }} {{ 'a' in 'cat' }} {{ 'z' not in 'cat' }} {{ 2 in l }} {{ 'a' in d }}",
     "True False True True False True True True True"},
    {"{{ n or 'dflt' }} {{ x and s }} {{ [] and 1 }} {{ 1 if n else 2 }} {{ (1 if n) }}| {{ s ~ x ~ none }} {{ 'ab' * 3 }} {{ l * 2 }} {{ [1] + [2] }}",
     "dflt Hello World [] 2 | Hello World3None ababab [3, 1, 2, 3, 1, 2] [1, 2]"},
    {"{{ 0x1f }} {{ 0o17 }} {{ 0b101 }} {{ 1_000 }} {{ 1.5e3 }} {{ 'a' 'b' \"c\" }} {{ '\\x41\\u00e9\\U0001F600\\101' }} {{ '\\q' }} {{ l.0 }}",
     "31 15 5 1000 1500.0 abc Aé😀A \\q 3"},
    {"{{ s[0] }} {{ s[-1] }} {{ s[1:4] }} {{ s[::-1] }} {{ s[::2] }} {{ s[-3:] }} {{ l[1:] }} {{ l[::-1] }} {{ u[0:4] }} {{ u[-1] }} {{ u|length }} {{ l[10] }}| {{ range(10)[1::3] }}",
     "H d ell dlroW olleH HloWrd rld [1, 2] [2, 1, 3] Grüß 👋 11 | range(1, 10, 3)"},
    {"{{ d.a }} {{ d['b'] }} {{ d.zz }}| {{ m[1].content }} {{ m[1]['role'] }} {{ d.get('zz', 5) }} {{ d.get('a') }} {{ d.get('q') }}",
     "1 2 | U user 5 1 None"},
    {"{{ s.upper() }} {{ s.lower() }} {{ 'hello world'.title() }} {{ 'hELLO wORLD'.capitalize() }} {{ u.upper() }} {{ \"they're bill's\".title() }}",
     "HELLO WORLD hello world Hello World Hello world GRÜSSE, 你好 👋 They'Re Bill'S"},
    {"{{ s.split() }} {{ s.split('o') }} {{ s.split('o', 1) }} {{ s.rsplit('o', 1) }} {{ '  a  b  '.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a b c'.rsplit(None, 1) }}",
     "['Hello', 'World'] ['Hell', ' W', 'rld'] ['Hell', ' World'] ['Hello W', 'rld'] ['a', 'b'] ['a', 'b', '', 'c'] ['a b', 'c']"},
    {"[{{ '  x '.strip() }}][{{ 'xxaxx'.strip('x') }}][{{ '  x '.lstrip() }}][{{ '  x '.rstrip() }}][{{ '\\u3000x\\xa0'.strip() }}]",
     "[x][a][x ][  x][x]"},
    {"{{ s.startswith('He') }} {{ s.endswith(('x', 'ld')) }} {{ s.replace('o', '0') }} {{ s.replace('o', '0', 1) }} {{ s.find('o') }} {{ s.rfind('o') }} {{ s.count('o') }} {{ u.find('你') }}",
     "True True Hell0 W0rld Hell0 World 4 7 2 7"},
    {"{{ '{} and {}'.format(1, 'b') }} {{ '{0}{1}{0}'.format('a', 'b') }} {{ '{x}!'.format(x=5) }} {{ '{:>5}|'.format('a') }} {{ '{:05d}'.format(42) }} {{ '{:.2f}'.format(3.14159) }} {{ '{:,}'.format(1234567) }}",
     "1 and b aba 5!     a| 00042 3.14 1,234,567"},
    {"{{ '-'.join(['a', 'b']) }} {{ 'a\\nb\\r\\nc'.splitlines() }} {{ 'abc'.partition('b') }} {{ '42'.zfill(5) }} {{ 'ab'.ljust(4, '*') }}| {{ 'ab'.isalpha() }} {{ '12'.isdigit() }}",
     "a-b ['a', 'b', 'c'] ('a', 'b', 'c') 00042 ab**| True True"},
    {"{{ '%s-%d' % ('a', 3) }} {{ '%5s|' % 'ab' }} {{ '%.2f' % 3.14159 }} {{ '%(k)s' % {'k': 1} }} {{ '%d%%' % 50 }}",
     "a-3    ab| 3.14 1 50%"},
    {"{{ l|sort }} {{ l|sort(reverse=true) }} {{ ['b', 'A', 'c']|sort }} {{ ['b', 'A', 'c']|sort(case_sensitive=true) }} {{ [{'a': 2}, {'a': 1}]|sort(attribute='a') }}",
     "[1, 2, 3] [3, 2, 1] ['A', 'b', 'c'] ['A', 'b', 'c'] [{'a': 1}, {'a': 2}]"},
    {"{{ d|dictsort }} {{ d|dictsort(by='value', reverse=true) }} {{ {'B': 1, 'a': 2}|dictsort }} {{ l|reverse|list }} {{ s|reverse }} {{ l|first }} {{ l|last }} {{ l|min }} {{ l|max }} {{ l|sum }}",
     "[('a', 1), ('b', 2)] [('b', 2), ('a', 1)] [('a', 2), ('B', 1)] [2, 1, 3] dlroW olleH 3 2 1 3 6"},
    {"{{ [1, 2, 2, 3, 1]|unique|list }} {{ ['a', 'A', 'b']|unique|list }} {{ l|join(', ') }} {{ l|join }} {{ s|length }} {{ d|length }} {{ l|count }} {{ undefined_var|length }}",
     "[1, 2, 3] ['a', 'b'] 3, 1, 2 312 11 2 3 0"},
    {"{{ s|upper }} {{ s|lower }} {{ 'hello-world foo(bar)'|title }} {{ s|capitalize }} {{ s|replace('l', 'L') }} [{{ '  pad  '|trim }}] {{ 'xxpadxx'|trim('x') }} {{ s|wordcount }}",
     "HELLO WORLD hello world Hello-World Foo(Bar) Hello world HeLLo WorLd [pad] pad 2"},
    {"{{ x|string }} {{ l|string }} {{ '3'|int }} {{ '3.7'|int }} {{ 'abc'|int }} {{ 'abc'|int(7) }} {{ 3.9|int }} {{ '0x1A'|int(base=16) }} {{ '2.5'|float }} {{ 'x'|float }} {{ -3|abs }}",
     "3 [3, 1, 2] 3 3 0 7 3 26 2.5 0.0 3"},
    {"{{ 2.567|round(2) }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 2.567|round(1, 'floor') }} {{ 2.1|round(0, 'ceil') }} {{ 1234|round(-2) }} {{ 5|round }}",
     "2.57 2.0 4.0 2.67 2.5 3.0 1200 5"},
    {"{{ d|items|list }} {{ n|default('z') }} {{ undefined_var|default('z') }} [{{ ''|default('z') }}] {{ ''|default('z', true) }} {{ undefined_var|d('q') }} {{ l|batch(2)|list }} {{ l|batch(2, 'x')|list }}",
     "[('b', 2), ('a', 1)] None z [] z q [[3, 1], [2]] [[3, 1], [2, 'x']]"},
    {"{{ m|map(attribute='role')|list }} {{ m|map(attribute='nope', default='D')|list }} {{ m|selectattr('role', 'equalto', 'user')|list|length }} {{ m|rejectattr('role', 'eq', 'user')|map(attribute='role')|join }} {{ [1, 2, 3, 4]|select('odd')|list }} {{ ['a', 'b']|map('upper')|list }} {{ [0, 1, '', 'x']|select|list }}",
     "['system', 'user'] ['D', 'D'] 1 system [1, 3] ['A', 'B'] [1, 'x']"},
    {"{{ l|tojson }} {{ d|tojson }} {{ m|tojson }} {{ d|tojson(sort_keys=true) }} {{ u|tojson }} {{ u|tojson(ensure_ascii=true) }} {{ '\\u0001\\t\"\\\\'|tojson }} {{ [1.0, 1e20, 1e-7, none, true]|tojson }} {{ {1: 'x', true: 'y'}|tojson }}",
     "[3, 1, 2] {\"b\": 2, \"a\": 1} [{\"role\": \"system\", \"content\": \"S\"}, {\"role\": \"user\", \"content\": \"U\"}] {\"a\": 1, \"b\": 2} \"Grüße, 你好 👋\" \"Gr\\u00fc\\u00dfe, \\u4f60\\u597d \\ud83d\\udc4b\" \"\\u0001\\t\\\"\\\\\" [1.0, 1e+20, 1e-07, null, true] {\"1\": \"y\"}"},
    {"{{ d|tojson(indent=2) }}|{{ {'a': [], 'b': {}, 'c': [1, [2]]}|tojson(indent=2) }}|{{ {'a': 1}|tojson(separators=(',', ':')) }}|{{ {'a': [1]}|tojson(indent='--') }}",
     "{\n  \"b\": 2,\n  \"a\": 1\n}|{\n  \"a\": [],\n  \"b\": {},\n  \"c\": [\n    1,\n    [\n      2\n    ]\n  ]\n}|{\"a\":1}|{\n--\"a\": [\n----1\n--]\n}"},
    {"[{{ 'a\\nb\\nc'|indent }}][{{ 'a\\nb\\n\\nc'|indent(2, true) }}][{{ 'a\\n\\nb'|indent(2, blank=true) }}][{{ 'a\\nb\\n'|indent(3) }}][{{ 'x'|center(5) }}]",
     "[a\n    b\n    c][  a\n  b\n\n  c][a\n  \n  b][a\n   b\n][  x  ]"},
    {"{{ x is odd }} {{ x is even }} {{ x is divisibleby 3 }} {{ x is number }} {{ f is integer }} {{ f is float }} {{ true is boolean }} {{ s is string }} {{ d is mapping }} {{ l is iterable }} {{ s is sequence }}",
     "True False True True False True True True True True True"},
    {"{{ undefined_var is defined }} {{ undefined_var is undefined }} {{ n is none }} {{ true is true }} {{ n is false }} {{ x is eq 3 }} {{ x is gt 2 }} {{ x is in [1, 3] }} {{ s is upper }} {{ 'ab' is lower }} {{ range is callable }} {{ x is not none }}",
     "False True True True False True True True False True True True"},
    {"{{ (l|select) is sequence }} {{ d.items() is sequence }} {{ range(3) is sequence }} {{ (l|select) is iterable }}",
     "False False True True"},
    {"{% set g = l|select %}{{ g|join }}|{{ g|join }}|{% set g = l|select %}{{ g|first }}|{{ g|list }}",
     "312||3|[1, 2]"},
    {"{% if m|selectattr('role', 'eq', 'tool') %}truthy{% endif %}|{{ range(3)|length }}|{{ d.items()|length }}|{{ d.items()|list }}",
     "truthy|3|2|[('b', 2), ('a', 1)]"},
    {"a\n  {% if true %}\n  b\n  {% endif %}\nc",
     "a\n  b\nc"},
    {"a\n  {%+ if true %}\n  b\n  {% endif +%}\nc",
     "a\n    b\n\nc"},
    {"a  {%- if true -%}  b  {%- endif -%}  c",
     "abc"},
    {"  {{ x }}  \n{{- x -}}\n  {{ x }}",
     "  333"},
    {"{# comment #}\nx\n  {# c2 #}  \ny",
     "x\n  \ny"},
    {"{% raw %}{{ x }}{% endraw %}\n{%- raw -%}  {% if %} {%- endraw %}|",
     "{{ x }}{% if %}|"},
    {"line1\n\n{% for i in l %}\n{{ i }}\n{% endfor %}\nend\n",
     "line1\n\n3\n1\n2\nend"},
    {"x\r\ny\r\n{% if true %}\r\nz\r\n{% endif %}\r\n",
     "x\ny\nz\n"},
    {"a　{%- if true %}b{% endif -%}　c",
     "abc"},
    {"{{ 'a' }}\n{% if true %}\n{{ 'b' }}\n{% endif %}\n{{ 'c' }}",
     "a\nb\nc"},
    {"{% for i in m %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}",
     "1021TrueFalse2|2110FalseTrue2|"},
    {"{% for i in l %}{{ loop.previtem is defined }}{{ loop.nextitem }} {{ loop.cycle('a', 'b') }}|{% endfor %}",
     "False1 a|True2 b|True a|"},
    {"{% for i in [] %}x{% else %}empty{% endfor %}{% for i in l if i > 1 %}{{ i }}{{ loop.length }}{% endfor %}",
     "empty3222"},
    {"{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}{% for ch in 'ab' %}{{ ch }}.{% endfor %}",
     "b=2;a=1;baa.b."},
    {"{% for i in l %}{% if i == 1 %}{% break %}{% endif %}{{ i }}{% endfor %}|{% for i in l %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% endfor %}",
     "3|32"},
    {"{% for i in range(3) %}{% for j in range(2) %}{{ loop.index }}{% endfor %}{{ loop.index }}|{% endfor %}",
     "121|122|123|"},
    {"{% for i in undefined_var %}x{% else %}E{% endfor %}{% for i in l %}{{ loop.changed(i > 1) }}{% endfor %}",
     "ETrueTrueTrue"},
    {"{% for item in [{'c': [{'c': []}, {'c': [{'c': []}]}]}] recursive %}<{{ loop.depth }}{{ loop(item.c) }}>{% endfor %}",
     "<1<2><2<3>>>"},
    {"{% set a = 1 %}{% for i in l %}{% set a = i %}{{ a }}{% endfor %}{{ a }}",
     "3121"},
    {"{% set ns = namespace(a=1) %}{% for i in l %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }}",
     "7"},
    {"{% if true %}{% set a = 5 %}{% endif %}{{ a }}|{% set a, b = 1, 2 %}{{ a }}{{ b }}|{% with q = 5 %}{{ q }}{% endwith %}{{ q }}",
     "5|12|5"},
    {"{% set x %}inner {{ x }}{% endset %}[{{ x }}]|{% set y | upper %}inner{% endset %}[{{ y }}]",
     "[inner ]|[INNER]"},
    {"{% set ns = namespace() %}{% set ns.y %}blk{% endset %}{{ ns.y }}|{% set ns2 = namespace({'k': 2}, z=3) %}{{ ns2.k }}{{ ns2.z }}",
     "blk|23"},
    {"{% macro m(a, b=2) %}[{{ a }}|{{ b }}]{% endmacro %}{{ m(1) }}{{ m(1, 3) }}{{ m(b=5, a=0) }}{{ m() }}",
     "[1|2][1|3][0|5][|2]"},
    {"{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k=4) }}",
     "1(2, 3){'k': 4}"},
    {"{% macro rec(n) %}{{ n }}{% if n > 0 %}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(4) }}",
     "43210"},
    {"{% set g = 'G' %}{% macro m() %}{{ g }}{% endmacro %}{% set g = 'H' %}{{ m() }}|{% macro m2() -%}\n  x\n{%- endmacro %}[{{ m2() }}]",
     "H|[x]"},
    {"{% filter upper %}abc {{ x }}{% endfilter %}|{% filter trim|upper %}  abc  {% endfilter %}|{% generation %}gen{% endgeneration %}",
     "ABC 3|ABC|gen"},
    {"{% if x == 5 %}a{% elif x == 3 %}b{% else %}c{% endif %}{% if x: %}colon{% endif %}{%if x%}tight{%endif%}",
     "bcolontight"},
    {"{{ strftime_now('%Y-%m-%d %b %B %d') }}",
     "2025-03-14 Mar March 14"},
    {"{% macro w(t) %}<{{ t }}>{{ caller() }}</{{ t }}>{% endmacro %}{% call w('b') %}inner {{ x }}{% endcall %}|{% macro w2() %}{% for i in l %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(v) w2() %}[{{ v }}]{% endcall %}",
     "<b>inner 3</b>|[3][1][2]"},
    {"{{ 'Use'|safe + ' <a> & \"b\"' }}|{{ 'x' + ('<y>'|safe) }}|{{ ('<y>'|safe) ~ '<z>' }}|{{ '<q>'|e }}",
     "Use &lt;a&gt; &amp; &#34;b&#34;|x<y>|<y><z>|&lt;q&gt;"},
};

TEST(jinja2_semantics) {
    int bad = 0;
    for (size_t i = 0; i < sizeof JINJA2_ROWS / sizeof JINJA2_ROWS[0]; i++) {
        char *out = NULL;
        int st = render_json(JINJA2_ROWS[i].src, VARS, &out);
        if (st != 0) {
            sl_test_fail(__FILE__, __LINE__, "row %zu: %s\n  failed: %s", i, JINJA2_ROWS[i].src, sl_last_error());
            bad++;
        } else if (strcmp(out, JINJA2_ROWS[i].want) != 0) {
            sl_test_fail(__FILE__, __LINE__, "row %zu: %s\n  got:  \"%s\"\n  want: \"%s\"", i, JINJA2_ROWS[i].src, out,
                         JINJA2_ROWS[i].want);
            bad++;
        }
        sl_free(out);
    }
    CHECK_EQ_INT(bad, 0);
}

/* ---- errors: a clear message with line and column -------------------------------- */

TEST(errors_name_line_and_column) {
    CHECK_RENDER_ERR("{{ raise_exception('System role not supported') }}", NULL,
                     "raised an exception at line 1, column 4: System role not supported");
    CHECK_RENDER_ERR("a\n  {{ foo.bar }}", NULL, "line 2, column 6: 'foo' is undefined");
    CHECK_RENDER_ERR("{{ {'a': 1}.b.c }}", NULL, "'dict object' has no attribute 'b'");
    CHECK_RENDER_ERR("{{ none.x.y }}", NULL, "'None' has no attribute 'x'");
    CHECK_RENDER_ERR("{{ [1][5].x }}", NULL, "'list object' has no element 5");
    CHECK_RENDER_ERR("{{ 'a' + 1 }}", NULL, "can only concatenate str (not \"int\") to str");
    CHECK_RENDER_ERR("{{ 1 + 'a' }}", NULL, "unsupported operand type(s) for +: 'int' and 'str'");
    CHECK_RENDER_ERR("{{ nope + 1 }}", NULL, "'nope' is undefined");
    CHECK_RENDER_ERR("{{ 1 < 'a' }}", NULL, "'<' not supported between instances of 'int' and 'str'");
    CHECK_RENDER_ERR("{{ 1 / 0 }}", NULL, "division by zero");
    CHECK_RENDER_ERR("{% for x in none %}{% endfor %}", NULL, "'NoneType' object is not iterable");
    CHECK_RENDER_ERR("{{ none|length }}", NULL, "object of type 'NoneType' has no len()");
    CHECK_RENDER_ERR("{{ [1]|map('string')|length }}", NULL, "object of type 'generator' has no len()");
    CHECK_RENDER_ERR("{{ [1]|select|tojson }}", NULL, "Object of type generator is not JSON serializable");
    CHECK_RENDER_ERR("{{ nope|tojson }}", NULL, "Object of type Undefined is not JSON serializable");
    CHECK_RENDER_ERR("{{ range(200000)|length }}", NULL, "MAX_RANGE (100000)");
    /* unknown filters and tests inside {% if %} fail only when they run, as in jinja2 */
    CHECK_RENDER("{% if false %}{{ x|nosuchfilter }}{{ x is nosuchtest }}{% endif %}ok", NULL, "ok");
    CHECK_RENDER_ERR("{% if true %}{{ x|nosuchfilter }}{% endif %}", NULL, "line 1, column 19: no filter named 'nosuchfilter'");
    CHECK_RENDER_ERR("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", NULL, "macro 'm' takes not more than 1 argument(s)");
    CHECK_RENDER_ERR("{% set t = 5 %}{% set t.x = 1 %}", NULL, "non-namespace object 't'");
    CHECK_RENDER_ERR("{{ '%d' % 'x' }}", NULL, "a number is required");
    /* the immutable sandbox: mutating methods are blocked */
    CHECK_RENDER_ERR("{% set l = [1] %}{% set _ = l.append(2) %}", NULL, "attribute 'append' of 'list' object is unsafe");
    CHECK_RENDER_ERR("{{ [1].pop() }}", NULL, "attribute 'pop' of 'list' object is unsafe");
    CHECK_RENDER_ERR("{{ {}.update({'a': 1}) }}", NULL, "attribute 'update' of 'dict' object is unsafe");
}

TEST(syntax_errors_name_line_and_column) {
    sl_template *t = NULL;
    static const struct {
        const char *src, *needle;
    } rows[] = {
        {"{% for x in y %}", "line 1, column 17: unexpected end of template: expected 'endfor' or 'else'"},
        {"ok\n{% if x %}\n{% endfor %}", "line 3, column 4: unknown tag 'endfor'"},
        {"{% endif %}", "unexpected 'endif'"},
        {"{{ x }", "line 1, column 6: unexpected '}'"},
        {"{{ x ", "'}}' missing"},
        {"{% foo %}", "unknown tag 'foo'"},
        {"{{ 'abc }}", "unterminated string"},
        {"{{ (1 }}", "line 1, column 7"},
        {"{{ [1, 2 }}", "unexpected '}'"},
        {"{{ x|nosuchfilter }}", "line 1, column 6: no filter named 'nosuchfilter'"},
        {"{{ x is nosuchtest }}", "no test named 'nosuchtest'"},
        {"{% break %}", "'break' outside of a for loop"},
        {"{% include 'x.jinja' %}", "cannot load other templates"},
        {"{# open comment", "missing end of comment"},
        {"{% raw %} no end", "missing {% endraw %}"},
        {"{{ 1 is defined is defined }}", "cannot chain multiple tests"},
        {"\xff\xfe", "not valid UTF-8"},
        {"{{ '\\ud800' }}", "lone surrogate"},
        {"{{ 99999999999999999999 }}", "integer literal too large"},
        {"{% macro m(a=1, b) %}{% endmacro %}", "non-default argument follows default argument"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        sl_status st = sl_template_compile(rows[i].src, strlen(rows[i].src), &t);
        CHECK_MSG(st == SL_ERR_FORMAT, "%s compiled (status %d)", rows[i].src, (int)st);
        CHECK_MSG(t == NULL, "failed compile returned a template");
        CHECK_MSG(strstr(sl_last_error(), rows[i].needle) != NULL, "%s: error \"%s\" lacks \"%s\"", rows[i].src,
                  sl_last_error(), rows[i].needle);
        CHECK_MSG(strstr(sl_last_error(), "syntax error") != NULL, "%s: \"%s\"", rows[i].src, sl_last_error());
    }
    /* deep nesting stops at the parser's bound instead of overflowing the stack */
    char deep[4096];
    size_t k = 0;
    k += (size_t)snprintf(deep + k, sizeof deep - k, "{{ ");
    for (int i = 0; i < 1000; i++) deep[k++] = '-';
    k += (size_t)snprintf(deep + k, sizeof deep - k, "1 }}");
    CHECK(sl_template_compile(deep, k, &t) == SL_ERR_FORMAT);
    CHECK(strstr(sl_last_error(), "nested too deeply") != NULL);
}

/* ---- sandbox limits -------------------------------------------------------------- */

static int render_lim(const char *src, const sl_template_limits *lim) {
    sl_template *t = NULL;
    char *out = NULL;
    int st = sl_template_compile(src, strlen(src), &t);
    if (st == 0) st = sl_template_render(t, NULL, lim, &out, NULL);
    sl_free(out);
    sl_template_destroy(t);
    return st;
}

TEST(limits_stop_runaway_templates) {
    sl_template_limits lim = test_limits();
    lim.max_steps = 100000;
    lim.max_output = 1 << 20;
    lim.max_memory = 64u << 20;
    /* endless work */
    CHECK_EQ_INT(render_lim("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", &lim),
                 SL_ERR_RANGE);
    CHECK_MSG(strstr(sl_last_error(), "limit exceeded") != NULL, "%s", sl_last_error());
    /* unbounded recursion */
    CHECK_EQ_INT(render_lim("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", &lim), SL_ERR_RANGE);
    CHECK_MSG(strstr(sl_last_error(), "recursion limit") != NULL, "%s", sl_last_error());
    /* huge strings: doubling, repetition, output */
    CHECK_EQ_INT(render_lim("{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                            &lim), SL_ERR_RANGE);
    CHECK_MSG(strstr(sl_last_error(), "output limit") != NULL, "%s", sl_last_error());
    CHECK_EQ_INT(render_lim("{{ 'a' * 100000000 }}", &lim), SL_ERR_RANGE);
    CHECK_EQ_INT(render_lim("{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}", &lim), SL_ERR_RANGE);
    /* self-referencing namespace: printing and tojson stop at a depth bound */
    CHECK_EQ_INT(render_lim("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", &lim), SL_ERR_RANGE);
    CHECK_EQ_INT(render_lim("{% set ns = namespace(x=1) %}{% for i in range(300) %}{% set ns.x = [ns.x] %}{% endfor %}"
                            "{{ ns.x|tojson }}", &lim), SL_ERR_RANGE);
    /* memory */
    lim.max_steps = 10000000;
    CHECK_EQ_INT(render_lim("{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + [i] %}"
                            "{% endfor %}", &lim), SL_ERR_RANGE);
    CHECK_MSG(strstr(sl_last_error(), "memory limit") != NULL, "%s", sl_last_error());
    /* a long elif chain is walked without recursion */
    char *big = malloc(200000);
    CHECK(big != NULL);
    size_t k = (size_t)snprintf(big, 200000, "{%% if false %%}");
    for (int i = 0; i < 5000; i++) k += (size_t)snprintf(big + k, 200000 - k, "{%% elif false %%}");
    snprintf(big + k, 200000 - k, "{%% else %%}end{%% endif %%}");
    char *out = NULL;
    int st = render_json(big, NULL, &out);
    free(big);
    CHECK_MSG(st == 0, "%s", sl_last_error());
    CHECK_STR(out, "end");
    sl_free(out);
}

/* ---- API --------------------------------------------------------------------------- */

TEST(chat_render_api) {
    json_error_t e;
    json_t *msgs = json_loads("[{\"role\": \"user\", \"content\": \"Hi\"}]", 0, &e);
    CHECK(msgs != NULL);
    char *out = NULL;
    size_t n = 0;
    /* the ChatML fallback */
    CHECK_OK(sl_chat_render(NULL, msgs, true, "<s>", "</s>", NULL, NULL, NULL, &out, &n));
    CHECK_STR(out, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    CHECK_EQ_INT(n, strlen(out));
    sl_free(out);
    CHECK_OK(sl_chat_render("{{ bos_token }}{{ messages[0].content }}{{ tools is none }}{{ documents is none }}"
                            "{{ add_generation_prompt }}{{ eos_token }}", msgs, false, "<s>", "</s>", NULL, NULL, NULL, &out, &n));
    CHECK_STR(out, "<s>HiTrueTrueFalse</s>");
    sl_free(out);
    /* vLLM's documents: the template's variable */
    json_t *docs = json_pack("[{s:s,s:s}]", "title", "T", "text", "Body");
    CHECK_OK(sl_chat_render("{% for d in documents %}[{{ d.title }}: {{ d.text }}]{% endfor %}", msgs, false, "", "", NULL,
                            docs, NULL, &out, &n));
    CHECK_STR(out, "[T: Body]");
    sl_free(out);
    json_decref(docs);
    /* apply_chat_template's keyword arguments (chat_template_kwargs): set beside the others, which they
     * cannot replace */
    json_t *kw = json_pack("{s:b,s:s}", "enable_thinking", 0, "who", "x");
    CHECK_OK(sl_chat_render("{{ enable_thinking }}/{{ who }}/{{ messages[0].content }}", msgs, true, "", "", NULL, NULL, kw,
                            &out, &n));
    CHECK_STR(out, "False/x/Hi");
    sl_free(out);
    json_object_set_new(kw, "messages", json_array());
    CHECK(sl_chat_render("{{ who }}", msgs, true, "", "", NULL, NULL, kw, &out, &n) == SL_ERR_INVALID);
    CHECK(out == NULL && strstr(sl_last_error(), "'messages' cannot be set") != NULL);
    json_decref(kw);
    CHECK(sl_chat_render("{{ raise_exception('no') }}", msgs, true, "", "", NULL, NULL, NULL, &out, &n) == SL_ERR_INVALID);
    CHECK(out == NULL);
    CHECK(strstr(sl_last_error(), "no") != NULL);
    json_decref(msgs);

    /* a compiled template renders again (and concurrently) without state */
    sl_template *t = NULL;
    const char *src = "{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}";
    CHECK_OK(sl_template_compile(src, strlen(src), &t));
    for (int i = 0; i < 3; i++) {
        CHECK_OK(sl_template_render(t, NULL, NULL, &out, &n));
        CHECK_STR(out, "3");
        sl_free(out);
    }
    sl_template_destroy(t);
    sl_template_destroy(NULL);
    /* an embedded NUL in the source is data, and lengths are honoured */
    CHECK_OK(sl_template_compile("a\0b{{ 1 }}", 10, &t));
    CHECK_OK(sl_template_render(t, NULL, NULL, &out, &n));
    CHECK_EQ_INT(n, 4);
    CHECK(memcmp(out, "a\0b1", 4) == 0);
    sl_free(out);
    sl_template_destroy(t);
}

TEST(render_frees_everything_on_allocation_failure) {
    /* every allocation in turn fails; each failure must come back as an error, never a crash */
    const char *src = "{% for m in messages %}{{ m.role|upper }}: {{ m.content|tojson }}{% endfor %}";
    json_t *vars = json_loads("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}", 0, NULL);
    CHECK(vars != NULL);
    int failures = 0;
    for (int64_t k = 0; k < 200; k++) {
        sl_template *t = NULL;
        char *out = NULL;
        sl_alloc_fail_after(k);
        int st = sl_template_compile(src, strlen(src), &t);
        if (st == 0) st = sl_template_render(t, vars, NULL, &out, NULL);
        sl_alloc_fail_after(-1);
        if (st != 0) failures++;
        else CHECK_STR(out, "USER: \"Hi\"");
        sl_free(out);
        sl_template_destroy(t);
    }
    json_decref(vars);
    CHECK(failures > 0);
}

/* ---- the CLI ----------------------------------------------------------------------- */

TEST(cli_template_command) {
    const char *dir = sl_test_shared("golden/chat-templates");
    CHECK(dir != NULL);
    char tpl[1024], msgs[] = "/tmp/sl_test_template_XXXXXX";
    int fd = mkstemp(msgs);
    CHECK(fd >= 0);
    const char *body = "{\"messages\": [{\"role\": \"system\", \"content\": \"You are a helpful assistant.\"}, "
                       "{\"role\": \"user\", \"content\": \"What is the capital of France?\"}]}";
    CHECK(write(fd, body, strlen(body)) == (ssize_t)strlen(body));
    close(fd);
    snprintf(tpl, sizeof tpl, "%s/Qwen-Qwen2.5-7B-Instruct.jinja", dir);
    char want_path[1024];
    snprintf(want_path, sizeof want_path, "%s/expected/Qwen-Qwen2.5-7B-Instruct.b_system_user.txt", dir);
    char *want = sl_test_read_file(want_path, NULL);
    CHECK(want != NULL);
    char *argv[] = {(char *)sl_test_bin(), "template", "--template", tpl, "--messages", msgs, NULL};
    char *out = NULL, *err = NULL;
    int rc = sl_test_run(argv, &out, &err, 30);
    CHECK_MSG(rc == 0, "exit %d: %s", rc, err ? err : "");
    CHECK_STR(out, want); /* exactly, no newline added */
    free(out);
    free(err);
    free(want);

    /* a template that raises: message on stderr, exit status 1 */
    snprintf(tpl, sizeof tpl, "%s/google-gemma-2-2b-it.jinja", dir);
    char *argv2[] = {(char *)sl_test_bin(), "template", "--template", tpl, "--messages", msgs, "--bos", "<bos>", NULL};
    rc = sl_test_run(argv2, &out, &err, 30);
    CHECK_EQ_INT(rc, 1);
    CHECK_STR(out, "");
    CHECK_MSG(strstr(err, "shardlm template: ") == err && strstr(err, "System role not supported"), "%s", err);
    free(out);
    free(err);

    /* the fallback template of a GGUF without one, BOS/EOS from its vocabulary */
    const char *model = sl_test_shared("models/stories260K.gguf");
    if (model) {
        char *argv3[] = {(char *)sl_test_bin(), "template", "-m", (char *)model, "--messages", msgs,
                         "--no-generation-prompt", NULL};
        rc = sl_test_run(argv3, &out, &err, 30);
        CHECK_MSG(rc == 0, "exit %d: %s", rc, err ? err : "");
        CHECK_STR(out, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                       "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n");
        free(out);
        free(err);
    }
    unlink(msgs);
}

/* ---- the fuzz corpus, replayed ----------------------------------------------------- */

static long rendered_ok(const uint8_t *data, size_t len) { return fuzz_template_one(data, len) == 0; }

TEST(fuzz_corpus_replay) {
    long rendered = 0;
    const int n = sl_test_each_file("tests/fuzz/corpus/template", rendered_ok, &rendered);
    printf("   corpus: %d inputs, %ld rendered, %ld failed cleanly\n", n, rendered, n - rendered);
    CHECK(n >= 10);
    CHECK(rendered > 0 && rendered < n);
}

/*
 * toolcall.c — tool-call syntaxes: detection, streaming hold-back, parsing (see toolcall.h).
 */
#include "toolcall.h"

#include "core/status.h"
#include "core/strbuf.h"
#include "server/textscan.h"
#include "server/toolcall_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

typedef struct fmt_info {
    const char *name;
    const char *begin[2]; /* where a call begins (the first that occurs) */
    bool json_start;      /* a call may also be the whole answer, opening with '{' or '[' */
    /* every marker of the syntax, NULL-terminated: those that are control tokens are shown */
    const char *markers[10];
} fmt_info;

#define DS_CALLS "<｜tool▁calls▁begin｜>"
static const fmt_info FMT[SL_TOOLS_COUNT] = {
    [SL_TOOLS_JSON] = {"json", {"<tool_call>"}, true, {"<tool_call>", "</tool_call>"}},
    [SL_TOOLS_HERMES] = {"hermes", {"<tool_call>"}, false, {"<tool_call>", "</tool_call>"}},
    [SL_TOOLS_LLAMA3] = {"llama3_json", {"<|python_tag|>"}, true, {"<|python_tag|>"}},
    [SL_TOOLS_MISTRAL] = {"mistral", {"[TOOL_CALLS]"}, false, {"[TOOL_CALLS]"}},
    [SL_TOOLS_MISTRAL_ARGS] = {"mistral_args", {"[TOOL_CALLS]"}, false, {"[TOOL_CALLS]", "[ARGS]", "[CALL_ID]"}},
    [SL_TOOLS_GRANITE] = {"granite", {"<|tool_call|>"}, false, {"<|tool_call|>"}},
    [SL_TOOLS_FIREFUNCTION] = {"firefunction", {"functools"}, false, {"functools"}},
    [SL_TOOLS_FUNCTIONARY] = {"functionary", {"<function="}, false, {"<function=", "</function>"}},
    [SL_TOOLS_XML] = {"qwen3_xml", {"<tool_call>"}, false, {"<tool_call>", "</tool_call>"}},
    [SL_TOOLS_GLM] = {"glm", {"<tool_call>"}, false, {"<tool_call>", "</tool_call>", "<arg_key>", "</arg_key>",
                                                      "<arg_value>", "</arg_value>"}},
    [SL_TOOLS_DEEPSEEK] = {"deepseek", {DS_CALLS}, false,
                           {DS_CALLS, "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
                            "<｜tool▁sep｜>"}},
    [SL_TOOLS_KIMI] = {"kimi_k2", {"<|tool_calls_section_begin|>"}, false,
                       {"<|tool_calls_section_begin|>", "<|tool_calls_section_end|>", "<|tool_call_begin|>",
                        "<|tool_call_end|>", "<|tool_call_argument_begin|>"}},
    [SL_TOOLS_DSML] = {"deepseek_dsml", {"<｜DSML｜function_calls>", "<｜DSML｜tool_calls>"}, false,
                       {"<｜DSML｜function_calls>", "</｜DSML｜function_calls>", "<｜DSML｜tool_calls>",
                        "</｜DSML｜tool_calls>", "<｜DSML｜invoke", "</｜DSML｜invoke>", "<｜DSML｜parameter",
                        "</｜DSML｜parameter>", "｜DSML｜"}},
    [SL_TOOLS_MINIMAX_M2] = {"minimax_m2", {"<minimax:tool_call>"}, false,
                             {"<minimax:tool_call>", "</minimax:tool_call>"}},
    [SL_TOOLS_MINICPM] = {"minicpm", {"<function name="}, false, {"<function name=", "</function>"}},
    [SL_TOOLS_HY3] = {"hunyuan3", {"<tool_calls:opensource>", "<tool_call:opensource>"}, false,
                      {"<tool_calls:opensource>", "</tool_calls:opensource>", "<tool_call:opensource>",
                       "</tool_call:opensource>", "<tool_sep:opensource>", "<arg_key:opensource>",
                       "</arg_key:opensource>", "<arg_value:opensource>", "</arg_value:opensource>"}},
    [SL_TOOLS_SOLAR] = {"solar_open", {"<|tool_calls|>", "<|tool_call:begin|>"}, false,
                        {"<|tool_calls|>", "<|tool_call:begin|>", "<|tool_call:name|>", "<|tool_call:args|>",
                         "<|tool_call:end|>", "<|calls|>"}},
    [SL_TOOLS_APERTUS] = {"apertus", {"<|tools_prefix|>"}, false, {"<|tools_prefix|>", "<|tools_suffix|>"}},
    [SL_TOOLS_COMMAND_R7B] = {"command_r7b", {"<|START_ACTION|>"}, false, {"<|START_ACTION|>", "<|END_ACTION|>"}},
    [SL_TOOLS_NEMOTRON] = {"nemotron_v2", {"<TOOLCALL>"}, false, {"<TOOLCALL>", "</TOOLCALL>"}},
    [SL_TOOLS_GIGACHAT] = {"gigachat", {"<|message_sep|>\n\nfunction call<|role_sep|>", "<|function_call|>"}, false,
                           {"<|message_sep|>", "<|role_sep|>", "<|function_call|>"}},
    [SL_TOOLS_TAGGED_JSON] = {"tool_calls_tag", {"<tool_calls>"}, false, {"<tool_calls>", "</tool_calls>"}},
    [SL_TOOLS_LFM2] = {"lfm2", {"<|tool_call_start|>"}, false, {"<|tool_call_start|>", "<|tool_call_end|>"}},
    [SL_TOOLS_GEMMA4] = {"gemma4", {"<|tool_call>"}, false, {"<|tool_call>", "<tool_call|>", "<|\"|>"}},
};

sl_tool_format sl_tool_format_detect(const char *t) {
    if (!t) return SL_TOOLS_JSON;
    if (strstr(t, "<｜tool▁sep｜>")) return SL_TOOLS_DEEPSEEK;
    if (strstr(t, "｜DSML｜")) return SL_TOOLS_DSML;
    if (strstr(t, "<|tool_call_argument_begin|>")) return SL_TOOLS_KIMI;
    if (strstr(t, "<parameter=")) return SL_TOOLS_XML;
    if (strstr(t, "<minimax:tool_call>")) return SL_TOOLS_MINIMAX_M2;
    if (strstr(t, ":opensource") && strstr(t, "<tool_call")) return SL_TOOLS_HY3; /* tags built with .format */
    if (strstr(t, "<arg_key>")) return SL_TOOLS_GLM;
    if (strstr(t, "[ARGS]")) return SL_TOOLS_MISTRAL_ARGS;
    if (strstr(t, "[TOOL_CALLS]")) return SL_TOOLS_MISTRAL;
    if (strstr(t, "<|tool_call|>")) return SL_TOOLS_GRANITE;
    if (strstr(t, "<|tool_call:begin|>")) return SL_TOOLS_SOLAR;
    if (strstr(t, "<|tools_prefix|>")) return SL_TOOLS_APERTUS;
    if (strstr(t, "<|START_ACTION|>")) return SL_TOOLS_COMMAND_R7B;
    if (strstr(t, "<TOOLCALL>")) return SL_TOOLS_NEMOTRON;
    if (strstr(t, "<|tool_call>")) return SL_TOOLS_GEMMA4;
    if (strstr(t, "<|tool_call_start|>") || strstr(t, "<|tool_list_start|>") || strstr(t, "List of tools: ["))
        return SL_TOOLS_LFM2; /* LFM2.5-Instruct lists its tools without the markers; answers have them */
    if (strstr(t, "<|function_call|>") || (strstr(t, "<|role_sep|>") && strstr(t, "function call")))
        return SL_TOOLS_GIGACHAT;
    if (strstr(t, "functools")) return SL_TOOLS_FIREFUNCTION;
    if (strstr(t, "<function name=")) return SL_TOOLS_MINICPM;
    if (strstr(t, "<function=")) return SL_TOOLS_FUNCTIONARY;
    if (strstr(t, "<tool_call>")) return SL_TOOLS_HERMES;
    if (strstr(t, "<tool_calls>")) return SL_TOOLS_TAGGED_JSON;
    if (strstr(t, "<|python_tag|>") || (strstr(t, "\"parameters\"") && strstr(t, "<|start_header_id|>")))
        return SL_TOOLS_LLAMA3;
    return SL_TOOLS_JSON;
}

const char *sl_tool_format_name(sl_tool_format f) { return FMT[f].name; }
const char *const *sl_tool_format_markers(sl_tool_format f) { return FMT[f].markers; }

/* ---- text helpers ---------------------------------------------------------- */


size_t sl_tc_skip_ws(const char *s, size_t n, size_t i) {
    while (i < n && sl_scan_ws(s[i])) i++;
    return i;
}

bool sl_tc_at(const char *s, size_t n, size_t i, const char *m) {
    const size_t k = strlen(m);
    return i <= n && n - i >= k && !memcmp(s + i, m, k);
}

/* s[i, n) starts with m: step over it. */
bool sl_tc_eat(const char *s, size_t n, size_t *i, const char *m) {
    if (!sl_tc_at(s, n, *i, m)) return false;
    *i += strlen(m);
    return true;
}

size_t sl_tool_content_safe(sl_tool_format f, const char *text, size_t n) {
    const fmt_info *fi = &FMT[f];
    if (fi->json_start) {
        const size_t p = sl_tc_skip_ws(text, n, 0);
        if (p == n || text[p] == '{' || (f == SL_TOOLS_JSON && text[p] == '[')) return 0;
    }
    size_t safe = n;
    for (int k = 0; k < 2 && fi->begin[k]; k++) {
        size_t at = sl_scan_find(text, n, 0, fi->begin[k]);
        if (at == n) at = n - sl_scan_partial(text, 0, n, fi->begin[k]); /* an end that begins the marker */
        if (at < safe) safe = at;
    }
    /* whitespace waits for what follows it: before a call it is not content (sl_tool_parse drops it) */
    while (safe > 0 && sl_scan_ws(text[safe - 1])) safe--;
    return safe;
}

/* ---- calls ------------------------------------------------------------------ */

/* One JSON object or array at s[*i, n); *i steps past it. */
json_t *sl_tc_json_at(const char *s, size_t n, size_t *i) {
    if (*i >= n || (s[*i] != '{' && s[*i] != '[')) return NULL;
    json_error_t e;
    json_t *v = json_loadb(s + *i, n - *i, JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &e);
    if (v) *i += (size_t)e.position;
    return v;
}

/* A value as compact JSON text. Numbers with a fraction or exponent come back from jansson as doubles,
 * dumped with 17 significant digits by default (0.1 as 0.10000000000000001); 15 digits give the short
 * form of every decimal a model writes with at most 15 digits, so each number takes them whenever they
 * read back as the same double. Chosen number by number (not for the whole object), so the text of
 * an object's first members does not depend on the members after them: streamed arguments
 * (toolcall_stream.c) are a start of the finished ones. */
static bool dump_value(sl_strbuf *b, const json_t *v) {
    if (json_is_object(v)) {
        bool ok = sl_strbuf_add(b, "{", 1);
        const char *k;
        const json_t *e;
        size_t i = 0;
        json_object_foreach((json_t *)v, k, e) {
            json_t *key = json_string(k);
            ok = ok && key && (i++ == 0 || sl_strbuf_add(b, ",", 1)) && dump_value(b, key) && sl_strbuf_add(b, ":", 1) &&
                 dump_value(b, e);
            json_decref(key);
        }
        return ok && sl_strbuf_add(b, "}", 1);
    }
    if (json_is_array(v)) {
        bool ok = sl_strbuf_add(b, "[", 1);
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e) ok = ok && (i == 0 || sl_strbuf_add(b, ",", 1)) && dump_value(b, e);
        return ok && sl_strbuf_add(b, "]", 1);
    }
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (t && json_is_real(v) && strtod(t, NULL) != json_real_value(v)) {
        free(t);
        t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(17));
    }
    const bool ok = t && sl_strbuf_add(b, t, strlen(t));
    free(t);
    return ok;
}

static char *dump_args(const json_t *args) {
    sl_strbuf b = {0};
    if (dump_value(&b, args)) return b.p;
    free(b.p);
    return NULL;
}

bool sl_tc_add_call(json_t *calls, const char *name, size_t name_len, const json_t *args) {
    while (name_len && sl_scan_ws(name[0])) name++, name_len--;
    while (name_len && sl_scan_ws(name[name_len - 1])) name_len--;
    if (!name_len || memchr(name, '\0', name_len)) return false;
    char *text = NULL;
    if (!args || json_is_null(args)) {
        text = strdup("{}");
    } else if (json_is_object(args)) {
        text = dump_args(args);
    } else if (json_is_string(args)) { /* some models write the arguments as a JSON string */
        json_t *o = json_loadb(json_string_value(args), json_string_length(args), 0, NULL);
        const bool obj = json_is_object(o);
        json_decref(o);
        if (!obj) return false;
        text = strndup(json_string_value(args), json_string_length(args));
    } else {
        return false;
    }
    if (!text) return false;
    json_t *c = json_object();
    json_object_set_new(c, "name", json_stringn(name, name_len));
    json_object_set_new(c, "arguments", json_string(text));
    free(text);
    return json_array_append_new(calls, c) == 0 && json_is_string(json_object_get(c, "name"));
}

/* {"name": ..., "arguments"/"parameters": ...} */
bool sl_tc_add_call_object(json_t *calls, const json_t *o) {
    const json_t *name = json_object_get(o, "name");
    if (!json_is_object(o) || !json_is_string(name)) return false;
    const json_t *args = json_object_get(o, "arguments");
    if (!args) args = json_object_get(o, "parameters");
    return sl_tc_add_call(calls, json_string_value(name), json_string_length(name), args);
}

/* A call object, or an array of them (not empty). */
bool sl_tc_add_calls_value(json_t *calls, const json_t *v) {
    if (json_is_object(v)) return sl_tc_add_call_object(calls, v);
    if (!json_is_array(v) || json_array_size(v) == 0) return false;
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e) if (!sl_tc_add_call_object(calls, e)) return false;
    return true;
}

/* The JSON value at s[*i, n) as calls. */
bool sl_tc_calls_json_at(json_t *calls, const char *s, size_t n, size_t *i) {
    json_t *v = sl_tc_json_at(s, n, i);
    const bool ok = v && sl_tc_add_calls_value(calls, v);
    json_decref(v);
    return ok;
}

/* The call `name` whose arguments are the JSON object at s[*i, n); *i steps past it. */
bool sl_tc_args_call_at(json_t *calls, const char *name, size_t nl, const char *s, size_t n, size_t *i) {
    json_t *v = sl_tc_json_at(s, n, i);
    const bool ok = json_is_object(v) && sl_tc_add_call(calls, name, nl, v);
    json_decref(v);
    return ok;
}

/* The schema type of parameter key of tool name ("" when not declared). */
const char *sl_tc_param_type(const json_t *tools, const char *name, size_t nl, const char *key, size_t kl) {
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t) {
        const json_t *fn = json_object_get(t, "function"), *fname = json_object_get(fn, "name");
        if (!json_is_string(fname) || json_string_length(fname) != nl || memcmp(json_string_value(fname), name, nl))
            continue;
        const json_t *ty = json_object_get(json_object_getn(json_object_get(json_object_get(fn, "parameters"),
                                                                            "properties"), key, kl), "type");
        return json_is_string(ty) ? json_string_value(ty) : "";
    }
    return "";
}

/* XML / GLM: argument key = value, typed by the tool's schema; false for a key or value that is not
 * UTF-8 text without NUL bytes, or a key already set. */
bool sl_tc_set_value(json_t *args, const char *type, bool python, const char *k, size_t kl, const char *v,
                     size_t vl) {
    if (!kl || memchr(k, '\0', kl) || memchr(v, '\0', vl)) return false;
    char *key = strndup(k, kl);
    if (!key) return false;
    if (json_object_get(args, key)) { /* a parameter given twice: not a call (which value would it be?) */
        free(key);
        return false;
    }
    json_t *val = NULL;
    if (type && *type && strcmp(type, "string") != 0) {
        val = json_loadb(v, vl, JSON_DECODE_ANY, NULL);
        if (!val && python) val = sl_tc_py_literal(v, vl);
    }
    if (!val) val = json_stringn(v, vl);
    const bool ok = val && json_object_set_new(args, key, val) == 0;
    free(key);
    return ok;
}

bool sl_tc_set_arg(json_t *args, const json_t *tools, const char *name, size_t nl, const char *k, size_t kl,
                   const char *v, size_t vl) {
    return sl_tc_set_value(args, sl_tc_param_type(tools, name, nl, k, kl), false, k, kl, v, vl);
}

/* ---- one parser per syntax; each returns false when the text holds no complete call ---- */

/* <tool_call>{...}</tool_call> blocks (HERMES, and the first try of JSON). */
static bool parse_hermes(json_t *calls, const char *s, size_t n, size_t *content) {
    size_t i = sl_scan_find(s, n, 0, "<tool_call>");
    if (i == n) return false;
    *content = i;
    while (sl_tc_eat(s, n, &i, "<tool_call>")) {
        i = sl_tc_skip_ws(s, n, i);
        if (!sl_tc_calls_json_at(calls, s, n, &i)) return false;
        i = sl_tc_skip_ws(s, n, i);
        if (!sl_tc_eat(s, n, &i, "</tool_call>") && i < n) return false;
        i = sl_tc_skip_ws(s, n, i);
    }
    return true;
}

static bool parse_json(json_t *calls, const char *s, size_t n, size_t *content) {
    if (parse_hermes(calls, s, n, content)) return true;
    json_array_clear(calls);
    size_t i = sl_tc_skip_ws(s, n, 0);
    *content = 0;
    return sl_tc_calls_json_at(calls, s, n, &i) && sl_tc_skip_ws(s, n, i) == n;
}

static bool parse_llama3(json_t *calls, const char *s, size_t n, size_t *content) {
    size_t i = sl_scan_find(s, n, 0, "<|python_tag|>");
    *content = i == n ? 0 : i;
    i = i == n ? 0 : i + strlen("<|python_tag|>");
    for (;;) {
        i = sl_tc_skip_ws(s, n, i);
        json_t *v = sl_tc_json_at(s, n, &i);
        const bool ok = json_is_object(v) && sl_tc_add_call_object(calls, v);
        json_decref(v);
        if (!ok) return false;
        i = sl_tc_skip_ws(s, n, i);
        if (i == n) return true;
        if (s[i] != ';') return false;
        i++;
    }
}

size_t sl_tc_find_begin(sl_tool_format f, const char *s, size_t n, size_t *mlen) {
    size_t best = n;
    *mlen = 0;
    for (int k = 0; k < 2 && FMT[f].begin[k]; k++) {
        const size_t at = sl_scan_find(s, n, 0, FMT[f].begin[k]);
        if (at < best) best = at, *mlen = strlen(FMT[f].begin[k]);
    }
    return best;
}

/* A begin marker, then one JSON value of calls (MISTRAL, GRANITE, FIREFUNCTION, NEMOTRON, GIGACHAT). */
static bool parse_marked_json(json_t *calls, sl_tool_format f, const char *s, size_t n, size_t *content) {
    size_t ml, i = sl_tc_find_begin(f, s, n, &ml);
    if (i == n) return false;
    *content = i;
    i = sl_tc_skip_ws(s, n, i + ml);
    return sl_tc_calls_json_at(calls, s, n, &i);
}

/* <tool_calls> then a JSON array of calls (Apriel), or call objects one after another (MiniMax-M1), then
 * </tool_calls>; the block may repeat. */
static bool parse_tagged_json(json_t *calls, const char *s, size_t n, size_t *content) {
    size_t i = sl_scan_find(s, n, 0, "<tool_calls>");
    if (i == n) return false;
    *content = i;
    while (sl_tc_eat(s, n, &i, "<tool_calls>")) {
        i = sl_tc_skip_ws(s, n, i);
        if (i < n && s[i] == '[') {
            if (!sl_tc_calls_json_at(calls, s, n, &i)) return false;
        } else {
            do {
                json_t *v = sl_tc_json_at(s, n, &i);
                const bool ok = json_is_object(v) && sl_tc_add_call_object(calls, v);
                json_decref(v);
                if (!ok) return false;
                i = sl_tc_skip_ws(s, n, i);
            } while (i < n && s[i] == '{');
        }
        i = sl_tc_skip_ws(s, n, i);
        if (!sl_tc_eat(s, n, &i, "</tool_calls>") && i < n) return false;
        i = sl_tc_skip_ws(s, n, i);
    }
    return true;
}

/* A marker, then a JSON array (not empty) each of whose elements `elem` appends as one call. */
static bool parse_marked_array(json_t *calls, const char *marker, bool (*elem)(json_t *, const json_t *),
                               const char *s, size_t n, size_t *content) {
    size_t i = sl_scan_find(s, n, 0, marker);
    if (i == n) return false;
    *content = i;
    i = sl_tc_skip_ws(s, n, i + strlen(marker));
    json_t *v = sl_tc_json_at(s, n, &i);
    bool ok = json_is_array(v) && json_array_size(v) > 0;
    size_t k;
    const json_t *e;
    json_array_foreach(ok ? v : NULL, k, e) if (!(ok = elem(calls, e))) break;
    json_decref(v);
    return ok;
}

/* Apertus: <|tools_prefix|>[{"NAME": {...}}, ...]<|tools_suffix|>, each element one key, the function's name,
 * whose value is its arguments. */
static bool apertus_call(json_t *calls, const json_t *e) {
    void *it = json_is_object(e) && json_object_size(e) == 1 ? json_object_iter((json_t *)e) : NULL;
    const char *name = it ? json_object_iter_key(it) : NULL;
    return name && sl_tc_add_call(calls, name, strlen(name), json_object_get(e, name));
}

/* Command R7B: <|START_ACTION|>[{"tool_call_id": "0", "tool_name": NAME, "parameters": {...}}, ...]<|END_ACTION|> */
static bool command_r_call(json_t *calls, const json_t *e) {
    const json_t *name = json_object_get(e, "tool_name");
    return json_is_string(name) &&
           sl_tc_add_call(calls, json_string_value(name), json_string_length(name), json_object_get(e, "parameters"));
}

/* [<|tool_calls|>] then <|tool_call:begin|>ID<|tool_call:name|>NAME<|tool_call:args|>{...}<|tool_call:end|>,
 * repeated, [<|calls|>] */
static bool parse_solar(json_t *calls, const char *s, size_t n, size_t *content) {
    size_t ml, i = sl_tc_find_begin(SL_TOOLS_SOLAR, s, n, &ml);
    if (i == n) return false;
    *content = i;
    sl_tc_eat(s, n, &i, "<|tool_calls|>");
    i = sl_tc_skip_ws(s, n, i);
    if (!sl_tc_at(s, n, i, "<|tool_call:begin|>")) return false;
    while (sl_tc_eat(s, n, &i, "<|tool_call:begin|>")) {
        const size_t nm = sl_scan_find(s, n, i, "<|tool_call:name|>");
        const size_t ar = sl_scan_find(s, n, nm, "<|tool_call:args|>");
        if (ar == n) return false;
        const size_t name = nm + strlen("<|tool_call:name|>");
        size_t j = sl_tc_skip_ws(s, n, ar + strlen("<|tool_call:args|>"));
        if (!sl_tc_args_call_at(calls, s + name, ar - name, s, n, &j)) return false;
        j = sl_tc_skip_ws(s, n, j);
        if (!sl_tc_eat(s, n, &j, "<|tool_call:end|>") && j < n) return false;
        i = sl_tc_skip_ws(s, n, j);
    }
    return true;
}

/* [TOOL_CALLS]name[ARGS]{...} (an id may come as [CALL_ID]id before [ARGS]) */
static bool parse_mistral_args(json_t *calls, const char *s, size_t n, size_t *content) {
    size_t i = sl_scan_find(s, n, 0, "[TOOL_CALLS]");
    if (i == n) return false;
    *content = i;
    while (sl_tc_eat(s, n, &i, "[TOOL_CALLS]")) {
        const size_t args = sl_scan_find(s, n, i, "[ARGS]"), id = sl_scan_find(s, n, i, "[CALL_ID]");
        if (args == n) return false;
        const size_t name_end = id < args ? id : args;
        size_t j = args + strlen("[ARGS]");
        j = sl_tc_skip_ws(s, n, j);
        if (!sl_tc_args_call_at(calls, s + i, name_end - i, s, n, &j)) return false;
        i = sl_tc_skip_ws(s, n, j);
    }
    return true;
}

/* <function=name>{...}</function> */
static bool parse_functionary(json_t *calls, const char *s, size_t n, size_t *content) {
    size_t i = sl_scan_find(s, n, 0, "<function=");
    if (i == n) return false;
    *content = i;
    while (sl_tc_eat(s, n, &i, "<function=")) {
        const size_t gt = sl_scan_find(s, n, i, ">");
        if (gt == n) return false;
        size_t j = sl_tc_skip_ws(s, n, gt + 1);
        if (!sl_tc_args_call_at(calls, s + i, gt - i, s, n, &j)) return false;
        j = sl_tc_skip_ws(s, n, j);
        if (!sl_tc_eat(s, n, &j, "</function>") && j < n) return false;
        i = sl_tc_skip_ws(s, n, j);
    }
    return true;
}

/* <tool_call><function=name><parameter=k>v</parameter>...</function></tool_call> */
static bool parse_xml(json_t *calls, const json_t *tools, const char *s, size_t n, size_t *content) {
    size_t i = sl_scan_find(s, n, 0, "<tool_call>");
    if (i == n) return false;
    *content = i;
    while (sl_tc_eat(s, n, &i, "<tool_call>")) {
        i = sl_tc_skip_ws(s, n, i);
        if (!sl_tc_eat(s, n, &i, "<function=")) return false;
        const size_t gt = sl_scan_find(s, n, i, ">");
        if (gt == n) return false;
        const char *name = s + i;
        const size_t nl = gt - i;
        json_t *args = json_object();
        i = sl_tc_skip_ws(s, n, gt + 1);
        while (sl_tc_eat(s, n, &i, "<parameter=")) {
            const size_t kgt = sl_scan_find(s, n, i, ">"), end = sl_scan_find(s, n, kgt, "</parameter>");
            if (kgt == n || end == n) {
                json_decref(args);
                return false;
            }
            size_t v0 = kgt + 1, v1 = end; /* the value sits on its own lines */
            if (v0 < v1 && s[v0] == '\n') v0++;
            if (v1 > v0 && s[v1 - 1] == '\n') v1--;
            if (!sl_tc_set_arg(args, tools, name, nl, s + i, kgt - i, s + v0, v1 - v0)) {
                json_decref(args);
                return false;
            }
            i = sl_tc_skip_ws(s, n, end + strlen("</parameter>"));
        }
        const bool ok = sl_tc_eat(s, n, &i, "</function>") && sl_tc_add_call(calls, name, nl, args);
        json_decref(args);
        if (!ok) return false;
        i = sl_tc_skip_ws(s, n, i);
        if (!sl_tc_eat(s, n, &i, "</tool_call>") && i < n) return false;
        i = sl_tc_skip_ws(s, n, i);
    }
    return true;
}

/* Calls as a name and key / value pairs between tags: GLM's <tool_call>name<arg_key>k</arg_key>
 * <arg_value>v</arg_value>...</tool_call>, Hunyuan 3's the same with ":opensource" tags, a separator tag
 * after the name and a block around the calls. */
typedef struct kv_syntax {
    const char *block, *block_end; /* around the calls (NULL: none) */
    const char *call, *call_end, *name_end; /* name_end NULL: the name ends at a newline or the first key */
    const char *key, *key_end, *val, *val_end;
} kv_syntax;

static const kv_syntax KV_GLM = {NULL, NULL, "<tool_call>", "</tool_call>", NULL,
                                 "<arg_key>", "</arg_key>", "<arg_value>", "</arg_value>"};
static const kv_syntax KV_HY3 = {"<tool_calls:opensource>", "</tool_calls:opensource>", "<tool_call:opensource>",
                                 "</tool_call:opensource>", "<tool_sep:opensource>", "<arg_key:opensource>",
                                 "</arg_key:opensource>", "<arg_value:opensource>", "</arg_value:opensource>"};

static bool parse_kv(const kv_syntax *x, json_t *calls, const json_t *tools, const char *s, size_t n,
                     size_t *content) {
    size_t i = sl_scan_find(s, n, 0, x->call);
    const size_t blk = x->block ? sl_scan_find(s, n, 0, x->block) : n;
    if (blk < i) i = blk;
    if (i == n) return false;
    *content = i;
    if (x->block && sl_tc_eat(s, n, &i, x->block)) i = sl_tc_skip_ws(s, n, i);
    if (!sl_tc_at(s, n, i, x->call)) return false;
    while (sl_tc_eat(s, n, &i, x->call)) {
        const size_t close = sl_scan_find(s, n, i, x->call_end);
        size_t name_end = sl_scan_find(s, n, i, x->key), next = name_end;
        if (close < name_end) name_end = next = close;
        const size_t sep = x->name_end ? sl_scan_find(s, n, i, x->name_end) : n;
        if (sep < name_end) {
            name_end = sep;
            next = sep + strlen(x->name_end);
        } else {
            const size_t nl0 = sl_scan_find(s, n, i, "\n");
            if (nl0 < name_end && sl_tc_skip_ws(s, n, i) < nl0) name_end = next = nl0;
        }
        const char *name = s + i;
        const size_t nl = name_end - i;
        json_t *args = json_object();
        i = sl_tc_skip_ws(s, n, next);
        while (sl_tc_eat(s, n, &i, x->key)) {
            const size_t ke = sl_scan_find(s, n, i, x->key_end);
            size_t j = sl_tc_skip_ws(s, n, ke + strlen(x->key_end));
            if (ke == n || !sl_tc_eat(s, n, &j, x->val)) break;
            const size_t ve = sl_scan_find(s, n, j, x->val_end);
            if (ve == n) break;
            if (!sl_tc_set_arg(args, tools, name, nl, s + i, ke - i, s + j, ve - j)) {
                json_decref(args);
                return false;
            }
            i = sl_tc_skip_ws(s, n, ve + strlen(x->val_end));
        }
        const bool ok = (sl_tc_eat(s, n, &i, x->call_end) || i == n) && sl_tc_add_call(calls, name, nl, args);
        json_decref(args);
        if (!ok) return false;
        i = sl_tc_skip_ws(s, n, i);
    }
    if (x->block_end) sl_tc_eat(s, n, &i, x->block_end);
    return true;
}

/* Calls as XML elements with the name in an attribute: MiniMax-M2's <minimax:tool_call><invoke
 * name="NAME"><parameter name="K">V</parameter>...</invoke>...</minimax:tool_call>, DeepSeek's DSML (the
 * same tags with a "｜DSML｜" prefix and a string="true|false" attribute on each parameter, false for a
 * JSON value), MiniCPM 5's <function name="NAME"><param name="K">V</param></function> without a block. */
typedef struct invoke_syntax {
    const char *block[2], *block_end[2]; /* around the calls (NULL: none) */
    const char *invoke, *invoke_end, *param, *param_end;
    bool string_attr; /* DSML */
    bool python;      /* MiniCPM: values the schema does not type as strings are Python literals */
} invoke_syntax;

static const invoke_syntax INV_MINIMAX = {{"<minimax:tool_call>"}, {"</minimax:tool_call>"}, "<invoke name=",
                                          "</invoke>", "<parameter name=", "</parameter>", false, false};
static const invoke_syntax INV_DSML = {{"<｜DSML｜function_calls>", "<｜DSML｜tool_calls>"},
                                       {"</｜DSML｜function_calls>", "</｜DSML｜tool_calls>"},
                                       "<｜DSML｜invoke name=", "</｜DSML｜invoke>", "<｜DSML｜parameter name=",
                                       "</｜DSML｜parameter>", true, false};
static const invoke_syntax INV_MINICPM = {{NULL}, {NULL}, "<function name=", "</function>", "<param name=",
                                          "</param>", false, true};

/* A double-quoted attribute value at s[*i, n) (no escapes): its start and length; *i steps past it. */
static bool quoted_at(const char *s, size_t n, size_t *i, const char **v, size_t *vl) {
    if (*i >= n || s[*i] != '"') return false;
    const char *q = memchr(s + *i + 1, '"', n - *i - 1);
    if (!q) return false;
    *v = s + *i + 1;
    *vl = (size_t)(q - *v);
    *i = (size_t)(q - s) + 1;
    return true;
}

/* The rest of an opening tag after its name attribute: further attributes, then '>'. *string_val is
 * false when a string="false" attribute is among them. */
static bool tag_rest(const char *s, size_t n, size_t *i, bool *string_val) {
    const size_t gt = sl_scan_find(s, n, *i, ">");
    if (gt == n) return false;
    const size_t lt = sl_scan_find(s, gt, *i, "<");
    if (lt < gt) return false;
    *string_val = sl_scan_find(s, gt, *i, "string=\"false\"") == gt;
    *i = gt + 1;
    return true;
}

static bool parse_invoke(const invoke_syntax *x, json_t *calls, const json_t *tools, const char *s, size_t n,
                         size_t *content) {
    /* where calls begin: the block (its begin markers, which streaming holds back), else the first call */
    size_t i = x->block[0] ? n : sl_scan_find(s, n, 0, x->invoke);
    int b = -1;
    for (int k = 0; k < 2 && x->block[k]; k++) {
        const size_t at = sl_scan_find(s, n, 0, x->block[k]);
        if (at < i) i = at, b = k;
    }
    if (i == n) return false;
    *content = i;
    if (b >= 0) i = sl_tc_skip_ws(s, n, i + strlen(x->block[b]));
    if (!sl_tc_at(s, n, i, x->invoke)) return false;
    while (sl_tc_eat(s, n, &i, x->invoke)) {
        const char *name;
        size_t nl;
        bool unused;
        if (!quoted_at(s, n, &i, &name, &nl) || !tag_rest(s, n, &i, &unused)) return false;
        json_t *args = json_object();
        bool ok = args != NULL;
        for (i = sl_tc_skip_ws(s, n, i); ok && sl_tc_eat(s, n, &i, x->param); i = sl_tc_skip_ws(s, n, i)) {
            const char *key;
            size_t kl;
            bool string_val = true;
            ok = quoted_at(s, n, &i, &key, &kl) && tag_rest(s, n, &i, &string_val);
            const size_t end = ok ? sl_scan_find(s, n, i, x->param_end) : n;
            if (end == n) {
                ok = false;
                break;
            }
            size_t v0 = i, v1 = end; /* a value may sit on its own lines */
            if (v0 < v1 && s[v0] == '\n') v0++;
            if (v1 > v0 && s[v1 - 1] == '\n') v1--;
            if (x->string_attr) /* DSML says which values are JSON */
                ok = sl_tc_set_value(args, string_val ? "string" : "json", false, key, kl, s + v0, v1 - v0);
            else if (x->python)
                ok = sl_tc_set_value(args, sl_tc_param_type(tools, name, nl, key, kl), true, key, kl, s + v0, v1 - v0);
            else
                ok = sl_tc_set_arg(args, tools, name, nl, key, kl, s + v0, v1 - v0);
            i = end + strlen(x->param_end);
        }
        ok = ok && (sl_tc_eat(s, n, &i, x->invoke_end) || i == n) && sl_tc_add_call(calls, name, nl, args);
        json_decref(args);
        if (!ok) return false;
        i = sl_tc_skip_ws(s, n, i);
    }
    if (b >= 0) sl_tc_eat(s, n, &i, x->block_end[b]);
    return true;
}

/* DeepSeek: <｜tool▁calls▁begin｜> then calls <｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>, or
 * with "function" before the separator: NAME, a newline and the arguments in a ```json fence. */
static bool parse_deepseek(json_t *calls, const char *s, size_t n, size_t *content) {
    size_t i = sl_scan_find(s, n, 0, "<｜tool▁calls▁begin｜>");
    if (i == n) return false;
    *content = i;
    i = sl_tc_skip_ws(s, n, i + strlen("<｜tool▁calls▁begin｜>"));
    while (sl_tc_eat(s, n, &i, "<｜tool▁call▁begin｜>")) {
        const size_t sep = sl_scan_find(s, n, i, "<｜tool▁sep｜>");
        if (sep == n) return false;
        const char *name = s + i;
        size_t nl = sep - i, j = sep + strlen("<｜tool▁sep｜>");
        if (nl == 8 && !memcmp(name, "function", 8) && j < n && s[j] != '{') { /* R1 / V3: the name, then a fence */
            const size_t eol = sl_scan_find(s, n, j, "\n");
            if (eol == n) return false;
            name = s + j;
            nl = eol - j;
            j = sl_tc_skip_ws(s, n, eol);
            if (sl_tc_eat(s, n, &j, "```json")) j = sl_tc_skip_ws(s, n, j);
        }
        if (!sl_tc_args_call_at(calls, name, nl, s, n, &j)) return false;
        j = sl_tc_skip_ws(s, n, j);
        if (sl_tc_eat(s, n, &j, "```")) j = sl_tc_skip_ws(s, n, j);
        if (!sl_tc_eat(s, n, &j, "<｜tool▁call▁end｜>") && j < n) return false;
        i = sl_tc_skip_ws(s, n, j);
    }
    return true;
}

/* Kimi K2: <|tool_calls_section_begin|> then calls <|tool_call_begin|>functions.NAME:INDEX
 * <|tool_call_argument_begin|>{...}<|tool_call_end|> (the name is the id without its prefix and index). */
static bool parse_kimi(json_t *calls, const char *s, size_t n, size_t *content) {
    size_t i = sl_scan_find(s, n, 0, "<|tool_calls_section_begin|>");
    if (i == n) return false;
    *content = i;
    i = sl_tc_skip_ws(s, n, i + strlen("<|tool_calls_section_begin|>"));
    while (sl_tc_eat(s, n, &i, "<|tool_call_begin|>")) {
        const size_t arg = sl_scan_find(s, n, i, "<|tool_call_argument_begin|>");
        if (arg == n) return false;
        const char *id = s + i, *name = id;
        size_t nl = arg - i;
        while (nl && sl_scan_ws(name[nl - 1])) nl--;
        const char *dot = memchr(name, '.', nl);
        if (dot) nl -= (size_t)(dot + 1 - name), name = dot + 1;
        const char *colon = nl ? memrchr(name, ':', nl) : NULL;
        if (colon) nl = (size_t)(colon - name);
        size_t j = sl_tc_skip_ws(s, n, arg + strlen("<|tool_call_argument_begin|>"));
        if (!sl_tc_args_call_at(calls, name, nl, s, n, &j)) return false;
        j = sl_tc_skip_ws(s, n, j);
        if (!sl_tc_eat(s, n, &j, "<|tool_call_end|>") && j < n) return false;
        i = sl_tc_skip_ws(s, n, j);
    }
    return true;
}

json_t *sl_tool_parse(sl_tool_format f, const json_t *tools, const char *s, size_t n, size_t *content_len) {
    json_t *calls = json_array();
    if (!calls) return NULL;
    size_t content = 0;
    bool ok = false;
    switch (f) {
    case SL_TOOLS_JSON: ok = parse_json(calls, s, n, &content); break;
    case SL_TOOLS_HERMES: ok = parse_hermes(calls, s, n, &content); break;
    case SL_TOOLS_LLAMA3: ok = parse_llama3(calls, s, n, &content); break;
    case SL_TOOLS_MISTRAL:
    case SL_TOOLS_GRANITE:
    case SL_TOOLS_FIREFUNCTION:
    case SL_TOOLS_NEMOTRON:
    case SL_TOOLS_GIGACHAT: ok = parse_marked_json(calls, f, s, n, &content); break;
    case SL_TOOLS_MISTRAL_ARGS: ok = parse_mistral_args(calls, s, n, &content); break;
    case SL_TOOLS_FUNCTIONARY: ok = parse_functionary(calls, s, n, &content); break;
    case SL_TOOLS_XML: ok = parse_xml(calls, tools, s, n, &content); break;
    case SL_TOOLS_GLM: ok = parse_kv(&KV_GLM, calls, tools, s, n, &content); break;
    case SL_TOOLS_HY3: ok = parse_kv(&KV_HY3, calls, tools, s, n, &content); break;
    case SL_TOOLS_DEEPSEEK: ok = parse_deepseek(calls, s, n, &content); break;
    case SL_TOOLS_KIMI: ok = parse_kimi(calls, s, n, &content); break;
    case SL_TOOLS_DSML: ok = parse_invoke(&INV_DSML, calls, tools, s, n, &content); break;
    case SL_TOOLS_MINIMAX_M2: ok = parse_invoke(&INV_MINIMAX, calls, tools, s, n, &content); break;
    case SL_TOOLS_MINICPM: ok = parse_invoke(&INV_MINICPM, calls, tools, s, n, &content); break;
    case SL_TOOLS_SOLAR: ok = parse_solar(calls, s, n, &content); break;
    case SL_TOOLS_APERTUS: ok = parse_marked_array(calls, "<|tools_prefix|>", apertus_call, s, n, &content); break;
    case SL_TOOLS_COMMAND_R7B: ok = parse_marked_array(calls, "<|START_ACTION|>", command_r_call, s, n, &content); break;
    case SL_TOOLS_TAGGED_JSON: ok = parse_tagged_json(calls, s, n, &content); break;
    case SL_TOOLS_LFM2: ok = sl_tc_parse_pythonic(calls, s, n, &content); break;
    case SL_TOOLS_GEMMA4: ok = sl_tc_parse_gemma4(calls, s, n, &content); break;
    case SL_TOOLS_COUNT: break;
    }
    if (!ok || json_array_size(calls) == 0) {
        json_decref(calls);
        return NULL;
    }
    while (content > 0 && sl_scan_ws(s[content - 1])) content--;
    *content_len = content;
    return calls;
}

json_t *sl_tool_required_schema(const json_t *tools, bool parallel) {
    json_t *props = json_object(), *root = json_object();
    json_object_set_new(root, "type", json_string("object"));
    json_object_set_new(root, "properties", props);
    json_object_set_new(root, "additionalProperties", json_false());
    json_object_set_new(root, "minProperties", json_integer(1));
    if (!parallel) json_object_set_new(root, "maxProperties", json_integer(1));
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t) {
        const json_t *fn = json_object_get(t, "function"), *params = json_object_get(fn, "parameters");
        json_t *args = params ? json_deep_copy(params) : json_pack("{s:s}", "type", "object");
        static const char *DEFS[] = {"$defs", "definitions"};
        for (int k = 0; k < 2; k++) {
            json_t *d = json_object_get(args, DEFS[k]);
            if (!json_is_object(d)) continue;
            json_t *into = json_object_get(root, DEFS[k]);
            if (!into) json_object_set_new(root, DEFS[k], into = json_object());
            const char *name;
            json_t *v;
            json_object_foreach(d, name, v) {
                const json_t *had = json_object_get(into, name);
                if (had && !json_equal(had, v)) {
                    SL_FAIL(SL_ERR_INVALID, "two tools define '%s/%s' differently; a required call cannot be guided",
                            DEFS[k], name);
                    json_decref(args);
                    json_decref(root);
                    return NULL;
                }
                json_object_set(into, name, v);
            }
            json_object_del(args, DEFS[k]);
        }
        json_object_set_new(props, json_string_value(json_object_get(fn, "name")), args);
    }
    return root;
}

json_t *sl_tool_parse_required(const char *text, size_t n) {
    json_t *o = json_loadb(text ? text : "", n, JSON_REJECT_DUPLICATES, NULL);
    json_t *calls = json_is_object(o) && json_object_size(o) ? json_array() : NULL;
    const char *name;
    json_t *v;
    json_object_foreach(calls ? o : NULL, name, v) {
        if (!sl_tc_add_call(calls, name, strlen(name), v)) {
            json_decref(calls);
            calls = NULL;
            break;
        }
    }
    json_decref(o);
    return calls;
}

json_t *sl_tool_call_args(const json_t *call) {
    const char *text = json_string_value(json_object_get(json_object_get(call, "function"), "arguments"));
    json_t *args = text ? json_loads(text, 0, NULL) : NULL;
    if (json_is_object(args)) return args;
    json_decref(args);
    return json_object();
}

void sl_tool_call_id(sl_tool_format f, char out[32]) {
    static const char ALNUM[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const bool mistral = f == SL_TOOLS_MISTRAL || f == SL_TOOLS_MISTRAL_ARGS;
    const int len = mistral ? 9 : 24;
    uint8_t rnd[24];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) { /* no entropy source: the clock, mixed */
        uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20) ^ (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < sizeof rnd; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            rnd[i] = (uint8_t)x;
        }
    }
    int k = mistral ? 0 : snprintf(out, 32, "call_");
    for (int i = 0; i < len; i++) out[k++] = ALNUM[rnd[i] % 62];
    out[k] = '\0';
}

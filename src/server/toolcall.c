/*
 * toolcall.c — tool-call syntaxes: detection, streaming hold-back, parsing (see toolcall.h).
 */
#include "toolcall.h"

#include "core/status.h"
#include "server/textscan.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

typedef struct fmt_info {
    const char *name;
    const char *marker;  /* where a call begins */
    bool json_start;     /* a call may also be the whole answer, opening with '{' or '[' */
    bool special;        /* the markers are control tokens */
} fmt_info;

static const fmt_info FMT[] = {
    [SL_TOOLS_JSON] = {"json", "<tool_call>", true, false},
    [SL_TOOLS_HERMES] = {"hermes", "<tool_call>", false, false},
    [SL_TOOLS_LLAMA3] = {"llama3_json", "<|python_tag|>", true, true},
    [SL_TOOLS_MISTRAL] = {"mistral", "[TOOL_CALLS]", false, true},
    [SL_TOOLS_MISTRAL_ARGS] = {"mistral_args", "[TOOL_CALLS]", false, true},
    [SL_TOOLS_GRANITE] = {"granite", "<|tool_call|>", false, true},
    [SL_TOOLS_FIREFUNCTION] = {"firefunction", "functools", false, false},
    [SL_TOOLS_FUNCTIONARY] = {"functionary", "<function=", false, false},
    [SL_TOOLS_XML] = {"qwen3_xml", "<tool_call>", false, false},
    [SL_TOOLS_GLM] = {"glm", "<tool_call>", false, false},
    [SL_TOOLS_DEEPSEEK] = {"deepseek", "<｜tool▁calls▁begin｜>", false, true},
    [SL_TOOLS_KIMI] = {"kimi_k2", "<|tool_calls_section_begin|>", false, true},
};

sl_tool_format sl_tool_format_detect(const char *t) {
    if (!t) return SL_TOOLS_JSON;
    if (strstr(t, "<｜tool▁sep｜>")) return SL_TOOLS_DEEPSEEK;
    if (strstr(t, "<|tool_call_argument_begin|>")) return SL_TOOLS_KIMI;
    if (strstr(t, "<parameter=")) return SL_TOOLS_XML;
    if (strstr(t, "<arg_key>")) return SL_TOOLS_GLM;
    if (strstr(t, "[ARGS]")) return SL_TOOLS_MISTRAL_ARGS;
    if (strstr(t, "[TOOL_CALLS]")) return SL_TOOLS_MISTRAL;
    if (strstr(t, "<|tool_call|>")) return SL_TOOLS_GRANITE;
    if (strstr(t, "functools")) return SL_TOOLS_FIREFUNCTION;
    if (strstr(t, "<function=")) return SL_TOOLS_FUNCTIONARY;
    if (strstr(t, "<tool_call>")) return SL_TOOLS_HERMES;
    if (strstr(t, "<|python_tag|>") || (strstr(t, "\"parameters\"") && strstr(t, "<|start_header_id|>")))
        return SL_TOOLS_LLAMA3;
    return SL_TOOLS_JSON;
}

const char *sl_tool_format_name(sl_tool_format f) { return FMT[f].name; }
bool sl_tool_format_needs_special(sl_tool_format f) { return FMT[f].special; }

/* ---- text helpers ---------------------------------------------------------- */


static size_t skip_ws(const char *s, size_t n, size_t i) {
    while (i < n && sl_scan_ws(s[i])) i++;
    return i;
}

static bool at(const char *s, size_t n, size_t i, const char *m) {
    const size_t k = strlen(m);
    return i <= n && n - i >= k && !memcmp(s + i, m, k);
}

/* s[i, n) starts with m: step over it. */
static bool eat(const char *s, size_t n, size_t *i, const char *m) {
    if (!at(s, n, *i, m)) return false;
    *i += strlen(m);
    return true;
}

size_t sl_tool_content_safe(sl_tool_format f, const char *text, size_t n) {
    const fmt_info *fi = &FMT[f];
    if (fi->json_start) {
        const size_t p = skip_ws(text, n, 0);
        if (p == n || text[p] == '{' || (f == SL_TOOLS_JSON && text[p] == '[')) return 0;
    }
    size_t safe = sl_scan_find(text, n, 0, fi->marker);
    if (safe == n) safe = n - sl_scan_partial(text, 0, n, fi->marker); /* an end that begins the marker */
    /* whitespace waits for what follows it: before a call it is not content (sl_tool_parse drops it) */
    while (safe > 0 && sl_scan_ws(text[safe - 1])) safe--;
    return safe;
}

/* ---- calls ------------------------------------------------------------------ */

/* One JSON object or array at s[*i, n); *i steps past it. */
static json_t *json_at(const char *s, size_t n, size_t *i) {
    if (*i >= n || (s[*i] != '{' && s[*i] != '[')) return NULL;
    json_error_t e;
    json_t *v = json_loadb(s + *i, n - *i, JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES, &e);
    if (v) *i += (size_t)e.position;
    return v;
}

static bool add_call(json_t *calls, const char *name, size_t name_len, const json_t *args) {
    while (name_len && sl_scan_ws(name[0])) name++, name_len--;
    while (name_len && sl_scan_ws(name[name_len - 1])) name_len--;
    if (!name_len || memchr(name, '\0', name_len)) return false;
    char *text = NULL;
    if (!args || json_is_null(args)) {
        text = strdup("{}");
    } else if (json_is_object(args)) {
        text = json_dumps(args, JSON_COMPACT);
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
static bool add_call_object(json_t *calls, const json_t *o) {
    const json_t *name = json_object_get(o, "name");
    if (!json_is_object(o) || !json_is_string(name)) return false;
    const json_t *args = json_object_get(o, "arguments");
    if (!args) args = json_object_get(o, "parameters");
    return add_call(calls, json_string_value(name), json_string_length(name), args);
}

/* A call object, or an array of them (not empty). */
static bool add_calls_value(json_t *calls, const json_t *v) {
    if (json_is_object(v)) return add_call_object(calls, v);
    if (!json_is_array(v) || json_array_size(v) == 0) return false;
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e) if (!add_call_object(calls, e)) return false;
    return true;
}

/* The JSON value at s[*i, n) as calls. */
static bool calls_json_at(json_t *calls, const char *s, size_t n, size_t *i) {
    json_t *v = json_at(s, n, i);
    const bool ok = v && add_calls_value(calls, v);
    json_decref(v);
    return ok;
}

/* The call `name` whose arguments are the JSON object at s[*i, n); *i steps past it. */
static bool args_call_at(json_t *calls, const char *name, size_t nl, const char *s, size_t n, size_t *i) {
    json_t *v = json_at(s, n, i);
    const bool ok = json_is_object(v) && add_call(calls, name, nl, v);
    json_decref(v);
    return ok;
}

/* The schema type of parameter key of tool name ("" when not declared). */
static const char *param_type(const json_t *tools, const char *name, size_t nl, const char *key) {
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t) {
        const json_t *fn = json_object_get(t, "function"), *fname = json_object_get(fn, "name");
        if (!json_is_string(fname) || json_string_length(fname) != nl || memcmp(json_string_value(fname), name, nl))
            continue;
        const json_t *ty = json_object_get(json_object_get(json_object_get(json_object_get(fn, "parameters"),
                                                                           "properties"), key), "type");
        return json_is_string(ty) ? json_string_value(ty) : "";
    }
    return "";
}

/* XML / GLM: argument key = value, typed by the tool's schema; false for a key or value that is not
 * UTF-8 text without NUL bytes. */
static bool set_arg(json_t *args, const json_t *tools, const char *name, size_t nl, const char *k, size_t kl,
                    const char *v, size_t vl) {
    if (!kl || memchr(k, '\0', kl) || memchr(v, '\0', vl)) return false;
    char *key = strndup(k, kl);
    if (!key) return false;
    const char *ty = param_type(tools, name, nl, key);
    json_t *val = NULL;
    if (*ty && strcmp(ty, "string") != 0) val = json_loadb(v, vl, JSON_DECODE_ANY, NULL);
    if (!val) val = json_stringn(v, vl);
    const bool ok = val && json_object_set_new(args, key, val) == 0;
    free(key);
    return ok;
}

/* ---- one parser per syntax; each returns false when the text holds no complete call ---- */

/* <tool_call>{...}</tool_call> blocks (HERMES, and the first try of JSON). */
static bool parse_hermes(json_t *calls, const char *s, size_t n, size_t *content) {
    size_t i = sl_scan_find(s, n, 0, "<tool_call>");
    if (i == n) return false;
    *content = i;
    while (eat(s, n, &i, "<tool_call>")) {
        i = skip_ws(s, n, i);
        if (!calls_json_at(calls, s, n, &i)) return false;
        i = skip_ws(s, n, i);
        if (!eat(s, n, &i, "</tool_call>") && i < n) return false;
        i = skip_ws(s, n, i);
    }
    return true;
}

static bool parse_json(json_t *calls, const char *s, size_t n, size_t *content) {
    if (parse_hermes(calls, s, n, content)) return true;
    json_array_clear(calls);
    size_t i = skip_ws(s, n, 0);
    *content = 0;
    return calls_json_at(calls, s, n, &i) && skip_ws(s, n, i) == n;
}

static bool parse_llama3(json_t *calls, const char *s, size_t n, size_t *content) {
    size_t i = sl_scan_find(s, n, 0, "<|python_tag|>");
    *content = i == n ? 0 : i;
    i = i == n ? 0 : i + strlen("<|python_tag|>");
    for (;;) {
        i = skip_ws(s, n, i);
        json_t *v = json_at(s, n, &i);
        const bool ok = json_is_object(v) && add_call_object(calls, v);
        json_decref(v);
        if (!ok) return false;
        i = skip_ws(s, n, i);
        if (i == n) return true;
        if (s[i] != ';') return false;
        i++;
    }
}

/* A marker, then one JSON value of calls (MISTRAL, GRANITE, FIREFUNCTION). */
static bool parse_marked_json(json_t *calls, const char *marker, const char *s, size_t n, size_t *content) {
    size_t i = sl_scan_find(s, n, 0, marker);
    if (i == n) return false;
    *content = i;
    i = skip_ws(s, n, i + strlen(marker));
    return calls_json_at(calls, s, n, &i);
}

/* [TOOL_CALLS]name[ARGS]{...} (an id may come as [CALL_ID]id before [ARGS]) */
static bool parse_mistral_args(json_t *calls, const char *s, size_t n, size_t *content) {
    size_t i = sl_scan_find(s, n, 0, "[TOOL_CALLS]");
    if (i == n) return false;
    *content = i;
    while (eat(s, n, &i, "[TOOL_CALLS]")) {
        const size_t args = sl_scan_find(s, n, i, "[ARGS]"), id = sl_scan_find(s, n, i, "[CALL_ID]");
        if (args == n) return false;
        const size_t name_end = id < args ? id : args;
        size_t j = args + strlen("[ARGS]");
        j = skip_ws(s, n, j);
        if (!args_call_at(calls, s + i, name_end - i, s, n, &j)) return false;
        i = skip_ws(s, n, j);
    }
    return true;
}

/* <function=name>{...}</function> */
static bool parse_functionary(json_t *calls, const char *s, size_t n, size_t *content) {
    size_t i = sl_scan_find(s, n, 0, "<function=");
    if (i == n) return false;
    *content = i;
    while (eat(s, n, &i, "<function=")) {
        const size_t gt = sl_scan_find(s, n, i, ">");
        if (gt == n) return false;
        size_t j = skip_ws(s, n, gt + 1);
        if (!args_call_at(calls, s + i, gt - i, s, n, &j)) return false;
        j = skip_ws(s, n, j);
        if (!eat(s, n, &j, "</function>") && j < n) return false;
        i = skip_ws(s, n, j);
    }
    return true;
}

/* <tool_call><function=name><parameter=k>v</parameter>...</function></tool_call> */
static bool parse_xml(json_t *calls, const json_t *tools, const char *s, size_t n, size_t *content) {
    size_t i = sl_scan_find(s, n, 0, "<tool_call>");
    if (i == n) return false;
    *content = i;
    while (eat(s, n, &i, "<tool_call>")) {
        i = skip_ws(s, n, i);
        if (!eat(s, n, &i, "<function=")) return false;
        const size_t gt = sl_scan_find(s, n, i, ">");
        if (gt == n) return false;
        const char *name = s + i;
        const size_t nl = gt - i;
        json_t *args = json_object();
        i = skip_ws(s, n, gt + 1);
        while (eat(s, n, &i, "<parameter=")) {
            const size_t kgt = sl_scan_find(s, n, i, ">"), end = sl_scan_find(s, n, kgt, "</parameter>");
            if (kgt == n || end == n) {
                json_decref(args);
                return false;
            }
            size_t v0 = kgt + 1, v1 = end; /* the value sits on its own lines */
            if (v0 < v1 && s[v0] == '\n') v0++;
            if (v1 > v0 && s[v1 - 1] == '\n') v1--;
            if (!set_arg(args, tools, name, nl, s + i, kgt - i, s + v0, v1 - v0)) {
                json_decref(args);
                return false;
            }
            i = skip_ws(s, n, end + strlen("</parameter>"));
        }
        const bool ok = eat(s, n, &i, "</function>") && add_call(calls, name, nl, args);
        json_decref(args);
        if (!ok) return false;
        i = skip_ws(s, n, i);
        if (!eat(s, n, &i, "</tool_call>") && i < n) return false;
        i = skip_ws(s, n, i);
    }
    return true;
}

/* <tool_call>name<arg_key>k</arg_key><arg_value>v</arg_value>...</tool_call> */
static bool parse_glm(json_t *calls, const json_t *tools, const char *s, size_t n, size_t *content) {
    size_t i = sl_scan_find(s, n, 0, "<tool_call>");
    if (i == n) return false;
    *content = i;
    while (eat(s, n, &i, "<tool_call>")) {
        const size_t close = sl_scan_find(s, n, i, "</tool_call>");
        size_t name_end = sl_scan_find(s, n, i, "<arg_key>");
        if (close < name_end) name_end = close;
        const size_t nl0 = sl_scan_find(s, n, i, "\n");
        if (nl0 < name_end && skip_ws(s, n, i) < nl0) name_end = nl0;
        const char *name = s + i;
        const size_t nl = name_end - i;
        json_t *args = json_object();
        i = skip_ws(s, n, name_end);
        while (eat(s, n, &i, "<arg_key>")) {
            const size_t ke = sl_scan_find(s, n, i, "</arg_key>");
            size_t j = skip_ws(s, n, ke + strlen("</arg_key>"));
            if (ke == n || !eat(s, n, &j, "<arg_value>")) break;
            const size_t ve = sl_scan_find(s, n, j, "</arg_value>");
            if (ve == n) break;
            if (!set_arg(args, tools, name, nl, s + i, ke - i, s + j, ve - j)) {
                json_decref(args);
                return false;
            }
            i = skip_ws(s, n, ve + strlen("</arg_value>"));
        }
        const bool ok = (eat(s, n, &i, "</tool_call>") || i == n) && add_call(calls, name, nl, args);
        json_decref(args);
        if (!ok) return false;
        i = skip_ws(s, n, i);
    }
    return true;
}

/* DeepSeek: <｜tool▁calls▁begin｜> then calls <｜tool▁call▁begin｜>NAME<｜tool▁sep｜>{...}<｜tool▁call▁end｜>, or
 * with "function" before the separator: NAME, a newline and the arguments in a ```json fence. */
static bool parse_deepseek(json_t *calls, const char *s, size_t n, size_t *content) {
    size_t i = sl_scan_find(s, n, 0, "<｜tool▁calls▁begin｜>");
    if (i == n) return false;
    *content = i;
    i = skip_ws(s, n, i + strlen("<｜tool▁calls▁begin｜>"));
    while (eat(s, n, &i, "<｜tool▁call▁begin｜>")) {
        const size_t sep = sl_scan_find(s, n, i, "<｜tool▁sep｜>");
        if (sep == n) return false;
        const char *name = s + i;
        size_t nl = sep - i, j = sep + strlen("<｜tool▁sep｜>");
        if (nl == 8 && !memcmp(name, "function", 8) && j < n && s[j] != '{') { /* R1 / V3: the name, then a fence */
            const size_t eol = sl_scan_find(s, n, j, "\n");
            if (eol == n) return false;
            name = s + j;
            nl = eol - j;
            j = skip_ws(s, n, eol);
            if (eat(s, n, &j, "```json")) j = skip_ws(s, n, j);
        }
        if (!args_call_at(calls, name, nl, s, n, &j)) return false;
        j = skip_ws(s, n, j);
        if (eat(s, n, &j, "```")) j = skip_ws(s, n, j);
        if (!eat(s, n, &j, "<｜tool▁call▁end｜>") && j < n) return false;
        i = skip_ws(s, n, j);
    }
    return true;
}

/* Kimi K2: <|tool_calls_section_begin|> then calls <|tool_call_begin|>functions.NAME:INDEX
 * <|tool_call_argument_begin|>{...}<|tool_call_end|> (the name is the id without its prefix and index). */
static bool parse_kimi(json_t *calls, const char *s, size_t n, size_t *content) {
    size_t i = sl_scan_find(s, n, 0, "<|tool_calls_section_begin|>");
    if (i == n) return false;
    *content = i;
    i = skip_ws(s, n, i + strlen("<|tool_calls_section_begin|>"));
    while (eat(s, n, &i, "<|tool_call_begin|>")) {
        const size_t arg = sl_scan_find(s, n, i, "<|tool_call_argument_begin|>");
        if (arg == n) return false;
        const char *id = s + i, *name = id;
        size_t nl = arg - i;
        while (nl && sl_scan_ws(name[nl - 1])) nl--;
        const char *dot = memchr(name, '.', nl);
        if (dot) nl -= (size_t)(dot + 1 - name), name = dot + 1;
        const char *colon = nl ? memrchr(name, ':', nl) : NULL;
        if (colon) nl = (size_t)(colon - name);
        size_t j = skip_ws(s, n, arg + strlen("<|tool_call_argument_begin|>"));
        if (!args_call_at(calls, name, nl, s, n, &j)) return false;
        j = skip_ws(s, n, j);
        if (!eat(s, n, &j, "<|tool_call_end|>") && j < n) return false;
        i = skip_ws(s, n, j);
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
    case SL_TOOLS_MISTRAL: ok = parse_marked_json(calls, "[TOOL_CALLS]", s, n, &content); break;
    case SL_TOOLS_MISTRAL_ARGS: ok = parse_mistral_args(calls, s, n, &content); break;
    case SL_TOOLS_GRANITE: ok = parse_marked_json(calls, "<|tool_call|>", s, n, &content); break;
    case SL_TOOLS_FIREFUNCTION: ok = parse_marked_json(calls, "functools", s, n, &content); break;
    case SL_TOOLS_FUNCTIONARY: ok = parse_functionary(calls, s, n, &content); break;
    case SL_TOOLS_XML: ok = parse_xml(calls, tools, s, n, &content); break;
    case SL_TOOLS_GLM: ok = parse_glm(calls, tools, s, n, &content); break;
    case SL_TOOLS_DEEPSEEK: ok = parse_deepseek(calls, s, n, &content); break;
    case SL_TOOLS_KIMI: ok = parse_kimi(calls, s, n, &content); break;
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
        if (!add_call(calls, name, strlen(name), v)) {
            json_decref(calls);
            calls = NULL;
            break;
        }
    }
    json_decref(o);
    return calls;
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

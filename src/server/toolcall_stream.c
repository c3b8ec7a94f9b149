/*
 * toolcall_stream.c — the calls of an unfinished answer, for streamed
 * tool_calls deltas (sl_tool_parse_partial, see toolcall.h).
 *
 * The parsers of toolcall.c read finished answers only. An unfinished one
 * is read by completing it: the text so far (less an end that may still
 * change: a partial escape, number or marker, trailing
 * whitespace) gets a probe marker where the answer stands and the closing
 * text of its syntax (a JSON answer's open strings and brackets; a tag
 * syntax's value and call end tags, or a further parameter named by the
 * marker), and is parsed. The last call's arguments, dumped, hold the marker
 * where the answer stood: what comes before it is what the answer so far
 * fixes, less what the probe made up (a key or a value that is only the
 * marker, a string whose final type is not yet known) — a start of the
 * arguments of any answer that goes on from here and parses.
 */
#include "server/textscan.h"
#include "server/toolcall.h"
#include "server/toolcall_int.h"

#include <stdlib.h>
#include <string.h>

#define MARK "Zq9HEALq9Z"

/* Tag syntaxes: what completes an answer that stands inside a parameter's value (after MARK), and a
 * further parameter named MARK with the call's end (MARK where "%s" is). */
typedef struct tag_heal {
    const char *in_value, *next_param;
    const char *call; /* where a call begins (GLM, Hunyuan 3: the name is the text after it) */
    bool raw; /* a value's text is a string unless the schema types it (DSML: an attribute may say JSON) */
} tag_heal;

static const tag_heal *tag_heal_of(sl_tool_format f) {
    static const tag_heal XML = {"\n</parameter>\n</function>", "<parameter=%s>\n0\n</parameter>\n</function>", NULL, true};
    static const tag_heal GLM = {"</arg_value></tool_call>", "<arg_key>%s</arg_key><arg_value>0</arg_value></tool_call>",
                                 "<tool_call>", true};
    static const tag_heal HY3 = {"</arg_value:opensource></tool_call:opensource>",
                                 "<arg_key:opensource>%s</arg_key:opensource><arg_value:opensource>0"
                                 "</arg_value:opensource></tool_call:opensource>",
                                 "<tool_call:opensource>", true};
    static const tag_heal MINIMAX = {"</parameter></invoke>", "<parameter name=\"%s\">0</parameter></invoke>", NULL, true};
    static const tag_heal MINICPM = {"</param></function>", "<param name=\"%s\">0</param></function>", NULL, true};
    static const tag_heal DSML = {"</｜DSML｜parameter></｜DSML｜invoke>",
                                  "<｜DSML｜parameter name=\"%s\" string=\"true\">0</｜DSML｜parameter></｜DSML｜invoke>",
                                  NULL, false};
    switch (f) {
    case SL_TOOLS_XML: return &XML;
    case SL_TOOLS_GLM: return &GLM;
    case SL_TOOLS_HY3: return &HY3;
    case SL_TOOLS_MINIMAX_M2: return &MINIMAX;
    case SL_TOOLS_MINICPM: return &MINICPM;
    case SL_TOOLS_DSML: return &DSML;
    default: return NULL;
    }
}

/* The end of s[from, n) that cannot change: less a marker still being written (tag syntaxes: from a
 * last '<' without a closing '>', at most 64 bytes back; JSON syntaxes: the start of one of the syntax's
 * markers) and trailing whitespace. Leaving out more than needed only delays a delta. (A partial UTF-8
 * character needs nothing: the detokenizer holds those back, and as JSON text it fails the probe.) */
static size_t stable_end(sl_tool_format f, bool tags, const char *s, size_t from, size_t n) {
    for (;;) {
        const size_t was = n;
        if (tags) {
            for (size_t i = n; i > from && n - i < 64; i--) {
                if (s[i - 1] == '>') break;
                if (s[i - 1] == '<') {
                    n = i - 1;
                    break;
                }
            }
        } else if (f != SL_TOOLS_COUNT) {
            size_t cut = 0;
            for (const char *const *m = sl_tool_format_markers(f); *m; m++) {
                const size_t l = sl_scan_partial(s, from, n, *m);
                if (l > cut) cut = l;
            }
            n -= cut;
        }
        while (n > from && sl_scan_ws(s[n - 1])) n--;
        if (n == was) return n;
    }
}

/* ---- JSON syntaxes: the open strings and brackets of the answer so far ---- */

#define HEAL_DEPTH 48

typedef struct heal {
    size_t cut;       /* the answer up to here, then close */
    char close[2 * HEAL_DEPTH + 32];
    bool depth0;      /* no JSON value open: the calls so far are whole */
    bool real_string; /* MARK stands inside a string of the answer (not one the probe made) */
} heal;

/* A marker of syntax f at s[i, n) (skipped outside JSON values: "[TOOL_CALLS]" opens no array). */
static size_t marker_at(sl_tool_format f, const char *s, size_t n, size_t i) {
    if (f == SL_TOOLS_COUNT) return 0; /* a "required" answer: one JSON object */
    for (const char *const *m = sl_tool_format_markers(f); *m; m++)
        if (sl_tc_at(s, n, i, *m)) return strlen(*m);
    return 0;
}

static bool json_heal(sl_tool_format f, const char *s, size_t from, size_t n, heal *h) {
    enum { KEY, COLON, VALUE, NEXT } st = VALUE;
    char stk[HEAL_DEPTH];
    int depth = 0;
    bool in_str = false, key = false;
    size_t i = from;
    h->cut = n;
    while (i < n) {
        const char c = s[i];
        if (depth == 0) {
            const size_t ml = marker_at(f, s, n, i);
            if (ml) {
                i += ml;
            } else if (c == '{' || c == '[') {
                stk[depth++] = c;
                st = c == '{' ? KEY : VALUE;
                i++;
            } else {
                i++;
            }
            continue;
        }
        if (in_str) {
            if (c == '\\') {
                const size_t len = i + 1 < n && s[i + 1] == 'u' ? 6 : 2;
                if (n - i < len) {
                    h->cut = i;
                    break;
                }
                i += len;
            } else {
                if (c == '"') in_str = false, st = key ? COLON : NEXT;
                i++;
            }
            continue;
        }
        switch (c) {
        case ' ': case '\t': case '\n': case '\r': i++; break;
        case '"':
            in_str = true;
            key = stk[depth - 1] == '{' && st == KEY;
            i++;
            break;
        case '{': case '[':
            if (depth == HEAL_DEPTH) return false;
            stk[depth++] = c;
            st = c == '{' ? KEY : VALUE;
            i++;
            break;
        case '}': case ']':
            depth--;
            st = NEXT;
            i++;
            break;
        case ':': st = VALUE, i++; break;
        case ',': st = stk[depth - 1] == '{' ? KEY : VALUE, i++; break;
        default: { /* a number or literal: whole once something follows it */
            size_t j = i;
            while (j < n && !strchr(" \t\n\r,:{}[]\"", s[j])) j++;
            if (j == n) {
                h->cut = i;
                st = VALUE;
                i = n;
            } else {
                st = NEXT;
                i = j > i ? j : i + 1;
            }
        }
        }
    }
    h->depth0 = depth == 0;
    h->real_string = in_str && !key;
    char *o = h->close;
    const bool obj = depth > 0 && stk[depth - 1] == '{';
    if (depth == 0) *o = '\0';
    else if (in_str) o += sprintf(o, "%s\"%s", MARK, key ? ":0" : "");
    else if (st == KEY) o += sprintf(o, "\"%s\":0", MARK);
    else if (st == COLON) o += sprintf(o, ":\"%s\"", MARK);
    else if (st == VALUE) o += sprintf(o, "\"%s\"", MARK);
    else o += sprintf(o, obj ? ",\"%s\":0" : ",\"%s\"", MARK);
    while (depth > 0) *o++ = stk[--depth] == '{' ? '}' : ']';
    *o = '\0';
    return true;
}

/* ---- the last call's arguments up to the marker ---- */

/* The part of p[0, n) (dumped arguments up to the marker) that the answer fixes: a key being written
 * is left out, and so is a string value unless it is one of the answer's strings and (tag syntaxes)
 * the schema does not give it another type; a trailing comma goes. */
static size_t fixed_part(const char *p, size_t n, bool real_string, bool typed, const json_t *tools, const char *name) {
    char stk[HEAL_DEPTH + 2];
    int depth = 0;
    bool in_str = false, key = false, want_key = false;
    size_t str0 = 0, k0 = 0, k1 = 0;
    for (size_t i = 0; i < n; i++) {
        const char c = p[i];
        if (in_str) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_str = false;
                if (key && depth == 1) k0 = str0, k1 = i + 1;
            }
            continue;
        }
        switch (c) {
        case '"': in_str = true, str0 = i, key = want_key; break;
        case '{': case '[':
            if (depth == HEAL_DEPTH + 2) return 0;
            stk[depth++] = c;
            want_key = c == '{';
            break;
        case '}': case ']': depth--, want_key = false; break;
        case ':': want_key = false; break;
        case ',': want_key = depth > 0 && stk[depth - 1] == '{'; break;
        default: break;
        }
    }
    if (in_str) {
        bool keep = !key && real_string && (!typed || (depth == 1 && k1 > k0));
        if (keep && typed) { /* a tag syntax's value: a string unless the schema says */
            json_t *k = json_loadb(p + k0, k1 - k0, JSON_DECODE_ANY, NULL);
            const char *ty = json_is_string(k) ? sl_tc_param_type(tools, name, strlen(name), json_string_value(k),
                                                                   json_string_length(k))
                                               : "x";
            keep = !*ty || !strcmp(ty, "string");
            json_decref(k);
        }
        if (!keep) n = str0;
    }
    while (n > 0 && p[n - 1] == ',') n--;
    return n;
}

/* The calls of probe text t[0, tn) (the answer so far, completed): the last call's arguments cut at the
 * marker to what the answer fixes (NULL when the probe does not parse, or the marker is not in the last
 * call's name or arguments; with the marker in its name the last call is dropped). */
static json_t *probe(sl_tool_format f, bool required, const json_t *tools, const char *t, size_t tn,
                     bool real_string, bool typed) {
    size_t cl;
    json_t *calls = required ? sl_tool_parse_required(t, tn) : sl_tool_parse(f, tools, t, tn, &cl);
    const size_t nc = json_array_size(calls);
    json_t *last = json_array_get(calls, nc ? nc - 1 : 0);
    const char *name = json_string_value(json_object_get(last, "name"));
    const char *args = json_string_value(json_object_get(last, "arguments"));
    const char *at = args ? strstr(args, MARK) : NULL;
    if (name && strstr(name, MARK)) {
        json_array_remove(calls, nc - 1);
    } else if (at) {
        const size_t keep = fixed_part(args, (size_t)(at - args), real_string, typed, tools, name);
        json_object_set_new(last, "arguments", json_stringn(args, keep));
        json_object_set_new(last, "partial", json_true());
    } else {
        json_decref(calls);
        return NULL;
    }
    return calls;
}

/* GLM, Hunyuan 3: the last call's name ends where the answer says (a newline, a tag after it), not at
 * the end of the text so far. */
static bool name_ends(const tag_heal *th, const json_t *calls, const char *s, size_t n) {
    const size_t nc = json_array_size(calls);
    if (!th->call || nc == 0 || !json_is_true(json_object_get(json_array_get(calls, nc - 1), "partial"))) return true;
    const json_t *nm = json_object_get(json_array_get(calls, nc - 1), "name");
    size_t at = n, from = 0;
    while ((from = sl_scan_find(s, n, from, th->call)) < n) at = from++;
    if (at == n) return false;
    at += strlen(th->call);
    while (at < n && sl_scan_ws(s[at])) at++;
    const size_t nl = json_string_length(nm);
    return n - at > nl && !memcmp(s + at, json_string_value(nm), nl);
}

json_t *sl_tool_parse_partial(sl_tool_format f, bool required, const json_t *tools, const char *s, size_t n) {
    size_t from;
    if (required) {
        from = 0;
    } else if (f == SL_TOOLS_LLAMA3 || f == SL_TOOLS_JSON) { /* only calls after their marker stream */
        from = sl_scan_find(s, n, 0, f == SL_TOOLS_LLAMA3 ? "<|python_tag|>" : "<tool_call>");
    } else {
        size_t ml;
        from = sl_tc_find_begin(f, s, n, &ml);
    }
    const tag_heal *th = required ? NULL : tag_heal_of(f);
    const bool tags = th != NULL;
    if (from == n || (!required && (f == SL_TOOLS_LFM2 || f == SL_TOOLS_GEMMA4))) return NULL;
    const size_t end = stable_end(required ? SL_TOOLS_COUNT : f, tags, s, from, n);
    json_t *calls = NULL;
    char *t = NULL;
    if (!tags) {
        heal h;
        if (!json_heal(required ? SL_TOOLS_COUNT : f, s, from, end, &h)) return NULL;
        if (h.depth0) { /* between values: the calls so far are whole */
            size_t cl;
            return required ? sl_tool_parse_required(s, h.cut) : sl_tool_parse(f, tools, s, h.cut, &cl);
        }
        const size_t cn = strlen(h.close);
        if (!(t = malloc(h.cut + cn + 1))) return NULL;
        memcpy(t, s, h.cut);
        memcpy(t + h.cut, h.close, cn + 1);
        calls = probe(f, required, tools, t, h.cut + cn, h.real_string, false);
    } else {
        const size_t vn = strlen(th->in_value), pn = strlen(th->next_param) + strlen(MARK);
        if (!(t = malloc(end + strlen(MARK) + (vn > pn ? vn : pn) + 1))) return NULL;
        memcpy(t, s, end);
        /* inside a value (the marker ends it), else a further parameter named by the marker */
        sprintf(t + end, "%s%s", MARK, th->in_value);
        calls = probe(f, false, tools, t, strlen(t), th->raw, true);
        if (!calls) {
            sprintf(t + end, th->next_param, MARK);
            calls = probe(f, false, tools, t, strlen(t), false, true);
        }
        if (calls && !name_ends(th, calls, s, end)) json_array_remove(calls, json_array_size(calls) - 1);
    }
    free(t);
    if (calls && json_array_size(calls) == 0) {
        json_decref(calls);
        calls = NULL;
    }
    return calls;
}

/*
 * kimi3.c — Kimi K3 answers split into thinking, content and calls (see
 * kimi3.h).
 *
 * One pass over the answer with a state: outside a section, in think, in
 * response, in tools, or after the message's end. A text section runs to the
 * first section tag (one of a fixed set of whole strings, e.g.
 * <|open|>response<|sep|>); no two of them overlap, so the first one found in
 * a prefix of the answer is the first one of the whole answer, and holding
 * back an end that may still become one keeps what a prefix gives the start of
 * what the whole gives. A tools section is read call by call; a call is
 * decided (parsed, or its text made content) only once its end has arrived,
 * and nothing after an undecided call is given. Every scan only moves
 * forward; nothing recurses (jansson bounds its own depth).
 */
#include "kimi3.h"

#include "core/strbuf.h"
#include "server/textscan.h"
#include "server/toolcall_int.h"

#include <stdlib.h>
#include <string.h>

#define OPEN "<|open|>"
#define CLOSE "<|close|>"
#define SEP "<|sep|>"
#define EOM "<|end_of_msg|>"

static const char *const MARKERS[] = {OPEN, CLOSE, SEP, EOM, NULL};

const char *const *sl_kimi3_markers(void) { return MARKERS; }

bool sl_kimi3_template(const char *src) {
    return src && strstr(src, OPEN) && strstr(src, CLOSE) && strstr(src, SEP);
}

bool sl_kimi3_think_open(const char *prompt) {
    static const char tag[] = OPEN "think" SEP;
    if (!prompt) return false;
    size_t n = strlen(prompt);
    while (n && sl_scan_ws(prompt[n - 1])) n--;
    return n >= sizeof tag - 1 && !memcmp(prompt + n - (sizeof tag - 1), tag, sizeof tag - 1);
}

typedef enum state { S_OUT, S_THINK, S_RESPONSE, S_TOOLS, S_END } state;

/* The tags that end a text section, and the state each leads to. */
static const char *const TEXT_TAGS[] = {OPEN "think" SEP,   OPEN "response" SEP,  OPEN "tools" SEP, CLOSE "think" SEP,
                                        CLOSE "response" SEP, CLOSE "tools" SEP, CLOSE "message" SEP, EOM};
static const state TEXT_NEXT[] = {S_THINK, S_RESPONSE, S_TOOLS, S_OUT, S_OUT, S_OUT, S_END, S_END};
#define N_TEXT_TAGS (sizeof TEXT_TAGS / sizeof TEXT_TAGS[0])

/* The tags that end a tools section (and the state each leads to), then the start of a call. */
static const char *const TOOLS_TAGS[] = {CLOSE "tools" SEP, CLOSE "message" SEP, EOM, OPEN "call"};
static const state TOOLS_NEXT[] = {S_OUT, S_END, S_END};
#define N_TOOLS_ENDS 3
#define T_CALL 3

/* The first place in t[from, n) where one of tags[0, k) begins (n if none); *which says which. */
static size_t first_of(const char *t, size_t n, size_t from, const char *const *tags, size_t k, size_t *which) {
    *which = 0;
    for (size_t i = from; i < n;) {
        const char *lt = memchr(t + i, '<', n - i);
        if (!lt) break;
        i = (size_t)(lt - t);
        for (size_t w = 0; w < k; w++)
            if (sl_tc_at(t, n, i, tags[w])) {
                *which = w;
                return i;
            }
        i++;
    }
    return n;
}

/* How many bytes at the end of t[from, n) may still become one of tags[0, k). */
static size_t held(const char *t, size_t from, size_t n, const char *const *tags, size_t k) {
    size_t h = 0;
    for (size_t w = 0; w < k; w++) {
        const size_t l = sl_scan_partial(t, from, n, tags[w]);
        if (l > h) h = l;
    }
    return h;
}

/* Append the piece s[0, len) to b without the whitespace around it, after a blank line when b has text. */
static bool piece(sl_strbuf *b, const char *s, size_t len) {
    while (len && sl_scan_ws(s[0])) s++, len--;
    while (len && sl_scan_ws(s[len - 1])) len--;
    if (!len) return true;
    return (b->n == 0 || sl_strbuf_add(b, "\n\n", 2)) && sl_strbuf_add(b, s, len);
}

/* An attribute value as the template writes it (escape_attr: & and " as &amp; and &quot;), unescaped. */
static char *unescape(const char *v, size_t n) {
    char *o = malloc(n + 1);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (sl_tc_at(v, n, i, "&amp;")) o[k++] = '&', i += 5;
        else if (sl_tc_at(v, n, i, "&quot;")) o[k++] = '"', i += 6;
        else o[k++] = v[i++];
    }
    o[k] = '\0';
    return o;
}

/* The attributes of a tag s[*i, n) (just after its name) up to and past its <|sep|>: ` KEY="VALUE"`
 * each. The values of keys[0, k) are stored in vals (unescaped, owned by the caller, NULL when absent).
 * False for any other syntax, a key given twice, or out of memory. */
static bool attributes(const char *s, size_t n, size_t *i, const char *const *keys, char **vals, size_t k) {
    size_t p = *i;
    for (;;) {
        if (sl_tc_eat(s, n, &p, SEP)) break;
        if (p >= n || !sl_scan_ws(s[p])) return false;
        p = sl_tc_skip_ws(s, n, p);
        if (sl_tc_eat(s, n, &p, SEP)) break;
        const size_t k0 = p;
        while (p < n && (s[p] == '_' || s[p] == '-' || (s[p] >= 'a' && s[p] <= 'z') || (s[p] >= 'A' && s[p] <= 'Z') ||
                         (s[p] >= '0' && s[p] <= '9')))
            p++;
        const size_t kl = p - k0;
        if (!kl || !sl_tc_eat(s, n, &p, "=\"")) return false;
        const char *q = memchr(s + p, '"', n - p);
        if (!q) return false;
        const size_t v0 = p;
        p = (size_t)(q - s) + 1;
        for (size_t w = 0; w < k; w++) {
            if (strlen(keys[w]) != kl || memcmp(keys[w], s + k0, kl)) continue;
            if (vals[w]) return false;
            if (!(vals[w] = unescape(s + v0, (size_t)(q - s) - v0))) return false;
        }
    }
    *i = p;
    return true;
}

/* args[key] = v[0, vl) typed by the type attribute (NULL: by the tool's schema). */
static bool set_arg(json_t *args, const json_t *tools, const char *name, const char *key, const char *type,
                    const char *v, size_t vl) {
    const size_t kl = strlen(key);
    return sl_tc_set_value(args, type ? type : sl_tc_param_type(tools, name, strlen(name), key, kl), false, key, kl,
                           v, vl);
}

/* The call s[0, n) (from its <|open|>call up to its <|close|>call<|sep|>, or what there is of it) appended
 * to calls; false when it does not parse (nothing appended). */
static bool parse_call(json_t *calls, const char *s, size_t n, const json_t *tools) {
    static const char *const call_keys[] = {"tool"}, *const arg_keys[] = {"key", "type"};
    if (memchr(s, '\0', n) || !sl_utf8_valid(s, n)) return false;
    char *name = NULL;
    json_t *args = json_object();
    size_t i = strlen(OPEN "call");
    bool ok = args && attributes(s, n, &i, call_keys, &name, 1) && name;
    while (ok && (i = sl_tc_skip_ws(s, n, i)) < n) {
        char *av[2] = {NULL, NULL};
        if (sl_tc_eat(s, n, &i, OPEN "argument")) {
            ok = attributes(s, n, &i, arg_keys, av, 2) && av[0];
            const size_t e = ok ? sl_scan_find(s, n, i, CLOSE "argument" SEP) : n;
            ok = e < n && set_arg(args, tools, name, av[0], av[1], s + i, e - i);
            i = e + strlen(CLOSE "argument" SEP);
        } else if (sl_tc_eat(s, n, &i, OPEN "json")) { /* the arguments as one JSON object */
            ok = attributes(s, n, &i, NULL, NULL, 0);
            const size_t e = ok ? sl_scan_find(s, n, i, CLOSE "json" SEP) : n;
            json_t *o = e < n ? json_loadb(s + i, e - i, 0, NULL) : NULL;
            ok = json_is_object(o) && json_object_update(args, o) == 0;
            json_decref(o);
            i = e + strlen(CLOSE "json" SEP);
        } else {
            ok = false;
        }
        free(av[0]);
        free(av[1]);
    }
    const size_t before = json_array_size(calls);
    ok = ok && sl_tc_add_call(calls, name, strlen(name), args);
    while (!ok && json_array_size(calls) > before) json_array_remove(calls, before);
    free(name);
    json_decref(args);
    return ok;
}

/* A tools section from t[*i] (just after its opening tag, which begins at `open`): calls, or with `calls`
 * false its text as content. Sets *i and *st to where and in what state the answer goes on; false when
 * the text ends inside the section (or it holds back an undecided call). */
static bool tools_section(const char *t, size_t n, size_t open, size_t *i, state *st, bool calls, const json_t *tools,
                          bool fin, sl_strbuf *c, json_t *cl, bool *ok) {
    size_t w, j = *i;
    if (!calls) {
        const size_t e = first_of(t, n, j, TOOLS_TAGS, N_TOOLS_ENDS, &w);
        const size_t end = e < n ? e + (w == 0 ? strlen(TOOLS_TAGS[0]) : 0)
                           : fin ? n
                                 : n - held(t, j, n, TOOLS_TAGS, N_TOOLS_ENDS);
        *ok = *ok && piece(c, t + open, end - open);
        if (e >= n) return false;
        *i = e + strlen(TOOLS_TAGS[w]);
        *st = TOOLS_NEXT[w];
        return true;
    }
    for (;;) {
        j = sl_tc_skip_ws(t, n, j);
        if (j >= n) return false;
        const size_t e = first_of(t, n, j, TOOLS_TAGS, N_TOOLS_ENDS + 1, &w);
        if (e == j && w < N_TOOLS_ENDS) {
            *i = e + strlen(TOOLS_TAGS[w]);
            *st = TOOLS_NEXT[w];
            return true;
        }
        if (e == j) { /* a call: up to its closing tag, or the section's end when that comes first */
            static const char *const ends[] = {CLOSE "call" SEP, CLOSE "tools" SEP, CLOSE "message" SEP, EOM};
            size_t k;
            const size_t ce = first_of(t, n, j, ends, 4, &k);
            if (ce >= n && !fin) return false;
            const size_t next = ce < n && k == 0 ? ce + strlen(ends[0]) : ce;
            if (!parse_call(cl, t + j, ce - j, tools)) *ok = *ok && piece(c, t + j, next - j);
            j = next;
            continue;
        }
        /* text that is no call, up to the next call or the section's end */
        const size_t end = e < n ? e : fin ? n : n - held(t, j, n, TOOLS_TAGS, N_TOOLS_ENDS + 1);
        *ok = *ok && piece(c, t + j, end - j);
        if (e >= n) return false;
        j = e;
    }
}

bool sl_kimi3_split(const char *t, size_t n, bool think_open, bool think, bool calls, const json_t *tools, bool fin,
                    sl_harmony *out) {
    memset(out, 0, sizeof *out);
    sl_strbuf r = {0}, c = {0};
    json_t *cl = json_array();
    bool ok = cl != NULL;
    state st = think_open ? S_THINK : S_OUT;
    size_t i = 0, tag = 0; /* where the text goes on, and where the tag that led to it began */
    while (ok && st != S_END) {
        if (st == S_TOOLS) {
            if (!tools_section(t, n, tag, &i, &st, calls, tools, fin, &c, cl, &ok)) break;
            continue;
        }
        size_t w;
        const size_t e = first_of(t, n, i, TEXT_TAGS, N_TEXT_TAGS, &w);
        const size_t end = e < n ? e : fin ? n : n - held(t, i, n, TEXT_TAGS, N_TEXT_TAGS);
        ok = piece(st == S_THINK && think ? &r : &c, t + i, end - i);
        if (e >= n) break;
        tag = e;
        i = e + strlen(TEXT_TAGS[w]);
        st = TEXT_NEXT[w];
    }
    return sl_harmony_take(out, &r, &c, cl, ok);
}

/*
 * toolcall_py.c — two tool-call syntaxes whose arguments are not JSON (see
 * toolcall_int.h):
 *
 *   LFM2 / LFM2.5 (pythonic): <|tool_call_start|>[f(a='x', b=3), g()]<|tool_call_end|>
 *     Keyword arguments only; values are Python literals. The LFM2.5 template
 *     writes strings as '...' with nothing escaped, dicts with tojson (JSON:
 *     "k", true, null) and lists with Python's repr (['a', True, None]), so
 *     both spellings of true/false/null are read. Also read, as sglang does:
 *     one call without the list brackets, and a JSON array of
 *     {"name", "arguments"} objects.
 *   Gemma 4: <|tool_call>call:f{a:<|"|>x<|"|>,b:3}<tool_call|>, repeated.
 *     Strings run from <|"|> to the next <|"|> (no escapes); keys are bare,
 *     or quoted like strings; None / True / False are read as well as
 *     null / true / false (the template writes None for a null).
 *
 * Both parsers are total on any bytes: every read is checked against n, and
 * values nest at most MAX_DEPTH levels (the arguments are the first; deeper
 * is malformed), so the recursion is bounded. Numbers are ints when they fit
 * int64, else doubles (a finite one, or the call fails); strings must be
 * UTF-8 without NUL (a \0 escape or a lone surrogate is malformed). One
 * malformed call fails the whole answer, as in vLLM. A block without its end
 * marker must end the answer; text after the last complete block is dropped,
 * as the other syntaxes of toolcall.c do.
 */
#include "server/textscan.h"
#include "server/toolcall_int.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
/* Python identifiers may hold any non-ASCII letter: bytes >= 0x80 pass here, UTF-8 is checked on the key. */
static bool is_ident(char c) { return is_alpha(c) || is_digit(c) || (unsigned char)c >= 0x80; }
static bool is_name(char c) { return is_alpha(c) || is_digit(c) || c == '.' || c == '-'; }

/* A bracketed list at s[*j, n), before an item: 1 when an item follows (*j at it), 0 when `close` ends the
 * list (*j past it), -1 for anything else. `first`: just after the opening bracket, where no comma may come;
 * elsewhere items need a comma between them and one may trail, as Python allows. */
static int list_step(const char *s, size_t n, size_t *j, char close, bool first) {
    size_t k = sl_tc_skip_ws(s, n, *j);
    const bool comma = !first && k < n && s[k] == ',';
    if (comma) k = sl_tc_skip_ws(s, n, k + 1);
    if (k >= n) return -1;
    if (s[k] == close) {
        *j = k + 1;
        return 0;
    }
    *j = k;
    return first || comma ? 1 : -1;
}

/* A string value of the bytes p[0, len): NULL for invalid UTF-8 or a NUL byte. */
static json_t *text_value(const char *p, size_t len) { return memchr(p, '\0', len) ? NULL : json_stringn(p, len); }

static bool word_is(const char *w, size_t l, const char *lit) { return l == strlen(lit) && !memcmp(w, lit, l); }

/* true / false / null, or Python's True / False / None. */
static json_t *word_at(const char *s, size_t n, size_t *i) {
    size_t j = *i;
    while (j < n && is_ident(s[j])) j++;
    const char *w = s + *i;
    const size_t l = j - *i;
    json_t *v = NULL;
    if (word_is(w, l, "true") || word_is(w, l, "True")) v = json_true();
    else if (word_is(w, l, "false") || word_is(w, l, "False")) v = json_false();
    else if (word_is(w, l, "null") || word_is(w, l, "None")) v = json_null();
    if (v) *i = j;
    return v;
}

#define NUM_MAX 64 /* bytes of a number's text, with its NUL */

/* Append c to a number's text buf[NUM_MAX]; *k counts on past the end, so the caller sees an overlong one. */
static void num_put(char *buf, size_t *k, char c) {
    if (*k < NUM_MAX) buf[*k] = c;
    (*k)++;
}

/* Decimal digits at s[*j, n) appended to buf (Python allows one '_' between two digits); their count. */
static size_t digits(const char *s, size_t n, size_t *j, bool py, char *buf, size_t *k) {
    size_t c = 0;
    for (; *j < n; (*j)++) {
        if (is_digit(s[*j])) {
            num_put(buf, k, s[*j]);
            c++;
        } else if (!(py && s[*j] == '_' && c && *j + 1 < n && is_digit(s[*j + 1]))) {
            break;
        }
    }
    return c;
}

/* A number at s[*i, n): -?D*(.D*)?([eE][+-]?D+)? with a digit in the mantissa. An int that fits int64 stays
 * an int; a longer one becomes a double, and one past double's range (or of NUM_MAX characters) fails. */
static json_t *number_at(const char *s, size_t n, size_t *i, bool py) {
    char buf[NUM_MAX];
    size_t j = *i, k = 0;
    if (j < n && s[j] == '-') num_put(buf, &k, s[j++]);
    size_t mant = digits(s, n, &j, py, buf, &k);
    const bool frac = j < n && s[j] == '.';
    if (frac) {
        num_put(buf, &k, s[j++]);
        mant += digits(s, n, &j, py, buf, &k);
    }
    if (!mant) return NULL;
    const bool exp = j < n && (s[j] == 'e' || s[j] == 'E');
    if (exp) {
        num_put(buf, &k, s[j++]);
        if (j < n && (s[j] == '+' || s[j] == '-')) num_put(buf, &k, s[j++]);
        if (!digits(s, n, &j, py, buf, &k)) return NULL;
    }
    if (k >= NUM_MAX) return NULL;
    buf[k] = '\0';
    json_t *v = NULL;
    errno = 0;
    const long long x = frac || exp ? 0 : strtoll(buf, NULL, 10);
    if (!frac && !exp && errno != ERANGE) {
        v = json_integer(x);
    } else {
        const double d = strtod(buf, NULL);
        v = isfinite(d) ? json_real(d) : NULL;
    }
    if (v) *i = j;
    return v;
}

/* ---- LFM2: Python literals ---------------------------------------------------- */

/* `d` hex digits at s[k, end) as *v. */
static bool hex_at(const char *s, size_t end, size_t k, int d, uint32_t *v) {
    if (end - k < (size_t)d) return false;
    *v = 0;
    for (int t = 0; t < d; t++) {
        const char c = s[k + t];
        const int h = is_digit(c) ? c - '0' : (c | 32) >= 'a' && (c | 32) <= 'f' ? (c | 32) - 'a' + 10 : -1;
        if (h < 0) return false;
        *v = *v << 4 | (uint32_t)h;
    }
    return true;
}

static size_t put_utf8(char *o, uint32_t cp) {
    static const unsigned char LEAD[] = {0, 0, 0xC0, 0xE0, 0xF0};
    const size_t len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (size_t t = len - 1; t > 0; t--, cp >>= 6) o[t] = (char)(0x80 | (cp & 0x3F));
    o[0] = (char)(LEAD[len] | cp);
    return len;
}

/* The body s[b, e) of a Python string with its escapes decoded into o (room for e - b bytes: no escape
 * decodes longer than it is written); its length, or -1 for \N{...}, a NUL, a lone surrogate or a code point
 * past U+10FFFF. An unknown escape keeps its backslash, as Python does. A \uD8xx\uDCxx pair is joined into one
 * code point: Python keeps two surrogates, but jinja's tojson writes non-BMP characters that way. */
static long py_unescape(const char *s, size_t b, size_t e, char *o) {
    size_t k = b, len = 0;
    while (k < e) {
        const char c = s[k++];
        if (c != '\\') {
            o[len++] = c;
            continue;
        }
        if (k == e) return -1;
        const char x = s[k++];
        uint32_t cp;
        switch (x) {
        case '\n': continue; /* a continued line */
        case '\r': k += k < e && s[k] == '\n'; continue;
        case '\\': case '\'': case '"': o[len++] = x; continue;
        case 'a': o[len++] = '\a'; continue;
        case 'b': o[len++] = '\b'; continue;
        case 'f': o[len++] = '\f'; continue;
        case 'n': o[len++] = '\n'; continue;
        case 'r': o[len++] = '\r'; continue;
        case 't': o[len++] = '\t'; continue;
        case 'v': o[len++] = '\v'; continue;
        case 'x': case 'u': case 'U': {
            const int d = x == 'x' ? 2 : x == 'u' ? 4 : 8;
            if (!hex_at(s, e, k, d, &cp)) return -1;
            k += (size_t)d;
            uint32_t lo;
            if (cp >= 0xD800 && cp < 0xDC00 && e - k >= 2 && s[k] == '\\' && s[k + 1] == 'u' &&
                hex_at(s, e, k + 2, 4, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                k += 6;
            }
            break;
        }
        default:
            if (x >= '0' && x <= '7') { /* up to three octal digits */
                cp = (uint32_t)(x - '0');
                for (int t = 0; t < 2 && k < e && s[k] >= '0' && s[k] <= '7'; t++) cp = cp * 8 + (uint32_t)(s[k++] - '0');
                break;
            }
            if (x == 'N') return -1; /* a character by name: not worth a name table */
            o[len++] = '\\';
            o[len++] = x;
            continue;
        }
        if (cp == 0 || (cp >= 0xD800 && cp < 0xE000) || cp > 0x10FFFF) return -1;
        len += put_utf8(o + len, cp);
    }
    return (long)len;
}

/* A Python string literal at s[*i, n) (at its quote), decoded: a string value, NULL if malformed. A quote
 * ends a one-quote string only when what follows it can follow a value (',', ')', ']', '}', ':'): the LFM2.5
 * template writes '...' around the raw text, so 'it's' is what the model learns for "it's". Raw newlines
 * are kept for the same reason. Triple-quoted strings end at the first unescaped triple quote. */
static json_t *py_string(const char *s, size_t n, size_t *i) {
    const char q = s[*i];
    const char *tq = q == '\'' ? "'''" : "\"\"\"";
    const bool triple = sl_tc_at(s, n, *i, tq);
    const size_t b = *i + (triple ? 3 : 1);
    size_t j = b, e;
    for (;; j++) {
        if (j >= n) return NULL;
        if (s[j] == '\\') {
            j++;
        } else if (s[j] == q && (!triple || sl_tc_at(s, n, j, tq))) {
            const size_t k = sl_tc_skip_ws(s, n, j + 1);
            if (triple || k == n || memchr(",)]}:", s[k], 5)) break;
        }
    }
    e = j;
    char *o = malloc(e - b + 1);
    if (!o) return NULL;
    const long len = py_unescape(s, b, e, o);
    json_t *v = len < 0 ? NULL : text_value(o, (size_t)len);
    free(o);
    if (v) *i = e + (triple ? 3 : 1);
    return v;
}

static json_t *py_value(const char *s, size_t n, size_t *i, int depth);

typedef json_t *(*value_fn)(const char *s, size_t n, size_t *i, int depth);

/* The items of the list whose opening bracket is at s[*i] up to `close`, each read by `value` one level
 * deeper, as a JSON array (NULL when malformed); *i steps past the list. */
static json_t *list_of(const char *s, size_t n, size_t *i, char close, int depth, value_fn value) {
    json_t *a = json_array();
    size_t j = *i + 1;
    int r = list_step(s, n, &j, close, true);
    while (r == 1) {
        json_t *e = value(s, n, &j, depth + 1);
        if (!e || json_array_append_new(a, e)) break;
        r = list_step(s, n, &j, close, false);
    }
    if (r != 0) {
        json_decref(a);
        return NULL;
    }
    *i = j;
    return a;
}

/* [a, b] or (a, b) as an array; (a) is a itself, as in Python. */
static json_t *py_seq(const char *s, size_t n, size_t *i, int depth) {
    const char close = s[*i] == '[' ? ']' : ')';
    size_t j = *i;
    json_t *a = list_of(s, n, &j, close, depth, py_value);
    if (!a) return NULL;
    if (close == ')' && json_array_size(a) == 1) { /* no comma before ')': parentheses, not a tuple */
        size_t p = j - 1;
        while (p > *i && sl_scan_ws(s[p - 1])) p--;
        if (s[p - 1] != ',') {
            json_t *e = json_incref(json_array_get(a, 0));
            json_decref(a);
            a = e;
        }
    }
    *i = j;
    return a;
}

/* {'k': v, ...}: keys must be strings (a JSON object's keys are). */
static json_t *py_dict(const char *s, size_t n, size_t *i, int depth) {
    json_t *o = json_object();
    size_t j = *i + 1;
    int r = list_step(s, n, &j, '}', true);
    while (r == 1) {
        if (s[j] != '\'' && s[j] != '"') goto fail;
        json_t *k = py_string(s, n, &j), *v = NULL;
        j = sl_tc_skip_ws(s, n, j);
        if (k && sl_tc_eat(s, n, &j, ":")) v = py_value(s, n, &j, depth + 1);
        const bool ok = v && json_object_setn_new(o, json_string_value(k), json_string_length(k), v) == 0;
        json_decref(k);
        if (!ok) goto fail;
        r = list_step(s, n, &j, '}', false);
    }
    if (r < 0) goto fail;
    *i = j;
    return o;
fail:
    json_decref(o);
    return NULL;
}

static json_t *py_value(const char *s, size_t n, size_t *i, int depth) {
    size_t j = sl_tc_skip_ws(s, n, *i);
    if (j >= n || depth > MAX_DEPTH) return NULL;
    const char c = s[j];
    json_t *v;
    if (c == '\'' || c == '"') v = py_string(s, n, &j);
    else if (c == '[' || c == '(') v = py_seq(s, n, &j, depth);
    else if (c == '{') v = py_dict(s, n, &j, depth);
    else if (c == '-' || c == '.' || is_digit(c)) v = number_at(s, n, &j, true);
    else v = word_at(s, n, &j);
    if (v) *i = j;
    return v;
}

json_t *sl_tc_py_literal(const char *s, size_t n) {
    size_t i = 0;
    json_t *v = py_value(s, n, &i, 1);
    if (v && sl_tc_skip_ws(s, n, i) != n) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

/* name(kw=value, ...) at s[*i, n), appended to calls; a positional argument, **kw or a repeated keyword is
 * malformed (Python itself refuses the last). */
static bool py_call(json_t *calls, const char *s, size_t n, size_t *i) {
    size_t j = sl_tc_skip_ws(s, n, *i);
    const size_t name = j;
    while (j < n && is_name(s[j])) j++;
    const size_t nl = j - name;
    j = sl_tc_skip_ws(s, n, j);
    if (!nl || j >= n || s[j] != '(') return false;
    json_t *args = json_object();
    j++;
    int r = list_step(s, n, &j, ')', true);
    while (r == 1) {
        const size_t k0 = j;
        while (j < n && is_ident(s[j])) j++;
        const size_t k1 = j;
        j = sl_tc_skip_ws(s, n, j);
        if (k1 == k0 || is_digit(s[k0]) || !sl_tc_eat(s, n, &j, "=") || json_object_getn(args, s + k0, k1 - k0))
            break;
        json_t *v = py_value(s, n, &j, 1);
        if (!v || json_object_setn_new(args, s + k0, k1 - k0, v)) break;
        r = list_step(s, n, &j, ')', false);
    }
    const bool ok = r == 0 && sl_tc_add_call(calls, s + name, nl, args);
    json_decref(args);
    if (ok) *i = j;
    return ok;
}

bool sl_tc_parse_pythonic(json_t *calls, const char *s, size_t n, size_t *content) {
    static const char START[] = "<|tool_call_start|>", END[] = "<|tool_call_end|>";
    size_t i = sl_scan_find(s, n, 0, START);
    if (i == n) return false;
    *content = i;
    while (sl_tc_eat(s, n, &i, START)) {
        i = sl_tc_skip_ws(s, n, i);
        const size_t k = i < n ? sl_tc_skip_ws(s, n, i + 1) : n;
        if (i < n && s[i] == '[' && k < n && s[k] == '{') { /* [{"name": ..., "arguments": {...}}] */
            if (!sl_tc_calls_json_at(calls, s, n, &i)) return false;
        } else if (i < n && s[i] == '[') {
            i++;
            int r = list_step(s, n, &i, ']', true);
            if (r != 1) return false; /* [] holds no call */
            while (r == 1) {
                if (!py_call(calls, s, n, &i)) return false;
                r = list_step(s, n, &i, ']', false);
            }
            if (r < 0) return false;
        } else if (!py_call(calls, s, n, &i)) {
            return false;
        }
        /* without its end marker a block must end the answer (generation stopped on it) */
        i = sl_tc_skip_ws(s, n, i);
        if (!sl_tc_eat(s, n, &i, END) && i < n) return false;
        i = sl_tc_skip_ws(s, n, i);
    }
    return true;
}

/* ---- Gemma 4 -------------------------------------------------------------------- */

#define GQ "<|\"|>" /* Gemma's string delimiter, one token */

/* A <|"|>...<|"|> string at s[*i, n): its body s[*b, *e); *i steps past. */
static bool gm_string(const char *s, size_t n, size_t *i, size_t *b, size_t *e) {
    size_t j = *i;
    if (!sl_tc_eat(s, n, &j, GQ)) return false;
    const size_t end = sl_scan_find(s, n, j, GQ);
    if (end == n) return false;
    *b = j;
    *e = end;
    *i = end + strlen(GQ);
    return true;
}

static json_t *gm_value(const char *s, size_t n, size_t *i, int depth);

/* {key:value,...} at s[*i, n) (at '{'): keys bare (the template's tool calls) or <|"|>-quoted (its nested
 * values elsewhere). A bare key runs to ':' and may not hold a bracket, a comma or '<'. */
static json_t *gm_object(const char *s, size_t n, size_t *i, int depth) {
    json_t *o = json_object();
    size_t j = *i + 1, kb, ke;
    int r = list_step(s, n, &j, '}', true);
    while (r == 1) {
        if (!gm_string(s, n, &j, &kb, &ke)) {
            kb = j;
            while (j < n && s[j] != ':' && !memchr("{}[],<", s[j], 6)) j++;
            for (ke = j; ke > kb && sl_scan_ws(s[ke - 1]);) ke--;
            if (ke == kb) goto fail;
        }
        j = sl_tc_skip_ws(s, n, j);
        if (!sl_tc_eat(s, n, &j, ":") || memchr(s + kb, '\0', ke - kb)) goto fail;
        json_t *v = gm_value(s, n, &j, depth + 1);
        if (!v || json_object_setn_new(o, s + kb, ke - kb, v)) goto fail;
        r = list_step(s, n, &j, '}', false);
    }
    if (r < 0) goto fail;
    *i = j;
    return o;
fail:
    json_decref(o);
    return NULL;
}

static json_t *gm_array(const char *s, size_t n, size_t *i, int depth) { return list_of(s, n, i, ']', depth, gm_value); }

static json_t *gm_value(const char *s, size_t n, size_t *i, int depth) {
    size_t j = sl_tc_skip_ws(s, n, *i), b, e;
    if (j >= n || depth > MAX_DEPTH) return NULL;
    const char c = s[j];
    json_t *v;
    if (sl_tc_at(s, n, j, GQ)) v = gm_string(s, n, &j, &b, &e) ? text_value(s + b, e - b) : NULL;
    else if (c == '{') v = gm_object(s, n, &j, depth);
    else if (c == '[') v = gm_array(s, n, &j, depth);
    else if (c == '-' || c == '.' || is_digit(c)) v = number_at(s, n, &j, false);
    else v = word_at(s, n, &j);
    if (v) *i = j;
    return v;
}

bool sl_tc_parse_gemma4(json_t *calls, const char *s, size_t n, size_t *content) {
    static const char START[] = "<|tool_call>", END[] = "<tool_call|>";
    size_t i = sl_scan_find(s, n, 0, START);
    if (i == n) return false;
    *content = i;
    while (sl_tc_eat(s, n, &i, START)) {
        i = sl_tc_skip_ws(s, n, i);
        if (!sl_tc_eat(s, n, &i, "call:")) return false;
        const size_t name = i;
        while (i < n && is_name(s[i])) i++;
        const size_t nl = i - name;
        i = sl_tc_skip_ws(s, n, i);
        json_t *args = i < n && s[i] == '{' ? gm_object(s, n, &i, 0) : NULL;
        const bool ok = args && sl_tc_add_call(calls, s + name, nl, args);
        json_decref(args);
        if (!ok) return false;
        /* without its end marker a call must end the answer (generation stopped on it) */
        i = sl_tc_skip_ws(s, n, i);
        if (!sl_tc_eat(s, n, &i, END) && i < n) return false;
        i = sl_tc_skip_ws(s, n, i);
    }
    return true;
}

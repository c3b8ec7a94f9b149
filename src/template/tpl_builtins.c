/*
 * tpl_builtins.c — what templates can call: jinja2's builtin filters and
 * tests (with jinja2's parameter names, defaults and edge cases), the
 * methods of str, dict and list that the immutable sandbox allows, and the
 * globals range, dict, namespace, raise_exception and strftime_now.
 *
 * Strings are handled by code point as Python does (len, indexing, find,
 * case mapping through utf8proc). Methods that would mutate a value and
 * that jinja2's ImmutableSandboxedEnvironment blocks (list.append,
 * dict.update, ...) resolve to an "unsafe" undefined that fails when
 * called, so templates behave exactly as under transformers.
 */
#include "template/tpl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#define TRY(x) do { if ((st = (x)) != SL_OK) return st; } while (0)

/* ---- argument binding --------------------------------------------------- */

static tundef missing_marker;
static const value MISSING = {.type = V_UNDEF, .u = &missing_marker};
static bool given(value v) { return !(v.type == V_UNDEF && v.u == &missing_marker); }

/* Bind positional then keyword arguments to `names` (n of them). Extra
 * positional arguments go to *rest when rest is not NULL. */
static sl_status bind(tpl_rt *r, const char *what, callargs *a, int n, const char *const *names, value *vals,
                      size_t *rest_from) {
    for (int i = 0; i < n; i++) vals[i] = MISSING;
    size_t np = a->npos;
    if (np > (size_t)n) {
        if (!rest_from) return tpl_err(r, SL_ERR_INVALID, "%s takes at most %d argument(s), %zu given", what, n, np);
        *rest_from = (size_t)n;
        np = (size_t)n;
    } else if (rest_from) {
        *rest_from = a->npos;
    }
    for (size_t i = 0; i < np; i++) vals[i] = a->pos[i];
    for (size_t k = 0; k < a->nkw; k++) {
        int i = 0;
        while (i < n && strcmp(names[i], a->kw[k]) != 0) i++;
        if (i == n) return tpl_err(r, SL_ERR_INVALID, "%s got an unexpected keyword argument '%s'", what, a->kw[k]);
        if (given(vals[i])) return tpl_err(r, SL_ERR_INVALID, "%s got multiple values for argument '%s'", what, a->kw[k]);
        vals[i] = a->kwv[k];
    }
    return SL_OK;
}

#define BIND(what, ...)                                                                     \
    const char *const names_[] = {__VA_ARGS__};                                             \
    enum { NARGS_ = sizeof names_ / sizeof names_[0] };                                     \
    value arg[NARGS_];                                                                      \
    TRY(bind(r, what, a, NARGS_, names_, arg, NULL))

static sl_status need_str(tpl_rt *r, const char *what, value v, value *out) {
    if (v.type == V_STR) { *out = v; return SL_OK; }
    (void)what;
    return v_to_str(r, v, out);
}

static bool as_int(value v, int64_t *i) {
    if (v.type == V_INT) { *i = v.i; return true; }
    if (v.type == V_BOOL) { *i = v.b; return true; }
    return false;
}

static sl_status want_int(tpl_rt *r, const char *what, value v, int64_t *i) {
    if (as_int(v, i)) return SL_OK;
    return tpl_err(r, SL_ERR_INVALID, "%s: '%s' object cannot be interpreted as an integer", what, v_type_name(v));
}

/* ---- conversions -------------------------------------------------------- */

sl_status tpl_to_list(tpl_rt *r, value v, value *out) {
    sl_status st;
    switch (v.type) {
    case V_LIST:
        if (v.l->kind == LK_GEN) {
            /* iterating a generator consumes it */
            size_t k = v.l->n - v.l->pos;
            TRY(vlist_new(r, k, false, out));
            if (k) memcpy(out->l->items, v.l->items + v.l->pos, k * sizeof(value));
            out->l->n = k;
            v.l->pos = v.l->n;
            return SL_OK;
        }
        *out = v;
        return SL_OK;
    case V_UNDEF: return vlist_new(r, 0, false, out);
    case V_DICT:
        TRY(vlist_new(r, v.d->n, false, out));
        if (v.d->n) memcpy(out->l->items, v.d->keys, v.d->n * sizeof(value));
        out->l->n = v.d->n;
        return SL_OK;
    case V_STR: {
        int64_t n = str_ncp(v.s);
        TRY(vlist_new(r, (size_t)n, false, out));
        size_t i = 0;
        while (i < v.s->len) {
            uint32_t cp;
            size_t k = utf8_dec(v.s->s + i, v.s->len - i, &cp);
            TRY(vstr(r, v.s->s + i, k, &out->l->items[out->l->n++]));
            i += k;
        }
        return SL_OK;
    }
    case V_LOOP: *out = (value){.type = V_LIST, .l = v.loop->items}; return SL_OK;
    default:
        return tpl_err(r, SL_ERR_INVALID, "'%s' object is not iterable", v_type_name(v));
    }
}

static sl_status py_len(tpl_rt *r, value v, int64_t *n) {
    switch (v.type) {
    case V_UNDEF: *n = 0; return SL_OK;
    case V_STR: *n = str_ncp(v.s); return SL_OK;
    case V_LIST:
        if (v.l->kind == LK_GEN) break;
        *n = (int64_t)v.l->n;
        return SL_OK;
    case V_DICT: *n = (int64_t)v.d->n; return SL_OK;
    case V_LOOP: *n = (int64_t)v.loop->items->n; return SL_OK;
    default: break;
    }
    return tpl_err(r, SL_ERR_INVALID, "object of type '%s' has no len()", v_type_name(v));
}

/* ---- case mapping ------------------------------------------------------- */

typedef enum { CASE_UPPER, CASE_LOWER, CASE_TITLE } casemode;

static sl_status put_case(tpl_rt *r, tpl_buf *b, uint32_t cp, casemode m) {
    if (m == CASE_UPPER && cp == 0xDF) return tpl_buf_put(r, b, "SS", 2);
    if (m == CASE_TITLE && cp == 0xDF) return tpl_buf_put(r, b, "Ss", 2);
    utf8proc_int32_t c = (utf8proc_int32_t)cp;
    c = m == CASE_UPPER ? utf8proc_toupper(c) : m == CASE_LOWER ? utf8proc_tolower(c) : utf8proc_totitle(c);
    return tpl_buf_put_cp(r, b, (uint32_t)c);
}

static bool is_cased(uint32_t cp) {
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT;
}

static bool is_alnum_cp(uint32_t cp) {
    if (cp < 0x80) return (cp >= '0' && cp <= '9') || ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z');
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
           (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO);
}

static sl_status map_case(tpl_rt *r, value s, casemode m, value *out) {
    sl_status st;
    tpl_buf b = {0};
    size_t i = 0;
    while (i < s.s->len) {
        uint32_t cp;
        size_t k = utf8_dec(s.s->s + i, s.s->len - i, &cp);
        TRY(put_case(r, &b, cp, m));
        i += k;
    }
    return vstr_buf(r, &b, out);
}

/* Python str.title(): titlecase after an uncased character */
static sl_status py_title(tpl_rt *r, value s, value *out) {
    sl_status st;
    tpl_buf b = {0};
    bool prev_cased = false;
    size_t i = 0;
    while (i < s.s->len) {
        uint32_t cp;
        size_t k = utf8_dec(s.s->s + i, s.s->len - i, &cp);
        TRY(put_case(r, &b, cp, prev_cased ? CASE_LOWER : CASE_TITLE));
        prev_cased = is_cased(cp);
        i += k;
    }
    return vstr_buf(r, &b, out);
}

/* Python str.capitalize(): first character titlecased, the rest lowercased */
static sl_status py_capitalize(tpl_rt *r, value s, value *out) {
    sl_status st;
    tpl_buf b = {0};
    size_t i = 0;
    while (i < s.s->len) {
        uint32_t cp;
        size_t k = utf8_dec(s.s->s + i, s.s->len - i, &cp);
        TRY(put_case(r, &b, cp, i == 0 ? CASE_TITLE : CASE_LOWER));
        i += k;
    }
    return vstr_buf(r, &b, out);
}

/* jinja2's title filter: words start after [-\s({\[<]+ */
static sl_status jinja_title(tpl_rt *r, value s, value *out) {
    sl_status st;
    tpl_buf b = {0};
    bool word_start = true;
    size_t i = 0;
    while (i < s.s->len) {
        uint32_t cp;
        size_t k = utf8_dec(s.s->s + i, s.s->len - i, &cp);
        bool sep = py_isspace(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<';
        if (sep) {
            TRY(tpl_buf_put(r, &b, s.s->s + i, k));
            word_start = true;
        } else {
            TRY(put_case(r, &b, cp, word_start ? CASE_UPPER : CASE_LOWER));
            word_start = false;
        }
        i += k;
    }
    return vstr_buf(r, &b, out);
}

/* ---- strip / split ------------------------------------------------------ */

typedef struct cpset {
    uint32_t *cp;
    size_t n;
    bool ws; /* Python whitespace */
} cpset;

static sl_status make_set(tpl_rt *r, value chars, cpset *set) {
    set->ws = !given(chars) || chars.type == V_NONE || chars.type == V_UNDEF;
    set->n = 0;
    set->cp = NULL;
    if (set->ws) return SL_OK;
    if (chars.type != V_STR) return tpl_err(r, SL_ERR_INVALID, "strip arg must be None or str");
    set->cp = tpl_alloc(&r->arena, (chars.s->len + 1) * sizeof(uint32_t));
    if (!set->cp) return tpl_nomem(r);
    size_t i = 0;
    while (i < chars.s->len) i += utf8_dec(chars.s->s + i, chars.s->len - i, &set->cp[set->n++]);
    return SL_OK;
}

static bool in_set(const cpset *set, uint32_t cp) {
    if (set->ws) return py_isspace(cp);
    for (size_t i = 0; i < set->n; i++)
        if (set->cp[i] == cp) return true;
    return false;
}

static size_t prev_char(const char *s, size_t end) {
    size_t st = end - 1;
    while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
    return st;
}

static sl_status do_strip(tpl_rt *r, value s, value chars, bool left, bool right, value *out) {
    sl_status st;
    cpset set;
    TRY(make_set(r, chars, &set));
    size_t a = 0, e = s.s->len;
    uint32_t cp;
    if (left)
        while (a < e) {
            size_t k = utf8_dec(s.s->s + a, e - a, &cp);
            if (!in_set(&set, cp)) break;
            a += k;
        }
    if (right)
        while (e > a) {
            size_t p = prev_char(s.s->s, e);
            utf8_dec(s.s->s + p, e - p, &cp);
            if (!in_set(&set, cp)) break;
            e = p;
        }
    if (a == 0 && e == s.s->len) { *out = s; out->safe = 0; return SL_OK; }
    return vstr(r, s.s->s + a, e - a, out);
}

static sl_status push_str(tpl_rt *r, tlist *l, const char *s, size_t n) {
    value v;
    sl_status st = vstr(r, s, n, &v);
    if (st) return st;
    return vlist_push(r, l, v);
}

static sl_status do_split(tpl_rt *r, value s, value sep, value maxv, bool from_right, value *out) {
    sl_status st;
    int64_t maxsplit = -1;
    if (given(maxv) && maxv.type != V_NONE) TRY(want_int(r, "split", maxv, &maxsplit));
    TRY(vlist_new(r, 0, false, out));
    tlist *l = out->l;
    const char *p = s.s->s;
    size_t n = s.s->len;
    TRY(tpl_charge(r, n));
    if (!given(sep) || sep.type == V_NONE) {
        if (!from_right) {
            size_t i = 0;
            uint32_t cp;
            for (;;) {
                while (i < n) { size_t k = utf8_dec(p + i, n - i, &cp); if (!py_isspace(cp)) break; i += k; }
                if (i >= n) break;
                if (maxsplit >= 0 && (int64_t)l->n == maxsplit) { TRY(push_str(r, l, p + i, n - i)); break; }
                size_t j = i;
                while (j < n) { size_t k = utf8_dec(p + j, n - j, &cp); if (py_isspace(cp)) break; j += k; }
                TRY(push_str(r, l, p + i, j - i));
                i = j;
            }
        } else {
            size_t e = n;
            uint32_t cp;
            for (;;) {
                while (e > 0) { size_t q = prev_char(p, e); utf8_dec(p + q, e - q, &cp); if (!py_isspace(cp)) break; e = q; }
                if (e == 0) break;
                if (maxsplit >= 0 && (int64_t)l->n == maxsplit) { TRY(push_str(r, l, p, e)); break; }
                size_t b = e;
                while (b > 0) { size_t q = prev_char(p, b); utf8_dec(p + q, b - q, &cp); if (py_isspace(cp)) break; b = q; }
                TRY(push_str(r, l, p + b, e - b));
                e = b;
            }
            for (size_t i = 0; i < l->n / 2; i++) { value t = l->items[i]; l->items[i] = l->items[l->n - 1 - i]; l->items[l->n - 1 - i] = t; }
        }
        return SL_OK;
    }
    if (sep.type != V_STR) return tpl_err(r, SL_ERR_INVALID, "must be str or None, not %s", v_type_name(sep));
    size_t m = sep.s->len;
    if (m == 0) return tpl_err(r, SL_ERR_INVALID, "empty separator");
    if (!from_right) {
        size_t i = 0;
        while (maxsplit < 0 || (int64_t)l->n < maxsplit) {
            const char *f = memmem(p + i, n - i, sep.s->s, m);
            if (!f) break;
            TRY(push_str(r, l, p + i, (size_t)(f - p) - i));
            i = (size_t)(f - p) + m;
        }
        TRY(push_str(r, l, p + i, n - i));
    } else {
        size_t e = n;
        int64_t splits = 0;
        while (maxsplit < 0 || splits < maxsplit) {
            /* last occurrence of sep ending at or before e */
            const char *found = NULL;
            if (e >= m)
                for (size_t q = e - m + 1; q-- > 0;)
                    if (memcmp(p + q, sep.s->s, m) == 0) { found = p + q; break; }
            if (!found) break;
            TRY(push_str(r, l, found + m, (size_t)(p + e - found) - m));
            e = (size_t)(found - p);
            splits++;
        }
        TRY(push_str(r, l, p, e));
        for (size_t i = 0; i < l->n / 2; i++) { value t = l->items[i]; l->items[i] = l->items[l->n - 1 - i]; l->items[l->n - 1 - i] = t; }
    }
    return SL_OK;
}

static sl_status do_replace(tpl_rt *r, value s, value old, value nw, int64_t count, value *out) {
    sl_status st;
    tpl_buf b = {0};
    const char *p = s.s->s;
    size_t n = s.s->len, m = old.s->len;
    TRY(tpl_charge(r, n));
    if (m == 0) {
        size_t i = 0;
        int64_t done = 0;
        while (count < 0 || done < count) {
            TRY(tpl_buf_put(r, &b, nw.s->s, nw.s->len));
            done++;
            if (i >= n) break;
            uint32_t cp;
            size_t k = utf8_dec(p + i, n - i, &cp);
            TRY(tpl_buf_put(r, &b, p + i, k));
            i += k;
        }
        if (i < n) TRY(tpl_buf_put(r, &b, p + i, n - i));
        return vstr_buf(r, &b, out);
    }
    size_t i = 0;
    int64_t done = 0;
    while (count < 0 || done < count) {
        const char *f = memmem(p + i, n - i, old.s->s, m);
        if (!f) break;
        TRY(tpl_buf_put(r, &b, p + i, (size_t)(f - p) - i));
        TRY(tpl_buf_put(r, &b, nw.s->s, nw.s->len));
        i = (size_t)(f - p) + m;
        done++;
    }
    TRY(tpl_buf_put(r, &b, p + i, n - i));
    return vstr_buf(r, &b, out);
}

/* Python str.splitlines(keepends) */
static sl_status split_lines(tpl_rt *r, value self, bool keep, value *out) {
    sl_status st;
    const tstr *s = self.s;
    TRY(vlist_new(r, 0, false, out));
    size_t p = 0;
    while (p < s->len) {
        size_t q = p, k = 0;
        uint32_t cp = 0;
        while (q < s->len) {
            k = utf8_dec(s->s + q, s->len - q, &cp);
            if (py_islinebreak(cp)) break;
            q += k;
        }
        size_t next = q < s->len ? q + k : q;
        if (q < s->len && cp == '\r' && next < s->len && s->s[next] == '\n') next++;
        TRY(push_str(r, out->l, s->s + p, (keep ? next : q) - p));
        p = next;
    }
    return SL_OK;
}

/* ---- sorting (stable merge sort with a fallible comparator) ------------- */

typedef struct sortctx {
    tpl_rt *r;
    bool reverse;
    bool eq_first; /* keys compare as one-element lists (jinja2's sort filter): equal keys never reach < */
    bool case_sensitive;
    sl_status st;
} sortctx;

static sl_status ignore_case(tpl_rt *r, value v, bool case_sensitive, value *out) {
    if (!case_sensitive && v.type == V_STR) return map_case(r, v, CASE_LOWER, out);
    *out = v;
    return SL_OK;
}

static int sort_cmp(sortctx *c, value a, value b) {
    if (c->st) return 0;
    int k = 0;
    if (c->eq_first) {
        bool eq = false;
        if ((c->st = v_eq(c->r, a, b, &eq)) || eq) return 0;
    }
    c->st = v_cmp(c->r, a, b, "<", &k);
    return c->reverse ? -k : k;
}

/* sorts keys[] and carries vals[] along */
static void merge_sort(sortctx *c, value *keys, value *vals, value *tk, value *tv, size_t n) {
    if (n < 2 || c->st) return;
    size_t h = n / 2;
    merge_sort(c, keys, vals, tk, tv, h);
    merge_sort(c, keys + h, vals + h, tk, tv, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n) {
        if (sort_cmp(c, keys[j], keys[i]) < 0) { tk[k] = keys[j]; tv[k++] = vals[j++]; }
        else { tk[k] = keys[i]; tv[k++] = vals[i++]; }
    }
    while (i < h) { tk[k] = keys[i]; tv[k++] = vals[i++]; }
    while (j < n) { tk[k] = keys[j]; tv[k++] = vals[j++]; }
    memcpy(keys, tk, n * sizeof(value)); /* n >= 2 here */
    memcpy(vals, tv, n * sizeof(value));
}

static sl_status sort_by(tpl_rt *r, value *keys, value *vals, size_t n, bool reverse, bool eq_first) {
    sl_status st;
    value *tk = tpl_alloc(&r->arena, (n + 1) * sizeof(value)), *tv = tpl_alloc(&r->arena, (n + 1) * sizeof(value));
    if (!tk || !tv) return tpl_nomem(r);
    TRY(tpl_charge(r, n * 64));
    sortctx c = {.r = r, .reverse = reverse, .eq_first = eq_first};
    merge_sort(&c, keys, vals, tk, tv, n);
    return c.st;
}

/* jinja2 make_attrgetter: dotted path, integer parts as indexes, each through getitem */
static sl_status attr_get(tpl_rt *r, value item, value attr, value *out) {
    sl_status st;
    if (attr.type != V_STR) return tpl_getitem(r, item, attr, out);
    const char *p = attr.s->s, *end = p + attr.s->len;
    value cur = item;
    while (p <= end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        if (!dot) dot = end;
        value key;
        bool digits = dot > p;
        for (const char *q = p; q < dot; q++)
            if (*q < '0' || *q > '9') digits = false;
        if (digits && dot - p < 18) key = vint(strtoll(p, NULL, 10));
        else TRY(vstr(r, p, (size_t)(dot - p), &key));
        TRY(tpl_getitem(r, cur, key, &cur));
        p = dot + 1;
        if (dot == end) break;
    }
    *out = cur;
    return SL_OK;
}

/* ---- filters ------------------------------------------------------------ */

typedef sl_status (*filter_fn)(tpl_rt *r, value v, callargs *a, value *out);

static sl_status f_abs(tpl_rt *r, value v, callargs *a, value *out) {
    (void)a;
    if (v.type == V_BOOL) v = vint(v.b);
    if (v.type == V_INT) {
        if (v.i == INT64_MIN) return tpl_err(r, SL_ERR_RANGE, "integer overflow in abs");
        *out = vint(v.i < 0 ? -v.i : v.i);
        return SL_OK;
    }
    if (v.type == V_FLOAT) { *out = vfloat(fabs(v.f)); return SL_OK; }
    if (v.type == V_UNDEF) return tpl_undef_error(r, v);
    return tpl_err(r, SL_ERR_INVALID, "bad operand type for abs(): '%s'", v_type_name(v));
}

static sl_status f_attr(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    BIND("attr", "name");
    if (!given(arg[0]) || arg[0].type != V_STR) return tpl_err(r, SL_ERR_INVALID, "attr: the name must be a string");
    return tpl_getattr(r, v, arg[0].s->s, arg[0].s->len, out);
}

static sl_status f_batch(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    BIND("batch", "linecount", "fill_with");
    int64_t lc = 0;
    TRY(want_int(r, "batch", given(arg[0]) ? arg[0] : V_NONE_VAL, &lc));
    if (lc <= 0) return tpl_err(r, SL_ERR_INVALID, "batch: linecount must be positive");
    value items;
    TRY(tpl_to_list(r, v, &items));
    TRY(vlist_new(r, 0, false, out));
    value cur = {0};
    for (size_t i = 0; i < items.l->n; i++) {
        if (i % (size_t)lc == 0) {
            TRY(vlist_new(r, (size_t)(lc < 64 ? lc : 64), false, &cur));
            TRY(vlist_push(r, out->l, cur));
        }
        TRY(vlist_push(r, cur.l, items.l->items[i]));
    }
    if (cur.type == V_LIST && given(arg[1]) && arg[1].type != V_NONE)
        while ((int64_t)cur.l->n < lc) TRY(vlist_push(r, cur.l, arg[1]));
    v_set_kind(out, LK_GEN, "generator", "do_batch");
    return SL_OK;
}

static sl_status f_capitalize(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    (void)a;
    TRY(need_str(r, "capitalize", v, &v));
    return py_capitalize(r, v, out);
}

static sl_status pad_center(tpl_rt *r, value s, int64_t width, uint32_t fill, int align, value *out) {
    sl_status st;
    int64_t n = str_ncp(s.s);
    if (width <= n) { *out = s; return SL_OK; }
    if (width - n > (int64_t)r->lim.max_output) return tpl_err(r, SL_ERR_RANGE, "output limit exceeded");
    int64_t marg = width - n, left;
    if (align < 0) left = 0;
    else if (align > 0) left = marg;
    else left = marg / 2 + (marg & width & 1); /* CPython pad() for center */
    tpl_buf b = {0};
    for (int64_t i = 0; i < left; i++) TRY(tpl_buf_put_cp(r, &b, fill));
    TRY(tpl_buf_put(r, &b, s.s->s, s.s->len));
    for (int64_t i = 0; i < marg - left; i++) TRY(tpl_buf_put_cp(r, &b, fill));
    return vstr_buf(r, &b, out);
}

static sl_status f_center(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    BIND("center", "width");
    int64_t w = 80;
    if (given(arg[0])) TRY(want_int(r, "center", arg[0], &w));
    TRY(need_str(r, "center", v, &v));
    return pad_center(r, v, w, ' ', 0, out);
}

static sl_status f_length(tpl_rt *r, value v, callargs *a, value *out) {
    (void)a;
    int64_t n = 0;
    sl_status st = py_len(r, v, &n);
    if (st) return st;
    *out = vint(n);
    return SL_OK;
}

static sl_status f_default(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    BIND("default", "default_value", "boolean");
    bool boolean = given(arg[1]) && v_truthy(arg[1]);
    if (v.type == V_UNDEF || (boolean && !v_truthy(v))) {
        if (given(arg[0])) *out = arg[0];
        else TRY(vstr(r, "", 0, out));
        return SL_OK;
    }
    *out = v;
    return SL_OK;
}

static sl_status f_dictsort(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    BIND("dictsort", "case_sensitive", "by", "reverse");
    if (v.type != V_DICT) return tpl_err(r, SL_ERR_INVALID, "dictsort: '%s' object has no attribute 'items'", v_type_name(v));
    bool cs = given(arg[0]) && v_truthy(arg[0]), rev = given(arg[2]) && v_truthy(arg[2]);
    int pos = 0;
    if (given(arg[1])) {
        if (arg[1].type == V_STR && !strcmp(arg[1].s->s, "key")) pos = 0;
        else if (arg[1].type == V_STR && !strcmp(arg[1].s->s, "value")) pos = 1;
        else return tpl_err(r, SL_ERR_INVALID, "You can only sort by either \"key\" or \"value\"");
    }
    size_t n = v.d->n;
    value *keys = tpl_alloc(&r->arena, (n + 1) * sizeof(value)), *vals = tpl_alloc(&r->arena, (n + 1) * sizeof(value));
    if (!keys || !vals) return tpl_nomem(r);
    for (size_t i = 0; i < n; i++) {
        value pair;
        TRY(vlist_new(r, 2, true, &pair));
        pair.l->items[0] = v.d->keys[i];
        pair.l->items[1] = v.d->vals[i];
        pair.l->n = 2;
        vals[i] = pair;
        TRY(ignore_case(r, pos ? v.d->vals[i] : v.d->keys[i], cs, &keys[i]));
    }
    TRY(sort_by(r, keys, vals, n, rev, false));
    TRY(vlist_new(r, n, false, out));
    if (n) memcpy(out->l->items, vals, n * sizeof(value));
    out->l->n = n;
    return SL_OK;
}

static sl_status f_escape(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    (void)a;
    if (v.type == V_STR && v.safe) { *out = v; return SL_OK; }
    TRY(v_to_str(r, v, &v));
    tpl_buf b = {0};
    for (size_t i = 0; i < v.s->len; i++) {
        switch (v.s->s[i]) {
        case '&': TRY(tpl_buf_put(r, &b, "&amp;", 5)); break;
        case '<': TRY(tpl_buf_put(r, &b, "&lt;", 4)); break;
        case '>': TRY(tpl_buf_put(r, &b, "&gt;", 4)); break;
        case '\'': TRY(tpl_buf_put(r, &b, "&#39;", 5)); break;
        case '"': TRY(tpl_buf_put(r, &b, "&#34;", 5)); break;
        default: TRY(tpl_buf_putc(r, &b, v.s->s[i]));
        }
    }
    TRY(vstr_buf(r, &b, out));
    out->safe = 1;
    return SL_OK;
}

static sl_status f_first(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    (void)a;
    value l;
    if (v.type == V_LIST && v.l->kind == LK_GEN) { /* next(iter(gen)) takes one item */
        if (v.l->pos >= v.l->n) return vundef(r, "No first item, sequence was empty.", NULL, out);
        *out = v.l->items[v.l->pos++];
        return SL_OK;
    }
    TRY(tpl_to_list(r, v, &l));
    if (l.l->n == 0) return vundef(r, "No first item, sequence was empty.", NULL, out);
    *out = l.l->items[0];
    return SL_OK;
}

static sl_status f_last(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    (void)a;
    value l;
    if (v.type == V_LIST && v.l->kind == LK_GEN)
        return tpl_err(r, SL_ERR_INVALID, "'%s' object is not reversible", v_type_name(v));
    TRY(tpl_to_list(r, v, &l));
    if (l.l->n == 0) return vundef(r, "No last item, sequence was empty.", NULL, out);
    *out = l.l->items[l.l->n - 1];
    return SL_OK;
}

/* Python float(str): strip whitespace, underscores between digits, inf/nan */
static bool parse_float(const tstr *s, double *out) {
    char buf[128];
    size_t a = 0, e = s->len;
    while (a < e && py_isspace((unsigned char)s->s[a])) a++;
    while (e > a && py_isspace((unsigned char)s->s[e - 1])) e--;
    if (e == a || e - a >= sizeof buf) return false;
    size_t k = 0;
    for (size_t i = a; i < e; i++) {
        char c = s->s[i];
        if (c == '_') {
            if (i == a || i + 1 == e || !(s->s[i - 1] >= '0' && s->s[i - 1] <= '9') || !(s->s[i + 1] >= '0' && s->s[i + 1] <= '9'))
                return false;
            continue;
        }
        if (!strchr("0123456789+-.eEinfatyINFATY", c)) return false;
        buf[k++] = c;
    }
    buf[k] = '\0';
    const char *q = buf;
    if (*q == '+' || *q == '-') q++;
    if (!strcasecmp(q, "inf") || !strcasecmp(q, "infinity") || !strcasecmp(q, "nan")) {
        *out = strtod(buf, NULL);
        return true;
    }
    for (const char *c = q; *c; c++)
        if ((*c | 0x20) >= 'a' && (*c | 0x20) <= 'z' && (*c | 0x20) != 'e') return false;
    char *end;
    *out = strtod(buf, &end);
    return *end == '\0' && end != buf;
}

/* Python int(str, base) */
static bool parse_int(const tstr *s, int base, int64_t *out) {
    size_t a = 0, e = s->len;
    while (a < e && py_isspace((unsigned char)s->s[a])) a++;
    while (e > a && py_isspace((unsigned char)s->s[e - 1])) e--;
    if (a == e) return false;
    bool neg = false;
    if (s->s[a] == '+' || s->s[a] == '-') { neg = s->s[a] == '-'; a++; }
    if (base == 0 || base == 16 || base == 8 || base == 2) {
        if (e - a > 2 && s->s[a] == '0') {
            char p = (char)(s->s[a + 1] | 0x20);
            int pb = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
            if (pb && (base == 0 || base == pb)) { base = pb; a += 2; if (a < e && s->s[a] == '_') a++; }
        }
        if (base == 0) base = 10;
    }
    if (a == e) return false;
    uint64_t v = 0;
    for (size_t i = a; i < e; i++) {
        char c = s->s[i];
        if (c == '_' && i > a && i + 1 < e && s->s[i - 1] != '_') continue;
        int d = c >= '0' && c <= '9' ? c - '0' : (c | 0x20) >= 'a' && (c | 0x20) <= 'z' ? (c | 0x20) - 'a' + 10 : 99;
        if (d >= base) return false;
        if (v > ((uint64_t)INT64_MAX - (uint64_t)d) / (uint64_t)base) return false;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

static sl_status f_float(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    BIND("float", "default");
    value def = given(arg[0]) ? arg[0] : vfloat(0.0);
    double d;
    if (v_is_num(v)) { *out = vfloat(v_num(v)); return SL_OK; }
    if (v.type == V_STR && parse_float(v.s, &d)) { *out = vfloat(d); return SL_OK; }
    *out = def;
    return SL_OK;
}

static sl_status f_int(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    BIND("int", "default", "base");
    value def = given(arg[0]) ? arg[0] : vint(0);
    int64_t base = 10, i;
    if (given(arg[1])) TRY(want_int(r, "int", arg[1], &base));
    if (v.type == V_INT || v.type == V_BOOL) { *out = vint(v.type == V_INT ? v.i : v.b); return SL_OK; }
    if (v.type == V_FLOAT) {
        if (isnan(v.f)) { *out = def; return SL_OK; }
        if (isinf(v.f) || fabs(v.f) >= 9.2e18) return tpl_err(r, SL_ERR_RANGE, "int: cannot convert float %g to integer", v.f);
        *out = vint((int64_t)v.f);
        return SL_OK;
    }
    if (v.type == V_STR) {
        double d;
        if (base >= 0 && base <= 36 && base != 1 && parse_int(v.s, (int)base, &i)) { *out = vint(i); return SL_OK; }
        if (parse_float(v.s, &d) && !isnan(d)) {
            if (isinf(d) || fabs(d) >= 9.2e18) return tpl_err(r, SL_ERR_RANGE, "int: cannot convert float to integer");
            *out = vint((int64_t)d);
            return SL_OK;
        }
    }
    *out = def;
    return SL_OK;
}

static sl_status f_indent(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    BIND("indent", "width", "first", "blank");
    value ind;
    if (given(arg[0]) && arg[0].type == V_STR) ind = arg[0];
    else {
        int64_t w = 4;
        if (given(arg[0])) TRY(want_int(r, "indent", arg[0], &w));
        if (w < 0) w = 0;
        if (w > 4096) return tpl_err(r, SL_ERR_RANGE, "indent: width too large");
        char sp[4097];
        memset(sp, ' ', (size_t)w);
        TRY(vstr(r, sp, (size_t)w, &ind));
    }
    bool first = given(arg[1]) && v_truthy(arg[1]), blank = given(arg[2]) && v_truthy(arg[2]);
    TRY(need_str(r, "indent", v, &v));
    /* s += "\n"; lines = s.splitlines() — as jinja2 does */
    tpl_buf b = {0};
    value s2, lines;
    TRY(tpl_buf_put(r, &b, v.s->s, v.s->len));
    TRY(tpl_buf_putc(r, &b, '\n'));
    TRY(vstr_buf(r, &b, &s2));
    TRY(split_lines(r, s2, false, &lines));
    memset(&b, 0, sizeof b);
    if (first) TRY(tpl_buf_put(r, &b, ind.s->s, ind.s->len));
    for (size_t i = 0; i < lines.l->n; i++) {
        const tstr *ln = lines.l->items[i].s;
        if (i) {
            TRY(tpl_buf_putc(r, &b, '\n'));
            if (blank || ln->len) TRY(tpl_buf_put(r, &b, ind.s->s, ind.s->len));
        }
        TRY(tpl_buf_put(r, &b, ln->s, ln->len));
    }
    return vstr_buf(r, &b, out);
}

static sl_status f_items(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    (void)a;
    if (v.type == V_UNDEF) return vlist_new(r, 0, false, out);
    if (v.type != V_DICT) return tpl_err(r, SL_ERR_INVALID, "Can only get item pairs from a mapping.");
    TRY(vlist_new(r, v.d->n, false, out));
    for (size_t i = 0; i < v.d->n; i++) {
        value pair;
        TRY(vlist_new(r, 2, true, &pair));
        pair.l->items[0] = v.d->keys[i];
        pair.l->items[1] = v.d->vals[i];
        pair.l->n = 2;
        out->l->items[out->l->n++] = pair;
    }
    v_set_kind(out, LK_GEN, "generator", "do_items");
    return SL_OK;
}

static sl_status f_join(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    BIND("join", "d", "attribute");
    value sep;
    if (given(arg[0])) TRY(v_to_str(r, arg[0], &sep));
    else TRY(vstr(r, "", 0, &sep));
    value items;
    TRY(tpl_to_list(r, v, &items));
    tpl_buf b = {0};
    for (size_t i = 0; i < items.l->n; i++) {
        value it = items.l->items[i];
        if (given(arg[1]) && arg[1].type != V_NONE) TRY(attr_get(r, it, arg[1], &it));
        if (i) TRY(tpl_buf_put(r, &b, sep.s->s, sep.s->len));
        TRY(v_str_append(r, &b, it));
    }
    return vstr_buf(r, &b, out);
}

static sl_status f_list(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    (void)a;
    value l;
    TRY(tpl_to_list(r, v, &l));
    TRY(vlist_new(r, l.l->n, false, out));
    if (l.l->n) memcpy(out->l->items, l.l->items, l.l->n * sizeof(value));
    out->l->n = l.l->n;
    return SL_OK;
}

static sl_status f_lower(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    (void)a;
    TRY(need_str(r, "lower", v, &v));
    return map_case(r, v, CASE_LOWER, out);
}

static sl_status f_upper(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    (void)a;
    TRY(need_str(r, "upper", v, &v));
    return map_case(r, v, CASE_UPPER, out);
}

static sl_status f_title(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    (void)a;
    TRY(need_str(r, "title", v, &v));
    return jinja_title(r, v, out);
}

static sl_status f_map(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    value items;
    if (!v_truthy(v)) { /* jinja2: `if value:` before anything */
        TRY(vlist_new(r, 0, false, out));
        v_set_kind(out, LK_GEN, "generator", "sync_do_map");
        return SL_OK;
    }
    TRY(tpl_to_list(r, v, &items));
    TRY(vlist_new(r, items.l->n, false, out));
    value attr = MISSING, def = MISSING;
    for (size_t k = 0; k < a->nkw; k++) {
        if (!strcmp(a->kw[k], "attribute")) attr = a->kwv[k];
        else if (!strcmp(a->kw[k], "default")) def = a->kwv[k];
    }
    if (given(attr)) {
        for (size_t k = 0; k < a->nkw; k++)
            if (strcmp(a->kw[k], "attribute") && strcmp(a->kw[k], "default"))
                return tpl_err(r, SL_ERR_INVALID, "Unexpected keyword argument '%s'", a->kw[k]);
        if (a->npos) return tpl_err(r, SL_ERR_INVALID, "map: positional arguments with attribute=");
        for (size_t i = 0; i < items.l->n; i++) {
            value x;
            TRY(attr_get(r, items.l->items[i], attr, &x));
            if (x.type == V_UNDEF && given(def)) x = def;
            out->l->items[out->l->n++] = x;
        }
        v_set_kind(out, LK_GEN, "generator", "sync_do_map");
        return SL_OK;
    }
    if (a->npos == 0 || a->pos[0].type != V_STR) return tpl_err(r, SL_ERR_INVALID, "map requires a filter argument");
    const char *fname = a->pos[0].s->s;
    int id = tpl_filter_id(fname);
    if (id < 0) return tpl_err(r, SL_ERR_INVALID, "No filter named '%s'", fname);
    callargs sub = {.pos = a->pos + 1, .npos = a->npos - 1, .kw = a->kw, .kwv = a->kwv, .nkw = a->nkw};
    for (size_t i = 0; i < items.l->n; i++) {
        value x;
        TRY(tpl_apply_filter(r, id, fname, items.l->items[i], &sub, &x));
        out->l->items[out->l->n++] = x;
    }
    v_set_kind(out, LK_GEN, "generator", "sync_do_map");
    return SL_OK;
}

static sl_status minmax(tpl_rt *r, value v, callargs *a, value *out, bool want_max) {
    sl_status st;
    BIND(want_max ? "max" : "min", "case_sensitive", "attribute");
    bool cs = given(arg[0]) && v_truthy(arg[0]);
    value items;
    TRY(tpl_to_list(r, v, &items));
    if (items.l->n == 0) return vundef(r, "No aggregated item, sequence was empty.", NULL, out);
    value best = items.l->items[0], bestk;
    if (given(arg[1]) && arg[1].type != V_NONE) TRY(attr_get(r, best, arg[1], &bestk));
    else bestk = best;
    TRY(ignore_case(r, bestk, cs, &bestk));
    for (size_t i = 1; i < items.l->n; i++) {
        value k = items.l->items[i];
        if (given(arg[1]) && arg[1].type != V_NONE) TRY(attr_get(r, k, arg[1], &k));
        TRY(ignore_case(r, k, cs, &k));
        int c;
        TRY(v_cmp(r, k, bestk, want_max ? ">" : "<", &c));
        if (want_max ? c > 0 : c < 0) { best = items.l->items[i]; bestk = k; }
    }
    *out = best;
    return SL_OK;
}

static sl_status f_max(tpl_rt *r, value v, callargs *a, value *out) { return minmax(r, v, a, out, true); }
static sl_status f_min(tpl_rt *r, value v, callargs *a, value *out) { return minmax(r, v, a, out, false); }

/* select/reject/selectattr/rejectattr */
static sl_status select_common(tpl_rt *r, value v, callargs *a, value *out, bool by_attr, bool keep_when) {
    sl_status st;
    value items;
    TRY(vlist_new(r, 0, false, out));
    v_set_kind(out, LK_GEN, "generator", "select_or_reject");
    if (!v_truthy(v)) return SL_OK; /* jinja2: `if value:` before anything */
    TRY(tpl_to_list(r, v, &items));
    size_t off = 0;
    value attr = MISSING;
    if (by_attr) {
        if (a->npos < 1) return tpl_err(r, SL_ERR_INVALID, "%s: missing attribute name", keep_when ? "selectattr" : "rejectattr");
        attr = a->pos[0];
        off = 1;
    }
    int tid = -1;
    const char *tname = NULL;
    if (a->npos > off) {
        if (a->pos[off].type != V_STR) return tpl_err(r, SL_ERR_INVALID, "the test name must be a string");
        tname = a->pos[off].s->s;
        tid = tpl_test_id(tname);
        if (tid < 0) return tpl_err(r, SL_ERR_INVALID, "No test named '%s'", tname);
        off++;
    }
    callargs sub = {.pos = a->pos ? a->pos + off : NULL, .npos = a->npos - off, .kw = a->kw, .kwv = a->kwv, .nkw = a->nkw};
    for (size_t i = 0; i < items.l->n; i++) {
        value it = items.l->items[i], x = it;
        if (by_attr) TRY(attr_get(r, it, attr, &x));
        bool res;
        if (tid >= 0) TRY(tpl_apply_test(r, tid, tname, x, &sub, &res));
        else res = v_truthy(x);
        if (res == keep_when) TRY(vlist_push(r, out->l, it));
    }
    return SL_OK;
}

static sl_status f_select(tpl_rt *r, value v, callargs *a, value *out) { return select_common(r, v, a, out, false, true); }
static sl_status f_reject(tpl_rt *r, value v, callargs *a, value *out) { return select_common(r, v, a, out, false, false); }
static sl_status f_selectattr(tpl_rt *r, value v, callargs *a, value *out) { return select_common(r, v, a, out, true, true); }
static sl_status f_rejectattr(tpl_rt *r, value v, callargs *a, value *out) { return select_common(r, v, a, out, true, false); }

static sl_status f_replace(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    BIND("replace", "old", "new", "count");
    if (!given(arg[0]) || !given(arg[1])) return tpl_err(r, SL_ERR_INVALID, "replace: missing 'old' or 'new'");
    value s, old, nw;
    TRY(v_to_str(r, v, &s));
    TRY(v_to_str(r, arg[0], &old));
    TRY(v_to_str(r, arg[1], &nw));
    int64_t count = -1;
    if (given(arg[2]) && arg[2].type != V_NONE) TRY(want_int(r, "replace", arg[2], &count));
    return do_replace(r, s, old, nw, count, out);
}

static sl_status f_reverse(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    (void)a;
    if (v.type == V_STR) {
        tpl_buf b = {0};
        size_t e = v.s->len;
        while (e > 0) {
            size_t p = prev_char(v.s->s, e);
            TRY(tpl_buf_put(r, &b, v.s->s + p, e - p));
            e = p;
        }
        return vstr_buf(r, &b, out);
    }
    value l;
    /* reversed(seq) is an iterator; a generator is not reversible, so jinja2 falls back to a reversed list */
    bool gen = v.type == V_LIST && v.l->kind == LK_GEN;
    TRY(tpl_to_list(r, v, &l));
    TRY(vlist_new(r, l.l->n, false, out));
    for (size_t i = 0; i < l.l->n; i++) out->l->items[i] = l.l->items[l.l->n - 1 - i];
    out->l->n = l.l->n;
    if (!gen) {
        const char *tn = v.type == V_DICT ? "dict_reversekeyiterator"
                         : v.type != V_LIST ? "reversed"
                         : v.l->kind == LK_RANGE ? "range_iterator"
                         : v.l->kind == LK_VIEW ? "dict_reverseiterator"
                         : v.l->tuple ? "reversed" : "list_reverseiterator";
        v_set_kind(out, LK_GEN, tn, NULL);
    }
    return SL_OK;
}

static sl_status f_round(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    BIND("round", "precision", "method");
    int64_t prec = 0;
    if (given(arg[0])) TRY(want_int(r, "round", arg[0], &prec));
    const char *method = "common";
    if (given(arg[1])) {
        if (arg[1].type != V_STR) return tpl_err(r, SL_ERR_INVALID, "method must be common, ceil or floor");
        method = arg[1].s->s;
    }
    if (strcmp(method, "common") && strcmp(method, "ceil") && strcmp(method, "floor"))
        return tpl_err(r, SL_ERR_INVALID, "method must be common, ceil or floor");
    if (!v_is_num(v)) {
        if (v.type == V_UNDEF) return tpl_undef_error(r, v);
        return tpl_err(r, SL_ERR_INVALID, "type %s doesn't define __round__ method", v_type_name(v));
    }
    if (prec > 300) prec = 300;
    if (prec < -300) prec = -300;
    if (!strcmp(method, "common")) {
        if (v.type != V_FLOAT) {
            int64_t x = v.type == V_INT ? v.i : v.b;
            if (prec < 0) {
                /* round half to even at 10**-prec, as Python's int.__round__ */
                int64_t p = 1;
                for (int64_t k = 0; k < -prec && p <= INT64_MAX / 10; k++) p *= 10;
                if (-prec > 18) { *out = vint(0); return SL_OK; }
                int64_t q = x / p, rem = x % p;
                if (rem < 0) { q--; rem += p; }
                if (rem * 2 > p || (rem * 2 == p && (q & 1))) q++;
                int64_t res;
                if (__builtin_mul_overflow(q, p, &res)) return tpl_err(r, SL_ERR_RANGE, "integer overflow in round");
                x = res;
            }
            *out = vint(x);
            return SL_OK;
        }
        double x = v.f;
        if (!isfinite(x)) { *out = v; return SL_OK; }
        if (prec >= 0) {
            /* correctly rounded decimal (round-half-even on the exact binary value), as CPython */
            char buf[512];
            snprintf(buf, sizeof buf, "%.*f", (int)prec, x);
            *out = vfloat(strtod(buf, NULL));
        } else {
            double p = pow(10.0, (double)-prec);
            double y = x / p, fl = floor(y), diff = y - fl;
            double rr = diff > 0.5 ? fl + 1 : diff < 0.5 ? fl : (fmod(fl, 2.0) == 0 ? fl : fl + 1);
            *out = vfloat(rr * p);
        }
        return SL_OK;
    }
    double p = pow(10.0, (double)prec), x = v_num(v) * p;
    *out = vfloat((method[0] == 'c' ? ceil(x) : floor(x)) / p);
    return SL_OK;
}

static sl_status f_safe(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    (void)a;
    TRY(v_to_str(r, v, out));
    out->safe = 1;
    return SL_OK;
}

static sl_status f_sort(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    BIND("sort", "reverse", "case_sensitive", "attribute");
    bool rev = given(arg[0]) && v_truthy(arg[0]), cs = given(arg[1]) && v_truthy(arg[1]);
    value l;
    TRY(tpl_to_list(r, v, &l));
    size_t n = l.l->n;
    value *keys = tpl_alloc(&r->arena, (n + 1) * sizeof(value));
    TRY(vlist_new(r, n, false, out));
    if (!keys) return tpl_nomem(r);
    for (size_t i = 0; i < n; i++) {
        value k = l.l->items[i];
        if (given(arg[2]) && arg[2].type != V_NONE) TRY(attr_get(r, k, arg[2], &k));
        TRY(ignore_case(r, k, cs, &keys[i]));
        out->l->items[i] = l.l->items[i];
    }
    out->l->n = n;
    return sort_by(r, keys, out->l->items, n, rev, true);
}

static sl_status f_string(tpl_rt *r, value v, callargs *a, value *out) {
    (void)a;
    return v_to_str(r, v, out);
}

static sl_status f_sum(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    BIND("sum", "attribute", "start");
    value acc = given(arg[1]) ? arg[1] : vint(0), items;
    if (acc.type == V_STR) return tpl_err(r, SL_ERR_INVALID, "sum() can't sum strings [use ''.join(seq) instead]");
    TRY(tpl_to_list(r, v, &items));
    for (size_t i = 0; i < items.l->n; i++) {
        value x = items.l->items[i];
        if (given(arg[0]) && arg[0].type != V_NONE) TRY(attr_get(r, x, arg[0], &x));
        TRY(tpl_binop(r, OP_ADD, acc, x, &acc));
    }
    *out = acc;
    return SL_OK;
}

static sl_status f_tojson(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    BIND("tojson", "ensure_ascii", "indent", "separators", "sort_keys");
    json_opts o = {0};
    o.ensure_ascii = given(arg[0]) && v_truthy(arg[0]);
    o.sort_keys = given(arg[3]) && v_truthy(arg[3]);
    char spaces[257];
    if (given(arg[1]) && arg[1].type != V_NONE) {
        o.has_indent = true;
        if (arg[1].type == V_STR) {
            o.indent = arg[1].s->s;
            o.indent_len = arg[1].s->len;
        } else {
            int64_t w = 0;
            TRY(want_int(r, "tojson indent", arg[1], &w));
            if (w < 0) w = 0;
            if (w > 256) return tpl_err(r, SL_ERR_RANGE, "tojson: indent too large");
            memset(spaces, ' ', (size_t)w);
            o.indent = spaces;
            o.indent_len = (size_t)w;
        }
    }
    if (given(arg[2]) && arg[2].type != V_NONE) {
        if (arg[2].type != V_LIST || arg[2].l->n != 2 || arg[2].l->items[0].type != V_STR || arg[2].l->items[1].type != V_STR)
            return tpl_err(r, SL_ERR_INVALID, "tojson: separators must be a pair of strings");
        o.item_sep = arg[2].l->items[0].s->s;
        o.item_sep_len = arg[2].l->items[0].s->len;
        o.key_sep = arg[2].l->items[1].s->s;
        o.key_sep_len = arg[2].l->items[1].s->len;
    } else {
        o.item_sep = o.has_indent ? "," : ", ";
        o.item_sep_len = o.has_indent ? 1 : 2;
        o.key_sep = ": ";
        o.key_sep_len = 2;
    }
    tpl_buf b = {0};
    TRY(v_json_append(r, &b, v, &o, 0));
    return vstr_buf(r, &b, out);
}

static sl_status f_trim(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    BIND("trim", "chars");
    TRY(v_to_str(r, v, &v));
    return do_strip(r, v, arg[0], true, true, out);
}

static sl_status f_unique(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    BIND("unique", "case_sensitive", "attribute");
    bool cs = given(arg[0]) && v_truthy(arg[0]);
    value items, seen;
    TRY(tpl_to_list(r, v, &items));
    TRY(vlist_new(r, 0, false, out));
    TRY(vlist_new(r, 0, false, &seen));
    for (size_t i = 0; i < items.l->n; i++) {
        value k = items.l->items[i];
        if (given(arg[1]) && arg[1].type != V_NONE) TRY(attr_get(r, k, arg[1], &k));
        TRY(ignore_case(r, k, cs, &k));
        bool dup;
        TRY(v_contains(r, seen, k, &dup));
        if (dup) continue;
        TRY(vlist_push(r, seen.l, k));
        TRY(vlist_push(r, out->l, items.l->items[i]));
    }
    v_set_kind(out, LK_GEN, "generator", "sync_do_unique");
    return SL_OK;
}

static sl_status f_wordcount(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    (void)a;
    TRY(v_to_str(r, v, &v));
    int64_t words = 0;
    bool in_word = false;
    size_t i = 0;
    while (i < v.s->len) {
        uint32_t cp;
        i += utf8_dec(v.s->s + i, v.s->len - i, &cp);
        bool w = cp == '_' || is_alnum_cp(cp);
        if (w && !in_word) words++;
        in_word = w;
    }
    *out = vint(words);
    return SL_OK;
}

static sl_status f_format(tpl_rt *r, value v, callargs *a, value *out) {
    sl_status st;
    TRY(v_to_str(r, v, &v));
    if (a->nkw) return tpl_err(r, SL_ERR_UNSUPPORTED, "format: keyword arguments are not supported");
    value args;
    TRY(vlist_new(r, a->npos, true, &args));
    for (size_t i = 0; i < a->npos; i++) args.l->items[i] = a->pos[i];
    args.l->n = a->npos;
    return tpl_binop(r, OP_MOD, v, args, out);
}

static const struct {
    const char *name;
    filter_fn fn;
} FILTERS[] = {
    {"abs", f_abs}, {"attr", f_attr}, {"batch", f_batch}, {"capitalize", f_capitalize}, {"center", f_center},
    {"count", f_length}, {"d", f_default}, {"default", f_default}, {"dictsort", f_dictsort}, {"e", f_escape},
    {"escape", f_escape}, {"first", f_first}, {"float", f_float}, {"forceescape", f_escape}, {"format", f_format},
    {"indent", f_indent}, {"int", f_int}, {"items", f_items}, {"join", f_join}, {"last", f_last},
    {"length", f_length}, {"list", f_list}, {"lower", f_lower}, {"map", f_map}, {"max", f_max}, {"min", f_min},
    {"reject", f_reject}, {"rejectattr", f_rejectattr}, {"replace", f_replace}, {"reverse", f_reverse},
    {"round", f_round}, {"safe", f_safe}, {"select", f_select}, {"selectattr", f_selectattr}, {"sort", f_sort},
    {"string", f_string}, {"sum", f_sum}, {"title", f_title}, {"tojson", f_tojson}, {"trim", f_trim},
    {"unique", f_unique}, {"upper", f_upper}, {"wordcount", f_wordcount},
};

/* jinja2 builtin filters this engine does not implement: known names (no
 * syntax error), but an error when they run */
static const char *const FILTERS_UNIMPLEMENTED[] = {
    "filesizeformat", "groupby", "pprint", "random", "slice", "striptags", "truncate", "urlencode", "urlize",
    "wordwrap", "xmlattr",
};

int tpl_filter_id(const char *name) {
    for (size_t i = 0; i < sizeof FILTERS / sizeof FILTERS[0]; i++)
        if (!strcmp(FILTERS[i].name, name)) return (int)i;
    return -1;
}

bool tpl_filter_known_jinja(const char *name) {
    if (tpl_filter_id(name) >= 0) return true;
    for (size_t i = 0; i < sizeof FILTERS_UNIMPLEMENTED / sizeof FILTERS_UNIMPLEMENTED[0]; i++)
        if (!strcmp(FILTERS_UNIMPLEMENTED[i], name)) return true;
    return false;
}

sl_status tpl_apply_filter(tpl_rt *r, int id, const char *name, value v, callargs *a, value *out) {
    if (id < 0 || (size_t)id >= sizeof FILTERS / sizeof FILTERS[0]) {
        if (tpl_filter_known_jinja(name))
            return tpl_err(r, SL_ERR_UNSUPPORTED, "the filter '%s' is not supported by this engine", name);
        return tpl_err(r, SL_ERR_INVALID, "no filter named '%s'", name);
    }
    return FILTERS[id].fn(r, v, a, out);
}

/* ---- tests -------------------------------------------------------------- */

enum {
    TS_BOOLEAN, TS_CALLABLE, TS_DEFINED, TS_DIVISIBLEBY, TS_EQ, TS_EQUALTO, TS_ESCAPED, TS_EVEN, TS_FALSE, TS_FILTER, TS_FLOAT,
    TS_GE, TS_GT, TS_GREATERTHAN, TS_IN, TS_INTEGER, TS_ITERABLE, TS_LE, TS_LOWER, TS_LT, TS_LESSTHAN, TS_MAPPING, TS_NE,
    TS_NONE, TS_NUMBER, TS_ODD, TS_SAMEAS, TS_SEQUENCE, TS_STRING, TS_TEST, TS_TRUE, TS_UNDEFINED, TS_UPPER, TS_COUNT
};

static const char *const TESTS[TS_COUNT] = {
    "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even", "false", "filter", "float",
    "ge", "gt", "greaterthan", "in", "integer", "iterable", "le", "lower", "lt", "lessthan", "mapping", "ne",
    "none", "number", "odd", "sameas", "sequence", "string", "test", "true", "undefined", "upper",
};

int tpl_test_id(const char *name) {
    for (int i = 0; i < TS_COUNT; i++)
        if (!strcmp(TESTS[i], name)) return i;
    return -1;
}

bool tpl_test_known_jinja(const char *name) { return tpl_test_id(name) >= 0; }

static sl_status case_test(tpl_rt *r, value v, bool upper, bool *out) {
    sl_status st;
    TRY(v_to_str(r, v, &v));
    bool cased = false;
    size_t i = 0;
    while (i < v.s->len) {
        uint32_t cp;
        i += utf8_dec(v.s->s + i, v.s->len - i, &cp);
        utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
        if (c == UTF8PROC_CATEGORY_LT || c == (upper ? UTF8PROC_CATEGORY_LL : UTF8PROC_CATEGORY_LU)) { *out = false; return SL_OK; }
        if (c == (upper ? UTF8PROC_CATEGORY_LU : UTF8PROC_CATEGORY_LL)) cased = true;
    }
    *out = cased;
    return SL_OK;
}

sl_status tpl_apply_test(tpl_rt *r, int id, const char *name, value v, callargs *a, bool *out) {
    sl_status st;
    value x = a->npos ? a->pos[0] : a->nkw ? a->kwv[0] : MISSING;
    int c;
    bool b;
    value m;
    switch (id) {
    case TS_BOOLEAN: *out = v.type == V_BOOL; return SL_OK;
    case TS_CALLABLE: *out = v.type == V_FUNC || v.type == V_UNDEF || (v.type == V_LOOP && v.loop->for_node->flag); return SL_OK;
    case TS_DEFINED: *out = v.type != V_UNDEF; return SL_OK;
    case TS_UNDEFINED: *out = v.type == V_UNDEF; return SL_OK;
    case TS_NONE: *out = v.type == V_NONE; return SL_OK;
    case TS_TRUE: *out = v.type == V_BOOL && v.b; return SL_OK;
    case TS_FALSE: *out = v.type == V_BOOL && !v.b; return SL_OK;
    case TS_NUMBER: *out = v_is_num(v); return SL_OK;
    case TS_INTEGER: *out = v.type == V_INT; return SL_OK;
    case TS_FLOAT: *out = v.type == V_FLOAT; return SL_OK;
    case TS_STRING: *out = v.type == V_STR; return SL_OK;
    case TS_ESCAPED: *out = v.type == V_STR && v.safe; return SL_OK;
    case TS_MAPPING: *out = v.type == V_DICT; return SL_OK;
    case TS_ITERABLE: *out = v.type == V_STR || v.type == V_LIST || v.type == V_DICT || v.type == V_UNDEF || v.type == V_LOOP; return SL_OK;
    case TS_SEQUENCE:
        *out = v.type == V_STR || v.type == V_DICT || v.type == V_UNDEF ||
               (v.type == V_LIST && (v.l->kind == LK_SEQ || v.l->kind == LK_RANGE));
        return SL_OK;
    case TS_LOWER: return case_test(r, v, false, out);
    case TS_UPPER: return case_test(r, v, true, out);
    case TS_FILTER: *out = x.type == V_STR && tpl_filter_id(x.s->s) >= 0; return SL_OK;
    case TS_TEST: *out = x.type == V_STR && tpl_test_id(x.s->s) >= 0; return SL_OK;
    default: break;
    }
    /* tests with an argument */
    if (id != TS_ODD && id != TS_EVEN && !given(x))
        return tpl_err(r, SL_ERR_INVALID, "test '%s' needs an argument", name);
    switch (id) {
    case TS_ODD:
    case TS_EVEN:
        TRY(tpl_binop(r, OP_MOD, v, vint(2), &m));
        *out = v_truthy(m) == (id == TS_ODD);
        return SL_OK;
    case TS_DIVISIBLEBY:
        TRY(tpl_binop(r, OP_MOD, v, x, &m));
        TRY(v_eq(r, m, vint(0), out));
        return SL_OK;
    case TS_EQ: case TS_EQUALTO: return v_eq(r, v, x, out);
    case TS_NE: TRY(v_eq(r, v, x, &b)); *out = !b; return SL_OK;
    case TS_LT: case TS_LESSTHAN: TRY(v_cmp(r, v, x, "<", &c)); *out = c < 0; return SL_OK;
    case TS_LE: TRY(v_cmp(r, v, x, "<=", &c)); *out = c <= 0; return SL_OK;
    case TS_GT: case TS_GREATERTHAN: TRY(v_cmp(r, v, x, ">", &c)); *out = c > 0; return SL_OK;
    case TS_GE: TRY(v_cmp(r, v, x, ">=", &c)); *out = c >= 0; return SL_OK;
    case TS_IN: return v_contains(r, x, v, out);
    case TS_SAMEAS:
        if (v.type != x.type) { *out = false; return SL_OK; }
        switch (v.type) {
        case V_NONE: *out = true; return SL_OK;
        case V_BOOL: *out = v.b == x.b; return SL_OK;
        case V_INT: *out = v.i == x.i; return SL_OK;
        case V_FLOAT: *out = false; return SL_OK;
        case V_STR: *out = v.s == x.s; return SL_OK;
        case V_LIST: *out = v.l == x.l; return SL_OK;
        case V_DICT: *out = v.d == x.d; return SL_OK;
        case V_NS: *out = v.ns == x.ns; return SL_OK;
        case V_FUNC: *out = v.fn == x.fn; return SL_OK;
        case V_LOOP: *out = v.loop == x.loop; return SL_OK;
        default: *out = v.u == x.u; return SL_OK;
        }
    default:
        return tpl_err(r, SL_ERR_INVALID, "no test named '%s'", name);
    }
}

/* ---- methods ------------------------------------------------------------ */

enum {
    /* str */
    M_STRIP, M_LSTRIP, M_RSTRIP, M_SPLIT, M_RSPLIT, M_SPLITLINES, M_STARTSWITH, M_ENDSWITH, M_REPLACE, M_UPPER,
    M_LOWER, M_TITLE, M_CAPITALIZE, M_SWAPCASE, M_CASEFOLD, M_FIND, M_RFIND, M_INDEX, M_RINDEX, M_COUNT, M_FORMAT,
    M_JOIN, M_ISDIGIT, M_ISALPHA, M_ISALNUM, M_ISSPACE, M_ISUPPER, M_ISLOWER, M_ISNUMERIC, M_ISDECIMAL, M_ISTITLE,
    M_ZFILL, M_CENTER, M_LJUST, M_RJUST, M_PARTITION, M_RPARTITION, M_REMOVEPREFIX, M_REMOVESUFFIX,
    /* dict */
    M_ITEMS, M_KEYS, M_VALUES, M_GET, M_DCOPY,
    /* list */
    M_LINDEX, M_LCOUNT, M_LCOPY,
};

typedef struct method_def {
    const char *name;
    int id;
} method_def;

static const method_def STR_METHODS[] = {
    {"strip", M_STRIP}, {"lstrip", M_LSTRIP}, {"rstrip", M_RSTRIP}, {"split", M_SPLIT}, {"rsplit", M_RSPLIT},
    {"splitlines", M_SPLITLINES}, {"startswith", M_STARTSWITH}, {"endswith", M_ENDSWITH}, {"replace", M_REPLACE},
    {"upper", M_UPPER}, {"lower", M_LOWER}, {"title", M_TITLE}, {"capitalize", M_CAPITALIZE},
    {"swapcase", M_SWAPCASE}, {"casefold", M_CASEFOLD}, {"find", M_FIND}, {"rfind", M_RFIND}, {"index", M_INDEX},
    {"rindex", M_RINDEX}, {"count", M_COUNT}, {"format", M_FORMAT}, {"join", M_JOIN}, {"isdigit", M_ISDIGIT},
    {"isalpha", M_ISALPHA}, {"isalnum", M_ISALNUM}, {"isspace", M_ISSPACE}, {"isupper", M_ISUPPER},
    {"islower", M_ISLOWER}, {"isnumeric", M_ISNUMERIC}, {"isdecimal", M_ISDECIMAL}, {"istitle", M_ISTITLE},
    {"zfill", M_ZFILL}, {"center", M_CENTER}, {"ljust", M_LJUST}, {"rjust", M_RJUST}, {"partition", M_PARTITION},
    {"rpartition", M_RPARTITION}, {"removeprefix", M_REMOVEPREFIX}, {"removesuffix", M_REMOVESUFFIX},
};
static const method_def DICT_METHODS[] = {
    {"items", M_ITEMS}, {"keys", M_KEYS}, {"values", M_VALUES}, {"get", M_GET}, {"copy", M_DCOPY},
};
static const method_def LIST_METHODS[] = {
    {"index", M_LINDEX}, {"count", M_LCOUNT}, {"copy", M_LCOPY},
};
/* blocked by jinja2's ImmutableSandboxedEnvironment */
static const char *const DICT_UNSAFE[] = {"clear", "pop", "popitem", "setdefault", "update"};
static const char *const LIST_UNSAFE[] = {"append", "clear", "pop", "reverse", "insert", "sort", "extend", "remove"};

static int find_method(const method_def *defs, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(defs[i].name, name)) return defs[i].id;
    return -1;
}

static bool in_names(const char *const *names, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return true;
    return false;
}

sl_status tpl_get_method(tpl_rt *r, value obj, const char *name, value *out, bool *found) {
    int id = -1;
    *found = false;
    if (obj.type == V_STR) id = find_method(STR_METHODS, sizeof STR_METHODS / sizeof STR_METHODS[0], name);
    else if (obj.type == V_DICT) {
        if (in_names(DICT_UNSAFE, sizeof DICT_UNSAFE / sizeof DICT_UNSAFE[0], name)) {
            sl_status st = vundef(r, name, "dict", out);
            if (st) return st;
            out->u->unsafe = true;
            *found = true;
            return SL_OK;
        }
        id = find_method(DICT_METHODS, sizeof DICT_METHODS / sizeof DICT_METHODS[0], name);
    } else if (obj.type == V_LIST) {
        if (obj.l->kind == LK_GEN || obj.l->kind == LK_VIEW) return SL_OK;
        if (obj.l->kind == LK_SEQ && !obj.l->tuple && in_names(LIST_UNSAFE, sizeof LIST_UNSAFE / sizeof LIST_UNSAFE[0], name)) {
            sl_status st = vundef(r, name, "list", out);
            if (st) return st;
            out->u->unsafe = true;
            *found = true;
            return SL_OK;
        }
        id = find_method(LIST_METHODS, sizeof LIST_METHODS / sizeof LIST_METHODS[0], name);
        if ((obj.l->tuple || obj.l->kind == LK_RANGE) && id != M_LINDEX && id != M_LCOUNT) id = -1;
    }
    if (id < 0) return SL_OK;
    tfunc *f = tpl_zalloc(&r->arena, sizeof *f);
    value *self = tpl_alloc(&r->arena, sizeof *self);
    if (!f || !self) return tpl_nomem(r);
    *self = obj;
    f->kind = FN_METHOD;
    f->id = id;
    f->name = name;
    f->self = self;
    *out = (value){.type = V_FUNC, .fn = f};
    *found = true;
    return SL_OK;
}

/* Python slice-style start/end (code points) → byte range of s */
static sl_status sub_range(tpl_rt *r, tstr *s, callargs *a, size_t first, size_t *ba, size_t *be) {
    sl_status st;
    int64_t n = str_ncp(s), start = 0, end = n;
    if (a->npos > first && a->pos[first].type != V_NONE) TRY(want_int(r, "start", a->pos[first], &start));
    if (a->npos > first + 1 && a->pos[first + 1].type != V_NONE) TRY(want_int(r, "end", a->pos[first + 1], &end));
    if (start < 0) { start += n; if (start < 0) start = 0; }
    if (end < 0) { end += n; if (end < 0) end = 0; }
    if (end > n) end = n;
    if (start > n) start = n;
    if (end < start) end = start;
    *ba = str_cp_off(s, start);
    *be = str_cp_off(s, end);
    return SL_OK;
}

static int64_t cp_index(const tstr *s, size_t byte_off) {
    int64_t k = 0;
    for (size_t i = 0; i < byte_off; i++)
        if (((unsigned char)s->s[i] & 0xC0) != 0x80) k++;
    return k;
}

static sl_status affix_match(tpl_rt *r, tstr *s, callargs *a, bool ends, bool *out) {
    sl_status st;
    if (a->npos < 1) return tpl_err(r, SL_ERR_INVALID, "%s takes at least 1 argument", ends ? "endswith" : "startswith");
    size_t ba, be;
    str_ncp(s);
    TRY(sub_range(r, s, a, 1, &ba, &be));
    value p = a->pos[0];
    const value *cands = &p;
    size_t nc = 1;
    if (p.type == V_LIST && p.l->tuple) { cands = p.l->items; nc = p.l->n; }
    *out = false;
    for (size_t i = 0; i < nc; i++) {
        if (cands[i].type != V_STR)
            return tpl_err(r, SL_ERR_INVALID, "%s first arg must be str or a tuple of str, not %s",
                           ends ? "endswith" : "startswith", v_type_name(cands[i]));
        size_t m = cands[i].s->len;
        if (m > be - ba) continue;
        if (!memcmp(s->s + (ends ? be - m : ba), cands[i].s->s, m)) { *out = true; return SL_OK; }
    }
    return SL_OK;
}

static sl_status str_find(tpl_rt *r, tstr *s, callargs *a, bool rev, int64_t *out) {
    sl_status st;
    if (a->npos < 1 || a->pos[0].type != V_STR) return tpl_err(r, SL_ERR_INVALID, "find: must be str");
    size_t ba, be;
    str_ncp(s);
    TRY(sub_range(r, s, a, 1, &ba, &be));
    TRY(tpl_charge(r, be - ba));
    const tstr *sub = a->pos[0].s;
    *out = -1;
    if (sub->len > be - ba) return SL_OK;
    if (!rev) {
        const char *f = sub->len ? memmem(s->s + ba, be - ba, sub->s, sub->len) : s->s + ba;
        if (f) *out = cp_index(s, (size_t)(f - s->s));
    } else {
        for (size_t q = be - sub->len + 1; q-- > ba;)
            if (!memcmp(s->s + q, sub->s, sub->len)) { *out = cp_index(s, q); break; }
    }
    return SL_OK;
}

/* str.format: {} {0} {name} with .attr/[key], !r/!s and a format spec subset */
static sl_status fmt_spec(tpl_rt *r, tpl_buf *b, value v, const char *spec, size_t n) {
    sl_status st;
    if (n == 0) return v_str_append(r, b, v);
    uint32_t fill = ' ';
    char align = 0, sign = '-', type = 0;
    size_t i = 0;
    uint32_t cp;
    size_t k = utf8_dec(spec, n, &cp);
    if (k < n && strchr("<>^=", spec[k])) { fill = cp; align = spec[k]; i = k + 1; }
    else if (strchr("<>^=", spec[0])) { align = spec[0]; i = 1; }
    if (i < n && strchr("+- ", spec[i])) sign = spec[i++];
    bool alt = false;
    if (i < n && spec[i] == '#') { alt = true; i++; }
    bool zero = false;
    if (i < n && spec[i] == '0') { zero = true; i++; }
    int64_t width = 0, prec = -1;
    while (i < n && spec[i] >= '0' && spec[i] <= '9' && width < 100000) width = width * 10 + (spec[i++] - '0');
    char group = 0;
    if (i < n && (spec[i] == ',' || spec[i] == '_')) group = spec[i++];
    if (i < n && spec[i] == '.') {
        i++;
        prec = 0;
        while (i < n && spec[i] >= '0' && spec[i] <= '9' && prec < 1000) prec = prec * 10 + (spec[i++] - '0');
    }
    if (i < n) type = spec[i++];
    if (i != n) return tpl_err(r, SL_ERR_UNSUPPORTED, "format spec '%.*s' is not supported", (int)n, spec);
    tpl_buf body = {0};
    bool numeric = false;
    const char *sg = sign == '+' ? "+" : sign == ' ' ? " " : "";
    if (v.type == V_STR && (type == 0 || type == 's')) {
        size_t len = v.s->len;
        if (prec >= 0 && prec < str_ncp(v.s)) len = str_cp_off(v.s, prec);
        TRY(tpl_buf_put(r, &body, v.s->s, len));
    } else if ((v.type == V_INT || v.type == V_BOOL) && (type == 0 || strchr("dxXobc", type))) {
        numeric = true;
        long long x = v.type == V_INT ? v.i : v.b;
        unsigned long long ux = x < 0 ? 0ull - (unsigned long long)x : (unsigned long long)x;
        char digits[80];
        int base = type == 'x' || type == 'X' ? 16 : type == 'o' ? 8 : type == 'b' ? 2 : 10;
        if (type == 'c') {
            if (x < 0 || x > 0x10FFFF || (x >= 0xD800 && x <= 0xDFFF)) return tpl_err(r, SL_ERR_INVALID, "%%c arg not in range");
            TRY(tpl_buf_put_cp(r, &body, (uint32_t)x));
        } else {
            size_t nd = 0;
            do {
                unsigned d = (unsigned)(ux % (unsigned)base);
                digits[nd++] = (char)(d < 10 ? '0' + d : (type == 'X' ? 'A' : 'a') + d - 10);
                ux /= (unsigned)base;
                if (group && base == 10 && ux && nd % 4 == 3) digits[nd++] = group;
            } while (ux && nd < sizeof digits - 2);
            TRY(tpl_buf_put(r, &body, x < 0 ? "-" : sg, x < 0 ? 1 : strlen(sg)));
            if (alt && base != 10) TRY(tpl_buf_put(r, &body, base == 16 ? (type == 'X' ? "0X" : "0x") : base == 8 ? "0o" : "0b", 2));
            while (nd) TRY(tpl_buf_putc(r, &body, digits[--nd]));
        }
    } else if (v_is_num(v) && type && strchr("fFeEgG%", type)) {
        numeric = true;
        double x = v_num(v) * (type == '%' ? 100.0 : 1.0);
        char f[16], num[512];
        snprintf(f, sizeof f, "%%%s.%d%c", sg, (int)(prec < 0 ? 6 : prec), type == '%' ? 'f' : type);
        snprintf(num, sizeof num, f, x);
        if (group) {
            /* group the integer digits */
            char *dot = num;
            while (*dot && *dot != '.' && *dot != 'e' && *dot != 'E') dot++;
            char *d0 = num;
            while (*d0 && !(*d0 >= '0' && *d0 <= '9')) d0++;
            TRY(tpl_buf_put(r, &body, num, (size_t)(d0 - num)));
            size_t ni = (size_t)(dot - d0);
            for (size_t q = 0; q < ni; q++) {
                TRY(tpl_buf_putc(r, &body, d0[q]));
                if ((ni - q - 1) % 3 == 0 && q + 1 < ni) TRY(tpl_buf_putc(r, &body, group));
            }
            TRY(tpl_buf_put(r, &body, dot, strlen(dot)));
        } else {
            TRY(tpl_buf_put(r, &body, num, strlen(num)));
        }
        if (type == '%') TRY(tpl_buf_putc(r, &body, '%'));
    } else if (v.type == V_FLOAT && type == 0 && prec < 0 && !group) {
        numeric = true;
        if (sg[0] && !signbit(v.f)) TRY(tpl_buf_put(r, &body, sg, 1));
        TRY(v_str_append(r, &body, v));
    } else {
        return tpl_err(r, SL_ERR_UNSUPPORTED, "format spec '%.*s' is not supported for %s", (int)n, spec, v_type_name(v));
    }
    value s;
    TRY(vstr_buf(r, &body, &s));
    if (zero && !align) { fill = '0'; align = '='; }
    if (!align) align = numeric ? '>' : '<';
    int64_t len = str_ncp(s.s);
    if (width <= len) return tpl_buf_put(r, b, s.s->s, s.s->len);
    int64_t pad = width - len, left = align == '<' ? 0 : align == '^' ? pad / 2 : pad;
    size_t sign_len = 0;
    if (align == '=' && s.s->len && strchr("+- ", s.s->s[0])) {
        sign_len = 1;
        TRY(tpl_buf_putc(r, b, s.s->s[0]));
    }
    for (int64_t j = 0; j < left; j++) TRY(tpl_buf_put_cp(r, b, fill));
    TRY(tpl_buf_put(r, b, s.s->s + sign_len, s.s->len - sign_len));
    for (int64_t j = 0; j < pad - left; j++) TRY(tpl_buf_put_cp(r, b, fill));
    return SL_OK;
}

static sl_status str_format(tpl_rt *r, tstr *s, callargs *a, value *out) {
    sl_status st;
    tpl_buf b = {0};
    size_t auto_idx = 0;
    const char *p = s->s;
    size_t n = s->len, i = 0;
    while (i < n) {
        char c = p[i];
        if (c == '}' ) {
            if (i + 1 < n && p[i + 1] == '}') { TRY(tpl_buf_putc(r, &b, '}')); i += 2; continue; }
            return tpl_err(r, SL_ERR_INVALID, "Single '}' encountered in format string");
        }
        if (c != '{') { TRY(tpl_buf_putc(r, &b, c)); i++; continue; }
        if (i + 1 < n && p[i + 1] == '{') { TRY(tpl_buf_putc(r, &b, '{')); i += 2; continue; }
        size_t j = i + 1;
        int nest = 0;
        while (j < n && (p[j] != '}' || nest)) {
            if (p[j] == '{') nest++;
            else if (p[j] == '}') nest--;
            j++;
        }
        if (j >= n) return tpl_err(r, SL_ERR_INVALID, "Single '{' encountered in format string");
        /* field: name [!conv] [:spec] */
        size_t fa = i + 1, fe = fa;
        while (fe < j && p[fe] != '!' && p[fe] != ':') fe++;
        char conv = 0;
        size_t sa = j, se = j;
        size_t q = fe;
        if (q < j && p[q] == '!') {
            if (q + 1 >= j) return tpl_err(r, SL_ERR_INVALID, "end of string while looking for conversion specifier");
            conv = p[q + 1];
            q += 2;
        }
        if (q < j && p[q] == ':') { sa = q + 1; se = j; }
        /* first part of the field name */
        size_t na = fa, ne = fa;
        while (ne < fe && p[ne] != '.' && p[ne] != '[') ne++;
        value v;
        if (ne == na) {
            if (auto_idx >= a->npos) return tpl_err(r, SL_ERR_INVALID, "Replacement index %zu out of range for positional args tuple", auto_idx);
            v = a->pos[auto_idx++];
        } else if (p[na] >= '0' && p[na] <= '9') {
            size_t idx = 0;
            for (size_t k = na; k < ne; k++) {
                if (p[k] < '0' || p[k] > '9' || idx > 1000000) return tpl_err(r, SL_ERR_INVALID, "bad format field");
                idx = idx * 10 + (size_t)(p[k] - '0');
            }
            if (idx >= a->npos) return tpl_err(r, SL_ERR_INVALID, "Replacement index %zu out of range for positional args tuple", idx);
            v = a->pos[idx];
        } else {
            size_t k = 0;
            while (k < a->nkw && (strlen(a->kw[k]) != ne - na || memcmp(a->kw[k], p + na, ne - na) != 0)) k++;
            if (k == a->nkw) return tpl_err(r, SL_ERR_INVALID, "format: no argument named '%.*s'", (int)(ne - na), p + na);
            v = a->kwv[k];
        }
        while (ne < fe) {
            if (p[ne] == '.') {
                size_t e2 = ne + 1;
                while (e2 < fe && p[e2] != '.' && p[e2] != '[') e2++;
                TRY(tpl_getattr(r, v, p + ne + 1, e2 - ne - 1, &v));
                ne = e2;
            } else {
                size_t e2 = ne + 1;
                while (e2 < fe && p[e2] != ']') e2++;
                if (e2 >= fe) return tpl_err(r, SL_ERR_INVALID, "Missing ']' in format string");
                value key;
                bool digits = e2 > ne + 1;
                for (size_t k = ne + 1; k < e2; k++) digits = digits && p[k] >= '0' && p[k] <= '9';
                if (digits && e2 - ne - 1 < 18) key = vint(strtoll(p + ne + 1, NULL, 10));
                else TRY(vstr(r, p + ne + 1, e2 - ne - 1, &key));
                TRY(tpl_getitem(r, v, key, &v));
                ne = e2 + 1;
            }
        }
        if (conv == 'r' || conv == 'a') {
            tpl_buf t = {0};
            TRY(v_repr_append(r, &t, v, 0));
            TRY(vstr_buf(r, &t, &v));
        } else if (conv == 's') {
            TRY(v_to_str(r, v, &v));
        } else if (conv) {
            return tpl_err(r, SL_ERR_INVALID, "Unknown conversion specifier %c", conv);
        }
        TRY(fmt_spec(r, &b, v, p + sa, se - sa));
        i = j + 1;
    }
    return vstr_buf(r, &b, out);
}

static sl_status str_pred(tpl_rt *r, tstr *s, int id, bool *out) {
    (void)r;
    if (id == M_ISUPPER || id == M_ISLOWER) {
        value v = vstr_const(s);
        return case_test(r, v, id == M_ISUPPER, out);
    }
    if (s->len == 0) { *out = false; return SL_OK; }
    if (id == M_ISTITLE) {
        bool prev_cased = false, any = false;
        size_t i = 0;
        while (i < s->len) {
            uint32_t cp;
            i += utf8_dec(s->s + i, s->len - i, &cp);
            utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
            if (c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LT) {
                if (prev_cased) { *out = false; return SL_OK; }
                prev_cased = any = true;
            } else if (c == UTF8PROC_CATEGORY_LL) {
                if (!prev_cased) { *out = false; return SL_OK; }
                prev_cased = any = true;
            } else prev_cased = false;
        }
        *out = any;
        return SL_OK;
    }
    size_t i = 0;
    while (i < s->len) {
        uint32_t cp;
        i += utf8_dec(s->s + i, s->len - i, &cp);
        utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
        bool ok;
        switch (id) {
        case M_ISSPACE: ok = py_isspace(cp); break;
        case M_ISALPHA: ok = c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO; break;
        case M_ISALNUM: ok = is_alnum_cp(cp); break;
        case M_ISDECIMAL: ok = c == UTF8PROC_CATEGORY_ND; break;
        case M_ISDIGIT: ok = c == UTF8PROC_CATEGORY_ND || (cp >= 0xB2 && cp <= 0xB9 && cp != 0xB4 && cp != 0xB5 && cp != 0xB6 && cp != 0xB7 && cp != 0xB8) || (cp >= 0x2070 && cp <= 0x2089); break;
        default: ok = c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO; break; /* isnumeric */
        }
        if (!ok) { *out = false; return SL_OK; }
    }
    *out = true;
    return SL_OK;
}

static sl_status str_method(tpl_rt *r, int id, value self, callargs *a, value *out) {
    sl_status st;
    tstr *s = self.s;
    str_ncp(s);
    bool b = false;
    int64_t i = 0;
    value x0 = a->npos > 0 ? a->pos[0] : MISSING, x1 = a->npos > 1 ? a->pos[1] : MISSING;
    switch (id) {
    case M_STRIP: return do_strip(r, self, x0, true, true, out);
    case M_LSTRIP: return do_strip(r, self, x0, true, false, out);
    case M_RSTRIP: return do_strip(r, self, x0, false, true, out);
    case M_SPLIT:
    case M_RSPLIT: {
        BIND(id == M_SPLIT ? "split" : "rsplit", "sep", "maxsplit");
        return do_split(r, self, arg[0], arg[1], id == M_RSPLIT, out);
    }
    case M_SPLITLINES: return split_lines(r, self, given(x0) && v_truthy(x0), out);
    case M_STARTSWITH:
    case M_ENDSWITH:
        TRY(affix_match(r, s, a, id == M_ENDSWITH, &b));
        *out = vbool(b);
        return SL_OK;
    case M_REPLACE: {
        if (a->npos < 2 || x0.type != V_STR || x1.type != V_STR) return tpl_err(r, SL_ERR_INVALID, "replace() arguments must be str");
        int64_t count = -1;
        if (a->npos > 2) TRY(want_int(r, "replace", a->pos[2], &count));
        return do_replace(r, self, x0, x1, count, out);
    }
    case M_UPPER: return map_case(r, self, CASE_UPPER, out);
    case M_LOWER:
    case M_CASEFOLD: return map_case(r, self, CASE_LOWER, out);
    case M_TITLE: return py_title(r, self, out);
    case M_CAPITALIZE: return py_capitalize(r, self, out);
    case M_SWAPCASE: {
        tpl_buf bb = {0};
        size_t p = 0;
        while (p < s->len) {
            uint32_t cp;
            size_t k = utf8_dec(s->s + p, s->len - p, &cp);
            utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
            if (c == UTF8PROC_CATEGORY_LU) TRY(put_case(r, &bb, cp, CASE_LOWER));
            else if (c == UTF8PROC_CATEGORY_LL) TRY(put_case(r, &bb, cp, CASE_UPPER));
            else TRY(tpl_buf_put(r, &bb, s->s + p, k));
            p += k;
        }
        return vstr_buf(r, &bb, out);
    }
    case M_FIND:
    case M_RFIND:
    case M_INDEX:
    case M_RINDEX:
        TRY(str_find(r, s, a, id == M_RFIND || id == M_RINDEX, &i));
        if (i < 0 && (id == M_INDEX || id == M_RINDEX)) return tpl_err(r, SL_ERR_INVALID, "substring not found");
        *out = vint(i);
        return SL_OK;
    case M_COUNT: {
        if (x0.type != V_STR) return tpl_err(r, SL_ERR_INVALID, "count: must be str");
        size_t ba, be;
        TRY(sub_range(r, s, a, 1, &ba, &be));
        TRY(tpl_charge(r, be - ba));
        if (x0.s->len == 0) { *out = vint(cp_index(s, be) - cp_index(s, ba) + 1); return SL_OK; }
        int64_t cnt = 0;
        size_t p = ba;
        const char *f;
        while (p < be && (f = memmem(s->s + p, be - p, x0.s->s, x0.s->len))) { cnt++; p = (size_t)(f - s->s) + x0.s->len; }
        *out = vint(cnt);
        return SL_OK;
    }
    case M_FORMAT: return str_format(r, s, a, out);
    case M_JOIN: {
        if (a->npos != 1) return tpl_err(r, SL_ERR_INVALID, "join() takes exactly one argument");
        value items;
        TRY(tpl_to_list(r, x0, &items));
        tpl_buf bb = {0};
        for (size_t k = 0; k < items.l->n; k++) {
            value it = items.l->items[k];
            if (it.type != V_STR)
                return tpl_err(r, SL_ERR_INVALID, "sequence item %zu: expected str instance, %s found", k, v_type_name(it));
            if (k) TRY(tpl_buf_put(r, &bb, s->s, s->len));
            TRY(tpl_buf_put(r, &bb, it.s->s, it.s->len));
        }
        return vstr_buf(r, &bb, out);
    }
    case M_ISDIGIT: case M_ISALPHA: case M_ISALNUM: case M_ISSPACE: case M_ISUPPER: case M_ISLOWER:
    case M_ISNUMERIC: case M_ISDECIMAL: case M_ISTITLE:
        TRY(str_pred(r, s, id, &b));
        *out = vbool(b);
        return SL_OK;
    case M_ZFILL: {
        int64_t w = 0;
        TRY(want_int(r, "zfill", given(x0) ? x0 : V_NONE_VAL, &w));
        int64_t n = str_ncp(s);
        if (w <= n) { *out = self; return SL_OK; }
        if (w - n > (int64_t)r->lim.max_output) return tpl_err(r, SL_ERR_RANGE, "output limit exceeded");
        tpl_buf bb = {0};
        size_t p = 0;
        if (s->len && (s->s[0] == '+' || s->s[0] == '-')) { TRY(tpl_buf_putc(r, &bb, s->s[0])); p = 1; }
        for (int64_t k = 0; k < w - n; k++) TRY(tpl_buf_putc(r, &bb, '0'));
        TRY(tpl_buf_put(r, &bb, s->s + p, s->len - p));
        return vstr_buf(r, &bb, out);
    }
    case M_CENTER:
    case M_LJUST:
    case M_RJUST: {
        int64_t w = 0;
        TRY(want_int(r, "width", given(x0) ? x0 : V_NONE_VAL, &w));
        uint32_t fill = ' ';
        if (given(x1)) {
            if (x1.type != V_STR || str_ncp(x1.s) != 1) return tpl_err(r, SL_ERR_INVALID, "The fill character must be exactly one character long");
            utf8_dec(x1.s->s, x1.s->len, &fill);
        }
        return pad_center(r, self, w, fill, id == M_CENTER ? 0 : id == M_LJUST ? -1 : 1, out);
    }
    case M_PARTITION:
    case M_RPARTITION: {
        if (x0.type != V_STR) return tpl_err(r, SL_ERR_INVALID, "must be str");
        if (x0.s->len == 0) return tpl_err(r, SL_ERR_INVALID, "empty separator");
        TRY(vlist_new(r, 3, true, out));
        const char *f = NULL;
        if (id == M_PARTITION) f = memmem(s->s, s->len, x0.s->s, x0.s->len);
        else if (s->len >= x0.s->len)
            for (size_t q = s->len - x0.s->len + 1; q-- > 0;)
                if (!memcmp(s->s + q, x0.s->s, x0.s->len)) { f = s->s + q; break; }
        if (!f) {
            value e;
            TRY(vstr(r, "", 0, &e));
            out->l->items[0] = id == M_PARTITION ? self : e;
            out->l->items[1] = e;
            out->l->items[2] = id == M_PARTITION ? e : self;
        } else {
            TRY(vstr(r, s->s, (size_t)(f - s->s), &out->l->items[0]));
            out->l->items[1] = x0;
            TRY(vstr(r, f + x0.s->len, s->len - (size_t)(f - s->s) - x0.s->len, &out->l->items[2]));
        }
        out->l->n = 3;
        return SL_OK;
    }
    case M_REMOVEPREFIX:
    case M_REMOVESUFFIX: {
        if (x0.type != V_STR) return tpl_err(r, SL_ERR_INVALID, "must be str");
        size_t m = x0.s->len;
        if (m <= s->len && !memcmp(s->s + (id == M_REMOVEPREFIX ? 0 : s->len - m), x0.s->s, m))
            return vstr(r, s->s + (id == M_REMOVEPREFIX ? m : 0), s->len - m, out);
        *out = self;
        return SL_OK;
    }
    }
    return tpl_err(r, SL_ERR_INVALID, "unknown str method");
}

sl_status tpl_call_method(tpl_rt *r, tfunc *fn, callargs *a, value *out) {
    sl_status st;
    value self = *fn->self;
    if (self.type == V_STR) return str_method(r, fn->id, self, a, out);
    if (self.type == V_DICT) {
        tdict *d = self.d;
        switch (fn->id) {
        case M_ITEMS:
            TRY(f_items(r, self, a, out));
            v_set_kind(out, LK_VIEW, "dict_items", NULL);
            return SL_OK;
        case M_KEYS:
        case M_VALUES:
            TRY(vlist_new(r, d->n, false, out));
            if (d->n) memcpy(out->l->items, fn->id == M_KEYS ? d->keys : d->vals, d->n * sizeof(value));
            out->l->n = d->n;
            v_set_kind(out, LK_VIEW, fn->id == M_KEYS ? "dict_keys" : "dict_values", NULL);
            return SL_OK;
        case M_GET: {
            if (a->npos < 1 || a->npos > 2) return tpl_err(r, SL_ERR_INVALID, "get expected 1 or 2 arguments, got %zu", a->npos);
            value k = a->pos[0];
            if (!v_hashable(k)) return tpl_err(r, SL_ERR_INVALID, "unhashable type: '%s'", v_type_name(k));
            value *v = vdict_get(r, d, k);
            *out = v ? *v : a->npos > 1 ? a->pos[1] : V_NONE_VAL;
            return SL_OK;
        }
        case M_DCOPY: {
            TRY(vdict_new(r, out));
            for (size_t i = 0; i < d->n; i++) TRY(vdict_set(r, out->d, d->keys[i], d->vals[i]));
            return SL_OK;
        }
        }
    }
    if (self.type == V_LIST) {
        tlist *l = self.l;
        switch (fn->id) {
        case M_LINDEX:
        case M_LCOUNT: {
            if (a->npos < 1) return tpl_err(r, SL_ERR_INVALID, "%s takes an argument", fn->id == M_LINDEX ? "index" : "count");
            int64_t cnt = 0;
            for (size_t i = 0; i < l->n; i++) {
                bool eq;
                TRY(v_eq(r, l->items[i], a->pos[0], &eq));
                if (eq && fn->id == M_LINDEX) { *out = vint((int64_t)i); return SL_OK; }
                cnt += eq;
            }
            if (fn->id == M_LINDEX) return tpl_err(r, SL_ERR_INVALID, "value is not in list");
            *out = vint(cnt);
            return SL_OK;
        }
        case M_LCOPY:
            TRY(vlist_new(r, l->n, false, out));
            if (l->n) memcpy(out->l->items, l->items, l->n * sizeof(value));
            out->l->n = l->n;
            return SL_OK;
        }
    }
    return tpl_err(r, SL_ERR_INVALID, "bad method call");
}

/* ---- globals ------------------------------------------------------------ */

enum { G_RANGE, G_DICT, G_NAMESPACE, G_RAISE, G_STRFTIME, G_LIPSUM, G_CYCLER, G_JOINER, G_COUNT };
static const char *const GLOBALS[G_COUNT] = {"range", "dict", "namespace", "raise_exception", "strftime_now",
                                             "lipsum", "cycler", "joiner"};

int tpl_global_id(const char *name) {
    for (int i = 0; i < G_COUNT; i++)
        if (!strcmp(GLOBALS[i], name)) return i;
    return -1;
}

#define MAX_RANGE 100000 /* jinja2.sandbox.MAX_RANGE */

static sl_status dict_update(tpl_rt *r, tdict *d, value src) {
    sl_status st;
    if (src.type == V_DICT || src.type == V_NS) {
        const tdict *s = src.type == V_DICT ? src.d : &src.ns->d;
        for (size_t i = 0; i < s->n; i++) TRY(vdict_set(r, d, s->keys[i], s->vals[i]));
        return SL_OK;
    }
    value items;
    TRY(tpl_to_list(r, src, &items));
    for (size_t i = 0; i < items.l->n; i++) {
        value p = items.l->items[i];
        if (p.type != V_LIST || p.l->n != 2)
            return tpl_err(r, SL_ERR_INVALID, "dictionary update sequence element #%zu has the wrong length", i);
        TRY(vdict_set(r, d, p.l->items[0], p.l->items[1]));
    }
    return SL_OK;
}

sl_status tpl_call_global(tpl_rt *r, int id, callargs *a, value *out) {
    sl_status st;
    switch (id) {
    case G_RANGE: {
        if (a->nkw) return tpl_err(r, SL_ERR_INVALID, "range() takes no keyword arguments");
        if (a->npos < 1 || a->npos > 3) return tpl_err(r, SL_ERR_INVALID, "range expected 1 to 3 arguments, got %zu", a->npos);
        int64_t start = 0, stop, step = 1;
        for (size_t i = 0; i < a->npos; i++)
            if (!as_int(a->pos[i], &stop))
                return tpl_err(r, SL_ERR_INVALID, "'%s' object cannot be interpreted as an integer", v_type_name(a->pos[i]));
        if (a->npos == 1) as_int(a->pos[0], &stop);
        else {
            as_int(a->pos[0], &start);
            as_int(a->pos[1], &stop);
            if (a->npos == 3) as_int(a->pos[2], &step);
        }
        if (step == 0) return tpl_err(r, SL_ERR_INVALID, "range() arg 3 must not be zero");
        double cnt = 0;
        if (step > 0 && stop > start) cnt = ceil(((double)stop - (double)start) / (double)step);
        if (step < 0 && stop < start) cnt = ceil(((double)start - (double)stop) / (double)-step);
        if (cnt > MAX_RANGE)
            return tpl_err(r, SL_ERR_RANGE, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).", MAX_RANGE);
        TRY(vlist_new(r, (size_t)cnt, false, out));
        for (size_t i = 0; i < (size_t)cnt; i++) out->l->items[i] = vint(start + (int64_t)i * step);
        out->l->n = (size_t)cnt;
        v_set_kind(out, LK_RANGE, "range", NULL);
        out->l->r_start = start;
        out->l->r_stop = stop;
        out->l->r_step = step;
        return tpl_charge(r, (size_t)cnt * 8);
    }
    case G_DICT:
    case G_NAMESPACE: {
        tdict *d;
        if (id == G_DICT) {
            TRY(vdict_new(r, out));
            d = out->d;
        } else {
            tns *ns = tpl_zalloc(&r->arena, sizeof *ns);
            if (!ns) return tpl_nomem(r);
            *out = (value){.type = V_NS, .ns = ns};
            d = &ns->d;
        }
        if (a->npos > 1) return tpl_err(r, SL_ERR_INVALID, "%s expected at most 1 positional argument", GLOBALS[id]);
        if (a->npos) TRY(dict_update(r, d, a->pos[0]));
        for (size_t k = 0; k < a->nkw; k++) {
            value key;
            TRY(vstr(r, a->kw[k], strlen(a->kw[k]), &key));
            TRY(vdict_set(r, d, key, a->kwv[k]));
        }
        return SL_OK;
    }
    case G_RAISE: {
        value msg = a->npos ? a->pos[0] : a->nkw ? a->kwv[0] : V_NONE_VAL;
        tpl_buf b = {0};
        TRY(v_str_append(r, &b, msg));
        if (r->err_st == SL_OK) r->err_raised = true;
        return tpl_err(r, SL_ERR_INVALID, "%s", b.p ? b.p : "");
    }
    case G_STRFTIME: {
        if (a->npos != 1 || a->pos[0].type != V_STR) return tpl_err(r, SL_ERR_INVALID, "strftime_now(format) takes one string");
        time_t t = r->lim.fixed_clock ? (time_t)r->lim.now : time(NULL);
        struct tm tmv;
        if (!(r->lim.fixed_clock ? gmtime_r(&t, &tmv) : localtime_r(&t, &tmv)))
            return tpl_err(r, SL_ERR_INVALID, "strftime_now: the clock is out of range");
        const tstr *f = a->pos[0].s;
        if (f->len > 4096) return tpl_err(r, SL_ERR_RANGE, "strftime_now: format too long");
        if (memchr(f->s, '\0', f->len)) return tpl_err(r, SL_ERR_INVALID, "strftime_now: embedded null character");
        size_t cap = f->len * 16 + 64;
        char *buf = tpl_alloc(&r->arena, cap);
        if (!buf) return tpl_nomem(r);
        size_t n = f->len ? strftime(buf, cap, f->s, &tmv) : 0;
        return vstr(r, buf, n, out);
    }
    default:
        return tpl_err(r, SL_ERR_UNSUPPORTED, "the global '%s' is not supported by this engine",
                       id >= 0 && id < G_COUNT ? GLOBALS[id] : "?");
    }
}

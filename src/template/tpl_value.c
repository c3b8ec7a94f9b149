/*
 * tpl_value.c — the value type of the template engine and the Python
 * semantics templates rely on: str() and repr() as Python prints them
 * (shortest round-trip floats, quoted strings, [..], {..}, (x,)), Python
 * ==, < and `in` across types (1 == 1.0 == True; list vs tuple differ),
 * truthiness, json.dumps with its options (Hugging Face's tojson), and the
 * conversion of jansson values into template values.
 *
 * Dicts keep insertion order and compare keys by Python equality, so
 * {1: 'a'}[1.0] finds 'a' as in Python. Recursive walks are bounded by a
 * depth limit so self-referencing namespaces cannot overflow the stack.
 */
#include "template/tpl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define MAX_NEST 200

const value V_UNDEF_VAL = {.type = V_UNDEF};
const value V_NONE_VAL = {.type = V_NONE};

value vbool(bool b) { return (value){.type = V_BOOL, .b = b}; }
value vint(int64_t i) { return (value){.type = V_INT, .i = i}; }
value vfloat(double f) { return (value){.type = V_FLOAT, .f = f}; }
value vstr_const(const tstr *s) { return (value){.type = V_STR, .s = (tstr *)s}; }

sl_status vstr(tpl_rt *r, const char *s, size_t n, value *out) {
    if (n > r->lim.max_output) return tpl_err(r, SL_ERR_RANGE, "output limit exceeded (%zu bytes)", r->lim.max_output);
    tstr *t = tpl_alloc(&r->arena, sizeof(tstr) + n + 1);
    if (!t) return tpl_nomem(r);
    t->len = n;
    t->ncp = -1;
    if (n) memcpy(t->s, s, n);
    t->s[n] = '\0';
    *out = (value){.type = V_STR, .s = t};
    return tpl_charge(r, n);
}

sl_status vstr_buf(tpl_rt *r, const tpl_buf *b, value *out) { return vstr(r, b->p ? b->p : "", b->n, out); }

sl_status vlist_new(tpl_rt *r, size_t cap, bool tuple, value *out) {
    tlist *l = tpl_zalloc(&r->arena, sizeof *l);
    if (!l) return tpl_nomem(r);
    if (cap == 0) cap = 1; /* items is never NULL */
    if (cap > SIZE_MAX / sizeof(value) / 2) return tpl_nomem(r);
    l->items = tpl_alloc(&r->arena, cap * sizeof(value));
    if (!l->items) return tpl_nomem(r);
    l->cap = cap;
    l->tuple = tuple;
    *out = (value){.type = V_LIST, .l = l};
    return SL_OK;
}

sl_status vlist_push(tpl_rt *r, tlist *l, value v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        value *nv = tpl_alloc(&r->arena, cap * sizeof(value));
        if (!nv) return tpl_nomem(r);
        if (l->n) memcpy(nv, l->items, l->n * sizeof(value));
        l->items = nv;
        l->cap = cap;
    }
    l->items[l->n++] = v;
    return SL_OK;
}

sl_status vdict_new(tpl_rt *r, value *out) {
    tdict *d = tpl_zalloc(&r->arena, sizeof *d);
    if (!d) return tpl_nomem(r);
    *out = (value){.type = V_DICT, .d = d};
    return SL_OK;
}

static bool num_eq(value a, value b) {
    if (a.type == V_FLOAT || b.type == V_FLOAT) return v_num(a) == v_num(b);
    int64_t x = a.type == V_BOOL ? a.b : a.i, y = b.type == V_BOOL ? b.b : b.i;
    return x == y;
}

/* equality for dict keys (hashable values) without recursion limits */
static bool key_eq(value a, value b) {
    if (a.type == V_STR && b.type == V_STR) return a.s->len == b.s->len && memcmp(a.s->s, b.s->s, a.s->len) == 0;
    if (v_is_num(a) && v_is_num(b)) return num_eq(a, b);
    if (a.type != b.type) return false;
    switch (a.type) {
    case V_NONE: case V_UNDEF: return true;
    case V_LIST:
        if (a.l->kind == LK_GEN || b.l->kind == LK_GEN) return a.l == b.l;
        if (a.l->n != b.l->n || a.l->tuple != b.l->tuple || a.l->kind != b.l->kind) return false;
        for (size_t i = 0; i < a.l->n; i++)
            if (!key_eq(a.l->items[i], b.l->items[i])) return false;
        return true;
    case V_NS: return a.ns == b.ns;
    case V_FUNC: return a.fn == b.fn;
    case V_LOOP: return a.loop == b.loop;
    default: return false;
    }
}

value *vdict_get(tpl_rt *r, const tdict *d, value k) {
    if (r && d->n > 16) tpl_charge(r, d->n * 4);
    if (k.type == V_STR) return vdict_get_str(d, k.s->s, k.s->len);
    for (size_t i = 0; i < d->n; i++)
        if (key_eq(d->keys[i], k)) return &d->vals[i];
    return NULL;
}

value *vdict_get_str(const tdict *d, const char *k, size_t n) {
    for (size_t i = 0; i < d->n; i++) {
        const value *key = &d->keys[i];
        if (key->type == V_STR && key->s->len == n && memcmp(key->s->s, k, n) == 0) return &d->vals[i];
    }
    return NULL;
}

sl_status vdict_set(tpl_rt *r, tdict *d, value k, value v) {
    value *slot = vdict_get(r, d, k);
    if (slot) { *slot = v; return SL_OK; }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        value *nk = tpl_alloc(&r->arena, cap * sizeof(value)), *nv = tpl_alloc(&r->arena, cap * sizeof(value));
        if (!nk || !nv) return tpl_nomem(r);
        if (d->n) {
            memcpy(nk, d->keys, d->n * sizeof(value));
            memcpy(nv, d->vals, d->n * sizeof(value));
        }
        d->keys = nk;
        d->vals = nv;
        d->cap = cap;
    }
    d->keys[d->n] = k;
    d->vals[d->n] = v;
    d->n++;
    return SL_OK;
}

sl_status vundef(tpl_rt *r, const char *name, const char *owner, value *out) {
    tundef *u = tpl_zalloc(&r->arena, sizeof *u);
    if (!u) return tpl_nomem(r);
    u->name = name;
    u->owner = owner;
    *out = (value){.type = V_UNDEF, .u = u};
    return SL_OK;
}

bool v_truthy(value v) {
    switch (v.type) {
    case V_UNDEF: case V_NONE: return false;
    case V_BOOL: return v.b;
    case V_INT: return v.i != 0;
    case V_FLOAT: return v.f != 0.0;
    case V_STR: return v.s->len > 0;
    case V_LIST: return v.l->kind == LK_GEN || v.l->n > 0;
    case V_DICT: return v.d->n > 0;
    default: return true;
    }
}

void v_set_kind(value *v, lkind kind, const char *tname, const char *gname) {
    v->l->kind = (uint8_t)kind;
    v->l->tname = tname;
    v->l->gname = gname;
    v->l->tuple = false;
}

const char *v_type_name(value v) {
    switch (v.type) {
    case V_UNDEF: return "Undefined";
    case V_NONE: return "NoneType";
    case V_BOOL: return "bool";
    case V_INT: return "int";
    case V_FLOAT: return "float";
    case V_STR: return v.safe ? "Markup" : "str";
    case V_LIST:
        if (v.l->kind == LK_RANGE) return "range";
        if (v.l->kind != LK_SEQ) return v.l->tname ? v.l->tname : "generator";
        return v.l->tuple ? "tuple" : "list";
    case V_DICT: return "dict";
    case V_NS: return "Namespace";
    case V_FUNC: return v.fn->kind == FN_MACRO ? "Macro" : v.fn->kind == FN_METHOD ? "builtin_function_or_method" : "function";
    case V_LOOP: return "LoopContext";
    }
    return "object";
}

bool v_is_str(value v) { return v.type == V_STR; }
bool v_is_num(value v) { return v.type == V_BOOL || v.type == V_INT || v.type == V_FLOAT; }
double v_num(value v) { return v.type == V_FLOAT ? v.f : v.type == V_INT ? (double)v.i : v.type == V_BOOL ? v.b : 0.0; }

/* ---- floats ------------------------------------------------------------ */

void fmt_float(double f, char *buf, size_t cap) {
    if (isnan(f)) { snprintf(buf, cap, "nan"); return; }
    if (isinf(f)) { snprintf(buf, cap, f < 0 ? "-inf" : "inf"); return; }
    if (f == 0.0) { snprintf(buf, cap, signbit(f) ? "-0.0" : "0.0"); return; }
    char tmp[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp: [-]d[.ddd]e[+-]XX */
    char digits[32];
    size_t nd = 0;
    const char *q = tmp;
    bool neg = false;
    if (*q == '-') { neg = true; q++; }
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9' && nd < sizeof digits - 1) digits[nd++] = *q;
    digits[nd] = '\0';
    int e = *q == 'e' ? atoi(q + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0') digits[--nd] = '\0';
    char out[96];
    size_t k = 0;
    if (neg) out[k++] = '-';
    if (e >= -4 && e < 16) {
        if (e >= 0) {
            for (int i = 0; i <= e; i++) out[k++] = (size_t)i < nd ? digits[i] : '0';
            out[k++] = '.';
            if ((size_t)e + 1 < nd) for (size_t i = (size_t)e + 1; i < nd; i++) out[k++] = digits[i];
            else out[k++] = '0';
        } else {
            out[k++] = '0';
            out[k++] = '.';
            for (int i = 0; i < -e - 1; i++) out[k++] = '0';
            for (size_t i = 0; i < nd; i++) out[k++] = digits[i];
        }
        out[k] = '\0';
    } else {
        out[k++] = digits[0];
        if (nd > 1) {
            out[k++] = '.';
            for (size_t i = 1; i < nd; i++) out[k++] = digits[i];
        }
        snprintf(out + k, sizeof out - k, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    snprintf(buf, cap, "%s", out);
}

/* ---- str() and repr() -------------------------------------------------- */

static bool py_printable(uint32_t cp) {
    if (cp < 0x20 || cp == 0x7F) return false;
    if (cp < 0x7F) return true;
    if (cp == ' ') return true;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    switch (c) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS: case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CN: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_ZS:
        return false;
    default: return true;
    }
}

static sl_status repr_str(tpl_rt *r, tpl_buf *b, const tstr *s) {
    sl_status st;
    bool has_sq = memchr(s->s, '\'', s->len) != NULL, has_dq = memchr(s->s, '"', s->len) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    if ((st = tpl_buf_putc(r, b, q))) return st;
    size_t i = 0;
    while (i < s->len) {
        uint32_t cp;
        size_t k = utf8_dec(s->s + i, s->len - i, &cp);
        if (cp == (uint32_t)q || cp == '\\') {
            char e[2] = {'\\', (char)cp};
            st = tpl_buf_put(r, b, e, 2);
        } else if (cp == '\n') st = tpl_buf_put(r, b, "\\n", 2);
        else if (cp == '\r') st = tpl_buf_put(r, b, "\\r", 2);
        else if (cp == '\t') st = tpl_buf_put(r, b, "\\t", 2);
        else if (!py_printable(cp)) {
            if (cp < 0x100) st = tpl_buf_printf(r, b, "\\x%02x", cp);
            else if (cp < 0x10000) st = tpl_buf_printf(r, b, "\\u%04x", cp);
            else st = tpl_buf_printf(r, b, "\\U%08x", cp);
        } else st = tpl_buf_put(r, b, s->s + i, k);
        if (st) return st;
        i += k;
    }
    return tpl_buf_putc(r, b, q);
}

sl_status v_repr_append(tpl_rt *r, tpl_buf *b, value v, int depth) {
    sl_status st;
    char num[64];
    if (depth > MAX_NEST) return tpl_err(r, SL_ERR_RANGE, "value nested too deeply to print");
    switch (v.type) {
    case V_UNDEF: return tpl_buf_put(r, b, "Undefined", 9);
    case V_STR:
        if (v.safe) {
            if ((st = tpl_buf_put(r, b, "Markup(", 7)) || (st = repr_str(r, b, v.s))) return st;
            return tpl_buf_putc(r, b, ')');
        }
        return repr_str(r, b, v.s);
    case V_LIST: {
        bool t = v.l->tuple;
        if (v.l->kind == LK_GEN) {
            if (v.l->gname) return tpl_buf_printf(r, b, "<generator object %s>", v.l->gname);
            return tpl_buf_printf(r, b, "<%s object>", v.l->tname ? v.l->tname : "generator");
        }
        if (v.l->kind == LK_RANGE) {
            if (v.l->r_step == 1) return tpl_buf_printf(r, b, "range(%lld, %lld)", (long long)v.l->r_start, (long long)v.l->r_stop);
            return tpl_buf_printf(r, b, "range(%lld, %lld, %lld)", (long long)v.l->r_start, (long long)v.l->r_stop,
                                  (long long)v.l->r_step);
        }
        if (v.l->kind == LK_VIEW) {
            if ((st = tpl_buf_printf(r, b, "%s(", v.l->tname))) return st;
            value plain = v;
            tlist tmp = *v.l;
            tmp.kind = LK_SEQ;
            plain.l = &tmp;
            if ((st = v_repr_append(r, b, plain, depth + 1))) return st;
            return tpl_buf_putc(r, b, ')');
        }
        if ((st = tpl_buf_putc(r, b, t ? '(' : '['))) return st;
        for (size_t i = 0; i < v.l->n; i++) {
            if (i && (st = tpl_buf_put(r, b, ", ", 2))) return st;
            if ((st = v_repr_append(r, b, v.l->items[i], depth + 1))) return st;
        }
        if (t && v.l->n == 1 && (st = tpl_buf_putc(r, b, ','))) return st;
        return tpl_buf_putc(r, b, t ? ')' : ']');
    }
    case V_DICT:
    case V_NS: {
        const tdict *d = v.type == V_DICT ? v.d : &v.ns->d;
        if (v.type == V_NS && (st = tpl_buf_put(r, b, "<Namespace ", 11))) return st;
        if ((st = tpl_buf_putc(r, b, '{'))) return st;
        for (size_t i = 0; i < d->n; i++) {
            if (i && (st = tpl_buf_put(r, b, ", ", 2))) return st;
            if ((st = v_repr_append(r, b, d->keys[i], depth + 1)) || (st = tpl_buf_put(r, b, ": ", 2)) ||
                (st = v_repr_append(r, b, d->vals[i], depth + 1)))
                return st;
        }
        if ((st = tpl_buf_putc(r, b, '}'))) return st;
        return v.type == V_NS ? tpl_buf_putc(r, b, '>') : SL_OK;
    }
    default:
        (void)num;
        return v_str_append(r, b, v);
    }
}

sl_status v_str_append(tpl_rt *r, tpl_buf *b, value v) {
    char num[64];
    switch (v.type) {
    case V_UNDEF: return SL_OK;
    case V_NONE: return tpl_buf_put(r, b, "None", 4);
    case V_BOOL: return v.b ? tpl_buf_put(r, b, "True", 4) : tpl_buf_put(r, b, "False", 5);
    case V_INT: snprintf(num, sizeof num, "%lld", (long long)v.i); return tpl_buf_put(r, b, num, strlen(num));
    case V_FLOAT: fmt_float(v.f, num, sizeof num); return tpl_buf_put(r, b, num, strlen(num));
    case V_STR: return tpl_buf_put(r, b, v.s->s, v.s->len);
    case V_LIST: case V_DICT: case V_NS: return v_repr_append(r, b, v, 0);
    case V_FUNC:
        if (v.fn->kind == FN_MACRO) return tpl_buf_printf(r, b, "<Macro '%s'>", v.fn->name ? v.fn->name : "");
        return tpl_buf_printf(r, b, "<built-in function %s>", v.fn->name ? v.fn->name : "");
    case V_LOOP:
        return tpl_buf_printf(r, b, "<LoopContext %lld/%zu>", (long long)v.loop->index0 + 1, v.loop->items->n);
    }
    return SL_OK;
}

sl_status v_to_str(tpl_rt *r, value v, value *out) {
    if (v.type == V_STR) { *out = v; return SL_OK; }
    tpl_buf b = {0};
    sl_status st = v_str_append(r, &b, v);
    if (st) return st;
    return vstr_buf(r, &b, out);
}

/* ---- JSON (Python json.dumps) ----------------------------------------- */

static sl_status json_str(tpl_rt *r, tpl_buf *b, const char *s, size_t n, bool ensure_ascii) {
    sl_status st;
    if ((st = tpl_buf_putc(r, b, '"'))) return st;
    size_t i = 0, run = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        bool plain = c >= 0x20 && c != '"' && c != '\\' && (c < 0x7F || (!ensure_ascii));
        if (plain) { i++; run++; continue; }
        if (run && (st = tpl_buf_put(r, b, s + i - run, run))) return st;
        run = 0;
        uint32_t cp;
        size_t k = utf8_dec(s + i, n - i, &cp);
        switch (cp) {
        case '"': st = tpl_buf_put(r, b, "\\\"", 2); break;
        case '\\': st = tpl_buf_put(r, b, "\\\\", 2); break;
        case '\n': st = tpl_buf_put(r, b, "\\n", 2); break;
        case '\r': st = tpl_buf_put(r, b, "\\r", 2); break;
        case '\t': st = tpl_buf_put(r, b, "\\t", 2); break;
        case '\b': st = tpl_buf_put(r, b, "\\b", 2); break;
        case '\f': st = tpl_buf_put(r, b, "\\f", 2); break;
        default:
            if (cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                st = tpl_buf_printf(r, b, "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
            } else {
                st = tpl_buf_printf(r, b, "\\u%04x", cp);
            }
        }
        if (st) return st;
        i += k;
    }
    if (run && (st = tpl_buf_put(r, b, s + n - run, run))) return st;
    return tpl_buf_putc(r, b, '"');
}

static sl_status json_newline(tpl_rt *r, tpl_buf *b, const json_opts *o, int level) {
    sl_status st = tpl_buf_putc(r, b, '\n');
    for (int i = 0; i < level && !st; i++) st = tpl_buf_put(r, b, o->indent, o->indent_len);
    return st;
}

static sl_status json_key(tpl_rt *r, tpl_buf *b, value k, const json_opts *o) {
    char num[64];
    switch (k.type) {
    case V_STR: return json_str(r, b, k.s->s, k.s->len, o->ensure_ascii);
    case V_INT: snprintf(num, sizeof num, "\"%lld\"", (long long)k.i); return tpl_buf_put(r, b, num, strlen(num));
    case V_BOOL: return tpl_buf_put(r, b, k.b ? "\"true\"" : "\"false\"", k.b ? 6 : 7);
    case V_NONE: return tpl_buf_put(r, b, "\"null\"", 6);
    case V_FLOAT:
        if (isnan(k.f)) return tpl_buf_put(r, b, "\"NaN\"", 5);
        if (isinf(k.f)) return k.f > 0 ? tpl_buf_put(r, b, "\"Infinity\"", 10) : tpl_buf_put(r, b, "\"-Infinity\"", 11);
        fmt_float(k.f, num, sizeof num);
        return tpl_buf_printf(r, b, "\"%s\"", num);
    default:
        return tpl_err(r, SL_ERR_INVALID, "tojson: keys must be str, int, float, bool or None, not %s", v_type_name(k));
    }
}

sl_status v_json_append(tpl_rt *r, tpl_buf *b, value v, const json_opts *o, int level) {
    sl_status st;
    char num[64];
    if (level > MAX_NEST) return tpl_err(r, SL_ERR_RANGE, "tojson: value nested too deeply (circular reference?)");
    switch (v.type) {
    case V_NONE: return tpl_buf_put(r, b, "null", 4);
    case V_BOOL: return v.b ? tpl_buf_put(r, b, "true", 4) : tpl_buf_put(r, b, "false", 5);
    case V_INT: snprintf(num, sizeof num, "%lld", (long long)v.i); return tpl_buf_put(r, b, num, strlen(num));
    case V_FLOAT:
        if (isnan(v.f)) return tpl_buf_put(r, b, "NaN", 3);
        if (isinf(v.f)) return v.f > 0 ? tpl_buf_put(r, b, "Infinity", 8) : tpl_buf_put(r, b, "-Infinity", 9);
        fmt_float(v.f, num, sizeof num);
        return tpl_buf_put(r, b, num, strlen(num));
    case V_STR: return json_str(r, b, v.s->s, v.s->len, o->ensure_ascii);
    case V_LIST:
        if (v.l->kind != LK_SEQ)
            return tpl_err(r, SL_ERR_INVALID, "tojson: Object of type %s is not JSON serializable", v_type_name(v));
        if (v.l->n == 0) return tpl_buf_put(r, b, "[]", 2);
        if ((st = tpl_buf_putc(r, b, '['))) return st;
        for (size_t i = 0; i < v.l->n; i++) {
            if (i && (st = tpl_buf_put(r, b, o->item_sep, o->item_sep_len))) return st;
            if (o->has_indent && (st = json_newline(r, b, o, level + 1))) return st;
            if ((st = v_json_append(r, b, v.l->items[i], o, level + 1))) return st;
        }
        if (o->has_indent && (st = json_newline(r, b, o, level))) return st;
        return tpl_buf_putc(r, b, ']');
    case V_DICT: {
        const tdict *d = v.d;
        if (d->n == 0) return tpl_buf_put(r, b, "{}", 2);
        size_t *order = tpl_alloc(&r->arena, d->n * sizeof *order);
        if (!order) return tpl_nomem(r);
        for (size_t i = 0; i < d->n; i++) order[i] = i;
        if (o->sort_keys) {
            /* insertion sort (stable) by key, Python ordering */
            for (size_t i = 1; i < d->n; i++) {
                size_t x = order[i], j = i;
                while (j > 0) {
                    int c;
                    if ((st = v_cmp(r, d->keys[order[j - 1]], d->keys[x], "<", &c))) return st;
                    if (c <= 0) break;
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = x;
            }
        }
        if ((st = tpl_buf_putc(r, b, '{'))) return st;
        for (size_t i = 0; i < d->n; i++) {
            size_t k = order[i];
            if (i && (st = tpl_buf_put(r, b, o->item_sep, o->item_sep_len))) return st;
            if (o->has_indent && (st = json_newline(r, b, o, level + 1))) return st;
            if ((st = json_key(r, b, d->keys[k], o)) || (st = tpl_buf_put(r, b, o->key_sep, o->key_sep_len)) ||
                (st = v_json_append(r, b, d->vals[k], o, level + 1)))
                return st;
        }
        if (o->has_indent && (st = json_newline(r, b, o, level))) return st;
        return tpl_buf_putc(r, b, '}');
    }
    default:
        return tpl_err(r, SL_ERR_INVALID, "tojson: Object of type %s is not JSON serializable", v_type_name(v));
    }
}

/* ---- comparisons ------------------------------------------------------- */

static sl_status eq_rec(tpl_rt *r, value a, value b, bool *eq, int depth) {
    if (depth > MAX_NEST) return tpl_err(r, SL_ERR_RANGE, "values nested too deeply to compare");
    if (v_is_num(a) && v_is_num(b)) { *eq = num_eq(a, b); return SL_OK; }
    if (a.type != b.type) { *eq = false; return SL_OK; }
    switch (a.type) {
    case V_UNDEF: case V_NONE: *eq = true; return SL_OK;
    case V_STR: *eq = a.s->len == b.s->len && memcmp(a.s->s, b.s->s, a.s->len) == 0; return tpl_charge(r, a.s->len);
    case V_LIST:
        if (a.l->kind == LK_GEN || b.l->kind == LK_GEN) { *eq = a.l == b.l; return SL_OK; }
        if (a.l->tuple != b.l->tuple || a.l->n != b.l->n || a.l->kind != b.l->kind) { *eq = false; return SL_OK; }
        for (size_t i = 0; i < a.l->n; i++) {
            sl_status st = eq_rec(r, a.l->items[i], b.l->items[i], eq, depth + 1);
            if (st || !*eq) return st;
        }
        *eq = true;
        return SL_OK;
    case V_DICT:
        if (a.d->n != b.d->n) { *eq = false; return SL_OK; }
        for (size_t i = 0; i < a.d->n; i++) {
            value *o = vdict_get(r, b.d, a.d->keys[i]);
            if (!o) { *eq = false; return SL_OK; }
            sl_status st = eq_rec(r, a.d->vals[i], *o, eq, depth + 1);
            if (st || !*eq) return st;
        }
        *eq = true;
        return SL_OK;
    case V_NS: *eq = a.ns == b.ns; return SL_OK;
    case V_FUNC: *eq = a.fn == b.fn; return SL_OK;
    case V_LOOP: *eq = a.loop == b.loop; return SL_OK;
    default: *eq = false; return SL_OK;
    }
}

sl_status v_eq(tpl_rt *r, value a, value b, bool *eq) { return eq_rec(r, a, b, eq, 0); }

static sl_status cmp_rec(tpl_rt *r, value a, value b, const char *op, int *c, int depth) {
    if (depth > MAX_NEST) return tpl_err(r, SL_ERR_RANGE, "values nested too deeply to compare");
    if (a.type == V_UNDEF) return tpl_undef_error(r, a);
    if (b.type == V_UNDEF) return tpl_undef_error(r, b);
    if (v_is_num(a) && v_is_num(b)) {
        if (a.type != V_FLOAT && b.type != V_FLOAT) {
            int64_t x = a.type == V_BOOL ? a.b : a.i, y = b.type == V_BOOL ? b.b : b.i;
            *c = x < y ? -1 : x > y;
        } else {
            double x = v_num(a), y = v_num(b);
            *c = x < y ? -1 : x > y ? 1 : 0; /* NaN compares as equal here; Python says False for all */
        }
        return SL_OK;
    }
    if (a.type == V_STR && b.type == V_STR) {
        size_t n = a.s->len < b.s->len ? a.s->len : b.s->len;
        int m = memcmp(a.s->s, b.s->s, n);
        *c = m < 0 ? -1 : m > 0 ? 1 : a.s->len < b.s->len ? -1 : a.s->len > b.s->len;
        return tpl_charge(r, n);
    }
    if (v_is_seq(a) && v_is_seq(b) && a.l->tuple == b.l->tuple) {
        size_t n = a.l->n < b.l->n ? a.l->n : b.l->n;
        for (size_t i = 0; i < n; i++) {
            bool eq;
            sl_status st = eq_rec(r, a.l->items[i], b.l->items[i], &eq, depth + 1);
            if (st) return st;
            if (!eq) return cmp_rec(r, a.l->items[i], b.l->items[i], op, c, depth + 1);
        }
        *c = a.l->n < b.l->n ? -1 : a.l->n > b.l->n;
        return SL_OK;
    }
    return tpl_err(r, SL_ERR_INVALID, "'%s' not supported between instances of '%s' and '%s'", op, v_type_name(a),
                   v_type_name(b));
}

sl_status v_cmp(tpl_rt *r, value a, value b, const char *op, int *cmp) { return cmp_rec(r, a, b, op, cmp, 0); }

bool v_hashable(value v) {
    if (v.type == V_DICT || v.type == V_NS) return v.type == V_NS;
    if (v.type == V_LIST) {
        if (v.l->kind == LK_GEN || v.l->kind == LK_RANGE) return true;
        if (!v.l->tuple || v.l->kind == LK_VIEW) return false;
        for (size_t i = 0; i < v.l->n; i++)
            if (!v_hashable(v.l->items[i])) return false;
    }
    return true;
}

sl_status v_contains(tpl_rt *r, value hay, value needle, bool *in) {
    sl_status st;
    switch (hay.type) {
    case V_UNDEF: *in = false; return SL_OK;
    case V_STR:
        if (needle.type != V_STR)
            return tpl_err(r, SL_ERR_INVALID, "'in <string>' requires string as left operand, not %s", v_type_name(needle));
        if ((st = tpl_charge(r, hay.s->len))) return st;
        *in = needle.s->len == 0 || memmem(hay.s->s, hay.s->len, needle.s->s, needle.s->len) != NULL;
        return SL_OK;
    case V_LIST: {
        bool gen = hay.l->kind == LK_GEN;
        for (size_t i = gen ? hay.l->pos : 0; i < hay.l->n; i++) {
            if ((st = v_eq(r, hay.l->items[i], needle, in))) return st;
            if (*in) {
                if (gen) hay.l->pos = i + 1; /* a generator is consumed up to the match */
                return SL_OK;
            }
        }
        if (gen) hay.l->pos = hay.l->n;
        *in = false;
        return tpl_charge(r, hay.l->n * 4);
    }
    case V_DICT:
        if (!v_hashable(needle)) return tpl_err(r, SL_ERR_INVALID, "unhashable type: '%s'", v_type_name(needle));
        *in = vdict_get(r, hay.d, needle) != NULL;
        return SL_OK;
    default:
        return tpl_err(r, SL_ERR_INVALID, "argument of type '%s' is not iterable", v_type_name(hay));
    }
}

/* ---- JSON input -------------------------------------------------------- */

sl_status v_from_json(tpl_rt *r, const json_t *j, value *out, int depth) {
    sl_status st;
    if (depth > MAX_NEST) return tpl_err(r, SL_ERR_RANGE, "input variables nested too deeply (more than %d levels)", MAX_NEST);
    if (!j) { *out = V_NONE_VAL; return SL_OK; }
    switch (json_typeof(j)) {
    case JSON_NULL: *out = V_NONE_VAL; return SL_OK;
    case JSON_TRUE: *out = vbool(true); return SL_OK;
    case JSON_FALSE: *out = vbool(false); return SL_OK;
    case JSON_INTEGER: *out = vint((int64_t)json_integer_value(j)); return SL_OK;
    case JSON_REAL: *out = vfloat(json_real_value(j)); return SL_OK;
    case JSON_STRING: {
        const char *s = json_string_value(j);
        size_t n = json_string_length(j);
        size_t bad;
        if (!utf8_valid(s, n, &bad)) return tpl_err(r, SL_ERR_INVALID, "input string is not valid UTF-8 (byte %zu)", bad);
        return vstr(r, s, n, out);
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        if ((st = vlist_new(r, n, false, out))) return st;
        for (size_t i = 0; i < n; i++) {
            value x;
            if ((st = v_from_json(r, json_array_get(j, i), &x, depth + 1))) return st;
            if ((st = vlist_push(r, out->l, x))) return st;
        }
        return SL_OK;
    }
    case JSON_OBJECT: {
        if ((st = vdict_new(r, out))) return st;
        const char *key;
        json_t *val;
        void *it = json_object_iter((json_t *)j);
        while (it) {
            key = json_object_iter_key(it);
            val = json_object_iter_value(it);
            value k, x;
            if ((st = vstr(r, key, strlen(key), &k)) || (st = v_from_json(r, val, &x, depth + 1))) return st;
            /* keys are unique in a JSON object: append without a lookup */
            tdict *d = out->d;
            if (d->n == d->cap) {
                size_t cap = d->cap ? d->cap * 2 : 4;
                value *nk = tpl_alloc(&r->arena, cap * sizeof(value)), *nv = tpl_alloc(&r->arena, cap * sizeof(value));
                if (!nk || !nv) return tpl_nomem(r);
                if (d->n) { memcpy(nk, d->keys, d->n * sizeof(value)); memcpy(nv, d->vals, d->n * sizeof(value)); }
                d->keys = nk;
                d->vals = nv;
                d->cap = cap;
            }
            d->keys[d->n] = k;
            d->vals[d->n] = x;
            d->n++;
            it = json_object_iter_next((json_t *)j, it);
        }
        return SL_OK;
    }
    }
    *out = V_NONE_VAL;
    return SL_OK;
}

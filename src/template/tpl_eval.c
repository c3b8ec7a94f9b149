/*
 * tpl_eval.c — the evaluator: walks the AST with jinja2's semantics.
 *
 * Scopes follow jinja2's frames: the variables passed in form the global
 * scope; the template body, every for-loop iteration, every macro call and
 * every {% with %} get a scope of their own; {% set %} writes to the current
 * scope (so a set inside a loop is not seen after the loop — namespace()
 * objects are how templates carry state out). Names resolve innermost first,
 * then to the global functions (range, namespace, dict, raise_exception,
 * strftime_now, ...). A macro closes over the scope it was defined in.
 *
 * Undefined values behave as jinja2's default Undefined: they print as "",
 * are false, iterate as empty and compare equal only to undefined; getting
 * an attribute or item of one, calling it, or doing arithmetic with it
 * raises an error. Attribute access on a dict reads its methods first and
 * then its keys; subscription reads keys first and then attributes, as
 * jinja2's sandbox does. Mutating methods that the immutable sandbox blocks
 * (list.append, dict.update, ...) raise a SecurityError-like error when
 * called.
 *
 * Limits: every node evaluation costs a step and raises the depth by one
 * while it runs; exceeding max_steps or max_depth, the output size or the
 * arena stops the render. An error records the position of the innermost
 * node that failed.
 */
#include "template/tpl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static sl_status eval(tpl_rt *r, const node *n, value *out);
static sl_status exec_body(tpl_rt *r, node *const *body, uint32_t n);
static sl_status exec_stmt(tpl_rt *r, const node *n);

#define TRY(x) do { if ((st = (x)) != SL_OK) goto fail; } while (0)

/* ---- scopes ------------------------------------------------------------ */

static scope *scope_new(tpl_rt *r, scope *parent) {
    scope *s = tpl_zalloc(&r->arena, sizeof *s);
    if (!s) return NULL;
    s->parent = parent;
    s->frame = true;
    return s;
}

static sl_status scope_set(tpl_rt *r, scope *s, const char *name, value v) {
    for (size_t i = 0; i < s->n; i++)
        if (s->names[i] == name) { s->vals[i] = v; return SL_OK; }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        const char **nn = tpl_alloc(&r->arena, cap * sizeof *nn);
        value *nv = tpl_alloc(&r->arena, cap * sizeof *nv);
        if (!nn || !nv) return tpl_nomem(r);
        if (s->n) { memcpy(nn, s->names, s->n * sizeof *nn); memcpy(nv, s->vals, s->n * sizeof *nv); }
        s->names = nn;
        s->vals = nv;
        s->cap = cap;
    }
    s->names[s->n] = name;
    s->vals[s->n] = v;
    s->n++;
    return SL_OK;
}

static value *scope_get(scope *s, const char *name) {
    for (; s; s = s->parent)
        for (size_t i = s->n; i-- > 0;)
            if (s->names[i] == name) return &s->vals[i];
    return NULL;
}

/* ---- errors ------------------------------------------------------------ */

sl_status tpl_undef_error(tpl_rt *r, value u) {
    const tundef *d = u.type == V_UNDEF ? u.u : NULL;
    if (!d || !d->name) return tpl_err(r, SL_ERR_INVALID, "undefined value used");
    if (d->unsafe)
        return tpl_err(r, SL_ERR_INVALID, "access to attribute '%s' of '%s' object is unsafe (the sandbox blocks it)",
                       d->name, d->owner ? d->owner : "?");
    if (!d->owner) return tpl_err(r, SL_ERR_INVALID, "'%s' is undefined", d->name);
    if (d->key_int) return tpl_err(r, SL_ERR_INVALID, "'%s' has no element %s", d->owner, d->name);
    return tpl_err(r, SL_ERR_INVALID, "'%s' has no attribute '%s'", d->owner, d->name);
}

static const char *owner_name(tpl_rt *r, value v) {
    if (v.type == V_NONE) return "None";
    char buf[64];
    snprintf(buf, sizeof buf, "%s object", v_type_name(v));
    size_t n = strlen(buf);
    char *s = tpl_alloc(&r->arena, n + 1);
    if (!s) return "object";
    memcpy(s, buf, n + 1);
    return s;
}

static sl_status mk_undef(tpl_rt *r, value obj, value key, value *out) {
    sl_status st;
    char buf[32];
    const char *name;
    bool key_int = false;
    if (key.type == V_STR) {
        name = key.s->s;
    } else if (key.type == V_INT || key.type == V_BOOL) {
        snprintf(buf, sizeof buf, "%lld", (long long)(key.type == V_INT ? key.i : key.b));
        value s;
        if ((st = vstr(r, buf, strlen(buf), &s))) return st;
        name = s.s->s;
        key_int = true;
    } else {
        name = "?";
    }
    if ((st = vundef(r, name, owner_name(r, obj), out))) return st;
    out->u->key_int = key_int;
    return SL_OK;
}

/* ---- attribute and item access ---------------------------------------- */

static sl_status loop_attr(tpl_rt *r, tloop *l, const char *name, value *out, bool *found) {
    int64_t n = (int64_t)l->items->n, i = l->index0;
    *found = true;
    if (!strcmp(name, "index")) *out = vint(i + 1);
    else if (!strcmp(name, "index0")) *out = vint(i);
    else if (!strcmp(name, "revindex")) *out = vint(n - i);
    else if (!strcmp(name, "revindex0")) *out = vint(n - i - 1);
    else if (!strcmp(name, "first")) *out = vbool(i == 0);
    else if (!strcmp(name, "last")) *out = vbool(i == n - 1);
    else if (!strcmp(name, "length")) *out = vint(n);
    else if (!strcmp(name, "depth")) *out = vint(l->depth0 + 1);
    else if (!strcmp(name, "depth0")) *out = vint(l->depth0);
    else if (!strcmp(name, "previtem") || !strcmp(name, "nextitem")) {
        int64_t j = name[0] == 'p' ? i - 1 : i + 1;
        if (j >= 0 && j < n) *out = l->items->items[j];
        else return vundef(r, name[0] == 'p' ? "there is no previous item" : "there is no next item", NULL, out);
    } else if (!strcmp(name, "cycle") || !strcmp(name, "changed")) {
        tfunc *f = tpl_zalloc(&r->arena, sizeof *f);
        if (!f) return tpl_nomem(r);
        f->kind = name[0] == 'c' && name[1] == 'y' ? FN_LOOP_CYCLE : FN_LOOP_CHANGED;
        f->name = name[1] == 'y' ? "cycle" : "changed";
        f->loop = l;
        *out = (value){.type = V_FUNC, .fn = f};
    } else *found = false;
    return SL_OK;
}

/* obj.name (jinja2 sandbox getattr: attribute first, then item); see tpl.h */
sl_status tpl_getattr(tpl_rt *r, value obj, const char *name, size_t len, value *out) {
    sl_status st;
    bool found = false;
    if (obj.type == V_UNDEF) return tpl_undef_error(r, obj);
    if ((st = tpl_get_method(r, obj, name, out, &found)) || found) return st;
    if (obj.type == V_DICT) {
        value *v = vdict_get_str(obj.d, name, len);
        if (v) { *out = *v; return SL_OK; }
    } else if (obj.type == V_NS) {
        value *v = vdict_get_str(&obj.ns->d, name, len);
        if (v) { *out = *v; return SL_OK; }
    } else if (obj.type == V_LOOP) {
        if ((st = loop_attr(r, obj.loop, name, out, &found)) || found) return st;
    }
    value key;
    if ((st = vstr(r, name, len, &key))) return st;
    return mk_undef(r, obj, key, out);
}

static bool as_index(value k, int64_t *i) {
    if (k.type == V_INT) { *i = k.i; return true; }
    if (k.type == V_BOOL) { *i = k.b; return true; }
    return false;
}

/* obj[key] (jinja2 sandbox getitem: item first, then attribute for string keys) */
sl_status tpl_getitem(tpl_rt *r, value obj, value key, value *out) {
    int64_t i;
    if (obj.type == V_UNDEF) return tpl_undef_error(r, obj);
    switch (obj.type) {
    case V_LIST:
        if (obj.l->kind == LK_GEN || obj.l->kind == LK_VIEW) break; /* not subscriptable */
        if (as_index(key, &i)) {
            int64_t n = (int64_t)obj.l->n;
            if (i < 0) i += n;
            if (i >= 0 && i < n) { *out = obj.l->items[i]; return SL_OK; }
            return mk_undef(r, obj, key, out);
        }
        break;
    case V_STR:
        if (as_index(key, &i)) {
            int64_t n = str_ncp(obj.s);
            if (i < 0) i += n;
            if (i >= 0 && i < n) {
                size_t a = str_cp_off(obj.s, i), b = str_cp_off(obj.s, i + 1);
                return vstr(r, obj.s->s + a, b - a, out);
            }
            return mk_undef(r, obj, key, out);
        }
        break;
    case V_DICT: {
        if (!v_hashable(key)) break;
        value *v = vdict_get(r, obj.d, key);
        if (v) { *out = *v; return SL_OK; }
        break;
    }
    default: break;
    }
    if (key.type == V_STR) return tpl_getattr(r, obj, key.s->s, key.s->len, out);
    return mk_undef(r, obj, key, out);
}

static sl_status slice_index(tpl_rt *r, const node *n, int64_t *out, bool *given) {
    sl_status st;
    *given = false;
    if (!n) return SL_OK;
    value v;
    if ((st = eval(r, n, &v))) return st;
    if (v.type == V_NONE) return SL_OK;
    if (!as_index(v, out)) return tpl_err(r, SL_ERR_INVALID, "slice indices must be integers or None");
    *given = true;
    return SL_OK;
}

static sl_status eval_slice(tpl_rt *r, const node *n, value *out) {
    sl_status st;
    value obj;
    if (!n->a) return tpl_err(r, SL_ERR_UNSUPPORTED, "slices inside a tuple subscript are not supported");
    if ((st = eval(r, n->a, &obj))) return st;
    if (obj.type == V_UNDEF) return tpl_undef_error(r, obj);
    int64_t start = 0, stop = 0, step = 1;
    bool hs, he, hp;
    if ((st = slice_index(r, n->b, &start, &hs)) || (st = slice_index(r, n->c, &stop, &he)) ||
        (st = slice_index(r, n->d, &step, &hp)))
        return st;
    if (!hp) step = 1;
    if (step == 0) return tpl_err(r, SL_ERR_INVALID, "slice step cannot be zero");
    int64_t len;
    if (obj.type == V_LIST && (obj.l->kind == LK_GEN || obj.l->kind == LK_VIEW))
        return vundef(r, "slice", owner_name(r, obj), out);
    if (obj.type == V_LIST) len = (int64_t)obj.l->n;
    else if (obj.type == V_STR) len = str_ncp(obj.s);
    else return vundef(r, "slice", owner_name(r, obj), out);
    /* Python's PySlice_AdjustIndices */
    if (!hs) start = step < 0 ? len - 1 : 0;
    else {
        if (start < 0) { start += len; if (start < 0) start = step < 0 ? -1 : 0; }
        else if (start >= len) start = step < 0 ? len - 1 : len;
    }
    if (!he) stop = step < 0 ? -1 : len;
    else {
        if (stop < 0) { stop += len; if (stop < 0) stop = step < 0 ? -1 : 0; }
        else if (stop >= len) stop = step < 0 ? len - 1 : len;
    }
    int64_t count = 0;
    if (step > 0 && start < stop) count = (stop - start - 1) / step + 1;
    else if (step < 0 && stop < start) count = (start - stop - 1) / (-step) + 1;
    if (obj.type == V_LIST) {
        if ((st = vlist_new(r, (size_t)count, obj.l->tuple, out))) return st;
        for (int64_t k = 0; k < count; k++) out->l->items[k] = obj.l->items[start + k * step];
        out->l->n = (size_t)count;
        if (obj.l->kind == LK_RANGE) {
            /* range(a, b, s)[i:j:k] == range(a + i*s, a + j*s, s*k) */
            const tlist *o = obj.l;
            v_set_kind(out, LK_RANGE, "range", NULL);
            out->l->r_start = o->r_start + start * o->r_step;
            out->l->r_stop = o->r_start + stop * o->r_step;
            out->l->r_step = o->r_step * step;
        }
        return tpl_charge(r, (size_t)count * 8);
    }
    if (step == 1) {
        size_t a = str_cp_off(obj.s, start), b = str_cp_off(obj.s, start + count);
        return vstr(r, obj.s->s + a, b - a, out);
    }
    tpl_buf b = {0};
    for (int64_t k = 0; k < count; k++) {
        int64_t ci = start + k * step;
        size_t a = str_cp_off(obj.s, ci), e = str_cp_off(obj.s, ci + 1);
        if ((st = tpl_buf_put(r, &b, obj.s->s + a, e - a))) return st;
    }
    return vstr_buf(r, &b, out);
}

/* ---- arithmetic -------------------------------------------------------- */

static sl_status type_error2(tpl_rt *r, const char *op, value a, value b) {
    return tpl_err(r, SL_ERR_INVALID, "unsupported operand type(s) for %s: '%s' and '%s'", op, v_type_name(a),
                   v_type_name(b));
}

static sl_status html_escape(tpl_rt *r, tpl_buf *b, const tstr *s) {
    sl_status st = SL_OK;
    for (size_t i = 0; i < s->len && !st; i++) {
        switch (s->s[i]) {
        case '&': st = tpl_buf_put(r, b, "&amp;", 5); break;
        case '<': st = tpl_buf_put(r, b, "&lt;", 4); break;
        case '>': st = tpl_buf_put(r, b, "&gt;", 4); break;
        case '\'': st = tpl_buf_put(r, b, "&#39;", 5); break;
        case '"': st = tpl_buf_put(r, b, "&#34;", 5); break;
        default: st = tpl_buf_putc(r, b, s->s[i]);
        }
    }
    return st;
}

static sl_status repeat(tpl_rt *r, value seq, int64_t times, value *out) {
    sl_status st;
    if (times < 0) times = 0;
    if (seq.type == V_STR) {
        if (seq.s->len && (uint64_t)times > r->lim.max_output / seq.s->len)
            return tpl_err(r, SL_ERR_RANGE, "output limit exceeded (%zu bytes)", r->lim.max_output);
        tpl_buf b = {0};
        for (int64_t i = 0; i < times; i++)
            if ((st = tpl_buf_put(r, &b, seq.s->s, seq.s->len))) return st;
        if ((st = vstr_buf(r, &b, out))) return st;
        out->safe = seq.safe;
        return SL_OK;
    }
    size_t n = seq.l->n;
    if (n && (uint64_t)times > (r->lim.max_output / 8) / n)
        return tpl_err(r, SL_ERR_RANGE, "list repetition too large");
    if ((st = vlist_new(r, n * (size_t)times, seq.l->tuple, out))) return st;
    for (int64_t i = 0; i < times; i++)
        for (size_t j = 0; j < n; j++) out->l->items[out->l->n++] = seq.l->items[j];
    return tpl_charge(r, n * (size_t)times * 8);
}

static int64_t floordiv_i(int64_t a, int64_t b) {
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

static sl_status str_percent(tpl_rt *r, value fmt, value args, value *out);

sl_status tpl_binop(tpl_rt *r, int op, value a, value b, value *out) {
    sl_status st;
    static const char *const names[] = {"+", "-", "*", "/", "//", "%", "**"};
    if (a.type == V_UNDEF) return tpl_undef_error(r, a);
    if (b.type == V_UNDEF) return tpl_undef_error(r, b);
    bool ints = (a.type == V_INT || a.type == V_BOOL) && (b.type == V_INT || b.type == V_BOOL);
    int64_t x = a.type == V_BOOL ? a.b : a.i, y = b.type == V_BOOL ? b.b : b.i, z;
    bool nums = v_is_num(a) && v_is_num(b);
    switch (op) {
    case OP_ADD:
        if (ints) {
            if (__builtin_add_overflow(x, y, &z)) goto overflow;
            *out = vint(z);
            return SL_OK;
        }
        if (nums) { *out = vfloat(v_num(a) + v_num(b)); return SL_OK; }
        if (a.type == V_STR && b.type == V_STR) {
            tpl_buf buf = {0};
            if (a.safe && !b.safe) {
                if ((st = tpl_buf_put(r, &buf, a.s->s, a.s->len)) || (st = html_escape(r, &buf, b.s))) return st;
            } else if (b.safe && !a.safe) {
                if ((st = html_escape(r, &buf, a.s)) || (st = tpl_buf_put(r, &buf, b.s->s, b.s->len))) return st;
            } else {
                if ((st = tpl_buf_put(r, &buf, a.s->s, a.s->len)) || (st = tpl_buf_put(r, &buf, b.s->s, b.s->len))) return st;
            }
            if ((st = vstr_buf(r, &buf, out))) return st;
            out->safe = a.safe || b.safe;
            return SL_OK;
        }
        if (v_is_seq(a) && v_is_seq(b) && a.l->tuple == b.l->tuple) {
            if ((st = vlist_new(r, a.l->n + b.l->n, a.l->tuple, out))) return st;
            if (a.l->n) memcpy(out->l->items, a.l->items, a.l->n * sizeof(value));
            if (b.l->n) memcpy(out->l->items + a.l->n, b.l->items, b.l->n * sizeof(value));
            out->l->n = a.l->n + b.l->n;
            return tpl_charge(r, out->l->n * 8);
        }
        if (a.type == V_STR)
            return tpl_err(r, SL_ERR_INVALID, "can only concatenate str (not \"%s\") to str", v_type_name(b));
        if (v_is_seq(a) && !a.l->tuple)
            return tpl_err(r, SL_ERR_INVALID, "can only concatenate list (not \"%s\") to list", v_type_name(b));
        return type_error2(r, "+", a, b);
    case OP_SUB:
        if (ints) {
            if (__builtin_sub_overflow(x, y, &z)) goto overflow;
            *out = vint(z);
            return SL_OK;
        }
        if (nums) { *out = vfloat(v_num(a) - v_num(b)); return SL_OK; }
        return type_error2(r, "-", a, b);
    case OP_MUL:
        if (ints) {
            if (__builtin_mul_overflow(x, y, &z)) goto overflow;
            *out = vint(z);
            return SL_OK;
        }
        if (nums) { *out = vfloat(v_num(a) * v_num(b)); return SL_OK; }
        if ((a.type == V_STR || v_is_seq(a)) && (b.type == V_INT || b.type == V_BOOL)) return repeat(r, a, y, out);
        if ((b.type == V_STR || v_is_seq(b)) && (a.type == V_INT || a.type == V_BOOL)) return repeat(r, b, x, out);
        return type_error2(r, "*", a, b);
    case OP_DIV:
        if (nums) {
            if (v_num(b) == 0.0) return tpl_err(r, SL_ERR_INVALID, "division by zero");
            *out = vfloat(v_num(a) / v_num(b));
            return SL_OK;
        }
        return type_error2(r, "/", a, b);
    case OP_FLOORDIV:
    case OP_MOD:
        if (a.type == V_STR && op == OP_MOD) return str_percent(r, a, b, out);
        if (!nums) return type_error2(r, names[op], a, b);
        if (v_num(b) == 0.0) return tpl_err(r, SL_ERR_INVALID, op == OP_MOD ? "modulo by zero" : "division by zero");
        if (ints) {
            if (x == INT64_MIN && y == -1) goto overflow;
            int64_t q = floordiv_i(x, y);
            *out = op == OP_FLOORDIV ? vint(q) : vint(x - q * y);
            return SL_OK;
        }
        {
            /* CPython float_divmod */
            double fa = v_num(a), fb = v_num(b);
            double m = fmod(fa, fb), div = (fa - m) / fb;
            if (m != 0.0) {
                if ((fb < 0) != (m < 0)) { m += fb; div -= 1.0; }
            } else {
                m = copysign(0.0, fb);
            }
            double fl = div;
            if (div != 0.0) {
                fl = floor(div);
                if (div - fl > 0.5) fl += 1.0;
            } else {
                fl = copysign(0.0, fa / fb);
            }
            *out = vfloat(op == OP_MOD ? m : fl);
        }
        return SL_OK;
    case OP_POW:
        if (ints && y >= 0) {
            int64_t res = 1, base = x, e = y;
            while (e > 0) {
                if (e & 1)
                    if (__builtin_mul_overflow(res, base, &res)) goto overflow;
                e >>= 1;
                if (e && __builtin_mul_overflow(base, base, &base)) goto overflow;
            }
            *out = vint(res);
            return SL_OK;
        }
        if (nums) {
            if (v_num(a) == 0.0 && v_num(b) < 0) return tpl_err(r, SL_ERR_INVALID, "0.0 cannot be raised to a negative power");
            *out = vfloat(pow(v_num(a), v_num(b)));
            return SL_OK;
        }
        return type_error2(r, "**", a, b);
    }
    return tpl_err(r, SL_ERR_INVALID, "bad operator");
overflow:
    return tpl_err(r, SL_ERR_RANGE, "integer overflow in '%s' (values beyond 64 bits are not supported)", names[op]);
}

/* Python printf-style "fmt % args": %s %r %d %i %f %x %%, with flags/width/precision */
static sl_status str_percent(tpl_rt *r, value fmt, value args, value *out) {
    sl_status st;
    const value *av = &args;
    size_t an = 1, ai = 0;
    if (v_is_seq(args) && args.l->tuple) { av = args.l->items; an = args.l->n; }
    tpl_buf b = {0};
    const char *s = fmt.s->s;
    size_t n = fmt.s->len;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') { if ((st = tpl_buf_putc(r, &b, s[i]))) return st; continue; }
        if (++i >= n) return tpl_err(r, SL_ERR_INVALID, "incomplete format");
        char spec[32];
        size_t k = 0;
        const value *mapped = NULL;
        if (s[i] == '(') {
            /* %(name)s: look the name up in a mapping argument */
            size_t e = i + 1;
            int depth = 1;
            while (e < n && depth) { if (s[e] == '(') depth++; else if (s[e] == ')') depth--; e++; }
            if (depth) return tpl_err(r, SL_ERR_INVALID, "incomplete format key");
            if (args.type != V_DICT) return tpl_err(r, SL_ERR_INVALID, "format requires a mapping");
            mapped = vdict_get_str(args.d, s + i + 1, e - i - 2);
            if (!mapped) return tpl_err(r, SL_ERR_INVALID, "format: key '%.*s' not found", (int)(e - i - 2), s + i + 1);
            i = e;
            if (i >= n) return tpl_err(r, SL_ERR_INVALID, "incomplete format");
        }
        spec[k++] = '%';
        while (i < n && strchr("-+ #0", s[i]) && k < 8) spec[k++] = s[i++];
        while (i < n && s[i] >= '0' && s[i] <= '9' && k < 16) spec[k++] = s[i++];
        if (i < n && s[i] == '.') { spec[k++] = s[i++]; while (i < n && s[i] >= '0' && s[i] <= '9' && k < 24) spec[k++] = s[i++]; }
        if (i >= n) return tpl_err(r, SL_ERR_INVALID, "incomplete format");
        char c = s[i];
        if (c == '%') { if ((st = tpl_buf_putc(r, &b, '%'))) return st; continue; }
        value v;
        if (mapped) {
            v = *mapped;
            an = 0;
        } else {
            if (ai >= an) return tpl_err(r, SL_ERR_INVALID, "not enough arguments for format string");
            v = av[ai++];
        }
        if (c == 's' || c == 'r') {
            tpl_buf t = {0};
            if ((st = c == 's' ? v_str_append(r, &t, v) : v_repr_append(r, &t, v, 0))) return st;
            spec[k++] = 's';
            spec[k] = '\0';
            if (k == 2) st = tpl_buf_put(r, &b, t.p ? t.p : "", t.n);
            else st = tpl_buf_printf(r, &b, spec, t.p ? t.p : "");
            if (st) return st;
        } else if (c == 'd' || c == 'i' || c == 'x' || c == 'X' || c == 'o') {
            if (!v_is_num(v)) return tpl_err(r, SL_ERR_INVALID, "%%%c format: a number is required, not %s", c, v_type_name(v));
            long long iv = v.type == V_FLOAT ? (long long)v.f : v.type == V_BOOL ? v.b : v.i;
            spec[k++] = 'l';
            spec[k++] = 'l';
            spec[k++] = c == 'i' ? 'd' : c;
            spec[k] = '\0';
            if ((st = tpl_buf_printf(r, &b, spec, iv))) return st;
        } else if (c == 'f' || c == 'F' || c == 'e' || c == 'E' || c == 'g' || c == 'G') {
            if (!v_is_num(v)) return tpl_err(r, SL_ERR_INVALID, "must be real number, not %s", v_type_name(v));
            spec[k++] = c;
            spec[k] = '\0';
            if ((st = tpl_buf_printf(r, &b, spec, v_num(v)))) return st;
        } else {
            return tpl_err(r, SL_ERR_INVALID, "unsupported format character '%c'", c);
        }
    }
    if (ai < an && !(args.type == V_DICT && ai == 0))
        return tpl_err(r, SL_ERR_INVALID, "not all arguments converted during string formatting");
    return vstr_buf(r, &b, out);
}

/* ---- calls ------------------------------------------------------------- */

static sl_status eval_args(tpl_rt *r, const node *n, callargs *a, value *first) {
    sl_status st;
    size_t extra = first ? 1 : 0;
    memset(a, 0, sizeof *a);
    a->npos = n->n + extra;
    if (a->npos) {
        a->pos = tpl_alloc(&r->arena, a->npos * sizeof(value));
        if (!a->pos) return tpl_nomem(r);
    }
    if (first) a->pos[0] = *first;
    for (uint32_t i = 0; i < n->n; i++)
        if ((st = eval(r, n->list[i], &a->pos[i + extra]))) return st;
    a->nkw = n->n2;
    if (a->nkw) {
        a->kw = (const char **)n->names;
        a->kwv = tpl_alloc(&r->arena, a->nkw * sizeof(value));
        if (!a->kwv) return tpl_nomem(r);
        for (uint32_t i = 0; i < n->n2; i++)
            if ((st = eval(r, n->list2[i], &a->kwv[i]))) return st;
    }
    return SL_OK;
}

static sl_status capture_begin(tpl_rt *r, tpl_buf **saved, tpl_buf *tmp) {
    memset(tmp, 0, sizeof *tmp);
    *saved = r->out;
    r->out = tmp;
    return SL_OK;
}

static sl_status call_macro(tpl_rt *r, tfunc *fn, callargs *a, value *out) {
    sl_status st;
    const node *m = fn->macro;
    bool has_caller = r->has_caller;
    value caller = r->caller;
    r->has_caller = false;
    uint32_t np = m->n_names;
    scope *saved_sc = r->sc;
    tpl_buf *saved_out = r->out, tmp = {0};
    scope *sc = scope_new(r, fn->closure);
    if (!sc) return tpl_nomem(r);
    value varargs = {0}, kwargs = {0};
    if (m->uses_varargs && (st = vlist_new(r, 0, true, &varargs))) return st;
    if (m->uses_kwargs && (st = vdict_new(r, &kwargs))) return st;
    if (a->npos > np && !m->uses_varargs)
        return tpl_err(r, SL_ERR_INVALID, "macro '%s' takes not more than %u argument(s)", m->name, np);
    bool *given = tpl_zalloc(&r->arena, (np ? np : 1) * sizeof(bool));
    if (!given) return tpl_nomem(r);
    for (size_t i = 0; i < a->npos; i++) {
        if (i < np) {
            if ((st = scope_set(r, sc, m->names[i], a->pos[i]))) return st;
            given[i] = true;
        } else if ((st = vlist_push(r, varargs.l, a->pos[i]))) return st;
    }
    for (size_t k = 0; k < a->nkw; k++) {
        uint32_t i = 0;
        while (i < np && strcmp(m->names[i], a->kw[k]) != 0) i++;
        if (i < np) {
            if (given[i]) return tpl_err(r, SL_ERR_INVALID, "macro '%s' got multiple values for argument '%s'", m->name, a->kw[k]);
            if ((st = scope_set(r, sc, m->names[i], a->kwv[k]))) return st;
            given[i] = true;
        } else if (m->uses_kwargs) {
            value key;
            if ((st = vstr(r, a->kw[k], strlen(a->kw[k]), &key)) || (st = vdict_set(r, kwargs.d, key, a->kwv[k]))) return st;
        } else {
            return tpl_err(r, SL_ERR_INVALID, "macro '%s' takes no keyword argument '%s'", m->name, a->kw[k]);
        }
    }
    if (has_caller) {
        /* jinja2 passes the call block's body as the keyword argument `caller` */
        const char *cn = tpl_intern_find(r->tpl, "caller", 6);
        if (m->uses_caller) {
            if ((st = scope_set(r, sc, cn, caller))) return st;
        } else if (m->uses_kwargs) {
            value key;
            if ((st = vstr(r, "caller", 6, &key)) || (st = vdict_set(r, kwargs.d, key, caller))) return st;
        } else {
            return tpl_err(r, SL_ERR_INVALID, "macro '%s' takes no keyword argument 'caller'", m->name);
        }
    }
    r->sc = sc;
    uint32_t first_default = np - m->n2;
    for (uint32_t i = 0; i < np; i++) {
        if (given[i]) continue;
        value v;
        if (i >= first_default) {
            if ((st = eval(r, m->list2[i - first_default], &v))) goto fail;
        } else {
            if ((st = vundef(r, m->names[i], NULL, &v))) goto fail;
        }
        if ((st = scope_set(r, sc, m->names[i], v))) goto fail;
    }
    if (m->uses_varargs && (st = scope_set(r, sc, tpl_intern_find(r->tpl, "varargs", 7), varargs))) goto fail;
    if (m->uses_kwargs && (st = scope_set(r, sc, tpl_intern_find(r->tpl, "kwargs", 6), kwargs))) goto fail;
    capture_begin(r, &saved_out, &tmp);
    st = exec_body(r, m->list, m->n);
    r->out = saved_out;
    r->sc = saved_sc;
    if (st) return st;
    r->ctl = 0;
    return vstr_buf(r, &tmp, out);
fail:
    r->sc = saved_sc;
    return st;
}

static sl_status exec_for_items(tpl_rt *r, const node *n, value iter, int64_t depth0);

sl_status tpl_call_value(tpl_rt *r, value callee, callargs *a, value *out) {
    sl_status st;
    if (callee.type == V_UNDEF) return tpl_undef_error(r, callee);
    if (callee.type == V_LOOP && callee.loop->for_node->flag) {
        /* recursive loops: loop(children) renders the loop body over children one level deeper */
        tloop *lp = callee.loop;
        if (a->npos != 1) return tpl_err(r, SL_ERR_INVALID, "loop() takes exactly one argument");
        tpl_buf *saved, buf;
        scope *saved_sc = r->sc;
        capture_begin(r, &saved, &buf);
        r->sc = lp->scope;
        st = exec_for_items(r, lp->for_node, a->pos[0], lp->depth0 + 1);
        r->out = saved;
        r->sc = saved_sc;
        if (st) return st;
        return vstr_buf(r, &buf, out);
    }
    if (callee.type != V_FUNC) return tpl_err(r, SL_ERR_INVALID, "'%s' object is not callable", v_type_name(callee));
    tfunc *fn = callee.fn;
    switch (fn->kind) {
    case FN_GLOBAL: return tpl_call_global(r, fn->id, a, out);
    case FN_METHOD: return tpl_call_method(r, fn, a, out);
    case FN_MACRO:
        if (r->depth + 8 > r->lim.max_depth)
            return tpl_err(r, SL_ERR_RANGE, "recursion limit exceeded (depth %u)", r->lim.max_depth);
        return call_macro(r, fn, a, out);
    case FN_LOOP_CYCLE:
        if (a->npos == 0) return tpl_err(r, SL_ERR_INVALID, "no items for cycling given");
        *out = a->pos[fn->loop->index0 % (int64_t)a->npos];
        return SL_OK;
    case FN_LOOP_CHANGED: {
        value cur;
        if ((st = vlist_new(r, a->npos, true, &cur))) return st;
        for (size_t i = 0; i < a->npos; i++) cur.l->items[i] = a->pos[i];
        cur.l->n = a->npos;
        bool same = false;
        if (fn->loop->last_changed && (st = v_eq(r, *fn->loop->last_changed, cur, &same))) return st;
        if (!same) {
            value *slot = tpl_alloc(&r->arena, sizeof(value));
            if (!slot) return tpl_nomem(r);
            *slot = cur;
            fn->loop->last_changed = slot;
        }
        *out = vbool(!same);
        return SL_OK;
    }
    default:
        return tpl_err(r, SL_ERR_UNSUPPORTED, "this function cannot be called");
    }
}

static sl_status eval_call(tpl_rt *r, const node *n, value *out) {
    sl_status st;
    value callee;
    callargs a;
    if ((st = eval(r, n->a, &callee))) return st;
    if ((st = eval_args(r, n, &a, NULL))) return st;
    return tpl_call_value(r, callee, &a, out);
}

/* the filter chain of n applied to `input` (operands that are NULL take it) */
static sl_status eval_filter(tpl_rt *r, const node *n, const value *input, value *out) {
    sl_status st;
    value v;
    if (n->a) {
        if (n->a->kind == N_FILTER && input) {
            if ((st = eval_filter(r, n->a, input, &v))) return st;
        } else if ((st = eval(r, n->a, &v))) {
            return st;
        }
    } else {
        v = input ? *input : V_UNDEF_VAL;
    }
    if (n->id < 0) return tpl_err(r, SL_ERR_INVALID, "no filter named '%s'", n->name);
    callargs a;
    if ((st = eval_args(r, n, &a, NULL))) return st;
    st = tpl_apply_filter(r, n->id, n->name, v, &a, out);
    if (st == SL_OK || r->err_pos_set) return st;
    r->err_line = n->line;
    r->err_col = n->col;
    r->err_pos_set = true;
    return st;
}

/* ---- expressions ------------------------------------------------------- */

static sl_status eval_inner(tpl_rt *r, const node *n, value *out) {
    sl_status st;
    switch (n->kind) {
    case N_CONST:
        *out = n->cval;
        return SL_OK;
    case N_NAME: {
        value *v = scope_get(r->sc, n->name);
        if (v) { *out = *v; return SL_OK; }
        if (n->id >= 0) {
            tfunc *f = tpl_zalloc(&r->arena, sizeof *f);
            if (!f) return tpl_nomem(r);
            f->kind = FN_GLOBAL;
            f->id = n->id;
            f->name = n->name;
            *out = (value){.type = V_FUNC, .fn = f};
            return SL_OK;
        }
        return vundef(r, n->name, NULL, out);
    }
    case N_LIST:
    case N_TUPLE:
        if ((st = vlist_new(r, n->n, n->kind == N_TUPLE, out))) return st;
        for (uint32_t i = 0; i < n->n; i++)
            if ((st = eval(r, n->list[i], &out->l->items[i]))) return st;
        out->l->n = n->n;
        return SL_OK;
    case N_DICT:
        if ((st = vdict_new(r, out))) return st;
        for (uint32_t i = 0; i < n->n; i++) {
            value k, v;
            if ((st = eval(r, n->list[i], &k)) || (st = eval(r, n->list2[i], &v))) return st;
            if (!v_hashable(k)) return tpl_err(r, SL_ERR_INVALID, "unhashable type: '%s'", v_type_name(k));
            if ((st = vdict_set(r, out->d, k, v))) return st;
        }
        return SL_OK;
    case N_GETATTR: {
        value obj;
        if ((st = eval(r, n->a, &obj))) return st;
        return tpl_getattr(r, obj, n->name, strlen(n->name), out);
    }
    case N_GETITEM: {
        value obj, key;
        if ((st = eval(r, n->a, &obj)) || (st = eval(r, n->b, &key))) return st;
        return tpl_getitem(r, obj, key, out);
    }
    case N_SLICE: return eval_slice(r, n, out);
    case N_CALL: return eval_call(r, n, out);
    case N_FILTER: return eval_filter(r, n, NULL, out);
    case N_TEST: {
        value v;
        bool res;
        callargs a;
        if ((st = eval(r, n->a, &v))) return st;
        if (n->id < 0) return tpl_err(r, SL_ERR_INVALID, "no test named '%s'", n->name);
        if ((st = eval_args(r, n, &a, NULL))) return st;
        if ((st = tpl_apply_test(r, n->id, n->name, v, &a, &res))) return st;
        *out = vbool(n->flag ? !res : res);
        return SL_OK;
    }
    case N_NEG:
    case N_POS: {
        value v;
        if ((st = eval(r, n->a, &v))) return st;
        if (v.type == V_UNDEF) return tpl_undef_error(r, v);
        if (v.type == V_BOOL) v = vint(v.b);
        if (v.type == V_INT) {
            if (n->kind == N_NEG && v.i == INT64_MIN) return tpl_err(r, SL_ERR_RANGE, "integer overflow");
            *out = n->kind == N_NEG ? vint(-v.i) : v;
        } else if (v.type == V_FLOAT) {
            *out = n->kind == N_NEG ? vfloat(-v.f) : v;
        } else {
            return tpl_err(r, SL_ERR_INVALID, "bad operand type for unary %s: '%s'", n->kind == N_NEG ? "-" : "+",
                           v_type_name(v));
        }
        return SL_OK;
    }
    case N_NOT: {
        value v;
        if ((st = eval(r, n->a, &v))) return st;
        *out = vbool(!v_truthy(v));
        return SL_OK;
    }
    case N_BIN: {
        value a, b;
        if ((st = eval(r, n->a, &a)) || (st = eval(r, n->b, &b))) return st;
        return tpl_binop(r, n->op, a, b, out);
    }
    case N_AND:
    case N_OR: {
        value a;
        if ((st = eval(r, n->a, &a))) return st;
        if (v_truthy(a) == (n->kind == N_OR)) { *out = a; return SL_OK; }
        return eval(r, n->b, out);
    }
    case N_CMP: {
        value left;
        if ((st = eval(r, n->a, &left))) return st;
        for (uint32_t i = 0; i < n->n; i++) {
            value right;
            bool res = false;
            int c;
            if ((st = eval(r, n->list[i], &right))) return st;
            switch (n->ops[i]) {
            case CMP_EQ: st = v_eq(r, left, right, &res); break;
            case CMP_NE: st = v_eq(r, left, right, &res); res = !res; break;
            case CMP_LT: st = v_cmp(r, left, right, "<", &c); res = c < 0; break;
            case CMP_LE: st = v_cmp(r, left, right, "<=", &c); res = c <= 0; break;
            case CMP_GT: st = v_cmp(r, left, right, ">", &c); res = c > 0; break;
            case CMP_GE: st = v_cmp(r, left, right, ">=", &c); res = c >= 0; break;
            case CMP_IN: st = v_contains(r, right, left, &res); break;
            case CMP_NOTIN: st = v_contains(r, right, left, &res); res = !res; break;
            }
            if (st) return st;
            if (!res) { *out = vbool(false); return SL_OK; }
            left = right;
        }
        *out = vbool(true);
        return SL_OK;
    }
    case N_COND: {
        value t;
        if ((st = eval(r, n->a, &t))) return st;
        if (v_truthy(t)) return eval(r, n->b, out);
        if (n->c) return eval(r, n->c, out);
        return vundef(r, NULL, NULL, out);
    }
    case N_CONCAT: {
        tpl_buf b = {0};
        for (uint32_t i = 0; i < n->n; i++) {
            value v;
            if ((st = eval(r, n->list[i], &v)) || (st = v_str_append(r, &b, v))) return st;
        }
        return vstr_buf(r, &b, out);
    }
    default:
        return tpl_err(r, SL_ERR_INVALID, "this expression cannot be evaluated here");
    }
}

static sl_status enter(tpl_rt *r) {
    if (++r->steps > r->lim.max_steps)
        return tpl_err(r, SL_ERR_RANGE, "step limit exceeded (%llu steps): the template loops too long",
                       (unsigned long long)r->lim.max_steps);
    if (++r->depth > r->lim.max_depth)
        return tpl_err(r, SL_ERR_RANGE, "recursion limit exceeded (depth %u)", r->lim.max_depth);
    return SL_OK;
}

static void mark(tpl_rt *r, const node *n) {
    if (r->err_pos_set) return;
    r->err_line = n->line;
    r->err_col = n->col;
    r->err_pos_set = true;
}

static sl_status eval(tpl_rt *r, const node *n, value *out) {
    sl_status st = enter(r);
    if (st == SL_OK) st = eval_inner(r, n, out);
    r->depth--;
    if (st) mark(r, n);
    return st;
}

/* ---- statements -------------------------------------------------------- */

static sl_status assign(tpl_rt *r, const node *target, value v) {
    sl_status st;
    if (target->kind == N_NAME) return scope_set(r, r->sc, target->name, v);
    if (target->kind == N_NSREF) {
        value *ns = scope_get(r->sc, target->name);
        if (!ns || ns->type != V_NS)
            return tpl_err(r, SL_ERR_INVALID, "cannot assign attribute on non-namespace object '%s'", target->name);
        value key;
        if ((st = vstr(r, target->attr, strlen(target->attr), &key))) return st;
        return vdict_set(r, &ns->ns->d, key, v);
    }
    /* tuple unpacking */
    tlist *items = NULL;
    value tmp;
    if (v_is_seq(v)) items = v.l;
    else if (v.type == V_STR || v.type == V_DICT || v.type == V_LIST) {
        if ((st = tpl_to_list(r, v, &tmp))) return st;
        items = tmp.l;
    } else {
        return tpl_err(r, SL_ERR_INVALID, "cannot unpack non-iterable %s object", v_type_name(v));
    }
    if (items->n != target->n)
        return tpl_err(r, SL_ERR_INVALID, items->n > target->n ? "too many values to unpack (expected %u)"
                                                               : "not enough values to unpack (expected %u)",
                       target->n);
    for (uint32_t i = 0; i < target->n; i++)
        if ((st = assign(r, target->list[i], items->items[i]))) return st;
    return SL_OK;
}

static sl_status exec_for_items(tpl_rt *r, const node *n, value iter, int64_t depth0) {
    sl_status st;
    value lst;
    scope *outer = r->sc;
    if (iter.type == V_UNDEF) {
        if ((st = vlist_new(r, 0, false, &lst))) return st;
    } else if ((st = tpl_to_list(r, iter, &lst))) {
        return st;
    }
    /* snapshot (the body may pop from the list) and apply the loop filter */
    value items;
    if ((st = vlist_new(r, lst.l->n, false, &items))) return st;
    scope *fs = NULL;
    for (size_t i = 0; i < lst.l->n; i++) {
        value it = lst.l->items[i];
        if (n->c) {
            if (fs && !fs->captured) fs->n = 0;
            else if (!(fs = scope_new(r, outer))) return tpl_nomem(r);
            r->sc = fs;
            value keep;
            st = assign(r, n->a, it);
            if (!st) st = eval(r, n->c, &keep);
            r->sc = outer;
            if (st) return st;
            if (!v_truthy(keep)) continue;
        }
        items.l->items[items.l->n++] = it;
    }
    if (items.l->n == 0) return exec_body(r, n->list2, n->n2);
    tloop *lp = tpl_zalloc(&r->arena, sizeof *lp);
    if (!lp) return tpl_nomem(r);
    lp->items = items.l;
    lp->depth0 = depth0;
    lp->for_node = n;
    lp->scope = outer;
    value loopv = {.type = V_LOOP, .loop = lp};
    const char *loop_name = tpl_intern_find(r->tpl, "loop", 4);
    scope *sc = NULL;
    for (size_t i = 0; i < items.l->n; i++) {
        lp->index0 = (int64_t)i;
        /* a fresh frame per iteration; reuse the last one unless a macro closed over it */
        if (sc && !sc->captured) sc->n = 0;
        else if (!(sc = scope_new(r, outer))) return tpl_nomem(r);
        r->sc = sc;
        st = assign(r, n->a, items.l->items[i]);
        if (!st && loop_name) {
            st = scope_set(r, sc, loop_name, loopv);
        }
        if (!st) st = exec_body(r, n->list, n->n);
        r->sc = outer;
        if (st) return st;
        if (r->ctl == CTL_BREAK) { r->ctl = 0; break; }
        r->ctl = 0;
    }
    return SL_OK;
}

static sl_status exec_inner(tpl_rt *r, const node *n) {
    sl_status st;
    value v;
    switch (n->kind) {
    case S_DATA:
        return tpl_buf_put(r, r->out, n->cval.s->s, n->cval.s->len);
    case S_PRINT:
        if ((st = eval(r, n->a, &v))) return st;
        return v_str_append(r, r->out, v);
    case S_IF:
        /* walk an if/elif chain without recursing per elif */
        for (;;) {
            if ((st = eval(r, n->a, &v))) return st;
            if (v_truthy(v)) return exec_body(r, n->list, n->n);
            if (n->n2 == 1 && n->list2[0]->kind == S_IF && n->list2[0]->flag) {
                n = n->list2[0];
                if (++r->steps > r->lim.max_steps) return tpl_err(r, SL_ERR_RANGE, "step limit exceeded");
                continue;
            }
            return exec_body(r, n->list2, n->n2);
        }
    case S_FOR:
        if ((st = eval(r, n->b, &v))) return st;
        return exec_for_items(r, n, v, 0);
    case S_SET:
        if ((st = eval(r, n->b, &v))) return st;
        return assign(r, n->a, v);
    case S_SETBLOCK:
    case S_FILTERBLOCK: {
        /* the body runs in a frame of its own (jinja2: frame.inner()) */
        tpl_buf *saved, tmp;
        scope *outer = r->sc, *inner = scope_new(r, outer);
        if (!inner) return tpl_nomem(r);
        if (n->kind == S_SETBLOCK && n->flag) {
            value u;
            if ((st = vundef(r, n->a->name, NULL, &u)) || (st = scope_set(r, inner, n->a->name, u))) return st;
        }
        capture_begin(r, &saved, &tmp);
        r->sc = inner;
        st = exec_body(r, n->list, n->n);
        r->sc = outer;
        r->out = saved;
        if (st) return st;
        if ((st = vstr_buf(r, &tmp, &v))) return st;
        if (n->b) {
            value f;
            if ((st = eval_filter(r, n->b, &v, &f))) return st;
            v = f;
        }
        if (n->kind == S_FILTERBLOCK) return v_str_append(r, r->out, v);
        return assign(r, n->a, v);
    }
    case S_MACRO: {
        tfunc *f = tpl_zalloc(&r->arena, sizeof *f);
        if (!f) return tpl_nomem(r);
        f->kind = FN_MACRO;
        f->name = n->name;
        f->macro = n;
        f->closure = r->sc;
        r->sc->captured = true;
        return scope_set(r, r->sc, n->name, (value){.type = V_FUNC, .fn = f});
    }
    case S_CALLBLOCK: {
        tfunc *f = tpl_zalloc(&r->arena, sizeof *f);
        if (!f) return tpl_nomem(r);
        f->kind = FN_MACRO;
        f->name = "caller";
        f->macro = n->b;
        f->closure = r->sc;
        r->sc->captured = true;
        value callee;
        callargs a;
        if ((st = eval(r, n->a->a, &callee)) || (st = eval_args(r, n->a, &a, NULL))) return st;
        if (callee.type == V_FUNC && callee.fn->kind != FN_MACRO)
            return tpl_err(r, SL_ERR_INVALID, "%s() got an unexpected keyword argument 'caller'",
                           callee.fn->name ? callee.fn->name : "function");
        r->has_caller = true;
        r->caller = (value){.type = V_FUNC, .fn = f};
        st = tpl_call_value(r, callee, &a, &v);
        r->has_caller = false;
        if (st) return st;
        return v_str_append(r, r->out, v);
    }
    case S_BREAK: r->ctl = CTL_BREAK; return SL_OK;
    case S_CONTINUE: r->ctl = CTL_CONTINUE; return SL_OK;
    case S_BODY: return exec_body(r, n->list, n->n);
    case S_WITH: {
        scope *outer = r->sc, *sc = scope_new(r, outer);
        if (!sc) return tpl_nomem(r);
        for (uint32_t i = 0; i < n->n2; i++) {
            const node *s = n->list2[i];
            if ((st = eval(r, s->b, &v))) return st;
            r->sc = sc;
            st = assign(r, s->a, v);
            r->sc = outer;
            if (st) return st;
        }
        r->sc = sc;
        st = exec_body(r, n->list, n->n);
        r->sc = outer;
        return st;
    }
    default:
        return tpl_err(r, SL_ERR_INVALID, "this statement cannot be executed");
    }
}

static sl_status exec_stmt(tpl_rt *r, const node *n) {
    sl_status st = enter(r);
    if (st == SL_OK) st = exec_inner(r, n);
    r->depth--;
    if (st) mark(r, n);
    return st;
}

static sl_status exec_body(tpl_rt *r, node *const *body, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        sl_status st = exec_stmt(r, body[i]);
        if (st) return st;
        if (r->ctl) return SL_OK;
    }
    return SL_OK;
}

sl_status tpl_exec(tpl_rt *r, const node *root) { return exec_body(r, root->list, root->n); }

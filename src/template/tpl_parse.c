/*
 * tpl_parse.c — tokens → AST, following jinja2's parser: its statements
 * (for/if/set/macro/call-less filter blocks/with/raw/break/continue and
 * Hugging Face's generation block), its expression grammar and precedence
 * (condexpr < or < and < not < compare < +,- < ~ < *,/,//,% < ** < unary,
 * with filters, tests and calls binding tighter), Python literals, slices
 * and chained comparisons.
 *
 * Like jinja2, a filter or test name that does not exist is a syntax error
 * unless it appears inside an {% if %} branch or a conditional expression,
 * where the error is deferred to when it runs. Nesting is bounded so a
 * hostile template cannot exhaust the C stack.
 */
#include "template/tpl.h"

#include "core/alloc.h"

#include <stdio.h>
#include <string.h>

#define MAX_NEST 96

typedef struct parser {
    sl_template *t;
    const token *tk;
    size_t n, i;
    int depth;
    int loops; /* enclosing for loops (break/continue allowed) */
    int soft;  /* inside if branches / conditional expressions */
    /* names of special identifiers, interned */
    const char *varargs, *kwargs, *caller;
    bool *cur_varargs, *cur_kwargs, *cur_caller;
    /* names referenced (loaded or stored) so far in the enclosing frames,
       innermost last: jinja2's symbol analysis decides what a {% set %}
       block sees of its own target from this */
    const char **refs;
    size_t n_refs, cap_refs;
} parser;

static const token *cur(parser *p) { return &p->tk[p->i]; }
static const token *peek(parser *p, size_t k) { return &p->tk[p->i + k < p->n ? p->i + k : p->n - 1]; }
static void adv(parser *p) { if (p->i + 1 < p->n) p->i++; }

static const char *describe(const token *t, char *buf, size_t cap) {
    static const char *opnames[] = {"", "+", "-", "/", "//", "*", "**", "%", "~", "[", "]", "(", ")", "{", "}",
                                    "==", "!=", "<", "<=", ">", ">=", "=", ".", ":", "|", ",", ";"};
    switch (t->kind) {
    case T_EOF: return "end of template";
    case T_DATA: return "template data";
    case T_VAR_BEGIN: return "'{{'";
    case T_VAR_END: return "end of print statement '}}'";
    case T_BLOCK_BEGIN: return "'{%'";
    case T_BLOCK_END: return "end of statement block '%}'";
    case T_NAME: snprintf(buf, cap, "'%s'", t->s); return buf;
    case T_STRING: return "string";
    case T_INT: return "integer";
    case T_FLOAT: return "float";
    case T_OP: snprintf(buf, cap, "'%s'", t->op < sizeof opnames / sizeof opnames[0] ? opnames[t->op] : "?"); return buf;
    }
    return "token";
}

static sl_status fail_at(const token *t, const char *fmt, ...) SL_PRINTF(2, 3);
static sl_status fail_at(const token *t, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return SL_FAIL(SL_ERR_FORMAT, "template syntax error at line %d, column %d: %s", t->line, t->col, msg);
}

static sl_status unexpected(parser *p, const char *wanted) {
    char b[64];
    const token *t = cur(p);
    if (wanted) return fail_at(t, "expected %s, got %s", wanted, describe(t, b, sizeof b));
    return fail_at(t, "unexpected %s", describe(t, b, sizeof b));
}

static bool is_op(parser *p, int op) { return cur(p)->kind == T_OP && cur(p)->op == op; }
static bool is_name(parser *p, const char *s) { return cur(p)->kind == T_NAME && strcmp(cur(p)->s, s) == 0; }
static bool skip_op(parser *p, int op) { if (is_op(p, op)) { adv(p); return true; } return false; }
static bool skip_name(parser *p, const char *s) { if (is_name(p, s)) { adv(p); return true; } return false; }

static sl_status expect_op(parser *p, int op, const char *what) {
    if (!skip_op(p, op)) return unexpected(p, what);
    return SL_OK;
}

static node *mk(parser *p, nkind k, const token *at) {
    node *n = tpl_zalloc(&p->t->arena, sizeof *n);
    if (!n) return NULL;
    n->kind = (uint8_t)k;
    n->line = at->line;
    n->col = at->col;
    n->id = -1;
    return n;
}

#define NOMEM SL_FAIL(SL_ERR_NOMEM, "out of memory parsing the template")

/* growable node lists in the template arena */
typedef struct nlist {
    node **v;
    uint32_t n, cap;
} nlist;

static sl_status nl_push(parser *p, nlist *l, node *x) {
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 4;
        node **nv = tpl_alloc(&p->t->arena, cap * sizeof *nv);
        if (!nv) return NOMEM;
        if (l->n) memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return SL_OK;
}

typedef struct slist {
    const char **v;
    uint32_t n, cap;
} slist;

static sl_status sl_push_name(parser *p, slist *l, const char *x) {
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 4;
        const char **nv = tpl_alloc(&p->t->arena, cap * sizeof *nv);
        if (!nv) return NOMEM;
        if (l->n) memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = x;
    return SL_OK;
}

static sl_status add_ref(parser *p, const char *name) {
    if (p->n_refs == p->cap_refs) {
        size_t cap = p->cap_refs ? p->cap_refs * 2 : 64;
        const char **nr = sl_realloc(p->refs, cap * sizeof *nr);
        if (!nr) return NOMEM;
        p->refs = nr;
        p->cap_refs = cap;
    }
    p->refs[p->n_refs++] = name;
    return SL_OK;
}

static bool has_ref(const parser *p, size_t upto, const char *name) {
    for (size_t i = 0; i < upto; i++)
        if (p->refs[i] == name) return true;
    return false;
}

static sl_status enter(parser *p) {
    if (++p->depth > MAX_NEST) return fail_at(cur(p), "template nested too deeply (more than %d levels)", MAX_NEST);
    return SL_OK;
}

static sl_status parse_expression(parser *p, bool with_condexpr, node **out);
static sl_status parse_tuple(parser *p, bool simplified, bool with_condexpr, const char *extra_end, bool explicit_parens,
                             node **out);
static sl_status parse_unary(parser *p, bool with_filter, node **out);
static sl_status parse_primary(parser *p, node **out);
static sl_status parse_postfix(parser *p, node **io);
static sl_status parse_filter_expr(parser *p, node **io);
static sl_status parse_filter(parser *p, node *in, bool start_inline, node **out);
static sl_status parse_body(parser *p, const char *const *ends, int n_ends, nlist *body);

static sl_status check_filter(parser *p, const token *at, const char *name, bool is_filter) {
    if (is_filter ? tpl_filter_known_jinja(name) : tpl_test_known_jinja(name)) return SL_OK;
    if (p->soft) return SL_OK;
    return fail_at(at, "no %s named '%s'", is_filter ? "filter" : "test", name);
}

/* ( args, name=kw, ... ) — the current token is '(' */
static sl_status parse_call_args(parser *p, node *n) {
    nlist args = {0}, kwv = {0};
    slist kwn = {0};
    sl_status st;
    adv(p);
    bool first = true;
    while (!is_op(p, TOK_RPAREN)) {
        if (!first && (st = expect_op(p, TOK_COMMA, "','"))) return st;
        if (is_op(p, TOK_RPAREN)) break;
        first = false;
        if (is_op(p, TOK_MUL) || is_op(p, TOK_POW))
            return fail_at(cur(p), "*args and **kwargs in calls are not supported");
        node *e;
        if (cur(p)->kind == T_NAME && peek(p, 1)->kind == T_OP && peek(p, 1)->op == TOK_ASSIGN) {
            const char *k = cur(p)->s;
            adv(p);
            adv(p);
            if ((st = parse_expression(p, true, &e))) return st;
            if ((st = sl_push_name(p, &kwn, k)) || (st = nl_push(p, &kwv, e))) return st;
        } else {
            if (kwn.n) return fail_at(cur(p), "positional argument after keyword argument");
            if ((st = parse_expression(p, true, &e))) return st;
            if ((st = nl_push(p, &args, e))) return st;
        }
    }
    adv(p);
    n->list = args.v;
    n->n = args.n;
    n->list2 = kwv.v;
    n->n2 = kwv.n;
    n->names = kwn.v;
    n->n_names = kwn.n;
    return SL_OK;
}

static sl_status parse_subscribed(parser *p, node **out) {
    sl_status st;
    const token *at = cur(p);
    node *parts[3] = {NULL, NULL, NULL};
    if (is_op(p, TOK_COLON)) {
        adv(p);
    } else {
        if ((st = parse_expression(p, true, &parts[0]))) return st;
        if (!is_op(p, TOK_COLON)) { *out = parts[0]; return SL_OK; }
        adv(p);
    }
    node *n = mk(p, N_SLICE, at);
    if (!n) return NOMEM;
    if (!is_op(p, TOK_RBRACKET) && !is_op(p, TOK_COMMA) && !is_op(p, TOK_COLON)) {
        if ((st = parse_expression(p, true, &parts[1]))) return st;
    }
    if (skip_op(p, TOK_COLON)) {
        if (!is_op(p, TOK_RBRACKET) && !is_op(p, TOK_COMMA)) {
            if ((st = parse_expression(p, true, &parts[2]))) return st;
        }
    }
    n->b = parts[0];
    n->c = parts[1];
    n->d = parts[2];
    *out = n;
    return SL_OK;
}

static sl_status parse_postfix(parser *p, node **io) {
    sl_status st;
    for (;;) {
        const token *at = cur(p);
        if (is_op(p, TOK_DOT)) {
            adv(p);
            const token *a = cur(p);
            if (a->kind == T_NAME) {
                node *n = mk(p, N_GETATTR, at);
                if (!n) return NOMEM;
                n->line = (*io)->line;
                n->col = (*io)->col;
                n->a = *io;
                n->name = a->s;
                adv(p);
                *io = n;
            } else if (a->kind == T_INT) {
                node *n = mk(p, N_GETITEM, at), *k = mk(p, N_CONST, a);
                if (!n || !k) return NOMEM;
                k->cval = vint(a->i);
                n->a = *io;
                n->b = k;
                adv(p);
                *io = n;
            } else {
                return unexpected(p, "name or number after '.'");
            }
        } else if (is_op(p, TOK_LBRACKET)) {
            adv(p);
            nlist args = {0};
            while (!is_op(p, TOK_RBRACKET)) {
                if (args.n && (st = expect_op(p, TOK_COMMA, "',' or ']'"))) return st;
                if (is_op(p, TOK_RBRACKET)) break;
                node *e = NULL;
                if ((st = parse_subscribed(p, &e)) || (st = nl_push(p, &args, e))) return st;
            }
            adv(p);
            if (args.n == 0) return fail_at(at, "expected a subscript inside '[]'");
            node *arg = args.v[0];
            if (args.n > 1) {
                arg = mk(p, N_TUPLE, at);
                if (!arg) return NOMEM;
                arg->list = args.v;
                arg->n = args.n;
            }
            if (arg->kind == N_SLICE) {
                arg->a = *io;
                *io = arg;
            } else {
                node *n = mk(p, N_GETITEM, at);
                if (!n) return NOMEM;
                n->a = *io;
                n->b = arg;
                *io = n;
            }
        } else if (is_op(p, TOK_LPAREN)) {
            node *n = mk(p, N_CALL, at);
            if (!n) return NOMEM;
            n->line = (*io)->line; /* errors of a call point at what is called */
            n->col = (*io)->col;
            n->a = *io;
            if ((st = parse_call_args(p, n))) return st;
            *io = n;
        } else {
            return SL_OK;
        }
    }
}

static sl_status parse_filter(parser *p, node *in, bool start_inline, node **out) {
    sl_status st;
    node *cur_n = in;
    while (is_op(p, TOK_PIPE) || start_inline) {
        if (!start_inline) adv(p);
        start_inline = false;
        const token *at = cur(p);
        if (at->kind != T_NAME) return unexpected(p, "filter name");
        char name[128];
        size_t k = snprintf(name, sizeof name, "%s", at->s);
        adv(p);
        while (is_op(p, TOK_DOT) && peek(p, 1)->kind == T_NAME) {
            adv(p);
            k += snprintf(name + k, k < sizeof name ? sizeof name - k : 0, ".%s", cur(p)->s);
            adv(p);
            if (k >= sizeof name) return fail_at(at, "filter name too long");
        }
        node *n = mk(p, N_FILTER, at);
        if (!n) return NOMEM;
        n->name = tpl_intern(p->t, name, strlen(name));
        if (!n->name) return NOMEM;
        n->id = tpl_filter_id(name);
        if ((st = check_filter(p, at, name, true))) return st;
        n->a = cur_n;
        if (is_op(p, TOK_LPAREN) && (st = parse_call_args(p, n))) return st;
        cur_n = n;
    }
    *out = cur_n;
    return SL_OK;
}

static sl_status parse_test(parser *p, node *in, node **out) {
    sl_status st;
    const token *is_tok = cur(p);
    adv(p); /* 'is' */
    bool negated = skip_name(p, "not");
    const token *at = cur(p);
    if (at->kind != T_NAME) return unexpected(p, "test name");
    char name[128];
    size_t k = snprintf(name, sizeof name, "%s", at->s);
    adv(p);
    while (is_op(p, TOK_DOT) && peek(p, 1)->kind == T_NAME) {
        adv(p);
        k += snprintf(name + k, k < sizeof name ? sizeof name - k : 0, ".%s", cur(p)->s);
        adv(p);
        if (k >= sizeof name) return fail_at(at, "test name too long");
    }
    node *n = mk(p, N_TEST, is_tok);
    if (!n) return NOMEM;
    n->name = tpl_intern(p->t, name, strlen(name));
    if (!n->name) return NOMEM;
    n->id = tpl_test_id(name);
    if ((st = check_filter(p, at, name, false))) return st;
    n->a = in;
    n->flag = negated;
    const token *c = cur(p);
    if (is_op(p, TOK_LPAREN)) {
        if ((st = parse_call_args(p, n))) return st;
    } else if ((c->kind == T_NAME || c->kind == T_STRING || c->kind == T_INT || c->kind == T_FLOAT ||
                (c->kind == T_OP && (c->op == TOK_LPAREN || c->op == TOK_LBRACKET || c->op == TOK_LBRACE))) &&
               !is_name(p, "else") && !is_name(p, "or") && !is_name(p, "and")) {
        if (is_name(p, "is")) return fail_at(c, "you cannot chain multiple tests with 'is'");
        node *arg;
        if ((st = enter(p))) return st;
        if ((st = parse_primary(p, &arg)) || (st = parse_postfix(p, &arg))) return st;
        p->depth--;
        n->list = tpl_alloc(&p->t->arena, sizeof(node *));
        if (!n->list) return NOMEM;
        n->list[0] = arg;
        n->n = 1;
    }
    *out = n;
    return SL_OK;
}

static sl_status parse_filter_expr(parser *p, node **io) {
    sl_status st;
    for (;;) {
        if (is_op(p, TOK_PIPE)) {
            if ((st = parse_filter(p, *io, false, io))) return st;
        } else if (is_name(p, "is")) {
            if ((st = parse_test(p, *io, io))) return st;
        } else if (is_op(p, TOK_LPAREN)) {
            node *n = mk(p, N_CALL, cur(p));
            if (!n) return NOMEM;
            n->a = *io;
            if ((st = parse_call_args(p, n))) return st;
            *io = n;
        } else {
            return SL_OK;
        }
    }
}

static sl_status parse_list_or_dict(parser *p, bool dict, node **out) {
    sl_status st;
    const token *at = cur(p);
    adv(p);
    nlist keys = {0}, vals = {0};
    int close = dict ? TOK_RBRACE : TOK_RBRACKET;
    while (!is_op(p, close)) {
        if (keys.n && (st = expect_op(p, TOK_COMMA, "','"))) return st;
        if (is_op(p, close)) break;
        node *k, *v;
        if ((st = parse_expression(p, true, &k)) || (st = nl_push(p, &keys, k))) return st;
        if (dict) {
            if ((st = expect_op(p, TOK_COLON, "':'"))) return st;
            if ((st = parse_expression(p, true, &v)) || (st = nl_push(p, &vals, v))) return st;
        }
    }
    adv(p);
    node *n = mk(p, dict ? N_DICT : N_LIST, at);
    if (!n) return NOMEM;
    n->list = keys.v;
    n->n = keys.n;
    n->list2 = vals.v;
    n->n2 = vals.n;
    *out = n;
    return SL_OK;
}

static sl_status parse_primary(parser *p, node **out) {
    sl_status st;
    const token *t = cur(p);
    node *n = NULL;
    switch (t->kind) {
    case T_NAME:
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True") || !strcmp(t->s, "false") || !strcmp(t->s, "False")) {
            if (!(n = mk(p, N_CONST, t))) return NOMEM;
            n->cval = vbool(t->s[0] == 't' || t->s[0] == 'T');
        } else if (!strcmp(t->s, "none") || !strcmp(t->s, "None")) {
            if (!(n = mk(p, N_CONST, t))) return NOMEM;
            n->cval = V_NONE_VAL;
        } else {
            if (!(n = mk(p, N_NAME, t))) return NOMEM;
            if ((st = add_ref(p, t->s))) return st;
            n->name = t->s;
            n->id = tpl_global_id(t->s);
            if (t->s == p->varargs && p->cur_varargs) *p->cur_varargs = true;
            if (t->s == p->kwargs && p->cur_kwargs) *p->cur_kwargs = true;
            if (t->s == p->caller && p->cur_caller) *p->cur_caller = true;
        }
        adv(p);
        break;
    case T_STRING: {
        size_t total = 0, j = p->i;
        while (p->tk[j].kind == T_STRING) total += p->tk[j++].len;
        tstr *s = tpl_alloc(&p->t->arena, sizeof(tstr) + total + 1);
        if (!s) return NOMEM;
        s->len = 0;
        while (cur(p)->kind == T_STRING) {
            memcpy(s->s + s->len, cur(p)->s, cur(p)->len);
            s->len += cur(p)->len;
            adv(p);
        }
        s->s[s->len] = '\0';
        s->ncp = -1;
        str_ncp(s);
        if (!(n = mk(p, N_CONST, t))) return NOMEM;
        n->cval = vstr_const(s);
        break;
    }
    case T_INT:
    case T_FLOAT:
        if (!(n = mk(p, N_CONST, t))) return NOMEM;
        n->cval = t->kind == T_INT ? vint(t->i) : vfloat(t->f);
        adv(p);
        break;
    case T_OP:
        if (t->op == TOK_LPAREN) {
            adv(p);
            if ((st = parse_tuple(p, false, true, NULL, true, &n))) return st;
            if ((st = expect_op(p, TOK_RPAREN, "')'"))) return st;
            break;
        }
        if (t->op == TOK_LBRACKET || t->op == TOK_LBRACE) {
            if ((st = parse_list_or_dict(p, t->op == TOK_LBRACE, &n))) return st;
            break;
        }
        return unexpected(p, NULL);
    default:
        return unexpected(p, NULL);
    }
    *out = n;
    return SL_OK;
}

static sl_status parse_unary(parser *p, bool with_filter, node **out) {
    sl_status st;
    if ((st = enter(p))) return st;
    const token *t = cur(p);
    node *n;
    if (is_op(p, TOK_SUB) || is_op(p, TOK_ADD)) {
        adv(p);
        node *inner;
        if ((st = parse_unary(p, false, &inner))) return st;
        if (!(n = mk(p, t->op == TOK_SUB ? N_NEG : N_POS, t))) return NOMEM;
        n->a = inner;
    } else {
        if ((st = parse_primary(p, &n))) return st;
    }
    if ((st = parse_postfix(p, &n))) return st;
    if (with_filter && (st = parse_filter_expr(p, &n))) return st;
    p->depth--;
    *out = n;
    return SL_OK;
}

static sl_status binop(parser *p, const token *at, int op, node *l, node *r, node **out) {
    node *n = mk(p, N_BIN, at);
    if (!n) return NOMEM;
    n->op = (uint8_t)op;
    n->a = l;
    n->b = r;
    *out = n;
    return SL_OK;
}

static sl_status parse_pow(parser *p, node **out) {
    sl_status st;
    node *l, *r;
    if ((st = parse_unary(p, true, &l))) return st;
    while (is_op(p, TOK_POW)) {
        const token *at = cur(p);
        adv(p);
        if ((st = parse_unary(p, true, &r)) || (st = binop(p, at, OP_POW, l, r, &l))) return st;
    }
    *out = l;
    return SL_OK;
}

static sl_status parse_math2(parser *p, node **out) {
    sl_status st;
    node *l, *r;
    if ((st = parse_pow(p, &l))) return st;
    for (;;) {
        const token *at = cur(p);
        int op;
        if (is_op(p, TOK_MUL)) op = OP_MUL;
        else if (is_op(p, TOK_DIV)) op = OP_DIV;
        else if (is_op(p, TOK_FLOORDIV)) op = OP_FLOORDIV;
        else if (is_op(p, TOK_MOD)) op = OP_MOD;
        else break;
        adv(p);
        if ((st = parse_pow(p, &r)) || (st = binop(p, at, op, l, r, &l))) return st;
    }
    *out = l;
    return SL_OK;
}

static sl_status parse_concat(parser *p, node **out) {
    sl_status st;
    node *first;
    const token *at = cur(p);
    if ((st = parse_math2(p, &first))) return st;
    if (!is_op(p, TOK_TILDE)) { *out = first; return SL_OK; }
    nlist parts = {0};
    if ((st = nl_push(p, &parts, first))) return st;
    while (skip_op(p, TOK_TILDE)) {
        node *x;
        if ((st = parse_math2(p, &x)) || (st = nl_push(p, &parts, x))) return st;
    }
    node *n = mk(p, N_CONCAT, at);
    if (!n) return NOMEM;
    n->list = parts.v;
    n->n = parts.n;
    *out = n;
    return SL_OK;
}

static sl_status parse_math1(parser *p, node **out) {
    sl_status st;
    node *l, *r;
    if ((st = parse_concat(p, &l))) return st;
    for (;;) {
        const token *at = cur(p);
        int op;
        if (is_op(p, TOK_ADD)) op = OP_ADD;
        else if (is_op(p, TOK_SUB)) op = OP_SUB;
        else break;
        adv(p);
        if ((st = parse_concat(p, &r)) || (st = binop(p, at, op, l, r, &l))) return st;
    }
    *out = l;
    return SL_OK;
}

static sl_status parse_compare(parser *p, node **out) {
    sl_status st;
    const token *at = cur(p);
    node *first;
    if ((st = parse_math1(p, &first))) return st;
    nlist operands = {0};
    uint8_t opsbuf[64];
    uint32_t nops = 0;
    for (;;) {
        int op = -1;
        if (cur(p)->kind == T_OP) {
            switch (cur(p)->op) {
            case TOK_EQ: op = CMP_EQ; break;
            case TOK_NE: op = CMP_NE; break;
            case TOK_LT: op = CMP_LT; break;
            case TOK_LE: op = CMP_LE; break;
            case TOK_GT: op = CMP_GT; break;
            case TOK_GE: op = CMP_GE; break;
            default: break;
            }
            if (op >= 0) adv(p);
        } else if (is_name(p, "in")) {
            op = CMP_IN;
            adv(p);
        } else if (is_name(p, "not") && peek(p, 1)->kind == T_NAME && !strcmp(peek(p, 1)->s, "in")) {
            op = CMP_NOTIN;
            adv(p);
            adv(p);
        }
        if (op < 0) break;
        if (nops == sizeof opsbuf) return fail_at(cur(p), "comparison chain too long");
        node *x;
        if ((st = parse_math1(p, &x)) || (st = nl_push(p, &operands, x))) return st;
        opsbuf[nops++] = (uint8_t)op;
    }
    if (!nops) { *out = first; return SL_OK; }
    node *n = mk(p, N_CMP, at);
    if (!n) return NOMEM;
    n->a = first;
    n->list = operands.v;
    n->n = operands.n;
    n->ops = tpl_alloc(&p->t->arena, nops);
    if (!n->ops) return NOMEM;
    memcpy(n->ops, opsbuf, nops);
    *out = n;
    return SL_OK;
}

static sl_status parse_not(parser *p, node **out) {
    sl_status st;
    if (is_name(p, "not")) {
        const token *at = cur(p);
        adv(p);
        if ((st = enter(p))) return st;
        node *inner;
        if ((st = parse_not(p, &inner))) return st;
        p->depth--;
        node *n = mk(p, N_NOT, at);
        if (!n) return NOMEM;
        n->a = inner;
        *out = n;
        return SL_OK;
    }
    return parse_compare(p, out);
}

static sl_status parse_and(parser *p, node **out) {
    sl_status st;
    node *l, *r;
    if ((st = parse_not(p, &l))) return st;
    while (is_name(p, "and")) {
        const token *at = cur(p);
        adv(p);
        if ((st = parse_not(p, &r))) return st;
        node *n = mk(p, N_AND, at);
        if (!n) return NOMEM;
        n->a = l;
        n->b = r;
        l = n;
    }
    *out = l;
    return SL_OK;
}

static sl_status parse_or(parser *p, node **out) {
    sl_status st;
    node *l, *r;
    if ((st = parse_and(p, &l))) return st;
    while (is_name(p, "or")) {
        const token *at = cur(p);
        adv(p);
        if ((st = parse_and(p, &r))) return st;
        node *n = mk(p, N_OR, at);
        if (!n) return NOMEM;
        n->a = l;
        n->b = r;
        l = n;
    }
    *out = l;
    return SL_OK;
}

static sl_status parse_condexpr(parser *p, node **out) {
    sl_status st;
    node *e1;
    if ((st = parse_or(p, &e1))) return st;
    while (is_name(p, "if")) {
        const token *at = cur(p);
        adv(p);
        p->soft++;
        node *test, *e3 = NULL;
        if ((st = parse_or(p, &test))) return st;
        if (skip_name(p, "else")) {
            if ((st = enter(p))) return st;
            if ((st = parse_condexpr(p, &e3))) return st;
            p->depth--;
        }
        p->soft--;
        node *n = mk(p, N_COND, at);
        if (!n) return NOMEM;
        n->a = test;
        n->b = e1;
        n->c = e3;
        e1 = n;
    }
    *out = e1;
    return SL_OK;
}

static sl_status parse_expression(parser *p, bool with_condexpr, node **out) {
    return with_condexpr ? parse_condexpr(p, out) : parse_or(p, out);
}

static bool tuple_end(parser *p, const char *extra_end) {
    const token *t = cur(p);
    if (t->kind == T_VAR_END || t->kind == T_BLOCK_END || t->kind == T_EOF) return true;
    if (t->kind == T_OP && (t->op == TOK_RPAREN)) return true;
    if (extra_end && is_name(p, extra_end)) return true;
    return false;
}

static sl_status parse_tuple(parser *p, bool simplified, bool with_condexpr, const char *extra_end, bool explicit_parens,
                             node **out) {
    sl_status st;
    const token *at = cur(p);
    nlist items = {0};
    bool is_tuple = false;
    if ((st = enter(p))) return st;
    for (;;) {
        if (items.n) {
            if (!skip_op(p, TOK_COMMA)) break;
            is_tuple = true;
        }
        if (tuple_end(p, extra_end)) break;
        node *e;
        if (simplified) {
            if ((st = parse_primary(p, &e))) return st;
        } else {
            if ((st = parse_expression(p, with_condexpr, &e))) return st;
        }
        if ((st = nl_push(p, &items, e))) return st;
        if (!is_op(p, TOK_COMMA)) break;
    }
    p->depth--;
    if (!is_tuple) {
        if (items.n) { *out = items.v[0]; return SL_OK; }
        if (!explicit_parens) return unexpected(p, "an expression");
    }
    node *n = mk(p, N_TUPLE, at);
    if (!n) return NOMEM;
    n->list = items.v;
    n->n = items.n;
    *out = n;
    return SL_OK;
}

/* ---- statements ------------------------------------------------------ */

static sl_status expect_block_end(parser *p) {
    if (cur(p)->kind != T_BLOCK_END) return unexpected(p, "end of statement block '%}'");
    adv(p);
    return SL_OK;
}

/* jinja2 parse_statements: [':'] '%}' body, stopping before an end name */
static sl_status parse_statements(parser *p, const char *const *ends, int n_ends, nlist *body, const char **which) {
    sl_status st;
    skip_op(p, TOK_COLON);
    if ((st = expect_block_end(p))) return st;
    if ((st = parse_body(p, ends, n_ends, body))) return st;
    *which = cur(p)->s;
    adv(p);
    return SL_OK;
}

static sl_status check_target(parser *p, node *n, const token *at) {
    (void)p;
    if (n->kind == N_NAME) return SL_OK;
    if (n->kind == N_TUPLE) {
        for (uint32_t i = 0; i < n->n; i++) {
            sl_status st = check_target(p, n->list[i], at);
            if (st) return st;
        }
        return SL_OK;
    }
    if (n->kind == N_NSREF) return SL_OK;
    return fail_at(at, "cannot assign to this expression");
}

static sl_status parse_assign_target(parser *p, bool with_namespace, const char *extra_end, node **out) {
    sl_status st;
    const token *at = cur(p);
    if (with_namespace && at->kind == T_NAME && peek(p, 1)->kind == T_OP && peek(p, 1)->op == TOK_DOT &&
        peek(p, 2)->kind == T_NAME) {
        node *n = mk(p, N_NSREF, at);
        if (!n) return NOMEM;
        n->name = at->s;
        n->attr = peek(p, 2)->s;
        adv(p);
        adv(p);
        adv(p);
        *out = n;
        return SL_OK;
    }
    node *n;
    if ((st = parse_tuple(p, true, true, extra_end, false, &n))) return st;
    if (n->kind == N_CONST || (n->kind != N_NAME && n->kind != N_TUPLE)) return fail_at(at, "cannot assign to this expression");
    if (n->kind == N_NAME) {
        if (!strcmp(n->name, "true") || !strcmp(n->name, "false") || !strcmp(n->name, "none"))
            return fail_at(at, "cannot assign to '%s'", n->name);
    }
    if ((st = check_target(p, n, at))) return st;
    *out = n;
    return SL_OK;
}

static sl_status parse_for(parser *p, const token *at, node **out) {
    sl_status st;
    node *n = mk(p, S_FOR, at);
    if (!n) return NOMEM;
    size_t outer_refs = p->n_refs;
    if ((st = parse_assign_target(p, false, "in", &n->a))) return st;
    /* the loop variables belong to the loop's frame, not the outer one */
    size_t n_targets = p->n_refs - outer_refs;
    const char **targets = tpl_alloc(&p->t->arena, (n_targets + 1) * sizeof *targets);
    if (!targets) return NOMEM;
    memcpy(targets, p->refs + outer_refs, n_targets * sizeof *targets);
    p->n_refs = outer_refs;
    if (!skip_name(p, "in")) return unexpected(p, "'in'");
    if ((st = parse_tuple(p, false, false, "recursive", false, &n->b))) return st;
    size_t frame_start = p->n_refs;
    for (size_t i = 0; i < n_targets; i++)
        if ((st = add_ref(p, targets[i]))) return st;
    if (skip_name(p, "if")) {
        if ((st = parse_expression(p, true, &n->c))) return st;
    }
    n->flag = skip_name(p, "recursive");
    static const char *const ends1[] = {"endfor", "else"};
    static const char *const ends2[] = {"endfor"};
    nlist body = {0}, els = {0};
    const char *which;
    int saved_soft = p->soft;
    p->soft = 0;
    p->loops++;
    if ((st = parse_statements(p, ends1, 2, &body, &which))) return st;
    p->loops--;
    p->n_refs = frame_start;
    if (strcmp(which, "else") == 0) {
        if ((st = parse_statements(p, ends2, 1, &els, &which))) return st;
    }
    p->soft = saved_soft;
    n->list = body.v;
    n->n = body.n;
    n->list2 = els.v;
    n->n2 = els.n;
    *out = n;
    return SL_OK;
}

static sl_status parse_if(parser *p, const token *at, node **out) {
    sl_status st;
    node *top = NULL, *n = mk(p, S_IF, at);
    if (!n) return NOMEM;
    top = n;
    static const char *const ends[] = {"elif", "else", "endif"};
    static const char *const ends2[] = {"endif"};
    p->soft++;
    for (;;) {
        if ((st = parse_tuple(p, false, false, NULL, false, &n->a))) return st;
        nlist body = {0};
        const char *which;
        if ((st = parse_statements(p, ends, 3, &body, &which))) return st;
        n->list = body.v;
        n->n = body.n;
        if (!strcmp(which, "elif")) {
            node *e = mk(p, S_IF, &p->tk[p->i - 1]);
            if (!e) return NOMEM;
            e->flag = 1; /* an elif: evaluated iteratively */
            n->list2 = tpl_alloc(&p->t->arena, sizeof(node *));
            if (!n->list2) return NOMEM;
            n->list2[0] = e;
            n->n2 = 1;
            n = e;
            continue;
        }
        if (!strcmp(which, "else")) {
            nlist els = {0};
            if ((st = parse_statements(p, ends2, 1, &els, &which))) return st;
            n->list2 = els.v;
            n->n2 = els.n;
        }
        break;
    }
    p->soft--;
    *out = top;
    return SL_OK;
}

static sl_status parse_set(parser *p, const token *at, node **out) {
    sl_status st;
    node *target;
    size_t refs_before = p->n_refs;
    if ((st = parse_assign_target(p, true, NULL, &target))) return st;
    if (skip_op(p, TOK_ASSIGN)) {
        node *n = mk(p, S_SET, at);
        if (!n) return NOMEM;
        n->a = target;
        if ((st = parse_tuple(p, false, true, NULL, false, &n->b))) return st;
        *out = n;
        return SL_OK;
    }
    if (target->kind == N_TUPLE) return fail_at(at, "a block {%% set %%} assigns one name");
    node *n = mk(p, S_SETBLOCK, at);
    if (!n) return NOMEM;
    n->a = target;
    /* jinja2: a set block whose target this frame (and its parents) never
       referenced before sees it as undefined inside its body */
    n->flag = target->kind == N_NAME && !has_ref(p, refs_before, target->name);
    if (is_op(p, TOK_PIPE)) {
        if ((st = parse_filter(p, NULL, false, &n->b))) return st;
    }
    static const char *const ends[] = {"endset"};
    nlist body = {0};
    const char *which;
    int saved_soft = p->soft;
    size_t frame_start = p->n_refs;
    p->soft = 0;
    if ((st = parse_statements(p, ends, 1, &body, &which))) return st;
    p->soft = saved_soft;
    p->n_refs = frame_start;
    n->list = body.v;
    n->n = body.n;
    *out = n;
    return SL_OK;
}

/* ( name [= default], ... ): the parameters of a macro or of a call block's caller */
static sl_status parse_macro_rest(parser *p, node *n, bool need_parens) {
    sl_status st;
    slist params = {0};
    nlist defs = {0};
    if (is_op(p, TOK_LPAREN)) {
        adv(p);
        while (!is_op(p, TOK_RPAREN)) {
            if (params.n && (st = expect_op(p, TOK_COMMA, "','"))) return st;
            if (is_op(p, TOK_RPAREN)) break;
            if (cur(p)->kind != T_NAME) return unexpected(p, "parameter name");
            const char *pn = cur(p)->s;
            adv(p);
            if ((st = sl_push_name(p, &params, pn))) return st;
            if (skip_op(p, TOK_ASSIGN)) {
                node *d;
                if ((st = parse_expression(p, true, &d)) || (st = nl_push(p, &defs, d))) return st;
            } else if (defs.n) {
                return fail_at(cur(p), "non-default argument follows default argument");
            }
        }
        adv(p);
    } else if (need_parens) {
        return unexpected(p, "'('");
    }
    n->names = params.v;
    n->n_names = params.n;
    n->list2 = defs.v;
    n->n2 = defs.n;
    return SL_OK;
}

static sl_status parse_macro_body(parser *p, node *n, const char *end) {
    sl_status st;
    const char *ends[] = {end};
    nlist body = {0};
    const char *which;
    int saved_soft = p->soft, saved_loops = p->loops;
    bool *sv = p->cur_varargs, *sk = p->cur_kwargs, *sc = p->cur_caller;
    p->soft = 0;
    p->loops = 0;
    p->cur_varargs = &n->uses_varargs;
    p->cur_kwargs = &n->uses_kwargs;
    p->cur_caller = &n->uses_caller;
    size_t frame_start = p->n_refs;
    for (uint32_t i = 0; i < n->n_names; i++)
        if ((st = add_ref(p, n->names[i]))) return st;
    if ((st = parse_statements(p, ends, 1, &body, &which))) return st;
    p->n_refs = frame_start;
    p->soft = saved_soft;
    p->loops = saved_loops;
    p->cur_varargs = sv;
    p->cur_kwargs = sk;
    p->cur_caller = sc;
    n->list = body.v;
    n->n = body.n;
    return SL_OK;
}

static sl_status parse_macro(parser *p, const token *at, node **out) {
    sl_status st;
    node *n = mk(p, S_MACRO, at);
    if (!n) return NOMEM;
    if (cur(p)->kind != T_NAME) return unexpected(p, "macro name");
    n->name = cur(p)->s;
    adv(p);
    if ((st = parse_macro_rest(p, n, true)) || (st = parse_macro_body(p, n, "endmacro"))) return st;
    *out = n;
    return SL_OK;
}

/* {% call [(params)] macro(args) %} body {% endcall %}: the body becomes `caller` */
static sl_status parse_call_block(parser *p, const token *at, node **out) {
    sl_status st;
    node *n = mk(p, S_CALLBLOCK, at), *caller = mk(p, S_MACRO, at);
    if (!n || !caller) return NOMEM;
    caller->name = p->caller;
    if ((st = parse_macro_rest(p, caller, false))) return st;
    const token *ct = cur(p);
    if ((st = parse_expression(p, true, &n->a))) return st;
    if (n->a->kind != N_CALL) return fail_at(ct, "expected a call after {%% call %%}");
    if ((st = parse_macro_body(p, caller, "endcall"))) return st;
    n->b = caller;
    *out = n;
    return SL_OK;
}

static sl_status parse_block_body(parser *p, nkind k, const char *end, const token *at, node **out) {
    sl_status st;
    node *n = mk(p, k, at);
    if (!n) return NOMEM;
    const char *ends[] = {end};
    nlist body = {0};
    const char *which;
    int saved_soft = p->soft;
    size_t frame_start = p->n_refs;
    if (k != S_BODY) p->soft = 0;
    if ((st = parse_statements(p, ends, 1, &body, &which))) return st;
    p->soft = saved_soft;
    if (k != S_BODY) p->n_refs = frame_start;
    n->list = body.v;
    n->n = body.n;
    *out = n;
    return SL_OK;
}

static sl_status parse_with(parser *p, const token *at, node **out) {
    sl_status st;
    nlist sets = {0};
    while (cur(p)->kind != T_BLOCK_END) {
        if (sets.n && (st = expect_op(p, TOK_COMMA, "','"))) return st;
        const token *t = cur(p);
        node *s = mk(p, S_SET, t);
        if (!s) return NOMEM;
        if ((st = parse_assign_target(p, false, NULL, &s->a))) return st;
        if ((st = expect_op(p, TOK_ASSIGN, "'='"))) return st;
        if ((st = parse_expression(p, true, &s->b))) return st;
        if ((st = nl_push(p, &sets, s))) return st;
    }
    node *n;
    if ((st = parse_block_body(p, S_WITH, "endwith", at, &n))) return st;
    n->list2 = sets.v;
    n->n2 = sets.n;
    *out = n;
    return SL_OK;
}

static sl_status parse_statement(parser *p, node **out) {
    sl_status st;
    const token *at = cur(p);
    if (at->kind != T_NAME) return unexpected(p, "a statement name");
    const char *w = at->s;
    if ((st = enter(p))) return st;
    adv(p);
    if (!strcmp(w, "for")) st = parse_for(p, at, out);
    else if (!strcmp(w, "if")) st = parse_if(p, at, out);
    else if (!strcmp(w, "set")) st = parse_set(p, at, out);
    else if (!strcmp(w, "macro")) st = parse_macro(p, at, out);
    else if (!strcmp(w, "call")) st = parse_call_block(p, at, out);
    else if (!strcmp(w, "with")) st = parse_with(p, at, out);
    else if (!strcmp(w, "generation")) st = parse_block_body(p, S_BODY, "endgeneration", at, out);
    else if (!strcmp(w, "filter")) {
        node *chain;
        if ((st = parse_filter(p, NULL, true, &chain))) return st;
        if ((st = parse_block_body(p, S_FILTERBLOCK, "endfilter", at, out))) return st;
        (*out)->b = chain;
    } else if (!strcmp(w, "break") || !strcmp(w, "continue")) {
        if (!p->loops) return fail_at(at, "'%s' outside of a for loop", w);
        if (!(*out = mk(p, w[0] == 'b' ? S_BREAK : S_CONTINUE, at))) return NOMEM;
        st = SL_OK;
    } else if (!strcmp(w, "include") || !strcmp(w, "import") || !strcmp(w, "from") || !strcmp(w, "extends") ||
               !strcmp(w, "block")) {
        return fail_at(at, "'%s' is not available: templates cannot load other templates", w);
    } else if (!strcmp(w, "autoescape") || !strcmp(w, "do")) {
        return fail_at(at, "the '%s' tag is not supported", w);
    } else {
        return fail_at(at, "unknown tag '%s'", w);
    }
    p->depth--;
    return st;
}

static sl_status parse_body(parser *p, const char *const *ends, int n_ends, nlist *body) {
    sl_status st;
    for (;;) {
        const token *t = cur(p);
        switch (t->kind) {
        case T_EOF:
            if (n_ends) {
                char want[128];
                size_t k = 0;
                for (int i = 0; i < n_ends && k < sizeof want; i++)
                    k += snprintf(want + k, sizeof want - k, "%s'%s'", i ? " or " : "", ends[i]);
                return fail_at(t, "unexpected end of template: expected %s", want);
            }
            return SL_OK;
        case T_DATA: {
            node *n = mk(p, S_DATA, t);
            if (!n) return NOMEM;
            tstr *s = tpl_alloc(&p->t->arena, sizeof(tstr) + t->len + 1);
            if (!s) return NOMEM;
            s->len = t->len;
            memcpy(s->s, t->s, t->len);
            s->s[t->len] = '\0';
            s->ncp = -1;
            str_ncp(s); /* cached now: a compiled template is never written while rendering */
            n->cval = vstr_const(s);
            if ((st = nl_push(p, body, n))) return st;
            adv(p);
            break;
        }
        case T_VAR_BEGIN: {
            adv(p);
            node *n = mk(p, S_PRINT, t), *e;
            if (!n) return NOMEM;
            if ((st = parse_tuple(p, false, true, NULL, false, &e))) return st;
            if (cur(p)->kind != T_VAR_END) return unexpected(p, "end of print statement '}}'");
            adv(p);
            n->a = e;
            if ((st = nl_push(p, body, n))) return st;
            break;
        }
        case T_BLOCK_BEGIN: {
            adv(p);
            if (cur(p)->kind == T_NAME)
                for (int i = 0; i < n_ends; i++)
                    if (!strcmp(cur(p)->s, ends[i])) return SL_OK;
            if (cur(p)->kind == T_NAME && n_ends == 0 &&
                (!strncmp(cur(p)->s, "end", 3) || !strcmp(cur(p)->s, "else") || !strcmp(cur(p)->s, "elif")))
                return fail_at(cur(p), "unexpected '%s': no open block to close", cur(p)->s);
            node *n;
            if ((st = parse_statement(p, &n))) return st;
            if ((st = nl_push(p, body, n))) return st;
            if ((st = expect_block_end(p))) return st;
            break;
        }
        default:
            return unexpected(p, NULL);
        }
    }
}

sl_status tpl_parse(sl_template *t, const token *toks, size_t n) {
    parser p = {.t = t, .tk = toks, .n = n};
    p.varargs = tpl_intern(t, "varargs", 7);
    p.kwargs = tpl_intern(t, "kwargs", 6);
    p.caller = tpl_intern(t, "caller", 6);
    if (!p.varargs || !p.kwargs || !p.caller) return NOMEM;
    node *root = mk(&p, S_BODY, &toks[0]);
    if (!root) return NOMEM;
    nlist body = {0};
    sl_status st = parse_body(&p, NULL, 0, &body);
    sl_free(p.refs);
    if (st) return st;
    root->list = body.v;
    root->n = body.n;
    t->root = root;
    return SL_OK;
}

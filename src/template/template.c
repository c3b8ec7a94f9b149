/*
 * template.c — the public API of the template engine (template.h):
 * compile (lex + parse into the template's arena, names interned so scopes
 * compare them by pointer), render (a fresh arena per render holding every
 * value; the variables passed in become the global scope), and the chat
 * helper that renders messages as transformers' apply_chat_template does.
 *
 * Invariants: a compiled template is immutable and may be rendered from
 * several threads at once; a render frees everything it allocated before
 * returning, on success and on error.
 */
#include "template/tpl.h"

#include "core/alloc.h"

#include <stdio.h>
#include <string.h>

/* transformers' former default template (ChatML) */
static const char CHATML[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const char *sl_chat_template_default(void) { return CHATML; }

void sl_template_limits_default(sl_template_limits *lim) {
    memset(lim, 0, sizeof *lim);
    lim->max_steps = 10u * 1000 * 1000;
    lim->max_depth = 400;
    lim->max_output = 16u << 20;
    lim->max_memory = 256u << 20;
}

/* ---- interning ------------------------------------------------------------ */

static uint64_t hash_name(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

const char *tpl_intern_find(const sl_template *t, const char *s, size_t n) {
    if (!t->names_cap) return NULL;
    size_t mask = t->names_cap - 1, i = (size_t)hash_name(s, n) & mask;
    while (t->names[i]) {
        if (strlen(t->names[i]) == n && memcmp(t->names[i], s, n) == 0) return t->names[i];
        i = (i + 1) & mask;
    }
    return NULL;
}

const char *tpl_intern(sl_template *t, const char *s, size_t n) {
    const char *found = tpl_intern_find(t, s, n);
    if (found) return found;
    if ((t->names_n + 1) * 2 > t->names_cap) {
        size_t cap = t->names_cap ? t->names_cap * 2 : 256;
        const char **nt = tpl_zalloc(&t->arena, cap * sizeof *nt);
        if (!nt) return NULL;
        for (size_t i = 0; i < t->names_cap; i++) {
            const char *x = t->names[i];
            if (!x) continue;
            size_t j = (size_t)hash_name(x, strlen(x)) & (cap - 1);
            while (nt[j]) j = (j + 1) & (cap - 1);
            nt[j] = x;
        }
        t->names = nt;
        t->names_cap = cap;
    }
    char *c = tpl_alloc(&t->arena, n + 1);
    if (!c) return NULL;
    memcpy(c, s, n);
    c[n] = '\0';
    size_t j = (size_t)hash_name(c, n) & (t->names_cap - 1);
    while (t->names[j]) j = (j + 1) & (t->names_cap - 1);
    t->names[j] = c;
    t->names_n++;
    return c;
}

/* ---- compile / render ------------------------------------------------------ */

sl_status sl_template_compile(const char *src, size_t len, sl_template **out) {
    sl_status st;
    token *toks = NULL;
    size_t n = 0;
    *out = NULL;
    sl_template *t = sl_calloc(1, sizeof *t);
    if (!t) return SL_FAIL(SL_ERR_NOMEM, "out of memory compiling a template");
    /* names every render looks up */
    if (!tpl_intern(t, "loop", 4) || !tpl_intern(t, "varargs", 7) || !tpl_intern(t, "kwargs", 6) ||
        !tpl_intern(t, "caller", 6)) {
        st = SL_FAIL(SL_ERR_NOMEM, "out of memory compiling a template");
        goto fail;
    }
    if ((st = tpl_lex(t, src ? src : "", src ? len : 0, &toks, &n))) goto fail;
    if ((st = tpl_parse(t, toks, n))) goto fail;
    sl_free(toks);
    *out = t;
    return SL_OK;
fail:
    sl_free(toks);
    sl_template_destroy(t);
    return st;
}

void sl_template_destroy(sl_template *t) {
    if (!t) return;
    tpl_arena_free(&t->arena);
    sl_free(t);
}

sl_status sl_template_render(const sl_template *t, const json_t *vars, const sl_template_limits *lim, char **out,
                             size_t *out_len) {
    sl_status st;
    *out = NULL;
    if (out_len) *out_len = 0;
    if (vars && !json_is_object(vars)) return SL_FAIL(SL_ERR_INVALID, "template variables must be a JSON object");
    tpl_rt *r = sl_calloc(1, sizeof *r);
    if (!r) return SL_FAIL(SL_ERR_NOMEM, "out of memory rendering a template");
    if (lim) r->lim = *lim;
    else sl_template_limits_default(&r->lim);
    if (!r->lim.max_output) r->lim.max_output = 1;
    r->arena.limit = r->lim.max_memory;
    r->tpl = t;
    tpl_buf result = {0};
    r->out = &result;
    r->globals = tpl_zalloc(&r->arena, sizeof(scope));
    if (!r->globals) { st = tpl_nomem(r); goto fail; }
    r->globals->frame = true;
    if (vars) {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)vars, key, val) {
            const char *name = tpl_intern_find(t, key, strlen(key));
            if (!name) continue; /* the template never names it */
            value v;
            if ((st = v_from_json(r, val, &v, 0))) goto fail;
            scope *g = r->globals;
            if (g->n == g->cap) {
                size_t cap = g->cap ? g->cap * 2 : 8;
                const char **nn = tpl_alloc(&r->arena, cap * sizeof *nn);
                value *nv = tpl_alloc(&r->arena, cap * sizeof *nv);
                if (!nn || !nv) { st = tpl_nomem(r); goto fail; }
                if (g->n) { memcpy(nn, g->names, g->n * sizeof *nn); memcpy(nv, g->vals, g->n * sizeof *nv); }
                g->names = nn;
                g->vals = nv;
                g->cap = cap;
            }
            g->names[g->n] = name;
            g->vals[g->n] = v;
            g->n++;
        }
    }
    r->sc = tpl_zalloc(&r->arena, sizeof(scope));
    if (!r->sc) { st = tpl_nomem(r); goto fail; }
    r->sc->parent = r->globals;
    r->sc->frame = true;
    if ((st = tpl_exec(r, t->root))) goto fail;
    char *buf = sl_malloc(result.n + 1);
    if (!buf) { st = SL_FAIL(SL_ERR_NOMEM, "out of memory copying the rendered text"); goto done; }
    if (result.n) memcpy(buf, result.p, result.n);
    buf[result.n] = '\0';
    *out = buf;
    if (out_len) *out_len = result.n;
    st = SL_OK;
    goto done;
fail:
    if (r->err_st == SL_OK) r->err_st = st ? st : SL_ERR_INVALID;
    st = r->err_st;
    if (r->err_raised)
        SL_FAIL(st, "template raised an exception at line %d, column %d: %s", r->err_line, r->err_col, r->err);
    else if (r->err_pos_set)
        SL_FAIL(st, "template error at line %d, column %d: %s", r->err_line, r->err_col, r->err);
    else
        SL_FAIL(st, "template error: %s", r->err[0] ? r->err : sl_status_str(st));
done:
    tpl_arena_free(&r->arena);
    sl_free(r);
    return st;
}

static const char *const CHAT_VARS[] = {"messages", "add_generation_prompt", "bos_token", "eos_token", "tools",
                                        "documents"};

bool sl_chat_reserved_var(const char *name) {
    for (size_t i = 0; i < sizeof CHAT_VARS / sizeof CHAT_VARS[0]; i++)
        if (!strcmp(name, CHAT_VARS[i])) return true;
    return false;
}

sl_status sl_chat_render(const char *tpl_src, const json_t *messages, bool add_generation_prompt, const char *bos,
                         const char *eos, const json_t *tools, const json_t *documents, const json_t *extra, char **out,
                         size_t *out_len) {
    sl_status st;
    sl_template *t = NULL;
    json_t *vars = NULL;
    *out = NULL;
    if (!tpl_src) tpl_src = CHATML;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)extra, k, v) {
        if (sl_chat_reserved_var(k)) return SL_FAIL(SL_ERR_INVALID, "the template variable '%s' cannot be set", k);
    }
    if ((st = sl_template_compile(tpl_src, strlen(tpl_src), &t))) return st;
    vars = extra ? json_deep_copy(extra) : json_object();
    if (!vars) { st = SL_FAIL(SL_ERR_NOMEM, "out of memory building template variables"); goto done; }
    if (json_object_set(vars, "messages", messages ? (json_t *)messages : json_null()) ||
        json_object_set_new(vars, "add_generation_prompt", json_boolean(add_generation_prompt)) ||
        json_object_set_new(vars, "bos_token", json_string(bos ? bos : "")) ||
        json_object_set_new(vars, "eos_token", json_string(eos ? eos : "")) ||
        json_object_set(vars, "tools", tools ? (json_t *)tools : json_null()) ||
        json_object_set(vars, "documents", documents ? (json_t *)documents : json_null())) {
        st = SL_FAIL(SL_ERR_INVALID, "cannot build template variables (is bos/eos valid UTF-8?)");
        goto done;
    }
    st = sl_template_render(t, vars, NULL, out, out_len);
done:
    json_decref(vars);
    sl_template_destroy(t);
    return st;
}

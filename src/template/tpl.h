/*
 * tpl.h — internals of the template engine shared by its files:
 *   tpl_arena.c   arena, byte buffers, UTF-8 and Python-string helpers
 *   tpl_lex.c     source → tokens (jinja2's lexer rules and whitespace control)
 *   tpl_parse.c   tokens → AST (jinja2's grammar and precedence)
 *   tpl_value.c   the value type: Python str()/repr(), ==, <, truthiness, JSON
 *   tpl_eval.c    statements, expressions, scopes, macros, loops, limits
 *   tpl_builtins.c filters, tests, methods of str/dict/list, global functions
 *   template.c    the public API (template.h)
 *
 * Invariants: every string is valid UTF-8 (the source is checked at compile
 * time, JSON input is UTF-8) and carries its byte length (it may hold NUL);
 * values made by a render live in that render's arena and never outlive it;
 * AST constants live in the template's own arena and are never written.
 */
#ifndef SL_TEMPLATE_TPL_H
#define SL_TEMPLATE_TPL_H

#include "template/template.h"
#include "core/status.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- arena ----------------------------------------------------------- */

typedef struct tpl_chunk tpl_chunk;

typedef struct tpl_arena {
    tpl_chunk *head;
    size_t used;   /* bytes of chunks held */
    size_t limit;  /* 0 = unlimited */
    bool over;     /* an allocation failed on the limit */
} tpl_arena;

void *tpl_alloc(tpl_arena *a, size_t n); /* 16-byte aligned, NULL when over the limit or out of memory */
void *tpl_zalloc(tpl_arena *a, size_t n);
void tpl_arena_free(tpl_arena *a);

/* ---- values ---------------------------------------------------------- */

typedef enum vtype {
    V_UNDEF,
    V_NONE,
    V_BOOL,
    V_INT,
    V_FLOAT,
    V_STR,
    V_LIST, /* list or tuple (tlist.tuple) */
    V_DICT,
    V_NS,   /* namespace() */
    V_FUNC, /* global function, bound method, macro */
    V_LOOP, /* the `loop` variable of a for loop */
} vtype;

typedef struct tstr {
    size_t len;   /* bytes, without the terminating NUL */
    int64_t ncp;  /* code points, -1 until counted */
    char s[];     /* NUL-terminated */
} tstr;

typedef struct value value;

/* What a list value stands for. Python filters return generators, dict
 * methods views and range() a range; they print, compare, index and
 * serialize differently from lists, and a generator iterates only once. */
typedef enum lkind { LK_SEQ, LK_GEN, LK_VIEW, LK_RANGE } lkind;

typedef struct tlist {
    size_t n, cap;
    value *items;
    bool tuple;
    uint8_t kind;      /* lkind */
    const char *tname; /* LK_GEN / LK_VIEW: Python type name ("generator", "dict_items", ...) */
    const char *gname; /* LK_GEN made by a filter: the generator function, for printing */
    size_t pos;        /* LK_GEN: items before pos are consumed */
    int64_t r_start, r_stop, r_step; /* LK_RANGE: range(start, stop, step) */
} tlist;

typedef struct tdict {
    size_t n, cap;
    value *keys, *vals; /* insertion order */
} tdict;

typedef struct tundef {
    const char *name;  /* missing variable, attribute or key (text) */
    const char *owner; /* "dict object", "'None'" ... or NULL for a variable */
    bool unsafe;       /* a blocked attribute (SecurityError in jinja2's sandbox) */
    bool key_int;      /* `name` is an integer key */
} tundef;

struct scope;
struct node;

typedef enum fnkind { FN_GLOBAL, FN_METHOD, FN_MACRO, FN_LOOP_CYCLE, FN_LOOP_CHANGED } fnkind;

typedef struct tfunc {
    fnkind kind;
    int id;              /* global or method id */
    const char *name;
    struct value *self;  /* bound receiver (methods), state (joiner/cycler) */
    const struct node *macro;
    struct scope *closure;
    struct tloop *loop;
} tfunc;

typedef struct tloop {
    tlist *items;       /* what the loop iterates, after its `if` filter */
    int64_t index0;
    int64_t depth0;
    struct value *last_changed; /* loop.changed() state */
    const struct node *for_node; /* recursive loops */
    struct scope *scope;         /* where the loop runs (recursive calls) */
} tloop;

typedef struct tns {
    tdict d;
} tns;

struct value {
    uint8_t type;  /* vtype */
    uint8_t safe;  /* V_STR: Markup (from |safe); `+` escapes its other operand */
    union {
        bool b;
        int64_t i;
        double f;
        tstr *s;
        tlist *l;
        tdict *d;
        tns *ns;
        tfunc *fn;
        tloop *loop;
        tundef *u;
    };
};

/* ---- render state ---------------------------------------------------- */

typedef struct tpl_buf {
    char *p;
    size_t n, cap;
} tpl_buf;

typedef struct scope {
    struct scope *parent;
    size_t n, cap;
    const char **names; /* interned: compared by pointer */
    value *vals;
    bool frame;         /* `set` assigns here (template top, loop iteration, macro call, with) */
    bool captured;      /* a macro closes over it: never reused */
} scope;

typedef struct sl_template sl_template;

typedef struct tpl_rt {
    tpl_arena arena;
    sl_template_limits lim;
    const sl_template *tpl;
    uint64_t steps;
    uint32_t depth;
    tpl_buf *out;        /* where output goes now */
    int ctl;             /* pending loop control: 0, CTL_BREAK, CTL_CONTINUE */
    bool has_caller;     /* {% call %}: the next macro call receives `caller` */
    value caller;
    scope *sc;           /* current scope */
    scope *globals;      /* the variables passed in */
    /* the first error */
    sl_status err_st;
    bool err_pos_set;
    bool err_raised;     /* raise_exception */
    int err_line, err_col;
    char err[640];
} tpl_rt;

enum { CTL_BREAK = 1, CTL_CONTINUE = 2 };

/* Record an error (the first one wins) and return st. */
sl_status tpl_err(tpl_rt *r, sl_status st, const char *fmt, ...) SL_PRINTF(3, 4);
sl_status tpl_nomem(tpl_rt *r);
/* Charge work proportional to `bytes` against the step budget. */
sl_status tpl_charge(tpl_rt *r, size_t bytes);

/* byte buffers in the render arena */
sl_status tpl_buf_put(tpl_rt *r, tpl_buf *b, const char *s, size_t n);
sl_status tpl_buf_putc(tpl_rt *r, tpl_buf *b, char c);
sl_status tpl_buf_printf(tpl_rt *r, tpl_buf *b, const char *fmt, ...) SL_PRINTF(3, 4);
sl_status tpl_buf_put_cp(tpl_rt *r, tpl_buf *b, uint32_t cp);

/* ---- value helpers (tpl_value.c) ------------------------------------- */

extern const value V_UNDEF_VAL, V_NONE_VAL;

value vbool(bool b);
value vint(int64_t i);
value vfloat(double f);
sl_status vstr(tpl_rt *r, const char *s, size_t n, value *out); /* copies */
sl_status vstr_buf(tpl_rt *r, const tpl_buf *b, value *out);
value vstr_const(const tstr *s);                                   /* no copy (AST constants) */
sl_status vlist_new(tpl_rt *r, size_t cap, bool tuple, value *out);
sl_status vlist_push(tpl_rt *r, tlist *l, value v);
sl_status vdict_new(tpl_rt *r, value *out);
sl_status vdict_set(tpl_rt *r, tdict *d, value k, value v);
/* Lookup by Python equality (1 == 1.0 == True); NULL when absent. */
value *vdict_get(tpl_rt *r, const tdict *d, value k);
value *vdict_get_str(const tdict *d, const char *k, size_t n);
sl_status vundef(tpl_rt *r, const char *name, const char *owner, value *out);

bool v_truthy(value v);
bool v_hashable(value v);
/* Turn a freshly built list into a generator, view or range (see lkind). */
void v_set_kind(value *v, lkind kind, const char *tname, const char *gname);
static inline bool v_is_seq(value v) { return v.type == V_LIST && v.l->kind == LK_SEQ; }
const char *v_type_name(value v); /* Python type names: "str", "int", "NoneType", "dict" ... */
bool v_is_str(value v);
bool v_is_num(value v); /* bool, int, float */
double v_num(value v);

/* Python str() and repr() appended to a buffer. */
sl_status v_str_append(tpl_rt *r, tpl_buf *b, value v);
sl_status v_repr_append(tpl_rt *r, tpl_buf *b, value v, int depth);
sl_status v_to_str(tpl_rt *r, value v, value *out); /* str(v) as a V_STR */
/* json.dumps(v, ensure_ascii, indent (NULL = none), separators, sort_keys) */
typedef struct json_opts {
    bool ensure_ascii;
    const char *indent; size_t indent_len; bool has_indent;
    const char *item_sep; size_t item_sep_len;
    const char *key_sep; size_t key_sep_len;
    bool sort_keys;
} json_opts;
sl_status v_json_append(tpl_rt *r, tpl_buf *b, value v, const json_opts *o, int level);

/* Python ==; fails only on nesting too deep. */
sl_status v_eq(tpl_rt *r, value a, value b, bool *eq);
/* Python <: fails with a TypeError message for unorderable types. */
sl_status v_cmp(tpl_rt *r, value a, value b, const char *op, int *cmp);
/* `needle in hay` */
sl_status v_contains(tpl_rt *r, value hay, value needle, bool *in);

/* Python float repr (shortest round-trip) */
void fmt_float(double f, char *buf, size_t cap);
sl_status v_from_json(tpl_rt *r, const json_t *j, value *out, int depth);

/* ---- UTF-8 / Python str helpers (tpl_arena.c) ------------------------ */

int64_t str_ncp(tstr *s);                                /* code points (cached) */
size_t utf8_dec(const char *s, size_t n, uint32_t *cp);  /* bytes of one char (valid input) */
size_t utf8_enc(uint32_t cp, char *out);
/* byte offset of code point index i (0 <= i <= ncp) */
size_t str_cp_off(const tstr *s, int64_t i);
bool py_isspace(uint32_t cp);
bool py_islinebreak(uint32_t cp);
bool utf8_valid(const char *s, size_t n, size_t *bad_at);

/* ---- AST ------------------------------------------------------------- */

typedef enum nkind {
    /* expressions */
    N_CONST,
    N_NAME,
    N_LIST,
    N_TUPLE,
    N_DICT,    /* list = keys, list2 = values */
    N_GETATTR, /* a . name */
    N_GETITEM, /* a [ b ] */
    N_SLICE,   /* a [ b : c : d ], parts may be NULL */
    N_CALL,    /* a ( list, names=list2 ) */
    N_FILTER,  /* a | name ( list, names=list2 ); a NULL in filter blocks */
    N_TEST,    /* a is [not] name ( list ) ; flag = negated */
    N_NEG,
    N_POS,
    N_NOT,
    N_BIN,     /* a op b */
    N_AND,
    N_OR,
    N_CMP,     /* a (ops[i] list[i])* */
    N_COND,    /* b if a else c */
    N_CONCAT,  /* list joined with ~ */
    N_NSREF,   /* name . attr (assignment target) */
    /* statements */
    S_DATA,
    S_PRINT,
    S_IF,      /* a: test, list: body, list2: else */
    S_FOR,     /* a: target, b: iterable, c: filter, list: body, list2: else, flag: recursive */
    S_SET,     /* a: target, b: value */
    S_SETBLOCK,/* a: target, b: filter chain or NULL, list: body */
    S_MACRO,   /* name, names: params, list2: defaults (right-aligned), list: body */
    S_FILTERBLOCK, /* b: filter chain, list: body */
    S_BREAK,
    S_CONTINUE,
    S_BODY,    /* list: body (generation blocks) */
    S_WITH,    /* list2: targets/values pairs as N_SET statements, list: body */
    S_CALLBLOCK, /* a: the call (N_CALL), b: the caller macro (S_MACRO named "caller") */
} nkind;

enum binop { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW };
enum cmpop { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE, CMP_IN, CMP_NOTIN };

typedef struct node {
    uint8_t kind;
    uint8_t op;
    uint8_t flag;
    int line, col;
    struct node *a, *b, *c, *d;
    struct node **list;
    uint32_t n;
    struct node **list2;
    uint32_t n2;
    const char **names; /* kwarg names (N_CALL/N_FILTER/N_TEST: n2 of them), macro params (n of them? see S_MACRO) */
    uint32_t n_names;
    const char *name;   /* interned name, attribute, filter/test name */
    const char *attr;   /* N_NSREF attribute */
    uint8_t *ops;       /* N_CMP */
    value cval;         /* N_CONST, S_DATA */
    int id;             /* filter/test/global builtin id (-1 none) */
    bool uses_varargs, uses_kwargs, uses_caller; /* S_MACRO: names its body reads */
} node;

struct sl_template {
    tpl_arena arena;    /* AST, constants, interned names */
    node *root;         /* S_BODY */
    const char **names; /* intern table (open addressing) */
    size_t names_cap, names_n;
};

const char *tpl_intern(sl_template *t, const char *s, size_t n);          /* NULL on OOM */
const char *tpl_intern_find(const sl_template *t, const char *s, size_t n); /* NULL when absent */

/* ---- lexer ----------------------------------------------------------- */

typedef enum tkind {
    T_EOF,
    T_DATA,
    T_VAR_BEGIN,
    T_VAR_END,
    T_BLOCK_BEGIN,
    T_BLOCK_END,
    T_NAME,
    T_STRING,
    T_INT,
    T_FLOAT,
    T_OP,
} tkind;

/* operator tokens */
enum {
    TOK_ADD = 1, TOK_SUB, TOK_DIV, TOK_FLOORDIV, TOK_MUL, TOK_POW, TOK_MOD, TOK_TILDE,
    TOK_LBRACKET, TOK_RBRACKET, TOK_LPAREN, TOK_RPAREN, TOK_LBRACE, TOK_RBRACE,
    TOK_EQ, TOK_NE, TOK_LT, TOK_LE, TOK_GT, TOK_GE, TOK_ASSIGN, TOK_DOT, TOK_COLON,
    TOK_PIPE, TOK_COMMA, TOK_SEMICOLON,
};

typedef struct token {
    uint8_t kind;
    uint8_t op;
    int line, col;
    const char *s; /* T_DATA, T_NAME, T_STRING: decoded text (arena), NUL-terminated */
    size_t len;
    int64_t i;
    double f;
} token;

/* Tokenize; on error records "line L, column C: msg" with SL_FAIL. */
sl_status tpl_lex(sl_template *t, const char *src, size_t len, token **out, size_t *n_out);
sl_status tpl_parse(sl_template *t, const token *toks, size_t n);

/* ---- builtins (tpl_builtins.c) --------------------------------------- */

typedef struct callargs {
    value *pos;
    size_t npos;
    const char **kw; /* interned or plain names */
    value *kwv;
    size_t nkw;
} callargs;

int tpl_filter_id(const char *name);  /* -1: not a filter */
int tpl_test_id(const char *name);    /* -1: not a test */
int tpl_global_id(const char *name);  /* -1: not a global function */
bool tpl_filter_known_jinja(const char *name); /* jinja2 builtin names we may not implement */
bool tpl_test_known_jinja(const char *name);

sl_status tpl_apply_filter(tpl_rt *r, int id, const char *name, value v, callargs *a, value *out);
sl_status tpl_apply_test(tpl_rt *r, int id, const char *name, value v, callargs *a, bool *out);
sl_status tpl_call_global(tpl_rt *r, int id, callargs *a, value *out);
/* obj.name: methods of str/dict/list (bound functions), else undefined-handling by caller. */
sl_status tpl_get_method(tpl_rt *r, value obj, const char *name, value *out, bool *found);
sl_status tpl_call_method(tpl_rt *r, tfunc *fn, callargs *a, value *out);
sl_status tpl_call_value(tpl_rt *r, value callee, callargs *a, value *out); /* in tpl_eval.c */

/* obj.name and obj[key] as jinja2's sandbox resolves them (tpl_eval.c) */
sl_status tpl_getattr(tpl_rt *r, value obj, const char *name, size_t len, value *out);
sl_status tpl_getitem(tpl_rt *r, value obj, value key, value *out);
/* list(v): list/tuple items, dict keys, string characters; errors for the rest */
sl_status tpl_to_list(tpl_rt *r, value v, value *out);
/* a op b with Python semantics (OP_*) */
sl_status tpl_binop(tpl_rt *r, int op, value a, value b, value *out);
/* run a compiled template body with r set up (tpl_eval.c) */
sl_status tpl_exec(tpl_rt *r, const node *root);

/* errors for undefined values, shared by eval and builtins */
sl_status tpl_undef_error(tpl_rt *r, value u);

#endif

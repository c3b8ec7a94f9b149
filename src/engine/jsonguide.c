/*
 * jsonguide.c — structured output: schema compiler, recognizer and token
 * mask (see jsonguide.h).
 */
#include "jsonguide.h"

#include "core/alloc.h"
#include "core/status.h"
#include "core/strbuf.h"
#include "engine/redfa.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- compiled schemas ---------------------------------------------------------- */

enum { K_ANY, K_OBJECT, K_ARRAY, K_STRING, K_NUMBER, K_INTEGER, K_LITERALS, K_UNION, K_RAW /* the root of a whole-output pattern */ };

/* built-in nodes */
enum { NODE_ANY, NODE_ANY_OBJECT, NODE_ANY_ARRAY, NODE_ANY_LITERAL, NODE_FIRST_FREE };

#define MAX_NODES 4096
#define MAX_PROPS 64   /* declared properties per object (a candidate bit each) */
#define MAX_LITS 64    /* enum values per node */
#define NO_LIMIT 0xFFFF
#define NO_DFA 0xFFFF
#define MAX_DFA_STATES 4096 /* all patterns and formats of one schema together */
#define MAX_NUM_DIGITS 18   /* digits before and after the point of a number with bounds */
#define MAX_MERGED 1024     /* schemas normalized for allOf in one compile */

/* node.bounds: which of min / max apply, and whether they are excluded */
enum { B_MIN = 1, B_MAX = 2, B_MIN_EX = 4, B_MAX_EX = 8 };

/* multipleOf: exact decimals in fixed point, units of 10^-18 (a number's 18 digits each side of its point
 * fit: below 10^36 units) */
typedef unsigned __int128 u128;
#define E18 ((u128)1000000000000000000ull)
#define MAG_END (E18 * E18) /* magnitudes below this: at most 18 digits before the point */

typedef struct node {
    uint8_t kind;
    bool pending;  /* being compiled ($ref recursion): its first bytes are not known yet */
    uint8_t bounds; /* NUMBER, INTEGER: B_* */
    uint16_t a, n; /* OBJECT: props [a, a + n); LITERALS: lits [a, a + n); UNION: alts [a, a + n);
                    * ARRAY: the nodes of its first n items (prefixItems), alts [a, a + n) */
    uint16_t sub;  /* OBJECT: the values' node of keys not declared (see extra); ARRAY: the (other) items' node */
    uint16_t knode; /* OBJECT with no declared property: propertyNames as a STRING node (0: any names) */
    bool extra;    /* OBJECT with declared properties: other keys may come too (additionalProperties true or a schema) */
    bool unique;   /* ARRAY: uniqueItems (its items are one LITERALS node's values: each at most once) */
    uint16_t names; /* OBJECT with declared properties: lits [names, names + n) are their names */
    uint16_t lo, hi; /* ARRAY: items; STRING: characters; OBJECT: members (hi NO_LIMIT: none) */
    uint16_t dfa;    /* STRING: the start state of its pattern's (or format's) DFA, or NO_DFA */
    double min, max; /* NUMBER, INTEGER: bounds (an INTEGER's made inclusive whole numbers) */
    u128 step;       /* NUMBER, INTEGER: multipleOf in units of 10^-18 (an INTEGER's: its least whole multiple;
                      * at least MAG_END: only 0), 0: none */
} node;

typedef struct prop {
    uint16_t node;
    bool required;
} prop;

/* A text matched byte by byte: an enum value as compact JSON, or a property name as JSON writes it
 * without its quotes. At most 255 bytes (sl_json_state.off). */
typedef struct lit {
    uint32_t text; /* offset in bytes */
    uint16_t len;
} lit;
#define MAX_LIT_BYTES 255

struct sl_json_schema {
    _Atomic int refs;
    node *nodes;
    int n_nodes, cap_nodes;
    prop *props;
    int n_props, cap_props;
    lit *lits;
    int n_lits, cap_lits;
    uint16_t *alts;
    int n_alts, cap_alts;
    char *bytes;
    size_t n_bytes, cap_bytes;
    uint16_t *dnext; /* the patterns' DFAs, one table: dnext[state * 256 + byte], SL_REDFA_DEAD */
    uint8_t *dacc;   /* dacc[state]: the string so far matches */
    uint16_t *dmin, *dmax; /* characters from a state to a match: fewest, most (SL_REDFA_UNBOUNDED) */
    uint8_t *dlast; /* dlast[state]: no byte can follow (a whole-output pattern is then complete) */
    uint8_t *leaves; /* n_nodes * 256: a union's alternatives (through nested unions) that may begin with a byte */
    int n_dstates;
    uint16_t root;
};

static bool grow_to(void **p, int *cap, int need, size_t elem) {
    if (need <= *cap) return true;
    int c = *cap ? *cap * 2 : 16;
    while (c < need) c *= 2;
    void *np = sl_realloc(*p, (size_t)c * elem);
    if (!np) return false;
    *p = np;
    *cap = c;
    return true;
}

static int new_node(sl_json_schema *s, uint8_t kind) {
    if (s->n_nodes >= MAX_NODES || !grow_to((void **)&s->nodes, &s->cap_nodes, s->n_nodes + 1, sizeof(node))) return -1;
    s->nodes[s->n_nodes] = (node){.kind = kind, .hi = NO_LIMIT, .dfa = NO_DFA};
    return s->n_nodes++;
}

static int64_t add_bytes(sl_json_schema *s, const char *p, size_t n) {
    if (s->n_bytes + n > s->cap_bytes) {
        size_t c = s->cap_bytes ? s->cap_bytes * 2 : 256;
        while (c < s->n_bytes + n) c *= 2;
        char *nb = sl_realloc(s->bytes, c);
        if (!nb) return -1;
        s->bytes = nb;
        s->cap_bytes = c;
    }
    memcpy(s->bytes + s->n_bytes, p, n);
    s->n_bytes += n;
    return (int64_t)(s->n_bytes - n);
}

/* A literal at the end of the literal list: the compact JSON text of v, or without its first and last
 * byte (a name without quotes). False when out of memory or longer than MAX_LIT_BYTES. */
static bool add_lit_trim(sl_json_schema *s, const json_t *v, bool trim) {
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
    if (!t) return false;
    const size_t n = strlen(t) - (trim ? 2 : 0);
    int64_t off = n <= MAX_LIT_BYTES && s->n_lits < 0xFFFF ? add_bytes(s, t + trim, n) : -1;
    free(t);
    if (off < 0 || !grow_to((void **)&s->lits, &s->cap_lits, s->n_lits + 1, sizeof(lit))) return false;
    s->lits[s->n_lits++] = (lit){.text = (uint32_t)off, .len = (uint16_t)n};
    return true;
}
static bool add_lit(sl_json_schema *s, const json_t *v) { return add_lit_trim(s, v, false); }

/* The bytes a value of node id may begin with. */
static void first_bytes(const sl_json_schema *s, int id, bool set[256], int depth) {
    const node *nd = &s->nodes[id];
    switch (nd->kind) {
    case K_ANY:
        for (const char *p = "{[\"-0123456789tfn"; *p; p++) set[(uint8_t)*p] = true;
        break;
    case K_OBJECT: set['{'] = true; break;
    case K_ARRAY: set['['] = true; break;
    case K_STRING: set['"'] = true; break;
    case K_NUMBER:
    case K_INTEGER:
        for (const char *p = "-0123456789"; *p; p++) set[(uint8_t)*p] = true;
        break;
    case K_LITERALS:
        for (int i = 0; i < nd->n; i++) set[(uint8_t)s->bytes[s->lits[nd->a + i].text]] = true;
        break;
    default: /* K_UNION */
        for (int i = 0; i < nd->n && depth < 64; i++) first_bytes(s, s->alts[nd->a + i], set, depth + 1);
        break;
    }
}

/* The alternatives of node id (through nested unions; id itself when it is none) whose values may begin
 * with byte c: how many, the first max of them in out. */
static int union_leaves(const sl_json_schema *s, int id, uint8_t c, uint16_t *out, int max, int depth) {
    const node *nd = &s->nodes[id];
    if (nd->kind != K_UNION) {
        bool set[256] = {false};
        first_bytes(s, id, set, 0);
        if (!set[c]) return 0;
        if (max > 0) out[0] = (uint16_t)id;
        return 1;
    }
    int n = 0;
    for (int i = 0; i < nd->n && depth < 64; i++)
        n += union_leaves(s, s->alts[nd->a + i], c, n < max ? out + n : NULL, n < max ? max - n : 0, depth + 1);
    return n;
}

typedef struct cctx {
    sl_json_schema *s;
    const json_t *root;
    const char *refs[256]; /* $ref strings compiled or being compiled, and their nodes */
    int ref_node[256];
    int n_refs;
    json_t *keep; /* schemas made by merging (allOf), alive until the compile ends */
    bool nothing; /* the error is that a schema allows no value (an alternative that does is left out) */
    int merged;   /* schemas normalized (a bound on the work of unfolding $refs into allOf) */
    char err[256];
} cctx;

static int compile(cctx *c, const json_t *j, const char *path, int depth);

static int fail_at(cctx *c, const char *path, const char *what) {
    snprintf(c->err, sizeof c->err, "%s%s%s", path, *path ? ": " : "", what);
    return -1;
}

/* The schema allows no value at all. */
static int fail_nothing(cctx *c, const char *path, const char *what) {
    fail_at(c, path, what);
    c->nothing = true;
    return -1;
}

static bool nonneg_int(const json_t *v, long long max, long long *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max) return false;
    *out = json_integer_value(v);
    return true;
}

/* The schema a $ref names: the root, or one of its #/$defs or #/definitions (NULL: none). */
static const json_t *ref_target(const cctx *c, const char *ref) {
    if (!strcmp(ref, "#")) return c->root;
    const char *name = NULL;
    const json_t *defs = NULL;
    if (!strncmp(ref, "#/$defs/", 8)) name = ref + 8, defs = json_object_get(c->root, "$defs");
    else if (!strncmp(ref, "#/definitions/", 14)) name = ref + 14, defs = json_object_get(c->root, "definitions");
    return name && !strchr(name, '/') ? json_object_get(defs, name) : NULL;
}

static int compile_ref(cctx *c, const char *ref, const char *path, int depth) {
    for (int i = 0; i < c->n_refs; i++)
        if (!strcmp(c->refs[i], ref)) return c->ref_node[i];
    const json_t *target = ref_target(c, ref);
    if (!target) return fail_at(c, path, "'$ref' must name a schema in #/$defs or #/definitions of this schema");
    if (c->n_refs >= 256) return fail_at(c, path, "too many '$ref' targets");
    /* a union of one alternative stands for the target while it compiles, so a recursive $ref finds it */
    const int id = new_node(c->s, K_UNION);
    if (id < 0) return fail_at(c, path, "the schema is too large");
    c->s->nodes[id].pending = true;
    c->refs[c->n_refs] = ref;
    c->ref_node[c->n_refs++] = id;
    const int t = compile(c, target, ref + 1, depth + 1);
    if (t < 0) return -1;
    /* a $ref that comes back to itself with no object or array between ("#/$defs/A": {"$ref": "#/$defs/A"}) */
    for (int k = t, steps = 0; steps < MAX_NODES; steps++) {
        if (k == id) return fail_at(c, path, "'$ref' refers to itself with no object or array between");
        const node *nd = &c->s->nodes[k];
        if (nd->kind != K_UNION || nd->n != 1) break;
        k = c->s->alts[nd->a];
    }
    if (!grow_to((void **)&c->s->alts, &c->s->cap_alts, c->s->n_alts + 1, sizeof(uint16_t)))
        return fail_at(c, path, "out of memory");
    c->s->alts[c->s->n_alts] = (uint16_t)t;
    c->s->nodes[id].a = (uint16_t)c->s->n_alts++;
    c->s->nodes[id].n = 1;
    c->s->nodes[id].pending = false;
    return id;
}

/* Node id's lo and hi from keywords lo_key and hi_key (counts below 65535; a larger maximum is none). */
static int limits(cctx *c, const json_t *j, int id, const char *lo_key, const char *hi_key, const char *path) {
    node *nd = &c->s->nodes[id];
    long long x;
    char msg[96];
    if (json_object_get(j, lo_key)) {
        if (!nonneg_int(json_object_get(j, lo_key), NO_LIMIT - 1, &x)) {
            snprintf(msg, sizeof msg, "'%s' must be an integer in [0, %d]", lo_key, NO_LIMIT - 1);
            return fail_at(c, path, msg);
        }
        nd->lo = (uint16_t)x;
    }
    if (json_object_get(j, hi_key)) {
        if (!nonneg_int(json_object_get(j, hi_key), 1LL << 62, &x)) {
            snprintf(msg, sizeof msg, "'%s' must be a non-negative integer", hi_key);
            return fail_at(c, path, msg);
        }
        nd->hi = x < NO_LIMIT ? (uint16_t)x : NO_LIMIT;
    }
    if (nd->lo > nd->hi) {
        snprintf(msg, sizeof msg, "'%s' is above '%s'", lo_key, hi_key);
        return fail_nothing(c, path, msg);
    }
    return id;
}

static bool meets(const node *nd, double lo, bool lo_in, double hi, bool hi_in);
static bool mult_within(const node *nd, bool neg, u128 a, u128 b);
static bool is_digit(uint8_t c);

/* The formats held to (JSON Schema's meaning, RFC 3339 dates and times); any other is an annotation. Days are
 * not checked against their month, as llama.cpp's grammars do not; a leap second is 23:59:60 (as Ajv's
 * formats have it without reading the offset). */
#define RE_DATE "\\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\\d|3[01])"
#define RE_TIME "(([01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d|23:59:60)(\\.\\d+)?([Zz]|[+-]([01]\\d|2[0-3]):[0-5]\\d)"
#define RE_LABEL "[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#define RE_OCTET "(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)"
static const struct {
    const char *name, *re;
} formats[] = {
    {"date", "^" RE_DATE "$"},
    {"time", "^" RE_TIME "$"},
    {"date-time", "^" RE_DATE "[Tt]" RE_TIME "$"},
    {"uuid", "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"},
    {"ipv4", "^(" RE_OCTET "\\.){3}" RE_OCTET "$"},
    {"hostname", "^" RE_LABEL "(\\." RE_LABEL ")*$"},
    {"email", "^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@" RE_LABEL "(\\." RE_LABEL ")+$"},
};

/* Compile a regular expression into the schema's DFA table: its start state, or -1. */
static int add_dfa(cctx *c, const char *re, size_t len, const char *path, const char *what) {
    sl_json_schema *s = c->s;
    const int room = MAX_DFA_STATES - s->n_dstates;
    char msg[160];
    sl_redfa d;
    if (room <= 0 || sl_redfa_compile(re, len, room, &d) != SL_OK) {
        snprintf(msg, sizeof msg, "'%s': %.140s", what,
                 room <= 0 ? "the schema's patterns need more than 4096 automaton states" : sl_last_error());
        return fail_at(c, path, msg);
    }
    uint16_t *nn = sl_realloc(s->dnext, (size_t)(s->n_dstates + d.n) * 256 * sizeof(uint16_t));
    if (nn) s->dnext = nn;
    uint8_t *na = nn ? sl_realloc(s->dacc, (size_t)(s->n_dstates + d.n)) : NULL;
    if (na) s->dacc = na;
    uint16_t *nmin = na ? sl_realloc(s->dmin, (size_t)(s->n_dstates + d.n) * sizeof(uint16_t)) : NULL;
    if (nmin) s->dmin = nmin;
    uint16_t *nmax = nmin ? sl_realloc(s->dmax, (size_t)(s->n_dstates + d.n) * sizeof(uint16_t)) : NULL;
    if (nmax) s->dmax = nmax;
    if (!nn || !na || !nmin || !nmax) {
        sl_redfa_free(&d);
        return fail_at(c, path, "out of memory");
    }
    const int base = s->n_dstates;
    for (size_t i = 0; i < (size_t)d.n * 256; i++)
        s->dnext[(size_t)base * 256 + i] = d.next[i] == SL_REDFA_DEAD ? SL_REDFA_DEAD : (uint16_t)(d.next[i] + base);
    memcpy(s->dacc + base, d.accept, (size_t)d.n);
    memcpy(s->dmin + base, d.min_chars, (size_t)d.n * sizeof(uint16_t));
    memcpy(s->dmax + base, d.max_chars, (size_t)d.n * sizeof(uint16_t));
    uint8_t *nl = sl_realloc(s->dlast, (size_t)(s->n_dstates + d.n));
    if (!nl) {
        sl_redfa_free(&d);
        return fail_at(c, path, "out of memory");
    }
    s->dlast = nl;
    for (int i = 0; i < d.n; i++) {
        bool any = false;
        for (int b = 0; b < 256 && !any; b++) any = d.next[(size_t)i * 256 + (size_t)b] != SL_REDFA_DEAD;
        s->dlast[base + i] = !any;
    }
    s->n_dstates += d.n;
    sl_redfa_free(&d);
    return base;
}

/* A string's pattern or enforced format. */
static int string_dfa(cctx *c, const json_t *j, int id, const char *path) {
    const json_t *pat = json_object_get(j, "pattern"), *fmt = json_object_get(j, "format");
    if (pat && !json_is_string(pat)) return fail_at(c, path, "'pattern' must be a string");
    if (fmt && !json_is_string(fmt)) return fail_at(c, path, "'format' must be a string");
    const char *re = pat ? json_string_value(pat) : NULL, *what = "pattern";
    size_t len = pat ? json_string_length(pat) : 0;
    for (size_t i = 0; fmt && i < sizeof formats / sizeof formats[0]; i++) {
        if (strcmp(json_string_value(fmt), formats[i].name)) continue;
        if (re) return fail_at(c, path, "'pattern' beside an enforced 'format' is not supported");
        re = formats[i].re, len = strlen(re), what = "format";
    }
    if (!re) return id;
    const int st = add_dfa(c, re, len, path, what);
    if (st < 0) return -1;
    node *nd = &c->s->nodes[id];
    nd->dfa = (uint16_t)st;
    if ((nd->hi != NO_LIMIT && c->s->dmin[st] > nd->hi) || (c->s->dmax[st] != SL_REDFA_UNBOUNDED && c->s->dmax[st] < nd->lo)) {
        char msg[96];
        snprintf(msg, sizeof msg, "no string of the '%s' has a length within 'minLength' and 'maxLength'", what);
        return fail_at(c, path, msg);
    }
    return id;
}

/* Number v as an exact decimal: its sign and its magnitude in units of 10^-18 (a real as its shortest
 * decimal form, the one that reads back as the same double). False when it has more than 18 digits after
 * its point or is 10^19 or more. */
static bool exact_dec(const json_t *v, bool *neg, u128 *units) {
    if (json_is_integer(v)) {
        const json_int_t x = json_integer_value(v);
        *neg = x < 0;
        *units = (u128)(x < 0 ? -(uint64_t)x : (uint64_t)x) * E18;
        return true;
    }
    const double x = json_is_real(v) ? json_real_value(v) : NAN;
    if (!isfinite(x) || fabs(x) >= 1e19) return false;
    char b[40];
    int p = 1;
    for (; p <= 17; p++) { /* the shortest form: d.ddde±XX with p digits */
        snprintf(b, sizeof b, "%.*e", p - 1, x);
        if (strtod(b, NULL) == x) break;
    }
    u128 digits = 0;
    int nd = 0;
    const char *q = b + (b[0] == '-');
    for (; *q && *q != 'e'; q++)
        if (is_digit((uint8_t)*q)) digits = digits * 10 + (u128)(*q - '0'), nd++;
    const int shift = 18 + atoi(q + 1) - (nd - 1); /* units = digits * 10^shift */
    if (shift < 0) return false;
    for (int k = 0; k < shift; k++) digits *= 10;
    *neg = x < 0;
    *units = digits;
    return true;
}

/* multipleOf of a node of this kind (NULL: none): its step (node.step); an error message, or NULL. */
static const char *multiple_step(const json_t *m, bool integer, u128 *step) {
    *step = 0;
    if (!m) return NULL;
    bool neg;
    u128 u;
    if (!json_is_number(m) || !exact_dec(m, &neg, &u) || neg || u == 0)
        return "'multipleOf' must be a number above 0 with at most 18 digits after its point, below 10^19";
    if (integer) { /* the least whole multiple: lcm(u, 10^18) */
        u128 a = u, b = E18;
        while (b) {
            const u128 t = a % b;
            a = b;
            b = t;
        }
        u /= a;                                   /* u / gcd: at most 10^37 */
        u = u >= MAG_END / E18 ? MAG_END : u * E18; /* (beyond every magnitude: only 0) */
    }
    *step = u;
    return NULL;
}

/* A number's minimum, maximum, exclusiveMinimum and exclusiveMaximum (the strictest of each side); an
 * integer's made inclusive whole numbers; its multipleOf. */
static int number_bounds(cctx *c, const json_t *j, int id, const char *path) {
    static const char *keys[4] = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"};
    node *nd = &c->s->nodes[id];
    char msg[128];
    for (int k = 0; k < 4; k++) {
        const json_t *v = json_object_get(j, keys[k]);
        if (!v) continue;
        if (!json_is_number(v) || !isfinite(json_number_value(v))) {
            snprintf(msg, sizeof msg, "'%s' must be a number%s", keys[k],
                     json_is_boolean(v) ? " (draft 4's true/false form is not supported)" : "");
            return fail_at(c, path, msg);
        }
        const double x = json_number_value(v);
        const bool ex = k & 1;
        if (k < 2 && (!(nd->bounds & B_MIN) || x > nd->min || (x == nd->min && ex)))
            nd->min = x, nd->bounds = (uint8_t)((nd->bounds & ~B_MIN_EX) | B_MIN | (ex ? B_MIN_EX : 0));
        if (k >= 2 && (!(nd->bounds & B_MAX) || x < nd->max || (x == nd->max && ex)))
            nd->max = x, nd->bounds = (uint8_t)((nd->bounds & ~B_MAX_EX) | B_MAX | (ex ? B_MAX_EX : 0));
    }
    if (nd->kind == K_INTEGER) {
        if (nd->bounds & B_MIN) nd->min = nd->bounds & B_MIN_EX ? floor(nd->min) + 1 : ceil(nd->min);
        if (nd->bounds & B_MAX) nd->max = nd->bounds & B_MAX_EX ? ceil(nd->max) - 1 : floor(nd->max);
        nd->bounds &= (uint8_t)~(B_MIN_EX | B_MAX_EX);
    }
    if ((nd->bounds & B_MIN) && (nd->bounds & B_MAX) &&
        (nd->min > nd->max || (nd->min == nd->max && (nd->bounds & (B_MIN_EX | B_MAX_EX)))))
        return fail_nothing(c, path, nd->kind == K_INTEGER ? "no integer lies within the minimum and the maximum"
                                                      : "no number lies within the minimum and the maximum");
    const char *merr = multiple_step(json_object_get(j, "multipleOf"), nd->kind == K_INTEGER, &nd->step);
    if (merr) return fail_at(c, path, merr);
    if (nd->step) /* a multiple the recognizer can write */
        return mult_within(nd, false, 0, MAG_END) || mult_within(nd, true, 0, MAG_END)
                   ? id
                   : fail_nothing(c, path, "no multiple of 'multipleOf' of at most 18 digits lies within the bounds");
    /* a number the recognizer can write (18 digits each side of the point) must lie within: try the ends and
     * the middle of the bounds (cut to 18 digits) at each precision */
    if (!nd->bounds) return id;
    const double lo = nd->bounds & B_MIN ? fmax(nd->min, -9e17) : -9e17, hi = nd->bounds & B_MAX ? fmin(nd->max, 9e17) : 9e17;
    const double cand[3] = {lo, hi, lo / 2 + hi / 2};
    for (int k = 0; k < 3; k++)
        for (int f = 0; f <= (nd->kind == K_INTEGER ? 0 : MAX_NUM_DIGITS); f++) {
            char b[64];
            snprintf(b, sizeof b, "%.*f", f, cand[k]);
            const double v = strtod(b, NULL);
            if (strcspn(b + (b[0] == '-'), ".") <= MAX_NUM_DIGITS && meets(nd, v, true, v, true)) return id;
        }
    return fail_at(c, path, "no number of at most 18 digits before and after its point lies within the bounds");
}

static int compile_type(cctx *c, const json_t *j, const char *type, const char *path, int depth);
static bool is_annotation(const char *k);
static json_t *values_of(const json_t *s);

/* propertyNames (of an object with no declared property) as a STRING node: a string's keywords, an enum or
 * const of strings made a pattern of those names. 0: any name. */
static int names_node(cctx *c, const json_t *pn, const char *path, int depth) {
    char sub[192];
    snprintf(sub, sizeof sub, "%s%spropertyNames", path, *path ? "." : "");
    if (json_is_true(pn)) return 0;
    if (!json_is_object(pn)) return fail_at(c, path, "'propertyNames' must be a schema (an object, or true or false)");
    static const char *ok[] = {"type", "pattern", "format", "minLength", "maxLength", "enum", "const"};
    const char *k;
    const json_t *v;
    bool any = true;
    json_object_foreach((json_t *)pn, k, v) {
        bool known = is_annotation(k);
        for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) known |= !strcmp(k, ok[i]);
        if (!known) {
            char msg[160];
            snprintf(msg, sizeof msg, "'propertyNames': '%.40s' is not supported (pattern, format, minLength, "
                     "maxLength, enum, const are)", k);
            return fail_at(c, path, msg);
        }
        any &= is_annotation(k);
    }
    const json_t *t = json_object_get(pn, "type");
    if (t && !(json_is_string(t) && !strcmp(json_string_value(t), "string")))
        return fail_at(c, path, "'propertyNames': 'type' must be \"string\" (names are strings)");
    if (any) return 0;
    json_t *vals = values_of(pn);
    if (!vals) return compile_type(c, pn, "string", sub, depth + 1);
    if (json_object_get(pn, "pattern") || json_object_get(pn, "format")) {
        json_decref(vals);
        return fail_at(c, path, "'propertyNames': 'pattern' or 'format' beside 'enum' or 'const' is not supported");
    }
    /* the names among the values, as one pattern: ^(?:n1|n2|...)$ (the DFA reads a name's characters) */
    sl_strbuf re = {0};
    bool mem = sl_strbuf_add(&re, "^(?:", 4);
    size_t i, n = 0;
    json_array_foreach(vals, i, v) {
        if (!json_is_string(v)) continue;
        const char *q = json_string_value(v);
        if (n++) mem &= sl_strbuf_add(&re, "|", 1);
        for (size_t b = 0; b < json_string_length(v); b++) {
            if (q[b] && strchr("\\^$.|?*+()[]{}/", q[b])) mem &= sl_strbuf_add(&re, "\\", 1);
            mem &= sl_strbuf_add(&re, q + b, 1);
        }
    }
    mem &= sl_strbuf_add(&re, ")$", 2);
    json_decref(vals);
    json_t *spec = json_object();
    int id;
    if (!mem || !spec) {
        id = fail_at(c, path, "out of memory");
    } else if (n == 0) {
        id = fail_nothing(c, path, "'propertyNames': no value of 'enum' or 'const' is a name (a string)");
    } else {
        json_object_set_new(spec, "pattern", json_stringn(re.p, re.n));
        if (json_object_get(pn, "minLength")) json_object_set(spec, "minLength", json_object_get(pn, "minLength"));
        if (json_object_get(pn, "maxLength")) json_object_set(spec, "maxLength", json_object_get(pn, "maxLength"));
        id = compile_type(c, spec, "string", sub, depth + 1);
    }
    free(re.p);
    json_decref(spec);
    return id;
}

/* An object of the declared properties decl (in order; a null value: of additionalProperties' schema). */
static int object_of(cctx *c, const json_t *j, const json_t *decl, const char *path, int depth) {
    sl_json_schema *s = c->s;
    const json_t *req = json_object_get(j, "required"), *extra = json_object_get(j, "additionalProperties");
    const bool open = extra && !json_is_false(extra);
    char sub[192];
    const int id = new_node(s, K_OBJECT);
    if (id < 0) return fail_at(c, path, "the schema is too large");
    if (limits(c, j, id, "minProperties", "maxProperties", path) < 0) return -1;
    int x = NODE_ANY; /* the values of other keys */
    if (open && !json_is_true(extra)) {
        snprintf(sub, sizeof sub, "%s%sadditionalProperties", path, *path ? "." : "");
        if ((x = compile(c, extra, sub, depth + 1)) < 0) return -1;
    }
    s->nodes[id].sub = (uint16_t)x;
    const json_t *pn = json_object_get(j, "propertyNames");
    if (pn && json_object_size(decl) == 0 && (open || !extra)) { /* the names of the keys */
        if (json_is_false(pn)) {
            if (s->nodes[id].lo > 0) return fail_nothing(c, path, "'minProperties' asks for keys that 'propertyNames' refuses");
            s->nodes[id].hi = 0;
            return id;
        }
        const int k = names_node(c, pn, path, depth);
        if (k < 0) return -1;
        s->nodes[id].knode = (uint16_t)k;
    } else if (pn && !json_is_true(pn) && json_object_size(decl) > 0) {
        return fail_at(c, path, "'propertyNames' beside 'properties' is not supported");
    }
    if (json_object_size(decl) == 0) { /* any keys (additionalProperties false: none) */
        if (open || !extra) return id;
        if (s->nodes[id].lo > 0) return fail_nothing(c, path, "'minProperties' asks for keys that cannot come");
        s->nodes[id].hi = 0; /* {} */
        return id;
    }
    s->nodes[id].extra = open;
    /* the properties' nodes first (they may add properties of their own), then this object's list */
    const char *k;
    const json_t *v;
    size_t i;
    int nodes[MAX_PROPS], np = 0;
    json_object_foreach((json_t *)decl, k, v) {
        snprintf(sub, sizeof sub, "%s%sproperties.%s", path, *path ? "." : "", k);
        if ((nodes[np++] = json_is_null(v) ? x : compile(c, v, sub, depth + 1)) < 0) return -1;
    }
    if (!grow_to((void **)&s->props, &s->cap_props, s->n_props + np, sizeof(prop)))
        return fail_at(c, path, "out of memory");
    s->nodes[id].a = (uint16_t)s->n_props;
    s->nodes[id].n = (uint16_t)np;
    s->nodes[id].names = (uint16_t)s->n_lits;
    np = 0;
    json_object_foreach((json_t *)decl, k, v) {
        json_t *name = json_string(k);
        const bool ok = name && add_lit_trim(s, name, true);
        json_decref(name);
        if (!ok) return fail_at(c, path, "a property name is longer than 255 bytes");
        bool r = false;
        json_array_foreach(req, i, v) r |= !strcmp(json_string_value(v), k);
        s->props[s->n_props++] = (prop){.node = (uint16_t)nodes[np++], .required = r};
    }
    if (s->nodes[id].lo > np && !open)
        return fail_nothing(c, path, "'minProperties' is above the number of declared properties");
    if (json_array_size(req) > s->nodes[id].hi) return fail_nothing(c, path, "'maxProperties' is below the required properties");
    return id;
}

static json_t *keep(cctx *c, json_t *j);

/* An object: its declared properties, and the names it requires that it does not declare, which are other keys
 * (of additionalProperties' schema), so declared too where other keys may come. */
static int compile_object(cctx *c, const json_t *j, const char *path, int depth) {
    const json_t *pp = json_object_get(j, "patternProperties");
    if (pp) { /* one pattern, no declared keys: keys that match it (propertyNames), values of its schema — answers
               * with other keys would be valid too, but are not made */
        const json_t *pr = json_object_get(j, "properties"), *rq = json_object_get(j, "required");
        if (!json_is_object(pp) || json_object_size(pp) != 1)
            return fail_at(c, path, "'patternProperties' is supported with one pattern");
        if (json_object_size(pr) > 0 || json_array_size(rq) > 0 || json_object_get(j, "propertyNames"))
            return fail_at(c, path, "'patternProperties' beside 'properties', 'required' or 'propertyNames' is not supported");
        const char *pat = json_object_iter_key(json_object_iter((json_t *)pp));
        json_t *r = keep(c, json_copy((json_t *)j));
        if (!r) return fail_at(c, path, "out of memory");
        json_object_del(r, "patternProperties");
        json_object_set_new(r, "propertyNames", json_pack("{s:s}", "pattern", pat));
        json_object_set(r, "additionalProperties", json_object_get(pp, pat));
        return compile_object(c, r, path, depth);
    }
    const json_t *props = json_object_get(j, "properties"), *req = json_object_get(j, "required"),
                 *extra = json_object_get(j, "additionalProperties");
    if (props && !json_is_object(props)) return fail_at(c, path, "'properties' must be an object");
    if (req && !json_is_array(req)) return fail_at(c, path, "'required' must be an array of names");
    json_t *decl = json_object();
    const char *k;
    json_t *v;
    size_t i;
    json_object_foreach((json_t *)props, k, v) json_object_set(decl, k, v);
    json_array_foreach(req, i, v) {
        if (!json_is_string(v)) {
            json_decref(decl);
            return fail_at(c, path, "'required' must be an array of names");
        }
        if (json_object_get(decl, json_string_value(v))) continue;
        if (!extra || json_is_false(extra)) {
            json_decref(decl);
            return fail_nothing(c, path, "'required' names a property that is not declared");
        }
        json_object_set_new(decl, json_string_value(v), json_null());
    }
    const int id = json_object_size(decl) > MAX_PROPS ? fail_at(c, path, "more than 64 properties in one object")
                                                      : object_of(c, j, decl, path, depth);
    json_decref(decl);
    return id;
}

static bool values_equal(const json_t *a, const json_t *b);

/* uniqueItems on array node id: its items must be one LITERALS node's values (an enum, a const, booleans,
 * null — Pydantic's set[SomeEnum]), each used at most once (the recognizer keeps which: sl_json_fork.used);
 * items that could repeat another way (strings, numbers, objects) are refused. */
static int unique_items(cctx *c, int id, const char *path) {
    sl_json_schema *s = c->s;
    node *nd = &s->nodes[id];
    int item = nd->sub;
    while (s->nodes[item].kind == K_UNION && s->nodes[item].n == 1 && !s->nodes[item].pending) /* (a $ref) */
        item = s->alts[s->nodes[item].a];
    const node *it = &s->nodes[item];
    if (nd->n > 0 || it->kind != K_LITERALS || it->pending)
        return fail_at(c, path, "'uniqueItems' is supported for items that are enum, const, boolean or null values "
                                "(no prefixItems)");
    for (int a = 0; a < it->n; a++) /* 1 and 1.0 are one value twice */
        for (int b = a + 1; b < it->n; b++) {
            const lit *la = &s->lits[it->a + a], *lb = &s->lits[it->a + b];
            json_t *va = json_loadb(s->bytes + la->text, la->len, JSON_DECODE_ANY, NULL),
                   *vb = json_loadb(s->bytes + lb->text, lb->len, JSON_DECODE_ANY, NULL);
            const bool eq = va && vb && values_equal(va, vb);
            json_decref(va);
            json_decref(vb);
            if (eq) return fail_at(c, path, "'uniqueItems': two of the items' values are equal (as 1 and 1.0)");
        }
    if (nd->lo > it->n) return fail_nothing(c, path, "'minItems' asks for more distinct items than there are values");
    if (nd->hi > it->n) nd->hi = it->n;
    nd->unique = true;
    return id;
}

static int compile_type(cctx *c, const json_t *j, const char *type, const char *path, int depth) {
    sl_json_schema *s = c->s;
    char sub[192];
    if (!strcmp(type, "object")) return compile_object(c, j, path, depth);
    if (!strcmp(type, "array")) {
        /* prefixItems (a tuple's items), then items for the rest (or, as older drafts write a tuple, items as
         * an array and additionalItems for the rest) */
        const json_t *pre = json_object_get(j, "prefixItems"), *it = json_object_get(j, "items");
        const char *pre_key = "prefixItems", *it_key = "items";
        if (json_is_array(it)) pre = it, pre_key = "items", it = json_object_get(j, "additionalItems"), it_key = "additionalItems";
        if (pre && (!json_is_array(pre) || json_array_size(pre) > 64)) {
            snprintf(sub, sizeof sub, "'%s' must be an array of at most 64 schemas", pre_key);
            return fail_at(c, path, sub);
        }
        int first[64], nf = 0, items = NODE_ANY;
        size_t i;
        const json_t *e;
        json_array_foreach(pre, i, e) {
            snprintf(sub, sizeof sub, "%s%s%s[%zu]", path, *path ? "." : "", pre_key, i);
            if ((first[nf++] = compile(c, e, sub, depth + 1)) < 0) return -1;
        }
        if (it && !json_is_boolean(it)) {
            snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", it_key);
            if ((items = compile(c, it, sub, depth + 1)) < 0) return -1;
        }
        const int id = new_node(s, K_ARRAY);
        if (id < 0 || !grow_to((void **)&s->alts, &s->cap_alts, s->n_alts + nf, sizeof(uint16_t)))
            return fail_at(c, path, "the schema is too large");
        s->nodes[id].sub = (uint16_t)items;
        s->nodes[id].a = (uint16_t)s->n_alts;
        s->nodes[id].n = (uint16_t)nf;
        for (int k = 0; k < nf; k++) s->alts[s->n_alts++] = (uint16_t)first[k];
        if (limits(c, j, id, "minItems", "maxItems", path) < 0) return -1;
        if (json_is_false(it)) { /* no items past the tuple's */
            node *nd = &s->nodes[id];
            if (nd->hi > nf) nd->hi = (uint16_t)nf;
            if (nd->lo > nd->hi) return fail_at(c, path, "'minItems' is above the items the schema allows");
        }
        const json_t *uq = json_object_get(j, "uniqueItems");
        if (uq && !json_is_boolean(uq)) return fail_at(c, path, "'uniqueItems' must be true or false");
        return json_is_true(uq) ? unique_items(c, id, path) : id;
    }
    if (!strcmp(type, "string")) {
        const int id = new_node(s, K_STRING);
        if (id < 0) return fail_at(c, path, "the schema is too large");
        return limits(c, j, id, "minLength", "maxLength", path) < 0 ? -1 : string_dfa(c, j, id, path);
    }
    if (!strcmp(type, "number") || !strcmp(type, "integer")) {
        const int id = new_node(s, type[0] == 'n' ? K_NUMBER : K_INTEGER);
        return id < 0 ? fail_at(c, path, "the schema is too large") : number_bounds(c, j, id, path);
    }
    if (!strcmp(type, "boolean") || !strcmp(type, "null")) {
        const int id = new_node(s, K_LITERALS);
        if (id < 0) return fail_at(c, path, "the schema is too large");
        s->nodes[id].a = (uint16_t)s->n_lits;
        bool ok = type[0] == 'b' ? add_lit(s, json_true()) && add_lit(s, json_false()) : add_lit(s, json_null());
        s->nodes[id].n = type[0] == 'b' ? 2 : 1;
        return ok ? id : fail_at(c, path, "out of memory");
    }
    snprintf(sub, sizeof sub, "'type' '%.40s' is not a JSON Schema type", type);
    return fail_at(c, path, sub);
}

/* A union of alternatives (anyOf / oneOf / a list of types). Those that may begin with the same byte are
 * followed together (at most SL_JSON_MAX_FORKS of them). */
static int make_union(cctx *c, const int *alts, int n, const char *path) {
    sl_json_schema *s = c->s;
    for (int i = 0; i < n; i++)
        if (s->nodes[alts[i]].pending) return fail_at(c, path, "an alternative refers back to its own union");
    const int id = new_node(s, K_UNION);
    if (id < 0 || !grow_to((void **)&s->alts, &s->cap_alts, s->n_alts + n, sizeof(uint16_t)))
        return fail_at(c, path, "the schema is too large");
    s->nodes[id].a = (uint16_t)s->n_alts;
    s->nodes[id].n = (uint16_t)n;
    for (int i = 0; i < n; i++) s->alts[s->n_alts++] = (uint16_t)alts[i];
    for (int b = 0; b < 256; b++)
        if (union_leaves(s, id, (uint8_t)b, NULL, 0, 0) > SL_JSON_MAX_FORKS)
            return fail_at(c, path, "more than 8 alternatives may begin alike");
    return id;
}

/* Do all of node id's alternatives (through unions) write objects? */
static bool all_objects(const sl_json_schema *s, int id, int depth) {
    const node *nd = &s->nodes[id];
    if (nd->kind == K_OBJECT) return true;
    if (nd->kind != K_UNION || depth > 64) return false;
    for (int i = 0; i < nd->n; i++)
        if (!all_objects(s, s->alts[nd->a + i], depth + 1)) return false;
    return true;
}

/* ---- allOf: its schemas merged into one ---------------------------------------------- */

static const char *const annotations[] = {"$defs", "definitions", "title", "description", "default",
                                          "examples", "$schema", "$id", "$comment"};

static bool is_annotation(const char *k) {
    for (size_t i = 0; i < sizeof annotations / sizeof annotations[0]; i++)
        if (!strcmp(k, annotations[i])) return true;
    return false;
}

/* Has schema j a keyword other than the annotations, ex1 and ex2? */
static bool constrains_beside(const json_t *j, const char *ex1, const char *ex2) {
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)j, k, v) if (strcmp(k, ex1) && strcmp(k, ex2) && !is_annotation(k)) return true;
    return false;
}

/* A merged schema stays alive until the compile ends ($ref strings in it are kept by pointer). */
static json_t *keep(cctx *c, json_t *j) {
    if (j && json_array_append_new(c->keep, j)) return NULL;
    return j;
}

static bool refuse(cctx *c, const char *path, const char *what) {
    fail_at(c, path, what);
    return false;
}

static bool refuse_nothing(cctx *c, const char *path, const char *what) {
    fail_nothing(c, path, what);
    return false;
}

static json_t *merge2(cctx *c, json_t *a, json_t *b, const char *path);

/* Schema j with its own $ref and allOf merged in: a new object of the other keywords (NULL: c->err says why). */
static json_t *normalize(cctx *c, const json_t *j, const char *path, int depth) {
    if (depth > 64 || ++c->merged > MAX_MERGED || (!json_is_true(j) && !json_is_object(j))) {
        refuse(c, path, depth > 64                ? "the schema nests too deeply"
                        : c->merged > MAX_MERGED ? "'allOf' and '$ref' unfold into more than 1024 schemas"
                                                 : "a schema must be an object (or true)");
        return NULL;
    }
    if (json_is_true(j)) return json_object();
    json_t *x = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)j, k, v) if (strcmp(k, "$ref") && strcmp(k, "allOf")) json_object_set(x, k, v);
    const json_t *ref = json_object_get(j, "$ref"), *all = json_object_get(j, "allOf");
    if (ref) {
        const json_t *t = json_is_string(ref) ? ref_target(c, json_string_value(ref)) : NULL;
        if (!t) {
            json_decref(x);
            refuse(c, path, json_is_string(ref) ? "'$ref' must name a schema in #/$defs or #/definitions of this schema"
                                                : "'$ref' must be a string");
            return NULL;
        }
        json_t *tn = normalize(c, t, json_string_value(ref) + 1, depth + 1);
        x = tn ? merge2(c, tn, x, path) : (json_decref(x), NULL);
    }
    if (all && x && (!json_is_array(all) || json_array_size(all) == 0 || json_array_size(all) > 16)) {
        json_decref(x);
        refuse(c, path, "'allOf' must be an array of 1 to 16 schemas");
        return NULL;
    }
    size_t i;
    const json_t *e;
    json_array_foreach(all, i, e) {
        if (!x) break;
        char sub[192];
        snprintf(sub, sizeof sub, "%s%sallOf[%zu]", path, *path ? "." : "", i);
        json_t *en = normalize(c, e, sub, depth + 1);
        x = en ? merge2(c, x, en, path) : (json_decref(x), NULL);
    }
    return x;
}

/* A schema that holds when both do: {"allOf": [a, b]}, or the one where the other is true. */
static json_t *both(json_t *a, json_t *b) {
    if (json_equal(a, b)) return json_incref(a);
    if (json_is_true(a) || (json_is_object(a) && json_object_size(a) == 0)) return json_incref(b);
    if (json_is_true(b) || (json_is_object(b) && json_object_size(b) == 0)) return json_incref(a);
    if (json_is_false(a) || json_is_false(b)) return json_false();
    return json_pack("{s:[O,O]}", "allOf", a, b);
}

enum { T_OBJECT = 1, T_ARRAY = 2, T_STRING = 4, T_NUMBER = 8, T_INTEGER = 16, T_BOOLEAN = 32, T_NULL = 64 };
static const char *const type_names[] = {"object", "array", "string", "number", "integer", "boolean", "null"};

/* The types a "type" keyword allows (a number an integer too); -1 for a name that is none. */
static int type_set(const json_t *t) {
    int m = 0;
    const size_t n = json_is_string(t) ? 1 : json_array_size(t);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_is_string(t) ? t : json_array_get(t, i);
        int k = 0;
        while (k < 7 && !(json_is_string(e) && !strcmp(json_string_value(e), type_names[k]))) k++;
        m = k < 7 && m >= 0 ? m | 1 << k | (k == 3 ? T_INTEGER : 0) : -1;
    }
    return m;
}

/* Is value v of one of the types (type_set)? */
static bool has_type(const json_t *v, int types) {
    if (json_is_integer(v) || (json_is_real(v) && json_real_value(v) == floor(json_real_value(v))))
        return types & (T_INTEGER | T_NUMBER);
    const int k = json_is_object(v) ? T_OBJECT : json_is_array(v) ? T_ARRAY : json_is_string(v) ? T_STRING
                : json_is_real(v) ? T_NUMBER : json_is_boolean(v) ? T_BOOLEAN : T_NULL;
    return types & k;
}

/* Equal as JSON values: numbers by value (1 and 1.0 alike), the rest as jansson compares them. */
static bool values_equal(const json_t *a, const json_t *b) {
    if (json_is_number(a) && json_is_number(b)) return json_number_value(a) == json_number_value(b);
    return json_equal((json_t *)a, (json_t *)b);
}

/* The values of an enum or const (a new array), or NULL where the schema has neither. */
static json_t *values_of(const json_t *s) {
    const json_t *en = json_object_get(s, "enum"), *cn = json_object_get(s, "const");
    if (cn) return json_pack("[O]", cn);
    return json_is_array(en) ? json_copy((json_t *)en) : NULL;
}

/* What both schemas say of one property or tuple place: each its own schema there (own[s]), or else its schema
 * for the rest (rest[s]; NULL: none). *refused when one of them is false. */
static json_t *held_by_both(const json_t *const own[2], const json_t *const rest[2], bool *refused) {
    json_t *got = json_true();
    *refused = false;
    for (int s = 0; s < 2; s++) {
        const json_t *x = own[s] ? own[s] : rest[s];
        *refused |= json_is_false(x);
        if (!x || json_is_false(x)) continue;
        json_t *n = both(got, (json_t *)x);
        json_decref(got);
        got = n;
    }
    return got;
}

/* Objects: each name declared by either schema takes what each says of it (its own schema, or the other's
 * additionalProperties); one that a schema's additionalProperties false refuses is left out. */
static bool merge_properties(cctx *c, const json_t *a, const json_t *b, json_t *r, const char *path) {
    const json_t *pa = json_object_get(a, "properties"), *pb = json_object_get(b, "properties");
    if ((pa && !json_is_object(pa)) || (pb && !json_is_object(pb))) return refuse(c, path, "'properties' must be an object");
    json_t *props = json_object(), *names = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)pa, k, v) json_object_set(names, k, json_true());
    json_object_foreach((json_t *)pb, k, v) json_object_set(names, k, json_true());
    const json_t *req = json_object_get(r, "required");
    const json_t *const rest[2] = {json_object_get(a, "additionalProperties"), json_object_get(b, "additionalProperties")};
    json_object_foreach(names, k, v) {
        const json_t *const own[2] = {json_object_get(pa, k), json_object_get(pb, k)};
        bool refused;
        json_t *got = held_by_both(own, rest, &refused);
        size_t i;
        const json_t *e;
        bool required = false;
        json_array_foreach(req, i, e) required |= json_is_string(e) && !strcmp(json_string_value(e), k);
        if (refused && required) {
            char msg[160];
            snprintf(msg, sizeof msg, "'allOf': property '%.40s' is required by one schema and not allowed by another", k);
            json_decref(got);
            json_decref(props);
            json_decref(names);
            return refuse_nothing(c, path, msg);
        }
        if (!refused) json_object_set(props, k, got);
        json_decref(got);
    }
    json_decref(names);
    json_object_set(r, "properties", props); /* (other keys: merge2) */
    json_decref(props);
    return true;
}

/* Arrays: each place of either tuple (prefixItems) takes what each says of it (its own schema, or the other's
 * items for the rest), and the rest both items. */
static bool merge_items(cctx *c, const json_t *a, const json_t *b, json_t *r, const char *path) {
    const json_t *side[2] = {a, b};
    size_t n = 0;
    for (int s = 0; s < 2; s++) {
        const json_t *pre = json_object_get(side[s], "prefixItems"), *it = json_object_get(side[s], "items");
        if (json_is_array(it) || json_object_get(side[s], "additionalItems"))
            return refuse(c, path, "'allOf': tuples written as 'items' arrays are not merged (write 'prefixItems')");
        if (pre && !json_is_array(pre)) return refuse(c, path, "'prefixItems' must be an array of at most 64 schemas");
        if (json_array_size(pre) > n) n = json_array_size(pre);
    }
    json_t *pre = json_array();
    const json_t *const rest[2] = {json_object_get(a, "items"), json_object_get(b, "items")};
    for (size_t i = 0; i < n; i++) {
        const json_t *const own[2] = {json_array_get(json_object_get(a, "prefixItems"), i),
                                      json_array_get(json_object_get(b, "prefixItems"), i)};
        bool refused;
        json_t *got = held_by_both(own, rest, &refused);
        if (refused) { /* no item from here on */
            const json_t *hi = json_object_get(r, "maxItems");
            if (!json_is_integer(hi) || json_integer_value(hi) > (json_int_t)i) json_object_set_new(r, "maxItems", json_integer((json_int_t)i));
            json_decref(got);
            break;
        }
        json_array_append_new(pre, got);
    }
    if (json_array_size(pre)) json_object_set(r, "prefixItems", pre);
    else json_object_del(r, "prefixItems");
    json_decref(pre);
    if (rest[0] && rest[1]) json_object_set_new(r, "items", both((json_t *)rest[0], (json_t *)rest[1]));
    return true;
}

/* Two normalized schemas merged (both are taken; NULL: c->err says why). */
/* patternProperties (one pattern, as compile_object takes them): a key of the pattern holds to what each schema
 * says of it — its patternProperties schema there, or else its additionalProperties (a schema that declares
 * properties: refused, as compile_object refuses them beside a pattern). */
static bool merge_pattern_properties(cctx *c, const json_t *a, const json_t *b, json_t *r, const char *path) {
    const json_t *ppa = json_object_get(a, "patternProperties"), *ppb = json_object_get(b, "patternProperties");
    if ((ppa && (!json_is_object(ppa) || json_object_size(ppa) != 1)) || (ppb && (!json_is_object(ppb) || json_object_size(ppb) != 1)))
        return refuse(c, path, "'patternProperties' is supported with one pattern");
    const char *ka = ppa ? json_object_iter_key(json_object_iter((json_t *)ppa)) : NULL,
               *kb = ppb ? json_object_iter_key(json_object_iter((json_t *)ppb)) : NULL;
    if (ka && kb && strcmp(ka, kb)) return refuse(c, path, "'allOf': its schemas give 'patternProperties' different patterns");
    if (json_object_size(json_object_get(a, "properties")) > 0 || json_object_size(json_object_get(b, "properties")) > 0)
        return refuse(c, path, "'patternProperties' beside 'properties', 'required' or 'propertyNames' is not supported");
    const json_t *const own[2] = {ppa ? json_object_get(ppa, ka) : NULL, ppb ? json_object_get(ppb, kb) : NULL};
    const json_t *const rest[2] = {json_object_get(a, "additionalProperties"), json_object_get(b, "additionalProperties")};
    bool refused;
    json_t *got = held_by_both(own, rest, &refused);
    json_object_set_new(r, "patternProperties", json_pack("{s:o}", ka ? ka : kb, refused ? json_false() : got));
    if (refused) json_decref(got);
    return true;
}

static json_t *merge2(cctx *c, json_t *a, json_t *b, const char *path) {
    json_t *r = json_copy(a);
    const char *k;
    json_t *vb;
    bool ok = r != NULL;
    char msg[160];
    json_object_foreach(b, k, vb) {
        json_t *va = json_object_get(a, k);
        if (!ok) break;
        if (!va || is_annotation(k)) {
            if (!va) json_object_set(r, k, vb);
            continue;
        }
        if (json_equal(va, vb)) continue;
        const bool lower = !strcmp(k, "minimum") || !strcmp(k, "exclusiveMinimum") || !strcmp(k, "minLength") ||
                           !strcmp(k, "minItems") || !strcmp(k, "minProperties");
        const bool upper = !strcmp(k, "maximum") || !strcmp(k, "exclusiveMaximum") || !strcmp(k, "maxLength") ||
                           !strcmp(k, "maxItems") || !strcmp(k, "maxProperties");
        if (lower || upper) { /* the stricter bound */
            if (!json_is_number(va) || !json_is_number(vb)) {
                snprintf(msg, sizeof msg, "'%.40s' must be a number", k);
                ok = refuse(c, path, msg);
            } else if ((json_number_value(vb) > json_number_value(va)) == lower) {
                json_object_set(r, k, vb);
            }
        } else if (!strcmp(k, "type")) {
            const int m = type_set(va) < 0 || type_set(vb) < 0 ? -1 : type_set(va) & type_set(vb);
            if (m <= 0) {
                ok = m < 0 ? refuse(c, path, "'type' must be a type name or a list of them")
                           : refuse_nothing(c, path, "'allOf': no type is allowed by all of its schemas");
                break;
            }
            json_t *t = json_array();
            for (int i = 0; i < 7; i++)
                if (m & 1 << i && !(i == 4 && (m & T_NUMBER))) json_array_append_new(t, json_string(type_names[i]));
            json_object_set_new(r, k, json_array_size(t) == 1 ? json_incref(json_array_get(t, 0)) : json_incref(t));
            json_decref(t);
        } else if (!strcmp(k, "required")) {
            if (!json_is_array(va) || !json_is_array(vb)) {
                ok = refuse(c, path, "'required' must be an array of names");
                break;
            }
            json_t *u = json_copy(va);
            size_t i, j2;
            json_t *e, *f;
            json_array_foreach(vb, i, e) {
                bool seen = false;
                json_array_foreach(va, j2, f) seen |= json_equal(e, f);
                if (!seen) json_array_append(u, e);
            }
            json_object_set_new(r, k, u);
        } else if (!strcmp(k, "additionalProperties")) {
            json_object_set_new(r, k, both(va, vb));
        } else if (!strcmp(k, "anyOf") || !strcmp(k, "oneOf") || !strcmp(k, "properties") || !strcmp(k, "patternProperties") || !strcmp(k, "enum") ||
                   !strcmp(k, "const") || !strcmp(k, "items") || !strcmp(k, "prefixItems")) {
            /* below */
        } else {
            snprintf(msg, sizeof msg, "'allOf': its schemas give '%.40s' different values", k);
            ok = refuse(c, path, msg);
        }
    }
    /* enum and const: the values in both */
    json_t *ea = ok ? values_of(a) : NULL, *eb = ok ? values_of(b) : NULL;
    if (ea && eb) {
        json_t *in = json_array();
        size_t i, j2;
        json_t *e, *f;
        json_array_foreach(ea, i, e) {
            bool found = false;
            json_array_foreach(eb, j2, f) found |= values_equal(e, f);
            if (found) json_array_append(in, e);
        }
        json_object_del(r, "const");
        json_object_set_new(r, "enum", in);
        if (!json_array_size(in)) ok = refuse_nothing(c, path, "'allOf': no value is allowed by all of its schemas");
    }
    json_decref(ea);
    json_decref(eb);
    /* alternatives on both sides: one for each pair (at most 16) */
    const json_t *la = json_object_get(a, "anyOf"), *lb = json_object_get(b, "anyOf");
    if (!la) la = json_object_get(a, "oneOf");
    if (!lb) lb = json_object_get(b, "oneOf");
    if (ok && la && lb) {
        if (!json_is_array(la) || !json_is_array(lb) || json_array_size(la) * json_array_size(lb) > 16) {
            ok = refuse(c, path, "'allOf': alternatives on both sides make more than 16");
        } else {
            json_t *pairs = json_array();
            size_t i, j2;
            json_t *e, *f;
            json_array_foreach(la, i, e) json_array_foreach(lb, j2, f) json_array_append_new(pairs, both(e, f));
            json_object_del(r, "oneOf");
            json_object_set_new(r, "anyOf", pairs);
        }
    }
    if (ok && (json_object_get(a, "prefixItems") || json_object_get(b, "prefixItems") ||
               (json_object_get(a, "items") && json_object_get(b, "items"))))
        ok = merge_items(c, a, b, r, path);
    if (ok && (json_object_get(a, "properties") || json_object_get(b, "properties")))
        ok = merge_properties(c, a, b, r, path);
    if (ok && (json_object_get(a, "patternProperties") || json_object_get(b, "patternProperties")))
        ok = merge_pattern_properties(c, a, b, r, path);
    json_decref(a);
    json_decref(b);
    if (!ok) json_decref(r);
    return ok ? r : NULL;
}

/* Does enum value v meet the keywords beside it in schema j (type, a number's bounds, a string's length)? */
static bool value_fits(const json_t *v, const json_t *j, int types) {
    if (!has_type(v, types)) return false;
    if (json_is_number(v)) {
        const double x = json_number_value(v);
        const json_t *b;
        if ((b = json_object_get(j, "minimum")) && !(x >= json_number_value(b))) return false;
        if ((b = json_object_get(j, "exclusiveMinimum")) && !(x > json_number_value(b))) return false;
        if ((b = json_object_get(j, "maximum")) && !(x <= json_number_value(b))) return false;
        if ((b = json_object_get(j, "exclusiveMaximum")) && !(x < json_number_value(b))) return false;
        u128 step, u;
        bool neg;
        if ((b = json_object_get(j, "multipleOf")) &&
            (multiple_step(b, false, &step) || !exact_dec(v, &neg, &u) || u % step != 0))
            return false;
    }
    if (json_is_string(v)) {
        long long chars = 0; /* characters: the bytes that begin one */
        for (size_t i = 0; i < json_string_length(v); i++) chars += ((uint8_t)json_string_value(v)[i] & 0xC0) != 0x80;
        const json_t *lo = json_object_get(j, "minLength"), *hi = json_object_get(j, "maxLength");
        if ((lo && chars < json_integer_value(lo)) || (hi && chars > json_integer_value(hi))) return false;
    }
    return true;
}

/* enum / const: the values that meet the keywords beside them. A keyword they are not checked against
 * (a pattern beside string values, properties beside objects, ...) is refused. */
static int compile_literals(cctx *c, const json_t *j, const char *path) {
    sl_json_schema *s = c->s;
    const json_t *en = json_object_get(j, "enum"), *cn = json_object_get(j, "const");
    if (en && (!json_is_array(en) || json_array_size(en) == 0 || json_array_size(en) > MAX_LITS))
        return fail_at(c, path, "'enum' must be an array of 1 to 64 values");
    json_t *vals = values_of(j);
    int kinds = 0;
    size_t i;
    const json_t *e;
    json_array_foreach(vals, i, e) kinds |= json_is_object(e) ? T_OBJECT : json_is_array(e) ? T_ARRAY : json_is_string(e) ? T_STRING : 0;
    static const struct {
        const char *key;
        int kind;
    } unchecked[] = {{"pattern", T_STRING},           {"format", T_STRING},         {"properties", T_OBJECT},
                     {"required", T_OBJECT},          {"additionalProperties", T_OBJECT}, {"minProperties", T_OBJECT},
                     {"maxProperties", T_OBJECT},     {"propertyNames", T_OBJECT},  {"patternProperties", T_OBJECT},
                     {"items", T_ARRAY},              {"prefixItems", T_ARRAY},
                     {"additionalItems", T_ARRAY},    {"minItems", T_ARRAY},        {"maxItems", T_ARRAY}};
    for (size_t k = 0; k < sizeof unchecked / sizeof unchecked[0]; k++)
        if ((kinds & unchecked[k].kind) && json_object_get(j, unchecked[k].key)) {
            json_decref(vals);
            char msg[96];
            snprintf(msg, sizeof msg, "'%s' beside 'enum' or 'const' is not supported", unchecked[k].key);
            return fail_at(c, path, msg);
        }
    const json_t *t = json_object_get(j, "type");
    const int types = t ? type_set(t) : 0x7F;
    const int id = types < 0 ? -1 : new_node(s, K_LITERALS);
    if (id < 0) {
        json_decref(vals);
        return fail_at(c, path, types < 0 ? "'type' must be a type name or a list of them" : "the schema is too large");
    }
    s->nodes[id].a = (uint16_t)s->n_lits;
    json_array_foreach(vals, i, e) {
        if (value_fits(e, j, types) && !add_lit(s, e)) {
            json_decref(vals);
            return fail_at(c, path, cn ? "'const' is longer than 255 bytes as JSON" : "an 'enum' value is longer than 255 bytes as JSON");
        }
    }
    json_decref(vals);
    s->nodes[id].n = (uint16_t)(s->n_lits - s->nodes[id].a);
    if (s->nodes[id].n == 0)
        return fail_nothing(c, path, cn ? "'const' does not meet the keywords beside it" : "no value of 'enum' meets the keywords beside it");
    /* two values where one's text begins the other's (1 and 12) are fine; the same value twice is not */
    for (int a = 0; a < s->nodes[id].n; a++)
        for (int b = a + 1; b < s->nodes[id].n; b++) {
            const lit *la = &s->lits[s->nodes[id].a + a], *lb = &s->lits[s->nodes[id].a + b];
            if (la->len == lb->len && !memcmp(s->bytes + la->text, s->bytes + lb->text, la->len))
                return fail_at(c, path, "'enum' lists a value twice");
        }
    return id;
}

/* A schema that allows no value: false, or {"not": {}} (zod's never; annotations aside). */
static bool is_never(const json_t *j) {
    if (json_is_false(j)) return true;
    const json_t *n = json_is_object(j) ? json_object_get(j, "not") : NULL;
    return n && (json_is_true(n) || (json_is_object(n) && !constrains_beside(n, "", ""))) && !constrains_beside(j, "not", "not");
}

/* Schema j with its never-schemas where JSON Schema's false has a meaning here written as false
 * (additionalProperties, items, additionalItems) and properties that allow no value left out (a required one:
 * the object allows none). j itself, a copy kept until the compile ends, or NULL (c->err says why). */
static const json_t *never_as_false(cctx *c, const json_t *j, const char *path) {
    static const char *const as_false[] = {"additionalProperties", "items", "additionalItems"};
    const json_t *props = json_object_get(j, "properties"), *req = json_object_get(j, "required");
    bool any = false;
    for (size_t i = 0; i < 3; i++) {
        const json_t *v = json_object_get(j, as_false[i]);
        any |= v && !json_is_false(v) && is_never(v);
    }
    const char *k;
    const json_t *v;
    if (json_is_object(props)) json_object_foreach((json_t *)props, k, v) any |= is_never(v);
    if (!any) return j;
    json_t *r = keep(c, json_copy((json_t *)j));
    if (!r) return fail_at(c, path, "out of memory"), NULL;
    for (size_t i = 0; i < 3; i++)
        if (is_never(json_object_get(r, as_false[i]))) json_object_set_new(r, as_false[i], json_false());
    if (json_is_object(props)) {
        json_t *np = json_copy((json_t *)props);
        json_object_foreach((json_t *)props, k, v) {
            if (!is_never(v)) continue;
            size_t i;
            const json_t *e;
            json_array_foreach(req, i, e) if (json_is_string(e) && !strcmp(json_string_value(e), k)) {
                char msg[128];
                snprintf(msg, sizeof msg, "'required' names '%.40s', whose schema allows no value", k);
                json_decref(np);
                return fail_nothing(c, path, msg), NULL;
            }
            json_object_del(np, k);
        }
        json_object_set_new(r, "properties", np);
    }
    return r;
}

static int compile(cctx *c, const json_t *j, const char *path, int depth) {
    if (depth > 64) return fail_at(c, path, "the schema nests too deeply");
    if (json_is_true(j)) return NODE_ANY;
    if (is_never(j)) return fail_nothing(c, path, "the schema allows no value (false, or not: {})");
    if (!json_is_object(j)) return fail_at(c, path, "a schema must be an object (or true or false)");
    if (json_object_get(j, "not")) return fail_at(c, path, "'not' is supported only as not: {} (a schema that allows no value)");
    if (!(j = never_as_false(c, j, path))) return -1;
    const json_t *nullable = json_object_get(j, "nullable");
    if (nullable) { /* OpenAPI 3.0's (Gemini's function schemas): true adds null to the type given beside it */
        if (!json_is_boolean(nullable)) return fail_at(c, path, "'nullable' must be true or false");
        json_t *r = keep(c, json_copy((json_t *)j)), *t = r ? json_object_get(r, "type") : NULL;
        if (!r) return fail_at(c, path, "out of memory");
        json_object_del(r, "nullable");
        if (json_is_true(nullable) && json_is_string(t) && strcmp(json_string_value(t), "null") != 0)
            json_object_set_new(r, "type", json_pack("[O,s]", t, "null"));
        else if (json_is_true(nullable) && json_is_array(t)) {
            json_t *ts = json_copy(t), *e;
            size_t i;
            bool has = false;
            json_array_foreach(ts, i, e) has |= json_is_string(e) && !strcmp(json_string_value(e), "null");
            if (!has) json_array_append_new(ts, json_string("null"));
            json_object_set_new(r, "type", ts);
        }
        j = r;
    }
    static const char *known[] = {"type", "properties", "required", "additionalProperties", "items", "prefixItems",
                                  "additionalItems", "minItems", "maxItems",
                                  "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
                                  "exclusiveMaximum", "multipleOf", "propertyNames", "patternProperties", "uniqueItems", "not", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "minProperties",
                                  "maxProperties", "$defs", "definitions", "title", "description", "default", "examples",
                                  "$schema", "$id", "$comment",
                                  /* annotations that constrain nothing: JSON Schema's, and OpenAPI's (Pydantic writes
                                   * discriminator beside a oneOf; extensions start with x-) */
                                  "deprecated", "readOnly", "writeOnly", "$anchor", "contentMediaType", "contentEncoding",
                                  "discriminator", "externalDocs", "xml"};
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)j, k, v) {
        bool ok = !strncmp(k, "x-", 2);
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) ok |= !strcmp(k, known[i]);
        if (!ok) {
            char msg[128];
            snprintf(msg, sizeof msg, "'%.40s' is not supported", k);
            return fail_at(c, path, msg);
        }
    }
    if (json_object_get(j, "anyOf") && json_object_get(j, "oneOf")) { /* both hold: as allOf [{anyOf}, {oneOf}] */
        json_t *r = keep(c, json_copy((json_t *)j)), *all = r ? json_object_get(r, "allOf") : NULL;
        if (!r || (all && !json_is_array(all))) return fail_at(c, path, r ? "'allOf' must be an array of 1 to 16 schemas" : "out of memory");
        if (!all) json_object_set_new(r, "allOf", all = json_array());
        json_array_append_new(all, json_pack("{s:O}", "anyOf", json_object_get(r, "anyOf")));
        json_array_append_new(all, json_pack("{s:O}", "oneOf", json_object_get(r, "oneOf")));
        json_object_del(r, "anyOf");
        json_object_del(r, "oneOf");
        j = r;
    }
    const json_t *all = json_object_get(j, "allOf"), *ref = json_object_get(j, "$ref");
    if (all && json_is_array(all) && json_array_size(all) == 1 && !constrains_beside(j, "allOf", "allOf")) {
        char sub[192]; /* one schema (as older Pydantic wraps a $ref to give it a description): itself */
        snprintf(sub, sizeof sub, "%s%sallOf[0]", path, *path ? "." : "");
        return compile(c, json_array_get(all, 0), sub, depth + 1);
    }
    if (all || (ref && constrains_beside(j, "$ref", "$ref"))) { /* schemas that all hold: merged into one */
        json_t *m = normalize(c, j, path, depth);
        if (m && !keep(c, m)) return fail_at(c, path, "out of memory");
        return m ? compile(c, m, path, depth + 1) : -1;
    }
    if (ref) {
        if (!json_is_string(ref)) return fail_at(c, path, "'$ref' must be a string");
        return compile_ref(c, json_string_value(ref), path, depth);
    }
    const json_t *any = json_object_get(j, "anyOf");
    if (!any) any = json_object_get(j, "oneOf");
    if (any) {
        if (!json_is_array(any) || json_array_size(any) == 0 || json_array_size(any) > 16)
            return fail_at(c, path, "'anyOf' / 'oneOf' must be an array of 1 to 16 schemas");
        /* keywords beside the alternatives hold for each: merged into it */
        json_t *rest = NULL;
        if (constrains_beside(j, "anyOf", "oneOf")) {
            rest = json_object();
            json_object_foreach((json_t *)j, k, v) if (strcmp(k, "anyOf") && strcmp(k, "oneOf")) json_object_set(rest, k, (json_t *)v);
        }
        int alts[16], n = 0;
        size_t i;
        const json_t *e;
        json_array_foreach(any, i, e) {
            char sub[192];
            snprintf(sub, sizeof sub, "%s%sanyOf[%zu]", path, *path ? "." : "", i);
            const json_t *alt = e;
            c->nothing = false;
            if (rest) {
                json_t *an = normalize(c, e, sub, depth + 1), *m = an ? merge2(c, json_incref(rest), an, sub) : NULL;
                if (m && !keep(c, m)) m = NULL, fail_at(c, sub, "out of memory");
                alt = m;
            }
            if (alt && (alts[n] = compile(c, alt, sub, depth + 1)) >= 0) n++;
            else if (!c->nothing) break; /* (an alternative that allows nothing is left out) */
        }
        json_decref(rest);
        if (n < (int)json_array_size(any) && !c->nothing) return -1;
        if (n == 0) return fail_nothing(c, path, "no alternative of 'anyOf' / 'oneOf' allows a value");
        c->nothing = false;
        return n == 1 ? alts[0] : make_union(c, alts, n, path);
    }
    if (json_object_get(j, "enum") || json_object_get(j, "const")) return compile_literals(c, j, path);
    const json_t *t = json_object_get(j, "type");
    if (json_is_string(t)) return compile_type(c, j, json_string_value(t), path, depth);
    if (json_is_array(t)) {
        if (json_array_size(t) == 0 || json_array_size(t) > 7) return fail_at(c, path, "'type' must list 1 to 7 types");
        bool has_number = false;
        size_t i;
        const json_t *e;
        json_array_foreach(t, i, e) has_number |= json_is_string(e) && !strcmp(json_string_value(e), "number");
        int alts[7], n = 0;
        json_array_foreach(t, i, e) {
            if (!json_is_string(e)) return fail_at(c, path, "'type' must list type names");
            if (has_number && !strcmp(json_string_value(e), "integer")) continue; /* a number covers it */
            if ((alts[n++] = compile_type(c, j, json_string_value(e), path, depth)) < 0) return -1;
        }
        return n == 1 ? alts[0] : make_union(c, alts, n, path);
    }
    if (t) return fail_at(c, path, "'type' must be a type name or a list of them");
    if (json_object_get(j, "properties") || json_object_get(j, "additionalProperties") || json_object_get(j, "required") ||
        json_object_get(j, "minProperties") || json_object_get(j, "maxProperties") || json_object_get(j, "propertyNames") ||
        json_object_get(j, "patternProperties"))
        return compile_type(c, j, "object", path, depth);
    if (json_object_get(j, "items") || json_object_get(j, "prefixItems") || json_object_get(j, "minItems") ||
        json_object_get(j, "maxItems") || json_object_get(j, "uniqueItems"))
        return compile_type(c, j, "array", path, depth);
    if (json_object_get(j, "minLength") || json_object_get(j, "maxLength") || json_object_get(j, "pattern") ||
        json_object_get(j, "format"))
        return compile_type(c, j, "string", path, depth);
    if (json_object_get(j, "minimum") || json_object_get(j, "maximum") || json_object_get(j, "exclusiveMinimum") ||
        json_object_get(j, "exclusiveMaximum") || json_object_get(j, "multipleOf"))
        return compile_type(c, j, "number", path, depth);
    return NODE_ANY;
}

static sl_json_schema *schema_new(void) {
    sl_json_schema *s = sl_calloc(1, sizeof *s);
    if (!s) return NULL;
    atomic_init(&s->refs, 1);
    /* the built-in nodes: any value, any object, any array, true/false/null */
    if (new_node(s, K_ANY) != NODE_ANY || new_node(s, K_OBJECT) != NODE_ANY_OBJECT ||
        new_node(s, K_ARRAY) != NODE_ANY_ARRAY || new_node(s, K_LITERALS) != NODE_ANY_LITERAL || !add_lit(s, json_true()) ||
        !add_lit(s, json_false()) || !add_lit(s, json_null())) {
        sl_json_schema_release(s);
        return NULL;
    }
    s->nodes[NODE_ANY_OBJECT].sub = NODE_ANY;
    s->nodes[NODE_ANY_ARRAY].sub = NODE_ANY;
    s->nodes[NODE_ANY_LITERAL].n = 3;
    return s;
}

sl_status sl_json_schema_compile(const json_t *schema, sl_json_schema **out) {
    *out = NULL;
    sl_json_schema *s = schema_new();
    if (!s) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    if (!schema) {
        s->root = NODE_ANY_OBJECT;
        *out = s;
        return SL_OK;
    }
    cctx c = {.s = s, .root = schema, .keep = json_array()};
    int root = c.keep ? compile(&c, schema, "", 0) : fail_at(&c, "", "out of memory");
    json_decref(c.keep);
    /* the root is an object, or objects to choose from (through $refs and unions) */
    int r = root;
    while (r >= 0 && s->nodes[r].kind == K_UNION && s->nodes[r].n == 1) r = s->alts[s->nodes[r].a];
    if (root >= 0 && !all_objects(s, r, 0)) root = fail_at(&c, "", "the schema's root must be an object");
    /* each union's alternatives by first byte, for the recognizer */
    if (root >= 0 && !(s->leaves = sl_calloc((size_t)s->n_nodes * 256, 1))) root = fail_at(&c, "", "out of memory");
    for (int id = 0; root >= 0 && id < s->n_nodes; id++)
        if (s->nodes[id].kind == K_UNION)
            for (int b = 0; b < 256; b++) s->leaves[(size_t)id * 256 + b] = (uint8_t)union_leaves(s, id, (uint8_t)b, NULL, 0, 0);
    if (root < 0) {
        sl_json_schema_release(s);
        return SL_FAIL(SL_ERR_INVALID, "%s", c.err);
    }
    s->root = (uint16_t)r;
    *out = s;
    return SL_OK;
}

sl_status sl_json_schema_compile_pattern(const char *re, size_t len, sl_json_schema **out) {
    *out = NULL;
    sl_json_schema *s = schema_new();
    if (!s) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    /* the whole output matches: ^(?:re)$ */
    char *full = sl_malloc(len + 8);
    if (!full) {
        sl_json_schema_release(s);
        return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    }
    memcpy(full, "^(?:", 4);
    memcpy(full + 4, re, len);
    memcpy(full + 4 + len, ")$", 2);
    cctx c = {.s = s};
    const int id = new_node(s, K_RAW);
    const int st = id < 0 ? -1 : add_dfa(&c, full, len + 6, "", "pattern");
    sl_free(full);
    if (id < 0 || st < 0) {
        sl_json_schema_release(s);
        if (id < 0) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
        /* the message with offsets in re itself, when re alone is what fails */
        sl_redfa d;
        char msg[256];
        snprintf(msg, sizeof msg, "%s", c.err);
        if (sl_redfa_compile(re, len, MAX_DFA_STATES, &d) != SL_OK) snprintf(msg, sizeof msg, "%s", sl_last_error());
        sl_redfa_free(&d);
        return SL_FAIL(SL_ERR_INVALID, "%s", msg);
    }
    s->nodes[id].dfa = (uint16_t)st;
    s->root = (uint16_t)id;
    *out = s;
    return SL_OK;
}

sl_json_schema *sl_json_schema_retain(sl_json_schema *s) {
    if (s) atomic_fetch_add(&s->refs, 1);
    return s;
}

void sl_json_schema_release(sl_json_schema *s) {
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1) return;
    sl_free(s->nodes);
    sl_free(s->props);
    sl_free(s->lits);
    sl_free(s->alts);
    sl_free(s->bytes);
    sl_free(s->dnext);
    sl_free(s->dacc);
    sl_free(s->dmin);
    sl_free(s->dmax);
    sl_free(s->dlast);
    sl_free(s->leaves);
    sl_free(s);
}

/* ---- the recognizer -------------------------------------------------------------- */

enum {
    M_ROOT,      /* leading whitespace, then the root object */
    M_OBJ_FIRST, /* after '{': a key or '}' */
    M_OBJ_KEY,   /* after ',' in an object: a key */
    M_COLON,     /* after a key: ':' */
    M_OBJ_NEXT,  /* after a member's value: ',' or '}' */
    M_ARR_FIRST, /* after '[': a value or ']' */
    M_ARR_NEXT,  /* after an element: ',' or ']' */
    M_VALUE,     /* a value of node vnode */
    M_STRING,    /* inside a string */
    M_ESC,       /* after '\' in a string */
    M_HEX,       /* in \uXXXX: sub = hex digits read */
    M_NUM,       /* in a number: sub = N_* */
    M_LIT,       /* in one of node snode's literals: cand, off */
    M_KEY,       /* in a declared key: cand, off */
    M_RAW,       /* a whole-output pattern (sl_json_schema_compile_pattern): its DFA's state in dfa */
    M_DONE,      /* the answer is complete: nothing more, but whitespace */
};

enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

/* sl_json_state.ws: 0 none yet; 1 + k: a newline and k spaces or tabs; WS_SPACE: one space */
#define WS_SPACE (SL_JSON_MAX_INDENT + 2)

static bool is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static bool is_hex(uint8_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

void sl_json_init(sl_json_state *st, const sl_json_schema *sc) {
    memset(st, 0, sizeof *st);
    st->n = 1;
    st->f[0].sc = sc;
    st->f[0].mode = M_ROOT;
    if (sc && sc->nodes[sc->root].kind == K_RAW) { /* (sc NULL: a request without a guide) */
        st->f[0].mode = M_RAW;
        st->f[0].snode = sc->root;
        st->f[0].dfa = sc->nodes[sc->root].dfa;
    }
}

/* A whole-output pattern's reading may end here: the bytes so far match, no character is cut. */
static bool raw_may_end(const sl_json_fork *f) { return f->mode == M_RAW && !f->u8need && f->sc->dacc[f->dfa]; }

bool sl_json_done(const sl_json_state *st) {
    for (int i = 0; i < st->n; i++) {
        const sl_json_fork *f = &st->f[i];
        if (f->mode == M_DONE || (raw_may_end(f) && f->sc->dlast[f->dfa])) return true;
    }
    return false;
}

bool sl_json_may_end(const sl_json_state *st) {
    for (int i = 0; i < st->n; i++)
        if (st->f[i].mode == M_DONE || raw_may_end(&st->f[i])) return true;
    return false;
}

static const node *top_node(const sl_json_fork *s) { return &s->sc->nodes[s->stack[s->depth - 1].node]; }

/* The node of array a's item k (0-based): a tuple's own, or the rest's. */
static uint16_t item_node(const sl_json_schema *sc, const node *a, int k) { return k < a->n ? sc->alts[a->a + k] : a->sub; }

static void after_value(sl_json_fork *s) {
    s->mode = s->depth == 0 ? M_DONE : top_node(s)->kind == K_OBJECT ? M_OBJ_NEXT : M_ARR_NEXT;
    /* what only the value needed is cleared, so readings that agree from here on compare equal */
    s->sub = s->key = s->off = 0;
    s->integer = s->neg = false;
    s->vnode = s->snode = s->slen = s->dfa = s->hexv = 0;
    s->cand = s->ival = s->fval = 0;
    s->idig = s->fdig = 0;
    s->u8need = s->u8lo = s->u8hi = s->surr = 0;
}

/* In a uniqueItems array, literal bits have ended an item: they are used (the items are its LITERALS node's). */
static void lit_done(sl_json_fork *s, uint64_t bits) {
    if (s->depth && top_node(s)->unique) s->used |= bits;
}

static bool push(sl_json_fork *s, uint16_t id) {
    if (s->depth >= SL_JSON_MAX_DEPTH) return false;
    if (s->sc->nodes[id].unique) s->used = 0; /* (its items are literals: no other unique array is open) */
    s->stack[s->depth++] = (sl_json_frame){.node = id};
    s->mode = s->sc->nodes[id].kind == K_OBJECT ? M_OBJ_FIRST : M_ARR_FIRST;
    return true;
}

/* Declared properties of the object on top that may come next: from idx to the first required one,
 * leaving the members' bounds reachable (enough properties after it for minProperties, no more
 * required ones after it than maxProperties allows). */
static uint64_t key_candidates(const sl_json_fork *s) {
    const node *o = top_node(s);
    const sl_json_frame *f = &s->stack[s->depth - 1];
    if (f->members >= o->hi) return 0;
    int req_after = 0;
    for (int j = f->idx; j < o->n; j++) req_after += s->sc->props[o->a + j].required;
    uint64_t m = 0;
    for (int j = f->idx; j < o->n; j++) {
        const bool r = s->sc->props[o->a + j].required;
        req_after -= r;
        /* (other keys, where they may come, can make up minProperties) */
        if ((o->extra || f->members + 1 + (o->n - j - 1) >= o->lo) && f->members + 1 + req_after <= o->hi) m |= 1ull << j;
        if (r) break;
    }
    return m;
}

/* May the object on top end here? (no required property left, minProperties reached) */
static bool object_may_end(const sl_json_fork *s) {
    const node *o = top_node(s);
    if (s->stack[s->depth - 1].members < o->lo) return false;
    for (int j = s->stack[s->depth - 1].idx; j < o->n; j++)
        if (s->sc->props[o->a + j].required) return false;
    return true;
}

/* May a key not declared come next in the object on top? (no declared property: up to maxProperties,
 * additionalProperties false making that 0; beside declared ones: room left for the required ones after) */
static bool other_key_may_come(const sl_json_fork *s) {
    const node *o = top_node(s);
    const sl_json_frame *f = &s->stack[s->depth - 1];
    if (o->n == 0) return f->members < o->hi;
    if (!o->extra) return false;
    int req_after = 0;
    for (int j = f->idx; j < o->n; j++) req_after += s->sc->props[o->a + j].required;
    return f->members + 1 + req_after <= o->hi;
}

static bool start_key(sl_json_fork *s) {
    const node *o = top_node(s);
    if (o->n == 0) { /* any keys, up to maxProperties (additionalProperties false: hi 0) */
        if (!other_key_may_come(s)) return false;
        s->stack[s->depth - 1].members++;
        s->mode = M_STRING;
        s->key = 1;
        s->vnode = o->sub;
        if (o->knode) { /* names as propertyNames says: read as a value string of that node */
            s->key = 3;
            s->snode = o->knode;
            s->slen = 0;
            s->dfa = s->sc->nodes[o->knode].dfa;
        }
        return true;
    }
    if (other_key_may_come(s)) { /* a declared key or another: which, its closing quote tells (feed, M_STRING) */
        s->mode = M_STRING;
        s->key = 2;
        s->cand = o->n == 64 ? ~0ull : (1ull << o->n) - 1; /* the declared names it still spells */
        s->off = 0;
        return true;
    }
    s->cand = key_candidates(s);
    if (!s->cand) return false;
    s->mode = M_KEY;
    s->off = 0;
    return true;
}

static bool start_string(sl_json_fork *s, uint16_t id) {
    s->mode = M_STRING;
    s->key = 0;
    s->snode = id;
    s->slen = 0;
    s->dfa = s->sc->nodes[id].kind == K_STRING ? s->sc->nodes[id].dfa : NO_DFA;
    return true;
}

/* The string's DFA takes byte c of the string's value (not a key's; nothing without a pattern), and a match
 * must still be able to end within the length limits (the character of c is counted in slen already). */
static bool dfa_step(sl_json_fork *s, uint8_t c) {
    if ((s->key && s->key != 3) || s->dfa == NO_DFA) return true;
    const sl_json_schema *sc = s->sc;
    const uint16_t t = sc->dnext[(size_t)s->dfa * 256 + c];
    if (t == SL_REDFA_DEAD) return false;
    const node *nd = &sc->nodes[s->snode];
    if (nd->hi != NO_LIMIT && s->slen + sc->dmin[t] > nd->hi) return false;
    if (sc->dmax[t] != SL_REDFA_UNBOUNDED && s->slen + sc->dmax[t] < nd->lo) return false;
    s->dfa = t;
    return true;
}

/* Code point cp (no surrogate) as UTF-8 into the DFA. */
static bool dfa_step_cp(sl_json_fork *s, uint32_t cp) {
    if (cp < 0x80) return dfa_step(s, (uint8_t)cp);
    if (cp < 0x800) return dfa_step(s, (uint8_t)(0xC0 | cp >> 6)) && dfa_step(s, (uint8_t)(0x80 | (cp & 0x3F)));
    return dfa_step(s, (uint8_t)(0xE0 | cp >> 12)) && dfa_step(s, (uint8_t)(0x80 | (cp >> 6 & 0x3F))) &&
           dfa_step(s, (uint8_t)(0x80 | (cp & 0x3F)));
}

/* A decimal's value as the double a JSON parser reads: ival.fval with k digits after the point. */
static double dec(uint64_t ival, uint64_t fval, int k) {
    char b[48];
    k %= MAX_NUM_DIGITS + 1; /* (never more) */
    if (k) snprintf(b, sizeof b, "%llu.%0*llu", (unsigned long long)ival, k, (unsigned long long)fval);
    else snprintf(b, sizeof b, "%llu", (unsigned long long)ival);
    return strtod(b, NULL);
}

/* Does a value between lo and hi (each end in or out) meet node nd's bounds? */
static bool meets(const node *nd, double lo, bool lo_in, double hi, bool hi_in) {
    if (nd->bounds & B_MIN) {
        if (nd->min > lo) lo = nd->min, lo_in = !(nd->bounds & B_MIN_EX);
        else if (nd->min == lo) lo_in = lo_in && !(nd->bounds & B_MIN_EX);
    }
    if (nd->bounds & B_MAX) {
        if (nd->max < hi) hi = nd->max, hi_in = !(nd->bounds & B_MAX_EX);
        else if (nd->max == hi) hi_in = hi_in && !(nd->bounds & B_MAX_EX);
    }
    return lo < hi || (lo == hi && lo_in && hi_in);
}

/* Magnitudes in [a, b), signed as the number being read. */
static bool meets_mag(const sl_json_fork *s, const node *nd, double a, double b) {
    return s->neg ? meets(nd, -b, false, -a, true) : meets(nd, a, true, b, false);
}

/* Can the number read so far (with bounds) still become one within them? Its completions are, by magnitude:
 * after '-', any; "0", [0, 1); digits D, [D, D + 1), [10 D, 10 D + 10), ... (an integer: the whole numbers
 * in those); D.F with k digits after the point, [D.F, D.F + 10^-k). */
static bool num_viable(const sl_json_fork *s, const node *nd) {
    if (s->idig == 0) return meets_mag(s, nd, 0, INFINITY);
    if (s->sub == N_DOT || s->sub == N_FRAC) {
        const double a = dec(s->ival, s->fval, s->fdig);
        uint64_t p10 = 1;
        for (int k = 0; k < s->fdig; k++) p10 *= 10;
        return meets_mag(s, nd, a, s->fval + 1 < p10 ? dec(s->ival, s->fval + 1, s->fdig) : dec(s->ival + 1, 0, 0));
    }
    if (s->ival == 0) return meets_mag(s, nd, 0, 1);
    for (int m = 0; s->idig + m <= MAX_NUM_DIGITS; m++) {
        char a[48], b[48];
        snprintf(a, sizeof a, "%llue%d", (unsigned long long)s->ival, m);
        snprintf(b, sizeof b, "%llue%d", (unsigned long long)s->ival + 1, m);
        if (meets_mag(s, nd, strtod(a, NULL), strtod(b, NULL))) return true;
    }
    return false;
}

/* Magnitude x (units of 10^-18) as the double a JSON parser reads, signed. */
static double units_value(u128 x, bool neg) {
    char b[48];
    snprintf(b, sizeof b, "%s%llu.%018llu", neg ? "-" : "", (unsigned long long)(x / E18), (unsigned long long)(x % E18));
    return strtod(b, NULL);
}

/* Is a multiple of nd->step with a magnitude in [a, b) (units of 10^-18), signed as neg says, within nd's
 * bounds? From the first multiple at or above a, or just below the bound on that side (a bound as the
 * nearest 10^-18, less 2 units for its rounding), a few multiples are tried against the bounds as a parser
 * reads them: those below the bound's true value come first, then the ones within, if any. */
static bool mult_within(const node *nd, bool neg, u128 a, u128 b) {
    const bool has_low = neg ? (nd->bounds & B_MAX) : (nd->bounds & B_MIN);
    const double low = has_low ? (neg ? -nd->max : nd->min) : 0; /* the least magnitude the bounds allow */
    if (low >= 1e19) return false;
    if (low > 0) {
        char t[64];
        snprintf(t, sizeof t, "%.18f", low);
        u128 l = 0;
        for (const char *q = t; *q; q++)
            if (is_digit((uint8_t)*q)) l = l * 10 + (u128)(*q - '0');
        l = l > 2 ? l - 2 : 0;
        if (l > a) a = l;
    }
    if (a >= b) return false;
    u128 x = (a + nd->step - 1) / nd->step * nd->step;
    if (!nd->bounds) return x < b && x < MAG_END;
    for (int k = 0; k < 8 && x < b && x < MAG_END; k++, x += nd->step) {
        const double v = units_value(x, neg);
        if (meets(nd, v, true, v, true)) return true;
    }
    return false;
}

/* The number read so far, with a multipleOf: can it still become a multiple within the bounds? Its
 * completions are, by magnitude: after '-', any; "0", [0, 1); digits D, [D 10^m, (D + 1) 10^m) for m more
 * digits; D.F with k digits after the point, [D.F, D.F + 10^-k). */
static bool num_viable_mult(const sl_json_fork *s, const node *nd) {
    if (s->idig == 0) return mult_within(nd, s->neg, 0, MAG_END);
    u128 p = 1;
    if (s->sub == N_DOT || s->sub == N_FRAC) {
        for (int k = s->fdig; k < 18; k++) p *= 10;
        const u128 a = (u128)s->ival * E18 + (u128)s->fval * p;
        return mult_within(nd, s->neg, a, a + p);
    }
    if (s->ival == 0) return mult_within(nd, s->neg, 0, E18);
    for (int m = 0; s->idig + m <= MAX_NUM_DIGITS; m++, p *= 10)
        if (mult_within(nd, s->neg, (u128)s->ival * p * E18, (u128)(s->ival + 1) * p * E18)) return true;
    return false;
}

/* Byte c, taken by number() in sub-state `before`, of a number with bounds or a multipleOf: its digits
 * counted, and the number still able to meet them. */
static bool num_digit(sl_json_fork *s, const node *nd, uint8_t before, uint8_t c) {
    if (c == 'e' || c == 'E') return false; /* no exponent with bounds */
    if (is_digit(c)) {
        if (before == N_DOT || before == N_FRAC) {
            if (s->fdig >= MAX_NUM_DIGITS) return false;
            s->fval = s->fval * 10 + (uint64_t)(c - '0');
            s->fdig++;
        } else {
            if (s->idig >= MAX_NUM_DIGITS) return false;
            s->ival = s->ival * 10 + (uint64_t)(c - '0');
            s->idig++;
        }
    }
    return nd->step ? num_viable_mult(s, nd) : num_viable(s, nd);
}

static bool start_number(sl_json_fork *s, uint16_t id, uint8_t c) {
    const node *nd = &s->sc->nodes[id];
    s->mode = M_NUM;
    s->integer = nd->kind == K_INTEGER;
    s->snode = id;
    if (c == '-') s->sub = N_MINUS;
    else if (c == '0') s->sub = N_ZERO;
    else if (c >= '1' && c <= '9') s->sub = N_INT;
    else return false;
    s->neg = c == '-';
    s->idig = c != '-';
    s->ival = c != '-' ? (uint64_t)(c - '0') : 0;
    s->fdig = 0;
    s->fval = 0;
    return nd->step ? num_viable_mult(s, nd) : !nd->bounds || num_viable(s, nd);
}

/* The first byte of a value of node id. */
static bool value_start(sl_json_fork *s, uint16_t id, uint8_t c) {
    const sl_json_schema *sc = s->sc;
    const node *nd = &sc->nodes[id];
    switch (nd->kind) {
    case K_ANY:
        if (c == '{') return push(s, NODE_ANY_OBJECT);
        if (c == '[') return push(s, NODE_ANY_ARRAY);
        if (c == '"') return start_string(s, NODE_ANY);
        if (c == 't' || c == 'f' || c == 'n') return value_start(s, NODE_ANY_LITERAL, c);
        return start_number(s, NODE_ANY, c);
    case K_OBJECT: return c == '{' && push(s, id);
    case K_ARRAY: return c == '[' && push(s, id);
    case K_STRING: return c == '"' && start_string(s, id);
    case K_NUMBER:
    case K_INTEGER: return start_number(s, id, c);
    case K_LITERALS: {
        uint64_t m = 0;
        for (int i = 0; i < nd->n; i++)
            if ((uint8_t)sc->bytes[sc->lits[nd->a + i].text] == c) m |= 1ull << i;
        if (s->depth && top_node(s)->unique) m &= ~s->used; /* a value not yet in the array */
        if (!m) return false;
        s->mode = M_LIT;
        s->snode = id;
        s->cand = m;
        s->off = 1;
        /* a literal of one byte (a digit) may already be complete: the next byte tells */
        bool longer = false;
        for (uint64_t k = m; k; k &= k - 1) longer |= sc->lits[nd->a + __builtin_ctzll(k)].len > 1;
        if (!longer) {
            lit_done(s, m);
            after_value(s);
        }
        return true;
    }
    default: { /* K_UNION: the alternative that begins with c, or of those that do, the one this reading takes */
        uint16_t leaf[SL_JSON_MAX_FORKS];
        const int n = union_leaves(sc, id, c, leaf, SL_JSON_MAX_FORKS, 0);
        if (n == 0) return false;
        const int k = s->choice < n ? s->choice : 0;
        s->choice = 0;
        return value_start(s, leaf[k], c);
    }
    }
}

/* One byte in a state that allows whitespace around structure. */
static bool structural(sl_json_fork *s, uint8_t c) {
    if (is_ws(c)) { /* one space, or a newline and at most SL_JSON_MAX_INDENT spaces or tabs (as llama.cpp's JSON grammar) */
        if (s->ws == 0 && (c == ' ' || c == '\n')) {
            s->ws = c == ' ' ? WS_SPACE : 1;
            return true;
        }
        if (s->ws >= 1 && s->ws <= SL_JSON_MAX_INDENT && (c == ' ' || c == '\t')) {
            s->ws++;
            return true;
        }
        return false;
    }
    s->ws = 0;
    switch (s->mode) {
    case M_ROOT: return value_start(s, s->sc->root, c);
    case M_OBJ_FIRST:
    case M_OBJ_NEXT:
        if (c == '}') {
            if (!object_may_end(s)) return false;
            s->depth--;
            after_value(s);
            return true;
        }
        if (s->mode == M_OBJ_NEXT) {
            if (c != ',') return false;
            s->mode = M_OBJ_KEY;
            /* a ',' needs a key that may come after it */
            return other_key_may_come(s) || key_candidates(s) != 0;
        }
        return c == '"' && start_key(s);
    case M_OBJ_KEY: return c == '"' && start_key(s);
    case M_COLON:
        if (c != ':') return false;
        s->mode = M_VALUE;
        return true;
    case M_ARR_FIRST:
    case M_ARR_NEXT: {
        const node *a = top_node(s);
        sl_json_frame *f = &s->stack[s->depth - 1];
        if (c == ']') {
            if (f->idx < a->lo) return false;
            if (a->unique) s->used = 0;
            s->depth--;
            after_value(s);
            return true;
        }
        if (s->mode == M_ARR_NEXT) {
            if (c != ',' || (a->hi != NO_LIMIT && f->idx >= a->hi)) return false;
            s->mode = M_VALUE;
            s->vnode = item_node(s->sc, a, f->idx);
            if (f->idx < NO_LIMIT) f->idx++;
            return true;
        }
        if (a->hi == 0) return false;
        f->idx = 1;
        return value_start(s, item_node(s->sc, a, 0), c);
    }
    case M_VALUE: return value_start(s, s->vnode, c);
    default: return false; /* M_DONE: whitespace only */
    }
}

/* A number: false when c cannot continue it; *ended when c ends it (c is then for the state after it). */
static bool number(sl_json_fork *s, uint8_t c, bool *ended) {
    *ended = false;
    switch (s->sub) {
    case N_MINUS:
        if (c == '0') s->sub = N_ZERO;
        else if (c >= '1' && c <= '9') s->sub = N_INT;
        else return false;
        return true;
    case N_DOT:
        if (!is_digit(c)) return false;
        s->sub = N_FRAC;
        return true;
    case N_E:
        if (c == '+' || c == '-') s->sub = N_ESIGN;
        else if (is_digit(c)) s->sub = N_EXP;
        else return false;
        return true;
    case N_ESIGN:
        if (!is_digit(c)) return false;
        s->sub = N_EXP;
        return true;
    default: break; /* N_ZERO, N_INT, N_FRAC, N_EXP: a complete number */
    }
    if (is_digit(c) && s->sub != N_ZERO) return true;
    if (c == '.' && !s->integer && (s->sub == N_ZERO || s->sub == N_INT)) {
        s->sub = N_DOT;
        return true;
    }
    if ((c == 'e' || c == 'E') && !s->integer && s->sub != N_EXP) {
        s->sub = N_E;
        return true;
    }
    *ended = true;
    return true;
}

/* A string's character count (value strings with length limits): one more character may begin here. */
static bool count_char(sl_json_fork *s) {
    if (s->key && s->key != 3) return true;
    const node *nd = &s->sc->nodes[s->snode];
    if (nd->kind == K_STRING && nd->hi != NO_LIMIT && s->slen >= nd->hi) return false;
    if (s->slen < 0xFFFF) s->slen++;
    return true;
}

/* Of the candidates (bits of s->cand: lits [first + i]), those whose byte at s->off is c (*ext) and those
 * that end at s->off (*whole). */
static void match_lits(const sl_json_fork *s, int first, uint8_t c, uint64_t *ext, uint64_t *whole) {
    *ext = *whole = 0;
    for (uint64_t m = s->cand; m; m &= m - 1) {
        const int i = __builtin_ctzll(m);
        const lit *l = &s->sc->lits[first + i];
        if (l->len > s->off && (uint8_t)s->sc->bytes[l->text + s->off] == c) *ext |= 1ull << i;
        if (l->len == s->off) *whole |= 1ull << i;
    }
}

/* Byte c of UTF-8 text (RFC 3629: no overlong forms, surrogates or values past U+10FFFF), after the
 * continuation bytes still due (u8need, the next one in [u8lo, u8hi]); false (nothing changed) when it
 * cannot come. */
static bool utf8_byte(sl_json_fork *s, uint8_t c) {
    if (s->u8need) {
        if (c < s->u8lo || c > s->u8hi) return false;
        s->u8need--;
        s->u8lo = 0x80;
        s->u8hi = 0xBF;
        return true;
    }
    return sl_utf8_lead(c, &s->u8need, &s->u8lo, &s->u8hi);
}

/* A key of an object with declared properties and others (key 2): byte c of its text (as written), the declared
 * names it still spells kept in cand. As a name written another way ("\u0061" for "a") would be that name, such
 * escapes are refused in these keys (feed, M_ESC), so the text alone tells. */
static void other_key_byte(sl_json_fork *s, uint8_t c) {
    if (s->key != 2 || !s->cand) return;
    uint64_t ext, whole;
    match_lits(s, top_node(s)->names, c, &ext, &whole);
    s->cand = ext;
    s->off += ext != 0; /* (a name has at most 255 bytes: off stays below 256) */
}

/* Its closing quote: a declared name must be one that may come here; any other key is one of the others. */
static bool other_key_ends(sl_json_fork *s) {
    const node *o = top_node(s);
    sl_json_frame *f = &s->stack[s->depth - 1];
    int j = -1;
    for (uint64_t m = s->cand; m; m &= m - 1)
        if (s->sc->lits[o->names + __builtin_ctzll(m)].len == s->off) j = __builtin_ctzll(m);
    if (j >= 0 && !(key_candidates(s) >> j & 1)) return false; /* given already, or out of the declared order */
    if (j >= 0) f->idx = (uint16_t)(j + 1);
    s->vnode = j >= 0 ? s->sc->props[o->a + j].node : o->sub;
    f->members++;
    s->cand = 0;
    s->off = 0;
    s->mode = M_COLON;
    return true;
}

static bool feed(sl_json_fork *s, uint8_t c) {
    const sl_json_schema *sc = s->sc;
    switch (s->mode) {
    case M_STRING:
        if (s->u8need) { /* within a character */
            if (!utf8_byte(s, c) || !dfa_step(s, c)) return false;
            other_key_byte(s, c);
            return true;
        }
        if (s->surr == 1) { /* a high surrogate's low half: "\\uDC00"-"\\uDFFF", the same character */
            if (c != '\\') return false;
            s->surr = 2;
            s->mode = M_ESC;
            return true;
        }
        if (c == '"') {
            if (s->key == 2) return other_key_ends(s);
            const node *nd = &sc->nodes[s->snode];
            if ((!s->key || s->key == 3) && nd->kind == K_STRING && s->slen < nd->lo) return false;
            if ((!s->key || s->key == 3) && s->dfa != NO_DFA && !sc->dacc[s->dfa]) return false;
            if (s->key) {
                s->mode = M_COLON;
                return true;
            }
            after_value(s);
            return true;
        }
        if (c < 0x20) return false;
        if (!utf8_byte(s, c) || !count_char(s)) return false; /* (a lead byte begins a character) */
        other_key_byte(s, c);
        if (c == '\\') {
            s->mode = M_ESC;
            return true;
        }
        return dfa_step(s, c);
    case M_ESC: {
        if (s->surr == 2 && c != 'u') return false;
        if (s->key == 2 && (c == 'u' || c == '/')) return false; /* (other_key_byte) */
        other_key_byte(s, c);
        if (s->surr == 2) s->surr = 3;
        if (c == 'u') {
            s->mode = M_HEX;
            s->sub = 0;
            s->hexv = 0;
            return true;
        }
        s->mode = M_STRING;
        static const char esc[] = "\"\\/bfnrt", val[] = "\"\\/\b\f\n\r\t";
        const char *e = c ? strchr(esc, c) : NULL;
        return e && dfa_step(s, (uint8_t)val[e - esc]);
    }
    case M_HEX: {
        if (!is_hex(c)) return false;
        s->hexv = (uint16_t)(s->hexv * 16 + (is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10));
        ++s->sub;
        /* surrogates come in pairs (a lone half is no character: jansson and others refuse it), refused as soon
         * as the first two digits tell, so no escape is begun that cannot end */
        const bool pattern = (!s->key || s->key == 3) && s->dfa != NO_DFA;
        if (s->surr == 3) {
            if ((s->sub == 1 && s->hexv != 0xD) || (s->sub == 2 && (s->hexv < 0xDC || s->hexv > 0xDF))) return false;
        } else if (s->sub == 2 && s->hexv >= (pattern ? 0xD8 : 0xDC) && s->hexv <= 0xDF) {
            return false; /* a low half alone; in a pattern's string either half (the character can come as UTF-8) */
        }
        if (s->sub < 4) return true;
        s->mode = M_STRING;
        if (s->surr == 3) {
            s->surr = 0;
            return true;
        }
        if (s->hexv >= 0xD800 && s->hexv <= 0xDBFF) {
            s->surr = 1;
            return true;
        }
        return pattern ? dfa_step_cp(s, s->hexv) : true;
    }
    case M_KEY: {
        const node *o = top_node(s);
        uint64_t ext, whole;
        match_lits(s, o->names, c, &ext, &whole);
        if (ext) {
            s->cand = ext;
            s->off++;
            return true;
        }
        if (c != '"' || !whole) return false;
        const int j = __builtin_ctzll(whole); /* names differ: one at most */
        s->stack[s->depth - 1].idx = (uint16_t)(j + 1);
        s->stack[s->depth - 1].members++;
        s->vnode = sc->props[o->a + j].node;
        s->mode = M_COLON;
        return true;
    }
    case M_LIT: {
        const node *nd = &sc->nodes[s->snode];
        uint64_t ext, whole;
        match_lits(s, nd->a, c, &ext, &whole);
        if (ext) {
            s->cand = ext;
            s->off++;
            /* complete when every literal still matching ends here and none goes on: nothing more can come */
            bool longer = false;
            for (uint64_t m = ext; m; m &= m - 1) longer |= sc->lits[nd->a + __builtin_ctzll(m)].len > s->off;
            if (!longer) {
                lit_done(s, ext);
                after_value(s);
            }
            return true;
        }
        if (!whole) return false;
        lit_done(s, whole);
        after_value(s); /* a literal that ended here (1 of 1 and 12): c belongs to what follows */
        return structural(s, c);
    }
    case M_RAW: return utf8_byte(s, c) && dfa_step(s, c); /* the output's bytes as they are, through the DFA */
    case M_NUM: {
        bool ended;
        const uint8_t before = s->sub;
        if (!number(s, c, &ended)) return false;
        const node *nd = &sc->nodes[s->snode];
        if (!ended) return !(nd->bounds || nd->step) || num_digit(s, nd, before, c);
        if (nd->bounds) { /* the whole number */
            const double v = (s->neg ? -1 : 1) * dec(s->ival, s->fval, s->fdig);
            if (!meets(nd, v, true, v, true)) return false;
        }
        if (nd->step) {
            u128 p = 1;
            for (int k = s->fdig; k < 18; k++) p *= 10;
            if (((u128)s->ival * E18 + (u128)s->fval * p) % nd->step != 0) return false;
        }
        after_value(s);
        return structural(s, c);
    }
    default: return structural(s, c);
    }
}

/* How many readings byte c makes of this one: the alternatives of a union value it begins (0 or 1: no fork). */
static inline int forks_at(const sl_json_fork *s, uint8_t c) {
    if ((s->mode != M_VALUE && s->mode != M_ROOT && s->mode != M_ARR_FIRST) || is_ws(c) || !s->sc->leaves) return 1;
    uint16_t id;
    if (s->mode == M_ROOT) id = s->sc->root;
    else if (s->mode == M_VALUE) id = s->vnode;
    else if (s->mode == M_ARR_FIRST && c != ']') id = item_node(s->sc, top_node(s), 0);
    else return 1;
    return s->sc->nodes[id].kind == K_UNION ? s->sc->leaves[(size_t)id * 256 + c] : 1;
}

static bool forks_equal(const sl_json_fork *a, const sl_json_fork *b) {
    return a->mode == b->mode && a->sub == b->sub && a->depth == b->depth && a->ws == b->ws && a->key == b->key &&
           a->off == b->off && a->integer == b->integer && a->vnode == b->vnode && a->snode == b->snode &&
           a->slen == b->slen && a->cand == b->cand && a->dfa == b->dfa && a->hexv == b->hexv && a->neg == b->neg &&
           a->idig == b->idig && a->fdig == b->fdig && a->ival == b->ival && a->fval == b->fval &&
           a->u8need == b->u8need && a->u8lo == b->u8lo && a->u8hi == b->u8hi && a->surr == b->surr && a->used == b->used &&
           !memcmp(a->stack, b->stack, a->depth * sizeof a->stack[0]);
}

/* Byte c into every reading: those that refuse it go, a union value it begins forks one per alternative that
 * may begin so, and readings that became the same are kept once. False when none is left (the state is then
 * not meaningful). */
static bool state_feed(sl_json_state *st, uint8_t c) {
    sl_json_fork extra[SL_JSON_MAX_FORKS];
    int w = 0, n_extra = 0;
    for (int i = 0; i < st->n; i++) {
        sl_json_fork *f = &st->f[i];
        const int k = forks_at(f, c);
        if (k <= 1) {
            if (feed(f, c)) {
                if (w != i) st->f[w] = *f;
                w++;
            }
            continue;
        }
        const sl_json_fork base = *f;
        for (int j = 0; j < k; j++) {
            sl_json_fork g = base;
            g.choice = (uint8_t)j;
            if (!feed(&g, c)) continue;
            if (w <= i) st->f[w++] = g; /* in the place of the reading it came from */
            else if (n_extra < SL_JSON_MAX_FORKS) extra[n_extra++] = g;
        }
    }
    for (int e = 0; e < n_extra && w < SL_JSON_MAX_FORKS; e++) st->f[w++] = extra[e];
    for (int a = 0; a < w; a++)
        for (int b = a + 1; b < w; b++)
            if (forks_equal(&st->f[a], &st->f[b])) st->f[b--] = st->f[--w];
    st->n = w;
    return w > 0;
}

/* Copy a state's readings in use (not the whole array). */
static void state_copy(sl_json_state *dst, const sl_json_state *src) {
    dst->n = src->n;
    if (src->n == 1) dst->f[0] = src->f[0];
    else memcpy(dst->f, src->f, (size_t)src->n * sizeof src->f[0]);
}

bool sl_json_feed(sl_json_state *st, uint8_t c) {
    sl_json_state t;
    state_copy(&t, st);
    if (!state_feed(&t, c)) return false;
    state_copy(st, &t);
    return true;
}

bool sl_json_feed_all(sl_json_state *st, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const uint8_t c = (uint8_t)p[i];
        if (st->n == 1 && forks_at(&st->f[0], c) <= 1) { /* one reading, no fork: the common case, in place */
            if (!feed(&st->f[0], c)) return false;
        } else if (!state_feed(st, c)) {
            return false;
        }
    }
    return true;
}

/* ---- the token mask ---------------------------------------------------------- */

struct sl_json_guide {
    const sl_tokenizer *tok;
    int32_t n_vocab;
    uint32_t *off; /* (n_vocab + 1) token i's text is text[off[i], off[i + 1]) */
    char *text;
    uint8_t *eog;   /* (n_vocab) */
    uint8_t *plain; /* (n_vocab) text that a string takes as it is: whole UTF-8 characters, no '"', '\\' or control byte */
    sl_json_state *after; /* (256) scratch for sl_json_guide_mask: the state after each first byte */
};

sl_status sl_json_guide_create(const sl_tokenizer *tok, sl_json_guide **out) {
    *out = NULL;
    sl_json_guide *g = sl_calloc(1, sizeof *g);
    if (!g) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    g->tok = tok;
    g->n_vocab = sl_tokenizer_n_vocab(tok);
    g->off = sl_alloc_array((size_t)g->n_vocab + 1, sizeof(uint32_t));
    g->eog = sl_calloc((size_t)g->n_vocab, 1);
    g->plain = sl_calloc((size_t)g->n_vocab, 1);
    g->after = sl_alloc_array(256, sizeof(sl_json_state));
    size_t cap = 16 * (size_t)g->n_vocab + 256, n = 0;
    g->text = sl_malloc(cap);
    if (!g->off || !g->eog || !g->plain || !g->after || !g->text) goto nomem;
    char buf[1024];
    for (int32_t i = 0; i < g->n_vocab; i++) {
        int64_t k = sl_token_to_piece(tok, i, false, buf, sizeof buf);
        if (k < 0 || k > (int64_t)sizeof buf) k = 0; /* no text (or longer than any JSON token needs): never allowed */
        if (n + (size_t)k > cap) {
            while (n + (size_t)k > cap) cap *= 2;
            char *nt = sl_realloc(g->text, cap);
            if (!nt) goto nomem;
            g->text = nt;
        }
        g->off[i] = (uint32_t)n;
        memcpy(g->text + n, buf, (size_t)k);
        n += (size_t)k;
        g->eog[i] = sl_tokenizer_is_eog(tok, i);
        g->plain[i] = k > 0 && sl_utf8_valid(buf, (size_t)k); /* whole characters: a string takes them anywhere */
        for (int64_t j = 0; j < k; j++)
            if ((uint8_t)buf[j] < 0x20 || buf[j] == '"' || buf[j] == '\\') g->plain[i] = 0;
    }
    g->off[g->n_vocab] = (uint32_t)n;
    *out = g;
    return SL_OK;
nomem:
    sl_json_guide_destroy(g);
    return SL_FAIL(SL_ERR_NOMEM, "out of memory for the JSON guide's token texts");
}

void sl_json_guide_destroy(sl_json_guide *g) {
    if (!g) return;
    sl_free(g->off);
    sl_free(g->text);
    sl_free(g->eog);
    sl_free(g->plain);
    sl_free(g->after);
    sl_free(g);
}

const char *sl_json_guide_text(const sl_json_guide *g, int32_t id, size_t *n) {
    *n = g->off[id + 1] - g->off[id];
    return g->text + g->off[id];
}

int32_t sl_json_guide_mask(sl_json_guide *g, const sl_json_state *st, float *logits) {
    /* the bytes that may come first, and the state after each */
    bool first[256];
    sl_json_state *after = g->after;
    for (int c = 0; c < 256; c++) {
        state_copy(&after[c], st);
        first[c] = state_feed(&after[c], (uint8_t)c);
    }
    /* inside a string without a length limit (the only reading), plain text goes as it is */
    const sl_json_fork *s = &st->f[0];
    const bool value_like = !s->key || s->key == 3; /* (a key as propertyNames says is read as a value string) */
    const node *sn = s->mode == M_STRING && value_like ? &s->sc->nodes[s->snode] : NULL;
    const bool free_string = st->n == 1 && s->mode == M_STRING && !s->u8need && !s->surr &&
                             (!value_like || sn->kind != K_STRING || (sn->hi == NO_LIMIT && sn->dfa == NO_DFA));
    const bool done = sl_json_may_end(st);
    int32_t allowed = 0;
    for (int32_t i = 0; i < g->n_vocab; i++) {
        const char *p = g->text + g->off[i];
        const size_t n = g->off[i + 1] - g->off[i];
        bool ok;
        if (g->eog[i]) {
            ok = done;
        } else if (free_string && g->plain[i]) {
            ok = true;
        } else if (n == 0 || !first[(uint8_t)p[0]]) {
            ok = false;
        } else {
            sl_json_state t;
            state_copy(&t, &after[(uint8_t)p[0]]);
            ok = sl_json_feed_all(&t, p + 1, n - 1);
        }
        if (ok) allowed++;
        else logits[i] = -INFINITY;
    }
    return allowed;
}

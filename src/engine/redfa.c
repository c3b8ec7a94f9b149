/*
 * redfa.c — JSON Schema patterns compiled into byte DFAs (see redfa.h).
 *
 * The pattern is parsed into a tree, the tree emitted as a Thompson NFA over
 * bytes (a multi-byte character is a run of byte steps), the NFA wrapped in
 * `any*` loops for JSON Schema's match-anywhere rule, and the subset
 * construction run over byte classes (bytes no set tells apart). `^` and `$`
 * are NFA edges followed only at the start and only when asking whether the
 * bytes so far match. States from which no match can be reached are dropped,
 * so SL_REDFA_DEAD is the guide's "this byte cannot come".
 */
#include "redfa.h"

#include "core/alloc.h"
#include "core/strbuf.h"
#include "core/status.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define MAX_PATTERN 4096 /* bytes */
#define MAX_TREE 8192    /* tree nodes */
#define MAX_NFA 4096     /* NFA states */
#define MAX_REPEAT 1000  /* {n,m} bounds */
#define MAX_NEST 100     /* nested groups */

typedef struct bset {
    uint64_t w[4];
} bset;
static void bs_add(bset *s, int c) { s->w[c >> 6] |= 1ull << (c & 63); }
static bool bs_has(const bset *s, int c) { return s->w[c >> 6] >> (c & 63) & 1; }
static void bs_range(bset *s, int a, int b) {
    for (int c = a; c <= b; c++) bs_add(s, c);
}

/* ---- the tree ------------------------------------------------------------------ */

enum { R_SET, R_CAT, R_ALT, R_REP, R_EMPTY, R_BOL, R_EOL };

typedef struct rnode {
    uint8_t op;
    int a, b;     /* CAT, ALT: the two parts; REP: a */
    int min, max; /* REP: max -1 for no bound */
    bset set;     /* SET: the bytes */
} rnode;

typedef struct parser {
    const char *p;
    size_t len, i;
    rnode *t;
    int n, cap;
    int nonascii; /* the tree of "one non-ASCII character", made once */
    char err[160];
} parser;

static int fail(parser *ps, size_t at, const char *what) {
    if (!ps->err[0]) snprintf(ps->err, sizeof ps->err, "%s at offset %zu", what, at);
    return -1;
}

static int node_new(parser *ps, uint8_t op, int a, int b) {
    if (ps->n >= MAX_TREE) return fail(ps, ps->i, "the pattern is too large");
    if (ps->n == ps->cap) {
        int c = ps->cap ? ps->cap * 2 : 64;
        rnode *nt = sl_realloc(ps->t, (size_t)c * sizeof *nt);
        if (!nt) return fail(ps, ps->i, "out of memory");
        ps->t = nt;
        ps->cap = c;
    }
    ps->t[ps->n] = (rnode){.op = op, .a = a, .b = b};
    return ps->n++;
}
static int set_node(parser *ps, const bset *s) {
    const int id = node_new(ps, R_SET, -1, -1);
    if (id >= 0) ps->t[id].set = *s;
    return id;
}
static int byte_node(parser *ps, int c) {
    bset s = {{0}};
    bs_add(&s, c);
    return set_node(ps, &s);
}
static int range_node(parser *ps, int a, int b) {
    bset s = {{0}};
    bs_range(&s, a, b);
    return set_node(ps, &s);
}
static int cat(parser *ps, int a, int b) {
    if (a < 0 || b < 0) return -1;
    if (ps->t[a].op == R_EMPTY) return b;
    return node_new(ps, R_CAT, a, b);
}
static int alt(parser *ps, int a, int b) { return a < 0 || b < 0 ? -1 : node_new(ps, R_ALT, a, b); }

/* One character at or above U+0080 in UTF-8: two, three or four bytes. */
static int nonascii(parser *ps) {
    if (ps->nonascii >= 0) return ps->nonascii;
    const int c2 = cat(ps, range_node(ps, 0xC2, 0xDF), range_node(ps, 0x80, 0xBF));
    const int c3 = cat(ps, range_node(ps, 0xE0, 0xEF), cat(ps, range_node(ps, 0x80, 0xBF), range_node(ps, 0x80, 0xBF)));
    const int c4 = cat(ps, range_node(ps, 0xF0, 0xF4),
                       cat(ps, range_node(ps, 0x80, 0xBF), cat(ps, range_node(ps, 0x80, 0xBF), range_node(ps, 0x80, 0xBF))));
    return ps->nonascii = alt(ps, c2, alt(ps, c3, c4));
}

/* Code point cp as its UTF-8 bytes. */
static int utf8_node(parser *ps, uint32_t cp) {
    if (cp < 0x80) return byte_node(ps, (int)cp);
    if (cp < 0x800) return cat(ps, byte_node(ps, 0xC0 | (int)(cp >> 6)), byte_node(ps, 0x80 | (int)(cp & 0x3F)));
    if (cp < 0x10000)
        return cat(ps, byte_node(ps, 0xE0 | (int)(cp >> 12)),
                   cat(ps, byte_node(ps, 0x80 | (int)(cp >> 6 & 0x3F)), byte_node(ps, 0x80 | (int)(cp & 0x3F))));
    return cat(ps, byte_node(ps, 0xF0 | (int)(cp >> 18)),
               cat(ps, byte_node(ps, 0x80 | (int)(cp >> 12 & 0x3F)),
                   cat(ps, byte_node(ps, 0x80 | (int)(cp >> 6 & 0x3F)), byte_node(ps, 0x80 | (int)(cp & 0x3F)))));
}

/* A class as ASCII bytes plus "every non-ASCII character" or none. */
typedef struct cls {
    bset ascii;
    bool nonascii;
} cls;

static void class_escape(char e, cls *c) {
    bset s = {{0}};
    const char lower = (char)(e | 0x20);
    if (lower == 'd') bs_range(&s, '0', '9');
    if (lower == 'w') bs_range(&s, '0', '9'), bs_range(&s, 'a', 'z'), bs_range(&s, 'A', 'Z'), bs_add(&s, '_');
    if (lower == 's') bs_range(&s, '\t', '\r'), bs_add(&s, ' ');
    if (e == lower) {
        for (int k = 0; k < 4; k++) c->ascii.w[k] |= s.w[k];
    } else { /* \D \W \S: the rest of ASCII and everything beyond */
        for (int b = 0; b < 128; b++)
            if (!bs_has(&s, b)) bs_add(&c->ascii, b);
        c->nonascii = true;
    }
}

/* \xHH or \uHHHH after the backslash (ps->i at 'x' or 'u'): the code point, or -1. */
static long hex_escape(parser *ps) {
    const size_t at = ps->i - 1;
    const int digits = ps->p[ps->i] == 'x' ? 2 : 4;
    if (ps->i + (size_t)digits >= ps->len) return fail(ps, at, "a '\\x' or '\\u' escape needs its hex digits");
    long v = 0;
    for (int k = 1; k <= digits; k++) {
        const int h = sl_hex_digit(ps->p[ps->i + (size_t)k]);
        if (h < 0) return fail(ps, at, "a '\\x' or '\\u' escape needs its hex digits");
        v = v * 16 + h;
    }
    ps->i += (size_t)digits + 1;
    if (v >= 0xD800 && v <= 0xDFFF) return fail(ps, at, "a surrogate '\\u' escape is not supported");
    return v;
}

/* A simple escape's byte (\t \n \r \f \v \0, or escaped punctuation), -1 when e is none. */
static int simple_escape(char e) {
    switch (e) {
    case 't': return '\t';
    case 'n': return '\n';
    case 'r': return '\r';
    case 'f': return '\f';
    case 'v': return '\v';
    case '0': return 0;
    default: return (e >= 0x21 && e < 0x7F && !(e >= '0' && e <= '9') && !((e | 0x20) >= 'a' && (e | 0x20) <= 'z')) ? e : -1;
    }
}

/* One member of a class at ps->i: a single character (*one; returns 1), or a class escape \\d \\w \\s ... added to
 * c (returns 0; refused where a range's end must be one character: c NULL); -1 on error. */
static int class_member(parser *ps, cls *c, int *one) {
    const size_t m = ps->i;
    const char ch = ps->p[ps->i];
    if ((uint8_t)ch >= 0x80) return fail(ps, m, "a non-ASCII character in a '[' class is not supported");
    if (ch != '\\') {
        *one = (uint8_t)ch;
        ps->i++;
        return 1;
    }
    if (++ps->i >= ps->len) return fail(ps, m, "the pattern ends in '\\'");
    const char e = ps->p[ps->i];
    if (e && strchr("dDwWsS", e)) {
        if (!c) return fail(ps, m, "a range ends in a class escape");
        class_escape(e, c);
        ps->i++;
        return 0;
    }
    if (e == 'x' || e == 'u') {
        const long v = hex_escape(ps);
        if (v < 0) return -1;
        if (v >= 0x80) return fail(ps, m, "a non-ASCII character in a '[' class is not supported");
        *one = (int)v;
        return 1;
    }
    if (e == 'b') { /* in a class, backspace */
        *one = '\b';
        ps->i++;
        return 1;
    }
    if (e == 'c' && ps->i + 1 < ps->len && ((ps->p[ps->i + 1] | 0x20) >= 'a' && (ps->p[ps->i + 1] | 0x20) <= 'z')) {
        *one = ps->p[ps->i + 1] % 32;
        ps->i += 2;
        return 1;
    }
    if (e == '-') *one = '-';
    else if ((*one = simple_escape(e)) < 0) return fail(ps, m, "an unknown escape in a '[' class");
    ps->i++;
    return 1;
}

static int parse_class(parser *ps) {
    const size_t at = ps->i - 1;
    cls c = {{{0}}, false};
    bool neg = false;
    if (ps->i < ps->len && ps->p[ps->i] == '^') neg = true, ps->i++;
    while (true) {
        if (ps->i >= ps->len) return fail(ps, at, "a '[' class is not closed");
        if (ps->p[ps->i] == ']') {
            ps->i++;
            break;
        }
        const size_t m = ps->i;
        int one, hi;
        const int k = class_member(ps, &c, &one);
        if (k < 0) return -1;
        if (k == 0) continue;
        /* a range: x-y (a '-' first, last or after a range is itself) */
        if (ps->i + 1 < ps->len && ps->p[ps->i] == '-' && ps->p[ps->i + 1] != ']') {
            ps->i++;
            if (class_member(ps, NULL, &hi) < 0) return -1;
            if (hi < one) return fail(ps, m, "a range in a '[' class runs backwards");
            bs_range(&c.ascii, one, hi);
            continue;
        }
        bs_add(&c.ascii, one);
    }
    if (neg) {
        for (int k = 0; k < 2; k++) c.ascii.w[k] = ~c.ascii.w[k];
        c.ascii.w[2] = c.ascii.w[3] = 0;
        c.nonascii = !c.nonascii;
    }
    const int s = set_node(ps, &c.ascii);
    return c.nonascii ? alt(ps, s, nonascii(ps)) : s;
}

/* {n}, {n,} or {n,m} at ps->i: true with *lo, *hi (-1: none) and *end after it; false when it is no quantifier. */
static bool braces(const parser *ps, int *lo, int *hi, size_t *end) {
    size_t j = ps->i;
    if (j >= ps->len || ps->p[j] != '{') return false;
    j++;
    long a = -1, b = -1;
    for (; j < ps->len && ps->p[j] >= '0' && ps->p[j] <= '9'; j++) a = (a < 0 ? 0 : a) * 10 + (ps->p[j] - '0'), a = a > 100000 ? 100000 : a;
    if (a < 0 || j >= ps->len) return false;
    if (ps->p[j] == ',') {
        j++;
        for (; j < ps->len && ps->p[j] >= '0' && ps->p[j] <= '9'; j++) b = (b < 0 ? 0 : b) * 10 + (ps->p[j] - '0'), b = b > 100000 ? 100000 : b;
    } else {
        b = a;
    }
    if (j >= ps->len || ps->p[j] != '}') return false;
    *lo = (int)a;
    *hi = (int)b;
    *end = j + 1;
    return true;
}

static int parse_alt(parser *ps, int depth);

static int parse_atom(parser *ps, int depth) {
    const size_t at = ps->i;
    const char ch = ps->p[ps->i++];
    switch (ch) {
    case '(': {
        if (depth >= MAX_NEST) return fail(ps, at, "groups nest too deeply");
        if (ps->i < ps->len && ps->p[ps->i] == '?') {
            const char *g = ps->p + ps->i, *end = ps->p + ps->len;
            if (end - g >= 2 && g[1] == ':') ps->i += 2;
            else if (end - g >= 2 && (g[1] == '=' || g[1] == '!')) return fail(ps, at, "lookahead is not supported");
            else if (end - g >= 3 && g[1] == '<' && (g[2] == '=' || g[2] == '!')) return fail(ps, at, "lookbehind is not supported");
            else if (end - g >= 2 && g[1] == '<') {
                const char *close = memchr(g + 2, '>', (size_t)(end - g - 2));
                if (!close || close == g + 2) return fail(ps, at, "a named group needs a name and '>'");
                ps->i = (size_t)(close + 1 - ps->p);
            } else {
                return fail(ps, at, "an unknown '(?' group");
            }
        }
        const int r = parse_alt(ps, depth + 1);
        if (r < 0) return -1;
        if (ps->i >= ps->len || ps->p[ps->i] != ')') return fail(ps, at, "a '(' group is not closed");
        ps->i++;
        return r;
    }
    case '[': return parse_class(ps);
    case '.': {
        bset s = {{0}};
        bs_range(&s, 0, 0x7F);
        s.w[0] &= ~((1ull << '\n') | (1ull << '\r'));
        return alt(ps, set_node(ps, &s), nonascii(ps));
    }
    case '^': return node_new(ps, R_BOL, -1, -1);
    case '$': return node_new(ps, R_EOL, -1, -1);
    case '*':
    case '+':
    case '?': return fail(ps, at, "a quantifier with nothing to repeat");
    case '{': {
        int lo, hi;
        size_t end;
        ps->i--;
        if (braces(ps, &lo, &hi, &end)) return fail(ps, at, "a quantifier with nothing to repeat");
        ps->i++;
        return byte_node(ps, '{');
    }
    case '\\': {
        if (ps->i >= ps->len) return fail(ps, at, "the pattern ends in '\\'");
        const char e = ps->p[ps->i];
        if (e && strchr("dDwWsS", e)) {
            cls c = {{{0}}, false};
            class_escape(e, &c);
            ps->i++;
            const int s = set_node(ps, &c.ascii);
            return c.nonascii ? alt(ps, s, nonascii(ps)) : s;
        }
        if (e == 'b' || e == 'B') return fail(ps, at, "a word boundary ('\\b', '\\B') is not supported");
        if (e >= '1' && e <= '9') return fail(ps, at, "a backreference is not supported");
        if (e == 'k') return fail(ps, at, "a named backreference is not supported");
        if (e == 'p' || e == 'P') return fail(ps, at, "a Unicode property escape is not supported");
        if (e == 'x' || e == 'u') {
            const long v = hex_escape(ps);
            return v < 0 ? -1 : utf8_node(ps, (uint32_t)v);
        }
        if (e == 'c' && ps->i + 1 < ps->len && ((ps->p[ps->i + 1] | 0x20) >= 'a' && (ps->p[ps->i + 1] | 0x20) <= 'z')) {
            ps->i += 2;
            return byte_node(ps, ps->p[ps->i - 1] % 32);
        }
        if ((uint8_t)e >= 0x80) return parse_atom(ps, depth); /* an escaped non-ASCII character is itself */
        const int b = simple_escape(e);
        if (b < 0) return fail(ps, at, "an unknown escape");
        if (e == '0' && ps->i + 1 < ps->len && ps->p[ps->i + 1] >= '0' && ps->p[ps->i + 1] <= '9')
            return fail(ps, at, "an octal escape is not supported");
        ps->i++;
        return byte_node(ps, b);
    }
    default: {
        const uint8_t lead = (uint8_t)ch;
        int more = lead >= 0xF0 ? 3 : lead >= 0xE0 ? 2 : lead >= 0xC0 ? 1 : 0;
        int r = byte_node(ps, lead);
        for (; more > 0 && ps->i < ps->len && ((uint8_t)ps->p[ps->i] & 0xC0) == 0x80; more--)
            r = cat(ps, r, byte_node(ps, (uint8_t)ps->p[ps->i++]));
        return r;
    }
    }
}

static int parse_quant(parser *ps, int depth) {
    const int a = parse_atom(ps, depth);
    if (a < 0 || ps->i >= ps->len) return a;
    int lo, hi;
    size_t end;
    const char q = ps->p[ps->i];
    if (q == '*') lo = 0, hi = -1, end = ps->i + 1;
    else if (q == '+') lo = 1, hi = -1, end = ps->i + 1;
    else if (q == '?') lo = 0, hi = 1, end = ps->i + 1;
    else if (!braces(ps, &lo, &hi, &end)) return a;
    if (ps->t[a].op == R_BOL || ps->t[a].op == R_EOL) return fail(ps, ps->i, "a quantifier with nothing to repeat");
    if (lo > MAX_REPEAT || hi > MAX_REPEAT) return fail(ps, ps->i, "a repeat count above 1000");
    if (hi >= 0 && hi < lo) return fail(ps, ps->i, "a '{n,m}' quantifier with m below n");
    ps->i = end;
    if (ps->i < ps->len && ps->p[ps->i] == '?') ps->i++; /* lazy: the same strings match */
    if (ps->i < ps->len && (strchr("*+?", ps->p[ps->i]) || braces(ps, &(int){0}, &(int){0}, &(size_t){0})))
        return fail(ps, ps->i, "a quantifier with nothing to repeat");
    const int id = node_new(ps, R_REP, a, -1);
    if (id >= 0) ps->t[id].min = lo, ps->t[id].max = hi;
    return id;
}

static int parse_cat(parser *ps, int depth) {
    int acc = node_new(ps, R_EMPTY, -1, -1);
    while (acc >= 0 && ps->i < ps->len && ps->p[ps->i] != '|' && ps->p[ps->i] != ')') acc = cat(ps, acc, parse_quant(ps, depth));
    return acc;
}

static int parse_alt(parser *ps, int depth) {
    int a = parse_cat(ps, depth);
    while (a >= 0 && ps->i < ps->len && ps->p[ps->i] == '|') {
        ps->i++;
        a = alt(ps, a, parse_cat(ps, depth));
    }
    return a;
}

/* ---- the NFA --------------------------------------------------------------------- */

enum { N_EPS, N_SET, N_BOL, N_EOL, N_MATCH };

typedef struct nstate {
    uint8_t kind;
    int out, out2; /* EPS: both (-1: none); SET, BOL, EOL: out */
    int set;       /* SET: the tree node whose set it takes */
} nstate;

typedef struct nfa {
    nstate *s;
    int n;
    bool full;
} nfa;

static int nfa_new(nfa *m, uint8_t kind, int out, int out2, int set) {
    if (m->n >= MAX_NFA) {
        m->full = true;
        return -1;
    }
    m->s[m->n] = (nstate){.kind = kind, .out = out, .out2 = out2, .set = set};
    return m->n++;
}

/* The states for tree node id followed by state next; its first state. */
static int emit(nfa *m, const parser *ps, int id, int next) {
    if (next < 0) return -1;
    const rnode *r = &ps->t[id];
    switch (r->op) {
    case R_EMPTY: return next;
    case R_SET: return nfa_new(m, N_SET, next, -1, id);
    case R_BOL: return nfa_new(m, N_BOL, next, -1, -1);
    case R_EOL: return nfa_new(m, N_EOL, next, -1, -1);
    case R_CAT: return emit(m, ps, r->a, emit(m, ps, r->b, next));
    case R_ALT: {
        const int a = emit(m, ps, r->a, next), b = emit(m, ps, r->b, next);
        return a < 0 || b < 0 ? -1 : nfa_new(m, N_EPS, a, b, -1);
    }
    default: { /* R_REP */
        int x;
        if (r->max < 0) { /* a loop: L -> body -> L, or L -> next */
            x = nfa_new(m, N_EPS, -1, next, -1);
            if (x < 0) return -1;
            const int body = emit(m, ps, r->a, x);
            if (body < 0) return -1;
            m->s[x].out = body;
        } else { /* (a(a(...)?)?)? for the optional copies */
            x = next;
            for (int k = 0; k < r->max - r->min && x >= 0; k++) {
                const int body = emit(m, ps, r->a, x);
                x = body < 0 ? -1 : nfa_new(m, N_EPS, body, next, -1);
            }
        }
        for (int k = 0; k < r->min && x >= 0; k++) x = emit(m, ps, r->a, x);
        return x;
    }
    }
}

/* ---- the subset construction ---------------------------------------------------- */

typedef struct dfab {
    const nfa *m;
    const parser *ps;
    int words;      /* uint64 per NFA state set */
    uint64_t *sets; /* cap * words */
    int n, cap;
    int *hash;      /* hcap slots: a state or -1 */
    int hcap;
    int *stack;     /* MAX_NFA */
} dfab;

static void closure(const dfab *b, uint64_t *set, bool at_start, bool at_end) {
    int sp = 0;
    for (int w = 0; w < b->words; w++)
        for (uint64_t x = set[w]; x; x &= x - 1) b->stack[sp++] = w * 64 + __builtin_ctzll(x);
    while (sp) {
        const nstate *s = &b->m->s[b->stack[--sp]];
        int outs[2] = {-1, -1};
        if (s->kind == N_EPS) outs[0] = s->out, outs[1] = s->out2;
        else if ((s->kind == N_BOL && at_start) || (s->kind == N_EOL && at_end)) outs[0] = s->out;
        for (int k = 0; k < 2; k++) {
            const int o = outs[k];
            if (o < 0 || set[o >> 6] >> (o & 63) & 1) continue;
            set[o >> 6] |= 1ull << (o & 63);
            b->stack[sp++] = o;
        }
    }
}

static uint64_t hash_set(const uint64_t *s, int words) {
    uint64_t h = 1469598103934665603ull;
    for (int w = 0; w < words; w++) h = (h ^ s[w]) * 1099511628211ull, h ^= h >> 29;
    return h;
}

/* The state for set s: found, or added (-1 when there are too many). */
static int intern(dfab *b, const uint64_t *s) {
    const size_t bytes = (size_t)b->words * sizeof(uint64_t);
    uint64_t h = hash_set(s, b->words);
    for (int k = (int)(h & (uint64_t)(b->hcap - 1));; k = (k + 1) & (b->hcap - 1)) {
        if (b->hash[k] < 0) {
            if (b->n >= b->cap) return -1;
            memcpy(b->sets + (size_t)b->n * b->words, s, bytes);
            b->hash[k] = b->n;
            return b->n++;
        }
        if (!memcmp(b->sets + (size_t)b->hash[k] * b->words, s, bytes)) return b->hash[k];
    }
}

/* A byte that begins a character (ASCII or a UTF-8 lead) counts one; a continuation byte none. */
static int weight(int c) { return (c & 0xC0) != 0x80; }

/* min_chars by a 0-1 breadth-first search back from the matching states; max_chars by taking states whose
 * successors are all settled (those left are on a loop or lead to one: unbounded). */
static bool char_distances(sl_redfa *d) {
    const int n = d->n;
    d->min_chars = sl_alloc_array((size_t)n, sizeof(uint16_t));
    d->max_chars = sl_alloc_array((size_t)n, sizeof(uint16_t));
    int *rn = sl_calloc((size_t)n + 1, sizeof(int)), *fill = sl_alloc_array((size_t)n + 1, sizeof(int));
    int *re = sl_alloc_array((size_t)n * 256 + 1, sizeof(int)), *dq = sl_alloc_array(2 * (size_t)n * 256 + (size_t)n + 2, sizeof(int));
    int *left = sl_calloc((size_t)n + 1, sizeof(int));
    bool ok = d->min_chars && d->max_chars && rn && fill && re && dq && left;
    if (ok) {
        /* reverse edges, each (from, byte) once */
        for (size_t e = 0; e < (size_t)n * 256; e++)
            if (d->next[e] != SL_REDFA_DEAD) rn[d->next[e] + 1]++;
        for (int i = 0; i < n; i++) rn[i + 1] += rn[i];
        memcpy(fill, rn, (size_t)n * sizeof(int));
        for (size_t e = 0; e < (size_t)n * 256; e++)
            if (d->next[e] != SL_REDFA_DEAD) re[fill[d->next[e]]++] = (int)e;
        /* fewest: a deque, weight-0 edges to the front */
        uint32_t *dist = (uint32_t *)(void *)fill; /* reused: fill is done */
        for (int i = 0; i < n; i++) dist[i] = UINT32_MAX;
        size_t head = (size_t)n * 256 + 1, tail = head;
        for (int i = 0; i < n; i++)
            if (d->accept[i]) dist[i] = 0, dq[tail++] = i;
        while (head < tail) {
            const int t = dq[head++];
            for (int k = rn[t]; k < rn[t + 1]; k++) {
                const int from = re[k] / 256, w = weight(re[k] % 256);
                if (dist[t] + (uint32_t)w >= dist[from]) continue;
                dist[from] = dist[t] + (uint32_t)w;
                if (w) dq[tail++] = from;
                else dq[--head] = from;
            }
        }
        for (int i = 0; i < n; i++) d->min_chars[i] = (uint16_t)(dist[i] > 0xFFFE ? 0xFFFE : dist[i]);
        /* most: settled once every successor is (a state's own loop never settles) */
        for (size_t e = 0; e < (size_t)n * 256; e++)
            if (d->next[e] != SL_REDFA_DEAD) left[e / 256]++;
        uint32_t *most = dist;
        head = tail = 0;
        for (int i = 0; i < n; i++) {
            most[i] = 0;
            if (!left[i]) dq[tail++] = i;
        }
        while (head < tail) {
            const int t = dq[head++];
            for (int k = rn[t]; k < rn[t + 1]; k++) {
                const int from = re[k] / 256;
                const uint32_t v = most[t] + (uint32_t)weight(re[k] % 256);
                if (v > most[from]) most[from] = v > 0xFFFE ? 0xFFFE : v;
                if (--left[from] == 0) dq[tail++] = from;
            }
        }
        for (int i = 0; i < n; i++) d->max_chars[i] = left[i] ? SL_REDFA_UNBOUNDED : (uint16_t)most[i];
    }
    sl_free(rn);
    sl_free(fill);
    sl_free(re);
    sl_free(dq);
    sl_free(left);
    return ok;
}

sl_status sl_redfa_compile(const char *pattern, size_t len, int max_states, sl_redfa *out) {
    memset(out, 0, sizeof *out);
    if (max_states <= 0 || max_states > 0xFFFE) max_states = 0xFFFE;
    if (len > MAX_PATTERN) return SL_FAIL(SL_ERR_INVALID, "the pattern is longer than %d bytes", MAX_PATTERN);
    parser ps = {.p = pattern, .len = len, .nonascii = -1};
    int root = parse_alt(&ps, 0);
    if (root >= 0 && ps.i < len) root = fail(&ps, ps.i, "a ')' without its '('");
    nfa m = {.s = NULL};
    dfab b = {.m = &m, .ps = &ps};
    uint16_t *raw = NULL;
    int *rev_n = NULL, *rev = NULL, *queue = NULL, *map = NULL;
    uint8_t *acc = NULL;
    sl_status st = SL_OK;
    if (root < 0) {
        st = SL_FAIL(SL_ERR_INVALID, "%s", ps.err);
        goto done;
    }
    /* any* R any* MATCH */
    m.s = sl_alloc_array(MAX_NFA, sizeof(nstate));
    if (!m.s) goto nomem;
    bset all;
    memset(&all, 0xFF, sizeof all);
    const int any_node = node_new(&ps, R_SET, -1, -1);
    if (any_node < 0) {
        st = SL_FAIL(SL_ERR_INVALID, "%s", ps.err);
        goto done;
    }
    ps.t[any_node].set = all;
    const int match = nfa_new(&m, N_MATCH, -1, -1, -1);
    const int q = nfa_new(&m, N_EPS, -1, match, -1);
    const int sq = nfa_new(&m, N_SET, q, -1, any_node);
    if (q >= 0) m.s[q].out = sq;
    const int body = emit(&m, &ps, root, q);
    const int p = nfa_new(&m, N_EPS, -1, body, -1);
    const int sp = nfa_new(&m, N_SET, p, -1, any_node);
    if (p >= 0) m.s[p].out = sp;
    /* a state only the start's set holds: a later set equal to it in all else is not at the start */
    const int start_mark = nfa_new(&m, N_EPS, -1, -1, -1);
    if (m.full || start_mark < 0) {
        st = SL_FAIL(SL_ERR_INVALID, "the pattern needs more than %d automaton states", MAX_NFA);
        goto done;
    }
    /* byte classes: bytes that every set takes alike */
    uint8_t klass[256] = {0};
    int n_classes = 1;
    for (int i = 0; i < m.n; i++) {
        if (m.s[i].kind != N_SET) continue;
        const bset *s = &ps.t[m.s[i].set].set;
        int remap[512];
        for (int k = 0; k < 2 * n_classes; k++) remap[k] = -1;
        int nc = 0;
        uint8_t nk[256];
        for (int c = 0; c < 256; c++) {
            const int key = klass[c] * 2 + bs_has(s, c);
            if (remap[key] < 0) remap[key] = nc++;
            nk[c] = (uint8_t)remap[key];
        }
        memcpy(klass, nk, sizeof klass);
        n_classes = nc;
    }
    int rep[256]; /* a byte of each class */
    for (int c = 255; c >= 0; c--) rep[klass[c]] = c;

    b.words = (m.n + 63) / 64;
    b.cap = max_states + 1; /* one more: the state that can no longer match (pruned below) */
    for (b.hcap = 64; b.hcap < 2 * b.cap; b.hcap *= 2) {}
    b.sets = sl_alloc_array((size_t)b.cap * (size_t)b.words, sizeof(uint64_t));
    b.hash = sl_alloc_array((size_t)b.hcap, sizeof(int));
    b.stack = sl_alloc_array(MAX_NFA, sizeof(int));
    raw = sl_alloc_array((size_t)b.cap * (size_t)n_classes, sizeof(uint16_t));
    uint64_t *cur = sl_alloc_array((size_t)b.words * 2, sizeof(uint64_t));
    if (!b.sets || !b.hash || !b.stack || !raw || !cur) {
        sl_free(cur);
        goto nomem;
    }
    memset(b.hash, 0xFF, (size_t)b.hcap * sizeof(int));
    uint64_t *qset = cur + b.words;
    memset(qset, 0, (size_t)b.words * sizeof(uint64_t));
    qset[q >> 6] |= 1ull << (q & 63);
    closure(&b, qset, false, false);
    memset(cur, 0, (size_t)b.words * sizeof(uint64_t));
    cur[p >> 6] |= 1ull << (p & 63);
    cur[start_mark >> 6] |= 1ull << (start_mark & 63);
    closure(&b, cur, true, false);
    intern(&b, cur);
    for (int d = 0; d < b.n; d++) {
        for (int k = 0; k < n_classes; k++) {
            const uint64_t *from = b.sets + (size_t)d * b.words;
            memset(cur, 0, (size_t)b.words * sizeof(uint64_t));
            bool any = false;
            for (int w = 0; w < b.words; w++)
                for (uint64_t x = from[w]; x; x &= x - 1) {
                    const nstate *s = &m.s[w * 64 + __builtin_ctzll(x)];
                    if (s->kind == N_SET && bs_has(&ps.t[s->set].set, rep[k])) {
                        cur[s->out >> 6] |= 1ull << (s->out & 63);
                        any = true;
                    }
                }
            if (!any) {
                raw[(size_t)d * n_classes + k] = SL_REDFA_DEAD;
                continue;
            }
            closure(&b, cur, false, false);
            if (cur[q >> 6] >> (q & 63) & 1) memcpy(cur, qset, (size_t)b.words * sizeof(uint64_t)); /* matched: any rest */
            const int t = intern(&b, cur);
            if (t < 0) {
                sl_free(cur);
                st = SL_FAIL(SL_ERR_INVALID, "the pattern needs more than %d automaton states", max_states);
                goto done;
            }
            raw[(size_t)d * n_classes + k] = (uint16_t)t;
        }
    }
    /* which states match, and which can still reach one that does */
    acc = sl_calloc((size_t)b.n, 1);
    rev_n = sl_calloc((size_t)b.n + 1, sizeof(int));
    rev = sl_alloc_array((size_t)b.n * (size_t)n_classes + 1, sizeof(int));
    queue = sl_alloc_array((size_t)b.n + 1, sizeof(int));
    map = sl_alloc_array((size_t)b.n + 1, sizeof(int));
    if (!acc || !rev_n || !rev || !queue || !map) {
        sl_free(cur);
        goto nomem;
    }
    for (int d = 0; d < b.n; d++) {
        memcpy(cur, b.sets + (size_t)d * b.words, (size_t)b.words * sizeof(uint64_t));
        closure(&b, cur, d == 0, true);
        acc[d] = cur[match >> 6] >> (match & 63) & 1;
    }
    sl_free(cur);
    for (int d = 0; d < b.n; d++) /* reverse edges, counted then placed */
        for (int k = 0; k < n_classes; k++)
            if (raw[(size_t)d * n_classes + k] != SL_REDFA_DEAD) rev_n[raw[(size_t)d * n_classes + k] + 1]++;
    for (int d = 0; d < b.n; d++) rev_n[d + 1] += rev_n[d];
    for (int d = 0; d < b.n; d++) map[d] = rev_n[d];
    for (int d = 0; d < b.n; d++)
        for (int k = 0; k < n_classes; k++) {
            const uint16_t t = raw[(size_t)d * n_classes + k];
            if (t != SL_REDFA_DEAD) rev[map[t]++] = d;
        }
    int qh = 0, qt = 0;
    for (int d = 0; d < b.n; d++) {
        map[d] = -1;
        if (acc[d]) queue[qt++] = d, map[d] = 0;
    }
    while (qh < qt) {
        const int d = queue[qh++];
        for (int e = rev_n[d]; e < rev_n[d + 1]; e++)
            if (map[rev[e]] < 0) map[rev[e]] = 0, queue[qt++] = rev[e];
    }
    if (map[0] < 0) {
        st = SL_FAIL(SL_ERR_INVALID, "the pattern matches no string");
        goto done;
    }
    int live = 0;
    for (int d = 0; d < b.n; d++)
        if (map[d] == 0) map[d] = live++;
    if (live > max_states) {
        st = SL_FAIL(SL_ERR_INVALID, "the pattern needs more than %d automaton states", max_states);
        goto done;
    }
    out->n = live;
    out->next = sl_alloc_array((size_t)live * 256, sizeof(uint16_t));
    out->accept = sl_calloc((size_t)live, 1);
    if (!out->next || !out->accept) goto nomem;
    for (int d = 0; d < b.n; d++) {
        if (map[d] < 0) continue;
        out->accept[map[d]] = acc[d];
        for (int c = 0; c < 256; c++) {
            const uint16_t t = raw[(size_t)d * n_classes + klass[c]];
            out->next[(size_t)map[d] * 256 + (size_t)c] = t == SL_REDFA_DEAD || map[t] < 0 ? SL_REDFA_DEAD : (uint16_t)map[t];
        }
    }
    if (!char_distances(out)) goto nomem;
    goto done;
nomem:
    st = SL_FAIL(SL_ERR_NOMEM, "out of memory compiling a pattern");
done:
    if (st != SL_OK) sl_redfa_free(out);
    sl_free(ps.t);
    sl_free(m.s);
    sl_free(b.sets);
    sl_free(b.hash);
    sl_free(b.stack);
    sl_free(raw);
    sl_free(acc);
    sl_free(rev_n);
    sl_free(rev);
    sl_free(queue);
    sl_free(map);
    return st;
}

void sl_redfa_free(sl_redfa *d) {
    sl_free(d->next);
    sl_free(d->accept);
    sl_free(d->min_chars);
    sl_free(d->max_chars);
    memset(d, 0, sizeof *d);
}

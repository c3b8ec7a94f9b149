/*
 * grammar.c — GBNF grammars: the parser and compiler, the pushdown
 * recognizer that follows the output, and the token mask over a trie of the
 * vocabulary's texts (grammar.h says what is accepted).
 *
 * Compiled form: every rule's alternatives are runs of symbols in sym[],
 * each ending with S_END; a symbol is a terminal (a character class) or a
 * reference to a rule. Repetitions become rules of their own (x* is
 * R ::= x R | "", x? is R ::= x | "", x{2,4} is x x R2 with R2 ::= x R1 | ""
 * and R1 ::= x | ""), as do groups and literals that a repetition applies to.
 *
 * A reading of the output is a stack of positions in sym[]: the top is the
 * next terminal to match, each node below it where to go on once the rule
 * above is done. Stacks are linked lists of nodes (pos, parent) in the
 * state's arena, so readings that split share what lies under the split; a
 * node is never changed once made. An empty stack (NONE) is a reading that
 * has read a whole sentence. Taking a character keeps the stacks whose top
 * class holds it, steps past it, and expands each until a terminal is on
 * top again (entering rules, leaving finished ones).
 */
#include "engine/grammar.h"

#include "core/alloc.h"
#include "core/strbuf.h"
#include "core/status.h"
#include "tokenizer/tokenizer.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#define NONE UINT32_MAX
enum { S_END = 0, S_TERM = 1, S_RULE = 2, S_TOKEN = 3 };
#define SYM(kind, v) ((uint32_t)(v) << 2 | (uint32_t)(kind))
#define KIND(s) ((s) & 3u)
#define VAL(s) ((s) >> 2)
#define MAX_NESTING 64
#define MASK_MEMO 4

typedef struct cclass {
    uint32_t off, n; /* its ranges: rng[2 * off, 2 * (off + n)) as (lo, hi) pairs, sorted and merged */
    bool neg;        /* [^...] (and `.`: negated, no range) */
} cclass;

struct sl_grammar {
    _Atomic int refs;
    uint32_t *sym;  /* (n_sym) every rule's alternatives, each a run of symbols ending in S_END */
    uint32_t *alt;  /* (n_alt) where each alternative starts in sym */
    uint32_t *roff; /* (n_rules + 1) rule r's alternatives are alt[roff[r], roff[r + 1]) */
    cclass *cls;    /* (n_cls) */
    uint32_t *rng;  /* (2 * n_rng) */
    int32_t *tok;   /* (2 * n_tok) token references: the id, and 1 when negated (!<...>: any token but it) */
    uint32_t n_sym, n_alt, n_rules, n_cls, n_rng, n_tok;
    uint32_t root;
};

/* ---- growable arrays of uint32 ------------------------------------------ */

typedef struct u32v {
    uint32_t *v;
    uint32_t n, cap;
} u32v;

static bool u32v_reserve(u32v *a, uint32_t more) {
    if (a->cap - a->n >= more) return true;
    if ((uint64_t)a->n + more > UINT32_MAX / 2) return false;
    uint32_t cap = a->cap ? a->cap : 16;
    while (cap - a->n < more) cap *= 2;
    uint32_t *v = sl_realloc(a->v, (size_t)cap * sizeof *v);
    if (!v) return false;
    a->v = v;
    a->cap = cap;
    return true;
}
static bool u32v_push(u32v *a, uint32_t x) {
    if (!u32v_reserve(a, 1)) return false;
    a->v[a->n++] = x;
    return true;
}

/* ---- the parser ------------------------------------------------------------ */

typedef struct brule {
    const char *name; /* NULL: made by the compiler (a group or repetition) */
    size_t len;
    const char *used_at; /* where it was first named (for "not defined") */
    uint32_t owner;      /* the named rule whose body made it (itself when named) */
    bool defined;
    u32v body; /* alternatives, each ending with S_END */
} brule;

typedef struct parser {
    const char *text, *p, *end;
    brule *rules;
    uint32_t n_rules, cap_rules;
    uint32_t *names; /* the named rules by their names' hashes (open addressing; rule + 1, 0: free) */
    uint32_t n_named, cap_names;
    cclass *cls;
    uint32_t n_cls, cap_cls;
    u32v rng;
    u32v tok;                /* token references (id, negated) */
    const sl_tokenizer *vocab; /* resolves them (NULL: refused) */
    uint64_t n_sym; /* symbols written so far (bounded by SL_GRAM_MAX_SYMBOLS) */
    uint32_t cur;   /* the named rule being read */
    int depth;
    sl_status st;
} parser;

static bool fail_at(parser *ps, const char *at, sl_status st, const char *fmt, ...) SL_PRINTF(4, 5);
static bool fail_at(parser *ps, const char *at, sl_status st, const char *fmt, ...) {
    if (ps->st) return false;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int line = 1, col = 1;
    for (const char *q = ps->text; q < at && q < ps->end; q++) {
        if (*q == '\n') line++, col = 1;
        else if (((uint8_t)*q & 0xC0) != 0x80) col++;
    }
    ps->st = SL_FAIL(st, "grammar: %s at line %d, column %d", msg, line, col);
    return false;
}
static bool nomem(parser *ps) { return fail_at(ps, ps->p, SL_ERR_NOMEM, "out of memory"); }

static bool is_word(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Blanks and comments; line ends too where nl is set. */
static void space(parser *ps, bool nl) {
    while (ps->p < ps->end) {
        const char c = *ps->p;
        if (c == ' ' || c == '\t' || (nl && (c == '\n' || c == '\r'))) {
            ps->p++;
        } else if (c == '#') {
            while (ps->p < ps->end && *ps->p != '\n' && *ps->p != '\r') ps->p++;
        } else {
            break;
        }
    }
}

static const char *rule_name(const parser *ps, uint32_t r, int *len) {
    const brule *b = &ps->rules[ps->rules[r].owner];
    *len = (int)b->len;
    return b->name;
}

static bool new_rule(parser *ps, const char *name, size_t len, uint32_t *id) {
    if (ps->n_rules == ps->cap_rules) {
        const uint32_t cap = ps->cap_rules ? 2 * ps->cap_rules : 32;
        brule *r = sl_realloc(ps->rules, (size_t)cap * sizeof *r);
        if (!r) return nomem(ps);
        ps->rules = r;
        ps->cap_rules = cap;
    }
    *id = ps->n_rules++;
    ps->rules[*id] = (brule){.name = name, .len = len, .used_at = name ? name : ps->p, .owner = name ? *id : ps->cur};
    return true;
}

static uint32_t name_hash(const char *name, size_t len) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)name[i]) * 16777619u;
    return h;
}

/* The rule named text[0, len), made (not yet defined) at its first mention. */
static bool named_rule(parser *ps, const char *name, size_t len, uint32_t *id) {
    if (2 * (ps->n_named + 1) > ps->cap_names) { /* at most half full: rehash into twice the slots */
        const uint32_t cap = ps->cap_names ? 2 * ps->cap_names : 64;
        uint32_t *t = sl_calloc(cap, sizeof *t);
        if (!t) return nomem(ps);
        for (uint32_t i = 0; i < ps->cap_names; i++) {
            if (!ps->names[i]) continue;
            const brule *b = &ps->rules[ps->names[i] - 1];
            uint32_t k = name_hash(b->name, b->len) & (cap - 1);
            while (t[k]) k = (k + 1) & (cap - 1);
            t[k] = ps->names[i];
        }
        sl_free(ps->names);
        ps->names = t;
        ps->cap_names = cap;
    }
    uint32_t k = name_hash(name, len) & (ps->cap_names - 1);
    for (; ps->names[k]; k = (k + 1) & (ps->cap_names - 1)) {
        const brule *b = &ps->rules[ps->names[k] - 1];
        if (b->len == len && !memcmp(b->name, name, len)) {
            *id = ps->names[k] - 1;
            return true;
        }
    }
    if (!new_rule(ps, name, len, id)) return false;
    ps->names[k] = *id + 1;
    ps->n_named++;
    return true;
}

static bool emit(parser *ps, uint32_t rule, uint32_t sym) {
    if (++ps->n_sym > SL_GRAM_MAX_SYMBOLS)
        return fail_at(ps, ps->p, SL_ERR_INVALID, "the grammar expands to more than %d symbols", SL_GRAM_MAX_SYMBOLS);
    return u32v_push(&ps->rules[rule].body, sym) || nomem(ps);
}

/* A class of n (lo, hi) pairs (sorted and merged here). */
static bool new_class(parser *ps, uint32_t *pairs, uint32_t n, bool neg, uint32_t *id) {
    for (uint32_t i = 1; i < n; i++) /* insertion sort by lo: classes are short */
        for (uint32_t j = i; j > 0 && pairs[2 * j] < pairs[2 * j - 2]; j--) {
            const uint32_t lo = pairs[2 * j], hi = pairs[2 * j + 1];
            pairs[2 * j] = pairs[2 * j - 2], pairs[2 * j + 1] = pairs[2 * j - 1];
            pairs[2 * j - 2] = lo, pairs[2 * j - 1] = hi;
        }
    if (ps->n_cls == ps->cap_cls) {
        const uint32_t cap = ps->cap_cls ? 2 * ps->cap_cls : 64;
        cclass *c = sl_realloc(ps->cls, (size_t)cap * sizeof *c);
        if (!c) return nomem(ps);
        ps->cls = c;
        ps->cap_cls = cap;
    }
    const uint32_t off = ps->rng.n / 2;
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t lo = pairs[2 * i], hi = pairs[2 * i + 1];
        if (m > 0 && lo <= ps->rng.v[ps->rng.n - 1] + 1) { /* overlaps or touches the last one: merge */
            if (hi > ps->rng.v[ps->rng.n - 1]) ps->rng.v[ps->rng.n - 1] = hi;
            continue;
        }
        if (!u32v_push(&ps->rng, lo) || !u32v_push(&ps->rng, hi)) return nomem(ps);
        m++;
    }
    *id = ps->n_cls++;
    ps->cls[*id] = (cclass){.off = off, .n = m, .neg = neg};
    return true;
}

/* One character of a literal or class (an escape or a UTF-8 character) at ps->p. */
static bool read_char(parser *ps, uint32_t *cp) {
    const char *at = ps->p;
    if (*ps->p != '\\') {
        utf8proc_int32_t c;
        const utf8proc_ssize_t k = utf8proc_iterate((const uint8_t *)ps->p, ps->end - ps->p, &c);
        if (k <= 0) return fail_at(ps, at, SL_ERR_INVALID, "invalid UTF-8");
        ps->p += k;
        *cp = (uint32_t)c;
        return true;
    }
    if (++ps->p >= ps->end) return fail_at(ps, at, SL_ERR_INVALID, "an escape '\\' at the end of the text");
    const char e = *ps->p++;
    int digits = 0;
    switch (e) {
    case 'n': *cp = '\n'; return true;
    case 'r': *cp = '\r'; return true;
    case 't': *cp = '\t'; return true;
    case '\\': case '"': case '[': case ']': case '-': case '/': case '\'': *cp = (uint8_t)e; return true;
    case 'x': digits = 2; break;
    case 'u': digits = 4; break;
    case 'U': digits = 8; break;
    default:
        if ((uint8_t)e < 0x20 || (uint8_t)e >= 0x7F) return fail_at(ps, at, SL_ERR_INVALID, "unknown escape");
        return fail_at(ps, at, SL_ERR_INVALID, "unknown escape '\\%c'", e);
    }
    uint64_t v = 0;
    for (int i = 0; i < digits; i++) {
        const int h = ps->p < ps->end ? sl_hex_digit(*ps->p) : -1;
        if (h < 0) return fail_at(ps, at, SL_ERR_INVALID, "'\\%c' needs %d hexadecimal digits", e, digits);
        v = v * 16 + (uint64_t)h;
        ps->p++;
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return fail_at(ps, at, SL_ERR_INVALID, "'\\%c' escape of U+%llX, which is no Unicode character", e,
                       (unsigned long long)v);
    *cp = (uint32_t)v;
    return true;
}

/* "literal": one terminal per character. */
static bool literal(parser *ps, uint32_t rule) {
    const char *at = ps->p++;
    while (ps->p < ps->end && *ps->p != '"') {
        uint32_t cp, pair[2], id;
        if (!read_char(ps, &cp)) return false;
        pair[0] = pair[1] = cp;
        if (!new_class(ps, pair, 1, false, &id) || !emit(ps, rule, SYM(S_TERM, id))) return false;
    }
    if (ps->p >= ps->end) return fail_at(ps, at, SL_ERR_INVALID, "a literal without its closing '\"'");
    ps->p++;
    return true;
}

/* [class] */
static bool char_class(parser *ps, uint32_t rule) {
    const char *at = ps->p++;
    const bool neg = ps->p < ps->end && *ps->p == '^';
    if (neg) ps->p++;
    u32v pairs = {0};
    bool ok = true;
    while (ok && ps->p < ps->end && *ps->p != ']') {
        uint32_t lo, hi;
        const char *r = ps->p;
        ok = read_char(ps, &lo);
        hi = lo;
        if (ok && ps->p + 1 < ps->end && *ps->p == '-' && ps->p[1] != ']') {
            ps->p++;
            ok = read_char(ps, &hi);
            if (ok && hi < lo) ok = fail_at(ps, r, SL_ERR_INVALID, "the range U+%X-U+%X is empty", lo, hi);
        }
        if (ok && !(u32v_push(&pairs, lo) && u32v_push(&pairs, hi))) ok = nomem(ps);
    }
    if (ok && ps->p >= ps->end) ok = fail_at(ps, at, SL_ERR_INVALID, "a character class without its closing ']'");
    uint32_t id;
    if (ok) ps->p++;
    ok = ok && new_class(ps, pairs.v, pairs.n / 2, neg, &id) && emit(ps, rule, SYM(S_TERM, id));
    sl_free(pairs.v);
    return ok;
}

static bool read_uint(parser *ps, uint32_t *v) {
    const char *at = ps->p;
    uint64_t x = 0;
    if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return fail_at(ps, at, SL_ERR_INVALID, "expected a number");
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
        x = x * 10 + (uint64_t)(*ps->p++ - '0');
        if (x > SL_GRAM_MAX_REPEAT)
            return fail_at(ps, at, SL_ERR_INVALID, "a repetition bound above %d", SL_GRAM_MAX_REPEAT);
    }
    *v = (uint32_t)x;
    return true;
}

/* <[id]> or <text> (one token of the vocabulary, control tokens included), or either after '!' (any token
 * but it). */
static bool token_ref(parser *ps, uint32_t rule) {
    const char *at = ps->p;
    const bool neg = *ps->p == '!';
    ps->p += neg ? 2 : 1;
    const char *close = memchr(ps->p, '>', (size_t)(ps->end - ps->p));
    if (!close) return fail_at(ps, at, SL_ERR_INVALID, "a token reference '<' without its '>'");
    if (!ps->vocab) return fail_at(ps, at, SL_ERR_UNSUPPORTED, "token references (<...>) need the model's vocabulary");
    const int32_t n_vocab = sl_tokenizer_n_vocab(ps->vocab);
    int64_t id = -1;
    const size_t n = (size_t)(close - ps->p);
    if (n >= 2 && ps->p[0] == '[' && close[-1] == ']') {
        bool ok = n > 2;
        id = 0;
        for (const char *q = ps->p + 1; q < close - 1 && ok; q++) {
            ok = *q >= '0' && *q <= '9' && id < n_vocab;
            id = id * 10 + (*q - '0');
        }
        if (!ok || id >= n_vocab)
            return fail_at(ps, at, SL_ERR_INVALID, "'<[%.*s]>' is no token id of the vocabulary [0, %d)",
                           (int)(n - 2 < 32 ? n - 2 : 32), ps->p + 1, n_vocab);
    } else {
        int32_t *ids = NULL;
        size_t k = 0; /* the brackets are part of the token's text (<think>, <|im_end|>) */
        if (sl_tokenize(ps->vocab, ps->p - 1, n + 2, false, true, &ids, &k) != SL_OK) {
            sl_free(ids);
            return fail_at(ps, at, SL_ERR_INVALID, "'<%.*s>' cannot be tokenized", (int)(n < 64 ? n : 64), ps->p);
        }
        if (k == 1) id = ids[0];
        sl_free(ids);
        if (k != 1)
            return fail_at(ps, at, SL_ERR_INVALID, "'<%.*s>' is %zu tokens of the vocabulary, not one",
                           (int)(n < 64 ? n : 64), ps->p, k);
    }
    const uint32_t idx = ps->tok.n / 2;
    if (!u32v_push(&ps->tok, (uint32_t)id) || !u32v_push(&ps->tok, neg)) return nomem(ps);
    ps->p = close + 1;
    return emit(ps, rule, SYM(S_TOKEN, idx));
}

/* The item body[last, n) of `rule` repeated min to max times (max NONE: no limit). */
static bool repeat(parser *ps, uint32_t rule, uint32_t last, uint32_t min, uint32_t max) {
    u32v *body = &ps->rules[rule].body;
    const uint32_t n_item = body->n - last;
    if (n_item == 0) return true; /* "" repeated is still "" */
    uint32_t x, sub;
    if (n_item == 1) {
        x = body->v[last];
    } else { /* several symbols (a literal): a rule of their own */
        if (!new_rule(ps, NULL, 0, &sub)) return false;
        body = &ps->rules[rule].body;
        for (uint32_t i = last; i < body->n; i++)
            if (!u32v_push(&ps->rules[sub].body, body->v[i])) return nomem(ps);
        if (!u32v_push(&ps->rules[sub].body, S_END)) return nomem(ps);
        x = SYM(S_RULE, sub);
    }
    ps->rules[rule].body.n = last;
    for (uint32_t i = 0; i < min; i++)
        if (!emit(ps, rule, x)) return false;
    if (max == NONE) { /* R ::= x R | "" */
        uint32_t star;
        if (!new_rule(ps, NULL, 0, &star)) return false;
        if (!emit(ps, star, x) || !emit(ps, star, SYM(S_RULE, star)) || !emit(ps, star, S_END) || !emit(ps, star, S_END))
            return false;
        return emit(ps, rule, SYM(S_RULE, star));
    }
    uint32_t prev = NONE; /* R_k ::= x R_{k-1} | "" with R_1 ::= x | "" */
    for (uint32_t k = min; k < max; k++) {
        uint32_t opt;
        if (!new_rule(ps, NULL, 0, &opt) || !emit(ps, opt, x)) return false;
        if (prev != NONE && !emit(ps, opt, SYM(S_RULE, prev))) return false;
        if (!emit(ps, opt, S_END) || !emit(ps, opt, S_END)) return false;
        prev = opt;
    }
    return prev == NONE || emit(ps, rule, SYM(S_RULE, prev));
}

static bool alternatives(parser *ps, uint32_t rule, bool nested);

/* One alternative: items and their repetitions, up to '|', ')' or (not nested) the end of the line. */
static bool sequence(parser *ps, uint32_t rule, bool nested) {
    uint32_t last = NONE; /* where the last item's symbols start */
    while (ps->p < ps->end) {
        const char c = *ps->p;
        const uint32_t here = ps->rules[rule].body.n;
        if (c == '"') {
            if (!literal(ps, rule)) return false;
            last = here;
        } else if (c == '[') {
            if (!char_class(ps, rule)) return false;
            last = here;
        } else if (c == '.') {
            uint32_t id;
            ps->p++;
            if (!new_class(ps, NULL, 0, true, &id) || !emit(ps, rule, SYM(S_TERM, id))) return false;
            last = here;
        } else if (is_word(c)) {
            const char *name = ps->p;
            while (ps->p < ps->end && is_word(*ps->p)) ps->p++;
            uint32_t id;
            if (!named_rule(ps, name, (size_t)(ps->p - name), &id) || !emit(ps, rule, SYM(S_RULE, id))) return false;
            last = here;
        } else if (c == '(') {
            const char *at = ps->p++;
            if (++ps->depth > MAX_NESTING)
                return fail_at(ps, at, SL_ERR_INVALID, "groups nested more than %d deep", MAX_NESTING);
            uint32_t sub;
            space(ps, true);
            if (!new_rule(ps, NULL, 0, &sub) || !alternatives(ps, sub, true)) return false;
            if (ps->p >= ps->end || *ps->p != ')') return fail_at(ps, at, SL_ERR_INVALID, "a '(' without its ')'");
            ps->p++;
            ps->depth--;
            if (!emit(ps, rule, SYM(S_RULE, sub))) return false;
            last = here;
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            const char *at = ps->p++;
            if (last == NONE) return fail_at(ps, at, SL_ERR_INVALID, "'%c' repeats nothing", c);
            uint32_t min = c == '+' ? 1 : 0, max = c == '?' ? 1 : NONE;
            if (c == '{') {
                space(ps, false);
                if (ps->p < ps->end && *ps->p != ',' && !read_uint(ps, &min)) return false;
                space(ps, false);
                if (ps->p < ps->end && *ps->p == ',') {
                    ps->p++;
                    space(ps, false);
                    if (ps->p < ps->end && *ps->p != '}' && !read_uint(ps, &max)) return false;
                } else {
                    max = min;
                }
                space(ps, false);
                if (ps->p >= ps->end || *ps->p != '}')
                    return fail_at(ps, at, SL_ERR_INVALID, "a repetition '{' without its '}'");
                ps->p++;
                if (max != NONE && max < min)
                    return fail_at(ps, at, SL_ERR_INVALID, "the repetition {%u,%u} has its bounds the wrong way round",
                                   min, max);
            }
            if (!repeat(ps, rule, last, min, max)) return false;
        } else if (c == '<' || (c == '!' && ps->p + 1 < ps->end && ps->p[1] == '<')) {
            if (!token_ref(ps, rule)) return false;
            last = here;
        } else {
            break;
        }
        space(ps, nested);
    }
    return emit(ps, rule, S_END);
}

static bool alternatives(parser *ps, uint32_t rule, bool nested) {
    if (!sequence(ps, rule, nested)) return false;
    while (ps->p < ps->end && *ps->p == '|') {
        ps->p++;
        space(ps, true);
        if (!sequence(ps, rule, nested)) return false;
    }
    return true;
}

/* ---- compiling: link the rules, refuse left recursion --------------------- */

/* Rules that can match "" (a fixpoint over the alternatives). */
static bool *nullable_rules(const sl_grammar *g) {
    bool *nul = sl_calloc(g->n_rules ? g->n_rules : 1, sizeof *nul);
    if (!nul) return NULL;
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t r = 0; r < g->n_rules; r++) {
            if (nul[r]) continue;
            for (uint32_t a = g->roff[r]; a < g->roff[r + 1] && !nul[r]; a++) {
                uint32_t p = g->alt[a];
                while (KIND(g->sym[p]) == S_RULE && nul[VAL(g->sym[p])]) p++;
                if (KIND(g->sym[p]) == S_END) nul[r] = changed = true;
            }
        }
    }
    return nul;
}

/* A rule that reaches itself through rules entered before any character is read (a cycle of "left" edges:
 * r -> s where s comes in an alternative of r after nullable rules only); NONE when there is none, NONE - 1
 * when out of memory. Depth-first over the edges, with an explicit stack. */
static uint32_t left_recursive(const sl_grammar *g, const bool *nul) {
    u32v edges = {0};
    uint32_t *eoff = sl_alloc_array((size_t)g->n_rules + 1, sizeof *eoff);
    uint8_t *color = sl_calloc((size_t)g->n_rules + 1, 1); /* 0 new, 1 on the path, 2 done */
    uint32_t *stk = sl_alloc_array(2 * (size_t)g->n_rules + 2, sizeof *stk);
    uint32_t found = NONE - 1;
    if (!eoff || !color || !stk) goto out;
    for (uint32_t r = 0; r < g->n_rules; r++) {
        eoff[r] = edges.n;
        for (uint32_t a = g->roff[r]; a < g->roff[r + 1]; a++)
            for (uint32_t p = g->alt[a]; KIND(g->sym[p]) == S_RULE; p++) {
                if (!u32v_push(&edges, VAL(g->sym[p]))) goto out;
                if (!nul[VAL(g->sym[p])]) break;
            }
    }
    eoff[g->n_rules] = edges.n;
    found = NONE;
    for (uint32_t r0 = 0; r0 < g->n_rules && found == NONE; r0++) {
        if (color[r0]) continue;
        uint32_t n = 0;
        stk[n++] = r0, stk[n++] = eoff[r0];
        color[r0] = 1;
        while (n > 0 && found == NONE) {
            const uint32_t r = stk[n - 2];
            if (stk[n - 1] == eoff[r + 1]) { /* every edge of r followed */
                color[r] = 2;
                n -= 2;
                continue;
            }
            const uint32_t next = edges.v[stk[n - 1]++];
            if (color[next] == 1) {
                found = next;
            } else if (color[next] == 0) {
                color[next] = 1;
                stk[n++] = next, stk[n++] = eoff[next];
            }
        }
    }
out:
    sl_free(edges.v);
    sl_free(eoff);
    sl_free(color);
    sl_free(stk);
    return found;
}

static void free_parser(parser *ps) {
    for (uint32_t i = 0; i < ps->n_rules; i++) sl_free(ps->rules[i].body.v);
    sl_free(ps->rules);
    sl_free(ps->names);
    sl_free(ps->cls);
    sl_free(ps->rng.v);
    sl_free(ps->tok.v);
}

sl_status sl_grammar_compile(const char *text, size_t len, sl_grammar **out) {
    return sl_grammar_compile_vocab(text, len, NULL, out);
}

sl_status sl_grammar_compile_vocab(const char *text, size_t len, const sl_tokenizer *vocab, sl_grammar **out) {
    *out = NULL;
    parser ps = {.text = text, .p = text, .end = text + len, .vocab = vocab};
    sl_grammar *g = NULL;
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        fail_at(&ps, nul, SL_ERR_INVALID, "a NUL byte");
        goto fail;
    }
    space(&ps, true);
    while (ps.p < ps.end) {
        const char *name = ps.p;
        while (ps.p < ps.end && is_word(*ps.p)) ps.p++;
        if (ps.p == name) {
            fail_at(&ps, name, SL_ERR_INVALID, "expected a rule name");
            goto fail;
        }
        const size_t nlen = (size_t)(ps.p - name);
        space(&ps, false);
        if (ps.end - ps.p < 3 || memcmp(ps.p, "::=", 3) != 0) {
            fail_at(&ps, ps.p, SL_ERR_INVALID, "expected '::=' after the rule name '%.*s'", (int)nlen, name);
            goto fail;
        }
        ps.p += 3;
        uint32_t r;
        if (!named_rule(&ps, name, nlen, &r)) goto fail;
        if (ps.rules[r].defined) {
            fail_at(&ps, name, SL_ERR_INVALID, "the rule '%.*s' is defined twice", (int)nlen, name);
            goto fail;
        }
        ps.rules[r].defined = true;
        ps.cur = r;
        space(&ps, true);
        if (!alternatives(&ps, r, false)) goto fail;
        if (ps.p < ps.end && *ps.p != '\n' && *ps.p != '\r') {
            if (*ps.p == ')') fail_at(&ps, ps.p, SL_ERR_INVALID, "a ')' without its '('");
            else fail_at(&ps, ps.p, SL_ERR_INVALID, "unexpected '%c' in the rule '%.*s'", *ps.p, (int)nlen, name);
            goto fail;
        }
        space(&ps, true);
    }
    uint32_t root = NONE;
    for (uint32_t i = 0; i < ps.n_rules; i++) {
        const brule *b = &ps.rules[i];
        if (b->name && !b->defined) {
            fail_at(&ps, b->used_at, SL_ERR_INVALID, "the rule '%.*s' is used but not defined", (int)b->len, b->name);
            goto fail;
        }
        if (b->name && b->len == 4 && !memcmp(b->name, "root", 4)) root = i;
    }
    if (root == NONE) {
        fail_at(&ps, ps.end, SL_ERR_INVALID, "there is no rule named 'root'");
        goto fail;
    }
    g = sl_calloc(1, sizeof *g);
    if (!g) goto oom;
    atomic_init(&g->refs, 1);
    g->n_rules = ps.n_rules;
    g->root = root;
    uint64_t n_sym = 0, n_alt = 0;
    for (uint32_t i = 0; i < ps.n_rules; i++) {
        n_sym += ps.rules[i].body.n;
        for (uint32_t k = 0; k < ps.rules[i].body.n; k++) n_alt += ps.rules[i].body.v[k] == S_END;
    }
    g->sym = sl_alloc_array(n_sym + 1, sizeof *g->sym);
    g->alt = sl_alloc_array(n_alt + 1, sizeof *g->alt);
    g->roff = sl_alloc_array((size_t)ps.n_rules + 1, sizeof *g->roff);
    if (!g->sym || !g->alt || !g->roff) goto oom;
    for (uint32_t i = 0; i < ps.n_rules; i++) {
        const u32v *b = &ps.rules[i].body;
        g->roff[i] = g->n_alt;
        for (uint32_t k = 0; k < b->n; k++) {
            if (k == 0 || b->v[k - 1] == S_END) g->alt[g->n_alt++] = g->n_sym;
            g->sym[g->n_sym++] = b->v[k];
        }
    }
    g->roff[ps.n_rules] = g->n_alt;
    g->cls = ps.cls;
    g->n_cls = ps.n_cls;
    g->rng = ps.rng.v;
    g->n_rng = ps.rng.n / 2;
    g->tok = (int32_t *)ps.tok.v;
    g->n_tok = ps.tok.n / 2;
    ps.cls = NULL;
    ps.rng.v = NULL;
    ps.tok.v = NULL;
    bool *nulr = nullable_rules(g);
    if (!nulr) goto oom;
    const uint32_t lr = left_recursive(g, nulr);
    sl_free(nulr);
    if (lr == NONE - 1) goto oom;
    if (lr != NONE) {
        int n;
        const char *name = rule_name(&ps, lr, &n);
        fail_at(&ps, ps.rules[ps.rules[lr].owner].used_at, SL_ERR_INVALID,
                "the rule '%.*s' is left-recursive (it can reach itself before reading a character)", n, name);
        goto fail;
    }
    free_parser(&ps);
    *out = g;
    return SL_OK;
oom:
    nomem(&ps);
fail:
    free_parser(&ps);
    sl_grammar_release(g);
    return ps.st;
}

sl_grammar *sl_grammar_retain(sl_grammar *g) {
    if (g) atomic_fetch_add(&g->refs, 1);
    return g;
}

void sl_grammar_release(sl_grammar *g) {
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1) return;
    sl_free(g->sym);
    sl_free(g->alt);
    sl_free(g->roff);
    sl_free(g->cls);
    sl_free(g->rng);
    sl_free(g->tok);
    sl_free(g);
}

/* ---- the recognizer ------------------------------------------------------- */

typedef struct gnode {
    uint32_t pos;    /* the next symbol to match (a terminal at the top of a stack) */
    uint32_t parent; /* the node below (NONE: the bottom) */
    uint64_t hash;   /* of the positions from here down: equal stacks, equal hashes */
} gnode;

#define DEDUP_SLOTS (2 * SL_GRAM_MAX_STACKS)

struct sl_gram_state {
    const sl_grammar *g;
    gnode *node; /* (n_node) the arena of stack nodes */
    uint32_t n_node, cap_node;
    u32v top;          /* sets of stacks (their top nodes; NONE: empty), one after another */
    uint32_t cur, n_cur; /* the current set: top.v[cur, cur + n_cur) */
    uint32_t cp;       /* a character begun: its bits so far */
    uint8_t need;      /* continuation bytes still due */
    uint8_t lo, hi;    /* the next one's range */
    u32v work;         /* expansion's pending (pos, parent) pairs */
    struct {
        uint32_t stamp, idx; /* a stack of the set being built (stamp == s->stamp): top.v[idx] */
    } dedup[DEDUP_SLOTS];    /* open addressing by the stacks' hashes */
    uint32_t stamp;          /* which set is being built */
    gnode *spare;      /* compaction: the other arena */
    uint32_t cap_spare;
    uint32_t *map;     /* compaction: old node -> new */
    uint32_t cap_map;
    /* The last masks (sl_gram_guide_mask), by the states they were made for: a state met again (inside a
     * string, every character leaves the same stacks) takes its mask from here. */
    struct memo {
        u32v sig;       /* the state (signature()) */
        uint8_t *allow; /* (n_vocab bits) */
        int32_t n_vocab, allowed;
        uint64_t used;  /* for the least recently used one to go */
    } memo[MASK_MEMO];
    uint64_t tick;
    u32v sig; /* scratch */
};

/* Everything a byte changes, to undo it. */
typedef struct mark {
    uint32_t n_node, n_top, cur, n_cur, cp;
    uint8_t need, lo, hi;
} mark;

static mark save(const sl_gram_state *s) {
    return (mark){s->n_node, s->top.n, s->cur, s->n_cur, s->cp, s->need, s->lo, s->hi};
}
static void restore(sl_gram_state *s, mark m) {
    s->n_node = m.n_node, s->top.n = m.n_top, s->cur = m.cur, s->n_cur = m.n_cur;
    s->cp = m.cp, s->need = m.need, s->lo = m.lo, s->hi = m.hi;
}

static uint32_t new_node(sl_gram_state *s, uint32_t pos, uint32_t parent) {
    if (s->n_node == s->cap_node) {
        if (s->cap_node >= UINT32_MAX / 4) return NONE;
        const uint32_t cap = s->cap_node ? 2 * s->cap_node : 256;
        gnode *n = sl_realloc(s->node, (size_t)cap * sizeof *n);
        if (!n) return NONE;
        s->node = n;
        s->cap_node = cap;
    }
    uint64_t h = (parent == NONE ? 0x9E3779B97F4A7C15ull : s->node[parent].hash) ^ ((uint64_t)pos + 1) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 31;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 29;
    s->node[s->n_node] = (gnode){pos, parent, h};
    return s->n_node++;
}

static bool same_stack(const sl_gram_state *s, uint32_t a, uint32_t b) {
    while (a != b) {
        if (a == NONE || b == NONE || s->node[a].pos != s->node[b].pos) return false;
        a = s->node[a].parent;
        b = s->node[b].parent;
    }
    return true;
}

/* A new set is built from here on (its stacks deduplicated apart from every earlier set's). */
static void new_set(sl_gram_state *s) {
    if (++s->stamp == 0) { /* wrapped: no slot may look current */
        memset(s->dedup, 0, sizeof s->dedup);
        s->stamp = 1;
    }
}

/* Add stack id to the set being built (top.v[from, n), since new_set) unless it holds it already or is
 * full. */
static bool add_top(sl_gram_state *s, uint32_t from, uint32_t id) {
    const uint64_t h = id == NONE ? 0 : s->node[id].hash;
    uint32_t slot = (uint32_t)(h ^ h >> 32) & (DEDUP_SLOTS - 1);
    for (;; slot = (slot + 1) & (DEDUP_SLOTS - 1)) {
        if (s->dedup[slot].stamp != s->stamp) break;
        const uint32_t t = s->top.v[s->dedup[slot].idx];
        if ((t == NONE ? 0 : s->node[t].hash) == h && same_stack(s, t, id)) return true;
    }
    if (s->top.n - from >= SL_GRAM_MAX_STACKS) return true;
    s->dedup[slot].stamp = s->stamp;
    s->dedup[slot].idx = s->top.n;
    return u32v_push(&s->top, id);
}

/* The stacks that (pos, parent) stands for with a terminal on top (or empty), added to the set being built. */
static bool expand(sl_gram_state *s, uint32_t from, uint32_t pos, uint32_t parent) {
    const sl_grammar *g = s->g;
    s->work.n = 0;
    if (!u32v_push(&s->work, pos) || !u32v_push(&s->work, parent)) return false;
    while (s->work.n > 0) {
        parent = s->work.v[--s->work.n];
        pos = s->work.v[--s->work.n];
        for (;;) {
            const uint32_t sy = g->sym[pos];
            if (KIND(sy) == S_END) { /* the rule is done: go on below */
                if (parent == NONE) {
                    if (!add_top(s, from, NONE)) return false;
                    break;
                }
                pos = s->node[parent].pos;
                parent = s->node[parent].parent;
                continue;
            }
            if (KIND(sy) == S_TERM || KIND(sy) == S_TOKEN) {
                const uint32_t id = new_node(s, pos, parent);
                if (id == NONE || !add_top(s, from, id)) return false;
                break;
            }
            /* a rule: each alternative, then what follows the reference (nothing: straight to the parent) */
            const uint32_t r = VAL(sy);
            uint32_t cont = parent;
            if (KIND(g->sym[pos + 1]) != S_END && (cont = new_node(s, pos + 1, parent)) == NONE) return false;
            if (!u32v_reserve(&s->work, 2 * (g->roff[r + 1] - g->roff[r]))) return false;
            for (uint32_t a = g->roff[r + 1]; a-- > g->roff[r];) {
                s->work.v[s->work.n++] = g->alt[a];
                s->work.v[s->work.n++] = cont;
            }
            break;
        }
    }
    return true;
}

/* Some character in [lo, hi] is in class c. */
static bool class_hits(const sl_grammar *g, const cclass *c, uint32_t lo, uint32_t hi) {
    if (c->n == 0) return c->neg; /* `.` (or [^]), or [] */
    const uint32_t *r = g->rng + 2 * (size_t)c->off;
    if (!c->neg) {
        for (uint32_t i = 0; i < c->n; i++)
            if (r[2 * i] <= hi && r[2 * i + 1] >= lo) return true;
        return false;
    }
    for (uint32_t i = 0; i < c->n; i++) /* merged ranges: [lo, hi] is left out only when one range covers it */
        if (r[2 * i] <= lo && r[2 * i + 1] >= hi) return false;
    return true;
}

/* Take character cp: a new set from the stacks whose terminal holds it. */
static bool advance(sl_gram_state *s, uint32_t cp) {
    const sl_grammar *g = s->g;
    const uint32_t from = s->top.n;
    new_set(s);
    for (uint32_t i = 0; i < s->n_cur; i++) {
        const uint32_t t = s->top.v[s->cur + i];
        if (t == NONE) continue;
        const uint32_t pos = s->node[t].pos;
        if (KIND(g->sym[pos]) != S_TERM || !class_hits(g, &g->cls[VAL(g->sym[pos])], cp, cp)) continue;
        if (!expand(s, from, pos + 1, s->node[t].parent)) return false;
    }
    if (s->top.n == from) return false;
    s->cur = from;
    s->n_cur = s->top.n - from;
    return true;
}

/* A character begun can still be one that some stack takes: the characters its next byte's range (lo, hi)
 * and any bytes after that can make. */
static bool viable(const sl_gram_state *s) {
    const uint32_t rest = 6u * (s->need - 1u), lo = (s->cp << 6 | (s->lo & 0x3Fu)) << rest,
                   hi = (s->cp << 6 | (s->hi & 0x3Fu)) << rest | ((1u << rest) - 1);
    for (uint32_t i = 0; i < s->n_cur; i++) {
        const uint32_t t = s->top.v[s->cur + i];
        if (t == NONE) continue;
        const uint32_t sy = s->g->sym[s->node[t].pos];
        if (KIND(sy) == S_TERM && class_hits(s->g, &s->g->cls[VAL(sy)], lo, hi)) return true;
    }
    return false;
}

/* One byte of the output (UTF-8, checked as it comes: no overlong forms, surrogates or values past U+10FFFF).
 * On false the caller restores its mark. */
static bool feed_byte(sl_gram_state *s, uint8_t c) {
    if (s->need) {
        if (c < s->lo || c > s->hi) return false;
        s->cp = s->cp << 6 | (c & 0x3Fu);
        s->lo = 0x80, s->hi = 0xBF;
        if (--s->need) return viable(s);
        return advance(s, s->cp);
    }
    if (c < 0x80) return advance(s, c);
    if (!sl_utf8_lead(c, &s->need, &s->lo, &s->hi)) return false;
    s->cp = c & (0x3Fu >> s->need); /* the lead byte's bits: 5, 4 or 3 */
    return viable(s);
}

/* Keep only the current set's stacks: copied into the other arena (shared nodes once), the set moved to the
 * front. */
static bool compact(sl_gram_state *s) {
    if (s->cap_map < s->n_node) {
        uint32_t *m = sl_realloc(s->map, (size_t)s->n_node * sizeof *m);
        if (!m) return false;
        s->map = m;
        s->cap_map = s->n_node;
    }
    if (s->cap_spare < s->n_node) {
        gnode *n = sl_realloc(s->spare, (size_t)s->n_node * sizeof *n);
        if (!n) return false;
        s->spare = n;
        s->cap_spare = s->n_node;
    }
    if (s->n_node) memset(s->map, 0xFF, (size_t)s->n_node * sizeof *s->map);
    uint32_t n_new = 0;
    for (uint32_t i = 0; i < s->n_cur; i++) {
        uint32_t t = s->top.v[s->cur + i];
        /* the chain down to a node already copied (or the bottom), then copied bottom up */
        s->work.n = 0;
        for (uint32_t x = t; x != NONE && s->map[x] == NONE; x = s->node[x].parent)
            if (!u32v_push(&s->work, x)) return false;
        while (s->work.n > 0) {
            const uint32_t x = s->work.v[--s->work.n], par = s->node[x].parent;
            s->spare[n_new] = (gnode){s->node[x].pos, par == NONE ? NONE : s->map[par], s->node[x].hash};
            s->map[x] = n_new++;
        }
        s->top.v[i] = t == NONE ? NONE : s->map[t];
    }
    gnode *old = s->node;
    const uint32_t cap = s->cap_node;
    s->node = s->spare, s->cap_node = s->cap_spare, s->n_node = n_new;
    s->spare = old, s->cap_spare = cap;
    s->top.n = s->n_cur;
    s->cur = 0;
    return true;
}

sl_status sl_gram_state_create(const sl_grammar *g, sl_gram_state **out) {
    *out = NULL;
    sl_gram_state *s = sl_calloc(1, sizeof *s);
    if (!s) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    s->g = g;
    new_set(s);
    for (uint32_t a = g->roff[g->root]; a < g->roff[g->root + 1]; a++)
        if (!expand(s, 0, g->alt[a], NONE)) goto nomem;
    s->n_cur = s->top.n;
    *out = s;
    return SL_OK;
nomem:
    sl_gram_state_destroy(s);
    return SL_FAIL(SL_ERR_NOMEM, "out of memory for a grammar's state");
}

void sl_gram_state_destroy(sl_gram_state *s) {
    if (!s) return;
    for (int k = 0; k < MASK_MEMO; k++) {
        sl_free(s->memo[k].sig.v);
        sl_free(s->memo[k].allow);
    }
    sl_free(s->sig.v);
    sl_free(s->node);
    sl_free(s->top.v);
    sl_free(s->work.v);
    sl_free(s->spare);
    sl_free(s->map);
    sl_free(s);
}

/* After a step of the output: only the current set's stacks kept. */
static void settle(sl_gram_state *s) {
    if (!compact(s)) { /* out of memory: the sets are intact, only not compacted */
        if (s->cur != 0) memmove(s->top.v, s->top.v + s->cur, (size_t)s->n_cur * sizeof *s->top.v);
        s->top.n = s->n_cur;
        s->cur = 0;
    }
}

bool sl_gram_feed_all(sl_gram_state *s, const char *p, size_t n) {
    const mark m = save(s);
    for (size_t i = 0; i < n; i++)
        if (!feed_byte(s, (uint8_t)p[i])) {
            restore(s, m);
            return false;
        }
    settle(s);
    return true;
}

/* Token reference k takes token id. */
static bool token_matches(const sl_grammar *g, uint32_t k, int32_t id) {
    return g->tok[2 * k + 1] ? id != g->tok[2 * k] : id == g->tok[2 * k];
}

bool sl_gram_feed_token(sl_gram_state *s, int32_t id, const char *text, size_t n) {
    const sl_grammar *g = s->g;
    const mark m = save(s);
    const uint32_t ocur = s->cur, on = s->n_cur;
    bool any_tok = false;
    for (uint32_t i = 0; i < on; i++) {
        const uint32_t t = s->top.v[ocur + i];
        any_tok |= t != NONE && KIND(g->sym[s->node[t].pos]) == S_TOKEN;
    }
    if (!any_tok || m.need) return sl_gram_feed_all(s, text, n); /* (a token reference begins no character) */
    /* its text through the stacks with a character class on top */
    uint32_t fcur = 0, fn = 0;
    bool chars = n > 0;
    if (chars) {
        const uint32_t from = s->top.n;
        for (uint32_t i = 0; i < on && chars; i++) {
            const uint32_t t = s->top.v[ocur + i];
            if (t != NONE && KIND(g->sym[s->node[t].pos]) == S_TERM) chars = u32v_push(&s->top, t);
        }
        s->cur = from, s->n_cur = s->top.n - from;
        for (size_t i = 0; i < n && chars && s->n_cur; i++) chars = feed_byte(s, (uint8_t)text[i]);
        chars = chars && s->n_cur > 0;
        fcur = s->cur, fn = s->n_cur;
    }
    if (!chars) s->cp = m.cp, s->need = m.need, s->lo = m.lo, s->hi = m.hi;
    /* with the stacks whose token reference takes it (unless the text left a character half written, which
     * they cannot share) */
    const uint32_t from = s->top.n;
    new_set(s);
    for (uint32_t i = 0; i < fn && chars; i++)
        if (!add_top(s, from, s->top.v[fcur + i])) goto undo;
    for (uint32_t i = 0; i < on && !(chars && s->need); i++) {
        const uint32_t t = s->top.v[ocur + i];
        if (t == NONE) continue;
        const uint32_t pos = s->node[t].pos;
        if (KIND(g->sym[pos]) == S_TOKEN && token_matches(g, VAL(g->sym[pos]), id) &&
            !expand(s, from, pos + 1, s->node[t].parent))
            goto undo;
    }
    if (s->top.n == from) goto undo;
    s->cur = from, s->n_cur = s->top.n - from;
    settle(s);
    return true;
undo:
    restore(s, m);
    return false;
}

bool sl_gram_may_end(const sl_gram_state *s) {
    if (s->need) return false;
    for (uint32_t i = 0; i < s->n_cur; i++)
        if (s->top.v[s->cur + i] == NONE) return true;
    return false;
}

bool sl_gram_done(const sl_gram_state *s) { return !s->need && s->n_cur == 1 && s->top.v[s->cur] == NONE; }

/* ---- the token mask ---------------------------------------------------------- */

typedef struct tnode {
    uint32_t child;  /* its children: tn[child, child + n_child), by byte */
    uint32_t tok;    /* the tokens whose text ends here: toks[tok, tok + n_tok) */
    uint32_t n_child;
    uint32_t n_tok;
    uint8_t byte;
} tnode;

struct sl_gram_guide {
    int32_t n_vocab;
    tnode *tn; /* tn[0]: the root (the empty text) */
    uint32_t n_tn;
    int32_t *toks;
    uint8_t *eog; /* (n_vocab) */
    uint8_t *ok;  /* (n_vocab) scratch for the mask */
};

typedef struct ttext {
    const char *p;
    uint32_t n;
    int32_t id;
} ttext;

static int cmp_text(const void *a, const void *b) {
    const ttext *x = a, *y = b;
    const uint32_t n = x->n < y->n ? x->n : y->n;
    const int c = memcmp(x->p, y->p, n);
    if (c) return c;
    if (x->n != y->n) return x->n < y->n ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Node `at` for the texts t[lo, hi), which share their first `depth` bytes (sorted: those that end there first). */
static void build(sl_gram_guide *g, const ttext *t, uint32_t lo, uint32_t hi, uint32_t depth, uint32_t at,
                  uint32_t *n_tok) {
    uint32_t i = lo;
    g->tn[at].tok = *n_tok;
    while (i < hi && t[i].n == depth) g->toks[(*n_tok)++] = t[i++].id;
    g->tn[at].n_tok = *n_tok - g->tn[at].tok;
    uint32_t nc = 0;
    for (uint32_t j = i; j < hi; j++)
        if (j == i || t[j].p[depth] != t[j - 1].p[depth]) nc++;
    g->tn[at].child = g->n_tn;
    g->tn[at].n_child = nc;
    const uint32_t first = g->n_tn;
    g->n_tn += nc;
    uint32_t c = 0;
    for (uint32_t j = i; j < hi;) {
        uint32_t k = j + 1;
        while (k < hi && t[k].p[depth] == t[j].p[depth]) k++;
        g->tn[first + c].byte = (uint8_t)t[j].p[depth];
        build(g, t, j, k, depth + 1, first + c, n_tok);
        c++;
        j = k;
    }
}

sl_status sl_gram_guide_create(const sl_json_guide *texts, const sl_tokenizer *tok, sl_gram_guide **out) {
    *out = NULL;
    sl_gram_guide *g = sl_calloc(1, sizeof *g);
    ttext *t = NULL;
    if (!g) goto nomem;
    g->n_vocab = sl_tokenizer_n_vocab(tok);
    g->eog = sl_calloc((size_t)g->n_vocab, 1);
    g->ok = sl_calloc((size_t)g->n_vocab, 1);
    g->toks = sl_alloc_array((size_t)g->n_vocab + 1, sizeof *g->toks);
    t = sl_alloc_array((size_t)g->n_vocab + 1, sizeof *t);
    if (!g->eog || !g->ok || !g->toks || !t) goto nomem;
    uint32_t n = 0;
    uint64_t bytes = 0;
    for (int32_t i = 0; i < g->n_vocab; i++) {
        g->eog[i] = sl_tokenizer_is_eog(tok, i);
        size_t k;
        const char *p = sl_json_guide_text(texts, i, &k);
        if (g->eog[i] || k == 0) continue; /* no text: never a step of the output */
        t[n++] = (ttext){p, (uint32_t)k, i};
        bytes += k;
    }
    qsort(t, n, sizeof *t, cmp_text);
    g->tn = sl_alloc_array(bytes + 1, sizeof *g->tn);
    if (!g->tn) goto nomem;
    g->n_tn = 1;
    uint32_t n_tok = 0;
    build(g, t, 0, n, 0, 0, &n_tok);
    tnode *shrunk = sl_realloc(g->tn, (size_t)g->n_tn * sizeof *g->tn);
    if (shrunk) g->tn = shrunk;
    sl_free(t);
    *out = g;
    return SL_OK;
nomem:
    sl_free(t);
    sl_gram_guide_destroy(g);
    return SL_FAIL(SL_ERR_NOMEM, "out of memory for the grammar guide's token trie");
}

void sl_gram_guide_destroy(sl_gram_guide *g) {
    if (!g) return;
    sl_free(g->tn);
    sl_free(g->toks);
    sl_free(g->eog);
    sl_free(g->ok);
    sl_free(g);
}

/* Every token below trie node `at` whose bytes s takes is marked in g->ok. */
static void walk(sl_gram_guide *g, sl_gram_state *s, uint32_t at) {
    const tnode *n = &g->tn[at];
    for (uint32_t c = n->child; c < n->child + n->n_child; c++) {
        const tnode *ch = &g->tn[c];
        const mark m = save(s);
        if (feed_byte(s, ch->byte)) {
            for (uint32_t k = 0; k < ch->n_tok; k++) g->ok[g->toks[ch->tok + k]] = 1;
            if (ch->n_child) walk(g, s, c);
        }
        restore(s, m);
    }
}

/* The state as numbers (the character begun, then each stack's positions from the top down): equal
 * signatures, equal states, equal masks. */
static bool signature(const sl_gram_state *s, u32v *out) {
    out->n = 0;
    if (!u32v_push(out, s->cp) || !u32v_push(out, (uint32_t)s->need << 16 | (uint32_t)s->lo << 8 | s->hi)) return false;
    for (uint32_t i = 0; i < s->n_cur; i++) {
        for (uint32_t x = s->top.v[s->cur + i]; x != NONE; x = s->node[x].parent)
            if (!u32v_push(out, s->node[x].pos)) return false;
        if (!u32v_push(out, NONE)) return false;
    }
    return true;
}

int32_t sl_gram_guide_mask(sl_gram_guide *g, sl_gram_state *s, float *logits) {
    const bool have_sig = signature(s, &s->sig);
    struct memo *slot = &s->memo[0];
    for (int k = 0; k < MASK_MEMO && have_sig; k++) {
        struct memo *m = &s->memo[k];
        if (m->allow && m->n_vocab == g->n_vocab && m->sig.n == s->sig.n &&
            !memcmp(m->sig.v, s->sig.v, (size_t)s->sig.n * sizeof *s->sig.v)) {
            m->used = ++s->tick;
            for (int32_t i = 0; i < g->n_vocab; i++)
                if (!(m->allow[i >> 3] >> (i & 7) & 1)) logits[i] = -INFINITY;
            return m->allowed;
        }
        if (m->used < slot->used) slot = m;
    }
    memset(g->ok, 0, (size_t)g->n_vocab);
    walk(g, s, 0);
    for (uint32_t i = 0; i < s->n_cur && !s->need; i++) { /* stacks with a token reference on top */
        const uint32_t t = s->top.v[s->cur + i];
        const uint32_t sy = t == NONE ? S_END : s->g->sym[s->node[t].pos];
        if (KIND(sy) != S_TOKEN) continue;
        const int32_t *r = &s->g->tok[2 * VAL(sy)];
        if (!r[1]) {
            if (r[0] < g->n_vocab) g->ok[r[0]] = 1;
        } else {
            for (int32_t k = 0; k < g->n_vocab; k++) g->ok[k] |= !g->eog[k] && k != r[0];
        }
    }
    const bool end = sl_gram_may_end(s);
    int32_t allowed = 0;
    for (int32_t i = 0; i < g->n_vocab; i++) {
        g->ok[i] = g->eog[i] ? end || g->ok[i] : g->ok[i]; /* (a reference may name one) */
        if (g->ok[i]) allowed++;
        else logits[i] = -INFINITY;
    }
    if (!have_sig) return allowed;
    /* kept for this state, in place of the least recently used */
    const size_t bytes = ((size_t)g->n_vocab + 7) / 8;
    if (!slot->allow || slot->n_vocab != g->n_vocab) {
        sl_free(slot->allow);
        slot->allow = sl_malloc(bytes);
        slot->n_vocab = g->n_vocab;
        slot->used = 0;
    }
    slot->sig.n = 0;
    if (!slot->allow || !u32v_reserve(&slot->sig, s->sig.n)) {
        sl_free(slot->allow);
        slot->allow = NULL;
        return allowed;
    }
    memcpy(slot->sig.v, s->sig.v, (size_t)s->sig.n * sizeof *s->sig.v);
    slot->sig.n = s->sig.n;
    memset(slot->allow, 0, bytes);
    for (int32_t i = 0; i < g->n_vocab; i++)
        if (g->ok[i]) slot->allow[i >> 3] |= (uint8_t)(1u << (i & 7));
    slot->allowed = allowed;
    slot->used = ++s->tick;
    return allowed;
}

/*
 * tpl_lex.c — the template lexer, following jinja2's lexer with Hugging
 * Face's settings (trim_blocks, lstrip_blocks, keep_trailing_newline off).
 *
 * The source is first normalized as jinja2 does: "\r\n" and "\r" become
 * "\n" and one trailing newline is dropped. Then text alternates with tags:
 *   {{ expr }}   variable tags; `{{-` / `-}}` strip whitespace around them
 *   {% stmt %}   block tags; a newline right after `%}` is dropped
 *                (trim_blocks) unless `+%}`; spaces/tabs between the start
 *                of a line and `{%` are dropped (lstrip_blocks) unless `{%+`
 *   {# ... #}    comments, trimmed like block tags
 *   {% raw %}    text up to {% endraw %} is data
 * Inside tags: names, strings (Python escapes decoded), integers (with _,
 * 0x/0o/0b), floats, operators. Like jinja2, an end delimiter inside open
 * brackets is read as operators ({{ {'a': {'b': 1}} }} works).
 *
 * Tokens point into the normalized source or into decoded copies, all in
 * the template's arena; the token array itself is sl_malloc'ed.
 */
#include "template/tpl.h"

#include "core/alloc.h"
#include "core/strbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lexer {
    sl_template *t;
    const char *src;
    size_t len, pos;
    token *toks;
    size_t n, cap;
    /* line/column cursor, advanced incrementally */
    size_t cur_pos;
    int cur_line, cur_col;
} lexer;

static void locate(lexer *lx, size_t pos, int *line, int *col) {
    if (pos < lx->cur_pos) { lx->cur_pos = 0; lx->cur_line = 1; lx->cur_col = 1; }
    for (size_t i = lx->cur_pos; i < pos && i < lx->len; i++) {
        if (lx->src[i] == '\n') { lx->cur_line++; lx->cur_col = 1; }
        else if (((unsigned char)lx->src[i] & 0xC0) != 0x80) lx->cur_col++;
    }
    lx->cur_pos = pos;
    *line = lx->cur_line;
    *col = lx->cur_col;
}

static sl_status lex_fail(lexer *lx, size_t pos, const char *msg, const char *arg) {
    int line, col;
    locate(lx, pos, &line, &col);
    return SL_FAIL(SL_ERR_FORMAT, "template syntax error at line %d, column %d: %s%s", line, col, msg, arg ? arg : "");
}

static token *push(lexer *lx, tkind k, size_t pos) {
    if (lx->n == lx->cap) {
        size_t cap = lx->cap ? lx->cap * 2 : 256;
        token *nt = sl_realloc(lx->toks, cap * sizeof *nt);
        if (!nt) return NULL;
        lx->toks = nt;
        lx->cap = cap;
    }
    token *t = &lx->toks[lx->n++];
    memset(t, 0, sizeof *t);
    t->kind = (uint8_t)k;
    locate(lx, pos, &t->line, &t->col);
    return t;
}

/* length of the Python whitespace char at s[i..] or 0 */
static size_t space_at(const char *s, size_t n, size_t i) {
    if (i >= n) return 0;
    uint32_t cp;
    size_t k = utf8_dec(s + i, n - i, &cp);
    return py_isspace(cp) ? k : 0;
}

static size_t skip_space(const char *s, size_t n, size_t i) {
    size_t k;
    while ((k = space_at(s, n, i)) > 0) i += k;
    return i;
}

/* length of s[0..n) without trailing Python whitespace */
static size_t rstrip_len(const char *s, size_t n) {
    while (n > 0) {
        size_t st = n - 1;
        while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
        uint32_t cp;
        utf8_dec(s + st, n - st, &cp);
        if (!py_isspace(cp)) break;
        n = st;
    }
    return n;
}

static bool starts(const lexer *lx, size_t i, const char *lit) {
    size_t k = strlen(lit);
    return i <= lx->len && lx->len - i >= k && memcmp(lx->src + i, lit, k) == 0;
}

/* The text src[from, to) before a tag with strip sign `sign`; `lstrip` when
 * the tag is a block, comment or raw tag. Emits a data token if nonempty. */
static sl_status emit_text(lexer *lx, size_t from, size_t to, char sign, bool lstrip) {
    const char *text = lx->src + from;
    size_t n = to - from;
    if (sign == '-') {
        n = rstrip_len(text, n);
    } else if (sign != '+' && lstrip) {
        size_t l_pos = 0;
        for (size_t i = n; i > 0; i--)
            if (text[i - 1] == '\n') { l_pos = i; break; }
        bool line_starting = from == 0 || lx->src[from - 1] == '\n';
        if ((l_pos > 0 || line_starting) && l_pos < n && rstrip_len(text + l_pos, n - l_pos) == 0) n = l_pos;
    }
    if (n == 0) return SL_OK;
    token *t = push(lx, T_DATA, from);
    if (!t) return SL_FAIL(SL_ERR_NOMEM, "out of memory lexing the template");
    t->s = text;
    t->len = n;
    return SL_OK;
}

/* Decode the Python escapes of a string literal body s[0..n) into the arena. */
static sl_status decode_string(lexer *lx, size_t at, const char *s, size_t n, token *t) {
    char *o = tpl_alloc(&lx->t->arena, n + 1);
    if (!o) return SL_FAIL(SL_ERR_NOMEM, "out of memory lexing the template");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 >= n) { o[k++] = s[i]; continue; }
        char c = s[++i];
        uint32_t cp;
        int digits = 0;
        switch (c) {
        case '\\': o[k++] = '\\'; continue;
        case '\'': o[k++] = '\''; continue;
        case '"': o[k++] = '"'; continue;
        case 'a': o[k++] = '\a'; continue;
        case 'b': o[k++] = '\b'; continue;
        case 'f': o[k++] = '\f'; continue;
        case 'n': o[k++] = '\n'; continue;
        case 'r': o[k++] = '\r'; continue;
        case 't': o[k++] = '\t'; continue;
        case 'v': o[k++] = '\v'; continue;
        case '\n': continue;
        case 'x': digits = 2; break;
        case 'u': digits = 4; break;
        case 'U': digits = 8; break;
        case 'N': return lex_fail(lx, at, "\\N{...} escapes are not supported", NULL);
        default:
            if (c >= '0' && c <= '7') {
                cp = (uint32_t)(c - '0');
                for (int j = 0; j < 2 && i + 1 < n && s[i + 1] >= '0' && s[i + 1] <= '7'; j++)
                    cp = cp * 8 + (uint32_t)(s[++i] - '0');
                k += utf8_enc(cp, o + k);
                continue;
            }
            o[k++] = '\\';
            o[k++] = c;
            continue;
        }
        cp = 0;
        for (int j = 0; j < digits; j++) {
            int h = i + 1 < n ? sl_hex_digit(s[i + 1]) : -1;
            if (h < 0) return lex_fail(lx, at, "truncated \\x, \\u or \\U escape in a string", NULL);
            cp = cp * 16 + (uint32_t)h;
            i++;
        }
        if (cp > 0x10FFFF) return lex_fail(lx, at, "escape out of the Unicode range in a string", NULL);
        if (cp >= 0xD800 && cp <= 0xDFFF) return lex_fail(lx, at, "lone surrogate escape in a string", NULL);
        k += utf8_enc(cp, o + k); /* an escape never encodes longer than it is written */
    }
    o[k] = '\0';
    t->s = o;
    t->len = k;
    return SL_OK;
}

/* (\d+_)*\d+ at i: end index, or i when no match */
static size_t digits_us(const lexer *lx, size_t i) {
    size_t j = i;
    if (j >= lx->len || lx->src[j] < '0' || lx->src[j] > '9') return i;
    for (;;) {
        while (j < lx->len && lx->src[j] >= '0' && lx->src[j] <= '9') j++;
        if (j + 1 < lx->len && lx->src[j] == '_' && lx->src[j + 1] >= '0' && lx->src[j + 1] <= '9') { j++; continue; }
        return j;
    }
}

static size_t match_float(const lexer *lx, size_t i) {
    if (i > 0 && lx->src[i - 1] == '.') return i;
    size_t j = digits_us(lx, i);
    if (j == i) return i;
    /* alternative 1: (\.D)? e[+-]?D */
    size_t k = j;
    if (k < lx->len && lx->src[k] == '.') {
        size_t m = digits_us(lx, k + 1);
        if (m > k + 1) k = m;
    }
    if (k < lx->len && (lx->src[k] == 'e' || lx->src[k] == 'E')) {
        size_t m = k + 1;
        if (m < lx->len && (lx->src[m] == '+' || lx->src[m] == '-')) m++;
        size_t e = digits_us(lx, m);
        if (e > m) return e;
    }
    /* alternative 2: \.D */
    if (j < lx->len && lx->src[j] == '.') {
        size_t m = digits_us(lx, j + 1);
        if (m > j + 1) return m;
    }
    return i;
}

static size_t match_int(const lexer *lx, size_t i, int *base) {
    const char *s = lx->src;
    size_t n = lx->len;
    char pfx = i + 1 < n ? (char)(s[i + 1] | 0x20) : 0;
    if (s[i] == '0' && (pfx == 'b' || pfx == 'o' || pfx == 'x')) {
        *base = pfx == 'b' ? 2 : pfx == 'o' ? 8 : 16;
        size_t j = i + 2, end = i;
        for (;;) {
            size_t k = j;
            if (k < n && s[k] == '_') k++;
            int h = k < n ? sl_hex_digit(s[k]) : -1;
            if (h < 0 || h >= *base) break;
            j = k + 1;
            end = j;
        }
        if (end > i) return end;
    }
    *base = 10;
    if (i < n && s[i] >= '1' && s[i] <= '9') {
        size_t j = i + 1;
        for (;;) {
            size_t k = j;
            if (k < n && s[k] == '_') k++;
            if (k < n && s[k] >= '0' && s[k] <= '9') j = k + 1;
            else break;
        }
        return j;
    }
    if (i < n && s[i] == '0') {
        size_t j = i + 1;
        for (;;) {
            size_t k = j;
            if (k < n && s[k] == '_') k++;
            if (k < n && s[k] == '0') j = k + 1;
            else break;
        }
        return j;
    }
    return i;
}

static const struct { const char *s; uint8_t op; } OPS[] = {
    {"//", TOK_FLOORDIV}, {"**", TOK_POW}, {"==", TOK_EQ}, {"!=", TOK_NE}, {"<=", TOK_LE}, {">=", TOK_GE},
    {"+", TOK_ADD}, {"-", TOK_SUB}, {"/", TOK_DIV}, {"*", TOK_MUL}, {"%", TOK_MOD}, {"~", TOK_TILDE},
    {"[", TOK_LBRACKET}, {"]", TOK_RBRACKET}, {"(", TOK_LPAREN}, {")", TOK_RPAREN}, {"{", TOK_LBRACE},
    {"}", TOK_RBRACE}, {"<", TOK_LT}, {">", TOK_GT}, {"=", TOK_ASSIGN}, {".", TOK_DOT}, {":", TOK_COLON},
    {"|", TOK_PIPE}, {",", TOK_COMMA}, {";", TOK_SEMICOLON},
};

#define MAX_BALANCE 256

/* Tokens of a {{ }} or {% %} tag starting after its opening delimiter. */
static sl_status lex_tag(lexer *lx, bool block, size_t open_pos) {
    char stack[MAX_BALANCE];
    int depth = 0;
    size_t i = lx->pos;
    for (;;) {
        if (i >= lx->len)
            return lex_fail(lx, open_pos, block ? "unexpected end of template: '%}' missing for this tag"
                                                : "unexpected end of template: '}}' missing for this tag", NULL);
        if (depth == 0) {
            size_t end = 0;
            if (block) {
                if (starts(lx, i, "+%}")) end = i + 3;
                else if (starts(lx, i, "-%}")) end = skip_space(lx->src, lx->len, i + 3);
                else if (starts(lx, i, "%}")) { end = i + 2; if (end < lx->len && lx->src[end] == '\n') end++; }
            } else {
                if (starts(lx, i, "-}}")) end = skip_space(lx->src, lx->len, i + 3);
                else if (starts(lx, i, "}}")) end = i + 2;
            }
            if (end) {
                if (!push(lx, block ? T_BLOCK_END : T_VAR_END, i)) goto nomem;
                lx->pos = end;
                return SL_OK;
            }
        }
        size_t sp = skip_space(lx->src, lx->len, i);
        if (sp > i) { i = sp; continue; }
        char c = lx->src[i];
        size_t j;
        int base;
        if ((j = match_float(lx, i)) > i) {
            char buf[128];
            size_t k = 0;
            for (size_t q = i; q < j && k < sizeof buf - 1; q++)
                if (lx->src[q] != '_') buf[k++] = lx->src[q];
            buf[k] = '\0';
            token *t = push(lx, T_FLOAT, i);
            if (!t) goto nomem;
            t->f = strtod(buf, NULL);
            i = j;
            continue;
        }
        if ((j = match_int(lx, i, &base)) > i) {
            token *t = push(lx, T_INT, i);
            if (!t) goto nomem;
            uint64_t v = 0;
            size_t q = i + (base != 10 ? 2 : 0);
            for (; q < j; q++) {
                if (lx->src[q] == '_') continue;
                uint64_t d = (uint64_t)sl_hex_digit(lx->src[q]);
                if (v > (UINT64_MAX - d) / (uint64_t)base || v * (uint64_t)base + d > (uint64_t)INT64_MAX)
                    return lex_fail(lx, i, "integer literal too large", NULL);
                v = v * (uint64_t)base + d;
            }
            t->i = (int64_t)v;
            i = j;
            continue;
        }
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
            j = i + 1;
            while (j < lx->len && ((lx->src[j] >= 'a' && lx->src[j] <= 'z') || (lx->src[j] >= 'A' && lx->src[j] <= 'Z') ||
                                   (lx->src[j] >= '0' && lx->src[j] <= '9') || lx->src[j] == '_'))
                j++;
            token *t = push(lx, T_NAME, i);
            if (!t) goto nomem;
            t->s = tpl_intern(lx->t, lx->src + i, j - i);
            if (!t->s) goto nomem;
            t->len = j - i;
            i = j;
            continue;
        }
        if (c == '\'' || c == '"') {
            j = i + 1;
            while (j < lx->len && lx->src[j] != c) j += lx->src[j] == '\\' ? 2 : 1;
            if (j >= lx->len) return lex_fail(lx, i, "unterminated string literal", NULL);
            token *t = push(lx, T_STRING, i);
            if (!t) goto nomem;
            sl_status st = decode_string(lx, i, lx->src + i + 1, j - i - 1, t);
            if (st) return st;
            i = j + 1;
            continue;
        }
        bool found = false;
        for (size_t k = 0; k < sizeof OPS / sizeof OPS[0]; k++) {
            if (!starts(lx, i, OPS[k].s)) continue;
            uint8_t op = OPS[k].op;
            if (op == TOK_LPAREN || op == TOK_LBRACKET || op == TOK_LBRACE) {
                if (depth == MAX_BALANCE) return lex_fail(lx, i, "brackets nested too deeply", NULL);
                stack[depth++] = op == TOK_LPAREN ? ')' : op == TOK_LBRACKET ? ']' : '}';
            } else if (op == TOK_RPAREN || op == TOK_RBRACKET || op == TOK_RBRACE) {
                char want = OPS[k].s[0];
                if (depth == 0) return lex_fail(lx, i, "unexpected ", want == ')' ? "')'" : want == ']' ? "']'" : "'}'");
                if (stack[depth - 1] != want) {
                    char m[48];
                    snprintf(m, sizeof m, "'%c', expected '%c'", want, stack[depth - 1]);
                    return lex_fail(lx, i, "unexpected ", m);
                }
                depth--;
            }
            token *t = push(lx, T_OP, i);
            if (!t) goto nomem;
            t->op = op;
            i += strlen(OPS[k].s);
            found = true;
            break;
        }
        if (!found) {
            char m[16];
            uint32_t cp;
            size_t k = utf8_dec(lx->src + i, lx->len - i, &cp);
            snprintf(m, sizeof m, "'%.*s'", (int)k, lx->src + i);
            return lex_fail(lx, i, "unexpected character ", m);
        }
    }
nomem:
    return SL_FAIL(SL_ERR_NOMEM, "out of memory lexing the template");
}

/* {%[-+]?\s*raw\s*(-%}\s*|%}) at p: end of the tag or 0 */
static size_t raw_begin(const lexer *lx, size_t p) {
    size_t i = p + 2;
    if (i < lx->len && (lx->src[i] == '-' || lx->src[i] == '+')) i++;
    i = skip_space(lx->src, lx->len, i);
    if (!starts(lx, i, "raw")) return 0;
    i = skip_space(lx->src, lx->len, i + 3);
    if (starts(lx, i, "-%}")) return skip_space(lx->src, lx->len, i + 3);
    if (starts(lx, i, "%}")) return i + 2;
    return 0;
}

/* {%(-|+|)\s*endraw\s*(+%}|-%}\s*|%}\n?) at p: end or 0; *sign gets the opening sign */
static size_t raw_end(const lexer *lx, size_t p, char *sign) {
    if (!starts(lx, p, "{%")) return 0;
    size_t i = p + 2;
    *sign = 0;
    if (i < lx->len && (lx->src[i] == '-' || lx->src[i] == '+')) *sign = lx->src[i++];
    i = skip_space(lx->src, lx->len, i);
    if (!starts(lx, i, "endraw")) return 0;
    i = skip_space(lx->src, lx->len, i + 6);
    if (starts(lx, i, "+%}")) return i + 3;
    if (starts(lx, i, "-%}")) return skip_space(lx->src, lx->len, i + 3);
    if (starts(lx, i, "%}")) return i + 2 + (i + 2 < lx->len && lx->src[i + 2] == '\n');
    return 0;
}

sl_status tpl_lex(sl_template *t, const char *src, size_t len, token **out, size_t *n_out) {
    lexer lx = {.t = t, .cur_line = 1, .cur_col = 1};
    sl_status st;
    size_t bad;
    if (!utf8_valid(src, len, &bad))
        return SL_FAIL(SL_ERR_FORMAT, "template syntax error: the template is not valid UTF-8 (byte %zu)", bad);
    /* normalize newlines as jinja2 does; drop one trailing newline */
    char *norm = tpl_alloc(&t->arena, len + 1);
    if (!norm) return SL_FAIL(SL_ERR_NOMEM, "out of memory lexing the template");
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            norm[k++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            norm[k++] = src[i];
        }
    }
    if (k > 0 && norm[k - 1] == '\n') k--;
    norm[k] = '\0';
    lx.src = norm;
    lx.len = k;

    while (lx.pos < lx.len) {
        size_t p = lx.pos;
        while (p + 1 < lx.len && !(lx.src[p] == '{' && (lx.src[p + 1] == '{' || lx.src[p + 1] == '%' || lx.src[p + 1] == '#')))
            p++;
        if (p + 1 >= lx.len) {
            if ((st = emit_text(&lx, lx.pos, lx.len, 0, false))) goto fail;
            break;
        }
        char kind = lx.src[p + 1];
        char sign = 0;
        if (p + 2 < lx.len && (lx.src[p + 2] == '-' || lx.src[p + 2] == '+')) sign = lx.src[p + 2];
        size_t body = p + 2 + (sign ? 1 : 0);
        size_t rb = kind == '%' ? raw_begin(&lx, p) : 0;
        if ((st = emit_text(&lx, lx.pos, p, sign, kind != '{'))) goto fail;
        if (rb) {
            size_t q = rb, e = 0;
            char esign = 0;
            while (q < lx.len && !(e = raw_end(&lx, q, &esign))) q++;
            if (!e) { st = lex_fail(&lx, p, "missing {% endraw %} for this raw block", NULL); goto fail; }
            if ((st = emit_text(&lx, rb, q, esign, true))) goto fail;
            lx.pos = e;
        } else if (kind == '#') {
            size_t q = body, e = 0;
            for (; q < lx.len; q++) {
                if (starts(&lx, q, "+#}")) { e = q + 3; break; }
                if (starts(&lx, q, "-#}")) { e = skip_space(lx.src, lx.len, q + 3); break; }
                if (starts(&lx, q, "#}")) { e = q + 2 + (q + 2 < lx.len && lx.src[q + 2] == '\n'); break; }
            }
            if (!e) { st = lex_fail(&lx, p, "missing end of comment tag '#}'", NULL); goto fail; }
            lx.pos = e;
        } else {
            if (!push(&lx, kind == '%' ? T_BLOCK_BEGIN : T_VAR_BEGIN, p)) { st = SL_FAIL(SL_ERR_NOMEM, "out of memory"); goto fail; }
            lx.pos = body;
            if ((st = lex_tag(&lx, kind == '%', p))) goto fail;
        }
    }
    if (!push(&lx, T_EOF, lx.len)) { st = SL_FAIL(SL_ERR_NOMEM, "out of memory"); goto fail; }
    *out = lx.toks;
    *n_out = lx.n;
    return SL_OK;
fail:
    sl_free(lx.toks);
    return st;
}

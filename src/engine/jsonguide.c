/*
 * jsonguide.c — JSON mode's recognizer and token mask (see jsonguide.h).
 */
#include "jsonguide.h"

#include "core/alloc.h"
#include "core/status.h"

#include <math.h>
#include <string.h>

enum {
    M_ROOT,      /* leading whitespace, then '{' */
    M_OBJ_FIRST, /* after '{': a key or '}' */
    M_OBJ_KEY,   /* after ',' in an object: a key */
    M_COLON,     /* after a key: ':' */
    M_OBJ_NEXT,  /* after a member's value: ',' or '}' */
    M_ARR_FIRST, /* after '[': a value or ']' */
    M_ARR_NEXT,  /* after an element: ',' or ']' */
    M_VALUE,     /* a value */
    M_STRING,    /* inside a string */
    M_ESC,       /* after '\' in a string */
    M_HEX,       /* in \uXXXX: sub = hex digits read */
    M_NUM,       /* in a number: sub = N_* */
    M_LIT,       /* in true / false / null: sub = bytes read */
    M_DONE,      /* the object is complete: nothing more, but whitespace */
};

enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

static const char *const LITS[3] = {"true", "false", "null"};

/* sl_json_state.ws: 0 none yet; 1 + k: a newline and k spaces or tabs; WS_SPACE: one space */
#define WS_SPACE (SL_JSON_MAX_INDENT + 2)

static bool is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static bool is_hex(uint8_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

void sl_json_init(sl_json_state *s) { memset(s, 0, sizeof *s); }

bool sl_json_done(const sl_json_state *s) { return s->mode == M_DONE; }

static void after_value(sl_json_state *s) {
    s->mode = s->depth == 0 ? M_DONE : s->stack[s->depth - 1] == '{' ? M_OBJ_NEXT : M_ARR_NEXT;
}

static bool push(sl_json_state *s, char open) {
    if (s->depth >= SL_JSON_MAX_DEPTH) return false;
    s->stack[s->depth++] = open;
    s->mode = open == '{' ? M_OBJ_FIRST : M_ARR_FIRST;
    return true;
}

static bool pop_close(sl_json_state *s, char open) {
    if (s->depth == 0 || s->stack[s->depth - 1] != open) return false;
    s->depth--;
    after_value(s);
    return true;
}

/* The first byte of a value. */
static bool value_start(sl_json_state *s, uint8_t c) {
    switch (c) {
    case '"': s->mode = M_STRING; s->key = false; return true;
    case '{': return push(s, '{');
    case '[': return push(s, '[');
    case '-': s->mode = M_NUM; s->sub = N_MINUS; return true;
    case '0': s->mode = M_NUM; s->sub = N_ZERO; return true;
    case 't': case 'f': case 'n':
        s->mode = M_LIT;
        s->lit = c == 't' ? 0 : c == 'f' ? 1 : 2;
        s->sub = 1;
        return true;
    default:
        if (c >= '1' && c <= '9') {
            s->mode = M_NUM;
            s->sub = N_INT;
            return true;
        }
        return false;
    }
}

/* One byte in a state that allows whitespace around structure. */
static bool structural(sl_json_state *s, uint8_t c) {
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
    case M_ROOT: return c == '{' && push(s, '{');
    case M_OBJ_FIRST:
        if (c == '}') return pop_close(s, '{');
        /* fall through */
    case M_OBJ_KEY:
        if (c != '"') return false;
        s->mode = M_STRING;
        s->key = true;
        return true;
    case M_COLON:
        if (c != ':') return false;
        s->mode = M_VALUE;
        return true;
    case M_OBJ_NEXT:
        if (c == ',') {
            s->mode = M_OBJ_KEY;
            return true;
        }
        return c == '}' && pop_close(s, '{');
    case M_ARR_FIRST:
        if (c == ']') return pop_close(s, '[');
        return value_start(s, c);
    case M_ARR_NEXT:
        if (c == ',') {
            s->mode = M_VALUE;
            return true;
        }
        return c == ']' && pop_close(s, '[');
    case M_VALUE: return value_start(s, c);
    default: return false; /* M_DONE: whitespace only */
    }
}

/* A number: false when c cannot continue it; *ended when c ends it (c is then for the state after it). */
static bool number(sl_json_state *s, uint8_t c, bool *ended) {
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
    if (c == '.' && (s->sub == N_ZERO || s->sub == N_INT)) {
        s->sub = N_DOT;
        return true;
    }
    if ((c == 'e' || c == 'E') && s->sub != N_EXP) {
        s->sub = N_E;
        return true;
    }
    *ended = true;
    return true;
}

static bool feed(sl_json_state *s, uint8_t c) {
    switch (s->mode) {
    case M_STRING:
        if (c == '"') {
            if (s->key) s->mode = M_COLON;
            else after_value(s);
            return true;
        }
        if (c == '\\') s->mode = M_ESC;
        return c >= 0x20;
    case M_ESC:
        if (c == 'u') {
            s->mode = M_HEX;
            s->sub = 0;
            return true;
        }
        s->mode = M_STRING;
        return c && strchr("\"\\/bfnrt", c) != NULL;
    case M_HEX:
        if (!is_hex(c)) return false;
        if (++s->sub == 4) s->mode = M_STRING;
        return true;
    case M_LIT: {
        const char *l = LITS[s->lit];
        if (c != (uint8_t)l[s->sub]) return false;
        if (l[++s->sub] == '\0') after_value(s);
        return true;
    }
    case M_NUM: {
        bool ended;
        if (!number(s, c, &ended)) return false;
        if (!ended) return true;
        after_value(s);
        return structural(s, c);
    }
    default: return structural(s, c);
    }
}

bool sl_json_feed(sl_json_state *s, uint8_t c) {
    sl_json_state t = *s;
    if (!feed(&t, c)) return false;
    *s = t;
    return true;
}

bool sl_json_feed_all(sl_json_state *s, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!feed(s, (uint8_t)p[i])) return false;
    return true;
}

/* ---- the token mask ---------------------------------------------------------- */

struct sl_json_guide {
    const sl_tokenizer *tok;
    int32_t n_vocab;
    uint32_t *off; /* (n_vocab + 1) token i's text is text[off[i], off[i + 1]) */
    char *text;
    uint8_t *eog;  /* (n_vocab) */
    uint8_t *plain; /* (n_vocab) text that a string takes as it is: no '"', '\\' or control byte */
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
    size_t cap = 16 * (size_t)g->n_vocab + 256, n = 0;
    g->text = sl_malloc(cap);
    if (!g->off || !g->eog || !g->plain || !g->text) goto nomem;
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
        g->plain[i] = k > 0;
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
    sl_free(g);
}

const char *sl_json_guide_text(const sl_json_guide *g, int32_t id, size_t *n) {
    *n = g->off[id + 1] - g->off[id];
    return g->text + g->off[id];
}

int32_t sl_json_guide_mask(const sl_json_guide *g, const sl_json_state *s, float *logits) {
    /* the bytes that may come first, and the state after each */
    bool first[256];
    sl_json_state after[256];
    for (int c = 0; c < 256; c++) {
        after[c] = *s;
        first[c] = feed(&after[c], (uint8_t)c);
    }
    const bool done = sl_json_done(s), in_string = s->mode == M_STRING;
    int32_t allowed = 0;
    for (int32_t i = 0; i < g->n_vocab; i++) {
        const char *p = g->text + g->off[i];
        const size_t n = g->off[i + 1] - g->off[i];
        bool ok;
        if (g->eog[i]) {
            ok = done;
        } else if (in_string && g->plain[i]) { /* most of a vocabulary inside a string: taken as it is */
            ok = true;
        } else if (n == 0 || !first[(uint8_t)p[0]]) {
            ok = false;
        } else {
            sl_json_state t = after[(uint8_t)p[0]];
            ok = sl_json_feed_all(&t, p + 1, n - 1);
        }
        if (ok) allowed++;
        else logits[i] = -INFINITY;
    }
    return allowed;
}

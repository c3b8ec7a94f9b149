/*
 * tpl_arena.c — memory and text primitives of the template engine: the
 * bump arena every render (and every compiled template) allocates from,
 * growable byte buffers inside that arena, error recording with the step
 * budget, and the UTF-8 / Python str character classes the builtins use.
 *
 * Invariants: arena memory is 16-byte aligned and lives until
 * tpl_arena_free; the arena never holds more than `limit` bytes of chunks;
 * a buffer never grows past the render's max_output (the largest string a
 * template may build).
 */
#include "template/tpl.h"

#include "core/alloc.h"

#include <stdio.h>
#include <string.h>

#define CHUNK_SIZE (64 * 1024)

struct tpl_chunk {
    tpl_chunk *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
};

void *tpl_alloc(tpl_arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    tpl_chunk *c = a->head;
    if (c && c->cap - c->used >= n) {
        void *p = c->data + c->used;
        c->used += n;
        return p;
    }
    size_t cap = n > CHUNK_SIZE / 4 ? n : CHUNK_SIZE;
    if (cap > SIZE_MAX - sizeof(tpl_chunk)) return NULL;
    if (a->limit && (a->used + cap + sizeof(tpl_chunk) > a->limit)) {
        a->over = true;
        return NULL;
    }
    tpl_chunk *nc = sl_malloc(sizeof(tpl_chunk) + cap);
    if (!nc) return NULL;
    nc->cap = cap;
    nc->used = n;
    a->used += cap + sizeof(tpl_chunk);
    if (cap == n && c) {
        /* a dedicated chunk: keep bump-allocating from the current one */
        nc->next = c->next;
        c->next = nc;
    } else {
        nc->next = c;
        a->head = nc;
    }
    return nc->data;
}

void *tpl_zalloc(tpl_arena *a, size_t n) {
    void *p = tpl_alloc(a, n);
    if (p) memset(p, 0, n);
    return p;
}

void tpl_arena_free(tpl_arena *a) {
    tpl_chunk *c = a->head;
    while (c) {
        tpl_chunk *nx = c->next;
        sl_free(c);
        c = nx;
    }
    a->head = NULL;
    a->used = 0;
}

/* ---- errors and budget ------------------------------------------------ */

sl_status tpl_err(tpl_rt *r, sl_status st, const char *fmt, ...) {
    if (r->err_st == SL_OK) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err, sizeof r->err, fmt, ap);
        va_end(ap);
        r->err_st = st;
    }
    return r->err_st;
}

sl_status tpl_nomem(tpl_rt *r) {
    if (r->arena.over)
        return tpl_err(r, SL_ERR_RANGE, "memory limit exceeded (%zu bytes)", r->lim.max_memory);
    return tpl_err(r, SL_ERR_NOMEM, "out of memory");
}

sl_status tpl_charge(tpl_rt *r, size_t bytes) {
    r->steps += bytes / 64;
    if (r->steps > r->lim.max_steps)
        return tpl_err(r, SL_ERR_RANGE, "step limit exceeded (%llu steps): the template loops too long",
                       (unsigned long long)r->lim.max_steps);
    return SL_OK;
}

/* ---- buffers ----------------------------------------------------------- */

static sl_status buf_reserve(tpl_rt *r, tpl_buf *b, size_t extra) {
    if (extra > r->lim.max_output || b->n > r->lim.max_output - extra)
        return tpl_err(r, SL_ERR_RANGE, "output limit exceeded (%zu bytes)", r->lim.max_output);
    size_t need = b->n + extra + 1;
    if (need <= b->cap) return SL_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    char *p = tpl_alloc(&r->arena, cap);
    if (!p) return tpl_nomem(r);
    if (b->n) memcpy(p, b->p, b->n);
    b->p = p;
    b->cap = cap;
    return SL_OK;
}

sl_status tpl_buf_put(tpl_rt *r, tpl_buf *b, const char *s, size_t n) {
    sl_status st = buf_reserve(r, b, n);
    if (st) return st;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
    return tpl_charge(r, n);
}

sl_status tpl_buf_putc(tpl_rt *r, tpl_buf *b, char c) { return tpl_buf_put(r, b, &c, 1); }

sl_status tpl_buf_printf(tpl_rt *r, tpl_buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) return tpl_err(r, SL_ERR_INVALID, "formatting failed");
    if ((size_t)k >= sizeof tmp) k = (int)sizeof tmp - 1;
    return tpl_buf_put(r, b, tmp, (size_t)k);
}

sl_status tpl_buf_put_cp(tpl_rt *r, tpl_buf *b, uint32_t cp) {
    char tmp[4];
    size_t k = utf8_enc(cp, tmp);
    return tpl_buf_put(r, b, tmp, k);
}

/* ---- UTF-8 ------------------------------------------------------------- */

size_t utf8_dec(const char *s, size_t n, uint32_t *cp) {
    const unsigned char *u = (const unsigned char *)s;
    if (n == 0) { *cp = 0; return 0; }
    if (u[0] < 0x80) { *cp = u[0]; return 1; }
    if ((u[0] & 0xE0) == 0xC0 && n >= 2) { *cp = ((uint32_t)(u[0] & 0x1F) << 6) | (u[1] & 0x3F); return 2; }
    if ((u[0] & 0xF0) == 0xE0 && n >= 3) {
        *cp = ((uint32_t)(u[0] & 0x0F) << 12) | ((uint32_t)(u[1] & 0x3F) << 6) | (u[2] & 0x3F);
        return 3;
    }
    if ((u[0] & 0xF8) == 0xF0 && n >= 4) {
        *cp = ((uint32_t)(u[0] & 0x07) << 18) | ((uint32_t)(u[1] & 0x3F) << 12) | ((uint32_t)(u[2] & 0x3F) << 6) |
              (u[3] & 0x3F);
        return 4;
    }
    *cp = 0xFFFD; /* not reached for validated text */
    return 1;
}

size_t utf8_enc(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

bool utf8_valid(const char *s, size_t n, size_t *bad_at) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned c = u[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) { i++; continue; }
        if ((c & 0xE0) == 0xC0) { k = 2; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { k = 3; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { k = 4; cp = c & 0x07; min = 0x10000; }
        else goto bad;
        if (n - i < k) goto bad;
        for (size_t j = 1; j < k; j++) {
            if ((u[i + j] & 0xC0) != 0x80) goto bad;
            cp = (cp << 6) | (u[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto bad;
        i += k;
    }
    return true;
bad:
    if (bad_at) *bad_at = i;
    return false;
}

int64_t str_ncp(tstr *s) {
    if (s->ncp >= 0) return s->ncp;
    int64_t k = 0;
    for (size_t i = 0; i < s->len; i++)
        if (((unsigned char)s->s[i] & 0xC0) != 0x80) k++;
    s->ncp = k;
    return k;
}

size_t str_cp_off(const tstr *s, int64_t i) {
    if (s->ncp == (int64_t)s->len) return (size_t)i; /* ASCII */
    size_t off = 0;
    while (i > 0 && off < s->len) {
        off++;
        while (off < s->len && ((unsigned char)s->s[off] & 0xC0) == 0x80) off++;
        i--;
    }
    return off;
}

bool py_isspace(uint32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
           c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

bool py_islinebreak(uint32_t c) {
    return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E || c == 0x85 ||
           c == 0x2028 || c == 0x2029;
}

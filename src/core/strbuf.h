/*
 * strbuf.h — a growable, NUL-terminated text buffer filled printf-style
 * (used to render metrics pages). Memory comes from realloc: the caller
 * takes `p` and frees it with free(). On allocation failure the text is
 * truncated, never overflowed.
 */
#ifndef SL_CORE_STRBUF_H
#define SL_CORE_STRBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sl_strbuf {
    char *p;
    size_t n, cap;
} sl_strbuf;

void sl_strbuf_printf(sl_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s[0, n) (the buffer stays NUL-terminated, allocated even when empty); false when out of memory. */
bool sl_strbuf_add(sl_strbuf *b, const char *s, size_t n);

/* A whole file as a NUL-terminated buffer (free with free()), its length in *len where given; NULL when it
 * cannot be read (errno says why) or memory runs out. */
char *sl_read_file(const char *path, size_t *len);

/* Make the NUL-terminated s valid UTF-8 in place: each byte that starts no
 * valid character becomes '?'. For messages that quote what a peer sent
 * (and then go into a JSON string, which must be UTF-8). */
void sl_utf8_scrub(char *s);
/* Whether s[0..n) is valid UTF-8 (the same rule as sl_utf8_scrub). */
bool sl_utf8_valid(const char *s, size_t n);

/* UTF-8 read a byte at a time (no overlong forms, surrogates or values past
 * U+10FFFF): lead byte c gives the continuation bytes still due (0 for
 * ASCII) and the range of the first of them (the later ones: 0x80-0xBF);
 * false when no character begins with c. */
static inline bool sl_utf8_lead(uint8_t c, uint8_t *need, uint8_t *lo, uint8_t *hi) {
    *lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
    *hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    *need = c < 0x80 ? 0 : c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
    return c < 0x80 || (c >= 0xC2 && c <= 0xF4);
}

/* The value of hexadecimal digit c, or -1. */
static inline int sl_hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

#endif

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

typedef struct sl_strbuf {
    char *p;
    size_t n, cap;
} sl_strbuf;

void sl_strbuf_printf(sl_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append s[0, n) (the buffer stays NUL-terminated, allocated even when empty); false when out of memory. */
bool sl_strbuf_add(sl_strbuf *b, const char *s, size_t n);

/* Make the NUL-terminated s valid UTF-8 in place: each byte that starts no
 * valid character becomes '?'. For messages that quote what a peer sent
 * (and then go into a JSON string, which must be UTF-8). */
void sl_utf8_scrub(char *s);
/* Whether s[0..n) is valid UTF-8 (the same rule as sl_utf8_scrub). */
bool sl_utf8_valid(const char *s, size_t n);

#endif

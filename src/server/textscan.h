/*
 * textscan.h — small scans of a model's answer text shared by the answer
 * parsers (toolcall.c, reasoning.c, harmony.c): whitespace, the first place
 * of a marker, and the end of a streamed text that may still become one.
 */
#ifndef SL_SERVER_TEXTSCAN_H
#define SL_SERVER_TEXTSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

static inline bool sl_scan_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* The first occurrence of marker m in s[from, n), or n. */
static inline size_t sl_scan_find(const char *s, size_t n, size_t from, const char *m) {
    const size_t k = strlen(m);
    if (from > n || n - from < k) return n;
    const char *p = memmem(s + from, n - from, m, k);
    return p ? (size_t)(p - s) : n;
}

/* Length of the longest end of s[from, n) that is a proper start of marker m (0 if none): bytes a streamed
 * text holds back, since what comes next may complete the marker. */
static inline size_t sl_scan_partial(const char *s, size_t from, size_t n, const char *m) {
    const size_t k = strlen(m);
    for (size_t l = k - 1 < n - from ? k - 1 : n - from; l > 0; l--)
        if (!memcmp(s + n - l, m, l)) return l;
    return 0;
}

#endif

/*
 * reasoning.c — thinking and content of an answer (see reasoning.h).
 */
#include "reasoning.h"

#include "server/textscan.h"

#include <string.h>

#define OPEN "<think>"
#define CLOSE "</think>"


sl_think_split sl_think_split_text(const char *text, size_t n, bool open, bool fin) {
    sl_think_split s = {0, 0, 0, 0};
    size_t p = 0;
    while (p < n && sl_scan_ws(text[p])) p++;
    if (!open) {
        const size_t k = strlen(OPEN);
        if (n - p >= k && !memcmp(text + p, OPEN, k)) {
            p += k;
        } else if (!fin && n - p < k && !memcmp(text + p, OPEN, n - p)) { /* whitespace, or <think>'s start: undecided */
            return s;
        } else { /* no thinking: all content */
            s.c1 = n;
            return s;
        }
        while (p < n && sl_scan_ws(text[p])) p++;
    }
    s.r0 = s.r1 = p;
    const char *close = memmem(text + p, n - p, CLOSE, strlen(CLOSE));
    size_t end = close ? (size_t)(close - text) : fin ? n : n - sl_scan_partial(text, p, n, CLOSE);
    while (end > p && sl_scan_ws(text[end - 1])) end--; /* whitespace before the tag (or at the end) waits */
    s.r1 = end;
    s.c0 = s.c1 = n;
    if (close) {
        size_t c = (size_t)(close - text) + strlen(CLOSE);
        while (c < n && sl_scan_ws(text[c])) c++;
        s.c0 = c;
        s.c1 = n;
    }
    return s;
}

bool sl_think_open_in_prompt(const char *prompt) {
    const char *last = NULL;
    for (const char *q = prompt; (q = strstr(q, OPEN)); q++) last = q;
    if (!last) return false;
    const char *p = last + strlen(OPEN);
    while (*p && sl_scan_ws(*p)) p++;
    return *p == '\0';
}

bool sl_think_template_has_tags(const char *template_src) {
    return template_src && strstr(template_src, OPEN) && strstr(template_src, CLOSE);
}

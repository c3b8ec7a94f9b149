/*
 * cors.c — cross-origin requests (see cors.h).
 */
#include "cors.h"

#include <stdio.h>
#include <string.h>

bool sl_cors_allow_origin(const char *list, const char *origin, size_t n, char *out, size_t cap) {
    if (!list || !*list || !origin || n == 0 || n >= cap || memchr(origin, '\r', n) || memchr(origin, '\n', n))
        return false;
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',') p++;
        const size_t k = strcspn(p, ",");
        size_t e = k;
        while (e > 0 && p[e - 1] == ' ') e--;
        if (e == 1 && p[0] == '*') {
            snprintf(out, cap, "*");
            return true;
        }
        if (e == n && !memcmp(p, origin, n)) {
            snprintf(out, cap, "%.*s", (int)n, origin);
            return true;
        }
        p += k;
    }
    return false;
}

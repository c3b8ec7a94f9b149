/*
 * ngram.c — n-gram speculation (see ngram.h).
 */
#include "ngram.h"

#include <string.h>

void sl_spec_init(sl_spec *s, int32_t max, int32_t lookup_min, int32_t lookup_max) {
    *s = (sl_spec){.max = max, .lookup_min = lookup_min, .lookup_max = lookup_max, .k = max};
}

int32_t sl_spec_propose(sl_spec *s, const int32_t *h, int32_t n, int32_t kmax, int32_t *draft) {
    if (s->max <= 0) return 0;
    if (s->wait > 0) { /* recent proposals missed: wait */
        s->wait--;
        return 0;
    }
    if (kmax > s->k) kmax = s->k;
    if (kmax <= 0) return 0;
    for (int32_t L = s->lookup_max; L >= s->lookup_min; L--) {
        if (n < L + 1) continue;
        const int32_t *suffix = h + n - L;
        for (int32_t i = n - L - 1; i >= 0; i--) { /* the latest earlier occurrence */
            if (h[i] != suffix[0] || memcmp(h + i, suffix, sizeof(int32_t) * (size_t)L) != 0) continue;
            int32_t m = 0;
            while (m < kmax && i + L + m < n) {
                draft[m] = h[i + L + m];
                m++;
            }
            return m;
        }
    }
    return 0;
}

void sl_spec_update(sl_spec *s, int32_t n, int32_t kept) {
    if (n <= 0) return;
    if (kept == 0) {
        s->k = 1;
        if (s->misses < 5) s->misses++;
        s->wait = (1 << s->misses) - 1;
        return;
    }
    s->misses = 0;
    s->k = kept == n ? 2 * n : kept + 1;
    if (s->k > s->max) s->k = s->max;
}

/*
 * reasoning.c — thinking and content of an answer (see reasoning.h).
 */
#include "reasoning.h"

#include "server/textscan.h"

#include <string.h>

static const char *const TAGS[SL_THINK_TAGS_COUNT][2] = {
    [SL_THINK_TAGS_THINK] = {"<think>", "</think>"},
    [SL_THINK_TAGS_SEED] = {"<seed:think>", "</seed:think>"},
    [SL_THINK_TAGS_COMMAND_R] = {"<|START_THINKING|>", "<|END_THINKING|>"},
    [SL_THINK_TAGS_MISTRAL] = {"[THINK]", "[/THINK]"},
    [SL_THINK_TAGS_HUNYUAN] = {"<think:opensource>", "</think:opensource>"},
    [SL_THINK_TAGS_GEMMA4] = {"<|channel>thought", "<channel|>"},
};

const char *sl_think_open_tag(sl_think_tags t) { return TAGS[t][0]; }
const char *sl_think_close_tag(sl_think_tags t) { return TAGS[t][1]; }

sl_think_split sl_think_split_text(sl_think_tags t, const char *text, size_t n, bool open, bool fin) {
    const char *otag = TAGS[t][0], *ctag = TAGS[t][1];
    sl_think_split s = {0, 0, 0, 0};
    size_t p = 0;
    while (p < n && sl_scan_ws(text[p])) p++;
    if (!open) {
        const size_t k = strlen(otag);
        if (n - p >= k && !memcmp(text + p, otag, k)) {
            p += k;
        } else if (!fin && n - p < k && !memcmp(text + p, otag, n - p)) { /* whitespace, or the tag's start: undecided */
            return s;
        } else { /* no thinking: all content */
            s.c1 = n;
            return s;
        }
        while (p < n && sl_scan_ws(text[p])) p++;
    }
    s.r0 = s.r1 = p;
    const char *close = memmem(text + p, n - p, ctag, strlen(ctag));
    size_t end = close ? (size_t)(close - text) : fin ? n : n - sl_scan_partial(text, p, n, ctag);
    while (end > p && sl_scan_ws(text[end - 1])) end--; /* whitespace before the tag (or at the end) waits */
    s.r1 = end;
    s.c0 = s.c1 = n;
    if (close) {
        size_t c = (size_t)(close - text) + strlen(ctag);
        while (c < n && sl_scan_ws(text[c])) c++;
        s.c0 = c;
        s.c1 = n;
    }
    return s;
}

bool sl_think_open_in_prompt(sl_think_tags t, const char *prompt) {
    const char *otag = TAGS[t][0], *last = NULL;
    for (const char *q = prompt; (q = strstr(q, otag)); q++) last = q;
    if (!last) return false;
    const char *p = last + strlen(otag);
    while (*p && sl_scan_ws(*p)) p++;
    return *p == '\0';
}

bool sl_think_template_has_tags(const char *template_src, sl_think_tags *t) {
    if (!template_src) return false;
    /* Hunyuan 3 builds its tags with '<think{}>'.format(':opensource') */
    if (strstr(template_src, ":opensource") && strstr(template_src, "<think{}>")) {
        *t = SL_THINK_TAGS_HUNYUAN;
        return true;
    }
    for (int k = SL_THINK_TAGS_COUNT - 1; k >= 0; k--) /* the families' own tags before the plain <think> */
        if (strstr(template_src, TAGS[k][0]) && strstr(template_src, TAGS[k][1])) {
            *t = (sl_think_tags)k;
            return true;
        }
    return false;
}

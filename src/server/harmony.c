/*
 * harmony.c — gpt-oss answers split into thinking, content and calls (see
 * harmony.h).
 */
#include "harmony.h"

#include "core/strbuf.h"
#include "server/textscan.h"

#include <stdlib.h>
#include <string.h>

static const char START[] = "<|start|>", CHANNEL[] = "<|channel|>", MESSAGE[] = "<|message|>", END[] = "<|end|>",
                  CALL[] = "<|call|>", RETURN[] = "<|return|>";
static const char *const MARKERS[] = {START, CHANNEL, MESSAGE, END, CALL, RETURN, "<|constrain|>", NULL};

bool sl_harmony_template(const char *src) { return src && strstr(src, CHANNEL) && strstr(src, MESSAGE); }


/* Where a streamed text t[from, n) must stop: before an end that may still become a marker. */
static size_t safe_end(const char *t, size_t from, size_t n) {
    size_t hold = 0;
    for (size_t k = 0; MARKERS[k]; k++) {
        const size_t l = sl_scan_partial(t, from, n, MARKERS[k]);
        if (l > hold) hold = l;
    }
    return n - hold;
}

/* The value of `key` (e.g. "to=") in a header h[0, n): up to a space, '<' or the end. */
static bool header_value(const char *h, size_t n, const char *key, const char **v, size_t *vn) {
    const size_t kl = strlen(key);
    for (size_t i = 0; i + kl <= n; i++) {
        if (memcmp(h + i, key, kl) || (i > 0 && h[i - 1] != ' ' && h[i - 1] != '>')) continue;
        size_t j = i + kl;
        while (j < n && h[j] != ' ' && h[j] != '<') j++;
        *v = h + i + kl;
        *vn = j - i - kl;
        return true;
    }
    return false;
}

/* A call to function name[0, nn) with body[0, nb) as its arguments, when the body is a JSON object (as
 * compact JSON); false when it is not (or out of memory): the body is then content. */
static bool add_call(json_t *calls, const char *name, size_t nn, const char *body, size_t nb) {
    if (nn == 0 || memchr(name, 0, nn)) return false;
    json_t *args = json_loadb(body, nb, 0, NULL);
    char *text = json_is_object(args) ? json_dumps(args, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(args);
    char *nm = text ? strndup(name, nn) : NULL; /* (JSON strings are UTF-8: a byte that begins no character becomes '?') */
    if (nm) sl_utf8_scrub(nm);
    json_t *c = nm ? json_pack("{s:s,s:s}", "name", nm, "arguments", text) : NULL;
    free(text);
    free(nm);
    return c && !json_array_append_new(calls, c);
}

bool sl_harmony_split(const char *t, size_t n, bool think, bool calls, bool fin, sl_harmony *out) {
    memset(out, 0, sizeof *out);
    sl_strbuf r = {0}, c = {0};
    json_t *cl = json_array();
    bool ok = cl != NULL;
    size_t i = 0;
    while (ok && i < n) {
        /* text outside a message: content, up to the next header */
        const size_t hs = sl_scan_find(t, n, i, START), hc = sl_scan_find(t, n, i, CHANNEL), h = hs < hc ? hs : hc;
        const size_t out_end = h < n ? h : fin ? n : safe_end(t, i, n);
        /* (the end markers a model may repeat between messages are not content) */
        size_t a = i;
        for (bool again = true; again;) {
            again = false;
            for (const char *const *m = (const char *const[]){END, CALL, RETURN, NULL}; *m; m++)
                if (out_end - a >= strlen(*m) && !memcmp(t + a, *m, strlen(*m))) a += strlen(*m), again = true;
        }
        if (out_end > a) ok &= sl_strbuf_add(&c, t + a, out_end - a);
        if (h >= n) break;
        /* the header, up to <|message|> */
        const size_t m = sl_scan_find(t, n, h, MESSAGE);
        if (m >= n) break; /* not complete yet (or never): nothing of it is content */
        const char *hd = t + h;
        const size_t hn = m - h;
        const char *chan = "", *to = NULL;
        size_t chn = 0, ton = 0;
        const size_t cpos = sl_scan_find(hd, hn, 0, CHANNEL);
        if (cpos < hn) {
            chan = hd + cpos + strlen(CHANNEL);
            while (chn < hn - cpos - strlen(CHANNEL) && chan[chn] != ' ' && chan[chn] != '<') chn++;
        }
        header_value(hd, hn, "to=", &to, &ton);
        /* the body, up to its end marker (a new message's start ends it too) */
        const size_t b = m + strlen(MESSAGE);
        size_t e = n;
        const char *const ends[] = {END, CALL, RETURN, START, CHANNEL};
        for (size_t k = 0; k < sizeof ends / sizeof ends[0]; k++) {
            const size_t x = sl_scan_find(t, n, b, ends[k]);
            if (x < e) e = x;
        }
        const bool closed = e < n;
        const size_t be = closed || fin ? e : safe_end(t, b, n);
        const bool is_call = to && ton > 10 && !memcmp(to, "functions.", 10);
        if (is_call && calls && (closed || fin) && add_call(cl, to + 10, ton - 10, t + b, e - b)) {
            /* a call */
        } else if (is_call && calls && !closed && !fin) {
            /* a call's body: nothing until its message ends */
        } else if (chn == 8 && !memcmp(chan, "analysis", 8) && think) {
            ok &= sl_strbuf_add(&r, t + b, be - b);
        } else if (!is_call || closed || fin) {
            ok &= sl_strbuf_add(&c, t + b, be - b);
        }
        if (!closed) break;
        i = e;
        for (const char *const *mk = (const char *const[]){END, CALL, RETURN, NULL}; *mk; mk++)
            if (n - i >= strlen(*mk) && !memcmp(t + i, *mk, strlen(*mk))) {
                i += strlen(*mk);
                break;
            }
    }
    return sl_harmony_take(out, &r, &c, cl, ok);
}

bool sl_harmony_take(sl_harmony *out, sl_strbuf *r, sl_strbuf *c, json_t *calls, bool ok) {
    ok = ok && sl_strbuf_add(r, "", 0) && sl_strbuf_add(c, "", 0); /* (allocated, NUL-terminated, even when empty) */
    if (!ok) {
        free(r->p);
        free(c->p);
        json_decref(calls);
        return false;
    }
    out->reasoning = r->p;
    out->n_reasoning = r->n;
    out->content = c->p;
    out->n_content = c->n;
    if (json_array_size(calls)) out->calls = calls;
    else json_decref(calls);
    return true;
}

void sl_harmony_free(sl_harmony *h) {
    free(h->reasoning);
    free(h->content);
    json_decref(h->calls);
    memset(h, 0, sizeof *h);
}

/*
 * sse.c — incremental Server-Sent Events parser (see sse.h).
 *
 * Design: bytes up to the next CR or LF are copied into the line buffer in
 * one piece (memchr-like scan); a complete line is interpreted at once. A CR
 * ending a line sets after_cr so that an LF arriving in the next feed() is
 * taken as the second half of CRLF, not as an empty line. Buffers grow by
 * doubling, bounded by max_event.
 */
#include "client/sse.h"

#include "core/alloc.h"
#include "core/status.h"

#include <string.h>

static const unsigned char BOM[3] = {0xEF, 0xBB, 0xBF};

void sl_sse_init(sl_sse *p, size_t max_event) {
    memset(p, 0, sizeof *p);
    p->max_event = max_event ? max_event : 1;
}

void sl_sse_deinit(sl_sse *p) {
    if (!p) return;
    sl_free(p->line);
    sl_free(p->data);
    memset(p, 0, sizeof *p);
}

void sl_sse_reset(sl_sse *p) {
    p->n_line = 0;
    p->n_data = 0;
    p->type[0] = '\0';
    p->has_data = false;
    p->after_cr = false;
    p->bom_seen = 0;
    p->failed = false;
}

bool sl_sse_partial(const sl_sse *p) { return p->n_line > 0 || p->n_data > 0 || p->type[0] != '\0'; }

/* Make room for `need` bytes (plus a NUL) in *buf. */
static sl_status reserve(char **buf, size_t *cap, size_t need) {
    if (need + 1 <= *cap) return SL_OK;
    size_t c = *cap ? *cap : 256;
    while (c < need + 1) c *= 2;
    char *nb = sl_realloc(*buf, c);
    if (!nb) return SL_FAIL(SL_ERR_NOMEM, "SSE parser: cannot grow a buffer to %zu bytes", c);
    *buf = nb;
    *cap = c;
    return SL_OK;
}

static sl_status fail(sl_sse *p, sl_status st) {
    p->failed = true;
    return st;
}

static sl_status line_append(sl_sse *p, const char *s, size_t n) {
    if (n == 0) return SL_OK;
    if (p->n_line + n > p->max_event)
        return fail(p, SL_FAIL(SL_ERR_PROTO, "SSE line longer than %zu bytes", p->max_event));
    sl_status st = reserve(&p->line, &p->cap_line, p->n_line + n);
    if (st) return fail(p, st);
    memcpy(p->line + p->n_line, s, n);
    p->n_line += n;
    return SL_OK;
}

static sl_status dispatch(sl_sse *p, sl_sse_cb cb, void *ud) {
    if (p->n_data == 0) { /* no data: no event, and the type is forgotten */
        p->type[0] = '\0';
        return SL_OK;
    }
    p->n_data--; /* the '\n' after the last data line */
    p->data[p->n_data] = '\0';
    sl_sse_event ev = {.type = p->type[0] ? p->type : "message", .data = p->data, .data_len = p->n_data};
    int stop = cb ? cb(ud, &ev) : 0;
    p->n_data = 0;
    p->type[0] = '\0';
    p->has_data = false;
    return stop ? SL_FAIL(SL_ERR_CLOSED, "SSE consumer stopped the stream") : SL_OK;
}

/* Interpret the complete line in p->line[0..n_line). */
static sl_status process_line(sl_sse *p, sl_sse_cb cb, void *ud) {
    size_t n = p->n_line;
    p->n_line = 0;
    if (n == 0) return dispatch(p, cb, ud);
    const char *l = p->line;
    if (l[0] == ':') return SL_OK; /* comment */
    const char *colon = memchr(l, ':', n);
    size_t n_field = colon ? (size_t)(colon - l) : n;
    const char *val = colon ? colon + 1 : l + n;
    size_t n_val = (size_t)(l + n - val);
    if (n_val && val[0] == ' ') {
        val++;
        n_val--;
    }
    if (n_field == 4 && !memcmp(l, "data", 4)) {
        if (p->n_data + n_val + 1 > p->max_event)
            return fail(p, SL_FAIL(SL_ERR_PROTO, "SSE event data longer than %zu bytes", p->max_event));
        sl_status st = reserve(&p->data, &p->cap_data, p->n_data + n_val + 1);
        if (st) return fail(p, st);
        memcpy(p->data + p->n_data, val, n_val);
        p->n_data += n_val;
        p->data[p->n_data++] = '\n';
        p->has_data = true;
    } else if (n_field == 5 && !memcmp(l, "event", 5)) {
        size_t k = n_val < sizeof p->type - 1 ? n_val : sizeof p->type - 1;
        memcpy(p->type, val, k);
        p->type[k] = '\0';
    }
    /* id, retry and unknown fields: nothing a benchmark client needs */
    return SL_OK;
}

sl_status sl_sse_feed(sl_sse *p, const char *buf, size_t len, sl_sse_cb cb, void *ud) {
    if (p->failed) return SL_FAIL(SL_ERR_PROTO, "SSE parser: input after an earlier error");
    size_t i = 0;
    while (p->bom_seen < 3 && i < len) {
        if ((unsigned char)buf[i] == BOM[p->bom_seen]) {
            p->bom_seen++;
            i++;
            continue;
        }
        /* not a BOM after all: the bytes matched so far are line content */
        size_t k = p->bom_seen;
        p->bom_seen = 3;
        sl_status st = line_append(p, (const char *)BOM, k);
        if (st) return st;
    }
    while (i < len) {
        if (p->after_cr) {
            p->after_cr = false;
            if (buf[i] == '\n') {
                i++;
                continue;
            }
        }
        size_t j = i;
        while (j < len && buf[j] != '\n' && buf[j] != '\r') j++;
        sl_status st = line_append(p, buf + i, j - i);
        if (st) return st;
        if (j == len) break;
        p->after_cr = buf[j] == '\r';
        i = j + 1;
        st = process_line(p, cb, ud);
        if (st) return st;
    }
    return SL_OK;
}

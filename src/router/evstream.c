/*
 * evstream.c — Server-Sent Events framing (see evstream.h). Events end at a blank line:
 * "\n\n", "\r\n\r\n" or a mix; lone "\r" line ends are not used by engines and
 * are not recognised.
 */
#include "evstream.h"

#include "core/alloc.h"
#include "core/status.h"

#include <string.h>

void sl_evstream_init(sl_evstream *s, size_t max_event) {
    memset(s, 0, sizeof *s);
    s->max_event = max_event;
}

void sl_evstream_deinit(sl_evstream *s) {
    sl_free(s->buf);
    memset(s, 0, sizeof *s);
}

size_t sl_evstream_pending(const sl_evstream *s) { return s->n; }

/* End of the first event in buf[0..n) from `from`: index just past its blank line, or 0. */
static size_t find_end(const char *b, size_t n, size_t from, size_t *ev_len) {
    for (size_t i = from; i < n; i++) {
        if (b[i] != '\n') continue;
        size_t j = i + 1;
        if (j < n && b[j] == '\r') j++;
        if (j < n && b[j] == '\n') {
            size_t e = i;
            if (e > 0 && b[e - 1] == '\r') e--;
            *ev_len = e;
            return j + 1;
        }
    }
    return 0;
}

sl_status sl_evstream_feed(sl_evstream *s, const char *p, size_t n, sl_evstream_fn fn, void *ctx) {
    if (s->n + n + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->n + n + 1) cap *= 2;
        char *nb = sl_realloc(s->buf, cap);
        if (!nb) return SL_FAIL(SL_ERR_NOMEM, "SSE: out of memory for %zu bytes", s->n + n);
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->n, p, n);
    s->n += n;
    size_t start = 0;
    sl_status st = SL_OK;
    bool too_long = false;
    for (;;) {
        size_t ev_len, end = find_end(s->buf + start, s->n - start, s->scan, &ev_len);
        if (!end) break;
        s->scan = 0;
        if (ev_len > s->max_event) { /* however the bytes arrived: the same limit as for a partial event */
            too_long = true;
            break;
        }
        char *ev = s->buf + start;
        char saved = ev[ev_len];
        ev[ev_len] = '\0';
        bool go = fn(ctx, ev, ev_len);
        ev[ev_len] = saved;
        start += end;
        if (!go) {
            st = SL_ERR_CLOSED;
            break;
        }
    }
    if (start) {
        memmove(s->buf, s->buf + start, s->n - start);
        s->n -= start;
    }
    if (st == SL_OK) s->scan = s->n >= 3 ? s->n - 3 : 0;
    /* a partial event may hold up to 3 bytes of its blank line beyond the limit */
    if (too_long || s->n > s->max_event + 3)
        return SL_FAIL(SL_ERR_PROTO, "SSE: an event is longer than %zu bytes", s->max_event);
    return st;
}

bool sl_evstream_line(const char *ev, size_t n, size_t *pos, const char **line, size_t *len) {
    if (*pos >= n) return false;
    const char *s = ev + *pos;
    const char *nl = memchr(s, '\n', n - *pos);
    size_t l = nl ? (size_t)(nl - s) : n - *pos;
    *pos += l + (nl ? 1 : 0);
    if (l && s[l - 1] == '\r') l--;
    *line = s;
    *len = l;
    return true;
}

bool sl_evstream_field(const char *line, size_t len, const char *name, const char **val, size_t *vlen) {
    size_t k = strlen(name);
    if (len < k + 1 || memcmp(line, name, k) != 0 || line[k] != ':') return false;
    const char *v = line + k + 1;
    size_t vl = len - k - 1;
    if (vl && *v == ' ') {
        v++;
        vl--;
    }
    *val = v;
    *vlen = vl;
    return true;
}

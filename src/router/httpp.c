/*
 * httpp.c — HTTP/1.x message parser (see httpp.h).
 */
#include "httpp.h"

#include "core/alloc.h"

#include <ctype.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum { B_PLAIN, B_CHUNK_SIZE, B_CHUNK_DATA, B_CHUNK_END, B_TRAILER };

#define MAX_BODY_LEN (1ULL << 53)

void sl_hp_init(sl_hp *p, sl_hp_kind kind) {
    memset(p, 0, sizeof *p);
    p->kind = kind;
    p->content_length = -1;
}

void sl_hp_deinit(sl_hp *p) {
    if (!p) return;
    sl_free(p->head);
    p->head = NULL;
    p->cap_head = 0;
}

void sl_hp_reset(sl_hp *p) {
    char *head = p->head;
    size_t cap = p->cap_head;
    sl_hp_kind kind = p->kind;
    memset(p, 0, offsetof(sl_hp, err));
    p->err[0] = '\0';
    p->head = head;
    p->cap_head = cap;
    p->kind = kind;
    p->content_length = -1;
}

static void fail(sl_hp *p, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(sl_hp *p, int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err, sizeof p->err, fmt, ap);
    va_end(ap);
    p->err_status = status;
    p->state = SL_HP_ERROR;
}

const sl_hp_hdr *sl_hp_header(const sl_hp *p, const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < p->n_hdrs; i++)
        if (p->hdrs[i].name_len == n && !strncasecmp(p->hdrs[i].name, name, n)) return &p->hdrs[i];
    return NULL;
}

bool sl_hp_header_has(const sl_hp *p, const char *name, const char *token) {
    size_t n = strlen(name), tn = strlen(token);
    for (int i = 0; i < p->n_hdrs; i++) {
        if (p->hdrs[i].name_len != n || strncasecmp(p->hdrs[i].name, name, n)) continue;
        const char *v = p->hdrs[i].value, *end = v + p->hdrs[i].value_len;
        while (v < end) {
            while (v < end && (*v == ' ' || *v == '\t' || *v == ',')) v++;
            const char *s = v;
            while (v < end && *v != ',') v++;
            const char *e = v;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
            if ((size_t)(e - s) == tn && !strncasecmp(s, token, tn)) return true;
        }
    }
    return false;
}

static bool is_tchar(unsigned char c) {
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Parse "HTTP/1.x"; returns the minor version or -1. */
static int parse_version(const char *s, size_t n) {
    if (n != 8 || memcmp(s, "HTTP/1.", 7) != 0 || (s[7] != '0' && s[7] != '1')) return -1;
    return s[7] - '0';
}

/* Split the gathered head into start line and headers; decide the framing. */
static void parse_head(sl_hp *p) {
    char *s = p->head, *end = p->head + p->n_head;
    char *lines[SL_HP_MAX_HEADERS + 2];
    size_t lens[SL_HP_MAX_HEADERS + 2];
    int n_lines = 0;
    while (s < end) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        if (!nl) break;
        char *le = nl;
        if (le > s && le[-1] == '\r') le--;
        if (le == s) break; /* the blank line */
        if (n_lines == SL_HP_MAX_HEADERS + 1) {
            fail(p, 431, "more than %d header fields", SL_HP_MAX_HEADERS);
            return;
        }
        lines[n_lines] = s;
        lens[n_lines++] = (size_t)(le - s);
        *le = '\0';
        s = nl + 1;
    }
    if (n_lines == 0) {
        fail(p, 400, "empty request line");
        return;
    }
    /* start line */
    char *l = lines[0];
    size_t ln = lens[0];
    if (p->kind == SL_HP_REQUEST) {
        char *sp1 = memchr(l, ' ', ln);
        char *sp2 = sp1 ? memchr(sp1 + 1, ' ', ln - (size_t)(sp1 + 1 - l)) : NULL;
        if (!sp1 || !sp2 || sp1 == l || sp2 == sp1 + 1) {
            fail(p, 400, "malformed request line '%.60s'", l);
            return;
        }
        for (char *c = l; c < sp1; c++)
            if (!is_tchar((unsigned char)*c)) {
                fail(p, 400, "malformed method in '%.60s'", l);
                return;
            }
        p->minor = parse_version(sp2 + 1, ln - (size_t)(sp2 + 1 - l));
        if (p->minor < 0) {
            fail(p, 505, "unsupported HTTP version in '%.60s'", l);
            return;
        }
        *sp1 = '\0';
        *sp2 = '\0';
        p->method = l;
        p->target = sp1 + 1;
    } else {
        if (ln < 12 || (p->minor = parse_version(l, 8)) < 0 || l[8] != ' ' || !isdigit((unsigned char)l[9]) ||
            !isdigit((unsigned char)l[10]) || !isdigit((unsigned char)l[11]) || (ln > 12 && l[12] != ' ')) {
            fail(p, 502, "malformed status line '%.60s'", l);
            return;
        }
        p->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
        if (p->status < 100) {
            fail(p, 502, "status %d out of range", p->status);
            return;
        }
    }
    /* headers */
    int bad = p->kind == SL_HP_REQUEST ? 400 : 502;
    p->n_hdrs = 0;
    bool te_seen = false;
    for (int i = 1; i < n_lines; i++) {
        char *h = lines[i];
        size_t hn = lens[i];
        if (h[0] == ' ' || h[0] == '\t') {
            fail(p, bad, "obsolete header line folding");
            return;
        }
        char *colon = memchr(h, ':', hn);
        if (!colon || colon == h) {
            fail(p, bad, "header line without a name: '%.60s'", h);
            return;
        }
        for (char *c = h; c < colon; c++)
            if (!is_tchar((unsigned char)*c)) {
                fail(p, bad, "invalid character in header name '%.*s'", (int)(colon - h) > 60 ? 60 : (int)(colon - h), h);
                return;
            }
        char *v = colon + 1, *ve = h + hn;
        while (v < ve && (*v == ' ' || *v == '\t')) v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        for (char *c = v; c < ve; c++)
            if ((unsigned char)*c < 0x20 && *c != '\t') {
                fail(p, bad, "control character in header '%.*s'", (int)(colon - h) > 60 ? 60 : (int)(colon - h), h);
                return;
            }
        *colon = '\0';
        *ve = '\0';
        sl_hp_hdr *d = &p->hdrs[p->n_hdrs++];
        d->name = h;
        d->name_len = (size_t)(colon - h);
        d->value = v;
        d->value_len = (size_t)(ve - v);
        if (d->name_len == 14 && !strncasecmp(h, "content-length", 14)) {
            if (d->value_len == 0 || d->value_len > 16) {
                fail(p, bad, "invalid Content-Length '%.20s'", v);
                return;
            }
            uint64_t x = 0;
            for (size_t k = 0; k < d->value_len; k++) {
                if (!isdigit((unsigned char)v[k])) {
                    fail(p, bad, "invalid Content-Length '%.20s'", v);
                    return;
                }
                x = x * 10 + (uint64_t)(v[k] - '0');
            }
            if (x > MAX_BODY_LEN) {
                fail(p, bad, "Content-Length %llu is too large", (unsigned long long)x);
                return;
            }
            if (p->content_length >= 0 && (uint64_t)p->content_length != x) {
                fail(p, bad, "two different Content-Length values");
                return;
            }
            p->content_length = (int64_t)x;
        } else if (d->name_len == 17 && !strncasecmp(h, "transfer-encoding", 17)) {
            te_seen = true;
        }
    }
    /* framing */
    p->keep_alive = p->minor >= 1 ? !sl_hp_header_has(p, "Connection", "close")
                                  : sl_hp_header_has(p, "Connection", "keep-alive");
    if (te_seen) {
        /* chunked must be the last coding; we decode no other */
        const sl_hp_hdr *te = sl_hp_header(p, "Transfer-Encoding");
        const char *v = te->value;
        size_t n = te->value_len;
        bool chunked_last =
            n >= 7 && !strncasecmp(v + n - 7, "chunked", 7) && (n == 7 || v[n - 8] == ' ' || v[n - 8] == ',');
        bool only_chunked = chunked_last && n == 7;
        for (int i = 0; i < p->n_hdrs; i++)
            if (&p->hdrs[i] != te && p->hdrs[i].name_len == 17 && !strncasecmp(p->hdrs[i].name, "transfer-encoding", 17))
                only_chunked = false;
        if (p->kind == SL_HP_REQUEST) {
            if (p->content_length >= 0) {
                fail(p, 400, "both Transfer-Encoding and Content-Length");
                return;
            }
            if (!only_chunked) {
                fail(p, chunked_last ? 501 : 400, "unsupported Transfer-Encoding '%.40s'", v);
                return;
            }
            p->chunked = true;
        } else if (only_chunked) {
            p->chunked = true;
        } else {
            if (chunked_last) {
                fail(p, 502, "unsupported Transfer-Encoding '%.40s'", v);
                return;
            }
            p->until_close = true;
        }
        p->content_length = -1;
    }
    p->state = SL_HP_BODY;
    if (p->kind == SL_HP_RESPONSE &&
        (p->head_only || (p->status >= 100 && p->status < 200) || p->status == 204 || p->status == 304)) {
        p->chunked = p->until_close = false;
        p->state = SL_HP_DONE;
        return;
    }
    if (p->chunked) {
        p->body_state = B_CHUNK_SIZE;
    } else if (p->content_length >= 0) {
        p->body_state = B_PLAIN;
        p->remaining = (uint64_t)p->content_length;
        if (p->remaining == 0) p->state = SL_HP_DONE;
    } else if (p->kind == SL_HP_RESPONSE) {
        p->until_close = true;
        p->keep_alive = false;
        p->body_state = B_PLAIN;
    } else {
        p->state = SL_HP_DONE; /* a request without a body */
    }
}

static size_t feed_head(sl_hp *p, const char *buf, size_t len) {
    size_t used = 0;
    /* tolerate empty lines before a start line (RFC 9112 2.2) */
    if (p->n_head == 0)
        while (used < len && (buf[used] == '\r' || buf[used] == '\n')) used++;
    if (used == len) return used;
    size_t take = len - used;
    if (take > SL_HP_MAX_HEAD - p->n_head) take = SL_HP_MAX_HEAD - p->n_head;
    if (p->n_head + take + 1 > p->cap_head) {
        size_t cap = p->cap_head ? p->cap_head : 1024;
        while (cap < p->n_head + take + 1) cap *= 2;
        char *nh = sl_realloc(p->head, cap);
        if (!nh) {
            fail(p, 500, "out of memory for the message head");
            return used;
        }
        p->head = nh;
        p->cap_head = cap;
    }
    size_t old = p->n_head;
    memcpy(p->head + old, buf + used, take);
    p->n_head += take;
    /* look for "\n\r\n" or "\n\n" from a little before the new bytes */
    size_t i = p->scan;
    for (; i < p->n_head; i++) {
        if (p->head[i] != '\n') continue;
        if (i + 1 < p->n_head && p->head[i + 1] == '\n') {
            i += 2;
            goto found;
        }
        if (i + 2 < p->n_head && p->head[i + 1] == '\r' && p->head[i + 2] == '\n') {
            i += 3;
            goto found;
        }
    }
    p->scan = p->n_head >= 2 ? p->n_head - 2 : 0;
    if (p->n_head >= SL_HP_MAX_HEAD) {
        fail(p, p->kind == SL_HP_REQUEST ? 431 : 502, "the message head is larger than %d bytes", SL_HP_MAX_HEAD);
        return used + take;
    }
    return used + take;
found:
    used += i - old;
    p->n_head = i;
    p->head[i] = '\0';
    parse_head(p);
    return used;
}

/* Read one line of a chunked body into p->line; true when the line is complete. */
static bool take_line(sl_hp *p, const char *buf, size_t len, size_t *k) {
    while (*k < len) {
        char c = buf[(*k)++];
        if (c == '\n') {
            if (p->n_line && p->line[p->n_line - 1] == '\r') p->n_line--;
            p->line[p->n_line] = '\0';
            return true;
        }
        if (p->n_line + 1 >= sizeof p->line) {
            fail(p, p->kind == SL_HP_REQUEST ? 400 : 502, "chunk-size or trailer line longer than %zu bytes",
                 sizeof p->line - 2);
            return false;
        }
        p->line[p->n_line++] = c;
    }
    return false;
}

static size_t feed_body(sl_hp *p, const char *buf, size_t len, sl_hp_body_fn on_body, void *ctx, bool *stopped) {
    size_t k = 0;
    int bad = p->kind == SL_HP_REQUEST ? 400 : 502;
    while (k < len && p->state == SL_HP_BODY) {
        switch (p->body_state) {
        case B_PLAIN:
        case B_CHUNK_DATA: {
            size_t n = len - k;
            if (!p->until_close && n > p->remaining) n = (size_t)p->remaining;
            if (n) {
                p->body_bytes += n;
                if (!p->until_close) p->remaining -= n;
                bool go = !on_body || on_body(ctx, buf + k, n);
                k += n;
                *stopped = !go;
            }
            if (!p->until_close && p->remaining == 0) {
                if (p->body_state == B_PLAIN) p->state = SL_HP_DONE;
                else p->body_state = B_CHUNK_END;
            }
            if (*stopped) return k;
            break;
        }
        case B_CHUNK_SIZE: {
            if (!take_line(p, buf, len, &k)) break;
            const char *s = p->line;
            uint64_t x = 0;
            int digits = 0;
            for (; isxdigit((unsigned char)*s); s++, digits++) {
                if (digits == 15) {
                    fail(p, bad, "chunk size '%.20s' is too large", p->line);
                    return k;
                }
                x = x * 16 + (uint64_t)(isdigit((unsigned char)*s) ? *s - '0' : (tolower((unsigned char)*s) - 'a' + 10));
            }
            while (*s == ' ' || *s == '\t') s++;
            if (!digits || (*s && *s != ';')) {
                fail(p, bad, "invalid chunk size line '%.20s'", p->line);
                return k;
            }
            p->n_line = 0;
            if (x == 0) {
                p->body_state = B_TRAILER;
            } else {
                p->remaining = x;
                p->body_state = B_CHUNK_DATA;
            }
            break;
        }
        case B_CHUNK_END:
            if (!take_line(p, buf, len, &k)) break;
            if (p->n_line != 0) {
                fail(p, bad, "chunk data longer than its size");
                return k;
            }
            p->body_state = B_CHUNK_SIZE;
            break;
        case B_TRAILER:
            if (!take_line(p, buf, len, &k)) break;
            if (p->n_line == 0) p->state = SL_HP_DONE;
            p->n_line = 0;
            break;
        }
    }
    return k;
}

size_t sl_hp_feed(sl_hp *p, const char *buf, size_t len, sl_hp_body_fn on_body, void *ctx) {
    size_t k = 0;
    while (k < len && (p->state == SL_HP_HEAD || p->state == SL_HP_BODY)) {
        if (p->state == SL_HP_HEAD) {
            k += feed_head(p, buf + k, len - k);
            /* interim responses (100 Continue ...) are skipped */
            if (p->kind == SL_HP_RESPONSE && p->state == SL_HP_DONE && p->status >= 100 && p->status < 200 &&
                p->status != 101) {
                bool head_only = p->head_only;
                sl_hp_reset(p);
                p->head_only = head_only;
            }
        } else {
            bool stopped = false;
            k += feed_body(p, buf + k, len - k, on_body, ctx, &stopped);
            if (stopped) break; /* on_body asked to stop */
        }
    }
    return k;
}

sl_hp_state sl_hp_eof(sl_hp *p) {
    if (p->state == SL_HP_BODY && p->until_close) {
        p->state = SL_HP_DONE;
    } else if (p->state == SL_HP_HEAD && p->n_head == 0) {
        fail(p, 0, "connection closed before a message");
    } else if (p->state == SL_HP_HEAD || p->state == SL_HP_BODY) {
        fail(p, p->kind == SL_HP_REQUEST ? 400 : 502, "connection closed in the middle of the message (%s)",
             p->state == SL_HP_HEAD ? "head" : "body");
    }
    return p->state;
}

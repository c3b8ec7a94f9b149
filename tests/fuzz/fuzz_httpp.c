/*
 * fuzz_httpp.c — libFuzzer target for the router's HTTP/1.x parser
 * (src/router/httpp.c, `make fuzz`).
 *
 * Input: one selector byte (bit 0: responses instead of requests; bit 1: the
 * request was HEAD; bits 2-7: the seed of the piece sizes), then the bytes a
 * peer sends on one connection, ending with its close. They are parsed as
 * pipelined messages (reset after each, at most 16), once fed whole and once
 * in pieces of 1..8 bytes; both runs must tell the same story, message by
 * message: state, start line, headers, framing, the decoded body (length and
 * a hash) and the error. Also checked: an error carries a message (and a 4xx
 * or 5xx status, except a close before any byte); a body never exceeds its
 * Content-Length; header slices lie inside the head buffer.
 *
 * tests/unit/test_router_proto.c includes this file (FUZZ_HTTPP_NO_MAIN) and
 * replays tests/fuzz/corpus/httpp through fuzz_httpp_one().
 */
#include "router/httpp.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_httpp_check(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_httpp: invariant violated: %s\n", what);
        abort();
    }
}

typedef struct fuzz_httpp_body {
    uint64_t n;
    uint32_t h;
} fuzz_httpp_body;

static bool fuzz_httpp_on_body(void *ctx, const char *p, size_t n) {
    fuzz_httpp_body *b = ctx;
    for (size_t i = 0; i < n; i++) b->h = (b->h ^ (uint8_t)p[i]) * 16777619u;
    b->n += n;
    return true;
}

/* Appends to a bounded transcript (truncation is the same for both runs). */
typedef struct fuzz_httpp_log {
    char s[16384];
    size_t n;
} fuzz_httpp_log;

static void fuzz_httpp_put(fuzz_httpp_log *l, const char *p, size_t n) {
    for (size_t i = 0; i < n && l->n + 1 < sizeof l->s; i++) l->s[l->n++] = p[i];
    l->s[l->n] = '\0';
}

static void fuzz_httpp_summary(const sl_hp *p, const fuzz_httpp_body *b, fuzz_httpp_log *l) {
    char buf[512];
    int k = snprintf(buf, sizeof buf, "[state %d status %d minor %d ka %d chunked %d close %d cl %lld body %llu/%08x",
                     (int)p->state, p->status, p->minor, p->keep_alive, p->chunked, p->until_close,
                     (long long)p->content_length, (unsigned long long)b->n, (unsigned)b->h);
    fuzz_httpp_put(l, buf, (size_t)k);
    if (p->state == SL_HP_ERROR) {
        fuzz_httpp_check(p->err[0] != '\0', "an error has a message");
        fuzz_httpp_check(p->err_status == 0 || (p->err_status >= 400 && p->err_status < 600),
                         "an error status is 4xx or 5xx (0: closed before a message)");
        k = snprintf(buf, sizeof buf, " err %d %s", p->err_status, p->err);
        fuzz_httpp_put(l, buf, (size_t)k);
    }
    if (p->state == SL_HP_BODY || p->state == SL_HP_DONE) {
        if (p->kind == SL_HP_REQUEST) {
            fuzz_httpp_check(p->method && p->target, "a parsed request has a method and a target");
            fuzz_httpp_put(l, " ", 1);
            fuzz_httpp_put(l, p->method, strlen(p->method));
            fuzz_httpp_put(l, " ", 1);
            fuzz_httpp_put(l, p->target, strlen(p->target));
        }
        fuzz_httpp_check(p->n_hdrs >= 0 && p->n_hdrs <= SL_HP_MAX_HEADERS, "header count in bounds");
        for (int i = 0; i < p->n_hdrs; i++) {
            const sl_hp_hdr *h = &p->hdrs[i];
            fuzz_httpp_check(h->name >= p->head && h->name + h->name_len <= p->head + p->n_head &&
                                 h->value >= p->head && h->value + h->value_len <= p->head + p->n_head,
                             "header slices lie in the head buffer");
            fuzz_httpp_put(l, " | ", 3);
            fuzz_httpp_put(l, h->name, h->name_len);
            fuzz_httpp_put(l, ": ", 2);
            fuzz_httpp_put(l, h->value, h->value_len);
        }
        if (p->content_length >= 0 && !p->chunked)
            fuzz_httpp_check(b->n <= (uint64_t)p->content_length, "a body stays within its Content-Length");
    }
    fuzz_httpp_put(l, "]", 1);
}

/* Parse data as a connection's messages, in pieces of `seed`-chosen sizes (0: whole). */
static void fuzz_httpp_run(sl_hp_kind kind, bool head_only, const char *data, size_t len, unsigned seed,
                           fuzz_httpp_log *l) {
    sl_hp p;
    sl_hp_init(&p, kind);
    p.head_only = head_only;
    size_t k = 0;
    uint32_t r = seed * 2654435761u + 1;
    for (int msg = 0; msg < 16; msg++) {
        fuzz_httpp_body b = {0, 2166136261u};
        while (k < len && (p.state == SL_HP_HEAD || p.state == SL_HP_BODY)) {
            size_t n = len - k;
            if (seed) {
                r = r * 1103515245u + 12345u;
                const size_t step = 1 + (r >> 16) % 8;
                if (n > step) n = step;
            }
            const size_t used = sl_hp_feed(&p, data + k, n, fuzz_httpp_on_body, &b);
            fuzz_httpp_check(used <= n, "feed consumes at most what it is given");
            k += used;
            if (used < n) break;
        }
        if (k >= len && (p.state == SL_HP_HEAD || p.state == SL_HP_BODY)) sl_hp_eof(&p);
        fuzz_httpp_summary(&p, &b, l);
        if (p.state != SL_HP_DONE || k >= len) break;
        sl_hp_reset(&p);
        p.head_only = head_only;
    }
    char end[32];
    const int n = snprintf(end, sizeof end, " consumed %zu", k);
    fuzz_httpp_put(l, end, (size_t)n);
    sl_hp_deinit(&p);
}

/* 0 when every message parsed, 1 when one ended in an error (aborts on a broken invariant). */
static int fuzz_httpp_one(const uint8_t *data, size_t len) {
    if (len < 1) return 1;
    const sl_hp_kind kind = data[0] & 1 ? SL_HP_RESPONSE : SL_HP_REQUEST;
    const bool head_only = kind == SL_HP_RESPONSE && (data[0] & 2);
    const unsigned seed = 1 + (data[0] >> 2);
    static fuzz_httpp_log whole, pieces;
    whole.n = pieces.n = 0;
    fuzz_httpp_run(kind, head_only, (const char *)data + 1, len - 1, 0, &whole);
    fuzz_httpp_run(kind, head_only, (const char *)data + 1, len - 1, seed, &pieces);
    if (whole.n != pieces.n || memcmp(whole.s, pieces.s, whole.n) != 0) {
        fprintf(stderr, "whole:  %s\npieces: %s\n", whole.s, pieces.s);
        fuzz_httpp_check(0, "fed whole and in pieces, the messages parse the same");
    }
    return strstr(whole.s, " err ") ? 1 : 0;
}

#ifndef FUZZ_HTTPP_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_httpp_one(data, size);
    return 0;
}
#endif

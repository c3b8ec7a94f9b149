/*
 * fuzz_sse.c — libFuzzer target for the two Server-Sent Events parsers
 * (`make fuzz`): the router's event framer (src/router/evstream.c, with its
 * line and field helpers) and the client's WHATWG parser (src/client/sse.c,
 * loadgen's).
 *
 * Input: one selector byte (bits 0-3: the seed of the piece sizes; bits 4-5:
 * the event limit, 64 << (2 * bits)), then a stream body. Each parser reads it
 * once whole and once in pieces of 1..8 bytes; both runs must deliver the
 * same events in the same order and end in the same state (error or not,
 * bytes pending). Also checked: no event beyond the limit; evstream's lines
 * lie inside their event; an sl_sse event's data is NUL-terminated at
 * data_len and its type is non-empty.
 *
 * tests/unit/test_router_proto.c includes this file (FUZZ_SSE_NO_MAIN) and
 * replays tests/fuzz/corpus/sse through fuzz_sse_one().
 */
#include "client/sse.h"
#include "router/evstream.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_sse_check(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_sse: invariant violated: %s\n", what);
        abort();
    }
}

/* A transcript: a hash chain over everything delivered, and a count. */
typedef struct fuzz_sse_log {
    uint64_t h;
    size_t events;
    size_t max_event;
} fuzz_sse_log;

static void fuzz_sse_mix(fuzz_sse_log *l, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) l->h = (l->h ^ b[i]) * 1099511628211ull;
    l->h = (l->h ^ n) * 1099511628211ull;
}

static bool fuzz_sse_on_ev(void *ctx, char *ev, size_t n) {
    fuzz_sse_log *l = ctx;
    fuzz_sse_check(n <= l->max_event, "an evstream event stays within the limit");
    l->events++;
    fuzz_sse_mix(l, ev, n);
    size_t pos = 0, len;
    const char *line;
    while (sl_evstream_line(ev, n, &pos, &line, &len)) {
        fuzz_sse_check(line >= ev && line + len <= ev + n && pos <= n, "a line lies inside its event");
        const char *v;
        size_t vl;
        if (sl_evstream_field(line, len, "data", &v, &vl)) {
            fuzz_sse_check(v >= line && v + vl <= line + len, "a field value lies inside its line");
            fuzz_sse_mix(l, v, vl);
        }
    }
    return true;
}

static int fuzz_sse_on_event(void *ud, const sl_sse_event *ev) {
    fuzz_sse_log *l = ud;
    fuzz_sse_check(ev->data_len <= l->max_event && ev->data[ev->data_len] == '\0', "sse data bounded, NUL-terminated");
    fuzz_sse_check(ev->type && ev->type[0], "an sse event has a type");
    l->events++;
    fuzz_sse_mix(l, ev->type, strlen(ev->type));
    fuzz_sse_mix(l, ev->data, ev->data_len);
    return 0;
}

/* Piece sizes from seed (0: the whole body at once). */
static size_t fuzz_sse_step(uint32_t *r, unsigned seed, size_t left) {
    if (!seed) return left;
    *r = *r * 1103515245u + 12345u;
    const size_t s = 1 + (*r >> 16) % 8;
    return s < left ? s : left;
}

static void fuzz_sse_evstream(const char *d, size_t n, size_t max_event, unsigned seed, fuzz_sse_log *l) {
    sl_evstream s;
    sl_evstream_init(&s, max_event);
    uint32_t r = seed;
    sl_status st = SL_OK;
    for (size_t k = 0; k < n && st == SL_OK;) {
        const size_t m = fuzz_sse_step(&r, seed, n - k);
        st = sl_evstream_feed(&s, d + k, m, fuzz_sse_on_ev, l);
        k += m;
    }
    const size_t pending = sl_evstream_pending(&s);
    fuzz_sse_mix(l, &st, sizeof st);
    if (st == SL_OK) fuzz_sse_mix(l, &pending, sizeof pending);
    sl_evstream_deinit(&s);
}

static void fuzz_sse_client(const char *d, size_t n, size_t max_event, unsigned seed, fuzz_sse_log *l) {
    sl_sse p;
    sl_sse_init(&p, max_event);
    uint32_t r = seed;
    sl_status st = SL_OK;
    for (size_t k = 0; k < n && st == SL_OK;) {
        const size_t m = fuzz_sse_step(&r, seed, n - k);
        st = sl_sse_feed(&p, d + k, m, fuzz_sse_on_event, l);
        k += m;
    }
    const bool partial = sl_sse_partial(&p);
    fuzz_sse_mix(l, &st, sizeof st);
    if (st == SL_OK) fuzz_sse_mix(l, &partial, sizeof partial);
    sl_sse_deinit(&p);
}

/* Returns how many events the whole-body runs delivered (aborts on a broken invariant). */
static size_t fuzz_sse_one(const uint8_t *data, size_t len) {
    if (len < 1) return 0;
    const unsigned seed = 1 + (data[0] & 15);
    const size_t max_event = (size_t)64 << (2 * ((data[0] >> 4) & 3));
    const char *d = (const char *)data + 1;
    const size_t n = len - 1;
    fuzz_sse_log a = {14695981039346656037ull, 0, max_event}, b = a, c = a, e = a;
    fuzz_sse_evstream(d, n, max_event, 0, &a);
    fuzz_sse_evstream(d, n, max_event, seed, &b);
    fuzz_sse_check(a.h == b.h && a.events == b.events, "evstream: whole and in pieces, the same events");
    fuzz_sse_client(d, n, max_event, 0, &c);
    fuzz_sse_client(d, n, max_event, seed, &e);
    fuzz_sse_check(c.h == e.h && c.events == e.events, "sse: whole and in pieces, the same events");
    return a.events + c.events;
}

#ifndef FUZZ_SSE_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_sse_one(data, size);
    return 0;
}
#endif

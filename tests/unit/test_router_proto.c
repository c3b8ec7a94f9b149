/*
 * test_router_proto.c — the router's protocol parsers without I/O: the HTTP/1.x
 * message parser (src/router/httpp.c) and the SSE framer (src/router/sse.c),
 * each fed whole and one byte at a time (hiredis' habit), with hostile inputs:
 * oversized heads, bad lengths, smuggling combinations, bad chunk sizes;
 * and the fuzz corpora of tests/fuzz/corpus/httpp and sse replayed
 * (fuzz_httpp.c, fuzz_sse.c: fed whole and in pieces, the same messages and
 * events; the SSE corpus also drives the client's parser, src/client/sse.c),
 * and of router_data (fuzz_router_data.c: engine specs, rollout weights,
 * base64, the failover helpers).
 */
#include "harness.h"

#include "router/httpp.h"
#include "router/evstream.h"

#include <stdlib.h>

#define FUZZ_HTTPP_NO_MAIN
#include "../fuzz/fuzz_httpp.c"
#define FUZZ_SSE_NO_MAIN
#include "../fuzz/fuzz_sse.c"
#define FUZZ_ROUTER_DATA_NO_MAIN
#include "../fuzz/fuzz_router_data.c"

typedef struct body {
    char b[8192];
    size_t n;
} body;

static bool on_body(void *ctx, const char *p, size_t n) {
    body *b = ctx;
    if (b->n + n < sizeof b->b) memcpy(b->b + b->n, p, n);
    b->n += n;
    return true;
}

/* Feed `msg` in pieces of `step` bytes (0 = all at once); returns bytes consumed. */
static size_t feed(sl_hp *p, const char *msg, size_t len, size_t step, body *b) {
    size_t k = 0;
    while (k < len && (p->state == SL_HP_HEAD || p->state == SL_HP_BODY)) {
        size_t n = step ? (len - k < step ? len - k : step) : len - k;
        size_t used = sl_hp_feed(p, msg + k, n, on_body, b);
        k += used;
        if (used < n) break;
    }
    return k;
}

TEST(request_whole_and_bytewise) {
    const char *msg = "POST /v1/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                      "Content-Length: 13\r\nX-Session-Id:  abc \r\n\r\n{\"prompt\":1}\nGET /next HTTP/1.1\r\n\r\n";
    size_t first = strlen(msg) - strlen("GET /next HTTP/1.1\r\n\r\n");
    for (size_t step = 0; step <= 3; step++) {
        sl_hp p;
        body b = {0};
        sl_hp_init(&p, SL_HP_REQUEST);
        size_t used = feed(&p, msg, strlen(msg), step, &b);
        CHECK_EQ_INT(p.state, SL_HP_DONE);
        CHECK_EQ_INT(used, first);
        CHECK_STR(p.method, "POST");
        CHECK_STR(p.target, "/v1/completions?x=1");
        CHECK_EQ_INT(p.minor, 1);
        CHECK(p.keep_alive);
        CHECK_EQ_INT(p.content_length, 13);
        CHECK_EQ_INT(b.n, 13);
        CHECK(!memcmp(b.b, "{\"prompt\":1}\n", 13));
        const sl_hp_hdr *h = sl_hp_header(&p, "x-session-id");
        CHECK(h != NULL);
        CHECK_STR(h->value, "abc");
        CHECK_EQ_INT(h->value_len, 3);
        /* the pipelined next request */
        sl_hp_reset(&p);
        b.n = 0;
        used = feed(&p, msg + first, strlen(msg + first), step, &b);
        CHECK_EQ_INT(p.state, SL_HP_DONE);
        CHECK_STR(p.method, "GET");
        CHECK_STR(p.target, "/next");
        CHECK_EQ_INT(b.n, 0);
        sl_hp_deinit(&p);
    }
}

TEST(request_chunked_body) {
    const char *msg = "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\n";
    for (size_t step = 0; step <= 2; step++) {
        sl_hp p;
        body b = {0};
        sl_hp_init(&p, SL_HP_REQUEST);
        size_t used = feed(&p, msg, strlen(msg), step, &b);
        CHECK_EQ_INT(p.state, SL_HP_DONE);
        CHECK_EQ_INT(used, strlen(msg));
        CHECK_EQ_INT(b.n, 12);
        CHECK(!memcmp(b.b, "hello, world", 12));
        sl_hp_deinit(&p);
    }
}

TEST(http10_and_connection_close) {
    sl_hp p;
    sl_hp_init(&p, SL_HP_REQUEST);
    const char *a = "GET / HTTP/1.0\r\n\r\n";
    CHECK_EQ_INT(sl_hp_feed(&p, a, strlen(a), NULL, NULL), strlen(a));
    CHECK(!p.keep_alive);
    sl_hp_reset(&p);
    const char *b = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    sl_hp_feed(&p, b, strlen(b), NULL, NULL);
    CHECK(p.keep_alive);
    sl_hp_reset(&p);
    const char *c = "GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n";
    sl_hp_feed(&p, c, strlen(c), NULL, NULL);
    CHECK(!p.keep_alive);
    CHECK(sl_hp_header_has(&p, "connection", "foo"));
    sl_hp_deinit(&p);
}

static void expect_request_error(const char *msg, int status, const char *what) {
    sl_hp p;
    body b = {0};
    sl_hp_init(&p, SL_HP_REQUEST);
    feed(&p, msg, strlen(msg), 1, &b);
    if (p.state != SL_HP_ERROR) sl_hp_eof(&p);
    CHECK_MSG(p.state == SL_HP_ERROR, "no error for %s", what);
    CHECK_MSG(p.err_status == status, "%s: status %d, expected %d (%s)", what, p.err_status, status, p.err);
    sl_hp_deinit(&p);
}

TEST(request_errors) {
    expect_request_error("GET\r\n\r\n", 400, "request line without target");
    expect_request_error("GET / HTTP/2.0\r\n\r\n", 505, "HTTP/2.0");
    expect_request_error("G(T / HTTP/1.1\r\n\r\n", 400, "bad method");
    expect_request_error("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400, "header without colon");
    expect_request_error("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, "space in name");
    expect_request_error("GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", 400, "folding");
    expect_request_error("POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400, "bad length");
    expect_request_error("POST / HTTP/1.1\r\nContent-Length: 99999999999999999\r\n\r\n", 400, "huge length");
    expect_request_error("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, "two lengths");
    expect_request_error("POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
                         "length and chunked");
    expect_request_error("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501, "gzip");
    expect_request_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400, "chunked not last");
    expect_request_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "bad chunk size");
    expect_request_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n", 400,
                         "chunk size overflow");
    expect_request_error("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n", 400, "chunk too long");
    expect_request_error("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", 400, "body cut short");
    /* a head over the limit */
    size_t n = SL_HP_MAX_HEAD + 100;
    char *big = malloc(n + 1);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    memset(big + 19, 'a', n - 19);
    big[n] = '\0';
    expect_request_error(big, 431, "huge head");
    free(big);
}

TEST(response_framings) {
    /* content-length, chunked, close-delimited, 204 without a body, 100 Continue skipped */
    const char *cl = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    const char *ch = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3\r\nabc\r\n1\r\nd\r\n0\r\n\r\n";
    const char *cd = "HTTP/1.0 503 Service Unavailable\r\nContent-Type: x\r\n\r\nbusy";
    const char *nc = "HTTP/1.1 204 No Content\r\n\r\n";
    for (size_t step = 0; step <= 1; step++) {
        sl_hp p;
        body b = {0};
        sl_hp_init(&p, SL_HP_RESPONSE);
        feed(&p, cl, strlen(cl), step, &b);
        CHECK_EQ_INT(p.state, SL_HP_DONE);
        CHECK_EQ_INT(p.status, 200);
        CHECK_EQ_INT(b.n, 2);
        sl_hp_reset(&p);
        b.n = 0;
        feed(&p, ch, strlen(ch), step, &b);
        CHECK_EQ_INT(p.state, SL_HP_DONE);
        CHECK_EQ_INT(p.status, 200);
        CHECK(p.chunked);
        CHECK_EQ_INT(b.n, 4);
        CHECK(!memcmp(b.b, "abcd", 4));
        sl_hp_reset(&p);
        b.n = 0;
        feed(&p, cd, strlen(cd), step, &b);
        CHECK_EQ_INT(p.state, SL_HP_BODY);
        CHECK_EQ_INT(sl_hp_eof(&p), SL_HP_DONE);
        CHECK_EQ_INT(p.status, 503);
        CHECK(!p.keep_alive);
        CHECK_EQ_INT(b.n, 4);
        sl_hp_reset(&p);
        b.n = 0;
        feed(&p, nc, strlen(nc), step, &b);
        CHECK_EQ_INT(p.state, SL_HP_DONE);
        CHECK_EQ_INT(p.status, 204);
        sl_hp_deinit(&p);
    }
    sl_hp p;
    body b = {0};
    sl_hp_init(&p, SL_HP_RESPONSE);
    const char *cut = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab";
    feed(&p, cut, strlen(cut), 0, &b);
    CHECK_EQ_INT(sl_hp_eof(&p), SL_HP_ERROR);
    CHECK_EQ_INT(p.err_status, 502);
    sl_hp_reset(&p);
    const char *bad = "HTTP/1.1 2x0 OK\r\n\r\n";
    feed(&p, bad, strlen(bad), 0, &b);
    CHECK_EQ_INT(p.state, SL_HP_ERROR);
    sl_hp_deinit(&p);
}

typedef struct evs {
    char all[4096];
    size_t n;
    int count;
} evs;

static bool on_event(void *ctx, char *ev, size_t n) {
    evs *e = ctx;
    if (strlen(ev) != n) return false; /* not NUL-terminated at its length: the count check fails */
    memcpy(e->all + e->n, ev, n);
    e->n += n;
    e->all[e->n++] = '|';
    e->count++;
    return true;
}

TEST(sse_framing) {
    const char *s = ": prompt_token_ids 1 2\n: token_ids 5\ndata: {\"a\":1}\n\ndata: x\r\n\r\ndata: [DONE]\n\n";
    const char *want = ": prompt_token_ids 1 2\n: token_ids 5\ndata: {\"a\":1}|data: x|data: [DONE]|";
    for (size_t step = 1; step <= strlen(s); step *= 2) {
        sl_evstream x;
        sl_evstream_init(&x, 1 << 20);
        evs e = {0};
        for (size_t k = 0; k < strlen(s); k += step) {
            size_t n = strlen(s) - k < step ? strlen(s) - k : step;
            CHECK_OK(sl_evstream_feed(&x, s + k, n, on_event, &e));
        }
        CHECK_EQ_INT(e.count, 3);
        e.all[e.n] = '\0';
        CHECK_STR(e.all, want);
        CHECK_EQ_INT(sl_evstream_pending(&x), 0);
        sl_evstream_deinit(&x);
    }
    /* lines and fields */
    const char *ev = ": token_ids 7 8\r\ndata: {\"x\":2}\nevent:msg";
    size_t pos = 0, len, vl;
    const char *line, *v;
    CHECK(sl_evstream_line(ev, strlen(ev), &pos, &line, &len));
    CHECK(sl_evstream_field(line, len, "", &v, &vl));
    CHECK_EQ_INT(vl, 13);
    CHECK(!memcmp(v, "token_ids 7 8", 13));
    CHECK(sl_evstream_line(ev, strlen(ev), &pos, &line, &len));
    CHECK(sl_evstream_field(line, len, "data", &v, &vl));
    CHECK_EQ_INT(vl, 7);
    CHECK(sl_evstream_line(ev, strlen(ev), &pos, &line, &len));
    CHECK(sl_evstream_field(line, len, "event", &v, &vl));
    CHECK_EQ_INT(vl, 3);
    CHECK(!sl_evstream_line(ev, strlen(ev), &pos, &line, &len));
    /* an event over the limit */
    sl_evstream x;
    sl_evstream_init(&x, 64);
    char big[200];
    memset(big, 'a', sizeof big);
    evs e = {0};
    CHECK(sl_evstream_feed(&x, big, sizeof big, on_event, &e) == SL_ERR_PROTO);
    sl_evstream_deinit(&x);
}

static long parsed_ok(const uint8_t *data, size_t len) { return fuzz_httpp_one(data, len) == 0; }

TEST(httpp_fuzz_corpus_replay) {
    long parsed = 0;
    const int n = sl_test_each_file("tests/fuzz/corpus/httpp", parsed_ok, &parsed);
    printf("   corpus: %d inputs, %ld parsed, %ld refused cleanly\n", n, parsed, n - parsed);
    CHECK(n >= 20);
    CHECK(parsed > 0 && parsed < n);
}

static long sse_events(const uint8_t *data, size_t len) { return (long)fuzz_sse_one(data, len); }

TEST(sse_fuzz_corpus_replay) {
    long events = 0;
    const int n = sl_test_each_file("tests/fuzz/corpus/sse", sse_events, &events);
    printf("   corpus: %d inputs, %ld events\n", n, events);
    CHECK(n >= 10);
    CHECK(events > 0);
}

/* The event limit holds however the bytes arrive: an over-long event that
 * comes in one read is refused as one that comes byte by byte is. */
TEST(evstream_limit_in_one_read) {
    char ev[128];
    memset(ev, 'x', sizeof ev);
    memcpy(ev, "data: ", 6);
    ev[126] = '\n';
    ev[127] = '\n';
    for (int step = 0; step < 2; step++) {
        sl_evstream x;
        sl_evstream_init(&x, 64);
        evs e = {0};
        sl_status st = SL_OK;
        for (size_t k = 0; k < sizeof ev && st == SL_OK; k += step ? 1 : sizeof ev)
            st = sl_evstream_feed(&x, ev + k, step ? 1 : sizeof ev, on_event, &e);
        CHECK_EQ_INT(st, SL_ERR_PROTO);
        sl_evstream_deinit(&x);
    }
}

static long router_data_ok(const uint8_t *data, size_t len) { return fuzz_router_data_one(data, len) == 0; }

TEST(router_data_fuzz_corpus_replay) {
    long ok = 0;
    const int n = sl_test_each_file("tests/fuzz/corpus/router_data", router_data_ok, &ok);
    printf("   corpus: %d inputs, %ld accepted, %ld refused cleanly\n", n, ok, n - ok);
    CHECK(n >= 20);
    CHECK(ok > 0 && ok < n);
}

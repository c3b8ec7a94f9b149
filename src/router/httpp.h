/*
 * httpp.h — an HTTP/1.x message parser that does no I/O (after hiredis' and
 * nats.c's parsers): fed bytes, it reports the start line, the headers and the
 * body, for requests (from clients) and responses (from engines).
 *
 * Design: the head (start line + headers) is gathered into one buffer and
 * parsed when its blank line arrives (at most SL_HP_MAX_HEAD bytes, else 431);
 * header names and values are slices of that buffer, valid until the next
 * sl_hp_reset. The body is framed by Content-Length, chunked
 * Transfer-Encoding (decoded here; extensions and trailers skipped), or the
 * end of the connection (responses only); each decoded body piece goes to the
 * caller's callback as it arrives. Feeding stops at the end of a message, so
 * bytes of a pipelined next message are left to the caller.
 *
 * Invariants: every length read from the peer is checked (no overflow of
 * Content-Length or chunk sizes, bounded head and chunk-size lines); after an
 * error the parser stays in the error state with an HTTP status and a message
 * naming what was wrong.
 */
#ifndef SL_ROUTER_HTTPP_H
#define SL_ROUTER_HTTPP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_HP_MAX_HEAD 16384
#define SL_HP_MAX_HEADERS 64

typedef enum sl_hp_kind { SL_HP_REQUEST, SL_HP_RESPONSE } sl_hp_kind;

typedef enum sl_hp_state {
    SL_HP_HEAD,       /* gathering the head */
    SL_HP_BODY,       /* head parsed, body bytes follow */
    SL_HP_DONE,       /* a whole message */
    SL_HP_ERROR,
} sl_hp_state;

typedef struct sl_hp_hdr {
    const char *name, *value;
    size_t name_len, value_len;
} sl_hp_hdr;

typedef struct sl_hp {
    sl_hp_kind kind;
    sl_hp_state state;
    bool head_only;          /* responses: the request was HEAD (no body follows) */
    /* head */
    char *head;
    size_t n_head, cap_head, scan;
    /* parsed start line */
    const char *method, *target; /* requests (NUL-terminated in the head buffer) */
    int status;                  /* responses */
    int minor;                   /* HTTP/1.<minor> */
    sl_hp_hdr hdrs[SL_HP_MAX_HEADERS];
    int n_hdrs;
    bool keep_alive;
    bool chunked;
    bool until_close;        /* response body ends at EOF */
    int64_t content_length;  /* -1 when not given */
    /* body framing */
    int body_state;
    uint64_t remaining;      /* bytes left in the body or current chunk */
    char line[72];           /* chunk-size / trailer line being read */
    size_t n_line;
    uint64_t body_bytes;     /* decoded body bytes so far */
    /* error */
    int err_status;
    char err[160];
} sl_hp;

/* A decoded piece of the body. Return false to stop (the parser keeps its state). */
typedef bool (*sl_hp_body_fn)(void *ctx, const char *p, size_t n);

void sl_hp_init(sl_hp *p, sl_hp_kind kind);
void sl_hp_deinit(sl_hp *p);
/* Get ready for the next message on the same connection (keeps the buffer). */
void sl_hp_reset(sl_hp *p);
/* Feed bytes; returns how many were consumed (all of them unless the message
 * ended, an error occurred, or on_body returned false). */
size_t sl_hp_feed(sl_hp *p, const char *buf, size_t len, sl_hp_body_fn on_body, void *ctx);
/* The peer closed the connection: ends a close-delimited body; anything else
 * unfinished becomes an error. Returns the state. */
sl_hp_state sl_hp_eof(sl_hp *p);
/* Header value by case-insensitive name (first one), or NULL. */
const sl_hp_hdr *sl_hp_header(const sl_hp *p, const char *name);
/* Whether the message has a header `name` whose comma-separated values include `token` (case-insensitive). */
bool sl_hp_header_has(const sl_hp *p, const char *name, const char *token);

#endif

/*
 * sse.h — an incremental Server-Sent Events parser that does no I/O.
 *
 * Fed bytes in pieces of any size (one byte at a time works), it calls back
 * once per complete event, as the WHATWG "event stream" rules say: lines end
 * in CRLF, LF or CR; "data:" lines accumulate (joined with LF); "event:" sets
 * the type; lines starting with ':' are comments; an empty line dispatches
 * the event (only when it carried data); one leading space of a value is
 * dropped; a UTF-8 BOM at the start of the stream is skipped.
 *
 * Invariants: a line and an event's data are each bounded by max_event bytes
 * (a longer one is a protocol error, never unbounded growth); after an error
 * the parser refuses more input until sl_sse_reset(). An event left without
 * its empty line when the stream ends is not dispatched (sl_sse_partial()
 * tells whether one was pending).
 */
#ifndef SL_CLIENT_SSE_H
#define SL_CLIENT_SSE_H

#include "shardlm.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct sl_sse_event {
    const char *type; /* "message" unless the event said otherwise; NUL-terminated */
    const char *data; /* the data lines joined with '\n' (no trailing '\n'); NUL-terminated */
    size_t data_len;
} sl_sse_event;

/* Called once per event; the pointers are valid only during the call.
 * Return 0 to go on, non-zero to stop feeding (sl_sse_feed returns SL_ERR_CLOSED). */
typedef int (*sl_sse_cb)(void *ud, const sl_sse_event *ev);

typedef struct sl_sse {
    char *line;        /* the line being read (without its terminator) */
    size_t n_line, cap_line;
    char *data;        /* the event's data so far, each line followed by '\n' */
    size_t n_data, cap_data;
    char type[64];
    bool has_data;     /* a data: field was seen since the last dispatch */
    bool after_cr;     /* the previous byte ended a line with CR: a following LF belongs to it */
    size_t bom_seen;   /* bytes of a leading BOM matched so far (3 = done / none) */
    bool failed;
    size_t max_event;
} sl_sse;

/* Set up an empty parser; max_event bounds one line and one event's data. */
void sl_sse_init(sl_sse *p, size_t max_event);
void sl_sse_deinit(sl_sse *p);
/* Forget everything buffered (a new stream starts). */
void sl_sse_reset(sl_sse *p);
/* Feed len bytes. SL_ERR_PROTO (with a message) for an over-long line or
 * event, SL_ERR_NOMEM, or SL_ERR_CLOSED when the callback asked to stop. */
sl_status sl_sse_feed(sl_sse *p, const char *buf, size_t len, sl_sse_cb cb, void *ud);
/* True when bytes of an undispatched event or line are buffered. */
bool sl_sse_partial(const sl_sse *p);

#endif

/*
 * evstream.h — Server-Sent Events framing without I/O: bytes of a text/event-stream
 * body in, whole events out (the text up to, not including, the blank line
 * that ends each one), plus a line iterator for an event's fields.
 *
 * Invariants: an event larger than the limit given at init is an error, not
 * an unbounded buffer; events are delivered in order, each exactly once.
 */
#ifndef SL_ROUTER_EVSTREAM_H
#define SL_ROUTER_EVSTREAM_H

#include "shardlm.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct sl_evstream {
    char *buf;
    size_t n, cap, scan, max_event;
} sl_evstream;

/* One event's text (mutable, valid during the call). Return false to stop. */
typedef bool (*sl_evstream_fn)(void *ctx, char *ev, size_t n);

void sl_evstream_init(sl_evstream *s, size_t max_event);
void sl_evstream_deinit(sl_evstream *s);
/* Feed body bytes; calls fn for each complete event. SL_ERR_PROTO when an
 * event exceeds the limit, SL_ERR_CLOSED when fn asked to stop (bytes after
 * that event stay buffered). */
sl_status sl_evstream_feed(sl_evstream *s, const char *p, size_t n, sl_evstream_fn fn, void *ctx);
/* Bytes held that do not yet form an event. */
size_t sl_evstream_pending(const sl_evstream *s);

/* Iterate the lines of an event: *pos starts at 0; returns false at the end. */
bool sl_evstream_line(const char *ev, size_t n, size_t *pos, const char **line, size_t *len);
/* If `line` is field `name` ("data", "event", ... or "" for a comment), the value (one leading space dropped). */
bool sl_evstream_field(const char *line, size_t len, const char *name, const char **val, size_t *vlen);

#endif

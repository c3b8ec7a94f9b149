/*
 * status.c — per-thread last-error message.
 *
 * The message buffer is thread-local so concurrent calls on different threads
 * never mix messages. Messages are truncated, never overflowed.
 */
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_CAP 1024

static _Thread_local char err_msg[ERR_CAP];

const char *sl_status_str(sl_status st) {
    switch (st) {
    case SL_OK: return "OK";
    case SL_ERR_NOMEM: return "NOMEM";
    case SL_ERR_IO: return "IO";
    case SL_ERR_FORMAT: return "FORMAT";
    case SL_ERR_PROTO: return "PROTO";
    case SL_ERR_TIMEOUT: return "TIMEOUT";
    case SL_ERR_CLOSED: return "CLOSED";
    case SL_ERR_INVALID: return "INVALID";
    case SL_ERR_UNSUPPORTED: return "UNSUPPORTED";
    case SL_ERR_RANGE: return "RANGE";
    case SL_ERR_FULL: return "FULL";
    }
    return "UNKNOWN";
}

const char *sl_last_error(void) { return err_msg; }

void sl_err_clear(void) { err_msg[0] = '\0'; }

sl_status sl_err_set(sl_status st, const char *func, const char *fmt, ...) {
    (void)func;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, ERR_CAP, fmt, ap);
    va_end(ap);
    return st;
}

sl_status sl_err_prefix(sl_status st, const char *fmt, ...) {
    char prefix[ERR_CAP], old[ERR_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err_msg, ERR_CAP);
    size_t np = strlen(prefix), no = strlen(old);
    if (np > ERR_CAP - 3) np = ERR_CAP - 3;
    if (no > ERR_CAP - 3 - np) no = ERR_CAP - 3 - np;
    memcpy(err_msg, prefix, np);
    memcpy(err_msg + np, ": ", 2);
    memcpy(err_msg + np + 2, old, no);
    err_msg[np + 2 + no] = '\0';
    return st;
}

void sl_assert_fail(const char *file, int line, const char *expr) {
    fprintf(stderr, "shardlm: assertion failed at %s:%d: %s\n", file, line, expr);
    fflush(stderr);
    abort();
}

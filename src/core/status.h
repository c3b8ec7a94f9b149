/*
 * status.h — error recording and always-on assertions.
 *
 * A failing call records a message on the current thread with SL_FAIL(),
 * naming file:line, function and what was wrong, and returns its status.
 * Callers higher up may prefix context with sl_err_prefix(). SL_ASSERT stays
 * on in release builds (programmer errors, never input errors).
 */
#ifndef SL_CORE_STATUS_H
#define SL_CORE_STATUS_H

#include "shardlm.h"

#include <stdarg.h>

#if defined(__GNUC__)
#define SL_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define SL_NORETURN __attribute__((noreturn))
#else
#define SL_PRINTF(a, b)
#define SL_NORETURN
#endif

/* Record an error message (printf-style) and return `st`. */
sl_status sl_err_set(sl_status st, const char *func, const char *fmt, ...) SL_PRINTF(3, 4);
/* Prepend "prefix: " to the current message. Returns `st`. */
sl_status sl_err_prefix(sl_status st, const char *fmt, ...) SL_PRINTF(2, 3);
void sl_err_clear(void);

#define SL_FAIL(st, ...) sl_err_set((st), __func__, __VA_ARGS__)

SL_NORETURN void sl_assert_fail(const char *file, int line, const char *expr);
#define SL_ASSERT(x) ((x) ? (void)0 : sl_assert_fail(__FILE__, __LINE__, #x))

#endif

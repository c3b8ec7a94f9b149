/*
 * redfa.h — a JSON Schema `pattern` (an ECMA-262 regular expression)
 * compiled into a DFA over bytes, for structured output: the guide feeds a
 * string's bytes one at a time and must know after each whether the text can
 * still become a match. No packaged library gives that incrementally over a
 * copyable state, so it is written here; tests check it against PCRE2.
 *
 * The subset: literals (UTF-8), `.`, classes `[...]` / `[^...]` with ranges,
 * `\d \D \w \W \s \S`, escapes `\t \n \r \f \v \0 \xHH \uHHHH` and escaped
 * punctuation, groups `(...)`, `(?:...)`, `(?<name>...)`, alternation `|`,
 * quantifiers `* + ? {n} {n,} {n,m}` (and their lazy forms, which match the
 * same strings), `^` and `$`. Refused with an error naming the construct
 * and its offset: lookaround, backreferences, `\b`, `\B`, `\p{...}`, and
 * non-ASCII characters inside a class. As JSON Schema says, a pattern matches
 * when it matches anywhere in the string: anchor it (`^...$`) to match the
 * whole. `.` is any character but `\n` and `\r`; `\s` is ASCII whitespace.
 *
 * Matching runs over the string's UTF-8 bytes: state 0 is the start,
 * next[state * 256 + byte] the state after a byte, SL_REDFA_DEAD when no
 * continuation can match; accept[state] says the bytes so far match.
 */
#ifndef SL_ENGINE_REDFA_H
#define SL_ENGINE_REDFA_H

#include "shardlm.h"

#include <stddef.h>
#include <stdint.h>

#define SL_REDFA_DEAD 0xFFFF

#define SL_REDFA_UNBOUNDED 0xFFFF

typedef struct sl_redfa {
    int n;            /* live states (each can still reach a match) */
    uint16_t *next;   /* n * 256 */
    uint8_t *accept;  /* n */
    /* From each state, the fewest and the most characters (UTF-8 lead or ASCII bytes) that end in a match;
     * most is SL_REDFA_UNBOUNDED past a loop, and both stop at 0xFFFE. With a string's length limits they
     * tell whether a match of an allowed length can still come. */
    uint16_t *min_chars, *max_chars;
} sl_redfa;

/* Compile pattern[0, len) into at most max_states states (<= 0xFFFE).
 * Errors (SL_ERR_INVALID) say what and where ("lookahead '(?=' at offset 3 is
 * not supported", "needs more than 2048 states"). */
sl_status sl_redfa_compile(const char *pattern, size_t len, int max_states, sl_redfa *out);
void sl_redfa_free(sl_redfa *d);

#endif

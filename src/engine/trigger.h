/*
 * trigger.h — what wakes a lazy grammar (llama.cpp's grammar_lazy and
 * grammar_triggers): until a trigger fires the output is free; from then on
 * the grammar (or schema) reads it, starting where the trigger begins.
 *
 * Triggers, as llama.cpp's server takes them:
 *   token         the output's next token is this id: the grammar reads from
 *                 that token's text on;
 *   word          the output so far contains this text;
 *   pattern       the output so far contains a match of this regular
 *                 expression (PCRE2 syntax, as the ECMAScript of llama.cpp's
 *                 std::regex for the patterns people write);
 *   pattern_full  the whole output so far matches this regular expression;
 *   word at start (older llama.cpp's {"word", "at_start": true}) the output
 *                 so far is whitespace, this text, then anything.
 * Words and patterns fire at their leftmost match; the grammar reads from the
 * start of the first capturing group that matched something (a word's or a
 * pattern's whole match; a full pattern's first group, or the whole output
 * when it has none that matched). The output is matched as bytes (a token may
 * end inside a character). Only the last SL_TRIGGER_WINDOW bytes are searched
 * for words and patterns, and a full pattern is tried while the output is at
 * most that long, so the work per token is bounded.
 */
#ifndef SL_ENGINE_TRIGGER_H
#define SL_ENGINE_TRIGGER_H

#include "shardlm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_TRIGGER_WINDOW 65536
#define SL_MAX_TRIGGERS 16
#define SL_TRIGGER_MAX_BYTES 1024 /* a word or pattern */

typedef enum { SL_TRIG_TOKEN, SL_TRIG_WORD, SL_TRIG_PATTERN, SL_TRIG_PATTERN_FULL, SL_TRIG_WORD_AT_START } sl_trigger_kind;

typedef struct sl_trigger_def {
    sl_trigger_kind kind;
    const char *text; /* word or pattern (NUL-terminated); unused for a token */
    int32_t token;    /* SL_TRIG_TOKEN */
} sl_trigger_def;

typedef struct sl_triggers sl_triggers; /* immutable, refcounted */

/* Compile n definitions (1 to SL_MAX_TRIGGERS). SL_ERR_INVALID names the trigger and, for a pattern, the
 * offset where PCRE2 stopped. */
sl_status sl_triggers_create(const sl_trigger_def *defs, int n, sl_triggers **out);
sl_triggers *sl_triggers_retain(sl_triggers *t);
void sl_triggers_release(sl_triggers *t);

/* Is token id a token trigger? */
bool sl_triggers_token(const sl_triggers *t, int32_t id);
/* The output so far, text[0, n) (it grew by its last token): -1 while no word or pattern fires, else the
 * offset the grammar reads from. */
int64_t sl_triggers_match(const sl_triggers *t, const char *text, size_t n);

#endif

/*
 * jsonguide.h — JSON mode (OpenAI's response_format {"type": "json_object"}):
 * a byte-level recognizer of one JSON object (RFC 8259), and the token mask
 * it gives a sampler.
 *
 * sl_json_state follows the bytes of the output so far: sl_json_feed takes a
 * byte and says whether the text is still the start of a JSON object (the
 * whitespace between its tokens (and before it) is one space, or a newline
 * and at most SL_JSON_MAX_INDENT spaces or tabs, as llama.cpp's JSON grammar
 * allows, so a model cannot pad forever; nesting at most SL_JSON_MAX_DEPTH).
 * sl_json_done: the object is complete.
 *
 * sl_json_guide holds every token's text (as the output shows it: no
 * control tokens) once per vocabulary. sl_json_guide_mask sets the logits of
 * the tokens that cannot come next to -inf: those whose bytes the state
 * refuses, control tokens, and end of generation until the object is
 * complete. The state is a small value: the mask runs each token's bytes
 * through a copy of it (a table of the bytes that may come next rules most
 * tokens out at their first byte).
 */
#ifndef SL_ENGINE_JSONGUIDE_H
#define SL_ENGINE_JSONGUIDE_H

#include "shardlm.h"
#include "tokenizer/tokenizer.h"

#include <stdbool.h>
#include <stdint.h>

#define SL_JSON_MAX_DEPTH 32
#define SL_JSON_MAX_INDENT 20

typedef struct sl_json_state {
    uint8_t mode;    /* what may come next (jsonguide.c) */
    uint8_t sub;     /* within a number, literal or \u escape */
    uint8_t lit;     /* which literal (true, false, null) */
    uint8_t depth;   /* open containers */
    uint8_t ws;      /* the whitespace run so far (jsonguide.c) */
    bool key;        /* the string being read is an object key */
    char stack[SL_JSON_MAX_DEPTH]; /* '{' or '[' per open container */
} sl_json_state;

void sl_json_init(sl_json_state *s);
/* Take one byte; false (state unchanged) when it cannot come next. */
bool sl_json_feed(sl_json_state *s, uint8_t c);
/* Feed n bytes; false when one cannot come next (the state is then partly advanced). */
bool sl_json_feed_all(sl_json_state *s, const char *p, size_t n);
bool sl_json_done(const sl_json_state *s);

typedef struct sl_json_guide sl_json_guide;

sl_status sl_json_guide_create(const sl_tokenizer *tok, sl_json_guide **out);
void sl_json_guide_destroy(sl_json_guide *g);
/* Token id's text as the guide sees it (bytes, n). */
const char *sl_json_guide_text(const sl_json_guide *g, int32_t id, size_t *n);
/* Set logits[i] = -inf for every token that cannot come after state s.
 * Returns how many tokens stay allowed. */
int32_t sl_json_guide_mask(const sl_json_guide *g, const sl_json_state *s, float *logits);

#endif

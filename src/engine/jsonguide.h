/*
 * jsonguide.h — structured output: OpenAI's response_format json_object
 * (JSON mode) and json_schema. A byte-level recognizer follows the output
 * and says which bytes may come next; a token mask built on it lets a
 * sampler pick only tokens that keep the output the start of a valid
 * answer.
 *
 * sl_json_schema is a compiled JSON Schema (immutable, refcounted). NULL
 * compiles to "any JSON object" (JSON mode). The subset supported, which is
 * what OpenAI's strict mode, Pydantic and vLLM users write:
 *   type (one or a list), properties, required, additionalProperties
 *   (absent where properties are declared means false, as in llama.cpp;
 *   true or a schema lets other keys come anywhere among the declared ones,
 *   written without escapes that would spell a declared name another way; a
 *   required name not declared is one of them), minProperties, maxProperties,
 *   propertyNames (an object without declared properties: its keys read as
 *   strings of that schema — pattern, format, lengths, or an enum / const of
 *   names made a pattern), items, prefixItems (and the older
 *   items-as-array with additionalItems), minItems, maxItems, uniqueItems (items
 *   of one enum / const / boolean / null node: each value at most once, the
 *   values used kept as bits), minLength,
 *   maxLength, pattern (engine/redfa.h says which regular expressions),
 *   format (date, time, date-time, uuid, ipv4, hostname and email are
 *   enforced; other formats are annotations, as JSON Schema has them by
 *   default), minimum, maximum, exclusiveMinimum, exclusiveMaximum (a number
 *   with bounds is written without an exponent, with at most 18 digits
 *   before and after its point, and compared as the double a JSON parser
 *   reads), multipleOf (above 0, at most 18 digits after its point; the
 *   number, written as one with bounds is, is a multiple as exact decimals
 *   are — 19.99 of 0.01 —, not as a float division says; an integer's
 *   multiples are its whole ones; a digit comes only when a multiple
 *   within the bounds still begins with the number so far), enum, const (the values that meet the type, bounds and lengths
 *   beside them), anyOf / oneOf (as anyOf: alternatives that begin alike, as
 *   two objects do, are followed together until the output tells them apart,
 *   at most 8 at one place; keywords beside them are merged into each, and
 *   an alternative that then allows nothing is left out; anyOf beside oneOf
 *   as allOf of the two), allOf (its schemas
 *   merged into one: properties with what each schema says of them, required
 *   names, the stricter bounds, the common types and values; two different
 *   patterns, formats or tuples written as items arrays are refused), $ref to
 *   #/$defs/... or #/definitions/... (recursion allowed; keywords beside it
 *   merged as allOf); annotations (title, description, default, examples,
 *   $schema, $id, $comment) are ignored; false and {"not": {}} allow no value
 *   (a property left out, additionalProperties / items as false, an
 *   alternative left out; other uses of not are refused). Any other keyword is refused with
 *   an error naming it and where it is. Keys not declared are not checked
 *   against each other: an object may repeat one.
 *   The root must be an object. Declared properties come in the order the
 *   schema lists them (an optional one may be left out), as llama.cpp's
 *   schema grammars do; keys are written as JSON encodes their names.
 *
 * sl_json_state follows the bytes of the output so far: sl_json_feed takes a
 * byte and says whether the text is still the start of a valid answer.
 * Whitespace between JSON tokens (and before the root) is one space, or a
 * newline and at most SL_JSON_MAX_INDENT spaces or tabs, as llama.cpp's JSON
 * grammar allows, so a model cannot pad forever; nesting is at most
 * SL_JSON_MAX_DEPTH. sl_json_done: the root object is complete.
 *
 * sl_json_guide holds every token's text (as the output shows it: no
 * control tokens) once per vocabulary. sl_json_guide_mask sets the logits of
 * the tokens that cannot come next to -inf: those whose bytes the state
 * refuses, control tokens, and end of generation until the answer is
 * complete.
 */
#ifndef SL_ENGINE_JSONGUIDE_H
#define SL_ENGINE_JSONGUIDE_H

#include "shardlm.h"
#include "tokenizer/tokenizer.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define SL_JSON_MAX_DEPTH 32
#define SL_JSON_MAX_INDENT 20

typedef struct sl_json_schema sl_json_schema;

/* Compile `schema` (NULL: any JSON object). Errors (SL_ERR_INVALID) name the
 * keyword and its place in the schema ("properties.age.minimum"). */
sl_status sl_json_schema_compile(const json_t *schema, sl_json_schema **out);
/* A schema for a whole output that is no JSON but matches a regular expression (vLLM's guided_regex and
 * guided_choice; engine/redfa.h says which expressions): the output, as UTF-8, matches re[0, len) from its
 * first byte to its last. Errors name the construct and its offset. */
sl_status sl_json_schema_compile_pattern(const char *re, size_t len, sl_json_schema **out);
sl_json_schema *sl_json_schema_retain(sl_json_schema *s);
void sl_json_schema_release(sl_json_schema *s);

typedef struct sl_json_frame {
    uint16_t node; /* the container's schema node */
    uint16_t idx;  /* object: the next property that may come; array: elements begun (saturating) */
    uint16_t members; /* object: members begun (for minProperties / maxProperties) */
} sl_json_frame;

/* One way of reading the output so far (an alternative of each union begun). */
typedef struct sl_json_fork {
    const sl_json_schema *sc;
    uint8_t mode;   /* what may come next (jsonguide.c) */
    uint8_t sub;    /* within a number or \u escape */
    uint8_t depth;  /* open containers */
    uint8_t ws;     /* the whitespace run so far */
    uint8_t key;    /* the string being read: 0 a value, 1 a key of an object with no declared property, 2 a key of
                     * one with declared properties and others (cand: the declared names it still spells), 3 a key
                     * of an object with no declared property and propertyNames (read as a value string of
                     * snode) */
    uint8_t off;    /* bytes matched of a declared key or a literal */
    bool integer;   /* the number being read is an integer */
    uint16_t vnode; /* the node of the value to come */
    uint16_t snode; /* the string's (or literal's) node */
    uint16_t slen;  /* characters of the string so far */
    uint64_t cand;  /* declared keys (or literals) still matching */
    uint16_t dfa;   /* in a string with a pattern or format: its DFA's state */
    uint16_t hexv;  /* the \uXXXX escape's value so far */
    uint8_t u8need, u8lo, u8hi; /* in a string: UTF-8 continuation bytes still due, the next one's range */
    uint8_t surr;   /* 1: a high surrogate escape was read, its low half must follow; 2: after its '\'; 3: in it */
    bool neg;       /* the number being read is negative */
    uint8_t idig, fdig; /* its digits before and after the point (read for numbers with bounds) */
    uint64_t ival, fval; /* their values */
    uint64_t used;  /* in a uniqueItems array (of literals): the literals its items were so far */
    sl_json_frame stack[SL_JSON_MAX_DEPTH];
    uint8_t choice; /* which of a union's alternatives that begin alike this byte takes (set while forking) */
} sl_json_fork;

#define SL_JSON_MAX_FORKS 8

/* The readings still possible: alternatives of a union that begin alike (two objects) are all followed
 * until the output tells them apart; beyond SL_JSON_MAX_FORKS readings the later ones are dropped. */
typedef struct sl_json_state {
    int n;
    sl_json_fork f[SL_JSON_MAX_FORKS];
} sl_json_state;

/* Start at the beginning of an answer to schema sc (kept by reference: it must outlive the state). */
void sl_json_init(sl_json_state *s, const sl_json_schema *sc);
/* Take one byte; false (state unchanged) when it cannot come next. */
bool sl_json_feed(sl_json_state *s, uint8_t c);
/* Feed n bytes; false when one cannot come next (the state is then partly advanced). */
bool sl_json_feed_all(sl_json_state *s, const char *p, size_t n);
/* The answer is complete: nothing but whitespace may follow (a whole-output pattern: no byte may). */
bool sl_json_done(const sl_json_state *s);
/* The answer may end here (end of generation is allowed): complete, or a pattern matched that may go on. */
bool sl_json_may_end(const sl_json_state *s);

typedef struct sl_json_guide sl_json_guide;

sl_status sl_json_guide_create(const sl_tokenizer *tok, sl_json_guide **out);
void sl_json_guide_destroy(sl_json_guide *g);
/* Token id's text as the guide sees it (bytes, n). */
const char *sl_json_guide_text(const sl_json_guide *g, int32_t id, size_t *n);
/* Set logits[i] = -inf for every token that cannot come after state s.
 * Returns how many tokens stay allowed. Uses scratch space in g: one caller at a time. */
int32_t sl_json_guide_mask(sl_json_guide *g, const sl_json_state *s, float *logits);

#endif

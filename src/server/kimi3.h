/*
 * kimi3.h — Kimi K3's answer format (its chat template's XTML tags). Every
 * part of an assistant message is a tag pair written with three control
 * tokens, <|open|>NAME ATTRS<|sep|> ... <|close|>NAME<|sep|>:
 *
 *   <|open|>message role="assistant"<|sep|><|open|>think<|sep|>THINKING<|close|>think<|sep|>
 *   <|open|>response<|sep|>CONTENT<|close|>response<|sep|>
 *   <|open|>tools<|sep|>
 *     <|open|>call tool="get_weather" index="1"<|sep|>
 *       <|open|>argument key="city" type="string"<|sep|>Paris<|close|>argument<|sep|>
 *       <|open|>argument key="days" type="number"<|sep|>3<|close|>argument<|sep|>
 *     <|close|>call<|sep|>
 *     <|open|>call tool="get_time" index="2"<|sep|><|open|>json type="object"<|sep|>{"tz": "CET"}<|close|>json<|sep|><|close|>call<|sep|>
 *   <|close|>tools<|sep|>
 *   <|close|>message<|sep|><|end_of_msg|>
 *
 * (no newlines in the real text). The generation prompt ends with the
 * message's header and <|open|>think<|sep|> (the template's `thinking`,
 * true by default) or <|open|>response<|sep|> (thinking off), so the answer
 * starts inside that section. Attribute values escape '&' and '"' as &amp;
 * and &quot;. An argument's type is string, number, boolean, null, object
 * or array; a string is written as it is, anything else as JSON text.
 *
 * sl_kimi3_split gives the thinking (think sections), the content (response
 * sections and any text outside a section) and the calls ({"name",
 * "arguments": compact JSON text}). Each piece of text is given without the
 * whitespace around it; pieces of the same part are joined with a blank
 * line ("\n\n"). A call that does not parse (a bad attribute, no tool name,
 * an unknown tag or stray text in its body, an argument or JSON block left
 * open, a NUL byte or text that is not UTF-8) is content, its text as
 * written, as the other syntaxes leave a call that does not parse; so is
 * stray text between calls. An argument whose type is not "string" but
 * whose value is not JSON is kept as a string (the model named the
 * parameter; the client sees what it wrote). With `think` false the
 * thinking goes to the content; with `calls` false each tools section goes
 * to the content as written, tags included (what the model wrote though the
 * request asked for no call). <|close|>message<|sep|> or <|end_of_msg|> ends
 * the message: what follows is dropped.
 *
 * Streamed (fin false), a piece is given as far as no tag can begin in it
 * (and without whitespace that may end it), and a call only once its
 * <|close|>call<|sep|> (or the end of its tools section) has arrived: what
 * a prefix of an answer gives is always the start of what the whole answer
 * gives. At fin a call left open at the end of the text is parsed as far as
 * it goes (every argument closed), as the other syntaxes take a call whose
 * closing tag is missing.
 */
#ifndef SL_SERVER_KIMI3_H
#define SL_SERVER_KIMI3_H

#include "server/harmony.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Whether a chat template's source writes Kimi K3's format. */
bool sl_kimi3_template(const char *template_src);

/* Split text[0, n) into out (sl_harmony_free frees it). think_open: the prompt opened the think
 * section (the answer starts inside it; sl_kimi3_think_open); think: the thinking goes to reasoning (else
 * to the content); calls: tools sections are parsed into calls (else they are content); tools: the
 * request's tools array (may be NULL), which types an argument that has no type attribute; fin: the
 * answer is complete. False only when out of memory. */
bool sl_kimi3_split(const char *text, size_t n, bool think_open, bool think, bool calls, const json_t *tools,
                    bool fin, sl_harmony *out);

/* Whether a rendered prompt leaves the think section open (it ends with <|open|>think<|sep|>, whitespace
 * after it allowed). */
bool sl_kimi3_think_open(const char *prompt);

/* The format's control tokens, NULL-terminated: the detokenizer must show them (those the vocabulary
 * has as control tokens) in every answer split by sl_kimi3_split, since they delimit even the content. */
const char *const *sl_kimi3_markers(void);

#endif

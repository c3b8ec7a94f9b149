/*
 * harmony.h — OpenAI's harmony response format (gpt-oss), the way vLLM's and
 * llama.cpp's gpt-oss parsers read it. After the generation prompt
 * `<|start|>assistant` the model writes messages:
 *
 *   <|channel|>analysis<|message|>thinking<|end|>
 *   <|start|>assistant<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{...}<|call|>
 *   <|start|>assistant<|channel|>final<|message|>the answer<|return|>
 *
 * (the recipient `to=...` may also follow the role). The markers are
 * user-defined tokens, so they are in the detokenized text (<|call|> and
 * <|return|> end generation and are not).
 *
 * sl_harmony_split gives the thinking (the analysis messages' bodies), the
 * content (final messages, commentary without a recipient — the preambles
 * OpenAI shows users — and text outside any message) and the calls (messages
 * to `functions.NAME`: {"name", "arguments": the body as compact JSON}; a body
 * that is not a JSON object is content, as the other syntaxes leave a call
 * that does not parse). With
 * `think` false the analysis goes to the content; with `calls` false a call's
 * body does. Streamed (fin false), a message's body is given as far as no
 * marker can begin in it, and a call only once its message has ended.
 */
#ifndef SL_SERVER_HARMONY_H
#define SL_SERVER_HARMONY_H

#include "core/strbuf.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct sl_harmony {
    char *reasoning; /* NUL-terminated, owned */
    size_t n_reasoning;
    char *content; /* NUL-terminated, owned */
    size_t n_content;
    json_t *calls; /* [{"name", "arguments"}], NULL when none */
} sl_harmony;

/* Split text[0, n). False when out of memory. */
bool sl_harmony_split(const char *text, size_t n, bool think, bool calls, bool fin, sl_harmony *out);
void sl_harmony_free(sl_harmony *h);
/* A split's end, for harmony.c and kimi3.c: out takes the thinking r and the content c (made
 * NUL-terminated) and the calls (kept only when not empty); with ok false (or out of memory) all three are
 * freed instead. Returns whether out was filled. */
bool sl_harmony_take(sl_harmony *out, sl_strbuf *r, sl_strbuf *c, json_t *calls, bool ok);

/* Whether a chat template's source writes the harmony format. */
bool sl_harmony_template(const char *template_src);

#endif

/*
 * anthropic.h — Anthropic's Messages API (POST /v1/messages, as llama.cpp
 * serves it, for Anthropic's SDKs and the tools built on them) on the chat
 * path: a request becomes a chat request (system → a system message; text,
 * tool_use and tool_result blocks → messages, assistant tool_calls and tool
 * messages; tools' input_schema → function parameters; tool_choice auto /
 * any / tool / none; stop_sequences → stop; thinking → the template's
 * enable_thinking), and the chat answer becomes a message (thinking, text
 * and tool_use content blocks, stop_reason end_turn / max_tokens /
 * stop_sequence / tool_use, usage in Anthropic's names), or, streamed, the
 * chat chunks become Anthropic's events (message_start, content_block_start,
 * content_block_delta, content_block_stop, message_delta, message_stop).
 * Images, documents and server tools are refused by name. POST
 * /v1/messages/count_tokens counts a request's input.
 */
#ifndef SL_SERVER_ANTHROPIC_H
#define SL_SERVER_ANTHROPIC_H

#include "core/strbuf.h"
#include "server/api.h"

#include <jansson.h>
#include <stdbool.h>

/* The chat request for Messages request body[0, n), as JSON text (a new string; *req: the request, a new
 * reference), or NULL with e set (400 naming the field, 500: out of memory). count: a count_tokens request (no
 * max_tokens needed). */
char *sl_anth_chat_body(const char *body, size_t n, bool count, json_t **req, sl_api_error *e);

/* A chat field an error names, as the Messages request calls it (stop: stop_sequences, tool_choice and
 * messages keep theirs). */
const char *sl_anth_param(const char *chat_param);

/* The message for req from the chat completion `chat` (not taken). */
json_t *sl_anth_from_chat(const json_t *chat, const json_t *req);

/* An error as Anthropic writes it: {"type": "error", "error": {"type", "message"}} (a new string). */
char *sl_anth_error_json(const sl_api_error *e);

/* A streamed message: chat chunks in, Anthropic's events out. */
typedef struct sl_anth_stream sl_anth_stream;
/* NULL when out of memory. Writes message_start (with input_tokens, the prompt's) to out. */
sl_anth_stream *sl_anth_stream_new(const json_t *req, const char *chat_id, const char *model, long long input_tokens,
                                   sl_strbuf *out);
void sl_anth_stream_free(sl_anth_stream *s);
/* One chat chunk (a chat.completion.chunk, the usage chunk that ends the stream, or an {"error": ...} object; not
 * taken): its events to out. */
void sl_anth_stream_chunk(sl_anth_stream *s, const json_t *chunk, sl_strbuf *out);

#endif

/*
 * responses.h — OpenAI's Responses API (POST /v1/responses, as vLLM serves
 * it) on the chat path: a request becomes a chat request (input items →
 * messages, instructions → a system message, function tools and calls,
 * text.format → response_format, max_output_tokens → max_tokens), and the
 * chat answer becomes a response object (reasoning, message and
 * function_call output items, usage in the Responses names), or, streamed,
 * the chat chunks become the Responses events (response.created,
 * output_item.added, content_part.added, output_text.delta,
 * function_call_arguments.delta, ... response.completed).
 *
 * Responses are kept (unless the request says "store": false) in a bounded
 * store of the process that translated them — the engine's, or the router's
 * when requests come through one — so a later request may continue one by
 * previous_response_id (its conversation: the earlier inputs and outputs,
 * not its instructions, as OpenAI has it) and GET /v1/responses/{id} reads
 * it back; the oldest go first. A background request (the engine's, not
 * through a router) is answered at once, queued, and runs on; GET reads its
 * state and POST .../cancel stops it. Images, files and the built-in tools
 * (web search, ...) are refused by name.
 */
#ifndef SL_SERVER_RESPONSES_H
#define SL_SERVER_RESPONSES_H

#include "core/strbuf.h"
#include "server/api.h"

#include <jansson.h>

/* Kept responses: at most max_entries, about max_bytes of JSON in all (the oldest go first). Thread-safe. */
typedef struct sl_resp_store sl_resp_store;
sl_resp_store *sl_resp_store_new(int max_entries, size_t max_bytes);
void sl_resp_store_free(sl_resp_store *st);
/* Request req with previous_response_id's conversation put before its input (a new object; input always a list
 * of items then), or NULL with e set (404 when the id is not kept, 400 when st is NULL: nothing is kept). */
json_t *sl_resp_store_expand(sl_resp_store *st, const json_t *req, sl_api_error *e);
/* Keep response `resp` (not taken) of the expanded request req, unless req says "store": false. */
void sl_resp_store_put(sl_resp_store *st, const json_t *req, const json_t *resp);
/* The kept response id (a new reference), or NULL. */
json_t *sl_resp_store_get(sl_resp_store *st, const char *id);
/* Forget response id: true when it was kept. */
bool sl_resp_store_delete(sl_resp_store *st, const char *id);
/* GET / DELETE /v1/responses/{id} (path: what follows "/v1/responses/"; del: DELETE): the answer's JSON (a
 * new string), or NULL when the response is not kept (a 404). */
char *sl_resp_store_http(sl_resp_store *st, const char *path, bool del);

/* GET /v1/responses/{id}/input_items: the kept response's input items (the conversation it answered) as OpenAI
 * lists them — {"object": "list", "data", "first_id", "last_id", "has_more"}, from the query's arguments (NULL:
 * absent): at most `limit` of them (1 to 100, default 20), oldest first with `order` asc (else newest first,
 * OpenAI's default), after the item named `after`; a new string, or NULL with e set (400 naming a bad
 * argument, 404 when the response is not kept). */
char *sl_resp_store_input_items(sl_resp_store *st, const char *id, const char *limit, const char *order,
                                const char *after, sl_api_error *e);

/* The chat request for Responses request req (a new object), or NULL with e set (400, naming the field).
 * previous_response_id is not read: sl_resp_store_expand resolves it first. */
json_t *sl_responses_to_chat(const json_t *req, sl_api_error *e);

/* A Responses request's body[0, n) as the JSON text of its chat request (a new string; *req: the request with
 * previous_response_id's conversation put in st, a new reference), or NULL with e set (400: not JSON, or a
 * field named; 404: a response not kept; 500: out of memory). */
char *sl_responses_chat_body(sl_resp_store *st, const char *body, size_t n, json_t **req, sl_api_error *e);

/* A chat field an error names, as the Responses request calls it (max_tokens: max_output_tokens, messages:
 * input, response_format: text); others are the same. */
const char *sl_responses_param(const char *chat_param);

/* The response object for req from the chat completion `chat` (not taken); id: the chat answer's id. */
json_t *sl_responses_from_chat(const json_t *chat, const json_t *req, const char *id, long long created);

/* The response object for req with no output yet, in `status` (queued, in_progress, failed, cancelled); id: the
 * chat answer's id (a background response's, before it has an answer). */
json_t *sl_responses_status(const json_t *req, const char *id, const char *model, long long created, const char *status);
/* Why a request with "background": true cannot be served (store: whether this server keeps responses), or NULL when it
 * can (or is not one): answered at once and read back later, it must be kept, and it is not streamed. */
const char *sl_responses_background_refusal(const json_t *req, bool store);

/* One server-sent event: `event: TYPE` (type NULL: none), `data: JSON` of o (taken), a blank line. */
void sl_sse_event(sl_strbuf *out, const char *type, json_t *o);

/* A streamed response: chat chunks in, Responses events out (SSE with event: lines). */
typedef struct sl_resp_stream sl_resp_stream;

/* NULL when out of memory. Writes response.created and response.in_progress to out. */
sl_resp_stream *sl_resp_stream_new(const json_t *req, const char *id, const char *model, long long created,
                                   sl_strbuf *out);
void sl_resp_stream_free(sl_resp_stream *s);
/* Keep the response in st when the stream ends (NULL: keep nothing). */
void sl_resp_stream_keep_in(sl_resp_stream *s, sl_resp_store *st);
/* One chat chunk (a chat.completion.chunk, the usage chunk that ends the stream, or an {"error": ...}
 * object; not taken): its events to out. */
void sl_resp_stream_chunk(sl_resp_stream *s, const json_t *chunk, sl_strbuf *out);
/* The response as the chunks so far make it, with status (a cancelled one's: the items still open are
 * "incomplete", with what they had), or NULL when out of memory. */
json_t *sl_resp_stream_partial(const sl_resp_stream *s, const char *status);
/* Whether the stream has ended (its last chunk or an error came). */
bool sl_resp_stream_ended(const sl_resp_stream *s);

#endif

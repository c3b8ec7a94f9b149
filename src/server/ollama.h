/*
 * ollama.h — Ollama's native API (POST /api/chat, /api/generate, for
 * Ollama's clients and the tools built on them) on the chat and completions
 * paths: a request becomes an OpenAI request (messages with their tool calls,
 * thinking and tool results; options → sampling parameters under their
 * llama.cpp names, num_predict → max_tokens, Ollama's documented defaults
 * where options leave one out; format "json" or a schema → response_format;
 * think → the template's enable_thinking and reasoning_effort; a generate
 * prompt → a user message after its system one, raw → a completion, with a
 * suffix → a fill-in-the-middle completion), and the answer becomes Ollama's
 * object (message or response, thinking, tool calls with object arguments,
 * done_reason, the token counts and durations in nanoseconds), or, streamed,
 * the OpenAI chunks become Ollama's newline-delimited JSON objects, the last
 * one done. A request with no prompt (no messages) only "loads" the model,
 * as Ollama answers it. Images, templates and the deprecated context are
 * refused by name. Errors are {"error": "..."}.
 */
#ifndef SL_SERVER_OLLAMA_H
#define SL_SERVER_OLLAMA_H

#include "core/strbuf.h"
#include "server/api.h"

#include <jansson.h>
#include <stdbool.h>

/* The Ollama API level this server speaks: GET /api/version's answer (clients check it before using features). */
#define SL_OLLAMA_VERSION "0.12.6"

/* Times of a generation on CLOCK_MONOTONIC, in seconds: arrival, first token (<= 0: unknown), end. */
typedef struct sl_ollama_times {
    double t0, t_first, t_end;
} sl_ollama_times;

/* Seconds on CLOCK_MONOTONIC (the clock of sl_ollama_times). */
double sl_ollama_now(void);

/* The model req names, as the OpenAI request names it (a new reference; NULL when none): Ollama's clients
 * name the default tag (":latest") where a name has none. */
json_t *sl_ollama_model(const json_t *req);

/* Whether req (an /api/generate one when generate, else /api/chat) has nothing to answer (no prompt, no
 * messages): Ollama then loads the model and says so. */
bool sl_ollama_load_only(const json_t *req, bool generate);
/* That answer: done, done_reason "load". */
json_t *sl_ollama_load_answer(const json_t *req, bool generate);

/* The OpenAI request for Ollama request req as JSON text (a new string); *kind: SL_API_CHAT or
 * SL_API_COMPLETIONS (a raw generate, or one with a suffix). NULL with e set (400, naming the field as Ollama
 * does). */
char *sl_ollama_openai_body(const json_t *req, bool generate, sl_api_kind *kind, sl_api_error *e);

/* The field an error of the OpenAI request names, as the Ollama request calls it (max_tokens:
 * options.num_predict, response_format: format, ...). */
const char *sl_ollama_param(const char *openai_param, bool generate);

/* An error as Ollama writes it: {"error": "..."} (a new string). */
char *sl_ollama_error_json(const sl_api_error *e);

/* The answer to req (done) from the OpenAI answer o (a chat.completion or text_completion; not taken). */
json_t *sl_ollama_from_openai(const json_t *o, const json_t *req, bool generate, const sl_ollama_times *t);

/* A streamed answer: OpenAI chunks in, Ollama's lines out. */
typedef struct sl_ollama_stream sl_ollama_stream;
/* NULL when out of memory; t0: the request's arrival (sl_ollama_now's clock). */
sl_ollama_stream *sl_ollama_stream_new(const json_t *req, bool generate, double t0);
void sl_ollama_stream_free(sl_ollama_stream *s);
/* One OpenAI chunk (a chunk of choice 0, the usage chunk that ends the stream, or an {"error": ...} object; not
 * taken): its lines to out. */
void sl_ollama_stream_chunk(sl_ollama_stream *s, const json_t *chunk, sl_strbuf *out);

/* POST /api/embed and /api/embeddings (legacy: embeddings its prompt, not normalized): the embeddings request
 * for req as JSON text (a new string), or NULL with e set. */
char *sl_ollama_embed_body(const json_t *req, bool legacy, sl_api_error *e);
/* Their answers: vecs[0, n) of dim floats each; prompt_tokens: the inputs' tokens. */
json_t *sl_ollama_embed_answer(const json_t *req, bool legacy, const float *const *vecs, int32_t n, int32_t dim,
                               int64_t prompt_tokens, double t0);

#endif

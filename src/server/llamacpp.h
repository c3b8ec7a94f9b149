/*
 * llamacpp.h — llama.cpp's own answer form for POST /completion, built from
 * what a completions answer says (so the engine, from its request, and the
 * router, from the chunks and usage it relays, give the same fields):
 * {"index", "content", "tokens", "id_slot", "stop", "model",
 * "tokens_predicted", "tokens_evaluated", "tokens_cached", "stop_type"
 * (eos, limit, word), "stopping_word", "truncated", "has_new_line",
 * "generation_settings", "timings"}.
 */
#ifndef SL_SERVER_LLAMACPP_H
#define SL_SERVER_LLAMACPP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sl_llama_end {
    const char *finish;      /* the completions finish_reason: stop, length, abort (NULL: none) */
    const char *stop_word;   /* the stop string that ended it (vLLM's stop_reason), or NULL */
    int64_t predicted, evaluated, cached; /* output tokens, prompt tokens, prompt tokens from the cache */
    double prompt_ms, predicted_ms;
    int64_t n_predict;       /* the request's max_tokens (-1: none given) */
} sl_llama_end;

/* llama.cpp's "timings" of an answer: {"cache_n", "prompt_n" (the prompt tokens computed), "prompt_ms",
 * "prompt_per_token_ms", "prompt_per_second", "predicted_n", "predicted_ms", "predicted_per_token_ms",
 * "predicted_per_second"}. */
json_t *sl_llama_timings(const sl_llama_end *end);
/* The closing object of answer `index` with `content` (the whole text, or "" at a stream's end). */
json_t *sl_llama_result(int index, const char *content, size_t n, const char *model, const sl_llama_end *end);
/* llama.cpp's sampling defaults (temperature 0.8, top_k 40, top_p 0.95, min_p 0.05) put into a /completion or
 * /infill body for the fields it does not give (the engine's /v1 endpoints keep OpenAI's, as vLLM). Returns
 * whether it added any. */
bool sl_llama_defaults(json_t *body);
/* llama.cpp's response_fields: o (taken) reduced to the fields the paths name ("content", "timings/prompt_n":
 * each path, as written, a key of the result, with the value found there; paths not found are left out). With
 * no paths (NULL, not an array, or empty) o as it is. */
json_t *sl_llama_fields(json_t *o, const json_t *paths);
/* A stream's event for a piece of text. */
json_t *sl_llama_piece(int index, const char *text, size_t n);
/* The path llama.cpp's server also answers under another name: /v1/health (/health), /models (/v1/models),
 * /chat/completions (/v1/chat/completions); else path itself. (Ollama's /api/chat, which llama.cpp answers
 * as OpenAI's chat, has Ollama's own answer here: server/ollama.h.) */
const char *sl_llama_path_alias(const char *path);

#endif

/*
 * rerank.h — scoring (query, document) pairs with a reranker (a model with a
 * classification head, served with --pooling rank): the request bodies of
 * POST /rerank (llama.cpp's /rerank, /reranking, /v1/rerank, /v1/reranking;
 * vLLM's /rerank, /v1/rerank, /v2/rerank — Jina's and Cohere's form, and
 * TEI's with "texts") and of vLLM's POST /score and /v1/score, each pair made
 * the model's rerank prompt as llama.cpp makes it, and their answers.
 *
 * The prompt of a pair: the file's tokenizer.chat_template.rerank with
 * {query} and {document} replaced (tokenized with control-token text read as
 * those tokens, nothing added), else [BOS] query [EOS] [SEP] document [EOS],
 * each special token where the vocabulary adds it (EOS falling back to SEP).
 * A pair's score is the classification head's first output (engine/embed.h).
 */
#ifndef SL_SERVER_RERANK_H
#define SL_SERVER_RERANK_H

#include "server/api.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct sl_rerank_request {
    bool score;            /* vLLM's /score: data [{index, object "score", score}] in the pairs' order */
    bool tei;              /* TEI's form ("texts"): [{index, score, text?}] ranked */
    sl_api_prompt *pairs;  /* each pair's prompt ids (text: the document's text, for return_documents) */
    int32_t n;
    int32_t top_n;         /* the best top_n only (0: all) */
    bool return_documents; /* each result's document: {"text"} (Jina's default; Cohere's return_documents) */
    bool return_text;      /* TEI's: each result's text */
} sl_rerank_request;

/* Which endpoint path is: 1 a rerank path, 2 a score path, 0 neither. */
int sl_rerank_path(const char *path);

/* Parse a body (score: /score's; else /rerank's); the pairs' prompts made. On failure e says why (4xx). */
bool sl_rerank_parse(const sl_api_ctx *ctx, bool score, const char *body, size_t len, sl_rerank_request *out,
                     sl_api_error *e);
void sl_rerank_request_free(sl_rerank_request *r);

/* The answer for scores[i] of pair i (prompt_tokens: the pairs' tokens). rerank: {"id", "object": "list",
 * "model", "usage", "results": [{"index", "relevance_score", "document"?}]} best first (ties: the earlier
 * document), top_n of them; TEI's: [{"index", "score", "text"?}]; score: {"id", "object": "list", "created",
 * "model", "data": [{"index", "object": "score", "score"}], "usage"}. NULL: out of memory. */
json_t *sl_rerank_json(const sl_api_ctx *ctx, const sl_rerank_request *r, const float *scores, int64_t prompt_tokens);

#endif

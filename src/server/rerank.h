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

/* Which endpoint path is: 1 a rerank path, 2 a score path, 3 a classify path (vLLM's /classify, /v1/classify),
 * 0 none of those. */
int sl_rerank_path(const char *path);

/* vLLM's POST /classify: each input (a string or token ids, or a list of those; BOS as the vocabulary adds it)
 * through the classification head at the position the reranker reads; its class probabilities (a softmax over
 * the head's outputs, a sigmoid for one) and the label of the likeliest (classifier.output_labels). */
typedef struct sl_classify_request {
    sl_api_prompt *inputs;
    int32_t n;
} sl_classify_request;
bool sl_classify_parse(const sl_api_ctx *ctx, const char *body, size_t len, sl_classify_request *out, sl_api_error *e);
void sl_classify_request_free(sl_classify_request *r);
/* Class probabilities of the head's outputs logits[0, n) into probs (in double; n == 1: a sigmoid). */
void sl_classify_probs(const float *logits, int32_t n, float *probs);
/* {"id", "object": "list", "created", "model", "data": [{"index", "label", "probs", "num_classes"}], "usage"};
 * probs[i]: input i's n_cls probabilities. NULL: out of memory. */
json_t *sl_classify_json(const sl_api_ctx *ctx, const sl_classify_request *r, const float *const *probs, int32_t n_cls,
                         int64_t prompt_tokens);

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

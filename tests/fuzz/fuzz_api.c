/*
 * fuzz_api.c — libFuzzer target for the OpenAI request bodies (`make fuzz`):
 * sl_api_parse for /v1/completions and /v1/chat/completions, and the
 * /tokenize and /detokenize bodies, against the stories260K model
 * (SHARDLM_FUZZ_MODEL, default ../shared/models/stories260K.gguf).
 *
 * Input: one selector byte, then the body. Selector bits 0-1: completions,
 * chat, tokenize, detokenize; bit 2: a context of 64 or 512 tokens; bit 3:
 * the built-in chat template or a small Jinja one; bit 4 (with chat): the
 * body is a Responses request (server/responses.h), made a chat request
 * first — refused as below, or parsed as chat; bit 5 (with bit 4): the
 * body's "chunks" go through the Responses stream adapter and the body
 * itself, as a chat answer, through the whole-answer one: every event is
 * "event: TYPE" with JSON data of that type, each sequence number the next,
 * and the answer is a response object. Bit 6 (with completions): the body
 * is an embeddings request: accepted, 1 to SL_API_MAX_INPUTS inputs of 1 to
 * n_ctx ids of the vocabulary each, and an answer of that many vectors (a
 * base64 string of 4 bytes per float, or an array of the model's width).
 * Bit 6 with chat: the body is an Anthropic Messages request, made a chat
 * request first (refused as below, in Anthropic's error form too, or parsed
 * as chat); with bit 5 as well, its "chunks" go through the Anthropic stream
 * adapter (every event "event: TYPE" with JSON data of that type, starting
 * with message_start) and the body, as a chat answer, through the whole one
 * (a message whose content is an array of blocks). Bit 7 with chat (bits 4
 * and 6 clear), or with completions (bit 6 clear): the body is an Ollama
 * /api/chat, or /api/generate, request (server/ollama.h), made an OpenAI
 * request first (refused as below, in Ollama's error form too, "loaded"
 * when it asks for nothing, or parsed as the chat or completions request it
 * makes — a raw or suffixed generate a completion, the suffix filled in the
 * middle); with bit 5 as well, its "chunks" go through the Ollama stream
 * adapter (every line one JSON object, at most one of them done and then the
 * last, an error line only {"error": text}) and the body, as an OpenAI
 * answer, through the whole-answer one (an object, done).
 *
 * Every body must end in a clean answer, never a crash or a leak (ASan):
 *   accepted: no error set; 1 <= prompt tokens < context, every id in the
 *     vocabulary; prompt + max_tokens within the context; the sampling
 *     parameters inside the ranges the API documents; logit_bias ids distinct
 *     and in the vocabulary, values in [-100, 100]; stop_token_ids in the
 *     vocabulary; min_tokens <= max_tokens (plus a resumed stream's tokens);
 *   refused: a 4xx status, a non-empty message, and an error object that
 *     is valid JSON with that message;
 *   tokenize / detokenize: a JSON object (tokens / prompt) or a refusal as
 *     above.
 *
 * tests/unit/test_api.c includes this file (FUZZ_API_NO_MAIN) and replays
 * tests/fuzz/corpus/api through fuzz_api_one().
 */
#include "server/api.h"
#include "server/rerank.h"
#include "server/responses.h"
#include "server/anthropic.h"
#include "server/ollama.h"

#include "core/alloc.h"
#include "model/model.h"
#include "shardlm.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_api_check(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_api: invariant violated: %s\n", what);
        abort();
    }
}

static const char FUZZ_API_TEMPLATE[] =
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% "
    "endif %}";

static const sl_model *fuzz_api_model(void) {
    static sl_model *m;
    if (!m) {
        const char *path = getenv("SHARDLM_FUZZ_MODEL");
        if (!path) path = "../shared/models/stories260K.gguf";
        if (sl_model_load(path, &m) != SL_OK) {
            fprintf(stderr, "fuzz_api: cannot load %s\n", path);
            abort();
        }
    }
    return m;
}

/* Server-sent events as the adapters write them: each "event: TYPE", then JSON data of that type, then a blank
 * line; seq: their sequence_number counts up from 0 (Responses'); first: the first event's type, or NULL. */
static void fuzz_api_check_events(const char *p, bool seq, const char *first) {
    long n = 0;
    for (const char *ev = p, *end; ev && *ev; ev = end + 2, n++) {
        end = strstr(ev, "\n\n");
        fuzz_api_check(end != NULL && !strncmp(ev, "event: ", 7), "an event begins with its type and ends with a blank line");
        const char *nl = strchr(ev, '\n');
        fuzz_api_check(nl && nl < end && !strncmp(nl + 1, "data: ", 6), "an event's data follows its type");
        json_t *d = json_loadb(nl + 7, (size_t)(end - nl - 7), 0, NULL);
        const char *t = json_string_value(json_object_get(d, "type"));
        fuzz_api_check(t && strlen(t) == (size_t)(nl - ev - 7) && !strncmp(t, ev + 7, strlen(t)), "the data has the event's type");
        fuzz_api_check(!seq || json_integer_value(json_object_get(d, "sequence_number")) == n, "sequence numbers count up");
        fuzz_api_check(!first || n > 0 || !strcmp(t, first), "the stream starts with its first event");
        json_decref(d);
    }
}

/* The Responses answers of req: its "chunks" as a stream (every event "event: TYPE" + JSON data of that type
 * and the next sequence number), and req itself as a chat answer made a response object. */
static void fuzz_api_responses_out(const json_t *req) {
    sl_strbuf out = {0};
    sl_resp_stream *s = sl_resp_stream_new(req, "chatcmpl-1", "m", 1, &out);
    fuzz_api_check(s != NULL, "a Responses stream starts");
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(req, "chunks"), i, c) sl_resp_stream_chunk(s, c, &out);
    sl_resp_stream_free(s);
    fuzz_api_check_events(out.p, true, NULL);
    free(out.p);
    json_t *whole = sl_responses_from_chat(req, req, "chatcmpl-1", 1);
    fuzz_api_check(json_is_object(whole) && !strcmp(json_string_value(json_object_get(whole, "object")) ?: "", "response") &&
                       json_is_array(json_object_get(whole, "output")),
                   "a chat answer makes a response object");
    char *text = json_dumps(whole, JSON_COMPACT); /* (written and read back: every value in it whole) */
    json_t *back = text ? json_loads(text, 0, NULL) : NULL;
    fuzz_api_check(json_equal(back, whole), "the response object is written and read back the same");
    json_decref(back);
    free(text);
    json_decref(whole);
}

/* Anthropic's answers of req: its "chunks" as a stream, and req itself as a chat answer made a message. */
static void fuzz_api_anthropic_out(const json_t *req) {
    sl_strbuf out = {0};
    sl_anth_stream *s = sl_anth_stream_new(req, "chatcmpl-1", "m", 3, &out);
    fuzz_api_check(s != NULL, "an Anthropic stream starts");
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(req, "chunks"), i, c) sl_anth_stream_chunk(s, c, &out);
    sl_anth_stream_free(s);
    fuzz_api_check_events(out.p, false, "message_start");
    free(out.p);
    json_t *whole = sl_anth_from_chat(req, req);
    fuzz_api_check(!whole || (json_is_array(json_object_get(whole, "content")) &&
                              !strcmp(json_string_value(json_object_get(whole, "type")) ?: "", "message")),
                   "a chat answer makes a message");
    json_decref(whole);
}

/* Ollama's answers of req: its "chunks" as a stream (lines of JSON objects, at most one done, the last; an
 * error line alone), and req itself as an OpenAI answer made Ollama's. */
static void fuzz_api_ollama_out(const json_t *req, bool generate) {
    sl_strbuf out = {0};
    sl_ollama_stream *s = sl_ollama_stream_new(req, generate, 0);
    fuzz_api_check(s != NULL, "an Ollama stream starts");
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(req, "chunks"), i, c) sl_ollama_stream_chunk(s, c, &out);
    sl_ollama_stream_free(s);
    bool ended = false;
    for (const char *p = out.p, *nl; p && *p; p = nl + 1) {
        nl = strchr(p, '\n');
        fuzz_api_check(nl != NULL && !ended, "lines end with a newline, none after the done or error one");
        json_t *o = json_loadb(p, (size_t)(nl - p), 0, NULL);
        fuzz_api_check(json_is_object(o), "every line is a JSON object");
        const json_t *err = json_object_get(o, "error");
        fuzz_api_check(!err || (json_is_string(err) && json_object_size(o) == 1), "an error line is {\"error\": text}");
        ended = err || json_is_true(json_object_get(o, "done"));
        fuzz_api_check(err || json_is_boolean(json_object_get(o, "done")), "every other line says whether it is done");
        json_decref(o);
    }
    free(out.p);
    const sl_ollama_times t = {.t0 = 1, .t_first = 2, .t_end = 3};
    json_t *whole = sl_ollama_from_openai(req, req, generate, &t);
    fuzz_api_check(json_is_object(whole) && json_is_true(json_object_get(whole, "done")) &&
                       json_is_string(json_object_get(whole, "done_reason")),
                   "an OpenAI answer makes Ollama's, done");
    json_decref(whole);
}

/* A refusal: 4xx, a message, and an error object that round-trips as JSON. */
static void fuzz_api_check_error(const sl_api_error *e) {
    fuzz_api_check(e->status >= 400 && e->status < 500, "a refusal is a 4xx");
    fuzz_api_check(e->message[0] != '\0', "a refusal has a message");
    char *js = sl_api_error_json(e);
    fuzz_api_check(js != NULL, "the error object is built");
    json_error_t je;
    json_t *o = json_loads(js, 0, &je);
    fuzz_api_check(o != NULL, "the error object is valid JSON");
    json_t *msg = json_object_get(json_object_get(o, "error"), "message");
    fuzz_api_check(json_is_string(msg) && json_string_length(msg) > 0, "the error object carries the message");
    json_decref(o);
    free(js);
}

/* 0: accepted, 1: refused cleanly (aborts on a broken invariant). */
static int fuzz_api_one(const uint8_t *data, size_t len) {
    if (len < 1) return 1;
    const uint8_t sel = data[0];
    const char *body = (const char *)data + 1;
    const size_t n = len - 1;
    const sl_model *m = fuzz_api_model();
    const int32_t n_vocab = sl_model_n_vocab(m);
    static json_t *defaults, *kwargs; /* (the server's request defaults, for some inputs) */
    if (!defaults) {
        defaults = json_pack("{s:f,s:i,s:f,s:i}", "temperature", 0.5, "top_k", 5, "repetition_penalty", 1.1, "seed", 7);
        kwargs = json_pack("{s:b}", "enable_thinking", 0);
    }
    const bool with_defaults = (sel & 32) && !(sel & 64);
    const sl_api_ctx ctx = {.model = m,
                            .model_id = "stories260K",
                            .n_ctx = sel & 4 ? 512 : 64,
                            .chat_template = sel & 8 ? FUZZ_API_TEMPLATE : NULL,
                            .matryoshka = (sel & 16) != 0, /* (embeddings: dimensions 16 and 32 may cut) */
                            .matryoshka_dims = {16, 32},
                            .n_matryoshka_dims = sel & 32 ? 2 : 0,
                            .defaults = with_defaults ? defaults : NULL,
                            .template_kwargs = with_defaults ? kwargs : NULL,
                            .default_max_tokens = with_defaults ? 9 : 0};
    sl_api_error e;
    const int mode = sel & 3;
    if (mode >= 2) {
        char *out = mode == 2 ? sl_api_tokenize(&ctx, body, n, &e) : sl_api_detokenize(&ctx, body, n, &e);
        if (!out) {
            fuzz_api_check_error(&e);
            return 1;
        }
        fuzz_api_check(e.status == 0, "an answer leaves no error");
        json_error_t je;
        json_t *o = json_loads(out, 0, &je);
        fuzz_api_check(json_is_object(o), "the answer is a JSON object");
        if (mode == 2) {
            json_t *ids = json_object_get(o, "tokens");
            fuzz_api_check(json_is_array(ids), "tokenize answers tokens");
            for (size_t i = 0; i < json_array_size(ids); i++) {
                const json_t *v = json_array_get(ids, i);
                fuzz_api_check(json_is_integer(v) && json_integer_value(v) >= 0 && json_integer_value(v) < n_vocab,
                               "tokenize answers ids in the vocabulary");
            }
        } else {
            fuzz_api_check(json_is_string(json_object_get(o, "prompt")), "detokenize answers a prompt string");
        }
        json_decref(o);
        free(out);
        return 0;
    }
    if (mode == 0 && (sel & 64) && (sel & 128)) { /* rerank (sel & 16: score) */
        sl_rerank_request rr;
        if (!sl_rerank_parse(&ctx, (sel & 16) != 0, body, n, &rr, &e)) {
            fuzz_api_check_error(&e);
            fuzz_api_check(rr.pairs == NULL && rr.n == 0, "a refusal leaves no request");
            return 1;
        }
        fuzz_api_check(rr.n >= 1 && rr.n <= SL_API_MAX_INPUTS && rr.top_n >= 0, "pairs and top_n");
        float *scores = calloc((size_t)rr.n, sizeof(float));
        json_t *req = json_loadb(body, n, 0, NULL); /* (truncate_prompt_tokens K > 0: no pair longer) */
        const json_int_t cut = json_integer_value(json_object_get(req, "truncate_prompt_tokens"));
        json_decref(req);
        for (int32_t k = 0; k < rr.n; k++) {
            fuzz_api_check(rr.pairs[k].n >= 1 && rr.pairs[k].n <= ctx.n_ctx && rr.pairs[k].text, "every pair fits the context");
            fuzz_api_check(cut <= 0 || rr.pairs[k].n <= cut, "every pair cut to truncate_prompt_tokens");
            for (int32_t i = 0; i < rr.pairs[k].n; i++)
                fuzz_api_check(rr.pairs[k].ids[i] >= 0 && rr.pairs[k].ids[i] < n_vocab, "pair ids are in the vocabulary");
            scores[k] = (float)(k % 3) - 1.0f;
        }
        json_t *o = sl_rerank_json(&ctx, &rr, scores, 1);
        const json_t *list = rr.tei ? o : json_object_get(o, rr.score ? "data" : "results");
        const size_t want = rr.score || rr.top_n == 0 || rr.top_n > rr.n ? (size_t)rr.n : (size_t)rr.top_n;
        fuzz_api_check(json_array_size(list) == want, "one result per pair (top_n of them)");
        for (size_t k = 1; !rr.score && k < json_array_size(list); k++)
            fuzz_api_check(json_number_value(json_object_get(json_array_get(list, k - 1), rr.tei ? "score" : "relevance_score")) >=
                               json_number_value(json_object_get(json_array_get(list, k), rr.tei ? "score" : "relevance_score")),
                           "results ranked best first");
        json_decref(o);
        free(scores);
        sl_rerank_request_free(&rr);
        return 0;
    }
    if (mode == 0 && (sel & 64)) {
        sl_api_embed_request er;
        if (!sl_api_parse_embeddings(&ctx, body, n, &er, &e)) {
            fuzz_api_check_error(&e);
            fuzz_api_check(er.inputs == NULL && er.n_inputs == 0, "a refusal leaves no request");
            return 1;
        }
        fuzz_api_check(er.n_inputs >= 1 && er.n_inputs <= SL_API_MAX_INPUTS && er.normalize >= -1, "inputs and norm");
        fuzz_api_check(er.dimensions == 0 || (ctx.matryoshka && er.dimensions >= 1 && er.dimensions < m->hp.n_embd &&
                                              (!ctx.n_matryoshka_dims || er.dimensions == 16 || er.dimensions == 32)),
                       "a cut only of a Matryoshka model, to a size it takes");
        const int32_t d = m->hp.n_embd;
        float *zero = calloc((size_t)d, sizeof(float));
        const float **vecs = calloc((size_t)er.n_inputs, sizeof *vecs);
        for (int32_t k = 0; k < er.n_inputs; k++) {
            fuzz_api_check(er.inputs[k].n >= 1 && er.inputs[k].n <= ctx.n_ctx, "every input fits the context");
            for (int32_t i = 0; i < er.inputs[k].n; i++)
                fuzz_api_check(er.inputs[k].ids[i] >= 0 && er.inputs[k].ids[i] < n_vocab, "input ids are in the vocabulary");
            vecs[k] = zero;
        }
        json_t *o = sl_api_embeddings_json(&ctx, &er, vecs, d, 1);
        json_t *vs = json_object_get(o, "data");
        fuzz_api_check(json_array_size(vs) == (size_t)er.n_inputs, "one vector per input");
        json_t *v = json_object_get(json_array_get(vs, 0), "embedding");
        fuzz_api_check(er.base64 ? json_string_length(v) == ((size_t)d * 4 + 2) / 3 * 4 : json_array_size(v) == (size_t)d,
                       "each vector of the model's width");
        json_decref(o);
        free(vecs);
        free(zero);
        sl_api_embed_request_free(&er);
        return 0;
    }
    char *translated = NULL; /* a Responses, Anthropic or Ollama request's chat (or completions) request */
    sl_api_kind kind = mode == 0 ? SL_API_COMPLETIONS : SL_API_CHAT;
    if ((sel & 128) && !(sel & 64) && (mode == 0 || !(sel & 16))) { /* Ollama's (completions: /api/generate) */
        const bool gen = mode == 0;
        json_t *req = json_loadb(body, n, 0, NULL);
        if (!json_is_object(req)) {
            json_decref(req);
            return 1;
        }
        if (sel & 32) {
            fuzz_api_ollama_out(req, gen);
            json_decref(req);
            return 0;
        }
        if (sl_ollama_load_only(req, gen)) {
            json_t *a = sl_ollama_load_answer(req, gen);
            fuzz_api_check(json_is_true(json_object_get(a, "done")), "a load answer is done");
            json_decref(a);
            json_decref(req);
            return 0;
        }
        translated = sl_ollama_openai_body(req, gen, &kind, &e);
        json_decref(req);
        if (!translated) {
            fuzz_api_check_error(&e);
            char *oj = sl_ollama_error_json(&e);
            json_t *oo = oj ? json_loads(oj, 0, NULL) : NULL;
            fuzz_api_check(json_is_string(json_object_get(oo, "error")) && json_object_size(oo) == 1, "Ollama's error form");
            json_decref(oo);
            free(oj);
            return 1;
        }
        fuzz_api_check(gen || kind == SL_API_CHAT, "a chat request makes a chat request");
        if (kind == SL_API_COMPLETIONS) { /* (a suffix: filled in the middle, as the server does) */
            char *fim = NULL;
            const int k = sl_api_completions_fim(&ctx, translated, strlen(translated), &fim, &e);
            if (k < 0) {
                free(translated);
                if (e.status != 501) fuzz_api_check_error(&e);
                return 1;
            }
            if (fim) {
                free(translated);
                translated = fim;
            }
        }
        body = translated;
    } else if (mode == 1 && (sel & 64)) {
        json_t *req = NULL;
        if (sel & 32) {
            req = json_loadb(body, n, 0, NULL);
            if (!req) return 1;
            fuzz_api_anthropic_out(req);
            json_decref(req);
            return 0;
        }
        translated = sl_anth_chat_body(body, n, (sel & 128) != 0, &req, &e);
        json_decref(req);
        if (!translated) {
            fuzz_api_check_error(&e);
            char *aj = sl_anth_error_json(&e);
            json_t *ao = aj ? json_loads(aj, 0, NULL) : NULL;
            fuzz_api_check(json_is_string(json_object_get(json_object_get(ao, "error"), "message")), "Anthropic's error form");
            json_decref(ao);
            free(aj);
            return 1;
        }
        body = translated;
    } else if (mode == 1 && (sel & 16)) {
        if (sel & 32) {
            json_t *req = json_loadb(body, n, 0, NULL);
            if (!req) return 1;
            fuzz_api_responses_out(req);
            json_decref(req);
            return 0;
        }
        json_t *req = NULL; /* (no store: a previous_response_id is refused) */
        translated = sl_responses_chat_body(NULL, body, n, &req, &e);
        json_decref(req);
        if (!translated) {
            fuzz_api_check_error(&e);
            return 1;
        }
        body = translated;
    }
    if (kind == SL_API_COMPLETIONS && !translated) { /* /v1/completions: a suffix or infill fields make the FIM body first */
        const int k = sl_api_completions_fim(&ctx, body, n, &translated, &e);
        if (k < 0) { /* (infill fields on a model without FIM tokens: llama.cpp's 501, as /infill answers) */
            if (e.status == 501) fuzz_api_check(strstr(e.message, "Infill is not supported") != NULL, "501: no FIM tokens");
            else fuzz_api_check_error(&e);
            return 1;
        }
        fuzz_api_check((k == 1) == (translated != NULL), "a FIM body when and only when one is made");
        if (translated) body = translated;
    }
    const size_t n_body = translated ? strlen(translated) : n;
    sl_api_request r;
    const bool parsed = sl_api_parse(&ctx, kind, body, n_body, &r, &e);
    free(translated);
    if (!parsed) {
        fuzz_api_check_error(&e);
        fuzz_api_check(r.prompt == NULL && r.prompt_text == NULL && r.n_prompt == 0, "a refusal leaves no request");
        return 1;
    }
    fuzz_api_check(e.status == 0, "an accepted request leaves no error");
    fuzz_api_check(r.prompt != NULL && r.n_prompt >= 1 && r.n_prompt < ctx.n_ctx, "the prompt fits the context");
    for (int32_t i = 0; i < r.n_prompt; i++)
        fuzz_api_check(r.prompt[i] >= 0 && r.prompt[i] < n_vocab, "prompt ids are in the vocabulary");
    const sl_req_params *p = &r.params;
    fuzz_api_check(p->max_tokens >= 0 && (int64_t)r.n_prompt + p->max_tokens <= ctx.n_ctx,
                   "prompt + max_tokens fit the context");
    fuzz_api_check(r.max_tokens_given || !ctx.default_max_tokens || p->max_tokens <= ctx.default_max_tokens,
                   "a request without max_tokens gets at most the server's default");
    fuzz_api_check(p->max_tokens >= 1 || p->resume_generated > 0 || p->echo || p->prefill_only,
                   "max_tokens is 0 only when resuming, echoing or computing the prompt alone (llama.cpp's n_predict 0)");
    fuzz_api_check(r.n_more >= 0 && r.n >= 1 && (r.n_more + 1) * r.n <= SL_API_MAX_PROMPTS && (r.n_more == 0 || r.more),
                   "at most SL_API_MAX_PROMPTS choices");
    fuzz_api_check(!r.beam || (r.n <= SL_API_MAX_BEAMS && p->logprobs <= SL_MAX_TOP_LOGPROBS && p->prompt_logprobs < 0 && !p->echo && p->n_stop == 0 && !p->schema &&
                               !p->grammar && p->resume_generated == 0 && isfinite(r.length_penalty)),
                   "a beam search: at most SL_API_MAX_BEAMS beams, none of what it does not take");
    for (int32_t k = 0; k < r.n_more; k++) {
        fuzz_api_check(r.more[k].ids && r.more[k].n >= 1 && r.more[k].n < ctx.n_ctx, "every prompt fits the context");
        fuzz_api_check(!r.max_tokens_given || (int64_t)r.more[k].n + p->max_tokens <= ctx.n_ctx,
                       "every prompt + max_tokens fit the context");
        for (int32_t i = 0; i < r.more[k].n; i++)
            fuzz_api_check(r.more[k].ids[i] >= 0 && r.more[k].ids[i] < n_vocab, "prompt ids are in the vocabulary");
    }
    fuzz_api_check(p->resume_generated >= 0 && p->resume_generated < r.n_prompt, "a resume point inside the prompt");
    fuzz_api_check(p->sampling.temperature >= 0 && p->sampling.temperature <= 2, "temperature in [0, 2]");
    fuzz_api_check(p->sampling.top_p > 0 && p->sampling.top_p <= 1, "top_p in (0, 1]");
    fuzz_api_check(p->sampling.top_k >= 0, "top_k >= 0");
    fuzz_api_check(p->sampling.min_p >= 0 && p->sampling.min_p <= 1, "min_p in [0, 1]");
    fuzz_api_check(p->sampling.repeat_penalty >= 0.01f && p->sampling.repeat_penalty <= 10, "repetition_penalty");
    fuzz_api_check(p->logprobs >= -1 && p->logprobs <= SL_MAX_TOP_LOGPROBS, "logprobs in [-1, 20]");
    fuzz_api_check(p->n_stop >= 0 && p->n_stop <= SL_MAX_STOP, "at most SL_MAX_STOP stop strings");
    for (int32_t i = 0; i < p->n_stop; i++) fuzz_api_check(p->stop[i] && p->stop[i][0], "stop strings are non-empty");
    fuzz_api_check(p->n_allow >= 0 && p->n_allow <= n_vocab && (p->n_allow == 0) == (p->allow_ids == NULL),
                   "allowed_token_ids: at most the vocabulary");
    for (int32_t i = 0; i < p->n_allow; i++)
        fuzz_api_check(p->allow_ids[i] >= 0 && p->allow_ids[i] < n_vocab, "allowed ids are in the vocabulary");
    fuzz_api_check(p->n_bad >= 0 && p->n_bad <= 2 * SL_MAX_BAD_WORDS, "at most two sequences per bad word");
    int64_t n_bad_ids = 0;
    for (int32_t i = 0; i < p->n_bad; i++) {
        fuzz_api_check(p->bad_lens[i] >= 1, "bad words have tokens");
        for (int32_t j = 0; j < p->bad_lens[i]; j++, n_bad_ids++)
            fuzz_api_check(p->bad_ids[n_bad_ids] >= 0 && p->bad_ids[n_bad_ids] < n_vocab, "bad word ids in the vocabulary");
    }
    fuzz_api_check(n_bad_ids <= SL_MAX_BAD_WORD_TOKENS, "at most SL_MAX_BAD_WORD_TOKENS bad word tokens");
    fuzz_api_check(p->prompt_logprobs >= -1 && p->prompt_logprobs <= SL_MAX_TOP_LOGPROBS && !(p->prompt_logprobs >= 0 && r.stream),
                   "prompt_logprobs in [-1, 20], not streamed");
    fuzz_api_check(p->sampling.repeat_last_n >= -1, "repeat_last_n >= -1");
    {
        sl_sampler *smp = NULL;
        fuzz_api_check(sl_sampler_create(&p->sampling, n_vocab, &smp) == SL_OK &&
                           sl_sampler_set_dry_breakers(smp, p->dry_breakers) == SL_OK,
                       "the sampling parameters make a sampler");
        sl_sampler_destroy(smp);
    }
    fuzz_api_check(p->n_bias >= 0 && p->n_bias <= SL_MAX_LOGIT_BIAS, "at most SL_MAX_LOGIT_BIAS logit biases");
    for (int32_t i = 0; i < p->n_bias; i++) {
        fuzz_api_check(p->bias_ids[i] >= 0 && p->bias_ids[i] < n_vocab, "logit_bias ids are in the vocabulary");
        fuzz_api_check(p->bias_vals[i] >= -100 && p->bias_vals[i] <= 100, "logit_bias values in [-100, 100]");
        for (int32_t j = 0; j < i; j++) fuzz_api_check(p->bias_ids[j] != p->bias_ids[i], "logit_bias ids are distinct");
    }
    fuzz_api_check(p->n_stop_ids >= 0 && p->n_stop_ids <= SL_MAX_STOP_IDS, "at most SL_MAX_STOP_IDS stop token ids");
    for (int32_t i = 0; i < p->n_stop_ids; i++)
        fuzz_api_check(p->stop_ids[i] >= 0 && p->stop_ids[i] < n_vocab, "stop_token_ids are in the vocabulary");
    fuzz_api_check(p->min_tokens >= 0 && p->min_tokens <= p->max_tokens + p->resume_generated,
                   "min_tokens within max_tokens (and the resumed tokens)");
    const sl_api_tools *tl = &r.tools;
    fuzz_api_check(tl->choice == SL_TOOL_CHOICE_NONE || (kind == SL_API_CHAT && tl->tools && json_array_size(tl->tools) >= 1),
                   "a tool choice comes with declared tools, on chat");
    fuzz_api_check((tl->choice == SL_TOOL_CHOICE_REQUIRED || tl->choice == SL_TOOL_CHOICE_NAMED) <= (p->schema != NULL),
                   "a forced call is guided by a schema");
    fuzz_api_check(tl->choice != SL_TOOL_CHOICE_NAMED || tl->name[0], "a named tool choice has its name");
    fuzz_api_check(!(p->schema && p->grammar), "one guide of the output at most (a schema or a grammar)");
    fuzz_api_check(p->n_show_ids == 0 || tl->choice == SL_TOOL_CHOICE_AUTO, "control tokens shown only for tool syntaxes");
    fuzz_api_check(p->n_show_ids >= 0 && p->n_show_ids <= SL_DETOK_SHOW_MAX, "at most SL_DETOK_SHOW_MAX shown tokens");
    fuzz_api_check(!r.resumed || (kind == SL_API_CHAT && r.n == 1 && p->resume_generated < r.n_prompt && r.resume_content >= 0 &&
                                  r.resume_reasoning >= 0 && r.resume_args >= 0),
                   "a resumed chat has one choice, its generated tokens inside the prompt, and counts");
    fuzz_api_check(p->think_budget < 0 || (kind == SL_API_CHAT && p->n_think_forced > 0 && p->n_think_end > 0 && !p->schema && !p->grammar),
                   "a reasoning budget: chat, its closing tag's and forced tokens, no guide");
    for (int32_t i = 0; p->think_budget >= 0 && i < p->n_think_start + p->n_think_end + p->n_think_forced; i++)
        fuzz_api_check(r.think_ids[i] >= 0 && r.think_ids[i] < n_vocab, "the budget's ids are in the vocabulary");
    sl_api_request_free(&r);
    return 0;
}

#ifndef FUZZ_API_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_api_one(data, size);
    return 0;
}
#endif

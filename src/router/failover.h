/*
 * failover.h — continuing a stream on another engine, without I/O.
 *
 * The router asks engines for token ids (request header X-Shardlm-Token-Ids:
 * 1; the engine sends `: prompt_token_ids ...` and `: token_ids ...` SSE
 * comment lines). When the engine dies mid-answer, the continuation is a
 * /v1/completions request whose prompt is the prompt ids followed by the ids
 * already streamed, with max_tokens reduced by their count and every sampling
 * field of the original kept (the router gave the original a seed if it had
 * none). Because the engine's sampler is keyed by (seed, position) and its
 * forward pass is batch-invariant, the continuation produces the tokens the
 * dead engine would have produced.
 *
 * The continuation's chunks are rewritten into the client's stream: the
 * original id and created time, chat chunks (delta.content, chat logprobs)
 * when the client asked for a chat completion, completions logprobs offsets
 * shifted by the text already sent, and usage counted as if nothing moved.
 *
 * A chat answer the engine splits into parts (reasoning_content, tool calls)
 * is not a continuation of its text; the engine marks it (`: resume chat`)
 * and it continues as a chat request instead (sl_fo_chat_continuation), whose
 * chunks only get the id, created time and usage rewritten.
 */
#ifndef SL_ROUTER_FAILOVER_H
#define SL_ROUTER_FAILOVER_H

#include "shardlm.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum sl_fo_kind { SL_FO_COMPLETIONS, SL_FO_CHAT } sl_fo_kind;

/* The body of the continuation request (malloc'd JSON text in *out).
 * text_sent (>= 0) is the bytes of text the client got from the first engine:
 * sent as "shardlm_resume": {"generated": n_gen, "text_sent": text_sent}, the
 * engine replays the generated tokens through its detokenizer and stop-string
 * matcher and releases what the first engine still held back (a possible stop
 * string, an incomplete UTF-8 character) before its new text; -1: not sent.
 * When every allowed token was streamed, the continuation asks for
 * max_tokens 0 with the resume field (the engine only releases what was held
 * back and finishes with "length"); SL_ERR_RANGE if text_sent is -1 then. */
sl_status sl_fo_continuation(const json_t *orig, sl_fo_kind kind, const int32_t *prompt, int32_t n_prompt,
                             const int32_t *gen, int32_t n_gen, int64_t text_sent, char **out);

typedef struct sl_fo_stream {
    sl_fo_kind kind;
    char id[128];           /* of the original stream ("" until learned) */
    json_int_t created;
    bool learned;
    int32_t n_gen_before;   /* tokens streamed before the (last) move */
    size_t text_before;     /* bytes of text streamed before the (last) move: the continuation's offsets shift by it */
    size_t text_sent;       /* bytes of text streamed so far (sl_fo_count_text) */
    /* completions' echo: the stream's first chunk is the prompt's text, not
     * output. Until it has come (echo_pending) a move sends the request
     * again as it was; its length (echo_bytes) is not in text_sent, and the
     * output's text offsets count from it. */
    bool echo_pending;
    size_t echo_bytes;
    /* a chat answer the engine splits into parts (thinking, tool calls: `: resume chat` before its
     * prompt ids) continues as a chat request: text_sent counts its content, and these the rest */
    bool chat_native;
    size_t reasoning_sent;  /* bytes of reasoning_content streamed */
    size_t args_sent;       /* bytes of tool_calls arguments streamed */
    bool call_started;      /* a tool_calls delta was streamed */
    int index;              /* the choice it continues (of several: n, prompts); its chunks get this index */
} sl_fo_stream;

/* The continuation of a chat_native stream: the original body (a chat request, every field kept) with
 * max_tokens reduced as above and "shardlm_resume": {"ids": prompt + generated ids, "generated": n_gen,
 * "content_sent", "reasoning_sent", "args_sent", "call_started"} from fs; the engine renders the
 * conversation again, takes the ids as its prompt, replays the generated tokens and sends each part
 * from where the client's copy ends. SL_ERR_RANGE when every allowed token was streamed. */
sl_status sl_fo_chat_continuation(const json_t *orig, const int32_t *prompt, int32_t n_prompt, const int32_t *gen,
                                  int32_t n_gen, const sl_fo_stream *fs, char **out);

/* Take id and created from a data payload of the original stream. */
void sl_fo_learn(sl_fo_stream *fs, const char *data, size_t n);
/* Add the text length of a data payload (of the original stream or, after a
 * move, of the continuation) to text_sent. */
void sl_fo_count_text(sl_fo_stream *fs, const char *data, size_t n);
/* Rewrite one data payload of the continuation (malloc'd JSON text), or NULL
 * when it is not a JSON object (the caller forwards it as it is). */
char *sl_fo_rewrite(const sl_fo_stream *fs, const char *data, size_t n);

/* Choice k of a generation of several (PER choices of each prompt: the (k % PER)-th of prompt k / PER) as
 * a request of its own: the body without "n", its seed + k % PER (the engine's seed of that choice), and
 * its prompt alone where "prompt" lists several. NULL with the error set when it cannot be (the seed
 * would leave the range the engine takes). */
json_t *sl_fo_choice_body(const json_t *orig, int k, int per);

/* A usage chunk (data payload) with the counts of the whole generation: prompt and completion tokens and
 * their total, cached tokens at most the prompt's; malloc'd JSON text, NULL when it is not an object. */
char *sl_fo_usage_totals(const char *data, size_t n, int64_t prompt_tokens, int64_t completion_tokens);

/* Give a streaming body a seed when it has none (so a continuation samples the
 * same stream); returns true when it added one. */
bool sl_fo_add_seed(json_t *body, uint64_t seed);

/* Parse "1 2 3" (space separated ids) appending to *ids (sl_realloc'd). */
sl_status sl_fo_parse_ids(const char *s, size_t n, int32_t **ids, int32_t *count, int32_t *cap);

#endif

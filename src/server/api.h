/*
 * api.h — the OpenAI-compatible request bodies: parse and validate a JSON
 * body into request parameters and a prompt, and build response objects.
 *
 * Validation errors carry the HTTP status and the name of the offending
 * field, as OpenAI's error object does:
 *   {"error": {"message": "...", "type": "invalid_request_error", "param": "max_tokens", "code": null}}
 * No function here does I/O.
 */
#ifndef SL_SERVER_API_H
#define SL_SERVER_API_H

#include "server/reasoning.h"
#include "server/sched.h"
#include "server/toolcall.h"

#include <jansson.h>
#include <stdbool.h>

typedef enum sl_api_kind { SL_API_COMPLETIONS, SL_API_CHAT } sl_api_kind;

typedef struct sl_api_error {
    int status;       /* HTTP status, 0 = no error */
    char param[64];   /* field name, "" when none */
    char type[48];    /* invalid_request_error, ... */
    char message[512];
} sl_api_error;

/* SL_API_MAX_PROMPTS: choices one request may ask for (prompts times n) */
#define SL_API_MAX_PROMPTS 64
/* SL_API_MAX_TOOLS: functions one chat request may declare (OpenAI's limit) */
#define SL_API_MAX_TOOLS 128

/* Chat's tool calling: what tool_choice asks of the answer. */
typedef enum sl_tool_choice {
    SL_TOOL_CHOICE_NONE,     /* text: no tools, or tool_choice "none" */
    SL_TOOL_CHOICE_AUTO,     /* text that may hold calls in the template's syntax (tools.format) */
    SL_TOOL_CHOICE_REQUIRED, /* guided JSON {"NAME": arguments, ...}: calls of the tools (sl_tool_required_schema) */
    SL_TOOL_CHOICE_NAMED,    /* guided JSON: the arguments of the function tools.name */
} sl_tool_choice;

typedef struct sl_api_tools {
    sl_tool_choice choice;
    sl_tool_format format;   /* the chat template's syntax */
    json_t *tools;           /* the request's validated tools (a reference), NULL when none */
    char name[72];           /* SL_TOOL_CHOICE_NAMED: the function */
    bool parallel;           /* parallel_tool_calls (default true); false keeps the first call */
} sl_api_tools;

typedef struct sl_api_prompt {
    int32_t *ids;            /* sl_malloc'd */
    int32_t n;
    char *text;              /* the prompt string (sl_malloc'd), or NULL for token ids */
} sl_api_prompt;

typedef struct sl_api_request {
    sl_api_kind kind;
    json_t *response_fields; /* llama.cpp's response_fields (an array of strings; a reference), or NULL */
    sl_req_params params;
    bool stream;
    bool include_usage;
    bool continuous_usage; /* vLLM's stream_options.continuous_usage_stats: each chunk's usage so far */
    bool tokens_as_ids; /* vLLM's return_tokens_as_token_ids: logprobs name tokens "token_id:N" */
    char request_id[128]; /* vLLM's request_id: the answer's id ("cmpl-" / "chatcmpl-" + it), "" when not given */
    bool return_token_ids; /* vLLM's: the answer carries prompt_token_ids and each choice's token_ids */
    bool llama_probs;   /* shardlm_llama_probs (a router relaying llama.cpp's n_probs): each completions choice
                         * also carries llama.cpp's completion_probabilities */
    bool max_tokens_given;
    int32_t *prompt;         /* token ids (sl_malloc'd) */
    int32_t n_prompt;
    char *prompt_text;       /* rendered chat text or the prompt string (sl_malloc'd), may be NULL */
    /* completions' prompt as a list of several: the first is prompt / n_prompt / prompt_text, the others
     * here, one choice each. Without max_tokens each prompt gets what its context leaves (prompt 0's is
     * params.max_tokens). */
    int32_t n_more;
    sl_api_prompt *more;
    /* n: choices per prompt. Choice i * n + j samples prompt i with seed
     * params.sampling.seed + j (vLLM's way), so choice i * n is what n = 1 gives. */
    int32_t n;
    sl_api_tools tools;      /* chat only */
    /* chat: the answer's thinking goes to reasoning_content (not with a guided answer); think_open: the
     * rendered prompt left a <think> block open, so the answer starts in it */
    bool think, think_open;
    sl_think_tags think_tags;
    int32_t *think_ids;      /* the reasoning budget's tag and forced ids (params.think_*), or NULL */
    /* chat: continuing a stream another engine started (a router's failover: shardlm_resume with "ids").
     * The prompt is those ids (the rendered conversation and the tokens generated so far); the client
     * has resume_content bytes of content, resume_reasoning of thinking, resume_args of a forced
     * call's arguments, and that call's first delta when resume_call_started. */
    bool resumed, resume_call_started;
    int64_t resume_content, resume_reasoning, resume_args;
    char *chat_echo; /* chat: vLLM's echo, the text the answer's content starts with (sl_api_chat_echo), or NULL */
    /* vLLM's use_beam_search: n beams per prompt (at most SL_API_MAX_BEAMS), ranked by the sum of their tokens'
     * log probabilities over their length (prompt included) to the power length_penalty (server/beam.h) */
    bool beam;
    double length_penalty;
    int32_t *pred_ids; /* OpenAI's prediction (Predicted Outputs) tokenized (params.pred_ids points here), or NULL */
} sl_api_request;

/* Prompt i of a request, 0 <= i <= n_more (0: prompt / n_prompt / prompt_text). */
static inline sl_api_prompt sl_api_prompt_at(const sl_api_request *r, int32_t i) {
    return i == 0 ? (sl_api_prompt){.ids = r->prompt, .n = r->n_prompt, .text = r->prompt_text} : r->more[i - 1];
}

/* Where a chat answer's thinking goes (llama.cpp's --reasoning-format). */
typedef enum sl_reasoning_format {
    SL_REASONING_NONE,     /* stays in the content */
    SL_REASONING_DEEPSEEK, /* <think>...</think> goes to reasoning_content (server/reasoning.h) */
    SL_REASONING_AUTO,     /* DEEPSEEK when the chat template writes thinking tags */
} sl_reasoning_format;

/* "none", "deepseek" or "auto"; false for another name. */
bool sl_reasoning_format_from_name(const char *name, sl_reasoning_format *out);

#define SL_API_MAX_MATRYOSHKA 32
#define SL_API_MAX_BEAMS (SL_MAX_TOP_LOGPROBS / 2) /* a beam search asks each beam for 2 x width alternatives */

typedef struct sl_api_ctx {
    const sl_model *model;
    const char *model_id;
    const char *model_names;   /* vLLM's several --served-model-name: every name, separated by commas (model_id the
                                * first, the one answers carry); NULL: model_id alone */
    const char *model_path;    /* the GGUF file (GET /props), NULL: not said */
    int32_t n_ctx;
    const char *chat_template; /* template source, or NULL for the built-in fallback */
    sl_reasoning_format reasoning; /* the default of requests (a request's reasoning_format overrides it) */
    /* what the template decides, set once by sl_api_ctx_prepare (zero: JSON tool calls, no thinking tags) */
    sl_tool_format tool_format;
    /* the markers of tool_format that are control tokens of the vocabulary: shown in a tool request's text */
    int32_t tool_show[SL_DETOK_SHOW_MAX];
    int n_tool_show;
    /* The template reads an assistant message's tool_calls[].function.arguments as the JSON text OpenAI
     * sends, not as an object (functionary v3.2 concatenates it to a string): probed at prepare. */
    bool tool_args_text;
    bool template_thinks;
    sl_think_tags think_tags; /* the template's thinking tags (<think> when it writes none) */
    int32_t think_show[SL_DETOK_SHOW_MAX]; /* those of them that are control tokens: shown when thinking */
    int n_think_show;
    bool harmony; /* the template writes OpenAI's harmony format (gpt-oss): answers are split by harmony.c */
    bool kimi3;   /* the template writes Kimi K3's tags: answers are split by kimi3.c */
    int32_t kimi3_show[SL_DETOK_SHOW_MAX]; /* its tags that are control tokens: shown in every chat answer */
    int n_kimi3_show;
    sl_pooling pooling; /* embeddings: how the input's hidden states are pooled (mean, cls, last; none: /embedding only) */
    bool think_budget_on;              /* --reasoning-budget given: think_budget is the default */
    int32_t think_budget;              /* ... a chat answer's thinking tokens at most (-1: no limit) */
    const char *think_budget_message;  /* --reasoning-budget-message: forced before the closing tag (NULL: none) */
    /* Matryoshka embeddings (vLLM's --hf-overrides is_matryoshka / matryoshka_dimensions): a request's
     * `dimensions` keeps that many of the first, normalized after the cut; n_matryoshka_dims > 0: only those */
    bool matryoshka;
    int32_t matryoshka_dims[SL_API_MAX_MATRYOSHKA];
    int n_matryoshka_dims;
    /* The server's defaults of a request's fields (sl_api_defaults): sampling fields a request that gives none
     * gets (a reference, or NULL), the chat template's variables under a request's chat_template_kwargs (NULL),
     * and max_tokens where none is given (0: what the context leaves; else at most that) */
    json_t *defaults;
    json_t *template_kwargs;
    int32_t default_max_tokens;
    bool priority_policy; /* --scheduling-policy priority: a request's 'priority' is taken (else it must be 0) */
} sl_api_ctx;

/* The server's request defaults (llama.cpp's --temp, --top-k, ..., -n, --seed; vLLM's --override-generation-config,
 * whose keys are repetition_penalty, temperature, top_k, top_p, min_p and max_new_tokens): `gen_config` (a JSON
 * object, or NULL) then each flag given (NAN / -1 where not) into ctx->defaults and ctx->default_max_tokens; false
 * with why in err for a key or value it does not take. */
typedef struct sl_api_flag_defaults {
    double temperature, top_p, min_p, repeat_penalty, presence_penalty, frequency_penalty; /* NAN: not given */
    long long top_k, n_predict, seed;                                                      /* -1: not given */
} sl_api_flag_defaults;
bool sl_api_defaults(sl_api_ctx *ctx, const char *gen_config, const sl_api_flag_defaults *f, char *err, size_t cap);
/* llama.cpp's --chat-template-kwargs / vLLM's --default-chat-template-kwargs (a JSON object of template
 * variables) into ctx->template_kwargs; false with why in err. */
bool sl_api_template_kwargs(sl_api_ctx *ctx, const char *json, char *err, size_t cap);
/* The server's sampling defaults into a request body o: each default field whose meaning the body does not give (by
 * any of its names). (The default template variables go under a body's chat_template_kwargs wherever messages are
 * rendered.) */
void sl_api_apply_defaults(const sl_api_ctx *ctx, json_t *o);
/* max_tokens of a prompt of n_prompt tokens that gives none: what the context leaves, at most the server's default. */
int32_t sl_api_room(const sl_api_ctx *ctx, int32_t n_prompt);

/* vLLM's --hf-overrides (a JSON object of model config settings) into ctx: the ones it takes are is_matryoshka
 * (true / false) and matryoshka_dimensions (sizes, at most SL_API_MAX_MATRYOSHKA; they also make the model
 * Matryoshka); false with why in err for anything else. */
bool sl_api_hf_overrides(sl_api_ctx *ctx, const char *json, char *err, size_t cap);

/* A list of prompts as completions' prompt and embeddings' input take it: one string (tokenized, with BOS
 * where the vocabulary adds one and add_special) or token ids, or an array of those (at most max). *out: n
 * entries (sl_api_prompts_free). Errors name `param` and the entry ("input[2]"). */
bool sl_api_parse_prompts(const sl_api_ctx *ctx, json_t *v, const char *param, int32_t max, bool add_special,
                          sl_api_prompt **out, int32_t *n, sl_api_error *e);
void sl_api_prompts_free(sl_api_prompt *p, int32_t n);

/* Set once what the chat template decides for every request: the fallback template when none is given,
 * its tool-call syntax and whether it writes thinking tags (sl_http_start calls it). */
void sl_api_ctx_prepare(sl_api_ctx *ctx);

/* Parse a body. On failure err->status is set (4xx) and the request is empty. */
bool sl_api_parse(const sl_api_ctx *ctx, sl_api_kind kind, const char *body, size_t len, sl_api_request *out,
                  sl_api_error *err);
void sl_api_request_free(sl_api_request *r);

/* POST /v1/embeddings (OpenAI's; vLLM's and llama.cpp's extras): the inputs, each pooled into one vector
 * (sl_api_ctx.pooling, server/sched.h). */
#define SL_API_MAX_INPUTS 2048 /* OpenAI's limit on inputs per request */
typedef struct sl_api_embed_request {
    sl_api_prompt *inputs;   /* input: a string or token ids, or an array of those (each 1..n_ctx tokens) */
    int32_t n_inputs;
    bool base64;             /* encoding_format "base64": float32 little-endian bytes, base64 (OpenAI's clients ask) */
    int32_t normalize;       /* llama.cpp's embd_normalize: -1 none, 0 max-abs, 1 taxicab, 2 Euclidean (default), p */
    int32_t dimensions;      /* OpenAI's dimensions, where it cuts (a Matryoshka model): the first that many, then
                              * normalized; 0: all */
} sl_api_embed_request;

bool sl_api_parse_embeddings(const sl_api_ctx *ctx, const char *body, size_t len, sl_api_embed_request *out,
                             sl_api_error *err);
void sl_api_embed_request_free(sl_api_embed_request *r);
/* The answer: {"object": "list", "data": [{"object": "embedding", "index", "embedding"}...], "model", "usage"};
 * vecs[i] is input i's vector of dim floats. NULL: out of memory. */
json_t *sl_api_embeddings_json(const sl_api_ctx *ctx, const sl_api_embed_request *r, const float *const *vecs,
                               int32_t dim, int64_t prompt_tokens);

/* Ollama's GET /api/tags as llama.cpp answers it: OpenAI's model list (created: the server's start) with
 * Ollama's "models" beside it (size and modified_at: the model file's); POST /api/show: the chat template, the context length, the details. */
json_t *sl_api_ollama_tags(const sl_api_ctx *ctx, long long created);
json_t *sl_api_ollama_show(const sl_api_ctx *ctx);
/* Ollama's GET /api/ps: the model served, loaded for as long as the server runs. */
json_t *sl_api_ollama_ps(const sl_api_ctx *ctx);

/* llama.cpp's GET /props: n_ctx and the defaults of a request's sampling fields, total_slots (sequences at
 * once), the model's alias and path, the chat template, BOS / EOS text. */
json_t *sl_api_props_json(const sl_api_ctx *ctx, int32_t total_slots);
/* llama.cpp's POST /apply-template: {"prompt": the messages as the chat template renders them}. NULL: e says
 * why. */
char *sl_api_apply_template(const sl_api_ctx *ctx, const char *body, size_t len, sl_api_error *e);

/* llama.cpp's POST /infill (code completion with the model's fill-in-the-middle tokens): the body made a
 * completions body whose prompt is the token ids llama.cpp assembles — the input_extra chunks (repository-level
 * with FIM_REP / FIM_SEP where the vocabulary has them), BOS, FIM_PRE, the input_prefix's end, the prompt,
 * FIM_SUF, the input_suffix's start, FIM_MID — in the window its default batch gives. NULL: e says why (501
 * when the vocabulary has no FIM tokens). */
char *sl_api_infill_body(const sl_api_ctx *ctx, const char *body, size_t len, sl_api_error *e);
/* POST /v1/completions with OpenAI's `suffix` (the prompt a string: the text before the insertion, the suffix the
 * text after; echo refused) or with llama.cpp's infill fields (input_prefix, input_suffix, input_extra: what a
 * router sends for /infill): the body made as /infill makes it, without llama.cpp's defaults. Returns 1 with
 * *out the new body, 0 when the body asks for neither (or is not a JSON object), -1 with e set (400 naming
 * suffix for a vocabulary without FIM tokens; /infill's 501 for the infill fields). */
int sl_api_completions_fim(const sl_api_ctx *ctx, const char *body, size_t len, char **out, sl_api_error *e);

/* Field k of o (absent or null: *out kept): an integer in [lo, hi] (a whole real counts), or a boolean; false with
 * a 400 in e naming k otherwise. */
bool sl_api_get_int(json_t *o, const char *k, long long lo, long long hi, long long *out, sl_api_error *e);
bool sl_api_get_bool(json_t *o, const char *k, bool *out, sl_api_error *e);
/* Whether path is one that load balancers, routers and Prometheus poll every few seconds (/health, /v1/health,
 * /ready, /metrics): the access logs of engine and router leave out those that succeed. */
bool sl_api_probe_path(const char *path);
/* vLLM's truncate_prompt_tokens of o in *k: K tokens at most, -1 for max (at most max); 0 when absent; 0 or out of
 * range: false with e naming it. */
bool sl_api_truncate_k(json_t *o, int32_t max, long long *k, sl_api_error *e);
/* vLLM's chat echo: where a chat body's "echo" is true and its last message is in the answer's role (the
 * assistant's; with add_generation_prompt false, the last message's own), that message's content (a string, or
 * its text parts joined by newlines), which the answer's content starts with, in *out (sl_malloc'd); *out NULL
 * when there is none or it is empty. False when out of memory. */
bool sl_api_chat_echo(const json_t *body, char **out);
/* SageMaker's POST /invocations, as vLLM routes it: the endpoint the body is a request of — "messages": chat,
 * "prompt": completions, "input": embeddings (classify where `rank`: a reranker classifies), "query" with
 * "documents": rerank, "text_1" / "queries" / "data_1": score; NULL when it is none of them (not a JSON object). */
const char *sl_api_invocation_path(const char *body, size_t n, bool rank);
#define SL_API_INVOCATIONS_HELP                                                                                         \
    "POST /invocations takes the body of a chat (messages), completions (prompt), embeddings or classify (input), " \
    "rerank (query, documents) or score (text_1, text_2) request"
/* Whether sl_api_chat_echo gives a text (for a router: the stream's first content is not output). */
bool sl_api_chat_echoes(const json_t *body);
/* The next of the comma-separated names of *list in name[0, *len) (*list moves past it); false when none is left. */
bool sl_api_next_name(const char **list, const char **name, size_t *len);
/* Whether name is one of the comma-separated names of list (a whole one). */
bool sl_api_name_in(const char *list, const char *name);
/* The body's model, when given, is the one served (else a 404 in e). */
bool sl_api_check_model(const sl_api_ctx *ctx, json_t *o, sl_api_error *e);
/* A request body: a JSON object (each key once), or NULL with a 400 in e saying what is wrong with it. */
json_t *sl_api_load_body(const char *body, size_t len, sl_api_error *e);
/* A translated request (chat, taken) as JSON text, or NULL (chat NULL: e was set; else out of memory). */
char *sl_api_chat_text(json_t *chat, sl_api_error *e);

/* v[0, n) as a JSON array of numbers. */
json_t *sl_api_floats_json(const float *v, int32_t n);
/* llama.cpp's /embedding answer: [{"index", "embedding": [vectors]}] — each input's pooled vector, or with
 * per_token (pooling none) one vector per token of it (vecs[i]: inputs[i].n rows of dim floats). */
json_t *sl_api_llama_embeddings_json(const sl_api_embed_request *r, const float *const *vecs, int32_t dim, bool per_token);

/* {"error": {...}} as a malloc'd JSON string. */
char *sl_api_error_json(const sl_api_error *e);
void sl_api_set_error(sl_api_error *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The template used when neither the file nor --chat-template gives one:
 * ChatML when the vocabulary has <|im_start|>, otherwise Llama 2's [INST]. */
const char *sl_api_fallback_template(const sl_model *m);

/* How a chat is rendered (vLLM's request fields of the same names). */
typedef struct sl_api_chat_opts {
    const json_t *tools;          /* NULL: none */
    const json_t *kwargs;         /* chat_template_kwargs: more template variables, NULL: none */
    const json_t *documents;      /* vLLM's documents (RAG templates' variable): an array of objects, NULL: none */
    bool add_generation_prompt;
    /* continue_final_message: the text ends right after the last message's
     * content (the template's end-of-turn after it cut off), so the model
     * goes on with that message */
    bool continue_final;
} sl_api_chat_opts;

/* Render the chat messages to prompt text (template or built-in fallback). */
bool sl_api_render_chat(const sl_api_ctx *ctx, json_t *messages, const sl_api_chat_opts *o, char **out,
                        sl_api_error *err);

/* Response pieces. `toks` are the token records [t0, t1) of the request; as_ids: tokens are named
 * "token_id:ID" (vLLM's return_tokens_as_token_ids; chat's bytes stay the token's text's). */
json_t *sl_api_logprobs_json(const sl_api_ctx *ctx, sl_api_kind kind, bool as_ids, const sl_tok_out *toks, int32_t t0,
                             int32_t t1, size_t text_offset);
/* vLLM's prompt_logprobs: [null, {"ID": {"logprob", "rank", "decoded_token"}, ...}, ...], each prompt token
 * with its own entry and its k most likely alternatives (rank 1..k). */
json_t *sl_api_prompt_logprobs_json(const sl_api_ctx *ctx, bool as_ids, const sl_tok_out *plp, int32_t n_plp,
                                    int32_t k);
/* Completions' logprobs with echo: the prompt's tokens plp[0, n_plp) (the
 * first one's logprob NAN: null), their text_offset within the echoed text
 * of n_echo bytes, then generated tokens [0, n_toks) from offset n_echo. */
json_t *sl_api_echo_logprobs(const sl_api_ctx *ctx, bool as_ids, const sl_tok_out *plp, int32_t n_plp, size_t n_echo,
                             const sl_tok_out *toks, int32_t n_toks);
json_t *sl_api_usage_json(int32_t prompt_tokens, int32_t completion_tokens, int32_t cached_tokens);
/* OpenAI's completion_tokens_details of a request with a prediction: its proposed tokens kept and not. */
void sl_api_usage_prediction(json_t *usage, int32_t accepted, int32_t rejected);

/* The text of token ids as the output shows it (special tokens not
 * rendered); sl_malloc'd, NULL when out of memory. */
char *sl_api_detok_text(const sl_api_ctx *ctx, const int32_t *ids, int32_t n);

/* /tokenize and /detokenize bodies → response JSON string, or NULL with err set. */
char *sl_api_tokenize(const sl_api_ctx *ctx, const char *body, size_t len, sl_api_error *err);
char *sl_api_detokenize(const sl_api_ctx *ctx, const char *body, size_t len, sl_api_error *err);

#endif

/*
 * api.c — OpenAI request parsing/validation and response pieces (see api.h).
 */
#include "api.h"

#include "core/alloc.h"
#include "core/status.h"
#include "core/strbuf.h"
#include "model/model.h"
#include "server/harmony.h"
#include "server/kimi3.h"
#include "server/llamacpp.h"
#include "server/reasoning.h"
#include "template/template.h"
#include "tokenizer/tokenizer.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

void sl_api_set_error(sl_api_error *e, int status, const char *param, const char *fmt, ...) {
    e->status = status;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    snprintf(e->type, sizeof e->type, "%s",
             status == 401 ? "authentication_error" : status == 404 ? "not_found_error" : status == 501 ? "not_supported_error"
                                                    : status >= 500 ? "server_error"
                                                                    : "invalid_request_error");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    /* the message may quote what the client sent (jansson's error text shows
     * the bytes near a syntax error; a model name may be cut at the end) */
    sl_utf8_scrub(e->message);
}

char *sl_api_error_json(const sl_api_error *e) {
    json_t *o = json_pack("{s:{s:s,s:s,s:o,s:o}}", "error", "message", e->message, "type", e->type, "param",
                          e->param[0] ? json_string(e->param) : json_null(), "code",
                          e->status == 404 && !strcmp(e->param, "model") ? json_string("model_not_found") : json_null());
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

void sl_api_request_free(sl_api_request *r) {
    for (int i = 0; i < r->params.n_stop; i++) sl_free(r->params.stop[i]);
    sl_free(r->params.bias_ids);
    sl_free(r->params.bias_vals);
    sl_free(r->params.allow_ids);
    sl_free(r->params.bad_ids);
    sl_free(r->params.bad_lens);
    sl_dry_breakers_free(r->params.dry_breakers);
    sl_free(r->prompt);
    sl_free(r->prompt_text);
    sl_free(r->think_ids);
    sl_free(r->chat_echo);
    sl_free(r->pred_ids);
    for (int32_t i = 0; i < r->n_more; i++) {
        sl_free(r->more[i].ids);
        sl_free(r->more[i].text);
    }
    sl_free(r->more);
    sl_json_schema_release(r->params.schema);
    sl_grammar_release(r->params.grammar);
    sl_triggers_release(r->params.triggers);
    json_decref(r->tools.tools);
    json_decref(r->response_fields);
    memset(r, 0, sizeof *r);
}

/* ---- field helpers --------------------------------------------------------- */

static bool present(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return v && !json_is_null(v);
}

static bool get_number(json_t *o, const char *k, double lo, double hi, double *out, sl_api_error *e) {
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return true;
    if (!json_is_number(v)) {
        sl_api_set_error(e, 400, k, "'%s' must be a number", k);
        return false;
    }
    double d = json_number_value(v);
    if (!isfinite(d) || d < lo || d > hi) {
        sl_api_set_error(e, 400, k, "'%s' is %g; it must be between %g and %g", k, d, lo, hi);
        return false;
    }
    *out = d;
    return true;
}

bool sl_api_get_int(json_t *o, const char *k, long long lo, long long hi, long long *out, sl_api_error *e) {
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return true;
    if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v) && fabs(json_real_value(v)) < 9e15) {
        v = json_integer((json_int_t)json_real_value(v));
        json_object_set_new(o, k, v);
    }
    if (!json_is_integer(v)) {
        sl_api_set_error(e, 400, k, "'%s' must be an integer", k);
        return false;
    }
    long long x = json_integer_value(v);
    if (x < lo || x > hi) {
        sl_api_set_error(e, 400, k, "'%s' is %lld; it must be between %lld and %lld", k, x, lo, hi);
        return false;
    }
    *out = x;
    return true;
}

bool sl_api_get_bool(json_t *o, const char *k, bool *out, sl_api_error *e) {
    json_t *v = json_object_get(o, k);
    if (!v || json_is_null(v)) return true;
    if (!json_is_boolean(v)) {
        sl_api_set_error(e, 400, k, "'%s' must be true or false", k);
        return false;
    }
    *out = json_is_true(v);
    return true;
}

/* ---- chat rendering ----------------------------------------------------------- */

static bool message_text(json_t *msg, int idx, const char **role, char **text, sl_api_error *e) {
    char field[64];
    snprintf(field, sizeof field, "messages[%d]", idx);
    if (!json_is_object(msg)) {
        sl_api_set_error(e, 400, field, "'%s' must be an object with 'role' and 'content'", field);
        return false;
    }
    json_t *r = json_object_get(msg, "role");
    if (!json_is_string(r)) {
        snprintf(field, sizeof field, "messages[%d].role", idx);
        sl_api_set_error(e, 400, field, "'%s' must be a string", field);
        return false;
    }
    *role = json_string_value(r);
    static const char *roles[] = {"system", "user", "assistant", "tool", "developer", "function"};
    bool known = false;
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) known |= !strcmp(*role, roles[i]);
    if (!known) {
        snprintf(field, sizeof field, "messages[%d].role", idx);
        sl_api_set_error(e, 400, field, "'%s' is '%s'; expected system, user, assistant, tool or developer", field,
                         *role);
        return false;
    }
    json_t *c = json_object_get(msg, "content");
    snprintf(field, sizeof field, "messages[%d].content", idx);
    if (!c || json_is_null(c)) {
        *text = sl_strdup("");
    } else if (json_is_string(c)) {
        *text = sl_strdup(json_string_value(c));
    } else if (json_is_array(c)) {
        size_t n = 0, i;
        json_t *part;
        json_array_foreach(c, i, part) {
            json_t *t = json_object_get(part, "text");
            if (!json_is_object(part) || !json_is_string(json_object_get(part, "type")) ||
                strcmp(json_string_value(json_object_get(part, "type")), "text") != 0 || !json_is_string(t)) {
                sl_api_set_error(e, 400, field, "'%s' parts must be {\"type\": \"text\", \"text\": \"...\"}", field);
                return false;
            }
            n += json_string_length(t);
        }
        *text = sl_malloc(n + 1);
        if (*text) {
            size_t k = 0;
            json_array_foreach(c, i, part) {
                json_t *t = json_object_get(part, "text");
                memcpy(*text + k, json_string_value(t), json_string_length(t));
                k += json_string_length(t);
            }
            (*text)[k] = '\0';
        }
    } else {
        sl_api_set_error(e, 400, field, "'%s' must be a string or an array of text parts", field);
        return false;
    }
    if (!*text) {
        sl_api_set_error(e, 500, NULL, "out of memory");
        return false;
    }
    return true;
}

typedef struct tbuf {
    char *p;
    size_t n, cap;
    bool oom;
} tbuf;

static void tb_add(tbuf *b, const char *s) {
    size_t k = strlen(s);
    if (b->n + k + 1 > b->cap) {
        size_t c = b->cap ? b->cap * 2 : 1024;
        while (c < b->n + k + 1) c *= 2;
        char *np = sl_realloc(b->p, c);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = c;
    }
    memcpy(b->p + b->n, s, k);
    b->n += k;
    b->p[b->n] = '\0';
}

/* Llama 2's [INST] format, for files without a template whose vocabulary has no ChatML tokens. */
static const char LLAMA2_TEMPLATE[] =
    "{% if messages[0]['role'] == 'system' %}{% set sys = messages[0]['content'] %}{% set msgs = messages[1:] %}"
    "{% else %}{% set sys = none %}{% set msgs = messages %}{% endif %}"
    "{% for m in msgs %}{% if m['role'] == 'user' %}{{ '[INST] ' }}"
    "{% if loop.first and sys %}{{ '<<SYS>>\n' + sys + '\n<</SYS>>\n\n' }}{% endif %}"
    "{{ m['content'] + ' [/INST]' }}{% elif m['role'] == 'assistant' %}{{ ' ' + m['content'] + ' </s>' }}{% endif %}"
    "{% endfor %}";

const char *sl_api_fallback_template(const sl_model *m) {
    const sl_tokenizer *tok = sl_model_tokenizer(m);
    for (int32_t i = 0; i < sl_tokenizer_n_vocab(tok); i++) {
        size_t len;
        const char *t = sl_tokenizer_token_text(tok, i, &len);
        if (t && len == 12 && !memcmp(t, "<|im_start|>", 12)) return sl_chat_template_default();
    }
    return LLAMA2_TEMPLATE;
}

/* Show these control tokens in the request's text too (each once, at most SL_DETOK_SHOW_MAX). */
static void show_tokens(sl_req_params *p, const int32_t *ids, int n) {
    for (int i = 0; i < n; i++) {
        bool had = false;
        for (int k = 0; k < p->n_show_ids; k++) had = had || p->show_ids[k] == ids[i];
        if (!had && p->n_show_ids < SL_DETOK_SHOW_MAX) p->show_ids[p->n_show_ids++] = ids[i];
    }
}

/* Whether the template shows a tool call's arguments when given them in this form (an object, or the JSON
 * text): rendered with a probe conversation, as llama.cpp probes a template's capabilities. */
static bool renders_args(const char *tpl, bool as_text) {
    json_t *msgs = json_pack("[{s:s, s:s}, {s:s, s:s, s:[{s:s, s:s, s:{s:s, s:o}}]}]", "role", "user", "content", "x",
                             "role", "assistant", "content", "", "tool_calls", "id", "call_1", "type", "function",
                             "function", "name", "probe_tool", "arguments",
                             as_text ? json_string("{\"probe_arg\": 7}") : json_pack("{s:i}", "probe_arg", 7));
    json_t *tools = json_pack("[{s:s, s:{s:s, s:s, s:{s:s, s:{s:{s:s}}}}}]", "type", "function", "function", "name",
                              "probe_tool", "description", "probe", "parameters", "type", "object", "properties",
                              "probe_arg", "type", "integer");
    char *out = NULL;
    size_t len = 0;
    const bool ok = msgs && tools && sl_chat_render(tpl, msgs, false, "", "", tools, NULL, NULL, &out, &len) == SL_OK &&
                    memmem(out, len, "probe_arg", 9) != NULL;
    sl_free(out);
    json_decref(msgs);
    json_decref(tools);
    return ok;
}

/* The control tokens among the texts (NULL-terminated; a text that is no token may begin with one, up to
 * its first '>': Gemma 4's "<|channel>" of "<|channel>thought"), at most SL_DETOK_SHOW_MAX, into out. */
static int control_ids(const sl_tokenizer *tok, const char *const *texts, int32_t *out) {
    int n = 0;
    for (; *texts && n < SL_DETOK_SHOW_MAX; texts++) {
        const char *gt = strchr(*texts, '>');
        int32_t id = sl_tokenizer_find(tok, *texts, strlen(*texts));
        if (id < 0 && gt) id = sl_tokenizer_find(tok, *texts, (size_t)(gt + 1 - *texts));
        if (id >= 0 && sl_tokenizer_token_type(tok, id) == SL_TOKEN_CONTROL) out[n++] = id;
    }
    return n;
}

void sl_api_ctx_prepare(sl_api_ctx *ctx) {
    if (!ctx->chat_template) ctx->chat_template = sl_api_fallback_template(ctx->model);
    ctx->tool_format = sl_tool_format_detect(ctx->chat_template);
    const sl_tokenizer *tok = sl_model_tokenizer(ctx->model);
    ctx->n_tool_show = control_ids(tok, sl_tool_format_markers(ctx->tool_format), ctx->tool_show);
    ctx->harmony = sl_harmony_template(ctx->chat_template);
    ctx->kimi3 = sl_kimi3_template(ctx->chat_template);
    ctx->n_kimi3_show = ctx->kimi3 ? control_ids(tok, sl_kimi3_markers(), ctx->kimi3_show) : 0;
    ctx->tool_args_text = !renders_args(ctx->chat_template, false) && renders_args(ctx->chat_template, true);
    ctx->think_tags = SL_THINK_TAGS_THINK;
    ctx->template_thinks =
        sl_think_template_has_tags(ctx->chat_template, &ctx->think_tags) || ctx->harmony || ctx->kimi3;
    const char *tags[3] = {sl_think_open_tag(ctx->think_tags), sl_think_close_tag(ctx->think_tags), NULL};
    ctx->n_think_show = control_ids(tok, tags, ctx->think_show);
}

static char *token_text_dup(const sl_tokenizer *tok, int32_t id) {
    size_t len = 0;
    const char *t = id >= 0 ? sl_tokenizer_token_text(tok, id, &len) : NULL;
    return t ? sl_strndup(t, len) : sl_strdup("");
}

/* An assistant message's tool_calls as templates read them: each
 * {"function": {"name": ..., "arguments": ...}} with arguments an object,
 * where the client sent OpenAI's JSON text (vLLM and llama.cpp do the same),
 * unless the template reads the text (args_text: sl_api_ctx.tool_args_text). */
static bool tool_calls_for_template(json_t *m, int idx, bool args_text, sl_api_error *e) {
    json_t *tc = json_object_get(m, "tool_calls");
    if (!tc || json_is_null(tc)) return true;
    char field[96];
    snprintf(field, sizeof field, "messages[%d].tool_calls", idx);
    if (!json_is_array(tc)) {
        sl_api_set_error(e, 400, field, "'%s' must be an array", field);
        return false;
    }
    size_t j;
    json_t *c;
    json_array_foreach(tc, j, c) {
        json_t *fn = json_object_get(c, "function");
        json_t *args = json_object_get(fn, "arguments");
        if (!json_is_object(c) || !json_is_object(fn) || !json_is_string(json_object_get(fn, "name")) ||
            (args && !json_is_string(args) && !json_is_object(args))) {
            snprintf(field, sizeof field, "messages[%d].tool_calls[%zu]", idx, j);
            sl_api_set_error(e, 400, field,
                             "'%s' must be {\"type\": \"function\", \"function\": {\"name\": string, "
                             "\"arguments\": string}}",
                             field);
            return false;
        }
        if (json_is_string(args) && !args_text) {
            json_t *o = json_loadb(json_string_value(args), json_string_length(args), 0, NULL);
            if (json_is_object(o)) json_object_set_new(fn, "arguments", o);
            else json_decref(o);
        }
    }
    return true;
}

bool sl_api_render_chat(const sl_api_ctx *ctx, json_t *messages, const sl_api_chat_opts *o, char **out,
                        sl_api_error *e) {
    /* validate, and give the template plain-string contents (text parts joined) */
    json_t *norm = json_array();
    size_t i;
    json_t *msg;
    json_array_foreach(messages, i, msg) {
        const char *role;
        char *text = NULL;
        if (!message_text(msg, (int)i, &role, &text, e)) {
            json_decref(norm);
            return false;
        }
        json_t *m = json_deep_copy(msg);
        json_object_set_new(m, "content", json_string(text));
        json_array_append_new(norm, m);
        sl_free(text);
        if (!tool_calls_for_template(m, (int)i, ctx->tool_args_text, e)) {
            json_decref(norm);
            return false;
        }
    }
    const sl_tokenizer *tok = sl_model_tokenizer(ctx->model);
    char *bos = token_text_dup(tok, sl_tokenizer_bos(tok)), *eos = token_text_dup(tok, sl_tokenizer_eos(tok));
    const char *src = ctx->chat_template ? ctx->chat_template : sl_api_fallback_template(ctx->model);
    size_t len = 0;
    sl_status st = sl_chat_render(src, norm, o->add_generation_prompt, bos ? bos : "", eos ? eos : "",
                                  o->tools && !json_is_null(o->tools) ? o->tools : NULL, o->documents, o->kwargs, out, &len);
    sl_free(bos);
    sl_free(eos);
    if (st) {
        json_decref(norm);
        if (st == SL_ERR_NOMEM) sl_api_set_error(e, 500, NULL, "out of memory");
        else sl_api_set_error(e, 400, "messages", "the chat template cannot render these messages: %s", sl_last_error());
        *out = NULL;
        return false;
    }
    if (o->continue_final) { /* as transformers: cut after the last occurrence of the final content, stripped */
        const char *c = json_string_value(json_object_get(json_array_get(norm, json_array_size(norm) - 1), "content"));
        size_t cl = c ? strlen(c) : 0;
        while (cl && strchr(" \t\n\r", *c)) c++, cl--;
        while (cl && strchr(" \t\n\r", c[cl - 1])) cl--;
        const char *at = NULL;
        for (const char *p = *out; cl && (p = memmem(p, len - (size_t)(p - *out), c, cl)); p++) at = p;
        if (!at) {
            json_decref(norm);
            sl_free(*out);
            *out = NULL;
            sl_api_set_error(e, 400, "continue_final_message",
                             "'continue_final_message': the final message's content is empty or not in the rendered "
                             "conversation");
            return false;
        }
        len = (size_t)(at - *out) + cl;
        (*out)[len] = '\0';
    }
    json_decref(norm);
    if (memchr(*out, 0, len)) {
        sl_free(*out);
        *out = NULL;
        sl_api_set_error(e, 400, "messages", "the rendered conversation contains a NUL byte");
        return false;
    }
    return true;
}

bool sl_reasoning_format_from_name(const char *name, sl_reasoning_format *out) {
    static const char *NAMES[] = {[SL_REASONING_NONE] = "none", [SL_REASONING_DEEPSEEK] = "deepseek",
                                  [SL_REASONING_AUTO] = "auto"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, NAMES[i])) {
            *out = (sl_reasoning_format)i;
            return true;
        }
    return false;
}

/* ---- request parsing ------------------------------------------------------------ */

/* A JSON array of token ids into *out (sl_malloc'd, room for one more id); an error names `param` and the
 * element as what[i]. */
static bool token_ids_of(const sl_api_ctx *ctx, const json_t *arr, const char *param, const char *what, int32_t **out,
                         sl_api_error *e) {
    const int32_t nv = sl_tokenizer_n_vocab(sl_model_tokenizer(ctx->model));
    int32_t *p = sl_alloc_array(json_array_size(arr) + 1, sizeof(int32_t));
    if (!p) {
        sl_api_set_error(e, 500, NULL, "out of memory");
        return false;
    }
    size_t i;
    const json_t *v;
    json_array_foreach(arr, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= nv) {
            sl_free(p);
            sl_api_set_error(e, 400, param, "'%s[%zu]' is not a token id in [0, %d)", what, i, nv);
            return false;
        }
        p[i] = (int32_t)json_integer_value(v);
    }
    *out = p;
    return true;
}

/* One prompt: a string (tokenized, with BOS where the vocabulary adds one and add_special), or an array of token
 * ids. Errors name `param`, and `field` ("prompt" or "prompt[i]") in the message. */
static bool parse_one_prompt(const sl_api_ctx *ctx, json_t *p, const char *param, const char *field, bool add_special,
                             sl_api_prompt *out, sl_api_error *e) {
    const sl_tokenizer *tok = sl_model_tokenizer(ctx->model);
    if (json_is_string(p)) {
        out->text = sl_strndup(json_string_value(p), json_string_length(p));
        size_t n = 0;
        /* control-token text ("<|im_start|>") is that token, as vLLM's tokenizer and llama.cpp read a prompt */
        if (!out->text || sl_tokenize(tok, json_string_value(p), json_string_length(p),
                                      add_special && sl_tokenizer_add_bos(tok), true, &out->ids, &n) != SL_OK) {
            sl_api_set_error(e, 400, param, "cannot tokenize '%s': %s", field, sl_last_error());
            return false;
        }
        out->n = (int32_t)(n > INT32_MAX ? INT32_MAX : n);
        return true;
    }
    if (json_is_array(p) && json_array_size(p) > 0 && json_is_integer(json_array_get(p, 0))) {
        if (!token_ids_of(ctx, p, param, field, &out->ids, e)) return false;
        out->n = (int32_t)json_array_size(p);
        return true;
    }
    sl_api_set_error(e, 400, param, "'%s' must be a string or an array of token ids", field);
    return false;
}

void sl_api_prompts_free(sl_api_prompt *p, int32_t n) {
    for (int32_t i = 0; p && i < n; i++) {
        sl_free(p[i].ids);
        sl_free(p[i].text);
    }
    sl_free(p);
}

bool sl_api_parse_prompts(const sl_api_ctx *ctx, json_t *v, const char *param, int32_t max, bool add_special,
                          sl_api_prompt **out, int32_t *n_out, sl_api_error *e) {
    *out = NULL;
    *n_out = 0;
    if (!v) {
        sl_api_set_error(e, 400, param, "'%s' is required", param);
        return false;
    }
    const bool list = json_is_array(v) && json_array_size(v) > 0 &&
                      (json_is_string(json_array_get(v, 0)) || json_is_array(json_array_get(v, 0)));
    const size_t n = list ? json_array_size(v) : 1;
    if (n > (size_t)max) {
        sl_api_set_error(e, 400, param, "'%s' has %zu entries; at most %d are allowed", param, n, max);
        return false;
    }
    sl_api_prompt *p = sl_calloc(n, sizeof *p);
    if (!p) {
        sl_api_set_error(e, 500, NULL, "out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char field[80];
        if (list) snprintf(field, sizeof field, "%s[%zu]", param, i);
        else snprintf(field, sizeof field, "%s", param);
        json_t *pi = list ? json_array_get(v, i) : v;
        if ((list && !json_is_string(pi) && !json_is_array(pi)) ||
            !parse_one_prompt(ctx, pi, param, field, add_special, &p[i], e)) {
            if (!e->status) sl_api_set_error(e, 400, param, "'%s' must be a string or an array of token ids", field);
            sl_api_prompts_free(p, (int32_t)n);
            return false;
        }
    }
    *out = p;
    *n_out = (int32_t)n;
    return true;
}

/* The prompt: one (a string or token ids), or a list of several, each a string or token ids. */
static bool parse_prompt(const sl_api_ctx *ctx, json_t *body, sl_api_request *r, sl_api_error *e) {
    json_t *v = json_object_get(body, "prompt");
    const bool list = json_is_array(v) && json_array_size(v) > 0 &&
                      (json_is_string(json_array_get(v, 0)) || json_is_array(json_array_get(v, 0)));
    if (list && json_array_size(v) * (size_t)r->n > SL_API_MAX_PROMPTS) {
        sl_api_set_error(e, 400, "prompt", "'prompt' has %zu prompts%s; at most %d choices are allowed",
                         json_array_size(v), r->n > 1 ? " times n" : "", SL_API_MAX_PROMPTS);
        return false;
    }
    sl_api_prompt *p;
    int32_t n;
    if (!sl_api_parse_prompts(ctx, v, "prompt", SL_API_MAX_PROMPTS, true, &p, &n, e)) return false;
    r->prompt = p[0].ids;
    r->n_prompt = p[0].n;
    r->prompt_text = p[0].text;
    if (n > 1) { /* the others: r->more (one allocation, as sl_api_request_free frees it) */
        memmove(p, p + 1, sizeof *p * (size_t)(n - 1));
        r->more = p;
        r->n_more = n - 1;
    } else {
        sl_free(p);
    }
    return true;
}

/* Chat's messages rendered and tokenized into r's prompt; gen_prompt: add_generation_prompt unless the body says
 * (true for chat, false for embeddings, as vLLM has them). */
/* llama.cpp's reasoning budget (reasoning_budget_tokens, reasoning_budget_message; the server's --reasoning-budget
 * and --reasoning-budget-message where the request gives none): the template's thinking tags and the forced
 * tokens (the message, then the closing tag) as the scheduler takes them (server/sched.h). */
static bool parse_think_budget(const sl_api_ctx *ctx, json_t *body, sl_api_request *r, sl_api_error *e) {
    long long budget = ctx->think_budget_on ? ctx->think_budget : -1;
    if (!sl_api_get_int(body, "reasoning_budget_tokens", -1, INT32_MAX, &budget, e)) return false;
    const json_t *mv = json_object_get(body, "reasoning_budget_message");
    if (mv && !json_is_null(mv) && !json_is_string(mv)) {
        sl_api_set_error(e, 400, "reasoning_budget_message", "'reasoning_budget_message' must be a string");
        return false;
    }
    const char *msg = json_is_string(mv) ? json_string_value(mv) : ctx->think_budget_message ? ctx->think_budget_message : "";
    r->params.think_budget = -1;
    if (budget < 0 || r->params.schema || r->params.grammar) return true; /* (a guided answer has no thinking) */
    if (ctx->harmony || ctx->kimi3) {
        if (!present(body, "reasoning_budget_tokens")) return true;
        sl_api_set_error(e, 400, "reasoning_budget_tokens", "'reasoning_budget_tokens' is not supported with this model's "
                         "chat template (its thinking is not a <think>-style block)");
        return false;
    }
    const sl_tokenizer *tok = sl_model_tokenizer(ctx->model);
    const char *open = sl_think_open_tag(r->think_tags), *close = sl_think_close_tag(r->think_tags);
    int32_t *a = NULL, *b = NULL, *c = NULL;
    size_t na = 0, nb = 0, nc = 0;
    char *forced = sl_malloc(strlen(msg) + strlen(close) + 1);
    bool ok = forced != NULL;
    if (ok) sprintf(forced, "%s%s", msg, close);
    ok = ok && sl_tokenize(tok, open, strlen(open), false, true, &a, &na) == SL_OK &&
         sl_tokenize(tok, close, strlen(close), false, true, &b, &nb) == SL_OK &&
         sl_tokenize(tok, forced, strlen(forced), false, true, &c, &nc) == SL_OK;
    sl_free(forced);
    r->think_ids = ok ? sl_alloc_array(na + nb + nc + 1, sizeof(int32_t)) : NULL;
    if (!r->think_ids) {
        sl_free(a);
        sl_free(b);
        sl_free(c);
        sl_api_set_error(e, 500, NULL, "cannot tokenize the thinking tags: %s", ok ? "out of memory" : sl_last_error());
        return false;
    }
    memcpy(r->think_ids, a, sizeof(int32_t) * na);
    memcpy(r->think_ids + na, b, sizeof(int32_t) * nb);
    memcpy(r->think_ids + na + nb, c, sizeof(int32_t) * nc);
    sl_free(a);
    sl_free(b);
    sl_free(c);
    r->params.think_budget = (int32_t)budget;
    r->params.think_open = sl_think_open_in_prompt(r->think_tags, r->prompt_text);
    r->params.think_start = r->think_ids;
    r->params.n_think_start = (int32_t)na;
    r->params.think_end = r->think_ids + na;
    r->params.n_think_end = (int32_t)nb;
    r->params.think_forced = r->think_ids + na + nb;
    r->params.n_think_forced = (int32_t)nc;
    return true;
}

/* Template variable k of the body's chat_template_kwargs, v where it has none (made where absent or null; a
 * chat_template_kwargs of another type is left for its 400). */
static void kwarg_default(json_t *body, const char *k, const json_t *v) {
    json_t *kw = json_object_get(body, "chat_template_kwargs");
    if (kw && !json_is_object(kw) && !json_is_null(kw)) return;
    if (!json_is_object(kw)) json_object_set_new(body, "chat_template_kwargs", kw = json_object());
    if (!json_object_get(kw, k)) json_object_set(kw, k, (json_t *)v);
}

static bool parse_messages(const sl_api_ctx *ctx, json_t *body, sl_api_request *r, bool gen_prompt, sl_api_error *e) {
    json_t *m = json_object_get(body, "messages");
    if (!m) {
        sl_api_set_error(e, 400, "messages", "'messages' is required");
        return false;
    }
    if (!json_is_array(m) || json_array_size(m) == 0) {
        sl_api_set_error(e, 400, "messages", "'messages' must be a non-empty array");
        return false;
    }
    sl_api_chat_opts co = {.tools = r->tools.tools, .add_generation_prompt = gen_prompt};
    if (!sl_api_get_bool(body, "add_generation_prompt", &co.add_generation_prompt, e) ||
        !sl_api_get_bool(body, "continue_final_message", &co.continue_final, e))
        return false;
    if (co.continue_final && co.add_generation_prompt) {
        sl_api_set_error(e, 400, "continue_final_message",
                         "'continue_final_message' needs 'add_generation_prompt': false (the answer continues the last "
                         "message instead of starting a new one)");
        return false;
    }
    json_t *docs = json_object_get(body, "documents"); /* vLLM's: RAG templates read them (Granite, Command R) */
    if (docs && !json_is_null(docs)) {
        size_t di;
        json_t *d;
        bool ok = json_is_array(docs);
        json_array_foreach(docs, di, d) {
            const char *dk;
            json_t *dv;
            ok &= json_is_object(d);
            json_object_foreach(d, dk, dv) ok &= json_is_string(dv);
        }
        if (!ok) {
            sl_api_set_error(e, 400, "documents", "'documents' must be an array of objects of strings (such as \"title\" "
                             "and \"text\")");
            return false;
        }
        co.documents = docs;
    }
    const json_t *effort = json_object_get(body, "reasoning_effort"); /* (OpenAI's: the template's variable) */
    if (effort && !json_is_null(effort)) {
        static const char *const efforts[] = {"none", "minimal", "low", "medium", "high"};
        bool known = false;
        for (size_t i = 0; json_is_string(effort) && i < sizeof efforts / sizeof efforts[0]; i++)
            known |= !strcmp(json_string_value(effort), efforts[i]);
        if (!known) {
            sl_api_set_error(e, 400, "reasoning_effort", "'reasoning_effort' must be \"none\", \"minimal\", \"low\", "
                                                         "\"medium\" or \"high\"");
            return false;
        }
        kwarg_default(body, "reasoning_effort", effort); /* (the kwargs' own wins) */
    }
    const char *dk; /* the server's default template variables, under the request's own (and its effort) */
    json_t *dv;
    json_object_foreach(ctx->template_kwargs, dk, dv) kwarg_default(body, dk, dv);
    json_t *kw = json_object_get(body, "chat_template_kwargs");
    if (kw && !json_is_null(kw)) {
        const char *k;
        json_t *v;
        if (!json_is_object(kw)) {
            sl_api_set_error(e, 400, "chat_template_kwargs", "'chat_template_kwargs' must be an object of template variables");
            return false;
        }
        json_object_foreach(kw, k, v) {
            if (sl_chat_reserved_var(k)) {
                sl_api_set_error(e, 400, "chat_template_kwargs",
                                 "'chat_template_kwargs.%s' is a variable the server sets itself", k);
                return false;
            }
        }
        co.kwargs = kw;
    }
    if (!sl_api_render_chat(ctx, m, &co, &r->prompt_text, e)) return false;
    sl_reasoning_format rf = ctx->reasoning;
    json_t *rfv = json_object_get(body, "reasoning_format");
    if (rfv && !json_is_null(rfv) && (!json_is_string(rfv) || !sl_reasoning_format_from_name(json_string_value(rfv), &rf))) {
        sl_api_set_error(e, 400, "reasoning_format", "'reasoning_format' must be \"none\", \"deepseek\" or \"auto\"");
        return false;
    }
    /* a guided answer (response_format, a forced call, a grammar) is what the guide says from its first token:
     * no thinking to split */
    r->think = !r->params.schema && !r->params.grammar && (rf == SL_REASONING_DEEPSEEK || (rf == SL_REASONING_AUTO && ctx->template_thinks));
    r->think_tags = ctx->think_tags;
    r->think_open = r->think && sl_think_open_in_prompt(r->think_tags, r->prompt_text);
    if (r->think) show_tokens(&r->params, ctx->think_show, ctx->n_think_show);
    if (ctx->kimi3) { /* its tags delimit every part, the content too; a think section the prompt opened is
                       * routed (to the content without thinking) whatever the request asks */
        r->think_open = sl_kimi3_think_open(r->prompt_text);
        show_tokens(&r->params, ctx->kimi3_show, ctx->n_kimi3_show);
    }
    const sl_tokenizer *tok = sl_model_tokenizer(ctx->model);
    /* the template writes special tokens as text: parse them; add BOS unless the text starts with it */
    bool add_bos = sl_tokenizer_add_bos(tok);
    int32_t bos = sl_tokenizer_bos(tok);
    if (add_bos && bos >= 0) {
        size_t bl;
        const char *bt = sl_tokenizer_token_text(tok, bos, &bl);
        if (bt && bl && strlen(r->prompt_text) >= bl && !memcmp(r->prompt_text, bt, bl)) add_bos = false;
    }
    size_t n = 0;
    if (sl_tokenize(tok, r->prompt_text, strlen(r->prompt_text), add_bos, true, &r->prompt, &n) != SL_OK) {
        sl_api_set_error(e, 400, "messages", "cannot tokenize the rendered conversation: %s", sl_last_error());
        return false;
    }
    r->n_prompt = (int32_t)n;
    return parse_think_budget(ctx, body, r, e);
}

/* One stop string (the field name for errors: "stop" or "stop[i]"). */
static bool add_stop(json_t *v, const char *name, sl_req_params *p, sl_api_error *e) {
    if (json_string_length(v) == 0) return true;
    if (json_string_length(v) > 256 || memchr(json_string_value(v), 0, json_string_length(v))) {
        sl_api_set_error(e, 400, "stop", "'%s' must be 1..256 bytes without NUL", name);
        return false;
    }
    p->stop[p->n_stop] = sl_strdup(json_string_value(v));
    if (!p->stop[p->n_stop]) {
        sl_api_set_error(e, 500, NULL, "out of memory");
        return false;
    }
    p->n_stop++;
    return true;
}

static bool parse_stop(json_t *body, sl_req_params *p, sl_api_error *e) {
    json_t *s = json_object_get(body, "stop");
    if (!s || json_is_null(s)) return true;
    if (json_is_string(s)) return add_stop(s, "stop", p, e);
    if (!json_is_array(s)) {
        sl_api_set_error(e, 400, "stop", "'stop' must be a string or an array of strings");
        return false;
    }
    if (json_array_size(s) > SL_MAX_STOP) {
        sl_api_set_error(e, 400, "stop", "'stop' has %zu strings; at most %d are allowed", json_array_size(s), SL_MAX_STOP);
        return false;
    }
    size_t i;
    json_t *v;
    json_array_foreach(s, i, v) {
        char name[32];
        snprintf(name, sizeof name, "stop[%zu]", i);
        if (!json_is_string(v)) {
            sl_api_set_error(e, 400, "stop", "'%s' must be a string", name);
            return false;
        }
        if (!add_stop(v, name, p, e)) return false;
    }
    return true;
}

/* A token id as a logit_bias key: decimal digits only, in [0, n_vocab). */
static bool bias_key(const char *k, int32_t n_vocab, int32_t *id) {
    if (!*k || strlen(k) > 10) return false;
    long long v = 0;
    for (const char *c = k; *c; c++) {
        if (*c < '0' || *c > '9') return false;
        v = v * 10 + (*c - '0');
    }
    if (v >= n_vocab) return false;
    *id = (int32_t)v;
    return true;
}

/* OpenAI's logit_bias: {"token id": bias in [-100, 100], ...}. */
static bool parse_logit_bias(const sl_api_ctx *ctx, json_t *body, sl_req_params *p, sl_api_error *e) {
    json_t *lb = json_object_get(body, "logit_bias");
    if (!lb || json_is_null(lb)) return true;
    const int32_t n_vocab = sl_tokenizer_n_vocab(sl_model_tokenizer(ctx->model));
    if (!json_is_object(lb)) {
        sl_api_set_error(e, 400, "logit_bias", "'logit_bias' must be an object mapping token ids to numbers");
        return false;
    }
    size_t n = json_object_size(lb);
    if (n > SL_MAX_LOGIT_BIAS) {
        sl_api_set_error(e, 400, "logit_bias", "'logit_bias' has %zu entries; at most %d are allowed", n,
                         SL_MAX_LOGIT_BIAS);
        return false;
    }
    if (n == 0) return true;
    p->bias_ids = sl_alloc_array(n, sizeof(int32_t));
    p->bias_vals = sl_alloc_array(n, sizeof(float));
    if (!p->bias_ids || !p->bias_vals) {
        sl_api_set_error(e, 500, NULL, "out of memory");
        return false;
    }
    const char *k;
    json_t *v;
    json_object_foreach(lb, k, v) {
        int32_t id;
        if (!bias_key(k, n_vocab, &id)) {
            sl_api_set_error(e, 400, "logit_bias", "'logit_bias' key '%.40s' is not a token id in [0, %d)", k, n_vocab);
            return false;
        }
        for (int32_t i = 0; i < p->n_bias; i++)
            if (p->bias_ids[i] == id) {
                sl_api_set_error(e, 400, "logit_bias", "'logit_bias' gives token %d twice", id);
                return false;
            }
        double d = json_is_number(v) ? json_number_value(v) : NAN;
        if (!(d >= -100 && d <= 100)) {
            sl_api_set_error(e, 400, "logit_bias", "'logit_bias' of token %d must be a number between -100 and 100", id);
            return false;
        }
        p->bias_ids[p->n_bias] = id;
        p->bias_vals[p->n_bias++] = (float)d;
    }
    return true;
}

/* vLLM's stop_token_ids: an array of token ids. */
static bool parse_stop_ids(const sl_api_ctx *ctx, json_t *body, sl_req_params *p, sl_api_error *e) {
    json_t *a = json_object_get(body, "stop_token_ids");
    if (!a || json_is_null(a)) return true;
    const int32_t n_vocab = sl_tokenizer_n_vocab(sl_model_tokenizer(ctx->model));
    if (!json_is_array(a) || json_array_size(a) > SL_MAX_STOP_IDS) {
        sl_api_set_error(e, 400, "stop_token_ids", "'stop_token_ids' must be an array of at most %d token ids",
                         SL_MAX_STOP_IDS);
        return false;
    }
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= n_vocab) {
            sl_api_set_error(e, 400, "stop_token_ids", "'stop_token_ids[%zu]' is not a token id in [0, %d)", i, n_vocab);
            return false;
        }
        p->stop_ids[p->n_stop_ids++] = (int32_t)json_integer_value(v);
    }
    return true;
}

/* vLLM's allowed_token_ids: a non-empty array of token ids, the only ones the output may hold. */
static bool parse_allowed_ids(const sl_api_ctx *ctx, json_t *body, sl_req_params *p, sl_api_error *e) {
    json_t *a = json_object_get(body, "allowed_token_ids");
    if (!a || json_is_null(a)) return true;
    const int32_t n_vocab = sl_tokenizer_n_vocab(sl_model_tokenizer(ctx->model));
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > (size_t)n_vocab) {
        sl_api_set_error(e, 400, "allowed_token_ids", "'allowed_token_ids' must be an array of 1 to %d token ids",
                         n_vocab);
        return false;
    }
    if (!token_ids_of(ctx, a, "allowed_token_ids", "allowed_token_ids", &p->allow_ids, e)) return false;
    p->n_allow = (int32_t)json_array_size(a);
    return true;
}

/* vLLM's bad_words: strings the output never contains. Each is tokenized as vLLM does it: the word (leading
 * spaces stripped) alone, and after a space when that gives as many tokens and another first token (the
 * word in the middle of a text). */
static bool parse_bad_words(const sl_api_ctx *ctx, json_t *body, sl_req_params *p, sl_api_error *e) {
    json_t *a = json_object_get(body, "bad_words");
    if (!a || json_is_null(a)) return true;
    if (!json_is_array(a) || json_array_size(a) > SL_MAX_BAD_WORDS) {
        sl_api_set_error(e, 400, "bad_words", "'bad_words' must be an array of at most %d strings", SL_MAX_BAD_WORDS);
        return false;
    }
    const sl_tokenizer *tok = sl_model_tokenizer(ctx->model);
    const size_t n = json_array_size(a);
    int32_t cap = 0, used = 0; /* bad_ids' room and ids */
    p->bad_lens = sl_alloc_array(2 * n + 1, sizeof(int32_t));
    if (!p->bad_lens) goto nomem;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        const char *w = json_is_string(v) ? json_string_value(v) : NULL;
        size_t len = w ? json_string_length(v) : 0;
        while (len && *w == ' ') w++, len--;
        if (!w || len == 0 || len > 256 || memchr(w, 0, len)) {
            sl_api_set_error(e, 400, "bad_words", "'bad_words[%zu]' must be a string of 1 to 256 bytes (not only spaces)",
                             i);
            return false;
        }
        char spaced[258] = " ";
        memcpy(spaced + 1, w, len);
        int32_t first = -1, first_len = 0;
        for (int sp = 0; sp < 2; sp++) {
            int32_t *ids = NULL;
            size_t k = 0;
            if (sl_tokenize(tok, sp ? spaced : w, len + (size_t)sp, false, false, &ids, &k) != SL_OK || k == 0) {
                sl_free(ids);
                if (sp) break; /* no spaced form: the word alone is enough */
                sl_api_set_error(e, 400, "bad_words", "'bad_words[%zu]' cannot be tokenized: %s", i, sl_last_error());
                return false;
            }
            const bool keep = !sp || ((int32_t)k == first_len && ids[0] != first);
            if (!sp) first = ids[0], first_len = (int32_t)k;
            if (keep) {
                if (used + (int32_t)k > SL_MAX_BAD_WORD_TOKENS) {
                    sl_free(ids);
                    sl_api_set_error(e, 400, "bad_words", "'bad_words' come to more than %d tokens",
                                     SL_MAX_BAD_WORD_TOKENS);
                    return false;
                }
                if (used + (int32_t)k > cap) {
                    cap = used + (int32_t)k > 2 * cap ? used + (int32_t)k : 2 * cap;
                    int32_t *nb = sl_realloc(p->bad_ids, (size_t)cap * sizeof(int32_t));
                    if (!nb) {
                        sl_free(ids);
                        goto nomem;
                    }
                    p->bad_ids = nb;
                }
                memcpy(p->bad_ids + used, ids, k * sizeof(int32_t));
                used += (int32_t)k;
                p->bad_lens[p->n_bad++] = (int32_t)k;
            }
            sl_free(ids);
        }
    }
    return true;
nomem:
    sl_api_set_error(e, 500, NULL, "out of memory");
    return false;
}

/* llama.cpp's samplers (engine/sampler.h): typical_p, top_n_sigma, xtc_*, dynatemp_*, dry_*, mirostat*,
 * min_keep, and `samplers` — the order of the stages, an array of names or a string of their letters. */
static bool parse_llama_samplers(const sl_api_ctx *ctx, json_t *o, sl_req_params *p, sl_api_error *e) {
    sl_sampler_params *sp = &p->sampling;
    const struct {
        const char *name;
        float *dst;
        double lo, hi;
    } nums[] = {
        {"typical_p", &sp->typical_p, 0, 1},           {"top_n_sigma", &sp->top_n_sigma, -1e6, 1e6},
        {"xtc_probability", &sp->xtc_probability, 0, 1}, {"xtc_threshold", &sp->xtc_threshold, 0, 1},
        {"dynatemp_range", &sp->dynatemp_range, 0, 100}, {"dynatemp_exponent", &sp->dynatemp_exponent, 0, 100},
        {"dry_multiplier", &sp->dry_multiplier, 0, 1e6}, {"dry_base", &sp->dry_base, 0, 1e6},
        {"mirostat_tau", &sp->mirostat_tau, 0, 1e6},     {"mirostat_eta", &sp->mirostat_eta, 0, 1e6},
    };
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        double d = *nums[i].dst;
        if (!get_number(o, nums[i].name, nums[i].lo, nums[i].hi, &d, e)) return false;
        *nums[i].dst = (float)d;
    }
    const struct {
        const char *name;
        int32_t *dst;
        long long lo, hi;
    } ints[] = {
        {"dry_allowed_length", &sp->dry_allowed_length, 0, 1 << 20},
        {"dry_penalty_last_n", &sp->dry_penalty_last_n, -1, 1 << 30},
        {"mirostat", &sp->mirostat, 0, 2},
        {"min_keep", &sp->min_keep, 0, 1 << 30},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        long long x = *ints[i].dst;
        if (!sl_api_get_int(o, ints[i].name, ints[i].lo, ints[i].hi, &x, e)) return false;
        *ints[i].dst = (int32_t)x;
    }
    json_t *v = json_object_get(o, "samplers");
    if (v && !json_is_null(v)) {
        const size_t n = json_is_array(v) ? json_array_size(v) : json_is_string(v) ? json_string_length(v) : 0;
        if ((!json_is_array(v) && !json_is_string(v)) || n > SL_SAMPLER_MAX_STAGES) {
            sl_api_set_error(e, 400, "samplers", "'samplers' must be an array of at most %d sampler names or a string "
                             "of their letters (e.g. [\"top_k\", \"temperature\"] or \"kt\")", SL_SAMPLER_MAX_STAGES);
            return false;
        }
        sp->custom_order = true;
        sp->n_stages = 0;
        for (size_t i = 0; i < n; i++) {
            json_t *nv = json_is_array(v) ? json_array_get(v, i) : NULL;
            const char letter = json_is_string(v) ? json_string_value(v)[i] : 0;
            const int stage = nv ? (json_is_string(nv) ? sl_samp_stage_by_name(json_string_value(nv), json_string_length(nv))
                                                       : 0)
                                 : sl_samp_stage_by_letter(letter);
            if (!stage) {
                if (nv)
                    sl_api_set_error(e, 400, "samplers", "'samplers[%zu]' must be one of penalties, dry, top_n_sigma, "
                                     "top_k, typ_p, top_p, min_p, xtc, temperature, infill", i);
                else
                    sl_api_set_error(e, 400, "samplers", "'samplers' letter %zu (byte 0x%02x) is none of e d s k y p m x t i",
                                     i, (unsigned char)letter);
                return false;
            }
            sp->stages[sp->n_stages++] = (uint8_t)stage;
        }
    }
    /* DRY's sequence breakers: llama.cpp's four unless given */
    if (!sl_sampler_dry_on(sp)) return true;
    v = json_object_get(o, "dry_sequence_breakers");
    sl_status st = sl_dry_breakers_from_json(sl_model_tokenizer(ctx->model), json_is_null(v) ? NULL : v,
                                             "dry_sequence_breakers", false, &p->dry_breakers);
    if (st) {
        sl_api_set_error(e, st == SL_ERR_NOMEM ? 500 : 400, "dry_sequence_breakers", "%s", sl_last_error());
        return false;
    }
    return true;
}

/* Fields of OpenAI's API, vLLM's and llama.cpp's that would change the output in ways not implemented here: a
 * 400 naming the field unless the value is the one that changes nothing. */
static bool refuse_unsupported(json_t *o, sl_api_error *e) {
    json_t *v;
    if ((v = json_object_get(o, "best_of")) && !json_is_null(v) &&
        !(json_is_integer(v) && json_integer_value(v) == 1)) {
        sl_api_set_error(e, 400, "best_of", "'best_of' must be 1: one candidate per request is supported");
        return false;
    }
    if ((v = json_object_get(o, "suffix")) && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0)) {
        sl_api_set_error(e, 400, "suffix", "'suffix' (fill in the middle) is taken by /v1/completions, not here");
        return false;
    }
    static const struct {
        const char *name;
        double off; /* the value that changes nothing */
    } knobs[] = {{"tfs_z", 1}};
    for (size_t i = 0; i < sizeof knobs / sizeof knobs[0]; i++) {
        v = json_object_get(o, knobs[i].name);
        if (!v || json_is_null(v)) continue;
        if (json_is_number(v) && json_number_value(v) == knobs[i].off) continue;
        sl_api_set_error(e, 400, knobs[i].name, "'%s' is not supported: only %g (off) is accepted", knobs[i].name,
                         knobs[i].off);
        return false;
    }
    static const char *const unsupported[] = {"guided_whitespace_pattern", "logits_processors"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++) {
        if (!present(o, unsupported[i])) continue;
        sl_api_set_error(e, 400, unsupported[i], "'%s' is not supported", unsupported[i]);
        return false;
    }
    return true;
}

/* OpenAI's Predicted Outputs: prediction {"type": "content", "content": a string or text parts}, tokenized
 * (without special tokens) for speculation to propose from (sl_req_params.pred_ids). */
static bool parse_prediction(const sl_api_ctx *ctx, json_t *o, sl_api_request *r, sl_api_error *e) {
    const json_t *v = json_object_get(o, "prediction");
    if (!v || json_is_null(v)) return true;
    const json_t *t = json_object_get(v, "type"), *c = json_object_get(v, "content");
    sl_strbuf text = {0};
    bool ok = json_is_object(v) && json_is_string(t) && !strcmp(json_string_value(t), "content") &&
              (json_is_string(c) || json_is_array(c));
    if (ok && json_is_string(c)) ok = sl_strbuf_add(&text, json_string_value(c), json_string_length(c));
    size_t i;
    const json_t *part;
    json_array_foreach(ok && json_is_array(c) ? c : NULL, i, part) {
        const json_t *pt = json_object_get(part, "text");
        ok = ok && json_is_string(pt) && sl_strbuf_add(&text, json_string_value(pt), json_string_length(pt));
    }
    if (!ok) {
        free(text.p);
        sl_api_set_error(e, 400, "prediction", "'prediction' must be {\"type\": \"content\", \"content\": a string or an array "
                                               "of text parts}");
        return false;
    }
    size_t n = 0;
    const sl_status st = text.n ? sl_tokenize(sl_model_tokenizer(ctx->model), text.p, text.n, false, false, &r->pred_ids, &n)
                                : SL_OK;
    free(text.p);
    if (st != SL_OK) {
        sl_api_set_error(e, st == SL_ERR_NOMEM ? 500 : 400, "prediction", "'prediction': %s", sl_last_error());
        return false;
    }
    r->params.pred_ids = r->pred_ids;
    r->params.n_pred = n > (size_t)ctx->n_ctx ? ctx->n_ctx : (int32_t)n; /* (more than any output could use: the start) */
    return true;
}

/* vLLM's use_beam_search (n the beam width, length_penalty its score's; logprobs: each output token's, with its
 * alternatives) and the fields it is refused with: the ones whose effect a beam search does not have (vLLM's
 * leaves them out unsaid). */
static bool parse_beam(json_t *o, sl_api_request *r, sl_api_error *e) {
    const sl_req_params *p = &r->params;
    double lp = 1;
    if (!sl_api_get_bool(o, "use_beam_search", &r->beam, e) || !get_number(o, "length_penalty", -1e6, 1e6, &lp, e))
        return false;
    r->length_penalty = lp;
    if (!r->beam) return true; /* (length_penalty: a beam search's, nothing without one, as in vLLM) */
    if (r->n > SL_API_MAX_BEAMS) {
        sl_api_set_error(e, 400, "n", "'n' is %d; a beam search keeps at most %d beams", r->n, SL_API_MAX_BEAMS);
        return false;
    }
    const sl_sampler_params *d = &p->sampling;
    static const char *const keys[] = {"prompt_logprobs", "echo", "stop", "stop_token_ids",
                                       "logit_bias", "min_tokens", "allowed_token_ids", "bad_words", "response_format",
                                       "grammar", "json_schema", "guided_json", "guided_regex", "guided_choice",
                                       "guided_grammar", "structured_outputs", "tools", "n_probs", "reasoning_budget_tokens",
                                       "presence_penalty", "frequency_penalty", "repetition_penalty", "repeat_penalty",
                                       "mirostat", "dry_multiplier", "xtc_probability", "shardlm_resume", "suffix"};
    const bool off[] = {p->prompt_logprobs < 0, !p->echo, p->n_stop == 0,
                        p->n_stop_ids == 0, p->n_bias == 0, p->min_tokens == 0, p->n_allow == 0, p->n_bad == 0,
                        !p->schema, !p->grammar, !p->schema, !p->schema, !p->grammar, !p->grammar, !p->grammar,
                        !p->schema && !p->grammar, r->tools.choice == SL_TOOL_CHOICE_NONE, p->logprobs < 0,
                        p->think_budget < 0, d->presence_penalty == 0, d->frequency_penalty == 0, d->repeat_penalty == 1,
                        d->repeat_penalty == 1, d->mirostat == 0, d->dry_multiplier == 0, d->xtc_probability == 0,
                        !present(o, "shardlm_resume"), !present(o, "suffix")};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (off[i] || !present(o, keys[i])) continue;
        sl_api_set_error(e, 400, keys[i], "'%s' is not taken with \"use_beam_search\": true (the beams are ranked by "
                         "their tokens' log probabilities alone)", keys[i]);
        return false;
    }
    return true;
}

/* response_format: text, or structured output (json_object: any object; json_schema: compiled into p->schema). */
static bool parse_response_format(json_t *o, sl_req_params *p, sl_api_error *e) {
    json_t *v = json_object_get(o, "response_format");
    if (!v || json_is_null(v)) return true;
    json_t *t = json_is_object(v) ? json_object_get(v, "type") : NULL;
    const char *type = json_is_string(t) ? json_string_value(t) : "";
    json_t *js = json_object_get(v, "json_schema");
    if (!strcmp(type, "json_schema") && !json_is_object(json_object_get(js, "schema"))) {
        sl_api_set_error(e, 400, "response_format", "'response_format.json_schema.schema' must be a JSON Schema object");
        return false;
    }
    if (!strcmp(type, "json_object") || !strcmp(type, "json_schema")) {
        sl_status st = sl_json_schema_compile(!strcmp(type, "json_schema") ? json_object_get(js, "schema") : NULL,
                                              &p->schema);
        if (st) {
            sl_api_set_error(e, st == SL_ERR_NOMEM ? 500 : 400, "response_format",
                             "'response_format.json_schema.schema': %s", sl_last_error());
            return false;
        }
    } else if (strcmp(type, "text") != 0) {
        sl_api_set_error(e, 400, "response_format",
                         "'response_format' must be {\"type\": \"text\"}, {\"type\": \"json_object\"} or "
                         "{\"type\": \"json_schema\", \"json_schema\": {\"schema\": ...}}");
        return false;
    }
    return true;
}

/* vLLM's guided decoding — guided_json, guided_regex, guided_choice, guided_grammar, or structured_outputs
 * {json, regex, choice, json_object, grammar} — and llama.cpp's json_schema and grammar: at most one of them
 * (and not with a JSON response_format) guides the output. A regex matches the whole output; a choice is one
 * of the strings; a grammar (GBNF, engine/grammar.h) derives the whole output from its root rule. */
static bool parse_guided(const sl_api_ctx *ctx, json_t *o, sl_req_params *p, sl_api_error *e) {
    json_t *so = json_object_get(o, "structured_outputs");
    if (so && !json_is_null(so) && !json_is_object(so)) {
        sl_api_set_error(e, 400, "structured_outputs", "'structured_outputs' must be an object");
        return false;
    }
    if (json_object_get(so, "structural_tag")) {
        sl_api_set_error(e, 400, "structured_outputs", "'structured_outputs.structural_tag' is not supported");
        return false;
    }
    enum { G_JSON, G_REGEX, G_CHOICE, G_OBJECT, G_GRAMMAR };
    const struct {
        const char *field;
        json_t *v;
        int kind;
    } opts[] = {
        {"guided_json", json_object_get(o, "guided_json"), G_JSON},
        {"guided_regex", json_object_get(o, "guided_regex"), G_REGEX},
        {"guided_choice", json_object_get(o, "guided_choice"), G_CHOICE},
        {"json_schema", json_object_get(o, "json_schema"), G_JSON},
        {"structured_outputs.json", json_object_get(so, "json"), G_JSON},
        {"structured_outputs.regex", json_object_get(so, "regex"), G_REGEX},
        {"structured_outputs.choice", json_object_get(so, "choice"), G_CHOICE},
        {"structured_outputs.json_object", json_object_get(so, "json_object"), G_OBJECT},
        {"grammar", json_object_get(o, "grammar"), G_GRAMMAR},
        {"guided_grammar", json_object_get(o, "guided_grammar"), G_GRAMMAR},
        {"structured_outputs.grammar", json_object_get(so, "grammar"), G_GRAMMAR},
    };
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        json_t *v = opts[i].v;
        const char *f = opts[i].field;
        if (!v || json_is_null(v) || (opts[i].kind == G_OBJECT && json_is_false(v))) continue;
        if (opts[i].kind == G_GRAMMAR && json_is_string(v) && json_string_length(v) == 0) continue; /* llama.cpp: none */
        if (p->schema || p->grammar) {
            sl_api_set_error(e, 400, f, "'%s' guides the output as something else already does (response_format, "
                             "guided_json, guided_regex, guided_choice, grammar, structured_outputs: one of them)", f);
            return false;
        }
        sl_status st = SL_OK;
        switch (opts[i].kind) {
        case G_JSON: {
            json_t *schema = json_is_string(v) ? json_loads(json_string_value(v), 0, NULL) : json_incref(v);
            if (!json_is_object(schema)) {
                json_decref(schema);
                sl_api_set_error(e, 400, f, "'%s' must be a JSON Schema (an object, or its JSON text)", f);
                return false;
            }
            st = sl_json_schema_compile(schema, &p->schema);
            json_decref(schema);
            break;
        }
        case G_OBJECT:
            if (!json_is_true(v)) {
                sl_api_set_error(e, 400, f, "'%s' must be true or false", f);
                return false;
            }
            st = sl_json_schema_compile(NULL, &p->schema);
            break;
        case G_REGEX:
            if (!json_is_string(v)) {
                sl_api_set_error(e, 400, f, "'%s' must be a string (a regular expression)", f);
                return false;
            }
            st = sl_json_schema_compile_pattern(json_string_value(v), json_string_length(v), &p->schema);
            break;
        case G_GRAMMAR:
            if (!json_is_string(v)) {
                sl_api_set_error(e, 400, f, "'%s' must be a string (a grammar in GBNF)", f);
                return false;
            }
            st = sl_grammar_compile_vocab(json_string_value(v), json_string_length(v), sl_model_tokenizer(ctx->model),
                                          &p->grammar);
            break;
        default: { /* G_CHOICE: the strings as one alternation of literals */
            if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 256) {
                sl_api_set_error(e, 400, f, "'%s' must be an array of 1 to 256 strings", f);
                return false;
            }
            size_t k, cap = 1;
            json_t *c;
            json_array_foreach(v, k, c) {
                if (!json_is_string(c)) {
                    sl_api_set_error(e, 400, f, "'%s[%zu]' must be a string", f, k);
                    return false;
                }
                cap += 2 * json_string_length(c) + 1;
            }
            char *re = malloc(cap), *q = re;
            if (!re) {
                sl_api_set_error(e, 500, f, "out of memory");
                return false;
            }
            json_array_foreach(v, k, c) {
                if (k) *q++ = '|';
                const char *t = json_string_value(c);
                for (size_t j = 0; j < json_string_length(c); j++) {
                    if (strchr("\\^$.|?*+()[]{}", t[j]) && t[j]) *q++ = '\\';
                    *q++ = t[j];
                }
            }
            st = sl_json_schema_compile_pattern(re, (size_t)(q - re), &p->schema);
            free(re);
        }
        }
        if (st) {
            sl_api_set_error(e, st == SL_ERR_NOMEM ? 500 : 400, f, "'%s': %s", f, sl_last_error());
            return false;
        }
    }
    return true;
}

/* llama.cpp's grammar_lazy with grammar_triggers: the guide (a grammar, or a schema) waits for a trigger
 * (engine/trigger.h). A trigger is {"type": 0-3 or "token" / "word" / "pattern" / "pattern_full", "value":
 * text, "token": id (type token; else the value's one token)}, or older llama.cpp's {"word", "at_start"}.
 * Without grammar_lazy the triggers are not read (the guide holds from the start), as in llama.cpp. */
static bool parse_lazy(const sl_api_ctx *ctx, json_t *o, sl_req_params *p, sl_api_error *e) {
    json_t *lazy = json_object_get(o, "grammar_lazy"), *tr = json_object_get(o, "grammar_triggers");
    if (lazy && !json_is_null(lazy) && !json_is_boolean(lazy)) {
        sl_api_set_error(e, 400, "grammar_lazy", "'grammar_lazy' must be true or false");
        return false;
    }
    if (!json_is_true(lazy)) return true;
    if (!p->schema && !p->grammar) {
        sl_api_set_error(e, 400, "grammar_lazy", "'grammar_lazy' needs a grammar (or a schema) to wait with");
        return false;
    }
    if (!json_is_array(tr) || json_array_size(tr) == 0 || json_array_size(tr) > SL_MAX_TRIGGERS) {
        sl_api_set_error(e, 400, "grammar_triggers", "'grammar_lazy' needs 'grammar_triggers': an array of 1 to %d "
                         "triggers", SL_MAX_TRIGGERS);
        return false;
    }
    static const char *const kinds[] = {"token", "word", "pattern", "pattern_full"};
    sl_trigger_def defs[SL_MAX_TRIGGERS];
    int32_t *ids = NULL;
    size_t i;
    json_t *t;
    json_array_foreach(tr, i, t) {
        char f[48];
        snprintf(f, sizeof f, "grammar_triggers[%zu]", i);
        json_t *ty = json_object_get(t, "type"), *val = json_object_get(t, "value"), *word = json_object_get(t, "word");
        int kind = -1;
        if (json_is_integer(ty) && json_integer_value(ty) >= 0 && json_integer_value(ty) <= 3) kind = (int)json_integer_value(ty);
        for (int k = 0; k < 4 && json_is_string(ty); k++)
            if (!strcmp(json_string_value(ty), kinds[k])) kind = k;
        if (!ty && json_is_string(word)) { /* older llama.cpp */
            json_t *at = json_object_get(t, "at_start");
            kind = json_is_true(at) ? SL_TRIG_WORD_AT_START : SL_TRIG_WORD;
            val = word;
        }
        if (!json_is_object(t) || kind < 0 || !json_is_string(val) || json_string_length(val) == 0 ||
            json_string_length(val) > SL_TRIGGER_MAX_BYTES || strlen(json_string_value(val)) != json_string_length(val)) {
            sl_api_set_error(e, 400, f, "'%s' must be {\"type\": \"token\" | \"word\" | \"pattern\" | \"pattern_full\" "
                             "(or 0-3), \"value\": a string of 1 to %d bytes}", f, SL_TRIGGER_MAX_BYTES);
            return false;
        }
        defs[i] = (sl_trigger_def){.kind = (sl_trigger_kind)kind, .text = json_string_value(val), .token = -1};
        if (kind != SL_TRIG_TOKEN) continue;
        json_t *tok = json_object_get(t, "token");
        const int32_t nv = sl_tokenizer_n_vocab(sl_model_tokenizer(ctx->model));
        if (tok) {
            if (!json_is_integer(tok) || json_integer_value(tok) < 0 || json_integer_value(tok) >= nv) {
                sl_api_set_error(e, 400, f, "'%s.token' must be a token id in [0, %d)", f, nv);
                return false;
            }
            defs[i].token = (int32_t)json_integer_value(tok);
            continue;
        }
        size_t n = 0; /* the value's one token (special tokens named as themselves) */
        sl_free(ids);
        ids = NULL;
        if (sl_tokenize(sl_model_tokenizer(ctx->model), json_string_value(val), json_string_length(val), false, true, &ids, &n) ||
            n != 1) {
            sl_free(ids);
            sl_api_set_error(e, 400, f, "'%s': a token trigger's value must be one token of the vocabulary (or give "
                             "'token': its id)", f);
            return false;
        }
        defs[i].token = ids[0];
    }
    sl_free(ids);
    if (sl_triggers_create(defs, (int)json_array_size(tr), &p->triggers) != SL_OK) {
        sl_api_set_error(e, 400, "grammar_triggers", "'grammar_triggers': %s", sl_last_error());
        return false;
    }
    return true;
}

/* tools[i] is {"type": "function", "function": {"name", "description"?, "parameters"?, "strict"?}}. */
static bool check_tool(json_t *t, size_t i, json_t *seen, sl_api_error *e) {
    char field[64];
    json_t *fn = json_object_get(t, "function");
    snprintf(field, sizeof field, "tools[%zu]", i);
    if (!json_is_object(t) || !json_is_string(json_object_get(t, "type")) ||
        strcmp(json_string_value(json_object_get(t, "type")), "function") != 0 || !json_is_object(fn)) {
        sl_api_set_error(e, 400, field, "'%s' must be {\"type\": \"function\", \"function\": {\"name\": ...}}",
                         field);
        return false;
    }
    json_t *name = json_object_get(fn, "name");
    snprintf(field, sizeof field, "tools[%zu].function.name", i);
    const char *nm = json_is_string(name) ? json_string_value(name) : "";
    const size_t nl = strlen(nm);
    bool ok = nl >= 1 && nl <= 64;
    for (size_t k = 0; k < nl && ok; k++)
        ok = (nm[k] >= 'a' && nm[k] <= 'z') || (nm[k] >= 'A' && nm[k] <= 'Z') || (nm[k] >= '0' && nm[k] <= '9') ||
             nm[k] == '_' || nm[k] == '-' || nm[k] == '.';
    if (!ok) {
        sl_api_set_error(e, 400, field, "'%s' must be 1 to 64 letters, digits, '_', '-' or '.'", field);
        return false;
    }
    if (json_object_get(seen, nm)) {
        sl_api_set_error(e, 400, field, "'%s' is '%s', a name an earlier tool has", field, nm);
        return false;
    }
    json_object_set(seen, nm, json_true());
    static const struct {
        const char *key;
        json_type type;
        const char *what;
    } opt[] = {{"description", JSON_STRING, "a string"}, {"parameters", JSON_OBJECT, "a JSON Schema object"},
               {"strict", JSON_TRUE, "true or false"}};
    for (size_t k = 0; k < sizeof opt / sizeof opt[0]; k++) {
        json_t *v = json_object_get(fn, opt[k].key);
        if (!v || json_is_null(v) || json_typeof(v) == opt[k].type ||
            (opt[k].type == JSON_TRUE && json_is_boolean(v)))
            continue;
        snprintf(field, sizeof field, "tools[%zu].function.%s", i, opt[k].key);
        sl_api_set_error(e, 400, field, "'%s' must be %s", field, opt[k].what);
        return false;
    }
    return true;
}

/* The tool whose function is called name, or NULL. */
static json_t *tool_named(json_t *tools, const char *name, size_t *idx) {
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
        if (!strcmp(json_string_value(json_object_get(json_object_get(t, "function"), "name")), name)) {
            *idx = i;
            return t;
        }
    }
    return NULL;
}

/* OpenAI's tool_choice {"type": "allowed_tools", "allowed_tools": {"mode": "auto" | "required", "tools": [{"type":
 * "function", "function": {"name"}}]}} (the Responses API's {"type": "allowed_tools", "mode", "tools": [{"type":
 * "function", "name"}]} too): the answer may call only those. tools becomes them (a new array, *tools released;
 * what the template shows and the calls are read against) and o's tool_choice the mode. False with e set. */
static bool allowed_tools(json_t *o, json_t *tc, json_t **tools, sl_api_error *e) {
    const json_t *at = json_object_get(tc, "allowed_tools"), *in = at ? at : tc;
    const char *mode = json_string_value(json_object_get(in, "mode"));
    const json_t *list = json_object_get(in, "tools");
    if (!mode || (strcmp(mode, "auto") && strcmp(mode, "required")) || !json_is_array(list) || json_array_size(list) == 0) {
        sl_api_set_error(e, 400, "tool_choice", "'tool_choice' of type \"allowed_tools\" needs \"allowed_tools\": {\"mode\": "
                         "\"auto\" | \"required\", \"tools\": [{\"type\": \"function\", \"function\": {\"name\": ...}}, ...]}");
        return false;
    }
    if (!*tools) {
        sl_api_set_error(e, 400, "tool_choice", "'tool_choice' is only allowed when 'tools' declares functions");
        return false;
    }
    json_t *subset = json_array();
    size_t i;
    const json_t *t;
    json_array_foreach(list, i, t) {
        const json_t *fn = json_object_get(t, "function"), *nv = fn ? json_object_get(fn, "name") : json_object_get(t, "name");
        const char *name = json_string_value(nv);
        size_t idx;
        json_t *tool = name ? tool_named(*tools, name, &idx) : NULL;
        if (!tool) {
            sl_api_set_error(e, 400, "tool_choice", "'tool_choice.allowed_tools.tools[%zu]' %s%s%s", i,
                             name ? "names the function '" : "must name a function", name ? name : "",
                             name ? "', which 'tools' does not declare" : "");
            json_decref(subset);
            return false;
        }
        json_array_append(subset, tool);
    }
    json_decref(*tools);
    *tools = subset;
    json_object_set_new(o, "tool_choice", json_string(mode));
    return true;
}

/* tools, tool_choice and parallel_tool_calls of a chat request (after
 * response_format, which a forced call cannot be combined with). */
static bool parse_tools(const sl_api_ctx *ctx, json_t *o, sl_api_request *r, sl_api_error *e) {
    sl_api_tools *tl = &r->tools;
    tl->parallel = true;
    json_t *tools = json_object_get(o, "tools");
    if (tools && !json_is_null(tools)) {
        if (!json_is_array(tools) || json_array_size(tools) > SL_API_MAX_TOOLS) {
            sl_api_set_error(e, 400, "tools", "'tools' must be an array of at most %d functions", SL_API_MAX_TOOLS);
            return false;
        }
        json_t *seen = json_object();
        size_t i;
        json_t *t;
        json_array_foreach(tools, i, t) if (!check_tool(t, i, seen, e)) {
            json_decref(seen);
            return false;
        }
        json_decref(seen);
        if (json_array_size(tools)) tl->tools = json_incref(tools);
    }
    if (!sl_api_get_bool(o, "parallel_tool_calls", &tl->parallel, e)) return false;
    tl->choice = tl->tools ? SL_TOOL_CHOICE_AUTO : SL_TOOL_CHOICE_NONE;
    json_t *tc = json_object_get(o, "tool_choice");
    if (json_is_object(tc) && !strcmp(json_string_value(json_object_get(tc, "type")) ?: "", "allowed_tools")) {
        if (!allowed_tools(o, tc, &tl->tools, e)) return false;
        tc = json_object_get(o, "tool_choice");
    }
    json_t *fn = NULL;
    size_t idx = 0;
    if (tc && !json_is_null(tc)) {
        const char *s = json_is_string(tc) ? json_string_value(tc) : NULL;
        json_t *name = json_object_get(json_object_get(tc, "function"), "name");
        if (s && !strcmp(s, "none")) tl->choice = SL_TOOL_CHOICE_NONE;
        else if (s && !strcmp(s, "auto")) tl->choice = SL_TOOL_CHOICE_AUTO;
        else if (s && !strcmp(s, "required")) tl->choice = SL_TOOL_CHOICE_REQUIRED;
        else if (json_is_object(tc) && json_is_string(json_object_get(tc, "type")) &&
                 !strcmp(json_string_value(json_object_get(tc, "type")), "function") && json_is_string(name)) {
            tl->choice = SL_TOOL_CHOICE_NAMED;
            json_t *tool = tl->tools ? tool_named(tl->tools, json_string_value(name), &idx) : NULL;
            if (tl->tools && !tool) {
                sl_api_set_error(e, 400, "tool_choice", "'tool_choice' names the function '%s', which 'tools' does not declare",
                                 json_string_value(name));
                return false;
            }
            fn = json_object_get(tool, "function");
            snprintf(tl->name, sizeof tl->name, "%s", json_string_value(name));
        } else {
            sl_api_set_error(e, 400, "tool_choice",
                             "'tool_choice' must be \"none\", \"auto\", \"required\", {\"type\": \"function\", "
                             "\"function\": {\"name\": ...}} or {\"type\": \"allowed_tools\", ...}");
            return false;
        }
        if (tl->choice != SL_TOOL_CHOICE_NONE && !tl->tools) {
            sl_api_set_error(e, 400, "tool_choice", "'tool_choice' is only allowed when 'tools' declares functions");
            return false;
        }
    }
    tl->format = ctx->tool_format;
    sl_req_params *p = &r->params;
    if (tl->choice == SL_TOOL_CHOICE_AUTO) show_tokens(p, ctx->tool_show, ctx->n_tool_show);
    if (tl->choice != SL_TOOL_CHOICE_REQUIRED && tl->choice != SL_TOOL_CHOICE_NAMED) return true;
    if (p->schema || p->grammar) {
        sl_api_set_error(e, 400, "tool_choice",
                         "'tool_choice' forces a function call, which 'response_format' (or another guide of the "
                         "output) cannot be combined with");
        return false;
    }
    json_t *schema = NULL;
    if (tl->choice == SL_TOOL_CHOICE_REQUIRED && !(schema = sl_tool_required_schema(tl->tools, tl->parallel))) {
        sl_api_set_error(e, 400, "tools", "%s", sl_last_error());
        return false;
    }
    if (tl->choice == SL_TOOL_CHOICE_NAMED) schema = json_incref(json_object_get(fn, "parameters"));
    sl_status st = sl_json_schema_compile(schema, &p->schema);
    json_decref(schema);
    if (st) {
        char field[64] = "tools";
        if (tl->choice == SL_TOOL_CHOICE_NAMED) snprintf(field, sizeof field, "tools[%zu].function.parameters", idx);
        sl_api_set_error(e, st == SL_ERR_NOMEM ? 500 : 400, field, "'%s' cannot guide a forced call: %s", field,
                         sl_last_error());
        return false;
    }
    return true;
}

/* A router continuing a chat stream another engine started: shardlm_resume {"ids": the prompt ids and
 * the generated ones, "generated": N, "content_sent", "reasoning_sent", "args_sent": bytes the client
 * has of each part, "call_started": whether a forced call's first delta went out}. The prompt becomes
 * the ids (the conversation is rendered too: it decides the thinking and the tools); the generated
 * tokens are replayed, whole for the parts split here, after args_sent bytes for a forced call's
 * arguments (the raw text). */
static bool parse_chat_resume(const sl_api_ctx *ctx, json_t *o, sl_api_request *r, sl_api_error *e) {
    json_t *rs = json_object_get(o, "shardlm_resume");
    if (!rs || json_is_null(rs)) return true;
    json_t *ids = json_object_get(rs, "ids");
    if (!json_is_object(rs) || r->n > 1 || !json_is_array(ids) || json_array_size(ids) == 0 ||
        json_array_size(ids) >= (size_t)ctx->n_ctx) {
        sl_api_set_error(e, 400, "shardlm_resume",
                         "'shardlm_resume' on /v1/chat/completions must be an object {\"ids\": [prompt and generated "
                         "token ids, fewer than the context], \"generated\": N, \"content_sent\", \"reasoning_sent\", "
                         "\"args_sent\": BYTES, \"call_started\": BOOL} with n = 1");
        return false;
    }
    int32_t *p = NULL;
    if (!token_ids_of(ctx, ids, "shardlm_resume.ids", "shardlm_resume.ids", &p, e)) return false;
    sl_free(r->prompt);
    r->prompt = p;
    r->n_prompt = (int32_t)json_array_size(ids);
    static const char *const COUNTS[] = {"generated", "content_sent", "reasoning_sent", "args_sent"};
    long long x[4] = {0, 0, 0, 0};
    for (int k = 0; k < 4; k++) {
        if (!sl_api_get_int(rs, COUNTS[k], 0, k == 0 ? r->n_prompt - 1 : 1LL << 40, &x[k], e)) {
            snprintf(e->param, sizeof e->param, "shardlm_resume.%s", COUNTS[k]);
            return false;
        }
    }
    if (!sl_api_get_bool(rs, "call_started", &r->resume_call_started, e)) {
        snprintf(e->param, sizeof e->param, "shardlm_resume.call_started");
        return false;
    }
    r->resumed = true;
    r->params.resume_generated = (int32_t)x[0];
    r->resume_content = x[1];
    r->resume_reasoning = x[2];
    r->resume_args = x[3];
    /* a forced call's arguments and an answer not split here are the raw text: the replay skips what was
     * sent; an answer split into parts is replayed whole and http.c skips each part's bytes */
    r->params.resume_text_sent = r->tools.choice == SL_TOOL_CHOICE_NAMED                  ? x[3]
                                 : r->think || r->tools.choice != SL_TOOL_CHOICE_NONE ? 0
                                                                                       : x[1];
    return true;
}

bool sl_api_probe_path(const char *path) {
    return !strcmp(path, "/health") || !strcmp(path, "/v1/health") || !strcmp(path, "/ready") || !strcmp(path, "/metrics");
}

const char *sl_api_invocation_path(const char *body, size_t n, bool rank) {
    json_t *o = body && n ? json_loadb(body, n, 0, NULL) : NULL;
    const char *to = NULL;
    if (json_object_get(o, "messages")) to = "/v1/chat/completions";
    else if (json_object_get(o, "prompt")) to = "/v1/completions";
    else if (json_object_get(o, "input")) to = rank ? "/classify" : "/v1/embeddings";
    else if (json_object_get(o, "query") && json_object_get(o, "documents")) to = "/rerank";
    else if (json_object_get(o, "text_1") || json_object_get(o, "queries") || json_object_get(o, "data_1")) to = "/score";
    json_decref(o);
    return to;
}

/* The content vLLM's chat echo repeats (see sl_api_chat_echo) and its length in *n, or NULL. */
static const json_t *chat_echo_content(const json_t *body, size_t *n) {
    const json_t *m = json_object_get(body, "messages");
    const json_t *last = json_array_get(m, json_array_size(m) ? json_array_size(m) - 1 : 0);
    const json_t *gp = json_object_get(body, "add_generation_prompt"), *role = json_object_get(last, "role");
    if (!json_is_true(json_object_get(body, "echo")) || !json_is_string(role)) return NULL;
    if (!json_is_false(gp) && strcmp(json_string_value(role), "assistant") != 0) return NULL;
    const json_t *c = json_object_get(last, "content"), *part;
    *n = json_string_length(c);
    size_t i, parts = 0;
    json_array_foreach(c, i, part) { /* (text parts, joined by newlines) */
        const json_t *t = json_object_get(part, "text");
        if (json_is_string(t)) *n += json_string_length(t) + (parts++ ? 1 : 0);
    }
    return *n ? c : NULL;
}

bool sl_api_chat_echoes(const json_t *body) {
    size_t n;
    return chat_echo_content(body, &n) != NULL;
}

bool sl_api_chat_echo(const json_t *body, char **out) {
    size_t n = 0, i, k = 0;
    const json_t *c = chat_echo_content(body, &n), *part;
    *out = NULL;
    if (!c) return true;
    if (!(*out = sl_malloc(n + 1))) return false;
    if (json_is_string(c)) memcpy(*out, json_string_value(c), n);
    json_array_foreach(c, i, part) {
        const json_t *t = json_object_get(part, "text");
        if (!json_is_string(t)) continue;
        if (k) (*out)[k++] = '\n';
        memcpy(*out + k, json_string_value(t), json_string_length(t));
        k += json_string_length(t);
    }
    (*out)[n] = '\0';
    return true;
}

bool sl_api_hf_overrides(sl_api_ctx *ctx, const char *text, char *err, size_t cap) {
    json_error_t je;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    bool ok = json_is_object(o);
    if (!ok) snprintf(err, cap, "--hf-overrides is not a JSON object: %s", o ? "another JSON value" : je.text);
    const char *k;
    json_t *v;
    json_object_foreach(ok ? o : NULL, k, v) {
        size_t i;
        json_t *d;
        if (!strcmp(k, "is_matryoshka") && json_is_boolean(v)) {
            ctx->matryoshka |= json_is_true(v);
        } else if (!strcmp(k, "matryoshka_dimensions") && json_is_array(v) && json_array_size(v) > 0 &&
                   json_array_size(v) <= SL_API_MAX_MATRYOSHKA) {
            json_array_foreach(v, i, d) {
                if (!json_is_integer(d) || json_integer_value(d) < 1 || json_integer_value(d) > ctx->model->hp.n_embd) {
                    snprintf(err, cap, "--hf-overrides: matryoshka_dimensions[%zu] is not a size from 1 to %d (the model's)",
                             i, ctx->model->hp.n_embd);
                    ok = false;
                    break;
                }
                ctx->matryoshka_dims[i] = (int32_t)json_integer_value(d);
            }
            ctx->n_matryoshka_dims = (int)json_array_size(v);
            ctx->matryoshka = true;
        } else if (!strcmp(k, "is_matryoshka") || !strcmp(k, "matryoshka_dimensions")) {
            snprintf(err, cap, "--hf-overrides: %s must be %s", k,
                     k[0] == 'i' ? "true or false" : "an array of 1 to 32 sizes");
            ok = false;
        } else {
            snprintf(err, cap, "--hf-overrides: '%s' is not a setting shardlm takes (it takes is_matryoshka and "
                     "matryoshka_dimensions; the rest comes from the GGUF file)", k);
            ok = false;
        }
        if (!ok) break;
    }
    if (ok && json_is_false(json_object_get(o, "is_matryoshka")) && json_object_get(o, "matryoshka_dimensions")) {
        snprintf(err, cap, "--hf-overrides: is_matryoshka is false but matryoshka_dimensions are given");
        ok = false;
    }
    json_decref(o);
    return ok;
}

int32_t sl_api_room(const sl_api_ctx *ctx, int32_t n_prompt) {
    const int32_t left = ctx->n_ctx - n_prompt;
    return ctx->default_max_tokens > 0 && ctx->default_max_tokens < left ? ctx->default_max_tokens : left;
}

bool sl_api_defaults(sl_api_ctx *ctx, const char *gen_config, const sl_api_flag_defaults *f, char *err, size_t cap) {
    json_t *d = json_object();
    bool ok = d != NULL;
    long long max_tokens = f->n_predict;
    if (gen_config) { /* vLLM's generation config keys (the ones its default sampling parameters take) */
        json_error_t je;
        json_t *g = json_loads(gen_config, JSON_REJECT_DUPLICATES, &je);
        ok = json_is_object(g);
        if (!ok) snprintf(err, cap, "--override-generation-config is not a JSON object: %s", g ? "another JSON value" : je.text);
        const char *k;
        json_t *v;
        json_object_foreach(ok ? g : NULL, k, v) {
            static const char *const keys[] = {"repetition_penalty", "temperature", "top_k", "top_p", "min_p", "max_new_tokens"};
            bool known = false;
            for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) known |= !strcmp(k, keys[i]);
            const bool whole = !strcmp(k, "top_k") || !strcmp(k, "max_new_tokens");
            if (!known || !(whole ? json_is_integer(v) : json_is_number(v))) {
                snprintf(err, cap, known ? "--override-generation-config: %s must be %s" : "--override-generation-config: "
                         "'%s' is not a setting it takes (repetition_penalty, temperature, top_k, top_p, min_p, max_new_tokens)",
                         k, whole ? "an integer" : "a number");
                ok = false;
                break;
            }
            if (!strcmp(k, "max_new_tokens")) max_tokens = max_tokens >= 0 ? max_tokens : json_integer_value(v);
            else json_object_set(d, k, v);
        }
        json_decref(g);
    }
    const struct {
        const char *key;
        double v;
    } given[] = {{"temperature", f->temperature},       {"top_p", f->top_p},
                 {"min_p", f->min_p},                   {"repetition_penalty", f->repeat_penalty},
                 {"presence_penalty", f->presence_penalty}, {"frequency_penalty", f->frequency_penalty}};
    for (size_t i = 0; ok && i < sizeof given / sizeof given[0]; i++)
        if (!isnan(given[i].v)) json_object_set_new(d, given[i].key, json_real(given[i].v)); /* (flags over the config) */
    if (ok && f->top_k >= 0) json_object_set_new(d, "top_k", json_integer(f->top_k));
    if (ok && f->seed >= 0) json_object_set_new(d, "seed", json_integer(f->seed));
    if (ok && max_tokens > INT32_MAX) {
        snprintf(err, cap, "the default max_tokens %lld is too large", max_tokens);
        ok = false;
    }
    if (ok) { /* (each is read as a request's field would be: a bad value is refused now, not in every request) */
        sl_api_request r;
        sl_api_error e;
        json_t *probe = json_deep_copy(d);
        json_object_set_new(probe, "prompt", json_pack("[i]", 1));
        json_object_set_new(probe, "max_tokens", json_integer(1));
        char *text = json_dumps(probe, JSON_COMPACT);
        json_decref(probe);
        const json_t *saved = ctx->defaults;
        ctx->defaults = NULL;
        ok = text && sl_api_parse(ctx, SL_API_COMPLETIONS, text, strlen(text), &r, &e);
        ctx->defaults = (json_t *)saved;
        if (ok) sl_api_request_free(&r);
        else snprintf(err, cap, "the default %s: %s", e.param, e.message);
        free(text);
    }
    if (!ok) {
        json_decref(d);
        return false;
    }
    json_decref(ctx->defaults);
    ctx->defaults = json_object_size(d) ? d : NULL;
    if (!ctx->defaults) json_decref(d);
    ctx->default_max_tokens = max_tokens > 0 ? (int32_t)max_tokens : 0;
    return true;
}

bool sl_api_template_kwargs(sl_api_ctx *ctx, const char *text, char *err, size_t cap) {
    json_error_t je;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(o)) {
        snprintf(err, cap, "the default chat_template_kwargs is not a JSON object: %s", o ? "another JSON value" : je.text);
        json_decref(o);
        return false;
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) if (sl_chat_reserved_var(k)) {
        snprintf(err, cap, "the default chat_template_kwargs: '%s' is a variable the server sets itself", k);
        json_decref(o);
        return false;
    }
    json_decref(ctx->template_kwargs);
    ctx->template_kwargs = o;
    return true;
}

void sl_api_apply_defaults(const sl_api_ctx *ctx, json_t *o) {
    static const char *const same[][3] = {{"repetition_penalty", "repeat_penalty", NULL}, {"seed", NULL, NULL}};
    const char *k;
    json_t *v;
    json_object_foreach(ctx->defaults, k, v) {
        bool given = present(o, k);
        for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
            if (!strcmp(same[i][0], k))
                for (int j = 1; j < 3 && same[i][j]; j++) given |= present(o, same[i][j]);
        if (!given) json_object_set(o, k, v);
    }
}

bool sl_api_truncate_k(json_t *o, int32_t max, long long *k, sl_api_error *e) {
    *k = 0;
    if (!present(o, "truncate_prompt_tokens")) return true;
    if (!sl_api_get_int(o, "truncate_prompt_tokens", -1, max, k, e)) return false;
    if (*k == 0) {
        sl_api_set_error(e, 400, "truncate_prompt_tokens", "'truncate_prompt_tokens' must be -1 or at least 1");
        return false;
    }
    if (*k < 0) *k = max;
    return true;
}

/* A prompt cut to its last k tokens (k > 0); a prompt string so cut is dropped where drop_text. */
static void truncate_one(sl_api_prompt *p, long long k, bool drop_text) {
    if (k <= 0 || p->n <= k) return;
    memmove(p->ids, p->ids + (p->n - k), sizeof(int32_t) * (size_t)k);
    p->n = (int32_t)k;
    if (drop_text) {
        sl_free(p->text);
        p->text = NULL;
    }
}

/* truncate_prompt_tokens on every prompt, with one position left for the output. A prompt so cut echoes as the
 * text of the tokens kept. */
static bool truncate_prompts(const sl_api_ctx *ctx, json_t *o, sl_api_request *r, sl_api_error *e) {
    long long k;
    if (!sl_api_truncate_k(o, ctx->n_ctx - 1, &k, e)) return false;
    for (int32_t i = 0; i <= r->n_more && k > 0; i++) {
        sl_api_prompt p = sl_api_prompt_at(r, i);
        truncate_one(&p, k, r->kind == SL_API_COMPLETIONS);
        if (i) r->more[i - 1] = p;
        else {
            r->n_prompt = p.n;
            r->prompt_text = p.text;
        }
    }
    return true;
}

bool sl_api_next_name(const char **list, const char **name, size_t *len) {
    const char *p = *list;
    if (!p || !*p) return false;
    const char *end = strchr(p, ',');
    *name = p;
    *len = end ? (size_t)(end - p) : strlen(p);
    *list = end ? end + 1 : NULL;
    return true;
}

bool sl_api_name_in(const char *list, const char *name) {
    const char *one;
    size_t len;
    while (sl_api_next_name(&list, &one, &len))
        if (len == strlen(name) && !memcmp(one, name, len)) return true;
    return false;
}

/* The body's model, when given, is the one served (else 404). */
bool sl_api_check_model(const sl_api_ctx *ctx, json_t *o, sl_api_error *e) {
    json_t *model = json_object_get(o, "model");
    if (!model || json_is_null(model)) return true;
    if (!json_is_string(model)) {
        sl_api_set_error(e, 400, "model", "'model' must be a string");
        return false;
    }
    if (!sl_api_name_in(ctx->model_names ? ctx->model_names : ctx->model_id, json_string_value(model))) {
        sl_api_set_error(e, 404, "model", "The model '%s' does not exist; this server serves '%s'",
                         json_string_value(model), ctx->model_names ? ctx->model_names : ctx->model_id);
        return false;
    }
    return true;
}

/* A request body: a JSON object (keys once each), else a 400 saying what is wrong with it. */
json_t *sl_api_load_body(const char *body, size_t len, sl_api_error *e) {
    json_error_t je;
    json_t *o = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    if (!o) {
        sl_api_set_error(e, 400, NULL, "the body is not valid JSON: %s (line %d, column %d)", je.text, je.line, je.column);
        return NULL;
    }
    if (!json_is_object(o)) {
        sl_api_set_error(e, 400, NULL, "the body must be a JSON object");
        json_decref(o);
        return NULL;
    }
    return o;
}

/* vLLM's cache_salt (prefix-cache isolation: SHA-256 of the string keys the first block), request_id (the
 * answer's id), priority (lower first, with --scheduling-policy priority; else 0 only, as vLLM has it) and
 * return_token_ids. */
static bool parse_vllm_request_fields(const sl_api_ctx *ctx, json_t *o, sl_api_request *r, sl_api_error *e) {
    const json_t *cs = json_object_get(o, "cache_salt");
    if (cs && !json_is_null(cs)) {
        if (!json_is_string(cs) || json_string_length(cs) == 0) {
            sl_api_set_error(e, 400, "cache_salt", "'cache_salt' must be a non-empty string");
            return false;
        }
        unsigned len = 0;
        EVP_Digest(json_string_value(cs), json_string_length(cs), r->params.cache_salt, &len, EVP_sha256(), NULL);
        r->params.has_cache_salt = true;
    }
    const json_t *rid = json_object_get(o, "request_id");
    if (rid && !json_is_null(rid)) {
        if (!json_is_string(rid) || json_string_length(rid) == 0 || json_string_length(rid) >= sizeof r->request_id ||
            strpbrk(json_string_value(rid), "\"\\\r\n")) {
            sl_api_set_error(e, 400, "request_id", "'request_id' must be a string of 1 to %zu bytes", sizeof r->request_id - 1);
            return false;
        }
        snprintf(r->request_id, sizeof r->request_id, "%s", json_string_value(rid));
    }
    long long prio = 0;
    if (!sl_api_get_int(o, "priority", INT32_MIN, INT32_MAX, &prio, e)) return false;
    if (prio != 0 && !ctx->priority_policy) {
        sl_api_set_error(e, 400, "priority", "'priority' is %lld: priority scheduling is not enabled (requests are served "
                         "first come, first served; --scheduling-policy priority enables it)", prio);
        return false;
    }
    r->params.priority = (int32_t)prio;
    return sl_api_get_bool(o, "return_token_ids", &r->return_token_ids, e);
}

bool sl_api_parse(const sl_api_ctx *ctx, sl_api_kind kind, const char *body, size_t len, sl_api_request *r,
                  sl_api_error *e) {
    memset(r, 0, sizeof *r);
    memset(e, 0, sizeof *e);
    r->kind = kind;
    json_t *o = sl_api_load_body(body, len, e);
    if (!o) return false;
    bool ok = false;
    if (!sl_api_check_model(ctx, o, e)) goto done;
    sl_api_apply_defaults(ctx, o);
    /* llama.cpp's /completion and /infill (here, or proxied by a router): its sampling defaults after the server's */
    if (json_is_true(json_object_get(o, "shardlm_llama_defaults"))) sl_llama_defaults(o);
    sl_req_params *p = &r->params;
    p->sampling = sl_sampler_default_params();
    p->sampling.temperature = 1.0f; /* OpenAI's defaults */
    p->think_budget = -1;
    if (!parse_vllm_request_fields(ctx, o, r, e)) goto done;
    p->sampling.top_k = 0;
    p->sampling.top_p = 1.0f;
    p->sampling.min_p = 0.0f;
    p->sampling.repeat_penalty = 1.0f;
    p->sampling.repeat_last_n = -1;
    p->logprobs = -1;
    double d;
    long long x;
    d = 1.0;
    if (!get_number(o, "temperature", 0, 2, &d, e)) goto done;
    p->sampling.temperature = (float)d;
    d = 1.0;
    if (!get_number(o, "top_p", 0, 1, &d, e)) goto done;
    if (d <= 0) {
        sl_api_set_error(e, 400, "top_p", "'top_p' must be greater than 0 and at most 1");
        goto done;
    }
    p->sampling.top_p = (float)d;
    x = 0;
    if (!sl_api_get_int(o, "top_k", -1, 1 << 30, &x, e)) goto done;
    p->sampling.top_k = (int32_t)(x < 0 ? 0 : x);
    d = 0;
    if (!get_number(o, "min_p", 0, 1, &d, e)) goto done;
    p->sampling.min_p = (float)d;
    d = 0;
    if (!get_number(o, "presence_penalty", -2, 2, &d, e)) goto done;
    p->sampling.presence_penalty = (float)d;
    d = 0;
    if (!get_number(o, "frequency_penalty", -2, 2, &d, e)) goto done;
    p->sampling.frequency_penalty = (float)d;
    d = 1;
    /* llama.cpp's name for it (over its last repeat_last_n tokens, 64 unless given, where vLLM's looks at all) */
    const char *rp = present(o, "repetition_penalty") || !present(o, "repeat_penalty") ? "repetition_penalty"
                                                                                       : "repeat_penalty";
    json_t *rp1 = json_object_get(o, "repetition_penalty"), *rp2 = json_object_get(o, "repeat_penalty");
    if (present(o, "repetition_penalty") && present(o, "repeat_penalty") &&
        !(json_is_number(rp1) && json_is_number(rp2) && json_number_value(rp1) == json_number_value(rp2))) {
        /* (clients that speak to both servers send both, alike: vLLM's then) */
        sl_api_set_error(e, 400, "repeat_penalty", "'repetition_penalty' and 'repeat_penalty' differ: give one");
        goto done;
    }
    if (!get_number(o, rp, 0.01, 10, &d, e)) goto done;
    p->sampling.repeat_penalty = (float)d;
    if (!strcmp(rp, "repeat_penalty")) p->sampling.repeat_last_n = 64;
    const char *rl = present(o, "repeat_last_n") ? "repeat_last_n" : "penalty_last_n";
    x = p->sampling.repeat_last_n;
    if (!sl_api_get_int(o, rl, -1, 1 << 30, &x, e)) goto done;
    p->sampling.repeat_last_n = (int32_t)x;
    if (present(o, "seed")) {
        x = 0;
        if (!sl_api_get_int(o, "seed", INT64_MIN + 1, INT64_MAX, &x, e)) goto done;
        p->sampling.seed = (uint64_t)x;
    } else {
        /* no seed: a fresh one per request */
        static _Atomic uint64_t counter;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        p->sampling.seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (atomic_fetch_add(&counter, 1) << 48);
    }
    x = 1;
    if (!sl_api_get_int(o, "n", 1, SL_API_MAX_PROMPTS, &x, e)) goto done;
    r->n = (int32_t)x;
    if (!sl_api_get_bool(o, "stream", &r->stream, e)) goto done;
    json_t *so = json_object_get(o, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) {
            sl_api_set_error(e, 400, "stream_options", "'stream_options' must be an object");
            goto done;
        }
        if (!sl_api_get_bool(so, "include_usage", &r->include_usage, e)) {
            snprintf(e->param, sizeof e->param, "stream_options.include_usage");
            goto done;
        }
        if (!sl_api_get_bool(so, "continuous_usage_stats", &r->continuous_usage, e)) { /* (vLLM's) */
            snprintf(e->param, sizeof e->param, "stream_options.continuous_usage_stats");
            goto done;
        }
    }
    json_t *user = json_object_get(o, "user");
    if (user && !json_is_null(user) && !json_is_string(user)) {
        sl_api_set_error(e, 400, "user", "'user' must be a string");
        goto done;
    }
    if (!sl_api_get_bool(o, "ignore_eos", &p->ignore_eos, e)) goto done;
    bool skip_special = true, spaces = true;
    if (!sl_api_get_bool(o, "include_stop_str_in_output", &p->include_stop_str, e) ||
        !sl_api_get_bool(o, "skip_special_tokens", &skip_special, e) ||
        !sl_api_get_bool(o, "spaces_between_special_tokens", &spaces, e) || /* (what a fast HF tokenizer ignores too) */
        !sl_api_get_bool(o, "return_tokens_as_token_ids", &r->tokens_as_ids, e))
        goto done;
    p->show_special = !skip_special;
    if (kind == SL_API_COMPLETIONS) {
        if (!sl_api_get_bool(o, "echo", &p->echo, e)) goto done;
        json_t *lp = json_object_get(o, "logprobs");
        if (lp && !json_is_null(lp)) {
            x = 0;
            if (json_is_boolean(lp)) x = json_is_true(lp) ? 0 : -1;
            else if (!sl_api_get_int(o, "logprobs", 0, SL_MAX_TOP_LOGPROBS, &x, e)) goto done;
            p->logprobs = (int32_t)x;
        }
        if (!sl_api_get_bool(o, "shardlm_llama_probs", &r->llama_probs, e)) goto done;
        if (present(o, "n_probs")) { /* llama.cpp's: that many alternatives of each output token (0: none) */
            x = 0;
            if (!sl_api_get_int(o, "n_probs", 0, SL_MAX_TOP_LOGPROBS, &x, e)) goto done;
            if (x > 0 && (x > p->logprobs || p->logprobs < 0)) p->logprobs = (int32_t)x;
        }
    } else {
        bool lp = false;
        if (!sl_api_get_bool(o, "logprobs", &lp, e)) goto done;
        x = 0;
        if (!sl_api_get_int(o, "top_logprobs", 0, SL_MAX_TOP_LOGPROBS, &x, e)) goto done;
        if (present(o, "top_logprobs") && !lp) {
            sl_api_set_error(e, 400, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
            goto done;
        }
        p->logprobs = lp ? (int32_t)x : -1;
    }
    x = -1;
    if (!sl_api_get_int(o, "prompt_logprobs", 0, SL_MAX_TOP_LOGPROBS, &x, e)) goto done;
    p->prompt_logprobs = (int32_t)x;
    if (x >= 0 && r->stream) {
        sl_api_set_error(e, 400, "prompt_logprobs", "'prompt_logprobs' are not available with 'stream': true");
        goto done;
    }
    if (!parse_stop(o, p, e) || !parse_stop_ids(ctx, o, p, e) || !parse_logit_bias(ctx, o, p, e) ||
        !parse_allowed_ids(ctx, o, p, e) || !parse_bad_words(ctx, o, p, e) ||
        !parse_llama_samplers(ctx, o, p, e) || !refuse_unsupported(o, e) || !parse_response_format(o, p, e) || !parse_guided(ctx, o, p, e) ||
        !parse_lazy(ctx, o, p, e) ||
        (kind == SL_API_CHAT && !parse_tools(ctx, o, r, e)))
        goto done;
    if (kind == SL_API_COMPLETIONS ? !parse_prompt(ctx, o, r, e) : !parse_messages(ctx, o, r, true, e)) goto done;
    if (kind == SL_API_CHAT && !parse_chat_resume(ctx, o, r, e)) goto done;
    if (kind == SL_API_CHAT) { /* vLLM's echo (not again in a resumed stream: its client has it) */
        bool echo = false;
        if (!sl_api_get_bool(o, "echo", &echo, e)) goto done;
        if (echo && !r->resumed && !sl_api_chat_echo(o, &r->chat_echo)) {
            sl_api_set_error(e, 500, NULL, "out of memory");
            goto done;
        }
    }
    if (!truncate_prompts(ctx, o, r, e)) goto done;
    if (!parse_beam(o, r, e) || !parse_prediction(ctx, o, r, e)) goto done; /* (beam: with every field read) */
    int32_t longest = 0; /* the longest prompt bounds max_tokens */
    for (int32_t i = 0; i <= r->n_more; i++) {
        const int32_t n = sl_api_prompt_at(r, i).n;
        char what[32] = "the prompt";
        if (r->n_more) snprintf(what, sizeof what, "prompt[%d]", i);
        if (n == 0) {
            sl_api_set_error(e, 400, kind == SL_API_COMPLETIONS ? "prompt" : "messages",
                             "%s is empty and this model adds no BOS token", what);
            goto done;
        }
        if (n >= ctx->n_ctx) {
            sl_api_set_error(e, 400, kind == SL_API_COMPLETIONS ? "prompt" : "messages",
                             "This model's maximum context length is %d tokens, but %s has %d tokens", ctx->n_ctx, what,
                             n);
            goto done;
        }
        if (n > longest) longest = n;
    }
    /* a router resuming a stream another engine started (see sl_req_params) */
    json_t *rs = json_object_get(o, "shardlm_resume");
    if (rs && !json_is_null(rs) && kind == SL_API_COMPLETIONS) { /* (chat: parse_chat_resume) */
        if (!json_is_object(rs) || r->n_more || r->n > 1) {
            sl_api_set_error(e, 400, "shardlm_resume",
                             "'shardlm_resume' must be an object {\"generated\": N, \"text_sent\": BYTES} on /v1/completions "
                             "with one prompt and n = 1");
            goto done;
        }
        long long g = 0, ts = 0;
        if (!sl_api_get_int(rs, "generated", 0, r->n_prompt - 1, &g, e)) {
            snprintf(e->param, sizeof e->param, "shardlm_resume.generated");
            goto done;
        }
        if (!sl_api_get_int(rs, "text_sent", 0, 1LL << 40, &ts, e)) {
            snprintf(e->param, sizeof e->param, "shardlm_resume.text_sent");
            goto done;
        }
        p->resume_generated = (int32_t)g;
        p->resume_text_sent = ts;
        p->echo = false; /* the client has the prompt from the engine that started the stream */
    }
    const char *mt = present(o, "max_completion_tokens") ? "max_completion_tokens"
                     : present(o, "max_tokens") || !present(o, "n_predict") ? "max_tokens"
                                                                             : "n_predict"; /* llama.cpp's */
    if (json_is_integer(json_object_get(o, mt)) && json_integer_value(json_object_get(o, mt)) == -1)
        json_object_del(o, mt); /* -1 (llama.cpp's, its web UI sends max_tokens -1 too): as far as the context goes */
    x = sl_api_room(ctx, longest);
    if (present(o, mt)) {
        r->max_tokens_given = true;
        /* 0 only when resuming a stream that used up its tokens, echoing the prompt (sl_req_params), or as
         * llama.cpp's n_predict: the prompt computed (and cached) alone — llama.vim warms the cache so */
        const bool zero_ok = p->resume_generated > 0 || p->echo || (kind == SL_API_COMPLETIONS && !strcmp(mt, "n_predict"));
        if (!sl_api_get_int(o, mt, zero_ok ? 0 : 1, 1LL << 31, &x, e)) goto done;
        p->prefill_only = x == 0 && !strcmp(mt, "n_predict") && p->resume_generated == 0;
        if (x > ctx->n_ctx - longest) {
            sl_api_set_error(e, 400, mt, "This model's maximum context length is %d tokens: %d in the %sprompt plus %lld "
                             "requested by '%s' exceed it", ctx->n_ctx, longest, r->n_more ? "longest " : "", x, mt);
            goto done;
        }
    }
    /* min_tokens counts a resumed stream's replayed tokens too (max_tokens is what is left of it) */
    const long long min_room = x;
    p->max_tokens = r->max_tokens_given ? (int32_t)x : sl_api_room(ctx, r->n_prompt);
    x = 0;
    if (!sl_api_get_int(o, "min_tokens", 0, INT32_MAX, &x, e)) goto done;
    if (x > min_room + p->resume_generated) {
        sl_api_set_error(e, 400, "min_tokens", "'min_tokens' is %lld; it must be between 0 and %s (%lld)", x,
                         r->max_tokens_given ? mt : "the tokens left in the context",
                         min_room + p->resume_generated);
        goto done;
    }
    p->min_tokens = (int32_t)x;
    d = 0; /* llama.cpp's t_max_predict_ms (code completion): a time limit checked at each line break */
    if (!get_number(o, "t_max_predict_ms", 0, 1e9, &d, e)) goto done;
    p->t_max_predict_ms = d;
    x = 0; /* and its n_indent (code completion): the least indentation a line of the output may have */
    if (!sl_api_get_int(o, "n_indent", 0, 1 << 20, &x, e)) goto done;
    p->n_indent = (int32_t)x;
    p->indent_cut = !r->stream;
    json_t *rf = json_object_get(o, "response_fields"); /* (llama.cpp's: the fields its answer keeps) */
    if (rf && !json_is_null(rf)) {
        size_t i;
        json_t *v;
        bool strings = json_is_array(rf);
        json_array_foreach(rf, i, v) strings &= json_is_string(v);
        if (!strings) {
            sl_api_set_error(e, 400, "response_fields", "'response_fields' must be an array of strings");
            goto done;
        }
        r->response_fields = json_incref(rf);
    }
    ok = true;
done:
    json_decref(o);
    if (!ok) sl_api_request_free(r);
    return ok;
}

/* ---- responses ---------------------------------------------------------------- */

/* Token id's text as a JSON string (its bytes in *bytes_out when asked); with as_id its name is
 * "token_id:ID" instead (vLLM's return_tokens_as_token_ids), and *text_len the text's length either way. */
static json_t *piece_json(const sl_tokenizer *tok, int32_t id, bool as_id, json_t **bytes_out, size_t *text_len) {
    char buf[512];
    int64_t n = sl_token_to_piece(tok, id, true, buf, sizeof buf);
    if (n < 0) n = 0;
    if (n > (int64_t)sizeof buf) n = sizeof buf;
    if (bytes_out) {
        *bytes_out = json_array();
        for (int64_t i = 0; i < n; i++) json_array_append_new(*bytes_out, json_integer((unsigned char)buf[i]));
    }
    /* a piece that is not valid UTF-8 on its own (byte tokens) is shown as its escaped bytes */
    json_t *s = json_stringn(buf, (size_t)n);
    if (!s) {
        char esc[2200];
        size_t k = (size_t)snprintf(esc, sizeof esc, "bytes:");
        for (int64_t i = 0; i < n && k + 5 < sizeof esc; i++)
            k += (size_t)snprintf(esc + k, sizeof esc - k, "\\x%02x", (unsigned char)buf[i]);
        s = json_stringn(esc, k);
    }
    if (text_len) *text_len = json_string_length(s);
    if (as_id) {
        json_decref(s);
        s = json_sprintf("token_id:%d", (int)id);
    }
    return s;
}

json_t *sl_api_logprobs_json(const sl_api_ctx *ctx, sl_api_kind kind, bool as_ids, const sl_tok_out *toks, int32_t t0,
                             int32_t t1, size_t text_offset) {
    const sl_tokenizer *tok = sl_model_tokenizer(ctx->model);
    if (kind == SL_API_CHAT) {
        json_t *content = json_array();
        for (int32_t i = t0; i < t1; i++) {
            json_t *bytes;
            json_t *e = json_object();
            json_object_set_new(e, "token", piece_json(tok, toks[i].id, as_ids, &bytes, NULL));
            json_object_set_new(e, "logprob", json_real(toks[i].logprob));
            json_object_set_new(e, "bytes", bytes);
            json_t *top = json_array();
            for (int32_t k = 0; k < toks[i].n_top; k++) {
                json_t *tb;
                json_t *te = json_object();
                json_object_set_new(te, "token", piece_json(tok, toks[i].top_ids[k], as_ids, &tb, NULL));
                json_object_set_new(te, "logprob", json_real(toks[i].top_lps[k]));
                json_object_set_new(te, "bytes", tb);
                json_array_append_new(top, te);
            }
            json_object_set_new(e, "top_logprobs", top);
            json_array_append_new(content, e);
        }
        return json_pack("{s:o}", "content", content);
    }
    json_t *tokens = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
    size_t off = text_offset;
    for (int32_t i = t0; i < t1; i++) {
        size_t len;
        json_t *p = piece_json(tok, toks[i].id, as_ids, NULL, &len);
        json_array_append_new(offs, json_integer((json_int_t)off));
        off += len;
        json_array_append_new(tokens, p);
        if (isnan(toks[i].logprob)) { /* an echoed prompt's first token: nothing before it to predict it */
            json_array_append_new(lps, json_null());
            json_array_append_new(tops, json_null());
            continue;
        }
        json_array_append_new(lps, json_real(toks[i].logprob));
        json_t *top = json_object();
        for (int32_t k = 0; k < toks[i].n_top; k++) {
            json_t *tp = piece_json(tok, toks[i].top_ids[k], as_ids, NULL, NULL);
            json_object_set_new(top, json_string_value(tp), json_real(toks[i].top_lps[k]));
            json_decref(tp);
        }
        json_array_append_new(tops, top);
    }
    return json_pack("{s:o,s:o,s:o,s:o}", "tokens", tokens, "token_logprobs", lps, "top_logprobs", tops, "text_offset",
                     offs);
}

/* One token of a prompt_logprobs position: d["ID"] = {"logprob", "rank", "decoded_token"}, unless there. */
static void plp_entry(json_t *d, const sl_tokenizer *tok, bool as_ids, int32_t id, float logprob, int32_t rank) {
    char key[16];
    snprintf(key, sizeof key, "%d", (int)id);
    if (json_object_get(d, key)) return;
    json_object_set_new(d, key, json_pack("{s:f,s:i,s:o}", "logprob", (double)logprob, "rank", (json_int_t)rank,
                                          "decoded_token", piece_json(tok, id, as_ids, NULL, NULL)));
}

json_t *sl_api_prompt_logprobs_json(const sl_api_ctx *ctx, bool as_ids, const sl_tok_out *plp, int32_t n_plp,
                                    int32_t k) {
    const sl_tokenizer *tok = sl_model_tokenizer(ctx->model);
    json_t *a = json_array();
    for (int32_t i = 0; i < n_plp; i++) {
        if (isnan(plp[i].logprob)) { /* the first token: nothing before it to predict it */
            json_array_append_new(a, json_null());
            continue;
        }
        json_t *d = json_object();
        plp_entry(d, tok, as_ids, plp[i].id, plp[i].logprob, plp[i].rank);
        for (int32_t j = 0; j < plp[i].n_top && j < k; j++) /* (the prompt's own token among them: kept once) */
            plp_entry(d, tok, as_ids, plp[i].top_ids[j], plp[i].top_lps[j], j + 1);
        json_array_append_new(a, d);
    }
    return a;
}

json_t *sl_api_echo_logprobs(const sl_api_ctx *ctx, bool as_ids, const sl_tok_out *plp, int32_t n_plp, size_t n_echo,
                             const sl_tok_out *toks, int32_t n_toks) {
    json_t *o = sl_api_logprobs_json(ctx, SL_API_COMPLETIONS, as_ids, plp, 0, n_plp, 0);
    /* each prompt token's offset: the length of the text of the tokens before it, less what that text has
     * before the echoed prompt's own (a SentencePiece dummy-prefix space) */
    size_t *cum = sl_alloc_array((size_t)n_plp + 1, sizeof(size_t));
    if (cum) {
        sl_detok d;
        sl_detok_init(&d, sl_model_tokenizer(ctx->model), false);
        char buf[4096];
        cum[0] = 0;
        for (int32_t i = 0; i < n_plp; i++) {
            const int64_t k = sl_detok_push(&d, plp[i].id, buf, sizeof buf);
            cum[i + 1] = cum[i] + (size_t)(k > 0 ? k : 0);
        }
        const size_t shift = cum[n_plp] > n_echo ? cum[n_plp] - n_echo : 0;
        json_t *offs = json_object_get(o, "text_offset");
        for (int32_t i = 0; i < n_plp; i++)
            json_array_set_new(offs, (size_t)i, json_integer((json_int_t)(cum[i] > shift ? cum[i] - shift : 0)));
        sl_free(cum);
    }
    if (n_toks > 0) {
        json_t *g = sl_api_logprobs_json(ctx, SL_API_COMPLETIONS, as_ids, toks, 0, n_toks, n_echo);
        const char *k;
        json_t *v;
        json_object_foreach(g, k, v) json_array_extend(json_object_get(o, k), v);
        json_decref(g);
    }
    return o;
}

json_t *sl_api_usage_json(int32_t prompt_tokens, int32_t completion_tokens, int32_t cached_tokens) {
    return json_pack("{s:i,s:i,s:i,s:{s:i}}", "prompt_tokens", prompt_tokens, "completion_tokens", completion_tokens,
                     "total_tokens", prompt_tokens + completion_tokens, "prompt_tokens_details", "cached_tokens",
                     cached_tokens);
}

void sl_api_usage_prediction(json_t *usage, int32_t accepted, int32_t rejected) {
    json_object_set_new(usage, "completion_tokens_details", json_pack("{s:i,s:i}", "accepted_prediction_tokens", accepted,
                                                                      "rejected_prediction_tokens", rejected));
}

char *sl_api_tokenize(const sl_api_ctx *ctx, const char *body, size_t len, sl_api_error *e) {
    memset(e, 0, sizeof *e);
    json_t *o = sl_api_load_body(body, len, e);
    if (!o) return NULL;
    char *out = NULL;
    const sl_tokenizer *tok = sl_model_tokenizer(ctx->model);
    bool strs = false, pieces = false;
    if (!sl_api_get_bool(o, "return_token_strs", &strs, e) || !sl_api_get_bool(o, "with_pieces", &pieces, e)) goto done;
    int32_t *ids = NULL;
    size_t n = 0;
    if (present(o, "messages")) { /* vLLM's chat form: the conversation as the chat template renders it */
        sl_api_request chat = {.kind = SL_API_CHAT};
        const bool ok = parse_messages(ctx, o, &chat, true, e);
        ids = chat.prompt;
        n = (size_t)chat.n_prompt;
        chat.prompt = NULL;
        sl_api_request_free(&chat);
        if (!ok) goto done;
    } else {
        json_t *text = json_object_get(o, "prompt");
        const char *field = "prompt";
        if (!text) {
            text = json_object_get(o, "content");
            field = "content";
        }
        bool add_special = true;
        if (!json_is_string(text)) {
            sl_api_set_error(e, 400, "prompt", "'prompt' (or 'content', or 'messages') must be a string");
            goto done;
        }
        if (!sl_api_get_bool(o, "add_special_tokens", &add_special, e) || !sl_api_get_bool(o, "add_special", &add_special, e)) goto done;
        if (sl_tokenize(tok, json_string_value(text), json_string_length(text), add_special && sl_tokenizer_add_bos(tok),
                        true, &ids, &n) != SL_OK) {
            sl_api_set_error(e, 400, field, "cannot tokenize '%s': %s", field, sl_last_error());
            goto done;
        }
    }
    json_t *arr = json_array(), *ts = strs ? json_array() : json_null();
    for (size_t i = 0; i < n; i++) {
        if (pieces) { /* llama.cpp's with_pieces: the text of each, or its bytes where it is not UTF-8 alone */
            char buf[512];
            int64_t k = sl_token_to_piece(tok, ids[i], true, buf, sizeof buf);
            k = k < 0 ? 0 : k > (int64_t)sizeof buf ? (int64_t)sizeof buf : k;
            json_t *pc = json_stringn(buf, (size_t)k);
            if (!pc) {
                pc = json_array();
                for (int64_t b = 0; b < k; b++) json_array_append_new(pc, json_integer((unsigned char)buf[b]));
            }
            json_array_append_new(arr, json_pack("{s:i,s:o}", "id", (int)ids[i], "piece", pc));
        } else {
            json_array_append_new(arr, json_integer(ids[i]));
        }
        if (strs) { /* vLLM's return_token_strs: the vocabulary's own strings */
            size_t tl = 0;
            const char *t = sl_tokenizer_token_text(tok, ids[i], &tl);
            json_t *js = t ? json_stringn(t, tl) : NULL;
            json_array_append_new(ts, js ? js : json_string(""));
        }
    }
    sl_free(ids);
    json_t *r = json_pack("{s:o,s:i,s:i,s:o}", "tokens", arr, "count", (json_int_t)n, "max_model_len", ctx->n_ctx,
                          "token_strs", ts);
    out = json_dumps(r, JSON_COMPACT);
    json_decref(r);
done:
    json_decref(o);
    return out;
}

char *sl_api_detok_text(const sl_api_ctx *ctx, const int32_t *ids, int32_t n) {
    tbuf b = {0};
    sl_detok d;
    sl_detok_init(&d, sl_model_tokenizer(ctx->model), false);
    char buf[4096];
    for (int32_t i = 0; i < n; i++) {
        int64_t k = sl_detok_push(&d, ids[i], buf, sizeof buf);
        if (k > 0) tb_add(&b, buf);
    }
    int64_t k = sl_detok_flush(&d, buf, sizeof buf);
    if (k > 0) tb_add(&b, buf);
    if (!b.p && !b.oom) tb_add(&b, "");
    if (b.oom) {
        sl_free(b.p);
        return NULL;
    }
    return b.p;
}

char *sl_api_detokenize(const sl_api_ctx *ctx, const char *body, size_t len, sl_api_error *e) {
    memset(e, 0, sizeof *e);
    json_t *o = sl_api_load_body(body, len, e);
    if (!o) return NULL;
    char *out = NULL;
    json_t *ids = json_object_get(o, "tokens");
    if (!json_is_array(ids)) {
        sl_api_set_error(e, 400, "tokens", "'tokens' must be an array of token ids");
        goto done;
    }
    int32_t *v32 = NULL;
    if (!token_ids_of(ctx, ids, "tokens", "tokens", &v32, e)) goto done;
    char *text = sl_api_detok_text(ctx, v32, (int32_t)json_array_size(ids));
    sl_free(v32);
    json_t *r = text ? json_pack("{s:s}", "prompt", text) : NULL;
    out = r ? json_dumps(r, JSON_COMPACT) : NULL;
    json_decref(r);
    sl_free(text);
    if (!out) sl_api_set_error(e, 500, NULL, "out of memory");
done:
    json_decref(o);
    return out;
}

/* ---- POST /v1/embeddings ------------------------------------------------------------ */

void sl_api_embed_request_free(sl_api_embed_request *r) {
    sl_api_prompts_free(r->inputs, r->n_inputs);
    memset(r, 0, sizeof *r);
}

bool sl_api_parse_embeddings(const sl_api_ctx *ctx, const char *body, size_t len, sl_api_embed_request *r,
                             sl_api_error *e) {
    memset(r, 0, sizeof *r);
    memset(e, 0, sizeof *e);
    json_t *o = sl_api_load_body(body, len, e);
    if (!o) return false;
    bool ok = false, add_special = true, normalize = true;
    long long x = 2, k = 0;
    if (!sl_api_check_model(ctx, o, e)) goto done;
    json_t *f = json_object_get(o, "encoding_format");
    if (f && !json_is_null(f)) {
        if (!json_is_string(f) || (strcmp(json_string_value(f), "float") && strcmp(json_string_value(f), "base64"))) {
            sl_api_set_error(e, 400, "encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
            goto done;
        }
        r->base64 = !strcmp(json_string_value(f), "base64");
    }
    if (present(o, "dimensions")) { /* (as vLLM: only a model trained to be cut, Matryoshka style, is cut) */
        long long dim = 0;
        const int32_t n_embd = ctx->model->hp.n_embd;
        if (!sl_api_get_int(o, "dimensions", 1, INT32_MAX, &dim, e)) goto done;
        bool listed = ctx->n_matryoshka_dims == 0;
        for (int i = 0; i < ctx->n_matryoshka_dims; i++) listed |= ctx->matryoshka_dims[i] == dim;
        if (dim != n_embd && (!ctx->matryoshka || dim > n_embd || !listed)) {
            char sizes[SL_API_MAX_MATRYOSHKA * 12] = "";
            for (int i = 0; i < ctx->n_matryoshka_dims; i++)
                snprintf(sizes + strlen(sizes), sizeof sizes - strlen(sizes), "%s%d", i ? ", " : "", ctx->matryoshka_dims[i]);
            if (!ctx->matryoshka)
                sl_api_set_error(e, 400, "dimensions", "'dimensions' is %lld; this model's embeddings have %d dimensions and "
                                 "are not Matryoshka embeddings, so they cannot be shortened (a model trained so: "
                                 "shardlm serve --hf-overrides '{\"is_matryoshka\": true}')", dim, n_embd);
            else if (dim > n_embd)
                sl_api_set_error(e, 400, "dimensions", "'dimensions' is %lld; this model's embeddings have %d", dim, n_embd);
            else
                sl_api_set_error(e, 400, "dimensions", "'dimensions' is %lld; this model's embeddings can be shortened to "
                                 "%s (its matryoshka_dimensions) or %d", dim, sizes, n_embd);
            goto done;
        }
        r->dimensions = dim < n_embd ? (int32_t)dim : 0;
    }
    json_t *u = json_object_get(o, "user");
    if (u && !json_is_null(u) && !json_is_string(u)) {
        sl_api_set_error(e, 400, "user", "'user' must be a string");
        goto done;
    }
    /* vLLM's add_special_tokens and normalize, llama.cpp's embd_normalize (-1 none, 0 max-abs to int16's range,
     * 1 taxicab, 2 Euclidean, p > 2 the p-norm) */
    if (!sl_api_get_bool(o, "add_special_tokens", &add_special, e) || !sl_api_get_bool(o, "normalize", &normalize, e)) goto done;
    x = normalize ? 2 : -1;
    if (present(o, "normalize") && present(o, "embd_normalize")) {
        sl_api_set_error(e, 400, "embd_normalize", "'normalize' and 'embd_normalize' both given: give one");
        goto done;
    }
    if (!sl_api_get_int(o, "embd_normalize", -1, 1000, &x, e)) goto done;
    r->normalize = (int32_t)x;
    if (!sl_api_truncate_k(o, ctx->n_ctx, &k, e)) goto done;
    if (present(o, "messages")) { /* vLLM's chat form: the conversation rendered by the chat template, one input */
        if (present(o, "input")) {
            sl_api_set_error(e, 400, "messages", "give 'input' or 'messages', not both");
            goto done;
        }
        sl_api_request chat = {.kind = SL_API_CHAT};
        r->inputs = sl_calloc(1, sizeof *r->inputs);
        if (!r->inputs) {
            sl_api_set_error(e, 500, NULL, "out of memory");
            goto done;
        }
        const bool rendered = parse_messages(ctx, o, &chat, false, e);
        r->inputs[0] = (sl_api_prompt){.ids = chat.prompt, .n = chat.n_prompt, .text = chat.prompt_text};
        r->n_inputs = 1;
        chat.prompt = NULL;
        chat.prompt_text = NULL;
        sl_api_request_free(&chat);
        if (!rendered) goto done;
    } else if (!sl_api_parse_prompts(ctx, json_object_get(o, present(o, "input") || !present(o, "content") ? "input" : "content"),
                                     present(o, "input") || !present(o, "content") ? "input" : "content", SL_API_MAX_INPUTS,
                                     add_special, &r->inputs, &r->n_inputs, e)) { /* (llama.cpp calls it content) */
        goto done;
    }
    for (int32_t i = 0; i < r->n_inputs; i++) {
        truncate_one(&r->inputs[i], k, false);
        const char *param = present(o, "messages") ? "messages" : present(o, "input") || !present(o, "content") ? "input" : "content";
        char field[32];
        if (r->n_inputs > 1) snprintf(field, sizeof field, "%s[%d]", param, i);
        else snprintf(field, sizeof field, "%s", param);
        if (r->inputs[i].n == 0) {
            sl_api_set_error(e, 400, param, "'%s' is empty (no tokens)", field);
            goto done;
        }
        if (r->inputs[i].n > ctx->n_ctx) {
            sl_api_set_error(e, 400, param, "'%s' has %d tokens; this model's context is %d tokens", field,
                             r->inputs[i].n, ctx->n_ctx);
            goto done;
        }
    }
    ok = true;
done:
    json_decref(o);
    if (!ok) sl_api_embed_request_free(r);
    return ok;
}

json_t *sl_api_floats_json(const float *v, int32_t n) {
    json_t *a = json_array();
    for (int32_t j = 0; j < n; j++) json_array_append_new(a, json_real(v[j]));
    return a;
}

json_t *sl_api_embeddings_json(const sl_api_ctx *ctx, const sl_api_embed_request *r, const float *const *vecs,
                               int32_t dim, int64_t prompt_tokens) {
    json_t *data = json_array();
    unsigned char *raw = r->base64 ? sl_alloc_array((size_t)dim, 4) : NULL;
    char *b64 = r->base64 ? sl_alloc_array(((size_t)dim * 4 + 2) / 3 * 4 + 1, 1) : NULL;
    if (!data || (r->base64 && (!raw || !b64))) {
        json_decref(data);
        sl_free(raw);
        sl_free(b64);
        return NULL;
    }
    for (int32_t i = 0; i < r->n_inputs; i++) {
        json_t *v;
        if (r->base64) { /* float32, little-endian, as OpenAI's clients decode it */
            for (int32_t j = 0; j < dim; j++) {
                uint32_t u;
                memcpy(&u, &vecs[i][j], 4);
                for (int b = 0; b < 4; b++) raw[4 * j + b] = (unsigned char)(u >> (8 * b));
            }
            EVP_EncodeBlock((unsigned char *)b64, raw, dim * 4);
            v = json_string(b64);
        } else {
            v = sl_api_floats_json(vecs[i], dim);
        }
        json_array_append_new(data, json_pack("{s:s,s:i,s:o}", "object", "embedding", "index", (int)i, "embedding", v));
    }
    sl_free(raw);
    sl_free(b64);
    return json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model", ctx->model_id, "usage",
                     "prompt_tokens", (json_int_t)prompt_tokens, "total_tokens", (json_int_t)prompt_tokens);
}

/* ---- llama.cpp's GET /props and POST /apply-template ---------------------------------- */

json_t *sl_api_props_json(const sl_api_ctx *ctx, int32_t total_slots) {
    const sl_tokenizer *tok = sl_model_tokenizer(ctx->model);
    const sl_sampler_params d = sl_sampler_default_params();
    json_t *bos = json_null(), *eos = json_null();
    size_t n;
    const char *t;
    if (sl_tokenizer_bos(tok) >= 0 && (t = sl_tokenizer_token_text(tok, sl_tokenizer_bos(tok), &n))) bos = json_stringn(t, n);
    if (sl_tokenizer_eos(tok) >= 0 && (t = sl_tokenizer_token_text(tok, sl_tokenizer_eos(tok), &n))) eos = json_stringn(t, n);
    /* what a /completion or /infill request gets for a field it does not send (llama.cpp's defaults;
     * the /v1 endpoints keep OpenAI's) */
    json_t *params = json_pack("{s:i,s:f,s:i,s:f,s:f,s:f,s:f,s:i,s:f,s:f,s:f,s:f,s:i,s:f,s:f,s:f,s:f,s:i,s:i,s:b,s:b}",
                               "n_predict", -1, "temperature", 0.8, "top_k", 40, "top_p", 0.95, "min_p", 0.05,
                               "typical_p", (double)d.typical_p, "top_n_sigma", (double)d.top_n_sigma, "repeat_last_n", -1,
                               "repeat_penalty", 1.0, "presence_penalty", 0.0, "frequency_penalty", 0.0,
                               "dry_multiplier", (double)d.dry_multiplier, "dry_allowed_length", (int)d.dry_allowed_length,
                               "xtc_probability", (double)d.xtc_probability, "xtc_threshold", (double)d.xtc_threshold,
                               "mirostat_tau", (double)d.mirostat_tau, "mirostat_eta", (double)d.mirostat_eta,
                               "mirostat", 0, "n_probs", 0, "ignore_eos", 0, "stream", 0);
    return json_pack("{s:{s:i,s:o},s:i,s:s,s:s,s:{s:b,s:b},s:s,s:o,s:o,s:s,s:b}", "default_generation_settings", "n_ctx",
                     ctx->n_ctx, "params", params, "total_slots", total_slots, "model_alias", ctx->model_id, "model_path",
                     ctx->model_path ? ctx->model_path : ctx->model_id, "modalities", "vision", 0, "audio", 0,
                     "chat_template", ctx->chat_template ? ctx->chat_template : sl_api_fallback_template(ctx->model),
                     "bos_token", bos, "eos_token", eos, "build_info", "shardlm " SHARDLM_VERSION, "is_sleeping", 0);
}

char *sl_api_apply_template(const sl_api_ctx *ctx, const char *body, size_t len, sl_api_error *e) {
    memset(e, 0, sizeof *e);
    json_t *o = sl_api_load_body(body, len, e);
    if (!o) return NULL;
    sl_api_request chat = {.kind = SL_API_CHAT};
    char *out = NULL;
    if (parse_messages(ctx, o, &chat, true, e)) {
        json_t *r = json_pack("{s:s}", "prompt", chat.prompt_text);
        out = r ? json_dumps(r, JSON_COMPACT) : NULL;
        json_decref(r);
    }
    sl_api_request_free(&chat);
    json_decref(o);
    return out;
}

/* ---- llama.cpp's POST /infill ------------------------------------------------------------ */

typedef struct ids_buf {
    int32_t *p;
    size_t n, cap;
    bool oom;
} ids_buf;

static void ids_add(ids_buf *b, const int32_t *ids, size_t n) {
    if (n == 0) return;
    if (b->oom || !sl_grow((void **)&b->p, &b->cap, b->n + n + 1, sizeof(int32_t))) {
        b->oom = true;
        return;
    }
    memcpy(b->p + b->n, ids, sizeof(int32_t) * n);
    b->n += n;
}

/* text (len bytes) tokenized as plain text, no BOS, appended to b. */
static bool ids_text(const sl_tokenizer *tok, ids_buf *b, const char *text, size_t len) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (sl_tokenize(tok, text, len, false, false, &ids, &n) != SL_OK) return false;
    ids_add(b, ids, n);
    sl_free(ids);
    return true;
}

/* The infill body of o (not taken): see sl_api_infill_body; llama: llama.cpp's sampling defaults put in. */
static char *infill_of(const sl_api_ctx *ctx, json_t *o, bool llama, sl_api_error *e);

char *sl_api_infill_body(const sl_api_ctx *ctx, const char *body, size_t len, sl_api_error *e) {
    memset(e, 0, sizeof *e);
    json_t *o = sl_api_load_body(body, len, e);
    if (!o) return NULL;
    char *out = infill_of(ctx, o, true, e);
    json_decref(o);
    return out;
}

int sl_api_completions_fim(const sl_api_ctx *ctx, const char *body, size_t len, char **out, sl_api_error *e) {
    memset(e, 0, sizeof *e);
    *out = NULL;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(o)) { /* (the completions parser says what is wrong) */
        json_decref(o);
        return 0;
    }
    json_t *sfx = json_object_get(o, "suffix");
    const bool infill = json_object_get(o, "input_prefix") != NULL,
               fim = sfx && !json_is_null(sfx) && !(json_is_string(sfx) && json_string_length(sfx) == 0);
    int r = 0;
    if (infill) { /* llama.cpp's /infill fields (a router sends /infill so): as /infill builds it */
        *out = infill_of(ctx, o, false, e);
        r = *out ? 1 : -1;
    } else if (fim) { /* OpenAI's suffix: the prompt is the text before the insertion, the suffix the text after */
        json_t *pr = json_object_get(o, "prompt");
        if (!json_is_string(sfx)) {
            sl_api_set_error(e, 400, "suffix", "'suffix' must be a string");
        } else if (!json_is_string(pr)) {
            sl_api_set_error(e, 400, "prompt", "with 'suffix', 'prompt' must be one string (the text before the insertion)");
        } else if (json_is_true(json_object_get(o, "echo"))) {
            sl_api_set_error(e, 400, "echo", "'echo' cannot be combined with 'suffix'");
        } else {
            json_t *b = json_copy(o);
            json_object_set(b, "input_prefix", pr);
            json_object_set(b, "input_suffix", sfx);
            json_object_del(b, "prompt");
            json_object_del(b, "suffix");
            *out = infill_of(ctx, b, false, e);
            json_decref(b);
            if (!*out && e->status == 501) { /* no FIM tokens: the field is what cannot be served */
                e->status = 400;
                snprintf(e->param, sizeof e->param, "suffix");
            }
        }
        r = *out ? 1 : -1;
    }
    json_decref(o);
    return r;
}

static char *infill_of(const sl_api_ctx *ctx, json_t *o, bool llama, sl_api_error *e) {
    const sl_tokenizer *tok = sl_model_tokenizer(ctx->model);
    const int32_t pre = sl_tokenizer_fim(tok, SL_FIM_PRE), suf = sl_tokenizer_fim(tok, SL_FIM_SUF),
                  mid = sl_tokenizer_fim(tok, SL_FIM_MID), rep = sl_tokenizer_fim(tok, SL_FIM_REP),
                  sep = sl_tokenizer_fim(tok, SL_FIM_SEP);
    if (pre < 0 || suf < 0 || mid < 0) { /* (llama.cpp's words, and its 501) */
        sl_api_set_error(e, 501, NULL, "Infill is not supported by this model: %s%s%s", pre < 0 ? "prefix token is missing. " : "",
                         suf < 0 ? "suffix token is missing. " : "", mid < 0 ? "middle token is missing. " : "");
        return NULL;
    }
    char *out = NULL;
    ids_buf extra = {0}, prefix = {0}, suffix = {0}, prompt = {0}, all = {0};
    json_t *ip = json_object_get(o, "input_prefix"), *is = json_object_get(o, "input_suffix"),
           *ix = json_object_get(o, "input_extra"), *pr = json_object_get(o, "prompt");
    if (!json_is_string(ip) || !json_is_string(is)) {
        const char *f = !json_is_string(ip) ? "input_prefix" : "input_suffix";
        sl_api_set_error(e, 400, f, "'%s' is required, a string", f);
        goto done;
    }
    if (pr && !json_is_null(pr) && !json_is_string(pr)) {
        sl_api_set_error(e, 400, "prompt", "'prompt' must be a string");
        goto done;
    }
    if (ix && !json_is_null(ix) && !json_is_array(ix)) {
        sl_api_set_error(e, 400, "input_extra", "'input_extra' must be an array of {\"filename\": string, \"text\": string}");
        goto done;
    }
    long long n_predict = -1;
    if (!sl_api_get_int(o, present(o, "n_predict") ? "n_predict" : "max_tokens", -1, INT32_MAX, &n_predict, e)) goto done;
    /* the repository-level pattern (arXiv 2409.12186), as llama.cpp writes it:
     * [FIM_REP]myproject\n [FIM_SEP]filename\n chunk ... [FIM_SEP]filename\n [FIM_PRE]prefix prompt [FIM_SUF]suffix [FIM_MID] */
    if (rep >= 0) {
        ids_add(&extra, &rep, 1);
        ids_text(tok, &extra, "myproject\n", 10);
    }
    size_t i;
    json_t *chunk;
    json_array_foreach(ix, i, chunk) {
        json_t *text = json_object_get(chunk, "text"), *fn = json_object_get(chunk, "filename");
        if (!json_is_object(chunk) || !json_is_string(text) || (fn && !json_is_string(fn))) {
            sl_api_set_error(e, 400, "input_extra", "'input_extra[%zu]' must be {\"filename\": string, \"text\": string}", i);
            goto done;
        }
        if (sep >= 0) {
            const char *name = fn ? json_string_value(fn) : "tmp";
            char *line = sl_malloc(strlen(name) + 2);
            if (line) {
                sprintf(line, "%s\n", name);
                ids_add(&extra, &sep, 1);
                ids_text(tok, &extra, line, strlen(line));
            }
            extra.oom |= !line;
            sl_free(line);
        } else { /* a separator between chunks, as llama.cpp writes it */
            ids_text(tok, &extra, "\n\n--- snippet ---\n\n", 19);
        }
        if (!ids_text(tok, &extra, json_string_value(text), json_string_length(text))) {
            sl_api_set_error(e, 400, "input_extra", "cannot tokenize 'input_extra[%zu].text': %s", i, sl_last_error());
            goto done;
        }
    }
    if (sep >= 0) {
        ids_add(&extra, &sep, 1);
        ids_text(tok, &extra, "filename\n", 9);
    }
    int32_t *pids = NULL;
    size_t np = 0;
    if (!ids_text(tok, &prefix, json_string_value(ip), json_string_length(ip)) ||
        !ids_text(tok, &suffix, json_string_value(is), json_string_length(is)) ||
        (pr && json_is_string(pr) &&
         sl_tokenize(tok, json_string_value(pr), json_string_length(pr), false, true, &pids, &np) != SL_OK)) {
        sl_api_set_error(e, 400, NULL, "cannot tokenize the input: %s", sl_last_error());
        goto done;
    }
    ids_add(&prompt, pids, np);
    sl_free(pids);
    /* the window llama.cpp takes with its logical batch (2048, at most the context): prefix : suffix = 3 : 1, the
     * rest of the context (less twice n_predict) for the extra chunks, nearest the prefix kept */
    const long long n_batch = ctx->n_ctx < 2048 ? ctx->n_ctx : 2048;
    long long take_pre = (long long)prefix.n < 3 * (n_batch / 4) ? (long long)prefix.n : 3 * (n_batch / 4);
    long long room_suf = n_batch / 4 - (2 + (long long)prompt.n);
    long long take_suf = (long long)suffix.n < (room_suf > 0 ? room_suf : 0) ? (long long)suffix.n : (room_suf > 0 ? room_suf : 0);
    long long room_extra = ctx->n_ctx - n_batch - 2 * n_predict;
    long long take_extra = (long long)extra.n < (room_extra > 0 ? room_extra : 0) ? (long long)extra.n : (room_extra > 0 ? room_extra : 0);
    ids_add(&all, extra.p + (extra.n - (size_t)take_extra), (size_t)take_extra);
    const int32_t bos = sl_tokenizer_bos(tok);
    if (sl_tokenizer_add_bos(tok) && bos >= 0) ids_add(&all, &bos, 1);
    ids_add(&all, &pre, 1);
    ids_add(&all, prefix.p + (prefix.n - (size_t)take_pre), (size_t)take_pre);
    ids_add(&all, prompt.p, prompt.n);
    ids_add(&all, &suf, 1);
    ids_add(&all, suffix.p, (size_t)take_suf);
    ids_add(&all, &mid, 1);
    if (extra.oom || prefix.oom || suffix.oom || prompt.oom || all.oom) {
        sl_api_set_error(e, 500, NULL, "out of memory");
        goto done;
    }
    json_t *arr = json_array();
    for (size_t k = 0; k < all.n; k++) json_array_append_new(arr, json_integer(all.p[k]));
    json_t *b = json_copy(o);
    json_object_del(b, "input_prefix");
    json_object_del(b, "input_suffix");
    json_object_del(b, "input_extra");
    json_object_set_new(b, "prompt", arr);
    if (llama) json_object_set_new(b, "shardlm_llama_defaults", json_true()); /* (answered as /completion is) */
    out = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    if (!out) sl_api_set_error(e, 500, NULL, "out of memory");
done:
    sl_free(extra.p);
    sl_free(prefix.p);
    sl_free(suffix.p);
    sl_free(prompt.p);
    sl_free(all.p);
    return out;
}

char *sl_api_chat_text(json_t *chat, sl_api_error *e) {
    char *text = chat ? json_dumps(chat, JSON_COMPACT) : NULL;
    if (chat && !text) sl_api_set_error(e, 500, NULL, "out of memory");
    json_decref(chat);
    return text;
}

json_t *sl_api_llama_embeddings_json(const sl_api_embed_request *r, const float *const *vecs, int32_t dim, bool per_token) {
    json_t *out = json_array();
    for (int32_t i = 0; i < r->n_inputs; i++) {
        json_t *rows = json_array();
        const int32_t n_rows = per_token ? r->inputs[i].n : 1;
        for (int32_t t = 0; t < n_rows; t++) json_array_append_new(rows, sl_api_floats_json(vecs[i] + (size_t)t * (size_t)dim, dim));
        json_array_append_new(out, json_pack("{s:i,s:o}", "index", (int)i, "embedding", rows));
    }
    return out;
}

/* ---- Ollama's model endpoints (as llama.cpp answers them) --------------------------------------- */

/* llama.cpp's name of general.file_type (its llama_ftype), as Ollama's quantization_level gives it; "" when the
 * file does not say or the value is not one. */
static const char *ftype_name(const sl_model *m) {
    static const char *const names[] = {
        [0] = "F32",     [1] = "F16",     [2] = "Q4_0",    [3] = "Q4_1",    [7] = "Q8_0",    [8] = "Q5_0",
        [9] = "Q5_1",    [10] = "Q2_K",   [11] = "Q3_K_S", [12] = "Q3_K_M", [13] = "Q3_K_L", [14] = "Q4_K_S",
        [15] = "Q4_K_M", [16] = "Q5_K_S", [17] = "Q5_K_M", [18] = "Q6_K",   [19] = "IQ2_XXS", [20] = "IQ2_XS",
        [21] = "Q2_K_S", [22] = "IQ3_XS", [23] = "IQ3_XXS", [24] = "IQ1_S", [25] = "IQ4_NL", [26] = "IQ3_S",
        [27] = "IQ3_M",  [28] = "IQ2_S",  [29] = "IQ2_M",  [30] = "IQ4_XS", [31] = "IQ1_M",  [32] = "BF16",
        [36] = "TQ1_0",  [37] = "TQ2_0"};
    const sl_gguf_kv *kv = sl_gguf_find(m->gguf, "general.file_type");
    const int64_t t = kv ? sl_gguf_kv_int(kv) : -1;
    return t >= 0 && t < (int64_t)(sizeof names / sizeof names[0]) && names[t] ? names[t] : "";
}

static json_t *ollama_details(const sl_api_ctx *ctx) {
    const char *arch = ctx->model->hp.arch;
    const double n = (double)sl_gguf_n_params(ctx->model->gguf);
    char size[32]; /* (as Ollama writes it: 1.2B, 494.03M) */
    if (n >= 1e9) snprintf(size, sizeof size, "%.1fB", n / 1e9);
    else if (n >= 1e6) snprintf(size, sizeof size, "%.2fM", n / 1e6);
    else if (n >= 1e3) snprintf(size, sizeof size, "%.2fK", n / 1e3);
    else snprintf(size, sizeof size, "%.0f", n);
    return json_pack("{s:s,s:s,s:s,s:[s],s:s,s:s}", "parent_model", "", "format", "gguf", "family", arch, "families", arch,
                     "parameter_size", size, "quantization_level", ftype_name(ctx->model));
}

/* Ollama's capabilities of the model: completion; tools where the chat template reads them; thinking where it
 * thinks; insert where the vocabulary has fill-in-the-middle tokens. */
static json_t *ollama_capabilities(const sl_api_ctx *ctx) {
    json_t *a = json_pack("[s]", "completion");
    if (ctx->chat_template && strstr(ctx->chat_template, "tools")) json_array_append_new(a, json_string("tools"));
    if (ctx->template_thinks) json_array_append_new(a, json_string("thinking"));
    const sl_tokenizer *tok = sl_model_tokenizer(ctx->model);
    if (sl_tokenizer_fim(tok, SL_FIM_PRE) >= 0 && sl_tokenizer_fim(tok, SL_FIM_SUF) >= 0 && sl_tokenizer_fim(tok, SL_FIM_MID) >= 0)
        json_array_append_new(a, json_string("insert"));
    return a;
}

/* The model file's size in bytes and its modification time as RFC 3339 (Ollama's size and modified_at; 0 and
 * the epoch when the file is not said or not there). */
static json_int_t model_file(const sl_api_ctx *ctx, char when[40]) {
    struct stat st;
    const bool ok = ctx->model_path && stat(ctx->model_path, &st) == 0;
    const time_t t = ok ? st.st_mtime : 0;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, 40, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return ok ? (json_int_t)st.st_size : 0;
}

json_t *sl_api_ollama_tags(const sl_api_ctx *ctx, long long created) {
    char when[40];
    const json_int_t size = model_file(ctx, when);
    json_t *ollama = json_pack("{s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:[s],s:o,s:s,s:o}", "name", ctx->model_id, "model",
                               ctx->model_id, "modified_at", when, "size", size, "digest", "", "type", "model", "description",
                               "", "tags", "", "capabilities", ollama_capabilities(ctx), "parameters", "", "details",
                               ollama_details(ctx));
    return json_pack("{s:[o],s:s,s:[{s:s,s:s,s:I,s:s,s:i}]}", "models", ollama, "object", "list", "data", "id",
                     ctx->model_id, "object", "model", "created", (json_int_t)created, "owned_by", "shardlm",
                     "max_model_len", ctx->n_ctx);
}

json_t *sl_api_ollama_ps(const sl_api_ctx *ctx) {
    char when[40];
    const json_int_t size = model_file(ctx, when);
    /* (loaded for as long as the server runs: Ollama's "never" for a model kept loaded is far in the future) */
    return json_pack("{s:[{s:s,s:s,s:I,s:s,s:o,s:s,s:I,s:i}]}", "models", "name", ctx->model_id, "model", ctx->model_id,
                     "size", size, "digest", "", "details", ollama_details(ctx), "expires_at", "2318-01-01T00:00:00Z",
                     "size_vram", (json_int_t)0, "context_length", ctx->n_ctx);
}

json_t *sl_api_ollama_show(const sl_api_ctx *ctx) {
    char key[96];
    snprintf(key, sizeof key, "%s.context_length", ctx->model->hp.arch);
    const char *tpl = ctx->chat_template ? ctx->chat_template : sl_api_fallback_template(ctx->model);
    char when[40];
    model_file(ctx, when);
    return json_pack("{s:s,s:{s:i,s:s,s:I},s:s,s:s,s:o,s:o,s:s}", "template", tpl ? tpl : "", "model_info", key, ctx->n_ctx,
                     "general.architecture", ctx->model->hp.arch, "general.parameter_count",
                     (json_int_t)sl_gguf_n_params(ctx->model->gguf), "modelfile", "", "parameters", "", "details", ollama_details(ctx),
                     "capabilities", ollama_capabilities(ctx), "modified_at", when);
}

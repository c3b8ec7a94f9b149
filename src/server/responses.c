/*
 * responses.c — OpenAI's Responses API on the chat path (see responses.h).
 */
#include "responses.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- request: Responses → chat ---------------------------------------------------- */

/* Fields of a Responses request that the chat request does not take as they are (the others, vLLM's
 * sampling extras included, go through). */
static const char *const own_fields[] = {
    "input", "instructions", "max_output_tokens", "text", "tools", "tool_choice", "previous_response_id", "store",
    "metadata", "truncation", "include", "reasoning", "background", "service_tier", "prompt_cache_key",
    "safety_identifier", "prompt", "conversation", "max_tool_calls", "top_logprobs", "stream_options"};

/* The text of a message's content: a string, or parts of text ({"type": input_text / output_text / text,
 * "text"}) joined. NULL with e set for any other part. */
static json_t *content_text(const json_t *content, const char *field, sl_api_error *e) {
    if (json_is_string(content)) return json_incref((json_t *)content);
    if (!json_is_array(content)) {
        sl_api_set_error(e, 400, "input", "'%s' must be a string or an array of text parts", field);
        return NULL;
    }
    sl_strbuf b = {0};
    bool ok = sl_strbuf_add(&b, "", 0);
    size_t i;
    const json_t *p;
    json_array_foreach(content, i, p) {
        const char *t = json_string_value(json_object_get(p, "type"));
        const json_t *text = json_object_get(p, "text");
        if (!t || (strcmp(t, "input_text") && strcmp(t, "output_text") && strcmp(t, "text")) || !json_is_string(text)) {
            free(b.p);
            sl_api_set_error(e, 400, "input", "'%s[%zu]': only text parts (input_text, output_text) are served%s%s%s", field,
                             i, t ? " (not '" : "", t ? t : "", t ? "')" : "");
            return NULL;
        }
        ok &= sl_strbuf_add(&b, json_string_value(text), json_string_length(text));
    }
    json_t *r = ok ? json_stringn(b.p, b.n) : NULL;
    free(b.p);
    if (!r) sl_api_set_error(e, 500, "input", "out of memory");
    return r;
}

/* input (a string, or items) as chat messages appended to msgs. */
static bool input_messages(const json_t *input, json_t *msgs, sl_api_error *e) {
    if (json_is_string(input)) {
        json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", "user", "content", input));
        return true;
    }
    if (!json_is_array(input) || json_array_size(input) == 0) {
        sl_api_set_error(e, 400, "input", "'input' must be a string or a non-empty array of items");
        return false;
    }
    json_t *calls = NULL; /* function_call items in a row: one assistant message's tool_calls */
    size_t i;
    const json_t *it;
    json_array_foreach(input, i, it) {
        char field[48];
        snprintf(field, sizeof field, "input[%zu]", i);
        const char *type = json_string_value(json_object_get(it, "type"));
        const char *role = json_string_value(json_object_get(it, "role"));
        if (!json_is_object(it)) {
            sl_api_set_error(e, 400, "input", "'%s' must be an object (a message or a function call or its output)", field);
            return false;
        }
        if (type && !strcmp(type, "function_call")) {
            const json_t *cid = json_object_get(it, "call_id"), *name = json_object_get(it, "name"),
                         *args = json_object_get(it, "arguments");
            if (!json_is_string(cid) || !json_is_string(name) || !json_is_string(args)) {
                sl_api_set_error(e, 400, "input", "'%s': a function_call has string call_id, name and arguments", field);
                return false;
            }
            if (!calls) {
                calls = json_array();
                json_array_append_new(msgs, json_pack("{s:s,s:n,s:o}", "role", "assistant", "content", "tool_calls", calls));
            }
            json_array_append_new(calls, json_pack("{s:O,s:s,s:{s:O,s:O}}", "id", cid, "type", "function", "function",
                                                   "name", name, "arguments", args));
            continue;
        }
        calls = NULL;
        if (type && !strcmp(type, "function_call_output")) {
            const json_t *cid = json_object_get(it, "call_id");
            json_t *out = content_text(json_object_get(it, "output"), field, e);
            if (!json_is_string(cid) || !out) {
                json_decref(out);
                if (!json_is_string(cid)) sl_api_set_error(e, 400, "input", "'%s': a function_call_output has a string call_id", field);
                return false;
            }
            json_array_append_new(msgs, json_pack("{s:s,s:O,s:o}", "role", "tool", "tool_call_id", cid, "content", out));
            continue;
        }
        if (type && !strcmp(type, "reasoning")) continue; /* (earlier turns' reasoning, as chat templates drop it) */
        if ((type && strcmp(type, "message")) || !role) {
            sl_api_set_error(e, 400, "input", "'%s': items are messages (with a role), function_call and "
                             "function_call_output%s%s%s", field, type ? " (not '" : "", type ? type : "", type ? "')" : "");
            return false;
        }
        if (strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "system") && strcmp(role, "developer")) {
            sl_api_set_error(e, 400, "input", "'%s.role' must be user, assistant, system or developer", field);
            return false;
        }
        char cf[64];
        snprintf(cf, sizeof cf, "%s.content", field);
        json_t *text = content_text(json_object_get(it, "content"), cf, e);
        if (!text) return false;
        json_array_append_new(msgs, json_pack("{s:s,s:o}", "role", strcmp(role, "developer") ? role : "system", "content", text));
    }
    return true;
}

/* tools: Responses' flat function tools as chat's {"type": "function", "function": {...}}. */
static json_t *chat_tools(const json_t *tools, sl_api_error *e) {
    if (!json_is_array(tools)) {
        sl_api_set_error(e, 400, "tools", "'tools' must be an array of function tools");
        return NULL;
    }
    json_t *r = json_array();
    size_t i;
    const json_t *t;
    json_array_foreach(tools, i, t) {
        const char *type = json_string_value(json_object_get(t, "type"));
        if (!type || strcmp(type, "function")) {
            json_decref(r);
            sl_api_set_error(e, 400, "tools", "'tools[%zu]': only function tools are served%s%s%s", i, type ? " (not '" : "",
                             type ? type : "", type ? "')" : "");
            return NULL;
        }
        json_t *fn = json_object();
        static const char *const keys[] = {"name", "description", "parameters", "strict"};
        for (size_t k = 0; k < 4; k++)
            if (json_object_get(t, keys[k]) && !json_is_null(json_object_get(t, keys[k])))
                json_object_set(fn, keys[k], json_object_get(t, keys[k]));
        json_array_append_new(r, json_pack("{s:s,s:o}", "type", "function", "function", fn));
    }
    return r;
}

json_t *sl_responses_to_chat(const json_t *req, sl_api_error *e) {
    if (!json_is_object(req)) {
        sl_api_set_error(e, 400, NULL, "the request body must be a JSON object");
        return NULL;
    }
    if (json_object_get(req, "conversation") && !json_is_null(json_object_get(req, "conversation"))) {
        sl_api_set_error(e, 400, "conversation", "this server keeps no conversations: send the whole conversation in 'input'");
        return NULL;
    }
    const json_t *nn = json_object_get(req, "n");
    if (nn && !json_is_null(nn) && !(json_is_integer(nn) && json_integer_value(nn) == 1)) {
        sl_api_set_error(e, 400, "n", "a response has one output: 'n' other than 1 is for chat completions");
        return NULL;
    }
    if (!json_object_get(req, "input")) {
        sl_api_set_error(e, 400, "input", "'input' is required");
        return NULL;
    }
    json_t *chat = json_copy((json_t *)req), *msgs = json_array();
    for (size_t i = 0; i < sizeof own_fields / sizeof own_fields[0]; i++) json_object_del(chat, own_fields[i]);
    const json_t *ins = json_object_get(req, "instructions");
    if (ins && !json_is_null(ins)) {
        if (!json_is_string(ins)) {
            sl_api_set_error(e, 400, "instructions", "'instructions' must be a string");
            goto fail;
        }
        json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", "system", "content", ins));
    }
    if (!input_messages(json_object_get(req, "input"), msgs, e)) goto fail;
    json_object_set(chat, "messages", msgs);
    const json_t *mot = json_object_get(req, "max_output_tokens");
    if (json_is_integer(mot) && json_integer_value(mot) < 1) { /* (chat's -1, llama.cpp's no limit, is not OpenAI's here) */
        sl_api_set_error(e, 400, "max_output_tokens", "'max_output_tokens' is %lld; it must be at least 1",
                         (long long)json_integer_value(mot));
        goto fail;
    }
    if (mot && !json_is_null(mot)) json_object_set(chat, "max_tokens", (json_t *)mot);
    const json_t *tools = json_object_get(req, "tools");
    if (tools && !json_is_null(tools) && !(json_is_array(tools) && json_array_size(tools) == 0)) {
        json_t *ct = chat_tools(tools, e);
        if (!ct) goto fail;
        json_object_set_new(chat, "tools", ct);
    }
    const json_t *tc = json_object_get(req, "tool_choice");
    if (json_is_string(tc)) {
        json_object_set(chat, "tool_choice", (json_t *)tc);
    } else if (json_is_object(tc) && !strcmp(json_string_value(json_object_get(tc, "type")) ?: "", "allowed_tools")) {
        json_object_set(chat, "tool_choice", (json_t *)tc); /* (the chat parser reads the Responses form too) */
    } else if (json_is_object(tc)) {
        const char *t = json_string_value(json_object_get(tc, "type"));
        const json_t *name = json_object_get(tc, "name");
        if (!t || strcmp(t, "function") || !json_is_string(name)) {
            sl_api_set_error(e, 400, "tool_choice", "'tool_choice' must be \"auto\", \"none\", \"required\" or "
                             "{\"type\": \"function\", \"name\": ...}");
            goto fail;
        }
        json_object_set_new(chat, "tool_choice", json_pack("{s:s,s:{s:O}}", "type", "function", "function", "name", name));
    } else if (tc && !json_is_null(tc)) {
        sl_api_set_error(e, 400, "tool_choice", "'tool_choice' must be a string or an object");
        goto fail;
    }
    const json_t *text = json_object_get(req, "text"), *fmt = json_object_get(text, "format");
    if (fmt && !json_is_null(fmt)) {
        const char *t = json_string_value(json_object_get(fmt, "type"));
        if (t && !strcmp(t, "json_schema")) {
            json_t *js = json_object();
            static const char *const keys[] = {"name", "schema", "strict", "description"};
            for (size_t k = 0; k < 4; k++)
                if (json_object_get(fmt, keys[k])) json_object_set(js, keys[k], json_object_get(fmt, keys[k]));
            json_object_set_new(chat, "response_format", json_pack("{s:s,s:o}", "type", "json_schema", "json_schema", js));
        } else if (t && !strcmp(t, "json_object")) {
            json_object_set_new(chat, "response_format", json_pack("{s:s}", "type", "json_object"));
        } else if (!t || strcmp(t, "text")) {
            sl_api_set_error(e, 400, "text", "'text.format.type' must be \"text\", \"json_object\" or \"json_schema\"");
            goto fail;
        }
    }
    const json_t *effort = json_object_get(json_object_get(req, "reasoning"), "effort");
    if (json_is_string(effort)) { /* for templates that read it (gpt-oss's) */
        json_t *kw = json_object_get(chat, "chat_template_kwargs");
        if (!json_is_object(kw)) json_object_set_new(chat, "chat_template_kwargs", kw = json_object());
        json_object_set(kw, "reasoning_effort", (json_t *)effort);
    }
    /* the output text's logprobs: include "message.output_text.logprobs", top_logprobs alternatives each */
    bool lp = false;
    size_t k;
    const json_t *inc;
    json_array_foreach(json_object_get(req, "include"), k, inc) lp |= json_is_string(inc) && !strcmp(json_string_value(inc), "message.output_text.logprobs");
    const json_t *top = json_object_get(req, "top_logprobs");
    if (lp || (json_is_integer(top) && json_integer_value(top) > 0)) {
        json_object_set_new(chat, "logprobs", json_true());
        if (top && !json_is_null(top)) json_object_set(chat, "top_logprobs", (json_t *)top);
    }
    if (json_is_true(json_object_get(req, "stream")))
        json_object_set_new(chat, "stream_options", json_pack("{s:b}", "include_usage", 1));
    json_decref(msgs);
    return chat;
fail:
    json_decref(msgs);
    json_decref(chat);
    return NULL;
}

char *sl_responses_chat_body(sl_resp_store *st, const char *body, size_t n, json_t **req, sl_api_error *e) {
    *req = NULL;
    json_t *b = sl_api_load_body(body, n, e);
    if (!b) return NULL;
    json_t *r = sl_resp_store_expand(st, b, e);
    json_decref(b);
    char *text = r ? sl_api_chat_text(sl_responses_to_chat(r, e), e) : NULL;
    if (!text) json_decref(r);
    else *req = r;
    return text;
}

const char *sl_responses_param(const char *p) {
    static const char *const map[][2] = {{"max_tokens", "max_output_tokens"}, {"max_completion_tokens", "max_output_tokens"},
                                         {"messages", "input"}, {"response_format", "text"}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strncmp(p, map[i][0], strlen(map[i][0])) && (p[strlen(map[i][0])] == 0 || p[strlen(map[i][0])] == '.' ||
                                                          p[strlen(map[i][0])] == '['))
            return map[i][1];
    return p;
}

/* ---- answer: chat → Responses ------------------------------------------------------ */

/* "chatcmpl-HEX" → "resp_HEX" and the like */
static void item_id(char *out, size_t cap, const char *prefix, const char *chat_id, int k) {
    const char *hex = strchr(chat_id, '-');
    hex = hex ? hex + 1 : chat_id;
    if (k >= 0) snprintf(out, cap, "%s_%s%02x", prefix, hex, k);
    else snprintf(out, cap, "%s_%s", prefix, hex);
}

static json_t *usage_of(const json_t *u) {
    if (!json_is_object(u)) return json_null();
    const json_t *cached = json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens");
    return json_pack("{s:I,s:{s:I},s:I,s:{s:i},s:I}", "input_tokens", json_integer_value(json_object_get(u, "prompt_tokens")),
                     "input_tokens_details", "cached_tokens", json_integer_value(cached), "output_tokens",
                     json_integer_value(json_object_get(u, "completion_tokens")), "output_tokens_details",
                     "reasoning_tokens", 0, "total_tokens", json_integer_value(json_object_get(u, "total_tokens")));
}

/* req's field k (a new reference), or dflt (taken) where it is absent or null */
static json_t *field_or(const json_t *req, const char *k, json_t *dflt) {
    json_t *v = json_object_get(req, k);
    if (v && !json_is_null(v)) {
        json_decref(dflt);
        return json_incref(v);
    }
    return dflt;
}

/* The response object's fields around its output: what the request asked, as OpenAI echoes them. */
static json_t *response_base(const json_t *req, const char *id, const char *model, long long created, const char *status) {
    char rid[96];
    item_id(rid, sizeof rid, "resp", id, -1);
    const json_t *v;
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:n,s:n,s:s,s:[],s:n,s:b,s:{s:n,s:n},s:n}", "id", rid, "object", "response",
                          "created_at", (json_int_t)created, "status", status, "error", "incomplete_details", "model",
                          model, "output", "previous_response_id", "store", 0, "reasoning", "effort", "summary", "usage");
    json_object_set_new(o, "instructions", field_or(req, "instructions", json_null()));
    json_object_set_new(o, "max_output_tokens", field_or(req, "max_output_tokens", json_null()));
    json_object_set_new(o, "metadata", json_is_object(json_object_get(req, "metadata")) ? field_or(req, "metadata", NULL) : json_object());
    json_object_set_new(o, "parallel_tool_calls", json_boolean(!json_is_false(json_object_get(req, "parallel_tool_calls"))));
    json_object_set_new(o, "temperature", json_real(json_is_number(v = json_object_get(req, "temperature")) ? json_number_value(v) : 1.0));
    json_object_set_new(o, "top_p", json_real(json_is_number(v = json_object_get(req, "top_p")) ? json_number_value(v) : 1.0));
    json_object_set_new(o, "tool_choice", field_or(req, "tool_choice", json_string("auto")));
    json_object_set_new(o, "tools", json_is_array(json_object_get(req, "tools")) ? field_or(req, "tools", NULL) : json_array());
    json_object_set_new(o, "text", json_pack("{s:o}", "format", field_or(json_object_get(req, "text"), "format",
                                                                         json_pack("{s:s}", "type", "text"))));
    json_object_set_new(o, "truncation", json_string("disabled"));
    json_object_set_new(o, "store", json_boolean(!json_is_false(json_object_get(req, "store"))));
    json_object_set_new(o, "background", json_boolean(json_is_true(json_object_get(req, "background"))));
    json_object_set_new(o, "previous_response_id", field_or(req, "previous_response_id", json_null()));
    json_object_set_new(o, "user", field_or(req, "user", json_null()));
    const json_t *effort = json_object_get(json_object_get(req, "reasoning"), "effort");
    if (effort) json_object_set(json_object_get(o, "reasoning"), "effort", (json_t *)effort);
    return o;
}

static void set_status(json_t *resp, const char *finish) {
    const bool cut = finish && !strcmp(finish, "length");
    json_object_set_new(resp, "status", json_string(cut ? "incomplete" : "completed"));
    json_object_set_new(resp, "incomplete_details", cut ? json_pack("{s:s}", "reason", "max_output_tokens") : json_null());
}

static json_t *reasoning_item(const char *id, const char *text, size_t n, const char *status) {
    char rid[96];
    item_id(rid, sizeof rid, "rs", id, -1);
    json_t *content = json_array();
    if (text) json_array_append_new(content, json_pack("{s:s,s:s%}", "type", "reasoning_text", "text", text, n));
    return json_pack("{s:s,s:s,s:[],s:o,s:s}", "type", "reasoning", "id", rid, "summary", "content", content, "status", status);
}

/* An output_text part; lp: its tokens' logprobs (chat's logprobs.content, the same shape; taken), or NULL. */
static json_t *text_part(const char *text, size_t n, json_t *lp) {
    return json_pack("{s:s,s:s%,s:[],s:o}", "type", "output_text", "text", text, n, "annotations", "logprobs", lp ? lp : json_array());
}

/* chat's logprobs of a choice (or a chunk's choice): its content list (a new reference), or NULL */
static json_t *logprobs_of(const json_t *choice) {
    json_t *c = json_object_get(json_object_get(choice, "logprobs"), "content");
    return json_is_array(c) ? json_incref(c) : NULL;
}

/* A message item with its one part (taken), or none yet (NULL). */
static json_t *message_item(const char *id, json_t *part, const char *status) {
    char mid[96];
    item_id(mid, sizeof mid, "msg", id, -1);
    json_t *content = json_array();
    if (part) json_array_append_new(content, part);
    return json_pack("{s:s,s:s,s:s,s:s,s:o}", "type", "message", "id", mid, "status", status, "role", "assistant", "content",
                     content);
}

static json_t *call_item(const char *id, int k, const char *call_id, const char *name, const char *args, const char *status) {
    char fid[96];
    item_id(fid, sizeof fid, "fc", id, k);
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "type", "function_call", "id", fid, "call_id", call_id ? call_id : "",
                     "name", name ? name : "", "arguments", args ? args : "", "status", status);
}

json_t *sl_responses_from_chat(const json_t *chat, const json_t *req, const char *id, long long created) {
    const json_t *ch = json_array_get(json_object_get(chat, "choices"), 0), *msg = json_object_get(ch, "message");
    const char *model = json_string_value(json_object_get(chat, "model"));
    json_t *o = response_base(req, id, model ? model : "", created, "completed"), *out = json_object_get(o, "output");
    const json_t *r = json_object_get(msg, "reasoning_content"), *c = json_object_get(msg, "content");
    if (json_is_string(r) && json_string_length(r))
        json_array_append_new(out, reasoning_item(id, json_string_value(r), json_string_length(r), "completed"));
    if (json_is_string(c) && json_string_length(c)) {
        json_array_append_new(out, message_item(id, text_part(json_string_value(c), json_string_length(c), logprobs_of(ch)),
                                                "completed"));
    }
    size_t i;
    const json_t *tc;
    json_array_foreach(json_object_get(msg, "tool_calls"), i, tc) {
        const json_t *fn = json_object_get(tc, "function");
        json_array_append_new(out, call_item(id, (int)i, json_string_value(json_object_get(tc, "id")),
                                             json_string_value(json_object_get(fn, "name")),
                                             json_string_value(json_object_get(fn, "arguments")), "completed"));
    }
    set_status(o, json_string_value(json_object_get(ch, "finish_reason")));
    json_object_set_new(o, "usage", usage_of(json_object_get(chat, "usage")));
    return o;
}

/* ---- kept responses --------------------------------------------------------------------------- */

typedef struct kept {
    char *id;
    json_t *items; /* the conversation: inputs and outputs as input items */
    size_t n_input; /* ... of which the first n_input were the response's input */
    json_t *resp;
    size_t bytes;
} kept;

struct sl_resp_store {
    pthread_mutex_t mu;
    kept *ring;
    int cap, head, n; /* oldest at head */
    size_t bytes, max_bytes;
};

sl_resp_store *sl_resp_store_new(int max_entries, size_t max_bytes) {
    if (max_entries <= 0) return NULL;
    sl_resp_store *st = calloc(1, sizeof *st);
    if (!st || !(st->ring = calloc((size_t)max_entries, sizeof *st->ring))) {
        free(st);
        return NULL;
    }
    pthread_mutex_init(&st->mu, NULL);
    st->cap = max_entries;
    st->max_bytes = max_bytes;
    return st;
}

static void kept_clear(kept *k) {
    free(k->id);
    json_decref(k->items);
    json_decref(k->resp);
    memset(k, 0, sizeof *k);
}

void sl_resp_store_free(sl_resp_store *st) {
    if (!st) return;
    for (int i = 0; i < st->cap; i++) kept_clear(&st->ring[i]);
    free(st->ring);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* (caller holds mu) */
static kept *find(sl_resp_store *st, const char *id) {
    for (int i = 0; i < st->n; i++) {
        kept *k = &st->ring[(st->head + i) % st->cap];
        if (!strcmp(k->id, id)) return k;
    }
    return NULL;
}

/* input as a list of items (a string: one user message) */
static json_t *input_items(const json_t *input) {
    if (json_is_string(input)) return json_pack("[{s:s,s:O}]", "role", "user", "content", input);
    return json_is_array(input) ? json_copy((json_t *)input) : json_array();
}

json_t *sl_resp_store_expand(sl_resp_store *st, const json_t *req, sl_api_error *e) {
    const json_t *prev = json_object_get(req, "previous_response_id");
    if (!prev || json_is_null(prev)) return json_copy((json_t *)req);
    if (!json_is_string(prev)) {
        sl_api_set_error(e, 400, "previous_response_id", "'previous_response_id' must be a string");
        return NULL;
    }
    if (!st) {
        sl_api_set_error(e, 400, "previous_response_id", "this server keeps no responses (--responses-store 0): send "
                         "the whole conversation in 'input'");
        return NULL;
    }
    pthread_mutex_lock(&st->mu);
    kept *k = find(st, json_string_value(prev));
    json_t *items = k ? json_copy(k->items) : NULL;
    pthread_mutex_unlock(&st->mu);
    if (!items) {
        sl_api_set_error(e, 404, "previous_response_id", "no response '%.100s' is kept here (never stored, stored with "
                         "\"store\": false, or the oldest gone)", json_string_value(prev));
        return NULL;
    }
    json_t *own = input_items(json_object_get(req, "input")), *r = json_copy((json_t *)req);
    json_array_extend(items, own);
    json_decref(own);
    json_object_set_new(r, "input", items);
    return r;
}

void sl_resp_store_put(sl_resp_store *st, const json_t *req, const json_t *resp) {
    const char *id = json_string_value(json_object_get(resp, "id"));
    if (!st || !id || json_is_false(json_object_get(req, "store"))) return;
    json_t *items = input_items(json_object_get(req, "input"));
    const size_t n_input = json_array_size(items);
    size_t i;
    const json_t *it;
    json_array_foreach(json_object_get(resp, "output"), i, it) { /* the outputs as inputs of the next turn */
        const char *t = json_string_value(json_object_get(it, "type"));
        if (t && !strcmp(t, "message")) {
            json_t *text = json_object_get(json_array_get(json_object_get(it, "content"), 0), "text");
            if (json_is_string(text))
                json_array_append_new(items, json_pack("{s:s,s:[{s:s,s:O}]}", "role", "assistant", "content", "type",
                                                       "output_text", "text", text));
        } else if (t && !strcmp(t, "function_call")) {
            json_array_append_new(items, json_pack("{s:s,s:O,s:O,s:O}", "type", "function_call", "call_id",
                                                   json_object_get(it, "call_id"), "name", json_object_get(it, "name"),
                                                   "arguments", json_object_get(it, "arguments")));
        }
    }
    char *a = json_dumps(items, JSON_COMPACT), *b = json_dumps(resp, JSON_COMPACT);
    const size_t bytes = (a ? strlen(a) : 0) + (b ? strlen(b) : 0);
    free(a);
    free(b);
    sl_resp_store_delete(st, id); /* (one entry per id: a response kept again replaces itself) */
    pthread_mutex_lock(&st->mu);
    while (st->n > 0 && (st->n == st->cap || st->bytes + bytes > st->max_bytes)) { /* the oldest go */
        kept *o = &st->ring[st->head];
        st->bytes -= o->bytes;
        kept_clear(o);
        st->head = (st->head + 1) % st->cap;
        st->n--;
    }
    if (bytes <= st->max_bytes) {
        kept *k = &st->ring[(st->head + st->n) % st->cap];
        *k = (kept){.id = strdup(id), .items = items, .n_input = n_input, .resp = json_deep_copy(resp), .bytes = bytes};
        items = NULL;
        st->bytes += bytes;
        st->n++;
    }
    pthread_mutex_unlock(&st->mu);
    json_decref(items);
}

json_t *sl_resp_store_get(sl_resp_store *st, const char *id) {
    if (!st) return NULL;
    pthread_mutex_lock(&st->mu);
    kept *k = find(st, id);
    json_t *r = k ? json_deep_copy(k->resp) : NULL;
    pthread_mutex_unlock(&st->mu);
    return r;
}

bool sl_resp_store_delete(sl_resp_store *st, const char *id) {
    if (!st) return false;
    pthread_mutex_lock(&st->mu);
    kept *k = find(st, id);
    if (k) { /* the newer ones move up one place */
        st->bytes -= k->bytes;
        kept_clear(k);
        int i = (int)(k - st->ring);
        for (int j = (i - st->head + st->cap) % st->cap; j + 1 < st->n; j++) {
            st->ring[(st->head + j) % st->cap] = st->ring[(st->head + j + 1) % st->cap];
            memset(&st->ring[(st->head + j + 1) % st->cap], 0, sizeof(kept));
        }
        st->n--;
    }
    pthread_mutex_unlock(&st->mu);
    return k != NULL;
}

/* Input item i of kept response rid as OpenAI lists it: a message item {"type": "message", "id", "role",
 * "content": [parts], "status"} (a string content made an input_text part, or output_text for the assistant's),
 * or the item as sent, with an id where it has none. */
static json_t *listed_item(const json_t *it, const char *rid, size_t i) {
    char iid[160];
    const char *hex = strchr(rid, '_');
    snprintf(iid, sizeof iid, "msg_%s%04zx", hex ? hex + 1 : rid, i);
    json_t *o = json_deep_copy((json_t *)it);
    const char *type = json_string_value(json_object_get(o, "type"));
    if (!type || !strcmp(type, "message")) {
        const char *role = json_string_value(json_object_get(o, "role"));
        json_t *c = json_object_get(o, "content");
        if (json_is_string(c))
            json_object_set_new(o, "content", json_pack("[{s:s,s:O}]", "type", role && !strcmp(role, "assistant") ? "output_text"
                                                                                                          : "input_text",
                                                        "text", c));
        json_object_set_new(o, "type", json_string("message"));
        if (!json_object_get(o, "status")) json_object_set_new(o, "status", json_string("completed"));
    }
    if (!json_is_string(json_object_get(o, "id"))) json_object_set_new(o, "id", json_string(iid));
    return o;
}

char *sl_resp_store_input_items(sl_resp_store *st, const char *id, const char *limit_arg, const char *order,
                                const char *after, sl_api_error *e) {
    char *end = NULL;
    const long lim = limit_arg ? strtol(limit_arg, &end, 10) : 20;
    if (limit_arg && (end == limit_arg || *end || lim < 1 || lim > 100)) {
        sl_api_set_error(e, 400, "limit", "'limit' must be a number from 1 to 100");
        return NULL;
    }
    if (order && strcmp(order, "asc") && strcmp(order, "desc")) {
        sl_api_set_error(e, 400, "order", "'order' must be asc or desc");
        return NULL;
    }
    const int limit = (int)lim;
    const bool asc = order && !strcmp(order, "asc");
    sl_api_set_error(e, 404, NULL, "no response '%.100s' is kept here", id);
    if (!st) return NULL;
    pthread_mutex_lock(&st->mu);
    kept *k = find(st, id);
    json_t *all = json_array();
    for (size_t i = 0; k && i < k->n_input; i++) json_array_append_new(all, listed_item(json_array_get(k->items, i), id, i));
    pthread_mutex_unlock(&st->mu);
    if (!k) {
        json_decref(all);
        return NULL;
    }
    const size_t n = json_array_size(all);
    size_t start = 0; /* position in the listing order after `after` */
    if (after && *after)
        for (size_t j = 0; j < n; j++) {
            const json_t *it = json_array_get(all, asc ? j : n - 1 - j);
            if (!strcmp(json_string_value(json_object_get(it, "id")) ?: "", after)) start = j + 1;
        }
    json_t *data = json_array();
    for (size_t j = start; j < n && (int)json_array_size(data) < limit; j++)
        json_array_append(data, json_array_get(all, asc ? j : n - 1 - j));
    const size_t got = json_array_size(data);
    json_t *o = json_pack("{s:s,s:o,s:O,s:O,s:b}", "object", "list", "data", data, "first_id",
                          got ? json_object_get(json_array_get(data, 0), "id") : json_null(), "last_id",
                          got ? json_object_get(json_array_get(data, got - 1), "id") : json_null(), "has_more",
                          start + got < n);
    json_decref(all);
    char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return txt;
}

char *sl_resp_store_http(sl_resp_store *st, const char *path, bool del) {
    json_t *o = NULL;
    if (del && sl_resp_store_delete(st, path))
        o = json_pack("{s:s,s:s,s:b}", "id", path, "object", "response", "deleted", 1);
    else if (!del)
        o = sl_resp_store_get(st, path);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* ---- streamed ------------------------------------------------------------------------------ */

#define MAX_CALLS 64

struct sl_resp_stream {
    json_t *req;
    char id[64], model[128];
    long long created;
    int seq;
    json_t *output; /* the items so far, as they stand */
    int rs, msg;    /* output index of the open reasoning / message item, -1: none */
    int calls[MAX_CALLS]; /* output index of chat tool call i, -1: none yet */
    sl_strbuf text, reasoning;
    json_t *lps; /* the message's tokens' logprobs so far */
    sl_strbuf args[MAX_CALLS];
    char *finish;
    bool ended;
    sl_resp_store *keep; /* where the finished response is kept, or NULL */
};

void sl_resp_stream_keep_in(sl_resp_stream *s, sl_resp_store *st) {
    if (s) s->keep = st;
}

void sl_sse_event(sl_strbuf *out, const char *type, json_t *o) {
    char *d = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!d) return;
    if (type) {
        sl_strbuf_add(out, "event: ", 7);
        sl_strbuf_add(out, type, strlen(type));
        sl_strbuf_add(out, "\n", 1);
    }
    sl_strbuf_add(out, "data: ", 6);
    sl_strbuf_add(out, d, strlen(d));
    sl_strbuf_add(out, "\n\n", 2);
    free(d);
}

static void emit(sl_resp_stream *s, sl_strbuf *out, const char *type, json_t *o) {
    json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "sequence_number", json_integer(s->seq++));
    sl_sse_event(out, type, o);
}

static json_t *snapshot(sl_resp_stream *s, const char *status) {
    json_t *o = response_base(s->req, s->id, s->model, s->created, status);
    json_object_set(o, "output", s->output);
    return o;
}

sl_resp_stream *sl_resp_stream_new(const json_t *req, const char *id, const char *model, long long created, sl_strbuf *out) {
    sl_resp_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->req = json_incref((json_t *)req);
    snprintf(s->id, sizeof s->id, "%s", id);
    snprintf(s->model, sizeof s->model, "%s", model);
    s->created = created;
    s->output = json_array();
    s->rs = s->msg = -1;
    for (int i = 0; i < MAX_CALLS; i++) s->calls[i] = -1;
    emit(s, out, "response.created", json_pack("{s:o}", "response", snapshot(s, "in_progress")));
    emit(s, out, "response.in_progress", json_pack("{s:o}", "response", snapshot(s, "in_progress")));
    return s;
}

void sl_resp_stream_free(sl_resp_stream *s) {
    if (!s) return;
    json_decref(s->req);
    json_decref(s->output);
    json_decref(s->lps);
    free(s->text.p);
    free(s->reasoning.p);
    for (int i = 0; i < MAX_CALLS; i++) free(s->args[i].p);
    free(s->finish);
    free(s);
}

static void close_reasoning(sl_resp_stream *s, sl_strbuf *out) {
    if (s->rs < 0) return;
    const char *t = s->reasoning.p ? s->reasoning.p : "";
    json_t *item = reasoning_item(s->id, t, s->reasoning.n, "completed");
    json_array_set(s->output, (size_t)s->rs, item);
    emit(s, out, "response.reasoning_text.done", json_pack("{s:O,s:i,s:i,s:s%}", "item_id", json_object_get(item, "id"),
                                                           "output_index", s->rs, "content_index", 0, "text", t, s->reasoning.n));
    emit(s, out, "response.output_item.done", json_pack("{s:i,s:o}", "output_index", s->rs, "item", item));
    s->rs = -1;
}

static void close_message(sl_resp_stream *s, sl_strbuf *out) {
    if (s->msg < 0) return;
    const char *t = s->text.p ? s->text.p : "";
    json_t *lps = s->lps ? s->lps : json_array(); /* (the message's tokens' logprobs: in the item and two events) */
    if (!s->lps) s->lps = lps;
    json_t *item = message_item(s->id, text_part(t, s->text.n, json_copy(lps)), "completed");
    json_array_set(s->output, (size_t)s->msg, item);
    json_t *iid = json_object_get(item, "id");
    emit(s, out, "response.output_text.done", json_pack("{s:O,s:i,s:i,s:s%,s:o}", "item_id", iid, "output_index", s->msg,
                                                        "content_index", 0, "text", t, s->text.n, "logprobs",
                                                        json_copy(lps)));
    emit(s, out, "response.content_part.done", json_pack("{s:O,s:i,s:i,s:o}", "item_id", iid, "output_index", s->msg,
                                                         "content_index", 0, "part",
                                                         text_part(t, s->text.n, json_copy(lps))));
    emit(s, out, "response.output_item.done", json_pack("{s:i,s:O}", "output_index", s->msg, "item", item));
    json_decref(item);
    s->msg = -1;
}

static void close_calls(sl_resp_stream *s, sl_strbuf *out) {
    for (int i = 0; i < MAX_CALLS; i++) {
        if (s->calls[i] < 0) continue;
        json_t *item = json_array_get(s->output, (size_t)s->calls[i]);
        const char *a = s->args[i].p ? s->args[i].p : "";
        json_object_set_new(item, "arguments", json_stringn(a, s->args[i].n));
        json_object_set_new(item, "status", json_string("completed"));
        emit(s, out, "response.function_call_arguments.done",
             json_pack("{s:O,s:i,s:s%}", "item_id", json_object_get(item, "id"), "output_index", s->calls[i], "arguments", a,
                       s->args[i].n));
        emit(s, out, "response.output_item.done", json_pack("{s:i,s:O}", "output_index", s->calls[i], "item", item));
        s->calls[i] = -1;
    }
}

void sl_resp_stream_chunk(sl_resp_stream *s, const json_t *chunk, sl_strbuf *out) {
    if (s->ended) return;
    const json_t *err = json_object_get(chunk, "error");
    if (err) { /* the generation failed: an error event, then the response failed */
        const char *m = json_string_value(json_object_get(err, "message"));
        json_t *r = snapshot(s, "failed");
        json_object_set_new(r, "error", json_pack("{s:s,s:s}", "code", "server_error", "message", m ? m : "generation failed"));
        emit(s, out, "error", json_pack("{s:s,s:s,s:n}", "code", "server_error", "message", m ? m : "generation failed", "param"));
        emit(s, out, "response.failed", json_pack("{s:o}", "response", r));
        s->ended = true;
        return;
    }
    const json_t *choices = json_object_get(chunk, "choices");
    if (json_array_size(choices) == 0) { /* the usage chunk: the stream's end */
        close_reasoning(s, out);
        close_message(s, out);
        close_calls(s, out);
        json_t *r = snapshot(s, "completed");
        set_status(r, s->finish);
        json_object_set_new(r, "usage", usage_of(json_object_get(chunk, "usage")));
        const bool cut = s->finish && !strcmp(s->finish, "length");
        sl_resp_store_put(s->keep, s->req, r);
        emit(s, out, cut ? "response.incomplete" : "response.completed", json_pack("{s:o}", "response", r));
        s->ended = true;
        return;
    }
    const json_t *ch = json_array_get(choices, 0), *delta = json_object_get(ch, "delta");
    const json_t *r = json_object_get(delta, "reasoning_content"), *c = json_object_get(delta, "content");
    if (json_is_string(r) && json_string_length(r)) {
        close_message(s, out);
        if (s->rs < 0) {
            s->rs = (int)json_array_size(s->output);
            json_t *item = reasoning_item(s->id, NULL, 0, "in_progress");
            json_array_append(s->output, item);
            emit(s, out, "response.output_item.added", json_pack("{s:i,s:o}", "output_index", s->rs, "item", item));
        }
        sl_strbuf_add(&s->reasoning, json_string_value(r), json_string_length(r));
        char rid[96];
        item_id(rid, sizeof rid, "rs", s->id, -1);
        emit(s, out, "response.reasoning_text.delta", json_pack("{s:s,s:i,s:i,s:O}", "item_id", rid, "output_index", s->rs,
                                                                "content_index", 0, "delta", r));
    }
    if (json_is_string(c) && json_string_length(c)) {
        close_reasoning(s, out);
        char mid[96];
        item_id(mid, sizeof mid, "msg", s->id, -1);
        if (s->msg < 0) {
            s->msg = (int)json_array_size(s->output);
            json_t *item = message_item(s->id, NULL, "in_progress");
            json_array_append(s->output, item);
            emit(s, out, "response.output_item.added", json_pack("{s:i,s:o}", "output_index", s->msg, "item", item));
            emit(s, out, "response.content_part.added", json_pack("{s:s,s:i,s:i,s:o}", "item_id", mid, "output_index", s->msg,
                                                                  "content_index", 0, "part", text_part("", 0, NULL)));
        }
        sl_strbuf_add(&s->text, json_string_value(c), json_string_length(c));
        json_t *lp = logprobs_of(ch);
        if (lp) {
            if (!s->lps) s->lps = json_array();
            json_array_extend(s->lps, lp);
        }
        emit(s, out, "response.output_text.delta", json_pack("{s:s,s:i,s:i,s:O,s:o}", "item_id", mid, "output_index", s->msg,
                                                             "content_index", 0, "delta", c, "logprobs", lp ? lp : json_array()));
    }
    size_t i;
    const json_t *tc;
    json_array_foreach(json_object_get(delta, "tool_calls"), i, tc) {
        const json_int_t k = json_integer_value(json_object_get(tc, "index"));
        if (k < 0 || k >= MAX_CALLS) continue;
        const json_t *fn = json_object_get(tc, "function"), *args = json_object_get(fn, "arguments");
        if (s->calls[k] < 0) {
            close_reasoning(s, out);
            close_message(s, out);
            s->calls[k] = (int)json_array_size(s->output);
            json_t *item = call_item(s->id, (int)k, json_string_value(json_object_get(tc, "id")),
                                     json_string_value(json_object_get(fn, "name")), "", "in_progress");
            json_array_append(s->output, item);
            emit(s, out, "response.output_item.added", json_pack("{s:i,s:o}", "output_index", s->calls[k], "item", item));
        }
        if (json_is_string(args) && json_string_length(args)) {
            sl_strbuf_add(&s->args[k], json_string_value(args), json_string_length(args));
            emit(s, out, "response.function_call_arguments.delta",
                 json_pack("{s:O,s:i,s:O}", "item_id", json_object_get(json_array_get(s->output, (size_t)s->calls[k]), "id"),
                           "output_index", s->calls[k], "delta", args));
        }
    }
    const json_t *fin = json_object_get(ch, "finish_reason");
    if (json_is_string(fin)) {
        free(s->finish);
        s->finish = strdup(json_string_value(fin));
    }
}

json_t *sl_resp_stream_partial(const sl_resp_stream *s, const char *status) {
    json_t *o = response_base(s->req, s->id, s->model, s->created, status), *out = json_deep_copy(s->output);
    if (!o || !out) {
        json_decref(o);
        json_decref(out);
        return NULL;
    }
    if (s->rs >= 0)
        json_array_set_new(out, (size_t)s->rs, reasoning_item(s->id, s->reasoning.p ? s->reasoning.p : "", s->reasoning.n,
                                                              "incomplete"));
    if (s->msg >= 0)
        json_array_set_new(out, (size_t)s->msg,
                           message_item(s->id, text_part(s->text.p ? s->text.p : "", s->text.n, s->lps ? json_copy(s->lps) : NULL),
                                        "incomplete"));
    for (int i = 0; i < MAX_CALLS; i++) {
        json_t *item = s->calls[i] >= 0 ? json_array_get(out, (size_t)s->calls[i]) : NULL;
        if (!item) continue;
        json_object_set_new(item, "arguments", json_stringn(s->args[i].p ? s->args[i].p : "", s->args[i].n));
        json_object_set_new(item, "status", json_string("incomplete"));
    }
    json_object_set_new(o, "output", out);
    return o;
}

bool sl_resp_stream_ended(const sl_resp_stream *s) { return s && s->ended; }

json_t *sl_responses_status(const json_t *req, const char *id, const char *model, long long created, const char *status) {
    return response_base(req, id, model, created, status);
}

const char *sl_responses_background_refusal(const json_t *req, bool store) {
    if (!json_is_true(json_object_get(req, "background"))) return NULL;
    return !store                                               ? "no responses are kept here (--responses-store 0)"
           : json_is_false(json_object_get(req, "store"))        ? "it needs \"store\": true"
           : json_is_true(json_object_get(req, "stream"))        ? "streamed background responses are not served"
                                                                : NULL;
}

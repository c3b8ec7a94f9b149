/*
 * anthropic.c — Anthropic's Messages API on the chat path (see anthropic.h).
 */
#include "anthropic.h"

#include "server/responses.h"
#include "server/toolcall.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- request: Messages → chat ----------------------------------------------------------- */

/* Fields that would change the answer in ways this server does not do: refused by name. */
static const char *const REFUSED[] = {"container", "mcp_servers", "context_management", NULL};

/* The text of blocks (a string, or text blocks joined), or NULL with e set naming `field`. */
static json_t *blocks_text(const json_t *content, const char *field, sl_api_error *e) {
    if (json_is_string(content)) return json_incref((json_t *)content);
    if (!json_is_array(content)) {
        sl_api_set_error(e, 400, "messages", "'%s' must be a string or an array of text blocks", field);
        return NULL;
    }
    sl_strbuf b = {0};
    size_t i;
    const json_t *blk;
    json_array_foreach(content, i, blk) {
        const json_t *t = json_object_get(blk, "text");
        if (!json_is_string(t) || strcmp(json_string_value(json_object_get(blk, "type")) ?: "", "text")) {
            free(b.p);
            sl_api_set_error(e, 400, "messages", "'%s[%zu]' must be a text block", field, i);
            return NULL;
        }
        if (i) sl_strbuf_add(&b, "\n", 1);
        sl_strbuf_add(&b, json_string_value(t), json_string_length(t));
    }
    json_t *r = json_stringn(b.p ? b.p : "", b.n);
    free(b.p);
    return r;
}

/* A document or search_result block of a user message as the text the model reads: its title, its context, then
 * its text (a text source's data, or a content source's text blocks); NULL with e set for a source that is not
 * text (a PDF or an image: no model here reads those). */
static json_t *document_text(const json_t *blk, const char *type, const char *field, sl_api_error *e) {
    const json_t *title = json_object_get(blk, "title"), *ctx = json_object_get(blk, "context"), *body = NULL;
    json_t *owned = NULL;
    if (!strcmp(type, "search_result")) { /* {source, title, content: [text blocks]} */
        char f[96];
        snprintf(f, sizeof f, "%s.content", field);
        body = owned = blocks_text(json_object_get(blk, "content"), f, e);
        if (!body) return NULL;
    } else {
        const json_t *src = json_object_get(blk, "source");
        const char *st = json_string_value(json_object_get(src, "type"));
        if (st && !strcmp(st, "text") && json_is_string(json_object_get(src, "data"))) {
            body = json_object_get(src, "data");
        } else if (st && !strcmp(st, "content")) {
            char f[96];
            snprintf(f, sizeof f, "%s.source.content", field);
            body = owned = blocks_text(json_object_get(src, "content"), f, e);
            if (!body) return NULL;
        } else {
            sl_api_set_error(e, 400, "messages", "'%s.source': documents of source type '%s' are not supported (text and "
                             "content are: this server's models read text only)", field, st ? st : "(none)");
            return NULL;
        }
    }
    sl_strbuf b = {0};
    if (json_is_string(title)) {
        sl_strbuf_add(&b, json_string_value(title), json_string_length(title));
        sl_strbuf_add(&b, "\n\n", 2);
    }
    if (json_is_string(ctx)) {
        sl_strbuf_add(&b, json_string_value(ctx), json_string_length(ctx));
        sl_strbuf_add(&b, "\n\n", 2);
    }
    sl_strbuf_add(&b, json_string_value(body), json_string_length(body));
    json_t *r = json_stringn(b.p ? b.p : "", b.n);
    free(b.p);
    json_decref(owned);
    return r;
}

/* One message of the request, as chat messages appended to msgs; false with e set. */
static bool message(const json_t *m, size_t idx, json_t *msgs, sl_api_error *e) {
    const char *role = json_string_value(json_object_get(m, "role"));
    const json_t *content = json_object_get(m, "content");
    if (!role || (strcmp(role, "user") && strcmp(role, "assistant"))) {
        sl_api_set_error(e, 400, "messages", "'messages[%zu].role' must be \"user\" or \"assistant\"", idx);
        return false;
    }
    const bool user = !strcmp(role, "user");
    if (json_is_string(content)) {
        json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", role, "content", content));
        return true;
    }
    if (!json_is_array(content)) {
        sl_api_set_error(e, 400, "messages", "'messages[%zu].content' must be a string or an array of blocks", idx);
        return false;
    }
    json_t *parts = json_array(), *calls = json_array();
    sl_strbuf thinking = {0};
    bool ok = true;
    size_t i;
    const json_t *blk;
    json_array_foreach(content, i, blk) {
        const char *type = json_string_value(json_object_get(blk, "type"));
        char field[64];
        snprintf(field, sizeof field, "messages[%zu].content[%zu]", idx, i);
        if (type && !strcmp(type, "text") && json_is_string(json_object_get(blk, "text"))) {
            json_array_append_new(parts, json_pack("{s:s,s:O}", "type", "text", "text", json_object_get(blk, "text")));
        } else if (type && user && (!strcmp(type, "document") || !strcmp(type, "search_result"))) { /* as text */
            json_t *text = document_text(blk, type, field, e);
            if (!text) {
                ok = false;
                break;
            }
            json_array_append_new(parts, json_pack("{s:s,s:o}", "type", "text", "text", text));
        } else if (type && user && !strcmp(type, "tool_result")) { /* a tool message (before the user's text) */
            const json_t *id = json_object_get(blk, "tool_use_id"), *c = json_object_get(blk, "content");
            json_t *text = !c ? json_string("") : blocks_text(c, field, e);
            if (!json_is_string(id) || !text) {
                if (text) sl_api_set_error(e, 400, "messages", "'%s.tool_use_id' must be a string", field);
                json_decref(text);
                ok = false;
                break;
            }
            json_array_append_new(msgs, json_pack("{s:s,s:O,s:o}", "role", "tool", "tool_call_id", id, "content", text));
        } else if (type && !user && !strcmp(type, "tool_use")) {
            const json_t *id = json_object_get(blk, "id"), *name = json_object_get(blk, "name"),
                         *input = json_object_get(blk, "input");
            char *args = json_is_object(input) ? json_dumps(input, JSON_COMPACT) : NULL;
            if (!json_is_string(id) || !json_is_string(name) || !args) {
                free(args);
                sl_api_set_error(e, 400, "messages", "'%s' must have a string id and name and an object input", field);
                ok = false;
                break;
            }
            json_array_append_new(calls, json_pack("{s:O,s:s,s:{s:O,s:s}}", "id", id, "type", "function", "function",
                                                   "name", name, "arguments", args));
            free(args);
        } else if (type && !user && !strcmp(type, "thinking")) { /* the assistant's earlier thinking, for templates */
            const json_t *t = json_object_get(blk, "thinking");
            if (json_is_string(t)) sl_strbuf_add(&thinking, json_string_value(t), json_string_length(t));
        } else if (type && !user && !strcmp(type, "redacted_thinking")) {
            /* (encrypted by another server: nothing to read) */
        } else {
            sl_api_set_error(e, 400, "messages", "'%s': blocks of type '%s' are not supported (text, document, "
                             "search_result, tool_use, tool_result and thinking are)", field, type ? type : "(none)");
            ok = false;
            break;
        }
    }
    if (ok && user && json_array_size(parts) > 0) {
        json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", "user", "content", parts));
    } else if (ok && !user && (json_array_size(parts) > 0 || json_array_size(calls) > 0 || thinking.n > 0)) {
        json_t *am = json_pack("{s:s}", "role", "assistant");
        sl_strbuf text = {0};
        json_array_foreach(parts, i, blk) {
            const json_t *t = json_object_get(blk, "text");
            sl_strbuf_add(&text, json_string_value(t), json_string_length(t));
        }
        json_object_set_new(am, "content", text.n || !json_array_size(calls) ? json_stringn(text.p ? text.p : "", text.n)
                                                                             : json_null());
        if (json_array_size(calls)) json_object_set(am, "tool_calls", calls);
        if (thinking.n) json_object_set_new(am, "reasoning_content", json_stringn(thinking.p, thinking.n));
        json_array_append_new(msgs, am);
        free(text.p);
    }
    free(thinking.p);
    json_decref(parts);
    json_decref(calls);
    return ok;
}

static json_t *to_chat(const json_t *req, bool count, sl_api_error *e) {
    if (!json_is_object(req)) {
        sl_api_set_error(e, 400, NULL, "the body must be a JSON object");
        return NULL;
    }
    for (size_t i = 0; REFUSED[i]; i++) {
        const json_t *v = json_object_get(req, REFUSED[i]);
        if (v && !json_is_null(v)) {
            sl_api_set_error(e, 400, REFUSED[i], "'%s' is not supported by this server", REFUSED[i]);
            return NULL;
        }
    }
    const json_t *mt = json_object_get(req, "max_tokens");
    if (json_is_integer(mt) && json_integer_value(mt) < 1) { /* (chat's -1, llama.cpp's no limit, is not Anthropic's) */
        sl_api_set_error(e, 400, "max_tokens", "'max_tokens' is %lld; it must be at least 1", (long long)json_integer_value(mt));
        return NULL;
    }
    if (!count && !json_object_get(req, "max_tokens")) {
        sl_api_set_error(e, 400, "max_tokens", "'max_tokens' is required");
        return NULL;
    }
    const json_t *messages = json_object_get(req, "messages");
    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        sl_api_set_error(e, 400, "messages", "'messages' must be a non-empty array");
        return NULL;
    }
    json_t *chat = json_object(), *msgs = json_array();
    static const char *const SAME[] = {"model", "max_tokens", "temperature", "top_p", "top_k", "stream", NULL};
    for (size_t i = 0; SAME[i]; i++) {
        json_t *v = json_object_get(req, SAME[i]);
        if (v) json_object_set(chat, SAME[i], v);
    }
    const json_t *sys = json_object_get(req, "system");
    if (sys && !json_is_null(sys)) {
        json_t *t = blocks_text(sys, "system", e);
        if (!t) {
            if (e->status) snprintf(e->param, sizeof e->param, "system");
            goto fail;
        }
        json_array_append_new(msgs, json_pack("{s:s,s:o}", "role", "system", "content", t));
    }
    size_t i;
    const json_t *m;
    json_array_foreach(messages, i, m)
        if (!message(m, i, msgs, e)) goto fail;
    json_object_set_new(chat, "messages", msgs);
    msgs = NULL;
    const json_t *stop = json_object_get(req, "stop_sequences");
    if (stop && !json_is_null(stop)) json_object_set(chat, "stop", (json_t *)stop);
    const json_t *tools = json_object_get(req, "tools");
    if (tools && !json_is_null(tools)) {
        if (!json_is_array(tools)) {
            sl_api_set_error(e, 400, "tools", "'tools' must be an array");
            goto fail;
        }
        json_t *ct = json_array();
        const json_t *t;
        json_array_foreach(tools, i, t) {
            const char *type = json_string_value(json_object_get(t, "type"));
            const json_t *name = json_object_get(t, "name"), *schema = json_object_get(t, "input_schema");
            if (type && strcmp(type, "custom")) {
                json_decref(ct);
                sl_api_set_error(e, 400, "tools", "'tools[%zu]': server tools ('%s') are not supported; client tools "
                                 "(name, description, input_schema) are", i, type);
                goto fail;
            }
            if (!json_is_string(name) || !json_is_object(schema)) {
                json_decref(ct);
                sl_api_set_error(e, 400, "tools", "'tools[%zu]' needs a string name and an object input_schema", i);
                goto fail;
            }
            json_t *fn = json_pack("{s:O,s:O}", "name", name, "parameters", schema);
            const json_t *d = json_object_get(t, "description");
            if (json_is_string(d)) json_object_set(fn, "description", (json_t *)d);
            json_array_append_new(ct, json_pack("{s:s,s:o}", "type", "function", "function", fn));
        }
        json_object_set_new(chat, "tools", ct);
    }
    const json_t *tc = json_object_get(req, "tool_choice");
    if (tc && !json_is_null(tc)) {
        const char *type = json_string_value(json_object_get(tc, "type"));
        const json_t *name = json_object_get(tc, "name");
        if (type && !strcmp(type, "auto")) json_object_set_new(chat, "tool_choice", json_string("auto"));
        else if (type && !strcmp(type, "any")) json_object_set_new(chat, "tool_choice", json_string("required"));
        else if (type && !strcmp(type, "none")) json_object_set_new(chat, "tool_choice", json_string("none"));
        else if (type && !strcmp(type, "tool") && json_is_string(name))
            json_object_set_new(chat, "tool_choice", json_pack("{s:s,s:{s:O}}", "type", "function", "function", "name", name));
        else {
            sl_api_set_error(e, 400, "tool_choice", "'tool_choice' must be {\"type\": \"auto\" | \"any\" | \"none\"} or "
                             "{\"type\": \"tool\", \"name\": ...}");
            goto fail;
        }
        if (json_is_true(json_object_get(tc, "disable_parallel_tool_use")))
            json_object_set_new(chat, "parallel_tool_calls", json_false());
    }
    const json_t *th = json_object_get(req, "thinking");
    if (th && !json_is_null(th)) { /* to templates that read enable_thinking */
        const char *type = json_string_value(json_object_get(th, "type"));
        if (!type || (strcmp(type, "enabled") && strcmp(type, "disabled"))) {
            sl_api_set_error(e, 400, "thinking", "'thinking.type' must be \"enabled\" or \"disabled\"");
            goto fail;
        }
        json_object_set_new(chat, "chat_template_kwargs", json_pack("{s:b}", "enable_thinking", !strcmp(type, "enabled")));
        const json_t *bt = json_object_get(th, "budget_tokens"); /* (enforced: the reasoning budget) */
        if (!strcmp(type, "enabled") && bt && !json_is_null(bt)) {
            if (!json_is_integer(bt) || json_integer_value(bt) < 0 || json_integer_value(bt) > INT32_MAX) {
                sl_api_set_error(e, 400, "thinking", "'thinking.budget_tokens' must be an integer >= 0");
                goto fail;
            }
            json_object_set(chat, "reasoning_budget_tokens", (json_t *)bt);
        }
    }
    const json_t *user = json_object_get(json_object_get(req, "metadata"), "user_id");
    if (json_is_string(user)) json_object_set(chat, "user", (json_t *)user);
    if (json_is_true(json_object_get(req, "stream")))
        json_object_set_new(chat, "stream_options", json_pack("{s:b}", "include_usage", 1));
    return chat;
fail:
    json_decref(msgs);
    json_decref(chat);
    return NULL;
}

char *sl_anth_chat_body(const char *body, size_t n, bool count, json_t **req, sl_api_error *e) {
    *req = NULL;
    memset(e, 0, sizeof *e);
    json_t *r = sl_api_load_body(body, n, e);
    if (!r) return NULL;
    char *text = sl_api_chat_text(to_chat(r, count, e), e);
    if (!text) json_decref(r);
    else *req = r;
    return text;
}

const char *sl_anth_param(const char *p) {
    if (!strcmp(p, "stop")) return "stop_sequences";
    if (!strcmp(p, "max_completion_tokens")) return "max_tokens";
    if (!strcmp(p, "chat_template_kwargs")) return "thinking";
    return p;
}

char *sl_anth_error_json(const sl_api_error *e) {
    const char *type = e->status == 401   ? "authentication_error"
                       : e->status == 404 ? "not_found_error"
                       : e->status == 413 ? "request_too_large"
                       : e->status == 529 ? "overloaded_error"
                       : e->status >= 500 ? "api_error"
                                          : "invalid_request_error";
    char msg[sizeof e->message + sizeof e->param + 8];
    if (e->param[0] && !strstr(e->message, e->param)) snprintf(msg, sizeof msg, "%s: %s", e->param, e->message);
    else snprintf(msg, sizeof msg, "%s", e->message);
    json_t *o = json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type", type, "message", msg);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* ---- answer: chat → message ---------------------------------------------------------------- */

/* "chatcmpl-HEX" → "msg_HEX" */
static void msg_id(char *out, size_t cap, const char *chat_id) {
    const char *hex = chat_id ? strchr(chat_id, '-') : NULL;
    snprintf(out, cap, "msg_%s", hex ? hex + 1 : chat_id ? chat_id : "0");
}

/* tools: the answer calls tools (a call forced by tool_choice ends with chat's "stop", as OpenAI has it). */
static const char *stop_reason(const char *finish, const json_t *stop_word, bool tools) {
    if (tools || (finish && !strcmp(finish, "tool_calls"))) return "tool_use";
    if (finish && !strcmp(finish, "length")) return "max_tokens";
    if (json_is_string(stop_word)) return "stop_sequence";
    return "end_turn";
}

/* Anthropic's usage from the chat usage: input_tokens are those not read from the cache. */
static json_t *usage_of(const json_t *u) {
    const json_int_t p = json_integer_value(json_object_get(u, "prompt_tokens")),
                     c = json_integer_value(json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens"));
    return json_pack("{s:I,s:I,s:I,s:I}", "input_tokens", p - c, "output_tokens",
                     json_integer_value(json_object_get(u, "completion_tokens")), "cache_read_input_tokens", c,
                     "cache_creation_input_tokens", (json_int_t)0);
}

static json_t *tool_use_block(const json_t *call) {
    return json_pack("{s:s,s:O,s:O,s:o}", "type", "tool_use", "id", json_object_get(call, "id"), "name",
                     json_object_get(json_object_get(call, "function"), "name"), "input", sl_tool_call_args(call));
}

json_t *sl_anth_from_chat(const json_t *chat, const json_t *req) {
    const json_t *ch = json_array_get(json_object_get(chat, "choices"), 0), *msg = json_object_get(ch, "message");
    json_t *content = json_array();
    const json_t *r = json_object_get(msg, "reasoning_content"), *c = json_object_get(msg, "content");
    if (json_is_string(r) && json_string_length(r))
        json_array_append_new(content, json_pack("{s:s,s:O,s:s}", "type", "thinking", "thinking", r, "signature", ""));
    if (json_is_string(c) && json_string_length(c))
        json_array_append_new(content, json_pack("{s:s,s:O}", "type", "text", "text", c));
    size_t i;
    const json_t *call;
    json_array_foreach(json_object_get(msg, "tool_calls"), i, call) json_array_append_new(content, tool_use_block(call));
    const json_t *sw = json_object_get(ch, "stop_reason");
    char id[96];
    msg_id(id, sizeof id, json_string_value(json_object_get(chat, "id")));
    const json_t *model = json_object_get(req, "model");
    return json_pack("{s:s,s:s,s:s,s:O,s:o,s:s,s:O,s:o}", "id", id, "type", "message", "role", "assistant", "model",
                     json_is_string(model) ? model : json_object_get(chat, "model"), "content", content, "stop_reason",
                     stop_reason(json_string_value(json_object_get(ch, "finish_reason")), sw,
                                 json_array_size(json_object_get(msg, "tool_calls")) > 0),
                     "stop_sequence",
                     json_is_string(sw) ? sw : json_null(), "usage", usage_of(json_object_get(chat, "usage")));
}

/* ---- streamed ------------------------------------------------------------------------------ */

enum { B_NONE, B_TEXT, B_THINKING, B_TOOL };

struct sl_anth_stream {
    int block;      /* the open block's kind (B_NONE: none) */
    int call;       /* ... the chat tool call it is (B_TOOL) */
    int next;       /* the next block's index */
    char *finish;
    json_t *stop_word;
    bool called; /* a tool_use block was opened */
    bool ended;
};

static void ev(sl_strbuf *out, const char *type, json_t *o) {
    json_object_set_new(o, "type", json_string(type));
    sl_sse_event(out, type, o);
}

sl_anth_stream *sl_anth_stream_new(const json_t *req, const char *chat_id, const char *model, long long input_tokens,
                                   sl_strbuf *out) {
    sl_anth_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->call = -1;
    char id[96];
    msg_id(id, sizeof id, chat_id);
    const json_t *m = json_object_get(req, "model");
    ev(out, "message_start",
       json_pack("{s:{s:s,s:s,s:s,s:s,s:[],s:n,s:n,s:{s:I,s:i}}}", "message", "id", id, "type", "message", "role",
                 "assistant", "model", json_is_string(m) ? json_string_value(m) : model, "content", "stop_reason",
                 "stop_sequence", "usage", "input_tokens", (json_int_t)input_tokens, "output_tokens", 0));
    return s;
}

void sl_anth_stream_free(sl_anth_stream *s) {
    if (!s) return;
    free(s->finish);
    json_decref(s->stop_word);
    free(s);
}

static void close_block(sl_anth_stream *s, sl_strbuf *out) {
    if (s->block == B_NONE) return;
    ev(out, "content_block_stop", json_pack("{s:i}", "index", s->next - 1));
    s->block = B_NONE;
    s->call = -1;
}

/* The open block is of kind k (tool call `call`), opened with content_block `cb` (taken) when it is not. */
static void open_block(sl_anth_stream *s, sl_strbuf *out, int k, int call, json_t *cb) {
    if (s->block == k && s->call == call) {
        json_decref(cb);
        return;
    }
    close_block(s, out);
    ev(out, "content_block_start", json_pack("{s:i,s:o}", "index", s->next++, "content_block", cb));
    s->block = k;
    s->call = call;
}

static void delta(sl_anth_stream *s, sl_strbuf *out, json_t *d) {
    ev(out, "content_block_delta", json_pack("{s:i,s:o}", "index", s->next - 1, "delta", d));
}

void sl_anth_stream_chunk(sl_anth_stream *s, const json_t *chunk, sl_strbuf *out) {
    if (s->ended) return;
    const json_t *err = json_object_get(chunk, "error");
    if (err) {
        const char *m = json_string_value(json_object_get(err, "message"));
        ev(out, "error", json_pack("{s:{s:s,s:s}}", "error", "type", "api_error", "message", m ? m : "generation failed"));
        s->ended = true;
        return;
    }
    const json_t *choices = json_object_get(chunk, "choices");
    if (json_array_size(choices) == 0) { /* the usage chunk: the stream's end */
        close_block(s, out);
        const json_t *u = json_object_get(chunk, "usage");
        ev(out, "message_delta", json_pack("{s:{s:s,s:O},s:o}", "delta", "stop_reason", stop_reason(s->finish, s->stop_word, s->called),
                                           "stop_sequence", s->stop_word ? s->stop_word : json_null(), "usage", usage_of(u)));
        ev(out, "message_stop", json_object());
        s->ended = true;
        return;
    }
    const json_t *ch = json_array_get(choices, 0), *d = json_object_get(ch, "delta");
    const json_t *r = json_object_get(d, "reasoning_content"), *c = json_object_get(d, "content");
    if (json_is_string(r) && json_string_length(r)) {
        open_block(s, out, B_THINKING, -1, json_pack("{s:s,s:s,s:s}", "type", "thinking", "thinking", "", "signature", ""));
        delta(s, out, json_pack("{s:s,s:O}", "type", "thinking_delta", "thinking", r));
    }
    if (json_is_string(c) && json_string_length(c)) {
        open_block(s, out, B_TEXT, -1, json_pack("{s:s,s:s}", "type", "text", "text", ""));
        delta(s, out, json_pack("{s:s,s:O}", "type", "text_delta", "text", c));
    }
    size_t i;
    const json_t *tc;
    json_array_foreach(json_object_get(d, "tool_calls"), i, tc) {
        const int k = (int)json_integer_value(json_object_get(tc, "index"));
        const json_t *fn = json_object_get(tc, "function"), *args = json_object_get(fn, "arguments");
        s->called = true;
        if (s->block != B_TOOL || s->call != k) {
            const json_t *id = json_object_get(tc, "id"), *name = json_object_get(fn, "name");
            open_block(s, out, B_TOOL, k,
                       json_pack("{s:s,s:s,s:s,s:{}}", "type", "tool_use", "id", json_string_value(id) ?: "",
                                 "name", json_string_value(name) ?: "", "input"));
        }
        if (json_is_string(args) && json_string_length(args))
            delta(s, out, json_pack("{s:s,s:O}", "type", "input_json_delta", "partial_json", args));
    }
    const json_t *fin = json_object_get(ch, "finish_reason");
    if (json_is_string(fin)) {
        free(s->finish);
        s->finish = strdup(json_string_value(fin));
        const json_t *sw = json_object_get(ch, "stop_reason");
        if (json_is_string(sw)) {
            json_decref(s->stop_word);
            s->stop_word = json_incref((json_t *)sw);
        }
    }
}

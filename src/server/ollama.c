/*
 * ollama.c — Ollama's native API on the chat and completions paths (see ollama.h).
 */
#include "ollama.h"

#include "server/toolcall.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double sl_ollama_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Now as Ollama writes created_at: RFC 3339 in UTC with nanoseconds. */
static json_t *created_at(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char b[64];
    const size_t n = strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(b + n, sizeof b - n, ".%09ldZ", (long)ts.tv_nsec);
    return json_string(b);
}

/* The model as the request names it (answers echo it). */
static const char *req_model(const json_t *req) {
    const char *m = json_string_value(json_object_get(req, "model"));
    return m ? m : "";
}

static bool given(const json_t *o, const char *k) {
    const json_t *v = json_object_get(o, k);
    return v && !json_is_null(v);
}

/* ---- request: Ollama → OpenAI --------------------------------------------------------- */

bool sl_ollama_load_only(const json_t *req, bool generate) {
    if (generate) {
        const json_t *p = json_object_get(req, "prompt"), *s = json_object_get(req, "suffix");
        return (!p || json_is_null(p) || (json_is_string(p) && json_string_length(p) == 0)) &&
               !(json_is_string(s) && json_string_length(s) > 0);
    }
    const json_t *m = json_object_get(req, "messages");
    return !m || json_is_null(m) || (json_is_array(m) && json_array_size(m) == 0);
}

json_t *sl_ollama_load_answer(const json_t *req, bool generate) {
    json_t *o = json_pack("{s:s,s:o}", "model", req_model(req), "created_at", created_at());
    if (generate) json_object_set_new(o, "response", json_string(""));
    else json_object_set_new(o, "message", json_pack("{s:s,s:s}", "role", "assistant", "content", ""));
    json_object_set_new(o, "done", json_true());
    json_object_set_new(o, "done_reason", json_string("load"));
    return o;
}

/* Options that are sampling parameters under the same (llama.cpp's) names in the OpenAI request. */
static const char *const SAME_OPTS[] = {"temperature", "top_p", "top_k", "min_p", "typical_p", "repeat_penalty",
                                        "repeat_last_n", "presence_penalty", "frequency_penalty", "mirostat",
                                        "mirostat_tau", "mirostat_eta", NULL};

/* Ollama's documented defaults (api/types.go's DefaultOptions) for the options a request leaves out. */
static const struct {
    const char *name;
    double v;
    bool integer;
} DEFAULTS[] = {{"temperature", 0.8, false}, {"top_k", 40, true}, {"top_p", 0.9, false}, {"repeat_penalty", 1.1, false}};

/* options → the OpenAI request o; false with e set. Options about loading the model (num_ctx, num_gpu,
 * num_thread, use_mmap, ...) are the server's to set and are ignored, as Ollama ignores unknown ones. */
static bool options(const json_t *opts, json_t *o, sl_api_error *e) {
    if (opts && !json_is_null(opts) && !json_is_object(opts)) {
        sl_api_set_error(e, 400, "options", "'options' must be an object");
        return false;
    }
    for (size_t i = 0; SAME_OPTS[i]; i++) {
        json_t *v = json_object_get(opts, SAME_OPTS[i]);
        if (v && !json_is_null(v)) json_object_set(o, SAME_OPTS[i], v);
    }
    for (size_t i = 0; i < sizeof DEFAULTS / sizeof DEFAULTS[0]; i++)
        if (!json_object_get(o, DEFAULTS[i].name))
            json_object_set_new(o, DEFAULTS[i].name, DEFAULTS[i].integer ? json_integer((json_int_t)DEFAULTS[i].v)
                                                                          : json_real(DEFAULTS[i].v));
    const json_t *seed = json_object_get(opts, "seed");
    if (seed && !json_is_null(seed)) {
        if (!json_is_integer(seed)) {
            sl_api_set_error(e, 400, "options.seed", "'options.seed' must be an integer");
            return false;
        }
        if (json_integer_value(seed) != -1) json_object_set(o, "seed", (json_t *)seed); /* (-1: a fresh one) */
    }
    const json_t *np = json_object_get(opts, "num_predict");
    if (np && !json_is_null(np)) {
        if (!json_is_integer(np)) {
            sl_api_set_error(e, 400, "options.num_predict", "'options.num_predict' must be an integer");
            return false;
        }
        if (json_integer_value(np) >= 0) json_object_set(o, "max_tokens", (json_t *)np); /* (-1, -2: to the context's end) */
    }
    const json_t *stop = json_object_get(opts, "stop");
    if (json_is_string(stop)) json_object_set_new(o, "stop", json_pack("[O]", stop));
    else if (json_is_array(stop)) json_object_set(o, "stop", (json_t *)stop);
    else if (stop && !json_is_null(stop)) {
        sl_api_set_error(e, 400, "options.stop", "'options.stop' must be a string or an array of strings");
        return false;
    }
    return true;
}

/* format, think, logprobs, stream → the OpenAI request o of kind chat (else completions). */
static bool common(const json_t *req, bool chat, json_t *o, sl_api_error *e) {
    const json_t *f = json_object_get(req, "format");
    if (json_is_string(f) && !strcmp(json_string_value(f), "json")) {
        json_object_set_new(o, "response_format", json_pack("{s:s}", "type", "json_object"));
    } else if (json_is_object(f)) {
        json_object_set_new(o, "response_format", json_pack("{s:s,s:{s:s,s:O,s:b}}", "type", "json_schema", "json_schema",
                                                            "name", "format", "schema", f, "strict", 1));
    } else if (f && !json_is_null(f) && !(json_is_string(f) && json_string_length(f) == 0)) {
        sl_api_set_error(e, 400, "format", "'format' must be \"json\" or a JSON schema (an object)");
        return false;
    }
    const json_t *think = json_object_get(req, "think");
    if (think && !json_is_null(think)) {
        const char *level = json_string_value(think);
        if (!json_is_boolean(think) &&
            !(level && (!strcmp(level, "low") || !strcmp(level, "medium") || !strcmp(level, "high")))) {
            sl_api_set_error(e, 400, "think", "'think' must be true, false, \"low\", \"medium\" or \"high\"");
            return false;
        }
        if (chat) {
            json_object_set_new(o, "chat_template_kwargs", json_pack("{s:b}", "enable_thinking", !json_is_false(think)));
            if (level) json_object_set(o, "reasoning_effort", (json_t *)think);
        }
    }
    const json_t *lp = json_object_get(req, "logprobs"), *top = json_object_get(req, "top_logprobs");
    if ((lp && !json_is_null(lp) && !json_is_boolean(lp)) ||
        (top && !json_is_null(top) && (!json_is_integer(top) || json_integer_value(top) < 0))) {
        sl_api_set_error(e, 400, json_is_boolean(lp) || !lp ? "top_logprobs" : "logprobs",
                         "'logprobs' must be true or false and 'top_logprobs' an integer >= 0");
        return false;
    }
    if (json_is_true(lp) || (json_is_integer(top) && json_integer_value(top) > 0)) {
        const json_int_t n = json_is_integer(top) ? json_integer_value(top) : 0;
        if (chat) {
            json_object_set_new(o, "logprobs", json_true());
            json_object_set_new(o, "top_logprobs", json_integer(n));
        } else {
            json_object_set_new(o, "logprobs", json_integer(n));
        }
    }
    const json_t *st = json_object_get(req, "stream");
    if (st && !json_is_null(st) && !json_is_boolean(st)) {
        sl_api_set_error(e, 400, "stream", "'stream' must be true or false");
        return false;
    }
    const bool stream = !json_is_false(st); /* (Ollama streams unless told not to) */
    json_object_set_new(o, "stream", json_boolean(stream));
    if (stream) json_object_set_new(o, "stream_options", json_pack("{s:b}", "include_usage", 1));
    return true;
}

json_t *sl_ollama_model(const json_t *req) {
    const json_t *m = json_object_get(req, "model");
    const char *s = json_string_value(m);
    const size_t n = s ? strlen(s) : 0;
    if (s && n > 7 && !strcmp(s + n - 7, ":latest")) return json_stringn(s, n - 7);
    return json_incref((json_t *)m);
}

/* An assistant message's tool calls in OpenAI's form (arguments a JSON string); their ids (given, or made)
 * pushed on pending with their names, for the tool messages that answer them. */
static json_t *tool_calls(const json_t *calls, size_t idx, json_t *pending, sl_api_error *e) {
    if (!json_is_array(calls)) {
        sl_api_set_error(e, 400, "messages", "'messages[%zu].tool_calls' must be an array", idx);
        return NULL;
    }
    json_t *out = json_array();
    size_t j;
    const json_t *c;
    json_array_foreach(calls, j, c) {
        const json_t *fn = json_object_get(c, "function"), *name = json_object_get(fn, "name"),
                     *args = json_object_get(fn, "arguments");
        char *text = json_is_string(args)             ? strdup(json_string_value(args))
                     : json_is_object(args)           ? json_dumps(args, JSON_COMPACT)
                     : !args || json_is_null(args)    ? strdup("{}")
                                                      : NULL;
        if (!json_is_string(name) || !text) {
            free(text);
            json_decref(out);
            sl_api_set_error(e, 400, "messages", "'messages[%zu].tool_calls[%zu]' needs function.name (a string) and "
                             "function.arguments (an object)", idx, j);
            return NULL;
        }
        char made[48];
        snprintf(made, sizeof made, "call_%zu_%zu", idx, j);
        const char *id = json_string_value(json_object_get(c, "id")) ? json_string_value(json_object_get(c, "id")) : made;
        json_array_append_new(out, json_pack("{s:s,s:s,s:{s:O,s:s}}", "id", id, "type", "function", "function", "name",
                                             name, "arguments", text));
        json_array_append_new(pending, json_pack("{s:s,s:O}", "id", id, "name", name));
        free(text);
    }
    return out;
}

/* The id of the call a tool message answers: the first one pending of its name (tool_name), else the first
 * pending (taken off pending); NULL when none is. */
static json_t *answered_call(json_t *pending, const char *name) {
    size_t i;
    json_t *p;
    json_array_foreach(pending, i, p) {
        if (name && strcmp(json_string_value(json_object_get(p, "name")) ?: "", name)) continue;
        json_t *id = json_incref(json_object_get(p, "id"));
        json_array_remove(pending, i);
        return id;
    }
    return name ? answered_call(pending, NULL) : NULL;
}

static bool message(const json_t *m, size_t idx, json_t *msgs, json_t *pending, sl_api_error *e) {
    const char *role = json_string_value(json_object_get(m, "role"));
    if (!json_is_object(m) || !role ||
        (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant") && strcmp(role, "tool"))) {
        sl_api_set_error(e, 400, "messages", "'messages[%zu].role' must be \"system\", \"user\", \"assistant\" or \"tool\"",
                         idx);
        return false;
    }
    const json_t *content = json_object_get(m, "content"), *images = json_object_get(m, "images");
    if (content && !json_is_null(content) && !json_is_string(content)) {
        sl_api_set_error(e, 400, "messages", "'messages[%zu].content' must be a string", idx);
        return false;
    }
    if (json_array_size(images) > 0) {
        sl_api_set_error(e, 400, "messages", "'messages[%zu].images': this server's models read text only", idx);
        return false;
    }
    json_t *om = json_pack("{s:s,s:s}", "role", role, "content", json_string_value(content) ?: "");
    if (!strcmp(role, "assistant")) {
        const json_t *th = json_object_get(m, "thinking"), *calls = json_object_get(m, "tool_calls");
        if (json_is_string(th) && json_string_length(th)) json_object_set(om, "reasoning_content", (json_t *)th);
        if (calls && !json_is_null(calls)) {
            json_array_clear(pending); /* (calls not answered before this message: none will be) */
            json_t *tc = tool_calls(calls, idx, pending, e);
            if (!tc) {
                json_decref(om);
                return false;
            }
            if (json_array_size(tc)) json_object_set_new(om, "tool_calls", tc);
            else json_decref(tc);
        }
    } else if (!strcmp(role, "tool")) {
        const char *name = json_string_value(json_object_get(m, "tool_name"));
        if (!name) name = json_string_value(json_object_get(m, "name"));
        if (name) json_object_set_new(om, "name", json_string(name));
        json_t *id = answered_call(pending, name);
        if (id) json_object_set_new(om, "tool_call_id", id);
    }
    json_array_append_new(msgs, om);
    return true;
}

/* A generate request's fields that this server refuses; false with e set. */
static bool generate_refusals(const json_t *req, sl_api_error *e) {
    if (json_array_size(json_object_get(req, "images")) > 0) {
        sl_api_set_error(e, 400, "images", "'images': this server's models read text only");
        return false;
    }
    const json_t *t = json_object_get(req, "template");
    if (json_is_string(t) && json_string_length(t)) {
        sl_api_set_error(e, 400, "template", "'template': Go templates are not supported; the model's chat template "
                         "renders the prompt (or send \"raw\": true with the whole prompt)");
        return false;
    }
    if (json_array_size(json_object_get(req, "context")) > 0) {
        sl_api_set_error(e, 400, "context", "'context' (deprecated by Ollama) is not supported: send the conversation "
                         "as messages to /api/chat");
        return false;
    }
    static const char *const STR[] = {"prompt", "system", "suffix", NULL};
    for (size_t i = 0; STR[i]; i++)
        if (given(req, STR[i]) && !json_is_string(json_object_get(req, STR[i]))) {
            sl_api_set_error(e, 400, STR[i], "'%s' must be a string", STR[i]);
            return false;
        }
    if (given(req, "raw") && !json_is_boolean(json_object_get(req, "raw"))) {
        sl_api_set_error(e, 400, "raw", "'raw' must be true or false");
        return false;
    }
    return true;
}

char *sl_ollama_openai_body(const json_t *req, bool generate, sl_api_kind *kind, sl_api_error *e) {
    memset(e, 0, sizeof *e);
    if (!json_is_string(json_object_get(req, "model"))) {
        sl_api_set_error(e, 400, "model", "'model' is required (a string)");
        return NULL;
    }
    json_t *o = json_object();
    json_object_set_new(o, "model", sl_ollama_model(req));
    *kind = SL_API_CHAT;
    if (generate) {
        if (!generate_refusals(req, e)) goto fail;
        const json_t *prompt = json_object_get(req, "prompt"), *suffix = json_object_get(req, "suffix");
        if (json_is_true(json_object_get(req, "raw")) || json_string_length(suffix) > 0) {
            *kind = SL_API_COMPLETIONS; /* (the prompt as it is; with a suffix, filled in the middle) */
            json_object_set_new(o, "prompt", json_string(json_string_value(prompt) ?: ""));
            if (json_string_length(suffix) > 0) json_object_set(o, "suffix", (json_t *)suffix);
        } else { /* the model's template around the system text and the prompt, as Ollama's generate has it */
            json_t *msgs = json_array();
            const json_t *sys = json_object_get(req, "system");
            if (json_string_length(sys) > 0) json_array_append_new(msgs, json_pack("{s:s,s:O}", "role", "system", "content", sys));
            json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user", "content", json_string_value(prompt) ?: ""));
            json_object_set_new(o, "messages", msgs);
        }
    } else {
        const json_t *messages = json_object_get(req, "messages");
        if (!json_is_array(messages)) {
            sl_api_set_error(e, 400, "messages", "'messages' must be an array");
            goto fail;
        }
        json_t *msgs = json_array(), *pending = json_array();
        size_t i;
        const json_t *m;
        bool ok = true;
        json_array_foreach(messages, i, m) if (ok) ok = message(m, i, msgs, pending, e);
        json_decref(pending);
        json_object_set_new(o, "messages", msgs);
        if (!ok) goto fail;
        const json_t *tools = json_object_get(req, "tools");
        if (tools && !json_is_null(tools)) {
            if (!json_is_array(tools)) {
                sl_api_set_error(e, 400, "tools", "'tools' must be an array");
                goto fail;
            }
            if (json_array_size(tools)) json_object_set(o, "tools", (json_t *)tools); /* (OpenAI's form already) */
        }
    }
    if (!options(json_object_get(req, "options"), o, e) || !common(req, *kind == SL_API_CHAT, o, e)) goto fail;
    return sl_api_chat_text(o, e);
fail:
    json_decref(o);
    return NULL;
}

const char *sl_ollama_param(const char *p, bool generate) {
    static const char *const MAP[][2] = {
        {"max_tokens", "options.num_predict"}, {"max_completion_tokens", "options.num_predict"},
        {"stop", "options.stop"}, {"seed", "options.seed"}, {"response_format", "format"},
        {"chat_template_kwargs", "think"}, {"reasoning_effort", "think"}, {"repetition_penalty", "options.repeat_penalty"},
        {"temperature", "options.temperature"}, {"top_p", "options.top_p"}, {"top_k", "options.top_k"},
        {"min_p", "options.min_p"}, {"typical_p", "options.typical_p"}, {"repeat_penalty", "options.repeat_penalty"},
        {"repeat_last_n", "options.repeat_last_n"}, {"presence_penalty", "options.presence_penalty"},
        {"frequency_penalty", "options.frequency_penalty"}, {"mirostat", "options.mirostat"},
        {"mirostat_tau", "options.mirostat_tau"}, {"mirostat_eta", "options.mirostat_eta"}};
    for (size_t i = 0; i < sizeof MAP / sizeof MAP[0]; i++)
        if (!strcmp(p, MAP[i][0])) return MAP[i][1];
    if (generate && !strcmp(p, "messages")) return "prompt";
    return p;
}

char *sl_ollama_error_json(const sl_api_error *e) {
    char msg[sizeof e->message + sizeof e->param + 8];
    if (e->param[0] && !strstr(e->message, e->param)) snprintf(msg, sizeof msg, "%s: %s", e->param, e->message);
    else snprintf(msg, sizeof msg, "%s", e->message);
    json_t *o = json_pack("{s:s}", "error", msg);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

/* ---- answer: OpenAI → Ollama ------------------------------------------------------------ */

/* Ollama's done_reason for an OpenAI finish_reason: "length" where the limit cut it, else "stop" (a stop, a
 * tool call, an abort). */
static const char *done_reason(const char *finish) { return finish && !strcmp(finish, "length") ? "length" : "stop"; }

/* The counts and durations of a finished answer into o; timings: llama.cpp's of the OpenAI answer (its
 * prompt_ms and predicted_ms), read where t has no first token, or NULL. */
static void stats(json_t *o, const json_t *usage, const sl_ollama_times *t, const json_t *timings) {
    const double first = t->t_first > 0 ? t->t_first : t->t_end;
    const json_int_t total = (json_int_t)((t->t_end - t->t0) * 1e9);
    json_int_t prompt = (json_int_t)((first - t->t0) * 1e9), eval = (json_int_t)((t->t_end - first) * 1e9);
    if (t->t_first <= 0 && json_is_number(json_object_get(timings, "predicted_ms"))) { /* (the engine measured them) */
        prompt = (json_int_t)(json_number_value(json_object_get(timings, "prompt_ms")) * 1e6);
        eval = (json_int_t)(json_number_value(json_object_get(timings, "predicted_ms")) * 1e6);
    }
    json_object_set_new(o, "total_duration", json_integer(total > 0 ? total : 0));
    json_object_set_new(o, "load_duration", json_integer(0)); /* (the model is loaded before the server serves) */
    json_object_set_new(o, "prompt_eval_count", json_integer(json_integer_value(json_object_get(usage, "prompt_tokens"))));
    json_object_set_new(o, "prompt_eval_duration", json_integer(prompt > 0 ? prompt : 0));
    json_object_set_new(o, "eval_count", json_integer(json_integer_value(json_object_get(usage, "completion_tokens"))));
    json_object_set_new(o, "eval_duration", json_integer(eval > 0 ? eval : 0));
}

/* OpenAI's tool calls ([{id, function: {name, arguments: text}}]) in Ollama's form: arguments an object. */
static json_t *ollama_calls(const json_t *calls) {
    json_t *out = json_array();
    size_t i;
    const json_t *c;
    json_array_foreach(calls, i, c) {
        const json_t *fn = json_object_get(c, "function");
        json_t *f = json_pack("{s:i,s:s,s:o}", "index", (int)i, "name", json_string_value(json_object_get(fn, "name")) ?: "",
                              "arguments", sl_tool_call_args(c));
        json_t *call = json_pack("{s:o}", "function", f);
        if (json_is_string(json_object_get(c, "id"))) json_object_set(call, "id", json_object_get(c, "id"));
        json_array_append_new(out, call);
    }
    return out;
}

/* Ollama's logprobs ([{token, logprob, bytes, top_logprobs: [...]}]) of OpenAI's: a chat choice's
 * ({content: [...]}, the same entries) or a completion's ({tokens, token_logprobs, top_logprobs: [{token:
 * logprob}]}). NULL when there are none. */
static json_t *ollama_logprobs(const json_t *lp) {
    if (!json_is_object(lp)) return NULL;
    const json_t *content = json_object_get(lp, "content");
    if (json_is_array(content)) return json_deep_copy(content);
    const json_t *toks = json_object_get(lp, "tokens");
    if (!json_is_array(toks)) return NULL;
    json_t *out = json_array();
    size_t i;
    const json_t *t;
    json_array_foreach(toks, i, t) {
        json_t *top = json_array();
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)json_array_get(json_object_get(lp, "top_logprobs"), i), k, v)
            json_array_append_new(top, json_pack("{s:s,s:O}", "token", k, "logprob", v));
        json_t *l = json_array_get(json_object_get(lp, "token_logprobs"), i);
        json_array_append_new(out, json_pack("{s:O,s:O,s:o}", "token", t, "logprob", l ? l : json_null(), "top_logprobs", top));
    }
    return out;
}

/* A line's base: model, created_at and the message (chat) or response (generate) text, not done. */
static json_t *line(const json_t *req, bool generate, const char *text, size_t n, const char *thinking, size_t nt) {
    json_t *o = json_pack("{s:s,s:o}", "model", req_model(req), "created_at", created_at());
    if (generate) {
        json_object_set_new(o, "response", json_stringn(text ? text : "", text ? n : 0));
        if (thinking && nt) json_object_set_new(o, "thinking", json_stringn(thinking, nt));
    } else {
        json_t *m = json_pack("{s:s,s:s%}", "role", "assistant", "content", text ? text : "", text ? n : 0);
        if (thinking && nt) json_object_set_new(m, "thinking", json_stringn(thinking, nt));
        json_object_set_new(o, "message", m);
    }
    json_object_set_new(o, "done", json_false());
    return o;
}

json_t *sl_ollama_from_openai(const json_t *oa, const json_t *req, bool generate, const sl_ollama_times *t) {
    const json_t *ch = json_array_get(json_object_get(oa, "choices"), 0), *msg = json_object_get(ch, "message");
    const json_t *text = msg ? json_object_get(msg, "content") : json_object_get(ch, "text"),
                 *th = json_object_get(msg, "reasoning_content");
    json_t *o = line(req, generate, json_string_value(text), json_string_length(text), json_string_value(th),
                     json_string_length(th));
    const json_t *calls = json_object_get(msg, "tool_calls");
    if (!generate && json_array_size(calls))
        json_object_set_new(json_object_get(o, "message"), "tool_calls", ollama_calls(calls));
    json_t *lp = ollama_logprobs(json_object_get(ch, "logprobs"));
    if (lp) json_object_set_new(o, "logprobs", lp);
    json_object_set_new(o, "done", json_true());
    json_object_set_new(o, "done_reason", json_string(done_reason(json_string_value(json_object_get(ch, "finish_reason")))));
    stats(o, json_object_get(oa, "usage"), t, json_object_get(oa, "timings"));
    return o;
}

/* ---- streamed ---------------------------------------------------------------------------------- */

struct sl_ollama_stream {
    json_t *req;
    bool generate;
    double t0, t_first;
    json_t *calls;  /* the tool calls so far: [{id, function: {name, arguments: text}}], by their index */
    char *finish;
    bool ended;
};

sl_ollama_stream *sl_ollama_stream_new(const json_t *req, bool generate, double t0) {
    sl_ollama_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->req = json_incref((json_t *)req);
    s->generate = generate;
    s->t0 = t0;
    s->calls = json_array();
    return s;
}

void sl_ollama_stream_free(sl_ollama_stream *s) {
    if (!s) return;
    json_decref(s->req);
    json_decref(s->calls);
    free(s->finish);
    free(s);
}

/* One line (o taken): its JSON and a newline. */
static void put(sl_strbuf *out, json_t *o) {
    char *t = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!t) return;
    sl_strbuf_add(out, t, strlen(t));
    sl_strbuf_add(out, "\n", 1);
    free(t);
}

/* A tool call's delta (index, id, function: {name, arguments: the next bytes}) added to the calls so far. */
static void add_call(sl_ollama_stream *s, const json_t *tc) {
    const size_t k = (size_t)json_integer_value(json_object_get(tc, "index"));
    while (json_array_size(s->calls) <= k && k < 1024)
        json_array_append_new(s->calls, json_pack("{s:s,s:{s:s,s:s}}", "id", "", "function", "name", "", "arguments", ""));
    json_t *c = json_array_get(s->calls, k), *fn = json_object_get(c, "function");
    if (!c) return;
    const json_t *d = json_object_get(tc, "function"), *id = json_object_get(tc, "id"), *name = json_object_get(d, "name"),
                 *args = json_object_get(d, "arguments");
    if (json_is_string(id)) json_object_set(c, "id", (json_t *)id);
    if (json_is_string(name)) json_object_set(fn, "name", (json_t *)name);
    if (json_is_string(args)) {
        sl_strbuf b = {0};
        const json_t *had = json_object_get(fn, "arguments");
        sl_strbuf_add(&b, json_string_value(had), json_string_length(had));
        sl_strbuf_add(&b, json_string_value(args), json_string_length(args));
        json_object_set_new(fn, "arguments", json_stringn(b.p ? b.p : "", b.n));
        free(b.p);
    }
}

void sl_ollama_stream_chunk(sl_ollama_stream *s, const json_t *chunk, sl_strbuf *out) {
    if (s->ended) return;
    const json_t *err = json_object_get(chunk, "error");
    if (err) {
        const char *m = json_string_value(json_object_get(err, "message"));
        put(out, json_pack("{s:s}", "error", m ? m : "generation failed"));
        s->ended = true;
        return;
    }
    const json_t *choices = json_object_get(chunk, "choices");
    if (json_array_size(choices) == 0) { /* the usage chunk: the stream's end */
        if (json_array_size(s->calls)) { /* the calls, whole, before the end (as Ollama sends them) */
            json_t *o = line(s->req, s->generate, "", 0, NULL, 0);
            if (!s->generate) json_object_set_new(json_object_get(o, "message"), "tool_calls", ollama_calls(s->calls));
            put(out, o);
        }
        json_t *o = line(s->req, s->generate, "", 0, NULL, 0);
        json_object_set_new(o, "done", json_true());
        json_object_set_new(o, "done_reason", json_string(done_reason(s->finish)));
        const sl_ollama_times t = {.t0 = s->t0, .t_first = s->t_first, .t_end = sl_ollama_now()};
        stats(o, json_object_get(chunk, "usage"), &t, NULL);
        put(out, o);
        s->ended = true;
        return;
    }
    const json_t *ch = json_array_get(choices, 0), *d = json_object_get(ch, "delta");
    const json_t *text = d ? json_object_get(d, "content") : json_object_get(ch, "text"),
                 *th = json_object_get(d, "reasoning_content");
    size_t i;
    const json_t *tc;
    json_array_foreach(json_object_get(d, "tool_calls"), i, tc) add_call(s, tc);
    const size_t n = json_string_length(text), nt = json_string_length(th);
    if (n || nt || json_array_size(s->calls)) {
        if (s->t_first <= 0) s->t_first = sl_ollama_now();
    }
    json_t *lp = ollama_logprobs(json_object_get(ch, "logprobs"));
    if (n || nt || json_array_size(lp)) {
        json_t *o = line(s->req, s->generate, json_string_value(text), n, json_string_value(th), nt);
        if (lp) json_object_set(o, "logprobs", lp);
        put(out, o);
    }
    json_decref(lp);
    const json_t *fin = json_object_get(ch, "finish_reason");
    if (json_is_string(fin)) {
        free(s->finish);
        s->finish = strdup(json_string_value(fin));
    }
}

/* ---- embeddings ----------------------------------------------------------------------------------- */

char *sl_ollama_embed_body(const json_t *req, bool legacy, sl_api_error *e) {
    memset(e, 0, sizeof *e);
    if (!json_is_string(json_object_get(req, "model"))) {
        sl_api_set_error(e, 400, "model", "'model' is required (a string)");
        return NULL;
    }
    const char *field = legacy ? "prompt" : "input";
    const json_t *in = json_object_get(req, field);
    bool ok = json_is_string(in) || json_is_array(in);
    size_t i;
    const json_t *x;
    json_array_foreach(in, i, x) ok &= json_is_string(x);
    if (!ok || (legacy && !json_is_string(in))) {
        sl_api_set_error(e, 400, field, legacy ? "'prompt' must be a string" : "'input' must be a string or an array of strings");
        return NULL;
    }
    const json_t *tr = json_object_get(req, "truncate"), *dim = json_object_get(req, "dimensions");
    if (tr && !json_is_null(tr) && !json_is_boolean(tr)) {
        sl_api_set_error(e, 400, "truncate", "'truncate' must be true or false");
        return NULL;
    }
    json_t *o = json_pack("{s:o,s:O,s:s,s:b}", "model", sl_ollama_model(req), "input", in, "encoding_format", "float",
                          "normalize", !legacy); /* (/api/embed's are unit vectors; the legacy endpoint's are not) */
    if (!legacy && !json_is_false(tr)) /* (Ollama cuts inputs to the context unless told not to) */
        json_object_set_new(o, "truncate_prompt_tokens", json_integer(-1));
    if (dim && !json_is_null(dim)) json_object_set(o, "dimensions", (json_t *)dim);
    return sl_api_chat_text(o, e);
}

json_t *sl_ollama_embed_answer(const json_t *req, bool legacy, const float *const *vecs, int32_t n, int32_t dim,
                               int64_t prompt_tokens, double t0) {
    if (legacy) return json_pack("{s:o}", "embedding", sl_api_floats_json(vecs[0], dim));
    json_t *a = json_array();
    for (int32_t i = 0; i < n; i++) json_array_append_new(a, sl_api_floats_json(vecs[i], dim));
    const json_int_t total = (json_int_t)((sl_ollama_now() - t0) * 1e9);
    return json_pack("{s:s,s:o,s:I,s:I,s:I}", "model", req_model(req), "embeddings", a, "total_duration",
                     total > 0 ? total : 0, "load_duration", (json_int_t)0, "prompt_eval_count", (json_int_t)prompt_tokens);
}

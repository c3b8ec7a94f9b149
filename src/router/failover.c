/*
 * failover.c — continuation requests and stream rewriting (see failover.h).
 */
#include "failover.h"

#include "core/alloc.h"
#include "core/status.h"

#include <stdlib.h>
#include <string.h>

sl_status sl_fo_parse_ids(const char *s, size_t n, int32_t **ids, int32_t *count, int32_t *cap) {
    size_t i = 0;
    while (i < n) {
        while (i < n && s[i] == ' ') i++;
        if (i == n) break;
        bool neg = false;
        if (s[i] == '-') {
            neg = true;
            i++;
        }
        int64_t x = 0;
        size_t d = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9' && d < 11) {
            x = x * 10 + (s[i++] - '0');
            d++;
        }
        if (d == 0 || d == 11 || (i < n && s[i] != ' ') || neg || x > INT32_MAX)
            return SL_FAIL(SL_ERR_PROTO, "token id list: bad id at byte %zu of '%.*s'", i, n < 40 ? (int)n : 40, s);
        if (*count == *cap) {
            int32_t nc = *cap ? *cap * 2 : 256;
            if (nc > (1 << 24)) return SL_FAIL(SL_ERR_PROTO, "token id list: more than %d ids", 1 << 24);
            int32_t *p = sl_realloc(*ids, sizeof(int32_t) * (size_t)nc);
            if (!p) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
            *ids = p;
            *cap = nc;
        }
        (*ids)[(*count)++] = (int32_t)x;
    }
    return SL_OK;
}

bool sl_fo_add_seed(json_t *body, uint64_t seed) {
    json_t *s = json_object_get(body, "seed");
    if (s && !json_is_null(s)) return false;
    json_object_set_new(body, "seed", json_integer((json_int_t)(seed >> 2)));
    return true;
}

json_t *sl_fo_choice_body(const json_t *orig, int k, int per) {
    if (per < 1 || k < 0) {
        SL_FAIL(SL_ERR_INVALID, "choice %d of %d per prompt", k, per);
        return NULL;
    }
    const int j = k % per, p = k / per;
    json_t *b = json_deep_copy(orig);
    if (!json_is_object(b)) {
        json_decref(b);
        SL_FAIL(SL_ERR_NOMEM, "continuation: out of memory");
        return NULL;
    }
    json_object_del(b, "n");
    json_t *s = json_object_get(b, "seed");
    if (json_is_integer(s)) {
        const json_int_t v = json_integer_value(s);
        if (v > INT64_MAX - j) {
            json_decref(b);
            SL_FAIL(SL_ERR_RANGE, "choice %d: its seed (%lld + %d) is past the largest", k, (long long)v, j);
            return NULL;
        }
        json_object_set_new(b, "seed", json_integer(v + j));
    }
    /* several prompts: a list of strings or of id lists (a list of ids is one prompt) */
    json_t *pr = json_object_get(b, "prompt");
    if (json_is_array(pr) && json_array_size(pr) > 0 && !json_is_integer(json_array_get(pr, 0))) {
        json_t *one = json_array_get(pr, (size_t)p);
        if (!one) {
            json_decref(b);
            SL_FAIL(SL_ERR_RANGE, "choice %d: the request has no prompt %d", k, p);
            return NULL;
        }
        json_object_set_new(b, "prompt", json_incref(one));
    }
    return b;
}

char *sl_fo_usage_totals(const char *data, size_t n, int64_t prompt_tokens, int64_t completion_tokens) {
    json_t *o = json_loadb(data, n, 0, NULL);
    json_t *u = json_object_get(o, "usage");
    if (!json_is_object(u)) {
        json_decref(o);
        return NULL;
    }
    json_object_set_new(u, "prompt_tokens", json_integer(prompt_tokens));
    json_object_set_new(u, "completion_tokens", json_integer(completion_tokens));
    json_object_set_new(u, "total_tokens", json_integer(prompt_tokens + completion_tokens));
    json_t *d = json_object_get(u, "prompt_tokens_details"), *cached = json_object_get(d, "cached_tokens");
    if (json_is_integer(cached) && json_integer_value(cached) > prompt_tokens)
        json_object_set_new(d, "cached_tokens", json_integer(prompt_tokens));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* The original body with the prompt + generated ids in *ids and the length limit reduced by n_gen
 * (resumable: the engine can still release what the first one held back when none is left). */
static sl_status continuation_base(const json_t *orig, const int32_t *prompt, int32_t n_prompt, const int32_t *gen,
                                   int32_t n_gen, bool resumable, json_t **body, json_t **ids) {
    json_t *b = json_deep_copy(orig);
    *ids = json_array();
    *body = b;
    if (!b || !*ids || !json_is_object(b)) return SL_FAIL(SL_ERR_NOMEM, "continuation: out of memory");
    for (int32_t i = 0; i < n_prompt; i++) json_array_append_new(*ids, json_integer(prompt[i]));
    for (int32_t i = 0; i < n_gen; i++) json_array_append_new(*ids, json_integer(gen[i]));
    /* the length limit: what is left of it */
    const char *mt = NULL;
    json_t *mv = NULL;
    static const char *const limits[] = {"max_completion_tokens", "max_tokens", "n_predict"}; /* (n_predict: llama.cpp's) */
    for (size_t k = 0; k < 3 && !mt; k++) /* the first given, as the engine reads them */
        if ((mv = json_object_get(b, limits[k])) && !json_is_null(mv)) mt = limits[k];
    if (mt && json_is_integer(mv) && json_integer_value(mv) == -1) mt = NULL; /* -1 (llama.cpp's): no limit, still */
    /* the ids are the prompt as the engine kept it: cutting it again would cut the output streamed so far */
    json_object_del(b, "truncate_prompt_tokens");
    if (mt) {
        if (!json_is_integer(mv) && !json_is_real(mv))
            return SL_FAIL(SL_ERR_INVALID, "continuation: '%s' is not a number", mt);
        /* the engine refuses more than 2^31 anyway: clamp before any arithmetic (a real may not fit an integer) */
        const double lim = 2147483648.0;
        const double want = json_is_integer(mv) ? (double)json_integer_value(mv) : json_real_value(mv);
        const json_int_t left = (json_int_t)(want < -lim ? -lim : want > lim ? lim : want) - n_gen;
        /* all of them streamed: an engine that knows what was sent can still release the text the failed one
         * held back (max_tokens 0 with shardlm_resume); without that there is nothing to continue */
        if (left < 0 || (left == 0 && !(n_gen > 0 && resumable)))
            return SL_FAIL(SL_ERR_RANGE, "continuation: the %d tokens streamed used up %s", n_gen, mt);
        json_object_del(b, "max_completion_tokens");
        json_object_del(b, "n_predict");
        json_object_set_new(b, "max_tokens", json_integer(left));
    }
    return SL_OK;
}

sl_status sl_fo_chat_continuation(const json_t *orig, const int32_t *prompt, int32_t n_prompt, const int32_t *gen,
                                  int32_t n_gen, const sl_fo_stream *fs, char **out) {
    *out = NULL;
    json_t *b = NULL, *ids = NULL;
    sl_status st = continuation_base(orig, prompt, n_prompt, gen, n_gen, true, &b, &ids);
    if (st == SL_OK) {
        json_object_set_new(b, "stream", json_true());
        json_object_del(b, "echo"); /* (the client has it) */
        json_object_set_new(b, "shardlm_resume",
                            json_pack("{s:O,s:i,s:I,s:I,s:I,s:b}", "ids", ids, "generated", n_gen, "content_sent",
                                      (json_int_t)fs->text_sent, "reasoning_sent", (json_int_t)fs->reasoning_sent,
                                      "args_sent", (json_int_t)fs->args_sent, "call_started", fs->call_started));
        if (!(*out = json_dumps(b, JSON_COMPACT))) st = SL_FAIL(SL_ERR_NOMEM, "continuation: out of memory");
    }
    json_decref(ids);
    json_decref(b);
    return st;
}

sl_status sl_fo_continuation(const json_t *orig, sl_fo_kind kind, const int32_t *prompt, int32_t n_prompt,
                             const int32_t *gen, int32_t n_gen, int64_t text_sent, char **out) {
    *out = NULL;
    json_t *b = NULL, *ids = NULL;
    sl_status st = continuation_base(orig, prompt, n_prompt, gen, n_gen, text_sent >= 0, &b, &ids);
    if (st != SL_OK) goto fail;
    if (kind == SL_FO_CHAT) {
        bool lp = json_is_true(json_object_get(b, "logprobs"));
        json_t *top = json_object_get(b, "top_logprobs");
        json_int_t k = json_is_integer(top) ? json_integer_value(top) : 0;
        json_object_del(b, "logprobs");
        json_object_del(b, "top_logprobs");
        if (lp) json_object_set_new(b, "logprobs", json_integer(k));
        /* response_format stays: completions follow it too, replaying the output through the recognizer
         * (a chat answer split into parts continues as chat instead: sl_fo_chat_continuation) */
        static const char *chat_only[] = {"messages", "tools", "tool_choice", "parallel_tool_calls", "functions",
                                          "function_call", "chat_template", "chat_template_kwargs",
                                          "add_generation_prompt", "continue_final_message"};
        for (size_t i = 0; i < sizeof chat_only / sizeof chat_only[0]; i++) json_object_del(b, chat_only[i]);
    }
    json_object_del(b, "echo");
    json_object_del(b, "suffix"); /* (fill in the middle: the ids are its prompt as the engine built it) */
    json_object_del(b, "input_prefix");
    json_object_del(b, "input_suffix");
    json_object_del(b, "input_extra");
    json_object_del(b, "best_of");
    json_object_set(b, "prompt", ids);
    json_object_set_new(b, "stream", json_true());
    if (n_gen > 0 && text_sent >= 0)
        json_object_set_new(b, "shardlm_resume", json_pack("{s:i,s:I}", "generated", n_gen, "text_sent", (json_int_t)text_sent));
    *out = json_dumps(b, JSON_COMPACT);
    if (!*out) st = SL_FAIL(SL_ERR_NOMEM, "continuation: out of memory");
fail:
    json_decref(ids);
    json_decref(b);
    return st;
}

void sl_fo_learn(sl_fo_stream *fs, const char *data, size_t n) {
    if (fs->learned) return;
    json_t *o = json_loadb(data, n, 0, NULL);
    if (json_is_object(o)) {
        json_t *id = json_object_get(o, "id"), *cr = json_object_get(o, "created");
        if (json_is_string(id)) snprintf(fs->id, sizeof fs->id, "%s", json_string_value(id));
        if (json_is_integer(cr)) fs->created = json_integer_value(cr);
        fs->learned = json_is_string(id);
    }
    json_decref(o);
}

void sl_fo_count_text(sl_fo_stream *fs, const char *data, size_t n) {
    json_t *o = json_loadb(data, n, 0, NULL);
    json_t *c0 = json_array_get(json_object_get(o, "choices"), 0);
    json_t *t = json_object_get(c0, "text");
    json_t *delta = json_object_get(c0, "delta");
    if (!t) t = json_object_get(delta, "content");
    json_t *r = json_object_get(delta, "reasoning_content");
    if (json_is_string(r)) fs->reasoning_sent += json_string_length(r);
    size_t i;
    json_t *tc;
    json_array_foreach(json_object_get(delta, "tool_calls"), i, tc) {
        json_t *a = json_object_get(json_object_get(tc, "function"), "arguments");
        fs->call_started = true;
        if (json_is_string(a)) fs->args_sent += json_string_length(a);
    }
    /* the echoed prompt (or chat's echoed message, after the role chunk's empty content): not output */
    if (json_is_string(t) && fs->echo_pending && (fs->kind != SL_FO_CHAT || json_string_length(t) > 0)) {
        fs->echo_pending = false;
        fs->echo_bytes = json_string_length(t);
    } else if (json_is_string(t)) {
        fs->text_sent += json_string_length(t);
    }
    json_decref(o);
}

/* Completions logprobs → chat logprobs ({"content": [{token, logprob, bytes, top_logprobs}]}). */
static json_t *bytes_of(const char *s, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer((unsigned char)s[i]));
    return a;
}

static json_t *chat_logprobs(json_t *lp) {
    if (!json_is_object(lp)) return json_null();
    json_t *toks = json_object_get(lp, "tokens"), *lps = json_object_get(lp, "token_logprobs"),
           *tops = json_object_get(lp, "top_logprobs");
    json_t *content = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(toks, i, t) {
        if (!json_is_string(t)) continue;
        json_t *e = json_object();
        json_object_set(e, "token", t);
        json_t *l = json_array_get(lps, i);
        json_object_set_new(e, "logprob", l ? json_copy(l) : json_null());
        json_object_set_new(e, "bytes", bytes_of(json_string_value(t), json_string_length(t)));
        json_t *top = json_array(), *src = json_array_get(tops, i);
        const char *k;
        json_t *v;
        json_object_foreach(src, k, v) {
            json_array_append_new(
                top, json_pack("{s:s,s:O,s:o}", "token", k, "logprob", v, "bytes", bytes_of(k, strlen(k))));
        }
        json_object_set_new(e, "top_logprobs", top);
        json_array_append_new(content, e);
    }
    return json_pack("{s:o}", "content", content);
}

char *sl_fo_rewrite(const sl_fo_stream *fs, const char *data, size_t n) {
    json_t *o = json_loadb(data, n, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return NULL;
    }
    if (fs->learned) {
        json_object_set_new(o, "id", json_string(fs->id));
        json_object_set_new(o, "created", json_integer(fs->created));
    }
    json_t *usage = json_object_get(o, "usage");
    if (json_is_object(usage)) {
        json_t *pt = json_object_get(usage, "prompt_tokens"), *ct = json_object_get(usage, "completion_tokens");
        if (json_is_integer(pt) && json_is_integer(ct)) {
            json_int_t p = json_integer_value(pt) - fs->n_gen_before, c = json_integer_value(ct) + fs->n_gen_before;
            if (p < 0) p = 0;
            json_object_set_new(usage, "prompt_tokens", json_integer(p));
            json_object_set_new(usage, "completion_tokens", json_integer(c));
            json_t *d = json_object_get(usage, "prompt_tokens_details");
            json_t *cached = json_object_get(d, "cached_tokens");
            if (json_is_integer(cached) && json_integer_value(cached) > p)
                json_object_set_new(d, "cached_tokens", json_integer(p));
        }
    }
    json_t *choices = json_object_get(o, "choices");
    size_t i;
    json_t *c;
    json_array_foreach(choices, i, c) { /* (a continuation's one choice is the one it continues) */
        if (json_is_object(c) && json_object_get(c, "index")) json_object_set_new(c, "index", json_integer(fs->index));
    }
    json_array_foreach(fs->chat_native ? NULL : choices, i, c) { /* a chat continuation's chunks are chat's */
        json_t *lp = json_object_get(c, "logprobs");
        if (fs->kind == SL_FO_COMPLETIONS) {
            json_t *offs = json_object_get(lp, "text_offset");
            size_t k;
            json_t *off;
            json_array_foreach(offs, k, off) {
                if (json_is_integer(off))
                    json_array_set_new(offs, k, json_integer(json_integer_value(off) + (json_int_t)fs->text_before));
            }
            continue;
        }
        /* a chat choice in the engine's key order: index, delta, logprobs, finish_reason */
        json_t *text = json_object_get(c, "text");
        json_t *fin = json_object_get(c, "finish_reason");
        json_t *delta = json_object();
        if (json_is_string(text) && (json_string_length(text) > 0 || !fin || json_is_null(fin)))
            json_object_set(delta, "content", text);
        json_t *nc = json_object();
        json_t *idx = json_object_get(c, "index");
        json_object_set_new(nc, "index", idx ? json_copy(idx) : json_integer((json_int_t)i));
        json_object_set_new(nc, "delta", delta);
        json_object_set_new(nc, "logprobs", chat_logprobs(lp));
        json_object_set_new(nc, "finish_reason", fin ? json_copy(fin) : json_null());
        json_array_set_new(choices, i, nc);
    }
    if (fs->kind == SL_FO_CHAT) json_object_set_new(o, "object", json_string("chat.completion.chunk"));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

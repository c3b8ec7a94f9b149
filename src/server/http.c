/*
 * http.c — libmicrohttpd glue for the OpenAI API (see http.h).
 */
#include "http.h"

#include "core/alloc.h"
#include "core/pool.h"
#include "core/status.h"
#include "core/filewatch.h"
#include "core/strbuf.h"
#include "engine/embed.h"
#include "model/model.h"
#include "server/harmony.h"
#include "server/llamacpp.h"
#include "server/responses.h"
#include "server/anthropic.h"
#include "server/ollama.h"
#include "server/beam.h"
#include "server/kimi3.h"
#include "server/reasoning.h"
#include "server/rerank.h"
#include "server/cors.h"
#include "server/apikeys.h"
#include "server/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_SLICE_MS 50

struct sl_http {
    sl_http_cfg cfg;
    sl_api_ctx api;
    sl_sched *sched;
    sl_metrics *metrics;
    struct MHD_Daemon *d;
    int port;
    atomic_bool ready;
    atomic_bool draining;
    _Atomic int in_flight;
    sl_api_keys keys; /* --api-key, --api-key-file (none: no check) */
    char *tls_key, *tls_cert; /* HTTPS: the PEM texts, kept while the daemon runs */
    char *tls_trust;          /* ... and the CA of the client certificates it requires (--ssl-ca-certs), or NULL */
    /* --enable-ssl-refresh: the key and certificate handed to each handshake (the ones before kept for the
     * sessions that may still use them), the files watched, all under tls_mu */
    struct tls_cred *cred;
    sl_filewatch tls_watch;
    pthread_mutex_t tls_mu;
    /* --ssl-ca-certs: what client certificates are checked against (reloaded with --enable-ssl-refresh when
     * the file changes; under tls_mu) */
    gnutls_x509_trust_list_t trust;
    sl_filewatch ca_watch;
    long long started; /* the model's "created": when this server started serving it */
    sl_resp_store *store; /* responses kept for previous_response_id and GET /v1/responses/{id}, or NULL */
    /* background responses running (their gens, bg_next-linked), and a signal when one ends */
    pthread_mutex_t bg_mu;
    pthread_cond_t bg_cv;
    struct gen *bg;
};

typedef struct conn {
    sl_http *h;
    double t0;        /* arrival (monotonic seconds), for the access log */
    char method[8];
    char path[96];
    bool gen;         /* a generation took the request: it writes the access log line itself */
    char *body;
    size_t n, cap;
    bool too_big;
    int status;
    bool anthropic; /* /v1/messages: errors in Anthropic's form */
    bool ollama;    /* /api/...: errors in Ollama's form */
} conn;

/* One choice of a generation: a request and what of its output was sent. */
typedef struct choice {
    sl_req *req;
    size_t text_sent;
    int32_t toks_sent;
    bool role_sent, fin_sent;
    char *echo;             /* completions' echo: the prompt's text, sent before the output; NULL: no echo */
    size_t n_echo;
    bool echo_sent;
    bool chat_echo_sent;    /* chat: vLLM's echo (gen's chat_echo) went out */
    bool first;             /* the first choice of its prompt: its prompt tokens count in usage */
    /* chat with tools or thinking, streamed: the whole answer so far, how much of it went out as
     * content and as thinking, and whether a forced call's first delta (id, name) went out */
    sl_strbuf answer;
    size_t released, released_r; /* bytes of the content and of the thinking sent (of answer_parts' parts) */
    bool call_sent;
    /* vLLM's return_token_ids, streamed: output ids not yet in a chunk, and whether the prompt's went out */
    json_t *ids_pending;
    bool prompt_ids_sent;
    /* tool calls streamed as they come (stream_calls): how many have begun, the bytes of the last one's
     * arguments sent, and a resumed stream's argument bytes the client has that are not counted yet */
    int n_calls;
    size_t args_sent;
    int64_t resume_args;
    bool seeded; /* a resumed stream's parts sent by the other engine are counted in released / released_r */
} choice;

/* A generation being answered: n choices per prompt. */
typedef struct gen {
    sl_http *h;
    struct gen *bg_next;    /* a background response: the next in h->bg */
    char bg_id[96];         /* ... its response id */
    atomic_bool bg_cancel;  /* ... cancelled by POST /v1/responses/{id}/cancel */
    struct MHD_Connection *mc;
    sl_api_kind kind;
    bool stream, include_usage;
    char id[160];
    bool return_ids;        /* vLLM's return_token_ids: prompt_token_ids and each choice's token_ids */
    bool continuous_usage;  /* vLLM's continuous_usage_stats: each chunk's usage so far */
    bool access_log;        /* write its access log line when it ends (method, path, arrival from its conn) */
    double t0;
    char method[8], path[96];
    long long created;
    int n;
    choice *ch;
    bool done;
    sl_strbuf pending; /* SSE bytes not yet taken by the connection, from off on */
    size_t off;
    bool token_ids;         /* X-Shardlm-Token-Ids: ids as SSE comments (see token_ids_begin) */
    bool tokens_as_ids;     /* logprobs name tokens "token_id:ID" (return_tokens_as_token_ids) */
    sl_api_tools tools;     /* chat's tool calling (tools.tools: a reference) */
    bool think, think_open; /* chat: the answer's thinking goes to reasoning_content (the prompt opened it) */
    sl_think_tags think_tags;
    bool harmony;           /* chat: the answer is in the harmony format (gpt-oss), split by harmony.c */
    bool kimi3;             /* chat: the answer is in Kimi K3's tags, split by kimi3.c */
    int64_t resume_content, resume_reasoning, resume_args; /* a resumed chat stream: the parts' bytes the client has */
    char *chat_echo;        /* chat: vLLM's echo, the text each choice's content starts with (sl_api_chat_echo), or NULL */
    bool llama;             /* POST /completion: llama.cpp's own answer ({"content", "stop", ...}) */
    bool llama_probs;       /* ... with n_probs: its completion_probabilities (logprobs named by token id) */
    json_t *llama_fields;   /* ... its response_fields (a reference), or NULL */
    json_t *resp_req;       /* POST /v1/responses: its request (the answer is a response object, server/responses.h) */
    sl_resp_stream *rs;     /* ... streamed: the chat chunks become its events */
    json_t *anth_req;       /* POST /v1/messages: its request (the answer is Anthropic's message, server/anthropic.h) */
    sl_anth_stream *as;     /* ... streamed: the chat chunks become its events */
    json_t *oll_req;        /* POST /api/chat, /api/generate: its request (the answer is Ollama's, server/ollama.h) */
    bool oll_generate;      /* ... /api/generate's */
    sl_ollama_stream *os;   /* ... streamed: the OpenAI chunks become its lines */
} gen;

/* The request an OpenAI one was made from, whose form the answer takes (none: the OpenAI one's own). */
typedef struct front {
    json_t *resp_req;  /* POST /v1/responses */
    json_t *anth_req;  /* POST /v1/messages */
    json_t *oll_req;   /* POST /api/chat, /api/generate (oll_generate) */
    bool oll_generate;
    bool llama;        /* POST /completion, /infill: llama.cpp's own answer */
} front;

/* ---- helpers ----------------------------------------------------------------- */

/* CORS: Access-Control-Allow-Origin on r where the request's Origin is allowed (server/cors.h). */
static void add_cors(struct MHD_Connection *c, conn *cx, struct MHD_Response *r) {
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    char allow[512];
    if (!cx || !origin || !sl_cors_allow_origin(cx->h->cfg.allowed_origins, origin, strlen(origin), allow, sizeof allow))
        return;
    MHD_add_response_header(r, "Access-Control-Allow-Origin", allow);
    if (strcmp(allow, "*")) MHD_add_response_header(r, "Vary", "Origin");
}

static enum MHD_Result reply(struct MHD_Connection *c, conn *cx, int status, const char *ctype, char *body_owned) {
    const char *b = body_owned ? body_owned : "";
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(b), (void *)b, MHD_RESPMEM_MUST_COPY);
    free(body_owned);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    add_cors(c, cx, r);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    cx->status = status;
    return ret;
}

static enum MHD_Result reply_json(struct MHD_Connection *c, conn *cx, int status, json_t *o) {
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return reply(c, cx, status, "application/json", s);
}

static enum MHD_Result reply_error(struct MHD_Connection *c, conn *cx, const sl_api_error *e) {
    return reply(c, cx, e->status, "application/json",
                 cx->anthropic ? sl_anth_error_json(e) : cx->ollama ? sl_ollama_error_json(e) : sl_api_error_json(e));
}

static enum MHD_Result reply_err(struct MHD_Connection *c, conn *cx, int status, const char *param, const char *msg) {
    sl_api_error e;
    sl_api_set_error(&e, status, param, "%s", msg);
    return reply_error(c, cx, &e);
}

static bool client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static bool authorized(sl_http *h, struct MHD_Connection *c) {
    if (h->keys.n == 0) return true;
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    const char *x = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-api-key"); /* (Anthropic's clients send it) */
    const char *key = a && !strncmp(a, "Bearer ", 7) ? a + 7 : x;
    return key && sl_api_keys_match(&h->keys, key, strlen(key)); /* (digests compared in constant time) */
}

/* The access log line of a generation: its path, id, tokens, finish and times. */
static void gen_log(const gen *g) {
    int64_t np = 0, nc = 0, cached = 0;
    double first = 0;
    const char *finish = "none";
    for (int i = 0; i < g->n; i++) {
        sl_req *r = g->ch[i].req;
        if (!r) continue;
        pthread_mutex_lock(&r->mu);
        if (g->ch[i].first) {
            np += r->n_prompt;
            cached += r->n_cached_prompt;
        }
        nc += r->n_out;
        if (i == 0) {
            first = r->t_first_token > 0 ? r->t_first_token - r->t_submit : 0;
            finish = r->finished ? sl_finish_reason_str(r->finish) : "unfinished";
        }
        pthread_mutex_unlock(&r->mu);
    }
    fprintf(stderr, "shardlm serve: %s %s %s prompt %lld (cached %lld) completion %lld, %s, first token %.1f ms, total %.1f ms\n",
            g->method, g->path, g->id, (long long)np, (long long)cached, (long long)nc, finish ? finish : "none",
            first * 1e3, (sl_sched_now_s() - g->t0) * 1e3);
}

static void gen_free(gen *g) {
    if (!g) return;
    if (g->access_log && g->id[0]) gen_log(g);
    for (int i = 0; i < g->n; i++) {
        sl_req_release(g->ch[i].req);
        sl_free(g->ch[i].echo);
        free(g->ch[i].answer.p);
        json_decref(g->ch[i].ids_pending);
    }
    json_decref(g->tools.tools);
    json_decref(g->resp_req);
    json_decref(g->anth_req);
    sl_anth_stream_free(g->as);
    json_decref(g->oll_req);
    sl_ollama_stream_free(g->os);
    json_decref(g->llama_fields);
    sl_free(g->chat_echo);
    sl_resp_stream_free(g->rs);
    free(g->ch);
    free(g->pending.p);
    atomic_fetch_sub(&g->h->in_flight, 1);
    free(g);
}

static void cancel_all(gen *g) {
    for (int i = 0; i < g->n; i++) sl_req_cancel(g->h->sched, g->ch[i].req);
}

static void pend(gen *g, const char *s, size_t n) { sl_strbuf_add(&g->pending, s, n); }

static void llama_event(gen *g, json_t *o);

/* One SSE event `data: JSON` of o (taken). */
static void pend_data(gen *g, json_t *o) { sl_sse_event(&g->pending, NULL, o); }

static void pend_event(gen *g, json_t *o) {
    if (g->llama) { /* llama.cpp's /completion: its events instead */
        llama_event(g, o);
        json_decref(o);
        return;
    }
    if (g->rs) { /* a Responses stream: its events instead */
        sl_resp_stream_chunk(g->rs, o, &g->pending);
        json_decref(o);
        return;
    }
    if (g->as) { /* an Anthropic stream: its events instead */
        sl_anth_stream_chunk(g->as, o, &g->pending);
        json_decref(o);
        return;
    }
    if (g->os) { /* an Ollama stream: its lines instead */
        sl_ollama_stream_chunk(g->os, o, &g->pending);
        json_decref(o);
        return;
    }
    pend_data(g, o);
}

/* The stop string that ended r's output, or NULL. */
static const char *stop_string(const sl_req *r) {
    return r->stop_word > 0 && r->stop_word <= r->p.n_stop ? r->p.stop[r->stop_word - 1] : NULL;
}

/* vLLM's stop_reason: that string, or null */
static json_t *stop_reason(const sl_req *r) { return stop_string(r) ? json_string(stop_string(r)) : json_null(); }

static json_t *chunk_base(gen *g) {
    return json_pack("{s:s,s:s,s:I,s:s}", "id", g->id, "object",
                     g->kind == SL_API_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)g->created, "model", g->h->api.model_id);
}

/* One SSE chunk of choice k: new text / tokens (logprobs: `lp`, taken), more fields of a chat delta
 * (`extra`, taken: reasoning_content, tool_calls; then no empty content) and maybe the finish reason. */
static json_t *llama_probs(gen *g, const json_t *lp);
static json_t *gen_usage(gen *g);

/* r's prompt ids (vLLM's prompt_token_ids) as a JSON array (the caller holds r's lock). */
static json_t *prompt_ids_locked(const sl_req *r) {
    json_t *a = json_array();
    for (int32_t i = 0; i < r->n_prompt; i++) json_array_append_new(a, json_integer(r->tokens[i]));
    return a;
}

static json_t *prompt_ids_json(sl_req *r) {
    pthread_mutex_lock(&r->mu);
    json_t *a = prompt_ids_locked(r);
    pthread_mutex_unlock(&r->mu);
    return a;
}

static void pend_delta(gen *g, int k, const char *text, size_t n_text, json_t *extra, json_t *lp, const char *finish) {
    choice *c = &g->ch[k];
    json_t *o = chunk_base(g), *ch = json_object();
    json_object_set_new(ch, "index", json_integer(k));
    if (g->kind == SL_API_CHAT) {
        json_t *delta = json_object();
        if (!c->role_sent) {
            json_object_set_new(delta, "role", json_string("assistant"));
            c->role_sent = true;
        }
        if (n_text || (!finish && !extra)) json_object_set_new(delta, "content", json_stringn(text, n_text));
        if (extra) json_object_update(delta, extra);
        json_decref(extra);
        json_object_set_new(ch, "delta", delta);
    } else {
        json_object_set_new(ch, "text", json_stringn(text, n_text));
    }
    json_object_set_new(ch, "logprobs", lp ? lp : json_null());
    if (g->return_ids) { /* the ids since the last chunk; the prompt's with the first (completions: per choice) */
        json_object_set_new(ch, "token_ids", c->ids_pending ? c->ids_pending : json_array());
        c->ids_pending = NULL;
        if (!c->prompt_ids_sent && c->req->p.resume_generated == 0) { /* (a resumed stream's client has them) */
            json_object_set_new(g->kind == SL_API_CHAT ? o : ch, "prompt_token_ids", prompt_ids_json(c->req));
            c->prompt_ids_sent = true;
        }
    }
    json_t *probs = g->llama_probs && !g->llama && n_text ? llama_probs(g, lp) : NULL; /* (for a router: its n_probs) */
    if (probs) json_object_set_new(ch, "completion_probabilities", probs);
    json_object_set_new(ch, "finish_reason", finish ? json_string(finish) : json_null());
    if (finish) json_object_set_new(ch, "stop_reason", stop_reason(c->req));
    json_object_set_new(o, "choices", json_pack("[o]", ch));
    if (g->include_usage || g->continuous_usage) json_object_set_new(o, "usage", g->continuous_usage ? gen_usage(g) : json_null());
    pend_event(g, o);
}

static void pend_chunk(gen *g, int k, const char *text, size_t n_text, json_t *lp, const char *finish) {
    pend_delta(g, k, text, n_text, NULL, lp, finish);
}

/* ---- tool calls ----------------------------------------------------------------
 * AUTO answers are parsed in the template's syntax, REQUIRED ones are the
 * guided {"NAME": arguments, ...} object, NAMED ones the guided arguments.
 * Streamed, the content before a call goes out as it comes
 * (sl_tool_content_safe), then each call's arguments as the answer fixes
 * them (sl_tool_parse_partial; harmony's and Kimi K3's calls whole at the
 * end); a forced function's arguments stream as they come. An answer whose
 * calls began to stream but that does not parse in the end (cut by
 * max_tokens, say) ends with its own finish reason and no more content, as
 * vLLM's streams do. Calls end the answer with
 * finish_reason "tool_calls", except a forced function's (OpenAI's
 * "stop" / "length"). */

/* The calls of an answer ([{"name", "arguments"}]), or NULL: the answer is content. */
static json_t *answer_calls(const gen *g, const char *text, size_t n, size_t *content_len) {
    *content_len = 0;
    switch (g->tools.choice) {
    case SL_TOOL_CHOICE_AUTO: return sl_tool_parse(g->tools.format, g->tools.tools, text, n, content_len);
    case SL_TOOL_CHOICE_REQUIRED: return sl_tool_parse_required(text, n);
    case SL_TOOL_CHOICE_NAMED:
        return json_pack("[{s:s,s:s%}]", "name", g->tools.name, "arguments", text ? text : "", text ? n : 0);
    case SL_TOOL_CHOICE_NONE: break;
    }
    return NULL;
}

/* OpenAI's tool_calls of parsed calls (the first only without parallel_tool_calls). */
static json_t *tool_calls_json(const gen *g, const json_t *calls) {
    json_t *out = json_array();
    size_t i;
    const json_t *c;
    json_array_foreach(calls, i, c) {
        if (i > 0 && !g->tools.parallel) break;
        char id[32];
        sl_tool_call_id(g->tools.format, id);
        json_t *o = json_pack("{s:s,s:s,s:{s:O,s:O}}", "id", id, "type", "function", "function", "name",
                              json_object_get(c, "name"), "arguments", json_object_get(c, "arguments"));
        json_array_append_new(out, o);
    }
    return out;
}

/* Deltas of the calls so far ([{"name", "arguments", "partial"?}]: sl_tool_parse_partial's, or the
 * finished answer's): a call's first delta (index, id, type, name, its arguments begun) once its
 * arguments have begun, then what they grow by. A resumed stream's client has resume_args bytes of
 * arguments: the first calls' heads and arguments up to there (another engine streamed the same
 * calls the same way, a call's head with its first bytes, a call after the one before it whole). */
static void stream_calls(gen *g, int k, const json_t *calls) {
    choice *c = &g->ch[k];
    size_t i;
    const json_t *call;
    json_array_foreach(calls, i, call) {
        if (i > 0 && !g->tools.parallel) break;
        if ((int)i < c->n_calls - 1) continue;
        const json_t *av = json_object_get(call, "arguments");
        const char *a = json_string_value(av);
        const size_t al = json_string_length(av);
        bool head = false;
        if ((int)i == c->n_calls) { /* a new call */
            if (al == 0) break;
            c->n_calls++;
            c->args_sent = 0;
            head = c->resume_args <= 0;
        }
        if (c->resume_args > 0 && al > c->args_sent) { /* the client has these */
            const size_t take = (size_t)c->resume_args < al - c->args_sent ? (size_t)c->resume_args : al - c->args_sent;
            c->args_sent += take;
            c->resume_args -= (int64_t)take;
        }
        if (al > c->args_sent) {
            json_t *d = json_pack("{s:i,s:{s:s%}}", "index", (int)i, "function", "arguments", a + c->args_sent,
                                  al - c->args_sent);
            if (head) {
                char id[32];
                sl_tool_call_id(g->tools.format, id);
                json_object_set_new(d, "id", json_string(id));
                json_object_set_new(d, "type", json_string("function"));
                json_object_set(json_object_get(d, "function"), "name", json_object_get(call, "name"));
            }
            pend_delta(g, k, "", 0, json_pack("{s:[o]}", "tool_calls", d), NULL, NULL);
            c->args_sent = al;
        }
        if (json_is_true(json_object_get(call, "partial"))) break;
    }
}

static const char *calls_finish(const gen *g, sl_finish_reason why) {
    return g->tools.choice == SL_TOOL_CHOICE_NAMED ? sl_finish_reason_str(why) : "tool_calls";
}

/* Whether the answer's format splits it into messages with calls of their own (harmony, Kimi K3). */
static bool messages(const gen *g) { return g->harmony || g->kimi3; }

/* Whether a chat answer is streamed through stream_parsed (its parts split or held back). */
static bool parsed(const gen *g) {
    return g->kind == SL_API_CHAT && (g->tools.choice != SL_TOOL_CHOICE_NONE || g->think || messages(g));
}

/* An answer's parts: the thinking and the content, and for harmony and Kimi K3 the calls its messages make. */
typedef struct parts {
    const char *r, *c;
    size_t nr, nc;
    json_t *calls; /* messages(): [{"name", "arguments"}] or NULL (owned) */
    sl_harmony h;  /* messages(): what r and c point into */
} parts;

/* An answer's parts (all content unless the request splits off thinking or the answer is in messages). */
static bool answer_parts(const gen *g, const char *text, size_t n, bool fin, parts *p) {
    memset(p, 0, sizeof *p);
    text = text ? text : "";
    if (messages(g)) {
        const bool calls = g->tools.choice == SL_TOOL_CHOICE_AUTO;
        if (g->harmony ? !sl_harmony_split(text, n, g->think, calls, fin, &p->h)
                       : !sl_kimi3_split(text, n, g->think_open, g->think, calls, g->tools.tools, fin, &p->h))
            return false;
        p->r = p->h.reasoning, p->nr = p->h.n_reasoning;
        p->c = p->h.content, p->nc = p->h.n_content;
        p->calls = p->h.calls;
        p->h.calls = NULL;
        return true;
    }
    const sl_think_split sp = g->think ? sl_think_split_text(g->think_tags, text, n, g->think_open, fin) : (sl_think_split){0, 0, 0, n};
    p->r = text + sp.r0, p->nr = sp.r1 - sp.r0;
    p->c = text + sp.c0, p->nc = sp.c1 - sp.c0;
    return true;
}

static void parts_free(parts *p) {
    json_decref(p->calls);
    sl_harmony_free(&p->h);
}

/* The calls of an answer's parts (taken), and in *content_len how much of the content stays content. */
static json_t *parts_calls(const gen *g, parts *p, size_t *content_len) {
    if (!messages(g) || g->tools.choice != SL_TOOL_CHOICE_AUTO) return answer_calls(g, p->c, p->nc, content_len);
    json_t *calls = p->calls;
    p->calls = NULL;
    *content_len = p->nc;
    return calls;
}

/* Streaming a chat answer with tools or thinking: the new text (n bytes, taken from the channel), its
 * tokens' logprobs (lp, taken); the thinking as reasoning_content deltas, the content as far as the
 * thinking and the tool syntax let it go; at the end (fin) the calls and the finish chunk. */
static void stream_parsed(gen *g, int k, const char *text, size_t n, json_t *lp, bool fin, sl_finish_reason why) {
    choice *c = &g->ch[k];
    if (g->tools.choice == SL_TOOL_CHOICE_NAMED) { /* the arguments as they come */
        if (n || lp || !c->call_sent || !c->role_sent) {
            json_t *d = json_pack("[{s:i,s:{s:s%}}]", "index", 0, "function", "arguments", text ? text : "", n);
            if (!c->call_sent) {
                char id[32];
                sl_tool_call_id(g->tools.format, id);
                json_t *o = json_array_get(d, 0);
                json_object_set_new(o, "id", json_string(id));
                json_object_set_new(o, "type", json_string("function"));
                json_object_set_new(json_object_get(o, "function"), "name", json_string(g->tools.name));
                c->call_sent = true;
            }
            pend_delta(g, k, "", 0, json_pack("{s:o}", "tool_calls", d), lp, NULL);
        }
        if (fin) pend_chunk(g, k, "", 0, NULL, calls_finish(g, why));
        return;
    }
    if (!sl_strbuf_add(&c->answer, text, n)) {
        json_decref(lp);
        return;
    }
    parts pt;
    if (!answer_parts(g, c->answer.p, c->answer.n, fin, &pt)) {
        json_decref(lp);
        return;
    }
    if (!c->seeded) { /* a resumed stream: the other engine sent this much of each part (the same text) */
        c->seeded = true;
        if (g->resume_content > 0) c->released = (size_t)g->resume_content;
        if (g->resume_reasoning > 0) c->released_r = (size_t)g->resume_reasoning;
        c->resume_args = g->resume_args;
    }
    json_t *extra = NULL;
    if (pt.nr > c->released_r) {
        extra = json_pack("{s:s%}", "reasoning_content", pt.r + c->released_r, pt.nr - c->released_r);
        c->released_r = pt.nr;
    }
    /* the content: what the tool syntax lets go (harmony's calls are messages of their own) */
    size_t cend = pt.nc, cl = 0;
    json_t *calls = NULL;
    const bool own = g->tools.choice != SL_TOOL_CHOICE_NONE && !messages(g); /* calls in the syntax of the tools */
    if (fin && (calls = parts_calls(g, &pt, &cl))) cend = cl;
    else if (own && c->n_calls > 0) cend = c->released; /* after a call began: no more content */
    else if (!fin && g->tools.choice == SL_TOOL_CHOICE_AUTO && own)
        cend = sl_tool_content_safe(g->tools.format, pt.c, pt.nc);
    else if (!fin && own) cend = 0;
    const size_t c_from = c->released;
    const size_t clen = cend > c_from ? cend - c_from : 0;
    if (clen || extra || lp || !c->role_sent) {
        pend_delta(g, k, pt.c + c_from, clen, extra, lp, NULL);
        if (clen) c->released = cend;
    }
    if (!fin && own) { /* the calls as far as the answer so far fixes them */
        json_t *so_far = sl_tool_parse_partial(g->tools.format, g->tools.choice == SL_TOOL_CHOICE_REQUIRED,
                                               g->tools.tools, pt.c, pt.nc);
        stream_calls(g, k, so_far);
        json_decref(so_far);
    }
    parts_free(&pt);
    if (!fin) return;
    stream_calls(g, k, calls);
    pend_chunk(g, k, "", 0, NULL, calls ? calls_finish(g, why) : sl_finish_reason_str(why));
    json_decref(calls);
}

/* Usage of the whole generation: the sums over its choices (caller holds no request lock). */
static json_t *gen_usage(gen *g) {
    int32_t np = 0, nc = 0, cached = 0, proposed = 0, accepted = 0;
    bool predicted = false;
    for (int i = 0; i < g->n; i++) {
        sl_req *r = g->ch[i].req;
        pthread_mutex_lock(&r->mu);
        if (g->ch[i].first) { /* a prompt counts once, whatever n */
            np += r->n_prompt;
            cached += r->n_cached_prompt;
        }
        nc += r->n_out;
        predicted |= r->pred != NULL;
        if (r->finished) { /* (the scheduler's counts: final once it finished) */
            proposed += r->spec_proposed;
            accepted += r->spec_accepted;
        }
        pthread_mutex_unlock(&r->mu);
    }
    json_t *u = sl_api_usage_json(np, nc, cached);
    if (predicted) sl_api_usage_prediction(u, accepted, proposed - accepted);
    return u;
}

/* ---- token ids for routers (X-Shardlm-Token-Ids) --------------------------------
 * A router that may have to move a stream to another engine mid-answer asks for
 * the token ids with the request header `X-Shardlm-Token-Ids: 1`. They travel as
 * SSE comment lines, which SSE clients ignore: `: prompt_token_ids 1 2 3` opens
 * the first event, and `: token_ids 4 5` opens each event whose chunk carries
 * those generated tokens (EOS included). With them a router continues the
 * stream elsewhere exactly: prompt = prompt ids + generated ids. A generation
 * of several choices (prompts, n) says so first, `: choices N PER` (N choices,
 * PER of each prompt: choice k is the (k % PER)-th of prompt k / PER, sampled
 * with seed + k % PER), and names the choice in each line: `: prompt_token_ids#K
 * 1 2 3` for the first choice K of each prompt, `: token_ids#K 4 5` before the
 * event of choice K's chunk; a router continues each unfinished choice on its
 * own. A chat answer with tools or thinking is split into parts here, so its
 * text is not what the client saw: `: resume chat` before the prompt ids says
 * to continue it as a chat request with the bytes of each part the client has
 * (api.c, parse_chat_resume). */

static void pend_ids(gen *g, const char *what, int k, const int32_t *ids, int32_t n) {
    char num[24];
    pend(g, ": ", 2);
    pend(g, what, strlen(what));
    if (g->n > 1) pend(g, num, (size_t)snprintf(num, sizeof num, "#%d", k));
    for (int32_t i = 0; i < n; i++) {
        int m = snprintf(num, sizeof num, " %d", ids[i]);
        pend(g, num, (size_t)m);
    }
    pend(g, "\n", 1);
}

/* Before submit (the scheduler does not touch the request yet): read the header
 * and write the prompt ids. */
static void token_ids_begin(gen *g, struct MHD_Connection *c) {
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Shardlm-Token-Ids");
    g->token_ids = v && strcmp(v, "0") != 0;
    if (!g->token_ids) return;
    /* a chat answer with tools or thinking is not a continuation of its text (parts held back, split):
     * it continues as a chat request (shardlm_resume with "ids", parse_chat_resume in api.c) */
    if (parsed(g)) pend(g, ": resume chat\n", 14);
    if (g->n > 1) { /* (choices of one prompt are consecutive, the same number of each) */
        int per = 1;
        while (per < g->n && !g->ch[per].first) per++;
        char line[64];
        pend(g, line, (size_t)snprintf(line, sizeof line, ": choices %d %d\n", g->n, per));
    }
    for (int k = 0; k < g->n; k++)
        if (g->ch[k].first) pend_ids(g, "prompt_token_ids", k, g->ch[k].req->tokens, g->ch[k].req->n_prompt);
}

/* The ids of generated tokens [k0, k1) of choice k, copied under the channel lock (out may grow). */
static void pend_token_ids(gen *g, int k, int32_t k0, int32_t k1) {
    if (k1 <= k0) return;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(k1 - k0));
    if (!ids) return;
    sl_req *r = g->ch[k].req;
    pthread_mutex_lock(&r->mu);
    for (int32_t i = k0; i < k1; i++) ids[i - k0] = r->out[i].id;
    pthread_mutex_unlock(&r->mu);
    pend_ids(g, "token_ids", k, ids, k1 - k0);
    free(ids);
}

/* The echoed prompt as choice k's first chunk, once its logprobs (when asked
 * for) are all there: the text, and the prompt tokens' logprobs. */
/* A copy of r's prompt logprobs [0, *n) with at most `top` alternatives each (echo's logprobs, where
 * prompt_logprobs may have asked for more); NULL when out of memory. The caller holds r's lock. */
static sl_tok_out *plp_copy(const sl_req *r, int32_t top, int32_t *n) {
    *n = r->n_plp;
    sl_tok_out *plp = malloc(sizeof *plp * (size_t)(r->n_plp > 0 ? r->n_plp : 1));
    if (!plp) return NULL;
    memcpy(plp, r->plp, sizeof *plp * (size_t)r->n_plp);
    for (int32_t i = 0; i < r->n_plp; i++)
        if (plp[i].n_top > top) plp[i].n_top = top;
    return plp;
}

static void pend_echo(gen *g, int k) {
    choice *c = &g->ch[k];
    sl_req *r = c->req;
    json_t *lp = NULL;
    if (r->plp && r->p.logprobs >= 0) {
        int32_t n_plp;
        pthread_mutex_lock(&r->mu);
        sl_tok_out *plp = plp_copy(r, r->p.logprobs, &n_plp);
        pthread_mutex_unlock(&r->mu);
        if (plp) lp = sl_api_echo_logprobs(&g->h->api, g->tokens_as_ids, plp, n_plp, c->n_echo, NULL, 0);
        free(plp);
    }
    pend_chunk(g, k, c->echo, c->n_echo, lp, NULL);
    c->echo_sent = true;
}

static bool echo_ready(const choice *c) {
    return c->echo && !c->echo_sent && (!c->req->plp || c->req->p.logprobs < 0 || c->req->n_plp == c->req->n_prompt);
}
/* (caller holds the request's lock) */
static bool has_news(const choice *c) {
    const sl_req *r = c->req;
    return !c->fin_sent && (r->n_text > c->text_sent || r->n_out > c->toks_sent || r->finished || echo_ready(c));
}

/* Take what choice k's channel has beyond what was sent; build its events.
 * Returns an HTTP status when the request failed in the engine (0 if not). */
static int collect_one(gen *g, int k, char *errmsg, size_t errcap) {
    choice *c = &g->ch[k];
    sl_req *r = c->req;
    pthread_mutex_lock(&r->mu);
    size_t t_from = c->text_sent, t_to = r->n_text;
    int32_t k0 = c->toks_sent, k1 = r->n_out;
    bool fin = r->finished;
    sl_finish_reason why = r->finish;
    int http_error = r->http_error;
    if (http_error) snprintf(errmsg, errcap, "%s", r->error[0] ? r->error : "generation failed");
    const bool echo_now = c->echo && !c->echo_sent && !http_error && (echo_ready(c) || fin);
    /* the scheduler may reallocate r->text and r->out: copy the new parts under the lock */
    char *text = g->stream && t_to > t_from ? malloc(t_to - t_from) : NULL;
    if (text) memcpy(text, r->text + t_from, t_to - t_from);
    sl_tok_out *toks = g->stream && r->p.logprobs >= 0 && k1 > k0 ? malloc(sizeof *toks * (size_t)(k1 - k0)) : NULL;
    if (toks) memcpy(toks, r->out + k0, sizeof *toks * (size_t)(k1 - k0));
    if (g->stream && g->return_ids && k1 > k0 && !http_error) { /* (vLLM's token_ids: in the next chunk that goes out) */
        if (!c->ids_pending) c->ids_pending = json_array();
        for (int32_t i = k0; i < k1; i++) json_array_append_new(c->ids_pending, json_integer(r->out[i].id));
    }
    pthread_mutex_unlock(&r->mu);
    if (!g->stream) { /* the whole answer is built at the end; just note what was seen */
        c->text_sent = t_to;
        c->toks_sent = k1;
        c->fin_sent = fin;
        return http_error;
    }
    /* the echo goes first: the prompt's logprobs are complete before the first token is sampled */
    if (echo_now) pend_echo(g, k);
    if (g->chat_echo && !c->chat_echo_sent && !http_error) { /* vLLM's: the role chunk, then the echoed message */
        if (!c->role_sent) pend_chunk(g, k, "", 0, NULL, NULL);
        pend_chunk(g, k, g->chat_echo, strlen(g->chat_echo), NULL, NULL);
        c->chat_echo_sent = true;
    }
    if (parsed(g)) {
        if (!http_error) {
            if (g->token_ids) pend_token_ids(g, k, k0, k1);
            json_t *lp = toks ? sl_api_logprobs_json(&g->h->api, g->kind, g->tokens_as_ids, toks, 0, k1 - k0, t_from) : NULL;
            stream_parsed(g, k, text, text ? t_to - t_from : 0, lp, fin, why);
            c->text_sent = t_to;
            c->toks_sent = k1;
        }
    } else if (!http_error && (t_to > t_from || k1 > k0 || (g->kind == SL_API_CHAT && !c->role_sent))) {
        if (g->token_ids) pend_token_ids(g, k, k0, k1);
        json_t *lp = toks ? sl_api_logprobs_json(&g->h->api, g->kind, g->tokens_as_ids, toks, 0, k1 - k0, c->n_echo + t_from) : NULL;
        pend_chunk(g, k, text ? text : "", text ? t_to - t_from : 0, lp, NULL);
        c->text_sent = t_to;
        c->toks_sent = k1;
    }
    free(text);
    free(toks);
    if (fin) {
        if (!http_error && !parsed(g)) pend_chunk(g, k, "", 0, NULL, sl_finish_reason_str(why));
        c->fin_sent = true;
    }
    return http_error;
}

/* Take what the channels have beyond what was sent (waiting a slice when
 * nothing is new); build events. *finished: every choice has finished. */
static void collect(gen *g, bool *finished) {
    bool news = false;
    choice *wait_on = NULL;
    for (int k = 0; k < g->n && !news; k++) {
        sl_req *r = g->ch[k].req;
        pthread_mutex_lock(&r->mu);
        news = has_news(&g->ch[k]);
        pthread_mutex_unlock(&r->mu);
        if (!wait_on && !g->ch[k].fin_sent) wait_on = &g->ch[k];
    }
    if (!news && wait_on) { /* several choices: a short slice, since the others' news does not wake this wait */
        sl_req *r = wait_on->req;
        pthread_mutex_lock(&r->mu);
        if (!has_news(wait_on)) {
            sl_cond_wait_ms(&r->cv, &r->mu, g->n == 1 ? WAIT_SLICE_MS : 5);
        }
        pthread_mutex_unlock(&r->mu);
    }
    int http_error = 0;
    char errmsg[256] = "";
    bool all = true;
    for (int k = 0; k < g->n; k++) {
        if (!g->ch[k].fin_sent && !http_error) http_error = collect_one(g, k, errmsg, sizeof errmsg);
        all &= g->ch[k].fin_sent;
    }
    if (http_error) cancel_all(g); /* one choice failed in the engine: the answer is an error */
    *finished = all || http_error;
    if (!g->stream || !*finished) return;
    if (http_error) {
        pend_event(g, json_pack("{s:{s:s,s:s,s:n,s:n}}", "error", "message", errmsg, "type", "server_error", "param",
                                "code"));
    } else if (g->include_usage) {
        json_t *o = chunk_base(g);
        json_object_set_new(o, "choices", json_array());
        json_object_set_new(o, "usage", gen_usage(g));
        pend_event(g, o);
    }
    if (!g->rs && !g->as && !g->os && !g->llama) /* (Responses, Anthropic, Ollama, llama.cpp: no [DONE]) */
        pend(g, "data: [DONE]\n\n", 14);
    g->done = true;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    gen *g = cls;
    for (;;) {
        if (g->off < g->pending.n) {
            size_t n = g->pending.n - g->off;
            if (n > max) n = max;
            memcpy(buf, g->pending.p + g->off, n);
            g->off += n;
            if (g->off == g->pending.n) g->off = g->pending.n = 0;
            return (ssize_t)n;
        }
        if (g->done) return MHD_CONTENT_READER_END_OF_STREAM;
        bool fin = false;
        collect(g, &fin);
        if (g->pending.n == 0 && !fin && client_gone(g->mc)) {
            cancel_all(g);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

static void stream_free(void *cls) {
    gen *g = cls;
    if (!g->done) cancel_all(g); /* the client went away mid-stream */
    gen_free(g);
}

/* ---- generation endpoints ------------------------------------------------------ */

/* A non-streamed chat answer's content s[0, n), after vLLM's echo where asked. */
static json_t *chat_content(const gen *g, const char *s, size_t n) {
    if (!g->chat_echo) return json_stringn(s, n);
    sl_strbuf b = {0};
    json_t *o = sl_strbuf_add(&b, g->chat_echo, strlen(g->chat_echo)) && sl_strbuf_add(&b, s, n) ? json_stringn(b.p, b.n) : NULL;
    free(b.p);
    return o;
}

/* choices[k] of a non-streamed answer (caller holds the request's lock). */
static json_t *choice_json(gen *g, int k) {
    const choice *c = &g->ch[k];
    const sl_req *req = c->req;
    json_t *ch = json_object();
    json_object_set_new(ch, "index", json_integer(k));
    const char *finish = sl_finish_reason_str(req->finish);
    if (g->kind == SL_API_CHAT) {
        parts pt;
        if (!answer_parts(g, req->text, req->n_text, true, &pt)) {
            json_decref(ch);
            return NULL;
        }
        json_t *msg = json_pack("{s:s}", "role", "assistant");
        size_t content = 0;
        json_t *calls = parts_calls(g, &pt, &content);
        if (calls) {
            json_object_set_new(msg, "content", content || g->chat_echo ? chat_content(g, pt.c, content) : json_null());
            json_object_set_new(msg, "tool_calls", tool_calls_json(g, calls));
            finish = calls_finish(g, req->finish);
            json_decref(calls);
        } else {
            json_object_set_new(msg, "content", chat_content(g, pt.c, pt.nc));
        }
        if (pt.nr) json_object_set_new(msg, "reasoning_content", json_stringn(pt.r, pt.nr));
        parts_free(&pt);
        json_object_set_new(ch, "message", msg);
    } else if (c->echo) { /* the prompt, then the output */
        char *both = malloc(c->n_echo + req->n_text + 1);
        if (both) {
            memcpy(both, c->echo, c->n_echo);
            if (req->n_text) memcpy(both + c->n_echo, req->text, req->n_text);
        }
        json_object_set_new(ch, "text", both ? json_stringn(both, c->n_echo + req->n_text) : NULL);
        free(both);
    } else {
        json_object_set_new(ch, "text", json_stringn(req->text ? req->text : "", req->n_text));
    }
    json_t *lp = json_null();
    if (req->p.logprobs >= 0 && c->echo && req->plp) {
        int32_t n_plp;
        sl_tok_out *plp = plp_copy(req, req->p.logprobs, &n_plp);
        lp = plp ? sl_api_echo_logprobs(&g->h->api, g->tokens_as_ids, plp, n_plp, c->n_echo, req->out, req->n_out) : NULL;
        free(plp);
    } else if (req->p.logprobs >= 0) {
        lp = sl_api_logprobs_json(&g->h->api, g->kind, g->tokens_as_ids, req->out, 0, req->n_out, 0);
    }
    json_t *probs = g->llama_probs && !g->llama ? llama_probs(g, lp) : NULL; /* (for a router: its n_probs) */
    if (probs) json_object_set_new(ch, "completion_probabilities", probs);
    json_object_set_new(ch, "logprobs", lp);
    if (g->return_ids) { /* vLLM's: the output's ids (and a completion's prompt ids) */
        json_t *ids = json_array();
        for (int32_t i = 0; i < req->n_out; i++) json_array_append_new(ids, json_integer(req->out[i].id));
        json_object_set_new(ch, "token_ids", ids);
        if (g->kind == SL_API_COMPLETIONS) json_object_set_new(ch, "prompt_token_ids", prompt_ids_locked(req));
    }
    if (req->p.prompt_logprobs >= 0 && g->kind == SL_API_COMPLETIONS) /* (chat: one list beside the choices) */
        json_object_set_new(ch, "prompt_logprobs", sl_api_prompt_logprobs_json(&g->h->api, g->tokens_as_ids, req->plp,
                                                                                req->n_plp, req->p.prompt_logprobs));
    json_object_set_new(ch, "finish_reason", json_string(finish));
    json_object_set_new(ch, "stop_reason", stop_reason(req));
    return ch;
}

/* ---- llama.cpp's /completion ------------------------------------------------------------
 * The completions path answered in llama.cpp's own form: {"content", "stop": true, "stop_type" (eos, limit,
 * word), "stopping_word", "tokens_predicted", "tokens_evaluated", "tokens_cached", "timings", ...}, an array of
 * them for several prompts; streamed, {"content": piece, "stop": false} events and such a last one with an
 * empty content, no [DONE]. */

/* What finished request r says of its end, for llama.cpp's fields (the caller holds r's lock). */
static sl_llama_end llama_end_locked(const sl_req *r) {
    const double t0 = r->t_submit, t1 = r->t_first_token > 0 ? r->t_first_token : r->t_submit,
                 t2 = r->t_last_token > t1 ? r->t_last_token : t1;
    return (sl_llama_end){.finish = sl_finish_reason_str(r->finish), .stop_word = stop_string(r), .predicted = r->n_out,
                          .evaluated = r->n_prompt, .cached = r->n_cached_prompt, .prompt_ms = (t1 - t0) * 1e3,
                          .predicted_ms = (t2 - t1) * 1e3, .n_predict = r->p.max_tokens};
}

/* The closing object of choice k (its request finished) with its content. */
static json_t *llama_final(gen *g, int k, const char *content, size_t n) {
    sl_req *r = g->ch[k].req;
    pthread_mutex_lock(&r->mu);
    const sl_llama_end end = llama_end_locked(r);
    json_t *o = sl_llama_result(k, content, n, g->h->api.model_id, &end);
    pthread_mutex_unlock(&r->mu);
    return o;
}

/* llama.cpp's token record {"id", "token", "bytes", "logprob"} of "token_id:ID" (the form a llama.cpp request's
 * logprobs take here) with logprob lp. */
static json_t *llama_token(gen *g, const char *name, double lp) {
    const int id = name && !strncmp(name, "token_id:", 9) ? atoi(name + 9) : -1;
    char buf[512];
    int64_t n = id >= 0 ? sl_token_to_piece(sl_model_tokenizer(g->h->api.model), id, true, buf, sizeof buf) : 0;
    n = n < 0 ? 0 : n > (int64_t)sizeof buf ? (int64_t)sizeof buf : n;
    json_t *bytes = json_array();
    for (int64_t i = 0; i < n; i++) json_array_append_new(bytes, json_integer((unsigned char)buf[i]));
    json_t *tok = json_stringn(buf, (size_t)n);
    return json_pack("{s:i,s:o,s:o,s:f}", "id", id, "token", tok ? tok : json_string(""), "bytes", bytes, "logprob", lp);
}

/* llama.cpp's completion_probabilities (n_probs) from a completions choice's logprobs, or NULL when it has none:
 * each output token with its top alternatives, most likely first. */
static json_t *llama_probs(gen *g, const json_t *lp) {
    const json_t *toks = json_object_get(lp, "tokens"), *lps = json_object_get(lp, "token_logprobs"),
                 *tops = json_object_get(lp, "top_logprobs");
    if (!json_is_array(toks) || !g->llama_probs) return NULL;
    json_t *out = json_array();
    for (size_t i = 0; i < json_array_size(toks); i++) {
        json_t *rec = llama_token(g, json_string_value(json_array_get(toks, i)), json_number_value(json_array_get(lps, i)));
        json_t *alts = json_array();
        const char *key;
        json_t *v;
        json_object_foreach(json_array_get(tops, i), key, v) {
            json_t *a = llama_token(g, key, json_number_value(v));
            size_t at = json_array_size(alts); /* (in order of logprob: a few, inserted in place) */
            while (at > 0 && json_real_value(json_object_get(json_array_get(alts, at - 1), "logprob")) < json_number_value(v)) at--;
            json_array_insert_new(alts, at, a);
        }
        json_object_set_new(rec, "top_logprobs", alts);
        json_array_append_new(out, rec);
    }
    return out;
}

/* A completions chunk (or an error, or the usage chunk) as llama.cpp's stream has it. */
static void llama_event(gen *g, json_t *o) {
    if (json_object_get(o, "error")) { /* as llama.cpp sends it */
        pend_data(g, json_incref(o));
        return;
    }
    const json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
    if (!ch) return; /* (the usage chunk) */
    const int k = (int)json_integer_value(json_object_get(ch, "index"));
    const json_t *t = json_object_get(ch, "text");
    if (json_string_length(t)) {
        json_t *piece = sl_llama_piece(k, json_string_value(t), json_string_length(t)),
               *probs = llama_probs(g, json_object_get(ch, "logprobs"));
        if (probs) json_object_set_new(piece, "completion_probabilities", probs);
        pend_data(g, piece);
    }
    if (json_is_string(json_object_get(ch, "finish_reason")) && k >= 0 && k < g->n)
        pend_data(g, sl_llama_fields(llama_final(g, k, "", 0), g->llama_fields));
}

/* Create the request of prompt pr as choice k, the j-th of its prompt. */
static sl_status add_choice(sl_http *h, gen *g, int k, int j, const sl_api_request *ar, sl_api_prompt pr) {
    sl_req_params p = ar->params;
    if (!ar->max_tokens_given) p.max_tokens = sl_api_room(&h->api, pr.n); /* what this prompt's context leaves */
    p.sampling.seed += (uint64_t)j;
    choice *c = &g->ch[k];
    c->first = j == 0;
    sl_status st = sl_req_create(h->sched, pr.ids, pr.n, &p, &c->req);
    if (st) return st;
    if (p.echo) { /* the prompt string as sent, or the text of the prompt's token ids */
        c->echo = pr.text ? sl_strdup(pr.text) : sl_api_detok_text(&h->api, pr.ids, pr.n);
        if (!c->echo) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
        c->n_echo = strlen(c->echo);
    }
    return SL_OK;
}

/* The whole answer of a finished non-streaming generation (as its endpoint writes it; a Responses answer is kept
 * in the store), or NULL with e set when it failed in the engine. */
static json_t *final_answer(gen *g, sl_api_error *e) {
    for (int k = 0; k < g->n; k++) {
        sl_req *req = g->ch[k].req;
        pthread_mutex_lock(&req->mu);
        const int err = req->http_error;
        if (err) sl_api_set_error(e, err, NULL, "%s", req->error[0] ? req->error : "generation failed");
        pthread_mutex_unlock(&req->mu);
        if (err) return NULL;
    }
    sl_http *h = g->h;
    const sl_api_kind kind = g->kind;
    json_t *choices = json_array();
    for (int k = 0; k < g->n; k++) {
        sl_req *req = g->ch[k].req;
        pthread_mutex_lock(&req->mu);
        json_array_append_new(choices, choice_json(g, k));
        pthread_mutex_unlock(&req->mu);
    }
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:o,s:o}", "id", g->id, "object",
                          kind == SL_API_CHAT ? "chat.completion" : "text_completion", "created", (json_int_t)g->created,
                          "model", h->api.model_id, "choices", choices, "usage", gen_usage(g));
    sl_req *r0 = g->ch[0].req;
    { /* llama.cpp's timings, the first choice's (a router's Ollama answer reads them) */
        pthread_mutex_lock(&r0->mu);
        const sl_llama_end end = llama_end_locked(r0);
        pthread_mutex_unlock(&r0->mu);
        json_object_set_new(o, "timings", sl_llama_timings(&end));
    }
    if (kind == SL_API_CHAT && g->return_ids) json_object_set_new(o, "prompt_token_ids", prompt_ids_json(r0));
    if (kind == SL_API_CHAT && r0->p.prompt_logprobs >= 0) { /* vLLM's place: beside the choices (one prompt) */
        pthread_mutex_lock(&r0->mu);
        json_object_set_new(o, "prompt_logprobs", sl_api_prompt_logprobs_json(&h->api, g->tokens_as_ids, r0->plp,
                                                                               r0->n_plp, r0->p.prompt_logprobs));
        pthread_mutex_unlock(&r0->mu);
    }
    if (g->llama) { /* POST /completion: llama.cpp's form, an array for several prompts */
        json_t *arr = json_array();
        for (int k = 0; k < g->n; k++) {
            const json_t *ck = json_array_get(choices, (size_t)k), *t = json_object_get(ck, "text");
            json_t *last = llama_final(g, k, json_string_value(t) ? json_string_value(t) : "", json_string_length(t)),
                   *probs = llama_probs(g, json_object_get(ck, "logprobs"));
            if (probs) json_object_set_new(last, "completion_probabilities", probs);
            json_array_append_new(arr, sl_llama_fields(last, g->llama_fields));
        }
        json_decref(o);
        o = g->n == 1 ? json_incref(json_array_get(arr, 0)) : json_incref(arr);
        json_decref(arr);
    }
    if (g->anth_req) { /* POST /v1/messages: the answer as Anthropic's message */
        json_t *m = sl_anth_from_chat(o, g->anth_req);
        json_decref(o);
        o = m;
    }
    if (g->oll_req) { /* POST /api/chat, /api/generate: the answer in Ollama's form */
        pthread_mutex_lock(&r0->mu);
        const sl_ollama_times t = {.t0 = g->t0, .t_first = r0->t_first_token, .t_end = sl_ollama_now()};
        pthread_mutex_unlock(&r0->mu);
        json_t *m = sl_ollama_from_openai(o, g->oll_req, g->oll_generate, &t);
        json_decref(o);
        o = m;
    }
    if (g->resp_req) { /* POST /v1/responses: the answer as a response object */
        json_t *r = sl_responses_from_chat(o, g->resp_req, g->id, g->created);
        sl_resp_store_put(h->store, g->resp_req, r);
        json_decref(o);
        o = r;
    }
    return o;
}

/* ---- background responses (POST /v1/responses with "background": true) ------------------------------ */

/* The response kept for g as it stands: status (queued, in_progress, failed, cancelled), no output yet; error: a
 * failure's message, or NULL. */
static void bg_keep_status(gen *g, const char *status, const char *error) {
    json_t *o = sl_responses_status(g->resp_req, g->id, g->h->api.model_id, g->created, status);
    if (error) json_object_set_new(o, "error", json_pack("{s:s,s:s}", "code", "server_error", "message", error));
    sl_resp_store_put(g->h->store, g->resp_req, o);
    json_decref(o);
}

/* A background response's own thread: it waits for the answer as a connection's thread would (nobody can hang
 * up), keeps it (cancelled, or failed, where it was), and leaves h->bg. */
static void *bg_main(void *arg) {
    gen *g = arg;
    sl_http *h = g->h;
    bool fin = false, running = false;
    while (!fin) {
        collect(g, &fin);
        if (!running && !fin) {
            running = true;
            bg_keep_status(g, "in_progress", NULL);
        }
    }
    sl_api_error e;
    json_t *o = final_answer(g, &e); /* (kept there) */
    if (atomic_load(&g->bg_cancel)) {
        if (o) { /* what it had written, cancelled */
            json_object_set_new(o, "status", json_string("cancelled"));
            json_object_set_new(o, "incomplete_details", json_null());
            sl_resp_store_put(h->store, g->resp_req, o);
        } else {
            bg_keep_status(g, "cancelled", NULL);
        }
    } else if (!o) {
        bg_keep_status(g, "failed", e.message);
    }
    json_decref(o);
    pthread_mutex_lock(&h->bg_mu);
    for (gen **p = &h->bg; *p; p = &(*p)->bg_next)
        if (*p == g) {
            *p = g->bg_next;
            break;
        }
    pthread_cond_broadcast(&h->bg_cv);
    pthread_mutex_unlock(&h->bg_mu);
    gen_free(g);
    return NULL;
}

/* Start g (its requests submitted) in the background: kept as queued, answered so at once. */
static enum MHD_Result bg_start(sl_http *h, struct MHD_Connection *c, conn *cx, gen *g) {
    json_t *o = sl_responses_status(g->resp_req, g->id, h->api.model_id, g->created, "queued");
    snprintf(g->bg_id, sizeof g->bg_id, "%s", json_string_value(json_object_get(o, "id")) ?: "");
    sl_resp_store_put(h->store, g->resp_req, o);
    pthread_mutex_lock(&h->bg_mu);
    g->bg_next = h->bg;
    h->bg = g;
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    const bool started = pthread_create(&t, &at, bg_main, g) == 0;
    pthread_attr_destroy(&at);
    if (!started) h->bg = g->bg_next;
    pthread_mutex_unlock(&h->bg_mu);
    if (!started) {
        json_decref(o);
        cancel_all(g);
        bg_keep_status(g, "failed", "cannot start the background thread");
        gen_free(g);
        return reply_err(c, cx, 500, NULL, "cannot start the background thread");
    }
    return reply_json(c, cx, 200, o);
}

/* POST /v1/responses/{id}/cancel: a background response still running stops (its requests are cancelled; the
 * answer so far is kept, status cancelled) and is answered as kept; one that ended is answered as it is. */
static enum MHD_Result bg_cancel(sl_http *h, struct MHD_Connection *c, conn *cx, const char *id) {
    pthread_mutex_lock(&h->bg_mu);
    gen *g = h->bg;
    while (g && strcmp(g->bg_id, id)) g = g->bg_next;
    if (g) {
        atomic_store(&g->bg_cancel, true);
        cancel_all(g);
        for (int i = 0; i < 100; i++) { /* its end (within a scheduler step), at most 5 s */
            gen *q = h->bg;
            while (q && q != g) q = q->bg_next;
            if (!q) break;
            sl_cond_wait_ms(&h->bg_cv, &h->bg_mu, 50);
        }
    }
    pthread_mutex_unlock(&h->bg_mu);
    json_t *o = sl_resp_store_get(h->store, id);
    sl_api_error e;
    if (!o) {
        sl_api_set_error(&e, 404, NULL, "no response '%.100s' is kept here", id);
        return reply_error(c, cx, &e);
    }
    if (!json_is_true(json_object_get(o, "background"))) {
        json_decref(o);
        sl_api_set_error(&e, 400, NULL, "response '%.100s' was not made in the background: only those can be cancelled", id);
        return reply_error(c, cx, &e);
    }
    return reply_json(c, cx, 200, o);
}

/* ---- beam search ------------------------------------------------------------------
 * vLLM's use_beam_search (server/beam.h): each prompt's n best beams are its choices, answered when all are
 * done — streamed, each choice's text in one chunk and then its finish, as the search has no order of tokens to
 * stream; a chat answer's thinking split off as the template writes it. */

static bool beam_client_gone(void *ctx) { return client_gone(ctx); }

/* Choice k of a beam answer (text: the beam's), whole or as the chunks of a stream (into sse). */
static json_t *beam_choice(sl_api_kind kind, const sl_api_request *ar, int k, const char *text, bool ended) {
    const char *finish = ended ? "stop" : "length";
    if (kind == SL_API_COMPLETIONS)
        return json_pack("{s:i,s:s,s:n,s:s,s:n}", "index", k, "text", text, "logprobs", "finish_reason", finish, "stop_reason");
    const size_t n = strlen(text);
    const sl_think_split sp = ar->think ? sl_think_split_text(ar->think_tags, text, n, ar->think_open, true)
                                        : (sl_think_split){0, 0, 0, n};
    json_t *msg = json_pack("{s:s,s:s%}", "role", "assistant", "content", text + sp.c0, sp.c1 - sp.c0);
    if (sp.r1 > sp.r0) json_object_set_new(msg, "reasoning_content", json_stringn(text + sp.r0, sp.r1 - sp.r0));
    return json_pack("{s:i,s:o,s:n,s:s,s:n}", "index", k, "message", msg, "logprobs", "finish_reason", finish, "stop_reason");
}

/* A whole beam answer o (its choices, usage) as the events of a stream (NUL-terminated). */
static char *beam_stream(json_t *o, sl_api_kind kind, bool include_usage) {
    sl_strbuf b = {0};
    json_t *base = json_pack("{s:O,s:s,s:O,s:O}", "id", json_object_get(o, "id"), "object",
                             kind == SL_API_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                             json_object_get(o, "created"), "model", json_object_get(o, "model"));
    size_t i;
    json_t *ch;
    json_array_foreach(json_object_get(o, "choices"), i, ch) {
        json_t *idx = json_object_get(ch, "index"), *msg = json_object_get(ch, "message"), *body[2];
        json_t *lp = json_object_get(ch, "logprobs"); /* (all of a choice's, with its text) */
        if (kind == SL_API_CHAT) {
            json_t *delta = json_pack("{s:s,s:O}", "role", "assistant", "content", json_object_get(msg, "content"));
            if (json_object_get(msg, "reasoning_content")) json_object_set(delta, "reasoning_content", json_object_get(msg, "reasoning_content"));
            body[0] = json_pack("{s:O,s:o,s:O,s:n}", "index", idx, "delta", delta, "logprobs", lp, "finish_reason");
            body[1] = json_pack("{s:O,s:{},s:n,s:O,s:n}", "index", idx, "delta", "logprobs", "finish_reason",
                                json_object_get(ch, "finish_reason"), "stop_reason");
        } else {
            body[0] = json_pack("{s:O,s:O,s:O,s:n}", "index", idx, "text", json_object_get(ch, "text"), "logprobs", lp,
                                "finish_reason");
            body[1] = json_pack("{s:O,s:s,s:n,s:O,s:n}", "index", idx, "text", "", "logprobs", "finish_reason",
                                json_object_get(ch, "finish_reason"), "stop_reason");
        }
        for (int k = 0; k < 2; k++) {
            json_t *e = json_deep_copy(base);
            json_object_set_new(e, "choices", json_pack("[o]", body[k]));
            sl_sse_event(&b, NULL, e);
        }
    }
    if (include_usage) {
        json_t *e = json_deep_copy(base);
        json_object_set_new(e, "choices", json_array());
        json_object_set(e, "usage", json_object_get(o, "usage"));
        sl_sse_event(&b, NULL, e);
    }
    json_decref(base);
    sl_strbuf_add(&b, "data: [DONE]\n\n", 14);
    return b.p;
}

static enum MHD_Result handle_beam(sl_http *h, struct MHD_Connection *c, conn *cx, sl_api_kind kind, sl_api_request *ar) {
    const int32_t n_prompts = ar->n_more + 1, w = ar->n;
    sl_beam *beams = calloc((size_t)(n_prompts * w), sizeof *beams);
    int32_t *n_beams = calloc((size_t)n_prompts, sizeof *n_beams);
    sl_status st = beams && n_beams ? SL_OK : SL_FAIL(SL_ERR_NOMEM, "out of memory");
    int64_t n_in = 0, n_gen = 0;
    atomic_fetch_add(&h->in_flight, 1);
    for (int32_t i = 0; i < n_prompts && st == SL_OK; i++) {
        const sl_api_prompt pr = sl_api_prompt_at(ar, i);
        const sl_beam_cfg cfg = {.width = w, .max_tokens = ar->max_tokens_given ? ar->params.max_tokens : sl_api_room(&h->api, pr.n),
                                 .ignore_eos = ar->params.ignore_eos, .length_penalty = ar->length_penalty,
                                 .logprobs = ar->params.logprobs,
                                 .base = &ar->params, .tok = sl_model_tokenizer(h->api.model), .gone = beam_client_gone,
                                 .ctx = c};
        st = sl_beam_search(h->sched, pr.ids, pr.n, &cfg, beams + i * w, &n_beams[i]);
        n_in += pr.n;
    }
    json_t *choices = json_array();
    for (int32_t i = 0; i < n_prompts && st == SL_OK; i++)
        for (int32_t j = 0; j < n_beams[i]; j++) {
            const sl_beam *b = &beams[i * w + j];
            char *text = sl_api_detok_text(&h->api, b->ids, b->n);
            json_t *ch = text ? beam_choice(kind, ar, (int)json_array_size(choices), text, b->ended) : NULL;
            if (!ch) st = SL_FAIL(SL_ERR_NOMEM, "out of memory");
            else json_array_append_new(choices, ch);
            if (ch && b->lp) /* (vLLM's: each output token's log probability and alternatives) */
                json_object_set_new(ch, "logprobs", sl_api_logprobs_json(&h->api, kind, ar->tokens_as_ids, b->lp, 0, b->n, 0));
            if (ch && ar->return_token_ids) { /* (vLLM's: the beam's ids, and a completion's prompt ids) */
                const sl_api_prompt pr = sl_api_prompt_at(ar, i);
                json_t *ids = json_array(), *pids = json_array();
                for (int32_t t = 0; t < b->n; t++) json_array_append_new(ids, json_integer(b->ids[t]));
                for (int32_t t = 0; t < pr.n; t++) json_array_append_new(pids, json_integer(pr.ids[t]));
                json_object_set_new(ch, "token_ids", ids);
                if (kind == SL_API_COMPLETIONS) json_object_set_new(ch, "prompt_token_ids", pids);
                else json_decref(pids);
            }
            n_gen += b->n;
            sl_free(text);
        }
    for (int32_t i = 0; beams && n_beams && i < n_prompts; i++) sl_beam_free(beams + i * w, n_beams[i]);
    free(beams);
    free(n_beams);
    atomic_fetch_sub(&h->in_flight, 1);
    if (st == SL_ERR_CLOSED) {
        json_decref(choices);
        cx->status = 0; /* (the client went away) */
        return MHD_NO;
    }
    if (st) {
        json_decref(choices);
        return reply_err(c, cx, st == SL_ERR_NOMEM ? 500 : 503, NULL, sl_last_error());
    }
    static atomic_ullong counter;
    const long long created = (long long)time(NULL);
    char id[192];
    if (ar->request_id[0]) snprintf(id, sizeof id, "%s-%s", kind == SL_API_CHAT ? "chatcmpl" : "cmpl", ar->request_id);
    else
        snprintf(id, sizeof id, "%s-%016llxb%07llx", kind == SL_API_CHAT ? "chatcmpl" : "cmpl", (unsigned long long)created,
                 (unsigned long long)(atomic_fetch_add(&counter, 1) & 0xfffffffu)); /* ('b': not a request's id) */
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:o,s:{s:I,s:I,s:I}}", "id", id, "object",
                          kind == SL_API_CHAT ? "chat.completion" : "text_completion", "created", (json_int_t)created,
                          "model", h->api.model_id, "choices", choices, "usage", "prompt_tokens", (json_int_t)n_in,
                          "completion_tokens", (json_int_t)n_gen, "total_tokens", (json_int_t)(n_in + n_gen));
    if (!o) return reply_err(c, cx, 500, NULL, "out of memory");
    if (!ar->stream) return reply_json(c, cx, 200, o);
    char *sse = beam_stream(o, kind, ar->include_usage);
    json_decref(o);
    return sse ? reply(c, cx, 200, "text/event-stream", sse) : reply_err(c, cx, 500, NULL, "out of memory");
}

/* A completions or chat request (body[0, n)); f: the request it was made from (NULL: none), whose form the
 * answer takes. */
static enum MHD_Result handle_generate(sl_http *h, struct MHD_Connection *c, conn *cx, sl_api_kind kind, const char *body,
                                       size_t n_body, const front *f) {
    static const front none = {0};
    if (!f) f = &none;
    json_t *resp_req = f->resp_req, *anth_req = f->anth_req, *oll_req = f->oll_req;
    const bool llama = f->llama, other = resp_req || anth_req || oll_req || llama; /* (an answer not in OpenAI's form) */
    if (atomic_load(&h->draining))
        return reply_err(c, cx, 503, NULL, "the server is shutting down and takes no new requests");
    sl_api_request ar;
    sl_api_error e;
    if (!sl_api_parse(&h->api, kind, body, n_body, &ar, &e)) {
        const char *rp = resp_req   ? sl_responses_param(e.param)
                         : anth_req ? sl_anth_param(e.param)
                         : oll_req  ? sl_ollama_param(e.param, f->oll_generate)
                                    : e.param;
        if (rp != e.param) snprintf(e.param, sizeof e.param, "%s", rp);
        return reply_error(c, cx, &e);
    }
    if (ar.beam) {
        enum MHD_Result ret = other ? reply_err(c, cx, 400, "use_beam_search", "'use_beam_search' is taken by "
                                                                                "/v1/completions and /v1/chat/completions")
                                    : handle_beam(h, c, cx, kind, &ar);
        sl_api_request_free(&ar);
        return ret;
    }
    gen *g = calloc(1, sizeof *g);
    if (g) g->ch = calloc(((size_t)ar.n_more + 1) * (size_t)ar.n, sizeof *g->ch);
    if (!g || !g->ch) {
        if (g) free(g);
        sl_api_request_free(&ar);
        return reply_err(c, cx, 500, NULL, "out of memory");
    }
    atomic_fetch_add(&h->in_flight, 1);
    g->h = h;
    g->n = (ar.n_more + 1) * ar.n;
    sl_status st = SL_OK;
    int bad = 0; /* the prompt a refusal is about */
    for (int k = 0; k < g->n && !st; k++) {
        const int i = k / ar.n, j = k % ar.n;
        st = add_choice(h, g, k, j, &ar, sl_api_prompt_at(&ar, i));
        bad = i;
    }
    const bool several = ar.n_more > 0;
    const bool stream = ar.stream, include_usage = ar.include_usage;
    g->llama_probs = (llama || ar.llama_probs) && ar.params.logprobs >= 0;
    g->tokens_as_ids = ar.tokens_as_ids || g->llama_probs; /* (n_probs: ids for its records) */
    g->llama_fields = llama ? json_incref(ar.response_fields) : NULL;
    g->tools = ar.tools;
    ar.tools.tools = NULL; /* the reference moves to g */
    g->think = ar.think;
    g->think_open = ar.think_open;
    g->think_tags = ar.think_tags;
    g->return_ids = ar.return_token_ids && !other;
    g->continuous_usage = ar.continuous_usage && !other;
    g->access_log = h->cfg.access_log;
    g->t0 = cx->t0;
    snprintf(g->method, sizeof g->method, "%s", cx->method);
    snprintf(g->path, sizeof g->path, "%s", cx->path);
    char request_id[sizeof ar.request_id];
    memcpy(request_id, ar.request_id, sizeof request_id);
    if (kind == SL_API_CHAT && !other) { /* (chat's own answer: the others have no echo) */
        g->chat_echo = ar.chat_echo;
        ar.chat_echo = NULL;
    }
    g->harmony = kind == SL_API_CHAT && h->api.harmony;
    g->kimi3 = kind == SL_API_CHAT && h->api.kimi3;
    if (ar.resumed) { /* the client has the role chunk, and maybe a forced call's first delta */
        g->resume_content = ar.resume_content;
        g->resume_reasoning = ar.resume_reasoning;
        g->ch[0].role_sent = true;
        g->ch[0].call_sent = ar.resume_call_started;
        g->resume_args = ar.resume_args;
    }
    sl_api_request_free(&ar);
    if (st) {
        char msg[sizeof e.message];
        if (several) snprintf(msg, sizeof msg, "prompt[%d]: %s", bad, sl_last_error());
        else snprintf(msg, sizeof msg, "%s", sl_last_error());
        sl_api_set_error(&e, st == SL_ERR_NOMEM ? 500 : 400, kind == SL_API_CHAT ? "messages" : "prompt", "%s", msg);
        gen_free(g);
        return reply_error(c, cx, &e);
    }
    g->mc = c;
    g->kind = kind;
    g->stream = stream;
    g->include_usage = include_usage;
    g->created = (long long)time(NULL);
    if (request_id[0]) /* vLLM's request_id: the answer's id */
        snprintf(g->id, sizeof g->id, "%s-%s", kind == SL_API_CHAT ? "chatcmpl" : "cmpl", request_id);
    else
        snprintf(g->id, sizeof g->id, "%s-%016llx%08llx", kind == SL_API_CHAT ? "chatcmpl" : "cmpl",
                 (unsigned long long)g->created, (unsigned long long)g->ch[0].req->id);
    cx->gen = g->access_log; /* (from here on the generation writes the access log line) */
    g->resp_req = json_incref(resp_req);
    g->llama = llama;
    if (resp_req && stream && !(g->rs = sl_resp_stream_new(resp_req, g->id, h->api.model_id, g->created, &g->pending))) {
        cancel_all(g);
        gen_free(g);
        return reply_err(c, cx, 500, NULL, "out of memory");
    }
    sl_resp_stream_keep_in(g->rs, h->store);
    g->anth_req = json_incref(anth_req);
    if (anth_req && stream) {
        int64_t n_in = 0;
        for (int k = 0; k < g->n; k++) n_in += g->ch[k].first ? g->ch[k].req->n_prompt : 0;
        if (!(g->as = sl_anth_stream_new(anth_req, g->id, h->api.model_id, n_in, &g->pending))) {
            cancel_all(g);
            gen_free(g);
            return reply_err(c, cx, 500, NULL, "out of memory");
        }
    }
    g->oll_req = json_incref(oll_req);
    g->oll_generate = f->oll_generate;
    if (oll_req && stream && !(g->os = sl_ollama_stream_new(oll_req, f->oll_generate, cx->t0))) {
        cancel_all(g);
        gen_free(g);
        return reply_err(c, cx, 500, NULL, "out of memory");
    }
    if (stream) token_ids_begin(g, c);
    for (int k = 0; k < g->n; k++) sl_sched_submit(h->sched, g->ch[k].req);
    if (resp_req && json_is_true(json_object_get(resp_req, "background"))) return bg_start(h, c, cx, g);

    if (stream) {
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, g, stream_free);
        if (!r) {
            cancel_all(g);
            gen_free(g);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", oll_req ? "application/x-ndjson" : "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        add_cors(c, cx, r);
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        cx->status = 200;
        return ret;
    }

    /* non-streaming: wait here (this connection's own thread), watching for a hang-up */
    bool fin = false;
    for (;;) {
        collect(g, &fin);
        if (fin) break;
        if (client_gone(c)) {
            cancel_all(g);
            gen_free(g);
            cx->status = 0; /* client gone: counted by finish reason "abort" */
            return MHD_NO;
        }
    }
    json_t *o = final_answer(g, &e);
    if (!o) {
        gen_free(g);
        return reply_error(c, cx, &e);
    }
    gen_free(g);
    return reply_json(c, cx, 200, o);
}

/* POST /completion (llama.cpp's own endpoint): the completions path with llama.cpp's sampling defaults, its
 * answer in llama.cpp's form. A body that is not a JSON object goes as it is (the parser says what is wrong). */
static enum MHD_Result handle_llama(sl_http *h, struct MHD_Connection *c, conn *cx) {
    const char *body = cx->body ? cx->body : "";
    json_t *o = json_loadb(body, cx->n, JSON_REJECT_DUPLICATES, NULL);
    if (json_is_object(o)) json_object_set_new(o, "shardlm_llama_defaults", json_true()); /* (after the server's) */
    char *with = json_is_object(o) ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    enum MHD_Result r =
        handle_generate(h, c, cx, SL_API_COMPLETIONS, with ? with : body, with ? strlen(with) : cx->n, &(front){.llama = true});
    free(with);
    return r;
}

/* POST /infill (llama.cpp's): its prompt assembled from the fill-in-the-middle fields (llama.cpp's sampling
 * defaults put in), then as /completion. */
static enum MHD_Result handle_infill(sl_http *h, struct MHD_Connection *c, conn *cx) {
    sl_api_error e;
    char *body = sl_api_infill_body(&h->api, cx->body ? cx->body : "", cx->n, &e);
    if (!body) return reply_error(c, cx, &e);
    enum MHD_Result r = handle_generate(h, c, cx, SL_API_COMPLETIONS, body, strlen(body), &(front){.llama = true});
    free(body);
    return r;
}

/* POST /v1/messages (Anthropic's): the request made a chat request (server/anthropic.h), answered as a message;
 * POST /v1/messages/count_tokens: its input's tokens. */
static enum MHD_Result handle_anthropic(sl_http *h, struct MHD_Connection *c, conn *cx, bool count) {
    sl_api_error e;
    json_t *req;
    char *body = sl_anth_chat_body(cx->body, cx->n, count, &req, &e);
    if (!body) return reply_error(c, cx, &e);
    enum MHD_Result r;
    if (count) {
        sl_api_request ar;
        if (!sl_api_parse(&h->api, SL_API_CHAT, body, strlen(body), &ar, &e)) {
            snprintf(e.param, sizeof e.param, "%s", sl_anth_param(e.param));
            r = reply_error(c, cx, &e);
        } else {
            r = reply_json(c, cx, 200, json_pack("{s:i}", "input_tokens", (int)ar.n_prompt));
            sl_api_request_free(&ar);
        }
    } else {
        r = handle_generate(h, c, cx, SL_API_CHAT, body, strlen(body), &(front){.anth_req = req});
    }
    free(body);
    json_decref(req);
    return r;
}

/* POST /v1/responses: the request made a chat request (server/responses.h), answered as a response. */
static enum MHD_Result handle_responses(sl_http *h, struct MHD_Connection *c, conn *cx) {
    sl_api_error e;
    json_t *req;
    char *body = sl_responses_chat_body(h->store, cx->body, cx->n, &req, &e);
    if (!body) return reply_error(c, cx, &e);
    const char *why = sl_responses_background_refusal(req, h->store != NULL);
    if (why) {
        free(body);
        json_decref(req);
        sl_api_set_error(&e, 400, "background", "'background': %s", why);
        return reply_error(c, cx, &e);
    }
    enum MHD_Result r = handle_generate(h, c, cx, SL_API_CHAT, body, strlen(body), &(front){.resp_req = req});
    free(body);
    json_decref(req);
    return r;
}

/* Each of in[0, n) an embedding request of the scheduler (pooled as pooling says, normalized as normalize says),
 * waited for in order; reqs[i] holds input i's vector(s) (reqs[i]->embd) until released. *made: the requests
 * made (to release, also on failure). Returns 0 when all are done, -1 when the client hung up (all cancelled),
 * else the status of the failure e names (param "PARAM[i]" for the input that failed). */
static int run_pooled(sl_http *h, struct MHD_Connection *c, const sl_api_prompt *in, int32_t n, sl_pooling pooling,
                      int32_t normalize, const char *param, sl_req **reqs, int32_t *made, sl_api_error *e) {
    sl_req_params p = {.embed = true, .pooling = pooling, .normalize = normalize, .logprobs = -1, .prompt_logprobs = -1};
    p.sampling = sl_sampler_default_params();
    for (*made = 0; *made < n; (*made)++)
        if (sl_req_create(h->sched, in[*made].ids, in[*made].n, &p, &reqs[*made]) != SL_OK) {
            sl_api_set_error(e, 400, param, "%s[%d]: %s", param, *made, sl_last_error());
            return 400;
        }
    int status = 0;
    for (int32_t i = 0; i < n; i++) sl_sched_submit(h->sched, reqs[i]);
    for (int32_t i = 0; i < n && !status; i++) { /* in order: each wait is a slice, watching for a hang-up */
        sl_req *r = reqs[i];
        pthread_mutex_lock(&r->mu);
        while (!r->finished) {
            sl_cond_wait_ms(&r->cv, &r->mu, WAIT_SLICE_MS);
            if (!r->finished && client_gone(c)) {
                status = -1;
                break;
            }
        }
        if (r->finished && (r->http_error || r->finish == SL_FR_ABORT)) {
            status = r->http_error ? r->http_error : 503;
            sl_api_set_error(e, status, NULL, "%s[%d]: %s", param, i, r->error[0] ? r->error : "the request was aborted");
        }
        pthread_mutex_unlock(&r->mu);
    }
    if (status)
        for (int32_t i = 0; i < n; i++) sl_req_cancel(h->sched, reqs[i]);
    return status;
}

/* The answer to run_pooled's failure: nothing when the client hung up (counted by finish reason "abort"), else the
 * error. */
static enum MHD_Result pooled_failed(struct MHD_Connection *c, conn *cx, int status, sl_api_error *e) {
    if (status > 0) return reply_error(c, cx, e);
    cx->status = 0;
    return MHD_NO;
}

/* The forms of an embeddings answer. */
enum { EMB_OPENAI, EMB_LLAMA, EMB_OLLAMA, EMB_OLLAMA_LEGACY };

/* POST /v1/embeddings: each input a request of the scheduler that computes its prompt and pools the hidden
 * states (server/sched.h); the answer once all are done, or nothing if the client hangs up first. The request
 * body[0, n) (an OpenAI one, or llama.cpp's); form: the answer's (EMB_OLLAMA*: for Ollama's request oll_req). */
static enum MHD_Result handle_embeddings(sl_http *h, struct MHD_Connection *c, conn *cx, int form, const char *body,
                                         size_t n, const json_t *oll_req) {
    const bool llama = form == EMB_LLAMA;
    if (atomic_load(&h->draining))
        return reply_err(c, cx, 503, NULL, "the server is shutting down and takes no new requests");
    if (!llama && h->api.pooling == SL_POOL_NONE) /* (llama.cpp's words) */
        return reply_err(c, cx, 400, NULL, "Pooling type 'none' is not OAI compatible. Please use a different pooling type "
                                           "(--pooling), or llama.cpp's POST /embedding");
    if (h->api.pooling == SL_POOL_RANK)
        return reply_err(c, cx, 400, NULL, "this server ranks (--pooling rank): score pairs with POST /rerank or /score, "
                                           "or start it with another --pooling for embeddings");
    sl_api_embed_request er;
    sl_api_error e;
    if (!sl_api_parse_embeddings(&h->api, body, n, &er, &e)) return reply_error(c, cx, &e);
    sl_req **reqs = calloc((size_t)er.n_inputs, sizeof *reqs);
    const float **vecs = calloc((size_t)er.n_inputs, sizeof *vecs);
    if (!reqs || !vecs) {
        free(reqs);
        free(vecs);
        sl_api_embed_request_free(&er);
        return reply_err(c, cx, 500, NULL, "out of memory");
    }
    atomic_fetch_add(&h->in_flight, 1);
    int32_t made = 0;
    /* (a Matryoshka cut: pooled unnormalized, cut, then normalized) */
    const int status = run_pooled(h, c, er.inputs, er.n_inputs, h->api.pooling, er.dimensions ? -1 : er.normalize, "input",
                                  reqs, &made, &e);
    const int32_t dim = er.dimensions ? er.dimensions : h->api.model->hp.n_embd;
    float *cut = !status && er.dimensions ? malloc(sizeof(float) * (size_t)dim * (size_t)made) : NULL;
    enum MHD_Result ret;
    if (status) {
        ret = pooled_failed(c, cx, status, &e);
    } else if (er.dimensions && !cut) {
        ret = reply_err(c, cx, 500, NULL, "out of memory");
    } else {
        int64_t n_tokens = 0;
        for (int32_t i = 0; i < made; i++) {
            vecs[i] = reqs[i]->embd;
            n_tokens += er.inputs[i].n;
            if (!cut) continue;
            float *v = cut + (size_t)i * (size_t)dim;
            memcpy(v, reqs[i]->embd, sizeof(float) * (size_t)dim);
            sl_embd_normalize(v, dim, er.normalize);
            vecs[i] = v;
        }
        json_t *o = llama ? sl_api_llama_embeddings_json(&er, vecs, dim, h->api.pooling == SL_POOL_NONE)
                    : form != EMB_OPENAI
                        ? sl_ollama_embed_answer(oll_req, form == EMB_OLLAMA_LEGACY, vecs, made, dim, n_tokens, cx->t0)
                        : sl_api_embeddings_json(&h->api, &er, vecs, dim, n_tokens);
        ret = o ? reply_json(c, cx, 200, o) : reply_err(c, cx, 500, NULL, "out of memory");
    }
    free(cut);
    for (int32_t i = 0; i < made; i++) sl_req_release(reqs[i]);
    free(reqs);
    free(vecs);
    sl_api_embed_request_free(&er);
    atomic_fetch_sub(&h->in_flight, 1);
    return ret;
}

/* POST /api/chat and /api/generate (Ollama's): the request made an OpenAI one (server/ollama.h), answered in
 * Ollama's form; one with nothing to answer "loads" the model. */
static enum MHD_Result handle_ollama(sl_http *h, struct MHD_Connection *c, conn *cx, bool generate) {
    sl_api_error e;
    json_t *req = sl_api_load_body(cx->body, cx->n, &e);
    if (!req) return reply_error(c, cx, &e);
    enum MHD_Result r;
    sl_api_kind kind;
    char *body = NULL, *fim = NULL;
    if (sl_ollama_load_only(req, generate)) {
        json_t *m = json_pack("{s:o*}", "model", sl_ollama_model(req));
        if (!sl_api_check_model(&h->api, m, &e)) r = reply_error(c, cx, &e);
        else r = reply_json(c, cx, 200, sl_ollama_load_answer(req, generate));
        json_decref(m);
    } else if (!(body = sl_ollama_openai_body(req, generate, &kind, &e))) {
        r = reply_error(c, cx, &e);
    } else if (kind == SL_API_COMPLETIONS && sl_api_completions_fim(&h->api, body, strlen(body), &fim, &e) < 0) {
        snprintf(e.param, sizeof e.param, "%s", sl_ollama_param(e.param, true));
        r = reply_error(c, cx, &e);
    } else {
        const char *b = fim ? fim : body;
        r = handle_generate(h, c, cx, kind, b, strlen(b), &(front){.oll_req = req, .oll_generate = generate});
    }
    free(fim);
    free(body);
    json_decref(req);
    return r;
}

/* POST /api/embed and /api/embeddings (Ollama's; embed: the current one). */
static enum MHD_Result handle_ollama_embed(sl_http *h, struct MHD_Connection *c, conn *cx, bool embed) {
    sl_api_error e;
    json_t *req = sl_api_load_body(cx->body, cx->n, &e);
    char *body = req ? sl_ollama_embed_body(req, !embed, &e) : NULL;
    enum MHD_Result r = body ? handle_embeddings(h, c, cx, embed ? EMB_OLLAMA : EMB_OLLAMA_LEGACY, body, strlen(body), req)
                             : reply_error(c, cx, &e);
    free(body);
    json_decref(req);
    return r;
}

/* POST /rerank (llama.cpp's and vLLM's, Jina's and Cohere's form; TEI's with "texts") and POST /score (vLLM's):
 * each (query, document) pair the model's rerank prompt, pooled as the reranker reads it, its score the
 * classification head's first output (server/rerank.h). */
static enum MHD_Result handle_rerank(sl_http *h, struct MHD_Connection *c, conn *cx, bool score) {
    if (atomic_load(&h->draining))
        return reply_err(c, cx, 503, NULL, "the server is shutting down and takes no new requests");
    if (h->api.pooling != SL_POOL_RANK) /* (llama.cpp's words and status) */
        return reply_err(c, cx, 501, NULL, "This server does not support reranking. Start it with `--reranking` (a model "
                                           "with a classification head)");
    sl_rerank_request rr;
    sl_api_error e;
    if (!sl_rerank_parse(&h->api, score, cx->body ? cx->body : "", cx->n, &rr, &e)) return reply_error(c, cx, &e);
    sl_req **reqs = calloc((size_t)rr.n, sizeof *reqs);
    float *scores = calloc((size_t)rr.n, sizeof *scores), *outs = calloc((size_t)h->api.model->hp.n_embd, sizeof *outs);
    if (!reqs || !scores || !outs) {
        free(reqs);
        free(scores);
        free(outs);
        sl_rerank_request_free(&rr);
        return reply_err(c, cx, 500, NULL, "out of memory");
    }
    atomic_fetch_add(&h->in_flight, 1);
    int32_t made = 0;
    const int status = run_pooled(h, c, rr.pairs, rr.n, sl_rank_position(h->api.model), -1, score ? "text_2" : "documents",
                                  reqs, &made, &e);
    enum MHD_Result ret;
    if (status) {
        ret = pooled_failed(c, cx, status, &e);
    } else {
        int64_t n_tokens = 0;
        bool ok = true;
        for (int32_t i = 0; i < made && ok; i++) {
            ok = sl_rank_head(h->api.model, reqs[i]->embd, outs) > 0;
            scores[i] = outs[0];
            n_tokens += rr.pairs[i].n;
        }
        json_t *o = ok ? sl_rerank_json(&h->api, &rr, scores, n_tokens) : NULL;
        ret = o ? reply_json(c, cx, 200, o) : reply_err(c, cx, 500, NULL, "out of memory");
    }
    for (int32_t i = 0; i < made; i++) sl_req_release(reqs[i]);
    free(reqs);
    free(scores);
    free(outs);
    sl_rerank_request_free(&rr);
    atomic_fetch_sub(&h->in_flight, 1);
    return ret;
}

/* vLLM's POST /classify: each input through the model's classification head (server/rerank.h). */
static enum MHD_Result handle_classify(sl_http *h, struct MHD_Connection *c, conn *cx) {
    if (atomic_load(&h->draining))
        return reply_err(c, cx, 503, NULL, "the server is shutting down and takes no new requests");
    const sl_model *m = h->api.model;
    if (!sl_model_can_rank(m))
        return reply_err(c, cx, 501, NULL, "This server's model has no classification head (cls.output.weight): it cannot "
                                           "classify");
    sl_classify_request cr;
    sl_api_error e;
    if (!sl_classify_parse(&h->api, cx->body ? cx->body : "", cx->n, &cr, &e)) return reply_error(c, cx, &e);
    const int32_t d = m->hp.n_embd;
    sl_req **reqs = calloc((size_t)cr.n, sizeof *reqs);
    float *probs = calloc((size_t)cr.n * (size_t)d, sizeof *probs), *logits = calloc((size_t)d, sizeof *logits);
    const float **rows = calloc((size_t)cr.n, sizeof *rows);
    if (!reqs || !probs || !logits || !rows) {
        free(reqs);
        free(probs);
        free(logits);
        free(rows);
        sl_classify_request_free(&cr);
        return reply_err(c, cx, 500, NULL, "out of memory");
    }
    atomic_fetch_add(&h->in_flight, 1);
    int32_t made = 0;
    const int status = run_pooled(h, c, cr.inputs, cr.n, sl_rank_position(m), -1, "input", reqs, &made, &e);
    enum MHD_Result ret;
    if (status) {
        ret = pooled_failed(c, cx, status, &e);
    } else {
        int64_t n_tokens = 0;
        int32_t n_cls = 0;
        for (int32_t i = 0; i < made; i++) {
            n_cls = sl_cls_logits(m, reqs[i]->embd, logits);
            sl_classify_probs(logits, n_cls, probs + (size_t)i * (size_t)d);
            rows[i] = probs + (size_t)i * (size_t)d;
            n_tokens += cr.inputs[i].n;
        }
        json_t *o = n_cls > 0 ? sl_classify_json(&h->api, &cr, rows, n_cls, n_tokens) : NULL;
        ret = o ? reply_json(c, cx, 200, o) : reply_err(c, cx, 500, NULL, "out of memory");
    }
    for (int32_t i = 0; i < made; i++) sl_req_release(reqs[i]);
    free(reqs);
    free(probs);
    free(logits);
    free(rows);
    sl_classify_request_free(&cr);
    atomic_fetch_sub(&h->in_flight, 1);
    return ret;
}

/* ---- routing ---------------------------------------------------------------- */

static sl_status read_pem(const char *path, const char *flag, char **out);

/* The CA certificates of a PEM text as a GnuTLS trust list, or NULL when it holds none. */
static gnutls_x509_trust_list_t trust_of(const char *pem) {
    gnutls_x509_trust_list_t tl = NULL;
    const gnutls_datum_t d = {(unsigned char *)pem, (unsigned)strlen(pem)};
    if (gnutls_x509_trust_list_init(&tl, 0) < 0) return NULL;
    if (gnutls_x509_trust_list_add_trust_mem(tl, &d, NULL, GNUTLS_X509_FMT_PEM, 0, 0) <= 0) {
        gnutls_x509_trust_list_deinit(tl, 1);
        return NULL;
    }
    return tl;
}

/* --enable-ssl-refresh: the --ssl-ca-certs file changed: its CAs from now on, or the ones before kept (and why
 * on stderr). The caller holds tls_mu. */
static void ca_reload(sl_http *h) {
    char *pem = NULL;
    sl_status st = read_pem(h->cfg.tls_ca_file, "--ssl-ca-certs", &pem);
    gnutls_x509_trust_list_t tl = st == SL_OK ? trust_of(pem) : NULL;
    free(pem);
    if (tl) {
        gnutls_x509_trust_list_deinit(h->trust, 1);
        h->trust = tl;
        sl_filewatch_take(&h->ca_watch);
        fprintf(stderr, "shardlm serve: --enable-ssl-refresh: %s changed: client certificates are checked against "
                        "its CAs\n", h->cfg.tls_ca_file);
    } else {
        sl_filewatch_refuse(&h->ca_watch);
        fprintf(stderr, "shardlm serve: --enable-ssl-refresh: %s; the CAs before stay in use\n",
                st != SL_OK ? sl_last_error() : "no CA certificate GnuTLS could take in --ssl-ca-certs");
    }
}

/* --ssl-ca-certs: the client's certificate chains to one of its CAs (libmicrohttpd asks for a certificate; it is
 * checked here, against the CAs of the file as last read); where one is only checked if sent (--ssl-cert-reqs
 * 1), a client without one passes. */
static bool client_cert_ok(sl_http *h, struct MHD_Connection *c, bool required) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session) return false;
    gnutls_session_t s = (gnutls_session_t)ci->tls_session;
    unsigned n = 0;
    const gnutls_datum_t *raw = gnutls_certificate_get_peers(s, &n);
    if (!raw || n == 0) return !required;
    gnutls_x509_crt_t chain[16];
    unsigned k = 0;
    bool ok = true;
    for (; k < n && k < 16 && ok; k++)
        ok = gnutls_x509_crt_init(&chain[k]) >= 0 && gnutls_x509_crt_import(chain[k], &raw[k], GNUTLS_X509_FMT_DER) >= 0;
    unsigned status = 1;
    if (ok) {
        pthread_mutex_lock(&h->tls_mu);
        if (h->cfg.tls_refresh && sl_filewatch_changed(&h->ca_watch)) ca_reload(h);
        ok = gnutls_x509_trust_list_verify_crt2(h->trust, chain, k, NULL, 0, 0, &status, NULL) >= 0 && status == 0;
        pthread_mutex_unlock(&h->tls_mu);
    }
    for (unsigned i = 0; i < k; i++) gnutls_x509_crt_deinit(chain[i]);
    return ok;
}

static enum MHD_Result route(sl_http *h, struct MHD_Connection *c, conn *cx, const char *url, const char *method) {
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (h->tls_trust && !client_cert_ok(h, c, h->cfg.tls_cert_reqs >= 2))
        return reply_err(c, cx, 403, NULL, h->cfg.tls_cert_reqs >= 2 ? "a client certificate signed by this server's --ssl-ca-certs is required"
                                                                    : "the client certificate is not signed by this server's --ssl-ca-certs");
    url = sl_llama_path_alias(url); /* (llama.cpp's other names of its paths) */
    if (!strcmp(url, "/invocations") && !strcmp(method, "POST")) { /* SageMaker's: the endpoint the body is for */
        const char *to = sl_api_invocation_path(cx->body, cx->n, h->api.pooling == SL_POOL_RANK);
        if (!to)
            return reply_err(c, cx, 400, NULL, SL_API_INVOCATIONS_HELP);
        url = to;
    }
    if (!strcmp(method, "OPTIONS")) { /* a CORS preflight: answered before any key check (browsers send none) */
        struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!r) return MHD_NO;
        const char *want = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Access-Control-Request-Headers");
        MHD_add_response_header(r, "Access-Control-Allow-Methods", SL_CORS_METHODS);
        MHD_add_response_header(r, "Access-Control-Allow-Headers", want && !strpbrk(want, "\r\n") ? want : "*");
        MHD_add_response_header(r, "Access-Control-Max-Age", SL_CORS_MAX_AGE);
        add_cors(c, cx, r);
        enum MHD_Result ret = MHD_queue_response(c, 204, r);
        MHD_destroy_response(r);
        cx->status = 204;
        return ret;
    }
    if (!strcmp(url, "/slots") || !strncmp(url, "/slots/", 7)) /* (llama.cpp's words when its slots are off) */
        return reply_err(c, cx, 501, NULL, "This server does not support slots endpoint: its sequences are scheduled per "
                                           "step, not held in slots");
    if (!strcmp(url, "/health")) {
        if (!get) return reply_err(c, cx, 405, NULL, "use GET");
        return reply(c, cx, 200, "application/json", strdup("{\"status\":\"ok\"}"));
    }
    if (!strcmp(url, "/ready")) {
        if (!get) return reply_err(c, cx, 405, NULL, "use GET");
        bool ok = atomic_load(&h->ready) && !atomic_load(&h->draining);
        return reply(c, cx, ok ? 200 : 503, "application/json",
                     strdup(ok ? "{\"status\":\"ready\"}" : "{\"status\":\"not ready\"}"));
    }
    if (!strcmp(url, "/ping")) /* vLLM's (SageMaker's) liveness check, GET or POST */
        return reply(c, cx, 200, "application/json", strdup("{}"));
    if (!strcmp(url, "/version")) { /* vLLM's */
        if (!get) return reply_err(c, cx, 405, NULL, "use GET");
        return reply_json(c, cx, 200, json_pack("{s:s}", "version", SHARDLM_VERSION));
    }
    if (!strcmp(url, "/metrics")) {
        if (!get) return reply_err(c, cx, 405, NULL, "use GET");
        return reply(c, cx, 200, "text/plain; version=0.0.4", sl_metrics_render(h->metrics, h->api.model_id));
    }
    if (!strncmp(url, "/v1/responses/", 14)) { /* OpenAI's retrieve and delete: GET / DELETE /v1/responses/{id} */
        if (!authorized(h, c)) return reply_err(c, cx, 401, NULL, "missing or wrong API key (Authorization: Bearer ...)");
        const size_t ul = strlen(url);
        if (ul > 14 + 12 && !strcmp(url + ul - 12, "/input_items")) { /* GET /v1/responses/{id}/input_items */
            if (!get) return reply_err(c, cx, 405, NULL, "use GET");
            char id[128];
            snprintf(id, sizeof id, "%.*s", (int)(ul - 14 - 12), url + 14);
            sl_api_error e;
            char *out = sl_resp_store_input_items(h->store, id, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit"),
                                                  MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "order"),
                                                  MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after"), &e);
            return out ? reply(c, cx, 200, "application/json", out) : reply_error(c, cx, &e);
        }
        if (ul > 14 + 7 && !strcmp(url + ul - 7, "/cancel")) { /* POST /v1/responses/{id}/cancel */
            if (strcmp(method, "POST")) return reply_err(c, cx, 405, NULL, "use POST");
            char id[128];
            snprintf(id, sizeof id, "%.*s", (int)(ul - 14 - 7), url + 14);
            return bg_cancel(h, c, cx, id);
        }
        const bool del = !strcmp(method, "DELETE");
        if (!get && !del) return reply_err(c, cx, 405, NULL, "use GET or DELETE");
        char *out = sl_resp_store_http(h->store, url + 14, del);
        if (out) return reply(c, cx, 200, "application/json", out);
        sl_api_error e;
        sl_api_set_error(&e, 404, NULL, "no response '%.100s' is kept here", url + 14);
        return reply_error(c, cx, &e);
    }
    const bool one_model = !strncmp(url, "/v1/models/", 11); /* OpenAI's retrieve: GET /v1/models/{id} */
    bool known = !strcmp(url, "/v1/models") || one_model || !strcmp(url, "/v1/completions") ||
                 !strcmp(url, "/v1/chat/completions") || !strcmp(url, "/v1/responses") || !strcmp(url, "/completion") ||
                 !strcmp(url, "/completions") || !strcmp(url, "/tokenize") ||
                 !strcmp(url, "/detokenize") || !strcmp(url, "/v1/embeddings") || !strcmp(url, "/embedding") ||
                 !strcmp(url, "/embeddings") || !strcmp(url, "/props") ||
                 !strcmp(url, "/apply-template") || !strcmp(url, "/infill") || !strcmp(url, "/v1/messages") ||
                 !strcmp(url, "/v1/messages/count_tokens") || sl_rerank_path(url) != 0 || !strcmp(url, "/api/tags") ||
                 !strcmp(url, "/api/show") || !strcmp(url, "/reset_prefix_cache") || !strcmp(url, "/api/chat") ||
                 !strcmp(url, "/api/generate") || !strcmp(url, "/api/embed") || !strcmp(url, "/api/embeddings") ||
                 !strcmp(url, "/api/version") || !strcmp(url, "/api/ps");
    cx->anthropic = !strncmp(url, "/v1/messages", 12);
    cx->ollama = !strncmp(url, "/api/", 5);
    if (!known) return reply_err(c, cx, 404, NULL, "no such endpoint");
    if (!authorized(h, c)) return reply_err(c, cx, 401, NULL, "missing or wrong API key (Authorization: Bearer ...)");
    if (!strcmp(url, "/v1/models") || one_model) { /* (each served name a model, as vLLM lists them) */
        if (!get) return reply_err(c, cx, 405, NULL, "use GET");
        const char *names = h->api.model_names ? h->api.model_names : h->api.model_id, *name;
        size_t len;
        json_t *data = json_array();
        while (sl_api_next_name(&names, &name, &len)) {
            json_t *model = json_pack("{s:s%,s:s,s:I,s:s,s:s,s:i}", "id", name, len, "object", "model", "created",
                                      (json_int_t)h->started, "owned_by", "shardlm", "root", h->api.model_id,
                                      "max_model_len", h->api.n_ctx);
            if (one_model && strlen(url + 11) == len && !memcmp(url + 11, name, len)) {
                json_decref(data);
                return reply_json(c, cx, 200, model);
            }
            json_array_append_new(data, model);
        }
        if (!one_model) return reply_json(c, cx, 200, json_pack("{s:s,s:o}", "object", "list", "data", data));
        json_decref(data);
        sl_api_error e;
        sl_api_set_error(&e, 404, "model", "The model '%s' does not exist; this server serves '%s'", url + 11,
                         h->api.model_id);
        return reply_error(c, cx, &e);
    }
    if (!strcmp(url, "/api/tags")) { /* Ollama's model list, as llama.cpp answers it */
        if (!get) return reply_err(c, cx, 405, NULL, "use GET");
        return reply_json(c, cx, 200, sl_api_ollama_tags(&h->api, (long long)h->started));
    }
    if (!strcmp(url, "/api/show")) { /* Ollama's model details, as llama.cpp answers them */
        if (!post && !get) return reply_err(c, cx, 405, NULL, "use POST");
        return reply_json(c, cx, 200, sl_api_ollama_show(&h->api));
    }
    if (!strcmp(url, "/api/version")) { /* Ollama's: the API level spoken */
        if (!get) return reply_err(c, cx, 405, NULL, "use GET");
        return reply_json(c, cx, 200, json_pack("{s:s}", "version", SL_OLLAMA_VERSION));
    }
    if (!strcmp(url, "/api/ps")) { /* Ollama's models in memory: the one served */
        if (!get) return reply_err(c, cx, 405, NULL, "use GET");
        return reply_json(c, cx, 200, sl_api_ollama_ps(&h->api));
    }
    if (!strcmp(url, "/reset_prefix_cache")) { /* vLLM's: forget every cached prefix (between two steps) */
        if (!post) return reply_err(c, cx, 405, NULL, "use POST");
        const int32_t freed = sl_sched_reset_prefix_cache(h->sched, 10000);
        if (freed < 0) return reply_err(c, cx, 503, NULL, "the scheduler did not reset the prefix cache within 10 s");
        return reply_json(c, cx, 200, json_pack("{s:s,s:i}", "status", "ok", "cached_blocks_freed", freed));
    }
    if (!strcmp(url, "/props")) { /* llama.cpp's: what this server serves and how */
        if (!get) return reply_err(c, cx, 405, NULL, "use GET");
        return reply_json(c, cx, 200, sl_api_props_json(&h->api, sl_sched_max_seqs(h->sched)));
    }
    if (!post) return reply_err(c, cx, 405, NULL, "use POST");
    if (cx->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body is larger than %lld bytes", (long long)h->cfg.max_body_bytes);
        return reply_err(c, cx, 413, NULL, msg);
    }
    if (!strcmp(url, "/v1/completions")) { /* (with a suffix or llama.cpp's infill fields: fill in the middle) */
        sl_api_error e;
        char *fim = NULL;
        const int k = sl_api_completions_fim(&h->api, cx->body ? cx->body : "", cx->n, &fim, &e);
        if (k < 0) return reply_error(c, cx, &e);
        enum MHD_Result r = handle_generate(h, c, cx, SL_API_COMPLETIONS, fim ? fim : cx->body ? cx->body : "",
                                            fim ? strlen(fim) : cx->n, NULL);
        free(fim);
        return r;
    }
    if (!strcmp(url, "/v1/chat/completions"))
        return handle_generate(h, c, cx, SL_API_CHAT, cx->body ? cx->body : "", cx->n, NULL);
    if (!strcmp(url, "/v1/responses")) return handle_responses(h, c, cx);
    const char *body = cx->body ? cx->body : "";
    if (!strcmp(url, "/v1/embeddings")) return handle_embeddings(h, c, cx, EMB_OPENAI, body, cx->n, NULL);
    if (!strcmp(url, "/embedding") || !strcmp(url, "/embeddings"))
        return handle_embeddings(h, c, cx, EMB_LLAMA, body, cx->n, NULL);
    if (!strcmp(url, "/api/chat") || !strcmp(url, "/api/generate")) return handle_ollama(h, c, cx, url[5] == 'g');
    if (!strcmp(url, "/api/embed") || !strcmp(url, "/api/embeddings")) return handle_ollama_embed(h, c, cx, !strcmp(url, "/api/embed"));
    if (!strcmp(url, "/completion") || !strcmp(url, "/completions")) return handle_llama(h, c, cx);
    if (!strcmp(url, "/infill")) return handle_infill(h, c, cx);
    if (sl_rerank_path(url) == 3) return handle_classify(h, c, cx);
    if (sl_rerank_path(url)) return handle_rerank(h, c, cx, sl_rerank_path(url) == 2);
    if (!strcmp(url, "/v1/messages") || !strcmp(url, "/v1/messages/count_tokens"))
        return handle_anthropic(h, c, cx, url[12] == '/');
    sl_api_error e;
    char *out = !strcmp(url, "/tokenize")         ? sl_api_tokenize(&h->api, cx->body ? cx->body : "", cx->n, &e)
                : !strcmp(url, "/apply-template") ? sl_api_apply_template(&h->api, cx->body ? cx->body : "", cx->n, &e)
                                          : sl_api_detokenize(&h->api, cx->body ? cx->body : "", cx->n, &e);
    if (!out) return reply_error(c, cx, &e);
    return reply(c, cx, 200, "application/json", out);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    sl_http *h = cls;
    conn *cx = *con_cls;
    if (!cx) {
        cx = calloc(1, sizeof *cx);
        if (!cx) return MHD_NO;
        cx->h = h;
        cx->t0 = sl_sched_now_s();
        snprintf(cx->method, sizeof cx->method, "%s", method);
        snprintf(cx->path, sizeof cx->path, "%s", url);
        sl_utf8_scrub(cx->path);
        *con_cls = cx;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (cx->too_big || cx->n + n > (size_t)h->cfg.max_body_bytes) {
            cx->too_big = true;
            return MHD_YES;
        }
        if (cx->n + n + 1 > cx->cap) {
            size_t cap = cx->cap ? cx->cap * 2 : 4096;
            while (cap < cx->n + n + 1) cap *= 2;
            char *nb = realloc(cx->body, cap);
            if (!nb) return MHD_NO;
            cx->body = nb;
            cx->cap = cap;
        }
        memcpy(cx->body + cx->n, upload, n);
        cx->n += n;
        cx->body[cx->n] = '\0';
        return MHD_YES;
    }
    return route(h, c, cx, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)c;
    (void)toe;
    sl_http *h = cls;
    conn *cx = *con_cls;
    if (!cx) return;
    if (cx->status) sl_metrics_count_status(h->metrics, cx->status);
    /* (a generation's line comes from the generation; health checks and scrapes that succeed, from routers and
     * Prometheus every few seconds, get none) */
    if (h->cfg.access_log && !cx->gen && !(cx->status == 200 && sl_api_probe_path(cx->path)))
        fprintf(stderr, "shardlm serve: %s %s %d %.1f ms%s\n", cx->method, cx->path, cx->status,
                (sl_sched_now_s() - cx->t0) * 1e3, cx->status ? "" : " (client gone)");
    free(cx->body);
    free(cx);
    *con_cls = NULL;
}

/* ---- lifecycle ---------------------------------------------------------------- */

/* What sl_http_start made (the daemon stopped, or never started). */
typedef struct tls_cred tls_cred;
static void cred_free(tls_cred *c);
static tls_cred *cred_make(const char *key_pem, const char *cert_pem, const char *pass);
static sl_http *refresh_http; /* (--enable-ssl-refresh's server, below) */

static void http_free(sl_http *h) {
    pthread_mutex_destroy(&h->bg_mu);
    pthread_cond_destroy(&h->bg_cv);
    sl_resp_store_free(h->store);
    sl_api_keys_free(&h->keys);
    free(h->tls_key);
    free(h->tls_cert);
    free(h->tls_trust);
    if (h->trust) gnutls_x509_trust_list_deinit(h->trust, 1);
    if (refresh_http == h) refresh_http = NULL;
    cred_free(h->cred);
    pthread_mutex_destroy(&h->tls_mu);
    sl_free(h);
}

/* A PEM file's text (NUL-terminated) into *out. */
static sl_status read_pem(const char *path, const char *flag, char **out) {
    char *buf = sl_read_file(path, NULL);
    if (!buf) return SL_FAIL(SL_ERR_IO, "%s %s: %s", flag, path, strerror(errno));
    if (!strstr(buf, "-----BEGIN ")) {
        free(buf);
        return SL_FAIL(SL_ERR_INVALID, "%s %s: not a PEM file", flag, path);
    }
    *out = buf;
    return SL_OK;
}

/* The key and certificate chain of key_file / cert_file as PEM texts (malloc'd), read and checked: a key, a
 * certificate, the one the other's. */
static sl_status read_pair(const char *key_file, const char *cert_file, const char *pass, char **key_pem, char **cert_pem) {
    *key_pem = *cert_pem = NULL;
    sl_status st = read_pem(key_file, "--ssl-keyfile", key_pem);
    if (st == SL_OK) st = read_pem(cert_file, "--ssl-certfile", cert_pem);
    /* read once here too, to name what is wrong (the TLS library only says that it failed) */
    BIO *kb = st == SL_OK ? BIO_new_mem_buf(*key_pem, -1) : NULL, *cb = st == SL_OK ? BIO_new_mem_buf(*cert_pem, -1) : NULL;
    /* (no callback: OpenSSL takes pass as an encrypted key's passphrase; without one it asks nobody) */
    EVP_PKEY *key = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, (void *)(pass ? pass : "")) : NULL;
    X509 *cert = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    if (st != SL_OK) {
    } else if (!key) {
        st = SL_FAIL(SL_ERR_INVALID, "--ssl-keyfile %s: %s", key_file,
                     pass ? "no private key in it that opens with --ssl-keyfile-password"
                          : "no unencrypted private key in it (an encrypted one needs --ssl-keyfile-password)");
    } else if (!cert) {
        st = SL_FAIL(SL_ERR_INVALID, "--ssl-certfile %s: no certificate in it", cert_file);
    } else if (X509_check_private_key(cert, key) != 1) {
        st = SL_FAIL(SL_ERR_INVALID, "--ssl-keyfile %s is not the key of --ssl-certfile %s", key_file, cert_file);
    }
    EVP_PKEY_free(key);
    X509_free(cert);
    BIO_free(kb);
    BIO_free(cb);
    ERR_clear_error();
    if (st != SL_OK) {
        free(*key_pem);
        free(*cert_pem);
        *key_pem = *cert_pem = NULL;
    }
    return st;
}

/* HTTPS: both files or neither, read. */
static sl_status load_tls(sl_http *h, const sl_http_cfg *cfg) {
    if (!cfg->tls_key_file && !cfg->tls_cert_file) {
        if (cfg->tls_ca_file) return SL_FAIL(SL_ERR_INVALID, "--ssl-ca-certs needs HTTPS (--ssl-keyfile and --ssl-certfile)");
        if (cfg->tls_refresh) return SL_FAIL(SL_ERR_INVALID, "--enable-ssl-refresh needs HTTPS (--ssl-keyfile and --ssl-certfile)");
        return SL_OK;
    }
    if (!cfg->tls_key_file || !cfg->tls_cert_file)
        return SL_FAIL(SL_ERR_INVALID, "HTTPS needs both --ssl-keyfile and --ssl-certfile");
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return SL_FAIL(SL_ERR_UNSUPPORTED, "this libmicrohttpd was built without TLS: --ssl-keyfile cannot be served");
    sl_status st = read_pair(cfg->tls_key_file, cfg->tls_cert_file, cfg->tls_key_password, &h->tls_key, &h->tls_cert);
    if (st == SL_OK) { /* (GnuTLS, which serves them, takes the pair OpenSSL read: said before the server starts) */
        tls_cred *c = cred_make(h->tls_key, h->tls_cert, cfg->tls_key_password);
        if (!c) st = SL_FAIL(SL_ERR_INVALID, "--ssl-keyfile %s / --ssl-certfile %s: GnuTLS cannot take them",
                             cfg->tls_key_file, cfg->tls_cert_file);
        cred_free(c);
    }
    if (st == SL_OK && cfg->tls_ca_file && cfg->tls_cert_reqs > 0) st = read_pem(cfg->tls_ca_file, "--ssl-ca-certs", &h->tls_trust);
    return st;
}

/* ---- --enable-ssl-refresh ------------------------------------------------------
 * The handshake asks a callback for the key and certificate (libmicrohttpd's HTTPS_CERT_CALLBACK, GnuTLS's
 * retrieve function), which once a second at most looks whether the files changed and, when they did and read
 * well, hands out the new ones from then on. */

struct tls_cred {
    gnutls_pcert_st pcert[16];
    unsigned n;
    gnutls_privkey_t key;
    struct tls_cred *older; /* (kept to the end: a session may still hold them) */
};

static void cred_free(tls_cred *c) {
    while (c) {
        tls_cred *older = c->older;
        for (unsigned i = 0; i < c->n; i++) gnutls_pcert_deinit(&c->pcert[i]);
        if (c->key) gnutls_privkey_deinit(c->key);
        free(c);
        c = older;
    }
}

static tls_cred *cred_make(const char *key_pem, const char *cert_pem, const char *pass) {
    tls_cred *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    const gnutls_datum_t kd = {(unsigned char *)key_pem, (unsigned)strlen(key_pem)},
                         cd = {(unsigned char *)cert_pem, (unsigned)strlen(cert_pem)};
    c->n = sizeof c->pcert / sizeof c->pcert[0];
    if (gnutls_pcert_list_import_x509_raw(c->pcert, &c->n, &cd, GNUTLS_X509_FMT_PEM, 0) < 0) c->n = 0;
    if (c->n == 0 || gnutls_privkey_init(&c->key) < 0 ||
        gnutls_privkey_import_x509_raw(c->key, &kd, GNUTLS_X509_FMT_PEM, pass, 0) < 0) {
        cred_free(c);
        return NULL;
    }
    return c;
}

/* (refresh_http: the retrieve function has no pointer of its own, so one such server a process) */

/* The files changed: the new key and certificate from now on, or the old ones kept (and why on stderr). */
static void tls_reload(sl_http *h) {
    char *key = NULL, *cert = NULL;
    sl_status st = read_pair(h->cfg.tls_key_file, h->cfg.tls_cert_file, h->cfg.tls_key_password, &key, &cert);
    tls_cred *c = st == SL_OK ? cred_make(key, cert, h->cfg.tls_key_password) : NULL;
    if (c) {
        c->older = h->cred;
        h->cred = c;
        sl_filewatch_take(&h->tls_watch);
        fprintf(stderr, "shardlm serve: --enable-ssl-refresh: %s and %s changed: new connections get them\n",
                h->cfg.tls_key_file, h->cfg.tls_cert_file);
    } else {
        sl_filewatch_refuse(&h->tls_watch);
        fprintf(stderr, "shardlm serve: --enable-ssl-refresh: %s; the key and certificate before stay in use\n",
                st != SL_OK ? sl_last_error() : "GnuTLS could not take them");
    }
    free(key);
    free(cert);
}

static int tls_retrieve(gnutls_session_t s, const gnutls_datum_t *req_ca, int n_req, const gnutls_pk_algorithm_t *algos,
                        int n_algos, gnutls_pcert_st **pcert, unsigned int *n_pcert, gnutls_privkey_t *key) {
    (void)s, (void)req_ca, (void)n_req, (void)algos, (void)n_algos;
    sl_http *h = refresh_http;
    pthread_mutex_lock(&h->tls_mu);
    if (sl_filewatch_changed(&h->tls_watch)) tls_reload(h);
    *pcert = h->cred->pcert;
    *n_pcert = h->cred->n;
    *key = h->cred->key;
    pthread_mutex_unlock(&h->tls_mu);
    return 0;
}

sl_status sl_http_start(const sl_http_cfg *cfg, const sl_api_ctx *api, sl_sched *sched, sl_metrics *metrics,
                        sl_http **out) {
    *out = NULL;
    sl_http *h = sl_calloc(1, sizeof *h);
    if (!h) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    h->cfg = *cfg;
    h->api = *api;
    sl_api_ctx_prepare(&h->api);
    h->sched = sched;
    h->metrics = metrics;
    h->started = (long long)time(NULL);
    pthread_mutex_init(&h->bg_mu, NULL);
    pthread_cond_init(&h->bg_cv, NULL);
    pthread_mutex_init(&h->tls_mu, NULL);
    if (cfg->responses_store > 0 &&
        !(h->store = sl_resp_store_new(cfg->responses_store, (size_t)cfg->responses_store_mib << 20))) {
        http_free(h);
        return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    }
    sl_status kst = sl_api_keys_load(&h->keys, cfg->api_key, cfg->api_key_file);
    if (kst != SL_OK) {
        http_free(h);
        return kst;
    }
    struct sockaddr_storage sa;
    socklen_t sa_len = 0;
    if ((kst = sl_listen_addr(cfg->host, cfg->port, &sa, &sa_len)) != SL_OK || (kst = load_tls(h, cfg)) != SL_OK) {
        http_free(h);
        return kst;
    }
    const bool tls = h->tls_key != NULL;
    struct MHD_OptionItem tls_ops[5] = {{MHD_OPTION_END, 0, NULL}}; /* (HTTPS: key, certificate, client CA, passphrase) */
    int n_ops = 0;
    if (tls && cfg->tls_refresh) { /* (the retrieve function hands them out, reloaded when the files change) */
        if (refresh_http) {
            http_free(h);
            return SL_FAIL(SL_ERR_INVALID, "--enable-ssl-refresh: one such HTTPS server a process");
        }
        if (!(h->cred = cred_make(h->tls_key, h->tls_cert, cfg->tls_key_password))) {
            http_free(h);
            return SL_FAIL(SL_ERR_INVALID, "--ssl-keyfile / --ssl-certfile: GnuTLS could not take them");
        }
        const char *watched[] = {cfg->tls_key_file, cfg->tls_cert_file};
        sl_filewatch_init(&h->tls_watch, watched, 2);
        refresh_http = h;
        tls_ops[n_ops++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)&tls_retrieve};
    } else if (tls) {
        tls_ops[n_ops++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key};
        tls_ops[n_ops++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert};
        if (cfg->tls_key_password)
            tls_ops[n_ops++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_KEY_PASSWORD, 0, (void *)cfg->tls_key_password};
    }
    if (tls && h->tls_trust) {
        tls_ops[n_ops++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, h->tls_trust};
        if (!(h->trust = trust_of(h->tls_trust))) {
            http_free(h);
            return SL_FAIL(SL_ERR_INVALID, "--ssl-ca-certs %s: no CA certificate GnuTLS could take in it", cfg->tls_ca_file);
        }
        const char *watched[] = {cfg->tls_ca_file};
        if (cfg->tls_refresh) sl_filewatch_init(&h->ca_watch, watched, 1);
    }
    h->d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                                (sa.ss_family == AF_INET6 ? MHD_USE_DUAL_STACK : 0) | (tls ? MHD_USE_TLS : 0),
                            (uint16_t)cfg->port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
                            /* chat templates render recursively: give connection threads a roomy stack */
                            MHD_OPTION_THREAD_STACK_SIZE, (size_t)8 << 20, MHD_OPTION_ARRAY, tls_ops, MHD_OPTION_END);
    if (!h->d) {
        http_free(h);
        if (tls)
            return SL_FAIL(SL_ERR_IO, "cannot listen on %s:%d with TLS (in use or not allowed, or --ssl-keyfile and "
                           "--ssl-certfile are not a matching PEM key and certificate)", cfg->host, cfg->port);
        return SL_FAIL(SL_ERR_IO, "cannot listen on %s:%d (in use, or not allowed)", cfg->host, cfg->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : cfg->port;
    *out = h;
    return SL_OK;
}

int sl_http_port(const sl_http *h) { return h->port; }
void sl_http_set_ready(sl_http *h, bool ready) { atomic_store(&h->ready, ready); }
void sl_http_drain(sl_http *h) { atomic_store(&h->draining, true); }
int sl_http_in_flight(const sl_http *h) { return atomic_load(&h->in_flight); }

void sl_http_stop(sl_http *h) {
    if (!h) return;
    MHD_stop_daemon(h->d);
    /* background responses: waited for (the drain let them finish, or the scheduler, stopped first, aborted
     * their requests: each ends at once; at most 30 s) */
    pthread_mutex_lock(&h->bg_mu);
    for (int i = 0; h->bg && i < 600; i++) sl_cond_wait_ms(&h->bg_cv, &h->bg_mu, 50);
    const bool left = h->bg != NULL;
    pthread_mutex_unlock(&h->bg_mu);
    if (left) { /* (a wedged scheduler: what they use stays, rather than be freed under them) */
        fprintf(stderr, "shardlm serve: background responses still running at exit\n");
        return;
    }
    http_free(h);
}

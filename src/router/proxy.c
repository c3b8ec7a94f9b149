/*
 * proxy.c — the router's I/O threads (see proxy.h).
 *
 * Each worker runs a level-triggered epoll loop over its listening socket,
 * its client connections and its upstream (engine) connections. Objects that
 * close during a loop iteration go to a graveyard freed at the end of the
 * iteration, so an event still queued for them in the same batch is skipped
 * rather than touching freed memory. A client whose request finished is
 * re-examined for pipelined requests at the end of the iteration too (never
 * from inside an upstream handler).
 *
 * Request life: client conn → xreq → attempt on engine (uconn from the
 * worker's pool or a new non-blocking connect) → response. An attempt that
 * fails before anything reached the client is retried on the next engine
 * (connection failures take the engine out of rotation at once); a stream
 * that fails after events reached the client is migrated (failover.h); when
 * no engine is left, the client gets a JSON error (502/503) or, mid-stream,
 * an SSE error event and [DONE].
 *
 * Timeouts (checked every 50 ms): connect, engine silence, client idle,
 * client head.
 */
#include "router/proxy.h"

#include "core/alloc.h"
#include "core/filewatch.h"
#include "core/status.h"
#include "core/strbuf.h"
#include "router/etcd.h"
#include "router/failover.h"
#include "router/hash.h"
#include "router/httpp.h"
#include "router/evstream.h"
#include "router/background.h"
#include "server/addr.h"
#include "server/llamacpp.h"
#include "server/rerank.h"
#include "server/cors.h"
#include "server/anthropic.h"
#include "server/ollama.h"
#include "server/responses.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define SEED_SESSION 0x53657373696f6e21ULL
#define SEED_PREFIX 0x5072656669782121ULL
#define MAX_TRIED 16
#define CLIENT_IDLE_NS (120LL * 1000000000LL)
#define CLIENT_HEAD_NS (30LL * 1000000000LL)
#define POOL_IDLE_NS (30LL * 1000000000LL)
#define SWEEP_NS (50LL * 1000000LL)
#define MAX_RESPONSE (256u << 20)
#define OUT_PAUSE (4u << 20)   /* client output backlog that pauses reading the engine */
#define OUT_RESUME (1u << 20)
#define MAX_EVENT (64u << 20)

enum { K_LISTEN = 1, K_WAKE, K_CLIENT, K_UP };
enum { EP_COMPLETIONS, EP_CHAT, EP_TOKENIZE, EP_DETOKENIZE, EP_EMBEDDINGS, EP_INFILL, EP_FANOUT };
enum { U_CONNECTING, U_SENDING, U_WAITING, U_IDLE, U_HANDSHAKE };
/* how an attempt failed */
enum { F_CONNECT, F_CONNECT_TIMEOUT, F_RESET, F_EOF, F_TIMEOUT, F_PROTO, F_UNAVAILABLE };

typedef struct obuf {
    char *p;
    size_t n, off, cap;
    bool oom;
} obuf;

typedef struct worker worker;
typedef struct xreq xreq;
typedef struct uconn uconn;

typedef struct cconn {
    int kind;
    int fd;
    bool dead;
    worker *w;
    struct cconn *prev, *next; /* worker's client list */
    struct cconn *next_dead, *next_todo;
    bool todo;
    char *in;
    size_t n_in, cap_in;
    sl_hp hp;
    bool head_checked;
    char *body;
    size_t n_body, cap_body;
    bool body_too_big;
    obuf out;
    xreq *x;
    bool close_after;
    bool keep_alive;          /* of the request being answered */
    int minor;                /* HTTP/1.<minor> of the request being answered */
    bool head;                /* it is a HEAD request: no body in the answer */
    int64_t out_ns;           /* last time output made progress (or was queued) */
    bool reading_paused;
    bool want_out;
    int64_t last_ns;
    bool anthropic;           /* the request being answered is Anthropic's (/v1/messages): errors in its form */
    bool ollama;              /* ... Ollama's (/api/...): errors in its form */
    char cors[256];           /* its Access-Control-Allow-Origin ("": none; server/cors.h) */
    /* the request being answered, for the access log */
    char method[8];
    char path[96];
    int status;               /* the status sent (0: none yet) */
    int64_t t_req;            /* ns: its head parsed */
    SSL *ssl;                 /* HTTPS (--ssl-keyfile): the connection's TLS, else NULL */
    bool tls_want_write;      /* its TLS reads wait for the socket to take what TLS has to send */
} cconn;

struct uconn {
    int kind;
    int fd;
    bool dead;
    worker *w;
    struct uconn *prev, *next; /* worker's upstream list */
    struct uconn *next_dead, *next_idle;
    sl_member *e; /* retained */
    int state;
    bool reused, got_bytes, head_seen, paused;
    obuf out;
    sl_hp hp;
    xreq *x;
    int64_t deadline_ns;
    uint32_t ep_mask; /* events registered with epoll */
    SSL *ssl;         /* an https:// engine's TLS (NULL: plain) */
    bool hs_write;    /* its handshake waits to write (else to read) */
};

/* One choice of a stream of several (n, prompts), as the engine streamed it (see xreq.mc). */
typedef struct fo_choice {
    int32_t *pids, n_pids, cap_pids; /* its prompt's ids (given with the first choice of each prompt) */
    bool have_pids;
    int32_t *gids, n_gids, cap_gids; /* the ids streamed (n_gids stays once it is continued) */
    sl_fo_stream fs;                 /* the text streamed */
    bool fin;                        /* its finish chunk went out */
} fo_choice;

struct xreq {
    cconn *c;
    uconn *u;
    int ep;
    bool head;
    char method[16];
    bool logged;          /* its access log line is written (the client left first) */
    char *target;
    char *ctype;
    char *auth;
    char *body;           /* what goes to the engine (owned) */
    size_t n_body;
    json_t *json;         /* the parsed client body (generation endpoints), or NULL */
    bool stream;
    bool want_ids;
    char model[128];
    sl_place_req q;
    sl_member *tried[MAX_TRIED];
    int n_tried;
    sl_member *cur;       /* engine of the attempt in progress (retained) */
    char last_id[64];     /* the id of the engine tried last, for the access log */
    bool stale_retry;
    /* response */
    int status;
    char up_ctype[128];
    bool sse;
    obuf resp;
    bool started;         /* something reached the client */
    int events;
    bool done_seen, finish_seen;
    /* stream state */
    sl_evstream sse_parser;
    int32_t *pids, n_pids, cap_pids;
    bool have_pids;
    int32_t *gids, n_gids, cap_gids;
    bool count_text;
    bool migrated;
    sl_fo_stream fs;
    /* a stream of several choices (the engine's `: choices N PER`): each choice's ids and text. When the
     * engine fails, the unfinished choices continue one after another, each a stream of its own (its
     * body in json, the original in json_all; pids, gids and fs its state), cur_k the one continuing
     * (-1: none yet), cont_done when it ended and another is next */
    fo_choice *mc;
    int n_mc, per_mc, cur_k;
    json_t *json_all;
    bool cont_done;
    bool usage_seen;      /* the stream's usage chunk went out */
    /* POST /reset_prefix_cache: sent to every engine in rotation in turn (the view when it came), each
     * one's answer in fo_results */
    sl_view *fo_view;
    int fo_next;
    json_t *fo_results;
    bool fo_models; /* ... Ollama's GET /api/tags or /api/ps: the engines' lists merged into one answer */
    /* POST /v1/responses: proxied as the chat request it makes (failover and all); its request, and the
     * stream's chat chunks made its events (server/responses.h) */
    json_t *resp_req;
    sl_resp_stream *rs;
    /* POST /v1/messages (Anthropic's): proxied as the chat request it makes (failover and all); its request,
     * and the stream's chat chunks made its events (server/anthropic.h) */
    json_t *anth_req;
    sl_anth_stream *as;
    /* POST /api/chat, /api/generate (Ollama's): proxied as the chat or completions request it makes (failover
     * and all); its request, and the stream's chunks made its lines (server/ollama.h) */
    json_t *oll_req;
    bool oll_generate;
    sl_ollama_stream *os;
    char resp_id[48];     /* its ids' stem, this router's own (engines count their ids from 1 each) */
    /* POST /completion (llama.cpp's): proxied as a completions request, answered in llama.cpp's form
     * (server/llamacpp.h); a stream's finished answers wait for the usage chunk for their counts */
    bool llama;
    int64_t n_predict;
    json_t *llama_ends;   /* index -> {finish, stop_reason} */
    int64_t t_first_ev;   /* ns: the first event from the engine */
    /* timing, ns */
    int64_t t_recv, t_up_send, t_up_done;
    bool added_done;
    bool finished;
    xreq *next_dead;
};

typedef struct pool {
    sl_member *e; /* retained */
    uconn *idle;
    int n_idle;
} pool;

struct worker {
    sl_proxy *px;
    sl_router *r;
    int idx;
    pthread_t th;
    int ep, lfd, wake_fd;
    int listen_tag, wake_tag;
    sl_view *view;
    pool *pools;
    int n_pools, cap_pools;
    cconn *clients;
    uconn *ups;
    cconn *dead_c, *todo;
    uconn *dead_u;
    xreq *dead_x;
    int n_clients;
    int64_t now, next_sweep;
    char rbuf[65536];
};

struct sl_proxy {
    sl_router *r;
    SSL_CTX *up_tls; /* TLS to https:// engines (their certificates verified) */
    SSL_CTX *srv_tls; /* HTTPS to clients (--ssl-keyfile, --ssl-certfile), or NULL */
    /* --enable-ssl-refresh: the files srv_tls was made of, watched; srv_tls made again when they change (a
     * connection's SSL holds its own reference to the context it was made from); under tls_mu */
    bool tls_refresh;
    sl_filewatch tls_watch;
    pthread_mutex_t tls_mu;
    int n;
    worker *w;
    int port;
    atomic_bool stop;
};

static SSL *new_client_ssl(sl_proxy *px);

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- output buffers -------------------------------------------------------------- */

static void ob_add(obuf *b, const void *p, size_t n) {
    if (b->oom || n == 0) return; /* (an empty request body has no buffer: p is NULL) */
    if (b->n + n > b->cap) {
        if (b->off > 0 && b->off >= b->n / 2) { /* reclaim what was sent */
            memmove(b->p, b->p + b->off, b->n - b->off);
            b->n -= b->off;
            b->off = 0;
        }
        if (b->n + n > b->cap) {
            size_t cap = b->cap ? b->cap * 2 : 4096;
            while (cap < b->n + n) cap *= 2;
            char *np = sl_realloc(b->p, cap);
            if (!np) {
                b->oom = true;
                return;
            }
            b->p = np;
            b->cap = cap;
        }
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void ob_str(obuf *b, const char *s) { ob_add(b, s, strlen(s)); }

static void ob_printf(obuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ob_printf(obuf *b, const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if ((size_t)k < sizeof tmp) {
        ob_add(b, tmp, (size_t)k);
        return;
    }
    char *big = malloc((size_t)k + 1);
    if (!big) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)k + 1, fmt, ap);
    va_end(ap);
    ob_add(b, big, (size_t)k);
    free(big);
}

static size_t ob_pending(const obuf *b) { return b->n - b->off; }
static void ob_reset(obuf *b) { b->n = b->off = 0; }
static void ob_free(obuf *b) {
    sl_free(b->p);
    memset(b, 0, sizeof *b);
}

/* ---- epoll ---------------------------------------------------------------------- */

static void ep_set(worker *w, int fd, void *tag, uint32_t events, bool add) {
    struct epoll_event ev = {.events = events, .data.ptr = tag};
    epoll_ctl(w->ep, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
}

static void set_nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* ---- forward declarations --------------------------------------------------------- */

static void client_flush(worker *w, cconn *c);
static void client_close(worker *w, cconn *c);
static void start_attempt(worker *w, xreq *x);
static void attempt_failed(worker *w, xreq *x, sl_member *e, int kind, bool stale);
static void fanout_next(worker *w, xreq *x);
static void multi_free(xreq *x);
static void up_close(worker *w, uconn *u);
static void up_fail(worker *w, uconn *u, int kind);
static void finish_x(worker *w, xreq *x);

/* ---- client responses ------------------------------------------------------------- */

static const char *reason_phrase(int s) {
    switch (s) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return s < 300 ? "OK" : s < 500 ? "Client Error" : "Server Error";
    }
}

/* CORS: the allowed origin, where the request's was (server/cors.h). */
static void cors_headers(cconn *c) {
    if (!c->cors[0]) return;
    ob_printf(&c->out, "Access-Control-Allow-Origin: %s\r\n%s", c->cors, strcmp(c->cors, "*") ? "Vary: Origin\r\n" : "");
    c->cors[0] = '\0'; /* (this request's: a next one on the connection finds its own) */
}

/* The request c answers now, for its access log line. */
static void note_request(cconn *c, const char *method, const char *path) {
    snprintf(c->method, sizeof c->method, "%.7s", method && *method ? method : "-");
    snprintf(c->path, sizeof c->path, "%.95s", path && *path ? path : "-");
    sl_utf8_scrub(c->method);
    sl_utf8_scrub(c->path);
    c->status = 0;
    c->t_req = mono_ns();
}

/* The access log line of a request answered (x: a proxied one, or NULL). Health checks and scrapes that
 * succeed get none (load balancers and Prometheus ask every few seconds). */
static void access_line(const worker *w, const cconn *c, const xreq *x) {
    if (!w->r->cfg.access_log || !c) return;
    if (!x && c->status == 200 && sl_api_probe_path(c->path)) return;
    const double ms = (double)(mono_ns() - c->t_req) / 1e6;
    if (!x) {
        fprintf(stderr, "shardlm route: %s %s %d %.1f ms\n", c->method, c->path, c->status, ms);
        return;
    }
    char st[16];
    if (c->status) snprintf(st, sizeof st, "%d", c->status);
    else snprintf(st, sizeof st, "%s", "(gone)");
    fprintf(stderr, "shardlm route: %s %s %s engine %s, %d failed%s, %.1f ms\n", c->method, c->path, st,
            x->last_id[0] ? x->last_id : "none", x->n_tried, x->migrated ? " (stream continued)" : "", ms);
}

/* A complete response on the client connection. `engine` = the x-shardlm-engine value or NULL. */
static void respond(worker *w, cconn *c, int status, const char *ctype, const char *body, size_t n, const char *engine) {
    c->status = status;
    if (!c->x) access_line(w, c, NULL); /* (a proxied request's line comes when it is finished) */
    if (c->minor == 0 || !c->keep_alive) c->close_after = true;
    ob_printf(&c->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n", status, reason_phrase(status),
              ctype, n);
    if (engine) ob_printf(&c->out, "x-shardlm-engine: %s\r\n", engine);
    cors_headers(c);
    if (c->close_after) ob_str(&c->out, "Connection: close\r\n");
    ob_str(&c->out, "\r\n");
    if (!c->head) ob_add(&c->out, body, n);
    sl_rmetrics_status(&w->r->metrics, status);
    client_flush(w, c);
}

static char *error_json(int status, const char *param, const char *msg) {
    const char *type = status == 401 ? "authentication_error" : status == 404 ? "not_found_error"
                       : status >= 500                         ? "server_error"
                                                               : "invalid_request_error";
    json_t *o = json_pack("{s:{s:s,s:s,s:o,s:n}}", "error", "message", msg, "type", type, "param",
                          param ? json_string(param) : json_null(), "code");
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static int respond_error(worker *w, cconn *c, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int respond_error(worker *w, cconn *c, int status, const char *param, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sl_utf8_scrub(msg); /* it may quote the client's bytes (a malformed request line) */
    char *s;
    if (c->anthropic || c->ollama) {
        sl_api_error e;
        sl_api_set_error(&e, status, param, "%s", msg);
        s = c->anthropic ? sl_anth_error_json(&e) : sl_ollama_error_json(&e);
    } else {
        s = error_json(status, param, msg);
    }
    respond(w, c, status, "application/json", s ? s : "{}", s ? strlen(s) : 2, NULL);
    free(s);
    return 0;
}

static void respond_json(worker *w, cconn *c, int status, json_t *o, const char *engine) {
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!s) {
        respond_error(w, c, 500, NULL, "out of memory");
        return;
    }
    respond(w, c, status, "application/json", s, strlen(s), engine);
    free(s);
}

/* ---- socket I/O, plain or TLS ------------------------------------------------------- */

/* send() or, on TLS, SSL_write(): bytes written, or -1 with errno (EAGAIN: wait for the socket). */
static ssize_t io_out(int fd, SSL *ssl, const char *p, size_t n) {
    if (!ssl) return send(fd, p, n, MSG_NOSIGNAL);
    ERR_clear_error();
    const int k = SSL_write(ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
    if (k > 0) return k;
    const int e = SSL_get_error(ssl, k);
    errno = e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ ? EAGAIN : ECONNRESET;
    return -1;
}

/* recv() or, on TLS, SSL_read() (a server's handshake too): bytes read, 0 at the end, or -1 with errno (EAGAIN:
 * nothing now; *want_write where given: only once the socket takes what TLS has to send). */
static ssize_t io_in(int fd, SSL *ssl, char *p, size_t n, bool *want_write) {
    if (!ssl) return recv(fd, p, n, 0);
    ERR_clear_error();
    const int k = SSL_read(ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
    if (k > 0) return k;
    const int e = SSL_get_error(ssl, k);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) { /* (a session ticket, say: no data yet) */
        if (want_write) *want_write = e == SSL_ERROR_WANT_WRITE;
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    errno = ECONNRESET;
    return -1;
}

/* ---- client I/O ------------------------------------------------------------------- */

static void client_interest(worker *w, cconn *c) {
    uint32_t ev = EPOLLRDHUP;
    if (!c->reading_paused) ev |= EPOLLIN;
    if (ob_pending(&c->out) || c->tls_want_write) ev |= EPOLLOUT;
    ep_set(w, c->fd, c, ev, false);
    c->want_out = (ev & EPOLLOUT) != 0;
}

static void up_interest(worker *w, uconn *u) {
    uint32_t ev = EPOLLRDHUP;
    if (u->state == U_HANDSHAKE) ev |= u->hs_write ? EPOLLOUT : EPOLLIN;
    if (u->state == U_CONNECTING || (u->state == U_SENDING && ob_pending(&u->out))) ev |= EPOLLOUT;
    if (!u->paused && u->state != U_CONNECTING && u->state != U_HANDSHAKE) ev |= EPOLLIN;
    if (ev == u->ep_mask) return; /* a pooled connection goes request to request without epoll_ctl */
    u->ep_mask = ev;
    ep_set(w, u->fd, u, ev, false);
}

static void client_flush(worker *w, cconn *c) {
    if (c->dead) return;
    if (c->out.oom) {
        client_close(w, c);
        return;
    }
    if (!c->want_out) c->out_ns = mono_ns(); /* a stalled reader is timed from its first unsent byte */
    while (ob_pending(&c->out)) {
        ssize_t k = io_out(c->fd, c->ssl, c->out.p + c->out.off, ob_pending(&c->out));
        if (k > 0) {
            c->out.off += (size_t)k;
            c->out_ns = mono_ns();
            continue;
        }
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        client_close(w, c); /* the client is gone */
        return;
    }
    if (!ob_pending(&c->out)) {
        ob_reset(&c->out);
        if (c->close_after && !c->x) {
            client_close(w, c);
            return;
        }
    }
    bool want = ob_pending(&c->out) > 0 || c->tls_want_write;
    if (want != c->want_out) client_interest(w, c);
    /* backpressure: a slow client pauses reading its engine */
    uconn *u = c->x ? c->x->u : NULL;
    if (u && !u->dead) {
        bool pause = ob_pending(&c->out) > OUT_PAUSE;
        if (pause && !u->paused) {
            u->paused = true;
            up_interest(w, u);
        } else if (!pause && u->paused && ob_pending(&c->out) < OUT_RESUME) {
            u->paused = false;
            up_interest(w, u);
        }
    }
}

static void client_close(worker *w, cconn *c) {
    if (c->dead) return;
    c->dead = true;
    if (c->x) {
        /* the client went away: drop its request; closing the engine connection cancels the generation there */
        xreq *x = c->x;
        if (!x->finished) access_line(w, c, x); /* (its line, while the connection still says what it was) */
        x->logged = true;
        x->c = NULL;
        c->x = NULL;
        if (x->u) {
            uconn *u = x->u;
            x->u = NULL;
            u->x = NULL;
            up_close(w, u);
        }
        finish_x(w, x);
    }
    epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    close(c->fd);
    c->fd = -1;
    if (c->prev) c->prev->next = c->next;
    else w->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    c->next_dead = w->dead_c;
    w->dead_c = c;
    w->n_clients--;
    atomic_fetch_sub(&w->r->metrics.connections, 1);
}

static void client_free(cconn *c) {
    sl_hp_deinit(&c->hp);
    sl_free(c->in);
    sl_free(c->body);
    ob_free(&c->out);
    sl_free(c);
}

static void schedule(worker *w, cconn *c) {
    if (c->todo || c->dead) return;
    c->todo = true;
    c->next_todo = w->todo;
    w->todo = c;
}

/* ---- request facts -------------------------------------------------------------- */

static char *hdr_dup(const sl_hp *p, const char *name) {
    const sl_hp_hdr *h = sl_hp_header(p, name);
    return h ? sl_strndup(h->value, h->value_len) : NULL;
}

/* Query argument `name` of target (...?a=1&b=2) into out (as sent: ids and numbers need no decoding), or "". */
static void query_arg(const char *target, const char *name, char *out, size_t cap) {
    out[0] = '\0';
    const char *q = strchr(target, '?');
    const size_t nl = strlen(name);
    for (const char *p = q ? q + 1 : NULL; p && *p;) {
        const size_t len = strcspn(p, "&");
        if (len > nl && p[nl] == '=' && !strncmp(p, name, nl)) {
            snprintf(out, cap, "%.*s", (int)(len - nl - 1), p + nl + 1);
            return;
        }
        p += len + (p[len] == '&');
    }
}

/* The key the request carries: Authorization: Bearer KEY, else x-api-key: KEY (Anthropic's clients); NULL. */
static const char *request_key(const sl_hp *p, size_t *n) {
    const sl_hp_hdr *h = sl_hp_header(p, "Authorization");
    if (h && h->value_len >= 7 && !strncasecmp(h->value, "Bearer ", 7)) {
        *n = h->value_len - 7;
        return h->value + 7;
    }
    h = sl_hp_header(p, "x-api-key");
    *n = h ? h->value_len : 0;
    return h ? h->value : NULL;
}

static bool bearer_ok(const sl_hp *p, const char *key) {
    size_t got = 0;
    const char *v = request_key(p, &got);
    size_t n = strlen(key);
    if (!v || got != n) return false;
    unsigned char d = 0; /* constant time over the key */
    for (size_t i = 0; i < n; i++) d |= (unsigned char)(v[i] ^ key[i]);
    return d == 0;
}

/* The client's key is one of the router's (or the router has none). */
static bool client_key_ok(const sl_router *r, const sl_hp *p) {
    if (r->keys.n == 0) return true;
    size_t n = 0;
    const char *v = request_key(p, &n);
    return sl_api_keys_match(&r->keys, v, n);
}

/* Hash of the first `limit` bytes of the prompt text (chat: "role\ncontent\n" per message; embeddings: the
 * input's; infill: input_prefix's). */
static bool prefix_hash(json_t *body, int ep, int limit, uint64_t *out) {
    char buf[4096];
    size_t cap = (size_t)limit < sizeof buf ? (size_t)limit : sizeof buf, n = 0;
    if (ep == EP_COMPLETIONS || ep == EP_EMBEDDINGS || ep == EP_INFILL) {
        static const char *const embd_keys[] = {"input", "content", "query", "text_1", "queries"}; /* (rerank, score) */
        const char *key = ep == EP_INFILL ? "input_prefix" : "prompt";
        for (size_t k = 0; ep == EP_EMBEDDINGS && k < sizeof embd_keys / sizeof embd_keys[0]; k++)
            if ((key = embd_keys[k]) && json_object_get(body, key)) break;
        json_t *p = json_object_get(body, key);
        /* a list of prompts (strings or id lists): placed by the first */
        json_t *first = json_is_array(p) ? json_array_get(p, 0) : NULL;
        if (json_is_string(first) || json_is_array(first)) p = first;
        if (json_is_string(p)) {
            n = json_string_length(p) < cap ? json_string_length(p) : cap;
            memcpy(buf, json_string_value(p), n);
        } else if (json_is_array(p)) {
            size_t i;
            json_t *v;
            json_array_foreach(p, i, v) {
                if (!json_is_integer(v) || n + 4 > cap) break;
                uint32_t id = (uint32_t)json_integer_value(v);
                memcpy(buf + n, &id, 4);
                n += 4;
            }
        }
    } else {
        json_t *msgs = json_object_get(body, "messages");
        size_t i;
        json_t *m;
        json_array_foreach(msgs, i, m) {
            if (n >= cap) break;
            const char *parts[3] = {json_string_value(json_object_get(m, "role")), "\n", NULL};
            json_t *content = json_object_get(m, "content");
            char *joined = NULL;
            if (json_is_string(content)) {
                parts[2] = json_string_value(content);
            } else if (json_is_array(content)) {
                size_t k, tot = 0;
                json_t *part;
                json_array_foreach(content, k, part) tot += json_string_length(json_object_get(part, "text"));
                joined = malloc(tot + 1);
                if (joined) {
                    size_t at = 0;
                    json_array_foreach(content, k, part) {
                        json_t *t = json_object_get(part, "text");
                        memcpy(joined + at, json_string_value(t) ? json_string_value(t) : "", json_string_length(t));
                        at += json_string_length(t);
                    }
                    joined[at] = '\0';
                    parts[2] = joined;
                }
            }
            for (int k = 0; k < 3; k++) {
                if (!parts[k]) continue;
                size_t l = strlen(parts[k]);
                if (l > cap - n) l = cap - n;
                memcpy(buf + n, parts[k], l);
                n += l;
            }
            if (n < cap) buf[n++] = '\n';
            free(joined);
        }
    }
    if (n == 0) return false;
    *out = sl_hash64(buf, n, SEED_PREFIX);
    return true;
}

/* ---- the router's own endpoints --------------------------------------------------- */

static int respond_error(worker *w, cconn *c, int status, const char *param, const char *fmt, ...);

/* GET /v1/models: the engines' models, each once; with `one`, GET /v1/models/{one}: that model or a 404. */
/* The objects of list `add` not yet in `into` (by their string `key`) appended to it; whether add has any with
 * that key. */
static bool list_merge(json_t *into, const json_t *add, const char *key) {
    size_t i, j;
    const json_t *m;
    json_t *have;
    bool any = false;
    json_array_foreach(add, i, m) {
        const char *k = json_string_value(json_object_get(m, key));
        bool dup = !k;
        any |= k != NULL;
        json_array_foreach(into, j, have) dup |= k && !strcmp(json_string_value(json_object_get(have, key)) ?: "", k);
        if (!dup) json_array_append(into, (json_t *)m);
    }
    return any;
}

static void models_merged(worker *w, cconn *c, const char *one) {
    json_t *data = json_array();
    char engines[1024] = "";
    size_t el = 0;
    for (int i = 0; i < w->view->n; i++) {
        sl_member *e = w->view->engines[i];
        if (!atomic_load(&e->up)) continue;
        pthread_mutex_lock(&e->mu);
        json_t *list = e->models_json ? json_loads(e->models_json, 0, NULL) : NULL;
        pthread_mutex_unlock(&e->mu);
        const char *names = list ? NULL : e->spec.model, *name; /* (its registered names) */
        size_t len;
        while (sl_api_next_name(&names, &name, &len)) {
            if (!list) list = json_array();
            json_array_append_new(list, json_pack("{s:s%,s:s,s:I,s:s}", "id", name, len, "object", "model", "created",
                                                  (json_int_t)0, "owned_by", "shardlm"));
        }
        const bool used = list_merge(data, list, "id");
        json_decref(list);
        if (used && el + strlen(e->spec.url) + 2 < sizeof engines)
            el += (size_t)snprintf(engines + el, sizeof engines - el, "%s%s", el ? "," : "", e->spec.url);
    }
    if (one) {
        size_t k;
        json_t *m, *found = NULL;
        json_array_foreach(data, k, m) if (!strcmp(json_string_value(json_object_get(m, "id")), one)) found = m;
        if (found) respond_json(w, c, 200, json_incref(found), el ? engines : NULL);
        else respond_error(w, c, 404, "model", "The model '%.200s' does not exist on any engine in rotation", one);
        json_decref(data);
        return;
    }
    respond_json(w, c, 200, json_pack("{s:s,s:o}", "object", "list", "data", data), el ? engines : NULL);
}

static void admin_engines(worker *w, cconn *c) {
    json_t *arr = json_array();
    for (int i = 0; i < w->view->n; i++) {
        sl_member *e = w->view->engines[i];
        json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:i,s:b}", "id", e->spec.id, "url", e->spec.url, "model",
                              e->spec.model, "version", e->spec.version, "capacity", e->spec.capacity, "up",
                              (int)atomic_load(&e->up));
        json_object_set_new(o, "in_flight", json_integer(atomic_load(&e->in_flight)));
        json_object_set_new(o, "running", json_integer(atomic_load(&e->running)));
        json_object_set_new(o, "waiting", json_integer(atomic_load(&e->waiting)));
        json_object_set_new(o, "requests", json_integer((json_int_t)atomic_load(&e->n_requests)));
        json_object_set_new(o, "errors", json_integer((json_int_t)atomic_load(&e->n_errors)));
        json_object_set_new(o, "migrations", json_integer((json_int_t)atomic_load(&e->n_migrations)));
        json_object_set_new(o, "ejections", json_integer((json_int_t)atomic_load(&e->n_ejections)));
        json_array_append_new(arr, o);
    }
    respond_json(w, c, 200, json_pack("{s:o}", "engines", arr), NULL);
}

static json_t *weights_json(const sl_view *v) {
    json_t *o = json_object();
    for (int i = 0; i < v->n_weights; i++) json_object_set_new(o, v->weight_version[i], json_real(v->weight[i]));
    return json_pack("{s:o}", "weights", o);
}

static void admin_rollout(worker *w, cconn *c, bool put) {
    if (!put) {
        respond_json(w, c, 200, weights_json(w->view), NULL);
        return;
    }
    char versions[SL_MAX_VERSIONS][64];
    double weights[SL_MAX_VERSIONS];
    int n = 0;
    if (sl_weights_parse(c->body ? c->body : "", c->n_body, versions, weights, &n) != SL_OK) {
        respond_error(w, c, 400, "weights", "%s", sl_last_error());
        return;
    }
    sl_router *r = w->r;
    if (r->cfg.etcd) {
        /* every router shares the weights through etcd; this one applies them now too */
        json_t *o = json_object();
        for (int i = 0; i < n; i++) json_object_set_new(o, versions[i], json_real(weights[i]));
        json_t *cfg = json_pack("{s:o}", "rollout", o);
        char *s = json_dumps(cfg, JSON_COMPACT);
        json_decref(cfg);
        sl_status st = s ? sl_etcd_put_config(r->cfg.etcd, r->cfg.cluster, s) : SL_ERR_NOMEM;
        free(s);
        if (st != SL_OK) {
            respond_error(w, c, 502, NULL, "cannot write the rollout to etcd: %s", sl_last_error());
            return;
        }
    }
    if (sl_members_set_weights(r->members, versions, weights, n) != SL_OK) {
        respond_error(w, c, 500, NULL, "%s", sl_last_error());
        return;
    }
    w->view = sl_members_view(r->members, w->view);
    respond_json(w, c, 200, weights_json(w->view), NULL);
}

/* ---- requests --------------------------------------------------------------------- */

static void x_free(xreq *x) {
    sl_free(x->target);
    sl_free(x->ctype);
    sl_free(x->auth);
    free(x->body);
    json_decref(x->json);
    ob_free(&x->resp);
    json_decref(x->resp_req);
    sl_resp_stream_free(x->rs);
    json_decref(x->anth_req);
    sl_anth_stream_free(x->as);
    json_decref(x->oll_req);
    sl_ollama_stream_free(x->os);
    json_decref(x->llama_ends);
    sl_evstream_deinit(&x->sse_parser);
    sl_free(x->pids);
    sl_free(x->gids);
    multi_free(x);
    json_decref(x->json_all);
    if (x->fo_view) sl_view_release(x->fo_view);
    json_decref(x->fo_results);
    sl_free(x);
}

/* End the attempt on x->cur (in-flight count, reference). */
static void attempt_end(xreq *x) {
    if (!x->cur) return;
    atomic_fetch_sub(&x->cur->in_flight, 1);
    sl_member_release(x->cur);
    x->cur = NULL;
}

static void pool_put(worker *w, uconn *u);

/* x's engine connection, its answer read: back to the pool when it may be used again, else closed. */
static void up_release(worker *w, xreq *x) {
    uconn *u = x->u;
    if (!u) return;
    x->u = NULL;
    u->x = NULL;
    if (u->hp.state == SL_HP_DONE && u->hp.keep_alive) pool_put(w, u);
    else up_close(w, u);
}

/* The request is over for the client (answered, or the client is gone). */
static void finish_x(worker *w, xreq *x) {
    if (x->finished) return;
    x->finished = true;
    if (!x->logged) access_line(w, x->c, x);
    up_release(w, x);
    attempt_end(x);
    atomic_fetch_sub(&w->r->metrics.in_flight, 1);
    cconn *c = x->c;
    if (c) {
        c->x = NULL;
        if (c->close_after && !ob_pending(&c->out)) {
            client_close(w, c);
        } else {
            if (c->reading_paused) {
                c->reading_paused = false;
                client_interest(w, c);
            }
            schedule(w, c); /* pipelined requests */
        }
    }
    x->c = NULL;
    x->next_dead = w->dead_x; /* freed at the end of the loop iteration */
    w->dead_x = x;
}

static void note_added(worker *w, xreq *x) {
    if (x->added_done) return;
    x->added_done = true;
    int64_t now = mono_ns();
    int64_t up = x->t_up_done > x->t_up_send ? x->t_up_done - x->t_up_send : 0;
    sl_rmetrics_added(&w->r->metrics, now - x->t_recv - up);
}

/* Send the chunked-encoding frame of n bytes (HTTP/1.0 clients get the bytes raw). */
static void client_chunk(cconn *c, const char *p, size_t n) {
    if (!n) return;
    if (c->minor == 0) {
        ob_add(&c->out, p, n);
        return;
    }
    ob_printf(&c->out, "%zx\r\n", n);
    ob_add(&c->out, p, n);
    ob_str(&c->out, "\r\n");
}

static void stream_headers(worker *w, xreq *x) {
    cconn *c = x->c;
    if (x->started || !c) return;
    x->started = true;
    if (c->minor == 0 || !c->keep_alive) c->close_after = true;
    ob_printf(&c->out, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nCache-Control: no-cache\r\n"
                       "x-shardlm-engine: %s\r\n%s%s",
              x->oll_req ? "application/x-ndjson" : "text/event-stream", x->cur ? x->cur->spec.url : "", c->minor == 0 ? "" : "Transfer-Encoding: chunked\r\n",
              c->close_after ? "Connection: close\r\n" : "");
    cors_headers(c);
    ob_str(&c->out, "\r\n");
    c->status = 200;
    sl_rmetrics_status(&w->r->metrics, 200);
}

static void stream_end(worker *w, xreq *x) {
    cconn *c = x->c;
    if (!c) return;
    if (c->minor != 0) ob_str(&c->out, "0\r\n\r\n");
    client_flush(w, c);
}

/* Mid-stream: tell the client what went wrong, then [DONE]; the request ends. */
static void stream_error(worker *w, xreq *x, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void stream_error(worker *w, xreq *x, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    atomic_fetch_add(&w->r->metrics.migrations_failed, 1);
    if (x->c) {
        stream_headers(w, x);
        char *e = error_json(502, NULL, msg);
        obuf ev = {0};
        if (x->llama) { /* llama.cpp's stream: the error object, no [DONE] */
            ob_str(&ev, "data: ");
            ob_str(&ev, e ? e : "{}");
            ob_str(&ev, "\n\n");
        } else if (x->oll_req) { /* an Ollama stream: its error line */
            json_t *o = e ? json_loads(e, 0, NULL) : NULL;
            sl_strbuf b = {0};
            if (!x->os) x->os = sl_ollama_stream_new(x->oll_req, x->oll_generate, (double)x->t_recv * 1e-9);
            if (x->os && o) sl_ollama_stream_chunk(x->os, o, &b);
            ob_add(&ev, b.p ? b.p : "", b.n);
            free(b.p);
            json_decref(o);
        } else if (x->anth_req) { /* an Anthropic stream: its error event */
            json_t *o = e ? json_loads(e, 0, NULL) : NULL;
            sl_strbuf b = {0};
            if (!x->as) x->as = sl_anth_stream_new(x->anth_req, x->resp_id, x->model, x->n_pids, &b);
            if (x->as && o) sl_anth_stream_chunk(x->as, o, &b);
            ob_add(&ev, b.p ? b.p : "", b.n);
            free(b.p);
            json_decref(o);
        } else if (x->resp_req) { /* a Responses stream: its error events */
            json_t *o = e ? json_loads(e, 0, NULL) : NULL;
            sl_strbuf b = {0};
            if (!x->rs) x->rs = sl_resp_stream_new(x->resp_req, x->resp_id, x->model, (long long)time(NULL), &b);
            if (x->rs && o) sl_resp_stream_chunk(x->rs, o, &b);
            ob_add(&ev, b.p ? b.p : "", b.n);
            free(b.p);
            json_decref(o);
        } else {
            ob_str(&ev, "data: ");
            ob_str(&ev, e ? e : "{}");
            ob_str(&ev, "\n\ndata: [DONE]\n\n");
        }
        client_chunk(x->c, ev.p, ev.n);
        ob_free(&ev);
        free(e);
        stream_end(w, x);
    }
    finish_x(w, x);
}

/* No engine can take it: an error response, or mid-stream an error event. */
static void no_engine(worker *w, xreq *x, const char *why) {
    atomic_fetch_add(&w->r->metrics.no_engine, 1);
    if (x->started) {
        stream_error(w, x, "%s", why);
        return;
    }
    if (x->c) respond_error(w, x->c, x->n_tried ? 502 : 503, NULL, "%s", why);
    finish_x(w, x);
}

static int handle_request(worker *w, cconn *c) {
    sl_router *r = w->r;
    sl_hp *hp = &c->hp;
    const char *target = hp->target;
    size_t plen = strcspn(target, "?");
    char path[256];
    snprintf(path, sizeof path, "%.*s", (int)(plen < sizeof path ? plen : sizeof path - 1), target);
    note_request(c, hp->method, path);
    const char *canon = sl_llama_path_alias(path); /* (llama.cpp's other names of its paths: proxied as the canonical) */
    if (canon != path) {
        target = canon;
        snprintf(path, sizeof path, "%s", canon);
    }
    bool get = !strcmp(hp->method, "GET") || !strcmp(hp->method, "HEAD");
    bool post = !strcmp(hp->method, "POST");
    if (!strcmp(path, "/invocations") && post) { /* SageMaker's: proxied as the endpoint the body is for (an input
                                                  * stays /invocations: its engine embeds it or, ranking, classifies) */
        const char *to = sl_api_invocation_path(c->body, c->n_body, false);
        if (!to)
            return respond_error(w, c, 400, NULL, "%s", SL_API_INVOCATIONS_HELP);
        if (strcmp(to, "/v1/embeddings") != 0) {
            target = to;
            snprintf(path, sizeof path, "%s", to);
        }
    }
    w->view = sl_members_view(r->members, w->view);
    const sl_hp_hdr *origin = sl_hp_header(hp, "Origin");
    c->cors[0] = '\0';
    if (origin) sl_cors_allow_origin(r->cfg.allowed_origins, origin->value, origin->value_len, c->cors, sizeof c->cors);
    if (!strcmp(hp->method, "OPTIONS")) { /* a CORS preflight: answered before any key check (browsers send none) */
        const sl_hp_hdr *want = sl_hp_header(hp, "Access-Control-Request-Headers");
        if (c->minor == 0 || !c->keep_alive) c->close_after = true;
        ob_printf(&c->out, "HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Methods: " SL_CORS_METHODS
                           "\r\nAccess-Control-Allow-Headers: %.*s\r\nAccess-Control-Max-Age: " SL_CORS_MAX_AGE "\r\n%s",
                  want && want->value_len < 1024 && !memchr(want->value, '\r', want->value_len) ? (int)want->value_len : 1,
                  want && want->value_len < 1024 && !memchr(want->value, '\r', want->value_len) ? want->value : "*",
                  c->close_after ? "Connection: close\r\n" : "");
        cors_headers(c);
        ob_str(&c->out, "\r\n");
        c->status = 204;
        access_line(w, c, NULL);
        sl_rmetrics_status(&r->metrics, 204);
        client_flush(w, c);
        return 0;
    }
    if (c->body_too_big) {
        c->close_after = true;
        respond_error(w, c, 413, NULL, "the request body is larger than %lld bytes", (long long)r->cfg.max_body_bytes);
        return 0;
    }
    if (!strcmp(path, "/health")) {
        if (!get) return respond_error(w, c, 405, NULL, "use GET");
        respond(w, c, 200, "application/json", "{\"status\":\"ok\"}", 15, NULL);
        return 0;
    }
    if (!strcmp(path, "/ready")) {
        if (!get) return respond_error(w, c, 405, NULL, "use GET");
        bool ok = sl_router_ready(r);
        const char *b = ok ? "{\"status\":\"ready\"}" : "{\"status\":\"not ready\"}";
        respond(w, c, ok ? 200 : 503, "application/json", b, strlen(b), NULL);
        return 0;
    }
    if (!strcmp(path, "/metrics")) {
        if (!get) return respond_error(w, c, 405, NULL, "use GET");
        char *s = sl_rmetrics_render(&r->metrics, w->view, sl_router_ready(r));
        respond(w, c, 200, "text/plain; version=0.0.4", s ? s : "", s ? strlen(s) : 0, NULL);
        free(s);
        return 0;
    }
    if (!strncmp(path, "/admin/", 7)) {
        if (!r->cfg.admin_key) return respond_error(w, c, 403, NULL, "admin endpoints are off (start with --admin-key)");
        if (!bearer_ok(hp, r->cfg.admin_key))
            return respond_error(w, c, 401, NULL, "missing or wrong admin key (Authorization: Bearer ...)");
        if (!strcmp(path, "/admin/engines")) {
            if (!get) return respond_error(w, c, 405, NULL, "use GET");
            admin_engines(w, c);
            return 0;
        }
        if (!strcmp(path, "/admin/rollout")) {
            bool put = !strcmp(hp->method, "PUT") || post;
            if (!get && !put) return respond_error(w, c, 405, NULL, "use GET or PUT");
            admin_rollout(w, c, put);
            return 0;
        }
        return respond_error(w, c, 404, NULL, "no such admin endpoint");
    }
    int ep;
    json_t *resp_req = NULL;
    bool llama = false;
    if (!strcmp(path, "/v1/responses") && !post) return respond_error(w, c, 405, NULL, "use POST");
    if (!strncmp(path, "/v1/responses/", 14)) { /* OpenAI's retrieve: the responses kept here */
        if (!client_key_ok(r, hp))
            return respond_error(w, c, 401, NULL, "missing or wrong API key (Authorization: Bearer ...)");
        const size_t pl = strlen(path);
        if (pl > 14 + 12 && !strcmp(path + pl - 12, "/input_items")) { /* their input items */
            if (!get) return respond_error(w, c, 405, NULL, "use GET");
            char id[128], lim[16] = "", ord[8] = "", aft[128] = "";
            snprintf(id, sizeof id, "%.*s", (int)(pl - 14 - 12), path + 14);
            query_arg(target, "limit", lim, sizeof lim);
            query_arg(target, "order", ord, sizeof ord);
            query_arg(target, "after", aft, sizeof aft);
            sl_api_error e;
            char *kb = sl_resp_store_input_items(r->store, id, lim[0] ? lim : NULL, ord[0] ? ord : NULL, aft, &e);
            if (!kb) return respond_error(w, c, e.status, e.param[0] ? e.param : NULL, "%s", e.message);
            respond(w, c, 200, "application/json", kb, strlen(kb), NULL);
            free(kb);
            return 0;
        }
        if (pl > 14 + 7 && !strcmp(path + pl - 7, "/cancel")) { /* a background response stops */
            if (!post) return respond_error(w, c, 405, NULL, "use POST");
            char id[128];
            snprintf(id, sizeof id, "%.*s", (int)(pl - 14 - 7), path + 14);
            if (r->bg) sl_bg_cancel(r->bg, id); /* (waits for its end: at most 5 s) */
            json_t *o = r->store ? sl_resp_store_get(r->store, id) : NULL;
            if (!o) return respond_error(w, c, 404, NULL, "no response '%.100s' is kept here", id);
            if (!json_is_true(json_object_get(o, "background"))) {
                json_decref(o);
                return respond_error(w, c, 400, NULL, "response '%.100s' was not made in the background: only those can "
                                     "be cancelled", id);
            }
            respond_json(w, c, 200, o, NULL);
            return 0;
        }
        const bool del = !strcmp(hp->method, "DELETE");
        if (!get && !del) return respond_error(w, c, 405, NULL, "use GET or DELETE");
        char *kb = sl_resp_store_http(r->store, path + 14, del);
        if (!kb) return respond_error(w, c, 404, NULL, "no response '%.100s' is kept here", path + 14);
        respond(w, c, 200, "application/json", kb, strlen(kb), NULL);
        free(kb);
        return 0;
    }
    c->anthropic = !strncmp(path, "/v1/messages", 12);
    c->ollama = !strncmp(path, "/api/", 5);
    json_t *anth_req = NULL, *oll_req = NULL;
    bool oll_generate = false;
    if (!strcmp(path, "/v1/messages")) { /* proxied as the chat request it makes */
        if (!post) return respond_error(w, c, 405, NULL, "use POST");
        if (!client_key_ok(r, hp))
            return respond_error(w, c, 401, NULL, "missing or wrong API key (x-api-key, or Authorization: Bearer ...)");
        sl_api_error e;
        char *cb = sl_anth_chat_body(c->body, c->n_body, false, &anth_req, &e);
        if (!cb) return respond_error(w, c, e.status, e.param[0] ? e.param : NULL, "%s", e.message);
        free(c->body);
        c->body = cb;
        c->n_body = strlen(cb);
        c->cap_body = c->n_body + 1;
        ep = EP_CHAT;
    } else if (!strcmp(path, "/v1/messages/count_tokens")) { /* (any engine's) */
        ep = EP_DETOKENIZE;
    } else if (!strcmp(path, "/v1/responses")) { /* proxied as the chat request it makes */
        if (!client_key_ok(r, hp)) /* (before its body is read) */
            return respond_error(w, c, 401, NULL, "missing or wrong API key (Authorization: Bearer ...)");
        sl_api_error e;
        char *cb = sl_responses_chat_body(r->store, c->body, c->n_body, &resp_req, &e);
        if (!cb) return respond_error(w, c, e.status, e.param[0] ? e.param : NULL, "%s", e.message);
        if (json_is_true(json_object_get(resp_req, "background"))) {
            /* answered queued at once; the router's own request serves it (router/background.h) */
            const char *why = sl_responses_background_refusal(resp_req, r->store != NULL);
            int rc = 0;
            if (why) {
                rc = respond_error(w, c, 400, "background", "'background': %s", why);
            } else {
                char chat_id[64];
                snprintf(chat_id, sizeof chat_id, "chatcmpl-%016llx%08llx",
                         (unsigned long long)sl_mix64(atomic_fetch_add(&r->ticket, 1) ^ (uint64_t)mono_ns()),
                         (unsigned long long)(atomic_fetch_add(&r->ticket, 1) & 0xffffffffu));
                json_t *m = json_object_get(resp_req, "model");
                json_t *o = sl_responses_status(resp_req, chat_id, json_is_string(m) ? json_string_value(m) : "",
                                                (long long)time(NULL), "queued");
                sl_resp_store_put(r->store, resp_req, o);
                size_t kn = 0;
                const char *key = request_key(hp, &kn);
                char *auth = key ? sl_malloc(kn + 8) : NULL;
                if (auth) snprintf(auth, kn + 8, "Bearer %.*s", (int)kn, key);
                if (sl_bg_start(r->bg, json_string_value(json_object_get(o, "id")), chat_id, cb, auth, resp_req) != SL_OK) {
                    json_object_set_new(o, "status", json_string("failed"));
                    sl_resp_store_put(r->store, resp_req, o);
                    json_decref(o);
                    rc = respond_error(w, c, 500, NULL, "%s", sl_last_error());
                } else {
                    respond_json(w, c, 200, o, NULL);
                }
                sl_free(auth);
            }
            free(cb);
            json_decref(resp_req);
            return rc;
        }
        free(c->body);
        c->body = cb;
        c->n_body = strlen(cb);
        c->cap_body = c->n_body + 1;
        ep = EP_CHAT;
    } else if (!strcmp(path, "/api/chat") || !strcmp(path, "/api/generate")) { /* proxied as the request it makes */
        if (!post) return respond_error(w, c, 405, NULL, "use POST");
        if (!client_key_ok(r, hp))
            return respond_error(w, c, 401, NULL, "missing or wrong API key (Authorization: Bearer ...)");
        oll_generate = path[5] == 'g';
        sl_api_error e = {0};
        sl_api_kind kind = SL_API_CHAT;
        oll_req = sl_api_load_body(c->body, c->n_body, &e);
        char *cb = oll_req && !sl_ollama_load_only(oll_req, oll_generate)
                       ? sl_ollama_openai_body(oll_req, oll_generate, &kind, &e)
                       : NULL;
        if (oll_req && !cb && !e.status) { /* nothing to answer: the model "loads" */
            respond_json(w, c, 200, sl_ollama_load_answer(oll_req, oll_generate), NULL);
            json_decref(oll_req);
            return 0;
        }
        if (!cb) {
            json_decref(oll_req);
            return respond_error(w, c, e.status, e.param[0] ? e.param : NULL, "%s", e.message);
        }
        free(c->body);
        c->body = cb;
        c->n_body = strlen(cb);
        c->cap_body = c->n_body + 1;
        ep = kind == SL_API_CHAT ? EP_CHAT : EP_COMPLETIONS;
    } else if (!strcmp(path, "/completion") || !strcmp(path, "/completions")) { /* llama.cpp's own */
        ep = EP_COMPLETIONS;
        llama = true;
    } else if (!strcmp(path, "/v1/completions")) ep = EP_COMPLETIONS;
    else if (!strcmp(path, "/v1/chat/completions")) ep = EP_CHAT;
    else if (!strcmp(path, "/tokenize")) ep = EP_TOKENIZE;
    else if (!strcmp(path, "/detokenize") || !strcmp(path, "/apply-template") || !strcmp(path, "/api/show") ||
             !strcmp(path, "/api/version"))
        ep = EP_DETOKENIZE; /* (any engine's) */
    else if (!strcmp(path, "/api/tags") || !strcmp(path, "/api/ps")) ep = EP_FANOUT; /* (every engine's models, merged) */
    else if (!strcmp(path, "/infill")) { /* as /completion: the engine's /v1/completions builds the infill prompt */
        ep = EP_INFILL;
        llama = true;
    }
    else if (!strcmp(path, "/v1/embeddings") || !strcmp(path, "/embedding") || !strcmp(path, "/embeddings") ||
             !strcmp(path, "/invocations") || !strcmp(path, "/api/embed") || !strcmp(path, "/api/embeddings"))
        ep = EP_EMBEDDINGS; /* (no stream: a failed engine's is retried whole; llama.cpp's too) */
    else if (sl_rerank_path(path)) ep = EP_EMBEDDINGS; /* rerank and score: the same */
    else if (!strcmp(path, "/v1/models") || !strncmp(path, "/v1/models/", 11)) ep = -1;
    else if (!strcmp(path, "/reset_prefix_cache")) ep = EP_FANOUT; /* (vLLM's: every engine's cache) */
    else return respond_error(w, c, 404, NULL, "no such endpoint");
    if (!client_key_ok(r, hp)) {
        json_decref(resp_req);
        json_decref(anth_req);
        json_decref(oll_req);
        return respond_error(w, c, 401, NULL, "missing or wrong API key (Authorization: Bearer ...)");
    }
    if (ep < 0) {
        if (!get) return respond_error(w, c, 405, NULL, "use GET");
        models_merged(w, c, path[10] == '/' ? path + 11 : NULL);
        return 0;
    }
    /* (Ollama's model list, version and running models are read with GET: the engine's answer) */
    const bool by_get = !strcmp(path, "/api/tags") || !strcmp(path, "/api/version") || !strcmp(path, "/api/ps");
    if (!post && !(get && by_get)) return respond_error(w, c, 405, NULL, by_get ? "use GET" : "use POST");

    xreq *x = sl_calloc(1, sizeof *x);
    if (!x) {
        json_decref(resp_req);
        json_decref(anth_req);
        json_decref(oll_req);
        return respond_error(w, c, 500, NULL, "out of memory");
    }
    x->resp_req = resp_req;
    x->anth_req = anth_req;
    x->oll_req = oll_req;
    x->oll_generate = oll_generate;
    x->llama = llama;
    x->n_predict = -1;
    if (resp_req) /* unique across engines and restarts: the kept responses are looked up by it */
        snprintf(x->resp_id, sizeof x->resp_id, "chatcmpl-%016llx%08llx",
                 (unsigned long long)sl_mix64(atomic_fetch_add(&r->ticket, 1) ^ (uint64_t)mono_ns()),
                 (unsigned long long)(atomic_fetch_add(&r->ticket, 1) & 0xffffffffu));
    x->c = c;
    c->x = x;
    atomic_fetch_add(&r->metrics.in_flight, 1);
    x->t_recv = mono_ns();
    x->ep = ep;
    snprintf(x->method, sizeof x->method, "%s", hp->method);
    x->target = sl_strdup(resp_req || anth_req || (oll_req && ep == EP_CHAT) ? "/v1/chat/completions"
                          : llama || oll_req                                ? "/v1/completions"
                                                                            : target); /* (what it is proxied as) */
    x->ctype = hdr_dup(hp, "Content-Type");
    size_t kn = 0;
    const char *key = r->cfg.engine_api_key ? r->cfg.engine_api_key : request_key(hp, &kn);
    if (r->cfg.engine_api_key) kn = strlen(key);
    if (key) { /* (an x-api-key goes on as a bearer token: the engine reads either) */
        x->auth = sl_malloc(kn + 8);
        if (x->auth) snprintf(x->auth, kn + 8, "Bearer %.*s", (int)kn, key);
    }
    /* the body moves to the request */
    x->body = c->body;
    x->n_body = c->n_body;
    c->body = NULL;
    c->n_body = c->cap_body = 0;
    sl_evstream_init(&x->sse_parser, MAX_EVENT);
    x->fs.kind = ep == EP_CHAT ? SL_FO_CHAT : SL_FO_COMPLETIONS;
    const sl_hp_hdr *sid = sl_hp_header(hp, "X-Session-Id");
    if (ep == EP_COMPLETIONS || ep == EP_CHAT || ep == EP_EMBEDDINGS || ep == EP_INFILL) {
        json_t *o = x->n_body ? json_loadb(x->body, x->n_body, 0, NULL) : NULL;
        if (json_is_object(o)) {
            x->json = o;
            json_t *m = json_object_get(o, "model");
            if (json_is_string(m)) snprintf(x->model, sizeof x->model, "%s", json_string_value(m));
            json_t *user = json_object_get(o, "user");
            if (json_is_string(user) && json_string_length(user) > 0) {
                x->q.has_session = true;
                x->q.session = sl_hash64(json_string_value(user), json_string_length(user), SEED_SESSION);
            }
            x->q.has_prefix = prefix_hash(o, ep, r->cfg.prefix_bytes, &x->q.prefix);
            x->stream = ep != EP_EMBEDDINGS && json_is_true(json_object_get(o, "stream"));
            bool changed = false;
            if (x->llama) { /* (its generation_settings.n_predict) */
                const json_t *np = json_object_get(o, "n_predict");
                if (!np) np = json_object_get(o, "max_tokens");
                if (json_is_integer(np)) x->n_predict = json_integer_value(np);
                /* proxied to /v1/completions, whose defaults are OpenAI's: the engine gives it llama.cpp's, after
                 * its own server defaults */
                json_object_set_new(o, "shardlm_llama_defaults", json_true());
                /* each answer's own counts (vLLM's token ids; a stream's come as the engine's id lines) */
                if (!x->stream) json_object_set_new(o, "return_token_ids", json_true());
                changed = true;
                const json_t *np_ = json_object_get(o, "n_probs");
                if (json_is_integer(np_) && json_integer_value(np_) > 0) { /* the engine adds llama.cpp's records */
                    json_object_set_new(o, "shardlm_llama_probs", json_true());
                    changed = true;
                }
            }
            /* a stream counts the text its client got: a continuation starts after it */
            x->count_text = x->stream;
            /* (an echo, or vLLM's chat echo of the last message, comes before the output) */
            x->fs.echo_pending = x->stream && (ep == EP_COMPLETIONS ? json_is_true(json_object_get(o, "echo"))
                                                                    : ep == EP_CHAT && sl_api_chat_echoes(o));
            if (x->stream) {
                /* ask for token ids, and give the request a seed, so it can continue elsewhere */
                x->want_ids = true;
                uint64_t seed = sl_mix64(atomic_fetch_add(&r->ticket, 1) ^ (uint64_t)mono_ns());
                changed |= sl_fo_add_seed(o, seed);
                if (x->llama) { /* the usage chunk gives its closing event the counts */
                    json_object_set_new(o, "stream_options", json_pack("{s:b}", "include_usage", 1));
                    changed = true;
                }
            }
            if (changed) {
                char *s = json_dumps(o, JSON_COMPACT);
                if (s) {
                    free(x->body);
                    x->body = s;
                    x->n_body = strlen(s);
                }
            }
        } else {
            json_decref(o); /* not JSON: the engine will say what is wrong */
        }
    }
    if (!x->q.has_session && sid && sid->value_len) {
        x->q.has_session = true;
        x->q.session = sl_hash64(sid->value, sid->value_len, SEED_SESSION);
    }
    x->q.model = x->model[0] ? x->model : NULL;
    if (ep == EP_FANOUT) {
        x->fo_models = !strncmp(path, "/api/", 5);
        x->fo_view = sl_members_view(r->members, NULL);
        x->fo_results = json_array();
        fanout_next(w, x);
        return 0;
    }
    start_attempt(w, x);
    return 0;
}

/* ---- client input ------------------------------------------------------------------- */

static bool client_body(void *ctx, const char *p, size_t n) {
    cconn *c = ctx;
    int64_t max = c->w->r->cfg.max_body_bytes;
    if (c->body_too_big || (int64_t)(c->n_body + n) > max) {
        c->body_too_big = true;
        return true;
    }
    if (c->n_body + n + 1 > c->cap_body) {
        size_t cap = c->cap_body ? c->cap_body * 2 : 4096;
        while (cap < c->n_body + n + 1) cap *= 2;
        char *nb = sl_realloc(c->body, cap);
        if (!nb) {
            c->body_too_big = true;
            return true;
        }
        c->body = nb;
        c->cap_body = cap;
    }
    memcpy(c->body + c->n_body, p, n);
    c->n_body += n;
    c->body[c->n_body] = '\0';
    return true;
}

static void client_process(worker *w, cconn *c) {
    while (!c->dead && !c->x && !c->close_after) {
        if (c->n_in == 0) break;
        size_t used = sl_hp_feed(&c->hp, c->in, c->n_in, client_body, c);
        if (used) {
            memmove(c->in, c->in + used, c->n_in - used);
            c->n_in -= used;
        }
        if (c->hp.state == SL_HP_ERROR) {
            c->close_after = true;
            c->minor = 1;
            note_request(c, c->hp.method, c->hp.target);
            respond_error(w, c, c->hp.err_status ? c->hp.err_status : 400, NULL, "%s", c->hp.err);
            break;
        }
        if (c->hp.state == SL_HP_BODY && !c->head_checked) {
            c->head_checked = true;
            c->minor = c->hp.minor;
            c->keep_alive = c->hp.keep_alive;
            if (c->hp.content_length > w->r->cfg.max_body_bytes) {
                c->close_after = true;
                note_request(c, c->hp.method, c->hp.target);
                respond_error(w, c, 413, NULL, "the request body is larger than %lld bytes",
                              (long long)w->r->cfg.max_body_bytes);
                break;
            }
            if (sl_hp_header_has(&c->hp, "Expect", "100-continue")) {
                ob_str(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
                client_flush(w, c);
                if (c->dead) return;
            }
        }
        if (c->hp.state == SL_HP_DONE) {
            c->minor = c->hp.minor;
            c->keep_alive = c->hp.keep_alive;
            c->head = !strcmp(c->hp.method, "HEAD");
            handle_request(w, c);
            if (c->dead) return;
            sl_hp_reset(&c->hp);
            c->n_body = 0;
            c->body_too_big = false;
            c->head_checked = false;
            continue;
        }
        if (used == 0) break;
    }
    /* pipelined bytes pile up while a request is answered: stop reading past a bound */
    bool pause = c->x && c->n_in > (1u << 20);
    if (!c->dead && pause != c->reading_paused) {
        c->reading_paused = pause;
        client_interest(w, c);
    }
}

static void client_readable(worker *w, cconn *c) {
    for (;;) {
        if (c->cap_in - c->n_in < 16384) {
            size_t cap = c->cap_in ? c->cap_in * 2 : 16384;
            char *nb = sl_realloc(c->in, cap);
            if (!nb) {
                client_close(w, c);
                return;
            }
            c->in = nb;
            c->cap_in = cap;
        }
        bool want_write = false;
        ssize_t k = io_in(c->fd, c->ssl, c->in + c->n_in, c->cap_in - c->n_in, &want_write);
        if (k > 0) {
            c->n_in += (size_t)k;
            c->last_ns = w->now;
            if (!c->ssl && (size_t)k < 16384) break; /* (TLS: on to its EAGAIN, records may be buffered) */
            if (c->n_in > (2u << 20)) break;
            continue;
        }
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (want_write != c->tls_want_write) {
                c->tls_want_write = want_write;
                client_interest(w, c);
            }
            break;
        }
        /* EOF or error: the client is gone (after a half-close too: like the engine, we take it as gone) */
        client_close(w, c);
        return;
    }
    client_process(w, c);
}

static void accept_clients(worker *w) {
    for (;;) {
        int fd = accept4(w->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR) continue;
            return; /* EAGAIN, or out of descriptors: try again on the next event */
        }
        if (w->n_clients >= w->r->cfg.max_connections) {
            close(fd);
            continue;
        }
        cconn *c = sl_calloc(1, sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        if (w->px->srv_tls) { /* HTTPS: the handshake goes on in the first reads */
            c->ssl = new_client_ssl(w->px);
            if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
                SSL_free(c->ssl);
                sl_free(c);
                close(fd);
                continue;
            }
            SSL_set_accept_state(c->ssl);
        }
        c->kind = K_CLIENT;
        c->fd = fd;
        c->w = w;
        c->last_ns = w->now;
        sl_hp_init(&c->hp, SL_HP_REQUEST);
        set_nodelay(fd);
        c->next = w->clients;
        if (w->clients) w->clients->prev = c;
        w->clients = c;
        w->n_clients++;
        atomic_fetch_add(&w->r->metrics.connections, 1);
        ep_set(w, fd, c, EPOLLIN | EPOLLRDHUP, true);
    }
}

/* ---- upstream connections ------------------------------------------------------------ */

static pool *pool_of(worker *w, sl_member *e, bool create) {
    for (int i = 0; i < w->n_pools; i++)
        if (w->pools[i].e == e) return &w->pools[i];
    if (!create) return NULL;
    if (w->n_pools == w->cap_pools) {
        int cap = w->cap_pools ? w->cap_pools * 2 : 8;
        pool *np = sl_realloc(w->pools, sizeof(pool) * (size_t)cap);
        if (!np) return NULL;
        w->pools = np;
        w->cap_pools = cap;
    }
    pool *p = &w->pools[w->n_pools++];
    memset(p, 0, sizeof *p);
    sl_member_retain(e);
    p->e = e;
    return p;
}

static void up_close(worker *w, uconn *u) {
    if (u->dead) return;
    u->dead = true;
    if (u->state == U_IDLE) {
        pool *p = pool_of(w, u->e, false);
        if (p) {
            for (uconn **pp = &p->idle; *pp; pp = &(*pp)->next_idle)
                if (*pp == u) {
                    *pp = u->next_idle;
                    p->n_idle--;
                    break;
                }
        }
    }
    epoll_ctl(w->ep, EPOLL_CTL_DEL, u->fd, NULL);
    if (u->ssl) { /* (no close_notify: the connection is dropped, as a plain one is) */
        SSL_free(u->ssl);
        u->ssl = NULL;
    }
    close(u->fd);
    u->fd = -1;
    if (u->prev) u->prev->next = u->next;
    else w->ups = u->next;
    if (u->next) u->next->prev = u->prev;
    u->next_dead = w->dead_u;
    w->dead_u = u;
}

static void up_free(uconn *u) {
    sl_member_release(u->e);
    sl_hp_deinit(&u->hp);
    ob_free(&u->out);
    sl_free(u);
}

static void pool_put(worker *w, uconn *u) {
    pool *p = pool_of(w, u->e, true);
    if (!p || p->n_idle >= 512 || u->paused) {
        up_close(w, u);
        return;
    }
    u->state = U_IDLE;
    u->x = NULL;
    u->deadline_ns = w->now + POOL_IDLE_NS;
    sl_hp_reset(&u->hp);
    ob_reset(&u->out);
    u->next_idle = p->idle;
    p->idle = u;
    p->n_idle++;
    up_interest(w, u);
}

static uconn *pool_take(worker *w, sl_member *e) {
    pool *p = pool_of(w, e, false);
    if (!p || !p->idle) return NULL;
    uconn *u = p->idle;
    p->idle = u->next_idle;
    p->n_idle--;
    u->next_idle = NULL;
    u->reused = true;
    u->state = U_SENDING;
    u->deadline_ns = w->now + (int64_t)w->r->cfg.upstream_timeout_s * 1000000000LL;
    return u;
}

/* The TLS of a connection to the https:// engine e on fd: its name sent (SNI) and its certificate checked for
 * it (an IP address: for that address). */
static SSL *up_tls_new(SSL_CTX *ctx, int fd, const sl_member *e) {
    SSL *s = ctx ? SSL_new(ctx) : NULL;
    if (!s) return NULL;
    unsigned char ip[16];
    const bool is_ip = inet_pton(AF_INET, e->tls_name, ip) == 1 || inet_pton(AF_INET6, e->tls_name, ip) == 1;
    const bool ok = SSL_set_fd(s, fd) == 1 &&
                    (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), e->tls_name) == 1
                           : SSL_set_tlsext_host_name(s, e->tls_name) == 1 && SSL_set1_host(s, e->tls_name) == 1);
    if (!ok) {
        SSL_free(s);
        return NULL;
    }
    SSL_set_connect_state(s);
    return s;
}

/* A new connection to e; NULL + *err set when connect() fails at once. */
static uconn *up_connect(worker *w, sl_member *e, int *err) {
    *err = 0;
    int fd = socket(e->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = errno;
        return NULL;
    }
    set_nodelay(fd);
    int rc = connect(fd, (struct sockaddr *)&e->addr, e->addr_len);
    if (rc < 0 && errno != EINPROGRESS) {
        *err = errno;
        close(fd);
        return NULL;
    }
    uconn *u = sl_calloc(1, sizeof *u);
    if (!u) {
        *err = ENOMEM;
        close(fd);
        return NULL;
    }
    if (e->tls && !(u->ssl = up_tls_new(w->px->up_tls, fd, e))) {
        *err = ENOMEM;
        sl_free(u);
        close(fd);
        return NULL;
    }
    u->kind = K_UP;
    u->fd = fd;
    u->w = w;
    sl_member_retain(e);
    u->e = e;
    u->state = rc != 0 ? U_CONNECTING : u->ssl ? U_HANDSHAKE : U_SENDING;
    u->deadline_ns = w->now + (int64_t)w->r->cfg.connect_timeout_ms * 1000000LL;
    sl_hp_init(&u->hp, SL_HP_RESPONSE);
    u->next = w->ups;
    if (w->ups) w->ups->prev = u;
    w->ups = u;
    u->ep_mask = EPOLLOUT | EPOLLRDHUP;
    ep_set(w, fd, u, u->ep_mask, true);
    return u;
}

static void up_write(worker *w, uconn *u);

/* The TLS handshake with an https:// engine, as far as the socket lets it go; then the request. */
static void up_tls_step(worker *w, uconn *u) {
    ERR_clear_error();
    const int rc = SSL_do_handshake(u->ssl);
    if (rc == 1) {
        u->state = U_SENDING;
        up_write(w, u);
        return;
    }
    const int e = SSL_get_error(u->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        u->hs_write = e == SSL_ERROR_WANT_WRITE;
        up_interest(w, u);
        return;
    }
    const long vr = SSL_get_verify_result(u->ssl);
    char why[256];
    if (vr != X509_V_OK) snprintf(why, sizeof why, "its certificate: %s", X509_verify_cert_error_string(vr));
    else ERR_error_string_n(ERR_peek_error() ? ERR_peek_error() : (unsigned long)e, why, sizeof why);
    fprintf(stderr, "shardlm route: TLS to engine %s (%s) failed: %s\n", u->e->spec.id, u->e->spec.url, why);
    up_fail(w, u, F_CONNECT);
}

static void up_write(worker *w, uconn *u) {
    while (ob_pending(&u->out)) {
        ssize_t k = io_out(u->fd, u->ssl, u->out.p + u->out.off, ob_pending(&u->out));
        if (k > 0) {
            u->out.off += (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            up_interest(w, u);
            return;
        }
        xreq *x = u->x;
        sl_member *e = u->e;
        bool stale = u->reused && !u->got_bytes;
        u->x = NULL;
        if (x) x->u = NULL;
        up_close(w, u);
        if (x) attempt_failed(w, x, e, F_RESET, stale);
        return;
    }
    ob_reset(&u->out);
    u->state = U_WAITING;
    u->deadline_ns = w->now + (int64_t)w->r->cfg.upstream_timeout_s * 1000000000LL;
    up_interest(w, u);
}

/* Build the request for the attempt on u and start sending. */
static void up_send(worker *w, xreq *x, uconn *u) {
    const char *path = x->migrated && !x->fs.chat_native ? "/v1/completions" : x->target;
    ob_printf(&u->out, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n", x->method, path,
              u->e->hostport, x->ctype ? x->ctype : "application/json", x->n_body);
    if (x->auth) ob_printf(&u->out, "Authorization: %s\r\n", x->auth);
    if (x->want_ids) ob_str(&u->out, "X-Shardlm-Token-Ids: 1\r\n");
    ob_str(&u->out, "\r\n");
    ob_add(&u->out, x->body, x->n_body);
    u->x = x;
    x->u = u;
    u->got_bytes = u->head_seen = false;
    x->t_up_send = mono_ns();
    if (u->state == U_HANDSHAKE) up_tls_step(w, u);
    else if (u->state != U_CONNECTING) up_write(w, u);
}

static void attempt_on(worker *w, xreq *x, sl_member *e) {
    sl_member_retain(e);
    x->cur = e;
    snprintf(x->last_id, sizeof x->last_id, "%.63s", e->spec.id);
    atomic_fetch_add(&e->in_flight, 1);
    atomic_fetch_add(&e->n_requests, 1);
    x->status = 0;
    x->up_ctype[0] = '\0';
    x->sse = false;
    ob_reset(&x->resp);
    uconn *u = pool_take(w, e);
    if (!u) {
        int err;
        u = up_connect(w, e, &err);
        if (!u) {
            attempt_failed(w, x, e, F_CONNECT, false);
            return;
        }
    }
    up_send(w, x, u);
}

static void start_attempt(worker *w, xreq *x) {
    sl_router *r = w->r;
    w->view = sl_members_view(r->members, w->view);
    x->q.exclude = x->tried;
    x->q.n_exclude = x->n_tried;
    x->q.ticket = atomic_fetch_add(&r->ticket, 1);
    sl_reason why;
    sl_member *e = sl_place(w->view, r->cfg.policy, r->cfg.load_factor, &x->q, &why);
    if (!e) {
        no_engine(w, x,
                  x->n_tried    ? "every engine tried failed"
                  : w->view->n ? "no engine is in rotation"
                               : "no engines are known");
        return;
    }
    atomic_fetch_add(&r->metrics.decisions[why], 1);
    attempt_on(w, x, e);
}

/* ---- POST /reset_prefix_cache: every engine's --------------------------------------------------- */

static void attempt_on(worker *w, xreq *x, sl_member *e);

/* The engine x->cur answered (status, or the failure why): noted; the next engine in rotation is asked, or
 * the client gets every engine's answer (200 when each reset its cache, else 502). */
static void fanout_note(xreq *x, int status, const char *why) {
    if (!x->cur) return;
    json_t *o = json_pack("{s:s,s:s}", "id", x->cur->spec.id, "url", x->cur->spec.url);
    if (status) json_object_set_new(o, "status", json_integer(status));
    if (why) json_object_set_new(o, "error", json_string(why));
    json_array_append_new(x->fo_results, o);
}

static void fanout_next(worker *w, xreq *x) {
    attempt_end(x);
    if (!x->c) {
        finish_x(w, x);
        return;
    }
    const sl_view *v = x->fo_view;
    while (x->fo_next < v->n && !atomic_load(&v->engines[x->fo_next]->up)) x->fo_next++;
    if (x->fo_next < v->n) {
        attempt_on(w, x, v->engines[x->fo_next++]);
        return;
    }
    size_t i, ok = 0;
    json_t *e;
    json_array_foreach(x->fo_results, i, e) ok += json_integer_value(json_object_get(e, "status")) == 200;
    const size_t n = json_array_size(x->fo_results);
    if (n == 0) {
        respond_error(w, x->c, 503, NULL, "no engine is in rotation");
    } else if (x->fo_models) { /* Ollama's lists: every engine's models once, by name (the OpenAI list beside, by id) */
        json_t *models = json_array(), *data = json_array();
        json_array_foreach(x->fo_results, i, e) {
            const json_t *ans = json_object_get(e, "answer");
            list_merge(models, json_object_get(ans, "models"), "name");
            list_merge(data, json_object_get(ans, "data"), "id");
        }
        json_t *o = json_pack("{s:o}", "models", models);
        if (json_array_size(data)) {
            json_object_set_new(o, "object", json_string("list"));
            json_object_set_new(o, "data", data);
        } else {
            json_decref(data);
        }
        if (ok) respond_json(w, x->c, 200, o, NULL);
        else {
            json_decref(o);
            respond_error(w, x->c, 502, NULL, "no engine answered with its models");
        }
    } else {
        json_t *o = json_pack("{s:b,s:O}", "reset", ok == n, "engines", x->fo_results);
        respond_json(w, x->c, ok == n ? 200 : 502, o, NULL);
    }
    finish_x(w, x);
}

/* ---- streams of several choices (n, several prompts) -------------------------------------------
 * The engine says `: choices N PER` first and names the choice in its id lines (`prompt_token_ids#K`,
 * `token_ids#K`); the router keeps each choice's ids and text (x->mc). When the engine fails, each
 * unfinished choice continues in turn as a stream of its own (its seed, its prompt: sl_fo_choice_body),
 * its chunks given its index, its [DONE] and usage chunk held back until the last one, whose usage
 * counts the whole generation. */

static void migrate(worker *w, xreq *x, sl_member *failed);
static void llama_events(xreq *x, const json_t *o, sl_strbuf *out);

static void multi_free(xreq *x) {
    for (int k = 0; k < x->n_mc; k++) {
        sl_free(x->mc[k].pids);
        sl_free(x->mc[k].gids);
    }
    sl_free(x->mc);
    x->mc = NULL;
    x->n_mc = 0;
}

static void multi_begin(xreq *x, const char *p, size_t n) {
    char tmp[48];
    int N = 0, per = 0;
    snprintf(tmp, sizeof tmp, "%.*s", (int)(n < sizeof tmp - 1 ? n : sizeof tmp - 1), p);
    if (x->mc || x->migrated || sscanf(tmp, "%d %d", &N, &per) != 2 || N < 2 || N > 4096 || per < 1 || N % per)
        return;
    x->mc = sl_calloc((size_t)N, sizeof *x->mc);
    if (!x->mc) return;
    x->n_mc = N;
    x->per_mc = per;
    x->cur_k = -1;
    for (int k = 0; k < N; k++) x->mc[k].fs = x->fs; /* (the kind, a pending echo) */
}

/* `#K 1 2 3`: choice K's prompt ids (gen false) or more of its generated ids */
static void multi_ids(xreq *x, const char *p, size_t n, bool gen) {
    size_t i = 0;
    int k = 0;
    while (i < n && p[i] >= '0' && p[i] <= '9' && k < 100000) k = k * 10 + (p[i++] - '0');
    if (!x->mc || x->cur_k >= 0 || i == 0 || k >= x->n_mc) return;
    fo_choice *c = &x->mc[k];
    if (gen) {
        sl_fo_parse_ids(p + i, n - i, &c->gids, &c->n_gids, &c->cap_gids);
    } else if (!c->have_pids) {
        if (sl_fo_parse_ids(p + i, n - i, &c->pids, &c->n_pids, &c->cap_pids) == SL_OK) c->have_pids = true;
        else c->n_pids = 0;
    }
}

/* A data payload of the original stream: its choice's text and finish. */
static void multi_track(xreq *x, const char *v, size_t vl) {
    json_t *o = json_loadb(v, vl, 0, NULL);
    json_t *c0 = json_array_get(json_object_get(o, "choices"), 0), *idx = json_object_get(c0, "index");
    if (json_is_object(json_object_get(o, "usage")) && !c0) x->usage_seen = true;
    if (json_is_integer(idx) && json_integer_value(idx) >= 0 && json_integer_value(idx) < x->n_mc) {
        fo_choice *c = &x->mc[json_integer_value(idx)];
        if (x->count_text) sl_fo_count_text(&c->fs, v, vl);
        if (json_is_string(json_object_get(c0, "finish_reason"))) c->fin = true;
    }
    json_decref(o);
}

/* An unfinished choice after the one continuing. */
static bool multi_more(const xreq *x) {
    for (int k = x->cur_k + 1; k < x->n_mc; k++)
        if (!x->mc[k].fin) return true;
    return false;
}

/* The generation's counts: each prompt once, every choice's tokens. */
static void multi_counts(const xreq *x, int64_t *prompt, int64_t *completion) {
    *prompt = *completion = 0;
    for (int k = 0; k < x->n_mc; k++) {
        if (k % x->per_mc == 0) *prompt += x->mc[k].n_pids;
        *completion += k == x->cur_k ? x->n_gids : x->mc[k].n_gids;
    }
}

/* One answer's usage object of several's: its prompt's tokens np, its own nc, the cached tokens of the whole
 * generation's usage u (at most np). */
static json_t *answer_usage(json_int_t np, json_int_t nc, const json_t *u) {
    json_int_t cached = json_integer_value(json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens"));
    return json_pack("{s:I,s:I,s:I,s:{s:I}}", "prompt_tokens", np, "completion_tokens", nc, "total_tokens", np + nc,
                     "prompt_tokens_details", "cached_tokens", cached < np ? cached : np);
}

/* Choice k's own counts (answer_usage), or NULL. */
static json_t *multi_usage_of(const xreq *x, int k, const json_t *u) {
    if (k < 0 || k >= x->n_mc) return NULL;
    return answer_usage(x->mc[k / x->per_mc * x->per_mc].n_pids, k == x->cur_k ? x->n_gids : x->mc[k].n_gids, u);
}

/* A continuation's payload s (malloc'd, or NULL): its usage chunk is held back (*drop) while another
 * choice is to continue, and counts the whole generation on the last. */
static char *multi_usage(xreq *x, char *s, bool *drop) {
    *drop = false;
    if (!x->mc || x->cur_k < 0 || !s || !strstr(s, "\"usage\"")) return s;
    json_t *o = json_loads(s, 0, NULL);
    const bool usage = json_is_object(json_object_get(o, "usage")) && json_array_size(json_object_get(o, "choices")) == 0;
    json_decref(o);
    if (!usage) return s;
    if (multi_more(x)) {
        free(s);
        *drop = true;
        return NULL;
    }
    int64_t pt, ct;
    multi_counts(x, &pt, &ct);
    char *t = sl_fo_usage_totals(s, strlen(s), pt, ct);
    if (!t) return s;
    free(s);
    x->usage_seen = true;
    return t;
}

/* Every choice finished: what the engine would have closed the stream with (the usage chunk where it
 * was asked for and had not come, and [DONE]). */
static void multi_close(worker *w, xreq *x) {
    if (!x->c) {
        finish_x(w, x);
        return;
    }
    stream_headers(w, x);
    const json_t *all = x->json_all ? x->json_all : x->json;
    sl_strbuf ev = {0};
    if (!x->usage_seen &&
        (x->llama || json_is_true(json_object_get(json_object_get(all, "stream_options"), "include_usage")))) {
        int64_t pt, ct;
        multi_counts(x, &pt, &ct);
        json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:[],s:{s:I,s:I,s:I}}", "id", x->fs.id, "object",
                              x->fs.kind == SL_FO_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                              (json_int_t)x->fs.created, "model", x->model, "choices", "usage", "prompt_tokens",
                              (json_int_t)pt, "completion_tokens", (json_int_t)ct, "total_tokens", (json_int_t)(pt + ct));
        if (x->llama) llama_events(x, o, &ev); /* (llama.cpp's stream: the usage closes the finished answers) */
        else sl_sse_event(&ev, NULL, json_incref(o));
        json_decref(o);
    }
    if (!x->llama) sl_strbuf_add(&ev, "data: [DONE]\n\n", 14);
    client_chunk(x->c, ev.p ? ev.p : "", ev.n);
    free(ev.p);
    stream_end(w, x);
    finish_x(w, x);
}

/* The next unfinished choice continues (after cur_k), or the stream closes. */
static void next_choice(worker *w, xreq *x, sl_member *failed) {
    if (x->cur_k >= 0) { /* the one continued so far is over: keep its count */
        x->mc[x->cur_k].n_gids = x->n_gids;
        x->mc[x->cur_k].fin = true;
    }
    int k = x->cur_k + 1;
    while (k < x->n_mc && x->mc[k].fin) k++;
    if (k >= x->n_mc) {
        multi_close(w, x);
        return;
    }
    fo_choice *c = &x->mc[k], *pc = &x->mc[k / x->per_mc * x->per_mc];
    json_t *body = sl_fo_choice_body(x->json_all ? x->json_all : x->json, k, x->per_mc);
    int32_t *pids = pc->n_pids ? sl_malloc(sizeof(int32_t) * (size_t)pc->n_pids) : NULL;
    char *raw = body && c->fs.echo_pending ? json_dumps(body, JSON_COMPACT) : NULL; /* (sent again as it was) */
    if (!body || (pc->n_pids && !pids) || (c->fs.echo_pending && !raw)) {
        stream_error(w, x, "cannot continue choice %d: %s", k, body ? "out of memory" : sl_last_error());
        json_decref(body);
        sl_free(pids);
        free(raw);
        return;
    }
    if (!x->json_all) x->json_all = x->json;
    else json_decref(x->json);
    x->json = body;
    if (raw) {
        free(x->body);
        x->body = raw;
        x->n_body = strlen(raw);
    }
    if (pc->n_pids) memcpy(pids, pc->pids, sizeof(int32_t) * (size_t)pc->n_pids);
    sl_free(x->pids);
    x->pids = pids;
    x->n_pids = x->cap_pids = pc->n_pids;
    x->have_pids = pc->have_pids;
    sl_free(x->gids);
    x->gids = c->gids;
    x->n_gids = c->n_gids;
    x->cap_gids = c->cap_gids;
    c->gids = NULL;
    c->cap_gids = 0;
    sl_fo_stream fs = c->fs; /* its own counts; the stream's id, kind and form */
    memcpy(fs.id, x->fs.id, sizeof fs.id);
    fs.created = x->fs.created;
    fs.learned = x->fs.learned;
    fs.kind = x->fs.kind;
    fs.chat_native = x->fs.chat_native;
    fs.index = k;
    x->fs = fs;
    x->finish_seen = false;
    x->cur_k = k;
    migrate(w, x, failed);
}

/* Continue a stream whose engine failed mid-answer on another one. */
static void migrate(worker *w, xreq *x, sl_member *failed) {
    if (x->mc && (x->cur_k < 0 || x->finish_seen)) { /* several choices: each unfinished one in turn */
        next_choice(w, x, failed);
        return;
    }
    if (x->finish_seen) { /* it had finished: only [DONE] was missing */
        if (x->c) {
            client_chunk(x->c, "data: [DONE]\n\n", 14);
            stream_end(w, x);
        }
        finish_x(w, x);
        return;
    }
    if (!x->fs.echo_pending && (!x->have_pids || !x->json)) {
        stream_error(w, x, "engine %s failed mid-stream and gave no token ids to continue from",
                     failed ? failed->spec.url : x->cur ? x->cur->spec.url : "");
        return;
    }
    char *body = NULL;
    /* an echo not yet streamed comes first, and before it no token: the request again, as it was */
    sl_status st = x->fs.echo_pending ? SL_OK
                   : x->fs.chat_native
                       ? sl_fo_chat_continuation(x->json, x->pids, x->n_pids, x->gids, x->n_gids, &x->fs, &body)
                       : sl_fo_continuation(x->json, x->fs.kind, x->pids, x->n_pids, x->gids, x->n_gids,
                                            (int64_t)x->fs.text_sent, &body);
    if (st == SL_ERR_RANGE) { /* every token was streamed: end as the engine would have */
        json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:[{s:i,s:o,s:n,s:s}]}", "id", x->fs.id, "object",
                              x->fs.kind == SL_FO_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                              x->fs.created, "model", x->model, "choices", "index", x->fs.index,
                              x->fs.kind == SL_FO_CHAT ? "delta" : "text",
                              x->fs.kind == SL_FO_CHAT ? json_object() : json_string(""), "logprobs", "finish_reason",
                              "length");
        sl_strbuf ev = {0};
        sl_sse_event(&ev, NULL, o);
        const bool sent = x->c && ev.n;
        if (sent) { /* (several choices: that one ends here and the next continues; else the stream ends) */
            if (!x->mc) sl_strbuf_add(&ev, "data: [DONE]\n\n", 14);
            client_chunk(x->c, ev.p, ev.n);
            if (!x->mc) stream_end(w, x);
        }
        free(ev.p);
        if (sent && x->mc) {
            x->finish_seen = true;
            next_choice(w, x, failed);
            return;
        }
        finish_x(w, x);
        return;
    }
    if (st != SL_OK) {
        stream_error(w, x, "cannot continue the stream: %s", sl_last_error());
        return;
    }
    if (body) {
        free(x->body);
        x->body = body;
        x->n_body = strlen(body);
    }
    sl_free(x->ctype);
    x->ctype = NULL;
    x->migrated = true;
    x->fs.n_gen_before = x->n_gids;
    x->fs.text_before = x->fs.text_sent + x->fs.echo_bytes;
    sl_evstream_deinit(&x->sse_parser); /* a half-received event of the dead engine is dropped with its ids */
    sl_evstream_init(&x->sse_parser, MAX_EVENT);
    if (failed) {
        atomic_fetch_add(&w->r->metrics.migrations, 1);
        atomic_fetch_add(&failed->n_migrations, 1);
        if (x->mc)
            fprintf(stderr, "shardlm route: engine %s failed mid-stream: continuing its %d choices elsewhere\n",
                    failed->spec.url, x->n_mc);
        else
            fprintf(stderr, "shardlm route: engine %s failed mid-stream after %d tokens: continuing elsewhere\n",
                    failed->spec.url, x->n_gids);
    }
    start_attempt(w, x);
}

static void attempt_failed(worker *w, xreq *x, sl_member *e, int kind, bool stale) {
    sl_router *r = w->r;
    if (x->done_seen) { /* the stream had ended: nothing is lost */
        finish_x(w, x);
        return;
    }
    if (stale && !x->stale_retry) {
        /* a pooled connection the engine had closed: once more on a fresh one, not a failure */
        x->stale_retry = true;
        int err;
        uconn *u = up_connect(w, e, &err);
        if (u) {
            up_send(w, x, u);
            return;
        }
        kind = F_CONNECT;
    }
    atomic_fetch_add(&e->n_errors, 1);
    static const char *WHY[] = {"connection refused or failed", "connect timed out", "connection reset",
                                "connection closed mid-response", "no response within the timeout",
                                "malformed response", "answered 502/503/504"};
    if (kind == F_CONNECT || kind == F_CONNECT_TIMEOUT || kind == F_RESET || kind == F_EOF) {
        sl_member_eject(e, WHY[kind]); /* connection failure: out of the ring at once */
    } else if (kind != F_UNAVAILABLE && atomic_fetch_add(&e->passive_fails, 1) + 1 >= r->cfg.fall) {
        sl_member_eject(e, WHY[kind]);
    }
    if (x->fo_results) { /* a fan-out notes it and goes on */
        fanout_note(x, 0, WHY[kind]);
        x->stale_retry = false;
        fanout_next(w, x);
        return;
    }
    if (x->n_tried < MAX_TRIED) x->tried[x->n_tried++] = e;
    attempt_end(x);
    x->stale_retry = false;
    if (!x->c) {
        finish_x(w, x);
        return;
    }
    if (!x->started) {
        if (x->n_tried > r->cfg.retries) {
            atomic_fetch_add(&r->metrics.no_engine, 1);
            respond_error(w, x->c, 502, NULL, "engine %s failed (%s) and %d retries were used", e->spec.url, WHY[kind],
                          r->cfg.retries);
            finish_x(w, x);
            return;
        }
        atomic_fetch_add(&r->metrics.retries, 1);
        atomic_fetch_add(&e->n_retries, 1);
        multi_free(x); /* (the request again from the start: the next engine says its choices anew) */
        start_attempt(w, x);
        return;
    }
    if (x->n_tried > r->cfg.retries + 1) {
        stream_error(w, x, "engine %s failed mid-stream and %d engines were tried", e->spec.url, x->n_tried);
        return;
    }
    migrate(w, x, e);
}

/* u failed: close it and fail its attempt. */
static void up_fail(worker *w, uconn *u, int kind) {
    xreq *x = u->x;
    sl_member *e = u->e;
    sl_member_retain(e);
    bool stale = u->reused && !u->got_bytes && (kind == F_RESET || kind == F_EOF);
    u->x = NULL;
    if (x) x->u = NULL;
    up_close(w, u);
    if (x) attempt_failed(w, x, e, kind, stale);
    sl_member_release(e);
}

/* ---- upstream responses --------------------------------------------------------------- */

static bool want_line(const char *line, size_t len, const char *what, const char **rest, size_t *rlen) {
    size_t k = strlen(what);
    if (len < k || memcmp(line, what, k) != 0) return false;
    *rest = line + k;
    *rlen = len - k;
    return true;
}

/* One SSE event from the engine: keep the token ids, pass the data on. */
/* The closing object of llama.cpp's answer `index` from a completions answer's finish, stop_reason and usage. */
static json_t *llama_close(xreq *x, int index, const char *content, size_t n, const json_t *end, const json_t *usage,
                           const char *model, const json_t *probs) {
    const int64_t now = mono_ns(), first = x->t_first_ev ? x->t_first_ev : now;
    const sl_llama_end e = {.finish = json_string_value(json_object_get(end, "finish_reason")),
                            .stop_word = json_string_value(json_object_get(end, "stop_reason")),
                            .predicted = json_integer_value(json_object_get(usage, "completion_tokens")),
                            .evaluated = json_integer_value(json_object_get(usage, "prompt_tokens")),
                            .cached = json_integer_value(json_object_get(json_object_get(usage, "prompt_tokens_details"),
                                                                         "cached_tokens")),
                            .prompt_ms = (double)(first - x->t_recv) / 1e6, .predicted_ms = (double)(now - first) / 1e6,
                            .n_predict = x->n_predict};
    json_t *o = sl_llama_result(index, content, n, model ? model : x->model, &e);
    if (o && probs) json_object_set(o, "completion_probabilities", (json_t *)probs); /* (n_probs: the engine's records) */
    return sl_llama_fields(o, json_object_get(x->json, "response_fields"));
}

/* data: lines of llama.cpp's stream for one completions chunk o (an error, text, a finish, or the usage
 * chunk that closes the finished answers). */
static void llama_events(xreq *x, const json_t *o, sl_strbuf *out) {
    json_t *ev = NULL;
    const json_t *ch = json_array_get(json_object_get(o, "choices"), 0);
    if (!o) return;
    if (json_object_get(o, "error")) {
        ev = json_incref((json_t *)o);
    } else if (!ch && json_object_get(o, "usage")) { /* the finished answers close */
        const char *k;
        json_t *end;
        json_object_foreach(x->llama_ends, k, end) {
            const json_t *u = json_object_get(o, "usage");
            json_t *own = x->mc ? multi_usage_of(x, atoi(k), u) : NULL; /* (several prompts: each answer's counts) */
            sl_sse_event(out, NULL, llama_close(x, atoi(k), "", 0, end, own ? own : u,
                                     json_string_value(json_object_get(o, "model")), NULL));
            json_decref(own);
        }
        json_object_clear(x->llama_ends);
        return;
    } else if (ch) {
        const int k = (int)json_integer_value(json_object_get(ch, "index"));
        const json_t *t = json_object_get(ch, "text"), *fin = json_object_get(ch, "finish_reason");
        if (json_string_length(t)) {
            ev = sl_llama_piece(k, json_string_value(t), json_string_length(t));
            json_t *probs = json_object_get(ch, "completion_probabilities"); /* (n_probs) */
            if (ev && probs) json_object_set(ev, "completion_probabilities", probs);
        }
        if (json_is_string(fin)) {
            x->finish_seen = true;
            if (!x->llama_ends) x->llama_ends = json_object();
            char key[16];
            snprintf(key, sizeof key, "%d", k);
            json_object_set_new(x->llama_ends, key, json_pack("{s:O,s:O}", "finish_reason", fin, "stop_reason",
                                                              json_object_get(ch, "stop_reason") ?: json_null()));
        }
    }
    sl_sse_event(out, NULL, ev);
}

static bool on_event(void *ctx, char *ev, size_t n) {
    uconn *u = ctx;
    xreq *x = u->x;
    worker *w = u->w;
    if (!x || !x->c) return false;
    obuf out = {0};
    bool any = false;
    size_t pos = 0, len;
    const char *line;
    while (sl_evstream_line(ev, n, &pos, &line, &len)) {
        const char *v, *rest;
        size_t vl, rl;
        if (sl_evstream_field(line, len, "", &v, &vl)) { /* comment */
            if (want_line(v, vl, "resume chat", &rest, &rl) && rl == 0) {
                x->fs.chat_native = x->fs.kind == SL_FO_CHAT; /* an answer split into parts: continue it as chat */
            } else if (want_line(v, vl, "prompt_token_ids ", &rest, &rl)) {
                if (!x->have_pids) {
                    if (sl_fo_parse_ids(rest, rl, &x->pids, &x->n_pids, &x->cap_pids) == SL_OK) x->have_pids = true;
                    else x->n_pids = 0;
                }
            } else if (want_line(v, vl, "token_ids ", &rest, &rl)) {
                sl_fo_parse_ids(rest, rl, &x->gids, &x->n_gids, &x->cap_gids);
            } else if (want_line(v, vl, "choices ", &rest, &rl)) {
                multi_begin(x, rest, rl);
            } else if (want_line(v, vl, "prompt_token_ids#", &rest, &rl)) {
                multi_ids(x, rest, rl, false);
            } else if (want_line(v, vl, "token_ids#", &rest, &rl)) {
                multi_ids(x, rest, rl, true);
            }
            continue;
        }
        if (sl_evstream_field(line, len, "data", &v, &vl)) {
            if (vl == 6 && !memcmp(v, "[DONE]", 6)) {
                if (x->mc && x->cur_k >= 0 && multi_more(x)) { /* one choice continued; another is next */
                    x->cont_done = true;
                    continue;
                }
                x->done_seen = true;
                if (!x->resp_req && !x->anth_req && !x->oll_req && !x->llama) /* (Responses, Anthropic, Ollama, llama.cpp: */
                    ob_str(&out, "data: [DONE]\n");                              /* no [DONE]) */
                any = true;
                continue;
            }
            if (x->mc && x->cur_k < 0) multi_track(x, v, vl);
            if (x->llama || x->resp_req || x->anth_req || x->oll_req) { /* the chunk (as rewritten for a continuation) made
                                                                        * their own events */
                char *s = x->migrated ? sl_fo_rewrite(&x->fs, v, vl) : NULL;
                bool drop = false;
                s = multi_usage(x, s, &drop);
                if (drop) continue;
                if (!x->migrated && !x->fs.learned) sl_fo_learn(&x->fs, v, vl);
                if (x->count_text) sl_fo_count_text(&x->fs, v, vl);
                json_t *o = s ? json_loads(s, 0, NULL) : json_loadb(v, vl, 0, NULL);
                free(s);
                sl_strbuf b = {0};
                if (x->llama) {
                    if (!x->t_first_ev) x->t_first_ev = mono_ns();
                    llama_events(x, o, &b);
                } else if (x->anth_req) {
                    if (o && json_object_get(o, "choices") && memmem(v, vl, "\"finish_reason\":\"", 17)) x->finish_seen = true;
                    if (o && !x->as) {
                        const char *m = json_string_value(json_object_get(o, "model"));
                        x->as = sl_anth_stream_new(x->anth_req, json_string_value(json_object_get(o, "id")) ?: x->resp_id,
                                                   m ? m : x->model, x->n_pids, &b);
                    }
                    if (o && x->as) sl_anth_stream_chunk(x->as, o, &b);
                } else if (x->oll_req) {
                    if (o && json_object_get(o, "choices") && memmem(v, vl, "\"finish_reason\":\"", 17)) x->finish_seen = true;
                    if (o && !x->os) x->os = sl_ollama_stream_new(x->oll_req, x->oll_generate, (double)x->t_recv * 1e-9);
                    if (o && x->os) sl_ollama_stream_chunk(x->os, o, &b);
                } else {
                    if (o && json_object_get(o, "choices") && memmem(v, vl, "\"finish_reason\":\"", 17)) x->finish_seen = true;
                    if (o && !x->rs) {
                        const char *m = json_string_value(json_object_get(o, "model"));
                        x->rs = sl_resp_stream_new(x->resp_req, x->resp_id, m ? m : x->model,
                                                   (long long)json_integer_value(json_object_get(o, "created")), &b);
                        sl_resp_stream_keep_in(x->rs, w->r->store);
                    }
                    if (o && x->rs) sl_resp_stream_chunk(x->rs, o, &b);
                }
                json_decref(o);
                if (b.n) ob_add(&out, b.p, b.n - 1); /* (events end with their blank line; the tail adds one) */
                any |= x->llama || b.n;
                free(b.p);
                continue;
            }
            if (!x->migrated) {
                if (!x->fs.learned) sl_fo_learn(&x->fs, v, vl);
                if (x->count_text) sl_fo_count_text(&x->fs, v, vl);
                if (memmem(v, vl, "\"finish_reason\":\"", 17)) x->finish_seen = true;
                ob_add(&out, line, len);
                ob_str(&out, "\n");
            } else {
                char *s = sl_fo_rewrite(&x->fs, v, vl);
                bool drop = false;
                s = multi_usage(x, s, &drop);
                if (drop) continue;
                if (s && memmem(s, strlen(s), "\"finish_reason\":\"", 17)) x->finish_seen = true;
                if (x->count_text) sl_fo_count_text(&x->fs, v, vl);
                ob_str(&out, "data: ");
                if (s) ob_str(&out, s);
                else ob_add(&out, v, vl);
                ob_str(&out, "\n");
                free(s);
            }
            any = true;
            continue;
        }
        ob_add(&out, line, len); /* event:, id:, retry: */
        ob_str(&out, "\n");
    }
    if (any) {
        bool first = !x->started;
        stream_headers(w, x);
        if (x->migrated && x->events == 0 && !x->oll_req) { /* (an SSE comment: Ollama's lines have no place for it) */
            char note[400];
            int k = snprintf(note, sizeof note, ": x-shardlm-engine %s\n\n", x->cur ? x->cur->spec.url : "");
            client_chunk(x->c, note, (size_t)k);
        }
        if (out.n) { /* (a llama.cpp stream's finish chunk or [DONE] gives nothing to send) */
            ob_str(&out, "\n");
            client_chunk(x->c, out.p, out.n);
        }
        x->events++;
        if (first) {
            x->t_up_done = mono_ns();
            note_added(w, x);
        }
        if (x->done_seen) stream_end(w, x);
        else client_flush(w, x->c);
    }
    ob_free(&out);
    return !u->dead && u->x == x && x->c && !x->c->dead;
}

static bool up_head(worker *w, uconn *u) {
    xreq *x = u->x;
    int st = u->hp.status;
    if (st == 502 || st == 503 || st == 504) {
        up_fail(w, u, F_UNAVAILABLE);
        return false;
    }
    atomic_store(&u->e->passive_fails, 0);
    x->status = st;
    const sl_hp_hdr *ct = sl_hp_header(&u->hp, "Content-Type");
    snprintf(x->up_ctype, sizeof x->up_ctype, "%.*s", ct ? (int)(ct->value_len < 127 ? ct->value_len : 127) : 16,
             ct ? ct->value : "application/json");
    x->sse = x->stream && st == 200 && !strncasecmp(x->up_ctype, "text/event-stream", 17);
    return true; /* a refused continuation (not SSE) is gathered and reported by up_done */
}

static bool up_body(void *ctx, const char *p, size_t n) {
    uconn *u = ctx;
    worker *w = u->w;
    if (!u->head_seen) {
        u->head_seen = true;
        if (!up_head(w, u)) return false;
    }
    xreq *x = u->x;
    if (!x) return false;
    if (!x->sse) {
        if (ob_pending(&x->resp) + n > MAX_RESPONSE) {
            up_fail(w, u, F_PROTO);
            return false;
        }
        ob_add(&x->resp, p, n);
        return true;
    }
    sl_status st = sl_evstream_feed(&x->sse_parser, p, n, on_event, u);
    if (st == SL_ERR_PROTO || st == SL_ERR_NOMEM) {
        up_fail(w, u, F_PROTO);
        return false;
    }
    return st == SL_OK && !u->dead && u->x == x;
}

/* The engine's response is complete. */
static void up_done(worker *w, uconn *u) {
    xreq *x = u->x;
    if (!x) {
        up_close(w, u);
        return;
    }
    x->t_up_done = mono_ns();
    if (x->sse) {
        if (x->done_seen) {
            finish_x(w, x);
        } else if (x->cont_done) { /* a choice was continued to its end: the next one */
            x->cont_done = false;
            up_release(w, x);
            attempt_end(x);
            next_choice(w, x, NULL);
        } else {
            up_fail(w, u, F_EOF);
        }
        return;
    }
    if (x->fo_results) { /* one engine of a fan-out answered */
        fanout_note(x, x->status, NULL);
        json_t *ans = json_loadb(x->resp.p ? x->resp.p : "", ob_pending(&x->resp), 0, NULL), *last =
            json_array_get(x->fo_results, json_array_size(x->fo_results) - 1);
        if (ans && last) json_object_set_new(last, "answer", ans); /* (the engine's counts, or its error) */
        else json_decref(ans);
        up_release(w, x);
        fanout_next(w, x);
        return;
    }
    if (x->migrated) {
        char msg[600];
        snprintf(msg, sizeof msg, "the continuation was refused with %d: %.*s", x->status,
                 (int)(ob_pending(&x->resp) > 400 ? 400 : ob_pending(&x->resp)), x->resp.p ? x->resp.p : "");
        stream_error(w, x, "%s", msg);
        return;
    }
    if (x->c) {
        /* the engine's load drops before the client hears back, so its next request sees it */
        char url[sizeof x->cur->spec.url];
        snprintf(url, sizeof url, "%s", x->cur->spec.url);
        attempt_end(x);
        note_added(w, x);
        json_t *chat = (x->resp_req || x->anth_req || x->oll_req || x->llama) && x->status == 200
                           ? json_loadb(x->resp.p ? x->resp.p : "", ob_pending(&x->resp), 0, NULL)
                           : NULL;
        char *rb = NULL;
        if (chat && x->llama) { /* POST /completion: llama.cpp's form, an array for several prompts */
            json_t *arr = json_array(), *choices = json_object_get(chat, "choices");
            size_t i;
            json_t *c;
            json_array_foreach(choices, i, c) {
                const json_t *t = json_object_get(c, "text"), *us = json_object_get(chat, "usage"),
                             *ti = json_object_get(c, "token_ids"), *pi = json_object_get(c, "prompt_token_ids");
                json_t *own = json_array_size(choices) > 1 && json_is_array(ti) && json_is_array(pi) /* (several: each */
                                  ? answer_usage((json_int_t)json_array_size(pi), (json_int_t)json_array_size(ti), us)
                                  : NULL;                                                /* answer's own, from its ids) */
                json_array_append_new(arr, llama_close(x, (int)json_integer_value(json_object_get(c, "index")),
                                                       json_string_value(t) ? json_string_value(t) : "", json_string_length(t), c,
                                                       own ? own : us, json_string_value(json_object_get(chat, "model")),
                                                       json_object_get(c, "completion_probabilities")));
                json_decref(own);
            }
            rb = json_dumps(json_array_size(arr) == 1 ? json_array_get(arr, 0) : arr, JSON_COMPACT);
            json_decref(arr);
            json_decref(chat);
            chat = NULL;
        }
        if (chat && (x->anth_req || x->oll_req)) { /* the chat answer as Anthropic's message; an answer in Ollama's form */
            const sl_ollama_times t = {.t0 = (double)x->t_recv * 1e-9, .t_end = (double)mono_ns() * 1e-9};
            json_t *mo = x->anth_req ? sl_anth_from_chat(chat, x->anth_req)
                                     : sl_ollama_from_openai(chat, x->oll_req, x->oll_generate, &t);
            rb = mo ? json_dumps(mo, JSON_COMPACT) : NULL;
            json_decref(mo);
            json_decref(chat);
            chat = NULL;
        } else if ((x->anth_req || x->oll_req) && x->status != 200) { /* the engine's error, in Anthropic's / Ollama's form */
            json_t *eo = json_loadb(x->resp.p ? x->resp.p : "", ob_pending(&x->resp), 0, NULL), *er = json_object_get(eo, "error");
            sl_api_error ae;
            sl_api_set_error(&ae, x->status, json_string_value(json_object_get(er, "param")), "%s",
                             json_string_value(json_object_get(er, "message")) ?: "the engine refused the request");
            snprintf(ae.param, sizeof ae.param, "%s",
                     x->anth_req ? sl_anth_param(ae.param) : sl_ollama_param(ae.param, x->oll_generate));
            char *ab = x->anth_req ? sl_anth_error_json(&ae) : sl_ollama_error_json(&ae);
            json_decref(eo);
            if (ab) respond(w, x->c, x->status, "application/json", ab, strlen(ab), url);
            else respond(w, x->c, x->status, x->up_ctype, x->resp.p ? x->resp.p : "", ob_pending(&x->resp), url);
            free(ab);
            finish_x(w, x);
            return;
        }
        if (chat) { /* POST /v1/responses: the chat answer as a response object */
            json_t *ro = sl_responses_from_chat(chat, x->resp_req, x->resp_id,
                                                (long long)json_integer_value(json_object_get(chat, "created")));
            sl_resp_store_put(w->r->store, x->resp_req, ro);
            rb = ro ? json_dumps(ro, JSON_COMPACT) : NULL;
            json_decref(ro);
            json_decref(chat);
        }
        if (rb) respond(w, x->c, 200, "application/json", rb, strlen(rb), url);
        else respond(w, x->c, x->status, x->up_ctype, x->resp.p ? x->resp.p : "", ob_pending(&x->resp), url);
        free(rb);
    }
    finish_x(w, x);
}

static void up_readable(worker *w, uconn *u) {
    for (;;) {
        ssize_t k = io_in(u->fd, u->ssl, w->rbuf, sizeof w->rbuf, NULL);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (!u->x) { /* idle in the pool: the engine closed it, or sent something unasked */
            up_close(w, u);
            return;
        }
        if (k <= 0) {
            if (k == 0 && sl_hp_eof(&u->hp) == SL_HP_DONE) {
                if (!u->head_seen) {
                    u->head_seen = true;
                    if (!up_head(w, u)) return;
                }
                up_done(w, u);
            } else {
                up_fail(w, u, k == 0 ? F_EOF : F_RESET);
            }
            return;
        }
        u->got_bytes = true;
        u->deadline_ns = w->now + (int64_t)w->r->cfg.upstream_timeout_s * 1000000000LL;
        size_t off = 0;
        while (off < (size_t)k) {
            size_t used = sl_hp_feed(&u->hp, w->rbuf + off, (size_t)k - off, up_body, u);
            off += used;
            if (u->dead || !u->x) return;
            if (u->hp.state == SL_HP_ERROR) {
                up_fail(w, u, F_PROTO);
                return;
            }
            if (!u->head_seen && u->hp.state != SL_HP_HEAD) {
                u->head_seen = true;
                if (!up_head(w, u)) return;
            }
            if (u->hp.state == SL_HP_DONE) {
                if (off < (size_t)k) u->hp.keep_alive = false; /* bytes after the response: do not reuse */
                up_done(w, u);
                return;
            }
            if (used == 0) break;
        }
        if (u->paused) return;
        if (!u->ssl && (size_t)k < sizeof w->rbuf) return; /* (TLS: on to its EAGAIN, records may be buffered) */
    }
}

static void up_event(worker *w, uconn *u, uint32_t ev) {
    if (u->state == U_CONNECTING) {
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            up_fail(w, u, F_CONNECT);
            return;
        }
        if (u->ssl) {
            u->state = U_HANDSHAKE;
            up_tls_step(w, u);
            return;
        }
        u->state = U_SENDING;
        up_write(w, u);
        return;
    }
    if (u->state == U_HANDSHAKE) {
        up_tls_step(w, u);
        return;
    }
    if (u->state == U_SENDING && (ev & EPOLLOUT)) {
        up_write(w, u);
        if (u->dead) return;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) up_readable(w, u);
}

/* ---- timeouts -------------------------------------------------------------------------- */

static void sweep(worker *w) {
    int64_t now = w->now;
    /* closed objects keep their links until reaped, so walking on from one is safe */
    for (uconn *u = w->ups, *next; u; u = next) {
        next = u->next;
        if (u->dead || u->deadline_ns > now) continue;
        if (u->paused) u->deadline_ns = now + (int64_t)w->r->cfg.upstream_timeout_s * 1000000000LL;
        else if (u->state == U_IDLE) up_close(w, u);
        else if (u->state == U_CONNECTING || u->state == U_HANDSHAKE) up_fail(w, u, F_CONNECT_TIMEOUT);
        else up_fail(w, u, F_TIMEOUT);
    }
    for (cconn *c = w->clients, *next; c; c = next) {
        next = c->next;
        if (c->dead) continue;
        if (ob_pending(&c->out) && now - c->out_ns > CLIENT_IDLE_NS) {
            client_close(w, c); /* it stopped reading: its engine stream must not wait on it forever */
            continue;
        }
        if (c->x) continue;
        bool partial = c->hp.n_head > 0 || c->hp.state == SL_HP_BODY;
        if (now - c->last_ns > (partial ? CLIENT_HEAD_NS : CLIENT_IDLE_NS)) {
            if (partial) {
                c->close_after = true;
                respond_error(w, c, 408, NULL, "the request did not arrive in time");
                if (!c->dead && ob_pending(&c->out)) continue;
            }
            client_close(w, c);
        }
    }
    /* pools of engines that left the membership */
    for (int i = 0; i < w->n_pools; i++) {
        pool *p = &w->pools[i];
        bool member = false;
        for (int k = 0; k < w->view->n && !member; k++) member = w->view->engines[k] == p->e;
        if (member) continue;
        while (p->idle) up_close(w, p->idle);
        sl_member_release(p->e);
        w->pools[i] = w->pools[--w->n_pools];
        i--;
    }
}

/* ---- the loop ---------------------------------------------------------------------------- */

/* Clients whose request ended: look for pipelined requests. */
static void run_todo(worker *w) {
    while (w->todo) {
        cconn *c = w->todo;
        w->todo = c->next_todo;
        c->todo = false;
        if (!c->dead) client_process(w, c);
    }
}

/* Free what closed during this batch of events (none of it is reachable any more). */
static void reap(worker *w) {
    run_todo(w);
    while (w->dead_c) {
        cconn *c = w->dead_c;
        w->dead_c = c->next_dead;
        client_free(c);
    }
    while (w->dead_u) {
        uconn *u = w->dead_u;
        w->dead_u = u->next_dead;
        up_free(u);
    }
    while (w->dead_x) {
        xreq *x = w->dead_x;
        w->dead_x = x->next_dead;
        x_free(x);
    }
}

static void *worker_main(void *arg) {
    worker *w = arg;
    sl_proxy *px = w->px;
    struct epoll_event evs[256];
    while (!atomic_load(&px->stop)) {
        int n = epoll_wait(w->ep, evs, 256, 50);
        w->now = mono_ns();
        for (int i = 0; i < n; i++) {
            int kind = *(int *)evs[i].data.ptr;
            uint32_t ev = evs[i].events;
            if (kind == K_LISTEN) {
                accept_clients(w);
            } else if (kind == K_WAKE) {
                uint64_t v;
                if (read(w->wake_fd, &v, sizeof v) < 0) { /* nothing to do */
                }
            } else if (kind == K_CLIENT) {
                cconn *c = evs[i].data.ptr;
                if (c->dead) continue;
                if ((ev & EPOLLOUT) && c->tls_want_write) { /* (a TLS read waited for this) */
                    c->tls_want_write = false;
                    client_readable(w, c);
                    if (c->dead) continue;
                }
                if (ev & EPOLLOUT) client_flush(w, c);
                if (!c->dead && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
                    if (c->reading_paused && !(ev & (EPOLLIN))) {
                        if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) client_close(w, c);
                    } else {
                        client_readable(w, c);
                    }
                }
            } else if (kind == K_UP) {
                uconn *u = evs[i].data.ptr;
                if (!u->dead) up_event(w, u, ev);
            }
            run_todo(w);
        }
        reap(w); /* only after the batch: a later event of it may name an object closed earlier in it */
        if (w->now >= w->next_sweep) {
            w->view = sl_members_view(w->r->members, w->view);
            sweep(w);
            reap(w);
            w->next_sweep = w->now + SWEEP_NS;
        }
    }
    /* shutdown: close everything */
    while (w->clients) client_close(w, w->clients);
    while (w->ups) up_close(w, w->ups);
    reap(w);
    for (int i = 0; i < w->n_pools; i++) sl_member_release(w->pools[i].e);
    sl_free(w->pools);
    sl_view_release(w->view);
    return NULL;
}

/* ---- start / stop --------------------------------------------------------------------------- */

static int listen_on(const char *host, int port, sl_status *st) {
    struct sockaddr_storage sa;
    socklen_t sa_len = 0;
    if ((*st = sl_listen_addr(host, port, &sa, &sa_len)) != SL_OK) return -1;
    int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *st = SL_FAIL(SL_ERR_IO, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (sa.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero); /* (IPv4 clients too) */
    if (bind(fd, (struct sockaddr *)&sa, sa_len) < 0 || listen(fd, 1024) < 0) {
        *st = SL_FAIL(SL_ERR_IO, "cannot listen on %s:%d: %s", host, port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* ctx's own certificate chain and key (PEM files, both needed; pass: an encrypted key's passphrase, or NULL),
 * named by their flags when wrong. */
static sl_status tls_identity(SSL_CTX *ctx, const char *key, const char *cert, const char *pass, const char *key_flag,
                              const char *cert_flag) {
    if (!key || !cert) return SL_FAIL(SL_ERR_INVALID, "%s and %s go together", key_flag, cert_flag);
    sl_status st = SL_OK;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        char why[256];
        ERR_error_string_n(ERR_get_error(), why, sizeof why);
        st = SL_FAIL(SL_ERR_INVALID, "%s %s: no certificate in it (%s)", cert_flag, cert, why);
    } else {
        FILE *f = fopen(key, "r");
        /* (no callback: OpenSSL takes pass as an encrypted key's passphrase; without one it asks nobody) */
        EVP_PKEY *pk = f ? PEM_read_PrivateKey(f, NULL, NULL, (void *)(pass ? pass : "")) : NULL;
        if (f) fclose(f);
        if (!pk)
            st = SL_FAIL(SL_ERR_INVALID, "%s %s: %s", key_flag, key,
                         !f     ? strerror(errno)
                         : pass ? "no private key in it that opens with --ssl-keyfile-password"
                                : "no unencrypted private key in it (an encrypted one needs --ssl-keyfile-password)");
        else if (SSL_CTX_use_PrivateKey(ctx, pk) != 1 || SSL_CTX_check_private_key(ctx) != 1)
            st = SL_FAIL(SL_ERR_INVALID, "%s %s is not the key of %s %s", key_flag, key, cert_flag, cert);
        EVP_PKEY_free(pk);
    }
    ERR_clear_error();
    return st;
}

/* The TLS client side for https:// engines: TLS 1.2 or later, certificates verified against ca (PEM; NULL: the
 * system's). */
static sl_status up_tls_ctx(const char *ca, const char *cert, const char *key, SSL_CTX **out) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) return SL_FAIL(SL_ERR_NOMEM, "cannot make a TLS context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF); /* (an engine closing after its answer) */
    if (ca ? SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        char why[256];
        ERR_error_string_n(ERR_get_error(), why, sizeof why);
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return SL_FAIL(SL_ERR_INVALID, "--engine-ca %s: %s", ca ? ca : "(the system's)", why);
    }
    sl_status st = cert || key ? tls_identity(ctx, key, cert, NULL, "--engine-tls-key", "--engine-tls-cert") : SL_OK;
    if (st != SL_OK) {
        SSL_CTX_free(ctx);
        return st;
    }
    *out = ctx;
    return SL_OK;
}

/* HTTPS for clients: the PEM key and certificate chain (neither: plain HTTP, *out NULL); with ca, mutual TLS. */
static sl_status srv_tls_ctx(const char *key, const char *cert, const char *pass, const char *ca, int reqs, SSL_CTX **out) {
    *out = NULL;
    if (!key && !cert) return ca ? SL_FAIL(SL_ERR_INVALID, "--ssl-ca-certs needs HTTPS (--ssl-keyfile and --ssl-certfile)") : SL_OK;
    if (!key || !cert) return SL_FAIL(SL_ERR_INVALID, "HTTPS needs both --ssl-keyfile and --ssl-certfile");
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) return SL_FAIL(SL_ERR_NOMEM, "cannot make a TLS context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    sl_status st = tls_identity(ctx, key, cert, pass, "--ssl-keyfile", "--ssl-certfile");
    if (st == SL_OK && ca && reqs > 0) { /* mutual TLS: a client without a certificate of ca fails the handshake */
        if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
            char why[256];
            ERR_error_string_n(ERR_get_error(), why, sizeof why);
            st = SL_FAIL(SL_ERR_INVALID, "--ssl-ca-certs %s: %s", ca, why);
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (reqs >= 2 ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), NULL);
    }
    ERR_clear_error();
    if (st != SL_OK) SSL_CTX_free(ctx);
    else *out = ctx;
    return st;
}

/* A client connection's TLS, from the files as they are now where --enable-ssl-refresh watches them. */
static SSL *new_client_ssl(sl_proxy *px) {
    if (!px->tls_refresh) return SSL_new(px->srv_tls);
    pthread_mutex_lock(&px->tls_mu);
    if (sl_filewatch_changed(&px->tls_watch)) {
        const sl_router_cfg *cfg = &px->r->cfg;
        SSL_CTX *ctx = NULL;
        if (srv_tls_ctx(cfg->tls_key_file, cfg->tls_cert_file, cfg->tls_key_password, cfg->tls_ca_file, cfg->tls_cert_reqs,
                        &ctx) == SL_OK) {
            SSL_CTX_free(px->srv_tls);
            px->srv_tls = ctx;
            sl_filewatch_take(&px->tls_watch);
            fprintf(stderr, "shardlm route: --enable-ssl-refresh: the TLS files changed: new connections get them\n");
        } else {
            sl_filewatch_refuse(&px->tls_watch);
            fprintf(stderr, "shardlm route: --enable-ssl-refresh: %s; the files before stay in use\n", sl_last_error());
        }
    }
    SSL *ssl = SSL_new(px->srv_tls);
    pthread_mutex_unlock(&px->tls_mu);
    return ssl;
}

sl_status sl_proxy_start(sl_router *r, sl_proxy **out) {
    *out = NULL;
    sl_status st = SL_OK;
    sl_proxy *px = sl_calloc(1, sizeof *px);
    if (!px) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    px->r = r;
    px->n = r->cfg.threads;
    px->w = sl_calloc((size_t)px->n, sizeof(worker));
    if (!px->w) {
        sl_free(px);
        return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    }
    if ((st = up_tls_ctx(r->cfg.engine_ca, r->cfg.engine_cert, r->cfg.engine_key, &px->up_tls)) != SL_OK ||
        (st = srv_tls_ctx(r->cfg.tls_key_file, r->cfg.tls_cert_file, r->cfg.tls_key_password, r->cfg.tls_ca_file,
                          r->cfg.tls_cert_reqs, &px->srv_tls)) !=
            SL_OK) {
        SSL_CTX_free(px->up_tls);
        sl_free(px->w);
        sl_free(px);
        return st;
    }
    pthread_mutex_init(&px->tls_mu, NULL);
    px->tls_refresh = r->cfg.tls_refresh && px->srv_tls;
    if (r->cfg.tls_refresh && !px->srv_tls) {
        SSL_CTX_free(px->up_tls);
        sl_free(px->w);
        sl_free(px);
        return SL_FAIL(SL_ERR_INVALID, "--enable-ssl-refresh needs HTTPS (--ssl-keyfile and --ssl-certfile)");
    }
    if (px->tls_refresh) {
        const char *watched[] = {r->cfg.tls_key_file, r->cfg.tls_cert_file, r->cfg.tls_ca_file};
        sl_filewatch_init(&px->tls_watch, watched, 3);
    }
    int port = r->cfg.port;
    int started = 0;
    for (int i = 0; i < px->n; i++) {
        worker *w = &px->w[i];
        w->px = px;
        w->r = r;
        w->idx = i;
        w->listen_tag = K_LISTEN;
        w->wake_tag = K_WAKE;
        w->lfd = w->ep = w->wake_fd = -1;
        w->lfd = listen_on(r->cfg.host, port, &st);
        if (w->lfd < 0) goto fail;
        if (port == 0) {
            struct sockaddr_storage sa;
            socklen_t sl = sizeof sa;
            getsockname(w->lfd, (struct sockaddr *)&sa, &sl);
            port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port : ((struct sockaddr_in *)&sa)->sin_port);
        }
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w->ep < 0 || w->wake_fd < 0) {
            st = SL_FAIL(SL_ERR_IO, "epoll/eventfd: %s", strerror(errno));
            goto fail;
        }
        ep_set(w, w->lfd, &w->listen_tag, EPOLLIN, true);
        ep_set(w, w->wake_fd, &w->wake_tag, EPOLLIN, true);
        w->view = sl_members_view(r->members, NULL);
    }
    px->port = port;
    for (int i = 0; i < px->n; i++) {
        if (pthread_create(&px->w[i].th, NULL, worker_main, &px->w[i]) != 0) {
            st = SL_FAIL(SL_ERR_IO, "cannot start I/O thread %d", i);
            goto fail;
        }
        started++;
    }
    *out = px;
    return SL_OK;
fail:
    atomic_store(&px->stop, true);
    for (int i = 0; i < started; i++) pthread_join(px->w[i].th, NULL);
    for (int i = 0; i < px->n; i++) {
        worker *w = &px->w[i];
        if (i >= started) sl_view_release(w->view);
        if (w->lfd >= 0) close(w->lfd);
        if (w->ep >= 0) close(w->ep);
        if (w->wake_fd >= 0) close(w->wake_fd);
    }
    SSL_CTX_free(px->up_tls);
    SSL_CTX_free(px->srv_tls);
    pthread_mutex_destroy(&px->tls_mu);
    sl_free(px->w);
    sl_free(px);
    return st;
}

int sl_proxy_port(const sl_proxy *p) { return p->port; }

void sl_proxy_stop(sl_proxy *px) {
    if (!px) return;
    atomic_store(&px->stop, true);
    for (int i = 0; i < px->n; i++) {
        uint64_t one = 1;
        if (write(px->w[i].wake_fd, &one, sizeof one) < 0) { /* the 50 ms wait ends anyway */
        }
    }
    for (int i = 0; i < px->n; i++) {
        worker *w = &px->w[i];
        pthread_join(w->th, NULL);
        close(w->lfd);
        close(w->ep);
        close(w->wake_fd);
    }
    SSL_CTX_free(px->up_tls);
    SSL_CTX_free(px->srv_tls);
    pthread_mutex_destroy(&px->tls_mu);
    sl_free(px->w);
    sl_free(px);
}

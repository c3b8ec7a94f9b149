/*
 * test_router_util.h — helpers shared by the router's end-to-end tests
 * (test_router*.c): an HTTP client over libcurl that keeps the
 * x-shardlm-engine header, an SSE reader written independently of the
 * router's, Prometheus scraping, engine/router/etcd processes on free ports.
 *
 * Every process a test starts is recorded by the harness (sl_test_track),
 * which stops what is still running at exit, by PID.
 */
#ifndef TEST_ROUTER_UTIL_H
#define TEST_ROUTER_UTIL_H

#include "harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RT_MODEL "../shared/models/stories260K.gguf"
#define RT_FN static __attribute__((unused)) /* each test file uses some of them */

/* The CA file the tests' HTTPS clients trust (NULL: the system's), for engines and routers serving TLS. */
static const char *rt_tls_ca;
/* ... and the client certificate and key they present (NULL: none), for servers that require one. */
static const char *rt_tls_cert, *rt_tls_key;

RT_FN double rt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

RT_FN void rt_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- processes ------------------------------------------------------------------- */

/* Start `$BUILD/shardlm ARGS...` and wait (60 s at most) for a line with
 * "http://HOST:PORT" on its stdout (sl_test_proc_start: the child dies with
 * this process and is killed at exit if still running). */
RT_FN bool rt_start(sl_test_proc *p, char *const args[]) { return sl_test_proc_start(p, args, 60) == 0; }

/* A stories260K engine on a free port; `extra`: more flags, NULL-terminated (or NULL). */
RT_FN bool rt_start_engine(sl_test_proc *p, const char *const *extra) {
    char *args[40] = {"serve", "-m", RT_MODEL, "--port", "0", "-t", "1", "--kv-mem", "64"};
    int n = 9;
    for (int i = 0; extra && extra[i] && n < 39; i++) args[n++] = (char *)extra[i];
    args[n] = NULL;
    return rt_start(p, args);
}

/* A port nobody listens on right now. */
RT_FN int rt_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
        if (fd >= 0) close(fd);
        return -1;
    }
    close(fd);
    return ntohs(sa.sin_port);
}

/* Start a plain program (etcd) with stdout/stderr to a log file; returns its PID. */
RT_FN pid_t rt_spawn(char *const argv[], const char *log) {
    fflush(stdout);
    fflush(stderr);
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        sl_test_child_setup(parent);
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    if (pid > 0) sl_test_track(pid);
    return pid;
}

RT_FN int rt_stop_pid(pid_t pid, int sig, double timeout_s) {
    if (pid <= 0) return -1;
    kill(pid, sig);
    double t0 = rt_now();
    int status = -1;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (rt_now() - t0 > timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        rt_sleep_ms(10);
    }
    return status;
}

/* ---- HTTP ----------------------------------------------------------------------------- */

typedef struct rresp {
    long status;
    char *body;
    size_t n, cap;
    char engine[256];   /* x-shardlm-engine */
    CURLcode rc;
    /* streaming observers */
    int events;         /* "data: {" events (or Ollama's "{" lines) seen so far (counted on whole lines) */
    size_t scanned, line_start;
    int kill_after;     /* SIGKILL kill_pid once this many events arrived (0: never) */
    int kill_signal;    /* ... or this signal (0: SIGKILL) */
    pid_t kill_pid;
    bool killed;
    const char *const *engine_urls; /* kill the engine named by the header: urls[i] ↔ pids[i] */
    const pid_t *engine_pids;
    int n_engine;
} rresp;

static size_t rt_on_data(char *p, size_t sz, size_t nm, void *ud) {
    rresp *r = ud;
    size_t n = sz * nm;
    if (r->n + n + 1 > r->cap) {
        size_t c = r->cap ? r->cap * 2 : 8192;
        while (c < r->n + n + 1) c *= 2;
        char *nb = realloc(r->body, c);
        if (!nb) return 0;
        r->body = nb;
        r->cap = c;
    }
    memcpy(r->body + r->n, p, n);
    r->n += n;
    r->body[r->n] = '\0';
    for (size_t i = r->scanned; i < r->n; i++) { /* count whole "data: {" lines */
        if (r->body[i] != '\n') continue;
        if ((i - r->line_start >= 7 && !strncmp(r->body + r->line_start, "data: {", 7)) ||
            (i > r->line_start && r->body[r->line_start] == '{')) /* (Ollama's lines) */
            r->events++;
        r->line_start = i + 1;
    }
    r->scanned = r->n;
    if (r->kill_after && !r->killed && r->events >= r->kill_after) {
        pid_t pid = r->kill_pid;
        for (int i = 0; i < r->n_engine; i++)
            if (!strcmp(r->engine_urls[i], r->engine)) pid = r->engine_pids[i];
        if (pid > 0) kill(pid, r->kill_signal ? r->kill_signal : SIGKILL);
        r->killed = true;
    }
    return n;
}

static size_t rt_on_header(char *p, size_t sz, size_t nm, void *ud) {
    rresp *r = ud;
    size_t n = sz * nm;
    if (n > 18 && !strncasecmp(p, "x-shardlm-engine:", 17)) {
        const char *v = p + 17;
        while (*v == ' ') v++;
        size_t l = (size_t)(p + n - v);
        while (l && (v[l - 1] == '\r' || v[l - 1] == '\n')) l--;
        snprintf(r->engine, sizeof r->engine, "%.*s", (int)l, v);
    }
    return n;
}

RT_FN CURL *rt_easy(const char *base, const char *method, const char *path, const char *body, const char *hdr1,
                     const char *hdr2, rresp *r, struct curl_slist **hl, long timeout_s) {
    CURL *h = curl_easy_init();
    char url[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, rt_on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, rt_on_header);
    if (rt_tls_ca) curl_easy_setopt(h, CURLOPT_CAINFO, rt_tls_ca);
    if (rt_tls_cert) {
        curl_easy_setopt(h, CURLOPT_SSLCERT, rt_tls_cert);
        curl_easy_setopt(h, CURLOPT_SSLKEY, rt_tls_key);
    }
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    *hl = curl_slist_append(NULL, "Content-Type: application/json");
    if (hdr1) *hl = curl_slist_append(*hl, hdr1);
    if (hdr2) *hl = curl_slist_append(*hl, hdr2);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hl);
    if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    if (method) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    return h;
}

RT_FN rresp rt_http(const char *base, const char *method, const char *path, const char *body, const char *hdr1,
                     const char *hdr2) {
    rresp r;
    memset(&r, 0, sizeof r);
    struct curl_slist *hl = NULL;
    CURL *h = rt_easy(base, method, path, body, hdr1, hdr2, &r, &hl, 30);
    r.rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hl);
    if (!r.body) r.body = calloc(1, 1);
    return r;
}

RT_FN rresp rt_post(const char *base, const char *path, const char *body) {
    return rt_http(base, NULL, path, body, NULL, NULL);
}

RT_FN void rt_free(rresp *r) {
    free(r->body);
    r->body = NULL;
}

/* The text of an Ollama answer or line o (message.content or response), or NULL. */
RT_FN const json_t *rt_ollama_text(const json_t *o) {
    const json_t *t = json_object_get(json_object_get(o, "message"), "content");
    return t ? t : json_object_get(o, "response");
}

/* The generated text of a response: non-streaming JSON, or the SSE events (Ollama's lines)
 * joined. *done_count gets the number of [DONE] events (Ollama's done lines), *errors the error events. */
RT_FN char *rt_text(const rresp *r, int *done_count, int *errors) {
    if (done_count) *done_count = 0;
    if (errors) *errors = 0;
    size_t cap = r->n + 1, n = 0;
    char *out = calloc(1, cap);
    if (!r->body) return out;
    json_t *whole = r->body[0] == '{' ? json_loads(r->body, 0, NULL) : NULL;
    if (r->body[0] == '{' && !whole) { /* Ollama's stream: a JSON object a line */
        for (const char *p = r->body, *e; (e = strchr(p, '\n')) != NULL; p = e + 1) {
            json_t *o = json_loadb(p, (size_t)(e - p), 0, NULL);
            const json_t *t = rt_ollama_text(o);
            if (json_object_get(o, "error") && errors) (*errors)++;
            if (json_is_true(json_object_get(o, "done")) && done_count) (*done_count)++;
            if (json_is_string(t) && n + json_string_length(t) < cap) {
                memcpy(out + n, json_string_value(t), json_string_length(t));
                n += json_string_length(t);
            }
            json_decref(o);
        }
        out[n] = '\0';
        return out;
    }
    if (r->body[0] == '{') {
        json_t *o = whole;
        size_t i;
        json_t *item;
        json_array_foreach(json_object_get(o, "output"), i, item) { /* a Responses answer: its messages' text */
            json_t *t = json_object_get(json_array_get(json_object_get(item, "content"), 0), "text");
            if (json_is_string(t) && n + json_string_length(t) < cap) {
                memcpy(out + n, json_string_value(t), json_string_length(t));
                n += json_string_length(t);
            }
        }
        json_t *c0 = json_array_get(json_object_get(o, "choices"), 0);
        json_t *t = json_object_get(c0, "text");
        if (!t) t = json_object_get(json_object_get(c0, "message"), "content");
        if (!t) t = json_object_get(o, "content"); /* llama.cpp's /completion */
        if (!t) t = (json_t *)rt_ollama_text(o);   /* an Ollama answer */
        json_array_foreach(json_object_get(o, "content"), i, item) { /* an Anthropic message: its text blocks */
            json_t *bt = json_object_get(item, "text");
            if (json_is_string(bt) && n + json_string_length(bt) < cap) {
                memcpy(out + n, json_string_value(bt), json_string_length(bt));
                n += json_string_length(bt);
            }
        }
        if (json_is_string(t)) {
            memcpy(out, json_string_value(t), json_string_length(t));
            out[json_string_length(t)] = '\0';
        }
        json_decref(o);
        return out;
    }
    const char *p = r->body;
    while ((p = strstr(p, "data: ")) != NULL) {
        if (p != r->body && p[-1] != '\n') {
            p += 6;
            continue;
        }
        p += 6;
        const char *e = strchr(p, '\n');
        if (!e) break;
        if (e - p == 6 && !strncmp(p, "[DONE]", 6)) {
            if (done_count) (*done_count)++;
        } else {
            json_t *o = json_loadb(p, (size_t)(e - p), 0, NULL);
            if (json_object_get(o, "error") && errors) (*errors)++;
            json_t *c0 = json_array_get(json_object_get(o, "choices"), 0);
            json_t *t = json_object_get(c0, "text");
            if (!t) t = json_object_get(json_object_get(c0, "delta"), "content");
            const char *type = json_string_value(json_object_get(o, "type")); /* a Responses stream's events */
            if (type && !strcmp(type, "response.output_text.delta")) t = json_object_get(o, "delta");
            if (type && (!strcmp(type, "response.completed") || !strcmp(type, "response.incomplete")) && done_count)
                (*done_count)++;
            if (type && !strcmp(type, "error") && errors) (*errors)++;
            if (type && !strcmp(type, "content_block_delta")) /* an Anthropic stream's events */
                t = json_object_get(json_object_get(o, "delta"), "text");
            if (type && !strcmp(type, "message_stop") && done_count) (*done_count)++;
            if (!t && json_is_string(json_object_get(o, "content"))) { /* llama.cpp's /completion stream */
                t = json_object_get(o, "content");
                if (json_is_true(json_object_get(o, "stop")) && done_count) (*done_count)++;
            }
            if (json_is_string(t) && n + json_string_length(t) < cap) {
                memcpy(out + n, json_string_value(t), json_string_length(t));
                n += json_string_length(t);
            }
            json_decref(o);
        }
        p = e;
    }
    out[n] = '\0';
    return out;
}

/* Sum of the samples whose line starts with `prefix` (name plus, optionally, labels). -1 if none. */
RT_FN double rt_metric(const char *base, const char *prefix) {
    rresp r = rt_http(base, NULL, "/metrics", NULL, NULL, NULL);
    double sum = -1;
    size_t pl = strlen(prefix);
    for (char *line = r.body; line && *line;) {
        char *nl = strchr(line, '\n');
        if (!strncmp(line, prefix, pl) && (line[pl] == ' ' || line[pl] == '{' || line[pl - 1] == '}' || line[pl - 1] == ',')) {
            char *sp = nl ? nl : line + strlen(line);
            while (sp > line && sp[-1] != ' ') sp--;
            sum = (sum < 0 ? 0 : sum) + atof(sp);
        }
        line = nl ? nl + 1 : NULL;
    }
    rt_free(&r);
    return sum;
}

/* Wait until /ready answers 200 (engines in rotation). */
RT_FN bool rt_wait_ready(const char *base, double timeout_s) {
    double t0 = rt_now();
    while (rt_now() - t0 < timeout_s) {
        rresp r = rt_http(base, NULL, "/ready", NULL, NULL, NULL);
        long st = r.status;
        rt_free(&r);
        if (st == 200) return true;
        rt_sleep_ms(50);
    }
    return false;
}

/* Wait until metric `prefix` equals want. */
RT_FN bool rt_wait_metric(const char *base, const char *prefix, double want, double timeout_s) {
    double t0 = rt_now();
    while (rt_now() - t0 < timeout_s) {
        if (rt_metric(base, prefix) == want) return true;
        rt_sleep_ms(50);
    }
    return false;
}

/* Index of `url` in urls, or -1. */
RT_FN int rt_which(const char *url, const char *const *urls, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(url, urls[i])) return i;
    return -1;
}

#endif

/*
 * cmd_cluster.c — `shardlm cluster up`: a whole cluster on this machine, the
 * embedded default: N engines (`shardlm serve` child processes on free ports)
 * and a router in this process in front of them, with static membership.
 *
 * Children die with this process (PR_SET_PDEATHSIG); SIGTERM/SIGINT drains the
 * router, then stops the engines (SIGTERM, then SIGKILL after 10 s). Every
 * wait is bounded: engine start 120 s, readiness 60 s.
 */
#include "commands.h"
#include "common.h"
#include "opts.h"

#include "core/alloc.h"
#include "router/router.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ENGINES 64

enum { O_ENGINES, O_MODEL, O_HOST, O_PORT, O_THREADS, O_ROUTER_THREADS, O_POLICY, O_KVMEM, O_CTX, O_DEMO, O_SECONDS,
       O_COUNT };

static const opt_def OPTS[O_COUNT] = {
    [O_ENGINES] = {"engines", "n", OPT_INT, "2", 1, MAX_ENGINES, "engines to start"},
    [O_MODEL] = {"model", "m", OPT_STR, NULL, 0, -1, "GGUF model file every engine serves"},
    [O_HOST] = {"host", NULL, OPT_STR, "127.0.0.1", 0, -1, "address the router listens on"},
    [O_PORT] = {"port", NULL, OPT_INT, "0", 0, 65535, "router port (0: any free port)"},
    [O_THREADS] = {"threads", "t", OPT_INT, "1", 1, 1024, "compute threads per engine"},
    [O_ROUTER_THREADS] = {"router-threads", NULL, OPT_INT, "2", 1, 256, "router I/O threads"},
    [O_POLICY] = {"policy", NULL, OPT_STR, "session", 0, -1, "router placement policy"},
    [O_KVMEM] = {"kv-mem", NULL, OPT_STR, "256", 0, -1, "KV cache per engine: MiB, or a share of physical RAM (e.g. 10%)"},
    [O_CTX] = {"ctx-size", "c", OPT_INT, "0", 0, 1 << 24, "context length per sequence (0: the model's)"},
    [O_DEMO] = {"demo", NULL, OPT_BOOL, NULL, 0, -1, "send one streaming request through the router and print it"},
    [O_SECONDS] = {"run-seconds", NULL, OPT_INT, "0", 0, 1 << 30, "stop after this many seconds (0: at SIGINT/SIGTERM)"},
};

typedef struct child {
    pid_t pid;
    int out_fd;
    char url[128];
} child;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Start `shardlm serve` and read its URL from the line it prints. */
static bool start_engine(const char *exe, const opt_val *v, child *c) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) return false;
    char threads[16], kv[24], ctx[24];
    snprintf(threads, sizeof threads, "%lld", (long long)v[O_THREADS].i);
    snprintf(kv, sizeof kv, "%s", v[O_KVMEM].s);
    snprintf(ctx, sizeof ctx, "%lld", (long long)v[O_CTX].i);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(1);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        dup2(fds[1], STDOUT_FILENO);
        char *args[] = {(char *)exe, "serve", "-m", (char *)v[O_MODEL].s, "--host", "127.0.0.1", "--port", "0", "-t",
                        threads, "--kv-mem", kv, "-c", ctx, NULL};
        execv(exe, args);
        _exit(127);
    }
    close(fds[1]);
    c->pid = pid;
    c->out_fd = fds[0];
    char buf[512];
    size_t n = 0;
    double t0 = now_s();
    while (now_s() - t0 < 120) {
        struct pollfd p = {.fd = c->out_fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0) continue;
        ssize_t k = read(c->out_fd, buf + n, sizeof buf - 1 - n);
        if (k <= 0) return false; /* it exited */
        n += (size_t)k;
        buf[n] = '\0';
        const char *u = strstr(buf, "http://");
        if (u && strchr(u, ' ')) {
            size_t l = strcspn(u, " \n");
            snprintf(c->url, sizeof c->url, "%.*s", (int)l, u);
            return true;
        }
        if (n == sizeof buf - 1) return false;
    }
    return false;
}

static void stop_children(child *cs, int n) {
    for (int i = 0; i < n; i++)
        if (cs[i].pid > 0) kill(cs[i].pid, SIGTERM);
    double t0 = now_s();
    for (;;) {
        bool left = false;
        for (int i = 0; i < n; i++) {
            if (cs[i].pid <= 0) continue;
            if (waitpid(cs[i].pid, NULL, WNOHANG) == cs[i].pid) cs[i].pid = 0;
            else left = true;
        }
        if (!left) break;
        if (now_s() - t0 > 10) {
            for (int i = 0; i < n; i++)
                if (cs[i].pid > 0) {
                    kill(cs[i].pid, SIGKILL);
                    waitpid(cs[i].pid, NULL, 0);
                    cs[i].pid = 0;
                }
            break;
        }
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < n; i++)
        if (cs[i].out_fd >= 0) close(cs[i].out_fd);
}

typedef struct demo_buf {
    char line[65536];
    size_t n;
} demo_buf;

/* Print the text of each completion chunk as it streams by. */
static size_t demo_data(char *p, size_t sz, size_t nm, void *ud) {
    demo_buf *d = ud;
    size_t n = sz * nm;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n') {
            if (d->n + 1 < sizeof d->line) d->line[d->n++] = p[i];
            continue;
        }
        d->line[d->n] = '\0';
        const char *t = strstr(d->line, "\"text\":\"");
        if (!strncmp(d->line, "data: {", 7) && t) {
            for (t += 8; *t && *t != '"'; t++) {
                if (*t == '\\' && t[1]) {
                    t++;
                    putchar(*t == 'n' ? '\n' : *t);
                } else {
                    putchar(*t);
                }
            }
            fflush(stdout);
        }
        d->n = 0;
    }
    return n;
}

static void demo(int port) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/completions", port);
    const char *body = "{\"prompt\": \"Once upon a time\", \"max_tokens\": 120, \"temperature\": 0, \"stream\": true}";
    printf("demo: POST %s %s\n\nOnce upon a time", url, body);
    fflush(stdout);
    CURL *h = curl_easy_init();
    if (!h) return;
    demo_buf *d = calloc(1, sizeof *d);
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, demo_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = d ? curl_easy_perform(h) : CURLE_OUT_OF_MEMORY;
    printf("\n\n");
    if (rc != CURLE_OK) printf("demo: %s\n", curl_easy_strerror(rc));
    fflush(stdout);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    free(d);
}

int cmd_cluster(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "up") != 0) {
        if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
            opts_print_help("cluster up", "-m MODEL [--engines N] [--port P] [options]", OPTS, O_COUNT);
            return 0;
        }
        fprintf(stderr, "shardlm cluster: expected 'up' (shardlm cluster up -m MODEL [--engines N])\n");
        return 1;
    }
    opt_val v[O_COUNT];
    const char *pos[1];
    int n_pos;
    int pr = opts_parse("cluster up", "-m MODEL [--engines N] [--port P] [options]", OPTS, O_COUNT, v, argc - 1,
                        argv + 1, pos, 0, &n_pos);
    if (pr) return pr > 0 ? 0 : 1;
    if (!v[O_MODEL].set) {
        fprintf(stderr, "shardlm cluster up: -m MODEL is required\n");
        return 1;
    }
    if (access(v[O_MODEL].s, R_OK) != 0) {
        fprintf(stderr, "shardlm cluster up: cannot read the model '%s': %s\n", v[O_MODEL].s, strerror(errno));
        return 1;
    }
    int64_t kv_mib;
    if (!cli_parse_mem_mib(v[O_KVMEM].s, &kv_mib) || strlen(v[O_KVMEM].s) >= 24) {
        fprintf(stderr, "shardlm cluster up: --kv-mem '%s' is neither MiB (1 to 16777216) nor a share of RAM like 10%%\n",
                v[O_KVMEM].s);
        return 1;
    }
    sl_policy policy;
    if (!sl_policy_parse(v[O_POLICY].s, &policy)) {
        fprintf(stderr, "shardlm cluster up: --policy '%s': expected session, prefix, least-load or round-robin\n",
                v[O_POLICY].s);
        return 1;
    }
    char exe[PATH_MAX];
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (el <= 0) {
        fprintf(stderr, "shardlm cluster up: cannot find this program's path (/proc/self/exe)\n");
        return 1;
    }
    exe[el] = '\0';
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int n = (int)v[O_ENGINES].i, rc = 1;
    child cs[MAX_ENGINES];
    const char *urls[MAX_ENGINES];
    memset(cs, 0, sizeof cs);
    for (int i = 0; i < n; i++) cs[i].out_fd = -1;
    sl_router *r = NULL;
    for (int i = 0; i < n; i++) {
        if (!start_engine(exe, v, &cs[i])) {
            fprintf(stderr, "shardlm cluster up: engine %d did not start (see its messages above)\n", i);
            goto done;
        }
        urls[i] = cs[i].url;
        fprintf(stderr, "shardlm cluster up: engine %d (pid %d) on %s\n", i, (int)cs[i].pid, cs[i].url);
    }
    sl_router_cfg cfg = {
        .host = v[O_HOST].s, .port = (int)v[O_PORT].i, .threads = (int)v[O_ROUTER_THREADS].i, .engines = urls,
        .n_engines = n, .cluster = "default", .policy = policy, .vnodes = 128, .load_factor = 1.25,
        .prefix_bytes = 256, .retries = 2, .connect_timeout_ms = 1000, .upstream_timeout_s = 120,
        .probe_interval_ms = 500, .rise = 2, .fall = 3, .max_body_bytes = 8 << 20, .max_connections = 10000,
    };
    if (sl_router_start(&cfg, &r) != SL_OK) {
        fprintf(stderr, "shardlm cluster up: router: %s\n", sl_last_error());
        goto done;
    }
    double t0 = now_s();
    while (!sl_router_ready(r) && now_s() - t0 < 60) {
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    if (!sl_router_ready(r)) {
        fprintf(stderr, "shardlm cluster up: no engine became ready within 60 s\n");
        goto done;
    }
    printf("shardlm cluster: router on http://%s:%d (%d engines:", v[O_HOST].s, sl_router_port(r), n);
    for (int i = 0; i < n; i++) printf(" %s", cs[i].url);
    printf(")\n  try: curl http://%s:%d/v1/completions -d '{\"prompt\": \"Once upon a time\", \"max_tokens\": 50, "
           "\"stream\": true}'\n  stop: Ctrl-C\n",
           v[O_HOST].s, sl_router_port(r));
    fflush(stdout);
    if (v[O_DEMO].b) demo(sl_router_port(r));

    double start = now_s();
    for (;;) {
        struct timespec ts = {1, 0};
        int sig = sigtimedwait(&sigs, NULL, &ts);
        if (sig > 0) {
            fprintf(stderr, "shardlm cluster: signal %d: stopping\n", sig);
            break;
        }
        if (v[O_SECONDS].i > 0 && now_s() - start >= (double)v[O_SECONDS].i) break;
        for (int i = 0; i < n; i++) { /* report engines that died (the router routes around them) */
            int status;
            if (cs[i].pid > 0 && waitpid(cs[i].pid, &status, WNOHANG) == cs[i].pid) {
                fprintf(stderr, "shardlm cluster: engine %d (%s) exited (status %d)\n", i, cs[i].url, status);
                cs[i].pid = 0;
            }
        }
    }
    sl_router_drain(r);
    t0 = now_s();
    while (sl_router_in_flight(r) > 0 && now_s() - t0 < 30) {
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    rc = 0;
done:
    sl_router_stop(r);
    stop_children(cs, n);
    return rc;
}

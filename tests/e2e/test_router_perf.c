/*
 * test_router_perf.c — what the router costs: latency added (p50/p99) and
 * requests/s sustained, measured against hitting the upstream directly in
 * the same run, non-streaming, to cheap endpoints:
 *   - a stub upstream (this process, one epoll thread, a fixed JSON answer):
 *     the router's own cost with as little as possible around it;
 *   - a real engine's POST /tokenize.
 * The load generator is closed-loop over keep-alive connections, one epoll
 * thread, independent of the router's code. `make test` runs it for 1 s per
 * point and checks only that nothing fails; SHARDLM_ROUTER_BENCH_SECONDS=10
 * gives the figures for docs/PERF.md. SHARDLM_ROUTER_BENCH_THREADS sets the
 * router's I/O threads; SHARDLM_ROUTER_BENCH_PIN=1 (on 6+ CPUs) pins the
 * router to CPUs 0-1, the engine to 2-3 and this process (load and stub) to
 * 4-5, so the router's figures are those of 2 cores of its own.
 */
#include "test_router_util.h"

#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <dirent.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

/* ---- a stub upstream: answers every request with the same small JSON --------------- */

static const char STUB_BODY[] = "{\"tokens\":[1,15043],\"count\":2,\"max_model_len\":512}";

typedef struct stub {
    int lfd, ep, port;
    atomic_bool stop;
    pthread_t th;
} stub;

typedef struct sconn {
    int fd;
    char in[65536];
    size_t n;
} sconn;

static void *stub_main(void *arg) {
    stub *s = arg;
    struct epoll_event evs[64];
    char resp[512];
    int rl = snprintf(resp, sizeof resp,
                      "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                      sizeof STUB_BODY - 1, STUB_BODY);
    while (!atomic_load(&s->stop)) {
        int n = epoll_wait(s->ep, evs, 64, 50);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                int fd;
                while ((fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    sconn *c = calloc(1, sizeof *c);
                    c->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            sconn *c = evs[i].data.ptr;
            ssize_t k = read(c->fd, c->in + c->n, sizeof c->in - c->n);
            if (k <= 0) {
                close(c->fd);
                free(c);
                continue;
            }
            c->n += (size_t)k;
            /* answer every complete request (head + Content-Length body) */
            for (;;) {
                char *e = memmem(c->in, c->n, "\r\n\r\n", 4);
                if (!e) break;
                size_t head = (size_t)(e - c->in) + 4, body = 0;
                char *cl = memmem(c->in, head, "Content-Length:", 15);
                if (!cl) cl = memmem(c->in, head, "content-length:", 15);
                if (cl) body = (size_t)atol(cl + 15);
                if (c->n < head + body) break;
                if (write(c->fd, resp, (size_t)rl) < 0) break;
                memmove(c->in, c->in + head + body, c->n - head - body);
                c->n -= head + body;
            }
        }
    }
    return NULL;
}

static bool stub_start(stub *s) {
    memset(s, 0, sizeof *s);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(s->lfd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s->lfd, 512) < 0) return false;
    getsockname(s->lfd, (struct sockaddr *)&sa, &sl);
    s->port = ntohs(sa.sin_port);
    s->ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(s->ep, EPOLL_CTL_ADD, s->lfd, &ev);
    return pthread_create(&s->th, NULL, stub_main, s) == 0;
}

static void stub_stop(stub *s) {
    atomic_store(&s->stop, true);
    pthread_join(s->th, NULL);
    close(s->lfd);
    close(s->ep); /* connections still open are reclaimed at exit */
}

/* ---- the load generator ---------------------------------------------------------------- */

typedef struct lconn {
    int fd;
    char in[16384];
    size_t n;
    bool busy;
    double t_sent; /* when the request was due (paced) or sent (closed loop) */
} lconn;

typedef struct lresult {
    double rps, p50_us, p99_us;
    long ok, errors;
} lresult;

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Closed loop (rate 0): every connection sends its next request as soon as
 * the answer arrives. Paced (rate > 0 req/s): a 100 us timer releases the
 * requests due, round-robin over idle connections (a request that finds every
 * connection busy is counted as not sent: the server fell behind). Latency is
 * from write to the end of the answer. */
static lresult load(int port, const char *path, const char *body, int conns, double rate, double seconds) {
    lresult res = {0};
    char req[1024];
    int rl = snprintf(req, sizeof req,
                      "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                      path, strlen(body), body);
    size_t cap = 4u << 20, nlat = 0;
    double *lat = malloc(sizeof(double) * cap);
    int ep = epoll_create1(0);
    lconn *cs = calloc((size_t)conns, sizeof *cs);
    for (int i = 0; i < conns; i++) {
        cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(cs[i].fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            res.errors++;
            continue;
        }
        int one = 1;
        setsockopt(cs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
        if (rate <= 0) {
            cs[i].t_sent = rt_now();
            cs[i].busy = true;
            if (write(cs[i].fd, req, (size_t)rl) != rl) res.errors++;
        }
    }
    int tfd = -1;
    if (rate > 0) {
        tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
        struct itimerspec its = {.it_interval = {0, 100000}, .it_value = {0, 100000}};
        timerfd_settime(tfd, 0, &its, NULL);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    }
    double t0 = rt_now(), warm = t0 + (seconds > 2 ? 0.5 : 0.2), end = warm + seconds;
    double due = 0; /* requests due and not yet sent (paced) */
    double last_tick = t0;
    long backlog_drops = 0;
    int next = 0;
    struct epoll_event evs[256];
    while (rt_now() < end) {
        int n = epoll_wait(ep, evs, 256, 100);
        double now = rt_now();
        for (int i = 0; i < n; i++) {
            lconn *c = evs[i].data.ptr;
            if (!c) { /* tick: release what fell due since the last one */
                uint64_t x;
                if (read(tfd, &x, sizeof x) < 0) { /* spurious */
                }
                due += (now - last_tick) * rate;
                last_tick = now;
                while (due >= 1) {
                    int k = 0;
                    while (k < conns && cs[next].busy) {
                        next = (next + 1) % conns;
                        k++;
                    }
                    if (k == conns) { /* every connection is waiting: the server is behind */
                        backlog_drops += (long)due;
                        due = 0;
                        break;
                    }
                    cs[next].busy = true;
                    cs[next].t_sent = now;
                    if (write(cs[next].fd, req, (size_t)rl) != rl) res.errors++;
                    next = (next + 1) % conns;
                    due -= 1;
                }
                continue;
            }
            ssize_t k = read(c->fd, c->in + c->n, sizeof c->in - c->n - 1);
            if (k <= 0) {
                res.errors++;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                continue;
            }
            c->n += (size_t)k;
            c->in[c->n] = '\0';
            char *e = strstr(c->in, "\r\n\r\n");
            if (!e) continue;
            size_t head = (size_t)(e - c->in) + 4;
            char *cl = strcasestr(c->in, "content-length:");
            size_t blen = cl && cl < e ? (size_t)atol(cl + 15) : 0;
            if (c->n < head + blen) continue;
            bool ok = !strncmp(c->in, "HTTP/1.1 200", 12);
            if (now >= warm) {
                if (ok) res.ok++;
                else res.errors++;
                if (nlat < cap) lat[nlat++] = (now - c->t_sent) * 1e6;
            }
            c->n = 0;
            c->busy = false;
            if (rate <= 0) {
                c->busy = true;
                c->t_sent = rt_now();
                if (write(c->fd, req, (size_t)rl) != rl) res.errors++;
            }
        }
    }
    for (int i = 0; i < conns; i++) close(cs[i].fd);
    if (tfd >= 0) close(tfd);
    close(ep);
    qsort(lat, nlat, sizeof(double), cmp_d);
    if (nlat) {
        res.p50_us = lat[nlat / 2];
        res.p99_us = lat[(size_t)((double)nlat * 0.99)];
    }
    res.rps = (double)res.ok / seconds;
    if (backlog_drops) printf("  (paced load: %ld requests could not be sent: every connection was busy)\n", backlog_drops);
    free(lat);
    free(cs);
    return res;
}

static double bench_seconds(void) {
    const char *s = getenv("SHARDLM_ROUTER_BENCH_SECONDS");
    return s && atof(s) > 0 ? atof(s) : 1.0;
}

typedef struct point {
    int conns;
    double rate; /* 0 = closed loop */
    const char *what;
} point;

/* unloaded latency; a paced 10,000 req/s; saturation */
static const point POINTS[3] = {{1, 0, "1 conn, closed loop"}, {64, 10000, "10k req/s paced"}, {32, 0, "32 conns, closed loop"}};

static void report(const char *what, const point *pt, lresult d, lresult r) {
    printf("  %-16s %-22s direct: %7.0f req/s p50 %6.1f us p99 %7.1f us | router: %7.0f req/s p50 %6.1f us p99 %7.1f us"
           " | added p50 %+.1f us p99 %+.1f us\n",
           what, pt->what, d.rps, d.p50_us, d.p99_us, r.rps, r.p50_us, r.p99_us, r.p50_us - d.p50_us, r.p99_us - d.p99_us);
    fflush(stdout);
}

static bool pinning(void) {
    const char *p = getenv("SHARDLM_ROUTER_BENCH_PIN");
    return p && *p == '1' && sysconf(_SC_NPROCESSORS_ONLN) >= 6;
}

static void pin(pid_t pid, int first_cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(first_cpu, &set);
    CPU_SET(first_cpu + 1, &set);
    if (sched_setaffinity(pid, sizeof set, &set) != 0) printf("  (cannot pin pid %d: %s)\n", (int)pid, strerror(errno));
}

/* Pin the router (all its threads: they inherit from the main one only at
 * creation, so pin every task of the process) to CPUs first..first+1. */
static void pin_process(pid_t pid, int first_cpu) {
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') pin((pid_t)atoi(de->d_name), first_cpu);
    closedir(d);
}

static const char *router_threads(void) {
    const char *t = getenv("SHARDLM_ROUTER_BENCH_THREADS");
    return t && *t ? t : "1";
}

TEST(router_overhead_stub_upstream) {
    stub s;
    CHECK(stub_start(&s));
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", s.port);
    sl_test_proc r;
    char *args[] = {"route", "--port", "0", "--engine", url, "--threads", (char *)router_threads(), "--policy",
                    "round-robin", NULL};
    CHECK(rt_start(&r, args));
    CHECK(rt_wait_ready(r.url, 10));
    if (pinning()) {
        pin_process(r.pid, 0);
        pin_process(getpid(), 4); /* this process: the load generator and the stub */
    }
    double secs = bench_seconds();
    for (int i = 0; i < 3; i++) {
        lresult d = load(s.port, "/tokenize", "{\"prompt\":\"Hello\"}", POINTS[i].conns, POINTS[i].rate, secs);
        lresult v = load(r.port, "/tokenize", "{\"prompt\":\"Hello\"}", POINTS[i].conns, POINTS[i].rate, secs);
        report("stub /tokenize", &POINTS[i], d, v);
        CHECK_EQ_INT(d.errors, 0);
        CHECK_EQ_INT(v.errors, 0);
        CHECK(v.ok > 0);
    }
    sl_test_proc_stop(&r, SIGTERM, 10);
    stub_stop(&s);
}

TEST(router_overhead_engine_tokenize) {
    sl_test_proc e, r;
    CHECK(rt_start_engine(&e, NULL));
    char *args[] = {"route", "--port", "0", "--engine", e.url, "--threads", (char *)router_threads(), NULL};
    CHECK(rt_start(&r, args));
    CHECK(rt_wait_ready(r.url, 10));
    if (pinning()) {
        pin_process(r.pid, 0);
        pin_process(e.pid, 2);
        pin_process(getpid(), 4);
    }
    double secs = bench_seconds();
    for (int i = 0; i < 3; i++) {
        lresult d = load(e.port, "/tokenize", "{\"prompt\":\"Hello\"}", POINTS[i].conns, POINTS[i].rate, secs);
        lresult v = load(r.port, "/tokenize", "{\"prompt\":\"Hello\"}", POINTS[i].conns, POINTS[i].rate, secs);
        report("engine /tokenize", &POINTS[i], d, v);

        CHECK_EQ_INT(d.errors, 0);
        CHECK_EQ_INT(v.errors, 0);
        CHECK(v.ok > 0);
    }
    sl_test_proc_stop(&r, SIGTERM, 10);
    sl_test_proc_stop(&e, SIGTERM, 10);
}

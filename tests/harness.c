/*
 * harness.c — registry and runner for tests declared with TEST().
 */
#include "harness.h"

#include "shardlm.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MAX_TESTS 512

static struct {
    const char *name;
    sl_test_fn fn;
} tests[MAX_TESTS];
static int n_tests;
static bool cur_failed;

void sl_test_register(const char *name, sl_test_fn fn) {
    if (n_tests < MAX_TESTS) {
        tests[n_tests].name = name;
        tests[n_tests].fn = fn;
        n_tests++;
    }
}

bool sl_test_failed(void) { return cur_failed; }

void sl_test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "    FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    cur_failed = true;
}

const char *sl_test_shared(const char *rel) {
    static char buf[8][1024];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 1024, "../shared/%s", rel);
    return access(b, R_OK) == 0 ? b : NULL;
}

double sl_test_vmrss(int pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    double vmrss = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) vmrss = atof(line + 6) * 1024;
    if (f) fclose(f);
    return vmrss;
}

char *sl_test_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return NULL; }
    long n = ftell(f);
    if (n < 0) { fclose(f); return NULL; }
    rewind(f);
    char *b = malloc((size_t)n + 1);
    if (!b) { fclose(f); return NULL; }
    if (fread(b, 1, (size_t)n, f) != (size_t)n) { free(b); fclose(f); return NULL; }
    fclose(f);
    b[n] = '\0';
    if (len) *len = (size_t)n;
    return b;
}

int sl_test_each_file(const char *dir, long (*fn)(const uint8_t *data, size_t len), long *sum) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len;
        char *data = sl_test_read_file(path, &len);
        if (!data) continue;
        *sum += fn((const uint8_t *)data, len);
        free(data);
        n++;
    }
    closedir(d);
    return n;
}

const char *sl_test_bin(void) {
    static char buf[512];
    const char *b = getenv("BUILD");
    snprintf(buf, sizeof buf, "%s/shardlm", b && *b ? b : "build");
    return buf;
}

static void append(char **buf, size_t *len, size_t *cap, const char *p, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap * 2 : 4096;
        while (c < *len + n + 1) c *= 2;
        char *nb = realloc(*buf, c);
        if (!nb) return;
        *buf = nb;
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
}

int sl_test_run(char *const argv[], char **out, char **err, int timeout_s) {
    int po[2], pe[2];
    if (pipe(po) != 0) return -1;
    if (pipe(pe) != 0) { close(po[0]); close(po[1]); return -1; }
    fflush(stdout);
    fflush(stderr);
    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(po[0]);
        close(po[1]);
        return -1;
    }
    if (pid == 0) {
        sl_test_child_setup(parent);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]); close(po[1]); close(pe[0]); close(pe[1]);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        execv(argv[0], argv);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    char *bo = NULL, *be = NULL;
    size_t lo = 0, co = 0, le = 0, ce = 0;
    append(&bo, &lo, &co, "", 0);
    append(&be, &le, &ce, "", 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int open_fds = 2, timed_out = 0;
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    while (open_fds > 0) {
        int r = poll(fds, 2, 200);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (t1.tv_sec - t0.tv_sec > timeout_s) { timed_out = 1; kill(pid, SIGKILL); break; }
        if (r <= 0) continue;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char buf[65536];
            ssize_t n = read(fds[i].fd, buf, sizeof buf);
            if (n <= 0) { close(fds[i].fd); fds[i].fd = -1; open_fds--; continue; }
            if (i == 0) append(&bo, &lo, &co, buf, (size_t)n);
            else append(&be, &le, &ce, buf, (size_t)n);
        }
    }
    for (int i = 0; i < 2; i++) if (fds[i].fd >= 0) close(fds[i].fd);
    int status = 0;
    waitpid(pid, &status, 0);
    if (out) *out = bo; else free(bo);
    if (err) *err = be; else free(be);
    if (timed_out) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool sl_test_temp_file(char *tmpl, const char *text) {
    int fd = mkstemp(tmpl);
    if (fd < 0) return false;
    const size_t n = text ? strlen(text) : 0;
    bool ok = n == 0 || write(fd, text, n) == (ssize_t)n;
    ok = close(fd) == 0 && ok;
    if (!ok) unlink(tmpl);
    return ok;
}

bool sl_test_tiny_model(char *tmpl, const char *vocab_from) {
    if (!sl_test_temp_file(tmpl, NULL)) return false;
    char *argv[] = {(char *)sl_test_bin(), "mkmodel", "-o", tmpl, "--dim", "64", "--layers", "2", "--heads", "4", "--ffn", "128",
                    "--ctx", "512", "--type", "F32", vocab_from ? "--vocab-from" : "--vocab", vocab_from ? (char *)vocab_from : "600",
                    NULL};
    if (sl_test_run(argv, NULL, NULL, 60) == 0) return true;
    unlink(tmpl);
    return false;
}

/* ---- processes a test starts ---- */

#define MAX_PROCS 64
static pid_t procs[MAX_PROCS];

/* Whether pid is still our child, not yet reaped (asked without reaping it). */
static bool is_child(pid_t pid) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    return pid > 0 && waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0;
}

/* At exit: kill what is still running — only PIDs that are still our
 * unreaped children, never a recycled PID. */
static void kill_procs(void) {
    for (int i = 0; i < MAX_PROCS; i++) {
        if (is_child(procs[i])) {
            kill(procs[i], SIGKILL);
            waitpid(procs[i], NULL, 0);
        }
        procs[i] = 0;
    }
}

void sl_test_track(pid_t pid) {
    static bool registered;
    if (!registered) {
        atexit(kill_procs);
        registered = true;
    }
    for (int i = 0; i < MAX_PROCS; i++)
        if (!is_child(procs[i])) {
            procs[i] = pid;
            return;
        }
}

void sl_test_child_setup(pid_t parent) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1); /* the parent died before prctl */
}

int sl_test_proc_start(sl_test_proc *p, char *const args[], int timeout_s) {
    return sl_test_proc_start_log(p, args, timeout_s, NULL);
}

int sl_test_proc_start_log(sl_test_proc *p, char *const args[], int timeout_s, const char *err_path) {
    memset(p, 0, sizeof *p);
    p->pid = -1;
    int po[2];
    if (pipe(po) != 0) return -1;
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)sl_test_bin();
    for (int i = 0; args[i] && n < 63; i++) argv[n++] = args[i];
    argv[n] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(po[1], 1);
        close(po[0]);
        close(po[1]);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        if (err_path) {
            int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (e >= 0) dup2(e, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    close(po[1]);
    p->pid = pid;
    p->out_fd = po[0];
    sl_test_track(pid);
    char buf[4096];
    size_t len = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd f = {p->out_fd, POLLIN, 0};
        int r = poll(&f, 1, 100);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (t1.tv_sec - t0.tv_sec > timeout_s) break;
        if (r <= 0) continue;
        ssize_t k = read(p->out_fd, buf + len, sizeof buf - 1 - len);
        if (k <= 0) break;
        len += (size_t)k;
        buf[len] = '\0';
        const char *hs = strstr(buf, "https://"), *u = strstr(buf, "http://");
        if (hs && u && u < hs) hs = NULL; /* (the first URL of the line is the server's: "on http://... (etcd https://...)") */
        const char *host = hs ? hs + 8 : u ? u + 7 : NULL;
        const char *host_end = host && host[0] == '[' ? strchr(host, ']') : host; /* (an IPv6 address in brackets) */
        const char *colon = host_end ? strchr(host_end, ':') : NULL;
        if (colon && strchr(colon, '\n')) {
            p->port = atoi(colon + 1);
            snprintf(p->url, sizeof p->url, "%s://127.0.0.1:%d", hs ? "https" : "http", p->port);
            return p->port > 0 ? 0 : -1;
        }
        if (len >= sizeof buf - 1) break;
    }
    sl_test_proc_stop(p, SIGKILL, 5);
    return -1;
}

int sl_test_proc_stop(sl_test_proc *p, int sig, int timeout_s) {
    if (p->pid <= 0) return -1;
    kill(p->pid, sig);
    int status = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid) break;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (t1.tv_sec - t0.tv_sec >= timeout_s) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            status = -1;
            break;
        }
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    if (p->out_fd > 0) close(p->out_fd);
    p->out_fd = -1;
    p->pid = -1;
    if (status == -1) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    /* Servers started by tests write no per-request lines (thousands in a run) unless the caller
     * asks for them; a test of those lines turns them on with the option. */
    setenv("SHARDLM_NO_ACCESS_LOG", "1", 0);
    setenv("SHARDLM_STATS_INTERVAL", "0", 0);
    int passed = 0, failed = 0;
    for (int i = 0; i < n_tests; i++) {
        if (filter && !strstr(tests[i].name, filter)) continue;
        cur_failed = false;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        tests[i].fn();
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        printf("  %s %s (%.0f ms)\n", cur_failed ? "FAIL" : "ok  ", tests[i].name, ms);
        fflush(stdout);
        if (cur_failed) failed++; else passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

uint32_t sl_test_xorshift(uint64_t *state, uint32_t n) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return (uint32_t)(*state % n);
}

int sl_test_utf8_split(const char *s, const char **ch, int *len) {
    int n = 0;
    for (const char *p = s; *p;) {
        const int l = (uint8_t)*p >= 0xF0 ? 4 : (uint8_t)*p >= 0xE0 ? 3 : (uint8_t)*p >= 0xC0 ? 2 : 1;
        ch[n] = p;
        len[n++] = l;
        p += l;
    }
    return n;
}

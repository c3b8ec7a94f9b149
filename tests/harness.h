/*
 * harness.h — the test harness: one function per case, registered with
 * TEST(name); assertions print both values and file:line, mark the case
 * failed and return from it. main() (harness.c) runs every case, or those
 * whose names contain argv[1], and ends with "N passed, N failed".
 */
#ifndef SL_TEST_HARNESS_H
#define SL_TEST_HARNESS_H

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

typedef void (*sl_test_fn)(void);
void sl_test_register(const char *name, sl_test_fn fn);
void sl_test_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool sl_test_failed(void);

#define TEST(name)                                                                   \
    static void test_##name(void);                                                   \
    __attribute__((constructor)) static void reg_##name(void) { sl_test_register(#name, test_##name); } \
    static void test_##name(void)

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) { sl_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); return; } \
    } while (0)

#define CHECK_MSG(cond, ...)                                                          \
    do {                                                                              \
        if (!(cond)) { sl_test_fail(__FILE__, __LINE__, __VA_ARGS__); return; }       \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                            \
    do {                                                                              \
        long long va_ = (long long)(a), vb_ = (long long)(b);                         \
        if (va_ != vb_) {                                                             \
            sl_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, va_, vb_); \
            return;                                                                   \
        }                                                                             \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                         \
    do {                                                                              \
        double va_ = (double)(a), vb_ = (double)(b);                                  \
        if (!(fabs(va_ - vb_) <= (tol))) {                                            \
            sl_test_fail(__FILE__, __LINE__, "%s ~= %s: %.9g vs %.9g (diff %.3g > %.3g)", #a, #b, va_, vb_, \
                         fabs(va_ - vb_), (double)(tol));                             \
            return;                                                                   \
        }                                                                             \
    } while (0)

#define CHECK_STR(a, b)                                                               \
    do {                                                                              \
        const char *sa_ = (a), *sb_ = (b);                                            \
        if (strcmp(sa_, sb_) != 0) {                                                  \
            sl_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b, sa_, sb_); \
            return;                                                                   \
        }                                                                             \
    } while (0)

/* Status check: prints sl_last_error() on failure. */
#define CHECK_OK(expr)                                                                \
    do {                                                                              \
        int st_ = (int)(expr);                                                        \
        if (st_ != 0) {                                                               \
            sl_test_fail(__FILE__, __LINE__, "%s failed: status %d: %s", #expr, st_, sl_last_error()); \
            return;                                                                   \
        }                                                                             \
    } while (0)

/* xorshift64: reproducible test data from *state, a value in [0, n). */
uint32_t sl_test_xorshift(uint64_t *state, uint32_t n);
/* The characters of a UTF-8 string: their starts in ch[], lengths in len[]; returns how many. */
int sl_test_utf8_split(const char *s, const char **ch, int *len);

/* Path of a file in ../shared, or NULL (and a skip note) when it is absent. */
const char *sl_test_shared(const char *rel);
/* Read a whole file (NUL-terminated); caller frees. NULL on error. */
char *sl_test_read_file(const char *path, size_t *len);
/* The resident memory of process pid in bytes as the kernel counts it (VmRSS), or -1. */
double sl_test_vmrss(int pid);
/* Call fn on the contents of every file in dir (dot files skipped; a fuzz
 * corpus replayed), adding its results into *sum. Returns how many files,
 * or -1 when dir cannot be opened. */
int sl_test_each_file(const char *dir, long (*fn)(const uint8_t *data, size_t len), long *sum);

/* Run a program (argv[0] is a path; no shell), capture stdout and stderr
 * (NUL-terminated, caller frees), wait at most timeout_s seconds (then kill).
 * Returns the exit status, or -1 when it could not run / timed out. */
int sl_test_run(char *const argv[], char **out, char **err, int timeout_s);
/* Path of the shardlm binary under test ($BUILD/shardlm, default build/). */
const char *sl_test_bin(void);

/* A shardlm process started in the background (e.g. `serve --port 0`). */
typedef struct sl_test_proc {
    int pid;
    int out_fd;      /* its stdout (stderr goes to ours) */
    int port;        /* parsed from "http://HOST:PORT" in its first lines */
    char url[64];    /* "http://127.0.0.1:PORT" */
} sl_test_proc;

/* Start `$BUILD/shardlm args...` (args NULL-terminated, without the binary)
 * and wait up to timeout_s for a line with "http://...:PORT". Returns 0 on
 * success; on failure the process is killed. The process dies with the test
 * binary (PR_SET_PDEATHSIG) and is killed at exit if still running, so a
 * test binary stopped by a timeout or a failed CHECK leaves nothing behind. */
int sl_test_proc_start(sl_test_proc *p, char *const args[], int timeout_s);
/* The same with its stderr written to err_path (NULL: ours). */
int sl_test_proc_start_log(sl_test_proc *p, char *const args[], int timeout_s, const char *err_path);
/* For other processes a test forks: call sl_test_child_setup(parent PID) first
 * thing in the child (it dies with the test binary), sl_test_track(pid) in the
 * parent (killed at exit if still running). */
void sl_test_child_setup(pid_t parent);
void sl_test_track(pid_t pid);
/* Create a temporary file from tmpl ("/tmp/name-XXXXXX", rewritten in place
 * with the name made) holding text (NULL: empty). False when it could not. */
bool sl_test_temp_file(char *tmpl, const char *text);
/* A tiny random model (`shardlm mkmodel`: 64 wide, 2 layers, F32, context 512) in a temporary file from tmpl
 * (as sl_test_temp_file), with the tokenizer of the GGUF vocab_from (NULL: a generated vocabulary of 600) —
 * a draft model that guesses badly. False when it could not be made. */
bool sl_test_tiny_model(char *tmpl, const char *vocab_from);
/* Send `sig` (e.g. SIGTERM), wait up to timeout_s (then SIGKILL); returns the
 * exit status, or -1 when it was killed. */
int sl_test_proc_stop(sl_test_proc *p, int sig, int timeout_s);

#endif

/*
 * fuzz_template.c — libFuzzer target for the template engine (`make fuzz`).
 *
 * Input: template source, optionally followed by a line "----" and a JSON
 * object of variables; without one the variables are a small chat
 * (messages, add_generation_prompt, bos/eos, tools = null). The template is
 * compiled and rendered under tight limits (steps, depth, output, memory);
 * every outcome must be a clean success or a clean error. Checked
 * invariants: a success yields valid UTF-8 within max_output, NUL-terminated
 * at out_len; an error leaves no output and a non-empty message naming the
 * template (with line and column wherever a node is at fault). Memory
 * errors and leaks are ASan's; endless loops and huge strings must end at
 * the limits (libFuzzer's -timeout and -rss_limit_mb catch those that
 * would not).
 *
 * tests/unit/test_template.c includes this file (FUZZ_TEMPLATE_NO_MAIN) and
 * calls fuzz_template_one() to replay tests/fuzz/corpus/template.
 */
#include "template/template.h"
#include "template/tpl.h"

#include "core/alloc.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char FUZZ_DEFAULT_VARS[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": "
    "\"Hi \\u00e9\\u4f60 \\ud83d\\ude80\"}, {\"role\": \"assistant\", \"content\": \"Hello!\", \"tool_calls\": "
    "[{\"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": [true, null, 2.5]}}}]}], "
    "\"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"tools\": null}";

static void fuzz_check(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_template: invariant violated: %s\n", what);
        abort();
    }
}

/* Returns 0 when the input rendered, 1 when it failed cleanly. */
static int fuzz_template_one(const uint8_t *data, size_t len) {
    const char *src = (const char *)data;
    size_t src_len = len;
    json_t *vars = NULL;
    for (size_t i = 0; i + 6 <= len; i++) {
        if (memcmp(data + i, "\n----\n", 6) == 0) {
            src_len = i;
            vars = json_loadb((const char *)data + i + 6, len - i - 6, 0, NULL);
            break;
        }
    }
    if (!vars) vars = json_loads(FUZZ_DEFAULT_VARS, 0, NULL);
    if (!json_is_object(vars)) {
        json_decref(vars);
        vars = json_loads(FUZZ_DEFAULT_VARS, 0, NULL);
    }
    sl_template_limits lim;
    sl_template_limits_default(&lim);
    lim.max_steps = 200000;
    lim.max_depth = 200;
    lim.max_output = 1 << 20;
    lim.max_memory = 32u << 20;
    lim.fixed_clock = true;
    lim.now = 1741964966;

    sl_template *t = NULL;
    char *out = NULL;
    size_t out_len = 0;
    int rc = 1;
    sl_status st = sl_template_compile(src, src_len, &t);
    if (st == SL_OK) {
        fuzz_check(t != NULL, "compile succeeded without a template");
        st = sl_template_render(t, vars, &lim, &out, &out_len);
        if (st == SL_OK) {
            fuzz_check(out != NULL, "render succeeded without output");
            fuzz_check(out_len <= lim.max_output, "output beyond max_output");
            fuzz_check(out[out_len] == '\0', "output not NUL-terminated");
            fuzz_check(utf8_valid(out, out_len, NULL), "output is not valid UTF-8");
            rc = 0;
        }
    } else {
        fuzz_check(t == NULL, "failed compile returned a template");
    }
    if (st != SL_OK) {
        const char *e = sl_last_error();
        fuzz_check(out == NULL, "failed render returned output");
        fuzz_check(e[0] != '\0', "error without a message");
        fuzz_check(strstr(e, "template") != NULL, "error message does not name the template");
    }
    sl_free(out);
    sl_template_destroy(t);
    json_decref(vars);
    return rc;
}

#ifndef FUZZ_TEMPLATE_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_template_one(data, size);
    return 0;
}
#endif

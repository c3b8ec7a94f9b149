/*
 * common.c — helpers shared by the model-running commands.
 */
#include "common.h"

#include "core/alloc.h"
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

char *cli_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b) {
        size_t r = fread(b + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
        if (cap - n - 1 == 0) {
            char *nb = realloc(b, cap * 2);
            if (!nb) { free(b); b = NULL; break; }
            b = nb;
            cap *= 2;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (!b || err) { free(b); return NULL; }
    b[n] = '\0';
    if (len) *len = n;
    return b;
}

sl_model *cli_load_model(const char *cmd, const char *path) {
    if (!path) {
        fprintf(stderr, "shardlm %s: no model given (-m FILE)\n", cmd);
        return NULL;
    }
    sl_model *m = NULL;
    if (sl_model_load(path, &m) != SL_OK) {
        fprintf(stderr, "shardlm %s: %s\n", cmd, sl_last_error());
        return NULL;
    }
    return m;
}

int32_t *cli_tokenize_prompt(const char *cmd, const sl_model *m, const char *text, size_t len, size_t *n) {
    const sl_tokenizer *t = sl_model_tokenizer(m);
    int32_t *ids = NULL;
    if (sl_tokenize(t, text, len, sl_tokenizer_add_bos(t), false, &ids, n) != SL_OK) {
        fprintf(stderr, "shardlm %s: cannot tokenize the prompt: %s\n", cmd, sl_last_error());
        return NULL;
    }
    return ids;
}

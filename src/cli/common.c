/*
 * common.c — helpers shared by the model-running commands.
 */
#include "common.h"

#include "core/alloc.h"
#include "model/model.h"
#include "router/etcd.h"
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

bool cli_parse_mem_mib(const char *s, int64_t *mib) {
    if (!s || !*s) return false;
    char *end;
    errno = 0;
    if (s[strlen(s) - 1] == '%') {
        const double pct = strtod(s, &end);
        if (errno || end != s + strlen(s) - 1 || !(pct > 0.0 && pct <= 100.0)) return false;
        const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        if (pages <= 0 || page <= 0) return false;
        const double m = (double)pages * (double)page * pct / 100.0 / (1024.0 * 1024.0);
        *mib = m < 1.0 ? 1 : (int64_t)m;
        return true;
    }
    const long long v = strtoll(s, &end, 10);
    if (errno || *end || v < 1 || v > (1LL << 24)) return false;
    *mib = v;
    return true;
}

bool cli_etcd_tls(const char *cmd, const char *ca, const char *cert, const char *key) {
    if (!cert != !key) {
        fprintf(stderr, "shardlm %s: --etcd-cert and --etcd-key go together\n", cmd);
        return false;
    }
    sl_etcd_tls(ca, cert, key);
    return true;
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
    if (m->n_widened > 0)
        fprintf(stderr, "shardlm %s: %d matrices of types without kernels of their own (Q5_0, IQ4_NL, Q3_K, Q4_1, Q5_1) "
                "are held as Q8_0 / Q6_K / F32, the same values: %.1f MiB\n", cmd, (int)m->n_widened,
                (double)m->widened_bytes / 1048576.0);
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

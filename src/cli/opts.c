/*
 * opts.c — table-driven flag parsing (see opts.h).
 */
#include "opts.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int set_value(const char *cmd, const opt_def *d, opt_val *v, const char *text, const char *src) {
    char *end;
    switch (OPT_KIND(d)) {
    case OPT_BOOL:
        if (!text || !strcmp(text, "1") || !strcmp(text, "true") || !strcmp(text, "on")) v->b = true;
        else if (!strcmp(text, "0") || !strcmp(text, "false") || !strcmp(text, "off")) v->b = false;
        else goto bad;
        break;
    case OPT_INT: {
        errno = 0;
        long long x = strtoll(text, &end, 0);
        if (errno || end == text || *end) goto bad;
        if (d->min <= d->max && ((double)x < d->min || (double)x > d->max)) goto range;
        v->i = x;
        v->f = (double)x;
        break;
    }
    case OPT_FLOAT: {
        errno = 0;
        double x = strtod(text, &end);
        if (errno || end == text || *end || !isfinite(x)) goto bad;
        if (d->min <= d->max && (x < d->min || x > d->max)) goto range;
        v->f = x;
        break;
    }
    case OPT_STR: v->s = text; break;
    case OPT_CMD_ENV: goto bad; /* a flag, never a kind */
    }
    v->set = true;
    return 0;
bad:
    fprintf(stderr, "shardlm %s: %s --%s: invalid value '%s'\n", cmd, src, d->name, text ? text : "");
    return -1;
range:
    fprintf(stderr, "shardlm %s: %s --%s: value %s out of range [%g, %g]\n", cmd, src, d->name, text, d->min, d->max);
    return -1;
}

/* SHARDLM_[CMD_]NAME: upper-cased, dashes and spaces as underscores. */
static void env_name(const char *cmd, const char *name, char *out, size_t cap) {
    size_t k = (size_t)snprintf(out, cap, "SHARDLM_");
    const char *parts[2] = {cmd, name};
    for (int j = 0; j < 2; j++) {
        if (!parts[j]) continue;
        for (const char *p = parts[j]; *p && k + 1 < cap; p++)
            out[k++] = *p == '-' || *p == ' ' ? '_' : (char)toupper((unsigned char)*p);
        if (j == 0 && k + 1 < cap) out[k++] = '_';
    }
    out[k] = '\0';
}

void opts_print_help(const char *cmd, const char *usage, const opt_def *defs, int n_defs) {
    printf("usage: shardlm %s %s\n\noptions:\n", cmd, usage);
    for (int i = 0; i < n_defs; i++) {
        const opt_def *d = &defs[i];
        char flag[64];
        if (d->alias) snprintf(flag, sizeof flag, "-%s, --%s", d->alias, d->name);
        else snprintf(flag, sizeof flag, "    --%s", d->name);
        const opt_type t = OPT_KIND(d);
        const char *arg = t == OPT_BOOL ? "" : t == OPT_STR ? " S" : t == OPT_INT ? " N" : " F";
        char left[80];
        snprintf(left, sizeof left, "%s%s", flag, arg);
        printf("  %-26s %s", left, d->help);
        if (d->def) printf(" (default %s)", d->def);
        putchar('\n');
    }
    printf("  %-26s %s\n", "-h, --help", "show this help");
    char pre[64];
    env_name(cmd, NULL, pre, sizeof pre);
    printf("\nEvery option can also be set in the environment as %s<NAME> (this command) or SHARDLM_<NAME>\n"
           "(every command that has it; not for options marked * below).\n", pre);
    bool any = false;
    for (int i = 0; i < n_defs; i++) any |= (defs[i].type & OPT_CMD_ENV) != 0;
    if (any) {
        printf("  *");
        for (int i = 0; i < n_defs; i++)
            if (defs[i].type & OPT_CMD_ENV) printf(" --%s", defs[i].name);
        putchar('\n');
    }
}


int opts_parse(const char *cmd, const char *usage, const opt_def *defs, int n_defs, opt_val *vals, int argc,
               char **argv, const char **pos, int max_pos, int *n_pos) {
    memset(vals, 0, sizeof(opt_val) * (size_t)n_defs);
    *n_pos = 0;
    for (int i = 0; i < n_defs; i++) {
        char env[128];
        env_name(cmd, defs[i].name, env, sizeof env);
        const char *e = getenv(env);
        if (!e && !(defs[i].type & OPT_CMD_ENV)) {
            env_name(NULL, defs[i].name, env, sizeof env);
            e = getenv(env);
        }
        if (e) {
            if (set_value(cmd, &defs[i], &vals[i], e, env) < 0) return -1;
        } else if (defs[i].def) {
            if (set_value(cmd, &defs[i], &vals[i], defs[i].def, "default") < 0) return -1;
        }
    }
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            opts_print_help(cmd, usage, defs, n_defs);
            return 1;
        }
        if (arg[0] != '-' || arg[1] == '\0') {
            if (*n_pos >= max_pos) {
                fprintf(stderr, "shardlm %s: unexpected argument '%s'\n", cmd, arg);
                return -1;
            }
            pos[(*n_pos)++] = arg;
            continue;
        }
        const char *name = arg[1] == '-' ? arg + 2 : arg + 1;
        bool is_long = arg[1] == '-';
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        int k = -1;
        for (int i = 0; i < n_defs; i++) {
            const char *cand = is_long ? defs[i].name : defs[i].alias;
            if (cand && strlen(cand) == nlen && !strncmp(cand, name, nlen)) { k = i; break; }
            /* accept --long names given with one dash too (-temp) for llama.cpp habits */
            if (!is_long && strlen(defs[i].name) == nlen && !strncmp(defs[i].name, name, nlen)) { k = i; break; }
        }
        if (k < 0) {
            fprintf(stderr, "shardlm %s: unknown option '%s' (see shardlm %s --help)\n", cmd, arg, cmd);
            return -1;
        }
        const char *text = NULL;
        if (eq) text = eq + 1;
        else if (OPT_KIND(&defs[k]) != OPT_BOOL) {
            if (a + 1 >= argc) {
                fprintf(stderr, "shardlm %s: option '%s' needs a value\n", cmd, arg);
                return -1;
            }
            text = argv[++a];
        }
        if (set_value(cmd, &defs[k], &vals[k], text, "option") < 0) return -1;
    }
    return 0;
}

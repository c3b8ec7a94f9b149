/*
 * opts.h — one table drives a command's flags, environment variables and
 * --help (after redis' static_configs[]). Each command declares an array of
 * opt_def and gets back an array of opt_val in the same order.
 *
 * Precedence: command-line flag > SHARDLM_<CMD>_<NAME> (this command only)
 * > SHARDLM_<NAME> (every command with that option, unless the option is
 * marked OPT_CMD_ENV because its meaning differs between commands) >
 * default; names upper-cased, dashes and spaces as underscores. Numbers are
 * range-checked once here; commands then read the values as constants.
 */
#ifndef SL_CLI_OPTS_H
#define SL_CLI_OPTS_H

#include <stdbool.h>
#include <stdint.h>

typedef enum opt_type {
    OPT_BOOL, OPT_INT, OPT_FLOAT, OPT_STR,
    /* or-ed into a type: only SHARDLM_<CMD>_<NAME> sets the option, not the shared
     * SHARDLM_<NAME> (its name means something else in other commands) */
    OPT_CMD_ENV = 0x100,
} opt_type;
#define OPT_KIND(d) ((opt_type)((d)->type & 0xff))

typedef struct opt_def {
    const char *name;  /* long name without dashes: "temp" → --temp */
    const char *alias; /* short flag without dash ("n" → -n), or NULL */
    opt_type type;
    const char *def;   /* default as text, or NULL for none */
    double min, max;   /* numeric range (ignored when min > max) */
    const char *help;
} opt_def;

typedef struct opt_val {
    bool set;          /* given by flag, env or default */
    bool b;
    int64_t i;
    double f;
    const char *s;
} opt_val;

/* Parse argv (argv[0] is the command name). Returns 0 on success, 1 after
 * printing --help, -1 after printing an error to stderr. Positional
 * arguments are collected into pos[] (at most max_pos). */
int opts_parse(const char *cmd, const char *usage, const opt_def *defs, int n_defs, opt_val *vals, int argc,
               char **argv, const char **pos, int max_pos, int *n_pos);

void opts_print_help(const char *cmd, const char *usage, const opt_def *defs, int n_defs);

#endif

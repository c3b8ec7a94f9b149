/*
 * common.h — helpers shared by the model-running commands.
 */
#ifndef SL_CLI_COMMON_H
#define SL_CLI_COMMON_H

#include "shardlm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The draft model's flags of `run` and `serve` (opts.h entries, designated by the command's enum values). */
#define CLI_DRAFT_OPTS(O_DRAFT, O_DRAFT_MAX, O_DRAFT_PMIN)                                                               \
    [O_DRAFT] = {"model-draft", "md", OPT_STR, NULL, 0, -1,                                                              \
                 "draft model (GGUF, the model's vocabulary): it proposes tokens that each step checks (the same "      \
                 "output, faster where it guesses right; llama.cpp's -md)"},                                             \
    [O_DRAFT_MAX] = {"draft-max", NULL, OPT_INT, "16", 1, 16, "tokens the draft model proposes per step at most"},       \
    [O_DRAFT_PMIN] = {"draft-p-min", NULL, OPT_FLOAT, "0.8", 0, 1,                                                       \
                      "the draft model stops proposing before a token it gives less probability than this"}

/* --ssl-keyfile-password of serve and route (an opts.h entry, designated by the command's enum value). */
#define CLI_KEY_PASSWORD_OPT(O_KEYPASS)                                                                                   \
    [O_KEYPASS] = {"ssl-keyfile-password", NULL, OPT_STR, NULL, 0, -1,                                                   \
                   "HTTPS: the passphrase of an encrypted --ssl-keyfile (uvicorn's name; SHARDLM_SSL_KEYFILE_PASSWORD "  \
                   "keeps it off the command line)"}

/* Number of online CPUs (at least 1). */
int cli_default_threads(void);
/* A memory size flag: "N" MiB (1 .. 2^24) or "P%" of physical RAM (0 < P <= 100, at least 1 MiB).
 * False (nothing printed) when the text is neither. */
bool cli_parse_mem_mib(const char *s, int64_t *mib);
/* TLS to an https:// etcd (router/etcd.h: sl_etcd_tls) from --etcd-ca, --etcd-cert and --etcd-key (NULL: not given);
 * false, after "shardlm CMD: ..." on stderr, when only one of the certificate and key is given. */
bool cli_etcd_tls(const char *cmd, const char *ca, const char *cert, const char *key);
/* Load the model or print "shardlm CMD: <error>" and return NULL. */
sl_model *cli_load_model(const char *cmd, const char *path);
/* Tokenize the prompt with BOS as the model's metadata says; NULL + message on error. */
int32_t *cli_tokenize_prompt(const char *cmd, const sl_model *m, const char *text, size_t len, size_t *n);

#endif

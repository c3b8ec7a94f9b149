/*
 * common.h — helpers shared by the model-running commands.
 */
#ifndef SL_CLI_COMMON_H
#define SL_CLI_COMMON_H

#include "shardlm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

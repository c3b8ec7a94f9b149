/*
 * apikeys.h — the API keys a server accepts (engine and router): one or more,
 * given as a list separated by commas (llama.cpp's --api-key) and/or a file
 * of one key per line (llama.cpp's --api-key-file). Only SHA-256 digests are
 * kept; a request's key is digested and compared with every one in constant
 * time, so neither a key's bytes nor its length leak through timing.
 */
#ifndef SL_SERVER_APIKEYS_H
#define SL_SERVER_APIKEYS_H

#include "core/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sl_api_keys {
    uint8_t (*digest)[32];
    int n;
} sl_api_keys;

/* The keys of list (separated by commas; NULL: none) and of file (one per line, blank lines and a line's
 * surrounding spaces ignored; NULL: none). An empty key, an unreadable or empty file: SL_ERR_INVALID naming it. */
sl_status sl_api_keys_load(sl_api_keys *k, const char *list, const char *file);
/* Whether key (n bytes) is one of them. */
bool sl_api_keys_match(const sl_api_keys *k, const char *key, size_t n);
void sl_api_keys_free(sl_api_keys *k);

#endif

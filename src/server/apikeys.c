/*
 * apikeys.c — the API keys a server accepts (see apikeys.h).
 */
#include "apikeys.h"

#include "core/alloc.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static sl_status add_key(sl_api_keys *k, const char *s, size_t n, const char *where) {
    while (n > 0 && isspace((unsigned char)*s)) s++, n--;
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    if (n == 0) return SL_FAIL(SL_ERR_INVALID, "%s: an empty API key", where);
    uint8_t(*d)[32] = sl_realloc(k->digest, sizeof *d * (size_t)(k->n + 1));
    if (!d) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    k->digest = d;
    unsigned len = 0;
    if (!EVP_Digest(s, n, k->digest[k->n], &len, EVP_sha256(), NULL) || len != 32)
        return SL_FAIL(SL_ERR_INVALID, "%s: cannot digest an API key", where);
    k->n++;
    return SL_OK;
}

sl_status sl_api_keys_load(sl_api_keys *k, const char *list, const char *file) {
    memset(k, 0, sizeof *k);
    sl_status st = SL_OK;
    for (const char *p = list; p && st == SL_OK;) {
        const char *comma = strchr(p, ',');
        const size_t n = comma ? (size_t)(comma - p) : strlen(p);
        st = add_key(k, p, n, "--api-key");
        p = comma ? comma + 1 : NULL;
    }
    if (st == SL_OK && file) {
        FILE *f = fopen(file, "r");
        if (!f) {
            st = SL_FAIL(SL_ERR_IO, "--api-key-file %s: %s", file, strerror(errno));
        } else {
            char *line = NULL;
            size_t cap = 0;
            ssize_t got;
            const int before = k->n;
            while (st == SL_OK && (got = getline(&line, &cap, f)) >= 0) {
                size_t n = (size_t)got;
                const char *s = line;
                while (n > 0 && isspace((unsigned char)*s)) s++, n--;
                if (n > 0) st = add_key(k, s, n, file); /* (blank lines skipped) */
            }
            free(line);
            fclose(f);
            if (st == SL_OK && k->n == before) st = SL_FAIL(SL_ERR_INVALID, "--api-key-file %s: no key in it", file);
        }
    }
    if (st != SL_OK) sl_api_keys_free(k);
    return st;
}

bool sl_api_keys_match(const sl_api_keys *k, const char *key, size_t n) {
    if (!key) return false;
    uint8_t d[32];
    unsigned len = 0;
    if (!EVP_Digest(key, n, d, &len, EVP_sha256(), NULL)) return false;
    bool hit = false;
    for (int i = 0; i < k->n; i++) hit |= CRYPTO_memcmp(d, k->digest[i], 32) == 0; /* (every one compared) */
    return hit;
}

void sl_api_keys_free(sl_api_keys *k) {
    sl_free(k->digest);
    k->digest = NULL;
    k->n = 0;
}

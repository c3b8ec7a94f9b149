/*
 * shardlm.h — public API of libshardlm.
 *
 * Everything here is an opaque handle with a create/destroy pair, plus plain
 * value structs for parameters. Calls return an sl_status; results come back
 * through out-parameters. When a call fails, sl_last_error() returns a message
 * recorded where the failure happened (which file, which field, which value).
 *
 * Invariants: every *_destroy accepts NULL; library code never exits the
 * process; strings passed in are UTF-8; token ids are int32_t.
 */
#ifndef SHARDLM_H
#define SHARDLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHARDLM_VERSION "0.1.0"

/* ---- status ------------------------------------------------------------ */

typedef enum sl_status {
    SL_OK = 0,
    SL_ERR_NOMEM,       /* allocation failed */
    SL_ERR_IO,          /* open/read/mmap/write failed */
    SL_ERR_FORMAT,      /* malformed file or data */
    SL_ERR_PROTO,       /* malformed protocol message */
    SL_ERR_TIMEOUT,     /* a bounded wait expired */
    SL_ERR_CLOSED,      /* peer or object closed */
    SL_ERR_INVALID,     /* bad argument from the caller */
    SL_ERR_UNSUPPORTED, /* valid input we do not handle (architecture, type) */
    SL_ERR_RANGE,       /* value out of range (e.g. prompt longer than context) */
    SL_ERR_FULL,        /* no room left (KV blocks, queue) */
} sl_status;

/* Name of a status ("OK", "NOMEM", ...). */
const char *sl_status_str(sl_status st);
/* Message of the last error recorded on this thread ("" when none). */
const char *sl_last_error(void);

/* ---- GGUF files ---------------------------------------------------------- */

typedef struct sl_gguf sl_gguf;

/* Open and validate a GGUF file (v2 or v3) through mmap. */
sl_status sl_gguf_open(const char *path, sl_gguf **out);
/* Validate an in-memory GGUF image; `buf` must outlive the handle. */
sl_status sl_gguf_open_memory(const void *buf, size_t len, sl_gguf **out);
void sl_gguf_close(sl_gguf *g);

/* ---- models ---------------------------------------------------------- */

typedef struct sl_model sl_model;

sl_status sl_model_load(const char *path, sl_model **out);
/* The same from an in-memory GGUF image; `buf` must outlive the model. */
sl_status sl_model_load_memory(const void *buf, size_t len, sl_model **out);
void sl_model_destroy(sl_model *m);
int32_t sl_model_n_vocab(const sl_model *m);
int32_t sl_model_n_ctx(const sl_model *m);

/* ---- tokenizer ------------------------------------------------------- */

typedef struct sl_tokenizer sl_tokenizer;

/* The tokenizer of a loaded model (owned by the model). */
const sl_tokenizer *sl_model_tokenizer(const sl_model *m);

#ifdef __cplusplus
}
#endif
#endif

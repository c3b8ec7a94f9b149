/*
 * tokenizer.h — text ↔ token ids, built from a GGUF file's tokenizer.ggml.*
 * metadata.
 *
 * Supported now: SentencePiece-style vocabularies (tokenizer.ggml.model =
 * "llama"), tokenized exactly as llama.cpp's SPM tokenizer does (bigram merges
 * by score, byte fallback <0xXX>, dummy-prefix space, control/user-defined
 * tokens). The detokenizer streams: sl_detok_push never emits a partial UTF-8
 * character.
 */
#ifndef SL_TOKENIZER_TOKENIZER_H
#define SL_TOKENIZER_TOKENIZER_H

#include "shardlm.h"
#include "model/gguf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* token attributes (tokenizer.ggml.token_type values) */
enum {
    SL_TOKEN_UNDEFINED = 0,
    SL_TOKEN_NORMAL = 1,
    SL_TOKEN_UNKNOWN = 2,
    SL_TOKEN_CONTROL = 3,
    SL_TOKEN_USER_DEFINED = 4,
    SL_TOKEN_UNUSED = 5,
    SL_TOKEN_BYTE = 6,
};

/* Build the tokenizer from GGUF metadata. Errors name the offending key. */
sl_status sl_tokenizer_create(const sl_gguf *g, sl_tokenizer **out);
void sl_tokenizer_destroy(sl_tokenizer *t);

int32_t sl_tokenizer_n_vocab(const sl_tokenizer *t);
int32_t sl_tokenizer_bos(const sl_tokenizer *t);     /* -1 when none */
int32_t sl_tokenizer_eos(const sl_tokenizer *t);     /* -1 when none */
bool sl_tokenizer_add_bos(const sl_tokenizer *t);    /* tokenizer.ggml.add_bos_token (default true for llama) */
bool sl_tokenizer_is_eog(const sl_tokenizer *t, int32_t id); /* end of generation: EOS, EOT, ... */
int sl_tokenizer_token_type(const sl_tokenizer *t, int32_t id);
/* The vocabulary text of a token (as stored, e.g. "▁Once"); NULL for a bad id. */
const char *sl_tokenizer_token_text(const sl_tokenizer *t, int32_t id, size_t *len);

/* Tokenize `len` bytes of text. add_bos: prepend BOS (when the vocab has
 * one). parse_special: match control-token text (e.g. "<s>") as those
 * tokens; otherwise it is tokenized as plain text. The result array is
 * allocated with sl_malloc; free it with sl_free. */
sl_status sl_tokenize(const sl_tokenizer *t, const char *text, size_t len, bool add_bos, bool parse_special,
                      int32_t **ids, size_t *n_ids);

/* Bytes of one token's piece: "▁" → ' ', <0xXX> → the byte; control tokens
 * give "" unless `special`. Writes at most cap bytes; returns the full length
 * (call again with a larger buffer when it exceeds cap), or -1 for a bad id. */
int64_t sl_token_to_piece(const sl_tokenizer *t, int32_t id, bool special, char *buf, size_t cap);

/* Streaming detokenizer: holds back the bytes of an incomplete UTF-8
 * character until it is complete; invalid sequences become U+FFFD. */
typedef struct sl_detok {
    const sl_tokenizer *tok;
    bool special;          /* render control tokens */
    unsigned char pend[8]; /* bytes of an incomplete character */
    size_t n_pend;
} sl_detok;

void sl_detok_init(sl_detok *d, const sl_tokenizer *t, bool special);
/* Append token `id`; writes the complete UTF-8 text now available to out
 * (NUL-terminated) and returns its length, or -1 for a bad id. `cap` of 256
 * plus the longest token piece is always enough; returns -1 if cap is too
 * small (nothing consumed). */
int64_t sl_detok_push(sl_detok *d, int32_t id, char *out, size_t cap);
/* End of stream: any pending incomplete bytes become U+FFFD. */
int64_t sl_detok_flush(sl_detok *d, char *out, size_t cap);

#endif

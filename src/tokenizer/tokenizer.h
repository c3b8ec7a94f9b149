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

/* Build the tokenizer from GGUF metadata. Errors name the offending key.
 * Everything is copied: the GGUF may be closed afterwards. Token-id keys
 * written as all ones (u32 0xFFFFFFFF, as llama.cpp's converters do) or -1
 * mean "none". */
sl_status sl_tokenizer_create(const sl_gguf *g, sl_tokenizer **out);
void sl_tokenizer_destroy(sl_tokenizer *t);

int32_t sl_tokenizer_n_vocab(const sl_tokenizer *t);
int32_t sl_tokenizer_bos(const sl_tokenizer *t);     /* -1 when none */
int32_t sl_tokenizer_eos(const sl_tokenizer *t);     /* -1 when none */
bool sl_tokenizer_add_bos(const sl_tokenizer *t);    /* tokenizer.ggml.add_bos_token (default true for llama) */
bool sl_tokenizer_is_eog(const sl_tokenizer *t, int32_t id); /* end of generation: EOS, EOT, ... */
/* tokenizer.ggml.token_type of a token as stored (SL_TOKEN_NORMAL when the
 * key is absent, SL_TOKEN_UNDEFINED for a bad id). Tokenizing and pieces use
 * llama.cpp's load-time adjustments on top (end-of-generation tokens such
 * as "<|end|>" behave as control tokens). */
int sl_tokenizer_token_type(const sl_tokenizer *t, int32_t id);
/* The vocabulary text of a token (as stored, e.g. "▁Once"); NULL for a bad id. */
const char *sl_tokenizer_token_text(const sl_tokenizer *t, int32_t id, size_t *len);

/* Additions: */
int32_t sl_tokenizer_eot(const sl_tokenizer *t);     /* end of turn (metadata or detected by text), -1 when none */
int32_t sl_tokenizer_unk(const sl_tokenizer *t);     /* -1 when none */
int32_t sl_tokenizer_pad(const sl_tokenizer *t);     /* -1 when none */
bool sl_tokenizer_add_eos(const sl_tokenizer *t);    /* tokenizer.ggml.add_eos_token (default false) */
bool sl_tokenizer_add_space_prefix(const sl_tokenizer *t); /* tokenizer.ggml.add_space_prefix (default true) */
float sl_tokenizer_score(const sl_tokenizer *t, int32_t id); /* 0 for a bad id */
/* Id of the token whose vocabulary text is exactly text[0..len), or -1. */
int32_t sl_tokenizer_find(const sl_tokenizer *t, const char *text, size_t len);
/* Length in bytes of the longest piece (sl_token_to_piece with special). */
size_t sl_tokenizer_max_piece(const sl_tokenizer *t);

/* Tokenize `len` bytes of text. add_bos: prepend BOS (when the vocab has
 * one). parse_special: match control-token text (e.g. "<s>") as those
 * tokens; otherwise it is tokenized as plain text (user-defined tokens are
 * always matched, as in llama.cpp). EOS is never appended: a caller that
 * honours sl_tokenizer_add_eos() appends sl_tokenizer_eos() itself. The
 * result array is allocated with sl_malloc (also when empty); free it with
 * sl_free. */
sl_status sl_tokenize(const sl_tokenizer *t, const char *text, size_t len, bool add_bos, bool parse_special,
                      int32_t **ids, size_t *n_ids);

/* Bytes of one token's piece: "▁" → ' ', <0xXX> → the byte; control tokens
 * give "" unless `special`. Writes at most cap bytes; returns the full length
 * (call again with a larger buffer when it exceeds cap), or -1 for a bad id.
 * A NUL follows the piece when it fits (length < cap). */
int64_t sl_token_to_piece(const sl_tokenizer *t, int32_t id, bool special, char *buf, size_t cap);

/* Streaming detokenizer: holds back the bytes of an incomplete UTF-8
 * character until it is complete; invalid sequences become U+FFFD (one per
 * maximal invalid subpart). Pieces are emitted as sl_token_to_piece gives
 * them: the leading space of the first piece (the SentencePiece dummy
 * prefix) is kept, as llama.cpp's common_token_to_piece prints a stream. */
typedef struct sl_detok {
    const sl_tokenizer *tok;
    bool special;          /* render control tokens */
    unsigned char pend[8]; /* bytes of an incomplete character */
    size_t n_pend;
} sl_detok;

void sl_detok_init(sl_detok *d, const sl_tokenizer *t, bool special);
/* Append token `id`; writes the complete UTF-8 text now available to out
 * (NUL-terminated) and returns its length, or -1 for a bad id. `cap` of 256
 * plus the longest token piece is always enough when token texts are valid
 * UTF-8 (3 * sl_tokenizer_max_piece() + 16 always is: each invalid byte
 * becomes 3); returns -1 if cap is too small (nothing consumed). */
int64_t sl_detok_push(sl_detok *d, int32_t id, char *out, size_t cap);
/* End of stream: any pending incomplete bytes become U+FFFD. */
int64_t sl_detok_flush(sl_detok *d, char *out, size_t cap);

#endif

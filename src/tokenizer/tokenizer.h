/*
 * tokenizer.h — text ↔ token ids, built from a GGUF file's tokenizer.ggml.*
 * metadata.
 *
 * Vocabulary types (tokenizer.ggml.model), each tokenized as llama.cpp
 * does, which reproduces the Hugging Face tokenizers:
 *   "llama"  SentencePiece: bigram merges by score, byte fallback <0xXX>,
 *            dummy-prefix space;
 *   "gpt2"   byte-level BPE: the pre-tokenizer regexes named by
 *            tokenizer.ggml.pre (llama-bpe, qwen2, gpt-2, falcon, mpt,
 *            starcoder, refact, deepseek-llm, deepseek-coder, default and
 *            their aliases; see pretok.c), GPT-2 byte-to-unicode mapping,
 *            merges by rank (tokenizer.ggml.merges);
 *   "bert"   WordPiece: BERT normalizer (lowercase, strip accents),
 *            whitespace/punctuation/CJK splitting, greedy longest match.
 * Control/user-defined tokens are split out of the text as llama.cpp's
 * tokenizer_st_partition does. The detokenizer streams: sl_detok_push never
 * emits a partial UTF-8 character.
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

/* vocabulary types, numbered as llama.cpp's llama_vocab_type */
typedef enum sl_vocab_type {
    SL_VOCAB_SPM = 1, /* "llama" */
    SL_VOCAB_BPE = 2, /* "gpt2" */
    SL_VOCAB_WPM = 3, /* "bert" */
} sl_vocab_type;

/* Build the tokenizer from GGUF metadata. Errors name the offending key.
 * Everything is copied: the GGUF may be closed afterwards. Token-id keys
 * written as all ones (u32 0xFFFFFFFF, as llama.cpp's converters do) or -1
 * mean "none". */
sl_status sl_tokenizer_create(const sl_gguf *g, sl_tokenizer **out);
void sl_tokenizer_destroy(sl_tokenizer *t);

int32_t sl_tokenizer_n_vocab(const sl_tokenizer *t);
int32_t sl_tokenizer_bos(const sl_tokenizer *t);     /* -1 when none */
int32_t sl_tokenizer_eos(const sl_tokenizer *t);     /* -1 when none */
/* tokenizer.ggml.add_bos_token; the default depends on the vocabulary as in
 * llama.cpp: true for SPM and WPM, for BPE only with the llama-bpe (Llama 3)
 * family of pre-tokenizers. */
bool sl_tokenizer_add_bos(const sl_tokenizer *t);
/* End of generation: EOS, EOT, EOM, FIM pad/repo/file-separator tokens and
 * tokens found by text (<|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>,
 * <|endoftext|>, ...), as llama.cpp's special_eog_ids (except that a
 * byte-level vocabulary's ordinary "</s>" text token, an HTML tag, is not
 * taken). */
bool sl_tokenizer_is_eog(const sl_tokenizer *t, int32_t id);
int32_t sl_tokenizer_n_eog(const sl_tokenizer *t);
int32_t sl_tokenizer_eog_at(const sl_tokenizer *t, int32_t i); /* ascending ids; -1 out of range */
/* tokenizer.ggml.token_type of a token as stored (SL_TOKEN_NORMAL when the
 * key is absent, SL_TOKEN_UNDEFINED for a bad id). Tokenizing and pieces use
 * llama.cpp's load-time adjustments on top (end-of-generation tokens such
 * as "<|end|>" behave as control tokens). */
int sl_tokenizer_token_type(const sl_tokenizer *t, int32_t id);
/* The vocabulary text of a token (as stored, e.g. "▁Once"); NULL for a bad id. */
const char *sl_tokenizer_token_text(const sl_tokenizer *t, int32_t id, size_t *len);

/* Additions: */
sl_vocab_type sl_tokenizer_type(const sl_tokenizer *t);
const char *sl_tokenizer_pre(const sl_tokenizer *t); /* BPE pre-tokenizer name ("default" when absent) */
int32_t sl_tokenizer_eot(const sl_tokenizer *t);     /* end of turn (metadata or detected by text), -1 when none */
int32_t sl_tokenizer_eom(const sl_tokenizer *t);     /* end of message, -1 when none */
/* Fill-in-the-middle tokens (metadata, else found by text as llama.cpp finds them), -1 when none. */
typedef enum sl_fim { SL_FIM_PRE, SL_FIM_SUF, SL_FIM_MID, SL_FIM_PAD, SL_FIM_REP, SL_FIM_SEP } sl_fim;
int32_t sl_tokenizer_fim(const sl_tokenizer *t, sl_fim which);
int32_t sl_tokenizer_sep(const sl_tokenizer *t);     /* separator ([SEP]), -1 when none */
bool sl_tokenizer_add_sep(const sl_tokenizer *t);    /* tokenizer.ggml.add_sep_token (default true for WPM) */
int32_t sl_tokenizer_unk(const sl_tokenizer *t);     /* -1 when none */
int32_t sl_tokenizer_pad(const sl_tokenizer *t);     /* -1 when none */
bool sl_tokenizer_add_eos(const sl_tokenizer *t);    /* tokenizer.ggml.add_eos_token (default false) */
bool sl_tokenizer_add_space_prefix(const sl_tokenizer *t); /* tokenizer.ggml.add_space_prefix (default true for SPM) */
float sl_tokenizer_score(const sl_tokenizer *t, int32_t id); /* 0 for a bad id */
/* Id of the token whose vocabulary text is exactly text[0..len), or -1. */
int32_t sl_tokenizer_find(const sl_tokenizer *t, const char *text, size_t len);
/* Length in bytes of the longest piece (sl_token_to_piece with special). */
size_t sl_tokenizer_max_piece(const sl_tokenizer *t);

/* Tokenize `len` bytes of text (any bytes: malformed UTF-8 is read as
 * U+FFFD by the BPE and WPM encoders, as llama.cpp does). add_bos: prepend
 * BOS (when the vocab has one). parse_special: match control-token text
 * (e.g. "<s>", "<|im_end|>") as those tokens; otherwise it is tokenized as
 * plain text (user-defined tokens are always matched, as in llama.cpp). EOS
 * and SEP are never appended: a caller that honours sl_tokenizer_add_eos()
 * / sl_tokenizer_add_sep() appends them itself. The result array is
 * allocated with sl_malloc (also when empty); free it with sl_free. */
sl_status sl_tokenize(const sl_tokenizer *t, const char *text, size_t len, bool add_bos, bool parse_special,
                      int32_t **ids, size_t *n_ids);

/* Bytes of one token's piece: SPM/WPM "▁" → ' ', <0xXX> → the byte, BPE
 * byte-level characters → their bytes (a piece may hold part of a UTF-8
 * character; a character outside the byte-level alphabet is kept as is);
 * control tokens give "" unless `special`. Writes at most cap bytes;
 * returns the full length (call again with a larger buffer when it exceeds
 * cap), or -1 for a bad id. A NUL follows the piece when it fits
 * (length < cap). */
int64_t sl_token_to_piece(const sl_tokenizer *t, int32_t id, bool special, char *buf, size_t cap);

/* Streaming detokenizer: holds back the bytes of an incomplete UTF-8
 * character until it is complete; invalid sequences become U+FFFD (one per
 * maximal invalid subpart). Pieces are emitted as sl_token_to_piece gives
 * them: the leading space of the first piece (the SentencePiece dummy
 * prefix) is kept, as llama.cpp's common_token_to_piece prints a stream. */
#define SL_DETOK_SHOW_MAX 16
typedef struct sl_detok {
    const sl_tokenizer *tok;
    bool special;          /* render control tokens */
    int n_show;            /* ... or only these control tokens (sl_detok_show) */
    int32_t show[SL_DETOK_SHOW_MAX];
    unsigned char pend[8]; /* bytes of an incomplete character */
    size_t n_pend;
} sl_detok;

void sl_detok_init(sl_detok *d, const sl_tokenizer *t, bool special);
/* Render these control tokens as their text too (at most SL_DETOK_SHOW_MAX; the rest are ignored). */
void sl_detok_show(sl_detok *d, const int32_t *ids, int n);
/* Append token `id`; writes the complete UTF-8 text now available to out
 * (NUL-terminated) and returns its length, or -1 for a bad id. `cap` of 256
 * plus the longest token piece is always enough when token texts are valid
 * UTF-8 (3 * sl_tokenizer_max_piece() + 16 always is: each invalid byte
 * becomes 3); returns -1 if cap is too small (nothing consumed). */
int64_t sl_detok_push(sl_detok *d, int32_t id, char *out, size_t cap);
/* End of stream: any pending incomplete bytes become U+FFFD. */
int64_t sl_detok_flush(sl_detok *d, char *out, size_t cap);

#endif

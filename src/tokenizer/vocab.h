/*
 * vocab.h — private to the tokenizer module: the vocabulary layout shared by
 * tokenizer.c (loading, special tokens, pieces, detokenizer) and the three
 * fragment encoders: spm.c (SentencePiece bigram merges), bpe.c (byte-level
 * BPE, with the regex pre-tokenizer of pretok.c) and wpm.c (WordPiece).
 *
 * Invariants: every token has a unique, non-empty text stored NUL-terminated
 * in `text`; `map` finds each of them (open addressing, power-of-two size,
 * at most half full); `pieces` holds each token's piece as rendered with
 * special = true; attr holds llama.cpp-style attribute bits (TA_*), the
 * GGUF token_type is kept as read in `type`. BPE merges are stored with the
 * separating space removed (left bytes, then right bytes) and found through
 * their own hash map, keyed by the concatenation and the split point.
 */
#ifndef SL_TOKENIZER_VOCAB_H
#define SL_TOKENIZER_VOCAB_H

#include "tokenizer/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

/* attribute bits (the values of llama.cpp's llama_token_attr) */
enum {
    TA_UNKNOWN = 1u << 0,
    TA_UNUSED = 1u << 1,
    TA_NORMAL = 1u << 2,
    TA_CONTROL = 1u << 3,
    TA_USER_DEFINED = 1u << 4,
    TA_BYTE = 1u << 5,
    TA_LSTRIP = 1u << 7, /* a split-out special token eats the whitespace on its left */
    TA_RSTRIP = 1u << 8, /* ... on its right */
    TA_EOG = 1u << 16,   /* ours: ends generation */
};

typedef struct tok_info {
    size_t text_off;  /* into sl_tokenizer.text */
    size_t piece_off; /* into sl_tokenizer.pieces */
    uint32_t text_len;
    uint32_t piece_len;
    float score;
    uint32_t attr;    /* TA_* */
    int32_t type;     /* tokenizer.ggml.token_type as stored (SL_TOKEN_NORMAL when absent) */
} tok_info;

/* One BPE merge "left right": its bytes without the space at merge_text + off. */
typedef struct bpe_merge {
    uint32_t off;
    uint32_t left_len, right_len;
    int32_t rank;     /* index in tokenizer.ggml.merges: lower merges first */
} bpe_merge;

typedef struct pretok pretok; /* compiled pre-tokenizer regexes (pretok.h) */

struct sl_tokenizer {
    sl_vocab_type vtype;
    char pre[64];        /* tokenizer.ggml.pre (BPE), "default" when absent */
    int32_t n_vocab;
    tok_info *tok;       /* (n_vocab) */
    char *text;          /* every token text, each NUL-terminated */
    char *pieces;        /* every piece (special = true), each NUL-terminated */
    int32_t *map;        /* (map_mask + 1) token ids, -1 = empty slot */
    uint64_t map_mask;
    uint32_t max_token_len; /* longest token text in bytes */
    int32_t byte_tok[256]; /* SPM byte fallback: <0xXX> (or the 1-byte token), -1 none */
    int32_t *special;    /* ids split out of the text first, longest text first */
    int32_t n_special;
    int32_t *eog;        /* end-of-generation ids, ascending */
    int32_t n_eog;
    uint32_t max_piece;  /* longest piece in bytes */
    int32_t bos, eos, unk, pad, eot, eom, sep, cls, mask; /* -1 when none */
    int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;
    bool add_bos, add_eos, add_sep, add_space_prefix;

    /* BPE */
    bpe_merge *merges;   /* (n_merges) */
    char *merge_text;
    int32_t *merge_map;  /* (merge_mask + 1) indices into merges, -1 = empty slot */
    uint64_t merge_mask;
    uint32_t n_merges;
    pretok *pre_tok;
    bool ignore_merges;  /* a word that is a whole token is taken as is (Llama 3) */
    bool nfc;            /* NFC-normalize raw text first (Qwen2, as Hugging Face does) */

    /* WPM (BERT normalizer options) */
    bool lowercase, strip_accents;
};

/* Growable id array (sl_realloc). */
typedef struct idvec {
    int32_t *v;
    size_t n, cap;
} idvec;

sl_status idvec_push(idvec *a, int32_t id);

/* FNV-1a of s[0..n) (the hash of both maps). */
uint64_t tok_hash(const char *s, size_t n);

/* Id of the token whose text is s[0..n), or -1. */
int32_t tok_find(const sl_tokenizer *t, const char *s, size_t n);

/* Tokenize one already-escaped fragment (spaces are "▁", prefix added) with
 * the SPM bigram merges, appending the ids to `out`. */
sl_status spm_encode(const sl_tokenizer *t, const char *s, size_t n, idvec *out);

/* Byte-level BPE. bpe_load reads tokenizer.ggml.merges and compiles the
 * pre-tokenizer named t->pre; bpe_encode tokenizes one raw text fragment
 * (any bytes); bpe_decode_piece turns a token text back into its bytes
 * (dst has room for n bytes: decoding never grows). */
sl_status bpe_load(sl_tokenizer *t, const sl_gguf *g);
void bpe_free(sl_tokenizer *t);
sl_status bpe_encode(const sl_tokenizer *t, const char *s, size_t n, idvec *out);
uint32_t bpe_decode_piece(const char *s, uint32_t n, char *dst);

/* WordPiece (BERT): normalize, split on whitespace and punctuation, then
 * greedy longest match; tokenizes one raw text fragment. */
sl_status wpm_encode(const sl_tokenizer *t, const char *s, size_t n, idvec *out);

/* Bytes of a UTF-8 character from its lead byte alone (llama.cpp's
 * unicode_len_utf8: a continuation byte counts 1). */
static inline uint32_t utf8_len_lead(unsigned char c) {
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[c >> 4];
}

/* Decode UTF-8 as llama.cpp's unicode_cpts_from_utf8 does: a malformed lead
 * or truncated sequence becomes U+FFFD and consumes one byte (overlongs and
 * surrogates are not checked). Returns the code point; *len gets the bytes
 * consumed (>= 1). */
uint32_t utf8_decode_lenient(const unsigned char *s, size_t n, size_t *len);
/* Encode a code point (<= 0x10FFFF) as UTF-8 into dst (4 bytes of room); returns the length. */
size_t utf8_encode(uint32_t cp, char *dst);

#endif

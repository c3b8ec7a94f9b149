/*
 * spm.h — private to the tokenizer module: the vocabulary layout shared by
 * tokenizer.c (loading, special-token split, pieces, detokenizer) and spm.c
 * (the SentencePiece bigram merge of one text fragment).
 *
 * Invariants: every token has a unique, non-empty text stored NUL-terminated
 * in `text`; `map` finds each of them (open addressing, power-of-two size,
 * at most half full); `pieces` holds each token's piece as rendered with
 * special = true; attr holds llama.cpp-style attribute bits (TA_*), the
 * GGUF token_type is kept as read in `type`.
 */
#ifndef SL_TOKENIZER_SPM_H
#define SL_TOKENIZER_SPM_H

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

struct sl_tokenizer {
    int32_t n_vocab;
    tok_info *tok;       /* (n_vocab) */
    char *text;          /* every token text, each NUL-terminated */
    char *pieces;        /* every piece (special = true), each NUL-terminated */
    int32_t *map;        /* (map_mask + 1) token ids, -1 = empty slot */
    uint64_t map_mask;
    int32_t byte_tok[256]; /* byte fallback: <0xXX> (or the 1-byte token), -1 none */
    int32_t *special;    /* ids split out of the text first, longest text first */
    int32_t n_special;
    uint32_t max_piece;  /* longest piece in bytes */
    int32_t bos, eos, unk, pad, eot, eom; /* -1 when none */
    bool add_bos, add_eos, add_space_prefix;
};

/* Growable id array (sl_realloc). */
typedef struct idvec {
    int32_t *v;
    size_t n, cap;
} idvec;

sl_status idvec_push(idvec *a, int32_t id);

/* Id of the token whose text is s[0..n), or -1. */
int32_t tok_find(const sl_tokenizer *t, const char *s, size_t n);

/* Tokenize one already-escaped fragment (spaces are "▁", prefix added) with
 * the SPM bigram merges, appending the ids to `out`. */
sl_status spm_encode(const sl_tokenizer *t, const char *s, size_t n, idvec *out);

#endif

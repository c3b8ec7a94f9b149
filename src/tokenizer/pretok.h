/*
 * pretok.h — private to the tokenizer module: the byte-level BPE
 * pre-tokenizers, i.e. the regex lists llama.cpp applies per
 * tokenizer.ggml.pre value, compiled with PCRE2 (UTF + UCP, JIT when the
 * platform has it).
 *
 * Splitting follows llama.cpp's unicode_regex_split: the regexes are applied
 * in sequence, each to every piece the previous one produced (matched in
 * isolation: lookaheads and `$` see the end of the piece); within a piece
 * both the matches and the unmatched text between them become pieces, in
 * order; empty matches are ignored. The result partitions the input.
 */
#ifndef SL_TOKENIZER_PRETOK_H
#define SL_TOKENIZER_PRETOK_H

#include "shardlm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a pre-tokenizer name implies besides its regexes (llama.cpp's
 * llama_vocab::impl::load settings for that name). */
typedef struct pretok_flags {
    bool ignore_merges; /* a word that is a whole token is taken as is */
    bool add_bos;       /* default of tokenizer.ggml.add_bos_token */
    bool add_sep;       /* default of tokenizer.ggml.add_sep_token */
    bool no_bos;        /* the default BOS id is none (chatglm) */
    bool nfc;           /* Hugging Face NFC-normalizes the text first */
} pretok_flags;

typedef struct pretok pretok;

typedef struct span {
    size_t off, len;
} span;

typedef struct spanvec {
    span *v;
    size_t n, cap;
} spanvec;

/* Flags of a known pre-tokenizer name; false when the name is unknown. */
bool pretok_lookup(const char *name, pretok_flags *flags);
/* Compile the regexes of pre-tokenizer `name` (SL_ERR_UNSUPPORTED when unknown). */
sl_status pretok_create(const char *name, pretok **out);
void pretok_destroy(pretok *p);
/* Split s[0..n) (valid UTF-8) into pieces; the result is in *out (tmp is
 * scratch; both are reused across calls and freed by the caller). */
sl_status pretok_split(const pretok *p, const char *s, size_t n, spanvec *out, spanvec *tmp);
/* The i-th pre-tokenizer name pretok_lookup knows; NULL past the last. */
const char *pretok_name(size_t i);

#endif

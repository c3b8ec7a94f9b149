/*
 * promptgen.h — benchmark prompts of an exact token length, made of random
 * common English words joined by single spaces (the serving workloads of
 * ../shared/docs/REFERENCE.md), optionally all starting with one shared
 * prefix of a given token length.
 *
 * Design: the generator does no I/O. It is given a tokenize function (the
 * server's /tokenize, or a local tokenizer in tests) and measures once what
 * each word of its built-in list costs: as the first word of a text, and
 * after a space. Prompts are then composed by arithmetic: a table of the
 * token counts the word costs can sum to tells, at every step, which words
 * still leave a reachable remainder, so every prompt has exactly the
 * requested length while words stay random. Prompt i is a pure function of
 * (seed, i, length): runs are reproducible and prompts can be made lazily.
 *
 * Assumption, checked: a text of words joined by single spaces tokenizes to
 * the sum of its words' costs (true of SentencePiece and GPT-2-style BPE
 * vocabularies, whose pieces do not span a space between words). The
 * shared prefix is checked at creation; sl_promptgen_check() checks any
 * prompt against the tokenizer, and the load generator compares every
 * request's prompt_tokens usage with the intended length.
 */
#ifndef SL_CLIENT_PROMPTGEN_H
#define SL_CLIENT_PROMPTGEN_H

#include "shardlm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Tokenize `text` the way requests are tokenized (BOS included when the
 * model adds one). *ids is sl_malloc'd (may be NULL when *n == 0). */
typedef sl_status (*sl_tokenize_fn)(void *ud, const char *text, int32_t **ids, size_t *n);

typedef struct sl_promptgen_cfg {
    int32_t max_tokens;    /* longest prompt that will be asked for */
    int32_t prefix_tokens; /* shared prefix length (BOS included), 0 = none */
    uint64_t seed;
} sl_promptgen_cfg;

typedef struct sl_promptgen sl_promptgen;

/* Measure the word costs through `tok` (2 calls per word) and build the
 * shared prefix. Fails when the requested lengths cannot be composed. */
sl_status sl_promptgen_create(const sl_promptgen_cfg *cfg, sl_tokenize_fn tok, void *ud, sl_promptgen **out);
void sl_promptgen_destroy(sl_promptgen *g);

/* Prompt number `index` with exactly n_tokens tokens (sl_malloc'd text).
 * With a shared prefix, n_tokens must exceed the prefix length. */
sl_status sl_promptgen_make(const sl_promptgen *g, uint64_t index, int32_t n_tokens, char **text);
/* Tokenize `text` and check it has n_tokens tokens and starts with the
 * shared prefix's ids (SL_ERR_FORMAT naming the difference otherwise). */
sl_status sl_promptgen_check(const sl_promptgen *g, const char *text, int32_t n_tokens, sl_tokenize_fn tok, void *ud);

/* Whether a prompt of exactly n_tokens can be made (no text is built). */
bool sl_promptgen_can_make(const sl_promptgen *g, int32_t n_tokens);
/* Shortest prompt that can be made (BOS plus the cheapest first word, or the prefix plus one word). */
int32_t sl_promptgen_min_tokens(const sl_promptgen *g);
/* Words of the built-in list usable with this tokenizer. */
size_t sl_promptgen_n_words(const sl_promptgen *g);
/* The shared prefix text ("" when none). */
const char *sl_promptgen_prefix(const sl_promptgen *g);

#endif

/*
 * grammar.h — output guided by a context-free grammar written in GBNF, the
 * notation of llama.cpp's `grammar` field (and of vLLM's `guided_grammar`
 * with its xgrammar backend):
 *
 *     root  ::= answer "."          # every grammar has a rule named root
 *     answer ::= "yes" | "no" | [0-9]+ ("," [0-9]+)*
 *
 * Terminals: "literals" and [character classes] ([a-z0-9_], [^"\\]), `.`
 * (any character), with the escapes \n \r \t \\ \" \[ \] \- \xHH \uHHHH
 * \UHHHHHHHH; rule names ([a-zA-Z0-9_-]+); ( groups ), alternatives |,
 * and the repetitions * + ? {m} {m,} {m,n} {,n} (bounds up to
 * SL_GRAM_MAX_REPEAT); token references <[id]> and <text> (one token of
 * the vocabulary, a control token such as <think> too) and !<...> (any
 * token but that one), where a vocabulary is given. A rule's body ends at the end of its line, except
 * inside parentheses and after ::= or |; # starts a comment. Characters are
 * Unicode code points: the output is matched as UTF-8, one character at a
 * time. Refused, with the line and column: undefined or twice-defined rules,
 * no root, left recursion (a rule that can reach itself before reading a
 * character, which would never stop expanding), token references without a
 * vocabulary or that name no single token.
 *
 * sl_gram_state follows the output: the ways the grammar can still read it,
 * as stacks of the symbols left to match (a pushdown automaton's stacks,
 * shared where they have a common bottom), at most SL_GRAM_MAX_STACKS of
 * them (an ambiguous grammar's later readings beyond that are dropped: a
 * grammar whose readings multiply with each nesting, as
 * e ::= "(" e ")" | "(" e "))" | [a-z]+, is followed only that far).
 *
 * sl_gram_guide holds the vocabulary's token texts in a byte trie, so a
 * token mask walks each prefix once: sl_gram_guide_mask sets the logits of
 * the tokens that cannot come next to -inf (end of generation is allowed
 * once the output is a whole sentence of the grammar).
 */
#ifndef SL_ENGINE_GRAMMAR_H
#define SL_ENGINE_GRAMMAR_H

#include "engine/jsonguide.h"
#include "shardlm.h"
#include "tokenizer/tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_GRAM_MAX_STACKS 128
#define SL_GRAM_MAX_REPEAT 1000
#define SL_GRAM_MAX_SYMBOLS (1 << 20)

typedef struct sl_grammar sl_grammar;

/* Compile GBNF text[0, len). Errors (SL_ERR_INVALID) say what is wrong and where ("line 2, column 14"). */
sl_status sl_grammar_compile(const char *text, size_t len, sl_grammar **out);
/* The same, token references resolved in vocab (NULL: refused). */
sl_status sl_grammar_compile_vocab(const char *text, size_t len, const sl_tokenizer *vocab, sl_grammar **out);
sl_grammar *sl_grammar_retain(sl_grammar *g);
void sl_grammar_release(sl_grammar *g);

typedef struct sl_gram_state sl_gram_state;

/* A state at the start of the output (g must outlive it). */
sl_status sl_gram_state_create(const sl_grammar *g, sl_gram_state **out);
void sl_gram_state_destroy(sl_gram_state *s);
/* Take bytes p[0, n): false, with the state unchanged, when they cannot continue the output. */
bool sl_gram_feed_all(sl_gram_state *s, const char *p, size_t n);
/* Take token id, whose output is text[0, n): by a token reference that names it, or by its text. A text
 * that ends inside a character continues only the readings of its characters. */
bool sl_gram_feed_token(sl_gram_state *s, int32_t id, const char *text, size_t n);
/* The output may end here: a whole sentence of the grammar, no character left half-written. */
bool sl_gram_may_end(const sl_gram_state *s);
/* Nothing may follow: the output is a whole sentence and no reading can go on. */
bool sl_gram_done(const sl_gram_state *s);

typedef struct sl_gram_guide sl_gram_guide;

/* The token texts of json_guide (the output's bytes of every token) in a trie; tok says which end generation. */
sl_status sl_gram_guide_create(const sl_json_guide *texts, const sl_tokenizer *tok, sl_gram_guide **out);
void sl_gram_guide_destroy(sl_gram_guide *g);
/* Set logits[i] = -inf for every token that cannot come after s (s's scratch space is used; the state it
 * stands for is unchanged). Returns how many tokens stay allowed. One caller at a time per guide. */
int32_t sl_gram_guide_mask(sl_gram_guide *g, sl_gram_state *s, float *logits);

#endif

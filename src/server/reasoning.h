/*
 * reasoning.h — the thinking of reasoning models (DeepSeek-R1, Qwen3, QwQ
 * and the like) as OpenAI-style `reasoning_content`, the way llama.cpp's
 * `--reasoning-format deepseek` and vLLM's reasoning parsers give it.
 *
 * An answer's thinking is the text between <think> and </think>: either
 * the answer opens with <think> (after whitespace), or the prompt already
 * opened the block (DeepSeek-R1's template ends its generation prompt with
 * "<think>\n"; sl_think_open_in_prompt says whether it did). The content is
 * what follows </think>. An answer cut before </think> is all thinking.
 * Both parts are given without the whitespace around them.
 *
 * Streamed, only what cannot turn out to be part of a tag (or whitespace
 * that may end a part) is given: sl_think_split with fin false never
 * reports a byte that a longer text would put elsewhere.
 */
#ifndef SL_SERVER_REASONING_H
#define SL_SERVER_REASONING_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sl_think_split {
    size_t r0, r1; /* the thinking: text[r0, r1) (r0 == r1: none so far) */
    size_t c0, c1; /* the content: text[c0, c1) */
} sl_think_split;

/* Split text[0, n). open: the prompt left a <think> block open. fin: the
 * answer is complete (nothing is held back). */
sl_think_split sl_think_split_text(const char *text, size_t n, bool open, bool fin);

/* Whether a rendered prompt ends inside a <think> block (its last <think>
 * comes after its last </think>, with only whitespace after the tag). */
bool sl_think_open_in_prompt(const char *prompt);

/* Whether a chat template's source writes thinking tags (auto detection). */
bool sl_think_template_has_tags(const char *template_src);

#endif

/*
 * reasoning.h — the thinking of reasoning models (DeepSeek-R1, Qwen3, QwQ
 * and the like) as OpenAI-style `reasoning_content`, the way llama.cpp's
 * `--reasoning-format deepseek` and vLLM's reasoning parsers give it.
 *
 * An answer's thinking is the text between <think> and </think> (or the
 * pair of tags the model's template writes, sl_think_tags): either
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

/* The thinking tags of a model family. */
typedef enum sl_think_tags {
    SL_THINK_TAGS_THINK,     /* <think> ... </think> (DeepSeek-R1, Qwen3, QwQ, GLM, MiniMax, Nemotron, ...) */
    SL_THINK_TAGS_SEED,      /* <seed:think> ... </seed:think> (Seed-OSS) */
    SL_THINK_TAGS_COMMAND_R, /* <|START_THINKING|> ... <|END_THINKING|> (Command R7B, Command A) */
    SL_THINK_TAGS_MISTRAL,   /* [THINK] ... [/THINK] (Magistral, Ministral reasoning) */
    SL_THINK_TAGS_HUNYUAN,   /* <think:opensource> ... </think:opensource> (Hunyuan 3) */
    SL_THINK_TAGS_GEMMA4,    /* <|channel>thought ... <channel|> (Gemma 4) */
    SL_THINK_TAGS_COUNT
} sl_think_tags;

const char *sl_think_open_tag(sl_think_tags t);
const char *sl_think_close_tag(sl_think_tags t);

typedef struct sl_think_split {
    size_t r0, r1; /* the thinking: text[r0, r1) (r0 == r1: none so far) */
    size_t c0, c1; /* the content: text[c0, c1) */
} sl_think_split;

/* Split text[0, n). open: the prompt left a <think> block open. fin: the
 * answer is complete (nothing is held back). */
sl_think_split sl_think_split_text(sl_think_tags t, const char *text, size_t n, bool open, bool fin);

/* Whether a rendered prompt ends inside a thinking block (its last opening
 * tag comes after its last closing one, with only whitespace after it). */
bool sl_think_open_in_prompt(sl_think_tags t, const char *prompt);

/* Whether a chat template's source writes thinking tags, and which (*t; auto
 * detection). */
bool sl_think_template_has_tags(const char *template_src, sl_think_tags *t);

#endif

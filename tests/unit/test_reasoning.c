/*
 * test_reasoning.c — thinking and content of an answer (server/reasoning.c):
 * hand-written answers in DeepSeek-R1's and Qwen3's forms, whole and fed one
 * byte at a time (what a stream releases never shrinks and never differs
 * from the whole answer's parts), and prompts of the real templates.
 */
#include "harness.h"

#include "server/reasoning.h"

#include <stdlib.h>
#include <string.h>

static bool split_as(sl_think_tags t, const char *text, bool open, const char *thinking, const char *content) {
    const size_t n = strlen(text);
    const sl_think_split s = sl_think_split_text(t, text, n, open, true);
    const bool ok = s.r1 - s.r0 == strlen(thinking) && !memcmp(text + s.r0, thinking, strlen(thinking)) &&
                    s.c1 - s.c0 == strlen(content) && !memcmp(text + s.c0, content, strlen(content));
    if (!ok)
        fprintf(stderr, "   '%s' (open %d): thinking '%.*s', content '%.*s'; expected '%s', '%s'\n", text, open,
                (int)(s.r1 - s.r0), text + s.r0, (int)(s.c1 - s.c0), text + s.c0, thinking, content);
    return ok;
}

static bool split_is(const char *text, bool open, const char *thinking, const char *content) {
    return split_as(SL_THINK_TAGS_THINK, text, open, thinking, content);
}

TEST(answers_split_into_thinking_and_content) {
    CHECK(split_is("<think>\nThe user asks.\n</think>\n\nHello!", false, "The user asks.", "Hello!"));
    CHECK(split_is("  <think>a</think>b", false, "a", "b"));
    CHECK(split_is("Hello, no thinking.", false, "", "Hello, no thinking."));
    CHECK(split_is("Say <think> later</think>", false, "", "Say <think> later</think>"));
    CHECK(split_is("<think>\n\n</think>\n\nJust this.", false, "", "Just this."));
    CHECK(split_is("<think>cut off befo", false, "cut off befo", ""));
    CHECK(split_is("<thin", false, "", "<thin"));
    /* the prompt opened the block (DeepSeek-R1): the answer starts in it */
    CHECK(split_is("\nHmm, 2+2.\n</think>\n\n4", true, "Hmm, 2+2.", "4"));
    CHECK(split_is("still thinking", true, "still thinking", ""));
    CHECK(split_is("</think>direct", true, "", "direct"));
    /* the other families' tags, as their templates write them (../shared/golden/chat-templates) */
    CHECK(split_as(SL_THINK_TAGS_SEED, "<seed:think>\nPlan.\n</seed:think>\nAnswer.", false, "Plan.", "Answer."));
    CHECK(split_as(SL_THINK_TAGS_COMMAND_R, "<|START_THINKING|>Look it up.<|END_THINKING|><|START_RESPONSE|>", false,
                   "Look it up.", "<|START_RESPONSE|>"));
    CHECK(split_as(SL_THINK_TAGS_MISTRAL, "[THINK]draft[/THINK]Here.", false, "draft", "Here."));
    CHECK(split_as(SL_THINK_TAGS_HUNYUAN, "<think:opensource>\nhm\n</think:opensource>\nok", false, "hm", "ok"));
    CHECK(split_as(SL_THINK_TAGS_MISTRAL, "<think>a</think>b", false, "", "<think>a</think>b"));
    CHECK(split_as(SL_THINK_TAGS_GEMMA4, "<|channel>thought\nWeigh it.\n<channel|>Done.", false, "Weigh it.", "Done."));
}

/* Streamed: for every prefix, the parts released so far are prefixes of the whole answer's parts. */
static bool streams_as_whole(const char *text, bool open) {
    const size_t n = strlen(text);
    const sl_think_split w = sl_think_split_text(SL_THINK_TAGS_THINK, text, n, open, true);
    size_t rel_r = 0, rel_c = 0;
    for (size_t k = 0; k <= n; k++) {
        const sl_think_split s = sl_think_split_text(SL_THINK_TAGS_THINK, text, k, open, false);
        const size_t lr = s.r1 - s.r0, lc = s.c1 - s.c0;
        if (lr < rel_r || lc < rel_c || lr > w.r1 - w.r0 || lc > w.c1 - w.c0 || (lr && s.r0 != w.r0) ||
            (lc && s.c0 != w.c0)) {
            fprintf(stderr, "   '%s' at %zu bytes: thinking [%zu, %zu), content [%zu, %zu); whole [%zu, %zu), [%zu, %zu)\n",
                    text, k, s.r0, s.r1, s.c0, s.c1, w.r0, w.r1, w.c0, w.c1);
            return false;
        }
        rel_r = lr;
        rel_c = lc;
    }
    return true;
}

TEST(streamed_parts_only_grow_into_the_whole_ones) {
    static const char *answers[] = {"<think>\nThe user asks.\n</think>\n\nHello!", "  <think>a</think>b",
                                    "Hello, no thinking.", "<think> x </thinkish> y </think> z", "<think>\n\n</think>\n\nJust.",
                                    "<thin", "<think>cut </thi", "\n\nplain"};
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++) {
        CHECK(streams_as_whole(answers[i], false));
        CHECK(streams_as_whole(answers[i], true));
    }
}

TEST(prompts_of_real_templates) {
    /* DeepSeek-R1 opens the block in its generation prompt; Qwen3 with enable_thinking false closes an
     * empty one; a prompt without tags leaves none open */
    CHECK(sl_think_open_in_prompt(SL_THINK_TAGS_THINK, "<｜User｜>Hi<｜Assistant｜><think>\n"));
    CHECK(!sl_think_open_in_prompt(SL_THINK_TAGS_THINK, "<|im_start|>assistant\n<think>\n\n</think>\n\n"));
    CHECK(!sl_think_open_in_prompt(SL_THINK_TAGS_THINK, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"));
    CHECK(!sl_think_open_in_prompt(SL_THINK_TAGS_THINK, "<think>\nold</think> then <think> text after"));
    CHECK(sl_think_open_in_prompt(SL_THINK_TAGS_SEED, "<seed:bos>assistant\n<seed:think>"));
    static const struct {
        const char *file;
        bool tags;
        sl_think_tags t;
    } cases[] = {{"Qwen-Qwen3-0.6B", true, SL_THINK_TAGS_THINK},
                 {"deepseek-ai-DeepSeek-R1-Distill-Llama-8B", true, SL_THINK_TAGS_THINK},
                 {"Qwen-QwQ-32B", true, SL_THINK_TAGS_THINK},
                 {"ByteDance-Seed-OSS", true, SL_THINK_TAGS_SEED},
                 {"CohereForAI-c4ai-command-r7b-12-2024-tool_use", true, SL_THINK_TAGS_COMMAND_R},
                 {"mistralai-Ministral-3-14B-Reasoning-2512", true, SL_THINK_TAGS_MISTRAL},
                 {"tencent-Hy3", true, SL_THINK_TAGS_HUNYUAN},
                 {"google-gemma-4-31B-it", true, SL_THINK_TAGS_GEMMA4},
                 {"meta-llama-Llama-3.1-8B-Instruct", false, SL_THINK_TAGS_THINK},
                 {"google-gemma-2-2b-it", false, SL_THINK_TAGS_THINK}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "golden/chat-templates/%s.jinja", cases[i].file);
        const char *path = sl_test_shared(rel);
        if (!path) return;
        size_t len;
        char *src = sl_test_read_file(path, &len);
        CHECK(src != NULL);
        sl_think_tags t = SL_THINK_TAGS_THINK;
        const bool has = sl_think_template_has_tags(src, &t);
        free(src);
        CHECK_MSG(has == cases[i].tags && t == cases[i].t, "%s: tags %d (%s)", cases[i].file, has, sl_think_open_tag(t));
    }
}

/*
 * test_thinkbudget.c — the reasoning budget's state machine (engine/thinkbudget.h)
 * on the cases llama.cpp's reasoning-budget sampler is specified by: counting
 * from the opening tag, forcing the message and closing tag when the budget is
 * spent, a natural end first, a budget of 0, a block the prompt opened, a
 * spent budget waiting for a whole UTF-8 character, the tag matcher's restart.
 */
#include "harness.h"

#include "engine/thinkbudget.h"

static const int32_t START[] = {10}, END[] = {20, 21}, FORCED[] = {30, 20, 21};

TEST(budget_spent_forces_message_and_tag) {
    sl_tbudget b;
    CHECK_OK(sl_tb_init(&b, 2, false, START, 1, END, 2, FORCED, 3));
    CHECK_EQ_INT(sl_tb_forced(&b), -1);
    sl_tb_accept(&b, 5, true); /* before the tag: nothing counts */
    sl_tb_accept(&b, 10, true);
    CHECK_EQ_INT((int)b.state, (int)SL_TB_COUNTING);
    sl_tb_accept(&b, 11, true);
    CHECK_EQ_INT(sl_tb_forced(&b), -1);
    sl_tb_accept(&b, 11, true);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(sl_tb_forced(&b), FORCED[i]);
        sl_tb_accept(&b, FORCED[i], true);
    }
    CHECK_EQ_INT((int)b.state, (int)SL_TB_DONE);
    sl_tb_accept(&b, 10, true); /* a later block: not counted */
    for (int i = 0; i < 5; i++) sl_tb_accept(&b, 11, true);
    CHECK_EQ_INT(sl_tb_forced(&b), -1);
    sl_tb_free(&b);
}

TEST(budget_natural_end_and_restart) {
    sl_tbudget b;
    CHECK_OK(sl_tb_init(&b, 5, true, START, 1, END, 2, FORCED, 3)); /* the prompt opened the block */
    sl_tb_accept(&b, 20, true); /* the tag's start, then not its end: the matcher restarts */
    sl_tb_accept(&b, 20, true); /* (restarted at 1: this one begins it) */
    sl_tb_accept(&b, 21, true); /* 20 21: the block ended by itself */
    CHECK_EQ_INT((int)b.state, (int)SL_TB_DONE);
    CHECK_EQ_INT(sl_tb_forced(&b), -1);
    sl_tb_free(&b);
    CHECK_OK(sl_tb_init(&b, 0, true, START, 1, END, 2, FORCED, 3)); /* budget 0: forced at once */
    CHECK_EQ_INT(sl_tb_forced(&b), 30);
    sl_tb_free(&b);
}

TEST(budget_waits_for_a_whole_character) {
    sl_tbudget b;
    CHECK_OK(sl_tb_init(&b, 1, true, START, 1, END, 2, FORCED, 3));
    sl_tb_accept(&b, 7, false); /* the last counted token ends inside a character */
    CHECK_EQ_INT((int)b.state, (int)SL_TB_WAITING_UTF8);
    CHECK_EQ_INT(sl_tb_forced(&b), -1);
    sl_tb_accept(&b, 8, true);
    CHECK_EQ_INT(sl_tb_forced(&b), 30);
    sl_tb_free(&b);
    CHECK(sl_utf8_ends_whole("abc", 3));
    CHECK(sl_utf8_ends_whole("", 0));
    CHECK(sl_utf8_ends_whole("\xc3\xa9", 2));
    CHECK(!sl_utf8_ends_whole("a\xc3", 2));
    CHECK(!sl_utf8_ends_whole("\xe2\x82", 2));
    CHECK(sl_utf8_ends_whole("\xe2\x82\xac", 3));
    CHECK(!sl_utf8_ends_whole("\x82\xac", 2)); /* (only continuation bytes) */
}

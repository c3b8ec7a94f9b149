/*
 * thinkbudget.h — a reasoning budget (llama.cpp's reasoning_budget_tokens and
 * --reasoning-budget, Anthropic's thinking.budget_tokens): once the answer's
 * thinking block has `budget` tokens, the next tokens are forced — the budget
 * message, then the block's closing tag — so the model goes on to answer.
 *
 * The state machine is llama.cpp's reasoning-budget sampler's, token for
 * token: IDLE (watching the output for the opening tag's tokens) → COUNTING
 * (each token spends one; the closing tag's tokens end it: DONE) → at zero,
 * WAITING_UTF8 until a token ends a whole UTF-8 character, then FORCING (the
 * forced tokens one by one) → DONE (nothing more, even for a later block).
 * A block the prompt opened starts in COUNTING; a budget of 0 forces at once.
 * Tags are matched as llama.cpp's token matcher does (a mismatch restarts it,
 * at 1 when the token begins the tag).
 */
#ifndef SL_ENGINE_THINKBUDGET_H
#define SL_ENGINE_THINKBUDGET_H

#include "core/status.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum sl_tb_state { SL_TB_IDLE, SL_TB_COUNTING, SL_TB_WAITING_UTF8, SL_TB_FORCING, SL_TB_DONE } sl_tb_state;

typedef struct sl_tbudget {
    int32_t budget, remaining;
    int32_t *start, *end, *forced; /* owned */
    int32_t n_start, n_end, n_forced;
    int32_t start_pos, end_pos, force_pos;
    sl_tb_state state;
} sl_tbudget;

/* A budget over the given tag and forced token lists (copied). open: the prompt left the block open. */
sl_status sl_tb_init(sl_tbudget *b, int32_t budget, bool open, const int32_t *start, int32_t n_start,
                     const int32_t *end, int32_t n_end, const int32_t *forced, int32_t n_forced);
void sl_tb_free(sl_tbudget *b);
/* The token that must come next, or -1 when the model chooses. */
int32_t sl_tb_forced(const sl_tbudget *b);
/* The output went on with token id; utf8_complete: its text ends on a whole UTF-8 character. */
void sl_tb_accept(sl_tbudget *b, int32_t id, bool utf8_complete);
/* Whether the n bytes of a token's text end on a whole UTF-8 character (no text: yes). */
bool sl_utf8_ends_whole(const char *s, int64_t n);

#endif

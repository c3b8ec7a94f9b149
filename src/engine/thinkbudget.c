/*
 * thinkbudget.c — the reasoning budget's state machine (see thinkbudget.h).
 */
#include "thinkbudget.h"

#include "core/alloc.h"

#include <string.h>

static int32_t *copy_ids(const int32_t *ids, int32_t n, bool *ok) {
    if (n <= 0) return NULL;
    int32_t *p = sl_alloc_array((size_t)n, sizeof(int32_t));
    if (!p) {
        *ok = false;
        return NULL;
    }
    memcpy(p, ids, sizeof(int32_t) * (size_t)n);
    return p;
}

static void start_counting(sl_tbudget *b) {
    b->remaining = b->budget;
    b->state = b->remaining <= 0 ? SL_TB_FORCING : SL_TB_COUNTING;
    b->force_pos = 0;
}

sl_status sl_tb_init(sl_tbudget *b, int32_t budget, bool open, const int32_t *start, int32_t n_start,
                     const int32_t *end, int32_t n_end, const int32_t *forced, int32_t n_forced) {
    memset(b, 0, sizeof *b);
    bool ok = true;
    b->start = copy_ids(start, n_start, &ok);
    b->end = copy_ids(end, n_end, &ok);
    b->forced = copy_ids(forced, n_forced, &ok);
    if (!ok) {
        sl_tb_free(b);
        return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    }
    b->n_start = n_start > 0 ? n_start : 0;
    b->n_end = n_end > 0 ? n_end : 0;
    b->n_forced = n_forced > 0 ? n_forced : 0;
    b->budget = budget;
    b->state = SL_TB_IDLE;
    if (open) start_counting(b);
    return SL_OK;
}

void sl_tb_free(sl_tbudget *b) {
    sl_free(b->start);
    sl_free(b->end);
    sl_free(b->forced);
    memset(b, 0, sizeof *b);
    b->state = SL_TB_DONE;
}

int32_t sl_tb_forced(const sl_tbudget *b) {
    return b->state == SL_TB_FORCING && b->force_pos < b->n_forced ? b->forced[b->force_pos] : -1;
}

/* llama.cpp's token matcher: whether id completes the sequence (then it starts over). */
static bool advance(const int32_t *seq, int32_t n, int32_t *pos, int32_t id) {
    if (n <= 0) return false;
    if (id == seq[*pos]) {
        if (++*pos >= n) {
            *pos = 0;
            return true;
        }
    } else {
        *pos = id == seq[0] ? 1 : 0;
    }
    return false;
}

void sl_tb_accept(sl_tbudget *b, int32_t id, bool utf8_complete) {
    switch (b->state) {
    case SL_TB_IDLE:
        if (advance(b->start, b->n_start, &b->start_pos, id)) start_counting(b);
        break;
    case SL_TB_COUNTING:
    case SL_TB_WAITING_UTF8:
        if (advance(b->end, b->n_end, &b->end_pos, id)) {
            b->state = SL_TB_DONE;
            break;
        }
        if (b->state == SL_TB_WAITING_UTF8) {
            if (utf8_complete) {
                b->state = SL_TB_FORCING;
                b->force_pos = 0;
                b->end_pos = 0;
            }
        } else if (--b->remaining <= 0) {
            b->state = utf8_complete ? SL_TB_FORCING : SL_TB_WAITING_UTF8;
            b->force_pos = 0;
            b->end_pos = 0;
        }
        break;
    case SL_TB_FORCING:
        if (++b->force_pos >= b->n_forced) b->state = SL_TB_DONE;
        break;
    case SL_TB_DONE: break;
    }
}

bool sl_utf8_ends_whole(const char *s, int64_t n) {
    /* the last lead byte among the last four, and whether its character is all there */
    for (int64_t i = n - 1, k = 1; i >= 0 && k <= 4; i--, k++) {
        const unsigned char c = (unsigned char)s[i];
        if ((c & 0xC0) == 0x80) continue; /* a continuation byte */
        const int64_t need = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
        return k >= need;
    }
    return n <= 0; /* (only continuation bytes: not whole) */
}

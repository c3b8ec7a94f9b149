/*
 * ngram.c — n-gram speculation (see ngram.h).
 */
#include "ngram.h"

#include "core/status.h"

#include <math.h>
#include <string.h>

void sl_spec_init(sl_spec *s, int32_t max, int32_t lookup_min, int32_t lookup_max) {
    *s = (sl_spec){.max = max, .lookup_min = lookup_min, .lookup_max = lookup_max, .k = max, .pred_from = -1};
}

void sl_spec_predict(sl_spec *s, const int32_t *pred, int32_t n_pred, int32_t n_prompt) {
    s->pred = n_pred > 0 ? pred : NULL;
    s->n_pred = n_pred;
    s->n_prompt = n_prompt;
    s->pred_at = 0;
}

/* The prediction's tokens from `from` on into draft (at most kmax); how many. */
static int32_t from_pred(sl_spec *s, int32_t from, int32_t kmax, int32_t *draft) {
    int32_t m = 0;
    while (m < kmax && from + m < s->n_pred) {
        draft[m] = s->pred[from + m];
        m++;
    }
    s->pred_from = m ? from : -1;
    return m;
}

/* The prediction's proposal after h[0, n): the output aligned with its start, or the last n-gram found in it
 * (nearest at or after pred_at, else nearest before); 0 when neither. */
static int32_t propose_pred(sl_spec *s, const int32_t *h, int32_t n, int32_t kmax, int32_t *draft) {
    const int32_t n_out = n - s->n_prompt;
    if (n_out >= 0 && n_out < s->n_pred && memcmp(h + s->n_prompt, s->pred, sizeof(int32_t) * (size_t)n_out) == 0)
        return from_pred(s, n_out, kmax, draft);
    for (int32_t L = s->lookup_max; L >= s->lookup_min; L--) {
        if (n < L || s->n_pred < L + 1) continue;
        const int32_t *suffix = h + n - L;
        int32_t best = -1;
        for (int32_t i = 0; i + L < s->n_pred; i++) {
            if (s->pred[i] != suffix[0] || memcmp(s->pred + i, suffix, sizeof(int32_t) * (size_t)L) != 0) continue;
            best = i;
            if (i + L >= s->pred_at) break; /* (the first at or after where the output was) */
        }
        if (best >= 0) return from_pred(s, best + L, kmax, draft);
    }
    return 0;
}

int32_t sl_spec_propose(sl_spec *s, const int32_t *h, int32_t n, int32_t kmax, int32_t *draft) {
    s->pred_from = -1;
    if (s->max <= 0) return 0;
    if (s->wait > 0) { /* recent proposals missed: wait */
        s->wait--;
        return 0;
    }
    if (kmax > s->k) kmax = s->k;
    if (kmax <= 0) return 0;
    if (s->pred) {
        const int32_t m = propose_pred(s, h, n, kmax, draft);
        if (m > 0) return m;
    }
    for (int32_t L = s->lookup_max; L >= s->lookup_min; L--) {
        if (n < L + 1) continue;
        const int32_t *suffix = h + n - L;
        for (int32_t i = n - L - 1; i >= 0; i--) { /* the latest earlier occurrence */
            if (h[i] != suffix[0] || memcmp(h + i, suffix, sizeof(int32_t) * (size_t)L) != 0) continue;
            int32_t m = 0;
            while (m < kmax && i + L + m < n) {
                draft[m] = h[i + L + m];
                m++;
            }
            return m;
        }
    }
    return 0;
}

void sl_spec_update(sl_spec *s, int32_t n, int32_t kept) {
    if (n <= 0) return;
    if (s->pred_from >= 0) s->pred_at = s->pred_from + kept; /* (the output is there in the prediction now) */
    if (kept == 0) {
        s->k = 1;
        if (s->misses < 5) s->misses++;
        s->wait = (1 << s->misses) - 1;
        return;
    }
    s->misses = 0;
    s->k = kept == n ? 2 * n : kept + 1;
    if (s->k > s->max) s->k = s->max;
}

sl_status sl_spec_draft_vocab(const sl_tokenizer *target, const sl_tokenizer *draft) {
    const int32_t nv = sl_tokenizer_n_vocab(target);
    if (sl_tokenizer_n_vocab(draft) != nv)
        return SL_FAIL(SL_ERR_INVALID, "the draft model's vocabulary has %d tokens, the model's %d: a draft model must "
                       "share the model's vocabulary", sl_tokenizer_n_vocab(draft), nv);
    for (int32_t i = 0; i < nv; i++) {
        size_t la, lb;
        const char *a = sl_tokenizer_token_text(target, i, &la), *b = sl_tokenizer_token_text(draft, i, &lb);
        if (la != lb || (la && memcmp(a, b, la)))
            return SL_FAIL(SL_ERR_INVALID, "the draft model's vocabulary differs from the model's: token %d is '%.*s' "
                           "there and '%.*s' here", i, (int)(lb < 64 ? lb : 64), b ? b : "", (int)(la < 64 ? la : 64),
                           a ? a : "");
    }
    return SL_OK;
}

int32_t sl_spec_draft_pick(const float *lg, int32_t n_vocab, float *prob) {
    int32_t best = 0;
    for (int32_t i = 1; i < n_vocab; i++)
        if (lg[i] > lg[best]) best = i;
    double sum = 0;
    for (int32_t i = 0; i < n_vocab; i++) sum += exp((double)lg[i] - (double)lg[best]);
    *prob = sum > 0 ? (float)(1.0 / sum) : 0.0f;
    return best;
}

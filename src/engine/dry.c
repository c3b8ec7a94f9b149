/*
 * dry.c — DRY's sequence breakers from strings (engine/sampler.h), as
 * llama.cpp derives them from its vocabulary.
 *
 * Every token is read once (its piece with control tokens rendered) and
 * checked against every string: a piece containing the string makes the
 * token a breaker alone (an empty tail); a piece ending with the string's
 * first bytes makes it a head whose tail is the rest of the string,
 * tokenized without BOS or control-token parsing and cut at MAX_TAIL
 * tokens. Identical (head, tail) pairs are kept once. The sequences are
 * sorted by head (stable), which sl_sampler_set_dry_breakers requires.
 */
#include "engine/sampler.h"

#include "core/alloc.h"
#include "core/status.h"
#include "tokenizer/tokenizer.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STR 40  /* bytes of a breaker string looked at */
#define MAX_TAIL 20 /* tokens of a tail */

typedef struct seq {
    int32_t head, off, len; /* tail in the builder's tail array */
    int32_t order;          /* insertion order: the sort is stable */
} seq;

typedef struct builder {
    seq *s;
    int32_t n, n_tail;
    size_t cap, cap_tail;
    int32_t *tail;
} builder;

/* Add (head, tail) unless the head has it already; false when memory ran out. */
static bool add(builder *b, int32_t head, const int32_t *tail, int32_t len) {
    for (int32_t i = b->n - 1; i >= 0 && b->s[i].head == head; i--) /* (a head's sequences are added together) */
        if (b->s[i].len == len && !memcmp(b->tail + b->s[i].off, tail, sizeof *tail * (size_t)len)) return true;
    if (!sl_grow((void **)&b->s, &b->cap, (size_t)b->n + 1, sizeof *b->s) ||
        !sl_grow((void **)&b->tail, &b->cap_tail, (size_t)(b->n_tail + len), sizeof *b->tail))
        return false;
    if (len) memcpy(b->tail + b->n_tail, tail, sizeof *tail * (size_t)len);
    b->s[b->n++] = (seq){.head = head, .off = b->n_tail, .len = len, .order = b->n};
    b->n_tail += len;
    return true;
}

static int by_head(const void *x, const void *y) {
    const seq *a = x, *b = y;
    if (a->head != b->head) return a->head < b->head ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

void sl_dry_breakers_free(sl_dry_breakers *b) {
    if (!b) return;
    sl_free(b->head);
    sl_free(b->off);
    sl_free(b->tail);
    sl_free(b);
}

sl_status sl_dry_breakers_build(const sl_tokenizer *tok, const char *const *strs, const size_t *lens, int n,
                                sl_dry_breakers **out) {
    SL_ASSERT(tok && out && n >= 0);
    *out = NULL;
    for (int i = 0; i < n; i++)
        if (!strs[i] || lens[i] == 0)
            return SL_FAIL(SL_ERR_INVALID, "DRY sequence breaker %d is empty", i);
    const int32_t n_vocab = sl_tokenizer_n_vocab(tok);
    size_t cap = sl_tokenizer_max_piece(tok) + 1;
    char *piece = sl_malloc(cap);
    builder b = {0};
    sl_dry_breakers *r = NULL;
    sl_status st = SL_OK;
    /* each string's tail for each split point, tokenized once: tails[i][k] for the rest after k bytes */
    int32_t *tails[SL_DRY_MAX_BREAKERS][MAX_STR] = {{NULL}};
    size_t n_tails[SL_DRY_MAX_BREAKERS][MAX_STR] = {{0}};
    if (n > SL_DRY_MAX_BREAKERS) {
        st = SL_FAIL(SL_ERR_INVALID, "%d DRY sequence breakers: at most %d", n, SL_DRY_MAX_BREAKERS);
        goto done;
    }
    if (!piece) goto nomem;
    for (int32_t id = 0; id < n_vocab; id++) {
        int64_t len = sl_token_to_piece(tok, id, true, piece, cap);
        if (len < 0) continue;
        if ((size_t)len >= cap) { /* (longer than max_piece said: read it whole) */
            char *bigger = sl_realloc(piece, (size_t)len + 1);
            if (!bigger) goto nomem;
            piece = bigger;
            cap = (size_t)len + 1;
            len = sl_token_to_piece(tok, id, true, piece, cap);
        }
        for (int i = 0; i < n; i++) {
            const size_t sl = lens[i] < MAX_STR ? lens[i] : MAX_STR;
            const char *str = strs[i];
            if (memmem(piece, (size_t)len, str, sl)) {
                if (!add(&b, id, NULL, 0)) goto nomem;
                continue;
            }
            /* the piece ends with the string's first k bytes (k < sl) */
            for (size_t pos = 0; pos < (size_t)len; pos++) {
                const size_t k = (size_t)len - pos;
                if (k >= sl || memcmp(piece + pos, str, k) != 0) continue;
                if (!tails[i][k]) {
                    int32_t *ids = NULL;
                    size_t n_ids = 0;
                    if ((st = sl_tokenize(tok, str + k, sl - k, false, false, &ids, &n_ids)) != SL_OK) goto done;
                    tails[i][k] = ids;
                    n_tails[i][k] = n_ids < MAX_TAIL ? n_ids : MAX_TAIL;
                }
                if (!add(&b, id, tails[i][k], (int32_t)n_tails[i][k])) goto nomem;
            }
        }
    }
    qsort(b.s, (size_t)b.n, sizeof *b.s, by_head);
    r = sl_calloc(1, sizeof *r);
    if (!r) goto nomem;
    r->n = b.n;
    r->head = sl_alloc_array((size_t)b.n + 1, sizeof *r->head);
    r->off = sl_alloc_array((size_t)b.n + 1, sizeof *r->off);
    r->tail = sl_alloc_array((size_t)b.n_tail + 1, sizeof *r->tail);
    if (!r->head || !r->off || !r->tail) goto nomem;
    r->off[0] = 0;
    for (int32_t i = 0; i < b.n; i++) {
        r->head[i] = b.s[i].head;
        if (b.s[i].len) memcpy(r->tail + r->off[i], b.tail + b.s[i].off, sizeof *r->tail * (size_t)b.s[i].len);
        r->off[i + 1] = r->off[i] + b.s[i].len;
    }
    *out = r;
    r = NULL;
    goto done;
nomem:
    st = SL_FAIL(SL_ERR_NOMEM, "DRY sequence breakers: out of memory");
done:
    for (int i = 0; i < n && i < SL_DRY_MAX_BREAKERS; i++)
        for (int k = 0; k < MAX_STR; k++) sl_free(tails[i][k]);
    sl_dry_breakers_free(r);
    sl_free(b.s);
    sl_free(b.tail);
    sl_free(piece);
    return st;
}

sl_status sl_dry_breakers_from_json(const sl_tokenizer *tok, const json_t *a, const char *what, bool allow_empty,
                                    sl_dry_breakers **out) {
    static const char *const def[] = {"\n", ":", "\"", "*"};
    const char *strs[SL_DRY_MAX_BREAKERS];
    size_t lens[SL_DRY_MAX_BREAKERS];
    int n = 0;
    *out = NULL;
    if (!a) {
        for (; n < 4; n++) strs[n] = def[n], lens[n] = strlen(def[n]);
        return sl_dry_breakers_build(tok, strs, lens, n, out);
    }
    if (!json_is_array(a) || json_array_size(a) > SL_DRY_MAX_BREAKERS || (!allow_empty && json_array_size(a) == 0))
        return SL_FAIL(SL_ERR_INVALID, "'%s' must be a%s array of at most %d strings", what,
                       allow_empty ? "" : " non-empty", SL_DRY_MAX_BREAKERS);
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *x = json_array_get(a, i);
        if (!json_is_string(x) || json_string_length(x) == 0)
            return SL_FAIL(SL_ERR_INVALID, "'%s[%zu]' must be a non-empty string", what, i);
        strs[n] = json_string_value(x);
        lens[n++] = json_string_length(x);
    }
    return n ? sl_dry_breakers_build(tok, strs, lens, n, out) : SL_OK;
}

/*
 * spm.c — SentencePiece-style bigram merging of one text fragment, as
 * llama.cpp's llm_tokenizer_spm_session does it.
 *
 * Design: the fragment is cut into UTF-8 characters (the length comes from
 * the lead byte alone, clipped at the end; nothing is validated), kept as a
 * doubly linked list of symbols over the fragment's bytes. Every adjacent
 * pair whose concatenation is a vocabulary token goes into a binary max-heap
 * keyed by (token score, then leftmost symbol). Popping the best pair merges
 * the right symbol into the left one and queues the two new pairs around it;
 * entries made stale by earlier merges are recognised by their byte size and
 * skipped. Finally each symbol gives its token, or its bytes as byte-fallback
 * tokens when its text is not in the vocabulary.
 *
 * Cost: O(n log n) heap operations and hash look-ups for n characters; at
 * most 3n heap entries ever exist (n - 1 seeds, 2 per merge).
 *
 * Invariants: symbols are contiguous in the fragment, so a pair's text is
 * s[left.off .. left.off + left.n + right.n); a merged-away symbol has n = 0.
 */
#include "vocab.h"

#include "core/alloc.h"
#include "core/status.h"

#include <string.h>

typedef struct sym {
    uint32_t off, n;  /* bytes of the fragment */
    int32_t prev, next;
} sym;

typedef struct bigram {
    float score;
    int32_t left, right;
    uint32_t size;    /* bytes of left + right when queued */
} bigram;

typedef struct heap {
    bigram *v;
    size_t n, cap;
} heap;

sl_status idvec_push(idvec *a, int32_t id) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        int32_t *v = sl_realloc(a->v, cap * sizeof *v);
        if (!v) return SL_FAIL(SL_ERR_NOMEM, "token id array of %zu entries", cap);
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = id;
    return SL_OK;
}

/* a pops before b: higher score first, then the leftmost pair */
static bool before(const bigram *a, const bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(heap *h, bigram b) {
    SL_ASSERT(h->n < h->cap);
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&b, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = b;
}

static bigram heap_pop(heap *h) {
    bigram top = h->v[0];
    bigram last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && before(&h->v[c + 1], &h->v[c])) c++;
        if (!before(&h->v[c], &last)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0) h->v[i] = last;
    return top;
}

static void try_pair(const sl_tokenizer *t, const char *s, const sym *sy, heap *h, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    uint32_t size = sy[left].n + sy[right].n;
    int32_t id = tok_find(t, s + sy[left].off, size);
    if (id < 0) return;
    bigram b = {t->tok[id].score, left, right, size};
    heap_push(h, b);
}

static sl_status emit_bytes(const sl_tokenizer *t, const char *p, uint32_t n, idvec *out) {
    for (uint32_t j = 0; j < n; j++) {
        unsigned char b = (unsigned char)p[j];
        int32_t id = t->byte_tok[b] >= 0 ? t->byte_tok[b] : t->unk;
        if (id < 0)
            return SL_FAIL(SL_ERR_UNSUPPORTED,
                           "byte 0x%02X is not in the vocabulary (no <0x%02X> token) and there is no unknown token",
                           b, b);
        sl_status st = idvec_push(out, id);
        if (st) return st;
    }
    return SL_OK;
}

sl_status spm_encode(const sl_tokenizer *t, const char *s, size_t n, idvec *out) {
    sl_status st = SL_OK;
    sym *sy = NULL;
    heap h = {0};
    if (n == 0) return SL_OK;
    if (n > UINT32_MAX / 4) return SL_FAIL(SL_ERR_RANGE, "text fragment of %zu bytes is too long", n);

    size_t n_sym = 0;
    for (size_t off = 0; off < n; n_sym++) off += utf8_len_lead((unsigned char)s[off]);
    sy = sl_alloc_array(n_sym, sizeof *sy);
    h.cap = 3 * n_sym;
    h.v = sl_alloc_array(h.cap, sizeof *h.v);
    if (!sy || !h.v) {
        st = SL_FAIL(SL_ERR_NOMEM, "SPM work space for %zu characters", n_sym);
        goto fail;
    }
    size_t off = 0;
    for (size_t i = 0; i < n_sym; i++) {
        uint32_t len = utf8_len_lead((unsigned char)s[off]);
        if (len > n - off) len = (uint32_t)(n - off);
        sy[i].off = (uint32_t)off;
        sy[i].n = len;
        sy[i].prev = (int32_t)i - 1;
        sy[i].next = i + 1 < n_sym ? (int32_t)i + 1 : -1;
        off += len;
    }

    for (size_t i = 1; i < n_sym; i++) try_pair(t, s, sy, &h, (int32_t)i - 1, (int32_t)i);

    while (h.n > 0) {
        bigram b = heap_pop(&h);
        sym *l = &sy[b.left], *r = &sy[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) sy[r->next].prev = b.left;
        try_pair(t, s, sy, &h, l->prev, b.left);
        try_pair(t, s, sy, &h, b.left, l->next);
    }

    for (int32_t i = 0; i != -1; i = sy[i].next) {
        int32_t id = tok_find(t, s + sy[i].off, sy[i].n);
        st = id >= 0 ? idvec_push(out, id) : emit_bytes(t, s + sy[i].off, sy[i].n, out);
        if (st) goto fail;
    }

fail:
    sl_free(sy);
    sl_free(h.v);
    return st;
}

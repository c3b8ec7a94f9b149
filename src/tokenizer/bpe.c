/*
 * bpe.c — byte-level BPE (tokenizer.ggml.model = "gpt2"), as llama.cpp's
 * llm_tokenizer_bpe_session does it.
 *
 * Encoding one raw fragment:
 *   1. read it as llama.cpp does (malformed UTF-8 → U+FFFD), then NFC when
 *      the pre-tokenizer's model normalizes (Qwen2);
 *   2. split it into words with the pre-tokenizer regexes (pretok.c);
 *   3. map each byte of a word to its GPT-2 "byte-level" character (the 188
 *      printable Latin-1 bytes stand for themselves, the other 68 are
 *      U+0100 + k in byte order), giving a word in the vocabulary's
 *      alphabet;
 *   4. if the pre-tokenizer ignores merges (Llama 3) and the whole word is a
 *      token, take it; else start from one symbol per character and merge
 *      adjacent pairs by rank: a binary heap of (rank, left position)
 *      pops the lowest rank, leftmost first; entries made stale by earlier
 *      merges are recognised by their byte size and skipped;
 *   5. each final symbol gives its token; a symbol that is not a token
 *      gives, for each of its bytes, the token whose text is that single
 *      byte, if any (llama.cpp's fallback, usually nothing).
 * Merges are looked up by text: a hash map keyed by the pair's
 * concatenation (which is contiguous in the word) and the split point.
 *
 * Decoding a token text maps each byte-level character back to its byte;
 * characters outside the mapping pass through as UTF-8.
 */
#include "vocab.h"

#include "core/alloc.h"
#include "core/status.h"
#include "pretok.h"

#include <inttypes.h>
#include <string.h>
#include <utf8proc.h>

#define KEY_MERGES "tokenizer.ggml.merges"

/* ---- UTF-8 ------------------------------------------------------------- */

uint32_t utf8_decode_lenient(const unsigned char *s, size_t n, size_t *len) {
    unsigned char c = s[0];
    size_t k;
    uint32_t cp;
    if (c < 0x80) {
        *len = 1;
        return c;
    }
    if (!(c & 0x40)) goto bad;          /* continuation byte */
    if (!(c & 0x20)) k = 1, cp = c & 0x1F;
    else if (!(c & 0x10)) k = 2, cp = c & 0x0F;
    else if (!(c & 0x08)) k = 3, cp = c & 0x07;
    else goto bad;
    if (k >= n) goto bad;
    for (size_t i = 1; i <= k; i++) {
        if ((s[i] & 0xC0) != 0x80) goto bad;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    *len = k + 1;
    return cp;
bad:
    *len = 1;
    return 0xFFFD;
}

size_t utf8_encode(uint32_t cp, char *dst) {
    unsigned char *d = (unsigned char *)dst;
    if (cp < 0x80) {
        d[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (unsigned char)(0xC0 | cp >> 6);
        d[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (unsigned char)(0xE0 | cp >> 12);
        d[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        d[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (unsigned char)(0xF0 | cp >> 18);
    d[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    d[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    d[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- GPT-2 byte ↔ character mapping -------------------------------------- */

static bool byte_printable(unsigned b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE; }

/* code point standing for byte b */
static uint32_t byte_to_cp(unsigned b) {
    if (byte_printable(b)) return b;
    uint32_t k = 0; /* rank of b among the non-printable bytes */
    for (unsigned c = 0; c < b; c++) k += !byte_printable(c);
    return 0x100 + k;
}

typedef struct byte_maps {
    char enc[256][2];     /* UTF-8 of each byte's character (1 or 2 bytes) */
    uint8_t enc_len[256];
    int16_t dec[0x144];   /* code point → byte, -1 none */
} byte_maps;

static const byte_maps *maps(void) {
    static byte_maps m;
    static bool ready; /* built from constants only: racing builders write the same bytes */
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        byte_maps t;
        memset(t.dec, 0xff, sizeof t.dec);
        for (unsigned b = 0; b < 256; b++) {
            uint32_t cp = byte_to_cp(b);
            char u[4];
            t.enc_len[b] = (uint8_t)utf8_encode(cp, u);
            memcpy(t.enc[b], u, t.enc_len[b]);
            t.dec[cp] = (int16_t)b;
        }
        memcpy(&m, &t, sizeof m);
        __atomic_store_n(&ready, true, __ATOMIC_RELEASE);
    }
    return &m;
}

uint32_t bpe_decode_piece(const char *s, uint32_t n, char *dst) {
    const byte_maps *m = maps();
    uint32_t k = 0;
    for (uint32_t i = 0; i < n;) {
        size_t len;
        uint32_t cp = utf8_decode_lenient((const unsigned char *)s + i, n - i, &len);
        if (cp < 0x144 && m->dec[cp] >= 0) dst[k++] = (char)m->dec[cp];
        else {
            memcpy(dst + k, s + i, len); /* not a byte-level character: keep it */
            k += (uint32_t)len;
        }
        i += (uint32_t)len;
    }
    return k;
}

/* ---- merges --------------------------------------------------------------- */

static uint64_t merge_hash(const char *s, size_t n, uint32_t left_len) {
    uint64_t h = tok_hash(s, n) ^ ((uint64_t)left_len * 0x9E3779B97F4A7C15ull);
    return h ^ (h >> 31);
}

/* rank of merging s[0..left_len) with s[left_len..n), or -1 */
static int32_t merge_rank(const sl_tokenizer *t, const char *s, size_t n, uint32_t left_len) {
    if (!t->n_merges) return -1;
    for (uint64_t i = merge_hash(s, n, left_len) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        int32_t k = t->merge_map[i];
        if (k < 0) return -1;
        const bpe_merge *m = &t->merges[k];
        if (m->left_len == left_len && m->left_len + m->right_len == n && memcmp(t->merge_text + m->off, s, n) == 0)
            return m->rank;
    }
}

void bpe_free(sl_tokenizer *t) {
    sl_free(t->merges);
    sl_free(t->merge_text);
    sl_free(t->merge_map);
    pretok_destroy(t->pre_tok);
    t->merges = NULL;
    t->merge_text = NULL;
    t->merge_map = NULL;
    t->pre_tok = NULL;
}

sl_status bpe_load(sl_tokenizer *t, const sl_gguf *g) {
    sl_status st;
    const char *path = sl_gguf_path(g);
    const sl_gguf_kv *kv;
    sl_gguf_vtype et;
    uint64_t n;
    if (!sl_gguf_find(g, KEY_MERGES))
        return SL_FAIL(SL_ERR_FORMAT, "%s: %s is missing (a gpt2 vocabulary needs its BPE merges)", path, KEY_MERGES);
    if ((st = sl_gguf_get_arr(g, KEY_MERGES, &et, &n, &kv))) return st;
    if (et != SL_GGUF_STRING)
        return SL_FAIL(SL_ERR_FORMAT, "%s: %s is an array of %s, expected strings", path, KEY_MERGES,
                       sl_vtype_name(et));
    if (n > INT32_MAX / 4)
        return SL_FAIL(SL_ERR_FORMAT, "%s: %s has %" PRIu64 " entries (at most %d)", path, KEY_MERGES, n,
                       INT32_MAX / 4);
    size_t bytes = 0;
    for (uint64_t i = 0; i < n; i++) {
        sl_str s = sl_gguf_arr_str(kv, i);
        if (s.len > (1u << 20))
            return SL_FAIL(SL_ERR_FORMAT, "%s: %s[%" PRIu64 "] is %" PRIu64 " bytes long", path, KEY_MERGES, i, s.len);
        bytes += s.len;
    }
    if (bytes > UINT32_MAX) return SL_FAIL(SL_ERR_FORMAT, "%s: %s holds %zu bytes of text", path, KEY_MERGES, bytes);
    uint64_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    t->merges = sl_alloc_array(n ? n : 1, sizeof *t->merges);
    t->merge_text = sl_malloc(bytes ? bytes : 1);
    t->merge_map = sl_alloc_array(cap, sizeof *t->merge_map);
    if (!t->merges || !t->merge_text || !t->merge_map)
        return SL_FAIL(SL_ERR_NOMEM, "BPE merges (%" PRIu64 " entries, %zu bytes)", n, bytes);
    memset(t->merge_map, 0xff, cap * sizeof *t->merge_map);
    t->merge_mask = cap - 1;

    uint32_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        sl_str s = sl_gguf_arr_str(kv, i);
        /* "left right": split at the first space after the first byte, as llama.cpp
         * does; an entry without one can never apply */
        const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', s.len - 1) : NULL;
        if (!sp || sp + 1 == s.ptr + s.len) continue;
        uint32_t ll = (uint32_t)(sp - s.ptr), rl = (uint32_t)(s.len - ll - 1);
        char *dst = t->merge_text + off;
        memcpy(dst, s.ptr, ll);
        memcpy(dst + ll, sp + 1, rl);
        /* the first occurrence of a pair keeps its rank */
        if (merge_rank(t, dst, ll + rl, ll) >= 0) continue;
        bpe_merge *m = &t->merges[t->n_merges];
        *m = (bpe_merge){off, ll, rl, (int32_t)i};
        for (uint64_t h = merge_hash(dst, ll + rl, ll) & t->merge_mask;; h = (h + 1) & t->merge_mask) {
            if (t->merge_map[h] < 0) {
                t->merge_map[h] = (int32_t)t->n_merges;
                break;
            }
        }
        t->n_merges++;
        off += ll + rl;
    }
    return pretok_create(t->pre, &t->pre_tok);
}

/* ---- encoding ------------------------------------------------------------- */

typedef struct sym {
    uint32_t off, n; /* bytes of the encoded word */
    int32_t prev, next;
} sym;

typedef struct bigram {
    int32_t rank;
    int32_t left, right;
    uint32_t size;   /* bytes of left + right when queued */
} bigram;

/* Work space reused across the words of one call. */
typedef struct bpe_ws {
    char *clean;     /* the fragment as valid UTF-8 */
    size_t clean_cap;
    int32_t *cps;    /* NFC scratch (code points) */
    size_t cps_cap;
    char *word;      /* one word in byte-level characters */
    size_t word_cap;
    sym *sy;
    size_t sy_cap;
    bigram *heap;
    size_t heap_n, heap_cap;
    spanvec pieces, tmp;
} bpe_ws;

static sl_status grow(void **p, size_t *cap, size_t need, size_t elem, const char *what) {
    if (need <= *cap) return SL_OK;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = sl_alloc_array(c, elem); /* contents need not survive */
    if (!q) return SL_FAIL(SL_ERR_NOMEM, "%s (%zu entries)", what, c);
    sl_free(*p);
    *p = q;
    *cap = c;
    return SL_OK;
}

/* a pops before b: lower rank first, then the leftmost pair */
static bool before(const bigram *a, const bigram *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(bpe_ws *w, bigram b) {
    SL_ASSERT(w->heap_n < w->heap_cap);
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(&b, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = b;
}

static bigram heap_pop(bpe_ws *w) {
    bigram top = w->heap[0];
    bigram last = w->heap[--w->heap_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= w->heap_n) break;
        if (c + 1 < w->heap_n && before(&w->heap[c + 1], &w->heap[c])) c++;
        if (!before(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (w->heap_n > 0) w->heap[i] = last;
    return top;
}

static void try_pair(const sl_tokenizer *t, bpe_ws *w, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const sym *l = &w->sy[left], *r = &w->sy[right];
    int32_t rank = merge_rank(t, w->word + l->off, l->n + r->n, l->n);
    if (rank < 0) return;
    heap_push(w, (bigram){rank, left, right, l->n + r->n});
}

static sl_status emit_symbol(const sl_tokenizer *t, const char *s, uint32_t n, idvec *out) {
    int32_t id = tok_find(t, s, n);
    if (id >= 0) return idvec_push(out, id);
    for (uint32_t j = 0; j < n; j++) { /* llama.cpp: the single-byte tokens, if any */
        int32_t b = tok_find(t, s + j, 1);
        sl_status st = b >= 0 ? idvec_push(out, b) : SL_OK;
        if (st) return st;
    }
    return SL_OK;
}

/* BPE-merge one word (already in byte-level characters) into `out`. */
static sl_status encode_word(const sl_tokenizer *t, bpe_ws *w, size_t n, idvec *out) {
    sl_status st;
    if (t->ignore_merges) {
        int32_t id = tok_find(t, w->word, n);
        if (id >= 0) return idvec_push(out, id);
    }
    size_t n_sym = 0;
    for (size_t off = 0; off < n; n_sym++) off += utf8_len_lead((unsigned char)w->word[off]);
    if ((st = grow((void **)&w->sy, &w->sy_cap, n_sym, sizeof *w->sy, "BPE symbols")) ||
        (st = grow((void **)&w->heap, &w->heap_cap, 3 * n_sym, sizeof *w->heap, "BPE merge queue")))
        return st;
    size_t off = 0;
    for (size_t i = 0; i < n_sym; i++) {
        uint32_t len = utf8_len_lead((unsigned char)w->word[off]);
        if (len > n - off) len = (uint32_t)(n - off);
        w->sy[i] = (sym){(uint32_t)off, len, (int32_t)i - 1, i + 1 < n_sym ? (int32_t)i + 1 : -1};
        off += len;
    }
    w->heap_n = 0;
    for (size_t i = 1; i < n_sym; i++) try_pair(t, w, (int32_t)i - 1, (int32_t)i);
    while (w->heap_n > 0) {
        bigram b = heap_pop(w);
        sym *l = &w->sy[b.left], *r = &w->sy[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* stale */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) w->sy[r->next].prev = b.left;
        try_pair(t, w, l->prev, b.left);
        try_pair(t, w, b.left, l->next);
    }
    for (int32_t i = 0; i != -1; i = w->sy[i].next)
        if ((st = emit_symbol(t, w->word + w->sy[i].off, w->sy[i].n, out))) return st;
    return SL_OK;
}

/* s[0..n) as valid UTF-8 into w->clean (llama.cpp's reading: malformed
 * sequences → U+FFFD; code points it would then fail to encode, surrogates
 * and > U+10FFFF, → U+FFFD as well). Returns the length. */
static sl_status sanitize(bpe_ws *w, const char *s, size_t n, size_t *out_n) {
    if (n > (SIZE_MAX - 4) / 3) return SL_FAIL(SL_ERR_RANGE, "text fragment of %zu bytes is too long", n);
    sl_status st = grow((void **)&w->clean, &w->clean_cap, 3 * n + 4, 1, "UTF-8 text");
    if (st) return st;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t len;
        uint32_t cp = utf8_decode_lenient((const unsigned char *)s + i, n - i, &len);
        if ((cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) cp = 0xFFFD;
        k += utf8_encode(cp, w->clean + k);
        i += len;
    }
    *out_n = k;
    return SL_OK;
}

/* NFC of w->clean[0..*n) in place (w->clean grows as needed). */
static sl_status nfc(bpe_ws *w, size_t *n) {
    size_t i = 0;
    while (i < *n && (unsigned char)w->clean[i] < 0x80) i++;
    if (i == *n) return SL_OK; /* ASCII is NFC */
    const utf8proc_option_t opt = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    size_t need = *n + 16;
    for (;;) {
        /* one spare entry: utf8proc_reencode writes a NUL after the UTF-8 */
        sl_status st = grow((void **)&w->cps, &w->cps_cap, need + 1, sizeof *w->cps, "NFC code points");
        if (st) return st;
        utf8proc_ssize_t r = utf8proc_decompose((const utf8proc_uint8_t *)w->clean, (utf8proc_ssize_t)*n,
                                                w->cps, (utf8proc_ssize_t)(w->cps_cap - 1), opt);
        if (r < 0) return SL_FAIL(SL_ERR_INVALID, "NFC normalization: %s", utf8proc_errmsg(r));
        if ((size_t)r > w->cps_cap - 1) {
            need = (size_t)r;
            continue;
        }
        /* re-encoded over the code points' own storage: 4 bytes each is room enough */
        utf8proc_ssize_t m = utf8proc_reencode(w->cps, r, opt);
        if (m < 0) return SL_FAIL(SL_ERR_INVALID, "NFC normalization: %s", utf8proc_errmsg(m));
        if ((st = grow((void **)&w->clean, &w->clean_cap, (size_t)m + 4, 1, "NFC text"))) return st;
        memcpy(w->clean, w->cps, (size_t)m);
        *n = (size_t)m;
        return SL_OK;
    }
}

sl_status bpe_encode(const sl_tokenizer *t, const char *s, size_t n, idvec *out) {
    sl_status st;
    bpe_ws w = {0};
    const byte_maps *m = maps();
    size_t len = 0;
    if ((st = sanitize(&w, s, n, &len))) goto fail;
    if (t->nfc && (st = nfc(&w, &len))) goto fail;
    if ((st = pretok_split(t->pre_tok, w.clean, len, &w.pieces, &w.tmp))) goto fail;
    for (size_t p = 0; p < w.pieces.n; p++) {
        span sp = w.pieces.v[p];
        if (sp.len > INT32_MAX / 4) { /* symbol offsets and indices are 32-bit */
            st = SL_FAIL(SL_ERR_RANGE, "a pre-tokenized word of %zu bytes is too long", sp.len);
            goto fail;
        }
        if ((st = grow((void **)&w.word, &w.word_cap, 2 * sp.len, 1, "BPE word"))) goto fail;
        size_t k = 0;
        for (size_t i = 0; i < sp.len; i++) {
            unsigned char b = (unsigned char)w.clean[sp.off + i];
            memcpy(w.word + k, m->enc[b], m->enc_len[b]);
            k += m->enc_len[b];
        }
        if ((st = encode_word(t, &w, k, out))) goto fail;
    }
fail:
    sl_free(w.clean);
    sl_free(w.cps);
    sl_free(w.word);
    sl_free(w.sy);
    sl_free(w.heap);
    sl_free(w.pieces.v);
    sl_free(w.tmp.v);
    return st;
}

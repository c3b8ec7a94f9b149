/*
 * wpm.c — WordPiece (tokenizer.ggml.model = "bert"): Hugging Face's
 * BertNormalizer + BertPreTokenizer + WordPiece, which llama.cpp's
 * llm_tokenizer_wpm_session follows on vocabularies converted by its
 * convert script (a word-initial piece "x" is stored as "▁x", a
 * continuation "##x" as "x").
 *
 * Per code point of the fragment (malformed UTF-8 reads as U+FFFD):
 *   - NUL, U+FFFD and control characters (category C*, except \t \n \r)
 *     are dropped; \t \n \r and separators (Z*) end the current word;
 *   - CJK ideographs become words of their own;
 *   - with strip_accents the character is decomposed (NFD) and its
 *     non-spacing marks (Mn) dropped; with lowercase each remaining
 *     character is lowercased (simple case mapping);
 *   - punctuation (ASCII punctuation and symbols, Unicode P*) becomes a word
 *     of its own; anything else extends the current word.
 * Each word is then matched greedily, longest piece first, as "▁" + word
 * against the vocabulary; a word with a position no piece matches, or
 * longer than 100 characters, becomes the unknown token.
 */
#include "vocab.h"

#include "core/alloc.h"
#include "core/status.h"

#include <string.h>
#include <utf8proc.h>

#define MAX_WORD_CHARS 100 /* WordPiece max_input_chars_per_word */

static bool is_control(uint32_t cp) {
    if (cp == '\t' || cp == '\n' || cp == '\r') return false;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CS ||
           c == UTF8PROC_CATEGORY_CO || c == UTF8PROC_CATEGORY_CN;
}

static bool is_space(uint32_t cp) {
    if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r') return true;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

static bool is_punct(uint32_t cp) {
    if (cp < 0x80) return (cp >= 0x21 && cp <= 0x2F) || (cp >= 0x3A && cp <= 0x40) || (cp >= 0x5B && cp <= 0x60) ||
                          (cp >= 0x7B && cp <= 0x7E);
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

/* Hugging Face's is_chinese_char ranges */
static bool is_cjk(uint32_t cp) {
    return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF) ||
           (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F) ||
           (cp >= 0x2B920 && cp <= 0x2CEAF) || (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

typedef struct wbuf {
    char *v;     /* "▁" + the current word */
    size_t n, cap;
    size_t n_chars;
} wbuf;

static const char SPACE_MARK[3] = {'\xe2', '\x96', '\x81'}; /* U+2581 */

static sl_status wbuf_put(wbuf *w, uint32_t cp) {
    if (w->n + 4 > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        char *v = sl_realloc(w->v, cap);
        if (!v) return SL_FAIL(SL_ERR_NOMEM, "WordPiece word (%zu bytes)", cap);
        w->v = v;
        w->cap = cap;
    }
    if (w->n == 0) {
        memcpy(w->v, SPACE_MARK, 3);
        w->n = 3;
    }
    w->n += utf8_encode(cp, w->v + w->n);
    w->n_chars++;
    return SL_OK;
}

/* Greedy longest-match of the word in w (then emptied) into out. */
static sl_status flush_word(const sl_tokenizer *t, wbuf *w, idvec *out) {
    sl_status st = SL_OK;
    if (w->n == 0) return SL_OK;
    size_t n = w->n, start = out->n;
    bool ok = w->n_chars <= MAX_WORD_CHARS;
    for (size_t i = 0; ok && i < n;) {
        size_t j = i + t->max_token_len < n ? i + t->max_token_len : n;
        int32_t id = -1;
        for (; j > i; j--) {
            if (j < n && ((unsigned char)w->v[j] & 0xC0) == 0x80) continue; /* inside a character */
            if ((id = tok_find(t, w->v + i, j - i)) >= 0) break;
        }
        if (id < 0) {
            ok = false;
            break;
        }
        if ((st = idvec_push(out, id))) goto fail;
        i = j;
    }
    if (!ok) {
        out->n = start;
        if (t->unk < 0) {
            st = SL_FAIL(SL_ERR_UNSUPPORTED, "the word '%.*s' has no WordPiece tokenization and there is no unknown "
                         "token (tokenizer.ggml.unknown_token_id)", (int)(n > 64 ? 64 : n), w->v);
            goto fail;
        }
        st = idvec_push(out, t->unk);
    }
fail:
    w->n = 0;
    w->n_chars = 0;
    return st;
}

sl_status wpm_encode(const sl_tokenizer *t, const char *s, size_t n, idvec *out) {
    sl_status st = SL_OK;
    wbuf w = {0};
    for (size_t i = 0; i < n;) {
        size_t len;
        uint32_t cp = utf8_decode_lenient((const unsigned char *)s + i, n - i, &len);
        i += len;
        if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
        if (cp == 0 || cp == 0xFFFD || is_control(cp)) continue;
        if (is_space(cp)) {
            if ((st = flush_word(t, &w, out))) goto fail;
            continue;
        }
        utf8proc_int32_t norm[8];
        utf8proc_ssize_t nn = 1;
        norm[0] = (utf8proc_int32_t)cp;
        if (t->strip_accents) {
            int bc = 0;
            nn = utf8proc_decompose_char((utf8proc_int32_t)cp, norm, 8, UTF8PROC_DECOMPOSE, &bc);
            if (nn < 0 || nn > 8) { /* cannot happen for a valid code point; keep it whole */
                nn = 1;
                norm[0] = (utf8proc_int32_t)cp;
            }
        }
        bool cjk = is_cjk(cp);
        if (cjk && (st = flush_word(t, &w, out))) goto fail;
        for (utf8proc_ssize_t k = 0; k < nn; k++) {
            utf8proc_int32_t c = norm[k];
            if (t->strip_accents && utf8proc_category(c) == UTF8PROC_CATEGORY_MN) continue;
            if (t->lowercase) c = utf8proc_tolower(c);
            if (!cjk && is_punct((uint32_t)c)) {
                if ((st = flush_word(t, &w, out)) || (st = wbuf_put(&w, (uint32_t)c)) ||
                    (st = flush_word(t, &w, out)))
                    goto fail;
                continue;
            }
            if ((st = wbuf_put(&w, (uint32_t)c))) goto fail;
        }
        if (cjk && (st = flush_word(t, &w, out))) goto fail;
    }
    st = flush_word(t, &w, out);
fail:
    sl_free(w.v);
    return st;
}

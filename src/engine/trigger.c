/*
 * trigger.c — what wakes a lazy grammar (see trigger.h), on PCRE2.
 *
 * As llama.cpp builds them: the full patterns are tried first, in order, each
 * against the whole output; then words (quoted) and patterns together, as one
 * expression ^[\s\S]*?(w1|p1|...)[\s\S]* — the leftmost place where any of
 * them matches.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "trigger.h"

#include "core/alloc.h"
#include "core/status.h"
#include "core/strbuf.h"

#include <pcre2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sl_triggers {
    _Atomic int refs;
    int32_t tokens[SL_MAX_TRIGGERS];
    int n_tokens;
    pcre2_code *full[SL_MAX_TRIGGERS];
    int n_full;
    pcre2_code *anywhere; /* NULL: no words or patterns */
};

static const char *const kind_names[] = {"token", "word", "pattern", "pattern_full", "word at start"};

/* Word w[0, n) as a regular expression that matches it: every byte but letters, digits and UTF-8 quoted. */
static bool quote_word(sl_strbuf *b, const char *w, size_t n) {
    bool ok = true;
    for (size_t k = 0; k < n; k++) {
        const unsigned char ch = (unsigned char)w[k];
        const bool plain = ch >= 0x80 || (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z');
        if (!plain) ok &= sl_strbuf_add(b, "\\", 1);
        ok &= sl_strbuf_add(b, (const char *)&ch, 1);
    }
    return ok;
}

static pcre2_code *compile_re(const char *re, size_t len, uint32_t options, int which, const char *kind) {
    int err;
    PCRE2_SIZE off;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, len, options, &err, &off, NULL);
    if (!c) {
        char msg[160];
        pcre2_get_error_message(err, (PCRE2_UCHAR *)msg, sizeof msg);
        if (which >= 0) SL_FAIL(SL_ERR_INVALID, "trigger %d (%s): %s at offset %zu", which, kind, msg, (size_t)off);
        else SL_FAIL(SL_ERR_INVALID, "the triggers' %s together: %s", kind, msg);
        return NULL;
    }
    (void)pcre2_jit_compile(c, PCRE2_JIT_COMPLETE); /* (without a JIT the interpreter runs it) */
    return c;
}

sl_status sl_triggers_create(const sl_trigger_def *defs, int n, sl_triggers **out) {
    *out = NULL;
    if (n < 1 || n > SL_MAX_TRIGGERS) return SL_FAIL(SL_ERR_INVALID, "%d triggers: 1 to %d", n, SL_MAX_TRIGGERS);
    sl_triggers *t = sl_calloc(1, sizeof *t);
    if (!t) return SL_FAIL(SL_ERR_NOMEM, "out of memory");
    atomic_init(&t->refs, 1);
    sl_strbuf any = {0};
    bool ok = sl_strbuf_add(&any, "^[\\s\\S]*?(", 10);
    int n_any = 0;
    sl_status st = SL_OK;
    for (int i = 0; i < n && !st; i++) {
        const sl_trigger_def *d = &defs[i];
        if (d->kind == SL_TRIG_TOKEN) {
            t->tokens[t->n_tokens++] = d->token;
            continue;
        }
        const size_t len = d->text ? strlen(d->text) : 0;
        if (len == 0 || len > SL_TRIGGER_MAX_BYTES) {
            st = SL_FAIL(SL_ERR_INVALID, "trigger %d (%s): 1 to %d bytes", i, kind_names[d->kind], SL_TRIGGER_MAX_BYTES);
            break;
        }
        if (d->kind == SL_TRIG_PATTERN_FULL || d->kind == SL_TRIG_WORD_AT_START) {
            sl_strbuf w = {0};
            bool wok = d->kind == SL_TRIG_PATTERN_FULL ? sl_strbuf_add(&w, d->text, len)
                                                      : sl_strbuf_add(&w, "\\s*(", 4) && quote_word(&w, d->text, len) &&
                                                            sl_strbuf_add(&w, ")[\\s\\S]*", 8);
            if (!wok) st = SL_FAIL(SL_ERR_NOMEM, "out of memory");
            else if (!(t->full[t->n_full] = compile_re(w.p, w.n, PCRE2_ANCHORED | PCRE2_ENDANCHORED, i, kind_names[d->kind])))
                st = SL_ERR_INVALID;
            else t->n_full++;
            free(w.p);
            continue;
        }
        if (d->kind == SL_TRIG_PATTERN) { /* checked alone, so an error names this one */
            pcre2_code *c = compile_re(d->text, len, 0, i, "pattern");
            if (!c) {
                st = SL_ERR_INVALID;
                break;
            }
            pcre2_code_free(c);
        }
        if (n_any++) ok &= sl_strbuf_add(&any, "|", 1);
        ok &= sl_strbuf_add(&any, "(?:", 3);
        if (d->kind == SL_TRIG_PATTERN) {
            ok &= sl_strbuf_add(&any, d->text, len);
        } else {
            ok &= quote_word(&any, d->text, len);
        }
        ok &= sl_strbuf_add(&any, ")", 1);
    }
    ok &= sl_strbuf_add(&any, ")[\\s\\S]*", 8);
    if (!st && !ok) st = SL_FAIL(SL_ERR_NOMEM, "out of memory");
    if (!st && n_any && !(t->anywhere = compile_re(any.p, any.n, 0, -1, "words and patterns"))) st = SL_ERR_INVALID;
    free(any.p);
    if (st) {
        sl_triggers_release(t);
        return st;
    }
    *out = t;
    return SL_OK;
}

sl_triggers *sl_triggers_retain(sl_triggers *t) {
    if (t) atomic_fetch_add(&t->refs, 1);
    return t;
}

void sl_triggers_release(sl_triggers *t) {
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1) return;
    for (int i = 0; i < t->n_full; i++) pcre2_code_free(t->full[i]);
    pcre2_code_free(t->anywhere);
    sl_free(t);
}

bool sl_triggers_token(const sl_triggers *t, int32_t id) {
    for (int i = 0; i < t->n_tokens; i++)
        if (t->tokens[i] == id) return true;
    return false;
}

/* Does re match subject[0, n)? The start of its first capturing group that matched something, else 0;
 * -1: no match (or PCRE2 gave up: its match limit). */
static int64_t match_start(const pcre2_code *re, const char *subject, size_t n) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) return -1;
    int64_t r = -1;
    const int rc = pcre2_match(re, (PCRE2_SPTR)subject, n, 0, 0, md, NULL);
    if (rc > 0) {
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        r = 0;
        for (int g = 1; g < rc; g++)
            if (ov[2 * g] != PCRE2_UNSET && ov[2 * g + 1] > ov[2 * g]) {
                r = (int64_t)ov[2 * g];
                break;
            }
    }
    pcre2_match_data_free(md);
    return r;
}

int64_t sl_triggers_match(const sl_triggers *t, const char *text, size_t n) {
    if (n <= SL_TRIGGER_WINDOW)
        for (int i = 0; i < t->n_full; i++) {
            const int64_t r = match_start(t->full[i], text, n);
            if (r >= 0) return r;
        }
    if (!t->anywhere) return -1;
    const size_t from = n > SL_TRIGGER_WINDOW ? n - SL_TRIGGER_WINDOW : 0;
    const int64_t r = match_start(t->anywhere, text + from, n - from);
    return r < 0 ? -1 : r + (int64_t)from;
}

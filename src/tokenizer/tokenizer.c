/*
 * tokenizer.c — the vocabulary, special-token handling, token pieces and the
 * streaming detokenizer; the per-type fragment encoders are spm.c, bpe.c
 * (with pretok.c) and wpm.c.
 *
 * Design: sl_tokenizer_create copies everything it needs out of the GGUF
 * metadata (the file may be closed afterwards): token texts into one blob,
 * a hash map text → id, scores, llama.cpp-style attribute bits derived from
 * tokenizer.ggml.token_type, the byte-fallback table, the BPE merges and
 * compiled pre-tokenizer, the list of tokens to split out of a text before
 * encoding (control, user-defined and unknown tokens, longest text first)
 * and each token's piece. It applies the same load-time rules as llama.cpp's
 * llama_vocab::impl::load: per-type defaults of the special ids and of
 * add_bos/add_sep/add_space_prefix, EOT/EOM/FIM detection by text, the
 * end-of-generation set (whose members become control tokens), unused
 * control tokens, and the per-model attribute fixes (Phi-3 right-strip,
 * <mask> left-strip, gpt-oss tokens rendered as user-defined).
 *
 * sl_tokenize follows llama_vocab::impl::tokenize:
 *   1. split the text on special-token texts (tokenizer_st_partition):
 *      user-defined tokens always, control/unknown ones only when
 *      parse_special; lstrip/rstrip attributes eat adjacent whitespace;
 *   2. BOS first when asked (and the vocabulary has one);
 *   3. each raw fragment is encoded by the vocabulary's encoder. SPM: a
 *      leading space when add_space_prefix and it starts the text or
 *      follows a special token, spaces become U+2581, spm_encode merges it.
 *      BPE: bpe_encode. WPM: wpm_encode. Empty text gives no fragment.
 * EOS/SEP are never appended here; callers that honour add_eos/add_sep
 * append them themselves (as llama.cpp does with add_special).
 *
 * Pieces (llama_vocab::token_to_piece): control and unknown tokens render as
 * their text only when `special`, else ""; user-defined tokens as their text;
 * normal tokens with U+2581 turned back into spaces (SPM, WPM) or with their
 * byte-level characters turned back into bytes (BPE); byte tokens as the raw
 * byte; unused/undefined tokens as "". Leading spaces are kept: the first
 * piece of " Hello" is " Hello", as common_token_to_piece prints a stream.
 *
 * Detokenizer: bytes are passed through a UTF-8 validator. Complete valid
 * characters are emitted; a valid prefix of a character waits in d->pend
 * (at most 3 bytes); each maximal invalid subpart becomes U+FFFD (Unicode
 * "substitution of maximal subparts"): stray continuation bytes, bytes that
 * can never start a character (C0, C1, F5..FF), a lead byte followed by a
 * byte outside its allowed range (overlongs, surrogates, > U+10FFFF).
 */
#include "tokenizer/tokenizer.h"

#include "core/alloc.h"
#include "core/strbuf.h"
#include "core/status.h"
#include "pretok.h"
#include "vocab.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MODEL "tokenizer.ggml.model"
#define KEY_TOKENS "tokenizer.ggml.tokens"
#define KEY_SCORES "tokenizer.ggml.scores"
#define KEY_TYPES "tokenizer.ggml.token_type"
#define KEY_PRE "tokenizer.ggml.pre"

/* a token text longer than this is rejected as corrupt */
#define MAX_TOKEN_LEN (1u << 20)

/* ---- text → id map ---------------------------------------------------- */

uint64_t tok_hash(const char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

static const char *tok_text(const sl_tokenizer *t, int32_t id) { return t->text + t->tok[id].text_off; }

int32_t tok_find(const sl_tokenizer *t, const char *s, size_t n) {
    for (uint64_t i = tok_hash(s, n) & t->map_mask;; i = (i + 1) & t->map_mask) {
        int32_t id = t->map[i];
        if (id < 0) return -1;
        if (t->tok[id].text_len == n && memcmp(tok_text(t, id), s, n) == 0) return id;
    }
}

/* Insert token `id`; returns the id already holding the same text, or -1. */
static int32_t map_insert(sl_tokenizer *t, int32_t id) {
    const char *s = tok_text(t, id);
    size_t n = t->tok[id].text_len;
    for (uint64_t i = tok_hash(s, n) & t->map_mask;; i = (i + 1) & t->map_mask) {
        int32_t o = t->map[i];
        if (o < 0) {
            t->map[i] = id;
            return -1;
        }
        if (t->tok[o].text_len == n && memcmp(tok_text(t, o), s, n) == 0) return o;
    }
}

static int32_t find_cstr(const sl_tokenizer *t, const char *s) { return tok_find(t, s, strlen(s)); }

/* ---- loading ---------------------------------------------------------- */

static uint32_t attr_of_type(int64_t type) {
    switch (type) {
    case SL_TOKEN_NORMAL: return TA_NORMAL;
    case SL_TOKEN_UNKNOWN: return TA_UNKNOWN;
    case SL_TOKEN_CONTROL: return TA_CONTROL;
    case SL_TOKEN_USER_DEFINED: return TA_USER_DEFINED;
    case SL_TOKEN_UNUSED: return TA_UNUSED;
    case SL_TOKEN_BYTE: return TA_BYTE;
    default: return 0; /* UNDEFINED and unknown values */
    }
}

/* "<0xHH>" → HH, else -1 */
static int byte_of_text(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    int hi = sl_hex_digit(s[3]), lo = sl_hex_digit(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* Optional token-id key: absent → def (dropped when out of range, as
 * llama.cpp does with its defaults); present → a valid id, or "none" written
 * as -1 or as all ones in an unsigned type (llama.cpp's converters write
 * u32 0xFFFFFFFF, e.g. stories260K's padding_token_id). */
static sl_status special_id(const sl_gguf *g, const char *key, int32_t def, int32_t n_vocab, int32_t *out) {
    const sl_gguf_kv *kv = sl_gguf_find(g, key);
    sl_status st;
    int64_t v;
    if (!kv) {
        *out = def >= 0 && def < n_vocab ? def : -1;
        return SL_OK;
    }
    if (kv->type == SL_GGUF_U32 || kv->type == SL_GGUF_U64) {
        uint64_t u;
        if ((st = sl_gguf_get_u64(g, key, &u))) return st;
        if (u > INT32_MAX && u != UINT32_MAX && u != UINT64_MAX)
            return SL_FAIL(SL_ERR_FORMAT, "%s: %s = %" PRIu64 " is not a token id (the vocabulary has %" PRId32
                           " tokens)", sl_gguf_path(g), key, u, n_vocab);
        v = u > INT32_MAX ? -1 : (int64_t)u;
    } else {
        int32_t i;
        if ((st = sl_gguf_get_i32(g, key, &i))) return st;
        v = i;
    }
    if (v < -1 || v >= n_vocab)
        return SL_FAIL(SL_ERR_FORMAT, "%s: %s = %" PRId64 " is not a token id (the vocabulary has %" PRId32 " tokens)",
                       sl_gguf_path(g), key, v, n_vocab);
    *out = (int32_t)v;
    return SL_OK;
}

/* "<｜end▁of▁sentence｜>" (split: \x9c followed by "e" would be one escape) */
#define DEEPSEEK_EOS ("<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>")

/* Texts llama.cpp takes for EOT when tokenizer.ggml.eot_token_id is absent;
 * the first one present wins (llama.cpp's order among several is that of a
 * hash map, i.e. unspecified; this list puts the chat end-of-turn markers first). */
static const char *const EOT_TEXTS[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
    "[EOT]", DEEPSEEK_EOS, "<end_of_utterance>", NULL,
};
static const char *const EOM_TEXTS[] = {"<|eom_id|>", NULL};
/* fill-in-the-middle tokens by text (llama.cpp's lists) */
static const char *const FIM_PRE_TEXTS[] = {
    "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "begin\xef\xbd\x9c>", "<PRE>",
    "\xe2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>", NULL,
};
static const char *const FIM_SUF_TEXTS[] = {
    "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "hole\xef\xbd\x9c>", "<SUF>",
    "\xe2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>", NULL,
};
static const char *const FIM_MID_TEXTS[] = {
    "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xef\xbd\x9c" "fim\xe2\x96\x81" "end\xef\xbd\x9c>", "<MID>",
    "\xe2\x96\x81<MID>", "<|code_middle|>", "<|middle|>", NULL,
};
static const char *const FIM_PAD_TEXTS[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", NULL};
static const char *const FIM_REP_TEXTS[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", NULL};
static const char *const FIM_SEP_TEXTS[] = {"<|file_sep|>", NULL};
/* Texts llama.cpp puts into its end-of-generation set. */
static const char *const EOG_TEXTS[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
    "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
    "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", DEEPSEEK_EOS, "[e~[", NULL,
};
/* gpt-oss: always rendered, never control (llama.cpp) */
static const char *const HARMONY_TEXTS[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", NULL};

/* When *id is none, the first text of the list present in the vocabulary;
 * the token found is made a control token. */
static void detect_by_text(sl_tokenizer *t, int32_t *id, const char *const *texts) {
    if (*id >= 0) return;
    for (size_t k = 0; texts[k]; k++) {
        int32_t f = find_cstr(t, texts[k]);
        if (f >= 0) {
            *id = f;
            t->tok[f].attr |= TA_CONTROL;
            return;
        }
    }
}

static void mark_eog(sl_tokenizer *t, int32_t id) {
    if (id >= 0) t->tok[id].attr |= TA_EOG;
}

static void detect_specials(sl_tokenizer *t) {
    detect_by_text(t, &t->eot, EOT_TEXTS);
    detect_by_text(t, &t->eom, EOM_TEXTS);
    detect_by_text(t, &t->fim_pre, FIM_PRE_TEXTS);
    detect_by_text(t, &t->fim_suf, FIM_SUF_TEXTS);
    detect_by_text(t, &t->fim_mid, FIM_MID_TEXTS);
    detect_by_text(t, &t->fim_pad, FIM_PAD_TEXTS);
    detect_by_text(t, &t->fim_rep, FIM_REP_TEXTS);
    detect_by_text(t, &t->fim_sep, FIM_SEP_TEXTS);

    /* control tokens named "...unused..." are unused */
    for (int32_t id = 0; id < t->n_vocab; id++)
        if ((t->tok[id].attr & TA_CONTROL) && strstr(tok_text(t, id), "unused")) t->tok[id].attr |= TA_UNUSED;

    mark_eog(t, t->fim_pad);
    mark_eog(t, t->fim_rep);
    mark_eog(t, t->fim_sep);
    for (size_t k = 0; EOG_TEXTS[k]; k++) {
        int32_t id = find_cstr(t, EOG_TEXTS[k]);
        /* Deviation from llama.cpp: "</s>" (listed there for paddleocr) is
         * also an ordinary HTML tag that byte-level vocabularies hold as a
         * normal token (Qwen2: id 128247); taking it would stop generation
         * in the middle of HTML. It counts only when it is a special token. */
        if (id >= 0 && !strcmp(EOG_TEXTS[k], "</s>") && t->vtype == SL_VOCAB_BPE && (t->tok[id].attr & TA_NORMAL))
            continue;
        if (id >= 0) t->tok[id].attr |= TA_EOG | TA_CONTROL;
    }
    for (size_t k = 0; HARMONY_TEXTS[k]; k++) {
        int32_t id = find_cstr(t, HARMONY_TEXTS[k]);
        if (id >= 0) t->tok[id].attr = TA_USER_DEFINED;
    }
    mark_eog(t, t->eos);
    mark_eog(t, t->eot);
    mark_eog(t, t->eom);

    /* llama.cpp's workarounds: o200k_harmony / solar-open, where <|end|> is
     * not the end; gemma4 / paddleocr, where </s> is not */
    bool eog_ret = false, eog_call = false, eog_flush = false;
    int32_t end = -1, s_end = -1, tool_resp = -1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!(t->tok[id].attr & TA_EOG)) continue;
        const char *s = tok_text(t, id);
        if (!strcmp(s, "<|return|>")) eog_ret = true;
        else if (!strcmp(s, "<|call|>") || !strcmp(s, "<|calls|>")) eog_call = true;
        else if (!strcmp(s, "<|flush|>")) eog_flush = true;
        else if (!strcmp(s, "<|end|>")) end = id;
        else if (!strcmp(s, "</s>")) s_end = id;
        else if (!strcmp(s, "<|tool_response>")) tool_resp = id;
    }
    if (end >= 0 && ((eog_ret && eog_call) || (eog_call && eog_flush))) t->tok[end].attr = TA_USER_DEFINED;
    if (tool_resp >= 0 && s_end >= 0) t->tok[s_end].attr = TA_NORMAL;
}

static sl_status build_eog(sl_tokenizer *t) {
    int32_t n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) n += (t->tok[id].attr & TA_EOG) != 0;
    t->eog = sl_alloc_array(n ? (size_t)n : 1, sizeof *t->eog);
    if (!t->eog) return SL_FAIL(SL_ERR_NOMEM, "end-of-generation list of %" PRId32 " entries", n);
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->tok[id].attr & TA_EOG) t->eog[t->n_eog++] = id;
    return SL_OK;
}

static bool contains_ci(sl_str name, const char *sub) {
    size_t m = strlen(sub);
    for (size_t i = 0; i + m <= name.len; i++) {
        size_t j = 0;
        while (j < m) {
            char c = name.ptr[i + j];
            if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
            if (c != sub[j]) break;
            j++;
        }
        if (j == m) return true;
    }
    return false;
}

/* An optional string key, or an empty string. */
static sl_str opt_str(const sl_gguf *g, const char *key) {
    sl_str s = {"", 0};
    const sl_gguf_kv *kv = sl_gguf_find(g, key);
    if (kv && kv->type == SL_GGUF_STRING) sl_gguf_get_str(g, key, &s);
    return s;
}

typedef struct len_id {
    uint32_t len;
    int32_t id;
} len_id;

/* longest text first; equal lengths by id, so the order is deterministic */
static int cmp_special(const void *pa, const void *pb) {
    const len_id *a = pa, *b = pb;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static sl_status build_specials(sl_tokenizer *t, const sl_gguf *g) {
    int32_t n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->tok[id].attr & (TA_CONTROL | TA_USER_DEFINED | TA_UNKNOWN)) n++;
    size_t cnt = n ? (size_t)n : 1;
    t->special = sl_alloc_array(cnt, sizeof *t->special);
    len_id *tmp = sl_alloc_array(cnt, sizeof *tmp);
    if (!t->special || !tmp) {
        sl_free(tmp);
        return SL_FAIL(SL_ERR_NOMEM, "special token list of %" PRId32 " entries", n);
    }
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->tok[id].attr & (TA_CONTROL | TA_USER_DEFINED | TA_UNKNOWN))
            tmp[t->n_special++] = (len_id){t->tok[id].text_len, id};
    qsort(tmp, (size_t)t->n_special, sizeof *tmp, cmp_special);
    for (int32_t i = 0; i < t->n_special; i++) t->special[i] = tmp[i].id;
    sl_free(tmp);

    /* per-model attributes, keyed as llama.cpp keys them */
    sl_str name = opt_str(g, "general.name"), pre = opt_str(g, KEY_PRE), arch = opt_str(g, "general.architecture");
    int32_t id;
    if (contains_ci(pre, "jina-v2-de") || contains_ci(pre, "jina-v2-es") || contains_ci(pre, "jina-v2-code") ||
        contains_ci(arch, "nomic-bert-moe") || contains_ci(arch, "jina-bert-v3")) {
        if ((id = find_cstr(t, "<mask>")) >= 0) t->tok[id].attr |= TA_LSTRIP;
    } else if (contains_ci(name, "phi-3") || contains_ci(name, "phi3")) {
        /* Phi-3 special tokens eat the whitespace on their right */
        for (int32_t i = 0; i < t->n_special; i++) t->tok[t->special[i]].attr |= TA_RSTRIP;
        if ((id = find_cstr(t, "</s>")) >= 0) t->tok[id].attr |= TA_RSTRIP;
        const char *keep[] = {"<unk>", "<s>", "<|endoftext|>"};
        for (size_t k = 0; k < 3; k++)
            if ((id = find_cstr(t, keep[k])) >= 0) t->tok[id].attr &= ~(uint32_t)TA_RSTRIP;
    } else if (contains_ci(name, "modern-bert")) {
        if ((id = find_cstr(t, "[MASK]")) >= 0) t->tok[id].attr |= TA_LSTRIP;
    }
    return SL_OK;
}

/* Piece of a token with special = true, written to dst (room for text_len
 * bytes is enough: unescaping and byte decoding only shrink). Returns its length. */
static uint32_t make_piece(const sl_tokenizer *t, int32_t id, char *dst) {
    const tok_info *ti = &t->tok[id];
    const char *s = tok_text(t, id);
    if (ti->attr & (TA_UNKNOWN | TA_CONTROL | TA_USER_DEFINED)) {
        memcpy(dst, s, ti->text_len);
        return ti->text_len;
    }
    if (ti->attr & TA_NORMAL) {
        if (t->vtype == SL_VOCAB_BPE) return bpe_decode_piece(s, ti->text_len, dst);
        uint32_t k = 0;
        for (uint32_t i = 0; i < ti->text_len;) {
            if (i + 3 <= ti->text_len && memcmp(s + i, "\xe2\x96\x81", 3) == 0) {
                dst[k++] = ' ';
                i += 3;
            } else {
                dst[k++] = s[i++];
            }
        }
        return k;
    }
    if (ti->attr & TA_BYTE) {
        dst[0] = (char)byte_of_text(s, ti->text_len);
        return 1;
    }
    return 0;
}

static sl_status build_pieces(sl_tokenizer *t, size_t text_bytes) {
    t->pieces = sl_malloc(text_bytes);
    if (!t->pieces) return SL_FAIL(SL_ERR_NOMEM, "token pieces (%zu bytes)", text_bytes);
    size_t off = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        uint32_t n = make_piece(t, id, t->pieces + off);
        t->tok[id].piece_off = off;
        t->tok[id].piece_len = n;
        t->pieces[off + n] = '\0';
        off += (size_t)n + 1;
        if (n > t->max_piece) t->max_piece = n;
    }
    return SL_OK;
}

/* Per-type defaults (llama.cpp's llama_vocab::impl::load). */
typedef struct type_defaults {
    int32_t bos, eos, unk, sep, pad, mask;
    bool add_bos, add_sep, add_space_prefix;
} type_defaults;

static sl_status read_model(sl_tokenizer *t, const sl_gguf *g, type_defaults *d, pretok_flags *pf) {
    const char *path = sl_gguf_path(g);
    sl_str model;
    sl_status st = sl_gguf_get_str(g, KEY_MODEL, &model);
    if (st) return st;
    memset(pf, 0, sizeof *pf);
    if (sl_str_eq(model, "llama")) {
        t->vtype = SL_VOCAB_SPM;
        *d = (type_defaults){1, 2, 0, -1, -1, -1, true, false, true};
    } else if (sl_str_eq(model, "gpt2")) {
        t->vtype = SL_VOCAB_BPE;
        *d = (type_defaults){11, 11, -1, -1, -1, -1, false, false, false};
    } else if (sl_str_eq(model, "bert")) {
        t->vtype = SL_VOCAB_WPM;
        *d = (type_defaults){101, -1, 100, 102, 0, 103, true, true, false};
    } else {
        return SL_FAIL(SL_ERR_UNSUPPORTED,
                       "%s: %s = '%.*s' is not supported ('llama' SentencePiece, 'gpt2' byte-level BPE, 'bert' "
                       "WordPiece)", path, KEY_MODEL, (int)(model.len > 64 ? 64 : model.len), model.ptr);
    }
    snprintf(t->pre, sizeof t->pre, "default");
    if (t->vtype != SL_VOCAB_BPE) return SL_OK;

    const sl_gguf_kv *kv = sl_gguf_find(g, KEY_PRE);
    if (kv) {
        sl_str pre;
        if ((st = sl_gguf_get_str(g, KEY_PRE, &pre))) return st;
        if (pre.len >= sizeof t->pre || memchr(pre.ptr, '\0', pre.len))
            return SL_FAIL(SL_ERR_UNSUPPORTED, "%s: %s = '%.*s' is not a known pre-tokenizer", path, KEY_PRE,
                           (int)(pre.len > 64 ? 64 : pre.len), pre.ptr);
        memcpy(t->pre, pre.ptr, pre.len);
        t->pre[pre.len] = '\0';
    }
    if (!pretok_lookup(t->pre, pf))
        return SL_FAIL(SL_ERR_UNSUPPORTED, "%s: %s = '%s' is not a supported pre-tokenizer", path, KEY_PRE, t->pre);
    d->add_bos = pf->add_bos;
    d->add_sep = pf->add_sep;
    if (pf->no_bos) d->bos = -1;
    t->ignore_merges = pf->ignore_merges;
    t->nfc = pf->nfc;
    return SL_OK;
}

sl_status sl_tokenizer_create(const sl_gguf *g, sl_tokenizer **out) {
    sl_status st;
    sl_tokenizer *t = NULL;
    const char *path = sl_gguf_path(g);
    *out = NULL;

    t = sl_calloc(1, sizeof *t);
    if (!t) {
        st = SL_FAIL(SL_ERR_NOMEM, "tokenizer");
        goto fail;
    }
    type_defaults def = {0};
    pretok_flags pf = {0};
    if ((st = read_model(t, g, &def, &pf))) goto fail;

    const sl_gguf_kv *ktok, *kscore = NULL, *ktype = NULL;
    sl_gguf_vtype et;
    uint64_t n;
    if ((st = sl_gguf_get_arr(g, KEY_TOKENS, &et, &n, &ktok))) goto fail;
    if (et != SL_GGUF_STRING) {
        st = SL_FAIL(SL_ERR_FORMAT, "%s: %s is an array of %s, expected strings", path, KEY_TOKENS, sl_vtype_name(et));
        goto fail;
    }
    if (n == 0 || n > INT32_MAX / 2) {
        st = SL_FAIL(SL_ERR_FORMAT, "%s: %s has %" PRIu64 " entries (expected 1 to %d)", path, KEY_TOKENS, n,
                     INT32_MAX / 2);
        goto fail;
    }
    if (sl_gguf_find(g, KEY_SCORES)) {
        uint64_t ns;
        if ((st = sl_gguf_get_arr(g, KEY_SCORES, &et, &ns, &kscore))) goto fail;
        if (et != SL_GGUF_F32 && et != SL_GGUF_I32) {
            st = SL_FAIL(SL_ERR_FORMAT, "%s: %s is an array of %s, expected f32", path, KEY_SCORES, sl_vtype_name(et));
            goto fail;
        }
        if (ns != n) {
            st = SL_FAIL(SL_ERR_FORMAT, "%s: %s has %" PRIu64 " entries but %s has %" PRIu64, path, KEY_SCORES, ns,
                         KEY_TOKENS, n);
            goto fail;
        }
    }
    if (sl_gguf_find(g, KEY_TYPES)) {
        uint64_t nt;
        if ((st = sl_gguf_get_arr(g, KEY_TYPES, &et, &nt, &ktype))) goto fail;
        if (et != SL_GGUF_I32 && et != SL_GGUF_U32 && et != SL_GGUF_I8 && et != SL_GGUF_U8 && et != SL_GGUF_I16 &&
            et != SL_GGUF_U16) {
            st = SL_FAIL(SL_ERR_FORMAT, "%s: %s is an array of %s, expected i32", path, KEY_TYPES, sl_vtype_name(et));
            goto fail;
        }
        if (nt != n) {
            st = SL_FAIL(SL_ERR_FORMAT, "%s: %s has %" PRIu64 " entries but %s has %" PRIu64, path, KEY_TYPES, nt,
                         KEY_TOKENS, n);
            goto fail;
        }
    }

    t->n_vocab = (int32_t)n;
    t->tok = sl_calloc(n, sizeof *t->tok);
    uint64_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    t->map = sl_alloc_array(cap, sizeof *t->map);
    if (!t->tok || !t->map) {
        st = SL_FAIL(SL_ERR_NOMEM, "vocabulary of %" PRIu64 " tokens", n);
        goto fail;
    }
    memset(t->map, 0xff, cap * sizeof *t->map);
    t->map_mask = cap - 1;

    /* texts: empty ones are renamed "[EMPTY_<id>]" as llama.cpp does */
    size_t text_bytes = 0;
    for (uint64_t i = 0; i < n; i++) {
        sl_str s = sl_gguf_arr_str(ktok, i);
        if (s.len > MAX_TOKEN_LEN) {
            st = SL_FAIL(SL_ERR_FORMAT, "%s: %s[%" PRIu64 "] is %" PRIu64 " bytes long (limit %u)", path, KEY_TOKENS, i,
                         s.len, MAX_TOKEN_LEN);
            goto fail;
        }
        text_bytes += (s.len ? s.len : 24) + 1;
    }
    t->text = sl_malloc(text_bytes);
    if (!t->text) {
        st = SL_FAIL(SL_ERR_NOMEM, "token texts (%zu bytes)", text_bytes);
        goto fail;
    }
    size_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        tok_info *ti = &t->tok[i];
        sl_str s = sl_gguf_arr_str(ktok, i);
        ti->text_off = off;
        if (s.len) {
            memcpy(t->text + off, s.ptr, s.len);
            ti->text_len = (uint32_t)s.len;
        } else {
            ti->text_len = (uint32_t)snprintf(t->text + off, 24, "[EMPTY_%" PRIu64 "]", i);
        }
        t->text[off + ti->text_len] = '\0';
        off += (s.len ? s.len : 24) + 1;
        if (ti->text_len > t->max_token_len) t->max_token_len = ti->text_len;

        if (!kscore) ti->score = 0.0f;
        else if (kscore->arr_type == SL_GGUF_F32) ti->score = sl_gguf_arr_f32(kscore, i);
        else ti->score = (float)sl_gguf_arr_int(kscore, i);

        int64_t type = ktype ? sl_gguf_arr_int(ktype, i) : SL_TOKEN_NORMAL;
        ti->type = type < INT32_MIN || type > INT32_MAX ? SL_TOKEN_UNDEFINED : (int32_t)type;
        ti->attr = attr_of_type(type);
        if ((ti->attr & TA_BYTE) && byte_of_text(t->text + ti->text_off, ti->text_len) < 0) {
            st = SL_FAIL(SL_ERR_FORMAT, "%s: token %" PRIu64 " '%.*s' has type BYTE but is not of the form <0xHH>",
                         path, i, (int)(ti->text_len > 32 ? 32 : ti->text_len), t->text + ti->text_off);
            goto fail;
        }
        int32_t dup = map_insert(t, (int32_t)i);
        if (dup >= 0) {
            st = SL_FAIL(SL_ERR_FORMAT, "%s: duplicate token in %s: '%.*s' has ids %" PRId32 " and %" PRIu64, path,
                         KEY_TOKENS, (int)(ti->text_len > 32 ? 32 : ti->text_len), t->text + ti->text_off, dup, i);
            goto fail;
        }
    }

    for (int b = 0; b < 256; b++) {
        char hex[8], raw[1] = {(char)b};
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        t->byte_tok[b] = find_cstr(t, hex);
        if (t->byte_tok[b] < 0) t->byte_tok[b] = tok_find(t, raw, 1);
    }

    int32_t nv = t->n_vocab;
    if ((st = special_id(g, "tokenizer.ggml.bos_token_id", def.bos, nv, &t->bos)) ||
        (st = special_id(g, "tokenizer.ggml.eos_token_id", def.eos, nv, &t->eos)) ||
        (st = special_id(g, "tokenizer.ggml.unknown_token_id", def.unk, nv, &t->unk)) ||
        (st = special_id(g, "tokenizer.ggml.padding_token_id", def.pad, nv, &t->pad)) ||
        (st = special_id(g, "tokenizer.ggml.seperator_token_id", def.sep, nv, &t->sep)) ||
        (st = special_id(g, "tokenizer.ggml.cls_token_id", -1, nv, &t->cls)) ||
        (st = special_id(g, "tokenizer.ggml.mask_token_id", def.mask, nv, &t->mask)) ||
        (st = special_id(g, "tokenizer.ggml.eot_token_id", -1, nv, &t->eot)) ||
        (st = special_id(g, "tokenizer.ggml.eom_token_id", -1, nv, &t->eom)) ||
        (st = special_id(g, "tokenizer.ggml.fim_pre_token_id", -1, nv, &t->fim_pre)) ||
        (st = special_id(g, "tokenizer.ggml.fim_suf_token_id", -1, nv, &t->fim_suf)) ||
        (st = special_id(g, "tokenizer.ggml.fim_mid_token_id", -1, nv, &t->fim_mid)) ||
        (st = special_id(g, "tokenizer.ggml.fim_pad_token_id", -1, nv, &t->fim_pad)) ||
        (st = special_id(g, "tokenizer.ggml.fim_rep_token_id", -1, nv, &t->fim_rep)) ||
        (st = special_id(g, "tokenizer.ggml.fim_sep_token_id", -1, nv, &t->fim_sep)) ||
        /* deprecated names of the first three */
        (st = special_id(g, "tokenizer.ggml.prefix_token_id", t->fim_pre, nv, &t->fim_pre)) ||
        (st = special_id(g, "tokenizer.ggml.suffix_token_id", t->fim_suf, nv, &t->fim_suf)) ||
        (st = special_id(g, "tokenizer.ggml.middle_token_id", t->fim_mid, nv, &t->fim_mid)))
        goto fail;
    if ((st = sl_gguf_opt_bool(g, "tokenizer.ggml.add_bos_token", def.add_bos, &t->add_bos)) ||
        (st = sl_gguf_opt_bool(g, "tokenizer.ggml.add_eos_token", false, &t->add_eos)) ||
        (st = sl_gguf_opt_bool(g, "tokenizer.ggml.add_sep_token", def.add_sep, &t->add_sep)) ||
        (st = sl_gguf_opt_bool(g, "tokenizer.ggml.add_space_prefix", def.add_space_prefix, &t->add_space_prefix)) ||
        (st = sl_gguf_opt_bool(g, "tokenizer.ggml.normalizer.lowercase", true, &t->lowercase)) ||
        (st = sl_gguf_opt_bool(g, "tokenizer.ggml.normalizer.strip_accents", t->lowercase, &t->strip_accents)))
        goto fail;
    const struct {
        bool on;
        int32_t id;
        const char *flag, *key;
    } need[] = {
        {t->add_bos, t->bos, "add_bos_token", "bos_token_id"},
        {t->add_eos, t->eos, "add_eos_token", "eos_token_id"},
        {t->add_sep, t->sep, "add_sep_token", "seperator_token_id"},
    };
    for (size_t k = 0; k < sizeof need / sizeof need[0]; k++) {
        if (need[k].on && need[k].id < 0) {
            st = SL_FAIL(SL_ERR_FORMAT, "%s: tokenizer.ggml.%s is true but there is no such token (tokenizer.ggml.%s)",
                         path, need[k].flag, need[k].key);
            goto fail;
        }
    }
    if (t->vtype == SL_VOCAB_BPE && (st = bpe_load(t, g))) goto fail;

    detect_specials(t);
    if ((st = build_eog(t)) || (st = build_specials(t, g)) || (st = build_pieces(t, text_bytes))) goto fail;
    *out = t;
    return SL_OK;
fail:
    sl_tokenizer_destroy(t);
    return st;
}

void sl_tokenizer_destroy(sl_tokenizer *t) {
    if (!t) return;
    bpe_free(t);
    sl_free(t->tok);
    sl_free(t->text);
    sl_free(t->pieces);
    sl_free(t->map);
    sl_free(t->special);
    sl_free(t->eog);
    sl_free(t);
}

/* ---- accessors -------------------------------------------------------- */

static bool valid_id(const sl_tokenizer *t, int32_t id) { return id >= 0 && id < t->n_vocab; }

int32_t sl_tokenizer_n_vocab(const sl_tokenizer *t) { return t->n_vocab; }
int32_t sl_tokenizer_bos(const sl_tokenizer *t) { return t->bos; }
int32_t sl_tokenizer_eos(const sl_tokenizer *t) { return t->eos; }
int32_t sl_tokenizer_eot(const sl_tokenizer *t) { return t->eot; }
int32_t sl_tokenizer_unk(const sl_tokenizer *t) { return t->unk; }
int32_t sl_tokenizer_pad(const sl_tokenizer *t) { return t->pad; }
int32_t sl_tokenizer_eom(const sl_tokenizer *t) { return t->eom; }
int32_t sl_tokenizer_fim(const sl_tokenizer *t, sl_fim which) {
    const int32_t ids[] = {t->fim_pre, t->fim_suf, t->fim_mid, t->fim_pad, t->fim_rep, t->fim_sep};
    return which >= SL_FIM_PRE && which <= SL_FIM_SEP ? ids[which] : -1;
}
int32_t sl_tokenizer_sep(const sl_tokenizer *t) { return t->sep; }
bool sl_tokenizer_add_sep(const sl_tokenizer *t) { return t->add_sep; }
sl_vocab_type sl_tokenizer_type(const sl_tokenizer *t) { return t->vtype; }
const char *sl_tokenizer_pre(const sl_tokenizer *t) { return t->pre; }
int32_t sl_tokenizer_n_eog(const sl_tokenizer *t) { return t->n_eog; }
int32_t sl_tokenizer_eog_at(const sl_tokenizer *t, int32_t i) { return i >= 0 && i < t->n_eog ? t->eog[i] : -1; }
bool sl_tokenizer_add_bos(const sl_tokenizer *t) { return t->add_bos; }
bool sl_tokenizer_add_eos(const sl_tokenizer *t) { return t->add_eos; }
bool sl_tokenizer_add_space_prefix(const sl_tokenizer *t) { return t->add_space_prefix; }
size_t sl_tokenizer_max_piece(const sl_tokenizer *t) { return t->max_piece; }

bool sl_tokenizer_is_eog(const sl_tokenizer *t, int32_t id) {
    return valid_id(t, id) && (t->tok[id].attr & TA_EOG) != 0;
}

int sl_tokenizer_token_type(const sl_tokenizer *t, int32_t id) {
    return valid_id(t, id) ? t->tok[id].type : SL_TOKEN_UNDEFINED;
}

float sl_tokenizer_score(const sl_tokenizer *t, int32_t id) { return valid_id(t, id) ? t->tok[id].score : 0.0f; }

const char *sl_tokenizer_token_text(const sl_tokenizer *t, int32_t id, size_t *len) {
    if (!valid_id(t, id)) return NULL;
    if (len) *len = t->tok[id].text_len;
    return tok_text(t, id);
}

int32_t sl_tokenizer_find(const sl_tokenizer *t, const char *text, size_t len) { return tok_find(t, text, len); }

/* ---- tokenize --------------------------------------------------------- */

typedef struct frag {
    int32_t id;       /* a special token, or -1 for raw text */
    size_t off, len;  /* raw text: bytes of the input */
} frag;

typedef struct fragvec {
    frag *v;
    size_t n, cap;
} fragvec;

static sl_status frag_push(fragvec *a, int32_t id, size_t off, size_t len) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        frag *v = sl_realloc(a->v, cap * sizeof *v);
        if (!v) return SL_FAIL(SL_ERR_NOMEM, "text fragment list of %zu entries", cap);
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = (frag){id, off, len};
    return SL_OK;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

/* Split every raw fragment of `in` on occurrences of special token `id`
 * (leftmost first, non-overlapping) into `out`. */
static sl_status split_on(const sl_tokenizer *t, int32_t id, const char *text, const fragvec *in, fragvec *out) {
    const char *pat = tok_text(t, id);
    size_t plen = t->tok[id].text_len;
    uint32_t attr = t->tok[id].attr;
    sl_status st;
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        frag f = in->v[i];
        if (f.id >= 0) {
            if ((st = frag_push(out, f.id, 0, 0))) return st;
            continue;
        }
        size_t off = f.off, len = f.len;
        while (len > 0) {
            const char *m = memmem(text + off, len, pat, plen);
            if (!m) {
                if ((st = frag_push(out, -1, off, len))) return st;
                break;
            }
            size_t mo = (size_t)(m - text);
            size_t left = mo - off;
            if (attr & TA_LSTRIP)
                while (left > 0 && is_space(text[off + left - 1])) left--;
            if (left > 0 && (st = frag_push(out, -1, off, left))) return st;
            if ((st = frag_push(out, id, 0, 0))) return st;
            size_t end = off + len;
            off = mo + plen;
            len = end - off;
            if (attr & TA_RSTRIP)
                while (len > 0 && is_space(text[off])) off++, len--;
        }
    }
    return SL_OK;
}

sl_status sl_tokenize(const sl_tokenizer *t, const char *text, size_t len, bool add_bos, bool parse_special,
                      int32_t **ids, size_t *n_ids) {
    sl_status st = SL_OK;
    fragvec a = {0}, b = {0};
    idvec out = {0};
    char *esc = NULL;
    *ids = NULL;
    *n_ids = 0;
    if (!text && len) return SL_FAIL(SL_ERR_INVALID, "text is NULL but len is %zu", len);

    if (len > 0) {
        if ((st = frag_push(&a, -1, 0, len))) goto fail;
        for (int32_t k = 0; k < t->n_special; k++) {
            int32_t id = t->special[k];
            if (!parse_special && (t->tok[id].attr & (TA_CONTROL | TA_UNKNOWN))) continue;
            if ((st = split_on(t, id, text, &a, &b))) goto fail;
            fragvec tmp = a;
            a = b;
            b = tmp;
        }
    }

    if (add_bos && t->bos >= 0 && (st = idvec_push(&out, t->bos))) goto fail;

    /* SPM escaped fragment: optional "▁" prefix, then every ' ' as "▁" (3 bytes) */
    size_t esc_cap = 0;
    bool prev_special = true;
    for (size_t i = 0; i < a.n; i++) {
        frag f = a.v[i];
        if (f.id >= 0) {
            if ((st = idvec_push(&out, f.id))) goto fail;
            prev_special = true;
            continue;
        }
        if (t->vtype == SL_VOCAB_BPE) {
            if ((st = bpe_encode(t, text + f.off, f.len, &out))) goto fail;
            continue;
        }
        if (t->vtype == SL_VOCAB_WPM) {
            if ((st = wpm_encode(t, text + f.off, f.len, &out))) goto fail;
            continue;
        }
        if (f.len > (SIZE_MAX - 3) / 3) {
            st = SL_FAIL(SL_ERR_RANGE, "text of %zu bytes is too long", f.len);
            goto fail;
        }
        size_t need = 3 * f.len + 3;
        if (need > esc_cap) {
            sl_free(esc);
            esc_cap = need;
            if (!(esc = sl_malloc(esc_cap))) {
                st = SL_FAIL(SL_ERR_NOMEM, "escaped text (%zu bytes)", esc_cap);
                goto fail;
            }
        }
        size_t k = 0;
        if (t->add_space_prefix && prev_special) {
            memcpy(esc, "\xe2\x96\x81", 3);
            k = 3;
        }
        for (size_t j = 0; j < f.len; j++) {
            char c = text[f.off + j];
            if (c == ' ') {
                memcpy(esc + k, "\xe2\x96\x81", 3);
                k += 3;
            } else {
                esc[k++] = c;
            }
        }
        if ((st = spm_encode(t, esc, k, &out))) goto fail;
        prev_special = false;
    }

    if (out.n == 0) { /* give the caller a valid (empty) array */
        if ((st = idvec_push(&out, 0))) goto fail;
        out.n = 0;
    }
    *ids = out.v;
    *n_ids = out.n;
    out.v = NULL;
fail:
    sl_free(a.v);
    sl_free(b.v);
    sl_free(esc);
    sl_free(out.v);
    return st;
}

/* ---- pieces and detokenizer ------------------------------------------- */

static const char *piece_of(const sl_tokenizer *t, int32_t id, bool special, size_t *n) {
    const tok_info *ti = &t->tok[id];
    if (!special && (ti->attr & (TA_UNKNOWN | TA_CONTROL))) {
        *n = 0;
        return "";
    }
    *n = ti->piece_len;
    return t->pieces + ti->piece_off;
}

int64_t sl_token_to_piece(const sl_tokenizer *t, int32_t id, bool special, char *buf, size_t cap) {
    if (!valid_id(t, id)) return -1;
    size_t n;
    const char *p = piece_of(t, id, special, &n);
    if (cap > 0) {
        size_t k = n < cap ? n : cap;
        memcpy(buf, p, k);
        if (n < cap) buf[n] = '\0';
    }
    return (int64_t)n;
}

void sl_detok_init(sl_detok *d, const sl_tokenizer *t, bool special) {
    memset(d, 0, sizeof *d);
    d->tok = t;
    d->special = special;
}

/* bytes a character with this lead byte needs, 0 when it cannot lead */
static size_t lead_len(unsigned char c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

/* may byte c follow the valid prefix p[0..n) of a character? */
static bool cont_ok(const unsigned char *p, size_t n, unsigned char c) {
    if (n == 1) {
        switch (p[0]) {
        case 0xE0: return c >= 0xA0 && c <= 0xBF; /* no overlongs */
        case 0xED: return c >= 0x80 && c <= 0x9F; /* no surrogates */
        case 0xF0: return c >= 0x90 && c <= 0xBF; /* no overlongs */
        case 0xF4: return c >= 0x80 && c <= 0x8F; /* <= U+10FFFF */
        default: break;
        }
    }
    return c >= 0x80 && c <= 0xBF;
}

typedef struct sink {
    char *out;
    size_t cap, n;
    bool over;
} sink;

static void put(sink *s, const void *p, size_t n) {
    if (s->n + n + 1 > s->cap) { /* keep room for the NUL */
        s->over = true;
        return;
    }
    memcpy(s->out + s->n, p, n);
    s->n += n;
}

static void put_fffd(sink *s) { put(s, "\xef\xbf\xbd", 3); }

static void feed(sl_detok *d, sink *s, unsigned char c) {
    for (;;) {
        if (d->n_pend == 0) {
            size_t need = lead_len(c);
            if (need == 1) put(s, &c, 1);
            else if (need == 0) put_fffd(s);
            else d->pend[d->n_pend++] = c;
            return;
        }
        if (cont_ok(d->pend, d->n_pend, c)) {
            d->pend[d->n_pend++] = c;
            if (d->n_pend == lead_len(d->pend[0])) {
                put(s, d->pend, d->n_pend);
                d->n_pend = 0;
            }
            return;
        }
        /* the pending prefix is a maximal invalid subpart; c starts afresh */
        put_fffd(s);
        d->n_pend = 0;
    }
}

static int64_t finish(sink *s, sl_detok *d, const sl_detok *saved) {
    if (s->over) {
        *d = *saved;
        return -1;
    }
    if (s->cap > 0) s->out[s->n] = '\0';
    return (int64_t)s->n;
}

void sl_detok_show(sl_detok *d, const int32_t *ids, int n) {
    d->n_show = n <= 0 ? 0 : n < SL_DETOK_SHOW_MAX ? n : SL_DETOK_SHOW_MAX;
    if (d->n_show) memcpy(d->show, ids, (size_t)d->n_show * sizeof *ids);
}

int64_t sl_detok_push(sl_detok *d, int32_t id, char *out, size_t cap) {
    if (!valid_id(d->tok, id)) return -1;
    sl_detok saved = *d;
    sink s = {out, cap, 0, false};
    size_t n;
    bool special = d->special;
    for (int k = 0; k < d->n_show && !special; k++) special = d->show[k] == id;
    const char *p = piece_of(d->tok, id, special, &n);
    for (size_t i = 0; i < n && !s.over; i++) feed(d, &s, (unsigned char)p[i]);
    return finish(&s, d, &saved);
}

int64_t sl_detok_flush(sl_detok *d, char *out, size_t cap) {
    sl_detok saved = *d;
    sink s = {out, cap, 0, false};
    if (d->n_pend > 0) {
        put_fffd(&s);
        d->n_pend = 0;
    }
    return finish(&s, d, &saved);
}

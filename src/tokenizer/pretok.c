/*
 * pretok.c — byte-level BPE pre-tokenizers: which regexes each
 * tokenizer.ggml.pre value means, compiled with PCRE2, and the splitting.
 *
 * The regex lists are llama.cpp's (llama_vocab.cpp, llm_tokenizer_bpe) as
 * facts: llama.cpp runs most of them through std::regex on a text whose
 * non-ASCII characters are collapsed to one byte per Unicode category,
 * and two (gpt-2, llama3) through hand-written matchers; here every list
 * runs through PCRE2 with UTF and UCP, so \p{L}, \p{N}, \p{P} and \s are
 * the Unicode classes Hugging Face's tokenizers use. Where llama.cpp's list
 * is itself a rewrite to work around the collapsed categories (gpt-4o,
 * tekken: "(?=[\p{L}])[^a-z]" for "uppercase letter"), the original
 * tokenizer.json regex is used instead. Non-ASCII characters in the
 * patterns are written as \x{...} escapes.
 *
 * Compile options: UTF, UCP, DOLLAR_ENDONLY (`$` is the end of the piece,
 * as in ECMAScript). Matching uses NO_UTF_CHECK (the caller passes valid
 * UTF-8; checking each call would make a split quadratic) and the JIT when
 * pcre2_jit_compile succeeded; a JIT stack overflow retries with the
 * interpreter. All PCRE2 allocations go through sl_malloc.
 *
 * Invariant: a split partitions its input: the pieces are non-empty,
 * contiguous and in order.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "pretok.h"

#include "core/alloc.h"
#include "core/status.h"

#include <pcre2.h>
#include <string.h>

#define MAX_REGEX 8

/* ---- the regex lists ---------------------------------------------------- */

/* contractions, case-insensitive on the letters (llama.cpp's rewrite of (?i:'s|...)) */
#define CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"

static const char *const RE_DEFAULT[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|]+",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    "\\p{N}+",
    "[0-9][0-9][0-9]",
    NULL,
};

static const char *const RE_LLAMA3[] = {
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL,
};

/* CJK unified ideographs, U+0800..U+4E00 and Hangul (deepseek's "[一-龥ࠀ-一가-퟿]+") */
#define DEEPSEEK_CJK "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"

static const char *const RE_DEEPSEEK_LLM[] = {
    "[\r\n]",
    "\\s?["
    "A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"
    "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}"
    "\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}"
    "\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}"
    "\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}"
    "\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}"
    "\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
    "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}"
    "\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}"
    "\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}"
    "\\x{2124}\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}"
    "\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}"
    "\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}"
    "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}"
    "\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}"
    "\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}"
    "\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}"
    "]+",
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
    "\\s+$",
    DEEPSEEK_CJK,
    "\\p{N}+",
    NULL,
};

static const char *const RE_DEEPSEEK_CODER[] = {
    "[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", DEEPSEEK_CJK, "\\p{N}", NULL,
};

static const char *const RE_DEEPSEEK3[] = {
    "\\p{N}{1,3}",
    "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
    NULL,
};

static const char *const RE_FALCON[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|`]+",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    "[0-9][0-9][0-9]",
    NULL,
};

static const char *const RE_STARCODER[] = {
    "\\p{N}",
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    NULL,
};

static const char *const RE_GPT2[] = {
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
    NULL,
};

static const char *const RE_QWEN2[] = {
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL,
};

/* " ?[^(\\s|.,!?…。，、।۔،)]+" */
static const char *const RE_PORO[] = {
    " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}\\x{6D4}\\x{60C})]+",
    NULL,
};

/* tokenizer.json's own regex (PCRE2 has the letter subcategories) */
#define UPPER_ISH "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]"
#define LOWER_ISH "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]"
static const char *const RE_GPT4O[] = {
    "[^\\r\\n\\p{L}\\p{N}]?" UPPER_ISH "*" LOWER_ISH "+" CONTRACTIONS "?"
    "|[^\\r\\n\\p{L}\\p{N}]?" UPPER_ISH "+" LOWER_ISH "*" CONTRACTIONS "?"
    "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL,
};

static const char *const RE_TEKKEN[] = {
    "[^\\r\\n\\p{L}\\p{N}]?" UPPER_ISH "*" LOWER_ISH "+"
    "|[^\\r\\n\\p{L}\\p{N}]?" UPPER_ISH "+" LOWER_ISH "*"
    "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL,
};

static const char *const RE_SEED_CODER[] = {
    CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL,
};

static const char *const RE_BAILINGMOE[] = {
    "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
    NULL,
};

typedef struct pre_def {
    const char *name;
    const char *const *regex;
    pretok_flags flags;
} pre_def;

/* name → regexes and settings, as llama.cpp's llama_vocab::impl::load maps them */
#define F_L3 {.ignore_merges = true, .add_bos = true}
static const pre_def PRE_DEFS[] = {
    {"default", RE_DEFAULT, {0}},
    {"llama3", RE_LLAMA3, F_L3},
    {"llama-v3", RE_LLAMA3, F_L3},
    {"llama-bpe", RE_LLAMA3, F_L3},
    {"falcon3", RE_LLAMA3, F_L3},
    {"falcon-h1", RE_LLAMA3, F_L3},
    {"pixtral", RE_LLAMA3, F_L3},
    {"midm-2.0", RE_LLAMA3, F_L3},
    {"lfm2", RE_LLAMA3, F_L3},
    {"dbrx", RE_LLAMA3, {0}},
    {"smaug-bpe", RE_LLAMA3, {0}},
    {"chatglm-bpe", RE_LLAMA3, {.no_bos = true}},
    {"glm4", RE_LLAMA3, {.no_bos = true}},
    {"deepseek-llm", RE_DEEPSEEK_LLM, {0}},
    {"deepseek-coder", RE_DEEPSEEK_CODER, {0}},
    {"deepseek-v3", RE_DEEPSEEK3, {0}},
    {"hunyuan-dense", RE_DEEPSEEK3, {0}},
    {"falcon", RE_FALCON, {0}},
    {"mpt", RE_GPT2, {0}},
    {"gpt-2", RE_GPT2, {0}},
    {"phi-2", RE_GPT2, {0}},
    {"jina-es", RE_GPT2, {0}},
    {"jina-de", RE_GPT2, {0}},
    {"gigachat", RE_GPT2, {0}},
    {"jina-v2-es", RE_GPT2, {0}},
    {"jina-v2-de", RE_GPT2, {0}},
    {"a.x-4.0", RE_GPT2, {0}},
    {"mellum", RE_GPT2, {0}},
    {"modern-bert", RE_GPT2, {0}},
    {"jina-v1-en", RE_GPT2, {.add_sep = true}},
    {"jina-v2-code", RE_GPT2, {.add_sep = true}},
    {"roberta-bpe", RE_GPT2, {.add_sep = true}},
    {"olmo", RE_GPT2, {0}},
    {"jais", RE_GPT2, {0}},
    {"trillion", RE_GPT2, {0}},
    {"granite-docling", RE_GPT2, {0}},
    {"exaone4", RE_GPT2, {0}},
    {"starcoder", RE_STARCODER, {0}},
    {"refact", RE_STARCODER, {0}},
    {"command-r", RE_STARCODER, {0}},
    {"smollm", RE_STARCODER, {0}},
    {"codeshell", RE_STARCODER, {0}},
    {"exaone", RE_STARCODER, {0}},
    {"minerva-7b", RE_STARCODER, {0}},
    {"qwen2", RE_QWEN2, {.nfc = true}},
    {"deepseek-r1-qwen", RE_QWEN2, {.nfc = true}},
    {"megrez", RE_QWEN2, {0}},
    {"stablelm2", RE_QWEN2, {0}},
    {"hunyuan", RE_QWEN2, {0}},
    {"solar-open", RE_QWEN2, {0}},
    {"grok-2", RE_QWEN2, {0}},
    {"poro-chat", RE_PORO, {0}},
    {"bloom", RE_PORO, {0}},
    {"gpt3-finnish", RE_PORO, {0}},
    {"gpt-4o", RE_GPT4O, {0}},
    {"llama4", RE_GPT4O, {0}},
    {"tekken", RE_TEKKEN, {.ignore_merges = true, .add_bos = true}},
    {"seed-coder", RE_SEED_CODER, {0}},
    {"bailingmoe", RE_BAILINGMOE, {0}},
    {"bailingmoe2", RE_BAILINGMOE, {0}},
    {"llada-moe", RE_BAILINGMOE, {0}},
};
#define N_PRE_DEFS (sizeof PRE_DEFS / sizeof PRE_DEFS[0])

static const pre_def *find_def(const char *name) {
    for (size_t i = 0; i < N_PRE_DEFS; i++)
        if (!strcmp(PRE_DEFS[i].name, name)) return &PRE_DEFS[i];
    return NULL;
}

bool pretok_lookup(const char *name, pretok_flags *flags) {
    const pre_def *d = find_def(name);
    if (d && flags) *flags = d->flags;
    return d != NULL;
}

const char *pretok_name(size_t i) { return i < N_PRE_DEFS ? PRE_DEFS[i].name : NULL; }

/* ---- compiled form -------------------------------------------------------- */

struct pretok {
    pcre2_general_context *gctx;
    pcre2_code *re[MAX_REGEX];
    int n_re;
};

static void *pc_malloc(PCRE2_SIZE n, void *ud) {
    (void)ud;
    return sl_malloc(n ? n : 1);
}

static void pc_free(void *p, void *ud) {
    (void)ud;
    sl_free(p);
}

void pretok_destroy(pretok *p) {
    if (!p) return;
    for (int i = 0; i < p->n_re; i++) pcre2_code_free(p->re[i]);
    pcre2_general_context_free(p->gctx);
    sl_free(p);
}

sl_status pretok_create(const char *name, pretok **out) {
    sl_status st = SL_OK;
    pcre2_compile_context *cctx = NULL;
    pretok *p = NULL;
    *out = NULL;
    const pre_def *d = find_def(name);
    if (!d) return SL_FAIL(SL_ERR_UNSUPPORTED, "pre-tokenizer '%s' is not supported", name);

    p = sl_calloc(1, sizeof *p);
    if (!p || !(p->gctx = pcre2_general_context_create(pc_malloc, pc_free, NULL)) ||
        !(cctx = pcre2_compile_context_create(p->gctx))) {
        st = SL_FAIL(SL_ERR_NOMEM, "pre-tokenizer '%s'", name);
        goto fail;
    }
    for (int i = 0; d->regex[i]; i++) {
        SL_ASSERT(i < MAX_REGEX);
        int err = 0;
        PCRE2_SIZE at = 0;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)d->regex[i], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &at, cctx);
        if (!re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(err, msg, sizeof msg);
            st = SL_FAIL(err == PCRE2_ERROR_HEAP_FAILED ? SL_ERR_NOMEM : SL_ERR_UNSUPPORTED,
                         "pre-tokenizer '%s': regex %d at offset %zu: %s", name, i, (size_t)at, (const char *)msg);
            goto fail;
        }
        p->re[p->n_re++] = re;
        /* without a JIT (or out of memory for it) the interpreter is used */
        (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    }
    pcre2_compile_context_free(cctx);
    *out = p;
    return SL_OK;
fail:
    pcre2_compile_context_free(cctx);
    pretok_destroy(p);
    return st;
}

/* ---- splitting -------------------------------------------------------------- */

static sl_status span_push(spanvec *a, size_t off, size_t len) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        span *v = sl_realloc(a->v, cap * sizeof *v);
        if (!v) return SL_FAIL(SL_ERR_NOMEM, "pre-tokenizer piece list of %zu entries", cap);
        a->v = v;
        a->cap = cap;
    }
    a->v[a->n++] = (span){off, len};
    return SL_OK;
}

/* bytes of the UTF-8 character starting with c (input is valid UTF-8) */
static size_t char_len(unsigned char c) { return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4; }

static int match_at(const pcre2_code *re, const char *s, size_t n, size_t start, pcre2_match_data *md,
                    pcre2_match_context *mctx) {
    int rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK, md, mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
        rc = pcre2_match(re, (PCRE2_SPTR)s, n, start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, mctx);
    return rc;
}

/* Split the piece s[0..n) (at offset base of the text) with one regex. */
static sl_status split_piece(const pcre2_code *re, pcre2_match_data *md, pcre2_match_context *mctx, const char *s,
                             size_t n, size_t base, spanvec *out) {
    sl_status st;
    size_t pos = 0, search = 0;
    /* PCRE2's default limit (10M backtracking steps per call) stops
     * `\s*[\r\n]+` on a whitespace run of ~10 MB although the work is
     * linear there: allow steps in proportion to the piece, still a bound */
    uint64_t limit = 10000000u + 64u * (uint64_t)n;
    pcre2_set_match_limit(mctx, limit > UINT32_MAX ? UINT32_MAX : (uint32_t)limit);
    while (search < n) {
        int rc = match_at(re, s, n, search, md, mctx);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            if (rc == PCRE2_ERROR_NOMEMORY) return SL_FAIL(SL_ERR_NOMEM, "pre-tokenizer regex match");
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return SL_FAIL(SL_ERR_RANGE, "pre-tokenizer regex match at byte %zu: %s", base + search,
                           (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) { /* an empty match splits nothing: look again one character on */
            search = ms + char_len((unsigned char)s[ms]);
            continue;
        }
        if (ms > pos && (st = span_push(out, base + pos, ms - pos))) return st;
        if ((st = span_push(out, base + ms, me - ms))) return st;
        pos = search = me;
    }
    if (pos < n && (st = span_push(out, base + pos, n - pos))) return st;
    return SL_OK;
}

sl_status pretok_split(const pretok *p, const char *s, size_t n, spanvec *out, spanvec *tmp) {
    sl_status st = SL_OK;
    out->n = 0;
    if (n == 0) return SL_OK;
    pcre2_match_data *md = pcre2_match_data_create(1, p->gctx);
    pcre2_match_context *mctx = pcre2_match_context_create(p->gctx);
    if (!md || !mctx) {
        st = SL_FAIL(SL_ERR_NOMEM, "pre-tokenizer match data");
        goto fail;
    }
    if ((st = span_push(out, 0, n))) goto fail;
    for (int r = 0; r < p->n_re; r++) {
        tmp->n = 0;
        for (size_t i = 0; i < out->n; i++) {
            span sp = out->v[i];
            if ((st = split_piece(p->re[r], md, mctx, s + sp.off, sp.len, sp.off, tmp))) goto fail;
        }
        spanvec x = *out;
        *out = *tmp;
        *tmp = x;
    }
fail:
    pcre2_match_context_free(mctx);
    pcre2_match_data_free(md);
    return st;
}

/*
 * mkmodel.c — Llama-architecture GGUF with seeded random weights.
 *
 * Layout written (ggml shapes, ne0 first; llama.cpp's tensor names):
 *   token_embd.weight        [dim, vocab]            --type
 *   rope_freqs.weight        [hd/2]                  F32 (--rope-scaling llama3 only)
 *   blk.N.attn_norm.weight   [dim]                   F32
 *   blk.N.attn_q.weight      [dim, heads*hd]         --type
 *   blk.N.attn_k.weight      [dim, kv_heads*hd]      --type
 *   blk.N.attn_v.weight      [dim, kv_heads*hd]      --type
 *   blk.N.attn_output.weight [heads*hd, dim]         --type
 *   blk.N.ffn_norm.weight    [dim]                   F32
 *   blk.N.ffn_gate.weight    [dim, ffn]              --type
 *   blk.N.ffn_up.weight      [dim, ffn]              --type
 *   blk.N.ffn_down.weight    [ffn, dim]              --type
 *   output_norm.weight       [dim]                   F32
 *   output.weight            [dim, vocab]            --type (absent when tied)
 *
 * Randomness: xoshiro256+ seeded per tensor by splitmix64(seed ^ FNV(name)),
 * so a tensor's values depend only on the seed, its name and its shape (the
 * same token_embd with or without --tied). Values are uniform (cheap, and
 * what PyTorch's default Linear init draws) with the standard deviation
 * given in mkmodel.h; rows are generated, converted with sl_quantize_row and
 * streamed one at a time.
 *
 * The generated vocabulary is a valid SentencePiece ("llama") vocabulary:
 * <unk>, <s>, </s>, the 256 byte tokens, then NORMAL pieces in decreasing
 * score order — "▁", printable ASCII, "▁"+letter, frequent English bigrams
 * and suffixes, every "▁"-prefix of a list of common words (so merges can
 * reach whole words), then all lowercase strings of length 2, 3, ... with
 * and without "▁" — deduplicated, cut at exactly n tokens.
 */
#include "mkmodel.h"

#include "compute/quant.h"
#include "core/alloc.h"
#include "core/status.h"
#include "model/gguf.h"
#include "model/gguf_write.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIN_VOCAB 260            /* <unk> <s> </s>, 256 bytes, "▁" */
#define MAX_VOCAB (1 << 21)
#define MAX_DIM (1 << 20)
#define RMS_EPS 1e-5f
#define QUANT_VERSION 2

/* Llama 3 rope scaling as Meta's config for Llama 3.2 gives it and llama.cpp's
 * converter turns it into rope_freqs.weight. */
#define L3_FACTOR 32.0f
#define L3_LOW_FREQ_FACTOR 1.0f
#define L3_HIGH_FREQ_FACTOR 4.0f
#define L3_ORIGINAL_CTX 8192.0f

static const char SPM_SPACE[] = "\xe2\x96\x81"; /* U+2581 "▁" */

/* ---- random numbers ------------------------------------------------------ */

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static void rng_seed(rng *r, uint64_t seed, const char *name) {
    uint64_t x = seed ^ fnv1a(name);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256+ (the upper bits are the good ones; we use the top 24). */
static inline uint64_t rng_next(rng *r) {
    uint64_t *s = r->s;
    uint64_t res = s[0] + s[3];
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return res;
}

/* Uniform in [-1, 1): standard deviation 1/sqrt(3). */
static inline float rng_sym(rng *r) { return (float)(rng_next(r) >> 40) * (2.0f / 16777216.0f) - 1.0f; }

/* ---- vocabulary ---------------------------------------------------------- */

static const char *const BIGRAMS[] = {
    "th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ti", "es", "or", "te", "of", "ed", "is", "it",
    "al", "ar", "st", "to", "nt", "ng", "se", "ha", "as", "ou", "io", "le", "ve", "co", "me", "de", "hi", "ri",
    "ro", "ic", "ne", "ea", "ra", "ce", "li", "ch", "ll", "be", "ma", "si", "om", "ur", "ay", "ow", "ly", "ot",
    "ut", "id", "ig", "ir", "ee", "oo", "ad", "ai", "am", "ap", "ay", "ck", "ct", "ds", "el", "et", "ex", "fe",
    "ge", "gh", "ho", "il", "im", "ke", "ks", "la", "lo", "mp", "na", "no", "ns", "ol", "op", "ow", "pe", "pl",
    "po", "pr", "qu", "rs", "rt", "sa", "sh", "so", "ss", "su", "ta", "ts", "ty", "ul", "um", "un", "up", "us",
    "wa", "we", "wh", "wi", "wo", "ye", "yo",
};

static const char *const SUFFIXES[] = {
    "ing", "ed",  "er",   "est", "ly",   "tion", "ment", "ness", "able", "ful", "less", "ous", "ive", "ity",
    "ent", "ant", "ence", "ance", "ion", "al",  "ic",   "ist",  "ism",  "ize", "ise",  "ure", "age", "ery",
    "the", "and", "ter",  "her", "ere", "ver",  "all",  "ong",  "ight", "ould", "ook", "ame", "ake", "ide",
};

static const char *const WORDS[] = {
    "the", "and", "to", "of", "a", "in", "is", "it", "you", "that", "he", "was", "for", "on", "are", "with",
    "as", "I", "his", "they", "be", "at", "one", "have", "this", "from", "or", "had", "by", "not", "word",
    "but", "what", "some", "we", "can", "out", "other", "were", "all", "there", "when", "up", "use", "your",
    "how", "said", "an", "each", "she", "which", "do", "their", "time", "if", "will", "way", "about", "many",
    "then", "them", "write", "would", "like", "so", "these", "her", "long", "make", "thing", "see", "him",
    "two", "has", "look", "more", "day", "could", "go", "come", "did", "number", "sound", "no", "most",
    "people", "my", "over", "know", "water", "than", "call", "first", "who", "may", "down", "side", "been",
    "now", "find", "any", "new", "work", "part", "take", "get", "place", "made", "live", "where", "after",
    "back", "little", "only", "round", "man", "year", "came", "show", "every", "good", "me", "give", "our",
    "under", "name", "very", "through", "just", "form", "great", "think", "say", "help", "low", "line",
    "turn", "cause", "much", "mean", "before", "move", "right", "boy", "old", "too", "same", "tell", "does",
    "set", "three", "want", "air", "well", "also", "play", "small", "end", "put", "home", "read", "hand",
    "large", "add", "even", "land", "here", "must", "big", "high", "such", "follow", "act", "why", "ask",
    "men", "change", "went", "light", "kind", "off", "need", "house", "picture", "try", "us", "again",
    "animal", "point", "mother", "world", "near", "build", "self", "earth", "father", "head", "stand", "own",
    "page", "should", "country", "found", "answer", "school", "grow", "study", "still", "learn", "plant",
    "food", "sun", "four", "between", "state", "keep", "eye", "never", "last", "let", "thought", "city",
    "tree", "cross", "farm", "hard", "start", "might", "story", "saw", "far", "sea", "draw", "left", "late",
    "run", "while", "close", "night", "real", "life", "few", "once", "upon", "dog", "cat", "park", "ball",
    "happy", "sad", "friend", "friends", "girl", "because", "red", "blue", "green", "quick", "brown", "fox",
    "jumps", "lazy", "day", "sky", "bird", "fish", "toy", "toys", "mom", "dad", "love", "loved", "smile",
    "smiled", "play", "played", "wanted", "looked", "went", "saw", "said", "very", "Once", "The", "One",
    "She", "He", "They", "It", "Lily", "Ben", "Tom", "Sue", "Max", "Tim", "Anna", "There", "Then", "But",
    "When", "What", "We", "You", "This", "In", "And", "A",
};

typedef struct vocab_set {
    char **tok;     /* tokens, in order */
    int64_t n, cap; /* count and target */
    int64_t *slot;  /* hash slots: index into tok, -1 empty */
    uint64_t mask;
} vocab_set;

/* Add a piece if new. Returns false on allocation failure. */
static bool vs_add(vocab_set *v, const char *s) {
    if (v->n >= v->cap) return true;
    uint64_t h = fnv1a(s) & v->mask;
    while (v->slot[h] >= 0) {
        if (!strcmp(v->tok[v->slot[h]], s)) return true;
        h = (h + 1) & v->mask;
    }
    char *c = sl_strdup(s);
    if (!c) return false;
    v->slot[h] = v->n;
    v->tok[v->n++] = c;
    return true;
}

/* "▁" + s (when prefix) + s; returns false on allocation failure. */
static bool vs_add2(vocab_set *v, bool prefix, const char *s) {
    char tmp[96];
    snprintf(tmp, sizeof tmp, "%s%s", prefix ? SPM_SPACE : "", s);
    return vs_add(v, tmp);
}

/* Lowercase strings of length len in lexicographic order, with or without
 * "▁", until the set is full. */
static bool vs_add_all(vocab_set *v, int len, bool prefix) {
    char s[16];
    int idx[16] = {0};
    for (;;) {
        if (v->n >= v->cap) return true;
        for (int i = 0; i < len; i++) s[i] = (char)('a' + idx[i]);
        s[len] = '\0';
        if (!vs_add2(v, prefix, s)) return false;
        int k = len - 1;
        while (k >= 0 && ++idx[k] == 26) idx[k--] = 0;
        if (k < 0) return true;
    }
}

sl_status sl_mkmodel_vocab(int64_t n, char ***tokens_out, float **scores_out, int32_t **types_out) {
    sl_status st = SL_OK;
    vocab_set v = {0};
    float *scores = NULL;
    int32_t *types = NULL;
    *tokens_out = NULL;
    *scores_out = NULL;
    *types_out = NULL;
    if (n < MIN_VOCAB || n > MAX_VOCAB)
        return SL_FAIL(SL_ERR_INVALID, "--vocab %" PRId64 " is out of range [%d, %d]", n, MIN_VOCAB, MAX_VOCAB);
    uint64_t cap = 16;
    while (cap < (uint64_t)n * 2) cap <<= 1;
    v.cap = n;
    v.mask = cap - 1;
    v.tok = sl_calloc((size_t)n, sizeof *v.tok);
    v.slot = sl_alloc_array(cap, sizeof *v.slot);
    scores = sl_alloc_array((size_t)n, sizeof *scores);
    types = sl_alloc_array((size_t)n, sizeof *types);
    if (!v.tok || !v.slot || !scores || !types) goto nomem;
    memset(v.slot, 0xff, cap * sizeof *v.slot);

    bool ok = vs_add(&v, "<unk>") && vs_add(&v, "<s>") && vs_add(&v, "</s>");
    for (int b = 0; b < 256 && ok; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        ok = vs_add(&v, s);
    }
    ok = ok && vs_add(&v, SPM_SPACE);
    for (int c = 0x21; c < 0x7f && ok; c++) {
        char s[2] = {(char)c, 0};
        ok = vs_add(&v, s);
    }
    for (int c = 0; c < 26 && ok; c++) {
        char s[2] = {(char)('a' + c), 0};
        ok = vs_add2(&v, true, s);
    }
    for (int c = 0; c < 26 && ok; c++) {
        char s[2] = {(char)('A' + c), 0};
        ok = vs_add2(&v, true, s);
    }
    for (size_t i = 0; i < sizeof BIGRAMS / sizeof BIGRAMS[0] && ok; i++) ok = vs_add(&v, BIGRAMS[i]);
    for (size_t i = 0; i < sizeof SUFFIXES / sizeof SUFFIXES[0] && ok; i++) ok = vs_add(&v, SUFFIXES[i]);
    /* every "▁"-prefix of each word, shortest first, so merges reach it */
    for (size_t i = 0; i < sizeof WORDS / sizeof WORDS[0] && ok; i++) {
        char s[64];
        size_t len = strlen(WORDS[i]);
        for (size_t k = 1; k <= len && ok; k++) {
            memcpy(s, WORDS[i], k);
            s[k] = '\0';
            ok = vs_add2(&v, true, s);
        }
    }
    for (int len = 2; len <= 6 && ok && v.n < v.cap; len++) {
        ok = vs_add_all(&v, len, false);
        ok = ok && vs_add_all(&v, len, true);
    }
    if (!ok) goto nomem;
    SL_ASSERT(v.n == n); /* 2 * 26^6 pieces are far more than MAX_VOCAB */
    for (int64_t i = 0; i < n; i++) {
        if (i == 0) types[i] = 2;                  /* UNKNOWN */
        else if (i < 3) types[i] = 3;              /* CONTROL */
        else if (i < 3 + 256) types[i] = 6;        /* BYTE */
        else types[i] = 1;                         /* NORMAL */
        scores[i] = i < 3 + 256 ? 0.0f : (float)(3 + 256 - i);
    }
    sl_free(v.slot);
    *tokens_out = v.tok;
    *scores_out = scores;
    *types_out = types;
    return SL_OK;
nomem:
    st = SL_FAIL(SL_ERR_NOMEM, "out of memory for a vocabulary of %" PRId64 " tokens", n);
    if (v.tok)
        for (int64_t i = 0; i < v.n; i++) sl_free(v.tok[i]);
    sl_free(v.tok);
    sl_free(v.slot);
    sl_free(scores);
    sl_free(types);
    return st;
}

static void vocab_free(char **tokens, int64_t n) {
    if (!tokens) return;
    for (int64_t i = 0; i < n; i++) sl_free(tokens[i]);
    sl_free(tokens);
}

/* ---- parameters ---------------------------------------------------------- */

void sl_mkmodel_params_default(sl_mkmodel_params *p) {
    memset(p, 0, sizeof *p);
    p->type = SL_TYPE_F16;
    p->n_vocab = 32000;
    p->n_ctx = 2048;
    p->rope_base = 10000.0f;
    p->rope_scaling = SL_ROPE_SCALING_NONE;
    p->seed = 1;
}

int sl_mkmodel_file_type(sl_type t) {
    switch (t) {
    case SL_TYPE_F32: return 0;   /* LLAMA_FTYPE_ALL_F32 */
    case SL_TYPE_F16: return 1;   /* LLAMA_FTYPE_MOSTLY_F16 */
    case SL_TYPE_Q4_0: return 2;  /* LLAMA_FTYPE_MOSTLY_Q4_0 */
    case SL_TYPE_Q8_0: return 7;  /* LLAMA_FTYPE_MOSTLY_Q8_0 */
    case SL_TYPE_BF16: return 32; /* LLAMA_FTYPE_MOSTLY_BF16 */
    default: return -1;
    }
}

static sl_status check_range(const char *flag, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
        return SL_FAIL(SL_ERR_INVALID, "%s %" PRId64 " is out of range [%" PRId64 ", %" PRId64 "]", flag, v, lo, hi);
    return SL_OK;
}

sl_status sl_mkmodel_validate(const sl_mkmodel_params *p) {
    sl_status st;
    if (!p->path || !*p->path) return SL_FAIL(SL_ERR_INVALID, "-o: no output file given");
    if ((st = check_range("--dim", p->dim, 1, MAX_DIM)) || (st = check_range("--layers", p->n_layers, 1, 4096)) ||
        (st = check_range("--heads", p->n_heads, 1, p->dim)) ||
        (st = check_range("--ffn", p->n_ff, 1, 4 * (int64_t)MAX_DIM)) ||
        (st = check_range("--ctx", p->n_ctx, 1, INT32_MAX)))
        return st;
    int64_t kvh = p->n_kv_heads ? p->n_kv_heads : p->n_heads;
    if ((st = check_range("--kv-heads", kvh, 1, p->n_heads))) return st;
    if (p->dim % p->n_heads != 0)
        return SL_FAIL(SL_ERR_INVALID, "--dim %" PRId64 " is not a multiple of --heads %" PRId64, p->dim, p->n_heads);
    if (p->n_heads % kvh != 0)
        return SL_FAIL(SL_ERR_INVALID, "--heads %" PRId64 " is not a multiple of --kv-heads %" PRId64, p->n_heads, kvh);
    int64_t hd = p->dim / p->n_heads;
    if (hd % 2 != 0)
        return SL_FAIL(SL_ERR_INVALID, "head dim --dim/--heads = %" PRId64 "/%" PRId64 " = %" PRId64
                       " is odd (rope rotates pairs)", p->dim, p->n_heads, hd);
    if (sl_mkmodel_file_type(p->type) < 0)
        return SL_FAIL(SL_ERR_INVALID, "--type %s is not supported (use F32, F16, BF16, Q8_0 or Q4_0)",
                       sl_type_name((uint32_t)p->type));
    const sl_type_info *ti = sl_type_get((uint32_t)p->type);
    if (p->dim % ti->blck != 0)
        return SL_FAIL(SL_ERR_INVALID, "--dim %" PRId64 " is not a multiple of the %s block size %" PRIu32, p->dim,
                       ti->name, ti->blck);
    if (p->n_ff % ti->blck != 0)
        return SL_FAIL(SL_ERR_INVALID, "--ffn %" PRId64 " is not a multiple of the %s block size %" PRIu32, p->n_ff,
                       ti->name, ti->blck);
    if (!p->vocab_from && (st = check_range("--vocab", p->n_vocab, MIN_VOCAB, MAX_VOCAB))) return st;
    if (!(p->rope_base > 0.0f) || !isfinite(p->rope_base))
        return SL_FAIL(SL_ERR_INVALID, "--rope-base %g must be a positive number", (double)p->rope_base);
    if (p->rope_scaling != SL_ROPE_SCALING_NONE && p->rope_scaling != SL_ROPE_SCALING_LLAMA3)
        return SL_FAIL(SL_ERR_INVALID, "--rope-scaling %d is not known (none or llama3)", (int)p->rope_scaling);
    return SL_OK;
}

/* ---- tensors ------------------------------------------------------------- */

typedef enum tkind { T_EMBED, T_MATRIX, T_NORM, T_ROPE } tkind;

typedef struct tplan {
    char name[64];
    int64_t ne0, ne1; /* ne1 = 1 for vectors */
    tkind kind;
    sl_type type;
} tplan;

static int64_t plan_tensors(const sl_mkmodel_params *p, int64_t n_vocab, tplan *t) {
    int64_t hd = p->dim / p->n_heads, kvh = p->n_kv_heads ? p->n_kv_heads : p->n_heads;
    int64_t n = 0;
#define ADD(kind_, ne0_, ne1_, ...)                                                         \
    do {                                                                                    \
        if (t) {                                                                            \
            snprintf(t[n].name, sizeof t[n].name, __VA_ARGS__);                             \
            t[n].ne0 = (ne0_);                                                              \
            t[n].ne1 = (ne1_);                                                              \
            t[n].kind = (kind_);                                                            \
            t[n].type = (kind_) == T_NORM || (kind_) == T_ROPE ? SL_TYPE_F32 : p->type;     \
        }                                                                                   \
        n++;                                                                                \
    } while (0)
    ADD(T_EMBED, p->dim, n_vocab, "token_embd.weight");
    if (p->rope_scaling == SL_ROPE_SCALING_LLAMA3) ADD(T_ROPE, hd / 2, 1, "rope_freqs.weight");
    for (int64_t l = 0; l < p->n_layers; l++) {
        ADD(T_NORM, p->dim, 1, "blk.%" PRId64 ".attn_norm.weight", l);
        ADD(T_MATRIX, p->dim, p->n_heads * hd, "blk.%" PRId64 ".attn_q.weight", l);
        ADD(T_MATRIX, p->dim, kvh * hd, "blk.%" PRId64 ".attn_k.weight", l);
        ADD(T_MATRIX, p->dim, kvh * hd, "blk.%" PRId64 ".attn_v.weight", l);
        ADD(T_MATRIX, p->n_heads * hd, p->dim, "blk.%" PRId64 ".attn_output.weight", l);
        ADD(T_NORM, p->dim, 1, "blk.%" PRId64 ".ffn_norm.weight", l);
        ADD(T_MATRIX, p->dim, p->n_ff, "blk.%" PRId64 ".ffn_gate.weight", l);
        ADD(T_MATRIX, p->dim, p->n_ff, "blk.%" PRId64 ".ffn_up.weight", l);
        ADD(T_MATRIX, p->n_ff, p->dim, "blk.%" PRId64 ".ffn_down.weight", l);
    }
    ADD(T_NORM, p->dim, 1, "output_norm.weight");
    if (!p->tied) ADD(T_EMBED, p->dim, n_vocab, "output.weight");
#undef ADD
    return n;
}

/* Llama 3 frequency factors as llama.cpp's converter computes them:
 * freq_i = 1 / base^(2i/hd) and the wavelength 2π/freq in float32 (torch
 * tensors), the blend in double (Python floats), rounded to float32 at the
 * end — this reproduces small-llama-F16.gguf's rope_freqs bit for bit.
 * Factor 1 above the high-frequency wavelength, `factor` below the
 * low-frequency one, a smooth blend between. */
static void llama3_rope_factors(float base, int64_t hd, float *out) {
    const double low_wavelen = L3_ORIGINAL_CTX / L3_LOW_FREQ_FACTOR;
    const double high_wavelen = L3_ORIGINAL_CTX / L3_HIGH_FREQ_FACTOR;
    for (int64_t i = 0; i < hd / 2; i++) {
        float freq = 1.0f / powf(base, (float)(2 * i) / (float)hd);
        float wavelen = (float)(2.0 * M_PI / (double)freq);
        if (wavelen < high_wavelen) {
            out[i] = 1.0f;
        } else if (wavelen > low_wavelen) {
            out[i] = L3_FACTOR;
        } else {
            double smooth = ((double)L3_ORIGINAL_CTX / wavelen - L3_LOW_FREQ_FACTOR) /
                            (L3_HIGH_FREQ_FACTOR - L3_LOW_FREQ_FACTOR);
            out[i] = (float)(1.0 / ((1.0 - smooth) / L3_FACTOR + smooth));
        }
    }
}

/* Generate tensor t row by row and stream it. x holds ne0 floats, y a row of
 * t->type. */
static sl_status write_tensor(sl_gguf_writer *w, const sl_mkmodel_params *p, const tplan *t, float *x, void *y) {
    sl_status st = SL_OK;
    size_t row_bytes = sl_type_row_size(t->type, t->ne0);
    rng r;
    rng_seed(&r, p->seed, t->name);
    if (t->kind == T_ROPE) {
        llama3_rope_factors(p->rope_base, p->dim / p->n_heads, x);
        return sl_gguf_writer_write(w, x, row_bytes);
    }
    /* uniform in [-a, a) has standard deviation a/sqrt(3) */
    float a = 0.0f, offset = 0.0f;
    switch (t->kind) {
    case T_EMBED: a = sqrtf(3.0f) * 2.0f / sqrtf((float)t->ne0); break;
    case T_MATRIX: a = sqrtf(3.0f) / sqrtf((float)t->ne0); break;
    case T_NORM: a = sqrtf(3.0f) * 0.1f; offset = 1.0f; break;
    case T_ROPE: break;
    }
    for (int64_t row = 0; row < t->ne1; row++) {
        for (int64_t i = 0; i < t->ne0; i++) x[i] = offset + a * rng_sym(&r);
        bool ok = sl_quantize_row(t->type, x, y, t->ne0);
        SL_ASSERT(ok); /* the type was validated */
        if ((st = sl_gguf_writer_write(w, y, row_bytes))) return st;
    }
    return SL_OK;
}

/* ---- metadata ------------------------------------------------------------ */

static sl_status set_vocab(sl_gguf_writer *w, const sl_mkmodel_params *p, int64_t *n_vocab) {
    sl_status st;
    char **tokens = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    if ((st = sl_mkmodel_vocab(p->n_vocab, &tokens, &scores, &types))) goto fail;
    uint64_t n = (uint64_t)p->n_vocab;
    if ((st = sl_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama")) ||
        (st = sl_gguf_writer_set_str(w, "tokenizer.ggml.pre", "default")) ||
        (st = sl_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tokens, n)) ||
        (st = sl_gguf_writer_set_arr(w, "tokenizer.ggml.scores", SL_GGUF_F32, scores, n)) ||
        (st = sl_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", SL_GGUF_I32, types, n)) ||
        (st = sl_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1)) ||
        (st = sl_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2)) ||
        (st = sl_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0)) ||
        (st = sl_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true)) ||
        (st = sl_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", false)))
        goto fail;
    *n_vocab = p->n_vocab;
fail:
    vocab_free(tokens, p->n_vocab);
    sl_free(scores);
    sl_free(types);
    return st;
}

static sl_status copy_vocab(sl_gguf_writer *w, const char *from, int64_t *n_vocab) {
    sl_gguf *g = NULL;
    sl_status st = sl_gguf_open(from, &g);
    const sl_gguf_kv *kv = NULL;
    sl_gguf_vtype et;
    uint64_t n = 0;
    if (st) {
        st = sl_err_prefix(st, "--vocab-from");
        goto fail;
    }
    if ((st = sl_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &kv))) {
        st = sl_err_prefix(st, "--vocab-from %s", from);
        goto fail;
    }
    if (et != SL_GGUF_STRING || n == 0 || n > INT32_MAX) {
        st = SL_FAIL(SL_ERR_FORMAT, "--vocab-from %s: tokenizer.ggml.tokens is an array of %" PRIu64
                     " %s (expected a non-empty array of strings)", from, n, sl_vtype_name(et));
        goto fail;
    }
    if ((st = sl_gguf_writer_copy_prefix(w, g, "tokenizer.", NULL))) goto fail;
    *n_vocab = (int64_t)n;
fail:
    sl_gguf_close(g);
    return st;
}

static sl_status set_metadata(sl_gguf_writer *w, const sl_mkmodel_params *p, int64_t *n_vocab) {
    sl_status st;
    int64_t hd = p->dim / p->n_heads, kvh = p->n_kv_heads ? p->n_kv_heads : p->n_heads;
    char name[160], desc[400];
    /* Key order follows small-llama-F16.gguf (llama.cpp's tools). The writer
     * keeps a key at the position of its first set, so llama.vocab_size is
     * set to 0 in its place and to the token count once the vocabulary is in. */
    if ((st = sl_gguf_writer_set_str(w, "general.architecture", "llama"))) return st;
    if (p->name) {
        snprintf(name, sizeof name, "%s", p->name);
    } else {
        snprintf(name, sizeof name, "mkmodel-llama (random weights, dim %" PRId64 ", %" PRId64 " layers, %s)",
                 p->dim, p->n_layers, sl_type_name((uint32_t)p->type));
    }
    if ((st = sl_gguf_writer_set_str(w, "general.name", name)) ||
        (st = sl_gguf_writer_set_str(w, "general.type", "model")) ||
        (st = sl_gguf_writer_set_u32(w, "llama.context_length", (uint32_t)p->n_ctx)) ||
        (st = sl_gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)p->dim)) ||
        (st = sl_gguf_writer_set_u32(w, "llama.block_count", (uint32_t)p->n_layers)) ||
        (st = sl_gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)p->n_ff)) ||
        (st = sl_gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)p->n_heads)) ||
        (st = sl_gguf_writer_set_u32(w, "llama.attention.head_count_kv", (uint32_t)kvh)) ||
        (st = sl_gguf_writer_set_f32(w, "llama.rope.freq_base", p->rope_base)) ||
        (st = sl_gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", RMS_EPS)) ||
        (st = sl_gguf_writer_set_u32(w, "llama.attention.key_length", (uint32_t)hd)) ||
        (st = sl_gguf_writer_set_u32(w, "llama.attention.value_length", (uint32_t)hd)) ||
        (st = sl_gguf_writer_set_u32(w, "general.file_type", (uint32_t)sl_mkmodel_file_type(p->type))) ||
        (st = sl_gguf_writer_set_u32(w, "llama.vocab_size", 0)) ||
        (st = sl_gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)hd)))
        return st;
    if ((st = p->vocab_from ? copy_vocab(w, p->vocab_from, n_vocab) : set_vocab(w, p, n_vocab))) return st;
    if ((st = sl_gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)*n_vocab))) return st;
    snprintf(desc, sizeof desc,
             "random weights seed %" PRIu64 ": uniform; matrices std 1/sqrt(n_in), token_embd/output std "
             "2/sqrt(dim), norms 1+U(std 0.1)%s; made by shardlm mkmodel",
             p->seed, p->rope_scaling == SL_ROPE_SCALING_LLAMA3 ? "; llama3 rope scaling (factor 32)" : "");
    if ((st = sl_gguf_writer_set_str(w, "general.description", desc)) ||
        (st = sl_gguf_writer_set_u32(w, "general.quantization_version", QUANT_VERSION)))
        return st;
    return SL_OK;
}

/* ---- write --------------------------------------------------------------- */

sl_status sl_mkmodel_write(const sl_mkmodel_params *p) {
    sl_status st;
    sl_gguf_writer *w = NULL;
    tplan *plan = NULL;
    float *x = NULL;
    void *y = NULL;
    bool created = false;
    int64_t n_vocab = 0;
    if ((st = sl_mkmodel_validate(p))) return st;
    if ((st = sl_gguf_writer_create(p->path, &w))) goto fail;
    if ((st = set_metadata(w, p, &n_vocab))) goto fail;

    int64_t n_t = plan_tensors(p, n_vocab, NULL);
    plan = sl_calloc((size_t)n_t, sizeof *plan);
    if (!plan) {
        st = SL_FAIL(SL_ERR_NOMEM, "out of memory for %" PRId64 " tensors", n_t);
        goto fail;
    }
    plan_tensors(p, n_vocab, plan);
    int64_t max_ne0 = 1;
    for (int64_t i = 0; i < n_t; i++) {
        int64_t ne[2] = {plan[i].ne0, plan[i].ne1};
        uint32_t n_dims = plan[i].kind == T_NORM || plan[i].kind == T_ROPE ? 1 : 2;
        if ((st = sl_gguf_writer_add_tensor(w, plan[i].name, n_dims, ne, plan[i].type))) goto fail;
        if (plan[i].ne0 > max_ne0) max_ne0 = plan[i].ne0;
    }
    /* one row of floats and one converted row (F32 is the widest type) */
    x = sl_alloc_array((size_t)max_ne0, sizeof *x);
    y = sl_alloc_array((size_t)max_ne0, sizeof(float));
    if (!x || !y) {
        st = SL_FAIL(SL_ERR_NOMEM, "out of memory for a row of %" PRId64 " floats", max_ne0);
        goto fail;
    }
    created = true;
    if ((st = sl_gguf_writer_begin_data(w))) goto fail;
    for (int64_t i = 0; i < n_t; i++)
        if ((st = write_tensor(w, p, &plan[i], x, y))) goto fail;
    if ((st = sl_gguf_writer_finish(w))) goto fail;
    sl_gguf_writer_destroy(w);
    sl_free(plan);
    sl_free(x);
    sl_free(y);
    return SL_OK;
fail:
    sl_gguf_writer_destroy(w);
    if (created) {
        struct stat sb;
        if (lstat(p->path, &sb) == 0 && S_ISREG(sb.st_mode)) unlink(p->path);
    }
    sl_free(plan);
    sl_free(x);
    sl_free(y);
    return st;
}

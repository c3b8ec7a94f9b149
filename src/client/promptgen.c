/*
 * promptgen.c — exact-length prompts of random common English words (see
 * promptgen.h).
 *
 * Costs: base = tokens of "" (the BOS, or 0); first[w] = tokens("w") - base;
 * rest[w] = tokens("the w") - tokens("the"). reach[r] is true when r tokens
 * can be written as a sum of rest costs (reach[0] = true). To compose r
 * tokens, pick random words whose cost c keeps reach[r - c]; when a few
 * random picks miss, take the first fitting word from a random start, which
 * exists because reach[r] held.
 */
#include "client/promptgen.h"

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* Common English words, lower case, no punctuation. */
static const char *const WORDS[] = {
    "a", "about", "after", "again", "air", "all", "also", "always", "and", "animal", "another", "answer", "any",
    "apple", "are", "around", "as", "ask", "at", "away", "back", "ball", "be", "bear", "beautiful", "because",
    "bed", "been", "before", "began", "begin", "behind", "best", "better", "between", "big", "bird", "black",
    "blue", "boat", "body", "book", "both", "box", "boy", "bread", "bright", "bring", "brother", "brown", "build",
    "busy", "but", "by", "cake", "call", "came", "can", "car", "care", "carry", "cat", "change", "child",
    "children", "city", "clean", "close", "cloud", "cold", "color", "come", "could", "country", "cup", "cut",
    "dance", "dark", "day", "did", "different", "do", "does", "dog", "done", "door", "down", "draw", "dream",
    "drink", "dry", "during", "each", "early", "earth", "easy", "eat", "egg", "end", "enough", "even", "evening",
    "every", "eye", "face", "fall", "family", "far", "farm", "fast", "father", "feel", "few", "field", "find",
    "fire", "first", "fish", "five", "floor", "flower", "fly", "follow", "food", "for", "forest", "found", "four",
    "friend", "from", "full", "fun", "game", "garden", "gave", "get", "girl", "give", "go", "good", "got",
    "grass", "great", "green", "ground", "group", "grow", "had", "hand", "happy", "hard", "has", "hat", "have",
    "he", "head", "hear", "heart", "help", "her", "here", "high", "hill", "him", "his", "hold", "home", "horse",
    "hot", "house", "how", "idea", "if", "important", "in", "inside", "into", "is", "it", "jump", "just", "keep",
    "kind", "king", "know", "lake", "land", "large", "last", "late", "laugh", "learn", "leave", "left", "let",
    "letter", "life", "light", "like", "line", "little", "live", "long", "look", "love", "low", "made", "make",
    "man", "many", "may", "me", "mean", "milk", "mind", "money", "moon", "more", "morning", "most", "mother",
    "mountain", "move", "much", "music", "must", "my", "name", "near", "need", "never", "new", "next", "nice",
    "night", "no", "not", "nothing", "now", "number", "of", "off", "often", "old", "on", "once", "one", "only",
    "open", "or", "other", "our", "out", "over", "own", "paper", "park", "part", "people", "picture", "place",
    "plant", "play", "please", "point", "quick", "quiet", "rain", "ran", "read", "ready", "red", "remember",
    "rest", "right", "river", "road", "rock", "room", "round", "run", "said", "same", "saw", "say", "school",
    "sea", "see", "seem", "shall", "she", "ship", "short", "should", "show", "side", "simple", "sing", "sister",
    "sit", "sky", "sleep", "slow", "small", "snow", "so", "some", "song", "soon", "sound", "space", "spring",
    "stand", "star", "start", "still", "stone", "stop", "story", "street", "strong", "such", "summer", "sun",
    "sure", "table", "take", "talk", "tall", "teacher", "tell", "than", "thank", "that", "the", "their", "them",
    "then", "there", "these", "they", "thing", "think", "this", "those", "thought", "three", "through", "time",
    "to", "today", "together", "told", "too", "took", "town", "toy", "tree", "true", "try", "turn", "two",
    "under", "until", "up", "us", "use", "very", "visit", "voice", "wait", "walk", "want", "warm", "was",
    "watch", "water", "way", "we", "well", "went", "were", "what", "when", "where", "which", "while", "white",
    "who", "why", "will", "wind", "window", "winter", "with", "word", "work", "world", "would", "write", "year",
    "yellow", "yes", "you", "young", "your",
};
#define N_WORDS (sizeof WORDS / sizeof WORDS[0])
#define MAX_WORD_COST 32
#define REF_WORD "the"

struct sl_promptgen {
    sl_promptgen_cfg cfg;
    int32_t base;          /* tokens of the empty text (BOS or nothing) */
    size_t n_words;
    const char **words;    /* usable words */
    int32_t *first, *rest; /* their costs */
    int32_t min_first, min_rest;
    bool *reach;           /* [0, max_tokens]: reachable as a sum of rest costs */
    char *prefix;          /* shared prefix text, "" when none */
    int32_t *prefix_ids;
    size_t n_prefix_ids;
};

typedef struct strbuf {
    char *s;
    size_t n, cap;
} strbuf;

static sl_status sb_add(strbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap * 2 : 256;
        while (c < b->n + n + 1) c *= 2;
        char *nb = sl_realloc(b->s, c);
        if (!nb) return SL_FAIL(SL_ERR_NOMEM, "prompt text of %zu bytes", c);
        b->s = nb;
        b->cap = c;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
    return SL_OK;
}

static sl_status count_tokens(sl_tokenize_fn tok, void *ud, const char *text, int32_t *n) {
    int32_t *ids = NULL;
    size_t k = 0;
    sl_status st = tok(ud, text, &ids, &k);
    sl_free(ids);
    if (st) return sl_err_prefix(st, "tokenizing '%s'", text);
    *n = (int32_t)k;
    return SL_OK;
}

static uint64_t draw(uint64_t seed, uint64_t stream, uint64_t *ctr, uint64_t n) {
    return (uint64_t)(sl_rng_uniform(seed, stream, (*ctr)++) * (double)n) % n;
}

/* Append words costing exactly r tokens (each preceded by a space unless `first`). */
static sl_status compose(const sl_promptgen *g, strbuf *b, int32_t r, bool first, uint64_t stream, uint64_t *ctr) {
    while (r > 0) {
        const int32_t *cost = first ? g->first : g->rest;
        size_t pick = g->n_words;
        for (int t = 0; t < 16 && pick == g->n_words; t++) {
            size_t w = (size_t)draw(g->cfg.seed, stream, ctr, g->n_words);
            if (cost[w] <= r && g->reach[r - cost[w]]) pick = w;
        }
        if (pick == g->n_words) {
            size_t s = (size_t)draw(g->cfg.seed, stream, ctr, g->n_words);
            for (size_t k = 0; k < g->n_words && pick == g->n_words; k++) {
                size_t w = (s + k) % g->n_words;
                if (cost[w] <= r && g->reach[r - cost[w]]) pick = w;
            }
        }
        if (pick == g->n_words)
            return SL_FAIL(SL_ERR_RANGE, "no words of the built-in list add up to %d more tokens", r);
        sl_status st = SL_OK;
        if (!first) st = sb_add(b, " ", 1);
        if (!st) st = sb_add(b, g->words[pick], strlen(g->words[pick]));
        if (st) return st;
        r -= cost[pick];
        first = false;
    }
    return SL_OK;
}

/* Whether a text of exactly n tokens can start from nothing (BOS included):
 * some first word must leave a remainder that rest costs reach. */
static bool text_reachable(const sl_promptgen *g, int32_t n) {
    int32_t r = n - g->base;
    if (r <= 0 || r > g->cfg.max_tokens) return false;
    for (size_t w = 0; w < g->n_words; w++)
        if (g->first[w] <= r && g->reach[r - g->first[w]]) return true;
    return false;
}

/* A text of exactly n tokens starting from nothing (BOS included). */
static sl_status compose_text(const sl_promptgen *g, strbuf *b, int32_t n, uint64_t stream, uint64_t *ctr) {
    if (!text_reachable(g, n))
        return SL_FAIL(SL_ERR_RANGE, "no words of the built-in list make a text of exactly %d tokens", n);
    return compose(g, b, n - g->base, true, stream, ctr);
}

sl_status sl_promptgen_create(const sl_promptgen_cfg *cfg, sl_tokenize_fn tok, void *ud, sl_promptgen **out) {
    *out = NULL;
    sl_status st = SL_OK;
    strbuf b = {0};
    if (cfg->max_tokens < 1 || cfg->max_tokens > (1 << 24))
        return SL_FAIL(SL_ERR_INVALID, "max_tokens %d is not in [1, 2^24]", cfg->max_tokens);
    if (cfg->prefix_tokens < 0 || cfg->prefix_tokens >= cfg->max_tokens)
        return SL_FAIL(SL_ERR_INVALID, "prefix_tokens %d is not in [0, max_tokens %d)", cfg->prefix_tokens,
                       cfg->max_tokens);
    sl_promptgen *g = sl_calloc(1, sizeof *g);
    if (!g) return SL_FAIL(SL_ERR_NOMEM, "prompt generator");
    g->cfg = *cfg;
    g->words = sl_alloc_array(N_WORDS, sizeof *g->words);
    g->first = sl_alloc_array(N_WORDS, sizeof *g->first);
    g->rest = sl_alloc_array(N_WORDS, sizeof *g->rest);
    g->reach = sl_calloc((size_t)cfg->max_tokens + 1, sizeof *g->reach);
    if (!g->words || !g->first || !g->rest || !g->reach) {
        st = SL_FAIL(SL_ERR_NOMEM, "prompt generator tables for %d tokens", cfg->max_tokens);
        goto fail;
    }
    int32_t ref;
    if ((st = count_tokens(tok, ud, "", &g->base)) || (st = count_tokens(tok, ud, REF_WORD, &ref))) goto fail;
    g->min_first = g->min_rest = MAX_WORD_COST + 1;
    char text[64];
    for (size_t i = 0; i < N_WORDS; i++) {
        int32_t a, c;
        snprintf(text, sizeof text, "%s %s", REF_WORD, WORDS[i]);
        if ((st = count_tokens(tok, ud, WORDS[i], &a)) || (st = count_tokens(tok, ud, text, &c))) goto fail;
        a -= g->base;
        c -= ref;
        if (a < 1 || a > MAX_WORD_COST || c < 1 || c > MAX_WORD_COST) continue; /* odd tokenizer: skip the word */
        g->words[g->n_words] = WORDS[i];
        g->first[g->n_words] = a;
        g->rest[g->n_words] = c;
        if (a < g->min_first) g->min_first = a;
        if (c < g->min_rest) g->min_rest = c;
        g->n_words++;
    }
    if (g->n_words == 0) {
        st = SL_FAIL(SL_ERR_UNSUPPORTED, "no word of the built-in list has a usable token count with this tokenizer");
        goto fail;
    }
    g->reach[0] = true;
    for (int32_t r = 1; r <= cfg->max_tokens; r++)
        for (size_t w = 0; w < g->n_words && !g->reach[r]; w++)
            g->reach[r] = g->rest[w] <= r && g->reach[r - g->rest[w]];
    if (cfg->prefix_tokens > 0) {
        uint64_t ctr = 0;
        if ((st = sb_add(&b, "", 0)) || (st = compose_text(g, &b, cfg->prefix_tokens, UINT64_MAX, &ctr))) {
            sl_err_prefix(st, "shared prefix of %d tokens", cfg->prefix_tokens);
            goto fail;
        }
        g->prefix = b.s;
        b.s = NULL;
        if ((st = tok(ud, g->prefix, &g->prefix_ids, &g->n_prefix_ids))) goto fail;
        if ((int64_t)g->n_prefix_ids != cfg->prefix_tokens) {
            st = SL_FAIL(SL_ERR_FORMAT,
                         "the shared prefix tokenizes to %zu tokens, not the %d its words add up to: this tokenizer "
                         "does not count words independently",
                         g->n_prefix_ids, cfg->prefix_tokens);
            goto fail;
        }
    } else {
        g->prefix = sl_strdup("");
        if (!g->prefix) {
            st = SL_FAIL(SL_ERR_NOMEM, "prefix");
            goto fail;
        }
    }
    *out = g;
    return SL_OK;
fail:
    sl_free(b.s);
    sl_promptgen_destroy(g);
    return st;
}

void sl_promptgen_destroy(sl_promptgen *g) {
    if (!g) return;
    sl_free(g->words);
    sl_free(g->first);
    sl_free(g->rest);
    sl_free(g->reach);
    sl_free(g->prefix);
    sl_free(g->prefix_ids);
    sl_free(g);
}

sl_status sl_promptgen_make(const sl_promptgen *g, uint64_t index, int32_t n_tokens, char **text) {
    *text = NULL;
    strbuf b = {0};
    sl_status st;
    uint64_t ctr = 0;
    if (n_tokens > g->cfg.max_tokens) {
        st = SL_FAIL(SL_ERR_RANGE, "prompt of %d tokens: longer than the %d the generator was made for", n_tokens,
                     g->cfg.max_tokens);
        goto fail;
    }
    if (g->cfg.prefix_tokens > 0) {
        int32_t r = n_tokens - g->cfg.prefix_tokens;
        if (r < 1 || !g->reach[r]) {
            st = SL_FAIL(SL_ERR_RANGE, "prompt of %d tokens: no words of the built-in list add exactly %d tokens to "
                         "the %d-token shared prefix", n_tokens, r, g->cfg.prefix_tokens);
            goto fail;
        }
        if ((st = sb_add(&b, g->prefix, strlen(g->prefix))) || (st = compose(g, &b, r, false, index, &ctr))) goto fail;
    } else {
        if ((st = sb_add(&b, "", 0)) || (st = compose_text(g, &b, n_tokens, index, &ctr))) goto fail;
    }
    *text = b.s;
    return SL_OK;
fail:
    sl_free(b.s);
    return st;
}

sl_status sl_promptgen_check(const sl_promptgen *g, const char *text, int32_t n_tokens, sl_tokenize_fn tok,
                             void *ud) {
    int32_t *ids = NULL;
    size_t n = 0;
    sl_status st = tok(ud, text, &ids, &n);
    if (st) goto fail;
    if ((int64_t)n != n_tokens) {
        st = SL_FAIL(SL_ERR_FORMAT, "prompt '%.60s...' has %zu tokens, not %d", text, n, n_tokens);
        goto fail;
    }
    for (size_t i = 0; i < g->n_prefix_ids; i++)
        if (ids[i] != g->prefix_ids[i]) {
            st = SL_FAIL(SL_ERR_FORMAT, "prompt '%.60s...': token %zu is %d, the shared prefix has %d there", text, i,
                         ids[i], g->prefix_ids[i]);
            goto fail;
        }
fail:
    sl_free(ids);
    return st;
}

bool sl_promptgen_can_make(const sl_promptgen *g, int32_t n_tokens) {
    if (n_tokens < 1 || n_tokens > g->cfg.max_tokens) return false;
    if (g->cfg.prefix_tokens == 0) return text_reachable(g, n_tokens);
    int32_t r = n_tokens - g->cfg.prefix_tokens;
    return r >= 1 && g->reach[r];
}

int32_t sl_promptgen_min_tokens(const sl_promptgen *g) {
    return g->cfg.prefix_tokens > 0 ? g->cfg.prefix_tokens + g->min_rest : g->base + g->min_first;
}

size_t sl_promptgen_n_words(const sl_promptgen *g) { return g->n_words; }

const char *sl_promptgen_prefix(const sl_promptgen *g) { return g->prefix; }

/*
 * sampler.c — penalties, truncation (top-k, top-p, min-p), temperature and a
 * reproducible draw.
 *
 * Design: one pass copies the logits into `work`, mapping NaN to -inf and -0
 * to +0 so every comparison below is a total order: by logit desc, then id
 * asc (the "ranking"). Penalties touch only the distinct tokens of the
 * history window (counted in `count`, all zero between calls). Every filter
 * keeps a prefix of the ranking, so only a prefix is ever sorted:
 *   - small top-k: a k-entry min-heap over the vocabulary (one float compare
 *     per token for most of it), heap-sorted best first;
 *   - otherwise one pass puts each token in a bucket by its distance below
 *     the maximum (1/16 logit wide) and sums counts and weights per bucket;
 *     that tells how many leading buckets hold the k tokens of a large
 *     top-k, the top-p mass, or (no filter on) the point u * total the draw
 *     lands on. Only those buckets' tokens are gathered (min-p applied as
 *     they are, when top-k is off) and sorted: stable LSD radix on the logit
 *     bits (3 passes of 11), insertion sort when few. Should rounding leave
 *     the prefix short (a 1e-6 margin makes that theoretical), everything is
 *     ranked.
 * Top-p and min-p use probabilities at temperature 1 over the candidates left
 * by top-k (as llama.cpp, whose temperature comes after them); top-p's
 * normaliser covers all of them. The draw weighs the survivors by
 * exp((l - l_max) / T) in double and walks the cumulative sum in ranking
 * order to u * total, u = sl_rng_uniform(seed, stream, position).
 *
 * Invariants: sampling allocates nothing and keeps no state between calls
 * (count[] is restored to zero), so the token is a pure function of (params,
 * adjustments, logits, history, stream, position). The logit bias and the
 * min_tokens suppression are applied to `work` right after the copy. A
 * token of weight 0 is never drawn (and none at all when every logit is
 * -inf). Weights use w = 1 for l == l_max, which
 * keeps +-inf logits free of NaN.
 */
#include "sampler.h"

#include "tokenizer/tokenizer.h"

#include "core/alloc.h"
#include "core/rng.h"
#include "core/status.h"

#include <math.h>
#include <string.h>

#define RADIX_BITS 11
#define RADIX_SIZE (1 << RADIX_BITS)
#define RADIX_PASSES 3
#define SMALL_SORT 64 /* insertion sort up to this many candidates */
/* heap selection when top_k <= n_vocab / HEAP_RATIO, else buckets */
#define HEAP_RATIO 64
#define NB 2048           /* buckets of logit distance below the maximum */
#define BUCKET_SCALE 16.0 /* buckets per logit unit: NB covers 128 below the max */
#define BUCKET_MIN_VOCAB 4096 /* below this, sort the whole vocabulary */

struct sl_sampler {
    sl_sampler_params p;
    int32_t n_vocab;
    float *work;       /* (n_vocab) sanitized logits after penalties */
    int32_t *count;    /* (n_vocab) occurrences in the history window; zero between calls */
    int32_t *touched;  /* (n_vocab) distinct tokens of the window */
    int32_t *cand;     /* (n_vocab) candidate ids, draw order once sorted */
    int32_t *cand_tmp; /* (n_vocab) radix sort ping-pong */
    uint32_t *key;     /* (n_vocab) radix keys of cand */
    uint32_t *key_tmp; /* (n_vocab) */
    double *w;         /* (n_vocab) by id: exp(l - l_max) at temperature 1 */
    double *prob;      /* (n_vocab) by candidate position: draw weights, then probabilities */
    uint32_t hist[RADIX_PASSES][RADIX_SIZE];
    double bcount[NB]; /* tokens per bucket */
    double bmass[NB];  /* weight per bucket */
    /* sl_sampler_set_adjust's lists (sl_malloc'd, owned) */
    int32_t *bias_ids, *suppress;
    float *bias;
    int32_t n_bias, n_suppress;
    int64_t suppress_until;
    uint8_t *allowed; /* (n_vocab) 1: may be sampled; NULL: every token may */
    int32_t *bad, *bad_len;
    int32_t n_bad;
    int64_t bad_from;
    bool plain;        /* the default order, nothing beyond penalties, DRY, top-n-sigma, top-k/p, min-p */
    uint8_t *mark;     /* (n_vocab) zero between calls: rank()'s rebuild of id order */
    /* DRY */
    int32_t *dry_count; /* (dry_cap) repeat lengths by history position */
    int32_t dry_cap;
    uint8_t *brk_flag; /* (n_vocab) BRK_HEAD | BRK_ALONE; NULL: no breakers */
    int32_t *brk_head, *brk_off, *brk_tail; /* sl_dry_breakers, heads ascending */
    int32_t n_brk;
    float mu; /* mirostat's target surprise */
    /* the infill stage (sl_sampler_set_infill): the vocabulary, the candidates' texts, merged flags */
    const sl_tokenizer *itok;
    char *ipiece;       /* (INFILL_MERGE * max piece) */
    int32_t *ipoff;     /* (INFILL_MERGE + 1) */
    uint8_t *idead;     /* (INFILL_MERGE) */
    size_t imax;
};
#define INFILL_MERGE 4096 /* candidates the infill stage merges among */

#define BRK_HEAD 1  /* the head of a breaker sequence */
#define BRK_ALONE 2 /* a breaker by itself */
#define XTC_STREAM 0x5854432d636f696eull /* XTC's coin: a stream of its own under the request's key */

sl_sampler_params sl_sampler_default_params(void) {
    return (sl_sampler_params){
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .presence_penalty = 0.0f,
        .frequency_penalty = 0.0f,
        .seed = 0,
        .typical_p = 1.0f,
        .top_n_sigma = -1.0f,
        .xtc_probability = 0.0f,
        .xtc_threshold = 0.1f,
        .dynatemp_range = 0.0f,
        .dynatemp_exponent = 1.0f,
        .dry_multiplier = 0.0f,
        .dry_base = 1.75f,
        .dry_allowed_length = 2,
        .dry_penalty_last_n = -1,
        .mirostat = 0,
        .mirostat_tau = 5.0f,
        .mirostat_eta = 0.1f,
        .min_keep = 0,
    };
}

static const struct {
    const char *name;
    char letter; /* 0: another spelling */
    uint8_t stage;
} STAGE_NAMES[] = {
    {"penalties", 'e', SL_SAMP_PENALTIES},     {"dry", 'd', SL_SAMP_DRY},
    {"top_n_sigma", 's', SL_SAMP_TOP_N_SIGMA}, {"top-n-sigma", 0, SL_SAMP_TOP_N_SIGMA},
    {"top_k", 'k', SL_SAMP_TOP_K},             {"top-k", 0, SL_SAMP_TOP_K},
    {"typ_p", 'y', SL_SAMP_TYPICAL_P},         {"typical_p", 0, SL_SAMP_TYPICAL_P},
    {"typical-p", 0, SL_SAMP_TYPICAL_P},       {"typical", 0, SL_SAMP_TYPICAL_P},
    {"typ-p", 0, SL_SAMP_TYPICAL_P},           {"typ", 0, SL_SAMP_TYPICAL_P},
    {"top_p", 'p', SL_SAMP_TOP_P},             {"top-p", 0, SL_SAMP_TOP_P},
    {"nucleus", 0, SL_SAMP_TOP_P},             {"min_p", 'm', SL_SAMP_MIN_P},
    {"min-p", 0, SL_SAMP_MIN_P},               {"xtc", 'x', SL_SAMP_XTC},
    {"temperature", 't', SL_SAMP_TEMPERATURE}, {"temp", 0, SL_SAMP_TEMPERATURE},
    {"infill", 'i', SL_SAMP_INFILL},
};

int sl_samp_stage_by_name(const char *name, size_t len) {
    for (size_t i = 0; i < sizeof STAGE_NAMES / sizeof STAGE_NAMES[0]; i++)
        if (strlen(STAGE_NAMES[i].name) == len && !memcmp(STAGE_NAMES[i].name, name, len)) return STAGE_NAMES[i].stage;
    return 0;
}

int sl_samp_stage_by_letter(char c) {
    for (size_t i = 0; i < sizeof STAGE_NAMES / sizeof STAGE_NAMES[0]; i++)
        if (c && STAGE_NAMES[i].letter == c) return STAGE_NAMES[i].stage;
    return 0;
}

bool sl_sampler_dry_on(const sl_sampler_params *p) {
    return p->dry_multiplier != 0.0f && p->dry_base >= 1.0f && p->dry_penalty_last_n != 0;
}

/* The default order, with nothing on that needs more than the fast path of filter(). */
static bool plain_chain(const sl_sampler_params *p) {
    return !p->custom_order && p->typical_p >= 1.0f && !(p->xtc_probability > 0.0f && p->xtc_threshold <= 0.5f) &&
           !(p->dynatemp_range > 0.0f) && p->mirostat == 0 && p->min_keep <= 1;
}

static sl_status check_params(const sl_sampler_params *p, int32_t n_vocab) {
    if (n_vocab <= 0) return SL_FAIL(SL_ERR_INVALID, "sampler: n_vocab = %d, must be > 0", (int)n_vocab);
    if (!isfinite(p->temperature))
        return SL_FAIL(SL_ERR_INVALID, "sampler: temperature = %g, must be a finite number", (double)p->temperature);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return SL_FAIL(SL_ERR_INVALID, "sampler: top_p = %g, must be in (0, 1]", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return SL_FAIL(SL_ERR_INVALID, "sampler: min_p = %g, must be in [0, 1]", (double)p->min_p);
    if (!(isfinite(p->repeat_penalty) && p->repeat_penalty > 0.0f))
        return SL_FAIL(SL_ERR_INVALID, "sampler: repeat_penalty = %g, must be a finite number > 0",
                       (double)p->repeat_penalty);
    if (p->repeat_last_n < -1)
        return SL_FAIL(SL_ERR_INVALID, "sampler: repeat_last_n = %d, must be >= -1 (-1: whole history)",
                       (int)p->repeat_last_n);
    if (!isfinite(p->presence_penalty))
        return SL_FAIL(SL_ERR_INVALID, "sampler: presence_penalty = %g, must be finite", (double)p->presence_penalty);
    if (!isfinite(p->frequency_penalty))
        return SL_FAIL(SL_ERR_INVALID, "sampler: frequency_penalty = %g, must be finite",
                       (double)p->frequency_penalty);
    const struct {
        const char *name;
        float v, lo, hi;
    } ranges[] = {
        {"typical_p", p->typical_p, 0, 1},
        {"top_n_sigma", p->top_n_sigma, -INFINITY, INFINITY},
        {"xtc_probability", p->xtc_probability, 0, 1},
        {"xtc_threshold", p->xtc_threshold, 0, 1},
        {"dynatemp_range", p->dynatemp_range, 0, INFINITY},
        {"dynatemp_exponent", p->dynatemp_exponent, 0, INFINITY},
        {"dry_multiplier", p->dry_multiplier, 0, INFINITY},
        {"dry_base", p->dry_base, 0, INFINITY},
        {"mirostat_tau", p->mirostat_tau, 0, INFINITY},
        {"mirostat_eta", p->mirostat_eta, 0, INFINITY},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (!(isfinite(ranges[i].v) && ranges[i].v >= ranges[i].lo && ranges[i].v <= ranges[i].hi))
            return SL_FAIL(SL_ERR_INVALID, "sampler: %s = %g, must be a finite number in [%g, %g]", ranges[i].name,
                           (double)ranges[i].v, (double)ranges[i].lo, (double)ranges[i].hi);
    if (p->dry_allowed_length < 0 || p->dry_penalty_last_n < -1 || p->n_ctx < 0 || p->min_keep < 0)
        return SL_FAIL(SL_ERR_INVALID,
                       "sampler: dry_allowed_length = %d, dry_penalty_last_n = %d, n_ctx = %d, min_keep = %d: must be "
                       ">= 0 (dry_penalty_last_n >= -1)",
                       (int)p->dry_allowed_length, (int)p->dry_penalty_last_n, (int)p->n_ctx, (int)p->min_keep);
    if (p->mirostat < 0 || p->mirostat > 2)
        return SL_FAIL(SL_ERR_INVALID, "sampler: mirostat = %d, must be 0 (off), 1 or 2", (int)p->mirostat);
    if (p->n_stages < 0 || p->n_stages > SL_SAMPLER_MAX_STAGES)
        return SL_FAIL(SL_ERR_INVALID, "sampler: %d stages, at most %d", (int)p->n_stages, SL_SAMPLER_MAX_STAGES);
    for (int32_t i = 0; i < p->n_stages; i++)
        if (p->stages[i] < SL_SAMP_PENALTIES || p->stages[i] > SL_SAMP_INFILL)
            return SL_FAIL(SL_ERR_INVALID, "sampler: stage %d is %d, not a stage", (int)i, (int)p->stages[i]);
    return SL_OK;
}

sl_status sl_sampler_create(const sl_sampler_params *p, int32_t n_vocab, sl_sampler **out) {
    SL_ASSERT(p && out);
    *out = NULL;
    sl_sampler *s = NULL;
    sl_status st = check_params(p, n_vocab);
    if (st != SL_OK) goto fail;
    s = sl_calloc(1, sizeof *s);
    if (!s) {
        st = SL_FAIL(SL_ERR_NOMEM, "sampler: no memory for the sampler");
        goto fail;
    }
    s->p = *p;
    s->n_vocab = n_vocab;
    size_t n = (size_t)n_vocab;
    s->work = sl_alloc_array(n, sizeof *s->work);
    s->count = sl_calloc(n, sizeof *s->count);
    s->touched = sl_alloc_array(n, sizeof *s->touched);
    s->cand = sl_alloc_array(n, sizeof *s->cand);
    s->cand_tmp = sl_alloc_array(n, sizeof *s->cand_tmp);
    s->key = sl_alloc_array(n, sizeof *s->key);
    s->key_tmp = sl_alloc_array(n, sizeof *s->key_tmp);
    s->w = sl_alloc_array(n, sizeof *s->w);
    s->prob = sl_alloc_array(n, sizeof *s->prob);
    s->plain = plain_chain(p);
    s->mu = 2.0f * p->mirostat_tau;
    s->mark = s->plain ? NULL : sl_calloc(n, 1);
    s->dry_cap = p->n_ctx > 0 ? p->n_ctx : 4096;
    if (p->dry_penalty_last_n > 0 && p->dry_penalty_last_n < s->dry_cap) s->dry_cap = p->dry_penalty_last_n;
    s->dry_count = sl_sampler_dry_on(p) ? sl_alloc_array((size_t)s->dry_cap, sizeof *s->dry_count) : NULL;
    if (!s->work || !s->count || !s->touched || !s->cand || !s->cand_tmp || !s->key || !s->key_tmp || !s->w ||
        !s->prob || (!s->plain && !s->mark) || (sl_sampler_dry_on(p) && !s->dry_count)) {
        st = SL_FAIL(SL_ERR_NOMEM, "sampler: no memory for scratch of n_vocab = %d", (int)n_vocab);
        goto fail;
    }
    *out = s;
    return SL_OK;
fail:
    sl_sampler_destroy(s);
    return st;
}

static void clear_adjust(sl_sampler *s) {
    sl_free(s->bias_ids);
    sl_free(s->bias);
    sl_free(s->suppress);
    sl_free(s->allowed);
    sl_free(s->bad);
    sl_free(s->bad_len);
    s->bias_ids = s->suppress = s->bad = s->bad_len = NULL;
    s->bias = NULL;
    s->allowed = NULL;
    s->n_bias = s->n_suppress = s->n_bad = 0;
    s->suppress_until = s->bad_from = 0;
}

/* A copy of n elements (size bytes each), NULL when n is 0 or memory is short. */
static void *copy_of(const void *src, size_t n, size_t size) {
    void *d = n ? sl_alloc_array(n, size) : NULL;
    if (d) memcpy(d, src, n * size);
    return d;
}

sl_status sl_sampler_set_adjust(sl_sampler *s, const sl_logit_adjust *a) {
    SL_ASSERT(s);
    clear_adjust(s);
    if (!a) return SL_OK;
    SL_ASSERT(a->n_bias >= 0 && a->n_suppress >= 0);
    for (int32_t i = 0; i < a->n_bias; i++) {
        if (a->bias_ids[i] < 0 || a->bias_ids[i] >= s->n_vocab)
            return SL_FAIL(SL_ERR_INVALID, "sampler: logit bias entry %d is for token %d, outside the vocabulary [0, %d)",
                           (int)i, (int)a->bias_ids[i], (int)s->n_vocab);
        if (!isfinite(a->bias[i]))
            return SL_FAIL(SL_ERR_INVALID, "sampler: logit bias entry %d (token %d) is %g, must be finite", (int)i,
                           (int)a->bias_ids[i], (double)a->bias[i]);
    }
    for (int32_t i = 0; i < a->n_suppress; i++)
        if (a->suppress[i] < 0 || a->suppress[i] >= s->n_vocab)
            return SL_FAIL(SL_ERR_INVALID, "sampler: suppressed token %d is outside the vocabulary [0, %d)",
                           (int)a->suppress[i], (int)s->n_vocab);
    SL_ASSERT(a->n_allow >= 0 && a->n_bad >= 0 && a->bad_from >= 0);
    for (int32_t i = 0; i < a->n_allow; i++)
        if (a->allow[i] < 0 || a->allow[i] >= s->n_vocab)
            return SL_FAIL(SL_ERR_INVALID, "sampler: allowed token %d is outside the vocabulary [0, %d)",
                           (int)a->allow[i], (int)s->n_vocab);
    int64_t n_bad_ids = 0;
    for (int32_t i = 0; i < a->n_bad; i++) {
        if (a->bad_len[i] < 1)
            return SL_FAIL(SL_ERR_INVALID, "sampler: bad word %d has %d tokens, needs at least 1", (int)i,
                           (int)a->bad_len[i]);
        for (int32_t j = 0; j < a->bad_len[i]; j++, n_bad_ids++)
            if (a->bad[n_bad_ids] < 0 || a->bad[n_bad_ids] >= s->n_vocab)
                return SL_FAIL(SL_ERR_INVALID, "sampler: bad word %d has token %d, outside the vocabulary [0, %d)",
                               (int)i, (int)a->bad[n_bad_ids], (int)s->n_vocab);
    }
    s->bias_ids = copy_of(a->bias_ids, (size_t)a->n_bias, sizeof *s->bias_ids);
    s->bias = copy_of(a->bias, (size_t)a->n_bias, sizeof *s->bias);
    s->suppress = copy_of(a->suppress, (size_t)a->n_suppress, sizeof *s->suppress);
    s->bad = copy_of(a->bad, (size_t)n_bad_ids, sizeof *s->bad);
    s->bad_len = copy_of(a->bad_len, (size_t)a->n_bad, sizeof *s->bad_len);
    s->allowed = a->n_allow ? sl_calloc((size_t)s->n_vocab, 1) : NULL;
    if ((a->n_bias && (!s->bias_ids || !s->bias)) || (a->n_suppress && !s->suppress) ||
        (n_bad_ids && (!s->bad || !s->bad_len)) || (a->n_allow && !s->allowed)) {
        clear_adjust(s);
        return SL_FAIL(SL_ERR_NOMEM, "sampler: no memory for %d logit biases, %d suppressed tokens, %d allowed tokens "
                       "and %d bad words", (int)a->n_bias, (int)a->n_suppress, (int)a->n_allow, (int)a->n_bad);
    }
    for (int32_t i = 0; i < a->n_allow; i++) s->allowed[a->allow[i]] = 1;
    s->n_bias = a->n_bias;
    s->n_suppress = a->n_suppress;
    s->suppress_until = a->suppress_until;
    s->n_bad = a->n_bad;
    s->bad_from = a->bad_from;
    return SL_OK;
}

/* vLLM's allowed_token_ids and bad_words on the logits l (see sl_logit_adjust). */
static void apply_allow_and_bad(const sl_sampler *s, float *l, const int32_t *history, int64_t n_history) {
    if (s->allowed)
        for (int32_t i = 0; i < s->n_vocab; i++)
            if (!s->allowed[i]) l[i] = -INFINITY;
    const int64_t n_out = n_history - s->bad_from; /* the output's tokens: a bad word is matched within them */
    const int32_t *seq = s->bad;
    for (int32_t i = 0; i < s->n_bad; seq += s->bad_len[i++]) {
        const int32_t k = s->bad_len[i] - 1; /* the tokens before the last */
        if (k > n_out || (k > 0 && memcmp(history + n_history - k, seq, sizeof *seq * (size_t)k) != 0)) continue;
        l[seq[k]] = -INFINITY;
    }
}

static void clear_breakers(sl_sampler *s) {
    sl_free(s->brk_flag);
    sl_free(s->brk_head);
    sl_free(s->brk_off);
    sl_free(s->brk_tail);
    s->brk_flag = NULL;
    s->brk_head = s->brk_off = s->brk_tail = NULL;
    s->n_brk = 0;
}

sl_status sl_sampler_set_dry_breakers(sl_sampler *s, const sl_dry_breakers *b) {
    SL_ASSERT(s);
    clear_breakers(s);
    if (!b || b->n == 0) return SL_OK;
    SL_ASSERT(b->n > 0 && b->off[0] == 0);
    for (int32_t i = 0; i < b->n; i++) {
        SL_ASSERT(b->off[i + 1] >= b->off[i]);
        if (b->head[i] < 0 || b->head[i] >= s->n_vocab || (i > 0 && b->head[i] < b->head[i - 1]))
            return SL_FAIL(SL_ERR_INVALID, "sampler: DRY breaker %d starts with token %d: outside the vocabulary [0, %d) "
                           "or out of order", (int)i, (int)b->head[i], (int)s->n_vocab);
        for (int32_t j = b->off[i]; j < b->off[i + 1]; j++)
            if (b->tail[j] < 0 || b->tail[j] >= s->n_vocab)
                return SL_FAIL(SL_ERR_INVALID, "sampler: DRY breaker %d has token %d, outside the vocabulary [0, %d)",
                               (int)i, (int)b->tail[j], (int)s->n_vocab);
    }
    const size_t n_tail = (size_t)b->off[b->n];
    s->brk_flag = sl_calloc((size_t)s->n_vocab, 1);
    s->brk_head = copy_of(b->head, (size_t)b->n, sizeof *b->head);
    s->brk_off = copy_of(b->off, (size_t)b->n + 1, sizeof *b->off);
    s->brk_tail = n_tail ? copy_of(b->tail, n_tail, sizeof *b->tail) : NULL;
    if (!s->brk_flag || !s->brk_head || !s->brk_off || (n_tail && !s->brk_tail)) {
        clear_breakers(s);
        return SL_FAIL(SL_ERR_NOMEM, "sampler: no memory for %d DRY breakers", (int)b->n);
    }
    s->n_brk = b->n;
    for (int32_t i = 0; i < b->n; i++)
        s->brk_flag[b->head[i]] |= (uint8_t)(BRK_HEAD | (b->off[i + 1] == b->off[i] ? BRK_ALONE : 0));
    return SL_OK;
}

float sl_sampler_mirostat_mu(const sl_sampler *s) {
    SL_ASSERT(s);
    return s->mu;
}

void sl_sampler_destroy(sl_sampler *s) {
    if (!s) return;
    sl_free(s->ipiece);
    sl_free(s->ipoff);
    sl_free(s->idead);
    clear_adjust(s);
    clear_breakers(s);
    sl_free(s->mark);
    sl_free(s->dry_count);
    sl_free(s->work);
    sl_free(s->count);
    sl_free(s->touched);
    sl_free(s->cand);
    sl_free(s->cand_tmp);
    sl_free(s->key);
    sl_free(s->key_tmp);
    sl_free(s->w);
    sl_free(s->prob);
    sl_free(s);
}

/* NaN -> -inf (never preferred), -0 -> +0 (ties with +0 break by id). */
static inline float sanitize(float x) {
    return x != x ? -INFINITY : x + 0.0f; /* -0 + +0 = +0 */
}

/* exp((l - lmax) / t) with the maximum itself at exactly 1, so infinite
 * logits never produce inf - inf. */
static inline double weight(float l, float lmax, double t) {
    if (l == lmax) return 1.0;
    return exp(((double)l - (double)lmax) / t);
}

/* Bucket of a logit by its distance below lmax, 1/BUCKET_SCALE wide; the
 * last bucket takes everything further down. Non-decreasing down the
 * ranking, equal logits share a bucket. */
static inline int bucket_of(float l, float lmax) {
    if (l == lmax) return 0;
    double d = ((double)lmax - (double)l) * BUCKET_SCALE;
    return d < NB - 1 ? (int)d : NB - 1;
}

/* p >= min_p * p_max, i.e. l - lmax >= log(min_p); -inf bar: always */
static inline bool above_min_p(float l, float lmax, double log_min_p) {
    return l == lmax || (double)l - (double)lmax >= log_min_p;
}

/* a ranks strictly above b: higher logit, or same logit and lower id */
static inline bool ranks_above(const float *l, int32_t a, int32_t b) {
    float x = sanitize(l[a]), y = sanitize(l[b]);
    return x > y || (x == y && a < b);
}

/* Min-heap by rank: the root is the lowest-ranked entry. */
static void sift_down(const float *l, int32_t *h, int32_t n, int32_t i) {
    for (;;) {
        int32_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && ranks_above(l, h[c], h[c + 1])) c++;
        if (!ranks_above(l, h[i], h[c])) break;
        int32_t t = h[i];
        h[i] = h[c];
        h[c] = t;
        i = c;
    }
}

/* The k highest-ranked ids of l[0..n), best first, into h[0..k). */
static void top_k_ids(const float *l, int32_t n, int32_t k, int32_t *h) {
    for (int32_t i = 0; i < k; i++) h[i] = i;
    for (int32_t i = k / 2 - 1; i >= 0; i--) sift_down(l, h, k, i);
    float root = sanitize(l[h[0]]);
    for (int32_t i = k; i < n; i++) {
        /* ids rise, so a tie with the root ranks below it */
        if (!(sanitize(l[i]) > root)) continue;
        h[0] = i;
        sift_down(l, h, k, 0);
        root = sanitize(l[h[0]]);
    }
    for (int32_t end = k - 1; end > 0; end--) {
        int32_t t = h[0];
        h[0] = h[end];
        h[end] = t;
        sift_down(l, h, end, 0);
    }
}

/* Key whose ascending order is descending float order (no NaN, no -0). */
static inline uint32_t desc_key(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ~u;
}

/* a ranks before b in work[] (sanitized): higher logit, or the same and a lower id */
static inline bool rank_before(const float *l, int32_t a, int32_t b) {
    return l[a] > l[b] || (l[a] == l[b] && a < b);
}

/* Sort cand[0..m) by logit desc. Few: by rank (ties by id, whatever the input order); many: stable radix
 * sort (ties keep their input order: by id from id order). */
static void radix_sort(sl_sampler *s, int32_t m) {
    if (m <= SMALL_SORT) {
        /* insertion sort: cheaper than clearing and scanning the histograms */
        for (int32_t i = 1; i < m; i++) {
            int32_t c = s->cand[i], j = i;
            for (; j > 0 && rank_before(s->work, c, s->cand[j - 1]); j--) s->cand[j] = s->cand[j - 1];
            s->cand[j] = c;
        }
        return;
    }
    memset(s->hist, 0, sizeof s->hist);
    for (int32_t i = 0; i < m; i++) {
        uint32_t k = desc_key(s->work[s->cand[i]]);
        s->key[i] = k;
        for (int p = 0; p < RADIX_PASSES; p++) s->hist[p][(k >> (p * RADIX_BITS)) & (RADIX_SIZE - 1)]++;
    }
    for (int p = 0; p < RADIX_PASSES; p++) {
        int shift = p * RADIX_BITS;
        uint32_t *h = s->hist[p];
        /* every key has the same digit: the pass would not move anything */
        if (h[(s->key[0] >> shift) & (RADIX_SIZE - 1)] == (uint32_t)m) continue;
        uint32_t sum = 0;
        for (int d = 0; d < RADIX_SIZE; d++) {
            uint32_t c = h[d];
            h[d] = sum;
            sum += c;
        }
        for (int32_t i = 0; i < m; i++) {
            uint32_t pos = h[(s->key[i] >> shift) & (RADIX_SIZE - 1)]++;
            s->key_tmp[pos] = s->key[i];
            s->cand_tmp[pos] = s->cand[i];
        }
        uint32_t *tk = s->key;
        s->key = s->key_tmp;
        s->key_tmp = tk;
        int32_t *tc = s->cand;
        s->cand = s->cand_tmp;
        s->cand_tmp = tc;
    }
}

/* Repetition (llama.cpp), presence and frequency (OpenAI) penalties on the
 * distinct tokens of the last repeat_last_n history entries. */
static void apply_penalties(sl_sampler *s, const int32_t *history, int64_t n_history) {
    const sl_sampler_params *p = &s->p;
    if (n_history <= 0 || p->repeat_last_n == 0) return;
    if (p->repeat_penalty == 1.0f && p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f) return;
    SL_ASSERT(history);
    int64_t start = 0;
    if (p->repeat_last_n > 0 && n_history > p->repeat_last_n) start = n_history - p->repeat_last_n;
    int32_t n_touched = 0;
    for (int64_t j = start; j < n_history; j++) {
        int32_t t = history[j];
        if (t < 0 || t >= s->n_vocab) continue; /* not a vocabulary token: nothing to penalize */
        if (s->count[t]++ == 0) s->touched[n_touched++] = t;
    }
    for (int32_t j = 0; j < n_touched; j++) {
        int32_t t = s->touched[j];
        float l = s->work[t];
        if (l <= 0.0f)
            l *= p->repeat_penalty;
        else
            l /= p->repeat_penalty;
        l -= (float)s->count[t] * p->frequency_penalty + p->presence_penalty;
        s->work[t] = sanitize(l);
        s->count[t] = 0;
    }
}

/* llama.cpp's DRY (from koboldcpp): a token that would extend a repeat of
 * at least dry_allowed_length tokens of the recent history (one that ends
 * where an earlier occurrence of the history's last tokens was followed by
 * it) loses multiplier * base^(length - allowed_length) from its logit. No
 * repeat runs across a breaker sequence; a token that is a breaker alone is
 * never punished. The repeat lengths come from the Z-algorithm over the
 * history read backwards. Returns whether any logit changed. */
static bool apply_dry(sl_sampler *s, const int32_t *history, int64_t n_history) {
    const sl_sampler_params *p = &s->p;
    if (!sl_sampler_dry_on(p) || n_history <= 0) return false;
    SL_ASSERT(history);
    int64_t window = p->dry_penalty_last_n < 0 ? s->dry_cap : p->dry_penalty_last_n;
    if (window > s->dry_cap) window = s->dry_cap;
    const int32_t N = (int32_t)(n_history < window ? n_history : window);
    if (N <= p->dry_allowed_length) return false;
    const int32_t *h = history + n_history - N; /* rat(i) = h[N - 1 - i], i tokens back from the last */
#define RAT(i) h[N - 1 - (i)]
    /* 1: the nearest breaker sequence bounds how long a repeat may be */
    int32_t rep_limit = N;
    for (int32_t i = 0; i < N && s->brk_flag; i++) {
        const int32_t tok = RAT(i);
        if (tok < 0 || tok >= s->n_vocab || !(s->brk_flag[tok] & BRK_HEAD)) continue;
        int32_t lo = 0, hi = s->n_brk; /* the first sequence with this head */
        while (lo < hi) {
            int32_t mid = lo + (hi - lo) / 2;
            if (s->brk_head[mid] < tok) lo = mid + 1;
            else hi = mid;
        }
        int32_t longest = -1;
        for (int32_t b = lo; b < s->n_brk && s->brk_head[b] == tok; b++) {
            const int32_t len = s->brk_off[b + 1] - s->brk_off[b];
            if (len <= longest || len > i) continue;
            bool match = true;
            for (int32_t o = 0; o < len && match; o++) match = s->brk_tail[s->brk_off[b] + o] == RAT(i - o - 1);
            if (match) longest = len;
        }
        if (longest >= 0) {
            rep_limit = i - longest;
            break;
        }
    }
    if (rep_limit < p->dry_allowed_length) return false;
    /* 2: cnt[N - 1 - k]: how many tokens before rat(k) (itself included) repeat the history's last ones */
    int32_t *cnt = s->dry_count;
    memset(cnt, 0, sizeof *cnt * (size_t)N);
    const int32_t last = N - 1;
    int32_t rt = 0, lt = 0;
    for (int32_t k = 1; k < N; k++) {
        if (k > rt) {
            int32_t n = 0;
            while (n + k < N && RAT(n) == RAT(n + k)) n++;
            cnt[last - k] = n < rep_limit ? n : rep_limit;
            if (n > 0) {
                lt = k;
                rt = k + n - 1;
            }
        } else {
            const int32_t pk = k - lt, right = rt - k + 1;
            if (cnt[last - pk] < right) {
                cnt[last - k] = cnt[last - pk] < rep_limit ? cnt[last - pk] : rep_limit;
            } else {
                int32_t i = rt + 1;
                while (i < N && RAT(i) == RAT(i - k)) i++;
                cnt[last - k] = i - k < rep_limit ? i - k : rep_limit;
                lt = k;
                rt = i - 1;
            }
        }
    }
    /* 3: the token after each repeat would extend it; count[] holds the longest such repeat + 1 */
    int32_t n_touched = 0;
    for (int32_t i = 0; i < N - 1; i++) {
        if (cnt[i] < p->dry_allowed_length) continue;
        const int32_t tok = RAT(N - 2 - i);
        if (tok < 0 || tok >= s->n_vocab) continue;
        if (s->count[tok] == 0) s->touched[n_touched++] = tok;
        if (s->count[tok] < cnt[i] + 1) s->count[tok] = cnt[i] + 1;
    }
#undef RAT
    /* 4: the penalties, the exponent kept where base^exponent fits a float */
    int32_t max_exp = 0;
    if (p->dry_base > 1.000001f) max_exp = (int32_t)(88.7228391f / logf(p->dry_base));
    for (int32_t j = 0; j < n_touched; j++) {
        const int32_t tok = s->touched[j];
        int32_t e = s->count[tok] - 1 - p->dry_allowed_length;
        s->count[tok] = 0;
        if (s->brk_flag && (s->brk_flag[tok] & BRK_ALONE)) continue;
        if (max_exp > 0 && e > max_exp) e = max_exp;
        s->work[tok] = sanitize(s->work[tok] - p->dry_multiplier * powf(p->dry_base, (float)e));
    }
    return n_touched > 0;
}

/* Top-n-sigma over cand[0..m): logits more than n standard deviations (of the finite ones) below the best
 * become -inf. */
static void apply_top_n_sigma(sl_sampler *s, const int32_t *cand, int32_t m) {
    const double n = s->p.top_n_sigma;
    if (!(n > 0) || m <= 1) return;
    float *l = s->work;
    double mx = -INFINITY, sum = 0;
    int32_t k = 0;
#define ID(i) (cand ? cand[i] : (i))
    for (int32_t i = 0; i < m; i++) {
        const float x = l[ID(i)];
        if (x == -INFINITY) continue;
        if (x > mx) mx = x;
        sum += x;
        k++;
    }
    if (k == 0) return;
    const double mean = sum / k;
    double acc = 0;
    for (int32_t i = 0; i < m; i++)
        if (l[ID(i)] != -INFINITY) acc += ((double)l[ID(i)] - mean) * ((double)l[ID(i)] - mean);
    const double bar = mx - n * sqrt(acc / k);
    for (int32_t i = 0; i < m; i++)
        if ((double)l[ID(i)] < bar) l[ID(i)] = -INFINITY;
#undef ID
}

/* ---- the general chain: any order, typical-p, XTC, dynamic temperature, mirostat ---- */

typedef struct chain_ctx {
    int32_t m;     /* candidates cand[0..m) */
    bool sorted;   /* cand in rank order (logit desc, id asc), no -inf but a lone first */
    bool id_order; /* cand in ascending id order */
} chain_ctx;

/* Put cand[0..m) in rank order and drop the -inf (one stays when all are). */
static void rank(sl_sampler *s, chain_ctx *c) {
    const float *l = s->work;
    if (!c->sorted) {
        if (c->m > SMALL_SORT && !c->id_order) { /* the radix sort is stable: from id order, ties end up by id */
            for (int32_t i = 0; i < c->m; i++) s->mark[s->cand[i]] = 1;
            int32_t k = 0;
            for (int32_t i = 0; i < s->n_vocab; i++)
                if (s->mark[i]) s->mark[i] = 0, s->cand[k++] = i;
        }
        radix_sort(s, c->m);
        c->sorted = true;
        c->id_order = false;
    }
    while (c->m > 1 && l[s->cand[c->m - 1]] == -INFINITY) c->m--;
}

/* prob[0..m) = softmax of the ranked candidates' logits; returns the entropy (nats). */
static double softmax(sl_sampler *s, const chain_ctx *c) {
    const float lmax = s->work[s->cand[0]];
    double sum = 0, ent = 0;
    for (int32_t i = 0; i < c->m; i++) sum += s->prob[i] = weight(s->work[s->cand[i]], lmax, 1.0);
    for (int32_t i = 0; i < c->m; i++) {
        s->prob[i] /= sum;
        if (s->prob[i] > 0) ent -= s->prob[i] * log(s->prob[i]);
    }
    return ent;
}

/* Keep the ranked candidates [from, to). */
static void keep_range(sl_sampler *s, chain_ctx *c, int32_t from, int32_t to) {
    if (from > 0) memmove(s->cand, s->cand + from, sizeof *s->cand * (size_t)(to - from));
    c->m = to - from;
}

static void stage_top_k(sl_sampler *s, chain_ctx *c) {
    const int32_t k = s->p.top_k;
    if (k <= 0 || k >= c->m) return;
    if (!c->sorted && c->id_order && c->m == s->n_vocab && k <= s->n_vocab / HEAP_RATIO) {
        top_k_ids(s->work, s->n_vocab, k, s->cand);
        c->m = k;
        c->sorted = true;
        c->id_order = false;
        rank(s, c); /* (drops -inf) */
        return;
    }
    rank(s, c);
    if (k < c->m) c->m = k;
}

/* Locally typical sampling: the candidates whose surprise is nearest the entropy, until their mass passes
 * typical_p. */
static void stage_typical(sl_sampler *s, chain_ctx *c) {
    const sl_sampler_params *p = &s->p;
    if (p->typical_p >= 1.0f) return;
    rank(s, c);
    const double ent = softmax(s, c);
    double *score = s->w; /* by rank position */
    int32_t *idx = s->cand_tmp, *tmp = (int32_t *)s->key_tmp;
    for (int32_t i = 0; i < c->m; i++) {
        score[i] = s->prob[i] > 0 ? fabs(-log(s->prob[i]) - ent) : INFINITY;
        idx[i] = i;
    }
    /* stable merge sort of idx by score */
    for (int32_t w = 1; w < c->m; w *= 2) {
        for (int32_t lo = 0; lo < c->m; lo += 2 * w) {
            int32_t mid = lo + w < c->m ? lo + w : c->m, hi = lo + 2 * w < c->m ? lo + 2 * w : c->m;
            int32_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi) tmp[k++] = score[idx[b]] < score[idx[a]] ? idx[b++] : idx[a++];
            while (a < mid) tmp[k++] = idx[a++];
            while (b < hi) tmp[k++] = idx[b++];
        }
        memcpy(idx, tmp, sizeof *idx * (size_t)c->m);
    }
    double cum = 0;
    int32_t keep = c->m;
    for (int32_t i = 0; i < c->m; i++) {
        cum += s->prob[idx[i]];
        if (cum > p->typical_p && i + 1 >= p->min_keep) {
            keep = i + 1;
            break;
        }
    }
    for (int32_t i = 0; i < keep; i++) tmp[i] = s->cand[idx[i]];
    memcpy(s->cand, tmp, sizeof *tmp * (size_t)keep);
    c->m = keep;
    c->sorted = false;
}

static void stage_top_p(sl_sampler *s, chain_ctx *c) {
    const sl_sampler_params *p = &s->p;
    if (p->top_p >= 1.0f) return;
    rank(s, c);
    softmax(s, c);
    double cum = 0;
    for (int32_t i = 0; i < c->m; i++) {
        cum += s->prob[i];
        if (cum >= p->top_p && i + 1 >= p->min_keep) {
            c->m = i + 1;
            return;
        }
    }
}

static void stage_min_p(sl_sampler *s, chain_ctx *c) {
    const sl_sampler_params *p = &s->p;
    if (p->min_p <= 0.0f) return;
    rank(s, c);
    const float lmax = s->work[s->cand[0]];
    const double log_min_p = log((double)p->min_p);
    for (int32_t i = 1; i < c->m; i++)
        if (!above_min_p(s->work[s->cand[i]], lmax, log_min_p) && i >= p->min_keep) {
            c->m = i;
            return;
        }
}

/* XTC ("exclude top choices"): with probability xtc_probability, the candidates above xtc_threshold go but
 * the least likely of them. */
static void stage_xtc(sl_sampler *s, chain_ctx *c, uint64_t stream, uint64_t position) {
    const sl_sampler_params *p = &s->p;
    if (p->xtc_probability <= 0.0f || p->xtc_threshold > 0.5f || c->m < 2) return;
    if (sl_rng_uniform(p->seed, stream ^ XTC_STREAM, position) > p->xtc_probability) return;
    rank(s, c);
    softmax(s, c);
    int32_t last = 0;
    for (int32_t i = 0; i < c->m && s->prob[i] >= p->xtc_threshold; i++) last = i;
    if (last > 0 && c->m - last >= p->min_keep) keep_range(s, c, last, c->m);
}

/* Temperature t (<= 0: the best alone), the logits divided in place. */
static void scale_by(sl_sampler *s, chain_ctx *c, double t) {
    if (t <= 0) {
        rank(s, c);
        c->m = 1;
        return;
    }
    for (int32_t i = 0; i < c->m; i++) s->work[s->cand[i]] = sanitize((float)((double)s->work[s->cand[i]] / t));
    c->sorted = false; /* (rounding may tie neighbours) */
}

/* Temperature, dynamic with dynatemp_range: from the normalized entropy of the candidates. */
static void stage_temperature(sl_sampler *s, chain_ctx *c, bool dynamic) {
    const sl_sampler_params *p = &s->p;
    double t = p->temperature;
    if (dynamic && p->dynatemp_range > 0.0f) {
        if (c->m <= 1) return;
        rank(s, c);
        if (c->m <= 1) return;
        const double lo = t - p->dynatemp_range > 0 ? t - p->dynatemp_range : 0, hi = t + p->dynatemp_range;
        const double ent = softmax(s, c);
        t = lo + (hi - lo) * pow(ent / log((double)c->m), (double)p->dynatemp_exponent);
    }
    scale_by(s, c, t);
}

/* Mirostat's cut at the current mu: v1 estimates the Zipf exponent from the first 100 candidates and keeps
 * the k that give surprise mu; v2 keeps the candidates whose surprise is at most mu. */
static void stage_mirostat(sl_sampler *s, chain_ctx *c) {
    const sl_sampler_params *p = &s->p;
    if (p->mirostat == 2 && c->id_order && c->m == s->n_vocab && c->m > SMALL_SORT) {
        /* v2 over the whole vocabulary: only tokens of p >= 2^-mu (with a margin) need ranking */
        const float *l = s->work;
        float lmax = l[0];
        for (int32_t i = 1; i < c->m; i++) lmax = l[i] > lmax ? l[i] : lmax;
        double z = 0;
        for (int32_t i = 0; i < c->m; i++) z += weight(l[i], lmax, 1.0);
        const double bar = (double)lmax + log(z) - (double)s->mu * log(2.0) - 1e-6;
        int32_t k = 0;
        for (int32_t i = 0; i < c->m; i++)
            if (l[i] == lmax || (double)l[i] >= bar) s->cand[k++] = i;
        c->m = k;
        rank(s, c);
        int32_t cut = 0;
        while (cut < c->m && -log2(weight(l[s->cand[cut]], lmax, 1.0) / z) <= (double)s->mu) cut++;
        c->m = cut > 0 ? cut : 1;
        return;
    }
    rank(s, c);
    if (c->m <= 1) return;
    if (p->mirostat == 1) {
        double tb = 0, tt = 0;
        for (int32_t i = 0; i < c->m - 1 && i < 99; i++) {
            const double ti = log((double)(i + 2) / (double)(i + 1));
            tb += ti * ((double)s->work[s->cand[i]] - (double)s->work[s->cand[i + 1]]); /* log(p_i / p_i+1) */
            tt += ti * ti;
        }
        const double s_hat = tb / tt, eps = s_hat - 1;
        const double k = pow(eps * pow(2.0, (double)s->mu) / (1 - pow((double)s->n_vocab, -eps)), 1 / s_hat);
        c->m = k >= (double)c->m ? c->m : k >= 1 ? (int32_t)k : 1; /* (NaN: 1) */
    } else {
        softmax(s, c);
        int32_t k = 0;
        while (k < c->m && -log2(s->prob[k]) <= (double)s->mu) k++;
        c->m = k > 0 ? k : 1;
    }
}

sl_status sl_sampler_set_infill(sl_sampler *s, const sl_tokenizer *tok) {
    s->itok = tok;
    bool used = false; /* (the scratch only for a chain that has the stage) */
    for (int32_t i = 0; s->p.custom_order && i < s->p.n_stages; i++) used |= s->p.stages[i] == SL_SAMP_INFILL;
    if (s->ipiece || !used) return SL_OK;
    s->imax = sl_tokenizer_max_piece(tok) + 1;
    s->ipiece = sl_alloc_array(INFILL_MERGE, s->imax);
    s->ipoff = sl_alloc_array(INFILL_MERGE + 1, sizeof *s->ipoff);
    s->idead = sl_alloc_array(INFILL_MERGE, 1);
    if (!s->ipiece || !s->ipoff || !s->idead) return SL_FAIL(SL_ERR_NOMEM, "sampler: no memory for the infill stage");
    return SL_OK;
}

/* llama.cpp's infill sampler over the ranked candidates (sampler.h). */
static void stage_infill(sl_sampler *s, chain_ctx *c) {
    const sl_tokenizer *tok = s->itok;
    if (!tok) return;
    rank(s, c);
    softmax(s, c);
    double *p = s->prob;
    double p_txt = 0, p_eog = 0;
    for (int32_t i = 0; i < c->m; i++) *(sl_tokenizer_is_eog(tok, s->cand[i]) ? &p_eog : &p_txt) += p[i];
    int32_t k = 0;
    if (3 * p_eog * c->m > p_txt) { /* mostly the end: only the end-of-generation tokens */
        for (int32_t i = 0; i < c->m; i++)
            if (sl_tokenizer_is_eog(tok, s->cand[i])) s->cand[k++] = s->cand[i];
        c->m = k;
        c->sorted = false;
        return;
    }
    /* a token whose text starts another's takes its probability (the likelier of the two keeps it) */
    const int32_t nm = c->m < INFILL_MERGE ? c->m : INFILL_MERGE;
    size_t off = 0;
    for (int32_t i = 0; i < nm; i++) {
        int64_t n = sl_token_to_piece(tok, s->cand[i], false, s->ipiece + off, s->imax);
        s->ipoff[i] = (int32_t)off;
        off += n > 0 && (size_t)n <= s->imax ? (size_t)n : 0;
        s->idead[i] = 0;
    }
    s->ipoff[nm] = (int32_t)off;
    for (int32_t i0 = 0; i0 < nm; i0++)
        for (int32_t i1 = 0; i1 < nm; i1++) {
            if (s->idead[i0]) break;
            if (i0 == i1 || s->idead[i1]) continue;
            const int32_t l0 = s->ipoff[i0 + 1] - s->ipoff[i0], l1 = s->ipoff[i1 + 1] - s->ipoff[i1];
            if (l0 > 0 && l0 <= l1 && !memcmp(s->ipiece + s->ipoff[i0], s->ipiece + s->ipoff[i1], (size_t)l0)) {
                const int32_t dst = p[i1] > p[i0] ? i1 : i0, src = dst == i0 ? i1 : i0;
                p[dst] += p[src];
                p[src] = 0;
                s->idead[src] = 1;
                s->work[s->cand[src]] = -INFINITY;
            }
        }
    /* text tokens under 0.2 go; none left: EOT (else EOS) alone */
    double sum = 0;
    int32_t n_txt = 0;
    for (int32_t i = 0; i < c->m; i++) {
        const bool eog = sl_tokenizer_is_eog(tok, s->cand[i]);
        if (p[i] < 0.2 && !eog) continue;
        n_txt += !eog;
        sum += p[i];
        p[k] = p[i];
        s->cand[k++] = s->cand[i];
    }
    if (n_txt == 0) {
        const int32_t eot = sl_tokenizer_eot(tok) >= 0 ? sl_tokenizer_eot(tok) : sl_tokenizer_eos(tok);
        s->cand[0] = eot >= 0 ? eot : 0;
        s->work[s->cand[0]] = 1.0f;
        c->m = 1;
        c->sorted = false;
        return;
    }
    /* then text tokens under 1 / (their count + 1) of what is left */
    const double bar = 1.0 / (n_txt + 1);
    int32_t k2 = 0;
    for (int32_t i = 0; i < k; i++)
        if (p[i] / sum >= bar || sl_tokenizer_is_eog(tok, s->cand[i])) s->cand[k2++] = s->cand[i];
    c->m = k2;
    c->sorted = false;
}

/* The general chain over work[]: leaves cand[0..m) ranked and prob[0..m) their draw weights (normaliser in
 * *total); returns m. */
static int32_t chain(sl_sampler *s, const int32_t *history, int64_t n_history, uint64_t stream, uint64_t position,
                     double *total) {
    const sl_sampler_params *p = &s->p;
    chain_ctx c = {.m = s->n_vocab, .id_order = true};
    for (int32_t i = 0; i < s->n_vocab; i++) s->cand[i] = i;
    static const uint8_t def[] = {SL_SAMP_PENALTIES, SL_SAMP_DRY,   SL_SAMP_TOP_N_SIGMA, SL_SAMP_TOP_K,      SL_SAMP_TYPICAL_P,
                                  SL_SAMP_TOP_P,     SL_SAMP_MIN_P, SL_SAMP_XTC,         SL_SAMP_TEMPERATURE};
    const uint8_t *st = p->custom_order ? p->stages : def;
    const int32_t n_st = p->custom_order ? p->n_stages : (int32_t)sizeof def;
    if (p->mirostat) { /* llama.cpp's chain: temperature, then mirostat */
        stage_temperature(s, &c, false);
        stage_mirostat(s, &c);
    } else {
        for (int32_t k = 0; k < n_st; k++) {
            switch ((sl_samp_stage)st[k]) {
            case SL_SAMP_PENALTIES:
                apply_penalties(s, history, n_history);
                c.sorted = false;
                break;
            case SL_SAMP_DRY:
                if (apply_dry(s, history, n_history)) c.sorted = false;
                break;
            case SL_SAMP_TOP_N_SIGMA:
                apply_top_n_sigma(s, c.id_order && c.m == s->n_vocab ? NULL : s->cand, c.m);
                c.sorted = false;
                break;
            case SL_SAMP_TOP_K: stage_top_k(s, &c); break;
            case SL_SAMP_TYPICAL_P: stage_typical(s, &c); break;
            case SL_SAMP_TOP_P: stage_top_p(s, &c); break;
            case SL_SAMP_MIN_P: stage_min_p(s, &c); break;
            case SL_SAMP_XTC: stage_xtc(s, &c, stream, position); break;
            case SL_SAMP_TEMPERATURE: stage_temperature(s, &c, true); break;
            case SL_SAMP_INFILL: stage_infill(s, &c); break;
            }
        }
    }
    rank(s, &c);
    const float lmax = s->work[s->cand[0]];
    double sum = 0;
    for (int32_t i = 0; i < c.m; i++) sum += s->prob[i] = weight(s->work[s->cand[i]], lmax, 1.0);
    *total = sum;
    return c.m;
}

/* Smallest b_end whose buckets [0, b_end) sum v[] past `need`; NB when
 * `need` is not below `whole` or rounding keeps the sum short. */
static int bucket_prefix(const double *v, double need, double whole) {
    if (!(need < whole)) return NB;
    double cum = 0;
    for (int b = 0; b < NB; b++) {
        cum += v[b];
        if (cum > need) return b + 1;
    }
    return NB;
}

/* Ids in buckets [0, b_end) whose logit clears `log_min_p` below lmax, in id
 * order, then sorted: a prefix of the full ranking, closed under ties.
 * *dropped tells whether the min-p bar removed any of them (then the min-p
 * set ends inside the prefix, so nothing later can be a candidate). */
static int32_t gather_sorted(sl_sampler *s, float lmax, int b_end, double log_min_p, bool *dropped) {
    const float *l = s->work;
    int32_t m = 0;
    bool drop = false;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        if (b_end < NB && bucket_of(l[i], lmax) >= b_end) continue;
        if (!above_min_p(l[i], lmax, log_min_p)) {
            drop = true;
            continue;
        }
        s->cand[m++] = i;
    }
    radix_sort(s, m);
    *dropped = drop;
    return m;
}

/* Penalties and filters: leaves cand[0..m) in draw order and prob[0..m)
 * their draw weights; returns m, the weights' normaliser in *total.
 * u in [0, 1) is the coming draw: with no filter on, only the prefix of the
 * ranking that the draw can reach is sorted (then *total covers the whole
 * vocabulary). u < 0 asks for the whole distribution. */
static int32_t filter(sl_sampler *s, const float *logits, const int32_t *history, int64_t n_history, double u,
                      uint64_t stream, uint64_t position, double *total) {
    SL_ASSERT(logits && n_history >= 0);
    const sl_sampler_params *p = &s->p;
    const int32_t n = s->n_vocab;
    float *l = s->work;
    for (int32_t i = 0; i < n; i++) l[i] = sanitize(logits[i]);
    for (int32_t i = 0; i < s->n_bias; i++) l[s->bias_ids[i]] = sanitize(l[s->bias_ids[i]] + s->bias[i]);
    if (n_history < s->suppress_until)
        for (int32_t i = 0; i < s->n_suppress; i++) l[s->suppress[i]] = -INFINITY;
    apply_allow_and_bad(s, l, history, n_history);
    if (!s->plain) return chain(s, history, n_history, stream, position, total);
    apply_penalties(s, history, n_history);
    apply_dry(s, history, n_history);
    apply_top_n_sigma(s, NULL, n);

    if (p->temperature <= 0.0f) {
        int32_t best = 0;
        float bv = l[0];
        for (int32_t i = 1; i < n; i++)
            if (l[i] > bv) {
                bv = l[i];
                best = i;
            }
        s->cand[0] = best;
        s->prob[0] = 1.0;
        *total = 1.0;
        return 1;
    }

    const bool use_top_k = p->top_k > 0 && p->top_k < n;
    const bool use_top_p = p->top_p < 1.0f;
    const bool use_min_p = p->min_p > 0.0f;
    const bool pure = !use_top_k && !use_top_p && !use_min_p;
    const double top_p = p->top_p, t = p->temperature;
    const double log_min_p = use_min_p ? log((double)p->min_p) : -INFINITY;
    int32_t m;
    float lmax;
    double mass = 0;      /* top-p's normaliser: w summed over what top-k left */
    double total_all = 0; /* pure: draw weights summed over the vocabulary */
    bool complete = true; /* cand holds every candidate, not a sufficient prefix */

    if (use_top_k && p->top_k <= n / HEAP_RATIO) {
        m = p->top_k;
        top_k_ids(l, n, m, s->cand);
        lmax = l[s->cand[0]];
    } else {
        lmax = l[0];
        for (int32_t i = 1; i < n; i++)
            if (l[i] > lmax) lmax = l[i];
        /* one pass: bucket counts and masses, and w (top-p) or draw weights
         * (pure); a small vocabulary is simply sorted whole */
        const bool bucketed = n > BUCKET_MIN_VOCAB;
        if (bucketed) {
            memset(s->bcount, 0, sizeof s->bcount);
            memset(s->bmass, 0, sizeof s->bmass);
        }
        for (int32_t i = 0; i < n; i++) {
            int b = bucketed ? bucket_of(l[i], lmax) : 0;
            if (bucketed) s->bcount[b] += 1.0;
            if (!use_top_k && use_top_p) {
                double w = weight(l[i], lmax, 1.0);
                s->w[i] = w;
                if (bucketed) s->bmass[b] += w;
                mass += w;
            } else if (pure) {
                double w = weight(l[i], lmax, t);
                if (bucketed) s->bmass[b] += w;
                total_all += w;
            }
        }
        /* how deep into the ranking the filters (or the draw) can reach; the
         * 1e-6 margin covers summation order, which only differs by ~n ulp */
        int b_end = NB;
        if (!bucketed)
            ;
        else if (use_top_k)
            b_end = bucket_prefix(s->bcount, (double)p->top_k - 0.5, (double)n);
        else if (use_top_p)
            b_end = bucket_prefix(s->bmass, top_p * mass * (1 + 1e-6), mass);
        else if (pure && u >= 0)
            b_end = bucket_prefix(s->bmass, u * total_all * (1 + 1e-6), total_all);
        bool dropped;
        /* with top-k, min-p waits: top-p must first see all k */
        m = gather_sorted(s, lmax, b_end, use_top_k ? -INFINITY : log_min_p, &dropped);
        complete = b_end == NB || dropped;
        if (use_top_k) {
            SL_ASSERT(m >= p->top_k);
            m = p->top_k;
            complete = true;
        }
    }
    if (use_top_p && use_top_k)
        for (int32_t i = 0; i < m; i++) mass += s->w[s->cand[i]] = weight(l[s->cand[i]], lmax, 1.0);

    if (use_top_p) {
        /* smallest prefix whose probability reaches top_p */
        for (;;) {
            double cum = 0;
            int32_t cut = -1;
            for (int32_t i = 0; i < m && cut < 0; i++) {
                cum += s->w[s->cand[i]] / mass;
                if (cum >= top_p) cut = i + 1;
            }
            if (cut > 0) m = cut;
            if (cut > 0 || complete) break;
            /* the margin was not enough: rank everything */
            bool dropped;
            m = gather_sorted(s, lmax, NB, log_min_p, &dropped);
            complete = true;
        }
    }
    if (use_min_p) {
        /* p_i >= min_p * p_max; cand[0] always stays */
        for (int32_t i = 1; i < m; i++)
            if (!above_min_p(l[s->cand[i]], lmax, log_min_p)) {
                m = i;
                break;
            }
    }

    for (;;) {
        double sum = 0;
        for (int32_t i = 0; i < m; i++) sum += s->prob[i] = weight(l[s->cand[i]], lmax, t);
        *total = pure ? total_all : sum;
        /* pure: the prefix must hold the draw's point, else rank everything */
        if (!pure || complete || u < 0 || sum > u * total_all) break;
        bool dropped;
        m = gather_sorted(s, lmax, NB, log_min_p, &dropped);
        complete = true;
    }
    return m;
}

int32_t sl_sampler_sample(sl_sampler *s, const float *logits, const int32_t *history, int64_t n_history,
                          uint64_t stream, uint64_t position) {
    SL_ASSERT(s);
    double u = sl_rng_uniform(s->p.seed, stream, position), total;
    int32_t m = filter(s, logits, history, n_history, u, stream, position, &total);
    if (s->work[s->cand[0]] == -INFINITY) return -1; /* the best is -inf: nothing may come */
    int32_t pick = 0;
    if (m > 1) {
        const double target = u * total;
        double cum = 0;
        pick = -1;
        for (int32_t i = 0; i < m && pick < 0; i++) {
            cum += s->prob[i];
            if (cum > target) pick = i;
        }
        /* u * total rounded up to total: the last token of non-zero weight */
        for (int32_t i = m - 1; pick < 0 && i > 0; i--)
            if (s->prob[i] > 0) pick = i;
        if (pick < 0) pick = 0;
    }
    if (s->p.mirostat) s->mu -= s->p.mirostat_eta * (float)(-log2(s->prob[pick] / total) - s->p.mirostat_tau);
    return s->cand[pick];
}

bool sl_sampler_mirostat_observe(sl_sampler *s, const float *logits, const int32_t *history, int64_t n_history,
                                 int32_t token) {
    SL_ASSERT(s);
    if (!s->p.mirostat) return false;
    double total;
    const int32_t m = filter(s, logits, history, n_history, -1.0, 0, (uint64_t)n_history, &total);
    for (int32_t i = 0; i < m; i++)
        if (s->cand[i] == token && s->prob[i] > 0) {
            s->mu -= s->p.mirostat_eta * (float)(-log2(s->prob[i] / total) - s->p.mirostat_tau);
            return true;
        }
    return false;
}

int32_t sl_sampler_candidates(sl_sampler *s, const float *logits, const int32_t *history, int64_t n_history,
                              const int32_t **ids, const double **probs) {
    SL_ASSERT(s && ids && probs);
    double total;
    int32_t m = filter(s, logits, history, n_history, -1.0, 0, (uint64_t)n_history, &total);
    for (int32_t i = 0; i < m; i++) s->prob[i] /= total;
    *ids = s->cand;
    *probs = s->prob;
    return m;
}

int32_t sl_logprobs_top(const float *logits, int32_t n_vocab, int32_t k, int32_t *ids, float *logprobs,
                        int32_t chosen, float *chosen_lp) {
    SL_ASSERT(logits && n_vocab > 0);
    float lmax = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++) {
        float x = sanitize(logits[i]);
        if (x > lmax) lmax = x;
    }
    double sum = 0;
    for (int32_t i = 0; i < n_vocab; i++) sum += weight(sanitize(logits[i]), lmax, 1.0);
    const double lse = log(sum); /* log-sum-exp minus lmax; sum >= 1 */
#define LOGPROB(x) ((float)(((x) == lmax ? 0.0 : (double)(x) - (double)lmax) - lse))
    if (k > n_vocab) k = n_vocab;
    if (k < 0) k = 0;
    if (k > 0) {
        SL_ASSERT(ids && logprobs);
        top_k_ids(logits, n_vocab, k, ids);
        for (int32_t i = 0; i < k; i++) logprobs[i] = LOGPROB(sanitize(logits[ids[i]]));
    }
    if (chosen_lp) *chosen_lp = (chosen >= 0 && chosen < n_vocab) ? LOGPROB(sanitize(logits[chosen])) : -INFINITY;
#undef LOGPROB
    return k;
}

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
};

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
    };
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
    if (!s->work || !s->count || !s->touched || !s->cand || !s->cand_tmp || !s->key || !s->key_tmp || !s->w ||
        !s->prob) {
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

void sl_sampler_destroy(sl_sampler *s) {
    if (!s) return;
    clear_adjust(s);
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

/* Stable sort of cand[0..m) by logit desc; ties keep their input order. */
static void radix_sort(sl_sampler *s, int32_t m) {
    if (m <= SMALL_SORT) {
        /* insertion sort: cheaper than clearing and scanning the histograms */
        for (int32_t i = 1; i < m; i++) {
            int32_t c = s->cand[i], j = i;
            float x = s->work[c];
            for (; j > 0 && s->work[s->cand[j - 1]] < x; j--) s->cand[j] = s->cand[j - 1];
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
                      double *total) {
    SL_ASSERT(logits && n_history >= 0);
    const sl_sampler_params *p = &s->p;
    const int32_t n = s->n_vocab;
    float *l = s->work;
    for (int32_t i = 0; i < n; i++) l[i] = sanitize(logits[i]);
    for (int32_t i = 0; i < s->n_bias; i++) l[s->bias_ids[i]] = sanitize(l[s->bias_ids[i]] + s->bias[i]);
    if (n_history < s->suppress_until)
        for (int32_t i = 0; i < s->n_suppress; i++) l[s->suppress[i]] = -INFINITY;
    apply_allow_and_bad(s, l, history, n_history);
    apply_penalties(s, history, n_history);

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
    int32_t m = filter(s, logits, history, n_history, u, &total);
    if (s->work[s->cand[0]] == -INFINITY) return -1; /* the best is -inf: nothing may come */
    if (m == 1) return s->cand[0];
    double target = u * total;
    double cum = 0;
    for (int32_t i = 0; i < m; i++) {
        cum += s->prob[i];
        if (cum > target) return s->cand[i];
    }
    /* u * total rounded up to total: the last token of non-zero weight */
    for (int32_t i = m - 1; i > 0; i--)
        if (s->prob[i] > 0) return s->cand[i];
    return s->cand[0];
}

int32_t sl_sampler_candidates(sl_sampler *s, const float *logits, const int32_t *history, int64_t n_history,
                              const int32_t **ids, const double **probs) {
    SL_ASSERT(s && ids && probs);
    double total;
    int32_t m = filter(s, logits, history, n_history, -1.0, &total);
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

/*
 * rerank.c — rerank and score requests and answers (see rerank.h).
 */
#include "rerank.h"

#include "core/alloc.h"
#include "core/status.h"
#include "core/strbuf.h"
#include "model/gguf.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int sl_rerank_path(const char *path) {
    static const char *const rerank[] = {"/rerank", "/reranking", "/v1/rerank", "/v1/reranking", "/v2/rerank"};
    for (size_t i = 0; i < sizeof rerank / sizeof rerank[0]; i++)
        if (!strcmp(path, rerank[i])) return 1;
    return !strcmp(path, "/score") || !strcmp(path, "/v1/score")         ? 2
           : !strcmp(path, "/classify") || !strcmp(path, "/v1/classify") ? 3
                                                                         : 0;
}

/* s with every `what` replaced by `with` (appended to b); false when out of memory. */
static bool replace_all(sl_strbuf *b, const char *s, size_t n, const char *what, const char *with, size_t with_n) {
    const size_t wl = strlen(what);
    bool ok = sl_strbuf_add(b, "", 0);
    for (size_t i = 0; i < n && ok;) {
        const char *hit = memmem(s + i, n - i, what, wl);
        const size_t k = hit ? (size_t)(hit - (s + i)) : n - i;
        ok = sl_strbuf_add(b, s + i, k) && (!hit || sl_strbuf_add(b, with, with_n));
        i += k + (hit ? wl : 0);
    }
    return ok;
}

/* ids += text tokenized (nothing added, control-token text read as those tokens when special). */
static bool add_text(const sl_tokenizer *tok, const char *s, size_t n, bool special, int32_t **ids, size_t *len,
                     size_t *cap) {
    int32_t *t = NULL;
    size_t k = 0;
    if (sl_tokenize(tok, s, n, false, special, &t, &k) != SL_OK) return false;
    bool ok = sl_grow((void **)ids, cap, *len + k + 4, sizeof(int32_t));
    if (ok) {
        memcpy(*ids + *len, t, sizeof(int32_t) * k);
        *len += k;
    }
    sl_free(t);
    return ok;
}

static void add_id(int32_t *ids, size_t *len, int32_t id) {
    if (id >= 0) ids[(*len)++] = id; /* (add_text left room for four) */
}

/* The text of a document's first `keep` tokens (t[0, k): the document tokenized alone; lead_space: its text starts
 * with a space) into b: a document cut where the template takes its text. */
static bool cut_doc(const sl_tokenizer *tok, const int32_t *t, size_t k, int32_t keep, bool lead_space, sl_strbuf *b) {
    sl_detok dt;
    sl_detok_init(&dt, tok, false);
    const size_t cap = 3 * sl_tokenizer_max_piece(tok) + 272;
    char *piece = sl_malloc(cap);
    bool ok = piece && sl_strbuf_add(b, "", 0);
    for (size_t i = 0; ok && i < k && (int64_t)i < keep; i++) {
        const int64_t n = sl_detok_push(&dt, t[i], piece, cap);
        ok = n >= 0 && sl_strbuf_add(b, piece, (size_t)n);
    }
    sl_free(piece);
    if (ok && b->n > 0 && b->p[0] == ' ' && !lead_space) { /* (SentencePiece's dummy prefix) */
        memmove(b->p, b->p + 1, b->n);
        b->n--;
    }
    return ok;
}

/* The pair's prompt ids from the model's rerank template, the document's text d (a copy: it may be cut). */
static bool template_ids(const sl_tokenizer *tok, const sl_str *tpl, const char *q, size_t qn, const char *d, size_t dn,
                         int32_t **ids, size_t *n) {
    sl_strbuf a = {0}, b = {0}; /* {query} first, then {document} (as llama.cpp replaces them) */
    size_t cap = 0;
    *n = 0;
    const bool ok = replace_all(&a, tpl->ptr, (size_t)tpl->len, "{query}", q, qn) &&
                    replace_all(&b, a.p, a.n, "{document}", d, dn) && add_text(tok, b.p, b.n, true, ids, n, &cap);
    free(a.p);
    free(b.p);
    return ok;
}

/* The rerank prompt of (q, d) into *out (text: d's copy), or false with e naming param. The document is cut to its
 * first max_doc tokens (0: whole), then its end cut until the pair holds at most limit tokens (0: no cut, the
 * context bounds it) — where Hugging Face's tokenizer truncates a pair's longer side, the document here. */
static bool pair_prompt(const sl_api_ctx *ctx, const char *q, size_t qn, const char *d, size_t dn, const char *param,
                        int32_t max_doc, int32_t limit, sl_api_prompt *out, sl_api_error *e) {
    const sl_tokenizer *tok = sl_model_tokenizer(ctx->model);
    int32_t *ids = NULL;
    size_t n = 0;
    bool ok, cut_short = false;
    const sl_gguf_kv *kv = sl_gguf_find(ctx->model->gguf, "tokenizer.chat_template.rerank");
    sl_str tpl = {0};
    if (kv && sl_gguf_get_str(ctx->model->gguf, "tokenizer.chat_template.rerank", &tpl) == SL_OK) {
        sl_strbuf cur = {0}; /* the document as the template takes it: cut by tokens, then by the pair's length */
        int32_t *dt = NULL; /* (the document's tokens: only where it may be cut) */
        size_t nd = 0;
        const bool lead = dn > 0 && d[0] == ' ';
        ok = (max_doc == 0 && limit == 0) || sl_tokenize(tok, d, dn, false, false, &dt, &nd) == SL_OK;
        int32_t keep = max_doc > 0 && (size_t)max_doc < nd ? max_doc : (int32_t)nd;
        ok = ok && (!dt || keep == (int32_t)nd ? sl_strbuf_add(&cur, d, dn) : cut_doc(tok, dt, nd, keep, lead, &cur)) &&
             template_ids(tok, &tpl, q, qn, cur.p, cur.n, &ids, &n);
        for (int round = 0; ok && limit > 0 && (int64_t)n > limit && round < 8; round++) {
            keep -= (int32_t)((int64_t)n - limit); /* (a cut text may tokenize a little differently: again) */
            if (keep < 1) break;
            cur.n = 0;
            sl_free(ids);
            ids = NULL;
            ok = cut_doc(tok, dt, nd, keep, lead, &cur) && template_ids(tok, &tpl, q, qn, cur.p, cur.n, &ids, &n);
        }
        cut_short = ok && limit > 0 && (int64_t)n > limit; /* (no room left, or it would not come down) */
        sl_free(dt);
        free(cur.p);
    } else { /* BOS, the query, EOS and SEP as the vocabulary adds them, the document, EOS */
        int32_t *qt = NULL, *dt = NULL;
        size_t nq = 0, nd = 0, cap = 0;
        ok = sl_tokenize(tok, q, qn, false, false, &qt, &nq) == SL_OK && sl_tokenize(tok, d, dn, false, false, &dt, &nd) == SL_OK &&
             sl_grow((void **)&ids, &cap, nq + nd + 4, sizeof(int32_t));
        if (ok) {
            const int32_t eos = sl_tokenizer_eos(tok) >= 0 ? sl_tokenizer_eos(tok) : sl_tokenizer_sep(tok);
            const int64_t extra = (sl_tokenizer_add_bos(tok) && sl_tokenizer_bos(tok) >= 0 ? 1 : 0) +
                                  (sl_tokenizer_add_eos(tok) && eos >= 0 ? 2 : 0) +
                                  (sl_tokenizer_add_sep(tok) && sl_tokenizer_sep(tok) >= 0 ? 1 : 0);
            if (max_doc > 0 && nd > (size_t)max_doc) nd = (size_t)max_doc;
            if (limit > 0 && extra + (int64_t)(nq + nd) > limit) {
                const int64_t over = extra + (int64_t)(nq + nd) - limit;
                cut_short = over >= (int64_t)nd;
                if (!cut_short) nd -= (size_t)over;
            }
            if (sl_tokenizer_add_bos(tok)) add_id(ids, &n, sl_tokenizer_bos(tok));
            memcpy(ids + n, qt, sizeof(int32_t) * nq);
            n += nq;
            if (sl_tokenizer_add_eos(tok)) add_id(ids, &n, eos);
            if (sl_tokenizer_add_sep(tok)) add_id(ids, &n, sl_tokenizer_sep(tok));
            memcpy(ids + n, dt, sizeof(int32_t) * nd);
            n += nd;
            if (sl_tokenizer_add_eos(tok)) add_id(ids, &n, eos);
        }
        sl_free(qt);
        sl_free(dt);
    }
    if (!ok) {
        sl_free(ids);
        sl_api_set_error(e, 400, param, "cannot tokenize %s: %s", param, sl_last_error());
        return false;
    }
    if (cut_short) {
        sl_free(ids);
        sl_api_set_error(e, 400, "truncate_prompt_tokens", "%s: the query and the model's rerank prompt leave no room for the "
                         "document in %d tokens", param, (int)limit);
        return false;
    }
    if (n == 0 || (int64_t)n > ctx->n_ctx) {
        sl_free(ids);
        sl_api_set_error(e, 400, param, "%s: the pair's prompt has %zu tokens; this model's context holds 1..%d (or send "
                         "truncate_prompt_tokens)", param, n, ctx->n_ctx);
        return false;
    }
    out->ids = ids;
    out->n = (int32_t)n;
    out->text = sl_malloc(dn + 1);
    if (!out->text) {
        sl_api_set_error(e, 500, NULL, "out of memory");
        return false;
    }
    memcpy(out->text, d, dn);
    out->text[dn] = '\0';
    return true;
}

/* The text of a document: a string, or an object with a string "text" (Jina's and Cohere's form). */
static const json_t *doc_text(const json_t *v) {
    if (json_is_string(v)) return v;
    const json_t *t = json_is_object(v) ? json_object_get(v, "text") : NULL;
    return json_is_string(t) ? t : NULL;
}

/* A field that is one string or a non-empty array of strings (at most SL_API_MAX_INPUTS). */
static bool texts_of(const json_t *o, const char *key, bool objects, const json_t **one, const json_t **arr,
                     sl_api_error *e) {
    const json_t *v = json_object_get(o, key);
    *one = *arr = NULL;
    if (json_is_string(v)) {
        *one = v;
        return true;
    }
    if (json_is_array(v) && json_array_size(v) > 0 && json_array_size(v) <= SL_API_MAX_INPUTS) {
        size_t i;
        const json_t *x;
        json_array_foreach(v, i, x) {
            if (!(objects ? doc_text(x) : json_is_string(x) ? x : NULL)) {
                sl_api_set_error(e, 400, key, objects ? "'%s[%zu]' must be a string or {\"text\": string}"
                                                      : "'%s[%zu]' must be a string", key, i);
                return false;
            }
        }
        *arr = v;
        return true;
    }
    sl_api_set_error(e, 400, key, "'%s' is required: %s (at most %d)", key,
                     objects ? "a non-empty array of strings" : "a string or a non-empty array of strings",
                     SL_API_MAX_INPUTS);
    return false;
}

bool sl_rerank_parse(const sl_api_ctx *ctx, bool score, const char *body, size_t len, sl_rerank_request *out,
                     sl_api_error *e) {
    memset(out, 0, sizeof *out);
    memset(e, 0, sizeof *e);
    out->score = score;
    json_t *o = sl_api_load_body(body, len, e);
    if (!o) return false;
    bool ok = false;
    if (!sl_api_check_model(ctx, o, e)) goto done;
    /* Cutting: vLLM's truncate_prompt_tokens (the pair at most K tokens, -1: the context), TEI's truncate (the
     * context), Cohere's max_tokens_per_doc (each document's first N tokens) */
    long long limit = 0, max_doc = 0;
    bool tei_cut = false;
    if (!sl_api_truncate_k(o, ctx->n_ctx, &limit, e) || !sl_api_get_bool(o, "truncate", &tei_cut, e) ||
        !sl_api_get_int(o, "max_tokens_per_doc", 1, INT32_MAX, &max_doc, e))
        goto done;
    if (tei_cut && limit == 0) limit = ctx->n_ctx;
    const json_t *q1 = NULL, *qs = NULL, *d1 = NULL, *ds = NULL;
    const char *qkey, *dkey;
    if (score) { /* vLLM's text_1 / text_2 (queries / documents in its later form) */
        qkey = json_object_get(o, "queries") && !json_object_get(o, "text_1") ? "queries" : "text_1";
        dkey = json_object_get(o, "documents") && !json_object_get(o, "text_2") ? "documents" : "text_2";
        if (!texts_of(o, qkey, false, &q1, &qs, e) || !texts_of(o, dkey, false, &d1, &ds, e)) goto done;
        if (!q1 && json_array_size(qs) == 1) {
            q1 = json_array_get(qs, 0);
            qs = NULL;
        }
        if (!d1 && json_array_size(ds) == 1 && qs) {
            d1 = json_array_get(ds, 0);
            ds = NULL;
        }
        if (qs && (d1 || json_array_size(qs) != json_array_size(ds))) {
            sl_api_set_error(e, 400, dkey, "'%s' and '%s' pair 1:1, 1:N or N:N: %zu and %zu texts", qkey, dkey,
                             json_array_size(qs), d1 ? (size_t)1 : json_array_size(ds));
            goto done;
        }
    } else { /* query + documents (TEI: texts) */
        qkey = "query";
        out->tei = json_object_get(o, "texts") && !json_object_get(o, "documents");
        dkey = out->tei ? "texts" : "documents";
        q1 = json_object_get(o, "query");
        if (!json_is_string(q1)) {
            sl_api_set_error(e, 400, "query", "'query' is required, a string");
            goto done;
        }
        const json_t *v = json_object_get(o, dkey);
        if (!json_is_array(v) || json_array_size(v) == 0) {
            sl_api_set_error(e, 400, dkey, "'%s' is required: a non-empty array of strings", dkey);
            goto done;
        }
        if (!texts_of(o, dkey, true, &d1, &ds, e)) goto done;
        long long top_n = 0; /* (0: every document) */
        out->return_documents = true;
        if (!sl_api_get_int(o, "top_n", 0, INT32_MAX, &top_n, e) ||
            !sl_api_get_bool(o, "return_documents", &out->return_documents, e) ||
            !sl_api_get_bool(o, "return_text", &out->return_text, e))
            goto done;
        out->top_n = (int32_t)top_n;
    }
    const size_t n = ds ? json_array_size(ds) : qs ? json_array_size(qs) : 1;
    out->pairs = sl_calloc(n, sizeof *out->pairs);
    if (!out->pairs) {
        sl_api_set_error(e, 500, NULL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *q = qs ? json_array_get(qs, i) : q1, *d = ds ? doc_text(json_array_get(ds, i)) : doc_text(d1);
        char param[48];
        snprintf(param, sizeof param, "%s[%zu]", dkey, i);
        if (!pair_prompt(ctx, json_string_value(q), json_string_length(q), json_string_value(d), json_string_length(d),
                         ds || qs ? param : dkey, (int32_t)max_doc, (int32_t)limit, &out->pairs[i], e)) {
            out->n = (int32_t)i + 1;
            goto done;
        }
        out->n = (int32_t)i + 1;
    }
    ok = true;
done:
    json_decref(o);
    if (!ok) sl_rerank_request_free(out);
    return ok;
}

void sl_rerank_request_free(sl_rerank_request *r) {
    sl_api_prompts_free(r->pairs, r->n);
    r->pairs = NULL;
    r->n = 0;
}

static atomic_uint_fast64_t next_id;

json_t *sl_rerank_json(const sl_api_ctx *ctx, const sl_rerank_request *r, const float *scores, int64_t prompt_tokens) {
    char id[64];
    const long long now = (long long)time(NULL);
    snprintf(id, sizeof id, "%s-%016llx%08llx", r->score ? "score" : "rerank", (unsigned long long)now,
             (unsigned long long)(atomic_fetch_add(&next_id, 1) & 0xffffffffu));
    if (r->score) {
        json_t *data = json_array();
        for (int32_t i = 0; i < r->n; i++)
            json_array_append_new(data, json_pack("{s:i,s:s,s:f}", "index", (int)i, "object", "score", "score", (double)scores[i]));
        return json_pack("{s:s,s:s,s:I,s:s,s:o,s:{s:I,s:I,s:i}}", "id", id, "object", "list", "created", (json_int_t)now,
                         "model", ctx->model_id, "data", data, "usage", "prompt_tokens", (json_int_t)prompt_tokens,
                         "total_tokens", (json_int_t)prompt_tokens, "completion_tokens", 0);
    }
    int32_t *order = sl_alloc_array((size_t)r->n, sizeof(int32_t));
    if (!order) return NULL;
    for (int32_t i = 0; i < r->n; i++) { /* best first; ties keep the documents' order (insertion) */
        int32_t k = i;
        while (k > 0 && scores[order[k - 1]] < scores[i]) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = i;
    }
    const int32_t take = r->top_n > 0 && r->top_n < r->n ? r->top_n : r->n;
    json_t *results = json_array();
    for (int32_t k = 0; k < take; k++) {
        const int32_t i = order[k];
        json_t *x = json_pack("{s:i,s:f}", "index", (int)i, r->tei ? "score" : "relevance_score", (double)scores[i]);
        if (r->tei && r->return_text) json_object_set_new(x, "text", json_string(r->pairs[i].text));
        if (!r->tei && r->return_documents) json_object_set_new(x, "document", json_pack("{s:s}", "text", r->pairs[i].text));
        json_array_append_new(results, x);
    }
    sl_free(order);
    if (r->tei) return results;
    return json_pack("{s:s,s:s,s:s,s:{s:I,s:I},s:o}", "id", id, "object", "list", "model", ctx->model_id, "usage",
                     "prompt_tokens", (json_int_t)prompt_tokens, "total_tokens", (json_int_t)prompt_tokens, "results",
                     results);
}

/* ---- classification ------------------------------------------------------------------------------ */

bool sl_classify_parse(const sl_api_ctx *ctx, const char *body, size_t len, sl_classify_request *out, sl_api_error *e) {
    memset(out, 0, sizeof *out);
    memset(e, 0, sizeof *e);
    json_t *o = sl_api_load_body(body, len, e);
    if (!o) return false;
    bool ok = sl_api_check_model(ctx, o, e) &&
              sl_api_parse_prompts(ctx, json_object_get(o, "input"), "input", SL_API_MAX_INPUTS, true, &out->inputs, &out->n, e);
    for (int32_t i = 0; ok && i < out->n; i++)
        if (out->inputs[i].n < 1 || out->inputs[i].n > ctx->n_ctx) {
            sl_api_set_error(e, 400, "input", "'input[%d]' has %d tokens; this model's context holds 1..%d", i,
                             out->inputs[i].n, ctx->n_ctx);
            ok = false;
        }
    if (!ok) sl_classify_request_free(out);
    json_decref(o);
    return ok;
}

void sl_classify_request_free(sl_classify_request *r) {
    sl_api_prompts_free(r->inputs, r->n);
    r->inputs = NULL;
    r->n = 0;
}

void sl_classify_probs(const float *logits, int32_t n, float *probs) {
    if (n == 1) {
        probs[0] = (float)(1.0 / (1.0 + exp(-(double)logits[0])));
        return;
    }
    double mx = logits[0], sum = 0;
    for (int32_t i = 1; i < n; i++) mx = logits[i] > mx ? logits[i] : mx;
    for (int32_t i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
    for (int32_t i = 0; i < n; i++) probs[i] = (float)(exp((double)logits[i] - mx) / sum);
}

json_t *sl_classify_json(const sl_api_ctx *ctx, const sl_classify_request *r, const float *const *probs, int32_t n_cls,
                         int64_t prompt_tokens) {
    char id[64];
    const long long now = (long long)time(NULL);
    snprintf(id, sizeof id, "classify-%016llx%08llx", (unsigned long long)now,
             (unsigned long long)(atomic_fetch_add(&next_id, 1) & 0xffffffffu));
    json_t *data = json_array();
    for (int32_t i = 0; i < r->n; i++) {
        int32_t best = 0;
        for (int32_t k = 1; k < n_cls; k++) best = probs[i][k] > probs[i][best] ? k : best;
        char def[32];
        snprintf(def, sizeof def, "LABEL_%d", (int)best); /* (a head without labels) */
        const char *label = ctx->model->cls_labels && best < ctx->model->n_cls_out ? ctx->model->cls_labels[best] : def;
        json_array_append_new(data, json_pack("{s:i,s:s,s:o,s:i}", "index", (int)i, "label", label, "probs",
                                              sl_api_floats_json(probs[i], n_cls), "num_classes", (int)n_cls));
    }
    return json_pack("{s:s,s:s,s:I,s:s,s:o,s:{s:I,s:I,s:i,s:n}}", "id", id, "object", "list", "created", (json_int_t)now,
                     "model", ctx->model_id, "data", data, "usage", "prompt_tokens", (json_int_t)prompt_tokens,
                     "total_tokens", (json_int_t)prompt_tokens, "completion_tokens", 0, "prompt_tokens_details");
}

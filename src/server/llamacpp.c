/*
 * llamacpp.c — llama.cpp's own answer form for POST /completion (see llamacpp.h).
 */
#include "llamacpp.h"

#include <stdbool.h>
#include <string.h>

json_t *sl_llama_result(int index, const char *content, size_t n, const char *model, const sl_llama_end *e) {
    const char *f = e->finish ? e->finish : "";
    const char *stype = !strcmp(f, "length") ? "limit" : e->stop_word ? "word" : !strcmp(f, "stop") ? "eos" : "none";
    bool nl = memchr(content, '\n', n) != NULL;
    return json_pack("{s:i,s:s%,s:[],s:i,s:b,s:s,s:I,s:I,s:I,s:s,s:s,s:b,s:b,s:{s:I},s:o}", "index", index, "content",
                     content, n, "tokens", "id_slot", -1, "stop", 1, "model", model, "tokens_predicted",
                     (json_int_t)e->predicted, "tokens_evaluated", (json_int_t)e->evaluated, "tokens_cached",
                     (json_int_t)e->cached, "stop_type", stype, "stopping_word", e->stop_word ? e->stop_word : "",
                     "truncated", 0, "has_new_line", nl, "generation_settings", "n_predict", (json_int_t)e->n_predict,
                     "timings", sl_llama_timings(e));
}

json_t *sl_llama_timings(const sl_llama_end *e) {
    const int64_t pn = e->evaluated - e->cached > 0 ? e->evaluated - e->cached : 0;
    return json_pack("{s:I,s:I,s:f,s:f,s:f,s:I,s:f,s:f,s:f}", "cache_n", (json_int_t)e->cached, "prompt_n", (json_int_t)pn,
                     "prompt_ms", e->prompt_ms, "prompt_per_token_ms", pn > 0 ? e->prompt_ms / (double)pn : 0.0,
                     "prompt_per_second", e->prompt_ms > 0 ? (double)pn * 1e3 / e->prompt_ms : 0.0, "predicted_n",
                     (json_int_t)e->predicted, "predicted_ms", e->predicted_ms, "predicted_per_token_ms",
                     e->predicted > 0 ? e->predicted_ms / (double)e->predicted : 0.0, "predicted_per_second",
                     e->predicted_ms > 0 ? (double)e->predicted * 1e3 / e->predicted_ms : 0.0);
}

json_t *sl_llama_piece(int index, const char *text, size_t n) {
    return json_pack("{s:i,s:s%,s:[],s:b,s:i}", "index", index, "content", text, n, "tokens", "stop", 0, "id_slot", -1);
}

bool sl_llama_defaults(json_t *body) {
    static const struct {
        const char *key;
        double v;
    } D[] = {{"temperature", 0.8}, {"top_k", 40}, {"top_p", 0.95}, {"min_p", 0.05}};
    bool added = false;
    for (size_t i = 0; json_is_object(body) && i < sizeof D / sizeof D[0]; i++) {
        if (json_object_get(body, D[i].key)) continue;
        json_object_set_new(body, D[i].key, !strcmp(D[i].key, "top_k") ? json_integer(40) : json_real(D[i].v));
        added = true;
    }
    return added;
}

json_t *sl_llama_fields(json_t *o, const json_t *paths) {
    if (!json_is_array(paths) || json_array_size(paths) == 0 || !o) return o;
    json_t *r = json_object();
    size_t i;
    const json_t *p;
    json_array_foreach(paths, i, p) {
        const char *path = json_string_value(p);
        if (!path) continue;
        const json_t *cur = o;
        for (const char *k = path; cur;) { /* "a/b/c": keys in turn */
            const size_t len = strcspn(k, "/");
            char key[256];
            snprintf(key, sizeof key, "%.*s", (int)(len < sizeof key ? len : sizeof key - 1), k);
            cur = json_is_object(cur) ? json_object_get(cur, key) : NULL;
            if (!k[len]) break;
            k += len + 1;
        }
        if (cur) json_object_set(r, path, (json_t *)cur);
    }
    json_decref(o);
    return r;
}

const char *sl_llama_path_alias(const char *path) {
    static const char *const alias[][2] = {
        {"/v1/health", "/health"}, {"/models", "/v1/models"}, {"/chat/completions", "/v1/chat/completions"}};
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++)
        if (!strcmp(path, alias[i][0])) return alias[i][1];
    return path;
}

/*
 * test_api.c — the OpenAI request bodies (server/api.c) without a server:
 * the fuzz corpus of tests/fuzz/corpus/api replayed through fuzz_api_one()
 * (every body answered cleanly, the invariants of fuzz_api.c held), and
 * single cases the corpus found or that pin a rule. The HTTP side of the
 * same errors is in tests/e2e/test_serve.c.
 */
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#define FUZZ_API_NO_MAIN
#include "../fuzz/fuzz_api.c"

/* The stories260K model for fuzz_api_model(), or false (skipped) without ../shared. */
static bool have_model(void) {
    const char *path = sl_test_shared("models/stories260K.gguf");
    if (!path) return false;
    setenv("SHARDLM_FUZZ_MODEL", path, 1);
    return true;
}

/* Parse body as a completions request (context 512); returns the refusal's status (0: accepted). */
static int parse_status(const char *body, sl_api_error *e) {
    const sl_api_ctx ctx = {.model = fuzz_api_model(), .model_id = "stories260K", .n_ctx = 512};
    sl_api_request r;
    const bool ok = sl_api_parse(&ctx, SL_API_COMPLETIONS, body, strlen(body), &r, e);
    if (ok) sl_api_request_free(&r);
    return ok ? 0 : e->status;
}

static long accepted_ok(const uint8_t *data, size_t len) { return fuzz_api_one(data, len) == 0; }

TEST(fuzz_corpus_replay) {
    if (!have_model()) return;
    long accepted = 0;
    const int n = sl_test_each_file("tests/fuzz/corpus/api", accepted_ok, &accepted);
    printf("   corpus: %d inputs, %ld accepted, %ld refused cleanly\n", n, accepted, n - accepted);
    CHECK(n >= 20);
    CHECK(accepted > 0 && accepted < n);
}

/* A single stop string obeys the rules of one in an array: 1..256 bytes, no NUL. */
TEST(stop_string_rules_match_the_array_form) {
    if (!have_model()) return;
    char body[700];
    char s300[301];
    memset(s300, 'a', 300);
    s300[300] = '\0';
    sl_api_error e;
    snprintf(body, sizeof body, "{\"prompt\": \"x\", \"stop\": \"%s\"}", s300);
    CHECK_EQ_INT(parse_status(body, &e), 400);
    CHECK_STR(e.param, "stop");
    CHECK(strstr(e.message, "'stop' must be 1..256 bytes") != NULL);
    snprintf(body, sizeof body, "{\"prompt\": \"x\", \"stop\": [\"ok\", \"%s\"]}", s300);
    CHECK_EQ_INT(parse_status(body, &e), 400);
    CHECK_STR(e.param, "stop");
    CHECK(strstr(e.message, "'stop[1]' must be 1..256 bytes") != NULL);
    /* a NUL in any string: jansson refuses the body (no JSON_ALLOW_NUL) */
    CHECK_EQ_INT(parse_status("{\"prompt\": \"x\", \"stop\": \"a\\u0000b\"}", &e), 400);
    CHECK_EQ_INT(parse_status("{\"prompt\": \"x\", \"stop\": [\"a\", 3]}", &e), 400);
    CHECK(strstr(e.message, "'stop[1]' must be a string") != NULL);
    /* accepted: empty strings are skipped, 256 bytes is the limit */
    s300[256] = '\0';
    snprintf(body, sizeof body, "{\"prompt\": \"x\", \"stop\": [\"\", \"%s\"]}", s300);
    CHECK_EQ_INT(parse_status(body, &e), 0);
    CHECK_EQ_INT(parse_status("{\"prompt\": \"x\", \"stop\": \"\"}", &e), 0);
}

/* An error message quotes client bytes (a syntax error's context, a model
 * name cut at the message buffer's end): the error object must still be
 * built, as valid JSON, with the bad bytes shown as '?'. */
TEST(error_objects_survive_invalid_utf8_in_messages) {
    if (!have_model()) return;
    const sl_api_ctx ctx = {.model = fuzz_api_model(), .model_id = "stories260K", .n_ctx = 512};
    static const char bad_tokenize[] = "{\"content\":\"0\\\xe2\x96\x81the\"}";
    sl_api_error e;
    char *out = sl_api_tokenize(&ctx, bad_tokenize, sizeof bad_tokenize - 1, &e);
    CHECK(out == NULL);
    CHECK_EQ_INT(e.status, 400);
    char *js = sl_api_error_json(&e);
    CHECK_MSG(js != NULL, "no error object for: %s", e.message);
    json_error_t je;
    json_t *o = json_loads(js, 0, &je);
    free(js);
    CHECK(o != NULL);
    json_decref(o);
    /* a model name of 400 two-byte characters: the message is cut inside one */
    char body[1024] = "{\"model\": \"";
    for (int i = 0; i < 400; i++) strcat(body, "\xc3\xa9");
    strcat(body, "\", \"prompt\": \"a\"}");
    CHECK_EQ_INT(parse_status(body, &e), 404);
    js = sl_api_error_json(&e);
    CHECK_MSG(js != NULL, "no error object for: %s", e.message);
    free(js);
}

/* Every endpoint that reads a JSON body says the same of a bad one: where the syntax breaks, or that it is
 * not an object; a key given twice is refused everywhere (which one would count is otherwise jansson's choice). */
TEST(bad_bodies_are_named_alike_by_every_endpoint) {
    if (!have_model()) return;
    const sl_api_ctx ctx = {.model = fuzz_api_model(), .model_id = "stories260K", .n_ctx = 512};
    static const char *const bodies[] = {"{\"prompt\": ", "[1, 2]", "{\"tokens\": [1], \"tokens\": [2]}"};
    static const char *const says[] = {"the body is not valid JSON: ", "the body must be a JSON object",
                                       "the body is not valid JSON: duplicate object key"};
    for (int i = 0; i < 3; i++) {
        for (int ep = 0; ep < 3; ep++) {
            sl_api_error e;
            if (ep == 0) {
                sl_api_request r;
                CHECK(!sl_api_parse(&ctx, SL_API_COMPLETIONS, bodies[i], strlen(bodies[i]), &r, &e));
            } else {
                char *out = ep == 1 ? sl_api_tokenize(&ctx, bodies[i], strlen(bodies[i]), &e)
                                    : sl_api_detokenize(&ctx, bodies[i], strlen(bodies[i]), &e);
                CHECK(out == NULL);
                free(out);
            }
            CHECK_EQ_INT(e.status, 400);
            CHECK_MSG(strncmp(e.message, says[i], strlen(says[i])) == 0, "endpoint %d, body %d: %s", ep, i, e.message);
        }
    }
}

/* Parse body (completions, context 512) and keep the request for inspection; 0 when accepted. */
static int parse_keep(const char *body, sl_api_request *r, sl_api_error *e) {
    const sl_api_ctx ctx = {.model = fuzz_api_model(), .model_id = "stories260K", .n_ctx = 512};
    return sl_api_parse(&ctx, SL_API_COMPLETIONS, body, strlen(body), r, e) ? 0 : e->status;
}

/* logit_bias (OpenAI), stop_token_ids and min_tokens (vLLM): the values reach the request parameters; bad
 * values are refused naming the field (stories260K has 512 tokens). */
TEST(logit_bias_stop_token_ids_min_tokens) {
    if (!have_model()) return;
    sl_api_request r;
    sl_api_error e;
    CHECK_EQ_INT(parse_keep("{\"prompt\": \"x\", \"max_tokens\": 9, \"logit_bias\": {\"5\": -100, \"511\": 2.5}, "
                            "\"stop_token_ids\": [7, 0], \"min_tokens\": 9}", &r, &e), 0);
    CHECK_EQ_INT(r.params.n_bias, 2);
    bool seen5 = false, seen511 = false;
    for (int i = 0; i < r.params.n_bias; i++) {
        seen5 |= r.params.bias_ids[i] == 5 && r.params.bias_vals[i] == -100.0f;
        seen511 |= r.params.bias_ids[i] == 511 && r.params.bias_vals[i] == 2.5f;
    }
    CHECK(seen5 && seen511);
    CHECK_EQ_INT(r.params.n_stop_ids, 2);
    CHECK(r.params.stop_ids[0] == 7 && r.params.stop_ids[1] == 0);
    CHECK_EQ_INT(r.params.min_tokens, 9);
    sl_api_request_free(&r);
    CHECK_EQ_INT(parse_keep("{\"prompt\": \"x\", \"logit_bias\": {}, \"stop_token_ids\": [], \"min_tokens\": 0}", &r, &e), 0);
    CHECK(r.params.n_bias == 0 && r.params.n_stop_ids == 0 && r.params.min_tokens == 0);
    sl_api_request_free(&r);

    static const struct {
        const char *body, *param, *msg;
    } bad[] = {
        {"{\"prompt\": \"x\", \"logit_bias\": [1, 2]}", "logit_bias", "must be an object"},
        {"{\"prompt\": \"x\", \"logit_bias\": {\"512\": 1}}", "logit_bias", "key '512' is not a token id in [0, 512)"},
        {"{\"prompt\": \"x\", \"logit_bias\": {\"-1\": 1}}", "logit_bias", "key '-1'"},
        {"{\"prompt\": \"x\", \"logit_bias\": {\"a\": 1}}", "logit_bias", "key 'a'"},
        {"{\"prompt\": \"x\", \"logit_bias\": {\"\": 1}}", "logit_bias", "key ''"},
        {"{\"prompt\": \"x\", \"logit_bias\": {\"99999999999\": 1}}", "logit_bias", "not a token id"},
        {"{\"prompt\": \"x\", \"logit_bias\": {\"5\": 1, \"05\": 2}}", "logit_bias", "token 5 twice"},
        {"{\"prompt\": \"x\", \"logit_bias\": {\"5\": 100.5}}", "logit_bias", "between -100 and 100"},
        {"{\"prompt\": \"x\", \"logit_bias\": {\"5\": \"1\"}}", "logit_bias", "between -100 and 100"},
        {"{\"prompt\": \"x\", \"stop_token_ids\": 5}", "stop_token_ids", "must be an array"},
        {"{\"prompt\": \"x\", \"stop_token_ids\": [1, 512]}", "stop_token_ids", "'stop_token_ids[1]' is not a token id"},
        {"{\"prompt\": \"x\", \"stop_token_ids\": [1.5]}", "stop_token_ids", "'stop_token_ids[0]'"},
        {"{\"prompt\": \"x\", \"max_tokens\": 4, \"min_tokens\": 5}", "min_tokens", "between 0 and max_tokens (4)"},
        {"{\"prompt\": \"x\", \"min_tokens\": -1}", "min_tokens", "between 0 and"},
        {"{\"prompt\": \"x\", \"min_tokens\": \"3\"}", "min_tokens", "must be an integer"},
        {"{\"prompt\": \"x\", \"echo\": 1}", "echo", "must be true or false"},
        {"{\"prompt\": \"x\", \"max_tokens\": 0}", "max_tokens", "between 1 and"},
        {"{\"prompt\": \"x\", \"max_tokens\": -2}", "max_tokens", "between 1 and"},
        {"{\"prompt\": [[1, 2], [512]]}", "prompt", "'prompt[1][0]' is not a token id"},
        {"{\"prompt\": [[1, 2], [3]], \"shardlm_resume\": {\"generated\": 1, \"text_sent\": 0}}", "shardlm_resume",
         "with one prompt"},
        {"{\"prompt\": \"x\", \"best_of\": 2}", "best_of", "must be 1"},
        {"{\"prompt\": \"x\", \"suffix\": \"end\"}", "suffix", "taken by /v1/completions"}, /* (parsed as it: the FIM
                                                                                        * body is made before) */
        {"{\"prompt\": \"x\", \"response_format\": {\"type\": \"json_schema\"}}", "response_format", "json_schema.schema"},
        {"{\"prompt\": \"x\", \"response_format\": {\"type\": \"json_schema\", \"json_schema\": {\"schema\": "
         "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\", \"pattern\": \"x(?!y)\"}}}}}}",
         "response_format", "properties.a: 'pattern': lookahead is not supported at offset 1"},
        {"{\"prompt\": \"x\", \"response_format\": {\"type\": \"yaml\"}}", "response_format", "must be"},
        {"{\"prompt\": \"x\", \"response_format\": \"text\"}", "response_format", "must be"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(parse_keep(bad[i].body, &r, &e), 400);
        CHECK_MSG(!strcmp(e.param, bad[i].param) && strstr(e.message, bad[i].msg),
                  "%s: param '%s', message '%s'", bad[i].body, e.param, e.message);
    }
    /* echo: max_tokens may be 0; a list of one prompt (ids) is that prompt; a resumed stream has no echo */
    CHECK_EQ_INT(parse_keep("{\"prompt\": [[1, 5, 7]], \"echo\": true, \"max_tokens\": 0, \"logprobs\": 1}", &r, &e), 0);
    CHECK(r.params.echo && r.params.max_tokens == 0 && r.params.logprobs == 1);
    CHECK(r.n_prompt == 3 && r.prompt[0] == 1 && r.prompt[1] == 5 && r.prompt[2] == 7);
    sl_api_request_free(&r);
    CHECK_EQ_INT(parse_keep("{\"prompt\": [1, 5, 7], \"echo\": true, \"shardlm_resume\": {\"generated\": 1, "
                            "\"text_sent\": 0}}", &r, &e), 0);
    CHECK(!r.params.echo && r.params.resume_generated == 1);
    sl_api_request_free(&r);
    /* several prompts: the first as prompt, the others in more; max_tokens defaults to what each context leaves */
    CHECK_EQ_INT(parse_keep("{\"prompt\": [[1, 5, 7], \"Once\", [9]]}", &r, &e), 0);
    CHECK(r.n_prompt == 3 && r.prompt[2] == 7 && r.n_more == 2 && r.more[1].n == 1 && r.more[1].ids[0] == 9);
    CHECK(r.more[0].text && !strcmp(r.more[0].text, "Once") && r.more[0].n >= 2 && r.more[0].ids[0] == 1);
    CHECK(!r.max_tokens_given && r.params.max_tokens == 512 - 3);
    sl_api_request_free(&r);
    /* max_tokens -1 (llama.cpp's, its web UI sends it): as far as the context goes */
    CHECK_EQ_INT(parse_keep("{\"prompt\": [1, 5, 7], \"max_tokens\": -1}", &r, &e), 0);
    CHECK(!r.max_tokens_given && r.params.max_tokens == 512 - 3);
    sl_api_request_free(&r);
    CHECK_EQ_INT(parse_keep("{\"prompt\": [[1], [1, 2, 3, 4]], \"max_tokens\": 509}", &r, &e), 400);
    CHECK(strstr(e.message, "in the longest prompt"));
    CHECK_EQ_INT(parse_keep("{\"prompt\": \"x\", \"response_format\": {\"type\": \"json_object\"}}", &r, &e), 0);
    CHECK(r.params.schema != NULL);
    sl_api_request_free(&r);
    /* accepted as no-ops */
    static const char *noop[] = {
        "{\"prompt\": \"x\", \"echo\": false, \"best_of\": 1, \"suffix\": null}",
        "{\"prompt\": \"x\", \"suffix\": \"\", \"response_format\": {\"type\": \"text\"}}",
    };
    for (size_t i = 0; i < sizeof noop / sizeof noop[0]; i++) {
        CHECK_MSG(parse_keep(noop[i], &r, &e) == 0, "%s: %s", noop[i], e.message);
        sl_api_request_free(&r);
    }
    /* with a resumed stream, min_tokens counts its replayed tokens: 3 generated + max_tokens 2 */
    CHECK_EQ_INT(parse_keep("{\"prompt\": [1, 2, 3, 4, 5], \"max_tokens\": 2, \"min_tokens\": 5, "
                            "\"shardlm_resume\": {\"generated\": 3, \"text_sent\": 0}}", &r, &e), 0);
    sl_api_request_free(&r);
    CHECK_EQ_INT(parse_keep("{\"prompt\": [1, 2, 3, 4, 5], \"max_tokens\": 2, \"min_tokens\": 6, "
                            "\"shardlm_resume\": {\"generated\": 3, \"text_sent\": 0}}", &r, &e), 400);
}

/* vLLM's sampling fields beyond OpenAI's, and llama.cpp's names: their values reach the request; fields
 * that would change the output in ways not implemented are refused naming them (stories260K: 512 tokens). */
TEST(vllm_and_llamacpp_sampling_fields) {
    if (!have_model()) return;
    sl_api_request r;
    sl_api_error e;
    CHECK_EQ_INT(parse_keep("{\"prompt\": \"x\", \"allowed_token_ids\": [5, 511, 5], \"include_stop_str_in_output\": true, "
                            "\"skip_special_tokens\": false, \"spaces_between_special_tokens\": false, "
                            "\"return_tokens_as_token_ids\": true, \"use_beam_search\": false, \"typical_p\": 1, "
                            "\"top_n_sigma\": -1, \"mirostat\": 0, \"length_penalty\": 1}", &r, &e), 0);
    CHECK(r.params.n_allow == 3 && r.params.allow_ids[0] == 5 && r.params.allow_ids[1] == 511);
    CHECK(r.params.include_stop_str && r.params.show_special && r.tokens_as_ids);
    sl_api_request_free(&r);
    CHECK_EQ_INT(parse_keep("{\"prompt\": \"x\"}", &r, &e), 0);
    CHECK(!r.params.include_stop_str && !r.params.show_special && !r.tokens_as_ids && r.params.n_allow == 0);
    CHECK(r.params.sampling.repeat_last_n == -1 && r.params.sampling.repeat_penalty == 1.0f);
    CHECK(!r.params.sampling.custom_order && r.params.sampling.typical_p == 1.0f && r.params.sampling.mirostat == 0 &&
          r.params.sampling.dry_multiplier == 0.0f && r.params.dry_breakers == NULL);
    sl_api_request_free(&r);

    /* llama.cpp's samplers reach the sampler's parameters; DRY's default breakers are the tokens holding "\n",
     * ":", "\"" or "*" (and those ending with a beginning of one: none, each is one byte) */
    CHECK_EQ_INT(parse_keep("{\"prompt\": \"x\", \"typical_p\": 0.9, \"top_n_sigma\": 1.5, \"xtc_probability\": 0.5, "
                            "\"xtc_threshold\": 0.2, \"dynatemp_range\": 0.3, \"dynatemp_exponent\": 2, "
                            "\"dry_multiplier\": 0.8, \"dry_base\": 1.5, \"dry_allowed_length\": 3, "
                            "\"dry_penalty_last_n\": 64, \"mirostat\": 2, \"mirostat_tau\": 4, \"mirostat_eta\": 0.2, "
                            "\"min_keep\": 2, \"samplers\": [\"dry\", \"top-k\", \"typ_p\", \"temperature\"]}", &r, &e), 0);
    const sl_sampler_params *sp = &r.params.sampling;
    CHECK(sp->typical_p == 0.9f && sp->top_n_sigma == 1.5f && sp->xtc_probability == 0.5f && sp->xtc_threshold == 0.2f &&
          sp->dynatemp_range == 0.3f && sp->dynatemp_exponent == 2.0f && sp->dry_multiplier == 0.8f &&
          sp->dry_base == 1.5f && sp->dry_allowed_length == 3 && sp->dry_penalty_last_n == 64 && sp->mirostat == 2 &&
          sp->mirostat_tau == 4.0f && sp->mirostat_eta == 0.2f && sp->min_keep == 2);
    CHECK(sp->custom_order && sp->n_stages == 4 && sp->stages[0] == SL_SAMP_DRY && sp->stages[1] == SL_SAMP_TOP_K &&
          sp->stages[2] == SL_SAMP_TYPICAL_P && sp->stages[3] == SL_SAMP_TEMPERATURE);
    {
        const sl_tokenizer *vt = sl_model_tokenizer(fuzz_api_model());
        int32_t n_brk = 0;
        for (int32_t id = 0; id < sl_tokenizer_n_vocab(vt); id++) {
            char piece[256];
            const int64_t len = sl_token_to_piece(vt, id, true, piece, sizeof piece);
            if (len > 0 && len < (int64_t)sizeof piece && strpbrk(piece, "\n:\"*")) n_brk++;
        }
        CHECK(n_brk > 0 && r.params.dry_breakers && r.params.dry_breakers->n == n_brk &&
              r.params.dry_breakers->off[n_brk] == 0);
    }
    sl_api_request_free(&r);
    CHECK_EQ_INT(parse_keep("{\"prompt\": \"x\", \"samplers\": \"kyt\", \"dry_multiplier\": 1, "
                            "\"dry_sequence_breakers\": [\"Lily\"]}", &r, &e), 0);
    CHECK(r.params.sampling.n_stages == 3 && r.params.sampling.stages[1] == SL_SAMP_TYPICAL_P);
    CHECK(r.params.dry_breakers && r.params.dry_breakers->n > 0); /* (" Lily" holds it; "L" begins it) */
    sl_api_request_free(&r);
    CHECK_EQ_INT(parse_keep("{\"prompt\": \"x\", \"samplers\": []}", &r, &e), 0);
    CHECK(r.params.sampling.custom_order && r.params.sampling.n_stages == 0);
    sl_api_request_free(&r);

    /* bad_words as vLLM tokenizes them: the word alone; after a space only when that is as many tokens with
     * another first token */
    const sl_tokenizer *tok = sl_model_tokenizer(fuzz_api_model());
    CHECK_EQ_INT(parse_keep("{\"prompt\": \"x\", \"bad_words\": [\"  girl\", \"Lily\", \"in the\"]}", &r, &e), 0);
    static const char *const words[3] = {"girl", "Lily", "in the"}; /* (leading spaces stripped) */
    int32_t want_ids[64], want_len[6], n_want = 0, n_ids = 0;
    for (int w = 0; w < 3; w++) {
        char spaced[16];
        snprintf(spaced, sizeof spaced, " %s", words[w]);
        int32_t *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        CHECK_OK(sl_tokenize(tok, words[w], strlen(words[w]), false, false, &a, &na));
        CHECK_OK(sl_tokenize(tok, spaced, strlen(spaced), false, false, &b, &nb));
        memcpy(want_ids + n_ids, a, na * sizeof *a);
        n_ids += (int32_t)na;
        want_len[n_want++] = (int32_t)na;
        if (nb == na && b[0] != a[0]) {
            memcpy(want_ids + n_ids, b, nb * sizeof *b);
            n_ids += (int32_t)nb;
            want_len[n_want++] = (int32_t)nb;
        }
        sl_free(a);
        sl_free(b);
    }
    CHECK_EQ_INT(r.params.n_bad, n_want);
    int32_t got_ids = 0;
    for (int32_t i = 0; i < r.params.n_bad && i < n_want; i++) {
        CHECK_EQ_INT(r.params.bad_lens[i], want_len[i]);
        got_ids += r.params.bad_lens[i];
    }
    CHECK(got_ids == n_ids && !memcmp(r.params.bad_ids, want_ids, sizeof(int32_t) * (size_t)n_ids));
    printf("   bad_words: %d sequences, %d tokens\n", n_want, n_ids);
    sl_api_request_free(&r);

    /* llama.cpp's names: repeat_penalty over its last 64 tokens (or repeat_last_n / penalty_last_n), n_predict */
    CHECK_EQ_INT(parse_keep("{\"prompt\": \"x\", \"repeat_penalty\": 1.3, \"n_predict\": 7}", &r, &e), 0);
    CHECK(r.params.sampling.repeat_penalty == 1.3f && r.params.sampling.repeat_last_n == 64);
    CHECK(r.max_tokens_given && r.params.max_tokens == 7);
    sl_api_request_free(&r);
    CHECK_EQ_INT(parse_keep("{\"prompt\": \"x\", \"repeat_penalty\": 1.3, \"penalty_last_n\": 8, \"n_predict\": -1}", &r,
                            &e), 0);
    CHECK(r.params.sampling.repeat_last_n == 8 && !r.max_tokens_given);
    sl_api_request_free(&r);
    CHECK_EQ_INT(parse_keep("{\"prompt\": \"x\", \"repetition_penalty\": 1.2, \"repeat_penalty\": 1.2}", &r, &e), 0);
    CHECK(r.params.sampling.repeat_penalty == 1.2f && r.params.sampling.repeat_last_n == -1);
    sl_api_request_free(&r);
    CHECK_EQ_INT(parse_keep("{\"prompt\": \"x\", \"max_tokens\": 3, \"n_predict\": 7}", &r, &e), 0);
    CHECK(r.params.max_tokens == 3);
    sl_api_request_free(&r);

    /* truncate_prompt_tokens: the last K ids; a completions prompt so cut loses its text (echo shows the kept
     * tokens' text) */
    CHECK_EQ_INT(parse_keep("{\"prompt\": [[1, 5, 7, 9], [2, 3]], \"truncate_prompt_tokens\": 3}", &r, &e), 0);
    CHECK(r.n_prompt == 3 && r.prompt[0] == 5 && r.prompt[2] == 9 && r.more[0].n == 2 && r.more[0].ids[0] == 2);
    sl_api_request_free(&r);
    CHECK_EQ_INT(parse_keep("{\"prompt\": \"Once upon a time\", \"truncate_prompt_tokens\": 2}", &r, &e), 0);
    CHECK(r.n_prompt == 2 && r.prompt_text == NULL);
    sl_api_request_free(&r);

    static const struct {
        const char *body, *param, *msg;
    } bad[] = {
        {"{\"prompt\": \"x\", \"allowed_token_ids\": []}", "allowed_token_ids", "array of 1 to 512 token ids"},
        {"{\"prompt\": \"x\", \"allowed_token_ids\": [1, 512]}", "allowed_token_ids", "'allowed_token_ids[1]' is not a token id"},
        {"{\"prompt\": \"x\", \"allowed_token_ids\": \"1\"}", "allowed_token_ids", "must be an array"},
        {"{\"prompt\": \"x\", \"bad_words\": \"girl\"}", "bad_words", "must be an array of at most 64 strings"},
        {"{\"prompt\": \"x\", \"bad_words\": [\"a\", \"  \"]}", "bad_words", "'bad_words[1]' must be a string of 1 to 256"},
        {"{\"prompt\": \"x\", \"bad_words\": [3]}", "bad_words", "'bad_words[0]' must be a string"},
        {"{\"prompt\": \"x\", \"include_stop_str_in_output\": 1}", "include_stop_str_in_output", "true or false"},
        {"{\"prompt\": \"x\", \"skip_special_tokens\": \"no\"}", "skip_special_tokens", "true or false"},
        {"{\"prompt\": \"x\", \"truncate_prompt_tokens\": 0}", "truncate_prompt_tokens", "-1 or at least 1"},
        {"{\"prompt\": \"x\", \"truncate_prompt_tokens\": 512}", "truncate_prompt_tokens", "between -1 and 511"},
        {"{\"prompt\": \"x\", \"repetition_penalty\": 1.1, \"repeat_penalty\": 1.2}", "repeat_penalty", "differ"},
        {"{\"prompt\": \"x\", \"repeat_last_n\": -2}", "repeat_last_n", "between -1 and"},
        {"{\"prompt\": \"x\", \"typical_p\": 1.5}", "typical_p", "between 0 and 1"},
        {"{\"prompt\": \"x\", \"mirostat\": 3}", "mirostat", "between 0 and 2"},
        {"{\"prompt\": \"x\", \"dry_multiplier\": -0.8}", "dry_multiplier", "between 0 and"},
        {"{\"prompt\": \"x\", \"xtc_probability\": \"0.5\"}", "xtc_probability", "must be a number"},
        {"{\"prompt\": \"x\", \"min_keep\": -1}", "min_keep", "between 0 and"},
        {"{\"prompt\": \"x\", \"dry_multiplier\": 0.8, \"dry_sequence_breakers\": []}", "dry_sequence_breakers",
         "non-empty array"},
        {"{\"prompt\": \"x\", \"dry_multiplier\": 0.8, \"dry_sequence_breakers\": [\"\"]}", "dry_sequence_breakers",
         "'dry_sequence_breakers[0]' must be a non-empty string"},
        {"{\"prompt\": \"x\", \"samplers\": [\"top_k\", \"bogus\"]}", "samplers", "'samplers[1]' must be one of"},
        {"{\"prompt\": \"x\", \"samplers\": \"kz\"}", "samplers", "letter 1 (byte 0x7a)"},
        {"{\"prompt\": \"x\", \"samplers\": {\"k\": 1}}", "samplers", "must be an array of at most 16"},
        {"{\"prompt\": \"x\", \"tfs_z\": \"1\"}", "tfs_z", "not supported"},
        {"{\"prompt\": \"x\", \"use_beam_search\": 1}", "use_beam_search", "true or false"},
        {"{\"prompt\": \"x\", \"use_beam_search\": true, \"n\": 11}", "n", "at most 10 beams"},
        {"{\"prompt\": \"x\", \"use_beam_search\": true, \"prompt_logprobs\": 2}", "prompt_logprobs", "not taken with"},
        {"{\"prompt\": \"x\", \"use_beam_search\": true, \"presence_penalty\": 0.5}", "presence_penalty", "not taken with"},
        {"{\"prompt\": \"x\", \"use_beam_search\": true, \"length_penalty\": \"1\"}", "length_penalty", "number"},
        {"{\"prompt\": \"x\", \"prompt_logprobs\": 1, \"stream\": true}", "prompt_logprobs", "not available with"},
        {"{\"prompt\": \"x\", \"prompt_logprobs\": 21}", "prompt_logprobs", "between 0 and 20"},
        {"{\"prompt\": \"x\", \"guided_whitespace_pattern\": \" \"}", "guided_whitespace_pattern", "not supported"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(parse_keep(bad[i].body, &r, &e), 400);
        CHECK_MSG(!strcmp(e.param, bad[i].param) && strstr(e.message, bad[i].msg),
                  "%s: param '%s', message '%s'", bad[i].body, e.param, e.message);
    }
}

/* An assistant message's tool_calls reach the template with their arguments as an object (OpenAI sends
 * JSON text; Qwen 2.5's template writes `arguments | tojson`), and the tools are listed in the system
 * part. The expected pieces follow the template's own text. */
TEST(tool_calls_render_through_a_real_template) {
    if (!have_model()) return;
    const char *path = sl_test_shared("golden/chat-templates/Qwen-Qwen2.5-7B-Instruct.jinja");
    if (!path) return;
    size_t len;
    char *src = sl_test_read_file(path, &len);
    CHECK(src != NULL);
    const sl_api_ctx ctx = {.model = fuzz_api_model(), .model_id = "stories260K", .n_ctx = 512, .chat_template = src};
    json_t *msgs = json_loads("[{\"role\":\"user\",\"content\":\"Weather?\"},{\"role\":\"assistant\",\"content\":null,"
                              "\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                              "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"call_1\","
                              "\"content\":\"sunny\"}]",
                              0, NULL);
    json_t *tools = json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{}}}]", 0, NULL);
    char *out = NULL;
    sl_api_error e;
    const sl_api_chat_opts co = {.tools = tools, .add_generation_prompt = true};
    const bool ok = sl_api_render_chat(&ctx, msgs, &co, &out, &e);
    json_decref(msgs);
    json_decref(tools);
    free(src);
    CHECK_MSG(ok, "%s", e.message);
    const bool call = strstr(out, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>");
    const bool listed = strstr(out, "<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\"");
    const bool result = strstr(out, "<tool_response>\nsunny\n</tool_response>");
    if (!call || !listed || !result) fprintf(stderr, "   rendered:\n%s\n", out);
    sl_free(out);
    CHECK(call);
    CHECK(listed);
    CHECK(result);
}

/* functionary v3.2's template concatenates a tool call's arguments to a string: given an object it fails
 * ("can only concatenate str"), so the server probes the template and passes the client's JSON text
 * there; Qwen 2.5's (arguments | tojson) keeps the object. The expected text follows the template's
 * ">>>NAME\n" + arguments. */
TEST(tool_call_arguments_reach_each_template_in_the_form_it_reads) {
    if (!have_model()) return;
    static const struct {
        const char *file;
        bool text;
        const char *expect;
    } cases[] = {
        {"meetkai-functionary-medium-v3.2", true, ">>>get_weather\n{\"city\":\"Paris\"}<|eot_id|>"},
        {"Qwen-Qwen2.5-7B-Instruct", false, "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "golden/chat-templates/%s.jinja", cases[i].file);
        const char *path = sl_test_shared(rel);
        if (!path) return;
        size_t len;
        char *src = sl_test_read_file(path, &len);
        CHECK(src != NULL);
        sl_api_ctx ctx = {.model = fuzz_api_model(), .model_id = "stories260K", .n_ctx = 512, .chat_template = src};
        sl_api_ctx_prepare(&ctx);
        CHECK_MSG(ctx.tool_args_text == cases[i].text, "%s: tool_args_text %d", cases[i].file, ctx.tool_args_text);
        CHECK_EQ_INT(ctx.n_tool_show, 0); /* stories260K's vocabulary has none of the markers */
        json_t *msgs = json_loads("[{\"role\":\"user\",\"content\":\"Weather?\"},{\"role\":\"assistant\",\"content\":\"\","
                                  "\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
                                  "\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]},{\"role\":\"tool\","
                                  "\"tool_call_id\":\"call_1\",\"content\":\"sunny\"}]",
                                  0, NULL);
        json_t *tools = json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"w\","
                                   "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}]",
                                   0, NULL);
        char *out = NULL;
        sl_api_error e;
        const sl_api_chat_opts co = {.tools = tools, .add_generation_prompt = true};
        const bool ok = sl_api_render_chat(&ctx, msgs, &co, &out, &e);
        json_decref(msgs);
        json_decref(tools);
        free(src);
        CHECK_MSG(ok, "%s: %s", cases[i].file, e.message);
        if (!ok) continue;
        const bool found = strstr(out, cases[i].expect) != NULL;
        if (!found) fprintf(stderr, "   %s rendered:\n%s\n", cases[i].file, out);
        sl_free(out);
        CHECK(found);
    }
}

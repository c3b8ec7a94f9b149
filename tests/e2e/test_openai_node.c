/*
 * test_openai_node.c — the official `openai` npm client (tests/node) completes
 * a non-streaming and a streaming chat request, a completion, tool calls
 * (forced, required, and runTools' round trip) and the Responses API (whole,
 * streamed, a forced call) against a real `shardlm serve`, Anthropic's SDK its Messages API and Ollama's client its
 * native API. Needs node and
 * `npm install` in tests/node (.ci/run
 * does it); without them this test fails, saying so.
 */
#include "harness.h"
#include "tls_util.h"

#include <math.h>

#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

/* Start `shardlm serve` on stories260K (with --api-key key, where given; HTTPS with key and cert files where
 * tls_key is given: node trusts cert through NODE_EXTRA_CA_CERTS), run node on script with the server's URL
 * (+ path) and the key, stop the server (*src: its exit status); the JSON the script printed, or NULL. */
static json_t *run_node_tls(const char *script, const char *path, const char *key, const char *tls_key, const char *tls_cert,
                            int *src) {
    const char *node = access("/usr/bin/node", X_OK) == 0 ? "/usr/bin/node" : "/usr/local/bin/node";
    if (access(node, X_OK) != 0) {
        fprintf(stderr, "    node is not installed\n");
        return NULL;
    }
    sl_test_proc p;
    char *args[16] = {"serve", "-m", "../shared/models/stories260K.gguf", "--port", "0", "-t", "1"};
    int n = 7;
    if (key) {
        args[n++] = "--api-key";
        args[n++] = (char *)key;
    }
    if (tls_key) {
        args[n++] = "--ssl-keyfile";
        args[n++] = (char *)tls_key;
        args[n++] = "--ssl-certfile";
        args[n++] = (char *)tls_cert;
        setenv("NODE_EXTRA_CA_CERTS", tls_cert, 1);
    }
    args[n] = NULL;
    if (sl_test_proc_start(&p, args, 20) != 0) return NULL;
    char base[96];
    snprintf(base, sizeof base, "%s%s", p.url, path);
    char *argv[] = {(char *)node, (char *)script, base, (char *)key, NULL};
    char *out = NULL, *err = NULL;
    int rc = sl_test_run(argv, &out, &err, 60);
    unsetenv("NODE_EXTRA_CA_CERTS");
    *src = sl_test_proc_stop(&p, SIGTERM, 10);
    json_t *o = rc == 0 ? json_loads(out, 0, NULL) : NULL;
    if (!o) fprintf(stderr, "    node exited %d\n    stdout: %s\n    stderr: %s\n", rc, out, err);
    free(out);
    free(err);
    return o;
}

static json_t *run_node(const char *script, const char *path, const char *key, int *src) {
    return run_node_tls(script, path, key, NULL, NULL, src);
}

/* The official client over HTTPS (the server's certificate trusted through NODE_EXTRA_CA_CERTS, as a deployment
 * with its own CA does): the same chat answer whole and streamed as over HTTP. */
TEST(openai_node_client_https) {
    CHECK_MSG(access("tests/node/node_modules/openai/package.json", R_OK) == 0,
              "the openai npm package is not installed: run 'npm install' in tests/node (.ci/run does)");
    char key[] = "/tmp/shardlm-key-XXXXXX", cert[] = "/tmp/shardlm-cert-XXXXXX";
    CHECK(tls_make_cert(key, cert));
    int src = -1, src2 = -1;
    json_t *o = run_node_tls("tests/node/openai-client.mjs", "/v1", NULL, key, cert, &src);
    json_t *h = run_node("tests/node/openai-client.mjs", "/v1", NULL, &src2);
    const char *plain = json_string_value(json_object_get(o, "plain")), *streamed = json_string_value(json_object_get(o, "streamed"));
    const char *want = json_string_value(json_object_get(h, "plain"));
    CHECK_MSG(plain && streamed && want && strlen(plain) > 0 && !strcmp(plain, streamed) && !strcmp(plain, want),
              "over HTTPS %s / %s, over HTTP %s", plain, streamed, want);
    CHECK_EQ_INT(src, 0);
    json_decref(o);
    json_decref(h);
    unlink(key);
    unlink(cert);
}

TEST(openai_node_client) {
    CHECK_MSG(access("tests/node/node_modules/openai/package.json", R_OK) == 0,
              "the openai npm package is not installed: run 'npm install' in tests/node (.ci/run does)");
    int src = -1;
    json_t *o = run_node("tests/node/openai-client.mjs", "/v1", NULL, &src);
    CHECK(o != NULL);
    const char *plain = json_string_value(json_object_get(o, "plain"));
    const char *streamed = json_string_value(json_object_get(o, "streamed"));
    int same = plain && streamed && !strcmp(plain, streamed) && strlen(plain) > 0;
    const char *sf = json_string_value(json_object_get(o, "stream_finish"));
    json_t *su = json_object_get(o, "stream_usage");
    long long ct = json_integer_value(json_object_get(su, "completion_tokens"));
    json_t *nf = json_object_get(o, "not_found");
    long long nf_status = json_integer_value(json_object_get(nf, "status"));
    const char *model = json_string_value(json_object_get(o, "model"));
    const char *completion = json_string_value(json_object_get(o, "completion"));
    const char *retrieved = json_string_value(json_object_get(o, "retrieved"));
    bool model_ok = model && !strcmp(model, "stories260K") && retrieved && !strcmp(retrieved, model);
    bool comp_ok = completion && strlen(completion) > 0;
    bool sf_ok = sf && !strcmp(sf, "length");
    /* several prompts with echo and logprobs, nothing generated: each choice is its prompt, scored */
    static const char *prompts[] = {"Once upon a time", "Lily and Ben"};
    json_t *scored = json_object_get(o, "scored");
    int scored_ok = 0;
    for (size_t k = 0; k < 2; k++) {
        json_t *c = json_array_get(scored, k);
        const char *t = json_string_value(json_object_get(c, "text"));
        const char *fin = json_string_value(json_object_get(c, "finish"));
        scored_ok += json_integer_value(json_object_get(c, "index")) == (json_int_t)k && t && !strcmp(t, prompts[k]) &&
                     fin && !strcmp(fin, "length") && json_integer_value(json_object_get(c, "n")) >= 4 &&
                     json_is_null(json_object_get(c, "first")) && json_real_value(json_object_get(c, "last")) < 0;
    }
    if (scored_ok != 2) {
        char *d = json_dumps(scored, 0);
        fprintf(stderr, "    scored: %s\n", d ? d : "(none)");
        free(d);
    }
    /* tools: the forced call whole (finish "stop", as OpenAI), the required one streamed and assembled by
     * the client's helper, the function called by runTools with arguments of its schema, and the
     * conversation carrying the call and its result answered */
    json_t *tp = json_object_get(o, "tool_plain"), *ts = json_object_get(o, "tool_streamed");
    json_t *tp0 = json_array_get(json_object_get(tp, "calls"), 0), *ts0 = json_array_get(json_object_get(ts, "calls"), 0);
    json_t *targs = json_loads(json_string_value(json_object_get(tp0, "arguments")), 0, NULL);
    json_t *called = json_object_get(o, "tool_called");
    const bool tools_ok =
        json_is_string(json_object_get(tp, "finish")) && !strcmp(json_string_value(json_object_get(tp, "finish")), "stop") &&
        json_is_null(json_object_get(tp, "content")) && json_array_size(json_object_get(tp, "calls")) == 1 &&
        !strcmp(json_string_value(json_object_get(tp0, "name")), "get_weather") &&
        json_is_string(json_object_get(targs, "city")) && json_is_string(json_object_get(targs, "unit")) &&
        !strcmp(json_string_value(json_object_get(ts, "finish")), "tool_calls") &&
        json_array_size(json_object_get(ts, "calls")) == 1 && !strcmp(json_string_value(json_object_get(ts0, "name")), "get_weather") &&
        !strncmp(json_string_value(json_object_get(ts0, "id")), "call_", 5) && json_is_object(called) &&
        json_equal(called, targs) && json_array_size(json_object_get(o, "tool_history")) == 3 &&
        json_is_string(json_object_get(json_object_get(o, "tool_after"), "content"));
    if (!tools_ok) {
        char *d = json_dumps(o, 0);
        fprintf(stderr, "    tools: %s\n", d ? d : "(none)");
        free(d);
    }
    /* the Responses API: the same answer as chat's, whole and streamed (assembled by the client's helper from
     * the events, first response.created, last response.incomplete at max_output_tokens), and a forced call */
    json_t *rs = json_object_get(o, "responses");
    const char *rt = json_string_value(json_object_get(rs, "text")), *rst = json_string_value(json_object_get(rs, "streamed")),
               *rd = json_string_value(json_object_get(rs, "deltas"));
    json_t *rcall = json_array_get(json_object_get(rs, "tool"), 0);
    json_t *rargs = json_loads(json_string_value(json_object_get(rcall, "arguments")), 0, NULL);
    const bool resp_ok = rt && plain && !strcmp(rt, plain) && rst && !strcmp(rst, rt) && rd && !strcmp(rd, rt) &&
                         !strcmp(json_string_value(json_object_get(rs, "status")) ?: "", "incomplete") &&
                         !strcmp(json_string_value(json_object_get(rs, "stream_status")) ?: "", "incomplete") &&
                         !strcmp(json_string_value(json_object_get(rs, "object")) ?: "", "response") &&
                         json_integer_value(json_object_get(json_object_get(rs, "usage"), "output_tokens")) == 24 &&
                         !strcmp(json_string_value(json_object_get(rs, "first")) ?: "", "response.created") &&
                         !strcmp(json_string_value(json_object_get(rs, "last")) ?: "", "response.incomplete") &&
                         json_array_size(json_object_get(rs, "tool")) == 1 &&
                         !strcmp(json_string_value(json_object_get(rcall, "name")) ?: "", "get_weather") &&
                         json_is_string(json_object_get(rargs, "city")) && json_is_string(json_object_get(rargs, "unit"));
    /* the second turn continues the first (its input counts the first turn's input and output), and
     * retrieve gives the first back */
    json_t *sec = json_object_get(rs, "second"), *ret = json_object_get(rs, "retrieved");
    const bool kept_ok = json_is_string(json_object_get(sec, "previous")) && json_is_string(json_object_get(sec, "text")) &&
                         json_integer_value(json_object_get(sec, "input_tokens")) >
                             json_integer_value(json_object_get(json_object_get(rs, "usage"), "input_tokens")) + 24 &&
                         !strcmp(json_string_value(json_object_get(ret, "text")) ?: "", rt ?: "-");
    if (!resp_ok) {
        char *d = json_dumps(rs, 0);
        fprintf(stderr, "    responses: %s\n    chat: %s\n", d ? d : "(none)", plain ? plain : "(none)");
        free(d);
    }
    json_decref(rargs);
    CHECK(resp_ok);
    CHECK_MSG(kept_ok, "previous_response_id / retrieve");
    /* embeddings: two inputs (the client's base64, decoded) of 64 floats, unit length, the same numbers as floats */
    json_t *em = json_object_get(o, "embeddings");
    const double norm = json_number_value(json_object_get(em, "norm"));
    CHECK_MSG(json_integer_value(json_object_get(em, "n")) == 2 && json_integer_value(json_object_get(em, "dims")) == 64 &&
                  json_integer_value(json_object_get(em, "index1")) == 1 &&
                  json_integer_value(json_object_get(em, "prompt_tokens")) >= 6 && json_is_true(json_object_get(em, "same")) &&
                  json_is_true(json_object_get(em, "differ")) && fabs(norm - 1) < 1e-5,
              "embeddings: %s", json_dumps(em, 0));
    json_decref(targs);
    json_decref(o);
    CHECK(tools_ok);
    CHECK_EQ_INT(scored_ok, 2);
    CHECK_MSG(same, "streamed text differs from the non-streaming answer");
    CHECK(model_ok);
    CHECK(comp_ok);
    CHECK(sf_ok);
    CHECK_EQ_INT(ct, 24);
    CHECK_EQ_INT(nf_status, 404);
    CHECK_EQ_INT(src, 0);
}

/* Anthropic's official TypeScript SDK (tests/node/anthropic-client.mjs) against `shardlm serve --api-key`
 * (sent as x-api-key): a message; the same streamed through the SDK's helper (the same text, its events from
 * message_start to message_stop, usage counted); count_tokens (the message's input tokens); a forced tool
 * call whose input follows the tool's schema, plain and streamed alike, stop_reason tool_use; the tool's
 * result sent back as a tool_result block; an unknown model's 404 as Anthropic's not_found_error. */
TEST(anthropic_node_client) {
    CHECK_MSG(access("tests/node/node_modules/@anthropic-ai/sdk/package.json", R_OK) == 0,
              "the @anthropic-ai/sdk npm package is not installed: run 'npm ci' in tests/node (.ci/run does)");
    int src = -1;
    json_t *o = run_node("tests/node/anthropic-client.mjs", "", "k3y", &src);
    CHECK(o != NULL);
    const char *text = json_string_value(json_object_get(o, "text"));
    json_t *u = json_object_get(o, "usage"), *su = json_object_get(o, "stream_usage");
    const long long in = json_integer_value(json_object_get(u, "input_tokens")) +
                         json_integer_value(json_object_get(u, "cache_read_input_tokens"));
    const long long sin = json_integer_value(json_object_get(su, "input_tokens")) +
                          json_integer_value(json_object_get(su, "cache_read_input_tokens"));
    CHECK_MSG(text && strlen(text) > 0 && !strcmp(json_string_value(json_object_get(o, "streamed")) ?: "", text) &&
                  !strcmp(json_string_value(json_object_get(o, "streamed_events")) ?: "", text) &&
                  !strcmp(json_string_value(json_object_get(o, "stop")) ?: "", "max_tokens") &&
                  !strcmp(json_string_value(json_object_get(o, "stream_stop")) ?: "", "max_tokens") &&
                  json_integer_value(json_object_get(u, "output_tokens")) == 24 &&
                  json_integer_value(json_object_get(su, "output_tokens")) == 24 && in > 5 && sin == in &&
                  json_integer_value(json_object_get(o, "count")) == in &&
                  !strncmp(json_string_value(json_object_get(o, "id")) ?: "", "msg_", 4) &&
                  !strcmp(json_string_value(json_object_get(o, "first")) ?: "", "message_start") &&
                  !strcmp(json_string_value(json_object_get(o, "last")) ?: "", "message_stop"),
              "message: %s", json_dumps(o, 0));
    json_t *f = json_array_get(json_object_get(o, "forced"), 0), *fs = json_array_get(json_object_get(o, "forced_streamed"), 0);
    json_t *in_f = json_object_get(f, "input");
    const char *unit = json_string_value(json_object_get(in_f, "unit"));
    CHECK_MSG(json_array_size(json_object_get(o, "forced")) == 1 &&
                  !strcmp(json_string_value(json_object_get(f, "name")) ?: "", "get_weather") &&
                  json_is_string(json_object_get(in_f, "city")) && unit && (!strcmp(unit, "c") || !strcmp(unit, "f")) &&
                  json_equal(in_f, json_object_get(fs, "input")) &&
                  !strcmp(json_string_value(json_object_get(o, "forced_stop")) ?: "", "tool_use") &&
                  json_is_string(json_object_get(json_object_get(o, "after"), "stop")),
              "tools: %s", json_dumps(o, 0));
    json_t *nf = json_object_get(o, "not_found");
    CHECK_MSG(json_integer_value(json_object_get(nf, "status")) == 404 &&
                  !strcmp(json_string_value(json_object_get(nf, "type")) ?: "", "not_found_error"),
              "not found: %s", json_dumps(nf, 0));
    json_decref(o);
    CHECK_EQ_INT(src, 0);
}

/* Ollama's official JavaScript client (tests/node/ollama-client.mjs) against `shardlm serve --api-key` (sent as a
 * header): chat and generate answers whole and streamed alike (the streamed lines joined, the last one done with
 * its counts), a name with Ollama's default tag, a raw generate the same text as OpenAI's completion of the same
 * prompt, a JSON schema format followed, a conversation with a tool call and its result, embeddings of unit
 * length (current endpoint) and the legacy one, the model list, details, running models and version, an unknown
 * model's 404 and a missing key's 401. */
TEST(ollama_node_client) {
    CHECK_MSG(access("tests/node/node_modules/ollama/package.json", R_OK) == 0,
              "the ollama npm package is not installed: run 'npm ci' in tests/node (.ci/run does)");
    int src = -1;
    json_t *o = run_node("tests/node/ollama-client.mjs", "", "k3y", &src);
    CHECK(o != NULL);
    const char *chat = json_string_value(json_object_get(o, "chat")), *gen = json_string_value(json_object_get(o, "gen"));
    json_t *cl = json_object_get(o, "chat_last"), *gl = json_object_get(o, "gen_last");
    CHECK_MSG(chat && strlen(chat) > 0 && !strcmp(json_string_value(json_object_get(o, "chat_streamed")) ?: "", chat) &&
                  !strcmp(json_string_value(json_object_get(o, "chat_role")) ?: "", "assistant") &&
                  json_is_true(json_object_get(o, "chat_done")) &&
                  !strcmp(json_string_value(json_object_get(o, "chat_reason")) ?: "", "length") &&
                  json_integer_value(json_object_get(o, "chat_eval")) == 24 &&
                  json_integer_value(json_object_get(o, "chat_prompt")) > 5 &&
                  json_integer_value(json_object_get(o, "chat_total")) > 0 && json_is_true(json_object_get(cl, "done")) &&
                  !strcmp(json_string_value(json_object_get(cl, "reason")) ?: "", "length") &&
                  json_integer_value(json_object_get(cl, "eval")) == 24,
              "chat: %s", json_dumps(o, 0));
    CHECK_MSG(gen && strlen(gen) > 0 && !strcmp(json_string_value(json_object_get(o, "gen_streamed")) ?: "", gen) &&
                  !strcmp(json_string_value(json_object_get(o, "gen_model")) ?: "", "stories260K:latest") &&
                  json_integer_value(json_object_get(o, "gen_eval")) == 24 &&
                  json_integer_value(json_object_get(o, "gen_parts")) >= 2 && json_is_true(json_object_get(gl, "done")) &&
                  json_integer_value(json_object_get(gl, "eval")) == 24 && json_integer_value(json_object_get(gl, "prompt")) > 5,
              "generate: %s", json_dumps(o, 0));
    const char *raw = json_string_value(json_object_get(o, "raw"));
    CHECK_MSG(raw && strlen(raw) > 0 && !strcmp(json_string_value(json_object_get(o, "openai")) ?: "", raw) &&
                  json_integer_value(json_object_get(o, "raw_eval")) == 24,
              "raw: %s", json_dumps(o, 0));
    CHECK_MSG(json_is_integer(json_object_get(json_object_get(o, "formatted"), "age")), "format: %s", json_dumps(o, 0));
    CHECK_MSG(json_is_true(json_object_get(json_object_get(o, "with_tool"), "done")), "tool: %s", json_dumps(o, 0));
    json_t *norms = json_object_get(o, "embed_norms");
    CHECK_MSG(json_integer_value(json_object_get(o, "embed_n")) == 2 && json_array_size(norms) == 2 &&
                  fabs(json_number_value(json_array_get(norms, 0)) - 1) < 1e-5 &&
                  fabs(json_number_value(json_array_get(norms, 1)) - 1) < 1e-5 &&
                  json_integer_value(json_object_get(o, "embed_prompt")) > 2 &&
                  json_integer_value(json_object_get(o, "embed_dim")) == 64 &&
                  json_integer_value(json_object_get(o, "legacy_dim")) == 64,
              "embed: %s", json_dumps(o, 0));
    json_t *m0 = json_array_get(json_object_get(o, "list"), 0);
    CHECK_MSG(!strcmp(json_string_value(json_object_get(m0, "name")) ?: "", "stories260K") &&
                  json_integer_value(json_object_get(m0, "size")) > 1000000 &&
                  !strcmp(json_string_value(json_object_get(o, "show_template")) ?: "", "string") &&
                  !strcmp(json_string_value(json_array_get(json_object_get(o, "ps"), 0)) ?: "", "stories260K") &&
                  json_string_length(json_object_get(o, "version")) > 0,
              "models: %s", json_dumps(o, 0));
    json_t *nf = json_object_get(o, "not_found"), *nk = json_object_get(o, "no_key");
    CHECK_MSG(json_integer_value(json_object_get(nf, "status")) == 404 &&
                  strstr(json_string_value(json_object_get(nf, "error")) ?: "", "no-such-model") &&
                  json_integer_value(json_object_get(nk, "status")) == 401,
              "errors: %s", json_dumps(o, 0));
    json_decref(o);
    CHECK_EQ_INT(src, 0);
}

/*
 * test_router_failover.c — the router's pure pieces: continuation requests and
 * stream rewriting (src/router/failover.c), rollout draws (placement.c over a
 * membership view), weights parsing, the engines' load report parser
 * (health.c). Expected values are written out by hand from the OpenAI wire
 * formats the engine emits (see src/server/http.c).
 */
#include "harness.h"

#include "router/etcd.h"
#include "router/failover.h"
#include "router/health.h"
#include "router/members.h"
#include "router/placement.h"

#include <stdlib.h>

TEST(parse_ids) {
    int32_t *ids = NULL, n = 0, cap = 0;
    CHECK_OK(sl_fo_parse_ids("1 403 7", 7, &ids, &n, &cap));
    CHECK_OK(sl_fo_parse_ids(" 12", 3, &ids, &n, &cap));
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(ids[0], 1);
    CHECK_EQ_INT(ids[1], 403);
    CHECK_EQ_INT(ids[3], 12);
    CHECK(sl_fo_parse_ids("1 x", 3, &ids, &n, &cap) == SL_ERR_PROTO);
    CHECK(sl_fo_parse_ids("-1", 2, &ids, &n, &cap) == SL_ERR_PROTO);
    CHECK(sl_fo_parse_ids("99999999999", 11, &ids, &n, &cap) == SL_ERR_PROTO);
    /* the error quotes the n bytes it was given, not what follows them (found by fuzz_router_data) */
    CHECK(sl_fo_parse_ids("12 xSECRET", 4, &ids, &n, &cap) == SL_ERR_PROTO);
    CHECK_MSG(strstr(sl_last_error(), "'12 x'") && !strstr(sl_last_error(), "SECRET"), "%s", sl_last_error());
    free(ids);
}

/* max_tokens beyond any engine's limit (2^31), as a real or near INT64_MIN: clamped before the arithmetic
 * (found by fuzz_router_data under UBSan: a float-to-integer overflow and a signed overflow) */
TEST(continuation_absurd_max_tokens) {
    int32_t p[] = {1}, g[] = {11, 12};
    char *body = NULL;
    json_t *o = json_loads("{\"prompt\":\"x\",\"max_tokens\":1e300}", 0, NULL);
    CHECK_OK(sl_fo_continuation(o, SL_FO_COMPLETIONS, p, 1, g, 2, -1, &body));
    json_decref(o);
    CHECK_MSG(strstr(body, "\"max_tokens\":2147483646") != NULL, "%s", body);
    free(body);
    o = json_loads("{\"prompt\":\"x\",\"max_tokens\":-9223372036854775808}", 0, NULL);
    CHECK(sl_fo_continuation(o, SL_FO_COMPLETIONS, p, 1, g, 2, -1, &body) == SL_ERR_RANGE);
    json_decref(o);
}

static json_t *load(const char *s) { return json_loads(s, 0, NULL); }

/* llama.cpp's n_predict is the length limit too (what is left of it, as max_tokens; -1: none), and the ids
 * are the prompt the engine kept: vLLM's truncate_prompt_tokens does not cut them again. */
TEST(continuation_n_predict_and_truncation) {
    int32_t p[] = {1, 403}, g[] = {11, 12, 13};
    char *body;
    json_t *o = load("{\"prompt\":\"Once\",\"n_predict\":10,\"truncate_prompt_tokens\":2,\"stream\":true}");
    CHECK_OK(sl_fo_continuation(o, SL_FO_COMPLETIONS, p, 2, g, 3, -1, &body));
    CHECK_STR(body, "{\"prompt\":[1,403,11,12,13],\"stream\":true,\"max_tokens\":7}");
    free(body);
    json_object_set_new(o, "n_predict", json_integer(3));
    CHECK(sl_fo_continuation(o, SL_FO_COMPLETIONS, p, 2, g, 3, -1, &body) == SL_ERR_RANGE);
    json_object_set_new(o, "n_predict", json_integer(-1));
    CHECK_OK(sl_fo_continuation(o, SL_FO_COMPLETIONS, p, 2, g, 3, -1, &body));
    CHECK_STR(body, "{\"prompt\":[1,403,11,12,13],\"n_predict\":-1,\"stream\":true}");
    free(body);
    json_decref(o);
    o = load("{\"prompt\":\"Once\",\"max_tokens\":-1,\"stream\":true}"); /* (llama.cpp's web UI sends it) */
    CHECK_OK(sl_fo_continuation(o, SL_FO_COMPLETIONS, p, 2, g, 3, -1, &body));
    CHECK_STR(body, "{\"prompt\":[1,403,11,12,13],\"max_tokens\":-1,\"stream\":true}");
    free(body);
    json_decref(o);
}

TEST(continuation_completions) {
    json_t *o = load("{\"model\":\"m\",\"prompt\":\"Once\",\"max_tokens\":10,\"temperature\":0.5,\"seed\":7,"
                     "\"stream\":true,\"echo\":true,\"stop\":[\"x\"],\"user\":\"u\"}");
    int32_t p[] = {1, 403}, g[] = {11, 12, 13};
    char *body;
    CHECK_OK(sl_fo_continuation(o, SL_FO_COMPLETIONS, p, 2, g, 3, -1, &body));
    CHECK_STR(body, "{\"model\":\"m\",\"prompt\":[1,403,11,12,13],\"max_tokens\":7,\"temperature\":0.5,\"seed\":7,"
                    "\"stream\":true,\"stop\":[\"x\"],\"user\":\"u\"}");
    free(body);
    /* with the text already sent: the engine is told, to release what the first engine held back */
    CHECK_OK(sl_fo_continuation(o, SL_FO_COMPLETIONS, p, 2, g, 3, 17, &body));
    CHECK_STR(body, "{\"model\":\"m\",\"prompt\":[1,403,11,12,13],\"max_tokens\":7,\"temperature\":0.5,\"seed\":7,"
                    "\"stream\":true,\"stop\":[\"x\"],\"user\":\"u\",\"shardlm_resume\":{\"generated\":3,\"text_sent\":17}}");
    free(body);
    /* used up */
    CHECK(sl_fo_continuation(o, SL_FO_COMPLETIONS, p, 2, g, 3, -1, &body) == SL_OK);
    free(body);
    json_object_set_new(o, "max_tokens", json_integer(3));
    CHECK(sl_fo_continuation(o, SL_FO_COMPLETIONS, p, 2, g, 3, -1, &body) == SL_ERR_RANGE);
    /* used up, the text sent known: max_tokens 0 asks the engine only for what the first one held back */
    CHECK_OK(sl_fo_continuation(o, SL_FO_COMPLETIONS, p, 2, g, 3, 17, &body));
    CHECK_STR(body, "{\"model\":\"m\",\"prompt\":[1,403,11,12,13],\"max_tokens\":0,\"temperature\":0.5,\"seed\":7,"
                    "\"stream\":true,\"stop\":[\"x\"],\"user\":\"u\",\"shardlm_resume\":{\"generated\":3,\"text_sent\":17}}");
    free(body);
    json_object_set_new(o, "max_tokens", json_integer(2));
    CHECK(sl_fo_continuation(o, SL_FO_COMPLETIONS, p, 2, g, 3, 17, &body) == SL_ERR_RANGE);
    json_decref(o);
}

TEST(continuation_chat) {
    json_t *o = load("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_completion_tokens\":5,"
                     "\"logprobs\":true,\"top_logprobs\":2,\"tools\":[],\"stream\":true}");
    int32_t p[] = {1, 2}, g[] = {3};
    char *body;
    CHECK_OK(sl_fo_continuation(o, SL_FO_CHAT, p, 2, g, 1, -1, &body));
    CHECK_STR(body, "{\"stream\":true,\"max_tokens\":4,\"logprobs\":2,\"prompt\":[1,2,3]}");
    free(body);
    json_decref(o);
    /* no limit given: none set (the engine's default is what the context has left) */
    o = load("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    CHECK_OK(sl_fo_continuation(o, SL_FO_CHAT, p, 2, g, 1, -1, &body));
    CHECK_STR(body, "{\"prompt\":[1,2,3],\"stream\":true}");
    free(body);
    json_decref(o);
}

/* A chat answer split into parts: each part's bytes counted apart; the continuation is the chat request
 * itself with the ids and the counts. */
TEST(continuation_chat_native) {
    sl_fo_stream fs = {.kind = SL_FO_CHAT, .chat_native = true};
    const char *ev[] = {
        "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"reasoning_content\":\"Hmm\"}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi \\u00e9\"}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\","
        "\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\":1}\"}}]}}]}",
    };
    for (size_t i = 0; i < sizeof ev / sizeof ev[0]; i++) sl_fo_count_text(&fs, ev[i], strlen(ev[i]));
    CHECK_EQ_INT(fs.reasoning_sent, 3);
    CHECK_EQ_INT(fs.text_sent, 5); /* "Hi é": é is two bytes */
    CHECK_EQ_INT(fs.args_sent, 7);
    CHECK(fs.call_started);
    json_t *o = load("{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":10,\"tools\":[],\"stream\":true}");
    int32_t p[] = {1, 2}, g[] = {3, 4};
    char *body;
    CHECK_OK(sl_fo_chat_continuation(o, p, 2, g, 2, &fs, &body));
    CHECK_STR(body, "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":8,\"tools\":[],\"stream\":true,"
                    "\"shardlm_resume\":{\"ids\":[1,2,3,4],\"generated\":2,\"content_sent\":5,\"reasoning_sent\":3,"
                    "\"args_sent\":7,\"call_started\":true}}");
    free(body);
    /* a continuation's chunks are already chat's: only id and created change */
    fs.learned = true;
    snprintf(fs.id, sizeof fs.id, "chatcmpl-1");
    fs.created = 9;
    char *s = sl_fo_rewrite(&fs, ev[0], strlen(ev[0]));
    CHECK_STR(s, "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"reasoning_content\":\"Hmm\"}}],"
                 "\"id\":\"chatcmpl-1\",\"created\":9,\"object\":\"chat.completion.chunk\"}");
    free(s);
    json_decref(o);
}

/* A stream with echo: its first chunk is the prompt's text, not counted as output. */
TEST(count_text_after_echo) {
    sl_fo_stream fs = {.kind = SL_FO_COMPLETIONS, .echo_pending = true};
    const char *e = "{\"id\":\"cmpl-1\",\"choices\":[{\"index\":0,\"text\":\"Once upon\",\"finish_reason\":null}]}";
    const char *t = "{\"id\":\"cmpl-1\",\"choices\":[{\"index\":0,\"text\":\" a time\",\"finish_reason\":null}]}";
    sl_fo_count_text(&fs, e, strlen(e));
    CHECK(!fs.echo_pending);
    CHECK_EQ_INT(fs.echo_bytes, 9);
    CHECK_EQ_INT(fs.text_sent, 0);
    sl_fo_count_text(&fs, t, strlen(t));
    CHECK_EQ_INT(fs.text_sent, 7);
    CHECK_EQ_INT(fs.echo_bytes, 9);
}

TEST(seed) {
    json_t *o = load("{\"prompt\":\"x\"}");
    CHECK(sl_fo_add_seed(o, 400));
    CHECK_EQ_INT(json_integer_value(json_object_get(o, "seed")), 100);
    CHECK(!sl_fo_add_seed(o, 8));
    CHECK_EQ_INT(json_integer_value(json_object_get(o, "seed")), 100);
    json_decref(o);
}

TEST(rewrite_chunks) {
    sl_fo_stream fs = {.kind = SL_FO_COMPLETIONS};
    const char *orig = "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":100,\"model\":\"m\",\"choices\":[]}";
    sl_fo_learn(&fs, orig, strlen(orig));
    CHECK(fs.learned);
    fs.n_gen_before = 3;
    fs.text_before = 10;
    const char *c = "{\"id\":\"cmpl-2\",\"object\":\"text_completion\",\"created\":200,\"model\":\"m\",\"choices\":[{\"index\":0,"
                    "\"text\":\" cat\",\"logprobs\":{\"tokens\":[\" cat\"],\"token_logprobs\":[-0.5],\"top_logprobs\":[{\" "
                    "cat\":-0.5}],\"text_offset\":[0]},\"finish_reason\":null}]}";
    char *s = sl_fo_rewrite(&fs, c, strlen(c));
    CHECK_STR(s, "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":100,\"model\":\"m\",\"choices\":[{\"index\":0,"
                 "\"text\":\" cat\",\"logprobs\":{\"tokens\":[\" cat\"],\"token_logprobs\":[-0.5],\"top_logprobs\":[{\" "
                 "cat\":-0.5}],\"text_offset\":[10]},\"finish_reason\":null}]}");
    free(s);
    const char *u = "{\"id\":\"cmpl-2\",\"object\":\"text_completion\",\"created\":200,\"model\":\"m\",\"choices\":[],\"usage\":"
                    "{\"prompt_tokens\":8,\"completion_tokens\":4,\"total_tokens\":12,\"prompt_tokens_details\":"
                    "{\"cached_tokens\":8}}}";
    s = sl_fo_rewrite(&fs, u, strlen(u));
    CHECK_STR(s, "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":100,\"model\":\"m\",\"choices\":[],\"usage\":"
                 "{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12,\"prompt_tokens_details\":"
                 "{\"cached_tokens\":5}}}");
    free(s);
    /* chat: completion chunks become chat chunks */
    sl_fo_stream cs = {.kind = SL_FO_CHAT};
    const char *co = "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[]}";
    sl_fo_learn(&cs, co, strlen(co));
    const char *t = "{\"id\":\"cmpl-3\",\"object\":\"text_completion\",\"created\":6,\"model\":\"m\",\"choices\":[{\"index\":0,"
                    "\"text\":\"ab\",\"logprobs\":null,\"finish_reason\":null}]}";
    s = sl_fo_rewrite(&cs, t, strlen(t));
    CHECK_STR(s, "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{"
                 "\"index\":0,\"delta\":{\"content\":\"ab\"},\"logprobs\":null,\"finish_reason\":null}]}");
    free(s);
    const char *f = "{\"id\":\"cmpl-3\",\"object\":\"text_completion\",\"created\":6,\"model\":\"m\",\"choices\":[{\"index\":0,"
                    "\"text\":\"\",\"logprobs\":{\"tokens\":[\"a\"],\"token_logprobs\":[-1.0],\"top_logprobs\":[{\"a\":-1.0}],"
                    "\"text_offset\":[0]},\"finish_reason\":\"stop\"}]}";
    s = sl_fo_rewrite(&cs, f, strlen(f));
    CHECK_STR(s, "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"created\":5,\"model\":\"m\",\"choices\":[{"
                 "\"index\":0,\"delta\":{},\"logprobs\":{\"content\":[{\"token\":\"a\",\"logprob\":-1.0,\"bytes\":[97],"
                 "\"top_logprobs\":[{\"token\":\"a\",\"logprob\":-1.0,\"bytes\":[97]}]}]},\"finish_reason\":\"stop\"}]}");
    free(s);
    CHECK(sl_fo_rewrite(&cs, "[DONE", 5) == NULL);
}

/* Choice k of a body's several as its own body, its keys sorted ("NULL" when it cannot be). */
static char *choice_of(const char *body, int k, int per) {
    json_t *o = load(body), *b = sl_fo_choice_body(o, k, per);
    char *s = b ? json_dumps(b, JSON_SORT_KEYS | JSON_COMPACT) : strdup("NULL");
    json_decref(b);
    json_decref(o);
    return s;
}

/* Choice k of several as a request of its own: the engine's seed of that choice (seed + k % per) and
 * its prompt (k / per) where several are listed; one prompt given as ids stays whole. */
TEST(choice_body) {
    static const struct {
        const char *body;
        int k, per;
        const char *want;
    } cases[] = {
        {"{\"prompt\":[\"a\",\"b\"],\"n\":3,\"seed\":10,\"max_tokens\":5}", 4, 3, /* prompt 1, its second choice */
         "{\"max_tokens\":5,\"prompt\":\"b\",\"seed\":11}"},
        {"{\"prompt\":[[1,2],[3]],\"n\":2,\"seed\":0}", 3, 2, "{\"prompt\":[3],\"seed\":1}"},
        {"{\"prompt\":[5,6,7],\"n\":2,\"seed\":1}", 1, 2, "{\"prompt\":[5,6,7],\"seed\":2}"},
        {"{\"messages\":[],\"n\":2,\"seed\":9223372036854775807}", 1, 2, "NULL"}, /* seed + 1 would not fit */
        {"{\"prompt\":[\"a\"],\"n\":1,\"seed\":1}", 1, 1, "NULL"},                /* no prompt 1 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *s = choice_of(cases[i].body, cases[i].k, cases[i].per);
        CHECK_STR(s, cases[i].want);
        if (i == 3) CHECK(strstr(sl_last_error(), "seed") != NULL);
        free(s);
    }
}

TEST(usage_totals_and_index) {
    const char *u = "{\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":4,"
                    "\"total_tokens\":34,\"prompt_tokens_details\":{\"cached_tokens\":28}}}";
    char *s = sl_fo_usage_totals(u, strlen(u), 10, 61);
    CHECK_STR(s, "{\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":61,"
                 "\"total_tokens\":71,\"prompt_tokens_details\":{\"cached_tokens\":10}}}");
    free(s);
    CHECK(sl_fo_usage_totals("{\"choices\":[]}", 14, 1, 1) == NULL);
    /* a continued choice's chunks get its index */
    sl_fo_stream fs = {.kind = SL_FO_COMPLETIONS, .index = 3};
    const char *c = "{\"id\":\"c\",\"choices\":[{\"index\":0,\"text\":\"a\",\"logprobs\":null,\"finish_reason\":null}]}";
    s = sl_fo_rewrite(&fs, c, strlen(c));
    CHECK_STR(s, "{\"id\":\"c\",\"choices\":[{\"index\":3,\"text\":\"a\",\"logprobs\":null,\"finish_reason\":null}]}");
    free(s);
}

TEST(weights_parse) {
    char v[SL_MAX_VERSIONS][64];
    double w[SL_MAX_VERSIONS];
    int n;
    CHECK_OK(sl_weights_parse("{\"v1\":90,\"v2\":10}", 17, v, w, &n));
    CHECK_EQ_INT(n, 2);
    CHECK_STR(v[1], "v2");
    CHECK_NEAR(w[1], 10, 0);
    const char *nested = "{\"rollout\":{\"a\":1.5}}";
    CHECK_OK(sl_weights_parse(nested, strlen(nested), v, w, &n));
    CHECK_EQ_INT(n, 1);
    CHECK(sl_weights_parse("{\"v1\":-1}", 9, v, w, &n) == SL_ERR_INVALID);
    CHECK(strstr(sl_last_error(), "'v1'") != NULL);
    CHECK(sl_weights_parse("[1]", 3, v, w, &n) == SL_ERR_INVALID);
    CHECK(sl_weights_parse("{\"v1\":\"x\"}", 10, v, w, &n) == SL_ERR_INVALID);
}

TEST(rollout_split_sticky_and_monotone) {
    sl_members *m;
    CHECK_OK(sl_members_create(64, &m));
    sl_member_spec sp[3];
    CHECK_OK(sl_member_spec_parse("http://127.0.0.1:1#v1", &sp[0]));
    CHECK_OK(sl_member_spec_parse("http://127.0.0.1:2#v1", &sp[1]));
    CHECK_OK(sl_member_spec_parse("http://127.0.0.1:3#v2", &sp[2]));
    CHECK_OK(sl_members_set(m, 0, sp, 3));
    char v[2][64] = {"v1", "v2"};
    double w[2] = {90, 10};
    CHECK_OK(sl_members_set_weights(m, v, w, 2));
    sl_view *view = sl_members_view(m, NULL);
    CHECK_EQ_INT(view->n, 3);
    for (int i = 0; i < 3; i++) atomic_store(&view->engines[i]->up, true);
    enum { K = 20000 };
    static char first[K];
    int on_v2 = 0;
    for (int i = 0; i < K; i++) {
        sl_place_req q = {.has_session = true, .session = (uint64_t)i * 0x9e3779b97f4a7c15ULL + 1};
        const char *ver = sl_place_version(view, &q);
        CHECK(ver != NULL);
        first[i] = ver[1];
        on_v2 += ver[1] == '2';
        sl_reason why;
        sl_member *e = sl_place(view, SL_POLICY_SESSION, 1.25, &q, &why);
        CHECK(e != NULL && !strcmp(e->spec.version, ver)); /* the engine is of the drawn version */
        CHECK_EQ_INT(why, SL_REASON_SESSION);
    }
    CHECK_NEAR((double)on_v2 / K, 0.10, 0.01);
    /* 90/10 -> 80/20: only sessions moving v1 -> v2 change, about 10% of them */
    double w2[2] = {80, 20};
    CHECK_OK(sl_members_set_weights(m, v, w2, 2));
    view = sl_members_view(m, view);
    for (int i = 0; i < 3; i++) atomic_store(&view->engines[i]->up, true); /* same engines, carried over */
    int moved = 0;
    for (int i = 0; i < K; i++) {
        sl_place_req q = {.has_session = true, .session = (uint64_t)i * 0x9e3779b97f4a7c15ULL + 1};
        char now = sl_place_version(view, &q)[1];
        CHECK_MSG(!(first[i] == '2' && now == '1'), "session %d went back from v2 to v1", i);
        moved += now != first[i];
    }
    CHECK_NEAR((double)moved / K, 0.10, 0.01);
    /* a version without an engine in rotation gives its share away */
    atomic_store(&view->engines[2]->up, false);
    sl_place_req q = {.has_session = true, .session = 42};
    CHECK_STR(sl_place_version(view, &q), "v1");
    sl_view_release(view);
    sl_members_destroy(m);
}

/* An engine registered under several names (vLLM's several --served-model-name) takes a request naming any one of
 * them, whole; one of another model does not. */
TEST(placement_by_model_names) {
    sl_members *m;
    CHECK_OK(sl_members_create(64, &m));
    sl_member_spec sp[2];
    CHECK_OK(sl_member_spec_parse("http://127.0.0.1:1", &sp[0]));
    CHECK_OK(sl_member_spec_parse("http://127.0.0.1:2", &sp[1]));
    snprintf(sp[0].model, sizeof sp[0].model, "%s", "tiny,claude-x");
    snprintf(sp[1].model, sizeof sp[1].model, "%s", "other");
    CHECK_OK(sl_members_set(m, 0, sp, 2));
    sl_view *view = sl_members_view(m, NULL);
    for (int i = 0; i < 2; i++) atomic_store(&view->engines[i]->up, true);
    static const struct {
        const char *model;
        int engine; /* -1: none */
    } cases[] = {{"tiny", 0}, {"claude-x", 0}, {"other", 1}, {"claude", -1}, {"tiny,claude-x", -1}, {"x", -1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sl_place_req q = {.model = cases[i].model};
        sl_reason why;
        const sl_member *e = sl_place(view, SL_POLICY_SESSION, 1.25, &q, &why);
        const int got = e == view->engines[0] ? 0 : e == view->engines[1] ? 1 : -1;
        CHECK_MSG(got == cases[i].engine, "model '%s': engine %d, want %d", cases[i].model, got, cases[i].engine);
    }
    sl_view_release(view);
    sl_members_destroy(m);
}

TEST(load_report_parse) {
    const char *t = "# HELP x\nshardlm_requests_running{model=\"a\"} 3\nshardlm_requests_waiting{model=\"a\"} 2\n"
                    "shardlm_requests_running_total 99\nshardlm_requests_waiting{model=\"b\"} 1\n";
    int64_t run, wait;
    sl_health_parse_load(t, strlen(t), &run, &wait);
    CHECK_EQ_INT(run, 3);
    CHECK_EQ_INT(wait, 3);
    sl_health_parse_load("nothing\n", 8, &run, &wait);
    CHECK_EQ_INT(run, -1);
    CHECK_EQ_INT(wait, -1);
}

TEST(engine_spec_parse) {
    sl_member_spec s;
    CHECK_OK(sl_member_spec_parse("http://127.0.0.1:8080/", &s));
    CHECK_STR(s.id, "http://127.0.0.1:8080");
    CHECK_STR(s.url, "http://127.0.0.1:8080");
    CHECK_STR(s.version, "");
    CHECK_OK(sl_member_spec_parse("gpu-7=http://10.0.0.7:8080#v2", &s));
    CHECK_STR(s.id, "gpu-7");
    CHECK_STR(s.url, "http://10.0.0.7:8080");
    CHECK_STR(s.version, "v2");
    CHECK_OK(sl_member_spec_parse("tls-1=https://[::1]:8443#v3", &s)); /* (TLS to it: router/proxy.c) */
    CHECK_STR(s.id, "tls-1");
    CHECK_STR(s.url, "https://[::1]:8443");
    CHECK_STR(s.version, "v3");
    CHECK(sl_member_spec_parse("10.0.0.7:8080", &s) == SL_ERR_INVALID);
    CHECK(strstr(sl_last_error(), "expected [ID=]http(s)://HOST:PORT[#VERSION]") != NULL);
    CHECK(sl_member_spec_parse("ftp://h:1", &s) == SL_ERR_INVALID);
    CHECK(sl_member_spec_parse("https://", &s) == SL_ERR_INVALID);
    CHECK(sl_member_spec_parse("=http://h:1", &s) == SL_ERR_INVALID);
    CHECK(sl_member_spec_parse("a b=http://h:1", &s) == SL_ERR_INVALID);
    CHECK(sl_member_spec_parse("http://h:1#", &s) == SL_ERR_INVALID);
}

/* etcd engine records: what the router takes into its membership goes into JSON answers (/v1/models,
 * /admin/engines), so ids must be UTF-8 and a model name cut at its buffer stays UTF-8 */
TEST(etcd_engine_record_parse) {
    sl_member_spec s;
    const char *ok = "{\"url\":\"http://127.0.0.1:8001\",\"model\":\"m\",\"version\":\"v2\",\"capacity\":8}";
    CHECK(sl_etcd_engine_parse("e1", ok, strlen(ok), &s));
    CHECK_STR(s.id, "e1");
    CHECK_STR(s.url, "http://127.0.0.1:8001");
    CHECK_STR(s.model, "m");
    CHECK_STR(s.version, "v2");
    CHECK_EQ_INT(s.capacity, 8);
    CHECK(!sl_etcd_engine_parse("bad\xff", ok, strlen(ok), &s));
    CHECK(!sl_etcd_engine_parse("q\"uote", ok, strlen(ok), &s));
    CHECK(!sl_etcd_engine_parse("e1", "{\"model\":\"m\"}", 13, &s));
    char rec[512] = "{\"url\":\"http://h:1\",\"capacity\":-5,\"model\":\"";
    for (int i = 0; i < 100; i++) strcat(rec, "\xc3\xa9"); /* 200 bytes: cut inside a character at 127 */
    strcat(rec, "\"}");
    CHECK(sl_etcd_engine_parse("e2", rec, strlen(rec), &s));
    CHECK_EQ_INT(s.capacity, 0);
    json_t *j = json_string(s.model);
    CHECK_MSG(j != NULL, "model '%s' is not UTF-8", s.model);
    json_decref(j);
    const char *big = "{\"url\":\"http://h:1\",\"capacity\":\"99999999999\"}";
    CHECK(sl_etcd_engine_parse("e3", big, strlen(big), &s));
    CHECK_EQ_INT(s.capacity, 0);
}

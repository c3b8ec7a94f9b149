/*
 * test_responses.c — the Responses API's kept responses (server/responses.h)
 * without a server: a conversation expanded from what was kept (earlier
 * inputs, outputs as assistant turns and function calls, not instructions),
 * the bounds (entries and bytes, the oldest going first), "store": false,
 * and the errors named.
 */
#include "harness.h"

#include "server/responses.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static json_t *J(const char *text) { return json_loads(text, 0, NULL); }

/* A response object with id and one message (and a function call). */
static json_t *response(const char *id, const char *text) {
    return json_pack("{s:s,s:s,s:[{s:s,s:[{s:s,s:s}]},{s:s,s:s,s:s,s:s},{s:s,s:[]}]}", "id", id, "object", "response",
                     "output", "type", "message", "content", "type", "output_text", "text", text, "type", "function_call",
                     "call_id", "c1", "name", "f", "arguments", "{}", "type", "reasoning", "summary");
}

TEST(conversation_from_kept_responses) {
    sl_resp_store *st = sl_resp_store_new(8, 1 << 20);
    CHECK(st);
    json_t *req1 = J("{\"input\":\"Hi\",\"instructions\":\"Be brief.\"}"), *r1 = response("resp_1", "Hello");
    sl_resp_store_put(st, req1, r1);
    sl_api_error e;
    json_t *req2 = J("{\"previous_response_id\":\"resp_1\",\"input\":[{\"role\":\"user\",\"content\":\"More\"}]}");
    json_t *x = sl_resp_store_expand(st, req2, &e);
    json_t *want = J("[{\"role\":\"user\",\"content\":\"Hi\"},"
                     "{\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hello\"}]},"
                     "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{}\"},"
                     "{\"role\":\"user\",\"content\":\"More\"}]");
    CHECK(x && json_equal(json_object_get(x, "input"), want));
    CHECK(!json_object_get(x, "instructions")); /* (not carried over) */
    json_t *got = sl_resp_store_get(st, "resp_1");
    CHECK(json_equal(got, r1));
    json_decref(got);
    /* the expanded request kept as the next turn carries the whole conversation on */
    json_t *r2 = response("resp_2", "Sure");
    sl_resp_store_put(st, x, r2);
    json_t *req3 = J("{\"previous_response_id\":\"resp_2\",\"input\":\"Bye\"}");
    json_t *y = sl_resp_store_expand(st, req3, &e);
    CHECK(y && json_array_size(json_object_get(y, "input")) == 7);
    /* store false: not kept */
    json_t *req4 = J("{\"input\":\"x\",\"store\":false}"), *r4 = response("resp_4", "no");
    sl_resp_store_put(st, req4, r4);
    CHECK(sl_resp_store_get(st, "resp_4") == NULL);
    /* unknown id: 404; no store: 400; a non-string id: 400 */
    json_t *bad = J("{\"previous_response_id\":\"resp_9\",\"input\":\"x\"}");
    CHECK(sl_resp_store_expand(st, bad, &e) == NULL && e.status == 404 && !strcmp(e.param, "previous_response_id"));
    CHECK(sl_resp_store_expand(NULL, bad, &e) == NULL && e.status == 400);
    json_t *bad2 = J("{\"previous_response_id\":7,\"input\":\"x\"}");
    CHECK(sl_resp_store_expand(st, bad2, &e) == NULL && e.status == 400);
    json_t *plain = sl_resp_store_expand(NULL, req1, &e); /* no previous_response_id: the request as it is */
    CHECK(json_equal(plain, req1));
    json_decref(plain);
    json_decref(bad2);
    json_decref(bad);
    json_decref(req4);
    json_decref(r4);
    json_decref(y);
    json_decref(req3);
    json_decref(r2);
    json_decref(want);
    json_decref(x);
    json_decref(req2);
    json_decref(r1);
    json_decref(req1);
    sl_resp_store_free(st);
}

TEST(bounds_drop_the_oldest) {
    sl_resp_store *st = sl_resp_store_new(2, 1 << 20);
    json_t *req = J("{\"input\":\"Hi\"}");
    static const char *ids[] = {"resp_a", "resp_b", "resp_c"};
    for (int i = 0; i < 3; i++) {
        json_t *r = response(ids[i], "x");
        sl_resp_store_put(st, req, r);
        json_decref(r);
    }
    json_t *a = sl_resp_store_get(st, "resp_a"), *b = sl_resp_store_get(st, "resp_b"), *c = sl_resp_store_get(st, "resp_c");
    CHECK(!a && b && c); /* two entries at most */
    json_decref(b);
    json_decref(c);
    sl_resp_store_free(st);
    /* bytes: a response larger than the whole store is not kept; the others make room by dropping the oldest */
    st = sl_resp_store_new(100, 1200);
    char big[2000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = 0;
    json_t *rb = response("resp_big", big);
    sl_resp_store_put(st, req, rb);
    CHECK(sl_resp_store_get(st, "resp_big") == NULL);
    char text[400];
    memset(text, 'y', sizeof text - 1);
    text[sizeof text - 1] = 0;
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "resp_%d", i);
        json_t *r = response(id, text);
        sl_resp_store_put(st, req, r);
        json_decref(r);
    }
    json_t *r0 = sl_resp_store_get(st, "resp_0"), *r2 = sl_resp_store_get(st, "resp_2");
    CHECK(!r0 && r2); /* ~900 bytes each: room for one */
    json_decref(r2);
    json_decref(rb);
    json_decref(req);
    sl_resp_store_free(st);
    CHECK(sl_resp_store_new(0, 1 << 20) == NULL); /* (none kept) */
}

/* Forgetting one keeps the others, oldest first, and frees its room. */
TEST(delete_keeps_the_rest) {
    sl_resp_store *st = sl_resp_store_new(3, 1 << 20);
    json_t *req = J("{\"input\":\"Hi\"}");
    static const char *ids[] = {"resp_a", "resp_b", "resp_c", "resp_d"};
    for (int i = 0; i < 3; i++) {
        json_t *r = response(ids[i], "x");
        sl_resp_store_put(st, req, r);
        json_decref(r);
    }
    CHECK(sl_resp_store_delete(st, "resp_b") && !sl_resp_store_delete(st, "resp_b"));
    char *gone = sl_resp_store_http(st, "resp_b", false); /* (NULL: a 404) */
    CHECK(!gone);
    char *del = sl_resp_store_http(st, "resp_c", true);
    CHECK(del && strstr(del, "\"deleted\":true"));
    free(del);
    json_t *r = response(ids[3], "x"); /* room for d and one more: a stays */
    sl_resp_store_put(st, req, r);
    json_decref(r);
    r = response("resp_e", "x");
    sl_resp_store_put(st, req, r);
    json_decref(r);
    char *a = sl_resp_store_http(st, "resp_a", false), *d = sl_resp_store_http(st, "resp_d", false),
         *e = sl_resp_store_http(st, "resp_e", false);
    CHECK(a && d && e);
    free(a);
    free(d);
    free(e);
    r = response("resp_f", "x"); /* full: the oldest (a) goes */
    sl_resp_store_put(st, req, r);
    json_decref(r);
    a = sl_resp_store_http(st, "resp_a", false);
    CHECK(!a);
    json_decref(req);
    sl_resp_store_free(st);
}

/*
 * test_cors.c — which origin a response allows (server/cors.h): any with
 * "*", a listed one reflected, others and header-breaking ones none.
 */
#include "harness.h"

#include "server/cors.h"

#include <string.h>

static const char *allow(const char *list, const char *origin) {
    static char out[256];
    return sl_cors_allow_origin(list, origin, origin ? strlen(origin) : 0, out, sizeof out) ? out : NULL;
}

TEST(allowed_origins) {
    CHECK_STR(allow("*", "http://a.example") ?: "-", "*");
    CHECK_STR(allow("http://a.example, https://b.example", "https://b.example") ?: "-", "https://b.example");
    CHECK_STR(allow("http://a.example,*", "http://c.example") ?: "-", "*");
    CHECK(allow("http://a.example", "http://a.example.evil") == NULL);
    CHECK(allow("http://a.example", "http://a") == NULL);
    CHECK(allow("", "http://a.example") == NULL);
    CHECK(allow(NULL, "http://a.example") == NULL);
    CHECK(allow("*", NULL) == NULL);
    CHECK(allow("*", "http://a\r\nX: y") == NULL); /* (never a header split) */
}

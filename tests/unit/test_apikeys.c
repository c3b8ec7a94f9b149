/*
 * test_apikeys.c — the keys a server accepts (server/apikeys.h): a list
 * separated by commas and a file of one per line, each matched whole;
 * empty keys, unreadable and empty files refused by name.
 */
#include "harness.h"

#include "core/status.h"
#include "server/apikeys.h"

#include <string.h>
#include <unistd.h>

static bool match(const sl_api_keys *k, const char *key) { return sl_api_keys_match(k, key, strlen(key)); }

TEST(api_keys_list_and_file) {
    char path[] = "/tmp/shardlm-keys-XXXXXX";
    CHECK(sl_test_temp_file(path, "\n  sk-file-one  \n\nsk-file-two\r\n"));
    sl_api_keys k;
    CHECK_EQ_INT(sl_api_keys_load(&k, "sk-a, sk-b", path), SL_OK);
    CHECK_EQ_INT(k.n, 4);
    CHECK(match(&k, "sk-a") && match(&k, "sk-b") && match(&k, "sk-file-one") && match(&k, "sk-file-two"));
    CHECK(!match(&k, "sk-") && !match(&k, "sk-ab") && !match(&k, " sk-b") && !match(&k, "sk-a, sk-b") && !match(&k, ""));
    CHECK(!sl_api_keys_match(&k, NULL, 0));
    sl_api_keys_free(&k);
    CHECK_EQ_INT(k.n, 0);
    /* none: nothing matches (the servers then check nothing) */
    CHECK_EQ_INT(sl_api_keys_load(&k, NULL, NULL), SL_OK);
    CHECK(k.n == 0 && !match(&k, "sk-a"));
    unlink(path);
}

TEST(api_keys_refused) {
    sl_api_keys k;
    CHECK_EQ_INT(sl_api_keys_load(&k, "sk-a,,sk-b", NULL), SL_ERR_INVALID);
    CHECK(strstr(sl_last_error(), "--api-key") && strstr(sl_last_error(), "empty"));
    CHECK_EQ_INT(k.n, 0);
    CHECK_EQ_INT(sl_api_keys_load(&k, "", NULL), SL_ERR_INVALID);
    CHECK_EQ_INT(sl_api_keys_load(&k, "sk-a", "/nonexistent/keys"), SL_ERR_IO);
    CHECK(strstr(sl_last_error(), "/nonexistent/keys"));
    char path[] = "/tmp/shardlm-keys-XXXXXX";
    CHECK(sl_test_temp_file(path, "\n \n"));
    CHECK_EQ_INT(sl_api_keys_load(&k, NULL, path), SL_ERR_INVALID);
    CHECK(strstr(sl_last_error(), "no key"));
    unlink(path);
}

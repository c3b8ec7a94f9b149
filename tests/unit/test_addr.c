/*
 * test_addr.c — the address a server listens on (server/addr.h): numeric
 * IPv4 and IPv6 (bare or in brackets), names, refusals; its URL as printed
 * and as clients dial it.
 */
#include "harness.h"

#include "server/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const char *shown(const struct sockaddr_storage *ss) {
    static char out[64];
    const void *a = ss->ss_family == AF_INET6 ? (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr
                                              : (const void *)&((const struct sockaddr_in *)ss)->sin_addr;
    return inet_ntop(ss->ss_family, a, out, sizeof out) ? out : "?";
}

static int port_of(const struct sockaddr_storage *ss) {
    return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                           : ((const struct sockaddr_in *)ss)->sin_port);
}

TEST(listen_addresses) {
    struct sockaddr_storage ss;
    socklen_t len = 0;
    CHECK_EQ_INT(sl_listen_addr("0.0.0.0", 8080, &ss, &len), SL_OK);
    CHECK(ss.ss_family == AF_INET && len == sizeof(struct sockaddr_in) && port_of(&ss) == 8080);
    CHECK_STR(shown(&ss), "0.0.0.0");
    CHECK_EQ_INT(sl_listen_addr("::", 9, &ss, &len), SL_OK);
    CHECK(ss.ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6) && port_of(&ss) == 9);
    CHECK_STR(shown(&ss), "::");
    CHECK_EQ_INT(sl_listen_addr("[::1]", 0, &ss, &len), SL_OK);
    CHECK_STR(shown(&ss), "::1");
    CHECK_EQ_INT(sl_listen_addr("localhost", 8000, &ss, &len), SL_OK); /* (/etc/hosts: IPv4 first) */
    CHECK(port_of(&ss) == 8000);
    CHECK_STR(shown(&ss), ss.ss_family == AF_INET ? "127.0.0.1" : "::1");
    CHECK_EQ_INT(sl_listen_addr("no-such-host.invalid", 1, &ss, &len), SL_ERR_INVALID);
    CHECK(strstr(sl_last_error(), "no-such-host.invalid"));
    CHECK_EQ_INT(sl_listen_addr("", 1, &ss, &len), SL_ERR_INVALID);
    CHECK_EQ_INT(sl_listen_addr("1.2.3.4.5", 1, &ss, &len), SL_ERR_INVALID);
}

TEST(host_urls) {
    char u[128];
    sl_host_url("0.0.0.0", 80, false, false, u, sizeof u);
    CHECK_STR(u, "http://0.0.0.0:80");
    sl_host_url("0.0.0.0", 80, false, true, u, sizeof u);
    CHECK_STR(u, "http://127.0.0.1:80");
    sl_host_url("::", 80, false, false, u, sizeof u);
    CHECK_STR(u, "http://[::]:80");
    sl_host_url("::", 80, false, true, u, sizeof u);
    CHECK_STR(u, "http://[::1]:80");
    sl_host_url("[fe80::1]", 80, true, true, u, sizeof u);
    CHECK_STR(u, "https://[fe80::1]:80");
    sl_host_url("localhost", 8080, false, true, u, sizeof u);
    CHECK_STR(u, "http://localhost:8080");
}

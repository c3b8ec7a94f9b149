/*
 * addr.c — the address a server listens on (see addr.h).
 */
#include "addr.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

sl_status sl_listen_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len) {
    memset(ss, 0, sizeof *ss);
    if (!host || !*host) return SL_FAIL(SL_ERR_INVALID, "--host is empty");
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
        return SL_OK;
    }
    const char *h = host;
    char buf[64];
    const size_t n = strlen(host);
    if (host[0] == '[' && n >= 2 && host[n - 1] == ']' && n - 2 < sizeof buf) { /* ([::1], as in a URL) */
        memcpy(buf, host + 1, n - 2);
        buf[n - 2] = '\0';
        h = buf;
    }
    if (inet_pton(AF_INET6, h, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        return SL_OK;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    const int rc = getaddrinfo(host, NULL, &hints, &ai);
    if (rc != 0 || !ai)
        return SL_FAIL(SL_ERR_INVALID, "--host '%s' is neither an IPv4 or IPv6 address nor a name that resolves (%s)", host,
                       rc ? gai_strerror(rc) : "no address");
    const struct addrinfo *pick = ai;
    for (const struct addrinfo *p = ai; p; p = p->ai_next) /* (IPv4 first: localhost is 127.0.0.1 to most clients) */
        if (p->ai_family == AF_INET) {
            pick = p;
            break;
        }
    sl_status st = SL_OK;
    if ((pick->ai_family == AF_INET || pick->ai_family == AF_INET6) && pick->ai_addrlen <= sizeof *ss) {
        memcpy(ss, pick->ai_addr, pick->ai_addrlen);
        *len = (socklen_t)pick->ai_addrlen;
        if (pick->ai_family == AF_INET) a4->sin_port = htons((uint16_t)port);
        else a6->sin6_port = htons((uint16_t)port);
    } else {
        st = SL_FAIL(SL_ERR_INVALID, "--host '%s' resolves to no IPv4 or IPv6 address", host);
    }
    freeaddrinfo(ai);
    return st;
}

void sl_host_url(const char *host, int port, bool tls, bool clients_reach, char *out, size_t cap) {
    const char *h = host && *host ? host : "127.0.0.1";
    if (clients_reach && !strcmp(h, "0.0.0.0")) h = "127.0.0.1";
    if (clients_reach && (!strcmp(h, "::") || !strcmp(h, "[::]"))) h = "::1";
    const bool v6 = strchr(h, ':') && h[0] != '[';
    snprintf(out, cap, "%s://%s%s%s:%d", tls ? "https" : "http", v6 ? "[" : "", h, v6 ? "]" : "", port);
}

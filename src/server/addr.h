/*
 * addr.h — the address a server (engine or router) listens on: --host as a
 * numeric IPv4 or IPv6 address or a name (localhost), as vLLM and llama.cpp
 * take it; an IPv6 wildcard (::) takes IPv4 clients too (dual stack).
 */
#ifndef SL_SERVER_ADDR_H
#define SL_SERVER_ADDR_H

#include "core/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* host and port as a socket address to listen on (a name: its first address, IPv4 first). A host that is
 * neither an address nor a name that resolves: SL_ERR_INVALID naming it. */
sl_status sl_listen_addr(const char *host, int port, struct sockaddr_storage *ss, socklen_t *len);
/* "http://HOST:PORT" ("https://" where tls) into out, an IPv6 address in brackets; where clients_reach, a
 * wildcard address (0.0.0.0, ::) is written as the loopback of its family (what a local client or router dials). */
void sl_host_url(const char *host, int port, bool tls, bool clients_reach, char *out, size_t cap);

#endif

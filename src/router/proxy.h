/*
 * proxy.h — the router's I/O threads: accept clients, answer the router's own
 * endpoints, proxy the OpenAI API to engines with retries and mid-stream
 * migration (see router.h for the threads, failover.h for the migration).
 *
 * Per request: parse the client's request (httpp.c) → choose an engine
 * (placement.c) → send over a pooled keep-alive connection → non-streaming:
 * gather the engine's response and answer once it is complete (so any
 * failure before that is retried on another engine); streaming: pass each SSE
 * event on as it arrives, keeping the token ids the engine reports, and on
 * failure continue on another engine.
 */
#ifndef SL_ROUTER_PROXY_H
#define SL_ROUTER_PROXY_H

#include "router/router.h"

/* Bind (all threads on one port), start the threads. */
sl_status sl_proxy_start(sl_router *r, sl_proxy **out);
int sl_proxy_port(const sl_proxy *p);
/* Stop the threads, close every connection. */
void sl_proxy_stop(sl_proxy *p);

#endif

/*
 * background.h — the router's background responses (OpenAI's Responses API,
 * "background": true): answered "queued" at once and kept in the router's
 * response store; a thread of the router then sends the request to the
 * router itself (its own listening port, marked with a secret made at start
 * so no client can pass for it), which serves it as any Responses request —
 * placed, proxied, retried on another engine — and keeps the answer under the
 * same id (kept by the job from the answer it reads, so that a cancel has the last word). Its status reads
 * in_progress while it runs; a cancel (POST
 * /v1/responses/{id}/cancel) stops it (the router's request to itself is
 * abandoned, so the engine's is aborted) and keeps it "cancelled"; a failure
 * keeps it "failed" with the reason. Each job's request is bounded
 * (SL_BG_TIMEOUT_S), and stopping the router cancels and waits for them.
 */
#ifndef SL_ROUTER_BACKGROUND_H
#define SL_ROUTER_BACKGROUND_H

#include "core/status.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define SL_BG_TIMEOUT_S 3600     /* a background response's longest run */
#define SL_BG_HEADER "X-Shardlm-Background" /* "SECRET ID": the router's own request for response ID */

typedef struct sl_router sl_router;
typedef struct sl_bg sl_bg;

sl_status sl_bg_create(sl_router *r, sl_bg **out);
/* Cancel every job and wait for their threads (each ends within a second of its cancel). */
void sl_bg_destroy(sl_bg *b);

/* Whether value (the SL_BG_HEADER header's) is this router's; *id then points at the response id it names
 * (value's tail). */
bool sl_bg_is_own(const sl_bg *b, const char *value, size_t n, const char **id, size_t *id_len);

/* Start the job of response `resp_id` (the id its queued object has, "resp_..."), answered by chat id `chat_id`
 * ("chatcmpl-..." — what the router names the response it will make): `body` is the request as the client sent
 * it, `auth` the Authorization value to send (or NULL), `req` the request as translated (what the kept objects
 * are made of; a reference is taken). The queued object must be kept already. */
sl_status sl_bg_start(sl_bg *b, const char *resp_id, const char *chat_id, const char *body, size_t n, const char *auth,
                      json_t *req);

/* Stop the job of `resp_id` if it runs (waiting at most 5 s for it to end, kept "cancelled"); false when no such
 * job runs. */
bool sl_bg_cancel(sl_bg *b, const char *resp_id);

#endif

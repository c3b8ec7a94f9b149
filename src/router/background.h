/*
 * background.h — the router's background responses (OpenAI's Responses API,
 * "background": true): answered "queued" at once and kept in the router's
 * response store; a thread of the router then sends the chat request the
 * response makes to the router itself (its own listening port), streamed, so
 * it is served as any chat stream — placed, proxied, continued on another
 * engine — and builds the response from the chunks as the router's Responses
 * streams do, kept under the same id when it ends. Its status reads
 * in_progress while it runs; a cancel (POST /v1/responses/{id}/cancel) stops
 * it (the router's request to itself is abandoned, so the engine's is aborted)
 * and keeps it "cancelled" with the output it had (the items still open
 * "incomplete"); a failure keeps it "failed" with the reason. Each job's
 * request is bounded (SL_BG_TIMEOUT_S), and stopping the router cancels and
 * waits for them.
 */
#ifndef SL_ROUTER_BACKGROUND_H
#define SL_ROUTER_BACKGROUND_H

#include "core/status.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define SL_BG_TIMEOUT_S 3600     /* a background response's longest run */

typedef struct sl_router sl_router;
typedef struct sl_bg sl_bg;

sl_status sl_bg_create(sl_router *r, sl_bg **out);
/* Cancel every job and wait for their threads (each ends within a second of its cancel). */
void sl_bg_destroy(sl_bg *b);

/* Start the job of response `resp_id` (the id its queued object has, "resp_..."), answered by chat id `chat_id`
 * ("chatcmpl-..." — the queued object's id was made of it): `chat_body` is the chat request the response makes
 * (sl_responses_chat_body), `auth` the Authorization value to send (or NULL), `req` the request as translated
 * (what the kept objects are made of; a reference is taken). The queued object must be kept already. */
sl_status sl_bg_start(sl_bg *b, const char *resp_id, const char *chat_id, const char *chat_body, const char *auth,
                      json_t *req);

/* Stop the job of `resp_id` if it runs (waiting at most 5 s for it to end, kept "cancelled"); false when no such
 * job runs. */
bool sl_bg_cancel(sl_bg *b, const char *resp_id);

#endif

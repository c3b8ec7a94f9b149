/*
 * fuzz_router_data.c — libFuzzer target for what the router reads from
 * others besides HTTP framing (`make fuzz`): engine specs ("[ID=]URL[#VERSION]",
 * also the url of an etcd record), rollout weights (etcd's config value),
 * base64 (etcd's keys and values), and the failover helpers that read an
 * engine's stream (token-id comments, data payloads) and the client's body.
 *
 * Input: one selector byte (bits 0-2: spec, weights, base64, token ids,
 * stream payload, continuation, an engine's /metrics page, a --kv-pools or
 * --policy value; bits 3-4: flags of the payload and continuation cases),
 * then the bytes.
 *
 * Checked: every outcome is a clean success or a clean error, and
 *   spec: the fields are NUL-terminated inside their buffers, the URL non-empty;
 *     the same bytes as an etcd engine record (id, newline, JSON): an
 *     accepted record's fields go into JSON (valid UTF-8);
 *   weights: at most SL_MAX_VERSIONS, each finite and >= 0, versions non-empty;
 *   base64: decoding valid input and encoding the result gives the canonical
 *     text back; any bytes encoded decode to themselves;
 *   token ids: count <= cap, ids >= 0;
 *   payload: after learning from it, a rewrite is NULL or a JSON object;
 *   continuation: its body is a JSON object with the prompt ids;
 *   metrics page: the running / waiting counts are -1 (absent) or >= 0;
 *   pool spec: 1..SL_KVM_MAX_POOLS classes, shares in (0, 1] summing to at
 *     most 1, bounds increasing, only the last class unbounded.
 *
 * tests/unit/test_router_proto.c includes this file (FUZZ_ROUTER_DATA_NO_MAIN)
 * and replays tests/fuzz/corpus/router_data through fuzz_router_data_one().
 */
#include "router/etcd.h"
#include "router/failover.h"
#include "router/health.h"
#include "router/members.h"
#include "router/placement.h"
#include "server/kvmgr.h"

#include "core/alloc.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fuzz_rd_check(int cond, const char *what) {
    if (!cond) {
        fprintf(stderr, "fuzz_router_data: invariant violated: %s\n", what);
        abort();
    }
}

static bool fuzz_rd_terminated(const char *s, size_t cap) { return memchr(s, '\0', cap) != NULL; }

/* 0: accepted, 1: refused cleanly (aborts on a broken invariant). */
static int fuzz_router_data_one(const uint8_t *data, size_t len) {
    if (len < 1) return 1;
    const int mode = data[0] & 7;
    const char *p = (const char *)data + 1;
    const size_t n = len - 1;
    char *z = sl_malloc(n + 1); /* NUL-terminated copy for the text parsers */
    fuzz_rd_check(z != NULL, "memory");
    memcpy(z, p, n);
    z[n] = '\0';
    int rc = 1;
    if (mode == 0) {
        sl_member_spec s;
        if (sl_member_spec_parse(z, &s) == SL_OK) {
            fuzz_rd_check(fuzz_rd_terminated(s.id, sizeof s.id) && fuzz_rd_terminated(s.url, sizeof s.url) &&
                              fuzz_rd_terminated(s.model, sizeof s.model) &&
                              fuzz_rd_terminated(s.version, sizeof s.version),
                          "spec fields are NUL-terminated");
            fuzz_rd_check(s.url[0] != '\0' && s.id[0] != '\0', "a spec has a URL and an id");
            rc = 0;
        }
        /* the same bytes as an etcd record: the id up to the first newline, the JSON value after it */
        const char *nl = memchr(z, '\n', n);
        if (nl) {
            char id[160];
            const size_t il = (size_t)(nl - z) < sizeof id ? (size_t)(nl - z) : sizeof id - 1;
            memcpy(id, z, il);
            id[il] = '\0';
            if (sl_etcd_engine_parse(id, nl + 1, n - (size_t)(nl + 1 - z), &s)) {
                json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "id", s.id, "url", s.url, "model", s.model, "version",
                                      s.version);
                fuzz_rd_check(o != NULL, "an accepted etcd record's fields go into JSON");
                json_decref(o);
                rc = 0;
            }
        }
    } else if (mode == 1) {
        char versions[SL_MAX_VERSIONS][64];
        double weights[SL_MAX_VERSIONS];
        int k = -1;
        if (sl_weights_parse(p, n, versions, weights, &k) == SL_OK) {
            fuzz_rd_check(k >= 0 && k <= SL_MAX_VERSIONS, "at most SL_MAX_VERSIONS weights");
            for (int i = 0; i < k; i++) {
                fuzz_rd_check(isfinite(weights[i]) && weights[i] >= 0, "weights are finite and >= 0");
                fuzz_rd_check(fuzz_rd_terminated(versions[i], 64) && versions[i][0], "versions are non-empty strings");
            }
            rc = 0;
        }
    } else if (mode == 2) {
        unsigned char *dec = sl_malloc(3 * n / 4 + 4);
        char *enc = sl_malloc(4 * ((n + 2) / 3) + 1);
        fuzz_rd_check(dec && enc, "memory");
        const long d = sl_b64_decode(p, n, dec);
        if (d >= 0) {
            fuzz_rd_check((size_t)d <= 3 * n / 4 + 3, "decoded length bounded");
            unsigned char *again = sl_malloc((size_t)d + 4);
            char *enc2 = sl_malloc(4 * (((size_t)d + 2) / 3) + 1);
            fuzz_rd_check(again && enc2, "memory");
            const size_t e2 = sl_b64_encode(dec, (size_t)d, enc2);
            fuzz_rd_check(sl_b64_decode(enc2, e2, again) == d && !memcmp(again, dec, (size_t)d),
                          "decode(encode(decoded)) gives the same bytes");
            sl_free(again);
            sl_free(enc2);
            rc = 0;
        }
        /* any bytes encode and decode back */
        const size_t e = sl_b64_encode(p, n, enc);
        fuzz_rd_check(e == 4 * ((n + 2) / 3) && enc[e] == '\0', "encoded length");
        unsigned char *back = sl_malloc(n + 4);
        fuzz_rd_check(back != NULL, "memory");
        fuzz_rd_check(sl_b64_decode(enc, e, back) == (long)n && !memcmp(back, p, n), "decode(encode(x)) == x");
        sl_free(back);
        sl_free(dec);
        sl_free(enc);
    } else if (mode == 3) {
        int32_t *ids = NULL, count = 0, cap = 0;
        if (sl_fo_parse_ids(p, n, &ids, &count, &cap) == SL_OK) {
            fuzz_rd_check(count >= 0 && count <= cap, "count <= cap");
            for (int32_t i = 0; i < count; i++) fuzz_rd_check(ids[i] >= 0, "ids are >= 0");
            rc = 0;
        }
        sl_free(ids);
    } else if (mode == 4) {
        sl_fo_stream fs;
        memset(&fs, 0, sizeof fs);
        fs.kind = data[0] & 8 ? SL_FO_CHAT : SL_FO_COMPLETIONS;
        sl_fo_learn(&fs, p, n);
        fuzz_rd_check(fuzz_rd_terminated(fs.id, sizeof fs.id), "the learned id is NUL-terminated");
        sl_fo_count_text(&fs, p, n);
        fs.n_gen_before = 3;
        fs.text_before = 10;
        char *r = sl_fo_rewrite(&fs, p, n);
        if (r) {
            json_error_t je;
            json_t *o = json_loads(r, 0, &je);
            fuzz_rd_check(json_is_object(o), "a rewritten payload is a JSON object");
            json_decref(o);
            free(r);
            rc = 0;
        }
    } else if (mode == 6) {
        int64_t run = 0, wait = 0;
        sl_health_parse_load(p, n, &run, &wait);
        fuzz_rd_check(run >= -1 && wait >= -1, "load counts are -1 or >= 0");
        rc = run < 0 && wait < 0;
    } else if (mode == 7) {
        sl_kvm_pool_cfg pools[SL_KVM_MAX_POOLS];
        int k = 0;
        sl_policy pol;
        if (sl_policy_parse(z, &pol)) rc = 0;
        if (sl_kvm_parse_pools(z, pools, &k) == SL_OK) {
            fuzz_rd_check(k >= 1 && k <= SL_KVM_MAX_POOLS, "1..SL_KVM_MAX_POOLS pools");
            double sum = 0;
            for (int i = 0; i < k; i++) {
                fuzz_rd_check(pools[i].share > 0 && pools[i].share <= 1, "shares in (0, 1]");
                fuzz_rd_check(fuzz_rd_terminated(pools[i].name, sizeof pools[i].name), "pool names terminated");
                fuzz_rd_check(i == k - 1 ? pools[i].max_ctx >= 0 : pools[i].max_ctx > 0, "only the last unbounded");
                if (i > 0 && pools[i].max_ctx) fuzz_rd_check(pools[i].max_ctx > pools[i - 1].max_ctx, "bounds increase");
                sum += pools[i].share;
            }
            fuzz_rd_check(sum <= 1 + 1e-9, "shares sum to at most 1");
            rc = 0;
        }
    } else {
        json_error_t je;
        json_t *orig = json_loadb(p, n, 0, &je);
        static const int32_t prompt[] = {1, 15043, 3186}, gen[] = {29892, 920};
        char *out = NULL;
        if (orig && sl_fo_continuation(orig, data[0] & 8 ? SL_FO_CHAT : SL_FO_COMPLETIONS, prompt, 3, gen, 2,
                                       data[0] & 16 ? 7 : -1, &out) == SL_OK) {
            json_t *o = json_loads(out, 0, &je);
            fuzz_rd_check(json_is_object(o), "a continuation body is a JSON object");
            fuzz_rd_check(json_is_array(json_object_get(o, "prompt")), "a continuation carries the prompt ids");
            json_decref(o);
            rc = 0;
        }
        free(out);
        /* a choice of several as its own request: an object without "n" */
        json_t *cb = orig ? sl_fo_choice_body(orig, data[0] & 3, 1 + ((data[0] >> 2) & 1)) : NULL;
        if (cb) {
            fuzz_rd_check(json_is_object(cb) && !json_object_get(cb, "n"), "a choice's body is an object without n");
            json_decref(cb);
        }
        char *ut = sl_fo_usage_totals(p, n, 3, 4);
        if (ut) {
            json_t *o = json_loads(ut, 0, &je), *u = json_object_get(o, "usage");
            fuzz_rd_check(json_integer_value(json_object_get(u, "total_tokens")) == 7, "usage totals add up");
            json_decref(o);
            free(ut);
        }
        json_decref(orig);
    }
    sl_free(z);
    return rc;
}

#ifndef FUZZ_ROUTER_DATA_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_router_data_one(data, size);
    return 0;
}
#endif

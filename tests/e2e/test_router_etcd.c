/*
 * test_router_etcd.c — membership and rollout through a real etcd (Debian's
 * etcd-server, /usr/bin/etcd, started here on free ports with a temporary
 * data directory): engines register with `shardlm serve --etcd`, two routers
 * watch; both see the engines, lose a stopped one within the lease TTL,
 * follow rollout weights written to etcd, keep serving while etcd is down,
 * and see engines register again when etcd returns without its data.
 *
 * The tests run in order and share one fixture (etcd, engines, routers).
 */
#include "test_router_util.h"
#include "tls_util.h"

#include <ftw.h>
#include <sys/stat.h>

#define ETCD_BIN "/usr/bin/etcd"
#define TTL "3"

static struct {
    bool up;
    char dir[64];
    int client_port, peer_port;
    char url[64];
    pid_t pid;
    sl_test_proc eng[4];
    const char *ids[4];
    sl_test_proc router[2];
} F;

static bool etcd_start(void) {
    char listen_c[64], listen_p[64], cluster[96], log[96];
    snprintf(listen_c, sizeof listen_c, "http://127.0.0.1:%d", F.client_port);
    snprintf(listen_p, sizeof listen_p, "http://127.0.0.1:%d", F.peer_port);
    snprintf(cluster, sizeof cluster, "t=%s", listen_p);
    snprintf(log, sizeof log, "%s.log", F.dir);
    char *argv[] = {ETCD_BIN, "--name", "t", "--data-dir", F.dir, "--listen-client-urls", listen_c,
                    "--advertise-client-urls", listen_c, "--listen-peer-urls", listen_p,
                    "--initial-advertise-peer-urls", listen_p, "--initial-cluster", cluster, NULL};
    F.pid = rt_spawn(argv, log);
    if (F.pid <= 0) return false;
    double t0 = rt_now();
    while (rt_now() - t0 < 20) {
        rresp r = rt_post(F.url, "/v3/kv/range", "{\"key\":\"AA==\"}");
        long st = r.status;
        rt_free(&r);
        if (st == 200) return true;
        rt_sleep_ms(50);
    }
    return false;
}

/* base64, written here independently of the router's */
static void b64(const char *s, char *out) {
    static const char *A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s), k = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned char)s[i] << 16;
        if (i + 1 < n) v |= (unsigned char)s[i + 1] << 8;
        if (i + 2 < n) v |= (unsigned char)s[i + 2];
        out[k++] = A[v >> 18 & 63];
        out[k++] = A[v >> 12 & 63];
        out[k++] = i + 1 < n ? A[v >> 6 & 63] : '=';
        out[k++] = i + 2 < n ? A[v & 63] : '=';
    }
    out[k] = '\0';
}

static bool etcd_put(const char *key, const char *val) {
    char k[256], v[1024], body[1400];
    b64(key, k);
    b64(val, v);
    snprintf(body, sizeof body, "{\"key\":\"%s\",\"value\":\"%s\"}", k, v);
    rresp r = rt_post(F.url, "/v3/kv/put", body);
    bool ok = r.status == 200;
    rt_free(&r);
    return ok;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

static void teardown(void) {
    for (int i = 0; i < 2; i++)
        if (F.router[i].pid > 0) sl_test_proc_stop(&F.router[i], SIGTERM, 10);
    for (int i = 0; i < 4; i++)
        if (F.eng[i].pid > 0) sl_test_proc_stop(&F.eng[i], SIGTERM, 10);
    if (F.pid > 0) rt_stop_pid(F.pid, SIGTERM, 10);
    F.pid = 0;
    if (F.dir[0]) {
        nftw(F.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        char log[96];
        snprintf(log, sizeof log, "%s.log", F.dir);
        remove(log);
        F.dir[0] = '\0';
    }
}

static bool start_engine(int i, const char *id, const char *version) {
    F.ids[i] = id;
    const char *extra[] = {"--etcd", F.url, "--engine-id", id, "--model-version", version, "--etcd-ttl", TTL, NULL};
    return rt_start_engine(&F.eng[i], extra);
}

/* Both routers list `n` engines, all in rotation. */
static bool both_see(int n, double timeout_s) {
    double t0 = rt_now();
    while (rt_now() - t0 < timeout_s) {
        bool ok = true;
        for (int k = 0; k < 2 && ok; k++)
            ok = rt_metric(F.router[k].url, "shardlm_router_engines") == n &&
                 rt_metric(F.router[k].url, "shardlm_router_engine_up") == n;
        if (ok) return true;
        rt_sleep_ms(50);
    }
    return false;
}

/* Which engine (index into F.eng) served a session on router k. */
static int served_by(int k, int session) {
    char body[128];
    snprintf(body, sizeof body, "{\"prompt\":\"Hi\",\"max_tokens\":1,\"user\":\"sess-%d\"}", session);
    rresp r = rt_post(F.router[k].url, "/v1/completions", body);
    int which = -1;
    for (int i = 0; i < 4 && r.status == 200; i++)
        if (F.eng[i].pid > 0 && !strcmp(r.engine, F.eng[i].url)) which = i;
    if (r.status != 200) which = -2;
    rt_free(&r);
    return which;
}

TEST(etcd_membership_two_routers) {
    CHECK_MSG(access(ETCD_BIN, X_OK) == 0, "%s is missing (Debian package etcd-server)", ETCD_BIN);
    CHECK(sl_test_shared("models/stories260K.gguf") != NULL);
    atexit(teardown);
    snprintf(F.dir, sizeof F.dir, "/tmp/shardlm-etcd-XXXXXX");
    CHECK(mkdtemp(F.dir) != NULL);
    F.client_port = rt_free_port();
    F.peer_port = rt_free_port();
    CHECK(F.client_port > 0 && F.peer_port > 0 && F.client_port != F.peer_port);
    snprintf(F.url, sizeof F.url, "http://127.0.0.1:%d", F.client_port);
    CHECK_MSG(etcd_start(), "etcd did not start (see %s.log)", F.dir);
    CHECK(start_engine(0, "e0", "v1"));
    CHECK(start_engine(1, "e1", "v2"));
    CHECK(start_engine(2, "e2", "v1"));
    for (int k = 0; k < 2; k++) {
        char *args[] = {"route", "--port", "0", "--etcd", F.url, "--probe-interval-ms", "200", NULL};
        CHECK(rt_start(&F.router[k], args));
    }
    CHECK_MSG(both_see(3, 15), "the routers did not both see 3 engines: %g and %g",
              rt_metric(F.router[0].url, "shardlm_router_engines"), rt_metric(F.router[1].url, "shardlm_router_engines"));
    /* the same view: each session lands on the same engine through either router */
    for (int s = 0; s < 50; s++) {
        int a = served_by(0, s), b = served_by(1, s);
        CHECK_MSG(a >= 0 && a == b, "session %d: engine %d through router 0, %d through router 1", s, a, b);
    }
    F.up = true;
}

TEST(etcd_rollout_weights_both_routers) {
    CHECK(F.up);
    struct {
        const char *cfg;
        double v1, v2;
    } steps[] = {{"{\"rollout\":{\"v1\":0,\"v2\":100}}", 0, 100},
                 {"{\"rollout\":{\"v1\":100,\"v2\":0}}", 100, 0},
                 {"{\"rollout\":{\"v1\":50,\"v2\":50}}", 50, 50}};
    for (size_t st = 0; st < 3; st++) {
        CHECK(etcd_put("/shardlm/default/config", steps[st].cfg));
        for (int k = 0; k < 2; k++) {
            CHECK_MSG(rt_wait_metric(F.router[k].url, "shardlm_router_rollout_weight{version=\"v2\"}", steps[st].v2, 5),
                      "router %d did not take weights %s", k, steps[st].cfg);
            CHECK(rt_wait_metric(F.router[k].url, "shardlm_router_rollout_weight{version=\"v1\"}", steps[st].v1, 5));
        }
        int on_v2[2] = {0, 0};
        for (int s = 0; s < 200; s++) {
            int a = served_by(0, s), b = served_by(1, s);
            CHECK_MSG(a >= 0 && a == b, "step %zu session %d: engine %d vs %d", st, s, a, b);
            on_v2[0] += a == 1;
            on_v2[1] += b == 1;
        }
        printf("  weights %s: %d of 200 sessions on v2 (both routers)\n", steps[st].cfg, on_v2[0]);
        if (steps[st].v2 == 100) CHECK_EQ_INT(on_v2[0], 200);
        if (steps[st].v2 == 0) CHECK_EQ_INT(on_v2[0], 0);
        if (steps[st].v2 == 50) CHECK_MSG(on_v2[0] >= 70 && on_v2[0] <= 130, "50/50 gave %d of 200 on v2", on_v2[0]);
    }
    CHECK(etcd_put("/shardlm/default/config", "{}"));
}

TEST(etcd_stopped_engine_leaves_within_ttl) {
    CHECK(F.up);
    /* SIGTERM: the engine revokes its lease on the way out */
    double t0 = rt_now();
    CHECK_EQ_INT(sl_test_proc_stop(&F.eng[1], SIGTERM, 10), 0);
    CHECK_MSG(both_see(2, atof(TTL)), "a stopped engine was still listed after the %s s TTL", TTL);
    printf("  SIGTERM: gone from both routers after %.2f s\n", rt_now() - t0);
    /* kill -9: nothing revokes; the lease runs out */
    t0 = rt_now();
    sl_test_proc_stop(&F.eng[2], SIGKILL, 5);
    double t_dead = rt_now();
    double limit = atof(TTL) + 2.0; /* etcd checks lease expiry every 500 ms */
    bool gone = false;
    while (rt_now() - t_dead < limit && !gone)
        gone = rt_metric(F.router[0].url, "shardlm_router_engines") == 1 &&
               rt_metric(F.router[1].url, "shardlm_router_engines") == 1;
    CHECK_MSG(gone, "a killed engine was still listed %.1f s after its death (TTL %s s)", rt_now() - t_dead, TTL);
    printf("  kill -9: gone from both routers after %.2f s (TTL %s s)\n", rt_now() - t0, TTL);
}

TEST(etcd_down_routers_keep_serving) {
    CHECK(F.up);
    rt_stop_pid(F.pid, SIGKILL, 5);
    F.pid = 0;
    rt_sleep_ms(300);
    for (int k = 0; k < 2; k++)
        for (int s = 0; s < 10; s++) CHECK_MSG(served_by(k, s) == 0, "router %d, etcd down: session %d not served", k, s);
    CHECK(rt_metric(F.router[0].url, "shardlm_router_engines") == 1);
    /* etcd returns having lost everything (a fresh data directory): the engine
     * registers again by itself, a new one joins, and both routers see the two */
    nftw(F.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    CHECK(mkdir(F.dir, 0700) == 0);
    CHECK(etcd_start());
    CHECK(start_engine(3, "e3", "v1"));
    CHECK_MSG(both_see(2, 15), "after etcd came back the routers see %g and %g engines",
              rt_metric(F.router[0].url, "shardlm_router_engines"), rt_metric(F.router[1].url, "shardlm_router_engines"));
    for (int k = 0; k < 2; k++)
        for (int s = 0; s < 10; s++) CHECK(served_by(k, s) >= 0);
    teardown();
}

/* etcd over TLS with client certificates (--client-cert-auth), as production clusters run it: an engine
 * registers and a router watches through https:// with --etcd-ca / --etcd-cert / --etcd-key, and routes to
 * it; an engine without a client certificate is refused by etcd and never listed. */
TEST(etcd_over_tls) {
    CHECK_MSG(access(ETCD_BIN, X_OK) == 0, "%s is missing (Debian package etcd-server)", ETCD_BIN);
    char key[] = "/tmp/shardlm-key-XXXXXX", cert[] = "/tmp/shardlm-cert-XXXXXX", dir[] = "/tmp/shardlm-etcd-XXXXXX";
    CHECK(tls_make_cert(key, cert) && mkdtemp(dir) != NULL);
    const int cport = rt_free_port(), pport = rt_free_port();
    char listen_c[64], listen_p[64], cluster[96], log[96], url[64];
    snprintf(listen_c, sizeof listen_c, "https://127.0.0.1:%d", cport);
    snprintf(listen_p, sizeof listen_p, "http://127.0.0.1:%d", pport);
    snprintf(cluster, sizeof cluster, "t=%s", listen_p);
    snprintf(log, sizeof log, "%s.log", dir);
    snprintf(url, sizeof url, "https://127.0.0.1:%d", cport);
    char *argv[] = {ETCD_BIN, "--name", "t", "--data-dir", dir, "--listen-client-urls", listen_c, "--advertise-client-urls",
                    listen_c, "--listen-peer-urls", listen_p, "--initial-advertise-peer-urls", listen_p, "--initial-cluster",
                    cluster, "--cert-file", cert, "--key-file", key, "--trusted-ca-file", cert, "--client-cert-auth", NULL};
    const pid_t etcd = rt_spawn(argv, log);
    CHECK(etcd > 0);
    rt_tls_ca = cert;
    rt_tls_cert = cert;
    rt_tls_key = key;
    bool up = false;
    for (double t0 = rt_now(); !up && rt_now() - t0 < 20; rt_sleep_ms(50)) {
        rresp r = rt_post(url, "/v3/kv/range", "{\"key\":\"AA==\"}");
        up = r.status == 200;
        rt_free(&r);
    }
    rt_tls_ca = rt_tls_cert = rt_tls_key = NULL;
    CHECK_MSG(up, "etcd with TLS did not start (see %s)", log);
    sl_test_proc e, bare, r;
    const char *reg[] = {"--etcd", url, "--etcd-ca", cert, "--etcd-cert", cert, "--etcd-key", key, "--engine-id", "tls0",
                         "--etcd-ttl", "3", NULL};
    const char *noc[] = {"--etcd", url, "--etcd-ca", cert, "--engine-id", "nocert", NULL};
    CHECK(rt_start_engine(&e, reg));
    CHECK(rt_start_engine(&bare, noc));
    char *args[] = {"route", "--port", "0", "--probe-interval-ms", "200", "--etcd", url, "--etcd-ca", cert, "--etcd-cert", cert,
                    "--etcd-key", key, NULL};
    CHECK(rt_start(&r, args));
    bool seen = false;
    for (double t0 = rt_now(); !seen && rt_now() - t0 < 15; rt_sleep_ms(50)) {
        seen = rt_metric(r.url, "shardlm_router_engine_up") == 1;
    }
    CHECK_MSG(seen, "the router did not bring the engine registered over TLS into rotation");
    rt_sleep_ms(500); /* (time for the engine without a certificate to have tried) */
    CHECK_MSG(rt_metric(r.url, "shardlm_router_engines") == 1, "%g engines listed: one without a client certificate got in",
              rt_metric(r.url, "shardlm_router_engines"));
    rresp a = rt_post(r.url, "/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":4}");
    CHECK_MSG(a.status == 200 && !strcmp(a.engine, e.url), "%ld %s (%s)", a.status, a.body, a.engine);
    rt_free(&a);
    sl_test_proc_stop(&r, SIGTERM, 10);
    sl_test_proc_stop(&e, SIGTERM, 10);
    sl_test_proc_stop(&bare, SIGTERM, 10);
    rt_stop_pid(etcd, SIGTERM, 10);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    remove(log);
    unlink(key);
    unlink(cert);
}

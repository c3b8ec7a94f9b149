/*
 * test_gguf.c — the GGUF reader against hostile and real files.
 *
 * - Regression files (tests/data/gguf-bad, one per known attack shape, made by
 *   tools/mkbadgguf.py): each must fail with the status and message
 *   substrings listed in its MANIFEST, through sl_gguf_open and through
 *   sl_gguf_open_memory on an exact-size heap copy (so ASan sees over-reads).
 * - Real files (../shared): stories260K, the small/ models, the LoRA adapters
 *   and the tokenizer vocabularies open, and facts known independently of this
 *   reader hold (README of the golden data, the published model shapes and
 *   vocabularies).
 * - Sweeps over stories260K: every truncation of the header region and a
 *   sample past it, byte/word mutations over the header; each either opens
 *   (and then passes every invariant of tests/fuzz/fuzz_gguf.c) or fails
 *   cleanly with FORMAT/UNSUPPORTED and a message. Run under SAN=1 too.
 * - The fuzz corpus (tests/fuzz/corpus/gguf) replayed as an ordinary test.
 * - Allocation failures at every step of an open: NOMEM, nothing leaked.
 */
#include "harness.h"

#include "core/alloc.h"
#include "core/status.h"
#include "model/gguf.h"

/* the fuzz target's invariant walker (fuzz_gguf_walk) */
#include "fuzz/fuzz_gguf.c"

#include <dirent.h>
#include <stdlib.h>
#include <unistd.h>

#define BAD_DIR "tests/data/gguf-bad"
#define CORPUS_DIR "tests/fuzz/corpus/gguf"

/* A whole file in an exact-size heap buffer (no terminator past the end). */
static uint8_t *read_exact(const char *path, size_t *len) {
    char *text = sl_test_read_file(path, len);
    if (!text) return NULL;
    uint8_t *b = malloc(*len ? *len : 1);
    if (b) memcpy(b, text, *len);
    free(text);
    return b;
}

static bool str_is(sl_str s, const char *c) { return sl_str_eq(s, c); }

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names of the *.gguf files in dir (caller frees each and the array). */
static char **list_gguf(const char *dir, int *n) {
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char **names = NULL;
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".gguf") != 0) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, (size_t)cap * sizeof *names);
        }
        names[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (*n) qsort(names, (size_t)*n, sizeof *names, cmp_str);
    return names;
}

static void free_list(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* ---- regression files ---------------------------------------------------- */

static sl_status status_from_name(const char *s) {
    for (int st = 0; st <= SL_ERR_FULL; st++)
        if (!strcmp(sl_status_str((sl_status)st), s)) return (sl_status)st;
    return (sl_status)-1;
}

/* Open one regression file both ways; check status and every substring. */
static void check_bad_file(const char *name, sl_status want, char **subs, int n_subs) {
    char path[512];
    snprintf(path, sizeof path, BAD_DIR "/%s", name);
    sl_gguf *g = (sl_gguf *)1;
    sl_err_clear();
    sl_status st = sl_gguf_open(path, &g);
    const char *msg = sl_last_error();
    CHECK_MSG(st == want, "%s: sl_gguf_open returned %s, expected %s (%s)", name, sl_status_str(st),
              sl_status_str(want), msg);
    CHECK_MSG(g == NULL, "%s: handle not NULL after a failure", name);
    CHECK_MSG(strstr(msg, path) != NULL, "%s: message does not name the file: %s", name, msg);
    for (int i = 0; i < n_subs; i++)
        CHECK_MSG(strstr(msg, subs[i]) != NULL, "%s: message lacks \"%s\": %s", name, subs[i], msg);

    size_t len = 0;
    uint8_t *buf = read_exact(path, &len);
    CHECK_MSG(buf != NULL, "cannot read %s", path);
    g = (sl_gguf *)1;
    sl_err_clear();
    st = sl_gguf_open_memory(buf, len, &g);
    msg = sl_last_error();
    bool ok = st == want && g == NULL && strstr(msg, "<memory>") != NULL;
    for (int i = 0; ok && i < n_subs; i++) ok = strstr(msg, subs[i]) != NULL;
    if (g && g != (sl_gguf *)1) sl_gguf_close(g);
    free(buf);
    CHECK_MSG(ok, "%s (memory): status %s, expected %s; message: %s", name, sl_status_str(st), sl_status_str(want),
              msg);
    CHECK_MSG(len < 4096, "%s: %zu bytes, regression files stay under 4 KiB", name, len);
}

TEST(gguf_bad_files_manifest) {
    char *text = sl_test_read_file(BAD_DIR "/MANIFEST", NULL);
    CHECK_MSG(text != NULL, "cannot read " BAD_DIR "/MANIFEST");
    int n_files = 0;
    char **files = list_gguf(BAD_DIR, &n_files);
    int n_listed = 0, bad = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#' || line[0] == '\0') continue;
        char *f[16];
        int nf = 0;
        for (char *p = line; nf < 16;) {
            f[nf++] = p;
            char *tab = strchr(p, '\t');
            if (!tab) break;
            *tab = '\0';
            p = tab + 1;
        }
        if (nf < 3) {
            sl_test_fail(__FILE__, __LINE__, "MANIFEST line for %s has no expected substring", f[0]);
            bad++;
            continue;
        }
        sl_status want = status_from_name(f[1]);
        if ((int)want < 0) {
            sl_test_fail(__FILE__, __LINE__, "MANIFEST: %s: unknown status %s", f[0], f[1]);
            bad++;
            continue;
        }
        bool present = false;
        for (int i = 0; i < n_files; i++) present |= !strcmp(files[i], f[0]);
        if (!present) {
            sl_test_fail(__FILE__, __LINE__, "MANIFEST lists %s, which is not in " BAD_DIR, f[0]);
            bad++;
            continue;
        }
        n_listed++;
        check_bad_file(f[0], want, f + 2, nf - 2); /* records its own failures */
    }
    free(text);
    free_list(files, n_files);
    CHECK_EQ_INT(bad, 0);
    CHECK_MSG(n_listed == n_files, "MANIFEST lists %d files but " BAD_DIR " holds %d", n_listed, n_files);
    CHECK_MSG(n_listed >= 40, "only %d regression files", n_listed);
}

/* ---- real files ---------------------------------------------------------- */

/* Every tensor's bytes lie inside the file, after the data offset. */
static bool tensors_inside(const sl_gguf *g, char *why, size_t cap) {
    uint64_t size = sl_gguf_size(g), d0 = sl_gguf_data_offset(g);
    if (d0 > size) {
        snprintf(why, cap, "data offset %" PRIu64 " past size %" PRIu64, d0, size);
        return false;
    }
    for (int64_t i = 0; i < sl_gguf_n_tensors(g); i++) {
        const sl_gguf_tensor *t = sl_gguf_tensor_at(g, i);
        if (t->offset > size - d0 || t->nbytes > size - d0 - t->offset) {
            snprintf(why, cap, "tensor %.*s [%" PRIu64 ", +%" PRIu64 ") past the end", (int)t->name.len, t->name.ptr,
                     t->offset, t->nbytes);
            return false;
        }
        const sl_gguf_tensor *t0 = sl_gguf_tensor_at(g, 0);
        if (t->data != t0->data - t0->offset + t->offset) {
            snprintf(why, cap, "tensor %.*s data pointer is not base + data offset + offset", (int)t->name.len,
                     t->name.ptr);
            return false;
        }
    }
    return true;
}

static int64_t n_elems(const sl_gguf_tensor *t) { return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]; }

TEST(gguf_stories260k) {
    const char *path = sl_test_shared("models/stories260K.gguf");
    CHECK_MSG(path != NULL, "../shared/models/stories260K.gguf is missing");
    sl_gguf *g = NULL;
    CHECK_OK(sl_gguf_open(path, &g));
    CHECK_EQ_INT(sl_gguf_version(g), 3);
    CHECK_EQ_INT(sl_gguf_alignment(g), 32);
    CHECK_EQ_INT(sl_gguf_size(g), 1185376);
    /* tensor infos end at 14152 (an independent reader), padded to 32 */
    CHECK_EQ_INT(sl_gguf_data_offset(g), 14176);
    CHECK_EQ_INT(sl_gguf_n_kv(g), 19);
    CHECK_EQ_INT(sl_gguf_n_tensors(g), 48); /* token_embd, output_norm, output + 5 layers x 9 */
    sl_str s;
    CHECK_OK(sl_gguf_get_str(g, "general.architecture", &s));
    CHECK(str_is(s, "llama"));
    CHECK_OK(sl_gguf_get_str(g, "tokenizer.ggml.model", &s));
    CHECK(str_is(s, "llama"));
    static const struct {
        const char *key;
        uint32_t v;
    } U[] = {{"llama.embedding_length", 64}, {"llama.block_count", 5}, {"llama.attention.head_count", 8},
             {"llama.attention.head_count_kv", 4}, {"llama.feed_forward_length", 172},
             {"llama.context_length", 512}, {"tokenizer.ggml.bos_token_id", 1}, {"tokenizer.ggml.eos_token_id", 2}};
    for (size_t i = 0; i < sizeof U / sizeof U[0]; i++) {
        uint32_t v = 0;
        CHECK_OK(sl_gguf_get_u32(g, U[i].key, &v));
        CHECK_MSG(v == U[i].v, "%s = %u, expected %u", U[i].key, v, U[i].v);
    }
    float eps = 0;
    CHECK_OK(sl_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &eps));
    CHECK_NEAR(eps, 1e-5, 1e-9);
    sl_gguf_vtype et;
    uint64_t n = 0;
    const sl_gguf_kv *tok = NULL;
    CHECK_OK(sl_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &tok));
    CHECK_EQ_INT(et, SL_GGUF_STRING);
    CHECK_EQ_INT(n, 512);
    CHECK(str_is(sl_gguf_arr_str(tok, 0), "<unk>"));
    CHECK(str_is(sl_gguf_arr_str(tok, 1), "<s>"));
    CHECK(str_is(sl_gguf_arr_str(tok, 2), "</s>"));
    CHECK_OK(sl_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &n, NULL));
    CHECK_EQ_INT(et, SL_GGUF_F32);
    CHECK_EQ_INT(n, 512);

    const sl_gguf_tensor *t = sl_gguf_find_tensor(g, "token_embd.weight");
    CHECK(t != NULL);
    CHECK_EQ_INT(t->type, SL_TYPE_F32);
    CHECK_EQ_INT(t->n_dims, 2);
    CHECK_EQ_INT(t->ne[0], 64);
    CHECK_EQ_INT(t->ne[1], 512);
    CHECK_EQ_INT(t->ne[2], 1);
    CHECK_EQ_INT(t->nbytes, 64 * 512 * 4);
    CHECK_EQ_INT(t->offset, 0);
    t = sl_gguf_find_tensor(g, "blk.4.ffn_down.weight");
    CHECK(t != NULL);
    CHECK_EQ_INT(t->ne[0], 172);
    CHECK_EQ_INT(t->ne[1], 64);
    t = sl_gguf_find_tensor(g, "blk.0.attn_k.weight");
    CHECK(t != NULL);
    CHECK_EQ_INT(t->ne[1], 32); /* 4 KV heads x head size 8 */
    t = sl_gguf_find_tensor(g, "output_norm.weight");
    CHECK(t != NULL);
    CHECK_EQ_INT(t->n_dims, 1);
    CHECK(sl_gguf_find_tensor(g, "blk.5.attn_q.weight") == NULL);
    CHECK(sl_gguf_find(g, "llama.nonexistent") == NULL);

    int64_t params = 0;
    uint64_t bytes = 0;
    for (int64_t i = 0; i < sl_gguf_n_tensors(g); i++) {
        params += n_elems(sl_gguf_tensor_at(g, i));
        bytes += sl_gguf_tensor_at(g, i)->nbytes;
    }
    /* 2*64*512 + 64 + 5*(2*64*64 + 2*64*32 + 2*64 + 3*64*172) */
    CHECK_EQ_INT(params, 292800);
    CHECK_EQ_INT(bytes, 292800 * 4);
    CHECK_EQ_INT(sl_gguf_data_offset(g) + bytes, sl_gguf_size(g)); /* F32 rows pack without padding */
    char why[256];
    CHECK_MSG(tensors_inside(g, why, sizeof why), "%s", why);
    const char *bad = fuzz_gguf_walk(g, sl_gguf_tensor_at(g, 0)->data - sl_gguf_data_offset(g), sl_gguf_size(g));
    CHECK_MSG(bad == NULL, "invariant: %s", bad);
    sl_gguf_close(g);
}

TEST(gguf_stories260k_getters) {
    const char *path = sl_test_shared("models/stories260K.gguf");
    CHECK(path != NULL);
    sl_gguf *g = NULL;
    CHECK_OK(sl_gguf_open(path, &g));
    uint32_t u = 0;
    sl_status st = sl_gguf_get_u32(g, "general.architecture", &u);
    bool ok = st == SL_ERR_FORMAT && strstr(sl_last_error(), "general.architecture") &&
              strstr(sl_last_error(), "string");
    st = sl_gguf_get_u32(g, "llama.missing", &u);
    ok = ok && st == SL_ERR_FORMAT && strstr(sl_last_error(), "missing key 'llama.missing'");
    /* u32 0xffffffff does not fit an i32 */
    int32_t i32 = 0;
    st = sl_gguf_get_i32(g, "tokenizer.ggml.padding_token_id", &i32);
    ok = ok && st == SL_ERR_FORMAT && strstr(sl_last_error(), "out of range");
    uint64_t u64 = 0;
    ok = ok && sl_gguf_get_u64(g, "tokenizer.ggml.padding_token_id", &u64) == SL_OK && u64 == 0xffffffffu;
    ok = ok && sl_gguf_opt_u32(g, "llama.expert_count", 7, &u) == SL_OK && u == 7;
    ok = ok && sl_gguf_opt_u32(g, "llama.block_count", 7, &u) == SL_OK && u == 5;
    bool b = false;
    ok = ok && sl_gguf_opt_bool(g, "tokenizer.ggml.add_bos_token", true, &b) == SL_OK && b;
    ok = ok && sl_gguf_get_bool(g, "llama.block_count", &b) == SL_ERR_FORMAT;
    float f = 0;
    ok = ok && sl_gguf_get_f32(g, "llama.block_count", &f) == SL_ERR_FORMAT;
    ok = ok && sl_gguf_get_arr(g, "llama.block_count", NULL, NULL, NULL) == SL_ERR_FORMAT;
    ok = ok && !strcmp(sl_gguf_path(g), path);
    const sl_gguf_kv *kv = sl_gguf_find(g, "llama.block_count");
    ok = ok && kv && kv->type == SL_GGUF_U32 && sl_gguf_kv_int(kv) == 5;
    kv = sl_gguf_find(g, "llama.attention.layer_norm_rms_epsilon");
    ok = ok && kv && fabs(sl_gguf_kv_float(kv) - 1e-5) < 1e-9;
    kv = sl_gguf_find(g, "general.name");
    ok = ok && kv && str_is(sl_gguf_kv_str(kv), "llama");
    sl_gguf_close(g);
    CHECK_MSG(ok, "a getter misbehaved; last error: %s", sl_last_error());
}

typedef struct small_model {
    const char *file, *arch;
    sl_type embd, q0, v0, v2, down1, down3;
    int n_tensors;
} small_model;

/* ../shared/golden/README.md, "small/" */
static const small_model SMALL[] = {
    {"small-llama-F16", "llama", SL_TYPE_F16, SL_TYPE_F16, SL_TYPE_F16, SL_TYPE_F16, SL_TYPE_F16, SL_TYPE_F16, 39},
    {"small-llama-BF16", "llama", SL_TYPE_BF16, SL_TYPE_BF16, SL_TYPE_BF16, SL_TYPE_BF16, SL_TYPE_BF16, SL_TYPE_BF16,
     39},
    {"small-llama-Q8_0", "llama", SL_TYPE_Q8_0, SL_TYPE_Q8_0, SL_TYPE_Q8_0, SL_TYPE_Q8_0, SL_TYPE_Q8_0, SL_TYPE_Q8_0,
     39},
    {"small-llama-Q4_0", "llama", SL_TYPE_Q4_0, SL_TYPE_Q4_0, SL_TYPE_Q4_0, SL_TYPE_Q4_0, SL_TYPE_Q4_0, SL_TYPE_Q4_0,
     39},
    {"small-llama-Q6_K", "llama", SL_TYPE_Q6_K, SL_TYPE_Q6_K, SL_TYPE_Q6_K, SL_TYPE_Q6_K, SL_TYPE_Q6_K, SL_TYPE_Q6_K,
     39},
    {"small-llama-Q4_K_M", "llama", SL_TYPE_Q6_K, SL_TYPE_Q4_K, SL_TYPE_Q4_K, SL_TYPE_Q6_K, SL_TYPE_Q4_K,
     SL_TYPE_Q6_K, 39},
    {"small-llama-Q5_K_M", "llama", SL_TYPE_Q6_K, SL_TYPE_Q5_K, SL_TYPE_Q5_K, SL_TYPE_Q6_K, SL_TYPE_Q5_K,
     SL_TYPE_Q6_K, 39},
    {"small-qwen2-Q8_0", "qwen2", SL_TYPE_Q8_0, SL_TYPE_Q8_0, SL_TYPE_Q8_0, SL_TYPE_Q8_0, SL_TYPE_Q8_0, SL_TYPE_Q8_0,
     51},
    {"small-qwen3-Q8_0", "qwen3", SL_TYPE_Q8_0, SL_TYPE_Q8_0, SL_TYPE_Q8_0, SL_TYPE_Q8_0, SL_TYPE_Q8_0, SL_TYPE_Q8_0,
     46},
};

static void check_tensor(const sl_gguf *g, const char *file, const char *name, sl_type type, int64_t ne0,
                         int64_t ne1) {
    const sl_gguf_tensor *t = sl_gguf_find_tensor(g, name);
    CHECK_MSG(t != NULL, "%s: no tensor %s", file, name);
    CHECK_MSG(t->type == type, "%s: %s is %s, expected %s", file, name, sl_type_name(t->type), sl_type_name(type));
    CHECK_MSG(t->ne[0] == ne0 && t->ne[1] == ne1 && t->n_dims == (ne1 == 1 ? 1u : 2u),
              "%s: %s has shape [%" PRId64 ", %" PRId64 "] (%u dims), expected [%" PRId64 ", %" PRId64 "]", file,
              name, t->ne[0], t->ne[1], t->n_dims, ne0, ne1);
}

TEST(gguf_small_models) {
    /* all: dim 256, 4 layers, 8 heads of 32, 2 KV heads, FFN 768, context 2048, vocab 32000 */
    int n_files = 0;
    char **files = list_gguf("../shared/models/small", &n_files);
    CHECK_MSG(n_files == (int)(sizeof SMALL / sizeof SMALL[0]), "../shared/models/small holds %d files, expected %d",
              n_files, (int)(sizeof SMALL / sizeof SMALL[0]));
    free_list(files, n_files);
    for (size_t k = 0; k < sizeof SMALL / sizeof SMALL[0]; k++) {
        const small_model *m = &SMALL[k];
        char rel[256], key[128];
        snprintf(rel, sizeof rel, "models/small/%s.gguf", m->file);
        const char *path = sl_test_shared(rel);
        CHECK_MSG(path != NULL, "../shared/%s is missing", rel);
        sl_gguf *g = NULL;
        CHECK_OK(sl_gguf_open(path, &g));
        sl_str s;
        bool ok = sl_gguf_get_str(g, "general.architecture", &s) == SL_OK && str_is(s, m->arch);
        static const struct {
            const char *suffix;
            uint32_t v;
        } U[] = {{"embedding_length", 256}, {"block_count", 4}, {"attention.head_count", 8},
                 {"attention.head_count_kv", 2}, {"feed_forward_length", 768}, {"context_length", 2048}};
        for (size_t i = 0; ok && i < sizeof U / sizeof U[0]; i++) {
            uint32_t v = 0;
            snprintf(key, sizeof key, "%s.%s", m->arch, U[i].suffix);
            ok = sl_gguf_get_u32(g, key, &v) == SL_OK && v == U[i].v;
        }
        uint64_t n_tok = 0;
        ok = ok && sl_gguf_get_arr(g, "tokenizer.ggml.tokens", NULL, &n_tok, NULL) == SL_OK && n_tok == 32000;
        ok = ok && sl_gguf_n_tensors(g) == m->n_tensors;
        char why[256] = "";
        ok = ok && tensors_inside(g, why, sizeof why);
        if (!ok) sl_gguf_close(g);
        CHECK_MSG(ok, "%s: metadata or layout differs from the README (%s; %s)", m->file, why, sl_last_error());
        check_tensor(g, m->file, "token_embd.weight", m->embd, 256, 32000);
        check_tensor(g, m->file, "blk.0.attn_q.weight", m->q0, 256, 256);
        check_tensor(g, m->file, "blk.0.attn_k.weight", m->q0, 256, 64);
        check_tensor(g, m->file, "blk.0.attn_v.weight", m->v0, 256, 64);
        check_tensor(g, m->file, "blk.2.attn_v.weight", m->v2, 256, 64);
        check_tensor(g, m->file, "blk.3.attn_v.weight", m->v2, 256, 64);
        check_tensor(g, m->file, "blk.1.ffn_down.weight", m->down1, 768, 256);
        check_tensor(g, m->file, "blk.3.ffn_down.weight", m->down3, 768, 256);
        check_tensor(g, m->file, "blk.3.ffn_gate.weight", m->q0, 256, 768);
        check_tensor(g, m->file, "blk.0.attn_norm.weight", SL_TYPE_F32, 256, 1);
        check_tensor(g, m->file, "output_norm.weight", SL_TYPE_F32, 256, 1);
        if (!strcmp(m->arch, "llama")) {
            check_tensor(g, m->file, "rope_freqs.weight", SL_TYPE_F32, 16, 1); /* head dim / 2 */
            CHECK_MSG(sl_gguf_find_tensor(g, "output.weight") == NULL, "%s: output is tied", m->file);
        } else if (!strcmp(m->arch, "qwen2")) {
            check_tensor(g, m->file, "blk.0.attn_q.bias", SL_TYPE_F32, 256, 1);
            check_tensor(g, m->file, "blk.0.attn_k.bias", SL_TYPE_F32, 64, 1);
            check_tensor(g, m->file, "output.weight", SL_TYPE_Q8_0, 256, 32000);
        } else {
            check_tensor(g, m->file, "blk.0.attn_q_norm.weight", SL_TYPE_F32, 32, 1);
            check_tensor(g, m->file, "blk.0.attn_k_norm.weight", SL_TYPE_F32, 32, 1);
        }
        if (sl_test_failed()) {
            sl_gguf_close(g);
            return;
        }
        sl_gguf_close(g);
    }
}

TEST(gguf_tokenizer_vocabs) {
    static const struct {
        const char *file, *model;
        uint64_t n_tokens;
        const char *tok0;
    } V[] = {
        {"ggml-vocab-llama-spm", "llama", 32000, "<unk>"}, {"ggml-vocab-phi-3", "llama", 32064, "<unk>"},
        {"ggml-vocab-gpt-2", "gpt2", 50257, "!"},          {"ggml-vocab-llama-bpe", "gpt2", 128256, "!"},
        {"ggml-vocab-qwen2", "gpt2", 151936, "!"},         {"ggml-vocab-falcon", "gpt2", 65024, ">>TITLE<<"},
        {"ggml-vocab-mpt", "gpt2", 50432, "<|endoftext|>"}, {"ggml-vocab-starcoder", "gpt2", 49152, "<|endoftext|>"},
        {"ggml-vocab-refact", "gpt2", 49216, "<|endoftext|>"}, {"ggml-vocab-deepseek-coder", "gpt2", 32256, "!"},
        {"ggml-vocab-deepseek-llm", "gpt2", 102400, "!"},  {"ggml-vocab-bert-bge", "bert", 30522, "[PAD]"},
    };
    int n_files = 0;
    char **files = list_gguf("../shared/golden/tokenizer", &n_files);
    CHECK_MSG(n_files == (int)(sizeof V / sizeof V[0]), "../shared/golden/tokenizer holds %d .gguf files, expected %d",
              n_files, (int)(sizeof V / sizeof V[0]));
    free_list(files, n_files);
    for (size_t k = 0; k < sizeof V / sizeof V[0]; k++) {
        char rel[256];
        snprintf(rel, sizeof rel, "golden/tokenizer/%s.gguf", V[k].file);
        const char *path = sl_test_shared(rel);
        CHECK_MSG(path != NULL, "../shared/%s is missing", rel);
        sl_gguf *g = NULL;
        CHECK_OK(sl_gguf_open(path, &g));
        sl_str s = {0};
        sl_gguf_vtype et = SL_GGUF_U8;
        uint64_t n = 0, total = 0;
        const sl_gguf_kv *kv = NULL;
        bool ok = sl_gguf_get_str(g, "tokenizer.ggml.model", &s) == SL_OK && str_is(s, V[k].model) &&
                  sl_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &kv) == SL_OK && et == SL_GGUF_STRING &&
                  n == V[k].n_tokens && str_is(sl_gguf_arr_str(kv, 0), V[k].tok0) && sl_gguf_n_tensors(g) == 0;
        for (uint64_t i = 0; ok && i < n; i++) total += 8 + sl_gguf_arr_str(kv, i).len;
        ok = ok && total < sl_gguf_size(g);
        if (ok && !strcmp(V[k].file, "ggml-vocab-gpt-2")) /* GPT-2 ships 50000 merges */
            ok = sl_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n, NULL) == SL_OK && n == 50000;
        if (ok && !strcmp(V[k].file, "ggml-vocab-bert-bge")) /* BERT uncased: [UNK] 100, [CLS] 101, [SEP] 102 */
            ok = str_is(sl_gguf_arr_str(kv, 100), "[UNK]") && str_is(sl_gguf_arr_str(kv, 101), "[CLS]") &&
                 str_is(sl_gguf_arr_str(kv, 102), "[SEP]");
        if (ok && !strcmp(V[k].model, "llama"))
            ok = str_is(sl_gguf_arr_str(kv, 1), "<s>") && str_is(sl_gguf_arr_str(kv, 2), "</s>");
        sl_gguf_close(g);
        CHECK_MSG(ok, "%s: model %.*s, %" PRIu64 " tokens (expected %s, %" PRIu64 "); %s", V[k].file, (int)s.len,
                  s.ptr ? s.ptr : "", n, V[k].model, V[k].n_tokens, sl_last_error());
    }
}

TEST(gguf_lora_adapters) {
    /* ../shared/golden/README.md, "lora/": A is rank 8, alpha 16 on attn_q/k/v/output; B rank 16, alpha 8 on
     * ffn_gate/up/down; lora_a is [n_in, r], lora_b [r, n_out]; 4 layers, dim 256, KV dim 64, FFN 768 */
    static const struct {
        const char *file;
        float alpha;
        int n_tensors;
        const char *a, *b;
        int64_t a0, a1, b0, b1;
    } L[] = {
        {"small-llama-lora-A-attn-r8", 16, 4 * 4 * 2, "blk.3.attn_k.weight.lora_a", "blk.3.attn_k.weight.lora_b", 256,
         8, 8, 64},
        {"small-llama-lora-B-ffn-r16", 8, 4 * 3 * 2, "blk.1.ffn_down.weight.lora_a", "blk.1.ffn_down.weight.lora_b",
         768, 16, 16, 256},
    };
    for (size_t k = 0; k < sizeof L / sizeof L[0]; k++) {
        char rel[256];
        snprintf(rel, sizeof rel, "models/lora/%s.gguf", L[k].file);
        const char *path = sl_test_shared(rel);
        CHECK_MSG(path != NULL, "../shared/%s is missing", rel);
        sl_gguf *g = NULL;
        CHECK_OK(sl_gguf_open(path, &g));
        sl_str s;
        float alpha = 0;
        char why[256] = "";
        const sl_gguf_tensor *a = sl_gguf_find_tensor(g, L[k].a), *b = sl_gguf_find_tensor(g, L[k].b);
        bool ok = sl_gguf_get_str(g, "general.type", &s) == SL_OK && str_is(s, "adapter") &&
                  sl_gguf_get_str(g, "adapter.type", &s) == SL_OK && str_is(s, "lora") &&
                  sl_gguf_get_f32(g, "adapter.lora.alpha", &alpha) == SL_OK && alpha == L[k].alpha &&
                  sl_gguf_n_tensors(g) == L[k].n_tensors && a && b && a->ne[0] == L[k].a0 && a->ne[1] == L[k].a1 &&
                  b->ne[0] == L[k].b0 && b->ne[1] == L[k].b1 && tensors_inside(g, why, sizeof why);
        sl_gguf_close(g);
        CHECK_MSG(ok, "%s differs from the README (%s; %s)", L[k].file, why, sl_last_error());
    }
}

/* ---- script-made valid files (values from tools/mkbadgguf.py) -------------- */

static sl_gguf *open_seed(const char *name, uint8_t **buf) {
    char path[256];
    size_t len = 0;
    snprintf(path, sizeof path, CORPUS_DIR "/%s", name);
    *buf = read_exact(path, &len);
    sl_gguf *g = NULL;
    if (*buf && sl_gguf_open_memory(*buf, len, &g) != SL_OK) g = NULL;
    return g;
}

TEST(gguf_seed_alltypes) {
    uint8_t *buf = NULL;
    sl_gguf *g = open_seed("seed-alltypes.gguf", &buf);
    CHECK_MSG(g != NULL, "seed-alltypes.gguf: %s", sl_last_error());
    bool ok = sl_gguf_n_kv(g) == 26 && sl_gguf_n_tensors(g) == 0 && sl_gguf_version(g) == 3;
    const sl_gguf_kv *kv;
    uint32_t u32 = 0;
    int32_t i32 = 0;
    uint64_t u64 = 0;
    float f = 0;
    bool b = false;
    sl_str s;
    ok = ok && sl_gguf_get_u32(g, "t.u8", &u32) == SL_OK && u32 == 200;
    ok = ok && sl_gguf_get_i32(g, "t.i8", &i32) == SL_OK && i32 == -100;
    ok = ok && sl_gguf_get_u32(g, "t.u16", &u32) == SL_OK && u32 == 60000;
    ok = ok && sl_gguf_get_i32(g, "t.i16", &i32) == SL_OK && i32 == -30000;
    ok = ok && sl_gguf_get_u32(g, "t.u32", &u32) == SL_OK && u32 == 4000000000u;
    ok = ok && sl_gguf_get_i32(g, "t.u32", &i32) == SL_ERR_FORMAT; /* does not fit */
    ok = ok && sl_gguf_get_i32(g, "t.i32", &i32) == SL_OK && i32 == -2000000000;
    ok = ok && sl_gguf_get_u32(g, "t.i32", &u32) == SL_ERR_FORMAT; /* negative */
    ok = ok && sl_gguf_get_f32(g, "t.f32", &f) == SL_OK && f == 0.5f;
    ok = ok && sl_gguf_get_bool(g, "t.bool", &b) == SL_OK && b;
    ok = ok && sl_gguf_get_str(g, "t.str", &s) == SL_OK && str_is(s, "h\xc3\xa9llo \"q\"\n\t\\ end");
    ok = ok && sl_gguf_get_u64(g, "t.u64", &u64) == SL_OK && u64 == UINT64_MAX - 1;
    ok = ok && sl_gguf_get_u32(g, "t.u64", &u32) == SL_ERR_FORMAT;
    ok = ok && sl_gguf_get_u64(g, "t.i64", &u64) == SL_ERR_FORMAT; /* negative */
    ok = ok && (kv = sl_gguf_find(g, "t.i64")) && sl_gguf_kv_int(kv) == -(INT64_C(1) << 62);
    ok = ok && sl_gguf_get_f32(g, "t.f64", &f) == SL_OK && f == -2.25f;
    ok = ok && (kv = sl_gguf_find(g, "t.f64")) && sl_gguf_kv_float(kv) == -2.25;
    CHECK_MSG(ok, "scalars: %s", sl_last_error());

    sl_gguf_vtype et;
    uint64_t n;
    ok = sl_gguf_get_arr(g, "a.u8", &et, &n, &kv) == SL_OK && et == SL_GGUF_U8 && n == 3 &&
         sl_gguf_arr_int(kv, 2) == 255;
    ok = ok && sl_gguf_get_arr(g, "a.i8", &et, &n, &kv) == SL_OK && n == 2 && sl_gguf_arr_int(kv, 0) == -128;
    ok = ok && sl_gguf_get_arr(g, "a.u16", &et, &n, &kv) == SL_OK && n == 1 && sl_gguf_arr_int(kv, 0) == 65535;
    ok = ok && sl_gguf_get_arr(g, "a.i16", &et, &n, &kv) == SL_OK && n == 3 && sl_gguf_arr_int(kv, 2) == -3;
    ok = ok && sl_gguf_get_arr(g, "a.u32", &et, &n, &kv) == SL_OK && n == 4 && sl_gguf_arr_int(kv, 3) == 4;
    ok = ok && sl_gguf_get_arr(g, "a.i32", &et, &n, &kv) == SL_OK && n == 2 && sl_gguf_arr_int(kv, 0) == -7;
    ok = ok && sl_gguf_get_arr(g, "a.f32", &et, &n, &kv) == SL_OK && n == 3 && sl_gguf_arr_f32(kv, 1) == -0.25f;
    ok = ok && sl_gguf_get_arr(g, "a.bool", &et, &n, &kv) == SL_OK && n == 3 && sl_gguf_arr_bool(kv, 0) &&
         !sl_gguf_arr_bool(kv, 1);
    ok = ok && sl_gguf_get_arr(g, "a.u64", &et, &n, &kv) == SL_OK && n == 2 &&
         (uint64_t)sl_gguf_arr_int(kv, 0) == UINT64_MAX;
    ok = ok && sl_gguf_get_arr(g, "a.i64", &et, &n, &kv) == SL_OK && n == 2 && sl_gguf_arr_int(kv, 0) == INT64_MIN;
    ok = ok && sl_gguf_get_arr(g, "a.f64", &et, &n, &kv) == SL_OK && n == 1 && sl_gguf_arr_f64(kv, 0) == 0.125;
    ok = ok && sl_gguf_get_arr(g, "a.empty", &et, &n, &kv) == SL_OK && et == SL_GGUF_I32 && n == 0;
    ok = ok && sl_gguf_get_arr(g, "a.empty_str", &et, &n, &kv) == SL_OK && et == SL_GGUF_STRING && n == 0;
    ok = ok && sl_gguf_get_arr(g, "a.str", &et, &n, &kv) == SL_OK && et == SL_GGUF_STRING && n == 5 &&
         sl_gguf_arr_str(kv, 0).len == 0 && str_is(sl_gguf_arr_str(kv, 1), "a") &&
         str_is(sl_gguf_arr_str(kv, 2), "\xc3\xbcnicode") && sl_gguf_arr_str(kv, 3).len == 100 &&
         sl_gguf_arr_str(kv, 4).len == 3 && memcmp(sl_gguf_arr_str(kv, 4).ptr, "\0\1\x7f", 3) == 0;
    const char *bad = fuzz_gguf_walk(g, buf, sl_gguf_size(g));
    sl_gguf_close(g);
    free(buf);
    CHECK_MSG(ok, "arrays: %s", sl_last_error());
    CHECK_MSG(bad == NULL, "invariant: %s", bad);
}

TEST(gguf_seed_layouts) {
    uint8_t *buf = NULL;
    sl_gguf *g = open_seed("seed-align1.gguf", &buf);
    CHECK_MSG(g != NULL, "seed-align1: %s", sl_last_error());
    /* alignment 1: tensors packed back to back (a: 3 F32 = 12 bytes, b: 7 I8, c: 5 F16) */
    const sl_gguf_tensor *a = sl_gguf_find_tensor(g, "a"), *b = sl_gguf_find_tensor(g, "b"),
                         *c = sl_gguf_find_tensor(g, "c");
    bool ok = sl_gguf_alignment(g) == 1 && a && b && c && a->offset == 0 && b->offset == 12 && c->offset == 19 &&
              b->type == SL_TYPE_I8 && c->nbytes == 10 && sl_gguf_data_offset(g) + 29 == sl_gguf_size(g);
    sl_gguf_close(g);
    free(buf);
    CHECK_MSG(ok, "seed-align1 layout");

    g = open_seed("seed-align64.gguf", &buf);
    CHECK_MSG(g != NULL, "seed-align64: %s", sl_last_error());
    b = sl_gguf_find_tensor(g, "b");
    ok = sl_gguf_alignment(g) == 64 && sl_gguf_data_offset(g) % 64 == 0 && b && b->offset == 64 &&
         b->type == SL_TYPE_Q8_0 && b->nbytes == 34;
    sl_gguf_close(g);
    free(buf);
    CHECK_MSG(ok, "seed-align64 layout");

    g = open_seed("seed-v2.gguf", &buf);
    CHECK_MSG(g != NULL, "seed-v2: %s", sl_last_error());
    ok = sl_gguf_version(g) == 2 && sl_gguf_n_tensors(g) == 1;
    sl_gguf_close(g);
    free(buf);
    CHECK_MSG(ok, "seed-v2");

    g = open_seed("seed-empty.gguf", &buf);
    CHECK_MSG(g != NULL, "seed-empty: %s", sl_last_error());
    ok = sl_gguf_n_kv(g) == 0 && sl_gguf_n_tensors(g) == 0 && sl_gguf_find(g, "x") == NULL &&
         sl_gguf_find_tensor(g, "x") == NULL && sl_gguf_data_offset(g) == 32;
    sl_gguf_close(g);
    free(buf);
    CHECK_MSG(ok, "seed-empty");

    g = open_seed("seed-tensors.gguf", &buf);
    CHECK_MSG(g != NULL, "seed-tensors: %s", sl_last_error());
    const sl_gguf_tensor *z = sl_gguf_find_tensor(g, "t.zero"), *q = sl_gguf_find_tensor(g, "t.q6_k"),
                         *d4 = sl_gguf_find_tensor(g, "t.4d");
    ok = z && z->nbytes == 0 && z->ne[1] == 0 && q && q->type == SL_TYPE_Q6_K && q->nbytes == 210 && d4 &&
         d4->n_dims == 4 && d4->ne[3] == 2 && d4->nbytes == 2 * 3 * 2 * 2 * 2;
    sl_gguf_close(g);
    free(buf);
    CHECK_MSG(ok, "seed-tensors");
}

/* ---- corpus replay ------------------------------------------------------- */

TEST(gguf_fuzz_corpus_replay) {
    int n = 0;
    char **files = list_gguf(CORPUS_DIR, &n);
    CHECK_MSG(n >= 10, "only %d files in " CORPUS_DIR, n);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        char path[512];
        size_t len = 0;
        snprintf(path, sizeof path, CORPUS_DIR "/%s", files[i]);
        uint8_t *buf = read_exact(path, &len);
        if (!buf) {
            sl_test_fail(__FILE__, __LINE__, "cannot read %s", path);
            failed++;
            continue;
        }
        sl_gguf *g = NULL;
        sl_status st = sl_gguf_open_memory(buf, len, &g);
        bool want_ok = strncmp(files[i], "bad-", 4) != 0;
        const char *why = NULL;
        if (st == SL_OK) why = fuzz_gguf_walk(g, buf, len);
        if ((st == SL_OK) != want_ok || why) {
            sl_test_fail(__FILE__, __LINE__, "%s: status %s (%s)%s%s", files[i], sl_status_str(st), sl_last_error(),
                         why ? "; invariant: " : "", why ? why : "");
            failed++;
        }
        sl_gguf_close(g);
        free(buf);
    }
    free_list(files, n);
    CHECK_EQ_INT(failed, 0);
}

/* ---- sweeps over a real header ------------------------------------------- */

/* Open buf[0..len) and check: success passes the walker, failure is clean. */
static bool open_clean(const uint8_t *buf, size_t len, bool *opened, char *why, size_t cap) {
    sl_gguf *g = (sl_gguf *)1;
    sl_err_clear();
    sl_status st = sl_gguf_open_memory(buf, len, &g);
    *opened = st == SL_OK;
    if (st == SL_OK) {
        const char *bad = fuzz_gguf_walk(g, buf, len);
        sl_gguf_close(g);
        if (bad) snprintf(why, cap, "opened, but invariant violated: %s", bad);
        return bad == NULL;
    }
    if (g != NULL) {
        snprintf(why, cap, "failed (%s) but left a handle", sl_status_str(st));
        return false;
    }
    if ((st != SL_ERR_FORMAT && st != SL_ERR_UNSUPPORTED) || !strstr(sl_last_error(), "<memory>: ")) {
        snprintf(why, cap, "failed with %s and message \"%s\"", sl_status_str(st), sl_last_error());
        return false;
    }
    return true;
}

TEST(gguf_truncation_sweep) {
    const char *path = sl_test_shared("models/stories260K.gguf");
    CHECK(path != NULL);
    size_t size = 0;
    uint8_t *full = read_exact(path, &size);
    CHECK(full != NULL);
    sl_gguf *g = NULL;
    CHECK_OK(sl_gguf_open_memory(full, size, &g));
    size_t head = (size_t)sl_gguf_data_offset(g);
    sl_gguf_close(g);
    /* every length through the header and its padding, then 256 lengths spread over the data */
    size_t n_opened = 0, n_lengths = 0;
    uint8_t *buf = malloc(size);
    CHECK(buf != NULL);
    for (size_t k = 0; k <= head + 256; k++) {
        size_t len = k <= head ? k : head + (size - head) * (k - head) / 256;
        uint8_t *b = malloc(len ? len : 1); /* exact size: ASan catches any read past len */
        memcpy(b, full, len);
        bool opened = false;
        char why[1200] = "";
        bool ok = open_clean(b, len, &opened, why, sizeof why);
        free(b);
        n_lengths++;
        n_opened += opened;
        if (!ok || opened != (len == size)) {
            free(buf);
            free(full);
            CHECK_MSG(false, "truncated to %zu of %zu bytes: %s%s", len, size, opened ? "opened" : "", why);
        }
    }
    free(buf);
    free(full);
    CHECK_EQ_INT(n_opened, 1); /* only the whole file: every tensor's data is needed */
    CHECK(n_lengths > 14000);
}

TEST(gguf_mutation_sweep) {
    const char *path = sl_test_shared("models/stories260K.gguf");
    CHECK(path != NULL);
    size_t size = 0;
    uint8_t *buf = read_exact(path, &size);
    CHECK(buf != NULL);
    sl_gguf *g = NULL;
    CHECK_OK(sl_gguf_open_memory(buf, size, &g));
    size_t head = (size_t)sl_gguf_data_offset(g);
    size_t infos = (size_t)((const uint8_t *)sl_gguf_tensor_at(g, 0)->name.ptr - buf) - 8;
    sl_gguf_close(g);
    /* Every offset of the header and the first tokens, of the first ~17 tensor infos and of the end of
     * the infos and padding; every 8th elsewhere (token strings, scores, the other infos). Mutations:
     * bytes set to 0x00/0xff/+1/^0x80, u32 set to 0xffffffff/13, u64 set to 2^63/2^64-1/the file size;
     * those that change nothing are skipped. The file is mutated in place and restored. */
    static const uint64_t WORDS[] = {UINT64_C(1) << 63, UINT64_MAX};
    size_t n_runs = 0, n_opened = 0;
    char why[1200];
    for (size_t off = 0; off < head;
         off += (off < 768 || (off + 8 >= infos && off < infos + 1024) || off + 64 >= head) ? 1 : 8) {
        uint8_t save[8];
        size_t w = size - off < 8 ? size - off : 8;
        memcpy(save, buf + off, w);
        for (int m = 0; m < 9; m++) {
            switch (m) {
            case 0: buf[off] = 0x00; break;
            case 1: buf[off] = 0xff; break;
            case 2: buf[off] = (uint8_t)(save[0] + 1); break;
            case 3: buf[off] = save[0] ^ 0x80; break;
            case 4: if (w >= 4) memcpy(buf + off, "\xff\xff\xff\xff", 4); break;
            case 5: if (w >= 4) memcpy(buf + off, "\x0d\x00\x00\x00", 4); break;
            default: {
                uint64_t v = m == 8 ? (uint64_t)size : WORDS[m - 6];
                for (size_t i = 0; w >= 8 && i < 8; i++) buf[off + i] = (uint8_t)(v >> (8 * i));
                break;
            }
            }
            if (memcmp(buf + off, save, w) == 0) continue; /* no change: nothing to learn */
            bool opened = false;
            bool ok = open_clean(buf, size, &opened, why, sizeof why);
            memcpy(buf + off, save, w);
            n_runs++;
            n_opened += opened;
            if (!ok) {
                free(buf);
                CHECK_MSG(false, "mutation %d at offset %zu: %s", m, off, why);
            }
        }
    }
    free(buf);
    /* some mutations are harmless (a byte of a token's text, a score) */
    CHECK(n_opened > 0 && n_opened < n_runs);
    CHECK(n_runs > 15000);
}

/* ---- allocation failures and open errors ---------------------------------- */

TEST(gguf_alloc_failures) {
    uint8_t *buf = NULL;
    sl_gguf *g = open_seed("seed-llama.gguf", &buf);
    CHECK_MSG(g != NULL, "seed-llama: %s", sl_last_error());
    size_t len = (size_t)sl_gguf_size(g);
    sl_gguf_close(g);
    int k;
    for (k = 0; k < 1000; k++) {
        sl_alloc_fail_after(k);
        g = (sl_gguf *)1;
        sl_status st = sl_gguf_open_memory(buf, len, &g);
        sl_alloc_fail_after(-1);
        if (st == SL_OK) {
            sl_gguf_close(g);
            break;
        }
        if (st != SL_ERR_NOMEM || g != NULL || !strstr(sl_last_error(), "out of memory")) {
            free(buf);
            CHECK_MSG(false, "allocation %d failing: status %s, message %s", k, sl_status_str(st), sl_last_error());
        }
    }
    free(buf);
    CHECK_MSG(k >= 4 && k < 1000, "open succeeded after %d failing allocations", k);

    /* the same through sl_gguf_open on a real file (the mapping must be released too) */
    const char *path = sl_test_shared("models/stories260K.gguf");
    CHECK(path != NULL);
    for (k = 0; k < 1000; k++) {
        sl_alloc_fail_after(k);
        sl_status st = sl_gguf_open(path, &g);
        sl_alloc_fail_after(-1);
        if (st == SL_OK) {
            sl_gguf_close(g);
            break;
        }
        CHECK_MSG(st == SL_ERR_NOMEM && g == NULL, "allocation %d failing: %s: %s", k, sl_status_str(st),
                  sl_last_error());
    }
    CHECK(k >= 4 && k < 1000);
}

TEST(gguf_open_errors) {
    sl_gguf *g = (sl_gguf *)1;
    CHECK_EQ_INT(sl_gguf_open("tests/data/gguf-bad/no-such-file.gguf", &g), SL_ERR_IO);
    CHECK(g == NULL);
    CHECK(strstr(sl_last_error(), "no-such-file.gguf") && strstr(sl_last_error(), "cannot open"));
    CHECK_EQ_INT(sl_gguf_open("tests/data/gguf-bad", &g), SL_ERR_IO);
    CHECK(strstr(sl_last_error(), "not a regular file"));
    char tmp[] = "/tmp/sl_test_gguf_XXXXXX";
    int fd = mkstemp(tmp);
    CHECK(fd >= 0);
    close(fd);
    sl_status st = sl_gguf_open(tmp, &g);
    unlink(tmp);
    CHECK_EQ_INT(st, SL_ERR_FORMAT);
    CHECK(strstr(sl_last_error(), "magic") && strstr(sl_last_error(), "0 bytes"));
    CHECK_EQ_INT(sl_gguf_open_memory(NULL, 0, &g), SL_ERR_FORMAT);
    CHECK(strstr(sl_last_error(), "magic"));
    CHECK_EQ_INT(sl_gguf_open_memory(NULL, 10, &g), SL_ERR_INVALID);
    sl_gguf_close(NULL);
}

TEST(gguf_message_escapes_names) {
    /* a duplicate key whose name holds control bytes and a quote: the message shows them escaped */
    static const uint8_t img[] = {
        'G', 'G', 'U', 'F', 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
        4, 0, 0, 0, 0, 0, 0, 0, 'a', '\n', '\'', 0x1b, 0, 0, 0, 0, 7, /* u8 7 */
        4, 0, 0, 0, 0, 0, 0, 0, 'a', '\n', '\'', 0x1b, 0, 0, 0, 0, 8,
    };
    sl_gguf *g = NULL;
    CHECK_EQ_INT(sl_gguf_open_memory(img, sizeof img, &g), SL_ERR_FORMAT);
    const char *msg = sl_last_error();
    CHECK_MSG(strstr(msg, "kv[1] 'a\\x0a\\x27\\x1b'") && strstr(msg, "duplicate key"), "%s", msg);
    CHECK_MSG(!strchr(msg, '\n') && !strchr(msg, 0x1b), "raw control bytes in: %s", msg);
}
